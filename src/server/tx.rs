//! Multi-shard transactions, VLL-style (after Dragonfly's design, written anew).
//!
//! * Every multi-shard transaction takes a global id from one atomic counter.
//! * Each shard keeps a queue of the transactions that declared keys on it,
//!   ordered by id, and per-key intent locks (shared for reads, exclusive for
//!   writes) that count the queued transactions' intents.
//! * Scheduling is one hop per involved shard: take the intents, enqueue. A
//!   transaction whose intents met no conflicting intent is granted at once
//!   (out of order, OOO); otherwise it is granted when it reaches the head of
//!   the queue. A transaction that conflicts and arrives after a higher id
//!   was queued is refused and retries with a new id, so that on every shard
//!   conflicting transactions are granted in id order: waits only ever point
//!   to lower ids, hence no deadlock.
//! * Granted everywhere, the coordinator runs its hops (keeping the locks
//!   between hops), then releases: the next head is granted.
//! * A single-shard command runs inline without any of this unless a key it
//!   touches carries a conflicting intent; then it queues behind, as a
//!   one-shard transaction with a fresh id (always the highest, never refused).
//!
//! The same state holds each connection's MULTI queue and WATCH list (a
//! connection lives on one core); see `commands::transactions`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::channel::oneshot;
use smallvec::SmallVec;

use super::core::Core;
use super::exec::{self, shard_of_key};
use crate::commands::spec::CmdFlags;
use crate::commands::{Command, Exec, MultiCtx};
use crate::protocol::reply::ReplyBuf;
use crate::storage::db::WatchMark;
use crate::storage::value::OwnedValue;

/// The global transaction id counter.
static NEXT_TXID: AtomicU64 = AtomicU64::new(1);

/// A fresh transaction id, higher than every id taken before.
fn next_id() -> u64 {
    NEXT_TXID.fetch_add(1, Ordering::Relaxed)
}

/// Lock mode of an intent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Readers: compatible with each other.
    Shared,
    /// Writers: alone.
    Exclusive,
}

impl Mode {
    /// The mode a command needs for its keys: exclusive when it may write.
    pub fn of(cmd: &Command) -> Mode {
        if cmd.flags().contains(CmdFlags::WRITE) {
            Mode::Exclusive
        } else {
            Mode::Shared
        }
    }

    /// The stronger of two modes.
    fn max(self, other: Mode) -> Mode {
        if self == Mode::Exclusive || other == Mode::Exclusive {
            Mode::Exclusive
        } else {
            Mode::Shared
        }
    }
}

/// Intent counts on one key (or on the whole shard).
#[derive(Clone, Copy, Debug, Default)]
struct Count {
    shared: u32,
    excl: u32,
}

impl Count {
    #[inline]
    fn conflicts(&self, m: Mode) -> bool {
        match m {
            Mode::Shared => self.excl > 0,
            Mode::Exclusive => self.excl > 0 || self.shared > 0,
        }
    }

    fn add(&mut self, m: Mode) {
        match m {
            Mode::Shared => self.shared += 1,
            Mode::Exclusive => self.excl += 1,
        }
    }

    fn sub(&mut self, m: Mode) {
        match m {
            Mode::Shared => self.shared -= 1,
            Mode::Exclusive => self.excl -= 1,
        }
    }

    fn is_zero(&self) -> bool {
        self.shared == 0 && self.excl == 0
    }
}

/// The keys one transaction declared on one shard, deduplicated (the strongest mode wins).
#[derive(Clone, Debug, Default)]
pub struct ShardKeys {
    /// (database, key, mode).
    pub keys: Vec<(u32, Bytes, Mode)>,
    /// A whole-shard lock (commands without declared keys that touch the keyspace).
    pub global: Option<Mode>,
    /// How the transaction's writes here go to the AOF (None: AOF off, or not logged as a part).
    pub aof: Option<AofMark>,
}

/// A transaction's AOF part on one shard: its records are held back while it
/// runs and appended as one block when it releases the shard (see `persistence::aof`).
#[derive(Clone, Debug)]
pub struct AofMark {
    /// Shards where the transaction holds exclusive intents: the parts a
    /// crash-safe load needs complete before applying any of them.
    pub writers: u16,
    /// What is logged at release besides what its commands logged.
    pub log: AofLog,
}

/// What a transaction logs when it releases a shard.
#[derive(Clone, Debug)]
pub enum AofLog {
    /// Nothing more: its commands logged their own records (EXEC, scripts).
    Commands,
    /// The resulting state of each key it locked exclusively (multi-shard coordinators).
    KeyStates,
    /// The command verbatim in database `.0` (FLUSHALL, FLUSHDB, SWAPDB).
    Verbatim(usize, std::sync::Arc<Vec<Bytes>>),
}

impl ShardKeys {
    /// True when the transaction may write on this shard.
    pub fn writes(&self) -> bool {
        self.global == Some(Mode::Exclusive) || self.keys.iter().any(|k| k.2 == Mode::Exclusive)
    }
}

impl ShardKeys {
    fn add(&mut self, db: u32, key: Bytes, m: Mode) {
        if let Some(e) = self.keys.iter_mut().find(|e| e.0 == db && e.1 == key) {
            e.2 = e.2.max(m);
        } else {
            self.keys.push((db, key, m));
        }
    }
}

/// A queued transaction on one shard.
struct Entry {
    granted: bool,
    waker: Option<oneshot::Sender<()>>,
    keys: ShardKeys,
    /// The transaction's last hop, sent ahead: runs (and releases) the moment
    /// it is granted, so a chain of conflicting transactions advances on the
    /// shard without a round trip to each coordinator.
    armed: Option<Work>,
}

/// A transaction's last hop on a shard (whoever runs it then releases the
/// transaction there). It returns the sending of its result, which waits
/// until the release appended the transaction's AOF part: a reply must not
/// leave before the records it acknowledges are in the log.
type Work = Box<dyn FnOnce(&Rc<Core>) -> Box<dyn FnOnce()>>;

/// The outcome of scheduling on one shard.
pub enum Sched {
    /// Runnable now.
    Granted,
    /// Queued; the receiver fires when granted.
    Queued(oneshot::Receiver<()>),
    /// A conflicting higher id is queued already: retry with a new id.
    Refused,
}

