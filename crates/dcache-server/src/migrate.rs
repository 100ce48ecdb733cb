//! Following the agreed topology, and moving slots to their new owners.
//!
//! ```text
//!   source (serves the slots)                         destination (their target owner)
//!   watch(batch): writes to it recorded as dirty
//!   CLUSTER IMPORTSLOT <slot> ──────────────────────► drop what an earlier attempt copied
//!   dump_slot → CLUSTER IMPORT <records> ───────────► restore each record (by version)
//!   dirty keys → CLUSTER IMPORT <records> ──────────► … until few are left
//!   pause(batch): writes answered TRYAGAIN
//!   last dirty keys → CLUSTER IMPORT ───────────────► OK for every request
//!   propose Moved { to, batch } ──Raft──► every node: the destination serves the batch
//!   settle(batch): writes answered MOVED; the follower drops the local copy
//! ```
//!
//! A write acknowledged by the source before the pause was either in the snapshot or recorded
//! as dirty and copied before the move committed; after the pause none is acknowledged until
//! the destination serves the slot. Records carry versions, so a key copied twice (snapshot,
//! then dirty) ends with its newest state.
//!
//! Every node also drops keys of slots it neither serves nor is about to serve: the source's
//! copy after a move, and a partial copy whose move never committed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcache_cluster::{Change, NodeState, Topology};
use dcache_placement::SLOTS;
use dcache_protocol::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::cluster::ProposeError;
use crate::state::Shared;

/// Slots moved (and committed) together.
const BATCH_SLOTS: usize = 128;
/// Bytes of records in one CLUSTER IMPORT request.
const REQUEST_BYTES: usize = 256 * 1024;
/// Requests sent before their replies are read.
const WINDOW: usize = 8;
/// The dirty keys left when the source pauses writes: few enough to copy in a moment.
const PAUSE_BELOW: usize = 256;
/// How long a replicated delete's tombstone lives: far longer than an effect can travel late.
const TOMBSTONE_MS: u64 = 60_000;
/// Rounds of copying dirty keys before pausing anyway.
const MAX_ROUNDS: usize = 16;

/// Takes every new topology into the node's routing, drops slots the node no longer keeps, and
/// moves away the slots the topology sends elsewhere, until `stop`.
pub async fn follow(
    shared: Arc<Shared>,
    mut topology: watch::Receiver<Arc<Topology>>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(cluster) = shared.cluster.clone() else {
        return;
    };
    let mut migration: Option<tokio::task::JoinHandle<()>> = None;
    let mut previous = cluster.view().topology.clone();
    // A node that starts with its topology already known (epoch above 0) records deltas from
    // the start, not from the next change.
    crate::replicate::follow_deltas(&shared);
    loop {
        let next = Arc::clone(&topology.borrow_and_update());
        if next.epoch != previous.epoch || next.epoch == 0 {
            // Slots taken over from a failed node are emptied before the view that serves them
            // is published (a write accepted in between would be deleted); slots that go away
            // after it (until then a source's paused slots are still read here).
            drop_foreign_slots(&shared, &previous, &next, Foreign::Rescued).await;
            // With copies, a delete leaves a tombstone for a while, so that a late or re-sent
            // older write (a re-send after a link failed, a read repair, a migration's snapshot)
            // does not bring the key back.
            shared
                .store
                .set_tombstone_ms(if next.settings.replicas > 0 {
                    TOMBSTONE_MS
                } else {
                    0
                });
            cluster.set_topology(Arc::clone(&next));
            crate::replicate::follow_deltas(&shared);
            drop_foreign_slots(&shared, &previous, &next, Foreign::Lost).await;
            let me = cluster.view().me.clone();
            // Gone from the topology after asking to leave: once its slots were handed off, or
            // at once when it held none.
            let left = previous.nodes.get(&me).is_some_and(|n| {
                n.state == NodeState::Leaving
                    || cluster
                        .leave_requested
                        .load(std::sync::atomic::Ordering::Relaxed)
            }) && !next.nodes.contains_key(&me);
            previous = Arc::clone(&next);
            if left {
                // Handed everything off and left (dcache cluster leave): the node's work is done.
                // It answers -MOVED for a while before it stops, so that clients whose slot map
                // still names it learn the new owners rather than find the port closed (some
                // never refresh on a refused connection).
                let grace = Duration::from_millis(shared.config().cluster_node_timeout);
                let leaving = Arc::clone(&shared);
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    leaving.request_exit();
                });
            }
        }
        let me = cluster.view().me.clone();
        let idle = migration
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished);
        if idle && !next.moving_from(&me).is_empty() {
            migration = Some(tokio::spawn(migrate(Arc::clone(&shared), stop.clone())));
        }
        tokio::select! {
            changed = topology.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            // A migration that ended (done or failed) may leave slots to move: look again soon.
            () = async {
                match &mut migration {
                    Some(task) if !task.is_finished() => { let _ = task.await; }
                    _ => std::future::pending::<()>().await,
                }
            } => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = stop.changed() => {
                if let Some(task) = migration {
                    task.abort();
                }
                return;
            }
        }
    }
}

