//! Scripts that run keyed (locking only their declared KEYS, once seen to
//! touch nothing else) and then reach an undeclared key after writing: the
//! keyed run is rolled back and rerun globally, so the reply and the data
//! equal redis-server's (see `server::tx::UndoLog`). Also: blocked clients
//! are served after the EXEC or script that made their key ready, as Redis.

mod common;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{one_per_shard, Cmp, Diff, Resp, Server};

const SHARDS: usize = 4;

/// Runs `f` with a fresh diff against percore on 4 shards.
fn diff(f: impl Fn(&mut Diff)) {
    let redis = Server::redis(&[]);
    let percore = Server::percore(SHARDS, &[]);
    let mut d = Diff::new(&redis, &percore);
    d.line("FLUSHALL");
    d.line("SCRIPT FLUSH");
    f(&mut d);
}

/// A script is learned keyed with `near` args, then run with `far` args (it
/// writes declared keys, then reaches the undeclared `ARGV[1]` on another
/// shard); replies and the final data compared with redis-server.
#[test]
fn keyed_run_reaching_an_undeclared_key_after_writing_matches_redis() {
    let k = one_per_shard("k", SHARDS);
    let (a, b, u) = (k[0].as_str(), k[1].as_str(), k[2].as_str());
    diff(|d| {
        // The brief's script: one write on KEYS[1], then an undeclared key.
        let go = "if redis.call('get', KEYS[1]) == 'go' then \
            redis.call('set', KEYS[1], 'x') \
            redis.call('set', ARGV[1], 'y') \
            return redis.call('get', KEYS[1]) .. redis.call('get', ARGV[1]) end \
            return 'skip'";
        let sha = d.check(&["SCRIPT", "LOAD", go]).text();
        d.check(&["EVALSHA", &sha, "1", a, u]); // learned keyed (only KEYS[1] touched)
        d.check(&["EVALSHA", &sha, "1", a, u]);
        d.check(&["SET", a, "go"]);
        d.check(&["EVALSHA", &sha, "1", a, u]);
        d.check(&["MGET", a, u]);
        d.check(&["EVALSHA", &sha, "1", a, u]);

        // A counter: a rolled-back INCR must not count twice.
        let incr = "local n = redis.call('incr', KEYS[1]) \
            if n > 1 then redis.call('incrby', ARGV[1], n) end return n";
        for _ in 0..3 {
            d.check(&["EVAL", incr, "1", b, u]);
        }
        d.check(&["MGET", b, u]);

        // Two declared keys on two shards written (a list created, a hash
        // changed, a TTL dropped) before the undeclared one.
        d.check(&["HSET", b, "f", "1"]);
        d.check(&["PEXPIRE", b, "100000"]);
        let multi = "local t = redis.call('pttl', KEYS[2]) \
            redis.call('rpush', KEYS[1], 'e') \
            redis.call('hincrby', KEYS[2], 'f', 1) \
            redis.call('persist', KEYS[2]) \
            if ARGV[2] == 'far' then redis.call('set', ARGV[1], t > 0 and 'ttl' or 'none') end \
            return {redis.call('lrange', KEYS[1], 0, -1), redis.call('hget', KEYS[2], 'f'), t > 0 and 1 or t}";
        let sha = d.check(&["SCRIPT", "LOAD", multi]).text();
        d.check(&["DEL", "lst"]);
        let l = k[3].as_str();
        d.check(&["EVALSHA", &sha, "2", l, b, u, "near"]);
        d.check(&["PEXPIRE", b, "100000"]);
        d.check(&["EVALSHA", &sha, "2", l, b, u, "far"]);
        d.check(&["LRANGE", l, "0", "-1"]);
        d.check(&["HGETALL", b]);
        d.check(&["TTL", b]);
        d.check(&["GET", u]);
        d.check(&["EVALSHA", &sha, "2", l, b, u, "far"]);
        d.check(&["LRANGE", l, "0", "-1"]);
        d.check(&["HGETALL", b]);

        // A key absent before the keyed run: rolled back to absent, then
        // created once by the rerun. A Lua pcall catching the stop changes nothing.
        let created = "redis.call('sadd', KEYS[1], ARGV[2]) \
            if ARGV[2] == 'far' then pcall(redis.call, 'set', ARGV[1], 'z') \
            redis.call('sadd', KEYS[1], 'after') end \
            return redis.call('scard', KEYS[1])";
        let s = "setkey";
        d.check(&["EVAL", created, "1", s, u, "near"]);
        d.check(&["DEL", s]);
        d.check(&["EVAL", created, "1", s, u, "far"]);
        d.run(Cmp::Unordered, &["SMEMBERS", s]);
        d.check(&["GET", u]);
        d.check(&["DBSIZE"]);

        // Multi-shard commands (coordinators with hops of their own) on
        // declared keys of other shards, then the undeclared key: LMOVE moves
        // another element and RENAME fails when the first run stays.
        let (l1, l2, r1) = (k[0].as_str(), k[1].as_str(), k[3].as_str());
        let r4 = "ren4";
        d.check(&["DEL", l1, l2, r1, r4]);
        d.check(&["RPUSH", l1, "a", "b", "c"]);
        let moves = "redis.call('lmove', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') \
            redis.call('rename', KEYS[3], KEYS[4]) \
            if ARGV[2] == 'far' then redis.call('incr', ARGV[1]) end \
            return {redis.call('lrange', KEYS[2], 0, -1), redis.call('get', KEYS[4])}";
        d.check(&["SET", r1, "v1"]);
        d.check(&["EVAL", moves, "4", l1, l2, r1, r4, u, "near"]);
        d.check(&["SET", r1, "v2"]);
        d.check(&["SET", u, "5"]);
        d.check(&["EVAL", moves, "4", l1, l2, r1, r4, u, "far"]);
        d.check(&["LRANGE", l1, "0", "-1"]);
        // A fresh copy rolled back, then failing in its rerun (an error after
        // writes: those stay, as in Redis).
        let again = format!("{moves} -- again");
        d.check(&["SET", r1, "v3"]);
        d.check(&["EVAL", &again, "4", l1, l2, r1, r4, u, "near"]);
        d.check(&["SET", r1, "v4"]);
        d.check(&["SET", u, "x"]);
        d.check(&["EVAL", &again, "4", l1, l2, r1, r4, u, "far"]);
        d.check(&["LRANGE", l1, "0", "-1"]);
        d.check(&["LRANGE", l2, "0", "-1"]);
        d.check(&["MGET", r1, r4, u]);
    });
}

