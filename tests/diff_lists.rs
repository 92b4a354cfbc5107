//! Differential tests of the LIST command family (non-blocking) against
//! redis-server 7.0.15: LPUSH/RPUSH/LPUSHX/RPUSHX, LPOP/RPOP with and without
//! COUNT, LLEN, LINDEX, LRANGE, LSET, LINSERT, LREM, LTRIM, LPOS and its
//! options, LMOVE, RPOPLPUSH, LMPOP; keys spread over shards (`a`, `b`, `c`,
//! `d` live on four different shards with --shards 4); generic key commands
//! on lists; wrong types both ways; arity; RESP3 shapes; and a seeded random
//! sequence (also across CONFIG SET list-max-listpack-size) comparing every
//! reply and OBJECT ENCODING. Every test runs against percore with 1 and 4 shards.

mod common;
use common::{Diff, Rng, Server};

/// Runs each non-blank, non-`#` line of `text` on both servers, compared exactly.
fn script(d: &mut Diff, text: &str) {
    d.quoted_script(text);
}

fn pair(shards: usize) -> (Server, Server) {
    (Server::redis(&[]), Server::percore(shards, &[]))
}

const BASICS: &str = r#"
FLUSHALL
# pushes
LPUSH l a b c
RPUSH l d e f
LPUSHX l x
RPUSHX l y z
LPUSHX nokey x
RPUSHX nokey x y
EXISTS nokey
LRANGE l 0 -1
LLEN l
LLEN nokey
TYPE l
OBJECT ENCODING l
# integers are stored as integers but read back as the same strings
RPUSH n 0 1 -1 127 128 -4096 4095 4096 32767 -32768 8388607 -8388608 2147483647 -2147483648 9223372036854775807 -9223372036854775808 007 -0 "" " 1" 1.5 99999999999999999999
LRANGE n 0 -1
LINDEX n 14
LINDEX n -3
LPOS n 007
LPOS n 7
LREM n 0 -0
LREM n 0 0
LINSERT n BEFORE 128 x
LINSERT n AFTER -9223372036854775808 y
LRANGE n 0 -1
# LINDEX
LINDEX l 0
LINDEX l -1
LINDEX l 100
LINDEX l -100
LINDEX l 9223372036854775807
LINDEX l -9223372036854775808
LINDEX l abc
LINDEX nokey abc
LINDEX nokey 0
LINDEX l 1.0
# LRANGE
LRANGE l 0 0
LRANGE l -3 -1
LRANGE l -100 100
LRANGE l 5 2
LRANGE l 100 200
LRANGE l -1 -2
LRANGE l 0 -100
LRANGE l -9223372036854775808 9223372036854775807
LRANGE l a 1
LRANGE l 1 a
LRANGE nokey 0 -1
LRANGE nokey a b
# LSET
LSET l 0 first
LSET l -1 last
LSET l 100 x
LSET l -100 x
LSET l x x
LSET nokey 0 x
LSET nokey x x
LRANGE l 0 -1
# LINSERT
LINSERT l BEFORE first b0
LINSERT l after last a0
LINSERT l AfTeR e mid
LINSERT l before nothere x
LINSERT l middle e x
LINSERT nokey before a b
LINSERT l "after\x00junk" e x2
LINSERT l "\x00after" e x3
RPUSH bin "\x00" "a\x00b" "\xff\xfe" "\r\n"
LPOS bin "a\x00b"
LREM bin 0 "\x00"
LRANGE bin 0 -1
LINSERT nokey middle a b
EXISTS nokey
LRANGE l 0 -1
# LREM
RPUSH r a b a c a b a
LREM r 2 a
LRANGE r 0 -1
LREM r -1 a
LRANGE r 0 -1
LREM r 0 b
LRANGE r 0 -1
LREM r 0 zz
LREM r x a
LREM nokey 1 a
LREM r 0 a
LREM r 0 c
EXISTS r
RPUSH r a a a
LREM r -9223372036854775808 a
EXISTS r
# LTRIM
RPUSH t 0 1 2 3 4 5 6 7 8 9
LTRIM t 1 -2
LRANGE t 0 -1
LTRIM t -3 100
LRANGE t 0 -1
LTRIM t 1 1
LRANGE t 0 -1
LTRIM t a 1
LTRIM nokey 0 1
LTRIM t 5 2
EXISTS t
RPUSH t x y
LTRIM t 2 10
EXISTS t
RPUSH t x y
LTRIM t -1 -2
EXISTS t
RPUSH t x y z
LTRIM t -9223372036854775808 9223372036854775807
LRANGE t 0 -1
# LPOP / RPOP
DEL p
RPUSH p 1 2 3 4 5
LPOP p
RPOP p
LPOP p 0
LPOP p 2
RPOP p 1
LPOP p 10
EXISTS p
LPOP p
LPOP p 0
LPOP p 3
RPOP nokey
RPOP nokey 0
RPOP nokey 5
RPUSH p a b c
RPOP p 100
EXISTS p
RPUSH p a
LPOP p -1
LPOP p x
LPOP p 1.5
LPOP p 1 2
RPOP p 1 2 3
LPOP p 9223372036854775807
LPOP
RPOP
"#;

