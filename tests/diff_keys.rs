//! Differential tests of the keyspace command family (DEL, EXISTS, TOUCH, TYPE,
//! the EXPIRE/TTL family, PERSIST, RENAME, COPY, MOVE, KEYS, SCAN, RANDOMKEY,
//! OBJECT, DBSIZE, FLUSHDB/FLUSHALL, SWAPDB, SELECT) against Debian's
//! redis-server 7.0.15, with percore on 1 and 4 shards.
//!
//! Keys `a`, `b`, `c`, `d` land on four different shards with 4 shards (checked
//! below), `{t}...` keys share one shard: every multi-key command is run both
//! across shards and within one. Replies are compared exactly, except where a
//! difference is inherent (SCAN cursors, random picks, idle times), which is
//! said where it happens.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Cmp, Diff, Raw, Resp, Server};
use percore::server::exec::shard_of_key;

/// A far-future absolute time (year 3000) in seconds, and the same in ms with a
/// sub-second part, so that EXPIRETIME's rounding is visible.
const FAR_S: &str = "32503680000";
const FAR_MS: &str = "32503680000600";

/// Keys on four different shards with 4 shards; a test that relies on it checks it.
const SPREAD: [&str; 4] = ["a", "b", "c", "d"];

fn assert_spread() {
    let shards: BTreeSet<usize> = SPREAD
        .iter()
        .map(|k| shard_of_key(k.as_bytes(), 4))
        .collect();
    assert_eq!(shards.len(), 4, "test keys must cover all 4 shards");
    assert_eq!(shard_of_key(b"{t}a", 4), shard_of_key(b"{t}b", 4));
}

/// Runs `f` against redis-server and percore with 1 and then 4 shards, from a
/// flushed state, with active expiry off: an expired key then stays until a
/// command meets it, so both servers expire (and count) it at the same point.
/// (Short TTLs in the tests are never 1 ms with PEXPIRE: Redis may take the
/// key as already expired and delete it at once when its clock ticked during
/// the command, which would not count as an expiry.)
fn each_setup(f: impl Fn(&mut Diff)) {
    assert_spread();
    let redis = Server::redis(&[]);
    for shards in [1, 4] {
        let percore = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.line("FLUSHALL");
        d.line("CONFIG RESETSTAT");
        d.line("DEBUG SET-ACTIVE-EXPIRE 0");
        f(&mut d);
    }
}

/// One field of INFO `section` (e.g. `expired_keys` of `stats`).
fn info_field(raw: &mut Raw, section: &str, field: &str) -> Option<String> {
    let text = raw.cmd(&["INFO", section]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.to_string()))
}

/// INFO stats counters a client can see change with keyspace commands must match.
fn stats_match(d: &mut Diff) {
    for f in ["expired_keys", "keyspace_hits", "keyspace_misses"] {
        let a = info_field(&mut d.redis, "stats", f);
        let b = info_field(&mut d.percore, "stats", f);
        assert_eq!(
            a, b,
            "INFO stats {f} differs; recent commands: {:#?}",
            d.log
        );
    }
}

/// INFO keyspace must list the same databases with the same key and expire
/// counts; avg_ttl is a sampled estimate, so it is left out.
fn keyspace_match(d: &mut Diff) {
    let strip = |raw: &mut Raw| -> Vec<String> {
        raw.cmd(&["INFO", "keyspace"])
            .text()
            .lines()
            .map(|l| l.split(",avg_ttl=").next().unwrap_or("").to_string())
            .collect()
    };
    let a = strip(&mut d.redis);
    let b = strip(&mut d.percore);
    assert_eq!(a, b, "INFO keyspace differs; recent commands: {:#?}", d.log);
}

#[test]
fn del_exists_touch_type() {
    each_setup(|d| {
        d.script(
            r#"
            MSET a 1 b 2 c 3 d 4 {t}a 5 {t}b 6
            EXISTS a b c d e
            EXISTS a a a
            EXISTS a b a b nosuch a d d
            EXISTS {t}a {t}b {t}c {t}a
            EXISTS nosuch
            TOUCH a b c d e
            TOUCH a a nosuch
            TOUCH {t}a {t}b
            TYPE a
            TYPE {t}b
            TYPE nosuch
            DEL a nosuch b b
            EXISTS a b c d
            DEL a
            UNLINK c d {t}a {t}b nosuch
            UNLINK c
            DBSIZE
            DEL
            UNLINK
            EXISTS
            TOUCH
            TYPE
            TYPE a b
            MSET a 1 b 2 c 3 d 4
            DEL a b c d a b c d
            DBSIZE
            "#,
        );
        // Expired keys: gone for every command, and counted as expired once.
        d.script(
            r#"
            SET a v PX 1
            SET b v PX 1
            SET c v PX 1
            SET d v PX 1
            SET {t}a v PX 1
            SET {t}b v PX 1
            SET keep v
            "#,
        );
        std::thread::sleep(Duration::from_millis(20));
        d.script(
            r#"
            EXISTS a b
            TOUCH c
            TYPE d
            DEL {t}a {t}b keep
            EXISTS a b c d {t}a {t}b keep
            DBSIZE
            "#,
        );
        stats_match(d);
    });
}

