//! The list command family (non-blocking commands), as Redis 7.0's t_list.c.
//!
//! Besides the handlers, this module exposes the building blocks the blocking
//! commands (BLPOP, BLMOVE, BLMPOP...) reuse from a shard: `list_or_missing`
//! (destination type check), `push_elems` (push, creating the key),
//! `pop_elems` and `pop_reply` (pop, deleting the key when emptied), and the
//! argument parsers `parse_end` and `parse_mpop`. New list keys are always
//! created through `Db::create_object`, where key creation is observed.
//!
//! Cross-shard LMOVE/RPOPLPUSH/LMPOP run as coordinators hopping shard by
//! shard (like RENAME across shards): correct replies, but not isolated from
//! other clients between the hops.

use std::future::Future;
use std::pin::Pin;

use super::{arg_i64, errors, is, MultiCtx, ShardCtx};
use crate::protocol::reply::ReplyBuf;
use crate::server::exec::shard_of_key;
use crate::storage::db::{Access, Db, WrongType};
use crate::storage::list::{Elem, End, ListValue, Matcher};
use crate::storage::table::Pos;
use crate::storage::value::{Kind, Object};

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// Matches a keyword as Redis's strcasecmp on the argument as a C string:
/// the argument ends at its first NUL byte.
fn kw(a: &[u8], word: &str) -> bool {
    let end = memchr::memchr(0, a).unwrap_or(a.len());
    is(&a[..end], word)
}

/// LEFT/RIGHT as getListPositionFromObjectOrReply (None: reply `errors::SYNTAX`).
pub fn parse_end(a: &[u8]) -> Option<End> {
    if kw(a, "right") {
        Some(End::Tail)
    } else if kw(a, "left") {
        Some(End::Head)
    } else {
        None
    }
}

/// Writes one element as a bulk string.
#[inline]
fn bulk_elem(out: &mut ReplyBuf, e: Elem<'_>) {
    match e {
        Elem::Str(s) => out.bulk(s),
        Elem::Int(i) => out.bulk_i64(i),
    }
}

/// Looks up `key` as a list: Ok(None) when missing, Err for another type.
#[inline]
fn find_list(db: &mut Db, key: &[u8], now: u64, access: Access) -> Result<Option<Pos>, WrongType> {
    db.find_kind(key, now, access, Kind::List)
}

/// True when `key` is missing or holds a list (a valid push destination);
/// false means WRONGTYPE. Looks the key up for writing, as Redis does before
/// pushing (an expired key is deleted here).
pub fn list_or_missing(db: &mut Db, key: &[u8], now_ms: u64) -> bool {
    find_list(db, key, now_ms, Access::Write).is_ok()
}

/// Pushes `elems` in order at `end` of the list at `key`, creating the list
/// (through `Db::create_object`, with node size `fill` =
/// list-max-listpack-size) when the key is missing. Returns the new length,
/// or WrongType (nothing pushed) when the key holds another type.
pub fn push_elems<E: AsRef<[u8]>>(
    db: &mut Db,
    key: &[u8],
    end: End,
    elems: &[E],
    fill: i64,
    now_ms: u64,
) -> Result<usize, WrongType> {
    let p = match find_list(db, key, now_ms, Access::Write)? {
        Some(p) => p,
        None => db.create_object(key, Object::List(ListValue::with_fill(fill)), now_ms),
    };
    let l = db.list_mut(p);
    for e in elems {
        l.push(end, e.as_ref());
    }
    Ok(l.len())
}

/// Pops up to `count` elements from `end` of the list at `key`, deleting the
/// key when it empties. Ok(None) when the key is missing; WrongType when it
/// holds another type. Elements come in pop order.
pub fn pop_elems(
    db: &mut Db,
    key: &[u8],
    end: End,
    count: usize,
    now_ms: u64,
) -> Result<Option<Vec<Vec<u8>>>, WrongType> {
    let Some(p) = find_list(db, key, now_ms, Access::Write)? else {
        return Ok(None);
    };
    let l = db.list_mut(p);
    let n = count.min(l.len());
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        if let Some(e) = l.pop(end) {
            v.push(e);
        }
    }
    db.delete_if_empty(p);
    Ok(Some(v))
}

