//! Ranges of a sorted set: by rank, by score (`(` for an exclusive bound, `inf`), by member
//! (`[a`, `(a`, `-`, `+`), either way, with LIMIT; what reads them (ZRANGE and its older
//! forms, ZCOUNT, ZLEXCOUNT), stores them (ZRANGESTORE) and removes them (ZREMRANGEBY*).
//!
//! A range finds its ends as Redis's listpack code does (a walk from the front for the first
//! member in range, or from the back when reversed), so that a lexicographical range over a
//! set whose scores differ, which Redis leaves unspecified, gives Redis's answer for small
//! sets; the large form finds the ends by partition point in O(log n).

use std::cmp::Ordering;

use dcache_protocol::Args;
use dcache_store::{Lookup, ZSetRef};

use super::{as_zset, read_zset, store_result, write_members, write_zset};
use crate::command::{CmdResult, Ctx, Error, SYNTAX, int_arg, is};

const NOT_FLOAT_RANGE: &str = "ERR min or max is not a float";
const NOT_LEX_RANGE: &str = "ERR min or max not valid string range item";

/// Parses a score bound as Redis's `zslParseRange` does, with `strtod` and no more checks: an
/// empty argument is 0, leading spaces pass, overflow is infinity, a NUL byte ends it; only
/// NaN and trailing text are refused.
fn strtod_bound(text: &[u8]) -> Option<f64> {
    // `strtod` reads a C string: a NUL ends it, and what follows is never looked at.
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    if text.is_empty() {
        return Some(0.0);
    }
    let text = std::str::from_utf8(text).ok()?;
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let lower = trimmed.to_ascii_lowercase();
    if lower.is_empty() || lower.contains("nan") {
        return None;
    }
    lower.parse().ok()
}

#[derive(Debug, Clone, Copy)]
struct ScoreRange {
    min: f64,
    min_ex: bool,
    max: f64,
    max_ex: bool,
}

fn score_bound(arg: &[u8]) -> Option<(f64, bool)> {
    match arg.strip_prefix(b"(") {
        Some(rest) => strtod_bound(rest).map(|v| (v, true)),
        None => strtod_bound(arg).map(|v| (v, false)),
    }
}

fn score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Error> {
    let ((min, min_ex), (max, max_ex)) = score_bound(min)
        .zip(score_bound(max))
        .ok_or(Error::from(NOT_FLOAT_RANGE))?;
    Ok(ScoreRange {
        min,
        min_ex,
        max,
        max_ex,
    })
}

#[derive(Debug, Clone, Copy)]
enum LexBound<'a> {
    /// `-`: before every member.
    Least,
    /// `+`: after every member.
    Most,
    Inclusive(&'a [u8]),
    Exclusive(&'a [u8]),
}

impl LexBound<'_> {
    fn exclusive(&self) -> bool {
        !matches!(self, LexBound::Inclusive(_))
    }

    fn rank(&self) -> u8 {
        match self {
            LexBound::Least => 0,
            LexBound::Inclusive(_) | LexBound::Exclusive(_) => 1,
            LexBound::Most => 2,
        }
    }

    fn text(&self) -> &[u8] {
        match self {
            LexBound::Inclusive(t) | LexBound::Exclusive(t) => t,
            _ => &[],
        }
    }

    fn cmp(&self, other: &LexBound<'_>) -> Ordering {
        self.rank()
            .cmp(&other.rank())
            .then_with(|| self.text().cmp(other.text()))
    }
}

fn lex_bound(arg: &[u8]) -> Option<LexBound<'_>> {
    match arg {
        b"+" => Some(LexBound::Most),
        b"-" => Some(LexBound::Least),
        [b'(', rest @ ..] => Some(LexBound::Exclusive(rest)),
        [b'[', rest @ ..] => Some(LexBound::Inclusive(rest)),
        _ => None,
    }
}

/// A range by score or by member.
#[derive(Debug, Clone, Copy)]
enum Bounds<'a> {
    Score(ScoreRange),
    Lex(LexBound<'a>, LexBound<'a>),
}

