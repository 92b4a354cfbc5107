//! The CONNECTION family against redis-server 7.0.15: PING/ECHO/SELECT, unknown
//! command and subcommand errors, HELLO and RESP3, AUTH with and without
//! requirepass, QUIT, RESET, the CLIENT subcommands (ID, SETNAME, GETNAME,
//! INFO, LIST, KILL, NO-EVICT, REPLY, HELP), protected mode, maxclients and
//! the idle `timeout`. Each test runs percore with 1 and with 4 shards.

mod common;
use common::{encode, Cmp, Diff, Raw, Resp, Server};

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SHARDS: [usize; 2] = [1, 4];

/// percore with the settings the harness gives redis-server, so CONFIG GET values agree.
fn percore(shards: usize, extra: &[&str]) -> Server {
    let mut args = vec!["--bind", "127.0.0.1", "--save", ""];
    args.extend_from_slice(extra);
    Server::percore(shards, &args)
}

/// Runs `f` on a fresh connection to each server and returns both results.
fn both<T>(redis: &Server, percore: &Server, f: impl Fn(&Server) -> T) -> (T, T) {
    (f(redis), f(percore))
}

/// The reply with the value of its `id` field zeroed (client ids differ by nature).
fn no_id(r: Resp) -> Resp {
    match r {
        Resp::Array(Some(mut v)) => {
            for i in (0..v.len().saturating_sub(1)).step_by(2) {
                if v[i] == Resp::bulk("id") {
                    v[i + 1] = Resp::Int(0);
                }
            }
            Resp::Array(Some(v))
        }
        Resp::Map(mut v) => {
            for (k, val) in v.iter_mut() {
                if *k == Resp::bulk("id") {
                    *val = Resp::Int(0);
                }
            }
            Resp::Map(v)
        }
        other => other,
    }
}

/// Sends the same command to both sides of `d`, compares replies without the `id` field.
fn check_no_id(d: &mut Diff, line: &str) -> Resp {
    let args: Vec<&str> = line.split_whitespace().collect();
    let a = no_id(d.redis.cmd(&args));
    let b = no_id(d.percore.cmd(&args));
    assert_eq!(a, b, "replies differ for {line:?}");
    b
}

/// The reply as text: bulk, simple or verbatim (without RESP3's `txt:` prefix).
fn text_of(r: &Resp) -> String {
    let t = r.text();
    match r {
        Resp::Verbatim(_) => t[4..].to_string(),
        _ => t,
    }
}

