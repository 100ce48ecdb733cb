//! Sorted sets: unique members, each with a score, ordered by (score, member).
//!
//! Two encodings, as in Redis, picked by size ([`ZSetLimits`], Redis's
//! `zset-max-listpack-entries` / `zset-max-listpack-value`):
//!
//! ```text
//!   listpack (small):  one buffer of packed entries, in order
//!     [ head | len? | member bytes | score bytes ] [ … ] …
//!       head: one byte, (member length << 4) | score code
//!         member length 0-14, or 15: the length follows as a varint (len)
//!         score code 0-7: that integer, no score bytes; 8-14: an integer in 1-7 zigzag
//!         bytes; 15: an f64 in eight
//!       no back-length: a reverse read walks forwards (see `PackedIter`)
//!   skiplist (large):  an arena of treap nodes with subtree sizes, plus a member → node index
//!     nodes: Vec<Node { member, score, left, right, size, priority }>
//!     index: HashTable<u32>   (hashes the member stored in its node: each member is kept once)
//! ```
//!
//! The large form answers rank, select-by-rank and range boundaries in O(log n) expected (a
//! treap whose priorities come from the per-value random hasher, so that no choice of members
//! can unbalance it); iteration from any rank costs O(log n) to start and O(1) amortized per
//! step, both ways. The small form scans, which for at most a few hundred short entries is
//! faster than following pointers and costs 1 to 9 bytes per member beyond its bytes for a
//! member under 15 bytes (one head byte, and an integer score, like Redis's listpack keeps one,
//! in 0 to 7 bytes: none for 0 to 7; any other score in 8), one or two more for a longer one.
//!
//! A set grows into the large form when an insert would break the limits; it goes back only
//! when a command asks ([`ZSetValue::compact`], which Redis's STORE commands do). `mem` is a
//! function of the contents, kept up to date by every change. Scores are never NaN (the
//! commands refuse it, and the effect decoder too), so that the order is total; -0.0 and 0.0
//! are equal in the order (ties go by member); the large form keeps the sign, the small one
//! stores 0, as Redis's two encodings do.

use crate::memory::{MAX_PACKED_LEN, alloc_size};
use crate::varint;
use std::cmp::Ordering;
#[cfg(test)]
use tree::NODE_OVERHEAD;
use tree::Tree;
pub use tree::TreeIter;

mod tree;

/// When a sorted set leaves its compact form: more than `entries` members, or a member longer
/// than `value` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZSetLimits {
    pub entries: usize,
    pub value: usize,
}

impl Default for ZSetLimits {
    /// Redis's defaults: 128 entries, 64 bytes.
    fn default() -> Self {
        Self {
            entries: 128,
            value: 64,
        }
    }
}

/// The order of entries: by score, then by member bytewise.
fn order(a: (f64, &[u8]), b: (f64, &[u8])) -> Ordering {
    a.0.partial_cmp(&b.0)
        .expect("scores are never NaN")
        .then_with(|| a.1.cmp(b.1))
}

/// A sorted set value.
#[derive(Clone)]
pub struct ZSetValue {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Packed(Packed),
    /// Boxed: the tree is large, and every aggregate's cell in the shard's side table is as
    /// large as the largest value type.
    Tree(Box<Tree>),
}

impl Default for ZSetValue {
    fn default() -> Self {
        Self {
            repr: Repr::Packed(Packed::default()),
        }
    }
}

/// A sorted set, borrowed: an owned [`ZSetValue`] seen through [`ZSetValue::view`], or a small
/// set held inline in its key's entry. Carries every read the owned set has.
#[derive(Clone, Copy)]
pub struct ZSetRef<'a>(RefRepr<'a>);

