//! Keyspace commands: DEL, EXISTS, TYPE, TTLs, RENAME, COPY, MOVE, DUMP, RESTORE, KEYS, SCAN, RANDOMKEY, OBJECT, DBSIZE, FLUSH*, SWAPDB.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::{arg_i64, arg_int, errors, is, MultiCtx, ShardCtx};
use crate::protocol::reply::ReplyBuf;
use crate::server::exec::shard_of_key;
use crate::server::tx::{Mode, Tx};
use crate::storage::db::Access;
use crate::storage::value::Payload;
use crate::util::glob::string_match;

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// Deletes keys on this shard; returns how many existed.
fn del_keys<K: AsRef<[u8]>>(ctx_db: &mut crate::storage::db::Db, keys: &[K], now: u64) -> i64 {
    keys.iter()
        .filter(|k| ctx_db.delete(k.as_ref(), now))
        .count() as i64
}

/// DEL key [key ...] and UNLINK (keys on this shard)
pub fn del(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let n = del_keys(db, &argv[1..], now);
    out.int(n);
}

/// EXISTS key [key ...] (keys on this shard)
pub fn exists(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let n = argv[1..]
        .iter()
        .filter(|k| db.find(k, now, Access::NoTouch).is_some())
        .count();
    out.int(n as i64);
}

/// TOUCH key [key ...] (keys on this shard)
pub fn touch(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let n = argv[1..]
        .iter()
        .filter(|k| db.find(k, now, Access::Read).is_some())
        .count();
    out.int(n as i64);
}

/// Which per-key counting command a coordinator runs on every shard.
#[derive(Clone, Copy)]
enum CountOp {
    Del,
    Exists,
    Touch,
}

/// DEL/UNLINK/EXISTS/TOUCH over keys on several shards: one hop per shard, counts summed.
fn count_multi(ctx: MultiCtx, op: CountOp) -> Reply {
    Box::pin(async move {
        let n = ctx.core.nshards;
        let mut per: Vec<Vec<Bytes>> = vec![Vec::new(); n];
        for k in &ctx.argv[1..] {
            per[shard_of_key(k, n)].push(k.clone());
        }
        let db = ctx.db;
        let now = ctx.now_ms;
        let mode = match op {
            CountOp::Del => Mode::Exclusive,
            CountOp::Exists | CountOp::Touch => Mode::Shared,
        };
        let mut tx = Tx::new(&ctx);
        tx.keys(&ctx.argv[1..], mode);
        tx.schedule_single_hop().await;
        let items = per.into_iter().enumerate().filter(|(_, k)| !k.is_empty());
        let res = tx
            .run_each_last(items.collect(), move |_, core, keys| {
                let mut shard = core.shard.borrow_mut();
                let d = &mut shard.dbs[db];
                match op {
                    CountOp::Del => del_keys(d, &keys, now),
                    CountOp::Exists => keys
                        .iter()
                        .filter(|k| d.find(k, now, Access::NoTouch).is_some())
                        .count() as i64,
                    CountOp::Touch => keys
                        .iter()
                        .filter(|k| d.find(k, now, Access::Read).is_some())
                        .count() as i64,
                }
            })
            .await;
        let total: i64 = res.into_iter().map(|(_, n)| n).sum();
        let mut out = ctx.reply();
        out.int(total);
        out
    })
}

/// DEL/UNLINK across shards.
pub fn del_multi(ctx: MultiCtx) -> Reply {
    count_multi(ctx, CountOp::Del)
}

/// EXISTS across shards.
pub fn exists_multi(ctx: MultiCtx) -> Reply {
    count_multi(ctx, CountOp::Exists)
}

/// TOUCH across shards.
pub fn touch_multi(ctx: MultiCtx) -> Reply {
    count_multi(ctx, CountOp::Touch)
}

/// TYPE key
pub fn type_(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.find(argv[1], now, Access::NoTouch) {
        None => out.simple("none"),
        Some(p) => out.simple(db.kind(p).name()),
    }
}

