//! The command table and dispatch.
//!
//! Each command is a row: name, arity (Redis's convention: `n` exactly, `-n` at least), flags, key
//! positions and handler. Flags drive authentication, out-of-memory refusals and, later,
//! replication; key positions drive `COMMAND INFO` and, later, slot checks. Handlers live by family
//! in the files beside this one; each parses its own arguments and applies itself to the store.

mod acl;
mod cluster;
mod connection;
mod expire;
mod hashes;
mod keys;
mod server;
mod strings;

pub use connection::REDIS_COMPAT_VERSION;

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Instant;

use dcache_protocol::{Args, ReplyWriter};
use dcache_store::{Key, Shard, StoreError};
use parking_lot::MutexGuard;

use crate::connection::ConnState;
use crate::state::Shared;

/// Changes data.
pub const WRITE: u16 = 1;
/// Only reads data.
pub const READONLY: u16 = 1 << 1;
/// May grow memory: refused with `-OOM` when the budget is spent and nothing can be evicted.
pub const DENYOOM: u16 = 1 << 2;
/// Administrative.
pub const ADMIN: u16 = 1 << 3;
/// Allowed before `AUTH`.
pub const NO_AUTH: u16 = 1 << 4;
/// Constant or logarithmic time.
pub const FAST: u16 = 1 << 5;
/// About the connection rather than data.
pub const CONNECTION: u16 = 1 << 6;

/// A command's answer when it fails: the error line without its leading `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub Cow<'static, str>);

impl From<&'static str> for Error {
    fn from(msg: &'static str) -> Self {
        Error(Cow::Borrowed(msg))
    }
}

impl From<String> for Error {
    fn from(msg: String) -> Self {
        Error(Cow::Owned(msg))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error(Cow::Owned(e.to_string()))
    }
}

pub type CmdResult = Result<(), Error>;
pub type Handler = fn(&mut Ctx<'_>, Args<'_>) -> CmdResult;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";

/// One row of the command table.
#[derive(Debug)]
pub struct Command {
    pub name: &'static str,
    pub arity: i32,
    pub flags: u16,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub summary: &'static str,
    pub handler: Handler,
}

/// What a handler sees: the shared state, its connection, the reply writer and the time.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub conn: &'a mut ConnState,
    pub out: ReplyWriter<'a>,
    /// Unix milliseconds, read once per batch of requests.
    pub now: u64,
}

