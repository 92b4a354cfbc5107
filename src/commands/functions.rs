//! Functions: FCALL, FCALL_RO and FUNCTION LOAD/LIST/DELETE/FLUSH/DUMP/RESTORE/STATS/KILL/HELP
//! (see `crate::scripting::functions`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use super::{arg_i64, is, MultiCtx};
use crate::protocol::reply::ReplyBuf;
use crate::scripting::functions::{self as fns, flags, Policy};
use crate::scripting::{self, lua::Body};

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// FCALL function numkeys [key ...] [arg ...]
pub fn fcall(ctx: MultiCtx) -> Reply {
    Box::pin(generic(ctx, false))
}

/// FCALL_RO function numkeys [key ...] [arg ...]
pub fn fcall_ro(ctx: MultiCtx) -> Reply {
    Box::pin(generic(ctx, true))
}

/// fcallCommandGeneric: the function, numkeys, the read-only check, then the run.
async fn generic(ctx: MultiCtx, ro: bool) -> ReplyBuf {
    let mut out = ctx.reply();
    let Some(func) = fns::lookup(&ctx.argv[1]) else {
        out.error("ERR Function not found");
        return out;
    };
    let Some(numkeys) = arg_i64(&ctx.argv[2]) else {
        out.error("ERR Bad number of keys provided");
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
    let no_writes = func.flags & flags::NO_WRITES != 0;
    if ro && !no_writes {
        out.error("ERR Can not execute a script with write flag using *_ro command.");
        return out;
    }
    let n = numkeys as usize;
    let keys = ctx.argv[3..3 + n].to_vec();
    let args = ctx.argv[3 + n..].to_vec();
    let body = Body::Function {
        f: func.f,
        lua: func.lua,
        name: func.name,
        shape: func.shape,
        argv: ctx.argv.clone(),
    };
    scripting::lua::run_body(ctx, body, keys, args, ro || no_writes, &mut out).await;
    out
}

/// FUNCTION LOAD [REPLACE] code
pub fn function_load(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let argv = &ctx.argv;
        let mut replace = false;
        let mut pos = 2;
        while pos < argv.len() - 1 {
            let a = &argv[pos];
            pos += 1;
            if is(a, "replace") {
                replace = true;
                continue;
            }
            out.error(&format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(a)
            ));
            return out;
        }
        if pos >= argv.len() {
            out.error("ERR Function code is missing");
            return out;
        }
        match fns::load(argv[pos].clone(), replace, true) {
            Ok(name) => out.bulk(name.as_bytes()),
            Err(e) => out.error(&e),
        }
        out
    })
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]
pub fn function_list(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let argv = &ctx.argv;
        let (mut with_code, mut pattern) = (false, None);
        let mut i = 2;
        while i < argv.len() {
            let a = &argv[i];
            if !with_code && is(a, "withcode") {
                with_code = true;
                i += 1;
                continue;
            }
            if pattern.is_none() && is(a, "libraryname") {
                if i >= argv.len() - 1 {
                    out.error("ERR library name argument was not given");
                    return out;
                }
                pattern = Some(argv[i + 1].clone());
                i += 2;
                continue;
            }
            out.error(&format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(a)
            ));
            return out;
        }
        let reg = fns::current();
        let libs: Vec<_> = reg
            .libs
            .values()
            .filter(|l| {
                pattern
                    .as_ref()
                    .is_none_or(|p| crate::util::glob::string_match(p, l.name.as_bytes(), true))
            })
            .collect();
        out.array_len(libs.len());
        for lib in libs {
            out.map_len(if with_code { 4 } else { 3 });
            out.bulk(b"library_name");
            out.bulk(lib.name.as_bytes());
            out.bulk(b"engine");
            out.bulk(b"LUA");
            out.bulk(b"functions");
            out.array_len(lib.functions.len());
            for f in &lib.functions {
                out.map_len(3);
                out.bulk(b"name");
                out.bulk(f.name.as_bytes());
                out.bulk(b"description");
                out.bulk_opt(f.desc.as_deref());
                out.bulk(b"flags");
                let set: Vec<&str> = flags::NAMES
                    .iter()
                    .filter(|(_, b)| f.flags & b != 0)
                    .map(|(n, _)| *n)
                    .collect();
                out.set_len(set.len());
                for s in set {
                    out.simple(s);
                }
            }
            if with_code {
                out.bulk(b"library_code");
                out.bulk(&lib.code);
            }
        }
        out
    })
}

