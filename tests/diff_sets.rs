//! Differential tests of the set command family (SADD ... SSCAN) against Debian's
//! redis-server 7.0.15, with percore on 1 and 4 shards.
//!
//! Keys `a`, `b`, `c`, `d` land on four different shards with 4 shards, `{t}...`
//! keys share one: every multi-key command runs both across shards and within
//! one. Replies are compared exactly where Redis's order is defined (intsets
//! iterate in numeric order), as multisets where a hashtable's order shows,
//! and by type plus properties for random picks.

mod common;

use std::collections::{BTreeSet, HashSet};

use common::{Cmp, Diff, Raw, Resp, Rng, Server};
use percore::server::exec::shard_of_key;

fn assert_spread() {
    let shards: BTreeSet<usize> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| shard_of_key(k.as_bytes(), 4))
        .collect();
    assert_eq!(shards.len(), 4, "test keys must cover all 4 shards");
    assert_eq!(shard_of_key(b"{t}a", 4), shard_of_key(b"{t}b", 4));
}

/// Runs `f` against redis-server and percore with 1 and then 4 shards, from a flushed state.
fn each(f: impl Fn(&mut Diff)) {
    assert_spread();
    let redis = Server::redis(&[]);
    for shards in [1, 4] {
        let percore = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.line("FLUSHALL");
        d.line("CONFIG SET set-max-intset-entries 512");
        d.line("CONFIG RESETSTAT");
        f(&mut d);
    }
}

/// As `each`, then INFO's lookup counters must match too (for tests that send
/// every command to both servers).
fn each_counted(f: impl Fn(&mut Diff)) {
    each(|d| {
        f(d);
        stats_match(d);
    });
}

/// One field of INFO `section`.
fn info_field(raw: &mut Raw, section: &str, field: &str) -> Option<String> {
    let text = raw.cmd(&["INFO", section]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.to_string()))
}

/// The lookups the commands made (read lookups count hits and misses) match Redis's.
fn stats_match(d: &mut Diff) {
    for f in ["keyspace_hits", "keyspace_misses", "expired_keys"] {
        let a = info_field(&mut d.redis, "stats", f);
        let b = info_field(&mut d.percore, "stats", f);
        assert_eq!(
            a, b,
            "INFO stats {f} differs; recent commands: {:#?}",
            d.log
        );
    }
}

/// Runs a script: lines starting with `~` are compared unordered, the rest exactly.
fn script(d: &mut Diff, text: &str) {
    for l in text.lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match l.strip_prefix('~') {
            Some(rest) => {
                d.line_unordered(rest.trim());
            }
            None => {
                d.line(l);
            }
        }
    }
}

/// Switches both connections to RESP3 (HELLO's reply has a connection id, not compared).
fn hello3(d: &mut Diff) {
    d.redis.cmds("HELLO 3");
    d.percore.cmds("HELLO 3");
}

#[test]
fn basics_and_errors() {
    each_counted(|d| {
        script(
            d,
            r#"
            SADD i 3 1 2 -5 70000 1
            SADD i 2
            SMEMBERS i
            OBJECT ENCODING i
            SCARD i
            SISMEMBER i 70000
            SISMEMBER i 70001
            SISMEMBER i x
            SISMEMBER nokey 1
            SMISMEMBER i 1 9 x 70000
            SMISMEMBER nokey 1 2
            SREM i 1 9 x
            SREM nokey 1
            SMEMBERS i
            SADD big -9223372036854775808 9223372036854775807 0
            SMEMBERS big
            OBJECT ENCODING big
            SADD nc 007 -0 +1 1
            ~SMEMBERS nc
            OBJECT ENCODING nc
            SADD h x y z
            OBJECT ENCODING h
            ~SMEMBERS h
            SADD m 1 2 x
            OBJECT ENCODING m
            SREM m x
            OBJECT ENCODING m
            ~SMEMBERS m
            SREM i 2 3 -5 70000
            EXISTS i
            SMEMBERS nokey
            SCARD nokey
            SADD e ""
            SMEMBERS e
            SISMEMBER e ""
            SET s str
            SADD s x
            SREM s x
            SMEMBERS s
            SISMEMBER s x
            SMISMEMBER s x
            SCARD s
            SPOP s
            SPOP s 2
            SRANDMEMBER s
            SRANDMEMBER s 2
            SSCAN s 0
            SADD
            SADD k
            SREM k
            SMEMBERS
            SMEMBERS a b
            SISMEMBER a
            SMISMEMBER a
            SCARD a b
            SPOP
            SRANDMEMBER
            SMOVE a b
            SINTER
            SINTERCARD
            SINTERCARD 1
            SINTERSTORE d
            SSCAN k
            "#,
        );
    });
}

