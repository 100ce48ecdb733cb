//! The command table and dispatch.
//!
//! What a command is (name, arity, flags, key positions, docs) lives once, in
//! `dcache_protocol::commands`, which clients read too; this table pairs each of those specs with
//! its handler, by name. Flags drive authentication, out-of-memory refusals and, later,
//! replication; key positions drive admission, ACL key checks, `COMMAND` and slot checks (find
//! them with `dcache_protocol::commands::keys`). Handlers live by family in the files beside this
//! one; each parses its own arguments and applies itself to the store.

mod acl;
mod bits;
mod cluster;
mod connection;
mod expire;
mod geo;
mod hashes;
mod hll;
mod keys;
mod lists;
mod pubsub;
mod replication;
mod scripting;
mod server;
mod sets;
mod strings;
mod throttle;
mod transactions;
mod zsets;

pub use connection::REDIS_COMPAT_VERSION;
pub use transactions::Txn;

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Instant;

use dcache_protocol::{Args, ReplyWriter};
use dcache_store::{Key, Shard, StoreError};
use parking_lot::MutexGuard;

use crate::connection::ConnState;
use crate::state::Shared;

pub use dcache_protocol::commands::{
    ADMIN, CONNECTION, CommandSpec, DENYOOM, FAST, NO_AUTH, PUBSUB, READONLY, WRITE,
};

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

/// One row of the command table: a command's spec (shared with clients, in `dcache-protocol`)
/// and the handler that runs it. Derefs to the spec, so `cmd.name`, `cmd.flags`, … read it.
#[derive(Debug)]
pub struct Command {
    pub spec: &'static CommandSpec,
    pub handler: Handler,
}

impl std::ops::Deref for Command {
    type Target = CommandSpec;

    fn deref(&self) -> &CommandSpec {
        self.spec
    }
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

    /// Whether this run of a blocking command follows a wake-up: one of its keys was written
    /// ([`crate::blocking`]). A woken command that finds no key of its type waits again rather
    /// than failing, as Redis wakes a client only for a key of the type it waits for.
    #[must_use]
    pub fn woken(&self) -> bool {
        self.conn.woken
    }

    /// Blocks the client on `keys` (a blocking command that found nothing): the handler writes
    /// no reply, and the connection runs the request again when one of the keys is ready
    /// ([`crate::blocking::Blocking::ready`]), or answers a null array after `timeout` (`None`:
    /// never). A client already blocked keeps its place in line and its first deadline.
    pub fn block<'k>(
        &mut self,
        keys: impl Iterator<Item = &'k [u8]>,
        timeout: Option<std::time::Duration>,
    ) {
        self.conn.block = Some(crate::blocking::Block {
            keys: keys.map(<[u8]>::to_vec).collect(),
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
        });
    }

    /// Whether this connection holds the node's exclusive gate (`crate::exclusive`), for a
    /// command that must run with no other client's command meanwhile (EXEC, scripts). When it
    /// does not, the handler returns at once without a reply: the connection gives back its share,
    /// waits for the gate and runs the request again, holding it.
    pub fn exclusive(&mut self) -> bool {
        match self.conn.exclusive {
            crate::exclusive::Turn::Held => true,
            _ => {
                self.conn.exclusive = crate::exclusive::Turn::Wanted;
                false
            }
        }
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

/// Whether the request named `name` will ask for the exclusive gate ([`Ctx::exclusive`]): EXEC
/// of a transaction and a script outside one. The connection takes the gate before running such
/// a request rather than running it twice (once to learn that it must wait); the handler's own
/// ask stays the rule for everything else. Not under quorum reads, where a script's declared
/// keys are read from the copies before it takes the gate.
#[must_use]
pub fn runs_alone(shared: &Shared, conn: &ConnState, name: &[u8]) -> bool {
    // Asked of every request: most are told by their first byte.
    if !matches!(name.first(), Some(b'e' | b'E')) {
        return false;
    }
    let script = [&b"eval"[..], b"evalsha", b"eval_ro", b"evalsha_ro"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n));
    if script {
        !conn.txn.in_multi() && !crate::replicate::quorum_reads(shared)
    } else {
        name.eq_ignore_ascii_case(b"exec") && conn.txn.in_multi()
    }
}

