//! Sorted set commands: members ordered by score, for leaderboards, priority queues and time
//! indexes. Ranges (by rank, score or member) live in `zsets/range.rs`, the set algebra
//! (ZUNION, ZINTER, ZDIFF and their STORE forms) in `zsets/algebra.rs`.
//!
//! Scores parse as Redis parses them (`strtod`: `inf`, exponents; no NaN, no overflow) and print
//! as Redis 7.2 prints doubles (`ReplyWriter::double`). Writes go through the shard's `Modify`
//! handle, which settles memory and the version and deletes a set that a command empties; the
//! blocking forms (BZPOPMIN, BZPOPMAX, BZMPOP) are not here.

mod algebra;
mod range;

pub use algebra::{zdiff, zdiffstore, zinter, zintercard, zinterstore, zunion, zunionstore};
pub use range::{
    zcount, zlexcount, zrange, zrangebylex, zrangebyscore, zrangestore, zremrangebylex,
    zremrangebyrank, zremrangebyscore, zrevrange, zrevrangebylex, zrevrangebyscore,
};

use dcache_protocol::{Args, ReplyWriter};
use dcache_store::{Kind, Lookup, Value, ZSetLimits, ZSetMut, ZSetRef, ZSetValue, glob_match};

use super::keys::{cursor_arg, scan_options};
use super::{CmdResult, Ctx, Error, NOT_FLOAT, SYNTAX, WRONGTYPE, is};

const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";

pub(super) fn as_zset(value: Value<'_>) -> Result<ZSetRef<'_>, Error> {
    match value {
        Value::ZSet(z) => Ok(z),
        _ => Err(WRONGTYPE.into()),
    }
}

fn limits(ctx: &Ctx<'_>) -> ZSetLimits {
    ctx.shared.zset_limits()
}

/// Runs `f` on the sorted set at `key` for reading; `None` when the key is missing.
pub(super) fn read_zset<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(ZSetRef<'_>) -> R,
) -> Result<Option<R>, Error> {
    let key = ctx.key(key);
    let mut shard = ctx.lock(&key);
    match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => Ok(Some(f(as_zset(entry.value())?))),
        None => Ok(None),
    }
}

/// Runs `f` on the sorted set at `key` for changing; `None` when the key is missing. A set that
/// `f` leaves empty is deleted.
fn write_zset<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&mut ZSetMut<'_>) -> Result<R, Error>,
) -> Result<Option<R>, Error> {
    let key = ctx.key(key);
    let mut shard = ctx.lock(&key);
    let Some(mut handle) = shard.modify(&key, ctx.now, None) else {
        return Ok(None);
    };
    let mut z = handle.zset_mut().ok_or(Error::from(WRONGTYPE))?;
    f(&mut z).map(Some)
}

/// Parses a score as Redis's `getDoubleFromObject` does: `strtod` over the whole argument, no
/// leading space, no NaN, and no overflow or underflow to zero (`1e400`, `1e-400`).
#[must_use]
pub fn parse_score(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace() || c == '\x0b') {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("nan") {
        return None;
    }
    let value: f64 = lower.parse().ok()?;
    if value.is_infinite() && !lower.contains("inf") {
        return None;
    }
    if value == 0.0 {
        let mantissa = lower.split('e').next().unwrap_or("");
        if mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            return None;
        }
    }
    Some(value)
}

/// Writes members (with their scores): RESP2 flattens the pairs, RESP3 nests them.
fn write_members<'a>(
    out: &mut ReplyWriter<'_>,
    members: impl ExactSizeIterator<Item = (&'a [u8], f64)>,
    with_scores: bool,
) {
    let nested = with_scores && out.resp3();
    out.array(if with_scores && !nested {
        members.len() * 2
    } else {
        members.len()
    });
    for (m, s) in members {
        if nested {
            out.array(2);
        }
        out.bulk(m);
        if with_scores {
            out.double(s);
        }
    }
}

/// ZADD's options.
#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
}

/// What adding one member did.
enum Added {
    New(f64),
    Updated(f64),
    /// Changed nothing, but counts as processed (the score was already that).
    Same(f64),
    Skipped,
}

