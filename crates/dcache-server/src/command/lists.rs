//! List commands: queues and stacks under one key, pushed and popped at both ends, and their
//! blocking forms (which wait in `crate::blocking` when every key is empty).
//!
//! Replies, errors and the order in which arguments are checked follow Redis 7.2's `t_list.c`:
//! LINDEX and LSET look the key up before they parse the index, LRANGE and LREM the other way
//! round, and so on. A push wakes the clients blocked on its key ([`crate::blocking`]).

use dcache_protocol::Args;
use dcache_store::{End, Kind, ListRef, ListValue, Lookup, Value};

use super::{CmdResult, Ctx, Error, SYNTAX, WRONGTYPE, int_arg, is};
use crate::blocking::timeout_arg;

const NO_SUCH_KEY: &str = "ERR no such key";
const OUT_OF_RANGE: &str = "ERR index out of range";

fn as_list(value: Value<'_>) -> Result<ListRef<'_>, Error> {
    match value {
        Value::List(l) => Ok(l),
        _ => Err(WRONGTYPE.into()),
    }
}

/// Runs `f` on the list at `key` for reading; `None` when the key is missing.
fn read_list<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(ListRef<'_>) -> R,
) -> Result<Option<R>, Error> {
    let key = ctx.key(key);
    let mut shard = ctx.lock(&key);
    match shard.get(&key, ctx.now, Lookup::Read) {
        Some(entry) => Ok(Some(f(as_list(entry.value())?))),
        None => Ok(None),
    }
}

/// Runs `f` on the list at `key` for changing (created when `create`); `None` when the key is
/// missing and not created. A list left empty is deleted when `f` returns.
fn with_list<R>(
    ctx: &Ctx<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut ListValue) -> Result<R, Error>,
) -> Result<Option<R>, Error> {
    let key = ctx.key(key);
    let mut shard = ctx.lock(&key);
    let Some(mut handle) = shard.modify(&key, ctx.now, create.then_some(Kind::List)) else {
        return Ok(None);
    };
    if !matches!(handle.value(), Value::List(_)) {
        return Err(WRONGTYPE.into());
    }
    let list = handle.list_mut().expect("a list");
    let result = f(list);
    list.shrunk();
    result.map(Some)
}

/// `LEFT` or `RIGHT`.
fn end_arg(arg: &[u8]) -> Result<End, Error> {
    if is(arg, "LEFT") {
        Ok(End::Head)
    } else if is(arg, "RIGHT") {
        Ok(End::Tail)
    } else {
        Err(SYNTAX.into())
    }
}

/// An integer within `min..=max`, with Redis's message (`msg`, or its generic one) for anything
/// else: `getRangeLongFromObjectOrReply`.
fn range_arg(arg: &[u8], min: i64, max: i64, msg: Option<&'static str>) -> Result<i64, Error> {
    let value = match dcache_protocol::request::parse_i64(arg) {
        Some(v) => v,
        None => return Err(msg.map_or(Error::from(super::NOT_INTEGER), |m| m.into())),
    };
    if value < min || value > max {
        return Err(msg.map_or_else(
            || format!("ERR value is out of range, value must between {min} and {max}").into(),
            Error::from,
        ));
    }
    Ok(value)
}

/// Resolves Redis's `start`/`stop` (negative from the tail) against `len`: the inclusive range,
/// or `None` when it is empty.
fn range_of(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 { stop + len } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop.min(len - 1) as usize))
}

fn push(ctx: &mut Ctx<'_>, args: Args<'_>, end: End, create: bool) -> CmdResult {
    let key = args.get(1);
    let len = with_list(ctx, key, create, |l| {
        l.push_all(end, (2..args.len()).map(|i| args.get(i)));
        Ok(l.len())
    })?;
    if len.is_some() {
        ctx.shared.blocking.ready(key);
    }
    ctx.out.int(len.unwrap_or(0) as i64);
    Ok(())
}

pub fn lpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push(ctx, args, End::Head, true)
}

