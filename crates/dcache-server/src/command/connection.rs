//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT.

use std::sync::atomic::Ordering::Relaxed;

use dcache_protocol::Args;

use super::{
    CmdResult, Ctx, Error, SYNTAX, help, int_arg, is, subcommand_arity, unknown_subcommand,
};

/// The Redis version whose behaviour dcache follows, for clients that ask.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";

pub fn ping(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    // A subscribed RESP2 client reads every frame as a message: Redis answers it with one.
    if !ctx.conn.resp3 && ctx.conn.info.subscriptions.active() && args.len() <= 2 {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out
            .bulk(if args.len() == 2 { args.get(1) } else { b"" });
        return Ok(());
    }
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

/// Checks a user's password (the default user's is `requirepass`) and runs the connection as
/// that user from then on.
fn check_password(ctx: &mut Ctx<'_>, user: Option<&[u8]>, password: &[u8]) -> CmdResult {
    let required = ctx.shared.config().requirepass;
    if required.is_empty() && user.is_none() {
        return Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into());
    }
    let user = user.unwrap_or(b"default");
    if ctx.shared.acl.authenticate(user, password, &required) {
        ctx.conn.authenticated = true;
        *ctx.conn.info.user.lock() = String::from_utf8_lossy(user).into_owned();
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
    set_protocol(ctx, resp3);
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

/// RESP3 or RESP2 from this reply on, as the connection and `CLIENT LIST` see it.
fn set_protocol(ctx: &mut Ctx<'_>, resp3: bool) {
    ctx.conn.resp3 = resp3;
    ctx.conn.info.resp.store(if resp3 { 3 } else { 2 }, Relaxed);
    ctx.out.set_resp3(resp3);
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

/// `RESET`: the connection as it was when it opened, without closing it (Redis's
/// `clearClientConnectionState`): the transaction and the watched keys are dropped, every
/// subscription is left without a confirmation, tracking is off, RESP2 again, READWRITE, no
/// name, and the connection is the default user's again, which needs `AUTH` anew when a
/// password is set. Runs at once inside `MULTI` and in subscribed mode, as Redis lets it.
pub fn reset(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    super::transactions::end(ctx);
    ctx.shared.pubsub.forget(&ctx.conn.info);
    ctx.shared.tracking.disable(ctx.shared, ctx.conn.info.id);
    ctx.conn.tracking = crate::tracking::ConnTracking::default();
    set_protocol(ctx, false);
    ctx.conn.readonly = false;
    ctx.conn.info.name.lock().clear();
    *ctx.conn.info.user.lock() = "default".to_owned();
    ctx.conn.authenticated = ctx.shared.config().requirepass.is_empty();
    ctx.out.simple("RESET");
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

/// Closes client `c`. The caller itself is closed once its reply is written, as Redis does; any
/// other client at once.
fn kill(ctx: &mut Ctx<'_>, c: &crate::state::ClientInfo) {
    c.killed.store(true, Relaxed);
    if c.id == ctx.conn.info.id {
        ctx.conn.quit = true;
    } else {
        c.kill.notify_one();
    }
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: ends a blocked client's wait (`crate::blocking`).
fn client_unblock(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() != 3 && args.len() != 4 {
        return Err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            super::truncate_lossy(args.get(1), 128)
        )
        .into());
    }
    let id = int_arg(args.get(2))?;
    let how = match args.len() {
        3 => crate::blocking::Unblocked::Timeout,
        _ if is(args.get(3), "TIMEOUT") => crate::blocking::Unblocked::Timeout,
        _ if is(args.get(3), "ERROR") => crate::blocking::Unblocked::Error,
        _ => return Err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into()),
    };
    let done = u64::try_from(id).is_ok_and(|id| ctx.shared.blocking.unblock_client(id, how));
    ctx.out.int(i64::from(done));
    Ok(())
}

/// One line of `CLIENT LIST`, with Redis's field names.
fn client_line(ctx: &Ctx<'_>, c: &crate::state::ClientInfo) -> String {
    let last = c.last_command.load(Relaxed);
    let [sub, psub, ssub] = c.subscriptions.counts();
    let cmd = super::table().get(last as usize).map_or("NULL", |c| c.name);
    let (tracking, redir) = crate::tracking::list_flags(ctx.shared, c.id).unwrap_or_default();
    let multi = c.multi.load(Relaxed);
    // In Redis's order: subscribed, in a transaction, blocked, tracking.
    let mut flags = String::new();
    if c.subscriptions.active() {
        flags.push('P');
    }
    if multi >= 0 {
        flags.push('x');
    }
    if ctx.shared.blocking.is_blocked(c.id) {
        flags.push('b');
    }
    flags.push_str(&tracking);
    if flags.is_empty() {
        flags.push('N');
    }
    let redir = if tracking.is_empty() { -1 } else { redir };
    format!(
        "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db=0 sub={} psub={} ssub={} multi={} qbuf={} obl=0 oll=0 omem={} events=r cmd={} user={} redir={} resp={} lib-name={} lib-ver={}\n",
        c.id,
        c.addr,
        c.local_addr,
        c.name.lock(),
        ctx.now.saturating_sub(c.created_ms) / 1000,
        ctx.now.saturating_sub(c.last_active_ms.load(Relaxed)) / 1000,
        flags,
        sub,
        psub,
        ssub,
        multi,
        c.query_buffer.load(Relaxed),
        c.output_buffer.load(Relaxed),
        cmd,
        c.user.lock(),
        redir,
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
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * ID <client-id> [<client-id> ...]",
    "      Return clients of specified IDs only.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client library name or version.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
];

/// Which clients a type name means: `Some(false)` the normal ones, `Some(true)` those subscribed
/// to anything (Redis's pubsub type), `None` a kind that dcache does not have (masters and
/// replicas: nodes replicate among themselves by another path).
fn client_type(name: &[u8]) -> Result<Option<bool>, Error> {
    match name.to_ascii_lowercase().as_slice() {
        b"normal" => Ok(Some(false)),
        b"pubsub" => Ok(Some(true)),
        b"master" | b"replica" | b"slave" => Ok(None),
        _ => Err(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(name)
        )
        .into()),
    }
}

/// CLIENT KILL, in both of Redis's forms: `KILL <ip:port>` (replies OK, or an error when no
/// client has that address) and `KILL <filter> <value> ...` (replies how many it killed, and by
/// default spares the caller: SKIPME yes).
fn client_kill(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() == 3 {
        let target = args.get(2);
        let victim = ctx
            .shared
            .clients()
            .into_iter()
            .find(|c| c.addr.to_string().as_bytes() == target);
        let Some(victim) = victim else {
            return Err("ERR No such client".into());
        };
        kill(ctx, &victim);
        ctx.out.ok();
        return Ok(());
    }
    let (mut id, mut addr, mut laddr) = (None, None, None);
    let (mut kind, mut skip_me) = (Some(None), true);
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(SYNTAX.into());
        }
        let (filter, value) = (args.get(i), args.get(i + 1));
        if is(filter, "ID") {
            match int_arg(value) {
                Ok(n) if n > 0 => id = Some(n as u64),
                _ => return Err("ERR client-id should be greater than 0".into()),
            }
        } else if is(filter, "TYPE") {
            kind = client_type(value)?.map(Some);
        } else if is(filter, "ADDR") {
            addr = Some(value);
        } else if is(filter, "LADDR") {
            laddr = Some(value);
        } else if is(filter, "USER") {
            if value != b"default" {
                return Err(
                    format!("ERR No such user '{}'", String::from_utf8_lossy(value)).into(),
                );
            }
        } else if is(filter, "SKIPME") {
            skip_me = match value.to_ascii_lowercase().as_slice() {
                b"yes" => true,
                b"no" => false,
                _ => return Err(SYNTAX.into()),
            };
        } else {
            return Err(SYNTAX.into());
        }
        i += 2;
    }
    let mut killed = 0;
    for c in ctx.shared.clients() {
        let hit = kind.is_some_and(|k| k.is_none_or(|pubsub| c.subscriptions.active() == pubsub))
            && id.is_none_or(|id| c.id == id)
            && addr.is_none_or(|a| c.addr.to_string().as_bytes() == a)
            && laddr.is_none_or(|a| c.local_addr.to_string().as_bytes() == a)
            && !(skip_me && c.id == ctx.conn.info.id);
        if hit {
            kill(ctx, &c);
            killed += 1;
        }
    }
    ctx.out.int(killed);
    Ok(())
}

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
            // `Some(None)`: any client; `Some(Some(pubsub))`: by its type; `None`: a type that
            // has no clients here.
            let mut ids: Option<Vec<u64>> = None;
            let mut kind = Some(None);
            if n == 4 && is(args.get(2), "TYPE") {
                kind = client_type(args.get(3))?.map(Some);
            } else if n > 3 && is(args.get(2), "ID") {
                let mut list = Vec::with_capacity(n - 3);
                for arg in args.iter_from(3) {
                    match int_arg(arg) {
                        Ok(id) if id > 0 => list.push(id as u64),
                        _ => return Err("ERR Invalid client ID".into()),
                    }
                }
                ids = Some(list);
            } else if n != 2 {
                return Err(SYNTAX.into());
            }
            let mut text = String::new();
            for c in ctx.shared.clients() {
                let of_kind =
                    kind.is_some_and(|k| k.is_none_or(|pubsub| c.subscriptions.active() == pubsub));
                if of_kind && ids.as_ref().is_none_or(|ids| ids.contains(&c.id)) {
                    text.push_str(&client_line(ctx, &c));
                }
            }
            ctx.out.verbatim(text.as_bytes());
        }
        b"KILL" => client_kill(ctx, args)?,
        b"TRACKING" if n >= 3 => crate::tracking::client_tracking(ctx, args)?,
        b"TRACKING" => return Err(subcommand_arity("client", sub)),
        b"CACHING" => {
            arity(3)?;
            crate::tracking::client_caching(ctx, args)?;
        }
        b"GETREDIR" => {
            arity(2)?;
            crate::tracking::client_getredir(ctx);
        }
        b"TRACKINGINFO" => {
            arity(2)?;
            crate::tracking::client_trackinginfo(ctx);
        }
        b"UNBLOCK" => client_unblock(ctx, args)?,
        b"HELP" => help(&mut ctx.out, CLIENT_HELP),
        _ => return Err(unknown_subcommand(sub, "client")),
    }
    Ok(())
}
