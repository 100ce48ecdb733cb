//! String commands: GET, SET and its variants, multi-key MGET/MSET, ranges and counters.

use dcache_protocol::Args;
use dcache_store::{Kind, Lookup, Value};

use super::{
    CmdResult, Ctx, Error, NOT_FLOAT, OVERFLOW, SYNTAX, WRONGTYPE, int_arg, is, parse_float,
};

/// The bytes of a string value, or WRONGTYPE.
pub(super) fn as_str(value: Value<'_>) -> Result<&[u8], Error> {
    match value {
        Value::Str(s) => Ok(s),
        _ => Err(WRONGTYPE.into()),
    }
}

/// A relative expiry of `amount` units of `unit_ms` from `now`, or an absolute one, as an
/// absolute Unix time in milliseconds. Refuses non-positive and overflowing times with Redis's
/// message for `cmd`.
pub(super) fn expire_time(
    amount: &[u8],
    unit_ms: i64,
    absolute: bool,
    now: u64,
    cmd: &str,
) -> Result<u64, Error> {
    let n = int_arg(amount)?;
    let invalid = || Error::from(format!("ERR invalid expire time in '{cmd}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    let ms = n.checked_mul(unit_ms).ok_or_else(invalid)?;
    let at = if absolute {
        Some(ms)
    } else {
        ms.checked_add(now as i64)
    };
    at.map(|t| t as u64).ok_or_else(invalid)
}

fn check_size(ctx: &Ctx<'_>, len: usize) -> CmdResult {
    if len > ctx.conn.max_bulk_len {
        return Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)".into());
    }
    Ok(())
}

pub fn get(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => ctx.out.bulk(as_str(entry.value())?),
        None => ctx.out.null(),
    }
    Ok(())
}

/// How an expiry argument counts time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl Unit {
    fn parse(word: &[u8]) -> Option<Unit> {
        match word.to_ascii_uppercase().as_slice() {
            b"EX" => Some(Unit::Ex),
            b"PX" => Some(Unit::Px),
            b"EXAT" => Some(Unit::ExAt),
            b"PXAT" => Some(Unit::PxAt),
            _ => None,
        }
    }

    /// Milliseconds per unit, and whether the time is absolute.
    fn scale(self) -> (i64, bool) {
        match self {
            Unit::Ex => (1000, false),
            Unit::Px => (1, false),
            Unit::ExAt => (1000, true),
            Unit::PxAt => (1, true),
        }
    }
}

/// The options SET and GETEX share, parsed the way Redis's `parseExtendedStringArgumentsOrReply`
/// does: an option may repeat (the last expiry wins), options that contradict each other are a
/// syntax error, and the expiry's value is only read later, after the syntax is known good.
#[derive(Default)]
struct SetOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    expiry: Option<(Unit, &'a [u8])>,
}

/// Parses the options from `from` on; `set` selects SET's options (NX, XX, GET, KEEPTTL), else
/// GETEX's (PERSIST).
fn parse_set_options(args: Args<'_>, from: usize, set: bool) -> Result<SetOptions<'_>, Error> {
    let mut opts = SetOptions::default();
    let mut i = from;
    while i < args.len() {
        let arg = args.get(i);
        let unit = opts.expiry.map(|(u, _)| u);
        if set && is(arg, "NX") && !opts.xx {
            opts.nx = true;
        } else if set && is(arg, "XX") && !opts.nx {
            opts.xx = true;
        } else if set && is(arg, "GET") {
            opts.get = true;
        } else if set && is(arg, "KEEPTTL") && unit.is_none() {
            opts.keep_ttl = true;
        } else if !set && is(arg, "PERSIST") && unit.is_none() {
            opts.persist = true;
        } else if let Some(next) = Unit::parse(arg)
            .filter(|u| unit.is_none_or(|had| had == *u))
            .filter(|_| !opts.keep_ttl && !opts.persist && i + 1 < args.len())
        {
            opts.expiry = Some((next, args.get(i + 1)));
            i += 1;
        } else {
            return Err(SYNTAX.into());
        }
        i += 1;
    }
    Ok(opts)
}

impl SetOptions<'_> {
    /// The absolute expiry the options ask for, in Unix milliseconds.
    fn expire_at(&self, now: u64, cmd: &str) -> Result<Option<u64>, Error> {
        self.expiry
            .map(|(unit, amount)| {
                let (unit_ms, absolute) = unit.scale();
                expire_time(amount, unit_ms, absolute, now, cmd)
            })
            .transpose()
    }
}