/// Which slots [`drop_foreign_slots`] empties.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Foreign {
    /// Those this node neither serves nor is about to receive.
    Lost,
    /// Those it takes over from a failed node.
    Rescued,
}

/// Deletes the keys of every slot this node neither serves nor is about to receive, or of
/// slots it takes over from a failed node (what it holds there is a partial copy of a move that
/// never committed, possibly stale).
async fn drop_foreign_slots(shared: &Shared, previous: &Topology, next: &Topology, which: Foreign) {
    let Some(cluster) = &shared.cluster else {
        return;
    };
    let me = cluster.view().me.clone();
    // A node keeps the slots it holds a copy of, and those it is about to receive.
    let keeps = |t: &Topology, slot: u16| {
        t.role_of(&me, slot).is_some()
            || t.target
                .as_ref()
                .is_some_and(|p| p.replicas(slot).any(|m| m.id == me))
    };
    for slot in 0..SLOTS as u16 {
        let lost = !keeps(next, slot) && (keeps(previous, slot) || previous.epoch == 0);
        let rescued = rescued(&me, previous, next, slot);
        if (which == Foreign::Lost && lost) || (which == Foreign::Rescued && rescued) {
            let removed = delete_slot(shared, slot).await;
            if removed > 0 {
                tracing::debug!("slot {slot}: dropped {removed} keys this node no longer serves");
            }
        }
    }
}

/// Whether `slot` comes to this node (`me`) empty because every copy failed since `previous`
/// (not from one that left: a leaver is removed only once its last slots have moved, copied;
/// nor as a new copy, which is made by a migration before the set names it). Decided by the
/// topology's record of rescues, not by the sets in `previous`: topologies may arrive with
/// epochs skipped, and a move committed to this node in a skipped epoch, its source failing
/// after, looks from `previous` like a rescue (its keys, all committed here, would be dropped).
fn rescued(me: &str, previous: &Topology, next: &Topology, slot: u16) -> bool {
    next.role_of(me, slot).is_some()
        && previous.role_of(me, slot).is_none()
        && next.rescued_after(slot, previous.epoch)
}

/// Deletes every key of `slot`, in bounded steps with the shard's lock released and the other
/// tasks let in between (a moved batch can hold many thousand keys); returns how many.
async fn delete_slot(shared: &Shared, slot: u16) -> usize {
    let mut total = 0;
    loop {
        let n = shared.store.delete_slot(slot, 256);
        if n == 0 {
            return total;
        }
        total += n;
        tokio::task::yield_now().await;
    }
}

