//! The SERVER family against redis-server 7.0.15: CONFIG GET/SET/RESETSTAT/HELP
//! for the parameters percore has, COMMAND (COUNT, INFO, DOCS, GETKEYS, LIST,
//! HELP) for the commands percore implements, TIME, DEBUG (enabled and not),
//! SHUTDOWN, and INFO (sections, field names and the numbers that can be
//! checked). Each test runs percore with 1 and with 4 shards.

mod common;
use common::{Diff, Raw, Resp, Server};

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const SHARDS: [usize; 2] = [1, 4];

/// percore with the settings the harness gives redis-server, so CONFIG GET values agree.
fn percore(shards: usize, extra: &[&str]) -> Server {
    let mut args = vec!["--bind", "127.0.0.1", "--save", ""];
    args.extend_from_slice(extra);
    Server::percore(shards, &args)
}

/// Parameters only percore has.
const PERCORE_ONLY_PARAMS: &[&str] = &[
    "shards",
    "pin-cores",
    "spin-before-park-us",
    "preempt-timer-us",
    "snapshot-shares",
];
/// Parameters whose values differ by nature between the two servers (own port, own scratch dir).
const OWN_VALUE_PARAMS: &[&str] = &["port", "dir"];

fn ok() -> Resp {
    Resp::Simple(b"OK".to_vec())
}

/// The reply as text: bulk, simple or verbatim (without RESP3's `txt:` prefix).
fn text_of(r: &Resp) -> String {
    let t = r.text();
    match r {
        Resp::Verbatim(_) => t[4..].to_string(),
        _ => t,
    }
}

/// A CONFIG GET reply (RESP2 pairs or RESP3 map) as name -> value.
fn config_map(r: &Resp) -> BTreeMap<String, String> {
    match r {
        Resp::Map(v) => v.iter().map(|(k, v)| (k.text(), v.text())).collect(),
        Resp::Array(Some(v)) => {
            assert!(v.len() % 2 == 0);
            v.chunks(2).map(|p| (p[0].text(), p[1].text())).collect()
        }
        other => panic!("not a CONFIG GET reply: {other:?}"),
    }
}

#[test]
fn config_get() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        let all = config_map(&d.percore.cmds("CONFIG GET *"));
        let redis_all = config_map(&d.redis.cmds("CONFIG GET *"));
        assert!(all.len() > 15, "{all:?}");
        for (name, value) in &all {
            if PERCORE_ONLY_PARAMS.contains(&name.as_str()) {
                // Redis does not know them: an empty reply.
                assert_eq!(config_map(&d.redis.cmd(&["CONFIG", "GET", name])).len(), 0);
                continue;
            }
            let theirs = redis_all
                .get(name)
                .unwrap_or_else(|| panic!("Redis has no parameter {name}"));
            if OWN_VALUE_PARAMS.contains(&name.as_str()) {
                continue;
            }
            assert_eq!(value, theirs, "CONFIG GET * value of {name}");
            // The exact name, in several spellings: Redis echoes the spelling asked for.
            d.check(&["CONFIG", "GET", name]);
            d.check(&["CONFIG", "GET", &name.to_uppercase()]);
        }
        d.script("CONFIG GET Timeout\nCONFIG GET nosuch\nCONFIG GET timeout TIMEOUT\nCONFIG GET maxclients nosuch");
        // Several names or patterns: Redis answers in its dict's order, so compare as maps.
        for line in [
            "CONFIG GET timeout maxclients",
            "CONFIG GET maxclients timeout hz",
            "CONFIG GET tcp-* loglevel",
            "CONFIG GET maxclient? hz",
            "CONFIG GET *-max-bulk-len client-query-*",
            "CONFIG GET requirepas[s] protected-mode databas*",
            "CONFIG GET h? timeout *",
            "CONFIG GET timeout tim*",
            "CONFIG GET tim* TIMEOUT",
            "CONFIG GET logfile daemonize pidfile save dbfilename bind enable-debug-command",
            "CONFIG GET nosuch* nosuch",
        ] {
            let args: Vec<&str> = line.split(' ').collect();
            let r = config_map(&d.redis.cmd(&args));
            let p = config_map(&d.percore.cmd(&args));
            // A glob may match parameters percore does not have; all percore returns must be Redis's.
            for (k, v) in &p {
                if OWN_VALUE_PARAMS.contains(&k.as_str())
                    || PERCORE_ONLY_PARAMS.contains(&k.as_str())
                {
                    continue;
                }
                assert_eq!(r.get(k), Some(v), "{line}: {k}");
            }
            // And every parameter percore has that Redis returned.
            let lower = |m: &BTreeMap<String, String>| -> BTreeSet<String> {
                m.keys().map(|k| k.to_lowercase()).collect()
            };
            let want: BTreeSet<String> = lower(&r)
                .into_iter()
                .filter(|k| all.contains_key(k))
                .collect();
            let got: BTreeSet<String> = lower(&p)
                .into_iter()
                .filter(|k| !PERCORE_ONLY_PARAMS.contains(&k.as_str()))
                .collect();
            assert_eq!(want, got, "{line}");
        }
        // RESP3: a map.
        d.percore.cmds("HELLO 3");
        d.redis.cmds("HELLO 3");
        d.line("CONFIG GET maxclients");
        d.line("CONFIG GET nosuch");
        d.line("CONFIG GET TimeOut");
    }
}

