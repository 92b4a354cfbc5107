//! Redis 7.0's Lua libraries beyond the standard ones, written in Rust against
//! the behaviour of the C code Redis bundles: `cjson` (lua-cjson 2.1.0),
//! `cmsgpack` (lua-cmsgpack 0.4.0) and `struct` (Roberto Ierusalimschy's
//! struct.c); the `redis.*` additions (setresp, set_repl, replicate_commands,
//! breakpoint, debug, REDIS_VERSION); RESP2/RESP3 ↔ Lua conversions; and the
//! read-only sandbox (Redis's `lua_enablereadonlytable`, which our vendored
//! Lua 5.1 carries as a patch: vendor/lua-src/percore-readonly.patch).
//!
//! Error texts follow the C libraries: `luaL_error` prefixes the calling Lua
//! position (`user_script:3: `), `luaL_argerror` names the function as the
//! call site spells it.

use std::cell::{Cell, RefCell};
use std::os::raw::c_int;
use std::rc::Rc;

use mlua::{ffi, Lua, MultiValue, Table, Value};

use crate::protocol::reply::{Proto, ReplyBuf};

// ---------------------------------------------------------------------------
// Read-only tables (the VM patch) and the sandbox
// ---------------------------------------------------------------------------

extern "C-unwind" {
    /// Marks (or unmarks) the table at `idx` read-only (our Lua 5.1 patch).
    fn lua_enablereadonlytable(l: *mut ffi::lua_State, idx: c_int, enabled: c_int);
    /// True when the table at `idx` is read-only (our Lua 5.1 patch).
    fn lua_isreadonlytable(l: *mut ffi::lua_State, idx: c_int) -> c_int;
}

/// Marks the table on top of the stack and every table reachable from it
/// (values and metatables) read-only, as Redis's luaSetTableProtectionRecursively.
///
/// # Safety
/// `l` is a valid state with a table on top and at least 2 free slots checked here.
unsafe fn protect_top(l: *mut ffi::lua_State) {
    if lua_isreadonlytable(l, -1) != 0 {
        return;
    }
    lua_enablereadonlytable(l, -1, 1);
    ffi::lua_checkstack(l, 2);
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
            protect_top(l);
        }
        ffi::lua_pop(l, 1);
    }
    if ffi::lua_getmetatable(l, -1) != 0 {
        protect_top(l);
        ffi::lua_pop(l, 1);
    }
}

/// Locks the globals and everything reachable from them (end of Redis's scriptingInit).
pub fn protect_globals(lua: &Lua) -> mlua::Result<()> {
    // SAFETY: exec_raw runs the closure in protected mode on this state with
    // the globals table pushed as its only argument (index -1); protect_top
    // only reads tables and sets our read-only flag, and balances the stack.
    unsafe { lua.exec_raw::<()>(lua.globals(), |l| protect_top(l)) }
}

/// Sets global `name` while the globals stay locked for the script (KEYS and ARGV, as Redis's
/// luaSetGlobalArray opens and closes the protection around lua_setglobal).
pub fn set_global(lua: &Lua, name: &str, v: Value) -> mlua::Result<()> {
    // SAFETY: exec_raw pushes `name` and `v` (indexes 1 and 2) and runs the
    // closure in protected mode; LUA_GLOBALSINDEX is always a table; rawset
    // pops both; the flag is restored before returning.
    unsafe {
        lua.exec_raw::<()>((name, v), |l| {
            lua_enablereadonlytable(l, ffi::LUA_GLOBALSINDEX, 0);
            ffi::lua_rawset(l, ffi::LUA_GLOBALSINDEX);
            lua_enablereadonlytable(l, ffi::LUA_GLOBALSINDEX, 1);
        })
    }
}

// ---------------------------------------------------------------------------
// Library functions that raise string errors
// ---------------------------------------------------------------------------

/// The C function scripts see for a library function: it calls the Rust
/// implementation (upvalue 1), which returns `true, results...` or `false,
/// message`, and raises the message as a plain string, as the C libraries'
/// luaL_error does (mlua would raise a userdata that pcall hands to scripts).
///
/// # Safety
/// Called by Lua with upvalue 1 set by [`lib_fn`]. Errors leave through
/// lua_error's longjmp: this frame holds no value with a destructor.
unsafe extern "C-unwind" fn trampoline(l: *mut ffi::lua_State) -> c_int {
    let n = ffi::lua_gettop(l);
    // The arguments' exact numbers (see ARG_NUMBERS); the borrow ends before any call.
    ARG_NUMBERS.with(|a| {
        let mut a = a.borrow_mut();
        a.clear();
        for i in 1..=n {
            a.push((ffi::lua_type(l, i) == ffi::LUA_TNUMBER).then(|| ffi::lua_tonumber(l, i)));
        }
    });
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_insert(l, 1);
    // Results come back as (true, {results...}, count) or (false, message).
    ffi::lua_call(l, n, 3);
    if ffi::lua_toboolean(l, 1) == 0 {
        ffi::lua_settop(l, 2);
        ffi::lua_error(l);
    }
    let k = ffi::lua_tointeger(l, 3) as c_int;
    ffi::lua_settop(l, 2);
    ffi::lua_remove(l, 1);
    // The libraries stop before LUAI_MAXCSTACK as the C code does: this cannot fail.
    if ffi::lua_checkstack(l, k) == 0 {
        ffi::lua_pushstring(l, c"stack overflow (too many results)".as_ptr());
        ffi::lua_error(l);
    }
    for i in 1..=k {
        ffi::lua_rawgeti(l, 1, i as _);
    }
    k
}

/// Returns its arguments with every number replaced by its `%.17g` text, read
/// exactly from the stack: mlua hands Rust 0 for -0 and for any number closer
/// to 0 than f64::EPSILON, and redis.call must see what luaArgsToRedisArgv
/// formats (`redis.call('set', k, 1e-20)` stores "9.9999999999999995e-21").
///
/// # Safety
/// Called by Lua as a C function. Only stack slots 1..=n and one pushed slot
/// (within LUA_MINSTACK) are touched; a memory error in lua_pushlstring
/// leaves through longjmp, and this frame holds no value with a destructor.
unsafe extern "C-unwind" fn numbers_as_strings(l: *mut ffi::lua_State) -> c_int {
    let n = ffi::lua_gettop(l);
    for i in 1..=n {
        if ffi::lua_type(l, i) == ffi::LUA_TNUMBER {
            let mut buf = [0u8; 64];
            let len = libc::snprintf(
                buf.as_mut_ptr().cast(),
                buf.len(),
                c"%.17g".as_ptr(),
                ffi::lua_tonumber(l, i),
            );
            let len = (len.max(0) as usize).min(buf.len() - 1);
            ffi::lua_pushlstring(l, buf.as_ptr().cast(), len);
            ffi::lua_replace(l, i);
        }
    }
    n
}

/// Wraps `call` (redis.call or redis.pcall) so that it gets its numbers as
/// exact `%.17g` texts (see [`numbers_as_strings`]); the wrapper tail-calls
/// it, so no frame of its own stays on the stack.
pub(super) fn exact_numbers(lua: &Lua, call: mlua::Function) -> mlua::Result<mlua::Function> {
    // SAFETY: exec_raw runs the closure in protected mode; lua_pushcclosure
    // with no upvalue pushes one function, which exec_raw returns.
    let fix = unsafe {
        lua.exec_raw::<mlua::Function>((), |l| {
            ffi::lua_pushcclosure(l, numbers_as_strings, 0);
        })?
    };
    lua.load("local call, fix = ... return function(...) return call(fix(...)) end")
        .set_name("=redis")
        .call((call, fix))
}

thread_local! {
    /// The numbers among the running library function's arguments, exactly:
    /// mlua hands Rust 0 for -0 and for any number closer to 0 than f64::EPSILON.
    static ARG_NUMBERS: RefCell<Vec<Option<f64>>> = const { RefCell::new(Vec::new()) };
}

/// Argument `i` (0-based) as its exact number, when it is a number.
fn exact_arg(v: &Value, i: usize) -> Option<f64> {
    match v {
        Value::Integer(_) | Value::Number(_) => ARG_NUMBERS
            .with(|a| a.borrow().get(i).copied().flatten())
            .or_else(|| as_num(v)),
        _ => None,
    }
}

/// Argument `i` with its number exact (see [`ARG_NUMBERS`]).
fn exact_value(v: Value, i: usize) -> Value {
    match exact_arg(&v, i) {
        Some(n) => Value::Number(n),
        None => v,
    }
}

/// Results as a table and their count: many values at once would not fit
/// mlua's reference stack, the trampoline pushes them from the table.
type Packed = (Table, usize);

/// Wraps a library function so that its RuntimeError results become Lua string errors.
fn lib_fn<F, R>(lua: &Lua, f: F) -> mlua::Result<mlua::Function>
where
    F: Fn(&Lua, MultiValue) -> mlua::Result<R> + 'static,
    R: mlua::IntoLuaMulti,
{
    lib_fn_packed(lua, move |lua, a| {
        let r = f(lua, a)?.into_lua_multi(lua)?;
        let n = r.len();
        let t = lua.create_table_with_capacity(n, 0)?;
        for (i, v) in r.into_iter().enumerate() {
            t.raw_set(i + 1, v)?;
        }
        Ok((t, n))
    })
}

