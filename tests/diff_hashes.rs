//! Differential tests of the hash command family (HSET, HSETNX, HMSET, HGET, HMGET,
//! HGETALL, HDEL, HEXISTS, HLEN, HSTRLEN, HKEYS, HVALS, HINCRBY, HINCRBYFLOAT,
//! HRANDFIELD, HSCAN) against Debian's redis-server 7.0.15, with percore on 1 and 4
//! shards, in RESP2 and RESP3, and OBJECT ENCODING compared after every write.
//!
//! Small hashes (listpack) are compared exactly, order included: percore keeps
//! Redis's listpack order. Large hashes (hashtable) iterate in another order, so
//! their listings are compared as multisets, HSCAN by its full result, and random
//! picks by their visible properties (size, distinctness, membership).
//! HASHES_SEED=<n> replays the randomized sequence; HASHES_COMMANDS=<n> runs longer.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Cmp, Diff, Raw, Resp, Rng, Server};

/// Runs `f` against redis-server and percore with 1 and then 4 shards, from a flushed state,
/// then compares the keyspace hit/miss counters.
fn each_setup(f: impl Fn(&mut Diff)) {
    each_setup_stats(f, true);
}

/// `each_setup` for tests that scan each server on its own (their HSCAN calls, hence
/// their lookup counts, differ): no counter comparison.
fn each_setup_uncounted(f: impl Fn(&mut Diff)) {
    each_setup_stats(f, false);
}

fn each_setup_stats(f: impl Fn(&mut Diff), stats: bool) {
    let redis = Server::redis(&[]);
    for shards in [1, 4] {
        let percore = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.line("FLUSHALL");
        d.line("CONFIG SET hash-max-listpack-entries 128");
        d.line("CONFIG SET hash-max-listpack-value 64");
        d.line("CONFIG RESETSTAT");
        f(&mut d);
        if stats {
            stats_match(&mut d);
        }
    }
}

/// One field of INFO `section`.
fn info_field(raw: &mut Raw, section: &str, field: &str) -> Option<String> {
    let text = raw.cmd(&["INFO", section]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.to_string()))
}

/// Hash reads count keyspace hits and misses as Redis's lookups do; writes do not.
fn stats_match(d: &mut Diff) {
    for f in ["keyspace_hits", "keyspace_misses"] {
        let a = info_field(&mut d.redis, "stats", f);
        let b = info_field(&mut d.percore, "stats", f);
        assert_eq!(
            a, b,
            "INFO stats {f} differs; recent commands: {:#?}",
            d.log
        );
    }
}

/// Switches both connections to RESP3 (HELLO's reply names the server, so only its type is compared).
fn resp3(d: &mut Diff) {
    d.run(Cmp::TypeOnly, &["HELLO", "3"]);
}

