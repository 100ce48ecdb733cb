//! One shard: a hash table over a slab of entries, the eviction policy's state, the expiry index
//! and the shard's share of the budgets. Everything here runs under the shard's lock.

use std::collections::BTreeSet;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::clock::{Hlc, Version};
use crate::config::{EvictionScope, PolicyKind, PolicyName};
use crate::effect::KeyVersion;
use crate::entry::{Aggregate, Entry, EntryRef, Kind, OwnedEntry, Value};
use crate::memory::{Budget, ENTRY_OVERHEAD, SLOT_INDEX_OVERHEAD, VOLATILE_OVERHEAD};
use crate::policy::{self, EvictionPolicy};
use crate::slot_index::SlotLists;
use crate::store::{Key, hash_key};

mod modify;
mod record;
#[cfg(test)]
mod slot_tests;
mod tombstones;
mod transfer;

pub use modify::Modify;
pub use record::{HashMut, SetMut, ZSetMut};
pub use tombstones::TOMBSTONE_OVERHEAD;
use tombstones::Tombstones;
pub(crate) use tombstones::tombstone_cost;
pub use transfer::DumpCursor;

/// What an entry costs, as the store accounts it: its cell and table share, its allocation, its
/// elements if it is an aggregate, its place in the expiry index if it has a TTL.
pub(crate) fn entry_mem(entry: &Entry, aggregate: Option<&Aggregate>) -> usize {
    ENTRY_OVERHEAD
        + entry.data_mem()
        + aggregate.map_or(0, Aggregate::mem)
        + if entry.expire_raw() != 0 {
            VOLATILE_OVERHEAD
        } else {
            0
        }
}

/// How a lookup counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A read by a command: counts a hit or a miss and refreshes the entry for the policy.
    Read,
    /// A read as part of a write: refreshes the entry, counts nothing.
    Write,
    /// Looks without touching anything (TYPE, TTL, OBJECT, SCAN's TYPE filter).
    Peek,
}

/// Counters kept per shard and summed by [`crate::Store::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
    pub evicted: u64,
}

#[derive(Debug)]
pub struct Shard {
    table: HashTable<u32>,
    cells: Vec<Option<Entry>>,
    /// The elements of every aggregate (hash, list, set, sorted set), by cell.
    aggregates: hashbrown::HashMap<u32, Aggregate>,
    free: Vec<u32>,
    policy: Box<dyn EvictionPolicy>,
    policy_name: PolicyName,
    /// `(expire_at, cell)` for every key with a TTL.
    expires: BTreeSet<(u64, u32)>,
    /// Cluster slot → the cells of its keys (each entry holds its position there), while
    /// `slots_indexed`.
    by_slot: SlotLists,
    /// Whether `by_slot` is kept: from the start, or from the first slot query (see
    /// [`crate::StoreConfig::slot_index`]).
    slots_indexed: bool,
    clock: Hlc,
    /// Keys deleted lately, with the version of their deletion (see `tombstones`).
    tombs: Tombstones,
    /// How long a tombstone lives, in ms; 0: deletes leave none.
    tomb_life: u64,
    /// The store's key-hash seed, to rehash keys when the table grows.
    hash_seed: u64,
    seed: u64,
    rng: u64,
    used: usize,
    /// The store's memory budget, shared with the other shards.
    budget: Arc<Budget>,
    /// This shard's `used()` as last added to the budget.
    published: usize,
    /// This shard's tombstones' share of `used()` as last added to the budget.
    published_tombs: usize,
    /// The entry written last, which eviction spares: a write never evicts what it just wrote.
    protect: Option<u32>,
    /// Entry budget; 0 is unlimited.
    max_entries: usize,
    stats: ShardStats,
    /// Where expired and evicted keys are reported (when it is on).
    removed: Arc<crate::RemovedKeys>,
    /// Whether writes record deltas (see `record`): when something replicates them.
    record_deltas: bool,
    /// Deltas recorded and not yet taken by replication.
    outbox: record::Outbox,
}