/// [`lib_fn`] for a function that returns its results packed.
fn lib_fn_packed<F>(lua: &Lua, f: F) -> mlua::Result<mlua::Function>
where
    F: Fn(&Lua, MultiValue) -> mlua::Result<Packed> + 'static,
{
    let inner = lua.create_function(move |lua, a: MultiValue| match f(lua, a) {
        Ok((t, n)) => Ok(MultiValue::from_vec(vec![
            Value::Boolean(true),
            Value::Table(t),
            Value::Number(n as f64),
        ])),
        Err(mlua::Error::RuntimeError(m)) => Ok(MultiValue::from_vec(vec![
            Value::Boolean(false),
            Value::String(lua.create_string(m)?),
        ])),
        Err(e) => Err(e),
    })?;
    // SAFETY: exec_raw pushes `inner` (the only argument, on top) and runs the
    // closure in protected mode; lua_pushcclosure pops it as upvalue 1 of the
    // trampoline and pushes the closure, which exec_raw returns.
    unsafe {
        lua.exec_raw::<mlua::Function>(inner, |l| {
            ffi::lua_pushcclosure(l, trampoline, 1);
        })
    }
}

// ---------------------------------------------------------------------------
// Error helpers (lauxlib's texts)
// ---------------------------------------------------------------------------

/// luaL_where(L, 1): "user_script:N: " when the caller is Lua code, else "".
///
/// Library functions run under [`trampoline`] (level 1), so their caller is level 2.
fn where1(lua: &Lua) -> String {
    match lua.inspect_stack(2) {
        Some(d) if d.curr_line() > 0 => {
            let src = d.source().short_src.map(|s| s.into_owned());
            format!("{}:{}: ", src.unwrap_or_default(), d.curr_line())
        }
        _ => String::new(),
    }
}

/// luaL_error: the message with the caller's position.
fn lerr(lua: &Lua, msg: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::RuntimeError(format!("{}{msg}", where1(lua)))
}

/// luaL_argerror: "bad argument #n to 'name' (msg)", method calls counted as Lua does.
fn argerr(lua: &Lua, narg: usize, msg: &str) -> mlua::Error {
    // The name the caller used for the trampoline (level 1), as luaL_argerror reads it.
    let (name, what) = match lua.inspect_stack(1) {
        Some(d) => {
            let n = d.names();
            (n.name.map(|s| s.into_owned()), n.name_what)
        }
        None => (None, None),
    };
    let mut narg = narg as i64;
    if what == Some("method") {
        narg -= 1;
        if narg == 0 {
            return lerr(
                lua,
                format!(
                    "calling '{}' on bad self ({msg})",
                    name.as_deref().unwrap_or("?")
                ),
            );
        }
    }
    lerr(
        lua,
        format!(
            "bad argument #{narg} to '{}' ({msg})",
            name.as_deref().unwrap_or("?")
        ),
    )
}

/// Lua's type name of an argument ("no value" when absent).
fn tname(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_)) | Some(Value::UserData(_)) => "userdata",
        Some(Value::Integer(_)) | Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// luaL_typerror.
fn typeerr(lua: &Lua, narg: usize, expected: &str, got: Option<&Value>) -> mlua::Error {
    argerr(
        lua,
        narg,
        &format!("{expected} expected, got {}", tname(got)),
    )
}

/// lua_tonumber: numbers and numeric strings.
fn tonumber(lua: &Lua, v: Option<&Value>) -> Option<f64> {
    match v {
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::Number(n)) => Some(*n),
        Some(v @ Value::String(_)) => lua.coerce_number(v.clone()).ok().flatten(),
        _ => None,
    }
}

/// luaL_checknumber (argument `i`, 0-based).
fn checknumber(lua: &Lua, a: &[Value], i: usize) -> mlua::Result<f64> {
    if let Some(n) = a.get(i).and_then(|v| exact_arg(v, i)) {
        return Ok(n);
    }
    tonumber(lua, a.get(i)).ok_or_else(|| typeerr(lua, i + 1, "number", a.get(i)))
}

/// luaL_checkinteger: the number truncated to lua_Integer (a C cast).
fn checkinteger(lua: &Lua, a: &[Value], i: usize) -> mlua::Result<i64> {
    checknumber(lua, a, i).map(c_i64)
}

/// luaL_optinteger.
fn optinteger(lua: &Lua, a: &[Value], i: usize, d: i64) -> mlua::Result<i64> {
    match a.get(i) {
        None | Some(Value::Nil) => Ok(d),
        _ => checkinteger(lua, a, i),
    }
}

/// luaL_checklstring: strings and numbers (as Lua prints them).
fn checkstring(lua: &Lua, a: &[Value], i: usize) -> mlua::Result<Vec<u8>> {
    match a.get(i) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => Ok(lua
            .coerce_string(v.clone())?
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default()),
        other => Err(typeerr(lua, i + 1, "string", other)),
    }
}

/// A C `(long long)d` cast as x86-64 does it (out of range and NaN give i64::MIN).
fn c_i64(d: f64) -> i64 {
    if d.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// A C `(unsigned long)d` cast as gcc compiles it on x86-64 (NaN gives 2^63,
/// 2^64 and beyond give 0).
fn c_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if d >= TWO63 {
        (c_i64(d - TWO63) as u64) ^ (1 << 63)
    } else {
        c_i64(d) as u64
    }
}

/// A C `(int)d` cast as x86-64 does it (out of range and NaN give i32::MIN).
fn c_i32(d: f64) -> i32 {
    if d.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&d) {
        i32::MIN
    } else {
        d as i32
    }
}

/// C's `printf("%.<prec>g", d)` from glibc, the formatter lua-cjson calls.
pub(super) fn fmt_g(d: f64, prec: i32) -> Vec<u8> {
    let mut buf = [0u8; 64];
    // SAFETY: the buffer is 64 bytes and snprintf writes at most buf.len()
    // bytes including the NUL; the format takes exactly an int and a double.
    let n = unsafe {
        libc::snprintf(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%.*g".as_ptr(),
            prec as c_int,
            d,
        )
    };
    let n = (n.max(0) as usize).min(buf.len() - 1);
    buf[..n].to_vec()
}

/// C's `strtod` on the start of `s` (glibc, C locale): the value and the bytes consumed.
fn strtod_prefix(s: &[u8]) -> (f64, usize) {
    // Only characters strtod can consume are copied (the token, not the rest of the input).
    let end = s
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || b".+-()_".contains(&c)))
        .unwrap_or(s.len());
    let mut tmp = Vec::with_capacity(end + 1);
    tmp.extend_from_slice(&s[..end]);
    tmp.push(0);
    let mut endp: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: tmp is NUL-terminated and outlives the call; endp receives a
    // pointer into tmp (or tmp itself), from which only the offset is taken.
    let v = unsafe { libc::strtod(tmp.as_ptr().cast(), &mut endp) };
    let used = (endp as usize).saturating_sub(tmp.as_ptr() as usize);
    (v, used.min(end))
}

// ---------------------------------------------------------------------------
// cjson (lua-cjson 2.1.0)
// ---------------------------------------------------------------------------

/// One cjson instance's settings (cjson.new() makes another).
#[derive(Clone, Copy)]
struct JsonCfg {
    sparse_convert: i32,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 refuse, 1 allow ("nan"/"inf"), 2 encode as null.
    encode_invalid_numbers: i32,
    decode_invalid_numbers: i32,
    encode_keep_buffer: i32,
    precision: i32,
}

/// lua-cjson's defaults.
const JSON_DEFAULTS: JsonCfg = JsonCfg {
    sparse_convert: 0,
    sparse_ratio: 2,
    sparse_safe: 10,
    encode_max_depth: 1000,
    decode_max_depth: 1000,
    encode_invalid_numbers: 0,
    decode_invalid_numbers: 1,
    encode_keep_buffer: 1,
    precision: 14,
};

/// Which Lua state a global `cjson` table belongs to: Redis has one state for
/// EVAL (recreated by SCRIPT FLUSH) and one for functions (kept for the
/// process's life), each with its own settings; percore has one of each per
/// core, so those settings live here, shared by the cores.
#[derive(Clone, Copy)]
pub enum JsonScope {
    /// The EVAL/EVALSHA states.
    Eval,
    /// The function libraries' states.
    Functions,
}

/// The global `cjson` tables' settings, by [`JsonScope`].
static SHARED_JSON: [std::sync::Mutex<JsonCfg>; 2] = [
    std::sync::Mutex::new(JSON_DEFAULTS),
    std::sync::Mutex::new(JSON_DEFAULTS),
];

/// Back to lua-cjson's defaults (SCRIPT FLUSH recreates Redis's EVAL state).
pub fn reset_json(scope: JsonScope) {
    *SHARED_JSON[scope as usize]
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = JSON_DEFAULTS;
}