/// `k1=v1 k2=v2 ...` as (name, value) pairs.
fn fields(line: &str) -> Vec<(String, String)> {
    line.trim_end()
        .split(' ')
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or((f, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn field(line: &str, name: &str) -> String {
    fields(line)
        .into_iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
        .1
}

fn names(line: &str) -> Vec<String> {
    fields(line).into_iter().map(|(k, _)| k).collect()
}

/// Waits until the server lists exactly `n` clients (closed connections leave asynchronously).
fn wait_clients(c: &mut Raw, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = text_of(&c.cmds("CLIENT LIST"));
        let got = list.lines().count();
        if got == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} clients, have {got}:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when the peer closed `c` (EOF, or a reset) within `wait`.
fn closed(c: &mut Raw, wait: Duration) -> bool {
    let _ = c.stream.set_read_timeout(Some(wait));
    let mut b = [0u8; 1];
    let r = match c.reader.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    let _ = c.stream.set_read_timeout(Some(Duration::from_secs(30)));
    r
}

const BASICS: &str = r#"
PING
PING hello
PING a b
ping
ECHO
ECHO hi
ECHO a b
SELECT
SELECT 1
SELECT 15
SELECT 16
SELECT -1
SELECT abc
SELECT 1.5
SELECT 99999999999999999999
SELECT 1 2
SELECT 0
FOO
FOO a b
foo bar
CLIENT
CLIENT foo
CLIENT foo bar
client Foo
OBJECT
OBJECT foo
OBJECT foo bar
CONFIG
CONFIG foo
COMMAND foo
COMMAND foo bar
CLIENT SETNAME
CLIENT SETNAME a b
CLIENT GETNAME x
CLIENT ID x
CLIENT INFO x
CLIENT NO-EVICT
CLIENT NO-EVICT maybe
CLIENT REPLY
CLIENT REPLY maybe
CLIENT HELP x
CLIENT KILL
CLIENT LIST foo
CONFIG GET
CONFIG SET
CONFIG SET timeout
CONFIG RESETSTAT x
CONFIG HELP x
OBJECT ENCODING
OBJECT HELP x
HELLO 2 foo
QUIT
"#;

#[test]
fn ping_echo_select_and_dispatch_errors() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.script(BASICS);
        // QUIT closed both connections.
        assert!(d.redis.closed_within(Duration::from_secs(5)));
        assert!(d.percore.closed_within(Duration::from_secs(5)));

        let mut d = Diff::new(&redis, &percore);
        // Unknown commands: arguments quoted and cut at 128 bytes in total, the name at 128.
        let long = "x".repeat(200);
        d.check(&["FOO", long.as_str()]);
        d.check(&["FOO", &"a".repeat(100), &"b".repeat(100), "c"]);
        d.check(&["FOO", &"a".repeat(127), "bb"]);
        d.check(&[long.as_str()]);
        d.check(&[long.as_str(), "a"]);
        // CR and LF in names and arguments become spaces in the error line.
        d.check(&["fo\r\no", "a\r\nb", "c\nd"]);
        d.check(&["CLIENT", "se\r\ntname"]);
        d.check(&["CLIENT", &"s".repeat(200)]);
        // Inline commands go through the same dispatch.
        for raw in [
            &b"FOO bar baz\r\n"[..],
            b"PING\r\n",
            b"ECHO\r\n",
            b"CLIENT\r\n",
        ] {
            d.redis.send(raw);
            d.percore.send(raw);
            assert_eq!(
                d.redis.read(),
                d.percore.read(),
                "inline {:?}",
                String::from_utf8_lossy(raw)
            );
        }
        // SELECT really switches the database.
        d.script("SELECT 3\nSET k3 v\nGET k3\nSELECT 0\nGET k3\nSELECT 3\nDEL k3\nSELECT 0");
    }
}

#[test]
fn hello_and_resp3_reply_types() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.script(
            "HELLO 4\nHELLO abc\nHELLO 1\nHELLO 0\nHELLO -1\nHELLO 99999999999\n\
             HELLO 99999999999999999999\nHELLO 2.0\nHELLO 2 foo\nHELLO 2 AUTH\nHELLO 2 AUTH a\n\
             HELLO 2 SETNAME\nHELLO 2 AUTH foo x\nHELLO 3 SETNAME a SETNAME\n",
        );
        // Client names are validated while the options are parsed, before later syntax errors.
        d.check(&["HELLO", "2", "SETNAME", "a b", "foo"]);
        d.check(&["HELLO", "3", "SETNAME", "a\nb"]);
        d.line("CLIENT GETNAME");
        for line in [
            "HELLO",
            "HELLO 2",
            "HELLO 2 AUTH default whatever",
            "HELLO 2 SETNAME ok1 AUTH default x",
            "HELLO 2 SETNAME a SETNAME b",
        ] {
            check_no_id(&mut d, line);
        }
        d.line("CLIENT GETNAME");
        let hello = check_no_id(&mut d, "HELLO 3");
        assert!(matches!(hello, Resp::Map(_)), "{hello:?}");
        // HELLO's id is CLIENT ID.
        let id = d.percore.cmds("CLIENT ID");
        let r = d.percore.cmds("HELLO");
        let Resp::Map(m) = r else { panic!() };
        assert!(m.contains(&(Resp::bulk("id"), id)), "{m:?}");

        // RESP3 reply types of a sample of commands.
        d.line("FLUSHALL");
        d.script(
            "GET nokey\nCLIENT GETNAME\nCLIENT SETNAME n3\nCLIENT GETNAME\nCONFIG GET maxclients\n\
             CONFIG GET nosuch\nSET f 1.5\nINCRBYFLOAT f 1\n\
             EXISTS f\nTTL f\nMGET f nokey\nCOMMAND INFO get nosuch\nCOMMAND DOCS ping\n\
             COMMAND GETKEYSANDFLAGS set k v\nCOMMAND LIST FILTERBY PATTERN ping\n\
             OBJECT ENCODING f\nOBJECT ENCODING nokey\nSELECT 1\nDBSIZE\nSELECT 0\nDEL f\n",
        );
        // CONFIG GET's order is Redis's dict order: a map either way.
        d.line_unordered("CONFIG GET timeout databases");
        for line in ["CLIENT INFO", "CLIENT LIST", "INFO server", "TIME"] {
            let args: Vec<&str> = line.split(' ').collect();
            let r = d.run(Cmp::TypeOnly, &args);
            if line != "TIME" {
                let Resp::Verbatim(b) = &r else {
                    panic!("{line}: {r:?}")
                };
                assert!(b.starts_with(b"txt:"), "{line}");
            }
        }
        check_no_id(&mut d, "HELLO 2");
        d.script("GET nokey\nCONFIG GET maxclients\nOBJECT ENCODING nokey");
        d.run(Cmp::TypeOnly, &["CLIENT", "INFO"]);
    }
}

#[test]
fn auth_without_a_password() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.script(
            "AUTH\nAUTH x\nAUTH a b c\nAUTH default anything\nAUTH otheruser x\n\
             AUTH DEFAULT x\nHELLO 2 AUTH otheruser x\nPING",
        );
    }
}

