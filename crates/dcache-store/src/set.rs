//! Sets: unordered unique members, in one of three encodings, as Redis 7.2 keeps them.
//!
//! ```text
//!   intset     sorted integers, packed at the narrowest width (2, 4 or 8 bytes) that holds all
//!              of them: one allocation, binary search
//!   listpack   members back to back, each after its length (a varint), in insertion order:
//!              one allocation, linear search; for a few short members
//!   hashtable  a hash table of boxed members
//! ```
//!
//! A set starts as an intset when its first member is an integer, and moves one way only,
//! intset → listpack → hashtable (or straight to the hashtable), when it passes the limits in
//! [`SetLimits`] (Redis's `set-max-intset-entries`, `set-max-listpack-entries`,
//! `set-max-listpack-value`) or takes a member the encoding cannot hold; it never moves back,
//! as in Redis. `mem` is computed from the encoding's own bytes (the packed forms: one
//! allocation's size class; the table: each member's allocation with its bucket's overhead).
//!
//! Positions for slot streaming ([`SetValue::buckets`], [`SetValue::bucket`]) are the table's
//! buckets; a packed form is never streamed in parts (it goes whole, in its form, to keep its
//! order), and its positions are indexes. Whatever the limits, a packed form stays within
//! `crate::memory::MAX_PACKED_LEN` bytes (Redis's `lpSafeToAdd`), so that it fits one effect.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::memory::{MAX_PACKED_LEN, alloc_size};
use crate::varint;

/// Bytes that a member costs beyond its allocation: hashbrown's bucket (a boxed slice) and its
/// control byte at 7/8 load.
const MEMBER_OVERHEAD: usize = (16 + 1) * 8 / 7;

/// Redis caps the intset's limit so that an intset stays addressable (`intsetMaxEntries`).
const INTSET_CAP: usize = 1 << 30;

/// When a set leaves its compact encodings: Redis's `set-max-*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetLimits {
    /// `set-max-intset-entries`: the most integers an intset holds.
    pub max_intset_entries: usize,
    /// `set-max-listpack-entries`: the most members a listpack holds.
    pub max_listpack_entries: usize,
    /// `set-max-listpack-value`: the longest member (bytes) a listpack holds.
    pub max_listpack_value: usize,
}

impl Default for SetLimits {
    fn default() -> Self {
        Self {
            max_intset_entries: 512,
            max_listpack_entries: 128,
            max_listpack_value: 64,
        }
    }
}

impl SetLimits {
    fn intset_entries(&self) -> usize {
        self.max_intset_entries.min(INTSET_CAP)
    }
}

/// A set's encoding, by Redis's name for it (`OBJECT ENCODING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetEncoding {
    Intset,
    Listpack,
    Hashtable,
}

impl SetEncoding {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SetEncoding::Intset => "intset",
            SetEncoding::Listpack => "listpack",
            SetEncoding::Hashtable => "hashtable",
        }
    }
}

/// A member as a set hands it out: borrowed bytes, or an intset's integer written out in
/// decimal (on the stack). Derefs to the bytes.
#[derive(Clone, Copy)]
pub struct Member<'a>(MemberRepr<'a>);

#[derive(Clone, Copy)]
enum MemberRepr<'a> {
    Bytes(&'a [u8]),
    Int { digits: [u8; 20], len: u8 },
}

impl<'a> Member<'a> {
    fn int(value: i64) -> Self {
        let (digits, len) = itoa_buf(value);
        Member(MemberRepr::Int { digits, len })
    }
}

/// `value` in decimal: the digits and how many there are (at most 20).
fn itoa_buf(value: i64) -> ([u8; 20], u8) {
    let mut digits = [0u8; 20];
    let mut tmp = [0u8; 20];
    let mut n = value.unsigned_abs();
    let mut i = 0;
    loop {
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        i += 1;
        if n == 0 {
            break;
        }
    }
    let mut len = 0;
    if value < 0 {
        digits[0] = b'-';
        len = 1;
    }
    for d in tmp[..i].iter().rev() {
        digits[len] = *d;
        len += 1;
    }
    (digits, len as u8)
}

