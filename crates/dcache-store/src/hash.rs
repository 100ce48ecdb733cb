//! Hashes: field → value maps, as web sessions and object caches use them.
//!
//! Two encodings, as in Redis, picked by size ([`HashLimits`], Redis's
//! `hash-max-listpack-entries` / `hash-max-listpack-value`):
//!
//! ```text
//!   listpack (small):  one buffer of fields and values, in insertion order
//!     [ flen | field bytes | vlen | value bytes ] [ … ] …      flen, vlen: LEB128 varints
//!   hashtable (large): a hashbrown table of (field, value) boxed slices, with its memory count
//!     and a rebuild count (see [`HashRef::rebuilds`])
//! ```
//!
//! The small form is what Redis keeps a small hash as, and answers in the same order: a new
//! field goes at the end, a changed value stays where its field is, a deleted field leaves no
//! gap (HGETALL, HKEYS, HVALS and HSCAN of a small hash read in insertion order, as Redis's do).
//! It costs 2 bytes per field beyond its bytes (for fields and values under 128 bytes) and is
//! held inline in its key's entry (`crate::inline`), so that a 5-field session is one
//! allocation; the table costs about 37 bytes and two allocations per field, plus a side-table
//! cell.
//!
//! A hash moves into the table when a write would break the limits: a field or a value longer
//! than `value` bytes, or more than `entries` fields (as Redis, after the write that makes it
//! `entries + 1`). It never moves back: Redis keeps a hash in its table when fields are deleted.
//! `mem` is a function of the contents in the small form and kept up to date by every change
//! in the large one.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::memory::{MAX_PACKED_LEN, alloc_size};
use crate::varint;

/// When a hash leaves its compact form: more than `entries` fields, or a field or value longer
/// than `value` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    pub entries: usize,
    pub value: usize,
}

impl Default for HashLimits {
    /// Redis's defaults: 128 entries, 64 bytes.
    fn default() -> Self {
        Self {
            entries: 128,
            value: 64,
        }
    }
}

/// A hash value, owned: the side table's, or a compact one copied out of its entry to change.
#[derive(Clone)]
pub struct HashValue {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Packed(Packed),
    Table(Table),
}

impl Default for HashValue {
    /// An empty hash, in the compact form (Redis creates every hash as a listpack).
    fn default() -> Self {
        Self {
            repr: Repr::Packed(Packed::default()),
        }
    }
}

/// A hash, borrowed: an owned [`HashValue`] seen through [`HashValue::view`], or a small hash
/// held inline in its key's entry. Carries every read the owned hash has.
#[derive(Clone, Copy)]
pub struct HashRef<'a>(RefRepr<'a>);