/// Each command's handler, by name. Every command of the spec table has one, and nothing else
/// does (checked when the table is built, and by a test).
const HANDLERS: &[(&str, Handler)] = &[
    ("ping", connection::ping),
    ("echo", connection::echo),
    ("hello", connection::hello),
    ("auth", connection::auth),
    ("select", connection::select),
    ("quit", connection::quit),
    ("reset", connection::reset),
    ("multi", transactions::multi),
    ("exec", transactions::exec),
    ("discard", transactions::discard),
    ("watch", transactions::watch),
    ("unwatch", transactions::unwatch),
    ("acl", acl::acl),
    ("client", connection::client),
    ("command", server::command),
    ("info", server::info),
    ("config", server::config),
    ("dbsize", server::dbsize),
    ("flushdb", server::flush),
    ("flushall", server::flush),
    ("time", server::time),
    ("role", replication::role),
    ("wait", replication::wait),
    ("memory", server::memory),
    ("cluster", cluster::cluster),
    ("readonly", cluster::readonly),
    ("readwrite", cluster::readwrite),
    ("asking", cluster::accepted),
    ("object", server::object),
    ("get", strings::get),
    ("set", strings::set),
    ("setnx", strings::setnx),
    ("setex", strings::setex),
    ("psetex", strings::psetex),
    ("getex", strings::getex),
    ("getdel", strings::getdel),
    ("getset", strings::getset),
    ("mget", strings::mget),
    ("mset", strings::mset),
    ("msetnx", strings::msetnx),
    ("append", strings::append),
    ("strlen", strings::strlen),
    ("getrange", strings::getrange),
    ("substr", strings::getrange),
    ("setrange", strings::setrange),
    ("incr", strings::incr),
    ("decr", strings::decr),
    ("incrby", strings::incrby),
    ("decrby", strings::decrby),
    ("incrbyfloat", strings::incrbyfloat),
    ("del", keys::del),
    ("unlink", keys::del),
    ("exists", keys::exists),
    ("touch", keys::touch),
    ("type", keys::type_),
    ("keys", keys::keys),
    ("scan", keys::scan),
    ("randomkey", keys::randomkey),
    ("rename", keys::rename),
    ("renamenx", keys::renamenx),
    ("copy", keys::copy),
    ("expire", expire::expire),
    ("pexpire", expire::pexpire),
    ("expireat", expire::expireat),
    ("pexpireat", expire::pexpireat),
    ("ttl", expire::ttl),
    ("pttl", expire::pttl),
    ("expiretime", expire::expiretime),
    ("pexpiretime", expire::pexpiretime),
    ("persist", expire::persist),
    ("hset", hashes::hset),
    ("hmset", hashes::hmset),
    ("hsetnx", hashes::hsetnx),
    ("hget", hashes::hget),
    ("hmget", hashes::hmget),
    ("hdel", hashes::hdel),
    ("hgetall", hashes::hgetall),
    ("hkeys", hashes::hkeys),
    ("hvals", hashes::hvals),
    ("hlen", hashes::hlen),
    ("hexists", hashes::hexists),
    ("hincrby", hashes::hincrby),
    ("hincrbyfloat", hashes::hincrbyfloat),
    ("hstrlen", hashes::hstrlen),
    ("hrandfield", hashes::hrandfield),
    ("hscan", hashes::hscan),
    // lists
    ("lpush", lists::lpush),
    ("rpush", lists::rpush),
    ("lpushx", lists::lpushx),
    ("rpushx", lists::rpushx),
    ("lpop", lists::lpop),
    ("rpop", lists::rpop),
    ("lrange", lists::lrange),
    ("lindex", lists::lindex),
    ("lset", lists::lset),
    ("linsert", lists::linsert),
    ("llen", lists::llen),
    ("lrem", lists::lrem),
    ("ltrim", lists::ltrim),
    ("lpos", lists::lpos),
    ("lmove", lists::lmove),
    ("rpoplpush", lists::rpoplpush),
    ("lmpop", lists::lmpop),
    ("blpop", lists::blpop),
    ("brpop", lists::brpop),
    ("blmove", lists::blmove),
    ("brpoplpush", lists::brpoplpush),
    ("blmpop", lists::blmpop),
    // sets
    ("sadd", sets::sadd),
    ("srem", sets::srem),
    ("smembers", sets::smembers),
    ("sismember", sets::sismember),
    ("smismember", sets::smismember),
    ("scard", sets::scard),
    ("spop", sets::spop),
    ("srandmember", sets::srandmember),
    ("smove", sets::smove),
    ("sinter", sets::sinter),
    ("sintercard", sets::sintercard),
    ("sinterstore", sets::sinterstore),
    ("sunion", sets::sunion),
    ("sunionstore", sets::sunionstore),
    ("sdiff", sets::sdiff),
    ("sdiffstore", sets::sdiffstore),
    ("sscan", sets::sscan),
    // sorted sets
    ("zadd", zsets::zadd),
    ("zincrby", zsets::zincrby),
    ("zrem", zsets::zrem),
    ("zcard", zsets::zcard),
    ("zscore", zsets::zscore),
    ("zmscore", zsets::zmscore),
    ("zrank", zsets::zrank),
    ("zrevrank", zsets::zrevrank),
    ("zcount", zsets::zcount),
    ("zlexcount", zsets::zlexcount),
    ("zrange", zsets::zrange),
    ("zrangestore", zsets::zrangestore),
    ("zrangebyscore", zsets::zrangebyscore),
    ("zrevrangebyscore", zsets::zrevrangebyscore),
    ("zrangebylex", zsets::zrangebylex),
    ("zrevrangebylex", zsets::zrevrangebylex),
    ("zrevrange", zsets::zrevrange),
    ("zremrangebyrank", zsets::zremrangebyrank),
    ("zremrangebyscore", zsets::zremrangebyscore),
    ("zremrangebylex", zsets::zremrangebylex),
    ("zpopmin", zsets::zpopmin),
    ("zpopmax", zsets::zpopmax),
    ("zmpop", zsets::zmpop),
    ("bzpopmin", zsets::bzpopmin),
    ("bzpopmax", zsets::bzpopmax),
    ("bzmpop", zsets::bzmpop),
    ("zrandmember", zsets::zrandmember),
    ("zunion", zsets::zunion),
    ("zinter", zsets::zinter),
    ("zdiff", zsets::zdiff),
    ("zintercard", zsets::zintercard),
    ("zunionstore", zsets::zunionstore),
    ("zinterstore", zsets::zinterstore),
    ("zdiffstore", zsets::zdiffstore),
    ("zscan", zsets::zscan),
    // bitmaps and string ranges
    ("setbit", bits::setbit),
    ("getbit", bits::getbit),
    ("bitcount", bits::bitcount),
    ("bitpos", bits::bitpos),
    ("bitop", bits::bitop),
    ("bitfield", bits::bitfield),
    ("bitfield_ro", bits::bitfield_ro),
    ("lcs", bits::lcs),
    // hyperloglog
    ("pfadd", hll::pfadd),
    ("pfcount", hll::pfcount),
    ("pfmerge", hll::pfmerge),
    // geo
    ("geoadd", geo::geoadd),
    ("geodist", geo::geodist),
    ("geohash", geo::geohash),
    ("geopos", geo::geopos),
    ("geosearch", geo::geosearch),
    ("geosearchstore", geo::geosearchstore),
    ("georadius_ro", geo::georadius_ro),
    ("georadiusbymember_ro", geo::georadiusbymember_ro),
    // pub/sub
    ("subscribe", pubsub::subscribe),
    ("unsubscribe", pubsub::unsubscribe),
    ("psubscribe", pubsub::psubscribe),
    ("punsubscribe", pubsub::punsubscribe),
    ("publish", pubsub::publish),
    ("pubsub", pubsub::pubsub),
    ("ssubscribe", pubsub::ssubscribe),
    ("sunsubscribe", pubsub::sunsubscribe),
    ("spublish", pubsub::spublish),
    // scripting
    ("eval", scripting::eval),
    ("evalsha", scripting::evalsha),
    ("eval_ro", scripting::eval_ro),
    ("evalsha_ro", scripting::evalsha_ro),
    ("script", scripting::script),
    // rate limiting
    ("cl.throttle", throttle::cl_throttle),
];