pub fn set(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let opts = parse_set_options(args, 3, true)?;
    let expire_at = opts.expire_at(ctx.now, "set")?;
    let value = args.get(2);
    check_size(ctx, value.len())?;
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    // A plain SET needs no look-up before it writes.
    let (write, old) = if opts.nx || opts.xx || opts.get {
        let existing = shard.get(&key, ctx.now, Lookup::Write);
        let old = match existing {
            Some(entry) if opts.get => Some(as_str(entry.value())?.to_vec()),
            _ => None,
        };
        let exists = existing.is_some();
        (!((opts.nx && exists) || (opts.xx && !exists)), old)
    } else {
        (true, None)
    };
    if write {
        shard.set(&key, Value::Str(value), expire_at, opts.keep_ttl, ctx.now);
    }
    drop(shard);
    match (opts.get, write) {
        (true, _) => ctx.out.bulk_or_null(old.as_deref()),
        (false, true) => ctx.out.ok(),
        (false, false) => ctx.out.null(),
    }
    Ok(())
}

pub fn setnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    check_size(ctx, args.get(2).len())?;
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let exists = shard.get(&key, ctx.now, Lookup::Write).is_some();
    if !exists {
        shard.set(&key, Value::Str(args.get(2)), None, false, ctx.now);
    }
    ctx.out.int(i64::from(!exists));
    Ok(())
}

fn set_with_expiry(ctx: &mut Ctx<'_>, args: Args<'_>, unit_ms: i64, cmd: &str) -> CmdResult {
    let expire_at = expire_time(args.get(2), unit_ms, false, ctx.now, cmd)?;
    check_size(ctx, args.get(3).len())?;
    let key = ctx.key(args.get(1));
    ctx.lock(&key).set(
        &key,
        Value::Str(args.get(3)),
        Some(expire_at),
        false,
        ctx.now,
    );
    ctx.out.ok();
    Ok(())
}

pub fn setex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    set_with_expiry(ctx, args, 1000, "setex")
}

pub fn psetex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    set_with_expiry(ctx, args, 1, "psetex")
}

pub fn getex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    // Redis's order: the syntax, then the key (missing: nil, whatever the expiry says), then its
    // type, and only then the expiry's value.
    let opts = parse_set_options(args, 2, false)?;
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let Some(entry) = shard.get(&key, ctx.now, Lookup::Read) else {
        drop(shard);
        ctx.out.null();
        return Ok(());
    };
    let value = as_str(entry.value())?.to_vec();
    match opts.expire_at(ctx.now, "getex")? {
        Some(at) if at <= ctx.now => {
            shard.delete(&key, ctx.now);
        }
        Some(at) => {
            shard.set_expire(&key, Some(at), ctx.now);
        }
        None if opts.persist => {
            shard.set_expire(&key, None, ctx.now);
        }
        None => {}
    }
    drop(shard);
    ctx.out.bulk(&value);
    Ok(())
}

pub fn getdel(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    match shard.get(&key, ctx.now, Lookup::Read) {
        None => ctx.out.null(),
        Some(entry) => {
            as_str(entry.value())?;
            if let Some(entry) = shard.remove(&key, ctx.now) {
                ctx.out.bulk(as_str(entry.value.as_value())?);
            }
        }
    }
    Ok(())
}

pub fn getset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    check_size(ctx, args.get(2).len())?;
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let old = match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => Some(as_str(entry.value())?.to_vec()),
        None => None,
    };
    shard.set(&key, Value::Str(args.get(2)), None, false, ctx.now);
    drop(shard);
    ctx.out.bulk_or_null(old.as_deref());
    Ok(())
}