#[test]
fn spop_srandmember_edges() {
    each_counted(|d| {
        script(
            d,
            r#"
            SADD i 5 3 1 4 2
            SPOP i -1
            SPOP i abc
            SPOP nokey -1
            SPOP nokey abc
            SPOP nokey
            SPOP nokey 3
            SPOP i 0
            SPOP i 1 2
            SRANDMEMBER i 1 2
            SRANDMEMBER i abc
            SRANDMEMBER i -9223372036854775808
            SRANDMEMBER nokey -9223372036854775808
            SRANDMEMBER nokey abc
            SRANDMEMBER i 0
            SRANDMEMBER nokey
            SRANDMEMBER nokey 5
            SRANDMEMBER nokey -5
            SRANDMEMBER i 5
            SRANDMEMBER i 100
            SRANDMEMBER i 9223372036854775807
            SPOP i 5
            EXISTS i
            SADD i 5 3 1 4 2
            SPOP i 9223372036854775807
            EXISTS i
            SADD h a b c
            ~SRANDMEMBER h 3
            ~SRANDMEMBER h 10
            ~SPOP h 3
            EXISTS h
            SADD one 7
            SPOP one
            EXISTS one
            SADD one 7
            SRANDMEMBER one
            SRANDMEMBER one 1
            SRANDMEMBER one -3
            SPOP one 1
            EXISTS one
            "#,
        );
        // Random picks: reply types match, contents are checked as properties.
        d.line("SADD r 1 2 3 4 5 6 7 8 9 10");
        d.line("SADD rh a b c d e f g h i j");
        for key in ["r", "rh"] {
            let all: HashSet<Vec<u8>> = members(&d.run(Cmp::Unordered, &["SMEMBERS", key]));
            for count in ["1", "2", "4", "9", "-1", "-5", "-30"] {
                let r = d.run(Cmp::TypeOnly, &["SRANDMEMBER", key, count]);
                let got: Vec<Vec<u8>> = bulks(&r);
                let n: i64 = count.parse().unwrap();
                assert_eq!(got.len() as i64, n.abs(), "SRANDMEMBER {key} {count}");
                assert!(got.iter().all(|m| all.contains(m)));
                if n > 0 {
                    assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len());
                }
            }
            d.run(Cmp::TypeOnly, &["SRANDMEMBER", key]);
        }
    });
}

fn bulks(r: &Resp) -> Vec<Vec<u8>> {
    r.items()
        .iter()
        .map(|x| match x {
            Resp::Bulk(Some(b)) => b.clone(),
            other => panic!("not a bulk: {other:?}"),
        })
        .collect()
}

fn members(r: &Resp) -> HashSet<Vec<u8>> {
    bulks(r).into_iter().collect()
}

