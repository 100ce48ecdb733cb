//! `CL.THROTTLE`: a rate limiter in one command, compatible with the redis-cell module's.
//!
//! The generic cell rate algorithm (GCRA) keeps one number per key: the theoretical arrival time
//! (TAT), when the key's bucket would be empty again if requests came exactly at the allowed rate.
//! A request of `quantity` moves the TAT on by `quantity` emission intervals; it is allowed when
//! the new TAT is no further ahead of now than the burst tolerance. No background drip, no list
//! of timestamps: one read and one write of one small string, under the key's shard lock, so
//! concurrent requests on a key are counted exactly (none can slip between another's read and
//! write).
//!
//! The value stored is the TAT in Unix nanoseconds as a decimal string, with an expiry at the TAT
//! (a key untouched past then is back to a full bucket, so it cleans itself up). It replicates as
//! any string does. See `docs/RATE-LIMITING.md`.

use dcache_protocol::Args;
use dcache_store::{Lookup, Value};

use super::strings::as_str;
use super::{CmdResult, Ctx, Error, int_arg};

const NANOS_PER_SEC: i128 = 1_000_000_000;
const NANOS_PER_MS: i128 = 1_000_000;

/// A limit: `limit` requests at once (the burst plus one), and one more every `emission` ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    emission: i128,
    /// How far ahead of now the TAT may be: `emission × limit`.
    tolerance: i128,
    limit: i64,
}

impl Quota {
    /// `count` requests per `period` seconds, with bursts of `max_burst` more than one.
    fn new(max_burst: i64, count: i64, period: i64) -> Result<Quota, Error> {
        if max_burst < 0 {
            return Err("ERR max_burst must not be negative".into());
        }
        if count <= 0 || period <= 0 {
            return Err("ERR count per period and period must be positive".into());
        }
        let emission = i128::from(period) * NANOS_PER_SEC / i128::from(count);
        if emission == 0 {
            return Err("ERR rate is too high: more than one request per nanosecond".into());
        }
        let limit = max_burst + 1;
        Ok(Quota {
            emission,
            tolerance: emission * i128::from(limit),
            limit,
        })
    }
}

/// What one request finds, and what it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    limited: bool,
    remaining: i64,
    /// When a limited request could succeed (ns from now); `None` when allowed, or when the
    /// request is larger than the bucket and never will.
    retry_after: Option<i128>,
    /// When the bucket is full again (ns from now).
    reset_after: i128,
    /// The new TAT to store, when the request was allowed and moved it.
    store: Option<i128>,
}

/// The GCRA step: a request of `quantity` at `now` (Unix ns) against the key's stored TAT.
fn throttle(quota: Quota, tat: Option<i128>, now: i128, quantity: i64) -> Outcome {
    let increment = quota.emission * i128::from(quantity);
    let tat = tat.unwrap_or(now);
    let new_tat = tat.max(now) + increment;
    // The request fits when the new TAT is within the tolerance of now.
    let early = new_tat - quota.tolerance - now;
    let (limited, ttl, retry_after, store) = if early > 0 {
        // A request larger than the whole bucket never fits: no time to retry after.
        let retry = (increment <= quota.tolerance).then_some(early);
        (true, tat - now, retry, None)
    } else {
        (
            false,
            new_tat - now,
            None,
            (new_tat != tat).then_some(new_tat),
        )
    };
    let left = quota.tolerance - ttl;
    let remaining = if left > -quota.emission {
        i64::try_from(left / quota.emission).unwrap_or(i64::MAX)
    } else {
        0
    };
    Outcome {
        limited,
        remaining,
        retry_after,
        reset_after: ttl,
        store,
    }
}

/// Whole seconds, rounded up when there is at least a millisecond more, so that a client that
/// waits that long is not early (as redis-cell rounds).
fn seconds(ns: i128) -> i64 {
    let whole = ns / NANOS_PER_SEC;
    let up = i128::from((ns % NANOS_PER_SEC) / NANOS_PER_MS > 0);
    i64::try_from(whole + up).unwrap_or(i64::MAX)
}

