//! Test harness shared by the integration tests: start percore and redis-server
//! on free loopback ports, talk raw RESP to them, and compare their replies.
#![allow(dead_code)]

pub mod persist;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A free TCP port on 127.0.0.1 for a server to listen on, outside the
/// kernel's ephemeral range: a port the OS hands out for `bind(0)` can be
/// taken by any parallel test's client socket before the server binds it
/// ("Address already in use"). Ports are spread by process id and never
/// handed out twice by one process.
pub fn free_port() -> u16 {
    static NEXT_PORT: AtomicUsize = AtomicUsize::new(0);
    static RANGE: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    let &(lo, span) = RANGE.get_or_init(|| {
        let (eph_lo, eph_hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|t| {
                let mut it = t.split_whitespace().map(|x| x.parse::<usize>().ok());
                Some((it.next()??, it.next()??))
            })
            .unwrap_or((32768, 60999));
        let below = eph_lo.saturating_sub(10_000);
        let above = 65_535usize.saturating_sub(eph_hi);
        let (lo, span) = if below >= above {
            (10_000, below)
        } else {
            (eph_hi + 1, above)
        };
        let start = (std::process::id() as usize).wrapping_mul(7919) % span.max(1);
        NEXT_PORT.store(start, Ordering::Relaxed);
        (lo, span.max(1))
    });
    for _ in 0..span {
        let port = (lo + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// The shard percore routes `key` to when it runs `shards` shards.
pub fn shard_of(key: &str, shards: usize) -> usize {
    percore::server::exec::shard_of_key(key.as_bytes(), shards)
}

/// One key `<prefix><i>` on each of `shards` shards, in shard order.
pub fn one_per_shard(prefix: &str, shards: usize) -> Vec<String> {
    let mut out: Vec<Option<String>> = vec![None; shards];
    let mut i = 0;
    while out.iter().any(|o| o.is_none()) {
        let k = format!("{prefix}{i}");
        let s = shard_of(&k, shards);
        if out[s].is_none() {
            out[s] = Some(k);
        }
        i += 1;
    }
    out.into_iter().flatten().collect()
}

/// A scratch directory for one server, removed when the server is dropped.
fn scratch_dir(tag: &str) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("percore-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// Which server a `Server` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// percore, the binary under test.
    Percore,
    /// Debian's redis-server, the reference.
    Redis,
}

/// A running server process on a loopback port.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its port.
    pub port: u16,
    /// Its working directory.
    pub dir: PathBuf,
    /// Which server.
    pub kind: Kind,
}

impl Server {
    /// Starts percore with `shards` shards and extra `--directive value` arguments.
    pub fn percore(shards: usize, extra: &[&str]) -> Server {
        Server::start(Kind::Percore, |port, dir| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_percore"));
            cmd.arg("--port")
                .arg(port.to_string())
                .arg("--shards")
                .arg(shards.to_string())
                .arg("--enable-debug-command")
                .arg("yes")
                .args(extra);
            cmd.current_dir(dir);
            cmd
        })
    }

    /// Starts Debian's redis-server (7.0) with persistence off and extra arguments.
    pub fn redis(extra: &[&str]) -> Server {
        Server::start(Kind::Redis, |port, dir| {
            let mut cmd = Command::new("redis-server");
            cmd.arg("--port")
                .arg(port.to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--save")
                .arg("")
                .arg("--appendonly")
                .arg("no")
                .arg("--enable-debug-command")
                .arg("yes")
                .args(extra);
            cmd.current_dir(dir);
            cmd
        })
    }

    /// Starts a server on a free port and waits until it answers PING. A
    /// server that exits at once (another process took the port between
    /// `free_port` and its bind) is started again on another port.
    fn start(kind: Kind, command: impl Fn(u16, &PathBuf) -> Command) -> Server {
        let tag = match kind {
            Kind::Percore => "percore",
            Kind::Redis => "redis",
        };
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = scratch_dir(tag);
            let file =
                |name: &str| Stdio::from(std::fs::File::create(dir.join(name)).expect("log file"));
            let child = command(port, &dir)
                .stdout(file("percore.log"))
                .stderr(file("percore.err"))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "start {tag}: {e} (run scripts/test.sh, which installs Debian's redis-server)"
                    )
                });
            let mut s = Server {
                child,
                port,
                dir,
                kind,
            };
            match s.wait_ready() {
                Ok(()) => return s,
                Err(e) => failures.push(e),
            }
        }
        panic!("{tag} did not start: {}", failures.join("\n"));
    }

    /// Waits until the server answers PING; Err with its log if it exited
    /// (or did not answer in 20 s, which also stops it).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut c) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                if c.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 64];
                    if let Ok(n) = c.read(&mut buf) {
                        if n > 0 {
                            return Ok(());
                        }
                    }
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "port {}: exited with {status}; log: {}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "port {}: no reply to PING in 20 s; log: {}",
            self.port,
            self.log()
        ))
    }

    /// A new raw RESP connection.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    /// A client of the `redis` crate.
    pub fn client(&self) -> redis::Connection {
        let c = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("url");
        let conn = c.get_connection().expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        conn
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's log output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("percore.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.dir.join("percore.err")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A parsed reply, RESP2 or RESP3, keeping every detail a client could see.
#[derive(Clone, Debug, PartialEq)]
pub enum Resp {
    /// `+...`
    Simple(Vec<u8>),
    /// `-...`
    Error(Vec<u8>),
    /// `:n`
    Int(i64),
    /// `$n` (None for `$-1`)
    Bulk(Option<Vec<u8>>),
    /// `*n` (None for `*-1`)
    Array(Option<Vec<Resp>>),
    /// `%n`
    Map(Vec<(Resp, Resp)>),
    /// `~n`
    Set(Vec<Resp>),
    /// `>n`
    Push(Vec<Resp>),
    /// `_`
    Null,
    /// `,x` (kept as text: formatting must match)
    Double(Vec<u8>),
    /// `#t`/`#f`
    Bool(bool),
    /// `=n` with its format
    Verbatim(Vec<u8>),
    /// `(n`
    BigNum(Vec<u8>),
}

impl Resp {
    /// Shorthand for a bulk string reply.
    pub fn bulk(s: &str) -> Resp {
        Resp::Bulk(Some(s.as_bytes().to_vec()))
    }

    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Resp::Error(_))
    }

    /// The array's elements (panics otherwise).
    pub fn items(&self) -> &[Resp] {
        match self {
            Resp::Array(Some(v)) | Resp::Set(v) | Resp::Push(v) => v,
            other => panic!("not an array: {other:?}"),
        }
    }

    /// The bulk/simple string's bytes as text (panics otherwise).
    pub fn text(&self) -> String {
        match self {
            Resp::Bulk(Some(b)) | Resp::Simple(b) | Resp::Verbatim(b) | Resp::Error(b) => {
                String::from_utf8_lossy(b).into_owned()
            }
            other => panic!("not a string: {other:?}"),
        }
    }

    /// The integer (panics otherwise).
    pub fn int(&self) -> i64 {
        match self {
            Resp::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    /// The same reply with every aggregate's elements sorted (for unordered comparisons).
    pub fn sorted(&self) -> Resp {
        fn key(r: &Resp) -> String {
            format!("{r:?}")
        }
        match self {
            Resp::Array(Some(v)) => {
                let mut v: Vec<Resp> = v.iter().map(|r| r.sorted()).collect();
                v.sort_by_key(key);
                Resp::Array(Some(v))
            }
            Resp::Set(v) => {
                let mut v: Vec<Resp> = v.iter().map(|r| r.sorted()).collect();
                v.sort_by_key(key);
                Resp::Set(v)
            }
            Resp::Map(v) => {
                let mut v: Vec<(Resp, Resp)> =
                    v.iter().map(|(a, b)| (a.sorted(), b.sorted())).collect();
                v.sort_by_key(|(a, _)| key(a));
                Resp::Map(v)
            }
            other => other.clone(),
        }
    }
}

/// A raw RESP connection with a reply parser.
pub struct Raw {
    /// The socket's read half (buffered).
    pub reader: BufReader<TcpStream>,
    /// The socket.
    pub stream: TcpStream,
}

impl Raw {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let _ = stream.set_nodelay(true);
        Raw {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            stream,
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends one command as a multibulk request.
    pub fn send_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.send(&encode(args));
    }

    /// Sends a command and reads its reply.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Resp {
        self.send_cmd(args);
        self.read()
    }

    /// Sends a command given as a space-separated string (no quoting) and reads its reply.
    pub fn cmds(&mut self, line: &str) -> Resp {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.cmd(&args)
    }

    /// Reads one reply.
    pub fn read(&mut self) -> Resp {
        read_resp(&mut self.reader).expect("read a reply")
    }

    /// Reads one reply, or None on EOF/timeout/error.
    pub fn try_read(&mut self) -> Option<Resp> {
        read_resp(&mut self.reader).ok()
    }

    /// True when the server closed the connection (reads EOF within `wait`).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(wait));
        let mut b = [0u8; 1];
        let r = matches!(self.reader.read(&mut b), Ok(0));
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(30)));
        r
    }
}

