//! Memory accounting: what an entry costs, in the allocator's terms.
//!
//! The store counts every entry's heap allocations rounded up to jemalloc's size classes (the
//! allocator the server links), plus a fixed per-entry overhead for the slot, the hash table and
//! the eviction policy's bookkeeping. The server's memory tests compare this count against
//! jemalloc's own `stats.allocated`; `docs/PERFORMANCE.md` records the calibration.

use crate::entry::Entry;

/// What one entry costs beyond its key and value allocations: its slot in the shard's slab (which
/// grows by doubling, so on average a third again as much as in use), and the hash table's index
/// and control byte at hashbrown's 7/8 load factor. The eviction policy's bookkeeping is counted
/// apart (`EvictionPolicy::memory`). Like Redis's `used_memory`, this counts what the live entries
/// need: slots freed by deletion or eviction are reused, not returned.
pub const ENTRY_OVERHEAD: usize =
    std::mem::size_of::<Option<Entry>>() * 4 / 3 + (std::mem::size_of::<u32>() + 1) * 8 / 7;

/// What an entry with a TTL costs in the expiry index (a B-tree of `(u64, u32)`: 16 bytes a key
/// plus node overhead).
pub const VOLATILE_OVERHEAD: usize = 32;

/// The size jemalloc really hands out for a request of `n` bytes: 8, then steps of 16 up to 128,
/// then four classes per doubling.
#[must_use]
pub fn alloc_size(n: usize) -> usize {
    match n {
        0 => 0,
        1..=8 => 8,
        9..=128 => n.div_ceil(16) * 16,
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
        ];
        for (n, expected) in table {
            assert_eq!(alloc_size(n), expected, "alloc_size({n})");
        }
    }
}
