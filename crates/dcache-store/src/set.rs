//! Sets: unordered unique members.
//!
//! A hash table of boxed members; `mem` (the members' bytes in allocator size classes, with each
//! bucket's overhead) is kept up to date by every change. Its buckets can be read by index, so
//! that a large set streams a bounded number of buckets at a time.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::memory::alloc_size;

/// Bytes that a member costs beyond its allocation: hashbrown's bucket (a boxed slice) and its
/// control byte at 7/8 load.
const MEMBER_OVERHEAD: usize = (16 + 1) * 8 / 7;

/// A set value.
#[derive(Clone, Default)]
pub struct SetValue {
    table: HashTable<Box<[u8]>>,
    hasher: DefaultHashBuilder,
    mem: usize,
}

fn member_mem(member: &[u8]) -> usize {
    alloc_size(member.len()) + MEMBER_OVERHEAD
}

impl SetValue {
    #[must_use]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes the members hold, in allocator size classes, with per-member overhead.
    #[must_use]
    pub fn mem(&self) -> usize {
        self.mem
    }

    #[must_use]
    pub fn contains(&self, member: &[u8]) -> bool {
        self.table
            .find(self.hasher.hash_one(member), |m| **m == *member)
            .is_some()
    }

    /// Adds a member; true when it is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        let hash = self.hasher.hash_one(member);
        if self.table.find(hash, |m| **m == *member).is_some() {
            return false;
        }
        self.mem += member_mem(member);
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, member.into(), |m| hasher.hash_one(&**m));
        true
    }

    /// Removes a member; true when it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self
            .table
            .find_entry(self.hasher.hash_one(member), |m| **m == *member)
        {
            Ok(entry) => {
                let (m, _) = entry.remove();
                self.mem -= member_mem(&m);
                true
            }
            Err(_) => false,
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.table.iter().map(|m| &**m)
    }

    /// How many buckets the table has; members are at indices below this.
    pub(crate) fn buckets(&self) -> usize {
        self.table.num_buckets()
    }

    /// The member in bucket `index`, if one is there.
    pub(crate) fn bucket(&self, index: usize) -> Option<&[u8]> {
        self.table.get_bucket(index).map(|m| &**m)
    }
}

impl PartialEq for SetValue {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains(m))
    }
}

impl Eq for SetValue {}

impl std::fmt::Debug for SetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}
