//! The topology state machine: joins, leaves, failures (failover of replica sets), moves and
//! replication settings, applied as the Raft log would apply them. No network: each test drives
//! [`Topology::apply`] directly and moves slots as migration would (one `Moved` per batch).
//!
//! Seeded: `DCACHE_SEED=<n>` replays one run of `random_changes_keep_the_invariants`.

use std::collections::BTreeMap;

use dcache_cluster::{
    Change, ChangeError, Node, NodeId, NodeState, Settings, SettingsError, Strategy, Topology,
};
use dcache_placement::{Placement, SLOTS};

fn node(n: u8) -> Node {
    Node {
        id: format!("{n:040x}"),
        host: "127.0.0.1".into(),
        port: 5000 + u16::from(n),
        bus_port: 15000 + u16::from(n),
        state: NodeState::Online,
    }
}

fn id(n: u8) -> NodeId {
    node(n).id
}

/// Every move of the plan, grouped by the node that drives it and the target primary, as
/// migration would commit them.
fn batches(t: &Topology) -> BTreeMap<(NodeId, NodeId), Vec<u16>> {
    let mut by_move: BTreeMap<(NodeId, NodeId), Vec<u16>> = BTreeMap::new();
    for from in t.nodes.keys() {
        for (slot, to) in t.moving_from(from) {
            by_move.entry((from.clone(), to)).or_default().push(slot);
        }
    }
    by_move
}

/// Moves every planned slot, one `Moved` per (source, destination), as migration would.
fn settle(t: &mut Topology) {
    while t.target.is_some() {
        let ((_, to), slots) = batches(t).into_iter().next().expect("a plan moves slots");
        t.apply(&Change::Moved { to, slots }).unwrap();
    }
}

fn with_replicas(replicas: u8) -> Settings {
    Settings::new(replicas, Strategy::Primary)
}

/// `n` nodes joined one by one, each join settled, with `replicas` replicas per slot.
fn cluster_with(n: u8, replicas: u8) -> Topology {
    let mut t = Topology::default();
    t.apply(&Change::Set(with_replicas(replicas))).unwrap();
    for i in 1..=n {
        t.apply(&Change::Join(node(i))).unwrap();
        settle(&mut t);
    }
    t
}

fn cluster(n: u8) -> Topology {
    cluster_with(n, 0)
}

fn ids(set: &[&Node]) -> Vec<NodeId> {
    set.iter().map(|n| n.id.clone()).collect()
}

/// Each slot's replica set now, by id.
fn sets(t: &Topology) -> Vec<Vec<NodeId>> {
    t.slots.as_ref().map_or_else(Vec::new, |p| {
        set_ids(p)
            .into_iter()
            .map(|set| set.into_iter().map(str::to_owned).collect())
            .collect()
    })
}

fn set_ids(p: &Placement) -> Vec<Vec<&str>> {
    (0..SLOTS as u16)
        .map(|s| p.replicas(s).map(|m| m.id.as_str()).collect())
        .collect()
}

/// Every set of `p` names distinct members of `t` in an allowed state, at least one.
fn assert_sets_sound(t: &Topology, p: &Placement, allowed: &[NodeState], what: &str) {
    assert_eq!(p.rf(), t.rf(), "{what}: positions per set");
    let counts: Vec<Vec<usize>> = (0..p.rf()).map(|pos| p.counts(pos)).collect();
    for (i, m) in p.members().iter().enumerate() {
        let holds = counts.iter().any(|c| c[i] > 0);
        let state = t.nodes.get(&m.id).map(|n| n.state);
        assert!(
            !holds || state.is_some_and(|st| allowed.contains(&st)),
            "{what}: {} holds slots in state {state:?}",
            m.id
        );
    }
    for s in 0..SLOTS as u16 {
        let mut set = p.replicas(s).map(|m| m.id.as_str());
        let first = set.next();
        assert!(first.is_some(), "{what}: slot {s} has no member");
        let rest: Vec<&str> = set.collect();
        for (i, m) in rest.iter().enumerate() {
            assert!(
                Some(*m) != first && !rest[..i].contains(m),
                "{what}: slot {s} names {m} twice"
            );
        }
    }
}

