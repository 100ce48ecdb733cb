//! BITFIELD and BITFIELD_RO: integers of 1 to 64 bits (unsigned up to 63) at any bit offset of
//! a string, read, written and incremented with a chosen overflow behaviour.
//!
//! Every operation is parsed before any runs, as in Redis, so that a bad one changes nothing.
//! A write grows the string to the farthest bit written before the operations run, even when
//! every one of them then fails under `OVERFLOW FAIL` (Redis does the same).

use dcache_protocol::Args;

use super::{BAD_OFFSET, admit_growth, bit_offset, read_bits, with_bits};
use crate::command::{CmdResult, Ctx, Error, SYNTAX, int_arg, is};

const BAD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Get,
    Set(i64),
    IncrBy(i64),
}

#[derive(Clone, Copy)]
struct Op {
    kind: OpKind,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// `i8`, `u16`, …: signed up to 64 bits, unsigned up to 63. Redis reads the type as a C string,
/// so it ends at a NUL byte.
fn bit_type(arg: &[u8]) -> Result<(bool, u32), Error> {
    let arg = arg.split(|&b| b == 0).next().unwrap_or_default();
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(BAD_TYPE.into()),
    };
    let bits = dcache_protocol::request::parse_i64(&arg[1..]).ok_or(Error::from(BAD_TYPE))?;
    if bits < 1 || bits > if signed { 64 } else { 63 } {
        return Err(BAD_TYPE.into());
    }
    Ok((signed, bits as u32))
}

fn parse(args: Args<'_>, max_bulk_len: usize) -> Result<Vec<Op>, Error> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let sub = args.get(j);
        let get = is(sub, "GET") && left >= 2;
        let set = is(sub, "SET") && left >= 3;
        let incr = is(sub, "INCRBY") && left >= 3;
        if is(sub, "OVERFLOW") && left >= 1 {
            let kind = args.get(j + 1);
            overflow = if is(kind, "WRAP") {
                Overflow::Wrap
            } else if is(kind, "SAT") {
                Overflow::Sat
            } else if is(kind, "FAIL") {
                Overflow::Fail
            } else {
                return Err("ERR Invalid OVERFLOW type specified".into());
            };
            j += 2;
            continue;
        }
        if !(get || set || incr) {
            return Err(SYNTAX.into());
        }
        let (signed, bits) = bit_type(args.get(j + 1))?;
        let offset = bit_offset(args.get(j + 2), Some(bits), max_bulk_len)?;
        let kind = if get {
            OpKind::Get
        } else {
            let value = int_arg(args.get(j + 3))?;
            if set {
                OpKind::Set(value)
            } else {
                OpKind::IncrBy(value)
            }
        };
        ops.push(Op {
            kind,
            signed,
            bits,
            offset,
            overflow,
        });
        j += if get { 3 } else { 4 };
    }
    Ok(ops)
}

/// The `bits` bits at bit `offset`, most significant first; bits past the end read as zeros.
fn get_unsigned(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    let mut value = 0u64;
    for i in 0..u64::from(bits) {
        value = (value << 1) | u64::from(super::get_bit(bytes, offset + i));
    }
    value
}

fn get_signed(bytes: &[u8], offset: u64, bits: u32) -> i64 {
    let value = get_unsigned(bytes, offset, bits);
    if bits < 64 && value & (1 << (bits - 1)) != 0 {
        // Sign-extend.
        (value | (u64::MAX << bits)) as i64
    } else {
        value as i64
    }
}