/// How an EXPIRE-family command reads its time argument.
#[derive(Clone, Copy)]
struct ExpireKind {
    seconds: bool,
    absolute: bool,
    name: &'static str,
}

fn expire_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], k: ExpireKind) {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &argv[3..] {
        if is(a, "nx") {
            nx = true;
        } else if is(a, "xx") {
            xx = true;
        } else if is(a, "gt") {
            gt = true;
        } else if is(a, "lt") {
            lt = true;
        } else {
            // Echoed as sent, up to a NUL as C's %s would.
            let text = a.split(|&b| b == 0).next().unwrap_or_default();
            return ctx
                .out
                .error_bytes(&[&b"ERR Unsupported option "[..], text].concat());
        }
    }
    if nx && (xx || gt || lt) {
        return ctx
            .out
            .error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return ctx
            .out
            .error("ERR GT and LT options at the same time are not compatible");
    }
    let Some(mut when) = arg_i64(argv[2]) else {
        return ctx.out.error(errors::NOT_INT);
    };
    if k.seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return ctx.out.error(&errors::invalid_expire(k.name));
        }
        when *= 1000;
    }
    let base = if k.absolute { 0 } else { ctx.now_ms as i64 };
    if when > i64::MAX - base {
        return ctx.out.error(&errors::invalid_expire(k.name));
    }
    when += base;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(p) = db.find(argv[1], now, Access::Write) else {
        return out.int(0);
    };
    let current = db.expire_at(p).map(|c| c as i64);
    if (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c))
    {
        return out.int(0);
    }
    if when <= now as i64 {
        db.remove_at(p);
    } else {
        db.set_expire_at(p, Some(when as u64));
    }
    out.int(1);
}

/// EXPIRE key seconds [NX|XX|GT|LT]
pub fn expire(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let k = ExpireKind {
        seconds: true,
        absolute: false,
        name: "expire",
    };
    expire_generic(ctx, argv, k);
}

/// PEXPIRE key milliseconds [NX|XX|GT|LT]
pub fn pexpire(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let k = ExpireKind {
        seconds: false,
        absolute: false,
        name: "pexpire",
    };
    expire_generic(ctx, argv, k);
}

/// EXPIREAT key unix-time-seconds [NX|XX|GT|LT]
pub fn expireat(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let k = ExpireKind {
        seconds: true,
        absolute: true,
        name: "expireat",
    };
    expire_generic(ctx, argv, k);
}

/// PEXPIREAT key unix-time-milliseconds [NX|XX|GT|LT]
pub fn pexpireat(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let k = ExpireKind {
        seconds: false,
        absolute: true,
        name: "pexpireat",
    };
    expire_generic(ctx, argv, k);
}

/// TTL/PTTL/EXPIRETIME/PEXPIRETIME.
fn ttl_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], ms: bool, absolute: bool) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(p) = db.find(argv[1], now, Access::NoTouch) else {
        return out.int(-2);
    };
    let Some(at) = db.expire_at(p) else {
        return out.int(-1);
    };
    let t = if absolute {
        at as i64
    } else {
        (at as i64 - now as i64).max(0)
    };
    // Seconds are rounded to the nearest, for EXPIRETIME too (as ttlGenericCommand).
    let v = if ms {
        t
    } else {
        ((t as i128 + 500) / 1000) as i64
    };
    out.int(v);
}

/// TTL key
pub fn ttl(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    ttl_generic(ctx, argv, false, false)
}

/// PTTL key
pub fn pttl(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    ttl_generic(ctx, argv, true, false)
}

/// EXPIRETIME key
pub fn expiretime(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    ttl_generic(ctx, argv, false, true)
}

/// PEXPIRETIME key
pub fn pexpiretime(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    ttl_generic(ctx, argv, true, true)
}

/// PERSIST key
pub fn persist(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.find(argv[1], now, Access::Write) {
        Some(p) if db.expire_at(p).is_some() => {
            db.set_expire_at(p, None);
            out.int(1);
        }
        _ => out.int(0),
    }
}

