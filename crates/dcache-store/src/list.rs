//! Lists: a sequence of elements, pushed and popped at both ends.
//!
//! Two encodings, as Redis has (`OBJECT ENCODING` names them the same):
//!
//! ```text
//!   listpack   one allocation: [len | bytes | len reversed] [len | bytes | len reversed] ...
//!              (the length as LEB128 before the element and mirrored after it, so that the
//!              packed form is walked from either end, like Redis's listpack)
//!   quicklist  a ring buffer of boxed elements (O(1) at both ends and by index)
//! ```
//!
//! A million small lists (a queue per user) is the case the packed form is for: one allocation
//! of a few bytes more than the elements, where a ring buffer costs its buffer plus a box per
//! element (about 80 bytes more for a one-element list). A list stays packed while it is within
//! `list-max-listpack-size` ([`set_max_listpack_size`]: negative, a size class of 4 KB to 64 KB
//! of Redis's listpack bytes; positive, a number of entries, and 8 KB at most) and turns into the
//! ring buffer past it; it turns back once it has shrunk to half the limit, as Redis 7.2 does
//! (Redis also needs its quicklist to be down to one node, which a ring buffer has no notion of,
//! so a list here may turn back a little sooner). The limit is checked against what Redis's
//! listpack would hold (its entry sizes, integers packed), tracked in `lp`, so that
//! `OBJECT ENCODING` changes at the same length as in Redis.
//!
//! Every change keeps the memory count exact: the packed form counts its allocation (in
//! allocator size classes), the ring buffer each element's box plus its slot, so that a list
//! counts in the memory budget element by element.

mod packed;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use crate::memory::{MAX_PACKED_LEN, alloc_size};
use packed::{Packed, PackedRef};

/// Bytes that a ring-buffer element costs beyond its own allocation: its slot in the buffer.
const ELEMENT_OVERHEAD: usize = 16;
/// Redis's listpack header (total bytes and count) and end marker.
const LP_HEADER: usize = 7;
/// The most bytes a positive `list-max-listpack-size` lets a packed list hold (Redis's
/// `SIZE_SAFETY_LIMIT`).
const SIZE_SAFETY_LIMIT: usize = 8192;

/// `list-max-listpack-size` for the process (Redis's `server.list_max_listpack_size`).
static FILL: AtomicI64 = AtomicI64::new(-2);

/// Sets `list-max-listpack-size` (and its old name `list-max-ziplist-size`): negative, -1 to -5,
/// packed lists up to 4, 8, 16, 32 or 64 KB (below -5 counts as -5); positive, up to that many
/// entries. Lists change encoding when they next grow or shrink.
pub fn set_max_listpack_size(fill: i64) {
    FILL.store(fill, Relaxed);
}

/// The current `list-max-listpack-size`.
#[must_use]
pub fn max_listpack_size() -> i64 {
    FILL.load(Relaxed)
}

/// `(bytes, entries)` a packed list may hold.
fn limits() -> (usize, usize) {
    let fill = FILL.load(Relaxed);
    if fill < 0 {
        let level = (-fill).min(5) as u32;
        (4096 << (level - 1), usize::MAX)
    } else {
        (SIZE_SAFETY_LIMIT, fill as usize)
    }
}

/// What `element` takes in Redis's listpack: its encoding (integers packed) and its back-length.
fn lp_entry_size(element: &[u8]) -> usize {
    let encoded = match strict_i64(element) {
        Some(v) if (0..=127).contains(&v) => 1,
        Some(v) if (-4096..=4095).contains(&v) => 2,
        Some(v) if i16::try_from(v).is_ok() => 3,
        Some(v) if (-(1 << 23)..(1 << 23)).contains(&v) => 4,
        Some(v) if i32::try_from(v).is_ok() => 5,
        Some(_) => 9,
        None if element.len() < 64 => 1 + element.len(),
        None if element.len() < 4096 => 2 + element.len(),
        None => 5 + element.len(),
    };
    let back = match encoded {
        0..=127 => 1,
        128..16383 => 2,
        16383..2_097_151 => 3,
        2_097_151..268_435_455 => 4,
        _ => 5,
    };
    encoded + back
}

