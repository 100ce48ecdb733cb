//! The entry point: split a history by key, search each key's register, explain a failure.

use std::collections::HashMap;
use std::fmt::{Debug, Write as _};
use std::hash::Hash;

use crate::history::{History, Kind, OpId, Operation, Outcome, Time};
use crate::search::{self, ABSENT, Blocked, KeyOp, State, Step, Stuck};

/// A key whose operations have no linearization: no order of them, each taking effect at one
/// instant inside its own interval, explains what the reads observed.
///
/// `Display` and `Debug` both print a readable account, so that a test's `unwrap()` shows it: a
/// longest linearizable prefix the search found, and why nothing could extend it.
#[derive(Clone, thiserror::Error)]
#[error("{report}")]
pub struct Violation<K> {
    /// The key whose sub-history is not linearizable (the first such key in the order keys first
    /// appear in the history).
    pub key: K,
    /// How many of the key's operations were checked. Left out: failed operations, reads with
    /// unknown outcome, and writes and deletes with unknown outcome whose effect no read saw.
    pub operations: usize,
    /// A longest prefix the search found, in the order the operations would take effect: it
    /// respects real time, every read in it observed the value the key held, and it leaves every
    /// remaining read a value it can still observe. Not necessarily unique, and not necessarily
    /// where the fault lies: the operations it ends with are often the ones to look at.
    pub prefix: Vec<OpId>,
    /// The operation that completed before it could take effect after `prefix`.
    pub blocker: OpId,
    /// The operations that could have come right after `prefix` (invoked before `blocker`
    /// completed), each with the reason it could not.
    pub candidates: Vec<(OpId, RuledOut)>,
    report: String,
}

/// Why an operation could not take effect right after a [`Violation`]'s prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuledOut {
    /// A read that observed another value than the key holds after the prefix.
    ObservedOther,
    /// Taking effect here would strand this read: the key would not hold the value the read
    /// observed, and no operation left could write that value again.
    Strands(OpId),
    /// It could take effect here, but every continuation after it fails.
    DeadEnd,
    /// A read of a value that no operation wrote and the key did not hold at the start. The
    /// violation then has an empty prefix: no search was needed.
    NeverWritten,
}

impl<K> Debug for Violation<K> {
    /// The report itself, so that `check(&h).unwrap()` and `assert!(.., "{v:?}")` print prose.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.report)
    }
}

/// Checks that `history` is linearizable for a map of independent registers: one per key, each
/// holding a value or absent, written by [`Kind::Write`], cleared by [`Kind::Delete`] and
/// observed by [`Kind::Read`].
///
/// Keys are checked one at a time (a register history is linearizable if and only if every
/// key's sub-history is), in the order they first appear.
///
/// # Errors
///
/// A [`Violation`] for the first key whose operations have no linearization.
pub fn check<K, V>(history: &History<K, V>) -> Result<(), Violation<K>>
where
    K: Eq + Hash + Clone + Debug,
    V: Eq + Hash + Debug,
{
    let mut keys: Vec<&K> = Vec::new();
    let mut by_key: HashMap<&K, Vec<usize>> = HashMap::new();
    for (i, op) in history.operations().iter().enumerate() {
        let ignored = match op.outcome {
            Outcome::Failed => true,
            Outcome::Unknown => matches!(op.kind, Kind::Read(_)),
            Outcome::Ok(_) => false,
        };
        if ignored {
            continue;
        }
        by_key
            .entry(&op.key)
            .or_insert_with(|| {
                keys.push(&op.key);
                Vec::new()
            })
            .push(i);
    }
    for key in keys {
        check_key(history, key, &by_key[key])?;
    }
    Ok(())
}

impl<K, V> History<K, V>
where
    K: Eq + Hash + Clone + Debug,
    V: Eq + Hash + Debug,
{
    /// [`check`] this history.
    ///
    /// # Errors
    ///
    /// As [`check`].
    pub fn check(&self) -> Result<(), Violation<K>> {
        check(self)
    }
}

