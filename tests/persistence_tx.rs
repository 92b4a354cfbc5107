//! Multi-shard transactions after a crash: all or nothing.
//!
//! appendfsync always, 4 shards; writers run cross-shard transfers (MULTI/EXEC
//! with DECRBY/INCRBY on keys of different shards, the same as an EVAL
//! script) and MSETs of triples that must stay equal, each on keys of three
//! shards; the server is killed with SIGKILL at random moments. After each
//! restart: the sum of the balances is unchanged, every MSET triple is
//! equal, and every acknowledged write is there.
//!
//! Each shard logs its own part of a transaction; without the loader's rule
//! (a part is applied only when every shard's part is complete) a crash
//! between two shards' writes leaves half a transfer.
//!
//! Also: BGSAVE during such transactions takes one cut across the shards
//! (each dump, loaded by redis-server, holds every transaction whole or not).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, shard_of, Raw, Resp};

const SHARDS: usize = 4;
const ACCOUNTS: usize = 8;
const WRITERS: usize = 6;
const START_BALANCE: i64 = 1000;

/// The first key `prefix:N` that lives on `shard`.
fn key_on(prefix: &str, shard: usize) -> String {
    (0..)
        .map(|n| format!("{prefix}:{n}"))
        .find(|k| shard_of(k, SHARDS) == shard)
        .expect("a key")
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Proc {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("percore.log")).unwrap_or_default()
    }
}

fn start(dir: &Path) -> Proc {
    let port = free_port();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("percore.log"))
        .expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["--port", &port.to_string(), "--shards", &SHARDS.to_string()])
        .args(["--pin-cores", "no", "--save", ""])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .current_dir(dir)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start percore");
    let mut p = Proc {
        child,
        port,
        dir: dir.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!("server exited early ({st}): {}", p.log());
        }
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            drop(s);
            let mut c = Raw::connect(port);
            if c.cmd(&["PING"]).text() == "PONG" {
                return p;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server did not start: {}", p.log());
}

fn lcg(x: &mut u64) -> u64 {
    *x = x
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *x >> 33
}

/// A writer's keys: its MSET triple and its operation counter, on three shards.
#[derive(Clone)]
struct WriterKeys {
    triple: [String; 3],
    ops: String,
}

fn writer_keys(w: usize) -> WriterKeys {
    let s = w % SHARDS;
    WriterKeys {
        triple: [
            key_on(&format!("pa{w}"), s),
            key_on(&format!("pb{w}"), (s + 1) % SHARDS),
            key_on(&format!("seq{w}"), (s + 2) % SHARDS),
        ],
        ops: key_on(&format!("ops{w}"), (s + 3) % SHARDS),
    }
}

/// What a writer had acknowledged, and tried.
#[derive(Clone, Copy, Default, Debug)]
struct Progress {
    /// Transfers acknowledged (each also INCRs the writer's ops key).
    ops_acked: i64,
    /// Transfers sent (acknowledged or not).
    ops_sent: i64,
    /// Last MSET value acknowledged.
    mset_acked: i64,
    /// Last MSET value sent.
    mset_sent: i64,
}

const TRANSFER: &str = "redis.call('DECRBY', KEYS[1], ARGV[1]) \
     redis.call('INCRBY', KEYS[2], ARGV[1]) \
     return redis.call('INCR', KEYS[3])";