const LPOS: &str = r#"
FLUSHALL
RPUSH l a b c 1 2 3 c c a 1
LPOS l c
LPOS l c RANK 1
LPOS l c RANK 2
LPOS l c RANK -1
LPOS l c RANK -3
LPOS l c RANK -4
LPOS l c RANK 4
LPOS l c COUNT 0
LPOS l c COUNT 2
LPOS l c COUNT 10
LPOS l c RANK 2 COUNT 0
LPOS l c RANK -1 COUNT 2
LPOS l c RANK -2 COUNT 0
LPOS l c MAXLEN 3
LPOS l c MAXLEN 7
LPOS l c MAXLEN 7 COUNT 0
LPOS l c RANK -1 MAXLEN 2
LPOS l c RANK -1 MAXLEN 3 COUNT 0
LPOS l 1
LPOS l 1 COUNT 0
LPOS l 01
LPOS l zz
LPOS l zz COUNT 0
LPOS l zz COUNT 1
LPOS l c RANK 0
LPOS l c RANK x
LPOS l c RANK -9223372036854775808
LPOS l c RANK -9223372036854775808 COUNT 2
LPOS l c RANK -9223372036854775808 COUNT 0
LPOS l c RANK 9223372036854775807
LPOS l c COUNT -1
LPOS l c COUNT x
LPOS l c MAXLEN -1
LPOS l c MAXLEN x
LPOS l c MAXLEN 0
LPOS l c COUNT
LPOS l c RANK
LPOS l c foo 1
LPOS l c count 1 rank 2 maxlen 0
LPOS l c COUNT 1 COUNT 2
LPOS l c "RANK\x00x" 2
LPOS nokey c
LPOS nokey c COUNT 0
LPOS nokey c RANK 0
LPOS nokey c RANK x
SET s v
LPOS s c
LPOS s c COUNT 1
LPOS s c RANK 0
"#;

const WRONGTYPE_ARITY: &str = r#"
FLUSHALL
SET s v
RPUSH l a b c
LPUSH s x
RPUSH s x
LPUSHX s x
RPUSHX s x
LPOP s
RPOP s 2
LPOP s 0
LLEN s
LINDEX s 0
LINDEX s x
LRANGE s 0 -1
LRANGE s x 1
LSET s 0 x
LSET s x x
LINSERT s BEFORE a b
LINSERT s middle a b
LREM s 0 a
LREM s x a
LTRIM s 0 1
LTRIM s x 1
LMOVE s l LEFT RIGHT
LMOVE l s LEFT RIGHT
LMOVE nokey s LEFT RIGHT
LMOVE s nokey LEFT RIGHT
RPOPLPUSH s l
RPOPLPUSH l s
RPOPLPUSH nokey s
LMPOP 1 s LEFT
LMPOP 2 nokey s LEFT
LMPOP 2 l s LEFT
LRANGE l 0 -1
GET l
INCR l
APPEND l x
STRLEN l
GETRANGE l 0 1
SETRANGE l 0 x
LPUSH
LPUSH l
RPUSH l
LPUSHX l
LLEN
LLEN l x
LINDEX l
LRANGE l 0
LSET l 0
LINSERT l BEFORE a
LREM l 0
LTRIM l 0
LPOS l
LMOVE l l LEFT
RPOPLPUSH l
LMPOP 1 l
LMPOP
lpush l "with space" "\x00\xff"
LRANGE l 0 1
"#;

