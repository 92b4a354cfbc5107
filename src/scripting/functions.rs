//! Redis 7.0 Functions: the library registry, loading a library (`#!lua name=...`
//! and `redis.register_function`), and each core's compiled copy.
//!
//! * The registry (library name → code and registered functions) is global
//!   state, one immutable snapshot behind a mutex, replaced whole by FUNCTION
//!   LOAD/DELETE/FLUSH/RESTORE, RDB and AOF loading. A change bumps
//!   [`GENERATION`] before the command replies, so every core sees it on its
//!   next FCALL.
//! * Each core keeps its own Lua state for functions (separate from EVAL's,
//!   as in Redis), rebuilt from the registry's code when the generation
//!   moved; FCALL checks one atomic on the fast path and locks nothing.
//! * Loading follows function_lua.c: the library runs once with only
//!   `redis.register_function`, `redis.log`, `redis.LOG_*` and the version
//!   fields reachable, its registered callbacks later run with the full API.
//!   All libraries share one read-only global table whose metatable's
//!   `__index` is switched between the load API and the runtime globals.
//! * Running a function reuses EVAL's machinery (`lua::run_body`): the
//!   cross-shard transaction, BUSY, KILL and the error texts.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{Function, Lua, MultiValue, Table, Value};

use super::lua::{self, CallError};

/// Script flags (scripts_flags_def, in Redis's order).
pub mod flags {
    /// The function never writes (FCALL_RO may run it).
    pub const NO_WRITES: u8 = 1;
    /// May run when over maxmemory.
    pub const ALLOW_OOM: u8 = 2;
    /// May run on a stale replica.
    pub const ALLOW_STALE: u8 = 4;
    /// Refused in cluster mode.
    pub const NO_CLUSTER: u8 = 8;
    /// May touch keys of several slots.
    pub const ALLOW_CROSS_SLOT_KEYS: u8 = 16;
    /// Names and bits, in the order FUNCTION LIST shows them.
    pub const NAMES: [(&str, u8); 5] = [
        ("no-writes", NO_WRITES),
        ("allow-oom", ALLOW_OOM),
        ("allow-stale", ALLOW_STALE),
        ("no-cluster", NO_CLUSTER),
        ("allow-cross-slot-keys", ALLOW_CROSS_SLOT_KEYS),
    ];
}

/// One registered function's metadata.
#[derive(Clone, Debug)]
pub struct FnInfo {
    /// Its name, as registered.
    pub name: String,
    /// Its description, when given.
    pub desc: Option<Bytes>,
    /// [`flags`] bits.
    pub flags: u8,
}

/// A loaded library.
#[derive(Debug)]
pub struct Library {
    /// Its name (from the shebang).
    pub name: String,
    /// The whole payload given to FUNCTION LOAD, shebang included (what RDB, AOF and DUMP hold).
    pub code: Bytes,
    /// Its functions, in registration order.
    pub functions: Vec<FnInfo>,
}

/// Every library and, by lowercase name, the library of every function.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// Libraries by name.
    pub libs: BTreeMap<String, Arc<Library>>,
    /// Lowercase function name → library name (functions are found case-insensitively, as Redis).
    funcs: HashMap<String, String>,
}

impl Registry {
    /// Number of functions.
    pub fn function_count(&self) -> usize {
        self.funcs.len()
    }

    fn link(&mut self, lib: Arc<Library>) {
        for f in &lib.functions {
            // As dictAdd: a second name equal but for case is not linked.
            self.funcs
                .entry(f.name.to_ascii_lowercase())
                .or_insert_with(|| lib.name.clone());
        }
        self.libs.insert(lib.name.clone(), lib);
    }

    fn unlink(&mut self, name: &str) -> Option<Arc<Library>> {
        let lib = self.libs.remove(name)?;
        self.funcs.retain(|_, l| l != name);
        Some(lib)
    }

    /// A function name already taken by a library other than `except`.
    fn collision(&self, lib: &Library, except: Option<&str>) -> Option<String> {
        lib.functions.iter().find_map(|f| {
            let owner = self.funcs.get(&f.name.to_ascii_lowercase())?;
            (Some(owner.as_str()) != except).then(|| f.name.clone())
        })
    }
}