#[test]
fn basics_and_errors() {
    each_setup(|d| {
        d.script(
            r#"
            HSET h a 1 b 2 c 3
            HSET h a 10 d 4
            HGETALL h
            HKEYS h
            HVALS h
            HLEN h
            HGET h a
            HGET h nosuch
            HGET nokey a
            HMGET h a nosuch b
            HMGET nokey a b
            HEXISTS h a
            HEXISTS h z
            HEXISTS nokey a
            HSTRLEN h a
            HSTRLEN h z
            HSTRLEN nokey a
            HSETNX h a 99
            HSETNX h e 5
            HSETNX newkey f v
            HGETALL newkey
            HMSET h x 1 y 2
            HDEL h a z b
            HGETALL h
            HDEL h nosuch
            HDEL nokey a
            HDEL h c d e x y
            EXISTS h
            HLEN h
            HGETALL nokey
            HKEYS nokey
            HVALS nokey
            HLEN nokey
            OBJECT ENCODING newkey
            TYPE newkey
            # arity: the dispatcher's and the handlers' own checks
            HSET h
            HSET h a
            HSET h a 1 b
            HMSET h a 1 b
            HMSET h a
            HSETNX h a
            HGET h
            HMGET h
            HDEL h
            HLEN
            HSTRLEN h
            HGETALL
            HINCRBY h a
            HINCRBYFLOAT h a
            HRANDFIELD
            HSCAN h
            # wrong type both ways
            SET s str
            HSET s a 1
            HSETNX s a 1
            HMSET s a 1
            HGET s a
            HMGET s a
            HGETALL s
            HKEYS s
            HVALS s
            HDEL s a
            HLEN s
            HSTRLEN s a
            HEXISTS s a
            HINCRBY s a 1
            HINCRBYFLOAT s a 1
            HRANDFIELD s
            HRANDFIELD s 2
            HRANDFIELD s -2 WITHVALUES
            HSCAN s 0
            HSET hh f v
            GET hh
            SET hh x XX GET
            APPEND hh x
            INCR hh
            STRLEN hh
            GETRANGE hh 0 1
            SETRANGE hh 0 x
            GETDEL hh
            LCS hh s
            MGET hh s nokey
            GETEX hh
            INCRBYFLOAT hh 1
            DECRBY hh 1
            SETNX hh x
            MSETNX hh x other y
            EXISTS other
            TYPE hh
            SET hh now-a-string
            TYPE hh
            HGET hh f
            HSET hh f v
            "#,
        );
        // Empty fields and values, binary data.
        d.check(&["HSET", "bin", "", ""]);
        d.check(&["HSET", "bin", "f\x00\r\n", "v\x00\r\n\u{ff}"]);
        d.check(&["HGETALL", "bin"]);
        d.check(&["HGET", "bin", ""]);
        d.check(&["HSTRLEN", "bin", "f\x00\r\n"]);
        d.check(&["HMGET", "bin", "", "f\x00\r\n", "x"]);
    });
}

#[test]
fn counters() {
    each_setup(|d| {
        d.script(
            r#"
            HINCRBY c n 5
            HINCRBY c n -12
            HINCRBY c n 0
            HINCRBY c n x
            HINCRBY c n 1.5
            HINCRBY c n 9223372036854775808
            HSET c big 9223372036854775807 small -9223372036854775808 str abc sp 1x neg -0 z 007
            HINCRBY c big 1
            HINCRBY c big 0
            HINCRBY c big -1
            HINCRBY c small -1
            HINCRBY c small 1
            HINCRBY c str 1
            HINCRBY c sp 1
            HINCRBY c neg 1
            HINCRBY c z 1
            HINCRBY nokey f 9223372036854775807
            HGETALL c
            HINCRBYFLOAT f x 1.5
            HINCRBYFLOAT f x 0.1
            HINCRBYFLOAT f x -0.1
            HINCRBYFLOAT f x 3.0e3
            HINCRBYFLOAT f x 1e-5
            HINCRBYFLOAT f x -3001.6
            HINCRBYFLOAT f y 10
            HINCRBYFLOAT f y 5.0e3
            HINCRBYFLOAT f y 2.5
            HINCRBYFLOAT f y 0x10
            HINCRBYFLOAT f y 1e4932
            HINCRBYFLOAT f y 1e4933
            HINCRBYFLOAT f y abc
            HINCRBYFLOAT f y inf
            HINCRBYFLOAT f y -inf
            HINCRBYFLOAT f y nan
            HSET f s abc n 17 e 1e3
            HINCRBYFLOAT f s 1
            HINCRBYFLOAT f n 1
            HINCRBYFLOAT f e 1
            HINCRBYFLOAT f sp 1
            HINCRBY f x 1
            HINCRBY f n 1
            HSET g m 1.7976931348623157e308
            HINCRBYFLOAT g m 1.7976931348623157e308
            HINCRBYFLOAT g m 1e4932
            HINCRBYFLOAT g m 1e4932
            HGET g m
            EXISTS nofloat
            "#,
        );
        d.check(&["HINCRBYFLOAT", "f", "y", " 1"]);
        d.check(&["HINCRBYFLOAT", "f", "y", ""]);
        d.check(&["HSET", "f", "sp", " 2", "sp2", "2 "]);
        d.check(&["HINCRBYFLOAT", "f", "sp", "1"]);
        d.check(&["HINCRBYFLOAT", "f", "sp2", "1"]);
        d.check(&["HINCRBY", "f", "sp", "1"]);
        d.check(&["HSCAN", "f", " 1"]);
        // The value check comes after the key: a float error on a missing key creates nothing.
        d.check(&["HINCRBYFLOAT", "nofloat", "x", "abc"]);
        d.line("EXISTS nofloat");
        d.line_unordered("HGETALL f");
    });
}

