//! The hash command family: HSET, HGET, HGETALL, HINCRBY, HRANDFIELD, HSCAN and the rest.
//!
//! Each handler follows its Redis 7.0 counterpart in t_hash.c step by step: the order of
//! argument checks, key lookup and type check decides which error a client sees first.

use super::keys::parse_cursor;
use super::{arg_i64, errors, is, ShardCtx};
use crate::protocol::reply::ReplyBuf;
use crate::storage::db::{Access, Db};
use crate::storage::hash::{HashLimits, HashValue};
use crate::storage::table::Pos;
use crate::storage::value::{Kind, Object};
use crate::util::glob::string_match;
use crate::util::num::LongDouble;

/// Looks `key` up as a hash: Ok(None) when missing, Err(()) after replying WRONGTYPE.
fn lookup(
    db: &mut Db,
    key: &[u8],
    now: u64,
    access: Access,
    out: &mut ReplyBuf,
) -> Result<Option<Pos>, ()> {
    match db.find_kind(key, now, access, Kind::Hash) {
        Ok(p) => Ok(p),
        Err(_) => {
            out.error(errors::WRONGTYPE);
            Err(())
        }
    }
}

/// hashTypeLookupWriteOrCreate: the hash at `key`, created empty when missing.
fn lookup_write_or_create(
    db: &mut Db,
    key: &[u8],
    now: u64,
    out: &mut ReplyBuf,
) -> Result<Pos, ()> {
    match lookup(db, key, now, Access::Write, out)? {
        Some(p) => Ok(p),
        None => Ok(db.create_object(key, Object::Hash(HashValue::new()), now)),
    }
}

/// HSET key field value [field value ...]
pub fn hset(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    hset_generic(ctx, argv, "hset");
}

/// HMSET key field value [field value ...]
pub fn hmset(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    hset_generic(ctx, argv, "hmset");
}

fn hset_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], name: &str) {
    if argv.len() % 2 == 1 {
        return ctx.out.error(&format!(
            "ERR wrong number of arguments for '{name}' command"
        ));
    }
    let now = ctx.now_ms;
    let limits = HashLimits::of(&ctx.shard.limits);
    let (db, out) = ctx.db_out();
    let Ok(p) = lookup_write_or_create(db, argv[1], now, out) else {
        return;
    };
    let h = db.hash_mut(p);
    h.try_conversion(&argv[2..], limits);
    let mut created = 0;
    for pair in argv[2..].chunks_exact(2) {
        created += h.set(pair[0], pair[1], limits) as i64;
    }
    if name == "hset" {
        out.int(created);
    } else {
        out.ok();
    }
}

/// HSETNX key field value
pub fn hsetnx(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let limits = HashLimits::of(&ctx.shard.limits);
    let (db, out) = ctx.db_out();
    let Ok(p) = lookup_write_or_create(db, argv[1], now, out) else {
        return;
    };
    let h = db.hash_mut(p);
    if h.contains(argv[2]) {
        return out.int(0);
    }
    h.try_conversion(&argv[2..4], limits);
    h.set(argv[2], argv[3], limits);
    out.int(1);
}

/// HGET key field
pub fn hget(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match lookup(db, argv[1], now, Access::Read, out) {
        Ok(Some(p)) => out.bulk_opt(db.hash(p).get(argv[2])),
        Ok(None) => out.null(),
        Err(()) => {}
    }
}

/// HMGET key field [field ...]
pub fn hmget(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Ok(p) = lookup(db, argv[1], now, Access::Read, out) else {
        return;
    };
    let h = p.map(|p| db.hash(p));
    out.array_len(argv.len() - 2);
    for f in &argv[2..] {
        out.bulk_opt(h.and_then(|h| h.get(f)));
    }
}

