//! Differential tests of the STRING command family against Debian's redis-server 7.0.15:
//! GET/SET and every SET option, SETNX/SETEX/PSETEX/GETSET/GETDEL/GETEX, MGET/MSET/MSETNX
//! (one shard and spread over shards), APPEND/STRLEN, GETRANGE/SUBSTR, SETRANGE, the
//! counters, INCRBYFLOAT, LCS, OBJECT ENCODING after each kind of write, TTLs kept or
//! cleared, arity errors, and a RESP3 subset. Every test runs against percore with 1 and
//! with 4 shards. The seeded random sequences live in diff_strings_random.rs.

mod common;
use common::{words, Diff, Resp, Server};

/// Runs one quoted command line on both servers, compared exactly.
fn ln(d: &mut Diff, line: &str) -> Resp {
    d.check(&words(line))
}

/// Runs each line of a script (blank lines and `#` comments skipped), compared exactly.
fn sc(d: &mut Diff, text: &str) {
    for l in text.lines().map(str::trim) {
        if !l.is_empty() && !l.starts_with('#') {
            ln(d, l);
        }
    }
}

/// Shard counts every test runs percore with (4 > the 2 CPUs of the test machine on purpose).
const SHARDS: [usize; 2] = [1, 4];

/// Runs `f` against one redis-server and percore with each shard count, from empty databases.
fn each(f: impl Fn(&mut Diff, usize)) {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        ln(&mut d, "FLUSHALL");
        f(&mut d, shards);
    }
}

/// Like `each`, with both connections switched to RESP3 first (HELLO's reply carries the
/// connection id, which differs between servers by nature, so only its type is compared).
fn each_resp3(f: impl Fn(&mut Diff, usize)) {
    each(|d, shards| {
        d.run(common::Cmp::TypeOnly, &["HELLO", "3"]);
        f(d, shards);
    });
}

/// A time-dependent integer reply (TTL, PTTL, PEXPIRETIME of a relative expiry): both
/// servers ran the command a few milliseconds apart, so the values may differ by `slack`;
/// -1 and -2 must match exactly.
fn close(d: &mut Diff, args: &[&str], slack: i64) -> i64 {
    let a = d.redis.cmd(args);
    let b = d.percore.cmd(args);
    let ok = match (&a, &b) {
        (Resp::Int(x), Resp::Int(y)) if *x < 0 || *y < 0 => x == y,
        (Resp::Int(x), Resp::Int(y)) => (x - y).abs() <= slack,
        _ => a == b,
    };
    assert!(
        ok,
        "{args:?}: redis {a:?}, percore {b:?}; recent commands {:#?}",
        d.log.iter().rev().take(10).collect::<Vec<_>>()
    );
    b.int()
}

/// TTL within a second, PTTL within 1.5 s.
fn ttls(d: &mut Diff, key: &str) {
    close(d, &["TTL", key], 1);
    close(d, &["PTTL", key], 1500);
}

/// Seconds since the epoch, for absolute expiry times far from now.
fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

#[test]
fn set_options() {
    each(|d, _| {
        sc(
            d,
            r#"
            SET k v
            GET k
            SET k v2 XX
            GET k
            SET k v3 NX
            GET k
            SET nokey v XX
            EXISTS nokey
            SET k v NX XX
            SET k v XX NX
            SET k v NX NX
            SET k v xx Xx
            SET k v GET GET
            SET k v4 NX GET
            GET k
            SET k v5 XX GET
            SET nokey v XX GET
            EXISTS nokey
            SET nokey v NX GET
            GET nokey
            SET k v KEEPTTL KEEPTTL
            SET k v EX 100 EX 200
            SET k v PX 100000 PX 200000
            SET k v EX 100 PX 100
            SET k v PX 100 EX 100
            SET k v EX 100 EXAT 100
            SET k v EXAT 99999999999 PXAT 99999999999
            SET k v KEEPTTL EX 100
            SET k v EX 100 KEEPTTL
            SET k v PXAT 99999999999 KEEPTTL
            SET k v PERSIST
            SET k v EX
            SET k v PX
            SET k v EXAT
            SET k v PXAT
            SET k v NX EX
            SET k v EX 10 EX
            SET k v EX NX
            SET k v FOO
            SET k v EX 10 FOO
            SET k v NX GET XX
            SET k v get nx ex 100
            GET k
            "#,
        );
        ttls(d, "k");
    });
}

