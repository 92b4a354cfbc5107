//! Clients blocked on keys (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP): the framework.
//!
//! A blocked client has ONE `Ticket` shared by all its registrations, on every
//! shard its keys live on. Each shard keeps, per (db, key), a FIFO of waiters
//! (Redis's `db->blocking_keys`). A list only becomes non-empty by being created
//! and a sorted set likewise (clients block on missing keys only), so the keyspace records key creations
//! while anyone waits (`Db::created`, Redis's signalKeyAsReady from dbAdd) and
//! `serve_ready` runs after every command and every cross-core closure (Redis's
//! handleClientsBlockedOnKeys). A ready key that a running transaction holds
//! (EXEC, a script, a multi-key command: `tx::held`) waits until the
//! transaction releases it, as Redis serves blocked clients only after the
//! whole EXEC or script: a waiter never takes an element the transaction
//! pops again later, nor one a script rollback takes back.
//!
//! Exactly-once delivery: whoever flips the ticket's `claimed` flag first owns
//! the outcome. A shard serving a waiter claims, pops, and sends the elements;
//! if the client is gone (the channel is closed) it pushes them straight back.
//! A client that times out, is unblocked or disconnects claims too; when its
//! claim fails a value is in flight: it waits for it and replies it, or (on
//! disconnect) pushes it back where it came from. BLMOVE to a key on another
//! shard hands the element to that shard itself, never through the client.
//! Registrations are removed eagerly when the client stops waiting.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};

use super::client::Client;
use super::core::{now_ms, Core};
use super::shard::Shard;
use crate::commands::errors;
use crate::persistence::aof;
use crate::protocol::reply::ReplyBuf;
use crate::storage::db::{Access, Db, WrongType};
use crate::storage::list::{End, ListValue};
use crate::storage::value::{Kind, Object};
use crate::storage::zset::{ZLimits, ZSetValue};

/// Clients blocked right now, over all cores (INFO blocked_clients).
pub static BLOCKED_CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// What a waiter does with a key that became ready. An enum so that other
/// families (BZPOPMIN/BZPOPMAX/BZMPOP) can add their operations.
#[derive(Clone, Debug)]
pub enum Op {
    /// BLPOP/BRPOP: pop one element; reply `[key, element]`.
    Pop {
        /// The end popped from.
        end: End,
    },
    /// BLMPOP: pop up to `count` elements; reply `[key, [elements]]`.
    MPop {
        /// The end popped from.
        end: End,
        /// At most this many.
        count: usize,
    },
    /// BLMOVE/BRPOPLPUSH: pop at `from`, push on `dest` at `to`; reply the element.
    Move {
        /// The end popped from.
        from: End,
        /// The end pushed to.
        to: End,
        /// The destination key.
        dest: Box<[u8]>,
        /// The shard owning `dest`.
        dest_shard: usize,
    },
    /// BZPOPMIN/BZPOPMAX/BZMPOP: pop sorted-set members with their scores.
    ZPop {
        /// Highest scores first (BZPOPMAX, BZMPOP MAX).
        max: bool,
        /// BZMPOP's count: reply `[key, [[member, score], ...]]`; `None` for
        /// BZPOPMIN/BZPOPMAX: one member, reply `[key, member, score]`.
        count: Option<usize>,
    },
}

impl Op {
    /// The type of key this operation serves from (a key of another type leaves the waiter blocked).
    pub fn kind(&self) -> Kind {
        match self {
            Op::Pop { .. } | Op::MPop { .. } | Op::Move { .. } => Kind::List,
            Op::ZPop { .. } => Kind::ZSet,
        }
    }
}

/// What a served waiter gets.
#[derive(Debug)]
pub enum Served {
    /// Popped elements from `key` (one for BLPOP/BRPOP; `multi` for BLMPOP's nested reply).
    Pop {
        /// The key popped from.
        key: Box<[u8]>,
        /// The elements, in pop order.
        elems: Vec<Vec<u8>>,
        /// BLMPOP's `[key, [elements]]` shape rather than `[key, element]`.
        multi: bool,
    },
    /// Popped sorted-set members with their scores from `key`.
    ZPop {
        /// The key popped from.
        key: Box<[u8]>,
        /// (member, score) in pop order.
        elems: Vec<(Vec<u8>, f64)>,
        /// BZMPOP's `[key, [[member, score], ...]]` shape rather than `[key, member, score]`.
        multi: bool,
    },
    /// BLMOVE's element, already stored at its destination.
    Moved(Vec<u8>),
    /// An error reply (WRONGTYPE when BLMOVE's destination holds another type).
    Error(&'static str),
    /// Nothing after all (a claimed key turned out empty; cannot happen by construction,
    /// but a claim must always be answered): a null array, as a timeout.
    Nothing,
}

impl Served {
    /// Writes the reply.
    pub fn reply(&self, out: &mut ReplyBuf) {
        match self {
            Served::Pop { key, elems, multi } => {
                out.array_len(2);
                out.bulk(key);
                if *multi {
                    out.array_len(elems.len());
                    for e in elems {
                        out.bulk(e);
                    }
                } else {
                    out.bulk(elems.first().map_or(&[][..], |e| &e[..]));
                }
            }
            Served::ZPop { key, elems, multi } => {
                if *multi {
                    // genericZpopCommand with use_nested_array: pairs in both protocols.
                    out.array_len(2);
                    out.bulk(key);
                    out.array_len(elems.len());
                    for (m, s) in elems {
                        out.array_len(2);
                        out.bulk(m);
                        out.double(*s);
                    }
                } else {
                    out.array_len(3);
                    out.bulk(key);
                    match elems.first() {
                        Some((m, s)) => {
                            out.bulk(m);
                            out.double(*s);
                        }
                        // Cannot happen (a served key is never empty); keep the shape.
                        None => {
                            out.bulk(b"");
                            out.double(0.0);
                        }
                    }
                }
            }
            Served::Moved(e) => out.bulk(e),
            Served::Error(m) => out.error(m),
            Served::Nothing => out.null_array(),
        }
    }
}

/// Where popped elements came from, to give them back when their client is gone.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    /// The shard owning the key.
    pub shard: usize,
    /// The database.
    pub db: usize,
    /// The end they were popped from.
    pub end: End,
}

