//! Review findings on the replication core, as failing tests.

use dcache_cluster::replication::{Layout, MAX_BACKLOG, Mode, Outcome, Replicator, Submitted};

/// A write whose item was dropped from a full backlog, never sent, must not be acknowledged
/// when the peer acknowledges a later offset of the stream.
#[test]
fn a_write_dropped_from_a_full_backlog_is_not_acknowledged_by_later_offsets() {
    let copies = |_| ["a", "b"];
    let mut r: Replicator<u8, u64> = Replicator::new(
        "a".into(),
        Layout::new(Mode::Primary { sync: 1 }, 1, copies),
    );
    assert!(matches!(
        r.submit(0, vec![(0, 0)], true),
        Submitted::Waiting(_)
    ));
    // Fill the stream past its bound with writes that wait for nothing (W = 1), so that the
    // first write's item is the one dropped; the first write still waits for "b".
    assert!(
        r.set_layout(Layout::new(Mode::Quorum { write: 1 }, 1, copies))
            .is_empty()
    );
    for token in 1..=MAX_BACKLOG as u64 {
        assert!(matches!(
            r.submit(token, vec![(0, 1)], true),
            Submitted::Done(_)
        ));
    }
    assert_eq!(r.dropped, 1);
    let mut first_sent = None;
    while let Some((from, _)) = r.take("b", usize::MAX) {
        first_sent.get_or_insert(from);
    }
    assert_eq!(first_sent, Some(2), "offset 1 was dropped, never sent");
    let done = r.acked("b", r.queued("b"));
    assert!(
        !done.contains(&(0, Outcome::Done)),
        "write 0 acknowledged, but its item never reached b"
    );
}

/// After a failure, the plan that refills the sets may only reorder a slot's surviving copies:
/// the primary (chain head) changes to a copy that got no migration snapshot (`copies_needed`
/// is empty) and may lack writes still on their way to it. The replication core then
/// acknowledges a chain write at once on the old head (now the tail), and the move commits
/// without draining the old primary's stream to the new one. This test shows such moves exist.
#[test]
fn a_planned_move_can_change_the_primary_without_giving_it_a_copy() {
    use dcache_cluster::{Change, Node, NodeState, Settings, Strategy, Topology};
    let mut t = Topology::default();
    let ids: Vec<String> = (0..4).map(|i| format!("{i:040x}")).collect();
    for (i, id) in ids.iter().enumerate() {
        t.apply(&Change::Join(Node {
            id: id.clone(),
            host: "127.0.0.1".into(),
            port: 7000 + i as u16,
            bus_port: 17000 + i as u16,
            state: NodeState::Online,
        }))
        .unwrap();
        if i == 0 {
            t.apply(&Change::Set(Settings::new(1, Strategy::Chain)))
                .unwrap();
        }
    }
    // Settle every planned move.
    loop {
        let moving: Vec<(u16, String)> = ids.iter().flat_map(|id| t.moving_from(id)).collect();
        let Some((_, to)) = moving.first().cloned() else {
            break;
        };
        let slots = moving
            .iter()
            .filter(|(_, d)| *d == to)
            .map(|(s, _)| *s)
            .collect();
        t.apply(&Change::Moved { to, slots }).unwrap();
    }
    t.apply(&Change::Fail(ids[0].clone())).unwrap();
    let reordered: Vec<u16> = (0..dcache_placement::SLOTS as u16)
        .filter(|&s| {
            let now: Vec<&str> = t.replicas_of(s).iter().map(|n| n.id.as_str()).collect();
            let target: Vec<&str> = t
                .target
                .as_ref()
                .map(|p| p.replicas(s).map(|m| m.id.as_str()).collect())
                .unwrap_or_default();
            t.copies_needed(s).is_empty()
                && !target.is_empty()
                && target[0] != now[0]
                && now.contains(&target[0])
        })
        .collect();
    assert!(
        reordered.is_empty(),
        "{} slots get a new primary that receives no copy, e.g. slot {:?}",
        reordered.len(),
        reordered.first()
    );
}
