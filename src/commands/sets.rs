//! The set command family, including the cross-shard SINTER/SUNION/SDIFF family.
//!
//! Every handler follows Redis 7.0's t_set.c: the same lookups in the same
//! order (so WRONGTYPE wins over an empty result exactly where Redis's does),
//! the same strategies where they decide a visible outcome (SPOP's "keep the
//! rest" rebuild, SDIFF's two algorithms, which decide the result's encoding),
//! and the same reply types (RESP3 sets where Redis sends sets).
//!
//! Multi-key commands whose keys span shards run as coordinators: they copy
//! the sets they read from their shards (in key order, stopping at the first
//! wrong type as Redis's loop does), compute on the connection's core, and
//! write a STORE result on the destination's shard. Cross-shard SMOVE removes
//! from the source, then adds to the destination; neither is atomic across
//! shards yet (the transaction framework will make them so).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::keys::parse_cursor;
use super::{arg_i64, errors, is, MultiCtx, ShardCtx};
use crate::protocol::reply::ReplyBuf;
use crate::server::exec::shard_of_key;
use crate::storage::db::{Access, Db};
use crate::storage::set::{Elem, SetValue};
use crate::storage::value::{Kind, Object, OwnedValue};
use crate::util::glob::string_match;

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// getPositiveLongFromObjectOrReply's error (for a non-number too).
const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";

/// Replies with one member as a bulk string.
fn bulk_elem(out: &mut ReplyBuf, e: Elem<'_>) {
    match e {
        Elem::Int(i) => out.bulk_i64(i),
        Elem::Str(b) => out.bulk(b),
    }
}

/// Replies with every member of `s` as a RESP3 set (array in RESP2).
fn reply_set(out: &mut ReplyBuf, s: &SetValue) {
    out.set_len(s.len());
    s.for_each(|e| bulk_elem(out, e));
}

/// A new set holding `m`, as setTypeCreate + setTypeAdd.
fn new_set_with(m: &[u8], max: usize) -> SetValue {
    let mut s = SetValue::new_for(m);
    s.add(m, max);
    s
}

/// SADD key member [member ...]
pub fn sadd(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let max = ctx.shard.limits.set_max_intset_entries;
    let (db, out) = ctx.db_out();
    let p = match db.find_kind(argv[1], now, Access::Write, Kind::Set) {
        Err(_) => return out.error(errors::WRONGTYPE),
        Ok(Some(p)) => p,
        Ok(None) => db.create_object(argv[1], Object::Set(SetValue::new_for(argv[2])), now),
    };
    let s = db.set_mut(p);
    let mut added = 0;
    for m in &argv[2..] {
        if s.add(m, max) {
            added += 1;
        }
    }
    out.int(added);
}

/// SREM key member [member ...]
pub fn srem(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let p = match db.find_kind(argv[1], now, Access::Write, Kind::Set) {
        Err(_) => return out.error(errors::WRONGTYPE),
        Ok(None) => return out.int(0),
        Ok(Some(p)) => p,
    };
    let s = db.set_mut(p);
    let mut deleted = 0;
    for m in &argv[2..] {
        if s.remove(m) {
            deleted += 1;
            if s.is_empty() {
                break;
            }
        }
    }
    db.delete_if_empty(p);
    out.int(deleted);
}

/// The type of `key` after a lookup, for commands that check several keys first.
fn kind_of(db: &mut Db, key: &[u8], now: u64, access: Access) -> Option<Kind> {
    db.find(key, now, access).map(|p| db.kind(p))
}

/// SMOVE source destination member (keys on this shard)
pub fn smove(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let max = ctx.shard.limits.set_max_intset_entries;
    let (db, out) = ctx.db_out();
    let (src, dst, ele) = (argv[1], argv[2], argv[3]);
    let sk = kind_of(db, src, now, Access::Write);
    let dk = kind_of(db, dst, now, Access::Write);
    let Some(sk) = sk else {
        return out.int(0);
    };
    if sk != Kind::Set || dk.is_some_and(|k| k != Kind::Set) {
        return out.error(errors::WRONGTYPE);
    }
    // The lookups above expired what they had to: positions found now stay valid.
    let Some(sp) = db.find(src, now, Access::Silent) else {
        return out.int(0);
    };
    if src == dst {
        return out.int(db.set(sp).contains(ele) as i64);
    }
    if !db.set_mut(sp).remove(ele) {
        return out.int(0);
    }
    db.delete_if_empty(sp);
    smove_add(db, dst, ele, now, max);
    out.int(1);
}