impl Shard {
    #[expect(
        clippy::too_many_arguments,
        reason = "crate-private, called from one place with the store's settings"
    )]
    pub(crate) fn new(
        policy_name: PolicyName,
        budget: Arc<Budget>,
        max_entries: usize,
        node_id: u16,
        hash_seed: u64,
        seed: u64,
        shard_bits: u32,
        tomb_life: u64,
        slot_index: bool,
        removed: Arc<crate::RemovedKeys>,
    ) -> Self {
        Self {
            table: HashTable::new(),
            cells: Vec::new(),
            aggregates: hashbrown::HashMap::new(),
            free: Vec::new(),
            policy: policy::for_kind(policy_name.kind, seed),
            policy_name,
            expires: BTreeSet::new(),
            by_slot: SlotLists::new(shard_bits),
            slots_indexed: slot_index,
            clock: Hlc::new(node_id),
            tombs: Tombstones::new(hash_seed, shard_bits),
            tomb_life,
            hash_seed,
            seed,
            rng: seed | 1,
            used: 0,
            budget,
            published: 0,
            published_tombs: 0,
            protect: None,
            max_entries,
            stats: ShardStats::default(),
            removed,
            record_deltas: false,
            outbox: record::Outbox::default(),
        }
    }

    /// Number of keys, including expired keys not yet reclaimed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Keys with a TTL.
    #[must_use]
    pub fn volatile_len(&self) -> usize {
        self.expires.len()
    }

    /// Tombstones kept (deleted keys remembered: see [`crate::Store::set_tombstone_ms`]), dead
    /// ones not yet swept included.
    #[must_use]
    pub fn tombstones(&self) -> usize {
        self.tombs.len()
    }

    /// Accounted bytes: the entries (each with its share of the slab and the indexes), the
    /// eviction policy's bookkeeping and the tombstones.
    #[must_use]
    pub fn used(&self) -> usize {
        // Each entry counts its share of the slot index; a shard that keeps none takes it back.
        let unindexed = if self.slots_indexed {
            0
        } else {
            self.table.len() * SLOT_INDEX_OVERHEAD
        };
        self.used + self.policy.memory(self.table.len()) + self.tombs.used() - unindexed
    }

    #[must_use]
    pub fn stats(&self) -> ShardStats {
        self.stats
    }

    pub(crate) fn reset_stats(&mut self) {
        self.stats = ShardStats::default();
    }

    /// The hybrid logical clock that versions this shard's writes.
    pub fn clock(&mut self) -> &mut Hlc {
        &mut self.clock
    }

    /// The key of `bytes`, hashed as this shard hashes it.
    fn key_of<'k>(&self, bytes: &'k [u8]) -> Key<'k> {
        Key {
            bytes,
            hash: hash_key(self.hash_seed, bytes),
            slot: dcache_placement::slot(bytes),
        }
    }

    fn find(&self, key: &Key<'_>) -> Option<u32> {
        let cells = &self.cells;
        self.table
            .find(key.hash, |&i| {
                cells[i as usize]
                    .as_ref()
                    .is_some_and(|e| e.key() == key.bytes)
            })
            .copied()
    }

    fn entry_at(&self, cell: u32) -> &Entry {
        self.cells[cell as usize].as_ref().expect("a live cell")
    }

    fn entry_at_mut(&mut self, cell: u32) -> &mut Entry {
        self.cells[cell as usize].as_mut().expect("a live cell")
    }

    /// A side-table aggregate's elements (`None` for strings and inline aggregates, without a
    /// look-up).
    pub(crate) fn aggregate_of(&self, cell: u32, entry: &Entry) -> Option<&Aggregate> {
        if entry.in_side_table() {
            self.aggregates.get(&cell)
        } else {
            None
        }
    }

    fn mem_at(&self, cell: u32) -> usize {
        let entry = self.entry_at(cell);
        entry_mem(entry, self.aggregate_of(cell, entry))
    }

    fn entry_ref(&self, cell: u32) -> EntryRef<'_> {
        let entry = self.entry_at(cell);
        EntryRef {
            entry,
            aggregate: self.aggregate_of(cell, entry),
        }
    }

    /// Finds a live entry: reclaims it if expired, and touches it as `mode` says.
    fn lookup_cell(&mut self, key: &Key<'_>, now: u64, mode: Lookup) -> Option<u32> {
        let found = self.find(key);
        let cell = match found {
            Some(cell) if self.entry_at(cell).is_expired(now) => {
                self.removed.note(self.entry_at(cell).key());
                self.discard_cell(cell);
                self.stats.expired += 1;
                None
            }
            other => other,
        };
        match (cell, mode) {
            (Some(cell), Lookup::Read | Lookup::Write) => {
                if mode == Lookup::Read {
                    self.stats.hits += 1;
                }
                self.policy.access(cell);
                self.entry_at_mut(cell).touched = (now / 1000) as u32;
            }
            (None, Lookup::Read) => self.stats.misses += 1,
            _ => {}
        }
        cell
    }

    /// The live entry for `key`.
    pub fn get(&mut self, key: &Key<'_>, now: u64, mode: Lookup) -> Option<EntryRef<'_>> {
        let cell = self.lookup_cell(key, now, mode)?;
        Some(self.entry_ref(cell))
    }

    /// Sets `key` to `value`, replacing whatever was there. With `keep_ttl` an existing TTL
    /// survives; otherwise the key gets `expire_at` (or none).
    pub fn set(
        &mut self,
        key: &Key<'_>,
        value: Value<'_>,
        expire_at: Option<u64>,
        keep_ttl: bool,
        now: u64,
    ) {
        match self.lookup_cell(key, now, Lookup::Write) {
            Some(cell) => {
                let before = self.mem_at(cell);
                let version = self.clock.tick(now);
                let old_expire = self.entry_at(cell).expire_raw();
                let expire = if keep_ttl {
                    old_expire
                } else {
                    expire_at.unwrap_or(0)
                };
                let touched = (now / 1000) as u32;
                let current = self.entry_at_mut(cell);
                if let Value::Str(s) = value
                    && expire == old_expire
                    && current.overwrite_str(s)
                {
                    // Same size, same TTL: the bytes were replaced in place.
                    current.version = version;
                    current.touched = touched;
                    self.enforce(Some(cell));
                    return;
                }
                if current.in_side_table() {
                    self.aggregates.remove(&cell);
                }
                let (entry, aggregate) = place_value(key.bytes, value, expire, touched, version);
                if let Some(aggregate) = aggregate {
                    self.aggregates.insert(cell, aggregate);
                }
                self.entry_at_mut(cell).replace(entry);
                if old_expire != expire {
                    if old_expire != 0 {
                        self.expires.remove(&(old_expire, cell));
                    }
                    if expire != 0 {
                        self.expires.insert((expire, cell));
                    }
                }
                self.used = self.used + self.mem_at(cell) - before;
                self.enforce(Some(cell));
            }
            None => {
                let cell = self.insert_new(key, value, expire_at.unwrap_or(0), now);
                self.enforce(Some(cell));
            }
        }
    }

    fn insert_new(&mut self, key: &Key<'_>, value: Value<'_>, expire_at: u64, now: u64) -> u32 {
        let version = self.clock.tick(now);
        let touched = (now / 1000) as u32;
        let (entry, aggregate) = place_value(key.bytes, value, expire_at, touched, version);
        self.insert_entry(key, entry, aggregate)
    }

    /// Inserts an empty aggregate of `kind` (or an empty string) as a new entry.
    fn insert_empty(&mut self, key: &Key<'_>, kind: Kind, now: u64) -> u32 {
        let version = self.clock.tick(now);
        let touched = (now / 1000) as u32;
        match Aggregate::empty(kind) {
            None => self.insert_entry(
                key,
                Entry::string(key.bytes, &[], 0, touched, version),
                None,
            ),
            Some(aggregate) => {
                let (entry, aggregate) = place(key.bytes, aggregate, 0, touched, version);
                self.insert_entry(key, entry, aggregate)
            }
        }
    }

    /// Puts a new entry (absent from the table) in a free cell and indexes it everywhere.
    pub(crate) fn insert_entry(
        &mut self,
        key: &Key<'_>,
        mut entry: Entry,
        aggregate: Option<Aggregate>,
    ) -> u32 {
        // The side table holds a cell's value exactly when its entry's body is empty.
        debug_assert_eq!(aggregate.is_some(), entry.in_side_table());
        let expire_at = entry.expire_raw();
        let free = self.free.pop();
        let cell = match free {
            Some(cell) => cell,
            None => u32::try_from(self.cells.len()).expect("fewer than 2^32 entries per shard"),
        };
        if self.slots_indexed {
            entry.slot_pos = self.by_slot.insert(key.slot, cell);
        }
        match free {
            Some(_) => self.cells[cell as usize] = Some(entry),
            None => self.cells.push(Some(entry)),
        }
        if let Some(a) = aggregate {
            self.aggregates.insert(cell, a);
        }
        if expire_at != 0 {
            self.expires.insert((expire_at, cell));
        }
        self.used += self.mem_at(cell);
        let (cells, seed) = (&self.cells, self.hash_seed);
        self.table.insert_unique(key.hash, cell, |&i| {
            hash_key(seed, cells[i as usize].as_ref().expect("a live cell").key())
        });
        self.policy.insert(cell, key.hash);
        if !self.tombs.is_empty() {
            // The new entry's version is newer than the tombstone's: local versions come from a
            // clock that issued or observed the tombstone's, and `apply` checks its own.
            self.tombs.remove(key);
        }
        cell
    }

    /// Changes a live entry's expiry time (0: none), keeping the index and the count in step.
    fn set_expire_cell(&mut self, cell: u32, expire_at: u64) {
        let old = self.entry_at(cell).expire_raw();
        if old == expire_at {
            return;
        }
        let before = self.mem_at(cell);
        if old != 0 {
            self.expires.remove(&(old, cell));
        }
        if expire_at != 0 {
            self.expires.insert((expire_at, cell));
        }
        self.entry_at_mut(cell).set_expire(expire_at);
        self.used = self.used + self.mem_at(cell) - before;
        self.publish();
    }

    /// Removes `key` and returns its entry.
    pub fn remove(&mut self, key: &Key<'_>, now: u64) -> Option<OwnedEntry> {
        let cell = self.lookup_cell(key, now, Lookup::Peek)?;
        let (entry, aggregate) = self.remove_cell(cell);
        self.deleted(key, now);
        let expire_at = entry.expire_raw();
        Some(OwnedEntry {
            key: entry.key().into(),
            value: match aggregate {
                Some(a) => a.into_owned(),
                None => EntryRef {
                    entry: &entry,
                    aggregate: None,
                }
                .value()
                .into_owned(),
            },
            expire_at: (expire_at != 0).then_some(expire_at),
            version: entry.version,
        })
    }

    /// Removes `key`; true when it was there. Unlike [`Shard::remove`], copies nothing out.
    ///
    /// Both are deletes (`DEL`, `GETDEL`, an expiry set in the past): with tombstones on, the
    /// key leaves one at a new version. A key that was not there leaves none (it expired or was
    /// evicted here, which other copies decide for themselves).
    pub fn delete(&mut self, key: &Key<'_>, now: u64) -> bool {
        match self.lookup_cell(key, now, Lookup::Peek) {
            Some(cell) => {
                self.discard_cell(cell);
                self.deleted(key, now);
                true
            }
            None => false,
        }
    }

    /// After a local delete of `key`: its tombstone, at a new version, if tombstones are on.
    fn deleted(&mut self, key: &Key<'_>, now: u64) {
        if self.tomb_life != 0 {
            let version = self.clock.tick(now);
            self.tombs.put(key, version, now);
            self.enforce(None);
        }
    }

    /// `key`'s live tombstone's version (a dead one found is dropped).
    pub(crate) fn tomb_of(&mut self, key: &Key<'_>, now: u64) -> Option<Version> {
        if self.tombs.is_empty() {
            return None;
        }
        self.tombs.get(key, now, self.tomb_life)
    }

    /// Records that `key` was deleted at `version`, if tombstones are on. The caller has
    /// checked that `version` is newer than what the shard knows of the key.
    pub(crate) fn record_delete(&mut self, key: &Key<'_>, version: Version, now: u64) -> bool {
        if self.tomb_life == 0 {
            return false;
        }
        self.tombs.put(key, version, now);
        self.enforce(None);
        true
    }

    /// What this shard knows of `key`'s newest version: its live entry's, or its tombstone's.
    pub fn version_of(&mut self, key: &Key<'_>, now: u64) -> Option<KeyVersion> {
        match self.lookup_cell(key, now, Lookup::Peek) {
            Some(cell) => Some(KeyVersion::Live(self.entry_at(cell).version)),
            None => self.tomb_of(key, now).map(KeyVersion::Deleted),
        }
    }

    /// Turns recording deltas on or off (see `record`).
    pub(crate) fn set_record_deltas(&mut self, on: bool) {
        self.record_deltas = on;
        if !on {
            self.outbox.clear();
        }
    }

    /// What replication sends for a write of `key`: the write's delta if it is the key's
    /// newest change, else the key's whole state (see [`crate::Store::replication_effect`]).
    pub(crate) fn replication_effect(&mut self, key: &Key<'_>, now: u64) -> crate::Effect {
        let delta = self.outbox.take(key.bytes);
        match (delta, self.version_of(key, now)) {
            (Some(delta), Some(KeyVersion::Live(v))) if delta.version == v => delta,
            _ => self.effect_of(key, now),
        }
    }

    /// Sets how long tombstones live (0: deletes leave none, and those left are dead, to be
    /// swept by the expiry cycle).
    pub(crate) fn set_tomb_life(&mut self, ms: u64) {
        self.tomb_life = ms;
    }

    /// Empties a cell and gives back what it held, without copying: eviction and expiry drop it.
    pub(crate) fn remove_cell(&mut self, cell: u32) -> (Entry, Option<Aggregate>) {
        self.used -= self.mem_at(cell);
        if self.protect == Some(cell) {
            self.protect = None;
        }
        let entry = self.cells[cell as usize].take().expect("a live cell");
        let aggregate = self.aggregates.remove(&cell);
        let table_hash = hash_key(self.hash_seed, entry.key());
        self.table
            .find_entry(table_hash, |&i| i == cell)
            .expect("a live cell is in the table")
            .remove();
        let expire_at = entry.expire_raw();
        if expire_at != 0 {
            self.expires.remove(&(expire_at, cell));
        }
        self.policy.remove(cell, table_hash);
        if self.slots_indexed {
            let at = entry.slot_pos;
            if let Some(moved) = self
                .by_slot
                .remove(dcache_placement::slot(entry.key()), cell, at)
            {
                self.entry_at_mut(moved).slot_pos = at;
            }
        }
        self.free.push(cell);
        if self.table.is_empty() {
            // Nothing refers to any cell now: give the slab's, the index's and the policy's
            // memory back.
            self.cells = Vec::new();
            self.free = Vec::new();
            self.table = HashTable::new();
            self.policy.clear();
            self.by_slot.clear();
        }
        self.publish();
        (entry, aggregate)
    }

    /// Removes a cell whose contents no one wants (a delete, an eviction, an expiry): a large
    /// aggregate is freed in the background, so that the shard is not held while it is.
    pub(crate) fn discard_cell(&mut self, cell: u32) {
        let (_, aggregate) = self.remove_cell(cell);
        if let Some(a) = aggregate {
            crate::lazyfree::drop_aggregate(a);
        }
    }

    /// Puts `aggregate` back as the value of the aggregate entry in `cell`: inline when it is
    /// compact, else in the side table. Key, TTL, version and idle time stay; the caller keeps
    /// `used` in step.
    pub(crate) fn store_aggregate(&mut self, cell: u32, aggregate: Aggregate) {
        let entry = self.entry_at(cell);
        let (entry, aggregate) = place(
            entry.key(),
            aggregate,
            entry.expire_raw(),
            entry.touched,
            entry.version,
        );
        // The side table holds a cell's value exactly when its entry's body is empty.
        debug_assert_eq!(aggregate.is_some(), entry.in_side_table());
        match aggregate {
            Some(a) => {
                self.aggregates.insert(cell, a);
            }
            None => {
                self.aggregates.remove(&cell);
            }
        }
        self.entry_at_mut(cell).replace(entry);
    }

    /// Runs `f` on the aggregate in `cell`, owned: the side table's in place, an inline one
    /// copied out and stored back after (inline again if it is still compact). `None` for a
    /// string. The caller keeps `used` in step.
    pub(crate) fn with_aggregate<R>(
        &mut self,
        cell: u32,
        f: impl FnOnce(&mut Aggregate) -> R,
    ) -> Option<R> {
        let entry = self.entry_at(cell);
        if let Some(body) = entry.inline_body() {
            let mut aggregate = crate::inline::to_owned(body);
            let r = f(&mut aggregate);
            self.store_aggregate(cell, aggregate);
            return Some(r);
        }
        let r = f(self.aggregates.get_mut(&cell)?);
        if self.aggregates.get(&cell).is_some_and(crate::inline::fits) {
            let aggregate = self.aggregates.remove(&cell).expect("just seen");
            self.store_aggregate(cell, aggregate);
        }
        Some(r)
    }

    /// Whether the entry in `cell` is an aggregate with no elements.
    fn holds_empty_aggregate(&self, cell: u32) -> bool {
        match self.entry_ref(cell).value() {
            Value::Str(_) => false,
            v => v.elements() == 0,
        }
    }

    /// Sets or clears a live key's TTL. Returns false when the key does not exist.
    pub fn set_expire(&mut self, key: &Key<'_>, expire_at: Option<u64>, now: u64) -> bool {
        let Some(cell) = self.lookup_cell(key, now, Lookup::Write) else {
            return false;
        };
        self.set_expire_cell(cell, expire_at.unwrap_or(0));
        let version = self.clock.tick(now);
        self.entry_at_mut(cell).version = version;
        true
    }

    /// A handle to change the value of `key` in place, created as an empty value of `create`'s
    /// kind when the key is absent (or `None` without `create`). Memory, version and eviction
    /// are brought up to date when the handle is dropped, and only if something was changed. An
    /// aggregate left empty is removed, as Redis removes empty aggregates.
    pub fn modify(&mut self, key: &Key<'_>, now: u64, create: Option<Kind>) -> Option<Modify<'_>> {
        let mut tomb = None;
        let cell = match (self.lookup_cell(key, now, Lookup::Write), create) {
            (Some(cell), _) => cell,
            (None, Some(kind)) => {
                // Creating the key drops its tombstone; if the new value is then left empty and
                // not kept, the key was never written, and the tombstone comes back.
                tomb = self.tomb_of(key, now);
                self.insert_empty(key, kind, now)
            }
            (None, None) => return None,
        };
        let before = self.mem_at(cell);
        Some(Modify::new(self, cell, before, now, tomb))
    }

    /// Adds this shard's change in accounted bytes since the last call to the shared budget.
    fn publish(&mut self) {
        let used = self.used();
        self.budget.update(self.published, used);
        self.published = used;
        let tombs = self.tombs.used();
        if tombs != self.published_tombs {
            self.budget.update_tombstones(self.published_tombs, tombs);
            self.published_tombs = tombs;
        }
    }

    /// Drops this shard's oldest tombstone; false when it has none.
    pub(crate) fn drop_tombstone(&mut self) -> bool {
        let dropped = self.tombs.drop_oldest();
        if dropped {
            self.publish();
        }
        dropped
    }

    /// Evicts one entry by the policy; with `spare_written`, never the one written last. False
    /// when the policy has no victim here.
    pub(crate) fn evict_one(&mut self, spare_written: bool) -> bool {
        match self.pick_victim(if spare_written { self.protect } else { None }) {
            Some(victim) => {
                self.removed.note(self.entry_at(victim).key());
                self.discard_cell(victim);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }

    fn pick_victim(&mut self, protect: Option<u32>) -> Option<u32> {
        let cells = &self.cells;
        let volatile = self.policy_name.scope == EvictionScope::Volatile;
        match self.policy_name.kind {
            PolicyKind::NoEviction => None,
            PolicyKind::Ttl => self
                .expires
                .iter()
                .map(|&(_, cell)| cell)
                .find(|&cell| Some(cell) != protect),
            _ => self.policy.victim(&mut |cell| {
                Some(cell) != protect
                    && (!volatile
                        || cells[cell as usize]
                            .as_ref()
                            .is_some_and(|e| e.expire_raw() != 0))
            }),
        }
    }

    /// Evicts from this shard until the store is within its memory budget and the shard within
    /// its entry budget, or no victim is left here (the store then evicts from other shards).
    /// `written` is the entry just written, which is never its own victim.
    ///
    /// Tombstones go first when memory is short: forgetting one risks a stale copy of a deleted
    /// key coming back (until the tombstone would have died anyway), evicting an entry loses a
    /// value for sure.
    fn enforce(&mut self, written: Option<u32>) {
        if written.is_some() {
            self.protect = written;
        }
        loop {
            self.publish();
            let over_memory = self.budget.over();
            if !over_memory && (self.max_entries == 0 || self.table.len() <= self.max_entries) {
                return;
            }
            if over_memory && self.tombs.drop_oldest() {
                continue;
            }
            if !self.evict_one(true) {
                return;
            }
        }
    }

    /// Reclaims up to `max` expired entries, the soonest-expired first, and up to `max` dead
    /// tombstones, the oldest first. Returns how many of both.
    pub fn expire_some(&mut self, now: u64, max: usize) -> usize {
        let swept = if self.tombs.is_empty() {
            0
        } else {
            let swept = self.tombs.sweep(now, self.tomb_life, max);
            self.publish();
            swept
        };
        swept + self.expire_entries(now, max)
    }

    fn expire_entries(&mut self, now: u64, max: usize) -> usize {
        let mut removed = 0;
        while removed < max {
            match self.expires.first() {
                Some(&(at, cell)) if at <= now => {
                    self.removed.note(self.entry_at(cell).key());
                    self.discard_cell(cell);
                    self.stats.expired += 1;
                    removed += 1;
                }
                _ => break,
            }
        }
        removed
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniformly random live key, reclaiming expired ones it meets.
    pub fn random_key(&mut self, now: u64) -> Option<Box<[u8]>> {
        while !self.table.is_empty() {
            let cell = match self.cells.len() {
                n if self.table.len() * 8 >= n => (self.next_random() % n as u64) as u32,
                // Sparse slab: pick the n-th live cell rather than probing empty ones.
                _ => {
                    let nth = (self.next_random() % self.table.len() as u64) as usize;
                    self.cells
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.is_some())
                        .nth(nth)?
                        .0 as u32
                }
            };
            let Some(entry) = self.cells[cell as usize].as_ref() else {
                continue;
            };
            if entry.is_expired(now) {
                self.removed.note(entry.key());
                self.discard_cell(cell);
                self.stats.expired += 1;
                continue;
            }
            return Some(entry.key().into());
        }
        None
    }

    /// Visits live entries from slab position `from`, up to `count` of them, and returns the next
    /// position (or `None` when the shard is done). Entries present for the whole of a scan are
    /// visited exactly once; cells never move, so the position is a stable cursor.
    pub fn scan(
        &self,
        from: usize,
        count: usize,
        now: u64,
        mut visit: impl FnMut(EntryRef<'_>),
    ) -> Option<usize> {
        let mut seen = 0;
        for (i, cell) in self.cells.iter().enumerate().skip(from) {
            if seen >= count {
                return Some(i);
            }
            if let Some(entry) = cell.as_ref().filter(|e| !e.is_expired(now)) {
                let aggregate = self.aggregate_of(i as u32, entry);
                visit(EntryRef { entry, aggregate });
                seen += 1;
            }
        }
        None
    }

    /// Removes every entry and every tombstone.
    pub fn clear(&mut self) {
        self.tombs.clear();
        self.table.clear();
        self.cells.clear();
        self.aggregates.clear();
        self.free.clear();
        self.expires.clear();
        self.policy.clear();
        self.by_slot.clear();
        self.used = 0;
        self.protect = None;
        self.publish();
    }

    /// Changes the entry budget and evicts down to the budgets in force.
    pub(crate) fn set_max_entries(&mut self, max_entries: usize) {
        self.max_entries = max_entries;
        self.enforce(None);
    }

    pub(crate) fn set_policy(&mut self, name: PolicyName) {
        let old = std::mem::replace(&mut self.policy_name, name);
        if policy::bookkeeping(old.kind) != policy::bookkeeping(name.kind) {
            self.policy = policy::for_kind(name.kind, self.seed);
            for (cell, entry) in self.cells.iter().enumerate() {
                if let Some(entry) = entry {
                    let hash = hash_key(self.hash_seed, entry.key());
                    self.policy.insert(cell as u32, hash);
                }
            }
        }
        self.enforce(None);
    }

    /// For tests: `(the accounted entry bytes, a recount of them, side-table cells)`.
    #[cfg(test)]
    pub(crate) fn accounting(&self) -> (usize, usize, usize) {
        let recount = (0..self.cells.len() as u32)
            .filter(|&c| self.cells[c as usize].is_some())
            .map(|c| self.mem_at(c))
            .sum();
        (self.used, recount, self.aggregates.len())
    }

    /// Indexes the keys by slot if they are not yet (a store made without the index, asked
    /// about a slot for the first time): one pass over the slab, a CRC16 a key.
    pub(crate) fn index_slots(&mut self) {
        if self.slots_indexed {
            return;
        }
        for (cell, entry) in self.cells.iter_mut().enumerate() {
            if let Some(entry) = entry {
                let slot = dcache_placement::slot(entry.key());
                entry.slot_pos = self.by_slot.insert(slot, cell as u32);
            }
        }
        self.slots_indexed = true;
        // Its entries count their share of the index again (see `used`).
        self.publish();
    }

    /// For tests: checks that every live entry is listed once, in its key's slot, at the
    /// position its entry holds (and none is listed while the shard keeps no index).
    #[cfg(test)]
    pub(crate) fn check_slot_positions(&self) {
        let mut listed = 0;
        for (local, cells) in self.by_slot.each() {
            for (at, &cell) in cells.iter().enumerate() {
                let entry = self.entry_at(cell);
                let slot = dcache_placement::slot(entry.key());
                assert_eq!(
                    self.by_slot.local(slot),
                    local,
                    "cell {cell} in its slot's list"
                );
                assert_eq!(entry.slot_pos as usize, at, "cell {cell}'s position");
                listed += 1;
            }
        }
        let expected = if self.slots_indexed {
            self.table.len()
        } else {
            0
        };
        assert_eq!(
            listed, expected,
            "every live entry is listed once (when indexed)"
        );
    }

    /// The policy's access frequency for `key` (`OBJECT FREQ`), when the policy keeps one.
    pub fn frequency(&mut self, key: &Key<'_>, now: u64) -> Option<Option<u32>> {
        let cell = self.lookup_cell(key, now, Lookup::Peek)?;
        Some(self.policy.frequency(cell))
    }
}

/// The entry for `key` holding `value`, and the aggregate to put in the side table if the value
/// goes there (a compact aggregate is held inline, a string in the entry).
fn place_value(
    key: &[u8],
    value: Value<'_>,
    expire_at: u64,
    touched: u32,
    version: Version,
) -> (Entry, Option<Aggregate>) {
    if let Value::Str(s) = value {
        return (Entry::string(key, s, expire_at, touched, version), None);
    }
    match crate::inline::body_of(value) {
        Some((header, packed)) => (
            Entry::inline(key, header.bytes(), packed, expire_at, touched, version),
            None,
        ),
        None => (
            Entry::aggregate(key, expire_at, touched, version),
            Aggregate::of(value),
        ),
    }
}

/// As [`place_value`], for an owned aggregate (not copied when it goes to the side table).
fn place(
    key: &[u8],
    aggregate: Aggregate,
    expire_at: u64,
    touched: u32,
    version: Version,
) -> (Entry, Option<Aggregate>) {
    match crate::inline::body_of(aggregate.as_value()) {
        Some((header, packed)) => (
            Entry::inline(key, header.bytes(), packed, expire_at, touched, version),
            None,
        ),
        None => (
            Entry::aggregate(key, expire_at, touched, version),
            Some(aggregate),
        ),
    }
}