#[test]
fn auth_with_requirepass() {
    let redis = Server::redis(&["--requirepass", "secret"]);
    for shards in SHARDS {
        let percore = percore(shards, &["--requirepass", "secret"]);
        let mut d = Diff::new(&redis, &percore);
        // Before AUTH: everything but the NO_AUTH commands gets NOAUTH, arity
        // and unknown-command errors come first.
        d.script(
            "PING\nGET a\nSET a b\nFOO\nCLIENT ID\nCLIENT\nCLIENT foo\nPING a b\nGET\n\
             SELECT 1\nECHO a\nCOMMAND\nCONFIG GET port\nINFO\nCLIENT SETNAME x\nDBSIZE\n\
             HELLO\nHELLO 3\nHELLO 2 SETNAME x\nHELLO 2 AUTH default wrong\n\
             HELLO 2 AUTH foo secret\nAUTH\nAUTH a b c\nAUTH wrong\nAUTH default wrong\n\
             AUTH otheruser x\nAUTH Default secret\nAUTH default Secret\nRESET x",
        );
        d.check(&["HELLO", "2", "SETNAME", "a b"]);
        // HELLO acts on each option as it goes: the name is set before NOAUTH...
        d.line("HELLO 2 SETNAME early");
        // ...and AUTH succeeds before a later syntax error.
        d.line("HELLO 2 SETNAME n0 AUTH default secret foo");
        d.line("CLIENT GETNAME");
        d.line("HELLO 2 AUTH default wrong SETNAME n9");
        d.line("CLIENT GETNAME");
        d.line("RESET");
        d.line("HELLO 2 AUTH default wrong foo");
        d.line("HELLO 2 foo AUTH default wrong");
        d.line("HELLO 2 SETNAME early");
        d.line("AUTH secret");
        d.line("CLIENT GETNAME");
        d.line("QUIT x");
        assert!(d.redis.closed_within(Duration::from_secs(5)));
        assert!(d.percore.closed_within(Duration::from_secs(5)));

        let mut d = Diff::new(&redis, &percore);
        d.script("AUTH secret\nSET a 1\nGET a\nSELECT 2\nCLIENT SETNAME foo\nRESET");
        // RESET drops the authentication, the db, the name and RESP3.
        d.script("GET a\nCLIENT GETNAME\nPING\nAUTH default secret\nCLIENT GETNAME\nGET a");
        check_no_id(&mut d, "HELLO 3 AUTH default secret SETNAME n1");
        d.script("CLIENT GETNAME\nGET nokey\nRESET\nGET nokey\nAUTH secret\nGET nokey\nDEL a");
        // A failed AUTH does not undo an earlier success.
        d.script("AUTH wrong\nGET nokey\nHELLO 2 AUTH default wrong\nGET nokey\nAUTH default\nRESET\nRESET\nPING");
        check_no_id(&mut d, "HELLO 3 AUTH default wrong");
        check_no_id(&mut d, "HELLO 2 AUTH default secret SETNAME n2");
        d.line("CLIENT GETNAME");

        // A client is counted as it should in errorstats and commandstats.
        let mut d = Diff::new(&redis, &percore);
        d.line("GET a");
        d.line("AUTH secret");
        d.line("CONFIG RESETSTAT");
        let mut r2 = redis.raw();
        let mut p2 = percore.raw();
        for line in ["GET a", "GET a", "AUTH nope", "PING"] {
            assert_eq!(r2.cmds(line), p2.cmds(line), "{line}");
        }
        let stats = |c: &mut Raw| {
            text_of(&c.cmds("INFO everything"))
                .lines()
                .filter(|l| l.starts_with("errorstat_") || l.starts_with("cmdstat_get:"))
                .map(|l| {
                    // usec values differ by nature.
                    l.split(',')
                        .filter(|f| !f.starts_with("usec"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(stats(&mut d.redis), stats(&mut d.percore));
    }
}

/// CONFIG SET requirepass at run time: who has to authenticate, and when.
#[test]
fn requirepass_set_at_runtime() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let run = |s: &Server| -> Vec<Resp> {
            let mut admin = s.raw();
            let mut early = s.raw();
            let mut out = vec![early.cmds("PING")];
            out.push(admin.cmds("CONFIG SET requirepass pw"));
            // A client connected while there was no password stays authenticated.
            out.push(early.cmds("PING"));
            let mut late = s.raw();
            out.push(late.cmds("PING"));
            out.push(late.cmds("HELLO 3"));
            out.push(late.cmds("AUTH pw"));
            out.push(late.cmds("PING"));
            out.push(late.cmds("RESET"));
            out.push(late.cmds("PING"));
            // Without a password again, the unauthenticated client may run
            // commands, but HELLO still wants the client authenticated.
            out.push(admin.cmd(&["CONFIG", "SET", "requirepass", ""]));
            out.push(late.cmds("PING"));
            // ...and the limits on unauthenticated requests are lifted too.
            out.push(late.cmds("MGET k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 k11"));
            out.push(late.cmds("HELLO 2 SETNAME x"));
            out.push(late.cmd(&["CLIENT", "SETNAME", "y"]));
            out.push(late.cmds("CLIENT GETNAME"));
            out.push(admin.cmd(&["CONFIG", "SET", "requirepass", "pw2"]));
            out.push(late.cmds("PING"));
            out.push(early.cmds("AUTH pw"));
            out.push(early.cmds("PING"));
            out.push(admin.cmd(&["CONFIG", "SET", "requirepass", ""]));
            out.into_iter().map(no_id).collect()
        };
        let (a, b) = both(&redis, &percore, run);
        assert_eq!(a, b);
    }
}

#[test]
fn quit_and_reset() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        check_no_id(&mut d, "HELLO 3");
        d.script(
            "SELECT 5\nCLIENT SETNAME me\nCLIENT NO-EVICT on\nSET k v\nRESET\nCLIENT GETNAME\n\
             GET k\nSELECT 5\nDEL k\nRESET\nRESET",
        );
        // RESET is answered even when replies are off (it turns them back on)...
        let mut pipe = Vec::new();
        for c in [
            &["CLIENT", "REPLY", "OFF"][..],
            &["ECHO", "x"],
            &["RESET"],
            &["PING"],
        ] {
            pipe.extend(encode(c));
        }
        d.redis.send(&pipe);
        d.percore.send(&pipe);
        for _ in 0..2 {
            assert_eq!(d.redis.read(), d.percore.read());
        }
        // ...but CLIENT REPLY SKIP still skips the RESET's own reply.
        let mut pipe = Vec::new();
        for c in [
            &["CLIENT", "REPLY", "SKIP"][..],
            &["RESET"],
            &["ECHO", "after"],
        ] {
            pipe.extend(encode(c));
        }
        d.redis.send(&pipe);
        d.percore.send(&pipe);
        assert_eq!(d.redis.read(), d.percore.read());
        d.line("PING");
        let info = d.percore.cmds("CLIENT INFO");
        let line = text_of(&info);
        for (k, v) in [("db", "0"), ("name", ""), ("flags", "N"), ("resp", "2")] {
            assert_eq!(field(&line, k), v, "{line}");
        }
        // QUIT: +OK, then the connection is closed; pipelined commands after it are not run.
        let pipe = [encode(&["QUIT"]), encode(&["SET", "afterquit", "1"])].concat();
        d.redis.send(&pipe);
        d.percore.send(&pipe);
        assert_eq!(d.redis.read(), Resp::Simple(b"OK".to_vec()));
        assert_eq!(d.percore.read(), Resp::Simple(b"OK".to_vec()));
        assert!(d.redis.closed_within(Duration::from_secs(5)));
        assert!(d.percore.closed_within(Duration::from_secs(5)));
        let mut d = Diff::new(&redis, &percore);
        d.line("EXISTS afterquit");
    }
}

#[test]
fn client_id_setname_getname() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.script("CLIENT GETNAME\nCLIENT SETNAME foo\nCLIENT GETNAME\nclient setname Bar-1\nCLIENT GETNAME");
        for bad in [
            &b"a b"[..],
            b"a\nb",
            b"a\x01b",
            b"a\x7fb",
            b"a\xffb",
            b" ",
            b"\t",
        ] {
            d.check(&[&b"CLIENT"[..], b"SETNAME", bad]);
        }
        d.line("CLIENT GETNAME");
        d.check(&["CLIENT", "SETNAME", "~!@#$%^&*()_+{}|:<>?[];',./`"]);
        d.line("CLIENT GETNAME");
        d.check(&["CLIENT", "SETNAME", ""]);
        d.line("CLIENT GETNAME");
        // CLIENT ID: a positive integer, distinct per connection, increasing.
        let mut ids = Vec::new();
        for _ in 0..3 {
            let mut c = percore.raw();
            ids.push(c.cmds("CLIENT ID").int());
        }
        assert!(ids[0] > 0 && ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
        let mine = d.percore.cmds("CLIENT ID");
        let info = text_of(&d.percore.cmds("CLIENT INFO"));
        assert_eq!(field(&info, "id"), mine.int().to_string());
    }
}

