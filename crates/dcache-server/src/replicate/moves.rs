//! Moving a slot under `quorum`, where every copy coordinates writes: the slot's primary drives
//! the move (`crate::migrate`), and these are the steps the other copies take part in.
//!
//! ```text
//!   primary (moves the batch)                      each other copy of the batch
//!   CLUSTER PUSH me slots… ───────────────────────► its copy of the slots ──► CLUSTER REPAIR
//!   watch, snapshot to the new copies, dirty keys     (the primary takes the newest of all)
//!   pause
//!   CLUSTER DRAIN me epoch slots… ────────────────► takes the epoch where the batch moves (its
//!                                                     writes of it go to the primary from then),
//!                                                     flushes its stream to the primary
//!   last dirty keys (what arrived meanwhile too), commit
//! ```

use std::sync::Arc;
use std::time::Duration;

use dcache_cluster::NodeId;

use super::{Ack, BATCH_BYTES, DONE, TIMED_OUT, write_timeout};
use crate::state::Shared;

/// A `CLUSTER PUSH` to carry out: this node's copy of `slots` to `to`.
#[derive(Debug)]
pub(super) struct Push {
    pub(super) to: (String, u16),
    pub(super) slots: Vec<u16>,
    pub(super) ack: Ack,
}

/// The other copies of `batch`'s slots, as `host:port`s, for a move at their primary.
fn other_copies(view: &crate::cluster::View, batch: &[u16]) -> Vec<(String, u16)> {
    let mut copies: Vec<(String, u16)> = batch
        .iter()
        .flat_map(|&s| view.topology.replicas_of(s))
        .filter(|n| n.id != view.me)
        .map(|n| (n.host.clone(), n.port))
        .collect();
    copies.sort_unstable();
    copies.dedup();
    copies
}

/// Asks each of `copies` to answer `args`, one after the other, within `limit` each.
async fn ask_each(
    shared: &Shared,
    copies: &[(String, u16)],
    args: &[&[u8]],
    limit: Duration,
) -> Result<(), String> {
    let password = shared.config().requirepass.clone();
    let what = String::from_utf8_lossy(args[1]).into_owned();
    for (host, port) in copies {
        tokio::time::timeout(
            limit,
            crate::migrate::ask((host.as_str(), *port), &password, args),
        )
        .await
        .map_err(|_| format!("{host}:{port} did not answer CLUSTER {what} in time"))?
        .map_err(|e| format!("{host}:{port} answered CLUSTER {what}: {e}"))?;
    }
    Ok(())
}

/// Before a `quorum` move gives `batch` new copies, at its primary: any W copies acknowledge a
/// write, so this node may lack one that others hold (a copy that coordinated it failed before
/// its stream got here), and the new copies are filled from this node's snapshot. Each other
/// copy first sends this node its own copy of the batch (`CLUSTER PUSH`, taken by version as a
/// read repair is), so that the snapshot has the newest of every copy. It costs a copy of the
/// batch from each of them.
///
/// # Errors
/// A copy did not answer in time: the move is tried again later.
pub async fn gather_copies(shared: &Shared, batch: &[u16]) -> Result<(), String> {
    let Some(cluster) = shared.cluster.as_ref() else {
        return Ok(());
    };
    let view = cluster.view();
    if view.topology.settings.strategy != dcache_cluster::Strategy::Quorum {
        return Ok(());
    }
    let Some(me) = view.myself() else {
        return Ok(());
    };
    let port = me.port.to_string();
    let slots: Vec<String> = batch.iter().map(u16::to_string).collect();
    let mut args: Vec<&[u8]> = vec![b"CLUSTER", b"PUSH", me.host.as_bytes(), port.as_bytes()];
    args.extend(slots.iter().map(String::as_bytes));
    ask_each(shared, &other_copies(&view, batch), &args, PUSH_TIMEOUT).await
}