/// One writer until the server dies or `stop`: transfers (MULTI/EXEC and
/// EVAL) between accounts on different shards, MSETs of its triple.
#[allow(clippy::too_many_arguments)]
fn writer(
    port: u16,
    round: usize,
    w: usize,
    accounts: Vec<String>,
    keys: WriterKeys,
    progress: Arc<Mutex<Vec<Progress>>>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let Ok(mut c) = std::panic::catch_unwind(|| Raw::connect(port)) else {
        return;
    };
    let mut seed = seed;
    // MSET values grow across rounds.
    let mut i = round as u64 * 1_000_000;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let a = lcg(&mut seed) as usize % ACCOUNTS;
        let mut b = lcg(&mut seed) as usize % ACCOUNTS;
        while shard_of(&accounts[b], SHARDS) == shard_of(&accounts[a], SHARDS) {
            b = (b + 1) % ACCOUNTS;
        }
        let amount = (1 + lcg(&mut seed) % 50).to_string();
        let (from, to) = (&accounts[a], &accounts[b]);
        match i % 3 {
            0 => {
                progress.lock().unwrap()[w].ops_sent += 1;
                for cmd in [
                    vec!["MULTI"],
                    vec!["DECRBY", from, &amount],
                    vec!["INCRBY", to, &amount],
                    vec!["INCR", &keys.ops],
                    vec!["EXEC"],
                ] {
                    c.send_cmd(&cmd);
                }
                let mut replies = Vec::new();
                for _ in 0..5 {
                    match c.try_read() {
                        Some(r) => replies.push(r),
                        None => return,
                    }
                }
                let Resp::Array(Some(items)) = &replies[4] else {
                    panic!("EXEC: {:?}", replies[4]);
                };
                assert_eq!(items.len(), 3, "EXEC replies {items:?}");
                progress.lock().unwrap()[w].ops_acked += 1;
            }
            1 => {
                progress.lock().unwrap()[w].ops_sent += 1;
                c.send_cmd(&["EVAL", TRANSFER, "3", from, to, &keys.ops, &amount]);
                let Some(r) = c.try_read() else { return };
                assert!(!r.is_error(), "EVAL: {r:?}");
                progress.lock().unwrap()[w].ops_acked += 1;
            }
            _ => {
                let v = i as i64;
                progress.lock().unwrap()[w].mset_sent = v;
                let v = v.to_string();
                let [x, y, z] = &keys.triple;
                c.send_cmd(&["MSET", x, &v, y, &v, z, &v]);
                let Some(r) = c.try_read() else { return };
                assert_eq!(r, Resp::Simple(b"OK".to_vec()), "MSET");
                progress.lock().unwrap()[w].mset_acked = i as i64;
            }
        }
    }
}

fn int_of(r: Resp) -> i64 {
    match r {
        Resp::Bulk(None) => 0,
        r => r.text().parse().expect("an integer"),
    }
}

/// The invariants, after a restart.
fn check(p: &Proc, round: usize, accounts: &[String], progress: &[Progress]) {
    let mut c = Raw::connect(p.port);
    let sum: i64 = accounts.iter().map(|a| int_of(c.cmd(&["GET", a]))).sum();
    assert_eq!(
        sum,
        START_BALANCE * ACCOUNTS as i64,
        "round {round}: the balances do not add up (half a transfer was loaded)"
    );
    for (w, pr) in progress.iter().enumerate() {
        let keys = writer_keys(w);
        let vals: Vec<i64> = keys
            .triple
            .iter()
            .map(|k| int_of(c.cmd(&["GET", k])))
            .collect();
        assert!(
            vals.iter().all(|v| *v == vals[0]),
            "round {round}: writer {w}'s MSET triple differs: {vals:?} (half an MSET was loaded)"
        );
        assert!(
            vals[0] >= pr.mset_acked && vals[0] <= pr.mset_sent.max(pr.mset_acked),
            "round {round}: writer {w}'s MSET value {} outside acknowledged {} .. sent {}",
            vals[0],
            pr.mset_acked,
            pr.mset_sent
        );
        let ops = int_of(c.cmd(&["GET", &keys.ops]));
        assert!(
            ops >= pr.ops_acked && ops <= pr.ops_sent,
            "round {round}: writer {w}: {ops} transfers in the data, {} acknowledged, {} sent",
            pr.ops_acked,
            pr.ops_sent
        );
    }
}

