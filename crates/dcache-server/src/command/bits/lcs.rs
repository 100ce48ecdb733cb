//! LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest common subsequence of
//! two strings, by the classic dynamic programming table, as Redis computes it (so that among
//! several subsequences of the longest length the same one is chosen, and its matches come in
//! the same ranges).
//!
//! The table takes `(len1 + 1) * (len2 + 1)` 32-bit cells: it is refused past
//! `proto-max-bulk-len` bytes, as in Redis, and built after the strings are copied out, with no
//! shard locked.

use dcache_protocol::Args;
use dcache_store::{Lookup, Value};

use crate::command::{CmdResult, Ctx, SYNTAX, int_arg, is};

/// A match: the range in the first string, the range in the second, and its length.
type Match = ((usize, usize), (usize, usize), usize);

pub fn lcs(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (a, b) = {
        let keys = [ctx.key(args.get(1)), ctx.key(args.get(2))];
        let mut locked = ctx.lock_many(&keys);
        let mut strings = [None, None];
        for (i, key) in keys.iter().enumerate() {
            strings[i] = match locked.shard(key).get(key, ctx.now, Lookup::Read) {
                Some(entry) => match entry.value() {
                    Value::Str(s) => Some(s.to_vec()),
                    _ => None,
                },
                None => Some(Vec::new()),
            };
        }
        let [Some(a), Some(b)] = strings else {
            return Err("ERR The specified keys must contain string values".into());
        };
        (a, b)
    };
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut j = 3;
    while j < args.len() {
        let opt = args.get(j);
        if is(opt, "IDX") {
            idx = true;
        } else if is(opt, "LEN") {
            len_only = true;
        } else if is(opt, "WITHMATCHLEN") {
            with_len = true;
        } else if is(opt, "MINMATCHLEN") && j + 1 < args.len() {
            min_len = int_arg(args.get(j + 1))?.max(0);
            j += 1;
        } else {
            return Err(SYNTAX.into());
        }
        j += 1;
    }
    if idx && len_only {
        return Err("ERR If you want both the length and indexes, please just use IDX.".into());
    }
    if a.len() >= u32::MAX as usize - 1 || b.len() >= u32::MAX as usize - 1 {
        return Err("ERR String too long for LCS".into());
    }
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells.saturating_mul(4) > ctx.conn.max_bulk_len as u64 {
        return Err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len".into(),
        );
    }
    let (table, width) = table(&a, &b);
    let at = |i: usize, j: usize| table[i * width + j];
    let total = at(a.len(), b.len());
    let (subsequence, matches) = walk(&a, &b, &table, width, min_len as u64);
    if idx {
        ctx.out.map(2);
        ctx.out.bulk(b"matches");
        ctx.out.array(matches.len());
        for ((a0, a1), (b0, b1), n) in matches {
            ctx.out.array(if with_len { 3 } else { 2 });
            ctx.out.array(2);
            ctx.out.int(a0 as i64);
            ctx.out.int(a1 as i64);
            ctx.out.array(2);
            ctx.out.int(b0 as i64);
            ctx.out.int(b1 as i64);
            if with_len {
                ctx.out.int(n as i64);
            }
        }
        ctx.out.bulk(b"len");
        ctx.out.int(i64::from(total));
    } else if len_only {
        ctx.out.int(i64::from(total));
    } else {
        ctx.out.bulk(&subsequence);
    }
    Ok(())
}

/// `LCS(i, j)`, the length of the longest common subsequence of `a[..i]` and `b[..j]`, at
/// `i * width + j`.
fn table(a: &[u8], b: &[u8]) -> (Vec<u32>, usize) {
    let width = b.len() + 1;
    let mut t = vec![0u32; (a.len() + 1) * width];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i * width + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * width + j - 1] + 1
            } else {
                t[(i - 1) * width + j].max(t[i * width + j - 1])
            };
        }
    }
    (t, width)
}

/// Walks the table back from the end: the subsequence, and its runs of matches (from the
/// end of the strings, as Redis lists them) of at least `min_len`, when given.
fn walk(a: &[u8], b: &[u8], t: &[u32], width: usize, min_len: u64) -> (Vec<u8>, Vec<Match>) {
    let at = |i: usize, j: usize| t[i * width + j];
    let mut out = vec![0u8; at(a.len(), b.len()) as usize];
    let mut left = out.len();
    let mut matches = Vec::new();
    // The run being tracked: `None` while there is none (Redis marks it with `alen`).
    let mut run: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            out[left - 1] = a[i - 1];
            run = match run {
                None => Some((i - 1, i - 1, j - 1, j - 1)),
                // Contiguous with the run: extend it backwards.
                Some((a0, a1, b0, b1)) if a0 == i && b0 == j => Some((a0 - 1, a1, b0 - 1, b1)),
                other => {
                    emit = true;
                    other
                }
            };
            if let Some((a0, _, b0, _)) = run
                && (a0 == 0 || b0 == 0)
            {
                emit = true;
            }
            left -= 1;
            i -= 1;
            j -= 1;
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = run.is_some();
        }
        if emit && let Some((a0, a1, b0, b1)) = run.take() {
            let len = a1 - a0 + 1;
            if min_len == 0 || len as u64 >= min_len {
                matches.push(((a0, a1), (b0, b1), len));
            }
        }
    }
    (out, matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_redis_documented_example() {
        let (a, b) = (b"ohmytext".as_slice(), b"mynewtext".as_slice());
        let (t, w) = table(a, b);
        let (s, matches) = walk(a, b, &t, w, 0);
        assert_eq!(s, b"mytext");
        assert_eq!(matches, vec![((4, 7), (5, 8), 4), ((2, 3), (0, 1), 2)]);
        let (_, long) = walk(a, b, &t, w, 4);
        assert_eq!(long, vec![((4, 7), (5, 8), 4)]);
    }
}