#[test]
fn set_and_getex_option_sequences() {
    // Every sequence of up to three options, on a missing key, a plain key and a key with
    // a TTL: the reply, the value and the expiry must match.
    each(|d, _| {
        let far = (now_s() + 3_000_000).to_string();
        let far_ms = format!("{far}123");
        let opts: Vec<Vec<&str>> = vec![
            vec!["NX"],
            vec!["XX"],
            vec!["GET"],
            vec!["KEEPTTL"],
            vec!["PERSIST"],
            vec!["EX", "100"],
            vec!["PX", "100000"],
            vec!["EXAT", &far],
            vec!["PXAT", &far_ms],
        ];
        let mut seqs: Vec<Vec<&str>> = vec![vec![]];
        for a in &opts {
            seqs.push(a.clone());
            for b in &opts {
                seqs.push([a.clone(), b.clone()].concat());
                for c in &opts {
                    seqs.push([a.clone(), b.clone(), c.clone()].concat());
                }
            }
        }
        let setups = ["DEL k", "SET k 1", "SET k 2 PX 5000000"];
        for (i, seq) in seqs.iter().enumerate() {
            for cmd in [["SET", "k", "v"].as_slice(), ["GETEX", "k"].as_slice()] {
                ln(d, setups[i % setups.len()]);
                d.check(&[cmd, seq.as_slice()].concat());
                ln(d, "GET k");
                close(d, &["PEXPIRETIME", "k"], 2000);
            }
        }
    });
}

#[test]
fn set_expire_arguments() {
    each(|d, _| {
        // Errors: zero, negative, non-integer, overflow once scaled or offset by now.
        for opt in ["EX", "PX", "EXAT", "PXAT"] {
            for t in [
                "0",
                "-1",
                "-9223372036854775808",
                "abc",
                "1.5",
                " 10",
                "10 ",
                "+10",
                "010",
                "",
                "9223372036854775808",
                "99999999999999999999",
            ] {
                d.check(&["SET", "k", "v", opt, t]);
                d.check(&["SET", "k", "v", "NX", opt, t, "GET"]);
            }
        }
        sc(
            d,
            r#"
            SET k v EX 9223372036854775807
            SET k v EX 9223372036854776
            SET k v EX 9223372036854775
            SET k v PX 9223372036854775807
            SET k v PX 9223372036854775000
            SET k v EXAT 9223372036854776
            SET k v EXAT 9223372036854775
            PEXPIRETIME k
            SET k v PXAT 9223372036854775807
            PEXPIRETIME k
            EXPIRETIME k
            SET k v EXAT 1
            GET k
            EXISTS k
            SET k v PXAT 1 GET
            SET k v PXAT 1000 NX
            GET k
            SET k v
            SET k v2 EXAT 1 XX GET
            GET k
            "#,
        );
        // Errors leave the key untouched.
        ln(d, "SET k keep EX 1000000");
        ln(d, "SET k v EX 0");
        ln(d, "GET k");
        ttls(d, "k");
        // Absolute times far in the future compare exactly.
        let at = now_s() + 1_000_000;
        for (opt, t) in [("EXAT", at), ("PXAT", at * 1000 + 123)] {
            let t = t.to_string();
            d.check(&["SET", "k", "v", opt, &t]);
            ln(d, "PEXPIRETIME k");
            ln(d, "EXPIRETIME k");
            ttls(d, "k");
        }
        // Relative times within the servers' clocks.
        for (opt, t) in [("EX", "1000"), ("PX", "1000000"), ("EX", "9223372036854")] {
            d.check(&["SET", "k", "v", opt, t]);
            ttls(d, "k");
        }
        ln(d, "SET k v EX 100 GET");
        ttls(d, "k");
    });
}

#[test]
fn setnx_setex_psetex_getset_getdel() {
    each(|d, _| {
        sc(
            d,
            r#"
            SETNX a 1
            SETNX a 2
            GET a
            SETEX a 0 v
            SETEX a -5 v
            SETEX a abc v
            SETEX a 1.0 v
            SETEX a 9223372036854775807 v
            SETEX a 9223372036854775 v
            PSETEX a 0 v
            PSETEX a -1 v
            PSETEX a abc v
            PSETEX a 9223372036854775807 v
            GET a
            SETEX b 100 v
            GET b
            "#,
        );
        ttls(d, "b");
        ln(d, "PSETEX b 100000 w");
        ln(d, "GET b");
        ttls(d, "b");
        sc(
            d,
            r#"
            SETNX b x
            GETSET b 7
            GET b
            TTL b
            OBJECT ENCODING b
            GETSET missing x
            GET missing
            GETSET missing 123456789012345678901234567890123456789012345
            OBJECT ENCODING missing
            GETDEL missing
            GETDEL missing
            EXISTS missing
            GETDEL nothing
            SET e ""
            GETDEL e
            EXISTS e
            SET n 42
            GETDEL n
            "#,
        );
    });
}

