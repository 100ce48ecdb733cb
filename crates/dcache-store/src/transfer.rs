//! One cluster slot as a whole, for `CLUSTER COUNTKEYSINSLOT`/`GETKEYSINSLOT` and for slot
//! migration: count, list, stream and delete a slot's keys, and apply the effects streamed from
//! another node. Every key of a slot lives in one shard (the shard is a function of the slot), so
//! each call takes one lock and touches only that slot's keys; the calls that could take long
//! do a bounded amount of work and return a cursor or a count to call again with.
//!
//! Migration, as the store sees it: the source calls [`Store::dump_slot`] until it returns no
//! cursor, sending each effect on; the target [`Store::restore`]s them in order. Writes to the
//! slot made after the first `dump_slot` call must follow as effects of their own, after the
//! snapshot's ([`Store::dump_key`] streams a written key's current state, in parts if it is
//! large; [`Store::effect_of`] gives it as one effect): a value
//! streamed in parts carries the version it had when its stream began, and the newer writes
//! then supersede it. The source then [`Store::delete_slot`]s its copy.
//!
//! With tombstones on ([`Store::set_tombstone_ms`]), the stream ends with the slot's tombstones
//! as `Delete`s at their versions: the target then keeps them too, so that a late write older
//! than a delete (from a replication stream racing the migration) does not bring the key back
//! there, and a copy that still holds a key deleted since (a returning replica, an earlier
//! attempt's leftovers) loses it.

use crate::StoreError;
use crate::effect::{Applied, Change, Effect};
use crate::entry::OwnedValue;
use crate::memory::write_cost;
use crate::shard::{DumpCursor, tombstone_cost};
use crate::store::Store;
use std::sync::atomic::Ordering::Relaxed;

/// What a value costs the budget beyond its key's entry.
fn value_cost(value: &OwnedValue) -> usize {
    value.as_value().mem()
}

impl Store {
    /// How many keys `slot` holds, expired ones not yet reclaimed included (as Redis counts
    /// them). O(1).
    ///
    /// # Panics
    /// When `slot` is not below 16384.
    #[must_use]
    pub fn count_in_slot(&self, slot: u16) -> usize {
        assert_slot(slot);
        self.lock_shard(self.shard_of_slot(slot))
            .count_in_slot(slot)
    }

    /// Up to `count` keys of `slot` (`CLUSTER GETKEYSINSLOT`), in no particular order.
    ///
    /// # Panics
    /// When `slot` is not below 16384.
    #[must_use]
    pub fn keys_in_slot(&self, slot: u16, count: usize) -> Vec<Box<[u8]>> {
        assert_slot(slot);
        self.lock_shard(self.shard_of_slot(slot))
            .keys_in_slot(slot, count)
    }

    /// Deletes up to `max` keys of `slot`, then its tombstones, and returns how many of both it
    /// deleted: call again until it returns 0. The lock is held for the removals only; the memory is freed after it is
    /// released, so that a large value never stalls the shard while it is freed.
    ///
    /// # Panics
    /// When `slot` is not below 16384.
    pub fn delete_slot(&self, slot: u16, max: usize) -> usize {
        assert_slot(slot);
        let mut dropped = Vec::new();
        let removed =
            self.lock_shard(self.shard_of_slot(slot))
                .delete_in_slot(slot, max, &mut dropped);
        for (entry, _) in &dropped {
            self.removed_keys().note(entry.key());
        }
        drop(dropped);
        removed
    }

    /// Streams `slot` as effects: about `max_bytes` of encoded effects per call (at least one
    /// effect), from `cursor` (`DumpCursor::default()` to start). Returns the effects and where
    /// to resume, or `None` once every key is out.
    ///
    /// Each key is a `Put` of its whole value, expiry and version; a hash larger than what is
    /// left of `max_bytes` goes as a `Put` of its first fields and `Append`s of the rest, over as
    /// many calls as it takes, so that no call holds the shard's lock for much more than it takes
    /// to copy `max_bytes` (strings always go whole). Keys present throughout the stream are
    /// all sent (some may be sent twice); keys written meanwhile may or may not be, and must
    /// follow as effects (see the module docs). Expired keys are left out.
    ///
    /// Once the keys are out, the slot's tombstones follow (with tombstones on), each as a
    /// `Delete` at its version, in the same bounded calls; dead ones are left out. They are not
    /// keys: [`Store::count_in_slot`] and [`Store::keys_in_slot`] never count them.
    ///
    /// # Panics
    /// When `slot` is not below 16384.
    pub fn dump_slot(
        &self,
        slot: u16,
        cursor: DumpCursor,
        max_bytes: usize,
        now: u64,
    ) -> (Vec<Effect>, Option<DumpCursor>) {
        assert_slot(slot);
        let mut out = Vec::new();
        let next = self
            .lock_shard(self.shard_of_slot(slot))
            .dump_slot(slot, cursor, max_bytes, now, &mut out);
        (out, next)
    }

