//! Server commands: INFO, CONFIG, TIME, DEBUG, SHUTDOWN, COMMAND.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use super::{errors, is, CommandTable, ConnCtx, MultiCtx};
use crate::protocol::reply::ReplyBuf;
use crate::server::core::{now_us, CoreStats};
use crate::server::{log, CONNECTED, SHUTDOWN};

type Reply = Pin<Box<dyn Future<Output = ReplyBuf>>>;

/// COMMAND and its subcommands (COUNT, INFO, DOCS, GETKEYS, LIST, HELP).
pub fn command(ctx: &mut ConnCtx<'_>, argv: &[&[u8]]) {
    let table = CommandTable::get();
    super::introspect::command(argv, &|name| table.implements(name), ctx.out);
}

/// TIME
pub fn time(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    let us = now_us();
    ctx.out.array_len(2);
    ctx.out.bulk_i64((us / 1_000_000) as i64);
    ctx.out.bulk_i64((us % 1_000_000) as i64);
}

/// The server's run id (INFO run_id), also naming AOF transaction parts.
pub fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut s = String::new();
        let mut x = crate::storage::table::hash(&now_us().to_le_bytes());
        for i in 0..40 {
            if i % 16 == 0 {
                x = crate::storage::table::hash(&x.to_le_bytes());
            }
            let _ = write!(s, "{:x}", (x >> ((i % 16) * 4)) & 0xf);
        }
        s
    })
}

fn human_bytes(n: u64) -> String {
    let d = n as f64;
    if n < 1024 {
        format!("{n}B")
    } else if n < 1024 * 1024 {
        format!("{:.2}K", d / 1024.0)
    } else if n < 1024 * 1024 * 1024 {
        format!("{:.2}M", d / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", d / 1024.0 / 1024.0 / 1024.0)
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf takes an integer name and returns an integer.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page
}

fn total_system_memory() -> u64 {
    // SAFETY: sysconf takes an integer name and returns an integer.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages.max(0) as u64) * (page.max(0) as u64)
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: rusage is plain data written by getrusage.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_stime), t(ru.ru_utime))
}

/// What one core reports for INFO.
struct CoreInfo {
    stats: CoreStats,
    /// Per db: (keys, keys with TTL, average TTL estimate).
    dbs: Vec<(usize, usize, u64)>,
    hits: u64,
    misses: u64,
    expired: u64,
    clients: usize,
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "errorstats",
    "keyspace",
];

