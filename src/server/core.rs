//! A core: what one executor thread owns (its shard, clients, config copy, counters) and how it asks other cores for work.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures::channel::oneshot;
use glommio::channels::channel_mesh::Senders;

use super::client::Clients;
use super::shard::{CmdStat, Shard};
use crate::config::Config;
use crate::protocol::parser::Arg;
use crate::protocol::reply::Proto;

/// One command of a batch sent to another shard: its table id and where its arguments are.
#[derive(Clone, Copy, Debug)]
pub struct RemoteCmd {
    /// Index in the command table.
    pub cmd: u16,
    /// First argument's index in `BatchReq::args`.
    pub arg_start: u32,
    /// Number of arguments (argv[0] included).
    pub argc: u32,
}

/// The pipelined commands of one connection batch that live on one other shard.
pub struct BatchReq {
    /// The connection's frozen read buffer; arguments are ranges of it (no copy).
    pub buf: Bytes,
    /// Argument ranges of every command, back to back.
    pub args: Vec<Arg>,
    /// The commands, in request order.
    pub cmds: Vec<RemoteCmd>,
    /// The selected database for the whole batch.
    pub db: usize,
    /// Protocol to encode replies in.
    pub proto: Proto,
    /// Where the replies go.
    pub reply: oneshot::Sender<BatchReply>,
}

/// Replies to a `BatchReq`: encoded back to back, with each reply's end offset.
pub struct BatchReply {
    /// Encoded replies.
    pub out: Vec<u8>,
    /// End offset of each command's reply in `out`.
    pub ends: Vec<u32>,
}

/// A closure to run on another core.
pub type Call = Box<dyn FnOnce(&Rc<Core>) + Send>;

/// A message between cores.
pub enum Msg {
    /// Pipelined commands for this core's shard.
    Batch(BatchReq),
    /// Anything else: run this closure on the core (multi-shard commands, admin fan-out).
    Call(Call),
}

/// Server-wide counters kept per core and summed for INFO.
#[derive(Clone, Debug, Default)]
pub struct CoreStats {
    /// total_connections_received.
    pub connections_received: u64,
    /// rejected_connections (maxclients).
    pub rejected_connections: u64,
    /// total_commands_processed.
    pub commands_processed: u64,
    /// total_net_input_bytes.
    pub net_input_bytes: u64,
    /// total_net_output_bytes.
    pub net_output_bytes: u64,
    /// total_error_replies.
    pub error_replies: u64,
    /// unexpected_error_replies (errors without a code prefix; none today).
    pub unexpected_error_replies: u64,
    /// Per-command counters, indexed by command id.
    pub cmds: Vec<CmdStat>,
    /// Error counts by code prefix (INFO errorstats).
    pub errors: Vec<(String, u64)>,
}

/// The per-executor state; see the module docs.
pub struct Core {
    /// This core's index = its shard's index.
    pub id: usize,
    /// Number of cores (= shards).
    pub nshards: usize,
    /// The keyspace this core owns.
    pub shard: RefCell<Shard>,
    /// This core's copy of the configuration (CONFIG SET updates every core's copy).
    pub config: RefCell<Config>,
    /// Connections living on this core.
    pub clients: RefCell<Clients>,
    /// Counters.
    pub stats: RefCell<CoreStats>,
    /// Set when this core is shutting down.
    pub shutting_down: Cell<bool>,
    /// When the server started (for uptime).
    pub started: Instant,
    /// Transaction locks and queue of this shard; MULTI/WATCH state of this core's clients.
    pub tx: RefCell<super::tx::TxState>,
    /// This core's listening sockets and their fds, while they accept (a busy
    /// script's hook accepts on them; the Rc keeps the fd open).
    pub listeners: RefCell<Vec<(Rc<glommio::net::TcpListener>, std::os::fd::RawFd)>>,
    mesh: Option<Senders<Msg>>,
}