/// SPOP with a count on each server separately: popped members are distinct
/// members, the rest stays, and the "keep the rest" strategy rebuilds the set
/// (an intset again when what stays is an integer), as Redis does.
#[test]
fn spop_count_properties() {
    let redis = Server::redis(&[]);
    let mut servers = vec![redis];
    servers.push(Server::percore(1, &[]));
    servers.push(Server::percore(4, &[]));
    for s in &servers {
        let mut c = s.raw();
        for round in 0..30 {
            c.cmds("DEL k");
            c.cmds("SADD k x 1 2 3 4 5");
            let before: HashSet<Vec<u8>> = members(&c.cmds("SMEMBERS k"));
            // remaining (1) * 5 <= count (5): CASE 3, the rebuild.
            let popped = bulks(&c.cmds("SPOP k 5"));
            assert_eq!(popped.len(), 5);
            let popped_set: HashSet<Vec<u8>> = popped.iter().cloned().collect();
            assert_eq!(popped_set.len(), 5, "round {round}");
            let rest = members(&c.cmds("SMEMBERS k"));
            assert_eq!(rest.len(), 1);
            assert!(popped_set.is_disjoint(&rest));
            let union: HashSet<Vec<u8>> = popped_set.union(&rest).cloned().collect();
            assert_eq!(union, before);
            let left = rest.iter().next().unwrap().clone();
            let enc = c.cmds("OBJECT ENCODING k").text();
            let want = if left == b"x" { "hashtable" } else { "intset" };
            assert_eq!(enc, want, "{:?} after SPOP on {:?}", left, s.kind);
        }
        // CASE 2 on a big set: the set keeps its encoding.
        c.cmds("DEL k");
        let args: Vec<String> = ["SADD".to_string(), "k".to_string()]
            .into_iter()
            .chain((0..100).map(|i| format!("m{i}")))
            .collect();
        c.cmd(&args);
        let popped = bulks(&c.cmds("SPOP k 10"));
        assert_eq!(popped.iter().collect::<HashSet<_>>().len(), 10);
        assert_eq!(c.cmds("SCARD k").int(), 90);
        for m in &popped {
            assert_eq!(
                c.cmd(&[b"SISMEMBER".as_slice(), b"k".as_slice(), m.as_slice()])
                    .int(),
                0
            );
        }
        assert_eq!(c.cmds("OBJECT ENCODING k").text(), "hashtable");
        let one = c.cmds("SPOP k");
        assert!(matches!(one, Resp::Bulk(Some(_))));
        assert_eq!(c.cmds("SCARD k").int(), 89);
    }
}

#[test]
fn multi_key_commands() {
    each_counted(|d| {
        script(
            d,
            r#"
            SADD a 1 2 3 4 5
            SADD b 2 3 4 70000
            SADD c 3 4 x
            SADD {t}a 1 2 3
            SADD {t}b 3 4 5
            SINTER a b
            SINTER b a
            ~SINTER a b c
            SINTER a nokey b
            SINTER a a
            SINTER {t}a {t}b
            SINTERCARD 2 a b
            SINTERCARD 3 a b c
            SINTERCARD 3 a b c LIMIT 1
            SINTERCARD 2 a b LIMIT 0
            SINTERCARD 2 a b limit 2
            SINTERCARD 2 a nokey
            SINTERCARD 2 {t}a {t}b
            SINTERCARD 0 a
            SINTERCARD -1 a
            SINTERCARD x a
            SINTERCARD 3 a b
            SINTERCARD 1 a LIMIT -1
            SINTERCARD 1 a LIMIT x
            SINTERCARD 1 a LIMIT
            SINTERCARD 1 a FOO 1
            SINTERCARD 2 a b LIMIT 1 LIMIT 5
            SUNION a b
            ~SUNION a b c
            SUNION nokey
            SUNION a nokey {t}a
            SUNION {t}a {t}b
            SDIFF a b
            SDIFF a b c
            SDIFF a a
            SDIFF nokey a
            SDIFF a nokey
            SDIFF {t}a {t}b
            ~SDIFF c a
            SINTERSTORE d a b
            SMEMBERS d
            OBJECT ENCODING d
            SINTERSTORE d a nokey
            EXISTS d
            SUNIONSTORE d a b
            SMEMBERS d
            SUNIONSTORE d c a
            OBJECT ENCODING d
            ~SMEMBERS d
            SDIFFSTORE d a b
            SMEMBERS d
            SDIFFSTORE d a a
            EXISTS d
            SDIFFSTORE d nokey
            EXISTS d
            SINTERSTORE {t}c {t}a {t}b
            SMEMBERS {t}c
            SUNIONSTORE {t}c {t}a {t}b
            SMEMBERS {t}c
            SDIFFSTORE {t}c {t}a {t}b
            SMEMBERS {t}c
            SINTERSTORE a a b
            SMEMBERS a
            SUNIONSTORE nokey2 nokey
            EXISTS nokey2
            "#,
        );
        // The destination is overwritten whatever its type, and loses its TTL.
        script(
            d,
            r#"
            SET d str
            SUNIONSTORE d a b
            TYPE d
            EXPIRE d 1000
            SINTERSTORE d a b
            TTL d
            SET {t}c str
            SINTERSTORE {t}c {t}a {t}b
            TYPE {t}c
            "#,
        );
        // WRONGTYPE wins even when an earlier key is missing (7.0 checks every key).
        script(
            d,
            r#"
            SET s str
            SINTER nokey s
            SINTER a s
            SINTER s nokey
            SINTERCARD 2 nokey s
            SINTERSTORE d nokey s
            EXISTS d
            SUNION nokey s
            SUNIONSTORE d s
            SDIFF nokey s
            SDIFF a s
            SDIFFSTORE d a s
            SINTERSTORE s a b
            TYPE s
            "#,
        );
    });
}

