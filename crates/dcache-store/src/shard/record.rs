//! What a write changed in a large aggregate, for replication to send as a delta (see
//! [`crate::effect`]'s `Delta`).
//!
//! [`super::Modify`]'s typed accessors hand out [`HashMut`], [`SetMut`] and [`ZSetMut`]: they
//! read through `Deref` but have no `DerefMut`, so every change goes through a method here that
//! notes the name it touched. A command that changes a value some other way does not compile.
//! With recording off the cost is one match per change.
//!
//! When the handle is dropped, a delta is built from the names noted, if the key was not
//! emptied, kept its large form and the delta is under half the value's memory. It waits in the
//! shard's outbox (a few entries, oldest out) for [`crate::Store::replication_effect`]; anything
//! else goes whole, as [`crate::Store::effect_of`] reads it.

use std::collections::VecDeque;
use std::ops::Deref;

use crate::clock::Version;
use crate::effect::{Change, Delta, Effect, form_code};
use crate::entry::{Aggregate, OwnedValue, Value};
use crate::hash::{HashLimits, HashValue};
use crate::set::{SetEncoding, SetLimits, SetValue};
use crate::zset::{ZSetLimits, ZSetValue};

/// Deltas waiting to be taken, per shard.
const OUTBOX: usize = 32;

/// What a [`super::Modify`] knows of its write, for replication.
#[derive(Debug)]
pub(crate) enum Recorder {
    /// No one wants deltas.
    Off,
    /// Deltas are wanted; nothing was changed through a typed accessor yet.
    Pending,
    /// A large aggregate, with the names touched so far.
    Names(Box<Names>),
    /// The write goes whole: a created key, a compact value, a list, a string, a replacement.
    Whole,
}

#[derive(Debug)]
pub(crate) struct Names {
    base: Version,
    base_len: u64,
    form: u8,
    touched: hashbrown::HashSet<Box<[u8]>>,
    /// The value before the write, to check the delta against (debug builds only).
    #[cfg(debug_assertions)]
    before: Aggregate,
}

impl Recorder {
    pub(crate) fn new(on: bool) -> Self {
        if on { Recorder::Pending } else { Recorder::Off }
    }

    /// Called by a typed accessor before it hands out `value` (at `version`, unchanged yet).
    pub(crate) fn begin(&mut self, version: Version, value: &Aggregate) {
        if !matches!(self, Recorder::Pending) {
            return;
        }
        let form = form_code(value.as_value());
        let large = match value {
            Aggregate::Hash(h) => !h.is_listpack(),
            Aggregate::Set(s) => s.encoding() == SetEncoding::Hashtable,
            Aggregate::ZSet(z) => !z.is_listpack(),
            Aggregate::List(_) => false,
        };
        // An empty value was just created by the write: it goes whole.
        *self = match form {
            Some(form) if large && value.len() > 0 => Recorder::Names(Box::new(Names {
                base: version,
                base_len: value.len() as u64,
                form,
                touched: hashbrown::HashSet::new(),
                #[cfg(debug_assertions)]
                before: value.clone(),
            })),
            _ => Recorder::Whole,
        };
    }

    /// The write goes whole, whatever it touched.
    pub(crate) fn whole(&mut self) {
        if !matches!(self, Recorder::Off) {
            *self = Recorder::Whole;
        }
    }

    fn note(&mut self, name: &[u8]) {
        if let Recorder::Names(names) = self {
            // Past half the elements, the whole value is about as cheap, and the set of names
            // stops growing with the write.
            if names.touched.len() as u64 > names.base_len / 2 {
                *self = Recorder::Whole;
            } else if !names.touched.contains(name) {
                names.touched.insert(name.into());
            }
        }
    }
}

/// Builds the delta of a write that left `value` at `version` with expiry `expire_at`, from what
/// `names` noted; `None` when it should go whole (the form changed, or the delta is not
/// smaller than half the value).
pub(crate) fn build(
    key: &[u8],
    names: &Names,
    version: Version,
    expire_at: Option<u64>,
    value: Value<'_>,
) -> Option<Effect> {
    if form_code(value) != Some(names.form) {
        return None;
    }
    let mut removed = Vec::new();
    let put = match value {
        Value::Hash(h) => {
            let mut put = HashValue::table();
            for name in &names.touched {
                match h.get(name) {
                    Some(v) => {
                        put.push_new(name, v);
                    }
                    None => removed.push(name.clone()),
                }
            }
            OwnedValue::Hash(Box::new(put))
        }
        Value::Set(s) => {
            let mut put = SetValue::of_encoding(SetEncoding::Hashtable);
            for name in &names.touched {
                if s.contains(name) {
                    put.push_new(name);
                } else {
                    removed.push(name.clone());
                }
            }
            OwnedValue::Set(Box::new(put))
        }
        Value::ZSet(z) => {
            let mut put = ZSetValue::large();
            for name in &names.touched {
                match z.score(name) {
                    Some(score) => {
                        put.insert_in_form(name, score);
                    }
                    None => removed.push(name.clone()),
                }
            }
            OwnedValue::ZSet(Box::new(put))
        }
        Value::Str(_) | Value::List(_) => return None,
    };
    let effect = Effect {
        key: key.into(),
        version,
        change: Change::Delta(Box::new(Delta {
            base: names.base,
            base_len: names.base_len,
            expire_at,
            form: names.form,
            put,
            removed,
        })),
    };
    if effect.encoded_len() >= value.mem() / 2 {
        return None;
    }
    #[cfg(debug_assertions)]
    {
        // The receiver's code applied to the value before the write must give the value after
        // it: every debug test that writes with recording on checks the recorder this way.
        let mut copy = names.before.clone();
        let Change::Delta(delta) = &effect.change else {
            unreachable!()
        };
        super::transfer::apply_elements(delta, &mut copy);
        assert!(
            copy.as_value() == value,
            "a delta that does not rebuild its write's value: {delta:?}"
        );
    }
    Some(effect)
}