/// The registry (None until the first change).
static REGISTRY: Mutex<Option<Arc<Registry>>> = Mutex::new(None);

/// Bumped by every registry change: cores rebuild their function state.
pub static GENERATION: AtomicU64 = AtomicU64::new(1);

/// FUNCTION LOAD's time limit for running a library's top level.
const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// The current registry.
pub fn current() -> Arc<Registry> {
    let g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    g.clone().unwrap_or_default()
}

/// The current registry and its generation, read together.
fn current_with_gen() -> (Arc<Registry>, u64) {
    let g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    (
        g.clone().unwrap_or_default(),
        GENERATION.load(Ordering::SeqCst),
    )
}

/// Applies `f` to a copy of the registry and installs it when `f` succeeds.
fn update<T>(f: impl FnOnce(&mut Registry) -> Result<T, String>) -> Result<T, String> {
    let mut g = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = g.as_deref().cloned().unwrap_or_default();
    let out = f(&mut r)?;
    *g = Some(Arc::new(r));
    GENERATION.fetch_add(1, Ordering::SeqCst);
    Ok(out)
}

// ---------------------------------------------------------------------------
// Library metadata and loading
// ---------------------------------------------------------------------------

/// True for a valid library or function name: `[A-Za-z0-9_]+`.
fn valid_name(n: &[u8]) -> bool {
    !n.is_empty() && n.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The error for a bad name (Redis uses the library text for functions too).
const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// The shebang's engine and library name, and where the code after it starts
/// (at the shebang's newline, so that line numbers count the shebang).
fn metadata(code: &[u8]) -> Result<(String, String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(nl) = memchr::memchr(b'\n', code) else {
        return Err("Invalid library metadata".into());
    };
    let parts = match crate::config::split_args(&code[..nl]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid library metadata".into()),
    };
    let engine = String::from_utf8_lossy(parts[0].get(2..).unwrap_or(b"")).into_owned();
    let mut name: Option<String> = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(String::from_utf8_lossy(&p[5..]).into_owned());
            continue;
        }
        return Err(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(p)
        ));
    }
    let name = name.ok_or("Library name was not given")?;
    Ok((engine, name, nl))
}

/// A function registered while a library loads.
struct Registered {
    info: FnInfo,
    f: Function,
}

thread_local! {
    /// The functions registered by the library loading on this thread (None: not loading).
    static LOADING: RefCell<Option<Vec<Registered>>> = const { RefCell::new(None) };
}

/// A state for functions: the shared global table and its switchable metatable.
struct FnState {
    lua: Lua,
    /// The global table of every library's code.
    env: Table,
    /// Its metatable (`__index` switched between `load_api` and the runtime globals).
    meta: Table,
    /// What a library sees while it loads.
    load_api: Table,
    /// The runtime globals.
    globals: Table,
}

/// A `redis.register_function` error: Redis's text, no script position.
fn reg_err(lua: &Lua, msg: &str) -> mlua::Error {
    mlua::Error::external(CallError {
        msg: format!("ERR {msg}"),
        line: lua::script_line(lua),
    })
}

/// A Lua string or number as bytes (luaGetStringSds: lua_isstring).
fn lua_str(lua: &Lua, v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => lua
            .coerce_string(v.clone())
            .ok()
            .flatten()
            .map(|s| s.as_bytes().to_vec()),
        _ => None,
    }
}

