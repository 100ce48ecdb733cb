//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, with Redis's semantics and words.
//!
//! After `MULTI` dispatch queues every command (`+QUEUED`) except those Redis runs at once
//! (EXEC, DISCARD, MULTI, WATCH, QUIT). A command refused when queued (unknown, wrong arity,
//! NOAUTH, ACL, a cluster redirect, `-CROSSSLOT`, `-OOM`) flags the transaction, and `EXEC` then
//! answers `-EXECABORT` and runs nothing. Otherwise `EXEC` takes the node's exclusive gate
//! (`crate::exclusive`), so that no other client's command runs until its last command is done,
//! and runs the queued commands one by one through the normal dispatch (routing, replication,
//! held replies): a command that fails at run time is just that element of the reply.
//!
//! # WATCH
//!
//! Every write gives the key a new version (the store's hybrid logical clock ticks for each one,
//! and deletes, expiry, eviction and FLUSHALL leave the key absent). `WATCH` notes each key's
//! version, or its absence; `EXEC`, holding the gate, looks again and returns a null array
//! without running anything if any key differs. So the normal path pays nothing for WATCH, and
//! every way a key can change counts: a write by any client (this one too), a replicated effect
//! from another node, expiry, eviction, a flush, a migration that moved the slot away. Unlike
//! Redis, a write command that leaves a value as it was may still count (SADD of a member already
//! there): a spurious abort, which a WATCH retry loop absorbs.
//!
//! # Cluster rules
//!
//! Every key of a transaction must be in one slot: a queued command with a key of another slot
//! than the ones before it is refused with `-CROSSSLOT` (and the transaction with `-EXECABORT`).
//! At `EXEC` the keys are routed again: if the slot is no longer served here, `EXEC` answers the
//! redirect (`-MOVED`, `-CLUSTERDOWN`) for the whole transaction and runs nothing, as Redis does;
//! while the slot is being migrated away a transaction that writes answers `-TRYAGAIN`, and
//! once it is running the migration waits for it (its writes are counted as one). Quorum reads
//! cannot wait inside `EXEC`: a read inside a transaction is served from this copy.
//!
//! Blocking commands inside `EXEC` do not block: they answer as on timeout, as in Redis.

use std::sync::atomic::Ordering::Relaxed;

use dcache_protocol::Args;
use dcache_store::{Lookup, Version};

use super::{CmdResult, Command, Ctx, DENYOOM, Error, WRITE};

/// A connection's transaction state.
#[derive(Debug, Default)]
pub struct Txn {
    /// Between `MULTI` and `EXEC` or `DISCARD`.
    queue: Option<Queue>,
    /// Watched keys, each with its version when watched (`None`: absent).
    watched: Vec<(Box<[u8]>, Option<Version>)>,
    /// Set while `EXEC` runs its commands.
    executing: bool,
    /// The slot `EXEC` counted its writes in ([`crate::cluster::Cluster::enter`]): its
    /// commands' writes to it are not counted again.
    entered: Option<u16>,
}

#[derive(Debug, Default)]
struct Queue {
    commands: Vec<Queued>,
    /// A command was refused when queued: `EXEC` answers `-EXECABORT`.
    failed: bool,
    /// Under cluster mode, the slot of the keys queued so far.
    slot: Option<u16>,
    /// What the queued commands' arguments take.
    bytes: usize,
}

/// A queued command: its arguments, owned.
#[derive(Debug)]
struct Queued {
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Queued {
    fn args(&self) -> Args<'_> {
        Args::new(&self.data, &self.spans)
    }
}

impl Txn {
    /// Whether the connection is between `MULTI` and `EXEC`.
    #[must_use]
    pub fn in_multi(&self) -> bool {
        self.queue.is_some()
    }

    /// The bytes of the queued commands: they count against the query buffer limit, so that a
    /// transaction cannot queue without bound.
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.bytes)
    }

    /// Whether `EXEC` is running its commands (they may not wait for anything).
    #[must_use]
    pub fn executing(&self) -> bool {
        self.executing
    }

    /// Whether a write to `slot` is already counted by the `EXEC` running it.
    #[must_use]
    pub fn entered(&self, slot: u16) -> bool {
        self.entered == Some(slot)
    }

    /// Ends the transaction and forgets the watched keys (EXEC, DISCARD, RESET).
    pub(super) fn reset(&mut self) {
        self.queue = None;
        self.watched.clear();
    }
}

/// Ends the connection's transaction, if one is open, and forgets its watched keys (EXEC,
/// DISCARD, RESET, a refused EXEC).
pub(super) fn end(ctx: &mut Ctx<'_>) {
    ctx.conn.txn.reset();
    publish(ctx);
}

/// Shows the transaction's queued commands in `CLIENT LIST` (`multi=`, -1 outside one).
fn publish(ctx: &Ctx<'_>) {
    let queued = ctx
        .conn
        .txn
        .queue
        .as_ref()
        .map_or(-1, |q| q.commands.len() as i64);
    ctx.conn.info.multi.store(queued, Relaxed);
}

