//! String commands: GET/SET and friends, counters, ranges, MGET/MSET, LCS.

use std::future::Future;
use std::pin::Pin;

use super::{arg_i64, errors, is, MultiCtx, ShardCtx};
use crate::protocol::reply::ReplyBuf;
use crate::server::exec::shard_of_key;
use crate::server::tx::{Mode, Tx};
use crate::storage::db::{Access, Db, StrEncoding};
use crate::storage::value::{Kind, OwnedValue, StrRef};
use crate::util::num::{self, IncrFloatError};

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// Matches an option keyword the way Redis does: strcasecmp on the argument as a C string,
/// so the argument ends at its first NUL byte (`NX\0junk` is NX, `LEN\0` is LEN).
fn opt(a: &[u8], kw: &str) -> bool {
    let end = memchr::memchr(0, a).unwrap_or(a.len());
    is(&a[..end], kw)
}

/// Which command is parsing SET-style options (Redis's COMMAND_SET / COMMAND_GET).
#[derive(PartialEq, Eq, Clone, Copy)]
enum OptsFor {
    Set,
    GetEx,
}

/// The expiry part of SET/GETEX options.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum ExpireOpt {
    #[default]
    None,
    Ex(usize),
    Px(usize),
    ExAt(usize),
    PxAt(usize),
    KeepTtl,
    Persist,
}

#[derive(Default, Clone, Copy)]
struct SetOpts {
    nx: bool,
    xx: bool,
    get: bool,
    expire: ExpireOpt,
}

/// Parses SET/GETEX options exactly as parseExtendedStringArgumentsOrReply.
fn parse_set_opts(argv: &[&[u8]], first: usize, cmd: OptsFor) -> Result<SetOpts, ()> {
    let mut o = SetOpts::default();
    let mut j = first;
    while j < argv.len() {
        let a = argv[j];
        let has_next = j + 1 < argv.len();
        let no_expire = |o: &SetOpts, except: ExpireOpt| {
            o.expire == ExpireOpt::None
                || std::mem::discriminant(&o.expire) == std::mem::discriminant(&except)
        };
        if opt(a, "nx") && !o.xx && cmd == OptsFor::Set {
            o.nx = true;
        } else if opt(a, "xx") && !o.nx && cmd == OptsFor::Set {
            o.xx = true;
        } else if opt(a, "get") && cmd == OptsFor::Set {
            o.get = true;
        } else if opt(a, "keepttl") && cmd == OptsFor::Set && no_expire(&o, ExpireOpt::KeepTtl) {
            o.expire = ExpireOpt::KeepTtl;
        } else if opt(a, "persist") && cmd == OptsFor::GetEx && no_expire(&o, ExpireOpt::Persist) {
            o.expire = ExpireOpt::Persist;
        } else if opt(a, "ex") && has_next && no_expire(&o, ExpireOpt::Ex(0)) {
            o.expire = ExpireOpt::Ex(j + 1);
            j += 1;
        } else if opt(a, "px") && has_next && no_expire(&o, ExpireOpt::Px(0)) {
            o.expire = ExpireOpt::Px(j + 1);
            j += 1;
        } else if opt(a, "exat") && has_next && no_expire(&o, ExpireOpt::ExAt(0)) {
            o.expire = ExpireOpt::ExAt(j + 1);
            j += 1;
        } else if opt(a, "pxat") && has_next && no_expire(&o, ExpireOpt::PxAt(0)) {
            o.expire = ExpireOpt::PxAt(j + 1);
            j += 1;
        } else {
            return Err(());
        }
        j += 1;
    }
    Ok(o)
}

