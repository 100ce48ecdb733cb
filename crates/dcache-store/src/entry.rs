//! Entries and the value types they hold, laid out to cost little memory.
//!
//! ```text
//!   Entry (32 bytes in the shard's slab)
//!   ┌──────────────────────┬──────────────┬─────────┬─────────┐
//!   │ data: Box<[u8]>      │ meta: u32    │ touched │ version │
//!   └──────────┬───────────┴──────────────┴─────────┴─────────┘
//!              ▼                 bits 0-29: key length, 30: hash, 31: has a TTL
//!   [ key bytes | string value bytes | expire_at (8 bytes LE, only with a TTL) ]
//! ```
//!
//! A string entry is one allocation holding its key and its value; a TTL costs eight bytes in the
//! same allocation, and only for keys that have one. A hash entry's allocation holds its key
//! (and TTL); its fields live in the shard's side table of hashes, keyed by cell.

use crate::clock::Version;
use crate::memory::alloc_size;

/// The longest key the store takes (the length has 30 bits).
pub const MAX_KEY_LEN: usize = (1 << 30) - 1;

const KEY_LEN_MASK: u32 = (1 << 30) - 1;
const HASH_BIT: u32 = 1 << 30;
const VOLATILE_BIT: u32 = 1 << 31;

/// Bytes that a hash field costs beyond its name and value: hashbrown's bucket (two boxed slices)
/// and control byte at 7/8 load.
const HASH_FIELD_OVERHEAD: usize = (32 + 1) * 8 / 7;
/// A hash value's fixed part: its cell in the shard's side table and the empty map.
pub(crate) const HASH_BASE: usize = 96;

/// A value, borrowed from the store or given to it. Strings hold any bytes; integers and floats
/// are strings that parse as such, as in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Str(&'a [u8]),
    Hash(&'a HashValue),
}

impl Value<'_> {
    /// Redis's name for the type, as `TYPE` prints it.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
        }
    }

    #[must_use]
    pub fn into_owned(self) -> OwnedValue {
        match self {
            Value::Str(s) => OwnedValue::Str(s.into()),
            Value::Hash(h) => OwnedValue::Hash(Box::new(h.clone())),
        }
    }
}

/// A value taken out of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedValue {
    Str(Box<[u8]>),
    Hash(Box<HashValue>),
}

impl OwnedValue {
    #[must_use]
    pub fn as_value(&self) -> Value<'_> {
        match self {
            OwnedValue::Str(s) => Value::Str(s),
            OwnedValue::Hash(h) => Value::Hash(h),
        }
    }
}

/// What a new key starts as when [`crate::Shard::modify`] creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Hash,
}

/// A hash: field → value, with its own memory count kept up to date by every change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HashValue {
    map: hashbrown::HashMap<Box<[u8]>, Box<[u8]>>,
    mem: usize,
}

fn field_mem(field: &[u8], value: &[u8]) -> usize {
    alloc_size(field.len()) + alloc_size(value.len()) + HASH_FIELD_OVERHEAD
}

impl HashValue {
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    #[must_use]
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.map.get(field).map(|v| &**v)
    }

    /// Sets a field; true when the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.mem += field_mem(field, value);
        match self.map.get_mut(field) {
            Some(old) => {
                self.mem -= field_mem(field, old);
                *old = value.into();
                false
            }
            None => {
                self.map.insert(field.into(), value.into());
                true
            }
        }
    }

    /// Removes a field; true when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.map.remove(field) {
            Some(old) => {
                self.mem -= field_mem(field, &old);
                true
            }
            None => false,
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        self.map.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Bytes the fields hold, in allocator size classes, with per-field overhead.
    #[must_use]
    pub fn mem(&self) -> usize {
        self.mem
    }
}

/// One key in a shard's slab. See the module docs for the layout.
#[derive(Debug)]
pub(crate) struct Entry {
    data: Box<[u8]>,
    meta: u32,
    /// Seconds since the Unix epoch at the last access (for `OBJECT IDLETIME`).
    pub(crate) touched: u32,
    pub(crate) version: Version,
}

impl Entry {
    /// A string entry.
    pub(crate) fn string(
        key: &[u8],
        value: &[u8],
        expire_at: u64,
        touched: u32,
        version: Version,
    ) -> Self {
        Self::build(key, value, false, expire_at, touched, version)
    }

    /// A hash entry (its fields live beside the slab).
    pub(crate) fn hash(key: &[u8], expire_at: u64, touched: u32, version: Version) -> Self {
        Self::build(key, &[], true, expire_at, touched, version)
    }

    fn build(
        key: &[u8],
        value: &[u8],
        hash: bool,
        expire_at: u64,
        touched: u32,
        version: Version,
    ) -> Self {
        assert!(
            key.len() <= MAX_KEY_LEN,
            "keys are at most {MAX_KEY_LEN} bytes"
        );
        let tail = if expire_at != 0 { 8 } else { 0 };
        let mut data = Vec::with_capacity(key.len() + value.len() + tail);
        data.extend_from_slice(key);
        data.extend_from_slice(value);
        if expire_at != 0 {
            data.extend_from_slice(&expire_at.to_le_bytes());
        }
        let meta = key.len() as u32
            | if hash { HASH_BIT } else { 0 }
            | if expire_at != 0 { VOLATILE_BIT } else { 0 };
        Self {
            data: data.into_boxed_slice(),
            meta,
            touched,
            version,
        }
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.data[..(self.meta & KEY_LEN_MASK) as usize]
    }

    pub(crate) fn is_hash(&self) -> bool {
        self.meta & HASH_BIT != 0
    }

    fn tail(&self) -> usize {
        if self.meta & VOLATILE_BIT != 0 { 8 } else { 0 }
    }

    /// The string value's bytes (empty for a hash).
    pub(crate) fn str_value(&self) -> &[u8] {
        &self.data[(self.meta & KEY_LEN_MASK) as usize..self.data.len() - self.tail()]
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
        if self.is_hash() || end - start != value.len() {
            return false;
        }
        self.data[start..end].copy_from_slice(value);
        true
    }

    /// Replaces the string value, keeping key and TTL.
    pub(crate) fn set_str(&mut self, value: &[u8]) {
        *self = Self::build(
            self.key(),
            value,
            false,
            self.expire_raw(),
            self.touched,
            self.version,
        );
    }

    /// Sets or clears the TTL (0: none), in place when the entry already has one.
    pub(crate) fn set_expire(&mut self, expire_at: u64) {
        match (self.tail(), expire_at) {
            (8, at) if at != 0 => {
                let end = self.data.len();
                self.data[end - 8..].copy_from_slice(&at.to_le_bytes());
            }
            _ => {
                *self = Self::build(
                    self.key(),
                    self.str_value(),
                    self.is_hash(),
                    expire_at,
                    self.touched,
                    self.version,
                );
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
    pub(crate) hash: Option<&'a HashValue>,
}

impl<'a> EntryRef<'a> {
    #[must_use]
    pub fn key(&self) -> &'a [u8] {
        self.entry.key()
    }

    #[must_use]
    pub fn value(&self) -> Value<'a> {
        match self.hash {
            Some(h) => Value::Hash(h),
            None => Value::Str(self.entry.str_value()),
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
        crate::shard::entry_mem(self.entry, self.hash)
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
        assert!(!e.is_hash() && Entry::hash(b"h", 0, 0, Version(0)).is_hash());
        assert_eq!((e.touched, e.version), (7, Version(9)));
    }
}