/// `redis.register_function(name, callback)` or `redis.register_function{...}`.
fn register_function(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    if LOADING.with(|l| l.borrow().is_none()) {
        return Err(reg_err(
            lua,
            "redis.register_function can only be called on FUNCTION LOAD command",
        ));
    }
    if args.is_empty() || args.len() > 2 {
        return Err(reg_err(
            lua,
            "wrong number of arguments to redis.register_function",
        ));
    }
    let mut it = args.into_iter();
    let first = it.next().unwrap_or(Value::Nil);
    let (name, desc, f, fl) = if let Some(second) = it.next() {
        let Some(name) = lua_str(lua, &first) else {
            return Err(reg_err(
                lua,
                "first argument to redis.register_function must be a string",
            ));
        };
        let Value::Function(f) = second else {
            return Err(reg_err(
                lua,
                "second argument to redis.register_function must be a function",
            ));
        };
        (name, None, f, 0u8)
    } else {
        let Value::Table(t) = first else {
            return Err(reg_err(lua, "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."));
        };
        let (mut name, mut desc, mut cb, mut fl) = (None, None, None, 0u8);
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            let Some(k) = lua_str(lua, &k) else {
                return Err(reg_err(
                    lua,
                    "named argument key given to redis.register_function is not a string",
                ));
            };
            let k = String::from_utf8_lossy(&k).to_ascii_lowercase();
            match k.as_str() {
                "function_name" => match lua_str(lua, &v) {
                    Some(n) => name = Some(n),
                    None => return Err(reg_err(
                        lua,
                        "function_name argument given to redis.register_function must be a string",
                    )),
                },
                "description" => match lua_str(lua, &v) {
                    Some(d) => desc = Some(Bytes::from(d)),
                    None => return Err(reg_err(
                        lua,
                        "description argument given to redis.register_function must be a string",
                    )),
                },
                "callback" => {
                    match v {
                        Value::Function(f) => cb = Some(f),
                        _ => return Err(reg_err(
                            lua,
                            "callback argument given to redis.register_function must be a function",
                        )),
                    }
                }
                "flags" => {
                    let Value::Table(ft) = v else {
                        return Err(reg_err(lua, "flags argument to redis.register_function must be a table representing function flags"));
                    };
                    fl = read_flags(lua, &ft).ok_or_else(|| reg_err(lua, "unknown flag given"))?;
                }
                _ => {
                    return Err(reg_err(
                        lua,
                        "unknown argument given to redis.register_function",
                    ))
                }
            }
        }
        let Some(name) = name else {
            return Err(reg_err(
                lua,
                "redis.register_function must get a function name argument",
            ));
        };
        let Some(cb) = cb else {
            return Err(reg_err(
                lua,
                "redis.register_function must get a callback argument",
            ));
        };
        (name, desc, cb, fl)
    };
    if !valid_name(&name) {
        return Err(reg_err(lua, BAD_NAME));
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    LOADING.with(|l| {
        let mut l = l.borrow_mut();
        let list = l.as_mut().expect("checked above");
        if list.iter().any(|r| r.info.name == name) {
            return Err(reg_err(lua, "Function already exists in the library"));
        }
        list.push(Registered {
            info: FnInfo {
                name,
                desc,
                flags: fl,
            },
            f,
        });
        Ok(())
    })
}

/// The flags of a `flags={...}` table; None on an unknown one.
fn read_flags(lua: &Lua, t: &Table) -> Option<u8> {
    let mut fl = 0u8;
    let mut i = 1;
    loop {
        let v: Value = t.raw_get(i).ok()?;
        if v.is_nil() {
            return Some(fl);
        }
        let s = lua_str(lua, &v)?;
        let (_, bit) = flags::NAMES
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(&s))?;
        fl |= bit;
        i += 1;
    }
}

impl FnState {
    /// A fresh state with the load API and the runtime globals set up.
    fn new() -> mlua::Result<FnState> {
        let lua = lua::new_state(super::libs::JsonScope::Functions)?;
        let reg = lua.create_function(register_function)?;
        let (env, meta, load_api): (Table, Table, Table) = lua
            .load(
                r#"
local register, ver, vernum = ...
local function protect(t)
  return setmetatable(t, {
    __index = function(_, k)
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end,
    __newindex = function() error("Attempt to modify a readonly table", 2) end,
  })
end
local r = redis
local lr = {
  register_function = register, log = r.log,
  LOG_DEBUG = r.LOG_DEBUG, LOG_VERBOSE = r.LOG_VERBOSE,
  LOG_NOTICE = r.LOG_NOTICE, LOG_WARNING = r.LOG_WARNING,
  REDIS_VERSION = ver, REDIS_VERSION_NUM = vernum,
}
local api = protect({redis = protect(lr)})
local meta = {
  __index = _G,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
}
return setmetatable({}, meta), meta, api
"#,
            )
            .set_name("=functions_init")
            .call((reg, crate::REDIS_VERSION, version_num()))?;
        let globals = lua.globals();
        Ok(FnState {
            lua,
            env,
            meta,
            load_api,
            globals,
        })
    }

