//! The per-core Lua state, the `redis` library, RESP ↔ Lua conversions and running a script.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use mlua::{ffi, Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value};

use super::Shape;
use crate::commands::spec::CmdFlags;
use crate::commands::{CommandTable, Exec, Lookup, MultiCtx};
use crate::protocol::reply::{Proto, ReplyBuf};
use crate::server::exec::shard_of_key;
use crate::server::tx::{self, Mode, Tx};

/// A core's Lua state and the scripts compiled in it.
struct Engine {
    lua: Lua,
    gen: u64,
    loaded: HashSet<String>,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    /// One script at a time per core (they share the state's globals).
    static GATE: Rc<futures::lock::Mutex<()>> = Rc::new(futures::lock::Mutex::new(()));
    /// The running script's context, for `redis.call`.
    static RUN: RefCell<Option<Rc<RunCtx>>> = const { RefCell::new(None) };
}

/// What `redis.call` needs about the running script.
struct RunCtx {
    ctx: MultiCtx,
    read_only: bool,
    /// Declared keys (database, key) when the script runs keyed; None when global or passthrough.
    declared: Option<HashSet<(usize, Bytes)>>,
    /// It wrote something.
    wrote: Cell<bool>,
    /// It touched keys it did not declare (or the whole keyspace).
    undeclared: Cell<bool>,
    /// A keyed run reached an undeclared key: it must stop and rerun globally
    /// (set once; every later `redis.call`, and the hook, raise [`Stop::Retry`]
    /// again, so that a Lua `pcall` catching it cannot let the run go on).
    retry: Cell<bool>,
    /// The before-images of the keys a keyed, writing run changed (see `tx::UndoLog`).
    undo: Option<RefCell<tx::UndoLog>>,
    /// When it started (for busy-reply-threshold).
    start: std::time::Instant,
    /// It counts in [`super::BUSY`].
    busy: Cell<bool>,
    /// Set when the script is a function (FCALL): its name and command, for FUNCTION STATS/KILL.
    func: Option<FnRun>,
    /// The sha for EVAL (the slow script log line names it).
    name: String,
}

/// What FUNCTION STATS and FUNCTION KILL need about a running function.
pub(super) struct FnRun {
    /// The function's name.
    pub name: String,
    /// The FCALL command that runs it.
    pub argv: Vec<Bytes>,
    /// Unique id of this run (for the busy list).
    pub id: u64,
}

/// Restores the script's surroundings when its run ends (or is dropped).
struct Ended {
    run: Rc<RunCtx>,
    saved: (usize, Proto),
    was_in_exec: bool,
}

impl Drop for Ended {
    fn drop(&mut self) {
        RUN.with(|r| *r.borrow_mut() = None);
        unbusy(&self.run);
        let ctx = &self.run.ctx;
        {
            let mut info = ctx.client.info.borrow_mut();
            info.db = self.saved.0;
            info.proto = self.saved.1;
        }
        if !self.was_in_exec {
            ctx.core.tx.borrow_mut().in_exec.remove(&ctx.client.id);
        }
    }
}

