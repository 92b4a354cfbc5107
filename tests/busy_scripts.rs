//! A script looping past busy-reply-threshold: every client, also those whose
//! connection lives on the looping core (all of them with one shard), gets
//! Redis's BUSY replies, SCRIPT KILL / FUNCTION KILL / SHUTDOWN NOSAVE work,
//! and afterwards the server serves normally with its data intact. Compared
//! with redis-server reply for reply.

mod common;

use std::time::{Duration, Instant};

use common::{Raw, Resp, Server};

/// Connections opened before the script starts, and after it is busy.
const CONNS: usize = 8;

/// How long a reply may take before it counts as missing.
const REPLY_WAIT: Duration = Duration::from_secs(5);

/// A connection whose replies must come within [`REPLY_WAIT`].
fn conn(srv: &Server) -> Raw {
    let c = srv.raw();
    c.stream
        .set_read_timeout(Some(REPLY_WAIT))
        .expect("timeout");
    c
}

/// The next reply, or a marker that none came in time.
fn reply(c: &mut Raw) -> Resp {
    c.try_read()
        .unwrap_or_else(|| Resp::Simple(b"<no reply in time>".to_vec()))
}

/// Waits (bounded) until a new connection's PING gets BUSY: the script is past the threshold.
fn wait_busy(srv: &Server) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let mut c = srv.raw();
        c.stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        if c.cmds("PING").is_error() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no client got BUSY while a script looped");
}

/// Commands sent pipelined by every client while the script is busy.
const PIPELINE: &[&[&str]] = &[
    &["PING"],
    &["GET", "k"],
    &["EVAL", "return 1", "0"],
    &["CLIENT", "ID"],
    &["NOSUCH", "x"],
    &["GET"],
    &["MULTI"],
    &["SET", "k", "changed"],
    &["EXEC"],
    &["SHUTDOWN"],
    &["GET", "k"],
];

/// What the clients see around a script (`fcall`: a function) that loops until killed.
fn busy_scenario(srv: &Server, fcall: bool) -> Vec<Resp> {
    let mut seen = Vec::new();
    let mut admin = conn(srv);
    // lua-time-limit is busy-reply-threshold's alias.
    seen.push(admin.cmds("CONFIG SET lua-time-limit 100"));
    seen.push(admin.cmds("CONFIG GET busy-reply-threshold"));
    admin.cmds("FLUSHALL");
    seen.push(admin.cmds("SET k v"));
    seen.push(admin.cmds("RPUSH l a b c"));
    admin.cmds("FUNCTION FLUSH");
    if fcall {
        seen.push(admin.cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=busylib\nredis.register_function{function_name='spin', callback=function() local i = 0 while true do i = i + 1 end end, flags={'no-writes'}}",
        ]));
    }
    let mut early: Vec<Raw> = (0..CONNS).map(|_| conn(srv)).collect();
    for c in early.iter_mut() {
        seen.push(c.cmds("PING"));
    }
    let mut resp3 = conn(srv);
    let hello = resp3.cmds("HELLO 3");
    assert!(matches!(hello, Resp::Map(_)), "HELLO 3: {hello:?}");
    let mut runner = conn(srv);
    let body = if fcall {
        common::encode(&["FCALL", "spin", "0"])
    } else {
        common::encode(&["EVAL", "while true do end", "0"])
    };
    // The script's client pipelines a command behind it: run after the script.
    let mut req = body;
    req.extend_from_slice(&common::encode(&["GET", "k"]));
    runner.send(&req);
    wait_busy(srv);

    // A command cut in two, its halves sent while the script is busy.
    let mut partial = conn(srv);
    partial.send(b"*2\r\n$3\r\nGET\r\n$1\r");
    let mut late: Vec<Raw> = (0..CONNS).map(|_| conn(srv)).collect();
    let pipeline: Vec<u8> = PIPELINE.iter().flat_map(|c| common::encode(c)).collect();
    for c in early.iter_mut().chain(late.iter_mut()) {
        c.send(&pipeline);
    }
    for c in early.iter_mut().chain(late.iter_mut()) {
        for _ in PIPELINE {
            seen.push(reply(c));
        }
    }
    seen.push(resp3.cmds("PING"));
    seen.push(resp3.cmds("SCRIPT KILL NOW"));
    partial.send(b"\nk\r\n");
    seen.push(reply(&mut partial));
    // Inline commands are answered too.
    partial.send(b"PING\r\n");
    seen.push(reply(&mut partial));

    let mut killer = conn(srv);
    if fcall {
        seen.push(killer.cmds("SCRIPT KILL"));
        seen.push(killer.cmds("FUNCTION KILL"));
    } else {
        seen.push(killer.cmds("FUNCTION KILL"));
        seen.push(killer.cmds("SCRIPT KILL"));
    }
    seen.push(reply(&mut runner));
    seen.push(reply(&mut runner));

    // Served normally again, data intact, on every connection.
    seen.push(killer.cmds("SCRIPT KILL"));
    for c in early
        .iter_mut()
        .chain(late.iter_mut())
        .chain([&mut partial])
    {
        seen.push(c.cmds("PING"));
        seen.push(c.cmds("GET k"));
        seen.push(c.cmd(&["LRANGE", "l", "0", "-1"]));
    }
    seen.push(resp3.cmd(&["EVAL", "return {1, 'x'}", "0"]));
    seen.push(admin.cmds("DBSIZE"));
    seen
}

