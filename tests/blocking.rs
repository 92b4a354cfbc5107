//! Blocking list commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP), blocking sorted-set
//! pops (BZPOPMIN, BZPOPMAX, BZMPOP), CLIENT UNBLOCK and
//! INFO blocked_clients: FIFO order, multi-shard keys, timeouts, disconnects that lose
//! nothing, exactly-once delivery under concurrency, and differential checks against
//! redis-server 7.0.15. Every test runs percore with 1 and 4 shards.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Diff, Raw, Resp, Rng, Server};
use percore::server::exec::shard_of_key;

const SHARDS: [usize; 2] = [1, 4];

/// INFO blocked_clients.
fn blocked_clients(c: &mut Raw) -> i64 {
    let info = c.cmds("INFO clients").text();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("blocked_clients field")
}

/// Waits until INFO reports `n` blocked clients (bounded).
fn wait_blocked(c: &mut Raw, n: i64) {
    let start = Instant::now();
    while blocked_clients(c) != n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "blocked_clients never reached {n} (is {})",
            blocked_clients(c)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `n` keys named `prefix{i}` that live on pairwise different shards (when there are several).
fn keys_on_distinct_shards(prefix: &str, n: usize, shards: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut used = HashSet::new();
    for i in 0.. {
        let k = format!("{prefix}{i}");
        let s = shard_of_key(k.as_bytes(), shards);
        if shards == 1 || used.insert(s) {
            out.push(k);
        }
        if out.len() == n {
            break;
        }
    }
    out
}

fn bulk(s: &str) -> Resp {
    Resp::bulk(s)
}

fn arr(items: Vec<Resp>) -> Resp {
    Resp::Array(Some(items))
}

#[test]
fn fifo_order_of_three_waiters() {
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let mut ctl = s.raw();
        let mut waiters: Vec<Raw> = Vec::new();
        for i in 0..3 {
            let mut w = s.raw();
            w.send_cmd(&["BLPOP", "fifo", "0"]);
            wait_blocked(&mut ctl, i + 1);
            waiters.push(w);
        }
        assert_eq!(ctl.cmds("RPUSH fifo a b c d"), Resp::Int(4));
        for (w, v) in waiters.iter_mut().zip(["a", "b", "c"]) {
            assert_eq!(w.read(), arr(vec![bulk("fifo"), bulk(v)]));
        }
        // Served right after the push, before the next command: one element left.
        assert_eq!(ctl.cmds("LRANGE fifo 0 -1"), arr(vec![bulk("d")]));
        wait_blocked(&mut ctl, 0);
    }
}

#[test]
fn several_keys_on_several_shards_first_available_wins() {
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let mut c = s.raw();
        let k = keys_on_distinct_shards("mk", 3, shards);
        // Data already there: the first non-empty key in argument order.
        c.cmd(&["RPUSH", &k[1], "x1", "x2"]);
        c.cmd(&["RPUSH", &k[2], "y1"]);
        assert_eq!(
            c.cmd(&["BLPOP", &k[0], &k[1], &k[2], "0"]),
            arr(vec![bulk(&k[1]), bulk("x1")])
        );
        assert_eq!(
            c.cmd(&["BRPOP", &k[0], &k[2], &k[1], "0"]),
            arr(vec![bulk(&k[2]), bulk("y1")])
        );
        c.cmd(&["DEL", &k[1]]);
        // Blocked on three shards: one push wakes it, exactly one element is taken.
        let mut w = s.raw();
        w.send_cmd(&["BLPOP", &k[0], &k[1], &k[2], "0"]);
        wait_blocked(&mut c, 1);
        c.cmd(&["RPUSH", &k[2], "z"]);
        assert_eq!(w.read(), arr(vec![bulk(&k[2]), bulk("z")]));
        wait_blocked(&mut c, 0);
        c.cmd(&["RPUSH", &k[0], "later"]);
        c.cmd(&["RPUSH", &k[1], "later"]);
        assert_eq!(c.cmd(&["LLEN", &k[0]]), Resp::Int(1));
        assert_eq!(c.cmd(&["LLEN", &k[1]]), Resp::Int(1));
        assert_eq!(c.cmd(&["EXISTS", &k[2]]), Resp::Int(0));
        // Many clients on many keys, one push each: each client takes exactly one.
        let mut ws: Vec<Raw> = Vec::new();
        c.cmd(&["DEL", &k[0], &k[1], &k[2]]);
        for i in 0..6 {
            let mut w = s.raw();
            w.send_cmd(&["BLPOP", &k[0], &k[1], &k[2], "5"]);
            wait_blocked(&mut c, i + 1);
            ws.push(w);
        }
        for (i, key) in k.iter().enumerate() {
            c.cmd(&["RPUSH", key, &format!("a{i}"), &format!("b{i}")]);
        }
        let mut got: Vec<String> = ws.iter_mut().map(|w| w.read().items()[1].text()).collect();
        got.sort();
        assert_eq!(got, ["a0", "a1", "a2", "b0", "b1", "b2"]);
        for key in &k {
            assert_eq!(c.cmd(&["EXISTS", key]), Resp::Int(0));
        }
    }
}