/// Where a cjson table's settings live.
#[derive(Clone)]
enum Cfg {
    /// A `cjson.new()` instance's own, in its state only (as in lua-cjson).
    Local(Rc<RefCell<JsonCfg>>),
    /// A global `cjson` table's, shared by the cores (see [`JsonScope`]).
    Shared(&'static std::sync::Mutex<JsonCfg>),
}

impl Cfg {
    /// A copy of the settings (a run reads them once, as lua-cjson does per call).
    fn get(&self) -> JsonCfg {
        match self {
            Cfg::Local(c) => *c.borrow(),
            Cfg::Shared(m) => *m.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Runs `f` on the settings.
    fn update<R>(&self, f: impl FnOnce(&mut JsonCfg) -> R) -> R {
        match self {
            Cfg::Local(c) => f(&mut c.borrow_mut()),
            Cfg::Shared(m) => f(&mut m.lock().unwrap_or_else(|e| e.into_inner())),
        }
    }
}

/// LUAI_MAXCSTACK: lua_checkstack fails past this many slots in a C function.
const MAXCSTACK: usize = 8000;

/// Makes a cjson module table: the global one (`scope` given) with the
/// settings shared by the cores, a `cjson.new()` one with its own.
fn cjson_new(lua: &Lua, scope: Option<JsonScope>) -> mlua::Result<Table> {
    let cfg = match scope {
        Some(s) => Cfg::Shared(&SHARED_JSON[s as usize]),
        None => Cfg::Local(Rc::new(RefCell::new(JSON_DEFAULTS))),
    };
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.set(
        "encode",
        lib_fn(lua, move |lua, a: MultiValue| json_encode(lua, &c.get(), a))?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode",
        lib_fn_packed(lua, move |lua, a: MultiValue| json_decode(lua, &c.get(), a))?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_sparse_array",
        lib_fn(lua, move |lua, a: MultiValue| {
            let a = arg_init(lua, a, 3)?;
            c.update(|g| {
                let r1 = enum_option(lua, &a, 0, &mut g.sparse_convert, None, 1)?;
                let r2 = int_option(lua, &a, 1, &mut g.sparse_ratio, 0, i32::MAX)?;
                let r3 = int_option(lua, &a, 2, &mut g.sparse_safe, 0, i32::MAX)?;
                Ok(MultiValue::from_vec(vec![r1, r2, r3]))
            })
        })?,
    )?;
    macro_rules! int_cfg {
        ($name:literal, $field:ident, $min:expr, $max:expr) => {
            let c = cfg.clone();
            t.set(
                $name,
                lib_fn(lua, move |lua, a: MultiValue| {
                    let a = arg_init(lua, a, 1)?;
                    c.update(|g| int_option(lua, &a, 0, &mut g.$field, $min, $max))
                })?,
            )?;
        };
    }
    int_cfg!("encode_max_depth", encode_max_depth, 1, i32::MAX);
    int_cfg!("decode_max_depth", decode_max_depth, 1, i32::MAX);
    int_cfg!("encode_number_precision", precision, 1, 14);
    macro_rules! enum_cfg {
        ($name:literal, $field:ident, $opts:expr) => {
            let c = cfg.clone();
            t.set(
                $name,
                lib_fn(lua, move |lua, a: MultiValue| {
                    let a = arg_init(lua, a, 1)?;
                    c.update(|g| enum_option(lua, &a, 0, &mut g.$field, $opts, 1))
                })?,
            )?;
        };
    }
    enum_cfg!("encode_keep_buffer", encode_keep_buffer, None);
    enum_cfg!(
        "encode_invalid_numbers",
        encode_invalid_numbers,
        Some(&["off", "on", "null"])
    );
    enum_cfg!("decode_invalid_numbers", decode_invalid_numbers, None);
    t.set(
        "new",
        lib_fn(lua, |lua, _: MultiValue| cjson_new(lua, None))?,
    )?;
    t.set(
        "null",
        Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())),
    )?;
    t.set("_NAME", "cjson")?;
    t.set("_VERSION", "2.1.0")?;
    Ok(t)
}

/// json_arg_init: at most `n` arguments ("found too many arguments"), padded with nil.
fn arg_init(lua: &Lua, a: MultiValue, n: usize) -> mlua::Result<Vec<Value>> {
    let mut a: Vec<Value> = a.into_iter().collect();
    if a.len() > n {
        return Err(argerr(lua, n + 1, "found too many arguments"));
    }
    a.resize(n, Value::Nil);
    Ok(a)
}

/// json_integer_option: sets from argument `i` when given (range errors name argument 1).
fn int_option(
    lua: &Lua,
    a: &[Value],
    i: usize,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> mlua::Result<Value> {
    if !matches!(a[i], Value::Nil) {
        // (int) of the lua_Integer: wraps as C's conversion does.
        let v = checkinteger(lua, a, i)? as i32;
        if !(min <= v && v <= max) {
            return Err(argerr(
                lua,
                1,
                &format!("expected integer between {min} and {max}"),
            ));
        }
        *setting = v;
    }
    Ok(Value::Number(*setting as f64))
}

/// json_enum_option: booleans or one of the option names (default "off"/"on").
fn enum_option(
    lua: &Lua,
    a: &[Value],
    i: usize,
    setting: &mut i32,
    options: Option<&[&str]>,
    bool_true: i32,
) -> mlua::Result<Value> {
    let opts: &[&str] = options.unwrap_or(&["off", "on"]);
    match &a[i] {
        Value::Nil => {}
        Value::Boolean(b) if bool_true != 0 => *setting = *b as i32 * bool_true,
        _ => {
            let name = checkstring(lua, a, i)?;
            match opts.iter().position(|o| o.as_bytes() == &name[..]) {
                Some(p) => *setting = p as i32,
                None => {
                    return Err(argerr(
                        lua,
                        i + 1,
                        &format!("invalid option '{}'", String::from_utf8_lossy(&name)),
                    ))
                }
            }
        }
    }
    if bool_true != 0 && (*setting == 0 || *setting == bool_true) {
        Ok(Value::Boolean(*setting != 0))
    } else {
        Ok(Value::String(lua.create_string(opts[*setting as usize])?))
    }
}

/// The JSON escape of byte `c`, if it needs one (lua-cjson's char2escape).
fn json_escape(c: u8) -> Option<&'static str> {
    const LOW: [&str; 32] = [
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011",
        "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019",
        "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    ];
    match c {
        0..=31 => Some(LOW[c as usize]),
        b'"' => Some("\\\""),
        b'/' => Some("\\/"),
        b'\\' => Some("\\\\"),
        127 => Some("\\u007f"),
        _ => None,
    }
}

/// cjson.encode(value).
fn json_encode(lua: &Lua, cfg: &JsonCfg, a: MultiValue) -> mlua::Result<mlua::String> {
    if a.len() != 1 {
        return Err(argerr(lua, 1, "expected 1 argument"));
    }
    let v = exact_value(a.into_iter().next().unwrap_or(Value::Nil), 0);
    let mut out = Vec::new();
    let mut res = Ok(());
    // SAFETY: exec_raw pushes the value as the only argument of a protected C
    // call (index 1, top of its frame, as in the C library) and runs the
    // closure there; raw_encode keeps the stack balanced on success and
    // exec_raw's guard restores it on error.
    unsafe {
        lua.exec_raw::<()>(v, |l| {
            res = raw_encode(l, cfg, &mut out);
        })?;
    }
    res.map_err(|m| lerr(lua, m))?;
    lua.create_string(&out)
}

/// The Lua type name of the value at `idx`.
///
/// # Safety
/// `l` is a valid state and `idx` a valid index.
unsafe fn raw_typename(l: *mut ffi::lua_State, idx: c_int) -> String {
    let p = ffi::lua_typename(l, ffi::lua_type(l, idx));
    std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
}

/// "Cannot serialise <type>: <reason>" for the value at `idx`.
///
/// # Safety
/// As [`raw_typename`].
unsafe fn raw_cannot(l: *mut ffi::lua_State, idx: c_int, reason: &str) -> String {
    format!("Cannot serialise {}: {reason}", raw_typename(l, idx))
}

/// Appends the number at `idx` as lua-cjson does (invalid-number policy, %.<precision>g).
///
/// # Safety
/// As [`raw_typename`]; the value at `idx` is a number.
unsafe fn raw_number(
    l: *mut ffi::lua_State,
    cfg: &JsonCfg,
    idx: c_int,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let n = ffi::lua_tonumber(l, idx);
    match cfg.encode_invalid_numbers {
        0 => {
            if !n.is_finite() {
                return Err(raw_cannot(l, idx, "must not be NaN or Inf"));
            }
        }
        1 => {
            if n.is_nan() {
                out.extend_from_slice(b"nan");
                return Ok(());
            }
        }
        _ => {
            if !n.is_finite() {
                out.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    out.extend_from_slice(&fmt_g(n, cfg.precision));
    Ok(())
}

/// Appends a string with lua-cjson's escapes.
fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match json_escape(c) {
            Some(e) => out.extend_from_slice(e.as_bytes()),
            None => out.push(c),
        }
    }
    out.push(b'"');
}

/// The bytes of the string at `idx`.
///
/// # Safety
/// As [`raw_typename`]; the value at `idx` is a string.
unsafe fn raw_bytes<'a>(l: *mut ffi::lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    if p.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(p.cast(), len)
}

/// A table being encoded (its table, and for objects the current key, are on the Lua stack).
enum EFrame {
    /// An array of `len` elements, `next` the index to write next.
    Arr { len: i32, next: i32 },
    /// An object; `first` until a member was written.
    Obj { first: bool },
}

/// Starts encoding the value on top of the stack: scalars are written whole
/// (None), tables opened (json_check_encode_depth, lua_array_length).
///
/// # Safety
/// `l` is a valid state inside a protected call with the value on top.
unsafe fn raw_open(
    l: *mut ffi::lua_State,
    cfg: &JsonCfg,
    depth: i32,
    out: &mut Vec<u8>,
) -> Result<Option<EFrame>, String> {
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => encode_string(raw_bytes(l, -1), out),
        ffi::LUA_TNUMBER => raw_number(l, cfg, -1, out)?,
        ffi::LUA_TBOOLEAN => out.extend_from_slice(if ffi::lua_toboolean(l, -1) != 0 {
            b"true"
        } else {
            b"false"
        }),
        ffi::LUA_TNIL => out.extend_from_slice(b"null"),
        ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, -1).is_null() => {
            out.extend_from_slice(b"null")
        }
        ffi::LUA_TTABLE => {
            let depth = depth + 1;
            if depth > cfg.encode_max_depth || ffi::lua_checkstack(l, 3) == 0 {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            // lua_array_length: only keys that are integers >= 1 make an array.
            let mut max: i32 = 0;
            let mut items: i32 = 0;
            let mut array = true;
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, -2) != 0 {
                let k = ffi::lua_tonumber(l, -2);
                if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER
                    && k != 0.0
                    && k.floor() == k
                    && k >= 1.0
                {
                    if k > max as f64 {
                        max = c_i32(k);
                    }
                    items = items.wrapping_add(1);
                    ffi::lua_pop(l, 1);
                    continue;
                }
                ffi::lua_pop(l, 2);
                array = false;
                break;
            }
            let mut len = if array { max } else { -1 };
            if array
                && cfg.sparse_ratio > 0
                && max as i64 > items as i64 * cfg.sparse_ratio as i64
                && max > cfg.sparse_safe
            {
                if cfg.sparse_convert == 0 {
                    return Err(raw_cannot(l, -1, "excessively sparse array"));
                }
                len = -1;
            }
            if len > 0 {
                out.push(b'[');
                return Ok(Some(EFrame::Arr { len, next: 1 }));
            }
            out.push(b'{');
            ffi::lua_pushnil(l);
            return Ok(Some(EFrame::Obj { first: true }));
        }
        _ => return Err(raw_cannot(l, -1, "type not supported")),
    }
    Ok(None)
}

