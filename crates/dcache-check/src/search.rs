//! Wing & Gong's search for one register, with Lowe's memoization of (linearized set, state).
//!
//! The history becomes a doubly linked list of events, calls and returns, in time order. The
//! search walks it from the front. At a call, it tries to make that operation take effect now:
//! if the register allows it (a read must observe the current value) and the resulting
//! (set of linearized operations, register value) pair has not been seen before, it records the
//! choice on a stack, unlinks the call and its return, and starts again from the front. At a
//! return, the operation it belongs to should already have taken effect and did not, so the last
//! choice was wrong: pop it, relink the operation and try the next call after it. The history is
//! linearizable when the list empties, and is not when the stack is empty at a return.
//!
//! Memoization makes the search finite in practice: two paths that linearized the same set and
//! left the same value have the same future, so the second one is cut off.

use std::collections::HashMap;

use crate::history::{OpId, Time};

/// A register value, interned per key: [`ABSENT`] or an index into the key's value table plus 1.
pub(crate) type State = u32;

pub(crate) const ABSENT: State = 0;

/// One operation of one key, reduced to what the register model needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyOp {
    pub id: OpId,
    pub step: Step,
    pub invoked: Time,
    /// `None`: the outcome is unknown, so the operation may take effect arbitrarily late.
    pub completed: Option<Time>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Writes and deletes (a delete writes [`ABSENT`]).
    Set(State),
    /// A read that observed this state.
    Get(State),
}

impl Step {
    /// The register's state after this step, or `None` if the step cannot happen in `state`.
    pub(crate) fn apply(self, state: State) -> Option<State> {
        match self {
            Step::Set(new) => Some(new),
            Step::Get(seen) => (seen == state).then_some(state),
        }
    }
}

/// Where a failed search got furthest: the deepest point at which it had to backtrack.
#[derive(Debug)]
pub(crate) struct Stuck {
    /// Indices (into the key's ops) of a longest linearizable prefix, in linearization order.
    pub prefix: Vec<usize>,
    /// The register's state after `prefix`.
    pub state: State,
    /// The operation whose completion came before it could take effect.
    pub blocker: usize,
    /// Every operation that could have come next (invoked before `blocker` completed), each
    /// with the reason it could not.
    pub candidates: Vec<(usize, Blocked)>,
}

/// Why an operation could not come next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// A read of another value than the register holds.
    Mismatch,
    /// Taking effect would leave this read (an index into the key's ops) unsatisfiable.
    Strands(usize),
    /// Allowed, but every continuation after it fails.
    DeadEnd,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// The event list. Node 0 is the head sentinel; every other node is the call or the return of
/// one operation. Lifting an operation unlinks both its nodes but leaves their own links intact,
/// so unlifting it (in reverse order) puts them back exactly where they were.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation a node belongs to.
    op: Vec<usize>,
    /// For a call node, its return node; `NIL` for return nodes and the head.
    ret: Vec<usize>,
}

impl Events {
    fn new(ops: &[KeyOp]) -> Self {
        // (finite?, time, return?, op): completions at the same time as an invocation come after
        // it, so touching intervals count as concurrent. Unknown outcomes come after everything.
        let mut order: Vec<(bool, Time, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            order.push((false, op.invoked, false, i));
            match op.completed {
                Some(t) => order.push((false, t, true, i)),
                None => order.push((true, 0, true, i)),
            }
        }
        order.sort_unstable();

        let nodes = order.len() + 1;
        let mut events = Events {
            next: (1..=nodes).collect(),
            prev: (0..nodes).map(|n| n.wrapping_sub(1)).collect(),
            op: vec![NIL; nodes],
            ret: vec![NIL; nodes],
        };
        events.next[nodes - 1] = NIL;
        let mut call_node = vec![NIL; ops.len()];
        for (n, &(_, _, is_return, i)) in order.iter().enumerate() {
            let node = n + 1;
            events.op[node] = i;
            if is_return {
                events.ret[call_node[i]] = node;
            } else {
                call_node[i] = node;
            }
        }
        events
    }

    fn is_call(&self, node: usize) -> bool {
        self.ret[node] != NIL
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.ret[call]);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.ret[call]);
        self.relink(call);
    }
}

/// The set of linearized operations, with a hash kept up to date as bits flip (Zobrist
/// hashing), so probing the memo costs O(1) until a hash matches.
struct Linearized {
    bits: Vec<u64>,
    hash: u64,
}

impl Linearized {
    fn new(n: usize) -> Self {
        Self {
            bits: vec![0; n.div_ceil(64)],
            hash: 0,
        }
    }

