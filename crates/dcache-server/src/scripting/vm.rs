//! One Lua state set up as Redis 7.0 sets up its own: the libraries it exposes, the `redis`
//! table, and the sandbox.
//!
//! Redis patches Lua so that tables can be read-only; stock Lua 5.1 cannot, so the sandbox works
//! with proxies: each table a script sees as a global or a library (`_G`, `string`, `redis`, …)
//! is an empty table whose metatable reads through to the real one and refuses writes with
//! Redis's words. `rawset` and `setmetatable` refuse them too; what a script stores in a proxy
//! by other raw means (`table.insert(_G, x)`) is wiped when it ends, so nothing leaks from one
//! script to the next. Reading a global that does not exist is an error, as in Redis.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};
use parking_lot::Mutex;

use super::RunFlags;

/// `lrand48`'s state after `srand48` was never called: Redis's `math.random` starts here.
pub(crate) const LRAND48_SEED: u64 = 0x1234_ABCD_330E;
const LRAND48_MAX: i64 = i32::MAX as i64;

/// Most bytes one Lua state may hold while a script runs or compiles ([`Vm::bounded`]): far
/// beyond any script's needs, small beside the machine.
const MEMORY_LIMIT: usize = 512 << 20;

/// Instructions between two looks at the kill flag: often enough that `SCRIPT KILL` stops a
/// loop at once, rare enough to cost nothing measurable.
const HOOK_EVERY: u32 = 10_000;

/// The Lua half of the set-up: the sandbox, and the runner that calls a script under Redis's
/// error handler. Runs once per state, as its own chunk (named `=dcache`, which the error
/// handler skips when it looks for the script's line).
const BOOTSTRAP: &str = r#"
local G, handler = ...
local error, type, tostring, next, pairs = error, type, tostring, next, pairs
local rawset, rawget, setmetatable, getmetatable = rawset, rawget, setmetatable, getmetatable
local setfenv, loadstring, load, xpcall, select = setfenv, loadstring, load, xpcall, select

local READONLY = 'Attempt to modify a readonly table'
-- proxy -> the table it shows
local real_of = setmetatable({}, {__mode = 'k'})

local function refuse() error(READONLY, 2) end

-- What getmetatable shows of a read-only table: Redis shows its metatable, read-only too.
local shown_meta = setmetatable({}, {__newindex = refuse, __metatable = false})
real_of[shown_meta] = {}

local function protect(t)
  local proxy = setmetatable({}, {__index = t, __newindex = refuse, __metatable = shown_meta})
  real_of[proxy] = t
  return proxy
end

local redis = G.redis
redis.error_reply = function(...)
  local msg = ...
  if select('#', ...) ~= 1 or type(msg) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  if msg:sub(1, 1) ~= '-' then msg = '-' .. msg end
  local space = msg:find(' ', 1, true)
  local text
  if space then
    text = msg:sub(2, space - 1) .. ' ' .. msg:sub(space + 1)
  else
    text = 'ERR ' .. msg:sub(2)
  end
  return {err = (text:gsub('[\r\n]+$', ''))}
end
redis.status_reply = function(...)
  local msg = ...
  if select('#', ...) ~= 1 or type(msg) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  return {ok = msg}
end

G.rawset = function(t, k, v)
  if real_of[t] then error(READONLY, 0) end
  return rawset(t, k, v)
end
G.rawget = function(t, k)
  local real = real_of[t]
  if real then return rawget(real, k) end
  return rawget(t, k)
end
G.setmetatable = function(t, m)
  if real_of[t] then error(READONLY, 0) end
  return setmetatable(t, m)
end

local globals = protect(G)
G._G = globals
for _, name in pairs({'string', 'table', 'math', 'coroutine', 'bit', 'cjson', 'redis'}) do
  G[name] = protect(G[name])
end
-- Strings index their library through this metatable: show it read-only too.
local string_meta = getmetatable('')
string_meta.__index = G.string
string_meta.__metatable = protect(string_meta)

-- Chunks a script loads see the same read-only globals as the script.
G.loadstring = function(s, name)
  local f, e = loadstring(s, name)
  if f then setfenv(f, globals) end
  return f, e
end
G.load = function(fn, name)
  local f, e = load(fn, name)
  if f then setfenv(f, globals) end
  return f, e
end

-- A global that does not exist is an error, not nil.
setmetatable(G, {__index = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end, __metatable = false})

