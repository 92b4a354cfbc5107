//! Blocking list commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP), blocking
//! sorted-set pops (BZPOPMIN, BZPOPMAX, BZMPOP) and CLIENT UNBLOCK.
//!
//! Each is a coordinator: it tries its keys shard by shard in argument order
//! (consecutive keys of one shard in one hop), serving at once when a key has
//! data, else registering the client on every key (see `server::blocking`);
//! the connection loop then waits for a value, the timeout or CLIENT UNBLOCK.
//!
//! MULTI/EXEC and scripts: set `Client::deny_blocking` while running these
//! coordinators, or call `run_nonblocking` on the shard that owns the keys;
//! either way the command acts as its non-blocking form and answers a null
//! reply where it would block, as Redis's CLIENT_DENY_BLOCKING.

use std::pin::Pin;

use super::{arg_i64, errors, is, MultiCtx, ShardCtx};
use crate::protocol::reply::ReplyBuf;
use crate::server::blocking::{attempt, handoff, Attempt, Op, Served, Ticket, Waiting};
use crate::server::exec::shard_of_key;
use crate::storage::list::End;
use crate::util::num::LongDouble;

type Reply = Pin<Box<dyn std::future::Future<Output = ReplyBuf>>>;

/// Parses a blocking timeout in seconds as Redis 7.0's getTimeoutFromObjectOrReply:
/// milliseconds = ceil(seconds * 1000); 0 = forever.
pub fn parse_timeout(a: &[u8]) -> Result<u64, &'static str> {
    let v = LongDouble::parse(a).ok_or("ERR timeout is not a float or out of range")?;
    let ms = v.timeout_ms();
    if ms < 0 {
        return Err("ERR timeout is negative");
    }
    Ok(ms as u64)
}

/// LEFT/RIGHT (getListPositionFromObjectOrReply).
fn list_end(a: &[u8]) -> Option<End> {
    if is(a, "left") {
        Some(End::Head)
    } else if is(a, "right") {
        Some(End::Tail)
    } else {
        None
    }
}

/// Tries the keys, serving at once or registering the client; the connection waits after.
async fn run(ctx: &MultiCtx, keys: Vec<Box<[u8]>>, op: Op, timeout_ms: u64, out: &mut ReplyBuf) {
    let core = &ctx.core;
    let db = ctx.db;
    let may_block = !ctx.client.deny_blocking.get();
    // Runs of consecutive keys on one shard, visited in argument order, so that
    // the first key holding data wins as in Redis.
    let mut runs: Vec<(usize, Vec<Box<[u8]>>)> = Vec::new();
    for k in keys {
        let s = shard_of_key(&k, core.nshards);
        match runs.last_mut() {
            Some((ls, v)) if *ls == s => v.push(k),
            _ => runs.push((s, vec![k])),
        }
    }
    let mut w = Waiting::new();
    for (s, ks) in runs {
        let op2 = op.clone();
        let ticket = w.ticket.clone();
        let tx = may_block.then(|| w.tx.clone());
        let ks2 = ks.clone();
        let res = core
            .run_on(s, move |core| {
                attempt(
                    &mut core.shard.borrow_mut(),
                    db,
                    &ks2,
                    &op2,
                    &ticket,
                    tx.as_ref(),
                )
            })
            .await;
        let served = match res {
            Some(Attempt::Registered) => {
                w.registered(s, db, ks);
                continue;
            }
            Some(Attempt::Empty) => continue,
            Some(Attempt::WrongType) => w
                .claim_or_receive()
                .await
                .unwrap_or(Served::Error(errors::WRONGTYPE)),
            Some(Attempt::Lost) => w.receive().await.unwrap_or(Served::Nothing),
            Some(Attempt::Done(sv)) => sv,
            Some(Attempt::Handoff { src, elem }) => match &op {
                Op::Move {
                    from,
                    to,
                    dest,
                    dest_shard,
                } => {
                    handoff(
                        core.clone(),
                        db,
                        s,
                        src,
                        *from,
                        *dest_shard,
                        dest.clone(),
                        *to,
                        elem,
                    )
                    .await
                }
                _ => Served::Nothing,
            },
            // The core is gone: shutting down.
            None => Served::Nothing,
        };
        served.reply(out);
        w.cancel(core).await;
        return;
    }
    if !may_block {
        // Where it would block: BLMOVE answers a null, the pops a null array.
        match op {
            Op::Move { .. } => out.null(),
            _ => out.null_array(),
        }
        return;
    }
    w.block(core, &ctx.client, timeout_ms, ctx.cmd);
}