/// DUMP key: the value in Redis's serialized form (RDB encoding + version + CRC-64).
pub fn dump(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    use crate::persistence::rdb::{dump_payload, ValueRef};
    use crate::storage::value::StrRef;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(p) = db.find(argv[1], now, Access::Read) else {
        return out.null();
    };
    let payload = match db.str_at(p) {
        Some(StrRef::Int(i)) => dump_payload(ValueRef::Int(i)),
        Some(StrRef::Bytes(b)) => dump_payload(ValueRef::Bytes(b)),
        None => match db.object(p) {
            Some(o) => dump_payload(ValueRef::Object(o)),
            None => return out.null(),
        },
    };
    out.bulk(&payload);
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
/// (checks in restoreCommand's order, so that the same bad call gets the same error).
pub fn restore(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    use crate::persistence::rdb::{parse_payload, PayloadError};
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<i64>, Option<i64>) = (None, None);
    let mut j = 4;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        if is(argv[j], "replace") {
            replace = true;
        } else if is(argv[j], "absttl") {
            absttl = true;
        } else if is(argv[j], "idletime") && more >= 1 && freq.is_none() {
            match arg_i64(argv[j + 1]) {
                None => return ctx.out.error(errors::NOT_INT),
                Some(v) if v < 0 => {
                    return ctx.out.error("ERR Invalid IDLETIME value, must be >= 0")
                }
                Some(v) => idle = Some(v),
            }
            j += 1;
        } else if is(argv[j], "freq") && more >= 1 && idle.is_none() {
            match arg_i64(argv[j + 1]) {
                None => return ctx.out.error(errors::NOT_INT),
                Some(v) if !(0..=255).contains(&v) => {
                    return ctx
                        .out
                        .error("ERR Invalid FREQ value, must be >= 0 and <= 255")
                }
                Some(v) => freq = Some(v),
            }
            j += 1;
        } else {
            return ctx.out.error(errors::SYNTAX);
        }
        j += 1;
    }
    // percore keeps no LFU counter: FREQ is checked, as Redis does, and has no effect.
    let _ = freq;
    let now = ctx.now_ms;
    let limits = ctx.shard.limits;
    let (db, out) = ctx.db_out();
    if !replace && db.find(argv[1], now, Access::Write).is_some() {
        return out.error("BUSYKEY Target key name already exists.");
    }
    let ttl = match arg_i64(argv[2]) {
        None => return out.error(errors::NOT_INT),
        Some(t) if t < 0 => return out.error("ERR Invalid TTL value, must be >= 0"),
        Some(t) => t,
    };
    let value = match parse_payload(argv[3]) {
        Err(PayloadError::Footer) => {
            return out.error("ERR DUMP payload version or checksum are wrong")
        }
        Err(PayloadError::Format) => return out.error("ERR Bad data format"),
        Ok(v) => v,
    };
    if crate::persistence::invalid_value(&value, 0).is_some() {
        return out.error("ERR Bad data format");
    }
    if replace {
        db.delete(argv[1], now);
    }
    let at = match (ttl, absttl) {
        (0, _) => None,
        (t, true) => Some(t as u64),
        (t, false) => Some((now as i64).saturating_add(t) as u64),
    };
    // Already expired: nothing is created (a replaced key stays deleted).
    if at.is_some_and(|at| at < now) {
        return out.ok();
    }
    crate::persistence::insert_loaded(db, &limits, argv[1], value, at, now);
    if let (Some(secs), Some(p)) = (idle, db.find(argv[1], now, Access::Silent)) {
        db.set_idle_at(p, secs as u64, now);
    }
    out.ok();
}

