//! Concurrency invariants of multi-shard work on 4 shards with many clients, each bounded in time:
//! (a) MULTI/EXEC transfers keep the total while MGET readers never see half a transfer;
//! (b) WATCH-based optimistic increments never lose an update;
//! (d) RENAME across shards never shows both or neither key;
//! plus MSET/MSETNX atomicity across shards.

mod common;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{shard_of, Raw, Resp, Rng, Server};

const SHARDS: usize = 4;
/// How long each workload runs.
const RUN: Duration = Duration::from_secs(3);

/// `n` keys `prefix<i>`, picked so that they cover every shard (round-robin).
fn spread_keys(prefix: &str, n: usize) -> Vec<String> {
    let mut by_shard: Vec<Vec<String>> = vec![Vec::new(); SHARDS];
    let mut i = 0;
    while by_shard.iter().map(|v| v.len()).min().unwrap_or(0) < n.div_ceil(SHARDS) {
        let k = format!("{prefix}{i}");
        by_shard[shard_of(&k, SHARDS)].push(k);
        i += 1;
    }
    (0..n)
        .map(|j| by_shard[j % SHARDS][j / SHARDS].clone())
        .collect()
}

fn int_of(r: &Resp) -> i64 {
    match r {
        Resp::Bulk(Some(b)) => String::from_utf8_lossy(b).parse().expect("an integer"),
        Resp::Int(i) => *i,
        other => panic!("not a number: {other:?}"),
    }
}