/// Every online member holds its share of the slots at each position, within the placement's
/// balance bound (1.02× the mean), and sets are as full as the online members allow.
fn assert_balanced(t: &Topology, what: &str) {
    let online: Vec<&NodeId> = t
        .nodes
        .values()
        .filter(|n| n.state == NodeState::Online)
        .map(|n| &n.id)
        .collect();
    let mean = SLOTS as f64 / online.len() as f64;
    for position in 0..t.rf().min(online.len()) {
        let counts = t.copy_counts(position);
        for id in &online {
            let c = counts[*id] as f64;
            assert!(
                (mean * 0.98..=mean * 1.02).contains(&c),
                "{what}: position {position}: {} holds {c}, mean {mean:.0}",
                &id[32..]
            );
        }
    }
    let p = t.slots.as_ref().unwrap();
    assert_eq!(
        p.vacancies(),
        SLOTS * t.rf().saturating_sub(online.len()),
        "{what}: vacancies while settled"
    );
}

#[test]
fn the_first_node_serves_every_slot_and_later_ones_take_their_quota() {
    let mut t = Topology::default();
    t.apply(&Change::Join(node(1))).unwrap();
    assert_eq!(t.epoch, 1);
    assert!(t.target.is_none());
    assert_eq!(t.slot_counts()[&id(1)], SLOTS);

    t.apply(&Change::Join(node(2))).unwrap();
    // Nothing has moved yet: node 1 serves everything until the slots are copied.
    assert_eq!(t.slot_counts()[&id(1)], SLOTS);
    let moving = t.moving_from(&id(1));
    assert_eq!(moving.len(), SLOTS / 2);
    assert!(moving.iter().all(|(_, to)| *to == id(2)));
    settle(&mut t);
    assert_eq!(t.slot_counts()[&id(2)], SLOTS / 2);
    assert!(t.all_served());
}

#[test]
fn a_join_moves_exactly_the_newcomers_quota() {
    let mut t = cluster(3);
    let before = t.slots.clone().unwrap();
    t.apply(&Change::Join(node(4))).unwrap();
    settle(&mut t);
    let after = t.slots.clone().unwrap();
    let moved = (0..SLOTS as u16)
        .filter(|&s| !before.same_set(&after, s))
        .count();
    assert_eq!(moved, SLOTS / 4);
    assert_eq!(t.slot_counts()[&id(4)], SLOTS / 4);
    for s in 0..SLOTS as u16 {
        if !before.same_set(&after, s) {
            assert_eq!(after.primary(s).id, id(4), "slot {s} moved elsewhere");
        }
    }
}

#[test]
fn a_leave_moves_only_the_leavers_slots_then_removes_it() {
    let mut t = cluster(4);
    let before = t.slots.clone().unwrap();
    t.apply(&Change::Leave(id(2))).unwrap();
    assert_eq!(t.nodes[&id(2)].state, NodeState::Leaving);
    settle(&mut t);
    assert!(!t.nodes.contains_key(&id(2)), "a drained leaver is removed");
    let after = t.slots.clone().unwrap();
    for s in 0..SLOTS as u16 {
        assert_eq!(
            before.same_set(&after, s),
            before.primary(s).id != id(2),
            "slot {s}"
        );
    }
    assert!(t.all_served());
}

#[test]
fn a_failed_nodes_slots_go_to_the_survivors_at_once() {
    let mut t = cluster(3);
    t.apply(&Change::Fail(id(3))).unwrap();
    assert!(t.target.is_none());
    assert!(t.all_served());
    assert_eq!(t.nodes[&id(3)].state, NodeState::Failed);
    assert!(!t.serves_any(&id(3)));
    // It comes back as itself and takes a share again.
    t.apply(&Change::Join(node(3))).unwrap();
    settle(&mut t);
    let share = t.slot_counts()[&id(3)];
    assert!((SLOTS / 3..=SLOTS / 3 + 1).contains(&share), "{share}");
}