/// The instruction-count hook: past busy-reply-threshold the script makes
/// other clients get BUSY and serves this core's connections (see
/// `server::busy`); SCRIPT KILL stops it unless it wrote; SHUTDOWN stops it.
fn hook(lua: &Lua) -> mlua::Result<mlua::VmState> {
    let Some(run) = RUN.with(|r| r.borrow().clone()) else {
        return Ok(mlua::VmState::Continue);
    };
    // A keyed run told to stop (see `RunCtx::retry`) that a Lua pcall kept going.
    let go_on = || {
        if run.retry.get() {
            Err(mlua::Error::external(Stop::Retry))
        } else {
            Ok(mlua::VmState::Continue)
        }
    };
    if !run.busy.get() {
        let limit = super::BUSY_THRESHOLD_MS.load(Ordering::Relaxed);
        let elapsed = run.start.elapsed().as_millis() as u64;
        if elapsed < limit {
            return go_on();
        }
        run.busy.set(true);
        if run.wrote.get() {
            super::BUSY_WROTE.store(true, Ordering::Relaxed);
        }
        if let Some(f) = &run.func {
            super::functions::busy_started(f, run.start);
            super::BUSY_FN.fetch_add(1, Ordering::SeqCst);
        }
        super::BUSY.fetch_add(1, Ordering::SeqCst);
        let (kill, name) = match &run.func {
            Some(f) => ("FUNCTION KILL", f.name.as_str()),
            None => ("SCRIPT KILL", run.name.as_str()),
        };
        crate::server::log::warning(&format!(
            "Slow script detected: still in execution after {elapsed} milliseconds. You can try killing the script using the {kill} command. Script name is: {name}."
        ));
    }
    // This core's clients are not served while the script loops: answer them here.
    crate::server::busy::serve(&run.ctx.core);
    if crate::server::SHUTDOWN.load(Ordering::SeqCst) {
        // SHUTDOWN NOSAVE: as Redis, which exits from here, the script's client gets no reply.
        run.ctx.client.kill();
        return Err(mlua::Error::external(Stop::ShuttingDown));
    }
    let killed = if run.func.is_some() {
        super::KILL_FN.load(Ordering::SeqCst)
    } else {
        super::KILL.load(Ordering::SeqCst)
    };
    if killed && !run.wrote.get() {
        crate::server::log::warning("Lua script killed by user with SCRIPT KILL.");
        return Err(mlua::Error::external(CallError {
            msg: "ERR Script killed by user with SCRIPT KILL...".into(),
            line: script_line(lua),
        }));
    }
    go_on()
}

/// Why a run is stopped from inside (raised through Lua as an error no
/// script can turn into a reply).
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// The server shuts down (SHUTDOWN NOSAVE while the script was busy):
    /// the script ends without a reply.
    ShuttingDown,
    /// A keyed run reached an undeclared key: roll back what it wrote, rerun globally.
    Retry,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::ShuttingDown => "shutting down",
            Stop::Retry => "retry",
        })
    }
}

impl std::error::Error for Stop {}

/// The script stopped: it no longer counts as busy.
fn unbusy(run: &RunCtx) {
    if !run.busy.replace(false) {
        return;
    }
    if let Some(f) = &run.func {
        super::functions::busy_ended(f.id);
        if super::BUSY_FN.fetch_sub(1, Ordering::SeqCst) == 1 {
            super::KILL_FN.store(false, Ordering::SeqCst);
        }
    }
    if super::BUSY.fetch_sub(1, Ordering::SeqCst) == 1 {
        super::KILL.store(false, Ordering::SeqCst);
        super::KILL_FN.store(false, Ordering::SeqCst);
        super::BUSY_WROTE.store(false, Ordering::Relaxed);
    }
}