pub fn rpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push(ctx, args, End::Tail, true)
}

pub fn lpushx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push(ctx, args, End::Head, false)
}

pub fn rpushx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push(ctx, args, End::Tail, false)
}

/// Takes up to `count` elements from `end`, in the order they come off.
fn pop_many(list: &mut ListValue, end: End, count: usize) -> Vec<Box<[u8]>> {
    let mut out = Vec::with_capacity(count.min(list.len()));
    while out.len() < count {
        match list.pop(end) {
            Some(e) => out.push(e),
            None => break,
        }
    }
    out
}

fn pop(ctx: &mut Ctx<'_>, args: Args<'_>, end: End) -> CmdResult {
    if args.len() > 3 {
        return Err(format!(
            "ERR wrong number of arguments for '{}' command",
            String::from_utf8_lossy(args.get(0)).to_ascii_lowercase()
        )
        .into());
    }
    let count = if args.len() == 3 {
        Some(range_arg(
            args.get(2),
            0,
            i64::MAX,
            Some("ERR value is out of range, must be positive"),
        )? as usize)
    } else {
        None
    };
    let popped = with_list(ctx, args.get(1), false, |l| {
        Ok(pop_many(l, end, count.unwrap_or(1)))
    })?;
    match (popped, count) {
        (None, None) => ctx.out.null(),
        (None, Some(_)) => ctx.out.null_array(),
        (Some(popped), None) => ctx.out.bulk_or_null(popped.first().map(|e| &**e)),
        (Some(popped), Some(_)) => {
            ctx.out.array(popped.len());
            popped.iter().for_each(|e| ctx.out.bulk(e));
        }
    }
    Ok(())
}

pub fn lpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    pop(ctx, args, End::Head)
}

pub fn rpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    pop(ctx, args, End::Tail)
}

pub fn llen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let len = read_list(ctx, args.get(1), |l| l.len())?.unwrap_or(0);
    ctx.out.int(len as i64);
    Ok(())
}

pub fn lrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let start = int_arg(args.get(2))?;
    let stop = int_arg(args.get(3))?;
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let Some(entry) = shard.get(&key, ctx.now, Lookup::Read) else {
        drop(shard);
        ctx.out.array(0);
        return Ok(());
    };
    let list = as_list(entry.value())?;
    match range_of(start, stop, list.len()) {
        None => ctx.out.array(0),
        Some((from, to)) => {
            ctx.out.array(to - from + 1);
            for e in list.iter().skip(from).take(to - from + 1) {
                ctx.out.bulk(e);
            }
        }
    }
    Ok(())
}

pub fn lindex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let Some(entry) = shard.get(&key, ctx.now, Lookup::Read) else {
        drop(shard);
        ctx.out.null();
        return Ok(());
    };
    let list = as_list(entry.value())?;
    let index = int_arg(args.get(2))?;
    let at = if index < 0 {
        index.checked_add(list.len() as i64)
    } else {
        Some(index)
    };
    let element = at
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| list.get(i));
    ctx.out.bulk_or_null(element);
    Ok(())
}

pub fn lset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let element = args.get(3);
    let done = with_list(ctx, args.get(1), false, |l| {
        let index = int_arg(args.get(2))?;
        // Redis checks the encoding limits before it knows whether the index is in range.
        l.reserve(element.len(), 0);
        let at = if index < 0 {
            index.checked_add(l.len() as i64)
        } else {
            Some(index)
        };
        let set = at
            .and_then(|i| usize::try_from(i).ok())
            .is_some_and(|i| l.set(i, element));
        if set {
            Ok(())
        } else {
            Err(OUT_OF_RANGE.into())
        }
    })?;
    if done.is_none() {
        return Err(NO_SUCH_KEY.into());
    }
    ctx.out.ok();
    Ok(())
}