#[derive(Clone, Copy)]
enum RefRepr<'a> {
    Packed(PackedRef<'a>),
    Tree(&'a Tree),
}

impl<'a> ZSetRef<'a> {
    /// A compact set of `len` members encoded as `buf` (as [`ZSetRef::packed_parts`] gave).
    pub(crate) fn packed(buf: &'a [u8], len: usize) -> Self {
        ZSetRef(RefRepr::Packed(PackedRef { buf, len }))
    }

    /// The compact form's parts, `(bytes, len)`; `None` for the large form.
    pub(crate) fn packed_parts(self) -> Option<(&'a [u8], usize)> {
        match self.0 {
            RefRepr::Packed(p) => Some((p.buf, p.len)),
            RefRepr::Tree(_) => None,
        }
    }

    #[must_use]
    pub fn len(self) -> usize {
        match self.0 {
            RefRepr::Packed(p) => p.len,
            RefRepr::Tree(t) => t.nodes.len(),
        }
    }

    #[must_use]
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Bytes the members hold, in allocator size classes, with per-member overhead.
    #[must_use]
    pub fn mem(self) -> usize {
        match self.0 {
            RefRepr::Packed(p) => alloc_size(p.buf.len()),
            RefRepr::Tree(t) => t.mem,
        }
    }

    /// Whether the set is in its compact form (Redis's `listpack`; `skiplist` otherwise).
    #[must_use]
    pub fn is_listpack(self) -> bool {
        matches!(self.0, RefRepr::Packed(_))
    }

    #[must_use]
    pub fn score(self, member: &[u8]) -> Option<f64> {
        match self.0 {
            RefRepr::Packed(p) => p.find(member).map(|(_, s)| s),
            RefRepr::Tree(t) => t.find(member).map(|i| t.nodes[i as usize].score),
        }
    }

    /// Members with their scores, lowest score first (ties by member, bytewise).
    #[must_use]
    pub fn iter(self) -> Iter<'a> {
        self.range_by_rank(0, self.len())
    }

    /// The members of ranks `start..end` (0 is the lowest; clamped to the set), in order, both
    /// ways. O(log n) to start in the large form.
    #[must_use]
    pub fn range_by_rank(self, start: usize, end: usize) -> Iter<'a> {
        let end = end.min(self.len());
        let start = start.min(end);
        match self.0 {
            RefRepr::Packed(p) => Iter::Packed(p.range(start, end)),
            RefRepr::Tree(t) => Iter::Tree(t.range(start, end)),
        }
    }

    /// The member of rank `rank`, with its score.
    #[must_use]
    pub fn get_by_rank(self, rank: usize) -> Option<(&'a [u8], f64)> {
        self.range_by_rank(rank, rank.saturating_add(1)).next()
    }

    /// A member's rank (0 for the lowest), if it is there. O(log n) in the large form.
    #[must_use]
    pub fn rank(self, member: &[u8]) -> Option<usize> {
        match self.0 {
            RefRepr::Packed(p) => p.position(member),
            RefRepr::Tree(t) => t.find(member).map(|i| t.rank(i)),
        }
    }

    /// How many members come before the first for which `before` is false: `before` must hold
    /// for a prefix of the order and not after (as `slice::partition_point`). This is how ranges
    /// by score or by member find their ends, in O(log n) in the large form.
    pub fn partition_point(self, mut before: impl FnMut(&[u8], f64) -> bool) -> usize {
        match self.0 {
            RefRepr::Packed(p) => p.range(0, p.len).take_while(|&(m, s)| before(m, s)).count(),
            RefRepr::Tree(t) => t.partition_point(before),
        }
    }

    /// An owned copy, in the same encoding.
    #[must_use]
    pub fn into_owned(self) -> ZSetValue {
        let repr = match self.0 {
            RefRepr::Packed(p) => Repr::Packed(Packed {
                buf: p.buf.to_vec(),
                len: p.len,
            }),
            RefRepr::Tree(t) => Repr::Tree(Box::new(t.clone())),
        };
        ZSetValue { repr }
    }
}

impl PartialEq for ZSetRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|((m1, s1), (m2, s2))| m1 == m2 && s1.to_bits() == s2.to_bits())
    }
}

impl Eq for ZSetRef<'_> {}

impl std::fmt::Debug for ZSetRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(m, s)| (String::from_utf8_lossy(m), s)))
            .finish()
    }
}

