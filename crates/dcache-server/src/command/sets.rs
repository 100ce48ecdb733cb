//! Set commands: unordered unique members under one key, and the algebra between sets.
//!
//! Commands over several keys (SINTER, SUNIONSTORE, SMOVE, …) lock every shard their keys live
//! in, in index order ([`Ctx::lock_many`]), so that they see and change the sets at once; a
//! cluster has already refused keys of several slots (`-CROSSSLOT`). Replies are written after
//! the locks are released.

use dcache_protocol::Args;
use dcache_store::{Key, Kind, Lookup, MultiLock, SetLimits, SetRef, SetValue, Value, glob_match};

use super::keys::{cursor_arg, scan_options};
use super::{CmdResult, Ctx, Error, SYNTAX, WRONGTYPE, int_arg};

fn as_set(value: Value<'_>) -> Result<SetRef<'_>, Error> {
    match value {
        Value::Set(s) => Ok(s),
        _ => Err(WRONGTYPE.into()),
    }
}

/// Runs `f` on the set at `key` for reading; `None` when the key is missing.
fn read_set<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(SetRef<'_>) -> R,
) -> Result<Option<R>, Error> {
    let key = ctx.key(key);
    let mut shard = ctx.lock(&key);
    match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => Ok(Some(f(as_set(entry.value())?))),
        None => Ok(None),
    }
}

/// Writes members as a set reply (`~` in RESP3).
fn reply_members<M: AsRef<[u8]>>(ctx: &mut Ctx<'_>, members: impl ExactSizeIterator<Item = M>) {
    ctx.out.set(members.len());
    for m in members {
        ctx.out.bulk(m.as_ref());
    }
}

/// A xorshift generator for the random picks, seeded by the time, the connection and the
/// command count, so that two calls in one millisecond differ.
fn rng(ctx: &Ctx<'_>) -> impl FnMut() -> u64 + use<> {
    let mut state = (ctx.now ^ ctx.conn.info.id.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_add(
        ctx.shared
            .stats
            .total_commands()
            .wrapping_mul(0xbf58_476d_1ce4_e5b9),
    ) | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

pub fn sadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let limits = ctx.shared.store.set_limits();
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let mut handle = shard
        .modify(&key, ctx.now, Some(Kind::Set))
        .expect("created when absent");
    let mut set = handle.set_mut().ok_or(Error::from(WRONGTYPE))?;
    let hint = args.len() - 2;
    if set.is_empty() {
        // Just created (an empty set is never kept): the encoding Redis picks for these members.
        set.replace(SetValue::for_members(args.get(2), hint, &limits));
    } else {
        set.reserve(hint, &limits);
    }
    let added = args
        .iter_from(2)
        .filter(|m| set.insert_with(m, &limits))
        .count();
    drop(handle);
    drop(shard);
    ctx.out.int(added as i64);
    Ok(())
}

pub fn srem(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let removed = match shard.modify(&key, ctx.now, None) {
        None => 0,
        Some(mut handle) => {
            let mut set = handle.set_mut().ok_or(Error::from(WRONGTYPE))?;
            args.iter_from(2).filter(|m| set.remove(m)).count()
        }
    };
    drop(shard);
    ctx.out.int(removed as i64);
    Ok(())
}

pub fn smembers(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let members = read_set(ctx, args.get(1), |s| {
        s.iter().map(|m| m.to_vec()).collect::<Vec<_>>()
    })?
    .unwrap_or_default();
    reply_members(ctx, members.iter());
    Ok(())
}

pub fn sismember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let found = read_set(ctx, args.get(1), |s| s.contains(args.get(2)))?.unwrap_or(false);
    ctx.out.int(i64::from(found));
    Ok(())
}

pub fn smismember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let found = read_set(ctx, args.get(1), |s| {
        args.iter_from(2).map(|m| s.contains(m)).collect::<Vec<_>>()
    })?
    .unwrap_or_else(|| vec![false; args.len() - 2]);
    ctx.out.array(found.len());
    for f in found {
        ctx.out.int(i64::from(f));
    }
    Ok(())
}

pub fn scard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let len = read_set(ctx, args.get(1), |s| s.len())?.unwrap_or(0);
    ctx.out.int(len as i64);
    Ok(())
}