pub fn linsert(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let after = if is(args.get(2), "AFTER") {
        true
    } else if is(args.get(2), "BEFORE") {
        false
    } else {
        return Err(SYNTAX.into());
    };
    let (pivot, element) = (args.get(3), args.get(4));
    let key = args.get(1);
    let len = with_list(ctx, key, false, |l| {
        l.reserve(element.len(), 1);
        let found = l.iter().position(|e| e == pivot);
        Ok(match found {
            Some(at) => {
                l.insert(at + usize::from(after), element);
                l.len() as i64
            }
            None => -1,
        })
    })?;
    if len.is_some_and(|n| n > 0) {
        ctx.shared.blocking.ready(key);
    }
    ctx.out.int(len.unwrap_or(0));
    Ok(())
}

pub fn lrem(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let count = int_arg(args.get(2))?;
    let removed = with_list(ctx, args.get(1), false, |l| {
        Ok(l.remove_matching(args.get(3), count))
    })?;
    ctx.out.int(removed.unwrap_or(0) as i64);
    Ok(())
}

pub fn ltrim(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let start = int_arg(args.get(2))?;
    let stop = int_arg(args.get(3))?;
    with_list(ctx, args.get(1), false, |l| {
        let keep = range_of(start, stop, l.len());
        if keep != Some((0, l.len().saturating_sub(1))) {
            l.trim(keep);
        }
        Ok(())
    })?;
    ctx.out.ok();
    Ok(())
}

pub fn lpos(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        let more = i + 1 < args.len();
        if is(opt, "RANK") && more {
            rank = range_arg(args.get(i + 1), -i64::MAX, i64::MAX, None)?;
            if rank == 0 {
                return Err(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"
                        .into(),
                );
            }
        } else if is(opt, "COUNT") && more {
            count = Some(range_arg(
                args.get(i + 1),
                0,
                i64::MAX,
                Some("ERR COUNT can't be negative"),
            )? as usize);
        } else if is(opt, "MAXLEN") && more {
            maxlen = range_arg(
                args.get(i + 1),
                0,
                i64::MAX,
                Some("ERR MAXLEN can't be negative"),
            )? as usize;
        } else {
            return Err(SYNTAX.into());
        }
        i += 2;
    }
    let element = args.get(2);
    let found = read_list(ctx, args.get(1), |l| {
        let len = l.len();
        let scanned = if maxlen == 0 { len } else { maxlen.min(len) };
        let skip = rank.unsigned_abs() as usize - 1;
        let wanted = match count {
            Some(0) => usize::MAX,
            Some(n) => n,
            None => 1,
        };
        let matches = |iter: &mut dyn Iterator<Item = (usize, &[u8])>| -> Vec<usize> {
            iter.take(scanned)
                .filter(|(_, e)| *e == element)
                .map(|(i, _)| i)
                .skip(skip)
                .take(wanted)
                .collect()
        };
        if rank > 0 {
            matches(&mut l.iter().enumerate())
        } else {
            matches(&mut l.iter().enumerate().rev())
        }
    })?;
    match (count, found) {
        (None, found) => match found.and_then(|f| f.first().copied()) {
            Some(at) => ctx.out.int(at as i64),
            None => ctx.out.null(),
        },
        (Some(_), found) => {
            let found = found.unwrap_or_default();
            ctx.out.array(found.len());
            found.iter().for_each(|&at| ctx.out.int(at as i64));
        }
    }
    Ok(())
}

