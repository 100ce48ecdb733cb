//! Running one script: `KEYS`/`ARGV`, the command caller behind `redis.call`, Redis's error
//! reports, and the reply.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use dcache_protocol::{Args, Frame, ReplyWriter};
use mlua::{Function, Lua, Table, Value};

use super::Vm;
use super::convert;
use crate::command::{self, CmdResult, Ctx, Error, WRITE};

/// What a script is called with.
#[derive(Debug)]
pub struct ScriptCall<'a> {
    /// Its SHA-1, which error reports name.
    pub sha: &'a str,
    pub keys: Vec<&'a [u8]>,
    pub argv: Vec<&'a [u8]>,
    /// `EVAL_RO`/`EVALSHA_RO`: write commands are refused.
    pub read_only: bool,
}

/// What the command caller keeps across one run's `redis.call`s.
struct CallState {
    read_only: bool,
    /// In a cluster: the slot every key the script touches must hash to (its declared keys', or
    /// the first key it touched).
    slot: Option<u16>,
    /// The newest replication ack that a command of the script asked its reply to wait for.
    ack: Option<crate::replicate::Ack>,
    flags: Arc<super::RunFlags>,
    scratch: Vec<u8>,
    /// Argument bytes and spans of the command being called, reused.
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

/// Runs a compiled script for the connection in `ctx` and writes its reply.
///
/// This is the one place where a script's body runs, from its first instruction to its reply:
/// the node's exclusive gate (no other client's command runs meanwhile) wraps this call.
///
/// # Errors
/// The script's error, in Redis's words (`… script: <sha>, on @user_script:<line>.`).
pub fn run_script(
    ctx: &mut Ctx<'_>,
    vm: &mut Vm,
    func: &Function,
    call: &ScriptCall<'_>,
) -> CmdResult {
    let lua_err = |e: mlua::Error| Error::from(format!("ERR {e}"));
    let keys = vm
        .lua
        .create_table_with_capacity(call.keys.len(), 0)
        .map_err(lua_err)?;
    for (i, k) in call.keys.iter().enumerate() {
        keys.raw_set(i + 1, vm.lua.create_string(k).map_err(lua_err)?)
            .map_err(lua_err)?;
    }
    let argv = vm
        .lua
        .create_table_with_capacity(call.argv.len(), 0)
        .map_err(lua_err)?;
    for (i, a) in call.argv.iter().enumerate() {
        argv.raw_set(i + 1, vm.lua.create_string(a).map_err(lua_err)?)
            .map_err(lua_err)?;
    }
    vm.real_globals.raw_set("KEYS", keys).map_err(lua_err)?;
    vm.real_globals.raw_set("ARGV", argv).map_err(lua_err)?;

    let mut state = CallState {
        read_only: call.read_only,
        slot: call.keys.first().and_then(|k| {
            ctx.shared
                .cluster
                .as_ref()
                .map(|_| dcache_placement::slot(k))
        }),
        ack: None,
        flags: Arc::clone(&vm.flags),
        scratch: Vec::new(),
        data: Vec::new(),
        spans: Vec::new(),
    };
    let shared = ctx.shared;
    let running = shared
        .scripts
        .start(ctx.conn.info.id, Arc::clone(&vm.flags));
    let redis = vm.redis.clone();
    let runner = vm.runner.clone();
    let cell = RefCell::new((&mut *ctx, &mut state));
    let outcome = vm.lua.scope(|scope| {
        // `redis.call` raises the command's error; `redis.pcall` returns it as `{err = …}`.
        // Both are Rust functions, as Redis's are C: a script's `return redis.call(…)` is then
        // no tail call that would lose the script's line from the error report.
        let call = scope.create_function(|lua, args: mlua::Variadic<Value>| {
            let mut guard = cell.borrow_mut();
            let (ctx, state) = &mut *guard;
            call_command(ctx, state, lua, &args)?
                .map_err(|msg| mlua::Error::external(CallError(msg)))
        })?;
        let pcall = scope.create_function(|lua, args: mlua::Variadic<Value>| {
            let mut guard = cell.borrow_mut();
            let (ctx, state) = &mut *guard;
            match call_command(ctx, state, lua, &args)? {
                Ok(value) => Ok(value),
                Err(msg) => convert::error_table(lua, &msg),
            }
        })?;
        redis.raw_set("call", call)?;
        redis.raw_set("pcall", pcall)?;
        let outcome = runner.call::<(bool, Value)>(func.clone());
        redis.raw_set("call", Value::Nil)?;
        redis.raw_set("pcall", Value::Nil)?;
        outcome
    });
    drop(running);

    let start = ctx.out.len();
    let result = match outcome {
        Ok((true, value)) => {
            convert::write_value(&mut ctx.out, &value, 0);
            Ok(())
        }
        Ok((false, Value::Table(err))) => Err(Error::from(error_report(&err, call.sha))),
        Ok((false, other)) => Err(Error::from(format!(
            "ERR Error running script {}, {:.100}",
            call.sha,
            format!("{other:?}")
        ))),
        Err(e) => Err(lua_err(e)),
    };
    vm.real_globals
        .raw_set("KEYS", Value::Nil)
        .map_err(lua_err)?;
    vm.real_globals
        .raw_set("ARGV", Value::Nil)
        .map_err(lua_err)?;
    if let Some(ack) = state.ack {
        // The script's writes wait for their copies: so does its reply, whatever it is. The hold
        // must cover the reply as written, so an error is written here rather than by dispatch.
        if let Err(Error(msg)) = &result {
            ctx.out.truncate(start);
            ctx.out.error(msg);
        }
        ctx.conn.holds.push_back(crate::connection::Hold {
            start,
            end: ctx.out.len(),
            ack,
        });
        return Ok(());
    }
    result
}

/// Redis's report of a failed script: the error, then where (`script: <sha>, on
/// @user_script:<line>.`) when the error handler found the script's frame.
fn error_report(err: &Table, sha: &str) -> String {
    let msg = match err.raw_get::<Value>("err") {
        Ok(Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
        _ => "ERR unknown error".to_owned(),
    };
    let source = err
        .raw_get::<Option<mlua::LuaString>>("source")
        .ok()
        .flatten();
    let line = err.raw_get::<Option<i64>>("line").ok().flatten();
    match (source, line) {
        (Some(source), Some(line)) => format!(
            "{msg} script: {sha}, on {}:{line}.",
            String::from_utf8_lossy(&source.as_bytes())
        ),
        _ => msg,
    }
}

/// The message handler scripts run under (Redis's `__redis__err__handler`): turns any error into
/// `{err = …}` and adds the script's source and line where it failed.
pub(crate) fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Value> {
    let table = match err {
        Value::Table(t) => t,
        Value::Error(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", root_message(&e))?;
            t
        }
        other => {
            let text = lua
                .coerce_string(other)?
                .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
                .unwrap_or_else(|| "execution failure".to_owned());
            let t = lua.create_table()?;
            t.raw_set("err", format!("ERR {text}"))?;
            t
        }
    };
    // The nearest frame of the script: not a C function (`error`, `redis.call`), not the
    // sandbox's own Lua (`=dcache`).
    for level in 1..64 {
        let Some(frame) = lua.inspect_stack(level, |d| {
            let source = d.source();
            (
                source.what,
                source.source.map(|s| s.into_owned()),
                d.current_line(),
            )
        }) else {
            break;
        };
        match frame {
            ("C", _, _) => {}
            (_, Some(source), _) if source == "=dcache" => {}
            (_, Some(source), line) => {
                table.raw_set("source", source)?;
                if let Some(line) = line {
                    table.raw_set("line", line)?;
                }
                break;
            }
            _ => break,
        }
    }
    Ok(Value::Table(table))
}

/// The error `redis.call` raises: the command's error reply.
#[derive(Debug)]
struct CallError(String);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CallError {}

/// The error reply for a Rust error raised into Lua, without mlua's wrapping: a command's
/// error as it is, anything else with Redis's `ERR` code.
fn root_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => root_message(cause),
        mlua::Error::ExternalError(inner) => match inner.downcast_ref::<CallError>() {
            Some(CallError(msg)) => msg.clone(),
            None => format!("ERR {inner}"),
        },
        mlua::Error::RuntimeError(msg) => format!("ERR {msg}"),
        other => format!("ERR {other}"),
    }
}