#[test]
fn getex() {
    each(|d, _| {
        sc(
            d,
            r#"
            GETEX missing
            GETEX missing EX 10
            GETEX missing EX 0
            GETEX missing EX abc
            GETEX missing FOO
            SET g hello
            GETEX g
            TTL g
            GETEX g EX 10 PX 10
            GETEX g EX 10 PERSIST
            GETEX g PERSIST EX 10
            GETEX g PERSIST PERSIST
            GETEX g EX
            GETEX g PX
            GETEX g NX
            GETEX g XX
            GETEX g KEEPTTL
            GETEX g GET
            GETEX g EX 0
            GETEX g EX -1
            GETEX g PX 0
            GETEX g EXAT 0
            GETEX g PXAT -1
            GETEX g EX abc
            GETEX g EX 9223372036854775807
            GETEX g PX 9223372036854775807
            GETEX g EX 9223372036854775
            TTL g
            GETEX g PXAT 9223372036854775807
            PEXPIRETIME g
            GETEX g EXAT 9223372036854775
            PEXPIRETIME g
            GETEX g PERSIST
            TTL g
            GETEX g EX 100 EX 200
            "#,
        );
        ttls(d, "g");
        ln(d, "GETEX g PX 500000");
        ttls(d, "g");
        let at = (now_s() + 500_000).to_string();
        d.check(&["GETEX", "g", "EXAT", &at]);
        ln(d, "PEXPIRETIME g");
        ln(d, "GETEX g");
        ln(d, "PEXPIRETIME g");
        ln(d, "GETEX g PERSIST");
        ln(d, "PEXPIRETIME g");
        // An absolute time already past deletes the key after replying with it.
        sc(
            d,
            r#"
            GETEX g EXAT 1
            EXISTS g
            SET g 12
            GETEX g PXAT 1000
            GET g
            SET g 12
            OBJECT ENCODING g
            GETEX g EX 1000
            OBJECT ENCODING g
            GET g
            "#,
        );
    });
}

#[test]
fn mget_mset_msetnx() {
    each(|d, shards| {
        // The plain keys spread over shards, the {t} keys share one: both paths run.
        let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
        if shards > 1 {
            let used: std::collections::HashSet<usize> = keys
                .iter()
                .map(|k| percore::server::exec::shard_of_key(k.as_bytes(), shards))
                .collect();
            assert!(used.len() > 1, "test keys must span shards");
        }
        sc(
            d,
            r#"
            MGET a
            MGET a b c
            MSET a 1 b 2 c 3 d 4 e 5 f 6
            MGET a b c d e f g h missing a
            MSET a
            MSET a 1 b
            MSET a 1 b 2 c
            MGET a b c
            MSET a x a y a z
            GET a
            MSET a 1 b 2 a 3 b 4
            MGET a b
            MSETNX a
            MSETNX a 1 b
            MSETNX x 1 y 2 z 3
            MGET x y z
            MSETNX x 1 q 2
            MSETNX q 2 x 1
            MGET x q
            MSETNX p 1 p 2
            GET p
            MSETNX g 7 h 8
            MGET g h
            MSET {t}a 1 {t}b 2
            MGET {t}a {t}b {t}c
            MSETNX {t}a 1 {t}c 3
            MSETNX {t}d 1 {t}c 3
            MGET {t}c {t}d {t}a
            MSETNX {t}x 1 {t}x 2
            GET {t}x
            MSET {t}x 1 {t}x 2
            GET {t}x
            MSET a 10 {t}a 11 b 12
            MGET {t}a a b {t}b
            OBJECT ENCODING a
            "#,
        );
        // MSET clears TTLs; MSETNX fails on a key with a TTL.
        ln(d, "SET c v EX 1000");
        ln(d, "MSETNX c 1 zz 2");
        ln(d, "EXISTS zz");
        ln(d, "MSET c 1 d 2");
        ln(d, "TTL c");
        // An expired key counts as missing for MSETNX.
        ln(d, "SET w v PXAT 1");
        ln(d, "MSETNX w 1 ww 2");
        ln(d, "MGET w ww");
        // Binary keys and values.
        let bin: &[&[u8]] = &[b"MSET", b"k\x00\r\n", b"\x00\xff\r\n", b"k2", b""];
        d.check(bin);
        d.check(&[&b"MGET"[..], b"k\x00\r\n", b"k2", b"k\x00"]);
    });
}

#[test]
fn append_strlen() {
    each(|d, _| {
        sc(
            d,
            r#"
            STRLEN missing
            APPEND ap hello
            OBJECT ENCODING ap
            APPEND ap world
            GET ap
            OBJECT ENCODING ap
            STRLEN ap
            APPEND nothing ""
            EXISTS nothing
            STRLEN nothing
            OBJECT ENCODING nothing
            APPEND n1 123
            OBJECT ENCODING n1
            APPEND n1 4
            OBJECT ENCODING n1
            GET n1
            STRLEN n1
            SET n2 -55
            STRLEN n2
            APPEND n2 ""
            OBJECT ENCODING n2
            GET n2
            SET n3 9223372036854775807
            STRLEN n3
            APPEND n3 0
            GET n3
            SET s 123456789012345678901234567890123456789012345
            APPEND s x
            STRLEN s
            APPEND big 1234567890123456789012345678901234567890123456789
            OBJECT ENCODING big
            "#,
        );
        d.check(&[&b"APPEND"[..], b"bin", b"\x00\r\n\xff"]);
        d.check(&[&b"APPEND"[..], b"bin", b"\x00"]);
        ln(d, "GET bin");
        ln(d, "STRLEN bin");
        // APPEND keeps the TTL.
        ln(d, "SET t v EX 1000");
        ln(d, "APPEND t w");
        ttls(d, "t");
    });
}

