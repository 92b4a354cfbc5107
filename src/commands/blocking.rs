//! Blocking list commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) and CLIENT UNBLOCK.
//!
//! Each is a coordinator: it tries its keys shard by shard in argument order
//! (consecutive keys of one shard in one hop), serving at once when a key has
//! data, else registering the client on every key (see `server::blocking`);
//! the connection loop then waits for a value, the timeout or CLIENT UNBLOCK.
//!
//! MULTI/EXEC and scripts: set `Client::deny_blocking` while running commands
//! that may not block; these commands then act as their non-blocking forms and
//! answer a null reply where they would block, as Redis's CLIENT_DENY_BLOCKING.

use std::pin::Pin;

use bytes::Bytes;

use super::{arg_i64, errors, is, MultiCtx};
use crate::protocol::reply::ReplyBuf;
use crate::server::blocking::{attempt, handoff, Attempt, Op, Served, Waiting};
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

fn boxed(keys: &[Bytes]) -> Vec<Box<[u8]>> {
    keys.iter().map(|k| Box::<[u8]>::from(&k[..])).collect()
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

/// BLPOP/BRPOP key [key ...] timeout
fn bpop(ctx: MultiCtx, end: End) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let n = ctx.argv.len();
        let timeout = match parse_timeout(&ctx.argv[n - 1]) {
            Ok(t) => t,
            Err(e) => {
                out.error(e);
                return out;
            }
        };
        let keys = boxed(&ctx.argv[1..n - 1]);
        run(&ctx, keys, Op::Pop { end }, timeout, &mut out).await;
        out
    })
}

/// BLPOP key [key ...] timeout
pub fn blpop(ctx: MultiCtx) -> Reply {
    bpop(ctx, End::Head)
}

/// BRPOP key [key ...] timeout
pub fn brpop(ctx: MultiCtx) -> Reply {
    bpop(ctx, End::Tail)
}

fn bmove(ctx: MultiCtx, from: End, to: End, timeout: u64) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let dest: Box<[u8]> = Box::from(&ctx.argv[2][..]);
        let op = Op::Move {
            from,
            to,
            dest_shard: shard_of_key(&dest, ctx.core.nshards),
            dest,
        };
        let keys = boxed(&ctx.argv[1..2]);
        run(&ctx, keys, op, timeout, &mut out).await;
        out
    })
}

fn error_reply(ctx: &MultiCtx, e: &str) -> Reply {
    let mut out = ctx.reply();
    out.error(e);
    Box::pin(async move { out })
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
pub fn blmove(ctx: MultiCtx) -> Reply {
    let (Some(from), Some(to)) = (list_end(&ctx.argv[3]), list_end(&ctx.argv[4])) else {
        return error_reply(&ctx, errors::SYNTAX);
    };
    match parse_timeout(&ctx.argv[5]) {
        Ok(t) => bmove(ctx, from, to, t),
        Err(e) => error_reply(&ctx, e),
    }
}

/// BRPOPLPUSH source destination timeout
pub fn brpoplpush(ctx: MultiCtx) -> Reply {
    match parse_timeout(&ctx.argv[3]) {
        Ok(t) => bmove(ctx, End::Tail, End::Head, t),
        Err(e) => error_reply(&ctx, e),
    }
}

/// A positive count argument as getRangeLongFromObjectOrReply(1, LONG_MAX, msg).
fn positive(a: &[u8], msg: &'static str) -> Result<usize, &'static str> {
    match arg_i64(a) {
        Some(v) if v >= 1 => Ok(v as usize),
        _ => Err(msg),
    }
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn blmpop(ctx: MultiCtx) -> Reply {
    let argv = &ctx.argv;
    // Parsed in lmpopGenericCommand's order: numkeys, where, options, then the timeout.
    let numkeys = match positive(&argv[2], "ERR numkeys should be greater than 0") {
        Ok(n) => n,
        Err(e) => return error_reply(&ctx, e),
    };
    let where_idx = numkeys.saturating_add(3);
    if where_idx >= argv.len() {
        return error_reply(&ctx, errors::SYNTAX);
    }
    let Some(end) = list_end(&argv[where_idx]) else {
        return error_reply(&ctx, errors::SYNTAX);
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < argv.len() {
        if count.is_none() && is(&argv[j], "count") && j + 1 < argv.len() {
            j += 1;
            match positive(&argv[j], "ERR count should be greater than 0") {
                Ok(c) => count = Some(c),
                Err(e) => return error_reply(&ctx, e),
            }
        } else {
            return error_reply(&ctx, errors::SYNTAX);
        }
        j += 1;
    }
    let timeout = match parse_timeout(&argv[1]) {
        Ok(t) => t,
        Err(e) => return error_reply(&ctx, e),
    };
    let keys = boxed(&argv[3..where_idx]);
    let op = Op::MPop {
        end,
        count: count.unwrap_or(1),
    };
    Box::pin(async move {
        let mut out = ctx.reply();
        run(&ctx, keys, op, timeout, &mut out).await;
        out
    })
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