/// INFO [section ...]
pub fn info(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut wanted: Vec<String> = ctx.argv[1..]
            .iter()
            .map(|a| String::from_utf8_lossy(a).to_lowercase())
            .collect();
        let everything = wanted.iter().any(|s| s == "all" || s == "everything");
        if wanted.is_empty() || wanted.iter().any(|s| s == "default") {
            wanted.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
        }
        if everything {
            wanted.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
            wanted.push("commandstats".into());
        }
        let want = |s: &str| wanted.iter().any(|w| w == s);
        let cores = ctx
            .core
            .run_on_all(|core| {
                let shard = core.shard.borrow();
                let mut hits = 0;
                let mut misses = 0;
                let mut expired = 0;
                let dbs = shard
                    .dbs
                    .iter()
                    .map(|d| {
                        hits += d.stats.hits;
                        misses += d.stats.misses;
                        expired += d.stats.expired;
                        (d.len(), d.volatile_len(), d.avg_ttl)
                    })
                    .collect();
                CoreInfo {
                    stats: core.stats.borrow().clone(),
                    dbs,
                    hits,
                    misses,
                    expired,
                    clients: core.clients.borrow().len(),
                }
            })
            .await;
        let config = ctx.core.config.borrow().clone();
        let mut s = String::new();
        let section = |name: &str, s: &mut String| {
            if !s.is_empty() {
                s.push_str("\r\n");
            }
            let _ = write!(s, "# {name}\r\n");
        };
        let sum = |f: &dyn Fn(&CoreStats) -> u64| cores.iter().map(|c| f(&c.stats)).sum::<u64>();
        let uptime = ctx.core.started.elapsed().as_secs();
        if want("server") {
            section("Server", &mut s);
            // SAFETY: utsname is plain data written by uname.
            let uts = unsafe {
                let mut u: libc::utsname = std::mem::zeroed();
                libc::uname(&mut u);
                u
            };
            let field = |f: &[libc::c_char]| {
                let b: Vec<u8> = f
                    .iter()
                    .take_while(|&&c| c != 0)
                    .map(|&c| c as u8)
                    .collect();
                String::from_utf8_lossy(&b).into_owned()
            };
            let exe = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let _ = write!(
                s,
                "redis_version:{}\r\npercore_version:{}\r\nredis_mode:standalone\r\nos:{} {} {}\r\narch_bits:64\r\nmultiplexing_api:io_uring\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nshards:{}\r\n",
                crate::REDIS_VERSION,
                env!("CARGO_PKG_VERSION"),
                field(&uts.sysname),
                field(&uts.release),
                field(&uts.machine),
                std::process::id(),
                run_id(),
                config.port,
                now_us(),
                uptime,
                uptime / 86400,
                config.hz,
                config.hz,
                crate::storage::db::lru_clock(ctx.now_ms),
                exe,
                config.config_file.clone().unwrap_or_default(),
                ctx.core.nshards,
            );
        }
        if want("clients") {
            section("Clients", &mut s);
            let _ = write!(
                s,
                "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n",
                CONNECTED.load(Ordering::Relaxed),
                config.maxclients,
                crate::server::blocking::BLOCKED_CLIENTS.load(Ordering::Relaxed)
            );
        }
        if want("memory") {
            section("Memory", &mut s);
            let used = crate::util::alloc::allocated() as u64;
            let peak = crate::server::note_peak_memory(used);
            let rss = rss_bytes();
            let total = total_system_memory();
            let functions = crate::scripting::functions::current();
            let _ = write!(
                s,
                "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\ntotal_system_memory:{total}\r\ntotal_system_memory_human:{}\r\nnumber_of_cached_scripts:{}\r\nnumber_of_functions:{}\r\nnumber_of_libraries:{}\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:{:.2}\r\nmem_allocator:libc\r\n",
                human_bytes(used),
                human_bytes(rss),
                human_bytes(peak),
                human_bytes(total),
                crate::scripting::count(),
                functions.function_count(),
                functions.libs.len(),
                if used > 0 { rss as f64 / used as f64 } else { 0.0 },
            );
        }
        if want("persistence") {
            section("Persistence", &mut s);
            persistence_info(&mut s);
        }
        if want("stats") {
            section("Stats", &mut s);
            let ops = crate::server::instantaneous_ops(&ctx.core);
            let _ = write!(
                s,
                "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\nunexpected_error_replies:{}\r\ntotal_error_replies:{}\r\n",
                sum(&|s| s.connections_received),
                sum(&|s| s.commands_processed),
                ops,
                sum(&|s| s.net_input_bytes),
                sum(&|s| s.net_output_bytes),
                sum(&|s| s.rejected_connections),
                cores.iter().map(|c| c.expired).sum::<u64>(),
                cores.iter().map(|c| c.hits).sum::<u64>(),
                cores.iter().map(|c| c.misses).sum::<u64>(),
                sum(&|s| s.unexpected_error_replies),
                sum(&|s| s.error_replies),
            );
        }
        if want("replication") {
            section("Replication", &mut s);
            s.push_str("role:master\r\nconnected_slaves:0\r\n");
        }
        if want("cpu") {
            section("CPU", &mut s);
            let (sys, user) = cpu_times();
            let _ = write!(
                s,
                "used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n"
            );
        }
        if want("commandstats") {
            section("Commandstats", &mut s);
            let table = CommandTable::get();
            for cmd in &table.cmds {
                let (mut calls, mut usec, mut rej, mut failed) = (0, 0, 0, 0);
                for c in &cores {
                    let st = &c.stats.cmds[cmd.id as usize];
                    calls += st.calls;
                    usec += st.usec;
                    rej += st.rejected_calls;
                    failed += st.failed_calls;
                }
                if calls == 0 && rej == 0 && failed == 0 {
                    continue;
                }
                let per = if calls > 0 {
                    usec as f64 / calls as f64
                } else {
                    0.0
                };
                let _ = write!(
                    s,
                    "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rej},failed_calls={failed}\r\n",
                    cmd.name
                );
            }
        }
        if want("errorstats") {
            section("Errorstats", &mut s);
            let mut errs: Vec<(String, u64)> = Vec::new();
            for c in &cores {
                for (code, n) in &c.stats.errors {
                    match errs.iter_mut().find(|e| e.0 == *code) {
                        Some(e) => e.1 += n,
                        None => errs.push((code.clone(), *n)),
                    }
                }
            }
            errs.sort();
            for (code, n) in errs {
                let _ = write!(s, "errorstat_{code}:count={n}\r\n");
            }
        }
        if want("keyspace") {
            section("Keyspace", &mut s);
            let ndbs = config.databases;
            for db in 0..ndbs {
                let keys: usize = cores.iter().map(|c| c.dbs[db].0).sum();
                let expires: usize = cores.iter().map(|c| c.dbs[db].1).sum();
                if keys == 0 {
                    continue;
                }
                let ttl_cores: Vec<u64> = cores
                    .iter()
                    .filter(|c| c.dbs[db].2 > 0)
                    .map(|c| c.dbs[db].2)
                    .collect();
                let avg_ttl = if ttl_cores.is_empty() {
                    0
                } else {
                    // u128: TTLs can be near i64::MAX each.
                    (ttl_cores.iter().map(|&t| t as u128).sum::<u128>() / ttl_cores.len() as u128)
                        as u64
                };
                let _ = write!(
                    s,
                    "db{db}:keys={keys},expires={expires},avg_ttl={avg_ttl}\r\n"
                );
            }
        }
        let _ = cores.iter().map(|c| c.clients).sum::<usize>();
        let mut out = ctx.reply();
        out.verbatim(b"txt", s.as_bytes());
        out
    })
}