    /// Runs a library's code (after the shebang) so that it registers its
    /// functions; Err(reply text without "ERR ") as functionsCreateWithLibraryCtx.
    fn load(&self, body: &[u8], timeout: Option<Duration>) -> Result<Vec<Registered>, String> {
        let lua = &self.lua;
        let f = lua
            .load(body)
            .set_name("@user_function")
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                let m = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!("Error compiling function: {m}")
            })?;
        self.meta
            .raw_set("__index", self.load_api.clone())
            .map_err(|e| e.to_string())?;
        LOADING.with(|l| *l.borrow_mut() = Some(Vec::new()));
        let res = (|| -> mlua::Result<()> {
            let th = lua.create_thread(f)?;
            if let Some(limit) = timeout {
                let start = Instant::now();
                th.set_hook(
                    mlua::HookTriggers::new().every_nth_instruction(100_000),
                    move |lua, _| {
                        if start.elapsed() > limit {
                            Err(reg_err(lua, "FUNCTION LOAD timeout"))
                        } else {
                            Ok(mlua::VmState::Continue)
                        }
                    },
                );
            }
            th.resume::<()>(())
        })();
        let registered = LOADING.with(|l| l.borrow_mut().take()).unwrap_or_default();
        let _ = self.meta.raw_set("__index", self.globals.clone());
        match res {
            Ok(()) => Ok(registered),
            Err(e) => Err(format!("Error registering functions: {}", load_error(&e))),
        }
    }
}

/// The text of an error raised while a library's top level ran ("ERR ..." like Redis).
fn load_error(e: &mlua::Error) -> String {
    if let Some(c) = lua::find::<CallError>(e) {
        return c.msg.clone();
    }
    match e {
        mlua::Error::CallbackError { cause, .. } => load_error(cause),
        mlua::Error::RuntimeError(m) => format!("ERR {}", m.lines().next().unwrap_or("")),
        other => format!("ERR {}", other.to_string().lines().next().unwrap_or("")),
    }
}

/// REDIS_VERSION_NUM: 0x00MMmmpp.
fn version_num() -> i64 {
    let mut p = crate::REDIS_VERSION
        .split('.')
        .map(|x| x.parse::<i64>().unwrap_or(0));
    let (a, b, c) = (
        p.next().unwrap_or(0),
        p.next().unwrap_or(0),
        p.next().unwrap_or(0),
    );
    (a << 16) | (b << 8) | c
}