#[test]
fn getrange_substr() {
    each(|d, _| {
        sc(
            d,
            r#"
            SET s "Hello World"
            SET e ""
            SET i 12345
            SET m -12345
            SET l 1234567890123456789012345678901234567890123456789
            "#,
        );
        // Every small start/end combination on each kind of value and a missing key.
        for key in ["s", "e", "i", "m", "l", "missing"] {
            for start in -13..=13 {
                for end in -13..=13 {
                    let (a, b) = (start.to_string(), end.to_string());
                    d.check(&["GETRANGE", key, &a, &b]);
                }
            }
        }
        let edges = [
            "-9223372036854775808",
            "9223372036854775807",
            "-100",
            "100",
            "0",
            "-1",
        ];
        for a in edges {
            for b in edges {
                d.check(&["GETRANGE", "s", a, b]);
                d.check(&["SUBSTR", "i", a, b]);
            }
        }
        sc(
            d,
            r#"
            GETRANGE s a 1
            GETRANGE s 1 a
            GETRANGE s 1.0 2
            GETRANGE s 9223372036854775808 1
            GETRANGE missing a b
            SUBSTR s 0 4
            SUBSTR s -5 -1
            SUBSTR s x 1
            SUBSTR missing 0 -1
            GETRANGE s 0 -1
            OBJECT ENCODING i
            "#,
        );
        d.check(&[&b"SET"[..], b"b", b"\x00a\r\n\xffz"]);
        ln(d, "GETRANGE b 0 -1");
        ln(d, "GETRANGE b 1 3");
    });
}

#[test]
fn setrange() {
    each(|d, _| {
        sc(
            d,
            r#"
            SETRANGE sr 0 ""
            EXISTS sr
            SETRANGE sr 5 ""
            EXISTS sr
            SETRANGE sr 5 abc
            GET sr
            OBJECT ENCODING sr
            STRLEN sr
            SETRANGE sr 0 XYZ
            GET sr
            SETRANGE sr 10 Q
            GET sr
            SETRANGE sr 2 ""
            SETRANGE sr 100 ""
            GET sr
            SETRANGE sr 0 0123456789abcdefghij
            GET sr
            SETRANGE sr -1 x
            SETRANGE sr abc x
            SETRANGE sr 1.5 x
            SETRANGE sr " 1" x
            SETRANGE sr 9223372036854775808 x
            SETRANGE sr 536870912 x
            SETRANGE sr 536870911 xx
            SETRANGE sr 9223372036854775807 x
            SETRANGE sr 536870912 ""
            SETRANGE new 536870912 x
            SETRANGE new 536870912 ""
            SETRANGE new -1 ""
            EXISTS new
            SET ri 1234
            SETRANGE ri 1 9
            OBJECT ENCODING ri
            GET ri
            SET ri 1234
            SETRANGE ri 0 ""
            OBJECT ENCODING ri
            SETRANGE ri 4 5
            GET ri
            INCR ri
            SETRANGE emb 0 hi
            OBJECT ENCODING emb
            SET emb hi
            SETRANGE emb 0 ho
            OBJECT ENCODING emb
            SET emb ""
            SETRANGE emb 3 x
            GET emb
            "#,
        );
        d.check(&[&b"SETRANGE"[..], b"bin", b"3", b"\x00\r\n"]);
        ln(d, "GET bin");
        // SETRANGE keeps the TTL.
        ln(d, "SET t abc EX 1000");
        ln(d, "SETRANGE t 1 X");
        ttls(d, "t");
        // The size limit follows proto-max-bulk-len (1mb is its minimum, cheap to reach).
        sc(
            d,
            r#"
            CONFIG SET proto-max-bulk-len 1048576
            SETRANGE big 1048575 x
            STRLEN big
            SETRANGE big 1048576 x
            SETRANGE big2 1048576 x
            SETRANGE big2 1048570 xxxxxxx
            EXISTS big2
            APPEND big y
            APPEND big ""
            SETRANGE big 1048575 y
            GETRANGE big 1048574 -1
            DEL big
            CONFIG SET proto-max-bulk-len 536870912
            "#,
        );
    });
}