/// The function variant (FCALL): the same rollback through the library's shape.
#[test]
fn keyed_function_rolled_back_matches_redis() {
    let k = one_per_shard("f", SHARDS);
    let (a, u) = (k[0].as_str(), k[1].as_str());
    diff(|d| {
        let lib = "#!lua name=undo\n\
            redis.register_function('mv', function(keys, args) \
              local n = redis.call('incr', keys[1]) \
              if n > 1 then redis.call('set', args[1], n) end \
              return n end)";
        d.check(&["FUNCTION", "LOAD", "REPLACE", lib]);
        for _ in 0..3 {
            d.check(&["FCALL", "mv", "1", a, u]);
            d.check(&["MGET", a, u]);
        }
    });
}

/// Blocked clients are served after the transaction or script that made
/// their key ready, never in its middle (as Redis).
#[test]
fn blocked_clients_served_after_exec_and_scripts() {
    let redis = Server::redis(&[]);
    let percore = Server::percore(SHARDS, &[]);
    let k = one_per_shard("q", SHARDS);
    let (q, u) = (k[0].as_str(), k[1].as_str());
    let mut d = Diff::new(&redis, &percore);
    let mut wr = redis.raw();
    let mut wp = percore.raw();
    let block = |wr: &mut common::Raw, wp: &mut common::Raw| {
        wr.send_cmd(&["BLPOP", q, "0"]);
        wp.send_cmd(&["BLPOP", q, "0"]);
        thread::sleep(Duration::from_millis(200));
    };
    block(&mut wr, &mut wp);
    // Pushed and popped inside one EXEC: the waiter gets nothing.
    d.line("MULTI");
    d.check(&["RPUSH", q, "a"]);
    d.check(&["LPOP", q]);
    d.line("EXEC");
    // Same inside a script.
    d.check(&[
        "EVAL",
        "redis.call('rpush', KEYS[1], 'b') return redis.call('lpop', KEYS[1])",
        "1",
        q,
    ]);
    assert!(silent(&mut wr), "redis served a waiter");
    assert!(silent(&mut wp), "served in the middle of a transaction");
    // Two pushed by one EXEC: the waiter gets the first after it, the other stays.
    d.line("MULTI");
    d.check(&["RPUSH", q, "c", "d"]);
    d.check(&["LRANGE", q, "0", "-1"]);
    d.line("EXEC");
    assert_eq!(wr.read(), wp.read());
    d.check(&["LRANGE", q, "0", "-1"]);
    // A keyed script that pushes, then reaches an undeclared key: rolled
    // back, rerun globally; the waiter is served once, after it.
    d.check(&["DEL", q]);
    block(&mut wr, &mut wp);
    let body = "redis.call('rpush', KEYS[1], ARGV[2]) \
        if ARGV[2] == 'far' then redis.call('incr', ARGV[1]) end \
        return redis.call('llen', KEYS[1])";
    d.check(&["EVAL", body, "1", "other", u, "near"]);
    d.check(&["EVAL", body, "1", q, u, "far"]);
    assert_eq!(wr.read(), wp.read());
    d.check(&["LRANGE", q, "0", "-1"]);
    d.check(&["GET", u]);
    // Served right after the EXEC, before the next command of a pipeline.
    d.check(&["DEL", q]);
    block(&mut wr, &mut wp);
    let mut pipe = Vec::new();
    for c in [
        vec!["MULTI"],
        vec!["RPUSH", q, "p1"],
        vec!["SET", u, "v"],
        vec!["EXEC"],
        vec!["LPOP", q],
    ] {
        pipe.extend(common::encode(&c));
    }
    d.redis.send(&pipe);
    d.percore.send(&pipe);
    for _ in 0..5 {
        assert_eq!(d.redis.read(), d.percore.read());
    }
    assert_eq!(wr.read(), wp.read());
}

