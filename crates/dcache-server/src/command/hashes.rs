//! Hash commands: field/value maps under one key, as web sessions use them.
//!
//! A small hash is kept compact, its fields in insertion order (Redis's listpack), and moves to a
//! table past `hash-max-listpack-entries` fields or a field or value longer than
//! `hash-max-listpack-value` bytes (see `dcache_store::HashValue`): every write passes the limits
//! in force, and every reply that lists fields reads them in the hash's own order, so that a
//! small hash answers in Redis's order.

use dcache_protocol::Args;
use dcache_store::{HashLimits, HashMut, HashRef, Kind, Lookup, Value, glob_match};

use super::keys::{cursor_arg, scan_options};
use super::{CmdResult, Ctx, Error, OVERFLOW, WRONGTYPE, int_arg, is, parse_float};

fn as_hash(value: Value<'_>) -> Result<HashRef<'_>, Error> {
    match value {
        Value::Hash(h) => Ok(h),
        _ => Err(WRONGTYPE.into()),
    }
}

/// Runs `f` on the hash at `key`, creating it if absent, with the encoding limits in force.
/// Memory, version and eviction are settled when `f` returns; a hash left empty is removed.
fn with_hash<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&mut HashMut<'_>, HashLimits) -> Result<R, Error>,
) -> Result<R, Error> {
    let limits = ctx.shared.hash_limits();
    let key = ctx.key(key);
    let mut shard = ctx.lock(&key);
    let mut handle = shard
        .modify(&key, ctx.now, Some(Kind::Hash))
        .expect("created when absent");
    let mut hash = handle.hash_mut().ok_or(Error::from(WRONGTYPE))?;
    f(&mut hash, limits)
}

/// Runs `f` on the hash at `key` for reading; `None` when the key is missing.
fn read_hash<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(HashRef<'_>) -> R,
) -> Result<Option<R>, Error> {
    let key = ctx.key(key);
    let mut shard = ctx.lock(&key);
    match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => Ok(Some(f(as_hash(entry.value())?))),
        None => Ok(None),
    }
}

fn field_pairs(args: Args<'_>, cmd: &str) -> Result<(), Error> {
    if !args.len().is_multiple_of(2) {
        return Err(format!("ERR wrong number of arguments for '{cmd}' command").into());
    }
    Ok(())
}

fn set_fields(ctx: &Ctx<'_>, args: Args<'_>) -> Result<i64, Error> {
    with_hash(ctx, args.get(1), |h, limits| {
        let mut added = 0;
        for i in (2..args.len()).step_by(2) {
            added += i64::from(h.insert_with(args.get(i), args.get(i + 1), limits));
        }
        Ok(added)
    })
}

pub fn hset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    field_pairs(args, "hset")?;
    let added = set_fields(ctx, args)?;
    ctx.out.int(added);
    Ok(())
}

pub fn hmset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    field_pairs(args, "hmset")?;
    set_fields(ctx, args)?;
    ctx.out.ok();
    Ok(())
}

pub fn hsetnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let set = with_hash(ctx, args.get(1), |h, limits| {
        Ok(h.get(args.get(2)).is_none() && h.insert_with(args.get(2), args.get(3), limits))
    })?;
    ctx.out.int(i64::from(set));
    Ok(())
}

pub fn hget(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let field = match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => as_hash(entry.value())?.get(args.get(2)),
        None => None,
    };
    ctx.out.bulk_or_null(field);
    Ok(())
}

pub fn hmget(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let hash = match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => Some(as_hash(entry.value())?),
        None => None,
    };
    ctx.out.array(args.len() - 2);
    for field in args.iter_from(2) {
        ctx.out.bulk_or_null(hash.and_then(|h| h.get(field)));
    }
    Ok(())
}