/// RENAME/RENAMENX on one shard.
fn rename_generic(ctx: &mut ShardCtx<'_>, argv: &[&[u8]], nx: bool) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(p) = db.find(argv[1], now, Access::Write) else {
        return out.error(errors::NO_SUCH_KEY);
    };
    if argv[1] == argv[2] {
        return if nx { out.int(0) } else { out.ok() };
    }
    if db.find(argv[2], now, Access::Write).is_some() {
        if nx {
            return out.int(0);
        }
        db.delete(argv[2], now);
    }
    let p = db.find(argv[1], now, Access::Silent).unwrap_or(p);
    let (v, exp) = db.take_at(p);
    db.insert_owned(argv[2], v, exp, now);
    if nx {
        out.int(1)
    } else {
        out.ok()
    }
}

/// RENAME key newkey
pub fn rename(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    rename_generic(ctx, argv, false)
}

/// RENAMENX key newkey
pub fn renamenx(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    rename_generic(ctx, argv, true)
}

fn rename_multi_generic(ctx: MultiCtx, nx: bool) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let n = ctx.core.nshards;
        let (src, dst) = (ctx.argv[1].clone(), ctx.argv[2].clone());
        let (ss, ds) = (shard_of_key(&src, n), shard_of_key(&dst, n));
        let db = ctx.db;
        let now = ctx.now_ms;
        let mut tx = Tx::new(&ctx);
        tx.key(&src, Mode::Exclusive).key(&dst, Mode::Exclusive);
        tx.schedule().await;
        // Check the source and (for NX) the destination before moving anything,
        // then take and insert: several hops under the same locks.
        let s2 = src.clone();
        let exists = ctx
            .core
            .run_on(ss, move |core| {
                core.shard.borrow_mut().dbs[db]
                    .find(&s2, now, Access::Write)
                    .is_some()
            })
            .await
            .unwrap_or(false);
        if !exists {
            tx.conclude().await;
            out.error(errors::NO_SUCH_KEY);
            return out;
        }
        if nx {
            let d2 = dst.clone();
            let taken = ctx
                .core
                .run_on(ds, move |core| {
                    core.shard.borrow_mut().dbs[db].contains(&d2, now)
                })
                .await
                .unwrap_or(true);
            if taken {
                tx.conclude().await;
                out.int(0);
                return out;
            }
        }
        let s3 = src.clone();
        let moved = ctx
            .core
            .run_on(ss, move |core| {
                let mut shard = core.shard.borrow_mut();
                let d = &mut shard.dbs[db];
                d.find(&s3, now, Access::Silent).map(|p| d.take_at(p))
            })
            .await
            .flatten();
        let Some((v, exp)) = moved else {
            tx.conclude().await;
            out.error(errors::NO_SUCH_KEY);
            return out;
        };
        tx.run_each_last(vec![(ds, (dst, v))], move |_, core, (dst, v)| {
            let mut shard = core.shard.borrow_mut();
            let d = &mut shard.dbs[db];
            // Look the destination up first, as Redis does: an expired one
            // is expired (and counted) rather than silently replaced.
            d.find(&dst, now, Access::Write);
            d.insert_owned(&dst, v, exp, now)
        })
        .await;
        if nx {
            out.int(1);
        } else {
            out.ok();
        }
        out
    })
}

/// RENAME across shards.
pub fn rename_multi(ctx: MultiCtx) -> Reply {
    rename_multi_generic(ctx, false)
}

/// RENAMENX across shards.
pub fn renamenx_multi(ctx: MultiCtx) -> Reply {
    rename_multi_generic(ctx, true)
}

/// Parsed COPY options: destination db and REPLACE.
fn copy_opts(argv: &[&[u8]], src_db: usize, ndbs: usize) -> Result<(usize, bool), &'static str> {
    let mut dbid = src_db as i64;
    let mut replace = false;
    let mut j = 3;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        if is(argv[j], "replace") {
            replace = true;
        } else if is(argv[j], "db") && more >= 1 {
            dbid = arg_int(argv[j + 1])?;
            if dbid < 0 || dbid >= ndbs as i64 {
                return Err(errors::DB_INDEX);
            }
            j += 1;
        } else {
            return Err(errors::SYNTAX);
        }
        j += 1;
    }
    Ok((dbid as usize, replace))
}