/// The spec table with handlers, in the spec table's order, so that an index is the same in both.
static TABLE: LazyLock<Vec<Command>> = LazyLock::new(|| {
    assert_eq!(
        HANDLERS.len(),
        dcache_protocol::commands::COMMANDS.len(),
        "a handler for every command and a command for every handler"
    );
    dcache_protocol::commands::COMMANDS
        .iter()
        .map(|spec| Command {
            spec,
            handler: HANDLERS
                .iter()
                .find(|(name, _)| *name == spec.name)
                .unwrap_or_else(|| panic!("no handler for {}", spec.name))
                .1,
        })
        .collect()
});

/// The command table.
#[must_use]
pub fn table() -> &'static [Command] {
    &TABLE
}

/// Finds a command by name, in any case.
#[must_use]
pub fn lookup(name: &[u8]) -> Option<(usize, &'static Command)> {
    dcache_protocol::commands::lookup(name).map(|(i, _)| (i, &TABLE[i]))
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
        transactions::reject(ctx, None, &unknown_command(args));
        return;
    };
    ctx.conn
        .info
        .last_command
        .store(index as u16, std::sync::atomic::Ordering::Relaxed);
    let argc = args.len() as i32;
    if (cmd.arity > 0 && argc != cmd.arity) || argc < -cmd.arity {
        ctx.shared.stats.rejected(ctx.conn.info.id, index);
        let msg = format!("ERR wrong number of arguments for '{}' command", cmd.name);
        transactions::reject(ctx, Some(cmd), &msg);
        return;
    }
    if !ctx.conn.authenticated && cmd.flags & NO_AUTH == 0 {
        ctx.shared.stats.rejected(ctx.conn.info.id, index);
        transactions::reject(ctx, Some(cmd), "NOAUTH Authentication required.");
        return;
    }
    let allowed = ctx
        .shared
        .acl
        .check(&ctx.conn.info.user.lock(), index, args);
    if let Err(e) = allowed {
        ctx.shared.stats.rejected(ctx.conn.info.id, index);
        transactions::reject(ctx, Some(cmd), &e);
        return;
    }
    if !ctx.conn.resp3
        && ctx.conn.info.subscriptions.active()
        && !pubsub::SUBSCRIBED_MODE.contains(&cmd.name)
    {
        ctx.shared.stats.rejected(ctx.conn.info.id, index);
        let sub = (args.len() > 1)
            .then(|| cmd.subcommand(args.get(1)))
            .flatten();
        let name = match sub {
            Some(sub) => format!("{}|{}", cmd.name, sub.name),
            None => cmd.name.to_owned(),
        };
        ctx.out.error(&pubsub::subscribed_mode_error(&name));
        return;
    }
    if ctx.conn.busy && !crate::scripting::may_end_busy(cmd.name, args) {
        ctx.shared.stats.rejected(ctx.conn.info.id, index);
        transactions::reject(ctx, Some(cmd), crate::scripting::BUSY);
        return;
    }
    if ctx.conn.txn.in_multi() && !transactions::runs_in_multi(cmd) {
        transactions::queue(ctx, cmd, args);
        return;
    }
    let (entered, read_slot) = match route(ctx, cmd, args) {
        Ok(routed) => routed,
        Err(e) => {
            ctx.shared.stats.rejected(ctx.conn.info.id, index);
            transactions::reject(ctx, Some(cmd), &e);
            return;
        }
    };
    // Holding the gate (inside EXEC or a script) nothing may wait: a quorum read is served from
    // this copy. (An EVAL's declared keys are read by quorum before it asks for the gate.)
    // A shard channel is routed by its slot but names no data: nothing to read from the copies.
    let read_slot = read_slot.filter(|_| cmd.flags & PUBSUB == 0);
    if let Some(slot) = read_slot
        && crate::replicate::quorum_reads(ctx.shared)
        && !ctx.conn.txn.executing()
        && ctx.conn.exclusive != crate::exclusive::Turn::Held
    {
        match ctx.conn.quorum.take() {
            // The other copies answered: the newest state is here now.
            Some(Ok(())) => {}
            Some(Err(e)) => {
                ctx.out.error(e);
                return;
            }
            None => {
                ctx.conn.defer = Some(crate::replicate::QuorumRead {
                    slot,
                    keys: dcache_protocol::commands::keys(cmd.spec, &args)
                        .map(|i| args.get(i).to_vec())
                        .collect(),
                });
                return;
            }
        }
    }
    let grows = cmd.flags & DENYOOM != 0;
    let room = if grows {
        match admit(ctx, cmd, args) {
            Ok(room) => Some(room),
            Err(e) => {
                if let Some((slot, watched)) = entered
                    && !ctx.conn.txn.entered(slot)
                {
                    ctx.shared.cluster.as_ref().expect("entered").leave(
                        slot,
                        watched,
                        std::iter::empty(),
                    );
                }
                ctx.shared.stats.rejected(ctx.conn.info.id, index);
                transactions::reject(ctx, Some(cmd), &e.0);
                return;
            }
        }
    } else {
        None
    };
    let mark = ctx.out.len();
    // A chain's head registers a write before it runs, so that a read of the slot that sees it
    // waits until the tail holds it (`crate::replicate`).
    let replicated = entered.and_then(|(slot, _)| crate::replicate::before_write(ctx.shared, slot));
    let result = (cmd.handler)(ctx, args);
    drop(room);
    if let Some((slot, ack)) = replicated {
        let keys = dcache_protocol::commands::keys(cmd.spec, &args).map(|i| args.get(i));
        // A blocked command wrote nothing and answers later (when it runs again): no reply to
        // hold, but its ack must still complete for the reads that wait on the slot.
        if crate::replicate::after_write(ctx.shared, slot, &ack, keys, ctx.now, &mut ctx.conn.marks)
            && ctx.conn.block.is_none()
        {
            ctx.conn.hold = Some(ack);
        }
    } else if let Some(slot) = read_slot {
        // A read at a chain's head of a slot with writes on their way to the tail: answered
        // once they are there.
        ctx.conn.hold = crate::replicate::before_read(ctx.shared, slot);
    }
    if let Some((slot, watched)) = entered
        && !ctx.conn.txn.entered(slot)
    {
        let cluster = ctx.shared.cluster.as_ref().expect("entered");
        cluster.leave(
            slot,
            watched,
            dcache_protocol::commands::keys(cmd.spec, &args).map(|i| args.get(i)),
        );
    }
    if cmd.flags & WRITE != 0 {
        // The arguments bound what most writes add; this catches the rest (a hash field that
        // replaced a shorter one in a bigger allocation class, say), and writes that grow memory
        // without being admitted (EXPIRE's index entry, RENAME to a longer name), before the
        // next command. Two atomic loads when within the budget.
        ctx.shared.store.settle();
    }
    if ctx.conn.exclusive == crate::exclusive::Turn::Wanted {
        // Not run yet: it runs again holding the gate, and counts then.
        return;
    }
    let failed = result.is_err();
    if ctx.shared.tracking.active() {
        crate::tracking::after_command(ctx, cmd.spec, args, failed);
    }
    if let Err(Error(msg)) = result {
        ctx.out.truncate(mark);
        ctx.out.error(&msg);
    }
    if let Some(ack) = ctx.conn.hold.take() {
        ctx.conn.holds.push_back(crate::connection::Hold {
            start: mark,
            end: ctx.out.len(),
            ack,
        });
    }
    let now = Instant::now();
    ctx.conn
        .stats
        .record(index, now.saturating_duration_since(*clock), failed);
    *clock = now;
}

