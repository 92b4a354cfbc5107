//! Redis 7.0 Functions against redis-server 7.0.15, percore on 1 and 4 shards:
//! FUNCTION LOAD/LIST/DELETE/FLUSH/DUMP/RESTORE/STATS/HELP, FCALL/FCALL_RO with
//! keys on several shards, register_function's forms and flags, error texts,
//! RESP3, DUMP/RESTORE between the two servers; FUNCTION KILL and BUSY.

mod common;
use std::time::{Duration, Instant};

use common::{Cmp, Diff, Raw, Resp, Server};

/// Runs `f` with a fresh diff on 1 and 4 shards.
fn each(f: impl Fn(&mut Diff)) {
    let redis = Server::redis(&[]);
    for shards in [1, 4] {
        let percore = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.line("FLUSHALL");
        d.line("FUNCTION FLUSH");
        f(&mut d);
    }
}

/// FUNCTION LOAD of `code` (with extra leading args), compared exactly.
fn load(d: &mut Diff, opts: &[&str], code: &str) -> Resp {
    let mut args = vec!["FUNCTION", "LOAD"];
    args.extend_from_slice(opts);
    args.push(code);
    d.check(&args)
}

/// FUNCTION LIST with args, compared with libraries and functions as sets
/// (Redis lists them in hash order).
fn list(d: &mut Diff, rest: &[&str]) -> Resp {
    let mut args = vec!["FUNCTION", "LIST"];
    args.extend_from_slice(rest);
    d.run(Cmp::Unordered, &args)
}