/// What a shard sends to the client it served.
#[derive(Debug)]
pub struct Delivery {
    /// The reply.
    pub served: Served,
    /// Set for pops: the elements of `served` go back there if the client cannot take them.
    pub origin: Option<Origin>,
}

/// One blocked command's claim flag, shared by all its registrations.
#[derive(Debug, Default)]
pub struct Ticket {
    claimed: AtomicBool,
}

impl Ticket {
    /// Takes the outcome; false when someone (a shard, a timeout) already did.
    pub fn claim(&self) -> bool {
        self.claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// True once claimed.
    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }
}

/// Where served values go.
pub type DeliveryTx = mpsc::UnboundedSender<Delivery>;

/// One registration of a blocked client on one key.
struct Waiter {
    ticket: Arc<Ticket>,
    op: Op,
    tx: DeliveryTx,
}

/// A shard's blocked clients, by database and key (FIFO per key), and its ready keys.
#[derive(Default)]
pub struct Registry {
    dbs: Vec<HashMap<Box<[u8]>, VecDeque<Waiter>>>,
    /// Keys with at least one waiter.
    nkeys: usize,
    ready: VecDeque<(usize, Box<[u8]>)>,
    /// `Db::uid` of each index when tracking started: a change means SWAPDB.
    uids: Vec<u64>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({} keys)", self.nkeys)
    }
}

impl Registry {
    /// Number of keys some client waits on (for tests and INFO-style checks).
    pub fn waited_keys(&self) -> usize {
        self.nkeys
    }

    /// Number of registrations (a client blocked on k keys counts k times).
    pub fn waiters(&self) -> usize {
        self.dbs
            .iter()
            .flat_map(|m| m.values())
            .map(|q| q.len())
            .sum()
    }

    fn queue(&mut self, db: usize, key: &[u8]) -> Option<&mut VecDeque<Waiter>> {
        self.dbs.get_mut(db)?.get_mut(key)
    }
}

/// Starts or stops recording key creations in every database of the shard.
fn set_tracking(dbs: &mut [Db], on: bool) {
    for d in dbs {
        d.track_created = on;
        if !on {
            d.created = Vec::new();
        }
    }
}

fn register(shard: &mut Shard, db: usize, key: &[u8], w: Waiter) {
    let reg = &mut shard.blocking;
    if reg.dbs.len() <= db {
        reg.dbs.resize_with(db + 1, HashMap::new);
    }
    let q = reg.dbs[db].entry(key.into()).or_default();
    if q.is_empty() {
        reg.nkeys += 1;
        if reg.nkeys == 1 {
            set_tracking(&mut shard.dbs, true);
            reg.uids = shard.dbs.iter().map(|d| d.uid).collect();
        }
    }
    q.push_back(w);
}

/// Forgets the queue of (db, key) when it is empty.
fn drop_if_empty(shard: &mut Shard, db: usize, key: &[u8]) {
    let reg = &mut shard.blocking;
    let Some(m) = reg.dbs.get_mut(db) else {
        return;
    };
    if m.get(key).is_some_and(|q| q.is_empty()) {
        m.remove(key);
        reg.nkeys -= 1;
        if reg.nkeys == 0 {
            set_tracking(&mut shard.dbs, false);
        }
    }
}

/// Removes the registrations of `ticket` on `keys` (the client stopped waiting).
pub fn unregister(shard: &mut Shard, db: usize, keys: &[Box<[u8]>], ticket: &Arc<Ticket>) {
    for k in keys {
        if let Some(q) = shard.blocking.queue(db, k) {
            q.retain(|w| !Arc::ptr_eq(&w.ticket, ticket));
        }
        drop_if_empty(shard, db, k);
    }
}

/// Pushes `elems` (in pop order) back at `end` of `key`, so the list reads as before the pop.
fn push_back(d: &mut Db, key: &[u8], end: End, elems: &[Vec<u8>], fill: i64, now: u64) {
    if push_elems(d, key, end, elems.iter().rev(), fill, now).is_err() {
        // The key became another type between pop and give-back (only possible
        // across a core hop): nowhere to put them.
        super::log::warning(&format!(
            "Blocking pop: {} element(s) of '{}' could not be given back: the key now holds another type",
            elems.len(),
            String::from_utf8_lossy(key)
        ));
    }
}