/// Redis's `zsetAdd`: one member under ZADD's options.
fn add_one(
    z: &mut ZSetMut<'_>,
    member: &[u8],
    score: f64,
    flags: AddFlags,
    limits: ZSetLimits,
) -> Result<Added, Error> {
    match z.score(member) {
        Some(current) => {
            if flags.nx {
                return Ok(Added::Skipped);
            }
            let score = if flags.incr { current + score } else { score };
            if score.is_nan() {
                return Err(NAN_SCORE.into());
            }
            if (flags.lt && score >= current) || (flags.gt && score <= current) {
                return Ok(Added::Skipped);
            }
            // 0 and -0 are the same score: the member keeps the one it has.
            #[expect(clippy::float_cmp, reason = "Redis compares scores exactly")]
            if score == current {
                return Ok(Added::Same(current));
            }
            z.insert_with(member, score, limits);
            Ok(Added::Updated(score))
        }
        None if flags.xx => Ok(Added::Skipped),
        None => {
            z.insert_with(member, score, limits);
            Ok(Added::New(score))
        }
    }
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member …]
pub fn zadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    add(ctx, args, false)
}

fn add(ctx: &mut Ctx<'_>, args: Args<'_>, incr: bool) -> CmdResult {
    let mut flags = AddFlags {
        incr,
        ..AddFlags::default()
    };
    let mut ch = false;
    let mut at = 2;
    while at < args.len() {
        let arg = args.get(at);
        match () {
            () if is(arg, "NX") => flags.nx = true,
            () if is(arg, "XX") => flags.xx = true,
            () if is(arg, "GT") => flags.gt = true,
            () if is(arg, "LT") => flags.lt = true,
            () if is(arg, "CH") => ch = true,
            () if is(arg, "INCR") => flags.incr = true,
            () => break,
        }
        at += 1;
    }
    let rest = args.len() - at;
    if rest == 0 || !rest.is_multiple_of(2) {
        return Err(SYNTAX.into());
    }
    if flags.nx && flags.xx {
        return Err("ERR XX and NX options at the same time are not compatible".into());
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return Err("ERR GT, LT, and/or NX options at the same time are not compatible".into());
    }
    let pairs = rest / 2;
    if flags.incr && pairs > 1 {
        return Err("ERR INCR option supports a single increment-element pair".into());
    }
    let scores = (0..pairs)
        .map(|i| parse_score(args.get(at + 2 * i)).ok_or(Error::from(NOT_FLOAT)))
        .collect::<Result<Vec<f64>, Error>>()?;
    let longest = (0..pairs)
        .map(|i| args.get(at + 2 * i + 1).len())
        .max()
        .unwrap_or(0);
    let limits = limits(ctx);
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let create = (!flags.xx).then_some(Kind::ZSet);
    let (mut added, mut updated, mut last) = (0i64, 0i64, None);
    if let Some(mut handle) = shard.modify(&key, ctx.now, create) {
        let mut z = handle.zset_mut().ok_or(Error::from(WRONGTYPE))?;
        if z.is_empty() {
            // Just created: in the encoding that the whole command's members call for.
            z.replace(ZSetValue::for_size(pairs, longest, limits));
        }
        for (i, &score) in scores.iter().enumerate() {
            match add_one(&mut z, args.get(at + 2 * i + 1), score, flags, limits)? {
                Added::New(s) => (added, last) = (added + 1, Some(s)),
                Added::Updated(s) => (updated, last) = (updated + 1, Some(s)),
                Added::Same(s) => last = Some(s),
                Added::Skipped => {}
            }
        }
    }
    drop(shard);
    if added > 0 {
        // A client blocked in BZPOPMIN and friends may take one now.
        ctx.shared.blocking.ready(args.get(1));
    }
    if flags.incr {
        match last {
            Some(score) => ctx.out.double(score),
            None => ctx.out.null(),
        }
    } else {
        ctx.out.int(if ch { added + updated } else { added });
    }
    Ok(())
}

/// ZINCRBY key increment member: ZADD with INCR, options and all, as in Redis (where
/// `ZINCRBY key XX 1` is a syntax error rather than a bad increment).
pub fn zincrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    add(ctx, args, true)
}

pub fn zrem(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let removed = write_zset(ctx, args.get(1), |z| {
        Ok(args.iter_from(2).filter(|m| z.remove(m)).count())
    })?
    .unwrap_or(0);
    ctx.out.int(removed as i64);
    Ok(())
}

pub fn zcard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let len = read_zset(ctx, args.get(1), |z| z.len())?.unwrap_or(0);
    ctx.out.int(len as i64);
    Ok(())
}

