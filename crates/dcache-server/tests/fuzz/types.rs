//! A generator of well-formed commands over the data types, for the comparison with Redis: where
//! the table-driven generator (`super::command`) sends mostly random arguments (so most requests
//! end in an argument error), this one knows each family's syntax and draws keys, members and
//! scores from small pools, so that sequences build real hashes, lists, sets, sorted sets,
//! bitmaps, HyperLogLogs and geo sets, hit the same members again, and reach the interesting cases (ties,
//! exclusive bounds, negative indexes, wrong types, empty results).
//!
//! Only commands with deterministic replies: no random pops or members, no blocking forms, no
//! cursors. Replies whose order Redis leaves unspecified are sorted by [`normalise`].

use dcache_protocol::Frame;

use super::Rng;

const STRINGS: &[&str] = &["str1", "str2"];
const LISTS: &[&str] = &["list1", "list2"];
const SETS: &[&str] = &["set1", "set2", "set3"];
const ZSETS: &[&str] = &["zset1", "zset2", "zset3"];
const HASHES: &[&str] = &["hash1", "hash2", "hash3"];
const HLLS: &[&str] = &["hll1", "hll2"];
const GEOS: &[&str] = &["geo1", "geo2"];
/// Members and values: few, so that they repeat; numbers, so that sets may be integer-only.
const MEMBERS: &[&str] = &["a", "b", "c", "d", "1", "2", "10", "-3", "x y", ""];
const INDEXES: &[&str] = &["0", "1", "2", "-1", "-2", "5", "-100", "100"];
const SCORES: &[&str] = &["0", "1", "2", "-1", "1.5", "3", "10", "-2.5", "inf", "-inf"];
const BOUNDS: &[&str] = &[
    "-inf", "+inf", "0", "1", "(1", "2", "(2", "-1", "1.5", "(10", "10", "nan", "x",
];
const LEX: &[&str] = &["-", "+", "[a", "(a", "[c", "(b", "[1", "a", "[", "(x y"];
const COORDS: &[(&str, &str)] = &[
    ("13.361389", "38.115556"),
    ("15.087269", "37.502669"),
    ("-122.27652", "37.805186"),
    ("2.3522", "48.8566"),
    ("0", "0"),
    ("179.9", "-85.05"),
    ("181", "10"),
    ("10", "86"),
];
const GEO_MEMBERS: &[&str] = &[
    "Palermo", "Catania", "Oakland", "Paris", "origin", "edge", "bad",
];

/// A family of commands over one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Strings,
    Hashes,
    Lists,
    Sets,
    SortedSets,
    HyperLogLog,
    Geo,
    Keys,
}

const FAMILIES: &[Family] = &[
    Family::Strings,
    Family::Hashes,
    Family::Lists,
    Family::Sets,
    Family::SortedSets,
    Family::HyperLogLog,
    Family::Geo,
    Family::Keys,
];