pub fn mget(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let keys: Vec<_> = args.iter_from(1).map(|k| ctx.key(k)).collect();
    let mut locked = ctx.lock_many(&keys);
    ctx.out.array(keys.len());
    for key in &keys {
        match locked
            .shard(key)
            .get(key, ctx.now, Lookup::Read)
            .map(|e| e.value())
        {
            Some(Value::Str(s)) => ctx.out.bulk(s),
            _ => ctx.out.null(),
        }
    }
    Ok(())
}

fn mset_pairs<'a>(
    ctx: &Ctx<'_>,
    args: Args<'a>,
    cmd: &str,
) -> Result<Vec<(dcache_store::Key<'a>, &'a [u8])>, Error> {
    if args.len().is_multiple_of(2) {
        return Err(format!("ERR wrong number of arguments for '{cmd}' command").into());
    }
    let pairs: Vec<_> = (1..args.len())
        .step_by(2)
        .map(|i| (ctx.key(args.get(i)), args.get(i + 1)))
        .collect();
    for (_, value) in &pairs {
        check_size(ctx, value.len())?;
    }
    Ok(pairs)
}

/// Sets every pair atomically (all the shards involved are locked together). With `only_new`,
/// sets nothing if any key exists. Returns whether it set.
fn mset_all(ctx: &mut Ctx<'_>, args: Args<'_>, cmd: &str, only_new: bool) -> Result<bool, Error> {
    let pairs = mset_pairs(ctx, args, cmd)?;
    let keys: Vec<_> = pairs.iter().map(|(k, _)| *k).collect();
    let mut locked = ctx.lock_many(&keys);
    if only_new
        && keys
            .iter()
            .any(|k| locked.shard(k).get(k, ctx.now, Lookup::Peek).is_some())
    {
        return Ok(false);
    }
    for (key, value) in &pairs {
        locked
            .shard(key)
            .set(key, Value::Str(value), None, false, ctx.now);
    }
    Ok(true)
}

pub fn mset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    mset_all(ctx, args, "mset", false)?;
    ctx.out.ok();
    Ok(())
}

pub fn msetnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let set = mset_all(ctx, args, "msetnx", true)?;
    ctx.out.int(i64::from(set));
    Ok(())
}

pub fn append(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let suffix = args.get(2);
    let max = ctx.conn.max_bulk_len;
    let mut shard = ctx.lock(&key);
    let mut value = shard
        .modify(&key, ctx.now, Some(Kind::Str))
        .expect("created when absent");
    let current = as_str(value.value())?;
    if current.len() + suffix.len() > max {
        return Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)".into());
    }
    let mut grown = Vec::with_capacity(current.len() + suffix.len());
    grown.extend_from_slice(current);
    grown.extend_from_slice(suffix);
    let len = grown.len();
    value.set_str(&grown);
    drop(value);
    drop(shard);
    ctx.out.int(len as i64);
    Ok(())
}

pub fn strlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let len = match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => as_str(entry.value())?.len(),
        None => 0,
    };
    ctx.out.int(len as i64);
    Ok(())
}

/// Redis's range rule, step for step (`getrangeCommand`): negative indices count from the end;
/// both negative with the start after the end is empty; then each end is clamped into the
/// string, so an end far before the start still selects the first byte (`0 -100` gives the first
/// byte, as Redis 7 answers).
pub(super) fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let len = len as i64;
    // `len + x` cannot overflow: len >= 0 and x < 0.
    let start = if start < 0 { len + start } else { start }.max(0);
    let end = if end < 0 { len + end } else { end }.max(0).min(len - 1);
    (len > 0 && start <= end).then(|| (start as usize, end as usize + 1))
}

pub fn getrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let start = int_arg(args.get(2))?;
    let end = int_arg(args.get(3))?;
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let Some(entry) = shard.get(&key, ctx.now, Lookup::Read) else {
        drop(shard);
        ctx.out.bulk(b"");
        return Ok(());
    };
    let s = as_str(entry.value())?;
    match clamp_range(start, end, s.len()) {
        Some((from, to)) => ctx.out.bulk(&s[from..to]),
        None => ctx.out.bulk(b""),
    }
    Ok(())
}