/// json_append_data on the value at the top of the stack, iteratively, on Lua's
/// own stack as the C library works (so lua_checkstack fails where it fails in Redis).
///
/// # Safety
/// `l` is a valid state inside a protected call with the value on top; the
/// string slices read are used before their values are popped.
unsafe fn raw_encode(
    l: *mut ffi::lua_State,
    cfg: &JsonCfg,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut frames: Vec<EFrame> = Vec::new();
    loop {
        // The value on top.
        match raw_open(l, cfg, frames.len() as i32, out)? {
            Some(f) => frames.push(f),
            None if frames.is_empty() => return Ok(()),
            None => ffi::lua_pop(l, 1),
        }
        // Push the innermost table's next value, closing the tables that are done.
        loop {
            let Some(f) = frames.last_mut() else {
                return Ok(());
            };
            match f {
                EFrame::Arr { len, next } => {
                    if *next <= *len {
                        if *next > 1 {
                            out.push(b',');
                        }
                        ffi::lua_rawgeti(l, -1, *next as _);
                        *next += 1;
                        break;
                    }
                    out.push(b']');
                }
                EFrame::Obj { first } => {
                    if ffi::lua_next(l, -2) != 0 {
                        if !*first {
                            out.push(b',');
                        }
                        *first = false;
                        match ffi::lua_type(l, -2) {
                            ffi::LUA_TNUMBER => {
                                out.push(b'"');
                                raw_number(l, cfg, -2, out)?;
                                out.extend_from_slice(b"\":");
                            }
                            ffi::LUA_TSTRING => {
                                encode_string(raw_bytes(l, -2), out);
                                out.push(b':');
                            }
                            _ => {
                                return Err(raw_cannot(
                                    l,
                                    -2,
                                    "table key must be a number or string",
                                ))
                            }
                        }
                        break;
                    }
                    out.push(b'}');
                }
            }
            frames.pop();
            if frames.is_empty() {
                return Ok(());
            }
            // The finished table was a value of its parent.
            ffi::lua_pop(l, 1);
        }
    }
}

/// A Lua number value as f64.
fn as_num(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// A JSON token (lua-cjson's json_token_type_t).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Num,
    Bool,
    Null,
    Colon,
    Comma,
    End,
    Error,
}

impl Tok {
    /// The name lua-cjson prints in parse errors.
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Num => "T_NUMBER",
            Tok::Bool => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error => "T_ERROR",
        }
    }
}

/// A scanned token: kind, position, and its value or error text.
struct Token {
    kind: Tok,
    index: usize,
    num: f64,
    boolean: bool,
    text: Vec<u8>,
    err: &'static str,
}

/// The JSON decoder over a NUL-terminated view of the input (as the C code reads it).
struct Parser<'a> {
    data: &'a [u8],
    ptr: usize,
    decode_invalid: bool,
}

impl Parser<'_> {
    /// The byte at `i`, 0 past the end (the C string's terminator).
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    /// json_is_invalid_number at the current position.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.ptr;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        if self.at(p) == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        } else if self.at(p) <= b'9' {
            return false;
        }
        let word = |w: &[u8]| (0..3).all(|i| self.at(p + i).to_ascii_lowercase() == w[i]);
        word(b"inf") || word(b"nan")
    }

    /// The next token (json_next_token).
    fn next(&mut self) -> Token {
        let mut t = Token {
            kind: Tok::Error,
            index: 0,
            num: 0.0,
            boolean: false,
            text: Vec::new(),
            err: "",
        };
        while matches!(self.at(self.ptr), b' ' | b'\t' | b'\n' | b'\r') {
            self.ptr += 1;
        }
        t.index = self.ptr;
        let ch = self.at(self.ptr);
        let single = match ch {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(k) = single {
            t.kind = k;
            self.ptr += 1;
            return t;
        }
        if ch == 0 {
            t.kind = Tok::End;
            return t;
        }
        let unknown = matches!(
            ch,
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'"' | b'+' | b'-'
        ) || ch.is_ascii_digit();
        if !unknown {
            return self.error(t, "invalid token");
        }
        let rest = &self.data[self.ptr.min(self.data.len())..];
        if ch == b'"' {
            return self.string(t);
        } else if ch == b'-' || ch.is_ascii_digit() {
            if !self.decode_invalid && self.is_invalid_number() {
                return self.error(t, "invalid number");
            }
            return self.number(t);
        } else if rest.starts_with(b"true") {
            t.kind = Tok::Bool;
            t.boolean = true;
            self.ptr += 4;
            return t;
        } else if rest.starts_with(b"false") {
            t.kind = Tok::Bool;
            self.ptr += 5;
            return t;
        } else if rest.starts_with(b"null") {
            t.kind = Tok::Null;
            self.ptr += 4;
            return t;
        } else if self.decode_invalid && self.is_invalid_number() {
            return self.number(t);
        }
        self.error(t, "invalid token")
    }

    /// json_set_token_error: an error token at the current position.
    fn error(&self, mut t: Token, what: &'static str) -> Token {
        t.kind = Tok::Error;
        t.index = self.ptr;
        t.err = what;
        t
    }

    /// json_next_number_token (strtod).
    fn number(&mut self, mut t: Token) -> Token {
        let (v, used) = strtod_prefix(&self.data[self.ptr..]);
        if used == 0 {
            return self.error(t, "invalid number");
        }
        t.kind = Tok::Num;
        t.num = v;
        self.ptr += used;
        t
    }

    /// Four hex digits at `i` (decode_hex4), None when any is not hex.
    fn hex4(&self, i: usize) -> Option<u32> {
        let mut v = 0;
        for k in 0..4 {
            v = (v << 4) | (self.at(i + k) as char).to_digit(16)?;
        }
        Some(v)
    }

    /// json_append_unicode_escape at the current backslash.
    fn unicode(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(mut cp) = self.hex4(self.ptr + 2) else {
            return false;
        };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return false;
            }
            if self.at(self.ptr + 6) != b'\\' || self.at(self.ptr + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.ptr + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        // codepoint_to_utf8 (never more than 0x10FFFF here).
        if cp <= 0x7F {
            out.push(cp as u8);
        } else if cp <= 0x7FF {
            out.extend_from_slice(&[(cp >> 6) as u8 | 0xC0, (cp & 0x3F) as u8 | 0x80]);
        } else if cp <= 0xFFFF {
            out.extend_from_slice(&[
                (cp >> 12) as u8 | 0xE0,
                ((cp >> 6) & 0x3F) as u8 | 0x80,
                (cp & 0x3F) as u8 | 0x80,
            ]);
        } else {
            out.extend_from_slice(&[
                (cp >> 18) as u8 | 0xF0,
                ((cp >> 12) & 0x3F) as u8 | 0x80,
                ((cp >> 6) & 0x3F) as u8 | 0x80,
                (cp & 0x3F) as u8 | 0x80,
            ]);
        }
        self.ptr += len;
        true
    }

    /// json_next_string_token.
    fn string(&mut self, mut t: Token) -> Token {
        self.ptr += 1;
        let mut s = Vec::new();
        loop {
            let ch = self.at(self.ptr);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                return self.error(t, "unexpected end of string");
            }
            let mut c = ch;
            if ch == b'\\' {
                let e = self.at(self.ptr + 1);
                c = match e {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 12,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode(&mut s) {
                            continue;
                        }
                        return self.error(t, "invalid unicode escape code");
                    }
                    _ => return self.error(t, "invalid escape code"),
                };
                self.ptr += 1;
            }
            s.push(c);
            self.ptr += 1;
        }
        self.ptr += 1;
        t.kind = Tok::Str;
        t.text = s;
        t
    }
}

/// An open container while decoding (its table is on the Lua stack).
enum Open {
    /// An array and the next index.
    Arr(i64),
    /// An object (its pending key is on the stack above the table).
    Obj,
}

/// json_parse_*: error texts are complete messages, positioned by the caller.
type ParseResult = Result<(), String>;

/// json_throw_parse_error's text.
fn parse_error(expected: &str, t: &Token) -> String {
    let found = if t.kind == Tok::Error {
        t.err
    } else {
        t.kind.name()
    };
    format!(
        "Expected {expected} but found {found} at character {}",
        t.index + 1
    )
}