/// HDEL key field [field ...]
pub fn hdel(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let p = match lookup(db, argv[1], now, Access::Write, out) {
        Ok(Some(p)) => p,
        Ok(None) => return out.int(0),
        Err(()) => return,
    };
    let h = db.hash_mut(p);
    let mut deleted = 0;
    for f in &argv[2..] {
        if h.remove(f) {
            deleted += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    db.delete_if_empty(p);
    out.int(deleted);
}

/// HLEN key
pub fn hlen(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match lookup(db, argv[1], now, Access::Read, out) {
        Ok(Some(p)) => out.int(db.hash(p).len() as i64),
        Ok(None) => out.int(0),
        Err(()) => {}
    }
}

/// HSTRLEN key field
pub fn hstrlen(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match lookup(db, argv[1], now, Access::Read, out) {
        Ok(Some(p)) => out.int(db.hash(p).get(argv[2]).map_or(0, |v| v.len() as i64)),
        Ok(None) => out.int(0),
        Err(()) => {}
    }
}

/// HEXISTS key field
pub fn hexists(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match lookup(db, argv[1], now, Access::Read, out) {
        Ok(Some(p)) => out.int(db.hash(p).contains(argv[2]) as i64),
        Ok(None) => out.int(0),
        Err(()) => {}
    }
}

/// What genericHgetallCommand replies with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Keys,
    Vals,
    Both,
}

fn getall_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], what: Part) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let p = match lookup(db, argv[1], now, Access::Read, out) {
        Ok(Some(p)) => p,
        Ok(None) => {
            // shared.emptymap for HGETALL, shared.emptyarray for HKEYS/HVALS.
            return if what == Part::Both {
                out.map_len(0)
            } else {
                out.array_len(0)
            };
        }
        Err(()) => return,
    };
    let h = db.hash(p);
    match what {
        Part::Both => out.map_len(h.len()),
        _ => out.array_len(h.len()),
    }
    h.for_each(|f, v| match what {
        Part::Keys => out.bulk(f),
        Part::Vals => out.bulk(v),
        Part::Both => {
            out.bulk(f);
            out.bulk(v);
        }
    });
}

/// HGETALL key (a map in RESP3)
pub fn hgetall(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    getall_generic(ctx, argv, Part::Both);
}

/// HKEYS key
pub fn hkeys(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    getall_generic(ctx, argv, Part::Keys);
}

/// HVALS key
pub fn hvals(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    getall_generic(ctx, argv, Part::Vals);
}

/// HINCRBY key field increment
pub fn hincrby(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let Some(incr) = arg_i64(argv[3]) else {
        return ctx.out.error(errors::NOT_INT);
    };
    let now = ctx.now_ms;
    let limits = HashLimits::of(&ctx.shard.limits);
    let (db, out) = ctx.db_out();
    let Ok(p) = lookup_write_or_create(db, argv[1], now, out) else {
        return;
    };
    let h = db.hash_mut(p);
    let old = match h.get(argv[2]) {
        None => 0,
        Some(v) => match arg_i64(v) {
            Some(v) => v,
            None => return out.error("ERR hash value is not an integer"),
        },
    };
    let Some(new) = old.checked_add(incr) else {
        return out.error(errors::OVERFLOW);
    };
    let mut buf = [0u8; 24];
    h.set(argv[2], crate::util::num::format_i64(new, &mut buf), limits);
    out.int(new);
}

/// HINCRBYFLOAT key field increment (long double arithmetic, as Redis)
pub fn hincrbyfloat(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let Some(incr) = LongDouble::parse(argv[3]) else {
        return ctx.out.error(errors::NOT_FLOAT);
    };
    if !incr.is_finite() {
        return ctx.out.error("ERR value is NaN or Infinity");
    }
    let now = ctx.now_ms;
    let limits = HashLimits::of(&ctx.shard.limits);
    let (db, out) = ctx.db_out();
    let Ok(p) = lookup_write_or_create(db, argv[1], now, out) else {
        return;
    };
    let h = db.hash_mut(p);
    let old = match h.get(argv[2]) {
        None => LongDouble::ZERO,
        Some(v) => match LongDouble::parse(v) {
            Some(v) => v,
            None => return out.error("ERR hash value is not a float"),
        },
    };
    let sum = old + incr;
    if !sum.is_finite() {
        out.error("ERR increment would produce NaN or Infinity");
        // Only a key this command created can be empty here.
        db.delete_if_empty(p);
        return;
    }
    let mut v = Vec::with_capacity(32);
    sum.write_human(&mut v);
    h.set(argv[2], &v, limits);
    out.bulk(&v);
}

/// HRANDFIELD key [count [WITHVALUES]]
pub fn hrandfield(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    if argv.len() >= 3 {
        let Some(l) = arg_i64(argv[2]) else {
            return ctx.out.error(errors::NOT_INT);
        };
        if l == i64::MIN {
            return ctx.out.error(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            );
        }
        if argv.len() > 4 || (argv.len() == 4 && !is(argv[3], "withvalues")) {
            return ctx.out.error(errors::SYNTAX);
        }
        let withvalues = argv.len() == 4;
        if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
            return ctx.out.error("ERR value is out of range");
        }
        return hrandfield_count(ctx, argv[1], l, withvalues);
    }
    let now = ctx.now_ms;
    let (db, mut rand) = ctx.shard.db_and_rng(ctx.db);
    let out = &mut *ctx.out;
    match lookup(db, argv[1], now, Access::Read, out) {
        Ok(Some(p)) => match db.hash(p).random_pair(&mut rand) {
            Some((f, _)) => out.bulk(f),
            None => out.null(),
        },
        Ok(None) => out.null(),
        Err(()) => {}
    }
}