pub fn zscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    match read_zset(ctx, args.get(1), |z| z.score(args.get(2)))?.flatten() {
        Some(score) => ctx.out.double(score),
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn zmscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let scores = read_zset(ctx, args.get(1), |z| {
        args.iter_from(2).map(|m| z.score(m)).collect::<Vec<_>>()
    })?
    .unwrap_or_else(|| vec![None; args.len() - 2]);
    ctx.out.array(scores.len());
    for score in scores {
        match score {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn rank(ctx: &mut Ctx<'_>, args: Args<'_>, reverse: bool) -> CmdResult {
    let with_score = match args.len() {
        3 => false,
        4 if is(args.get(3), "WITHSCORE") => true,
        _ => return Err(SYNTAX.into()),
    };
    let found = read_zset(ctx, args.get(1), |z| {
        let member = args.get(2);
        let rank = z.rank(member)?;
        let rank = if reverse { z.len() - 1 - rank } else { rank };
        Some((rank, z.score(member).expect("a ranked member")))
    })?
    .flatten();
    match (found, with_score) {
        (Some((rank, _)), false) => ctx.out.int(rank as i64),
        (Some((rank, score)), true) => {
            ctx.out.array(2);
            ctx.out.int(rank as i64);
            ctx.out.double(score);
        }
        (None, false) => ctx.out.null(),
        (None, true) => ctx.out.null_array(),
    }
    Ok(())
}

pub fn zrank(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    rank(ctx, args, false)
}

pub fn zrevrank(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    rank(ctx, args, true)
}

/// Members taken off a set, with their scores, in the order they came off.
type Popped = Vec<(Vec<u8>, f64)>;

/// Takes up to `count` members from one end of a set, in the order they come off.
fn pop(z: &mut ZSetMut<'_>, count: usize, max: bool) -> Popped {
    let take = count.min(z.len());
    let popped: Vec<(Vec<u8>, f64)> = if max {
        z.range_by_rank(z.len() - take, z.len())
            .rev()
            .map(|(m, s)| (m.to_vec(), s))
            .collect()
    } else {
        z.range_by_rank(0, take)
            .map(|(m, s)| (m.to_vec(), s))
            .collect()
    };
    for (m, _) in &popped {
        z.remove(m);
    }
    popped
}

/// Writes popped members: pairs nested in RESP3 (and always with ZMPOP), flat otherwise.
fn write_popped(out: &mut ReplyWriter<'_>, popped: &[(Vec<u8>, f64)], nested: bool) {
    out.array(if nested {
        popped.len()
    } else {
        popped.len() * 2
    });
    for (m, s) in popped {
        if nested {
            out.array(2);
        }
        out.bulk(m);
        out.double(*s);
    }
}

/// A count of zero or more; Redis gives the range's message for text too.
fn positive_count(arg: &[u8]) -> Result<usize, Error> {
    dcache_protocol::request::parse_i64(arg)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(Error::from("ERR value is out of range, must be positive"))
}

fn zpop(ctx: &mut Ctx<'_>, args: Args<'_>, max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(SYNTAX.into());
    }
    let count = if args.len() == 3 {
        Some(positive_count(args.get(2))?)
    } else {
        None
    };
    let popped =
        write_zset(ctx, args.get(1), |z| Ok(pop(z, count.unwrap_or(1), max)))?.unwrap_or_default();
    // With a count (even 1) RESP3 nests each pair; without one the pair is the reply.
    let nested = count.is_some() && ctx.out.resp3();
    write_popped(&mut ctx.out, &popped, nested);
    Ok(())
}

pub fn zpopmin(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zpop(ctx, args, false)
}

pub fn zpopmax(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zpop(ctx, args, true)
}

/// ZMPOP numkeys key [key …] MIN|MAX [COUNT count]: pops from the first non-empty set.
pub fn zmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (keys, max, count) = mpop_args(args, 1)?;
    match pop_first(ctx, keys.map(|i| args.get(i)), max, count)? {
        Some((name, popped)) => write_mpopped(ctx, name, &popped),
        None => ctx.out.null_array(),
    }
    Ok(())
}

/// Parses `numkeys key [key …] MIN|MAX [COUNT count]` from `args[at]` on: the keys' positions,
/// whether to pop the highest scores, and how many.
fn mpop_args(args: Args<'_>, at: usize) -> Result<(std::ops::Range<usize>, bool, usize), Error> {
    // Redis gives the range's message for text as well as for numbers out of range.
    let numkeys = dcache_protocol::request::parse_i64(args.get(at))
        .filter(|&n| n > 0)
        .ok_or(Error::from("ERR numkeys should be greater than 0"))?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > args.len() - at - 1 {
        return Err(SYNTAX.into());
    }
    let keys = at + 1..at + 1 + numkeys;
    let mut at = keys.end;
    let max = match args.iter_from(at).next() {
        Some(w) if is(w, "MIN") => false,
        Some(w) if is(w, "MAX") => true,
        _ => return Err(SYNTAX.into()),
    };
    at += 1;
    let mut count = 1;
    let mut counted = false;
    while at < args.len() {
        if is(args.get(at), "COUNT") && at + 1 < args.len() && !counted {
            let n = dcache_protocol::request::parse_i64(args.get(at + 1))
                .filter(|&n| n > 0)
                .ok_or(Error::from("ERR count should be greater than 0"))?;
            count = usize::try_from(n).unwrap_or(usize::MAX);
            counted = true;
            at += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    Ok((keys, max, count))
}

/// Pops up to `count` members from the first of `keys` that holds a sorted set, with its name.
/// WRONGTYPE for a key of another type met before it.
fn pop_first<'k>(
    ctx: &Ctx<'_>,
    keys: impl Iterator<Item = &'k [u8]>,
    max: bool,
    count: usize,
) -> Result<Option<(&'k [u8], Popped)>, Error> {
    for name in keys {
        let popped = write_zset(ctx, name, |z| Ok(pop(z, count, max)))?;
        if let Some(popped) = popped.filter(|p| !p.is_empty()) {
            return Ok(Some((name, popped)));
        }
    }
    Ok(None)
}

/// ZMPOP's and BZMPOP's reply: the key, then its members and scores in pairs.
fn write_mpopped(ctx: &mut Ctx<'_>, name: &[u8], popped: &[(Vec<u8>, f64)]) {
    ctx.out.array(2);
    ctx.out.bulk(name);
    write_popped(&mut ctx.out, popped, true);
}

/// Whether one of `keys` holds a sorted set: a woken blocking pop runs only then and otherwise
/// waits on, as Redis wakes a client only for a key of the type it waits for.
fn any_zset<'k>(ctx: &Ctx<'_>, mut keys: impl Iterator<Item = &'k [u8]>) -> bool {
    keys.any(|k| matches!(read_zset(ctx, k, |_| ()), Ok(Some(()))))
}

/// BZPOPMIN and BZPOPMAX: `key… timeout`. The reply is the key, the member and its score, or
/// the client waits for a ZADD to one of the keys ([`crate::blocking`]).
fn bzpop(ctx: &mut Ctx<'_>, args: Args<'_>, max: bool) -> CmdResult {
    let timeout = crate::blocking::timeout_arg(args.get(args.len() - 1))?;
    let keys = 1..args.len() - 1;
    if ctx.woken() && !any_zset(ctx, keys.clone().map(|i| args.get(i))) {
        ctx.block(keys.map(|i| args.get(i)), timeout);
        return Ok(());
    }
    match pop_first(ctx, keys.clone().map(|i| args.get(i)), max, 1)? {
        Some((name, popped)) => {
            let (member, score) = &popped[0];
            ctx.out.array(3);
            ctx.out.bulk(name);
            ctx.out.bulk(member);
            ctx.out.double(*score);
        }
        None => ctx.block(keys.map(|i| args.get(i)), timeout),
    }
    Ok(())
}

pub fn bzpopmin(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bzpop(ctx, args, false)
}

pub fn bzpopmax(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bzpop(ctx, args, true)
}

/// BZMPOP timeout numkeys key [key …] MIN|MAX [COUNT count].
pub fn bzmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    // Redis reads the timeout after the rest.
    let (keys, max, count) = mpop_args(args, 2)?;
    let timeout = crate::blocking::timeout_arg(args.get(1))?;
    if ctx.woken() && !any_zset(ctx, keys.clone().map(|i| args.get(i))) {
        ctx.block(keys.map(|i| args.get(i)), timeout);
        return Ok(());
    }
    match pop_first(ctx, keys.clone().map(|i| args.get(i)), max, count)? {
        Some((name, popped)) => write_mpopped(ctx, name, &popped),
        None => ctx.block(keys.map(|i| args.get(i)), timeout),
    }
    Ok(())
}