    /// Applies an effect from another node, by version: a `Put` or `Delete` applies only if it
    /// is newer than the entry or the tombstone here, an `Append` only to the entry of its own
    /// version (see [`crate::effect`]), so that duplicates and late copies do nothing. A write
    /// first makes room in the memory budget, as every write does ([`Store::admit`]). A `Delete`
    /// makes room for its tombstone by dropping older tombstones only, never by evicting an
    /// entry, and is never refused: without room, the tombstone is what goes. Whatever it does, the shard's clock observes the effect's version, so that
    /// later local writes (after a promotion) order after it. Returns whether the effect changed
    /// anything (a `Delete` that only left or renewed a tombstone did).
    ///
    /// # Errors
    /// [`StoreError::OutOfMemory`] when the budget has no room for it and the policy may not
    /// evict (as a write gets `-OOM`).
    ///
    /// The caller must hold no shard lock.
    ///
    /// # Panics
    /// When the key is longer than [`crate::MAX_KEY_LEN`] (decoded effects never are).
    pub fn restore(&self, effect: Effect, now: u64) -> Result<bool, StoreError> {
        Ok(self.restore_checked(effect, now)? == Applied::Changed)
    }

    /// [`Store::restore`], saying also when a [`Change::Delta`] was stale: it found the key
    /// elsewhere than at its base, changed nothing, and its sender must send the key's whole
    /// state instead.
    ///
    /// # Errors
    /// As [`Store::restore`].
    ///
    /// # Panics
    /// As [`Store::restore`].
    pub fn restore_checked(&self, effect: Effect, now: u64) -> Result<Applied, StoreError> {
        let Effect {
            key,
            version,
            change,
        } = effect;
        let key = self.key(&key);
        let room = match &change {
            Change::Delete if self.tombstones_on() => {
                self.admit_tombstone(&key, tombstone_cost(key.bytes.len()))
            }
            Change::Delete => None,
            Change::Put { value, .. } => {
                Some(self.admit(&key, write_cost(key.bytes.len()) + value_cost(value))?)
            }
            Change::Append(value) => Some(self.admit(&key, value_cost(value))?),
            Change::Delta(delta) => Some(self.admit(&key, value_cost(&delta.put))?),
        };
        let applied = self.lock(&key).apply(&key, version, change, now);
        drop(room);
        self.settle();
        Ok(applied)
    }

    /// Streams one key's current state, as [`Store::dump_slot`] streams a slot: a `Put` of its
    /// value (a large hash in parts, over as many calls as it takes), or, when the key is absent,
    /// a `Delete` at its tombstone's version, or without one at a new version. For the writes made to a slot while it is streamed: send each
    /// written key this way after the snapshot (and again if it is written while it goes), and
    /// no call copies more than about `max_bytes` under the lock, however large the value.
    /// Start with `DumpCursor::default()`; resume with a cursor from this key's stream only.
    pub fn dump_key(
        &self,
        key: &[u8],
        cursor: DumpCursor,
        max_bytes: usize,
        now: u64,
    ) -> (Vec<Effect>, Option<DumpCursor>) {
        let key = self.key(key);
        let mut out = Vec::new();
        let next = self
            .lock(&key)
            .dump_key(&key, cursor, max_bytes, now, &mut out);
        (out, next)
    }

    /// `key`'s current state as an effect, to send after a write during a migration (or to a
    /// replica): a `Put` of its whole value, or, when it is absent, a `Delete` at its tombstone's
    /// version (so that a re-send or a read repair compares with other copies by the deletion's
    /// own version), or, without one, at a new version.
    /// It copies the whole value under the shard's lock: for a value that may be large, use
    /// [`Store::dump_key`].
    pub fn effect_of(&self, key: &[u8], now: u64) -> Effect {
        let key = self.key(key);
        self.lock(&key).effect_of(&key, now)
    }

    /// What replication sends after a write of `key`: the write's [`Change::Delta`] when one
    /// was recorded (see [`Store::set_record_deltas`]) and it is still the key's newest change,
    /// else [`Store::effect_of`]. A delta is taken once: a second call for the same write gets
    /// the whole state.
    pub fn replication_effect(&self, key: &[u8], now: u64) -> Effect {
        let key = self.key(key);
        self.lock(&key).replication_effect(&key, now)
    }

    /// Turns on or off recording, for each write to a large hash, set or sorted set, the
    /// elements it touched, which [`Store::replication_effect`] then sends as a delta. Off by
    /// default: with nothing to replicate to, no write pays for it.
    pub fn set_record_deltas(&self, on: bool) {
        self.record_deltas.store(on, Relaxed);
        for index in 0..self.shard_count() {
            self.lock_shard(index).set_record_deltas(on);
        }
    }

    /// Whether writes record deltas: see [`Store::set_record_deltas`].
    #[must_use]
    pub fn records_deltas(&self) -> bool {
        self.record_deltas.load(Relaxed)
    }
}

fn assert_slot(slot: u16) {
    assert!(
        usize::from(slot) < dcache_placement::SLOTS,
        "slot {slot} is not below {}",
        dcache_placement::SLOTS
    );
}
