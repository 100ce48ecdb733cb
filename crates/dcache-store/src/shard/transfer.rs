//! One slot of a shard, as a whole: counting, listing and deleting its keys, streaming it as
//! effects, and applying effects (with the tombstones they meet and leave). The store's side is
//! in `crate::transfer`.

use super::Shard;
use crate::clock::Version;
use crate::effect::{Applied, Change, Delta, Effect, form_code};
use crate::entry::{Aggregate, Entry, OwnedValue, Value};
use crate::hash::HashValue;
use crate::list::ListValue;
use crate::set::{SetEncoding, SetValue};
use crate::store::{Key, hash_key};
use crate::zset::ZSetValue;

/// Where [`crate::Store::dump_slot`] resumes. Start with `DumpCursor::default()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpCursor {
    /// Positions at or above this in the slot's list have been visited (the list is walked from
    /// its end: see `slot_index`). `None` before the first call.
    below: Option<usize>,
    /// The same for the slot's tombstones, walked once its keys are out.
    deletes: Option<usize>,
    /// An aggregate too large for one call, being streamed a chunk at a time.
    value: Option<PartialValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PartialValue {
    key: Box<[u8]>,
    /// The version the value had when its stream began: every chunk carries it.
    version: Version,
    /// A hash's rebuild count when `at` was read; a rebuild moves fields between buckets, so
    /// the stream then starts over from bucket 0 (the target's hash takes the duplicates as
    /// no-ops).
    rebuilds: u32,
    /// Where the next chunk starts: a bucket of a hash or a set, an index of a list, a rank of a
    /// sorted set (only large forms are streamed in parts).
    at: usize,
}

/// What [`Shard::dump_slot`] finds next among a slot's tombstones.
enum NextTomb {
    Delete(Effect),
    /// One past its life, left out.
    Dead,
    /// Every tombstone is out.
    Done,
}

/// Buckets a dump call may scan for every byte of budget it has: empty buckets cost a little
/// time but no bytes, and a hash emptied by deletions keeps all its buckets.
const SCAN_PER_BYTE: usize = 1;
/// What a key visited without emitting anything (expired) counts against the budget.
const VISIT_COST: usize = 16;

/// Elements of `a` from position `from` on (see `PartialValue::at`), until about `budget`
/// bytes or `scan` positions: the chunk, the position after the last one read, and how many
/// positions there are.
fn chunk(a: Value<'_>, from: usize, budget: usize, scan: usize) -> (OwnedValue, usize, usize) {
    let mut bytes = 0;
    let mut at = from;
    let mut took = 0usize;
    // Reads positions until the budget or the scan limit (at least one element, so that every
    // call makes progress).
    let mut more = |size: Option<usize>, at: &mut usize, end: usize| -> bool {
        if *at >= end || (*at >= from.saturating_add(scan.max(1))) || (bytes >= budget && took > 0)
        {
            return false;
        }
        if let Some(size) = size {
            bytes += size;
            took += 1;
        }
        *at += 1;
        true
    };
    match a {
        // Strings always go whole.
        Value::Str(_) => (OwnedValue::Str(Box::default()), from, from),
        // A compact value goes whole, in its form: it is small (within `MAX_PACKED_LEN`), and
        // its parts would have to come in its order to keep it. (A hash stream that finds one
        // where a table was, the key deleted and written again since, sends it whole too:
        // fields taken twice are harmless.)
        a if is_compact(a) => (a.into_owned(), from + 1, from + 1),
        // Parts of a large value are built in the large form, which the receiver keeps, so that
        // the first part (a `Put`) gives the key its sender's form, and the rest add to it.
        Value::Hash(h) => {
            let (end, mut out) = (h.buckets(), HashValue::table());
            while more(
                h.bucket(at).map(|(f, v)| f.len() + v.len() + 4),
                &mut at,
                end,
            ) {
                if let Some((f, v)) = h.bucket(at - 1) {
                    out.push_new(f, v);
                }
            }
            (OwnedValue::Hash(Box::new(out)), at, end)
        }
        Value::Set(s) => {
            let (end, mut out) = (s.buckets(), SetValue::of_encoding(SetEncoding::Hashtable));
            while more(s.bucket(at).map(|m| m.len() + 2), &mut at, end) {
                if let Some(m) = s.bucket(at - 1) {
                    out.push_new(&m);
                }
            }
            (OwnedValue::Set(Box::new(out)), at, end)
        }
        Value::List(l) => {
            let (end, mut out) = (l.len(), ListValue::ring());
            while more(l.get(at).map(|e| e.len() + 2), &mut at, end) {
                out.push_in_form(l.get(at - 1).expect("an index below the length"));
            }
            (OwnedValue::List(Box::new(out)), at, end)
        }
        Value::ZSet(z) => {
            let (end, mut out) = (z.len(), ZSetValue::large());
            // O(log n) to start at `from`, however far into the set it is.
            let mut members = z.range_by_rank(from, end);
            let mut next = members.next();
            while more(next.map(|(m, _)| m.len() + 10), &mut at, end) {
                let (m, score) = next.expect("a member below the length");
                out.insert_in_form(m, score);
                next = members.next();
            }
            (OwnedValue::ZSet(Box::new(out)), at, end)
        }
    }
}