#[test]
fn a_failure_during_a_migration_keeps_the_migration_going() {
    let mut t = cluster(3);
    t.apply(&Change::Join(node(4))).unwrap();
    // Half of node 4's slots arrive, then node 1 fails.
    let half: Vec<u16> = t.moving_from(&id(2)).into_iter().map(|(s, _)| s).collect();
    t.apply(&Change::Moved {
        to: id(4),
        slots: half,
    })
    .unwrap();
    t.apply(&Change::Fail(id(1))).unwrap();
    assert!(t.all_served());
    settle(&mut t);
    let counts = t.slot_counts();
    for n in [2, 3, 4] {
        let share = counts[&id(n)];
        assert!((SLOTS / 3..=SLOTS / 3 + 1).contains(&share), "{n}: {share}");
    }
}

#[test]
fn a_rescue_is_recorded_with_its_epoch_and_a_committed_move_is_not_one() {
    let mut t = cluster(2);
    t.apply(&Change::Join(node(3))).unwrap();
    let joined = t.epoch;
    // Node 3 receives one batch from node 1, then node 1 fails (no replicas): the batch was
    // committed to node 3, the rest of node 1's slots are left with no copy.
    let batch: Vec<u16> = t.moving_from(&id(1)).into_iter().map(|(s, _)| s).collect();
    let held_by_1: Vec<u16> = (0..SLOTS as u16)
        .filter(|&s| t.role_of(&id(1), s) == Some(0) && !batch.contains(&s))
        .collect();
    t.apply(&Change::Moved {
        to: id(3),
        slots: batch.clone(),
    })
    .unwrap();
    let before_fail = t.epoch;
    t.apply(&Change::Fail(id(1))).unwrap();
    for &s in &batch {
        assert_eq!(t.role_of(&id(3), s), Some(0));
        // Seen from the topology before the move (an epoch a follower may have skipped), the
        // slot still came by a move, not a rescue.
        assert!(!t.rescued_after(s, joined), "slot {s} was moved, committed");
    }
    assert!(!held_by_1.is_empty());
    for &s in &held_by_1 {
        assert!(t.rescued_after(s, joined), "slot {s} lost every copy");
        assert!(t.rescued_after(s, before_fail), "slot {s}");
        assert!(
            !t.rescued_after(s, t.epoch),
            "slot {s}: the rescue is in the past"
        );
    }
    // The record travels with the topology (Raft snapshots).
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(serde_json::from_str::<Topology>(&json).unwrap(), t);
    // A rescued slot that moves again, committed, is no longer a rescue for anyone.
    settle(&mut t);
    t.apply(&Change::Join(node(4))).unwrap();
    settle(&mut t);
    let moved_on: Vec<u16> = held_by_1
        .iter()
        .copied()
        .filter(|&s| t.role_of(&id(4), s) == Some(0))
        .collect();
    assert!(!moved_on.is_empty());
    for s in moved_on {
        assert!(
            !t.rescued_after(s, joined),
            "slot {s} moved to node 4 after its rescue"
        );
    }
}

#[test]
fn a_failure_with_only_leaving_nodes_left_gives_them_the_slots_back() {
    let mut t = cluster(2);
    t.apply(&Change::Leave(id(1))).unwrap();
    // Half of node 1's slots have reached node 2 when node 2 fails.
    let half: Vec<u16> = t
        .moving_from(&id(1))
        .into_iter()
        .map(|(s, _)| s)
        .take(100)
        .collect();
    t.apply(&Change::Moved {
        to: id(2),
        slots: half,
    })
    .unwrap();
    t.apply(&Change::Fail(id(2))).unwrap();
    assert!(t.all_served());
    assert_eq!(t.slot_counts()[&id(1)], SLOTS);
    assert!(
        t.target.is_none(),
        "nowhere to move them until a node joins"
    );
}

#[test]
fn a_stale_move_is_refused_and_changes_nothing() {
    let mut t = cluster(2);
    t.apply(&Change::Join(node(3))).unwrap();
    let (slot, _) = t.moving_from(&id(1))[0];
    let before = t.clone();
    let err = t
        .apply(&Change::Moved {
            to: id(2),
            slots: vec![slot],
        })
        .unwrap_err();
    assert_eq!(err, ChangeError::NotMoving { slot, to: id(2) });
    assert_eq!(t, before);
    assert_eq!(
        t.apply(&Change::Forget(id(1))),
        Err(ChangeError::StillServing(id(1)))
    );
    assert_eq!(
        t.apply(&Change::Leave(id(9))),
        Err(ChangeError::UnknownNode(id(9)))
    );
}