impl ZSetValue {
    /// The set, borrowed, with its reads.
    #[must_use]
    pub fn view(&self) -> ZSetRef<'_> {
        ZSetRef(match &self.repr {
            Repr::Packed(p) => RefRepr::Packed(p.as_ref()),
            Repr::Tree(t) => RefRepr::Tree(t),
        })
    }

    /// An empty set in the encoding that `len` members of at most `longest` bytes would take.
    #[must_use]
    pub fn for_size(len: usize, longest: usize, limits: ZSetLimits) -> Self {
        if len <= limits.entries && longest <= limits.value {
            Self::default()
        } else {
            Self {
                repr: Repr::Tree(Box::default()),
            }
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.view().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the members hold, in allocator size classes, with per-member overhead.
    #[must_use]
    pub fn mem(&self) -> usize {
        self.view().mem()
    }

    /// Whether the set is in its compact form (Redis's `listpack`; `skiplist` otherwise).
    #[must_use]
    pub fn is_listpack(&self) -> bool {
        self.view().is_listpack()
    }

    #[must_use]
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.view().score(member)
    }

    /// Sets a member's score; true when the member is new. Grows into the large form past the
    /// default limits: for tests and tools. A command passes the configured limits
    /// ([`ZSetValue::insert_with`]); a copy from another node keeps its sender's form (see
    /// [`crate::effect`]).
    ///
    /// # Panics
    /// When `score` is NaN.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        self.insert_with(member, score, ZSetLimits::default())
    }

    /// Sets a member's score; true when the member is new. A new member that would take the
    /// set past `limits` moves it into the large form first.
    ///
    /// # Panics
    /// When `score` is NaN.
    pub fn insert_with(&mut self, member: &[u8], score: f64, limits: ZSetLimits) -> bool {
        assert!(!score.is_nan(), "a sorted set score is never NaN");
        if let Repr::Packed(p) = &mut self.repr {
            match p.as_ref().find(member) {
                Some((at, old)) => {
                    if old.to_bits() == score.to_bits() {
                        return false;
                    }
                    let old_len = skip(&p.buf, at) - at;
                    if p.buf.len() - old_len + packed_len(member.len(), score) <= MAX_PACKED_LEN {
                        p.remove_at(at);
                        p.insert(member, score);
                        return false;
                    }
                    self.grow();
                }
                // Whatever the limits, a compact set stays within `MAX_PACKED_LEN` (Redis's
                // `lpSafeToAdd`), so that it always fits one effect.
                None if p.len < limits.entries
                    && member.len() <= limits.value
                    && p.buf.len() + packed_len(member.len(), score) <= MAX_PACKED_LEN =>
                {
                    p.insert(member, score);
                    return true;
                }
                None => self.grow(),
            }
        }
        match &mut self.repr {
            Repr::Tree(t) => t.insert(member, score),
            Repr::Packed(_) => unreachable!("grown above"),
        }
    }

    /// An empty set in the large form, which it keeps whatever its size (a copy of a large set,
    /// or a part of one, as [`crate::effect`] carries them).
    pub(crate) fn large() -> Self {
        Self {
            repr: Repr::Tree(Box::default()),
        }
    }

    /// A set of `members`, in any order, in the compact form or the large one, with no limit but
    /// `MAX_PACKED_LEN` (past which it is large): a copy of another node's set. The members must
    /// be distinct for the compact form (a copy's decoder checks that); the large form takes a
    /// member that comes again as a change of its score. Scores must not be NaN.
    pub(crate) fn of_members(compact: bool, mut members: Vec<(&[u8], f64)>) -> Self {
        if compact {
            members.sort_unstable_by(|a, b| order((a.1, a.0), (b.1, b.0)));
            let len: usize = members.iter().map(|(m, s)| packed_len(m.len(), *s)).sum();
            if len <= MAX_PACKED_LEN {
                let mut p = Packed::default();
                p.buf.reserve_exact(len);
                for (m, s) in members {
                    p.push(m, s);
                }
                return Self {
                    repr: Repr::Packed(p),
                };
            }
        }
        let mut t = Tree::default();
        for (m, s) in members {
            t.insert(m, s);
        }
        Self {
            repr: Repr::Tree(Box::new(t)),
        }
    }

    /// Sets a member's score in the set's own form, with no limit but `MAX_PACKED_LEN`: how the
    /// rest of a streamed set is added to the part that came first. True when the member is new.
    pub(crate) fn insert_in_form(&mut self, member: &[u8], score: f64) -> bool {
        self.insert_with(
            member,
            score,
            ZSetLimits {
                entries: usize::MAX,
                value: usize::MAX,
            },
        )
    }

    /// Removes a member; true when it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed(p) => match p.as_ref().find(member) {
                Some((at, _)) => {
                    p.remove_at(at);
                    true
                }
                None => false,
            },
            Repr::Tree(t) => t.remove(member),
        }
    }

    /// Members with their scores, lowest score first (ties by member, bytewise).
    #[must_use]
    pub fn iter(&self) -> Iter<'_> {
        self.view().iter()
    }

    /// See [`ZSetRef::range_by_rank`].
    #[must_use]
    pub fn range_by_rank(&self, start: usize, end: usize) -> Iter<'_> {
        self.view().range_by_rank(start, end)
    }

    /// The member of rank `rank`, with its score.
    #[must_use]
    pub fn get_by_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        self.view().get_by_rank(rank)
    }

    /// A member's rank (0 for the lowest), if it is there. O(log n) in the large form.
    #[must_use]
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        self.view().rank(member)
    }

    /// See [`ZSetRef::partition_point`].
    pub fn partition_point(&self, before: impl FnMut(&[u8], f64) -> bool) -> usize {
        self.view().partition_point(before)
    }

    /// Moves the set into its compact form if it fits `limits` and `MAX_PACKED_LEN` (Redis does
    /// so for the results of ZRANGESTORE, ZUNIONSTORE and the like).
    pub fn compact(&mut self, limits: ZSetLimits) {
        if let Repr::Tree(t) = &self.repr
            && t.nodes.len() <= limits.entries
            && t.nodes.iter().all(|n| n.member.len() <= limits.value)
            && t.nodes
                .iter()
                .map(|n| packed_len(n.member.len(), n.score))
                .sum::<usize>()
                <= MAX_PACKED_LEN
        {
            let mut p = Packed::default();
            for (m, s) in self.iter() {
                p.push(m, s);
            }
            self.repr = Repr::Packed(p);
        }
    }

    /// Moves a compact set into the large form.
    fn grow(&mut self) {
        if let Repr::Packed(p) = &self.repr {
            let mut t = Tree::default();
            for (m, s) in p.as_ref().range(0, p.len) {
                t.insert(m, s);
            }
            self.repr = Repr::Tree(Box::new(t));
        }
    }
}