/// ZRANDMEMBER key [count [WITHSCORES]], as HRANDFIELD: a count from the client sizes nothing,
/// and a negative one whose reply could not fit `proto-max-bulk-len` is refused rather than
/// streamed for ever.
pub fn zrandmember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let count = if args.len() >= 3 {
        Some(super::random_count_arg(args.get(2))?)
    } else {
        None
    };
    let with_scores = match args.len() {
        2 | 3 => false,
        4 if is(args.get(3), "WITHSCORES") => true,
        _ => return Err(SYNTAX.into()),
    };
    if with_scores && count.is_some_and(|c| c.unsigned_abs() > (i64::MAX / 2) as u64) {
        return Err("ERR value is out of range".into());
    }
    let mut rng = ctx.now ^ ctx.conn.info.id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let max_reply = ctx.conn.max_bulk_len as u64;
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let z = match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => Some(as_zset(entry.value())?),
        None => None,
    };
    let (Some(z), Some(count)) = (z, count) else {
        match (z, count) {
            (Some(z), None) => {
                let pick = (next() % z.len() as u64) as usize;
                ctx.out.bulk_or_null(z.get_by_rank(pick).map(|(m, _)| m));
            }
            (None, None) => ctx.out.null(),
            (_, Some(_)) => ctx.out.array(0),
        }
        return Ok(());
    };
    let picks: Vec<usize> = if count >= 0 {
        // Distinct members: a partial Fisher-Yates shuffle of the ranks.
        let take = usize::try_from(count).map_or(z.len(), |c| c.min(z.len()));
        let mut ranks: Vec<usize> = (0..z.len()).collect();
        for i in 0..take {
            let j = i + (next() % (z.len() - i) as u64) as usize;
            ranks.swap(i, j);
        }
        ranks.truncate(take);
        ranks
    } else {
        let longest = z.iter().map(|(m, _)| m.len()).max().unwrap_or(0) as u64;
        let per_pick = longest + 16 + if with_scores { 32 } else { 0 };
        let picks = count.unsigned_abs();
        if picks.saturating_mul(per_pick) > max_reply {
            return Err("ERR value is out of range".into());
        }
        (0..picks)
            .map(|_| (next() % z.len() as u64) as usize)
            .collect()
    };
    write_members(
        &mut ctx.out,
        picks
            .iter()
            .map(|&r| z.get_by_rank(r).expect("a rank below the length")),
        with_scores,
    );
    Ok(())
}

