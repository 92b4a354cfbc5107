//! Deep pipelines across shards: 16 clients at once each send 20 batches of
//! 500 mixed commands (single-shard, cross-shard, hash-tagged, connection
//! commands) in one write, and every reply is checked, in order, against a
//! model computed locally. Each client has its own key prefix, so its model is
//! deterministic whatever the other clients do.

mod common;

use std::collections::HashMap;

use common::{encode, Resp, Rng, Server};

const THREADS: usize = 16;
const BATCHES: usize = 20;
const DEPTH: usize = 500;

/// One client's keyspace, as Redis would hold it.
struct Model {
    prefix: String,
    data: HashMap<String, String>,
}

fn ok() -> Resp {
    Resp::Simple(b"OK".to_vec())
}

fn err(text: &str) -> Resp {
    Resp::Error(text.as_bytes().to_vec())
}

/// Redis's string2ll: an optional '-', no leading zeros, no '+', fits i64.
fn redis_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') || s == "-0" {
        return None;
    }
    s.parse().ok()
}

impl Model {
    /// A key of this client: plain names spread over every shard, and names
    /// sharing one of a few hash tags (so some multi-key commands stay on one shard).
    fn key(&self, rng: &mut Rng) -> String {
        let n = rng.below(24);
        if n < 16 {
            format!("{}:k{n}", self.prefix)
        } else {
            let tag = ["red", "green"][(n % 2) as usize];
            format!("{}:{{{tag}}}k{n}", self.prefix)
        }
    }

    fn tagged_key(&self, rng: &mut Rng, tag: &str) -> String {
        format!("{}:{{{tag}}}t{}", self.prefix, rng.below(6))
    }

    fn value(rng: &mut Rng) -> String {
        match rng.below(3) {
            0 => (1 + rng.below(1000)).to_string(),
            1 => format!("v{}", rng.below(100)),
            _ => "x".repeat(1 + rng.below(40) as usize),
        }
    }

    fn get(&self, k: &str) -> Resp {
        match self.data.get(k) {
            Some(v) => Resp::bulk(v),
            None => Resp::Bulk(None),
        }
    }

    /// A random command and the reply Redis gives to it.
    fn next(&mut self, rng: &mut Rng) -> (Vec<String>, Resp) {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        match rng.below(100) {
            0..=17 => {
                let (k, v) = (self.key(rng), Model::value(rng));
                self.data.insert(k.clone(), v.clone());
                (s(&["SET", &k, &v]), ok())
            }
            18..=37 => {
                let k = self.key(rng);
                (s(&["GET", &k]), self.get(&k))
            }
            38..=49 => {
                let k = self.key(rng);
                let reply = match self.data.get(&k).map(|v| redis_int(v)) {
                    None => {
                        self.data.insert(k.clone(), "1".into());
                        Resp::Int(1)
                    }
                    Some(Some(n)) if n == i64::MAX => {
                        err("ERR increment or decrement would overflow")
                    }
                    Some(Some(n)) => {
                        self.data.insert(k.clone(), (n + 1).to_string());
                        Resp::Int(n + 1)
                    }
                    Some(None) => err("ERR value is not an integer or out of range"),
                };
                (s(&["INCR", &k]), reply)
            }
            50..=57 => {
                let k = self.key(rng);
                let add = if rng.below(2) == 0 { "5" } else { "ab" };
                let v = self.data.entry(k.clone()).or_default();
                v.push_str(add);
                (s(&["APPEND", &k, add]), Resp::Int(v.len() as i64))
            }
            58..=65 => {
                // Keys on several shards, with a repeat now and then (counted once).
                let mut keys: Vec<String> = (0..1 + rng.below(4)).map(|_| self.key(rng)).collect();
                if rng.below(4) == 0 {
                    keys.push(keys[0].clone());
                }
                let mut n = 0;
                for k in &keys {
                    if self.data.remove(k).is_some() {
                        n += 1;
                    }
                }
                let mut cmd = vec!["DEL".to_string()];
                cmd.extend(keys);
                (cmd, Resp::Int(n))
            }
            66..=77 => {
                let tag = rng.below(3) == 0;
                let keys: Vec<String> = (0..1 + rng.below(6))
                    .map(|_| {
                        if tag {
                            self.tagged_key(rng, "blue")
                        } else {
                            self.key(rng)
                        }
                    })
                    .collect();
                let reply = Resp::Array(Some(keys.iter().map(|k| self.get(k)).collect()));
                let mut cmd = vec!["MGET".to_string()];
                cmd.extend(keys);
                (cmd, reply)
            }
            78..=87 => {
                let tag = rng.below(3) == 0;
                let mut cmd = vec!["MSET".to_string()];
                for _ in 0..1 + rng.below(4) {
                    let k = if tag {
                        self.tagged_key(rng, "blue")
                    } else {
                        self.key(rng)
                    };
                    let v = Model::value(rng);
                    // A key given twice keeps its last value, as in Redis.
                    self.data.insert(k.clone(), v.clone());
                    cmd.push(k);
                    cmd.push(v);
                }
                (cmd, ok())
            }
            88..=93 => (s(&["PING"]), Resp::Simple(b"PONG".to_vec())),
            _ => {
                let m = format!("echo-{}", rng.below(1_000_000));
                (s(&["ECHO", &m]), Resp::bulk(&m))
            }
        }
    }
}