/// One key's values, numbered so that the search compares and hashes `u32`s.
struct Values<'h, V> {
    index: HashMap<&'h V, State>,
    values: Vec<&'h V>,
}

impl<'h, V: Eq + Hash> Values<'h, V> {
    fn intern(&mut self, value: Option<&'h V>) -> State {
        let Some(value) = value else { return ABSENT };
        *self.index.entry(value).or_insert_with(|| {
            self.values.push(value);
            State::try_from(self.values.len()).expect("fewer than 2^32 values per key")
        })
    }
}

impl<'h, V> Values<'h, V> {
    fn get(&self, state: State) -> Option<&'h V> {
        (state != ABSENT).then(|| self.values[state as usize - 1])
    }
}

fn check_key<K, V>(history: &History<K, V>, key: &K, indices: &[usize]) -> Result<(), Violation<K>>
where
    K: Eq + Hash + Clone + Debug,
    V: Eq + Hash + Debug,
{
    let mut values = Values {
        index: HashMap::new(),
        values: Vec::new(),
    };
    let initial = values.intern(history.initial_value(key));
    let mut ops: Vec<KeyOp> = indices
        .iter()
        .map(|&i| {
            let op = &history.operations()[i];
            let step = match &op.kind {
                Kind::Write(v) => Step::Set(values.intern(Some(v))),
                Kind::Delete => Step::Set(ABSENT),
                Kind::Read(seen) => Step::Get(values.intern(seen.as_ref())),
            };
            KeyOp {
                id: OpId(i),
                step,
                invoked: op.invoked,
                completed: match op.outcome {
                    Outcome::Ok(t) => Some(t),
                    Outcome::Unknown | Outcome::Failed => None,
                },
            }
        })
        .collect();
    drop_unobserved_unknown_writes(&mut ops);
    if let Some(violation) = read_of_nothing_written(history, key, &ops, initial) {
        return Err(violation);
    }

    let search::Verdict::Violation { depth, .. } = search::search(&ops, initial, None) else {
        return Ok(());
    };
    let search::Verdict::Violation {
        stuck: Some(stuck), ..
    } = search::search(&ops, initial, Some(depth))
    else {
        unreachable!("the search is deterministic: a rerun fails at the same depth");
    };
    Err(explain(history, key, &ops, &values, &stuck))
}

/// Removes writes and deletes with unknown outcome that no completed read could have observed
/// (none that completed after the write's invocation saw the value it wrote). Such an operation
/// can always take effect after everything else, where nothing sees it, so the history is
/// linearizable with it exactly when it is without it; and each one left in would stay pending
/// to the end, doubling the configurations the search may explore. In a run with unique values,
/// that is every timed-out write that was lost or never read.
fn drop_unobserved_unknown_writes(ops: &mut Vec<KeyOp>) {
    let mut last_seen: HashMap<State, Time> = HashMap::new();
    for op in ops.iter() {
        if let (Step::Get(seen), Some(completed)) = (op.step, op.completed) {
            let last = last_seen.entry(seen).or_insert(completed);
            *last = (*last).max(completed);
        }
    }
    ops.retain(|op| match (op.step, op.completed) {
        (Step::Set(value), None) => last_seen.get(&value).is_some_and(|&t| t >= op.invoked),
        _ => true,
    });
}

/// A read that observed a value nothing could have put there, reported without a search (which
/// also relies on there being none: see `search::Outlook`).
fn read_of_nothing_written<K: Clone + Debug, V: Debug>(
    history: &History<K, V>,
    key: &K,
    ops: &[KeyOp],
    initial: State,
) -> Option<Violation<K>> {
    let written: std::collections::HashSet<State> = ops
        .iter()
        .filter_map(|op| match op.step {
            Step::Set(v) => Some(v),
            Step::Get(_) => None,
        })
        .chain([initial])
        .collect();
    let read = ops
        .iter()
        .find(|op| matches!(op.step, Step::Get(seen) if !written.contains(&seen)))?;
    let what = if initial == ABSENT {
        "no operation wrote"
    } else {
        "no operation wrote and the key did not hold at the start"
    };
    Some(Violation {
        key: key.clone(),
        operations: ops.len(),
        prefix: Vec::new(),
        blocker: read.id,
        candidates: vec![(read.id, RuledOut::NeverWritten)],
        report: format!(
            "key {key:?} is not linearizable ({} operations on it checked)\n\
             {} observed a value that {what}\n",
            ops.len(),
            describe(read.id, history.get(read.id)),
        ),
    })
}