/// SMOVE's second half: adds `ele` to the set at `dst`, creating it when missing.
fn smove_add(db: &mut Db, dst: &[u8], ele: &[u8], now: u64, max: usize) {
    match db.find_kind(dst, now, Access::Silent, Kind::Set) {
        Ok(Some(dp)) => {
            db.set_mut(dp).add(ele, max);
        }
        Ok(None) => {
            db.create_object(dst, Object::Set(new_set_with(ele, max)), now);
        }
        // Only possible across shards, when another client changed the
        // destination's type between the check and the add.
        Err(_) => {}
    }
}

/// What SMOVE found at its source.
enum SrcState {
    Missing,
    WrongType,
    NotMember,
    Moved,
}

/// SMOVE across shards: check the destination, remove from the source, add to the destination.
pub fn smove_multi(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let n = ctx.core.nshards;
        let (src, dst, ele) = (
            ctx.argv[1].clone(),
            ctx.argv[2].clone(),
            ctx.argv[3].clone(),
        );
        let (db, now) = (ctx.db, ctx.now_ms);
        let d2 = dst.clone();
        let dst_wrong = ctx
            .core
            .run_on(shard_of_key(&dst, n), move |core| {
                let mut sh = core.shard.borrow_mut();
                kind_of(&mut sh.dbs[db], &d2, now, Access::Write).is_some_and(|k| k != Kind::Set)
            })
            .await
            .unwrap_or(false);
        let e2 = ele.clone();
        let state = ctx
            .core
            .run_on(shard_of_key(&src, n), move |core| {
                let mut sh = core.shard.borrow_mut();
                let d = &mut sh.dbs[db];
                match d.find_kind(&src, now, Access::Write, Kind::Set) {
                    Ok(None) => SrcState::Missing,
                    Err(_) => SrcState::WrongType,
                    Ok(Some(_)) if dst_wrong => SrcState::WrongType,
                    Ok(Some(p)) => {
                        if !d.set_mut(p).remove(&e2) {
                            return SrcState::NotMember;
                        }
                        d.delete_if_empty(p);
                        SrcState::Moved
                    }
                }
            })
            .await
            .unwrap_or(SrcState::Missing);
        match state {
            SrcState::Missing | SrcState::NotMember => out.int(0),
            SrcState::WrongType => out.error(errors::WRONGTYPE),
            SrcState::Moved => {
                ctx.core
                    .run_on(shard_of_key(&dst, n), move |core| {
                        let mut sh = core.shard.borrow_mut();
                        let max = sh.limits.set_max_intset_entries;
                        smove_add(&mut sh.dbs[db], &dst, &ele, now, max);
                    })
                    .await;
                out.int(1);
            }
        }
        out
    })
}

/// SISMEMBER key member
pub fn sismember(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.find_kind(argv[1], now, Access::Read, Kind::Set) {
        Err(_) => out.error(errors::WRONGTYPE),
        Ok(None) => out.int(0),
        Ok(Some(p)) => out.int(db.set(p).contains(argv[2]) as i64),
    }
}

/// SMISMEMBER key member [member ...]
pub fn smismember(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let p = match db.find_kind(argv[1], now, Access::Read, Kind::Set) {
        Err(_) => return out.error(errors::WRONGTYPE),
        Ok(p) => p,
    };
    out.array_len(argv.len() - 2);
    for m in &argv[2..] {
        out.int(p.is_some_and(|p| db.set(p).contains(m)) as i64);
    }
}

/// SCARD key
pub fn scard(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.find_kind(argv[1], now, Access::Read, Kind::Set) {
        Err(_) => out.error(errors::WRONGTYPE),
        Ok(None) => out.int(0),
        Ok(Some(p)) => out.int(db.set(p).len() as i64),
    }
}

/// SPOP key [count]
pub fn spop(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    if argv.len() > 3 {
        return ctx.out.error(errors::SYNTAX);
    }
    if argv.len() == 3 {
        return spop_count(ctx, argv);
    }
    let now = ctx.now_ms;
    let out = &mut *ctx.out;
    let (db, rand) = ctx.shard.db_and_rng(ctx.db);
    let p = match db.find_kind(argv[1], now, Access::Write, Kind::Set) {
        Err(_) => return out.error(errors::WRONGTYPE),
        Ok(None) => return out.null(),
        Ok(Some(p)) => p,
    };
    let m = db.set_mut(p).pop_random(rand);
    out.bulk_opt(m.as_deref());
    db.delete_if_empty(p);
}