impl Core {
    /// A core with its shard, before any connection.
    pub fn new(
        id: usize,
        nshards: usize,
        config: Config,
        mesh: Option<Senders<Msg>>,
        started: Instant,
        ncommands: usize,
    ) -> Self {
        let mut shard = Shard::new(id, config.databases);
        shard.limits = crate::storage::Limits::from_config(&config);
        Core {
            id,
            nshards,
            shard: RefCell::new(shard),
            config: RefCell::new(config),
            clients: RefCell::new(Clients::default()),
            stats: RefCell::new(CoreStats {
                cmds: vec![CmdStat::default(); ncommands],
                ..CoreStats::default()
            }),
            shutting_down: Cell::new(false),
            started,
            tx: super::tx::new_state(),
            listeners: RefCell::new(Vec::new()),
            mesh,
        }
    }

    /// Sends a batch of commands to shard `target` (never this core).
    pub async fn send_batch(&self, target: usize, req: BatchReq) {
        let mesh = self.mesh.as_ref().expect("a remote shard implies a mesh");
        if mesh.send_to(target, Msg::Batch(req)).await.is_err() {
            // The peer is gone: only during shutdown. The dropped reply
            // sender makes the waiting connection see the shutdown.
        }
    }

    /// Runs `f` on core `target` and returns its result; inline when `target` is this core.
    pub async fn run_on<R, F>(self: &Rc<Self>, target: usize, f: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Rc<Core>) -> R + Send + 'static,
    {
        if target == self.id {
            let r = f(self);
            super::blocking::after_shard_work(self);
            return Some(r);
        }
        let (tx, rx) = oneshot::channel();
        // A script's redis.set_repl choice travels with its work.
        let quiet = crate::persistence::aof::quiet();
        let call: Call = Box::new(move |core| {
            let was = crate::persistence::aof::set_quiet(quiet);
            let r = f(core);
            crate::persistence::aof::set_quiet(was);
            // Blocked clients are served before the caller hears back, as Redis
            // serves them right after the command that made their key ready.
            super::blocking::after_shard_work(core);
            let _ = tx.send(r);
        });
        let mesh = self.mesh.as_ref()?;
        if mesh.send_to(target, Msg::Call(call)).await.is_err() {
            return None;
        }
        rx.await.ok()
    }

    /// Runs `f` on every core (in parallel) and returns the results in core order.
    pub async fn run_on_all<R, F>(self: &Rc<Self>, f: F) -> Vec<R>
    where
        R: Send + 'static,
        F: Fn(&Rc<Core>) -> R + Send + Sync + Clone + 'static,
    {
        let mut pending = Vec::with_capacity(self.nshards);
        for target in 0..self.nshards {
            if target == self.id {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            let g = f.clone();
            let quiet = crate::persistence::aof::quiet();
            let call: Call = Box::new(move |core| {
                let was = crate::persistence::aof::set_quiet(quiet);
                let r = g(core);
                crate::persistence::aof::set_quiet(was);
                super::blocking::after_shard_work(core);
                let _ = tx.send(r);
            });
            if let Some(mesh) = self.mesh.as_ref() {
                let _ = mesh.send_to(target, Msg::Call(call)).await;
            }
            pending.push((target, rx));
        }
        let mine = f(self);
        super::blocking::after_shard_work(self);
        let mut out: Vec<Option<R>> = (0..self.nshards).map(|_| None).collect();
        out[self.id] = Some(mine);
        for (target, rx) in pending {
            out[target] = rx.await.ok();
        }
        out.into_iter().flatten().collect()
    }

    /// Counts one error reply under its code (the first word) for INFO errorstats.
    pub fn count_error(&self, code: &str) {
        let mut st = self.stats.borrow_mut();
        st.error_replies += 1;
        if let Some(e) = st.errors.iter_mut().find(|(c, _)| c == code) {
            e.1 += 1;
        } else {
            st.errors.push((code.to_string(), 1));
        }
    }
}

/// Milliseconds since the Unix epoch.
#[inline]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch.
#[inline]
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
