//! Entries and the value types they hold, laid out to cost little memory.
//!
//! ```text
//!   Entry (32 bytes in the shard's slab)
//!   ┌──────────────────────────┬───────────┬──────────┬─────────┬─────────┐
//!   │ data: ThinBytes (12 B)   │ meta: u32 │ slot_pos │ touched │ version │
//!   └────────────┬─────────────┴───────────┴──────────┴─────────┴─────────┘
//!                │   (pointer, u32 length)   meta bits 0-29: key length, 30: aggregate,
//!                ▼                                     31: has a TTL
//!   string:            [ key bytes | value bytes                   | expire_at? ]
//!   inline aggregate:  [ key bytes | tag | header | packed bytes   | expire_at? ]
//!   side-table one:    [ key bytes |                                 expire_at? ]
//!                      (expire_at: 8 bytes LE, only with a TTL)
//! ```
//!
//! A string entry is one allocation holding its key and its value; a TTL costs eight bytes in the
//! same allocation, and only for keys that have one. A compact hash, list, set or sorted set is
//! held the same way, its packed form where a string keeps its value (see `crate::inline`), so
//! that a small aggregate costs one allocation. A large one (ring buffer, hash table, tree) keeps
//! only its key (and TTL) here; its elements live in the shard's side table of aggregates, keyed
//! by cell. The aggregate bit says "not a string"; an aggregate's body being
//! empty or not says where its elements are, so that no bit is taken from the key length.
//!
//! The allocation is held by a thin pointer with a 32-bit length (`crate::thin`; a key and a
//! value are each under 2^30 bytes), which leaves room in the 32 bytes for `slot_pos`: the
//! entry's position in its cluster slot's list in the shard's slot index (`crate::slot_index`),
//! kept here rather than in a table beside the slab, 4 bytes a key less. It belongs to the cell,
//! not to the value: [`Entry::replace`] keeps it when an entry is rebuilt.

use crate::clock::Version;
use crate::hash::{HashRef, HashValue};
use crate::list::{ListRef, ListValue};
use crate::memory::alloc_size;
use crate::set::{SetRef, SetValue};
use crate::thin::ThinBytes;
use crate::zset::{ZSetRef, ZSetValue};

/// The longest key the store takes (the length has 30 bits).
pub const MAX_KEY_LEN: usize = (1 << 30) - 1;

const KEY_LEN_MASK: u32 = (1 << 30) - 1;
const AGGREGATE_BIT: u32 = 1 << 30;
const VOLATILE_BIT: u32 = 1 << 31;

/// An aggregate's fixed part: its cell in the shard's side table and its empty container.
pub(crate) const AGGREGATE_BASE: usize = 96;

/// A value, borrowed from the store or given to it. Strings hold any bytes; integers and floats
/// are strings that parse as such, as in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Str(&'a [u8]),
    Hash(HashRef<'a>),
    List(ListRef<'a>),
    Set(SetRef<'a>),
    ZSet(ZSetRef<'a>),
}

impl Value<'_> {
    /// The value's type.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Value::Str(_) => Kind::Str,
            Value::Hash(_) => Kind::Hash,
            Value::List(_) => Kind::List,
            Value::Set(_) => Kind::Set,
            Value::ZSet(_) => Kind::ZSet,
        }
    }

    /// Redis's name for the type, as `TYPE` prints it.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// What the value costs the budget beyond its key's entry.
    pub(crate) fn mem(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Hash(h) => AGGREGATE_BASE + h.mem(),
            Value::List(l) => AGGREGATE_BASE + l.mem(),
            Value::Set(s) => AGGREGATE_BASE + s.mem(),
            Value::ZSet(z) => AGGREGATE_BASE + z.mem(),
        }
    }

    /// Elements (fields, members) in an aggregate; 0 for a string.
    pub(crate) fn elements(&self) -> usize {
        match self {
            Value::Str(_) => 0,
            Value::Hash(h) => h.len(),
            Value::List(l) => l.len(),
            Value::Set(s) => s.len(),
            Value::ZSet(z) => z.len(),
        }
    }

    #[must_use]
    pub fn into_owned(self) -> OwnedValue {
        match self {
            Value::Str(s) => OwnedValue::Str(s.into()),
            Value::Hash(h) => OwnedValue::Hash(Box::new(h.into_owned())),
            Value::List(l) => OwnedValue::List(Box::new(l.into_owned())),
            Value::Set(s) => OwnedValue::Set(Box::new(s.into_owned())),
            Value::ZSet(z) => OwnedValue::ZSet(Box::new(z.into_owned())),
        }
    }
}

/// A value taken out of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedValue {
    Str(Box<[u8]>),
    Hash(Box<HashValue>),
    List(Box<ListValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
}

