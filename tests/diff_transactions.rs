//! MULTI/EXEC/DISCARD/WATCH/UNWATCH against redis-server 7.0.15, percore on 1 and 4 shards:
//! queuing, EXECABORT, errors inside EXEC, WATCH with other clients, expiry,
//! FLUSH*/SWAPDB, connection state inside MULTI, RESP3 shapes, pipelining.

mod common;
use std::time::Duration;

use common::{Cmp, Diff, Server};

/// Runs `f` with a fresh pair of diffs (two clients per server) on 1 and 4 shards.
fn each(f: impl Fn(&mut Diff, &mut Diff)) {
    let redis = Server::redis(&[]);
    for shards in [1, 4] {
        let percore = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        let mut other = Diff::new(&redis, &percore);
        d.line("FLUSHALL");
        f(&mut d, &mut other);
    }
}

#[test]
fn errors_and_nesting() {
    each(|d, _| {
        d.script(
            r#"
            EXEC
            DISCARD
            MULTI
            MULTI
            WATCH x
            EXEC
            MULTI
            PING
            ECHO hi
            DISCARD
            EXEC
            MULTI
            EXEC
            UNWATCH
            WATCH
            "#,
        );
    });
}

#[test]
fn queuing_errors_abort_exec() {
    each(|d, _| {
        d.script(
            r#"
            SET a 1
            MULTI
            SET a 2
            NOSUCHCOMMAND x y
            EXEC
            GET a
            MULTI
            SET a 3
            GET a b
            EXEC
            GET a
            MULTI
            INCR a b
            SET a 4
            EXEC
            GET a
            MULTI
            SET a 5
            EXEC extra
            EXEC
            GET a
            EXEC extra
            MULTI
            OBJECT NOSUCH x
            EXEC
            MULTI
            SHUTDOWN
            EXEC
            "#,
        );
    });
}

#[test]
fn errors_inside_exec_do_not_roll_back() {
    each(|d, _| {
        d.script(
            r#"
            MULTI
            SET a x
            INCR a
            SET b 1
            INCR b
            INCRBY b notanumber
            GET a
            GET b
            EXEC
            MGET a b
            MULTI
            RENAME nokey other
            SET c 1
            EXEC
            GET c
            "#,
        );
    });
}

#[test]
fn multi_key_and_global_commands_inside_exec() {
    each(|d, _| {
        d.script(
            r#"
            MULTI
            MSET a 1 b 2 c 3 d 4 e 5 f 6
            MGET a b c d e f nokey
            DEL a b nokey
            EXISTS a b c d e f
            RENAME c cc
            RENAMENX d dd
            COPY e ee
            MSETNX x 1 y 2
            MSETNX x 1 z 2
            DBSIZE
            EXEC
            "#,
        );
        d.line("MULTI");
        d.line("KEYS *");
        d.line("SET g 7");
        d.line("KEYS g*");
        d.run(Cmp::Unordered, &["EXEC"]);
        d.script(
            r#"
            MULTI
            FLUSHALL
            SET after 1
            DBSIZE
            RANDOMKEY
            FLUSHDB
            DBSIZE
            RANDOMKEY
            EXEC
            "#,
        );
    });
}

#[test]
fn connection_state_inside_multi() {
    each(|d, _| {
        d.script(
            r#"
            SET k db0
            MULTI
            SELECT 1
            SET k db1
            GET k
            SELECT 0
            GET k
            SELECT 99
            EXEC
            GET k
            MULTI
            SELECT 1
            EXEC
            GET k
            SELECT 0
            MULTI
            ECHO x
            RESET
            EXEC
            "#,
        );
        // HELLO inside MULTI is queued; its reply (with the client id) is in EXEC's array.
        d.line("MULTI");
        d.line("HELLO 3");
        d.line("PING");
        d.run(Cmp::TypeOnly, &["EXEC"]);
        d.line("GET nokey");
        d.run(Cmp::TypeOnly, &["HELLO", "2"]);
    });
}

