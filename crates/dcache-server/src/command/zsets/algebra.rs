//! Set algebra over sorted sets (and plain sets, whose members count with score 1): ZUNION,
//! ZINTER, ZDIFF, their STORE forms, with WEIGHTS and AGGREGATE SUM|MIN|MAX, and ZINTERCARD.
//!
//! The sources are copied out of the store one key at a time (in a cluster they share a slot,
//! so a shard), then combined as Redis's `zunionInterDiffGenericCommand` does: union and
//! intersection take the sources smallest first, a weighted score that is NaN (0 × inf) counts
//! as 0, and so does a sum that is (inf + -inf).

use dcache_protocol::Args;
use dcache_store::{Lookup, Value};
use hashbrown::HashMap;

use super::{parse_score, store_result, write_members};
use crate::command::{CmdResult, Ctx, Error, SYNTAX, WRONGTYPE, int_arg, is};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, acc: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *acc += value;
                if acc.is_nan() {
                    *acc = 0.0;
                }
            }
            Aggregate::Min => *acc = acc.min(value),
            Aggregate::Max => *acc = acc.max(value),
        }
    }
}

/// One input: its members with their scores (none for a missing key), and its weight.
struct Source {
    members: Vec<(Vec<u8>, f64)>,
    weight: f64,
}

impl Source {
    fn weighted(&self, score: f64) -> f64 {
        let value = self.weight * score;
        if value.is_nan() { 0.0 } else { value }
    }
}

/// What the command asked, parsed.
struct Query {
    sources: Vec<Source>,
    aggregate: Aggregate,
    with_scores: bool,
    /// ZINTERCARD's LIMIT; 0 is none.
    limit: usize,
}

