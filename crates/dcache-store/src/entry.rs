//! Entries and the value types they hold.

use crate::clock::Version;
use crate::memory::alloc_size;

/// Bytes that a hash field costs beyond its name and value: hashbrown's bucket (two boxed slices)
/// and control byte at 7/8 load.
const HASH_FIELD_OVERHEAD: usize = (32 + 1) * 8 / 7;
/// A hash value's fixed part: its box and the empty table.
const HASH_BASE: usize = 64;

/// A value. Strings hold any bytes; integers and floats are strings that parse as such, as in
/// Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Box<[u8]>),
    Hash(Box<HashValue>),
}

impl Value {
    /// Redis's name for the type, as `TYPE` prints it.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
        }
    }

    /// The bytes this value holds on the heap, in allocator size classes.
    #[must_use]
    pub fn mem(&self) -> usize {
        match self {
            Value::Str(s) => alloc_size(s.len()),
            Value::Hash(h) => h.mem,
        }
    }
}

impl From<&[u8]> for Value {
    fn from(bytes: &[u8]) -> Self {
        Value::Str(bytes.into())
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Value::Str(bytes.into_boxed_slice())
    }
}

/// A hash: field → value, with its own memory count kept up to date by every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashValue {
    map: hashbrown::HashMap<Box<[u8]>, Box<[u8]>>,
    mem: usize,
}

impl Default for HashValue {
    fn default() -> Self {
        Self {
            map: hashbrown::HashMap::new(),
            mem: HASH_BASE,
        }
    }
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
}

/// One key and its value, TTL and version.
#[derive(Debug, Clone)]
pub struct Entry {
    pub(crate) key: Box<[u8]>,
    pub(crate) value: Value,
    /// Unix milliseconds; 0 when the key does not expire.
    pub(crate) expire_at: u64,
    pub(crate) version: Version,
    /// Seconds since the store started, at the last access (for `OBJECT IDLETIME`).
    pub(crate) touched: u32,
}

impl Entry {
    #[must_use]
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    #[must_use]
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// When the key expires (Unix milliseconds), if it does.
    #[must_use]
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at != 0).then_some(self.expire_at)
    }

    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// What the entry costs in memory, as the store accounts it (`MEMORY USAGE`).
    #[must_use]
    pub fn memory_usage(&self) -> usize {
        crate::memory::ENTRY_OVERHEAD
            + crate::memory::alloc_size(self.key.len())
            + self.value.mem()
            + if self.expire_at != 0 {
                crate::memory::VOLATILE_OVERHEAD
            } else {
                0
            }
    }

    /// Seconds since the entry was last read or written (`OBJECT IDLETIME`).
    #[must_use]
    pub fn idle_seconds(&self, now: u64) -> u64 {
        (now / 1000).saturating_sub(u64::from(self.touched))
    }

    #[must_use]
    pub(crate) fn is_expired(&self, now: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now
    }
}