impl<'a> Ctx<'a> {
    /// Hashes a key.
    pub fn key<'k>(&self, bytes: &'k [u8]) -> Key<'k> {
        self.shared.store.key(bytes)
    }

    /// Locks every shard that holds one of `keys`, in index order.
    pub fn lock_many(&self, keys: &[Key<'_>]) -> dcache_store::MultiLock<'a> {
        self.shared.store.lock_many(keys)
    }

    /// Locks the shard of `key`. A write that may grow memory has had room made for its
    /// arguments by dispatch (`DENYOOM`); one that writes more (SETRANGE's offset, COPY's source)
    /// asks [`Ctx::admit`] for the rest first.
    pub fn lock(&self, key: &Key<'_>) -> MutexGuard<'a, Shard> {
        self.shared.store.lock(key)
    }

    /// Makes room for `bytes` more than the arguments of a write to `key`, or refuses with
    /// `-OOM`; keep the room until the write is done. Call with no shard locked.
    pub fn admit(&self, key: &Key<'_>, bytes: usize) -> Result<dcache_store::Room<'a>, Error> {
        Ok(self
            .shared
            .store
            .admit(key, dcache_store::write_cost(bytes))?)
    }
}

macro_rules! commands {
    ($( $name:literal, $arity:expr, $flags:expr, ($first:expr, $last:expr, $step:expr), $group:literal, $handler:path, $summary:literal; )*) => {
        static TABLE: &[Command] = &[
            $( Command {
                name: $name,
                arity: $arity,
                flags: $flags,
                first_key: $first,
                last_key: $last,
                step: $step,
                group: $group,
                summary: $summary,
                handler: $handler,
            }, )*
        ];
    };
}

commands! {
    // connection
    "ping", -1, FAST | CONNECTION, (0, 0, 0), "connection", connection::ping, "Returns the server's liveliness response.";
    "echo", 2, FAST | CONNECTION, (0, 0, 0), "connection", connection::echo, "Returns the given string.";
    "hello", -1, NO_AUTH | FAST | CONNECTION, (0, 0, 0), "connection", connection::hello, "Handshakes with the server: protocol version, authentication, name.";
    "auth", -2, NO_AUTH | FAST | CONNECTION, (0, 0, 0), "connection", connection::auth, "Authenticates the connection.";
    "select", 2, FAST | CONNECTION, (0, 0, 0), "connection", connection::select, "Changes the selected database (only 0 exists).";
    "quit", -1, NO_AUTH | FAST | CONNECTION, (0, 0, 0), "connection", connection::quit, "Closes the connection.";
    "acl", -2, 0, (0, 0, 0), "server", acl::acl, "ACL users: SETUSER, GETUSER, DELUSER, USERS, LIST, WHOAMI, CAT.";
    "client", -2, CONNECTION, (0, 0, 0), "connection", connection::client, "Connection management: ID, SETNAME, GETNAME, LIST, INFO, SETINFO, KILL.";
    // server
    "command", -1, CONNECTION, (0, 0, 0), "server", server::command, "Returns details about commands: COUNT, INFO, DOCS, LIST.";
    "info", -1, 0, (0, 0, 0), "server", server::info, "Returns information and statistics about the server.";
    "config", -2, ADMIN, (0, 0, 0), "server", server::config, "Gets and sets configuration: GET, SET, RESETSTAT.";
    "dbsize", 1, READONLY | FAST, (0, 0, 0), "server", server::dbsize, "Returns the number of keys.";
    "flushdb", -1, WRITE, (0, 0, 0), "server", server::flush, "Removes all keys.";
    "flushall", -1, WRITE, (0, 0, 0), "server", server::flush, "Removes all keys.";
    "time", 1, FAST, (0, 0, 0), "server", server::time, "Returns the server time.";
    "memory", -2, READONLY, (0, 0, 0), "server", server::memory, "Memory introspection: USAGE.";
    "cluster", -2, 0, (0, 0, 0), "cluster", cluster::cluster, "Cluster commands: SLOTS, SHARDS, NODES, INFO, MYID, MYSHARDID, KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT, FORGET.";
    "readonly", 1, FAST | CONNECTION, (0, 0, 0), "cluster", cluster::readonly, "Lets reads of this connection go to replicas.";
    "readwrite", 1, FAST | CONNECTION, (0, 0, 0), "cluster", cluster::readonly, "Sends reads of this connection to primaries again.";
    "asking", 1, FAST | CONNECTION, (0, 0, 0), "cluster", cluster::readonly, "Marks the next command as following an -ASK redirect.";
    "object", -2, READONLY, (2, 2, 1), "generic", server::object, "Inspects a key: ENCODING, FREQ, IDLETIME, REFCOUNT.";
    // strings
    "get", 2, READONLY | FAST, (1, 1, 1), "string", strings::get, "Returns the string value of a key.";
    "set", -3, WRITE | DENYOOM, (1, 1, 1), "string", strings::set, "Sets the string value of a key, with optional expiry and conditions.";
    "setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", strings::setnx, "Sets a key only if it does not exist.";
    "setex", 4, WRITE | DENYOOM, (1, 1, 1), "string", strings::setex, "Sets a key with an expiry in seconds.";
    "psetex", 4, WRITE | DENYOOM, (1, 1, 1), "string", strings::psetex, "Sets a key with an expiry in milliseconds.";
    "getex", -2, WRITE | FAST, (1, 1, 1), "string", strings::getex, "Returns a string and optionally changes its expiry.";
    "getdel", 2, WRITE | FAST, (1, 1, 1), "string", strings::getdel, "Returns a string and deletes the key.";
    "getset", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", strings::getset, "Sets a string and returns the previous value.";
    "mget", -2, READONLY | FAST, (1, -1, 1), "string", strings::mget, "Returns the values of several keys.";
    "mset", -3, WRITE | DENYOOM, (1, -1, 2), "string", strings::mset, "Sets several keys atomically.";
    "msetnx", -3, WRITE | DENYOOM, (1, -1, 2), "string", strings::msetnx, "Sets several keys only if none exists.";
    "append", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", strings::append, "Appends to a string.";
    "strlen", 2, READONLY | FAST, (1, 1, 1), "string", strings::strlen, "Returns the length of a string.";
    "getrange", 4, READONLY, (1, 1, 1), "string", strings::getrange, "Returns a substring.";
    "substr", 4, READONLY, (1, 1, 1), "string", strings::getrange, "Returns a substring (old name of GETRANGE).";
    "setrange", 4, WRITE | DENYOOM, (1, 1, 1), "string", strings::setrange, "Overwrites part of a string at an offset.";
    "incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), "string", strings::incr, "Increments an integer by one.";
    "decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), "string", strings::decr, "Decrements an integer by one.";
    "incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", strings::incrby, "Increments an integer by a number.";
    "decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", strings::decrby, "Decrements an integer by a number.";
    "incrbyfloat", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", strings::incrbyfloat, "Increments a float by a number.";
    // keys
    "del", -2, WRITE, (1, -1, 1), "generic", keys::del, "Deletes keys.";
    "unlink", -2, WRITE | FAST, (1, -1, 1), "generic", keys::del, "Deletes keys.";
    "exists", -2, READONLY | FAST, (1, -1, 1), "generic", keys::exists, "Counts how many of the keys exist.";
    "touch", -2, READONLY | FAST, (1, -1, 1), "generic", keys::touch, "Refreshes keys' last access time.";
    "type", 2, READONLY | FAST, (1, 1, 1), "generic", keys::type_, "Returns the type of a key's value.";
    "keys", 2, READONLY, (0, 0, 0), "generic", keys::keys, "Returns all keys that match a pattern.";
    "scan", -2, READONLY, (0, 0, 0), "generic", keys::scan, "Iterates over the keys.";
    "randomkey", 1, READONLY, (0, 0, 0), "generic", keys::randomkey, "Returns a random key.";
    "rename", 3, WRITE, (1, 2, 1), "generic", keys::rename, "Renames a key, replacing the destination.";
    "renamenx", 3, WRITE | FAST, (1, 2, 1), "generic", keys::renamenx, "Renames a key if the new name is free.";
    "copy", -3, WRITE | DENYOOM, (1, 2, 1), "generic", keys::copy, "Copies a key's value to another key.";
    "expire", -3, WRITE | FAST, (1, 1, 1), "generic", expire::expire, "Sets a key's time to live in seconds.";
    "pexpire", -3, WRITE | FAST, (1, 1, 1), "generic", expire::pexpire, "Sets a key's time to live in milliseconds.";
    "expireat", -3, WRITE | FAST, (1, 1, 1), "generic", expire::expireat, "Sets a key's expiry as a Unix time in seconds.";
    "pexpireat", -3, WRITE | FAST, (1, 1, 1), "generic", expire::pexpireat, "Sets a key's expiry as a Unix time in milliseconds.";
    "ttl", 2, READONLY | FAST, (1, 1, 1), "generic", expire::ttl, "Returns a key's time to live in seconds.";
    "pttl", 2, READONLY | FAST, (1, 1, 1), "generic", expire::pttl, "Returns a key's time to live in milliseconds.";
    "expiretime", 2, READONLY | FAST, (1, 1, 1), "generic", expire::expiretime, "Returns a key's expiry as a Unix time in seconds.";
    "pexpiretime", 2, READONLY | FAST, (1, 1, 1), "generic", expire::pexpiretime, "Returns a key's expiry as a Unix time in milliseconds.";
    "persist", 2, WRITE | FAST, (1, 1, 1), "generic", expire::persist, "Removes a key's expiry.";
    // hashes
    "hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", hashes::hset, "Sets fields of a hash; returns how many are new.";
    "hmset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", hashes::hmset, "Sets fields of a hash.";
    "hsetnx", 4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", hashes::hsetnx, "Sets a field only if it does not exist.";
    "hget", 3, READONLY | FAST, (1, 1, 1), "hash", hashes::hget, "Returns the value of a field.";
    "hmget", -3, READONLY | FAST, (1, 1, 1), "hash", hashes::hmget, "Returns the values of several fields.";
    "hdel", -3, WRITE | FAST, (1, 1, 1), "hash", hashes::hdel, "Deletes fields.";
    "hgetall", 2, READONLY, (1, 1, 1), "hash", hashes::hgetall, "Returns all fields and values.";
    "hkeys", 2, READONLY, (1, 1, 1), "hash", hashes::hkeys, "Returns all fields.";
    "hvals", 2, READONLY, (1, 1, 1), "hash", hashes::hvals, "Returns all values.";
    "hlen", 2, READONLY | FAST, (1, 1, 1), "hash", hashes::hlen, "Returns the number of fields.";
    "hexists", 3, READONLY | FAST, (1, 1, 1), "hash", hashes::hexists, "Tells whether a field exists.";
    "hincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", hashes::hincrby, "Increments an integer field.";
    "hincrbyfloat", 4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", hashes::hincrbyfloat, "Increments a float field.";
    "hstrlen", 3, READONLY | FAST, (1, 1, 1), "hash", hashes::hstrlen, "Returns the length of a field's value.";
    "hrandfield", -2, READONLY, (1, 1, 1), "hash", hashes::hrandfield, "Returns random fields.";
    "hscan", -3, READONLY, (1, 1, 1), "hash", hashes::hscan, "Iterates over the fields of a hash.";
}

/// The command table.
#[must_use]
pub fn table() -> &'static [Command] {
    TABLE
}

static INDEX: LazyLock<hashbrown::HashMap<&'static [u8], usize>> = LazyLock::new(|| {
    TABLE
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_bytes(), i))
        .collect()
});