/// The four EXPIRE commands, each with a low and a high time that are valid,
/// far in the future and far apart, and whether the time is absolute.
const EXPIRE_CMDS: [(&str, &str, &str, bool); 4] = [
    ("EXPIRE", "100000", "200000", false),
    ("PEXPIRE", "100000000", "200000000", false),
    ("EXPIREAT", FAR_S, "32503780000", true),
    ("PEXPIREAT", FAR_MS, "32503780000600", true),
];

#[test]
fn expire_options_and_errors() {
    each_setup(|d| {
        for (cmd, t, _, _) in EXPIRE_CMDS {
            let run = |d: &mut Diff, rest: &str| {
                d.line(&format!("{cmd} {rest}"));
            };
            d.line("SET a v");
            // Option parsing errors come before the time is parsed or the key looked up.
            for opts in [
                "NX XX",
                "XX NX",
                "NX GT",
                "NX LT",
                "GT NX",
                "LT NX",
                "GT LT",
                "LT GT",
                "XX GT LT",
                "NX XX GT LT",
                "nx gt",
                "Gt lT",
                "NX NX XX",
            ] {
                run(d, &format!("a {t} {opts}"));
                run(d, &format!("nosuch {t} {opts}"));
                run(d, &format!("a notanumber {opts}"));
            }
            for opts in ["FOO", "NX FOO", "FOO NX", "GT LT FOO", "nxx", "-", "1"] {
                run(d, &format!("a {t} {opts}"));
                run(d, &format!("a notanumber {opts}"));
            }
            for bad in [
                "notanumber",
                "1.5",
                "0x10",
                "+-1",
                "1e3",
                "9223372036854775808",
            ] {
                run(d, &format!("a {bad}"));
            }
            d.check(&[cmd, "a", ""]);
            d.check(&[cmd, "a", " 1"]);
            d.check(&[cmd, "a", "1 "]);
            // Option texts are echoed as sent, bytes and all.
            d.check(&[cmd.as_bytes(), b"a", t.as_bytes(), b"a\xffb"]);
            d.check(&[cmd.as_bytes(), b"a", t.as_bytes(), b"with space"]);
            d.line(&format!("{cmd} a"));
            d.line(cmd);
            d.line("EXISTS a");
        }
        stats_match(d);
    });
}

#[test]
fn expire_conditions_and_ttls() {
    each_setup(|d| {
        for (cmd, low, high, absolute) in EXPIRE_CMDS {
            // TTL is stable for relative times (rounded to the second, far from a
            // boundary); an absolute time is read back exactly instead.
            let show = if absolute { "PEXPIRETIME" } else { "TTL" };
            for k in ["a", "b", "c", "d", "{t}a"] {
                let s = format!(
                    r#"
                    SET {k} v
                    {cmd} {k} {low} XX
                    {cmd} {k} {low} GT
                    {show} {k}
                    {cmd} {k} {low} LT
                    {show} {k}
                    {cmd} {k} {low} NX
                    {cmd} {k} {low} LT
                    {cmd} {k} {high} XX
                    {show} {k}
                    {cmd} {k} {low} GT
                    {cmd} {k} {high} LT
                    {cmd} {k} {low} LT
                    {show} {k}
                    {cmd} {k} {high} GT
                    {show} {k}
                    {cmd} {k} {low} XX GT
                    {cmd} {k} {low} XX LT
                    {cmd} {k} {high} xx gt
                    {show} {k}
                    PERSIST {k}
                    PERSIST {k}
                    TTL {k}
                    PTTL {k}
                    EXPIRETIME {k}
                    PEXPIRETIME {k}
                    {cmd} {k} {low} NX
                    {cmd} {k} {high} NX
                    {show} {k}
                    {cmd} nosuch {low}
                    {cmd} nosuch {low} NX
                    {cmd} nosuch {low} XX
                    {cmd} nosuch {low} GT
                    {cmd} nosuch {low} LT
                    "#
                );
                d.script(&s);
                if absolute {
                    // Equal times: neither greater nor less.
                    d.line(&format!("{cmd} {k} {low} GT"));
                    d.line(&format!("{cmd} {k} {low} LT"));
                    d.line(&format!("{cmd} {k} {low} XX"));
                    d.line(&format!("PEXPIRETIME {k}"));
                }
            }
        }
        // Absolute times: exact TTL readings, including EXPIRETIME's rounding to
        // the nearest second (…600 ms rounds up).
        d.script(&format!(
            r#"
            SET a v
            PEXPIREAT a {FAR_MS}
            PEXPIRETIME a
            EXPIRETIME a
            PEXPIREAT a 32503680000499
            EXPIRETIME a
            PEXPIREAT a 32503680000500
            EXPIRETIME a
            EXPIREAT a {FAR_S}
            EXPIRETIME a
            PEXPIRETIME a
            TTL nosuch
            PTTL nosuch
            EXPIRETIME nosuch
            PEXPIRETIME nosuch
            SET b v
            TTL b
            PTTL b
            EXPIRETIME b
            PEXPIRETIME b
            TTL
            TTL a b
            PERSIST
            PERSIST nosuch
            "#
        ));
        // Relative times: TTL rounds to the nearest second, far from a boundary here.
        d.script(
            r#"
            SET c v
            EXPIRE c 1000
            TTL c
            PEXPIRE c 1000000
            TTL c
            SET c v EX 1000
            TTL c
            "#,
        );
        stats_match(d);
    });
}