const MOVES: &str = r#"
FLUSHALL
RPUSH a 1 2 3
RPUSH b x
LMOVE a b LEFT RIGHT
LMOVE a b RIGHT LEFT
LMOVE a b left left
LMOVE a b right right
EXISTS a
LRANGE b 0 -1
LMOVE a b LEFT RIGHT
LMOVE b c LEFT RIGHT
LMOVE b c middle RIGHT
LMOVE b c LEFT middle
LMOVE nokey c middle RIGHT
LMOVE b c "LEFT\x00junk" RIGHT
LRANGE c 0 -1
RPOPLPUSH b d
RPOPLPUSH b d
RPOPLPUSH nokey d
LRANGE d 0 -1
RPOPLPUSH d d
LRANGE d 0 -1
DEL d
RPUSH d only
LMOVE d d LEFT RIGHT
LRANGE d 0 -1
RPOPLPUSH d d
LMOVE d d RIGHT LEFT
LRANGE d 0 -1
SET s str
LMOVE b s LEFT LEFT
LMOVE d s LEFT LEFT
LRANGE d 0 -1
LMOVE s d LEFT LEFT
LMOVE nokey s LEFT LEFT
RPOPLPUSH d s
GET s
# LMPOP over keys on different shards
FLUSHALL
RPUSH c 1 2 3
LMPOP 4 a b c d LEFT
LMPOP 4 a b c d RIGHT COUNT 5
LMPOP 4 a b c d RIGHT COUNT 5
EXISTS c
RPUSH b x y z
RPUSH d p q
LMPOP 4 a b c d RIGHT COUNT 2
LMPOP 4 a c d b LEFT COUNT 1
LMPOP 3 a c d LEFT COUNT 9223372036854775807
LMPOP 1 b left count 1
LMPOP 1 b LEFT
EXISTS b d
SET s str
RPUSH d 1
LMPOP 3 a s d LEFT
LMPOP 3 a d s LEFT
LMPOP 2 a c LEFT
LMPOP 0 a LEFT
LMPOP -1 a LEFT
LMPOP x a LEFT
LMPOP 1 a MIDDLE
LMPOP 2 a LEFT
LMPOP 9223372036854775807 a LEFT
LMPOP 9223372036854775806 a LEFT
LMPOP 1 a LEFT COUNT 0
LMPOP 1 a LEFT COUNT -1
LMPOP 1 a LEFT COUNT x
LMPOP 1 a LEFT COUNT
LMPOP 1 a LEFT COUNT 1 COUNT 1
LMPOP 1 a LEFT foo
LMPOP 2 a b RIGHT "COUNT\x00x" 1
"#;

const GENERIC: &str = r#"
FLUSHALL
RPUSH a 1 2 3 hello
TYPE a
COPY a b
LRANGE b 0 -1
OBJECT ENCODING b
RPUSH b 4
LLEN a
COPY a b
COPY a b REPLACE
LRANGE b 0 -1
COPY a c DB 1
SELECT 1
LRANGE c 0 -1
TYPE c
SELECT 0
RENAME a d
EXISTS a
LRANGE d 0 -1
RENAME d a
MOVE a 2
EXISTS a
SELECT 2
LRANGE a 0 -1
LPOP a 10
EXISTS a
SELECT 0
RPUSH e x y
EXPIRE e 100
TTL e
LPUSH e z
TTL e
LPOP e 3
TTL e
EXISTS e
RPUSH e x
TTL e
PERSIST e
DEL e
EXISTS e
RPUSH f x y
RENAME f c
LRANGE c 0 -1
DEL a b c d
DBSIZE
"#;

fn run_script(shards: usize, text: &str) {
    let (r, p) = pair(shards);
    let mut d = Diff::new(&r, &p);
    script(&mut d, text);
}

#[test]
fn basics_1() {
    run_script(1, BASICS)
}

