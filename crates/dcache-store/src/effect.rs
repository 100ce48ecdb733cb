//! Effects: one key's state, or a change to it, as it travels between nodes. Slot migration
//! streams a slot as effects ([`crate::Store::dump_slot`]) and the new owner applies them
//! ([`crate::Store::restore`]); replication sends each write's effect the same way.
//!
//! An effect carries the key's version (the writer's hybrid logical clock) and an absolute expiry,
//! never a command: applying it gives the same entry on every node, and applying it is decided
//! by version alone.
//!
//! | change | applies when the key here has | then |
//! |---|---|---|
//! | `Put { value, expire_at }` | no entry, or an entry or tombstone older than the effect | replaces the entry and drops the tombstone (an expiry already past removes the entry instead, and leaves a tombstone†) |
//! | `Append(value)` | an aggregate of the same type at exactly the effect's version | adds the value's elements to it (fields and members by name; a list's at its tail) |
//! | `Delete` | no entry, or an entry or tombstone older than the effect | removes the entry, and leaves a tombstone† at the effect's version |
//! | `Delta { base, base_len, form, put, removed, expire_at }` | a live entry of the same type at exactly `base`, with `base_len` elements in form `form` | sets the `put` elements, removes the `removed` ones, sets the version and expiry (an emptied value or a past expiry removes the key, leaving a tombstone†) |
//!
//! † With tombstones on (see below); without them, the node keeps nothing of a deleted key.
//!
//! So a duplicate or a late copy does nothing. `Append` carries the rest of a value too large for
//! one record: its `Put` and every `Append` share the version the value had when its stream
//! began, and an `Append` whose `Put` did not apply (refused for memory, or superseded by a newer
//! write) does nothing rather than build half a value. Fields and members appended twice are
//! harmless; a list's elements are not, so a `Put` of a list at the key's own version (a stream
//! that started over) replaces the list rather than doing nothing.
//!
//! Every type travels the same way: the effect names the type and carries the elements, so a
//! write of any type replicates as its key's new state (a write to a large hash, set or sorted
//! set as a `Delta` of the elements it touched, when the store records them: see
//! `shard/record.rs`), and a new type needs a new tag and value encoding, not a new protocol.
//!
//! An aggregate travels with its form (its `OBJECT ENCODING`), and is rebuilt in that form
//! whatever the receiver's limits: a copy answers as the original did after a failover or a
//! migration. A hash that grew into its table and shrank stays a table, as in Redis; a compact
//! hash or set built under limits larger than the defaults stays compact and keeps its insertion
//! order; an intset stays sorted. Only the safety cap on a compact form's bytes (see
//! `crate::memory::MAX_PACKED_LEN`), which the sender's value is within, can move a copy into
//! the large form. A value too large for one record is streamed in the large form (a compact
//! one is always small enough to go whole), and an `Append` adds its elements to the key in the
//! key's own form.
//!
//! # Tombstones
//!
//! Tombstones are kept only when the store is told to ([`crate::Store::set_tombstone_ms`]; the
//! server turns them on when the cluster replicates). Without them a `Delete` removes the entry
//! and the node forgets the key, so that a late `Put` older than the delete brings it back. With
//! them, a delete (a local one, or a `Delete` applied here) leaves the key's version of deletion
//! for the tombstone's life: a `Put` not newer does nothing, and the key's effect
//! ([`crate::Store::effect_of`], [`crate::Store::dump_key`]) is a `Delete` at that version, so
//! that a re-send or a read repair compares with what other copies hold. Effects applied in any
//! order, duplicates included, then leave every copy with the same contents: the newest version
//! of each key, whether a value or a deletion (`tests/tombstones.rs` checks this).
//!
//! What a tombstone does not cover: a key that expires or is evicted here leaves none (each node
//! expires and evicts on its own; a copy missing a key is a miss), and a tombstone that died, or
//! that memory pressure dropped (tombstones go before any entry is evicted), is forgotten. In
//! both cases a late `Put` older than the key's last state brings a stale value back. So the
//! life must exceed how late an effect can arrive (replication lag, a re-send, a migration's
//! snapshot); a tombstone dropped early opens that window early, for at most the rest of its
//! life.
//!
//! A `Delta` that finds the key anywhere else than at its base (behind, at another writer's
//! version, absent, holding part of a value) is *stale*: [`crate::Store::restore_checked`] says
//! so, and the sender sends the key's whole state instead. One at or behind the key's version
//! here does nothing, like any duplicate.
//!
//! # Encoding (format 2, and 3 for deltas)
//!
//! Little-endian; `varint` is LEB128 (7 bits a byte, low bits first, at most 10 bytes); `bytes`
//! is a varint length and that many bytes.
//!
//! ```text
//!   effect  := len:u32 body                    len = the body's length, at most 1 GiB
//!   body    := format:u8 tag:u8 version:u64 key:bytes payload
//!                                              format: 3 for a Delta, else 2
//!   tag     := change << 4 | type              change: 0 Delete, 1 Put, 2 Append, 3 Delta
//!                                              type: 0 string, 1 hash, 2 list, 3 set,
//!                                              4 sorted set; Delete has type 0
//!   payload := (Delete)   nothing
//!            | (Put)      expire_at:varint value      0: no expiry
//!            | (Append)   value
//!            | (Delta)    base:u64 base_len:varint expire_at:varint form:u8 value
//!                         count:varint name:bytes × count       (hash, set, sorted set only;
//!                                              the names removed, none of them in the value)
//!   value   := (string)   bytes
//!            | (aggregate) form:u8 count:varint element × count
//!   form    := (hash)     0 listpack, 1 hashtable
//!            | (list)     0 listpack, 1 quicklist
//!            | (set)      0 intset, 1 listpack, 2 hashtable
//!            | (zset)     0 listpack, 1 skiplist
//!   element := (hash)     field:bytes value:bytes     a listpack's in its order
//!            | (list)     element:bytes               head first
//!            | (set)      member:bytes                an intset's in decimal, ascending; a
//!                                                     listpack's in its order
//!            | (zset)     member:bytes score:f64      score: IEEE 754 bits as u64, never NaN
//! ```
//!
//! (Format 1 had no `form`. Format 3 adds only the `Delta`: a reader of it reads format 2, and a
//! writer uses format 3 only for a delta, so that the other effects stay readable by nodes that
//! know only format 2.) The length prefix lets a reader frame effects in a stream before
//! decoding them; [`Effect::decode`] says when the buffer does not hold a whole effect yet.
//! Anything else that is not a well-formed effect is a [`DecodeError`], never a panic: among
//! them, a field or member that comes twice in one value (no sender writes one; rejecting it
//! keeps a compact copy, which is rebuilt without searching, from holding it twice), and an
//! intset member that is not an integer. A sorted set's members may come in any order: the
//! copy is sorted.