/// A connection's MULTI/WATCH state.
#[derive(Default)]
pub struct MultiState {
    /// Between MULTI and EXEC/DISCARD.
    pub in_multi: bool,
    /// A command was rejected while queuing: EXEC answers EXECABORT.
    pub dirty_exec: bool,
    /// The queued commands with their arguments.
    pub queued: Vec<(&'static Command, Vec<Bytes>)>,
    /// WATCHed keys: (database, key, shard, what WATCH saw).
    pub watched: Vec<(usize, Bytes, usize, WatchMark)>,
}

/// The per-core transaction state: this shard's locks and queue, this core's connections' MULTI state.
#[derive(Default)]
pub struct TxState {
    /// Intent counts per key, per database.
    locks: Vec<HashMap<Bytes, Count>>,
    /// Whole-shard intents.
    global: Count,
    /// Sum of all key intents (a global lock conflicts with any of them).
    any: Count,
    /// Transactions with intents here, by id.
    queue: BTreeMap<u64, Entry>,
    /// MULTI/WATCH state of the connections on this core, by client id.
    pub multi: HashMap<u64, MultiState>,
    /// Clients whose EXEC (or script) is running: their commands run under
    /// its locks, so coordinators they call must not schedule again.
    pub in_exec: HashSet<u64>,
    /// Highest ids of armed last hops that ran here, by key hash bucket:
    /// see [`Marks`].
    marks: Marks,
}

/// Number of key buckets for the early-execution marks.
const MARK_BUCKETS: usize = 1024;

/// Early-execution watermarks.
///
/// An armed last hop runs on a shard as soon as that shard grants it, maybe
/// before the transaction is granted elsewhere. A conflicting transaction
/// with a LOWER id that arrives here afterwards would then be ordered after
/// it here but possibly before it on another shard. So an arrival whose id
/// is below the mark of a conflicting bucket is refused and retries with a
/// new id. Buckets (a hash of the key) keep the memory fixed; a collision
/// only costs a retry.
struct Marks {
    /// (highest exclusive id, highest shared id) per bucket.
    buckets: Vec<(u64, u64)>,
    /// Highest ids of whole-shard armed hops (exclusive, shared).
    global: (u64, u64),
    /// Highest exclusive and shared ids over all buckets (for whole-shard arrivals).
    max: (u64, u64),
}

impl Default for Marks {
    fn default() -> Self {
        Marks {
            buckets: vec![(0, 0); MARK_BUCKETS],
            global: (0, 0),
            max: (0, 0),
        }
    }
}

impl Marks {
    fn bucket(db: u32, key: &[u8]) -> usize {
        (crate::storage::table::hash(key) as usize ^ db as usize) % MARK_BUCKETS
    }

    fn bump(m: &mut (u64, u64), mode: Mode, id: u64) {
        match mode {
            Mode::Exclusive => m.0 = m.0.max(id),
            Mode::Shared => m.1 = m.1.max(id),
        }
    }

    /// Records that transaction `id` with `keys` ran an armed hop here.
    fn ran(&mut self, id: u64, keys: &ShardKeys) {
        if let Some(g) = keys.global {
            Self::bump(&mut self.global, g, id);
        }
        for (db, k, m) in &keys.keys {
            Self::bump(&mut self.buckets[Self::bucket(*db, k)], *m, id);
            Self::bump(&mut self.max, *m, id);
        }
    }

    /// True when transaction `id` with `keys` arrives too late (see the type docs).
    fn too_late(&self, id: u64, keys: &ShardKeys) -> bool {
        let late = |mark: (u64, u64), m: Mode| match m {
            Mode::Exclusive => id < mark.0 || id < mark.1,
            Mode::Shared => id < mark.0,
        };
        if let Some(g) = keys.global {
            if late(self.global, g) || late(self.max, g) {
                return true;
            }
        }
        keys.keys
            .iter()
            .any(|(db, k, m)| late(self.global, *m) || late(self.buckets[Self::bucket(*db, k)], *m))
    }
}

impl TxState {
    fn key_count(&self, db: u32, key: &[u8]) -> Count {
        self.locks
            .get(db as usize)
            .and_then(|m| m.get(key))
            .copied()
            .unwrap_or_default()
    }

    /// True when intents on `keys` would conflict with intents already here.
    fn conflicts(&self, keys: &ShardKeys) -> bool {
        if let Some(g) = keys.global {
            if self.global.conflicts(g) || self.any.conflicts(g) {
                return true;
            }
        }
        keys.keys
            .iter()
            .any(|(db, k, m)| self.global.conflicts(*m) || self.key_count(*db, k).conflicts(*m))
    }

    fn acquire(&mut self, keys: &ShardKeys) {
        if let Some(g) = keys.global {
            self.global.add(g);
        }
        for (db, k, m) in &keys.keys {
            let db = *db as usize;
            if self.locks.len() <= db {
                self.locks.resize_with(db + 1, HashMap::new);
            }
            self.locks[db].entry(k.clone()).or_default().add(*m);
            self.any.add(*m);
        }
    }

    fn release_keys(&mut self, keys: &ShardKeys) {
        if let Some(g) = keys.global {
            self.global.sub(g);
        }
        for (db, k, m) in &keys.keys {
            if let Some(map) = self.locks.get_mut(*db as usize) {
                if let Some(c) = map.get_mut(&k[..]) {
                    c.sub(*m);
                    if c.is_zero() {
                        map.remove(&k[..]);
                    }
                }
            }
            self.any.sub(*m);
        }
    }

    /// Schedules transaction `id` with `keys` on this shard.
    ///
    /// Granted at once when no intent here conflicts (OOO). Otherwise queued
    /// in id order, to be granted at the head, unless a *granted* transaction
    /// with a higher id conflicts: waiting for it would be a wait on a higher
    /// id (a possible deadlock cycle), so the caller retries with a new id.
    pub fn schedule(&mut self, id: u64, keys: ShardKeys) -> Sched {
        if self.marks.too_late(id, &keys) {
            return Sched::Refused;
        }
        let free = !self.conflicts(&keys);
        if !free
            && self
                .queue
                .range(id + 1..)
                .any(|(_, e)| e.granted && overlaps(&e.keys, &keys))
        {
            return Sched::Refused;
        }
        self.acquire(&keys);
        if free {
            self.queue.insert(
                id,
                Entry {
                    granted: true,
                    waker: None,
                    keys,
                    armed: None,
                },
            );
            return Sched::Granted;
        }
        // Conflicting only with waiting transactions of higher ids, it may be the head.
        let head = self.queue.keys().next().is_none_or(|&h| h > id);
        if head {
            self.queue.insert(
                id,
                Entry {
                    granted: true,
                    waker: None,
                    keys,
                    armed: None,
                },
            );
            return Sched::Granted;
        }
        let (tx, rx) = oneshot::channel();
        self.queue.insert(
            id,
            Entry {
                granted: false,
                waker: Some(tx),
                keys,
                armed: None,
            },
        );
        Sched::Queued(rx)
    }