impl OwnedValue {
    #[must_use]
    pub fn as_value(&self) -> Value<'_> {
        match self {
            OwnedValue::Str(s) => Value::Str(s),
            OwnedValue::Hash(h) => Value::Hash(h.view()),
            OwnedValue::List(l) => Value::List(l.view()),
            OwnedValue::Set(s) => Value::Set(s.view()),
            OwnedValue::ZSet(z) => Value::ZSet(z.view()),
        }
    }
}

/// What a new key starts as when [`crate::Shard::modify`] creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Hash,
    List,
    Set,
    ZSet,
}

/// The values kept beside the slab, in the shard's side table: every type but strings.
#[derive(Debug, Clone)]
pub(crate) enum Aggregate {
    Hash(HashValue),
    List(ListValue),
    Set(SetValue),
    ZSet(ZSetValue),
}

impl Aggregate {
    /// An empty aggregate of `kind`; `None` for strings.
    pub(crate) fn empty(kind: Kind) -> Option<Self> {
        Some(match kind {
            Kind::Str => return None,
            Kind::Hash => Aggregate::Hash(HashValue::default()),
            Kind::List => Aggregate::List(ListValue::default()),
            Kind::Set => Aggregate::Set(SetValue::default()),
            Kind::ZSet => Aggregate::ZSet(ZSetValue::default()),
        })
    }

    /// The aggregate that `value` is; `None` for strings.
    pub(crate) fn of(value: Value<'_>) -> Option<Self> {
        Self::owned(value.into_owned())
    }

    /// The aggregate that `value` is, without copying it; `None` for strings.
    pub(crate) fn owned(value: OwnedValue) -> Option<Self> {
        Some(match value {
            OwnedValue::Str(_) => return None,
            OwnedValue::Hash(h) => Aggregate::Hash(*h),
            OwnedValue::List(l) => Aggregate::List(*l),
            OwnedValue::Set(s) => Aggregate::Set(*s),
            OwnedValue::ZSet(z) => Aggregate::ZSet(*z),
        })
    }

    pub(crate) fn into_owned(self) -> OwnedValue {
        match self {
            Aggregate::Hash(h) => OwnedValue::Hash(Box::new(h)),
            Aggregate::List(l) => OwnedValue::List(Box::new(l)),
            Aggregate::Set(s) => OwnedValue::Set(Box::new(s)),
            Aggregate::ZSet(z) => OwnedValue::ZSet(Box::new(z)),
        }
    }

    pub(crate) fn as_value(&self) -> Value<'_> {
        match self {
            Aggregate::Hash(h) => Value::Hash(h.view()),
            Aggregate::List(l) => Value::List(l.view()),
            Aggregate::Set(s) => Value::Set(s.view()),
            Aggregate::ZSet(z) => Value::ZSet(z.view()),
        }
    }

    /// Elements (fields, members) held.
    pub(crate) fn len(&self) -> usize {
        self.as_value().elements()
    }

    /// What the aggregate costs the budget beyond its key's entry (from the owned value: a
    /// packed list counts its allocation's capacity).
    pub(crate) fn mem(&self) -> usize {
        AGGREGATE_BASE
            + match self {
                Aggregate::Hash(h) => h.mem(),
                Aggregate::List(l) => l.mem(),
                Aggregate::Set(s) => s.mem(),
                Aggregate::ZSet(z) => z.mem(),
            }
    }
}

/// One key in a shard's slab. See the module docs for the layout.
#[derive(Debug)]
pub(crate) struct Entry {
    data: ThinBytes,
    meta: u32,
    /// Its position in its cluster slot's list in the shard's slot index, which the shard sets
    /// and keeps up to date while it keeps the index (unused, 0, until then).
    pub(crate) slot_pos: u32,
    /// Seconds since the Unix epoch at the last access (for `OBJECT IDLETIME`).
    pub(crate) touched: u32,
    pub(crate) version: Version,
}

// The module docs' 32 bytes: the slab's cell is `Option<Entry>`, the data pointer its niche.
const _: () = assert!(std::mem::size_of::<Option<Entry>>() == 32);

impl Entry {
    /// A string entry.
    pub(crate) fn string(
        key: &[u8],
        value: &[u8],
        expire_at: u64,
        touched: u32,
        version: Version,
    ) -> Self {
        Self::build(key, &[], value, 0, expire_at, touched, version)
    }

    /// The entry of an aggregate that lives in the side table (its body is empty).
    pub(crate) fn aggregate(key: &[u8], expire_at: u64, touched: u32, version: Version) -> Self {
        Self::build(key, &[], &[], AGGREGATE_BIT, expire_at, touched, version)
    }