/// Parses `numkeys key… [options]` from `args[numkeys_at..]`, reading the keys as it goes (a
/// wrong type is reported before a bad option, as Redis does).
fn query(
    ctx: &Ctx<'_>,
    args: Args<'_>,
    numkeys_at: usize,
    name: &str,
    store: bool,
    op: Op,
    card_only: bool,
) -> Result<Query, Error> {
    let count = int_arg(args.get(numkeys_at))?;
    if count < 1 {
        return Err(format!("ERR at least 1 input key is needed for '{name}' command").into());
    }
    let first = numkeys_at + 1;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > args.len() - first {
        return Err(SYNTAX.into());
    }
    let mut sources = Vec::with_capacity(count);
    for key in args.iter_from(first).take(count) {
        let key = ctx.key(key);
        let mut shard = ctx.lock(&key);
        let members = match shard.get(&key, ctx.now, Lookup::Read).map(|e| e.value()) {
            None => Vec::new(),
            Some(Value::ZSet(z)) => z.iter().map(|(m, s)| (m.to_vec(), s)).collect(),
            Some(Value::Set(s)) => s.iter().map(|m| (m.to_vec(), 1.0)).collect(),
            Some(_) => return Err(WRONGTYPE.into()),
        };
        sources.push(Source {
            members,
            weight: 1.0,
        });
    }
    let mut q = Query {
        sources,
        aggregate: Aggregate::Sum,
        with_scores: false,
        limit: 0,
    };
    let mut i = first + count;
    while i < args.len() {
        let arg = args.get(i);
        let left = args.len() - i;
        if op != Op::Diff && !card_only && left > count && is(arg, "WEIGHTS") {
            for (j, source) in q.sources.iter_mut().enumerate() {
                source.weight = parse_score(args.get(i + 1 + j))
                    .ok_or(Error::from("ERR weight value is not a float"))?;
            }
            i += 1 + count;
        } else if op != Op::Diff && !card_only && left >= 2 && is(arg, "AGGREGATE") {
            let how = args.get(i + 1);
            q.aggregate = match () {
                () if is(how, "SUM") => Aggregate::Sum,
                () if is(how, "MIN") => Aggregate::Min,
                () if is(how, "MAX") => Aggregate::Max,
                () => return Err(SYNTAX.into()),
            };
            i += 2;
        } else if !store && !card_only && is(arg, "WITHSCORES") {
            q.with_scores = true;
            i += 1;
        } else if card_only && left >= 2 && is(arg, "LIMIT") {
            // Redis gives this message for text as well as for a negative number.
            let limit = dcache_protocol::request::parse_i64(args.get(i + 1))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(Error::from("ERR LIMIT can't be negative"))?;
            q.limit = limit;
            i += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    Ok(q)
}

/// The members of the result, in no particular order.
fn compute(q: &mut Query, op: Op) -> Vec<(Vec<u8>, f64)> {
    if op != Op::Diff {
        q.sources.sort_by_key(|s| s.members.len());
    }
    match op {
        Op::Union => {
            let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
            for source in &q.sources {
                for (m, s) in &source.members {
                    let value = source.weighted(*s);
                    match acc.get_mut(m) {
                        Some(score) => q.aggregate.apply(score, value),
                        None => {
                            acc.insert(m.clone(), value);
                        }
                    }
                }
            }
            acc.into_iter().collect()
        }
        Op::Inter => {
            let Some((first, others)) = q.sources.split_first() else {
                return Vec::new();
            };
            let indexes: Vec<HashMap<&[u8], f64>> = others
                .iter()
                .map(|s| s.members.iter().map(|(m, v)| (&m[..], *v)).collect())
                .collect();
            let mut out = Vec::new();
            'members: for (m, s) in &first.members {
                let mut score = first.weighted(*s);
                for (source, index) in others.iter().zip(&indexes) {
                    match index.get(&m[..]) {
                        // Redis zeroes a NaN weighted score only for the first source here: a
                        // later one (0 × inf) goes into the aggregate as NaN, so that a sum
                        // becomes 0 and a minimum or maximum keeps what it had.
                        Some(v) => q.aggregate.apply(&mut score, source.weight * *v),
                        None => continue 'members,
                    }
                }
                out.push((m.clone(), score));
                if q.limit != 0 && out.len() >= q.limit {
                    break;
                }
            }
            out
        }
        Op::Diff => {
            let Some((first, others)) = q.sources.split_first() else {
                return Vec::new();
            };
            let others: Vec<hashbrown::HashSet<&[u8]>> = others
                .iter()
                .map(|s| s.members.iter().map(|(m, _)| &m[..]).collect())
                .collect();
            first
                .members
                .iter()
                .filter(|(m, _)| !others.iter().any(|o| o.contains(&m[..])))
                .cloned()
                .collect()
        }
    }
}

fn sorted(mut members: Vec<(Vec<u8>, f64)>) -> Vec<(Vec<u8>, f64)> {
    members.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .expect("no NaN in a result")
            .then_with(|| a.0.cmp(&b.0))
    });
    members
}

fn read_form(ctx: &mut Ctx<'_>, args: Args<'_>, name: &str, op: Op) -> CmdResult {
    let mut q = query(ctx, args, 1, name, false, op, false)?;
    let result = sorted(compute(&mut q, op));
    write_members(
        &mut ctx.out,
        result.iter().map(|(m, s)| (&m[..], *s)),
        q.with_scores,
    );
    Ok(())
}

fn store_form(ctx: &mut Ctx<'_>, args: Args<'_>, name: &str, op: Op) -> CmdResult {
    let mut q = query(ctx, args, 2, name, true, op, false)?;
    let result = sorted(compute(&mut q, op));
    let stored = store_result(ctx, args.get(1), &result)?;
    ctx.out.int(stored as i64);
    Ok(())
}

pub fn zunion(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    read_form(ctx, args, "zunion", Op::Union)
}

pub fn zinter(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    read_form(ctx, args, "zinter", Op::Inter)
}

pub fn zdiff(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    read_form(ctx, args, "zdiff", Op::Diff)
}

pub fn zunionstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    store_form(ctx, args, "zunionstore", Op::Union)
}

pub fn zinterstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    store_form(ctx, args, "zinterstore", Op::Inter)
}

pub fn zdiffstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    store_form(ctx, args, "zdiffstore", Op::Diff)
}

/// ZINTERCARD numkeys key [key …] [LIMIT limit]
pub fn zintercard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut q = query(ctx, args, 1, "zintercard", false, Op::Inter, true)?;
    let count = compute(&mut q, Op::Inter).len();
    ctx.out.int(count as i64);
    Ok(())
}