const LIB1: &str = "#!lua name=lib1
local function helper(x) return x .. '!' end
redis.register_function('echo', function(keys, args) return helper(args[1]) end)
redis.register_function('setk', function(keys, args) return redis.call('set', keys[1], args[1]) end)
redis.register_function{function_name='getk', callback=function(keys, args) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads a key'}
redis.register_function('err_incr', function(keys, args) local r = redis.call('incr', keys[1]) return r end)
redis.register_function('err_raise', function(keys, args) error('boom') end)
redis.register_function('err_keys', function(keys, args) return KEYS[1] end)
redis.register_function('err_reg', function(keys, args) redis.register_function('x', function() end) end)
redis.register_function('err_nil', function(keys, args) local t = nil; return t.x end)
redis.register_function('pc', function(keys, args) return redis.pcall('incr', keys[1]) end)
redis.register_function{function_name='nw', callback=function(keys, args) local r = redis.call('set', keys[1], 'y') return r end, flags={'no-writes'}}
redis.register_function{function_name='allf', callback=function(keys, args) return #keys end, flags={'no-writes','allow-oom','allow-stale','no-cluster','allow-cross-slot-keys'}}
redis.register_function('reply_err', function(keys, args) return redis.error_reply('MY err') end)
redis.register_function('ver', function(keys, args) return {redis.REDIS_VERSION, redis.REDIS_VERSION_NUM, type(redis.call)} end)
";

#[test]
fn load_and_call() {
    each(|d| {
        load(d, &[], LIB1);
        load(d, &[], LIB1);
        load(d, &["REPLACE"], LIB1);
        load(d, &["replace", "REPLACE"], LIB1);
        d.line("SET str abc");
        for f in [
            "echo",
            "setk",
            "getk",
            "err_incr",
            "err_raise",
            "err_keys",
            "err_reg",
            "err_nil",
            "pc",
            "nw",
            "allf",
            "reply_err",
            "ver",
            "ECHO",
            "GetK",
        ] {
            d.check(&["FCALL", f, "1", "str", "a"]);
        }
        d.line("FCALL getk 1 str");
        d.line("FCALL_RO getk 1 str");
        d.line("FCALL_RO allf 2 a b");
        d.line("FCALL_RO setk 1 k v");
        d.line("FCALL_RO nw 1 k");
        d.line("FCALL nope 0");
        d.line("FCALL nope x");
        d.line("FCALL echo x");
        d.line("FCALL echo 5 a");
        d.line("FCALL echo -1 a");
        d.line("FCALL echo");
        d.line("FCALL_RO getk");
        d.line("GET k");
    });
}

#[test]
fn keys_on_several_shards() {
    each(|d| {
        load(
            d,
            &[],
            "#!lua name=multi
redis.register_function('mset', function(keys, args)
  for i, k in ipairs(keys) do redis.call('set', k, args[i]) end
  return #keys
end)
redis.register_function{function_name='mget', callback=function(keys, args)
  local out = {}
  for i, k in ipairs(keys) do out[i] = redis.call('get', k) end
  return out
end, flags={'no-writes'}}
redis.register_function('sum', function(keys, args)
  local s = 0
  for _, k in ipairs(keys) do s = s + tonumber(redis.call('incrby', k, args[1])) end
  return s
end)
redis.register_function('undeclared', function(keys, args)
  redis.call('set', 'u1', 'a') redis.call('set', 'u2', 'b') redis.call('set', 'u3', 'c')
  return redis.call('mget', 'u1', 'u2', 'u3')
end)",
        );
        let keys: Vec<String> = (0..16).map(|i| format!("key:{i}")).collect();
        let mut args = vec!["FCALL".to_string(), "mset".into(), "16".into()];
        args.extend(keys.iter().cloned());
        args.extend((0..16).map(|i| format!("v{i}")));
        d.check(&args);
        let mut args = vec!["FCALL_RO".to_string(), "mget".into(), "16".into()];
        args.extend(keys.iter().cloned());
        d.check(&args);
        let mut args = vec!["FCALL".to_string(), "sum".into(), "4".into()];
        args.extend(["a", "b", "c", "d"].map(String::from));
        args.push("5".into());
        d.check(&args);
        d.check(&args);
        d.line("FCALL undeclared 0");
        d.line("FCALL undeclared 0");
        d.line("MGET u1 u2 u3 a b c d key:3");
    });
}

/// A library's globals are read-only when its functions run: rawset,
/// setmetatable and assignments fail with Redis's texts and lines (a C
/// function's error carries no position: its caller's line is reported).
#[test]
fn runtime_globals_read_only() {
    const LIB: &str = "#!lua name=ro
redis.register_function('a', function() rawset(_G, 'x', 1) return 1 end)
redis.register_function('b', function()
  local a = 1
  x = 1
  return 1
end)
redis.register_function('c', function()
  local a = 1
  rawset(_G, 'y', 1)
  return 1
end)
redis.register_function('d', function()
  local a = 1
  return rawset(redis, 'y', 1)
end)
redis.register_function('e', function()
  local a = 1
  setmetatable(_G, nil)
end)
redis.register_function('f', function()
  local a = 1
  string.x = 1
end)
redis.register_function('g', function()
  rawset(cjson, 'x', 1)
end)
redis.register_function('h', function()
  local function inner()
    rawset(_G, 'z', 1)
  end
  local a = 1
  inner()
end)
redis.register_function('i', function() return rawget(_G, 'x') end)
redis.register_function('j', function() local t = {} rawset(t, 'x', 1) return t.x end)
redis.register_function('k', function()
  local a = 1
  error('plain', 0)
end)
";
    each(|d| {
        load(d, &[], LIB);
        for f in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"] {
            d.check(&["FCALL", f, "0"]);
        }
    });
}

#[test]
fn load_errors() {
    each(|d| {
        for code in [
            "#!lua name=lib2\nredis.register_function('f3', function(keys, args) return 1 end)\nlocal x = string.len('abc')",
            "#!lua name=lib2\nredis.register_function('f3', function() end, 5)",
            "#!lua name=lib2\nredis.register_function()",
            "#!lua name=lib2\nredis.register_function(5)",
            "#!lua name=lib2\nredis.register_function({})",
            "#!lua name=lib2\nredis.register_function({function_name='x'})",
            "#!lua name=lib2\nredis.register_function({callback=function() end})",
            "#!lua name=lib2\nredis.register_function({function_name={}, callback=function() end})",
            "#!lua name=lib2\nredis.register_function({function_name='x', callback=5})",
            "#!lua name=lib2\nredis.register_function({function_name='x', callback=function() end, flags=5})",
            "#!lua name=lib2\nredis.register_function({function_name='x', callback=function() end, flags={'bad'}})",
            "#!lua name=lib2\nredis.register_function({function_name='x', callback=function() end, description=false})",
            "#!lua name=lib2\nredis.register_function({function_name='x', callback=function() end, other=1})",
            "#!lua name=lib2\nredis.register_function({function_name='f-x', callback=function() end})",
            "#!lua name=lib2\nredis.register_function('', function() end)",
            "#!lua name=lib2\nredis.register_function({}, function() end)",
            "#!lua name=lib2\nredis.register_function('a', {})",
            "#!lua name=lib2\nredis.register_function('a', function() end)\nredis.register_function('a', function() end)",
            "#!lua name=lib2\nredis.call('set','a','b')",
            "#!lua name=lib2\nreturn 1",
            "#!lua name=lib2\nx = 5",
            "#!lua name=lib2\nredis.x = 5",
            "#!lua name=lib2\nlocal a = ",
            "#!lua name=lib2\nerror('load failed')",
            "#!lux name=lib2\nx",
            "#!LUA name=lib2\nredis.register_function('upper_engine', function() return 1 end)",
            "#!lua name=lib3 foo=bar\nx",
            "#!lua name=lib3 name=lib4\nx",
            "#!lua NAME=lib5\nredis.register_function('upper_name', function() return 1 end)",
            "#!lua\nx",
            "lua\nx",
            "#!lua name=lib2",
            "#!lua name=a-b\nx",
            "#!lua name=\nx",
            "#!lua name=\"q\nx",
            "#!lua name=lib6\nredis.log(redis.LOG_NOTICE, 'loading lib6')\nredis.register_function('logged', function() return redis.LOG_WARNING end)",
            "#!lua name=lib7\nlocal r = redis\nredis.register_function('late_reg', function() return r.register_function('y', function() end) end)",
        ] {
            load(d, &[], code);
        }
        d.line("FCALL upper_engine 0");
        d.line("FCALL logged 0");
        d.line("FCALL late_reg 0");
        load(
            d,
            &[],
            "#!lua name=c1\nredis.register_function('a', function() return 1 end)",
        );
        load(d, &[], "#!lua name=c2\nredis.register_function('b', function() return 2 end)\nredis.register_function('a', function() return 3 end)");
        load(
            d,
            &["REPLACE"],
            "#!lua name=c1\nredis.register_function('b', function() return 1 end)",
        );
        load(
            d,
            &["REPLACE"],
            "#!lua name=c1\nredis.register_function('c', function() return 1 end)",
        );
        d.line("FCALL a 0");
        d.line("FCALL c 0");
        d.line("FUNCTION LOAD replace x y");
        d.line("FUNCTION LOAD");
        d.line("FUNCTION LOAD replace");
        d.line("FUNCTION LOAD x");
        list(d, &[]);
    });
}

#[test]
fn load_timeout() {
    each(|d| {
        load(d, &[], "#!lua name=slow\nwhile true do end");
        list(d, &[]);
    });
}

#[test]
fn list_delete_flush_stats_help() {
    each(|d| {
        load(d, &[], LIB1);
        load(
            d,
            &[],
            "#!lua name=other\nredis.register_function{function_name='o1', callback=function() return 1 end, description='first', flags={'allow-stale', 'no-writes'}}",
        );
        load(
            d,
            &[],
            "#!lua name=lib10\nredis.register_function('l10', function() return 1 end)",
        );
        list(d, &[]);
        list(d, &["WITHCODE"]);
        list(d, &["withcode", "libraryname", "lib*"]);
        list(d, &["LIBRARYNAME", "lib?"]);
        list(d, &["LIBRARYNAME", "OTHER"]);
        list(d, &["LIBRARYNAME", "nomatch*"]);
        list(d, &["LIBRARYNAME", "[ol]*", "WITHCODE"]);
        for bad in [
            "FUNCTION LIST withcode withcode",
            "FUNCTION LIST libraryname",
            "FUNCTION LIST withcode libraryname",
            "FUNCTION LIST foo",
            "FUNCTION LIST libraryname a libraryname b",
        ] {
            d.line(bad);
        }
        d.line("FUNCTION STATS");
        d.line("FUNCTION DELETE nope");
        d.line("FUNCTION DELETE LIB1");
        d.line("FUNCTION DELETE lib1");
        d.line("FUNCTION DELETE lib1");
        d.line("FCALL echo 0 x");
        d.line("FUNCTION DELETE");
        d.line("FUNCTION DELETE a b");
        d.line("FUNCTION STATS");
        list(d, &[]);
        d.line("FUNCTION FLUSH x");
        d.line("FUNCTION FLUSH sync async");
        d.line("FUNCTION FLUSH ASYNC");
        d.line("FUNCTION STATS");
        load(d, &[], LIB1);
        d.line("FUNCTION FLUSH SYNC");
        d.line("FUNCTION FLUSH");
        d.line("FUNCTION STATS x");
        list(d, &[]);
        d.line("FUNCTION KILL");
        d.line("FUNCTION KILL x");
        d.line("FUNCTION HELP");
        d.line("FUNCTION help x");
        d.line("FUNCTION");
        d.line("FUNCTION nope");
        d.line("FCALL");
        // FLUSHALL keeps the functions, as in Redis.
        load(d, &[], LIB1);
        d.line("FLUSHALL");
        d.line("FCALL echo 0 x");
    });
}

#[test]
fn dump_and_restore() {
    let redis = Server::redis(&[]);
    for shards in [1, 4] {
        let percore = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.line("FUNCTION FLUSH");
        d.line("FUNCTION DUMP");
        load(&mut d, &[], LIB1);
        // One library, stored raw: the payloads are the same bytes. (percore's
        // LZF output is valid but not always liblzf's exact bytes.)
        d.line("CONFIG SET rdbcompression no");
        d.line("FUNCTION DUMP");
        d.line("CONFIG SET rdbcompression yes");
        let p1 = d.percore.cmds("FUNCTION DUMP");
        let r1 = d.redis.cmds("FUNCTION DUMP");
        load(
            &mut d,
            &[],
            "#!lua name=small\nredis.register_function('s', function() return 's' end)",
        );
        let p2 = d.percore.cmds("FUNCTION DUMP");
        let r2 = d.redis.cmds("FUNCTION DUMP");
        let bytes = |r: &Resp| match r {
            Resp::Bulk(Some(b)) => b.clone(),
            other => panic!("not a payload: {other:?}"),
        };
        let (p1, r1, p2, r2) = (bytes(&p1), bytes(&r1), bytes(&p2), bytes(&r2));
        // Compressed payloads restore on the other server (checked below) and decode the same.
        d.check(&[b"FUNCTION".as_slice(), b"RESTORE", &p1, b"FLUSH"]);
        list(&mut d, &["WITHCODE"]);
        // Each server restores the other's payloads.
        for payload in [&r2, &p2] {
            for policy in ["", "FLUSH", "APPEND", "REPLACE", "append", "bad"] {
                let mut args: Vec<&[u8]> = vec![b"FUNCTION", b"RESTORE", payload];
                if !policy.is_empty() {
                    args.push(policy.as_bytes());
                }
                // Which of two colliding libraries APPEND names depends on Redis's hash order.
                d.run(Cmp::TypeOnly, &args);
                list(&mut d, &["WITHCODE"]);
            }
        }
        d.line("FUNCTION FLUSH");
        d.check(&[b"FUNCTION".as_slice(), b"RESTORE", &p2]);
        d.check(&[b"FUNCTION".as_slice(), b"RESTORE", &r1, b"APPEND"]);
        list(&mut d, &["WITHCODE"]);
        d.check(&[b"FUNCTION".as_slice(), b"RESTORE", &r1, b"APPEND"]);
        d.line("FCALL s 0");
        d.line("FCALL echo 0 hi");
        // Collisions, damaged payloads, wrong arities.
        d.line("FUNCTION FLUSH");
        load(
            &mut d,
            &[],
            "#!lua name=clash\nredis.register_function('echo', function() return 'c' end)",
        );
        d.check(&[b"FUNCTION".as_slice(), b"RESTORE", &r1]);
        d.check(&[b"FUNCTION".as_slice(), b"RESTORE", &r1, b"REPLACE"]);
        d.check(&[b"FUNCTION".as_slice(), b"RESTORE", &r1, b"FLUSH"]);
        let mut bad = r1.clone();
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        d.check(&[b"FUNCTION".as_slice(), b"RESTORE", &bad]);
        let mut newer = r1.clone();
        newer[n - 10] = 11;
        d.check(&[b"FUNCTION".as_slice(), b"RESTORE", &newer]);
        d.line("FUNCTION RESTORE xx");
        d.line("FUNCTION RESTORE 0123456789");
        d.line("FUNCTION RESTORE xx bad");
        d.line("FUNCTION RESTORE xx flush extra");
        d.line("FUNCTION RESTORE");
        d.line("FUNCTION DUMP x");
        list(&mut d, &[]);
    }
}

#[test]
fn resp3_replies() {
    each(|d| {
        // HELLO's reply carries the connection id, which differs: compare the rest.
        let a = d.redis.cmds("HELLO 3");
        let b = d.percore.cmds("HELLO 3");
        let strip = |r: Resp| match r {
            Resp::Map(v) => Resp::Map(
                v.into_iter()
                    .filter(|(k, _)| *k != Resp::bulk("id"))
                    .collect(),
            ),
            other => other,
        };
        assert_eq!(strip(a), strip(b));
        load(d, &[], LIB1);
        load(
            d,
            &[],
            "#!lua name=r3\nredis.register_function{function_name='r3f', callback=function(keys, args) return {1, 'a', {ok='fine'}} end, flags={'no-writes', 'no-cluster'}, description='d'}",
        );
        list(d, &["WITHCODE"]);
        list(d, &["LIBRARYNAME", "r3"]);
        d.line("FUNCTION STATS");
        d.line("FCALL r3f 0");
        d.line("FCALL_RO r3f 0");
        d.line("FCALL getk 1 nokey");
        d.line("FCALL err_incr 1 nokey");
        d.line("FUNCTION HELP");
    });
}

#[test]
fn transactions_and_functions() {
    each(|d| {
        load(d, &[], LIB1);
        d.line("MULTI");
        d.line("FCALL setk 1 tk 1");
        d.line("FCALL getk 1 tk");
        d.line("FUNCTION LOAD x");
        d.line("FCALL_RO setk 1 tk 2");
        d.line("EXEC");
        d.line("GET tk");
        d.quoted("EVAL \"return redis.call('fcall', 'echo', 0, 'x')\" 0");
        d.quoted("EVAL \"return redis.call('function', 'flush')\" 0");
        d.line("FCALL echo 0 still");
    });
}

/// Polls `f` every 10 ms until it returns true or `limit` passes.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A client that gets BUSY while a script loops. percore does not read the
/// connections of the core that runs a pure-Lua loop, so this tries several
/// connections (spread over the cores) with short timeouts and keeps one that answers.
fn busy_client(port: u16) -> Raw {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let mut conns: Vec<Raw> = (0..8).map(|_| Raw::connect(port)).collect();
        for c in conns.iter_mut() {
            c.stream
                .set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
            c.send_cmd(&["PING"]);
        }
        for mut c in conns {
            if let Some(r) = c.try_read() {
                if r.is_error() {
                    c.stream
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .expect("timeout");
                    return c;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no client got BUSY while a script looped");
}

/// A looping function: other clients get BUSY naming FUNCTION KILL, FUNCTION STATS
/// shows it, SCRIPT KILL refuses, FUNCTION KILL stops it; one that wrote is unkillable.
fn kill_scenario(srv: &Server) -> Vec<Resp> {
    let mut seen = Vec::new();
    let mut c = srv.raw();
    c.cmds("CONFIG SET busy-reply-threshold 100");
    c.cmds("FUNCTION FLUSH");
    let r = c.cmd(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=loops\nredis.register_function{function_name='spin', callback=function() local i = 0 while true do i = i + 1 end end, flags={'no-writes'}}\nredis.register_function('wspin', function(keys) redis.call('set', keys[1], '1') while true do end end)",
    ]);
    assert_eq!(r, Resp::bulk("loops"));
    let mut runner = srv.raw();
    runner.cmds("FUNCTION STATS");
    runner.send_cmd(&["FCALL", "spin", "0"]);
    let mut other = busy_client(srv.port);
    seen.push(other.cmds("GET x"));
    seen.push(other.cmds("EVAL \"return 1\" 0"));
    let stats = other.cmds("FUNCTION STATS");
    match &stats {
        Resp::Array(Some(v)) => {
            let running = v[1].items();
            assert_eq!(running[1], Resp::bulk("spin"));
            assert_eq!(
                running[3].items(),
                &[Resp::bulk("FCALL"), Resp::bulk("spin"), Resp::bulk("0")]
            );
            assert!(running[5].int() >= 100);
        }
        other => panic!("FUNCTION STATS: {other:?}"),
    }
    seen.push(other.cmds("SCRIPT KILL"));
    seen.push(other.cmds("FUNCTION KILL"));
    seen.push(runner.read());
    assert!(wait_for(Duration::from_secs(5), || other.cmds("PING")
        == Resp::Simple(b"PONG".to_vec())));
    seen.push(other.cmds("FUNCTION KILL"));
    // A function that wrote cannot be killed.
    runner.send_cmd(&["FCALL", "wspin", "1", "w"]);
    let mut other = busy_client(srv.port);
    seen.push(other.cmds("FUNCTION KILL"));
    seen.push(other.cmds("SCRIPT KILL"));
    seen
}

#[test]
fn function_kill_and_busy() {
    let redis = Server::redis(&[]);
    let want = kill_scenario(&redis);
    // Several shards: with one, the looping core is the only one serving clients.
    let percore = Server::percore(4, &[]);
    assert_eq!(kill_scenario(&percore), want);
}

#[test]
fn busy_eval_vs_function_kill() {
    let redis = Server::redis(&[]);
    let percore = Server::percore(4, &[]);
    let mut out = Vec::new();
    for srv in [&redis, &percore] {
        let mut c = srv.raw();
        c.cmds("CONFIG SET busy-reply-threshold 100");
        let mut runner = srv.raw();
        runner.send_cmd(&["EVAL", "while true do end", "0"]);
        let mut other = busy_client(srv.port);
        let seen = vec![
            other.cmds("FUNCTION KILL"),
            other.cmds("FUNCTION STATS"),
            other.cmds("SCRIPT KILL"),
            runner.read(),
        ];
        out.push(seen);
    }
    assert_eq!(out[0], out[1]);
}

/// FUNCTION LOAD is visible to every connection, on every core, once it replied.
#[test]
fn load_is_visible_on_every_core_at_once() {
    let percore = Server::percore(4, &[]);
    let mut admin = percore.raw();
    let mut conns: Vec<Raw> = (0..8).map(|_| percore.raw()).collect();
    for v in 0..20 {
        let code =
            format!("#!lua name=ver\nredis.register_function('v', function() return {v} end)");
        assert_eq!(
            admin.cmd(&["FUNCTION", "LOAD", "REPLACE", &code]),
            Resp::bulk("ver")
        );
        for c in conns.iter_mut() {
            assert_eq!(c.cmds("FCALL v 0"), Resp::Int(v));
        }
    }
    admin.cmds("FUNCTION DELETE ver");
    for c in conns.iter_mut() {
        assert_eq!(
            c.cmds("FCALL v 0"),
            Resp::Error(b"ERR Function not found".to_vec())
        );
    }
}

/// Functions are atomic across shards: transfers between keys of different
/// shards never let a concurrent read-only function see a changed total.
#[test]
fn functions_are_atomic_across_shards() {
    let percore = Server::percore(4, &[]);
    let mut admin = percore.raw();
    let r = admin.cmd(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=bank
redis.register_function('transfer', function(keys, args)
  local n = tonumber(args[1])
  redis.call('decrby', keys[1], n)
  redis.call('incrby', keys[2], n)
  return 1
end)
redis.register_function{function_name='total', callback=function(keys)
  local s = 0
  for _, k in ipairs(keys) do s = s + tonumber(redis.call('get', k) or '0') end
  return s
end, flags={'no-writes'}}",
    ]);
    assert_eq!(r, Resp::bulk("bank"));
    let accounts: Vec<String> = (0..8).map(|i| format!("acct:{i}")).collect();
    for a in &accounts {
        admin.cmd(&["SET", a, "1000"]);
    }
    let port = percore.port;
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let accounts = accounts.clone();
            std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                for i in 0..300usize {
                    let a = &accounts[(i * 3 + w) % 8];
                    let b = &accounts[(i * 5 + w + 1) % 8];
                    if a != b {
                        let r = c.cmd(&["FCALL", "transfer", "2", a, b, "7"]);
                        assert_eq!(r, Resp::Int(1));
                    }
                }
            })
        })
        .collect();
    let mut reader = Raw::connect(port);
    let mut args = vec!["FCALL_RO".to_string(), "total".into(), "8".into()];
    args.extend(accounts.iter().cloned());
    for _ in 0..300 {
        assert_eq!(reader.cmd(&args), Resp::Int(8000));
    }
    for w in writers {
        w.join().expect("writer");
    }
    assert_eq!(reader.cmd(&args), Resp::Int(8000));
}

