//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, on string values in Redis's own HLL format
//! (`format`), so that the bytes move between Redis and dcache with GET and SET.
//!
//! One difference from Redis, on purpose: Redis's PFCOUNT of one key stores the count it
//! computed in the value's header (a write made by a read command). dcache's reads never write:
//! a write there would give the key a new version that its replicas never see, and a replica
//! serving READONLY reads would make versions of its own. PFCOUNT uses a valid cached count
//! (one that PFADD left valid, or that came with the bytes) and otherwise computes it, so the
//! answer is the same; only the header's cache bytes can differ from Redis's after a PFCOUNT.

mod format;

use dcache_protocol::Args;
use dcache_store::{Lookup, Value};

use super::strings::as_str;
use super::{CmdResult, Ctx, Error};

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

/// The bytes of an HLL value: WRONGTYPE for another type, Redis's HLL message for a string
/// without the HLL header.
fn as_hll(value: Value<'_>) -> Result<&[u8], Error> {
    let bytes = as_str(value)?;
    if format::is_hll(bytes) {
        Ok(bytes)
    } else {
        Err(NOT_HLL.into())
    }
}

fn max_sparse(ctx: &Ctx<'_>) -> usize {
    ctx.shared.read_config(|c| c.hll_sparse_max_bytes.0)
}

pub fn pfadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let max_sparse = max_sparse(ctx);
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let (mut hll, mut updated) = match shard.get(&key, ctx.now, Lookup::Write) {
        None => (format::new_sparse(), true),
        Some(entry) => (as_hll(entry.value())?.to_vec(), false),
    };
    let mut corrupt = false;
    for element in args.iter_from(2) {
        match format::add(&mut hll, element, max_sparse) {
            Ok(rose) => updated |= rose,
            Err(format::Corrupt) => {
                corrupt = true;
                break;
            }
        }
    }
    if updated && !corrupt {
        format::invalidate(&mut hll);
    }
    if updated {
        // Redis changes the value in place, so the registers raised before a corrupted part
        // was found stay raised.
        shard.set(&key, Value::Str(&hll), None, true, ctx.now);
    }
    drop(shard);
    if corrupt {
        return Err(CORRUPT.into());
    }
    ctx.out.int(i64::from(updated));
    Ok(())
}

pub fn pfcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let count = if args.len() == 2 {
        let key = ctx.key(args.get(1));
        let mut shard = ctx.lock(&key);
        match shard.get(&key, ctx.now, Lookup::Read) {
            None => 0,
            Some(entry) => {
                let hll = as_hll(entry.value())?;
                match format::cached(hll) {
                    Some(card) => card,
                    None => format::estimate(&format::histogram(hll).map_err(|_| CORRUPT)?),
                }
            }
        }
    } else {
        // The count of the union: the largest of each register over every key.
        let keys: Vec<_> = args.iter_from(1).map(|k| ctx.key(k)).collect();
        let mut locked = ctx.lock_many(&keys);
        let mut max = vec![0u8; format::REGISTERS];
        for key in &keys {
            if let Some(entry) = locked.shard(key).get(key, ctx.now, Lookup::Read) {
                format::merge_into(&mut max, as_hll(entry.value())?).map_err(|_| CORRUPT)?;
            }
        }
        format::estimate(&format::raw_histogram(&max))
    };
    ctx.out.int(count as i64);
    Ok(())
}

pub fn pfmerge(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let max_sparse = max_sparse(ctx);
    let keys: Vec<_> = args.iter_from(1).map(|k| ctx.key(k)).collect();
    let mut locked = ctx.lock_many(&keys);
    let mut max = vec![0u8; format::REGISTERS];
    // The destination is a source too. A dense source makes the destination dense at once.
    let mut dense = false;
    for key in &keys {
        if let Some(entry) = locked.shard(key).get(key, ctx.now, Lookup::Read) {
            let hll = as_hll(entry.value())?;
            dense |= format::is_dense(hll);
            format::merge_into(&mut max, hll).map_err(|_| CORRUPT)?;
        }
    }
    let dest = &keys[0];
    let shard = locked.shard(dest);
    let mut hll = match shard.get(dest, ctx.now, Lookup::Write) {
        Some(entry) => as_str(entry.value())?.to_vec(),
        None => format::new_sparse(),
    };
    if dense {
        format::to_dense(&mut hll).map_err(|_| CORRUPT)?;
    }
    for (index, &value) in max.iter().enumerate() {
        if value != 0 {
            // The destination was checked as a source: its registers decode.
            let _ = format::set(&mut hll, index, value, max_sparse);
        }
    }
    format::invalidate(&mut hll);
    shard.set(dest, Value::Str(&hll), None, true, ctx.now);
    drop(locked);
    ctx.out.ok();
    Ok(())
}