/// Pops from the list at `key` and writes the reply in one of the shapes the
/// list commands use, deleting the key when it empties:
///
/// | `count`  | `with_key` | reply                          | used by        |
/// |----------|------------|--------------------------------|----------------|
/// | None     | false      | bulk element                   | LPOP, RPOP     |
/// | Some(n)  | false      | array of up to n elements      | LPOP key n     |
/// | None     | true       | [key, element]                 | BLPOP, BRPOP   |
/// | Some(n)  | true       | [key, [up to n elements]]      | LMPOP, BLMPOP  |
///
/// Returns Ok(false), writing nothing, when the key is missing (or empty);
/// WrongType, writing nothing, when it holds another type. `Some(0)` pops
/// nothing and writes an empty array (LPOP's `count 0`).
pub fn pop_reply(
    db: &mut Db,
    key: &[u8],
    end: End,
    count: Option<usize>,
    with_key: bool,
    now_ms: u64,
    out: &mut ReplyBuf,
) -> Result<bool, WrongType> {
    let Some(p) = find_list(db, key, now_ms, Access::Write)? else {
        return Ok(false);
    };
    let l = db.list_mut(p);
    if l.is_empty() {
        return Ok(false);
    }
    if with_key {
        out.array_len(2);
        out.bulk(key);
    }
    match count {
        None => {
            let (start, rev) = match end {
                End::Head => (0, false),
                End::Tail => (l.len() - 1, true),
            };
            if let Some(e) = l.iter_at(start, rev).next() {
                bulk_elem(out, e);
            }
            l.delete_range(if rev { start } else { 0 }, 1);
        }
        Some(n) => {
            let n = n.min(l.len());
            out.array_len(n);
            if n > 0 {
                // The elements in pop order: from the head forwards, or from
                // the tail backwards (addListRangeReply with reverse).
                let (start, rev) = match end {
                    End::Head => (0, false),
                    End::Tail => (l.len() - 1, true),
                };
                for e in l.iter_at(start, rev).take(n) {
                    bulk_elem(out, e);
                }
                let from = match end {
                    End::Head => 0,
                    End::Tail => l.len() - n,
                };
                l.delete_range(from, n);
            }
        }
    }
    db.delete_if_empty(p);
    Ok(true)
}

fn push_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], end: End, only_existing: bool) {
    let now = ctx.now_ms;
    let fill = ctx.shard.limits.list_max_listpack_size;
    let (db, out) = ctx.db_out();
    if only_existing {
        match find_list(db, argv[1], now, Access::Write) {
            Err(_) => return out.error(errors::WRONGTYPE),
            Ok(None) => return out.int(0),
            Ok(Some(_)) => {}
        }
    }
    match push_elems(db, argv[1], end, &argv[2..], fill, now) {
        Ok(n) => out.int(n as i64),
        Err(_) => out.error(errors::WRONGTYPE),
    }
}

/// LPUSH key element [element ...]
pub fn lpush(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    push_generic(ctx, argv, End::Head, false)
}

/// RPUSH key element [element ...]
pub fn rpush(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    push_generic(ctx, argv, End::Tail, false)
}

/// LPUSHX key element [element ...]
pub fn lpushx(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    push_generic(ctx, argv, End::Head, true)
}

/// RPUSHX key element [element ...]
pub fn rpushx(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    push_generic(ctx, argv, End::Tail, true)
}

fn pop_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], end: End, name: &str) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    // LPOP's arity is -2, so popGenericCommand checks the upper bound itself.
    if argv.len() > 3 {
        return out.error(&format!(
            "ERR wrong number of arguments for '{name}' command"
        ));
    }
    let count = if argv.len() == 3 {
        match arg_i64(argv[2]) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return out.error("ERR value is out of range, must be positive"),
        }
    } else {
        None
    };
    match pop_reply(db, argv[1], end, count, false, now, out) {
        Ok(true) => {}
        Ok(false) if count.is_some() => out.null_array(),
        Ok(false) => out.null(),
        Err(_) => out.error(errors::WRONGTYPE),
    }
}

/// LPOP key [count]
pub fn lpop(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    pop_generic(ctx, argv, End::Head, "lpop")
}

/// RPOP key [count]
pub fn rpop(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    pop_generic(ctx, argv, End::Tail, "rpop")
}