impl std::ops::Deref for Member<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            MemberRepr::Bytes(b) => b,
            MemberRepr::Int { digits, len } => &digits[..*len as usize],
        }
    }
}

impl AsRef<[u8]> for Member<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Member<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// The integer `bytes` spell, as Redis reads set members (`string2ll`): decimal, no sign but a
/// leading `-`, no leading zero, no `-0`, within `i64`.
#[must_use]
pub fn member_int(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    if bytes == b"0" {
        return Some(0);
    }
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        if value == 1 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(value).ok().map(|v| -v)
        }
    } else {
        i64::try_from(value).ok()
    }
}

/// Bytes of the narrowest intset width that holds `v`.
fn width_of(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

/// Sorted integers packed at one width, borrowed: every read of the intset is written here.
#[derive(Clone, Copy)]
struct IntsRef<'a> {
    width: usize,
    bytes: &'a [u8],
}

impl<'a> IntsRef<'a> {
    fn len(self) -> usize {
        self.bytes.len() / self.width
    }

    fn get(self, i: usize) -> i64 {
        let at = &self.bytes[i * self.width..(i + 1) * self.width];
        match self.width {
            2 => i64::from(i16::from_le_bytes(at.try_into().expect("2 bytes"))),
            4 => i64::from(i32::from_le_bytes(at.try_into().expect("4 bytes"))),
            _ => i64::from_le_bytes(at.try_into().expect("8 bytes")),
        }
    }

    /// Where `v` is, or where it would go.
    fn search(self, v: i64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).cmp(&v) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    fn iter(self) -> impl ExactSizeIterator<Item = i64> + 'a {
        (0..self.len()).map(move |i| self.get(i))
    }
}

/// Sorted integers packed at one width.
#[derive(Clone)]
struct IntSet {
    width: usize,
    bytes: Vec<u8>,
}

impl IntSet {
    fn new() -> Self {
        Self {
            width: 2,
            bytes: Vec::new(),
        }
    }

    fn as_ref(&self) -> IntsRef<'_> {
        IntsRef {
            width: self.width,
            bytes: &self.bytes,
        }
    }

    fn len(&self) -> usize {
        self.as_ref().len()
    }

    fn get(&self, i: usize) -> i64 {
        self.as_ref().get(i)
    }

    fn put(bytes: &mut [u8], width: usize, i: usize, v: i64) {
        bytes[i * width..(i + 1) * width].copy_from_slice(&v.to_le_bytes()[..width]);
    }

    fn search(&self, v: i64) -> Result<usize, usize> {
        self.as_ref().search(v)
    }

    fn insert(&mut self, v: i64) -> bool {
        let at = match self.search(v) {
            Ok(_) => return false,
            Err(at) => at,
        };
        let width = width_of(v).max(self.width);
        if width != self.width {
            // Widen every integer: a value past the current width is larger or smaller than
            // all of them, as in Redis's intset upgrade.
            let mut wider = vec![0u8; (self.len() + 1) * width];
            for i in 0..self.len() {
                let j = if i < at { i } else { i + 1 };
                Self::put(&mut wider, width, j, self.get(i));
            }
            Self::put(&mut wider, width, at, v);
            self.width = width;
            self.bytes = wider;
            return true;
        }
        let start = at * width;
        self.bytes
            .splice(start..start, v.to_le_bytes()[..width].iter().copied());
        true
    }

    fn remove(&mut self, v: i64) -> bool {
        match self.search(v) {
            Ok(at) => {
                self.bytes.drain(at * self.width..(at + 1) * self.width);
                true
            }
            Err(_) => false,
        }
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = i64> + '_ {
        self.as_ref().iter()
    }
}

/// Members back to back, each after its length as a varint.
#[derive(Clone, Default)]
struct Packed {
    bytes: Vec<u8>,
    len: usize,
}