#[test]
fn timeouts_return_null_after_the_timeout() {
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let mut c = s.raw();
        for cmd in [
            vec!["BLPOP", "t1", "t2", "0.1"],
            vec!["BRPOP", "t1", "0.1"],
            vec!["BLMOVE", "t1", "t2", "LEFT", "RIGHT", "0.1"],
            vec!["BRPOPLPUSH", "t1", "t2", "0.1"],
            vec!["BLMPOP", "0.1", "2", "t1", "t2", "LEFT", "COUNT", "3"],
        ] {
            let start = Instant::now();
            assert_eq!(c.cmd(&cmd), Resp::Array(None), "{cmd:?}");
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(100), "{cmd:?} after {took:?}");
            assert!(took < Duration::from_secs(5), "{cmd:?} after {took:?}");
        }
        // RESP3: the null.
        c.cmds("HELLO 3");
        assert_eq!(c.cmds("BLPOP t1 0.05"), Resp::Null);
        assert_eq!(c.cmds("BLMOVE t1 t2 LEFT LEFT 0.05"), Resp::Null);
        // Sub-millisecond timeouts round up to 1 ms, not to "forever".
        let start = Instant::now();
        assert_eq!(c.cmds("BLPOP t1 0.0001"), Resp::Null);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(blocked_clients(&mut c), 0);
    }
}

#[test]
fn disconnect_while_blocked_loses_nothing() {
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let mut c = s.raw();
        for cmd in [
            vec!["BLPOP", "dk", "0"],
            vec!["BLMPOP", "0", "1", "dk", "RIGHT", "COUNT", "2"],
            vec!["BLMOVE", "dk", "dk2", "LEFT", "LEFT", "0"],
        ] {
            let mut w = s.raw();
            w.send_cmd(&cmd);
            wait_blocked(&mut c, 1);
            drop(w);
            wait_blocked(&mut c, 0);
            c.cmds("RPUSH dk v1 v2");
            assert_eq!(
                c.cmds("LRANGE dk 0 -1"),
                arr(vec![bulk("v1"), bulk("v2")]),
                "{cmd:?}"
            );
            assert_eq!(c.cmds("EXISTS dk2"), Resp::Int(0));
            c.cmds("DEL dk");
        }
    }
}

/// Commands after a blocking one in the same pipeline run after it is served, as Redis;
/// replies before it are written at once.
#[test]
fn pipeline_after_a_blocked_command_waits_for_it() {
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let mut c = s.raw();
        let mut w = s.raw();
        let mut req = common::encode(&["SET", "before", "1"]);
        req.extend(common::encode(&["BLPOP", "pk", "0"]));
        req.extend(common::encode(&["LLEN", "pk"]));
        w.send(&req);
        assert_eq!(w.read(), Resp::Simple(b"OK".to_vec()));
        wait_blocked(&mut c, 1);
        // More commands while blocked: buffered.
        w.send_cmd(&["GET", "before"]);
        std::thread::sleep(Duration::from_millis(50));
        c.cmds("RPUSH pk a b");
        assert_eq!(w.read(), arr(vec![bulk("pk"), bulk("a")]));
        assert_eq!(w.read(), Resp::Int(1));
        assert_eq!(w.read(), bulk("1"));
    }
}

#[test]
fn client_unblock_both_modes_and_info() {
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let mut c = s.raw();
        let mut w = s.raw();
        let id = w.cmds("CLIENT ID").int().to_string();
        assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id]), Resp::Int(0));
        w.send_cmd(&["BRPOP", "u1", "u2", "0"]);
        wait_blocked(&mut c, 1);
        let list = c.cmds("CLIENT LIST").text();
        let line = list
            .lines()
            .find(|l| l.starts_with(&format!("id={id} ")))
            .expect("listed");
        assert!(line.contains(" flags=b "), "{line}");
        assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id, "TIMEOUT"]), Resp::Int(1));
        assert_eq!(w.read(), Resp::Array(None));
        wait_blocked(&mut c, 0);
        w.send_cmd(&["BLMOVE", "u1", "u2", "RIGHT", "LEFT", "0"]);
        wait_blocked(&mut c, 1);
        assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id, "error"]), Resp::Int(1));
        assert_eq!(
            w.read(),
            Resp::Error(b"UNBLOCKED client unblocked via CLIENT UNBLOCK".to_vec())
        );
        wait_blocked(&mut c, 0);
        // The connection goes on.
        assert_eq!(w.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
        assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id]), Resp::Int(0));
        let stats = c.cmds("INFO errorstats").text();
        assert!(stats.contains("errorstat_UNBLOCKED:count=1"), "{stats}");
    }
}