#[test]
fn the_topology_round_trips_through_json() {
    let t = cluster(2);
    let text = serde_json::to_string(&t).unwrap();
    let back: Topology = serde_json::from_str(&text).unwrap();
    assert_eq!(back, t);
}

#[test]
fn a_join_fills_the_newcomers_quota_at_every_position() {
    for replicas in [1u8, 2] {
        for n in 3..=5u8 {
            let what = format!("replicas {replicas}, join to {n}");
            let mut t = cluster_with(n - 1, replicas);
            assert_balanced(&t, &what);
            t.apply(&Change::Join(node(n))).unwrap();
            let target = t.target.clone().expect("a join moves slots");
            assert_sets_sound(&t, &target, &[NodeState::Online], &what);
            // Copies to make: the newcomer's quota at every position, and little else.
            let copies: usize = (0..SLOTS as u16).map(|s| t.copies_needed(s).len()).sum();
            let ideal = t.rf() * SLOTS / usize::from(n);
            assert!(
                copies * 100 >= ideal * 99 && copies * 100 <= ideal * 101,
                "{what}: {copies} copies, ideal {ideal}"
            );
            for s in 0..SLOTS as u16 {
                assert!(
                    t.copies_needed(s).iter().all(|m| m.id == id(n)),
                    "{what}: slot {s} copies to an old member"
                );
            }
            settle(&mut t);
            assert_balanced(&t, &what);
            assert!(t.all_served());
        }
    }
}

#[test]
fn a_failed_primary_is_replaced_by_its_first_replica_and_the_plan_refills_the_set() {
    for replicas in [1u8, 2] {
        for n in 3..=5u8 {
            let what = format!("replicas {replicas}, {n} nodes");
            let mut t = cluster_with(n, replicas);
            let before = sets(&t);
            let dead = id(2);
            t.apply(&Change::Fail(dead.clone())).unwrap();
            assert!(t.all_served(), "{what}");
            let after = sets(&t);
            for s in 0..SLOTS {
                let survivors: Vec<NodeId> =
                    before[s].iter().filter(|&m| *m != dead).cloned().collect();
                assert_eq!(after[s], survivors, "{what}: slot {s}");
                if before[s][0] == dead {
                    assert_eq!(after[s][0], before[s][1], "{what}: slot {s} promotes");
                }
            }
            let slots = t.slots.clone().unwrap();
            assert_sets_sound(&t, &slots, &[NodeState::Online], &what);
            // The plan fills each vacancy from another online member, and copies only there.
            let target = t.target.clone().expect("vacancies to fill");
            assert_sets_sound(&t, &target, &[NodeState::Online], &what);
            let online = usize::from(n) - 1;
            assert_eq!(
                target.vacancies(),
                SLOTS * t.rf().saturating_sub(online),
                "{what}"
            );
            if online >= t.rf() {
                for s in 0..SLOTS as u16 {
                    let lost = usize::from(before[usize::from(s)].contains(&dead));
                    assert!(t.copies_needed(s).len() >= lost, "{what}: slot {s}");
                }
            }
            settle(&mut t);
            assert_balanced(&t, &what);
        }
    }
}

#[test]
fn a_failure_in_a_two_node_cluster_leaves_the_survivor_alone_until_the_node_returns() {
    let mut t = cluster_with(2, 1);
    assert_eq!(t.slots.as_ref().unwrap().vacancies(), 0);
    t.apply(&Change::Fail(id(2))).unwrap();
    assert!(t.target.is_none(), "nowhere to put a second copy");
    assert!((0..SLOTS as u16).all(|s| ids(&t.replicas_of(s)) == [id(1)]));
    assert_eq!(t.slots.as_ref().unwrap().vacancies(), SLOTS);
    assert!(t.all_served());
    // The failed node comes back empty: it gets a copy of everything and its share of
    // primaries.
    t.apply(&Change::Join(node(2))).unwrap();
    for s in 0..SLOTS as u16 {
        assert_eq!(ids(&t.copies_needed(s)), [id(2)], "slot {s}");
    }
    settle(&mut t);
    assert_balanced(&t, "after the return");
}