/// Any key at all, of any type: mostly the family's own, sometimes another's (WRONGTYPE) or one
/// that does not exist.
fn key(rng: &mut Rng, own: &[&'static str]) -> &'static str {
    const ANY: &[&str] = &[
        "missing", "str1", "hash1", "list1", "set1", "zset1", "hll1", "geo1",
    ];
    let pool = if rng.below(10) == 0 { ANY } else { own };
    pool[rng.below(pool.len())]
}

fn members(rng: &mut Rng, at_least: usize) -> Vec<String> {
    (0..at_least + rng.below(4))
        .map(|_| rng.pick(MEMBERS).to_string())
        .collect()
}

fn pick(rng: &mut Rng, items: &[&str]) -> String {
    rng.pick(items).to_string()
}

/// `numkeys key...` for the commands that count their keys.
fn counted_keys(rng: &mut Rng, own: &[&'static str]) -> Vec<String> {
    let n = 1 + rng.below(3);
    let mut out = vec![n.to_string()];
    out.extend((0..n).map(|_| key(rng, own).to_string()));
    out
}

fn maybe(rng: &mut Rng, odds: usize, words: &[&str]) -> Vec<String> {
    if rng.below(odds) == 0 {
        words.iter().map(|w| w.to_string()).collect()
    } else {
        Vec::new()
    }
}

fn strings(rng: &mut Rng) -> Vec<String> {
    let k = key(rng, STRINGS).to_string();
    let bit_offsets = ["0", "1", "7", "8", "15", "100", "-1"];
    let out: Vec<String> = match rng.below(12) {
        0 => vec!["SET".into(), k, pick(rng, MEMBERS)],
        1 => vec!["APPEND".into(), k, pick(rng, MEMBERS)],
        2 => vec![
            "SETBIT".into(),
            k,
            pick(rng, &bit_offsets),
            pick(rng, &["0", "1", "2"]),
        ],
        3 => vec!["GETBIT".into(), k, pick(rng, &bit_offsets)],
        4 => {
            let mut c = vec!["BITCOUNT".into(), k];
            if rng.below(2) == 0 {
                c.push(pick(rng, INDEXES));
                c.push(pick(rng, INDEXES));
                c.extend(maybe_one(rng, 2, &["BYTE", "BIT"]));
            }
            c
        }
        5 => {
            let mut c = vec!["BITPOS".into(), k, pick(rng, &["0", "1"])];
            if rng.below(2) == 0 {
                c.push(pick(rng, INDEXES));
                if rng.below(2) == 0 {
                    c.push(pick(rng, INDEXES));
                    c.extend(maybe_one(rng, 2, &["BYTE", "BIT"]));
                }
            }
            c
        }
        6 => {
            let op = pick(rng, &["AND", "OR", "XOR", "NOT"]);
            let mut c = vec!["BITOP".into(), op.clone(), key(rng, STRINGS).into(), k];
            if op != "NOT" || rng.below(4) == 0 {
                c.push(key(rng, STRINGS).into());
            }
            c
        }
        7 => {
            let mut c = vec![pick(rng, &["BITFIELD", "BITFIELD", "BITFIELD_RO"]), k];
            for _ in 0..1 + rng.below(3) {
                let ty = pick(rng, &["u8", "i8", "u4", "i16", "u1", "i64", "u63", "u64"]);
                let at = pick(rng, &["0", "3", "#1", "8", "100"]);
                match rng.below(4) {
                    0 => c.extend(["GET".into(), ty, at]),
                    1 => c.extend(["SET".into(), ty, at, pick(rng, &["1", "-1", "300", "0"])]),
                    2 => c.extend(["INCRBY".into(), ty, at, pick(rng, &["1", "-100", "200"])]),
                    _ => c.extend(["OVERFLOW".into(), pick(rng, &["WRAP", "SAT", "FAIL"])]),
                }
            }
            c
        }
        8 => {
            let mut c = vec!["LCS".into(), k, key(rng, STRINGS).into()];
            match rng.below(4) {
                0 => c.push("LEN".into()),
                1 => {
                    c.push("IDX".into());
                    c.extend(maybe(rng, 2, &["MINMATCHLEN", "2"]));
                    c.extend(maybe(rng, 2, &["WITHMATCHLEN"]));
                }
                _ => {}
            }
            c
        }
        9 => vec![
            "SETRANGE".into(),
            k,
            pick(rng, &["0", "2", "10"]),
            pick(rng, MEMBERS),
        ],
        10 => vec!["GETRANGE".into(), k, pick(rng, INDEXES), pick(rng, INDEXES)],
        _ => vec!["GET".into(), k],
    };
    out
}

/// One of `words`, one time in `odds`.
fn maybe_one(rng: &mut Rng, odds: usize, words: &[&str]) -> Vec<String> {
    if rng.below(odds) == 0 {
        vec![pick(rng, words)]
    } else {
        Vec::new()
    }
}

/// `option value`, one time in `odds`.
fn maybe_pair(rng: &mut Rng, odds: usize, option: &str, values: &[&str]) -> Vec<String> {
    if rng.below(odds) == 0 {
        vec![option.to_owned(), pick(rng, values)]
    } else {
        Vec::new()
    }
}

/// `LIMIT 0 count`, one time in `odds`.
fn maybe_limit(rng: &mut Rng, odds: usize, counts: &[&str]) -> Vec<String> {
    if rng.below(odds) == 0 {
        vec!["LIMIT".to_owned(), "0".to_owned(), pick(rng, counts)]
    } else {
        Vec::new()
    }
}

/// A field or value: mostly from the pool; sometimes exactly at the default value limit, past it
/// (the hash becomes a table), or a number for HINCRBY.
fn hash_bytes(rng: &mut Rng) -> String {
    match rng.below(50) {
        0..=1 => "v".repeat(64),
        2 => "w".repeat(65),
        3..=9 => pick(rng, &["0", "7", "-12", "9223372036854775807", "1.5"]),
        _ => pick(rng, MEMBERS),
    }
}

fn hashes(rng: &mut Rng) -> Vec<String> {
    let k = key(rng, HASHES).to_string();
    let fields =
        |rng: &mut Rng| -> Vec<String> { (0..1 + rng.below(3)).map(|_| hash_bytes(rng)).collect() };
    match rng.below(17) {
        0..=3 => {
            let mut c = vec![pick(rng, &["HSET", "HSET", "HMSET"]), k];
            for _ in 0..1 + rng.below(3) {
                c.extend([hash_bytes(rng), hash_bytes(rng)]);
            }
            c
        }
        4 => vec!["HSETNX".into(), k, hash_bytes(rng), hash_bytes(rng)],
        5 => {
            let mut c = vec!["HDEL".into(), k];
            c.extend(fields(rng));
            c
        }
        6 => vec!["HGET".into(), k, hash_bytes(rng)],
        7 => {
            let mut c = vec!["HMGET".into(), k];
            c.extend(fields(rng));
            c
        }
        8..=9 => vec![pick(rng, &["HGETALL", "HKEYS", "HVALS"]), k],
        10 => match rng.below(3) {
            0 => vec!["HLEN".into(), k],
            _ => vec![pick(rng, &["HSTRLEN", "HEXISTS"]), k, hash_bytes(rng)],
        },
        11 => vec![
            "HINCRBY".into(),
            k,
            hash_bytes(rng),
            pick(rng, &["1", "-3", "100", "9223372036854775807", "x"]),
        ],
        12 => vec![
            "HINCRBYFLOAT".into(),
            k,
            hash_bytes(rng),
            pick(
                rng,
                &["1.5", "-2.25", "0.5", "4.0", "1e3", "inf", "nan", "1.5x"],
            ),
        ],
        13..=14 => {
            // Without NOVALUES (Redis 7.0 has not got it); COUNT does not page a listpack.
            let mut c = vec!["HSCAN".into(), k, "0".into()];
            c.extend(maybe_pair(rng, 2, "MATCH", &["*", "a*", "[0-9]*", "*y*"]));
            c.extend(maybe_pair(rng, 2, "COUNT", &["1", "100"]));
            c
        }
        // A count that takes every field: the whole hash, in a listpack's order.
        _ => {
            let mut c = vec!["HRANDFIELD".into(), k, "20".into()];
            c.extend(maybe(rng, 2, &["WITHVALUES"]));
            c
        }
    }
}

/// The key of a request that lists a hash's fields (HGETALL, HKEYS, HVALS, HSCAN, HRANDFIELD),
/// whose order must match Redis's exactly when the hash is a listpack.
pub fn hash_listing(request: &[Vec<u8>]) -> Option<&[u8]> {
    let name = request[0].to_ascii_lowercase();
    matches!(
        name.as_slice(),
        b"hgetall" | b"hkeys" | b"hvals" | b"hscan" | b"hrandfield"
    )
    .then(|| request.get(1).map(Vec::as_slice))
    .flatten()
}

fn lists(rng: &mut Rng) -> Vec<String> {
    let k = key(rng, LISTS).to_string();
    let side = |rng: &mut Rng| pick(rng, &["LEFT", "RIGHT"]);
    match rng.below(17) {
        0..=2 => {
            let mut c = vec![pick(rng, &["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), k];
            c.extend(members(rng, 1));
            c
        }
        3 => {
            let mut c = vec![pick(rng, &["LPOP", "RPOP"]), k];
            c.extend(maybe_one(rng, 2, &["0", "1", "2", "10", "-1"]));
            c
        }
        4 => vec!["LRANGE".into(), k, pick(rng, INDEXES), pick(rng, INDEXES)],
        5 => vec!["LINDEX".into(), k, pick(rng, INDEXES)],
        6 => vec!["LSET".into(), k, pick(rng, INDEXES), pick(rng, MEMBERS)],
        7 => vec![
            "LINSERT".into(),
            k,
            pick(rng, &["BEFORE", "AFTER"]),
            pick(rng, MEMBERS),
            pick(rng, MEMBERS),
        ],
        8 => vec!["LLEN".into(), k],
        9 => vec![
            "LREM".into(),
            k,
            pick(rng, &["0", "1", "-1", "2"]),
            pick(rng, MEMBERS),
        ],
        10 => vec!["LTRIM".into(), k, pick(rng, INDEXES), pick(rng, INDEXES)],
        11 => {
            let mut c = vec!["LPOS".into(), k, pick(rng, MEMBERS)];
            c.extend(maybe_pair(rng, 2, "RANK", &["1", "-1", "2", "0"]));
            c.extend(maybe_pair(rng, 2, "COUNT", &["0", "1", "2"]));
            c.extend(maybe_pair(rng, 3, "MAXLEN", &["0", "1", "3"]));
            c
        }
        12 => vec![
            "LMOVE".into(),
            k,
            key(rng, LISTS).into(),
            side(rng),
            side(rng),
        ],
        13 => vec!["RPOPLPUSH".into(), k, key(rng, LISTS).into()],
        14 => {
            let mut c = vec!["LMPOP".into()];
            c.extend(counted_keys(rng, LISTS));
            c.push(side(rng));
            c.extend(maybe_pair(rng, 2, "COUNT", &["1", "2", "5"]));
            c
        }
        _ => vec!["LRANGE".into(), k, "0".into(), "-1".into()],
    }
}

fn sets(rng: &mut Rng) -> Vec<String> {
    let k = key(rng, SETS).to_string();
    match rng.below(15) {
        0..=2 => {
            let mut c = vec!["SADD".into(), k];
            c.extend(members(rng, 1));
            c
        }
        3 => {
            let mut c = vec!["SREM".into(), k];
            c.extend(members(rng, 1));
            c
        }
        4 => vec!["SMEMBERS".into(), k],
        5 => vec!["SISMEMBER".into(), k, pick(rng, MEMBERS)],
        6 => {
            let mut c = vec!["SMISMEMBER".into(), k];
            c.extend(members(rng, 1));
            c
        }
        7 => vec!["SCARD".into(), k],
        8 => vec!["SMOVE".into(), k, key(rng, SETS).into(), pick(rng, MEMBERS)],
        9..=10 => {
            let mut c = vec![pick(rng, &["SINTER", "SUNION", "SDIFF"]), k];
            c.extend((0..rng.below(3)).map(|_| key(rng, SETS).to_string()));
            c
        }
        11..=12 => {
            let mut c = vec![
                pick(rng, &["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]),
                key(rng, SETS).into(),
                k,
            ];
            c.extend((0..rng.below(3)).map(|_| key(rng, SETS).to_string()));
            c
        }
        _ => {
            let mut c = vec!["SINTERCARD".into()];
            c.extend(counted_keys(rng, SETS));
            c.extend(maybe_pair(rng, 2, "LIMIT", &["0", "1", "2"]));
            c
        }
    }
}

fn sorted_sets(rng: &mut Rng) -> Vec<String> {
    let k = key(rng, ZSETS).to_string();
    let range_kind = |rng: &mut Rng| -> (Vec<String>, Vec<String>) {
        match rng.below(3) {
            0 => (vec![pick(rng, INDEXES), pick(rng, INDEXES)], Vec::new()),
            1 => (
                vec![pick(rng, BOUNDS), pick(rng, BOUNDS)],
                vec!["BYSCORE".into()],
            ),
            _ => (vec![pick(rng, LEX), pick(rng, LEX)], vec!["BYLEX".into()]),
        }
    };
    let weights_aggregate = |rng: &mut Rng, c: &mut Vec<String>, keys: usize| {
        if rng.below(3) == 0 {
            c.push("WEIGHTS".into());
            for _ in 0..keys {
                c.push(pick(rng, &["1", "2", "0", "-1", "0.5"]));
            }
        }
        if rng.below(3) == 0 {
            c.push("AGGREGATE".into());
            c.push(pick(rng, &["SUM", "MIN", "MAX"]));
        }
    };
    match rng.below(22) {
        0..=3 => {
            let mut c = vec!["ZADD".into(), k];
            c.extend(maybe_one(rng, 4, &["NX", "XX"]));
            c.extend(maybe_one(rng, 4, &["GT", "LT"]));
            c.extend(maybe(rng, 4, &["CH"]));
            let incr = rng.below(6) == 0;
            if incr {
                c.push("INCR".into());
            }
            for _ in 0..if incr { 1 } else { 1 + rng.below(3) } {
                c.push(pick(rng, SCORES));
                c.push(pick(rng, MEMBERS));
            }
            c
        }
        4 => vec!["ZINCRBY".into(), k, pick(rng, SCORES), pick(rng, MEMBERS)],
        5 => vec!["ZSCORE".into(), k, pick(rng, MEMBERS)],
        6 => {
            let mut c = vec!["ZMSCORE".into(), k];
            c.extend(members(rng, 1));
            c
        }
        7 => {
            let mut c = vec![pick(rng, &["ZRANK", "ZREVRANK"]), k, pick(rng, MEMBERS)];
            c.extend(maybe(rng, 2, &["WITHSCORE"]));
            c
        }
        8 => vec!["ZCARD".into(), k],
        9 => vec!["ZCOUNT".into(), k, pick(rng, BOUNDS), pick(rng, BOUNDS)],
        10 => vec!["ZLEXCOUNT".into(), k, pick(rng, LEX), pick(rng, LEX)],
        11..=12 => {
            let store = rng.below(4) == 0;
            let mut c = if store {
                vec!["ZRANGESTORE".into(), key(rng, ZSETS).into(), k]
            } else {
                vec!["ZRANGE".into(), k]
            };
            let (bounds, by) = range_kind(rng);
            c.extend(bounds);
            c.extend(by.clone());
            c.extend(maybe(rng, 3, &["REV"]));
            if !by.is_empty() && rng.below(3) == 0 {
                c.extend([
                    "LIMIT".into(),
                    pick(rng, &["0", "1"]),
                    pick(rng, &["1", "2", "-1"]),
                ]);
            }
            if !store {
                c.extend(maybe(rng, 2, &["WITHSCORES"]));
            }
            c
        }
        13 => {
            let which = pick(rng, &["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]);
            let mut c = vec![which, k, pick(rng, BOUNDS), pick(rng, BOUNDS)];
            c.extend(maybe(rng, 2, &["WITHSCORES"]));
            c.extend(maybe_limit(rng, 3, &["1", "2", "-1"]));
            c
        }
        14 => {
            let which = pick(rng, &["ZRANGEBYLEX", "ZREVRANGEBYLEX"]);
            vec![which, k, pick(rng, LEX), pick(rng, LEX)]
        }
        15 => {
            let mut c = vec!["ZREM".into(), k];
            c.extend(members(rng, 1));
            c
        }
        16 => match rng.below(3) {
            0 => vec![
                "ZREMRANGEBYRANK".into(),
                k,
                pick(rng, INDEXES),
                pick(rng, INDEXES),
            ],
            1 => vec![
                "ZREMRANGEBYSCORE".into(),
                k,
                pick(rng, BOUNDS),
                pick(rng, BOUNDS),
            ],
            _ => vec!["ZREMRANGEBYLEX".into(), k, pick(rng, LEX), pick(rng, LEX)],
        },
        17 => {
            let mut c = vec![pick(rng, &["ZPOPMIN", "ZPOPMAX"]), k];
            c.extend(maybe_one(rng, 2, &["0", "1", "2", "-1"]));
            c
        }
        18 => {
            let mut c = vec!["ZMPOP".into()];
            c.extend(counted_keys(rng, ZSETS));
            c.push(pick(rng, &["MIN", "MAX"]));
            c.extend(maybe_pair(rng, 2, "COUNT", &["1", "2", "5"]));
            c
        }
        19 => {
            let mut c = vec![pick(rng, &["ZUNION", "ZINTER", "ZDIFF"])];
            let keys = counted_keys(rng, ZSETS);
            let n = keys.len() - 1;
            c.extend(keys);
            if c[0] != "ZDIFF" {
                weights_aggregate(rng, &mut c, n);
            }
            c.extend(maybe(rng, 2, &["WITHSCORES"]));
            c
        }
        20 => {
            let mut c = vec![
                pick(rng, &["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]),
                key(rng, ZSETS).into(),
            ];
            let keys = counted_keys(rng, ZSETS);
            let n = keys.len() - 1;
            c.extend(keys);
            if c[0] != "ZDIFFSTORE" {
                weights_aggregate(rng, &mut c, n);
            }
            c
        }
        _ => {
            let mut c = vec!["ZINTERCARD".into()];
            c.extend(counted_keys(rng, ZSETS));
            c.extend(maybe_pair(rng, 2, "LIMIT", &["0", "1"]));
            c
        }
    }
}

fn hyperloglog(rng: &mut Rng) -> Vec<String> {
    let k = key(rng, HLLS).to_string();
    match rng.below(4) {
        0..=1 => {
            let mut c = vec!["PFADD".into(), k];
            // Enough distinct elements now and then to leave the sparse form.
            if rng.below(8) == 0 {
                let base = rng.below(1000);
                c.extend((0..400).map(|i| format!("e{}", base + i)));
            } else {
                c.extend(members(rng, 0));
            }
            c
        }
        2 => {
            let mut c = vec!["PFCOUNT".into(), k];
            c.extend((0..rng.below(2)).map(|_| key(rng, HLLS).to_string()));
            c
        }
        _ => {
            let mut c = vec!["PFMERGE".into(), k];
            c.extend((0..rng.below(3)).map(|_| key(rng, HLLS).to_string()));
            c
        }
    }
}

fn geo(rng: &mut Rng) -> Vec<String> {
    let k = key(rng, GEOS).to_string();
    let unit = |rng: &mut Rng| pick(rng, &["m", "km", "mi", "ft"]);
    match rng.below(7) {
        0..=1 => {
            let mut c = vec!["GEOADD".into(), k];
            c.extend(maybe_one(rng, 5, &["NX", "XX"]));
            c.extend(maybe(rng, 5, &["CH"]));
            for _ in 0..1 + rng.below(3) {
                let (lon, lat) = *rng.pick(COORDS);
                c.extend([lon.into(), lat.into(), pick(rng, GEO_MEMBERS)]);
            }
            c
        }
        2 => {
            let mut c = vec!["GEOPOS".into(), k];
            c.extend((0..1 + rng.below(3)).map(|_| pick(rng, GEO_MEMBERS)));
            c
        }
        3 => {
            let mut c = vec![
                "GEODIST".into(),
                k,
                pick(rng, GEO_MEMBERS),
                pick(rng, GEO_MEMBERS),
            ];
            c.extend(maybe_one(rng, 2, &["m", "km", "mi", "ft"]));
            c
        }
        4 => {
            let mut c = vec!["GEOHASH".into(), k];
            c.extend((0..1 + rng.below(3)).map(|_| pick(rng, GEO_MEMBERS)));
            c
        }
        _ => {
            let store = rng.below(3) == 0;
            let mut c = if store {
                vec!["GEOSEARCHSTORE".into(), key(rng, GEOS).into(), k]
            } else {
                vec!["GEOSEARCH".into(), k]
            };
            if rng.below(2) == 0 {
                c.extend(["FROMMEMBER".into(), pick(rng, GEO_MEMBERS)]);
            } else {
                let (lon, lat) = *rng.pick(COORDS);
                c.extend(["FROMLONLAT".into(), lon.into(), lat.into()]);
            }
            if rng.below(2) == 0 {
                c.extend([
                    "BYRADIUS".into(),
                    pick(rng, &["10", "200", "5000", "0"]),
                    unit(rng),
                ]);
            } else {
                c.extend([
                    "BYBOX".into(),
                    pick(rng, &["100", "400", "20000"]),
                    pick(rng, &["100", "400", "20000"]),
                    unit(rng),
                ]);
            }
            // Ordered, so that replies compare (unordered ones come in Redis's scan order).
            c.push(pick(rng, &["ASC", "DESC"]));
            c.extend(maybe_pair(rng, 3, "COUNT", &["1", "2"]));
            if store {
                c.extend(maybe(rng, 2, &["STOREDIST"]));
            } else {
                c.extend(maybe(rng, 2, &["WITHCOORD"]));
                c.extend(maybe(rng, 2, &["WITHDIST"]));
                c.extend(maybe(rng, 2, &["WITHHASH"]));
            }
            c
        }
    }
}

fn keys(rng: &mut Rng) -> Vec<String> {
    let all = [
        "str1", "hash1", "hash2", "list1", "set1", "zset1", "hll1", "geo1", "missing",
    ];
    let k = rng.pick(&all).to_string();
    match rng.below(5) {
        0 => vec!["TYPE".into(), k],
        1 => vec!["EXISTS".into(), k],
        2 => vec!["DEL".into(), k],
        3 => {
            let mut c = vec!["COPY".into(), k, rng.pick(&all).to_string()];
            c.extend(maybe(rng, 2, &["REPLACE"]));
            c
        }
        _ => vec!["RENAME".into(), k, rng.pick(&all).to_string()],
    }
}

/// One well-formed request of a random family.
pub fn command(rng: &mut Rng) -> Vec<Vec<u8>> {
    let family = *rng.pick(FAMILIES);
    let words = match family {
        Family::Strings => strings(rng),
        Family::Hashes => hashes(rng),
        Family::Lists => lists(rng),
        Family::Sets => sets(rng),
        Family::SortedSets => sorted_sets(rng),
        Family::HyperLogLog => hyperloglog(rng),
        Family::Geo => geo(rng),
        Family::Keys => keys(rng),
    };
    words.into_iter().map(String::into_bytes).collect()
}

/// Sorts what Redis returns in no particular order: set members, and the fields HRANDFIELD gives
/// of a hash table (a listpack's are compared as they come: see [`hash_listing`]).
pub fn normalise(request: &[Vec<u8>], reply: Frame) -> Frame {
    let name = request[0].to_ascii_lowercase();
    let unordered = matches!(
        name.as_slice(),
        b"smembers" | b"sinter" | b"sunion" | b"sdiff" | b"hrandfield"
    );
    match reply {
        Frame::Array(mut items) | Frame::Set(mut items) if unordered => {
            items.sort_by_key(|f| format!("{f:?}"));
            Frame::Array(items)
        }
        other => other,
    }
}