    /// Releases transaction `id` (done or cancelled); [`TxState::grant_head`] follows.
    fn release(&mut self, id: u64) {
        if let Some(e) = self.queue.remove(&id) {
            self.release_keys(&e.keys);
        }
    }

    /// Grants the head of the queue. Returns its armed last hop when it has
    /// one: the caller runs it (see [`release`]).
    fn grant_head(&mut self) -> Option<(u64, Work)> {
        if let Some((&hid, head)) = self.queue.iter_mut().next() {
            if !head.granted {
                head.granted = true;
                if let Some(w) = head.waker.take() {
                    let _ = w.send(());
                }
                if let Some(work) = head.armed.take() {
                    self.marks.ran(hid, &head.keys);
                    return Some((hid, work));
                }
            }
        }
        None
    }

    /// Arms transaction `id`'s last hop: Some(work) back when it is granted
    /// already (the caller runs it now), else kept to run when granted.
    fn arm(&mut self, id: u64, work: Work) -> Option<Work> {
        match self.queue.get_mut(&id) {
            Some(e) if !e.granted => {
                e.armed = Some(work);
                None
            }
            Some(e) => {
                self.marks.ran(id, &e.keys);
                Some(work)
            }
            None => Some(work),
        }
    }

    /// True when a command with `mode` on these keys must wait for a queued transaction.
    fn must_wait(&self, db: u32, keys: &[&[u8]], mode: Mode) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        self.global.conflicts(mode) || keys.iter().any(|k| self.key_count(db, k).conflicts(mode))
    }
}

/// Releases transaction `id` on this shard and runs the armed last hops of
/// the transactions that become runnable (each of which releases in turn).
/// Each one's AOF part is appended before the next one runs.
pub fn release(core: &Rc<Core>, id: u64) {
    release_with(core, id, true);
}

/// Releases a scheduling attempt that never ran (refused elsewhere): no AOF part.
fn cancel(core: &Rc<Core>, id: u64) {
    release_with(core, id, false);
}

fn release_with(core: &Rc<Core>, id: u64, log: bool) {
    if log {
        log_part(core, id);
    }
    core.tx.borrow_mut().release(id);
    // Clients blocked on keys the transaction made ready were left waiting
    // while it held them (see [`held`]): they are served now, before the
    // next transaction is granted, as Redis serves them right after the
    // EXEC or script.
    super::blocking::after_shard_work(core);
    let mut next = core.tx.borrow_mut().grant_head();
    while let Some((hid, work)) = next {
        let send = work(core);
        log_part(core, hid);
        core.tx.borrow_mut().release(hid);
        super::blocking::after_shard_work(core);
        next = core.tx.borrow_mut().grant_head();
        send();
    }
}

/// True when a granted, not yet released transaction holds `key` of
/// database `db` on this shard (or the whole shard): blocked clients are not
/// served from it until it releases, as Redis serves them after the EXEC or
/// script that made their key ready, never in its middle.
pub fn held(core: &Core, db: usize, key: &[u8]) -> bool {
    let st = core.tx.borrow();
    if st.queue.is_empty() {
        return false;
    }
    st.queue.values().any(|e| {
        e.granted
            && (e.keys.global.is_some()
                || e.keys
                    .keys
                    .iter()
                    .any(|(d, k, _)| *d as usize == db && &k[..] == key))
    })
}