/// Writes the low `bits` bits of `value` at bit `offset` (inside `bytes`).
fn set_bits(bytes: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..u64::from(bits) {
        let bit = (value >> (u64::from(bits) - 1 - i)) & 1;
        let at = offset + i;
        let byte = &mut bytes[(at >> 3) as usize];
        let mask = 1u8 << (7 - (at & 7) as u8);
        if bit == 1 {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// `value + incr` in an unsigned field of `bits` bits: the result, and whether it overflowed
/// (with WRAP and SAT the result is the wrapped or saturated value).
fn add_unsigned(value: u64, incr: i64, bits: u32, overflow: Overflow) -> (u64, bool) {
    let max = (1u64 << bits) - 1;
    let wrap = || value.wrapping_add(incr as u64) & max;
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = (value as i64).wrapping_neg();
    if value > max || (incr > 0 && incr > max_incr) {
        (
            match overflow {
                Overflow::Sat => max,
                _ => wrap(),
            },
            true,
        )
    } else if incr < 0 && incr < min_incr {
        (
            match overflow {
                Overflow::Sat => 0,
                _ => wrap(),
            },
            true,
        )
    } else {
        (value.wrapping_add(incr as u64), false)
    }
}

/// As [`add_unsigned`] for a signed field.
fn add_signed(value: i64, incr: i64, bits: u32, overflow: Overflow) -> (i64, bool) {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrap = || {
        let sum = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if sum & (1 << (bits - 1)) != 0 {
                (sum | mask) as i64
            } else {
                (sum & !mask) as i64
            }
        } else {
            sum as i64
        }
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr)
    {
        (
            match overflow {
                Overflow::Sat => max,
                _ => wrap(),
            },
            true,
        )
    } else if value < min
        || (bits != 64 && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr)
    {
        (
            match overflow {
                Overflow::Sat => min,
                _ => wrap(),
            },
            true,
        )
    } else {
        (value.wrapping_add(incr), false)
    }
}

/// Runs one write: its reply (`None` for a FAIL overflow, which writes nothing) and whether it
/// changed the field.
fn write(bytes: &mut [u8], op: &Op) -> (Option<i64>, bool) {
    let (new, reply, failed, old) = if op.signed {
        let old = get_signed(bytes, op.offset, op.bits);
        let (new, reply, over) = match op.kind {
            OpKind::IncrBy(incr) => {
                let (new, over) = add_signed(old, incr, op.bits, op.overflow);
                (new, new, over)
            }
            OpKind::Set(value) => {
                let (new, over) = add_signed(value, 0, op.bits, op.overflow);
                (new, old, over)
            }
            OpKind::Get => unreachable!("reads are not writes"),
        };
        (new as u64, reply, over, old as u64)
    } else {
        let old = get_unsigned(bytes, op.offset, op.bits);
        let (new, reply, over) = match op.kind {
            OpKind::IncrBy(incr) => {
                let (new, over) = add_unsigned(old, incr, op.bits, op.overflow);
                (new, new as i64, over)
            }
            OpKind::Set(value) => {
                let (new, over) = add_unsigned(value as u64, 0, op.bits, op.overflow);
                (new, old as i64, over)
            }
            OpKind::Get => unreachable!("reads are not writes"),
        };
        (new, reply, over, old)
    };
    if failed && op.overflow == Overflow::Fail {
        return (None, false);
    }
    let mask = if op.bits == 64 {
        u64::MAX
    } else {
        (1u64 << op.bits) - 1
    };
    set_bits(bytes, op.offset, op.bits, new);
    (Some(reply), (new & mask) != (old & mask))
}

fn read(bytes: &[u8], op: &Op) -> i64 {
    if op.signed {
        get_signed(bytes, op.offset, op.bits)
    } else {
        get_unsigned(bytes, op.offset, op.bits) as i64
    }
}

fn run(ctx: &mut Ctx<'_>, args: Args<'_>, read_only: bool) -> CmdResult {
    let ops = parse(args, ctx.conn.max_bulk_len)?;
    let writes = ops.iter().any(|op| op.kind != OpKind::Get);
    let replies: Vec<Option<i64>> = if !writes {
        let read_all = |bytes: &[u8]| ops.iter().map(|op| Some(read(bytes, op))).collect();
        read_bits(ctx, args.get(1), read_all)?.unwrap_or_else(|| read_all(&[]))
    } else {
        if read_only {
            return Err("ERR BITFIELD_RO only supports the GET subcommand".into());
        }
        let last_bit = ops
            .iter()
            .filter(|op| op.kind != OpKind::Get)
            .map(|op| op.offset + u64::from(op.bits) - 1)
            .max()
            .unwrap_or(0);
        let len = usize::try_from(last_bit >> 3).map_err(|_| Error::from(BAD_OFFSET))? + 1;
        let key = ctx.key(args.get(1));
        let _room = admit_growth(ctx, &key, len)?;
        with_bits(ctx, &key, len, |bytes| {
            let mut changed = false;
            let replies = ops
                .iter()
                .map(|op| match op.kind {
                    OpKind::Get => Some(read(bytes, op)),
                    _ => {
                        let (reply, c) = write(bytes, op);
                        changed |= c;
                        reply
                    }
                })
                .collect();
            (replies, changed)
        })?
    };
    ctx.out.array(replies.len());
    for r in replies {
        match r {
            Some(v) => ctx.out.int(v),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

pub fn bitfield(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    run(ctx, args, false)
}

pub fn bitfield_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    run(ctx, args, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_rules_match_redis() {
        // Unsigned: wrap masks, sat clamps, a negative SET is out of range.
        assert_eq!(add_unsigned(250, 10, 8, Overflow::Wrap), (4, true));
        assert_eq!(add_unsigned(250, 10, 8, Overflow::Sat), (255, true));
        assert_eq!(add_unsigned(5, -10, 8, Overflow::Sat), (0, true));
        assert_eq!(add_unsigned(5, -10, 8, Overflow::Wrap), (251, true));
        assert_eq!(
            add_unsigned(-1i64 as u64, 0, 8, Overflow::Wrap),
            (255, true)
        );
        assert_eq!(add_unsigned(3, 4, 8, Overflow::Fail), (7, false));
        // Signed.
        assert_eq!(add_signed(127, 1, 8, Overflow::Wrap), (-128, true));
        assert_eq!(add_signed(127, 1, 8, Overflow::Sat), (127, true));
        assert_eq!(add_signed(-128, -1, 8, Overflow::Sat), (-128, true));
        assert_eq!(add_signed(-128, -1, 8, Overflow::Wrap), (127, true));
        assert_eq!(
            add_signed(i64::MAX, 1, 64, Overflow::Wrap),
            (i64::MIN, true)
        );
        assert_eq!(
            add_signed(i64::MIN, -1, 64, Overflow::Sat),
            (i64::MIN, true)
        );
        assert_eq!(add_signed(300, 0, 8, Overflow::Wrap), (44, true));
        assert_eq!(add_signed(-5, 3, 4, Overflow::Fail), (-2, false));
    }

    #[test]
    fn fields_read_and_write_most_significant_bit_first() {
        let mut bytes = vec![0u8; 3];
        set_bits(&mut bytes, 4, 8, 0xab);
        assert_eq!(bytes, [0x0a, 0xb0, 0]);
        assert_eq!(get_unsigned(&bytes, 4, 8), 0xab);
        assert_eq!(get_signed(&bytes, 4, 8), 0xab_u8 as i8 as i64);
        // Past the end reads zeros.
        assert_eq!(get_unsigned(&bytes, 20, 16), 0);
    }
}