/// The absolute expiry (ms) an EX/PX/EXAT/PXAT argument asks for, as getExpireMillisecondsOrReply.
fn expire_ms(
    arg: &[u8],
    seconds: bool,
    relative: bool,
    now_ms: u64,
    cmd: &str,
) -> Result<u64, String> {
    let Some(mut ms) = arg_i64(arg) else {
        return Err(errors::NOT_INT.into());
    };
    if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
        return Err(errors::invalid_expire(cmd));
    }
    if seconds {
        ms *= 1000;
    }
    if relative {
        ms = ms.checked_add(now_ms as i64).unwrap_or(-1);
    }
    if ms <= 0 {
        return Err(errors::invalid_expire(cmd));
    }
    Ok(ms as u64)
}

fn opts_expire(argv: &[&[u8]], o: &SetOpts, now_ms: u64, cmd: &str) -> Result<Option<u64>, String> {
    Ok(match o.expire {
        ExpireOpt::Ex(i) => Some(expire_ms(argv[i], true, true, now_ms, cmd)?),
        ExpireOpt::Px(i) => Some(expire_ms(argv[i], false, true, now_ms, cmd)?),
        ExpireOpt::ExAt(i) => Some(expire_ms(argv[i], true, false, now_ms, cmd)?),
        ExpireOpt::PxAt(i) => Some(expire_ms(argv[i], false, false, now_ms, cmd)?),
        _ => None,
    })
}

/// Replies with the string at `key`; Err(()) after replying WRONGTYPE.
fn reply_get(db: &mut Db, key: &[u8], now: u64, out: &mut ReplyBuf) -> Result<(), ()> {
    match db.find(key, now, Access::Read) {
        None => out.null(),
        Some(p) => match db.str_at(p) {
            Some(s) => s.with_bytes(|b| out.bulk(b)),
            None => {
                out.error(errors::WRONGTYPE);
                return Err(());
            }
        },
    }
    Ok(())
}

/// GET key
pub fn get(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let _ = reply_get(db, argv[1], now, out);
}

/// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT t | KEEPTTL]
pub fn set(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let Ok(o) = parse_set_opts(argv, 3, OptsFor::Set) else {
        return ctx.out.error(errors::SYNTAX);
    };
    set_generic(ctx, argv[1], argv[2], o, argv, "set", SetReply::Ok);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetReply {
    /// +OK, or null when NX/XX aborted (SET).
    Ok,
    /// :1, or :0 when aborted (SETNX).
    OneZero,
}

fn set_generic(
    ctx: &mut ShardCtx<'_>,
    key: &[u8],
    val: &[u8],
    o: SetOpts,
    argv: &[&[u8]],
    cmd: &str,
    reply: SetReply,
) {
    let now = ctx.now_ms;
    let expire = match opts_expire(argv, &o, now, cmd) {
        Ok(e) => e,
        Err(e) => return ctx.out.error(&e),
    };
    let (db, out) = ctx.db_out();
    if o.get && reply_get(db, key, now, out).is_err() {
        return;
    }
    let found = db.find(key, now, Access::Write).is_some();
    if (o.nx && found) || (o.xx && !found) {
        if !o.get {
            match reply {
                SetReply::Ok => out.null(),
                SetReply::OneZero => out.int(0),
            }
        }
        return;
    }
    db.set_str(
        key,
        val,
        StrEncoding::Auto,
        expire,
        o.expire == ExpireOpt::KeepTtl,
        now,
    );
    if !o.get {
        match reply {
            SetReply::Ok => out.ok(),
            SetReply::OneZero => out.int(1),
        }
    }
}

/// SETNX key value
pub fn setnx(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let o = SetOpts {
        nx: true,
        ..SetOpts::default()
    };
    set_generic(ctx, argv[1], argv[2], o, argv, "setnx", SetReply::OneZero);
}

/// SETEX key seconds value
pub fn setex(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let o = SetOpts {
        expire: ExpireOpt::Ex(2),
        ..SetOpts::default()
    };
    set_generic(ctx, argv[1], argv[3], o, argv, "setex", SetReply::Ok);
}

/// PSETEX key milliseconds value
pub fn psetex(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let o = SetOpts {
        expire: ExpireOpt::Px(2),
        ..SetOpts::default()
    };
    set_generic(ctx, argv[1], argv[3], o, argv, "psetex", SetReply::Ok);
}

/// GETSET key value
pub fn getset(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    if reply_get(db, argv[1], now, out).is_err() {
        return;
    }
    db.set_str(argv[1], argv[2], StrEncoding::Auto, None, false, now);
}

/// GETDEL key
pub fn getdel(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(p) = db.find(argv[1], now, Access::Read) else {
        return out.null();
    };
    match db.str_at(p) {
        Some(s) => s.with_bytes(|b| out.bulk(b)),
        None => return out.error(errors::WRONGTYPE),
    }
    db.remove_at(p);
}

/// GETEX key [EX|PX|EXAT|PXAT t | PERSIST]
pub fn getex(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let Ok(o) = parse_set_opts(argv, 2, OptsFor::GetEx) else {
        return ctx.out.error(errors::SYNTAX);
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(p) = db.find(argv[1], now, Access::Read) else {
        return out.null();
    };
    let Some(s) = db.str_at(p) else {
        return out.error(errors::WRONGTYPE);
    };
    let expire = match opts_expire(argv, &o, now, "getex") {
        Ok(e) => e,
        Err(e) => return out.error(&e),
    };
    s.with_bytes(|b| out.bulk(b));
    match (o.expire, expire) {
        (ExpireOpt::ExAt(_) | ExpireOpt::PxAt(_), Some(at)) if at <= now => db.remove_at(p),
        (_, Some(at)) => db.set_expire_at(p, Some(at)),
        (ExpireOpt::Persist, None) => db.set_expire_at(p, None),
        _ => {}
    }
}

/// MGET key [key ...] (keys on this shard)
pub fn mget(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    out.array_len(argv.len() - 1);
    for k in &argv[1..] {
        match db.find(k, now, Access::Read).and_then(|p| db.str_at(p)) {
            Some(s) => s.with_bytes(|b| out.bulk(b)),
            None => out.null(),
        }
    }
}

/// MGET across shards: one hop per shard, replies in key order.
pub fn mget_multi(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let n = ctx.core.nshards;
        let mut per: Vec<Vec<(usize, bytes::Bytes)>> = vec![Vec::new(); n];
        for (i, k) in ctx.argv[1..].iter().enumerate() {
            per[shard_of_key(k, n)].push((i, k.clone()));
        }
        let mut values: Vec<Option<Vec<u8>>> = vec![None; ctx.argv.len() - 1];
        let db = ctx.db;
        let now = ctx.now_ms;
        let mut tx = Tx::new(&ctx);
        tx.keys(&ctx.argv[1..], Mode::Shared);
        tx.schedule_single_hop().await;
        let items = per.into_iter().enumerate().filter(|(_, k)| !k.is_empty());
        let res = tx
            .run_each_last(items.collect(), move |_, core, keys| {
                let mut shard = core.shard.borrow_mut();
                let d = &mut shard.dbs[db];
                keys.into_iter()
                    .map(|(i, k)| {
                        let v = d
                            .find(&k, now, Access::Read)
                            .and_then(|p| d.str_at(p))
                            .map(|s| s.to_vec());
                        (i, v)
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        for (_, r) in res {
            for (i, v) in r {
                values[i] = v;
            }
        }
        let mut out = ctx.reply();
        out.array_len(values.len());
        for v in values {
            out.bulk_opt(v.as_deref());
        }
        out
    })
}

/// MSET key value [key value ...] (keys on this shard)
pub fn mset(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    if argv.len().is_multiple_of(2) {
        return ctx
            .out
            .error("ERR wrong number of arguments for 'mset' command");
    }
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    for kv in argv[1..].chunks(2) {
        mset_one(db, kv[0], kv[1], now);
    }
    out.ok();
}

/// One MSET pair. Redis's setKey looks the key up for writing first, so an expired key is
/// expired (and counted in expired_keys) before it is overwritten.
fn mset_one(db: &mut Db, key: &[u8], val: &[u8], now: u64) {
    let _ = db.find(key, now, Access::Write);
    db.set_str(key, val, StrEncoding::Auto, None, false, now);
}

/// MSETNX key value [key value ...] (keys on this shard)
pub fn msetnx(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    if argv.len().is_multiple_of(2) {
        return ctx
            .out
            .error("ERR wrong number of arguments for 'msetnx' command");
    }
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    if argv[1..]
        .chunks(2)
        .any(|kv| db.find(kv[0], now, Access::Write).is_some())
    {
        return out.int(0);
    }
    for kv in argv[1..].chunks(2) {
        db.set_str(kv[0], kv[1], StrEncoding::Auto, None, false, now);
    }
    out.int(1);
}

/// Groups key/value pairs by shard, keeping their order.
fn pairs_by_shard(ctx: &MultiCtx) -> Vec<Vec<(bytes::Bytes, bytes::Bytes)>> {
    let n = ctx.core.nshards;
    let mut per: Vec<Vec<(bytes::Bytes, bytes::Bytes)>> = vec![Vec::new(); n];
    for kv in ctx.argv[1..].chunks(2) {
        per[shard_of_key(&kv[0], n)].push((kv[0].clone(), kv[1].clone()));
    }
    per
}

/// Sets the pairs on their shards and ends the transaction in the same hop.
async fn set_pairs(ctx: &MultiCtx, tx: Tx, per: Vec<Vec<(bytes::Bytes, bytes::Bytes)>>) {
    let db = ctx.db;
    let now = ctx.now_ms;
    let items = per.into_iter().enumerate().filter(|(_, p)| !p.is_empty());
    tx.run_each_last(items.collect(), move |_, core, pairs| {
        let mut shard = core.shard.borrow_mut();
        let d = &mut shard.dbs[db];
        for (k, v) in pairs {
            mset_one(d, &k, &v, now);
        }
    })
    .await;
}

/// A transaction locking MSET/MSETNX's keys for writing (MSET's only hop
/// runs as soon as each shard grants it).
async fn lock_pairs(ctx: &MultiCtx, single_hop: bool) -> Tx {
    let mut tx = Tx::new(ctx);
    for kv in ctx.argv[1..].chunks(2) {
        tx.key(&kv[0], Mode::Exclusive);
    }
    if single_hop {
        tx.schedule_single_hop().await;
    } else {
        tx.schedule().await;
    }
    tx
}

/// MSET across shards.
pub fn mset_multi(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        if ctx.argv.len().is_multiple_of(2) {
            out.error("ERR wrong number of arguments for 'mset' command");
            return out;
        }
        let per = pairs_by_shard(&ctx);
        let tx = lock_pairs(&ctx, true).await;
        set_pairs(&ctx, tx, per).await;
        out.ok();
        out
    })
}

/// MSETNX across shards: check every shard, then set.
pub fn msetnx_multi(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        if ctx.argv.len().is_multiple_of(2) {
            out.error("ERR wrong number of arguments for 'msetnx' command");
            return out;
        }
        let per = pairs_by_shard(&ctx);
        let db = ctx.db;
        let now = ctx.now_ms;
        // Two hops under the same locks: check every shard, then set.
        let tx = lock_pairs(&ctx, false).await;
        let items: Vec<(usize, Vec<bytes::Bytes>)> = per
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(s, p)| (s, p.iter().map(|kv| kv.0.clone()).collect()))
            .collect();
        let n = items.len();
        let checked = tx
            .run_each(items, move |_, core, keys| {
                let mut shard = core.shard.borrow_mut();
                let d = &mut shard.dbs[db];
                keys.iter().any(|k| d.find(k, now, Access::Write).is_some())
            })
            .await;
        let busy = checked.len() < n || checked.iter().any(|(_, b)| *b);
        if busy {
            tx.conclude().await;
            out.int(0);
        } else {
            set_pairs(&ctx, tx, per).await;
            out.int(1);
        }
        out
    })
}

