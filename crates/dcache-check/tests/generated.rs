//! Histories generated from a real sequential register, so their verdict is known by
//! construction: each operation is given a linearization point inside its interval, the points
//! are applied in order to a map, and every read reports what the map held at its point. The
//! checker must accept every such history, and reject it once one read reports a value nobody
//! wrote.

use std::collections::HashMap;

use bytes::Bytes;
use dcache_check::{History, Kind, Operation, Outcome};
use proptest::prelude::*;

/// One operation to generate, before times and read results are worked out.
#[derive(Clone, Debug)]
struct Spec {
    client: u8,
    key: u8,
    action: Action,
    /// Values repeat (a handful per key), so equal values written twice are exercised.
    value: u32,
    /// Ticks between the client's previous operation completing and this one's invocation.
    gap: u64,
    /// Ticks from invocation to the linearization point.
    before: u64,
    /// Ticks from the linearization point to completion.
    after: u64,
    fate: Fate,
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Write,
    Read,
    Delete,
}

#[derive(Clone, Copy, Debug)]
enum Fate {
    Acknowledged,
    /// The client gave up, but the operation took effect, possibly long after.
    TimedOutApplied,
    /// The client gave up and the operation never took effect.
    TimedOutLost,
}

/// Turns specs into a history that is linearizable by construction. Each client issues its
/// operations one after another (the next is invoked when the previous completed, or when the
/// client gave up on it), so operations of different clients overlap freely.
fn generate(specs: &[Spec]) -> History<Bytes, Bytes> {
    let mut free_at: HashMap<u8, u64> = HashMap::new();
    // (linearization point, index) of every operation that takes effect.
    let mut points: Vec<(u64, usize)> = Vec::new();
    let mut ops: Vec<Operation<Bytes, Bytes>> = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let clock = free_at.entry(s.client).or_insert(0);
        let invoked = *clock + s.gap;
        let done = invoked + s.before + s.after;
        *clock = done;
        let outcome = match s.fate {
            Fate::Acknowledged => {
                points.push((invoked + s.before, i));
                Outcome::Ok(done)
            }
            Fate::TimedOutApplied => {
                // In flight well past the client's timeout: later operations may precede it.
                points.push((invoked + s.before * 50, i));
                Outcome::Unknown
            }
            Fate::TimedOutLost => Outcome::Unknown,
        };
        let kind = match s.action {
            Action::Write => Kind::Write(Bytes::from(format!("v{}", s.value))),
            Action::Delete => Kind::Delete,
            Action::Read => Kind::Read(None),
        };
        ops.push(Operation {
            client: u64::from(s.client),
            key: Bytes::from(format!("key{}", s.key)),
            kind,
            invoked,
            outcome,
        });
    }

    // Equal points are both inside both intervals, so either order is a valid linearization.
    points.sort_unstable();
    let mut register: HashMap<Bytes, Bytes> = HashMap::new();
    for &(_, i) in &points {
        let op = &mut ops[i];
        match &mut op.kind {
            Kind::Write(v) => {
                register.insert(op.key.clone(), v.clone());
            }
            Kind::Delete => {
                register.remove(&op.key);
            }
            Kind::Read(seen) => *seen = register.get(&op.key).cloned(),
        }
    }

    let mut h = History::new();
    for op in ops {
        h.push(op);
    }
    h
}

/// Replaces one completed read's result (the `pick`-th, cyclically) with a value no write
/// wrote; returns that read's key, or `None` if the history has no completed read.
fn corrupt_a_read(
    h: &History<Bytes, Bytes>,
    pick: usize,
) -> Option<(History<Bytes, Bytes>, Bytes)> {
    let reads: Vec<usize> = (0..h.len())
        .filter(|&i| {
            let op = &h.operations()[i];
            matches!(op.kind, Kind::Read(_)) && matches!(op.outcome, Outcome::Ok(_))
        })
        .collect();
    let target = *reads.get(pick % reads.len().max(1))?;
    let mut corrupted = History::new();
    for (i, op) in h.operations().iter().enumerate() {
        let mut op = op.clone();
        if i == target {
            op.kind = Kind::Read(Some(Bytes::from_static(b"never written")));
        }
        corrupted.push(op);
    }
    Some((corrupted, h.operations()[target].key.clone()))
}