#[test]
fn encodings_and_conversions() {
    each_setup(|d| {
        let long = "x".repeat(65);
        let max = "y".repeat(64);
        // A long value converts on HSET; a 64-byte one does not.
        d.check(&["HSET", "a", "f", &max]);
        d.line("OBJECT ENCODING a");
        d.check(&["HSET", "a", "g", &long]);
        d.line("OBJECT ENCODING a");
        // A long field converts too, also through HSETNX, HINCRBY and HINCRBYFLOAT.
        for cmd in ["HSET", "HSETNX", "HINCRBY", "HINCRBYFLOAT"] {
            d.line("DEL k");
            d.line("HSET k a 1");
            d.check(&[cmd, "k", &long, "1"]);
            d.line("OBJECT ENCODING k");
            d.line_unordered("HGETALL k");
        }
        // HSETNX on an existing field does not convert, even with a long value.
        d.line("DEL k");
        d.line("HSET k a 1");
        d.check(&["HSETNX", "k", "a", &long]);
        d.line("OBJECT ENCODING k");
        // HSET converts on long arguments before it sets, even when the pair is a no-op update.
        d.check(&["HSET", "k", "a", "1", "b", &long]);
        d.line("OBJECT ENCODING k");
        // Count threshold: 128 fields stay listpack, the 129th converts; never back.
        d.line("DEL n");
        for i in 0..128 {
            d.line(&format!("HSET n f{i} {i}"));
        }
        d.line("OBJECT ENCODING n");
        d.line("HGETALL n");
        d.line("HSET n f200 x");
        d.line("OBJECT ENCODING n");
        d.line_unordered("HGETALL n");
        for i in 0..120 {
            d.line(&format!("HDEL n f{i}"));
        }
        d.line("OBJECT ENCODING n");
        d.line_unordered("HKEYS n");
        d.line_unordered("HVALS n");
        // CONFIG SET: lower thresholds convert on the next write, also an update.
        d.line("DEL m");
        d.line("HSET m a 1 b 2 c 3 d 4");
        d.line("CONFIG SET hash-max-listpack-entries 2");
        d.line("HGET m a");
        d.line("OBJECT ENCODING m");
        d.line("HSET m a 5");
        d.line("OBJECT ENCODING m");
        d.line("CONFIG SET hash-max-listpack-entries 0");
        d.line("HSET z a 1");
        d.line("OBJECT ENCODING z");
        d.line("CONFIG SET hash-max-listpack-entries 128");
        d.line("CONFIG SET hash-max-listpack-value 3");
        d.line("HSET v abc abc");
        d.line("OBJECT ENCODING v");
        d.line("HSET v abc abcd");
        d.line("OBJECT ENCODING v");
        d.line("CONFIG SET hash-max-listpack-value 0");
        d.line("HSET w a 1");
        d.line("OBJECT ENCODING w");
        d.check(&["HSET", "w3", "", ""]);
        d.line("OBJECT ENCODING w3");
        d.line("CONFIG SET hash-max-listpack-value 64");
    });
}