    fn contains(&self, op: usize) -> bool {
        self.bits[op / 64] & (1 << (op % 64)) != 0
    }

    fn flip(&mut self, op: usize) {
        self.bits[op / 64] ^= 1 << (op % 64);
        self.hash ^= mix(op as u64);
    }
}

/// SplitMix64's finalizer: spreads small integers over 64 bits.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A linearized set (its bits) and the register's state after it.
type Configuration = (Box<[u64]>, State);

/// The (linearized set, state) pairs already explored, bucketed by hash.
#[derive(Default)]
struct Memo {
    seen: HashMap<u64, Vec<Configuration>>,
}

impl Memo {
    /// Records the pair; `false` if it was already there.
    fn insert(&mut self, set: &Linearized, state: State) -> bool {
        let bucket = self
            .seen
            .entry(set.hash ^ mix(u64::from(state) ^ 0xa5a5_a5a5_0000_0000))
            .or_default();
        if bucket
            .iter()
            .any(|(bits, s)| *s == state && **bits == *set.bits)
        {
            return false;
        }
        bucket.push((set.bits.clone().into_boxed_slice(), state));
        true
    }
}

/// For each value, how many unlinearized reads observed it and how many unlinearized writes (or
/// deletes, for [`ABSENT`]) can still produce it. A value is doomed when some read still needs it,
/// the register does not hold it now, and nothing left can write it: no continuation can place
/// that read, so a configuration with a doomed value fails and is not explored. With unique
/// values this catches a wrong order of two writes as soon as the second is placed, instead of
/// when the read that saw the first one completes, possibly many operations later.
///
/// Writes with unknown outcome count among those that can still produce a value, so they keep
/// it alive. The check relies on no value being doomed at the start (a read of a value nothing
/// wrote), which the caller reports before searching; were one doomed, every write would be cut
/// off and the verdict, a violation, would still be right, only less well explained.
#[derive(Clone)]
struct Outlook {
    readers: Vec<u32>,
    writers: Vec<u32>,
    /// How many values are doomed in the current configuration.
    doomed: usize,
}

impl Outlook {
    fn new(ops: &[KeyOp], initial: State) -> Self {
        let states = ops
            .iter()
            .map(|op| match op.step {
                Step::Set(v) | Step::Get(v) => v,
            })
            .chain([initial])
            .max()
            .map_or(1, |max| max as usize + 1);
        let mut outlook = Outlook {
            readers: vec![0; states],
            writers: vec![0; states],
            doomed: 0,
        };
        for op in ops {
            match op.step {
                Step::Set(v) => outlook.writers[v as usize] += 1,
                Step::Get(v) => outlook.readers[v as usize] += 1,
            }
        }
        outlook.doomed = (0..states)
            .filter(|&v| outlook.is_doomed(v as State, initial))
            .count();
        outlook
    }

    fn is_doomed(&self, value: State, state: State) -> bool {
        let v = value as usize;
        self.readers[v] > 0 && self.writers[v] == 0 && value != state
    }

    /// Doomed values among `before` and `after` (counted once if equal) with the register in
    /// `state`. No other value's status changes when a step takes the register from `before`
    /// to `after`.
    fn doomed_among(&self, before: State, after: State, state: State) -> usize {
        usize::from(self.is_doomed(before, state))
            + usize::from(after != before && self.is_doomed(after, state))
    }

    /// Accounts for `step` taking effect, moving the register from `before` to `after`
    /// (`undo`: for it being undone, back from `after` to `before`).
    fn apply(&mut self, step: Step, before: State, after: State, undo: bool) {
        let (from, to) = if undo {
            (after, before)
        } else {
            (before, after)
        };
        let old = self.doomed_among(before, after, from);
        let counts = match step {
            Step::Set(v) => &mut self.writers[v as usize],
            Step::Get(v) => &mut self.readers[v as usize],
        };
        if undo {
            *counts += 1;
        } else {
            *counts -= 1;
        }
        self.doomed = self.doomed - old + self.doomed_among(before, after, to);
    }
}

/// What one run of the search found.
pub(crate) enum Verdict {
    Linearizable,
    /// Not linearizable; the stack depth at the deepest backtrack, and the details if the run
    /// was asked to capture them at that depth.
    Violation {
        depth: usize,
        stuck: Option<Stuck>,
    },
}

/// A choice on the search's stack: the call node made to take effect, the state before it, and
/// whether it was forced (see [`search`]).
#[derive(Clone, Copy)]
struct Choice {
    call: usize,
    before: State,
    forced: bool,
}

