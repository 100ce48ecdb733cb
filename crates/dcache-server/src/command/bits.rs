//! Bitmaps on strings (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP), bit fields (`bitfield`) and
//! the longest common subsequence of two strings (`lcs`).
//!
//! A string is a bit array, most significant bit of byte 0 first; a missing key is all zeros.
//! A write that reaches past the end grows the string with zero bytes, after making room for
//! them in the memory budget ([`Ctx::admit`]); offsets stop at `proto-max-bulk-len` bytes, as in
//! Redis.

mod bitfield;
mod lcs;

pub use bitfield::{bitfield, bitfield_ro};
pub use lcs::lcs;

use dcache_protocol::Args;
use dcache_store::{Key, Kind, Lookup, Value};

use super::strings::as_str;
use super::{CmdResult, Ctx, Error, SYNTAX, int_arg, is};

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";

/// Parses a bit offset as Redis does: a non-negative integer whose byte is below
/// `proto-max-bulk-len`; with `bits`, `#n` means `n * bits` (BITFIELD's typed offsets).
fn bit_offset(arg: &[u8], bits: Option<u32>, max_bulk_len: usize) -> Result<u64, Error> {
    let (hash, digits) = match (arg, bits) {
        ([b'#', rest @ ..], Some(_)) => (true, rest),
        _ => (false, arg),
    };
    let mut offset = dcache_protocol::request::parse_i64(digits).ok_or(Error::from(BAD_OFFSET))?;
    if hash {
        // Redis multiplies without an overflow check; a wrapped product is refused below or
        // lands where Redis's would.
        offset = offset.wrapping_mul(i64::from(bits.unwrap_or(1)));
    }
    if offset < 0 || (offset >> 3) as u64 >= max_bulk_len as u64 {
        return Err(BAD_OFFSET.into());
    }
    Ok(offset as u64)
}

/// The string at `key` copied out (`None` when missing), or WRONGTYPE.
/// Runs `f` on the string at `key` where it lies (a bitmap is read, never copied); `None` when
/// the key is missing.
fn read_bits<R>(ctx: &Ctx<'_>, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, Error> {
    let key = ctx.key(key);
    let mut shard = ctx.lock(&key);
    match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => Ok(Some(f(as_str(entry.value())?))),
        None => Ok(None),
    }
}

/// Makes room for what growing the string at `key` to `len` bytes adds, with no shard locked:
/// nothing when it is that long already (a bit set in a large bitmap asks for no memory).
fn admit_growth<'a>(
    ctx: &Ctx<'a>,
    key: &Key<'_>,
    len: usize,
) -> Result<Option<dcache_store::Room<'a>>, Error> {
    let current = ctx
        .lock(key)
        .get(key, ctx.now, Lookup::Peek)
        .map_or(0, |entry| match entry.value() {
            Value::Str(s) => s.len(),
            _ => 0,
        });
    if len > current {
        Ok(Some(ctx.admit(key, len - current)?))
    } else {
        Ok(None)
    }
}

/// Runs `f` on the string at `key` (created empty when absent) grown with zeros to at least
/// `len` bytes; `f` says whether it changed a bit. The key is written only when it was created,
/// grown or changed.
fn with_bits<R>(
    ctx: &Ctx<'_>,
    key: &Key<'_>,
    len: usize,
    f: impl FnOnce(&mut [u8]) -> (R, bool),
) -> Result<R, Error> {
    let mut shard = ctx.lock(key);
    // A string long enough already is changed where it lies: a bit set in a large bitmap copies
    // nothing.
    if let Some(mut handle) = shard.modify(key, ctx.now, None)
        && matches!(handle.value(), Value::Str(s) if s.len() >= len)
    {
        let bytes = handle.str_mut().expect("a string");
        return Ok(f(bytes).0);
    }
    let existing = match shard.get(key, ctx.now, Lookup::Write) {
        Some(entry) => Some(as_str(entry.value())?.to_vec()),
        None => None,
    };
    let created = existing.is_none();
    let mut bytes = existing.unwrap_or_default();
    let grown = bytes.len() < len;
    if grown {
        bytes.resize(len, 0);
    }
    let (result, changed) = f(&mut bytes);
    if created || grown || changed {
        let mut handle = shard
            .modify(key, ctx.now, Some(Kind::Str))
            .expect("created when absent");
        handle.set_str(&bytes);
    }
    Ok(result)
}