#[test]
fn basics_4() {
    run_script(4, BASICS)
}

#[test]
fn lpos_1() {
    run_script(1, LPOS)
}

#[test]
fn lpos_4() {
    run_script(4, LPOS)
}

#[test]
fn wrongtype_and_arity_1() {
    run_script(1, WRONGTYPE_ARITY)
}

#[test]
fn wrongtype_and_arity_4() {
    run_script(4, WRONGTYPE_ARITY)
}

#[test]
fn moves_1() {
    run_script(1, MOVES)
}

#[test]
fn moves_4() {
    run_script(4, MOVES)
}

#[test]
fn generic_key_commands_1() {
    run_script(1, GENERIC)
}

#[test]
fn generic_key_commands_4() {
    run_script(4, GENERIC)
}

/// RESP3 shapes: nulls, null arrays and nested arrays.
fn resp3(shards: usize) {
    let (r, p) = pair(shards);
    let mut d = Diff::new(&r, &p);
    d.run(common::Cmp::TypeOnly, &["HELLO", "3"]);
    script(
        &mut d,
        r#"
        FLUSHALL
        LPOP nokey
        LPOP nokey 2
        LPOP nokey 0
        RPOP nokey 1
        LINDEX nokey 0
        LPOS nokey a
        LPOS nokey a COUNT 0
        LMPOP 2 a b LEFT
        LMOVE a b LEFT LEFT
        RPOPLPUSH a b
        RPUSH a 1 2 x
        LINDEX a 5
        LPOS a zz
        LPOS a 1 COUNT 0
        LPOP a 0
        LMPOP 2 b a RIGHT COUNT 2
        LMOVE a b LEFT LEFT
        LRANGE b 0 -1
        RPOP b 5
        LRANGE b 0 -1
        "#,
    );
}

#[test]
fn resp3_1() {
    resp3(1)
}

#[test]
fn resp3_4() {
    resp3(4)
}

/// Lazy expiry of a list: a list command finds it gone, as do the moves.
fn expiry(shards: usize) {
    let (r, p) = pair(shards);
    let mut d = Diff::new(&r, &p);
    script(
        &mut d,
        "FLUSHALL\nRPUSH a 1 2\nRPUSH b 3\nRPUSH c 4\nPEXPIRE a 1\nPEXPIRE b 1\nPEXPIRE c 1",
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    script(
        &mut d,
        "LLEN a\nLMOVE b a LEFT LEFT\nLPUSHX c x\nEXISTS a b c\nRPUSH a z\nTTL a\nLRANGE a 0 -1",
    );
}

#[test]
fn expiry_1() {
    expiry(1)
}

#[test]
fn expiry_4() {
    expiry(4)
}

/// Large lists: many quicklist nodes, LINDEX/LSET/LINSERT/LREM/LTRIM deep inside.
fn large(shards: usize) {
    let (r, p) = pair(shards);
    let mut d = Diff::new(&r, &p);
    d.line("FLUSHALL");
    for chunk in 0..20 {
        let mut args: Vec<String> = vec!["RPUSH".into(), "big".into()];
        for i in 0..500 {
            args.push(format!("e:{}", chunk * 500 + i));
        }
        d.check(&args);
    }
    script(
        &mut d,
        r#"
        LLEN big
        LINDEX big 0
        LINDEX big 4999
        LINDEX big 5000
        LINDEX big 9999
        LINDEX big -2500
        LSET big 7777 replaced
        LINDEX big 7777
        LINSERT big BEFORE e:3000 before3000
        LINSERT big AFTER e:3000 after3000
        LRANGE big 2995 3005
        LRANGE big -5 -1
        LREM big 0 e:42
        LREM big -1 e:9999
        LPOS big e:5000
        LPOS big e:5000 MAXLEN 5000
        LPOS big e:5000 RANK -1
        LTRIM big 1000 -1000
        LLEN big
        LINDEX big 0
        LINDEX big -1
        OBJECT ENCODING big
        LPOP big 3
        RPOP big 3
        LMPOP 1 big RIGHT COUNT 1000
        LLEN big
        LTRIM big 0 -1
        LLEN big
        LTRIM big 1 0
        EXISTS big
        "#,
    );
    // Big elements: a node per element.
    let big = "x".repeat(10_000);
    for i in 0..5 {
        d.check(&["RPUSH", "bigel", &format!("{i}{big}")]);
        d.check(&["LPUSH", "bigel", "small"]);
    }
    script(
        &mut d,
        "LLEN bigel\nLINDEX bigel 3\nLREM bigel 0 small\nLLEN bigel\nLINSERT bigel BEFORE small x\nOBJECT ENCODING bigel",
    );
}

#[test]
fn large_lists_1() {
    large(1)
}

#[test]
fn large_lists_4() {
    large(4)
}

/// A random element: small ints, tokens that repeat (so pivots and LREM hit),
/// and long strings that fill nodes quickly.
fn value(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=2 => (rng.below(300) as i64 - 100).to_string(),
        3..=6 => format!("t{}", rng.below(8)),
        7 => "y".repeat(rng.below(200) as usize),
        8 => "z".repeat(500 + rng.below(5000) as usize),
        _ => format!("{}", rng.next() as i64),
    }
}

