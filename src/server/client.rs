//! Client connections as the server sees them: per-connection state and the per-core registry.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::channel::oneshot;

use crate::protocol::reply::Proto;

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// A new, server-wide unique client id (CLIENT ID).
pub fn next_client_id() -> u64 {
    NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed)
}

/// CLIENT REPLY mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReplyMode {
    /// Replies are sent.
    #[default]
    On,
    /// Replies are dropped until CLIENT REPLY ON.
    Off,
    /// The next command's reply is dropped.
    Skip,
    /// Set by CLIENT REPLY SKIP: becomes Skip after the current command.
    SkipNext,
}

/// The mutable state of one connection.
#[derive(Debug)]
pub struct ClientInfo {
    /// Selected database.
    pub db: usize,
    /// Protocol version (HELLO).
    pub proto: Proto,
    /// Passed AUTH (or no password is required).
    pub authenticated: bool,
    /// CLIENT SETNAME.
    pub name: Vec<u8>,
    /// CLIENT REPLY.
    pub reply_mode: ReplyMode,
    /// CLIENT NO-EVICT.
    pub no_evict: bool,
    /// Unix ms of creation.
    pub created_ms: u64,
    /// Unix ms of the last command.
    pub last_interaction_ms: u64,
    /// Full name of the last command (`client|list`).
    pub last_cmd: &'static str,
    /// Bytes buffered in the query buffer (qbuf).
    pub qbuf: usize,
    /// Free bytes in the query buffer.
    pub qbuf_free: usize,
    /// Bytes pending in the output buffer (omem).
    pub omem: usize,
}

/// One connection: fixed identity plus `ClientInfo` behind a RefCell (the
/// connection task and the registry's readers are on the same core).
#[derive(Debug)]
pub struct Client {
    /// CLIENT ID.
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub laddr: SocketAddr,
    /// Socket file descriptor (for CLIENT LIST's fd=).
    pub fd: i32,
    /// Mutable state.
    pub info: RefCell<ClientInfo>,
    /// Set by CLIENT KILL / timeouts / shutdown: the connection closes.
    pub killed: Cell<bool>,
    /// Close after the pending replies are written (QUIT, protocol errors, own CLIENT KILL).
    pub close_after_reply: Cell<bool>,
    kill_tx: RefCell<Option<oneshot::Sender<()>>>,
    /// Set while the client waits in a blocking command: CLIENT UNBLOCK fires it
    /// (true = ERROR, false = TIMEOUT).
    pub unblock: RefCell<Option<oneshot::Sender<bool>>>,
    /// A blocking command that must wait, handed from its coordinator to the connection loop.
    pub blocked: RefCell<Option<super::blocking::Blocked>>,
    /// Set by whatever runs commands that may not block (MULTI/EXEC, scripts): blocking
    /// commands then act as their non-blocking forms (Redis's CLIENT_DENY_BLOCKING).
    pub deny_blocking: Cell<bool>,
    /// Set when a coordinator's transaction logged the command to the AOF at
    /// its release; otherwise the connection logs it after the command.
    pub aof_logged: Cell<bool>,
    /// Set while the connection task waits for input with nothing buffered and
    /// nothing left to write: only then may a busy script's hook serve it.
    pub idle: Cell<bool>,
    /// What a busy script's hook left for the connection task (see `server::busy`).
    pub busy_io: RefCell<BusyIo>,
}

/// Bytes a busy script's hook took from a connection, or could not write to it,
/// that the connection task handles before anything else (see `server::busy`).
#[derive(Debug, Default)]
pub struct BusyIo {
    /// Bytes read from the socket and not answered: they precede anything read later.
    pub input: Vec<u8>,
    /// Replies the socket did not take at once: they precede any later reply.
    pub output: Vec<u8>,
    /// The hook met something only the task can handle: it reads no more from
    /// this connection until the task took `input`.
    pub stalled: bool,
    /// The connection task waiting for input, woken when the hook leaves it something.
    pub waker: Option<std::task::Waker>,
}

impl BusyIo {
    /// True when the task has something to take.
    pub fn pending(&self) -> bool {
        !self.input.is_empty() || !self.output.is_empty()
    }
}

impl Client {
    /// A new client; the returned receiver fires when it is killed.
    pub fn new(
        addr: SocketAddr,
        laddr: SocketAddr,
        fd: i32,
        now_ms: u64,
        authenticated: bool,
    ) -> (Rc<Client>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let c = Client {
            id: next_client_id(),
            addr,
            laddr,
            fd,
            info: RefCell::new(ClientInfo {
                db: 0,
                proto: Proto::Resp2,
                authenticated,
                name: Vec::new(),
                reply_mode: ReplyMode::On,
                no_evict: false,
                created_ms: now_ms,
                last_interaction_ms: now_ms,
                last_cmd: "NULL",
                qbuf: 0,
                qbuf_free: 0,
                omem: 0,
            }),
            killed: Cell::new(false),
            close_after_reply: Cell::new(false),
            kill_tx: RefCell::new(Some(tx)),
            unblock: RefCell::new(None),
            blocked: RefCell::new(None),
            deny_blocking: Cell::new(false),
            aof_logged: Cell::new(false),
            idle: Cell::new(false),
            busy_io: RefCell::new(BusyIo::default()),
        };
        (Rc::new(c), rx)
    }

    /// Closes the connection as soon as possible (CLIENT KILL, timeout).
    pub fn kill(&self) {
        self.killed.set(true);
        if let Some(tx) = self.kill_tx.borrow_mut().take() {
            let _ = tx.send(());
        }
    }

    /// The line CLIENT LIST / CLIENT INFO prints for this client (Redis 7.0's field set).
    pub fn describe(&self, now_ms: u64) -> String {
        let i = self.info.borrow();
        let name = String::from_utf8_lossy(&i.name);
        let age = now_ms.saturating_sub(i.created_ms) / 1000;
        let idle = now_ms.saturating_sub(i.last_interaction_ms) / 1000;
        let mut flags = String::new();
        if self.unblock.borrow().is_some() {
            flags.push('b');
        }
        if self.close_after_reply.get() || self.killed.get() {
            flags.push('c');
        }
        if i.no_evict {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let resp = match i.proto {
            Proto::Resp2 => 2,
            Proto::Resp3 => 3,
        };
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub=0 psub=0 ssub=0 multi=-1 qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp={} obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user=default redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            name,
            age,
            idle,
            flags,
            i.db,
            i.qbuf,
            i.qbuf_free,
            i.qbuf + i.qbuf_free,
            i.qbuf,
            i.omem,
            i.qbuf + i.qbuf_free + i.omem,
            i.last_cmd,
            resp
        )
    }
}

/// The clients connected to one core.
#[derive(Debug, Default)]
pub struct Clients {
    /// By client id.
    pub by_id: HashMap<u64, Rc<Client>>,
}

impl Clients {
    /// Registers a connection.
    pub fn add(&mut self, c: Rc<Client>) {
        self.by_id.insert(c.id, c);
    }

    /// Forgets a closed connection.
    pub fn remove(&mut self, id: u64) {
        self.by_id.remove(&id);
    }

    /// Number of connections on this core.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no client is connected to this core.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
