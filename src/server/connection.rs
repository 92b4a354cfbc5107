//! One client connection: read, parse a pipelined batch, route it to shards, write the replies.
//!
//! The path of a batch is a straight line:
//!
//! 1. read into the connection's buffer and parse every complete command
//!    (argument slices of the buffer, argv arrays in a per-batch arena);
//! 2. cut the batch into *segments*: runs of commands that can execute
//!    independently (single-shard data commands and stateless connection
//!    commands), separated by *barriers* (commands that change connection
//!    state, or span several shards, or touch the whole server);
//! 3. per segment, send ONE message to every other shard that has commands
//!    in it, run the local ones inline meanwhile, then collect replies in
//!    request order;
//! 4. run each barrier alone, in order;
//! 5. write every reply of the batch with one write.

use std::rc::Rc;
use std::time::Instant;

use bumpalo::Bump;
use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use futures::future::{select, Either};
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use smallvec::SmallVec;

use super::blocking::Blocked;
use super::client::{Client, ReplyMode};
use super::core::{now_ms, BatchReply, BatchReq, Core, RemoteCmd};
use super::exec;
use crate::commands::{errors, CommandTable, ConnCtx, Exec, Lookup, MultiCtx};
use crate::protocol::parser::{Arg, Limits, RespParser};
use crate::protocol::reply::ReplyBuf;

/// The commands of one batch bound for one remote shard: argument ranges and commands.
type RemoteBatch = (Vec<Arg>, Vec<RemoteCmd>);

/// Size of one read.
const READ_CHUNK: usize = 16 * 1024;
/// The most the query buffer grows by at once while a big argument arrives.
const MAX_GROWTH: usize = 64 * 1024 * 1024;