#[derive(Clone, Copy)]
enum RefRepr<'a> {
    Packed(PackedRef<'a>),
    Table(&'a Table),
}

impl<'a> HashRef<'a> {
    /// A compact hash of `len` fields encoded as `buf` (as [`HashRef::packed_parts`] gave).
    pub(crate) fn packed(buf: &'a [u8], len: usize) -> Self {
        HashRef(RefRepr::Packed(PackedRef { buf, len }))
    }

    /// The compact form's parts, `(bytes, len)`; `None` for the table.
    pub(crate) fn packed_parts(self) -> Option<(&'a [u8], usize)> {
        match self.0 {
            RefRepr::Packed(p) => Some((p.buf, p.len)),
            RefRepr::Table(_) => None,
        }
    }

    #[must_use]
    pub fn len(self) -> usize {
        match self.0 {
            RefRepr::Packed(p) => p.len,
            RefRepr::Table(t) => t.table.len(),
        }
    }

    #[must_use]
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Whether the hash is in its compact form (Redis's `listpack`; `hashtable` otherwise).
    #[must_use]
    pub fn is_listpack(self) -> bool {
        matches!(self.0, RefRepr::Packed(_))
    }

    #[must_use]
    pub fn get(self, field: &[u8]) -> Option<&'a [u8]> {
        match self.0 {
            RefRepr::Packed(p) => p.find(field).map(|at| at.value(p.buf)),
            RefRepr::Table(t) => t.get(field),
        }
    }

    /// Fields with their values: in insertion order in the compact form, the table's order in
    /// the other.
    #[must_use]
    pub fn iter(self) -> Iter<'a> {
        match self.0 {
            RefRepr::Packed(p) => Iter::Packed(PackedIter {
                buf: p.buf,
                at: 0,
                remaining: p.len,
            }),
            RefRepr::Table(t) => Iter::Table(TableIter(t.table.iter())),
        }
    }

    /// Bytes the fields hold, in allocator size classes, with per-field overhead.
    #[must_use]
    pub fn mem(self) -> usize {
        match self.0 {
            RefRepr::Packed(p) => alloc_size(p.buf.len()),
            RefRepr::Table(t) => t.mem,
        }
    }

    /// An owned copy, in the same encoding.
    #[must_use]
    pub fn into_owned(self) -> HashValue {
        let repr = match self.0 {
            RefRepr::Packed(p) => Repr::Packed(Packed {
                buf: p.buf.to_vec(),
                len: p.len,
            }),
            RefRepr::Table(t) => Repr::Table(t.clone()),
        };
        HashValue { repr }
    }

    /// How many buckets the table has; fields are at indices below this. The compact form has
    /// none: it is streamed whole.
    pub(crate) fn buckets(self) -> usize {
        match self.0 {
            RefRepr::Packed(_) => 0,
            RefRepr::Table(t) => t.table.num_buckets(),
        }
    }

    /// The field in bucket `index` of the table, if one is there.
    pub(crate) fn bucket(self, index: usize) -> Option<(&'a [u8], &'a [u8])> {
        match self.0 {
            RefRepr::Packed(_) => None,
            RefRepr::Table(t) => t.table.get_bucket(index).map(|(k, v)| (&**k, &**v)),
        }
    }

    /// How many times the table has been rebuilt; fields keep their buckets between rebuilds.
    pub(crate) fn rebuilds(self) -> u32 {
        match self.0 {
            RefRepr::Packed(_) => 0,
            RefRepr::Table(t) => t.rebuilds,
        }
    }
}

impl PartialEq for HashRef<'_> {
    /// The same fields with the same values, in whatever order or encoding.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl Eq for HashRef<'_> {}

impl std::fmt::Debug for HashRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            }))
            .finish()
    }
}

impl HashValue {
    /// The hash, borrowed, with its reads.
    #[must_use]
    pub fn view(&self) -> HashRef<'_> {
        HashRef(match &self.repr {
            Repr::Packed(p) => RefRepr::Packed(p.as_ref()),
            Repr::Table(t) => RefRepr::Table(t),
        })
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.view().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the hash is in its compact form (Redis's `listpack`; `hashtable` otherwise).
    #[must_use]
    pub fn is_listpack(&self) -> bool {
        self.view().is_listpack()
    }

    #[must_use]
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.view().get(field)
    }