/// INCR/DECR/INCRBY/DECRBY on one key.
fn incr_by(ctx: &mut ShardCtx<'_>, key: &[u8], incr: i64) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let pos = db.find(key, now, Access::Write);
    let cur = match pos {
        None => 0,
        Some(p) => match db.str_at(p) {
            None => return out.error(errors::WRONGTYPE),
            Some(StrRef::Int(i)) => i,
            Some(StrRef::Bytes(b)) => match (b.len() <= 20).then(|| num::parse_i64(b)).flatten() {
                Some(i) => i,
                None => return out.error(errors::NOT_INT),
            },
        },
    };
    let Some(v) = cur.checked_add(incr) else {
        return out.error(errors::OVERFLOW);
    };
    match pos {
        Some(p) => db.set_int_at(p, v),
        None => db.insert_owned(key, OwnedValue::Int(v), None, now),
    }
    out.int(v);
}

/// INCR key
pub fn incr(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    incr_by(ctx, argv[1], 1);
}

/// DECR key
pub fn decr(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    incr_by(ctx, argv[1], -1);
}

/// INCRBY key increment
pub fn incrby(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    match arg_i64(argv[2]) {
        Some(i) => incr_by(ctx, argv[1], i),
        None => ctx.out.error(errors::NOT_INT),
    }
}