/// cjson.decode(text), its result packed (read back through mlua, -0 and tiny
/// numbers would lose their value).
fn json_decode(lua: &Lua, cfg: &JsonCfg, a: MultiValue) -> mlua::Result<Packed> {
    let a: Vec<Value> = a.into_iter().collect();
    if a.len() != 1 {
        return Err(argerr(lua, 1, "expected 1 argument"));
    }
    let data = checkstring(lua, &a, 0)?;
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(lerr(lua, "JSON parser does not support UTF-16 or UTF-32"));
    }
    let mut res: ParseResult = Ok(());
    let results = lua.create_table()?;
    // SAFETY: exec_raw runs the closure in a protected C call whose only
    // argument is the results table (index 1, the slot the C library's
    // argument takes); raw_decode builds the value on the stack and it is
    // stored as results[1]; exec_raw's guard restores the stack.
    unsafe {
        lua.exec_raw::<()>(results.clone(), |l| {
            res = raw_decode(l, cfg, &data);
            if res.is_ok() {
                ffi::lua_rawseti(l, 1, 1);
            }
            ffi::lua_settop(l, 0);
        })?;
    }
    res.map_err(|m| lerr(lua, m))?;
    Ok((results, 1))
}

/// Pushes a scalar token's value.
///
/// # Safety
/// `l` is a valid state with a free slot (checked by the caller's checkstack).
unsafe fn push_scalar(l: *mut ffi::lua_State, t: &Token) -> bool {
    match t.kind {
        Tok::Str => {
            ffi::lua_pushlstring(l, t.text.as_ptr().cast(), t.text.len());
        }
        Tok::Num => ffi::lua_pushnumber(l, t.num),
        Tok::Bool => ffi::lua_pushboolean(l, t.boolean as c_int),
        Tok::Null => ffi::lua_pushlightuserdata(l, std::ptr::null_mut()),
        _ => return false,
    }
    true
}