use crate::clock::Version;
use crate::entry::{MAX_KEY_LEN, OwnedValue, Value};
use crate::hash::HashValue;
use crate::list::ListValue;
use crate::set::{SetEncoding, SetValue, member_int};
use crate::zset::ZSetValue;

/// The encoding's format version, the first byte of every body.
pub const EFFECT_FORMAT: u8 = 2;

/// The format of a body that holds a [`Change::Delta`]; a reader of it reads format 2 too.
pub const DELTA_FORMAT: u8 = 3;

/// The longest body [`Effect::decode`] accepts: larger than any value the server takes (its bulk
/// limit is 512 MB), small enough that a reader never buffers without bound.
pub const MAX_EFFECT_LEN: usize = 1 << 30;

const DELETE: u8 = 0;
const PUT: u8 = 1;
const APPEND: u8 = 2;
const DELTA: u8 = 3;
const STRING: u8 = 0;
const HASH: u8 = 1;
const LIST: u8 = 2;
const SET: u8 = 3;
const ZSET: u8 = 4;

/// One key's state or a change to it, with its version. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub key: Box<[u8]>,
    pub version: Version,
    pub change: Change,
}

/// What a node knows of a key's newest version, for a quorum read: see
/// [`crate::Store::version_of`]. The newest version among the copies wins, whether a value or a
/// deletion (two writes never share a version: versions carry their node's id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVersion {
    /// A live entry, written at this version.
    Live(Version),
    /// No entry: the key was deleted at this version (its tombstone).
    Deleted(Version),
}