/// The same sequences against redis-server: replies, errors, timeouts, RESP3 shapes.
#[test]
fn differential_vs_redis() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let pc = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &pc);
        d.line("FLUSHALL");
        d.script(
            "
            RPUSH l1 a b c d e
            BLPOP l1 0
            BRPOP l1 0
            BLPOP nokey l1 0
            BLMPOP 0 2 nokey l1 RIGHT
            BLMPOP 0 1 l1 LEFT COUNT 10
            EXISTS l1
            RPUSH l1 a b c
            BLMOVE l1 l2 LEFT RIGHT 0
            BLMOVE l1 l2 RIGHT LEFT 0
            BRPOPLPUSH l1 l2 0
            LRANGE l2 0 -1
            BLMOVE l2 l2 LEFT RIGHT 0
            LRANGE l2 0 -1
            RPUSH rot only
            EXPIRE rot 1000
            BLMOVE rot rot LEFT RIGHT 0
            BRPOPLPUSH rot rot 0
            TTL rot
            LRANGE rot 0 -1
            SET s x
            BLPOP s 0
            BLPOP nokey s 0
            BLMOVE s l2 LEFT LEFT 0
            BLMOVE l2 s LEFT LEFT 0
            BRPOPLPUSH l2 s 0
            BLMPOP 0 2 nokey s LEFT
            BLPOP l2 s 0
            BLPOP nokey abc
            BLPOP nokey -1
            BLPOP nokey -0.0011
            BLPOP nokey inf
            BLPOP nokey -inf
            BLPOP nokey nan
            BLPOP nokey 1e20
            BLPOP nokey 0x
            BRPOP nokey 1,5
            BLMOVE a b UP LEFT 0
            BLMOVE a b LEFT DOWN 0
            BLMOVE a b LEFT LEFT abc
            BLMOVE a b UP LEFT abc
            BRPOPLPUSH a b -1
            BLMPOP 0 0 k LEFT
            BLMPOP 0 abc k LEFT
            BLMPOP 0 -1 k LEFT
            BLMPOP 0 2 k LEFT
            BLMPOP 0 1 k MIDDLE
            BLMPOP 0 1 k LEFT COUNT 0
            BLMPOP 0 1 k LEFT COUNT -1
            BLMPOP 0 1 k LEFT COUNT abc
            BLMPOP 0 1 k LEFT COUNT 1 COUNT 2
            BLMPOP 0 1 k LEFT COUNT
            BLMPOP 0 1 k LEFT junk
            BLMPOP abc 1 k LEFT
            BLMPOP -1 1 k LEFT
            BLMPOP -1 1 k LEFT COUNT 0
            BLPOP
            BLPOP k
            BLMOVE a b LEFT LEFT
            BLMPOP 0 1
            BRPOPLPUSH a b
            CLIENT UNBLOCK
            CLIENT UNBLOCK abc
            CLIENT UNBLOCK abc foo
            CLIENT UNBLOCK 1 foo
            CLIENT UNBLOCK 999999 TIMEOUT
            CLIENT UNBLOCK 999999 error
            CLIENT UNBLOCK -5
            CLIENT UNBLOCK 1 timeout extra
            BLPOP nokey 0.01
            BRPOP nokey nokey2 0.01
            BLMOVE nokey l2 LEFT LEFT 0.01
            BRPOPLPUSH nokey l2 0.01
            BLMPOP 0.01 1 nokey LEFT COUNT 2
            ",
        );
        d.run(common::Cmp::TypeOnly, &["HELLO", "3"]);
        d.script(
            "
            RPUSH l3 a b c
            BLPOP l3 0
            BLMPOP 0 1 l3 RIGHT COUNT 5
            BLPOP nokey 0.01
            BLMOVE nokey l2 LEFT LEFT 0.01
            BLMPOP 0.01 1 nokey LEFT
            ",
        );
        d.run(common::Cmp::TypeOnly, &["HELLO", "2"]);
        // WRONGTYPE while serving a blocked BLMOVE: the element stays in the source.
        let (k_src, k_dst) = {
            let k = keys_on_distinct_shards("wt", 2, shards);
            (k[0].clone(), k[1].clone())
        };
        for srv in [&redis, &pc] {
            let mut c = srv.raw();
            c.cmds("FLUSHALL");
            let mut w = srv.raw();
            w.send_cmd(&["BLMOVE", &k_src, &k_dst, "LEFT", "LEFT", "0"]);
            wait_blocked(&mut c, 1);
            c.cmd(&["SET", &k_dst, "string"]);
            c.cmd(&["RPUSH", &k_src, "e1"]);
            assert_eq!(
                w.read(),
                Resp::Error(
                    b"WRONGTYPE Operation against a key holding the wrong kind of value".to_vec()
                ),
                "{:?}",
                srv.kind
            );
            assert_eq!(c.cmd(&["LRANGE", &k_src, "0", "-1"]), arr(vec![bulk("e1")]));
            // A waited key that becomes another type keeps its waiter blocked.
            w.send_cmd(&["BLPOP", "other", "0"]);
            wait_blocked(&mut c, 1);
            c.cmds("SET x 1");
            c.cmds("RENAME x other");
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(blocked_clients(&mut c), 1);
            c.cmds("DEL other");
            c.cmds("RPUSH y v");
            c.cmds("RENAME y other");
            assert_eq!(w.read(), arr(vec![bulk("other"), bulk("v")]));
            assert_eq!(c.cmds("EXISTS other"), Resp::Int(0));
            // MOVE and COPY onto a waited key wake its waiter, as dbAdd does in Redis.
            w.send_cmd(&["BLPOP", "mvk", "0"]);
            wait_blocked(&mut c, 1);
            let mut c1 = srv.raw();
            c1.cmds("SELECT 1");
            c1.cmds("RPUSH mvk m1 m2");
            assert_eq!(c1.cmds("MOVE mvk 0"), Resp::Int(1));
            assert_eq!(w.read(), arr(vec![bulk("mvk"), bulk("m1")]));
            w.send_cmd(&["BRPOP", "cpk", "0"]);
            wait_blocked(&mut c, 1);
            assert_eq!(c.cmds("COPY mvk cpk"), Resp::Int(1));
            assert_eq!(w.read(), arr(vec![bulk("cpk"), bulk("m2")]));
            assert_eq!(c.cmds("EXISTS cpk"), Resp::Int(0));
            assert_eq!(c.cmds("LLEN mvk"), Resp::Int(1));
            // SWAPDB brings a list under a waited key: served, as Redis rescans.
            let mut w1 = srv.raw();
            w1.cmds("SELECT 1");
            w1.send_cmd(&["BLPOP", "sw", "0"]);
            wait_blocked(&mut c, 1);
            c.cmds("FLUSHALL");
            c.cmds("RPUSH sw x y");
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(blocked_clients(&mut c), 1);
            c.cmds("SWAPDB 0 1");
            assert_eq!(
                w1.read(),
                arr(vec![bulk("sw"), bulk("x")]),
                "{:?}",
                srv.kind
            );
            assert_eq!(w1.cmds("LRANGE sw 0 -1"), arr(vec![bulk("y")]));
            assert_eq!(c.cmds("EXISTS sw"), Resp::Int(0));
            c.cmds("FLUSHALL");
            // CLIENT UNBLOCK counts: both modes are failed calls of the blocked command.
            c.cmds("CONFIG RESETSTAT");
            let id = w.cmds("CLIENT ID").int().to_string();
            w.send_cmd(&["BLPOP", "nokey", "0"]);
            wait_blocked(&mut c, 1);
            c.cmd(&["CLIENT", "UNBLOCK", &id, "TIMEOUT"]);
            assert_eq!(w.read(), Resp::Array(None));
            w.send_cmd(&["BLPOP", "nokey", "0"]);
            wait_blocked(&mut c, 1);
            c.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]);
            assert!(w.read().is_error());
            let stats = c.cmds("INFO commandstats").text();
            let get = |name: &str| {
                let l = stats
                    .lines()
                    .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
                    .unwrap_or_else(|| panic!("{name} in {stats}"))
                    .to_string();
                let calls = l.split("calls=").nth(1).unwrap().split(',').next().unwrap();
                let failed = l.split("failed_calls=").nth(1).unwrap().trim().to_string();
                (calls.to_string(), failed)
            };
            assert_eq!(get("blpop"), ("2".into(), "2".into()), "{:?}", srv.kind);
            assert_eq!(
                get("client|unblock"),
                ("2".into(), "1".into()),
                "{:?}",
                srv.kind
            );
        }
    }
}