impl PartialEq for ZSetValue {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for ZSetValue {}

impl std::fmt::Debug for ZSetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

/// The compact form: entries packed in order in one buffer.
#[derive(Clone, Default)]
struct Packed {
    buf: Vec<u8>,
    len: usize,
}

/// A head's length nibble that says the member's length follows as a LEB128 varint (15 bytes
/// or more); 0 to 14 are the length itself.
const LONG: u8 = 15;

/// Score codes (a head's low nibble) 0 to `SMALL_MAX` are the integers 0 to 7 themselves, with
/// no score bytes: the ranks, counters and small weights that small sets mostly hold.
const SMALL_MAX: u8 = 7;

/// Score code for a float: its eight bytes follow (little-endian). Codes 8 to 14 say an integer
/// follows in 1 to 7 zigzag bytes, little-endian (-128 to 127 in one). An integer that needs eight
/// is written as a float instead: the same eight bytes, and one code fewer to read.
const FLOAT: u8 = 15;

/// A score as the compact form stores it: `(code, payload)`, the payload in its first
/// [`score_len`] bytes. An integer (that reads back as the same bits) takes its value as the
/// code when it is 0 to 7, else its zigzag bytes; anything else takes eight.
///
/// Redis's listpack keeps a score as text, and "-0" as the integer 0: a small set's -0 reads
/// back as 0 (the large form keeps the sign, as Redis's skiplist does).
fn score_code(score: f64) -> (u8, [u8; 8]) {
    let score = if score == 0.0 { 0.0 } else { score };
    let v = score as i64;
    if (v as f64).to_bits() == score.to_bits() {
        if (0..=i64::from(SMALL_MAX)).contains(&v) {
            return (v as u8, [0; 8]);
        }
        let zigzag = ((v << 1) ^ (v >> 63)) as u64;
        let width = (u64::BITS - zigzag.leading_zeros()).div_ceil(8) as u8;
        if width < 8 {
            return (SMALL_MAX + width, zigzag.to_le_bytes());
        }
    }
    (FLOAT, score.to_bits().to_le_bytes())
}

/// The bytes of a score after its entry's head, by its code.
fn score_len(code: u8) -> usize {
    match code {
        FLOAT => 8,
        0..=SMALL_MAX => 0,
        width => usize::from(width - SMALL_MAX),
    }
}

/// The score of code `code` whose bytes start at `at`, and where they end.
fn read_score(buf: &[u8], code: u8, at: usize) -> (f64, usize) {
    match code {
        0..=SMALL_MAX => (f64::from(code), at),
        FLOAT => {
            let bits = u64::from_le_bytes(buf[at..at + 8].try_into().expect("eight bytes"));
            (f64::from_bits(bits), at + 8)
        }
        width => {
            let len = usize::from(width - SMALL_MAX);
            let mut bytes = [0u8; 8];
            bytes[..len].copy_from_slice(&buf[at..at + len]);
            let zigzag = u64::from_le_bytes(bytes);
            let v = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
            (v as f64, at + len)
        }
    }
}

/// What the entry of a member of `len` bytes with `score` takes.
fn packed_len(len: usize, score: f64) -> usize {
    let long = if len >= usize::from(LONG) {
        varint::len(len)
    } else {
        0
    };
    1 + long + len + score_len(score_code(score).0)
}

/// The head of the entry that starts at `at`: where its member starts and ends, and its score's
/// code. An entry is `[head][len?][member][score bytes]`: the head's high nibble is the member's
/// length (or [`LONG`]: a varint `len` follows), its low nibble the score's code.
fn head(buf: &[u8], at: usize) -> (usize, usize, u8) {
    let head = buf[at];
    let (len, start) = match head >> 4 {
        LONG => varint::read(buf, at + 1),
        len => (usize::from(len), at + 1),
    };
    (start, start + len, head & 0x0f)
}

/// The entry that starts at `at`: member, score, and where the next one starts.
fn entry_at(buf: &[u8], at: usize) -> (&[u8], f64, usize) {
    let (start, end, code) = head(buf, at);
    let (score, next) = read_score(buf, code, end);
    (&buf[start..end], score, next)
}

/// Where the entry that starts at `at` ends, read from its head alone.
fn skip(buf: &[u8], at: usize) -> usize {
    let (_, end, code) = head(buf, at);
    end + score_len(code)
}

/// The compact form's bytes, borrowed: every read of that form is written here.
#[derive(Clone, Copy)]
struct PackedRef<'a> {
    buf: &'a [u8],
    len: usize,
}

