//! The sorted-set command family: ZADD, ranges by rank/score/lex, set algebra, pops.
//!
//! Every handler follows t_zset.c's order of checks (option parsing, then the
//! key's type, then the range), since clients see which error comes first.
//! Multi-key commands run on the keys' shard when they share one; otherwise a
//! coordinator gathers copies of the inputs from their shards, computes, and
//! stores the result on the destination's shard.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;

use super::keys::{parse_cursor, parse_scan_opts};
use super::{arg_i64, errors, is, MultiCtx, ShardCtx};
use crate::protocol::reply::ReplyBuf;
use crate::server::core::Core;
use crate::server::exec::shard_of_key;
use crate::storage::db::{Access, Db};
use crate::storage::value::{Kind, Object, OwnedValue};
use crate::storage::zset::{SetOutcome, ZLimits, ZSetValue};
use crate::util::{glob, num};

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// Elements copied out of a sorted set (or a set, with score 1), in order.
type Elems = Vec<(Vec<u8>, f64)>;

const ERR_NAN: &str = "ERR resulting score is not a number (NaN)";
const ERR_MINMAX_FLOAT: &str = "ERR min or max is not a float";
const ERR_MINMAX_LEX: &str = "ERR min or max not valid string range item";
const ERR_POSITIVE: &str = "ERR value is out of range, must be positive";

fn limits(ctx: &ShardCtx<'_>) -> ZLimits {
    ZLimits::from(&ctx.shard.limits)
}

/// Parses as C's strtod on a NUL-terminated copy and requires it to consume
/// everything up to the first NUL (zslParseRange's rules: leading blanks,
/// hex, "inf", an empty string as 0 and out-of-range values are all accepted).
fn strtod_full(a: &[u8]) -> Option<f64> {
    let mut c = Vec::with_capacity(a.len() + 1);
    c.extend_from_slice(a);
    c.push(0);
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `c` is NUL-terminated, so strtod reads within it; `end` is a valid
    // out-pointer and is set to a position inside `c` (or its start).
    let v = unsafe { libc::strtod(c.as_ptr().cast(), &mut end) };
    // SAFETY: `end` points into `c` (strtod's contract), at or before its NUL.
    let stop = unsafe { *end } as u8;
    if stop != 0 || v.is_nan() {
        return None;
    }
    Some(v)
}

/// A score interval (zrangespec).
#[derive(Clone, Copy, Debug)]
struct ScoreRange {
    min: f64,
    max: f64,
    minex: bool,
    maxex: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        let item = |a: &[u8]| -> Option<(f64, bool)> {
            match a.first() {
                Some(b'(') => strtod_full(&a[1..]).map(|v| (v, true)),
                _ => strtod_full(a).map(|v| (v, false)),
            }
        };
        let (min, minex) = item(min)?;
        let (max, maxex) = item(max)?;
        Some(ScoreRange {
            min,
            max,
            minex,
            maxex,
        })
    }

    fn gte_min(&self, s: f64) -> bool {
        if self.minex {
            s > self.min
        } else {
            s >= self.min
        }
    }

    fn lte_max(&self, s: f64) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }

    /// The ascending rank interval [lo, hi) of the elements in range.
    fn ranks(&self, z: &ZSetValue) -> (usize, usize) {
        let lo = z.partition_point(|s, _| !self.gte_min(s));
        let hi = z.partition_point(|s, _| self.lte_max(s));
        (lo, hi.max(lo))
    }
}

/// One end of a lex range (zslParseLexRangeItem).
#[derive(Clone, Debug)]
enum LexItem {
    NegInf,
    PosInf,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

impl LexItem {
    fn parse(a: &[u8]) -> Option<LexItem> {
        // Redis reads the argument as a C string: "+" must be followed by its end or a NUL.
        let single = a.len() == 1 || a.get(1) == Some(&0);
        match a.first() {
            Some(b'+') if single => Some(LexItem::PosInf),
            Some(b'-') if single => Some(LexItem::NegInf),
            Some(b'(') => Some(LexItem::Excl(a[1..].to_vec())),
            Some(b'[') => Some(LexItem::Incl(a[1..].to_vec())),
            _ => None,
        }
    }
}

/// A lex interval (zlexrangespec).
#[derive(Clone, Debug)]
struct LexRange {
    min: LexItem,
    max: LexItem,
}

impl LexRange {
    fn parse(min: &[u8], max: &[u8]) -> Option<LexRange> {
        Some(LexRange {
            min: LexItem::parse(min)?,
            max: LexItem::parse(max)?,
        })
    }

    fn gte_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexItem::NegInf => true,
            LexItem::PosInf => false,
            LexItem::Incl(v) => m >= &v[..],
            LexItem::Excl(v) => m > &v[..],
        }
    }

    fn lte_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexItem::NegInf => false,
            LexItem::PosInf => true,
            LexItem::Incl(v) => m <= &v[..],
            LexItem::Excl(v) => m < &v[..],
        }
    }

    fn ranks(&self, z: &ZSetValue) -> (usize, usize) {
        let lo = z.partition_point(|_, m| !self.gte_min(m));
        let hi = z.partition_point(|_, m| self.lte_max(m));
        (lo, hi.max(lo))
    }
}

/// Writes the header of a list of `n` elements, WITHSCORES as pairs in RESP3.
fn elems_header(out: &mut ReplyBuf, n: usize, withscores: bool) {
    if withscores && !out.resp3() {
        out.array_len(n * 2);
    } else {
        out.array_len(n);
    }
}

/// Writes one element of such a list.
fn elem(out: &mut ReplyBuf, m: &[u8], s: f64, withscores: bool) {
    if withscores && out.resp3() {
        out.array_len(2);
    }
    out.bulk(m);
    if withscores {
        out.double(s);
    }
}

