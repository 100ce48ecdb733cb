//! Tombstones: what a shard remembers of the keys deleted lately, so that an older write that
//! arrives late (a re-send after a chain link failed, a read repair, a migration snapshot racing
//! replication) does not bring a deleted key back. See [`crate::Store::set_tombstone_ms`].
//!
//! ```text
//!   table:   key hash → index            (hashbrown; the key is stored once, in its tomb)
//!   tombs:   Vec<Option<Tomb>>           (40 bytes each, stable indices, free list)
//!   list:    oldest ⇄ … ⇄ newest         (links in the tombs, in the order they were made)
//!   by_slot: cluster slot → indices      (stream or drop one slot; made with the first tomb)
//! ```
//!
//! Every tombstone lives as long: the shard's life, read whenever one is looked at, so that a
//! changed life applies to all of them at once. The list in the order they were made is then the
//! order in which they die: the active-expiry cycle takes dead ones from its old end, and memory
//! pressure drops the oldest first, both in O(1) a tombstone.

use hashbrown::HashTable;

use crate::clock::Version;
use crate::memory::alloc_size;
use crate::slot_index::SlotIndex;
use crate::store::{Key, hash_key};

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Tomb {
    key: Box<[u8]>,
    version: Version,
    /// When it was made (Unix ms): it dies at `born + life`.
    born: u64,
    /// The next older and the next newer tombstone in the list.
    older: u32,
    newer: u32,
}

// The module docs' 40 bytes: the key's box is the `Option`'s niche.
const _: () = assert!(std::mem::size_of::<Option<Tomb>>() == 40);

/// What one tombstone costs beyond its key's allocation: its place in the slab (which grows by
/// doubling, so a third again on average), the hash table's index and control byte at 7/8 load,
/// and its two `u32`s in the slot index (its index in its slot's list and its position there: a
/// tomb has no spare bytes for the position, as an entry has).
pub const TOMBSTONE_OVERHEAD: usize = std::mem::size_of::<Option<Tomb>>() * 4 / 3
    + (std::mem::size_of::<u32>() + 1) * 8 / 7
    + std::mem::size_of::<u32>() * 4 / 3
    + std::mem::size_of::<u32>();

/// What a tombstone for a key of `key_len` bytes adds to the accounted memory.
pub(crate) fn tombstone_cost(key_len: usize) -> usize {
    TOMBSTONE_OVERHEAD + alloc_size(key_len)
}

/// Whether a tombstone made at `born` is past its `life` at `now` (a life of 0: tombstones are
/// off, and those left are dead).
fn dead(born: u64, life: u64, now: u64) -> bool {
    life == 0 || born.saturating_add(life) <= now
}

#[derive(Debug)]
pub(crate) struct Tombstones {
    table: HashTable<u32>,
    tombs: Vec<Option<Tomb>>,
    free: Vec<u32>,
    oldest: u32,
    newest: u32,
    /// `None` until the first tombstone: the index of a shard's slots costs memory up front.
    by_slot: Option<SlotIndex>,
    shard_bits: u32,
    hash_seed: u64,
    /// Accounted bytes, as [`tombstone_cost`] counts them.
    used: usize,
}

