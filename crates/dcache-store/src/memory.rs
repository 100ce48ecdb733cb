//! Memory accounting: what an entry costs, in the allocator's terms.
//!
//! The store counts every entry's heap allocations rounded up to jemalloc's size classes (the
//! allocator the server links), plus a fixed per-entry overhead for the cell, the hash table and
//! the eviction policy's bookkeeping. Tombstones (the deleted keys a replicating node remembers)
//! count the same way: their key's allocation plus [`crate::TOMBSTONE_OVERHEAD`]. The server's
//! memory tests compare this count against
//! jemalloc's own `stats.allocated`; `docs/PERFORMANCE.md` records the calibration.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::entry::Entry;

/// The most bytes a compact (packed) form of an aggregate may hold: a write that would take one
/// past it moves the value into its large form, whatever the configured limits (Redis's
/// `lpSafeToAdd`, which keeps a listpack under 1 GB). Ours is lower: a compact value travels whole
/// in one effect (see [`crate::effect`]), whose body is at most [`crate::MAX_EFFECT_LEN`], and an
/// element can take up to about five times as many bytes there as packed (a sorted set's
/// one-byte integer score is eight, an intset's two-byte integer six digits): an eighth of the
/// effect's cap leaves room for that. Small under test, so that tests reach it.
#[cfg(not(test))]
pub(crate) const MAX_PACKED_LEN: usize = crate::effect::MAX_EFFECT_LEN / 8;
#[cfg(test)]
pub(crate) const MAX_PACKED_LEN: usize = 1 << 16;

/// The store's one memory budget, shared by its shards. Each shard accounts its own entries and
/// adds the changes here as it makes them, so that the limit holds for the store as a whole
/// whatever the sizes of the values and however unevenly keys fall on shards.
///
/// `calibration` is what the allocator really holds for the data beyond what the entries account
/// (size-class rounding the estimate misses, fragmentation, the slab's and the table's spare
/// room): the server measures it from jemalloc's statistics and sets it here, so that the limit
/// bounds real memory rather than an estimate of it.
///
/// `reserved` is room promised to writes admitted but not yet finished: admission adds to it
/// only while accounted + calibration + reserved stays within the limit, so that writers running
/// at once cannot each see the same free room and together overshoot it.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    limit: AtomicUsize,
    accounted: AtomicUsize,
    calibration: AtomicUsize,
    reserved: AtomicUsize,
    /// The tombstones' share of `accounted`, so that eviction knows whether any are left to
    /// drop before it evicts entries.
    tombstones: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit: AtomicUsize::new(limit),
            ..Self::default()
        }
    }

    /// The limit in bytes; 0 is none.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Relaxed)
    }

    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Relaxed);
    }

    /// What counts against the limit: the entries as accounted, plus the calibration.
    pub(crate) fn used(&self) -> usize {
        self.accounted.load(Relaxed) + self.calibration.load(Relaxed)
    }

    /// The entries as the shards account them, without the calibration.
    pub(crate) fn accounted(&self) -> usize {
        self.accounted.load(Relaxed)
    }

    pub(crate) fn set_calibration(&self, bytes: usize) {
        self.calibration.store(bytes, Relaxed);
    }

    pub(crate) fn calibration(&self) -> usize {
        self.calibration.load(Relaxed)
    }

    /// Whether what is used (not counting reservations) is over the limit: what eviction after a
    /// write looks at. The write's own reservation is still held then, and its bytes are already
    /// in `accounted`: counting both would evict for it twice.
    pub(crate) fn over(&self) -> bool {
        let limit = self.limit();
        limit != 0 && self.used() > limit
    }

    /// Whether a write of `need` bytes could ever get room by eviction now: not when the
    /// calibration and other writes' reservations alone leave too little.
    pub(crate) fn could_fit(&self, need: usize) -> bool {
        let limit = self.limit();
        limit == 0
            || self
                .calibration()
                .saturating_add(self.reserved.load(Relaxed))
                .saturating_add(need)
                <= limit
    }

    /// Whether `need` more bytes, beside those reserved, stay within the limit.
    pub(crate) fn fits(&self, need: usize) -> bool {
        let limit = self.limit();
        limit == 0
            || self
                .used()
                .saturating_add(self.reserved.load(Relaxed))
                .saturating_add(need)
                <= limit
    }

    /// Reserves `need` bytes if they fit beside what is used and reserved, and returns how many
    /// it reserved: with no limit, none.
    pub(crate) fn reserve(&self, need: usize) -> Option<usize> {
        if self.limit() == 0 {
            return Some(0);
        }
        let mut reserved = self.reserved.load(Relaxed);
        loop {
            let total = self.used().saturating_add(reserved).saturating_add(need);
            if total > self.limit() {
                return None;
            }
            match self
                .reserved
                .compare_exchange_weak(reserved, reserved + need, Relaxed, Relaxed)
            {
                Ok(_) => return Some(need),
                Err(now) => reserved = now,
            }
        }
    }

    /// Room reserved by writes in progress.
    pub(crate) fn reserved(&self) -> usize {
        self.reserved.load(Relaxed)
    }

    /// Gives back a reservation.
    pub(crate) fn release(&self, need: usize) {
        self.reserved.fetch_sub(need, Relaxed);
    }

    /// Moves the tombstones' share from `before` to `after` (one shard's share; already in
    /// `accounted`).
    pub(crate) fn update_tombstones(&self, before: usize, after: usize) {
        if after > before {
            self.tombstones.fetch_add(after - before, Relaxed);
        } else if before > after {
            self.tombstones.fetch_sub(before - after, Relaxed);
        }
    }

    /// What the tombstones of all shards account for.
    pub(crate) fn tombstones(&self) -> usize {
        self.tombstones.load(Relaxed)
    }

    /// Moves the accounted total from `before` to `after` (one shard's share).
    pub(crate) fn update(&self, before: usize, after: usize) {
        if after > before {
            self.accounted.fetch_add(after - before, Relaxed);
        } else if before > after {
            self.accounted.fetch_sub(before - after, Relaxed);
        }
    }
}