/// LLEN key
pub fn llen(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match find_list(db, argv[1], now, Access::Read) {
        Ok(Some(p)) => out.int(db.list(p).len() as i64),
        Ok(None) => out.int(0),
        Err(_) => out.error(errors::WRONGTYPE),
    }
}

/// LINDEX key index
pub fn lindex(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    // The key is looked up before the index is parsed, as lindexCommand.
    let p = match find_list(db, argv[1], now, Access::Read) {
        Ok(Some(p)) => p,
        Ok(None) => return out.null(),
        Err(_) => return out.error(errors::WRONGTYPE),
    };
    let Some(i) = arg_i64(argv[2]) else {
        return out.error(errors::NOT_INT);
    };
    match db.list(p).get(i) {
        Some(e) => bulk_elem(out, e),
        None => out.null(),
    }
}

/// The range `start..=end` of a list of `len` after Redis's index rules, or None when empty.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let llen = len as i64;
    let mut start = if start < 0 { llen + start } else { start };
    let mut end = if end < 0 { llen + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        return None;
    }
    if end >= llen {
        end = llen - 1;
    }
    Some((start as usize, end as usize))
}

/// LRANGE key start stop
pub fn lrange(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let (Some(start), Some(end)) = (arg_i64(argv[2]), arg_i64(argv[3])) else {
        return out.error(errors::NOT_INT);
    };
    let p = match find_list(db, argv[1], now, Access::Read) {
        Ok(Some(p)) => p,
        Ok(None) => return out.array_len(0),
        Err(_) => return out.error(errors::WRONGTYPE),
    };
    let l = db.list(p);
    match clamp_range(start, end, l.len()) {
        None => out.array_len(0),
        Some((s, e)) => {
            out.array_len(e - s + 1);
            for x in l.iter(s).take(e - s + 1) {
                bulk_elem(out, x);
            }
        }
    }
}

/// LSET key index element
pub fn lset(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let p = match find_list(db, argv[1], now, Access::Write) {
        Ok(Some(p)) => p,
        Ok(None) => return out.error(errors::NO_SUCH_KEY),
        Err(_) => return out.error(errors::WRONGTYPE),
    };
    let Some(i) = arg_i64(argv[2]) else {
        return out.error(errors::NOT_INT);
    };
    if db.list_mut(p).set(i, argv[3]) {
        out.ok()
    } else {
        out.error("ERR index out of range")
    }
}

/// LINSERT key BEFORE|AFTER pivot element
pub fn linsert(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let after = if kw(argv[2], "after") {
        true
    } else if kw(argv[2], "before") {
        false
    } else {
        return out.error(errors::SYNTAX);
    };
    let p = match find_list(db, argv[1], now, Access::Write) {
        Ok(Some(p)) => p,
        Ok(None) => return out.int(0),
        Err(_) => return out.error(errors::WRONGTYPE),
    };
    let l = db.list_mut(p);
    if l.insert_at_pivot(argv[3], argv[4], after) {
        out.int(l.len() as i64)
    } else {
        out.int(-1)
    }
}

/// LREM key count element
pub fn lrem(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(count) = arg_i64(argv[2]) else {
        return out.error(errors::NOT_INT);
    };
    let p = match find_list(db, argv[1], now, Access::Write) {
        Ok(Some(p)) => p,
        Ok(None) => return out.int(0),
        Err(_) => return out.error(errors::WRONGTYPE),
    };
    let limit = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    let removed = db.list_mut(p).remove_matching(argv[3], limit, count < 0);
    db.delete_if_empty(p);
    out.int(removed as i64);
}