/// How long a copy may take to push its copy of a batch ([`gather_copies`]).
const PUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// `CLUSTER PUSH host port slot…` ([`gather_copies`]), at a copy: sends this node's copy of the
/// slots to `host:port` as read repairs. The returned ack completes when they are there, or
/// fails (`-NOREPLICAS`).
#[must_use]
pub fn push_to(cluster: &crate::cluster::Cluster, to: (String, u16), slots: Vec<u16>) -> Ack {
    let ack = Ack::default();
    let push = Push {
        to,
        slots,
        ack: ack.clone(),
    };
    if cluster.replication.pushes.send(push).is_err() {
        ack.complete(TIMED_OUT);
    }
    ack
}

/// Carries out a [`Push`]: each slot in bounded requests, one at a time.
pub(super) async fn push_slots(shared: Arc<Shared>, push: Push) {
    let password = shared.config().requirepass.clone();
    let (host, port) = (push.to.0.as_str(), push.to.1);
    for &slot in &push.slots {
        let mut cursor = dcache_store::DumpCursor::default();
        loop {
            let (records, next) =
                shared
                    .store
                    .dump_slot(slot, cursor, BATCH_BYTES, shared.clock.now_ms());
            let mut body = Vec::new();
            for record in &records {
                record.encode(&mut body);
            }
            if !body.is_empty() {
                let args: [&[u8]; 3] = [b"CLUSTER", b"REPAIR", &body];
                let sent = tokio::time::timeout(
                    PUSH_TIMEOUT,
                    crate::migrate::ask((host, port), &password, &args),
                )
                .await;
                if !matches!(sent, Ok(Ok(_))) {
                    tracing::debug!("pushing slot {slot} to {host}:{port} failed");
                    push.ack.complete(TIMED_OUT);
                    return;
                }
            }
            match next {
                Some(c) => cursor = c,
                None => break,
            }
        }
    }
    push.ack.complete(DONE);
}

/// The end of a `quorum` move of `batch`, at its primary, with the batch paused: every other
/// copy coordinates writes too, and may hold some that did not reach this node yet (a copy that
/// learns of the move late coordinates writes of the slot until then). Each copy is asked to
/// take the topology where the batch moves (from then on it sends the batch's writes here), and
/// to flush its stream to this node ([`drain_to`]); what arrives is recorded
/// (`restore_from_copy`) and copied to the new copies before the move commits. Nothing to do
/// under the other strategies, where only the primary coordinates.
///
/// # Errors
/// A copy did not answer, or did not flush in time: the move is tried again later.
pub async fn flush_copies(shared: &Shared, batch: &[u16]) -> Result<(), String> {
    let Some(cluster) = shared.cluster.as_ref() else {
        return Ok(());
    };
    let view = cluster.view();
    if view.topology.settings.strategy != dcache_cluster::Strategy::Quorum {
        return Ok(());
    }
    let epoch = view.topology.epoch.to_string();
    let slots: Vec<String> = batch.iter().map(u16::to_string).collect();
    let mut args: Vec<&[u8]> = vec![b"CLUSTER", b"DRAIN", view.me.as_bytes(), epoch.as_bytes()];
    args.extend(slots.iter().map(String::as_bytes));
    // The copy waits at most one write timeout; past that (and a margin for the answer) it is
    // not coming.
    let limit = write_timeout(shared) + Duration::from_secs(1);
    ask_each(shared, &other_copies(&view, batch), &args, limit).await
}

/// `CLUSTER DRAIN node epoch slot…` ([`flush_copies`]), at a copy: once this node has the
/// topology of `epoch` (where the slots move, so that it sends their writes to their primary),
/// and the writes of theirs it was coordinating have reached its streams, waits until `node`
/// acknowledged everything queued for it. The returned ack completes then, or fails
/// (`-NOREPLICAS`) after one write timeout.
#[must_use]
pub fn drain_to(
    cluster: Arc<crate::cluster::Cluster>,
    to: NodeId,
    epoch: u64,
    slots: Vec<u16>,
    timeout: Duration,
) -> Ack {
    let ack = Ack::default();
    let done = ack.clone();
    tokio::spawn(async move {
        let flushed = tokio::time::timeout(timeout, async {
            cluster.wait_for_epoch(epoch).await;
            cluster.quiesce(&slots).await;
            cluster.replication.drain(&[to], timeout).await
        })
        .await;
        done.complete(if matches!(flushed, Ok(Ok(()))) {
            DONE
        } else {
            TIMED_OUT
        });
    });
    ack
}