/// An error raised by `redis.call` (a Redis error reply) with the script line that called it.
#[derive(Debug)]
pub(super) struct CallError {
    /// The error reply's text ("ERR ...").
    pub msg: String,
    /// The script line that raised it.
    pub line: i32,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for CallError {}

/// Builds a sandboxed state as Redis 7.0's scriptingInit does.
pub(super) fn new_state(scope: super::libs::JsonScope) -> mlua::Result<Lua> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )?;
    let g = lua.globals();
    // Globals Redis 7.0.15 does not expose (its allow list keeps them out).
    for name in [
        "loadfile", "dofile", "print", "getfenv", "setfenv", "newproxy",
    ] {
        g.raw_set(name, Value::Nil)?;
    }
    let redis = lua.create_table()?;
    redis.set(
        "call",
        super::libs::exact_numbers(
            &lua,
            lua.create_async_function(|lua, args| call(lua, args, true))?,
        )?,
    )?;
    redis.set(
        "pcall",
        super::libs::exact_numbers(
            &lua,
            lua.create_async_function(|lua, args| call(lua, args, false))?,
        )?,
    )?;
    redis.set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(call_err(lua, "wrong number of arguments".into()));
            }
            let s = match args.into_iter().next() {
                Some(Value::String(s)) => s.as_bytes().to_vec(),
                Some(Value::Integer(n)) => n.to_string().into_bytes(),
                Some(v @ Value::Number(_)) => lua
                    .coerce_string(v)?
                    .map(|s| s.as_bytes().to_vec())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            Ok(super::sha1hex(&s))
        })?,
    )?;
    redis.set(
        "log",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() < 2 {
                return Err(call_err(
                    lua,
                    "redis.log() requires two arguments or more.".into(),
                ));
            }
            let mut it = args.into_iter();
            let level = match it.next() {
                Some(Value::Integer(n)) => n,
                Some(Value::Number(n)) => n as i64,
                _ => {
                    return Err(call_err(
                        lua,
                        "First argument must be a number (log level).".into(),
                    ))
                }
            };
            if !(0..=3).contains(&level) {
                return Err(call_err(lua, "Invalid debug level.".into()));
            }
            let mut msg = String::new();
            for (i, v) in it.enumerate() {
                if i > 0 {
                    msg.push(' ');
                }
                if let Ok(Some(s)) = lua.coerce_string(v) {
                    msg.push_str(&s.to_string_lossy());
                }
            }
            let log = crate::server::log::warning;
            match level {
                0 => crate::server::log::debug(&msg),
                1 => crate::server::log::verbose(&msg),
                2 => crate::server::log::notice(&msg),
                _ => log(&msg),
            }
            Ok(())
        })?,
    )?;
    redis.set("LOG_DEBUG", 0)?;
    redis.set("LOG_VERBOSE", 1)?;
    redis.set("LOG_NOTICE", 2)?;
    redis.set("LOG_WARNING", 3)?;
    super::libs::register_redis_api(&lua, &redis)?;
    g.raw_set("redis", redis)?;
    super::libs::register(&lua, scope)?;
    super::bit::register(&lua, &g)?;
    // error_reply/status_reply, and the globals protection (7.0.15's texts).
    lua.load(
        r#"
redis.error_reply = function(e) return {err=e} end
redis.status_reply = function(s) return {ok=s} end
setmetatable(_G, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
})
"#,
    )
    .set_name("=init")
    .exec()?;
    // Everything reachable from the globals becomes read-only (Redis 7.0).
    super::libs::protect_globals(&lua)?;
    Ok(lua)
}

/// A `redis.call`-style error raised at the calling script line.
pub(super) fn call_err(lua: &Lua, msg: String) -> mlua::Error {
    let line = script_line(lua);
    mlua::Error::external(CallError {
        msg: format!("ERR {msg}"),
        line,
    })
}

/// The line of the innermost script frame (mlua's async glue adds frames of its own).
pub(super) fn script_line(lua: &Lua) -> i32 {
    for level in 0..32 {
        let Some(d) = lua.inspect_stack(level) else {
            break;
        };
        if matches!(
            d.source().source.as_deref(),
            Some("@user_script" | "@user_function")
        ) {
            return d.curr_line();
        }
    }
    1
}

