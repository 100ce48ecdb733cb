//! Sorted sets: unique members, each with a score, ordered by (score, member).
//!
//! A map from member to score beside an ordered index of (score, member); `mem` (both copies of
//! each member in allocator size classes, with their nodes' overhead) is kept up to date by
//! every change. Scores are never NaN (the commands refuse it, and the effect decoder too), so
//! that the order is total.

use std::collections::BTreeSet;

use hashbrown::HashMap;

use crate::memory::alloc_size;

/// Bytes that a member costs beyond its two allocations: its bucket in the map (a boxed slice
/// and a score, with the control byte) and its place in the ordered index.
const MEMBER_OVERHEAD: usize = (24 + 1) * 8 / 7 + 40;

/// A score ordered totally: -0.0 equals 0.0, and NaN never occurs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.partial_cmp(&other.0).expect("scores are never NaN")
    }
}

/// A sorted set value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ZSetValue {
    scores: HashMap<Box<[u8]>, Score>,
    order: BTreeSet<(Score, Box<[u8]>)>,
    mem: usize,
}

fn member_mem(member: &[u8]) -> usize {
    2 * alloc_size(member.len()) + MEMBER_OVERHEAD
}

impl ZSetValue {
    #[must_use]
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Bytes the members hold, in allocator size classes, with per-member overhead.
    #[must_use]
    pub fn mem(&self) -> usize {
        self.mem
    }

    #[must_use]
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).map(|s| s.0)
    }

    /// Sets a member's score; true when the member is new.
    ///
    /// # Panics
    /// When `score` is NaN.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        assert!(!score.is_nan(), "a sorted set score is never NaN");
        let new = match self.scores.get_mut(member) {
            Some(old) => {
                let was = std::mem::replace(old, Score(score));
                self.order.remove(&(was, member.into()));
                false
            }
            None => {
                self.scores.insert(member.into(), Score(score));
                self.mem += member_mem(member);
                true
            }
        };
        self.order.insert((Score(score), member.into()));
        new
    }

    /// Removes a member; true when it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(score) => {
                self.order.remove(&(score, member.into()));
                self.mem -= member_mem(member);
                true
            }
            None => false,
        }
    }

    /// Members with their scores, lowest score first (ties by member, bytewise).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], f64)> + ExactSizeIterator {
        self.order.iter().map(|(s, m)| (&**m, s.0))
    }
}

impl std::fmt::Debug for ZSetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(m, s)| (String::from_utf8_lossy(m), s)))
            .finish()
    }
}
