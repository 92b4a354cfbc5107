//! Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT LOAD/EXISTS/FLUSH/KILL (see `crate::scripting`).

use std::future::Future;
use std::pin::Pin;

use super::{arg_i64, errors, is, MultiCtx};
use crate::protocol::reply::ReplyBuf;
use crate::scripting;

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// EVAL script numkeys [key ...] [arg ...]
pub fn eval(ctx: MultiCtx) -> Reply {
    Box::pin(generic(ctx, false, false))
}

/// EVAL_RO script numkeys [key ...] [arg ...]
pub fn eval_ro(ctx: MultiCtx) -> Reply {
    Box::pin(generic(ctx, false, true))
}

/// EVALSHA sha1 numkeys [key ...] [arg ...]
pub fn evalsha(ctx: MultiCtx) -> Reply {
    Box::pin(generic(ctx, true, false))
}

/// EVALSHA_RO sha1 numkeys [key ...] [arg ...]
pub fn evalsha_ro(ctx: MultiCtx) -> Reply {
    Box::pin(generic(ctx, true, true))
}

/// evalGenericCommand: numkeys checks, the script by body or sha, then the run.
async fn generic(ctx: MultiCtx, by_sha: bool, read_only: bool) -> ReplyBuf {
    let mut out = ctx.reply();
    let Some(numkeys) = arg_i64(&ctx.argv[2]) else {
        out.error(errors::NOT_INT);
        return out;
    };
    if numkeys > (ctx.argv.len() - 3) as i64 {
        out.error("ERR Number of keys can't be greater than number of args");
        return out;
    }
    if numkeys < 0 {
        out.error("ERR Number of keys can't be negative");
        return out;
    }
    let n = numkeys as usize;
    let (sha, body) = if by_sha {
        let sha = String::from_utf8_lossy(&ctx.argv[1]).to_ascii_lowercase();
        match scripting::body(&sha) {
            Some(b) if ctx.argv[1].len() == 40 => (sha, b),
            _ => {
                out.error("NOSCRIPT No matching script. Please use EVAL.");
                return out;
            }
        }
    } else {
        let body = ctx.argv[1].clone();
        let sha = scripting::sha1hex(&body);
        (sha, body)
    };
    let keys = ctx.argv[3..3 + n].to_vec();
    let args = ctx.argv[3 + n..].to_vec();
    if !by_sha {
        // Compiled first: a script that does not compile is not cached.
        if let Err(e) = scripting::lua::compile(&sha, &body) {
            out.error(&e);
            return out;
        }
        scripting::store(&body);
    }
    scripting::lua::run_script(ctx, sha, body, keys, args, read_only, &mut out).await;
    out
}

/// SCRIPT LOAD script
pub fn script_load(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let sha = scripting::sha1hex(&ctx.argv[2]);
        if let Err(e) = scripting::lua::compile(&sha, &ctx.argv[2]) {
            out.error(&e);
            return out;
        }
        scripting::store(&ctx.argv[2]);
        out.bulk(sha.as_bytes());
        out
    })
}

/// SCRIPT EXISTS sha1 [sha1 ...]
pub fn script_exists(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        out.array_len(ctx.argv.len() - 2);
        for a in &ctx.argv[2..] {
            let sha = String::from_utf8_lossy(a).to_ascii_lowercase();
            out.int((a.len() == 40 && scripting::exists(&sha)) as i64);
        }
        out
    })
}

/// SCRIPT FLUSH [ASYNC|SYNC]
pub fn script_flush(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        if ctx.argv.len() > 3
            || (ctx.argv.len() == 3 && !is(&ctx.argv[2], "sync") && !is(&ctx.argv[2], "async"))
        {
            out.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
            return out;
        }
        scripting::flush();
        out.ok();
        out
    })
}

/// SCRIPT KILL
pub fn script_kill(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        use std::sync::atomic::Ordering;
        let mut out = ctx.reply();
        if scripting::BUSY.load(Ordering::SeqCst) == 0 {
            out.error("NOTBUSY No scripts in execution right now.");
        } else if scripting::BUSY_WROTE.load(Ordering::Relaxed) {
            out.error(super::functions::UNKILLABLE);
        } else if scripting::BUSY_FN.load(Ordering::SeqCst)
            >= scripting::BUSY.load(Ordering::SeqCst)
        {
            // Only functions are busy: they are FUNCTION KILL's.
            out.error(scripting::BUSY_FN_ERROR);
        } else {
            scripting::KILL.store(true, Ordering::SeqCst);
            out.ok();
        }
        out
    })
}
