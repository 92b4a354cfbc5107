//! Randomized differential test of the STRING command family against Debian's
//! redis-server 7.0.15: a seeded sequence of a few thousand random string commands
//! (keys from a small pool, some sharing a hash tag, some spread over shards; values that
//! are integers, floats, empty, long or binary; valid and invalid options) runs on both
//! servers and every reply must match exactly, except TTL-like replies of relative
//! expiries, which may differ by the milliseconds between the two servers.
//!
//! Runs sequentially and pipelined (batches of up to 60 commands, so percore's per-shard
//! batching and multi-shard barriers are exercised), in RESP2 and RESP3, with 1 and 4
//! shards. Set STRINGS_SEED=<n> to replay a failure: the seed is printed in the panic;
//! STRINGS_COMMANDS=<n> runs longer sequences.

mod common;
use common::{encode, Raw, Resp, Rng, Server};

/// Commands per run (STRINGS_COMMANDS=<n> overrides it for a longer soak).
fn commands() -> usize {
    std::env::var("STRINGS_COMMANDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000)
}

/// The key pool: a few plain keys (spread over shards when there are several), three
/// sharing a hash tag, and a binary one.
const KEYS: &[&[u8]] = &[
    b"a",
    b"b",
    b"c",
    b"d",
    b"e",
    b"{t}a",
    b"{t}b",
    b"{t}c",
    b"k\x00\r\n",
];

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Generates random commands.
struct Gen {
    rng: Rng,
    /// Seconds since the epoch at the start: absolute expiries are kept far from it.
    now: u64,
}

impl Gen {
    fn chance(&mut self, pct: u64) -> bool {
        self.rng.below(100) < pct
    }

    fn key(&mut self) -> Vec<u8> {
        self.rng.pick(KEYS).to_vec()
    }

    fn bytes(&mut self, len: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..len).map(|_| *self.rng.pick(alphabet)).collect()
    }

    fn int(&mut self) -> String {
        match self.rng.below(6) {
            0 => self.rng.below(20).to_string(),
            1 => (self.rng.below(40000) as i64 - 20000).to_string(),
            2 => (self.rng.next() as i64).to_string(),
            3 => self
                .rng
                .pick(&[
                    "9223372036854775807",
                    "-9223372036854775808",
                    "9223372036854775806",
                    "-9223372036854775807",
                    "9999",
                    "10000",
                    "-1",
                    "0",
                ])
                .to_string(),
            4 => ((self.rng.next() >> 40) as i64).to_string(),
            _ => (-((self.rng.next() >> 1) as i64)).to_string(),
        }
    }

    fn float(&mut self) -> String {
        match self.rng.below(5) {
            0 => format!("{}.{}", self.rng.below(1000), self.rng.below(1000)),
            1 => format!("-{}.{}", self.rng.below(100), self.rng.below(100000)),
            2 => format!("{}e{}", self.rng.below(100), self.rng.below(40) as i64 - 20),
            3 => self
                .rng
                .pick(&[
                    "0.1", "0.2", "1.5", "-2.25", "3.0", "1e10", "1.5e-3", "5e-324", "1e308", "-0",
                    ".5", "5.", "0x10", "1e400",
                ])
                .to_string(),
            _ => self.int(),
        }
    }

    fn value(&mut self) -> Vec<u8> {
        match self.rng.below(14) {
            0..=2 => self.int().into_bytes(),
            3 => self.float().into_bytes(),
            4 => Vec::new(),
            5 => self
                .rng
                .pick(&[
                    "007", "+5", " 5", "5 ", "-0", "1e3", "0x1f", "inf", "nan", "1.0",
                ])
                .as_bytes()
                .to_vec(),
            6 | 7 => {
                let n = 1 + self.rng.below(10) as usize;
                self.bytes(n, b"abcxyz")
            }
            8 => {
                let n = 43 + self.rng.below(3) as usize;
                self.bytes(n, b"ab")
            }
            9 => {
                let n = 46 + self.rng.below(300) as usize;
                self.bytes(n, b"abcdefgh")
            }
            10 | 11 => {
                let n = 1 + self.rng.below(20) as usize;
                self.bytes(n, b"a\x00\r\n\xff\x01 9")
            }
            12 => {
                let n = 1000 + self.rng.below(1500) as usize;
                self.bytes(n, b"xy")
            }
            _ => self.int().into_bytes(),
        }
    }

    /// An expiry option for SET/GETEX: valid relative, far future or past absolute, or invalid.
    fn expire(&mut self, out: &mut Vec<Vec<u8>>) {
        let (opt, t) = match self.rng.below(10) {
            0 | 1 => ("EX", (100 + self.rng.below(100_000)).to_string()),
            2 | 3 => ("PX", (100_000 + self.rng.below(100_000_000)).to_string()),
            4 => (
                "EXAT",
                (self.now + 1_000_000 + self.rng.below(1_000_000)).to_string(),
            ),
            5 => (
                "PXAT",
                ((self.now + 1_000_000) * 1000 + self.rng.below(1 << 40)).to_string(),
            ),
            6 => ("EXAT", (1 + self.rng.below(1_000_000_000)).to_string()),
            7 => ("PXAT", (1 + self.rng.below(1_000_000_000_000)).to_string()),
            8 => (
                *self.rng.pick(&["EX", "PX", "EXAT", "PXAT"]),
                self.rng
                    .pick(&["0", "-5", "abc", "1.5", "9223372036854775807", ""])
                    .to_string(),
            ),
            _ => (
                *self.rng.pick(&["EXAT", "PXAT"]),
                "9223372036854775".to_string(),
            ),
        };
        out.push(opt.into());
        out.push(t.into());
    }

    fn set(&mut self) -> Vec<Vec<u8>> {
        let mut c: Vec<Vec<u8>> = vec![b"SET".to_vec(), self.key(), self.value()];
        let mut opts: Vec<Vec<Vec<u8>>> = Vec::new();
        if self.chance(25) {
            opts.push(vec![self
                .rng
                .pick(&["NX", "XX", "nx", "xx"])
                .as_bytes()
                .into()]);
        }
        if self.chance(25) {
            opts.push(vec![b"GET".to_vec()]);
        }
        if self.chance(40) {
            let mut e = Vec::new();
            if self.chance(15) {
                e.push(b"KEEPTTL".to_vec());
            } else {
                self.expire(&mut e);
            }
            opts.push(e);
        }
        if self.chance(4) {
            // A conflicting or unknown option, or a missing value.
            let junk = *self
                .rng
                .pick(&["NX", "XX", "KEEPTTL", "PERSIST", "EX", "FOO", "GET"]);
            opts.push(vec![junk.as_bytes().into()]);
        }
        // Options in any order.
        while !opts.is_empty() {
            let i = self.rng.below(opts.len() as u64) as usize;
            c.extend(opts.swap_remove(i));
        }
        c
    }

    fn getex(&mut self) -> Vec<Vec<u8>> {
        let mut c = vec![b"GETEX".to_vec(), self.key()];
        match self.rng.below(6) {
            0 => {}
            1 => c.push(b"PERSIST".to_vec()),
            2 => {
                c.push(b"PERSIST".to_vec());
                self.expire(&mut c);
            }
            3 => c.push(
                self.rng
                    .pick(&["NX", "KEEPTTL", "EX", "GET"])
                    .as_bytes()
                    .into(),
            ),
            _ => self.expire(&mut c),
        }
        c
    }

    fn range_arg(&mut self) -> Vec<u8> {
        match self.rng.below(10) {
            0 => self
                .rng
                .pick(&["-9223372036854775808", "9223372036854775807", "x", "1.5"])
                .as_bytes()
                .to_vec(),
            _ => (self.rng.below(120) as i64 - 60).to_string().into_bytes(),
        }
    }

    fn pairs(&mut self, name: &str) -> Vec<Vec<u8>> {
        let mut c = vec![name.as_bytes().to_vec()];
        for _ in 0..1 + self.rng.below(4) {
            c.push(self.key());
            c.push(self.value());
        }
        if self.chance(5) {
            c.pop();
        }
        c
    }

    /// One random command (a plain read now and then, so state differences surface).
    fn command(&mut self) -> Vec<Vec<u8>> {
        let k = self.key();
        let s = |x: &str| x.as_bytes().to_vec();
        match self.rng.below(40) {
            0..=5 => self.set(),
            6 | 7 => vec![s("GET"), k],
            8 => vec![s("SETNX"), k, self.value()],
            9 => {
                let t = if self.chance(90) {
                    (100 + self.rng.below(10000)).to_string()
                } else {
                    self.rng.pick(&["0", "-1", "x"]).to_string()
                };
                vec![s("SETEX"), k, t.into_bytes(), self.value()]
            }
            10 => {
                let t = (100_000 + self.rng.below(10_000_000)).to_string();
                vec![s("PSETEX"), k, t.into_bytes(), self.value()]
            }
            11 => vec![s("GETSET"), k, self.value()],
            12 => vec![s("GETDEL"), k],
            13 | 14 => self.getex(),
            15 => {
                let mut c = vec![s("MGET")];
                for _ in 0..1 + self.rng.below(5) {
                    c.push(self.key());
                }
                c
            }
            16 => self.pairs("MSET"),
            17 => self.pairs("MSETNX"),
            18 | 19 => vec![s("APPEND"), k, self.value()],
            20 => vec![s("STRLEN"), k],
            21 | 22 => {
                let name = if self.chance(80) {
                    "GETRANGE"
                } else {
                    "SUBSTR"
                };
                vec![s(name), k, self.range_arg(), self.range_arg()]
            }
            23 | 24 => {
                let off = match self.rng.below(20) {
                    0 => s("-1"),
                    1 => s("x"),
                    2 => s("536870912"),
                    _ => self.rng.below(500).to_string().into_bytes(),
                };
                let v = if self.chance(15) {
                    Vec::new()
                } else {
                    let n = 1 + self.rng.below(30) as usize;
                    self.bytes(n, b"ab\x0019")
                };
                vec![s("SETRANGE"), k, off, v]
            }
            25 | 26 => vec![s(self.rng.pick::<&str>(&["INCR", "DECR"])), k],
            27 | 28 => {
                let name = *self.rng.pick(&["INCRBY", "DECRBY"]);
                let by = if self.chance(85) {
                    self.int()
                } else {
                    self.rng.pick(&["x", "1.5", " 1", "+1", ""]).to_string()
                };
                vec![s(name), k, by.into_bytes()]
            }
            29 | 30 => {
                let by = if self.chance(90) {
                    self.float()
                } else {
                    self.rng.pick(&["inf", "-inf", "nan", "x", ""]).to_string()
                };
                vec![s("INCRBYFLOAT"), k, by.into_bytes()]
            }
            31 | 32 => {
                let mut c = vec![s("LCS"), k, self.key()];
                match self.rng.below(8) {
                    0 => {}
                    1 => c.push(s("LEN")),
                    2 | 3 => c.push(s("IDX")),
                    4 => c.extend([s("IDX"), s("WITHMATCHLEN")]),
                    5 => {
                        let m = self.rng.below(6).to_string().into_bytes();
                        c.extend([s("IDX"), s("MINMATCHLEN"), m, s("WITHMATCHLEN")]);
                    }
                    6 => c.extend([s("IDX"), s("LEN")]),
                    _ => c.push(s(self.rng.pick::<&str>(&["MINMATCHLEN", "FOO"]))),
                }
                c
            }
            33 => vec![s("OBJECT"), s("ENCODING"), k],
            34 => vec![
                s(self
                    .rng
                    .pick::<&str>(&["TTL", "PTTL", "PEXPIRETIME", "EXPIRETIME"])),
                k,
            ],
            35 => vec![s("EXISTS"), k],
            36 => vec![s("DEL"), k],
            37 => vec![s("TYPE"), k],
            38 if self.chance(30) => vec![s("SELECT"), self.rng.below(3).to_string().into_bytes()],
            _ => vec![s("GET"), k],
        }
    }
}