fn get_bit(bytes: &[u8], offset: u64) -> u8 {
    let byte = (offset >> 3) as usize;
    bytes
        .get(byte)
        .map_or(0, |b| (b >> (7 - (offset & 7) as u8)) & 1)
}

pub fn setbit(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let offset = bit_offset(args.get(2), None, ctx.conn.max_bulk_len)?;
    let on = match args.get(3) {
        b"0" => false,
        b"1" => true,
        _ => return Err("ERR bit is not an integer or out of range".into()),
    };
    let key = ctx.key(args.get(1));
    let len = (offset >> 3) as usize + 1;
    let _room = admit_growth(ctx, &key, len)?;
    let old = with_bits(ctx, &key, len, |bytes| {
        let old = get_bit(bytes, offset);
        let byte = &mut bytes[(offset >> 3) as usize];
        let mask = 1u8 << (7 - (offset & 7) as u8);
        if on {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
        (old, old != u8::from(on))
    })?;
    ctx.out.int(i64::from(old));
    Ok(())
}

pub fn getbit(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let offset = bit_offset(args.get(2), None, ctx.conn.max_bulk_len)?;
    let bit = read_bits(ctx, args.get(1), |b| get_bit(b, offset))?.unwrap_or(0);
    ctx.out.int(i64::from(bit));
    Ok(())
}

/// A BITCOUNT or BITPOS range as Redis resolves it (`bitcountCommand`): in bits, inclusive,
/// `None` when empty.
fn resolve_range(start: i64, end: i64, len: usize, in_bits: bool) -> Option<(u64, u64)> {
    let total = if in_bits { len as i64 * 8 } else { len as i64 };
    let (mut start, mut end) = (start, end);
    if start < 0 {
        start = total.saturating_add(start);
    }
    if end < 0 {
        end = total.saturating_add(end);
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    if start > end {
        return None;
    }
    Some(if in_bits {
        (start as u64, end as u64)
    } else {
        (start as u64 * 8, end as u64 * 8 + 7)
    })
}

/// BYTE or BIT, the unit of a range.
fn unit(arg: &[u8]) -> Result<bool, Error> {
    if is(arg, "BIT") {
        Ok(true)
    } else if is(arg, "BYTE") {
        Ok(false)
    } else {
        Err(SYNTAX.into())
    }
}

/// Set bits of `bytes` in the inclusive bit range.
fn count_ones(bytes: &[u8], first: u64, last: u64) -> u64 {
    let (a, b) = ((first >> 3) as usize, (last >> 3) as usize);
    let mut count: u64 = bytes[a..=b].iter().map(|x| u64::from(x.count_ones())).sum();
    // Take off the bits of the edge bytes outside the range.
    let head = bytes[a] & !(0xffu8 >> (first & 7));
    let tail = bytes[b] & (0x7fu8 >> (last & 7));
    count -= u64::from(head.count_ones()) + u64::from(tail.count_ones());
    count
}

pub fn bitcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let start = int_arg(args.get(2))?;
            let end = int_arg(args.get(3))?;
            let in_bits = if args.len() == 5 {
                unit(args.get(4))?
            } else {
                false
            };
            Some((start, end, in_bits))
        }
        _ => return Err(SYNTAX.into()),
    };
    let count = read_bits(ctx, args.get(1), |bytes| {
        let resolved = match range {
            None if bytes.is_empty() => None,
            None => Some((0, bytes.len() as u64 * 8 - 1)),
            // Both negative with the start after the end: empty, before any clamping.
            Some((start, end, _)) if start < 0 && end < 0 && start > end => None,
            Some((start, end, in_bits)) => resolve_range(start, end, bytes.len(), in_bits),
        };
        resolved.map_or(0, |(first, last)| count_ones(bytes, first, last))
    })?;
    ctx.out.int(count.unwrap_or(0) as i64);
    Ok(())
}