#[test]
fn counters() {
    each(|d, _| {
        sc(
            d,
            r#"
            INCR c
            INCR c
            DECR c
            INCRBY c 10
            INCRBY c -20
            DECRBY c 5
            DECRBY c -5
            DECRBY c -9223372036854775808
            DECRBY c abc
            DECRBY c 9223372036854775807
            INCRBY c abc
            INCRBY c 1.5
            INCRBY c " 1"
            INCRBY c "1 "
            INCRBY c +1
            INCRBY c 01
            INCRBY c -0
            INCRBY c 9223372036854775808
            INCRBY c ""
            GET c
            SET c 9223372036854775807
            INCR c
            INCRBY c 0
            DECR c
            INCRBY c 1
            SET c -9223372036854775808
            DECR c
            DECRBY c 1
            INCRBY c -1
            INCR c
            SET c -9223372036854775808
            INCRBY c 9223372036854775807
            INCRBY c 9223372036854775807
            INCRBY c 2
            SET c -1
            INCRBY c -9223372036854775808
            SET c 0
            INCRBY c -9223372036854775808
            DECR c
            SET c -9223372036854775807
            DECRBY c 1
            DECRBY c 1
            SET c 1
            DECRBY c -9223372036854775807
            SET c 0
            DECRBY c 9223372036854775807
            DECRBY c 1
            DECRBY c 1
            "#,
        );
        for v in [
            " 1",
            "1 ",
            "007",
            "+1",
            "1.0",
            "",
            "abc",
            "9223372036854775808",
            "-9223372036854775809",
            "-0",
            "0x10",
            "1e3",
            "12345678901234567890123",
        ] {
            d.check(&["SET", "c", v]);
            ln(d, "INCR c");
            ln(d, "DECRBY c 3");
            ln(d, "GET c");
        }
        d.check(&[&b"SET"[..], b"c", b"1\x00"]);
        ln(d, "INCR c");
        sc(
            d,
            r#"
            SET c 12
            APPEND c 3
            OBJECT ENCODING c
            INCR c
            OBJECT ENCODING c
            GET c
            SET c 99
            SETRANGE c 0 1
            INCR c
            GET c
            OBJECT ENCODING c
            INCRBYFLOAT c 1
            OBJECT ENCODING c
            INCR c
            OBJECT ENCODING c
            INCRBY fresh 5
            OBJECT ENCODING fresh
            DECR fresh2
            DECRBY fresh3 -7
            MGET fresh fresh2 fresh3
            "#,
        );
        // Counters keep the TTL.
        ln(d, "SET t 5 EX 1000");
        ln(d, "INCR t");
        ttls(d, "t");
        ln(d, "DECRBY t 10");
        ttls(d, "t");
    });
}

#[test]
fn incrbyfloat() {
    each(|d, _| {
        sc(
            d,
            r#"
            INCRBYFLOAT f 0.1
            INCRBYFLOAT f 0.2
            GET f
            OBJECT ENCODING f
            INCRBYFLOAT f 1e3
            INCRBYFLOAT f -1000.3
            INCRBYFLOAT f 5.0e3
            INCRBYFLOAT f 1.5E-3
            INCRBYFLOAT f abc
            INCRBYFLOAT f inf
            INCRBYFLOAT f -inf
            INCRBYFLOAT f +inf
            INCRBYFLOAT f infinity
            INCRBYFLOAT f nan
            INCRBYFLOAT f -nan
            INCRBYFLOAT f ""
            INCRBYFLOAT f " 1"
            INCRBYFLOAT f "1 "
            INCRBYFLOAT f 0x10
            INCRBYFLOAT f 1e
            INCRBYFLOAT f .5
            INCRBYFLOAT f 5.
            INCRBYFLOAT f +1
            INCRBYFLOAT f -0
            INCRBYFLOAT f 1.10
            GET f
            SET f 10
            OBJECT ENCODING f
            INCRBYFLOAT f 1.5
            OBJECT ENCODING f
            INCRBYFLOAT f -1.5
            GET f
            OBJECT ENCODING f
            INCR f
            OBJECT ENCODING f
            INCRBYFLOAT f 1e400
            STRLEN f
            OBJECT ENCODING f
            INCRBYFLOAT f 1e4932
            INCRBYFLOAT f 1e-5000
            SET f abc
            INCRBYFLOAT f 1
            SET f inf
            INCRBYFLOAT f 1
            SET f 1.5
            INCR f
            INCRBY f 1
            SET f 9223372036854775807
            INCRBYFLOAT f 1
            SET f -9223372036854775808
            INCRBYFLOAT f 0
            OBJECT ENCODING f
            INCRBYFLOAT g 3.3333333333333333333333
            INCRBYFLOAT g2 0.123456789012345678
            INCRBYFLOAT g3 1e30
            INCRBYFLOAT g4 123456789012345678901234567890
            INCRBYFLOAT g5 -1e-30
            INCRBYFLOAT g6 5e-324
            INCRBYFLOAT g7 1.18973149535723176509e+4932
            INCRBYFLOAT g8 1.7976931348623157e308
            INCRBYFLOAT g8 1.7976931348623157e308
            SET l 123456789012345678901234567890123456789012345
            INCRBYFLOAT l 1
            OBJECT ENCODING l
            INCRBYFLOAT l 1e30
            OBJECT ENCODING l
            SET e ""
            INCRBYFLOAT e 1
            SET sp "1.5 "
            INCRBYFLOAT sp 1
            "#,
        );
        d.check(&["INCRBYFLOAT", "long", &"9".repeat(5120)]);
        d.check(&["INCRBYFLOAT", "long", &format!("0.5{}", "0".repeat(5116))]);
        d.check(&["INCRBYFLOAT", "long", &format!("0.5{}", "0".repeat(5117))]);
        ln(d, "GET long");
        d.check(&[&b"INCRBYFLOAT"[..], b"z", b"1\x00"]);
        // INCRBYFLOAT keeps the TTL (it overwrites the value in place).
        ln(d, "SET t 10 EX 1000");
        ln(d, "INCRBYFLOAT t 0.5");
        ttls(d, "t");
        ln(d, "SET t 10 PXAT 1");
        ln(d, "INCRBYFLOAT t 0.5");
        ln(d, "TTL t");
    });
}