#[test]
fn expire_past_times_and_overflow() {
    each_setup(|d| {
        // Zero, negative and past times delete the key (and reply 1).
        for (cmd, t) in [
            ("EXPIRE", "0"),
            ("EXPIRE", "-10"),
            ("PEXPIRE", "0"),
            ("PEXPIRE", "-1"),
            ("EXPIREAT", "0"),
            ("EXPIREAT", "1"),
            ("EXPIREAT", "-100"),
            ("PEXPIREAT", "0"),
            ("PEXPIREAT", "1000"),
            ("EXPIRE", "-9223372036854775"),
            ("PEXPIRE", "-9223372036854775808"),
            ("PEXPIREAT", "-9223372036854775808"),
        ] {
            for k in ["a", "b", "{t}a"] {
                d.line(&format!("SET {k} v"));
                d.line(&format!("{cmd} {k} {t}"));
                d.line(&format!("EXISTS {k}"));
                // Conditions are checked before the deletion.
                d.line(&format!("SET {k} v"));
                d.line(&format!("{cmd} {k} {t} XX"));
                d.line(&format!("{cmd} {k} {t} GT"));
                d.line(&format!("EXISTS {k}"));
                d.line(&format!("SET {k} v EX 1000"));
                d.line(&format!("{cmd} {k} {t} GT"));
                d.line(&format!("{cmd} {k} {t} NX"));
                d.line(&format!("TTL {k}"));
                d.line(&format!("{cmd} {k} {t} LT"));
                d.line(&format!("EXISTS {k}"));
                d.line(&format!("{cmd} {k} {t}"));
            }
        }
        // Overflow in unit conversion or base-time addition is an error, key or not.
        for (cmd, t) in [
            ("EXPIRE", "9223372036854775807"),
            ("EXPIRE", "9223372036854776"),
            ("EXPIRE", "9223372036854775"),
            ("EXPIRE", "-9223372036854776"),
            ("EXPIRE", "-9223372036854775808"),
            ("PEXPIRE", "9223372036854775807"),
            ("PEXPIRE", "9223372036854000000"),
            ("EXPIREAT", "9223372036854775807"),
            ("EXPIREAT", "9223372036854776"),
            ("EXPIREAT", "-9223372036854776"),
            ("EXPIREAT", "9223372036854775"),
            ("PEXPIREAT", "9223372036854775807"),
        ] {
            for k in ["a", "nosuch"] {
                d.line("SET a v");
                d.line(&format!("{cmd} {k} {t}"));
                d.line(&format!("{cmd} {k} {t} NX"));
                d.line("PEXPIRETIME a");
                d.line("EXPIRETIME a");
                d.line("EXISTS a");
            }
        }
        // The largest TTLs on every shard: active expiry samples them (its TTL
        // average must not overflow) and INFO keyspace reports them.
        for k in SPREAD {
            d.line(&format!("SET {k} v"));
            d.line(&format!("PEXPIREAT {k} 9223372036854775807"));
        }
        d.line("DEBUG SET-ACTIVE-EXPIRE 1");
        std::thread::sleep(Duration::from_millis(300));
        d.line("DEBUG SET-ACTIVE-EXPIRE 0");
        keyspace_match(d);
        for k in SPREAD {
            d.line(&format!("EXPIRETIME {k}"));
            d.line(&format!("PEXPIRETIME {k}"));
        }
        stats_match(d);
    });
}

#[test]
fn rename_and_renamenx() {
    each_setup(|d| {
        d.script(&format!(
            r#"
            RENAME nosuch x
            RENAMENX nosuch x
            RENAME nosuch nosuch
            RENAMENX nosuch nosuch
            SET a 1
            RENAME a a
            RENAMENX a a
            GET a
            RENAME a b
            EXISTS a b
            GET b
            SET c 3
            RENAMENX b c
            GET b
            GET c
            RENAMENX b d
            EXISTS b d
            GET d
            RENAME d {{t}}a
            RENAME {{t}}a {{t}}b
            GET {{t}}b
            RENAME {{t}}b c
            GET c
            DBSIZE
            SET a v
            PEXPIREAT a {FAR_MS}
            RENAME a b
            PEXPIRETIME b
            PEXPIRETIME a
            RENAMENX b c
            RENAMENX b a
            PEXPIRETIME a
            SET c other
            PEXPIREAT c 32503680009999
            RENAME a c
            GET c
            PEXPIRETIME c
            SET d plain
            RENAME d c
            GET c
            PEXPIRETIME c
            SET b v
            EXPIRE b 1000
            RENAMENX c b
            GET b
            TTL b
            RENAME a
            RENAME a b c
            RENAMENX a
            "#
        ));
        // Encodings survive a rename (the object moves as is).
        d.script(
            r#"
            SET a 12345
            RENAME a b
            OBJECT ENCODING b
            SET c hello
            RENAME c d
            OBJECT ENCODING d
            SET a xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
            RENAME a c
            OBJECT ENCODING c
            APPEND d !
            RENAME d a
            OBJECT ENCODING a
            GET a
            "#,
        );
        // An expired source is missing; an expired destination does not block RENAMENX.
        d.script("SET a v PX 1\nSET b w PX 1\nSET c x");
        std::thread::sleep(Duration::from_millis(20));
        d.script(
            r#"
            RENAME a x
            RENAMENX c b
            GET b
            EXISTS a c
            "#,
        );
        // RENAME onto an expired destination (across shards and within one):
        // Redis's lookup of the destination expires it, and counts it.
        d.script("SET b w PX 1\nSET a v\nSET {t}b w PX 1\nSET {t}a v\nSET d w PX 1\nSET c v");
        std::thread::sleep(Duration::from_millis(20));
        d.script(
            r#"
            RENAME a b
            RENAME {t}a {t}b
            RENAMENX c d
            MGET a b {t}a {t}b c d
            DBSIZE
            "#,
        );
        stats_match(d);
    });
}

