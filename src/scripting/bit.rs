//! The `bit` library (LuaBitOp, as Redis bundles it), in Rust: 32-bit operations on Lua numbers.

use mlua::{Lua, MultiValue, Table, Value};

/// `luaL_argerror`'s text, positioned at the calling script line as Redis shows it.
fn arg_error(lua: &Lua, i: usize, name: &str, got: &Value) -> mlua::Error {
    let what = got.type_name();
    mlua::Error::RuntimeError(format!(
        "user_script:{}: bad argument #{} to '{}' (number expected, got {})",
        super::lua::script_line(lua),
        i,
        name,
        what
    ))
}

/// `barg`: a number (or numeric string) normalized to int32 as LuaBitOp does
/// (round to nearest even, then modulo 2^32).
fn barg(lua: &Lua, args: &[Value], i: usize, name: &str) -> mlua::Result<i32> {
    let v = args.get(i).cloned().unwrap_or(Value::Nil);
    let n = match &v {
        Value::Integer(n) => *n as f64,
        Value::Number(n) => *n,
        Value::String(s) => match s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()) {
            Some(n) => n,
            None => {
                return Err(arg_error(lua, i + 1, name, &v));
            }
        },
        Value::Nil if i >= args.len() => {
            return Err(mlua::Error::RuntimeError(format!(
                "user_script:{}: bad argument #{} to '{}' (number expected, got no value)",
                super::lua::script_line(lua),
                i + 1,
                name
            )))
        }
        other => return Err(arg_error(lua, i + 1, name, other)),
    };
    let r = n.round_ties_even();
    Ok((r.rem_euclid(4_294_967_296.0) as u64) as u32 as i32)
}

/// Registers `bit` in `g`.
pub fn register(lua: &Lua, g: &Table) -> mlua::Result<()> {
    let bit = lua.create_table()?;
    macro_rules! unary {
        ($name:literal, $f:expr) => {
            bit.set(
                $name,
                lua.create_function(|lua, a: MultiValue| {
                    let a: Vec<Value> = a.into_iter().collect();
                    let x = barg(lua, &a, 0, $name)?;
                    let f: fn(i32) -> i32 = $f;
                    Ok(f(x) as f64)
                })?,
            )?;
        };
    }
    macro_rules! fold {
        ($name:literal, $f:expr) => {
            bit.set(
                $name,
                lua.create_function(|lua, a: MultiValue| {
                    let a: Vec<Value> = a.into_iter().collect();
                    let mut x = barg(lua, &a, 0, $name)?;
                    let f: fn(i32, i32) -> i32 = $f;
                    for i in 1..a.len() {
                        x = f(x, barg(lua, &a, i, $name)?);
                    }
                    Ok(x as f64)
                })?,
            )?;
        };
    }
    macro_rules! shift {
        ($name:literal, $f:expr) => {
            bit.set(
                $name,
                lua.create_function(|lua, a: MultiValue| {
                    let a: Vec<Value> = a.into_iter().collect();
                    let x = barg(lua, &a, 0, $name)?;
                    let n = (barg(lua, &a, 1, $name)? & 31) as u32;
                    let f: fn(i32, u32) -> i32 = $f;
                    Ok(f(x, n) as f64)
                })?,
            )?;
        };
    }
    unary!("tobit", |x| x);
    unary!("bnot", |x| !x);
    unary!("bswap", |x| x.swap_bytes());
    fold!("band", |a, b| a & b);
    fold!("bor", |a, b| a | b);
    fold!("bxor", |a, b| a ^ b);
    shift!("lshift", |x, n| ((x as u32) << n) as i32);
    shift!("rshift", |x, n| ((x as u32) >> n) as i32);
    shift!("arshift", |x, n| x >> n);
    shift!("rol", |x, n| (x as u32).rotate_left(n) as i32);
    shift!("ror", |x, n| (x as u32).rotate_right(n) as i32);
    bit.set(
        "tohex",
        lua.create_function(|lua, a: MultiValue| {
            let a: Vec<Value> = a.into_iter().collect();
            let mut b = barg(lua, &a, 0, "tohex")? as u32;
            let mut n = if matches!(a.get(1), None | Some(Value::Nil)) {
                8
            } else {
                barg(lua, &a, 1, "tohex")?
            };
            let digits: &[u8; 16] = if n < 0 {
                n = -n;
                b"0123456789ABCDEF"
            } else {
                b"0123456789abcdef"
            };
            let n = n.min(8) as usize;
            let mut buf = vec![b'0'; n];
            for i in (0..n).rev() {
                buf[i] = digits[(b & 15) as usize];
                b >>= 4;
            }
            lua.create_string(&buf)
        })?,
    )?;
    g.raw_set("bit", bit)?;
    Ok(())
}