fn reply_elems(out: &mut ReplyBuf, elems: &[(Vec<u8>, f64)], withscores: bool) {
    elems_header(out, elems.len(), withscores);
    for (m, s) in elems {
        elem(out, m, *s, withscores);
    }
}

/// Looks up a sorted set; Err after replying WRONGTYPE.
fn lookup(
    db: &mut Db,
    key: &[u8],
    now: u64,
    access: Access,
    out: &mut ReplyBuf,
) -> Result<Option<crate::storage::table::Pos>, ()> {
    match db.find_kind(key, now, access, Kind::ZSet) {
        Ok(p) => Ok(p),
        Err(_) => {
            out.error(errors::WRONGTYPE);
            Err(())
        }
    }
}

/// Stores `elems` (sorted) at `dst` replacing whatever is there, or deletes
/// `dst` when empty; replies with the count (the *STORE commands).
fn store_sorted(db: &mut Db, dst: &[u8], elems: &Elems, lim: ZLimits, now: u64) -> usize {
    let _ = db.find(dst, now, Access::Write);
    if elems.is_empty() {
        db.delete(dst, now);
        return 0;
    }
    let z = ZSetValue::from_sorted(elems, lim);
    db.insert_owned(dst, OwnedValue::Object(Object::ZSet(z)), None, now);
    elems.len()
}

/// Sorts elements in sorted-set order.
fn sort_elems(v: &mut Elems) {
    v.sort_by(|a, b| crate::storage::zset::cmp_key(a.1, &a.0, b.1, &b.0));
}

// ------------------------------------------------------------------ ZADD

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub fn zadd(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zadd_generic(ctx, argv, false);
}

/// ZINCRBY key increment member
pub fn zincrby(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zadd_generic(ctx, argv, true);
}

fn zadd_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], incr: bool) {
    let mut f = AddFlags {
        incr,
        ..AddFlags::default()
    };
    let mut idx = 2;
    while idx < argv.len() {
        let a = argv[idx];
        if is(a, "nx") {
            f.nx = true;
        } else if is(a, "xx") {
            f.xx = true;
        } else if is(a, "ch") {
            f.ch = true;
        } else if is(a, "incr") {
            f.incr = true;
        } else if is(a, "gt") {
            f.gt = true;
        } else if is(a, "lt") {
            f.lt = true;
        } else {
            break;
        }
        idx += 1;
    }
    let elements = argv.len() - idx;
    if !elements.is_multiple_of(2) || elements == 0 {
        return ctx.out.error(errors::SYNTAX);
    }
    let elements = elements / 2;
    if f.nx && f.xx {
        return ctx
            .out
            .error("ERR XX and NX options at the same time are not compatible");
    }
    if [f.gt, f.lt, f.nx].iter().filter(|&&x| x).count() > 1 {
        return ctx
            .out
            .error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && elements > 1 {
        return ctx
            .out
            .error("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(elements);
    for j in 0..elements {
        match num::parse_f64(argv[idx + j * 2]) {
            Some(s) => scores.push(s),
            None => return ctx.out.error(errors::NOT_FLOAT),
        }
    }
    let lim = limits(ctx);
    let now = ctx.now_ms;
    let key = argv[1];
    let (db, out) = ctx.db_out();
    let Ok(pos) = lookup(db, key, now, Access::Write, out) else {
        return;
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last_score = 0.0;
    let pos = match pos {
        Some(p) => Some(p),
        None if f.xx => None,
        None => {
            let z = ZSetValue::new_for(lim, argv[idx + 1].len());
            Some(db.create_object(key, Object::ZSet(z), now))
        }
    };
    if let Some(p) = pos {
        let z = db.zset_mut(p);
        for (j, &score0) in scores.iter().enumerate() {
            let member = argv[idx + j * 2 + 1];
            let mut score = score0;
            match z.score(member) {
                Some(cur) => {
                    if f.nx {
                        continue;
                    }
                    if f.incr {
                        score += cur;
                        if score.is_nan() {
                            out.error(ERR_NAN);
                            return;
                        }
                    }
                    if (f.lt && score >= cur) || (f.gt && score <= cur) {
                        continue;
                    }
                    processed += 1;
                    last_score = score;
                    if z.set(member, score, lim) == SetOutcome::Updated {
                        updated += 1;
                    }
                }
                None => {
                    if f.xx {
                        continue;
                    }
                    z.set(member, score, lim);
                    added += 1;
                    processed += 1;
                    last_score = score;
                }
            }
        }
    }
    if f.incr {
        if processed > 0 {
            out.double(last_score);
        } else {
            out.null();
        }
    } else {
        out.int(if f.ch { added + updated } else { added });
    }
}

// ------------------------------------------------------------------ simple reads and writes

/// ZREM key member [member ...]
pub fn zrem(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Ok(pos) = lookup(db, argv[1], now, Access::Write, out) else {
        return;
    };
    let Some(p) = pos else {
        return out.int(0);
    };
    let z = db.zset_mut(p);
    let mut n = 0;
    for m in &argv[2..] {
        if z.remove(m) {
            n += 1;
            if z.is_empty() {
                break;
            }
        }
    }
    db.delete_if_empty(p);
    out.int(n);
}

/// ZCARD key
pub fn zcard(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    if let Ok(pos) = lookup(db, argv[1], now, Access::Read, out) {
        out.int(pos.map_or(0, |p| db.zset(p).len() as i64));
    }
}

/// ZSCORE key member
pub fn zscore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    if let Ok(pos) = lookup(db, argv[1], now, Access::Read, out) {
        match pos.and_then(|p| db.zset(p).score(argv[2])) {
            Some(s) => out.double(s),
            None => out.null(),
        }
    }
}

/// ZMSCORE key member [member ...]
pub fn zmscore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    if let Ok(pos) = lookup(db, argv[1], now, Access::Read, out) {
        out.array_len(argv.len() - 2);
        for m in &argv[2..] {
            match pos.and_then(|p| db.zset(p).score(m)) {
                Some(s) => out.double(s),
                None => out.null(),
            }
        }
    }
}

/// ZCOUNT key min max
pub fn zcount(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let Some(r) = ScoreRange::parse(argv[2], argv[3]) else {
        return ctx.out.error(ERR_MINMAX_FLOAT);
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    if let Ok(pos) = lookup(db, argv[1], now, Access::Read, out) {
        out.int(pos.map_or(0, |p| {
            let (lo, hi) = r.ranks(db.zset(p));
            (hi - lo) as i64
        }));
    }
}

/// ZLEXCOUNT key min max
pub fn zlexcount(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let Some(r) = LexRange::parse(argv[2], argv[3]) else {
        return ctx.out.error(ERR_MINMAX_LEX);
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    if let Ok(pos) = lookup(db, argv[1], now, Access::Read, out) {
        out.int(pos.map_or(0, |p| {
            let (lo, hi) = r.ranks(db.zset(p));
            (hi - lo) as i64
        }));
    }
}

fn zrank_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], rev: bool) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Ok(pos) = lookup(db, argv[1], now, Access::Read, out) else {
        return;
    };
    let Some(p) = pos else {
        return out.null();
    };
    let z = db.zset(p);
    match z.rank(argv[2]) {
        Some(r) if rev => out.int((z.len() - 1 - r) as i64),
        Some(r) => out.int(r as i64),
        None => out.null(),
    }
}

/// ZRANK key member
pub fn zrank(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zrank_generic(ctx, argv, false);
}

/// ZREVRANK key member
pub fn zrevrank(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zrank_generic(ctx, argv, true);
}

/// Clamps a rank range as Redis does; None when empty.
fn clamp_ranks(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum RemKind {
    Rank,
    Score,
    Lex,
}

fn zremrange_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], kind: RemKind) {
    let (mut start, mut end) = (0, 0);
    let mut sr = None;
    let mut lr = None;
    match kind {
        RemKind::Rank => match (arg_i64(argv[2]), arg_i64(argv[3])) {
            (Some(a), Some(b)) => (start, end) = (a, b),
            _ => return ctx.out.error(errors::NOT_INT),
        },
        RemKind::Score => match ScoreRange::parse(argv[2], argv[3]) {
            Some(r) => sr = Some(r),
            None => return ctx.out.error(ERR_MINMAX_FLOAT),
        },
        RemKind::Lex => match LexRange::parse(argv[2], argv[3]) {
            Some(r) => lr = Some(r),
            None => return ctx.out.error(ERR_MINMAX_LEX),
        },
    }
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Ok(pos) = lookup(db, argv[1], now, Access::Write, out) else {
        return;
    };
    let Some(p) = pos else {
        return out.int(0);
    };
    let z = db.zset_mut(p);
    let (lo, hi_excl) = match kind {
        RemKind::Rank => match clamp_ranks(start, end, z.len()) {
            Some((a, b)) => (a, b + 1),
            None => return out.int(0),
        },
        RemKind::Score => sr.map_or((0, 0), |r| r.ranks(z)),
        RemKind::Lex => lr.map_or((0, 0), |r| r.ranks(z)),
    };
    let n = hi_excl - lo;
    if n > 0 {
        z.remove_range(lo, hi_excl - 1);
    }
    db.delete_if_empty(p);
    out.int(n as i64);
}

