//! AOF persistence: round trips through kill -9 and restarts (1 and 4 shards,
//! every type), appendfsync always crash safety (every acknowledged write
//! survives kill -9), the everysec loss window (measured), truncated and
//! corrupted files, and the manifest layout.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::persist::{percore, refused, serial, Dir, Proc};
use common::{Raw, Resp};

const AOF: &[&str] = &["--appendonly", "yes", "--save", ""];

/// (db, key) -> (value, OBJECT ENCODING, PEXPIRETIME).
type Contents = BTreeMap<(usize, Vec<u8>), (Vec<u8>, String, i64)>;
fn contents(p: &Proc, dbs: usize) -> Contents {
    let mut c = p.raw();
    let mut out = Contents::new();
    for db in 0..dbs {
        assert_eq!(c.cmd(&["SELECT", &db.to_string()]).text(), "OK");
        let keys = match c.cmds("KEYS *") {
            Resp::Array(Some(keys)) => keys,
            other => panic!("KEYS: {other:?}"),
        };
        for k in keys {
            let Resp::Bulk(Some(k)) = k else {
                panic!("key")
            };
            let v = value_of(&mut c, &k);
            let enc = c.cmd(&[&b"OBJECT"[..], b"ENCODING", &k]).text();
            let exp = c.cmd(&[&b"PEXPIRETIME"[..], &k]).int();
            out.insert((db, k), (v, enc, exp));
        }
    }
    out
}