/// Which blocking command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// BLPOP key [key ...] timeout
    Blpop,
    /// BRPOP key [key ...] timeout
    Brpop,
    /// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
    Blmove,
    /// BRPOPLPUSH source destination timeout
    Brpoplpush,
    /// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
    Blmpop,
    /// BZPOPMIN key [key ...] timeout
    Bzpopmin,
    /// BZPOPMAX key [key ...] timeout
    Bzpopmax,
    /// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
    Bzmpop,
}

/// A parsed blocking command: its keys, its operation, its timeout (ms, 0 = forever).
#[derive(Debug)]
pub struct Parsed {
    /// The keys waited on, in argument order.
    pub keys: Vec<Box<[u8]>>,
    /// The operation; `Op::Move::dest_shard` is left 0 for the caller to fill in.
    pub op: Op,
    /// Milliseconds, 0 for forever.
    pub timeout_ms: u64,
}

/// A positive count argument as getRangeLongFromObjectOrReply(1, LONG_MAX, msg).
fn positive(a: &[u8], msg: &'static str) -> Result<usize, &'static str> {
    match arg_i64(a) {
        Some(v) if v >= 1 => Ok(v as usize),
        _ => Err(msg),
    }
}

/// MIN/MAX (zmpopGenericCommand): true for MAX.
fn zset_end(a: &[u8]) -> Option<bool> {
    if is(a, "min") {
        Some(false)
    } else if is(a, "max") {
        Some(true)
    } else {
        None
    }
}

/// Parsed `*MPOP` arguments: keys, where, count, timeout in ms.
type MPopArgs<W> = (Vec<Box<[u8]>>, W, usize, u64);

/// BLMPOP's and BZMPOP's `timeout numkeys key [key ...] WHERE [COUNT count]`, in
/// lmpopGenericCommand's / zmpopGenericCommand's order: numkeys, where, options,
/// then the timeout. Returns (keys, where, count, timeout_ms).
fn parse_mpop<A: AsRef<[u8]>, W>(
    argv: &[A],
    where_of: impl Fn(&[u8]) -> Option<W>,
) -> Result<MPopArgs<W>, &'static str> {
    let arg = |i: usize| argv[i].as_ref();
    let n = argv.len();
    let numkeys = positive(arg(2), "ERR numkeys should be greater than 0")?;
    let where_idx = numkeys.saturating_add(3);
    if where_idx >= n {
        return Err(errors::SYNTAX);
    }
    let end = where_of(arg(where_idx)).ok_or(errors::SYNTAX)?;
    let mut count = None;
    let mut j = where_idx + 1;
    while j < n {
        if count.is_none() && is(arg(j), "count") && j + 1 < n {
            j += 1;
            count = Some(positive(arg(j), "ERR count should be greater than 0")?);
        } else {
            return Err(errors::SYNTAX);
        }
        j += 1;
    }
    let timeout_ms = parse_timeout(arg(1))?;
    let keys = (3..where_idx).map(|i| Box::from(arg(i))).collect();
    Ok((keys, end, count.unwrap_or(1), timeout_ms))
}

/// Parses a blocking command, checking arguments in Redis 7.0's order.
pub fn parse<A: AsRef<[u8]>>(which: Which, argv: &[A]) -> Result<Parsed, &'static str> {
    let arg = |i: usize| argv[i].as_ref();
    let n = argv.len();
    let key = |a: &[u8]| Box::<[u8]>::from(a);
    Ok(match which {
        Which::Blpop | Which::Brpop => Parsed {
            timeout_ms: parse_timeout(arg(n - 1))?,
            keys: (1..n - 1).map(|i| key(arg(i))).collect(),
            op: Op::Pop {
                end: if which == Which::Blpop {
                    End::Head
                } else {
                    End::Tail
                },
            },
        },
        Which::Blmove | Which::Brpoplpush => {
            let (from, to, t) = if which == Which::Blmove {
                let (Some(from), Some(to)) = (list_end(arg(3)), list_end(arg(4))) else {
                    return Err(errors::SYNTAX);
                };
                (from, to, arg(5))
            } else {
                (End::Tail, End::Head, arg(3))
            };
            Parsed {
                timeout_ms: parse_timeout(t)?,
                keys: vec![key(arg(1))],
                op: Op::Move {
                    from,
                    to,
                    dest: key(arg(2)),
                    dest_shard: 0,
                },
            }
        }
        Which::Blmpop => {
            let (keys, end, count, timeout_ms) = parse_mpop(argv, list_end)?;
            Parsed {
                timeout_ms,
                keys,
                op: Op::MPop { end, count },
            }
        }
        // blockingGenericZpopCommand: the timeout first, then the keys' types.
        Which::Bzpopmin | Which::Bzpopmax => Parsed {
            timeout_ms: parse_timeout(arg(n - 1))?,
            keys: (1..n - 1).map(|i| key(arg(i))).collect(),
            op: Op::ZPop {
                max: which == Which::Bzpopmax,
                count: None,
            },
        },
        Which::Bzmpop => {
            let (keys, max, count, timeout_ms) = parse_mpop(argv, zset_end)?;
            Parsed {
                timeout_ms,
                keys,
                op: Op::ZPop {
                    max,
                    count: Some(count),
                },
            }
        }
    })
}