/// A consumer's view: what it received.
type Seen = Arc<Mutex<Vec<String>>>;

/// Reads one reply after a half-close: Some(reply) if the server had answered, None at EOF.
fn read_after_half_close(c: &mut Raw) -> Option<Resp> {
    let _ = c.stream.shutdown(Shutdown::Write);
    c.try_read()
}

/// Producers push uniquely named elements on keys of several shards while
/// consumers pop them with random short timeouts and random disconnects while
/// blocked: every element ends up consumed exactly once or still in a list.
#[test]
fn many_producers_and_consumers_exactly_once() {
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let port = s.port;
        let keys = keys_on_distinct_shards("q", 4, shards.max(4));
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut handles = Vec::new();
        for p in 0..4u64 {
            let keys = keys.clone();
            handles.push(std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                let mut rng = Rng(0x9e37_79b9 ^ ((p + 1) * 7919));
                for i in 0..500 {
                    let k = rng.pick(&keys).clone();
                    let cmd = if rng.below(2) == 0 { "RPUSH" } else { "LPUSH" };
                    assert!(!c.cmd(&[cmd, &k, &format!("p{p}-{i}")]).is_error());
                    if rng.below(50) == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }));
        }
        let mut consumers = Vec::new();
        for n in 0..6u64 {
            let keys = keys.clone();
            let seen = seen.clone();
            let done = done.clone();
            consumers.push(std::thread::spawn(move || {
                let mut rng = Rng(0x1234_5678 ^ ((n + 1) * 104_729));
                let mut c = Raw::connect(port);
                let mut idle = 0;
                while !(done.load(std::sync::atomic::Ordering::SeqCst) && idle > 3) {
                    let t = format!("0.0{}", 1 + rng.below(9));
                    let mut args: Vec<String> = Vec::new();
                    match rng.below(3) {
                        0 => args.extend(["BLPOP".to_string()]),
                        1 => args.extend(["BRPOP".to_string()]),
                        _ => args.extend(["BLMPOP".to_string(), t.clone(), keys.len().to_string()]),
                    }
                    let mpop = args[0] == "BLMPOP";
                    for _ in 0..1 {
                        let mut ks = keys.clone();
                        // A random rotation: different first keys.
                        ks.rotate_left(rng.below(keys.len() as u64) as usize);
                        args.extend(ks);
                    }
                    if mpop {
                        args.extend([
                            "LEFT".into(),
                            "COUNT".into(),
                            (1 + rng.below(3)).to_string(),
                        ]);
                    } else {
                        args.push(t);
                    }
                    c.send_cmd(&args);
                    let disconnect = rng.below(8) == 0;
                    let reply = if disconnect {
                        std::thread::sleep(Duration::from_micros(rng.below(3000)));
                        let r = read_after_half_close(&mut c);
                        c = Raw::connect(port);
                        r
                    } else {
                        Some(c.read())
                    };
                    match reply {
                        Some(Resp::Array(Some(kv))) => {
                            idle = 0;
                            let mut s = seen.lock().unwrap();
                            if mpop {
                                for e in kv[1].items() {
                                    s.push(e.text());
                                }
                            } else {
                                s.push(kv[1].text());
                            }
                        }
                        Some(Resp::Array(None)) | Some(Resp::Null) | None => idle += 1,
                        other => panic!("unexpected reply {other:?}"),
                    }
                }
            }));
        }
        for h in handles {
            h.join().expect("producer");
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        for h in consumers {
            h.join().expect("consumer");
        }
        let mut c = s.raw();
        wait_blocked(&mut c, 0);
        let mut count: HashMap<String, usize> = HashMap::new();
        for e in seen.lock().unwrap().iter() {
            *count.entry(e.clone()).or_default() += 1;
        }
        for k in &keys {
            for e in c.cmd(&["LRANGE", k, "0", "-1"]).items() {
                *count.entry(e.text()).or_default() += 1;
            }
        }
        for p in 0..4 {
            for i in 0..500 {
                let e = format!("p{p}-{i}");
                assert_eq!(count.get(&e), Some(&1), "{e} (shards={shards})");
            }
        }
        assert_eq!(count.len(), 2000);
    }
}