/// DECRBY key decrement
pub fn decrby(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    match arg_i64(argv[2]) {
        Some(i64::MIN) => ctx.out.error("ERR decrement would overflow"),
        Some(i) => incr_by(ctx, argv[1], -i),
        None => ctx.out.error(errors::NOT_INT),
    }
}

/// INCRBYFLOAT key increment (long double arithmetic, as Redis)
pub fn incrbyfloat(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let pos = db.find(argv[1], now, Access::Write);
    let cur = match pos {
        None => None,
        Some(p) => match db.str_at(p) {
            None => return out.error(errors::WRONGTYPE),
            Some(s) => Some(s.to_vec()),
        },
    };
    match num::incr_by_float(cur.as_deref(), argv[2]) {
        Ok(v) => {
            let keep = pos.and_then(|p| db.expire_at(p));
            db.set_str(argv[1], &v, StrEncoding::NoInt, keep, false, now);
            out.bulk(&v);
        }
        Err(IncrFloatError::NotAFloat) => out.error(errors::NOT_FLOAT),
        Err(IncrFloatError::NanOrInfinity) => {
            out.error("ERR increment would produce NaN or Infinity")
        }
    }
}

/// Checks a string's would-be length against proto-max-bulk-len, as checkStringLength.
fn check_len(size: usize, append: usize, max: u64, out: &mut ReplyBuf) -> bool {
    match size.checked_add(append) {
        Some(t) if (t as u64) <= max => true,
        _ => {
            out.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
            false
        }
    }
}

/// APPEND key value
pub fn append(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let max = ctx.shard.limits.proto_max_bulk_len;
    let (db, out) = ctx.db_out();
    let Some(p) = db.find(argv[1], now, Access::Write) else {
        db.set_str(argv[1], argv[2], StrEncoding::Auto, None, false, now);
        return out.int(argv[2].len() as i64);
    };
    let Some(s) = db.str_at(p) else {
        return out.error(errors::WRONGTYPE);
    };
    if !check_len(s.len(), argv[2].len(), max, out) {
        return;
    }
    let v = db.raw_str_at(p);
    v.extend_from_slice(argv[2]);
    out.int(v.len() as i64);
}

/// STRLEN key
pub fn strlen(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    match db.find(argv[1], now, Access::Read) {
        None => out.int(0),
        Some(p) => match db.str_at(p) {
            Some(s) => out.int(s.len() as i64),
            None => out.error(errors::WRONGTYPE),
        },
    }
}