/// How much bigger than the rest the popped part must be for SPOP to rebuild (SPOP_MOVE_STRATEGY_MUL).
const SPOP_MOVE_STRATEGY_MUL: u64 = 5;

/// SPOP key count
fn spop_count(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let count = match arg_i64(argv[2]) {
        Some(c) if c >= 0 => c as u64,
        _ => return ctx.out.error(MUST_BE_POSITIVE),
    };
    let now = ctx.now_ms;
    let max = ctx.shard.limits.set_max_intset_entries;
    let out = &mut *ctx.out;
    let (db, mut rand) = ctx.shard.db_and_rng(ctx.db);
    let p = match db.find_kind(argv[1], now, Access::Write, Kind::Set) {
        Err(_) => return out.error(errors::WRONGTYPE),
        Ok(None) => return out.set_len(0),
        Ok(Some(p)) => p,
    };
    if count == 0 {
        return out.set_len(0);
    }
    let size = db.set(p).len() as u64;
    if count >= size {
        // CASE 1: the whole set, replied as SUNION of it replies (a fresh set's
        // order); that SUNION looks the key up again, for reading (a hit).
        db.find(argv[1], now, Access::Read);
        let all = union_diff(&[argv[1]], &[Some(db.set(p))], SetOp::Union, max);
        reply_set(out, &all);
        db.remove_at(p);
        return;
    }
    out.set_len(count as usize);
    let remaining = size - count;
    let set = db.set_mut(p);
    if remaining.saturating_mul(SPOP_MOVE_STRATEGY_MUL) > count {
        // CASE 2: pop `count` random members.
        for _ in 0..count {
            if let Some(m) = set.pop_random(&mut rand) {
                out.bulk(&m);
            }
        }
    } else {
        // CASE 3: move the members that stay into a new set, reply with the rest.
        let mut newset: Option<SetValue> = None;
        for _ in 0..remaining {
            let Some(m) = set.pop_random(&mut rand) else {
                break;
            };
            newset
                .get_or_insert_with(|| SetValue::new_for(&m))
                .add(&m, max);
        }
        set.for_each(|e| bulk_elem(out, e));
        if let Some(n) = newset {
            *set = n;
        }
    }
}

/// How much bigger than the count a set must be for SRANDMEMBER to sample (SRANDMEMBER_SUB_STRATEGY_MUL).
const SRANDMEMBER_SUB_STRATEGY_MUL: u64 = 3;

/// SRANDMEMBER key [count]
pub fn srandmember(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    if argv.len() > 3 {
        return ctx.out.error(errors::SYNTAX);
    }
    let now = ctx.now_ms;
    if argv.len() == 3 {
        return srandmember_count(ctx, argv);
    }
    let out = &mut *ctx.out;
    let (db, rand) = ctx.shard.db_and_rng(ctx.db);
    match db.find_kind(argv[1], now, Access::Read, Kind::Set) {
        Err(_) => out.error(errors::WRONGTYPE),
        Ok(None) => out.null(),
        Ok(Some(p)) => match db.set(p).random(rand) {
            Some(e) => bulk_elem(out, e),
            None => out.null(),
        },
    }
}