/// BLMOVE between keys of two shards under concurrency: each element moves exactly once.
#[test]
fn blmove_between_shards_exactly_once() {
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let port = s.port;
        let k = keys_on_distinct_shards("mv", 2, shards);
        let (src, dst) = (k[0].clone(), k[1].clone());
        let received: Seen = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut consumers = Vec::new();
        for n in 0..4u64 {
            let (src, dst) = (src.clone(), dst.clone());
            let received = received.clone();
            let done = done.clone();
            consumers.push(std::thread::spawn(move || {
                let mut rng = Rng(0xdead_beef ^ ((n + 1) * 31337));
                let mut c = Raw::connect(port);
                let mut idle = 0;
                while !(done.load(std::sync::atomic::Ordering::SeqCst) && idle > 3) {
                    let t = format!("0.0{}", 1 + rng.below(9));
                    if rng.below(2) == 0 {
                        c.send_cmd(&["BLMOVE", &src, &dst, "RIGHT", "LEFT", &t]);
                    } else {
                        c.send_cmd(&["BRPOPLPUSH", &src, &dst, &t]);
                    }
                    let reply = if rng.below(6) == 0 {
                        std::thread::sleep(Duration::from_micros(rng.below(3000)));
                        let r = read_after_half_close(&mut c);
                        c = Raw::connect(port);
                        r
                    } else {
                        Some(c.read())
                    };
                    match reply {
                        Some(Resp::Bulk(Some(e))) => {
                            idle = 0;
                            received
                                .lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&e).into_owned());
                        }
                        Some(Resp::Array(None)) | None => idle += 1,
                        other => panic!("unexpected reply {other:?}"),
                    }
                }
            }));
        }
        let mut p = Raw::connect(port);
        for i in 0..600 {
            p.cmd(&["LPUSH", &src, &format!("e{i}")]);
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        for h in consumers {
            h.join().expect("consumer");
        }
        wait_blocked(&mut p, 0);
        let in_dst: Vec<String> = p
            .cmd(&["LRANGE", &dst, "0", "-1"])
            .items()
            .iter()
            .map(|r| r.text())
            .collect();
        let in_src: Vec<String> = p
            .cmd(&["LRANGE", &src, "0", "-1"])
            .items()
            .iter()
            .map(|r| r.text())
            .collect();
        let mut all: Vec<String> = in_dst.iter().chain(in_src.iter()).cloned().collect();
        all.sort();
        let mut want: Vec<String> = (0..600).map(|i| format!("e{i}")).collect();
        want.sort();
        assert_eq!(all, want, "shards={shards}");
        // Whatever a client received is in the destination.
        let dst_set: HashSet<&String> = in_dst.iter().collect();
        for e in received.lock().unwrap().iter() {
            assert!(dst_set.contains(e), "{e} received but not in {dst}");
        }
    }
}

/// Timed-out and unblocked waits leave no registration behind: a new key
/// created later does not trip over stale waiters, and memory stays flat.
#[test]
fn no_leftover_registrations() {
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let mut c = s.raw();
        let mut w = s.raw();
        // Pipelined short timeouts on many keys.
        let mut req = Vec::new();
        for i in 0..300 {
            req.extend(common::encode(&[
                "BLPOP",
                &format!("leak{i}"),
                &format!("leak{}", i + 1),
                "0.001",
            ]));
        }
        w.send(&req);
        for _ in 0..300 {
            assert_eq!(w.read(), Resp::Array(None));
        }
        // A push on one of those keys stays (nobody waits any more).
        std::thread::sleep(Duration::from_millis(50));
        c.cmds("RPUSH leak7 v");
        assert_eq!(c.cmds("LLEN leak7"), Resp::Int(1));
        assert_eq!(blocked_clients(&mut c), 0);
        w.stream.flush().unwrap();
    }
}

