//! The replication core's bounded backlog: a write whose item was dropped is never taken as
//! acknowledged.

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
