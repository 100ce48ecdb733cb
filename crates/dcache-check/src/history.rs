//! What clients did: operations on keys, each with the time it was invoked and, if the client
//! heard back, the time it completed.

use std::collections::HashMap;
use std::hash::Hash;

/// Who issued an operation. Only used in reports: linearizability orders operations by real
/// time alone, so a client that reconnects may keep its id or take a new one.
pub type ClientId = u64;

/// A point in time, in any unit the recorder likes (nanoseconds since the test started,
/// simulated milliseconds), as long as all operations of one history share it.
pub type Time = u64;

/// Names one operation of a [`History`]: its position in the order operations were added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub(crate) usize);

impl OpId {
    /// The position of the operation in [`History::operations`].
    #[must_use]
    pub fn index(self) -> usize {
        self.0
    }
}

impl std::fmt::Display for OpId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What an operation did to its key's register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind<V> {
    /// Set the key to a value (`SET`).
    Write(V),
    /// Remove the key (`DEL`): afterwards it reads as absent.
    Delete,
    /// Read the key (`GET`); `None` is a miss. Meaningful only once the read completed: the
    /// builder records `Read(None)` at invocation and [`History::read_ok`] fills it in.
    Read(Option<V>),
}

/// How an operation ended, as far as its client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The client got a reply at this time: the operation took effect once, at some instant
    /// between its invocation and this time.
    Ok(Time),
    /// No reply (timed out, connection lost, client crashed): the operation may never take
    /// effect, or take effect at any instant after its invocation, however late. Checked as if it
    /// completed after everything else (as Knossos and Porcupine do). A read with this outcome
    /// observed nothing and constrains nothing, so the checker drops it.
    Unknown,
    /// The operation certainly did not take effect (an error reply such as `-MOVED` or `-OOM`
    /// that the server sends before applying anything). The checker drops it.
    Failed,
}

/// One operation: who, on which key, what, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<K, V> {
    pub client: ClientId,
    pub key: K,
    pub kind: Kind<V>,
    pub invoked: Time,
    pub outcome: Outcome,
}

/// A history: every operation some clients issued, in any order, plus the value each key held
/// before the first of them (absent unless [`History::initial`] says otherwise).
///
/// Record a run with the builder, invocation first, completion when the reply arrives:
///
/// ```
/// use dcache_check::History;
///
/// let mut h: History<&str, &str> = History::new();
/// let w = h.write(1, "k", "v1", 10);
/// let r = h.read(2, "k", 12);
/// h.ok(w, 20);
/// h.read_ok(r, Some("v1"), 25);
/// let lost = h.write(1, "k", "v2", 30); // never completed: outcome unknown
/// # let _ = lost;
/// assert!(h.check().is_ok());
/// ```
///
/// or push whole [`Operation`]s, e.g. from a log.
#[derive(Clone, Debug)]
pub struct History<K, V> {
    ops: Vec<Operation<K, V>>,
    initial: HashMap<K, V>,
}

impl<K: Eq + Hash, V> Default for History<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash, V> History<K, V> {
    #[must_use]
    pub fn new() -> Self {
        Self {
            ops: Vec::new(),
            initial: HashMap::new(),
        }
    }

    /// Says that `key` held `value` before any operation of the history.
    pub fn initial(&mut self, key: K, value: V) -> &mut Self {
        self.initial.insert(key, value);
        self
    }

    /// Adds a whole operation.
    ///
    /// # Panics
    ///
    /// If it completed before it was invoked.
    pub fn push(&mut self, op: Operation<K, V>) -> OpId {
        if let Outcome::Ok(completed) = op.outcome {
            assert!(
                completed >= op.invoked,
                "operation completed at {completed}, before its invocation at {}",
                op.invoked
            );
        }
        self.ops.push(op);
        OpId(self.ops.len() - 1)
    }

    /// Records the invocation of `SET key value`; its outcome stays unknown until [`Self::ok`]
    /// or [`Self::fail`].
    pub fn write(&mut self, client: ClientId, key: K, value: V, at: Time) -> OpId {
        self.invoke(client, key, Kind::Write(value), at)
    }

    /// Records the invocation of `DEL key`; its outcome stays unknown until [`Self::ok`] or
    /// [`Self::fail`].
    pub fn delete(&mut self, client: ClientId, key: K, at: Time) -> OpId {
        self.invoke(client, key, Kind::Delete, at)
    }

    /// Records the invocation of `GET key`; complete it with [`Self::read_ok`].
    pub fn read(&mut self, client: ClientId, key: K, at: Time) -> OpId {
        self.invoke(client, key, Kind::Read(None), at)
    }

    fn invoke(&mut self, client: ClientId, key: K, kind: Kind<V>, at: Time) -> OpId {
        self.push(Operation {
            client,
            key,
            kind,
            invoked: at,
            outcome: Outcome::Unknown,
        })
    }

    /// Records that a write or delete was acknowledged at `at`.
    ///
    /// # Panics
    ///
    /// If `id` is a read (use [`Self::read_ok`]), is already completed or failed, or `at` is
    /// before its invocation.
    pub fn ok(&mut self, id: OpId, at: Time) {
        let op = self.pending(id, at);
        assert!(
            !matches!(op.kind, Kind::Read(_)),
            "{id} is a read: complete it with read_ok"
        );
        op.outcome = Outcome::Ok(at);
    }

    /// Records that a read returned `observed` (`None`: a miss) at `at`.
    ///
    /// # Panics
    ///
    /// If `id` is not a read, is already completed or failed, or `at` is before its invocation.
    pub fn read_ok(&mut self, id: OpId, observed: Option<V>, at: Time) {
        let op = self.pending(id, at);
        assert!(
            matches!(op.kind, Kind::Read(_)),
            "{id} is not a read: complete it with ok"
        );
        op.kind = Kind::Read(observed);
        op.outcome = Outcome::Ok(at);
    }

    /// Records that an operation certainly did not take effect.
    ///
    /// # Panics
    ///
    /// If `id` is already completed or failed.
    pub fn fail(&mut self, id: OpId) {
        let op = self.pending(id, Time::MAX);
        op.outcome = Outcome::Failed;
    }

    fn pending(&mut self, id: OpId, at: Time) -> &mut Operation<K, V> {
        let op = &mut self.ops[id.0];
        assert_eq!(op.outcome, Outcome::Unknown, "{id} already has an outcome");
        assert!(
            at >= op.invoked,
            "{id} completed at {at}, before its invocation at {}",
            op.invoked
        );
        op
    }

    /// The value `key` held before the history began, if any.
    #[must_use]
    pub fn initial_value(&self, key: &K) -> Option<&V> {
        self.initial.get(key)
    }
}

impl<K, V> History<K, V> {
    /// Every operation, indexed by [`OpId::index`].
    #[must_use]
    pub fn operations(&self) -> &[Operation<K, V>] {
        &self.ops
    }

    /// The operation `id` names.
    #[must_use]
    pub fn get(&self, id: OpId) -> &Operation<K, V> {
        &self.ops[id.0]
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
