//! Lua scripting against redis-server 7.0.15, percore on 1 and 4 shards: conversions both
//! ways, error texts, the sandbox, SCRIPT subcommands, RESP3; plus concurrency invariants
//! of scripts on 4 shards (transfers vs MGET readers, the lock pattern).

mod common;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{one_per_shard, Cmp, Diff, Resp, Server};

/// Runs `f` with a fresh diff on 1 and 4 shards.
fn each(f: impl Fn(&mut Diff)) {
    let redis = Server::redis(&[]);
    for shards in [1, 4] {
        let percore = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.line("FLUSHALL");
        d.line("SCRIPT FLUSH");
        f(&mut d);
    }
}

/// EVAL `body` with `numkeys` and the rest, compared exactly.
fn ev(d: &mut Diff, body: &str, rest: &[&str]) -> Resp {
    let mut args = vec!["EVAL", body];
    args.extend_from_slice(rest);
    d.check(&args)
}

#[test]
fn conversions_lua_to_resp() {
    each(|d| {
        for body in [
            "return 1",
            "return -3.99",
            "return 3.99",
            "return 1e20",
            "return 'x'",
            "return true",
            "return false",
            "return nil",
            "return {1,2,3.7,'x',nil,4}",
            "return {1,{2,{3}},'a'}",
            "return {1,false,true,'x',{ok='s'},{err='E bad'}}",
            "return {ok='FINE'}",
            "return {err='MY error'}",
            "return redis.error_reply('X y')",
            "return redis.status_reply('OK2')",
            "local t = {} t[1]=1 t[3]=3 return t",
            "return {}",
            "return redis.sha1hex('')",
            "return redis.sha1hex('abc')",
            "return redis.LOG_WARNING + redis.LOG_NOTICE*10",
            "return 'a'..1.5",
        ] {
            ev(d, body, &["0"]);
        }
    });
}

#[test]
fn conversions_resp_to_lua() {
    each(|d| {
        d.line("RPUSH l a b c");
        d.line("SET s abc");
        d.line("HSET h f v");
        for body in [
            "return redis.call('get', KEYS[1])",
            "return type(redis.call('get', 'nokey'))",
            "return tostring(redis.call('get', 'nokey'))",
            "return redis.call('lrange', 'l', 0, -1)",
            "return #redis.call('lrange', 'l', 0, -1)",
            "return redis.call('ping')",
            "return redis.call('ping').ok",
            "return type(redis.call('ping'))",
            "return redis.call('incr', 'n')",
            "return type(redis.call('incr', 'n'))",
            "return redis.call('hgetall', 'h')",
            "return redis.call('hgetall', 'nokey')",
            "return redis.pcall('incr', 's')",
            "return redis.pcall('incr', 's').err",
            "return redis.call('set', 'x', 1.5)",
            "return redis.call('get', 'x')",
            "return redis.call('set', 'y', 10)",
            "return redis.call('incrby', 'y', 5)",
        ] {
            ev(d, body, &["1", "s"]);
        }
        ev(d, "return KEYS", &["2", "a", "b", "c", "d"]);
        ev(d, "return ARGV", &["2", "a", "b", "c", "d"]);
        ev(d, "return {KEYS[1], ARGV[2]}", &["1", "k", "x", "y"]);
    });
}

