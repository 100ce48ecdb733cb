//! Hand-written histories whose verdict is known: linearizable ones the checker must accept, and
//! ones it must reject. Times are small integers; `[a, b]` below means invoked at a, completed
//! at b.

use dcache_check::{History, OpId, RuledOut, Violation};

type H = History<&'static str, &'static str>;

/// Shorthands for literal histories.
trait Lit {
    fn w(&mut self, client: u64, key: &'static str, v: &'static str, at: [u64; 2]) -> OpId;
    fn d(&mut self, client: u64, key: &'static str, at: [u64; 2]) -> OpId;
    fn r(
        &mut self,
        client: u64,
        key: &'static str,
        seen: Option<&'static str>,
        at: [u64; 2],
    ) -> OpId;
    /// A write whose client never heard back.
    fn w_unknown(&mut self, client: u64, key: &'static str, v: &'static str, at: u64) -> OpId;
}

impl Lit for H {
    fn w(&mut self, client: u64, key: &'static str, v: &'static str, at: [u64; 2]) -> OpId {
        let id = self.write(client, key, v, at[0]);
        self.ok(id, at[1]);
        id
    }

    fn d(&mut self, client: u64, key: &'static str, at: [u64; 2]) -> OpId {
        let id = self.delete(client, key, at[0]);
        self.ok(id, at[1]);
        id
    }

    fn r(
        &mut self,
        client: u64,
        key: &'static str,
        seen: Option<&'static str>,
        at: [u64; 2],
    ) -> OpId {
        let id = self.read(client, key, at[0]);
        self.read_ok(id, seen, at[1]);
        id
    }

    fn w_unknown(&mut self, client: u64, key: &'static str, v: &'static str, at: u64) -> OpId {
        self.write(client, key, v, at)
    }
}

#[track_caller]
fn accepted(h: &H) {
    if let Err(v) = h.check() {
        panic!("a linearizable history was rejected:\n{v}");
    }
}

#[track_caller]
fn rejected(h: &H) -> Violation<&'static str> {
    h.check()
        .expect_err("a history that is not linearizable was accepted")
}

// ---- linearizable ----

#[test]
fn empty_history_is_linearizable() {
    accepted(&H::new());
}

#[test]
fn sequential_history_is_linearizable() {
    let mut h = H::new();
    h.r(1, "k", None, [0, 1]);
    h.w(1, "k", "a", [2, 3]);
    h.r(2, "k", Some("a"), [4, 5]);
    h.w(2, "k", "b", [6, 7]);
    h.r(1, "k", Some("b"), [8, 9]);
    h.w(1, "k", "a", [10, 11]); // a value may be written again
    h.r(3, "k", Some("a"), [12, 13]);
    accepted(&h);
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    for last in ["a", "b"] {
        let mut h = H::new();
        h.w(1, "k", "a", [0, 10]);
        h.w(2, "k", "b", [0, 10]);
        h.r(3, "k", Some(last), [20, 30]);
        h.r(1, "k", Some(last), [40, 50]);
        accepted(&h);
    }
}

#[test]
fn read_overlapping_a_write_sees_old_or_new() {
    for seen in ["old", "new"] {
        let mut h = H::new();
        h.w(1, "k", "old", [0, 5]);
        h.w(1, "k", "new", [10, 20]);
        h.r(2, "k", Some(seen), [12, 18]);
        accepted(&h);
    }
}

/// Porcupine's register example, in our terms: a write of "100" over [0, 100]; one read over
/// [25, 75] sees it, another over [30, 60] still sees the key absent. Both reads overlap the
/// write and each other, so the second read can take effect before the write and the first after.
#[test]
fn overlapping_reads_split_around_a_write() {
    let mut h = H::new();
    h.w(0, "x", "100", [0, 100]);
    h.r(1, "x", Some("100"), [25, 75]);
    h.r(2, "x", None, [30, 60]);
    accepted(&h);
}

#[test]
fn read_of_an_absent_key_is_a_miss() {
    let mut h = H::new();
    h.r(1, "never-written", None, [0, 5]);
    h.w(1, "other", "a", [1, 2]);
    h.r(2, "never-written", None, [6, 7]);
    accepted(&h);
}

#[test]
fn initial_value_is_read_before_the_first_write() {
    let mut h = H::new();
    h.initial("k", "seed");
    h.r(1, "k", Some("seed"), [0, 5]);
    h.w(1, "k", "a", [6, 7]);
    h.r(1, "k", Some("a"), [8, 9]);
    accepted(&h);
}

#[test]
fn delete_makes_the_key_absent() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 5]);
    h.d(1, "k", [6, 7]);
    h.r(2, "k", None, [8, 9]);
    h.w(2, "k", "b", [10, 11]);
    h.r(1, "k", Some("b"), [12, 13]);
    accepted(&h);
}