#[test]
fn client_info_and_list_fields() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let (mut r, mut p) = (redis.raw(), percore.raw());
        let (mut r2, mut p2) = (redis.raw(), percore.raw());
        wait_clients(&mut r, 2);
        wait_clients(&mut p, 2);
        for c in [&mut r2, &mut p2] {
            c.cmds("CLIENT SETNAME other");
            c.cmds("SELECT 3");
            c.cmds("GET x");
            // An unknown command leaves cmd=NULL.
            c.cmds("FOO");
        }
        for c in [&mut r, &mut p] {
            c.cmds("CLIENT SETNAME me");
        }
        let ri = text_of(&r.cmds("CLIENT INFO"));
        let pi = text_of(&p.cmds("CLIENT INFO"));
        assert!(ri.ends_with('\n') && pi.ends_with('\n'));
        assert_eq!(ri.lines().count(), 1);
        assert_eq!(pi.lines().count(), 1);
        assert_eq!(names(ri.trim_end()), names(pi.trim_end()));
        // Values that do not depend on the implementation.
        for k in [
            "name", "db", "flags", "sub", "psub", "ssub", "multi", "cmd", "user", "redir", "resp",
            "obl", "oll", "events",
        ] {
            assert_eq!(field(&ri, k), field(&pi, k), "CLIENT INFO {k}:\n{ri}\n{pi}");
        }
        // age and idle tick in whole seconds, so only their range is certain.
        for k in ["age", "idle"] {
            assert!(field(&pi, k).parse::<u64>().unwrap() <= 1, "{pi}");
        }
        let rl = text_of(&r.cmds("CLIENT LIST"));
        let pl = text_of(&p.cmds("CLIENT LIST"));
        assert!(pl.ends_with('\n'));
        assert_eq!(rl.lines().count(), 2);
        assert_eq!(pl.lines().count(), 2, "{pl}");
        // Lines are in id order; with several shards two connections made one
        // after the other may be accepted (and numbered) in either order, so
        // pair the lines by name.
        let ids: Vec<u64> = pl
            .lines()
            .map(|l| field(l, "id").parse().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{pl}");
        for a in rl.lines() {
            let b = pl
                .lines()
                .find(|b| field(b, "name") == field(a, "name"))
                .unwrap();
            assert_eq!(names(a), names(b));
            for k in ["name", "db", "cmd", "flags", "resp"] {
                assert_eq!(field(a, k), field(b, k), "CLIENT LIST {k}:\n{rl}\n{pl}");
            }
        }
        // The addresses are the connection's own.
        let local = p.stream.local_addr().unwrap().to_string();
        let peer = p.stream.peer_addr().unwrap().to_string();
        let me = pl.lines().find(|l| field(l, "name") == "me").unwrap();
        assert_eq!(field(me, "addr"), local);
        assert_eq!(field(me, "laddr"), peer);

        // Filters: TYPE and ID (in argument order, repeated ids repeated, unknown ids skipped).
        let list_names = |c: &mut Raw, ids: &[String]| -> Vec<String> {
            let mut args = vec!["CLIENT".to_string(), "LIST".into(), "ID".into()];
            args.extend_from_slice(ids);
            let r = c.cmd(&args);
            if r.is_error() {
                return vec![r.text()];
            }
            text_of(&r).lines().map(|l| field(l, "name")).collect()
        };
        let ids = |c: &mut Raw, c2: &mut Raw| {
            (
                c.cmds("CLIENT ID").int().to_string(),
                c2.cmds("CLIENT ID").int().to_string(),
            )
        };
        let (rm, ro) = ids(&mut r, &mut r2);
        let (pm, po) = ids(&mut p, &mut p2);
        let cases = |m: &str, o: &str| -> Vec<Vec<String>> {
            [
                vec![o, m],
                vec![m, m, o],
                vec!["0", "-3", m, "99999999"],
                vec![o, "abc", m],
                vec!["1.5"],
            ]
            .iter()
            .map(|v| v.iter().map(|s| s.to_string()).collect())
            .collect()
        };
        for (rc, pc) in cases(&rm, &ro).iter().zip(cases(&pm, &po)) {
            assert_eq!(list_names(&mut r, rc), list_names(&mut p, &pc), "{pc:?}");
        }
        let mut d = Diff {
            redis: r,
            percore: p,
            log: Vec::new(),
        };
        for line in [
            "CLIENT LIST TYPE pubsub",
            "CLIENT LIST TYPE master",
            "CLIENT LIST TYPE replica",
            "CLIENT LIST TYPE slave",
            "CLIENT LIST TYPE foo",
            "CLIENT LIST TYPE normal x",
            "CLIENT LIST ID",
            "CLIENT LIST foo bar",
        ] {
            d.line(line);
        }
        let rn = text_of(&d.redis.cmds("CLIENT LIST TYPE normal"));
        let pn = text_of(&d.percore.cmds("CLIENT LIST TYPE Normal"));
        assert_eq!(rn.lines().count(), pn.lines().count());
        // NO-EVICT shows in the flags.
        d.script(
            "CLIENT NO-EVICT on\nCLIENT NO-EVICT maybe\nCLIENT NO-EVICT OFF\nCLIENT NO-EVICT ON",
        );
        let rf = field(&text_of(&d.redis.cmds("CLIENT INFO")), "flags");
        let pf = field(&text_of(&d.percore.cmds("CLIENT INFO")), "flags");
        assert_eq!((rf.as_str(), pf.as_str()), ("e", "e"));
        d.line("CLIENT NO-EVICT off");
        let pf = field(&text_of(&d.percore.cmds("CLIENT INFO")), "flags");
        assert_eq!(pf, "N");
    }
}