/// Finds a command by name, in any case.
#[must_use]
pub fn lookup(name: &[u8]) -> Option<(usize, &'static Command)> {
    let mut buf = [0u8; 16];
    let lower = buf.get_mut(..name.len())?;
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    INDEX.get(&*lower).map(|&i| (i, &TABLE[i]))
}

/// Runs one request and writes its reply. `clock` is when the previous request finished (or the
/// batch began); it is moved to when this one finishes, so that a batch reads the clock once per
/// request.
pub fn execute(ctx: &mut Ctx<'_>, args: Args<'_>, clock: &mut Instant) {
    let name = args.get(0);
    if crate::security::is_http_request(name) {
        // Close without a reply and without running what follows in the buffer: that is the
        // attacker's payload (an HTTP body full of commands).
        crate::security::log_http_attack(ctx.shared, &ctx.conn.info, ctx.now);
        ctx.conn.quit = true;
        return;
    }
    let Some((index, cmd)) = lookup(name) else {
        ctx.out.error(&unknown_command(args));
        return;
    };
    ctx.conn
        .info
        .last_command
        .store(index as u16, std::sync::atomic::Ordering::Relaxed);
    let argc = args.len() as i32;
    if (cmd.arity > 0 && argc != cmd.arity) || argc < -cmd.arity {
        ctx.shared.stats.rejected(ctx.conn.info.id, index);
        ctx.out.error(&format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.name
        ));
        return;
    }
    if !ctx.conn.authenticated && cmd.flags & NO_AUTH == 0 {
        ctx.shared.stats.rejected(ctx.conn.info.id, index);
        ctx.out.error("NOAUTH Authentication required.");
        return;
    }
    if let Err(e) = ctx
        .shared
        .acl
        .check(&ctx.conn.info.user.lock(), index, args)
    {
        ctx.shared.stats.rejected(ctx.conn.info.id, index);
        ctx.out.error(&e);
        return;
    }
    let watched = match route(ctx, cmd, args) {
        Ok(watched) => watched,
        Err(e) => {
            ctx.shared.stats.rejected(ctx.conn.info.id, index);
            ctx.out.error(&e);
            return;
        }
    };
    let grows = cmd.flags & DENYOOM != 0;
    let room = if grows {
        match admit(ctx, cmd, args) {
            Ok(room) => Some(room),
            Err(e) => {
                if watched {
                    ctx.shared
                        .cluster
                        .as_ref()
                        .expect("watched")
                        .leave(std::iter::empty());
                }
                ctx.shared.stats.rejected(ctx.conn.info.id, index);
                ctx.out.error(&e.0);
                return;
            }
        }
    } else {
        None
    };
    let mark = ctx.out.len();
    let result = (cmd.handler)(ctx, args);
    drop(room);
    if watched {
        let cluster = ctx.shared.cluster.as_ref().expect("watched");
        cluster.leave(key_args(cmd, args));
    }
    if cmd.flags & WRITE != 0 {
        // The arguments bound what most writes add; this catches the rest (a hash field that
        // replaced a shorter one in a bigger allocation class, say), and writes that grow memory
        // without being admitted (EXPIRE's index entry, RENAME to a longer name), before the
        // next command. Two atomic loads when within the budget.
        ctx.shared.store.settle();
    }
    let failed = result.is_err();
    if let Err(Error(msg)) = result {
        ctx.out.truncate(mark);
        ctx.out.error(&msg);
    }
    let now = Instant::now();
    ctx.conn
        .stats
        .record(index, now.saturating_duration_since(*clock), failed);
    *clock = now;
}