/// Sets a delta's `put` elements in `current` and removes its `removed` ones, in `current`'s
/// own form with no limit but a compact form's safety cap (as an `Append`'s): the form is the
/// sender's, which the caller checked is the delta's. A delta of another type does nothing.
pub(super) fn apply_elements(delta: &Delta, current: &mut Aggregate) {
    match (&delta.put, current) {
        (OwnedValue::Hash(put), Aggregate::Hash(h)) => {
            put.iter().for_each(|(f, v)| {
                h.insert_in_form(f, v);
            });
            delta.removed.iter().for_each(|f| {
                h.remove(f);
            });
        }
        (OwnedValue::Set(put), Aggregate::Set(s)) => {
            put.iter().for_each(|m| {
                s.insert_in_form(&m);
            });
            delta.removed.iter().for_each(|m| {
                s.remove(m);
            });
        }
        (OwnedValue::ZSet(put), Aggregate::ZSet(z)) => {
            put.iter().for_each(|(m, score)| {
                z.insert_in_form(m, score);
            });
            delta.removed.iter().for_each(|m| {
                z.remove(m);
            });
        }
        _ => {}
    }
}

/// Whether an aggregate is in a compact form (a string counts as one: it goes whole).
fn is_compact(a: Value<'_>) -> bool {
    match a {
        Value::Str(_) => true,
        Value::Hash(h) => h.is_listpack(),
        Value::List(l) => l.encoding() == "listpack",
        Value::Set(s) => s.encoding() != SetEncoding::Hashtable,
        Value::ZSet(z) => z.is_listpack(),
    }
}

impl Shard {
    /// Keys of `slot` here, those expired but not yet reclaimed included (as Redis counts them).
    pub(crate) fn count_in_slot(&mut self, slot: u16) -> usize {
        self.index_slots();
        self.by_slot.len(slot)
    }

    /// Up to `count` keys of `slot`.
    pub(crate) fn keys_in_slot(&mut self, slot: u16, count: usize) -> Vec<Box<[u8]>> {
        self.index_slots();
        self.by_slot
            .cells(slot)
            .iter()
            .rev()
            .take(count)
            .map(|&cell| self.entry_at(cell).key().into())
            .collect()
    }

    /// Removes up to `max` keys and tombstones of `slot`, keys first, handing what the keys
    /// held to `dropped` so that the caller frees it after unlocking. Returns how many it
    /// removed. (Dropping a tombstone is no delete: it leaves none.)
    pub(crate) fn delete_in_slot(
        &mut self,
        slot: u16,
        max: usize,
        dropped: &mut Vec<(Entry, Option<Aggregate>)>,
    ) -> usize {
        self.index_slots();
        let mut removed = 0;
        while removed < max {
            if let Some(&cell) = self.by_slot.cells(slot).last() {
                dropped.push(self.remove_cell(cell));
            } else if let Some(&at) = self.tombs.in_slot(slot).last() {
                self.tombs.drop_at(at);
            } else {
                break;
            }
            removed += 1;
        }
        if removed > 0 {
            self.publish();
        }
        removed
    }