#[test]
fn cross_shard_transactions_all_or_nothing_after_kill_9() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("percore-tx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let dir = Dir(dir);
    // Two accounts per shard.
    let accounts: Vec<String> = (0..ACCOUNTS)
        .map(|i| key_on(&format!("acc{i}"), i % SHARDS))
        .collect();
    let progress = Arc::new(Mutex::new(vec![Progress::default(); WRITERS]));
    let mut p = start(&dir.0);
    {
        let mut c = Raw::connect(p.port);
        let mut mset = vec!["MSET".to_string()];
        for a in &accounts {
            mset.push(a.clone());
            mset.push(START_BALANCE.to_string());
        }
        assert_eq!(c.cmd(&mset).text(), "OK");
    }
    let mut seed = 0x5eed_u64;
    let rounds = 4;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (port, accounts, keys, progress, stop) = (
                    p.port,
                    accounts.clone(),
                    writer_keys(w),
                    progress.clone(),
                    stop.clone(),
                );
                let s = lcg(&mut seed);
                std::thread::spawn(move || {
                    writer(port, round, w, accounts, keys, progress, stop, s)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400 + lcg(&mut seed) % 1200));
        // kill -9
        let _ = p.child.kill();
        let _ = p.child.wait();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("writer");
        }
        p = start(&dir.0);
        let pr = progress.lock().unwrap().clone();
        check(&p, round, &accounts, &pr);
        eprintln!("round {round}: {pr:?}");
    }
    let pr = progress.lock().unwrap().clone();
    let acked: i64 = pr.iter().map(|p| p.ops_acked).sum();
    assert!(acked > 0, "no transfer acknowledged");
    let dropped = p
        .log()
        .matches("multi-shard transaction(s) were incomplete")
        .count();
    eprintln!(
        "{rounds} kills: {acked} transfers acknowledged, all present; loads that dropped incomplete transactions: {dropped}; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// A running percore without AOF, for BGSAVE.
fn start_plain(dir: &Path) -> Proc {
    let port = free_port();
    let log = std::fs::File::create(dir.join("percore.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_percore"))
        .args(["--port", &port.to_string(), "--shards", &SHARDS.to_string()])
        .args(["--pin-cores", "no", "--save", ""])
        .current_dir(dir)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start percore");
    let p = Proc {
        child,
        port,
        dir: dir.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server did not start: {}", p.log());
}

/// BGSAVE while writers run MULTI/EXEC over keys of different shards
/// (transfers and equal pairs): every dump, loaded by redis-server, holds
/// each transaction whole or not at all.
#[test]
fn bgsave_cut_is_consistent_across_shards() {
    let dir = std::env::temp_dir().join(format!("percore-txsave-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let dir = Dir(dir);
    let p = start_plain(&dir.0);
    let accounts: Vec<String> = (0..ACCOUNTS)
        .map(|i| key_on(&format!("acc{i}"), i % SHARDS))
        .collect();
    {
        let mut c = Raw::connect(p.port);
        let mut mset = vec!["MSET".to_string()];
        for a in &accounts {
            mset.push(a.clone());
            mset.push(START_BALANCE.to_string());
        }
        assert_eq!(c.cmd(&mset).text(), "OK");
        // Some bulk so that each shard's part of a dump takes a while.
        for i in 0..20_000 {
            c.send_cmd(&["SET", &format!("bulk:{i}"), "x"]);
        }
        for _ in 0..20_000 {
            c.read();
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (port, accounts, keys, stop) =
                (p.port, accounts.clone(), writer_keys(w), stop.clone());
            std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                let mut seed = w as u64 + 1;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let a = lcg(&mut seed) as usize % ACCOUNTS;
                    let b = (a + 1 + lcg(&mut seed) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                    let v = i.to_string();
                    let [x, y, z] = &keys.triple;
                    // Pipelined: several transactions in flight per writer.
                    for cmd in [
                        vec!["MULTI"],
                        vec!["DECRBY", &accounts[a], "3"],
                        vec!["INCRBY", &accounts[b], "3"],
                        vec!["EXEC"],
                        vec!["MULTI"],
                        vec!["SET", x, &v],
                        vec!["SET", y, &v],
                        vec!["SET", z, &v],
                        vec!["EXEC"],
                    ] {
                        c.send_cmd(&cmd);
                    }
                    for _ in 0..9 {
                        assert!(!c.read().is_error());
                    }
                }
            })
        })
        .collect();
    let mut c = Raw::connect(p.port);
    let saves = 6;
    for n in 0..saves {
        std::thread::sleep(Duration::from_millis(100));
        let before = c.cmds("INFO persistence").text();
        let count = |info: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix("rdb_saves:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        assert_eq!(c.cmds("BGSAVE").text(), "Background saving started");
        let deadline = Instant::now() + Duration::from_secs(30);
        while count(&c.cmds("INFO persistence").text()) == count(&before) {
            assert!(Instant::now() < deadline, "BGSAVE never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
        let copy = dir.0.join(format!("dump{n}"));
        std::fs::create_dir_all(&copy).expect("dir");
        std::fs::copy(dir.0.join("dump.rdb"), copy.join("dump.rdb")).expect("copy");
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    for n in 0..saves {
        let r = common::Server::redis(&["--dir", dir.0.join(format!("dump{n}")).to_str().unwrap()]);
        let mut c = r.raw();
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.cmds("PING").is_error() {
            assert!(Instant::now() < deadline, "redis-server never loaded");
            std::thread::sleep(Duration::from_millis(20));
        }
        let sum: i64 = accounts.iter().map(|a| int_of(c.cmd(&["GET", a]))).sum();
        assert_eq!(
            sum,
            START_BALANCE * ACCOUNTS as i64,
            "dump {n}: half a transfer in the dump"
        );
        for w in 0..WRITERS {
            let keys = writer_keys(w);
            let vals: Vec<i64> = keys
                .triple
                .iter()
                .map(|k| int_of(c.cmd(&["GET", k])))
                .collect();
            assert!(
                vals.iter().all(|v| *v == vals[0]),
                "dump {n}: writer {w}'s triple differs: {vals:?}"
            );
        }
    }
}