#[test]
fn copy_command() {
    each_setup(|d| {
        d.script(&format!(
            r#"
            SET a hello
            COPY a b
            GET b
            COPY a b
            SET a world
            COPY a b REPLACE
            GET b
            COPY a a
            COPY a a DB 0
            COPY a a REPLACE
            COPY nosuch nosuch
            COPY a a DB 1
            COPY a b DB 16
            COPY a b DB -1
            COPY a b DB abc
            COPY a b DB 99999999999
            COPY a b DB 2147483648
            COPY a b DB 1.0
            COPY a b DB
            COPY a b REPLACE DB
            COPY a b foo
            COPY a b REPLACE foo
            COPY a b DB 1 DB 2
            COPY a b REPLACE REPLACE
            COPY a b db 3 replace
            COPY nosuch b
            COPY nosuch b REPLACE
            COPY nosuch b DB 1
            COPY a
            COPY a {{t}}a
            COPY {{t}}a {{t}}b
            GET {{t}}b
            SET t v
            PEXPIREAT t {FAR_MS}
            COPY t c
            PEXPIRETIME c
            COPY t d DB 2
            PEXPIRETIME d
            SET p plain
            COPY p c
            COPY p c REPLACE
            PEXPIRETIME c
            GET c
            COPY t p REPLACE
            PEXPIRETIME p
            SELECT 1
            GET a
            GET b
            COPY a a
            COPY a a DB 0
            COPY a b DB 0 REPLACE
            SELECT 2
            GET d
            PEXPIRETIME d
            SELECT 3
            GET b
            SELECT 0
            GET b
            DBSIZE
            "#
        ));
        // Encodings of copies: each copy is a new object (refcount 1).
        d.script(
            r#"
            SET n 12345
            COPY n n2
            OBJECT ENCODING n2
            SET s hello
            COPY s s2
            OBJECT ENCODING s2
            SET r xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
            COPY r r2
            OBJECT ENCODING r2
            APPEND s !
            COPY s s3
            OBJECT ENCODING s3
            GET s3
            SET small 100
            COPY small small2
            OBJECT REFCOUNT small
            OBJECT REFCOUNT small2
            OBJECT REFCOUNT n2
            RENAME small2 small3
            OBJECT REFCOUNT small3
            EXPIRE small3 1000
            OBJECT REFCOUNT small3
            PERSIST small3
            OBJECT REFCOUNT small3
            MOVE small3 1
            SELECT 1
            OBJECT REFCOUNT small3
            COPY small3 small4 DB 0
            SELECT 0
            OBJECT REFCOUNT small4
            INCR small4
            OBJECT REFCOUNT small4
            COPY small4 s5
            INCRBY s5 10000
            OBJECT REFCOUNT s5
            OBJECT ENCODING s5
            "#,
        );
        // COPY onto an expired destination: it does not count as existing.
        d.script("SET a v\nSET b w PX 1\nSELECT 1\nSET c w PX 1\nSELECT 0");
        std::thread::sleep(Duration::from_millis(20));
        d.script("COPY a b\nCOPY a c DB 1\nGET b\nSELECT 1\nGET c\nSELECT 0");
        stats_match(d);
    });
}

#[test]
fn move_command() {
    each_setup(|d| {
        d.script(&format!(
            r#"
            SET m v
            MOVE m 0
            MOVE nosuch 0
            MOVE nosuch 1
            MOVE m 16
            MOVE m -1
            MOVE m abc
            MOVE m 1.5
            MOVE m 2147483648
            MOVE m
            MOVE m 1 2
            PEXPIREAT m {FAR_MS}
            MOVE m 1
            MOVE m 1
            EXISTS m
            SELECT 1
            GET m
            PEXPIRETIME m
            SET x in1
            SELECT 0
            SET x in0
            MOVE x 1
            GET x
            SELECT 1
            GET x
            MOVE m 0
            SELECT 0
            GET m
            PEXPIRETIME m
            "#
        ));
        for k in SPREAD {
            d.line(&format!("SET {k} {k}"));
            d.line(&format!("MOVE {k} 5"));
        }
        d.script("SELECT 5\nMGET a b c d\nDBSIZE\nSELECT 0\nDBSIZE");
        // MOVE onto a key that expired in the destination database.
        d.script("SET m v\nSELECT 6\nSET m w PX 1\nSELECT 0");
        std::thread::sleep(Duration::from_millis(20));
        d.script("MOVE m 6\nSELECT 6\nGET m\nSELECT 0");
        stats_match(d);
    });
}