-- Calls a script with its KEYS and ARGV; wipes whatever it stored in the proxies by raw means.
local function run(f, keys, argv)
  rawset(G, 'KEYS', keys)
  rawset(G, 'ARGV', argv)
  local ok, result = xpcall(f, handler)
  rawset(G, 'KEYS', nil)
  rawset(G, 'ARGV', nil)
  for proxy in pairs(real_of) do
    if next(proxy) ~= nil then
      for k in pairs(proxy) do rawset(proxy, k, nil) end
    end
  end
  return ok, result
end
return globals, run
"#;

/// A Lua state ready to run scripts, and what it compiled.
pub struct Vm {
    pub(crate) lua: Lua,
    /// What scripts see as their globals (read-only).
    pub(crate) globals: Table,
    /// Calls a script: `runner(f, KEYS, ARGV)` returns xpcall's `ok, result`.
    pub(crate) runner: Function,
    /// What `redis.call` and `redis.pcall`, made once, reach the run in progress through.
    pub(crate) loan: Arc<super::loan::Loan<super::run::CallerOf>>,
    /// Compiled scripts by SHA-1, under [`super::Scripts::epoch`] `epoch`.
    pub(crate) functions: hashbrown::HashMap<String, Function>,
    pub(crate) epoch: u64,
    pub(crate) flags: Arc<RunFlags>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("functions", &self.functions.len())
            .finish_non_exhaustive()
    }
}

impl Vm {
    /// A fresh state with Redis's libraries and sandbox.
    ///
    /// # Errors
    /// Lua failed to set up (out of memory).
    pub fn new(rand: Arc<Mutex<u64>>) -> mlua::Result<Vm> {
        // Lua 5.1's base library includes coroutines; no io, os, package or debug.
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        // Unbounded but while a script runs or compiles ([`Vm::bounded`]); this also checks
        // that the state lets its memory be bounded.
        lua.set_memory_limit(0)?;
        let g = lua.globals();
        // The bootstrap runs with the whole base library (it keeps `setfenv` and `loadstring`
        // for the sandbox's own use); scripts get what is left after the removals below.
        let base = lua.create_table()?;
        for pair in g.pairs::<Value, Value>() {
            let (k, v) = pair?;
            base.raw_set(k, v)?;
        }
        for name in [
            "print", "loadfile", "dofile", "setfenv", "getfenv", "newproxy", "module", "require",
        ] {
            g.raw_set(name, Value::Nil)?;
        }

        install_math(&lua, &g, rand)?;
        g.raw_set("bit", bit_library(&lua)?)?;
        g.raw_set("cjson", super::cjson::library(&lua)?)?;
        let redis = redis_table(&lua)?;
        let loan = Arc::default();
        super::run::install_call(&lua, &redis, &loan)?;
        g.raw_set("redis", redis)?;

        let flags = Arc::new(RunFlags::default());
        let hook_flags = Arc::clone(&flags);
        lua.set_global_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                if hook_flags.kill.load(Ordering::Relaxed) {
                    Err(mlua::Error::external(Killed))
                } else {
                    Ok(VmState::Continue)
                }
            },
        )?;

        let handler = lua.create_function(super::run::error_handler)?;
        let (globals, runner): (Table, Function) = lua
            .load(BOOTSTRAP)
            .set_name("=dcache")
            .set_environment(base)
            .call((g.clone(), handler))?;
        Ok(Vm {
            globals,
            runner,
            loan,
            functions: hashbrown::HashMap::new(),
            epoch: 0,
            flags,
            lua,
        })
    }

    /// Compiles a script body as Redis names it (`@user_script`), with the sandbox's globals.
    ///
    /// # Errors
    /// Redis's compile error reply.
    pub fn compile(&self, body: &[u8]) -> Result<Function, String> {
        self.bounded(|| {
            self.lua
                .load(body)
                .set_name("@user_script")
                .set_environment(self.globals.clone())
                .into_function()
        })
        .map_err(|e| {
            let msg = match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            };
            format!("ERR Error compiling script (new function): {msg}")
        })
    }

    /// Runs `f` with Lua's memory bounded by [`MEMORY_LIMIT`]: past it, the script (or its
    /// compilation) fails with "not enough memory". Redis leaves Lua's memory unbounded; a cache
    /// with a memory budget should not let one script take the machine.
    ///
    /// Only for what runs a script's own code: while a state has a limit, mlua makes every call
    /// into Lua a protected call (a `lua_pcall` of its own) so that it can report running out,
    /// which cost an `EVALSHA` of a small script a third of its CPU when the bound was always
    /// on. Outside, the state allocates as Rust does (aborting if the machine has no memory).
    pub(crate) fn bounded<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Lifts the bound on return or unwind.
        struct Unbound<'a>(&'a Lua);
        impl Drop for Unbound<'_> {
            fn drop(&mut self) {
                let _ = self.0.set_memory_limit(0);
            }
        }
        let _ = self.lua.set_memory_limit(MEMORY_LIMIT);
        let _unbound = Unbound(&self.lua);
        f()
    }
}