/// FUNCTION DELETE library-name
pub fn function_delete(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        match fns::delete(&ctx.argv[2]) {
            Ok(()) => out.ok(),
            Err(e) => out.error(&e),
        }
        out
    })
}

/// The reply to a subcommand with bad arguments (addReplySubcommandSyntaxError).
fn subcommand_syntax(out: &mut ReplyBuf, sub: &[u8]) {
    out.error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(sub)
    ));
}

/// FUNCTION FLUSH [ASYNC|SYNC]
pub fn function_flush(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        if ctx.argv.len() > 3 {
            subcommand_syntax(&mut out, &ctx.argv[1]);
            return out;
        }
        if ctx.argv.len() == 3 && !is(&ctx.argv[2], "sync") && !is(&ctx.argv[2], "async") {
            out.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
            return out;
        }
        fns::flush();
        out.ok();
        out
    })
}

/// FUNCTION DUMP
pub fn function_dump(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let opts = crate::persistence::rdb::SaveOpts {
            compression: ctx.core.config.borrow().rdbcompression,
        };
        out.bulk(&fns::dump(opts));
        out
    })
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]
pub fn function_restore(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        if ctx.argv.len() > 4 {
            subcommand_syntax(&mut out, &ctx.argv[1]);
            return out;
        }
        let policy = match ctx.argv.get(3) {
            None => Policy::Append,
            Some(p) if is(p, "append") => Policy::Append,
            Some(p) if is(p, "replace") => Policy::Replace,
            Some(p) if is(p, "flush") => Policy::Flush,
            Some(_) => {
                out.error("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.");
                return out;
            }
        };
        match fns::parse_dump(&ctx.argv[2]).and_then(|c| fns::restore(&c, policy)) {
            Ok(()) => out.ok(),
            Err(e) => out.error(&e),
        }
        out
    })
}

/// FUNCTION STATS
pub fn function_stats(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        // An EVAL script is busy: as Redis, refuse (the reply names SCRIPT KILL).
        if scripting::BUSY.load(Ordering::SeqCst) > scripting::BUSY_FN.load(Ordering::SeqCst) {
            out.error(scripting::BUSY_ERROR);
            return out;
        }
        let reg = fns::current();
        out.map_len(2);
        out.bulk(b"running_script");
        match fns::busy_function() {
            None => out.null(),
            Some(b) => {
                out.map_len(3);
                out.bulk(b"name");
                out.bulk(b.name.as_bytes());
                out.bulk(b"command");
                out.array_len(b.argv.len());
                for a in &b.argv {
                    out.bulk(a);
                }
                out.bulk(b"duration_ms");
                out.int(b.start.elapsed().as_millis() as i64);
            }
        }
        out.bulk(b"engines");
        out.map_len(1);
        out.bulk(b"LUA");
        out.map_len(2);
        out.bulk(b"libraries_count");
        out.int(reg.libs.len() as i64);
        out.bulk(b"functions_count");
        out.int(reg.function_count() as i64);
        out
    })
}

/// FUNCTION KILL: stops the busy functions that wrote nothing (scriptKill).
pub fn function_kill(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        if scripting::BUSY.load(Ordering::SeqCst) == 0 {
            out.error("NOTBUSY No scripts in execution right now.");
        } else if scripting::BUSY_WROTE.load(Ordering::Relaxed) {
            out.error(UNKILLABLE);
        } else if scripting::BUSY_FN.load(Ordering::SeqCst) == 0 {
            out.error(scripting::BUSY_ERROR);
        } else {
            scripting::KILL_FN.store(true, Ordering::SeqCst);
            out.ok();
        }
        out
    })
}

/// The reply to a kill of a script that wrote.
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";

/// FUNCTION HELP
pub fn function_help(ctx: &mut super::ConnCtx<'_>, _argv: &[&[u8]]) {
    super::connection::help_reply(ctx.out, HELP);
}

const HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];
