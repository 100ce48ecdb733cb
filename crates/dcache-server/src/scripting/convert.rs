//! Redis's conversions between Lua values and RESP, both ways (Redis 7.0's `script_lua.c`).
//!
//! | Lua                          | RESP                                   |
//! |------------------------------|----------------------------------------|
//! | number                       | integer, truncated toward zero         |
//! | string                       | bulk string                            |
//! | table with `err` (a string)  | error                                  |
//! | table with `ok` (a string)   | status                                 |
//! | other table                  | array of `t[1]`, `t[2]`, … to the first nil |
//! | `true`                       | integer 1                              |
//! | `false`, nil, anything else  | null bulk                              |
//!
//! The other way: integer → number, bulk → string, null → `false`, array → table, status →
//! `{ok = …}`, error → `{err = …}`.

use dcache_protocol::{Frame, ReplyWriter};
use mlua::{Lua, Table, Value};

/// Nesting past this is answered as Redis answers a table nested past Lua's stack.
const MAX_DEPTH: usize = 1000;

/// Writes a script's value as a reply.
pub fn write_value(out: &mut ReplyWriter<'_>, value: &Value, depth: usize) {
    match value {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(true) => out.int(1),
        Value::Integer(n) => out.int(*n),
        Value::Number(n) => out.int(truncate(*n)),
        Value::Table(t) => write_table(out, t, depth),
        _ => out.null(),
    }
}

fn write_table(out: &mut ReplyWriter<'_>, t: &Table, depth: usize) {
    if depth >= MAX_DEPTH {
        out.error("ERR reached lua stack limit");
        return;
    }
    if let Ok(Value::String(err)) = t.raw_get::<Value>("err") {
        out.error(&String::from_utf8_lossy(&err.as_bytes()));
        return;
    }
    if let Ok(Value::String(ok)) = t.raw_get::<Value>("ok") {
        let text = String::from_utf8_lossy(&ok.as_bytes()).replace(['\r', '\n'], " ");
        out.simple(&text);
        return;
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
    }
    out.array(items.len());
    for item in &items {
        write_value(out, item, depth + 1);
    }
}

/// C's `(long long)` cast of a double as x86-64 does it: out of range and NaN give `i64::MIN`.
#[must_use]
pub fn truncate(n: f64) -> i64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&n) {
        n as i64
    } else {
        i64::MIN
    }
}

/// A command's reply as the Lua value `redis.call` returns, or its error reply.
///
/// # Errors
/// Lua ran out of memory.
pub fn frame_to_lua(lua: &Lua, frame: Frame) -> mlua::Result<Result<Value, String>> {
    Ok(match frame {
        Frame::Error(msg) => Err(msg),
        other => Ok(to_lua(lua, other)?),
    })
}

fn to_lua(lua: &Lua, frame: Frame) -> mlua::Result<Value> {
    Ok(match frame {
        Frame::Integer(n) => Value::Integer(n),
        Frame::Bulk(b) => Value::String(lua.create_string(&b)?),
        Frame::Null => Value::Boolean(false),
        Frame::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", s)?;
            Value::Table(t)
        }
        Frame::Error(msg) => error_table(lua, &msg)?,
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        // Not written by a RESP2 writer; kept for completeness.
        Frame::Map(pairs) => {
            let t = lua.create_table()?;
            for (i, (k, v)) in pairs.into_iter().enumerate() {
                t.raw_set(2 * i + 1, to_lua(lua, k)?)?;
                t.raw_set(2 * i + 2, to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
        Frame::Double(d) => {
            Value::String(lua.create_string(dcache_protocol::reply::format_double(d))?)
        }
        Frame::Boolean(b) => Value::Integer(i64::from(b)),
        Frame::BigNumber(s) => Value::String(lua.create_string(&s)?),
        #[allow(unreachable_patterns, reason = "frames this writer never makes")]
        _ => Value::Boolean(false),
    })
}

/// `{err = msg}`.
///
/// # Errors
/// Lua ran out of memory.
pub fn error_table(lua: &Lua, msg: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", msg)?;
    Ok(Value::Table(t))
}

/// A Lua number as a command argument: C's `%.17g`, as Redis formats it.
#[must_use]
pub fn number_arg(n: f64) -> String {
    format_g(n, 17)
}

/// C's `%.<precision>g`.
#[must_use]
pub fn format_g(n: f64, precision: i32) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let p = precision;
    let sci = format!("{:.*e}", (p - 1) as usize, n);
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if (-4..p).contains(&exp) {
        let fixed = format!("{:.*}", (p - 1 - exp) as usize, n);
        trim_zeros(&fixed).to_owned()
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_zeros(mantissa), exp.abs())
    }
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_as_c_does_with_17_digits() {
        for (n, text) in [
            (1.5, "1.5"),
            (1e20, "1e+20"),
            (100.0, "100"),
            (0.1, "0.10000000000000001"),
            (1.0 / 3.0, "0.33333333333333331"),
            (-0.0, "-0"),
            (2f64.powi(60), "1.152921504606847e+18"),
            (1e-5, "1.0000000000000001e-05"),
        ] {
            assert_eq!(number_arg(n), text, "{n}");
        }
    }

    #[test]
    fn truncation_follows_the_c_cast() {
        assert_eq!(truncate(3.99), 3);
        assert_eq!(truncate(-3.99), -3);
        assert_eq!(truncate(1e20), i64::MIN);
        assert_eq!(truncate(f64::NAN), i64::MIN);
        assert_eq!(truncate(2f64.powi(53)), 1 << 53);
    }
}