// ------------------------------------------------------------------ sorted sets

/// RESP2's `[key, member, score]` of BZPOPMIN/BZPOPMAX.
fn zpopped(k: &str, m: &str, s: &str) -> Resp {
    arr(vec![bulk(k), bulk(m), bulk(s)])
}

/// BZPOPMIN/BZPOPMAX/BZMPOP against redis-server: errors, arity, immediate pops,
/// timeouts, RESP3 shapes, WRONGTYPE, MULTI, and every way a key gets created.
#[test]
fn zset_differential_vs_redis() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let pc = Server::percore(shards, &[]);
        let mut d = Diff::new(&redis, &pc);
        d.line("FLUSHALL");
        let script = "
            ZADD z 1 a 2 b 3 c 4 d 5.5 e
            BZPOPMIN z 0
            BZPOPMAX z 0
            BZPOPMIN nokey z 0
            BZPOPMAX nokey nokey2 z 0.5
            BZMPOP 0 2 nokey z MIN
            ZADD z 1 a 2 b 3 c -inf m inf n
            BZMPOP 0 1 z MAX COUNT 2
            BZMPOP 0 1 z MIN COUNT 2
            BZMPOP 0 1 z min count 100
            EXISTS z
            BZPOPMIN nokey 0.01
            BZPOPMAX nokey nokey2 0.01
            BZMPOP 0.01 2 nokey nokey2 MAX COUNT 3
            SET s x
            RPUSH l a
            BZPOPMIN s 0
            BZPOPMAX nokey s 0
            BZPOPMIN l 0
            BZMPOP 0 2 nokey s MIN
            BZMPOP 0 1 l MAX COUNT 2
            BZPOPMIN s abc
            BZPOPMIN nokey abc
            BZPOPMIN nokey -1
            BZPOPMIN nokey -0.0011
            BZPOPMIN nokey inf
            BZPOPMIN nokey nan
            BZPOPMIN nokey 1e20
            BZPOPMAX nokey 0x
            BZMPOP 0 0 k MIN
            BZMPOP 0 abc k MIN
            BZMPOP 0 -1 k MIN
            BZMPOP 0 2 k MIN
            BZMPOP 0 1 k LEFT
            BZMPOP 0 1 k MIN COUNT 0
            BZMPOP 0 1 k MIN COUNT -1
            BZMPOP 0 1 k MIN COUNT abc
            BZMPOP 0 1 k MIN COUNT 1 COUNT 2
            BZMPOP 0 1 k MIN COUNT
            BZMPOP 0 1 k MIN junk
            BZMPOP abc 1 k MIN
            BZMPOP -1 1 k MIN
            BZMPOP -1 1 k MIN COUNT 0
            BZMPOP abc 1 s MIN
            BZPOPMIN
            BZPOPMIN k
            BZPOPMAX k
            BZMPOP 0 1
            BZMPOP 0
            BZMPOP
            MULTI
            BZPOPMIN nokey 0
            BZMPOP 0 1 nokey MAX
            ZADD mz 7 x 8 y
            BZPOPMAX mz 0
            BZMPOP 0 1 mz MIN COUNT 3
            BZPOPMIN s 0
            EXEC
            ";
        d.script(script);
        d.run(common::Cmp::TypeOnly, &["HELLO", "3"]);
        d.script(script);
        d.run(common::Cmp::TypeOnly, &["HELLO", "2"]);
        // Key creation wakes waiters: ZADD, the *STORE commands, RENAME, MOVE, COPY.
        for srv in [&redis, &pc] {
            let mut c = srv.raw();
            c.cmds("FLUSHALL");
            let mut w = srv.raw();
            let step = |w: &mut Raw, c: &mut Raw, block: &[&str], create: &[&str], want: Resp| {
                w.send_cmd(block);
                wait_blocked(c, 1);
                assert!(!c.cmd(create).is_error(), "{create:?}");
                assert_eq!(
                    w.read(),
                    want,
                    "{block:?} after {create:?} on {:?}",
                    srv.kind
                );
                wait_blocked(c, 0);
            };
            step(
                &mut w,
                &mut c,
                &["BZPOPMIN", "w1", "0"],
                &["ZADD", "w1", "2", "m"],
                zpopped("w1", "m", "2"),
            );
            c.cmds("ZADD src 1 a 2 b 3 c");
            step(
                &mut w,
                &mut c,
                &["BZPOPMAX", "w2", "0"],
                &["ZUNIONSTORE", "w2", "1", "src"],
                zpopped("w2", "c", "3"),
            );
            step(
                &mut w,
                &mut c,
                &["BZPOPMIN", "w3", "0"],
                &["ZINTERSTORE", "w3", "1", "src"],
                zpopped("w3", "a", "1"),
            );
            step(
                &mut w,
                &mut c,
                &["BZPOPMIN", "w4", "0"],
                &["ZDIFFSTORE", "w4", "1", "src"],
                zpopped("w4", "a", "1"),
            );
            step(
                &mut w,
                &mut c,
                &["BZMPOP", "0", "1", "w5", "MAX", "COUNT", "2"],
                &["ZRANGESTORE", "w5", "src", "0", "-1"],
                arr(vec![
                    bulk("w5"),
                    arr(vec![
                        arr(vec![bulk("c"), bulk("3")]),
                        arr(vec![bulk("b"), bulk("2")]),
                    ]),
                ]),
            );
            c.cmds("ZADD r1 9 r");
            step(
                &mut w,
                &mut c,
                &["BZPOPMIN", "w6", "0"],
                &["RENAME", "r1", "w6"],
                zpopped("w6", "r", "9"),
            );
            step(
                &mut w,
                &mut c,
                &["BZPOPMIN", "w7", "0"],
                &["COPY", "src", "w7"],
                zpopped("w7", "a", "1"),
            );
            let mut c1 = srv.raw();
            c1.cmds("SELECT 1");
            c1.cmds("ZADD w8 4 q 5 p");
            w.send_cmd(&["BZPOPMAX", "w8", "0"]);
            wait_blocked(&mut c, 1);
            assert_eq!(c1.cmds("MOVE w8 0"), Resp::Int(1));
            assert_eq!(w.read(), zpopped("w8", "p", "5"));
            // A waited key that becomes a list keeps a sorted-set waiter blocked,
            // and the waiter is served once the key is a sorted set again.
            w.send_cmd(&["BZPOPMIN", "w9", "0"]);
            wait_blocked(&mut c, 1);
            c.cmds("RPUSH w9 x");
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(blocked_clients(&mut c), 1);
            c.cmds("DEL w9");
            c.cmds("ZADD w9 1.25 y");
            assert_eq!(w.read(), zpopped("w9", "y", "1.25"));
            // RESP3: the score is a double, the timeout a null.
            w.cmds("HELLO 3");
            w.send_cmd(&["BZPOPMIN", "w10", "0"]);
            wait_blocked(&mut c, 1);
            c.cmds("ZADD w10 2.5 m");
            assert_eq!(
                w.read(),
                arr(vec![bulk("w10"), bulk("m"), Resp::Double(b"2.5".to_vec())])
            );
            assert_eq!(w.cmds("BZMPOP 0.01 1 w10 MIN"), Resp::Null);
            // CLIENT UNBLOCK, both modes.
            let id = w.cmds("CLIENT ID").int().to_string();
            w.send_cmd(&["BZMPOP", "0", "1", "u", "MIN"]);
            wait_blocked(&mut c, 1);
            assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id]), Resp::Int(1));
            assert_eq!(w.read(), Resp::Null);
            w.send_cmd(&["BZPOPMAX", "u", "0"]);
            wait_blocked(&mut c, 1);
            assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]), Resp::Int(1));
            assert!(w.read().is_error());
        }
    }
}

