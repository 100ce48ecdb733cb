//! `cjson.encode`, `cjson.decode` and `cjson.null`, as lua-cjson (bundled by Redis) behaves with
//! Redis's settings: numbers as `%.14g`, `/` escaped, an empty table as `{}`, a table of
//! positive integer keys as an array unless it is excessively sparse, keys in Lua's `next`
//! order. Decoding goes through `serde_json`; its error messages are not lua-cjson's.

use mlua::{LightUserData, Lua, Table, Value};

use super::convert::format_g;

/// lua-cjson's `encode_max_depth`.
const MAX_DEPTH: usize = 1000;

/// `cjson.null`: a light userdata holding NULL, as in lua-cjson.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// The `cjson` table.
///
/// # Errors
/// Lua ran out of memory.
pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let cjson = lua.create_table()?;
    cjson.raw_set("null", null())?;
    cjson.raw_set(
        "encode",
        lua.create_function(|lua, value: Value| {
            let mut out = Vec::new();
            encode(&value, &mut out, 0).map_err(|msg| located(lua, &msg))?;
            lua.create_string(&out)
        })?,
    )?;
    cjson.raw_set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            let json: serde_json::Value =
                serde_json::from_slice(&text.as_bytes()).map_err(|e| {
                    located(
                        lua,
                        &format!("Expected value but found invalid token ({e})"),
                    )
                })?;
            decode(lua, json)
        })?,
    )?;
    Ok(cjson)
}

/// lua-cjson's errors name the script's line, as `luaL_error` does.
fn located(lua: &Lua, msg: &str) -> mlua::Error {
    let place = lua
        .inspect_stack(1, |d| {
            let source = d.source();
            source
                .short_src
                .map(|s| format!("{s}:{}: ", d.current_line().unwrap_or(0)))
        })
        .flatten()
        .unwrap_or_default();
    mlua::Error::runtime(format!("{place}{msg}"))
}

fn encode(value: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    match value {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => out.extend_from_slice(format_g(*n as f64, 14).as_bytes()),
        Value::Number(n) => {
            if !n.is_finite() {
                return Err("Cannot serialise number: must not be NaN or Inf".to_owned());
            }
            out.extend_from_slice(format_g(*n, 14).as_bytes());
        }
        Value::String(s) => string(&s.as_bytes(), out),
        Value::Table(t) => table(t, out, depth + 1)?,
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            ));
        }
    }
    Ok(())
}

fn string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn table(t: &Table, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("Cannot serialise, excessive nesting ({depth})"));
    }
    let pairs: Vec<(Value, Value)> = t
        .pairs::<Value, Value>()
        .collect::<mlua::Result<_>>()
        .map_err(|e| e.to_string())?;
    // An array when every key is a positive integer (lua-cjson's `lua_array_length`).
    let mut max = 0i64;
    let mut array = !pairs.is_empty();
    for (k, _) in &pairs {
        let n = match k {
            Value::Integer(n) if *n >= 1 => *n,
            _ => {
                array = false;
                break;
            }
        };
        max = max.max(n);
    }
    if array {
        if max > 2 * pairs.len() as i64 && max > 10 {
            return Err("Cannot serialise table: excessively sparse array".to_owned());
        }
        out.push(b'[');
        for i in 1..=max {
            if i > 1 {
                out.push(b',');
            }
            let v = t.raw_get::<Value>(i).map_err(|e| e.to_string())?;
            encode(&v, out, depth)?;
        }
        out.push(b']');
        return Ok(());
    }
    out.push(b'{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match k {
            Value::String(s) => string(&s.as_bytes(), out),
            Value::Integer(n) => string(format_g(*n as f64, 14).as_bytes(), out),
            Value::Number(n) => string(format_g(*n, 14).as_bytes(), out),
            _ => {
                return Err(
                    "Cannot serialise table: table key must be a number or string".to_owned(),
                );
            }
        }
        out.push(b':');
        encode(v, out, depth)?;
    }
    out.push(b'}');
    Ok(())
}

fn decode(lua: &Lua, json: serde_json::Value) -> mlua::Result<Value> {
    Ok(match json {
        serde_json::Value::Null => null(),
        serde_json::Value::Bool(b) => Value::Boolean(b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(lua.create_string(&s)?),
        serde_json::Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, decode(lua, item)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                t.raw_set(k, decode(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}