/// `CL.THROTTLE key max_burst count_per_period period [quantity]`: `[limited, limit, remaining,
/// retry_after, reset_after]`, the two times in seconds (-1 for retry when allowed).
pub fn cl_throttle(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 6 {
        return Err(
            "ERR Usage: cl.throttle <key> <max_burst> <count per period> <period> [<quantity>]"
                .into(),
        );
    }
    let max_burst = int_arg(args.get(2))?;
    let count = int_arg(args.get(3))?;
    let period = int_arg(args.get(4))?;
    let quantity = match args.len() {
        6 => int_arg(args.get(5))?,
        _ => 1,
    };
    if quantity < 0 {
        return Err("ERR quantity must not be negative".into());
    }
    let quota = Quota::new(max_burst, count, period)?;
    let now_ns = i128::from(ctx.now) * NANOS_PER_MS;
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let tat = match shard.get(&key, ctx.now, Lookup::Write) {
        Some(entry) => Some(
            dcache_protocol::request::parse_i64(as_str(entry.value())?)
                .map(i128::from)
                .ok_or(Error::from(
                    "ERR the key does not hold a rate limiter's state (an integer)",
                ))?,
        ),
        None => None,
    };
    let outcome = throttle(quota, tat, now_ns, quantity);
    if let Some(new_tat) = outcome.store {
        // Expires when the bucket is full again: then a missing key means the same.
        let ttl_ms = (outcome.reset_after + NANOS_PER_MS - 1) / NANOS_PER_MS;
        let expire_at = ctx.now + u64::try_from(ttl_ms.max(1)).unwrap_or(u64::MAX / 2);
        let mut buf = itoa::Buffer::new();
        let text = buf.format(i64::try_from(new_tat).unwrap_or(i64::MAX));
        shard.set(
            &key,
            Value::Str(text.as_bytes()),
            Some(expire_at),
            false,
            ctx.now,
        );
    }
    drop(shard);
    ctx.out.array(5);
    ctx.out.int(i64::from(outcome.limited));
    ctx.out.int(quota.limit);
    ctx.out.int(outcome.remaining);
    ctx.out.int(outcome.retry_after.map_or(-1, seconds));
    ctx.out.int(seconds(outcome.reset_after));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i128 = NANOS_PER_SEC;
    const MS: i128 = NANOS_PER_MS;

    /// Runs requests `(at, quantity)` against one key from an empty start, keeping the TAT as
    /// the command stores it.
    fn run(quota: Quota, requests: &[(i128, i64)]) -> Vec<Outcome> {
        let mut tat = None;
        requests
            .iter()
            .map(|&(at, quantity)| {
                // A stored TAT expires when the bucket is full again.
                if tat.is_some_and(|t| t <= at) {
                    tat = None;
                }
                let outcome = throttle(quota, tat, at, quantity);
                if let Some(new) = outcome.store {
                    tat = Some(new);
                }
                outcome
            })
            .collect()
    }

    #[test]
    fn a_burst_is_allowed_then_one_request_per_interval() {
        // 10 per minute (one every 6 s), bursts of 4 more: 5 at once.
        let quota = Quota::new(4, 10, 60).unwrap();
        assert_eq!((quota.limit, quota.emission), (5, 6 * SEC));
        let t0 = 1_800_000_000 * SEC;
        let burst: Vec<_> = (0..6).map(|i| (t0 + i * MS, 1)).collect();
        let out = run(quota, &burst);
        let allowed: Vec<bool> = out.iter().map(|o| !o.limited).collect();
        assert_eq!(allowed, [true, true, true, true, true, false]);
        let remaining: Vec<i64> = out.iter().map(|o| o.remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0, 0]);
        // The sixth waits for the first interval to pass (6 s less the 5 ms elapsed).
        assert_eq!(out[5].retry_after, Some(6 * SEC - 5 * MS));
        assert_eq!(seconds(out[5].retry_after.unwrap()), 6);
        assert!(out[..5].iter().all(|o| o.retry_after.is_none()));
        // The bucket refills in five intervals from the first request.
        assert_eq!(out[4].reset_after, 30 * SEC - 4 * MS);
    }

    #[test]
    fn time_refills_the_bucket_one_interval_at_a_time() {
        let quota = Quota::new(1, 1, 1).unwrap(); // 2 at once, then 1 per second
        let t0 = 1_800_000_000 * SEC;
        let out = run(
            quota,
            &[
                (t0, 1),
                (t0, 1),
                (t0, 1),             // limited: the bucket is empty
                (t0 + 1000 * MS, 1), // one interval later: one more
                (t0 + 1000 * MS, 1), // limited again
                (t0 + 10 * SEC, 1),  // long idle: full again
            ],
        );
        let allowed: Vec<bool> = out.iter().map(|o| !o.limited).collect();
        assert_eq!(allowed, [true, true, false, true, false, true]);
        assert_eq!(out[5].remaining, 1);
    }

    #[test]
    fn quantity_zero_peeks_and_an_oversized_request_never_fits() {
        let quota = Quota::new(4, 1, 1).unwrap();
        let t0 = 1_800_000_000 * SEC;
        let out = run(quota, &[(t0, 2), (t0, 0), (t0, 6)]);
        assert!(!out[0].limited && out[0].remaining == 3);
        // A peek changes nothing and reports the same.
        assert!(!out[1].limited && out[1].remaining == 3 && out[1].store.is_none());
        // Six never fit a bucket of five: limited, with no time to retry after.
        assert!(out[2].limited && out[2].retry_after.is_none());
    }

    #[test]
    fn seconds_round_up_from_a_millisecond() {
        assert_eq!(seconds(0), 0);
        assert_eq!(seconds(999_999), 0);
        assert_eq!(seconds(MS), 1);
        assert_eq!(seconds(SEC), 1);
        assert_eq!(seconds(SEC + MS), 2);
    }

    #[test]
    fn bad_quotas_are_refused() {
        assert!(Quota::new(-1, 1, 1).is_err());
        assert!(Quota::new(1, 0, 1).is_err());
        assert!(Quota::new(1, 1, 0).is_err());
        assert!(Quota::new(1, 2_000_000_000, 1).is_err());
    }
}