impl Bounds<'_> {
    fn score(min: &[u8], max: &[u8]) -> Result<Self, Error> {
        score_range(min, max).map(Bounds::Score)
    }

    fn lex<'a>(min: &'a [u8], max: &'a [u8]) -> Result<Bounds<'a>, Error> {
        let (min, max) = lex_bound(min)
            .zip(lex_bound(max))
            .ok_or(Error::from(NOT_LEX_RANGE))?;
        Ok(Bounds::Lex(min, max))
    }

    /// Whether no member can be in the range, whatever the set.
    fn never(&self) -> bool {
        match self {
            Bounds::Score(r) => r.min > r.max || (r.min == r.max && (r.min_ex || r.max_ex)),
            Bounds::Lex(min, max) => match min.cmp(max) {
                Ordering::Greater => true,
                Ordering::Equal => min.exclusive() || max.exclusive(),
                Ordering::Less => false,
            },
        }
    }

    fn above_min(&self, member: &[u8], score: f64) -> bool {
        match self {
            Bounds::Score(r) if r.min_ex => score > r.min,
            Bounds::Score(r) => score >= r.min,
            Bounds::Lex(min, _) => match min {
                LexBound::Least => true,
                LexBound::Most => false,
                LexBound::Inclusive(t) => member >= *t,
                LexBound::Exclusive(t) => member > *t,
            },
        }
    }

    fn below_max(&self, member: &[u8], score: f64) -> bool {
        match self {
            Bounds::Score(r) if r.max_ex => score < r.max,
            Bounds::Score(r) => score <= r.max,
            Bounds::Lex(_, max) => match max {
                LexBound::Least => false,
                LexBound::Most => true,
                LexBound::Inclusive(t) => member <= *t,
                LexBound::Exclusive(t) => member < *t,
            },
        }
    }

    /// The ranks `start..end` of the members in range, found from the front (or from the back
    /// when `reverse`), as Redis finds them.
    fn ranks(&self, z: ZSetRef<'_>, reverse: bool) -> (usize, usize) {
        let len = z.len();
        let (Some(first), Some(last)) = (z.get_by_rank(0), z.get_by_rank(len.wrapping_sub(1)))
        else {
            return (0, 0);
        };
        if self.never() || !self.above_min(last.0, last.1) || !self.below_max(first.0, first.1) {
            return (0, 0);
        }
        if !z.is_listpack() {
            let start = z.partition_point(|m, s| !self.above_min(m, s));
            let end = z.partition_point(|m, s| self.below_max(m, s));
            return (start, end.max(start));
        }
        if reverse {
            let Some(from_top) = z.iter().rev().position(|(m, s)| self.below_max(m, s)) else {
                return (0, 0);
            };
            let end = len - from_top;
            let run = z
                .range_by_rank(0, end)
                .rev()
                .take_while(|&(m, s)| self.above_min(m, s))
                .count();
            (end - run, end)
        } else {
            let Some(start) = z.iter().position(|(m, s)| self.above_min(m, s)) else {
                return (0, 0);
            };
            let run = z
                .range_by_rank(start, len)
                .take_while(|&(m, s)| self.below_max(m, s))
                .count();
            (start, start + run)
        }
    }
}

/// Ranks `start..=stop` (negative from the end) as `start..end` within `len`, Redis's way.
fn rank_range(len: usize, start: i64, stop: i64) -> (usize, usize) {
    let len = len as i64;
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return (0, 0);
    }
    (start as usize, (stop.min(len - 1) + 1) as usize)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// What ZRANGE and its older forms ask for, parsed.
struct Request<'a> {
    by: By,
    reverse: bool,
    with_scores: bool,
    /// LIMIT offset count: a negative offset selects nothing, a negative count everything.
    limit: Option<(i64, i64)>,
    min: &'a [u8],
    max: &'a [u8],
}

/// Parses Redis's `zrangeGenericCommand` options from `args[key_at + 3..]`; `by` and
/// `reverse` are given by the older commands, which then refuse BYSCORE, BYLEX and REV.
fn parse_request<'a>(
    args: Args<'a>,
    key_at: usize,
    store: bool,
    by: Option<By>,
    reverse: Option<bool>,
) -> Result<Request<'a>, Error> {
    let (mut by_opt, mut rev_opt) = (by, reverse);
    let mut with_scores = false;
    let mut limit = None;
    let mut i = key_at + 3;
    while i < args.len() {
        let arg = args.get(i);
        let left = args.len() - i - 1;
        if !store && is(arg, "WITHSCORES") {
            with_scores = true;
        } else if is(arg, "LIMIT") && left >= 2 {
            limit = Some((int_arg(args.get(i + 1))?, int_arg(args.get(i + 2))?));
            i += 2;
        } else if rev_opt.is_none() && is(arg, "REV") {
            rev_opt = Some(true);
        } else if by_opt.is_none() && is(arg, "BYLEX") {
            by_opt = Some(By::Lex);
        } else if by_opt.is_none() && is(arg, "BYSCORE") {
            by_opt = Some(By::Score);
        } else {
            return Err(SYNTAX.into());
        }
        i += 1;
    }
    let by = by_opt.unwrap_or(By::Rank);
    let reverse = rev_opt.unwrap_or(false);
    // Redis checks the count only: `LIMIT 5 -1` passes with a rank range.
    if limit.is_some_and(|(_, count)| count != -1) && by == By::Rank {
        return Err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
                .into(),
        );
    }
    if with_scores && by == By::Lex {
        return Err("ERR syntax error, WITHSCORES not supported in combination with BYLEX".into());
    }
    let (mut min, mut max) = (args.get(key_at + 1), args.get(key_at + 2));
    if reverse && by != By::Rank {
        // Given as max, min.
        std::mem::swap(&mut min, &mut max);
    }
    Ok(Request {
        by,
        reverse,
        with_scores,
        limit,
        min,
        max,
    })
}

/// A request's range parsed: ranks, or bounds.
enum Parsed<'a> {
    Ranks(i64, i64),
    Bounds(Bounds<'a>),
}