/// Key names covering glob corner cases, spread over shards.
const GLOB_KEYS: &[&str] = &[
    "a",
    "b",
    "c",
    "d",
    "hello",
    "hallo",
    "hxllo",
    "hllo",
    "heeeello",
    "h[e]llo",
    "h*llo",
    "h?llo",
    "h\\llo",
    "foo:1",
    "foo:2",
    "foo:10",
    "foo:",
    "bar\\x",
    "{t}a",
    "{t}b",
    "{t}",
    "user:1000:name",
    "user:1001:age",
    "αβγ",
    "a\\b",
    "[",
    "]",
    "-",
    "^",
    "*",
    "?",
    "ab",
    "abc",
    "aXbYc",
    "\\",
    "x-y",
    "x]y",
    "x^y",
    "A",
    "B",
];

const PATTERNS: &[&str] = &[
    "*",
    "h?llo",
    "h*llo",
    "h[ae]llo",
    "h[^e]llo",
    "h[a-b]llo",
    "h[b-a]llo",
    "h[!e]llo",
    "foo:*",
    "foo:?",
    "foo:[0-9]*",
    "foo:[0-9]",
    "*:*",
    "*:*:*",
    "\\*",
    "h\\*llo",
    "h\\?llo",
    "[",
    "[a",
    "*[",
    "a\\",
    "[^]",
    "[]]",
    "\\[",
    "{t}*",
    "*}*",
    "",
    "?",
    "??",
    "???",
    "[z-a]",
    "*a*b*",
    "**",
    "x",
    "*\\\\*",
    "h\\\\llo",
    "[\\]]",
    "x[\\^]y",
    "x[-]y",
    "x[a-]y",
    "[A-Z]",
    "[a-Z]",
    "[^a-z]",
    "a*",
    "*c",
    "a?c",
    "a[",
    "a[b",
    "[[]",
    "\\",
    "α*",
    "*γ",
    "?βγ",
    "user:100?:*",
    "h[a-z-]llo",
    "*[*",
    "x[^^]y",
    "[^-]",
    "[\\-]",
];

#[test]
fn keys_patterns() {
    each_setup(|d| {
        for (db, keys) in [("0", GLOB_KEYS), ("1", &GLOB_KEYS[..12])] {
            d.line(&format!("SELECT {db}"));
            for k in keys {
                d.check(&["SET", k, "v"]);
            }
            d.check(&["SET", "", "empty"]);
            for p in PATTERNS {
                d.run(Cmp::Unordered, &["KEYS", p]);
            }
        }
        d.line("SELECT 2");
        d.line("KEYS *");
        d.line("KEYS");
        d.line("KEYS a b");
        // Expired keys are not listed (they still count in DBSIZE until collected).
        d.line("SELECT 0");
        d.line("PEXPIRE hello 30");
        d.line("PEXPIRE {t}a 30");
        std::thread::sleep(Duration::from_millis(80));
        d.run(Cmp::Unordered, &["KEYS", "*"]);
        d.run(Cmp::Unordered, &["KEYS", "h*"]);
        d.line("DBSIZE");
    });
}