/// Appends transaction `id`'s AOF part on this shard (when it has one).
fn log_part(core: &Rc<Core>, id: u64) {
    let part = {
        let st = core.tx.borrow();
        st.queue.get(&id).and_then(|e| {
            let mark = e.keys.aof.clone()?;
            let keys: Vec<(usize, Bytes)> = match mark.log {
                AofLog::KeyStates => e
                    .keys
                    .keys
                    .iter()
                    .filter(|k| k.2 == Mode::Exclusive)
                    .map(|k| (k.0 as usize, k.1.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            Some((mark, e.keys.writes(), keys))
        })
    };
    if let Some((mark, writes, keys)) = part {
        crate::persistence::aof::finish_part(core, id, &mark, writes, &keys);
    }
}

/// The transaction whose AOF part a write on `keys` of database `db` (or a
/// keyless write, with no keys) on this shard belongs to: the granted one
/// holding them (or the whole shard) exclusively. None for every write made
/// outside a logged transaction.
pub fn aof_owner(core: &Core, db: usize, keys: &[&[u8]]) -> Option<u64> {
    let st = core.tx.borrow();
    if st.queue.is_empty() {
        return None;
    }
    for (&id, e) in &st.queue {
        if !e.granted || e.keys.aof.is_none() {
            continue;
        }
        if e.keys.global == Some(Mode::Exclusive) {
            return Some(id);
        }
        let holds = keys.iter().any(|k| {
            e.keys
                .keys
                .iter()
                .any(|(d, x, m)| *m == Mode::Exclusive && *d as usize == db && &x[..] == *k)
        });
        if holds {
            return Some(id);
        }
    }
    None
}

/// True when two transactions' intents on one shard conflict.
fn overlaps(a: &ShardKeys, b: &ShardKeys) -> bool {
    let clash = |x: Mode, y: Mode| x == Mode::Exclusive || y == Mode::Exclusive;
    if let Some(ga) = a.global {
        if b.global.is_some_and(|gb| clash(ga, gb)) || b.keys.iter().any(|k| clash(ga, k.2)) {
            return true;
        }
    }
    if let Some(gb) = b.global {
        if a.keys.iter().any(|k| clash(gb, k.2)) {
            return true;
        }
    }
    a.keys.iter().any(|(da, ka, ma)| {
        b.keys
            .iter()
            .any(|(db, kb, mb)| da == db && ka == kb && clash(*ma, *mb))
    })
}

/// True when `client` is running EXEC (or a script): blocking commands must
/// not block (Redis's CLIENT_DENY_BLOCKING) and coordinators run under its locks.
pub fn in_exec(core: &Core, client: u64) -> bool {
    core.tx.borrow().in_exec.contains(&client)
}

/// True when the single-shard command must queue behind a transaction.
#[inline]
pub fn blocked(core: &Core, cmd: &Command, argv: &[&[u8]], db: usize) -> bool {
    let st = core.tx.borrow();
    if st.queue.is_empty() {
        return false;
    }
    let keys: SmallVec<[&[u8]; 4]> = cmd.key_positions(argv).iter().map(|&i| argv[i]).collect();
    st.must_wait(db as u32, &keys, Mode::of(cmd))
}

/// Runs a single-shard command that [`blocked`] said must wait: queued as a
/// one-shard transaction (a fresh id, never refused), run when granted.
pub async fn run_queued(
    core: &Rc<Core>,
    cmd: &'static Command,
    argv: &[&[u8]],
    db: usize,
    out: &mut ReplyBuf,
) {
    let mode = Mode::of(cmd);
    let mut keys = ShardKeys::default();
    for i in cmd.key_positions(argv) {
        keys.add(db as u32, Bytes::copy_from_slice(argv[i]), mode);
    }
    let id = next_id();
    let sched = core.tx.borrow_mut().schedule(id, keys);
    // Released even if this future is dropped while it waits.
    let _guard = Release { core, id };

    if let Sched::Queued(rx) = sched {
        let _ = rx.await;
    }
    // Its time is when it runs, not when it arrived.
    let now = super::core::now_ms();
    let mut shard = core.shard.borrow_mut();
    let mut lap = exec::Lap::start();
    exec::run_shard_cmd(core, &mut shard, cmd, argv, db, now, &mut lap, out);
}

/// Releases a one-shard transaction of this core when dropped.
struct Release<'a> {
    core: &'a Rc<Core>,
    id: u64,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        release(self.core, self.id);
    }
}

/// A multi-shard transaction, from the coordinator's side.
///
/// ```ignore
/// let mut tx = Tx::new(&ctx);
/// tx.keys(&ctx.argv[1..], Mode::Exclusive);
/// tx.schedule().await;
/// let r = tx.run_all(|shard, core| ...).await;
/// tx.conclude().await;
/// ```
pub struct Tx {
    core: Rc<Core>,
    db: usize,
    /// Declared keys by shard (index = shard).
    parts: Vec<Option<ShardKeys>>,
    id: u64,
    /// Scheduled and not yet released.
    live: bool,
    /// Inside a running EXEC/script: its locks cover us; no scheduling.
    passthrough: bool,
    /// Grants not yet received (after `schedule_single_hop`).
    pending: RefCell<Vec<oneshot::Receiver<()>>>,
    /// How its writes go to the AOF (None: not as a transaction part).
    aof: Option<AofLog>,
    /// The client of a coordinator: told when its command was logged at release.
    client: Option<Rc<super::client::Client>>,
}

impl Tx {
    /// A transaction for a coordinator's command (passthrough inside EXEC).
    pub fn new(ctx: &MultiCtx) -> Tx {
        let passthrough = in_exec(&ctx.core, ctx.client.id);
        let mut t = Tx::with(ctx.core.clone(), ctx.db, passthrough);
        // A coordinator's writes are logged at release as their effect.
        if ctx.cmd.flags().contains(CmdFlags::WRITE) {
            let av: SmallVec<[&[u8]; 8]> = ctx.argv.iter().map(|a| &a[..]).collect();
            t.aof = Some(if ctx.cmd.key_positions(&av).is_empty() {
                AofLog::Verbatim(ctx.db, std::sync::Arc::new(ctx.argv.clone()))
            } else {
                AofLog::KeyStates
            });
            t.client = Some(ctx.client.clone());
        }
        t
    }

    /// Not an AOF transaction part (the AOF rewrite's and snapshots' cuts).
    pub fn without_aof(mut self) -> Tx {
        self.aof = None;
        self
    }

    /// A transaction on `core` for database `db`.
    pub fn with(core: Rc<Core>, db: usize, passthrough: bool) -> Tx {
        let n = core.nshards;
        Tx {
            core,
            db,
            parts: (0..n).map(|_| None).collect(),
            id: 0,
            live: false,
            passthrough,
            pending: RefCell::new(Vec::new()),
            aof: Some(AofLog::Commands),
            client: None,
        }
    }

    /// Declares a key of the selected database.
    pub fn key(&mut self, key: &Bytes, mode: Mode) -> &mut Self {
        self.key_in(self.db, key, mode)
    }

    /// Declares a key of database `db`.
    pub fn key_in(&mut self, db: usize, key: &Bytes, mode: Mode) -> &mut Self {
        let s = shard_of_key(key, self.core.nshards);
        self.parts[s]
            .get_or_insert_with(ShardKeys::default)
            .add(db as u32, key.clone(), mode);
        self
    }

    /// Declares several keys of the selected database.
    pub fn keys(&mut self, keys: &[Bytes], mode: Mode) -> &mut Self {
        for k in keys {
            self.key(k, mode);
        }
        self
    }

    /// Declares the whole keyspace of every shard (FLUSHALL, DBSIZE, KEYS...).
    pub fn global(&mut self, mode: Mode) -> &mut Self {
        for p in self.parts.iter_mut() {
            let p = p.get_or_insert_with(ShardKeys::default);
            p.global = Some(p.global.map_or(mode, |g| g.max(mode)));
        }
        self
    }

    /// The shards this transaction touches, in order.
    pub fn shards(&self) -> Vec<usize> {
        (0..self.parts.len())
            .filter(|&s| self.parts[s].is_some())
            .collect()
    }

    /// Takes the locks on every involved shard and waits until granted everywhere.
    pub async fn schedule(&mut self) {
        self.schedule_single_hop().await;
        self.granted().await;
    }

    /// Waits for the grants `schedule_single_hop` did not wait for.
    async fn granted(&self) {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        for rx in pending {
            let _ = rx.await;
        }
    }

    /// Takes the locks on every involved shard without waiting for the grants:
    /// for a transaction whose only hop is `run_each_last`/`run_all_last`,
    /// which then runs on each shard the moment it is granted there.
    pub async fn schedule_single_hop(&mut self) {
        if self.passthrough || self.live {
            return;
        }
        let shards = self.shards();
        if shards.is_empty() {
            return;
        }
        if let Some(log) = self
            .aof
            .clone()
            .filter(|_| crate::persistence::aof::enabled())
        {
            let writers = self.parts.iter().flatten().filter(|p| p.writes()).count() as u16;
            for p in self.parts.iter_mut().flatten() {
                p.aof = Some(AofMark {
                    writers,
                    log: log.clone(),
                });
            }
            if let Some(c) = &self.client {
                c.aof_logged.set(true);
            }
        }
        loop {
            let id = next_id();
            let mut waits = Vec::with_capacity(shards.len());
            for &s in &shards {
                let keys = self.parts[s].clone().unwrap_or_default();
                waits.push(
                    self.core
                        .run_on(s, move |c| c.tx.borrow_mut().schedule(id, keys)),
                );
            }
            let res = futures::future::join_all(waits).await;
            let refused = res.iter().any(|r| matches!(r, Some(Sched::Refused) | None));
            if refused {
                // Undo where it was queued, then retry with a newer id.
                let mut undo = Vec::new();
                for (r, &s) in res.iter().zip(&shards) {
                    if matches!(r, Some(Sched::Granted | Sched::Queued(_))) {
                        undo.push(self.core.run_on(s, move |c| cancel(c, id)));
                    }
                }
                futures::future::join_all(undo).await;
                if self.core.shutting_down.get() {
                    return;
                }
                continue;
            }
            self.id = id;
            self.live = true;
            let mut pending = self.pending.borrow_mut();
            for r in res.into_iter().flatten() {
                if let Sched::Queued(rx) = r {
                    pending.push(rx);
                }
            }
            return;
        }
    }

    /// Runs `f` on shard `shard` (a hop, or inline on this core).
    pub async fn run<R, F>(&self, shard: usize, f: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Rc<Core>) -> R + Send + 'static,
    {
        self.granted().await;
        self.core.run_on(shard, f).await
    }

    /// Runs `f(shard index, core)` on every involved shard in parallel; results in shard order.
    pub async fn run_all<R, F>(&self, f: F) -> Vec<(usize, R)>
    where
        R: Send + 'static,
        F: Fn(usize, &Rc<Core>) -> R + Send + Clone + 'static,
    {
        self.granted().await;
        let shards = self.shards();
        let mut waits = Vec::with_capacity(shards.len());
        for &s in &shards {
            let g = f.clone();
            waits.push(self.core.run_on(s, move |c| g(s, c)));
        }
        let res = futures::future::join_all(waits).await;
        shards
            .into_iter()
            .zip(res)
            .filter_map(|(s, r)| r.map(|r| (s, r)))
            .collect()
    }

    /// Runs `f(shard index, core, item)` on each shard with an item, in parallel.
    pub async fn run_each<T, R, F>(&self, items: Vec<(usize, T)>, f: F) -> Vec<(usize, R)>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(usize, &Rc<Core>, T) -> R + Send + Clone + 'static,
    {
        self.granted().await;
        let mut waits = Vec::with_capacity(items.len());
        let mut order = Vec::with_capacity(items.len());
        for (s, item) in items {
            let g = f.clone();
            order.push(s);
            waits.push(self.core.run_on(s, move |c| g(s, c, item)));
        }
        let res = futures::future::join_all(waits).await;
        order
            .into_iter()
            .zip(res)
            .filter_map(|(s, r)| r.map(|r| (s, r)))
            .collect()
    }

    /// Like [`Tx::run_each`], and releases the locks in the same hop (the last hop).
    pub async fn run_each_last<T, R, F>(mut self, items: Vec<(usize, T)>, f: F) -> Vec<(usize, R)>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(usize, &Rc<Core>, T) -> R + Send + Clone + 'static,
    {
        let release_id = if self.live { Some(self.id) } else { None };
        self.live = false;
        let mut waits = Vec::with_capacity(items.len());
        let mut order = Vec::with_capacity(items.len());
        let mut done = vec![false; self.parts.len()];
        for (s, item) in items {
            let g = f.clone();
            order.push(s);
            done[s] = true;
            let (rtx, rrx) = oneshot::channel();
            let sent = self.core.run_on(s, move |c| {
                let work: Work = Box::new(move |c: &Rc<Core>| {
                    let r = g(s, c, item);
                    Box::new(move || {
                        let _ = rtx.send(r);
                    })
                });
                // Runs now if granted here, else when it is (no round trip
                // then): `release` runs it and releases the transaction.
                match release_id {
                    Some(id) => {
                        let now = c.tx.borrow_mut().arm(id, work);
                        if let Some(work) = now {
                            let send = work(c);
                            release(c, id);
                            send();
                        }
                    }
                    None => work(c)(),
                }
            });
            waits.push(async move {
                sent.await?;
                rrx.await.ok()
            });
        }
        let res = futures::future::join_all(waits).await;
        // Shards without work are released only after the last writes landed:
        // a plain read there must not see the transaction half done.
        let mut rest = Vec::new();
        if let Some(id) = release_id {
            for s in self.shards() {
                if !done[s] {
                    rest.push(self.core.run_on(s, move |c| release(c, id)));
                }
            }
        }
        futures::future::join_all(rest).await;
        order
            .into_iter()
            .zip(res)
            .filter_map(|(s, r)| r.map(|r| (s, r)))
            .collect()
    }

    /// Like [`Tx::run_all`], and releases the locks in the same hop.
    pub async fn run_all_last<R, F>(self, f: F) -> Vec<(usize, R)>
    where
        R: Send + 'static,
        F: Fn(usize, &Rc<Core>) -> R + Send + Clone + 'static,
    {
        let items: Vec<(usize, ())> = self.shards().into_iter().map(|s| (s, ())).collect();
        self.run_each_last(items, move |s, c, ()| f(s, c)).await
    }

    /// Releases the locks everywhere.
    pub async fn conclude(self) {
        self.end(true).await;
    }

    /// Releases the locks everywhere when nothing was written (an EXEC whose
    /// WATCH failed): no AOF parts.
    pub async fn abandon(self) {
        self.end(false).await;
    }

    async fn end(mut self, log: bool) {
        if !self.live {
            return;
        }
        self.live = false;
        let id = self.id;
        let mut waits = Vec::new();
        for s in self.shards() {
            waits.push(self.core.run_on(s, move |c| release_with(c, id, log)));
        }
        futures::future::join_all(waits).await;
    }
}

impl Drop for Tx {
    /// A transaction dropped mid-way (its connection went away) still releases its locks.
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        let id = self.id;
        let core = self.core.clone();
        let shards = self.shards();
        glommio::spawn_local(async move {
            for s in shards {
                core.run_on(s, move |c| release(c, id)).await;
            }
        })
        .detach();
    }
}