/// Gives popped members back to the sorted set `key` (created when missing) with
/// their scores. A member added again meanwhile keeps its newer score.
fn zadd_back(d: &mut Db, key: &[u8], elems: &[(Vec<u8>, f64)], lim: ZLimits, now: u64) {
    let Some((first, _)) = elems.first() else {
        return;
    };
    let pos = match d.find_kind(key, now, Access::Write, Kind::ZSet) {
        Ok(Some(p)) => p,
        Ok(None) => d.create_object(key, Object::ZSet(ZSetValue::new_for(lim, first.len())), now),
        Err(WrongType) => {
            // The key became another type between pop and give-back (only possible
            // across a core hop): nowhere to put them.
            super::log::warning(&format!(
                "Blocking pop: {} member(s) of '{}' could not be given back: the key now holds another type",
                elems.len(),
                String::from_utf8_lossy(key)
            ));
            return;
        }
    };
    let z = d.zset_mut(pos);
    for (m, s) in elems {
        if z.score(m).is_none() {
            z.set(m, *s, lim);
        }
    }
}

/// Pops up to `count` members (lowest or highest scores) of the sorted set at `key`
/// (known to be a non-empty sorted set) and deletes the key when it empties.
fn zpop_elems(d: &mut Db, key: &[u8], max: bool, count: usize, now: u64) -> Vec<(Vec<u8>, f64)> {
    let Ok(Some(pos)) = d.find_kind(key, now, Access::Write, Kind::ZSet) else {
        return Vec::new();
    };
    let z = d.zset_mut(pos);
    let out = if max {
        z.pop_max(count)
    } else {
        z.pop_min(count)
    };
    d.delete_if_empty(pos);
    out
}

/// Pushes `elems` at `end` of the list `key`, creating it when missing.
fn push_elems<'a>(
    d: &mut Db,
    key: &[u8],
    end: End,
    elems: impl Iterator<Item = &'a Vec<u8>>,
    fill: i64,
    now: u64,
) -> Result<(), WrongType> {
    let pos = match d.find_kind(key, now, Access::Write, Kind::List)? {
        Some(p) => p,
        None => d.create_object(key, Object::List(ListValue::with_fill(fill)), now),
    };
    let l = d.list_mut(pos);
    for e in elems {
        l.push(end, e);
    }
    Ok(())
}

/// Pops up to `count` elements at `end` of the list at `key` (known to be a non-empty list)
/// and deletes the key when it empties.
fn pop_elems(d: &mut Db, key: &[u8], end: End, count: usize, now: u64) -> Vec<Vec<u8>> {
    let Ok(Some(pos)) = d.find_kind(key, now, Access::Write, Kind::List) else {
        return Vec::new();
    };
    let l = d.list_mut(pos);
    let n = count.min(l.len());
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        match l.pop(end) {
            Some(e) => out.push(e),
            None => break,
        }
    }
    d.delete_if_empty(pos);
    out
}

/// Moves one element from `src` (a non-empty list) to `dest` (a list or missing) on one
/// shard, as lmoveGenericCommand: when they are the same key it is a rotation, so
/// the key is never deleted and re-created (its TTL stays).
fn move_one(
    d: &mut Db,
    src: &[u8],
    dest: &[u8],
    from: End,
    to: End,
    fill: i64,
    now: u64,
) -> Option<Vec<u8>> {
    if src == dest {
        let Ok(Some(pos)) = d.find_kind(src, now, Access::Write, Kind::List) else {
            return None;
        };
        let l = d.list_mut(pos);
        let elem = l.pop(from)?;
        l.push(to, &elem);
        return Some(elem);
    }
    let elem = pop_elems(d, src, from, 1, now).pop()?;
    // Cannot fail: the caller checked the destination's type on this shard.
    let _ = push_elems(d, dest, to, std::iter::once(&elem), fill, now);
    Some(elem)
}

/// Runs on the shard that owns `dest`: pushes `elem` there (the push side of a BLMOVE).
pub fn push_on_shard(core: &Rc<Core>, db: usize, dest: &[u8], to: End, elem: Vec<u8>) -> bool {
    let mut shard = core.shard.borrow_mut();
    let fill = shard.limits.list_max_listpack_size;
    let ok = push_elems(
        &mut shard.dbs[db],
        dest,
        to,
        std::iter::once(&elem),
        fill,
        now_ms(),
    )
    .is_ok();
    if ok {
        aof::log_state(core, &mut shard, db, dest);
    }
    ok
}

/// The rest of a BLMOVE whose destination lives on another shard: `elem` was
/// popped from `src` (on core `src_shard`); store it at `dest`, or give it back
/// when `dest` holds another type.
#[allow(clippy::too_many_arguments)]
pub async fn handoff(
    core: Rc<Core>,
    db: usize,
    src_shard: usize,
    src: Box<[u8]>,
    from: End,
    dest_shard: usize,
    dest: Box<[u8]>,
    to: End,
    elem: Vec<u8>,
) -> Served {
    let e2 = elem.clone();
    let stored = core
        .run_on(dest_shard, move |core| {
            push_on_shard(core, db, &dest, to, e2)
        })
        .await;
    if stored == Some(true) {
        return Served::Moved(elem);
    }
    if stored.is_none() {
        super::log::warning(&format!(
            "BLMOVE hand-off from shard {src_shard} to shard {dest_shard} (core {}) failed",
            core.id
        ));
    }
    core.run_on(src_shard, move |core| {
        let mut shard = core.shard.borrow_mut();
        let fill = shard.limits.list_max_listpack_size;
        push_back(&mut shard.dbs[db], &src, from, &[elem], fill, now_ms());
        aof::log_state(core, &mut shard, db, &src);
    })
    .await;
    Served::Error(errors::WRONGTYPE)
}