/// The INFO persistence fields, named as Redis 7.0's.
fn persistence_info(s: &mut String) {
    let st = crate::persistence::state();
    let aof_lines = crate::persistence::aof::info_lines();
    let running = st.in_progress.load(Ordering::SeqCst);
    let bg = running && st.background.load(Ordering::SeqCst);
    let now = crate::persistence::snapshot::now_secs();
    let cur_secs = if bg {
        now.saturating_sub(st.started_secs.load(Ordering::Relaxed)) as i64
    } else {
        -1
    };
    let (processed, total, cow) = if running {
        (
            st.keys_processed.load(Ordering::Relaxed),
            st.keys_total.load(Ordering::Relaxed),
            st.cow_bytes.load(Ordering::Relaxed),
        )
    } else {
        (0, 0, 0)
    };
    let _ = write!(
        s,
        "loading:0\r\nasync_loading:0\r\ncurrent_cow_peak:{cow}\r\ncurrent_cow_size:{cow}\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:{processed}\r\ncurrent_save_keys_total:{total}\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{cur_secs}\r\nrdb_saves:{}\r\nrdb_last_cow_size:{}\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\n{aof_lines}module_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        crate::persistence::changes_since_last_save(),
        bg as u8,
        st.lastsave.load(Ordering::SeqCst),
        if st.last_bgsave_ok.load(Ordering::SeqCst) { "ok" } else { "err" },
        st.last_bgsave_secs.load(Ordering::Relaxed),
        st.saves.load(Ordering::Relaxed),
        st.last_cow.load(Ordering::Relaxed),
        st.load_keys_expired.load(Ordering::Relaxed),
        st.load_keys_loaded.load(Ordering::Relaxed),
    );
}

/// CONFIG GET parameter [parameter ...]
pub fn config_get(ctx: &mut ConnCtx<'_>, argv: &[&[u8]]) {
    let pairs = ctx.core.config.borrow().get(&argv[2..]);
    ctx.out.map_len(pairs.len());
    for (k, v) in pairs {
        ctx.out.bulk(k.as_bytes());
        ctx.out.bulk(&v);
    }
}

/// CONFIG SET parameter value [parameter value ...]: validated here, applied on every core.
pub fn config_set(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        // Fewer than 4 is an arity error at dispatch; an unpaired name is a syntax error.
        if ctx.argv.len() < 4 || ctx.argv.len() % 2 == 1 {
            out.error(errors::SYNTAX);
            return out;
        }
        let pairs: Vec<(&[u8], &[u8])> = ctx.argv[2..]
            .chunks(2)
            .map(|p| (&p[0][..], &p[1][..]))
            .collect();
        let mut next = ctx.core.config.borrow().clone();
        let aof_was = next.appendonly;
        match next.set(&pairs) {
            Err(e) => out.error(&e),
            Ok(_) => {
                log::set_level(&next.loglevel);
                if next.appendonly != aof_was {
                    crate::persistence::aof::set_enabled(&ctx.core, next.appendonly);
                }
                ctx.core
                    .run_on_all(move |core| {
                        core.shard.borrow_mut().limits = crate::storage::Limits::from_config(&next);
                        *core.config.borrow_mut() = next.clone();
                    })
                    .await;
                out.ok();
            }
        }
        out
    })
}

/// CONFIG RESETSTAT
pub fn config_resetstat(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        ctx.core
            .run_on_all(|core| {
                let mut st = core.stats.borrow_mut();
                let n = st.cmds.len();
                *st = CoreStats {
                    cmds: vec![Default::default(); n],
                    ..CoreStats::default()
                };
                for d in core.shard.borrow_mut().dbs.iter_mut() {
                    d.stats = Default::default();
                }
            })
            .await;
        let mut out = ctx.reply();
        out.ok();
        out
    })
}

const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "HELP",
    "    Prints this help.",
];

/// CONFIG HELP
pub fn config_help(ctx: &mut ConnCtx<'_>, _argv: &[&[u8]]) {
    super::connection::help_reply(ctx.out, CONFIG_HELP);
}