#[test]
fn config_set() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.script(
            r#"
CONFIG SET
CONFIG SET timeout
CONFIG SET timeout 1 maxclients
CONFIG SET timeout 1 maxclients 5 hz
CONFIG SET nosuch 1
CONFIG SET timeout 5
CONFIG GET timeout
CONFIG SET TIMEOUT 6
CONFIG GET timeout
CONFIG SET timeout 0
CONFIG SET timeout abc
CONFIG SET timeout -1
CONFIG SET timeout 2147483648
CONFIG SET timeout 1.5
CONFIG SET timeout 1k
CONFIG SET timeout 1 timeout 2
CONFIG SET timeout 1 TIMEOUT 2
CONFIG SET timeout 3 hz 20
CONFIG GET timeout
CONFIG GET hz
CONFIG SET timeout 4 hz abc
CONFIG GET timeout
CONFIG SET timeout 4 nosuch 1
CONFIG SET nosuch 1 databases 3
CONFIG SET databases 3 nosuch 1
CONFIG SET timeout 0 hz 10
CONFIG SET maxclients 0
CONFIG SET maxclients -1
CONFIG SET maxclients 4294967296
CONFIG SET maxclients abc
CONFIG SET maxclients 5000
CONFIG GET maxclients
CONFIG SET maxclients 10000
CONFIG SET loglevel foo
CONFIG SET loglevel nothing
CONFIG SET loglevel WARNING
CONFIG GET loglevel
CONFIG SET loglevel notice
CONFIG SET protected-mode maybe
CONFIG SET protected-mode NO
CONFIG GET protected-mode
CONFIG SET protected-mode yes
CONFIG SET proto-max-bulk-len 1
CONFIG SET proto-max-bulk-len 1k
CONFIG SET proto-max-bulk-len abc
CONFIG SET proto-max-bulk-len -1
CONFIG SET proto-max-bulk-len 2mb
CONFIG GET proto-max-bulk-len
CONFIG SET proto-max-bulk-len 512mb
CONFIG GET proto-max-bulk-len
CONFIG SET client-query-buffer-limit 100
CONFIG SET client-query-buffer-limit 2gb
CONFIG GET client-query-buffer-limit
CONFIG SET client-query-buffer-limit 1gb
CONFIG SET tcp-keepalive 100
CONFIG GET tcp-keepalive
CONFIG SET tcp-keepalive -1
CONFIG SET tcp-keepalive 300
CONFIG SET hz 1000
CONFIG GET hz
CONFIG SET hz 0
CONFIG GET hz
CONFIG SET hz -1
CONFIG SET hz 10
CONFIG SET save abc
CONFIG SET save 100
CONFIG SET save 100 1 200
CONFIG SET requirepass abc
CONFIG GET requirepass
CONFIG SET requirepass
CONFIG SET tcp-backlog 5
CONFIG SET databases 3
CONFIG SET daemonize yes
CONFIG SET logfile x
CONFIG SET pidfile x
CONFIG SET enable-debug-command yes
CONFIG SET dir /tmp
CONFIG SET dbfilename x.rdb
CONFIG SET Databases 3
CONFIG SET timeout 5 databases 3
CONFIG SET databases 3 timeout 5
CONFIG GET timeout
"#,
        );
        // Values with spaces or empty values need real argument boundaries.
        for args in [
            &["CONFIG", "SET", "save", "100 1 200 2"][..],
            &["CONFIG", "GET", "save"],
            &["CONFIG", "SET", "save", ""],
            &["CONFIG", "GET", "save"],
            &["CONFIG", "SET", "save", "100  1"],
            &["CONFIG", "SET", "save", " 100 1"],
            &["CONFIG", "SET", "requirepass", ""],
            &["CONFIG", "GET", "requirepass"],
            &["CONFIG", "SET", "timeout", ""],
            &["CONFIG", "SET", "timeout", " 5"],
            &["CONFIG", "SET", "protected-mode", ""],
            &["CONFIG", "SET", "loglevel", ""],
        ] {
            d.check(args);
        }
        // Settings take effect on every core: hz, as INFO reports it.
        d.line("CONFIG SET hz 50");
        let info = text_of(&d.percore.cmds("INFO server"));
        assert!(info.contains("\r\nhz:50\r\n"), "{info}");
        d.line("CONFIG SET hz 10");
        // RESP3 replies.
        d.percore.cmds("HELLO 3");
        d.redis.cmds("HELLO 3");
        d.script("CONFIG SET timeout 0\nCONFIG SET timeout x\nCONFIG SET nosuch 1");
    }
}

