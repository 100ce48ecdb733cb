//! Geo commands, on sorted sets as in Redis: a member's score is its 52-bit geohash (`hash`).
//! GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH, GEOSEARCHSTORE and the read-only GEORADIUS
//! forms.
//!
//! A search visits the boxes Redis visits, in Redis's order, so that unsorted results and
//! `COUNT … ANY` pick the same members. Each box is found by a scan of the set in score order:
//! linear in the set's size for now, until sorted sets have a range look-up.
//! GEORADIUS and GEORADIUSBYMEMBER themselves (with STORE) are not here: their destination key
//! follows a keyword, which the command table cannot describe yet (so neither routing nor
//! replication would see it).

mod hash;

use dcache_protocol::Args;
use dcache_store::{Kind, Lookup, Value, ZSetRef, ZSetValue};

use super::zsets::{as_zset, read_zset};
use super::{CmdResult, Ctx, Error, NOT_FLOAT, NOT_INTEGER, SYNTAX, WRONGTYPE, int_arg, is};
use hash::{Search, Shape};

const UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const NO_MEMBER: &str = "ERR could not decode requested zset member";

/// A float argument as Redis's `getDoubleFromObject` takes it: `inf` is a number, but a value
/// that overflows to infinity or underflows to zero is not, and neither is NaN.
fn double_arg(arg: &[u8]) -> Option<f64> {
    let value = super::parse_float(arg)?;
    let text = std::str::from_utf8(arg).ok()?.to_ascii_lowercase();
    let unsigned = text.trim_start_matches(['+', '-']);
    if value.is_infinite() && !unsigned.starts_with("inf") {
        return None;
    }
    let mantissa = unsigned.split('e').next().unwrap_or("");
    if value == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return None;
    }
    Some(value)
}

/// A longitude and latitude from two arguments, in Redis's limits.
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<[f64; 2], Error> {
    let x = double_arg(lon).ok_or(Error::from(NOT_FLOAT))?;
    let y = double_arg(lat).ok_or(Error::from(NOT_FLOAT))?;
    if !(hash::LONG_MIN..=hash::LONG_MAX).contains(&x)
        || !(hash::LAT_MIN..=hash::LAT_MAX).contains(&y)
    {
        return Err(format!("ERR invalid longitude,latitude pair {x:.6},{y:.6}").into());
    }
    Ok([x, y])
}

/// Meters per unit.
fn unit(arg: &[u8]) -> Result<f64, Error> {
    match arg.to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err(UNIT.into()),
    }
}

