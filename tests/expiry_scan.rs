//! Behavioural tests of percore's keyspace under time and concurrency, with 1
//! and 4 shards: the SCAN guarantee while another client writes, active and
//! lazy expiry (DEBUG SET-ACTIVE-EXPIRE, DBSIZE, INFO keyspace/stats), TTL
//! accuracy, RANDOMKEY among expired keys, and RENAME/COPY/MOVE across shards
//! keeping value and TTL.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{encode, Raw, Resp, Rng, Server};
use percore::server::exec::shard_of_key;

const SHARDS: [usize; 2] = [1, 4];

/// One key name per shard (for `nshards` shards), made from `prefix`.
fn key_per_shard(prefix: &str, nshards: usize) -> Vec<String> {
    let mut out: Vec<Option<String>> = vec![None; nshards];
    for i in 0.. {
        let k = format!("{prefix}{i}");
        let s = shard_of_key(k.as_bytes(), nshards);
        if out[s].is_none() {
            out[s] = Some(k);
        }
        if out.iter().all(|o| o.is_some()) {
            break;
        }
    }
    out.into_iter().flatten().collect()
}

/// Sends every command in one write and reads all replies (fast bulk loading).
fn pipeline(raw: &mut Raw, cmds: &[Vec<String>]) -> Vec<Resp> {
    let mut req = Vec::new();
    for c in cmds {
        req.extend_from_slice(&encode(c));
    }
    raw.send(&req);
    cmds.iter().map(|_| raw.read()).collect()
}

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// One field of INFO `section`.
fn info_field(raw: &mut Raw, section: &str, field: &str) -> Option<String> {
    let text = raw.cmd(&["INFO", section]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.to_string()))
}

fn expired_keys(raw: &mut Raw) -> i64 {
    info_field(raw, "stats", "expired_keys")
        .expect("expired_keys in INFO stats")
        .parse()
        .expect("a number")
}

/// Polls `f` every 20 ms until it is true or `limit` passes; returns whether it became true.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Iterates SCAN to completion with `opts`; returns every key seen (with repeats).
fn scan_all(raw: &mut Raw, opts: &[&str]) -> Vec<Vec<u8>> {
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    for _ in 0..200_000 {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(opts);
        let r = raw.cmd(&args);
        let items = r.items();
        for k in items[1].items() {
            match k {
                Resp::Bulk(Some(b)) => seen.push(b.clone()),
                other => panic!("SCAN element {other:?}"),
            }
        }
        cursor = items[0].text();
        if cursor == "0" {
            return seen;
        }
    }
    panic!("SCAN did not finish");
}

