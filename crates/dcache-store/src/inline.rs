//! Small aggregates kept inline: a compact hash, list, set or sorted set lives in its key's own
//! allocation, where a string keeps its value, rather than in the shard's side table.
//!
//! ```text
//!   [ key | tag | header (varints) | packed bytes | expire_at? ]
//!           └──────────── body ─────────────────┘
//!   tag 1  list (listpack)     header: element count, Redis's listpack size (`lp`)
//!   tag 2  set (intset)        header: integer width (2, 4 or 8)
//!   tag 3  set (listpack)      header: member count
//!   tag 4  sorted set (packed) header: member count
//!   tag 5  hash (listpack)     header: field count
//! ```
//!
//! The packed bytes are those of the owned value's compact form, unchanged, so that a read
//! borrows them through the same decoder ([`crate::ListRef`] and the others) and a write copies
//! them out once, changes the owned value, and writes the body back once. A side-table cell
//! costs about 100 bytes and the packed form's own allocation its size class; inline, a small
//! aggregate costs the bytes it holds. Large forms (ring buffer, hash table, tree) stay in the
//! side table: they change in place, and an entry's body is rebuilt on every write.

use crate::entry::{Aggregate, Value};
use crate::hash::HashRef;
use crate::list::ListRef;
use crate::set::{CompactParts, SetRef};
use crate::zset::ZSetRef;

const LIST: u8 = 1;
const SET_INTS: u8 = 2;
const SET_PACK: u8 = 3;
const ZSET: u8 = 4;
const HASH: u8 = 5;

/// A body's tag and header: at most a tag and two ten-byte varints.
pub(crate) struct Header {
    buf: [u8; 21],
    len: usize,
}

impl Header {
    fn new(tag: u8, fields: &[usize]) -> Self {
        let mut h = Header {
            buf: [0; 21],
            len: 1,
        };
        h.buf[0] = tag;
        for &field in fields {
            let mut v = field as u64;
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    h.buf[h.len] = byte;
                    h.len += 1;
                    break;
                }
                h.buf[h.len] = byte | 0x80;
                h.len += 1;
            }
        }
        h
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Reads a varint at `*at`, moving past it.
fn read_varint(body: &[u8], at: &mut usize) -> usize {
    let (v, end) = crate::varint::read(body, *at);
    *at = end;
    v
}

/// The inline body of `value` as its header and packed bytes; `None` when the value lives in
/// the side table (a string, a large form).
pub(crate) fn body_of(value: Value<'_>) -> Option<(Header, &[u8])> {
    match value {
        Value::Str(_) => None,
        Value::Hash(h) => {
            let (bytes, len) = h.packed_parts()?;
            Some((Header::new(HASH, &[len]), bytes))
        }
        Value::List(l) => {
            let (bytes, len, lp) = l.packed_parts()?;
            Some((Header::new(LIST, &[len, lp]), bytes))
        }
        Value::Set(s) => match s.compact_parts()? {
            CompactParts::Ints { width, bytes } => Some((Header::new(SET_INTS, &[width]), bytes)),
            CompactParts::Pack { bytes, len } => Some((Header::new(SET_PACK, &[len]), bytes)),
        },
        Value::ZSet(z) => {
            let (bytes, len) = z.packed_parts()?;
            Some((Header::new(ZSET, &[len]), bytes))
        }
    }
}

/// Whether `aggregate` belongs inline (it is in a compact form).
pub(crate) fn fits(aggregate: &Aggregate) -> bool {
    body_of(aggregate.as_value()).is_some()
}

/// The value an inline body holds, borrowed from it.
///
/// # Panics
/// On a body that [`body_of`] did not write.
pub(crate) fn view(body: &[u8]) -> Value<'_> {
    let mut at = 1;
    match body[0] {
        LIST => {
            let len = read_varint(body, &mut at);
            let lp = read_varint(body, &mut at);
            Value::List(ListRef::packed(&body[at..], len, lp))
        }
        SET_INTS => {
            let width = read_varint(body, &mut at);
            Value::Set(SetRef::compact(CompactParts::Ints {
                width,
                bytes: &body[at..],
            }))
        }
        SET_PACK => {
            let len = read_varint(body, &mut at);
            Value::Set(SetRef::compact(CompactParts::Pack {
                bytes: &body[at..],
                len,
            }))
        }
        ZSET => {
            let len = read_varint(body, &mut at);
            Value::ZSet(ZSetRef::packed(&body[at..], len))
        }
        HASH => {
            let len = read_varint(body, &mut at);
            Value::Hash(HashRef::packed(&body[at..], len))
        }
        tag => unreachable!("inline body with tag {tag}"),
    }
}

/// The owned value an inline body holds, to change.
pub(crate) fn to_owned(body: &[u8]) -> Aggregate {
    Aggregate::owned(view(body).into_owned()).expect("an inline body holds an aggregate")
}

#[cfg(test)]
mod tests;
