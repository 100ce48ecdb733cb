//! TTL commands: EXPIRE and friends with NX/XX/GT/LT, TTL, EXPIRETIME, PERSIST.

use dcache_protocol::Args;
use dcache_store::Lookup;

use super::{CmdResult, Ctx, Error, int_arg};

/// Sets a TTL from `args[2]` in `unit_ms` units, relative to now or absolute.
fn set_expiry(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    unit_ms: i64,
    absolute: bool,
    cmd: &str,
) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in args.iter_from(3) {
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                return Err(
                    format!("ERR Unsupported option {}", String::from_utf8_lossy(opt)).into(),
                );
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    // Redis reads the options first and the time after them.
    let amount = int_arg(args.get(2))?;
    let invalid = || Error::from(format!("ERR invalid expire time in '{cmd}' command"));
    let ms = amount.checked_mul(unit_ms).ok_or_else(invalid)?;
    let at = if absolute {
        Some(ms)
    } else {
        ms.checked_add(ctx.now as i64)
    }
    .ok_or_else(invalid)?;

    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let Some(entry) = shard.get(&key, ctx.now, Lookup::Write) else {
        drop(shard);
        ctx.out.int(0);
        return Ok(());
    };
    let current = entry.expire_at();
    let allowed = match current {
        _ if nx => current.is_none(),
        None => !(xx || gt),
        Some(cur) => (!gt || at > cur as i64) && (!lt || at < cur as i64),
    };
    if !allowed {
        drop(shard);
        ctx.out.int(0);
        return Ok(());
    }
    if at <= ctx.now as i64 {
        shard.delete(&key, ctx.now);
    } else {
        shard.set_expire(&key, Some(at as u64), ctx.now);
    }
    drop(shard);
    ctx.out.int(1);
    Ok(())
}

pub fn expire(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    set_expiry(ctx, args, 1000, false, "expire")
}

pub fn pexpire(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    set_expiry(ctx, args, 1, false, "pexpire")
}

pub fn expireat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    set_expiry(ctx, args, 1000, true, "expireat")
}

pub fn pexpireat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    set_expiry(ctx, args, 1, true, "pexpireat")
}

/// The key's expiry: -2 when missing, -1 when persistent, else `f(expire_at)`.
fn report(ctx: &mut Ctx<'_>, args: Args<'_>, f: impl Fn(u64, u64) -> i64) -> CmdResult {
    let key = ctx.key(args.get(1));
    let reply = match ctx.lock(&key).get(&key, ctx.now, Lookup::Peek) {
        None => -2,
        Some(entry) => entry.expire_at().map_or(-1, |at| f(at, ctx.now)),
    };
    ctx.out.int(reply);
    Ok(())
}

pub fn ttl(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    report(ctx, args, |at, now| ((at - now + 500) / 1000) as i64)
}

pub fn pttl(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    report(ctx, args, |at, now| (at - now) as i64)
}

pub fn expiretime(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    report(ctx, args, |at, _| (at / 1000) as i64)
}

pub fn pexpiretime(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    report(ctx, args, |at, _| at as i64)
}

pub fn persist(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let had_ttl = shard
        .get(&key, ctx.now, Lookup::Write)
        .is_some_and(|e| e.expire_at().is_some());
    if had_ttl {
        shard.set_expire(&key, None, ctx.now);
    }
    drop(shard);
    ctx.out.int(i64::from(had_ttl));
    Ok(())
}