#[test]
fn resp3_shapes() {
    each_setup(|d| {
        resp3(d);
        d.script(
            r#"
            HGETALL nokey
            HKEYS nokey
            HGET nokey a
            HMGET nokey a b
            HRANDFIELD nokey
            HRANDFIELD nokey 3
            HRANDFIELD nokey 3 WITHVALUES
            HSCAN nokey 0
            HSET h a 1 b 2 c 3
            HGETALL h
            HMGET h a x
            HGET h x
            HRANDFIELD h 3 WITHVALUES
            HRANDFIELD h 10 WITHVALUES
            HRANDFIELD h 0 WITHVALUES
            HRANDFIELD h 0
            HSCAN h 0
            HINCRBYFLOAT h a 1.5
            HSET one f v
            HRANDFIELD one 1 WITHVALUES
            HRANDFIELD one -3 WITHVALUES
            HRANDFIELD one -3
            HRANDFIELD one
            "#,
        );
    });
}

#[test]
fn hrandfield() {
    each_setup(|d| {
        d.script(
            r#"
            HRANDFIELD nokey
            HRANDFIELD nokey 0
            HRANDFIELD nokey -5 WITHVALUES
            HSET h a 1 b 2 c 3 d 4 e 5
            HRANDFIELD h 5
            HRANDFIELD h 6 WITHVALUES
            HRANDFIELD h 9223372036854775807
            HRANDFIELD h 0
            HRANDFIELD h x
            HRANDFIELD h 1.5
            HRANDFIELD h 1 WITHVALUE
            HRANDFIELD h 1 WITHVALUES x
            HRANDFIELD h -9223372036854775808
            HRANDFIELD h 9223372036854775807 WITHVALUES
            HRANDFIELD h -4611686018427387904 WITHVALUES
            HRANDFIELD h 4611686018427387904 WITHVALUES
            HRANDFIELD h 4611686018427387903 WITHVALUES
            "#,
        );
        d.run(Cmp::TypeOnly, &["HRANDFIELD", "h", "1", "withvalues"]);
        for key_size in [5usize, 300] {
            d.line("DEL r");
            for i in 0..key_size {
                d.line(&format!("HSET r f{i} v{i}"));
            }
            d.line("OBJECT ENCODING r");
            let fields: BTreeSet<String> = (0..key_size).map(|i| format!("f{i}")).collect();
            for _ in 0..20 {
                d.run(Cmp::TypeOnly, &["HRANDFIELD", "r"]);
                for count in [1i64, 2, 3, 4, 100, 299, 150, 99] {
                    if count as usize >= key_size {
                        continue;
                    }
                    let r = d.run(Cmp::TypeOnly, &["HRANDFIELD", "r", &count.to_string()]);
                    let got: Vec<String> = r.items().iter().map(|x| x.text()).collect();
                    let set: BTreeSet<String> = got.iter().cloned().collect();
                    assert_eq!(got.len(), count as usize, "positive count: exactly count");
                    assert_eq!(set.len(), got.len(), "positive count: distinct");
                    assert!(set.is_subset(&fields));
                    let r = d.run(Cmp::TypeOnly, &["HRANDFIELD", "r", &(-count).to_string()]);
                    assert_eq!(
                        r.items().len(),
                        count as usize,
                        "negative count: exactly count"
                    );
                    let r = d.run(
                        Cmp::TypeOnly,
                        &["HRANDFIELD", "r", &count.to_string(), "WITHVALUES"],
                    );
                    let items = r.items();
                    assert_eq!(items.len(), 2 * count as usize);
                    for pair in items.chunks(2) {
                        assert_eq!(pair[0].text().replace('f', "v"), pair[1].text());
                    }
                }
            }
            // Negative counts repeat: more picks than fields.
            let r = d.run(Cmp::TypeOnly, &["HRANDFIELD", "r", "-1000"]);
            assert_eq!(r.items().len(), 1000);
            let set: BTreeSet<String> = r.items().iter().map(|x| x.text()).collect();
            assert!(set.is_subset(&fields));
            assert!(set.len() > 1);
            // A count >= size returns the whole hash (in order for a listpack).
            let cmp = if key_size <= 128 {
                Cmp::Exact
            } else {
                Cmp::Unordered
            };
            d.run(cmp, &["HRANDFIELD", "r", &key_size.to_string()]);
            d.run(cmp, &["HRANDFIELD", "r", "100000", "WITHVALUES"]);
        }
    });
}