/// COPY source destination [DB destination-db] [REPLACE] (keys on this shard)
pub fn copy(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let ndbs = ctx.shard.dbs.len();
    let (dst_db, replace) = match copy_opts(argv, ctx.db, ndbs) {
        Ok(o) => o,
        Err(e) => return ctx.out.error(e),
    };
    if dst_db == ctx.db && argv[1] == argv[2] {
        return ctx
            .out
            .error("ERR source and destination objects are the same");
    }
    let now = ctx.now_ms;
    let src = &mut ctx.shard.dbs[ctx.db];
    let Some(p) = src.find(argv[1], now, Access::Read) else {
        return ctx.out.int(0);
    };
    let (v, exp) = (src.clone_at(p), src.expire_at(p));
    let dst = &mut ctx.shard.dbs[dst_db];
    if dst.find(argv[2], now, Access::Write).is_some() {
        if !replace {
            return ctx.out.int(0);
        }
        dst.delete(argv[2], now);
    }
    dst.insert_owned(argv[2], v, exp, now);
    ctx.out.int(1);
}

/// COPY across shards.
pub fn copy_multi(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let argv: Vec<&[u8]> = ctx.argv.iter().map(|a| &a[..]).collect();
        let ndbs = ctx.core.config.borrow().databases;
        let (dst_db, replace) = match copy_opts(&argv, ctx.db, ndbs) {
            Ok(o) => o,
            Err(e) => {
                out.error(e);
                return out;
            }
        };
        let n = ctx.core.nshards;
        let (src, dst) = (ctx.argv[1].clone(), ctx.argv[2].clone());
        let db = ctx.db;
        let now = ctx.now_ms;
        let mut tx = Tx::new(&ctx);
        tx.key(&src, Mode::Shared)
            .key_in(dst_db, &dst, Mode::Exclusive);
        tx.schedule().await;
        let got = ctx
            .core
            .run_on(shard_of_key(&src, n), move |core| {
                let mut shard = core.shard.borrow_mut();
                let d = &mut shard.dbs[db];
                d.find(&src, now, Access::Read)
                    .map(|p| (d.clone_at(p), d.expire_at(p)))
            })
            .await
            .flatten();
        let Some((v, exp)) = got else {
            tx.conclude().await;
            out.int(0);
            return out;
        };
        let ok = tx
            .run_each_last(
                vec![(shard_of_key(&dst, n), (dst, v))],
                move |_, core, (dst, v)| {
                    let mut shard = core.shard.borrow_mut();
                    let d = &mut shard.dbs[dst_db];
                    if d.find(&dst, now, Access::Write).is_some() {
                        if !replace {
                            return false;
                        }
                        d.delete(&dst, now);
                    }
                    d.insert_owned(&dst, v, exp, now);
                    true
                },
            )
            .await
            .into_iter()
            .any(|(_, ok)| ok);
        out.int(ok as i64);
        out
    })
}

/// MOVE key db
pub fn move_(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let dbid = match arg_int(argv[2]) {
        Ok(v) => v,
        Err(e) => return ctx.out.error(e),
    };
    if dbid < 0 || dbid >= ctx.shard.dbs.len() as i64 {
        return ctx.out.error(errors::DB_INDEX);
    }
    let dst_db = dbid as usize;
    if dst_db == ctx.db {
        return ctx
            .out
            .error("ERR source and destination objects are the same");
    }
    let now = ctx.now_ms;
    let Some(p) = ctx.shard.dbs[ctx.db].find(argv[1], now, Access::Write) else {
        return ctx.out.int(0);
    };
    if ctx.shard.dbs[dst_db]
        .find(argv[1], now, Access::Write)
        .is_some()
    {
        return ctx.out.int(0);
    }
    let p = ctx.shard.dbs[ctx.db]
        .find(argv[1], now, Access::Silent)
        .unwrap_or(p);
    let (v, exp) = ctx.shard.dbs[ctx.db].take_at(p);
    ctx.shard.dbs[dst_db].insert_owned(argv[1], v, exp, now);
    ctx.out.int(1);
}