/// Returns Pending once (waking itself), so the task resumes after the current one.
async fn yield_once() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// The outcome of trying a blocking command's keys on one shard.
#[derive(Debug)]
pub enum Attempt {
    /// A key holds another type (WRONGTYPE), checked in argument order.
    WrongType,
    /// Another registration of this command was served meanwhile: its value is on the way.
    Lost,
    /// Served at once.
    Done(Served),
    /// BLMOVE popped `elem` from `src`; the destination is on another shard: `handoff` it.
    Handoff {
        /// The source key.
        src: Box<[u8]>,
        /// The popped element.
        elem: Vec<u8>,
    },
    /// Every key was empty: the client now waits on them here.
    Registered,
    /// Every key was empty and blocking is not allowed.
    Empty,
}

/// Tries `keys` (all on this shard, argument order) with `op`; registers the
/// waiter on all of them when none can serve and `tx` is given.
pub fn attempt(
    shard: &mut Shard,
    db: usize,
    keys: &[Box<[u8]>],
    op: &Op,
    ticket: &Arc<Ticket>,
    tx: Option<&DeliveryTx>,
) -> Attempt {
    let now = now_ms();
    let here = shard.id;
    let fill = shard.limits.list_max_listpack_size;
    for key in keys {
        let d = &mut shard.dbs[db];
        match d.find_kind(key, now, Access::Write, op.kind()) {
            Err(WrongType) => return Attempt::WrongType,
            Ok(None) => continue,
            Ok(Some(_)) => {}
        }
        match op {
            Op::Pop { end } | Op::MPop { end, .. } => {
                if !ticket.claim() {
                    return Attempt::Lost;
                }
                let (count, multi) = match op {
                    Op::MPop { count, .. } => (*count, true),
                    _ => (1, false),
                };
                let elems = pop_elems(d, key, *end, count, now);
                return Attempt::Done(Served::Pop {
                    key: key.clone(),
                    elems,
                    multi,
                });
            }
            Op::ZPop { max, count } => {
                if !ticket.claim() {
                    return Attempt::Lost;
                }
                let elems = zpop_elems(d, key, *max, count.unwrap_or(1), now);
                return Attempt::Done(Served::ZPop {
                    key: key.clone(),
                    elems,
                    multi: count.is_some(),
                });
            }
            Op::Move {
                from,
                to,
                dest,
                dest_shard,
            } => {
                if *dest_shard == here {
                    // As lmoveGenericCommand: the destination's type is checked first.
                    if d.find_kind(dest, now, Access::Write, Kind::List).is_err() {
                        return Attempt::WrongType;
                    }
                    if !ticket.claim() {
                        return Attempt::Lost;
                    }
                    // The destination was checked above, on this shard.
                    return Attempt::Done(match move_one(d, key, dest, *from, *to, fill, now) {
                        Some(elem) => Served::Moved(elem),
                        None => Served::Nothing,
                    });
                }
                if !ticket.claim() {
                    return Attempt::Lost;
                }
                let mut elems = pop_elems(d, key, *from, 1, now);
                return match elems.pop() {
                    Some(elem) => Attempt::Handoff {
                        src: key.clone(),
                        elem,
                    },
                    None => Attempt::Done(Served::Nothing),
                };
            }
        }
    }
    let Some(tx) = tx else {
        return Attempt::Empty;
    };
    if ticket.is_claimed() {
        // Served by a key of another shard meanwhile: no point waiting here.
        return Attempt::Lost;
    }
    let mut seen: Vec<&[u8]> = Vec::with_capacity(keys.len());
    for key in keys {
        // As blockForKeys: a key given twice is waited on once.
        if seen.contains(&&key[..]) {
            continue;
        }
        seen.push(key);
        register(
            shard,
            db,
            key,
            Waiter {
                ticket: ticket.clone(),
                op: op.clone(),
                tx: tx.clone(),
            },
        );
    }
    Attempt::Registered
}

/// Serves blocked clients after work that may have created keys they wait on
/// (on `core`, outside any borrow of its shard).
pub fn after_shard_work(core: &Rc<Core>) {
    if let Ok(mut shard) = core.shard.try_borrow_mut() {
        serve_ready(core, &mut shard);
    }
}

/// Serves every waiter whose key became ready, in FIFO order per key, until
/// nothing more is ready (a BLMOVE push may make another key ready).
pub fn serve_ready(core: &Rc<Core>, shard: &mut Shard) {
    if shard.blocking.nkeys == 0 {
        return;
    }
    let now = now_ms();
    let mut deferred: Vec<(usize, Box<[u8]>)> = Vec::new();
    loop {
        let Shard {
            dbs, blocking: reg, ..
        } = &mut *shard;
        for (i, d) in dbs.iter_mut().enumerate() {
            if reg.uids.get(i).is_some_and(|&u| u != d.uid) {
                // SWAPDB put another database at this index: as Redis's
                // scanDatabaseForReadyKeys, every waited key that now holds a
                // list or a sorted set is ready.
                reg.uids[i] = d.uid;
                if let Some(m) = reg.dbs.get(i) {
                    for k in m.keys() {
                        let servable = d
                            .find(k, now, Access::Silent)
                            .is_some_and(|p| matches!(d.kind(p), Kind::List | Kind::ZSet));
                        if servable && !reg.ready.iter().any(|(db, r)| *db == i && r == k) {
                            reg.ready.push_back((i, k.clone()));
                        }
                    }
                }
            }
            if d.created.is_empty() {
                continue;
            }
            for k in std::mem::take(&mut d.created) {
                let waited = reg.dbs.get(i).is_some_and(|m| m.contains_key(&k));
                if waited && !reg.ready.iter().any(|(db, r)| *db == i && *r == k) {
                    reg.ready.push_back((i, k));
                }
            }
        }
        let Some((db, key)) = reg.ready.pop_front() else {
            break;
        };
        // A key a running transaction (EXEC, script, multi-key command) holds
        // waits until it releases: as Redis serves blocked clients only after
        // the whole EXEC or script, a waiter must neither see nor take an
        // element the transaction may still pop, nor one a script rollback
        // takes back. The release serves it (`tx::release_with`).
        if crate::server::tx::held(core, db, &key) {
            deferred.push((db, key));
            continue;
        }
        serve_key(core, shard, db, &key);
        if shard.blocking.nkeys == 0 {
            break;
        }
    }
    for k in deferred {
        if !shard.blocking.ready.contains(&k) {
            shard.blocking.ready.push_back(k);
        }
    }
}