impl<'a> PackedRef<'a> {
    /// Where the member's entry starts, and its score.
    fn find(self, member: &[u8]) -> Option<(usize, f64)> {
        let mut at = 0;
        while at < self.buf.len() {
            let (start, end, code) = head(self.buf, at);
            if &self.buf[start..end] == member {
                return Some((at, read_score(self.buf, code, end).0));
            }
            at = end + score_len(code);
        }
        None
    }

    fn position(self, member: &[u8]) -> Option<usize> {
        self.range(0, self.len).position(|(m, _)| m == member)
    }

    fn range(self, start: usize, end: usize) -> PackedIter<'a> {
        let mut front = 0;
        for _ in 0..start {
            front = skip(self.buf, front);
        }
        PackedIter {
            buf: self.buf,
            front,
            starts: Vec::new(),
            back_read: false,
            remaining: end - start,
        }
    }
}

impl Packed {
    fn as_ref(&self) -> PackedRef<'_> {
        PackedRef {
            buf: &self.buf,
            len: self.len,
        }
    }

    fn encode(member: &[u8], score: f64) -> Vec<u8> {
        let mut entry = Vec::with_capacity(packed_len(member.len(), score));
        let (code, payload) = score_code(score);
        if member.len() < usize::from(LONG) {
            entry.push((member.len() as u8) << 4 | code);
        } else {
            entry.push(LONG << 4 | code);
            varint::push(&mut entry, member.len());
        }
        entry.extend_from_slice(member);
        entry.extend_from_slice(&payload[..score_len(code)]);
        entry
    }

    /// Inserts a member that is not there, in its place.
    fn insert(&mut self, member: &[u8], score: f64) {
        let mut at = 0;
        while at < self.buf.len() {
            let (m, s, next) = entry_at(&self.buf, at);
            if order((s, m), (score, member)) == Ordering::Greater {
                break;
            }
            at = next;
        }
        let entry = Self::encode(member, score);
        // Grown to fit, as Redis reallocates its listpack: doubling would leave up to half of
        // every small set's buffer unused, and a small set is a few dozen bytes.
        self.buf.reserve_exact(entry.len());
        self.buf.splice(at..at, entry);
        self.len += 1;
    }

    /// Appends a member that comes after every other.
    fn push(&mut self, member: &[u8], score: f64) {
        let entry = Self::encode(member, score);
        self.buf.reserve_exact(entry.len());
        self.buf.extend_from_slice(&entry);
        self.len += 1;
    }

    fn remove_at(&mut self, at: usize) {
        self.buf.drain(at..skip(&self.buf, at));
        self.len -= 1;
        if self.buf.capacity() > 2 * self.buf.len() + 64 {
            self.buf.shrink_to_fit();
        }
    }
}