#[test]
fn a_slot_that_loses_every_copy_goes_to_the_survivors_empty() {
    let mut t = cluster_with(3, 1);
    let before = sets(&t);
    // Two nodes fail before the first failure's vacancies are refilled.
    t.apply(&Change::Fail(id(1))).unwrap();
    t.apply(&Change::Fail(id(2))).unwrap();
    assert!(t.all_served());
    let both = [id(1), id(2)];
    let mut rescued = 0;
    for (s, set) in before.iter().enumerate() {
        let now = ids(&t.replicas_of(s as u16));
        if set.iter().all(|m| both.contains(m)) {
            rescued += 1;
            assert_eq!(now, [id(3)], "slot {s}: rescued");
        } else {
            assert_eq!(now, [id(3)], "slot {s}: its surviving copy");
            assert_eq!(t.role_of(&id(3), s as u16), Some(0));
        }
    }
    assert!(rescued > 0);
    assert!(t.target.is_none());
    // The last node cannot fail: there is no one to take its slots.
    assert_eq!(t.apply(&Change::Fail(id(3))), Err(ChangeError::NoSurvivor));
}

#[test]
fn the_replica_count_changes_on_a_live_table() {
    let mut t = cluster(4);
    let primaries: Vec<NodeId> = sets(&t).into_iter().map(|set| set[0].clone()).collect();
    let mut previous = sets(&t);
    for replicas in [1u8, 2, 1, 0] {
        let what = format!("to {replicas} replicas");
        let widening = usize::from(replicas) + 1 > t.rf();
        t.apply(&Change::Set(with_replicas(replicas))).unwrap();
        assert_eq!(t.rf(), usize::from(replicas) + 1, "{what}");
        let now = sets(&t);
        for s in 0..SLOTS {
            // Widening adds vacancies only; narrowing cuts the last replicas off.
            let kept = previous[s].len().min(t.rf());
            assert_eq!(now[s], previous[s][..kept], "{what}: slot {s}");
        }
        if widening {
            for s in 0..SLOTS as u16 {
                assert_eq!(t.copies_needed(s).len(), 1, "{what}: slot {s}");
            }
        }
        settle(&mut t);
        assert_balanced(&t, &what);
        let now = sets(&t);
        for s in 0..SLOTS {
            assert_eq!(
                now[s][0], primaries[s],
                "{what}: slot {s} keeps its primary"
            );
        }
        previous = now;
    }
    // Settings that do not change the replica count plan nothing.
    let quorum = Settings::new(0, Strategy::Quorum);
    t.apply(&Change::Set(quorum)).unwrap();
    assert_eq!(t.settings, quorum);
    assert!(t.target.is_none());
}

#[test]
fn bad_settings_are_refused_and_change_nothing() {
    let mut t = cluster_with(3, 1);
    let before = t.clone();
    let bad = Settings {
        sync_replicas: 2,
        ..with_replicas(1)
    };
    assert_eq!(
        t.apply(&Change::Set(bad)),
        Err(ChangeError::Settings(SettingsError::SyncReplicas {
            sync: 2,
            replicas: 1
        }))
    );
    let too_many = Settings::new(5, Strategy::Chain);
    assert_eq!(
        t.apply(&Change::Set(too_many)),
        Err(ChangeError::Settings(SettingsError::TooManyReplicas(5)))
    );
    assert_eq!(t, before);
}

#[test]
fn a_leave_with_replicas_hands_off_every_copy_then_removes_the_leaver() {
    let mut t = cluster_with(4, 1);
    let before = sets(&t);
    let leaver = id(2);
    t.apply(&Change::Leave(leaver.clone())).unwrap();
    let target = t.target.clone().unwrap();
    assert_sets_sound(&t, &target, &[NodeState::Online], "target");
    // Slots the leaver was no part of move at most to put a replica in order.
    for (s, set) in before.iter().enumerate() {
        if !set.contains(&leaver) {
            assert_eq!(target.primary(s as u16).id, set[0], "slot {s}");
        }
    }
    settle(&mut t);
    assert!(
        !t.nodes.contains_key(&leaver),
        "a drained leaver is removed"
    );
    assert!(t.all_served());
    assert_balanced(&t, "after the leave");
}