/// SPOP key [count].
pub fn spop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let count = match args.len() {
        2 => None,
        3 => {
            let n = int_arg(args.get(2))?;
            if n < 0 {
                return Err("ERR value is out of range, must be positive".into());
            }
            Some(n as u64)
        }
        _ => return Err(SYNTAX.into()),
    };
    let mut next = rng(ctx);
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let Some(mut handle) = shard.modify(&key, ctx.now, None) else {
        drop(shard);
        match count {
            None => ctx.out.null(),
            Some(_) => ctx.out.set(0),
        }
        return Ok(());
    };
    if !matches!(handle.value(), Value::Set(_)) {
        return Err(WRONGTYPE.into());
    }
    let set = match count {
        Some(0) => None,
        _ => handle.set_mut(),
    };
    let Some(mut set) = set else {
        drop(handle);
        drop(shard);
        ctx.out.set(0);
        return Ok(());
    };
    let take = count.map_or(1, |n| n.min(set.len() as u64) as usize);
    let mut popped = Vec::with_capacity(take);
    if take == set.len() {
        popped.extend(set.iter().map(|m| m.to_vec()));
        popped.iter().for_each(|m| {
            set.remove(m);
        });
    } else {
        for _ in 0..take {
            let m = set.pick(&mut next).expect("not empty").to_vec();
            set.remove(&m);
            popped.push(m);
        }
    }
    drop(handle);
    drop(shard);
    match count {
        None => ctx.out.bulk(&popped[0]),
        Some(_) => reply_members(ctx, popped.iter()),
    }
    Ok(())
}

/// Redis's message for a count that no reply could hold.
const OUT_OF_RANGE: &str = "ERR value is out of range";

/// SRANDMEMBER key [count]. A negative count repeats picks; like HRANDFIELD, one whose reply
/// could not fit in `proto-max-bulk-len` is refused rather than written pick by pick for ever.
pub fn srandmember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let count = match args.len() {
        2 => None,
        3 => Some(super::random_count_arg(args.get(2))?),
        _ => return Err(SYNTAX.into()),
    };
    let mut next = rng(ctx);
    let max_reply = ctx.conn.max_bulk_len;
    let picks = read_set(ctx, args.get(1), |s| -> Result<Vec<Vec<u8>>, Error> {
        match count {
            None => Ok(s.pick(&mut next).map(|m| m.to_vec()).into_iter().collect()),
            Some(0) => Ok(Vec::new()),
            Some(n) if n > 0 => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n >= s.len() {
                    return Ok(s.iter().map(|m| m.to_vec()).collect());
                }
                // Distinct members: a partial Fisher-Yates shuffle of the set's own members.
                let mut all: Vec<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
                for i in 0..n {
                    let j = i + (next() % (all.len() - i) as u64) as usize;
                    all.swap(i, j);
                }
                all.truncate(n);
                Ok(all)
            }
            Some(n) => {
                let largest = s.iter().map(|m| m.len() + 16).max().unwrap_or(0);
                let n = n.unsigned_abs();
                if n.saturating_mul(largest as u64) > max_reply as u64 {
                    return Err(OUT_OF_RANGE.into());
                }
                Ok((0..n)
                    .map(|_| s.pick(&mut next).expect("not empty").to_vec())
                    .collect())
            }
        }
    })?
    .transpose()?;
    match (count, picks) {
        (None, None) => ctx.out.null(),
        (None, Some(p)) => ctx.out.bulk_or_null(p.first().map(Vec::as_slice)),
        (Some(_), p) => {
            let p = p.unwrap_or_default();
            ctx.out.array(p.len());
            for m in &p {
                ctx.out.bulk(m);
            }
        }
    }
    Ok(())
}

/// SMOVE source destination member.
pub fn smove(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let limits = ctx.shared.store.set_limits();
    let (src, dst, member) = (ctx.key(args.get(1)), ctx.key(args.get(2)), args.get(3));
    let mut locked = ctx.lock_many(&[src, dst]);
    let moved = smove_locked(&mut locked, &src, &dst, member, &limits, ctx.now)?;
    drop(locked);
    ctx.out.int(i64::from(moved));
    Ok(())
}