pub fn hdel(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let removed = match shard.modify(&key, ctx.now, None) {
        None => 0,
        Some(mut handle) => {
            let mut hash = handle.hash_mut().ok_or(Error::from(WRONGTYPE))?;
            args.iter_from(2).filter(|f| hash.remove(f)).count()
        }
    };
    drop(shard);
    ctx.out.int(removed as i64);
    Ok(())
}

/// Writes the whole hash: as a map, its fields, or its values.
fn dump(ctx: &mut Ctx<'_>, args: Args<'_>, fields: bool, values: bool) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let Some(entry) = shard.get(&key, ctx.now, Lookup::Read) else {
        drop(shard);
        if fields && values {
            ctx.out.map(0);
        } else {
            ctx.out.array(0);
        }
        return Ok(());
    };
    let hash = as_hash(entry.value())?;
    if fields && values {
        ctx.out.map(hash.len());
    } else {
        ctx.out.array(hash.len());
    }
    for (f, v) in hash.iter() {
        if fields {
            ctx.out.bulk(f);
        }
        if values {
            ctx.out.bulk(v);
        }
    }
    Ok(())
}

pub fn hgetall(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    dump(ctx, args, true, true)
}

pub fn hkeys(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    dump(ctx, args, true, false)
}

pub fn hvals(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    dump(ctx, args, false, true)
}

pub fn hlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let len = read_hash(ctx, args.get(1), |h| h.len())?.unwrap_or(0);
    ctx.out.int(len as i64);
    Ok(())
}

pub fn hexists(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let found = read_hash(ctx, args.get(1), |h| h.get(args.get(2)).is_some())?.unwrap_or(false);
    ctx.out.int(i64::from(found));
    Ok(())
}

pub fn hstrlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let len = read_hash(ctx, args.get(1), |h| {
        h.get(args.get(2)).map_or(0, <[u8]>::len)
    })?;
    ctx.out.int(len.unwrap_or(0) as i64);
    Ok(())
}

pub fn hincrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let delta = int_arg(args.get(3))?;
    let field = args.get(2);
    let next = with_hash(ctx, args.get(1), |h, limits| {
        let current = match h.get(field) {
            Some(v) => dcache_protocol::request::parse_i64(v)
                .ok_or(Error::from("ERR hash value is not an integer"))?,
            None => 0,
        };
        let next = current.checked_add(delta).ok_or(Error::from(OVERFLOW))?;
        h.insert_with(field, itoa::Buffer::new().format(next).as_bytes(), limits);
        Ok(next)
    })?;
    ctx.out.int(next);
    Ok(())
}

pub fn hincrbyfloat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let delta = parse_float(args.get(3)).ok_or(Error::from(super::NOT_FLOAT))?;
    if !delta.is_finite() {
        return Err("ERR value is NaN or Infinity".into());
    }
    let field = args.get(2);
    let text = with_hash(ctx, args.get(1), |h, limits| {
        let current = match h.get(field) {
            Some(v) => parse_float(v).ok_or(Error::from("ERR hash value is not a float"))?,
            None => 0.0,
        };
        let next = current + delta;
        if !next.is_finite() {
            return Err("ERR increment would produce NaN or Infinity".into());
        }
        let text = super::format_float_value(next);
        h.insert_with(field, text.as_bytes(), limits);
        Ok(text)
    })?;
    ctx.out.bulk(text.as_bytes());
    Ok(())
}

/// Redis's message for a count that no reply could hold.
const OUT_OF_RANGE: &str = "ERR value is out of range";

/// Bytes one bulk string of `len` bytes takes in a reply: `$<len>\r\n<data>\r\n`.
fn bulk_size(len: usize) -> usize {
    let digits = len.checked_ilog10().unwrap_or(0) as usize + 1;
    len + digits + 5
}