/// ZREMRANGEBYRANK key start stop
pub fn zremrangebyrank(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zremrange_generic(ctx, argv, RemKind::Rank);
}

/// ZREMRANGEBYSCORE key min max
pub fn zremrangebyscore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zremrange_generic(ctx, argv, RemKind::Score);
}

/// ZREMRANGEBYLEX key min max
pub fn zremrangebylex(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zremrange_generic(ctx, argv, RemKind::Lex);
}

// ------------------------------------------------------------------ ZRANGE and friends

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RType {
    Auto,
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE-family request.
#[derive(Clone, Debug)]
struct RangeSpec {
    rtype: RType,
    rev: bool,
    withscores: bool,
    offset: i64,
    limit: i64,
    start: i64,
    end: i64,
    score: Option<ScoreRange>,
    lex: Option<LexRange>,
}

/// Parses as zrangeGenericCommand; `first` is the source key's index.
fn parse_range(
    argv: &[&[u8]],
    first: usize,
    store: bool,
    rtype: RType,
    rev: Option<bool>,
) -> Result<RangeSpec, &'static str> {
    let mut s = RangeSpec {
        rtype,
        rev: rev.unwrap_or(false),
        withscores: false,
        offset: 0,
        limit: -1,
        start: 0,
        end: 0,
        score: None,
        lex: None,
    };
    let dir_auto = rev.is_none();
    let mut j = first + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = argv[j];
        if !store && is(a, "withscores") {
            s.withscores = true;
        } else if is(a, "limit") && left >= 2 {
            match (arg_i64(argv[j + 1]), arg_i64(argv[j + 2])) {
                (Some(o), Some(l)) => (s.offset, s.limit) = (o, l),
                _ => return Err(errors::NOT_INT),
            }
            j += 2;
        } else if dir_auto && is(a, "rev") {
            s.rev = true;
        } else if rtype == RType::Auto && s.rtype == RType::Auto && is(a, "bylex") {
            s.rtype = RType::Lex;
        } else if rtype == RType::Auto && s.rtype == RType::Auto && is(a, "byscore") {
            s.rtype = RType::Score;
        } else {
            return Err(errors::SYNTAX);
        }
        j += 1;
    }
    if s.rtype == RType::Auto {
        s.rtype = RType::Rank;
    }
    if s.limit != -1 && s.rtype == RType::Rank {
        return Err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if s.withscores && s.rtype == RType::Lex {
        return Err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let (mut mi, mut ma) = (first + 1, first + 2);
    if s.rev && s.rtype != RType::Rank {
        std::mem::swap(&mut mi, &mut ma);
    }
    match s.rtype {
        RType::Rank | RType::Auto => match (arg_i64(argv[mi]), arg_i64(argv[ma])) {
            (Some(a), Some(b)) => (s.start, s.end) = (a, b),
            _ => return Err(errors::NOT_INT),
        },
        RType::Score => match ScoreRange::parse(argv[mi], argv[ma]) {
            Some(r) => s.score = Some(r),
            None => return Err(ERR_MINMAX_FLOAT),
        },
        RType::Lex => match LexRange::parse(argv[mi], argv[ma]) {
            Some(r) => s.lex = Some(r),
            None => return Err(ERR_MINMAX_LEX),
        },
    }
    Ok(s)
}

/// The ascending rank interval lo..=hi a range request selects, walked
/// descending when `rev`; None when empty.
fn range_ranks(z: &ZSetValue, s: &RangeSpec) -> Option<(usize, usize)> {
    let len = z.len();
    if s.rtype == RType::Rank || s.rtype == RType::Auto {
        let (a, b) = clamp_ranks(s.start, s.end, len)?;
        return Some(if s.rev {
            (len - 1 - b, len - 1 - a)
        } else {
            (a, b)
        });
    }
    let (mut lo, mut hi) = match (&s.score, &s.lex) {
        (Some(r), _) => r.ranks(z),
        (_, Some(r)) => r.ranks(z),
        _ => (0, 0),
    };
    if s.offset < 0 {
        return None;
    }
    let off = usize::try_from(s.offset).unwrap_or(usize::MAX);
    if !s.rev {
        lo = lo.saturating_add(off);
        if s.limit >= 0 {
            hi = hi.min(lo.saturating_add(s.limit as usize));
        }
    } else {
        hi = hi.saturating_sub(off);
        if s.limit >= 0 {
            lo = lo.max(hi.saturating_sub(s.limit as usize));
        }
    }
    (lo < hi).then(|| (lo, hi - 1))
}

/// The elements a range request selects, in reply order.
fn range_elems(z: &ZSetValue, s: &RangeSpec) -> Elems {
    match range_ranks(z, s) {
        Some((lo, hi)) => z.range(lo, hi, s.rev),
        None => Vec::new(),
    }
}

fn zrange_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], rtype: RType, rev: Option<bool>) {
    let s = match parse_range(argv, 1, false, rtype, rev) {
        Ok(s) => s,
        Err(e) => return ctx.out.error(e),
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Ok(pos) = lookup(db, argv[1], now, Access::Read, out) else {
        return;
    };
    let Some(p) = pos else {
        return out.array_len(0);
    };
    let z = db.zset(p);
    match range_ranks(z, &s) {
        Some((lo, hi)) => {
            elems_header(out, hi - lo + 1, s.withscores);
            z.walk(lo, hi, s.rev, |m, sc| elem(out, m, sc, s.withscores));
        }
        None => out.array_len(0),
    }
}

/// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
pub fn zrange(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, RType::Auto, None);
}

