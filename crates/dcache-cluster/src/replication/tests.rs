use super::*;

/// One slot (0) held by `copies`, in order.
fn layout(mode: Mode, copies: &[&str]) -> Layout {
    Layout::new(mode, 1, |_| copies.iter().copied())
}

fn node(me: &str, mode: Mode, copies: &[&str]) -> Replicator<u32, &'static str> {
    Replicator::new(me.to_owned(), layout(mode, copies))
}

fn waiting<T: std::fmt::Debug>(s: Submitted<T>) -> u64 {
    match s {
        Submitted::Waiting(id) => id,
        other => panic!("expected to wait, got {other:?}"),
    }
}

#[test]
fn layout_lists_copies_in_order_and_finds_successors() {
    let l = Layout::new(Mode::Chain, 3, |slot| match slot {
        0 => vec!["a", "b", "c"],
        1 => vec!["b"],
        _ => vec![],
    });
    assert_eq!(l.copies(0).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(l.copies(1).collect::<Vec<_>>(), ["b"]);
    assert_eq!(l.copies(2).count(), 0);
    assert_eq!(l.successor(0, "a"), Some("b"));
    assert_eq!(l.successor(0, "c"), None);
    assert_eq!(l.successor(1, "a"), None);
    assert_eq!(l.position(0, "c"), Some(2));
    assert_eq!(l.position(1, "c"), None);
}

#[test]
fn primary_waits_for_k_of_its_replicas() {
    let mut a = node("a", Mode::Primary { sync: 1 }, &["a", "b", "c"]);
    let id = waiting(a.submit("w1", vec![(0, 7)], true));
    assert_eq!(a.take("b", 10), Some((1, vec![7])));
    assert_eq!(a.take("c", 10), Some((1, vec![7])));
    assert_eq!(a.take("b", 10), None, "handed out once");
    assert!(
        a.acked("b", 1)
            .iter()
            .any(|(t, o)| *t == "w1" && *o == Outcome::Done)
    );
    assert_eq!(a.waiting(), 0);
    assert_eq!(a.cancel(id), None, "already done");
}

#[test]
fn primary_waits_for_its_first_k_replicas_in_order() {
    // K = 1 of two replicas: b's answer counts, c's does not, so that b (the one a failover
    // promotes) holds every acknowledged write.
    let mut a = node("a", Mode::Primary { sync: 1 }, &["a", "b", "c"]);
    waiting(a.submit("w", vec![(0, 1)], true));
    assert!(a.acked("c", 1).is_empty(), "c is not the first replica");
    assert_eq!(a.acked("b", 1), vec![("w", Outcome::Done)]);
    // b fails: c is the first replica now, and its earlier answer counts.
    let mut a = node("a", Mode::Primary { sync: 1 }, &["a", "b", "c"]);
    waiting(a.submit("w", vec![(0, 1)], true));
    assert!(a.acked("c", 1).is_empty());
    assert_eq!(
        a.set_layout(layout(Mode::Primary { sync: 1 }, &["a", "c"])),
        vec![("w", Outcome::Done)]
    );
}

#[test]
fn primary_with_two_of_two_waits_for_both() {
    let mut a = node("a", Mode::Primary { sync: 2 }, &["a", "b", "c"]);
    waiting(a.submit("w", vec![(0, 1)], true));
    assert!(a.acked("b", 1).is_empty());
    assert_eq!(a.acked("c", 1), vec![("w", Outcome::Done)]);
}

#[test]
fn asynchronous_primary_acknowledges_at_once_and_still_sends() {
    let mut a = node("a", Mode::Primary { sync: 0 }, &["a", "b"]);
    assert_eq!(a.submit("w", vec![(0, 1)], true), Submitted::Done("w"));
    assert_eq!(a.take("b", 10), Some((1, vec![1])));
}

#[test]
fn a_replica_of_the_primary_strategy_only_applies() {
    let mut b = node("b", Mode::Primary { sync: 1 }, &["a", "b"]);
    assert_eq!(b.submit("w", vec![(0, 1)], false), Submitted::Done("w"));
    assert!(b.ready().next().is_none(), "nothing sent on");
}

#[test]
fn quorum_waits_for_w_minus_one_others() {
    let mut a = node("a", Mode::Quorum { write: 2 }, &["a", "b", "c"]);
    waiting(a.submit("w", vec![(0, 1)], true));
    assert_eq!(a.acked("b", 1), vec![("w", Outcome::Done)]);
}

#[test]
fn under_quorum_a_replica_coordinates_and_waits_for_w_minus_one_others() {
    let mut b = node("b", Mode::Quorum { write: 2 }, &["a", "b", "c"]);
    waiting(b.submit("w", vec![(0, 4)], true));
    assert_eq!(
        b.take("a", 10),
        Some((1, vec![4])),
        "the primary gets it too"
    );
    assert_eq!(b.take("c", 10), Some((1, vec![4])));
    assert_eq!(b.acked("a", 1), vec![("w", Outcome::Done)]);
    // W = 3: both others.
    let mut c = node("c", Mode::Quorum { write: 3 }, &["a", "b", "c"]);
    waiting(c.submit("w", vec![(0, 4)], true));
    assert!(c.acked("a", 1).is_empty());
    assert_eq!(c.acked("b", 1), vec![("w", Outcome::Done)]);
}

#[test]
fn who_sends_a_copy_its_writes() {
    let copies = ["a", "b", "c"];
    let quorum = layout(Mode::Quorum { write: 2 }, &copies);
    for (from, to) in [("a", "b"), ("b", "a"), ("c", "b"), ("b", "c")] {
        assert!(quorum.sends_to(0, from, to), "quorum: {from} to {to}");
        assert!(quorum.coordinates(0, from));
    }
    assert!(!quorum.sends_to(0, "b", "b"));
    assert!(!quorum.sends_to(0, "x", "b"), "a node without a copy");
    assert!(!quorum.sends_to(0, "b", "x"));
    let primary = layout(Mode::Primary { sync: 1 }, &copies);
    assert!(primary.sends_to(0, "a", "b"));
    assert!(
        !primary.sends_to(0, "b", "a"),
        "primary: replicas send nothing"
    );
    assert!(!primary.sends_to(0, "b", "c"));
    assert!(primary.coordinates(0, "a"));
    assert!(!primary.coordinates(0, "b"));
    let chain = layout(Mode::Chain, &copies);
    assert!(chain.sends_to(0, "b", "c"));
    assert!(!chain.sends_to(0, "c", "b"));
    assert!(!chain.coordinates(0, "b"));
}

#[test]
fn a_waiting_quorum_write_goes_to_the_copy_a_move_adds() {
    // b coordinates; the primary a has not answered when the slot moves from a to d, which was
    // filled from a and may lack the write.
    let mode = Mode::Quorum { write: 2 };
    let mut b = node("b", mode, &["a", "b"]);
    waiting(b.submit("w", vec![(0, 8)], true));
    assert_eq!(b.take("a", 10), Some((1, vec![8])));
    assert!(b.set_layout(layout(mode, &["d", "b"])).is_empty());
    assert_eq!(b.take("d", 10), Some((1, vec![8])), "sent to the new copy");
    assert!(b.acked("a", 1).is_empty(), "a no longer counts");
    assert_eq!(b.acked("d", 1), vec![("w", Outcome::Done)]);
    // A copy that only leaves: the write waits for the copies left, at most.
    let mut a = node("a", mode, &["a", "b", "c"]);
    waiting(a.submit("w", vec![(0, 1)], true));
    assert_eq!(
        a.set_layout(layout(mode, &["a"])),
        vec![("w", Outcome::Done)]
    );
}

#[test]
fn a_chain_acknowledges_from_the_tail_back() {
    let copies = ["a", "b", "c"];
    let mut a = node("a", Mode::Chain, &copies);
    let mut b = node("b", Mode::Chain, &copies);
    let mut c = node("c", Mode::Chain, &copies);
    waiting(a.submit("client", vec![(0, 5)], true));
    assert!(
        a.take("c", 10).is_none(),
        "the head sends to its successor only"
    );
    let (offset, items) = a.take("b", 10).expect("to b");
    let relay = waiting(b.submit("from-a", vec![(0, items[0])], false));
    let (tail_offset, items) = b.take("c", 10).expect("to c");
    assert_eq!(
        c.submit("from-b", vec![(0, items[0])], false),
        Submitted::Done("from-b")
    );
    // c's reply reaches b, b's reaches a.
    assert_eq!(b.acked("c", tail_offset), vec![("from-a", Outcome::Done)]);
    assert_eq!(b.cancel(relay), None);
    assert_eq!(a.acked("b", offset), vec![("client", Outcome::Done)]);
}

#[test]
fn a_middle_link_cut_out_has_its_items_sent_again_to_the_new_successor() {
    let mut a = node("a", Mode::Chain, &["a", "b", "c"]);
    waiting(a.submit("w", vec![(0, 9)], true));
    assert_eq!(a.take("b", 10), Some((1, vec![9])));
    // b fails before it answered: the chain is a, c.
    let done = a.set_layout(layout(Mode::Chain, &["a", "c"]));
    assert!(done.is_empty());
    assert_eq!(a.take("c", 10), Some((1, vec![9])), "c may lack it");
    assert!(a.acked("b", 1).is_empty(), "b's answer no longer counts");
    assert_eq!(a.acked("c", 1), vec![("w", Outcome::Done)]);
}

#[test]
fn a_link_that_becomes_the_tail_completes_what_waited_on_the_old_tail() {
    let mut b = node("b", Mode::Chain, &["a", "b", "c"]);
    waiting(b.submit("from-a", vec![(0, 1)], false));
    assert_eq!(
        b.set_layout(layout(Mode::Chain, &["a", "b"])),
        vec![("from-a", Outcome::Done)]
    );
}

#[test]
fn a_failed_replica_is_no_longer_waited_for() {
    let mut a = node("a", Mode::Primary { sync: 1 }, &["a", "b"]);
    waiting(a.submit("w", vec![(0, 1)], true));
    assert_eq!(
        a.set_layout(layout(Mode::Primary { sync: 1 }, &["a"])),
        vec![("w", Outcome::Done)],
        "no copy is left to wait for: the write holds where the layout says it should"
    );
}

#[test]
fn a_node_that_lost_the_slot_cannot_acknowledge() {
    let mut a = node("a", Mode::Chain, &["a", "b"]);
    waiting(a.submit("w", vec![(0, 1)], true));
    assert_eq!(
        a.set_layout(layout(Mode::Chain, &["b", "c"])),
        vec![("w", Outcome::NotHere)]
    );
    assert_eq!(a.submit("x", vec![(0, 1)], true), Submitted::NotHere("x"));
}

#[test]
fn a_broken_connection_resends_what_was_not_acknowledged() {
    let mut a = node("a", Mode::Primary { sync: 0 }, &["a", "b"]);
    for i in 0..5 {
        a.submit("w", vec![(0, i)], true);
    }
    assert_eq!(a.take("b", 3), Some((1, vec![0, 1, 2])));
    assert_eq!(a.take("b", 3), Some((4, vec![3, 4])));
    a.acked("b", 2);
    a.rewind("b");
    assert_eq!(a.take("b", 10), Some((3, vec![2, 3, 4])));
    assert_eq!(a.acked_offset("b"), 2);
    assert_eq!(a.queued("b"), 5);
}

#[test]
fn a_cancelled_write_gives_its_token_back_once() {
    let mut a = node("a", Mode::Primary { sync: 1 }, &["a", "b"]);
    let id = waiting(a.submit("w", vec![(0, 1)], true));
    assert_eq!(a.cancel(id), Some("w"));
    assert!(a.acked("b", 1).is_empty());
}

#[test]
fn the_backlog_is_bounded() {
    let mut a: Replicator<u32, ()> =
        Replicator::new("a".into(), layout(Mode::Primary { sync: 0 }, &["a", "b"]));
    for i in 0..(MAX_BACKLOG as u32 + 10) {
        a.submit((), vec![(0, i)], true);
    }
    assert_eq!(a.dropped, 10);
    let (first, items) = a.take("b", 1).expect("items");
    assert_eq!((first, items[0]), (11, 10), "the oldest were dropped");
}

#[test]
fn a_replaced_item_keeps_its_offset_and_its_waiting_write() {
    let mut a = node("a", Mode::Primary { sync: 1 }, &["a", "b"]);
    let first = waiting(a.submit("w1", vec![(0, 1)], true));
    let second = waiting(a.submit("w2", vec![(0, 2)], true));
    assert_eq!(a.take("b", 10), Some((1, vec![1, 2])));
    // The peer could not apply item 1: it goes again, replaced, from there.
    assert_eq!(a.item("b", 1), Some(&1));
    assert!(a.replace("b", 1, 10));
    a.rewind("b");
    assert_eq!(a.take("b", 10), Some((1, vec![10, 2])));
    assert_eq!(
        a.acked("b", 2),
        vec![("w1", Outcome::Done), ("w2", Outcome::Done)]
    );
    // Acknowledged items are not replaced, and offsets never queued are not there.
    assert!(!a.replace("b", 1, 11));
    assert!(!a.replace("b", 3, 11));
    assert_eq!(a.item("b", 1), None);
    assert!(a.cancel(first).is_none() && a.cancel(second).is_none());
}