/// OBJECT ENCODING key
pub fn object_encoding(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.find(argv[2], now, Access::NoTouch) {
        None => out.null(),
        Some(p) => out.bulk(db.encoding_name(p).as_bytes()),
    }
}

/// OBJECT REFCOUNT key (shared small integers report INT_MAX, as Redis)
pub fn object_refcount(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.find(argv[2], now, Access::NoTouch) {
        None => out.null(),
        Some(p) => match db.record(p).payload() {
            Payload::Int(i) if (0..10000).contains(&i) && !db.record(p).own_int() => {
                out.int(i32::MAX as i64)
            }
            _ => out.int(1),
        },
    }
}

/// OBJECT IDLETIME key
pub fn object_idletime(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.find(argv[2], now, Access::NoTouch) {
        None => out.null(),
        Some(p) => {
            let clock = crate::storage::db::lru_clock(now);
            let lru = db.record(p).lru();
            let idle = if clock >= lru {
                clock - lru
            } else {
                clock + (0xff_ffff - lru)
            };
            out.int(idle as i64);
        }
    }
}

/// OBJECT FREQ key: only meaningful with an LFU policy, which percore does not have yet.
pub fn object_freq(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.find(argv[2], now, Access::NoTouch) {
        None => out.null(),
        Some(_) => out.error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."),
    }
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// OBJECT HELP
pub fn object_help(ctx: &mut super::ConnCtx<'_>, _argv: &[&[u8]]) {
    super::connection::help_reply(ctx.out, OBJECT_HELP);
}

/// DBSIZE: keys of the selected database on every shard.
pub fn dbsize(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let db = ctx.db;
        let mut tx = Tx::new(&ctx);
        tx.global(Mode::Shared);
        tx.schedule_single_hop().await;
        let total: usize = tx
            .run_all_last(move |_, core| core.shard.borrow().dbsize(db))
            .await
            .into_iter()
            .map(|(_, n)| n)
            .sum();
        let mut out = ctx.reply();
        out.int(total as i64);
        out
    })
}

/// KEYS pattern: every shard, expired keys skipped.
pub fn keys(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let db = ctx.db;
        let now = ctx.now_ms;
        let pattern = ctx.argv[1].clone();
        let all = &pattern[..] == b"*";
        let mut tx = Tx::new(&ctx);
        tx.global(Mode::Shared);
        tx.schedule_single_hop().await;
        let found = tx
            .run_all_last(move |_, core| {
                let shard = core.shard.borrow();
                let mut v: Vec<Vec<u8>> = Vec::new();
                shard.dbs[db].for_each(|r| {
                    if (all || string_match(&pattern, r.key(), false))
                        && r.expire_at().is_none_or(|at| at >= now)
                    {
                        v.push(r.key().to_vec());
                    }
                });
                v
            })
            .await;
        let mut out = ctx.reply();
        let n: usize = found.iter().map(|(_, v)| v.len()).sum();
        out.array_len(n);
        for k in found.iter().flat_map(|(_, v)| v) {
            out.bulk(k);
        }
        out
    })
}