/// The error a killed script's hook raises.
#[derive(Debug)]
pub(crate) struct Killed;

impl std::fmt::Display for Killed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Script killed by user with SCRIPT KILL...")
    }
}

impl std::error::Error for Killed {}

/// Redis replaces `math.random` and `math.randomseed` with its own `lrand48`, so that scripts
/// draw the same numbers on every server started alike.
fn install_math(lua: &Lua, g: &Table, rand: Arc<Mutex<u64>>) -> mlua::Result<()> {
    let math: Table = g.raw_get("math")?;
    let state = Arc::clone(&rand);
    math.raw_set(
        "random",
        lua.create_function(move |_, args: mlua::Variadic<f64>| {
            let r = (lrand48(&mut state.lock()) % LRAND48_MAX) as f64 / LRAND48_MAX as f64;
            match args.len() {
                0 => Ok(r),
                1 => {
                    let m = args[0].floor();
                    if m < 1.0 {
                        return Err(mlua::Error::runtime(
                            "bad argument #1 to 'random' (interval is empty)",
                        ));
                    }
                    Ok((r * m).floor() + 1.0)
                }
                2 => {
                    let (l, u) = (args[0].floor(), args[1].floor());
                    if l > u {
                        return Err(mlua::Error::runtime(
                            "bad argument #2 to 'random' (interval is empty)",
                        ));
                    }
                    Ok((r * (u - l + 1.0)).floor() + l)
                }
                _ => Err(mlua::Error::runtime("wrong number of arguments")),
            }
        })?,
    )?;
    math.raw_set(
        "randomseed",
        lua.create_function(move |_, seed: f64| {
            // `srand48((int32_t)seed)`: the seed's low 32 bits above lrand48's constant.
            let seed = seed as i64 as i32 as u32;
            *rand.lock() = (u64::from(seed) << 16) | 0x330E;
            Ok(())
        })?,
    )?;
    Ok(())
}