/// LTRIM key start stop
pub fn ltrim(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let (Some(start), Some(end)) = (arg_i64(argv[2]), arg_i64(argv[3])) else {
        return out.error(errors::NOT_INT);
    };
    let p = match find_list(db, argv[1], now, Access::Write) {
        Ok(Some(p)) => p,
        Ok(None) => return out.ok(),
        Err(_) => return out.error(errors::WRONGTYPE),
    };
    let l = db.list_mut(p);
    let len = l.len();
    match clamp_range(start, end, len) {
        None => l.delete_range(0, len),
        Some((s, e)) => {
            l.delete_range(e + 1, len - e - 1);
            l.delete_range(0, s);
        }
    }
    db.delete_if_empty(p);
    out.ok();
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
pub fn lpos(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let (mut rank, mut count, mut maxlen) = (1i64, -1i64, 0i64);
    let mut j = 3;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        if kw(argv[j], "rank") && more {
            j += 1;
            let Some(r) = arg_i64(argv[j]) else {
                return out.error(errors::NOT_INT);
            };
            if r == 0 {
                return out.error(
                    "ERR RANK can't be zero: use 1 to start from the first match, \
                     2 from the second ... or use negative to start from the end of the list",
                );
            }
            rank = r;
        } else if kw(argv[j], "count") && more {
            j += 1;
            match arg_i64(argv[j]) {
                Some(c) if c >= 0 => count = c,
                _ => return out.error("ERR COUNT can't be negative"),
            }
        } else if kw(argv[j], "maxlen") && more {
            j += 1;
            match arg_i64(argv[j]) {
                Some(m) if m >= 0 => maxlen = m,
                _ => return out.error("ERR MAXLEN can't be negative"),
            }
        } else {
            return out.error(errors::SYNTAX);
        }
        j += 1;
    }
    // A negative rank scans from the tail. Redis negates it in C's wrapping
    // arithmetic, so LONG_MIN stays negative: every match then counts.
    let from_tail = rank < 0;
    if from_tail {
        rank = rank.wrapping_neg();
    }
    let p = match find_list(db, argv[1], now, Access::Read) {
        Ok(Some(p)) => p,
        Ok(None) if count != -1 => return out.array_len(0),
        Ok(None) => return out.null(),
        Err(_) => return out.error(errors::WRONGTYPE),
    };
    let l = db.list(p);
    let llen = l.len() as i64;
    let m = Matcher::new(argv[2]);
    let iter = if from_tail {
        l.iter_at(l.len() - 1, true)
    } else {
        l.iter(0)
    };
    let mut found: Vec<i64> = Vec::new();
    let mut matches = 0i64;
    let mut single = None;
    for (index, e) in iter.enumerate() {
        let index = index as i64;
        if maxlen != 0 && index >= maxlen {
            break;
        }
        if !m.matches(e) {
            continue;
        }
        matches += 1;
        let at = if from_tail { llen - index - 1 } else { index };
        if matches >= rank {
            if count != -1 {
                found.push(at);
                if count != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= count {
                    break;
                }
            } else {
                single = Some(at);
                break;
            }
        }
    }
    if count != -1 {
        out.array_len(found.len());
        for i in found {
            out.int(i);
        }
    } else {
        match single {
            Some(i) => out.int(i),
            None => out.null(),
        }
    }
}

/// The outcome of the source side of a move.
enum MoveSrc {
    /// The source is missing: the reply is null.
    Missing,
    /// A key holds the wrong type.
    WrongType,
    /// The popped element.
    Popped(Vec<u8>),
}

/// Pops one element from `src` for a move, unless `dst_ok` is false (the
/// destination holds another type: Redis errors before popping). Does not
/// delete `src` when it empties (the caller does, after pushing, so that a
/// rotation of a one-element list keeps its key).
fn move_pop(db: &mut Db, src: &[u8], from: End, dst_ok: bool, now: u64) -> MoveSrc {
    match find_list(db, src, now, Access::Write) {
        Ok(None) => MoveSrc::Missing,
        Err(_) => MoveSrc::WrongType,
        Ok(Some(_)) if !dst_ok => MoveSrc::WrongType,
        Ok(Some(p)) => match db.list_mut(p).pop(from) {
            Some(v) => MoveSrc::Popped(v),
            None => MoveSrc::Missing,
        },
    }
}

/// Deletes `key` when it is an empty list (after a move took its last element).
fn delete_if_empty_list(db: &mut Db, key: &[u8], now: u64) {
    if let Ok(Some(p)) = find_list(db, key, now, Access::Silent) {
        db.delete_if_empty(p);
    }
}

