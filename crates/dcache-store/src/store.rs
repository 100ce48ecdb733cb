//! The store: shards, key hashing, locking, and operations that span shards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use parking_lot::{Mutex, MutexGuard};

use crate::StoreError;
use crate::config::{PolicyName, StoreConfig};
use crate::effect::KeyVersion;
use crate::entry::EntryRef;
use crate::memory::Budget;
use crate::set::SetLimits;
use crate::shard::{Shard, ShardStats};

/// The keyspace hash: xxh3 with a per-store seed (so that keys chosen to collide on one server
/// do not collide on another).
#[must_use]
pub(crate) fn hash_key(seed: u64, key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, seed)
}

/// A key with its cluster slot and its hash, computed once: the slot picks the shard (and the
/// key's place in the shard's slot index), the hash probes the shard's table.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub bytes: &'a [u8],
    pub hash: u64,
    /// `dcache_placement::slot(bytes)`.
    pub slot: u16,
}

/// Store-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub keys: usize,
    pub volatile_keys: usize,
    /// Deleted keys remembered (see [`Store::set_tombstone_ms`]), dead ones not yet swept
    /// included. Not keys: no read sees them.
    pub tombstones: usize,
    pub used: usize,
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
    pub evicted: u64,
}

/// Filters for [`Store::scan`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanFilter<'a> {
    pub pattern: Option<&'a [u8]>,
    pub type_name: Option<&'a str>,
}

#[derive(Debug)]
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    shard_bits: u32,
    budget: Arc<Budget>,
    /// Where eviction from other shards starts next, so that no shard is always first.
    evict_cursor: AtomicUsize,
    seed: u64,
    /// `settings.tombstone_ms`, read without the settings' lock by [`Store::restore`].
    tombstone_ms: AtomicU64,
    /// Whether writes record deltas: see [`Store::set_record_deltas`].
    pub(crate) record_deltas: std::sync::atomic::AtomicBool,
    settings: Mutex<StoreConfig>,
    /// [`SetLimits`], read by every set write without a lock.
    set_limits: [AtomicUsize; 3],
    /// Keys removed by expiry, eviction or a slot's deletion, when someone asked for them.
    removed: Arc<crate::RemovedKeys>,
}

/// Room reserved in the memory budget for one write, given back when dropped. See
/// [`Store::admit`].
#[must_use = "the room is given back as soon as this is dropped"]
#[derive(Debug)]
pub struct Room<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Drop for Room<'_> {
    fn drop(&mut self) {
        if self.bytes != 0 {
            self.budget.release(self.bytes);
        }
    }
}

/// Several shards locked at once, in index order (so that two multi-key commands never deadlock).
pub struct MultiLock<'a> {
    guards: Vec<(usize, MutexGuard<'a, Shard>)>,
    store: &'a Store,
}

impl MultiLock<'_> {
    /// The locked shard that holds `key`.
    ///
    /// # Panics
    /// When `key`'s shard was not among those locked.
    pub fn shard(&mut self, key: &Key<'_>) -> &mut Shard {
        let index = self.store.shard_index(key);
        let at = self
            .guards
            .binary_search_by_key(&index, |(i, _)| *i)
            .expect("the key's shard is locked");
        &mut self.guards[at].1
    }
}

impl Store {
    #[must_use]
    pub fn new(config: StoreConfig) -> Self {
        // A shard holds whole slots, so there are no more shards than slots.
        let n = config
            .shards
            .clamp(1, dcache_placement::SLOTS)
            .next_power_of_two();
        let budget = Arc::new(Budget::new(config.maxmemory));
        let removed = Arc::new(crate::RemovedKeys::default());
        let shards = (0..n)
            .map(|i| {
                Mutex::new(Shard::new(
                    config.policy,
                    Arc::clone(&budget),
                    config.max_entries.div_ceil(n),
                    config.node_id,
                    config.seed,
                    config
                        .seed
                        .wrapping_add(i as u64)
                        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        | 1,
                    n.trailing_zeros(),
                    config.tombstone_ms,
                    config.slot_index,
                    Arc::clone(&removed),
                ))
            })
            .collect();
        Self {
            shards,
            shard_bits: n.trailing_zeros(),
            budget,
            evict_cursor: AtomicUsize::new(0),
            seed: config.seed,
            tombstone_ms: AtomicU64::new(config.tombstone_ms),
            record_deltas: std::sync::atomic::AtomicBool::new(false),
            settings: Mutex::new(config),
            set_limits: {
                let d = SetLimits::default();
                [
                    AtomicUsize::new(d.max_intset_entries),
                    AtomicUsize::new(d.max_listpack_entries),
                    AtomicUsize::new(d.max_listpack_value),
                ]
            },
            removed,
        }
    }

