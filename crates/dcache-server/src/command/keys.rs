//! Commands on keys whatever their type: DEL, EXISTS, TYPE, KEYS, SCAN, RENAME, COPY, …

use dcache_protocol::Args;
use dcache_store::{Lookup, ScanFilter, glob_match};

use super::{CmdResult, Ctx, Error, SYNTAX, int_arg, is};

pub fn del(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let keys: Vec<_> = args.iter_from(1).map(|k| ctx.key(k)).collect();
    let mut locked = ctx.lock_many(&keys);
    let removed = keys
        .iter()
        .filter(|k| locked.shard(k).delete(k, ctx.now))
        .count();
    drop(locked);
    ctx.out.int(removed as i64);
    Ok(())
}

/// Counts the keys that exist (a key named twice counts twice), touching them as `mode` says.
fn count_existing(ctx: &mut Ctx<'_>, args: Args<'_>, mode: Lookup) -> CmdResult {
    let mut count = 0;
    for bytes in args.iter_from(1) {
        let key = ctx.key(bytes);
        if ctx.lock(&key).get(&key, ctx.now, mode).is_some() {
            count += 1;
        }
    }
    ctx.out.int(count);
    Ok(())
}

pub fn exists(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    count_existing(ctx, args, Lookup::Peek)
}

pub fn touch(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    count_existing(ctx, args, Lookup::Write)
}

pub fn type_(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let name = ctx
        .lock(&key)
        .get(&key, ctx.now, Lookup::Peek)
        .map_or("none", |e| e.value().type_name());
    ctx.out.simple(name);
    Ok(())
}

pub fn keys(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let pattern = args.get(1);
    let mut found = Vec::new();
    for i in 0..ctx.shared.store.shard_count() {
        let shard = ctx.shared.store.lock_shard(i);
        shard.scan(0, usize::MAX, ctx.now, |entry| {
            if glob_match(pattern, entry.key()) {
                found.push(entry.key().to_vec());
            }
        });
    }
    ctx.out.array(found.len());
    for key in &found {
        ctx.out.bulk(key);
    }
    Ok(())
}

/// Parses SCAN/HSCAN options from `from` on: MATCH, COUNT, and TYPE where `allow_type`, NOVALUES
/// where `allow_novalues`.
pub(super) struct ScanOptions<'a> {
    pub pattern: Option<&'a [u8]>,
    pub count: usize,
    pub type_name: Option<String>,
    pub novalues: bool,
}

pub(super) fn scan_options<'a>(
    args: Args<'a>,
    from: usize,
    allow_type: bool,
    allow_novalues: bool,
) -> Result<ScanOptions<'a>, Error> {
    let mut opts = ScanOptions {
        pattern: None,
        count: 10,
        type_name: None,
        novalues: false,
    };
    let mut i = from;
    while i < args.len() {
        let arg = args.get(i);
        if allow_novalues && is(arg, "NOVALUES") {
            opts.novalues = true;
            i += 1;
            continue;
        }
        if i + 1 >= args.len() {
            return Err(SYNTAX.into());
        }
        let value = args.get(i + 1);
        if is(arg, "MATCH") {
            // "*" matches everything; skip the matching work.
            opts.pattern = (value != b"*").then_some(value);
        } else if is(arg, "COUNT") {
            let n = int_arg(value)?;
            if n < 1 {
                return Err(SYNTAX.into());
            }
            opts.count = n as usize;
        } else if allow_type && is(arg, "TYPE") {
            opts.type_name = Some(String::from_utf8_lossy(value).into_owned());
        } else {
            return Err(SYNTAX.into());
        }
        i += 2;
    }
    Ok(opts)
}

pub(super) fn cursor_arg(arg: &[u8]) -> Result<u64, Error> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Error::from("ERR invalid cursor"))
}