#[test]
fn read_overlapping_a_delete_sees_value_or_miss() {
    for seen in [Some("a"), None] {
        let mut h = H::new();
        h.w(1, "k", "a", [0, 5]);
        h.d(1, "k", [10, 20]);
        h.r(2, "k", seen, [15, 25]);
        accepted(&h);
    }
}

#[test]
fn unknown_write_that_took_effect() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.w_unknown(2, "k", "b", 20);
    h.r(3, "k", Some("b"), [30, 40]);
    accepted(&h);
}

#[test]
fn unknown_write_that_never_took_effect() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.w_unknown(2, "k", "b", 20);
    h.r(3, "k", Some("a"), [30, 40]);
    h.r(3, "k", Some("a"), [50, 60]);
    accepted(&h);
}

/// An unknown write may still be in flight long after its client gave up on it.
#[test]
fn unknown_write_that_took_effect_late() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.w_unknown(2, "k", "b", 20);
    h.r(3, "k", Some("a"), [30, 40]);
    h.w(1, "k", "c", [50, 60]);
    h.r(3, "k", Some("c"), [70, 80]);
    h.r(3, "k", Some("b"), [90, 100]);
    accepted(&h);
}

/// A read with unknown outcome observed nothing, and a failed operation never happened.
#[test]
fn unknown_reads_and_failed_writes_constrain_nothing() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.read(2, "k", 11);
    let failed = h.write(3, "k", "b", 12);
    h.fail(failed);
    h.r(1, "k", Some("a"), [20, 30]);
    accepted(&h);
}

/// A completion and an invocation at the same tick count as concurrent, so a coarse clock never
/// produces a false alarm; one tick later they are ordered.
#[test]
fn intervals_that_touch_are_concurrent() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.r(2, "k", None, [10, 20]);
    accepted(&h);

    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.r(2, "k", None, [11, 20]);
    rejected(&h);
}

#[test]
fn keys_are_independent_registers() {
    let mut h = H::new();
    h.w(1, "x", "a", [0, 10]);
    h.r(2, "y", None, [20, 30]);
    h.w(2, "y", "a", [40, 50]);
    h.r(1, "x", Some("a"), [60, 70]);
    accepted(&h);
}

/// Five clients hammering one key with overlapping operations, where each read saw the value of
/// some write overlapping it or of the last write completed before it.
#[test]
fn many_overlapping_clients_on_one_key() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.w(2, "k", "b", [5, 25]);
    h.r(3, "k", Some("a"), [6, 12]);
    h.r(4, "k", Some("b"), [8, 30]);
    h.w(5, "k", "c", [9, 40]);
    h.r(1, "k", Some("c"), [11, 20]);
    h.r(3, "k", Some("b"), [21, 22]);
    h.r(5, "k", Some("b"), [41, 45]); // c before b: b's write overlaps c's
    h.r(2, "k", Some("b"), [46, 50]);
    accepted(&h);
}

// ---- not linearizable ----

/// The search notices as soon as the second write is placed: the stale read could then never
/// be satisfied, so the write has nowhere to go.
#[test]
fn stale_read_after_a_completed_write() {
    let mut h = H::new();
    let first = h.w(1, "k", "a", [0, 10]);
    let second = h.w(1, "k", "b", [20, 30]);
    let stale = h.r(2, "k", Some("a"), [40, 50]);
    let v = rejected(&h);
    assert_eq!(v.key, "k");
    assert_eq!(v.operations, 3);
    assert_eq!(v.prefix, [first]);
    assert_eq!(v.blocker, second);
    assert_eq!(v.candidates, [(second, RuledOut::Strands(stale))]);
}

#[test]
fn read_of_a_value_never_written() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    let bogus = h.r(2, "k", Some("z"), [5, 15]);
    let v = rejected(&h);
    assert_eq!(v.blocker, bogus);
    assert_eq!(v.candidates, [(bogus, RuledOut::NeverWritten)]);
    assert!(v.prefix.is_empty());
    let report = v.to_string();
    assert!(
        report.contains(
            "#1 client 2: read -> \"z\" [5, 15] observed a value that no operation wrote"
        ),
        "{report}"
    );
}

/// Two sequential reads, both overlapping one write, see the new value and then the old one: the
/// write would have to take effect, then be undone.
#[test]
fn reads_flip_flop_while_a_write_overlaps_both() {
    let mut h = H::new();
    let old = h.w(1, "k", "old", [0, 5]);
    let new = h.w(2, "k", "new", [10, 100]);
    let sees_new = h.r(3, "k", Some("new"), [20, 30]);
    let sees_old = h.r(3, "k", Some("old"), [40, 50]);
    let v = rejected(&h);
    assert_eq!(v.prefix, [old]);
    assert_eq!(v.blocker, sees_new);
    assert_eq!(
        v.candidates,
        [
            (new, RuledOut::Strands(sees_old)),
            (sees_new, RuledOut::ObservedOther)
        ]
    );
}