/// Moves the element at `from`'s `from_end` to `to`'s `to_end` (LMOVE). `Ok(None)` when `from` is
/// missing; WRONGTYPE (and nothing moved) when either key holds something else.
fn move_element(
    ctx: &Ctx<'_>,
    from: &[u8],
    to: &[u8],
    from_end: End,
    to_end: End,
) -> Result<Option<Box<[u8]>>, Error> {
    let (src, dst) = (ctx.key(from), ctx.key(to));
    let mut locked = ctx.lock_many(&[src, dst]);
    match locked.shard(&src).get(&src, ctx.now, Lookup::Write) {
        None => return Ok(None),
        Some(entry) => {
            as_list(entry.value())?;
        }
    }
    if from == to {
        let mut handle = locked
            .shard(&src)
            .modify(&src, ctx.now, None)
            .expect("found above");
        let list = handle.list_mut().expect("a list");
        let element = list.pop(from_end).expect("lists are never empty");
        list.push_all(to_end, std::iter::once(&*element));
        return Ok(Some(element));
    }
    if let Some(entry) = locked.shard(&dst).get(&dst, ctx.now, Lookup::Peek) {
        as_list(entry.value())?;
    }
    let element = {
        let mut handle = locked
            .shard(&src)
            .modify(&src, ctx.now, None)
            .expect("found above");
        let list = handle.list_mut().expect("a list");
        let element = list.pop(from_end).expect("lists are never empty");
        list.shrunk();
        element
    };
    let mut handle = locked
        .shard(&dst)
        .modify(&dst, ctx.now, Some(Kind::List))
        .expect("created when absent");
    handle
        .list_mut()
        .expect("checked above")
        .push_all(to_end, std::iter::once(&*element));
    Ok(Some(element))
}

fn lmove_reply(ctx: &mut Ctx<'_>, to: &[u8], moved: Option<Box<[u8]>>) {
    if moved.is_some() {
        ctx.shared.blocking.ready(to);
    }
    ctx.out.bulk_or_null(moved.as_deref());
}

pub fn lmove(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let from_end = end_arg(args.get(3))?;
    let to_end = end_arg(args.get(4))?;
    let moved = move_element(ctx, args.get(1), args.get(2), from_end, to_end)?;
    lmove_reply(ctx, args.get(2), moved);
    Ok(())
}

pub fn rpoplpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let moved = move_element(ctx, args.get(1), args.get(2), End::Tail, End::Head)?;
    lmove_reply(ctx, args.get(2), moved);
    Ok(())
}

/// `numkeys key… LEFT|RIGHT [COUNT n]` from argument `at`: the keys' range, the end and the
/// count (LMPOP, BLMPOP).
fn mpop_args(args: Args<'_>, at: usize) -> Result<(std::ops::Range<usize>, End, usize), Error> {
    let numkeys = range_arg(
        args.get(at),
        1,
        i64::MAX,
        Some("ERR numkeys should be greater than 0"),
    )? as usize;
    let end_at = match (at + 1).checked_add(numkeys) {
        Some(i) if i < args.len() => i,
        _ => return Err(SYNTAX.into()),
    };
    let end = end_arg(args.get(end_at))?;
    let mut count = None;
    let mut i = end_at + 1;
    while i < args.len() {
        if count.is_none() && is(args.get(i), "COUNT") && i + 1 < args.len() {
            count = Some(range_arg(
                args.get(i + 1),
                1,
                i64::MAX,
                Some("ERR count should be greater than 0"),
            )? as usize);
            i += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    Ok((at + 1..end_at, end, count.unwrap_or(1)))
}

/// What a pop from the first non-empty list of several found.
struct Popped<'k> {
    key: &'k [u8],
    elements: Vec<Box<[u8]>>,
}

/// Pops up to `count` elements from the first of `keys` that holds a list. WRONGTYPE for a key of
/// another type met before it.
fn pop_first<'k>(
    ctx: &Ctx<'_>,
    keys: impl Iterator<Item = &'k [u8]>,
    end: End,
    count: usize,
) -> Result<Option<Popped<'k>>, Error> {
    for key in keys {
        if let Some(elements) = with_list(ctx, key, false, |l| Ok(pop_many(l, end, count)))? {
            return Ok(Some(Popped { key, elements }));
        }
    }
    Ok(None)
}

/// Whether one of `keys` holds a list: a woken blocking command runs only then, and otherwise
/// waits on (Redis wakes a client only for a key of the type it waits for, so a key overwritten
/// by a string does not end the wait with WRONGTYPE).
fn any_list<'k>(ctx: &Ctx<'_>, mut keys: impl Iterator<Item = &'k [u8]>) -> bool {
    keys.any(|k| {
        let key = ctx.key(k);
        matches!(
            ctx.lock(&key)
                .get(&key, ctx.now, Lookup::Peek)
                .map(|e| e.value()),
            Some(Value::List(_))
        )
    })
}