#[test]
fn smove() {
    each_counted(|d| {
        script(
            d,
            r#"
            SADD a 1 2 3
            SADD b x y
            SMOVE a b 1
            SMEMBERS a
            ~SMEMBERS b
            SMOVE a b 1
            SMOVE a b 9
            SMOVE a nokey 2
            SMEMBERS nokey
            OBJECT ENCODING nokey
            SMOVE a nokey2 3
            EXISTS a
            SMEMBERS nokey2
            SMOVE nokey3 b x
            SMOVE b c x
            OBJECT ENCODING c
            SMEMBERS c
            SMOVE b b y
            SMOVE b b zz
            SET s str
            SMOVE s b x
            SMOVE b s y
            SMOVE nokey4 s y
            SMOVE b s nope
            SADD {t}a 1 2
            SMOVE {t}a {t}b 1
            SMEMBERS {t}b
            SMOVE {t}a {t}b 2
            EXISTS {t}a
            SADD h 1 2 3
            SADD d 1
            SMOVE h d 1
            SMEMBERS h
            SMEMBERS d
            "#,
        );
    });
}

#[test]
fn keyspace_commands_on_sets() {
    each_counted(|d| {
        script(
            d,
            r#"
            SADD a 1 2 3
            SADD b x y 1
            TYPE a
            TYPE b
            COPY a c
            SMEMBERS c
            OBJECT ENCODING c
            COPY b d
            ~SMEMBERS d
            OBJECT ENCODING d
            SADD c 4
            SMEMBERS a
            RENAME a d
            SMEMBERS d
            EXISTS a
            RENAME d {t}x
            SMEMBERS {t}x
            MOVE {t}x 1
            SELECT 1
            SMEMBERS {t}x
            SELECT 0
            EXPIRE b 100
            TTL b
            SADD b z
            TTL b
            SREM b x y z 1
            EXISTS b
            TTL b
            DEL c
            EXISTS c
            SADD s 1
            GET s
            APPEND s x
            INCR s
            SET s v
            GET s
            SADD s 1
            "#,
        );
    });
}

#[test]
fn sscan() {
    each(|d| {
        script(
            d,
            r#"
            SADD i 1 2 3 10 11 20
            SSCAN i 0
            SSCAN i 0 MATCH 1*
            SSCAN i 0 MATCH *0 COUNT 1
            SSCAN i 0 COUNT 1
            SSCAN i 0 match * count 100
            SSCAN i 0 COUNT 0
            SSCAN i 0 COUNT -1
            SSCAN i 0 COUNT x
            SSCAN i 0 TYPE set
            SSCAN i 0 MATCH
            SSCAN i 0 FOO
            SSCAN i x
            SSCAN i -1
            SSCAN nokey 0
            SSCAN nokey 0 FOO
            SSCAN nokey x
            SADD h a b c
            ~SSCAN h 0
            ~SSCAN h 0 MATCH a
            "#,
        );
        stats_match(d);
        // A big hashtable: a full scan returns every member exactly as Redis's does.
        let args: Vec<String> = ["SADD".to_string(), "big".to_string()]
            .into_iter()
            .chain((0..2000).map(|i| format!("m:{i}")))
            .collect();
        d.check(&args);
        for (pattern, count) in [("*", "10"), ("m:1*", "7"), ("*5", "100")] {
            let a = full_scan(&mut d.redis, "big", pattern, count);
            let b = full_scan(&mut d.percore, "big", pattern, count);
            assert_eq!(a, b, "SSCAN big MATCH {pattern} COUNT {count}");
        }
    });
}