/// GETRANGE key start end (and SUBSTR)
pub fn getrange(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let (Some(mut start), Some(mut end)) = (arg_i64(argv[2]), arg_i64(argv[3])) else {
        return ctx.out.error(errors::NOT_INT);
    };
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(p) = db.find(argv[1], now, Access::Read) else {
        return out.bulk(b"");
    };
    let Some(s) = db.str_at(p) else {
        return out.error(errors::WRONGTYPE);
    };
    s.with_bytes(|b| {
        let len = b.len() as i64;
        if start < 0 && end < 0 && start > end {
            return out.bulk(b"");
        }
        if start < 0 {
            start += len;
        }
        if end < 0 {
            end += len;
        }
        start = start.max(0);
        end = end.max(0);
        if end >= len {
            end = len - 1;
        }
        if start > end || len == 0 {
            out.bulk(b"");
        } else {
            out.bulk(&b[start as usize..=end as usize]);
        }
    });
}

/// SETRANGE key offset value
pub fn setrange(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let Some(offset) = arg_i64(argv[2]) else {
        return ctx.out.error(errors::NOT_INT);
    };
    if offset < 0 {
        return ctx.out.error("ERR offset is out of range");
    }
    let offset = offset as usize;
    let value = argv[3];
    let now = ctx.now_ms;
    let max = ctx.shard.limits.proto_max_bulk_len;
    let (db, out) = ctx.db_out();
    let p = match db.find(argv[1], now, Access::Write) {
        None => {
            if value.is_empty() {
                return out.int(0);
            }
            if !check_len(offset, value.len(), max, out) {
                return;
            }
            db.set_str(argv[1], b"", StrEncoding::Raw, None, false, now);
            db.find(argv[1], now, Access::Silent).expect("just stored")
        }
        Some(p) => {
            let Some(s) = db.str_at(p) else {
                return out.error(errors::WRONGTYPE);
            };
            if value.is_empty() {
                return out.int(s.len() as i64);
            }
            if !check_len(offset, value.len(), max, out) {
                return;
            }
            p
        }
    };
    let v = db.raw_str_at(p);
    if v.len() < offset + value.len() {
        v.resize(offset + value.len(), 0);
    }
    v[offset..offset + value.len()].copy_from_slice(value);
    out.int(v.len() as i64);
}

/// A string read for LCS: missing = empty, Err = wrong type.
fn lcs_input(db: &mut Db, key: &[u8], now: u64) -> Result<Vec<u8>, ()> {
    match db.find(key, now, Access::Read) {
        None => Ok(Vec::new()),
        Some(p) => match db.kind(p) {
            Kind::String => Ok(db.str_at(p).expect("a string").to_vec()),
            _ => Err(()),
        },
    }
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN] (keys on this shard)
pub fn lcs(ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let now = ctx.now_ms;
    let max = ctx.shard.limits.proto_max_bulk_len;
    let (db, out) = ctx.db_out();
    let a = lcs_input(db, argv[1], now);
    let b = lcs_input(db, argv[2], now);
    lcs_reply(a, b, argv, max, out);
}

/// LCS across shards: fetch both strings, compute here.
pub fn lcs_multi(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let db = ctx.db;
        let now = ctx.now_ms;
        let n = ctx.core.nshards;
        let mut tx = Tx::new(&ctx);
        tx.keys(&ctx.argv[1..3], Mode::Shared);
        tx.schedule().await;
        let fetch = |k: bytes::Bytes| {
            ctx.core.run_on(shard_of_key(&k, n), move |core| {
                let mut shard = core.shard.borrow_mut();
                lcs_input(&mut shard.dbs[db], &k, now)
            })
        };
        let (a, b) = futures::join!(fetch(ctx.argv[1].clone()), fetch(ctx.argv[2].clone()));
        tx.conclude().await;
        let max = ctx.core.config.borrow().proto_max_bulk_len;
        let argv: Vec<&[u8]> = ctx.argv.iter().map(|a| &a[..]).collect();
        let mut out = ctx.reply();
        lcs_reply(
            a.unwrap_or(Err(())),
            b.unwrap_or(Err(())),
            &argv,
            max,
            &mut out,
        );
        out
    })
}