fn mpop_reply(ctx: &mut Ctx<'_>, popped: Option<Popped<'_>>) {
    match popped {
        None => ctx.out.null_array(),
        Some(p) => {
            ctx.out.array(2);
            ctx.out.bulk(p.key);
            ctx.out.array(p.elements.len());
            p.elements.iter().for_each(|e| ctx.out.bulk(e));
        }
    }
}

pub fn lmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (keys, end, count) = mpop_args(args, 1)?;
    let popped = pop_first(ctx, keys.map(|i| args.get(i)), end, count)?;
    mpop_reply(ctx, popped);
    Ok(())
}

/// BLPOP and BRPOP: `key… timeout`.
fn bpop(ctx: &mut Ctx<'_>, args: Args<'_>, end: End) -> CmdResult {
    let timeout = timeout_arg(args.get(args.len() - 1))?;
    let keys = 1..args.len() - 1;
    if ctx.woken() && !any_list(ctx, keys.clone().map(|i| args.get(i))) {
        ctx.block(keys.map(|i| args.get(i)), timeout);
        return Ok(());
    }
    match pop_first(ctx, keys.clone().map(|i| args.get(i)), end, 1)? {
        Some(p) => {
            ctx.out.array(2);
            ctx.out.bulk(p.key);
            ctx.out.bulk(&p.elements[0]);
        }
        None => ctx.block(keys.map(|i| args.get(i)), timeout),
    }
    Ok(())
}

pub fn blpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bpop(ctx, args, End::Head)
}

pub fn brpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bpop(ctx, args, End::Tail)
}

pub fn blmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    // Redis reads the timeout after the rest.
    let (keys, end, count) = mpop_args(args, 2)?;
    let timeout = timeout_arg(args.get(1))?;
    if ctx.woken() && !any_list(ctx, keys.clone().map(|i| args.get(i))) {
        ctx.block(keys.map(|i| args.get(i)), timeout);
        return Ok(());
    }
    match pop_first(ctx, keys.clone().map(|i| args.get(i)), end, count)? {
        Some(p) => mpop_reply(ctx, Some(p)),
        None => ctx.block(keys.map(|i| args.get(i)), timeout),
    }
    Ok(())
}

/// BLMOVE and BRPOPLPUSH: waits on the source only.
fn bmove(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    from_end: End,
    to_end: End,
    timeout_at: usize,
) -> CmdResult {
    let timeout = timeout_arg(args.get(timeout_at))?;
    let (from, to) = (args.get(1), args.get(2));
    if ctx.woken() && !any_list(ctx, std::iter::once(from)) {
        ctx.block(std::iter::once(from), timeout);
        return Ok(());
    }
    match move_element(ctx, from, to, from_end, to_end)? {
        Some(moved) => lmove_reply(ctx, to, Some(moved)),
        None => ctx.block(std::iter::once(from), timeout),
    }
    Ok(())
}

pub fn blmove(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let from_end = end_arg(args.get(3))?;
    let to_end = end_arg(args.get(4))?;
    bmove(ctx, args, from_end, to_end, 5)
}

pub fn brpoplpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bmove(ctx, args, End::Tail, End::Head, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_redis_does() {
        assert_eq!(range_of(0, -1, 3), Some((0, 2)));
        assert_eq!(range_of(-100, 100, 3), Some((0, 2)));
        assert_eq!(range_of(2, 1, 3), None);
        assert_eq!(range_of(3, 5, 3), None);
        assert_eq!(range_of(-1, -1, 3), Some((2, 2)));
        assert_eq!(range_of(0, -4, 3), None);
        assert_eq!(range_of(i64::MIN, i64::MAX, 3), Some((0, 2)));
        assert_eq!(range_of(0, 0, 0), None);
    }
}