/// Encodes a command as a RESP multibulk request.
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn read_line<R: BufRead>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if line.ends_with(b"\r\n") {
        line.truncate(line.len() - 2);
    }
    Ok(line)
}

fn num(b: &[u8]) -> i64 {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad number in reply: {:?}", String::from_utf8_lossy(b)))
}

/// Parses one reply from `r`.
pub fn read_resp<R: BufRead>(r: &mut R) -> std::io::Result<Resp> {
    let line = read_line(r)?;
    let (t, rest) = (line[0], &line[1..]);
    let read_n = |r: &mut R, n: i64| -> std::io::Result<Vec<Resp>> {
        (0..n).map(|_| read_resp(r)).collect()
    };
    Ok(match t {
        b'+' => Resp::Simple(rest.to_vec()),
        b'-' => Resp::Error(rest.to_vec()),
        b':' => Resp::Int(num(rest)),
        b'$' | b'=' => {
            let n = num(rest);
            if n < 0 {
                Resp::Bulk(None)
            } else {
                let mut b = vec![0u8; n as usize + 2];
                r.read_exact(&mut b)?;
                b.truncate(n as usize);
                if t == b'=' {
                    Resp::Verbatim(b)
                } else {
                    Resp::Bulk(Some(b))
                }
            }
        }
        b'*' => {
            let n = num(rest);
            if n < 0 {
                Resp::Array(None)
            } else {
                Resp::Array(Some(read_n(r, n)?))
            }
        }
        b'~' => Resp::Set(read_n(r, num(rest))?),
        b'>' => Resp::Push(read_n(r, num(rest))?),
        b'%' => {
            let n = num(rest);
            let mut v = Vec::new();
            for _ in 0..n {
                let k = read_resp(r)?;
                let val = read_resp(r)?;
                v.push((k, val));
            }
            Resp::Map(v)
        }
        b'_' => Resp::Null,
        b',' => Resp::Double(rest.to_vec()),
        b'#' => Resp::Bool(rest == b"t"),
        b'(' => Resp::BigNum(rest.to_vec()),
        other => panic!("unexpected reply type byte {:?}", other as char),
    })
}