/// Shows a command for failure messages.
fn show(c: &[Vec<u8>]) -> String {
    c.iter()
        .map(|a| {
            let s: String = a.escape_ascii().to_string();
            if s.is_empty() || s.contains(' ') {
                format!("\"{s}\"")
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Compares one reply pair; TTL-like commands of relative expiries may differ slightly.
fn same(cmd: &[Vec<u8>], a: &Resp, b: &Resp) -> bool {
    let name = cmd[0].to_ascii_uppercase();
    let slack = match &name[..] {
        b"TTL" | b"EXPIRETIME" => 1,
        b"PTTL" | b"PEXPIRETIME" => 2000,
        _ => 0,
    };
    match (a, b) {
        (Resp::Int(x), Resp::Int(y)) if slack > 0 && *x >= 0 && *y >= 0 => (x - y).abs() <= slack,
        _ => a == b,
    }
}

/// Runs one seeded sequence against both servers and panics with the seed on a difference.
fn run(seed: u64, shards: usize, resp3: bool, pipelined: bool) {
    let redis = Server::redis(&[]);
    let percore = Server::percore(shards, &[]);
    let mut r = redis.raw();
    let mut p = percore.raw();
    for c in [&mut r, &mut p] {
        assert_eq!(c.cmds("FLUSHALL"), Resp::Simple(b"OK".to_vec()));
        if resp3 {
            assert!(matches!(c.cmds("HELLO 3"), Resp::Map(_)));
        }
    }
    let mut g = Gen {
        rng: Rng(seed | 1),
        now: now_s(),
    };
    let mut log: Vec<String> = Vec::new();
    let mut done = 0;
    let total = commands();
    while done < total {
        let n = if pipelined {
            1 + g.rng.below(60) as usize
        } else {
            1
        };
        let mut batch = Vec::new();
        while batch.len() < n {
            let c = g.command();
            if c[0] == b"LCS" {
                // LCS is quadratic: keep the table small for a debug build. (Lengths as of
                // the previous batch; asked of both servers so their statistics stay equal.)
                let len = |c: &mut Raw, k: &[u8]| c.cmd(&[&b"STRLEN"[..], k]);
                let (l1, l2) = (len(&mut p, &c[1]), len(&mut p, &c[2]));
                assert_eq!(
                    (len(&mut r, &c[1]), len(&mut r, &c[2])),
                    (l1.clone(), l2.clone())
                );
                if let (Resp::Int(x), Resp::Int(y)) = (l1, l2) {
                    if (x + 1) * (y + 1) > 300_000 {
                        continue;
                    }
                }
            }
            batch.push(c);
        }
        let wire: Vec<u8> = batch.iter().flat_map(|c| encode(c)).collect();
        r.send(&wire);
        p.send(&wire);
        for c in &batch {
            log.push(show(c));
            let (Some(a), Some(b)) = (r.try_read(), p.try_read()) else {
                panic!(
                    "seed {seed} (STRINGS_SEED={seed}), {shards} shards, resp3 {resp3}, \
                     pipelined {pipelined}: no reply to command #{} {}; percore log:\n{}",
                    log.len(),
                    show(c),
                    percore.log()
                );
            };
            if !same(c, &a, &b) {
                let tail = &log[log.len().saturating_sub(15)..];
                panic!(
                    "seed {seed} (STRINGS_SEED={seed}), {shards} shards, resp3 {resp3}, \
                     pipelined {pipelined}: replies differ for command #{} {}\n  redis:   \
                     {a:?}\n  percore: {b:?}\n  recent commands:\n    {}",
                    log.len(),
                    show(c),
                    tail.join("\n    ")
                );
            }
        }
        done += batch.len();
    }
    // The final state matches too: every key of every database used.
    for db in ["0", "1", "2"] {
        for k in KEYS {
            let get = |c: &mut Raw| {
                c.cmd(&["SELECT", db]);
                (c.cmd(&[&b"GET"[..], k]), c.cmd(&[&b"TYPE"[..], k]))
            };
            assert_eq!(
                get(&mut r),
                get(&mut p),
                "seed {seed}: final value of {k:?} in db {db}"
            );
        }
    }
    // And the keyspace statistics: every command looked its keys up for reading or for
    // writing as Redis does, and expired the same keys (all expiries are far past or far
    // future, so lazy or active expiry count the same keys once).
    let stats = |c: &mut Raw| {
        let info = c.cmds("INFO stats").text();
        info.lines()
            .filter(|l| {
                ["keyspace_hits:", "keyspace_misses:", "expired_keys:"]
                    .iter()
                    .any(|f| l.starts_with(f))
            })
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (a, b) = (stats(&mut r), stats(&mut p));
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(a, b, "seed {seed}, {shards} shards: INFO stats");
}

/// The seed: STRINGS_SEED if set, else a fresh one (printed on failure).
fn seed(salt: u64) -> u64 {
    if let Some(s) = std::env::var("STRINGS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    t.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
}

#[test]
fn random_strings_resp2() {
    let s = seed(1);
    eprintln!("STRINGS_SEED={s}");
    for shards in [1, 4] {
        run(s, shards, false, false);
    }
}

#[test]
fn random_strings_resp2_pipelined() {
    let s = seed(2);
    eprintln!("STRINGS_SEED={s}");
    for shards in [1, 4] {
        run(s, shards, false, true);
    }
}

#[test]
fn random_strings_resp3_pipelined() {
    let s = seed(3);
    eprintln!("STRINGS_SEED={s}");
    for shards in [4, 1] {
        run(s, shards, true, true);
    }
}