/// Porcupine's counterexample, in our terms: a write of "200" over [0, 100]; a read over
/// [10, 30] sees it, then a read over [40, 90], which began after the first read returned, sees
/// the key absent again.
#[test]
fn new_then_old_across_clients() {
    let mut h = H::new();
    h.w(0, "x", "200", [0, 100]);
    h.r(1, "x", Some("200"), [10, 30]);
    h.r(2, "x", None, [40, 90]);
    rejected(&h);
}

#[test]
fn lost_acknowledged_write() {
    let mut h = H::new();
    let first = h.w(1, "k", "a", [0, 10]);
    let second = h.w(2, "k", "b", [20, 30]);
    let read = h.r(3, "k", Some("a"), [40, 50]);
    let v = rejected(&h);
    assert_eq!(v.prefix, [first]);
    assert_eq!(v.blocker, second);
    assert_eq!(v.candidates, [(second, RuledOut::Strands(read))]);
}

#[test]
fn acknowledged_write_missing_entirely() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.r(2, "k", None, [20, 30]);
    rejected(&h);
}

#[test]
fn reads_after_concurrent_writes_disagree() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.w(2, "k", "b", [0, 10]);
    h.r(3, "k", Some("a"), [20, 30]);
    h.r(4, "k", Some("b"), [40, 50]);
    rejected(&h);
}

#[test]
fn deleted_value_comes_back() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.d(2, "k", [20, 30]);
    h.r(3, "k", Some("a"), [40, 50]);
    rejected(&h);
}

/// Jepsen's favourite: a timed-out write is seen, then unseen.
#[test]
fn unknown_write_seen_then_unseen() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    h.w_unknown(2, "k", "b", 20);
    h.r(3, "k", Some("b"), [30, 40]);
    h.r(3, "k", Some("a"), [50, 60]);
    rejected(&h);
}

#[test]
fn failed_write_must_not_be_observed() {
    let mut h = H::new();
    h.w(1, "k", "a", [0, 10]);
    let failed = h.write(2, "k", "b", 20);
    h.fail(failed);
    h.r(3, "k", Some("b"), [30, 40]);
    rejected(&h);
}

#[test]
fn violation_in_one_key_among_many() {
    const KEYS: [&str; 8] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
    let mut h = H::new();
    let mut bad = None;
    for round in 0..20u64 {
        let t = round * 100;
        for (i, &key) in KEYS.iter().enumerate() {
            let i = i as u64;
            let v = if round % 2 == 0 { "even" } else { "odd" };
            let prev = if round % 2 == 0 { "odd" } else { "even" };
            h.w(i, key, v, [t + i, t + 50]);
            // Key k5 in round 13 reads the previous round's value after the write completed.
            let seen = if key == "k5" && round == 13 { prev } else { v };
            let read = h.r(i + 10, key, Some(seen), [t + 60, t + 70 + i]);
            if seen != v {
                bad = Some(read);
            }
        }
    }
    let v = rejected(&h);
    assert_eq!(v.key, "k5");
    assert_eq!(v.operations, 40);
    assert_eq!(Some(v.blocker), bad);
    // The prefix runs up to the bad round: 13 rounds of a write and a read, then the write.
    assert_eq!(v.prefix.len(), 27);
}

/// The report is meant for a human reading a failed test: it names the key, the prefix and why
/// each candidate was ruled out, with the operations' ids, clients and times.
#[test]
fn report_explains_the_violation() {
    let mut h = H::new();
    h.w(1, "k", "old", [0, 5]);
    h.w(2, "k", "new", [10, 100]);
    h.r(3, "k", Some("new"), [20, 30]);
    h.r(3, "k", Some("old"), [40, 50]);
    let report = rejected(&h).to_string();
    for expected in [
        "key \"k\" is not linearizable (4 operations on it checked)",
        "a longest linearizable prefix has 1 operations, after which the key holds \"old\":\n  \
         #0 client 1: write \"old\" [0, 5]\n",
        "then #2 client 3: read -> \"new\" [20, 30] completed before it could take effect",
        "#1 client 2: write \"new\" [10, 100]: taking effect here strands \
         #3 client 3: read -> \"old\" [40, 50]: nothing left could make it observe \"old\"",
        "#2 client 3: read -> \"new\" [20, 30]: it observed \"new\", but the key holds \"old\"",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
}