/// How many operations of a long prefix the report lists (the last ones, nearest the problem).
const PREFIX_SHOWN: usize = 20;

fn explain<K: Clone + Debug, V: Debug>(
    history: &History<K, V>,
    key: &K,
    ops: &[KeyOp],
    values: &Values<'_, V>,
    stuck: &Stuck,
) -> Violation<K> {
    let id = |i: usize| ops[i].id;
    let describe_op = |i: usize| describe(id(i), history.get(id(i)));
    let holds = match values.get(stuck.state) {
        Some(v) => format!("holds {v:?}"),
        None => "is absent".to_owned(),
    };

    let mut report = format!(
        "key {key:?} is not linearizable ({} operations on it checked)\n",
        ops.len()
    );
    let _ = writeln!(
        report,
        "a longest linearizable prefix has {} operations, after which the key {holds}:",
        stuck.prefix.len()
    );
    let skipped = stuck.prefix.len().saturating_sub(PREFIX_SHOWN);
    if skipped > 0 {
        let _ = writeln!(report, "  ... {skipped} earlier operations");
    }
    for &i in &stuck.prefix[skipped..] {
        let _ = writeln!(report, "  {}", describe_op(i));
    }
    let _ = writeln!(
        report,
        "then {} completed before it could take effect; every operation that could come next \
         was ruled out:",
        describe_op(stuck.blocker)
    );
    let observed = |read: usize| match ops[read].step {
        Step::Get(seen) => match values.get(seen) {
            Some(v) => format!("{v:?}"),
            None => "the key absent".to_owned(),
        },
        Step::Set(_) => unreachable!("only reads are stranded or mismatched"),
    };
    let mut candidates = Vec::with_capacity(stuck.candidates.len());
    for &(i, blocked) in &stuck.candidates {
        let (why, ruled_out) = match blocked {
            Blocked::Mismatch => (
                format!("it observed {}, but the key {holds}", observed(i)),
                RuledOut::ObservedOther,
            ),
            Blocked::Strands(read) => (
                format!(
                    "taking effect here strands {}: nothing left could make it observe {}",
                    describe_op(read),
                    observed(read)
                ),
                RuledOut::Strands(id(read)),
            ),
            Blocked::DeadEnd => (
                "possible here, but every continuation after it fails".to_owned(),
                RuledOut::DeadEnd,
            ),
        };
        let _ = writeln!(report, "  {}: {why}", describe_op(i));
        candidates.push((id(i), ruled_out));
    }

    Violation {
        key: key.clone(),
        operations: ops.len(),
        prefix: stuck.prefix.iter().map(|&i| id(i)).collect(),
        blocker: id(stuck.blocker),
        candidates,
        report,
    }
}

/// `#3 client 2: read -> "a" [40, 50]`; `?` for a completion that never came.
fn describe<K, V: Debug>(id: OpId, op: &Operation<K, V>) -> String {
    let what = match &op.kind {
        Kind::Write(v) => format!("write {v:?}"),
        Kind::Delete => "delete".to_owned(),
        Kind::Read(Some(v)) => format!("read -> {v:?}"),
        Kind::Read(None) => "read -> absent".to_owned(),
    };
    let completed = match op.outcome {
        Outcome::Ok(t) => t.to_string(),
        Outcome::Unknown | Outcome::Failed => "?".to_owned(),
    };
    format!(
        "{id} client {}: {what} [{}, {completed}]",
        op.client, op.invoked
    )
}