/// What [`route`] found: for a write to a slot of this node, `(slot, watched)`; for a read,
/// its slot.
type Routed = (Option<(u16, bool)>, Option<u16>);

/// Sends a keyed request where the cluster serves its slot: `-MOVED` to the owner, `-CROSSSLOT`
/// for keys of several slots, `-CLUSTERDOWN` for a slot no one serves, `-TRYAGAIN` while the
/// slot is paused for the end of a migration. For a write to a slot this node is the primary of,
/// `Some((slot, watched))`: it is counted until [`crate::cluster::Cluster::leave`], which
/// the caller owes it after it ran, and its keys are recorded if the slot is being migrated
/// away. A write that a replica coordinates (`quorum`) is `Some((slot, false))`: counted
/// too ([`crate::cluster::Cluster::enter_copy`]); the primary accounts for it in its migrations
/// when its effects arrive there.
fn route(ctx: &mut Ctx<'_>, cmd: &Command, args: Args<'_>) -> Result<Routed, String> {
    let Some(cluster) = ctx.shared.cluster.as_deref() else {
        return Ok((None, None));
    };
    let mut keys = dcache_protocol::commands::keys(cmd.spec, &args)
        .map(|i| args.get(i))
        .peekable();
    if keys.peek().is_none() {
        return Ok((None, None));
    }
    let view = ctx.conn.view(cluster);
    let writes = cmd.flags & WRITE != 0;
    // Sharded pub/sub is served by any copy of the slot, as Redis serves it on replicas.
    let readonly = ctx.conn.readonly || cmd.flags & PUBSUB != 0;
    match cluster.route(&view, keys, writes, readonly) {
        crate::cluster::Route::Refuse(msg) => Err(msg),
        // Inside an EXEC that counted its writes to the slot once for all of them.
        crate::cluster::Route::Here {
            slot: Some(slot), ..
        }
        | crate::cluster::Route::Copy { slot }
            if writes && ctx.conn.txn.entered(slot) =>
        {
            Ok((Some((slot, false)), None))
        }
        // Whether the slot is watched is decided by `enter`, after the write is counted: the
        // migration may start watching it right after `route` looked.
        crate::cluster::Route::Here {
            slot: Some(slot), ..
        } if writes => cluster
            .enter(slot)
            .map(|watched| (Some((slot, watched)), None))
            .map_err(str::to_owned),
        crate::cluster::Route::Here { slot, .. } => Ok((None, slot)),
        crate::cluster::Route::Copy { slot } if writes => cluster
            .enter_copy(slot)
            .map(|()| (Some((slot, false)), None)),
        crate::cluster::Route::Copy { slot } => Ok((None, Some(slot))),
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
    let mut keys = dcache_protocol::commands::keys(cmd.spec, &args);
    let first = keys.next();
    let others = keys.count();
    let need = payload + others * dcache_store::write_cost(0);
    let hint = ctx.key(first.map_or(&b""[..], |i| args.get(i)));
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
    // Redis prints the name as a C string: it ends at a NUL byte.
    let sub = sub.split(|&b| b == 0).next().unwrap_or_default();
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

/// The count of HRANDFIELD, SRANDMEMBER and ZRANDMEMBER: any integer but `i64::MIN`, whose
/// negation (a count of repeated picks) does not exist, refused with Redis's words.
pub fn random_count_arg(arg: &[u8]) -> Result<i64, Error> {
    match int_arg(arg)? {
        i64::MIN => Err(Error::from(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        )),
        n => Ok(n),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_has_a_handler_and_every_handler_a_spec() {
        let specs = dcache_protocol::commands::COMMANDS;
        for spec in specs {
            assert_eq!(
                HANDLERS.iter().filter(|(n, _)| *n == spec.name).count(),
                1,
                "{}: one handler",
                spec.name
            );
        }
        for (name, _) in HANDLERS {
            assert!(
                specs.iter().any(|s| s.name == *name),
                "{name}: a handler without a spec"
            );
        }
        for (i, cmd) in table().iter().enumerate() {
            assert!(std::ptr::eq(cmd.spec, &specs[i]), "same order as the specs");
            assert_eq!(lookup(cmd.name.as_bytes()).map(|(j, _)| j), Some(i));
        }
    }
}