/// The coordinator of one blocking command.
fn coordinate(ctx: MultiCtx, which: Which) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        match parse(which, &ctx.argv) {
            Ok(mut p) => {
                if let Op::Move {
                    dest, dest_shard, ..
                } = &mut p.op
                {
                    *dest_shard = shard_of_key(dest, ctx.core.nshards);
                }
                run(&ctx, p.keys, p.op, p.timeout_ms, &mut out).await;
            }
            Err(e) => out.error(e),
        }
        out
    })
}

/// BLPOP key [key ...] timeout
pub fn blpop(ctx: MultiCtx) -> Reply {
    coordinate(ctx, Which::Blpop)
}

/// BRPOP key [key ...] timeout
pub fn brpop(ctx: MultiCtx) -> Reply {
    coordinate(ctx, Which::Brpop)
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
pub fn blmove(ctx: MultiCtx) -> Reply {
    coordinate(ctx, Which::Blmove)
}

/// BRPOPLPUSH source destination timeout
pub fn brpoplpush(ctx: MultiCtx) -> Reply {
    coordinate(ctx, Which::Brpoplpush)
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn blmpop(ctx: MultiCtx) -> Reply {
    coordinate(ctx, Which::Blmpop)
}

/// BZPOPMIN key [key ...] timeout
pub fn bzpopmin(ctx: MultiCtx) -> Reply {
    coordinate(ctx, Which::Bzpopmin)
}

/// BZPOPMAX key [key ...] timeout
pub fn bzpopmax(ctx: MultiCtx) -> Reply {
    coordinate(ctx, Which::Bzpopmax)
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
pub fn bzmpop(ctx: MultiCtx) -> Reply {
    coordinate(ctx, Which::Bzmpop)
}

/// The non-blocking form, for MULTI/EXEC and scripts run on one shard: every key
/// (BLMOVE's destination too) must live on `ctx.shard`. Serves at once like the
/// blocking command, else answers what Redis answers a client that may not block.
pub fn run_nonblocking(which: Which, ctx: &mut ShardCtx<'_>, argv: &[&[u8]]) {
    let mut p = match parse(which, argv) {
        Ok(p) => p,
        Err(e) => {
            ctx.out.error(e);
            return;
        }
    };
    if let Op::Move { dest_shard, .. } = &mut p.op {
        *dest_shard = ctx.shard.id;
    }
    let ticket = std::sync::Arc::new(Ticket::default());
    match attempt(ctx.shard, ctx.db, &p.keys, &p.op, &ticket, None) {
        Attempt::WrongType => ctx.out.error(errors::WRONGTYPE),
        Attempt::Done(served) => served.reply(ctx.out),
        Attempt::Empty | Attempt::Registered | Attempt::Lost | Attempt::Handoff { .. } => {
            match p.op {
                Op::Move { .. } => ctx.out.null(),
                _ => ctx.out.null_array(),
            }
        }
    }
}

fn error_reply(ctx: &MultiCtx, e: &str) -> Reply {
    let mut out = ctx.reply();
    out.error(e);
    Box::pin(async move { out })
}

/// CLIENT UNBLOCK client-id [TIMEOUT|ERROR]
pub fn client_unblock(ctx: MultiCtx) -> Reply {
    let argv = &ctx.argv;
    let mut error = false;
    if argv.len() == 4 {
        if is(&argv[3], "error") {
            error = true;
        } else if !is(&argv[3], "timeout") {
            return error_reply(&ctx, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
        }
    } else if argv.len() > 4 {
        let msg = format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&argv[1][..argv[1].len().min(128)])
        );
        return error_reply(&ctx, &msg);
    }
    let Some(id) = arg_i64(&argv[2]) else {
        return error_reply(&ctx, errors::NOT_INT);
    };
    Box::pin(async move {
        let mut out = ctx.reply();
        let hits = ctx
            .core
            .run_on_all(move |core| {
                let client = core.clients.borrow().by_id.get(&(id as u64)).cloned();
                let tx = client.and_then(|c| c.unblock.borrow_mut().take());
                tx.is_some_and(|tx| tx.send(error).is_ok())
            })
            .await;
        let hit = hits.iter().any(|&h| h);
        if hit && error {
            // The error reply given to the target counts against this call, as in Redis
            // (it is written while CLIENT UNBLOCK runs).
            ctx.core.stats.borrow_mut().cmds[ctx.cmd.id as usize].failed_calls += 1;
        }
        out.int(hit as i64);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::reply::Proto;
    use crate::server::shard::Shard;
    use crate::storage::db::StrEncoding;
    use crate::storage::list::ListValue;
    use crate::storage::value::Object;

    fn run_now(shard: &mut Shard, which: Which, line: &str) -> Vec<u8> {
        let argv: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
        let mut out = ReplyBuf::new(Proto::Resp2);
        let mut ctx = ShardCtx {
            shard,
            db: 0,
            now_ms: 0,
            out: &mut out,
        };
        run_nonblocking(which, &mut ctx, &argv);
        out.buf
    }

    #[test]
    fn nonblocking_forms_never_wait() {
        let mut shard = Shard::new(0, 16);
        let d = &mut shard.dbs[0];
        let p = d.create_object(b"k", Object::List(ListValue::new()), 0);
        d.list_mut(p).push(End::Tail, b"a");
        d.list_mut(p).push(End::Tail, b"b");
        d.set_str(b"s", b"x", StrEncoding::Auto, None, false, 0);
        let s = &mut shard;
        assert_eq!(
            run_now(s, Which::Blpop, "BLPOP none k 0"),
            b"*2\r\n$1\r\nk\r\n$1\r\na\r\n"
        );
        assert_eq!(run_now(s, Which::Blpop, "BLPOP none 0"), b"*-1\r\n");
        assert_eq!(
            run_now(s, Which::Blpop, "BLPOP none x"),
            b"-ERR timeout is not a float or out of range\r\n"
        );
        assert_eq!(
            run_now(s, Which::Blpop, "BLPOP s 0")[..10],
            b"-WRONGTYPE"[..]
        );
        assert_eq!(
            run_now(s, Which::Blmove, "BLMOVE none d LEFT LEFT 0"),
            b"$-1\r\n"
        );
        assert_eq!(
            run_now(s, Which::Blmove, "BLMOVE k d LEFT LEFT 0"),
            b"$1\r\nb\r\n"
        );
        assert_eq!(
            run_now(s, Which::Blmpop, "BLMPOP 0 2 none d RIGHT COUNT 9"),
            b"*2\r\n$1\r\nd\r\n*1\r\n$1\r\nb\r\n"
        );
        assert_eq!(run_now(s, Which::Blmpop, "BLMPOP 0 1 d LEFT"), b"*-1\r\n");
    }

    #[test]
    fn nonblocking_zset_forms_never_wait() {
        let mut shard = Shard::new(0, 16);
        let lim = crate::storage::zset::ZLimits::from(&shard.limits);
        let d = &mut shard.dbs[0];
        let mut z = crate::storage::zset::ZSetValue::new_listpack();
        z.set(b"a", 1.0, lim);
        z.set(b"b", 2.5, lim);
        z.set(b"c", 3.0, lim);
        d.create_object(b"z", Object::ZSet(z), 0);
        let s = &mut shard;
        assert_eq!(
            run_now(s, Which::Bzpopmax, "BZPOPMAX none z 0"),
            b"*3\r\n$1\r\nz\r\n$1\r\nc\r\n$1\r\n3\r\n"
        );
        assert_eq!(
            run_now(s, Which::Bzmpop, "BZMPOP 0 1 z MIN COUNT 5"),
            b"*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\nb\r\n$3\r\n2.5\r\n"
        );
        assert_eq!(run_now(s, Which::Bzpopmin, "BZPOPMIN z 0"), b"*-1\r\n");
        assert_eq!(
            run_now(s, Which::Bzmpop, "BZMPOP 0 1 z LEFT"),
            b"-ERR syntax error\r\n"
        );
    }
}