/// Parses a SCAN cursor as Redis's parseScanCursorOrReply: strtoul over the
/// argument as a C string (it ends at a NUL; an empty one is cursor 0), no
/// leading space, nothing after the digits, no overflow.
pub fn parse_cursor(a: &[u8]) -> Option<u64> {
    let a = a.split(|&b| b == 0).next().unwrap_or_default();
    if a.is_empty() {
        return Some(0);
    }
    if a[0].is_ascii_whitespace() || a[0] == 0x0b {
        return None;
    }
    let (neg, digits) = match a[0] {
        b'-' => (true, &a[1..]),
        b'+' => (false, &a[1..]),
        _ => (false, a),
    };
    if digits.is_empty() || !digits.iter().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Options shared by SCAN and the collection SCANs.
pub struct ScanOpts {
    /// MATCH pattern.
    pub pattern: Option<Bytes>,
    /// COUNT.
    pub count: usize,
    /// TYPE filter (SCAN only).
    pub type_name: Option<Bytes>,
}

/// Parses MATCH/COUNT/TYPE as scanGenericCommand does.
pub fn parse_scan_opts(
    argv: &[Bytes],
    first: usize,
    allow_type: bool,
) -> Result<ScanOpts, &'static str> {
    let mut o = ScanOpts {
        pattern: None,
        count: 10,
        type_name: None,
    };
    let mut i = first;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        if is(&argv[i], "count") && more >= 1 {
            match arg_i64(&argv[i + 1]) {
                Some(c) if c >= 1 => o.count = c as usize,
                Some(_) => return Err(errors::SYNTAX),
                None => return Err(errors::NOT_INT),
            }
            i += 2;
        } else if is(&argv[i], "match") && more >= 1 {
            o.pattern = Some(argv[i + 1].clone());
            i += 2;
        } else if is(&argv[i], "type") && allow_type && more >= 1 {
            o.type_name = Some(argv[i + 1].clone());
            i += 2;
        } else {
            return Err(errors::SYNTAX);
        }
    }
    Ok(o)
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
///
/// The cursor is `shard << 32 | tag`: each shard's table is ordered by hash
/// tag, so "the next tag" is a position that survives resizes.
pub fn scan(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let Some(cursor) = parse_cursor(&ctx.argv[1]) else {
            out.error("ERR invalid cursor");
            return out;
        };
        let opts = match parse_scan_opts(&ctx.argv, 2, true) {
            Ok(o) => o,
            Err(e) => {
                out.error(e);
                return out;
            }
        };
        let nshards = ctx.core.nshards as u64;
        let mut shard = cursor >> 32;
        let mut tag = (cursor & 0xffff_ffff) as u32;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let db = ctx.db;
        let now = ctx.now_ms;
        let mut next = 0u64;
        while shard < nshards {
            let count = opts.count;
            let pattern = opts.pattern.clone();
            let type_name = opts.type_name.clone();
            let res = ctx
                .core
                .run_on(shard as usize, move |core| {
                    let mut sh = core.shard.borrow_mut();
                    let d = &mut sh.dbs[db];
                    let mut found: Vec<Vec<u8>> = Vec::new();
                    let mut expired: Vec<Vec<u8>> = Vec::new();
                    let (mut hits, mut misses) = (0, 0);
                    // Filters in scanGenericCommand's order: pattern, then type
                    // (a lookup: counts a hit, or a miss for an expired key, whose
                    // type is then "none"), then expiry. Only keys that got that
                    // far are expired here.
                    let next = d.scan(tag, count, |r| {
                        if let Some(p) = &pattern {
                            if !string_match(p, r.key(), false) {
                                return;
                            }
                        }
                        let is_expired = r.expire_at().is_some_and(|at| at < now);
                        if is_expired {
                            expired.push(r.key().to_vec());
                        }
                        if let Some(t) = &type_name {
                            let name = if is_expired {
                                misses += 1;
                                "none"
                            } else {
                                hits += 1;
                                r.kind().name()
                            };
                            if !t.eq_ignore_ascii_case(name.as_bytes()) {
                                return;
                            }
                            if is_expired {
                                // Redis's lookup already deleted it, so its
                                // expiry check passes: TYPE none lists it.
                                found.push(r.key().to_vec());
                                return;
                            }
                        }
                        if !is_expired {
                            found.push(r.key().to_vec());
                        }
                    });
                    d.stats.hits += hits;
                    d.stats.misses += misses;
                    for k in expired {
                        d.find(&k, now, Access::Silent);
                    }
                    (found, next)
                })
                .await;
            let Some((found, t)) = res else { break };
            keys.extend(found);
            if t != 0 {
                next = (shard << 32) | t as u64;
                break;
            }
            shard += 1;
            tag = 0;
            if !keys.is_empty() || shard >= nshards {
                next = if shard >= nshards { 0 } else { shard << 32 };
                break;
            }
        }
        out.array_len(2);
        out.bulk(next.to_string().as_bytes());
        out.array_len(keys.len());
        for k in &keys {
            out.bulk(k);
        }
        out
    })
}