/// Three BZPOPMIN waiters on one key are served in the order they blocked; a waiter
/// on `a b c d` (on 4 different shards with 4 shards) gets the first key created.
#[test]
fn zset_fifo_and_keys_on_different_shards() {
    if SHARDS.contains(&4) {
        let shards: HashSet<usize> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| shard_of_key(k.as_bytes(), 4))
            .collect();
        assert_eq!(shards.len(), 4, "a b c d live on 4 shards");
    }
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let mut ctl = s.raw();
        let mut waiters: Vec<Raw> = Vec::new();
        for i in 0..3 {
            let mut w = s.raw();
            w.send_cmd(&["BZPOPMIN", "zfifo", "0"]);
            wait_blocked(&mut ctl, i + 1);
            waiters.push(w);
        }
        assert_eq!(ctl.cmds("ZADD zfifo 3 c 1 a 2 b 4 d"), Resp::Int(4));
        for (w, (m, sc)) in waiters.iter_mut().zip([("a", "1"), ("b", "2"), ("c", "3")]) {
            assert_eq!(w.read(), zpopped("zfifo", m, sc));
        }
        assert_eq!(
            ctl.cmds("ZRANGE zfifo 0 -1 WITHSCORES"),
            arr(vec![bulk("d"), bulk("4")])
        );
        wait_blocked(&mut ctl, 0);

        // One waiter on four shards, another on two of the keys only.
        let mut w1 = s.raw();
        w1.send_cmd(&["BZPOPMAX", "a", "b", "c", "d", "0"]);
        wait_blocked(&mut ctl, 1);
        let mut w2 = s.raw();
        w2.send_cmd(&["BZMPOP", "0", "2", "d", "c", "MIN", "COUNT", "5"]);
        wait_blocked(&mut ctl, 2);
        ctl.cmds("ZADD c 1 x 2 y");
        assert_eq!(w1.read(), zpopped("c", "y", "2"));
        assert_eq!(
            w2.read(),
            arr(vec![bulk("c"), arr(vec![arr(vec![bulk("x"), bulk("1")])])])
        );
        wait_blocked(&mut ctl, 0);
        assert_eq!(ctl.cmds("EXISTS a b c d"), Resp::Int(0));
        // The waiter's registrations on the other shards are gone: a later key stays.
        ctl.cmds("ZADD a 1 z");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(ctl.cmds("ZCARD a"), Resp::Int(1));
        // Immediate pops take the first non-empty key in argument order.
        ctl.cmds("ZADD d 5 v");
        assert_eq!(ctl.cmds("BZPOPMIN b d a 0"), zpopped("d", "v", "5"));
    }
}

