//! Persistence commands: SAVE, BGSAVE, LASTSAVE.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use super::{errors, is, ConnCtx, MultiCtx};
use crate::persistence::snapshot::{self, Mode};
use crate::protocol::reply::ReplyBuf;

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// SAVE: a snapshot the caller waits for (every shard serializes at once).
pub fn save(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        match snapshot::save(&ctx.core, Mode::Blocking).await {
            Ok(()) => out.ok(),
            Err(e) if e.starts_with("Background save") => out.error(&format!("ERR {e}")),
            // Redis replies with the bare shared error; the cause is in the log.
            Err(_) => out.error("ERR"),
        }
        out
    })
}

/// BGSAVE [SCHEDULE]
pub fn bgsave(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        if ctx.argv.len() > 2 || (ctx.argv.len() == 2 && !is(&ctx.argv[1], "schedule")) {
            out.error(errors::SYNTAX);
            return out;
        }
        // Without an AOF rewrite there is no other child to wait for, so
        // SCHEDULE behaves as plain BGSAVE (as Redis with no child running).
        if crate::persistence::aof::rewriting() {
            if ctx.argv.len() == 2 {
                // Runs once the rewrite's snapshot is done.
                let core = ctx.core.clone();
                glommio::spawn_local(async move {
                    while !snapshot::try_begin() {
                        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                    }
                    let _ = snapshot::save_held(&core, Mode::Background).await;
                })
                .detach();
                out.simple("Background saving scheduled");
                return out;
            }
            out.error("ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.");
            return out;
        }
        match snapshot::start_background(&ctx.core) {
            Ok(()) => out.simple("Background saving started"),
            Err(e) => out.error(&format!("ERR {e}")),
        }
        out
    })
}

/// LASTSAVE
pub fn lastsave(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    let t = crate::persistence::state().lastsave.load(Ordering::SeqCst);
    ctx.out.int(t as i64);
}

/// BGREWRITEAOF
pub fn bgrewriteaof(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    match crate::persistence::aof::start_rewrite(ctx.core) {
        Ok(false) => ctx
            .out
            .simple("Background append only file rewriting started"),
        Ok(true) => ctx
            .out
            .simple("Background append only file rewriting scheduled"),
        Err(e) => ctx.out.error(&e),
    }
}
