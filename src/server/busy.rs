//! Serving a core's own connections while a Lua script on it runs past busy-reply-threshold.
//!
//! A script that loops in pure Lua keeps its core inside one Lua call: the
//! Glommio executor cannot run the core's connection tasks or its accept
//! loop, and Lua 5.1 cannot yield from a hook. Redis has the same shape (one
//! thread) and answers from inside its count hook (`scriptInterrupt` →
//! `processEventsWhileBlocked`): every command gets `-BUSY` except SCRIPT
//! KILL, FUNCTION KILL, SHUTDOWN NOSAVE and the other `allow_busy` commands.
//! [`serve`] does the same from the script's instruction-count hook, at most
//! once per millisecond, with non-blocking system calls only:
//!
//! * **Which connections.** Only those whose task waits in its read with
//!   nothing buffered and every reply written (`Client::idle`): nothing of
//!   theirs is half-parsed or half-answered, so the hook's replies are the
//!   next bytes on the wire. The script's own client is busy running it and
//!   is never idle (Redis's protectClient). One `poll` finds the readable
//!   ones and the listeners with pending connections.
//! * **Input.** The hook `recv`s into the client's `BusyIo::input` and
//!   answers complete commands one at a time, in order, removing each
//!   answered command's bytes. It stops at the first command it cannot run
//!   itself (one that would be queued in MULTI, or an `allow_busy` command
//!   that may wait, such as WATCH) or at a protocol error, and then reads no
//!   more from that connection (`stalled`). The connection task, when it
//!   runs again, writes the hook's unsent replies first, then parses
//!   `input` before anything it reads from the socket. Glommio reads a
//!   socket only after a readiness poll, with a plain `recv`, so the hook's
//!   `recv` never races a read the kernel does on the task's behalf: no byte
//!   is lost or reordered, and no command is answered twice.
//! * **Commands.** Refusals are decided exactly as the connection loop
//!   decides them (unknown command, arity, DEBUG, NOAUTH, then BUSY, with
//!   MULTI flagged or EXEC aborted), connection commands (HELLO, AUTH, RESET,
//!   MULTI, QUIT) run as they do there, and SCRIPT KILL, FUNCTION KILL,
//!   FUNCTION STATS and SHUTDOWN run their handlers, which never wait while
//!   a script is busy. Replies use the client's protocol and CLIENT REPLY
//!   mode; what the socket does not take goes to `BusyIo::output`.
//! * **New connections.** The hook accepts on this core's listeners
//!   (glommio's accept is patched to accept after a readiness poll, so
//!   connections wait in the listen queue), admits them as the accept loop
//!   does, registers their client and spawns their task, which starts when
//!   the script ends; meanwhile the hook serves them like the others. With
//!   one core, this is how anyone can kill the script at all.
//!
//! Connections on other cores are served by their own tasks, which refuse
//! with BUSY in the connection loop.

use std::cell::Cell;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;

use super::client::{BusyIo, Client};
use super::connection::{self, Reject};
use super::core::{now_ms, Core};
use crate::commands::spec::CmdFlags;
use crate::commands::{CommandTable, ConnCtx, Exec, Lookup, MultiCtx};
use crate::protocol::parser::{Limits, RespParser};
use crate::protocol::reply::ReplyBuf;

/// The least time between two service steps (Redis serves on every hook call,
/// every 100000 instructions; ours fires every 10000).
const INTERVAL: Duration = Duration::from_millis(1);
/// Bytes read per `recv`.
const CHUNK: usize = 16 * 1024;
/// A connection whose unanswered input reaches this is read no more until the script ends.
const INPUT_CAP: usize = 1 << 20;
/// New connections accepted per listener per step.
const ACCEPTS: usize = 64;
/// Coordinator commands the hook runs: their handlers finish at once while a script is busy.
const RUN_NOW: [&str; 4] = ["script|kill", "function|kill", "function|stats", "shutdown"];