/// Splits a command line like redis-cli does: words separated by blanks, `"..."` quoted
/// with `\"`, `\\`, `\r`, `\n`, `\0` and `\xHH` escapes (so empty strings, spaces and
/// binary bytes can be written in scripts).
pub fn words(line: &str) -> Vec<Vec<u8>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut w = Vec::new();
        if b[i] == b'"' {
            i += 1;
            while b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                    match b[i] {
                        b'r' => w.push(b'\r'),
                        b'n' => w.push(b'\n'),
                        b'0' => w.push(0),
                        b'x' => {
                            let h = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex");
                            w.push(u8::from_str_radix(h, 16).expect("hex escape"));
                            i += 2;
                        }
                        c => w.push(c),
                    }
                } else {
                    w.push(b[i]);
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                w.push(b[i]);
                i += 1;
            }
        }
        out.push(w);
    }
    out
}

/// How two replies are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// Byte for byte (after parsing).
    Exact,
    /// Aggregates compared as multisets (KEYS, SMEMBERS...).
    Unordered,
    /// Only the reply type and error-ness must match (random or time-dependent values).
    TypeOnly,
}

/// The same commands against redis-server and percore, replies compared.
pub struct Diff {
    /// Connection to redis-server.
    pub redis: Raw,
    /// Connection to percore.
    pub percore: Raw,
    /// Commands run so far (for failure messages).
    pub log: Vec<String>,
}

impl Diff {
    /// Connects to both servers.
    pub fn new(redis: &Server, percore: &Server) -> Diff {
        Diff {
            redis: redis.raw(),
            percore: percore.raw(),
            log: Vec::new(),
        }
    }

    /// Runs `args` on both and compares with `cmp`; returns percore's reply.
    pub fn run<A: AsRef<[u8]>>(&mut self, cmp: Cmp, args: &[A]) -> Resp {
        let shown: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
            .collect();
        self.log.push(shown.join(" "));
        let a = self.redis.cmd(args);
        let b = self.percore.cmd(args);
        let same = match cmp {
            Cmp::Exact => a == b,
            Cmp::Unordered => a.sorted() == b.sorted(),
            Cmp::TypeOnly => std::mem::discriminant(&a) == std::mem::discriminant(&b),
        };
        if !same {
            let tail: Vec<&String> = self.log.iter().rev().take(12).rev().collect();
            panic!(
                "replies differ for {:?}\n  redis:   {:?}\n  percore: {:?}\n  recent commands: {:#?}",
                shown, a, b, tail
            );
        }
        b
    }

    /// Exact comparison of a command given as args.
    pub fn check<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Resp {
        self.run(Cmp::Exact, args)
    }

    /// Exact comparison of a space-separated command line (no quoting).
    pub fn line(&mut self, line: &str) -> Resp {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.run(Cmp::Exact, &args)
    }

    /// Unordered comparison of a space-separated command line.
    pub fn line_unordered(&mut self, line: &str) -> Resp {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.run(Cmp::Unordered, &args)
    }

    /// Exact comparison of a command line with redis-cli quoting (see [`words`]).
    pub fn quoted(&mut self, line: &str) -> Resp {
        self.check(&words(line))
    }

    /// Runs each line of a script with redis-cli quoting (blank lines and `#` comments
    /// skipped), exactly compared.
    pub fn quoted_script(&mut self, text: &str) {
        for l in text.lines().map(str::trim) {
            if !l.is_empty() && !l.starts_with('#') {
                self.quoted(l);
            }
        }
    }

    /// Runs each line of a script (blank lines and `#` comments skipped), exactly compared.
    pub fn script(&mut self, text: &str) {
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            self.line(l);
        }
    }
}

/// A small deterministic PRNG for randomized tests (seed printed on failure by callers).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