/// Whether `cmd` runs at once inside `MULTI` rather than being queued (Redis's list).
#[must_use]
pub(super) fn runs_in_multi(cmd: &Command) -> bool {
    matches!(
        cmd.name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Answers `msg` for a request refused before it ran, and flags the transaction if one is open.
/// A refused `EXEC` ends the transaction and says why, as Redis does
/// (`-EXECABORT Transaction discarded because of: <reason>`).
pub(super) fn reject(ctx: &mut Ctx<'_>, cmd: Option<&Command>, msg: &str) {
    if cmd.is_some_and(|c| c.name == "exec") {
        end(ctx);
        let reason = msg.strip_prefix("ERR ").unwrap_or(msg);
        ctx.out.error(&format!(
            "EXECABORT Transaction discarded because of: {reason}"
        ));
        return;
    }
    if let Some(queue) = &mut ctx.conn.txn.queue {
        queue.failed = true;
    }
    ctx.out.error(msg);
}

/// Queues a command inside `MULTI`, after the checks Redis makes when queueing (dispatch has
/// made those that do not depend on the transaction: arity, authentication, ACL): its slot
/// under cluster mode, and room in memory for one that may grow it.
pub(super) fn queue(ctx: &mut Ctx<'_>, cmd: &Command, args: Args<'_>) {
    // Redis looks a container's subcommand up before it queues (or runs) it.
    if !cmd.subcommands.is_empty() && args.len() >= 2 {
        let error = match cmd.subcommand(args.get(1)) {
            None => Some(super::unknown_subcommand(args.get(1), cmd.name)),
            Some(sub) if !sub.arity_ok(args.len()) => {
                Some(super::subcommand_arity(cmd.name, args.get(1)))
            }
            Some(_) => None,
        };
        if let Some(Error(msg)) = error {
            return reject(ctx, Some(cmd), &msg);
        }
    }
    if let Err(e) = check_slot(ctx, cmd, args) {
        return reject(ctx, Some(cmd), &e);
    }
    if cmd.flags & DENYOOM != 0 {
        // Made now and given back: if room cannot be made, EXEC could not run it either.
        if let Err(e) = super::admit(ctx, cmd, args) {
            return reject(ctx, Some(cmd), &e.0);
        }
    }
    let mut data = Vec::new();
    let mut spans = Vec::with_capacity(args.len());
    for arg in args.iter() {
        spans.push((data.len(), data.len() + arg.len()));
        data.extend_from_slice(arg);
    }
    let queue = ctx.conn.txn.queue.as_mut().expect("in MULTI");
    queue.bytes += data.len() + spans.len() * std::mem::size_of::<(usize, usize)>();
    queue.commands.push(Queued { data, spans });
    publish(ctx);
    ctx.out.simple("QUEUED");
}

/// Under cluster mode, routes a command being queued: refused as it would be if it ran now, or
/// for a slot other than that of the keys queued before it.
fn check_slot(ctx: &mut Ctx<'_>, cmd: &Command, args: Args<'_>) -> Result<(), String> {
    let Some(cluster) = ctx.shared.cluster.clone() else {
        return Ok(());
    };
    let mut keys = dcache_protocol::commands::keys(cmd.spec, &args)
        .map(|i| args.get(i))
        .peekable();
    if keys.peek().is_none() {
        return Ok(());
    }
    let view = ctx.conn.view(&cluster);
    let slot = match cluster.route(&view, keys, cmd.flags & WRITE != 0, ctx.conn.readonly) {
        crate::cluster::Route::Refuse(msg) => return Err(msg),
        crate::cluster::Route::Here { slot, .. } => slot,
        crate::cluster::Route::Copy { slot } => Some(slot),
    };
    let queue = ctx.conn.txn.queue.as_mut().expect("in MULTI");
    match (queue.slot, slot) {
        (Some(first), Some(s)) if first != s => {
            Err("CROSSSLOT Keys in request don't hash to the same slot".into())
        }
        (None, s) => {
            queue.slot = s;
            Ok(())
        }
        _ => Ok(()),
    }
}

pub fn multi(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.conn.txn.in_multi() {
        return Err("ERR MULTI calls can not be nested".into());
    }
    ctx.conn.txn.queue = Some(Queue::default());
    publish(ctx);
    ctx.out.ok();
    Ok(())
}

pub fn discard(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if !ctx.conn.txn.in_multi() {
        return Err("ERR DISCARD without MULTI".into());
    }
    end(ctx);
    ctx.out.ok();
    Ok(())
}

pub fn watch(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if ctx.conn.txn.in_multi() {
        return Err("ERR WATCH inside MULTI is not allowed".into());
    }
    for key in args.iter_from(1) {
        // A key watched twice keeps its first version: a change in between already counts.
        if ctx.conn.txn.watched.iter().any(|(k, _)| **k == *key) {
            continue;
        }
        let version = version_of(ctx, key);
        ctx.conn.txn.watched.push((key.into(), version));
    }
    ctx.out.ok();
    Ok(())
}

pub fn unwatch(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.conn.txn.watched.clear();
    ctx.out.ok();
    Ok(())
}

/// A live key's version, `None` when absent (or expired: as Redis, a key watched while
/// already expired counts as absent, and its deletion changes nothing).
fn version_of(ctx: &Ctx<'_>, key: &[u8]) -> Option<Version> {
    let key = ctx.key(key);
    ctx.lock(&key)
        .get(&key, ctx.now, Lookup::Peek)
        .map(|e| e.version())
}

pub fn exec(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let Some(queue) = &ctx.conn.txn.queue else {
        return Err("ERR EXEC without MULTI".into());
    };
    if queue.failed {
        end(ctx);
        return Err("EXECABORT Transaction discarded because of previous errors.".into());
    }
    if !ctx.exclusive() {
        // Runs again once this connection holds the gate.
        return Ok(());
    }
    let queue = ctx.conn.txn.queue.take().expect("in MULTI");
    publish(ctx);
    let watched = std::mem::take(&mut ctx.conn.txn.watched);
    if watched
        .iter()
        .any(|(key, seen)| version_of(ctx, key) != *seen)
    {
        ctx.out.null_array();
        return Ok(());
    }
    let entered = enter(ctx, &queue)?;
    if queue
        .commands
        .iter()
        .any(|q| super::lookup(q.args().get(0)).is_some_and(|(_, c)| c.flags & DENYOOM != 0))
        && let Err(e) = admit_all(ctx, &queue)
    {
        leave(ctx, entered);
        return Err(format!("EXECABORT Transaction discarded because of: {}", e.0).into());
    }
    ctx.conn.txn.executing = true;
    ctx.conn.txn.entered = entered;
    ctx.out.array(queue.commands.len());
    let mut clock = std::time::Instant::now();
    for queued in &queue.commands {
        let args = queued.args();
        super::execute(ctx, args, &mut clock);
        if ctx.conn.block.take().is_some() {
            // Nothing to pop: the answer of a timeout, at once.
            if super::is(args.get(0), "blmove") || super::is(args.get(0), "brpoplpush") {
                ctx.out.null();
            } else {
                ctx.out.null_array();
            }
        }
    }
    ctx.conn.txn.executing = false;
    ctx.conn.txn.entered = None;
    leave(ctx, entered);
    Ok(())
}

/// Under cluster mode, routes the transaction's keys again now that it runs, and counts its
/// writes in their slot for the whole transaction, so that a migration of the slot waits for
/// it rather than refusing its later commands. `None` when there is nothing to count.
fn enter(ctx: &mut Ctx<'_>, queue: &Queue) -> Result<Option<u16>, Error> {
    let (Some(cluster), Some(_)) = (ctx.shared.cluster.clone(), queue.slot) else {
        return Ok(None);
    };
    let mut writes = false;
    let mut keys = Vec::new();
    for queued in &queue.commands {
        let args = queued.args();
        if let Some((_, cmd)) = super::lookup(args.get(0)) {
            writes |= cmd.flags & WRITE != 0;
            keys.extend(dcache_protocol::commands::keys(cmd.spec, &args).map(|i| args.get(i)));
        }
    }
    let view = ctx.conn.view(&cluster);
    match cluster.route(&view, keys.into_iter(), writes, ctx.conn.readonly) {
        crate::cluster::Route::Refuse(msg) => Err(msg.into()),
        crate::cluster::Route::Here {
            slot: Some(slot), ..
        } if writes => match cluster.enter(slot) {
            Ok(false) => Ok(Some(slot)),
            Ok(true) => {
                // Being migrated: a transaction's writes would each have to be recorded while
                // the migration may pause the slot between two of them.
                cluster.leave(slot, true, std::iter::empty());
                Err("TRYAGAIN The slot is moving to another node; try again in a moment".into())
            }
            Err(e) => Err(e.into()),
        },
        crate::cluster::Route::Copy { slot } if writes => {
            cluster.enter_copy(slot).map_err(Error::from)?;
            Ok(Some(slot))
        }
        _ => Ok(None),
    }
}

fn leave(ctx: &Ctx<'_>, entered: Option<u16>) {
    if let (Some(slot), Some(cluster)) = (entered, &ctx.shared.cluster) {
        cluster.leave(slot, false, std::iter::empty());
    }
}

/// Makes room at once for what the transaction's commands that grow memory bring, as Redis
/// refuses the whole `EXEC` under `-OOM` rather than some of its commands; the room is given
/// back before they run, each of which makes its own.
fn admit_all(ctx: &Ctx<'_>, queue: &Queue) -> Result<(), Error> {
    let mut need = 0;
    let mut hint = None;
    for queued in &queue.commands {
        let args = queued.args();
        let Some((_, cmd)) = super::lookup(args.get(0)) else {
            continue;
        };
        if cmd.flags & DENYOOM == 0 {
            continue;
        }
        need += args.iter_from(1).map(<[u8]>::len).sum::<usize>();
        hint = hint.or_else(|| {
            dcache_protocol::commands::keys(cmd.spec, &args)
                .next()
                .map(|i| args.get(i))
        });
    }
    let key = ctx.key(hint.unwrap_or_default());
    ctx.shared
        .store
        .admit(&key, dcache_store::write_cost(need))
        .map(drop)
        .map_err(Error::from)
}