#[test]
fn hscan_options() {
    each_setup_uncounted(|d| {
        d.script(
            r#"
            HSCAN nokey 0
            HSCAN nokey 0 COUNT 0
            HSCAN nokey x
            HSET h aa 1 ab 2 ba 3 bb 4 cc 5
            HSCAN h 0
            HSCAN h 5
            HSCAN h 0 MATCH a*
            HSCAN h 0 MATCH *b
            HSCAN h 0 MATCH * COUNT 1
            HSCAN h 0 MATCH nomatch
            HSCAN h 0 COUNT 0
            HSCAN h 0 COUNT -1
            HSCAN h 0 COUNT x
            HSCAN h 0 COUNT
            HSCAN h 0 MATCH
            HSCAN h 0 TYPE string
            HSCAN h 0 foo bar
            HSCAN h x
            HSCAN h -1
            HSCAN h 18446744073709551616
            HSCAN h 1x
            HSCAN h +1
            "#,
        );
        // A hashtable: the full scan returns every pair, with and without MATCH.
        for i in 0..500 {
            d.line(&format!("HSET big f{i} v{i}"));
        }
        for opts in [
            &[][..],
            &["COUNT", "7"],
            &["MATCH", "f1*"],
            &["MATCH", "f1*", "COUNT", "100"],
        ] {
            let a = full_scan(&mut d.redis, "big", opts);
            let b = full_scan(&mut d.percore, "big", opts);
            assert_eq!(a, b, "HSCAN big {opts:?}");
        }
    });
}

/// Every pair a full HSCAN returns, with how often each field was returned.
fn full_scan(raw: &mut Raw, key: &str, opts: &[&str]) -> BTreeMap<String, String> {
    let mut cursor = "0".to_string();
    let mut all = BTreeMap::new();
    loop {
        let mut args = vec!["HSCAN", key, &cursor];
        args.extend_from_slice(opts);
        let r = raw.cmd(&args);
        let items = r.items();
        let next = items[0].text();
        for pair in items[1].items().chunks(2) {
            all.insert(pair[0].text(), pair[1].text());
        }
        if next == "0" {
            return all;
        }
        cursor = next;
    }
}

#[test]
fn hscan_guarantee_while_the_hash_grows() {
    // Every field present for the whole scan is returned, while another connection keeps
    // adding fields (and deleting added ones) between the scan's steps.
    for server in [
        Server::redis(&[]),
        Server::percore(1, &[]),
        Server::percore(4, &[]),
    ] {
        let mut a = server.raw();
        let mut b = server.raw();
        a.cmds("FLUSHALL");
        for i in 0..2000 {
            a.cmds(&format!("HSET g keep{i} v"));
        }
        let mut cursor = "0".to_string();
        let mut seen = BTreeSet::new();
        let mut round = 0;
        loop {
            let r = a.cmd(&["HSCAN", "g", &cursor, "COUNT", "20"]);
            let items = r.items();
            for pair in items[1].items().chunks(2) {
                seen.insert(pair[0].text());
            }
            for j in 0..40 {
                b.cmds(&format!("HSET g new{round}:{j} v"));
            }
            if round % 3 == 0 {
                b.cmds(&format!("HDEL g new{}:1 new{}:2", round / 2, round / 2));
            }
            round += 1;
            cursor = items[0].text();
            if cursor == "0" {
                break;
            }
        }
        for i in 0..2000 {
            assert!(seen.contains(&format!("keep{i}")), "keep{i} missed");
        }
        assert!(round > 10, "the scan took several steps");
    }
}