/// ZREVRANGE key start stop [WITHSCORES]
pub fn zrevrange(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, RType::Rank, Some(true));
}

/// ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]
pub fn zrangebyscore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, RType::Score, Some(false));
}

/// ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]
pub fn zrevrangebyscore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, RType::Score, Some(true));
}

/// ZRANGEBYLEX key min max [LIMIT offset count]
pub fn zrangebylex(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, RType::Lex, Some(false));
}

/// ZREVRANGEBYLEX key max min [LIMIT offset count]
pub fn zrevrangebylex(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, RType::Lex, Some(true));
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count] (keys on this shard)
pub fn zrangestore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let s = match parse_range(argv, 2, true, RType::Auto, None) {
        Ok(s) => s,
        Err(e) => return ctx.out.error(e),
    };
    let lim = limits(ctx);
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Ok(pos) = lookup(db, argv[2], now, Access::Read, out) else {
        return;
    };
    let mut elems = pos.map_or_else(Vec::new, |p| range_elems(db.zset(p), &s));
    sort_elems(&mut elems);
    let n = store_sorted(db, argv[1], &elems, lim, now);
    out.int(n as i64);
}

/// ZRANGESTORE across shards.
pub fn zrangestore_multi(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let argv: Vec<&[u8]> = ctx.argv.iter().map(|a| &a[..]).collect();
        let s = match parse_range(&argv, 2, true, RType::Auto, None) {
            Ok(s) => s,
            Err(e) => {
                out.error(e);
                return out;
            }
        };
        let src = ctx.argv[2].clone();
        let (db, now) = (ctx.db, ctx.now_ms);
        let got = ctx
            .core
            .run_on(shard_of_key(&src, ctx.core.nshards), move |core| {
                let mut sh = core.shard.borrow_mut();
                let d = &mut sh.dbs[db];
                match d.find_kind(&src, now, Access::Read, Kind::ZSet) {
                    Ok(p) => Ok(p.map_or_else(Vec::new, |p| range_elems(d.zset(p), &s))),
                    Err(_) => Err(()),
                }
            })
            .await;
        let mut elems = match got {
            Some(Ok(e)) => e,
            _ => {
                out.error(errors::WRONGTYPE);
                return out;
            }
        };
        sort_elems(&mut elems);
        let n = store_on(&ctx.core, db, ctx.argv[1].clone(), elems, now).await;
        out.int(n as i64);
        out
    })
}

/// Stores sorted elements at `dst` on its shard; returns the stored count.
async fn store_on(core: &Rc<Core>, db: usize, dst: Bytes, elems: Elems, now: u64) -> usize {
    core.run_on(shard_of_key(&dst, core.nshards), move |core| {
        let mut sh = core.shard.borrow_mut();
        let lim = ZLimits::from(&sh.limits);
        store_sorted(&mut sh.dbs[db], &dst, &elems, lim, now)
    })
    .await
    .unwrap_or(0)
}