/// lua_json_decode, iteratively, with containers on the Lua stack as the C parser keeps them.
///
/// # Safety
/// `l` is a valid state inside a protected call, with one slot (the argument's) in use.
unsafe fn raw_decode(l: *mut ffi::lua_State, cfg: &JsonCfg, data: &[u8]) -> ParseResult {
    let mut p = Parser {
        data,
        ptr: 0,
        decode_invalid: cfg.decode_invalid_numbers != 0,
    };
    let mut stack: Vec<Open> = Vec::new();
    let mut tok = p.next();
    loop {
        // A value starts at `tok` (json_process_value).
        let mut done = push_scalar(l, &tok);
        if !done {
            let obj = match tok.kind {
                Tok::ObjBegin => true,
                Tok::ArrBegin => false,
                _ => return Err(parse_error("value", &tok)),
            };
            let depth = stack.len() as i64 + 1;
            let slots = if obj { 3 } else { 2 };
            if depth > cfg.decode_max_depth as i64 || ffi::lua_checkstack(l, slots) == 0 {
                return Err(format!(
                    "Found too many nested data structures ({depth}) at character {}",
                    p.ptr
                ));
            }
            ffi::lua_newtable(l);
            tok = p.next();
            if tok.kind == if obj { Tok::ObjEnd } else { Tok::ArrEnd } {
                done = true;
            } else if obj {
                if tok.kind != Tok::Str {
                    return Err(parse_error("object key string", &tok));
                }
                ffi::lua_pushlstring(l, tok.text.as_ptr().cast(), tok.text.len());
                tok = p.next();
                if tok.kind != Tok::Colon {
                    return Err(parse_error("colon", &tok));
                }
                stack.push(Open::Obj);
                tok = p.next();
            } else {
                stack.push(Open::Arr(1));
            }
        }
        if !done {
            continue;
        }
        // A value is on top: store it, closing the containers that end.
        loop {
            match stack.last_mut() {
                None => {
                    let end = p.next();
                    if end.kind != Tok::End {
                        return Err(parse_error("the end", &end));
                    }
                    return Ok(());
                }
                Some(Open::Arr(i)) => {
                    ffi::lua_rawseti(l, -2, *i as _);
                    *i += 1;
                    tok = p.next();
                    if tok.kind == Tok::ArrEnd {
                        stack.pop();
                        continue;
                    }
                    if tok.kind != Tok::Comma {
                        return Err(parse_error("comma or array end", &tok));
                    }
                    tok = p.next();
                    break;
                }
                Some(Open::Obj) => {
                    ffi::lua_rawset(l, -3);
                    tok = p.next();
                    if tok.kind == Tok::ObjEnd {
                        stack.pop();
                        continue;
                    }
                    if tok.kind != Tok::Comma {
                        return Err(parse_error("comma or object end", &tok));
                    }
                    tok = p.next();
                    if tok.kind != Tok::Str {
                        return Err(parse_error("object key string", &tok));
                    }
                    ffi::lua_pushlstring(l, tok.text.as_ptr().cast(), tok.text.len());
                    tok = p.next();
                    if tok.kind != Tok::Colon {
                        return Err(parse_error("colon", &tok));
                    }
                    tok = p.next();
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// cmsgpack (lua-cmsgpack 0.4.0)
// ---------------------------------------------------------------------------

/// Tables nested deeper than this are packed as nil (LUACMSGPACK_MAX_NESTING).
const MP_MAX_NESTING: i32 = 16;

/// mp_encode_int.
fn mp_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// mp_encode_array / mp_encode_map headers (`fix` is 0x90 or 0x80, `w16` 0xdc or 0xde).
fn mp_len(out: &mut Vec<u8>, n: u64, fix: u8, w16: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 65535 {
        out.push(w16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(w16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// mp_encode_lua_type on the value on top of the stack (popped), on Lua's own
/// stack as the C library works (numbers read exactly).
///
/// # Safety
/// `l` is a valid state inside a protected call with the value on top and
/// room for 3 more slots (nesting is at most 16 levels).
unsafe fn raw_mp_encode(l: *mut ffi::lua_State, level: i32, out: &mut Vec<u8>) {
    let mut t = ffi::lua_type(l, -1);
    // Nested tables past the limit are packed as nil (also ends self-references).
    if t == ffi::LUA_TTABLE && level == MP_MAX_NESTING {
        t = ffi::LUA_TNIL;
    }
    match t {
        ffi::LUA_TSTRING => {
            let s = raw_bytes(l, -1);
            let len = s.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.extend_from_slice(&[0xd9, len as u8]);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(s);
        }
        ffi::LUA_TBOOLEAN => out.push(if ffi::lua_toboolean(l, -1) != 0 {
            0xc3
        } else {
            0xc2
        }),
        ffi::LUA_TNUMBER => {
            let n = ffi::lua_tonumber(l, -1);
            // IS_INT64_EQUIVALENT: finite and exact through a C (int64_t) cast.
            if !n.is_infinite() && c_i64(n) as f64 == n {
                mp_int(out, c_i64(n));
            } else {
                let f = n as f32;
                if n == f as f64 {
                    out.push(0xca);
                    out.extend_from_slice(&f.to_bits().to_be_bytes());
                } else {
                    out.push(0xcb);
                    out.extend_from_slice(&n.to_bits().to_be_bytes());
                }
            }
        }
        ffi::LUA_TTABLE => {
            // table_is_an_array: keys are numbers > 0 exact as C ints, and max == count.
            let top = ffi::lua_gettop(l);
            let mut count: i32 = 0;
            let mut max: i32 = 0;
            let mut array = true;
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, -2) != 0 {
                ffi::lua_pop(l, 1);
                let n = ffi::lua_tonumber(l, -1);
                if ffi::lua_type(l, -1) != ffi::LUA_TNUMBER
                    || n <= 0.0
                    || n.is_infinite()
                    || c_i32(n) as f64 != n
                {
                    ffi::lua_settop(l, top);
                    array = false;
                    break;
                }
                if n > max as f64 {
                    max = c_i32(n);
                }
                count = count.wrapping_add(1);
            }
            if array && max == count {
                let len = ffi::lua_objlen(l, -1);
                mp_len(out, len as u64, 0x90, 0xdc);
                for j in 1..=len {
                    ffi::lua_pushnumber(l, j as f64);
                    ffi::lua_gettable(l, -2);
                    raw_mp_encode(l, level + 1, out);
                }
            } else {
                let mut n: u64 = 0;
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    ffi::lua_pop(l, 1);
                    n += 1;
                }
                mp_len(out, n, 0x80, 0xde);
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    ffi::lua_pushvalue(l, -2);
                    raw_mp_encode(l, level + 1, out);
                    raw_mp_encode(l, level + 1, out);
                }
            }
        }
        _ => out.push(0xc0),
    }
    ffi::lua_pop(l, 1);
}

/// cmsgpack.pack(...).
fn mp_pack(lua: &Lua, a: MultiValue) -> mlua::Result<mlua::String> {
    if a.is_empty() {
        return Err(argerr(lua, 0, "MessagePack pack needs input."));
    }
    let n = a.len();
    let args: MultiValue = a
        .into_iter()
        .enumerate()
        .map(|(i, v)| exact_value(v, i))
        .collect();
    let mut out = Vec::new();
    // SAFETY: exec_raw pushes the arguments (indexes 1..=n) and runs the
    // closure in a protected call; each is copied to the top and popped by
    // raw_mp_encode, which keeps at most 16 levels of 3 slots (checked).
    unsafe {
        lua.exec_raw::<()>(args, |l| {
            ffi::lua_checkstack(l, 3 * (MP_MAX_NESTING as c_int + 2));
            for i in 1..=n as c_int {
                ffi::lua_pushvalue(l, i);
                raw_mp_encode(l, 0, &mut out);
            }
        })?;
    }
    lua.create_string(&out)
}

/// Why decoding stopped.
enum MpErr {
    /// MP_CUR_ERROR_EOF.
    Eof,
    /// MP_CUR_ERROR_BADFMT.
    BadFmt,
    /// A Lua error (e.g. a nil map key).
    Lua(mlua::Error),
}

impl From<mlua::Error> for MpErr {
    fn from(e: mlua::Error) -> Self {
        MpErr::Lua(e)
    }
}

/// mp_decode_to_lua_type.
///
/// `top` counts the C decoder's stack slots in use: its luaL_checkstack calls
/// fail as they would past LUAI_MAXCSTACK.
fn mp_decode(lua: &Lua, s: &[u8], pos: &mut usize, top: usize) -> Result<Value, MpErr> {
    let left = s.len() - *pos;
    let need = |n: usize| if left < n { Err(MpErr::Eof) } else { Ok(()) };
    need(1)?;
    if top + 1 > MAXCSTACK {
        return Err(MpErr::Lua(lerr(
            lua,
            "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
        )));
    }
    let p = &s[*pos..];
    let be = |from: usize, n: usize| -> u64 {
        p[from..from + n]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64)
    };
    let num = |n: f64| Value::Number(n);
    let v = match p[0] {
        0xcc => {
            need(2)?;
            *pos += 2;
            num(p[1] as f64)
        }
        0xd0 => {
            need(2)?;
            *pos += 2;
            num(p[1] as i8 as f64)
        }
        0xcd => {
            need(3)?;
            *pos += 3;
            num(be(1, 2) as f64)
        }
        0xd1 => {
            need(3)?;
            *pos += 3;
            num(be(1, 2) as u16 as i16 as f64)
        }
        0xce => {
            need(5)?;
            *pos += 5;
            num(be(1, 4) as f64)
        }
        0xd2 => {
            need(5)?;
            *pos += 5;
            num(be(1, 4) as u32 as i32 as f64)
        }
        // lua_pushunsigned is lua_pushinteger on 64-bit: past i64::MAX it wraps negative.
        0xcf | 0xd3 => {
            need(9)?;
            *pos += 9;
            num(be(1, 8) as i64 as f64)
        }
        0xc0 => {
            *pos += 1;
            Value::Nil
        }
        0xc3 | 0xc2 => {
            *pos += 1;
            Value::Boolean(p[0] == 0xc3)
        }
        0xca => {
            need(5)?;
            *pos += 5;
            num(f32::from_bits(be(1, 4) as u32) as f64)
        }
        0xcb => {
            need(9)?;
            *pos += 9;
            num(f64::from_bits(be(1, 8)))
        }
        0xd9..=0xdb => {
            let h = match p[0] {
                0xd9 => 1,
                0xda => 2,
                _ => 4,
            };
            need(1 + h)?;
            let l = be(1, h) as usize;
            if left - 1 - h < l {
                if p[0] == 0xdb {
                    // raw 32 consumes its header before asking for the bytes.
                    *pos += 1 + h;
                }
                return Err(MpErr::Eof);
            }
            *pos += 1 + h + l;
            Value::String(lua.create_string(&p[1 + h..1 + h + l])?)
        }
        0xdc..=0xdf => {
            let h = if p[0] == 0xdc || p[0] == 0xde { 2 } else { 4 };
            need(1 + h)?;
            let l = be(1, h) as usize;
            *pos += 1 + h;
            if p[0] <= 0xdd {
                mp_array(lua, s, pos, l, top)?
            } else {
                mp_map(lua, s, pos, l, top)?
            }
        }
        b if b & 0x80 == 0 => {
            *pos += 1;
            num(b as f64)
        }
        b if b & 0xe0 == 0xe0 => {
            *pos += 1;
            num(b as i8 as f64)
        }
        b if b & 0xe0 == 0xa0 => {
            let l = (b & 0x1f) as usize;
            need(1 + l)?;
            *pos += 1 + l;
            Value::String(lua.create_string(&p[1..1 + l])?)
        }
        b if b & 0xf0 == 0x90 => {
            *pos += 1;
            mp_array(lua, s, pos, (b & 0xf) as usize, top)?
        }
        b if b & 0xf0 == 0x80 => {
            *pos += 1;
            mp_map(lua, s, pos, (b & 0xf) as usize, top)?
        }
        _ => return Err(MpErr::BadFmt),
    };
    Ok(v)
}

/// mp_decode_to_lua_array (nil elements leave holes, as lua_settable does).
fn mp_array(lua: &Lua, s: &[u8], pos: &mut usize, len: usize, top: usize) -> Result<Value, MpErr> {
    let t = lua.create_table()?;
    if top + 2 > MAXCSTACK {
        return Err(MpErr::Lua(lerr(
            lua,
            "stack overflow (in function mp_decode_to_lua_array)",
        )));
    }
    for i in 1..=len {
        // The table and the index are on the stack while the element is decoded.
        let v = mp_decode(lua, s, pos, top + 2)?;
        t.raw_set(i, v)?;
    }
    Ok(Value::Table(t))
}

/// mp_decode_to_lua_hash (a nil or NaN key fails as lua_settable does).
fn mp_map(lua: &Lua, s: &[u8], pos: &mut usize, len: usize, top: usize) -> Result<Value, MpErr> {
    let t = lua.create_table()?;
    for _ in 0..len {
        let k = mp_decode(lua, s, pos, top + 1)?;
        let v = mp_decode(lua, s, pos, top + 2)?;
        match &k {
            Value::Nil => return Err(MpErr::Lua(lerr_plain("table index is nil"))),
            Value::Number(n) if n.is_nan() => {
                return Err(MpErr::Lua(lerr_plain("table index is NaN")))
            }
            _ => t.raw_set(k, v)?,
        }
    }
    Ok(Value::Table(t))
}

/// An error raised inside a C function by the VM (no position: luaG_runerror in C code).
fn lerr_plain(msg: &str) -> mlua::Error {
    mlua::Error::RuntimeError(msg.to_string())
}

/// mp_unpack_full: `limit` 0 and `offset` 0 decode everything and return no offset.
fn mp_unpack_full(lua: &Lua, s: &[u8], limit: i64, offset: i64) -> mlua::Result<Packed> {
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(lerr(
            lua,
            format!(
                "Invalid request to unpack with offset of {} and limit of {}.",
                offset as i32,
                s.len() as i32
            ),
        ));
    } else if offset as u64 > s.len() as u64 {
        return Err(lerr(
            lua,
            format!(
                "Start offset {} greater than input length {}.",
                offset as i32,
                s.len() as i32
            ),
        ));
    }
    let limit = if decode_all { i32::MAX as i64 } else { limit };
    let mut pos = offset as usize;
    let out = lua.create_table()?;
    // With an offset to return, values start at index 2.
    let first = if decode_all { 1 } else { 2 };
    let mut n = 0usize;
    let mut cnt = 0;
    while pos < s.len() && cnt < limit {
        // The input string and the values so far are on the stack.
        match mp_decode(lua, s, &mut pos, 1 + n) {
            Ok(v) => {
                out.raw_set(first + n, v)?;
                n += 1;
            }
            Err(MpErr::Eof) => return Err(lerr(lua, "Missing bytes in input.")),
            Err(MpErr::BadFmt) => return Err(lerr(lua, "Bad data format in input.")),
            Err(MpErr::Lua(e)) => return Err(e),
        }
        cnt += 1;
    }
    if !decode_all {
        let next = if pos == s.len() { -1.0 } else { pos as f64 };
        out.raw_set(1, next)?;
        n += 1;
    }
    Ok((out, n))
}

/// Makes the cmsgpack module table.
fn cmsgpack_new(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("pack", lib_fn(lua, mp_pack)?)?;
    t.set(
        "unpack",
        lib_fn_packed(lua, |lua, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let s = checkstring(lua, &a, 0)?;
            mp_unpack_full(lua, &s, 0, 0)
        })?,
    )?;
    t.set(
        "unpack_one",
        lib_fn_packed(lua, |lua, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let offset = optinteger(lua, &a, 1, 0)?;
            let s = checkstring(lua, &a, 0)?;
            mp_unpack_full(lua, &s, 1, offset)
        })?,
    )?;
    t.set(
        "unpack_limit",
        lib_fn_packed(lua, |lua, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let limit = checkinteger(lua, &a, 1)?;
            let offset = optinteger(lua, &a, 2, 0)?;
            let s = checkstring(lua, &a, 0)?;
            mp_unpack_full(lua, &s, limit, offset)
        })?,
    )?;
    t.set("_NAME", "cmsgpack")?;
    t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

// ---------------------------------------------------------------------------
// struct (struct.c 1.4, with Redis's overflow check)
// ---------------------------------------------------------------------------

/// MAXINTSIZE: the largest i/I size.
const ST_MAXINTSIZE: i32 = 32;
/// MAXALIGN on x86-64 (the alignment of double, or int).
const ST_MAXALIGN: i32 = 8;

/// The format being walked, with its endianness and alignment (Header).
struct Fmt<'a> {
    f: &'a [u8],
    i: usize,
    little: bool,
    align: usize,
}

impl Fmt<'_> {
    /// getnum: a decimal count, or `df` when none follows.
    fn getnum(&mut self, lua: &Lua, df: i32) -> mlua::Result<i32> {
        if !self.f.get(self.i).is_some_and(|c| c.is_ascii_digit()) {
            return Ok(df);
        }
        let mut a: i32 = 0;
        while let Some(&c) = self.f.get(self.i).filter(|c| c.is_ascii_digit()) {
            let d = (c - b'0') as i32;
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(lerr(lua, "integral size overflow"));
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a)
    }

    /// optsize: the size of option `opt` (consuming its count).
    fn optsize(&mut self, lua: &Lua, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'B' | b'b' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'x' => 1,
            // A C int converted to size_t: negative counts cannot occur (digits only).
            b'c' => self.getnum(lua, 1)? as usize,
            b'i' | b'I' => {
                let sz = self.getnum(lua, 4)?;
                if sz > ST_MAXINTSIZE {
                    return Err(lerr(
                        lua,
                        format!("integral size {sz} is larger than limit of {ST_MAXINTSIZE}"),
                    ));
                }
                sz as usize
            }
            _ => 0,
        })
    }

    /// gettoalign: padding before an item of `size` at `len`.
    fn toalign(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size - (len & (size - 1))) & (size - 1)
    }

    /// controloptions: endianness, alignment, spaces; anything else is an invalid option.
    fn control(&mut self, lua: &Lua, opt: u8) -> mlua::Result<()> {
        match opt {
            b' ' => Ok(()),
            b'>' => {
                self.little = false;
                Ok(())
            }
            b'<' => {
                self.little = true;
                Ok(())
            }
            b'!' => {
                let a = self.getnum(lua, ST_MAXALIGN)?;
                if !(a > 0 && a & (a - 1) == 0) {
                    return Err(lerr(lua, format!("alignment {a} is not a power of 2")));
                }
                self.align = a as usize;
                Ok(())
            }
            _ => Err(argerr(
                lua,
                1,
                &format!("invalid format option '{}'", opt as char),
            )),
        }
    }
}