/// SRANDMEMBER key count
fn srandmember_count(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let l = match arg_i64(argv[2]) {
        None => return ctx.out.error(errors::NOT_INT),
        Some(i64::MIN) => {
            return ctx.out.error(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            )
        }
        Some(l) => l,
    };
    let (uniq, count) = (l >= 0, l.unsigned_abs());
    let now = ctx.now_ms;
    let out = &mut *ctx.out;
    let (db, mut rand) = ctx.shard.db_and_rng(ctx.db);
    let p = match db.find_kind(argv[1], now, Access::Read, Kind::Set) {
        Err(_) => return out.error(errors::WRONGTYPE),
        Ok(None) => return out.array_len(0),
        Ok(Some(p)) => p,
    };
    if count == 0 {
        return out.array_len(0);
    }
    let set = db.set(p);
    let size = set.len() as u64;
    // CASE 1: repetitions allowed (or a single pick): independent random picks.
    if !uniq || count == 1 {
        out.array_len(count as usize);
        for _ in 0..count {
            if let Some(e) = set.random(&mut rand) {
                bulk_elem(out, e);
            }
        }
        return;
    }
    // CASE 2: the whole set, in its own order.
    if count >= size {
        out.array_len(size as usize);
        set.for_each(|e| bulk_elem(out, e));
        return;
    }
    let picked: Vec<Vec<u8>> = if count * SRANDMEMBER_SUB_STRATEGY_MUL > size {
        // CASE 3: copy all, drop random ones until `count` remain.
        let mut all = set.members();
        while all.len() as u64 > count {
            let i = (rand() % all.len() as u64) as usize;
            all.swap_remove(i);
        }
        all
    } else {
        // CASE 4: random picks until `count` distinct ones.
        let mut seen = std::collections::HashSet::with_capacity(count as usize);
        let mut v = Vec::with_capacity(count as usize);
        while (v.len() as u64) < count {
            let Some(e) = set.random(&mut rand) else {
                break;
            };
            let m = e.to_vec();
            if seen.insert(m.clone()) {
                v.push(m);
            }
        }
        v
    };
    out.array_len(picked.len());
    for m in &picked {
        out.bulk(m);
    }
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
///
/// A hashtable's cursor is a hash tag (see `SetValue::scan`): every member
/// present for the whole scan is returned, also while the set grows.
pub fn sscan(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(cursor) = parse_cursor(argv[2]) else {
        return out.error("ERR invalid cursor");
    };
    let p = match db.find_kind(argv[1], now, Access::Read, Kind::Set) {
        Err(_) => return out.error(errors::WRONGTYPE),
        Ok(None) => {
            out.array_len(2);
            out.bulk(b"0");
            return out.array_len(0);
        }
        Ok(Some(p)) => p,
    };
    let mut count = 10usize;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        if is(argv[i], "count") && more >= 1 {
            match arg_i64(argv[i + 1]) {
                Some(c) if c >= 1 => count = c as usize,
                Some(_) => return out.error(errors::SYNTAX),
                None => return out.error(errors::NOT_INT),
            }
            i += 2;
        } else if is(argv[i], "match") && more >= 1 {
            pattern = Some(argv[i + 1]).filter(|p| *p != b"*");
            i += 2;
        } else {
            return out.error(errors::SYNTAX);
        }
    }
    let set = db.set(p);
    let mut found: Vec<Vec<u8>> = Vec::new();
    // An intset is replied whole whatever the cursor; on a hashtable, cursors
    // this server never hands out (above 32 bits) end the scan.
    let cursor = if set.is_intset() {
        Ok(0)
    } else {
        u32::try_from(cursor)
    };
    let next = match cursor {
        Ok(c) => set.scan(c, count, |e| {
            e.with_bytes(|b| {
                if pattern.is_none_or(|pat| string_match(pat, b, false)) {
                    found.push(b.to_vec());
                }
            })
        }),
        Err(_) => 0,
    };
    out.array_len(2);
    out.bulk(next.to_string().as_bytes());
    out.array_len(found.len());
    for m in &found {
        out.bulk(m);
    }
}

/// SUNION or SDIFF (sunionDiffGenericCommand's op).
#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Diff,
}