fn spec(clients: u8, keys: u8) -> impl Strategy<Value = Spec> {
    (
        0..clients,
        0..keys,
        prop_oneof![
            4 => Just(Action::Write),
            5 => Just(Action::Read),
            1 => Just(Action::Delete),
        ],
        0..4u32,
        0..5u64,
        0..10u64,
        0..10u64,
        prop_oneof![
            18 => Just(Fate::Acknowledged),
            1 => Just(Fate::TimedOutApplied),
            1 => Just(Fate::TimedOutLost),
        ],
    )
        .prop_map(
            |(client, key, action, value, gap, before, after, fate)| Spec {
                client,
                key,
                action,
                value,
                gap,
                before,
                after,
                fate,
            },
        )
}

/// Gives every write its own value, as a test against a real cluster would: a read then names
/// the write it saw, which lets the checker cut off wrong orders early.
fn unique_values(mut specs: Vec<Spec>) -> Vec<Spec> {
    for (i, s) in specs.iter_mut().enumerate() {
        s.value = i as u32;
    }
    specs
}

proptest! {
    #[test]
    fn histories_of_a_real_register_with_unique_values_are_accepted(
        specs in prop::collection::vec(spec(5, 3), 1..150).prop_map(unique_values),
    ) {
        let h = generate(&specs);
        if let Err(v) = h.check() {
            return Err(TestCaseError::fail(format!("rejected a linearizable history:\n{v}")));
        }
    }

    #[test]
    fn histories_of_a_real_register_are_accepted(
        specs in prop::collection::vec(spec(5, 3), 1..150),
    ) {
        let h = generate(&specs);
        if let Err(v) = h.check() {
            return Err(TestCaseError::fail(format!("rejected a linearizable history:\n{v}")));
        }
    }

    #[test]
    fn a_read_of_a_never_written_value_is_rejected(
        specs in prop::collection::vec(spec(5, 3), 1..150),
        pick in any::<usize>(),
    ) {
        let h = generate(&specs);
        let Some((corrupted, key)) = corrupt_a_read(&h, pick) else {
            return Ok(()); // no completed read to corrupt
        };
        match corrupted.check() {
            Ok(()) => return Err(TestCaseError::fail("accepted a read of a value never written")),
            Err(v) => prop_assert_eq!(v.key, key),
        }
    }
}

/// SplitMix64: a seeded source for the large history, so a failure replays from the seed.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// The size the crate documents as cheap to check: 4,000 operations over 40 keys from 5 clients,
/// 4 values per key, about 3% of operations timed out. (Measured, not asserted: see the crate
/// docs.)
#[test]
fn thousands_of_operations_over_many_keys() {
    const SEED: u64 = 0x5eed_0010;
    println!("seed {SEED:#x}");
    let mut rng = SplitMix(SEED);
    let specs: Vec<Spec> = (0..4000)
        .map(|_| Spec {
            client: rng.below(5) as u8,
            key: rng.below(40) as u8,
            action: match rng.below(10) {
                0..4 => Action::Write,
                4..9 => Action::Read,
                _ => Action::Delete,
            },
            value: rng.below(4) as u32,
            gap: rng.below(5),
            before: rng.below(10),
            after: rng.below(10),
            fate: match rng.below(64) {
                0 => Fate::TimedOutApplied,
                1 => Fate::TimedOutLost,
                _ => Fate::Acknowledged,
            },
        })
        .collect();
    let h = generate(&specs);
    if let Err(v) = h.check() {
        panic!("rejected a linearizable history:\n{v}");
    }
    let (corrupted, key) = corrupt_a_read(&h, rng.below(1000) as usize).expect("reads exist");
    let v = corrupted
        .check()
        .expect_err("accepted a read of a value never written");
    assert_eq!(v.key, key);
}