/// A coordinate as Redis prints it: 17 decimals, trailing zeros trimmed.
fn human(value: f64) -> String {
    let text = format!("{value:.17}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A distance as Redis prints it: rounded to four decimals by scaling, as `llrint` does
/// (an out-of-range or NaN value becomes `i64::MIN`, as on x86).
fn distance4(value: f64) -> String {
    if value == 0.0 {
        return "0.0000".to_owned();
    }
    let scaled = (value * 10000.0).round_ties_even();
    let fixed = if scaled.is_finite() && scaled.abs() < 9.223_372_036_854_776e18 {
        scaled as i64
    } else {
        i64::MIN
    };
    let magnitude = fixed.unsigned_abs();
    let sign = if fixed < 0 { "-" } else { "" };
    format!("{sign}{}.{:04}", magnitude / 10000, magnitude % 10000)
}

/// A score as `long long`, as C converts it on x86 (out of range: `i64::MIN`).
fn score_int(score: f64) -> i64 {
    if score.is_finite() && score.abs() < 9.223_372_036_854_776e18 {
        score as i64
    } else {
        i64::MIN
    }
}

fn coordinates(ctx: &mut Ctx<'_>, xy: [f64; 2]) {
    ctx.out.array(2);
    ctx.out.double_text(&human(xy[0]));
    ctx.out.double_text(&human(xy[1]));
}

/// GEOADD key [NX|XX] [CH] longitude latitude member [...]: ZADD with each position's score.
pub fn geoadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (mut nx, mut xx, mut ch) = (false, false, false);
    let mut at = 2;
    while at < args.len() {
        let opt = args.get(at);
        if is(opt, "NX") {
            nx = true;
        } else if is(opt, "XX") {
            xx = true;
        } else if is(opt, "CH") {
            ch = true;
        } else {
            break;
        }
        at += 1;
    }
    let rest = args.len() - at;
    if !rest.is_multiple_of(3) || (xx && nx) {
        return Err(SYNTAX.into());
    }
    let mut points = Vec::with_capacity(rest / 3);
    for i in (at..args.len()).step_by(3) {
        let [x, y] = lon_lat(args.get(i), args.get(i + 1))?;
        points.push((hash::score_of(x, y) as f64, args.get(i + 2)));
    }
    if points.is_empty() {
        return Err(SYNTAX.into());
    }
    // GEOADD is ZADD: the set changes form at the configured limits.
    let limits = ctx.shared.zset_limits();
    let key = ctx.key(args.get(1));
    let mut shard = ctx.lock(&key);
    let create = (!xx).then_some(Kind::ZSet);
    let Some(mut handle) = shard.modify(&key, ctx.now, create) else {
        drop(shard);
        ctx.out.int(0);
        return Ok(());
    };
    let mut zset = handle.zset_mut().ok_or(Error::from(WRONGTYPE))?;
    let (mut added, mut updated) = (0, 0);
    for (score, member) in points {
        match zset.score(member) {
            None if !xx => {
                zset.insert_with(member, score, limits);
                added += 1;
            }
            Some(old) if !nx && old != score => {
                zset.insert_with(member, score, limits);
                updated += 1;
            }
            _ => {}
        }
    }
    drop(handle);
    drop(shard);
    if added > 0 {
        // A client blocked in BZPOPMIN and friends may take one now.
        ctx.shared.blocking.ready(args.get(1));
    }
    ctx.out.int(if ch { added + updated } else { added });
    Ok(())
}

/// The scores of the members named from argument 2 on.
fn member_scores(ctx: &Ctx<'_>, args: Args<'_>) -> Result<Vec<Option<f64>>, Error> {
    Ok(read_zset(ctx, args.get(1), |z| {
        args.iter_from(2).map(|m| z.score(m)).collect()
    })?
    .unwrap_or_else(|| vec![None; args.len() - 2]))
}

pub fn geopos(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let scores = member_scores(ctx, args)?;
    ctx.out.array(scores.len());
    for score in scores {
        match score {
            Some(s) => coordinates(ctx, hash::decode_score(s)),
            None => ctx.out.null_array(),
        }
    }
    Ok(())
}

pub fn geohash(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let scores = member_scores(ctx, args)?;
    ctx.out.array(scores.len());
    for score in scores {
        match score {
            Some(s) => ctx.out.bulk(&hash::geohash_string(s)),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

pub fn geodist(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    // Redis's order: the unit, then the key, then the members.
    let to_meter = match args.len() {
        4 => 1.0,
        5 => unit(args.get(4))?,
        _ => return Err(SYNTAX.into()),
    };
    let pair = read_zset(ctx, args.get(1), |z| {
        z.score(args.get(2)).zip(z.score(args.get(3)))
    })?
    .flatten();
    match pair {
        Some((a, b)) => {
            let [x1, y1] = hash::decode_score(a);
            let [x2, y2] = hash::decode_score(b);
            let d = hash::distance(x1, y1, x2, y2) / to_meter;
            ctx.out.bulk(distance4(d).as_bytes());
        }
        None => ctx.out.null(),
    }
    Ok(())
}

/// Which search command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// GEORADIUS_RO key longitude latitude radius unit …
    Radius,
    /// GEORADIUSBYMEMBER_RO key member radius unit …
    RadiusByMember,
    /// GEOSEARCH key FROMMEMBER|FROMLONLAT … BYRADIUS|BYBOX … …
    Search,
    /// GEOSEARCHSTORE destination source … [STOREDIST]
    SearchStore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A member found by a search.
struct Point {
    member: Vec<u8>,
    xy: [f64; 2],
    /// Meters from the centre.
    dist: f64,
    score: f64,
}

/// What a search asked for and found.
struct Found {
    points: Vec<Point>,
    conversion: f64,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    store_dist: bool,
}

/// A radius and its unit, from two arguments.
fn radius_arg(value: &[u8], unit_arg: &[u8]) -> Result<(f64, f64), Error> {
    let r = double_arg(value).ok_or(Error::from("ERR need numeric radius"))?;
    if r < 0.0 {
        return Err("ERR radius cannot be negative".into());
    }
    Ok((r, unit(unit_arg)?))
}

/// Parses a search's arguments in Redis's order (its errors come in the same order) and runs
/// it. `None` when the source key is missing.
fn find(
    zset: Option<ZSetRef<'_>>,
    args: Args<'_>,
    variant: Variant,
) -> Result<Option<Found>, Error> {
    let member_xy = |member: &[u8]| -> Result<[f64; 2], Error> {
        let score = zset
            .and_then(|z| z.score(member))
            .ok_or(Error::from(NO_MEMBER))?;
        Ok(hash::decode_score(score))
    };
    let mut center = [0.0, 0.0];
    let mut shape = Shape::Circle(0.0);
    let mut conversion = 0.0;
    let base = match variant {
        Variant::Radius => {
            center = lon_lat(args.get(2), args.get(3))?;
            let (r, c) = radius_arg(args.get(4), args.get(5))?;
            (shape, conversion) = (Shape::Circle(r), c);
            6
        }
        Variant::RadiusByMember => {
            if zset.is_some() {
                center = member_xy(args.get(2))?;
                let (r, c) = radius_arg(args.get(3), args.get(4))?;
                (shape, conversion) = (Shape::Circle(r), c);
            }
            5
        }
        Variant::Search => 2,
        Variant::SearchStore => 3,
    };
    let geosearch = matches!(variant, Variant::Search | Variant::SearchStore);
    let (mut with_dist, mut with_hash, mut with_coord, mut any) = (false, false, false, false);
    let (mut from_member, mut from_loc, mut by_radius, mut by_box) = (false, false, false, false);
    let mut store_dist = false;
    let mut sort = Sort::None;
    let mut count: i64 = 0;
    let remaining = args.len().saturating_sub(base);
    let mut i = 0;
    while i < remaining {
        let arg = args.get(base + i);
        let next = |k: usize| args.get(base + i + k);
        if is(arg, "withdist") {
            with_dist = true;
        } else if is(arg, "withhash") {
            with_hash = true;
        } else if is(arg, "withcoord") {
            with_coord = true;
        } else if is(arg, "any") {
            any = true;
        } else if is(arg, "asc") {
            sort = Sort::Asc;
        } else if is(arg, "desc") {
            sort = Sort::Desc;
        } else if is(arg, "count") && i + 1 < remaining {
            count = int_arg(next(1)).map_err(|_| Error::from(NOT_INTEGER))?;
            if count <= 0 {
                return Err("ERR COUNT must be > 0".into());
            }
            i += 1;
        } else if is(arg, "storedist") && variant == Variant::SearchStore {
            store_dist = true;
        } else if is(arg, "frommember") && i + 1 < remaining && geosearch && !from_loc {
            // Without a source key the member is not looked up: the reply is empty anyway.
            if zset.is_some() {
                center = member_xy(next(1))?;
            }
            from_member = true;
            i += 1;
        } else if is(arg, "fromlonlat") && i + 2 < remaining && geosearch && !from_member {
            center = lon_lat(next(1), next(2))?;
            from_loc = true;
            i += 2;
        } else if is(arg, "byradius") && i + 2 < remaining && geosearch && !by_box {
            let (r, c) = radius_arg(next(1), next(2))?;
            (shape, conversion) = (Shape::Circle(r), c);
            by_radius = true;
            i += 2;
        } else if is(arg, "bybox") && i + 3 < remaining && geosearch && !by_radius {
            let w = double_arg(next(1)).ok_or(Error::from("ERR need numeric width"))?;
            let h = double_arg(next(2)).ok_or(Error::from("ERR need numeric height"))?;
            if h < 0.0 || w < 0.0 {
                return Err("ERR height or width cannot be negative".into());
            }
            conversion = unit(next(3))?;
            shape = Shape::Box(w, h);
            by_box = true;
            i += 3;
        } else {
            return Err(SYNTAX.into());
        }
        i += 1;
    }
    if variant == Variant::SearchStore && (with_dist || with_hash || with_coord) {
        return Err(
            "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
                .into(),
        );
    }
    let name = String::from_utf8_lossy(args.get(0));
    if geosearch && !(from_member || from_loc) {
        return Err(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )
        .into());
    }
    if geosearch && !(by_radius || by_box) {
        return Err(
            format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}").into(),
        );
    }
    if any && count == 0 {
        return Err("ERR the ANY argument requires COUNT argument".into());
    }
    let Some(zset) = zset else {
        return Ok(None);
    };
    // The closest `count` members unless ANY asks for any `count` of them.
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let search = Search {
        center,
        shape,
        conversion,
    };
    let limit = if any { count as usize } else { 0 };
    let full = |points: &[Point]| limit != 0 && points.len() >= limit;
    let mut points = Vec::new();
    // Linear scans, one per box, until sorted sets have a range look-up.
    for (min, max) in search.boxes() {
        if full(&points) {
            break;
        }
        for (member, score) in zset.iter() {
            if score < min {
                continue;
            }
            if score >= max {
                break;
            }
            let xy = hash::decode_score(score);
            if let Some(dist) = search.contains(xy) {
                points.push(Point {
                    member: member.to_vec(),
                    xy,
                    dist,
                    score,
                });
            }
            if full(&points) {
                break;
            }
        }
    }
    let by_dist = |a: &Point, b: &Point| {
        a.dist
            .partial_cmp(&b.dist)
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    match sort {
        Sort::None => {}
        Sort::Asc => points.sort_by(by_dist),
        Sort::Desc => points.sort_by(|a, b| by_dist(b, a)),
    }
    if count != 0 {
        points.truncate(usize::try_from(count).unwrap_or(usize::MAX));
    }
    Ok(Some(Found {
        points,
        conversion,
        with_dist,
        with_hash,
        with_coord,
        store_dist,
    }))
}

fn search(ctx: &mut Ctx<'_>, args: Args<'_>, variant: Variant) -> CmdResult {
    let store = variant == Variant::SearchStore;
    let limits = ctx.shared.zset_limits();
    let src = ctx.key(args.get(if store { 2 } else { 1 }));
    let dest = ctx.key(args.get(1));
    let both = [dest, src];
    let mut locked = ctx.lock_many(if store { &both[..] } else { &both[1..] });
    let found = {
        let zset = match locked.shard(&src).get(&src, ctx.now, Lookup::Read) {
            Some(entry) => Some(as_zset(entry.value())?),
            None => None,
        };
        find(zset, args, variant)?
    };
    if store {
        let shard = locked.shard(&dest);
        let stored = match found {
            Some(found) if !found.points.is_empty() => {
                let mut zset = ZSetValue::default();
                for p in &found.points {
                    let score = if found.store_dist {
                        p.dist / found.conversion
                    } else {
                        p.score
                    };
                    // A NaN distance (antipodal points, by rounding) has no place in a set.
                    if !score.is_nan() {
                        zset.insert_with(&p.member, score, limits);
                    }
                }
                shard.set(&dest, Value::ZSet(zset.view()), None, false, ctx.now);
                found.points.len()
            }
            _ => {
                shard.delete(&dest, ctx.now);
                0
            }
        };
        drop(locked);
        if stored > 0 {
            ctx.shared.blocking.ready(args.get(1));
        }
        ctx.out.int(stored as i64);
        return Ok(());
    }
    drop(locked);
    let Some(found) = found else {
        ctx.out.array(0);
        return Ok(());
    };
    let options =
        usize::from(found.with_dist) + usize::from(found.with_hash) + usize::from(found.with_coord);
    ctx.out.array(found.points.len());
    for p in &found.points {
        if options > 0 {
            ctx.out.array(options + 1);
        }
        ctx.out.bulk(&p.member);
        if found.with_dist {
            ctx.out
                .bulk(distance4(p.dist / found.conversion).as_bytes());
        }
        if found.with_hash {
            ctx.out.int(score_int(p.score));
        }
        if found.with_coord {
            coordinates(ctx, p.xy);
        }
    }
    Ok(())
}

pub fn geosearch(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search(ctx, args, Variant::Search)
}

pub fn geosearchstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search(ctx, args, Variant::SearchStore)
}

pub fn georadius_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search(ctx, args, Variant::Radius)
}

pub fn georadiusbymember_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search(ctx, args, Variant::RadiusByMember)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_redis_prints_them() {
        assert_eq!(human(13.361_389_338_970_184), "13.36138933897018433");
        assert_eq!(human(-0.0), "0");
        assert_eq!(human(15.0), "15");
        assert_eq!(distance4(0.0), "0.0000");
        assert_eq!(distance4(166_274.151_6), "166274.1516");
        assert_eq!(distance4(0.000_04), "0.0000");
        assert_eq!(distance4(0.000_06), "0.0001");
        assert_eq!(distance4(f64::NAN), "-922337203685477.5808");
    }

    #[test]
    fn floats_are_read_as_redis_reads_them() {
        assert_eq!(double_arg(b"1.5"), Some(1.5));
        assert_eq!(double_arg(b"inf"), Some(f64::INFINITY));
        assert_eq!(double_arg(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(double_arg(b"0e10"), Some(0.0));
        assert_eq!(double_arg(b"1e400"), None);
        assert_eq!(double_arg(b"1e-400"), None);
        assert_eq!(double_arg(b"nan"), None);
        assert_eq!(double_arg(b" 1"), None);
    }
}