thread_local! {
    /// When this core last served its connections from a hook.
    static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// One service step for this core's idle connections and listeners (see the module docs).
pub fn serve(core: &Rc<Core>) {
    let now = Instant::now();
    if LAST.get().is_some_and(|t| now.duration_since(t) < INTERVAL) {
        return;
    }
    LAST.set(Some(now));
    let Ok(listeners) = core.listeners.try_borrow().map(|l| l.clone()) else {
        return;
    };
    let Ok(clients) = core.clients.try_borrow().map(|c| {
        c.by_id
            .values()
            .filter(|c| servable(c))
            .cloned()
            .collect::<Vec<_>>()
    }) else {
        return;
    };
    let mut fds: Vec<libc::pollfd> = listeners
        .iter()
        .map(|&(_, fd)| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    for c in &clients {
        let writing = c.busy_io.try_borrow().is_ok_and(|io| !io.output.is_empty());
        fds.push(libc::pollfd {
            fd: c.fd,
            events: if writing { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        });
    }
    // SAFETY: `fds` is a valid, initialized array of `fds.len()` pollfd
    // structs that poll may write `revents` into; the timeout 0 never blocks.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
    if ready <= 0 {
        return;
    }
    for (&(_, fd), p) in listeners.iter().zip(&fds) {
        if p.revents != 0 {
            // `listeners` holds the listener (and so its fd) for the call.
            accept(core, fd);
        }
    }
    for (c, p) in clients.iter().zip(&fds[listeners.len()..]) {
        if p.revents != 0 {
            serve_client(core, c);
        }
    }
}

/// True when the hook may touch this connection now.
fn servable(c: &Client) -> bool {
    c.idle.get()
        && !c.killed.get()
        && !c.close_after_reply.get()
        && c.busy_io.try_borrow().is_ok_and(|io| !io.stalled)
}

/// Accepts the pending connections of one listener and serves what they sent already.
///
/// `listener` is the fd of a listener the caller keeps alive for the call.
fn accept(core: &Rc<Core>, listener: RawFd) {
    for _ in 0..ACCEPTS {
        // SAFETY: the caller holds the listener (an Rc from `Core::listeners`),
        // which keeps its fd open longer than this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(listener) };
        // The listener is non-blocking (listener::listen): WouldBlock ends the loop.
        let Ok((sock, peer)) = socket2::SockRef::from(&fd).accept() else {
            return;
        };
        if let Err(msg) = super::listener::admit(core, peer.as_socket()) {
            // Best effort, as the accept loop's: the client may not read.
            if let Ok(n) = sock.send_with_flags(msg.as_bytes(), libc::MSG_DONTWAIT) {
                core.stats.borrow_mut().net_output_bytes += n as u64;
            }
            continue;
        }
        let _ = sock.set_nodelay(true);
        let addrs = (
            peer.as_socket(),
            sock.local_addr().ok().and_then(|a| a.as_socket()),
        );
        let (Some(addr), Some(laddr)) = addrs else {
            super::CONNECTED.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            continue;
        };
        let (client, kill_rx) = connection::register(core, sock.as_raw_fd(), addr, laddr);
        // Nothing read, nothing to write: the hook may serve it before its task starts.
        client.idle.set(true);
        let (c, task_client) = (core.clone(), client.clone());
        let fd = sock.into_raw_fd();
        glommio::spawn_local(async move {
            // SAFETY: `fd` is the connected socket just accepted, whose ownership
            // into_raw_fd gave up: the stream owns it alone.
            let stream = unsafe { glommio::net::TcpStream::from_raw_fd(fd) };
            connection::serve_registered(c, stream, task_client, kill_rx).await;
        })
        .detach();
        serve_client(core, &client);
    }
}

/// Writes the replies the hook owes `c`; true when none is left.
fn write_out(core: &Core, c: &Client, io: &mut BusyIo) -> bool {
    let mut sent = 0;
    while sent < io.output.len() {
        let rest = &io.output[sent..];
        // SAFETY: `rest` is a valid buffer of `rest.len()` bytes; `c.fd` is the
        // open socket of a registered connection (its task, which owns it, only
        // closes it after unregistering).
        let n = unsafe {
            libc::send(
                c.fd,
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n <= 0 {
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                // Broken: the task finds out when it writes the rest.
                io.stalled = true;
            }
            break;
        }
        sent += n as usize;
    }
    io.output.drain(..sent);
    core.stats.borrow_mut().net_output_bytes += sent as u64;
    io.output.is_empty()
}

/// Reads what `c` sent, answers its complete commands in order and writes the replies.
fn serve_client(core: &Rc<Core>, c: &Rc<Client>) {
    let Ok(mut io) = c.busy_io.try_borrow_mut() else {
        return;
    };
    if write_out(core, c, &mut io) && !io.stalled {
        read_in(core, c, &mut io);
        answer_all(core, c, &mut io);
        write_out(core, c, &mut io);
    }
    if c.close_after_reply.get() && io.output.is_empty() {
        // QUIT or SHUTDOWN answered: close now, as Redis, not when the script ends.
        // SAFETY: `c.fd` is the open socket of a registered connection (see write_out).
        unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        c.kill();
    }
    if io.pending() {
        if let Some(w) = &io.waker {
            w.wake_by_ref();
        }
    }
}

/// Appends what the socket has to `io.input` (bounded).
fn read_in(core: &Core, c: &Client, io: &mut BusyIo) {
    let mut got = 0;
    loop {
        if io.input.len() >= INPUT_CAP {
            io.stalled = true;
            break;
        }
        let old = io.input.len();
        io.input.resize(old + CHUNK, 0);
        // SAFETY: `io.input[old..]` is a valid, writable buffer of CHUNK bytes;
        // `c.fd` is the open socket of a registered connection (see write_out).
        let n = unsafe {
            libc::recv(
                c.fd,
                io.input[old..].as_mut_ptr().cast(),
                CHUNK,
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            io.input.truncate(old + n as usize);
            got += n as usize;
            if (n as usize) < CHUNK {
                break;
            }
            continue;
        }
        io.input.truncate(old);
        let e = std::io::Error::last_os_error().kind();
        if n == 0 || (e != std::io::ErrorKind::WouldBlock && e != std::io::ErrorKind::Interrupted) {
            // Closed or broken: the task sees it again when it reads.
            io.stalled = true;
        }
        break;
    }
    if got > 0 {
        core.stats.borrow_mut().net_input_bytes += got as u64;
        c.info.borrow_mut().last_interaction_ms = now_ms();
    }
}

/// Answers the complete commands at the front of `io.input`, in order, until one only the task can run.
fn answer_all(core: &Rc<Core>, c: &Rc<Client>, io: &mut BusyIo) {
    if io.input.is_empty() {
        return;
    }
    // Parsing unescapes inline commands in place: parse a copy, so that the
    // bytes left for the task are the ones the client sent.
    let mut work = io.input.clone();
    let mut off = 0;
    let mut out = ReplyBuf::default();
    while off < work.len() && !c.close_after_reply.get() && !c.killed.get() {
        let limits = Limits {
            proto_max_bulk_len: core.config.borrow().proto_max_bulk_len,
            authenticated: !auth_required(core, c),
        };
        let mut p = RespParser::new();
        let res = p.parse_one(&mut work[off..], &limits);
        if p.is_empty() {
            if res.is_err() {
                // The task replies with the protocol error and closes.
                io.stalled = true;
            } else if p.consumed() > 0 {
                // Empty commands, skipped as Redis does.
                off += p.consumed();
                continue;
            }
            break;
        }
        let base = &work[off..];
        let argv: Vec<&[u8]> = p.command(0).iter().map(|a| &base[a.range()]).collect();
        out.proto = c.info.borrow().proto;
        let before = out.buf.len();
        if !answer(core, c, &argv, &mut out) {
            io.stalled = true;
            break;
        }
        connection::apply_reply_mode(c, &mut out.buf, before);
        off += p.consumed();
    }
    if c.close_after_reply.get() || c.killed.get() {
        // Nothing after QUIT is looked at.
        io.input.clear();
    } else {
        io.input.drain(..off);
    }
    io.output.extend_from_slice(&out.buf);
}

/// Redis's authRequired.
fn auth_required(core: &Core, c: &Client) -> bool {
    !c.info.borrow().authenticated && core.config.borrow().requirepass.is_some()
}

/// Answers one command as the connection loop would; false when only the task can run it.
fn answer(core: &Rc<Core>, c: &Rc<Client>, argv: &[&[u8]], out: &mut ReplyBuf) -> bool {
    if connection::is_cross_protocol_attack(argv[0]) {
        return false;
    }
    let cmd = match CommandTable::get().lookup(argv) {
        Lookup::Unknown => return refuse(core, c, Reject::Unknown, argv, out),
        Lookup::UnknownSubcommand => return refuse(core, c, Reject::UnknownSubcommand, argv, out),
        Lookup::WrongArity(cmd) => return refuse(core, c, Reject::Arity(cmd), argv, out),
        Lookup::Found(cmd) => cmd,
    };
    c.info.borrow_mut().last_cmd = cmd.name;
    let r = if cmd.name == "debug" && !crate::commands::server::debug_allowed(core, c) {
        Some(Reject::Protected(cmd))
    } else if auth_required(core, c) && !cmd.flags().contains(CmdFlags::NO_AUTH) {
        Some(Reject::NoAuth(cmd))
    } else if crate::scripting::refuse_busy(cmd) {
        Some(Reject::Busy(cmd))
    } else {
        None
    };
    if let Some(r) = r {
        return refuse(core, c, r, argv, out);
    }
    if super::tx::in_multi(core, c.id) && !super::tx::runs_in_multi(cmd) {
        // Queued for EXEC: the task's business.
        return false;
    }
    let start = Instant::now();
    let before = out.buf.len();
    match cmd.exec {
        Exec::Conn(f) | Exec::ConnBarrier(f) => {
            let mut ctx = ConnCtx {
                core,
                client: c,
                out,
                now_ms: now_ms(),
            };
            f(&mut ctx, argv);
        }
        Exec::Multi(f) if RUN_NOW.contains(&cmd.name) => {
            let ctx = MultiCtx {
                core: core.clone(),
                client: c.clone(),
                cmd,
                argv: argv.iter().map(|a| Bytes::copy_from_slice(a)).collect(),
                db: c.info.borrow().db,
                proto: out.proto,
                now_ms: now_ms(),
            };
            match f(ctx).now_or_never() {
                Some(reply) => out.raw(&reply.buf),
                // Not reached: these handlers do not wait while a script is busy.
                None => return false,
            }
        }
        Exec::Container => return refuse(core, c, Reject::UnknownSubcommand, argv, out),
        _ => return false,
    }
    super::exec::record(core, cmd, start, &out.buf[before..]);
    c.info.borrow_mut().last_interaction_ms = now_ms();
    true
}

/// Refuses a command as the connection loop does; always answered.
fn refuse(core: &Rc<Core>, c: &Client, r: Reject, argv: &[&[u8]], out: &mut ReplyBuf) -> bool {
    connection::reject_command(core, c.id, r, argv, out);
    true
}