/// One step of POSIX `lrand48`: 48-bit linear congruence, the top 31 bits out.
pub(crate) fn lrand48(state: &mut u64) -> i64 {
    *state = (state.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & ((1 << 48) - 1);
    (*state >> 17) as i64
}

/// LuaBitOp's `bit` library (Redis bundles it): 32-bit operations on numbers.
fn bit_library(lua: &Lua) -> mlua::Result<Table> {
    /// LuaBitOp's conversion: the low 32 bits of the number, rounded, as a signed integer.
    fn tobit(n: f64) -> i32 {
        (n + 6_755_399_441_055_744.0).to_bits() as u32 as i32
    }
    let bit = lua.create_table()?;
    bit.raw_set("tobit", lua.create_function(|_, n: f64| Ok(tobit(n)))?)?;
    bit.raw_set("bnot", lua.create_function(|_, n: f64| Ok(!tobit(n)))?)?;
    type Fold = fn(i32, i32) -> i32;
    let folds: [(&str, Fold); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, op) in folds {
        bit.raw_set(
            name,
            lua.create_function(move |_, (first, rest): (f64, mlua::Variadic<f64>)| {
                Ok(rest.iter().fold(tobit(first), |acc, &n| op(acc, tobit(n))))
            })?,
        )?;
    }
    type Shift = fn(i32, u32) -> i32;
    let shifts: [(&str, Shift); 5] = [
        ("lshift", |a, n| ((a as u32) << n) as i32),
        ("rshift", |a, n| ((a as u32) >> n) as i32),
        ("arshift", |a, n| a >> n),
        ("rol", |a, n| (a as u32).rotate_left(n) as i32),
        ("ror", |a, n| (a as u32).rotate_right(n) as i32),
    ];
    for (name, op) in shifts {
        bit.raw_set(
            name,
            lua.create_function(move |_, (a, n): (f64, f64)| {
                Ok(op(tobit(a), (tobit(n) & 31) as u32))
            })?,
        )?;
    }
    bit.raw_set(
        "bswap",
        lua.create_function(|_, n: f64| Ok(tobit(n).swap_bytes()))?,
    )?;
    bit.raw_set(
        "tohex",
        lua.create_function(|_, (n, digits): (f64, Option<f64>)| {
            let mut digits = digits.map_or(8, tobit);
            let upper = digits < 0;
            if upper {
                digits = -digits;
            }
            let digits = digits.clamp(1, 8) as usize;
            let value = tobit(n) as u32;
            let text = if upper {
                format!("{value:08X}")
            } else {
                format!("{value:08x}")
            };
            Ok(text[8 - digits..].to_owned())
        })?,
    )?;
    Ok(bit)
}

/// The `redis` table's constants and the functions that need no connection; `call` and `pcall`
/// reach the run in progress (`super::run::install_call`).
fn redis_table(lua: &Lua) -> mlua::Result<Table> {
    let redis = lua.create_table()?;
    redis.raw_set(
        "sha1hex",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            if args.len() != 1 {
                return Err(mlua::Error::runtime("wrong number of arguments"));
            }
            let text = lua
                .coerce_string(args[0].clone())?
                .map(|s| s.as_bytes().to_vec())
                .unwrap_or_default();
            Ok(super::sha1_hex(&text))
        })?,
    )?;
    redis.raw_set(
        "log",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            if args.len() < 2 {
                return Err(mlua::Error::runtime(
                    "redis.log() requires two arguments or more.",
                ));
            }
            let level = match &args[0] {
                Value::Integer(n) => *n as f64,
                Value::Number(n) => *n,
                _ => {
                    return Err(mlua::Error::runtime(
                        "First argument must be a number (log level).",
                    ));
                }
            };
            if !(0.0..=3.0).contains(&level) {
                return Err(mlua::Error::runtime("Invalid debug level."));
            }
            let mut text = Vec::new();
            for (i, v) in args.iter().skip(1).enumerate() {
                if i > 0 {
                    text.push(b' ');
                }
                if let Some(s) = lua.coerce_string(v.clone())? {
                    text.extend_from_slice(&s.as_bytes());
                }
            }
            let text = String::from_utf8_lossy(&text);
            match level as u8 {
                0 => tracing::debug!(target: "dcache::script", "{text}"),
                1 | 2 => tracing::info!(target: "dcache::script", "{text}"),
                _ => tracing::warn!(target: "dcache::script", "{text}"),
            }
            Ok(())
        })?,
    )?;
    for (name, value) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.raw_set(name, value)?;
    }
    redis.raw_set("REDIS_VERSION", crate::command::REDIS_COMPAT_VERSION)?;
    redis.raw_set(
        "REDIS_VERSION_NUM",
        version_num(crate::command::REDIS_COMPAT_VERSION),
    )?;
    // Effects replication is the only kind since Redis 7: these are accepted and do nothing.
    redis.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.raw_set(
        "set_repl",
        lua.create_function(|_, flags: mlua::Variadic<Value>| match flags.first() {
            Some(Value::Integer(n)) if (0..=3).contains(n) => Ok(()),
            Some(Value::Number(n)) if (0.0..=3.0).contains(n) => Ok(()),
            _ => Err(mlua::Error::runtime(
                "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
            )),
        })?,
    )?;
    redis.raw_set(
        "setresp",
        lua.create_function(|_, version: mlua::Variadic<Value>| match version.first() {
            Some(Value::Integer(2)) => Ok(()),
            Some(Value::Number(n)) if *n == 2.0 => Ok(()),
            Some(Value::Integer(3)) => Err(mlua::Error::runtime(
                "RESP3 replies in scripts are not supported by dcache.",
            )),
            Some(Value::Number(n)) if *n == 3.0 => Err(mlua::Error::runtime(
                "RESP3 replies in scripts are not supported by dcache.",
            )),
            _ => Err(mlua::Error::runtime("RESP version must be 2 or 3.")),
        })?,
    )?;
    redis.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.raw_set(
        "debug",
        lua.create_function(|_, _: mlua::Variadic<Value>| Ok(()))?,
    )?;
    Ok(redis)
}

/// `7.0.15` as Redis's `REDIS_VERSION_NUM`: `0x00MMmmpp`.
fn version_num(version: &str) -> i64 {
    version
        .split('.')
        .take(3)
        .fold(0, |acc, part| (acc << 8) | part.parse::<i64>().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lrand48_starts_as_redis_does() {
        // glibc's first lrand48() without a seed; Redis's first math.random(100) is then 40.
        let mut state = LRAND48_SEED;
        let first = lrand48(&mut state);
        assert_eq!(first, 851_401_618);
        let r = (first % LRAND48_MAX) as f64 / LRAND48_MAX as f64;
        assert_eq!((r * 100.0).floor() + 1.0, 40.0);
    }

    #[test]
    fn version_num_packs_three_parts() {
        assert_eq!(version_num("7.0.15"), 0x07_00_0f);
    }
}