/// The arguments of a request that are keys, by the table's key positions.
pub fn key_args<'a>(cmd: &Command, args: Args<'a>) -> impl Iterator<Item = &'a [u8]> + 'a {
    let (first, step) = (cmd.first_key, cmd.step.max(1));
    let last = if cmd.last_key < 0 {
        args.len() as i32 + cmd.last_key
    } else {
        cmd.last_key.min(args.len() as i32 - 1)
    };
    let range = if first > 0 && first <= last {
        (first..=last).step_by(step as usize)
    } else {
        // An empty range.
        (1..=0).step_by(1)
    };
    range.map(move |i| args.get(i as usize))
}

/// Sends a keyed request where the cluster serves its slot: `-MOVED` to the owner, `-CROSSSLOT`
/// for keys of several slots, `-CLUSTERDOWN` for a slot no one serves, `-TRYAGAIN` while the
/// slot is paused for the end of a migration. `Ok(true)` for a write to a slot being migrated
/// away, which the migration must see (then [`crate::cluster::Cluster::leave`] after it ran).
fn route(ctx: &mut Ctx<'_>, cmd: &Command, args: Args<'_>) -> Result<bool, String> {
    let Some(cluster) = ctx.shared.cluster.as_deref() else {
        return Ok(false);
    };
    if cmd.first_key <= 0 {
        return Ok(false);
    }
    ctx.conn.asking = false;
    let view = ctx.conn.view(cluster);
    let writes = cmd.flags & WRITE != 0;
    match cluster.route(&view, key_args(cmd, args), writes) {
        crate::cluster::Route::Refuse(msg) => Err(msg),
        crate::cluster::Route::Here {
            slot: Some(slot),
            watched: true,
        } => cluster.enter(slot).map(|()| true).map_err(str::to_owned),
        crate::cluster::Route::Here { .. } => Ok(false),
    }
}