/// HRANDFIELD key [count [WITHVALUES]].
///
/// The count comes from the client, so nothing is sized by it: a positive count picks at most
/// the hash's own fields, and a negative one (repetitions allowed) is written pick by pick. A
/// negative count whose reply could be larger than `proto-max-bulk-len` is refused with Redis's
/// out-of-range error rather than built: Redis would stream it for as long as it takes, which for
/// `-9223372036854775807` is forever and holds a worker (and the shard lock) all along.
pub fn hrandfield(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let count = if args.len() >= 3 {
        Some(super::random_count_arg(args.get(2))?)
    } else {
        None
    };
    let with_values = match args.len() {
        2 | 3 => false,
        4 if is(args.get(3), "WITHVALUES") => true,
        _ => return Err(super::SYNTAX.into()),
    };
    if with_values && count.is_some_and(|c| c.unsigned_abs() > (i64::MAX / 2) as u64) {
        return Err(OUT_OF_RANGE.into());
    }
    let mut rng = ctx.now ^ ctx.conn.info.id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let max_reply = ctx.conn.max_bulk_len;
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let hash = match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => Some(as_hash(entry.value())?),
        None => None,
    };
    let (Some(hash), Some(count)) = (hash, count) else {
        match (hash, count) {
            (Some(hash), None) => {
                let pick = (next() % hash.len() as u64) as usize;
                let field = hash.iter().nth(pick).map(|(f, _)| f);
                ctx.out.bulk_or_null(field);
            }
            (None, None) => ctx.out.null(),
            (_, Some(_)) => ctx.out.array(0),
        }
        return Ok(());
    };
    if count == 0 {
        ctx.out.array(0);
        return Ok(());
    }
    // Indexes into the hash for random access: sized by the hash, never by the count.
    let mut fields: Vec<(&[u8], &[u8])> = hash.iter().collect();
    let picks = if count > 0 {
        // Distinct fields: a partial Fisher-Yates shuffle over the hash's own fields. A count
        // that takes them all gives them in the hash's order, as Redis does.
        let take = usize::try_from(count).map_or(fields.len(), |c| c.min(fields.len()));
        let shuffled = if take < fields.len() { take } else { 0 };
        for i in 0..shuffled {
            let j = i + (next() % (fields.len() - i) as u64) as usize;
            fields.swap(i, j);
        }
        take
    } else {
        let largest = fields
            .iter()
            .map(|(f, v)| {
                bulk_size(f.len())
                    + if with_values {
                        bulk_size(v.len()) + 4
                    } else {
                        0
                    }
            })
            .max()
            .unwrap_or(0);
        let picks = count.unsigned_abs();
        if picks.saturating_mul(largest as u64) > max_reply as u64 {
            return Err(OUT_OF_RANGE.into());
        }
        picks as usize
    };
    let resp3_pairs = with_values && ctx.out.resp3();
    ctx.out.array(if with_values && !resp3_pairs {
        picks * 2
    } else {
        picks
    });
    for i in 0..picks {
        let (f, v) = if count > 0 {
            fields[i]
        } else {
            fields[(next() % fields.len() as u64) as usize]
        };
        if resp3_pairs {
            ctx.out.array(2);
        }
        ctx.out.bulk(f);
        if with_values {
            ctx.out.bulk(v);
        }
    }
    Ok(())
}

/// HSCAN returns the whole hash in one round (cursor 0), which Redis's contract allows and which
/// Redis itself does for small hashes (in their insertion order, as here).
pub fn hscan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    cursor_arg(args.get(2))?;
    let opts = scan_options(args, 3, false, true)?;
    let pairs = read_hash(ctx, args.get(1), |h| {
        h.iter()
            .filter(|(f, _)| opts.pattern.is_none_or(|p| glob_match(p, f)))
            .map(|(f, v)| (f.to_vec(), v.to_vec()))
            .collect::<Vec<_>>()
    })?
    .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk(b"0");
    ctx.out
        .array(pairs.len() * if opts.novalues { 1 } else { 2 });
    for (f, v) in &pairs {
        ctx.out.bulk(f);
        if !opts.novalues {
            ctx.out.bulk(v);
        }
    }
    Ok(())
}