/// INFO memory's number_of_cached_scripts, number_of_functions and number_of_libraries.
#[test]
fn info_counts_scripts_functions_and_libraries() {
    let redis = Server::redis(&[]);
    let percore = Server::percore(3, &[]);
    let mut out = Vec::new();
    for srv in [&redis, &percore] {
        let mut c = srv.raw();
        let counts = |c: &mut Raw| -> Vec<String> {
            c.cmds("INFO memory")
                .text()
                .lines()
                .filter(|l| l.starts_with("number_of_"))
                .map(str::to_string)
                .collect()
        };
        let mut seen = vec![counts(&mut c)];
        c.cmd(&["FUNCTION", "LOAD", "#!lua name=a\nredis.register_function('f1', function() return 1 end)\nredis.register_function('f2', function() return 2 end)"]);
        c.cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=b\nredis.register_function('f3', function() return 3 end)",
        ]);
        c.cmd(&["SCRIPT", "LOAD", "return 1"]);
        c.cmd(&["EVAL", "return 2", "0"]);
        c.cmd(&["EVAL", "return 2", "0"]);
        c.cmd(&["EVAL", "syntax error here", "0"]);
        c.cmd(&["SCRIPT", "LOAD", "syntax error here"]);
        seen.push(counts(&mut c));
        // Other connections (other cores) see the same counts.
        let mut d = srv.raw();
        seen.push(counts(&mut d));
        c.cmds("FUNCTION DELETE a");
        c.cmds("SCRIPT FLUSH");
        seen.push(counts(&mut c));
        out.push(seen);
    }
    assert_eq!(out[0][0].len(), 3);
    assert_eq!(out[0], out[1]);
}