/// Serves the waiters of one ready key (serveClientsBlockedOnListKey).
fn serve_key(core: &Rc<Core>, shard: &mut Shard, db: usize, key: &[u8]) {
    let now = now_ms();
    let here = shard.id;
    let fill = shard.limits.list_max_listpack_size;
    let zlim = ZLimits::from(&shard.limits);
    let Shard {
        dbs, blocking: reg, ..
    } = &mut *shard;
    let d = &mut dbs[db];
    let Some(q) = reg.queue(db, key) else {
        return;
    };
    let mut n = q.len();
    // Keys this changes, logged to the AOF at the end (the command that made
    // the key ready logged its own effect before).
    let mut served = false;
    let mut moved_to: Vec<Box<[u8]>> = Vec::new();
    // Waiters for another type than the key's stay where they are (Redis skips them).
    let mut skipped: Vec<Waiter> = Vec::new();
    while n > 0 {
        n -= 1;
        // Only an existing key serves; another type than a waiter's leaves it blocked.
        let Some(pos) = d.find(key, now, Access::Silent) else {
            break;
        };
        let kind = d.kind(pos);
        let Some(w) = q.pop_front() else {
            break;
        };
        if w.op.kind() != kind {
            if !w.ticket.is_claimed() {
                skipped.push(w);
            }
            continue;
        }
        if w.ticket.is_claimed() {
            // Served elsewhere or timed out: a stale registration.
            continue;
        }
        match &w.op {
            Op::Pop { end } | Op::MPop { end, .. } => {
                if !w.ticket.claim() {
                    continue;
                }
                let (count, multi) = match w.op {
                    Op::MPop { count, .. } => (count, true),
                    _ => (1, false),
                };
                let elems = pop_elems(d, key, *end, count, now);
                served = true;
                let delivery = Delivery {
                    served: Served::Pop {
                        key: key.into(),
                        elems,
                        multi,
                    },
                    origin: Some(Origin {
                        shard: here,
                        db,
                        end: *end,
                    }),
                };
                if let Err(e) = w.tx.unbounded_send(delivery) {
                    // The client is gone: nothing was taken.
                    if let Served::Pop { elems, .. } = e.into_inner().served {
                        push_back(d, key, *end, &elems, fill, now);
                    }
                }
            }
            Op::ZPop { max, count } => {
                if !w.ticket.claim() {
                    continue;
                }
                let elems = zpop_elems(d, key, *max, count.unwrap_or(1), now);
                served = true;
                let delivery = Delivery {
                    served: Served::ZPop {
                        key: key.into(),
                        elems,
                        multi: count.is_some(),
                    },
                    // `end` means nothing for a sorted set: members go back by score.
                    origin: Some(Origin {
                        shard: here,
                        db,
                        end: End::Head,
                    }),
                };
                if let Err(e) = w.tx.unbounded_send(delivery) {
                    // The client is gone: nothing was taken.
                    if let Served::ZPop { elems, .. } = e.into_inner().served {
                        zadd_back(d, key, &elems, zlim, now);
                    }
                }
            }
            Op::Move {
                from,
                to,
                dest,
                dest_shard,
            } => {
                if *dest_shard == here {
                    if d.find_kind(dest, now, Access::Write, Kind::List).is_err() {
                        // As serveClientBlockedOnList: WRONGTYPE, the element stays.
                        if w.ticket.claim() {
                            let _ = w.tx.unbounded_send(Delivery {
                                served: Served::Error(errors::WRONGTYPE),
                                origin: None,
                            });
                        }
                        continue;
                    }
                    if !w.ticket.claim() {
                        continue;
                    }
                    served = true;
                    moved_to.push(dest.clone());
                    let Some(elem) = move_one(d, key, dest, *from, *to, fill, now) else {
                        let _ = w.tx.unbounded_send(Delivery {
                            served: Served::Nothing,
                            origin: None,
                        });
                        break;
                    };
                    let sent = w.tx.unbounded_send(Delivery {
                        served: Served::Moved(elem),
                        origin: None,
                    });
                    if sent.is_err() {
                        // The client is gone: undo the move, nothing saw it.
                        let _ = move_one(d, dest, key, *to, *from, fill, now);
                    }
                } else {
                    if !w.ticket.claim() {
                        continue;
                    }
                    served = true;
                    let Some(elem) = pop_elems(d, key, *from, 1, now).pop() else {
                        let _ = w.tx.unbounded_send(Delivery {
                            served: Served::Nothing,
                            origin: None,
                        });
                        break;
                    };
                    let core2 = core.clone();
                    let (src, from, to, dest, dest_shard, tx) = (
                        Box::<[u8]>::from(key),
                        *from,
                        *to,
                        dest.clone(),
                        *dest_shard,
                        w.tx.clone(),
                    );
                    glommio::spawn_local(async move {
                        // glommio runs a spawned task at once, inside this shard borrow:
                        // let the serving command finish first.
                        yield_once().await;
                        let served =
                            handoff(core2, db, here, src, from, dest_shard, dest, to, elem).await;
                        // Stored at its destination: nothing to undo if the client is gone.
                        let _ = tx.unbounded_send(Delivery {
                            served,
                            origin: None,
                        });
                    })
                    .detach();
                }
            }
        }
    }
    for w in skipped.into_iter().rev() {
        q.push_front(w);
    }
    drop_if_empty(shard, db, key);
    if served {
        aof::log_state(core, shard, db, key);
        for dest in moved_to {
            aof::log_state(core, shard, db, &dest);
        }
    }
}