/// Every member a full SSCAN returns.
fn full_scan(c: &mut Raw, key: &str, pattern: &str, count: &str) -> BTreeSet<Vec<u8>> {
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let r = c.cmd(&["SSCAN", key, &cursor, "MATCH", pattern, "COUNT", count]);
        let items = r.items();
        cursor = items[0].text();
        seen.extend(bulks(&items[1]));
        if cursor == "0" {
            return seen;
        }
    }
}

/// SCAN's guarantee on a hashtable: a member present for the whole scan is
/// returned, also while other clients keep adding members (the set grows
/// several times over during the scan) and removing others.
#[test]
fn sscan_survives_concurrent_writes() {
    for shards in [1, 4] {
        let s = Server::percore(shards, &[]);
        let mut c = s.raw();
        let mut w = s.raw();
        let stable: Vec<String> = (0..1000).map(|i| format!("s:{i}")).collect();
        let mut args = vec!["SADD".to_string(), "k".to_string()];
        args.extend(stable.iter().cloned());
        c.cmd(&args);
        for i in 0..300 {
            w.cmd(&["SADD", "k", &format!("v:{i}")]);
        }
        let mut seen = HashSet::new();
        let mut cursor = "0".to_string();
        let mut added = 0;
        let mut steps = 0;
        loop {
            let r = c.cmd(&["SSCAN", "k", &cursor, "COUNT", "15"]);
            let items = r.items();
            cursor = items[0].text();
            seen.extend(bulks(&items[1]));
            steps += 1;
            // Grow the set by 40 members per step (to ~8x) and drop some volatile ones.
            let mut grow = vec!["SADD".to_string(), "k".to_string()];
            for _ in 0..40 {
                grow.push(format!("n:{added}"));
                added += 1;
            }
            w.cmd(&grow);
            w.cmd(&["SREM", "k", &format!("v:{}", steps % 300)]);
            if cursor == "0" {
                break;
            }
            assert!(steps < 100_000, "scan does not end");
        }
        for m in &stable {
            assert!(seen.contains(m.as_bytes()), "{m} missed ({shards} shards)");
        }
        assert!(added > 2000, "the set grew during the scan");
    }
}

#[test]
fn resp3_shapes() {
    each_counted(|d| {
        hello3(d);
        script(
            d,
            r#"
            SADD a 1 2 3
            SADD b 2 3 4
            SADD {t}a 5 6
            SMEMBERS a
            SMEMBERS nokey
            SINTER a b
            SINTER a nokey
            SUNION a b
            SDIFF a b
            SINTER {t}a {t}b
            SUNION {t}a nokey
            SINTERCARD 2 a b
            SMISMEMBER a 1 9
            SPOP nokey
            SPOP nokey 2
            SPOP a 0
            SRANDMEMBER nokey
            SRANDMEMBER nokey 2
            SRANDMEMBER a 0
            SRANDMEMBER a 3
            SRANDMEMBER a 10
            SSCAN a 0
            SSCAN nokey 0
            SPOP b 3
            "#,
        );
        d.run(Cmp::TypeOnly, &["SRANDMEMBER", "a", "-2"]);
        d.run(Cmp::TypeOnly, &["SRANDMEMBER", "a", "2"]);
        d.run(Cmp::TypeOnly, &["SPOP", "a", "1"]);
        d.run(Cmp::TypeOnly, &["SPOP", "a"]);
    });
}