// ------------------------------------------------------------------ pops

/// Writes popped elements: flat pairs, or nested pairs when `nested`.
fn reply_popped(out: &mut ReplyBuf, v: &[(Vec<u8>, f64)], nested: bool) {
    if nested {
        out.array_len(v.len());
    } else {
        out.array_len(v.len() * 2);
    }
    for (m, s) in v {
        if nested {
            out.array_len(2);
        }
        out.bulk(m);
        out.double(*s);
    }
}

fn pop(z: &mut ZSetValue, max: bool, count: usize) -> Elems {
    if max {
        z.pop_max(count)
    } else {
        z.pop_min(count)
    }
}

fn zpop_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], max: bool) {
    if argv.len() > 3 {
        return ctx.out.error(errors::SYNTAX);
    }
    let mut count: i64 = -1;
    if argv.len() == 3 {
        match arg_i64(argv[2]) {
            Some(c) if c >= 0 => count = c,
            _ => return ctx.out.error(ERR_POSITIVE),
        }
    }
    let nested = ctx.out.resp3() && count != -1;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Ok(pos) = lookup(db, argv[1], now, Access::Write, out) else {
        return;
    };
    let Some(p) = pos else {
        return out.array_len(0);
    };
    if count == 0 {
        return out.array_len(0);
    }
    let v = pop(db.zset_mut(p), max, count.max(1) as usize);
    db.delete_if_empty(p);
    reply_popped(out, &v, nested);
}

/// ZPOPMIN key [count]
pub fn zpopmin(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zpop_generic(ctx, argv, false);
}

/// ZPOPMAX key [count]
pub fn zpopmax(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    zpop_generic(ctx, argv, true);
}

/// Parsed ZMPOP arguments: key range, MAX?, count.
fn parse_zmpop(argv: &[&[u8]]) -> Result<(usize, bool, usize), &'static str> {
    const NK: &str = "ERR numkeys should be greater than 0";
    let numkeys = match arg_i64(argv[1]) {
        Some(n) if n >= 1 => n as usize,
        _ => return Err(NK),
    };
    let where_idx = 1 + numkeys + 1;
    if where_idx >= argv.len() {
        return Err(errors::SYNTAX);
    }
    let max = if is(argv[where_idx], "min") {
        false
    } else if is(argv[where_idx], "max") {
        true
    } else {
        return Err(errors::SYNTAX);
    };
    let mut count: i64 = -1;
    let mut j = where_idx + 1;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if count == -1 && is(argv[j], "count") && more > 0 {
            j += 1;
            match arg_i64(argv[j]) {
                Some(c) if c >= 1 => count = c,
                _ => return Err("ERR count should be greater than 0"),
            }
        } else {
            return Err(errors::SYNTAX);
        }
        j += 1;
    }
    Ok((numkeys, max, count.max(1) as usize))
}

/// ZMPOP's reply: [key, [[member, score], ...]].
fn reply_zmpop(out: &mut ReplyBuf, key: &[u8], v: &[(Vec<u8>, f64)]) {
    out.array_len(2);
    out.bulk(key);
    reply_popped(out, v, true);
}

/// What popping from one key of a ZMPOP found.
enum PopOne {
    Missing,
    WrongType,
    Popped(Elems),
}

fn pop_one(db: &mut Db, key: &[u8], now: u64, max: bool, count: usize) -> PopOne {
    match db.find_kind(key, now, Access::Write, Kind::ZSet) {
        Err(_) => PopOne::WrongType,
        Ok(None) => PopOne::Missing,
        Ok(Some(p)) => {
            let v = pop(db.zset_mut(p), max, count);
            db.delete_if_empty(p);
            PopOne::Popped(v)
        }
    }
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count] (keys on this shard)
pub fn zmpop(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let (numkeys, max, count) = match parse_zmpop(argv) {
        Ok(x) => x,
        Err(e) => return ctx.out.error(e),
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    for key in &argv[2..2 + numkeys] {
        match pop_one(db, key, now, max, count) {
            PopOne::Missing => continue,
            PopOne::WrongType => return out.error(errors::WRONGTYPE),
            PopOne::Popped(v) => return reply_zmpop(out, key, &v),
        }
    }
    out.null_array();
}

/// ZMPOP across shards: the keys are tried in order, each on its shard.
pub fn zmpop_multi(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let argv: Vec<&[u8]> = ctx.argv.iter().map(|a| &a[..]).collect();
        let (numkeys, max, count) = match parse_zmpop(&argv) {
            Ok(x) => x,
            Err(e) => {
                out.error(e);
                return out;
            }
        };
        let (db, now) = (ctx.db, ctx.now_ms);
        for key in &ctx.argv[2..2 + numkeys] {
            let k = key.clone();
            let r = ctx
                .core
                .run_on(shard_of_key(key, ctx.core.nshards), move |core| {
                    pop_one(&mut core.shard.borrow_mut().dbs[db], &k, now, max, count)
                })
                .await
                .unwrap_or(PopOne::Missing);
            match r {
                PopOne::Missing => continue,
                PopOne::WrongType => {
                    out.error(errors::WRONGTYPE);
                    return out;
                }
                PopOne::Popped(v) => {
                    reply_zmpop(&mut out, key, &v);
                    return out;
                }
            }
        }
        out.null_array();
        out
    })
}

// ------------------------------------------------------------------ ZRANDMEMBER

