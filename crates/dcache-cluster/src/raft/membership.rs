//! Raft's membership follows the topology: every member that has not failed is in Raft, at most
//! [`MAX_VOTERS`] of them vote, and the rest are learners (they get the log but do not vote, so
//! a commit waits for at most three acknowledgements however large the cluster).
//!
//! The leader alone changes Raft's membership, one step at a time (openraft allows one change
//! in flight), by comparing the two after each topology change and on a timer. Because it
//! compares states rather than reacting to events, a new leader picks up wherever the old one
//! stopped (a leader killed in the middle of a join, say).
//!
//! ```text
//!   topology has a member Raft lacks      ─► add it as a learner
//!   a member's bus address changed        ─► update it
//!   voters that failed or left the topology ─► replaced by caught-up learners (up to 5 voters)
//!   learners no longer in the topology    ─► removed
//! ```

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, ChangeMembers};

use super::types::{Membership, RaftId, bus_node, raft_id};
use crate::topology::{NodeState, Topology};

/// At most this many members vote.
pub const MAX_VOTERS: usize = 5;

/// One membership change, and whether voters it removes stay as learners.
pub type Step = (ChangeMembers<RaftId, BasicNode>, bool);

/// The next change that brings `membership` closer to `topology`, or `None` when they agree
/// (or a change is still in progress). `caught_up` says whether a learner has nearly all of the
/// log: promoting one that lags (or is down) would stall commits until it catches up.
pub fn next_step(
    topology: &Topology,
    membership: &Membership,
    caught_up: impl Fn(RaftId) -> bool,
) -> Option<Step> {
    if membership.get_joint_config().len() > 1 || topology.nodes.is_empty() {
        return None;
    }
    let wanted: BTreeMap<RaftId, BasicNode> = topology
        .nodes
        .values()
        .filter(|n| n.state != NodeState::Failed)
        .map(|n| (raft_id(&n.id), bus_node(&n.host, n.bus_port)))
        .collect();
    let known: BTreeMap<RaftId, BasicNode> = membership
        .nodes()
        .map(|(id, node)| (*id, node.clone()))
        .collect();

    let missing: BTreeMap<RaftId, BasicNode> = wanted
        .iter()
        .filter(|(id, _)| !known.contains_key(id))
        .map(|(id, node)| (*id, node.clone()))
        .collect();
    if !missing.is_empty() {
        return Some((ChangeMembers::AddNodes(missing), true));
    }
    let moved: BTreeMap<RaftId, BasicNode> = wanted
        .iter()
        .filter(|(id, node)| known.get(id) != Some(node))
        .map(|(id, node)| (*id, node.clone()))
        .collect();
    if !moved.is_empty() {
        return Some((ChangeMembers::SetNodes(moved), true));
    }

    let voters: BTreeSet<RaftId> = membership.voter_ids().collect();
    let mut next: BTreeSet<RaftId> = voters
        .iter()
        .filter(|id| wanted.contains_key(id))
        .copied()
        .collect();
    // Candidates in id order, so that every leader would pick the same ones.
    for id in wanted.keys() {
        if next.len() >= MAX_VOTERS {
            break;
        }
        if !next.contains(id) && caught_up(*id) {
            next.insert(*id);
        }
    }
    if !next.is_empty() && next != voters {
        // Voters that are not wanted leave Raft altogether (retain = false).
        return Some((ChangeMembers::ReplaceAllVoters(next), false));
    }

    let stale: BTreeSet<RaftId> = known
        .keys()
        .filter(|id| !wanted.contains_key(id) && !voters.contains(id))
        .copied()
        .collect();
    if !stale.is_empty() {
        return Some((ChangeMembers::RemoveNodes(stale), true));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Change, Node};

    fn node(n: u8) -> Node {
        Node {
            id: format!("{n:040x}"),
            host: "10.0.0.1".into(),
            port: 6000 + u16::from(n),
            bus_port: 16000 + u16::from(n),
            state: NodeState::Online,
        }
    }

    fn topology(n: u8) -> Topology {
        let mut t = Topology::default();
        for i in 1..=n {
            t.apply(&Change::Join(node(i))).unwrap();
        }
        t
    }

    fn rid(n: u8) -> RaftId {
        raft_id(&node(n).id)
    }

    fn membership(voters: &[u8], learners: &[u8]) -> Membership {
        let nodes: BTreeMap<RaftId, BasicNode> = voters
            .iter()
            .chain(learners)
            .map(|&n| (rid(n), bus_node(&node(n).host, node(n).bus_port)))
            .collect();
        Membership::new(vec![voters.iter().map(|&n| rid(n)).collect()], nodes)
    }

    /// Applies steps as the leader would until none is left; returns (voters, learners).
    fn settle(t: &Topology, mut m: Membership, caught_up: impl Fn(RaftId) -> bool) -> Membership {
        for _ in 0..10 {
            let Some((change, retain)) = next_step(t, &m, &caught_up) else {
                return m;
            };
            let voters: BTreeSet<RaftId> = m.voter_ids().collect();
            let mut nodes: BTreeMap<RaftId, BasicNode> =
                m.nodes().map(|(i, n)| (*i, n.clone())).collect();
            let mut next_voters = voters.clone();
            match change {
                ChangeMembers::AddNodes(add) | ChangeMembers::SetNodes(add) => nodes.extend(add),
                ChangeMembers::ReplaceAllVoters(v) => {
                    if !retain {
                        nodes.retain(|id, _| v.contains(id) || !voters.contains(id));
                    }
                    next_voters = v;
                }
                ChangeMembers::RemoveNodes(r) => nodes.retain(|id, _| !r.contains(id)),
                other => panic!("unexpected step {other:?}"),
            }
            m = Membership::new(vec![next_voters], nodes);
        }
        panic!("membership did not settle");
    }

    #[test]
    fn members_join_as_learners_and_the_first_five_vote() {
        let t = topology(7);
        let m = settle(&t, membership(&[1], &[]), |_| true);
        let voters: BTreeSet<RaftId> = m.voter_ids().collect();
        assert_eq!(voters.len(), MAX_VOTERS);
        assert!(voters.contains(&rid(1)), "the sitting voter stays");
        assert_eq!(m.nodes().count(), 7);
    }

    #[test]
    fn a_lagging_learner_is_not_promoted() {
        let t = topology(2);
        let m = settle(&t, membership(&[1], &[]), |id| id != rid(2));
        assert_eq!(m.voter_ids().collect::<Vec<_>>(), vec![rid(1)]);
        assert!(m.learner_ids().any(|id| id == rid(2)));
    }

    #[test]
    fn a_failed_voter_is_replaced_by_a_learner() {
        let mut t = topology(6);
        t.apply(&Change::Fail(node(2).id)).unwrap();
        let m = settle(&t, membership(&[1, 2, 3, 4, 5], &[6]), |_| true);
        let voters: BTreeSet<RaftId> = m.voter_ids().collect();
        let expected: BTreeSet<RaftId> = [1, 3, 4, 5, 6].map(rid).into_iter().collect();
        assert_eq!(voters, expected);
        assert!(m.get_node(&rid(2)).is_none(), "the failed node leaves Raft");
    }

    #[test]
    fn nothing_changes_while_a_change_is_in_flight() {
        let t = topology(3);
        let joint = Membership::new(
            vec![[rid(1)].into(), [rid(1), rid(2)].into()],
            membership(&[1, 2], &[])
                .nodes()
                .map(|(i, n)| (*i, n.clone()))
                .collect::<BTreeMap<_, _>>(),
        );
        assert!(next_step(&t, &joint, |_| true).is_none());
    }
}