#[test]
fn watch_other_client_changes() {
    each(|d, o| {
        // Unchanged: EXEC runs.
        d.line("SET k 1");
        d.line("WATCH k");
        d.line("MULTI");
        d.line("INCR k");
        d.line("EXEC");
        // Changed by another client: nil.
        d.line("WATCH k");
        o.line("SET k 10");
        d.line("MULTI");
        d.line("INCR k");
        d.line("EXEC");
        d.line("GET k");
        // Changed by the same client after WATCH: nil too.
        d.line("WATCH k");
        d.line("SET k 11");
        d.line("MULTI");
        d.line("INCR k");
        d.line("EXEC");
        // A write that changes nothing (SET NX on an existing key) does not count.
        d.line("WATCH k");
        o.line("SET k 12 NX");
        d.line("MULTI");
        d.line("INCR k");
        d.line("EXEC");
        // Several keys on several shards; one changed (by DEL, EXPIRE, RENAME...).
        for change in [
            "DEL w2",
            "EXPIRE w3 100",
            "RENAME w1 w9",
            "MSET w4 x zz 1",
            "APPEND w2 x",
            "PERSIST w1",
        ] {
            d.line("MSET w1 a w2 b w3 c w4 d");
            d.line("WATCH w1 w2 w3 w4 nokey");
            o.line(change);
            d.line("MULTI");
            d.line("SET done 1");
            d.line("EXEC");
            d.line("GET done");
            d.line("DEL done w9 zz");
        }
        // A key created by another client while watched as missing.
        d.line("WATCH fresh");
        o.line("SET fresh 1");
        d.line("MULTI");
        d.line("PING");
        d.line("EXEC");
        // UNWATCH and DISCARD forget the watch.
        d.line("WATCH k");
        o.line("SET k 20");
        d.line("UNWATCH");
        d.line("MULTI");
        d.line("PING");
        d.line("EXEC");
        d.line("WATCH k");
        d.line("MULTI");
        d.line("DISCARD");
        o.line("SET k 21");
        d.line("MULTI");
        d.line("PING");
        d.line("EXEC");
        // Watching the same key twice, then EXEC without changes.
        d.line("WATCH k k");
        d.line("WATCH k");
        d.line("MULTI");
        d.line("GET k");
        d.line("EXEC");
        // A queuing error with a dirty watch: EXECABORT wins.
        d.line("WATCH k");
        o.line("SET k 22");
        d.line("MULTI");
        d.line("GET");
        d.line("EXEC");
        // The other client's own transaction changes a watched key.
        d.line("WATCH k");
        o.line("MULTI");
        o.line("SET k 23");
        o.line("EXEC");
        d.line("MULTI");
        d.line("GET k");
        d.line("EXEC");
    });
}

#[test]
fn watch_and_expiry() {
    each(|d, o| {
        // Expires after WATCH: EXEC fails.
        d.line("SET k 1");
        d.line("PEXPIRE k 50");
        d.line("WATCH k");
        d.line("MULTI");
        d.line("PING");
        std::thread::sleep(Duration::from_millis(120));
        d.line("EXEC");
        // Expired (not yet deleted) when watched, then deleted by a lookup: no change.
        d.line("DEBUG SET-ACTIVE-EXPIRE 0");
        d.line("SET k 1");
        d.line("PEXPIRE k 20");
        std::thread::sleep(Duration::from_millis(60));
        d.line("WATCH k");
        o.line("GET k");
        d.line("MULTI");
        d.line("PING");
        d.line("EXEC");
        // Expired when watched, then written: EXEC fails.
        d.line("SET k 1");
        d.line("PEXPIRE k 20");
        std::thread::sleep(Duration::from_millis(60));
        d.line("WATCH k");
        o.line("SET k 2");
        d.line("MULTI");
        d.line("PING");
        d.line("EXEC");
        // Expired when watched and still there at EXEC: no change.
        d.line("SET k 1");
        d.line("PEXPIRE k 20");
        std::thread::sleep(Duration::from_millis(60));
        d.line("WATCH k");
        d.line("MULTI");
        d.line("PING");
        d.line("EXEC");
        d.line("DEBUG SET-ACTIVE-EXPIRE 1");
    });
}