/// ZSCAN returns the whole set in one round (cursor 0), which Redis's contract allows and which
/// Redis itself does for small sets. Scores are strings here, in either protocol, as in Redis.
pub fn zscan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    cursor_arg(args.get(2))?;
    let opts = scan_options(args, 3, false, false)?;
    let pairs = read_zset(ctx, args.get(1), |z| {
        z.iter()
            .filter(|(m, _)| opts.pattern.is_none_or(|p| glob_match(p, m)))
            .map(|(m, s)| (m.to_vec(), s))
            .collect::<Vec<_>>()
    })?
    .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk(b"0");
    ctx.out.array(pairs.len() * 2);
    for (m, s) in &pairs {
        ctx.out.bulk(m);
        ctx.out
            .bulk(dcache_protocol::reply::format_redis_double(*s).as_bytes());
    }
    Ok(())
}

/// Replaces `dst` with a sorted set of `members` (whatever `dst` held, and without its TTL), or
/// deletes it when there are none, as the STORE commands do; returns how many were stored.
fn store_result(ctx: &Ctx<'_>, dst: &[u8], members: &[(Vec<u8>, f64)]) -> Result<usize, Error> {
    let limits = limits(ctx);
    let longest = members.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
    let mut z = ZSetValue::for_size(members.len(), longest, limits);
    for (m, s) in members {
        z.insert_with(m, *s, limits);
    }
    let key = ctx.key(dst);
    if z.is_empty() {
        ctx.lock(&key).remove(&key, ctx.now);
        return Ok(0);
    }
    // The result can be far larger than the arguments that dispatch made room for.
    let _room = ctx.admit(&key, z.mem())?;
    ctx.lock(&key)
        .set(&key, Value::ZSet(z.view()), None, false, ctx.now);
    ctx.shared.blocking.ready(dst);
    Ok(z.len())
}