/// Compiles and runs a library payload in a scratch state: its name and functions.
/// Err is the reply text (with "ERR ").
fn build(code: &Bytes, timeout: Option<Duration>) -> Result<Library, String> {
    let (engine, name, at) = metadata(code).map_err(|e| format!("ERR {e}"))?;
    if !valid_name(name.as_bytes()) {
        return Err(format!("ERR {BAD_NAME}"));
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    let st = FnState::new().map_err(|e| format!("ERR {e}"))?;
    let regs = st
        .load(&code[at..], timeout)
        .map_err(|e| format!("ERR {e}"))?;
    Ok(Library {
        name,
        code: code.clone(),
        functions: regs.into_iter().map(|r| r.info).collect(),
    })
}

/// Adds `lib` to `r` as functionsCreateWithLibraryCtx does (checks in its order).
fn add(r: &mut Registry, lib: Library, replace: bool) -> Result<String, String> {
    let exists = r.libs.contains_key(&lib.name);
    if exists && !replace {
        return Err(format!("ERR Library '{}' already exists", lib.name));
    }
    if lib.functions.is_empty() {
        return Err("ERR No functions registered".into());
    }
    let except = exists.then_some(lib.name.as_str());
    if let Some(f) = r.collision(&lib, except) {
        return Err(format!("ERR Function {f} already exists"));
    }
    r.unlink(&lib.name);
    let name = lib.name.clone();
    r.link(Arc::new(lib));
    Ok(name)
}

/// FUNCTION LOAD [REPLACE] code: the library's name, or the error reply text.
pub fn load(code: Bytes, replace: bool, timeout: bool) -> Result<String, String> {
    // Metadata and existence are checked before compiling, as Redis.
    let (engine, name, _) = metadata(&code).map_err(|e| format!("ERR {e}"))?;
    if !valid_name(name.as_bytes()) {
        return Err(format!("ERR {BAD_NAME}"));
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    if !replace && current().libs.contains_key(&name) {
        return Err(format!("ERR Library '{name}' already exists"));
    }
    let lib = build(&code, timeout.then_some(LOAD_TIMEOUT))?;
    update(|r| add(r, lib, replace))
}

/// FUNCTION DELETE name.
pub fn delete(name: &[u8]) -> Result<(), String> {
    let name = String::from_utf8_lossy(name).into_owned();
    update(|r| {
        r.unlink(&name)
            .map(|_| ())
            .ok_or_else(|| "ERR Library not found".to_string())
    })
}

/// FUNCTION FLUSH: forgets every library.
pub fn flush() {
    let _ = update(|r| {
        *r = Registry::default();
        Ok(())
    });
}

/// How FUNCTION RESTORE treats existing libraries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Drop them all first.
    Flush,
    /// Add; abort on a collision.
    Append,
    /// Add; replace libraries of the same name.
    Replace,
}

/// Installs libraries (FUNCTION RESTORE, RDB load): all or none.
pub fn restore(codes: &[Bytes], policy: Policy) -> Result<(), String> {
    // First into an empty registry: duplicates inside the payload fail there.
    let mut fresh = Registry::default();
    for c in codes {
        let lib = build(c, None)?;
        add(&mut fresh, lib, false)?;
    }
    update(|r| {
        if policy == Policy::Flush {
            *r = fresh;
            return Ok(());
        }
        let mut next = r.clone();
        for name in fresh.libs.keys() {
            if next.libs.contains_key(name) {
                if policy == Policy::Append {
                    return Err(format!("ERR Library {name} already exists"));
                }
                next.unlink(name);
            }
        }
        for lib in fresh.libs.values() {
            if let Some(f) = next.collision(lib, None) {
                return Err(format!("ERR Function {f} already exists"));
            }
        }
        for lib in fresh.libs.into_values() {
            next.link(lib);
        }
        *r = next;
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// The payload format (FUNCTION DUMP/RESTORE, RDB)
// ---------------------------------------------------------------------------

/// Appends every library as RDB_OPCODE_FUNCTION2 + its code (rdbSaveFunctions).
pub fn save_rdb(r: &Registry, out: &mut Vec<u8>, opts: crate::persistence::rdb::SaveOpts) {
    for lib in r.libs.values() {
        out.push(crate::persistence::rdb::op::FUNCTION2);
        crate::persistence::rdb::save_string(out, &lib.code, opts);
    }
}

/// FUNCTION DUMP's payload: the libraries, RDB version (2 bytes LE), CRC-64.
pub fn dump(opts: crate::persistence::rdb::SaveOpts) -> Vec<u8> {
    let mut out = Vec::new();
    save_rdb(&current(), &mut out, opts);
    let v = crate::persistence::rdb::RDB_VERSION as u16;
    out.extend_from_slice(&v.to_le_bytes());
    let crc = crate::persistence::crc64::crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The library codes of a FUNCTION RESTORE payload; Err is the reply text.
pub fn parse_dump(p: &[u8]) -> Result<Vec<Bytes>, String> {
    const BAD: &str = "ERR DUMP payload version or checksum are wrong";
    if p.len() < 10 {
        return Err(BAD.into());
    }
    let n = p.len();
    let ver = u16::from_le_bytes([p[n - 10], p[n - 9]]);
    if ver as u32 > crate::persistence::rdb::RDB_VERSION {
        return Err(BAD.into());
    }
    let crc = u64::from_le_bytes(p[n - 8..].try_into().expect("8 bytes"));
    if crate::persistence::crc64::crc64(0, &p[..n - 8]) != crc {
        return Err(BAD.into());
    }
    let body = &p[..n - 10];
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < body.len() {
        let t = body[pos];
        pos += 1;
        if t == crate::persistence::rdb::op::FUNCTION_PRE_GA {
            return Err("ERR Pre-GA function format not supported".into());
        }
        if t != crate::persistence::rdb::op::FUNCTION2 {
            return Err("ERR given type is not a function".into());
        }
        let (s, next) = crate::persistence::rdb::load_string_at(body, pos)
            .map_err(|_| "ERR Failed loading library payload".to_string())?;
        pos = next;
        out.push(Bytes::from(s));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// This core's compiled functions
// ---------------------------------------------------------------------------

/// A function ready to run on this core.
#[derive(Clone)]
pub struct Callable {
    /// The callback.
    pub f: Function,
    /// The core's function state.
    pub lua: Lua,
    /// Its registered name.
    pub name: String,
    /// [`flags`] bits.
    pub flags: u8,
    /// Lock-shape key: the library's code sha and the function's name.
    pub shape: String,
}

/// This core's function state and its functions by lowercase name.
struct Engine {
    gen: u64,
    _st: FnState,
    funcs: HashMap<String, Callable>,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// The function `name` (case-insensitive) on this core, rebuilding the core's
/// state first when the registry changed.
pub fn lookup(name: &[u8]) -> Option<Callable> {
    let gen = GENERATION.load(Ordering::SeqCst);
    let stale = ENGINE.with(|e| e.borrow().as_ref().is_none_or(|x| x.gen != gen));
    if stale {
        let (reg, gen) = current_with_gen();
        match rebuild(&reg, gen) {
            Ok(eng) => ENGINE.with(|e| *e.borrow_mut() = Some(eng)),
            Err(e) => {
                crate::server::log::warning(&format!("cannot build the function state: {e}"));
                return None;
            }
        }
    }
    let key = String::from_utf8_lossy(name).to_ascii_lowercase();
    ENGINE.with(|e| e.borrow().as_ref().and_then(|x| x.funcs.get(&key).cloned()))
}

/// A core's function state with every library of `reg` loaded.
fn rebuild(reg: &Registry, gen: u64) -> Result<Engine, String> {
    let st = FnState::new().map_err(|e| e.to_string())?;
    let mut funcs = HashMap::new();
    for lib in reg.libs.values() {
        let (_, _, at) = metadata(&lib.code)?;
        let sha = super::sha1hex(&lib.code);
        for r in st.load(&lib.code[at..], None)? {
            funcs
                .entry(r.info.name.to_ascii_lowercase())
                .or_insert_with(|| Callable {
                    shape: format!("fn:{sha}:{}", r.info.name),
                    f: r.f,
                    lua: st.lua.clone(),
                    name: r.info.name,
                    flags: r.info.flags,
                });
        }
    }
    Ok(Engine {
        gen,
        _st: st,
        funcs,
    })
}

// ---------------------------------------------------------------------------
// Busy functions (FUNCTION STATS)
// ---------------------------------------------------------------------------

/// A function past busy-reply-threshold.
#[derive(Clone, Debug)]
pub struct BusyFn {
    /// Run id.
    pub id: u64,
    /// Function name.
    pub name: String,
    /// The FCALL command.
    pub argv: Vec<Bytes>,
    /// When it started.
    pub start: Instant,
}

/// Busy functions now.
static BUSY_FNS: Mutex<Vec<BusyFn>> = Mutex::new(Vec::new());

/// A function became busy.
pub(super) fn busy_started(f: &lua::FnRun, start: Instant) {
    BUSY_FNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(BusyFn {
            id: f.id,
            name: f.name.clone(),
            argv: f.argv.clone(),
            start,
        });
}

/// A busy function ended.
pub(super) fn busy_ended(id: u64) {
    BUSY_FNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|b| b.id != id);
}

/// The busy function that started first, if any (FUNCTION STATS running_script).
pub fn busy_function() -> Option<BusyFn> {
    BUSY_FNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .min_by_key(|b| b.start)
        .cloned()
}

// ---------------------------------------------------------------------------
// AOF replay
// ---------------------------------------------------------------------------

/// Applies a logged FUNCTION command (AOF replay); true when it took effect.
pub fn replay(argv: &[Bytes]) -> bool {
    let sub = argv
        .get(1)
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    match (sub.as_slice(), argv.len()) {
        (b"load", 3) => load(argv[2].clone(), false, false).is_ok(),
        (b"load", 4) if argv[2].eq_ignore_ascii_case(b"replace") => {
            load(argv[3].clone(), true, false).is_ok()
        }
        (b"delete", 3) => delete(&argv[2]).is_ok(),
        (b"flush", 2 | 3) => {
            flush();
            true
        }
        (b"restore", 3 | 4) => {
            let policy = match argv.get(3).map(|p| p.to_ascii_lowercase()) {
                Some(p) if p == b"flush" => Policy::Flush,
                Some(p) if p == b"replace" => Policy::Replace,
                _ => Policy::Append,
            };
            parse_dump(&argv[2])
                .and_then(|c| restore(&c, policy))
                .is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_metadata() {
        assert_eq!(
            metadata(b"#!lua name=a\nx").unwrap(),
            ("lua".into(), "a".into(), 12)
        );
        assert_eq!(metadata(b"lua\nx").unwrap_err(), "Missing library metadata");
        assert_eq!(
            metadata(b"#!lua name=a").unwrap_err(),
            "Invalid library metadata"
        );
        assert_eq!(
            metadata(b"#!lua\nx").unwrap_err(),
            "Library name was not given"
        );
        assert_eq!(
            metadata(b"#!lua name=a foo=b\nx").unwrap_err(),
            "Invalid metadata value given: foo=b"
        );
        assert_eq!(
            metadata(b"#!lua name=a NAME=b\nx").unwrap_err(),
            "Invalid metadata value, name argument was given multiple times"
        );
    }

    #[test]
    fn build_registers_functions_with_flags() {
        let code = Bytes::from_static(
            b"#!lua name=l\nredis.register_function('a', function() return 1 end)\nredis.register_function{function_name='b', callback=function() end, flags={'no-writes', 'ALLOW-OOM'}, description='d'}",
        );
        let lib = build(&code, None).unwrap();
        assert_eq!(lib.name, "l");
        assert_eq!(lib.functions.len(), 2);
        assert_eq!(lib.functions[1].flags, flags::NO_WRITES | flags::ALLOW_OOM);
        assert_eq!(lib.functions[1].desc.as_deref(), Some(&b"d"[..]));
    }

    #[test]
    fn load_errors_match_redis() {
        let e = |c: &str| build(&Bytes::from(c.to_string()), None).unwrap_err();
        assert_eq!(
            e("#!lua name=l\nredis.register_function('f', 5)"),
            "ERR Error registering functions: ERR second argument to redis.register_function must be a function"
        );
        assert_eq!(
            e("#!lua name=l\nx = 1"),
            "ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table"
        );
        assert_eq!(
            e("#!lua name=l\nlocal x = string.len('a')"),
            "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'string'"
        );
        assert_eq!(e("#!lux name=l\nx"), "ERR Engine 'lux' not found");
    }

    #[test]
    fn dump_round_trip() {
        let opts = crate::persistence::rdb::SaveOpts { compression: true };
        let mut r = Registry::default();
        let lib = build(
            &Bytes::from_static(
                b"#!lua name=l\nredis.register_function('a', function() return 1 end)",
            ),
            None,
        )
        .unwrap();
        add(&mut r, lib, false).unwrap();
        let mut out = Vec::new();
        save_rdb(&r, &mut out, opts);
        out.extend_from_slice(&10u16.to_le_bytes());
        let crc = crate::persistence::crc64::crc64(0, &out);
        out.extend_from_slice(&crc.to_le_bytes());
        let codes = parse_dump(&out).unwrap();
        assert_eq!(codes.len(), 1);
        assert_eq!(codes[0], r.libs["l"].code);
        out[0] ^= 1;
        assert!(parse_dump(&out).is_err());
    }
}