/// True when `c` still answers PING (a killed connection reads EOF or a reset instead).
fn alive(c: &mut Raw) -> bool {
    use std::io::Write;
    if c.stream.write_all(&encode(&["PING"])).is_err() {
        return false;
    }
    let _ = c.stream.set_read_timeout(Some(Duration::from_secs(5)));
    match common::read_resp(&mut c.reader) {
        Ok(r) => r == Resp::Simple(b"PONG".to_vec()),
        Err(_) => false,
    }
}

/// The outcome of a CLIENT KILL scenario on one server: the reply, and which of a, b, me survive.
fn kill_scenario(
    s: &Server,
    filter: &dyn Fn(&mut Raw, &mut Raw, &mut Raw) -> Vec<String>,
) -> (Resp, [bool; 3]) {
    let mut me = s.raw();
    let mut a = s.raw();
    let mut b = s.raw();
    a.cmds("CLIENT SETNAME a");
    b.cmds("CLIENT SETNAME b");
    wait_clients(&mut me, 3);
    let args = filter(&mut me, &mut a, &mut b);
    let reply = me.cmd(&args);
    (reply, [alive(&mut a), alive(&mut b), alive(&mut me)])
}

fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn client_kill() {
    let redis = Server::redis(&[]);
    type Filter = Box<dyn Fn(&mut Raw, &mut Raw, &mut Raw) -> Vec<String>>;
    let addr = |c: &Raw| c.stream.local_addr().unwrap().to_string();
    let laddr = |c: &Raw| c.stream.peer_addr().unwrap().to_string();
    let id = |c: &mut Raw| c.cmds("CLIENT ID").int().to_string();
    let scenarios: Vec<(&str, Filter)> = vec![
        (
            "old form, other",
            Box::new(move |_, a, _| words(&["CLIENT", "KILL", &addr(a)])),
        ),
        (
            "old form, self",
            Box::new(move |me, _, _| words(&["CLIENT", "KILL", &addr(me)])),
        ),
        (
            "old form, nobody",
            Box::new(|_, _, _| words(&["CLIENT", "KILL", "127.0.0.1:1"])),
        ),
        (
            "ID",
            Box::new(move |_, a, _| words(&["CLIENT", "KILL", "ID", &id(a)])),
        ),
        (
            "ID self",
            Box::new(move |me, _, _| words(&["CLIENT", "KILL", "ID", &id(me)])),
        ),
        (
            "ID self SKIPME no",
            Box::new(move |me, _, _| words(&["CLIENT", "KILL", "ID", &id(me), "SKIPME", "no"])),
        ),
        (
            "ADDR",
            Box::new(move |_, _, b| words(&["CLIENT", "KILL", "ADDR", &addr(b)])),
        ),
        (
            "ADDR nobody",
            Box::new(|_, _, _| words(&["CLIENT", "KILL", "ADDR", "1.2.3.4:5"])),
        ),
        (
            "LADDR",
            Box::new(move |me, _, _| words(&["CLIENT", "KILL", "LADDR", &laddr(me)])),
        ),
        (
            "LADDR SKIPME no",
            Box::new(move |me, _, _| {
                words(&["CLIENT", "KILL", "LADDR", &laddr(me), "skipme", "NO"])
            }),
        ),
        (
            "TYPE normal",
            Box::new(|_, _, _| words(&["CLIENT", "KILL", "TYPE", "normal"])),
        ),
        (
            "TYPE pubsub",
            Box::new(|_, _, _| words(&["CLIENT", "KILL", "TYPE", "pubsub"])),
        ),
        (
            "TYPE master",
            Box::new(|_, _, _| words(&["CLIENT", "KILL", "TYPE", "master"])),
        ),
        (
            "USER default",
            Box::new(|_, _, _| words(&["CLIENT", "KILL", "USER", "default"])),
        ),
        (
            "USER default SKIPME no",
            Box::new(|_, _, _| words(&["CLIENT", "KILL", "USER", "default", "SKIPME", "no"])),
        ),
        (
            "ID and ADDR agree",
            Box::new(move |_, a, _| words(&["CLIENT", "KILL", "ID", &id(a), "ADDR", &addr(a)])),
        ),
        (
            "ID and ADDR disagree",
            Box::new(move |_, a, b| words(&["CLIENT", "KILL", "ID", &id(a), "ADDR", &addr(b)])),
        ),
        (
            "repeated ID, last wins",
            Box::new(move |_, a, b| words(&["CLIENT", "KILL", "ID", &id(a), "ID", &id(b)])),
        ),
        (
            "TYPE and SKIPME yes",
            Box::new(|_, _, _| words(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])),
        ),
    ];
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        for (name, f) in &scenarios {
            let r = kill_scenario(&redis, f.as_ref());
            let p = kill_scenario(&percore, f.as_ref());
            assert_eq!(r, p, "CLIENT KILL {name} ({shards} shards)");
        }
        let mut d = Diff::new(&redis, &percore);
        d.script(
            "CLIENT KILL foo\nCLIENT KILL ID\nCLIENT KILL ID abc\nCLIENT KILL ID 0\nCLIENT KILL ID -5\n\
             CLIENT KILL ID 99999\nCLIENT KILL ID 1.5\nCLIENT KILL TYPE foo\nCLIENT KILL TYPE normal SKIPME maybe\n\
             CLIENT KILL ADDR 1.2.3.4:5\nCLIENT KILL LADDR 1.2.3.4:5\nCLIENT KILL USER nosuch\n\
             CLIENT KILL USER default SKIPME yes ID 99999\nCLIENT KILL FOO bar\nCLIENT KILL ID 1 ID\n\
             CLIENT KILL MAXAGE 10\nCLIENT KILL 1.2.3.4:5 x\nCLIENT KILL skipme no",
        );
    }
}