/// A command's statistics as INFO prints them, without the time fields.
fn cmdstats(c: &mut Raw) -> BTreeMap<String, String> {
    text_of(&c.cmds("INFO commandstats"))
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .map(|l| {
            let (name, rest) = l.split_once(':').unwrap();
            let rest: Vec<&str> = rest.split(',').filter(|f| !f.starts_with("usec")).collect();
            (name.to_string(), rest.join(","))
        })
        .collect()
}

fn info_section(c: &mut Raw, section: &str, prefix: &str) -> Vec<String> {
    text_of(&c.cmd(&["INFO", section]))
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn config_resetstat_and_help() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.script(
            "SET a 1\nGET a\nGET\nFOO\nINCR a\nINCR a x\nCONFIG RESETSTAT x\nCONFIG RESETSTAT",
        );
        assert_eq!(cmdstats(&mut d.redis), cmdstats(&mut d.percore));
        assert_eq!(
            info_section(&mut d.redis, "errorstats", "errorstat"),
            info_section(&mut d.percore, "errorstats", "errorstat")
        );
        let stat = |c: &mut Raw, name: &str| -> i64 {
            text_of(&c.cmds("INFO stats"))
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .unwrap()
                .parse()
                .unwrap()
        };
        for name in [
            "total_commands_processed",
            "total_error_replies",
            "keyspace_hits",
            "keyspace_misses",
        ] {
            assert_eq!(
                stat(&mut d.redis, name),
                stat(&mut d.percore, name),
                "{name}"
            );
        }
        let r = d.redis.cmds("CONFIG HELP");
        let p = d.percore.cmds("CONFIG HELP");
        assert_help_subsequence(&r, &p, "CONFIG HELP");
        for sub in ["GET", "SET", "RESETSTAT", "HELP"] {
            assert!(p.items().iter().any(|l| l.text().starts_with(sub)), "{sub}");
        }
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

/// A COMMAND INFO entry with its subcommands sorted, and only those named in `shown` kept.
///
/// Redis lists subcommands in its dict's order, which is seeded per process.
fn subcommands_normalized(entry: &Resp, shown: &[Resp]) -> Resp {
    let Resp::Array(Some(v)) = entry else {
        return entry.clone();
    };
    let mut v = v.clone();
    if let Some(Resp::Array(Some(subs))) = v.get(9).cloned() {
        let mut kept: Vec<Resp> = subs
            .into_iter()
            .filter(|s| shown.contains(&s.items()[0]))
            .collect();
        kept.sort_by_key(|s| s.items()[0].text());
        v[9] = Resp::Array(Some(kept));
    }
    Resp::Array(Some(v))
}

/// The names of the subcommands in a COMMAND INFO entry.
fn subcommand_names(entry: &Resp) -> Vec<Resp> {
    match entry.items().get(9) {
        Some(Resp::Array(Some(subs))) => subs.iter().map(|s| s.items()[0].clone()).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn command_introspection() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        let list: Vec<String> = d
            .percore
            .cmds("COMMAND LIST")
            .items()
            .iter()
            .map(|r| r.text())
            .collect();
        let redis_list: Vec<String> = d
            .redis
            .cmds("COMMAND LIST")
            .items()
            .iter()
            .map(|r| r.text())
            .collect();
        for name in &list {
            assert!(
                redis_list.contains(name),
                "COMMAND LIST: {name} is not a Redis command"
            );
        }
        let top: Vec<&String> = list.iter().filter(|n| !n.contains('|')).collect();
        assert_eq!(d.percore.cmds("COMMAND COUNT").int(), top.len() as i64);
        let everything = d.percore.cmds("COMMAND");
        assert_eq!(everything.items().len(), top.len());
        assert_eq!(d.percore.cmds("COMMAND INFO"), everything);
        for name in &list {
            let r = d.redis.cmd(&["COMMAND", "INFO", name]);
            let p = d.percore.cmd(&["COMMAND", "INFO", name]);
            let r1 = &r.items()[0];
            let p1 = &p.items()[0];
            let shown = subcommand_names(p1);
            assert_eq!(
                subcommands_normalized(r1, &shown),
                subcommands_normalized(p1, &shown),
                "COMMAND INFO {name}"
            );
            if !name.contains('|') && p1.items().get(9).is_some_and(|s| s.items().is_empty()) {
                // Not a container: DOCS too, exactly.
                d.check(&["COMMAND", "DOCS", name]);
            }
            if name.contains('|') {
                d.check(&["COMMAND", "DOCS", name]);
                d.check(&["COMMAND", "INFO", &name.to_uppercase()]);
            }
        }
        d.script(
            "COMMAND INFO get set nosuch\nCOMMAND INFO GET\nCOMMAND DOCS nosuch\nCOMMAND DOCS get get\n\
             COMMAND INFO config|get\nCOMMAND INFO config|nosuch\nCOMMAND INFO get|x\n\
             COMMAND GETKEYS\nCOMMAND GETKEYS get\nCOMMAND GETKEYS get k\nCOMMAND GETKEYS set k v ex 10\n\
             COMMAND GETKEYS mset a 1 b 2\nCOMMAND GETKEYS mset a 1 b\nCOMMAND GETKEYS del a b c\n\
             COMMAND GETKEYS ping\nCOMMAND GETKEYS nosuch k\nCOMMAND GETKEYS object encoding k\n\
             COMMAND GETKEYS lcs a b\nCOMMAND GETKEYS rename a b\nCOMMAND GETKEYS copy a b db 1\n\
             COMMAND GETKEYSANDFLAGS set k v\nCOMMAND GETKEYSANDFLAGS getdel k\nCOMMAND GETKEYSANDFLAGS mget a b\n\
             COMMAND LIST FILTERBY PATTERN get*x\nCOMMAND LIST FILTERBY\nCOMMAND LIST foo\nCOMMAND LIST FILTERBY MODULE x\n\
             COMMAND LIST FILTERBY ACLCAT nosuch\nCOMMAND LIST FILTERBY foo bar\nCOMMAND COUNT x\nCOMMAND HELP\n\
             COMMAND HELP x\nCOMMAND foo\nCOMMAND GETKEYSANDFLAGS",
        );
        // Filtered lists: percore's are Redis's restricted to what percore implements.
        for filter in [
            "FILTERBY PATTERN *get*",
            "FILTERBY PATTERN c*",
            "FILTERBY ACLCAT string",
            "FILTERBY ACLCAT connection",
            "FILTERBY ACLCAT keyspace",
        ] {
            let args: Vec<&str> = ["COMMAND", "LIST"]
                .into_iter()
                .chain(filter.split(' '))
                .collect();
            let mut r: Vec<String> = d
                .redis
                .cmd(&args)
                .items()
                .iter()
                .map(|r| r.text())
                .filter(|n| list.contains(n))
                .collect();
            let mut p: Vec<String> = d
                .percore
                .cmd(&args)
                .items()
                .iter()
                .map(|r| r.text())
                .collect();
            r.sort();
            p.sort();
            assert_eq!(r, p, "COMMAND LIST {filter}");
        }
        // COMMAND's own subcommands are counted one by one in commandstats.
        d.line("CONFIG RESETSTAT");
        for line in [
            "COMMAND COUNT",
            "COMMAND INFO get",
            "COMMAND DOCS get",
            "COMMAND GETKEYS get k",
            "COMMAND LIST FILTERBY PATTERN x",
            "COMMAND HELP",
            "COMMAND nosuch",
            "COMMAND GETKEYS",
            "COMMAND",
            "command count",
        ] {
            // Replies compared above; only the counting matters here.
            d.redis.cmds(line);
            d.percore.cmds(line);
        }
        let r = cmdstats(&mut d.redis);
        let p = cmdstats(&mut d.percore);
        assert_eq!(r, p);
        // RESP3.
        d.redis.cmds("HELLO 3");
        d.percore.cmds("HELLO 3");
        d.script("COMMAND INFO get nosuch\nCOMMAND DOCS set\nCOMMAND GETKEYSANDFLAGS set k v\nCOMMAND COUNT x");
    }
}

#[test]
fn time_shape() {
    let redis = Server::redis(&[]);
    let percore = percore(4, &[]);
    let mut d = Diff::new(&redis, &percore);
    d.line("TIME x");
    let parse = |r: &Resp| -> (i64, i64) {
        let v = r.items();
        assert_eq!(v.len(), 2);
        let s: i64 = v[0].text().parse().unwrap();
        let us: i64 = v[1].text().parse().unwrap();
        assert!(matches!(v[0], Resp::Bulk(_)) && matches!(v[1], Resp::Bulk(_)));
        assert!((0..1_000_000).contains(&us), "{us}");
        (s, us)
    };
    let (rs, _) = parse(&d.redis.cmds("TIME"));
    let (ps, _) = parse(&d.percore.cmds("TIME"));
    assert!((rs - ps).abs() <= 2);
    // Increasing.
    let a = parse(&d.percore.cmds("TIME"));
    std::thread::sleep(Duration::from_millis(20));
    let b = parse(&d.percore.cmds("TIME"));
    assert!(
        b.0 * 1_000_000 + b.1 - (a.0 * 1_000_000 + a.1) >= 20_000,
        "{a:?} {b:?}"
    );
    d.percore.cmds("HELLO 3");
    d.redis.cmds("HELLO 3");
    let r = d.redis.cmds("TIME");
    let p = d.percore.cmds("TIME");
    assert_eq!(
        std::mem::discriminant(&r.items()[0]),
        std::mem::discriminant(&p.items()[0])
    );
}

#[test]
fn debug() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.script(
            "DEBUG\nDEBUG SLEEP 0\nDEBUG sleep 0.01\nDEBUG SLEEP\nDEBUG SLEEP abc\nDEBUG foo\nDEBUG foo bar\n\
             DEBUG sleep 0 1\nDEBUG SET-ACTIVE-EXPIRE 1\nDEBUG SET-ACTIVE-EXPIRE\nDEBUG HELP x",
        );
        let r = d.redis.cmds("DEBUG HELP");
        let p = d.percore.cmds("DEBUG HELP");
        assert_help_subsequence(&r, &p, "DEBUG HELP");
        // DEBUG SLEEP stops the server, all cores: a client of another core waits too.
        let mut other = percore.raw();
        let t = Instant::now();
        d.percore.send_cmd(&["DEBUG", "SLEEP", "0.5"]);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(other.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
        assert!(
            t.elapsed() >= Duration::from_millis(450),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(d.percore.read(), ok());
    }
    // Disabled (the default).
    let redis = Server::redis(&["--enable-debug-command", "no"]);
    for shards in SHARDS {
        let percore = percore(shards, &["--enable-debug-command", "no"]);
        let mut d = Diff::new(&redis, &percore);
        d.script("DEBUG SLEEP 0\nDEBUG foo\nDEBUG\nDEBUG HELP\nCONFIG GET enable-debug-command");
        // Refused before authentication is even checked.
        d.line("CONFIG SET requirepass pw");
        let mut d2 = Diff::new(&redis, &percore);
        d2.script(
            "DEBUG SLEEP 0\nDEBUG\nPING\nAUTH pw\nDEBUG SLEEP 0\nCONFIG SET requirepass \"\"",
        );
        d.check(&["CONFIG", "SET", "requirepass", ""]);
        d.line("CONFIG RESETSTAT");
        d.script("DEBUG SLEEP 0\nDEBUG foo\nDEBUG\nDEBUG HELP");
        assert_eq!(cmdstats(&mut d.redis), cmdstats(&mut d.percore));
        assert_eq!(
            info_section(&mut d.redis, "errorstats", "errorstat"),
            info_section(&mut d.percore, "errorstats", "errorstat")
        );
    }
}

/// Waits for the process to exit.
fn exits(s: &mut Server) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !s.alive() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn shutdown() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.script(
            "SHUTDOWN ABORT\nSHUTDOWN ABORT NOW\nSHUTDOWN foo\nSHUTDOWN NOSAVE SAVE\nSHUTDOWN NOW ABORT\n\
             SHUTDOWN ABORT ABORT\nSHUTDOWN NOSAVE foo\nPING",
        );
        assert_eq!(d.percore.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
    }
    // A real shutdown: no reply, the connection closes, the process exits. Every form.
    for args in [
        &["SHUTDOWN"][..],
        &["SHUTDOWN", "NOSAVE"],
        &["SHUTDOWN", "SAVE"],
        &["shutdown", "nosave", "now", "force"],
    ] {
        let mut servers = [Server::redis(&[]), percore(1, &[]), percore(4, &[])];
        for s in servers.iter_mut() {
            let mut c = s.raw();
            let mut other = s.raw();
            assert_eq!(other.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
            c.send_cmd(args);
            assert!(c.try_read().is_none(), "{:?} {args:?}: no reply", s.kind);
            assert!(other.closed_within(Duration::from_secs(10)) || other.try_read().is_none());
            assert!(exits(s), "{:?} {args:?}: still running", s.kind);
        }
    }
}

/// INFO text as sections: (name, [(field, value)]).
fn sections(info: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in info.split("\r\n") {
        if let Some(name) = line.strip_prefix("# ") {
            out.push((name.to_string(), Vec::new()));
        } else if !line.is_empty() {
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad INFO line {line:?}"));
            out.last_mut()
                .expect("a field before any section")
                .1
                .push((k.to_string(), v.to_string()));
        }
    }
    out
}

/// Fields percore adds to INFO (its own identity and layout).
const PERCORE_ONLY_FIELDS: &[&str] = &["percore_version", "shards"];

fn info_text(c: &mut Raw, args: &[&str]) -> String {
    let mut a = vec!["INFO"];
    a.extend_from_slice(args);
    text_of(&c.cmd(&a))
}

fn info_field(c: &mut Raw, section: &str, name: &str) -> String {
    info_text(c, &[section])
        .split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in INFO {section}"))
}

fn info_num(c: &mut Raw, section: &str, name: &str) -> i64 {
    info_field(c, section, name).parse().unwrap()
}

#[test]
fn info_sections_and_fields() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        // Some commands so that every section has content.
        d.script("SET a 1\nGET a\nGET nokey\nFOO\nINCR a x\nEXPIRE a 100");
        let r = sections(&info_text(&mut d.redis, &["everything"]));
        let p = sections(&info_text(&mut d.percore, &["everything"]));
        let rnames: Vec<&String> = r.iter().map(|s| &s.0).collect();
        let mut last = 0;
        let mut missing: Vec<String> = Vec::new();
        for (name, fields) in &p {
            let i = rnames
                .iter()
                .position(|n| *n == name)
                .unwrap_or_else(|| panic!("section {name} is not in Redis's INFO"));
            assert!(i >= last, "section {name} out of Redis's order");
            last = i;
            let theirs: Vec<&String> = r[i].1.iter().map(|f| &f.0).collect();
            let dynamic = matches!(name.as_str(), "Commandstats" | "Errorstats" | "Keyspace");
            let mut pos = 0;
            for (k, _) in fields {
                if PERCORE_ONLY_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                let j = theirs
                    .iter()
                    .position(|t| *t == k)
                    .unwrap_or_else(|| panic!("INFO {name}: field {k} is not Redis's"));
                if !dynamic {
                    assert!(j >= pos, "INFO {name}: {k} out of Redis's order");
                    pos = j;
                }
            }
            if !dynamic {
                missing.extend(
                    theirs
                        .iter()
                        .filter(|t| !fields.iter().any(|f| &f.0 == **t))
                        .map(|t| format!("{name}.{t}")),
                );
            }
        }
        eprintln!(
            "INFO fields percore does not print ({}): {}",
            missing.len(),
            missing.join(" ")
        );
        // Sections chosen by name, any case; unknown names give nothing.
        for args in [
            &["server"][..],
            &["SERVER", "clients"],
            &["Keyspace"],
            &["foo"],
            &["stats", "foo", "cpu"],
            &[],
            &["default"],
            &["all"],
            &["everything"],
            &["commandstats"],
            &["errorstats"],
        ] {
            let names = |s: &str| -> Vec<String> { sections(s).into_iter().map(|s| s.0).collect() };
            let pn = names(&info_text(&mut d.percore, args));
            let rn: Vec<String> = names(&info_text(&mut d.redis, args))
                .into_iter()
                .filter(|n| p.iter().any(|s| &s.0 == n))
                .collect();
            assert_eq!(rn, pn, "INFO {args:?}");
        }
        let empty = d.percore.cmds("INFO foo");
        assert_eq!(empty, d.redis.cmds("INFO foo"));
        // RESP3: verbatim text.
        d.percore.cmds("HELLO 3");
        assert!(matches!(d.percore.cmds("INFO"), Resp::Verbatim(_)));
    }
}