    /// The entry of an aggregate held inline: its body is `header` then `packed` (see
    /// `crate::inline`), never empty.
    pub(crate) fn inline(
        key: &[u8],
        header: &[u8],
        packed: &[u8],
        expire_at: u64,
        touched: u32,
        version: Version,
    ) -> Self {
        debug_assert!(!header.is_empty(), "an inline body starts with its tag");
        Self::build(
            key,
            header,
            packed,
            AGGREGATE_BIT,
            expire_at,
            touched,
            version,
        )
    }

    /// An entry of `key`, its body `head` then `body` and its meta of `flags`.
    ///
    /// # Panics
    ///
    /// When the key is over [`MAX_KEY_LEN`] bytes, or the whole entry over `u32::MAX` (the
    /// server bounds values by `proto-max-bulk-len`, itself at most [`MAX_KEY_LEN`]).
    fn build(
        key: &[u8],
        head: &[u8],
        body: &[u8],
        flags: u32,
        expire_at: u64,
        touched: u32,
        version: Version,
    ) -> Self {
        assert!(
            key.len() <= MAX_KEY_LEN,
            "keys are at most {MAX_KEY_LEN} bytes"
        );
        let expire = expire_at.to_le_bytes();
        let tail: &[u8] = if expire_at != 0 { &expire } else { &[] };
        let meta = key.len() as u32 | flags | if expire_at != 0 { VOLATILE_BIT } else { 0 };
        Self {
            data: ThinBytes::concat(&[key, head, body, tail]),
            meta,
            slot_pos: 0,
            touched,
            version,
        }
    }

    /// Puts `other` in this entry's place, keeping the place: its position in its slot's list,
    /// which belongs to the cell (the key stays the same, so does its slot).
    pub(crate) fn replace(&mut self, other: Entry) {
        debug_assert_eq!(self.key(), other.key(), "a cell keeps its key");
        let slot_pos = self.slot_pos;
        *self = other;
        self.slot_pos = slot_pos;
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.data[..(self.meta & KEY_LEN_MASK) as usize]
    }

    /// Whether the value is an aggregate (inline or in the side table), not a string.
    pub(crate) fn is_aggregate(&self) -> bool {
        self.meta & AGGREGATE_BIT != 0
    }

    /// Whether the value is an aggregate in the shard's side table: one whose body is empty.
    pub(crate) fn in_side_table(&self) -> bool {
        self.is_aggregate() && self.body().is_empty()
    }

    /// An inline aggregate's body (see `crate::inline`), if the entry holds one.
    pub(crate) fn inline_body(&self) -> Option<&[u8]> {
        Some(self.body()).filter(|b| self.is_aggregate() && !b.is_empty())
    }

    /// The bytes between the key and the TTL: a string's value, an inline aggregate's body.
    fn body(&self) -> &[u8] {
        &self.data[(self.meta & KEY_LEN_MASK) as usize..self.data.len() - self.tail()]
    }

    fn tail(&self) -> usize {
        if self.meta & VOLATILE_BIT != 0 { 8 } else { 0 }
    }

    /// The string value's bytes (empty for an aggregate).
    pub(crate) fn str_value(&self) -> &[u8] {
        if self.is_aggregate() {
            &[]
        } else {
            self.body()
        }
    }

    /// The string value, to change in place (its length stays); `None` for an aggregate.
    pub(crate) fn str_value_mut(&mut self) -> Option<&mut [u8]> {
        if self.is_aggregate() {
            return None;
        }
        let end = self.data.len() - self.tail();
        Some(&mut self.data[(self.meta & KEY_LEN_MASK) as usize..end])
    }

    /// Unix milliseconds; 0 when the key does not expire.
    pub(crate) fn expire_raw(&self) -> u64 {
        match self.tail() {
            0 => 0,
            _ => {
                let at = self.data.len() - 8;
                u64::from_le_bytes(self.data[at..].try_into().expect("eight bytes"))
            }
        }
    }

    pub(crate) fn is_expired(&self, now: u64) -> bool {
        let at = self.expire_raw();
        at != 0 && at <= now
    }

    /// Replaces a string value of the same length in place; false (and no change) otherwise.
    pub(crate) fn overwrite_str(&mut self, value: &[u8]) -> bool {
        let start = (self.meta & KEY_LEN_MASK) as usize;
        let end = self.data.len() - self.tail();
        if self.is_aggregate() || end - start != value.len() {
            return false;
        }
        self.data[start..end].copy_from_slice(value);
        true
    }

    /// Replaces the string value, keeping key and TTL.
    pub(crate) fn set_str(&mut self, value: &[u8]) {
        self.replace(Self::build(
            self.key(),
            &[],
            value,
            0,
            self.expire_raw(),
            self.touched,
            self.version,
        ));
    }