fn index(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "0".into(),
        1 => "-1".into(),
        2 => (rng.below(60) as i64 - 30).to_string(),
        3 => (rng.below(400) as i64 - 200).to_string(),
        4 => rng.below(20).to_string(),
        _ => (-(rng.below(20) as i64)).to_string(),
    }
}

fn random_command(rng: &mut Rng) -> Vec<String> {
    const KEYS: &[&str] = &["a", "b", "c", "d", "s"];
    let key = |rng: &mut Rng| rng.pick(KEYS).to_string();
    let end = |rng: &mut Rng| rng.pick(&["LEFT", "RIGHT"]).to_string();
    let mut v: Vec<String> = Vec::new();
    match rng.below(22) {
        0..=3 => {
            v.push(
                rng.pick(&["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"])
                    .to_string(),
            );
            v.push(key(rng));
            let many = if rng.below(8) == 0 { 120 } else { 5 };
            for _ in 0..1 + rng.below(many) {
                v.push(value(rng));
            }
        }
        4 | 5 => {
            v.push(rng.pick(&["LPOP", "RPOP"]).to_string());
            v.push(key(rng));
            if rng.below(2) == 0 {
                let max = if rng.below(5) == 0 { 200 } else { 6 };
                v.push(rng.below(max).to_string());
            }
        }
        6 => v.extend(["LLEN".into(), key(rng)]),
        7 => v.extend(["LINDEX".into(), key(rng), index(rng)]),
        8 | 9 => v.extend(["LRANGE".into(), key(rng), index(rng), index(rng)]),
        10 => v.extend(["LSET".into(), key(rng), index(rng), value(rng)]),
        11 => v.extend([
            "LINSERT".into(),
            key(rng),
            rng.pick(&["BEFORE", "AFTER"]).to_string(),
            value(rng),
            value(rng),
        ]),
        12 => v.extend([
            "LREM".into(),
            key(rng),
            (rng.below(7) as i64 - 3).to_string(),
            value(rng),
        ]),
        13 => {
            if rng.below(4) == 0 {
                v.extend(["LTRIM".into(), key(rng), index(rng), index(rng)])
            } else {
                // Mostly trims that keep something, so lists grow.
                v.extend(["LTRIM".into(), key(rng), "0".into(), "300".into()])
            }
        }
        14 => {
            v.extend(["LPOS".into(), key(rng), value(rng)]);
            for _ in 0..rng.below(3) {
                match rng.below(3) {
                    0 => v.extend(["RANK".into(), (rng.below(7) as i64 - 3).to_string()]),
                    1 => v.extend(["COUNT".into(), rng.below(4).to_string()]),
                    _ => v.extend(["MAXLEN".into(), rng.below(30).to_string()]),
                }
            }
        }
        15 | 16 => v.extend(["LMOVE".into(), key(rng), key(rng), end(rng), end(rng)]),
        17 => v.extend(["RPOPLPUSH".into(), key(rng), key(rng)]),
        18 => {
            let n = 1 + rng.below(4) as usize;
            v.extend(["LMPOP".into(), n.to_string()]);
            for _ in 0..n {
                v.push(key(rng));
            }
            v.push(end(rng));
            if rng.below(2) == 0 {
                v.extend(["COUNT".into(), (1 + rng.below(10)).to_string()]);
            }
        }
        19 => v.extend(["OBJECT".into(), "ENCODING".into(), key(rng)]),
        20 => {
            let size = rng
                .pick(&[
                    "-1", "-2", "-3", "-5", "-6", "1", "2", "3", "5", "16", "128",
                ])
                .to_string();
            v.extend([
                "CONFIG".into(),
                "SET".into(),
                "list-max-listpack-size".into(),
                size,
            ]);
        }
        _ => match rng.below(4) {
            0 => v.extend(["SET".into(), "s".into(), "str".into()]),
            1 => v.extend(["DEL".into(), key(rng)]),
            2 => v.extend(["TYPE".into(), key(rng)]),
            _ => v.extend(["EXISTS".into(), key(rng)]),
        },
    }
    v
}