/// sunionDiffGenericCommand's computation: the result set, built as Redis builds
/// it (an intset that converts as members arrive), so its encoding and its
/// iteration order match. `keys` give the sets' identities (same key = same set).
fn union_diff(keys: &[&[u8]], sets: &[Option<&SetValue>], op: SetOp, max: usize) -> SetValue {
    let mut dst = SetValue::new_intset();
    let sameset = sets[0].is_some()
        && keys[1..]
            .iter()
            .zip(&sets[1..])
            .any(|(k, s)| s.is_some() && *k == keys[0]);
    match op {
        SetOp::Union => {
            for s in sets.iter().flatten() {
                s.for_each(|e| {
                    e.with_bytes(|b| dst.add(b, max));
                });
            }
        }
        SetOp::Diff if sameset => {}
        SetOp::Diff => {
            let Some(first) = sets[0] else {
                return dst;
            };
            // Redis picks the algorithm by estimated work; the choice is visible in
            // the result's encoding (algorithm 2 adds everything first).
            let (mut one, mut two) = (0u64, 0u64);
            for s in sets.iter().flatten() {
                one += first.len() as u64;
                two += s.len() as u64;
            }
            one /= 2;
            if one <= two {
                first.for_each(|e| {
                    let elsewhere = sets[1..].iter().flatten().any(|s| s.contains_elem(e));
                    if !elsewhere {
                        e.with_bytes(|b| dst.add(b, max));
                    }
                });
            } else {
                for (j, s) in sets.iter().enumerate() {
                    let Some(s) = s else { continue };
                    s.for_each(|e| {
                        e.with_bytes(|b| {
                            if j == 0 {
                                dst.add(b, max);
                            } else {
                                dst.remove(b);
                            }
                        })
                    });
                    if dst.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    dst
}

/// What SINTER's family does with the intersection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum InterMode {
    /// Reply with the members (SINTER, SMEMBERS).
    Reply,
    /// Count, stopping at a limit (SINTERCARD; 0 = no limit).
    Card(u64),
    /// Build a set (SINTERSTORE).
    Store,
}

/// A computed result, before it is replied or stored.
enum Outcome {
    /// Members in reply order (SINTER).
    Members(Vec<Vec<u8>>),
    /// A set to reply with (SUNION, SDIFF).
    Set(SetValue),
    /// A count (SINTERCARD).
    Card(u64),
    /// A set to store at the destination (the STORE commands).
    Store(SetValue),
}

/// sinterGenericCommand's computation over looked-up sets (None = missing key).
fn inter(keys: &[&[u8]], sets: &[Option<&SetValue>], mode: InterMode, max: usize) -> Outcome {
    if sets.iter().any(|s| s.is_none()) {
        return match mode {
            InterMode::Reply => Outcome::Members(Vec::new()),
            InterMode::Card(_) => Outcome::Card(0),
            InterMode::Store => Outcome::Store(SetValue::new_intset()),
        };
    }
    let sets: Vec<&SetValue> = sets.iter().flatten().copied().collect();
    // Smallest first (a stable sort, as glibc's qsort is for small arrays).
    let mut order: Vec<usize> = (0..sets.len()).collect();
    order.sort_by_key(|&i| sets[i].len());
    let first = order[0];
    let others: Vec<&SetValue> = order[1..]
        .iter()
        .filter(|&&j| keys[j] != keys[first])
        .map(|&j| sets[j])
        .collect();
    let mut members = Vec::new();
    let mut card = 0u64;
    let mut dst = SetValue::new_intset();
    sets[first].for_each_while(|e| {
        if others.iter().all(|s| s.contains_elem(e)) {
            match mode {
                InterMode::Reply => members.push(e.to_vec()),
                InterMode::Card(limit) => {
                    card += 1;
                    if limit != 0 && card >= limit {
                        return false;
                    }
                }
                InterMode::Store => {
                    e.with_bytes(|b| dst.add(b, max));
                }
            }
        }
        true
    });
    match mode {
        InterMode::Reply => Outcome::Members(members),
        InterMode::Card(_) => Outcome::Card(card),
        InterMode::Store => Outcome::Store(dst),
    }
}

/// The multi-set commands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    InterCard,
    InterStore,
    Union,
    UnionStore,
    Diff,
    DiffStore,
}

/// A parsed multi-set command: its source keys (argument indexes), destination and SINTERCARD limit.
struct Parsed {
    keys: std::ops::Range<usize>,
    dst: Option<usize>,
    limit: u64,
}

/// Parses the arguments of `op` as the command does, with its error texts.
fn parse(op: Op, argv: &[&[u8]]) -> Result<Parsed, &'static str> {
    Ok(match op {
        Op::Inter | Op::Union | Op::Diff => Parsed {
            keys: 1..argv.len(),
            dst: None,
            limit: 0,
        },
        Op::InterStore | Op::UnionStore | Op::DiffStore => Parsed {
            keys: 2..argv.len(),
            dst: Some(1),
            limit: 0,
        },
        Op::InterCard => {
            let numkeys = match arg_i64(argv[1]) {
                Some(n) if n >= 1 => n as u64,
                _ => return Err("ERR numkeys should be greater than 0"),
            };
            if numkeys > (argv.len() - 2) as u64 {
                return Err("ERR Number of keys can't be greater than number of args");
            }
            let end = 2 + numkeys as usize;
            let mut limit = 0;
            let mut j = end;
            while j < argv.len() {
                let more = argv.len() - 1 - j;
                if is(argv[j], "limit") && more > 0 {
                    j += 1;
                    limit = match arg_i64(argv[j]) {
                        Some(l) if l >= 0 => l as u64,
                        _ => return Err("ERR LIMIT can't be negative"),
                    };
                } else {
                    return Err(errors::SYNTAX);
                }
                j += 1;
            }
            Parsed {
                keys: 2..end,
                dst: None,
                limit,
            }
        }
    })
}

/// Runs the computation of `op` over looked-up sets.
fn compute(op: Op, keys: &[&[u8]], sets: &[Option<&SetValue>], limit: u64, max: usize) -> Outcome {
    match op {
        Op::Inter => inter(keys, sets, InterMode::Reply, max),
        Op::InterCard => inter(keys, sets, InterMode::Card(limit), max),
        Op::InterStore => inter(keys, sets, InterMode::Store, max),
        Op::Union => Outcome::Set(union_diff(keys, sets, SetOp::Union, max)),
        Op::Diff => Outcome::Set(union_diff(keys, sets, SetOp::Diff, max)),
        Op::UnionStore => Outcome::Store(union_diff(keys, sets, SetOp::Union, max)),
        Op::DiffStore => Outcome::Store(union_diff(keys, sets, SetOp::Diff, max)),
    }
}

/// Stores a STORE command's result at `dst` (deleting it when empty) and returns its size.
fn store(db: &mut Db, dst: &[u8], set: SetValue, now: u64) -> i64 {
    // setKey looks the destination up for writing first: an expired one is expired.
    db.find(dst, now, Access::Write);
    if set.is_empty() {
        db.delete(dst, now);
        return 0;
    }
    let n = set.len() as i64;
    db.insert_owned(dst, OwnedValue::Object(Object::Set(set)), None, now);
    n
}

/// Replies with an outcome other than `Store`.
fn reply_outcome(out: &mut ReplyBuf, o: &Outcome) {
    match o {
        Outcome::Members(v) => {
            out.set_len(v.len());
            for m in v {
                out.bulk(m);
            }
        }
        Outcome::Set(s) => reply_set(out, s),
        Outcome::Card(n) => out.int(*n as i64),
        Outcome::Store(s) => out.int(s.len() as i64),
    }
}

/// A multi-set command whose keys all live on this shard.
fn setop(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], op: Op) {
    let parsed = match parse(op, argv) {
        Ok(p) => p,
        Err(e) => return ctx.out.error(e),
    };
    let now = ctx.now_ms;
    let max = ctx.shard.limits.set_max_intset_entries;
    let (db, out) = ctx.db_out();
    let keys = &argv[parsed.keys.clone()];
    // Redis's loop: read lookups in key order, the first wrong type ends it.
    for k in keys {
        if db.find_kind(k, now, Access::Read, Kind::Set).is_err() {
            return out.error(errors::WRONGTYPE);
        }
    }
    // Expired keys are gone now, so these lookups move nothing and the positions hold.
    let pos: Vec<_> = keys
        .iter()
        .map(|k| db.find(k, now, Access::Silent))
        .collect();
    // SMEMBERS (or SINTER of one set, however often named) replies straight
    // from the set: the intersection would be the set itself, in its order.
    if op == Op::Inter && keys.iter().all(|k| *k == keys[0]) {
        if let Some(p) = pos[0] {
            return reply_set(out, db.set(p));
        }
    }
    let outcome = {
        let sets: Vec<Option<&SetValue>> = pos.iter().map(|p| p.map(|p| db.set(p))).collect();
        compute(op, keys, &sets, parsed.limit, max)
    };
    match (outcome, parsed.dst) {
        (Outcome::Store(s), Some(d)) => {
            let n = store(db, argv[d], s, now);
            out.int(n);
        }
        (o, _) => reply_outcome(out, &o),
    }
}