    /// See [`HashRef::iter`].
    #[must_use]
    pub fn iter(&self) -> Iter<'_> {
        self.view().iter()
    }

    /// Bytes the fields hold, in allocator size classes, with per-field overhead.
    #[must_use]
    pub fn mem(&self) -> usize {
        self.view().mem()
    }

    /// Sets a field; true when the field is new. Moves into the table past the default limits:
    /// for tests and tools. A command passes the configured limits ([`HashValue::insert_with`]);
    /// a copy from another node keeps its sender's form (see [`crate::effect`]).
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.insert_with(field, value, HashLimits::default())
    }

    /// Sets a field; true when the field is new. A field or value longer than `limits.value`, or
    /// a new field past `limits.entries`, moves a compact hash into the table first (Redis
    /// checks a write's lengths before it writes, and converts a listpack that the write took
    /// past its entries).
    ///
    /// Whatever the limits, a write that would take the compact form's buffer past
    /// `MAX_PACKED_LEN` moves it into the table (Redis's `lpSafeToAdd`), so that a compact hash
    /// always fits one effect.
    pub fn insert_with(&mut self, field: &[u8], value: &[u8], limits: HashLimits) -> bool {
        if let Repr::Packed(p) = &mut self.repr {
            if field.len() <= limits.value && value.len() <= limits.value {
                match p.as_ref().find(field) {
                    Some(at) => {
                        let old = at.end - at.value_len;
                        if p.buf.len() - old + varint::len(value.len()) + value.len()
                            <= MAX_PACKED_LEN
                        {
                            p.replace(at, value);
                            return false;
                        }
                    }
                    None if p.len < limits.entries && p.fits(field, value) => {
                        p.push(field, value);
                        return true;
                    }
                    None => {}
                }
            }
            self.grow();
        }
        match &mut self.repr {
            Repr::Table(t) => t.insert(field, value),
            Repr::Packed(_) => unreachable!("grown above"),
        }
    }

    /// An empty hash in the table form, which it keeps whatever its size (a copy of a table hash,
    /// or a part of one, as [`crate::effect`] carries them).
    pub(crate) fn table() -> Self {
        Self {
            repr: Repr::Table(Table::default()),
        }
    }

    /// Adds a field in the hash's own form, with no limit but `MAX_PACKED_LEN` (past which a
    /// compact hash moves into the table): how a copy is rebuilt in the form its sender held.
    /// The field must not be there yet when the hash is compact (a copy's decoder checks that
    /// its fields are distinct): it is appended without a search. False when the table already
    /// had it (its value is then replaced).
    pub(crate) fn push_new(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Repr::Packed(p) = &mut self.repr {
            if p.fits(field, value) {
                p.push(field, value);
                return true;
            }
            self.grow();
        }
        match &mut self.repr {
            Repr::Table(t) => t.insert(field, value),
            Repr::Packed(_) => unreachable!("grown above"),
        }
    }

    /// Sets a field in the hash's own form, with no limit but `MAX_PACKED_LEN`: how the rest of
    /// a streamed hash is added to the part that came first. True when the field is new.
    pub(crate) fn insert_in_form(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.insert_with(
            field,
            value,
            HashLimits {
                entries: usize::MAX,
                value: usize::MAX,
            },
        )
    }

    /// Removes a field; true when it was there. A hash keeps its encoding.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed(p) => match p.as_ref().find(field) {
                Some(at) => {
                    p.remove(at);
                    true
                }
                None => false,
            },
            Repr::Table(t) => t.remove(field),
        }
    }

    /// Moves a compact hash into the table.
    fn grow(&mut self) {
        if let Repr::Packed(p) = &self.repr {
            let mut t = Table::default();
            for (f, v) in p.as_ref().iter() {
                t.insert(f, v);
            }
            self.repr = Repr::Table(t);
        }
    }
}

impl PartialEq for HashValue {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for HashValue {}

impl std::fmt::Debug for HashValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

/// Bytes that a hash field costs in the table beyond its name and value: hashbrown's bucket (two
/// boxed slices) and control byte at 7/8 load.
const HASH_FIELD_OVERHEAD: usize = (32 + 1) * 8 / 7;

fn field_mem(field: &[u8], value: &[u8]) -> usize {
    alloc_size(field.len()) + alloc_size(value.len()) + HASH_FIELD_OVERHEAD
}

/// A hash field in the table: its name and its value.
type Field = (Box<[u8]>, Box<[u8]>);

/// The large form: a hash table whose buckets can be read by index, so that a large hash can be
/// streamed a bounded number of buckets at a time ([`crate::Store::dump_slot`]): a field stays in
/// its bucket until the table is rebuilt (grown, or rehashed in place), and `rebuilds` counts
/// those, so that a stream can tell when the buckets it has passed may have moved.
#[derive(Clone, Default)]
struct Table {
    table: HashTable<Field>,
    hasher: DefaultHashBuilder,
    mem: usize,
    rebuilds: u32,
}

impl Table {
    fn hash(&self, field: &[u8]) -> u64 {
        self.hasher.hash_one(field)
    }

    fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.table
            .find(self.hash(field), |(f, _)| **f == *field)
            .map(|(_, v)| &**v)
    }

    fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        let hash = self.hash(field);
        self.mem += field_mem(field, value);
        if let Some((_, old)) = self.table.find_mut(hash, |(f, _)| **f == *field) {
            self.mem -= field_mem(field, old);
            *old = value.into();
            return false;
        }
        if self.table.len() == self.table.capacity() {
            // No room left: hashbrown rebuilds the table (the fields change buckets) to insert.
            self.rebuilds = self.rebuilds.wrapping_add(1);
        }
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, (field.into(), value.into()), |(f, _)| {
                hasher.hash_one(&**f)
            });
        true
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        match self
            .table
            .find_entry(self.hash(field), |(f, _)| **f == *field)
        {
            Ok(entry) => {
                let ((f, v), _) = entry.remove();
                self.mem -= field_mem(&f, &v);
                true
            }
            Err(_) => false,
        }
    }
}

/// The compact form: `[flen][field][vlen][value]` pairs, in insertion order, in one buffer.
#[derive(Clone, Default)]
struct Packed {
    buf: Vec<u8>,
    len: usize,
}