/// Replies that arrive for a pipeline with CLIENT REPLY ON/OFF/SKIP, on one connection.
#[test]
fn client_reply_modes() {
    let redis = Server::redis(&[]);
    let pipelines: &[&[&[&str]]] = &[
        &[
            &["CLIENT", "REPLY", "OFF"],
            &["ECHO", "a"],
            &["CLIENT", "REPLY", "SKIP"],
            &["ECHO", "b"],
            &["CLIENT", "REPLY", "ON"],
            &["ECHO", "c"],
        ],
        &[&["CLIENT", "REPLY", "SKIP"], &["ECHO", "a"], &["ECHO", "b"]],
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "SKIP"],
            &["ECHO", "a"],
            &["ECHO", "b"],
        ],
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "ON"],
            &["ECHO", "a"],
        ],
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "OFF"],
            &["ECHO", "a"],
            &["CLIENT", "REPLY", "ON"],
        ],
        &[
            &["CLIENT", "REPLY", "OFF"],
            &["CLIENT", "REPLY", "SKIP"],
            &["ECHO", "a"],
            &["CLIENT", "REPLY", "ON"],
        ],
        &[&["CLIENT", "REPLY", "SKIP"], &["FOO"], &["ECHO", "b"]],
        &[&["CLIENT", "REPLY", "SKIP"], &["GET"], &["ECHO", "b"]],
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "maybe"],
            &["ECHO", "b"],
        ],
        // Data commands on (with 4 shards) several shards, pipelined.
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["SET", "a", "1"],
            &["SET", "b", "2"],
            &["GET", "c"],
            &["GET", "a"],
        ],
        &[
            &["CLIENT", "REPLY", "OFF"],
            &["SET", "a", "1"],
            &["GET", "b"],
            &["MSET", "x", "1", "y", "2"],
            &["CLIENT", "REPLY", "ON"],
            &["MGET", "x", "y"],
        ],
        &[
            &["SET", "a", "1"],
            &["CLIENT", "REPLY", "SKIP"],
            &["GET", "a"],
            &["GET", "b"],
            &["CLIENT", "REPLY", "OFF"],
            &["GET", "c"],
            &["DEL", "a", "b", "x", "y"],
            &["CLIENT", "REPLY", "ON"],
        ],
        &[
            &["CLIENT", "REPLY", "SKIP"],
            &["SELECT", "2"],
            &["SET", "k", "v"],
            &["SELECT", "0"],
            &["GET", "k"],
        ],
    ];
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        for p in pipelines {
            let bytes: Vec<u8> = p.iter().flat_map(|c| encode(c)).collect();
            // A PING at the end proves every earlier reply has arrived.
            let bytes = [bytes, encode(&["PING"])].concat();
            let run = |s: &Server| {
                s.raw().cmds("FLUSHALL");
                let mut c = s.raw();
                c.send(&bytes);
                let mut got = Vec::new();
                loop {
                    let r = c.read();
                    if r == Resp::Simple(b"PONG".to_vec()) {
                        return got;
                    }
                    got.push(r);
                }
            };
            let (a, b) = both(&redis, &percore, run);
            assert_eq!(a, b, "pipeline {p:?} ({shards} shards)");
            // The same commands in separate reads: the mode carries across batches.
            let slow = |s: &Server| {
                s.raw().cmds("FLUSHALL");
                let mut c = s.raw();
                for cmd in p.iter() {
                    c.send_cmd(cmd);
                    std::thread::sleep(Duration::from_millis(5));
                }
                c.send_cmd(&["PING"]);
                let mut got = Vec::new();
                loop {
                    let r = c.read();
                    if r == Resp::Simple(b"PONG".to_vec()) {
                        return got;
                    }
                    got.push(r);
                }
            };
            let (a2, b2) = both(&redis, &percore, slow);
            assert_eq!(a2, a, "redis, one by one: {p:?}");
            assert_eq!(b2, b, "percore, one by one: {p:?} ({shards} shards)");
        }
        let mut d = Diff::new(&redis, &percore);
        d.line("FLUSHALL");
    }
}