/// A key's value as comparable bytes, whatever its type.
fn value_of(c: &mut Raw, k: &[u8]) -> Vec<u8> {
    let t = c.cmd(&[&b"TYPE"[..], k]).text();
    let flat = |r: Resp| -> Vec<Vec<u8>> {
        let Resp::Array(Some(v)) = r else {
            panic!("{r:?}")
        };
        v.into_iter()
            .map(|x| match x {
                Resp::Bulk(Some(b)) => b,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let mut out = t.clone().into_bytes();
    out.push(b':');
    match t.as_str() {
        "string" => match c.cmd(&[&b"GET"[..], k]) {
            Resp::Bulk(Some(v)) => out.extend(v),
            other => panic!("GET {k:?}: {other:?}"),
        },
        "hash" => {
            let f = flat(c.cmd(&[&b"HGETALL"[..], k]));
            let mut pairs: Vec<Vec<u8>> = f
                .chunks(2)
                .map(|p| [&p[0][..], b"=", &p[1][..]].concat())
                .collect();
            pairs.sort();
            out.extend(pairs.join(&b"\n"[..]));
        }
        "list" => out.extend(flat(c.cmd(&[&b"LRANGE"[..], k, b"0", b"-1"])).join(&b"\n"[..])),
        "set" => {
            let mut m = flat(c.cmd(&[&b"SMEMBERS"[..], k]));
            m.sort();
            out.extend(m.join(&b"\n"[..]));
        }
        "zset" => {
            let f = flat(c.cmd(&[&b"ZRANGE"[..], k, b"0", b"-1", b"WITHSCORES"]));
            out.extend(f.join(&b"\n"[..]));
        }
        other => panic!("type {other} of {k:?} not compared yet"),
    }
    out
}

fn lcg(x: &mut u64) -> u64 {
    *x = x
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *x >> 33
}

/// Writes strings of every encoding and RDB string form, keys with TTLs, several dbs.
fn fill(p: &Proc) {
    let mut c = p.raw();
    let mut seed = 42u64;
    let random: Vec<u8> = (0..1000).map(|_| lcg(&mut seed) as u8).collect();
    let far = 4_000_000_000_000i64; // year 2096, in ms
    for db in [0usize, 1, 5, 15] {
        assert_eq!(c.cmd(&["SELECT", &db.to_string()]).text(), "OK");
        let vals: Vec<(String, Vec<u8>)> = vec![
            ("i0".into(), b"0".to_vec()),
            ("ineg".into(), b"-1".to_vec()),
            ("i127".into(), b"127".to_vec()),
            ("i128".into(), b"128".to_vec()),
            ("i16".into(), b"-32768".to_vec()),
            ("i32".into(), b"40000".to_vec()),
            ("imax32".into(), b"2147483647".to_vec()),
            ("ibig".into(), b"2147483648".to_vec()),
            ("imin".into(), b"-9223372036854775808".to_vec()),
            ("imax".into(), b"9223372036854775807".to_vec()),
            ("lead0".into(), b"007".to_vec()),
            ("plus".into(), b"+5".to_vec()),
            ("float".into(), b"3.14".to_vec()),
            ("empty".into(), b"".to_vec()),
            ("hello".into(), b"hello".to_vec()),
            ("emb44".into(), vec![b'e'; 44]),
            ("raw45".into(), vec![b'r'; 45]),
            ("s20".into(), b"abcdefghijabcdefghij".to_vec()),
            ("s21".into(), vec![b'a'; 21]),
            ("lzf".into(), b"0123456789".repeat(100)),
            ("random".into(), random.clone()),
            ("bin\0\u{ff}key".into(), b"\0\x01\x02\xff".to_vec()),
            ("k".repeat(300), b"long key".to_vec()),
            (format!("db{db}"), db.to_string().into_bytes()),
        ];
        for (k, v) in &vals {
            assert_eq!(c.cmd(&[b"SET", k.as_bytes(), &v[..]]).text(), "OK");
        }
        // Hashes: listpack, hashtable by size and by value length, with a TTL.
        let mut h = vec!["HSET".to_string(), "hash:small".into()];
        for i in 0..10 {
            h.push(format!("f{i}"));
            h.push(if i % 2 == 0 {
                i.to_string()
            } else {
                format!("v{i}")
            });
        }
        c.cmd(&h);
        let mut h = vec!["HSET".to_string(), "hash:big".into()];
        for i in 0..600 {
            h.push(format!("field:{i}"));
            h.push(format!("{}", i * 7));
        }
        c.cmd(&h);
        c.cmd(&["HSET", "hash:longval", "f", &"L".repeat(100), "g", "1"]);
        c.cmd(&["HSET", "hash:ttl", "a", "1"]);
        c.cmd(&["PEXPIREAT", "hash:ttl", &far.to_string()]);
        // Lists: one node, several nodes, a big element; sets: intset, hashtable, big intset.
        c.cmd(&[
            "RPUSH",
            "list:small",
            "a",
            "1",
            "-2",
            "300",
            "70000",
            "hello",
        ]);
        let mut l = vec!["RPUSH".to_string(), "list:big".into()];
        for i in 0..3000 {
            l.push(if i % 2 == 0 {
                i.to_string()
            } else {
                format!("element-{i}")
            });
        }
        c.cmd(&l);
        c.cmd(&["LPUSH", "list:huge-elem", &"H".repeat(20_000), "x"]);
        c.cmd(&["SADD", "set:int", "1", "-5", "70000", "3000000000"]);
        c.cmd(&["SADD", "set:str", "a", "b", "1", "hello world"]);
        let mut st = vec!["SADD".to_string(), "set:bigint".into()];
        for i in 0..600 {
            st.push((i * 3).to_string());
        }
        c.cmd(&st);
        // Sorted sets: listpack, skiplist by size and by member length, odd scores.
        c.cmd(&[
            "ZADD",
            "zset:small",
            "1",
            "a",
            "-2.5",
            "b",
            "3e100",
            "c",
            "inf",
            "d",
            "-inf",
            "e",
            "0",
            "f",
        ]);
        let mut z = vec!["ZADD".to_string(), "zset:big".into()];
        for i in 0..300 {
            z.push(format!("{}", i as f64 / 7.0));
            z.push(format!("m{i}"));
        }
        c.cmd(&z);
        c.cmd(&["ZADD", "zset:longmember", "1", &"M".repeat(100)]);
        c.cmd(&["SADD", "set:ttl", "x"]);
        c.cmd(&["PEXPIREAT", "set:ttl", &far.to_string()]);
        // raw by APPEND, short.
        assert_eq!(c.cmds("APPEND appended ab").int(), 2);
        for (i, k) in ["ttl1", "ttl2", "ttl3"].iter().enumerate() {
            let at = (far + i as i64 * 1000).to_string();
            assert_eq!(c.cmd(&["SET", k, "v", "PXAT", &at]).text(), "OK");
        }
        for i in 0..300 {
            let k = format!("bulk:{i}");
            let v = if i % 3 == 0 {
                i.to_string()
            } else {
                format!("value-{i}-{}", "z".repeat(i % 60))
            };
            c.send_cmd(&["SET", &k, &v]);
        }
        for _ in 0..300 {
            assert_eq!(c.read().text(), "OK");
        }
    }
}

/// The contents as redis-server would hold them: encodings are the same
/// rules, so compare everything.
fn assert_same(a: &Contents, b: &Contents, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: key counts differ");
    for (k, va) in a {
        match b.get(k) {
            Some(vb) => assert_eq!(va, vb, "{what}: key {:?} differs", k),
            None => panic!("{what}: key {k:?} missing"),
        }
    }
}

/// Writes whose logging is rewritten (time, chance, several shards, blocking).
fn rewritten_writes(p: &Proc) {
    let mut c = p.raw();
    for line in [
        "SET ex:1 v EX 1000",
        "SET px:1 v PX 5000000",
        "SETEX ex:2 1000 v",
        "PSETEX ex:3 1000000 v",
        "SET ex:4 v",
        "EXPIRE ex:4 1000",
        "SET ex:5 v",
        "PEXPIRE ex:5 1000000",
        "SET ex:6 v EX 100",
        "PERSIST ex:6",
        "SET ex:7 v",
        "GETEX ex:7 EX 500",
        "SET gone:1 v",
        "EXPIRE gone:1 -1",
        "SET f:1 10.5",
        "INCRBYFLOAT f:1 0.1",
        "INCRBYFLOAT f:2 3.25",
        "SADD sp:1 a b c d e f g h",
        "SPOP sp:1",
        "SPOP sp:1 3",
        "SADD sp:2 1 2",
        "SPOP sp:2 10",
        "MSET m:a 1 m:b 2 m:c 3 m:d 4 m:e 5",
        "DEL m:a m:b",
        "RENAME m:c m:renamed",
        "RPUSH bl:1 x y z",
        "BLPOP bl:1 0",
        "BRPOP bl:1 bl:none 0",
        "LMOVE bl:1 moved:1 LEFT RIGHT",
        "SADD sm:1 a b",
        "SMOVE sm:1 sm:2 a",
        "ZADD zp:1 1 a 2 b 3 c",
        "ZPOPMIN zp:1",
        "INCR counter",
        "INCRBY counter 41",
        "APPEND app hello",
        "SETRANGE app 10 world",
        "HINCRBYFLOAT hf:1 f 1.5",
        "SELECT 3",
        "SET in3 x",
        "SET flushme y",
        "SELECT 4",
        "SET in4 x",
        "SWAPDB 3 4",
        "SELECT 7",
        "SET gone7 x",
        "FLUSHDB",
        "SELECT 0",
    ] {
        let r = c.cmds(line);
        assert!(!r.is_error(), "{line}: {r:?}");
    }
    // A blocked client served by a later push.
    let port = p.port;
    let t = std::thread::spawn(move || Raw::connect(port).cmds("BLPOP waited:1 10"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.cmds("RPUSH waited:1 a b").int(), 2);
    assert!(!t.join().expect("blpop").is_error());
    // MULTI/EXEC across shards.
    for line in ["MULTI", "SET tx:a 1", "SET tx:b 2", "INCR tx:c", "DEL m:d"] {
        c.cmds(line);
    }
    assert!(!c.cmds("EXEC").is_error());
}

fn round_trip(shards: usize) {
    let _s = serial();
    let dir = Dir::new("rt");
    let mut p = percore(&dir.0, shards, AOF);
    fill(&p);
    rewritten_writes(&p);
    let before = contents(&p, 16);
    p.crash();
    // The manifest uses Redis's names with one shard, `.s<N>` suffixes with several.
    let manifest =
        std::fs::read_to_string(dir.aofdir().join("appendonly.aof.manifest")).expect("manifest");
    if shards == 1 {
        assert_eq!(manifest, "file appendonly.aof.1.incr.aof seq 1 type i\n");
    } else {
        assert!(
            manifest.contains("file appendonly.aof.1.incr.aof.s3 seq 1 type i\n"),
            "{manifest}"
        );
    }
    for round in 0..2 {
        let mut q = percore(&dir.0, shards, AOF);
        let after = contents(&q, 16);
        assert_same(
            &before,
            &after,
            &format!("{shards} shards, restart {round}"),
        );
        assert!(q
            .raw()
            .cmds("INFO persistence")
            .text()
            .contains("aof_enabled:1"));
        if round == 0 {
            q.crash();
        } else {
            q.raw().send_cmd(&["SHUTDOWN", "NOSAVE"]);
            assert!(q.wait_exit(Duration::from_secs(30)).is_some());
        }
    }
    let manifest =
        std::fs::read_to_string(dir.aofdir().join("appendonly.aof.manifest")).expect("manifest");
    assert!(manifest.contains(" seq 3 type i"), "{manifest}");
}

#[test]
fn round_trip_one_shard() {
    round_trip(1);
}

#[test]
fn round_trip_four_shards() {
    round_trip(4);
}

/// Per writer thread: (acknowledged INCR value, acknowledged SET indexes).
type Acked = Arc<Mutex<BTreeMap<usize, (i64, Vec<u64>)>>>;

/// appendfsync always: writers record every acknowledged write; kill -9 at
/// random moments; after each restart every acknowledged write is there.
#[test]
fn always_survives_kill_9() {
    let _s = serial();
    for shards in [1, 4] {
        let dir = Dir::new("always");
        let args = [
            "--appendonly",
            "yes",
            "--save",
            "",
            "--appendfsync",
            "always",
        ];
        let mut seed = 7u64 + shards as u64;
        // thread -> (acknowledged INCR count, acknowledged SET indexes).
        let acked: Acked = Arc::default();
        for kill in 0..2 {
            let mut p = percore(&dir.0, shards, &args);
            // Everything acknowledged before is still there.
            {
                let mut c = p.raw();
                for (t, (n, sets)) in acked.lock().unwrap().iter() {
                    let v = c.cmd(&["GET", &format!("ctr:{{{t}}}")]);
                    let got: i64 = if matches!(v, Resp::Bulk(None)) {
                        0
                    } else {
                        v.text().parse().unwrap()
                    };
                    assert!(
                        got >= *n,
                        "{shards} shards, kill {kill}: counter {t} = {got} < acknowledged {n}"
                    );
                    for i in sets.iter().rev().take(200) {
                        let v = c.cmd(&["GET", &format!("set:{t}:{i}")]);
                        assert_eq!(
                            v,
                            Resp::bulk(&i.to_string()),
                            "{shards} shards: SET {t}:{i} acknowledged, lost"
                        );
                    }
                }
            }
            let stop = Arc::new(AtomicBool::new(false));
            let mut threads = Vec::new();
            for t in 0..4usize {
                let (stop, acked, port) = (stop.clone(), acked.clone(), p.port);
                threads.push(std::thread::spawn(move || {
                    let Ok(mut c) = std::panic::catch_unwind(|| Raw::connect(port)) else {
                        return;
                    };
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        // Pipelined pair: the replies are read after both are sent.
                        c.send_cmd(&["INCR", &format!("ctr:{{{t}}}")]);
                        c.send_cmd(&["SET", &format!("set:{t}:{i}"), &i.to_string()]);
                        let (Some(a), Some(b)) = (c.try_read(), c.try_read()) else {
                            return;
                        };
                        if a.is_error() || b.is_error() {
                            return;
                        }
                        let mut m = acked.lock().unwrap();
                        let e = m.entry(t).or_default();
                        e.0 = a.int();
                        e.1.push(i);
                    }
                }));
            }
            std::thread::sleep(Duration::from_millis(300 + lcg(&mut seed) % 700));
            p.crash();
            stop.store(true, Ordering::Relaxed);
            for t in threads {
                let _ = t.join();
            }
        }
        let p = percore(&dir.0, shards, &args);
        let mut c = p.raw();
        let m = acked.lock().unwrap();
        let total: usize = m.values().map(|v| v.1.len()).sum();
        assert!(total > 0, "no write acknowledged");
        for (t, (n, sets)) in m.iter() {
            let got: i64 = c
                .cmd(&["GET", &format!("ctr:{{{t}}}")])
                .text()
                .parse()
                .unwrap();
            assert!(got >= *n, "counter {t} = {got} < {n}");
            for i in sets {
                assert_eq!(
                    c.cmd(&["GET", &format!("set:{t}:{i}")]),
                    Resp::bulk(&i.to_string())
                );
            }
        }
        eprintln!("appendfsync always, {shards} shard(s): {total} acknowledged SET+INCR pairs over 2 kills, none lost");
    }
}

/// appendfsync everysec: the acknowledged writes lost by kill -9 span at most ~1 s (measured).
#[test]
fn everysec_loss_window() {
    let _s = serial();
    let dir = Dir::new("everysec");
    let args = [
        "--appendonly",
        "yes",
        "--save",
        "",
        "--appendfsync",
        "everysec",
    ];
    let p0 = percore(&dir.0, 2, &args);
    let mut p = p0;
    let mut c = p.raw();
    let start = Instant::now();
    let mut acks: Vec<(u64, Duration)> = Vec::new();
    let mut i = 0u64;
    while start.elapsed() < Duration::from_millis(2500) {
        i += 1;
        assert_eq!(c.cmd(&["SET", &format!("seq:{i}"), "x"]).text(), "OK");
        acks.push((i, start.elapsed()));
    }
    let killed_at = start.elapsed();
    p.crash();
    let q = percore(&dir.0, 2, &args);
    let mut c = q.raw();
    let last_kept = acks
        .iter()
        .rev()
        .find(|(i, _)| c.cmd(&["EXISTS", &format!("seq:{i}")]).int() == 1)
        .map(|(_, t)| *t)
        .unwrap_or_default();
    let lost = acks.iter().filter(|(_, t)| *t > last_kept).count();
    let window = killed_at.saturating_sub(last_kept);
    eprintln!(
        "appendfsync everysec: {lost} of {} acknowledged writes lost by kill -9, loss window {:.3} s",
        acks.len(),
        window.as_secs_f64()
    );
    assert!(
        window < Duration::from_millis(2000),
        "loss window {window:?}"
    );
}

/// The logical end of a file written with direct I/O: before the zero padding.
fn logical(data: &[u8]) -> &[u8] {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &data[..end]
}

#[test]
fn truncated_and_corrupted_files() {
    let _s = serial();
    let dir = Dir::new("bad");
    let mut p = percore(&dir.0, 1, AOF);
    {
        let mut c = p.raw();
        for i in 0..50 {
            c.cmd(&["SET", &format!("k{i}"), &format!("v{i}")]);
        }
    }
    p.raw().send_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert!(p.wait_exit(Duration::from_secs(30)).is_some());
    let file = dir.aofdir().join("appendonly.aof.1.incr.aof");
    let data = std::fs::read(&file).expect("incr file");
    let good = logical(&data).to_vec();
    // A clean shutdown cuts the file to its logical size: no padding left.
    assert_eq!(data.len(), good.len());
    assert!(
        good.ends_with(b"$3\r\nv49\r\n"),
        "{:?}",
        String::from_utf8_lossy(&good[good.len() - 20..])
    );
    // A record cut short at the end, then direct-I/O style zero padding.
    let mut cut = good.clone();
    cut.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$3\r\nk50\r\n$3\r\nv5");
    cut.extend([0u8; 300]);
    std::fs::write(&file, &cut).unwrap();
    let log = refused(
        &dir.0,
        1,
        &[
            "--appendonly",
            "yes",
            "--save",
            "",
            "--aof-load-truncated",
            "no",
        ],
    );
    assert!(
        log.contains(&format!("Unexpected end of file reading the append only file appendonly.aof.1.incr.aof at offset {}", good.len())),
        "{log}"
    );
    let q = percore(&dir.0, 1, AOF);
    assert!(
        q.log()
            .contains(&format!("at offset {}) is incomplete", good.len())),
        "{}",
        q.log()
    );
    assert_eq!(q.raw().cmds("DBSIZE").int(), 50);
    assert_eq!(q.raw().cmds("GET k49").text(), "v49");
    drop(q);
    // A corrupt record in the middle: refused, naming file and offset.
    let mut bad = good.clone();
    let second = bad
        .windows(7)
        .position(|w| w == b"\r\n*3\r\n$")
        .expect("record")
        + 2;
    bad[second] = b'?';
    std::fs::write(&file, &bad).unwrap();
    let log = refused(&dir.0, 1, AOF);
    assert!(
        log.contains(&format!("Bad file format reading the append only file appendonly.aof.1.incr.aof at offset {second}")),
        "{log}"
    );
    // Zeros then data (padding is only ever at the end): corrupt too.
    let mut holes = good.clone();
    holes.extend([0u8; 10]);
    holes.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    std::fs::write(&file, &holes).unwrap();
    let log = refused(&dir.0, 1, AOF);
    assert!(log.contains(&format!("at offset {}", good.len())), "{log}");
    // A manifest written with another shard count is refused.
    std::fs::write(&file, &good).unwrap();
    let log = refused(&dir.0, 2, AOF);
    assert!(log.contains("different number of shards"), "{log}");
}

fn wait_rewrite(p: &Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = p.raw().cmds("INFO persistence").text();
        if info.contains("aof_rewrite_in_progress:0") && !info.contains("aof_rewrites:0\r") {
            return;
        }
        assert!(Instant::now() < deadline, "rewrite never finished: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// BGREWRITEAOF while clients write (always and everysec): nothing is lost,
/// the manifest then lists base + new incr files only, old files are gone.
#[test]
fn bgrewriteaof_while_writing_keeps_everything() {
    let _s = serial();
    for (shards, fsync) in [(1, "always"), (4, "everysec")] {
        let dir = Dir::new("rewrite");
        let args = ["--appendonly", "yes", "--save", "", "--appendfsync", fsync];
        let mut p = percore(&dir.0, shards, &args);
        fill(&p);
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for t in 0..3 {
            let (stop, port) = (stop.clone(), p.port);
            writers.push(std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    assert!(!c
                        .cmd(&["RPUSH", &format!("w:{t}"), &i.to_string()])
                        .is_error());
                    assert!(!c.cmd(&["INCR", &format!("n:{t}")]).is_error());
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            p.raw().cmds("BGREWRITEAOF").text(),
            "Background append only file rewriting started"
        );
        wait_rewrite(&p);
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        let before = contents(&p, 16);
        let info = p.raw().cmds("INFO persistence").text();
        assert!(
            info.contains("aof_rewrites:1\r\n") && info.contains("aof_last_bgrewrite_status:ok"),
            "{info}"
        );
        // everysec: give the background sync its second.
        std::thread::sleep(Duration::from_millis(1200));
        p.crash();
        let manifest =
            std::fs::read_to_string(dir.aofdir().join("appendonly.aof.manifest")).unwrap();
        let files: Vec<String> = std::fs::read_dir(dir.aofdir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".manifest"))
            .collect();
        assert_eq!(files.len(), 2 * shards, "{files:?}\n{manifest}");
        if shards == 1 {
            // aof-use-rdb-preamble yes (the default): an RDB base, Redis 7's name.
            assert_eq!(
                manifest,
                "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
            );
        }
        let q = percore(&dir.0, shards, &args);
        assert_same(
            &before,
            &contents(&q, 16),
            &format!("after BGREWRITEAOF, {shards} shards, {fsync}"),
        );
    }
}

/// auto-aof-rewrite-percentage / min-size start a rewrite by themselves.
#[test]
fn auto_rewrite() {
    let _s = serial();
    let dir = Dir::new("auto");
    let args = [
        "--appendonly",
        "yes",
        "--save",
        "",
        "--auto-aof-rewrite-min-size",
        "20kb",
        "--auto-aof-rewrite-percentage",
        "100",
    ];
    let mut p = percore(&dir.0, 2, &args);
    let mut c = p.raw();
    for i in 0..400 {
        c.cmd(&["SET", &format!("k{}", i % 50), &"v".repeat(100)]);
    }
    wait_rewrite(&p);
    let before = contents(&p, 1);
    p.raw().send_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert!(p.wait_exit(Duration::from_secs(30)).is_some());
    assert!(
        p.log().contains("Starting automatic rewriting of AOF"),
        "{}",
        p.log()
    );
    let q = percore(&dir.0, 2, &args);
    assert_same(&before, &contents(&q, 1), "after an automatic rewrite");
}

/// Blocked clients served later (BLMOVE to a key on the same shard and on
/// another, BLPOP, BZPOPMIN): what serving them changed is in the AOF.
#[test]
fn served_later_blocking_commands_are_logged() {
    let _s = serial();
    let dir = Dir::new("served");
    let args = [AOF, &["--appendfsync", "always"][..]].concat();
    let mut p = percore(&dir.0, 4, &args);
    // Blocked first, served by a later push from another client.
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["BLMOVE", "{t}src", "{t}dst", "LEFT", "RIGHT", "0"],
            &["RPUSH", "{t}src", "a", "b"],
        ),
        (
            // src:x on shard 0, dst:z on shard 3.
            &["BLMOVE", "src:x", "dst:z", "RIGHT", "LEFT", "0"],
            &["RPUSH", "src:x", "c", "d"],
        ),
        (&["BLPOP", "lp", "0"], &["RPUSH", "lp", "e", "f"]),
        (
            &["BZPOPMIN", "zp", "0"],
            &["ZADD", "zp", "1", "m", "2", "n"],
        ),
    ];
    for (block, push) in cases {
        let mut waiter = p.raw();
        waiter.send_cmd(block);
        // The waiter is registered before the push (BLOCKED_CLIENTS in INFO).
        let mut c = p.raw();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = c.cmds("INFO clients").text();
            if info.contains("blocked_clients:1") {
                break;
            }
            assert!(Instant::now() < deadline, "never blocked: {info}");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!c.cmd(push).is_error());
        assert!(!waiter.read().is_error());
    }
    let before = contents(&p, 1);
    p.crash();
    let p = percore(&dir.0, 4, &args);
    let after = contents(&p, 1);
    assert_same(&before, &after, "after kill -9");
    let mut c = p.raw();
    assert_eq!(
        c.cmds("LRANGE {t}dst 0 -1"),
        Resp::Array(Some(vec![Resp::bulk("a")]))
    );
    assert_eq!(
        c.cmds("LRANGE dst:z 0 -1"),
        Resp::Array(Some(vec![Resp::bulk("d")]))
    );
    assert_eq!(
        c.cmds("LRANGE lp 0 -1"),
        Resp::Array(Some(vec![Resp::bulk("f")]))
    );
    assert_eq!(
        c.cmds("ZRANGE zp 0 -1"),
        Resp::Array(Some(vec![Resp::bulk("n")]))
    );
}

/// aof-use-rdb-preamble yes and no: BGREWRITEAOF writes each shard's base as
/// RDB (`.base.rdb`, manifest type b) or as commands; a restart loads the
/// base then the incr files; every type survives, with 1 and 4 shards.
/// With one shard, redis-check-aof accepts the directory and redis-server
/// loads it to the same contents.
#[test]
fn hybrid_rewrite_round_trip() {
    let _s = serial();
    for shards in [1, 4] {
        for preamble in ["yes", "no"] {
            let what = format!("{shards} shard(s), aof-use-rdb-preamble {preamble}");
            let dir = Dir::new("hybrid");
            let args = [AOF, &["--aof-use-rdb-preamble", preamble][..]].concat();
            let mut p = percore(&dir.0, shards, &args);
            let mut c = p.raw();
            assert_eq!(
                c.cmds("CONFIG GET aof-use-rdb-preamble"),
                Resp::Array(Some(vec![
                    Resp::bulk("aof-use-rdb-preamble"),
                    Resp::bulk(preamble)
                ])),
            );
            fill(&p);
            assert_eq!(
                c.cmds("BGREWRITEAOF").text(),
                "Background append only file rewriting started"
            );
            wait_rewrite(&p);
            // Written after the rewrite: in the new incr files.
            rewritten_writes(&p);
            let before = contents(&p, 16);
            let manifest =
                std::fs::read_to_string(dir.aofdir().join("appendonly.aof.manifest")).unwrap();
            let ext = if preamble == "yes" { "rdb" } else { "aof" };
            for s in 0..shards {
                let name = if shards == 1 {
                    format!("appendonly.aof.1.base.{ext}")
                } else {
                    format!("appendonly.aof.1.base.{ext}.s{s}")
                };
                assert!(
                    manifest.contains(&format!("file {name} seq 1 type b\n")),
                    "{what}: {manifest}"
                );
                let head = std::fs::read(dir.aofdir().join(&name)).unwrap();
                assert_eq!(
                    head.starts_with(b"REDIS"),
                    preamble == "yes",
                    "{what}: {name}"
                );
            }
            p.crash();
            let mut q = percore(&dir.0, shards, &args);
            assert_same(
                &before,
                &contents(&q, 16),
                &format!("{what}, after kill -9"),
            );
            // A second rewrite from a hybrid start, then a clean shutdown.
            assert!(!q.raw().cmds("BGREWRITEAOF").is_error());
            wait_rewrite(&q);
            q.raw().send_cmd(&["SHUTDOWN", "NOSAVE"]);
            assert!(q.wait_exit(Duration::from_secs(30)).is_some());
            let q = percore(&dir.0, shards, &args);
            // Now every key comes from the base: a string APPEND made raw
            // loads as embstr, as Redis loads it from an RDB.
            let second = contents(&q, 16);
            assert_same(
                &loaded_encodings(&before),
                &second,
                &format!("{what}, second rewrite"),
            );
            drop(q);
            if shards == 1 {
                let out = Command::new("redis-check-aof")
                    .arg(dir.aofdir().join("appendonly.aof.manifest"))
                    .output()
                    .expect("redis-check-aof");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(text.contains("is valid"), "{what}: redis-check-aof: {text}");
                let r = common::Server::redis(&[
                    "--dir",
                    dir.0.to_str().unwrap(),
                    "--appendonly",
                    "yes",
                ]);
                // Its PING answers -LOADING until the files are loaded.
                let deadline = Instant::now() + Duration::from_secs(20);
                while r.raw().cmds("PING").is_error() {
                    assert!(Instant::now() < deadline, "redis-server never loaded");
                    std::thread::sleep(Duration::from_millis(20));
                }
                let theirs = contents_of(r.port, 16);
                assert_same(&second, &theirs, &format!("{what}, loaded by redis-server"));
            }
        }
    }
}

/// The encodings keys get when loaded from a file: short raw strings are embstr.
fn loaded_encodings(c: &Contents) -> Contents {
    c.iter()
        .map(|(k, (v, enc, exp))| {
            let short = v.len() <= "string:".len() + 44;
            let enc = if enc == "raw" && v.starts_with(b"string:") && short {
                "embstr".to_string()
            } else {
                enc.clone()
            };
            (k.clone(), (v.clone(), enc, *exp))
        })
        .collect()
}

/// `contents` of any server on `port`.
fn contents_of(port: u16, dbs: usize) -> Contents {
    let p = Proc {
        child: Command::new("true").spawn().expect("a placeholder child"),
        port,
        dir: PathBuf::new(),
    };
    contents(&p, dbs)
}

/// BGREWRITEAOF does not stop the shards: while 20 clients write (strings,
/// counters, lists, cross-shard MSETs), the base is serialized in background
/// slices from one cut on every shard and new writes go to the new incr
/// files; after kill -9 the data equals what the clients were acknowledged.
#[test]
fn rewrite_while_twenty_clients_write() {
    let _s = serial();
    let dir = Dir::new("rw20");
    let args = [AOF, &["--appendfsync", "always"][..]].concat();
    let mut p = percore(&dir.0, 4, &args);
    fill(&p);
    // Enough keys that the walker needs many slices.
    {
        let mut c = p.raw();
        for i in 0..20_000 {
            c.send_cmd(&["SET", &format!("big:{i}"), &format!("value-{i}")]);
        }
        for _ in 0..20_000 {
            assert_eq!(c.read().text(), "OK");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(Mutex::new(Duration::ZERO));
    let mut writers = Vec::new();
    for t in 0..20usize {
        let (stop, port, worst) = (stop.clone(), p.port, worst.clone());
        writers.push(std::thread::spawn(move || {
            let mut c = Raw::connect(port);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                let v = i.to_string();
                assert_eq!(c.cmd(&["RPUSH", &format!("l:{t}"), &v]).int(), i as i64);
                assert_eq!(c.cmd(&["INCR", &format!("n:{t}")]).int(), i as i64);
                // Overwrites keys the walker may not have reached yet.
                let k = format!("big:{}", (t as u64 * 997 + i * 31) % 20_000);
                assert_eq!(c.cmd(&["SET", &k, &format!("{t}-{i}")]).text(), "OK");
                let (a, b) = (format!("pa:{t}"), format!("pb:{t}"));
                assert_eq!(c.cmd(&["MSET", &a, &v, &b, &v]).text(), "OK");
                let took = started.elapsed();
                let mut w = worst.lock().unwrap();
                *w = (*w).max(took);
            }
            i
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(
        p.raw().cmds("BGREWRITEAOF").text(),
        "Background append only file rewriting started"
    );
    wait_rewrite(&p);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<u64> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    let before = contents(&p, 16);
    p.crash();
    let q = percore(&dir.0, 4, &args);
    let after = contents(&q, 16);
    assert_same(
        &before,
        &after,
        "after a rewrite under 20 writers and kill -9",
    );
    let mut c = q.raw();
    for (t, n) in counts.iter().enumerate() {
        assert_eq!(c.cmd(&["GET", &format!("n:{t}")]).text(), n.to_string());
        assert_eq!(c.cmd(&["LLEN", &format!("l:{t}")]).int(), *n as i64);
        let a = c.cmd(&["GET", &format!("pa:{t}")]);
        assert_eq!(a, c.cmd(&["GET", &format!("pb:{t}")]));
    }
    eprintln!(
        "rewrite of {} keys under 20 writers: {:.3} s, {} write rounds, slowest round {:?} ({} build)",
        before.len(),
        took.as_secs_f64(),
        counts.iter().sum::<u64>(),
        *worst.lock().unwrap(),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
}

/// CONFIG SET appendonly yes at run time: every shard starts logging and a
/// rewrite writes the base from the dataset; a restart from the AOF after
/// kill -9 has everything. appendonly no closes the logs: writes after it
/// leave the files alone.
#[test]
fn config_set_appendonly_at_run_time() {
    let _s = serial();
    for shards in [1, 4] {
        let dir = Dir::new("cfgaof");
        let mut p = percore(&dir.0, shards, &["--save", ""]);
        fill(&p);
        let mut c = p.raw();
        assert_eq!(c.cmds("CONFIG SET appendonly yes").text(), "OK");
        assert_eq!(
            c.cmds("CONFIG GET appendonly"),
            Resp::Array(Some(vec![Resp::bulk("appendonly"), Resp::bulk("yes")]))
        );
        wait_rewrite(&p);
        assert!(c.cmds("INFO persistence").text().contains("aof_enabled:1"));
        rewritten_writes(&p);
        let before = contents(&p, 16);
        p.crash();
        let manifest =
            std::fs::read_to_string(dir.aofdir().join("appendonly.aof.manifest")).unwrap();
        assert!(manifest.contains(" type b\n"), "{manifest}");
        let mut q = percore(&dir.0, shards, AOF);
        assert_same(
            &before,
            &contents(&q, 16),
            &format!("{shards} shards, after CONFIG SET appendonly yes"),
        );
        // Off: the logs are closed; later writes do not reach the files.
        let mut c = q.raw();
        assert_eq!(c.cmds("CONFIG SET appendonly no").text(), "OK");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c.cmds("INFO persistence").text().contains("aof_enabled:0") {
            assert!(Instant::now() < deadline, "the AOF never turned off");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        let sizes = |d: &Dir| -> Vec<(String, u64)> {
            let mut v: Vec<(String, u64)> = std::fs::read_dir(d.aofdir())
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().unwrap().len(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let files = sizes(&dir);
        for i in 0..200 {
            assert_eq!(c.cmd(&["SET", &format!("after-off:{i}"), "v"]).text(), "OK");
        }
        assert_eq!(
            files,
            sizes(&dir),
            "{shards} shards: the AOF changed after appendonly no"
        );
        q.crash();
    }
}

/// No core serves clients before every shard has loaded. Keys are routed to
/// their shard (a command waits for it), but function libraries are global
/// and load with shard 0's log: a connection on a core that finished loading
/// first must not see them missing. All keys go to shard 0 (one hash tag),
/// ahead of the library in its log, so the other cores finish long before.
#[test]
fn no_client_sees_a_partial_load() {
    let _s = serial();
    let dir = Dir::new("partial");
    let args = [AOF, &["--appendfsync", "no"][..]].concat();
    let tag = (0..)
        .map(|i| format!("{{t{i}}}"))
        .find(|t| percore::server::exec::shard_of_key(t.as_bytes(), 4) == 0)
        .expect("a tag on shard 0");
    let mut p = percore(&dir.0, 4, &args);
    let mut c = p.raw();
    let (batches, per) = (400, 1000);
    for b in 0..batches {
        let mut argv = vec!["MSET".to_string()];
        for i in 0..per {
            argv.push(format!("{tag}k{}", b * per + i));
            argv.push("v".into());
        }
        assert_eq!(c.cmd(&argv).text(), "OK");
    }
    let lib = "#!lua name=late\nredis.register_function('late', function() return 1 end)";
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", lib]), Resp::bulk("late"));
    // A clean shutdown writes everything out (appendfsync no).
    c.send_cmd(&["SHUTDOWN"]);
    assert!(p.wait_exit(Duration::from_secs(30)).is_some());
    for round in 0..2 {
        let mut q = percore(&dir.0, 4, &args);
        // Several fresh connections: SO_REUSEPORT spreads them over the cores.
        for _ in 0..4 {
            let mut c = q.raw();
            assert_eq!(
                c.cmds("FCALL late 0"),
                Resp::Int(1),
                "round {round}: {}",
                q.log()
            );
            assert_eq!(c.cmds("DBSIZE"), Resp::Int((batches * per) as i64));
        }
        q.crash();
    }
}

/// appendfsync always: a write made while a rewrite's base is being written
/// is acknowledged then, not once the base is done. (The log's switch to its
/// new file queued its truncate behind the wait for the base writers, so
/// every `always` reply stalled for the whole rewrite.)
#[test]
fn always_replies_during_a_rewrite() {
    let _s = serial();
    let dir = Dir::new("always-rewrite");
    let args = [
        "--appendonly",
        "yes",
        "--save",
        "",
        "--appendfsync",
        "always",
        "--rdbcompression",
        "no",
    ];
    let p = percore(&dir.0, 1, &args);
    // Enough data that writing the base takes a while.
    let mut c = p.raw();
    fill_bulk(&mut c, 400);
    assert_eq!(
        c.cmds("BGREWRITEAOF").text(),
        "Background append only file rewriting started"
    );
    assert!(!c.cmds("SET during rewrite").is_error());
    let info = c.cmds("INFO persistence").text();
    assert!(
        info.contains("aof_rewrite_in_progress:1"),
        "the SET was answered only after the rewrite: {info}"
    );
    wait_rewrite(&p);
    assert_eq!(c.cmds("GET during").text(), "rewrite");
}

/// Sets `thousands` thousand keys of 200 bytes, pipelined.
fn fill_bulk(c: &mut Raw, thousands: usize) {
    let value = "v".repeat(200);
    for chunk in 0..thousands {
        let mut batch = Vec::new();
        for i in 0..1000 {
            let k = format!("key:{}", chunk * 1000 + i);
            batch.extend_from_slice(&common::encode(&["SET", &k, &value]));
        }
        c.send(&batch);
        for _ in 0..1000 {
            assert!(!c.read().is_error());
        }
    }
}

/// BGREWRITEAOF during a BGSAVE is scheduled, as Redis: INFO shows
/// aof_rewrite_scheduled:1 (not in progress), asking again is not an error,
/// and the rewrite runs once the save is done.
#[test]
fn bgrewriteaof_during_bgsave_is_scheduled() {
    let _s = serial();
    let dir = Dir::new("scheduled");
    let args = [
        "--appendonly",
        "yes",
        "--save",
        "",
        "--rdbcompression",
        "no",
    ];
    let p = percore(&dir.0, 2, &args);
    let mut c = p.raw();
    fill_bulk(&mut c, 200);
    // One write: the save cannot be over before the rewrite is asked for.
    let mut batch = Vec::new();
    for cmd in [
        &["BGSAVE"][..],
        &["BGREWRITEAOF"],
        &["BGREWRITEAOF"],
        &["INFO", "persistence"],
    ] {
        batch.extend_from_slice(&common::encode(cmd));
    }
    c.send(&batch);
    assert_eq!(c.read().text(), "Background saving started");
    for _ in 0..2 {
        assert_eq!(
            c.read().text(),
            "Background append only file rewriting scheduled"
        );
    }
    let info = c.read().text();
    assert!(
        info.contains("aof_rewrite_scheduled:1\r\n")
            && info.contains("aof_rewrite_in_progress:0\r\n"),
        "{info}"
    );
    wait_rewrite(&p);
    let info = c.cmds("INFO persistence").text();
    assert!(
        info.contains("aof_rewrite_scheduled:0\r\n")
            && info.contains("aof_rewrites:1\r\n")
            && info.contains("aof_rewrites_consecutive_failures:0\r\n")
            && info.contains("rdb_last_bgsave_status:ok"),
        "{info}"
    );
}

/// An AOF directory written by redis-server with aof-timestamp-enabled (its
/// incr file holds `#TS:` annotation lines between commands) loads into
/// percore with the same contents.
#[test]
fn redis_aof_with_timestamp_annotations_loads() {
    let _s = serial();
    let dir = Dir::new("redis-ts");
    let r = common::Server::redis(&[
        "--dir",
        dir.0.to_str().unwrap(),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--aof-timestamp-enabled",
        "yes",
    ]);
    let mut c = r.raw();
    for line in [
        "SET n 10",
        "INCR n",
        "SET s hello",
        "HSET h f1 v1 f2 v2",
        "RPUSH l a b c",
        "SADD st x y",
        "ZADD z 1 one 2 two",
        "SET e v EX 1000",
        "SELECT 3",
        "SET in3 yes",
    ] {
        assert!(!c.cmds(line).is_error(), "{line}");
    }
    // A second annotation: Redis writes one when the second changes.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(!c.cmds("APPEND s _world").is_error());
    let theirs = contents_of(r.port, 16);
    drop(c);
    drop(r);
    let incr = std::fs::read(dir.aofdir().join("appendonly.aof.1.incr.aof")).unwrap();
    let annotations = incr
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"#TS:"))
        .count();
    assert!(annotations >= 2, "{}", String::from_utf8_lossy(&incr));
    let p = percore(&dir.0, 1, AOF);
    assert_same(
        &theirs,
        &contents(&p, 16),
        "redis-written AOF with annotations",
    );
}

/// appendfsync switched at run time (always, everysec, no, ...) while
/// clients write through pipelines on 4 shards: no reply waits forever on a
/// sync that a switch left behind, and once back in `always` an
/// acknowledged write (and so everything before it in its shard's log)
/// survives kill -9.
#[test]
fn appendfsync_switched_while_writing() {
    let _s = serial();
    let dir = Dir::new("switch");
    let args = [AOF, &["--appendfsync", "always"][..]].concat();
    let mut p = percore(&dir.0, 4, &args);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..6usize {
        let (stop, port) = (stop.clone(), p.port);
        writers.push(std::thread::spawn(move || {
            let mut c = Raw::connect(port);
            let key = format!("sw:{t}");
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..8 {
                    c.send_cmd(&["INCR", &key]);
                }
                for _ in 0..8 {
                    last = c.try_read().expect("a reply within 30 s").int();
                }
            }
            last
        }));
    }
    let mut c = p.raw();
    let started = Instant::now();
    for mode in ["everysec", "no", "always"].iter().cycle() {
        assert_eq!(c.cmd(&["CONFIG", "SET", "appendfsync", mode]).text(), "OK");
        std::thread::sleep(Duration::from_millis(30));
        if *mode == "always" && started.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut expect = Vec::new();
    for (t, w) in writers.into_iter().enumerate() {
        let last = w.join().expect("writer");
        assert!(last > 0, "writer {t} got no reply");
        // Acknowledged under `always`.
        let n = c.cmd(&["INCR", &format!("sw:{t}")]).int();
        assert_eq!(n, last + 1);
        expect.push(n);
    }
    drop(c);
    p.crash();
    let q = percore(&dir.0, 4, &args);
    let mut c = q.raw();
    for (t, n) in expect.iter().enumerate() {
        assert_eq!(
            c.cmd(&["GET", &format!("sw:{t}")]),
            Resp::bulk(&n.to_string()),
            "sw:{t} after kill -9"
        );
    }
}

/// aof-timestamp-enabled: a `#TS:<unix time>` line before the first record
/// of each new second, none while it is off, one at the start of an
/// AOF-format rewrite base; the files load back, redis-check-aof accepts
/// them, and CONFIG GET/SET answer as redis-server does.
#[test]
fn aof_timestamp_annotations() {
    let _s = serial();
    let r = common::Server::redis(&[]);
    let dir = Dir::new("ts");
    let args = [
        AOF,
        &[
            "--aof-timestamp-enabled",
            "yes",
            "--aof-use-rdb-preamble",
            "no",
            "--appendfsync",
            "always",
        ][..],
    ]
    .concat();
    let p = percore(&dir.0, 1, &args);
    let mut c = p.raw();
    let mut rc = r.raw();
    for line in [
        "CONFIG SET aof-timestamp-enabled maybe",
        "CONFIG SET aof-timestamp-enabled yes",
        "CONFIG GET aof-timestamp-enabled",
    ] {
        assert_eq!(c.cmds(line), rc.cmds(line), "{line}");
    }
    let secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = secs();
    let incr_file = dir.aofdir().join("appendonly.aof.1.incr.aof");
    let stamps = |path: &PathBuf| -> Vec<u64> {
        let data = std::fs::read(path).unwrap();
        data.split(|&b| b == b'\n')
            .filter_map(|l| l.strip_prefix(b"#TS:"))
            .map(|t| String::from_utf8_lossy(t).trim_end().parse().unwrap())
            .collect()
    };
    assert_eq!(c.cmds("SET a 1").text(), "OK");
    assert_eq!(c.cmds("SET b 2").text(), "OK");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(c.cmds("SET c 3").text(), "OK");
    assert_eq!(c.cmds("CONFIG SET aof-timestamp-enabled no").text(), "OK");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(c.cmds("SET d 4").text(), "OK");
    let ts = stamps(&incr_file);
    assert_eq!(ts.len(), 2, "{ts:?}");
    assert!(start <= ts[0] && ts[0] < ts[1] && ts[1] <= secs(), "{ts:?}");
    assert!(std::fs::read(&incr_file).unwrap().starts_with(b"#TS:"));
    assert_eq!(c.cmds("CONFIG SET aof-timestamp-enabled yes").text(), "OK");
    assert!(!c.cmds("BGREWRITEAOF").is_error());
    wait_rewrite(&p);
    let base = dir.aofdir().join("appendonly.aof.1.base.aof");
    assert!(std::fs::read(&base).unwrap().starts_with(b"#TS:"));
    assert_eq!(c.cmds("SET e 5").text(), "OK");
    let before = contents(&p, 16);
    drop(c);
    drop(p); // kill -9: with appendfsync always every acknowledged write is there
    let q = percore(&dir.0, 1, &args);
    assert_same(&before, &contents(&q, 16), "after restart");
    drop(q);
    let out = Command::new("redis-check-aof")
        .arg(dir.aofdir().join("appendonly.aof.manifest"))
        .output()
        .expect("redis-check-aof");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("is valid"), "redis-check-aof: {text}");
}