#[test]
fn keyspace_commands_on_hashes() {
    each_setup(|d| {
        d.script(
            r#"
            HSET a f1 v1 f2 v2
            HSET big x 1
            CONFIG SET hash-max-listpack-entries 1
            HSET big y 2
            CONFIG SET hash-max-listpack-entries 128
            OBJECT ENCODING big
            TYPE a
            TYPE big
            COPY a b
            HGETALL b
            OBJECT ENCODING b
            HSET b f3 v3
            HGETALL a
            HGETALL b
            COPY big big2
            OBJECT ENCODING big2
            HGET big2 y
            COPY a {t}a
            HGETALL {t}a
            RENAME b c
            HGETALL c
            EXISTS b
            RENAME c {t}c
            HGETALL {t}c
            RENAME big {t}big
            OBJECT ENCODING {t}big
            HGET {t}big x
            MOVE c 1
            MOVE {t}c 1
            SELECT 1
            HGETALL {t}c
            HSET {t}c z 1
            SELECT 0
            EXISTS {t}c
            EXPIRE a 100
            TTL a
            HSET a f9 v9
            TTL a
            HDEL a f1 f2 f9
            EXISTS a
            TTL a
            HSET e f v
            PEXPIRE e 1
            DEBUG SLEEP 0.01
            HGET e f
            EXISTS e
            HSET d f v
            DEL d big2 {t}a
            EXISTS d big2 {t}a
            DBSIZE
            "#,
        );
    });
}

/// Random command generator for the seeded sequence.
struct Gen {
    rng: Rng,
}

const KEYS: &[&str] = &["h1", "h2", "{t}h3", "{t}h4", "s"];

impl Gen {
    fn key(&mut self) -> String {
        self.rng.pick(KEYS).to_string()
    }

    fn field(&mut self) -> String {
        match self.rng.below(25) {
            0 => "x".repeat(60 + self.rng.below(10) as usize),
            1 => String::new(),
            _ => format!("f{}", self.rng.below(20)),
        }
    }

    fn value(&mut self) -> String {
        match self.rng.below(25) {
            0 => "v".repeat(60 + self.rng.below(10) as usize),
            1 => self.rng.below(1000).to_string(),
            2 => format!("-{}", self.rng.below(1000)),
            3 => format!("{}.{}", self.rng.below(100), self.rng.below(100)),
            4 => self
                .rng
                .pick(&["", "007", "1e3", "abc", "9223372036854775807"])
                .to_string(),
            _ => format!("v{}", self.rng.below(1000)),
        }
    }
}

/// The key's encoding on redis-server (both are compared when it is asked).
fn encoding(d: &mut Diff, key: &str) -> Resp {
    d.run(Cmp::Exact, &["OBJECT", "ENCODING", key])
}