/// LMOVE/RPOPLPUSH with both keys on this shard (lmoveGenericCommand).
fn lmove_generic(ctx: &mut ShardCtx<'_>, src: &[u8], dst: &[u8], from: End, to: End) {
    let now = ctx.now_ms;
    let fill = ctx.shard.limits.list_max_listpack_size;
    let (db, out) = ctx.db_out();
    match find_list(db, src, now, Access::Write) {
        Ok(None) => return out.null(),
        Err(_) => return out.error(errors::WRONGTYPE),
        Ok(Some(_)) => {}
    }
    let dst_ok = list_or_missing(db, dst, now);
    let v = match move_pop(db, src, from, dst_ok, now) {
        MoveSrc::Missing => return out.null(),
        MoveSrc::WrongType => return out.error(errors::WRONGTYPE),
        MoveSrc::Popped(v) => v,
    };
    if push_elems(db, dst, to, &[&v[..]], fill, now).is_err() {
        // Unreachable after the check above; keep the element rather than lose it.
        if let Ok(Some(p)) = find_list(db, src, now, Access::Silent) {
            db.list_mut(p).push(from, &v);
        }
        return out.error(errors::WRONGTYPE);
    }
    delete_if_empty_list(db, src, now);
    out.bulk(&v);
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT (keys on this shard)
pub fn lmove(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let (Some(from), Some(to)) = (parse_end(argv[3]), parse_end(argv[4])) else {
        return ctx.out.error(errors::SYNTAX);
    };
    lmove_generic(ctx, argv[1], argv[2], from, to)
}

/// RPOPLPUSH source destination (keys on this shard)
pub fn rpoplpush(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    lmove_generic(ctx, argv[1], argv[2], End::Tail, End::Head)
}

/// LMOVE/RPOPLPUSH across shards: check the destination's type on its shard,
/// pop on the source's shard, push on the destination's shard.
fn lmove_multi_generic(ctx: MultiCtx, from: End, to: End) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let n = ctx.core.nshards;
        let (src, dst) = (ctx.argv[1].clone(), ctx.argv[2].clone());
        let (ss, ds) = (shard_of_key(&src, n), shard_of_key(&dst, n));
        let (db, now) = (ctx.db, ctx.now_ms);
        let d2 = dst.clone();
        let dst_ok = ctx
            .core
            .run_on(ds, move |core| {
                list_or_missing(&mut core.shard.borrow_mut().dbs[db], &d2, now)
            })
            .await
            .unwrap_or(false);
        let s2 = src.clone();
        let popped = ctx
            .core
            .run_on(ss, move |core| {
                let mut shard = core.shard.borrow_mut();
                let d = &mut shard.dbs[db];
                let r = move_pop(d, &s2, from, dst_ok, now);
                delete_if_empty_list(d, &s2, now);
                r
            })
            .await
            .unwrap_or(MoveSrc::Missing);
        let v = match popped {
            MoveSrc::Missing => {
                out.null();
                return out;
            }
            MoveSrc::WrongType => {
                out.error(errors::WRONGTYPE);
                return out;
            }
            MoveSrc::Popped(v) => v,
        };
        let v2 = v.clone();
        let pushed = ctx
            .core
            .run_on(ds, move |core| {
                let mut shard = core.shard.borrow_mut();
                let fill = shard.limits.list_max_listpack_size;
                push_elems(&mut shard.dbs[db], &dst, to, &[&v2[..]], fill, now).is_ok()
            })
            .await
            .unwrap_or(false);
        if !pushed {
            // The destination changed type between the check and the push:
            // give the element back to the source rather than lose it.
            let v3 = v.clone();
            ctx.core
                .run_on(ss, move |core| {
                    let mut shard = core.shard.borrow_mut();
                    let fill = shard.limits.list_max_listpack_size;
                    let _ = push_elems(&mut shard.dbs[db], &src, from, &[&v3[..]], fill, now);
                })
                .await;
            out.error(errors::WRONGTYPE);
            return out;
        }
        out.bulk(&v);
        out
    })
}

/// LMOVE across shards.
pub fn lmove_multi(ctx: MultiCtx) -> Reply {
    let ends = (parse_end(&ctx.argv[3]), parse_end(&ctx.argv[4]));
    let (Some(from), Some(to)) = ends else {
        let mut out = ctx.reply();
        out.error(errors::SYNTAX);
        return Box::pin(async move { out });
    };
    lmove_multi_generic(ctx, from, to)
}

