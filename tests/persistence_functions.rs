//! Functions survive restarts: through the RDB (opcode 245, both ways with
//! redis-server 7.0 and redis-check-rdb), DEBUG RELOAD, and the AOF (FUNCTION
//! LOAD/DELETE/FLUSH/RESTORE logged and replayed, BGREWRITEAOF keeps them in
//! its base, as commands or in the RDB preamble).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::persist::{percore, refused, serial, Dir, Proc};
use common::{free_port, Raw, Resp};

fn redis(dir: &Path) -> Proc {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--appendonly", "no", "--save", ""])
        .args(["--dir", dir.to_str().expect("utf-8 dir")])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let mut p = Proc {
        child,
        port,
        dir: dir.to_path_buf(),
    };
    p.wait_ready();
    p
}

const LIB_A: &str = "#!lua name=liba
redis.register_function('incr_by', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)
redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}";
const LIB_B: &str = "#!lua name=libb
redis.register_function('hello', function(keys, args) return 'hello ' .. args[1] end)";
const LIB_C: &str = "#!lua name=libc
redis.register_function('gone', function() return 1 end)";
const LIB_B2: &str = "#!lua name=libb
redis.register_function('hello', function(keys, args) return 'hi ' .. args[1] end)
redis.register_function('bye', function(keys, args) return 'bye' end)";

/// Loads the libraries, with a replace and a delete among them.
fn setup(c: &mut Raw) {
    for code in [LIB_A, LIB_B, LIB_C] {
        assert!(!c.cmd(&["FUNCTION", "LOAD", code]).is_error());
    }
    assert!(!c.cmd(&["FUNCTION", "LOAD", "REPLACE", LIB_B2]).is_error());
    assert_eq!(
        c.cmd(&["FUNCTION", "DELETE", "libc"]),
        Resp::Simple(b"OK".to_vec())
    );
    assert_eq!(c.cmds("FCALL incr_by 1 counter 5"), Resp::Int(5));
}

/// What a client can see of the libraries (order-free).
fn libraries(c: &mut Raw) -> Resp {
    c.cmds("FUNCTION LIST WITHCODE").sorted()
}

/// Calls that must work after a restart.
fn check_calls(c: &mut Raw) {
    assert_eq!(c.cmds("FCALL hello 0 you"), Resp::bulk("hi you"));
    assert_eq!(c.cmds("FCALL bye 0"), Resp::bulk("bye"));
    assert_eq!(c.cmds("FCALL_RO peek 1 counter"), Resp::bulk("5"));
    assert_eq!(c.cmds("FCALL incr_by 1 counter 1"), Resp::Int(6));
    assert_eq!(
        c.cmds("FCALL gone 0"),
        Resp::Error(b"ERR Function not found".to_vec())
    );
}

#[test]
fn rdb_round_trip_and_debug_reload() {
    let _s = serial();
    for shards in [1, 4] {
        let dir = Dir::new("rdb");
        let mut p = percore(&dir.0, shards, &["--save", ""]);
        let mut c = p.raw();
        setup(&mut c);
        let before = libraries(&mut c);
        assert_eq!(c.cmds("SAVE"), Resp::Simple(b"OK".to_vec()));
        let out = Command::new("redis-check-rdb")
            .arg(dir.0.join("dump.rdb"))
            .output()
            .expect("run redis-check-rdb");
        assert!(
            out.status.success(),
            "redis-check-rdb refused the dump: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // DEBUG RELOAD NOSAVE replaces the functions with the file's.
        c.cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=extra\nredis.register_function('extra', function() return 1 end)",
        ]);
        assert_eq!(c.cmds("DEBUG RELOAD NOSAVE"), Resp::Simple(b"OK".to_vec()));
        assert_eq!(libraries(&mut c), before);
        p.crash();
        let p = percore(&dir.0, shards, &["--save", ""]);
        let mut c = p.raw();
        assert_eq!(libraries(&mut c), before, "{shards} shard(s)");
        check_calls(&mut c);
        // SHUTDOWN's save keeps them too (after FUNCTION FLUSH: none).
        assert_eq!(c.cmds("FUNCTION FLUSH"), Resp::Simple(b"OK".to_vec()));
        assert_eq!(c.cmds("SAVE"), Resp::Simple(b"OK".to_vec()));
        drop(p);
        let p = percore(&dir.0, shards, &["--save", ""]);
        assert_eq!(p.raw().cmds("FUNCTION LIST"), Resp::Array(Some(vec![])));
    }
}