/// The LCS algorithm and reply, a port of Redis 7.0's lcsCommand.
fn lcs_reply(
    a: Result<Vec<u8>, ()>,
    b: Result<Vec<u8>, ()>,
    argv: &[&[u8]],
    max: u64,
    out: &mut ReplyBuf,
) {
    let (Ok(a), Ok(b)) = (a, b) else {
        return out.error("ERR The specified keys must contain string values");
    };
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: i64 = 0;
    let mut j = 3;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if opt(argv[j], "idx") {
            getidx = true;
        } else if opt(argv[j], "len") {
            getlen = true;
        } else if opt(argv[j], "withmatchlen") {
            withmatchlen = true;
        } else if opt(argv[j], "minmatchlen") && more > 0 {
            match arg_i64(argv[j + 1]) {
                Some(v) => minmatchlen = v.max(0),
                None => return out.error(errors::NOT_INT),
            }
            j += 1;
        } else {
            return out.error(errors::SYNTAX);
        }
        j += 1;
    }
    if getidx && getlen {
        return out.error("ERR If you want both the length and indexes, please just use IDX.");
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen + 1) as u64 * (blen + 1) as u64;
    if cells.saturating_mul(4) > max {
        return out
            .error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let w = blen + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=alen {
        for jj in 1..=blen {
            t[i * w + jj] = if a[i - 1] == b[jj - 1] {
                t[(i - 1) * w + jj - 1] + 1
            } else {
                t[(i - 1) * w + jj].max(t[i * w + jj - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    let mut idx = total as usize;
    let computelcs = getidx || !getlen;
    let mut result = vec![0u8; if computelcs { idx } else { 0 }];
    let mut matches = ReplyBuf::new(out.proto);
    let mut nmatches = 0usize;
    let (mut ars, mut are, mut brs, mut bre) = (alen, 0usize, 0usize, 0usize);
    let (mut i, mut jj) = (alen, blen);
    while computelcs && i > 0 && jj > 0 {
        let mut emit = false;
        if a[i - 1] == b[jj - 1] {
            result[idx - 1] = a[i - 1];
            if ars == alen {
                ars = i - 1;
                are = i - 1;
                brs = jj - 1;
                bre = jj - 1;
            } else if ars == i && brs == jj {
                ars -= 1;
                brs -= 1;
            } else {
                emit = true;
            }
            if ars == 0 || brs == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            jj -= 1;
        } else {
            let l1 = t[(i - 1) * w + jj];
            let l2 = t[i * w + jj - 1];
            if l1 > l2 {
                i -= 1;
            } else {
                jj -= 1;
            }
            if ars != alen {
                emit = true;
            }
        }
        let match_len = are.wrapping_sub(ars).wrapping_add(1);
        if emit {
            if (minmatchlen == 0 || match_len as i64 >= minmatchlen) && getidx {
                matches.array_len(2 + withmatchlen as usize);
                matches.array_len(2);
                matches.int(ars as i64);
                matches.int(are as i64);
                matches.array_len(2);
                matches.int(brs as i64);
                matches.int(bre as i64);
                if withmatchlen {
                    matches.int(match_len as i64);
                }
                nmatches += 1;
            }
            ars = alen;
        }
    }
    if getidx {
        out.map_len(2);
        out.bulk(b"matches");
        out.array_len(nmatches);
        out.raw(&matches.buf);
        out.bulk(b"len");
        out.int(total as i64);
    } else if getlen {
        out.int(total as i64);
    } else {
        out.bulk(&result);
    }
}