/// A registration to remove when the client stops waiting: (shard, db, keys).
type Reg = (usize, usize, Vec<Box<[u8]>>);

/// How a blocked wait ended.
#[derive(Debug)]
pub enum Outcome {
    /// Served (or an error while serving).
    Delivered(Served),
    /// The timeout passed.
    TimedOut,
    /// CLIENT UNBLOCK: ERROR (true) or TIMEOUT (false).
    Unblocked(bool),
}

impl Outcome {
    /// Writes the reply (Redis 7.0 answers every timed-out list command with a null array).
    pub fn reply(&self, out: &mut ReplyBuf) {
        match self {
            Outcome::Delivered(s) => s.reply(out),
            Outcome::TimedOut | Outcome::Unblocked(false) => out.null_array(),
            Outcome::Unblocked(true) => out.error("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
        }
    }
}

/// A client waiting in a blocking command: its end of the registrations.
pub struct Blocked {
    core: Rc<Core>,
    client: Rc<Client>,
    ticket: Arc<Ticket>,
    rx: mpsc::UnboundedReceiver<Delivery>,
    unblock_rx: Option<oneshot::Receiver<bool>>,
    deadline: Option<Instant>,
    regs: Vec<Reg>,
    /// The command, for its statistics when it finally replies.
    pub cmd: &'static crate::commands::Command,
}

impl std::fmt::Debug for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blocked({} registrations)", self.regs.len())
    }
}

impl Blocked {
    /// Marks `client` blocked (CLIENT UNBLOCK can reach it from now on).
    fn new(
        core: Rc<Core>,
        client: Rc<Client>,
        waiting: Waiting,
        timeout_ms: u64,
        cmd: &'static crate::commands::Command,
    ) -> Blocked {
        // The sender is dropped: the channel ends only if every registration is gone.
        let Waiting {
            ticket, rx, regs, ..
        } = waiting;
        let (utx, urx) = oneshot::channel();
        *client.unblock.borrow_mut() = Some(utx);
        BLOCKED_CLIENTS.fetch_add(1, Ordering::Relaxed);
        let deadline = if timeout_ms == 0 {
            None
        } else {
            // Past what an Instant can hold means never, as a Redis deadline that overflows.
            Instant::now().checked_add(Duration::from_millis(timeout_ms))
        };
        Blocked {
            core,
            client,
            ticket,
            rx,
            unblock_rx: Some(urx),
            deadline,
            regs,
            cmd,
        }
    }

    /// Waits for a value, the timeout or CLIENT UNBLOCK. Cancel-safe: dropping the
    /// future loses nothing (a claimed value stays in the channel for the next call).
    pub async fn wait(&mut self) -> Outcome {
        enum Ev {
            Rx(Option<Delivery>),
            Timeout,
            Unblock(bool),
        }
        let mut timer = self
            .deadline
            .map(|d| glommio::timer::Timer::new(d.saturating_duration_since(Instant::now())));
        let ev = futures::future::poll_fn(|cx| {
            if let Poll::Ready(d) = self.rx.poll_next_unpin(cx) {
                return Poll::Ready(Ev::Rx(d));
            }
            if let Some(u) = self.unblock_rx.as_mut() {
                if let Poll::Ready(r) = u.poll_unpin(cx) {
                    self.unblock_rx = None;
                    if let Ok(err) = r {
                        return Poll::Ready(Ev::Unblock(err));
                    }
                }
            }
            if let Some(t) = timer.as_mut() {
                if t.poll_unpin(cx).is_ready() {
                    return Poll::Ready(Ev::Timeout);
                }
            }
            Poll::Pending
        })
        .await;
        let give_up = match ev {
            Ev::Rx(Some(d)) => return Outcome::Delivered(d.served),
            Ev::Rx(None) | Ev::Timeout => Outcome::TimedOut,
            Ev::Unblock(e) => Outcome::Unblocked(e),
        };
        if self.ticket.claim() {
            return give_up;
        }
        // A shard claimed first: its value is on the way; it wins over the timeout.
        match self.rx.next().await {
            Some(d) => Outcome::Delivered(d.served),
            None => give_up,
        }
    }