impl KeyVersion {
    #[must_use]
    pub fn version(self) -> Version {
        match self {
            KeyVersion::Live(v) | KeyVersion::Deleted(v) => v,
        }
    }
}

/// What an [`Effect`] does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key's whole value and absolute expiry (Unix ms; never `Some(0)`).
    Put {
        value: OwnedValue,
        expire_at: Option<u64>,
    },
    /// More of the value that the `Put` of the same version began: an aggregate's further
    /// elements. Strings always go whole: an `Append` of a string applies to nothing.
    Append(OwnedValue),
    /// The key is gone: deleted, or expired. With tombstones on, its version is the deletion's
    /// (the key's tombstone), else, for a key that is simply absent, a new one.
    Delete,
    /// The elements one write touched in a large hash, set or sorted set, applied only to a
    /// copy at exactly `base` with `base_len` elements in form `form` (see the module docs).
    /// Element states, not operations: applying it twice gives the same value.
    Delta(Box<Delta>),
}

/// What a [`Change::Delta`] carries. Boxed in the change, so that the common effects stay small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The key's version just before the write.
    pub base: Version,
    /// The key's element count at `base`: a copy at `base` holding only part of the value (a
    /// `Put` whose `Append`s did not all arrive) is not at the base.
    pub base_len: u64,
    /// The key's absolute expiry after the write (Unix ms; never `Some(0)`).
    pub expire_at: Option<u64>,
    /// The key's form code (see the encoding), the same before and after the write.
    pub form: u8,
    /// The touched fields or members that are present after the write, with their new values
    /// or scores, as a value of the key's type (any form: only its elements count).
    pub put: OwnedValue,
    /// The touched fields or members that are absent after the write.
    pub removed: Vec<Box<[u8]>>,
}

/// What applying an effect did: see [`crate::Store::restore_checked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The key changed.
    Changed,
    /// Nothing changed: a duplicate, a late copy, or an effect superseded here.
    Unchanged,
    /// A [`Change::Delta`] that found the key elsewhere than at its base: the sender must send
    /// the key's whole state. (No other change is ever stale.)
    Stale,
}

/// Why bytes are not an effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("effect format {0} is not known (this node reads format {EFFECT_FORMAT})")]
    Format(u8),
    #[error("effect tag {0:#04x} is not known")]
    Tag(u8),
    #[error("effect of {0} bytes is over the limit")]
    TooLong(u64),
    #[error("key of {0} bytes is over the limit")]
    KeyTooLong(u64),
    #[error("a length runs past the end of the effect")]
    Truncated,
    #[error("malformed varint")]
    Varint,
    #[error("{0} bytes left over after the effect's payload")]
    Trailing(usize),
    #[error("a sorted set score is NaN")]
    Score,
    #[error("aggregate form {0} is not known for its type")]
    Form(u8),
    #[error("a field or member comes twice in one value")]
    Duplicate,
    #[error("an intset member is not an integer")]
    NotInteger,
    #[error("a delta of a string or a list, or in a form its type does not have")]
    DeltaKind,
}