#[test]
fn moved_commits_only_slots_that_move_and_only_to_their_target_primary() {
    let mut t = cluster_with(3, 1);
    t.apply(&Change::Join(node(4))).unwrap();
    let target = t.target.clone().unwrap();
    let slots = t.slots.clone().unwrap();
    let still = (0..SLOTS as u16)
        .find(|&s| slots.same_set(&target, s))
        .expect("a slot that stays");
    let owner = slots.primary(still).id.clone();
    assert_eq!(
        t.apply(&Change::Moved {
            to: owner.clone(),
            slots: vec![still]
        }),
        Err(ChangeError::NotMoving {
            slot: still,
            to: owner
        })
    );
    // A slot that keeps its primary and gains a replica: its primary commits it to itself.
    let (kept, _) = batches(&t)
        .into_iter()
        .find(|((from, to), _)| from == to)
        .expect("a slot whose replicas change only");
    let (from, _) = kept;
    let slot = t
        .moving_from(&from)
        .into_iter()
        .find(|(_, to)| *to == from)
        .unwrap()
        .0;
    assert_eq!(ids(&t.copies_needed(slot)), [id(4)]);
    assert_eq!(t.role_of(&from, slot), Some(0));
    assert_eq!(t.role_of(&id(4), slot), None);
    assert!(t.target_role_of(&id(4), slot).is_some_and(|r| r > 0));
    assert_eq!(t.target_role_of(&from, slot), Some(0));
    let before = sets(&t);
    let wrong = t.nodes.keys().find(|&k| *k != from).unwrap().clone();
    assert!(
        t.apply(&Change::Moved {
            to: wrong,
            slots: vec![slot]
        })
        .is_err()
    );
    t.apply(&Change::Moved {
        to: from.clone(),
        slots: vec![slot],
    })
    .unwrap();
    let after = sets(&t);
    for s in 0..SLOTS {
        if s == usize::from(slot) {
            let want: Vec<NodeId> = target.replicas(slot).map(|m| m.id.clone()).collect();
            assert_eq!(after[s], want);
            assert_eq!(after[s][0], from);
        } else {
            assert_eq!(after[s], before[s], "slot {s} did not move");
        }
    }
    assert!(t.copies_needed(slot).is_empty());
    assert!(t.moving_from(&from).iter().all(|&(s, _)| s != slot));
}

#[test]
fn a_topology_with_settings_round_trips_and_an_old_one_still_parses() {
    let mut t = cluster_with(3, 2);
    t.apply(&Change::Set(Settings::new(2, Strategy::Chain)))
        .unwrap();
    t.apply(&Change::Fail(id(3))).unwrap();
    let text = serde_json::to_string(&t).unwrap();
    let back: Topology = serde_json::from_str(&text).unwrap();
    assert_eq!(back, t);
    // A snapshot written before replication has no settings: it means no replicas.
    let mut old: serde_json::Value = serde_json::to_value(cluster(2)).unwrap();
    old.as_object_mut().unwrap().remove("settings");
    let parsed: Topology = serde_json::from_value(old).unwrap();
    assert_eq!(parsed, cluster(2));
    assert_eq!(parsed.settings, Settings::default());
    let empty: Topology =
        serde_json::from_str(r#"{"epoch":0,"nodes":{},"slots":null,"target":null}"#).unwrap();
    assert_eq!(empty, Topology::default());
}

/// SplitMix64: a small seeded generator, so that a run replays from its seed alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())].clone())
    }
}

/// A random change that has a chance to apply: joins and returns among seven nodes, leaves,
/// failures, forgets, batches of the plan's moves, new settings, rebalances.
fn random_change(t: &Topology, rng: &mut Rng) -> Change {
    let alive: Vec<NodeId> = t
        .nodes
        .values()
        .filter(|n| n.state != NodeState::Failed)
        .map(|n| n.id.clone())
        .collect();
    loop {
        let change = match rng.below(12) {
            0 | 1 => Some(Change::Join(node(1 + rng.below(7) as u8))),
            2 => rng.pick(&alive).map(Change::Leave),
            3 => rng.pick(&alive).map(Change::Fail),
            4 => rng
                .pick(&t.nodes.keys().cloned().collect::<Vec<_>>())
                .map(Change::Forget),
            // A whole batch (as migration commits them) or a part of one.
            5..=8 => {
                let moves: Vec<_> = batches(t).into_iter().collect();
                rng.pick(&moves).map(|((_, to), mut slots)| {
                    if rng.below(2) == 0 {
                        slots.truncate(1 + rng.below(slots.len()));
                    }
                    Change::Moved { to, slots }
                })
            }
            9 | 10 => {
                let strategy = [Strategy::Primary, Strategy::Quorum, Strategy::Chain][rng.below(3)];
                Some(Change::Set(Settings::new(rng.below(4) as u8, strategy)))
            }
            _ => Some(Change::Rebalance),
        };
        if let Some(change) = change {
            return change;
        }
    }
}