/// Searches for a linearization of `ops` (one key's operations) starting from `initial`.
///
/// One refinement over the plain search: a read that may take effect now and observed the current
/// value is taken without trying alternatives (a forced choice). If any linearization continues
/// from here, one continues with that read first: moving a read earlier changes no state, and
/// nothing pending has to precede it, since it was invoked before any of them completed. So when
/// a forced choice is undone, the configuration before it is known to fail too, and the search
/// backs up past it. Concurrent reads then cost nothing to order: one key with 20 clients and 4
/// values took 84 s to check without this and 5 s with it (debug build; the crate docs have the
/// figures with both refinements).
///
/// Another: configurations in which some read can no longer be placed are cut off as soon as
/// they arise (see [`Outlook`]).
///
/// With `capture_at`, stops at the first backtrack from a return at that stack depth and
/// describes it. The search is deterministic, so a second run with the depth a failed run
/// reported stops at that run's deepest point: failures pay for their explanation, successes
/// never do.
pub(crate) fn search(ops: &[KeyOp], initial: State, capture_at: Option<usize>) -> Verdict {
    let mut events = Events::new(ops);
    let mut linearized = Linearized::new(ops.len());
    let mut memo = Memo::default();
    let mut outlook = Outlook::new(ops, initial);
    let mut stack: Vec<Choice> = Vec::new();
    let mut state = initial;
    let mut deepest = 0;
    let mut node = events.next[HEAD];

    while events.next[HEAD] != NIL {
        if events.is_call(node) {
            let op = events.op[node];
            let step = ops[op].step;
            if let Some(after) = step.apply(state) {
                let forced = matches!(step, Step::Get(_));
                outlook.apply(step, state, after, false);
                if outlook.doomed > 0 {
                    // Only a write can doom a value (a read leaves the register as it is).
                    outlook.apply(step, state, after, true);
                    node = events.next[node];
                    continue;
                }
                linearized.flip(op);
                if memo.insert(&linearized, after) {
                    stack.push(Choice {
                        call: node,
                        before: state,
                        forced,
                    });
                    state = after;
                    events.lift(node);
                    node = events.next[HEAD];
                    continue;
                }
                linearized.flip(op);
                outlook.apply(step, state, after, true);
                if !forced {
                    node = events.next[node];
                    continue;
                }
                // Taking the read leads to a configuration already explored, and failed (it
                // has one more operation than any configuration on the stack, so it is not one
                // of them): this configuration fails as well.
            } else {
                node = events.next[node];
                continue;
            }
        } else {
            // The list only ever ends in a return, so a walk never runs off its end.
            deepest = deepest.max(stack.len());
            if capture_at == Some(stack.len()) {
                let stuck = describe(ops, &events, &linearized, &outlook, &stack, state, node);
                return Verdict::Violation {
                    depth: stack.len(),
                    stuck: Some(stuck),
                };
            }
        }
        // Undo choices up to and including the last free one, then try what follows it.
        loop {
            let Some(choice) = stack.pop() else {
                return Verdict::Violation {
                    depth: deepest,
                    stuck: None,
                };
            };
            let op = events.op[choice.call];
            outlook.apply(ops[op].step, choice.before, state, true);
            state = choice.before;
            linearized.flip(op);
            events.unlift(choice.call);
            node = events.next[choice.call];
            if !choice.forced {
                break;
            }
        }
    }
    Verdict::Linearizable
}

fn describe(
    ops: &[KeyOp],
    events: &Events,
    linearized: &Linearized,
    outlook: &Outlook,
    stack: &[Choice],
    state: State,
    blocker_return: usize,
) -> Stuck {
    let mut candidates = Vec::new();
    let mut node = events.next[HEAD];
    while node != blocker_return {
        if events.is_call(node) {
            let op = events.op[node];
            let step = ops[op].step;
            let blocked = match step.apply(state) {
                None => Blocked::Mismatch,
                Some(after) => {
                    let mut then = outlook.clone();
                    then.apply(step, state, after, false);
                    let stranded = (0..then.readers.len() as State)
                        .find(|&v| then.is_doomed(v, after))
                        .and_then(|v| {
                            (0..ops.len())
                                .find(|&r| ops[r].step == Step::Get(v) && !linearized.contains(r))
                        });
                    stranded.map_or(Blocked::DeadEnd, Blocked::Strands)
                }
            };
            candidates.push((op, blocked));
        }
        node = events.next[node];
    }
    Stuck {
        prefix: stack.iter().map(|c| events.op[c.call]).collect(),
        state,
        blocker: events.op[blocker_return],
        candidates,
    }
}