/// Runs the scenario on Redis and on percore with one core and with several.
fn compare(fcall: bool) {
    let t0 = Instant::now();
    let redis = Server::redis(&[]);
    let want = busy_scenario(&redis, fcall);
    assert!(
        want.iter().any(|r| r.is_error()),
        "the scenario saw no BUSY"
    );
    for shards in [1, 3] {
        let percore = Server::percore(shards, &[]);
        let got = busy_scenario(&percore, fcall);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "reply {i} ({shards} shards)");
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(60));
}

#[test]
fn script_kill_serves_every_core() {
    compare(false);
}

#[test]
fn function_kill_serves_every_core() {
    compare(true);
}

/// SHUTDOWN NOSAVE ends the server while a script loops; plain SHUTDOWN is refused.
fn shutdown_scenario(srv: &mut Server) -> Vec<Resp> {
    let mut seen = Vec::new();
    let mut admin = conn(srv);
    seen.push(admin.cmds("CONFIG SET busy-reply-threshold 100"));
    let mut runner = conn(srv);
    runner.send_cmd(&["EVAL", "while true do end", "0"]);
    wait_busy(srv);
    let mut c = conn(srv);
    seen.push(c.cmds("SHUTDOWN"));
    seen.push(c.cmds("SHUTDOWN SAVE"));
    seen.push(c.cmds("SHUTDOWN ABORT"));
    c.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert!(c.closed_within(REPLY_WAIT), "SHUTDOWN NOSAVE got a reply");
    assert!(
        runner.closed_within(REPLY_WAIT),
        "the script's client got a reply"
    );
    let end = Instant::now() + Duration::from_secs(10);
    while srv.alive() {
        assert!(Instant::now() < end, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

#[test]
fn shutdown_nosave_stops_a_busy_server() {
    let want = shutdown_scenario(&mut Server::redis(&[]));
    for shards in [1, 3] {
        let got = shutdown_scenario(&mut Server::percore(shards, &[]));
        assert_eq!(got, want, "{shards} shards");
    }
}

/// A command the busy core's hook cannot run itself (WATCH may wait for a
/// shard) waits, with everything pipelined after it, until the script ends;
/// the commands before it are answered at once, and nothing is lost or
/// reordered. (Redis runs WATCH at once and refuses the GET after it with
/// BUSY; percore answers both after the script.)
#[test]
fn commands_the_hook_cannot_run_wait_in_order() {
    let srv = Server::percore(1, &[]);
    let mut admin = conn(&srv);
    admin.cmds("CONFIG SET busy-reply-threshold 100");
    admin.cmds("SET k v");
    let mut runner = conn(&srv);
    runner.send_cmd(&["EVAL", "while true do end", "0"]);
    wait_busy(&srv);
    let mut c = conn(&srv);
    let mut req = Vec::new();
    for cmd in [&["PING"][..], &["WATCH", "k"], &["GET", "k"], &["PING"]] {
        req.extend(common::encode(cmd));
    }
    c.send(&req);
    assert_eq!(
        reply(&mut c),
        Resp::Error(
            b"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
                .to_vec()
        )
    );
    // Nothing more until the script ends.
    c.stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    assert_eq!(c.try_read(), None);
    c.stream
        .set_read_timeout(Some(REPLY_WAIT))
        .expect("timeout");
    assert_eq!(conn(&srv).cmds("SCRIPT KILL"), Resp::Simple(b"OK".to_vec()));
    assert!(reply(&mut runner).is_error());
    assert_eq!(reply(&mut c), Resp::Simple(b"OK".to_vec()));
    assert_eq!(reply(&mut c), Resp::bulk("v"));
    assert_eq!(reply(&mut c), Resp::Simple(b"PONG".to_vec()));
    // WATCH took effect: another client's write fails this client's EXEC.
    admin.cmds("SET k w");
    c.cmds("MULTI");
    c.cmds("GET k");
    assert_eq!(c.cmds("EXEC"), Resp::Array(None));
}

/// A client on the busy core pipelining more than the socket buffers hold
/// gets every BUSY reply, once and in order, while it still writes.
#[test]
fn long_pipeline_on_the_busy_core() {
    const N: usize = 50_000;
    let srv = Server::percore(1, &[]);
    let mut admin = conn(&srv);
    admin.cmds("CONFIG SET busy-reply-threshold 100");
    let mut runner = conn(&srv);
    runner.send_cmd(&["EVAL", "while true do end", "0"]);
    wait_busy(&srv);
    let mut c = conn(&srv);
    let mut writer = c.stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        let mut req = Vec::new();
        for i in 0..N {
            // Inline and multibulk, alternating.
            if i % 2 == 0 {
                req.extend_from_slice(b"PING\r\n");
            } else {
                req.extend(common::encode(&["GET", "k"]));
            }
        }
        writer.write_all(&req).expect("send");
    });
    let busy = Resp::Error(
        b"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
            .to_vec(),
    );
    for i in 0..N {
        assert_eq!(reply(&mut c), busy, "reply {i}");
    }
    sender.join().expect("sender");
    assert_eq!(c.cmds("SCRIPT KILL"), Resp::Simple(b"OK".to_vec()));
    assert!(reply(&mut runner).is_error());
    assert_eq!(c.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
}