/// Replies one HRANDFIELD element: a field, or a field and value (a pair array in RESP3).
fn reply_pick(out: &mut ReplyBuf, withvalues: bool, f: &[u8], v: &[u8]) {
    if withvalues && out.resp3() {
        out.array_len(2);
    }
    out.bulk(f);
    if withvalues {
        out.bulk(v);
    }
}

/// The reply header for `n` HRANDFIELD elements.
fn picks_header(out: &mut ReplyBuf, withvalues: bool, n: usize) {
    if withvalues && !out.resp3() {
        out.array_len(n.saturating_mul(2));
    } else {
        out.array_len(n);
    }
}

/// hrandfieldWithCountCommand.
fn hrandfield_count(ctx: &mut ShardCtx<'_>, key: &[u8], l: i64, withvalues: bool) {
    let now = ctx.now_ms;
    let (db, mut rand) = ctx.shard.db_and_rng(ctx.db);
    let out = &mut *ctx.out;
    let p = match lookup(db, key, now, Access::Read, out) {
        Ok(Some(p)) => p,
        Ok(None) => return out.array_len(0),
        Err(()) => return,
    };
    let h = db.hash(p);
    let size = h.len();
    let (count, uniq) = (l.unsigned_abs(), l >= 0);
    // An empty hash is never stored, but a division by its size must not be reachable.
    if count == 0 || size == 0 {
        return out.array_len(0);
    }
    // CASE 1: repeats allowed (or a single pick): independent random picks.
    if !uniq || count == 1 {
        let n = usize::try_from(count).unwrap_or(usize::MAX);
        picks_header(out, withvalues, n);
        match h {
            HashValue::Listpack(_) => {
                let pairs = h.pairs();
                for _ in 0..n {
                    let (f, v) = pairs[(rand() % pairs.len() as u64) as usize];
                    reply_pick(out, withvalues, f, v);
                }
            }
            HashValue::Table(_) => {
                for _ in 0..n {
                    if let Some((f, v)) = h.random_pair(&mut rand) {
                        reply_pick(out, withvalues, f, v);
                    }
                }
            }
        }
        return;
    }
    // CASE 2: at least the whole hash: all of it, in iteration order.
    if count >= size as u64 {
        picks_header(out, withvalues, size);
        h.for_each(|f, v| reply_pick(out, withvalues, f, v));
        return;
    }
    // CASES 2.5-4: distinct random fields.
    let picks = h.random_distinct(count as usize, &mut rand);
    picks_header(out, withvalues, picks.len());
    for (f, v) in picks {
        reply_pick(out, withvalues, f, v);
    }
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
pub fn hscan(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let Some(cursor) = parse_cursor(argv[2]) else {
        return ctx.out.error("ERR invalid cursor");
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let p = match lookup(db, argv[1], now, Access::Read, out) {
        Ok(Some(p)) => p,
        Ok(None) => {
            // shared.emptyscan
            out.array_len(2);
            out.bulk(b"0");
            return out.array_len(0);
        }
        Err(()) => return,
    };
    // Options as scanGenericCommand parses them for a key's collection (no TYPE).
    let mut count = 10usize;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        if is(argv[i], "count") && more >= 1 {
            match arg_i64(argv[i + 1]) {
                Some(c) if c >= 1 => count = usize::try_from(c).unwrap_or(usize::MAX),
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
    let h = db.hash(p);
    let mut found: Vec<u8> = Vec::new();
    let mut n = 0usize;
    // Filtered after the walk, as Redis: a pattern can make a step return nothing.
    let next = h.scan(cursor, count, |f, v| {
        if pattern.is_none_or(|pat| string_match(pat, f, false)) {
            push_bulk(&mut found, f);
            push_bulk(&mut found, v);
            n += 2;
        }
    });
    out.array_len(2);
    out.bulk(next.to_string().as_bytes());
    out.array_len(n);
    out.raw(&found);
}

/// Appends a RESP bulk string to `buf`.
fn push_bulk(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'$');
    crate::util::num::push_i64(buf, s.len() as i64);
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(s);
    buf.extend_from_slice(b"\r\n");
}