impl Effect {
    /// The effect's size encoded, length prefix included.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let payload = match &self.change {
            Change::Delete => 0,
            Change::Put { value, expire_at } => {
                varint_len(expire_at.unwrap_or(0)) + value_len(value)
            }
            Change::Append(value) => value_len(value),
            Change::Delta(d) => {
                8 + varint_len(d.base_len)
                    + varint_len(d.expire_at.unwrap_or(0))
                    + 1
                    + value_len(&d.put)
                    + varint_len(d.removed.len() as u64)
                    + d.removed.iter().map(|n| bytes_len(n)).sum::<usize>()
            }
        };
        4 + 2 + 8 + bytes_len(&self.key) + payload
    }

    /// Appends the effect's encoding to `out`.
    ///
    /// # Panics
    /// When the effect is longer than [`MAX_EFFECT_LEN`] encoded.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let len = self.encoded_len() - 4;
        assert!(len <= MAX_EFFECT_LEN, "an effect of {len} bytes");
        out.reserve(len + 4);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        let tag = match &self.change {
            Change::Delete => DELETE << 4,
            Change::Put { value, .. } => PUT << 4 | type_of(value),
            Change::Append(value) => APPEND << 4 | type_of(value),
            Change::Delta(d) => DELTA << 4 | type_of(&d.put),
        };
        // Only a delta needs format 3, so that every other effect stays readable by a node that
        // reads format 2 (a rolling upgrade turns deltas on once every node reads format 3).
        let format = if matches!(self.change, Change::Delta(_)) {
            DELTA_FORMAT
        } else {
            EFFECT_FORMAT
        };
        out.extend_from_slice(&[format, tag]);
        out.extend_from_slice(&self.version.0.to_le_bytes());
        put_bytes(out, &self.key);
        match &self.change {
            Change::Delete => {}
            Change::Put { value, expire_at } => {
                put_varint(out, expire_at.unwrap_or(0));
                put_value(out, value);
            }
            Change::Append(value) => put_value(out, value),
            Change::Delta(d) => {
                out.extend_from_slice(&d.base.0.to_le_bytes());
                put_varint(out, d.base_len);
                put_varint(out, d.expire_at.unwrap_or(0));
                out.push(d.form);
                put_value(out, &d.put);
                put_varint(out, d.removed.len() as u64);
                d.removed.iter().for_each(|n| put_bytes(out, n));
            }
        }
    }

    /// Decodes the effect at the start of `buf`: `Ok(None)` when `buf` does not hold all of it
    /// yet, else the effect and how many bytes it took.
    ///
    /// # Errors
    /// When the bytes are not a well-formed effect of a known format.
    pub fn decode(buf: &[u8]) -> Result<Option<(Effect, usize)>, DecodeError> {
        let Some(prefix) = buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(prefix.try_into().expect("four bytes")) as usize;
        if len > MAX_EFFECT_LEN {
            return Err(DecodeError::TooLong(len as u64));
        }
        let Some(body) = buf.get(4..4 + len) else {
            return Ok(None);
        };
        let mut r = Reader(body);
        let format = r.byte()?;
        if format != EFFECT_FORMAT && format != DELTA_FORMAT {
            return Err(DecodeError::Format(format));
        }
        let tag = r.byte()?;
        let version = Version(u64::from_le_bytes(
            r.take(8)?.try_into().expect("eight bytes"),
        ));
        let key_len = r.varint()?;
        if key_len > MAX_KEY_LEN as u64 {
            return Err(DecodeError::KeyTooLong(key_len));
        }
        let key = r.take_len(key_len)?.into();
        let change = match (tag >> 4, tag & 0xf) {
            (DELETE, STRING) => Change::Delete,
            (PUT, kind @ (STRING | HASH | LIST | SET | ZSET)) => {
                let expire_at = Some(r.varint()?).filter(|&at| at != 0);
                Change::Put {
                    value: r.value(kind)?,
                    expire_at,
                }
            }
            (APPEND, kind @ (STRING | HASH | LIST | SET | ZSET)) => Change::Append(r.value(kind)?),
            (DELTA, kind) if format == DELTA_FORMAT => Change::Delta(Box::new(r.delta(kind)?)),
            _ => return Err(DecodeError::Tag(tag)),
        };
        if !r.0.is_empty() {
            return Err(DecodeError::Trailing(r.0.len()));
        }
        Ok(Some((
            Effect {
                key,
                version,
                change,
            },
            4 + len,
        )))
    }
}

fn type_of(value: &OwnedValue) -> u8 {
    match value {
        OwnedValue::Str(_) => STRING,
        OwnedValue::Hash(_) => HASH,
        OwnedValue::List(_) => LIST,
        OwnedValue::Set(_) => SET,
        OwnedValue::ZSet(_) => ZSET,
    }
}

fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

fn bytes_len(b: &[u8]) -> usize {
    varint_len(b.len() as u64) + b.len()
}