/// Iterates a packed form: (start of the entry, member).
struct PackedIter<'a> {
    bytes: &'a [u8],
    at: usize,
    left: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let start = self.at;
        let (len, body) = varint::read(self.bytes, start);
        self.at = body + len;
        self.left -= 1;
        Some((start, &self.bytes[body..body + len]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for PackedIter<'_> {}

/// A listpack-encoded set's bytes, borrowed: every read of that form is written here.
#[derive(Clone, Copy)]
struct PackRef<'a> {
    bytes: &'a [u8],
    len: usize,
}

impl<'a> PackRef<'a> {
    fn iter(self) -> PackedIter<'a> {
        PackedIter {
            bytes: self.bytes,
            at: 0,
            left: self.len,
        }
    }

    fn find(self, member: &[u8]) -> Option<usize> {
        self.iter().find(|(_, m)| *m == member).map(|(at, _)| at)
    }
}

impl Packed {
    fn as_ref(&self) -> PackRef<'_> {
        PackRef {
            bytes: &self.bytes,
            len: self.len,
        }
    }

    fn iter(&self) -> PackedIter<'_> {
        self.as_ref().iter()
    }

    fn find(&self, member: &[u8]) -> Option<usize> {
        self.as_ref().find(member)
    }

    /// Whether `member` keeps the buffer within `MAX_PACKED_LEN`.
    fn fits(&self, member: &[u8]) -> bool {
        self.bytes.len() + varint::len(member.len()) + member.len() <= MAX_PACKED_LEN
    }

    fn push(&mut self, member: &[u8]) {
        // Grown to fit (see the sorted set's packed form).
        self.bytes
            .reserve_exact(varint::len(member.len()) + member.len());
        varint::push(&mut self.bytes, member.len());
        self.bytes.extend_from_slice(member);
        self.len += 1;
    }

    fn remove(&mut self, member: &[u8]) -> bool {
        match self.find(member) {
            Some(at) => {
                let (len, body) = varint::read(&self.bytes, at);
                self.bytes.drain(at..body + len);
                self.len -= 1;
                true
            }
            None => false,
        }
    }
}

#[derive(Clone)]
enum Repr {
    Ints(IntSet),
    Pack(Packed),
    Table(Table),
}

/// The hash table form.
#[derive(Clone)]
struct Table {
    table: HashTable<Box<[u8]>>,
    hasher: DefaultHashBuilder,
    /// The members' allocations with their buckets' overhead.
    mem: usize,
}

/// A set value.
#[derive(Clone)]
pub struct SetValue {
    repr: Repr,
}

impl Default for SetValue {
    fn default() -> Self {
        Self {
            repr: Repr::Ints(IntSet::new()),
        }
    }
}

fn member_mem(member: &[u8]) -> usize {
    alloc_size(member.len()) + MEMBER_OVERHEAD
}

/// Decimal digits of `v`, its sign included (Redis's `sdigits10`).
fn digits(v: i64) -> usize {
    itoa_buf(v).1 as usize
}

/// A set, borrowed: an owned [`SetValue`] seen through [`SetValue::view`], or a small set held
/// inline in its key's entry. Carries every read the owned set has.
#[derive(Clone, Copy)]
pub struct SetRef<'a>(RefRepr<'a>);