/// The first bit equal to `bit` in the inclusive bit range.
fn find_bit(bytes: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let skip = if bit { 0x00 } else { 0xff };
    let mut at = first;
    while at <= last {
        let byte = bytes[(at >> 3) as usize];
        if at & 7 == 0 && at + 7 <= last && byte == skip {
            at += 8;
            continue;
        }
        if get_bit(bytes, at) == u8::from(bit) {
            return Some(at);
        }
        at += 1;
    }
    None
}

pub fn bitpos(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let bit = match int_arg(args.get(2))? {
        0 => false,
        1 => true,
        _ => return Err("ERR The bit argument must be 1 or 0.".into()),
    };
    if args.len() > 6 {
        return Err(SYNTAX.into());
    }
    let start = if args.len() >= 4 {
        int_arg(args.get(3))?
    } else {
        0
    };
    let in_bits = if args.len() == 6 {
        unit(args.get(5))?
    } else {
        false
    };
    let end = if args.len() >= 5 {
        Some(int_arg(args.get(4))?)
    } else {
        None
    };
    let pos = read_bits(ctx, args.get(1), |bytes| {
        match resolve_range(start, end.unwrap_or(-1), bytes.len(), in_bits) {
            None => -1,
            Some((first, last)) => match find_bit(bytes, bit, first, last) {
                Some(at) => at as i64,
                // Looking for a clear bit without an end: the string goes on with zeros past
                // its range's last byte.
                None if !bit && end.is_none() => (((last >> 3) + 1) * 8) as i64,
                None => -1,
            },
        }
    })?;
    // A missing key is an endless run of zeros.
    ctx.out.int(pos.unwrap_or(if bit { -1 } else { 0 }));
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP AND|OR|XOR|NOT destkey key [key …]: the result replaces the destination (and its
/// TTL); an empty result deletes it. Replies with the result's length.
pub fn bitop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let op = match args.get(1).to_ascii_lowercase().as_slice() {
        b"and" => BitOp::And,
        b"or" => BitOp::Or,
        b"xor" => BitOp::Xor,
        b"not" => BitOp::Not,
        _ => return Err(SYNTAX.into()),
    };
    if op == BitOp::Not && args.len() != 4 {
        return Err("ERR BITOP NOT must be called with a single source key.".into());
    }
    let dst = ctx.key(args.get(2));
    let sources: Vec<Key<'_>> = args.iter_from(3).map(|k| ctx.key(k)).collect();
    // The result is as long as the longest source: room for it first, with no shard locked.
    let mut longest = 0;
    for key in &sources {
        if let Some(entry) = ctx.lock(key).get(key, ctx.now, Lookup::Peek)
            && let Value::Str(s) = entry.value()
        {
            longest = longest.max(s.len());
        }
    }
    let _room = ctx.admit(&dst, longest)?;
    let mut all = sources.clone();
    all.push(dst);
    let mut locked = ctx.lock_many(&all);
    let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(sources.len());
    for key in &sources {
        values.push(match locked.shard(key).get(key, ctx.now, Lookup::Read) {
            Some(entry) => Some(as_str(entry.value())?.to_vec()),
            None => None,
        });
    }
    let len = values.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let shard = locked.shard(&dst);
    if len == 0 {
        shard.delete(&dst, ctx.now);
    } else {
        let byte = |v: &Option<Vec<u8>>, i: usize| v.as_ref().and_then(|v| v.get(i)).copied();
        let result: Vec<u8> = (0..len)
            .map(|i| {
                // A missing key or a short string reads as zeros.
                let mut bytes = values.iter().map(|v| byte(v, i).unwrap_or(0));
                let first = bytes.next().unwrap_or(0);
                match op {
                    BitOp::And => bytes.fold(first, |a, b| a & b),
                    BitOp::Or => bytes.fold(first, |a, b| a | b),
                    BitOp::Xor => bytes.fold(first, |a, b| a ^ b),
                    BitOp::Not => !first,
                }
            })
            .collect();
        shard.set(&dst, Value::Str(&result), None, false, ctx.now);
    }
    drop(locked);
    ctx.out.int(len as i64);
    Ok(())
}