fn value_len(value: &OwnedValue) -> usize {
    let form = usize::from(!matches!(value, OwnedValue::Str(_)));
    form + match value {
        OwnedValue::Str(s) => bytes_len(s),
        OwnedValue::Hash(h) => {
            varint_len(h.len() as u64)
                + h.iter()
                    .map(|(f, v)| bytes_len(f) + bytes_len(v))
                    .sum::<usize>()
        }
        OwnedValue::List(l) => varint_len(l.len() as u64) + l.iter().map(bytes_len).sum::<usize>(),
        OwnedValue::Set(s) => {
            varint_len(s.len() as u64) + s.iter().map(|m| bytes_len(&m)).sum::<usize>()
        }
        OwnedValue::ZSet(z) => {
            varint_len(z.len() as u64) + z.iter().map(|(m, _)| bytes_len(m) + 8).sum::<usize>()
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Form codes: see the module docs.
const LISTPACK: u8 = 0;
const LARGE: u8 = 1;
const SET_INTSET: u8 = 0;
const SET_LISTPACK: u8 = 1;
const SET_TABLE: u8 = 2;

/// The form code of an aggregate (none for a string).
fn form_of(value: &OwnedValue) -> Option<u8> {
    form_code(value.as_value())
}

/// The form code of an aggregate (none for a string): what a [`Delta`]'s `form` names.
pub(crate) fn form_code(value: Value<'_>) -> Option<u8> {
    let compact = match value {
        Value::Str(_) => return None,
        Value::Hash(h) => h.is_listpack(),
        Value::List(l) => l.encoding() == "listpack",
        Value::ZSet(z) => z.is_listpack(),
        Value::Set(s) => {
            return Some(match s.encoding() {
                SetEncoding::Intset => SET_INTSET,
                SetEncoding::Listpack => SET_LISTPACK,
                SetEncoding::Hashtable => SET_TABLE,
            });
        }
    };
    Some(if compact { LISTPACK } else { LARGE })
}

fn put_value(out: &mut Vec<u8>, value: &OwnedValue) {
    if let Some(form) = form_of(value) {
        out.push(form);
    }
    match value {
        OwnedValue::Str(s) => put_bytes(out, s),
        OwnedValue::Hash(h) => {
            put_varint(out, h.len() as u64);
            for (f, v) in h.iter() {
                put_bytes(out, f);
                put_bytes(out, v);
            }
        }
        OwnedValue::List(l) => {
            put_varint(out, l.len() as u64);
            l.iter().for_each(|e| put_bytes(out, e));
        }
        OwnedValue::Set(s) => {
            put_varint(out, s.len() as u64);
            s.iter().for_each(|m| put_bytes(out, &m));
        }
        OwnedValue::ZSet(z) => {
            put_varint(out, z.len() as u64);
            for (m, score) in z.iter() {
                put_bytes(out, m);
                out.extend_from_slice(&score.to_bits().to_le_bytes());
            }
        }
    }
}

/// Reads a body front to back; every read checks what is left, so bad lengths are errors.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn take_len(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        self.take(usize::try_from(n).map_err(|_| DecodeError::Truncated)?)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError::Varint);
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(DecodeError::Varint)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.varint()?;
        self.take_len(n)
    }

    fn score(&mut self) -> Result<f64, DecodeError> {
        let bits = u64::from_le_bytes(self.take(8)?.try_into().expect("eight bytes"));
        let score = f64::from_bits(bits);
        if score.is_nan() {
            return Err(DecodeError::Score);
        }
        Ok(score)
    }

    /// A delta's payload, after its tag (see the module docs). A name both put and removed, or
    /// removed twice, is a [`DecodeError::Duplicate`].
    fn delta(&mut self, kind: u8) -> Result<Delta, DecodeError> {
        if !matches!(kind, HASH | SET | ZSET) {
            return Err(DecodeError::DeltaKind);
        }
        let base = Version(u64::from_le_bytes(
            self.take(8)?.try_into().expect("eight bytes"),
        ));
        let base_len = self.varint()?;
        let expire_at = Some(self.varint()?).filter(|&at| at != 0);
        let form = self.byte()?;
        let known = match kind {
            SET => matches!(form, SET_INTSET | SET_LISTPACK | SET_TABLE),
            _ => matches!(form, LISTPACK | LARGE),
        };
        if !known {
            return Err(DecodeError::DeltaKind);
        }
        let put = self.value(kind)?;
        let count = self.varint()?;
        let mut removed: Vec<Box<[u8]>> = Vec::new();
        let mut seen = hashbrown::HashSet::new();
        for _ in 0..count {
            let name = self.bytes()?;
            let present = match &put {
                OwnedValue::Hash(h) => h.get(name).is_some(),
                OwnedValue::Set(s) => s.contains(name),
                OwnedValue::ZSet(z) => z.score(name).is_some(),
                OwnedValue::Str(_) | OwnedValue::List(_) => false,
            };
            if present || !seen.insert(name) {
                return Err(DecodeError::Duplicate);
            }
            removed.push(name.into());
        }
        Ok(Delta {
            base,
            base_len,
            expire_at,
            form,
            put,
            removed,
        })
    }

    /// An aggregate built in the form the effect names, whatever the limits (see the module
    /// docs).
    fn value(&mut self, kind: u8) -> Result<OwnedValue, DecodeError> {
        if kind == STRING {
            return Ok(OwnedValue::Str(self.bytes()?.into()));
        }
        let form = self.byte()?;
        // Counts are not trusted for an allocation: each element is read, and checked against
        // what is left, one at a time.
        let count = self.varint()?;
        // The compact forms are built without a search, so their elements are checked here.
        let mut seen = Seen::new(matches!(
            (kind, form),
            (HASH | ZSET, LISTPACK) | (SET, SET_LISTPACK)
        ));
        Ok(match (kind, form) {
            (HASH, LISTPACK | LARGE) => {
                let mut hash = if form == LISTPACK {
                    HashValue::default()
                } else {
                    HashValue::table()
                };
                for _ in 0..count {
                    let field = self.bytes()?;
                    let value = self.bytes()?;
                    if !seen.first(field) || !hash.push_new(field, value) {
                        return Err(DecodeError::Duplicate);
                    }
                }
                OwnedValue::Hash(Box::new(hash))
            }
            (LIST, LISTPACK | LARGE) => {
                let mut list = if form == LISTPACK {
                    ListValue::default()
                } else {
                    ListValue::ring()
                };
                for _ in 0..count {
                    list.push_in_form(self.bytes()?);
                }
                OwnedValue::List(Box::new(list))
            }
            (SET, SET_INTSET) => {
                let mut ints = Vec::new();
                for _ in 0..count {
                    ints.push(member_int(self.bytes()?).ok_or(DecodeError::NotInteger)?);
                }
                OwnedValue::Set(Box::new(
                    SetValue::of_ints(ints).ok_or(DecodeError::Duplicate)?,
                ))
            }
            (SET, SET_LISTPACK | SET_TABLE) => {
                let mut set = SetValue::of_encoding(if form == SET_LISTPACK {
                    SetEncoding::Listpack
                } else {
                    SetEncoding::Hashtable
                });
                for _ in 0..count {
                    let member = self.bytes()?;
                    if !seen.first(member) || !set.push_new(member) {
                        return Err(DecodeError::Duplicate);
                    }
                }
                OwnedValue::Set(Box::new(set))
            }
            (ZSET, LISTPACK) => {
                let mut members = Vec::new();
                for _ in 0..count {
                    let member = self.bytes()?;
                    if !seen.first(member) {
                        return Err(DecodeError::Duplicate);
                    }
                    members.push((member, self.score()?));
                }
                OwnedValue::ZSet(Box::new(ZSetValue::of_members(true, members)))
            }
            (ZSET, LARGE) => {
                let mut zset = ZSetValue::large();
                for _ in 0..count {
                    let member = self.bytes()?;
                    if !zset.insert_in_form(member, self.score()?) {
                        return Err(DecodeError::Duplicate);
                    }
                }
                OwnedValue::ZSet(Box::new(zset))
            }
            _ => return Err(DecodeError::Form(form)),
        })
    }
}

/// The fields or members a compact value has taken so far, so that one that comes twice is
/// refused (a table finds it itself: see [`Seen::first`]).
struct Seen<'a> {
    compact: bool,
    elements: hashbrown::HashSet<&'a [u8]>,
}

impl<'a> Seen<'a> {
    fn new(compact: bool) -> Self {
        Self {
            compact,
            elements: hashbrown::HashSet::new(),
        }
    }

    /// True when `element` has not come before; always true for a large form, whose insert
    /// says whether the element is new.
    fn first(&mut self, element: &'a [u8]) -> bool {
        !self.compact || self.elements.insert(element)
    }
}
