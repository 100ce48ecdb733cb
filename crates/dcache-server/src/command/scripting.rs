//! `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO` and `SCRIPT`; the Lua side is `crate::scripting`.

use dcache_protocol::Args;

use super::{CmdResult, Ctx, Error, help, int_arg, is, subcommand_arity, unknown_subcommand};
use crate::scripting::{NOSCRIPT, ScriptCall, Vm, sha1_hex};

pub fn eval(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    eval_generic(ctx, args, Source::Body, false)
}

pub fn eval_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    eval_generic(ctx, args, Source::Body, true)
}

pub fn evalsha(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    eval_generic(ctx, args, Source::Sha, false)
}

pub fn evalsha_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    eval_generic(ctx, args, Source::Sha, true)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `EVAL script …`
    Body,
    /// `EVALSHA sha1 …`
    Sha,
}

/// `numkeys`, checked against the arguments that follow it.
fn numkeys(args: Args<'_>) -> Result<usize, Error> {
    let n = int_arg(args.get(2))?;
    if n < 0 {
        return Err(Error::from("ERR Number of keys can't be negative"));
    }
    if n as u64 > (args.len() - 3) as u64 {
        return Err(Error::from(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(n as usize)
}

fn eval_generic(ctx: &mut Ctx<'_>, args: Args<'_>, source: Source, read_only: bool) -> CmdResult {
    let n = numkeys(args)?;
    // A script runs alone on the node: this request runs again once the connection holds the
    // gate (`crate::exclusive`).
    if !ctx.exclusive() {
        return Ok(());
    }
    let scripts = &ctx.shared.scripts;
    let mut vm = scripts.take_vm().map_err(Error::from)?;
    if vm.epoch != scripts.epoch() {
        vm.functions.clear();
        vm.epoch = scripts.epoch();
    }
    let sha = match source {
        Source::Body => sha1_hex(args.get(1)),
        Source::Sha => String::from_utf8_lossy(args.get(1)).to_ascii_lowercase(),
    };
    let func = match find_or_compile(ctx, &mut vm, &sha, args.get(1), source) {
        Ok(func) => func,
        Err(e) => {
            ctx.shared.scripts.give_vm(vm);
            return Err(e);
        }
    };
    let call = ScriptCall {
        sha: &sha,
        keys: args.iter_from(3).take(n).collect(),
        argv: args.iter_from(3 + n).collect(),
        read_only,
    };
    // Holding the exclusive gate: no other client's command runs until this returns.
    let result = crate::scripting::run_script(ctx, &mut vm, &func, &call);
    ctx.shared.scripts.give_vm(vm);
    result
}

/// The compiled script named `sha`: this Lua state's, or compiled from the cache (`EVALSHA`) or
/// the request (`EVAL`, which also caches it, as Redis does).
fn find_or_compile(
    ctx: &Ctx<'_>,
    vm: &mut Vm,
    sha: &str,
    arg: &[u8],
    source: Source,
) -> Result<mlua::Function, Error> {
    if let Some(func) = vm.functions.get(sha) {
        return Ok(func.clone());
    }
    let body = match source {
        Source::Body => None,
        Source::Sha if sha.len() != 40 => return Err(Error::from(NOSCRIPT)),
        Source::Sha => Some(ctx.shared.scripts.body(sha).ok_or(Error::from(NOSCRIPT))?),
    };
    let text = body.as_deref().unwrap_or(arg);
    let func = vm.compile(text).map_err(Error::from)?;
    if source == Source::Body {
        ctx.shared.scripts.store(sha, arg);
    }
    vm.functions.insert(sha.to_owned(), func.clone());
    Ok(func)
}

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

pub fn script(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    let Some(spec) = super::lookup(b"script").and_then(|(_, c)| c.subcommand(sub)) else {
        return Err(unknown_subcommand(sub, "script"));
    };
    if !spec.arity_ok(args.len()) {
        return Err(subcommand_arity("script", sub));
    }
    match spec.name {
        "help" => help(&mut ctx.out, SCRIPT_HELP),
        "exists" => {
            let shas: Vec<&[u8]> = args.iter_from(2).collect();
            ctx.out.array(shas.len());
            for sha in shas {
                ctx.out.int(i64::from(ctx.shared.scripts.exists(sha)));
            }
        }
        "flush" => {
            match args.len() {
                2 => {}
                3 if is(args.get(2), "ASYNC") || is(args.get(2), "SYNC") => {}
                _ => {
                    return Err(Error::from(
                        "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
                    ));
                }
            }
            ctx.shared.scripts.flush();
            ctx.out.ok();
        }
        "kill" => {
            ctx.shared
                .scripts
                .kill(ctx.conn.info.id)
                .map_err(Error::from)?;
            ctx.out.ok();
        }
        "load" => {
            let body = args.get(2);
            let sha = sha1_hex(body);
            let scripts = &ctx.shared.scripts;
            if scripts.body(&sha).is_none() {
                let vm = scripts.take_vm().map_err(Error::from)?;
                let compiled = vm.compile(body);
                scripts.give_vm(vm);
                compiled.map_err(Error::from)?;
                scripts.store(&sha, body);
            }
            ctx.out.bulk(sha.as_bytes());
        }
        _ => return Err(unknown_subcommand(sub, "script")),
    }
    Ok(())
}
