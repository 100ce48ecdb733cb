//! `Placement::rebalance`: the next epoch's placement derived from the last one moves the ideal
//! number of slots and keeps every member at its quota.

use dcache_placement::{Member, Placement, SLOTS};

fn members(ids: impl IntoIterator<Item = usize>) -> Vec<Member> {
    ids.into_iter()
        .map(|i| Member::new(format!("node-{i}"), 1))
        .collect()
}

/// Primaries (`positions` 1), or in general (slot, position) pairs whose member differs.
fn moved(a: &Placement, b: &Placement, positions: usize) -> usize {
    (0..SLOTS as u16)
        .map(|s| {
            let (x, y): (Vec<_>, Vec<_>) = (
                a.replicas(s).map(|m| m.id.clone()).collect(),
                b.replicas(s).map(|m| m.id.clone()).collect(),
            );
            (0..positions).filter(|&p| x.get(p) != y.get(p)).count()
        })
        .sum()
}

fn quota(n: usize) -> (usize, usize) {
    (SLOTS / n, SLOTS.div_ceil(n))
}

/// Copies of slots a member must receive: members in a slot's new set that were not in its old.
fn copies(a: &Placement, b: &Placement) -> usize {
    (0..SLOTS as u16)
        .map(|s| {
            let old: Vec<&str> = a.replicas(s).map(|m| m.id.as_str()).collect();
            b.replicas(s)
                .filter(|m| !old.contains(&m.id.as_str()))
                .count()
        })
        .sum()
}

#[test]
fn joins_move_exactly_the_newcomers_share_and_keep_quotas() {
    let mut placement = Placement::compute(&members(0..2), 1).unwrap();
    for n in 2..64 {
        let next = placement.rebalance(&members(0..=n), 1).unwrap();
        let newcomer = format!("node-{n}");
        let taken = (0..SLOTS as u16)
            .filter(|&s| next.primary(s).id == newcomer)
            .count();
        // Every move is a slot going to the newcomer, and it gets its quota.
        assert_eq!(moved(&placement, &next, 1), taken, "{} members", n + 1);
        let (lo, hi) = quota(n + 1);
        assert!(
            next.counts(0).iter().all(|&c| (lo..=hi).contains(&c)),
            "{} members: {:?}",
            n + 1,
            next.counts(0)
        );
        placement = next;
    }
}

#[test]
fn leaves_move_only_the_leavers_slots_and_keep_quotas() {
    let mut placement = Placement::compute(&members(0..64), 1).unwrap();
    let mut alive: Vec<usize> = (0..64).collect();
    // Members leave in a scattered order, down to two.
    while alive.len() > 2 {
        let gone = alive.remove((alive.len() * 7 / 13) % alive.len());
        let next = placement
            .rebalance(&members(alive.iter().copied()), 1)
            .unwrap();
        let own = (0..SLOTS as u16)
            .filter(|&s| placement.primary(s).id == format!("node-{gone}"))
            .count();
        assert_eq!(moved(&placement, &next, 1), own, "{gone} left");
        let (lo, hi) = quota(alive.len());
        assert!(next.counts(0).iter().all(|&c| (lo..=hi).contains(&c)));
        placement = next;
    }
}