    /// Sets or clears the TTL (0: none), in place when the entry already has one.
    pub(crate) fn set_expire(&mut self, expire_at: u64) {
        match (self.tail(), expire_at) {
            (8, at) if at != 0 => {
                let end = self.data.len();
                self.data[end - 8..].copy_from_slice(&at.to_le_bytes());
            }
            _ => {
                // A string's value or an inline aggregate's body moves over as it is.
                self.replace(Self::build(
                    self.key(),
                    &[],
                    self.body(),
                    self.meta & AGGREGATE_BIT,
                    expire_at,
                    self.touched,
                    self.version,
                ));
            }
        }
    }

    /// Bytes this entry's own allocation holds, in size classes.
    pub(crate) fn data_mem(&self) -> usize {
        alloc_size(self.data.len())
    }
}

/// A live entry as the store shows it: key, value, TTL, version.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    pub(crate) entry: &'a Entry,
    pub(crate) aggregate: Option<&'a Aggregate>,
}

impl<'a> EntryRef<'a> {
    #[must_use]
    pub fn key(&self) -> &'a [u8] {
        self.entry.key()
    }

    #[must_use]
    pub fn value(&self) -> Value<'a> {
        match (self.aggregate, self.entry.inline_body()) {
            (Some(a), _) => a.as_value(),
            (None, Some(body)) => crate::inline::view(body),
            (None, None) => Value::Str(self.entry.str_value()),
        }
    }

    /// When the key expires (Unix milliseconds), if it does.
    #[must_use]
    pub fn expire_at(&self) -> Option<u64> {
        Some(self.entry.expire_raw()).filter(|&at| at != 0)
    }

    #[must_use]
    pub fn version(&self) -> Version {
        self.entry.version
    }

    /// Seconds since the entry was last read or written (`OBJECT IDLETIME`).
    #[must_use]
    pub fn idle_seconds(&self, now: u64) -> u64 {
        (now / 1000).saturating_sub(u64::from(self.entry.touched))
    }

    /// What the entry costs in memory, as the store accounts it (`MEMORY USAGE`).
    #[must_use]
    pub fn memory_usage(&self) -> usize {
        crate::shard::entry_mem(self.entry, self.aggregate)
    }
}

/// An entry taken out of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEntry {
    pub key: Box<[u8]>,
    pub value: OwnedValue,
    pub expire_at: Option<u64>,
    pub version: Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_32_bytes_and_keeps_its_parts_apart() {
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 32);
        let mut e = Entry::string(b"key", b"value", 0, 7, Version(9));
        assert_eq!(
            (e.key(), e.str_value(), e.expire_raw()),
            (&b"key"[..], &b"value"[..], 0)
        );
        e.set_expire(1234);
        assert_eq!(
            (e.key(), e.str_value(), e.expire_raw()),
            (&b"key"[..], &b"value"[..], 1234)
        );
        e.set_expire(99);
        assert_eq!(e.expire_raw(), 99);
        e.set_str(b"longer value");
        assert_eq!((e.str_value(), e.expire_raw()), (&b"longer value"[..], 99));
        e.set_expire(0);
        assert_eq!(
            (e.key(), e.str_value(), e.expire_raw()),
            (&b"key"[..], &b"longer value"[..], 0)
        );
        assert!(!e.is_aggregate() && Entry::aggregate(b"h", 0, 0, Version(0)).is_aggregate());
        assert_eq!((e.touched, e.version), (7, Version(9)));
    }

    #[test]
    fn rebuilding_an_entry_keeps_its_slot_position() {
        let mut e = Entry::string(b"key", b"value", 0, 7, Version(9));
        e.slot_pos = 12_345;
        e.set_str(b"a longer value");
        assert_eq!(e.slot_pos, 12_345, "set_str");
        e.set_expire(77);
        assert_eq!(e.slot_pos, 12_345, "set_expire adding a TTL");
        e.set_expire(78);
        e.set_expire(0);
        assert_eq!(e.slot_pos, 12_345, "set_expire clearing it");
        e.replace(Entry::aggregate(b"key", 5, 1, Version(10)));
        assert_eq!(
            (e.slot_pos, e.is_aggregate(), e.expire_raw(), e.version),
            (12_345, true, 5, Version(10))
        );
    }

    #[test]
    fn an_empty_key_with_an_empty_value_holds_no_allocation() {
        let mut e = Entry::string(b"", b"", 0, 0, Version(1));
        assert_eq!(
            (e.key(), e.str_value(), e.data_mem()),
            (&b""[..], &b""[..], 0)
        );
        assert!(e.overwrite_str(b""));
        e.set_expire(42);
        assert_eq!(
            (e.key(), e.str_value(), e.expire_raw()),
            (&b""[..], &b""[..], 42)
        );
        e.set_expire(0);
        assert_eq!(e.data_mem(), 0);
        assert_eq!(e.str_value_mut(), Some(&mut [][..]));
    }
}