/// RANDOMKEY: a shard picked in proportion to its size, then a key in it.
pub fn randomkey(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let db = ctx.db;
        let now = ctx.now_ms;
        let mut out = ctx.reply();
        let mut tx = Tx::new(&ctx);
        tx.global(Mode::Shared);
        tx.schedule().await;
        // As Redis's dbRandomKey: draw until a live key turns up or none is
        // left. Every draw that misses deletes an expired key, so this ends.
        loop {
            let sizes: Vec<usize> = tx
                .run_all(move |_, core| core.shard.borrow().dbsize(db))
                .await
                .into_iter()
                .map(|(_, n)| n)
                .collect();
            let total: usize = sizes.iter().sum();
            if total == 0 {
                tx.conclude().await;
                out.null();
                return out;
            }
            let mut pick = (ctx.core.shard.borrow_mut().rand() % total as u64) as usize;
            let mut target = 0;
            for (s, n) in sizes.iter().enumerate() {
                if pick < *n {
                    target = s;
                    break;
                }
                pick -= n;
            }
            let k = ctx
                .core
                .run_on(target, move |core| {
                    let mut sh = core.shard.borrow_mut();
                    let (d, rand) = sh.db_and_rng(db);
                    d.random_key(now, rand)
                })
                .await
                .flatten();
            if let Some(k) = k {
                tx.conclude().await;
                out.bulk(&k);
                return out;
            }
        }
    })
}

/// FLUSHDB/FLUSHALL option: ASYNC or SYNC (both free synchronously here, per shard).
fn flush_opt(argv: &[Bytes]) -> Result<(), &'static str> {
    match argv.len() {
        1 => Ok(()),
        2 if is(&argv[1], "async") || is(&argv[1], "sync") => Ok(()),
        _ => Err(errors::SYNTAX),
    }
}

/// FLUSHDB [ASYNC|SYNC]
pub fn flushdb(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        if let Err(e) = flush_opt(&ctx.argv) {
            out.error(e);
            return out;
        }
        let db = ctx.db;
        let mut tx = Tx::new(&ctx);
        tx.global(Mode::Exclusive);
        tx.schedule_single_hop().await;
        tx.run_all_last(move |_, core| core.shard.borrow_mut().dbs[db].clear())
            .await;
        out.ok();
        out
    })
}

/// FLUSHALL [ASYNC|SYNC]
pub fn flushall(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        if let Err(e) = flush_opt(&ctx.argv) {
            out.error(e);
            return out;
        }
        let mut tx = Tx::new(&ctx);
        tx.global(Mode::Exclusive);
        tx.schedule_single_hop().await;
        tx.run_all_last(|_, core| {
            for d in core.shard.borrow_mut().dbs.iter_mut() {
                d.clear();
            }
        })
        .await;
        out.ok();
        out
    })
}

/// SWAPDB index1 index2
pub fn swapdb(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let parse =
            |a: &[u8]| arg_i64(a).filter(|v| *v >= i32::MIN as i64 && *v <= i32::MAX as i64);
        let Some(a) = parse(&ctx.argv[1]) else {
            out.error("ERR invalid first DB index");
            return out;
        };
        let Some(b) = parse(&ctx.argv[2]) else {
            out.error("ERR invalid second DB index");
            return out;
        };
        let ndbs = ctx.core.config.borrow().databases as i64;
        if a < 0 || a >= ndbs || b < 0 || b >= ndbs {
            out.error(errors::DB_INDEX);
            return out;
        }
        let (a, b) = (a as usize, b as usize);
        if a != b {
            let mut tx = Tx::new(&ctx);
            tx.global(Mode::Exclusive);
            tx.schedule_single_hop().await;
            tx.run_all_last(move |_, core| {
                crate::storage::db::Db::swap_dbs(&mut core.shard.borrow_mut().dbs, a, b)
            })
            .await;
        }
        out.ok();
        out
    })
}