/// An integer in canonical form (no sign but `-`, no leading zeros, not `-0`), as Redis's
/// `string2ll` reads one.
fn strict_i64(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    match digits {
        [] => return None,
        [b'0'] if digits.len() == bytes.len() => return Some(0),
        [b'1'..=b'9', rest @ ..] if rest.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn element_mem(element: &[u8]) -> usize {
    alloc_size(element.len()) + ELEMENT_OVERHEAD
}

#[derive(Clone)]
enum Repr {
    Packed(Packed),
    /// The elements, and the bytes their boxes and slots cost.
    Ring(VecDeque<Box<[u8]>>, usize),
}

/// A list value.
#[derive(Clone)]
pub struct ListValue {
    repr: Repr,
    /// Bytes Redis's listpack would take for these elements, header included: what the encoding
    /// limits are checked against.
    lp: usize,
}

impl Default for ListValue {
    fn default() -> Self {
        Self {
            repr: Repr::Packed(Packed::default()),
            lp: LP_HEADER,
        }
    }
}

impl PartialEq for ListValue {
    /// Equal elements in the same order, whatever the encodings.
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for ListValue {}

/// Where an element goes or comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

/// A list, borrowed: an owned [`ListValue`] seen through [`ListValue::view`], or a small list
/// held inline in its key's entry. Carries every read the owned list has.
#[derive(Clone, Copy)]
pub struct ListRef<'a> {
    repr: RefRepr<'a>,
    lp: usize,
}

#[derive(Clone, Copy)]
enum RefRepr<'a> {
    Packed(PackedRef<'a>),
    /// The elements, and the bytes their boxes and slots cost.
    Ring(&'a VecDeque<Box<[u8]>>, usize),
}

impl<'a> ListRef<'a> {
    /// A packed list of `len` elements encoded as `bytes`, with Redis's listpack size `lp`.
    pub(crate) fn packed(bytes: &'a [u8], len: usize, lp: usize) -> Self {
        Self {
            repr: RefRepr::Packed(PackedRef { bytes, len }),
            lp,
        }
    }

    /// The packed form's parts, `(bytes, len, lp)`; `None` for the ring buffer.
    pub(crate) fn packed_parts(self) -> Option<(&'a [u8], usize, usize)> {
        match self.repr {
            RefRepr::Packed(p) => Some((p.bytes, p.len, self.lp)),
            RefRepr::Ring(..) => None,
        }
    }

    #[must_use]
    pub fn len(self) -> usize {
        match self.repr {
            RefRepr::Packed(p) => p.len,
            RefRepr::Ring(items, _) => items.len(),
        }
    }

    #[must_use]
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Bytes the elements hold, in allocator size classes, with per-element overhead.
    #[must_use]
    pub fn mem(self) -> usize {
        match self.repr {
            RefRepr::Packed(p) => alloc_size(p.bytes.len()),
            RefRepr::Ring(_, mem) => mem,
        }
    }

    /// `listpack` or `quicklist`, as `OBJECT ENCODING` reports it.
    #[must_use]
    pub fn encoding(self) -> &'static str {
        match self.repr {
            RefRepr::Packed(_) => "listpack",
            RefRepr::Ring(..) => "quicklist",
        }
    }

    /// The element at `index` (0 is the head).
    #[must_use]
    pub fn get(self, index: usize) -> Option<&'a [u8]> {
        match self.repr {
            RefRepr::Packed(p) => p.get(index),
            RefRepr::Ring(items, _) => items.get(index).map(|e| &**e),
        }
    }

    /// Head to tail.
    pub fn iter(self) -> impl DoubleEndedIterator<Item = &'a [u8]> + ExactSizeIterator {
        match self.repr {
            RefRepr::Packed(p) => Iter::Packed(p.iter()),
            RefRepr::Ring(items, _) => Iter::Ring(items.iter()),
        }
    }

    /// An owned copy, in the same encoding.
    #[must_use]
    pub fn into_owned(self) -> ListValue {
        let repr = match self.repr {
            RefRepr::Packed(p) => Repr::Packed(Packed::from_bytes(p.bytes, p.len)),
            RefRepr::Ring(items, mem) => Repr::Ring(items.clone(), mem),
        };
        ListValue { repr, lp: self.lp }
    }
}

impl PartialEq for ListRef<'_> {
    /// Equal elements in the same order, whatever the encodings.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ListRef<'_> {}

impl std::fmt::Debug for ListRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