#[test]
fn lcs() {
    each(|d, shards| {
        if shards > 1 {
            let s = |k: &str| percore::server::exec::shard_of_key(k.as_bytes(), shards);
            assert_ne!(
                s("key1"),
                s("key2"),
                "key1/key2 must be on different shards"
            );
            assert_ne!(s("la"), s("lb"), "la/lb must be on different shards");
        }
        sc(
            d,
            r#"
            MSET key1 ohmytext key2 mynewtext
            LCS key1 key2
            LCS key1 key2 LEN
            LCS key1 key2 IDX
            LCS key1 key2 IDX MINMATCHLEN 4
            LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN
            LCS key1 key2 IDX WITHMATCHLEN
            LCS key1 key2 WITHMATCHLEN IDX
            LCS key1 key2 IDX LEN
            LCS key1 key2 LEN IDX
            LCS key1 key2 LEN WITHMATCHLEN
            LCS key1 key2 MINMATCHLEN
            LCS key1 key2 MINMATCHLEN abc
            LCS key1 key2 MINMATCHLEN 1.5 IDX
            LCS key1 key2 MINMATCHLEN -5 IDX
            LCS key1 key2 IDX MINMATCHLEN 9223372036854775807
            LCS key1 key2 IDX MINMATCHLEN 9223372036854775808
            LCS key1 key2 FOO
            LCS key1 key2 IDX FOO
            LCS key1 key2 WITHMATCHLEN
            LCS key1 key2 MINMATCHLEN 3
            LCS key1 key2 len LEN
            LCS key1 key2 idx IDX minmatchlen 1 MINMATCHLEN 0
            LCS key1 missing
            LCS missing key1 IDX
            LCS missing missing2 LEN
            LCS missing missing2
            LCS missing missing2 IDX WITHMATCHLEN
            LCS key1 key1 IDX WITHMATCHLEN
            SET a 12345
            SET b 2345
            LCS a b
            LCS a b IDX WITHMATCHLEN
            SET a ""
            LCS a b
            LCS a b IDX
            LCS a b LEN
            MSET {x}a ACGTACGTTGCA {x}b GTACGTACAGCT
            LCS {x}a {x}b
            LCS {x}a {x}b IDX WITHMATCHLEN
            LCS {x}a {x}b IDX MINMATCHLEN 2
            LCS {x}a {x}b IDX MINMATCHLEN 2 WITHMATCHLEN
            LCS {x}a key2 IDX WITHMATCHLEN
            SET k1 ABCBDAB
            SET k2 BDCABA
            LCS k1 k2
            LCS k1 k2 IDX WITHMATCHLEN
            LCS k2 k1 IDX WITHMATCHLEN
            "#,
        );
        d.check(&[
            &b"MSET"[..],
            b"bin1",
            b"\x00\x01\r\n\xffab",
            b"bin2",
            b"a\r\x00\xff\nb",
        ]);
        ln(d, "LCS bin1 bin2");
        ln(d, "LCS bin1 bin2 IDX WITHMATCHLEN");
        // The transient table is limited by proto-max-bulk-len: (601*601*4) > 1mb.
        let a = "a".repeat(600);
        let b = "ab".repeat(300);
        ln(d, "CONFIG SET proto-max-bulk-len 1048576");
        d.check(&["MSET", "la", &a, "lb", &b, "{la}b", &b]);
        ln(d, "LCS la lb LEN");
        ln(d, "LCS la {la}b IDX");
        ln(d, "CONFIG SET proto-max-bulk-len 536870912");
        ln(d, "LCS la lb LEN");
        ln(d, "LCS la {la}b IDX MINMATCHLEN 2");
    });
}

#[test]
fn object_encoding_after_writes() {
    each(|d, _| {
        let x44 = "x".repeat(44);
        let x45 = "x".repeat(45);
        let d44 = "1".repeat(44);
        let values = [
            "0",
            "1",
            "-1",
            "9999",
            "10000",
            "123456789",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "12345678901234567890",
            "-0",
            "007",
            "+7",
            " 7",
            "1.5",
            "",
            "hello",
            &x44,
            &x45,
            &d44,
        ];
        for v in values {
            for cmd in [
                vec!["SET", "k", v],
                vec!["SETNX", "nx", v],
                vec!["SETEX", "k", "1000", v],
                vec!["PSETEX", "k", "1000000", v],
                vec!["GETSET", "k", v],
                vec!["MSET", "k", v, "k2", v],
                vec!["SET", "k", v, "KEEPTTL"],
                vec!["SET", "k", v, "GET"],
                vec!["APPEND", "ap", v],
            ] {
                d.check(&cmd);
                ln(d, "OBJECT ENCODING k");
                ln(d, "OBJECT ENCODING k2");
                ln(d, "OBJECT ENCODING nx");
                ln(d, "OBJECT ENCODING ap");
                ln(d, "DEL nx ap");
            }
            // Writes that modify an existing value.
            d.check(&["SET", "k", v]);
            ln(d, "APPEND k \"\"");
            ln(d, "OBJECT ENCODING k");
            d.check(&["SET", "k", v]);
            ln(d, "APPEND k 1");
            ln(d, "OBJECT ENCODING k");
            d.check(&["SET", "k", v]);
            ln(d, "SETRANGE k 0 \"\"");
            ln(d, "OBJECT ENCODING k");
            ln(d, "SETRANGE k 0 9");
            ln(d, "OBJECT ENCODING k");
            d.check(&["SET", "k", v]);
            ln(d, "INCR k");
            ln(d, "OBJECT ENCODING k");
            d.check(&["SET", "k", v]);
            ln(d, "INCRBYFLOAT k 1");
            ln(d, "OBJECT ENCODING k");
            d.check(&["SET", "k", v]);
            ln(d, "GETEX k PERSIST");
            ln(d, "OBJECT ENCODING k");
            ln(d, "GETDEL k");
            ln(d, "OBJECT ENCODING k");
        }
        ln(d, "OBJECT ENCODING missing");
    });
}