/// A shard's deltas waiting for replication to take them, at most [`OUTBOX`].
#[derive(Debug, Default)]
pub(crate) struct Outbox(VecDeque<Effect>);

impl Outbox {
    /// Keeps `delta` for its key, unless the key already has one waiting: both writes then go
    /// whole, so that two deltas of one key never race to a copy out of order.
    pub(crate) fn put(&mut self, delta: Option<Effect>, key: &[u8]) {
        let before = self.0.len();
        self.0.retain(|e| *e.key != *key);
        if self.0.len() != before {
            return;
        }
        if let Some(delta) = delta {
            if self.0.len() == OUTBOX {
                self.0.pop_front();
            }
            self.0.push_back(delta);
        }
    }

    /// Takes `key`'s delta, if one is waiting.
    pub(crate) fn take(&mut self, key: &[u8]) -> Option<Effect> {
        let at = self.0.iter().position(|e| *e.key == *key)?;
        self.0.remove(at)
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

/// A hash being changed: see the module docs.
pub struct HashMut<'m> {
    pub(crate) value: &'m mut HashValue,
    pub(crate) rec: &'m mut Recorder,
}

impl Deref for HashMut<'_> {
    type Target = HashValue;
    fn deref(&self) -> &HashValue {
        self.value
    }
}

impl HashMut<'_> {
    /// [`HashValue::insert`].
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.rec.note(field);
        self.value.insert(field, value)
    }

    /// [`HashValue::insert_with`].
    pub fn insert_with(&mut self, field: &[u8], value: &[u8], limits: HashLimits) -> bool {
        self.rec.note(field);
        self.value.insert_with(field, value, limits)
    }

    /// [`HashValue::remove`].
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let removed = self.value.remove(field);
        if removed {
            self.rec.note(field);
        }
        removed
    }

    /// Replaces the whole value (the write then goes whole).
    pub fn replace(&mut self, value: HashValue) {
        self.rec.whole();
        *self.value = value;
    }
}

/// A set being changed: see the module docs.
pub struct SetMut<'m> {
    pub(crate) value: &'m mut SetValue,
    pub(crate) rec: &'m mut Recorder,
}

impl Deref for SetMut<'_> {
    type Target = SetValue;
    fn deref(&self) -> &SetValue {
        self.value
    }
}

impl SetMut<'_> {
    /// [`SetValue::insert`].
    pub fn insert(&mut self, member: &[u8]) -> bool {
        self.rec.note(member);
        self.value.insert(member)
    }

    /// [`SetValue::insert_with`].
    pub fn insert_with(&mut self, member: &[u8], limits: &SetLimits) -> bool {
        self.rec.note(member);
        self.value.insert_with(member, limits)
    }

    /// [`SetValue::remove`].
    pub fn remove(&mut self, member: &[u8]) -> bool {
        let removed = self.value.remove(member);
        if removed {
            self.rec.note(member);
        }
        removed
    }

    /// [`SetValue::reserve`]: may change the form (the write then goes whole).
    pub fn reserve(&mut self, hint: usize, limits: &SetLimits) {
        self.value.reserve(hint, limits);
    }

    /// Replaces the whole value (the write then goes whole).
    pub fn replace(&mut self, value: SetValue) {
        self.rec.whole();
        *self.value = value;
    }
}

/// A sorted set being changed: see the module docs.
pub struct ZSetMut<'m> {
    pub(crate) value: &'m mut ZSetValue,
    pub(crate) rec: &'m mut Recorder,
}

impl Deref for ZSetMut<'_> {
    type Target = ZSetValue;
    fn deref(&self) -> &ZSetValue {
        self.value
    }
}

impl ZSetMut<'_> {
    /// [`ZSetValue::insert`].
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        self.rec.note(member);
        self.value.insert(member, score)
    }

    /// [`ZSetValue::insert_with`].
    pub fn insert_with(&mut self, member: &[u8], score: f64, limits: ZSetLimits) -> bool {
        self.rec.note(member);
        self.value.insert_with(member, score, limits)
    }

    /// [`ZSetValue::remove`].
    pub fn remove(&mut self, member: &[u8]) -> bool {
        let removed = self.value.remove(member);
        if removed {
            self.rec.note(member);
        }
        removed
    }

    /// [`ZSetValue::compact`]: may change the form (the write then goes whole).
    pub fn compact(&mut self, limits: ZSetLimits) {
        self.value.compact(limits);
    }

    /// Replaces the whole value (the write then goes whole).
    pub fn replace(&mut self, value: ZSetValue) {
        self.rec.whole();
        *self.value = value;
    }
}