    /// Streams `slot` as effects into `out`, about `max_bytes` of them, from `cursor`. Returns
    /// where to resume, or `None` when the slot is done. See [`crate::Store::dump_slot`].
    pub(crate) fn dump_slot(
        &mut self,
        slot: u16,
        mut cursor: DumpCursor,
        max_bytes: usize,
        now: u64,
        out: &mut Vec<Effect>,
    ) -> Option<DumpCursor> {
        self.index_slots();
        let mut budget = max_bytes.max(1);
        let scan = max_bytes.saturating_mul(SCAN_PER_BYTE).max(4096);
        while budget > 0 {
            if let Some(mut partial) = cursor.value.take() {
                if let Some(a) = self.partial_aggregate(slot, &partial) {
                    if let Value::Hash(h) = a
                        && h.rebuilds() != partial.rebuilds
                    {
                        partial.at = 0;
                    }
                    let (part, next, end) = chunk(a, partial.at, budget, scan);
                    if part.as_value().elements() > 0 {
                        let effect = Effect {
                            key: partial.key.clone(),
                            version: partial.version,
                            change: Change::Append(part),
                        };
                        budget = budget.saturating_sub(effect.encoded_len());
                        out.push(effect);
                    }
                    if next < end {
                        partial.at = next;
                        if let Value::Hash(h) = a {
                            partial.rebuilds = h.rebuilds();
                        }
                        cursor.value = Some(partial);
                        return Some(cursor);
                    }
                }
                continue;
            }
            let cells = self.by_slot.cells(slot);
            let below = cursor.below.unwrap_or(usize::MAX).min(cells.len());
            if below == 0 {
                cursor.below = Some(0);
                match self.dump_tombstone(slot, &mut cursor, now) {
                    NextTomb::Delete(effect) => {
                        budget = budget.saturating_sub(effect.encoded_len());
                        out.push(effect);
                    }
                    NextTomb::Dead => budget = budget.saturating_sub(VISIT_COST),
                    NextTomb::Done => return None,
                }
                continue;
            }
            cursor.below = Some(below - 1);
            let cell = cells[below - 1];
            let entry = self.entry_at(cell);
            if entry.is_expired(now) {
                budget = budget.saturating_sub(VISIT_COST);
                continue;
            }
            let effect = self.put_of(cell, budget, scan, &mut cursor);
            budget = budget.saturating_sub(effect.encoded_len());
            out.push(effect);
        }
        Some(cursor)
    }

    /// The next of `slot`'s tombstones from `cursor`, as a `Delete` at its version.
    fn dump_tombstone(&self, slot: u16, cursor: &mut DumpCursor, now: u64) -> NextTomb {
        let tombs = self.tombs.in_slot(slot);
        let below = cursor.deletes.unwrap_or(usize::MAX).min(tombs.len());
        if below == 0 {
            return NextTomb::Done;
        }
        cursor.deletes = Some(below - 1);
        match self.tombs.at(tombs[below - 1], now, self.tomb_life) {
            Some((key, version)) => NextTomb::Delete(Effect {
                key: key.into(),
                version,
                change: Change::Delete,
            }),
            None => NextTomb::Dead,
        }
    }

    /// The live entry in `cell` as a `Put`: whole, or, for an aggregate larger than `budget`,
    /// its first elements, with `cursor` set to stream the rest.
    fn put_of(&self, cell: u32, budget: usize, scan: usize, cursor: &mut DumpCursor) -> Effect {
        let entry = self.entry_at(cell);
        let expire_at = Some(entry.expire_raw()).filter(|&at| at != 0);
        let value = match self.entry_ref(cell).value() {
            a @ Value::Str(_) => a.into_owned(),
            a if a.mem() <= budget => a.into_owned(),
            a => {
                let (part, next, end) = chunk(a, 0, budget, scan);
                if next < end {
                    cursor.value = Some(PartialValue {
                        key: entry.key().into(),
                        version: entry.version,
                        rebuilds: match a {
                            Value::Hash(h) => h.rebuilds(),
                            _ => 0,
                        },
                        at: next,
                    });
                }
                part
            }
        };
        Effect {
            key: entry.key().into(),
            version: entry.version,
            change: Change::Put { value, expire_at },
        }
    }

    /// Streams one key's whole state: see [`crate::Store::dump_key`].
    pub(crate) fn dump_key(
        &mut self,
        key: &Key<'_>,
        cursor: DumpCursor,
        max_bytes: usize,
        now: u64,
        out: &mut Vec<Effect>,
    ) -> Option<DumpCursor> {
        if cursor.value.is_some() {
            return self.dump_slot(key.slot, cursor, max_bytes, now, out);
        }
        let Some(cell) = self.lookup_cell(key, now, super::Lookup::Peek) else {
            out.push(self.delete_of(key, now));
            return None;
        };
        // No list to walk: only the key's own parts, if it has more than one.
        let mut cursor = DumpCursor {
            below: Some(0),
            deletes: Some(0),
            value: None,
        };
        let budget = max_bytes.max(1);
        let effect = self.put_of(cell, budget, budget.max(4096), &mut cursor);
        let left = budget.saturating_sub(effect.encoded_len());
        out.push(effect);
        match (&cursor.value, left) {
            (None, _) => None,
            (Some(_), 0) => Some(cursor),
            (Some(_), left) => self.dump_slot(key.slot, cursor, left, now, out),
        }
    }

