//! Robustness against bad and hostile input: malformed requests, oversized
//! declared lengths, half frames, the query buffer limit, thousands of idle
//! connections, a client that never reads its replies, unauthenticated limits.
//!
//! Protocol errors are compared byte for byte with Debian's redis-server.
//! After each case the server must still be up, and a second client that
//! stored data before must still read it and get correct replies.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{encode, Raw, Resp, Rng, Server};

/// What a server sent back for one input, and whether it closed the connection.
#[derive(Debug, PartialEq, Eq)]
struct Exchange {
    out: Vec<u8>,
    closed: bool,
}

impl Exchange {
    fn shown(&self) -> String {
        format!("\"{}\" (closed: {})", self.out.escape_ascii(), self.closed)
    }
}

/// Sends `input` on a fresh connection, then collects replies until the server
/// closes the connection or stays quiet for `quiet`.
fn exchange(port: u16, input: &[u8], quiet: Duration) -> Exchange {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).unwrap();
    // The server may close before it read everything: a failed write is fine.
    let _ = s.write_all(input);
    read_until_closed_or_quiet(&mut s, quiet)
}

fn read_until_closed_or_quiet(s: &mut TcpStream, quiet: Duration) -> Exchange {
    s.set_read_timeout(Some(quiet)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        assert!(Instant::now() < deadline, "server kept sending for 10 s");
        match s.read(&mut buf) {
            Ok(0) => return Exchange { out, closed: true },
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A close with unread input sends RST: what was sent before is read first.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Exchange { out, closed: true }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Exchange { out, closed: false }
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A client holding data that must survive every bad input sent by others.
struct Witness {
    raw: Raw,
    n: usize,
    counter: i64,
}

impl Witness {
    fn new(server: &Server) -> Witness {
        let mut raw = server.raw();
        // Keys over every shard, some with a hash tag.
        for i in 0..64 {
            let r = raw.cmd(&["SET", &format!("witness:{i}"), &format!("value-{i}")]);
            assert_eq!(r, Resp::Simple(b"OK".to_vec()));
        }
        assert_eq!(raw.cmds("MSET {w}a 1 {w}b 2"), Resp::Simple(b"OK".to_vec()));
        Witness {
            raw,
            n: 64,
            counter: 0,
        }
    }

    /// The server is alive, the data intact, replies correct.
    fn check(&mut self, server: &mut Server, after: &str) {
        assert!(
            server.alive(),
            "server died after {after}\n{}",
            server.log()
        );
        assert_eq!(
            self.raw.cmds("PING"),
            Resp::Simple(b"PONG".to_vec()),
            "after {after}"
        );
        let keys: Vec<String> = (0..self.n).map(|i| format!("witness:{i}")).collect();
        let mut args = vec!["MGET".to_string()];
        args.extend(keys);
        let got = self.raw.cmd(&args);
        let want: Vec<Resp> = (0..self.n)
            .map(|i| Resp::bulk(&format!("value-{i}")))
            .collect();
        assert_eq!(got, Resp::Array(Some(want)), "witness data after {after}");
        assert_eq!(
            self.raw.cmds("MGET {w}a {w}b"),
            Resp::Array(Some(vec![Resp::bulk("1"), Resp::bulk("2")])),
            "after {after}"
        );
        self.counter += 1;
        assert_eq!(
            self.raw.cmds("INCR witness:counter"),
            Resp::Int(self.counter),
            "after {after}"
        );
        // A fresh client works too.
        let mut fresh = server.raw();
        assert_eq!(
            fresh.cmds("ECHO fresh"),
            Resp::bulk("fresh"),
            "after {after}"
        );
    }
}

/// Malformed or hostile requests; each is compared with redis-server.
fn protocol_cases() -> Vec<(String, Vec<u8>)> {
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad multibulk count", b"*abc\r\n".to_vec()),
        ("negative bulk length", b"*2\r\n$3\r\nGET\r\n$-5\r\n".to_vec()),
        ("bulk length not a number", b"*1\r\n$x\r\n".to_vec()),
        ("missing dollar", b"*2\r\n$3\r\nGET\r\nfoo\r\n".to_vec()),
        ("dollar replaced by CR", b"*1\r\n\r\n\r\n".to_vec()),
        ("non-ASCII instead of dollar", b"*1\r\n\xff4\r\nPING\r\n".to_vec()),
        ("multibulk count over INT_MAX", b"*2147483648\r\n".to_vec()),
        ("multibulk count not a long", b"*99999999999999999999999\r\n".to_vec()),
        ("1 GiB bulk over proto-max-bulk-len", b"*1\r\n$1073741824\r\n".to_vec()),
        (
            "pipelined commands before the error run first",
            b"PING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nSET\r\n$3\r\n".to_vec(),
        ),
        (
            "pipelined writes before the error run first",
            b"*3\r\n$3\r\nSET\r\n$5\r\npipe1\r\n$1\r\nx\r\nGET pipe1\r\nECHO 'a b'\r\n*1\r\n$-5\r\nPING\r\n"
                .to_vec(),
        ),
        (
            "cross-shard commands before the error run first",
            b"*5\r\n$4\r\nMSET\r\n$3\r\nxk1\r\n$1\r\na\r\n$3\r\nxk2\r\n$1\r\nb\r\nMGET xk1 xk2 xk3\r\nDEL xk1 xk3\r\nMGET xk1 xk2\r\n*x\r\nPING\r\n"
                .to_vec(),
        ),
        (
            "QUIT in a pipeline: nothing after it runs",
            b"SET quit1 a\r\nQUIT\r\nSET quit2 b\r\n*abc\r\n".to_vec(),
        ),
        ("POST then a protocol error", b"PING\r\nPOST / HTTP/1.1\r\n*abc\r\n".to_vec()),
        (
            "empty command names",
            b"*1\r\n$0\r\n\r\n*2\r\n$0\r\n\r\n$0\r\n\r\n\r\n\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
        ),
        ("unbalanced quotes", b"SET a \"unbalanced\r\nPING\r\n".to_vec()),
        ("quote followed by a non-space", b"SET a \"b\"c\r\n".to_vec()),
        (
            "HTTP GET request",
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl\r\n\r\n".to_vec(),
        ),
        (
            "HTTP POST request",
            b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\nhi".to_vec(),
        ),
        // A NUL ends the line search (Redis uses strchr): nothing is answered.
        (
            "inline command with NUL",
            b"GET\x00\xff\xfe \x01\x02\r\n\xc3\x28 a\xe2\x82 b\r\n".to_vec(),
        ),
        (
            "inline non-UTF-8 unknown commands",
            b"GET\xff\xfe \x01\x02\r\n\xc3\x28 a\xe2\x82 b\r\n".to_vec(),
        ),
        // The error quotes arguments with %s: a NUL cuts them short.
        (
            "NUL inside an unknown command",
            b"*2\r\n$5\r\nab\x00cd\r\n$3\r\nx\x00y\r\n".to_vec(),
        ),
        (
            "CR LF inside an unknown command",
            b"*2\r\n$4\r\na\r\nb\r\n$3\r\nc\nd\r\n".to_vec(),
        ),
        (
            "unknown subcommand with non-ASCII and NUL",
            b"*2\r\n$6\r\nCoNfIg\r\n$6\r\n\xc3\xa9t\x00x\n\r\n*3\r\n$6\r\nobject\r\n$2\r\n\xe9\r\r\n$1\r\nk\r\n"
                .to_vec(),
        ),
        ("long non-ASCII unknown command", {
            let mut v = b"*3\r\n$200\r\n".to_vec();
            v.extend("é".repeat(100).as_bytes());
            v.extend(b"\r\n$150\r\n");
            v.extend("ü".repeat(75).as_bytes());
            v.extend(b"\r\n$3\r\nabc\r\n");
            v
        }),
        ("skipped empty commands", b"*0\r\n*-1\r\n\r\n\n  \r\n*1\r\n$4\r\nPING\r\n".to_vec()),
        ("the two bytes after a bulk are not checked", b"*1\r\n$4\r\nPINGxy*1\r\n$4\r\nPINGab".to_vec()),
        ("inline line over 64 KiB", {
            let mut v = b"SET a ".to_vec();
            v.resize(70 * 1024, b'x');
            v
        }),
        ("multibulk count line over 64 KiB", {
            let mut v = b"*".to_vec();
            v.resize(70 * 1024, b'1');
            v
        }),
        ("bulk count line over 64 KiB", {
            let mut v = b"*1\r\n$".to_vec();
            v.resize(70 * 1024, b'1');
            v
        }),
    ];
    // Random binary: some starting as a multibulk, some inline.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut random = Vec::new();
    for i in 0..12 {
        let len = 1 + rng.below(300) as usize;
        let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 3 == 0 {
            v.insert(0, b'*');
        }
        if i % 4 == 1 {
            v.extend_from_slice(b"\r\n");
        }
        random.push((format!("random binary #{i}"), v));
    }
    cases
        .drain(..)
        .map(|(n, v)| (n.to_string(), v))
        .chain(random)
        .collect()
}

#[test]
fn protocol_errors_match_redis_and_close_only_that_connection() {
    let redis = Server::redis(&[]);
    let mut servers = vec![Server::percore(1, &[]), Server::percore(4, &[])];
    let mut witnesses: Vec<Witness> = servers.iter().map(Witness::new).collect();
    let quiet = Duration::from_millis(300);
    let cases = protocol_cases();
    // Every mismatch is collected, so one run shows them all.
    let mut failures = Vec::new();
    for (name, input) in &cases {
        // The three exchanges run at once: each waits `quiet` when no close comes.
        let ports: Vec<u16> = std::iter::once(redis.port)
            .chain(servers.iter().map(|s| s.port))
            .collect();
        let results: Vec<Exchange> = std::thread::scope(|sc| {
            let hs: Vec<_> = ports
                .iter()
                .map(|&p| sc.spawn(move || exchange(p, input, quiet)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let want = &results[0];
        for (k, got) in results[1..].iter().enumerate() {
            if got != want {
                failures.push(format!(
                    "case {name:?} (input {:?}), percore with {} shard(s):\n  redis:   {}\n  percore: {}",
                    input[..input.len().min(200)].escape_ascii().to_string(),
                    if k == 0 { 1 } else { 4 },
                    want.shown(),
                    got.shown()
                ));
            }
        }
        for (s, w) in servers.iter_mut().zip(witnesses.iter_mut()) {
            w.check(s, name);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The writes pipelined before an error were executed, none after QUIT.
    for s in &servers {
        let mut raw = s.raw();
        assert_eq!(raw.cmds("GET pipe1"), Resp::bulk("x"));
        assert_eq!(
            raw.cmds("MGET quit1 quit2"),
            Resp::Array(Some(vec![Resp::bulk("a"), Resp::Bulk(None)]))
        );
    }
}

/// CLIENT REPLY OFF/SKIP also silence a protocol error's reply. Redis then
/// keeps the connection open forever (it closes only after writing a reply)
/// while ignoring everything the client sends; percore closes it instead, an
/// intended difference, so only the bytes are compared here.
#[test]
fn protocol_errors_with_replies_off() {
    let redis = Server::redis(&[]);
    let servers = [Server::percore(1, &[]), Server::percore(4, &[])];
    let cases: &[&[u8]] = &[
        b"CLIENT REPLY OFF\r\nPING\r\n*abc\r\n",
        b"CLIENT REPLY SKIP\r\n*1\r\n$-3\r\n",
        b"CLIENT REPLY SKIP\r\nPING\r\n*abc\r\n",
        b"CLIENT REPLY OFF\r\nCLIENT REPLY ON\r\n*abc\r\n",
    ];
    let quiet = Duration::from_millis(300);
    for input in cases {
        let want = exchange(redis.port, input, quiet);
        for s in &servers {
            let got = exchange(s.port, input, quiet);
            assert_eq!(
                got.out.escape_ascii().to_string(),
                want.out.escape_ascii().to_string(),
                "input {}",
                input.escape_ascii()
            );
            assert!(got.closed, "percore closes after a protocol error");
        }
    }
}

/// The value of `field` in INFO's output.
fn info_field(raw: &mut Raw, field: &str) -> u64 {
    let info = raw.cmds("INFO").text();
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number"))
}

/// Resident memory of a process, in bytes (VmRSS in /proc/<pid>/status).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .expect("VmRSS")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmRSS number");
    kb * 1024
}

/// Polls `f` until it returns true or `wait` elapses; returns its last answer.
fn eventually(wait: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const MB: u64 = 1 << 20;

#[test]
fn huge_declared_bulk_is_not_allocated_up_front() {
    for shards in [1, 4] {
        let mut server = Server::percore(shards, &["--proto-max-bulk-len", "2gb"]);
        let pid = server.child.id();
        let mut witness = Witness::new(&server);
        let mut probe = server.raw();
        let base_rss = rss(pid);
        let base_used = info_field(&mut probe, "used_memory");

        // 1 GiB declared, 1 MiB sent, the rest never arrives.
        let mut c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        c.write_all(b"*2\r\n$4\r\nECHO\r\n$1073741824\r\n").unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..16 {
            c.write_all(&chunk).unwrap();
        }
        // Give the server time to read it all (it is idle otherwise).
        assert!(eventually(Duration::from_secs(5), || {
            probe.cmds("CLIENT LIST").text().contains("qbuf=10")
                || info_field(&mut probe, "used_memory") > base_used + MB
        }));
        std::thread::sleep(Duration::from_millis(200));
        let grown_rss = rss(pid).saturating_sub(base_rss);
        let grown_used = info_field(&mut probe, "used_memory").saturating_sub(base_used);
        assert!(
            grown_rss < 24 * MB && grown_used < 24 * MB,
            "{shards} shard(s): 1 MiB of a 1 GiB argument grew RSS by {} MiB and used_memory by {} MiB",
            grown_rss / MB,
            grown_used / MB
        );
        witness.check(&mut server, "a 1 GiB declared argument");

        // Closing the connection frees the partial argument.
        drop(c);
        assert!(
            eventually(Duration::from_secs(5), || {
                info_field(&mut probe, "used_memory") < base_used + MB / 2
            }),
            "{shards} shard(s): used_memory did not come back after the close: {} > {}",
            info_field(&mut probe, "used_memory"),
            base_used
        );
        witness.check(&mut server, "closing a partial 1 GiB argument");
    }
}

#[test]
fn half_frames_and_slowly_completed_commands() {
    for shards in [1, 4] {
        let mut server = Server::percore(shards, &[]);
        let mut witness = Witness::new(&server);
        let mut probe = server.raw();

        // Half a frame, then the client goes away: nothing is executed.
        for cut in [3usize, 10, 17, 25, 30] {
            let full = encode(&["SET", "half", "value"]);
            let mut c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            c.write_all(&full[..cut.min(full.len() - 1)]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            drop(c);
        }
        assert!(eventually(Duration::from_secs(5), || {
            info_field(&mut probe, "connected_clients") == 2
        }));
        assert_eq!(probe.cmds("EXISTS half"), Resp::Int(0));
        witness.check(&mut server, "half frames");

        // A command completed byte by byte over about a second, interleaved
        // with another client's traffic, inline and multibulk.
        let mut bytes = encode(&["SET", "slow{x}", "v a l u e"]);
        bytes.extend_from_slice(b"GET slow{x}\r\n");
        bytes.extend_from_slice(&encode(&["MSET", "slow{x}", "1", "slow2", "2"]));
        bytes.extend_from_slice(&encode(&["MGET", "slow{x}", "slow2"]));
        let mut slow = server.raw();
        let pause = Duration::from_millis(1000 / bytes.len() as u64);
        for (k, b) in bytes.iter().enumerate() {
            slow.send(&[*b]);
            if k % 7 == 0 {
                assert_eq!(probe.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
            }
            std::thread::sleep(pause);
        }
        assert_eq!(slow.read(), Resp::Simple(b"OK".to_vec()));
        assert_eq!(slow.read(), Resp::bulk("v a l u e"));
        assert_eq!(slow.read(), Resp::Simple(b"OK".to_vec()));
        assert_eq!(
            slow.read(),
            Resp::Array(Some(vec![Resp::bulk("1"), Resp::bulk("2")]))
        );
        witness.check(&mut server, "a slowly sent command");

        // Big arguments arriving in uneven pieces, and several back to back in
        // one write: the query buffer grows, is reused and shrinks again.
        let mut rng = Rng(0x1234_5678 + shards as u64);
        let values: Vec<Vec<u8>> = [300_000usize, 40_000, 5, 1 << 20, 70_000]
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect())
            .collect();
        let mut bytes = Vec::new();
        for (i, v) in values.iter().enumerate() {
            bytes.extend_from_slice(&encode(&[
                b"SET".as_slice(),
                format!("big{i}").as_bytes(),
                v,
            ]));
        }
        let mut c = server.raw();
        let mut off = 0;
        while off < bytes.len() {
            let n = (1 + rng.below(40_000) as usize).min(bytes.len() - off);
            c.send(&bytes[off..off + n]);
            off += n;
            if rng.below(4) == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        for _ in &values {
            assert_eq!(c.read(), Resp::Simple(b"OK".to_vec()));
        }
        c.send(&bytes);
        let mut get = Vec::new();
        for i in 0..values.len() {
            get.extend_from_slice(&encode(&["GET", &format!("big{i}")]));
        }
        c.send(&get);
        for _ in &values {
            assert_eq!(c.read(), Resp::Simple(b"OK".to_vec()));
        }
        for v in &values {
            assert_eq!(c.read(), Resp::Bulk(Some(v.clone())));
        }
        witness.check(&mut server, "big arguments in pieces");
    }
}

#[test]
fn query_buffer_limit_closes_the_client_as_redis_does() {
    let limit = ["--client-query-buffer-limit", "1mb"];
    let mut servers = [
        Server::redis(&limit),
        Server::percore(1, &limit),
        Server::percore(4, &limit),
    ];
    for server in servers.iter_mut() {
        let mut witness = Witness::new(server);
        // A 2 MB partial command: a 3 MB argument of which 2 MB arrive.
        let mut c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sent = encode(&["SET", "qbl"]);
        sent[1] = b'3';
        sent.extend_from_slice(b"$3000000\r\n");
        let _ = c.write_all(&sent);
        let chunk = vec![b'q'; 64 * 1024];
        for _ in 0..32 {
            if c.write_all(&chunk).is_err() {
                break;
            }
        }
        let ex = read_until_closed_or_quiet(&mut c, Duration::from_secs(5));
        assert_eq!(
            ex,
            Exchange {
                out: Vec::new(),
                closed: true
            },
            "{:?}: a 2 MB query buffer over a 1 MB limit",
            server.kind
        );
        witness.check(server, "the query buffer limit");
        assert_eq!(witness.raw.cmds("EXISTS qbl"), Resp::Int(0));
        // A complete command under the limit still works.
        let value = "v".repeat(900 * 1024);
        assert_eq!(
            witness.raw.cmd(&["SET", "qbl", &value]),
            Resp::Simple(b"OK".to_vec())
        );
        assert_eq!(witness.raw.cmds("STRLEN qbl"), Resp::Int(900 * 1024));
    }
}

/// Makes sure this process may open `need` files (the soft limit is raised
/// up to the hard one with prlimit(1), std only); panics with advice otherwise.
fn ensure_nofile(need: u64) {
    let soft = || -> u64 {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    if soft() >= need {
        return;
    }
    let _ = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={need}:"))
        .status();
    assert!(
        soft() >= need,
        "this test opens {need} sockets: raise the open files limit (ulimit -n 65536; scripts/test.sh does)"
    );
}

#[test]
fn ten_thousand_idle_connections() {
    const IDLE: usize = 10_000;
    ensure_nofile(IDLE as u64 + 500);
    for shards in [1, 4] {
        let mut server = Server::percore(shards, &["--maxclients", "10100"]);
        let mut witness = Witness::new(&server);
        let mut idle = Vec::with_capacity(IDLE);
        let start = Instant::now();
        for _ in 0..IDLE {
            idle.push(
                TcpStream::connect(("127.0.0.1", server.port)).expect("connect an idle client"),
            );
        }
        let connect_time = start.elapsed();
        // A new client is served at once.
        let t = Instant::now();
        let mut fresh = server.raw();
        assert_eq!(fresh.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
        assert_eq!(fresh.cmds("SET fresh 1"), Resp::Simple(b"OK".to_vec()));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{shards} shard(s): a new client waited {:?} with {IDLE} idle ones",
            t.elapsed()
        );
        assert!(
            eventually(Duration::from_secs(10), || {
                info_field(&mut fresh, "connected_clients") == IDLE as u64 + 2
            }),
            "{shards} shard(s): connected_clients {} (connecting took {connect_time:?})",
            info_field(&mut fresh, "connected_clients")
        );
        witness.check(&mut server, "10,000 idle connections");
        drop(idle);
        drop(witness);
        assert!(
            eventually(Duration::from_secs(10), || {
                info_field(&mut fresh, "connected_clients") == 1
            }),
            "{shards} shard(s): connected_clients stays at {} after closing every other client",
            info_field(&mut fresh, "connected_clients")
        );
        assert_eq!(fresh.cmds("GET fresh"), Resp::bulk("1"));
    }
}

/// A client that pipelines GETs of a 10 KB value and never reads the replies.
struct Flooder {
    stream: TcpStream,
    id: i64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Flooder {
    fn start(server: &Server) -> Flooder {
        let mut raw = server.raw();
        let id = raw.cmds("CLIENT ID").int();
        let stream = raw.stream.try_clone().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut w = stream.try_clone().unwrap();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            // 200k GETs, written until the server stops reading (or we are told to stop).
            let one = encode(&["GET", "big"]);
            let batch: Vec<u8> = one.repeat(2000);
            w.set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut sent = 0usize;
            'outer: for _ in 0..100 {
                let mut off = 0;
                while off < batch.len() {
                    if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                        break 'outer;
                    }
                    match w.write(&batch[off..]) {
                        Ok(n) => off += n,
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(_) => break 'outer,
                    }
                }
                sent += 2000;
            }
            sent
        });
        Flooder {
            stream,
            id,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
fn a_client_that_never_reads_is_contained_and_can_be_killed() {
    for shards in [1, 4] {
        let mut server = Server::percore(shards, &[]);
        let pid = server.child.id();
        let mut witness = Witness::new(&server);
        let mut probe = server.raw();
        assert_eq!(
            probe.cmd(&["SET", "big", &"b".repeat(10 * 1024)]),
            Resp::Simple(b"OK".to_vec())
        );
        let base_rss = rss(pid);
        for how in ["CLIENT KILL", "socket close"] {
            let mut flooder = Flooder::start(&server);
            // Let the flood fill every buffer on the way.
            std::thread::sleep(Duration::from_millis(1500));
            for _ in 0..5 {
                let t = Instant::now();
                assert_eq!(probe.cmds("PING"), Resp::Simple(b"PONG".to_vec()));
                assert!(
                    t.elapsed() < Duration::from_secs(1),
                    "{shards} shard(s): PING took {:?} next to a flooding client",
                    t.elapsed()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            witness.check(&mut server, "a client that never reads");
            let grown = rss(pid).saturating_sub(base_rss);
            assert!(
                grown < 64 * MB,
                "{shards} shard(s): RSS grew by {} MiB for a client that does not read",
                grown / MB
            );
            // Witness, probe and flooder (the witness's fresh client may still be closing).
            assert!(eventually(Duration::from_secs(5), || {
                info_field(&mut probe, "connected_clients") == 3
            }));
            if how == "CLIENT KILL" {
                assert_eq!(
                    probe.cmd(&["CLIENT", "KILL", "ID", &flooder.id.to_string()]),
                    Resp::Int(1)
                );
                flooder.stop();
            } else {
                flooder.stop();
                let _ = flooder.stream.shutdown(Shutdown::Both);
                drop(flooder);
            }
            assert!(
                eventually(Duration::from_secs(5), || {
                    info_field(&mut probe, "connected_clients") == 2
                }),
                "{shards} shard(s): the flooding client was not released after {how}"
            );
            witness.check(&mut server, how);
        }
    }
}

#[test]
fn unauthenticated_limits_match_redis() {
    let pass = ["--requirepass", "secret"];
    let redis = Server::redis(&pass);
    let servers = [Server::percore(1, &pass), Server::percore(4, &pass)];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("multibulk of 20 unauthenticated", b"*20\r\n".to_vec()),
        (
            "multibulk of 11 unauthenticated",
            b"*11\r\n$4\r\nPING\r\n".to_vec(),
        ),
        (
            "bulk of 20000 unauthenticated",
            b"*2\r\n$4\r\nAUTH\r\n$20000\r\n".to_vec(),
        ),
        ("bulk of 16384 is fine", {
            let mut v = b"*2\r\n$4\r\nECHO\r\n$16384\r\n".to_vec();
            v.extend(std::iter::repeat_n(b'e', 16384));
            v.extend_from_slice(b"\r\nPING\r\n");
            v
        }),
        (
            "AUTH lifts the limits for the commands after it in the same buffer",
            {
                let mut v = b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n*12\r\n$4\r\nMSET".to_vec();
                for i in 0..11 {
                    v.extend_from_slice(format!("\r\n$1\r\n{}", i % 10).as_bytes());
                }
                v.extend_from_slice(b"\r\n*2\r\n$4\r\nECHO\r\n$20000\r\n");
                v.extend(std::iter::repeat_n(b'z', 20000));
                v.extend_from_slice(b"\r\n");
                v
            },
        ),
        (
            "wrong password then too many",
            b"AUTH nope\r\n*30\r\n".to_vec(),
        ),
    ];
    for (name, input) in &cases {
        let want = exchange(redis.port, input, Duration::from_millis(300));
        for s in &servers {
            let got = exchange(s.port, input, Duration::from_millis(300));
            assert_eq!(
                got.shown(),
                want.shown(),
                "case {name:?}: percore differs from redis"
            );
        }
    }
}