/// `redis.call` and `redis.pcall`: runs a command as the script's client, through the node's
/// dispatch, and returns its reply as a Lua value, or its error reply.
fn call_command(
    ctx: &mut Ctx<'_>,
    state: &mut CallState,
    lua: &Lua,
    args: &[Value],
) -> mlua::Result<Result<Value, String>> {
    let fail = |msg: &str| Ok(Err(msg.to_owned()));
    if args.is_empty() {
        return fail("ERR Please specify at least one argument for this redis lib call");
    }
    state.data.clear();
    state.spans.clear();
    for arg in args {
        let start = state.data.len();
        match arg {
            Value::String(s) => state.data.extend_from_slice(&s.as_bytes()),
            // Lua numbers are doubles: %.17g writes those of 17 digits or fewer as integers.
            Value::Integer(n) if n.unsigned_abs() < 100_000_000_000_000_000 => state
                .data
                .extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::Integer(n) => state
                .data
                .extend_from_slice(convert::number_arg(*n as f64).as_bytes()),
            Value::Number(n) => state
                .data
                .extend_from_slice(convert::number_arg(*n).as_bytes()),
            _ => return fail("ERR Lua redis lib command arguments must be strings or integers"),
        }
        state.spans.push((start, state.data.len()));
    }
    let args = Args::new(&state.data, &state.spans);
    let Some((_, cmd)) = command::lookup(args.get(0)) else {
        return fail("ERR Unknown Redis command called from script");
    };
    let words: Vec<&[u8]> = args.iter().collect();
    if !super::allowed_in_script(cmd.name, &words) {
        return fail("ERR This Redis command is not allowed from script");
    }
    if !cmd.arity_ok(args.len()) {
        return fail("ERR Wrong number of args calling Redis command from script");
    }
    let writes = cmd.flags & WRITE != 0;
    if writes {
        if state.read_only {
            return fail("ERR Write commands are not allowed from read-only scripts.");
        }
        // Redis counts the write from the attempt: a script that tried one is not killable.
        state.flags.wrote.store(true, Ordering::Relaxed);
    }
    if let Some(cluster) = ctx.shared.cluster.as_deref() {
        let keys: Vec<&[u8]> = dcache_protocol::commands::keys(cmd.spec, &words[..])
            .map(|i| words[i])
            .collect();
        if !keys.is_empty() {
            for key in &keys {
                let slot = dcache_placement::slot(key);
                match state.slot {
                    None => state.slot = Some(slot),
                    Some(s) if s != slot => {
                        return fail(
                            "ERR Script attempted to access keys that do not hash to the same slot",
                        );
                    }
                    Some(_) => {}
                }
            }
            let view = ctx.conn.view(cluster);
            if let crate::cluster::Route::Refuse(msg) =
                cluster.route(&view, keys.iter().copied(), writes, ctx.conn.readonly)
            {
                return fail(if msg.starts_with("CLUSTERDOWN") {
                    "ERR Script attempted to execute a command while the cluster is down"
                } else {
                    "ERR Script attempted to access a non local key in a cluster node"
                });
            }
        }
    }

    state.scratch.clear();
    let holds = ctx.conn.holds.len();
    // A script's reads are served from this copy: a quorum read would have to wait for the
    // other copies in the middle of the script.
    let quorum = ctx.conn.quorum.replace(Ok(()));
    {
        let mut inner = Ctx {
            shared: ctx.shared,
            conn: &mut *ctx.conn,
            out: ReplyWriter::new(&mut state.scratch, false),
            now: ctx.now,
        };
        command::execute(&mut inner, args, &mut Instant::now());
    }
    ctx.conn.quorum = quorum;
    ctx.conn.defer = None;
    if ctx.conn.block.take().is_some() {
        // A blocking command in a script never waits: it answers as on a timeout.
        state.scratch.clear();
        ReplyWriter::new(&mut state.scratch, false).null_array();
    }
    // Holds name byte ranges of the scratch buffer: the script's reply takes the newest ack.
    let mut newest = None;
    while ctx.conn.holds.len() > holds {
        let hold = ctx.conn.holds.pop_back().expect("longer");
        newest.get_or_insert(hold.ack);
    }
    if newest.is_some() {
        state.ack = newest;
    }
    match Frame::parse(&state.scratch) {
        Ok(Some((frame, _))) => convert::frame_to_lua(lua, frame),
        _ => fail("ERR the command gave no reply"),
    }
}