#[test]
fn replica_positions_stay_balanced_and_distinct_across_epochs() {
    let mut placement = Placement::compute(&members(0..8), 3).unwrap();
    // Join, join, leave, join, leave, leave.
    let epochs = [
        members(0..9),
        members(0..10),
        members((0..10).filter(|&i| i != 3)),
        members((0..11).filter(|&i| i != 3)),
        members((0..11).filter(|&i| i != 3 && i != 7)),
        members((0..11).filter(|&i| i != 3 && i != 7 && i != 0)),
    ];
    for list in epochs {
        let next = placement.rebalance(&list, 3).unwrap();
        for s in 0..SLOTS as u16 {
            let ids: Vec<&str> = next.replicas(s).map(|m| m.id.as_str()).collect();
            let mut unique = ids.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), 3, "slot {s}: {ids:?}");
        }
        for position in 0..3 {
            let counts = next.counts(position);
            let mean = SLOTS as f64 / counts.len() as f64;
            let max = *counts.iter().max().unwrap() as f64;
            assert!(max / mean <= 1.02, "position {position}: {counts:?}");
        }
        // Data to copy: the ideal share of a joiner (its quota at every position) or of a
        // leaver (what it held), within 1 %.
        let (old_n, new_n) = (placement.members().len(), list.len());
        let ideal = if new_n > old_n {
            3.0 * SLOTS as f64 / new_n as f64
        } else {
            3.0 * SLOTS as f64 / old_n as f64
        };
        let copied = copies(&placement, &next) as f64;
        println!("{old_n} -> {new_n} members: {copied} copies, ideal {ideal:.0}");
        assert!(copied <= ideal * 1.01, "{copied} copies, ideal {ideal:.0}");
        placement = next;
    }
}

#[test]
fn rebalancing_onto_the_same_members_only_evens_out_replicas_and_is_deterministic() {
    let first = Placement::compute(&members(0..12), 2).unwrap();
    let same = first.rebalance(&members(0..12), 2).unwrap();
    // Primaries stay; replicas that `compute` had to put over quota (a member cannot be its own
    // replica) may move to the member that was short, and then nothing moves any more.
    assert_eq!(moved(&first, &same, 1), 0);
    let (lo, hi) = quota(12);
    assert!(same.counts(1).iter().all(|&c| (lo..=hi).contains(&c)));
    let again = same.rebalance(&members(0..12), 2).unwrap();
    assert_eq!(moved(&same, &again, 2), 0);
    let mut reversed = members(0..13);
    reversed.reverse();
    let (a, b) = (
        first.rebalance(&members(0..13), 2).unwrap(),
        first.rebalance(&reversed, 2).unwrap(),
    );
    assert!(a == b, "the member order changed the result");
}

/// Each member's count at `position` is within `slack` of its quota.
fn assert_quota(p: &Placement, position: usize, slack: usize, what: &str) {
    let n = p.members().len();
    let (lo, hi) = quota(n);
    let counts = p.counts(position);
    assert!(
        counts
            .iter()
            .all(|&c| (lo.saturating_sub(slack)..=hi + slack).contains(&c)),
        "{what}: position {position}: {counts:?}"
    );
}

#[test]
fn replica_positions_keep_their_quota_when_a_leave_or_a_failure_promotes_replicas() {
    for n in 3..=7 {
        for rf in 2..=3usize.min(n - 1) {
            let all = members(0..n);
            let before = Placement::compute(&all, rf).unwrap();
            let gone = format!("node-{}", n / 2);
            let rest: Vec<Member> = all.iter().filter(|m| m.id != gone).cloned().collect();
            // A leave: the leaver is still in the table. A failure: it was cut out first, its
            // replicas promoted, and its places are vacant.
            let left = before.rebalance(&rest, rf).unwrap();
            let cut = before.without(&gone);
            let failed = cut.rebalance(&rest, rf).unwrap();
            for (p, what) in [(&left, "leave"), (&failed, "failure")] {
                let what = format!("{what}, {n} -> {} members, rf {rf}", n - 1);
                assert_eq!(p.vacancies(), 0, "{what}");
                for position in 0..rf {
                    // The last position of a set as long as the member list holds whoever
                    // the others left: within two slots.
                    let slack = if position == n - 2 { 2 } else { 0 };
                    assert_quota(p, position, slack, &what);
                }
            }
            // The failure keeps every survivor where the cut put it, primaries included, unless
            // quotas make it move.
            let kept = (0..SLOTS as u16)
                .filter(|&s| failed.primary(s) == cut.primary(s))
                .count();
            assert!(kept * 100 >= SLOTS * 95, "{n} members rf {rf}: {kept} kept");
        }
    }
}