pub fn scan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let cursor = cursor_arg(args.get(1))?;
    let opts = scan_options(args, 2, true, false)?;
    let filter = ScanFilter {
        pattern: opts.pattern,
        type_name: opts.type_name.as_deref(),
    };
    let mut found = Vec::new();
    let next = ctx
        .shared
        .store
        .scan(cursor, opts.count, ctx.now, filter, |entry| {
            found.push(entry.key().to_vec())
        });
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out.array(found.len());
    for key in &found {
        ctx.out.bulk(key);
    }
    Ok(())
}

pub fn randomkey(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let pick = ctx.now ^ ctx.conn.info.id.rotate_left(17) ^ ctx.shared.stats.total_commands();
    match ctx.shared.store.random_key(ctx.now, pick) {
        Some(key) => ctx.out.bulk(&key),
        None => ctx.out.null(),
    }
    Ok(())
}

/// Moves `src` to `dst` with its TTL. Returns None when `src` is missing, Some(false) when
/// `only_new` and `dst` exists.
fn move_key(ctx: &Ctx<'_>, src: &[u8], dst: &[u8], only_new: bool) -> Option<bool> {
    let (src, dst) = (ctx.key(src), ctx.key(dst));
    let mut locked = ctx.lock_many(&[src, dst]);
    locked.shard(&src).get(&src, ctx.now, Lookup::Peek)?;
    if src.bytes == dst.bytes {
        return Some(!only_new);
    }
    if only_new
        && locked
            .shard(&dst)
            .get(&dst, ctx.now, Lookup::Peek)
            .is_some()
    {
        return Some(false);
    }
    let entry = locked.shard(&src).remove(&src, ctx.now)?;
    locked.shard(&dst).set(
        &dst,
        entry.value.as_value(),
        entry.expire_at,
        false,
        ctx.now,
    );
    Some(true)
}

pub fn rename(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    match move_key(ctx, args.get(1), args.get(2), false) {
        None => Err("ERR no such key".into()),
        Some(_) => {
            // A list renamed onto a key that clients block on serves them (as in Redis).
            ctx.shared.blocking.ready(args.get(2));
            ctx.out.ok();
            Ok(())
        }
    }
}

pub fn renamenx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    match move_key(ctx, args.get(1), args.get(2), true) {
        None => Err("ERR no such key".into()),
        Some(moved) => {
            if moved {
                ctx.shared.blocking.ready(args.get(2));
            }
            ctx.out.int(i64::from(moved));
            Ok(())
        }
    }
}

pub fn copy(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(args.get(i), "REPLACE") {
            replace = true;
            i += 1;
        } else if is(args.get(i), "DB") && i + 1 < args.len() {
            // Redis reads the index as a C int before it looks for the database.
            let db = int_arg(args.get(i + 1))?;
            if i32::try_from(db).is_err() {
                return Err(
                    "ERR value is out of range, value must between -2147483648 and 2147483647"
                        .into(),
                );
            }
            if db != 0 {
                return Err("ERR DB index is out of range".into());
            }
            i += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let (src, dst) = (ctx.key(args.get(1)), ctx.key(args.get(2)));
    if src.bytes == dst.bytes {
        return Err("ERR source and destination objects are the same".into());
    }
    let size = ctx
        .lock(&src)
        .get(&src, ctx.now, Lookup::Peek)
        .map_or(0, |e| e.memory_usage());
    let _room = ctx.admit(&dst, size)?;
    let mut locked = ctx.lock_many(&[src, dst]);
    let Some(entry) = locked.shard(&src).get(&src, ctx.now, Lookup::Peek) else {
        drop(locked);
        ctx.out.int(0);
        return Ok(());
    };
    let (value, expire_at) = (entry.value().into_owned(), entry.expire_at());
    let target = locked.shard(&dst);
    if !replace && target.get(&dst, ctx.now, Lookup::Peek).is_some() {
        drop(locked);
        ctx.out.int(0);
        return Ok(());
    }
    target.set(&dst, value.as_value(), expire_at, false, ctx.now);
    drop(locked);
    ctx.shared.blocking.ready(args.get(2));
    ctx.out.int(1);
    Ok(())
}
