//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, CLIENT.

use std::sync::atomic::Ordering::Relaxed;

use dcache_protocol::Args;

use super::{
    CmdResult, Ctx, Error, SYNTAX, help, int_arg, is, subcommand_arity, unknown_subcommand,
};

/// The Redis version whose behaviour dcache follows, for clients that ask.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";

pub fn ping(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    match args.len() {
        1 => ctx.out.simple("PONG"),
        2 => ctx.out.bulk(args.get(1)),
        _ => return Err("ERR wrong number of arguments for 'ping' command".into()),
    }
    Ok(())
}

pub fn echo(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ctx.out.bulk(args.get(1));
    Ok(())
}

/// Checks a password against `requirepass`.
fn check_password(ctx: &mut Ctx<'_>, user: Option<&[u8]>, password: &[u8]) -> CmdResult {
    let required = ctx.shared.config().requirepass;
    if required.is_empty() && user.is_none() {
        return Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into());
    }
    let user_ok = user.is_none_or(|u| u == b"default");
    if user_ok && (required.is_empty() || password == required.as_bytes()) {
        ctx.conn.authenticated = true;
        Ok(())
    } else {
        Err("WRONGPASS invalid username-password pair or user is disabled.".into())
    }
}

pub fn auth(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    match args.len() {
        2 => check_password(ctx, None, args.get(1))?,
        3 => check_password(ctx, Some(args.get(1)), args.get(2))?,
        _ => return Err(SYNTAX.into()),
    }
    ctx.out.ok();
    Ok(())
}

pub fn hello(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut resp3 = ctx.conn.resp3;
    let mut i = 1;
    if args.len() > 1 {
        let version = int_arg(args.get(1))
            .map_err(|_| Error::from("ERR Protocol version is not an integer or out of range"))?;
        match version {
            2 => resp3 = false,
            3 => resp3 = true,
            _ => return Err("NOPROTO unsupported protocol version".into()),
        }
        i = 2;
    }
    let mut name = None;
    while i < args.len() {
        if is(args.get(i), "AUTH") && i + 2 < args.len() {
            check_password(ctx, Some(args.get(i + 1)), args.get(i + 2))?;
            i += 3;
        } else if is(args.get(i), "SETNAME") && i + 1 < args.len() {
            name = Some(valid_name(args.get(i + 1))?);
            i += 2;
        } else {
            return Err(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(args.get(i))
            )
            .into());
        }
    }
    if !ctx.conn.authenticated {
        return Err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
    }
    if let Some(name) = name {
        *ctx.conn.info.name.lock() = name;
    }
    ctx.conn.resp3 = resp3;
    ctx.conn.info.resp.store(if resp3 { 3 } else { 2 }, Relaxed);
    ctx.out.set_resp3(resp3);
    ctx.out.map(7);
    ctx.out.bulk(b"server");
    ctx.out.bulk(b"redis");
    ctx.out.bulk(b"version");
    ctx.out.bulk(REDIS_COMPAT_VERSION.as_bytes());
    ctx.out.bulk(b"proto");
    ctx.out.int(if resp3 { 3 } else { 2 });
    ctx.out.bulk(b"id");
    ctx.out.int(ctx.conn.info.id as i64);
    ctx.out.bulk(b"mode");
    ctx.out.bulk(b"standalone");
    ctx.out.bulk(b"role");
    ctx.out.bulk(b"master");
    ctx.out.bulk(b"modules");
    ctx.out.array(0);
    Ok(())
}

pub fn select(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if int_arg(args.get(1))? != 0 {
        return Err("ERR DB index is out of range".into());
    }
    ctx.out.ok();
    Ok(())
}

pub fn quit(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.conn.quit = true;
    ctx.out.ok();
    Ok(())
}

/// A client name: no spaces, newlines or other control characters.
fn valid_name(name: &[u8]) -> Result<String, Error> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        );
    }
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// One line of `CLIENT LIST`, with Redis's field names.
fn client_line(ctx: &Ctx<'_>, c: &crate::state::ClientInfo) -> String {
    let last = c.last_command.load(Relaxed);
    let cmd = super::table().get(last as usize).map_or("NULL", |c| c.name);
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf={} obl=0 oll=0 omem={} events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
        c.id,
        c.addr,
        c.local_addr,
        c.name.lock(),
        ctx.now.saturating_sub(c.created_ms) / 1000,
        ctx.now.saturating_sub(c.last_active_ms.load(Relaxed)) / 1000,
        c.query_buffer.load(Relaxed),
        c.output_buffer.load(Relaxed),
        cmd,
        c.resp.load(Relaxed),
        c.lib_name.lock(),
        c.lib_ver.lock(),
    )
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL ID <client-id> | ADDR <ip:port>",
    "    Kill connections by id or address.",
    "LIST",
    "    Return information about client connections.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client library name or version.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
];

pub fn client(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    let n = args.len();
    let arity = |want: usize| {
        if n == want {
            Ok(())
        } else {
            Err(subcommand_arity("client", sub))
        }
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"ID" => {
            arity(2)?;
            ctx.out.int(ctx.conn.info.id as i64);
        }
        b"GETNAME" => {
            arity(2)?;
            let name = ctx.conn.info.name.lock().clone();
            if name.is_empty() {
                ctx.out.null();
            } else {
                ctx.out.bulk(name.as_bytes());
            }
        }
        b"SETNAME" => {
            arity(3)?;
            *ctx.conn.info.name.lock() = valid_name(args.get(2))?;
            ctx.out.ok();
        }
        b"SETINFO" => {
            arity(4)?;
            let value = valid_name(args.get(3))?;
            if is(args.get(2), "LIB-NAME") {
                *ctx.conn.info.lib_name.lock() = value;
            } else if is(args.get(2), "LIB-VER") {
                *ctx.conn.info.lib_ver.lock() = value;
            } else {
                return Err(format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(args.get(2))
                )
                .into());
            }
            ctx.out.ok();
        }
        b"INFO" => {
            arity(2)?;
            let line = client_line(ctx, &ctx.conn.info);
            ctx.out.verbatim(line.as_bytes());
        }
        b"LIST" => {
            let mut text = String::new();
            for c in ctx.shared.clients() {
                text.push_str(&client_line(ctx, &c));
            }
            ctx.out.verbatim(text.as_bytes());
        }
        b"KILL" => {
            if n != 4 {
                return Err(SYNTAX.into());
            }
            let target = args.get(3);
            let by_id = is(args.get(2), "ID");
            if !by_id && !is(args.get(2), "ADDR") {
                return Err(SYNTAX.into());
            }
            let id = if by_id {
                Some(int_arg(target)? as u64)
            } else {
                None
            };
            let mut killed = 0;
            for c in ctx.shared.clients() {
                let hit = match id {
                    Some(id) => c.id == id,
                    None => c.addr.to_string().as_bytes() == target,
                };
                if hit {
                    c.killed.store(true, Relaxed);
                    c.kill.notify_one();
                    killed += 1;
                }
            }
            if killed == 0 {
                return Err("ERR No such client".into());
            }
            ctx.out.int(killed);
        }
        b"HELP" => help(&mut ctx.out, CLIENT_HELP),
        _ => return Err(unknown_subcommand(sub, "client")),
    }
    Ok(())
}