/// What one entry costs beyond its key and value allocations: its cell in the shard's slab (which
/// grows by doubling, so on average a third again as much as in use), its `u32` in the slot
/// index (its cell in its slot's list, which grows by doubling too; its position there is in the
/// entry), and the hash table's index and control byte at hashbrown's 7/8 load factor. The
/// eviction policy's bookkeeping is counted apart (`EvictionPolicy::memory`). Like Redis's
/// `used_memory`, this counts what the live entries need: cells freed by deletion or eviction are
/// reused, not returned. (A shard without the slot index takes [`SLOT_INDEX_OVERHEAD`] a key back
/// from its total.)
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<Option<Entry>>() * 4 / 3
    + SLOT_INDEX_OVERHEAD
    + (std::mem::size_of::<u32>() + 1) * 8 / 7;

/// An entry's share of the slot index: its cell in its slot's list, which grows by doubling.
pub(crate) const SLOT_INDEX_OVERHEAD: usize = std::mem::size_of::<u32>() * 4 / 3;

/// What an entry with a TTL costs in the expiry index (a B-tree of `(u64, u32)`: 16 bytes a key
/// plus node overhead).
pub const VOLATILE_OVERHEAD: usize = 32;

/// A bound on what a write of `payload` bytes of keys and values adds to one entry's accounted
/// memory: its share of slab and index, its TTL, and its allocation rounded to a size class. What
/// [`crate::Store::admit`] is asked to make room for before a write.
#[must_use]
pub fn write_cost(payload: usize) -> usize {
    ENTRY_OVERHEAD + VOLATILE_OVERHEAD + alloc_size(payload.saturating_add(16))
}

/// The size jemalloc really hands out for a request of `n` bytes: 8, then steps of 16 up to 128,
/// then four classes per doubling up to its largest small class (14 KiB); above that a large
/// allocation takes whole pages (its statistics count 102,400 bytes for a 100,016-byte value, not
/// the 112 KiB class).
#[must_use]
pub fn alloc_size(n: usize) -> usize {
    const SMALL_MAX: usize = 14 * 1024;
    const PAGE: usize = 4096;
    match n {
        0 => 0,
        1..=8 => 8,
        9..=128 => n.div_ceil(16) * 16,
        _ if n > SMALL_MAX => n.div_ceil(PAGE) * PAGE,
        _ => {
            let group = usize::BITS - 1 - (n - 1).leading_zeros();
            let step = 1usize << (group - 2);
            n.div_ceil(step) * step
        }
    }
}

#[cfg(test)]
mod tests {
    use super::alloc_size;

    #[test]
    fn size_classes_match_jemalloc() {
        let table = [
            (0, 0),
            (1, 8),
            (8, 8),
            (9, 16),
            (17, 32),
            (100, 112),
            (128, 128),
            (129, 160),
            (160, 160),
            (161, 192),
            (257, 320),
            (1000, 1024),
            (1025, 1280),
            (4097, 5120),
            (14_336, 14_336),
            (14_337, 16_384),
            (100_016, 102_400),
        ];
        for (n, expected) in table {
            assert_eq!(alloc_size(n), expected, "alloc_size({n})");
        }
    }
}