/// Converts a Lua argument of redis.call to bytes (strings and numbers only).
///
/// Numbers are written with `%.17g`, as luaArgsToRedisArgv does (Lua's own `%.14g` loses precision).
fn arg_bytes(v: Value) -> Option<Bytes> {
    match v {
        Value::String(s) => Some(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Integer(n) => Some(Bytes::from(super::libs::fmt_g(n as f64, 17))),
        Value::Number(n) => Some(Bytes::from(super::libs::fmt_g(n, 17))),
        _ => None,
    }
}

/// `redis.call` (raise = true) and `redis.pcall`.
async fn call(lua: Lua, args: MultiValue, raise: bool) -> mlua::Result<Value> {
    let line = script_line(&lua);
    let fail = |lua: &Lua, msg: String| -> mlua::Result<Value> {
        if raise {
            Err(mlua::Error::external(CallError { msg, line }))
        } else {
            let t = lua.create_table()?;
            t.set("err", lua.create_string(msg)?)?;
            Ok(Value::Table(t))
        }
    };
    if args.is_empty() {
        return Err(mlua::Error::external(CallError {
            msg: "ERR Please specify at least one argument for this redis lib call".into(),
            line,
        }));
    }
    let mut argv = Vec::with_capacity(args.len());
    for v in args {
        match arg_bytes(v) {
            Some(b) => argv.push(b),
            None => {
                return Err(mlua::Error::external(CallError {
                    msg: "ERR Lua redis lib command arguments must be strings or integers".into(),
                    line,
                }))
            }
        }
    }
    let Some(run) = RUN.with(|r| r.borrow().clone()) else {
        return fail(&lua, "ERR no script is running".into());
    };
    if run.retry.get() {
        return Err(mlua::Error::external(Stop::Retry));
    }
    let av: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
    let cmd = match CommandTable::get().lookup(&av) {
        Lookup::Found(c) => c,
        Lookup::WrongArity(_) => {
            return fail(
                &lua,
                "ERR Wrong number of args calling Redis command from script".into(),
            )
        }
        _ => return fail(&lua, "ERR Unknown Redis command called from script".into()),
    };
    let flags = cmd.flags();
    if flags.contains(CmdFlags::NOSCRIPT) {
        return fail(
            &lua,
            "ERR This Redis command is not allowed from script".into(),
        );
    }
    let write = flags.contains(CmdFlags::WRITE);
    if write && run.read_only {
        return fail(
            &lua,
            "ERR Write commands are not allowed from read-only scripts.".into(),
        );
    }
    // Keys outside the declared ones (or the whole keyspace) under a keyed run.
    let db = run.ctx.client.info.borrow().db;
    let undeclared = match cmd.exec {
        Exec::Multi(_) if !flags.contains(CmdFlags::BLOCKING) => true,
        _ => cmd.key_positions(&av).iter().any(|&i| match &run.declared {
            Some(d) => !d.contains(&(db, argv[i].clone())),
            None => false,
        }),
    };
    if undeclared {
        run.undeclared.set(true);
        if run.declared.is_some() {
            // Its writes (if any) are rolled back by `attempt` (see `tx::UndoLog`).
            run.retry.set(true);
            return Err(mlua::Error::external(Stop::Retry));
        }
    }
    if write {
        run.wrote.set(true);
        if run.busy.get() {
            super::BUSY_WROTE.store(true, Ordering::Relaxed);
        }
    }
    // The command replies in the protocol the script chose (redis.setresp).
    let proto = super::libs::resp();
    run.ctx.client.info.borrow_mut().proto = proto;
    let mut out = ReplyBuf::new(proto);
    // Without REPL_AOF (redis.set_repl) the command's effects stay out of the AOF.
    let quiet = super::libs::repl_flags() & 1 == 0;
    let block = vec![(cmd, argv)];
    match &run.undo {
        Some(u) => {
            super::libs::Quiet::new(quiet, tx::run_block_undo(&run.ctx, block, &mut out, u)).await
        }
        None => super::libs::Quiet::new(quiet, tx::run_block(&run.ctx, block, &mut out)).await,
    };
    // run_block ends its own in_exec mark: the script still runs.
    run.ctx
        .core
        .tx
        .borrow_mut()
        .in_exec
        .insert(run.ctx.client.id);
    let mut pos = 0;
    let v = super::libs::resp_to_lua(&lua, &out.buf, &mut pos)?;
    if let Some(msg) = v.1 {
        return fail(&lua, msg);
    }
    Ok(v.0)
}

/// This core's Lua state (fresh after SCRIPT FLUSH).
fn engine_lua() -> mlua::Result<Lua> {
    let gen = super::GENERATION.load(Ordering::Relaxed);
    ENGINE.with(|e| {
        let mut e = e.borrow_mut();
        if e.as_ref().is_none_or(|x| x.gen != gen) {
            *e = Some(Engine {
                lua: new_state(super::libs::JsonScope::Eval)?,
                gen,
                loaded: HashSet::new(),
            });
        }
        Ok(e.as_ref().map(|x| x.lua.clone()).expect("just set"))
    })
}

/// Compiles `body` as function f_<sha> in this core's state; Err(reply text) on a syntax error.
fn function(lua: &Lua, sha: &str, body: &[u8]) -> Result<Function, String> {
    let name = format!("f_{sha}");
    let known = ENGINE.with(|e| e.borrow().as_ref().is_some_and(|x| x.loaded.contains(sha)));
    if known {
        if let Ok(Value::Function(f)) = lua.named_registry_value::<Value>(&name) {
            return Ok(f);
        }
    }
    let f = lua
        .load(body)
        .set_name("@user_script")
        .into_function()
        .map_err(|e| {
            let m = match &e {
                mlua::Error::SyntaxError { message, .. } => message.clone(),
                other => other.to_string(),
            };
            format!("ERR Error compiling script (new function): {m}")
        })?;
    let _ = lua.set_named_registry_value(&name, f.clone());
    ENGINE.with(|e| {
        if let Some(x) = e.borrow_mut().as_mut() {
            x.loaded.insert(sha.to_string());
        }
    });
    Ok(f)
}

/// Compiles a script for SCRIPT LOAD: Err(reply text) on a syntax error.
pub fn compile(sha: &str, body: &[u8]) -> Result<(), String> {
    let lua = engine_lua().map_err(|e| format!("ERR {e}"))?;
    function(&lua, sha, body).map(|_| ())
}

/// The outcome of one attempt.
enum Attempt {
    Done,
    Retry,
}

/// What runs: an EVAL body, or a function registered by a library (FCALL).
pub enum Body {
    /// EVAL/EVALSHA: the body and its sha; KEYS and ARGV are globals.
    Eval {
        /// Lowercase hex sha1 of the body.
        sha: String,
        /// The script.
        body: Bytes,
    },
    /// FCALL: the function's callback in the core's function state; keys and args are its arguments.
    Function {
        /// The callback.
        f: Function,
        /// Its state.
        lua: Lua,
        /// The function's name (error texts, FUNCTION STATS).
        name: String,
        /// Key of its lock shape (see [`Shape`]): changes when its library is replaced.
        shape: String,
        /// The FCALL command (FUNCTION STATS).
        argv: Vec<Bytes>,
    },
}

/// Runs script `sha` (its body known) with `keys` and `args` as EVAL does; the reply goes in `out`.
pub async fn run_script(
    ctx: MultiCtx,
    sha: String,
    body: Bytes,
    keys: Vec<Bytes>,
    args: Vec<Bytes>,
    read_only: bool,
    out: &mut ReplyBuf,
) {
    run_body(ctx, Body::Eval { sha, body }, keys, args, read_only, out).await
}

/// Runs an EVAL body or a function with `keys` and `args`; the reply goes in `out`.
pub async fn run_body(
    ctx: MultiCtx,
    body: Body,
    keys: Vec<Bytes>,
    args: Vec<Bytes>,
    read_only: bool,
    out: &mut ReplyBuf,
) {
    let (lua, f, sha, func) = match body {
        Body::Eval { sha, body } => {
            let lua = match engine_lua() {
                Ok(l) => l,
                Err(e) => return out.error(&format!("ERR {e}")),
            };
            let f = match function(&lua, &sha, &body) {
                Ok(f) => f,
                Err(e) => return out.error(&e),
            };
            (lua, f, sha, None)
        }
        Body::Function {
            f,
            lua,
            name,
            shape,
            argv,
        } => {
            static RUN_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let id = RUN_IDS.fetch_add(1, Ordering::Relaxed);
            (lua, f, shape, Some((name, argv, id)))
        }
    };
    let gate = GATE.with(|g| g.clone());
    let _turn = gate.lock().await;
    let passthrough = tx::in_exec(&ctx.core, ctx.client.id);
    let mut global = passthrough || super::shape(&sha) != Some(Shape::Keyed);
    loop {
        let sub = MultiCtx {
            core: ctx.core.clone(),
            client: ctx.client.clone(),
            cmd: ctx.cmd,
            argv: Vec::new(),
            db: ctx.db,
            proto: ctx.proto,
            now_ms: ctx.now_ms,
        };
        let fr = func.as_ref().map(|(name, argv, id)| FnRun {
            name: name.clone(),
            argv: argv.clone(),
            id: *id,
        });
        match attempt(
            &lua,
            &f,
            sub,
            &sha,
            fr,
            &keys,
            &args,
            read_only,
            global,
            passthrough,
            out,
        )
        .await
        {
            Attempt::Done => return,
            Attempt::Retry => {
                super::set_shape(&sha, Shape::Global);
                global = true;
            }
        }
    }
}

/// One run of a script under a transaction (global or on its declared keys).
#[allow(clippy::too_many_arguments)]
async fn attempt(
    lua: &Lua,
    f: &Function,
    ctx: MultiCtx,
    sha: &str,
    func: Option<FnRun>,
    keys: &[Bytes],
    args: &[Bytes],
    read_only: bool,
    global: bool,
    passthrough: bool,
    out: &mut ReplyBuf,
) -> Attempt {
    let mode = if read_only {
        Mode::Shared
    } else {
        Mode::Exclusive
    };
    let db = ctx.db;
    let mut t = Tx::with(ctx.core.clone(), db, passthrough);
    let declared = if global {
        t.global(mode);
        None
    } else {
        for k in keys {
            t.key(k, mode);
        }
        Some(keys.iter().map(|k| (db, k.clone())).collect::<HashSet<_>>())
    };
    let _ = shard_of_key;
    t.schedule().await;
    let (saved_db, saved_proto) = {
        let mut info = ctx.client.info.borrow_mut();
        let s = (info.db, info.proto);
        info.proto = Proto::Resp2;
        s
    };
    super::libs::begin_run();
    let was_in_exec = tx::in_exec(&ctx.core, ctx.client.id);
    ctx.core.tx.borrow_mut().in_exec.insert(ctx.client.id);
    let client_proto = ctx.proto;
    let core = ctx.core.clone();
    let client = ctx.client.clone();
    let undo = (declared.is_some() && !read_only).then(|| RefCell::new(tx::UndoLog::default()));
    let run = Rc::new(RunCtx {
        ctx,
        read_only,
        declared,
        wrote: Cell::new(false),
        undeclared: Cell::new(false),
        retry: Cell::new(false),
        undo,
        start: std::time::Instant::now(),
        busy: Cell::new(false),
        func,
        name: sha.to_string(),
    });
    RUN.with(|r| *r.borrow_mut() = Some(run.clone()));
    // Undone however the run ends, also when its connection goes away mid-script
    // (the future is dropped): a stale busy mark would answer BUSY to everyone.
    let _guard = Ended {
        run: run.clone(),
        saved: (saved_db, saved_proto),
        was_in_exec,
    };
    let is_fn = run.func.is_some();
    // EVAL sees KEYS and ARGV as globals; a function gets them as its two arguments.
    let set = || -> mlua::Result<(Table, Table)> {
        let kt = lua.create_sequence_from(keys.iter().map(|k| lua.create_string(k).ok()))?;
        let at = lua.create_sequence_from(args.iter().map(|a| lua.create_string(a).ok()))?;
        if !is_fn {
            super::libs::set_global(lua, "KEYS", Value::Table(kt.clone()))?;
            super::libs::set_global(lua, "ARGV", Value::Table(at.clone()))?;
        }
        Ok((kt, at))
    };
    // The script's coroutine, kept to read its frames if it dies of an error.
    let mut thread = None;
    let res = match set() {
        // Its own coroutine with the hook set on it (hooks are per Lua thread).
        Ok((kt, at)) => match lua.create_thread(f.clone()) {
            Ok(th) => {
                thread = Some(th.clone());
                th.set_hook(
                    mlua::HookTriggers::new().every_nth_instruction(10_000),
                    |lua, _| hook(lua),
                );
                if is_fn {
                    th.into_async::<Value>((kt, at)).await
                } else {
                    th.into_async::<Value>(()).await
                }
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    drop(_guard);
    let _ = (&core, &client);
    if run.retry.get() {
        // Undone under the run's locks, then released without an AOF part:
        // the global rerun does (and logs) the script's work once.
        if let Some(u) = &run.undo {
            let undo = std::mem::take(&mut *u.borrow_mut());
            if run.wrote.get() || !undo.is_empty() {
                tx::rollback(&t, undo).await;
            }
        }
        t.abandon().await;
        return Attempt::Retry;
    }
    t.conclude().await;
    let mut reply = ReplyBuf::new(client_proto);
    let outcome = match res {
        Ok(v) => {
            super::libs::lua_to_resp(&v, &mut reply, super::libs::resp(), 0);
            Attempt::Done
        }
        Err(e) => {
            if find::<Stop>(&e) == Some(&Stop::ShuttingDown) {
                return Attempt::Done;
            }
            let line = thread.as_ref().and_then(|th| error_line(lua, th));
            match &run.func {
                Some(f) => reply.error(&error_text(&e, &f.name, "user_function", line)),
                None => reply.error(&error_text(&e, sha, "user_script", line)),
            }
            Attempt::Done
        }
    };
    if global && !passthrough && !run.undeclared.get() && super::shape(sha).is_none() {
        super::set_shape(sha, Shape::Keyed);
    } else if run.undeclared.get() {
        super::set_shape(sha, Shape::Global);
    }
    out.raw(&reply.buf);
    outcome
}

/// Finds an external error of type `T` inside `e` (through callback wrappers).
pub(super) fn find<T: std::error::Error + 'static>(e: &mlua::Error) -> Option<&T> {
    match e {
        mlua::Error::ExternalError(x) => x.downcast_ref::<T>(),
        mlua::Error::CallbackError { cause, .. } => find(cause),
        mlua::Error::WithContext { cause, .. } => find(cause),
        _ => None,
    }
}

/// The line of the innermost script frame of `th`, a coroutine that died of an
/// error: Lua 5.1 leaves a dead coroutine's frames in place, so this is the line
/// Redis's error handler reads at raise time (the raising function's caller when
/// it is a C function such as rawset, whose errors carry no position).
fn error_line(lua: &Lua, th: &mlua::Thread) -> Option<i32> {
    // SAFETY: exec_raw pushes the thread (index -1) and runs the closure in
    // protected mode; lua_tothread returns that live coroutine. lua_Debug is
    // plain data (ints and pointers), so all-zero is a valid value;
    // lua_getstack/lua_getinfo fill it for existing levels only, and `source`
    // then points to a NUL-terminated string interned in (and kept alive by)
    // the state (and `th` keeps the coroutine alive). One integer is pushed,
    // within the slots exec_raw checked, and replaces the thread.
    let line = unsafe {
        lua.exec_raw::<i32>(th, |l| {
            let co = ffi::lua_tothread(l, -1);
            let mut ar: ffi::lua_Debug = std::mem::zeroed();
            let mut line = 0;
            let mut level = 0;
            while !co.is_null() && ffi::lua_getstack(co, level, &mut ar) != 0 {
                if ffi::lua_getinfo(co, c"Sl".as_ptr(), &mut ar) != 0 && !ar.source.is_null() {
                    let src = std::ffi::CStr::from_ptr(ar.source).to_bytes();
                    if src == b"@user_script" || src == b"@user_function" {
                        line = ar.currentline;
                        break;
                    }
                }
                level += 1;
            }
            // The line replaces the thread: exec_raw returns what is left above its start.
            ffi::lua_pushinteger(l, line as ffi::lua_Integer);
            ffi::lua_replace(l, -2);
        })
    };
    line.ok().filter(|&n| n > 0)
}

/// The reply text of a failed script, as Redis 7.0 formats it (`chunk`:
/// user_script or user_function; `at`: the line where it failed, when known).
fn error_text(e: &mlua::Error, sha: &str, chunk: &str, at: Option<i32>) -> String {
    if let Some(c) = find::<CallError>(e) {
        return format!("{} script: {sha}, on @{chunk}:{}.", c.msg, c.line);
    }
    let msg = match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => return error_text(cause, sha, chunk, at),
        other => other.to_string(),
    };
    // Only the message's first line (mlua may append a traceback).
    let msg = msg.lines().next().unwrap_or("").to_string();
    let line = at.or_else(|| {
        msg.strip_prefix(chunk)
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse::<i32>().ok())
    });
    let line = line.unwrap_or(1);
    format!("ERR {msg} script: {sha}, on @{chunk}:{line}.")
}

/// Reads a table field (unused helper kept private to this module).
#[allow(dead_code)]
fn field(t: &Table, k: &str) -> Option<Value> {
    t.raw_get(k).ok()
}