#[test]
fn randomized_sequence() {
    let seed: u64 = std::env::var("HASHES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_4a54);
    let n: usize = std::env::var("HASHES_COMMANDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2500);
    each_setup_uncounted(|d| {
        let mut g = Gen { rng: Rng(seed) };
        let (mut small, mut large) = (0, 0);
        d.line("SET s string");
        for step in 0..n {
            if step % 400 == 0 {
                let entries = *g.rng.pick(&["4", "8", "16", "32", "128"]);
                let value = *g.rng.pick(&["8", "16", "64", "70"]);
                d.check(&["CONFIG", "SET", "hash-max-listpack-entries", entries]);
                d.check(&["CONFIG", "SET", "hash-max-listpack-value", value]);
            }
            if step == n / 2 {
                resp3(d);
            }
            let key = g.key();
            let listpack = matches!(encoding(d, &key), Resp::Bulk(Some(ref e)) if e == b"listpack");
            let order = if listpack { Cmp::Exact } else { Cmp::Unordered };
            if listpack {
                small += 1;
            } else if matches!(encoding(d, &key), Resp::Bulk(Some(ref e)) if e == b"hashtable") {
                large += 1;
            }
            let op = g.rng.below(20);
            match op {
                0..=4 => {
                    let mut args = vec![
                        if g.rng.below(4) == 0 { "HMSET" } else { "HSET" }.to_string(),
                        key.clone(),
                    ];
                    for _ in 0..1 + g.rng.below(4) {
                        args.push(g.field());
                        args.push(g.value());
                    }
                    d.check(&args);
                }
                5 => {
                    let (f, v) = (g.field(), g.value());
                    d.check(&["HSETNX", &key, &f, &v]);
                }
                6 | 7 => {
                    let mut args = vec!["HDEL".to_string(), key.clone()];
                    for _ in 0..1 + g.rng.below(4) {
                        args.push(g.field());
                    }
                    d.check(&args);
                }
                8 => {
                    let f = g.field();
                    d.check(&["HGET", &key, &f]);
                }
                9 => {
                    let (a, b) = (g.field(), g.field());
                    d.check(&["HMGET", &key, &a, &b]);
                }
                10 => {
                    let cmd = *g.rng.pick(&["HGETALL", "HKEYS", "HVALS"]);
                    d.run(order, &[cmd, &key]);
                }
                11 => {
                    let cmd = *g.rng.pick(&["HLEN", "HEXISTS", "HSTRLEN"]);
                    if cmd == "HLEN" {
                        d.check(&[cmd, &key]);
                    } else {
                        let f = g.field();
                        d.check(&[cmd, &key, &f]);
                    }
                }
                12 | 13 => {
                    let f = g.field();
                    let by = (g.rng.below(200) as i64 - 100).to_string();
                    d.check(&["HINCRBY", &key, &f, &by]);
                }
                14 => {
                    let f = g.field();
                    let by = g
                        .rng
                        .pick(&["1.5", "-0.25", "10", "3e2", "0.1", "x"])
                        .to_string();
                    d.check(&["HINCRBYFLOAT", &key, &f, by.as_str()]);
                }
                15 => {
                    if listpack {
                        d.check(&["HSCAN", &key, "0", "MATCH", "f1*"]);
                    } else if key != "s" {
                        let a = full_scan(&mut d.redis, &key, &["COUNT", "3"]);
                        let b = full_scan(&mut d.percore, &key, &["COUNT", "3"]);
                        assert_eq!(a, b, "full HSCAN of {key}");
                    }
                }
                16 => {
                    // Whole-hash HRANDFIELD is deterministic up to order.
                    d.run(order, &["HRANDFIELD", &key, "1000", "WITHVALUES"]);
                }
                17 => {
                    d.run(Cmp::TypeOnly, &["HRANDFIELD", &key, "-3"]);
                }
                18 => {
                    if g.rng.below(2) == 0 {
                        d.check(&["DEL", &key]);
                        if key == "s" {
                            d.line("SET s string");
                        }
                    } else {
                        d.check(&["EXISTS", &key]);
                    }
                }
                _ => {
                    d.check(&["TYPE", &key]);
                }
            }
            encoding(d, &key);
        }
        assert!(
            small > n / 10 && large > n / 10,
            "seed {seed}: both encodings exercised ({small} listpack, {large} hashtable)"
        );
    });
}

#[test]
fn pipelined_across_shards() {
    // One write carrying commands for keys on every shard: replies in order, as Redis.
    each_setup(|d| {
        let mut batch = Vec::new();
        let mut n = 0;
        for i in 0..300 {
            let key = format!("p{}", i % 17);
            let cmd: Vec<String> = match i % 5 {
                0 | 1 => vec!["HSET".into(), key, format!("f{}", i % 7), i.to_string()],
                2 => vec!["HINCRBY".into(), key, "n".into(), i.to_string()],
                3 => vec!["HGETALL".into(), key],
                _ => vec!["HDEL".into(), key, format!("f{}", i % 3)],
            };
            batch.extend(common::encode(&cmd));
            n += 1;
        }
        d.redis.send(&batch);
        d.percore.send(&batch);
        for i in 0..n {
            let a = d.redis.read();
            let b = d.percore.read();
            assert_eq!(a, b, "reply {i} of the pipeline");
        }
    });
}