/// A command of an EXEC block (or a script) with its arguments.
pub type Queued = (&'static Command, Vec<Bytes>);

/// Declares the locks a block of commands needs, starting in database `db`:
/// its commands' keys, or the whole keyspace when a command touches it
/// without declaring keys (FLUSHALL, KEYS, SELECT...).
pub fn plan_block(tx: &mut Tx, db: usize, cmds: &[Queued]) {
    let mut global: Option<Mode> = None;
    for (cmd, argv) in cmds {
        let mode = Mode::of(cmd);
        match cmd.exec {
            Exec::Shard(_) | Exec::Keys(..) => {
                let av: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
                for i in cmd.key_positions(&av) {
                    tx.key_in(db, &argv[i], mode);
                }
            }
            // Blocking commands (BLPOP...) declare their keys like any keyed command.
            Exec::Multi(_) if cmd.flags().contains(CmdFlags::BLOCKING) => {
                let av: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
                for i in cmd.key_positions(&av) {
                    tx.key_in(db, &argv[i], mode);
                }
            }
            Exec::Multi(_) => global = Some(global.map_or(mode, |g| g.max(mode))),
            Exec::ConnBarrier(_) if cmd.name == "select" => global = Some(Mode::Exclusive),
            _ => {}
        }
    }
    if let Some(g) = global {
        tx.global(g);
    }
}

/// Coordinators that schedule their own transaction (with the cheaper
/// single-hop path where they can); every other multi-key coordinator is
/// wrapped by [`run_coordinator`].
const SELF_SCHEDULING: &[&str] = &[
    "mget", "mset", "msetnx", "del", "unlink", "exists", "touch", "rename", "renamenx", "copy",
    "lcs",
];

/// Runs a coordinator from the connection loop. A multi-key command whose
/// keys span shards (`Exec::Keys`) and that does not schedule a transaction
/// itself runs under one locking all its keys (SMOVE, SUNIONSTORE, LMOVE,
/// ZUNIONSTORE...), so it is atomic and isolated whatever its hops.
pub async fn run_coordinator(ctx: MultiCtx, f: crate::commands::MultiFn) -> ReplyBuf {
    let cmd = ctx.cmd;
    if !matches!(cmd.exec, Exec::Keys(..))
        || SELF_SCHEDULING.contains(&cmd.name)
        || in_exec(&ctx.core, ctx.client.id)
    {
        return f(ctx).await;
    }
    let mode = Mode::of(cmd);
    let mut tx = Tx::new(&ctx);
    {
        let av: SmallVec<[&[u8]; 8]> = ctx.argv.iter().map(|a| &a[..]).collect();
        for i in cmd.key_positions(&av) {
            tx.key(&ctx.argv[i], mode);
        }
    }
    tx.schedule().await;
    let (core, client) = (ctx.core.clone(), ctx.client.id);
    core.tx.borrow_mut().in_exec.insert(client);
    let reply = f(ctx).await;
    core.tx.borrow_mut().in_exec.remove(&client);
    tx.conclude().await;
    reply
}

/// Which core-local part of a block runs where.
enum Step {
    /// Shard commands by shard: (command index, shard).
    Shards(Vec<(usize, usize)>),
    /// One command run alone on the connection's core.
    Alone(usize),
}

/// Runs a block of commands under a scheduled transaction and writes each
/// reply into `out` in order (EXEC's array elements; a script's calls).
///
/// This is also the hook for scripts: declare the script's keys (or
/// `global` for undeclared access) on a [`Tx`], `schedule`, then run each
/// `redis.call` as a one-command block here; coordinators and blocking
/// commands see [`in_exec`] and neither re-schedule nor block.
///
/// Runs of single-shard commands go to their shards in one hop per shard, in
/// parallel: under the transaction's locks, commands on different shards
/// touch disjoint keys and commute.
pub async fn run_block(ctx: &MultiCtx, cmds: Vec<Queued>, out: &mut ReplyBuf) {
    block(ctx, cmds, out, None).await
}

/// A key's before-image: (database, key, its value and absolute expiry as
/// stored, or None when it did not exist).
pub type KeyImage = (usize, Bytes, Option<(OwnedValue, Option<u64>)>);

/// The undo log of a script run that locks only its declared keys.
///
/// Such a run may reach a key it did not declare after it wrote (its key
/// access depends on data). It cannot go on (that key is not locked), and
/// stopping it there would leave half a script applied, which Redis never
/// does. So before the first write command that touches a key, the key's
/// before-image is captured on its shard, in the same hop as that command
/// ([`run_block_undo`]); at an undeclared key, [`rollback`] puts every
/// captured key back on its shard and drops what the run had put in the
/// transaction's AOF part there, all while the run still holds its locks:
/// nobody saw the intermediate state (blocked clients included: see
/// [`held`]), nothing of it is ever logged, and the script then reruns under
/// the global lock as if the keyed run had not happened.
///
/// Every write of a keyed run is on declared keys (an undeclared one stops
/// the run before its command runs), so the images cover everything it
/// changed. What is not undone, and need not be: WATCH marks of the keys
/// (EXEC of a watcher fails, as after any write: conservative), command
/// statistics and the BGSAVE dirty counter (the commands did run), keys
/// found expired and deleted on the way (they were logically gone already),
/// and a key's LRU clock (a restored key counts as just written).
#[derive(Default)]
pub struct UndoLog {
    /// Keys captured already, (database, key): only the first write's image counts.
    seen: HashSet<(usize, Bytes)>,
    /// The images, with the shard each lives on.
    images: Vec<(usize, KeyImage)>,
}

impl UndoLog {
    /// The keys of a write command not captured yet (marked captured now), by shard.
    fn claim(
        &mut self,
        core: &Core,
        db: usize,
        cmd: &Command,
        argv: &[Bytes],
    ) -> Vec<(usize, (usize, Bytes))> {
        if !cmd.flags().contains(CmdFlags::WRITE) {
            return Vec::new();
        }
        let av: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
        let mut out = Vec::new();
        for i in cmd.key_positions(&av) {
            let k = argv[i].clone();
            if self.seen.insert((db, k.clone())) {
                out.push((shard_of_key(&k, core.nshards), (db, k)));
            }
        }
        out
    }

    /// True when nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// Captures the before-images of `keys` on this shard (see [`UndoLog`]).
fn capture(c: &Rc<Core>, keys: Vec<(usize, Bytes)>, now: u64) -> Vec<KeyImage> {
    if keys.is_empty() {
        return Vec::new();
    }
    let mut shard = c.shard.borrow_mut();
    keys.into_iter()
        .map(|(db, k)| {
            let img = shard.dbs.get_mut(db).and_then(|d| {
                d.find(&k, now, crate::storage::db::Access::Silent)
                    .map(|p| d.image_at(p))
            });
            (db, k, img)
        })
        .collect()
}

/// Puts the keys of `images` back as they were on this shard and forgets
/// transaction `id`'s AOF part here (see [`UndoLog`]).
fn restore(c: &Rc<Core>, id: u64, images: Vec<KeyImage>) {
    let now = super::core::now_ms();
    {
        let mut shard = c.shard.borrow_mut();
        for (db, k, img) in images {
            let Some(d) = shard.dbs.get_mut(db) else {
                continue;
            };
            match img {
                Some((v, at)) => d.insert_owned(&k, v, at, now),
                None => {
                    d.delete(&k, now);
                }
            }
        }
    }
    crate::persistence::aof::discard_part(id);
}

/// Undoes a keyed script run (see [`UndoLog`]) under its still-held locks:
/// one hop per shard of `tx`, each restoring its images and dropping the
/// run's AOF part there. The caller then ends `tx` without logging.
pub async fn rollback(tx: &Tx, undo: UndoLog) {
    let id = tx.id;
    let mut per: Vec<Vec<KeyImage>> = (0..tx.parts.len()).map(|_| Vec::new()).collect();
    for (s, img) in undo.images {
        per[s].push(img);
    }
    let items: Vec<(usize, Vec<KeyImage>)> = tx
        .shards()
        .into_iter()
        .map(|s| (s, std::mem::take(&mut per[s])))
        .collect();
    tx.run_each(items, move |_, c, imgs| restore(c, id, imgs))
        .await;
}

/// [`run_block`] for a keyed script run: captures the before-image of each
/// key a write command touches first into `undo` (see [`UndoLog`]).
pub async fn run_block_undo(
    ctx: &MultiCtx,
    cmds: Vec<Queued>,
    out: &mut ReplyBuf,
    undo: &RefCell<UndoLog>,
) {
    block(ctx, cmds, out, Some(undo)).await
}

/// [`run_block`], with the undo capture of a keyed script run when `undo` is given.
async fn block(
    ctx: &MultiCtx,
    cmds: Vec<Queued>,
    out: &mut ReplyBuf,
    undo: Option<&RefCell<UndoLog>>,
) {
    let core = &ctx.core;
    core.tx.borrow_mut().in_exec.insert(ctx.client.id);
    // Blocking commands act as their non-blocking forms (CLIENT_DENY_BLOCKING).
    let deny = ctx.client.deny_blocking.replace(true);
    let mut i = 0;
    let n = cmds.len();
    while i < n {
        let db = ctx.client.info.borrow().db;
        let proto = ctx.client.info.borrow().proto;
        // A run of commands that live on one shard each.
        let mut run = Vec::new();
        while i < n {
            let (cmd, argv) = &cmds[i];
            if !matches!(cmd.exec, Exec::Shard(_) | Exec::Keys(..)) {
                break;
            }
            let av: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
            match exec::route(core, cmd, &av) {
                Some(s) => run.push((i, s)),
                None => break,
            }
            i += 1;
        }
        let step = if run.is_empty() {
            i += 1;
            Step::Alone(i - 1)
        } else {
            Step::Shards(run)
        };
        match step {
            Step::Shards(run) => {
                let mut per: Vec<Vec<(u16, Vec<Bytes>)>> = vec![Vec::new(); core.nshards];
                // Keys to capture before the commands run, by shard (same hop).
                let mut cap: Vec<Vec<(usize, Bytes)>> = vec![Vec::new(); core.nshards];
                for &(k, s) in &run {
                    per[s].push((cmds[k].0.id, cmds[k].1.clone()));
                    if let Some(u) = undo {
                        for (ks, key) in u.borrow_mut().claim(core, db, cmds[k].0, &cmds[k].1) {
                            cap[ks].push(key);
                        }
                    }
                }
                let now = super::core::now_ms();
                let mut waits = Vec::new();
                let mut order = Vec::new();
                for (s, list) in per.into_iter().enumerate() {
                    if list.is_empty() {
                        continue;
                    }
                    order.push(s);
                    let keys = std::mem::take(&mut cap[s]);
                    waits.push(core.run_on(s, move |c| {
                        let imgs = capture(c, keys, now);
                        (run_list(c, &list, db, proto, now), imgs)
                    }));
                }
                let res = futures::future::join_all(waits).await;
                let mut replies = Vec::with_capacity(order.len());
                for (s, r) in order.into_iter().zip(res) {
                    let Some((r, imgs)) = r else { continue };
                    if let Some(u) = undo {
                        u.borrow_mut()
                            .images
                            .extend(imgs.into_iter().map(|i| (s, i)));
                    }
                    replies.push((s, r));
                }
                assemble(core.nshards, &run, replies, out);
            }
            Step::Alone(k) => {
                let (cmd, argv) = &cmds[k];
                let start = std::time::Instant::now();
                let before = out.len();
                match cmd.exec {
                    Exec::Conn(f) | Exec::ConnBarrier(f) => {
                        let av: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
                        out.proto = proto;
                        let mut cctx = crate::commands::ConnCtx {
                            core,
                            client: &ctx.client,
                            out,
                            now_ms: super::core::now_ms(),
                        };
                        f(&mut cctx, &av);
                    }
                    Exec::Keys(_, f) | Exec::Multi(f) => {
                        if let Some(u) = undo {
                            // A coordinator makes its own hops: capture its keys first.
                            let claimed = u.borrow_mut().claim(core, db, cmd, argv);
                            let mut per: Vec<Vec<(usize, Bytes)>> = vec![Vec::new(); core.nshards];
                            for (s, key) in claimed {
                                per[s].push(key);
                            }
                            let now = super::core::now_ms();
                            let mut waits = Vec::new();
                            for (s, keys) in per.into_iter().enumerate() {
                                if !keys.is_empty() {
                                    waits.push(async move {
                                        (s, core.run_on(s, move |c| capture(c, keys, now)).await)
                                    });
                                }
                            }
                            for (s, imgs) in futures::future::join_all(waits).await {
                                let imgs = imgs.unwrap_or_default();
                                u.borrow_mut()
                                    .images
                                    .extend(imgs.into_iter().map(|i| (s, i)));
                            }
                        }
                        let sub = MultiCtx {
                            core: core.clone(),
                            client: ctx.client.clone(),
                            cmd,
                            argv: argv.clone(),
                            db,
                            proto,
                            now_ms: super::core::now_ms(),
                        };
                        let r = f(sub).await;
                        let av: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
                        crate::persistence::aof::after_multi(core, cmd, &av, db, &r.buf).await;
                        out.raw(&r.buf);
                    }
                    Exec::Shard(_) | Exec::Container => {
                        out.error("ERR unknown subcommand");
                    }
                }
                exec::record(core, cmd, start, &out.buf[before..]);
            }
        }
    }
    ctx.client.deny_blocking.set(deny);
    core.tx.borrow_mut().in_exec.remove(&ctx.client.id);
}

/// Shard commands of a block for one shard: (command id, arguments).
type CmdList = Vec<(u16, Vec<Bytes>)>;

/// Replies of a list of shard commands: encoded back to back, with each end offset.
type ListReplies = (Vec<u8>, Vec<usize>);

/// Runs a list of shard commands on this core's shard (part of a block).
fn run_list(
    c: &Rc<Core>,
    list: &[(u16, Vec<Bytes>)],
    db: usize,
    proto: crate::protocol::reply::Proto,
    now: u64,
) -> ListReplies {
    let table = crate::commands::CommandTable::get();
    let mut buf = ReplyBuf::new(proto);
    let mut ends = Vec::with_capacity(list.len());
    let mut shard = c.shard.borrow_mut();
    let mut lap = exec::Lap::start();
    for (id, argv) in list {
        let av: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
        let cmd = &table.cmds[*id as usize];
        exec::run_shard_cmd(c, &mut shard, cmd, &av, db, now, &mut lap, &mut buf);
        ends.push(buf.len());
    }
    (buf.buf, ends)
}

/// Writes per-shard replies back in command order (`run`: (command index, shard)).
fn assemble(
    nshards: usize,
    run: &[(usize, usize)],
    res: Vec<(usize, ListReplies)>,
    out: &mut ReplyBuf,
) {
    let mut replies: Vec<Option<ListReplies>> = (0..nshards).map(|_| None).collect();
    for (s, r) in res {
        replies[s] = Some(r);
    }
    let mut next: Vec<usize> = vec![0; nshards];
    for &(_, s) in run {
        let Some((buf, ends)) = replies[s].as_ref() else {
            out.error("ERR server is shutting down");
            continue;
        };
        let k = next[s];
        let start = if k == 0 { 0 } else { ends[k - 1] };
        out.raw(&buf[start..ends[k]]);
        next[s] += 1;
    }
}

/// The shard of every command when the whole block is single-shard commands
/// (then EXEC is one armed hop per shard, like MSET).
pub fn single_segment(core: &Core, cmds: &[Queued]) -> Option<Vec<(usize, usize)>> {
    let mut run = Vec::with_capacity(cmds.len());
    for (i, (cmd, argv)) in cmds.iter().enumerate() {
        if !matches!(cmd.exec, Exec::Shard(_) | Exec::Keys(..)) {
            return None;
        }
        let av: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| &a[..]).collect();
        run.push((i, exec::route(core, cmd, &av)?));
    }
    Some(run)
}

/// Runs a block that [`single_segment`] accepted as the transaction's only,
/// armed hop (scheduled with `schedule_single_hop`); replies into `out`.
pub async fn run_single_segment(
    ctx: &MultiCtx,
    tx: Tx,
    cmds: Vec<Queued>,
    run: Vec<(usize, usize)>,
    out: &mut ReplyBuf,
) {
    let core = &ctx.core;
    let (db, proto) = {
        let info = ctx.client.info.borrow();
        (info.db, info.proto)
    };
    let mut per: Vec<CmdList> = vec![Vec::new(); core.nshards];
    for (&(_, s), (cmd, argv)) in run.iter().zip(cmds) {
        per[s].push((cmd.id, argv));
    }
    let items: Vec<(usize, CmdList)> = per
        .into_iter()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .collect();
    core.tx.borrow_mut().in_exec.insert(ctx.client.id);
    let res = tx
        .run_each_last(items, move |_, c, list| {
            run_list(c, &list, db, proto, super::core::now_ms())
        })
        .await;
    core.tx.borrow_mut().in_exec.remove(&ctx.client.id);
    assemble(core.nshards, &run, res, out);
}

/// Drops the WATCHes in `watched` (one hop per shard).
pub async fn unwatch(core: &Rc<Core>, watched: Vec<(usize, Bytes, usize, WatchMark)>) {
    if watched.is_empty() {
        return;
    }
    let mut per: Vec<Vec<(usize, Bytes)>> = vec![Vec::new(); core.nshards];
    for (db, k, s, _) in watched {
        per[s].push((db, k));
    }
    let mut waits = Vec::new();
    for (s, keys) in per.into_iter().enumerate() {
        if keys.is_empty() {
            continue;
        }
        waits.push(core.run_on(s, move |c| {
            let mut shard = c.shard.borrow_mut();
            for (db, k) in keys {
                if let Some(d) = shard.dbs.get_mut(db) {
                    d.watch_remove(&k);
                }
            }
        }));
    }
    futures::future::join_all(waits).await;
}

/// Forgets a connection's MULTI state and WATCHes (RESET, disconnect), in the background.
pub fn reset_client(core: &Rc<Core>, client: u64) {
    core.tx.borrow_mut().in_exec.remove(&client);
    let st = core.tx.borrow_mut().multi.remove(&client);
    if let Some(st) = st {
        if !st.watched.is_empty() {
            let core = core.clone();
            glommio::spawn_local(async move { unwatch(&core, st.watched).await }).detach();
        }
    }
}

/// True when `client` is between MULTI and EXEC.
#[inline]
pub fn in_multi(core: &Core, client: u64) -> bool {
    let st = core.tx.borrow();
    !st.multi.is_empty() && st.multi.get(&client).is_some_and(|m| m.in_multi)
}

/// Commands that run at once inside MULTI instead of being queued (as Redis's processCommand).
pub fn runs_in_multi(cmd: &Command) -> bool {
    matches!(
        cmd.name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Queues a command inside MULTI and replies +QUEUED (or refuses a `no-multi` command).
pub fn queue_command(
    core: &Core,
    client: u64,
    cmd: &'static Command,
    argv: &[&[u8]],
    out: &mut ReplyBuf,
) {
    let mut st = core.tx.borrow_mut();
    let m = st.multi.entry(client).or_default();
    if cmd.flags().contains(CmdFlags::NO_MULTI) {
        m.dirty_exec = true;
        drop(st);
        out.error("ERR Command not allowed inside a transaction");
        core.count_error("ERR");
        return;
    }
    m.queued.push((
        cmd,
        argv.iter().map(|a| Bytes::copy_from_slice(a)).collect(),
    ));
    out.simple("QUEUED");
}

/// A rejected EXEC (arity, auth): Redis's execCommandAbort discards the
/// transaction and wraps the error (`encoded`, a RESP error) in EXECABORT.
pub fn exec_abort(core: &Rc<Core>, client: u64, encoded: &[u8], out: &mut ReplyBuf) {
    let mut msg = encoded.strip_prefix(b"-").unwrap_or(encoded);
    msg = msg.strip_suffix(b"\r\n").unwrap_or(msg);
    // rejectCommandFormat's messages carry no ERR prefix; shared error objects do.
    msg = msg.strip_prefix(b"ERR ").unwrap_or(msg);
    let mut e = b"EXECABORT Transaction discarded because of: ".to_vec();
    e.extend_from_slice(msg);
    out.error_bytes(&e);
    reset_client(core, client);
}

/// A command was rejected while queuing (unknown, arity, auth): EXEC will abort.
pub fn flag_error(core: &Core, client: u64) {
    let mut st = core.tx.borrow_mut();
    if let Some(m) = st.multi.get_mut(&client) {
        if m.in_multi {
            m.dirty_exec = true;
        }
    }
}

/// The per-core state, for `Core::new`.
pub fn new_state() -> RefCell<TxState> {
    RefCell::new(TxState::default())
}