/// ZRANDMEMBER key [count [WITHSCORES]]
pub fn zrandmember(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let mut withscores = false;
    let mut count = None;
    if argv.len() >= 3 {
        let l = match arg_i64(argv[2]) {
            None => return ctx.out.error(errors::NOT_INT),
            Some(i64::MIN) => {
                return ctx.out.error(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                )
            }
            Some(l) => l,
        };
        if argv.len() > 4 || (argv.len() == 4 && !is(argv[3], "withscores")) {
            return ctx.out.error(errors::SYNTAX);
        } else if argv.len() == 4 {
            withscores = true;
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
                return ctx.out.error("ERR value is out of range");
            }
        }
        count = Some(l);
    }
    let now = ctx.now_ms;
    let shard = &mut *ctx.shard;
    let (db, mut rand) = shard.db_and_rng(ctx.db);
    let out = &mut *ctx.out;
    let Ok(pos) = lookup(db, argv[1], now, Access::Read, out) else {
        return;
    };
    let Some(count) = count else {
        match pos {
            None => out.null(),
            Some(p) => {
                let z = db.zset(p);
                let r = (rand() % z.len() as u64) as usize;
                let (m, _) = z.at(r).unwrap_or((b"", 0.0));
                out.bulk(m);
            }
        }
        return;
    };
    let Some(p) = pos else {
        return out.array_len(0);
    };
    if count == 0 {
        return out.array_len(0);
    }
    let z = db.zset(p);
    let size = z.len();
    let uniq = count > 0;
    let n = count.unsigned_abs() as usize;
    if !uniq || n == 1 {
        elems_header(out, n, withscores);
        for _ in 0..n {
            let r = (rand() % size as u64) as usize;
            if let Some((m, s)) = z.at(r) {
                elem(out, m, s, withscores);
            }
        }
        return;
    }
    if n >= size {
        // The whole set, highest first (as Redis 7.0 emits it).
        elems_header(out, size, withscores);
        z.walk(0, size - 1, true, |m, s| elem(out, m, s, withscores));
        return;
    }
    // Distinct picks: remove random ranks from the full set when asking for
    // most of it, otherwise draw until enough distinct ranks were seen.
    let mut ranks: Vec<usize>;
    if n * 3 > size {
        ranks = (0..size).collect();
        while ranks.len() > n {
            let i = (rand() % ranks.len() as u64) as usize;
            ranks.swap_remove(i);
        }
    } else {
        let mut seen = std::collections::HashSet::with_capacity(n);
        ranks = Vec::with_capacity(n);
        while ranks.len() < n {
            let r = (rand() % size as u64) as usize;
            if seen.insert(r) {
                ranks.push(r);
            }
        }
    }
    elems_header(out, n, withscores);
    for r in ranks {
        if let Some((m, s)) = z.at(r) {
            elem(out, m, s, withscores);
        }
    }
}

// ------------------------------------------------------------------ ZSCAN

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
pub fn zscan(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let Some(cursor) = parse_cursor(argv[2]) else {
        return ctx.out.error("ERR invalid cursor");
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Ok(pos) = lookup(db, argv[1], now, Access::Read, out) else {
        return;
    };
    let Some(p) = pos else {
        out.array_len(2);
        out.bulk(b"0");
        out.array_len(0);
        return;
    };
    let owned: Vec<Bytes> = argv.iter().map(|a| Bytes::copy_from_slice(a)).collect();
    let opts = match parse_scan_opts(&owned, 3, false) {
        Ok(o) => o,
        Err(e) => return out.error(e),
    };
    let z = db.zset(p);
    let mut found: Vec<(Vec<u8>, f64)> = Vec::new();
    let next = z.scan(cursor, opts.count, |m, s| found.push((m.to_vec(), s)));
    let pat = opts.pattern.as_deref().filter(|p| *p != b"*");
    if let Some(pat) = pat {
        found.retain(|(m, _)| glob::string_match(pat, m, false));
    }
    out.array_len(2);
    out.bulk_i64(next as i64);
    out.array_len(found.len() * 2);
    let mut buf = [0u8; 64];
    for (m, s) in &found {
        out.bulk(m);
        out.bulk(num::d2string(*s, &mut buf));
    }
}

// ------------------------------------------------------------------ set algebra

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Aggr {
    Sum,
    Min,
    Max,
}

/// A parsed ZUNION/ZINTER/ZDIFF[STORE]/ZINTERCARD request.
#[derive(Debug)]
struct AlgebraSpec {
    /// Index of the first input key and the number of inputs.
    first: usize,
    setnum: usize,
    /// An option error, reported after the inputs' type checks (as Redis).
    opt_err: Option<&'static str>,
    weights: Vec<f64>,
    aggr: Aggr,
    withscores: bool,
    limit: usize,
}

/// Parses up to the keys; option errors are kept for after the type checks.
fn parse_algebra(
    argv: &[&[u8]],
    numkeys_idx: usize,
    op: SetOp,
    store: bool,
    card_only: bool,
    name: &str,
) -> Result<AlgebraSpec, String> {
    let setnum = arg_i64(argv[numkeys_idx]).ok_or(errors::NOT_INT)?;
    if setnum < 1 {
        return Err(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        ));
    }
    if setnum > (argv.len() - (numkeys_idx + 1)) as i64 {
        return Err(errors::SYNTAX.into());
    }
    let setnum = setnum as usize;
    let mut s = AlgebraSpec {
        first: numkeys_idx + 1,
        setnum,
        opt_err: None,
        weights: vec![1.0; setnum],
        aggr: Aggr::Sum,
        withscores: false,
        limit: 0,
    };
    let mut j = numkeys_idx + 1 + setnum;
    let res: Result<(), &'static str> = (|| {
        while j < argv.len() {
            let remaining = argv.len() - j;
            let a = argv[j];
            if op != SetOp::Diff && !card_only && remaining > setnum && is(a, "weights") {
                j += 1;
                for i in 0..setnum {
                    s.weights[i] =
                        num::parse_f64(argv[j]).ok_or("ERR weight value is not a float")?;
                    j += 1;
                }
            } else if op != SetOp::Diff && !card_only && remaining >= 2 && is(a, "aggregate") {
                let v = argv[j + 1];
                s.aggr = if is(v, "sum") {
                    Aggr::Sum
                } else if is(v, "min") {
                    Aggr::Min
                } else if is(v, "max") {
                    Aggr::Max
                } else {
                    return Err(errors::SYNTAX);
                };
                j += 2;
            } else if !store && !card_only && is(a, "withscores") {
                s.withscores = true;
                j += 1;
            } else if card_only && remaining >= 2 && is(a, "limit") {
                match arg_i64(argv[j + 1]) {
                    Some(l) if l >= 0 => s.limit = l as usize,
                    _ => return Err("ERR LIMIT can't be negative"),
                }
                j += 2;
            } else {
                return Err(errors::SYNTAX);
            }
        }
        Ok(())
    })();
    s.opt_err = res.err();
    Ok(s)
}