/// True when nothing arrives on `c` within 300 ms.
fn silent(c: &mut common::Raw) -> bool {
    use std::io::BufRead;
    let _ = c.stream.set_read_timeout(Some(Duration::from_millis(300)));
    let quiet = match c.reader.fill_buf() {
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    let _ = c.stream.set_read_timeout(Some(Duration::from_secs(30)));
    quiet
}

fn int_of(r: &Resp) -> i64 {
    match r {
        Resp::Bulk(Some(b)) => String::from_utf8_lossy(b).parse().expect("an integer"),
        Resp::Int(i) => *i,
        other => panic!("not a number: {other:?}"),
    }
}

/// A transfer that goes to KEYS[2] (declared) or, when ARGV[2] names one,
/// to that undeclared account: written after KEYS[1] was already debited.
fn transfer(tag: &str) -> String {
    format!(
        "-- {tag}\n\
         local n = tonumber(ARGV[1]) \
         if tonumber(redis.call('get', KEYS[1])) < n then return 0 end \
         redis.call('decrby', KEYS[1], n) \
         if ARGV[2] ~= '' then redis.call('incrby', ARGV[2], n) \
         else redis.call('incrby', KEYS[2], n) end \
         return 1"
    )
}

/// Keyed transfers rolled back at an undeclared account while readers check
/// the total with MGET inside MULTI and alone: never a partial state.
#[test]
fn rollbacks_under_concurrency_keep_the_total() {
    let server = Server::percore(SHARDS, &[]);
    let accts = one_per_shard("acct", SHARDS);
    let mut c = server.raw();
    for a in &accts {
        c.cmd(&["SET", a.as_str(), "1000"]);
    }
    let total = 1000 * accts.len() as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let far = Arc::new(AtomicU64::new(0));
    let mut hs = Vec::new();
    for w in 0..3u64 {
        let (port, accts, stop, far) = (server.port, accts.clone(), stop.clone(), far.clone());
        hs.push(thread::spawn(move || {
            let mut c = common::Raw::connect(port);
            let mut rng = common::Rng(w + 11);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 400 {
                n += 1;
                let i = rng.below(accts.len() as u64) as usize;
                let j = (i + 1 + rng.below(accts.len() as u64 - 1) as usize) % accts.len();
                let mut k = (j + 1) % accts.len();
                if k == i {
                    k = (k + 1) % accts.len();
                }
                let amt = (1 + rng.below(50)).to_string();
                // A fresh script: learned keyed by its first (declared-only) run.
                let body = transfer(&format!("w{w} n{n}"));
                let r = c.cmd(&["EVAL", &body, "2", &accts[i], &accts[j], &amt, ""]);
                assert!(!r.is_error(), "{r:?}");
                let r = c.cmd(&["EVAL", &body, "2", &accts[i], &accts[j], &amt, &accts[k]]);
                assert!(!r.is_error(), "{r:?}");
                far.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for r in 0..2 {
        let (port, accts, stop) = (server.port, accts.clone(), stop.clone());
        hs.push(thread::spawn(move || {
            let mut c = common::Raw::connect(port);
            let mut args = vec!["MGET".to_string()];
            args.extend(accts.iter().cloned());
            while !stop.load(Ordering::Relaxed) {
                let sum: i64 = if r == 0 {
                    c.cmd(&["MULTI"]);
                    c.cmd(&args);
                    let e = c.cmd(&["EXEC"]);
                    e.items()[0].items().iter().map(int_of).sum()
                } else {
                    c.cmd(&args).items().iter().map(int_of).sum()
                };
                assert_eq!(sum, total, "a reader saw a partial state");
            }
        }));
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(6) && far.load(Ordering::Relaxed) < 1200 {
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().expect("worker");
    }
    let mut args = vec!["MGET".to_string()];
    args.extend(accts.iter().cloned());
    let sum: i64 = c.cmd(&args).items().iter().map(int_of).sum();
    assert_eq!(sum, total);
    assert!(far.load(Ordering::Relaxed) > 20, "too few rollbacks ran");
}

/// A percore process, killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts percore with AOF (appendfsync always) in `dir`.
fn start_aof(dir: &Path, port: u16) -> Proc {
    let child = Proc(
        Command::new(env!("CARGO_BIN_EXE_percore"))
            .args(["--port", &port.to_string(), "--shards", &SHARDS.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start percore"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            if s.write_all(b"PING\r\n").is_ok() {
                let mut c = common::Raw::connect(port);
                if c.cmd(&["PING"]) == Resp::Simple(b"PONG".to_vec()) {
                    return child;
                }
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("percore did not start");
}

/// With AOF on, a rolled-back keyed run leaves no record: after kill -9 and
/// a restart the script is applied exactly once.
#[test]
fn rolled_back_run_is_not_in_the_aof_after_kill_9() {
    let dir = std::env::temp_dir().join(format!("percore-undo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let k = one_per_shard("p", SHARDS);
    let (a, b, u) = (k[0].as_str(), k[1].as_str(), k[2].as_str());
    let port = common::free_port();
    let p = start_aof(&dir, port);
    let mut c = common::Raw::connect(port);
    let body = "local n = redis.call('incrby', KEYS[1], 10) \
        redis.call('rpush', KEYS[2], n) \
        if n > 10 then redis.call('incr', ARGV[1]) end return n";
    assert_eq!(c.cmd(&["EVAL", body, "2", a, b, u]), Resp::Int(10)); // learned keyed
    assert_eq!(c.cmd(&["EVAL", body, "2", a, b, u]), Resp::Int(20)); // rolled back, rerun
    assert_eq!(c.cmd(&["EVAL", body, "2", a, b, u]), Resp::Int(30)); // global now
    drop(p); // kill -9
    let port = common::free_port();
    let p = start_aof(&dir, port);
    let mut c = common::Raw::connect(port);
    let got = c.cmd(&["MGET", a, u]);
    let list = c.cmd(&["LRANGE", b, "0", "-1"]);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        got,
        Resp::Array(Some(vec![Resp::bulk("30"), Resp::bulk("2")]))
    );
    assert_eq!(
        list,
        Resp::Array(Some(vec![
            Resp::bulk("10"),
            Resp::bulk("20"),
            Resp::bulk("30")
        ]))
    );
}