/// Where one pair lies in the buffer: it starts at `start`, its value's length at `value_len`,
/// its value's bytes at `value..end`.
#[derive(Clone, Copy)]
struct Pair {
    start: usize,
    value_len: usize,
    value: usize,
    end: usize,
}

impl Pair {
    fn value(self, buf: &[u8]) -> &[u8] {
        &buf[self.value..self.end]
    }
}

/// The pair that starts at `at`: its field and where its parts are.
fn pair_at(buf: &[u8], at: usize) -> (&[u8], Pair) {
    let (flen, field) = varint::read(buf, at);
    let value_len = field + flen;
    let (vlen, value) = varint::read(buf, value_len);
    let pair = Pair {
        start: at,
        value_len,
        value,
        end: value + vlen,
    };
    (&buf[field..value_len], pair)
}

/// The compact form's bytes, borrowed: every read of that form is written here.
#[derive(Clone, Copy)]
struct PackedRef<'a> {
    buf: &'a [u8],
    len: usize,
}

impl<'a> PackedRef<'a> {
    fn find(self, field: &[u8]) -> Option<Pair> {
        let mut at = 0;
        while at < self.buf.len() {
            let (f, pair) = pair_at(self.buf, at);
            if f == field {
                return Some(pair);
            }
            at = pair.end;
        }
        None
    }

    fn iter(self) -> PackedIter<'a> {
        PackedIter {
            buf: self.buf,
            at: 0,
            remaining: self.len,
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

    /// Whether a new field of these bytes keeps the buffer within `MAX_PACKED_LEN`.
    fn fits(&self, field: &[u8], value: &[u8]) -> bool {
        let pair = varint::len(field.len()) + field.len() + varint::len(value.len()) + value.len();
        self.buf.len() + pair <= MAX_PACKED_LEN
    }

    /// Appends a field that is not there: new fields go last, as in Redis's listpack.
    fn push(&mut self, field: &[u8], value: &[u8]) {
        // Grown to fit, as Redis reallocates its listpack: doubling would leave up to half of
        // a small hash's buffer unused, and the buffer is copied into the key's entry anyway.
        self.buf.reserve_exact(
            varint::len(field.len()) + field.len() + varint::len(value.len()) + value.len(),
        );
        varint::push(&mut self.buf, field.len());
        self.buf.extend_from_slice(field);
        varint::push(&mut self.buf, value.len());
        self.buf.extend_from_slice(value);
        self.len += 1;
    }

    /// Changes the value of `pair`, where it is.
    fn replace(&mut self, pair: Pair, value: &[u8]) {
        if pair.end - pair.value == value.len() {
            self.buf[pair.value..pair.end].copy_from_slice(value);
            return;
        }
        let mut encoded = Vec::with_capacity(varint::len(value.len()) + value.len());
        varint::push(&mut encoded, value.len());
        encoded.extend_from_slice(value);
        let old = pair.end - pair.value_len;
        if encoded.len() > old {
            self.buf.reserve_exact(encoded.len() - old);
        }
        self.buf.splice(pair.value_len..pair.end, encoded);
        self.shrink();
    }

    fn remove(&mut self, pair: Pair) {
        self.buf.drain(pair.start..pair.end);
        self.len -= 1;
        self.shrink();
    }

    fn shrink(&mut self) {
        if self.buf.capacity() > 2 * self.buf.len() + 64 {
            self.buf.shrink_to_fit();
        }
    }
}

/// A hash's fields with their values. See [`HashRef::iter`].
pub enum Iter<'a> {
    Packed(PackedIter<'a>),
    Table(TableIter<'a>),
}

#[doc(hidden)]
pub struct TableIter<'a>(hashbrown::hash_table::Iter<'a, Field>);

#[doc(hidden)]
pub struct PackedIter<'a> {
    buf: &'a [u8],
    at: usize,
    remaining: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (field, pair) = pair_at(self.buf, self.at);
        self.at = pair.end;
        self.remaining -= 1;
        Some((field, pair.value(self.buf)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed(i) => i.next(),
            Iter::Table(i) => i.0.next().map(|(f, v)| (&**f, &**v)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Packed(i) => i.size_hint(),
            Iter::Table(i) => i.0.size_hint(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}
impl ExactSizeIterator for PackedIter<'_> {}

#[cfg(test)]
mod tests;