/// Sends `lines` pipelined and reads one reply per line.
fn pipeline(c: &mut Raw, lines: &[Vec<String>]) -> Vec<Resp> {
    let mut w = Vec::new();
    for l in lines {
        w.extend(common::encode(l));
    }
    c.send(&w);
    lines.iter().map(|_| c.read()).collect()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn transfers_keep_the_total_and_readers_never_see_half() {
    let server = Server::percore(SHARDS, &[]);
    let accounts = spread_keys("acct:", 8);
    let initial = 1000i64;
    let total = initial * accounts.len() as i64;
    let mut c = server.raw();
    for a in &accounts {
        c.cmd(&["SET", a, &initial.to_string()]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let transfers = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..6u64 {
        let (mut c, accounts, stop, transfers) = (
            server.raw(),
            accounts.clone(),
            stop.clone(),
            transfers.clone(),
        );
        handles.push(thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
            while !stop.load(Ordering::Relaxed) {
                let a = rng.below(accounts.len() as u64) as usize;
                let b = (a + 1 + rng.below(accounts.len() as u64 - 1) as usize) % accounts.len();
                let amt = (rng.below(50) + 1).to_string();
                let r = pipeline(
                    &mut c,
                    &[
                        words("MULTI"),
                        vec!["DECRBY".into(), accounts[a].clone(), amt.clone()],
                        vec!["INCRBY".into(), accounts[b].clone(), amt],
                        words("EXEC"),
                    ],
                );
                assert_eq!(r[3].items().len(), 2, "EXEC reply {:?}", r[3]);
                transfers.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in 0..4u64 {
        let (mut c, accounts, stop, reads) =
            (server.raw(), accounts.clone(), stop.clone(), reads.clone());
        handles.push(thread::spawn(move || {
            let mut mget = vec!["MGET".to_string()];
            mget.extend(accounts.iter().cloned());
            while !stop.load(Ordering::Relaxed) {
                let values = if t % 2 == 0 {
                    c.cmd(&mget)
                } else {
                    let r = pipeline(&mut c, &[words("MULTI"), mget.clone(), words("EXEC")]);
                    r[2].items()[0].clone()
                };
                let sum: i64 = values.items().iter().map(int_of).sum();
                assert_eq!(sum, total, "a reader saw a partial transfer: {values:?}");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("no thread failed");
    }
    let mut mget = vec!["MGET".to_string()];
    mget.extend(accounts.iter().cloned());
    let sum: i64 = c.cmd(&mget).items().iter().map(int_of).sum();
    assert_eq!(sum, total);
    assert!(transfers.load(Ordering::Relaxed) > 50, "transfers ran");
    assert!(reads.load(Ordering::Relaxed) > 50, "reads ran");
}

#[test]
fn watch_increments_never_lose_an_update() {
    let server = Server::percore(SHARDS, &[]);
    let keys = spread_keys("ctr:", 2);
    let mut c = server.raw();
    c.cmd(&["MSET", &keys[0], "0", &keys[1], "0"]);
    let threads = 8u64;
    let per_thread = 60i64;
    let retries = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (mut c, keys, retries) = (server.raw(), keys.clone(), retries.clone());
        handles.push(thread::spawn(move || {
            let mut done = 0;
            while done < per_thread && Instant::now() < deadline {
                c.cmd(&["WATCH", &keys[0], &keys[1]]);
                let v = c.cmd(&["MGET", &keys[0], &keys[1]]);
                let (a, b) = (int_of(&v.items()[0]), int_of(&v.items()[1]));
                assert_eq!(a, b, "both counters move together");
                let r = pipeline(
                    &mut c,
                    &[
                        words("MULTI"),
                        vec!["SET".into(), keys[0].clone(), (a + 1).to_string()],
                        vec!["SET".into(), keys[1].clone(), (b + 1).to_string()],
                        words("EXEC"),
                    ],
                );
                match &r[3] {
                    Resp::Array(Some(_)) => done += 1,
                    Resp::Array(None) | Resp::Null => {
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("EXEC replied {other:?}"),
                }
            }
            done
        }));
    }
    let done: i64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    let v = c.cmd(&["MGET", &keys[0], &keys[1]]);
    assert_eq!(int_of(&v.items()[0]), done, "no lost update");
    assert_eq!(int_of(&v.items()[1]), done, "no lost update");
    assert_eq!(done, threads as i64 * per_thread, "finished in time");
}

#[test]
fn rename_across_shards_never_shows_both_or_neither() {
    let server = Server::percore(SHARDS, &[]);
    let pair = spread_keys("ren:", 2);
    assert_ne!(shard_of(&pair[0], SHARDS), shard_of(&pair[1], SHARDS));
    let mut c = server.raw();
    c.cmd(&["SET", &pair[0], "v"]);
    let stop = Arc::new(AtomicBool::new(false));
    let renames = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    {
        let (mut c, pair, stop, renames) =
            (server.raw(), pair.clone(), stop.clone(), renames.clone());
        handles.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(
                    c.cmd(&["RENAME", &pair[0], &pair[1]]),
                    Resp::Simple(b"OK".to_vec())
                );
                assert_eq!(
                    c.cmd(&["RENAME", &pair[1], &pair[0]]),
                    Resp::Simple(b"OK".to_vec())
                );
                renames.fetch_add(2, Ordering::Relaxed);
            }
            0
        }));
    }
    for t in 0..4 {
        let (mut c, pair, stop) = (server.raw(), pair.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match t % 3 {
                    0 => {
                        let r = c.cmd(&["EXISTS", &pair[0], &pair[1]]);
                        assert_eq!(r, Resp::Int(1), "EXISTS of both names");
                    }
                    1 => {
                        let r = c.cmd(&["MGET", &pair[0], &pair[1]]);
                        let live = r.items().iter().filter(|v| **v != Resp::Bulk(None)).count();
                        assert_eq!(live, 1, "MGET of both names: {r:?}");
                    }
                    _ => {
                        let r = pipeline(
                            &mut c,
                            &[
                                words("MULTI"),
                                vec!["EXISTS".into(), pair[0].clone()],
                                vec!["EXISTS".into(), pair[1].clone()],
                                words("EXEC"),
                            ],
                        );
                        let n: i64 = r[3].items().iter().map(int_of).sum();
                        assert_eq!(n, 1, "EXISTS of each name in one MULTI");
                    }
                }
                n += 1;
            }
            n
        }));
    }
    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("no thread failed");
    }
    assert!(renames.load(Ordering::Relaxed) > 20, "renames ran");
    let r = c.cmd(&["EXISTS", &pair[0], &pair[1]]);
    assert_eq!(r, Resp::Int(1));
}

#[test]
fn mset_and_msetnx_are_atomic_across_shards() {
    let server = Server::percore(SHARDS, &[]);
    // MSET of one value to keys on every shard vs MGET readers: never mixed.
    let keys = spread_keys("ms:", 8);
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..3u64 {
        let (mut c, keys, stop) = (server.raw(), keys.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let v = format!("{t}-{i}");
                let mut cmd = vec!["MSET".to_string()];
                for k in &keys {
                    cmd.push(k.clone());
                    cmd.push(v.clone());
                }
                c.cmd(&cmd);
                i += 1;
            }
        }));
    }
    for _ in 0..3 {
        let (mut c, keys, stop) = (server.raw(), keys.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            let mut cmd = vec!["MGET".to_string()];
            cmd.extend(keys.iter().cloned());
            while !stop.load(Ordering::Relaxed) {
                let r = c.cmd(&cmd);
                let first = &r.items()[0];
                assert!(
                    r.items().iter().all(|v| v == first),
                    "mixed MSETs seen: {r:?}"
                );
            }
        }));
    }
    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("no thread failed");
    }

    // MSETNX races on the same keys (one per shard): exactly one winner per round,
    // and every key holds the winner's value.
    let mut c = server.raw();
    let rounds = 150;
    let racers = 4;
    let mut handles = Vec::new();
    for t in 0..racers {
        let mut c = server.raw();
        handles.push(thread::spawn(move || {
            let mut wins = Vec::new();
            for round in 0..rounds {
                let keys = spread_keys(&format!("nx{round}:"), SHARDS);
                let mut cmd = vec!["MSETNX".to_string()];
                for k in &keys {
                    cmd.push(k.clone());
                    cmd.push(t.to_string());
                }
                if c.cmd(&cmd) == Resp::Int(1) {
                    wins.push(round);
                }
            }
            wins
        }));
    }
    let mut winners = vec![Vec::new(); rounds];
    for (t, h) in handles.into_iter().enumerate() {
        for round in h.join().expect("thread") {
            winners[round].push(t);
        }
    }
    for (round, w) in winners.iter().enumerate() {
        assert_eq!(w.len(), 1, "round {round}: winners {w:?}");
        let keys = spread_keys(&format!("nx{round}:"), SHARDS);
        let mut cmd = vec!["MGET".to_string()];
        cmd.extend(keys);
        let r = c.cmd(&cmd);
        assert!(
            r.items()
                .iter()
                .all(|v| *v == Resp::bulk(&w[0].to_string())),
            "round {round}: {r:?}"
        );
    }
}

#[test]
fn smove_across_shards_is_seen_whole_by_sunion() {
    let server = Server::percore(SHARDS, &[]);
    let sets = spread_keys("set:", 2);
    let mut c = server.raw();
    c.cmd(&["SADD", &sets[0], "x", "y"]);
    c.cmd(&["SADD", &sets[1], "z"]);
    let stop = Arc::new(AtomicBool::new(false));
    let moves = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    {
        let (mut c, sets, stop, moves) = (server.raw(), sets.clone(), stop.clone(), moves.clone());
        handles.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(c.cmd(&["SMOVE", &sets[0], &sets[1], "x"]), Resp::Int(1));
                assert_eq!(c.cmd(&["SMOVE", &sets[1], &sets[0], "x"]), Resp::Int(1));
                moves.fetch_add(2, Ordering::Relaxed);
            }
        }));
    }
    for _ in 0..3 {
        let (mut c, sets, stop) = (server.raw(), sets.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = c.cmd(&["SUNION", &sets[0], &sets[1]]);
                assert_eq!(r.items().len(), 3, "SUNION saw half an SMOVE: {r:?}");
            }
        }));
    }
    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("no thread failed");
    }
    assert!(moves.load(Ordering::Relaxed) > 20, "moves ran");
}