#[test]
fn watch_and_flush_swapdb() {
    each(|d, o| {
        // FLUSHALL touches watched keys that exist, not missing ones.
        d.line("WATCH missing");
        o.line("FLUSHALL");
        d.line("MULTI");
        d.line("PING");
        d.line("EXEC");
        d.line("SET k 1");
        d.line("WATCH k");
        o.line("FLUSHALL");
        d.line("MULTI");
        d.line("PING");
        d.line("EXEC");
        d.line("SET k 1");
        d.line("WATCH k");
        o.line("FLUSHDB");
        d.line("MULTI");
        d.line("PING");
        d.line("EXEC");
        // FLUSHDB of another database leaves this one's watches alone.
        d.line("SET k 1");
        d.line("WATCH k");
        o.line("SELECT 1");
        o.line("FLUSHDB");
        o.line("SELECT 0");
        d.line("MULTI");
        d.line("PING");
        d.line("EXEC");
        // SWAPDB: watched key present in either database.
        d.line("WATCH k");
        o.line("SWAPDB 0 1");
        d.line("MULTI");
        d.line("GET k");
        d.line("EXEC");
        o.line("SWAPDB 0 1");
        d.line("WATCH neither");
        o.line("SWAPDB 0 1");
        d.line("MULTI");
        d.line("GET neither");
        d.line("EXEC");
        o.line("SWAPDB 0 1");
        d.line("GET k");
    });
}

#[test]
fn resp3_shapes() {
    each(|d, o| {
        d.run(Cmp::TypeOnly, &["HELLO", "3"]);
        d.line("SET k 1");
        d.line("WATCH k");
        o.line("SET k 2");
        d.line("MULTI");
        d.line("GET k");
        d.line("EXEC");
        d.line("MULTI");
        d.line("GET k");
        d.line("GET nokey");
        d.line("INCR nokey2");
        d.line("EXEC");
        d.line("MULTI");
        d.line("FOO");
        d.line("EXEC");
        d.line("EXEC");
        d.run(Cmp::TypeOnly, &["HELLO", "2"]);
    });
}

#[test]
fn pipelined_transactions() {
    let redis = Server::redis(&[]);
    for shards in [1, 4] {
        let percore = Server::percore(shards, &[]);
        let mut replies = Vec::new();
        for s in [&redis, &percore] {
            let mut c = s.raw();
            let mut w = Vec::new();
            let lines = [
                "FLUSHALL",
                "MULTI",
                "SET a 1",
                "SET b 2",
                "MGET a b c",
                "EXEC",
                "WATCH a",
                "SET a 5",
                "MULTI",
                "GET a",
                "EXEC",
                "MULTI",
                "BADCMD",
                "EXEC",
                "MULTI",
                "DEL a b",
                "DISCARD",
                "MGET a b",
                // A refused EXEC discards the transaction: what follows runs at once.
                "MULTI",
                "SET a 7",
                "EXEC x",
                "SET b 8",
                "MGET a b",
                "EXEC",
            ];
            for l in lines {
                let args: Vec<&str> = l.split_whitespace().collect();
                w.extend(common::encode(&args));
            }
            c.send(&w);
            replies.push((0..lines.len()).map(|_| c.read()).collect::<Vec<_>>());
        }
        assert_eq!(replies[0], replies[1], "pipelined replies, {shards} shards");
    }
}

#[test]
fn blocking_commands_inside_multi_do_not_block() {
    each(|d, _| {
        d.script(
            r#"
            MULTI
            BLPOP nolist 0
            BRPOP nolist1 nolist2 0
            RPUSH l a b c
            RPUSH l2 x
            BLPOP nolist l 0
            BRPOP l2 l 1
            BLMOVE nolist dst LEFT RIGHT 0
            BLMOVE l dst LEFT RIGHT 0
            BRPOPLPUSH nolist dst 0
            BRPOPLPUSH l dst2 0
            BLMPOP 0 2 nolist l LEFT COUNT 5
            BLMPOP 0 1 nolist RIGHT
            BLPOP l -1
            BLPOP l notanumber
            EXEC
            LRANGE dst 0 -1
            LRANGE dst2 0 -1
            EXISTS l l2
            "#,
        );
    });
}