/// One client: BATCHES pipelines of DEPTH commands, each written at once.
fn client(port: u16, t: usize, seed: u64) -> usize {
    let mut raw = common::Raw::connect(port);
    let mut rng = Rng(seed);
    let mut model = Model {
        prefix: format!("pipe{t}"),
        data: HashMap::new(),
    };
    for b in 0..BATCHES {
        let mut bytes = Vec::new();
        let mut expected = Vec::with_capacity(DEPTH);
        for _ in 0..DEPTH {
            let (cmd, reply) = model.next(&mut rng);
            bytes.extend_from_slice(&encode(&cmd));
            expected.push((cmd, reply));
        }
        raw.send(&bytes);
        for (i, (cmd, want)) in expected.iter().enumerate() {
            let got = raw.read();
            assert_eq!(
                &got, want,
                "client {t} (seed {seed}), batch {b}, command {i}: {cmd:?}"
            );
        }
    }
    // The model's view of the keyspace is the server's.
    let mut keys: Vec<&String> = model.data.keys().collect();
    keys.sort();
    for k in keys {
        assert_eq!(raw.cmd(&["GET", k]), model.get(k), "client {t}: final {k}");
    }
    model.data.len()
}

#[test]
fn deep_pipelines_from_many_clients_match_the_model() {
    for shards in [1, 4, 8] {
        let server = Server::percore(shards, &[]);
        let port = server.port;
        let total: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS)
                .map(|t| s.spawn(move || client(port, t, 0x5eed_0000 + t as u64 * 7919)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("client thread"))
                .sum()
        });
        let mut raw = server.raw();
        assert_eq!(
            raw.cmds("DBSIZE"),
            Resp::Int(total as i64),
            "{shards} shard(s)"
        );
    }
}

/// Glommio 0.9 can park an executor that still has runnable work (see
/// /work/shared/GLOMMIO.md); cross-shard requests are where that would show
/// as a hang. Many clients run cross-shard MSET/MGET/DEL for 5 s, each
/// request with a strict 2 s timeout: none may hang.
#[test]
fn cross_shard_requests_never_stall() {
    const CLIENTS: usize = 24;
    const RUN: std::time::Duration = std::time::Duration::from_secs(5);
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
    // 2 shards: pinned executors that spin before parking; 4 and 8: more
    // executors than the CPUs of a small machine, unpinned, parking often.
    for shards in [2, 4, 8] {
        let server = Server::percore(shards, &["--hz", "1"]);
        let port = server.port;
        let end = std::time::Instant::now() + RUN;
        let counts: Vec<(usize, std::time::Duration)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..CLIENTS)
                .map(|t| {
                    s.spawn(move || {
                        let mut raw = common::Raw::connect(port);
                        raw.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                        let mut rng = Rng(0xabcd + t as u64);
                        let mut n = 0;
                        let mut worst = std::time::Duration::ZERO;
                        while std::time::Instant::now() < end {
                            let keys: Vec<String> = (0..2 + rng.below(7))
                                .map(|_| format!("stall{t}:{}", rng.below(50)))
                                .collect();
                            let mut mset = vec!["MSET".to_string()];
                            for k in &keys {
                                mset.push(k.clone());
                                mset.push(format!("{k}={n}"));
                            }
                            let mut mget = vec!["MGET".to_string()];
                            mget.extend(keys.iter().cloned());
                            // Sometimes one request, sometimes a short pipeline.
                            let depth = 1 + rng.below(3) as usize;
                            let t0 = std::time::Instant::now();
                            let mut bytes = Vec::new();
                            for _ in 0..depth {
                                bytes.extend_from_slice(&encode(&mset));
                                bytes.extend_from_slice(&encode(&mget));
                            }
                            raw.send(&bytes);
                            for _ in 0..depth {
                                let r = raw.try_read().unwrap_or_else(|| {
                                    panic!("{shards} shards, client {t}: MSET hung > {TIMEOUT:?}")
                                });
                                assert_eq!(r, ok());
                                let r = raw.try_read().unwrap_or_else(|| {
                                    panic!("{shards} shards, client {t}: MGET hung > {TIMEOUT:?}")
                                });
                                // Duplicate keys read their last value.
                                let want: Vec<Resp> = keys
                                    .iter()
                                    .map(|k| Resp::bulk(&format!("{k}={n}")))
                                    .collect();
                                assert_eq!(r, Resp::Array(Some(want)));
                            }
                            worst = worst.max(t0.elapsed());
                            if rng.below(10) == 0 {
                                let mut del = vec!["DEL".to_string()];
                                del.extend(keys.iter().cloned());
                                raw.send_cmd(&del);
                                let r = raw.try_read().unwrap_or_else(|| {
                                    panic!("{shards} shards, client {t}: DEL hung > {TIMEOUT:?}")
                                });
                                assert!(r.int() >= 1);
                            }
                            n += 1;
                        }
                        (n, worst)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("client thread"))
                .collect()
        });
        let total: usize = counts.iter().map(|c| c.0).sum();
        let worst = counts.iter().map(|c| c.1).max().unwrap();
        eprintln!("{shards} shards: {total} rounds, worst round trip {worst:?}");
        assert!(
            total > CLIENTS,
            "{shards} shards: only {total} rounds in {RUN:?}"
        );
    }
}

