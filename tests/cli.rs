//! The command line and the process: flags, config files with quoting and
//! includes, clear errors with exit code 1, refusing a port that is already in
//! use, clean exits on SIGTERM/SIGINT/SHUTDOWN, more shards than CPUs and
//! unpinned executors.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Kind, Raw, Resp, Server};

fn percore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_percore"))
}

/// Runs percore to completion (it must exit within 10 s) in `dir`.
fn run_to_exit(args: &[&str], dir: &Path) -> Output {
    let mut child = percore()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start percore");
    let status = wait_exit(&mut child, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("percore {args:?} did not exit within 10 s"));
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Waits for the process to exit; None (and the process killed) after `wait`.
fn wait_exit(child: &mut Child, wait: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("percore-cli-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts percore with exactly `args` (no defaults added) and waits until `port` answers.
fn start(args: &[&str], port: u16, dir: &Path) -> Server {
    let child = percore()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("percore.log")).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("percore.err")).unwrap(),
        ))
        .spawn()
        .expect("start percore");
    let mut server = Server {
        child,
        port,
        dir: dir.to_path_buf(),
        kind: Kind::Percore,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(server.alive(), "percore {args:?} exited:\n{}", server.log());
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            drop(s);
            break;
        }
        assert!(Instant::now() < deadline, "percore {args:?} never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The non-empty lines of a process's stderr.
fn error_lines(out: &Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

fn ok() -> Resp {
    Resp::Simple(b"OK".to_vec())
}

/// Stores keys that land on every shard, then reads them all back, with
/// single-key, multi-key and whole-keyspace commands.
fn exercise_keyspace(raw: &mut Raw, shards: usize) {
    let n = 1000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut mset = vec!["MSET".to_string()];
        for i in chunk {
            mset.push(format!("spread:{i}"));
            mset.push(format!("v{i}"));
        }
        assert_eq!(raw.cmd(&mset), ok());
    }
    for i in (0..n).step_by(37) {
        assert_eq!(
            raw.cmd(&["GET", &format!("spread:{i}")]),
            Resp::bulk(&format!("v{i}"))
        );
        assert_eq!(raw.cmd(&["INCR", &format!("count:{i}")]), Resp::Int(1));
    }
    let mut mget = vec!["MGET".to_string()];
    mget.extend((0..n).map(|i| format!("spread:{i}")));
    let got = raw.cmd(&mget);
    let want: Vec<Resp> = (0..n).map(|i| Resp::bulk(&format!("v{i}"))).collect();
    assert_eq!(
        got,
        Resp::Array(Some(want)),
        "{shards} shards: MGET of every key"
    );
    let counters = (0..n).step_by(37).count() as i64;
    assert_eq!(
        raw.cmds("DBSIZE"),
        Resp::Int(n as i64 + counters),
        "{shards} shards"
    );
    let keys = raw.cmds("KEYS spread:*");
    assert_eq!(keys.items().len(), n, "{shards} shards: KEYS");
    // A full SCAN sees every key exactly once.
    let mut cursor = "0".to_string();
    let mut seen = std::collections::HashSet::new();
    loop {
        let r = raw.cmd(&["SCAN", &cursor, "MATCH", "spread:*", "COUNT", "100"]);
        let items = r.items();
        cursor = items[0].text();
        for k in items[1].items() {
            assert!(
                seen.insert(k.text()),
                "{shards} shards: SCAN returned {k:?} twice"
            );
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), n, "{shards} shards: SCAN");
    let mut del = vec!["DEL".to_string()];
    del.extend((0..n).step_by(2).map(|i| format!("spread:{i}")));
    assert_eq!(raw.cmd(&del), Resp::Int(n as i64 / 2));
    assert_eq!(
        raw.cmds("DBSIZE"),
        Resp::Int(n as i64 / 2 + counters),
        "{shards} shards"
    );
}

#[test]
fn port_and_shards_flags() {
    let server = Server::percore(3, &[]);
    let mut raw = server.raw();
    let info = raw.cmds("INFO server").text();
    assert!(info.contains("shards:3\r\n"), "{info}");
    assert!(
        info.contains(&format!("tcp_port:{}\r\n", server.port)),
        "{info}"
    );
    exercise_keyspace(&mut raw, 3);
}

#[test]
fn more_shards_than_cpus_and_unpinned_executors() {
    for args in [
        &["--shards", "8"][..],
        &["--shards", "2", "--pin-cores", "no"][..],
        &["--shards", "5", "--pin-cores", "no"][..],
    ] {
        let shards: usize = args[1].parse().unwrap();
        let dir = scratch(&format!("shards{shards}"));
        let port = free_port();
        let p = port.to_string();
        let mut all = vec!["--port", &p];
        all.extend_from_slice(args);
        let mut server = start(&all, port, &dir);
        let mut raw = server.raw();
        assert!(raw
            .cmds("INFO server")
            .text()
            .contains(&format!("shards:{shards}\r\n")));
        exercise_keyspace(&mut raw, shards);
        // Several clients at once, spread over the listeners.
        std::thread::scope(|s| {
            for t in 0..8 {
                let port = server.port;
                s.spawn(move || {
                    let mut c = Raw::connect(port);
                    for i in 0..200 {
                        let k = format!("conc:{t}:{i}");
                        assert_eq!(c.cmd(&["SET", &k, "1"]), ok());
                        assert_eq!(c.cmd(&["MGET", &k, "spread:1", "nokey"]).items().len(), 3);
                    }
                });
            }
        });
        assert!(server.alive());
        assert!(server.log().contains(&format!("{shards} shard(s)")));
    }
}

#[test]
fn config_file_with_quotes_and_include() {
    let dir = scratch("conffile");
    let port = free_port();
    let extra = dir.join("extra part.conf");
    std::fs::write(
        &extra,
        "# included\nrequirepass \"pa ss\\\"word\"\nmaxclients 77\nhz '15'\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("main.conf"),
        format!(
            "# main file\nport {port}\n\n  shards 2\ninclude \"{}\"\ntimeout 123\nloglevel \"verbose\"\n",
            extra.display()
        ),
    )
    .unwrap();
    // The command line comes after the file and wins.
    let server = start(&["main.conf", "--maxclients", "88"], port, &dir);
    let mut raw = server.raw();
    assert!(raw.cmds("PING").is_error(), "requirepass from the include");
    assert!(raw.cmd(&["AUTH", "pa ss\"wrd"]).is_error());
    assert_eq!(raw.cmd(&["AUTH", "pa ss\"word"]), ok());
    let get = |raw: &mut Raw, name: &str| raw.cmd(&["CONFIG", "GET", name]).items()[1].text();
    assert_eq!(get(&mut raw, "maxclients"), "88");
    assert_eq!(get(&mut raw, "hz"), "15");
    assert_eq!(get(&mut raw, "timeout"), "123");
    assert_eq!(get(&mut raw, "loglevel"), "verbose");
    assert!(raw.cmds("INFO server").text().contains("shards:2\r\n"));
}

#[test]
fn bad_arguments_exit_1_with_one_clear_line() {
    let dir = scratch("badargs");
    let cases: &[(&[&str], &str)] = &[
        (&["--foo", "bar"], "'foo'"),
        (&["--port", "abc"], "port"),
        (&["--port", "70000"], "port"),
        (&["--shards", "0"], "shards"),
        (&["--shards", "many"], "shards"),
        (&["--pin-cores", "maybe"], "pin-cores"),
        (&["--maxclients"], "maxclients"),
        (&["/nonexistent/percore.conf"], "/nonexistent/percore.conf"),
    ];
    for (args, named) in cases {
        let out = run_to_exit(args, &dir);
        assert_eq!(out.status.code(), Some(1), "percore {args:?}: {out:?}");
        let lines = error_lines(&out);
        assert_eq!(
            lines.len(),
            1,
            "percore {args:?}: one line on stderr, got {lines:?}"
        );
        assert!(
            lines[0].contains(named),
            "percore {args:?}: {:?} does not name {named}",
            lines[0]
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    let dir = scratch("help");
    for flag in ["--help", "-h"] {
        let out = run_to_exit(&[flag], &dir);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert!(text(&out.stdout).contains("Usage"), "{flag}: {out:?}");
    }
    for flag in ["--version", "-v"] {
        let out = run_to_exit(&[flag], &dir);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert!(
            text(&out.stdout).contains(env!("CARGO_PKG_VERSION")),
            "{flag}: {out:?}"
        );
    }
}

/// percore refuses a port another server listens on, and leaves that server alone.
#[test]
fn port_in_use_exits_1_without_sharing_it() {
    let dir = scratch("inuse");
    let redis = Server::redis(&[]);
    let mut percore_first = Server::percore(2, &[]);
    for (other, name) in [(&redis, "redis-server"), (&percore_first, "percore")] {
        let p = other.port.to_string();
        for bind in [None, Some("127.0.0.1"), Some("* -::*")] {
            let mut args = vec!["--port", &p, "--shards", "2"];
            if let Some(b) = bind {
                args.push("--bind");
                args.extend(b.split(' '));
            }
            let out = run_to_exit(&args, &dir);
            assert_eq!(
                out.status.code(),
                Some(1),
                "percore on {name}'s port (bind {bind:?}) must fail: {out:?}"
            );
            let lines = error_lines(&out);
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(
                lines[0].contains(&p) && lines[0].contains("in use"),
                "{:?}",
                lines[0]
            );
        }
        // Every new connection still reaches the first server.
        for _ in 0..20 {
            let mut c = other.raw();
            let info = c.cmds("INFO server").text();
            assert_eq!(
                info.contains("percore_version"),
                name == "percore",
                "a connection reached the wrong server"
            );
            assert!(info.contains(&format!("tcp_port:{p}")));
        }
    }
    assert!(percore_first.alive());
}

/// Two percores started at the same moment on one port: SO_REUSEPORT must not
/// let both listen; exactly one runs and the other exits 1.
#[test]
fn two_percores_started_at_once_do_not_share_a_port() {
    let dir = scratch("race");
    for round in 0..4 {
        let port = free_port();
        let p = port.to_string();
        let spawn = || {
            percore()
                .args(["--port", &p, "--shards", "2"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start percore")
        };
        let mut a = spawn();
        let mut b = spawn();
        // Long enough for both to start listening (debug build).
        std::thread::sleep(Duration::from_millis(1500));
        let exits: Vec<Option<i32>> = [&mut a, &mut b]
            .into_iter()
            .map(|c| c.try_wait().unwrap().map(|s| s.code().unwrap_or(-1)))
            .collect();
        let _ = a.kill();
        let _ = b.kill();
        let _ = a.wait();
        let _ = b.wait();
        let running = exits.iter().filter(|e| e.is_none()).count();
        assert_eq!(running, 1, "round {round}: exit statuses {exits:?}");
        assert!(exits.contains(&Some(1)), "round {round}: {exits:?}");
    }
}

fn signal(server: &Server, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(server.child.id().to_string())
        .status()
        .expect("run kill");
    assert!(st.success());
}

#[test]
fn sigterm_and_sigint_exit_0_quickly() {
    for shards in [1, 4] {
        for sig in ["TERM", "INT"] {
            let mut server = Server::percore(shards, &[]);
            // Connected clients, one of them mid-command, do not hold the exit.
            let mut idle = server.raw();
            assert_eq!(idle.cmds("SET k v"), ok());
            let mut partial = server.raw();
            partial.send(b"*3\r\n$3\r\nSET\r\n");
            let t = Instant::now();
            signal(&server, sig);
            let st = wait_exit(&mut server.child, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{shards} shard(s): SIG{sig} did not stop percore"));
            let took = t.elapsed();
            assert_eq!(st.code(), Some(0), "{shards} shard(s): SIG{sig}");
            assert!(
                took < Duration::from_secs(1),
                "{shards} shard(s): SIG{sig} took {took:?}"
            );
            let log = server.log();
            assert!(log.contains(&format!("Received SIG{sig}")), "{log}");
            assert!(log.contains("ready to exit"), "{log}");
            assert!(idle.closed_within(Duration::from_secs(1)));
        }
    }
}

#[test]
fn shutdown_command_exits_0() {
    for shards in [1, 4] {
        for cmd in ["SHUTDOWN", "SHUTDOWN NOSAVE"] {
            let mut server = Server::percore(shards, &[]);
            let mut other = server.raw();
            let mut raw = server.raw();
            let t = Instant::now();
            raw.send(format!("{cmd}\r\n").as_bytes());
            // Redis sends no reply: the connection just closes.
            assert!(raw.closed_within(Duration::from_secs(2)), "{cmd}");
            let st = wait_exit(&mut server.child, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{shards} shard(s): {cmd} did not stop percore"));
            assert_eq!(st.code(), Some(0), "{shards} shard(s): {cmd}");
            assert!(t.elapsed() < Duration::from_secs(2));
            assert!(server.log().contains("ready to exit"));
            assert!(other.closed_within(Duration::from_secs(1)));
        }
    }
}