const DEBUG_HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "RELOAD [option ...]",
    "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
    "    * MERGE: conflicting keys will be loaded from RDB.",
    "    * NOFLUSH: the existing database will not be removed before load, but",
    "      conflicting keys will generate an exception and kill the server.",
    "    * NOSAVE: the database will be loaded from an existing RDB file.",
    "    Examples:",
    "    * DEBUG RELOAD: verify that the server is able to persist, flush and reload",
    "      the database.",
    "    * DEBUG RELOAD NOSAVE: replace the current database with the contents of an",
    "      existing RDB file.",
    "    * DEBUG RELOAD NOSAVE NOFLUSH MERGE: add the contents of an existing RDB",
    "      file to the database.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "HELP",
    "    Prints this help.",
];

/// Redis's refusal of DEBUG when enable-debug-command does not allow this client.
pub const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// Whether enable-debug-command lets `client` run DEBUG (Redis's allowProtectedAction).
pub fn debug_allowed(
    core: &crate::server::core::Core,
    client: &crate::server::client::Client,
) -> bool {
    match core.config.borrow().enable_debug_command.as_str() {
        "yes" => true,
        "local" => crate::server::listener::is_local_ip(client.addr.ip()),
        _ => false,
    }
}

/// DEBUG SLEEP | SET-ACTIVE-EXPIRE | HELP (only with enable-debug-command)
pub fn debug(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        // Dispatch refuses it first (a rejected call); checked again for other callers.
        if !debug_allowed(&ctx.core, &ctx.client) {
            out.error(DEBUG_NOT_ALLOWED);
            return out;
        }
        let argv = &ctx.argv;
        if argv.len() == 2 && is(&argv[1], "help") {
            super::connection::help_reply(&mut out, DEBUG_HELP);
        } else if argv.len() == 3 && is(&argv[1], "sleep") {
            let secs = crate::util::num::parse_f64(&argv[2])
                .unwrap_or(0.0)
                .max(0.0);
            let dur = std::time::Duration::from_secs_f64(secs.min(1e9));
            // Redis stops the whole server: stop every core at once.
            ctx.core.run_on_all(move |_| std::thread::sleep(dur)).await;
            out.ok();
        } else if is(&argv[1], "reload") {
            let (mut save, mut flush) = (true, true);
            for a in &argv[2..] {
                if is(a, "merge") {
                    // Loaded keys overwrite existing ones either way.
                } else if is(a, "noflush") {
                    flush = false;
                } else if is(a, "nosave") {
                    save = false;
                } else {
                    out.error(
                        "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
                    );
                    return out;
                }
            }
            match crate::persistence::snapshot::debug_reload(&ctx.core, save, flush).await {
                Ok(()) => out.ok(),
                Err(e) => out.error(&format!("ERR {e}")),
            }
        } else if argv.len() == 3 && is(&argv[1], "set-active-expire") {
            let on = crate::commands::arg_i64(&argv[2]).unwrap_or(0) != 0;
            crate::server::ACTIVE_EXPIRE.store(on, Ordering::Relaxed);
            out.ok();
        } else {
            out.error(&format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
                String::from_utf8_lossy(&argv[1])
            ));
        }
        out
    })
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]
///
/// Saves first when save points are configured (or SAVE), unless NOSAVE, as Redis.
pub fn shutdown(ctx: MultiCtx) -> Reply {
    Box::pin(async move {
        let mut out = ctx.reply();
        let (mut nosave, mut save, mut abort, mut other) = (false, false, false, false);
        let mut force = false;
        for a in &ctx.argv[1..] {
            if is(a, "nosave") {
                nosave = true;
            } else if is(a, "save") {
                save = true;
            } else if is(a, "now") || is(a, "force") {
                other = true;
                force |= is(a, "force");
            } else if is(a, "abort") {
                abort = true;
            } else {
                out.error(errors::SYNTAX);
                return out;
            }
        }
        if (abort && (nosave || save || other)) || (nosave && save) {
            out.error(errors::SYNTAX);
            return out;
        }
        if abort {
            out.error("ERR No shutdown in progress.");
            return out;
        }
        // As Redis: while a script is busy only SHUTDOWN NOSAVE goes (the
        // busy core could not take part in a save).
        if !nosave && crate::scripting::BUSY.load(Ordering::SeqCst) > 0 {
            out.error(crate::scripting::busy_error());
            return out;
        }
        log::warning("User requested shutdown...");
        let save_points = !ctx.core.config.borrow().save.is_empty();
        if (save || (save_points && !nosave))
            && !crate::persistence::snapshot::save_before_exit(&ctx.core).await
            && !force
        {
            out.error("ERR Errors trying to SHUTDOWN. Check logs.");
            return out;
        }
        SHUTDOWN.store(true, Ordering::SeqCst);
        ctx.client.close_after_reply.set(true);
        out
    })
}