/// Encoding thresholds: exactly 512 integers stay an intset, 513 convert,
/// and CONFIG SET moves the threshold (affecting sets on their next add).
#[test]
fn intset_threshold() {
    each_counted(|d| {
        let mut args = vec!["SADD".to_string(), "k".to_string()];
        args.extend((0..512).map(|i| (i * 7 - 1000).to_string()));
        d.check(&args);
        d.line("OBJECT ENCODING k");
        d.line("SMEMBERS k");
        d.line("SADD k 5000");
        d.line("OBJECT ENCODING k");
        d.line_unordered("SMEMBERS k");
        d.line("SREM k 5000");
        d.line("OBJECT ENCODING k");
        d.line("CONFIG SET set-max-intset-entries 3");
        d.line("SADD s 1 2 3");
        d.line("OBJECT ENCODING s");
        d.line("SADD s 4");
        d.line("OBJECT ENCODING s");
        d.line("SADD t 1 2 3 4 5");
        d.line("OBJECT ENCODING t");
        d.line("SADD u 1 2");
        d.line("CONFIG SET set-max-intset-entries 1");
        d.line("OBJECT ENCODING u");
        d.line("SADD u 2");
        d.line("OBJECT ENCODING u");
        d.line("SADD u 3");
        d.line("OBJECT ENCODING u");
        d.line("CONFIG SET set-max-intset-entries 0");
        d.line("SADD z 1");
        d.line("OBJECT ENCODING z");
        d.line("CONFIG SET set-max-intset-entries 512");
        // The result of a STORE is built from an intset, like Redis's.
        d.line("SUNIONSTORE r s");
        d.line("OBJECT ENCODING r");
        d.line("SMEMBERS r");
        // SDIFF's second algorithm adds every member of the first set before
        // removing: 600 integers make it a hashtable even if few remain.
        let mut args = vec!["SADD".to_string(), "{x}big".to_string()];
        args.extend((0..600).map(|i| i.to_string()));
        d.check(&args);
        let mut args = vec!["SADD".to_string(), "{x}rm".to_string()];
        args.extend((0..500).map(|i| i.to_string()));
        d.check(&args);
        d.line("SDIFFSTORE {x}r1 {x}big {x}rm");
        d.line("OBJECT ENCODING {x}r1");
        d.line("SDIFFSTORE {x}r2 {x}big {x}rm {x}e1 {x}e2 {x}e3 {x}e4");
        d.line("SADD {x}e1 1");
        d.line("SADD {x}e2 2");
        d.line("SDIFFSTORE {x}r2 {x}big {x}rm {x}e1 {x}e2");
        d.line("OBJECT ENCODING {x}r2");
        d.line("SDIFFSTORE r3 {x}big {x}rm a b c");
        d.line("SDIFFSTORE r3 {x}big {x}rm nokey");
        d.line("OBJECT ENCODING r3");
        d.line("SMEMBERS r3");
    });
}

const KEYS: [&str; 6] = ["a", "b", "c", "d", "{t}a", "{t}b"];

fn member(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=4 => (rng.below(40) as i64 - 10).to_string(),
        5 => ["70000", "-70000", "5000000000", "-9223372036854775808"][rng.below(4) as usize]
            .to_string(),
        6 => ["007", "-0", "+1", " 1", ""][rng.below(5) as usize].to_string(),
        7 => format!("a-member-longer-than-fourteen-bytes-{}", rng.below(10)),
        _ => format!("m{}", rng.below(30)),
    }
}