/// Members of a sorted set with their scores, in order (both ways).
pub enum Iter<'a> {
    Packed(PackedIter<'a>),
    Tree(TreeIter<'a>),
}

/// The compact form's iterator. Entries have no back-lengths (they would cost a byte each,
/// a sixth of a small set), so reading backwards walks forwards: the first `next_back` walks to
/// the last entry without noting anything (ZPOPMAX, or ZREVRANGE 0 0, reads one entry and
/// allocates nothing), and a second notes where each remaining entry starts, so that the rest
/// pop from that. A range read forwards walks no further than it reads (ZRANGE 0 9 of a large
/// set decodes ten entries), and read backwards costs at most two walks: O(n) either way.
#[doc(hidden)]
pub struct PackedIter<'a> {
    buf: &'a [u8],
    front: usize,
    /// Once read backwards more than once: the starts of the entries the range had left, in
    /// order; those not yet read are the last `remaining` of them that `next` has not passed.
    starts: Vec<usize>,
    /// Whether `next_back` has read the last entry (by a walk that noted nothing).
    back_read: bool,
    remaining: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (m, s, next) = entry_at(self.buf, self.front);
        self.front = next;
        self.remaining -= 1;
        Some((m, s))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for PackedIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        if self.remaining == 0 {
            // The last entry left is the front one: no walk (nor allocation) to find it.
            let (m, s, next) = entry_at(self.buf, self.front);
            self.front = next;
            return Some((m, s));
        }
        if !self.back_read {
            self.back_read = true;
            let mut at = self.front;
            for _ in 0..self.remaining {
                at = skip(self.buf, at);
            }
            let (m, s, _) = entry_at(self.buf, at);
            return Some((m, s));
        }
        if self.starts.is_empty() {
            self.starts.reserve_exact(self.remaining + 1);
            let mut at = self.front;
            for _ in 0..=self.remaining {
                self.starts.push(at);
                at = skip(self.buf, at);
            }
        }
        let at = self.starts.pop().expect("a start for every entry left");
        let (m, s, _) = entry_at(self.buf, at);
        Some((m, s))
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed(i) => i.next(),
            Iter::Tree(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Packed(i) => i.size_hint(),
            Iter::Tree(i) => i.size_hint(),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed(i) => i.next_back(),
            Iter::Tree(i) => i.next_back(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}
impl ExactSizeIterator for PackedIter<'_> {}

#[cfg(test)]
mod tests;