#[test]
fn rdb_with_functions_between_redis_and_percore() {
    let _s = serial();
    // redis-server's dump loads in percore.
    let rdir = Dir::new("from-redis");
    let mut r = redis(&rdir.0);
    let mut rc = r.raw();
    setup(&mut rc);
    let want = libraries(&mut rc);
    assert_eq!(rc.cmds("SAVE"), Resp::Simple(b"OK".to_vec()));
    r.shutdown(&["NOSAVE"]);
    for shards in [1, 4] {
        let pdir = Dir::new("to-percore");
        std::fs::copy(rdir.0.join("dump.rdb"), pdir.0.join("dump.rdb")).expect("copy dump");
        let p = percore(&pdir.0, shards, &["--save", ""]);
        let mut c = p.raw();
        assert_eq!(libraries(&mut c), want, "{shards} shard(s)");
        check_calls(&mut c);
    }
    // percore's dump loads in redis-server.
    let pdir = Dir::new("from-percore");
    let p = percore(&pdir.0, 4, &["--save", ""]);
    let mut c = p.raw();
    setup(&mut c);
    let want = libraries(&mut c);
    assert_eq!(c.cmds("SAVE"), Resp::Simple(b"OK".to_vec()));
    drop(p);
    let rdir = Dir::new("to-redis");
    std::fs::copy(pdir.0.join("dump.rdb"), rdir.0.join("dump.rdb")).expect("copy dump");
    let r = redis(&rdir.0);
    let mut rc = r.raw();
    assert_eq!(libraries(&mut rc), want);
    check_calls(&mut rc);
}

#[test]
fn rdb_with_a_bad_library_is_refused() {
    let _s = serial();
    // A dump whose library does not compile (written by hand: RDB 10, one
    // FUNCTION2 record, EOF, no checksum).
    let dir = Dir::new("bad-lib");
    let code = b"#!lua name=bad\nthis is not lua";
    let mut f = b"REDIS0010".to_vec();
    f.push(245);
    f.push(code.len() as u8);
    f.extend_from_slice(code);
    f.push(255);
    f.extend_from_slice(&[0u8; 8]);
    std::fs::write(dir.0.join("dump.rdb"), &f).expect("write dump");
    let log = refused(&dir.0, 2, &[]);
    assert!(log.contains("Failed loading library"), "{log}");
}

const AOF: [&str; 6] = [
    "--appendonly",
    "yes",
    "--save",
    "",
    "--appendfsync",
    "always",
];

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

#[test]
fn aof_replay_and_rewrite() {
    let _s = serial();
    // The rewrite's base as commands (1 shard) and as an RDB preamble (4 shards).
    for (shards, preamble) in [(1, "no"), (4, "yes")] {
        let dir = Dir::new("aof");
        let mut args = AOF.to_vec();
        args.extend(["--aof-use-rdb-preamble", preamble]);
        let args = &args[..];
        let mut p = percore(&dir.0, shards, args);
        let mut c = p.raw();
        setup(&mut c);
        // RESTORE and FLUSH are logged too.
        let payload = match c.cmds("FUNCTION DUMP") {
            Resp::Bulk(Some(b)) => b,
            other => panic!("FUNCTION DUMP: {other:?}"),
        };
        assert_eq!(c.cmds("FUNCTION FLUSH"), Resp::Simple(b"OK".to_vec()));
        assert_eq!(
            c.cmd(&[b"FUNCTION".as_slice(), b"RESTORE", &payload]),
            Resp::Simple(b"OK".to_vec())
        );
        let before = libraries(&mut c);
        p.crash();
        let mut p = percore(&dir.0, shards, args);
        let mut c = p.raw();
        assert_eq!(
            libraries(&mut c),
            before,
            "{shards} shard(s) after replay; log:\n{}",
            p.log()
        );
        check_calls(&mut c);
        assert!(p.log().contains("0 refused"), "{}", p.log());
        // The rewrite's base holds the libraries as FUNCTION LOAD.
        assert_eq!(
            c.cmds("BGREWRITEAOF"),
            Resp::Simple(b"Background append only file rewriting started".to_vec())
        );
        wait_rewrite(&p);
        let adir = dir.0.join("appendonlydir");
        let base: Vec<u8> = std::fs::read_dir(&adir)
            .expect("appendonlydir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".base."))
            .flat_map(|e| std::fs::read(e.path()).unwrap_or_default())
            .collect();
        let text = String::from_utf8_lossy(&base);
        if preamble == "no" {
            assert_eq!(text.matches("FUNCTION").count(), 2, "{text}");
        } else {
            assert!(text.starts_with("REDIS0010"), "{text}");
        }
        p.crash();
        let p = percore(&dir.0, shards, args);
        let mut c = p.raw();
        assert_eq!(libraries(&mut c), before, "{shards} shard(s) after rewrite");
        assert_eq!(c.cmds("FCALL_RO peek 1 counter"), Resp::bulk("6"));
    }
}