/// A seeded random sequence over all commands, crossing intset → hashtable
/// (via adds and via CONFIG SET), comparing every reply and the encodings.
#[test]
fn randomized_sequence() {
    each_counted(|d| {
        let mut rng = Rng(0x5e75_1234_abcd_0001);
        for step in 0..2500 {
            let k1 = *rng.pick(&KEYS);
            let k2 = *rng.pick(&KEYS);
            let k3 = *rng.pick(&KEYS);
            let op = rng.below(24);
            let mut args: Vec<String>;
            let mut cmp = Cmp::Exact;
            match op {
                0..=4 => {
                    args = vec!["SADD".into(), k1.into()];
                    for _ in 0..1 + rng.below(5) {
                        args.push(member(&mut rng));
                    }
                }
                5 => {
                    // A burst of integers (may cross 512).
                    args = vec!["SADD".into(), k1.into()];
                    let base = rng.below(1000);
                    for i in 0..(100 + rng.below(500)) {
                        args.push((base + i).to_string());
                    }
                }
                6 | 7 => {
                    args = vec!["SREM".into(), k1.into()];
                    for _ in 0..1 + rng.below(6) {
                        args.push(member(&mut rng));
                    }
                }
                8 => args = vec!["SISMEMBER".into(), k1.into(), member(&mut rng)],
                9 => {
                    args = vec!["SMISMEMBER".into(), k1.into(), member(&mut rng)];
                    args.push(member(&mut rng));
                }
                10 => args = vec!["SCARD".into(), k1.into()],
                11 => {
                    args = vec!["SMEMBERS".into(), k1.into()];
                    cmp = Cmp::Unordered;
                }
                12 => args = vec!["SMOVE".into(), k1.into(), k2.into(), member(&mut rng)],
                13 | 14 => {
                    let name = ["SINTER", "SUNION", "SDIFF"][rng.below(3) as usize];
                    args = vec![name.into(), k1.into(), k2.into()];
                    if rng.below(2) == 0 {
                        args.push(k3.into());
                    }
                    cmp = Cmp::Unordered;
                }
                15 | 16 => {
                    let name = ["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"][rng.below(3) as usize];
                    args = vec![name.into(), k3.into(), k1.into(), k2.into()];
                }
                17 => {
                    args = vec!["SINTERCARD".into(), "2".into(), k1.into(), k2.into()];
                    if rng.below(2) == 0 {
                        args.push("LIMIT".into());
                        args.push(rng.below(5).to_string());
                    }
                }
                18 => {
                    // Only the deterministic SPOP: a count covering the whole set.
                    args = vec!["SPOP".into(), k1.into(), "100000".into()];
                    cmp = Cmp::Unordered;
                }
                19 => {
                    args = vec!["SRANDMEMBER".into(), k1.into()];
                    args.push((rng.below(20) as i64 - 10).to_string());
                    cmp = Cmp::TypeOnly;
                }
                20 => {
                    let v = ["3", "8", "64", "512"][rng.below(4) as usize];
                    args = vec![
                        "CONFIG".into(),
                        "SET".into(),
                        "set-max-intset-entries".into(),
                        v.into(),
                    ];
                }
                21 => {
                    args = if rng.below(3) == 0 {
                        vec!["SET".into(), k1.into(), "str".into()]
                    } else {
                        vec!["DEL".into(), k1.into()]
                    };
                }
                22 => args = vec!["TYPE".into(), k1.into()],
                _ => args = vec!["OBJECT".into(), "ENCODING".into(), k1.into()],
            }
            let r = d.run(cmp, &args);
            if op == 19 {
                if let Resp::Array(Some(v)) = &r {
                    let n: i64 = args[2].parse().unwrap();
                    let card = d.check(&["SCARD", k1]);
                    let card = if card.is_error() { 0 } else { card.int() };
                    let want = if n < 0 { -n } else { n.min(card) };
                    if card > 0 {
                        assert_eq!(v.len() as i64, want, "step {step}: {args:?}");
                    }
                }
            }
            if step % 10 == 0 {
                for k in KEYS {
                    let enc = d.check(&["OBJECT", "ENCODING", k]);
                    // An intset's order is Redis's order: compare exactly.
                    if enc == Resp::bulk("intset") {
                        d.check(&["SMEMBERS", k]);
                    }
                }
            }
        }
    });
}

/// Expired sets are missing sets for every command, expired (and counted) once.
#[test]
fn expired_sets() {
    each_counted(|d| {
        d.line("DEBUG SET-ACTIVE-EXPIRE 0");
        script(
            d,
            r#"
            SADD a 1 2 3
            SADD b 2 3 4
            SADD c 3
            SADD d 9
            SADD {t}a 1
            SADD {t}b 1
            PEXPIRE b 30
            PEXPIRE c 30
            PEXPIRE d 30
            PEXPIRE {t}b 30
            "#,
        );
        std::thread::sleep(std::time::Duration::from_millis(80));
        script(
            d,
            r#"
            SINTER a b
            SUNION a c
            SDIFFSTORE d a {t}a
            SMEMBERS d
            SINTERSTORE {t}b {t}a
            SMEMBERS {t}b
            SMOVE a c 1
            SMEMBERS c
            "#,
        );
        d.line("DEBUG SET-ACTIVE-EXPIRE 1");
    });
}