/// Each line percore prints must appear in Redis's HELP, in the same order.
fn assert_help_subsequence(redis: &Resp, percore: &Resp, what: &str) {
    let r: Vec<String> = redis.items().iter().map(|l| l.text()).collect();
    let p: Vec<String> = percore.items().iter().map(|l| l.text()).collect();
    assert!(
        matches!(percore.items()[0], Resp::Simple(_)),
        "{what}: status lines"
    );
    assert_eq!(r[0], p[0], "{what}: header");
    let mut it = r.iter();
    for line in &p {
        assert!(
            it.any(|l| l == line),
            "{what}: {line:?} is not in Redis's help (in this order):\n{r:#?}"
        );
    }
}

#[test]
fn client_help() {
    let redis = Server::redis(&[]);
    let percore = percore(1, &[]);
    let mut d = Diff::new(&redis, &percore);
    let r = d.redis.cmds("CLIENT HELP");
    let p = d.percore.cmds("client help");
    assert_help_subsequence(&r, &p, "CLIENT HELP");
    // Every implemented subcommand is documented.
    for sub in [
        "GETNAME", "ID", "INFO", "KILL", "LIST", "REPLY", "SETNAME", "NO-EVICT", "HELP",
    ] {
        assert!(
            p.items().iter().any(|l| l.text().starts_with(sub)),
            "{sub} missing from CLIENT HELP"
        );
    }
    let r = d.redis.cmds("OBJECT HELP");
    let p = d.percore.cmds("OBJECT HELP");
    assert_help_subsequence(&r, &p, "OBJECT HELP");
}

/// Connects to 127.0.0.1:`port` from the source address 127.0.0.2 (not "local" for Redis 7.0).
fn connect_from_127_0_0_2(port: u16) -> TcpStream {
    use socket2::{Domain, SockAddr, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let src: std::net::SocketAddr = "127.0.0.2:0".parse().unwrap();
    s.bind(&SockAddr::from(src)).expect("bind 127.0.0.2");
    let dst: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    s.connect(&SockAddr::from(dst)).expect("connect");
    let t: TcpStream = s.into();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    t
}

/// Everything the server sends until it closes the connection.
fn read_to_close(t: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match t.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no close: {e} after {:?}", String::from_utf8_lossy(&out)),
        }
    }
}