#[derive(Clone, Copy)]
enum RefRepr<'a> {
    Ints(IntsRef<'a>),
    Pack(PackRef<'a>),
    Table(&'a Table),
}

/// A compact set's encoding, as an entry holds it inline.
pub(crate) enum CompactParts<'a> {
    /// An intset: the width of its integers (2, 4 or 8) and their bytes.
    Ints { width: usize, bytes: &'a [u8] },
    /// A listpack: its bytes and how many members it has.
    Pack { bytes: &'a [u8], len: usize },
}

impl<'a> SetRef<'a> {
    /// A compact set from its encoding (as [`SetRef::compact_parts`] gave it).
    pub(crate) fn compact(parts: CompactParts<'a>) -> Self {
        SetRef(match parts {
            CompactParts::Ints { width, bytes } => RefRepr::Ints(IntsRef { width, bytes }),
            CompactParts::Pack { bytes, len } => RefRepr::Pack(PackRef { bytes, len }),
        })
    }

    /// The compact encoding's parts; `None` for the hash table.
    pub(crate) fn compact_parts(self) -> Option<CompactParts<'a>> {
        match self.0 {
            RefRepr::Ints(s) => Some(CompactParts::Ints {
                width: s.width,
                bytes: s.bytes,
            }),
            RefRepr::Pack(p) => Some(CompactParts::Pack {
                bytes: p.bytes,
                len: p.len,
            }),
            RefRepr::Table(_) => None,
        }
    }

    #[must_use]
    pub fn len(self) -> usize {
        match self.0 {
            RefRepr::Ints(s) => s.len(),
            RefRepr::Pack(p) => p.len,
            RefRepr::Table(t) => t.table.len(),
        }
    }

    #[must_use]
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    #[must_use]
    pub fn encoding(self) -> SetEncoding {
        match self.0 {
            RefRepr::Ints(_) => SetEncoding::Intset,
            RefRepr::Pack(_) => SetEncoding::Listpack,
            RefRepr::Table(_) => SetEncoding::Hashtable,
        }
    }

    /// Bytes the members hold: a packed form's allocation, or the table's members in
    /// allocator size classes with per-member overhead.
    #[must_use]
    pub fn mem(self) -> usize {
        match self.0 {
            RefRepr::Ints(s) => alloc_size(s.bytes.len()),
            RefRepr::Pack(p) => alloc_size(p.bytes.len()),
            RefRepr::Table(t) => t.mem,
        }
    }

    #[must_use]
    pub fn contains(self, member: &[u8]) -> bool {
        match self.0 {
            RefRepr::Ints(s) => member_int(member).is_some_and(|v| s.search(v).is_ok()),
            RefRepr::Pack(p) => p.find(member).is_some(),
            RefRepr::Table(t) => t
                .table
                .find(t.hasher.hash_one(member), |m| **m == *member)
                .is_some(),
        }
    }

    /// The members: an intset's in ascending order, a listpack's in insertion order, a
    /// table's in its own.
    pub fn iter(self) -> impl ExactSizeIterator<Item = Member<'a>> {
        let (ints, packed, table) = match self.0 {
            RefRepr::Ints(s) => (Some(s.iter().map(Member::int)), None, None),
            RefRepr::Pack(p) => (
                None,
                Some(p.iter().map(|(_, m)| Member(MemberRepr::Bytes(m)))),
                None,
            ),
            RefRepr::Table(t) => (
                None,
                None,
                Some(t.table.iter().map(|m| Member(MemberRepr::Bytes(m)))),
            ),
        };
        Either3 {
            a: ints,
            b: packed,
            c: table,
        }
    }

    /// The member at `index` of [`SetRef::iter`]'s order, for random picks: constant time
    /// for an intset, linear for the others.
    #[must_use]
    pub fn nth(self, index: usize) -> Option<Member<'a>> {
        match self.0 {
            RefRepr::Ints(s) => (index < s.len()).then(|| Member::int(s.get(index))),
            _ => self.iter().nth(index),
        }
    }

    /// A member chosen from `random` (any 64-bit number), close to uniformly: a table is
    /// probed at random buckets, a packed form indexed.
    #[must_use]
    pub fn pick(self, mut random: impl FnMut() -> u64) -> Option<Member<'a>> {
        if self.is_empty() {
            return None;
        }
        if let RefRepr::Table(t) = self.0 {
            // Bounded probing: a table emptied by removals keeps its buckets, so fall back to
            // an index after a while.
            for _ in 0..64 {
                let at = (random() % t.table.num_buckets() as u64) as usize;
                if let Some(m) = t.table.get_bucket(at) {
                    return Some(Member(MemberRepr::Bytes(m)));
                }
            }
        }
        self.nth((random() % self.len() as u64) as usize)
    }

    /// How many positions the set has for streaming; members are at positions below this.
    pub(crate) fn buckets(self) -> usize {
        match self.0 {
            RefRepr::Table(t) => t.table.num_buckets(),
            _ => self.len(),
        }
    }

    /// The member at position `index`, if one is there.
    pub(crate) fn bucket(self, index: usize) -> Option<Member<'a>> {
        match self.0 {
            RefRepr::Table(t) => t
                .table
                .get_bucket(index)
                .map(|m| Member(MemberRepr::Bytes(m))),
            _ => self.nth(index),
        }
    }

    /// An owned copy, in the same encoding.
    #[must_use]
    pub fn into_owned(self) -> SetValue {
        let repr = match self.0 {
            RefRepr::Ints(s) => Repr::Ints(IntSet {
                width: s.width,
                bytes: s.bytes.to_vec(),
            }),
            RefRepr::Pack(p) => Repr::Pack(Packed {
                bytes: p.bytes.to_vec(),
                len: p.len,
            }),
            RefRepr::Table(t) => Repr::Table(t.clone()),
        };
        SetValue { repr }
    }
}