/// One input of the set algebra: its elements (in their own order) or nothing.
type Input = Option<Elems>;

/// Copies an input: a sorted set, or a set with every score 1; Err for another type.
fn read_input(db: &mut Db, key: &[u8], now: u64, access: Access) -> Result<Input, ()> {
    let Some(p) = db.find(key, now, access) else {
        return Ok(None);
    };
    match db.kind(p) {
        Kind::ZSet => {
            let z = db.zset(p);
            let mut v = Vec::with_capacity(z.len());
            z.for_each(|m, s| v.push((m.to_vec(), s)));
            Ok(Some(v))
        }
        Kind::Set => Ok(Some(
            set_members(db.set(p))
                .into_iter()
                .map(|m| (m, 1.0))
                .collect(),
        )),
        _ => Err(()),
    }
}

/// The members of a set input. On this branch the set type is still a
/// placeholder (always empty); once the set family is merged this body
/// becomes `s.members()` (checked against redis-server with the `set` branch
/// merged: the `sets_as_inputs` test then runs and passes).
fn set_members(_s: &crate::storage::set::SetValue) -> Vec<Vec<u8>> {
    Vec::new()
}

fn aggregate(target: &mut f64, val: f64, aggr: Aggr) {
    match aggr {
        Aggr::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggr::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggr::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// Computes the result as zunionInterDiffGenericCommand does; returns the
/// sorted elements and, for ZINTERCARD, the count.
fn compute_algebra(
    op: SetOp,
    spec: &AlgebraSpec,
    inputs: Vec<Input>,
    card_only: bool,
) -> (Elems, usize) {
    let mut src: Vec<(Elems, f64)> = inputs
        .into_iter()
        .zip(spec.weights.iter().copied())
        .map(|(e, w)| (e.unwrap_or_default(), w))
        .collect();
    if op != SetOp::Diff {
        // Smallest first, as Redis's qsort (glibc's is a stable merge sort here).
        src.sort_by_key(|(e, _)| e.len());
    }
    let mut result: Elems = Vec::new();
    match op {
        SetOp::Union => {
            let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
            for (elems, w) in src {
                for (m, s) in elems {
                    let mut score = w * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(&m) {
                        Some(t) => aggregate(t, score, spec.aggr),
                        None => {
                            acc.insert(m, score);
                        }
                    }
                }
            }
            result = acc.into_iter().collect();
        }
        SetOp::Inter => {
            let mut it = src.into_iter();
            let Some((first, w0)) = it.next() else {
                return (result, 0);
            };
            let others: Vec<(HashMap<Vec<u8>, f64>, f64)> =
                it.map(|(e, w)| (e.into_iter().collect(), w)).collect();
            let mut card = 0;
            'outer: for (m, s) in first {
                let mut score = w0 * s;
                if score.is_nan() {
                    score = 0.0;
                }
                for (map, w) in &others {
                    match map.get(&m) {
                        Some(v) => aggregate(&mut score, v * w, spec.aggr),
                        None => continue 'outer,
                    }
                }
                if card_only {
                    card += 1;
                    if spec.limit > 0 && card >= spec.limit {
                        break;
                    }
                } else {
                    result.push((m, score));
                }
            }
            if card_only {
                return (result, card);
            }
        }
        SetOp::Diff => {
            let mut it = src.into_iter();
            let Some((first, _)) = it.next() else {
                return (result, 0);
            };
            let others: Vec<std::collections::HashSet<Vec<u8>>> = it
                .map(|(e, _)| e.into_iter().map(|(m, _)| m).collect())
                .collect();
            result = first
                .into_iter()
                .filter(|(m, _)| !others.iter().any(|o| o.contains(m)))
                .collect();
        }
    }
    sort_elems(&mut result);
    let n = result.len();
    (result, n)
}

/// Which command of the family, and where its numkeys argument is.
#[derive(Clone, Copy)]
struct AlgebraCmd {
    op: SetOp,
    numkeys_idx: usize,
    store: bool,
    card_only: bool,
    name: &'static str,
}

const ZUNION: AlgebraCmd = AlgebraCmd {
    op: SetOp::Union,
    numkeys_idx: 1,
    store: false,
    card_only: false,
    name: "zunion",
};
const ZINTER: AlgebraCmd = AlgebraCmd {
    op: SetOp::Inter,
    numkeys_idx: 1,
    store: false,
    card_only: false,
    name: "zinter",
};
const ZDIFF: AlgebraCmd = AlgebraCmd {
    op: SetOp::Diff,
    numkeys_idx: 1,
    store: false,
    card_only: false,
    name: "zdiff",
};
const ZUNIONSTORE: AlgebraCmd = AlgebraCmd {
    op: SetOp::Union,
    numkeys_idx: 2,
    store: true,
    card_only: false,
    name: "zunionstore",
};
const ZINTERSTORE: AlgebraCmd = AlgebraCmd {
    op: SetOp::Inter,
    numkeys_idx: 2,
    store: true,
    card_only: false,
    name: "zinterstore",
};
const ZDIFFSTORE: AlgebraCmd = AlgebraCmd {
    op: SetOp::Diff,
    numkeys_idx: 2,
    store: true,
    card_only: false,
    name: "zdiffstore",
};
const ZINTERCARD: AlgebraCmd = AlgebraCmd {
    op: SetOp::Inter,
    numkeys_idx: 1,
    store: false,
    card_only: true,
    name: "zintercard",
};

/// Replies to a non-store algebra command once the inputs are read.
fn finish_algebra(
    c: AlgebraCmd,
    spec: &AlgebraSpec,
    inputs: Vec<Input>,
    out: &mut ReplyBuf,
) -> Option<Elems> {
    if let Some(e) = spec.opt_err {
        out.error(e);
        return None;
    }
    let (elems, card) = compute_algebra(c.op, spec, inputs, c.card_only);
    if c.card_only {
        out.int(card as i64);
        return None;
    }
    if c.store {
        return Some(elems);
    }
    reply_elems(out, &elems, spec.withscores);
    None
}

fn algebra_local(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], c: AlgebraCmd) {
    let spec = match parse_algebra(argv, c.numkeys_idx, c.op, c.store, c.card_only, c.name) {
        Ok(s) => s,
        Err(e) => return ctx.out.error(&e),
    };
    let lim = limits(ctx);
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let access = if c.store { Access::Write } else { Access::Read };
    let mut inputs = Vec::with_capacity(spec.setnum);
    for key in &argv[spec.first..spec.first + spec.setnum] {
        match read_input(db, key, now, access) {
            Ok(i) => inputs.push(i),
            Err(()) => return out.error(errors::WRONGTYPE),
        }
    }
    if let Some(elems) = finish_algebra(c, &spec, inputs, out) {
        let n = store_sorted(db, argv[1], &elems, lim, now);
        out.int(n as i64);
    }
}