/// Iterates SCAN to completion; returns every key seen. Panics on an error reply.
fn scan_all(raw: &mut Raw, opts: &[&str]) -> BTreeSet<Vec<u8>> {
    let mut cursor = "0".to_string();
    let mut seen = BTreeSet::new();
    for _ in 0..100_000 {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(opts);
        let r = raw.cmd(&args);
        let items = r.items();
        assert_eq!(items.len(), 2, "SCAN reply shape: {r:?}");
        for k in items[1].items() {
            match k {
                Resp::Bulk(Some(b)) => {
                    seen.insert(b.clone());
                }
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

/// SCAN on both servers to completion; the sets of keys must be equal.
fn scan_same(d: &mut Diff, opts: &[&str]) -> usize {
    let a = scan_all(&mut d.redis, opts);
    let b = scan_all(&mut d.percore, opts);
    assert_eq!(a, b, "SCAN {opts:?} sets differ");
    a.len()
}

/// A SCAN reply whose cursor differs by design: compare everything but the cursor.
fn scan_shape(d: &mut Diff, args: &[&[u8]]) {
    let a = d.redis.cmd(args);
    let b = d.percore.cmd(args);
    match (&a, &b) {
        (Resp::Array(Some(x)), Resp::Array(Some(y))) => {
            assert_eq!(x.len(), 2);
            assert_eq!(y.len(), 2, "{b:?}");
            assert!(matches!(y[0], Resp::Bulk(Some(_))), "{b:?}");
            assert!(matches!(y[1], Resp::Array(Some(_))), "{b:?}");
        }
        _ => assert_eq!(a, b, "SCAN {args:?}"),
    }
}

#[test]
fn scan_options_and_sets() {
    each_setup(|d| {
        for k in GLOB_KEYS {
            d.check(&["SET", k, "v"]);
        }
        let mut bulk = vec!["MSET".to_string()];
        for i in 0..300 {
            bulk.push(format!("key:{i}"));
            bulk.push(i.to_string());
        }
        d.check(&bulk);
        let total = GLOB_KEYS.len() + 300;
        assert_eq!(scan_same(d, &[]), total);
        assert_eq!(scan_same(d, &["COUNT", "1"]), total);
        assert_eq!(scan_same(d, &["COUNT", "7"]), total);
        assert_eq!(scan_same(d, &["COUNT", "1000"]), total);
        assert_eq!(scan_same(d, &["MATCH", "*"]), total);
        assert_eq!(scan_same(d, &["MATCH", "key:1*", "COUNT", "5"]), 111);
        for p in PATTERNS {
            scan_same(d, &["MATCH", p, "COUNT", "3"]);
        }
        assert_eq!(scan_same(d, &["TYPE", "string"]), total);
        assert_eq!(scan_same(d, &["type", "STRING", "count", "20"]), total);
        assert_eq!(scan_same(d, &["TYPE", "list"]), 0);
        assert_eq!(scan_same(d, &["TYPE", "nosuchtype"]), 0);
        assert_eq!(scan_same(d, &["MATCH", "foo:*", "TYPE", "string"]), 4);
        assert_eq!(scan_same(d, &["MATCH", "nomatch*", "COUNT", "2"]), 0);
        // Option errors.
        d.script(
            r#"
            SCAN 0 COUNT 0
            SCAN 0 COUNT -1
            SCAN 0 COUNT abc
            SCAN 0 COUNT 1.5
            SCAN 0 COUNT 99999999999999999999
            SCAN 0 COUNT
            SCAN 0 MATCH
            SCAN 0 TYPE
            SCAN 0 MATCH * COUNT
            SCAN 0 FOO bar
            SCAN 0 COUNT 10 FOO
            SCAN 0 COUNT 0 MATCH
            SCAN abc
            SCAN 1.5
            SCAN 0x10
            SCAN 99999999999999999999999
            SCAN 18446744073709551616
            SCAN -
            SCAN abc COUNT 0
            SCAN 0 COUNT 0 FOO
            SCAN
            "#,
        );
        d.check(&["SCAN", " 0"]);
        d.check(&["SCAN", "0 "]);
        d.check(&["SCAN", "\t0"]);
        d.check(&["SCAN", "1\n"]);
        // Cursors Redis accepts (strtoul): their values differ by design, their
        // acceptance and reply shape must not.
        for c in [
            &b""[..],
            b"+0",
            b"-0",
            b"-1",
            b"18446744073709551615",
            b"007",
            b"0\x00junk",
        ] {
            scan_shape(d, &[b"SCAN", c]);
            scan_shape(d, &[b"SCAN", c, b"COUNT", b"5", b"MATCH", b"zz*"]);
        }
        // Empty database: one call, cursor 0, nothing.
        d.line("SELECT 9");
        d.line("SCAN 0");
        d.line("SCAN 0 COUNT 1 MATCH * TYPE string");
        // Another database's keys only.
        d.line("MSET a 1 b 2 c 3 d 4 {t}a 5");
        assert_eq!(scan_same(d, &["COUNT", "1"]), 5);
        d.line("SELECT 0");
        // Expired keys are not returned. Filters apply in Redis's order: MATCH,
        // then TYPE (a lookup: counts a hit, or a miss and an expiry), then
        // expiry; a key MATCH skips is left alone. A small fresh database, so
        // that Redis's dict is not rehashing (which could repeat keys and
        // with them the TYPE lookups counted in INFO stats).
        d.line("SELECT 7");
        d.line("MSET a 1 b 2 c 3 d 4 e 5 foo:1 x foo:2 y foo:10 z {t}a 1 {t}b 2");
        for k in ["a", "b", "c", "d", "foo:1", "foo:2", "{t}a"] {
            d.line(&format!("PEXPIRE {k} 30"));
        }
        std::thread::sleep(Duration::from_millis(300));
        d.line("CONFIG RESETSTAT");
        d.line("DBSIZE");
        assert_eq!(scan_same(d, &["MATCH", "foo:*", "COUNT", "3"]), 1);
        d.line("DBSIZE");
        // Redis quirk, matched: an expired key passes TYPE none.
        assert_eq!(scan_same(d, &["MATCH", "a", "TYPE", "none"]), 1);
        assert_eq!(scan_same(d, &["MATCH", "[bc]", "TYPE", "string"]), 0);
        d.line("DBSIZE");
        stats_match(d);
        assert_eq!(scan_same(d, &["TYPE", "NONE", "COUNT", "2"]), 2);
        d.line("DBSIZE");
        assert_eq!(scan_same(d, &["TYPE", "string"]), 3);
        assert_eq!(scan_same(d, &[]), 3);
        stats_match(d);
    });
}

#[test]
fn randomkey() {
    each_setup(|d| {
        d.script(
            r#"
            RANDOMKEY
            RANDOMKEY x
            SELECT 3
            SET only v
            RANDOMKEY
            SELECT 0
            RANDOMKEY
            "#,
        );
        for k in SPREAD {
            d.line(&format!("SET {k} v"));
        }
        // A random pick differs by design: each server must return one of its keys.
        for _ in 0..40 {
            for raw in [&mut d.redis, &mut d.percore] {
                let k = raw.cmds("RANDOMKEY").text();
                assert!(SPREAD.contains(&k.as_str()), "RANDOMKEY returned {k:?}");
            }
        }
        // Only expired keys left: nil, and they are collected.
        for k in SPREAD {
            d.line(&format!("PEXPIRE {k} 30"));
        }
        std::thread::sleep(Duration::from_millis(80));
        d.line("DBSIZE");
        d.line("RANDOMKEY");
        d.line("DBSIZE");
        stats_match(d);
    });
}

#[test]
fn object_subcommands() {
    each_setup(|d| {
        d.script(
            r#"
            OBJECT
            OBJECT HELP
            OBJECT help
            OBJECT HELP extra
            OBJECT FOO
            OBJECT foo bar
            OBJECT ENCODING
            OBJECT ENCODING nosuch
            OBJECT ENCODING a b
            OBJECT REFCOUNT nosuch
            OBJECT IDLETIME nosuch
            OBJECT FREQ nosuch
            OBJECT REFCOUNT
            OBJECT IDLETIME
            OBJECT FREQ
            SET i 12345
            OBJECT ENCODING i
            SET e hello
            OBJECT ENCODING e
            SET r xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
            OBJECT ENCODING r
            SET x44 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
            OBJECT ENCODING x44
            SET x45 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
            OBJECT ENCODING x45
            SET big 12345678901234567890
            OBJECT ENCODING big
            SET max 9223372036854775807
            OBJECT ENCODING max
            SET min -9223372036854775808
            OBJECT ENCODING min
            SET lead 0123
            OBJECT ENCODING lead
            SET neg -5
            OBJECT ENCODING neg
            OBJECT REFCOUNT neg
            SET zero 0
            OBJECT REFCOUNT zero
            SET n9999 9999
            OBJECT REFCOUNT n9999
            SET n10000 10000
            OBJECT REFCOUNT n10000
            OBJECT REFCOUNT e
            OBJECT REFCOUNT r
            INCR zero
            OBJECT REFCOUNT zero
            OBJECT FREQ e
            object encoding e
            APPEND e x
            OBJECT ENCODING e
            OBJECT REFCOUNT e
            "#,
        );
        // Idle time: both fresh keys, 0 or 1 seconds (a second boundary may pass).
        for raw in [&mut d.redis, &mut d.percore] {
            let t = raw.cmds("OBJECT IDLETIME e").int();
            assert!((0..=1).contains(&t), "idle {t}");
        }
        // RESP3 nil for a missing key.
        // HELLO's reply holds the client id: only its type is compared.
        d.run(Cmp::TypeOnly, &["HELLO", "3"]);
        d.line("OBJECT ENCODING nosuch");
        d.line("OBJECT REFCOUNT nosuch");
        d.line("OBJECT ENCODING i");
        stats_match(d);
    });
}

#[test]
fn dbsize_flush_swapdb_select() {
    each_setup(|d| {
        d.script(
            r#"
            DBSIZE
            DBSIZE x
            MSET a 1 b 2 c 3 d 4 {t}a 5
            DBSIZE
            SELECT 1
            MSET a 10 b 20 c 30
            DBSIZE
            MGET a b c d
            EXISTS a b c d
            DEL a d
            DBSIZE
            SELECT 0
            MGET a b c d
            INFO keyspace
            FLUSHDB foo
            FLUSHDB ASYNC extra
            FLUSHALL foo
            FLUSHALL SYNC extra
            SELECT 1
            FLUSHDB
            DBSIZE
            SELECT 0
            DBSIZE
            FLUSHDB async
            DBSIZE
            MSET a 1 b 2
            FLUSHDB SYNC
            DBSIZE
            MSET a 1 b 2
            SELECT 2
            MSET c 3 d 4
            FLUSHALL ASYNC
            DBSIZE
            SELECT 0
            DBSIZE
            MSET a 1 b 2
            SELECT 2
            MSET c 3 d 4
            FLUSHALL sync
            DBSIZE
            MSET c 3
            FLUSHALL
            DBSIZE
            INFO keyspace
            SELECT 16
            SELECT -1
            SELECT abc
            SELECT 2147483648
            SELECT 1.0
            SELECT
            SELECT 0 1
            SELECT 15
            DBSIZE
            SELECT 0
            "#,
        );
        // SWAPDB errors.
        d.script(
            r#"
            SWAPDB 0
            SWAPDB 0 1 2
            SWAPDB a 1
            SWAPDB 0 b
            SWAPDB a b
            SWAPDB 0 16
            SWAPDB 16 0
            SWAPDB -1 0
            SWAPDB 0 -1
            SWAPDB 0 99999999999
            SWAPDB 99999999999 0
            SWAPDB 1.0 0
            SWAPDB 0 0
            "#,
        );
        // SWAPDB effect, seen by a connection that SELECTed one of the two.
        d.script(
            r#"
            MSET a 0a b 0b c 0c d 0d
            PEXPIREAT a 32503680000600
            SELECT 1
            MSET a 1a {t}a 1t
            SELECT 0
            "#,
        );
        let mut other = Diff {
            redis: d.redis.clone_conn(),
            percore: d.percore.clone_conn(),
            log: Vec::new(),
        };
        other.line("SELECT 1");
        other.line("MGET a b {t}a");
        d.line("SWAPDB 0 1");
        d.script(
            r#"
            MGET a b c d {t}a
            PEXPIRETIME a
            DBSIZE
            "#,
        );
        keyspace_match(d);
        other.line("MGET a b c d {t}a");
        other.line("PEXPIRETIME a");
        other.line("DBSIZE");
        other.line("SET z fromother");
        d.line("SWAPDB 1 0");
        d.line("MGET a b z {t}a");
        other.line("MGET a b z {t}a");
        d.line("SWAPDB 0 5");
        d.line("DBSIZE");
        other.line("SELECT 5");
        other.line("MGET a b c d {t}a");
        d.line("FLUSHALL");
        // avg_ttl goes back to 0 once no key has a TTL (active expiry notices),
        // and a flushed database starts from 0.
        d.line("DEBUG SET-ACTIVE-EXPIRE 1");
        for k in SPREAD {
            d.line(&format!("SET {k} v EX 1000"));
        }
        std::thread::sleep(Duration::from_millis(300));
        keyspace_match(d);
        for k in SPREAD {
            d.line(&format!("PERSIST {k}"));
        }
        std::thread::sleep(Duration::from_millis(300));
        d.line("INFO keyspace");
        for k in SPREAD {
            d.line(&format!("EXPIRE {k} 1000"));
        }
        std::thread::sleep(Duration::from_millis(300));
        d.line("DEBUG SET-ACTIVE-EXPIRE 0");
        d.line("FLUSHALL");
        d.line("SET x 1");
        d.line("INFO keyspace");
    });
}

/// RESP3 reply types of the family: nulls, integers, arrays, help lines.
#[test]
fn resp3_replies() {
    each_setup(|d| {
        d.run(Cmp::TypeOnly, &["HELLO", "3"]);
        d.script(&format!(
            r#"
            RANDOMKEY
            KEYS *
            SCAN 0
            OBJECT ENCODING nosuch
            MSET a 1 b hello c 3 d 4
            PEXPIREAT a {FAR_MS}
            EXISTS a b c d nosuch
            TYPE b
            TYPE nosuch
            TTL a
            PEXPIRETIME a
            EXPIRETIME a
            TTL b
            PTTL nosuch
            PERSIST a
            OBJECT ENCODING b
            OBJECT REFCOUNT c
            OBJECT FREQ b
            OBJECT HELP
            RENAME nosuch x
            RENAME a x
            COPY x y
            MOVE y 1
            DBSIZE
            SWAPDB 0 1
            DBSIZE
            SWAPDB 0 1
            DEL x b c d
            FLUSHDB
            RANDOMKEY
            "#
        ));
        d.line("SET only v");
        d.line("KEYS *");
        d.line("RANDOMKEY");
        // The cursor differs by design (percore returns one per shard).
        scan_shape(d, &[b"SCAN", b"0", b"COUNT", b"100"]);
    });
}

/// The same commands sent as one pipelined write: replies in order, also when
/// SELECT and cross-shard commands interleave with single-shard ones.
#[test]
fn pipelined_keyspace_commands() {
    each_setup(|d| {
        let lines = [
            "MSET a 1 b 2 c 3 d 4",
            "EXISTS a b c d a",
            "SELECT 1",
            "SET a x",
            "EXISTS a b c d",
            "RENAME a b",
            "GET b",
            "SELECT 0",
            "GET a",
            "DEL a c",
            "COPY b a DB 1",
            "SELECT 1",
            "GET a",
            "MOVE a 0",
            "SELECT 0",
            "GET a",
            "EXPIRE d 1000",
            "TTL d",
            "RENAME d c",
            "TTL c",
            "DBSIZE",
            "TOUCH a b c d",
            "UNLINK a b c d",
            "DBSIZE",
            "SELECT 1",
            "DBSIZE",
            "FLUSHALL",
            "DBSIZE",
        ];
        let mut req = Vec::new();
        for l in lines {
            let args: Vec<&str> = l.split_whitespace().collect();
            req.extend_from_slice(&common::encode(&args));
        }
        d.redis.send(&req);
        d.percore.send(&req);
        for l in lines {
            let a = d.redis.read();
            let b = d.percore.read();
            assert_eq!(a, b, "pipelined {l}");
        }
    });
}

/// A second connection to the same server, for tests that need two clients.
trait CloneConn {
    fn clone_conn(&self) -> Raw;
}

impl CloneConn for Raw {
    fn clone_conn(&self) -> Raw {
        Raw::connect(self.stream.peer_addr().expect("peer").port())
    }
}
