//! The tasks that keep a node in step with the cluster: the leader's reconciliation of Raft's
//! membership with the topology, the rejoin of a restarted node, and the watchdog that brings
//! back a node the cluster has lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::watch;
use tokio::time::Instant;

use super::transport::{Rpc, RpcReply};
use super::types::{RaftId, bus_node};
use super::{Core, HOPS, membership};
use crate::topology::{Change, Node, NodeState, Topology};

/// On the leader, brings Raft's membership in line with the topology (see [`membership`]),
/// after every topology change and every `interval` (a learner catching up changes no topology).
pub(super) async fn reconcile(
    core: Arc<Core>,
    mut topology: watch::Receiver<Arc<Topology>>,
    interval: Duration,
) {
    let mut wait = true;
    loop {
        if wait {
            tokio::select! {
                changed = topology.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(interval) => {}
            }
        }
        wait = true;
        let metrics = core.raft.metrics().borrow().clone();
        if metrics.state != ServerState::Leader {
            continue;
        }
        let applied = metrics.last_applied.map_or(0, |l| l.index);
        let caught_up = |id: RaftId| {
            let matched = metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).copied());
            // A few entries behind is close enough: the joint change replicates them anyway.
            matched.flatten().is_some_and(|m| m.index + 16 >= applied)
        };
        let current = topology.borrow().clone();
        let Some((change, retain)) =
            membership::next_step(&current, metrics.membership_config.membership(), caught_up)
        else {
            continue;
        };
        tracing::info!(?change, "raft membership follows the topology");
        match tokio::time::timeout(
            core.propose_timeout,
            core.raft.change_membership(change, retain),
        )
        .await
        {
            // One step done: look for the next at once.
            Ok(Ok(_)) => wait = false,
            Ok(Err(e)) => tracing::info!(error = %e, "raft membership change not made"),
            Err(_) => tracing::info!("raft membership change timed out"),
        }
    }
}

/// Comes back as itself: commits a `Join` with our id and current address, retrying until it is
/// committed. The leader takes it if it can reach us (it tells us who it is); otherwise `seed` or
/// a member from our last topology passes it on.
pub(super) async fn rejoin(
    core: Arc<Core>,
    me: Node,
    topology: watch::Receiver<Arc<Topology>>,
    seed: Option<SocketAddr>,
) {
    let join = Change::Join(me.clone());
    let mut attempt = 0usize;
    loop {
        // Give Raft a few election timeouts to find a leader on its own.
        let deadline = Instant::now() + core.retry * 30;
        match core.propose(join.clone(), HOPS, deadline).await {
            Ok(_) => return,
            Err(e) => tracing::debug!(error = %e, "rejoin: no leader yet"),
        }
        let mut seeds: Vec<String> = seed.iter().map(ToString::to_string).collect();
        seeds.extend(
            topology
                .borrow()
                .nodes
                .values()
                .filter(|n| n.id != me.id)
                .map(|n| bus_node(&n.host, n.bus_port).addr),
        );
        if let Some(addr) = seeds.get(attempt % seeds.len().max(1)) {
            attempt += 1;
            let rpc = Rpc::Propose {
                change: join.clone(),
                hops: HOPS,
            };
            if let Ok(RpcReply::Propose(Ok(_))) =
                core.transport.call(addr, rpc, core.retry * 30).await
            {
                return;
            }
        }
    }
}

/// Brings this node back when the cluster has lost it: when its topology says it failed, or it
/// has had no leader for ten election timeouts (the others may have removed it from Raft while
/// it was cut off, and then no leader ever talks to it again). It asks to `Join` again through
/// its leader if it has one, else through each member it knows in turn.
pub(super) async fn watchdog(
    core: Arc<Core>,
    me: Node,
    topology: watch::Receiver<Arc<Topology>>,
    election_timeout: Duration,
) {
    let mut leaderless_since: Option<Instant> = None;
    let mut next_member = 0usize;
    loop {
        tokio::time::sleep(election_timeout).await;
        let now = Instant::now();
        let leader = core.raft.metrics().borrow().current_leader;
        leaderless_since = match leader {
            Some(_) => None,
            None => Some(leaderless_since.unwrap_or(now)),
        };
        let lost = leaderless_since.is_some_and(|since| now - since >= election_timeout * 10);
        let failed = topology
            .borrow()
            .nodes
            .get(&me.id)
            .is_some_and(|n| n.state == NodeState::Failed);
        if !lost && !failed {
            continue;
        }
        tracing::info!(
            lost,
            failed,
            "this node is out of the cluster: asking to join again"
        );
        let join = Change::Join(me.clone());
        if leader.is_some() {
            let deadline = now + election_timeout * 2;
            if core.propose(join.clone(), HOPS, deadline).await.is_ok() {
                continue;
            }
        }
        let members: Vec<String> = topology
            .borrow()
            .nodes
            .values()
            .filter(|n| n.id != me.id)
            .map(|n| bus_node(&n.host, n.bus_port).addr)
            .collect();
        if let Some(addr) = members.get(next_member % members.len().max(1)) {
            next_member += 1;
            let rpc = Rpc::Propose {
                change: join,
                hops: HOPS,
            };
            let _ = core.transport.call(addr, rpc, election_timeout * 2).await;
        }
    }
}