fn random(shards: usize, seed: u64, steps: usize) {
    let (r, p) = pair(shards);
    let mut d = Diff::new(&r, &p);
    let mut rng = Rng(seed | 1);
    d.line("FLUSHALL");
    for step in 0..steps {
        let cmd = random_command(&mut rng);
        d.check(&cmd);
        if step % 50 == 0 {
            for k in ["a", "b", "c", "d"] {
                d.check(&["LRANGE", k, "0", "-1"]);
                d.check(&["OBJECT", "ENCODING", k]);
            }
        }
    }
    d.line("CONFIG SET list-max-listpack-size -2");
}

fn seed() -> u64 {
    std::env::var("LIST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x05ee_d0f1_1575)
}

#[test]
fn random_1() {
    random(1, seed(), 3000)
}

#[test]
fn random_4() {
    random(4, seed() ^ 0xabcdef, 3000)
}

#[test]
fn random_resp3_4() {
    let (r, p) = pair(4);
    let mut d = Diff::new(&r, &p);
    d.run(common::Cmp::TypeOnly, &["HELLO", "3"]);
    let mut rng = Rng(seed() ^ 0x3333 | 1);
    d.line("FLUSHALL");
    for _ in 0..1500 {
        let cmd = random_command(&mut rng);
        d.check(&cmd);
    }
    d.line("CONFIG SET list-max-listpack-size -2");
}

/// The keys the cross-shard tests use do live on four different shards.
#[test]
fn keys_spread_over_shards() {
    let shards: std::collections::HashSet<usize> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| percore::server::exec::shard_of_key(k.as_bytes(), 4))
        .collect();
    assert_eq!(shards.len(), 4);
}

/// keyspace_hits/misses: reads (LLEN, LINDEX, LRANGE, LPOS) count, writes do not.
fn stats(shards: usize) {
    let (r, p) = pair(shards);
    let mut d = Diff::new(&r, &p);
    script(
        &mut d,
        r#"
        CONFIG RESETSTAT
        RPUSH a 1 2 3
        LLEN a
        LLEN nokey
        LINDEX a 0
        LINDEX nokey 0
        LRANGE a 0 -1
        LRANGE nokey 0 -1
        LPOS a 2
        LPOS nokey 2
        LPOP a
        LPOP nokey
        LMOVE a b LEFT LEFT
        LMOVE nokey b LEFT LEFT
        LMPOP 2 nokey b LEFT
        LSET a 0 x
        LREM a 0 x
        LTRIM nokey 0 1
        LINSERT nokey BEFORE a b
        "#,
    );
    let field = |info: &common::Resp, name: &str| -> String {
        info.text()
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    let a = d.redis.cmd(&["INFO", "stats"]);
    let b = d.percore.cmd(&["INFO", "stats"]);
    for f in ["keyspace_hits:", "keyspace_misses:"] {
        assert!(!field(&a, f).is_empty(), "{f} missing");
        assert_eq!(field(&a, f), field(&b, f));
    }
}

#[test]
fn keyspace_stats_1() {
    stats(1)
}

#[test]
fn keyspace_stats_4() {
    stats(4)
}