impl ListValue {
    /// The list, borrowed, with its reads.
    #[must_use]
    pub fn view(&self) -> ListRef<'_> {
        let repr = match &self.repr {
            Repr::Packed(p) => RefRepr::Packed(p.as_ref()),
            Repr::Ring(items, mem) => RefRepr::Ring(items, *mem),
        };
        ListRef { repr, lp: self.lp }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.view().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the elements hold, in allocator size classes, with per-element overhead.
    #[must_use]
    pub fn mem(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.mem(),
            Repr::Ring(_, mem) => *mem,
        }
    }

    /// `listpack` or `quicklist`, as `OBJECT ENCODING` reports it.
    #[must_use]
    pub fn encoding(&self) -> &'static str {
        self.view().encoding()
    }

    /// The element at `index` (0 is the head).
    #[must_use]
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.view().get(index)
    }

    /// Head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.view().iter()
    }

    /// Makes room for `count` more elements of `bytes` in all, turning the list into the ring
    /// buffer first if they would take it past the limits (checked once for the whole batch, as
    /// Redis checks a multi-element push).
    pub fn reserve(&mut self, bytes: usize, count: usize) {
        if let Repr::Packed(p) = &self.repr {
            let (max_bytes, max_entries) = limits();
            if self.lp + bytes > max_bytes || p.len() + count > max_entries {
                self.make_ring();
            }
        }
    }

    /// Pushes `elements` at `end` one by one (so that pushing `a b` at the head leaves `b a`),
    /// with one limit check for the batch.
    pub fn push_all<'e>(&mut self, end: End, elements: impl Iterator<Item = &'e [u8]> + Clone) {
        let (bytes, count) = elements
            .clone()
            .fold((0, 0), |(b, c), e| (b + e.len(), c + 1));
        self.reserve(bytes, count);
        for element in elements {
            self.push_unchecked(end, element);
        }
    }

    pub fn push_front(&mut self, element: &[u8]) {
        self.reserve(element.len(), 1);
        self.push_unchecked(End::Head, element);
    }

    pub fn push_back(&mut self, element: &[u8]) {
        self.reserve(element.len(), 1);
        self.push_unchecked(End::Tail, element);
    }

    /// An empty list in the ring buffer form, which it keeps while elements are pushed with
    /// [`ListValue::push_in_form`] (a copy of a ring-buffer list, or a part of one, as
    /// [`crate::effect`] carries them).
    pub(crate) fn ring() -> Self {
        Self {
            repr: Repr::Ring(VecDeque::new(), 0),
            lp: LP_HEADER,
        }
    }

    /// Pushes `element` at the tail in the list's own form, with no limit but `MAX_PACKED_LEN`
    /// (past which a packed list turns into the ring buffer): how a copy is rebuilt in the form
    /// its sender held, and how the rest of a streamed list is added to its first part.
    pub(crate) fn push_in_form(&mut self, element: &[u8]) {
        if let Repr::Packed(p) = &self.repr
            && p.as_ref().bytes.len() + element.len() + 20 > MAX_PACKED_LEN
        {
            self.make_ring();
        }
        self.push_unchecked(End::Tail, element);
    }

    fn push_unchecked(&mut self, end: End, element: &[u8]) {
        self.lp += lp_entry_size(element);
        match (&mut self.repr, end) {
            (Repr::Packed(p), End::Head) => p.insert(0, element),
            (Repr::Packed(p), End::Tail) => p.insert(p.len(), element),
            (Repr::Ring(items, mem), End::Head) => {
                *mem += element_mem(element);
                items.push_front(element.into());
            }
            (Repr::Ring(items, mem), End::Tail) => {
                *mem += element_mem(element);
                items.push_back(element.into());
            }
        }
    }

    /// Takes the element at `end`. Call [`ListValue::shrunk`] once done removing.
    pub fn pop(&mut self, end: End) -> Option<Box<[u8]>> {
        let element = match (&mut self.repr, end) {
            (Repr::Packed(p), End::Head) => p.remove(0)?,
            (Repr::Packed(p), End::Tail) => p.remove(p.len().checked_sub(1)?)?,
            (Repr::Ring(items, mem), _) => {
                let e = if end == End::Head {
                    items.pop_front()?
                } else {
                    items.pop_back()?
                };
                *mem -= element_mem(&e);
                e
            }
        };
        self.lp -= lp_entry_size(&element);
        Some(element)
    }

    pub fn pop_front(&mut self) -> Option<Box<[u8]>> {
        let e = self.pop(End::Head);
        self.shrunk();
        e
    }

    pub fn pop_back(&mut self) -> Option<Box<[u8]>> {
        let e = self.pop(End::Tail);
        self.shrunk();
        e
    }

    /// Replaces the element at `index`; `false` when out of range.
    pub fn set(&mut self, index: usize, element: &[u8]) -> bool {
        let Some(old) = self.get(index) else {
            return false;
        };
        let old_lp = lp_entry_size(old);
        // Redis checks the new element against the limits as a push would (LSET can grow).
        self.reserve(element.len(), 0);
        self.lp = self.lp - old_lp + lp_entry_size(element);
        match &mut self.repr {
            Repr::Packed(p) => p.replace(index, element),
            Repr::Ring(items, mem) => {
                *mem = *mem - element_mem(&items[index]) + element_mem(element);
                items[index] = element.into();
            }
        }
        self.shrunk();
        true
    }

    /// Inserts `element` before `index` (at the tail when `index` is the length).
    ///
    /// # Panics
    /// If `index` is past the length.
    pub fn insert(&mut self, index: usize, element: &[u8]) {
        assert!(index <= self.len(), "insert past the end");
        self.reserve(element.len(), 1);
        self.lp += lp_entry_size(element);
        match &mut self.repr {
            Repr::Packed(p) => p.insert(index, element),
            Repr::Ring(items, mem) => {
                *mem += element_mem(element);
                items.insert(index, element.into());
            }
        }
    }

    /// Removes elements equal to `element`: `count` of them from the head when positive, from
    /// the tail when negative, all when 0 (LREM). Returns how many went.
    pub fn remove_matching(&mut self, element: &[u8], count: i64) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        let len = self.len();
        let matches: Vec<usize> = if count < 0 {
            let mut m: Vec<usize> = (0..len)
                .rev()
                .filter(|&i| self.get(i) == Some(element))
                .take(limit)
                .collect();
            m.reverse();
            m
        } else {
            self.iter()
                .enumerate()
                .filter(|(_, e)| *e == element)
                .map(|(i, _)| i)
                .take(limit)
                .collect()
        };
        if matches.is_empty() {
            return 0;
        }
        let gone = matches.len();
        let mut next = matches.into_iter().peekable();
        self.retain_indexed(|i| {
            if next.peek() == Some(&i) {
                next.next();
                false
            } else {
                true
            }
        });
        gone
    }

    /// Keeps the elements from `start` to `stop` inclusive (LTRIM, indexes already in range);
    /// `None` empties the list.
    pub fn trim(&mut self, keep: Option<(usize, usize)>) {
        match keep {
            None => self.retain_indexed(|_| false),
            Some((start, stop)) => self.retain_indexed(|i| i >= start && i <= stop),
        }
    }

    /// Keeps the elements for which `keep(index)` holds, visiting them head to tail.
    fn retain_indexed(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let mut lp = LP_HEADER;
        match &mut self.repr {
            Repr::Packed(p) => {
                let mut kept = Packed::default();
                for (i, e) in p.iter().enumerate() {
                    if keep(i) {
                        lp += lp_entry_size(e);
                        kept.insert(kept.len(), e);
                    }
                }
                kept.shrink();
                *p = kept;
            }
            Repr::Ring(items, mem) => {
                let mut i = 0;
                let mut new_mem = 0;
                items.retain(|e| {
                    let k = keep(i);
                    i += 1;
                    if k {
                        lp += lp_entry_size(e);
                        new_mem += element_mem(e);
                    }
                    k
                });
                *mem = new_mem;
            }
        }
        self.lp = lp;
        self.shrunk();
    }

    /// Turns a ring buffer that has shrunk to half the limits back into the packed form, and
    /// gives a packed list's spare room back. Called after removals.
    pub fn shrunk(&mut self) {
        match &mut self.repr {
            Repr::Packed(p) => p.shrink(),
            Repr::Ring(items, _) => {
                let (max_bytes, max_entries) = limits();
                if self.lp <= max_bytes / 2 && items.len() <= max_entries / 2 {
                    let mut p = Packed::default();
                    for e in items.iter() {
                        p.insert(p.len(), e);
                    }
                    p.shrink();
                    self.repr = Repr::Packed(p);
                }
            }
        }
    }

    fn make_ring(&mut self) {
        if let Repr::Packed(p) = &self.repr {
            let items: VecDeque<Box<[u8]>> = p.iter().map(Box::from).collect();
            let mem = items.iter().map(|e| element_mem(e)).sum();
            self.repr = Repr::Ring(items, mem);
        }
    }
}

