//! Running one script: `KEYS`/`ARGV`, the command caller behind `redis.call`, Redis's error
//! reports, and the reply.

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

/// The run in progress as `redis.call` sees it: the connection the script runs for, lent to the
/// Lua state's `redis.call` and `redis.pcall` for the run ([`super::loan`]).
pub(crate) struct Caller<'a> {
    shared: &'a crate::state::Shared,
    conn: &'a mut crate::connection::ConnState,
    now: u64,
    state: CallState,
}

/// Names [`Caller`] for the Lua state's [`super::loan::Loan`].
pub(crate) struct CallerOf;

impl super::loan::Lendable for CallerOf {
    type Of<'a> = Caller<'a>;
}

/// Sets `redis.call` and `redis.pcall` in a new Lua state's `redis` table, once: they reach the
/// run in progress through `loan`.
pub(crate) fn install_call(
    lua: &Lua,
    redis: &Table,
    loan: &Arc<super::loan::Loan<CallerOf>>,
) -> mlua::Result<()> {
    // `redis.call` raises the command's error; `redis.pcall` returns it as `{err = …}`. Both
    // are Rust functions, as Redis's are C: a script's `return redis.call(…)` is then no tail
    // call that would lose the script's line from the error report.
    let loan_call = Arc::clone(loan);
    let call = lua.create_function(move |lua, args: mlua::Variadic<Value>| {
        loan_call
            .borrow(|caller| call_command(caller, lua, &args))
            .unwrap_or_else(not_running)?
            .map_err(|msg| mlua::Error::external(CallError(msg)))
    })?;
    let loan_pcall = Arc::clone(loan);
    let pcall = lua.create_function(move |lua, args: mlua::Variadic<Value>| {
        match loan_pcall
            .borrow(|caller| call_command(caller, lua, &args))
            .unwrap_or_else(not_running)?
        {
            Ok(value) => Ok(value),
            Err(msg) => convert::error_table(lua, &msg),
        }
    })?;
    redis.raw_set("call", call)?;
    redis.raw_set("pcall", pcall)
}

/// `redis.call` outside a run: the sandbox keeps nothing from one run to the next, so no
/// script can reach it, but the function exists between runs.
fn not_running() -> mlua::Result<Result<Value, String>> {
    Ok(Err(
        "ERR redis.call is only available while a script runs".to_owned()
    ))
}

/// Runs a compiled script for the connection in `ctx` and writes its reply.
///
/// This is the one place where a script's body runs, from its first instruction to its reply:
/// the node's exclusive gate (no other client's command runs meanwhile) wraps this call.
///
/// # Errors
/// The script's error, in Redis's words (`… script: <sha>, on @user_script:<line>.`).
pub fn run_script(ctx: &mut Ctx<'_>, vm: &Vm, func: &Function, call: &ScriptCall<'_>) -> CmdResult {
    let lua_err = |e: mlua::Error| Error::from(format!("ERR {e}"));
    // Outside `Vm::bounded`: the request's own bytes, already in memory.
    let keys = sequence(&vm.lua, &call.keys).map_err(lua_err)?;
    let argv = sequence(&vm.lua, &call.argv).map_err(lua_err)?;
    let running = ctx
        .shared
        .scripts
        .start(ctx.conn.info.id, Arc::clone(&vm.flags));
    let mut caller = Caller {
        shared: ctx.shared,
        conn: &mut *ctx.conn,
        now: ctx.now,
        state: CallState {
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
        },
    };
    // The runner sets KEYS and ARGV, calls the script under Redis's error handler, and clears
    // what the script left behind (`super::vm`).
    let outcome = vm.loan.lend(&mut caller, || {
        vm.bounded(|| vm.runner.call::<(bool, Value)>((func, keys, argv)))
    });
    let ack = caller.state.ack;
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
    if let Some(ack) = ack {
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

/// `KEYS` or `ARGV`: a Lua array of the request's strings.
fn sequence(lua: &Lua, items: &[&[u8]]) -> mlua::Result<Table> {
    let table = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        table.raw_set(i + 1, lua.create_string(item)?)?;
    }
    Ok(table)
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
    caller: &mut Caller<'_>,
    lua: &Lua,
    args: &[Value],
) -> mlua::Result<Result<Value, String>> {
    let (shared, now) = (caller.shared, caller.now);
    let conn = &mut *caller.conn;
    let state = &mut caller.state;
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
    if let Some(cluster) = shared.cluster.as_deref() {
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
            let view = conn.view(cluster);
            if let crate::cluster::Route::Refuse(msg) =
                cluster.route(&view, keys.iter().copied(), writes, conn.readonly)
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
    let holds = conn.holds.len();
    // A script's reads are served from this copy: a quorum read would have to wait for the
    // other copies in the middle of the script.
    let quorum = conn.quorum.replace(Ok(()));
    {
        let mut inner = Ctx {
            shared,
            conn: &mut *conn,
            out: ReplyWriter::new(&mut state.scratch, false),
            now,
        };
        command::execute(&mut inner, args, &mut Instant::now());
    }
    conn.quorum = quorum;
    conn.defer = None;
    if conn.block.take().is_some() {
        // A blocking command in a script never waits: it answers as on a timeout.
        state.scratch.clear();
        ReplyWriter::new(&mut state.scratch, false).null_array();
    }
    // Holds name byte ranges of the scratch buffer: the script's reply takes the newest ack.
    let mut newest = None;
    while conn.holds.len() > holds {
        let hold = conn.holds.pop_back().expect("longer");
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