fn algebra_multi(ctx: MultiCtx, c: AlgebraCmd) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let argv: Vec<&[u8]> = ctx.argv.iter().map(|a| &a[..]).collect();
        let spec = match parse_algebra(&argv, c.numkeys_idx, c.op, c.store, c.card_only, c.name) {
            Ok(s) => s,
            Err(e) => {
                out.error(&e);
                return out;
            }
        };
        let keys: Vec<Bytes> = ctx.argv[spec.first..spec.first + spec.setnum].to_vec();
        let access = if c.store { Access::Write } else { Access::Read };
        let Some(inputs) = gather(&ctx.core, ctx.db, ctx.now_ms, keys, access).await else {
            out.error(errors::WRONGTYPE);
            return out;
        };
        if let Some(elems) = finish_algebra(c, &spec, inputs, &mut out) {
            let n = store_on(&ctx.core, ctx.db, ctx.argv[1].clone(), elems, ctx.now_ms).await;
            out.int(n as i64);
        }
        out
    })
}

/// Reads every input from its shard (one hop per shard); None when one has the wrong type.
async fn gather(
    core: &Rc<Core>,
    db: usize,
    now: u64,
    keys: Vec<Bytes>,
    access: Access,
) -> Option<Vec<Input>> {
    let n = core.nshards;
    let mut per: Vec<Vec<(usize, Bytes)>> = vec![Vec::new(); n];
    for (i, k) in keys.iter().enumerate() {
        per[shard_of_key(k, n)].push((i, k.clone()));
    }
    let mut waits = Vec::new();
    for (s, ks) in per.into_iter().enumerate() {
        if ks.is_empty() {
            continue;
        }
        waits.push(core.run_on(s, move |core| {
            let mut sh = core.shard.borrow_mut();
            let d = &mut sh.dbs[db];
            ks.into_iter()
                .map(|(i, k)| (i, read_input(d, &k, now, access)))
                .collect::<Vec<_>>()
        }));
    }
    let mut inputs: Vec<Input> = vec![None; keys.len()];
    for r in futures::future::join_all(waits).await.into_iter().flatten() {
        for (i, v) in r {
            inputs[i] = v.ok()?;
        }
    }
    Some(inputs)
}

/// ZUNION numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
pub fn zunion(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    algebra_local(ctx, argv, ZUNION);
}
/// ZUNION across shards.
pub fn zunion_multi(ctx: MultiCtx) -> Reply {
    algebra_multi(ctx, ZUNION)
}
/// ZINTER numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
pub fn zinter(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    algebra_local(ctx, argv, ZINTER);
}
/// ZINTER across shards.
pub fn zinter_multi(ctx: MultiCtx) -> Reply {
    algebra_multi(ctx, ZINTER)
}
/// ZDIFF numkeys key [key ...] [WITHSCORES]
pub fn zdiff(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    algebra_local(ctx, argv, ZDIFF);
}
/// ZDIFF across shards.
pub fn zdiff_multi(ctx: MultiCtx) -> Reply {
    algebra_multi(ctx, ZDIFF)
}
/// ZUNIONSTORE dst numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]
pub fn zunionstore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    algebra_local(ctx, argv, ZUNIONSTORE);
}
/// ZUNIONSTORE across shards.
pub fn zunionstore_multi(ctx: MultiCtx) -> Reply {
    algebra_multi(ctx, ZUNIONSTORE)
}
/// ZINTERSTORE dst numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]
pub fn zinterstore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    algebra_local(ctx, argv, ZINTERSTORE);
}
/// ZINTERSTORE across shards.
pub fn zinterstore_multi(ctx: MultiCtx) -> Reply {
    algebra_multi(ctx, ZINTERSTORE)
}
/// ZDIFFSTORE dst numkeys key [key ...]
pub fn zdiffstore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    algebra_local(ctx, argv, ZDIFFSTORE);
}
/// ZDIFFSTORE across shards.
pub fn zdiffstore_multi(ctx: MultiCtx) -> Reply {
    algebra_multi(ctx, ZDIFFSTORE)
}
/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn zintercard(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    algebra_local(ctx, argv, ZINTERCARD);
}
/// ZINTERCARD across shards.
pub fn zintercard_multi(ctx: MultiCtx) -> Reply {
    algebra_multi(ctx, ZINTERCARD)
}