    /// The client disconnected: claim, or take back the value already on its way.
    pub async fn abandon(mut self) {
        if self.ticket.claim() {
            return;
        }
        let Some(Delivery {
            served,
            origin: Some(o),
        }) = self.rx.next().await
        else {
            return;
        };
        // Popped for this client, who will never see it: back where it came from.
        match served {
            Served::Pop { key, elems, .. } => {
                self.core
                    .run_on(o.shard, move |core| {
                        let mut shard = core.shard.borrow_mut();
                        let fill = shard.limits.list_max_listpack_size;
                        push_back(&mut shard.dbs[o.db], &key, o.end, &elems, fill, now_ms());
                        aof::log_state(core, &mut shard, o.db, &key);
                    })
                    .await;
            }
            Served::ZPop { key, elems, .. } => {
                self.core
                    .run_on(o.shard, move |core| {
                        let mut shard = core.shard.borrow_mut();
                        let lim = ZLimits::from(&shard.limits);
                        zadd_back(&mut shard.dbs[o.db], &key, &elems, lim, now_ms());
                        aof::log_state(core, &mut shard, o.db, &key);
                    })
                    .await;
            }
            _ => {}
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        BLOCKED_CLIENTS.fetch_sub(1, Ordering::Relaxed);
        *self.client.unblock.borrow_mut() = None;
        // Eager cleanup of the registrations still queued on shards.
        let regs = std::mem::take(&mut self.regs);
        if regs.is_empty() {
            return;
        }
        let core = self.core.clone();
        let ticket = self.ticket.clone();
        glommio::spawn_local(async move {
            // glommio starts a spawned task at once: run after whatever drops us.
            yield_once().await;
            for (s, db, keys) in regs {
                let t = ticket.clone();
                core.run_on(s, move |core| {
                    unregister(&mut core.shard.borrow_mut(), db, &keys, &t);
                })
                .await;
            }
        })
        .detach();
    }
}

/// A command's registrations, from the coordinator, before the client waits on them.
pub struct Waiting {
    /// The claim flag shared by the registrations.
    pub ticket: Arc<Ticket>,
    /// Where values arrive.
    pub rx: mpsc::UnboundedReceiver<Delivery>,
    /// The sender every registration gets a copy of.
    pub tx: DeliveryTx,
    /// Where the waiter is registered.
    pub regs: Vec<Reg>,
}

impl Default for Waiting {
    fn default() -> Self {
        Waiting::new()
    }
}

impl Waiting {
    /// A fresh ticket and channel, registered nowhere yet.
    pub fn new() -> Waiting {
        let (tx, rx) = mpsc::unbounded();
        Waiting {
            ticket: Arc::new(Ticket::default()),
            rx,
            tx,
            regs: Vec::new(),
        }
    }

    /// Notes a registration on `shard`.
    pub fn registered(&mut self, shard: usize, db: usize, keys: Vec<Box<[u8]>>) {
        self.regs.push((shard, db, keys));
    }

    /// Claims for the coordinator (WRONGTYPE after registering elsewhere); when a
    /// shard claimed first, waits for its value instead.
    pub async fn claim_or_receive(&mut self) -> Option<Served> {
        if self.ticket.claim() {
            return None;
        }
        self.rx.next().await.map(|d| d.served)
    }

    /// Waits for the value of a registration that was served meanwhile.
    pub async fn receive(&mut self) -> Option<Served> {
        self.rx.next().await.map(|d| d.served)
    }

    /// Removes the registrations made so far (the command finished without waiting).
    pub async fn cancel(self, core: &Rc<Core>) {
        for (s, db, keys) in self.regs {
            let t = self.ticket.clone();
            core.run_on(s, move |core| {
                unregister(&mut core.shard.borrow_mut(), db, &keys, &t);
            })
            .await;
        }
    }