impl Tombstones {
    pub(crate) fn new(hash_seed: u64, shard_bits: u32) -> Self {
        Self {
            table: HashTable::new(),
            tombs: Vec::new(),
            free: Vec::new(),
            oldest: NIL,
            newest: NIL,
            by_slot: None,
            shard_bits,
            hash_seed,
            used: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub(crate) fn used(&self) -> usize {
        self.used
    }

    fn tomb(&self, at: u32) -> &Tomb {
        self.tombs[at as usize].as_ref().expect("a live tomb")
    }

    fn tomb_mut(&mut self, at: u32) -> &mut Tomb {
        self.tombs[at as usize].as_mut().expect("a live tomb")
    }

    fn find(&self, key: &Key<'_>) -> Option<u32> {
        let tombs = &self.tombs;
        self.table
            .find(key.hash, |&i| {
                tombs[i as usize]
                    .as_ref()
                    .is_some_and(|t| *t.key == *key.bytes)
            })
            .copied()
    }

    /// The version `key` was deleted at, if its tombstone is alive at `now`; a dead one found is
    /// dropped.
    pub(crate) fn get(&mut self, key: &Key<'_>, now: u64, life: u64) -> Option<Version> {
        let at = self.find(key)?;
        let tomb = self.tomb(at);
        if dead(tomb.born, life, now) {
            self.remove_at(at);
            return None;
        }
        Some(tomb.version)
    }

    /// Records that `key` was deleted at `version`: a new tombstone, or the key's one renewed at
    /// `version` and made the newest. The caller has checked that `version` is newer.
    pub(crate) fn put(&mut self, key: &Key<'_>, version: Version, now: u64) {
        if let Some(at) = self.find(key) {
            let tomb = self.tomb_mut(at);
            tomb.version = version;
            tomb.born = now;
            self.unlink(at);
            self.link_newest(at);
            return;
        }
        let tomb = Tomb {
            key: key.bytes.into(),
            version,
            born: now,
            older: NIL,
            newer: NIL,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.tombs[at as usize] = Some(tomb);
                at
            }
            None => {
                self.tombs.push(Some(tomb));
                u32::try_from(self.tombs.len() - 1).expect("fewer than 2^32 tombstones a shard")
            }
        };
        self.used += tombstone_cost(key.bytes.len());
        let (tombs, seed) = (&self.tombs, self.hash_seed);
        self.table.insert_unique(key.hash, at, |&i| {
            hash_key(seed, &tombs[i as usize].as_ref().expect("a live tomb").key)
        });
        self.link_newest(at);
        let shard_bits = self.shard_bits;
        self.by_slot
            .get_or_insert_with(|| SlotIndex::new(shard_bits))
            .insert(key.slot, at);
    }

    /// Drops `key`'s tombstone, if it has one.
    pub(crate) fn remove(&mut self, key: &Key<'_>) {
        if let Some(at) = self.find(key) {
            self.remove_at(at);
        }
    }

    fn remove_at(&mut self, at: u32) {
        self.unlink(at);
        let tomb = self.tombs[at as usize].take().expect("a live tomb");
        self.used -= tombstone_cost(tomb.key.len());
        self.table
            .find_entry(hash_key(self.hash_seed, &tomb.key), |&i| i == at)
            .expect("a live tomb is in the table")
            .remove();
        if let Some(by_slot) = &mut self.by_slot {
            by_slot.remove(dcache_placement::slot(&tomb.key), at);
        }
        self.free.push(at);
        if self.table.is_empty() {
            // Nothing refers to any index now: give the slab's and the indexes' memory back.
            self.clear();
        }
    }

    fn unlink(&mut self, at: u32) {
        let (older, newer) = {
            let t = self.tomb(at);
            (t.older, t.newer)
        };
        match older {
            NIL => self.oldest = newer,
            o => self.tomb_mut(o).newer = newer,
        }
        match newer {
            NIL => self.newest = older,
            n => self.tomb_mut(n).older = older,
        }
    }

    fn link_newest(&mut self, at: u32) {
        let newest = self.newest;
        let tomb = self.tomb_mut(at);
        tomb.older = newest;
        tomb.newer = NIL;
        match newest {
            NIL => self.oldest = at,
            n => self.tomb_mut(n).newer = at,
        }
        self.newest = at;
    }

    /// Drops the oldest tombstone; false when there is none.
    pub(crate) fn drop_oldest(&mut self) -> bool {
        match self.oldest {
            NIL => false,
            at => {
                self.remove_at(at);
                true
            }
        }
    }

    /// Drops up to `max` tombstones dead at `now`, the oldest first. Returns how many.
    pub(crate) fn sweep(&mut self, now: u64, life: u64, max: usize) -> usize {
        let mut removed = 0;
        while removed < max && self.oldest != NIL {
            if !dead(self.tomb(self.oldest).born, life, now) {
                break;
            }
            self.remove_at(self.oldest);
            removed += 1;
        }
        removed
    }

    /// The indices of `slot`'s tombstones, for [`Tombstones::at`].
    pub(crate) fn in_slot(&self, slot: u16) -> &[u32] {
        self.by_slot.as_ref().map_or(&[], |s| s.cells(slot))
    }

    /// The key and version of the tombstone at `at`, if it is alive at `now`.
    pub(crate) fn at(&self, at: u32, now: u64, life: u64) -> Option<(&[u8], Version)> {
        let tomb = self.tomb(at);
        (!dead(tomb.born, life, now)).then_some((&tomb.key, tomb.version))
    }

    /// Drops the tombstone at `at` (from [`Tombstones::in_slot`]).
    pub(crate) fn drop_at(&mut self, at: u32) {
        self.remove_at(at);
    }

    /// Drops every tombstone and gives their memory back.
    pub(crate) fn clear(&mut self) {
        self.table = HashTable::new();
        self.tombs = Vec::new();
        self.free = Vec::new();
        self.oldest = NIL;
        self.newest = NIL;
        self.by_slot = None;
        self.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bytes: &[u8]) -> Key<'_> {
        Key {
            bytes,
            hash: hash_key(7, bytes),
            slot: dcache_placement::slot(bytes),
        }
    }

    #[test]
    fn the_list_keeps_the_order_they_were_made_in() {
        let mut t = Tombstones::new(7, 0);
        let life = 1_000;
        for (i, k) in [&b"a"[..], b"b", b"c", b"d"].into_iter().enumerate() {
            t.put(&key(k), Version(i as u64 + 1), 100 + i as u64);
        }
        // Renewing "a" makes it the newest; dropping "c" from the middle keeps the links.
        t.put(&key(b"a"), Version(9), 104);
        t.remove(&key(b"c"));
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(&key(b"a"), 104, life), Some(Version(9)));
        // "b" (born 101) and "d" (born 103) die before "a" (born 104).
        assert_eq!(t.sweep(1_103, life, 10), 2);
        assert_eq!(t.get(&key(b"b"), 0, life), None);
        assert_eq!(t.get(&key(b"a"), 0, life), Some(Version(9)));
        assert!(t.drop_oldest());
        assert!(!t.drop_oldest());
        assert_eq!((t.len(), t.used()), (0, 0));
        assert!(t.in_slot(dcache_placement::slot(b"a")).is_empty());
    }

    #[test]
    fn a_dead_tombstone_is_dropped_when_looked_at() {
        let mut t = Tombstones::new(7, 0);
        t.put(&key(b"k"), Version(5), 100);
        assert_eq!(t.get(&key(b"k"), 1_099, 1_000), Some(Version(5)));
        assert_eq!(t.get(&key(b"k"), 1_100, 1_000), None);
        assert!(t.is_empty());
    }
}
