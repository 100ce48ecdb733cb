//! [`Modify`]: a handle that changes one value in place and brings the shard's accounting,
//! version and eviction up to date when it is dropped.

use super::Shard;
use super::record::{self, HashMut, Recorder, SetMut, ZSetMut};
use crate::clock::Version;
use crate::entry::{Aggregate, Entry, EntryRef, Kind, Value};
use crate::list::ListValue;

/// A value being changed in place. See [`Shard::modify`].
///
/// An inline aggregate (see `crate::inline`) is changed as an owned value: the first `*_mut`
/// call copies it out into `scratch`, and dropping the handle writes it back once, inline if it
/// is still compact, else into the side table. A side-table aggregate that became compact moves
/// inline the same way.
pub struct Modify<'a> {
    shard: &'a mut Shard,
    cell: u32,
    before: usize,
    now: u64,
    changed: bool,
    /// The tombstone the key had before this handle created it.
    tomb: Option<Version>,
    /// An inline aggregate taken out to be changed, until the handle is dropped.
    scratch: Option<Aggregate>,
    /// What the write touched, for replication (see `record`).
    rec: Recorder,
}

impl<'a> Modify<'a> {
    pub(super) fn new(
        shard: &'a mut Shard,
        cell: u32,
        before: usize,
        now: u64,
        tomb: Option<Version>,
    ) -> Self {
        let rec = Recorder::new(shard.record_deltas);
        Self {
            shard,
            cell,
            before,
            now,
            changed: false,
            tomb,
            scratch: None,
            rec,
        }
    }

    #[must_use]
    pub fn entry(&self) -> EntryRef<'_> {
        match &self.scratch {
            Some(a) => EntryRef {
                entry: self.shard.entry_at(self.cell),
                aggregate: Some(a),
            },
            None => self.shard.entry_ref(self.cell),
        }
    }

    #[must_use]
    pub fn value(&self) -> Value<'_> {
        self.entry().value()
    }

    /// Replaces the value with a string.
    pub fn set_str(&mut self, value: &[u8]) {
        self.changed = true;
        self.rec.whole();
        self.scratch = None;
        if self.shard.aggregates.remove(&self.cell).is_some() {
            // Its entry still says aggregate: rebuild it as a string.
            let entry = self.shard.entry_at(self.cell);
            let rebuilt = Entry::string(
                entry.key(),
                value,
                entry.expire_raw(),
                entry.touched,
                entry.version,
            );
            self.shard.entry_at_mut(self.cell).replace(rebuilt);
        } else {
            // A string, or an inline aggregate: either way the entry is rebuilt as a string.
            self.shard.entry_at_mut(self.cell).set_str(value);
        }
    }

    /// The string value's bytes, to change in place without copying the rest (SETBIT in a
    /// large bitmap); `None` when the value is not a string. Its length cannot change: use
    /// [`Modify::set_str`] to grow it.
    pub fn str_mut(&mut self) -> Option<&mut [u8]> {
        if self.shard.entry_at(self.cell).is_aggregate() {
            return None;
        }
        self.changed = true;
        self.rec.whole();
        self.shard.entry_at_mut(self.cell).str_value_mut()
    }

    /// The aggregate, owned, to change, when it is of `kind`: the side table's, or an inline
    /// one copied out. Another type is left alone (no copy, no change).
    fn aggregate_mut(&mut self, kind: Kind) -> Option<&mut Aggregate> {
        if self.value().kind() != kind {
            return None;
        }
        if self.scratch.is_none()
            && let Some(body) = self.shard.entry_at(self.cell).inline_body()
        {
            self.scratch = Some(crate::inline::to_owned(body));
        }
        let aggregate = match &mut self.scratch {
            Some(a) => a,
            None => self.shard.aggregates.get_mut(&self.cell)?,
        };
        self.changed = true;
        Some(aggregate)
    }

    /// The aggregate of `kind`, as [`Modify::aggregate_mut`] gives it, with the recorder that
    /// the typed accessors note changes in.
    fn recorded(&mut self, kind: Kind) -> Option<(&mut Aggregate, &mut Recorder)> {
        if self.value().kind() != kind {
            return None;
        }
        if self.scratch.is_none()
            && let Some(body) = self.shard.entry_at(self.cell).inline_body()
        {
            self.scratch = Some(crate::inline::to_owned(body));
        }
        let version = self.shard.entry_at(self.cell).version;
        let aggregate = match &mut self.scratch {
            Some(a) => a,
            None => self.shard.aggregates.get_mut(&self.cell)?,
        };
        self.changed = true;
        self.rec.begin(version, aggregate);
        Some((aggregate, &mut self.rec))
    }

    /// The hash, for changing; `None` when the value is not a hash.
    pub fn hash_mut(&mut self) -> Option<HashMut<'_>> {
        match self.recorded(Kind::Hash)? {
            (Aggregate::Hash(value), rec) => Some(HashMut { value, rec }),
            _ => None,
        }
    }

    /// The list, for changing; `None` when the value is not a list. (A list's write always
    /// replicates whole.)
    pub fn list_mut(&mut self) -> Option<&mut ListValue> {
        if self.value().kind() == Kind::List {
            self.rec.whole();
        }
        match self.aggregate_mut(Kind::List)? {
            Aggregate::List(l) => Some(l),
            _ => None,
        }
    }

    /// The set, for changing; `None` when the value is not a set.
    pub fn set_mut(&mut self) -> Option<SetMut<'_>> {
        match self.recorded(Kind::Set)? {
            (Aggregate::Set(value), rec) => Some(SetMut { value, rec }),
            _ => None,
        }
    }

    /// The sorted set, for changing; `None` when the value is not a sorted set.
    pub fn zset_mut(&mut self) -> Option<ZSetMut<'_>> {
        match self.recorded(Kind::ZSet)? {
            (Aggregate::ZSet(value), rec) => Some(ZSetMut { value, rec }),
            _ => None,
        }
    }

    /// Sets or clears the TTL.
    pub fn set_expire(&mut self, expire_at: Option<u64>) {
        self.changed = true;
        let used_before = self.shard.used;
        self.shard
            .set_expire_cell(self.cell, expire_at.unwrap_or(0));
        // set_expire_cell accounted the TTL's cost itself; keep `before` in step with `used`.
        self.before = self
            .before
            .wrapping_add(self.shard.used.wrapping_sub(used_before));
    }
}