    /// Hands the registrations to the client, whose connection then waits (see `Blocked::wait`).
    pub fn block(
        self,
        core: &Rc<Core>,
        client: &Rc<Client>,
        timeout_ms: u64,
        cmd: &'static crate::commands::Command,
    ) {
        let b = Blocked::new(core.clone(), client.clone(), self, timeout_ms, cmd);
        *client.blocked.borrow_mut() = Some(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_core() -> Rc<Core> {
        let n = crate::commands::CommandTable::get().cmds.len();
        let config = crate::config::Config::default();
        Rc::new(Core::new(0, 1, config, None, Instant::now(), n))
    }

    fn new_client() -> Rc<Client> {
        let a: std::net::SocketAddr = "127.0.0.1:1".parse().expect("addr");
        Client::new(a, a, -1, 0, true).0
    }

    fn keys(ks: &[&str]) -> Vec<Box<[u8]>> {
        ks.iter().map(|k| Box::from(k.as_bytes())).collect()
    }

    /// Registers `ks` for a fresh waiter on core 0 and hands it to a new client.
    fn block_on(core: &Rc<Core>, ks: &[&str], timeout_ms: u64) -> Blocked {
        let cmd = crate::commands::CommandTable::get()
            .by_name("blpop")
            .expect("blpop");
        let mut w = Waiting::new();
        let ks = keys(ks);
        let r = attempt(
            &mut core.shard.borrow_mut(),
            0,
            &ks,
            &Op::Pop { end: End::Head },
            &w.ticket,
            Some(&w.tx),
        );
        assert!(matches!(r, Attempt::Registered), "{r:?}");
        w.registered(0, 0, ks);
        let c = new_client();
        w.block(core, &c, timeout_ms, cmd);
        let b = c.blocked.borrow_mut().take().expect("blocked");
        b
    }

    fn waiters(core: &Rc<Core>) -> usize {
        core.shard.borrow().blocking.waiters()
    }

    fn llen(core: &Rc<Core>, key: &[u8]) -> usize {
        let mut shard = core.shard.borrow_mut();
        let d = &mut shard.dbs[0];
        match d.find_kind(key, 0, Access::Silent, Kind::List) {
            Ok(Some(p)) => d.list(p).len(),
            _ => 0,
        }
    }

    async fn settle() {
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }

    /// Registers a BZMPOP-like waiter (MIN, count 2) on `key` and hands it to a new client.
    fn block_zpop(core: &Rc<Core>, key: &str) -> Blocked {
        let cmd = crate::commands::CommandTable::get()
            .by_name("bzmpop")
            .expect("bzmpop");
        let mut w = Waiting::new();
        let ks = keys(&[key]);
        let op = Op::ZPop {
            max: false,
            count: Some(2),
        };
        let r = attempt(
            &mut core.shard.borrow_mut(),
            0,
            &ks,
            &op,
            &w.ticket,
            Some(&w.tx),
        );
        assert!(matches!(r, Attempt::Registered), "{r:?}");
        w.registered(0, 0, ks);
        let c = new_client();
        w.block(core, &c, 0, cmd);
        let b = c.blocked.borrow_mut().take().expect("blocked");
        b
    }

    #[test]
    fn popped_members_go_back_with_their_scores() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async move {
                let core = new_core();
                let first = block_zpop(&core, "z");
                let mut second = block_zpop(&core, "z");
                {
                    let mut shard = core.shard.borrow_mut();
                    let lim = ZLimits::from(&shard.limits);
                    let d = &mut shard.dbs[0];
                    let mut z = ZSetValue::new_for(lim, 1);
                    z.set(b"a", 1.5, lim);
                    z.set(b"b", -2.0, lim);
                    d.create_object(b"z", Object::ZSet(z), 0);
                }
                after_shard_work(&core);
                assert!(
                    core.shard.borrow_mut().dbs[0]
                        .find(b"z", 0, Access::Silent)
                        .is_none(),
                    "served at once"
                );
                // The first client vanished with both members: they go back, scores intact,
                // and the next waiter gets them.
                first.abandon().await;
                match second.wait().await {
                    Outcome::Delivered(Served::ZPop { key, elems, multi }) => {
                        assert_eq!(&key[..], b"z");
                        assert!(multi);
                        assert_eq!(elems, vec![(b"b".to_vec(), -2.0), (b"a".to_vec(), 1.5)]);
                    }
                    o => panic!("{o:?}"),
                }
                drop(second);
                settle().await;
                assert_eq!(waiters(&core), 0);
                // Given back to a key re-created meanwhile: a newer score wins.
                let mut shard = core.shard.borrow_mut();
                let lim = ZLimits::from(&shard.limits);
                let d = &mut shard.dbs[0];
                let mut z = ZSetValue::new_for(lim, 1);
                z.set(b"a", 9.0, lim);
                d.create_object(b"y", Object::ZSet(z), 0);
                zadd_back(
                    d,
                    b"y",
                    &[(b"a".to_vec(), 1.0), (b"c".to_vec(), 3.0)],
                    lim,
                    0,
                );
                let p = d.find(b"y", 0, Access::Silent).expect("y");
                assert_eq!(d.zset(p).score(b"a"), Some(9.0));
                assert_eq!(d.zset(p).score(b"c"), Some(3.0));
            })
            .expect("executor")
            .join()
            .expect("join");
    }

    #[test]
    fn registrations_are_removed_and_values_never_lost() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async move {
                let core = new_core();
                // A timeout removes every registration and stops key tracking.
                let mut b = block_on(&core, &["a", "b", "a"], 5);
                assert_eq!(waiters(&core), 2, "a key given twice is waited on once");
                assert!(core.shard.borrow().dbs[0].track_created);
                assert!(matches!(b.wait().await, Outcome::TimedOut));
                drop(b);
                settle().await;
                assert_eq!(waiters(&core), 0);
                assert!(!core.shard.borrow().dbs[0].track_created);

                // FIFO: the first waiter gets the element; when it disconnects, the
                // element goes back and the next waiter gets it.
                let first = block_on(&core, &["k"], 0);
                let mut second = block_on(&core, &["k"], 0);
                assert!(push_on_shard(&core, 0, b"k", End::Tail, b"x".to_vec()));
                after_shard_work(&core);
                assert_eq!(llen(&core, b"k"), 0, "served at once");
                first.abandon().await;
                match second.wait().await {
                    Outcome::Delivered(Served::Pop { key, elems, .. }) => {
                        assert_eq!(&key[..], b"k");
                        assert_eq!(elems, vec![b"x".to_vec()]);
                    }
                    o => panic!("{o:?}"),
                }
                drop(second);
                settle().await;
                assert_eq!(waiters(&core), 0);

                // A waiter whose client vanished without cleanup: the element stays.
                let mut w = Waiting::new();
                let ks = keys(&["gone"]);
                let r = attempt(
                    &mut core.shard.borrow_mut(),
                    0,
                    &ks,
                    &Op::MPop {
                        end: End::Tail,
                        count: 5,
                    },
                    &w.ticket,
                    Some(&w.tx),
                );
                assert!(matches!(r, Attempt::Registered));
                w.registered(0, 0, ks);
                drop(w);
                assert!(push_on_shard(&core, 0, b"gone", End::Tail, b"y".to_vec()));
                after_shard_work(&core);
                assert_eq!(llen(&core, b"gone"), 1);
                assert_eq!(waiters(&core), 0);
                assert_eq!(core.shard.borrow().blocking.waited_keys(), 0);
            })
            .expect("executor")
            .join()
            .expect("join");
    }
}