/// What must hold after every change, given the topology before it. Whether the table was
/// settled (and its balance checked).
fn assert_invariants(before: &Topology, change: &Change, t: &Topology) -> bool {
    let what = match change {
        Change::Moved { to, slots } => {
            format!(
                "epoch {} after moving {} slots to {to}",
                t.epoch,
                slots.len()
            )
        }
        change => format!("epoch {} after {change:?}", t.epoch),
    };
    let Some(slots) = &t.slots else {
        return false;
    };
    assert_sets_sound(t, slots, &[NodeState::Online, NodeState::Leaving], &what);
    if let Some(target) = &t.target {
        assert_sets_sound(t, target, &[NodeState::Online], &what);
    }
    assert!(t.all_served(), "{what}");
    let (was, now) = (
        before.slots.as_ref().map_or_else(Vec::new, set_ids),
        set_ids(slots),
    );
    match change {
        Change::Fail(dead) if before.slots.is_some() => {
            for (s, (was, now)) in was.iter().zip(&now).enumerate() {
                let survivors: Vec<&str> = was.iter().copied().filter(|m| m != dead).collect();
                if survivors.is_empty() {
                    assert!(!now.is_empty(), "{what}: slot {s} rescued");
                } else {
                    assert_eq!(*now, survivors, "{what}: slot {s} keeps its survivors");
                }
            }
        }
        Change::Moved { slots: batch, .. } => {
            let target = set_ids(before.target.as_ref().unwrap());
            let mut moved = vec![false; SLOTS];
            for &s in batch {
                moved[usize::from(s)] = true;
            }
            for (s, (was, now)) in was.iter().zip(&now).enumerate() {
                if moved[s] {
                    assert_eq!(*now, target[s], "{what}: slot {s} takes its target set");
                } else {
                    assert_eq!(now, was, "{what}: slot {s} stays");
                }
            }
        }
        _ => {}
    }
    let online = t
        .nodes
        .values()
        .filter(|n| n.state == NodeState::Online)
        .count();
    let leaving = t.nodes.values().any(|n| n.state == NodeState::Leaving);
    let settled = t.target.is_none() && online > 0 && !leaving;
    if settled {
        assert_balanced(t, &what);
    }
    settled
}

#[test]
fn random_changes_keep_the_invariants() {
    let seeds: Vec<u64> = match std::env::var("DCACHE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (0..6).map(|i| 0x5eed_cafe + i).collect(),
    };
    for seed in seeds {
        println!("DCACHE_SEED={seed}");
        let mut rng = Rng(seed);
        let mut t = Topology::default();
        let (mut applied, mut refused, mut settled) = (0, 0, 0);
        for step in 0..100 {
            // Now and then migration catches up with the plan, batch by batch.
            let change = if t.target.is_some() && step % 8 == 7 {
                let ((_, to), slots) = batches(&t).into_iter().next().unwrap();
                Change::Moved { to, slots }
            } else {
                random_change(&t, &mut rng)
            };
            let before = t.clone();
            match t.apply(&change) {
                Ok(()) => {
                    applied += 1;
                    assert_eq!(t.epoch, before.epoch + 1);
                    settled += usize::from(assert_invariants(&before, &change, &t));
                }
                Err(_) => {
                    refused += 1;
                    assert_eq!(t, before, "a refused {change:?} changed the topology");
                }
            }
        }
        println!("{applied} applied ({settled} settled), {refused} refused");
        assert!(applied > 50, "seed {seed}: the run exercised too little");
        assert!(settled > 5, "seed {seed}: the table was seldom settled");
    }
}