pub fn setrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let offset = int_arg(args.get(2))?;
    if offset < 0 {
        return Err("ERR offset is out of range".into());
    }
    let offset = offset as usize;
    let patch = args.get(3);
    let key = ctx.key(args.get(1));
    let _room = if !patch.is_empty() && offset.saturating_add(patch.len()) <= ctx.conn.max_bulk_len
    {
        Some(ctx.admit(&key, offset)?)
    } else {
        None
    };
    let mut shard = ctx.lock(&key);
    // Redis's order: the key's type, then an empty patch (which changes nothing), then the size.
    let len = match shard.get(&key, ctx.now, Lookup::Write) {
        Some(entry) => as_str(entry.value())?.len(),
        None => 0,
    };
    if patch.is_empty() {
        drop(shard);
        ctx.out.int(len as i64);
        return Ok(());
    }
    if offset.saturating_add(patch.len()) > ctx.conn.max_bulk_len {
        return Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)".into());
    }
    let mut value = shard
        .modify(&key, ctx.now, Some(Kind::Str))
        .expect("created when absent");
    let mut bytes = as_str(value.value())?.to_vec();
    if bytes.len() < offset + patch.len() {
        bytes.resize(offset + patch.len(), 0);
    }
    bytes[offset..offset + patch.len()].copy_from_slice(patch);
    let len = bytes.len();
    value.set_str(&bytes);
    drop(value);
    drop(shard);
    ctx.out.int(len as i64);
    Ok(())
}

/// Adds `delta` to the integer at `key` (0 when absent), keeping its TTL.
fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> CmdResult {
    let key = ctx.key(key);
    let mut shard = ctx.lock(&key);
    let current = match shard.get(&key, ctx.now, Lookup::Write) {
        Some(entry) => int_arg(as_str(entry.value())?)?,
        None => 0,
    };
    let next = current.checked_add(delta).ok_or(Error::from(OVERFLOW))?;
    let mut buf = itoa::Buffer::new();
    shard.set(
        &key,
        Value::Str(buf.format(next).as_bytes()),
        None,
        true,
        ctx.now,
    );
    drop(shard);
    ctx.out.int(next);
    Ok(())
}

pub fn incr(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    incr_by(ctx, args.get(1), 1)
}

pub fn decr(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    incr_by(ctx, args.get(1), -1)
}

pub fn incrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let delta = int_arg(args.get(2))?;
    incr_by(ctx, args.get(1), delta)
}

pub fn decrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let delta = int_arg(args.get(2))?;
    if delta == i64::MIN {
        return Err("ERR decrement would overflow".into());
    }
    incr_by(ctx, args.get(1), -delta)
}

pub fn incrbyfloat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    // Redis's order: the key's type, its value, then the increment.
    let current = match shard.get(&key, ctx.now, Lookup::Write) {
        Some(entry) => parse_float(as_str(entry.value())?).ok_or(Error::from(NOT_FLOAT))?,
        None => 0.0,
    };
    let delta = parse_float(args.get(2)).ok_or(Error::from(NOT_FLOAT))?;
    let next = current + delta;
    if !next.is_finite() {
        return Err("ERR increment would produce NaN or Infinity".into());
    }
    let text = super::format_float_value(next);
    shard.set(&key, Value::Str(text.as_bytes()), None, true, ctx.now);
    drop(shard);
    ctx.out.bulk(text.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::clamp_range;

    #[test]
    fn ranges_follow_redis() {
        let s = "This is a string";
        let table = [
            ((0, 3), Some("This")),
            ((-3, -1), Some("ing")),
            ((0, -1), Some(s)),
            ((10, 100), Some("string")),
            ((5, 3), None),
            ((-100, 3), Some("This")),
            ((100, 200), None),
            ((0, -100), Some("T")),
            ((-9223372036854775807, -9223372036854775807), Some("T")),
            ((-100, -200), None),
            ((-1, -2), None),
            ((i64::MIN, i64::MAX), Some(s)),
            ((i64::MAX, i64::MIN), None),
        ];
        for ((start, end), expected) in table {
            let got = clamp_range(start, end, s.len()).map(|(a, b)| &s[a..b]);
            assert_eq!(got, expected, "{start}..{end}");
        }
    }
}