#[test]
fn ttl_kept_or_cleared() {
    each(|d, _| {
        let far = (now_s() + 2_000_000).to_string();
        // Every write, starting from a key with an absolute expiry (exactly comparable).
        let writes: &[&[&str]] = &[
            &["SET", "k", "v"],
            &["SET", "k", "v", "KEEPTTL"],
            &["SET", "k", "v", "XX"],
            &["SET", "k", "v", "NX"],
            &["SET", "k", "v", "GET"],
            &["SET", "k", "v", "XX", "KEEPTTL", "GET"],
            &["SETNX", "k", "v"],
            &["GETSET", "k", "v"],
            &["MSET", "k", "v"],
            &["MSETNX", "k", "v"],
            &["APPEND", "k", "v"],
            &["SETRANGE", "k", "0", "v"],
            &["SETRANGE", "k", "0", ""],
            &["INCR", "k"],
            &["DECRBY", "k", "2"],
            &["INCRBYFLOAT", "k", "1.5"],
            &["GETEX", "k"],
            &["GETEX", "k", "PERSIST"],
            &["GET", "k"],
            &["GETRANGE", "k", "0", "1"],
            &["STRLEN", "k"],
            &["LCS", "k", "k"],
            &["INCR", "k", "extra"],
            &["SET", "k", "v", "EX", "0"],
            &["GETEX", "k", "EX", "0"],
        ];
        for w in writes {
            d.check(&["SET", "k", "5", "EXAT", &far]);
            d.check(w);
            ln(d, "PEXPIRETIME k");
            ln(d, "GET k");
        }
    });
}

#[test]
fn arity_errors() {
    each(|d, _| {
        sc(
            d,
            r#"
            GET
            GET a b
            SET
            SET a
            SETNX a
            SETNX a b c
            SETEX a 1
            SETEX a 1 b c
            PSETEX a 1
            PSETEX a 1 b c
            GETSET a
            GETSET a b c
            GETDEL
            GETDEL a b
            GETEX
            MGET
            MSET
            MSET a
            MSET a b c
            MSETNX
            MSETNX a
            MSETNX a b c
            APPEND a
            APPEND a b c
            STRLEN
            STRLEN a b
            GETRANGE a 0
            GETRANGE a 0 1 2
            SUBSTR a 0
            SUBSTR a 0 1 2
            SETRANGE a 0
            SETRANGE a 0 b c
            INCR
            INCR a b
            DECR
            DECR a b
            INCRBY a
            INCRBY a 1 2
            DECRBY a
            DECRBY a 1 2
            INCRBYFLOAT a
            INCRBYFLOAT a 1 2
            LCS a
            LCS
            get
            Get a b
            "#,
        );
        // Nothing above created a key.
        ln(d, "DBSIZE");
    });
}

#[test]
fn option_keywords_end_at_nul() {
    // Redis matches option words with strcasecmp on the C string: "NX\0junk" is NX.
    each(|d, _| {
        let cases: &[&[&[u8]]] = &[
            &[b"SET", b"k", b"v", b"nx\x00z"],
            &[b"SET", b"k", b"v", b"nx\x00z"],
            &[b"SET", b"k", b"v", b"XX\x00"],
            &[b"SET", b"k", b"v", b"get\x00x"],
            &[b"SET", b"k", b"v", b"keepttl\x00z"],
            &[b"SET", b"k", b"v", b"ex\x00", b"100"],
            &[b"SET", b"k", b"v", b"\x00ex", b"100"],
            &[b"GETEX", b"k", b"persist\x00"],
            &[b"GETEX", b"k", b"PXAT\x00\x00", b"1"],
            &[b"SET", b"k1", b"ohmytext"],
            &[b"SET", b"k2", b"mynewtext"],
            &[b"LCS", b"k1", b"k2", b"len\x00"],
            &[b"LCS", b"k1", b"k2", b"IDX\x00x", b"withmatchlen\x00"],
            &[b"LCS", b"k1", b"k2", b"idx", b"MINMATCHLEN\x00", b"4"],
            &[b"LCS", b"k1", b"k2", b"idx", b"MINMATCHLEN", b"4\x00"],
            &[b"SET", b"k", b"v", b"EX", b"100\x00"],
        ];
        for c in cases {
            d.check(c);
        }
    });
}