/// RPOPLPUSH across shards.
pub fn rpoplpush_multi(ctx: MultiCtx) -> Reply {
    lmove_multi_generic(ctx, End::Tail, End::Head)
}

/// Parsed LMPOP/BLMPOP arguments.
pub struct MpopArgs {
    /// Where the keys are in argv.
    pub keys: std::ops::Range<usize>,
    /// LEFT or RIGHT.
    pub end: End,
    /// COUNT (1 when not given).
    pub count: usize,
}

/// Parses `numkeys key [key ...] LEFT|RIGHT [COUNT count]` starting at
/// `numkeys_idx`, as lmpopGenericCommand (also for BLMPOP, whose numkeys is
/// at 2); the error is the whole reply text.
pub fn parse_mpop(argv: &[&[u8]], numkeys_idx: usize) -> Result<MpopArgs, &'static str> {
    let numkeys = match arg_i64(argv[numkeys_idx]) {
        Some(n) if n >= 1 => n as u64,
        _ => return Err("ERR numkeys should be greater than 0"),
    };
    let where_idx = (numkeys_idx as u64)
        .saturating_add(numkeys)
        .saturating_add(1);
    if where_idx >= argv.len() as u64 {
        return Err(errors::SYNTAX);
    }
    let where_idx = where_idx as usize;
    let end = parse_end(argv[where_idx]).ok_or(errors::SYNTAX)?;
    let mut count = None;
    let mut j = where_idx + 1;
    while j < argv.len() {
        if count.is_none() && kw(argv[j], "count") && j + 1 < argv.len() {
            j += 1;
            match arg_i64(argv[j]) {
                Some(c) if c >= 1 => count = Some(c as usize),
                _ => return Err("ERR count should be greater than 0"),
            }
        } else {
            return Err(errors::SYNTAX);
        }
        j += 1;
    }
    Ok(MpopArgs {
        keys: numkeys_idx + 1..where_idx,
        end,
        count: count.unwrap_or(1),
    })
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count] (keys on this shard)
pub fn lmpop(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let a = match parse_mpop(argv, 1) {
        Ok(a) => a,
        Err(e) => return out.error(e),
    };
    for &key in &argv[a.keys] {
        match pop_reply(db, key, a.end, Some(a.count), true, now, out) {
            Ok(true) => return,
            Ok(false) => {}
            Err(_) => return out.error(errors::WRONGTYPE),
        }
    }
    out.null_array();
}

/// LMPOP across shards: the keys are tried in order, consecutive keys of one
/// shard in one hop, until one holds a non-empty list or another type.
pub fn lmpop_multi(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let argv: Vec<&[u8]> = ctx.argv.iter().map(|a| &a[..]).collect();
        let a = match parse_mpop(&argv, 1) {
            Ok(a) => a,
            Err(e) => {
                out.error(e);
                return out;
            }
        };
        let n = ctx.core.nshards;
        let (db, now, proto) = (ctx.db, ctx.now_ms, ctx.proto);
        let keys = &ctx.argv[a.keys.clone()];
        let mut i = 0;
        while i < keys.len() {
            let shard = shard_of_key(&keys[i], n);
            let mut j = i + 1;
            while j < keys.len() && shard_of_key(&keys[j], n) == shard {
                j += 1;
            }
            let run: Vec<bytes::Bytes> = keys[i..j].to_vec();
            let (end, count) = (a.end, a.count);
            // Ok(Some(reply)) popped, Ok(None) nothing here, Err WRONGTYPE.
            let r = ctx
                .core
                .run_on(shard, move |core| {
                    let mut shard = core.shard.borrow_mut();
                    let d = &mut shard.dbs[db];
                    let mut o = ReplyBuf::new(proto);
                    for k in &run {
                        match pop_reply(d, k, end, Some(count), true, now, &mut o) {
                            Ok(true) => return Ok(Some(o.buf)),
                            Ok(false) => {}
                            Err(_) => return Err(()),
                        }
                    }
                    Ok(None)
                })
                .await
                .unwrap_or(Ok(None));
            match r {
                Ok(Some(buf)) => {
                    out.raw(&buf);
                    return out;
                }
                Ok(None) => {}
                Err(()) => {
                    out.error(errors::WRONGTYPE);
                    return out;
                }
            }
            i = j;
        }
        out.null_array();
        out
    })
}