/// Copies the sets at `keys` from their shards, in key order, stopping at the
/// first wrong type (Err) as Redis's lookup loop does.
async fn gather(ctx: &MultiCtx, keys: &[Bytes]) -> Result<Vec<Option<SetValue>>, ()> {
    let n = ctx.core.nshards;
    let (db, now) = (ctx.db, ctx.now_ms);
    let mut sets = Vec::with_capacity(keys.len());
    let mut i = 0;
    while i < keys.len() {
        // Consecutive keys on one shard go in one hop.
        let s = shard_of_key(&keys[i], n);
        let mut j = i + 1;
        while j < keys.len() && shard_of_key(&keys[j], n) == s {
            j += 1;
        }
        let batch: Vec<Bytes> = keys[i..j].to_vec();
        let (got, wrong) = ctx
            .core
            .run_on(s, move |core| {
                let mut sh = core.shard.borrow_mut();
                let d = &mut sh.dbs[db];
                let mut got = Vec::with_capacity(batch.len());
                for k in &batch {
                    match d.find_kind(k, now, Access::Read, Kind::Set) {
                        Err(_) => return (got, true),
                        Ok(None) => got.push(None),
                        Ok(Some(p)) => got.push(Some(d.set(p).clone())),
                    }
                }
                (got, false)
            })
            .await
            .unwrap_or((Vec::new(), true));
        sets.extend(got);
        if wrong {
            return Err(());
        }
        i = j;
    }
    Ok(sets)
}