/// The read path waits on one multishot poll per connection (vendor/glommio,
/// `NonBufferedStream::poll_read`): a lost readiness event would leave a
/// request unanswered. Clients on 4 shards send requests whole, split into
/// fragments with pauses between them, in bursts, and with values larger than
/// one read, after random idle gaps; every reply must come within the
/// socket's timeout and be the right one.
#[test]
fn reads_after_gaps_fragments_and_bursts() {
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 150;
    let server = Server::percore(4, &[]);
    let port = server.port;
    std::thread::scope(|s| {
        for t in 0..CLIENTS {
            s.spawn(move || {
                let mut raw = common::Raw::connect(port);
                raw.stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .unwrap();
                let mut rng = Rng(0x5eed + t as u64);
                let counter = format!("gaps:{t}:n");
                for round in 1..=ROUNDS {
                    let gap = rng.below(4);
                    if gap > 0 {
                        std::thread::sleep(std::time::Duration::from_micros(gap * 400));
                    }
                    match rng.below(4) {
                        // Whole request.
                        0 => {
                            raw.send_cmd(&["INCR", &counter]);
                        }
                        // Split into fragments with pauses: partial reads, then waits.
                        1 => {
                            let bytes = encode(&["INCR", &counter]);
                            let cut1 = 1 + rng.below(bytes.len() as u64 - 2) as usize;
                            raw.send(&bytes[..cut1]);
                            std::thread::sleep(std::time::Duration::from_micros(300));
                            raw.send(&bytes[cut1..]);
                        }
                        // A burst: GETs of the other keys, then the INCR.
                        2 => {
                            let mut burst = Vec::new();
                            for i in 0..8 {
                                burst.extend(encode(&["GET", &format!("gaps:{t}:v{i}")]));
                            }
                            burst.extend(encode(&["INCR", &counter]));
                            raw.send(&burst);
                            for _ in 0..8 {
                                let r = raw.try_read().unwrap_or_else(|| {
                                    panic!("client {t} round {round}: GET unanswered")
                                });
                                assert!(!r.is_error(), "client {t}: {r:?}");
                            }
                        }
                        // A value bigger than one read (several reads of one request).
                        _ => {
                            let value = "x".repeat(40_000 + rng.below(100_000) as usize);
                            let key = format!("gaps:{t}:v{}", rng.below(8));
                            raw.send_cmd(&["SET", &key, &value]);
                            let r = raw.try_read().unwrap_or_else(|| {
                                panic!("client {t} round {round}: SET unanswered")
                            });
                            assert_eq!(r, ok());
                            raw.send_cmd(&["STRLEN", &key]);
                            let r = raw.try_read().unwrap_or_else(|| {
                                panic!("client {t} round {round}: STRLEN unanswered")
                            });
                            assert_eq!(r.int(), value.len() as i64);
                            raw.send_cmd(&["INCR", &counter]);
                        }
                    }
                    let r = raw.try_read().unwrap_or_else(|| {
                        panic!("client {t} round {round}: INCR unanswered within 10 s")
                    });
                    assert_eq!(r.int(), round as i64, "client {t}");
                }
            });
        }
    });
}