impl<'a> Request<'a> {
    fn parse(&self) -> Result<Parsed<'a>, Error> {
        Ok(match self.by {
            By::Rank => Parsed::Ranks(int_arg(self.min)?, int_arg(self.max)?),
            By::Score => Parsed::Bounds(Bounds::score(self.min, self.max)?),
            By::Lex => Parsed::Bounds(Bounds::lex(self.min, self.max)?),
        })
    }

    /// The ranks selected, ascending (the reply walks them backwards when reversed).
    fn select(&self, parsed: &Parsed<'_>, z: ZSetRef<'_>) -> (usize, usize) {
        let len = z.len();
        let (start, end) = match parsed {
            Parsed::Ranks(start, stop) => {
                let (a, b) = rank_range(len, *start, *stop);
                if self.reverse {
                    (len - b, len - a)
                } else {
                    (a, b)
                }
            }
            Parsed::Bounds(bounds) => bounds.ranks(z, self.reverse),
        };
        // Redis reads LIMIT for ranges by score or member only.
        let (Some((offset, count)), Parsed::Bounds(_)) = (self.limit, parsed) else {
            return (start, end);
        };
        if offset < 0 {
            return (0, 0);
        }
        let available = end - start;
        let skip = usize::try_from(offset).map_or(available, |o| o.min(available));
        let take = if count < 0 {
            available - skip
        } else {
            usize::try_from(count).map_or(available - skip, |c| c.min(available - skip))
        };
        if self.reverse {
            (end - skip - take, end - skip)
        } else {
            (start + skip, start + skip + take)
        }
    }
}

fn range_command(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    by: Option<By>,
    reverse: Option<bool>,
) -> CmdResult {
    let request = parse_request(args, 1, false, by, reverse)?;
    let parsed = request.parse()?;
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let Some(entry) = shard.get(&key, ctx.now, Lookup::Read) else {
        drop(shard);
        ctx.out.array(0);
        return Ok(());
    };
    let z = as_zset(entry.value())?;
    let (start, end) = request.select(&parsed, z);
    let members = z.range_by_rank(start, end);
    if request.reverse {
        write_members(&mut ctx.out, members.rev(), request.with_scores);
    } else {
        write_members(&mut ctx.out, members, request.with_scores);
    }
    Ok(())
}

/// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
pub fn zrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_command(ctx, args, None, None)
}

pub fn zrevrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_command(ctx, args, Some(By::Rank), Some(true))
}

pub fn zrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_command(ctx, args, Some(By::Score), Some(false))
}

pub fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_command(ctx, args, Some(By::Score), Some(true))
}

pub fn zrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_command(ctx, args, Some(By::Lex), Some(false))
}

pub fn zrevrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_command(ctx, args, Some(By::Lex), Some(true))
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]: the range replaces
/// `dst` (whatever it held; an empty range deletes it).
pub fn zrangestore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let request = parse_request(args, 2, true, None, None)?;
    let parsed = request.parse()?;
    let members = read_zset(ctx, args.get(2), |z| {
        let (start, end) = request.select(&parsed, z);
        let members = z.range_by_rank(start, end);
        let collect = |(m, s): (&[u8], f64)| (m.to_vec(), s);
        if request.reverse {
            members.rev().map(collect).collect::<Vec<_>>()
        } else {
            members.map(collect).collect()
        }
    })?
    .unwrap_or_default();
    let stored = store_result(ctx, args.get(1), &members)?;
    ctx.out.int(stored as i64);
    Ok(())
}

/// The count of members within `bounds`.
fn count_in(ctx: &mut Ctx<'_>, key: &[u8], bounds: Bounds<'_>) -> CmdResult {
    let count = read_zset(ctx, key, |z| {
        let (start, end) = bounds.ranks(z, false);
        end - start
    })?
    .unwrap_or(0);
    ctx.out.int(count as i64);
    Ok(())
}

pub fn zcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    count_in(ctx, args.get(1), Bounds::score(args.get(2), args.get(3))?)
}

pub fn zlexcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    count_in(ctx, args.get(1), Bounds::lex(args.get(2), args.get(3))?)
}

/// Removes the members of ranks `select(z)` and replies with how many went.
fn remove_ranks(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    select: impl FnOnce(ZSetRef<'_>) -> (usize, usize),
) -> CmdResult {
    let removed = write_zset(ctx, key, |z| {
        let (start, end) = select(z.view());
        let doomed: Vec<Vec<u8>> = z
            .range_by_rank(start, end)
            .map(|(m, _)| m.to_vec())
            .collect();
        for m in &doomed {
            z.remove(m);
        }
        Ok(doomed.len())
    })?
    .unwrap_or(0);
    ctx.out.int(removed as i64);
    Ok(())
}

pub fn zremrangebyrank(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (start, stop) = (int_arg(args.get(2))?, int_arg(args.get(3))?);
    remove_ranks(ctx, args.get(1), |z| rank_range(z.len(), start, stop))
}

pub fn zremrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let bounds = Bounds::score(args.get(2), args.get(3))?;
    remove_ranks(ctx, args.get(1), |z| bounds.ranks(z, false))
}

pub fn zremrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let bounds = Bounds::lex(args.get(2), args.get(3))?;
    remove_ranks(ctx, args.get(1), |z| bounds.ranks(z, false))
}
