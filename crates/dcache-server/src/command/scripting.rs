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
    let mut lower = [0; 40];
    let sha = match source {
        Source::Body => Sha::Owned(sha1_hex(args.get(1))),
        Source::Sha => match lower_hex(args.get(1), &mut lower) {
            Some(sha) => Sha::Borrowed(sha),
            // No script is named so: the cache has only SHA-1s.
            None => {
                ctx.shared.scripts.give_vm(vm);
                return Err(Error::from(NOSCRIPT));
            }
        },
    };
    let sha = sha.as_str();
    if !vm.functions.contains_key(sha)
        && let Err(e) = compile(ctx, &mut vm, sha, args.get(1), source)
    {
        ctx.shared.scripts.give_vm(vm);
        return Err(e);
    }
    let call = ScriptCall {
        sha,
        keys: args.iter_from(3).take(n).collect(),
        argv: args.iter_from(3 + n).collect(),
        read_only,
    };
    // Holding the exclusive gate: no other client's command runs until this returns.
    let result = crate::scripting::run_script(ctx, &vm, &vm.functions[sha], &call);
    ctx.shared.scripts.give_vm(vm);
    result
}

/// A script's SHA-1: computed from an `EVAL` body, or borrowed from an `EVALSHA` argument.
enum Sha<'a> {
    Owned(String),
    Borrowed(&'a str),
}

impl Sha<'_> {
    fn as_str(&self) -> &str {
        match self {
            Sha::Owned(s) => s,
            Sha::Borrowed(s) => s,
        }
    }
}

/// `arg` in lower case, if it is 40 hex digits (a SHA-1 in any case), in `buf`.
fn lower_hex<'b>(arg: &[u8], buf: &'b mut [u8; 40]) -> Option<&'b str> {
    if arg.len() != 40 || !arg.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    for (to, from) in buf.iter_mut().zip(arg) {
        *to = from.to_ascii_lowercase();
    }
    std::str::from_utf8(buf).ok()
}

/// Compiles the script named `sha` into this Lua state: from the cache (`EVALSHA`) or the
/// request (`EVAL`, which also caches it, as Redis does).
fn compile(ctx: &Ctx<'_>, vm: &mut Vm, sha: &str, arg: &[u8], source: Source) -> CmdResult {
    let body = match source {
        Source::Body => None,
        Source::Sha => Some(ctx.shared.scripts.body(sha).ok_or(Error::from(NOSCRIPT))?),
    };
    let text = body.as_deref().unwrap_or(arg);
    let func = vm.compile(text).map_err(Error::from)?;
    if source == Source::Body {
        ctx.shared.scripts.store(sha, arg);
    }
    vm.functions.insert(sha.to_owned(), func);
    Ok(())
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