/// `CLUSTER IMPORTSLOT slot`: the records of `slot` that follow replace whatever this node holds
/// of it, a copy from an earlier attempt to move it that failed (a key deleted on the source
/// since would come back with it). Returns how many keys it dropped.
///
/// # Errors
/// When this node serves the slot.
pub fn begin_import(shared: &Shared, slot: u16) -> Result<usize, String> {
    let served = shared.cluster.as_ref().is_some_and(|c| c.view().mine(slot));
    if served {
        return Err(format!("ERR slot {slot} is served by this node"));
    }
    // In a command handler: done at once, in bounded steps (an abandoned copy is usually small).
    let mut total = 0;
    loop {
        let n = shared.store.delete_slot(slot, 1024);
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// Applies the effects of one `CLUSTER IMPORT` request, in order.
///
/// # Errors
/// Bytes that are not effects, or a write refused for memory (the source then gives up this
/// batch and tries again later).
pub fn import(shared: &Shared, mut body: &[u8], now: u64) -> Result<usize, String> {
    let mut applied = 0;
    let view = shared.cluster.as_ref().map(|c| c.view());
    while !body.is_empty() {
        let (effect, used) = dcache_store::Effect::decode(body)
            .map_err(|e| format!("ERR bad effect: {e}"))?
            .ok_or("ERR bad effect: truncated")?;
        body = &body[used..];
        // Records are for slots on their way here; one for a slot this node serves would bypass
        // its routing and the watch of a migration away from it.
        if let Some(view) = &view
            && view.mine(dcache_placement::slot(&effect.key))
        {
            return Err(format!(
                "ERR slot {} is served here: it takes writes, not imports",
                dcache_placement::slot(&effect.key)
            ));
        }
        if shared
            .store
            .restore(effect, now)
            .map_err(|e| e.to_string())?
        {
            applied += 1;
        }
    }
    if let Some(cluster) = &shared.cluster {
        cluster
            .imported_records
            .fetch_add(applied as u64, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(applied)
}

/// Moves every slot this node serves and the topology sends elsewhere, batch by batch.
async fn migrate(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let cluster = shared.cluster.clone().expect("migrations run in a cluster");
    let me = cluster.view().me.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let view = cluster.view();
        let topology = &view.topology;
        let moving = topology.moving_from(&me);
        // A batch: slots with one target primary whose new copies go to the same nodes.
        let needs = |slot: u16| -> Vec<dcache_cluster::Node> {
            topology.copies_needed(slot).into_iter().cloned().collect()
        };
        let Some((first, to)) = moving.first().cloned() else {
            return;
        };
        let dests = needs(first);
        let batch: Vec<u16> = moving
            .iter()
            .filter(|(s, t)| *t == to && needs(*s) == dests)
            .map(|&(s, _)| s)
            .take(BATCH_SLOTS)
            .collect();
        let names: Vec<String> = dests
            .iter()
            .map(|d| format!("{}:{}", d.host, d.port))
            .collect();
        let started = Instant::now();
        match move_batch(&shared, &batch, &to, &dests).await {
            Ok(sent) => tracing::info!(
                "moved {} slots (new copies on [{}]; {sent} bytes in {:?})",
                batch.len(),
                names.join(", "),
                started.elapsed()
            ),
            Err(e) => {
                cluster.settle(&batch);
                tracing::warn!(
                    "moving {} slots (new copies on [{}]) failed: {e}; will retry",
                    batch.len(),
                    names.join(", "),
                );
                return;
            }
        }
    }
}

/// Copies `batch` to `dests` (the nodes that get a new copy of it; none when only its other
/// copies change), commits the move (`to`: the batch's primary in the target) and drops the
/// local copy if this node keeps none. Returns the bytes sent.
async fn move_batch(
    shared: &Arc<Shared>,
    batch: &[u16],
    to: &str,
    dests: &[dcache_cluster::Node],
) -> Result<u64, String> {
    let cluster = shared.cluster.clone().expect("migrations run in a cluster");
    let config = shared.config();
    let mut peers = Vec::with_capacity(dests.len());
    for dest in dests {
        let addr: SocketAddr = tokio::net::lookup_host((dest.host.as_str(), dest.port))
            .await
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address")?;
        peers.push(Peer::connect(addr, &config.requirepass, config.migration_rate.0 as u64).await?);
    }
    // Under quorum the other copies may hold writes this one lacks: the snapshot has them then.
    if !dests.is_empty() {
        crate::replicate::gather_copies(shared, batch).await?;
    }
    cluster.watch(batch).await;
    // The snapshot, slot by slot, in bounded steps.
    for &slot in batch {
        for peer in &mut peers {
            peer.request(&[b"CLUSTER", b"IMPORTSLOT", slot.to_string().as_bytes()])
                .await?;
        }
        let mut cursor = dcache_store::DumpCursor::default();
        loop {
            let (records, next) =
                shared
                    .store
                    .dump_slot(slot, cursor, REQUEST_BYTES, shared.clock.now_ms());
            for peer in &mut peers {
                peer.send(&records).await?;
            }
            match next {
                Some(c) => cursor = c,
                None => break,
            }
        }
    }
    // What was written meanwhile, until little is left.
    for _ in 0..MAX_ROUNDS {
        let dirty = dirty_of(&cluster, batch);
        let few = dirty.len() < PAUSE_BELOW;
        send_keys(shared, &mut peers, dirty).await?;
        if few {
            break;
        }
    }
    cluster.pause(batch).await;
    // Under quorum the other copies coordinate writes too: theirs reach this node, recorded.
    crate::replicate::flush_copies(shared, batch).await?;
    let dirty = dirty_of(&cluster, batch);
    send_keys(shared, &mut peers, dirty).await?;
    for peer in &mut peers {
        peer.finish().await?;
    }
    // Writes still on their way to the slots' other copies: the move may make one of them the
    // primary (or reorder a chain), and it must not take over without them.
    let others: Vec<String> = {
        let view = cluster.view();
        let mut others: Vec<String> = batch
            .iter()
            .flat_map(|&s| view.topology.replicas_of(s))
            .map(|n| n.id.clone())
            .filter(|id| *id != view.me)
            .collect();
        others.sort_unstable();
        others.dedup();
        others
    };
    cluster
        .replication
        .drain(&others, crate::replicate::write_timeout(shared))
        .await?;
    let control = cluster.control().ok_or("no agreement layer")?;
    let topology = commit(&cluster, control.as_ref(), to, batch).await?;
    cluster.wait_for_epoch(topology.epoch).await;
    // The follower has dropped the local copy when it took the topology that moved the batch
    // (`drop_foreign_slots`). Deleting it here as well would be wrong: by now a later topology
    // may have given the slots back (the destination failed) and writes to them been acknowledged.
    cluster.settle(batch);
    cluster
        .slots_moved_out
        .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let sent = peers.iter().map(|p| p.sent).sum();
    cluster
        .migration_sent_bytes
        .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
    Ok(sent)
}

/// Commits the move of `batch` to `to`. A failure that leaves the outcome unknown (no leader, a
/// timeout) keeps the batch paused and asks again until the answer is known: settling it while
/// the move may still commit would let writes land on a copy that is about to be dropped.
async fn commit(
    cluster: &crate::cluster::Cluster,
    control: &dyn crate::cluster::Control,
    to: &str,
    batch: &[u16],
) -> Result<Arc<Topology>, String> {
    let change = Change::Moved {
        to: to.to_owned(),
        slots: batch.to_vec(),
    };
    // The sets the move gives the batch: how a refusal after an uncertain attempt is told from
    // a move that did commit.
    let view = cluster.view();
    let wanted: Vec<Vec<String>> = batch
        .iter()
        .map(|&s| {
            view.topology
                .target
                .as_ref()
                .map_or_else(Vec::new, |t| t.replicas(s).map(|m| m.id.clone()).collect())
        })
        .collect();
    drop(view);
    let mut uncertain = false;
    loop {
        match control.propose(change.clone()).await {
            Ok(topology) => return Ok(topology),
            Err(ProposeError::Refused(reason)) => {
                // After an uncertain attempt, a refusal may only mean that attempt committed:
                // the slots are `to`'s already, which this node learns shortly.
                if uncertain {
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < deadline {
                        let view = cluster.view();
                        if batch.iter().zip(&wanted).all(|(&s, set)| {
                            view.topology
                                .replicas_of(s)
                                .iter()
                                .map(|n| &n.id)
                                .eq(set.iter())
                        }) {
                            return Ok(Arc::clone(&view.topology));
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                return Err(reason);
            }
            Err(ProposeError::Uncertain(reason)) => {
                uncertain = true;
                tracing::warn!(
                    "committing the move of {} slots: {reason}; asking again",
                    batch.len()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// The keys written to `batch`'s slots since the last call. The node's dirty keys may hold
/// others, left by a batch whose move was abandoned: they are not this destination's, and are
/// dropped (their slots are copied whole again when they move).
fn dirty_of(cluster: &crate::cluster::Cluster, batch: &[u16]) -> HashSet<Vec<u8>> {
    let mut ours = vec![false; SLOTS];
    for &slot in batch {
        ours[usize::from(slot)] = true;
    }
    let mut dirty = cluster.take_dirty();
    dirty.retain(|key| ours[usize::from(dcache_placement::slot(key))]);
    dirty
}

/// Copies the current state of `keys` (or their absence).
async fn send_keys(
    shared: &Shared,
    peers: &mut [Peer],
    keys: HashSet<Vec<u8>>,
) -> Result<(), String> {
    let now = shared.clock.now_ms();
    for key in keys {
        // In bounded parts, so that a large hash written during the move does not hold its
        // shard while it is copied whole.
        let mut cursor = dcache_store::DumpCursor::default();
        loop {
            let (records, next) = shared.store.dump_key(&key, cursor, REQUEST_BYTES, now);
            for peer in peers.iter_mut() {
                peer.send(&records).await?;
            }
            match next {
                Some(c) => cursor = c,
                None => break,
            }
        }
    }
    Ok(())
}

/// One request on a new connection to a node's client port (after AUTH when a password is
/// set), and its reply.
///
/// # Errors
/// The node cannot be reached, or answers with an error.
pub async fn ask(
    addr: impl tokio::net::ToSocketAddrs,
    password: &str,
    args: &[&[u8]],
) -> Result<Frame, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if !password.is_empty() {
        dcache_protocol::reply::encode_command([&b"AUTH"[..], password.as_bytes()], &mut out);
    }
    dcache_protocol::reply::encode_command(args.iter().copied(), &mut out);
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut input = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut skip = usize::from(!password.is_empty());
    loop {
        while let Some((frame, used)) = Frame::parse(&input).map_err(|e| e.to_string())? {
            input.drain(..used);
            if let Frame::Error(e) = &frame {
                return Err(e.clone());
            }
            if skip == 0 {
                return Ok(frame);
            }
            skip -= 1;
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        input.extend_from_slice(&chunk[..n]);
    }
}

/// A client connection to the destination's Redis port, pipelining CLUSTER IMPORT requests.
struct Peer {
    stream: TcpStream,
    input: Vec<u8>,
    /// Requests whose reply has not been read.
    pending: usize,
    sent: u64,
    /// Bytes per second, 0 for no limit.
    rate: u64,
    started: Instant,
}

impl Peer {
    async fn connect(addr: SocketAddr, password: &str, rate: u64) -> Result<Peer, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot reach {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut peer = Peer {
            stream,
            input: Vec::new(),
            pending: 0,
            sent: 0,
            rate,
            started: Instant::now(),
        };
        if !password.is_empty() {
            peer.request(&[b"AUTH", password.as_bytes()]).await?;
        }
        Ok(peer)
    }

    async fn request(&mut self, args: &[&[u8]]) -> Result<(), String> {
        let mut out = Vec::new();
        dcache_protocol::reply::encode_command(args.iter().copied(), &mut out);
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| e.to_string())?;
        self.sent += out.len() as u64;
        self.pending += 1;
        while self.pending > WINDOW {
            self.read_reply().await?;
        }
        if self.rate > 0 {
            let due = Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
        Ok(())
    }

    /// Sends `records` in CLUSTER IMPORT requests of bounded size.
    async fn send(&mut self, records: &[dcache_store::Effect]) -> Result<(), String> {
        let mut body = Vec::new();
        for record in records {
            record.encode(&mut body);
            if body.len() >= REQUEST_BYTES {
                self.request(&[b"CLUSTER", b"IMPORT", &body]).await?;
                body.clear();
            }
        }
        if !body.is_empty() {
            self.request(&[b"CLUSTER", b"IMPORT", &body]).await?;
        }
        Ok(())
    }

    async fn read_reply(&mut self) -> Result<(), String> {
        loop {
            if let Some((frame, used)) = Frame::parse(&self.input).map_err(|e| e.to_string())? {
                self.input.drain(..used);
                self.pending -= 1;
                return match frame {
                    Frame::Error(e) => Err(format!("the destination refused: {e}")),
                    _ => Ok(()),
                };
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the destination closed the connection".into());
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits for every reply.
    async fn finish(&mut self) -> Result<(), String> {
        while self.pending > 0 {
            self.read_reply().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcache_cluster::Node;

    fn node(n: u16) -> Node {
        Node {
            id: format!("node-{n}"),
            host: "127.0.0.1".into(),
            port: 7000 + n,
            bus_port: 17000 + n,
            state: NodeState::Online,
        }
    }

    /// A follower that skipped the epoch of a move committed to it, whose source failed next,
    /// keeps the moved slots (they were copied before the commit); slots that lost every copy
    /// are rescues, dropped whatever epochs it skipped.
    #[test]
    fn a_move_committed_in_a_skipped_epoch_is_not_a_rescue() {
        let mut t = Topology::default();
        t.apply(&Change::Join(node(1))).unwrap();
        t.apply(&Change::Join(node(2))).unwrap();
        let seen = t.clone();
        let me = node(2).id;
        let batch: Vec<u16> = t
            .moving_from(&node(1).id)
            .into_iter()
            .map(|(s, _)| s)
            .take(100)
            .collect();
        t.apply(&Change::Moved {
            to: me.clone(),
            slots: batch.clone(),
        })
        .unwrap();
        t.apply(&Change::Fail(node(1).id)).unwrap();
        for &s in &batch {
            assert!(
                !rescued(&me, &seen, &t, s),
                "slot {s} was moved here, committed"
            );
        }
        let lost: Vec<u16> = (0..SLOTS as u16)
            .filter(|&s| seen.role_of(&node(1).id, s).is_some() && !batch.contains(&s))
            .collect();
        assert!(!lost.is_empty());
        for s in lost {
            assert!(rescued(&me, &seen, &t, s), "slot {s} lost its only copy");
        }
    }
}