fn smove_locked(
    locked: &mut MultiLock<'_>,
    src: &Key<'_>,
    dst: &Key<'_>,
    member: &[u8],
    limits: &SetLimits,
    now: u64,
) -> Result<bool, Error> {
    // Redis's order: a missing source answers 0 before any type is checked.
    let Some(entry) = locked.shard(src).get(src, now, Lookup::Write) else {
        return Ok(false);
    };
    let in_source = as_set(entry.value())?.contains(member);
    if let Some(entry) = locked.shard(dst).get(dst, now, Lookup::Write) {
        as_set(entry.value())?;
    }
    if src.bytes == dst.bytes || !in_source {
        return Ok(in_source);
    }
    let mut from = locked
        .shard(src)
        .modify(src, now, None)
        .expect("checked above");
    from.set_mut().expect("checked above").remove(member);
    drop(from);
    let mut to = locked
        .shard(dst)
        .modify(dst, now, Some(Kind::Set))
        .expect("created when absent");
    let mut set = to.set_mut().expect("checked above");
    if set.is_empty() {
        set.replace(SetValue::for_members(member, 1, limits));
    }
    set.insert_with(member, limits);
    Ok(true)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// What an operation found: the members, or an error (a key of another type).
type Found = Result<Vec<Vec<u8>>, Error>;

/// Computes `op` over the sets at `keys` (a missing key is an empty set) with their shards
/// locked; every key is type-checked first, as Redis does. An intersection stops at `limit`
/// members when one is given (SINTERCARD).
fn compute(
    locked: &mut MultiLock<'_>,
    keys: &[Key<'_>],
    op: Op,
    limits: &SetLimits,
    limit: usize,
    now: u64,
) -> Found {
    let mut lens = Vec::with_capacity(keys.len());
    for key in keys {
        lens.push(match locked.shard(key).get(key, now, Lookup::Read) {
            Some(entry) => Some(as_set(entry.value())?.len()),
            None => None,
        });
    }
    // Borrows one shard at a time: `locked.shard` is `&mut`.
    let mut with = |key: &Key<'_>, f: &mut dyn FnMut(SetRef<'_>)| {
        if let Some(entry) = locked.shard(key).get(key, now, Lookup::Peek)
            && let Value::Set(s) = entry.value()
        {
            f(s);
        }
    };
    match op {
        Op::Inter => {
            if lens.iter().any(Option::is_none) {
                return Ok(Vec::new());
            }
            // From the smallest set, keeping what every other set has.
            let smallest = (0..keys.len()).min_by_key(|&i| lens[i]).unwrap_or(0);
            let mut members = Vec::new();
            with(&keys[smallest], &mut |s| {
                members = s.iter().map(|m| m.to_vec()).collect();
            });
            for (i, key) in keys.iter().enumerate() {
                if i != smallest && keys[i].bytes != keys[smallest].bytes {
                    with(key, &mut |s| members.retain(|m| s.contains(m)));
                }
            }
            members.truncate(limit);
            Ok(members)
        }
        Op::Union | Op::Diff => {
            // Built as Redis builds its result set, so that small results come in the same
            // order (an intset's ascending, a listpack's as added).
            let mut result = SetValue::default();
            with(&keys[0], &mut |s| {
                s.iter().for_each(|m| {
                    result.insert_with(&m, limits);
                });
            });
            for key in &keys[1..] {
                if op == Op::Diff && result.is_empty() {
                    break;
                }
                with(key, &mut |s| {
                    s.iter().for_each(|m| {
                        if op == Op::Union {
                            result.insert_with(&m, limits);
                        } else {
                            result.remove(&m);
                        }
                    });
                });
            }
            Ok(result.iter().map(|m| m.to_vec()).collect())
        }
    }
}

/// SINTER / SUNION / SDIFF key [key …].
fn combine(ctx: &mut Ctx<'_>, args: Args<'_>, op: Op) -> CmdResult {
    let limits = ctx.shared.store.set_limits();
    let keys: Vec<Key<'_>> = args.iter_from(1).map(|k| ctx.key(k)).collect();
    let mut locked = ctx.lock_many(&keys);
    let members = compute(&mut locked, &keys, op, &limits, usize::MAX, ctx.now)?;
    drop(locked);
    reply_members(ctx, members.iter());
    Ok(())
}

pub fn sinter(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine(ctx, args, Op::Inter)
}

pub fn sunion(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine(ctx, args, Op::Union)
}

pub fn sdiff(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine(ctx, args, Op::Diff)
}

/// SINTERSTORE / SUNIONSTORE / SDIFFSTORE destination key [key …]: the result replaces the
/// destination whatever it held (and its TTL); an empty result deletes it.
fn combine_store(ctx: &mut Ctx<'_>, args: Args<'_>, op: Op) -> CmdResult {
    let limits = ctx.shared.store.set_limits();
    let dst = ctx.key(args.get(1));
    let sources: Vec<Key<'_>> = args.iter_from(2).map(|k| ctx.key(k)).collect();
    // The result is no larger than its sources together: room for that is made first, with no
    // shard locked (dispatch admitted only the arguments).
    let mut size = 0;
    for key in &sources {
        size += ctx
            .lock(key)
            .get(key, ctx.now, Lookup::Peek)
            .map_or(0, |e| e.memory_usage());
    }
    let _room = ctx.admit(&dst, size)?;
    let mut all = sources.clone();
    all.push(dst);
    let mut locked = ctx.lock_many(&all);
    let members = compute(&mut locked, &sources, op, &limits, usize::MAX, ctx.now)?;
    let shard = locked.shard(&dst);
    if members.is_empty() {
        shard.delete(&dst, ctx.now);
    } else {
        let mut result = SetValue::default();
        for m in &members {
            result.insert_with(m, &limits);
        }
        shard.set(&dst, Value::Set(result.view()), None, false, ctx.now);
    }
    drop(locked);
    ctx.out.int(members.len() as i64);
    Ok(())
}

pub fn sinterstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine_store(ctx, args, Op::Inter)
}