/// Serves one accepted connection until it closes.
pub async fn serve(core: Rc<Core>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (addr, laddr) = match (stream.peer_addr(), stream.local_addr()) {
        (Ok(a), Ok(l)) => (a, l),
        _ => {
            super::CONNECTED.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let (client, kill_rx) = register(&core, fd, addr, laddr);
    serve_registered(core, stream, client, kill_rx).await;
}

/// Registers a new connection's client on this core (CLIENT LIST sees it from now on).
pub fn register(
    core: &Rc<Core>,
    fd: i32,
    addr: std::net::SocketAddr,
    laddr: std::net::SocketAddr,
) -> (Rc<Client>, oneshot::Receiver<()>) {
    let authenticated = core.config.borrow().requirepass.is_none();
    let (client, kill_rx) = Client::new(addr, laddr, fd, now_ms(), authenticated);
    core.clients.borrow_mut().add(client.clone());
    (client, kill_rx)
}

/// Serves a connection registered by [`register`] until it closes.
pub async fn serve_registered(
    core: Rc<Core>,
    stream: TcpStream,
    client: Rc<Client>,
    kill_rx: oneshot::Receiver<()>,
) {
    let mut conn = Connection {
        core: core.clone(),
        client: client.clone(),
        stream,
        rbuf: BytesMut::new(),
        filled: 0,
        wbuf: ReplyBuf::default(),
        parser: RespParser::new(),
        arg_scratch: Vec::new(),
        target_scratch: Vec::new(),
        lookup_memo: Default::default(),
        kill_rx,
        read_while_blocked: false,
    };
    conn.run().await;
    client.idle.set(false);
    // The waker refers to this task: no cycle through the client outlives it.
    client.busy_io.borrow_mut().waker = None;
    super::tx::reset_client(&core, client.id);
    core.clients.borrow_mut().remove(client.id);
    super::CONNECTED.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

struct Connection {
    core: Rc<Core>,
    client: Rc<Client>,
    stream: TcpStream,
    /// The query buffer: `filled` bytes received, then zeroed room for the next read
    /// (kept across reads so that no byte is zeroed twice).
    rbuf: BytesMut,
    filled: usize,
    wbuf: ReplyBuf,
    parser: RespParser,
    /// Argument ranges of the batch being run (kept to reuse its allocation).
    arg_scratch: Vec<SmallVec<[Arg; 4]>>,
    /// Where each command of the segment being run goes (kept to reuse its allocation).
    target_scratch: Vec<Target>,
    /// The connection's last command lookup (see `LookupMemo`).
    lookup_memo: crate::commands::LookupMemo,
    kill_rx: oneshot::Receiver<()>,
    /// Bytes arrived while a command was blocked: parse again before reading more.
    read_while_blocked: bool,
}

/// Where one command of a segment runs.
#[derive(Clone, Copy)]
enum Target {
    /// An error reply decided before running (unknown command, arity, auth).
    Reject(Reject),
    /// A connection-level command run on this core.
    Conn(&'static crate::commands::Command),
    /// A shard command for this core's shard.
    Local(&'static crate::commands::Command),
    /// A shard command for another shard; the index of its reply in that shard's batch.
    Remote(usize, usize, &'static crate::commands::Command),
    /// Inside MULTI: queued for EXEC.
    Queue(&'static crate::commands::Command),
}

/// Why a command is refused before it runs.
#[derive(Clone, Copy)]
pub(super) enum Reject {
    Unknown,
    UnknownSubcommand,
    Arity(&'static crate::commands::Command),
    NoAuth(&'static crate::commands::Command),
    /// DEBUG while enable-debug-command does not allow it.
    Protected(&'static crate::commands::Command),
    /// A script runs past busy-reply-threshold (scripting).
    Busy(&'static crate::commands::Command),
}

/// What ends a segment.
enum Barrier {
    Conn(&'static crate::commands::Command),
    Multi(&'static crate::commands::Command, crate::commands::MultiFn),
    /// `POST` or `Host:`: an HTTP request sent to us (cross protocol scripting).
    Attack,
}

/// Redis's processCommand check: `POST` and `Host:` are HTTP, not commands.
pub(super) fn is_cross_protocol_attack(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"host:") || name.eq_ignore_ascii_case(b"post")
}

/// Unix seconds of the last security warning: Redis logs it at most once a minute.
static ATTACK_LOGGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Connection {
    async fn run(&mut self) {
        let bump = Bump::new();
        let mut bump = bump;
        loop {
            // Parse and run everything buffered (unauthenticated clients get
            // one command per parse: AUTH must lift the limits before the next).
            loop {
                let authenticated = !self.auth_required();
                let limits = Limits {
                    proto_max_bulk_len: self.core.config.borrow().proto_max_bulk_len,
                    authenticated,
                };
                let parsed = self.parser.parse(&mut self.rbuf[..self.filled], &limits);
                let n = self.parser.len();
                if n > 0 {
                    let consumed = self.parser.consumed();
                    let batch = self.rbuf.split_to(consumed).freeze();
                    self.filled -= consumed;
                    // Reused across batches: no allocation per batch for it.
                    let mut args = std::mem::take(&mut self.arg_scratch);
                    args.extend((0..n).map(|i| self.parser.command(i).into()));
                    self.parser.clear_complete();
                    self.run_batch(&bump, &batch, &args).await;
                    args.clear();
                    self.arg_scratch = args;
                    bump.reset();
                    drop(batch);
                } else if self.parser.consumed() > 0 {
                    // Only skipped empty commands.
                    let c = self.parser.consumed();
                    let _ = self.rbuf.split_to(c);
                    self.filled -= c;
                    self.parser.clear_complete();
                }
                // Redis parses and runs one command at a time: a command that
                // closes the connection (QUIT, POST...) means the bad bytes after
                // it are never looked at.
                let closing = self.client.close_after_reply.get() || self.client.killed.get();
                if let (Err(e), false) = (parsed, closing) {
                    // CLIENT REPLY OFF/SKIP silence the error too, as in Redis.
                    // (Redis then never closes the connection, having no reply to
                    // close after; we still close it: it cannot be used again.)
                    let mode = self.client.info.borrow().reply_mode;
                    if !matches!(mode, ReplyMode::Off | ReplyMode::Skip) {
                        self.wbuf.buf.extend_from_slice(b"-ERR ");
                        self.wbuf.buf.extend_from_slice(&e.wire_bytes());
                        self.wbuf.buf.extend_from_slice(b"\r\n");
                    }
                    self.core.count_error("ERR");
                    self.client.close_after_reply.set(true);
                }
                if self.client.close_after_reply.get()
                    || self.client.killed.get()
                    || n == 0
                    || (authenticated && !std::mem::take(&mut self.read_while_blocked))
                {
                    break;
                }
            }
            if !self.flush().await {
                return;
            }
            if self.client.close_after_reply.get() || self.client.killed.get() {
                return;
            }
            self.shrink_query_buffer();
            // With nothing buffered nor pending, a busy script's hook may serve
            // this connection while the task waits (see `super::busy`).
            let idle = self.filled == 0;
            if !self.read(idle).await {
                return;
            }
            // Checked right after the read, before anything in it runs, as Redis does.
            let limit = self.core.config.borrow().client_query_buffer_limit as usize;
            if self.filled > limit {
                super::log::warning(&format!(
                    "Closing client that reached max query buffer length: {} (qbuf initial bytes: {})",
                    self.client.describe(now_ms()),
                    repr(&self.rbuf[..self.filled.min(64)])
                ));
                // As Redis (freeClientAsync): closed without a reply.
                return;
            }
        }
    }

    /// Gives back the room a big argument left once it has been processed
    /// (Redis resizes such query buffers in its client cron).
    fn shrink_query_buffer(&mut self) {
        if self.rbuf.len() > 4 * READ_CHUNK
            && self.filled < READ_CHUNK
            && self.parser.needed_len().is_none()
        {
            let mut fresh = BytesMut::with_capacity(READ_CHUNK);
            fresh.extend_from_slice(&self.rbuf[..self.filled]);
            self.rbuf = fresh;
        }
    }

    /// Reads more bytes; false when the connection is closed or killed.
    ///
    /// `idle`: nothing is buffered and every reply was written, so a busy
    /// script's hook may answer this connection while it waits; what the hook
    /// left (see `super::busy`) comes before anything read from the socket.
    async fn read(&mut self, idle: bool) -> bool {
        loop {
            if let Some(alive) = self.take_busy_io().await {
                return alive;
            }
            let start = self.filled;
            // Room for one chunk; while a big argument's payload is awaited, as
            // much again as is buffered, up to what is missing: never the declared
            // length at once, which may never arrive (proto-max-bulk-len can be GiBs).
            let room = match self.parser.needed_len() {
                Some(n) if n > start => (n - start).min(start).clamp(READ_CHUNK, MAX_GROWTH),
                _ => READ_CHUNK,
            };
            if self.rbuf.len() < start + room {
                // Zeroes only the new part: the room left by earlier reads is reused.
                self.rbuf.resize(start + room, 0);
            }
            let client = self.client.clone();
            client.idle.set(idle);
            let res = {
                // Polled before the socket: bytes the hook took were sent before any still there.
                let hook = futures::future::poll_fn(|cx| busy_io_ready(&client, cx));
                let read = self.stream.read(&mut self.rbuf[start..]);
                match select(select(hook, read), &mut self.kill_rx).await {
                    Either::Left((Either::Left(_), _)) => None,
                    Either::Left((Either::Right((r, _)), _)) => Some(r),
                    Either::Right(_) => Some(Ok(0)),
                }
            };
            client.idle.set(false);
            let Some(res) = res else { continue };
            return match res {
                Ok(0) | Err(_) => false,
                Ok(n) => {
                    self.filled = start + n;
                    self.note_read(n);
                    true
                }
            };
        }
    }

    /// Counts `n` bytes just read (stats, CLIENT LIST qbuf, idle time).
    fn note_read(&mut self, n: usize) {
        // Redis counts reading a query as interaction (CLIENT LIST idle, timeout).
        self.client.info.borrow_mut().last_interaction_ms = now_ms();
        let mut st = self.core.stats.borrow_mut();
        st.net_input_bytes += n as u64;
        let mut info = self.client.info.borrow_mut();
        info.qbuf = self.filled;
        info.qbuf_free = self.rbuf.capacity() - self.filled;
    }

    /// Takes over what a busy script's hook left: writes its unsent replies,
    /// then appends the bytes it read to the query buffer. None when it left
    /// nothing to parse; Some(false) when the connection is gone or must close.
    async fn take_busy_io(&mut self) -> Option<bool> {
        let (input, output) = {
            let mut io = self.client.busy_io.borrow_mut();
            if !io.pending() {
                return None;
            }
            io.stalled = false;
            (
                std::mem::take(&mut io.input),
                std::mem::take(&mut io.output),
            )
        };
        if !output.is_empty() {
            // wbuf is empty here: every reply before the hook's was written.
            self.wbuf.buf.extend_from_slice(&output);
            if !self.flush().await {
                return Some(false);
            }
        }
        // QUIT or SHUTDOWN answered by the hook.
        if self.client.close_after_reply.get() || self.client.killed.get() {
            return Some(false);
        }
        if input.is_empty() {
            return None;
        }
        let start = self.filled;
        if self.rbuf.len() < start + input.len() {
            self.rbuf.resize(start + input.len(), 0);
        }
        self.rbuf[start..start + input.len()].copy_from_slice(&input);
        self.filled = start + input.len();
        // The hook counted these bytes as read already.
        self.note_read(0);
        Some(true)
    }

    /// Writes the pending replies; false when the connection is gone.
    async fn flush(&mut self) -> bool {
        if self.wbuf.buf.is_empty() {
            return true;
        }
        // appendfsync always: the replies leave once the writes they acknowledge are durable.
        crate::persistence::aof::wait_durable(&self.core).await;
        self.client.info.borrow_mut().omem = self.wbuf.buf.len();
        let res = {
            let write = self.stream.write_all(&self.wbuf.buf);
            match select(write, &mut self.kill_rx).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => Err(std::io::ErrorKind::ConnectionAborted.into()),
            }
        };
        self.core.stats.borrow_mut().net_output_bytes += self.wbuf.buf.len() as u64;
        self.client.info.borrow_mut().omem = 0;
        self.wbuf.buf.clear();
        if self.wbuf.buf.capacity() > 1 << 20 {
            self.wbuf.buf = Vec::new();
        }
        res.is_ok()
    }

    /// Runs one parsed batch; replies are appended to `wbuf` in request order.
    async fn run_batch(&mut self, bump: &Bump, buf: &Bytes, args: &[SmallVec<[Arg; 4]>]) {
        let argvs: &[&[&[u8]]] = bump.alloc_slice_fill_iter(
            args.iter()
                .map(|a| &*bump.alloc_slice_fill_iter(a.iter().map(|x| &buf[x.range()]))),
        );
        let table = CommandTable::get();
        let mut i = 0;
        let n = argvs.len();
        let mut targets = std::mem::take(&mut self.target_scratch);
        while i < n {
            if self.client.close_after_reply.get() || self.client.killed.get() {
                return;
            }
            // 1. Classify commands until a barrier.
            targets.clear();
            let (db, proto) = {
                let info = self.client.info.borrow();
                (info.db, info.proto)
            };
            let authenticated = !self.auth_required();
            let in_multi = super::tx::in_multi(&self.core, self.client.id);
            // One slot per shard, made when a command first goes to another shard.
            let mut remote: SmallVec<[Option<RemoteBatch>; 8]> = SmallVec::new();
            let mut barrier = None;
            let mut j = i;
            while j < n {
                let argv = argvs[j];
                if is_cross_protocol_attack(argv[0]) {
                    barrier = Some(Barrier::Attack);
                    break;
                }
                let t = match table.lookup_memo(&mut self.lookup_memo, argv) {
                    Lookup::Unknown => Target::Reject(Reject::Unknown),
                    Lookup::UnknownSubcommand => Target::Reject(Reject::UnknownSubcommand),
                    Lookup::WrongArity(c) => Target::Reject(Reject::Arity(c)),
                    Lookup::Found(cmd) => {
                        // As processCommand: protected commands (DEBUG is the only one
                        // percore has; 7.0's metadata does not carry the flag) are
                        // checked before auth.
                        if cmd.name == "debug"
                            && !crate::commands::server::debug_allowed(&self.core, &self.client)
                        {
                            Target::Reject(Reject::Protected(cmd))
                        } else if !authenticated
                            && !cmd
                                .flags()
                                .contains(crate::commands::spec::CmdFlags::NO_AUTH)
                        {
                            Target::Reject(Reject::NoAuth(cmd))
                        } else if crate::scripting::refuse_busy(cmd) {
                            Target::Reject(Reject::Busy(cmd))
                        } else if in_multi && !super::tx::runs_in_multi(cmd) {
                            Target::Queue(cmd)
                        } else {
                            match cmd.exec {
                                Exec::Conn(_) => Target::Conn(cmd),
                                Exec::ConnBarrier(_) => {
                                    barrier = Some(Barrier::Conn(cmd));
                                    break;
                                }
                                Exec::Multi(f) => {
                                    barrier = Some(Barrier::Multi(cmd, f));
                                    break;
                                }
                                Exec::Container => Target::Reject(Reject::UnknownSubcommand),
                                Exec::Shard(_) | Exec::Keys(..) => {
                                    match exec::route(&self.core, cmd, argv) {
                                        Some(s) if s == self.core.id => Target::Local(cmd),
                                        Some(s) => {
                                            if remote.is_empty() {
                                                let n = self.core.nshards;
                                                remote.extend((0..n).map(|_| None));
                                            }
                                            let (a, c) = remote[s]
                                                .get_or_insert_with(|| (Vec::new(), Vec::new()));
                                            c.push(RemoteCmd {
                                                cmd: cmd.id,
                                                arg_start: a.len() as u32,
                                                argc: argv.len() as u32,
                                            });
                                            a.extend_from_slice(&args[j]);
                                            Target::Remote(s, c.len() - 1, cmd)
                                        }
                                        None => match cmd.exec {
                                            Exec::Keys(_, f) => {
                                                barrier = Some(Barrier::Multi(cmd, f));
                                                break;
                                            }
                                            _ => Target::Local(cmd),
                                        },
                                    }
                                }
                            }
                        }
                    }
                };
                // A refused EXEC discards the transaction (rejectCommand): the
                // commands after it are classified outside MULTI, in a new segment.
                let ends_multi = in_multi
                    && matches!(t, Target::Reject(_))
                    && command_of(&t).is_some_and(|c| c.name == "exec");
                targets.push(t);
                j += 1;
                if ends_multi {
                    break;
                }
            }

            // 2. One message per remote shard.
            let mut waits: Vec<(usize, oneshot::Receiver<BatchReply>)> = Vec::new();
            for (s, r) in remote.iter_mut().enumerate() {
                if let Some((a, c)) = r.take() {
                    let (tx, rx) = oneshot::channel();
                    let req = BatchReq {
                        buf: buf.clone(),
                        args: a,
                        cmds: c,
                        db,
                        proto,
                        reply: tx,
                    };
                    self.core.send_batch(s, req).await;
                    waits.push((s, rx));
                }
            }

            // 3. Local commands inline, in order: straight into wbuf when no
            // remote reply precedes them, else into a side buffer.
            let now = now_ms();
            let deferred = !waits.is_empty();
            let mut side = ReplyBuf::new(proto);
            let mut side_ends: Vec<usize> = Vec::new();
            let mut lap = exec::Lap::start();
            for (k, t) in targets.iter().enumerate() {
                let argv = argvs[i + k];
                if k % exec::PREFETCH_WINDOW == 0 && targets.len() > 1 {
                    let end = (k + exec::PREFETCH_WINDOW).min(targets.len());
                    let window = targets[k..end].iter().zip(&argvs[i + k..i + end]);
                    exec::prefetch_keys(
                        &self.core.shard.borrow(),
                        db,
                        window.filter_map(|(t, a)| match *t {
                            Target::Local(c) => Some(a[exec::first_key(c, a.len())?]),
                            _ => None,
                        }),
                    );
                }
                // As Redis's lastcmd, set before the command runs (CLIENT INFO shows itself).
                self.client.info.borrow_mut().last_cmd = command_of(t).map_or("NULL", |c| c.name);
                if matches!(t, Target::Remote(..)) {
                    continue;
                }
                let out = if deferred { &mut side } else { &mut self.wbuf };
                let before = out.len();
                out.proto = proto;
                match *t {
                    Target::Reject(r) => reject_command(&self.core, self.client.id, r, argv, out),
                    Target::Queue(cmd) => {
                        super::tx::queue_command(&self.core, self.client.id, cmd, argv, out)
                    }
                    Target::Conn(cmd) => {
                        if let Exec::Conn(f) = cmd.exec {
                            let mut ctx = ConnCtx {
                                core: &self.core,
                                client: &self.client,
                                out,
                                now_ms: now,
                            };
                            f(&mut ctx, argv);
                            exec::record_usec(&self.core, cmd, lap.split(), &out.buf[before..]);
                        }
                    }
                    Target::Local(cmd) => {
                        if super::tx::blocked(&self.core, cmd, argv, db) {
                            super::tx::run_queued(&self.core, cmd, argv, db, out).await;
                            // The wait is not the next command's time.
                            lap = exec::Lap::start();
                        } else {
                            let mut shard = self.core.shard.borrow_mut();
                            let (c, l) = (&self.core, &mut lap);
                            exec::run_shard_cmd(c, &mut shard, cmd, argv, db, now, l, out);
                        }
                    }
                    Target::Remote(..) => unreachable!("skipped above"),
                }
                if deferred {
                    side_ends.push(side.len());
                } else {
                    self.apply_reply_mode(before);
                }
            }

            // 4. Collect remote replies and assemble in request order.
            if deferred {
                let mut replies: Vec<Option<BatchReply>> =
                    (0..self.core.nshards).map(|_| None).collect();
                for (s, rx) in waits {
                    match rx.await {
                        Ok(r) => replies[s] = Some(r),
                        Err(_) => {
                            // The shard went away (shutdown): close the connection.
                            self.client.close_after_reply.set(true);
                            return;
                        }
                    }
                }
                let mut local_k = 0;
                for t in targets.iter() {
                    let before = self.wbuf.len();
                    match *t {
                        Target::Remote(s, idx, _) => {
                            let r = replies[s].as_ref().expect("reply per shard");
                            let start = if idx == 0 {
                                0
                            } else {
                                r.ends[idx - 1] as usize
                            };
                            let end = r.ends[idx] as usize;
                            self.wbuf.raw(&r.out[start..end]);
                        }
                        _ => {
                            let start = if local_k == 0 {
                                0
                            } else {
                                side_ends[local_k - 1]
                            };
                            self.wbuf.raw(&side.buf[start..side_ends[local_k]]);
                            local_k += 1;
                        }
                    }
                    self.apply_reply_mode(before);
                }
            }
            self.client.info.borrow_mut().last_interaction_ms = now;

            // 5. The barrier, alone.
            i = j;
            if let Some(Barrier::Attack) = barrier {
                // As Redis's securityWarningCommand: close at once; replies not
                // yet written are dropped (freeClientAsync).
                let now = now_ms() / 1000;
                let last = ATTACK_LOGGED.load(std::sync::atomic::Ordering::Relaxed);
                if now.abs_diff(last) > 60 {
                    ATTACK_LOGGED.store(now, std::sync::atomic::Ordering::Relaxed);
                    super::log::warning("Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands to Redis. This is likely due to an attacker attempting to use Cross Protocol Scripting to compromise your Redis instance. Connection aborted.");
                }
                self.wbuf.buf.clear();
                self.client.kill();
                return;
            }
            if let Some(b) = barrier {
                let argv = argvs[i];
                let mut before = self.wbuf.len();
                let name = match b {
                    Barrier::Conn(c) | Barrier::Multi(c, _) => c.name,
                    Barrier::Attack => unreachable!("handled above"),
                };
                self.client.info.borrow_mut().last_cmd = name;
                match b {
                    Barrier::Conn(cmd) => {
                        if let Exec::ConnBarrier(f) = cmd.exec {
                            let start = Instant::now();
                            let proto = self.client.info.borrow().proto;
                            self.wbuf.proto = proto;
                            let mut ctx = ConnCtx {
                                core: &self.core,
                                client: &self.client,
                                out: &mut self.wbuf,
                                now_ms: now_ms(),
                            };
                            f(&mut ctx, argv);
                            exec::record(&self.core, cmd, start, &self.wbuf.buf[before..]);
                        }
                    }
                    Barrier::Multi(cmd, f) => {
                        let start = Instant::now();
                        let ctx = MultiCtx {
                            core: self.core.clone(),
                            client: self.client.clone(),
                            cmd,
                            argv: argv.iter().map(|a| buf.slice_ref(a)).collect(),
                            db,
                            proto: self.client.info.borrow().proto,
                            now_ms: now_ms(),
                        };
                        self.client.aof_logged.set(false);
                        let reply = super::tx::run_coordinator(ctx, f).await;
                        exec::record(&self.core, cmd, start, &reply.buf);
                        // A coordinator that ran a logged transaction logged at
                        // its release, under its locks.
                        if !self.client.aof_logged.get() {
                            crate::persistence::aof::after_multi(
                                &self.core, cmd, argv, db, &reply.buf,
                            )
                            .await;
                        }
                        self.wbuf.raw(&reply.buf);
                        // A blocking command that must wait (BLPOP...): its reply comes later.
                        let blocked = self.client.blocked.borrow_mut().take();
                        if let Some(b) = blocked {
                            before = self.wait_blocked(b).await;
                        }
                    }
                    Barrier::Attack => unreachable!("handled above"),
                }
                self.apply_reply_mode(before);
                i += 1;
            }
        }
        targets.clear();
        self.target_scratch = targets;
    }

    /// Waits out a blocked command. Earlier replies are written first; the socket
    /// keeps being read, so a disconnect is seen (and anything popped for this
    /// client given back) while further commands are only buffered, to run after
    /// the reply, as Redis. Returns where the reply starts in `wbuf`.
    async fn wait_blocked(&mut self, mut b: Blocked) -> usize {
        if !self.flush().await {
            b.abandon().await;
            self.client.close_after_reply.set(true);
            return 0;
        }
        let outcome = loop {
            let ev = {
                let wait = std::pin::pin!(b.wait());
                let read = std::pin::pin!(self.read(false));
                match select(wait, read).await {
                    Either::Left((o, _)) => Ok(o),
                    Either::Right((alive, _)) => Err(alive),
                }
            };
            match ev {
                Ok(o) => break Some(o),
                Err(false) => break None,
                Err(true) => {
                    self.read_while_blocked = true;
                    let limit = self.core.config.borrow().client_query_buffer_limit as usize;
                    if self.filled > limit {
                        super::log::warning(&format!(
                            "Closing client that reached max query buffer length: {} (qbuf initial bytes: {})",
                            self.client.describe(now_ms()),
                            repr(&self.rbuf[..self.filled.min(64)])
                        ));
                        break None;
                    }
                }
            }
        };
        let Some(outcome) = outcome else {
            b.abandon().await;
            self.client.close_after_reply.set(true);
            return 0;
        };
        let start = self.wbuf.len();
        self.wbuf.proto = self.client.info.borrow().proto;
        outcome.reply(&mut self.wbuf);
        let reply = &self.wbuf.buf[start..];
        let failed = reply.first() == Some(&b'-');
        // As Redis's updateStatsOnUnblock: CLIENT UNBLOCK counts as a failed call either way.
        if failed || matches!(outcome, super::blocking::Outcome::Unblocked(_)) {
            self.core.stats.borrow_mut().cmds[b.cmd.id as usize].failed_calls += 1;
        }
        if failed {
            let end = memchr::memchr2(b' ', b'\r', reply).unwrap_or(reply.len());
            let code = String::from_utf8_lossy(&reply[1..end]).into_owned();
            self.core.count_error(&code);
        }
        start
    }

    /// Redis's authRequired: a password is set and this client has not authenticated.
    fn auth_required(&self) -> bool {
        !self.client.info.borrow().authenticated && self.core.config.borrow().requirepass.is_some()
    }

    /// Drops the reply just written (from `before`) when CLIENT REPLY says so.
    fn apply_reply_mode(&mut self, before: usize) {
        apply_reply_mode(&self.client, &mut self.wbuf.buf, before);
    }
}

/// Drops the reply just written to `buf` (from `before`) when CLIENT REPLY says so.
pub(super) fn apply_reply_mode(client: &Client, buf: &mut Vec<u8>, before: usize) {
    let mut info = client.info.borrow_mut();
    match info.reply_mode {
        ReplyMode::On => {}
        ReplyMode::Off => buf.truncate(before),
        ReplyMode::Skip => {
            buf.truncate(before);
            info.reply_mode = ReplyMode::On;
        }
        ReplyMode::SkipNext => info.reply_mode = ReplyMode::Skip,
    }
}

/// Ready when a busy script's hook left the waiting connection task something to take.
fn busy_io_ready(client: &Client, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
    let mut io = client.busy_io.borrow_mut();
    if io.pending() {
        return std::task::Poll::Ready(());
    }
    match &io.waker {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => io.waker = Some(cx.waker().clone()),
    }
    std::task::Poll::Pending
}

/// Refuses a command as Redis's rejectCommand: the error, and inside MULTI the
/// transaction flagged (a refused EXEC aborts it).
pub(super) fn reject_command(
    core: &Rc<Core>,
    client: u64,
    r: Reject,
    argv: &[&[u8]],
    out: &mut ReplyBuf,
) {
    if command_of(&Target::Reject(r)).is_some_and(|c| c.name == "exec") {
        let mut e = ReplyBuf::new(out.proto);
        reject(core, r, argv, &mut e);
        super::tx::exec_abort(core, client, &e.buf, out);
    } else {
        reject(core, r, argv, out);
        super::tx::flag_error(core, client);
    }
}

/// Writes the error for a command rejected before running, as processCommand words it.
///
/// Arguments are quoted as C's `%.*s` does: raw bytes, cut at the precision
/// or at the first NUL (argv strings are C strings to the formatter).
fn reject(core: &Core, r: Reject, argv: &[&[u8]], out: &mut ReplyBuf) {
    let msg: Vec<u8> = match r {
        Reject::Unknown => {
            let mut m = b"ERR unknown command '".to_vec();
            m.extend_from_slice(c_str(argv[0], 128));
            m.extend_from_slice(b"', with args beginning with: ");
            let mut args: Vec<u8> = Vec::new();
            for a in &argv[1..] {
                if args.len() >= 128 {
                    break;
                }
                let room = 128 - args.len();
                args.push(b'\'');
                args.extend_from_slice(c_str(a, room));
                args.extend_from_slice(b"' ");
            }
            m.extend_from_slice(&args);
            m
        }
        Reject::UnknownSubcommand => {
            let sub = argv.get(1).map(|s| c_str(s, 128)).unwrap_or(b"");
            let mut m = b"ERR unknown subcommand '".to_vec();
            m.extend_from_slice(sub);
            m.extend_from_slice(b"'. Try ");
            m.extend(c_str(argv[0], usize::MAX).to_ascii_uppercase());
            m.extend_from_slice(b" HELP.");
            m
        }
        Reject::Arity(cmd) => {
            let mut st = core.stats.borrow_mut();
            st.cmds[cmd.id as usize].rejected_calls += 1;
            format!("ERR wrong number of arguments for '{}' command", cmd.name).into_bytes()
        }
        Reject::NoAuth(cmd) => {
            core.stats.borrow_mut().cmds[cmd.id as usize].rejected_calls += 1;
            errors::NOAUTH.as_bytes().to_vec()
        }
        Reject::Busy(cmd) => {
            core.stats.borrow_mut().cmds[cmd.id as usize].rejected_calls += 1;
            crate::scripting::busy_error().as_bytes().to_vec()
        }
        Reject::Protected(cmd) => {
            core.stats.borrow_mut().cmds[cmd.id as usize].rejected_calls += 1;
            crate::commands::server::DEBUG_NOT_ALLOWED
                .as_bytes()
                .to_vec()
        }
    };
    out.error_bytes(&msg);
    let code = msg.split(|&b| b == b' ').next().unwrap_or(b"ERR");
    core.count_error(&String::from_utf8_lossy(code));
}

/// `s` as `%.*s` prints it with precision `max`: up to the first NUL, at most `max` bytes.
fn c_str(s: &[u8], max: usize) -> &[u8] {
    let s = &s[..s.len().min(max)];
    match memchr::memchr(0, s) {
        Some(i) => &s[..i],
        None => s,
    }
}

/// `s` as Redis's sdscatrepr quotes it (for the log).
fn repr(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in s {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

fn command_of(t: &Target) -> Option<&'static crate::commands::Command> {
    match *t {
        Target::Conn(c) | Target::Local(c) | Target::Remote(_, _, c) | Target::Queue(c) => Some(c),
        Target::Reject(
            Reject::Arity(c) | Reject::NoAuth(c) | Reject::Protected(c) | Reject::Busy(c),
        ) => Some(c),
        _ => None,
    }
}