impl PartialEq for SetRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains(&m))
    }
}

impl Eq for SetRef<'_> {}

impl std::fmt::Debug for SetRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl SetValue {
    /// The set, borrowed, with its reads.
    #[must_use]
    pub fn view(&self) -> SetRef<'_> {
        SetRef(match &self.repr {
            Repr::Ints(s) => RefRepr::Ints(s.as_ref()),
            Repr::Pack(p) => RefRepr::Pack(p.as_ref()),
            Repr::Table(t) => RefRepr::Table(t),
        })
    }

    /// An empty set in the encoding Redis gives a set created for `first` and about `hint`
    /// members (`setTypeCreate`).
    #[must_use]
    pub fn for_members(first: &[u8], hint: usize, limits: &SetLimits) -> Self {
        let repr = if member_int(first).is_some() && hint <= limits.intset_entries() {
            Repr::Ints(IntSet::new())
        } else if hint <= limits.max_listpack_entries {
            Repr::Pack(Packed::default())
        } else {
            Self::table_repr(hint)
        };
        Self { repr }
    }

    fn table_repr(capacity: usize) -> Repr {
        Repr::Table(Table {
            table: HashTable::with_capacity(capacity.min(1 << 20)),
            hasher: DefaultHashBuilder::default(),
            mem: 0,
        })
    }

    /// Moves to the hash table ahead of adding about `hint` members that a compact encoding
    /// could not take in any case (`setTypeMaybeConvert`).
    pub fn reserve(&mut self, hint: usize, limits: &SetLimits) {
        let convert = match &self.repr {
            Repr::Ints(_) => hint > limits.intset_entries(),
            Repr::Pack(_) => hint > limits.max_listpack_entries,
            Repr::Table(_) => false,
        };
        if convert {
            self.convert_to_table(self.len() + hint);
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

    #[must_use]
    pub fn encoding(&self) -> SetEncoding {
        self.view().encoding()
    }

    /// Bytes the members hold: a packed form's allocation, or the table's members in
    /// allocator size classes with per-member overhead.
    #[must_use]
    pub fn mem(&self) -> usize {
        self.view().mem()
    }

    #[must_use]
    pub fn contains(&self, member: &[u8]) -> bool {
        self.view().contains(member)
    }

    /// Adds a member under the default limits; true when it is new. For tests and tools: a
    /// command passes the configured limits ([`SetValue::insert_with`]); a copy from another
    /// node keeps its sender's form (see [`crate::effect`]).
    pub fn insert(&mut self, member: &[u8]) -> bool {
        self.insert_with(member, &SetLimits::default())
    }

    /// Adds a member, changing the encoding as `limits` say (`setTypeAdd`); true when it is new.
    pub fn insert_with(&mut self, member: &[u8], limits: &SetLimits) -> bool {
        match &mut self.repr {
            Repr::Ints(s) => {
                if let Some(v) = member_int(member) {
                    if s.search(v).is_ok() {
                        return false;
                    }
                    if (s.len() + 1) * width_of(v).max(s.width) > MAX_PACKED_LEN {
                        let n = s.len();
                        self.convert_to_table(n + 1);
                        return self.table_insert(member);
                    }
                    s.insert(v);
                    if s.len() > limits.intset_entries() {
                        self.convert_to_table(self.len());
                    }
                    return true;
                }
                // A member that is not an integer: to a listpack if every integer and the new
                // member fit one, else to the table.
                let n = s.len();
                let longest = if n == 0 {
                    0
                } else {
                    digits(s.get(0)).max(digits(s.get(n - 1)))
                };
                if n < limits.max_listpack_entries
                    && member.len() <= limits.max_listpack_value
                    && longest <= limits.max_listpack_value
                    // An integer takes at most 21 bytes in a listpack (20 digits, and a length).
                    && n * 21 <= MAX_PACKED_LEN
                {
                    let mut packed = Packed::default();
                    for v in s.iter() {
                        packed.push(&Member::int(v));
                    }
                    if packed.fits(member) {
                        packed.push(member);
                        self.repr = Repr::Pack(packed);
                        return true;
                    }
                }
                self.convert_to_table(n + 1);
                self.table_insert(member);
                true
            }
            Repr::Pack(p) => {
                if p.find(member).is_some() {
                    return false;
                }
                if p.len < limits.max_listpack_entries
                    && member.len() <= limits.max_listpack_value
                    && p.fits(member)
                {
                    p.push(member);
                } else {
                    let n = p.len;
                    self.convert_to_table(n + 1);
                    self.table_insert(member);
                }
                true
            }
            Repr::Table(_) => self.table_insert(member),
        }
    }

    /// An empty set in `encoding`, which it keeps whatever its size (but see
    /// [`SetValue::push_new`]): a copy of a set, or a part of one, as [`crate::effect`] carries
    /// them.
    pub(crate) fn of_encoding(encoding: SetEncoding) -> Self {
        let repr = match encoding {
            SetEncoding::Intset => Repr::Ints(IntSet::new()),
            SetEncoding::Listpack => Repr::Pack(Packed::default()),
            SetEncoding::Hashtable => Self::table_repr(0),
        };
        Self { repr }
    }

    /// An intset of `ints`, in any order, with no limit but `MAX_PACKED_LEN` (past which it is
    /// a table): a copy of another node's intset. `None` when an integer comes twice.
    pub(crate) fn of_ints(mut ints: Vec<i64>) -> Option<Self> {
        ints.sort_unstable();
        if ints.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
        let width = ints.iter().map(|&v| width_of(v)).max().unwrap_or(2);
        let mut set = IntSet {
            width,
            bytes: vec![0; ints.len() * width],
        };
        for (i, &v) in ints.iter().enumerate() {
            IntSet::put(&mut set.bytes, width, i, v);
        }
        let mut value = Self {
            repr: Repr::Ints(set),
        };
        if ints.len() * width > MAX_PACKED_LEN {
            value.convert_to_table(ints.len());
        }
        Some(value)
    }

    /// Adds a member in the set's own form, with no limit but `MAX_PACKED_LEN` (past which a
    /// listpack moves into the table): how a copy is rebuilt in the form its sender held. In a
    /// listpack the member must not be there yet (a copy's decoder checks that its members are
    /// distinct): it is appended without a search. An intset takes it as
    /// [`SetValue::insert_in_form`] does. False when the member was there.
    pub(crate) fn push_new(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(_) => self.insert_in_form(member),
            Repr::Pack(p) if p.fits(member) => {
                p.push(member);
                true
            }
            Repr::Pack(p) => {
                let n = p.len;
                self.convert_to_table(n + 1);
                self.table_insert(member)
            }
            Repr::Table(_) => self.table_insert(member),
        }
    }

    /// Adds a member in the set's own form as far as it can hold it (an intset takes only
    /// integers), with no limit but `MAX_PACKED_LEN`: how the rest of a streamed set is added
    /// to the part that came first. True when the member is new.
    pub(crate) fn insert_in_form(&mut self, member: &[u8]) -> bool {
        self.insert_with(
            member,
            &SetLimits {
                max_intset_entries: usize::MAX,
                max_listpack_entries: usize::MAX,
                max_listpack_value: usize::MAX,
            },
        )
    }

    fn table_insert(&mut self, member: &[u8]) -> bool {
        let Repr::Table(Table { table, hasher, mem }) = &mut self.repr else {
            unreachable!("called on a table");
        };
        let hash = hasher.hash_one(member);
        if table.find(hash, |m| **m == *member).is_some() {
            return false;
        }
        *mem += member_mem(member);
        table.insert_unique(hash, member.into(), |m| hasher.hash_one(&**m));
        true
    }

    fn convert_to_table(&mut self, capacity: usize) {
        let old = std::mem::replace(&mut self.repr, Self::table_repr(capacity));
        match old {
            Repr::Ints(s) => s.iter().for_each(|v| {
                self.table_insert(&Member::int(v));
            }),
            Repr::Pack(p) => p.iter().for_each(|(_, m)| {
                self.table_insert(m);
            }),
            table @ Repr::Table(_) => self.repr = table,
        }
    }

    /// Removes a member; true when it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(s) => member_int(member).is_some_and(|v| s.remove(v)),
            Repr::Pack(p) => p.remove(member),
            Repr::Table(Table { table, hasher, mem }) => {
                match table.find_entry(hasher.hash_one(member), |m| **m == *member) {
                    Ok(entry) => {
                        let (m, _) = entry.remove();
                        *mem -= member_mem(&m);
                        true
                    }
                    Err(_) => false,
                }
            }
        }
    }

    /// The members: an intset's in ascending order, a listpack's in insertion order, a
    /// table's in its own.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Member<'_>> {
        self.view().iter()
    }

    /// The member at `index` of [`SetValue::iter`]'s order, for random picks: constant time
    /// for an intset, linear for the others.
    #[must_use]
    pub fn nth(&self, index: usize) -> Option<Member<'_>> {
        self.view().nth(index)
    }

    /// A member chosen from `random` (any 64-bit number), close to uniformly: a table is
    /// probed at random buckets, a packed form indexed.
    #[must_use]
    pub fn pick(&self, random: impl FnMut() -> u64) -> Option<Member<'_>> {
        self.view().pick(random)
    }

    /// See [`SetRef::buckets`].
    #[cfg(test)]
    fn buckets(&self) -> usize {
        self.view().buckets()
    }

    /// See [`SetRef::bucket`].
    #[cfg(test)]
    fn bucket(&self, index: usize) -> Option<Member<'_>> {
        self.view().bucket(index)
    }
}

/// One of three iterators, without boxing.
struct Either3<A, B, C> {
    a: Option<A>,
    b: Option<B>,
    c: Option<C>,
}

impl<'a, A, B, C> Iterator for Either3<A, B, C>
where
    A: Iterator<Item = Member<'a>>,
    B: Iterator<Item = Member<'a>>,
    C: Iterator<Item = Member<'a>>,
{
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        if let Some(a) = &mut self.a {
            return a.next();
        }
        if let Some(b) = &mut self.b {
            return b.next();
        }
        self.c.as_mut()?.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if let Some(a) = &self.a {
            return a.size_hint();
        }
        if let Some(b) = &self.b {
            return b.size_hint();
        }
        self.c.as_ref().map_or((0, Some(0)), Iterator::size_hint)
    }
}

impl<'a, A, B, C> ExactSizeIterator for Either3<A, B, C>
where
    A: ExactSizeIterator<Item = Member<'a>>,
    B: ExactSizeIterator<Item = Member<'a>>,
    C: ExactSizeIterator<Item = Member<'a>>,
{
}

impl PartialEq for SetValue {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for SetValue {}

impl std::fmt::Debug for SetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

#[cfg(test)]
mod tests;