/// The format string of argument 1 (read up to its first NUL, as C does).
fn st_format(lua: &Lua, a: &[Value]) -> mlua::Result<Vec<u8>> {
    let mut f = checkstring(lua, a, 0)?;
    if let Some(z) = f.iter().position(|&c| c == 0) {
        f.truncate(z);
    }
    Ok(f)
}

/// Bytes of `v` in the requested order (`v` given little-endian).
fn ordered(mut v: Vec<u8>, little: bool) -> Vec<u8> {
    if !little {
        v.reverse();
    }
    v
}

/// struct.pack(fmt, ...).
fn st_pack(lua: &Lua, a: MultiValue) -> mlua::Result<mlua::String> {
    let mut a: Vec<Value> = a.into_iter().collect();
    // b_pack pushes a nil mark after its arguments: a missing one reads as nil.
    let given = a.len();
    let f = st_format(lua, &a)?;
    if given > 0 {
        a.push(Value::Nil);
    }
    let mut h = Fmt {
        f: &f,
        i: 0,
        little: true,
        align: 1,
    };
    let mut arg = 1;
    let mut out: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while h.i < h.f.len() {
        let opt = h.f[h.i];
        h.i += 1;
        let mut size = h.optsize(lua, opt)?;
        let pad = h.toalign(total, opt, size);
        total += pad;
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = checknumber(lua, &a, arg)?;
                arg += 1;
                // (Uinttype)(Inttype)n for negatives, (Uinttype)n otherwise (x86-64 casts).
                let mut value: u64 = if n < 0.0 { c_i64(n) as u64 } else { c_u64(n) };
                let mut le = Vec::with_capacity(size);
                for _ in 0..size {
                    le.push((value & 0xff) as u8);
                    value = value.checked_shr(8).unwrap_or(0);
                }
                out.extend_from_slice(&ordered(le, h.little));
            }
            b'x' => out.push(0),
            b'f' => {
                let n = checknumber(lua, &a, arg)? as f32;
                arg += 1;
                out.extend_from_slice(&ordered(n.to_le_bytes().to_vec(), h.little));
            }
            b'd' => {
                let n = checknumber(lua, &a, arg)?;
                arg += 1;
                out.extend_from_slice(&ordered(n.to_le_bytes().to_vec(), h.little));
            }
            b'c' | b's' => {
                let s = checkstring(lua, &a, arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // The argument after the string, as C's post-incremented index.
                    return Err(argerr(lua, arg + 1, "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                    size += 1;
                }
            }
            _ => h.control(lua, opt)?,
        }
        total += size;
    }
    lua.create_string(&out)
}

/// struct.unpack(fmt, data [, pos]).
fn st_unpack(lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let a: Vec<Value> = a.into_iter().collect();
    let f = st_format(lua, &a)?;
    let data = checkstring(lua, &a, 1)?;
    let ld = data.len();
    let pos = optinteger(lua, &a, 2, 1)? as u64;
    if pos == 0 {
        return Err(argerr(lua, 3, "offset must be 1 or greater"));
    }
    let mut pos = (pos - 1) as usize;
    let mut h = Fmt {
        f: &f,
        i: 0,
        little: true,
        align: 1,
    };
    let mut out: Vec<Value> = Vec::new();
    while h.i < h.f.len() {
        let opt = h.f[h.i];
        h.i += 1;
        let mut size = h.optsize(lua, opt)?;
        pos = pos.wrapping_add(h.toalign(pos, opt, size));
        if !(size <= ld && pos <= ld - size) {
            return Err(argerr(lua, 2, "data string too short"));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let bytes = &data[pos..pos + size];
                let mut l: u64 = 0;
                let it: Box<dyn Iterator<Item = &u8>> = if h.little {
                    Box::new(bytes.iter().rev())
                } else {
                    Box::new(bytes.iter())
                };
                for &b in it {
                    l = l.checked_shl(8).unwrap_or(0) | b as u64;
                }
                let v = if opt.is_ascii_lowercase() {
                    let bits = size * 8;
                    if bits > 0 && bits - 1 < 64 {
                        let mask = u64::MAX << (bits - 1);
                        if l & mask != 0 {
                            l |= mask;
                        }
                    }
                    l as i64 as f64
                } else {
                    l as f64
                };
                out.push(Value::Number(v));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let v = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(v as f64));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let v = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(v));
            }
            b'c' => {
                if size == 0 {
                    // The previous result is the length.
                    let Some(n) = tonumber(lua, out.last()) else {
                        return Err(lerr(lua, "format 'c0' needs a previous size"));
                    };
                    size = if n < 0.0 {
                        usize::MAX
                    } else {
                        c_u64(n) as usize
                    };
                    out.pop();
                    if !(size <= ld && pos <= ld - size) {
                        return Err(argerr(lua, 2, "data string too short"));
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(z) = data[pos..].iter().position(|&c| c == 0) else {
                    return Err(lerr(lua, "unfinished string in data"));
                };
                size = z + 1;
                out.push(Value::String(lua.create_string(&data[pos..pos + z])?));
            }
            _ => h.control(lua, opt)?,
        }
        pos = pos.wrapping_add(size);
    }
    out.push(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(MultiValue::from_vec(out))
}

/// struct.size(fmt).
fn st_size(lua: &Lua, a: MultiValue) -> mlua::Result<f64> {
    let a: Vec<Value> = a.into_iter().collect();
    let f = st_format(lua, &a)?;
    let mut h = Fmt {
        f: &f,
        i: 0,
        little: true,
        align: 1,
    };
    let mut pos = 0usize;
    while h.i < h.f.len() {
        let opt = h.f[h.i];
        h.i += 1;
        let size = h.optsize(lua, opt)?;
        pos += h.toalign(pos, opt, size);
        if opt == b's' {
            return Err(argerr(lua, 1, "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(argerr(lua, 1, "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            h.control(lua, opt)?;
        }
        pos += size;
    }
    Ok(pos as f64)
}

/// Makes the struct module table.
fn struct_new(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("pack", lib_fn(lua, st_pack)?)?;
    t.set("unpack", lib_fn(lua, st_unpack)?)?;
    t.set("size", lib_fn(lua, st_size)?)?;
    Ok(t)
}

// ---------------------------------------------------------------------------
// The redis.* additions and the script's RESP version
// ---------------------------------------------------------------------------

thread_local! {
    /// The running script's protocol for redis.call replies (redis.setresp).
    static RESP: Cell<Proto> = const { Cell::new(Proto::Resp2) };
    /// The running script's propagation flags (redis.set_repl): bit 1 AOF, bit 2 replicas.
    static REPL: Cell<u8> = const { Cell::new(3) };
}

/// A new script run starts in RESP2 with full propagation (scriptPrepareForRun).
pub fn begin_run() {
    RESP.with(|r| r.set(Proto::Resp2));
    REPL.with(|r| r.set(3));
}

/// The protocol the running script asked for (redis.setresp).
pub fn resp() -> Proto {
    RESP.with(|r| r.get())
}

/// The running script's redis.set_repl flags (bit 1 AOF, bit 2 replicas).
pub fn repl_flags() -> u8 {
    REPL.with(|r| r.get())
}

/// A future run with the AOF "quiet" mark set on this core during each of its
/// polls only (other tasks on the core, run between polls, keep logging).
pub struct Quiet<'a> {
    quiet: bool,
    f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>,
}

impl<'a> Quiet<'a> {
    /// Wraps `f`; `quiet` false leaves logging as it is.
    pub fn new(quiet: bool, f: impl std::future::Future<Output = ()> + 'a) -> Self {
        Quiet {
            quiet,
            f: Box::pin(f),
        }
    }
}

impl std::future::Future for Quiet<'_> {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let was = crate::persistence::aof::set_quiet(self.quiet);
        let r = self.f.as_mut().poll(cx);
        crate::persistence::aof::set_quiet(was);
        r
    }
}

/// A Redis API error (luaPushError + luaError): "ERR <msg>" at the script line.
fn api_err(lua: &Lua, msg: &str) -> mlua::Error {
    super::lua::call_err(lua, msg.to_string())
}

/// The numeric form of a version "a.b.c" (REDIS_VERSION_NUM).
fn version_num(v: &str) -> f64 {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    );
    ((a << 16) | (b << 8) | c) as f64
}