/// SCAN's guarantee: every key present for the whole iteration is returned,
/// while a writer adds many keys (the table grows, parts split) and deletes
/// keys outside the stable set.
#[test]
fn scan_returns_every_stable_key_while_another_client_writes() {
    for shards in SHARDS {
        let server = Server::percore(shards, &[]);
        let mut raw = server.raw();
        let stable: Vec<String> = (0..3000)
            .map(|i| {
                if i % 10 == 0 {
                    format!("{{tag{}}}stable:{i}", i % 7)
                } else {
                    format!("stable:{i}")
                }
            })
            .collect();
        for chunk in stable.chunks(500) {
            let mut m = vec!["MSET".to_string()];
            for k in chunk {
                m.push(k.clone());
                m.push("v".into());
            }
            assert_eq!(raw.cmd(&m), Resp::Simple(b"OK".to_vec()));
        }
        // Some keys to delete while scanning (never part of the stable set).
        let doomed: Vec<String> = (0..2000).map(|i| format!("doomed:{i}")).collect();
        for chunk in doomed.chunks(500) {
            let mut m = vec!["MSET".to_string()];
            for k in chunk {
                m.push(k.clone());
                m.push("v".into());
            }
            raw.cmd(&m);
        }

        for (opts, expect_only_stable) in [
            (vec!["COUNT", "5"], false),
            (vec!["COUNT", "10", "MATCH", "*stable:*"], true),
            (vec!["COUNT", "50"], false),
        ] {
            let stop = Arc::new(AtomicBool::new(false));
            let progress = Arc::new(AtomicU64::new(0));
            let port = server.port;
            let (stop2, progress2) = (stop.clone(), progress.clone());
            let pass = opts.join(" ");
            let writer = std::thread::spawn(move || {
                let mut w = Raw::connect(port);
                let mut n = 0u64;
                let mut d = 0usize;
                // Bounded, so that the scan (which also has to walk the new
                // keys ahead of its cursor) ends in time.
                while !stop2.load(Ordering::Relaxed) && n < 20_000 {
                    let mut batch = Vec::new();
                    for _ in 0..20 {
                        batch.push(cmd(&["SET", &format!("new:{pass}:{n}"), "x"]));
                        n += 1;
                    }
                    for _ in 0..4 {
                        batch.push(cmd(&["DEL", &format!("doomed:{}", d % 2000)]));
                        d += 1;
                    }
                    batch.push(cmd(&["DEL", &format!("new:{pass}:{}", n - 10)]));
                    pipeline(&mut w, &batch);
                    progress2.store(n, Ordering::Relaxed);
                    // Spread the writes over the whole scan.
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            // Start scanning once the writer is under way.
            assert!(eventually(Duration::from_secs(10), || progress
                .load(Ordering::Relaxed)
                >= 100));
            let before = progress.load(Ordering::Relaxed);
            let started = Instant::now();
            let seen = scan_all(&mut raw, &opts);
            let written = progress.load(Ordering::Relaxed) - before;
            stop.store(true, Ordering::Relaxed);
            writer.join().expect("writer");
            let took = started.elapsed();
            assert!(took < Duration::from_secs(20), "scan too slow: {took:?}");
            assert!(written > 0, "the writer ran during the scan");
            let seen_set: HashSet<&[u8]> = seen.iter().map(|k| &k[..]).collect();
            let missing: Vec<&String> = stable
                .iter()
                .filter(|k| !seen_set.contains(k.as_bytes()))
                .collect();
            assert!(
                missing.is_empty(),
                "{shards} shards, SCAN {opts:?}: {} stable keys never returned (e.g. {:?}); {written} keys written meanwhile",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
            for k in &seen {
                let k = String::from_utf8_lossy(k);
                let known = k.contains("stable:")
                    || (!expect_only_stable && (k.starts_with("new:") || k.starts_with("doomed:")));
                assert!(known, "SCAN {opts:?} returned {k:?}");
            }
            // Restore the doomed keys for the next pass.
            for chunk in doomed.chunks(500) {
                let mut m = vec!["MSET".to_string()];
                for k in chunk {
                    m.push(k.clone());
                    m.push("v".into());
                }
                raw.cmd(&m);
            }
        }
    }
}

/// Loads `n` keys `prefix:i` with random PX in 50..300 ms into the selected db.
fn load_short_ttl(raw: &mut Raw, rng: &mut Rng, prefix: &str, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}:{i}")).collect();
    for chunk in keys.chunks(200) {
        let batch: Vec<Vec<String>> = chunk
            .iter()
            .map(|k| {
                let px = 50 + rng.below(251);
                cmd(&["SET", k, "v", "PX", &px.to_string()])
            })
            .collect();
        for r in pipeline(raw, &batch) {
            assert_eq!(r, Resp::Simple(b"OK".to_vec()));
        }
    }
    keys
}

/// Active expiry deletes expired keys on every shard and in every database
/// without any access to them; INFO stats counts each once.
#[test]
fn active_expiry_collects_keys_without_access() {
    for shards in SHARDS {
        let server = Server::percore(shards, &[]);
        let mut raw = server.raw();
        let mut rng = Rng(0x5eed_0000 + shards as u64);
        raw.cmds("CONFIG RESETSTAT");
        for i in 0..100 {
            raw.cmd(&["SET", &format!("keep:{i}"), "v"]);
        }
        load_short_ttl(&mut raw, &mut rng, "short", 2000);
        raw.cmds("SELECT 1");
        load_short_ttl(&mut raw, &mut rng, "other", 300);
        raw.cmds("SELECT 0");
        let mut watcher = server.raw();
        let done = eventually(Duration::from_secs(5), || {
            watcher.cmds("DBSIZE").int() == 100
        });
        assert!(
            done,
            "{shards} shards: DBSIZE still {:?} after 5 s",
            watcher.cmds("DBSIZE")
        );
        let done = eventually(Duration::from_secs(5), || {
            !watcher.cmds("INFO keyspace").text().contains("db1:")
        });
        assert!(done, "{shards} shards: db 1 not collected");
        let ks = watcher.cmds("INFO keyspace").text();
        assert!(
            ks.contains("db0:keys=100,expires=0,avg_ttl=0"),
            "INFO keyspace: {ks:?}"
        );
        assert_eq!(expired_keys(&mut watcher), 2300, "{shards} shards");
        // The persistent keys are untouched.
        assert_eq!(raw.cmds("EXISTS keep:0 keep:50 keep:99").int(), 3);
    }
}

/// With active expiry off, expired keys stay counted (DBSIZE, INFO keyspace)
/// until accessed, are invisible to KEYS/SCAN/GET/EXISTS/TTL, and each access
/// that finds one deletes it and counts it as expired.
#[test]
fn lazy_expiry_when_active_expiry_is_off() {
    for shards in SHARDS {
        let server = Server::percore(shards, &[]);
        let mut raw = server.raw();
        let mut rng = Rng(0xabcd_0000 + shards as u64);
        raw.cmds("CONFIG RESETSTAT");
        assert_eq!(
            raw.cmds("DEBUG SET-ACTIVE-EXPIRE 0"),
            Resp::Simple(b"OK".to_vec())
        );
        for i in 0..100 {
            raw.cmd(&["SET", &format!("keep:{i}"), "v"]);
        }
        let keys = load_short_ttl(&mut raw, &mut rng, "short", 1000);
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(
            raw.cmds("DBSIZE").int(),
            1100,
            "{shards} shards: counted until accessed"
        );
        let ks = raw.cmds("INFO keyspace").text();
        assert!(
            ks.contains("db0:keys=1100,expires=1000,"),
            "INFO keyspace: {ks:?}"
        );
        assert_eq!(expired_keys(&mut raw), 0, "nothing collected yet");
        // KEYS skips expired keys without deleting them.
        assert_eq!(raw.cmds("KEYS *").items().len(), 100);
        assert_eq!(raw.cmds("KEYS short:*").items().len(), 0);
        assert_eq!(raw.cmds("DBSIZE").int(), 1100);
        // Lazy expiry through different commands, on every shard.
        let (a, rest) = keys.split_at(250);
        let (b, rest) = rest.split_at(250);
        let (c, e) = rest.split_at(250);
        let batch: Vec<Vec<String>> = a.iter().map(|k| cmd(&["GET", k])).collect();
        assert!(pipeline(&mut raw, &batch)
            .iter()
            .all(|r| *r == Resp::Bulk(None)));
        let batch: Vec<Vec<String>> = b.iter().map(|k| cmd(&["TTL", k])).collect();
        assert!(pipeline(&mut raw, &batch)
            .iter()
            .all(|r| *r == Resp::Int(-2)));
        let mut ex = vec!["EXISTS".to_string()];
        ex.extend(c.iter().cloned());
        assert_eq!(raw.cmd(&ex).int(), 0);
        assert_eq!(raw.cmds("DBSIZE").int(), 350);
        assert_eq!(expired_keys(&mut raw), 750);
        // SCAN neither returns nor keeps them.
        let seen: BTreeSet<Vec<u8>> = scan_all(&mut raw, &["COUNT", "7"]).into_iter().collect();
        assert_eq!(seen.len(), 100);
        assert!(seen.iter().all(|k| k.starts_with(b"keep:")));
        assert_eq!(
            raw.cmds("DBSIZE").int(),
            100,
            "SCAN deletes the expired keys it meets"
        );
        assert_eq!(expired_keys(&mut raw), 1000);
        let mut del = vec!["DEL".to_string()];
        del.extend(e.iter().cloned());
        assert_eq!(raw.cmd(&del).int(), 0);

        // RANDOMKEY among thousands of expired keys still finds the one live key
        // (Redis keeps drawing, deleting expired ones, until it finds a live key).
        raw.cmds("SELECT 2");
        let batch: Vec<Vec<String>> = (0..3000)
            .map(|i| cmd(&["SET", &format!("dead:{i}"), "v", "PX", "1"]))
            .collect();
        pipeline(&mut raw, &batch);
        raw.cmds("SET live v");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(raw.cmds("DBSIZE").int(), 3001);
        assert_eq!(raw.cmds("RANDOMKEY"), Resp::bulk("live"), "{shards} shards");
        // Only expired keys: nil.
        raw.cmds("SELECT 3");
        let batch: Vec<Vec<String>> = (0..2000)
            .map(|i| cmd(&["SET", &format!("dead:{i}"), "v", "PX", "1"]))
            .collect();
        pipeline(&mut raw, &batch);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(raw.cmds("RANDOMKEY"), Resp::Bulk(None));
        assert_eq!(raw.cmds("DBSIZE").int(), 0);

        // Turned back on, active expiry collects the rest.
        raw.cmds("DEBUG SET-ACTIVE-EXPIRE 1");
        raw.cmds("SELECT 2");
        assert!(
            eventually(Duration::from_secs(5), || raw.cmds("DBSIZE").int() == 1),
            "{shards} shards: active expiry did not resume"
        );
    }
}

/// PTTL counts down with the clock: between two readings it drops by the time
/// that passed between them (bounded by what the client measured around them).
#[test]
fn ttl_counts_down_accurately() {
    for shards in SHARDS {
        let server = Server::percore(shards, &[]);
        let mut raw = server.raw();
        let keys = key_per_shard("ttl", shards);
        for k in &keys {
            raw.cmd(&["SET", k, "v", "PX", "5000"]);
        }
        raw.cmd(&["SET", "sec", "v", "EX", "100"]);
        for k in &keys {
            let t0 = Instant::now();
            let p1 = raw.cmd(&["PTTL", k]).int();
            let t1 = Instant::now();
            std::thread::sleep(Duration::from_millis(300));
            let t2 = Instant::now();
            let p2 = raw.cmd(&["PTTL", k]).int();
            let t3 = Instant::now();
            assert!(p1 <= 5000 && p1 > 3000, "PTTL {p1}");
            let drop = p1 - p2;
            let min = (t2 - t1).as_millis() as i64 - 1;
            let max = (t3 - t0).as_millis() as i64 + 1;
            assert!(
                (min..=max).contains(&drop),
                "{shards} shards, {k}: PTTL went {p1} -> {p2}, expected a drop in {min}..={max}"
            );
            // TTL rounds to the nearest second.
            let ttl = raw.cmd(&["TTL", k]).int();
            let p3 = raw.cmd(&["PTTL", k]).int();
            assert!(
                (ttl - (p3 + 500) / 1000).abs() <= 1,
                "TTL {ttl} vs PTTL {p3}"
            );
            // PEXPIRETIME is fixed.
            let a = raw.cmd(&["PEXPIRETIME", k]).int();
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(raw.cmd(&["PEXPIRETIME", k]).int(), a);
        }
        let ttl = raw.cmds("TTL sec").int();
        assert!(ttl == 100 || ttl == 99, "TTL {ttl}");
        // A key that expires is gone right after its time.
        raw.cmds("SET soon v PX 100");
        assert_eq!(raw.cmds("EXISTS soon").int(), 1);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(raw.cmds("EXISTS soon").int(), 0);
        assert_eq!(raw.cmds("PTTL soon").int(), -2);
    }
}

/// RENAME, RENAMENX, COPY and MOVE between every pair of shards keep the value
/// (and its encoding) and the exact expiry time, and leave the source as they should.
#[test]
fn rename_copy_move_across_shards_keep_value_and_ttl() {
    for shards in SHARDS {
        let server = Server::percore(shards, &[]);
        let mut raw = server.raw();
        let src = key_per_shard("src", shards.max(4));
        let dst = key_per_shard("dst", shards.max(4));
        let big = "x".repeat(1000);
        let values = ["hello", "12345", big.as_str(), "-7"];
        let mut n = 0;
        for (i, s) in src.iter().enumerate() {
            for (j, d) in dst.iter().enumerate() {
                let v = values[(i + j) % values.len()];
                let at = 32_503_680_000_000i64 + n;
                n += 1;
                raw.cmd(&["SET", s, v]);
                raw.cmd(&["PEXPIREAT", s, &at.to_string()]);
                let enc = raw.cmd(&["OBJECT", "ENCODING", s]);
                assert_eq!(raw.cmd(&["RENAME", s, d]), Resp::Simple(b"OK".to_vec()));
                let ctx = format!("{shards} shards, {s} -> {d}");
                assert_eq!(raw.cmd(&["EXISTS", s]).int(), 0, "{ctx}");
                assert_eq!(raw.cmd(&["GET", d]), Resp::bulk(v), "{ctx}");
                assert_eq!(raw.cmd(&["PEXPIRETIME", d]).int(), at, "{ctx}");
                assert_eq!(raw.cmd(&["OBJECT", "ENCODING", d]), enc, "{ctx}");
                // Back with RENAMENX (the source name is free again).
                assert_eq!(raw.cmd(&["RENAMENX", d, s]).int(), 1, "{ctx}");
                assert_eq!(raw.cmd(&["PEXPIRETIME", s]).int(), at, "{ctx}");
                // RENAMENX onto an existing key changes nothing.
                raw.cmd(&["SET", d, "occupied"]);
                assert_eq!(raw.cmd(&["RENAMENX", s, d]).int(), 0, "{ctx}");
                assert_eq!(raw.cmd(&["GET", d]), Resp::bulk("occupied"));
                assert_eq!(raw.cmd(&["TTL", d]).int(), -1);
                // COPY: without REPLACE refused, with it the value and TTL are copied.
                assert_eq!(raw.cmd(&["COPY", s, d]).int(), 0, "{ctx}");
                assert_eq!(raw.cmd(&["COPY", s, d, "REPLACE"]).int(), 1, "{ctx}");
                assert_eq!(raw.cmd(&["GET", d]), Resp::bulk(v), "{ctx}");
                assert_eq!(raw.cmd(&["PEXPIRETIME", d]).int(), at, "{ctx}");
                assert_eq!(raw.cmd(&["GET", s]), Resp::bulk(v), "{ctx}");
                // COPY into another database, then MOVE back over a deleted name.
                assert_eq!(raw.cmd(&["COPY", s, d, "DB", "1"]).int(), 1, "{ctx}");
                raw.cmd(&["DEL", d]);
                assert_eq!(raw.cmd(&["SELECT", "1"]), Resp::Simple(b"OK".to_vec()));
                assert_eq!(raw.cmd(&["PEXPIRETIME", d]).int(), at, "{ctx}");
                assert_eq!(raw.cmd(&["MOVE", d, "0"]).int(), 1, "{ctx}");
                assert_eq!(raw.cmd(&["EXISTS", d]).int(), 0);
                raw.cmd(&["SELECT", "0"]);
                assert_eq!(raw.cmd(&["GET", d]), Resp::bulk(v), "{ctx}");
                assert_eq!(raw.cmd(&["PEXPIRETIME", d]).int(), at, "{ctx}");
                // A destination with a TTL loses it to a source without one.
                raw.cmd(&["PERSIST", s]);
                assert_eq!(raw.cmd(&["RENAME", s, d]), Resp::Simple(b"OK".to_vec()));
                assert_eq!(raw.cmd(&["PEXPIRETIME", d]).int(), -1, "{ctx}");
                raw.cmd(&["DEL", s, d]);
            }
        }
        assert_eq!(raw.cmds("DBSIZE").int(), 0);
        raw.cmds("SELECT 1");
        assert_eq!(raw.cmds("DBSIZE").int(), 0);
        // Short TTLs survive a cross-shard RENAME and still expire.
        raw.cmds("SELECT 0");
        for (s, d) in src.iter().zip(dst.iter().rev()) {
            raw.cmd(&["SET", s, "v", "PX", "200"]);
            raw.cmd(&["RENAME", s, d]);
            let p = raw.cmd(&["PTTL", d]).int();
            assert!(p > 0 && p <= 200, "PTTL {p}");
        }
        std::thread::sleep(Duration::from_millis(250));
        for d in &dst {
            assert_eq!(raw.cmd(&["EXISTS", d]).int(), 0);
        }
    }
}