#[test]
fn errors() {
    each(|d| {
        d.line("SET s abc");
        for body in [
            "return redis.call('nope')",
            "return redis.pcall('nope')",
            "return redis.call('get')",
            "return redis.pcall('get')",
            "return redis.call()",
            "return redis.call({})",
            "return redis.call('get', {})",
            "return redis.call('incr', 's')",
            "return redis.call('eval', 'return 1', 0)",
            "error('boom')",
            "local a = 1\nerror('boom')",
            // Not a tail call: mlua's async glue is a Lua frame, so a failing
            // `return redis.call(...)` on a later line reports line 1 (see the module docs).
            "local a = 1\n\nlocal r = redis.call('incr', 's') return r",
            "error()",
            "error(12)",
            "retur",
            "return 1 +",
            "return redis.log()",
            "return redis.log(99, 'x')",
            "redis.log(redis.LOG_DEBUG, 'from a test') return 1",
            "return redis.sha1hex()",
        ] {
            ev(d, body, &["0"]);
        }
        ev(d, "return 1", &["-1"]);
        ev(d, "return 1", &["2", "a"]);
        ev(d, "return 1", &["x"]);
        d.line("EVALSHA abc 0");
        d.line("EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0");
        d.line("EVAL");
        d.line("EVAL x");
        d.check(&[
            "EVAL_RO",
            "return redis.call('set', KEYS[1], 'b')",
            "1",
            "a",
        ]);
        d.check(&["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "s"]);
        d.check(&["EVAL_RO", "return redis.pcall('del', KEYS[1])", "1", "s"]);
    });
}

#[test]
fn sandbox() {
    each(|d| {
        for body in [
            "return x",
            "x = 1",
            "return os",
            "return io",
            "return loadfile",
            "return dofile",
            "return type(string.format)",
            "return type(table.concat)",
            "return type(math.floor)",
            "local t = {} t.x = 1 return t.x",
            "return type(pcall)",
            "return tostring(type(loadstring))",
        ] {
            ev(d, body, &["0"]);
        }
    });
}

#[test]
fn script_subcommands() {
    each(|d| {
        d.line("SCRIPT LOAD return");
        d.check(&["SCRIPT", "LOAD", "return 'hi'"]);
        let sha = "a1a6f7d54ca4ec7fc5eb3e3a5fe66c2d0dcf4efc";
        d.check(&["SCRIPT", "EXISTS", sha, "abc", &sha.to_uppercase()]);
        d.check(&["EVALSHA", sha, "0"]);
        d.check(&["EVALSHA", &sha.to_uppercase(), "0"]);
        d.check(&["EVALSHA_RO", sha, "0"]);
        // EVAL caches the script too.
        d.check(&["EVAL", "return 7", "0"]);
        d.check(&["EVALSHA", "6d2a4fcdd8e1ea8cb3f3ec6b5e5c2883e4dfd9d4", "0"]);
        d.line("SCRIPT FLUSH x");
        d.line("SCRIPT FLUSH ASYNC");
        d.check(&["SCRIPT", "EXISTS", sha]);
        d.check(&["EVALSHA", sha, "0"]);
        d.check(&["SCRIPT", "LOAD", "return 'hi'"]);
        d.line("SCRIPT FLUSH SYNC");
        d.line("SCRIPT FLUSH");
        d.line("SCRIPT FLUSH SYNC ASYNC");
        d.line("SCRIPT EXISTS");
        d.line("SCRIPT NOPE");
    });
}

#[test]
fn keys_across_shards_and_dbs() {
    each(|d| {
        for i in 0..20 {
            let k = format!("k{i}");
            d.check(&[
                "EVAL",
                "redis.call('set', KEYS[1], ARGV[1]) return redis.call('incrby', KEYS[1], 2)",
                "1",
                &k,
                &i.to_string(),
            ]);
        }
        d.check(&[
            "EVAL",
            "redis.call('mset', KEYS[1], ARGV[1], KEYS[2], ARGV[2]) return redis.call('mget', KEYS[1], KEYS[2], 'zz')",
            "2", "a1", "b2", "v1", "v2",
        ]);
        // Undeclared keys and whole-keyspace commands work too.
        d.check(&["EVAL", "return redis.call('get', 'k3')", "0"]);
        d.check(&["EVAL", "return redis.call('dbsize')", "0"]);
        d.run(
            Cmp::Unordered,
            &["EVAL", "return redis.call('keys', 'k1*')", "0"],
        );
        // A keyed script (learned) that later reaches an undeclared key before writing.
        let body = "if ARGV[1] == 'far' then return redis.call('get', 'k7') end return redis.call('get', KEYS[1])";
        d.check(&["EVAL", body, "1", "k1", "near"]);
        d.check(&["EVAL", body, "1", "k1", "near"]);
        d.check(&["EVAL", body, "1", "k1", "far"]);
        d.check(&["EVAL", body, "1", "k1", "far"]);
        // SELECT inside a script does not change the caller's database.
        d.check(&[
            "EVAL",
            "redis.call('select', 1) redis.call('set', 'in1', 'x') return redis.call('get', 'in1')",
            "0",
        ]);
        d.line("GET in1");
        d.line("SELECT 1");
        d.line("GET in1");
        d.check(&["EVAL", "return redis.call('get', 'in1')", "0"]);
        d.line("SELECT 0");
        // Scripts in MULTI.
        d.line("MULTI");
        d.check(&["EVAL", "return redis.call('incr', KEYS[1])", "1", "m"]);
        d.check(&["EVAL", "return redis.call('incr', 'm')", "0"]);
        d.line("EXEC");
    });
}

#[test]
fn resp3() {
    each(|d| {
        d.run(Cmp::TypeOnly, &["HELLO", "3"]);
        d.line("SET s v");
        for body in [
            "return nil",
            "return false",
            "return true",
            "return {1,'a',false}",
            "return redis.call('get', 'nokey')",
            "return redis.call('hgetall', 'nokey')",
            "return {ok='x'}",
            "return {err='E x'}",
            "return 2.5",
        ] {
            ev(d, body, &["0"]);
        }
        d.line("SCRIPT EXISTS a");
    });
}

/// Errors without a position (raised by C functions, or `error(msg, 0)`) are
/// reported at the line of the innermost script frame, as Redis's handler does.
#[test]
fn error_lines() {
    each(|d| {
        for body in [
            "local a = 1\nrawset(_G, 'x', 1)",
            "local a = 1\nerror('plain', 0)",
            "local function f()\n  error('lvl2', 2)\nend\nlocal a = 1\nf()",
            "local function f()\n  setmetatable(_G, nil)\nend\nlocal a = 1\nf()",
            "local a = 1\nreturn nosuch",
            "local a = 1\nreturn cjson.decode('{')",
            "local a = 1\nreturn rawset(_G, 'x', 1)",
        ] {
            ev(d, body, &["0"]);
        }
    });
}

/// Numbers given to redis.call are sent as `%.17g` texts, exactly: -0 and
/// numbers closer to 0 than f64::EPSILON included (mlua would hand Rust 0).
#[test]
fn exact_numbers_to_redis_call() {
    each(|d| {
        for n in [
            "1e-20",
            "-0",
            "0.1",
            "0.1+0.2",
            "1e300",
            "-1e-310",
            "0",
            "1/0",
            "-1/0",
            "2^53+1",
            "1e-300*1e-300",
            "-2.5",
        ] {
            ev(
                d,
                &format!("return redis.call('set', KEYS[1], {n})"),
                &["1", "k"],
            );
            d.check(&["GET", "k"]);
            ev(
                d,
                &format!("return redis.pcall('set', KEYS[1], 'v', {n})"),
                &["1", "k"],
            );
            ev(d, &format!("return redis.call('echo', {n})"), &["0"]);
            // A number returned as such is truncated to an integer.
            ev(d, &format!("return {n}"), &["0"]);
        }
        ev(
            d,
            "return redis.call('rpush', KEYS[1], 1e-20, -0, 'x', 3)",
            &["1", "l"],
        );
        d.check(&["LRANGE", "l", "0", "-1"]);
        ev(d, "return redis.call('set', KEYS[1], {})", &["1", "k"]);
        ev(d, "return redis.call()", &["0"]);
    });
}

/// `{double=...}` under RESP3 carries the number exactly.
#[test]
fn exact_doubles_resp3() {
    each(|d| {
        d.run(Cmp::TypeOnly, &["HELLO", "3"]);
        for n in [
            "1e-20", "-0", "0.1+0.2", "1e300", "-1e-310", "0", "3", "-2.5",
        ] {
            ev(
                d,
                &format!("redis.setresp(3) return {{double={n}}}"),
                &["0"],
            );
            ev(
                d,
                &format!("redis.setresp(3) return {{1, {{double={n}}}}}"),
                &["0"],
            );
        }
    });
}

// ---- concurrency (4 shards) ----

const SHARDS: usize = 4;
const RUN: Duration = Duration::from_secs(3);

fn int_of(r: &Resp) -> i64 {
    match r {
        Resp::Bulk(Some(b)) => String::from_utf8_lossy(b).parse().expect("an integer"),
        Resp::Int(i) => *i,
        other => panic!("not a number: {other:?}"),
    }
}

const TRANSFER: &str = "local a = tonumber(redis.call('get', KEYS[1])) \
    local n = tonumber(ARGV[1]) \
    if a < n then return 0 end \
    redis.call('decrby', KEYS[1], n) \
    redis.call('incrby', KEYS[2], n) \
    return 1";

#[test]
fn eval_transfers_keep_the_total() {
    let server = Server::percore(SHARDS, &[]);
    let accts = one_per_shard("acct", SHARDS);
    let mut c = server.raw();
    for a in &accts {
        c.cmd(&["SET", a.as_str(), "1000"]);
    }
    let total = 1000 * accts.len() as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut hs = Vec::new();
    for w in 0..4u64 {
        let (port, accts, stop, done) = (server.port, accts.clone(), stop.clone(), done.clone());
        hs.push(thread::spawn(move || {
            let mut c = common::Raw::connect(port);
            let mut rng = common::Rng(w + 7);
            // Both the EVAL and the (learned keyed) EVALSHA paths.
            let sha = c.cmd(&["SCRIPT", "LOAD", TRANSFER]).text();
            while !stop.load(Ordering::Relaxed) {
                let i = rng.below(accts.len() as u64) as usize;
                let j = (i + 1 + rng.below(accts.len() as u64 - 1) as usize) % accts.len();
                let amt = (1 + rng.below(50)).to_string();
                let r = if rng.below(2) == 0 {
                    c.cmd(&["EVAL", TRANSFER, "2", &accts[i], &accts[j], &amt])
                } else {
                    c.cmd(&["EVALSHA", &sha, "2", &accts[i], &accts[j], &amt])
                };
                assert!(!r.is_error(), "{r:?}");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for _ in 0..2 {
        let (port, accts, stop) = (server.port, accts.clone(), stop.clone());
        hs.push(thread::spawn(move || {
            let mut c = common::Raw::connect(port);
            let mut args = vec!["MGET".to_string()];
            args.extend(accts.iter().cloned());
            while !stop.load(Ordering::Relaxed) {
                let r = c.cmd(&args);
                let sum: i64 = r.items().iter().map(int_of).sum();
                assert_eq!(sum, total, "a reader saw half a transfer");
            }
        }));
    }
    let t0 = Instant::now();
    while t0.elapsed() < RUN {
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
    assert!(done.load(Ordering::Relaxed) > 10, "too few transfers ran");
}

const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
    return redis.call('del', KEYS[1]) else return 0 end";

#[test]
fn lock_pattern_never_two_holders() {
    let server = Server::percore(SHARDS, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let inside = Arc::new(AtomicU64::new(0));
    let acquired = Arc::new(AtomicU64::new(0));
    let mut hs = Vec::new();
    for w in 0..6u64 {
        let (port, stop, inside, acquired) =
            (server.port, stop.clone(), inside.clone(), acquired.clone());
        hs.push(thread::spawn(move || {
            let mut c = common::Raw::connect(port);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let token = format!("{w}-{n}");
                let r = c.cmd(&["SET", "lock", &token, "NX", "PX", "5000"]);
                if r != Resp::Simple(b"OK".to_vec()) {
                    continue;
                }
                let was = inside.fetch_add(1, Ordering::SeqCst);
                assert_eq!(was, 0, "two holders at once");
                acquired.fetch_add(1, Ordering::Relaxed);
                // Other shards' work while holding it.
                c.cmd(&["INCR", &format!("work{w}")]);
                inside.fetch_sub(1, Ordering::SeqCst);
                let r = c.cmd(&["EVAL", RELEASE, "1", "lock", &token]);
                assert_eq!(r, Resp::Int(1), "release failed");
                // A stale token never releases someone else's lock.
                let r = c.cmd(&["EVAL", RELEASE, "1", "lock", "stale"]);
                assert_eq!(r, Resp::Int(0));
            }
        }));
    }
    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().expect("worker");
    }
    assert!(acquired.load(Ordering::Relaxed) > 10);
}

/// Connections (up to `n`) that get a reply within a short time while a script runs on
/// another core: they are the ones not stuck behind the script's core.
fn responsive(port: u16, n: usize) -> Vec<(common::Raw, Resp)> {
    let mut conns: Vec<common::Raw> = (0..n).map(|_| common::Raw::connect(port)).collect();
    for c in conns.iter_mut() {
        c.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        c.send_cmd(&["PING"]);
    }
    let mut out = Vec::new();
    for mut c in conns {
        if let Some(r) = c.try_read() {
            out.push((c, r));
        }
    }
    out
}

/// Waits (bounded) until some client gets BUSY; returns that connection.
fn busy_client(port: u16) -> common::Raw {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(8) {
        for (c, r) in responsive(port, 6) {
            if r == Resp::Error(common_busy()) {
                return c;
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("no client got BUSY while a script ran past the threshold");
}

#[test]
fn script_kill_and_busy() {
    let t0 = Instant::now();
    let server = Server::percore(SHARDS, &[]);
    let mut admin = server.raw();
    assert_eq!(
        admin.cmd(&["CONFIG", "SET", "lua-time-limit", "200"]),
        Resp::Simple(b"OK".to_vec())
    );
    assert_eq!(
        admin
            .cmd(&["CONFIG", "GET", "busy-reply-threshold"])
            .items()[1],
        Resp::bulk("200")
    );
    assert_eq!(
        admin.cmd(&["SCRIPT", "KILL"]),
        Resp::Error(b"NOTBUSY No scripts in execution right now.".to_vec())
    );
    // A read-only endless script: other cores' clients get BUSY, SCRIPT KILL stops it.
    let mut a = server.raw();
    a.send_cmd(&["EVAL", "while true do end", "0"]);
    let mut k = busy_client(server.port);
    assert_eq!(k.cmd(&["SCRIPT", "KILL"]), Resp::Simple(b"OK".to_vec()));
    let r = a.read();
    assert_eq!(
        r.text(),
        "ERR Script killed by user with SCRIPT KILL... script: 694a5fe1ddb97a4c6a1bf299d9537c7d3d0f84e7, on @user_script:1."
    );
    assert_eq!(a.cmd(&["SET", "x", "1"]), Resp::Simple(b"OK".to_vec()));
    assert_eq!(k.cmd(&["GET", "x"]), Resp::bulk("1"));
    // A script that wrote cannot be killed; it ends by itself (TIME-bounded, 5-6 s).
    a.send_cmd(&[
        "EVAL",
        "redis.call('set', KEYS[1], 'w') local s = tonumber(redis.call('time')[1]) \
         while tonumber(redis.call('time')[1]) - s < 6 do local x = 0 for i = 1, 20000 do x = x + i end end \
         return 'done'",
        "1",
        "w",
    ]);
    let mut k = busy_client(server.port);
    let r = k.cmd(&["SCRIPT", "KILL"]);
    if r.text().starts_with("NOTBUSY") {
        panic!(
            "script ended early: {:?} after {:?}",
            a.read(),
            t0.elapsed()
        );
    }
    assert_eq!(
        r,
        Resp::Error(b"UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".to_vec())
    );
    assert_eq!(a.read(), Resp::bulk("done"));
    assert_eq!(a.cmd(&["GET", "w"]), Resp::bulk("w"));
    assert!(t0.elapsed() < Duration::from_secs(15));
}

fn common_busy() -> Vec<u8> {
    b"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
        .to_vec()
}

#[test]
fn bit_library() {
    each(|d| {
        for body in [
            "return {bit.tobit(2^32+5), bit.tobit(-1), bit.tobit(2.5), bit.tobit(3.5), bit.tobit('12')}",
            "return {bit.tohex(-1), bit.tohex(255, -4), bit.tohex(255, 12), bit.tohex(1, 0), bit.tohex(65535, 2)}",
            "return {bit.band(7, 3, 2), bit.bor(1, 2, 4), bit.bxor(5, 1), bit.bnot(0), bit.band(5)}",
            "return {bit.lshift(1, 33), bit.rshift(-1, 28), bit.arshift(-16, 2), bit.rol(0x80000001, 1), bit.ror(1, 1)}",
            "return {bit.bswap(0x12345678), bit.tobit(2^31), bit.lshift(1, 31)}",
            "return tostring(bit.tobit(2^31))",
            "return bit.tobit()",
            "return bit.tobit('x')",
            "return bit.tobit(nil)",
            "return bit.band()",
            "return bit.bor(1, {})",
            "return bit.lshift(1)",
        ] {
            ev(d, body, &["0"]);
        }
    });
}