/// A client that disconnects while blocked takes nothing: later members stay with their scores.
#[test]
fn zset_disconnect_while_blocked_loses_nothing() {
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let mut c = s.raw();
        for cmd in [
            vec!["BZPOPMIN", "dz", "0"],
            vec!["BZPOPMAX", "other", "dz", "0"],
            vec!["BZMPOP", "0", "1", "dz", "MAX", "COUNT", "2"],
        ] {
            let mut w = s.raw();
            w.send_cmd(&cmd);
            wait_blocked(&mut c, 1);
            drop(w);
            wait_blocked(&mut c, 0);
            c.cmds("ZADD dz 1.5 m1 2.5 m2");
            assert_eq!(
                c.cmds("ZRANGE dz 0 -1 WITHSCORES"),
                arr(vec![bulk("m1"), bulk("1.5"), bulk("m2"), bulk("2.5")]),
                "{cmd:?}"
            );
            c.cmds("DEL dz");
        }
    }
}

/// Producers ZADD unique members (score = their number) on keys of several shards
/// while BZPOPMIN/BZPOPMAX/BZMPOP consumers pop with random short timeouts and
/// random disconnects: every member ends up popped exactly once (with its score)
/// or still in a sorted set with its score.
#[test]
fn zset_producers_and_consumers_exactly_once() {
    const PER: u64 = 300;
    for shards in SHARDS {
        let s = Server::percore(shards, &[]);
        let port = s.port;
        let keys = keys_on_distinct_shards("zq", 4, shards.max(4));
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut producers = Vec::new();
        for p in 0..4u64 {
            let keys = keys.clone();
            producers.push(std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                let mut rng = Rng(0x51ed_2701 ^ ((p + 1) * 7919));
                for i in 0..PER {
                    let k = rng.pick(&keys).clone();
                    let n = p * PER + i;
                    let r = c.cmd(&["ZADD", &k, &n.to_string(), &format!("m{n}")]);
                    assert_eq!(r, Resp::Int(1));
                    if rng.below(50) == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }));
        }
        let mut consumers = Vec::new();
        for n in 0..6u64 {
            let keys = keys.clone();
            let seen = seen.clone();
            let done = done.clone();
            consumers.push(std::thread::spawn(move || {
                let mut rng = Rng(0xabcd_1234 ^ ((n + 1) * 104_729));
                let mut c = Raw::connect(port);
                let mut idle = 0;
                while !(done.load(std::sync::atomic::Ordering::SeqCst) && idle > 3) {
                    let t = format!("0.0{}", 1 + rng.below(9));
                    let mut ks = keys.clone();
                    ks.rotate_left(rng.below(keys.len() as u64) as usize);
                    let kind = rng.below(3);
                    let mut args: Vec<String> = Vec::new();
                    match kind {
                        0 | 1 => {
                            args.push(if kind == 0 { "BZPOPMIN" } else { "BZPOPMAX" }.into());
                            args.extend(ks);
                            args.push(t);
                        }
                        _ => {
                            args.extend(["BZMPOP".to_string(), t, keys.len().to_string()]);
                            args.extend(ks);
                            let w = if rng.below(2) == 0 { "MIN" } else { "MAX" };
                            args.extend([w.into(), "COUNT".into(), (1 + rng.below(3)).to_string()]);
                        }
                    }
                    c.send_cmd(&args);
                    let reply = if rng.below(8) == 0 {
                        std::thread::sleep(Duration::from_micros(rng.below(3000)));
                        let r = read_after_half_close(&mut c);
                        c = Raw::connect(port);
                        r
                    } else {
                        Some(c.read())
                    };
                    match reply {
                        Some(Resp::Array(Some(v))) => {
                            idle = 0;
                            let mut s = seen.lock().unwrap();
                            if kind == 2 {
                                for pair in v[1].items() {
                                    let p = pair.items();
                                    s.push((p[0].text(), p[1].text()));
                                }
                            } else {
                                s.push((v[1].text(), v[2].text()));
                            }
                        }
                        Some(Resp::Array(None)) | None => idle += 1,
                        other => panic!("unexpected reply {other:?}"),
                    }
                }
            }));
        }
        for h in producers {
            h.join().expect("producer");
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        for h in consumers {
            h.join().expect("consumer");
        }
        let mut c = s.raw();
        wait_blocked(&mut c, 0);
        let mut count: HashMap<String, usize> = HashMap::new();
        let mut check = |m: String, sc: String| {
            assert_eq!(format!("m{sc}"), m, "member with its own score");
            *count.entry(m).or_default() += 1;
        };
        for (m, sc) in seen.lock().unwrap().drain(..) {
            check(m, sc);
        }
        for k in &keys {
            let v = c.cmd(&["ZRANGE", k, "0", "-1", "WITHSCORES"]);
            for p in v.items().chunks(2) {
                check(p[0].text(), p[1].text());
            }
        }
        for n in 0..4 * PER {
            assert_eq!(
                count.get(&format!("m{n}")),
                Some(&1),
                "m{n} (shards={shards})"
            );
        }
        assert_eq!(count.len() as u64, 4 * PER);
    }
}