/// Adds setresp, set_repl, the REPL_* flags, replicate_commands, breakpoint,
/// debug and the version fields to the `redis` table.
pub fn register_redis_api(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    redis.set("REDIS_VERSION_NUM", version_num(crate::REDIS_VERSION))?;
    redis.set("REDIS_VERSION", crate::REDIS_VERSION)?;
    redis.set(
        "setresp",
        lua.create_function(|lua, a: MultiValue| {
            if a.len() != 1 {
                return Err(api_err(lua, "redis.setresp() requires one argument."));
            }
            let a: Vec<Value> = a.into_iter().collect();
            let n = c_i32(tonumber(lua, a.first()).unwrap_or(0.0));
            let p = match n {
                2 => Proto::Resp2,
                3 => Proto::Resp3,
                _ => return Err(api_err(lua, "RESP version must be 2 or 3.")),
            };
            RESP.with(|r| r.set(p));
            Ok(())
        })?,
    )?;
    redis.set(
        "set_repl",
        lua.create_function(|lua, a: MultiValue| {
            if a.len() != 1 {
                return Err(api_err(lua, "redis.set_repl() requires two arguments."));
            }
            let a: Vec<Value> = a.into_iter().collect();
            let flags = c_i32(tonumber(lua, a.first()).unwrap_or(0.0));
            if flags & !3 != 0 {
                return Err(api_err(
                    lua,
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ));
            }
            REPL.with(|r| r.set(flags as u8));
            Ok(())
        })?,
    )?;
    redis.set("REPL_NONE", 0)?;
    redis.set("REPL_AOF", 1)?;
    redis.set("REPL_SLAVE", 2)?;
    redis.set("REPL_REPLICA", 2)?;
    redis.set("REPL_ALL", 3)?;
    // Effects replication is the only mode since 7.0: always on.
    redis.set(
        "replicate_commands",
        lua.create_function(|_, _: MultiValue| Ok(true))?,
    )?;
    // No debugging session (SCRIPT DEBUG) is ever active: breakpoint reports false, debug is silent.
    redis.set(
        "breakpoint",
        lua.create_function(|_, _: MultiValue| Ok(false))?,
    )?;
    redis.set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    Ok(())
}

/// Registers cjson, struct and cmsgpack as globals (Redis's luaLoadLibraries order).
pub fn register(lua: &Lua, scope: JsonScope) -> mlua::Result<()> {
    let g = lua.globals();
    g.raw_set("cjson", cjson_new(lua, Some(scope))?)?;
    g.raw_set("struct", struct_new(lua)?)?;
    g.raw_set("cmsgpack", cmsgpack_new(lua)?)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// RESP ↔ Lua
// ---------------------------------------------------------------------------

/// A table `{name = value}`.
fn single(lua: &Lua, name: &str, v: impl mlua::IntoLua) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(name, v)?;
    Ok(Value::Table(t))
}

/// Parses one RESP2/RESP3 reply into a Lua value by Redis's rules
/// (redisProtocolToLuaType); Some(error text) for a top-level error reply.
pub fn resp_to_lua(lua: &Lua, b: &[u8], pos: &mut usize) -> mlua::Result<(Value, Option<String>)> {
    if *pos >= b.len() {
        return Ok((Value::Boolean(false), None));
    }
    let t = b[*pos];
    let e = memchr::memchr(b'\r', &b[*pos + 1..])
        .map(|i| *pos + 1 + i)
        .unwrap_or(b.len());
    let text = &b[*pos + 1..e];
    *pos = (e + 2).min(b.len());
    let num = || -> i64 {
        std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let bulk = |pos: &mut usize, n: i64| -> &[u8] {
        let n = n.max(0) as usize;
        let end = (*pos + n).min(b.len());
        let s = &b[*pos..end];
        *pos = (end + 2).min(b.len());
        s
    };
    Ok(match t {
        b':' => (Value::Number(num() as f64), None),
        b'+' => (single(lua, "ok", lua.create_string(text)?)?, None),
        b'-' => {
            let msg = String::from_utf8_lossy(text).into_owned();
            (single(lua, "err", lua.create_string(text)?)?, Some(msg))
        }
        b'$' => {
            let n = num();
            if n < 0 {
                (Value::Boolean(false), None)
            } else {
                (Value::String(lua.create_string(bulk(pos, n))?), None)
            }
        }
        b'*' | b'>' => {
            let n = num();
            if n < 0 {
                (Value::Boolean(false), None)
            } else {
                let tb = lua.create_table()?;
                for i in 0..n {
                    // Nested errors stay {err=...} elements.
                    let (v, _) = resp_to_lua(lua, b, pos)?;
                    tb.raw_set(i + 1, v)?;
                }
                (Value::Table(tb), None)
            }
        }
        b'%' => {
            let m = lua.create_table()?;
            for _ in 0..num() {
                let (k, _) = resp_to_lua(lua, b, pos)?;
                let (v, _) = resp_to_lua(lua, b, pos)?;
                if !matches!(k, Value::Nil) {
                    m.raw_set(k, v)?;
                }
            }
            (single(lua, "map", m)?, None)
        }
        b'~' => {
            let m = lua.create_table()?;
            for _ in 0..num() {
                let (k, _) = resp_to_lua(lua, b, pos)?;
                if !matches!(k, Value::Nil) {
                    m.raw_set(k, true)?;
                }
            }
            (single(lua, "set", m)?, None)
        }
        b'|' => {
            // Attributes are not shown to scripts: skip them, return the reply they precede.
            for _ in 0..num() * 2 {
                resp_to_lua(lua, b, pos)?;
            }
            return resp_to_lua(lua, b, pos);
        }
        b'_' => (Value::Nil, None),
        b'#' => (Value::Boolean(text == b"t"), None),
        b',' => {
            let d = std::str::from_utf8(text)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0);
            (single(lua, "double", d)?, None)
        }
        b'(' => (single(lua, "big_number", lua.create_string(text)?)?, None),
        b'=' => {
            let s = bulk(pos, num());
            let (format, body) = if s.len() >= 4 {
                (&s[..3], &s[4..])
            } else {
                (s, &s[..0])
            };
            let v = lua.create_table()?;
            v.raw_set("string", lua.create_string(body)?)?;
            v.raw_set("format", lua.create_string(format)?)?;
            (single(lua, "verbatim_string", v)?, None)
        }
        _ => (Value::Boolean(false), None),
    })
}

/// `\r` and `\n` become spaces (sdsmapchars on status and big number replies).
fn no_newlines(s: &[u8]) -> Vec<u8> {
    s.iter()
        .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
        .collect()
}

/// Writes a Lua value as a reply by Redis's rules (luaReplyToRedisReply); the
/// script's own protocol (`script`) decides how booleans are sent.
pub fn lua_to_resp(v: &Value, out: &mut ReplyBuf, script: Proto, depth: usize) {
    match v {
        Value::Integer(n) => out.int(*n),
        Value::Number(n) => out.int(c_i64(*n)),
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) => {
            if script == Proto::Resp2 {
                if *b {
                    out.int(1)
                } else {
                    out.null()
                }
            } else {
                out.boolean(*b)
            }
        }
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return out.error_bytes(&e.as_bytes());
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                // sdsnew(lua_tostring): the text ends at its first NUL.
                let s = s.as_bytes();
                let s = &s[..memchr::memchr(0, &s).unwrap_or(s.len())];
                return out.simple_bytes(&no_newlines(s));
            }
            if let Ok(Value::Number(_) | Value::Integer(_)) = t.raw_get::<Value>("double") {
                // Read as f64 from the stack: as a Value, -0 and tiny numbers would become 0.
                return out.double(t.raw_get::<f64>("double").unwrap_or(0.0));
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("big_number") {
                let s = no_newlines(&s.as_bytes());
                if out.resp3() {
                    let mut raw = Vec::with_capacity(s.len() + 3);
                    raw.push(b'(');
                    raw.extend_from_slice(&s);
                    raw.extend_from_slice(b"\r\n");
                    return out.raw(&raw);
                }
                return out.bulk(&s);
            }
            if let Ok(Value::Table(vt)) = t.raw_get::<Value>("verbatim_string") {
                if let (Ok(Value::String(f)), Ok(Value::String(s))) =
                    (vt.raw_get::<Value>("format"), vt.raw_get::<Value>("string"))
                {
                    let f = f.as_bytes();
                    let mut fmt = [0u8; 3];
                    for (i, c) in f.iter().take(3).enumerate() {
                        fmt[i] = *c;
                    }
                    return out.verbatim(&fmt, &s.as_bytes());
                }
            }
            if depth > 1000 {
                return out.error("ERR reached lua stack limit");
            }
            if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
                // Counted, then written: holding every pair would not fit mlua's reference stack.
                out.map_len(m.clone().pairs::<Value, Value>().count());
                for (k, v) in m.pairs::<Value, Value>().filter_map(Result::ok) {
                    lua_to_resp(&k, out, script, depth + 1);
                    lua_to_resp(&v, out, script, depth + 1);
                }
                return;
            }
            if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
                out.set_len(s.clone().pairs::<Value, Value>().count());
                for (k, _) in s.pairs::<Value, Value>().filter_map(Result::ok) {
                    lua_to_resp(&k, out, script, depth + 1);
                }
                return;
            }
            // The array part up to the first nil: counted, then written (one
            // value held at a time).
            let mut n = 0;
            while !matches!(t.raw_get::<Value>(n + 1), Ok(Value::Nil) | Err(_)) {
                n += 1;
            }
            out.array_len(n);
            for i in 1..=n {
                if let Ok(v) = t.raw_get::<Value>(i) {
                    lua_to_resp(&v, out, script, depth + 1);
                }
            }
        }
        _ => out.null(),
    }
}