impl Drop for Modify<'_> {
    fn drop(&mut self) {
        let cell = self.cell;
        let shard = &mut *self.shard;
        // The changed aggregate goes back: an inline one from the scratch, a side-table one that
        // is compact now (a list shrunk, a sorted set compacted) moves inline.
        let back = match self.scratch.take() {
            Some(a) => Some(a),
            None if self.changed
                && shard.aggregates.get(&cell).is_some_and(crate::inline::fits) =>
            {
                shard.aggregates.remove(&cell)
            }
            None => None,
        };
        if let Some(aggregate) = back {
            shard.store_aggregate(cell, aggregate);
        }
        let emptied = shard.holds_empty_aggregate(cell);
        if !self.changed {
            // An empty aggregate that was created and then left alone is not kept.
            if emptied {
                let (entry, _) = shard.remove_cell(cell);
                if let Some(version) = self.tomb {
                    let key = shard.key_of(entry.key());
                    shard.record_delete(&key, version, self.now);
                }
            }
            return;
        }
        let version = shard.clock.tick(self.now);
        shard.entry_at_mut(cell).version = version;
        shard.used = shard
            .used
            .wrapping_add(shard.mem_at(cell))
            .wrapping_sub(self.before);
        match std::mem::replace(&mut self.rec, Recorder::Off) {
            Recorder::Off => {}
            rec => {
                let entry = shard.entry_ref(cell);
                let key: Box<[u8]> = entry.entry.key().into();
                let delta = match rec {
                    Recorder::Names(names) if !emptied => {
                        record::build(&key, &names, version, entry.expire_at(), entry.value())
                    }
                    _ => None,
                };
                shard.outbox.put(delta, &key);
            }
        }
        if emptied {
            // The last element removed (HDEL, LPOP, SREM, ZREM): the key is deleted, at the
            // write's version.
            let (entry, _) = shard.remove_cell(cell);
            if shard.tomb_life != 0 {
                let key = shard.key_of(entry.key());
                shard.record_delete(&key, version, self.now);
            }
        } else {
            shard.enforce(Some(cell));
        }
    }
}