pub fn sunionstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine_store(ctx, args, Op::Union)
}

pub fn sdiffstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine_store(ctx, args, Op::Diff)
}

/// SINTERCARD numkeys key [key …] [LIMIT limit].
pub fn sintercard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let numkeys = int_arg(args.get(1))
        .ok()
        .filter(|&n| n > 0)
        .ok_or(Error::from("ERR numkeys should be greater than 0"))?;
    if numkeys > args.len() as i64 - 2 {
        return Err("ERR Number of keys can't be greater than number of args".into());
    }
    let numkeys = numkeys as usize;
    let mut limit = usize::MAX;
    let mut i = 2 + numkeys;
    while i < args.len() {
        if super::is(args.get(i), "LIMIT") && i + 1 < args.len() {
            let n = int_arg(args.get(i + 1))
                .ok()
                .filter(|&n| n >= 0)
                .ok_or(Error::from("ERR LIMIT can't be negative"))?;
            limit = if n == 0 { usize::MAX } else { n as usize };
            i += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let limits = ctx.shared.store.set_limits();
    let keys: Vec<Key<'_>> = (2..2 + numkeys).map(|i| ctx.key(args.get(i))).collect();
    let mut locked = ctx.lock_many(&keys);
    let members = compute(&mut locked, &keys, Op::Inter, &limits, limit, ctx.now)?;
    drop(locked);
    ctx.out.int(members.len() as i64);
    Ok(())
}

/// SSCAN returns the whole set in one round (cursor 0), which Redis's contract allows and which
/// Redis itself does for small sets.
pub fn sscan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    cursor_arg(args.get(2))?;
    // Redis's order: the cursor, then the key (a missing one answers an empty scan whatever
    // the options), then the options.
    let Some(members) = read_set(ctx, args.get(1), |s| {
        s.iter().map(|m| m.to_vec()).collect::<Vec<_>>()
    })?
    else {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
        return Ok(());
    };
    let opts = scan_options(args, 3, false, false)?;
    let members: Vec<_> = members
        .into_iter()
        .filter(|m| opts.pattern.is_none_or(|p| glob_match(p, m)))
        .collect();
    ctx.out.array(2);
    ctx.out.bulk(b"0");
    ctx.out.array(members.len());
    for m in &members {
        ctx.out.bulk(m);
    }
    Ok(())
}
