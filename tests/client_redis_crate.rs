//! Every command of the server issue through a real client library (the `redis` crate),
//! with 1 and 4 shards: typed replies, errors surfaced as the client sees them, pipelines.

mod common;
use common::Server;
use redis::{Commands, ErrorKind, RedisResult, Value};

fn run_all(con: &mut redis::Connection) {
    // connection
    let pong: String = redis::cmd("PING").query(con).unwrap();
    assert_eq!(pong, "PONG");
    let echo: String = redis::cmd("ECHO").arg("hi").query(con).unwrap();
    assert_eq!(echo, "hi");
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(con).unwrap();
    assert!(id > 0);
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("tester")
        .query(con)
        .unwrap();
    let name: String = redis::cmd("CLIENT").arg("GETNAME").query(con).unwrap();
    assert_eq!(name, "tester");
    let list: String = redis::cmd("CLIENT").arg("LIST").query(con).unwrap();
    assert!(list.contains("name=tester"));
    let info: String = redis::cmd("CLIENT").arg("INFO").query(con).unwrap();
    assert!(info.starts_with(&format!("id={id} ")));
    let _: () = redis::cmd("CLIENT")
        .arg("NO-EVICT")
        .arg("on")
        .query(con)
        .unwrap();
    let _: () = redis::cmd("SELECT").arg(1).query(con).unwrap();
    let _: () = con.set("in-db1", "x").unwrap();
    let _: () = redis::cmd("SELECT").arg(0).query(con).unwrap();
    let missing: Option<String> = con.get("in-db1").unwrap();
    assert_eq!(missing, None);
    let e: RedisResult<()> = redis::cmd("SELECT").arg(99).query(con);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("DB index is out of range"));

    // strings
    let _: () = con.set("s", "hello").unwrap();
    let v: String = con.get("s").unwrap();
    assert_eq!(v, "hello");
    let n: usize = con.append("s", " world").unwrap();
    assert_eq!(n, 11);
    let n: usize = con.strlen("s").unwrap();
    assert_eq!(n, 11);
    let r: String = con.getrange("s", 0, 4).unwrap();
    assert_eq!(r, "hello");
    let r: String = redis::cmd("SUBSTR")
        .arg("s")
        .arg(-5)
        .arg(-1)
        .query(con)
        .unwrap();
    assert_eq!(r, "world");
    let n: usize = con.setrange("s", 6, "there").unwrap();
    assert_eq!(n, 11);
    let old: String = con.getset("s", "new").unwrap();
    assert_eq!(old, "hello there");
    let set: bool = con.set_nx("s", "no").unwrap();
    assert!(!set);
    let _: () = con.set_ex("ex", "v", 100).unwrap();
    let ttl: i64 = con.ttl("ex").unwrap();
    assert!((99..=100).contains(&ttl));
    let _: () = redis::cmd("PSETEX")
        .arg("px")
        .arg(100_000)
        .arg("v")
        .query(con)
        .unwrap();
    let pttl: i64 = con.pttl("px").unwrap();
    assert!(pttl > 90_000);
    let prev: Option<String> = redis::cmd("SET")
        .arg("s")
        .arg("v2")
        .arg("GET")
        .arg("KEEPTTL")
        .query(con)
        .unwrap();
    assert_eq!(prev.as_deref(), Some("new"));
    let v: String = redis::cmd("GETEX")
        .arg("ex")
        .arg("PERSIST")
        .query(con)
        .unwrap();
    assert_eq!(v, "v");
    assert_eq!(con.ttl::<_, i64>("ex").unwrap(), -1);
    let v: String = redis::cmd("GETDEL").arg("ex").query(con).unwrap();
    assert_eq!(v, "v");
    assert!(!con.exists::<_, bool>("ex").unwrap());
    // Keys a..h spread over the shards.
    let _: () = con
        .mset(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])
        .unwrap();
    let vals: Vec<Option<String>> = con.mget(&["a", "b", "zz", "d"]).unwrap();
    assert_eq!(
        vals,
        vec![Some("1".into()), Some("2".into()), None, Some("4".into())]
    );
    let ok: bool = con.mset_nx(&[("e", "5"), ("a", "x")]).unwrap();
    assert!(!ok);
    let ok: bool = con.mset_nx(&[("e", "5"), ("f", "6")]).unwrap();
    assert!(ok);
    assert_eq!(con.incr::<_, _, i64>("a", 1).unwrap(), 2);
    assert_eq!(con.decr::<_, _, i64>("a", 1).unwrap(), 1);
    assert_eq!(con.incr::<_, _, i64>("a", 10).unwrap(), 11);
    let n: i64 = redis::cmd("DECRBY").arg("a").arg(5).query(con).unwrap();
    assert_eq!(n, 6);
    let f: String = redis::cmd("INCRBYFLOAT")
        .arg("a")
        .arg("0.5")
        .query(con)
        .unwrap();
    assert_eq!(f, "6.5");
    let e: RedisResult<i64> = con.incr("s", 1);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("value is not an integer or out of range"));
    let _: () = con.set("l1", "ohmytext").unwrap();
    let _: () = con.set("l2", "mynewtext").unwrap();
    let lcs: String = redis::cmd("LCS").arg("l1").arg("l2").query(con).unwrap();
    assert_eq!(lcs, "mytext");
    let len: i64 = redis::cmd("LCS")
        .arg("l1")
        .arg("l2")
        .arg("LEN")
        .query(con)
        .unwrap();
    assert_eq!(len, 6);

    // keyspace
    assert_eq!(con.exists::<_, i64>(&["a", "b", "zz"]).unwrap(), 2);
    let t: String = redis::cmd("TYPE").arg("a").query(con).unwrap();
    assert_eq!(t, "string");
    assert!(con.expire::<_, bool>("b", 100).unwrap());
    assert!(con.pexpire::<_, bool>("c", 100_000).unwrap());
    let far = 4_000_000_000i64;
    assert!(con.expire_at::<_, bool>("d", far).unwrap());
    let et: i64 = redis::cmd("EXPIRETIME").arg("d").query(con).unwrap();
    assert_eq!(et, far);
    assert!(con.pexpire_at::<_, bool>("d", far * 1000).unwrap());
    let pet: i64 = redis::cmd("PEXPIRETIME").arg("d").query(con).unwrap();
    assert_eq!(pet, far * 1000);
    let gt: i64 = redis::cmd("EXPIRE")
        .arg("d")
        .arg(10)
        .arg("GT")
        .query(con)
        .unwrap();
    assert_eq!(gt, 0);
    assert!(con.persist::<_, bool>("d").unwrap());
    let _: () = con.rename("a", "renamed").unwrap();
    let ok: bool = con.rename_nx("renamed", "b").unwrap();
    assert!(!ok);
    let e: RedisResult<()> = con.rename("nope", "x");
    assert!(e.unwrap_err().to_string().contains("no such key"));
    let copied: i64 = redis::cmd("COPY")
        .arg("b")
        .arg("b-copy")
        .query(con)
        .unwrap();
    assert_eq!(copied, 1);
    let moved: i64 = redis::cmd("MOVE").arg("b-copy").arg(2).query(con).unwrap();
    assert_eq!(moved, 1);
    let touched: i64 = redis::cmd("TOUCH")
        .arg("b")
        .arg("c")
        .arg("zz")
        .query(con)
        .unwrap();
    assert_eq!(touched, 2);
    let mut keys: Vec<String> = con.keys("*").unwrap();
    keys.sort();
    assert_eq!(
        keys,
        vec!["b", "c", "d", "e", "f", "l1", "l2", "px", "renamed", "s"]
    );
    let scanned: std::collections::BTreeSet<String> = con.scan().unwrap().collect();
    assert_eq!(scanned.len(), keys.len());
    let rk: String = redis::cmd("RANDOMKEY").query(con).unwrap();
    assert!(keys.contains(&rk));
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("s")
        .query(con)
        .unwrap();
    assert_eq!(enc, "embstr");
    let rc: i64 = redis::cmd("OBJECT")
        .arg("REFCOUNT")
        .arg("s")
        .query(con)
        .unwrap();
    assert_eq!(rc, 1);
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("s")
        .query(con)
        .unwrap();
    assert!(idle <= 1);
    let e: RedisResult<i64> = redis::cmd("OBJECT").arg("FREQ").arg("s").query(con);
    assert!(e.unwrap_err().to_string().contains("LFU"));
    let n: i64 = redis::cmd("DBSIZE").query(con).unwrap();
    assert_eq!(n as usize, keys.len());
    let _: () = redis::cmd("SWAPDB").arg(0).arg(2).query(con).unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(con).unwrap();
    assert_eq!(n, 1, "db 2 held only b-copy");
    let _: () = redis::cmd("SWAPDB").arg(0).arg(2).query(con).unwrap();
    assert_eq!(con.del::<_, i64>(&["b", "c", "zz"]).unwrap(), 2);
    assert_eq!(con.unlink::<_, i64>(&["d", "e"]).unwrap(), 2);
    let _: () = redis::cmd("FLUSHDB").query(con).unwrap();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(con).unwrap(), 0);
    let _: () = redis::cmd("FLUSHALL").arg("ASYNC").query(con).unwrap();

    // server
    let info: redis::InfoDict = redis::cmd("INFO").query(con).unwrap();
    assert_eq!(
        info.get::<String>("redis_version").as_deref(),
        Some("7.0.15")
    );
    let cfg: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("timeout")
        .query(con)
        .unwrap();
    assert_eq!(cfg, vec!["timeout", "0"]);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("timeout")
        .arg("0")
        .query(con)
        .unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(con).unwrap();
    let time: Vec<String> = redis::cmd("TIME").query(con).unwrap();
    assert_eq!(time.len(), 2);
    let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(con).unwrap();
    assert!(count > 50);
    let _: () = redis::cmd("DEBUG").arg("SLEEP").arg(0).query(con).unwrap();

    // errors as the client library classifies them
    let e: RedisResult<Value> = redis::cmd("NOSUCHCOMMAND").query(con);
    assert_eq!(e.unwrap_err().kind(), ErrorKind::ResponseError);
    let _: () = con.set("str", "x").unwrap();
    let e: RedisResult<Value> = redis::cmd("GET").query(con);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("wrong number of arguments"));

    // a pipeline over many keys and shards
    let mut p = redis::pipe();
    for i in 0..500 {
        p.set(format!("p{i}"), i).ignore();
    }
    for i in 0..500 {
        p.get(format!("p{i}"));
    }
    let got: Vec<i64> = p.query(con).unwrap();
    assert_eq!(got, (0..500).collect::<Vec<i64>>());
}

#[test]
fn every_command_through_the_redis_crate() {
    for shards in [1, 4] {
        let s = Server::percore(shards, &[]);
        let mut con = s.client();
        run_all(&mut con);
    }
}

#[test]
fn auth_reset_and_quit_through_the_redis_crate() {
    let s = Server::percore(2, &["--requirepass", "secret"]);
    let mut con = s.client();
    let e: RedisResult<()> = con.set("a", 1);
    assert_eq!(e.unwrap_err().code(), Some("NOAUTH"));
    let _: () = redis::cmd("AUTH").arg("secret").query(&mut con).unwrap();
    let _: () = con.set("a", 1).unwrap();
    let reset: String = redis::cmd("RESET").query(&mut con).unwrap();
    assert_eq!(reset, "RESET");
    let e: RedisResult<i64> = con.get("a");
    assert_eq!(e.unwrap_err().code(), Some("NOAUTH"));
    let authed = redis::Client::open(format!("redis://:secret@127.0.0.1:{}/", s.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut authed = authed;
    assert_eq!(authed.get::<_, i64>("a").unwrap(), 1);
    let _: () = redis::cmd("QUIT").query(&mut authed).unwrap();
}