/// A multi-set command whose keys span shards.
fn setop_multi(ctx: MultiCtx, op: Op) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let argv: Vec<&[u8]> = ctx.argv.iter().map(|a| &a[..]).collect();
        let parsed = match parse(op, &argv) {
            Ok(p) => p,
            Err(e) => {
                out.error(e);
                return out;
            }
        };
        let keys: Vec<Bytes> = ctx.argv[parsed.keys.clone()].to_vec();
        let Ok(sets) = gather(&ctx, &keys).await else {
            out.error(errors::WRONGTYPE);
            return out;
        };
        let max = ctx.core.shard.borrow().limits.set_max_intset_entries;
        let key_refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let refs: Vec<Option<&SetValue>> = sets.iter().map(|s| s.as_ref()).collect();
        let outcome = compute(op, &key_refs, &refs, parsed.limit, max);
        drop(refs);
        match (outcome, parsed.dst) {
            (Outcome::Store(s), Some(d)) => {
                let dst = ctx.argv[d].clone();
                let (db, now) = (ctx.db, ctx.now_ms);
                let n = ctx
                    .core
                    .run_on(shard_of_key(&dst, ctx.core.nshards), move |core| {
                        let mut sh = core.shard.borrow_mut();
                        store(&mut sh.dbs[db], &dst, s, now)
                    })
                    .await
                    .unwrap_or(0);
                out.int(n);
            }
            (o, _) => reply_outcome(&mut out, &o),
        }
        out
    })
}

/// SMEMBERS key (SINTER of one set, as Redis runs it)
pub fn smembers(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    setop(ctx, argv, Op::Inter);
}

/// SINTER key [key ...]
pub fn sinter(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    setop(ctx, argv, Op::Inter);
}

/// SINTER across shards.
pub fn sinter_multi(ctx: MultiCtx) -> Reply {
    setop_multi(ctx, Op::Inter)
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn sintercard(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    setop(ctx, argv, Op::InterCard);
}

/// SINTERCARD across shards.
pub fn sintercard_multi(ctx: MultiCtx) -> Reply {
    setop_multi(ctx, Op::InterCard)
}

/// SINTERSTORE destination key [key ...]
pub fn sinterstore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    setop(ctx, argv, Op::InterStore);
}

/// SINTERSTORE across shards.
pub fn sinterstore_multi(ctx: MultiCtx) -> Reply {
    setop_multi(ctx, Op::InterStore)
}

/// SUNION key [key ...]
pub fn sunion(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    setop(ctx, argv, Op::Union);
}

/// SUNION across shards.
pub fn sunion_multi(ctx: MultiCtx) -> Reply {
    setop_multi(ctx, Op::Union)
}

/// SUNIONSTORE destination key [key ...]
pub fn sunionstore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    setop(ctx, argv, Op::UnionStore);
}

/// SUNIONSTORE across shards.
pub fn sunionstore_multi(ctx: MultiCtx) -> Reply {
    setop_multi(ctx, Op::UnionStore)
}

/// SDIFF key [key ...]
pub fn sdiff(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    setop(ctx, argv, Op::Diff);
}

/// SDIFF across shards.
pub fn sdiff_multi(ctx: MultiCtx) -> Reply {
    setop_multi(ctx, Op::Diff)
}

/// SDIFFSTORE destination key [key ...]
pub fn sdiffstore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    setop(ctx, argv, Op::DiffStore);
}

/// SDIFFSTORE across shards.
pub fn sdiffstore_multi(ctx: MultiCtx) -> Reply {
    setop_multi(ctx, Op::DiffStore)
}