    /// The keys this store removes on its own (expiry, eviction, a slot's deletion), once
    /// switched on: [`crate::RemovedKeys`].
    #[must_use]
    pub fn removed_keys(&self) -> &crate::RemovedKeys {
        &self.removed
    }

    /// Hashes a key and computes its cluster slot.
    #[must_use]
    pub fn key<'a>(&self, bytes: &'a [u8]) -> Key<'a> {
        self.key_in_slot(bytes, dcache_placement::slot(bytes))
    }

    /// Hashes a key whose cluster slot the caller has computed already (for routing), so that
    /// the CRC16 is not computed twice.
    #[must_use]
    pub fn key_in_slot<'a>(&self, bytes: &'a [u8], slot: u16) -> Key<'a> {
        debug_assert_eq!(slot, dcache_placement::slot(bytes), "the key's own slot");
        Key {
            bytes,
            hash: hash_key(self.seed, bytes),
            slot,
        }
    }

    #[must_use]
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    #[must_use]
    pub fn shard_index(&self, key: &Key<'_>) -> usize {
        self.shard_of_slot(key.slot)
    }

    /// The shard that holds every key of cluster slot `slot`: one shard per slot, so that a slot
    /// is counted, streamed and deleted under one lock. Slots spread evenly over shards for any
    /// contiguous range of slots (a node's share of the cluster, as Redis assigns them).
    #[must_use]
    pub fn shard_of_slot(&self, slot: u16) -> usize {
        usize::from(slot) & (self.shards.len() - 1)
    }

    /// Locks the shard that holds `key`.
    pub fn lock(&self, key: &Key<'_>) -> MutexGuard<'_, Shard> {
        self.shards[self.shard_index(key)].lock()
    }

    /// Locks shard `index`.
    pub fn lock_shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index].lock()
    }

    /// Locks every shard that holds one of `keys`, in index order.
    pub fn lock_many(&self, keys: &[Key<'_>]) -> MultiLock<'_> {
        let mut indices: Vec<usize> = keys.iter().map(|k| self.shard_index(k)).collect();
        indices.sort_unstable();
        indices.dedup();
        MultiLock {
            guards: indices
                .into_iter()
                .map(|i| (i, self.shards[i].lock()))
                .collect(),
            store: self,
        }
    }

    /// The settings in force (with `maxmemory` and the policy as last set).
    pub fn settings(&self) -> StoreConfig {
        self.settings.lock().clone()
    }

    /// Changes the memory budget, evicting at once if the store is over the new one.
    pub fn set_maxmemory(&self, bytes: usize) {
        let mut settings = self.settings.lock();
        settings.maxmemory = bytes;
        self.budget.set_limit(bytes);
        let n = self.shards.len();
        for shard in &self.shards {
            shard
                .lock()
                .set_max_entries(settings.max_entries.div_ceil(n));
        }
        drop(settings);
        self.evict_while(0, false, || self.budget.over());
    }

    /// Makes room for a write of about `need` bytes to `key` and reserves it, before the key's
    /// shard is locked: evicts from the key's own shard first, then from the others in turn,
    /// until the write fits within the memory budget beside what other writes in progress have
    /// reserved. Cheap when it already fits (a few atomic operations). The room stays reserved
    /// until the returned [`Room`] is dropped, when the write is done.
    ///
    /// # Errors
    /// [`StoreError::OutOfMemory`] when the write can never fit (`need` exceeds the whole
    /// budget), or when the policy has nothing left to evict (`noeviction`, or a volatile policy
    /// with no key that has a TTL) and the write does not fit.
    ///
    /// The caller must hold no shard lock.
    pub fn admit(&self, key: &Key<'_>, need: usize) -> Result<Room<'_>, StoreError> {
        let room = |bytes| Room {
            budget: &self.budget,
            bytes,
        };
        if let Some(bytes) = self.budget.reserve(need) {
            return Ok(room(bytes));
        }
        if need
            > self
                .budget
                .limit()
                .saturating_sub(self.budget.calibration())
        {
            return Err(StoreError::OutOfMemory);
        }
        let mut start = self.shard_index(key);
        loop {
            // Other writes' reservations are released within microseconds, as they finish;
            // evicting meanwhile could empty the store and still not make room.
            let mut waits = 0;
            while !self.budget.could_fit(need) {
                if waits == 1_000 {
                    return Err(StoreError::OutOfMemory);
                }
                waits += 1;
                std::thread::yield_now();
            }
            if !self.evict_while(start, false, || !self.budget.fits(need)) {
                return Err(StoreError::OutOfMemory);
            }
            if let Some(bytes) = self.budget.reserve(need) {
                return Ok(room(bytes));
            }
            // Another writer took the room just made: make more, from elsewhere.
            start = self.evict_cursor.fetch_add(1, Relaxed);
        }
    }

    /// Evicts from any shard until the store is within its memory budget again, after a write
    /// that took more than it was admitted for. Returns whether it is within.
    ///
    /// The caller must hold no shard lock.
    pub fn settle(&self) -> bool {
        if !self.budget.over() {
            return true;
        }
        let start = self.evict_cursor.fetch_add(1, Relaxed);
        self.evict_while(start, true, || self.budget.over())
    }

    /// Evicts by each shard's policy, shard after shard from `start`, while `over()` holds; with
    /// `spare_written`, never the entry each shard wrote last. Returns true once `over()` no
    /// longer holds, false when every shard ran out of victims.
    ///
    /// Tombstones go first, from every shard, before any entry: the oldest of each shard in
    /// turn (so about the oldest of the store), whatever the policy.
    fn evict_while(&self, start: usize, spare_written: bool, over: impl Fn() -> bool) -> bool {
        if self.drop_tombstones_while(start, &over) {
            return true;
        }
        let n = self.shards.len();
        for i in 0..n {
            let mut shard = self.shards[(start + i) % n].lock();
            while over() {
                if !shard.evict_one(spare_written) {
                    break;
                }
            }
            if !over() {
                return true;
            }
        }
        !over()
    }

    /// Drops tombstones, the oldest of each shard in turn from `start` (so about the oldest of
    /// the store), while `over()` holds. Returns true once it no longer holds. Free when the
    /// store keeps no tombstone.
    fn drop_tombstones_while(&self, start: usize, over: impl Fn() -> bool) -> bool {
        if self.budget.tombstones() == 0 {
            return !over();
        }
        let n = self.shards.len();
        for i in 0..n {
            let mut shard = self.shards[(start + i) % n].lock();
            while over() {
                if !shard.drop_tombstone() {
                    break;
                }
            }
            if !over() {
                return true;
            }
        }
        !over()
    }

    /// Room for a new tombstone of `need` bytes for `key`, made by dropping older tombstones,
    /// never by evicting an entry: a tombstone is worth less than a value. `None` when there is
    /// none to make: the new tombstone is then what goes, if it does not fit.
    ///
    /// The caller must hold no shard lock.
    pub(crate) fn admit_tombstone(&self, key: &Key<'_>, need: usize) -> Option<Room<'_>> {
        let room = |bytes| Room {
            budget: &self.budget,
            bytes,
        };
        if let Some(bytes) = self.budget.reserve(need) {
            return Some(room(bytes));
        }
        self.drop_tombstones_while(self.shard_index(key), || !self.budget.fits(need));
        self.budget.reserve(need).map(room)
    }

    /// Sets what the allocator holds for the data beyond what the entries account (measured by
    /// the server from the allocator's statistics); it counts against the budget from now on.
    /// When it grows, the store first evicts to make room for it, so that `used_memory` is never
    /// seen over `maxmemory`.
    ///
    /// The caller must hold no shard lock.
    pub fn set_calibration(&self, bytes: usize) {
        let limit = self.budget.limit();
        if bytes > self.budget.calibration() && limit != 0 {
            let start = self.evict_cursor.fetch_add(1, Relaxed);
            self.evict_while(start, true, || {
                self.budget.accounted().saturating_add(bytes) > limit
            });
        }
        self.budget.set_calibration(bytes);
    }

    /// The calibration in force; see [`Store::set_calibration`].
    #[must_use]
    pub fn calibration(&self) -> usize {
        self.budget.calibration()
    }

    /// Room reserved by writes in progress ([`Store::admit`]): an upper bound on what they have
    /// allocated and not yet accounted.
    #[must_use]
    pub fn reserved_memory(&self) -> usize {
        self.budget.reserved()
    }

    /// What the entries account for, without the calibration.
    #[must_use]
    pub fn accounted_memory(&self) -> usize {
        self.budget.accounted()
    }

    /// When sets leave their compact encodings (`set-max-intset-entries`,
    /// `set-max-listpack-entries`, `set-max-listpack-value`). Sets already converted stay so.
    #[must_use]
    pub fn set_limits(&self) -> SetLimits {
        SetLimits {
            max_intset_entries: self.set_limits[0].load(Relaxed),
            max_listpack_entries: self.set_limits[1].load(Relaxed),
            max_listpack_value: self.set_limits[2].load(Relaxed),
        }
    }

    /// Changes [`Store::set_limits`] for the writes that follow.
    pub fn set_set_limits(&self, limits: SetLimits) {
        self.set_limits[0].store(limits.max_intset_entries, Relaxed);
        self.set_limits[1].store(limits.max_listpack_entries, Relaxed);
        self.set_limits[2].store(limits.max_listpack_value, Relaxed);
    }

    /// How long a deleted key's tombstone lives, in ms; 0 (the default) keeps none. The server
    /// turns tombstones on when the cluster replicates, so that a late or re-sent older write
    /// cannot bring a deleted key back (see [`crate::effect`], "Tombstones").
    ///
    /// With tombstones on, a delete (`DEL`, `UNLINK`, `GETDEL`, an expiry set in the past, the
    /// last field of a hash deleted, a `Delete` restored) leaves the key's version of deletion:
    /// [`Store::restore`] then refuses effects not newer than it, and [`Store::effect_of`],
    /// [`Store::dump_key`] and [`Store::version_of`] give it. An overwrite is not a delete, and a
    /// key that expires or is evicted leaves none. Tombstones are never seen by reads, `SCAN`,
    /// `KEYS`, `DBSIZE`, `RANDOMKEY` or the slot counts; [`Store::dump_slot`] streams them as
    /// `Delete`s; `FLUSHALL` ([`Store::clear`]) and [`Store::delete_slot`] drop them.
    ///
    /// They count in the memory budget (their key and [`crate::TOMBSTONE_OVERHEAD`]) and die
    /// after `ms`, swept by the expiry cycle ([`Store::expire_cycle`]). Under memory pressure the
    /// oldest go before any entry is evicted, whatever the policy (`noeviction` included):
    /// [`Store::admit`] drops them from every shard before it evicts, a shard over its share
    /// after a write drops its own first, and a new tombstone never evicts an entry (without room
    /// it is dropped itself). A tombstone forgotten early lets a late older write bring the
    /// deleted value back, as it could once the tombstone died: the window opens early, for at
    /// most the rest of its life.
    /// Turning them off (0) makes those kept dead at once; the expiry cycle sweeps them.
    pub fn set_tombstone_ms(&self, ms: u64) {
        let mut settings = self.settings.lock();
        settings.tombstone_ms = ms;
        self.tombstone_ms.store(ms, Relaxed);
        for shard in &self.shards {
            shard.lock().set_tomb_life(ms);
        }
    }

    /// What this node knows of `key`'s newest version (for a quorum read): its live entry's
    /// ([`KeyVersion::Live`]), its tombstone's ([`KeyVersion::Deleted`]), or nothing.
    pub fn version_of(&self, key: &[u8], now: u64) -> Option<KeyVersion> {
        let key = self.key(key);
        self.lock(&key).version_of(&key, now)
    }

    pub(crate) fn tombstones_on(&self) -> bool {
        self.tombstone_ms.load(Relaxed) != 0
    }

    /// Changes the eviction policy.
    pub fn set_policy(&self, policy: PolicyName) {
        let mut settings = self.settings.lock();
        settings.policy = policy;
        for shard in &self.shards {
            shard.lock().set_policy(policy);
        }
    }

    /// Sums the shards' counters. Locks each shard in turn, briefly.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for shard in &self.shards {
            let shard = shard.lock();
            let ShardStats {
                hits,
                misses,
                expired,
                evicted,
            } = shard.stats();
            total.keys += shard.len();
            total.volatile_keys += shard.volatile_len();
            total.tombstones += shard.tombstones();
            total.hits += hits;
            total.misses += misses;
            total.expired += expired;
            total.evicted += evicted;
        }
        total.used = self.used_memory();
        total
    }

    /// Zeroes the hit, miss, expiry and eviction counters (`CONFIG RESETSTAT`).
    pub fn reset_stats(&self) {
        for shard in &self.shards {
            shard.lock().reset_stats();
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What counts against `maxmemory`: the entries over all shards as accounted, plus the
    /// calibration.
    #[must_use]
    pub fn used_memory(&self) -> usize {
        self.budget.used()
    }

    /// Removes every key and every tombstone.
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.lock().clear();
        }
    }

    /// One round of active expiry: each shard reclaims up to `per_shard` expired keys and drops
    /// up to `per_shard` dead tombstones, holding its lock only for that. Returns how many keys
    /// and tombstones went.
    pub fn expire_cycle(&self, now: u64, per_shard: usize) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expire_some(now, per_shard))
            .sum()
    }

    /// A random live key.
    pub fn random_key(&self, now: u64, pick: u64) -> Option<Box<[u8]>> {
        let n = self.shards.len();
        (0..n).find_map(|i| self.shards[(pick as usize + i) % n].lock().random_key(now))
    }

    /// One step of a cursor-based scan over all shards. The cursor packs the shard index in its
    /// top bits and the slab position in the rest; 0 starts and ends a scan. Visits about `count`
    /// entries that pass `filter`'s type test; the caller applies the pattern to the keys.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        now: u64,
        filter: ScanFilter<'_>,
        mut visit: impl FnMut(EntryRef<'_>),
    ) -> u64 {
        let position_bits = 64 - self.shard_bits.max(1);
        let mut shard = (cursor >> position_bits) as usize;
        let mut position = (cursor & ((1 << position_bits) - 1)) as usize;
        let mut budget = count.max(1);
        while shard < self.shards.len() {
            let guard = self.shards[shard].lock();
            let mut seen = 0;
            let next = guard.scan(position, budget, now, |entry| {
                seen += 1;
                let type_ok = filter
                    .type_name
                    .is_none_or(|t| t.eq_ignore_ascii_case(entry.value().type_name()));
                let pattern_ok = filter
                    .pattern
                    .is_none_or(|p| crate::glob::glob_match(p, entry.key()));
                if type_ok && pattern_ok {
                    visit(entry);
                }
            });
            budget = budget.saturating_sub(seen);
            match next {
                Some(position) => return ((shard as u64) << position_bits) | position as u64,
                None => {
                    shard += 1;
                    position = 0;
                }
            }
            if budget == 0 {
                break;
            }
        }
        if shard >= self.shards.len() {
            0
        } else {
            (shard as u64) << position_bits
        }
    }
}