#[test]
fn resp3_subset() {
    each_resp3(|d, _| {
        sc(
            d,
            r#"
            GET missing
            SET k v
            SET k v NX
            SET k v2 XX GET
            SET nokey v XX GET
            SETNX k v
            GETEX missing
            GETEX k PERSIST
            GETDEL missing
            GETSET missing v
            MGET k missing nokey
            MSET a 1 b 2 c 3
            MSETNX a 1 zz 2
            MGET a b c zz
            INCR a
            INCRBYFLOAT b 0.5
            INCRBYFLOAT b inf
            APPEND c x
            STRLEN c
            GETRANGE c 0 -1
            GETRANGE missing 0 -1
            SETRANGE c 5 y
            GET c
            MSET key1 ohmytext key2 mynewtext
            LCS key1 key2
            LCS key1 key2 LEN
            LCS key1 key2 IDX
            LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN
            LCS missing key2 IDX
            SET k v EX 0
            INCR k
            GET
            OBJECT ENCODING a
            "#,
        );
    });
}

/// keyspace_hits, keyspace_misses and expired_keys from INFO stats.
fn key_stats(c: &mut common::Raw) -> Vec<String> {
    let info = c.cmds("INFO stats").text();
    let v: Vec<String> = info
        .lines()
        .filter(|l| {
            ["keyspace_hits:", "keyspace_misses:", "expired_keys:"]
                .iter()
                .any(|f| l.starts_with(f))
        })
        .map(str::to_owned)
        .collect();
    assert_eq!(v.len(), 3, "{info}");
    v
}

#[test]
fn keyspace_stats() {
    // Each command looks its keys up for reading (counted as hit or miss) or for writing
    // (not counted) as Redis does, and expires an expired key it meets (counted).
    each(|d, _| {
        // Only the commands may expire keys here, not the background cycle.
        ln(d, "DEBUG SET-ACTIVE-EXPIRE 0");
        let cmds: &[&str] = &[
            "GET k",
            "SET k v",
            "SET k v GET",
            "SET k v NX GET",
            "SET k v XX",
            "SET k v EX 0 GET",
            "SETNX k v",
            "SETEX k 100 v",
            "GETSET k v",
            "GETDEL k",
            "GETEX k",
            "GETEX k EX abc",
            "MGET k k {k}2 x",
            "MSET k v",
            "MSET k v x w {k}2 u",
            "MSETNX k v",
            "MSETNX k v x w",
            "MSETNX {k}3 v {k}4 w",
            "APPEND k v",
            "STRLEN k",
            "GETRANGE k 0 1",
            "GETRANGE k x 1",
            "SUBSTR k 0 1",
            "SETRANGE k 1 v",
            "SETRANGE k 1 \"\"",
            "INCR k",
            "DECRBY k 2",
            "INCRBYFLOAT k 1.5",
            "LCS k x",
            "LCS k x IDX",
        ];
        for c in cmds {
            for setup in [
                // Missing keys.
                "DEL k x {k}2 {k}3 {k}4",
                // Live keys.
                "MSET k 5 x 6 {k}2 7",
                // Keys that exist but have expired: the command must expire them.
                "SET k 1 PXAT 1\nSET x 1 PXAT 1\nSET {k}2 1 PXAT 1",
            ] {
                sc(d, setup);
                ln(d, "CONFIG RESETSTAT");
                ln(d, c);
                assert_eq!(
                    key_stats(&mut d.redis),
                    key_stats(&mut d.percore),
                    "stats after {setup}; {c}"
                );
            }
        }
        ln(d, "DEBUG SET-ACTIVE-EXPIRE 1");
    });
}

/// Runs `n` pairs of overlapping MSETNX from two connections at once; returns how many
/// pairs both succeeded (Redis: never, one MSETNX of a pair sees the other's key).
fn msetnx_race(server: &Server, n: usize) -> usize {
    let batch = |first: &str, second: &str, v: &str| -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let (a, b) = (format!("{first}{i}"), format!("{second}{i}"));
                common::encode(&["MSETNX", &a, v, &b, v])
            })
            .collect()
    };
    let (w1, w2) = (batch("x", "y", "1"), batch("y", "z", "2"));
    let (mut c1, mut c2) = (server.raw(), server.raw());
    let t1 = std::thread::spawn(move || {
        c1.send(&w1);
        (0..n).map(|_| c1.read()).collect::<Vec<_>>()
    });
    let t2 = std::thread::spawn(move || {
        c2.send(&w2);
        (0..n).map(|_| c2.read()).collect::<Vec<_>>()
    });
    let (r1, r2) = (t1.join().expect("thread"), t2.join().expect("thread"));
    r1.iter()
        .zip(&r2)
        .filter(|(a, b)| **a == Resp::Int(1) && **b == Resp::Int(1))
        .count()
}

#[test]
fn msetnx_across_shards_is_atomic() {
    let redis = Server::redis(&[]);
    assert_eq!(msetnx_race(&redis, 2000), 0, "redis-server");
    let percore = Server::percore(4, &[]);
    assert_eq!(msetnx_race(&percore, 2000), 0, "percore, 4 shards");
}