enum Iter<'a> {
    Packed(packed::Iter<'a>),
    Ring(std::collections::vec_deque::Iter<'a, Box<[u8]>>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Iter::Packed(i) => i.next(),
            Iter::Ring(i) => i.next().map(|e| &**e),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.len();
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed(i) => i.next_back(),
            Iter::Ring(i) => i.next_back().map(|e| &**e),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {
    fn len(&self) -> usize {
        match self {
            Iter::Packed(i) => i.len(),
            Iter::Ring(i) => i.len(),
        }
    }
}

impl std::fmt::Debug for ListValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_entry_sizes_follow_redis() {
        assert_eq!(lp_entry_size(b"0"), 2);
        assert_eq!(lp_entry_size(b"127"), 2);
        assert_eq!(lp_entry_size(b"128"), 3);
        assert_eq!(lp_entry_size(b"-4096"), 3);
        assert_eq!(lp_entry_size(b"-0"), 4);
        assert_eq!(lp_entry_size(b"007"), 5);
        assert_eq!(lp_entry_size(b"abc"), 5);
        assert_eq!(lp_entry_size(&[b'x'; 64]), 66 + 1);
        assert_eq!(lp_entry_size(&[b'x'; 200]), 202 + 2);
        assert_eq!(lp_entry_size(b"9223372036854775807"), 10);
        assert_eq!(lp_entry_size(b"9223372036854775808"), 21);
    }
}