/// Makes room in the memory budget for a command that may grow memory, before it runs: what its
/// arguments would cost stored as new entries, one per key. The room is made by eviction, from the
/// first key's shard first; `-OOM` when the policy may not evict or the write can never fit.
fn admit<'a>(
    ctx: &Ctx<'a>,
    cmd: &Command,
    args: Args<'_>,
) -> Result<dcache_store::Room<'a>, Error> {
    let payload: usize = args.iter_from(1).map(<[u8]>::len).sum();
    let keys = match (cmd.first_key, cmd.last_key, cmd.step) {
        (first, _, _) if first <= 0 => 1,
        (first, last, step) => {
            let last = if last < 0 {
                args.len() as i32 + last
            } else {
                last
            };
            ((last - first) / step.max(1) + 1).max(1) as usize
        }
    };
    let need = payload + (keys - 1) * dcache_store::write_cost(0);
    let hint = ctx.key(if cmd.first_key > 0 {
        args.get(cmd.first_key as usize)
    } else {
        b""
    });
    Ok(ctx
        .shared
        .store
        .admit(&hint, dcache_store::write_cost(need))?)
}

fn unknown_command(args: Args<'_>) -> String {
    let mut msg = format!(
        "ERR unknown command '{}', with args beginning with: ",
        truncate_lossy(args.get(0), 128)
    );
    for arg in args.iter_from(1) {
        msg.push_str(&format!("'{}' ", truncate_lossy(arg, 128)));
        if msg.len() > 1024 {
            break;
        }
    }
    msg
}