    /// The aggregate whose stream `partial` continues, if it is still live in `slot` here.
    ///
    /// A hash is streamed on even when its version has moved on: its chunks are fields, which
    /// the target takes at the stream's version, and the writes since reach the target as
    /// effects of their own, with newer versions, after the chunks. Other types stop when the
    /// value changed (those writes supersede the partial copy there the same way): a list's
    /// positions shift under pushes and pops, so its chunks are only right for the version they
    /// began with.
    fn partial_aggregate(&self, slot: u16, partial: &PartialValue) -> Option<Value<'_>> {
        let key = Key {
            bytes: &partial.key,
            hash: hash_key(self.hash_seed, &partial.key),
            slot,
        };
        let cell = self.find(&key)?;
        let entry = self.entry_ref(cell);
        match entry.value() {
            Value::Str(_) => None,
            a @ Value::Hash(_) => Some(a),
            a => (entry.version() == partial.version).then_some(a),
        }
    }

    /// Applies `change` at `version` to `key`, by version (see [`crate::effect`]): whether it
    /// changed anything, or (a delta only) found the key elsewhere than at its base.
    pub(crate) fn apply(
        &mut self,
        key: &Key<'_>,
        version: Version,
        change: Change,
        now: u64,
    ) -> Applied {
        // Later local writes (after a slot moves here, or a promotion) order after this one,
        // whether it applies or not.
        self.clock.observe(version);
        let found = self.find(key).filter(|&cell| {
            if self.entry_at(cell).is_expired(now) {
                self.discard_cell(cell);
                self.stats.expired += 1;
                false
            } else {
                true
            }
        });
        // An entry and a tombstone never coexist: inserting an entry drops the key's tombstone.
        let current = match found {
            Some(cell) => Some(self.entry_at(cell).version),
            None => self.tomb_of(key, now),
        };
        let changed = match change {
            Change::Delta(delta) => {
                return self.apply_delta(key, version, *delta, found, current, now);
            }
            Change::Delete => {
                if current >= Some(version) {
                    return Applied::Unchanged;
                }
                if let Some(cell) = found {
                    self.discard_cell(cell);
                }
                self.record_delete(key, version, now) || found.is_some()
            }
            Change::Put { value, expire_at } => {
                // A list streamed in parts is rebuilt from its first part when that comes again
                // (a stream started over), rather than appended to twice: a Put of a list at the
                // key's own version replaces it. Any other duplicate does nothing.
                let restart = matches!(value, OwnedValue::List(_)) && current == Some(version);
                if current > Some(version) || (current == Some(version) && !restart) {
                    return Applied::Unchanged;
                }
                if let Some(cell) = found {
                    self.discard_cell(cell);
                }
                let expire_at = expire_at.unwrap_or(0);
                if expire_at != 0 && expire_at <= now {
                    // Already expired: the key is gone, as on the node it came from. Its newest
                    // version is known to be gone: with tombstones on, older writes stay out, as
                    // if it had been deleted (so that effects converge in any order).
                    self.record_delete(key, version, now);
                    return Applied::Changed;
                }
                let touched = (now / 1000) as u32;
                let cell = match value {
                    OwnedValue::Str(s) => self.insert_entry(
                        key,
                        Entry::string(key.bytes, &s, expire_at, touched, version),
                        None,
                    ),
                    aggregate => {
                        let aggregate = Aggregate::owned(aggregate).expect("not a string");
                        let (entry, aggregate) =
                            super::place(key.bytes, aggregate, expire_at, touched, version);
                        self.insert_entry(key, entry, aggregate)
                    }
                };
                self.enforce(Some(cell));
                true
            }
            Change::Append(value) => {
                let Some(cell) = found.filter(|_| current == Some(version)) else {
                    return Applied::Unchanged;
                };
                let before = self.mem_at(cell);
                // Only an aggregate's parts travel apart: a string always goes whole (its parts
                // would need offsets to be applied twice harmlessly).
                // Elements go into the key's own form (the one its `Put` gave it, the sender's),
                // with no limit but a compact form's safety cap: the limits here are not the
                // sender's, and the sender's value was within its own.
                let changed = self.with_aggregate(cell, |current| match (value, current) {
                    (OwnedValue::Hash(more), Aggregate::Hash(h)) => {
                        let mut changed = false;
                        for (f, v) in more.iter() {
                            if h.get(f) != Some(v) {
                                h.insert_in_form(f, v);
                                changed = true;
                            }
                        }
                        changed
                    }
                    (OwnedValue::Set(more), Aggregate::Set(s)) => {
                        let mut changed = false;
                        for m in more.iter() {
                            changed |= s.insert_in_form(&m);
                        }
                        changed
                    }
                    (OwnedValue::ZSet(more), Aggregate::ZSet(z)) => {
                        let mut changed = false;
                        for (m, score) in more.iter() {
                            if z.score(m) != Some(score) {
                                z.insert_in_form(m, score);
                                changed = true;
                            }
                        }
                        changed
                    }
                    // A list's parts come in order after its Put (which a restarted stream
                    // sends again, resetting the list).
                    (OwnedValue::List(more), Aggregate::List(l)) => {
                        more.iter().for_each(|e| l.push_in_form(e));
                        !more.is_empty()
                    }
                    _ => false,
                });
                let Some(changed) = changed else {
                    return Applied::Unchanged;
                };
                self.used = self.used + self.mem_at(cell) - before;
                self.enforce(Some(cell));
                changed
            }
        };
        if changed {
            Applied::Changed
        } else {
            Applied::Unchanged
        }
    }

    /// A [`Change::Delta`]'s arm of [`Shard::apply`]: see [`crate::effect`]. `found` is the
    /// key's live cell, `current` its version or its tombstone's.
    fn apply_delta(
        &mut self,
        key: &Key<'_>,
        version: Version,
        delta: Delta,
        found: Option<u32>,
        current: Option<Version>,
        now: u64,
    ) -> Applied {
        if current >= Some(version) {
            return Applied::Unchanged;
        }
        let Some(cell) = found.filter(|_| current == Some(delta.base)) else {
            return Applied::Stale;
        };
        let value = self.entry_ref(cell).value();
        let at_base = value.kind() == delta.put.as_value().kind()
            && value.elements() as u64 == delta.base_len
            && form_code(value) == Some(delta.form);
        if !at_base {
            return Applied::Stale;
        }
        let before = self.mem_at(cell);
        self.with_aggregate(cell, |current| apply_elements(&delta, current));
        self.used = self.used + self.mem_at(cell) - before;
        self.entry_at_mut(cell).version = version;
        let expire_at = delta.expire_at.unwrap_or(0);
        if (expire_at != 0 && expire_at <= now) || self.holds_empty_aggregate(cell) {
            // Gone, as on the writer (an emptied value is deleted there at the write's version):
            // a tombstone at the version keeps older effects out.
            self.discard_cell(cell);
            self.record_delete(key, version, now);
            return Applied::Changed;
        }
        self.set_expire_cell(cell, expire_at);
        // A write reached the key, as a whole-state copy's replacement would say: without this a
        // key kept up to date by deltas alone looks cold to the copy's eviction, goes first, and
        // turns every later delta into a stale one.
        self.policy.access(cell);
        self.entry_at_mut(cell).touched = (now / 1000) as u32;
        self.enforce(Some(cell));
        Applied::Changed
    }
    /// The key's whole state as an effect: a `Put` of its value, or, when it is absent, a
    /// `Delete` at its tombstone's version, or without one at a new version (so that it
    /// supersedes whatever copy the target holds).
    pub(crate) fn effect_of(&mut self, key: &Key<'_>, now: u64) -> Effect {
        match self.get(key, now, super::Lookup::Peek) {
            Some(entry) => Effect {
                key: key.bytes.into(),
                version: entry.version(),
                change: Change::Put {
                    value: entry.value().into_owned(),
                    expire_at: entry.expire_at(),
                },
            },
            None => self.delete_of(key, now),
        }
    }

    /// An absent key's effect: a `Delete` at its tombstone's version, else at a new one.
    fn delete_of(&mut self, key: &Key<'_>, now: u64) -> Effect {
        let version = match self.tomb_of(key, now) {
            Some(version) => version,
            None => self.clock.tick(now),
        };
        Effect {
            key: key.bytes.into(),
            version,
            change: Change::Delete,
        }
    }
}