#[test]
fn protected_mode() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let counters = |s: &Server| {
            let mut c = s.raw();
            (
                info_num(&mut c, "total_connections_received"),
                info_num(&mut c, "rejected_connections"),
            )
        };
        let (r0, p0) = (counters(&redis), counters(&percore));
        let mut r = connect_from_127_0_0_2(redis.port);
        let mut p = connect_from_127_0_0_2(percore.port);
        let (rb, pb) = (read_to_close(&mut r), read_to_close(&mut p));
        assert!(
            rb.starts_with(b"-DENIED "),
            "{}",
            String::from_utf8_lossy(&rb)
        );
        assert_eq!(String::from_utf8_lossy(&rb), String::from_utf8_lossy(&pb));
        // A denied connection counts as rejected, not received (the probes' own connections do).
        let (r1, p1) = (counters(&redis), counters(&percore));
        assert_eq!((r1.0 - r0.0, r1.1 - r0.1), (1, 1));
        assert_eq!((p1.0 - p0.0, p1.1 - p0.1), (1, 1));
        // Loopback 127.0.0.1 is served.
        let mut d = Diff::new(&redis, &percore);
        d.line("PING");
        // With a password set, protected mode lets the client in (to authenticate).
        d.line("CONFIG SET requirepass pw");
        for s in [&redis, &percore] {
            let mut t = connect_from_127_0_0_2(s.port);
            let mut c = Raw {
                reader: std::io::BufReader::new(t.try_clone().unwrap()),
                stream: t.try_clone().unwrap(),
            };
            assert_eq!(c.cmds("PING").text(), "NOAUTH Authentication required.");
            assert_eq!(c.cmds("AUTH pw"), Resp::Simple(b"OK".to_vec()));
            let _ = std::io::Write::flush(&mut t);
        }
        d.check(&["CONFIG", "SET", "requirepass", ""]);
        // CONFIG SET protected-mode no, at run time, lets them in.
        d.line("CONFIG SET protected-mode no");
        for s in [&redis, &percore] {
            let t = connect_from_127_0_0_2(s.port);
            let mut c = Raw {
                reader: std::io::BufReader::new(t.try_clone().unwrap()),
                stream: t,
            };
            assert_eq!(c.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
        }
        d.line("CONFIG SET protected-mode yes");
    }
    // --protected-mode no at start.
    let redis = Server::redis(&["--protected-mode", "no"]);
    for shards in SHARDS {
        let percore = percore(shards, &["--protected-mode", "no"]);
        for s in [&redis, &percore] {
            let t = connect_from_127_0_0_2(s.port);
            let mut c = Raw {
                reader: std::io::BufReader::new(t.try_clone().unwrap()),
                stream: t,
            };
            assert_eq!(
                c.cmds("PING"),
                Resp::Simple(b"PONG".to_vec()),
                "{:?}",
                s.kind
            );
        }
    }
}

/// INFO stats fields as numbers.
fn info_num(c: &mut Raw, name: &str) -> i64 {
    let info = text_of(&c.cmds("INFO"));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in INFO"))
        .parse()
        .unwrap()
}

#[test]
fn maxclients() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let run = |s: &Server| -> (Vec<String>, i64, i64) {
            let mut admin = s.raw();
            wait_clients(&mut admin, 1);
            let received = info_num(&mut admin, "total_connections_received");
            let rejected = info_num(&mut admin, "rejected_connections");
            assert_eq!(
                admin.cmds("CONFIG SET maxclients 3"),
                Resp::Simple(b"OK".to_vec())
            );
            let mut out = Vec::new();
            let mut open = Vec::new();
            for _ in 0..4 {
                let mut c = s.raw();
                let r = c.cmds("PING");
                out.push(match r {
                    Resp::Error(_) => {
                        assert!(
                            closed(&mut c, Duration::from_secs(5)),
                            "closed after the error"
                        );
                        r.text()
                    }
                    other => other.text(),
                });
                open.push(c);
            }
            // Closing one makes room again.
            open.remove(0);
            wait_clients(&mut admin, 2);
            let mut c = s.raw();
            out.push(c.cmds("PING").text());
            assert_eq!(
                admin.cmds("CONFIG SET maxclients 10000"),
                Resp::Simple(b"OK".to_vec())
            );
            drop(open);
            drop(c);
            wait_clients(&mut admin, 1);
            (
                out,
                info_num(&mut admin, "total_connections_received") - received,
                info_num(&mut admin, "rejected_connections") - rejected,
            )
        };
        let (a, b) = both(&redis, &percore, run);
        assert_eq!(
            a.0,
            [
                "PONG",
                "PONG",
                "ERR max number of clients reached",
                "ERR max number of clients reached",
                "PONG"
            ]
        );
        assert_eq!(a, b, "({shards} shards)");
    }
}

#[test]
fn idle_timeout() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let run = |s: &Server| -> Duration {
            let mut admin = s.raw();
            admin.cmds("CONFIG SET timeout 1");
            let mut idle = s.raw();
            assert_eq!(idle.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
            let t0 = Instant::now();
            // An active client is not closed.
            let mut busy = s.raw();
            while t0.elapsed() < Duration::from_millis(1500) {
                assert_eq!(busy.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
                std::thread::sleep(Duration::from_millis(200));
            }
            assert!(
                closed(&mut idle, Duration::from_secs(5)),
                "{:?}: idle client not closed",
                s.kind
            );
            let took = t0.elapsed();
            assert_eq!(busy.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
            let mut admin = s.raw();
            admin.cmds("CONFIG SET timeout 0");
            took
        };
        let (a, b) = both(&redis, &percore, run);
        for t in [a, b] {
            assert!(
                t >= Duration::from_millis(1000) && t < Duration::from_millis(3500),
                "{a:?} {b:?}"
            );
        }
    }
}