/// Text of at most `max` bytes for an error message.
pub fn truncate_lossy(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

/// The error for an unknown subcommand of `cmd`.
pub fn unknown_subcommand(sub: &[u8], cmd: &str) -> Error {
    Error::from(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        truncate_lossy(sub, 128),
        cmd.to_ascii_uppercase()
    ))
}

/// The error for a subcommand called with the wrong number of arguments.
pub fn subcommand_arity(cmd: &str, sub: &[u8]) -> Error {
    Error::from(format!(
        "ERR wrong number of arguments for '{}|{}' command",
        cmd,
        String::from_utf8_lossy(sub).to_ascii_lowercase()
    ))
}

/// Case-insensitive comparison with an ASCII keyword.
#[must_use]
pub fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// Parses a Redis integer argument.
///
/// # Errors
/// `ERR value is not an integer or out of range`.
pub fn int_arg(arg: &[u8]) -> Result<i64, Error> {
    dcache_protocol::request::parse_i64(arg).ok_or(Error::from(NOT_INTEGER))
}

/// Parses a float the way Redis does for values: a finite decimal or exponent form, no spaces.
#[must_use]
pub fn parse_float(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("nan") {
        return None;
    }
    text.parse::<f64>().ok()
}

/// Formats the result of INCRBYFLOAT and HINCRBYFLOAT. Redis prints the `long double` with 17
/// decimals and trims the zeros, so an integral result shows every digit
/// (`-9223372036854775808`, where the shortest round-trip form would end in `...776000`); other
/// results take the shortest form that reads back the same (`0.3` rather than the 17 decimals
/// of the `f64` nearest to it, which Redis's wider `long double` does not show either).
#[must_use]
pub fn format_float_value(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 {
        // -0.0 prints as "-0"; Redis prints "0".
        let text = format!("{value:.0}");
        if text == "-0" { "0".to_owned() } else { text }
    } else {
        dcache_protocol::reply::format_double(value)
    }
}

/// Replies with a list of help lines, as every `… HELP` subcommand does.
pub fn help(out: &mut ReplyWriter<'_>, lines: &[&str]) {
    out.array(lines.len());
    for line in lines {
        out.simple(line);
    }
}