#[test]
fn info_numbers() {
    let redis = Server::redis(&[]);
    for shards in SHARDS {
        let percore = percore(shards, &[]);
        let mut d = Diff::new(&redis, &percore);
        d.line("CONFIG RESETSTAT");
        d.line("FLUSHALL");
        // connected_clients counts connections on every core.
        let base = info_num(&mut d.percore, "clients", "connected_clients");
        let extra: Vec<Raw> = (0..5).map(|_| percore.raw()).collect();
        for _ in 0..100 {
            if info_num(&mut d.percore, "clients", "connected_clients") == base + 5 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            info_num(&mut d.percore, "clients", "connected_clients"),
            base + 5
        );
        drop(extra);
        // total_commands_processed: the INFO itself counts once it has run.
        for c in [&mut d.redis, &mut d.percore] {
            let a = info_num(c, "stats", "total_commands_processed");
            c.cmds("PING");
            c.cmds("SET x 1");
            c.cmds("GET");
            let b = info_num(c, "stats", "total_commands_processed");
            assert_eq!(b - a, 3, "rejected commands are not processed");
        }
        // Keyspace: keys and expires per db, over all shards.
        let mut script = String::new();
        for i in 0..50 {
            script.push_str(&format!("SET key{i} v\n"));
            if i % 3 == 0 {
                script.push_str(&format!("EXPIRE key{i} 1000\n"));
            }
        }
        script.push_str("SELECT 3\nSET k3 v\nSET k4 v EX 100\nSELECT 0\nDEL key1\n");
        d.script(&script);
        let keyspace = |c: &mut Raw| -> Vec<String> {
            info_section(c, "keyspace", "db")
                .into_iter()
                .map(|l| l.split(",avg_ttl").next().unwrap().to_string())
                .collect()
        };
        let rk = keyspace(&mut d.redis);
        // 49 keys left of the 50, plus `x` from above.
        assert_eq!(rk, ["db0:keys=50,expires=17", "db3:keys=2,expires=1"]);
        assert_eq!(rk, keyspace(&mut d.percore));
        d.line("FLUSHALL");
        assert_eq!(keyspace(&mut d.redis), keyspace(&mut d.percore));
        // Commandstats and errorstats after a mix of successes, failures and rejections.
        d.line("CONFIG RESETSTAT");
        d.script(
            "SET s v\nGET s\nGET s\nINCR s\nINCR\nGET\nFOO bar\nSET s v XX NX\nCLIENT ID x\n\
             CLIENT nosuch\nCLIENT SETNAME n\nOBJECT nosuch s\nOBJECT\nHELLO 4\n\
             AUTH x\nCONFIG GET nosuch\nCONFIG SET nosuch 1\nSELECT 99\nPING a b\nECHO hi\nDEL s",
        );
        assert_eq!(cmdstats(&mut d.redis), cmdstats(&mut d.percore));
        let r = info_section(&mut d.redis, "errorstats", "errorstat");
        assert!(r.len() >= 2, "{r:?}");
        assert_eq!(r, info_section(&mut d.percore, "errorstats", "errorstat"));
        for name in [
            "total_error_replies",
            "keyspace_hits",
            "keyspace_misses",
            "unexpected_error_replies",
        ] {
            assert_eq!(
                info_num(&mut d.redis, "stats", name),
                info_num(&mut d.percore, "stats", name),
                "{name}"
            );
        }
        // Plausible values elsewhere.
        assert_eq!(
            info_field(&mut d.percore, "server", "redis_version"),
            "7.0.15"
        );
        assert_eq!(
            info_num(&mut d.percore, "server", "tcp_port"),
            percore.port as i64
        );
        assert_eq!(info_field(&mut d.percore, "replication", "role"), "master");
        assert!(info_num(&mut d.percore, "memory", "used_memory") > 0);
        assert_eq!(info_num(&mut d.percore, "clients", "maxclients"), 10000);
        let up = info_num(&mut d.percore, "server", "uptime_in_seconds");
        assert!((0..600).contains(&up), "{up}");
    }
}
