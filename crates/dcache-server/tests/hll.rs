//! HyperLogLog commands through the `redis` crate: semantics, errors, the setting, and the same
//! bytes and counts as a real `redis-server` for the same seeded inputs.

mod common;
mod fuzz;

use common::{error_text as err, query as q, start, test_config};
use fuzz::Rng;
use fuzz::differential::RedisServer;
use redis::aio::MultiplexedConnection;

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// Header (16 bytes) and 16384 registers of 6 bits.
const DENSE_SIZE: usize = 16 + 12288;

async fn node() -> (common::TestNode, MultiplexedConnection) {
    let node = start(test_config()).await;
    let con = node.client().await;
    (node, con)
}

async fn get_bytes(c: &mut MultiplexedConnection, key: &str) -> Vec<u8> {
    q::<Vec<u8>>(c, &["GET", key]).await
}

async fn add_all(c: &mut MultiplexedConnection, key: &str, elements: &[String]) -> i64 {
    let mut cmd = redis::cmd("PFADD");
    cmd.arg(key);
    for e in elements {
        cmd.arg(e);
    }
    cmd.query_async(c).await.expect("PFADD")
}

fn elements(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test]
async fn pfadd_creates_reports_changes_and_pfcount_estimates() {
    let (_node, mut c) = node().await;
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "h"]).await, 0);
    // PFADD with no element creates an empty HLL, and says so.
    assert_eq!(q::<i64>(&mut c, &["PFADD", "h"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "h"]).await, 1);
    assert_eq!(q::<String>(&mut c, &["TYPE", "h"]).await, "string");
    assert_eq!(q::<i64>(&mut c, &["PFADD", "h"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "h"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["PFADD", "h", "a", "b", "c"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["PFADD", "h", "a", "b"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "h"]).await, 3);
    let bytes = get_bytes(&mut c, "h").await;
    assert_eq!(&bytes[..4], b"HYLL");
    assert_eq!(bytes[4], 1, "small sets stay sparse");

    let many = elements("e", 20_000);
    for chunk in many.chunks(1000) {
        add_all(&mut c, "big", chunk).await;
    }
    let count = q::<i64>(&mut c, &["PFCOUNT", "big"]).await;
    // Six standard errors (1.04 / sqrt(16384) each), as Redis's self-test allows.
    assert!(
        (count - 20_000).abs() <= 20_000 * 6 * 104 / 12_800,
        "{count}"
    );
    let bytes = get_bytes(&mut c, "big").await;
    assert_eq!(
        (bytes[4], bytes.len()),
        (0, DENSE_SIZE),
        "large sets are dense"
    );
}

#[tokio::test]
async fn pfcount_of_several_keys_and_pfmerge_give_the_union() {
    let (_node, mut c) = node().await;
    add_all(&mut c, "{u}a", &elements("x", 300)).await;
    add_all(&mut c, "{u}b", &elements("x", 600)[150..]).await;
    let union = q::<i64>(&mut c, &["PFCOUNT", "{u}a", "{u}b", "{u}missing"]).await;
    assert!((union - 600).abs() <= 20, "{union}");
    assert_eq!(
        q::<String>(&mut c, &["PFMERGE", "{u}dest", "{u}a", "{u}b"]).await,
        "OK"
    );
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "{u}dest"]).await, union);
    // The destination counts as a source.
    add_all(&mut c, "{u}c", &elements("y", 100)).await;
    q::<String>(&mut c, &["PFMERGE", "{u}c", "{u}dest"]).await;
    let all = q::<i64>(&mut c, &["PFCOUNT", "{u}a", "{u}b", "{u}c"]).await;
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "{u}c"]).await, all);
    // A lone destination is created empty.
    q::<String>(&mut c, &["PFMERGE", "{u}new"]).await;
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "{u}new"]).await, 0);
    // A dense source makes the destination dense.
    for chunk in elements("z", 5000).chunks(1000) {
        add_all(&mut c, "{u}dense", chunk).await;
    }
    q::<String>(&mut c, &["PFMERGE", "{u}new", "{u}dense"]).await;
    assert_eq!(get_bytes(&mut c, "{u}new").await.len(), DENSE_SIZE);
}

#[tokio::test]
async fn errors_follow_redis() {
    let (_node, mut c) = node().await;
    q::<i64>(&mut c, &["HSET", "hash", "f", "v"]).await;
    q::<String>(&mut c, &["SET", "text", "not an hll at all"]).await;
    q::<String>(&mut c, &["SET", "num", "42"]).await;
    assert_eq!(err(&mut c, &["PFADD", "hash", "a"]).await, WRONGTYPE);
    assert_eq!(err(&mut c, &["PFADD", "text", "a"]).await, NOT_HLL);
    assert_eq!(err(&mut c, &["PFCOUNT", "num"]).await, NOT_HLL);
    assert_eq!(err(&mut c, &["PFCOUNT", "missing", "text"]).await, NOT_HLL);
    assert_eq!(err(&mut c, &["PFMERGE", "dest", "hash"]).await, WRONGTYPE);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dest"]).await, 0);
    assert_eq!(err(&mut c, &["PFMERGE", "text"]).await, NOT_HLL);
    assert_eq!(
        err(&mut c, &["PFADD"]).await,
        "ERR wrong number of arguments for 'pfadd' command"
    );
    assert_eq!(
        err(&mut c, &["PFCOUNT"]).await,
        "ERR wrong number of arguments for 'pfcount' command"
    );
    // A sparse value whose opcodes do not cover the registers: the header passes, the body not.
    q::<i64>(&mut c, &["PFADD", "good", "a"]).await;
    let mut bad = get_bytes(&mut c, "good").await;
    bad.push(0x00);
    redis::cmd("SET")
        .arg("bad")
        .arg(&bad)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let corrupt = "INVALIDOBJ Corrupted HLL object detected";
    assert_eq!(err(&mut c, &["PFCOUNT", "bad"]).await, corrupt);
    assert_eq!(err(&mut c, &["PFCOUNT", "bad", "good"]).await, corrupt);
    assert_eq!(err(&mut c, &["PFMERGE", "dest", "bad"]).await, corrupt);
    // A dense value of the wrong length is not an HLL.
    let mut dense = vec![0u8; DENSE_SIZE + 1];
    dense[..4].copy_from_slice(b"HYLL");
    redis::cmd("SET")
        .arg("long")
        .arg(&dense)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    assert_eq!(err(&mut c, &["PFCOUNT", "long"]).await, NOT_HLL);
}

#[tokio::test]
async fn pfadd_keeps_the_ttl_and_the_bytes_travel_as_a_string() {
    let (_node, mut c) = node().await;
    q::<i64>(&mut c, &["PFADD", "h", "a", "b"]).await;
    q::<i64>(&mut c, &["EXPIRE", "h", "1000"]).await;
    q::<i64>(&mut c, &["PFADD", "h", "c"]).await;
    assert!(q::<i64>(&mut c, &["TTL", "h"]).await > 0);
    let bytes = get_bytes(&mut c, "h").await;
    redis::cmd("SET")
        .arg("copy")
        .arg(&bytes)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "copy"]).await, 3);
    // A value written with a valid cached count answers with it.
    let mut cached = bytes.clone();
    cached[8..16].copy_from_slice(&77u64.to_le_bytes());
    redis::cmd("SET")
        .arg("cached")
        .arg(&cached)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "cached"]).await, 77);
    // Adding nothing new keeps the cache; adding something new makes it stale.
    q::<i64>(&mut c, &["PFADD", "cached", "a"]).await;
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "cached"]).await, 77);
    q::<i64>(&mut c, &["PFADD", "cached", "zzz"]).await;
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "cached"]).await, 4);
}

#[tokio::test]
async fn hll_sparse_max_bytes_decides_when_a_value_turns_dense() {
    let (_node, mut c) = node().await;
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "hll-sparse-max-bytes"]).await,
        ["hll-sparse-max-bytes", "3000"]
    );
    add_all(&mut c, "a", &elements("a", 100)).await;
    assert_eq!(get_bytes(&mut c, "a").await[4], 1);
    q::<String>(&mut c, &["CONFIG", "SET", "hll-sparse-max-bytes", "0"]).await;
    q::<i64>(&mut c, &["PFADD", "a", "one more"]).await;
    assert_eq!(get_bytes(&mut c, "a").await.len(), DENSE_SIZE);
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "hll-sparse-max-bytes", "-1"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'hll-sparse-max-bytes') - argument must be a memory value"
    );
    q::<String>(&mut c, &["CONFIG", "SET", "hll-sparse-max-bytes", "3kb"]).await;
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "hll-sparse-max-bytes"]).await,
        ["hll-sparse-max-bytes", "3072"]
    );
}

fn redis_installed() -> bool {
    std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the same requests on both servers and checks the replies are equal.
async fn both(
    ours: &mut MultiplexedConnection,
    theirs: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
) -> redis::Value {
    let a: redis::Value = cmd.query_async(ours).await.expect("dcache answers");
    let b: redis::Value = cmd.query_async(theirs).await.expect("redis answers");
    assert_eq!(a, b, "{:?}", cmd.args_iter().collect::<Vec<_>>());
    a
}

#[tokio::test]
async fn the_same_inputs_give_redis_s_bytes_and_counts() {
    if !redis_installed() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must install redis-server (apt-get install -y redis-server)"
        );
        fuzz::say(
            "the_same_inputs_give_redis_s_bytes_and_counts skipped: redis-server is not installed",
        );
        return;
    }
    let redis = RedisServer::start().expect("redis-server starts");
    let theirs_client = redis::Client::open(format!("redis://{}/", redis.addr)).unwrap();
    let mut theirs = theirs_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (_node, mut ours) = node().await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    fuzz::say(&format!("hll comparison: seed {seed}"));
    let mut rng = Rng::new(seed);
    for limit in ["3000", "300"] {
        let mut set = redis::cmd("CONFIG");
        set.arg("SET").arg("hll-sparse-max-bytes").arg(limit);
        both(&mut ours, &mut theirs, &set).await;
        both(&mut ours, &mut theirs, &redis::cmd("FLUSHALL")).await;
        // Sizes from a handful (sparse) to many (dense), random bytes of random lengths.
        for (key, n) in [("{k}a", 5), ("{k}b", 80), ("{k}c", 700), ("{k}d", 6000)] {
            let mut added = 0;
            while added < n {
                let mut cmd = redis::cmd("PFADD");
                cmd.arg(key);
                for _ in 0..(1 + rng.below(50)).min(n - added) {
                    let len = rng.below(20);
                    let element: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    cmd.arg(element);
                    added += 1;
                }
                both(&mut ours, &mut theirs, &cmd).await;
            }
            // The bytes are Redis's, before PFCOUNT (which makes Redis store its count).
            both(&mut ours, &mut theirs, redis::cmd("GET").arg(key)).await;
        }
        let mut merge = redis::cmd("PFMERGE");
        merge.arg("{k}m").arg("{k}a").arg("{k}b").arg("{k}c");
        both(&mut ours, &mut theirs, &merge).await;
        both(&mut ours, &mut theirs, redis::cmd("GET").arg("{k}m")).await;
        let mut merge = redis::cmd("PFMERGE");
        merge.arg("{k}m2").arg("{k}a").arg("{k}d");
        both(&mut ours, &mut theirs, &merge).await;
        both(&mut ours, &mut theirs, redis::cmd("GET").arg("{k}m2")).await;
        for keys in [
            &["{k}a"][..],
            &["{k}b"],
            &["{k}c"],
            &["{k}d"],
            &["{k}m"],
            &["{k}m2"],
            &["{k}a", "{k}b"],
            &["{k}a", "{k}b", "{k}c", "{k}d", "{k}none"],
        ] {
            let mut count = redis::cmd("PFCOUNT");
            for k in keys {
                count.arg(*k);
            }
            both(&mut ours, &mut theirs, &count).await;
        }
        // A value Redis wrote (its cache now filled in by its PFCOUNT) reads the same here.
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg("{k}c")
            .query_async(&mut theirs)
            .await
            .unwrap();
        redis::cmd("SET")
            .arg("{k}from-redis")
            .arg(&bytes)
            .query_async::<()>(&mut ours)
            .await
            .unwrap();
        let theirs_count: i64 = redis::cmd("PFCOUNT")
            .arg("{k}c")
            .query_async(&mut theirs)
            .await
            .unwrap();
        assert_eq!(
            q::<i64>(&mut ours, &["PFCOUNT", "{k}from-redis"]).await,
            theirs_count
        );
        // Values no PFADD writes but that are valid: dense registers up to 63, sparse VAL
        // opcodes changed in place (equal neighbours left unmerged). Both servers read, merge
        // and update them alike.
        let get = |key: &str| {
            let mut get = redis::cmd("GET");
            get.arg(key);
            get
        };
        let dense: Vec<u8> = get("{k}d").query_async(&mut theirs).await.unwrap();
        let sparse: Vec<u8> = get("{k}b").query_async(&mut theirs).await.unwrap();
        let mut edited_dense = dense.clone();
        for _ in 0..200 {
            let at = 16 + rng.below(edited_dense.len() - 16);
            edited_dense[at] = rng.next() as u8;
        }
        edited_dense[15] |= 0x80;
        let mut edited_sparse = sparse.clone();
        if edited_sparse[4] == 1 {
            let mut p = 16;
            while p < edited_sparse.len() {
                let byte = edited_sparse[p];
                if byte & 0xc0 == 0x40 {
                    p += 2;
                    continue;
                }
                if byte & 0x80 != 0 && rng.below(3) == 0 {
                    // Another value, the same run length.
                    edited_sparse[p] = 0x80 | ((rng.below(32) as u8) << 2) | (byte & 0x3);
                }
                p += 1;
            }
            edited_sparse[15] |= 0x80;
        }
        for (key, bytes) in [("{k}ed", &edited_dense), ("{k}es", &edited_sparse)] {
            let mut set = redis::cmd("SET");
            set.arg(key).arg(bytes);
            both(&mut ours, &mut theirs, &set).await;
        }
        let mut merge = redis::cmd("PFMERGE");
        merge.arg("{k}em").arg("{k}es").arg("{k}a");
        both(&mut ours, &mut theirs, &merge).await;
        both(&mut ours, &mut theirs, &get("{k}em")).await;
        let mut merge = redis::cmd("PFMERGE");
        merge.arg("{k}em2").arg("{k}ed").arg("{k}es");
        both(&mut ours, &mut theirs, &merge).await;
        both(&mut ours, &mut theirs, &get("{k}em2")).await;
        for key in ["{k}es", "{k}ed"] {
            let mut add = redis::cmd("PFADD");
            add.arg(key);
            for _ in 0..30 {
                add.arg(rng.next().to_le_bytes().to_vec());
            }
            both(&mut ours, &mut theirs, &add).await;
            both(&mut ours, &mut theirs, &get(key)).await;
        }
        for keys in [
            &["{k}ed"][..],
            &["{k}es"],
            &["{k}em"],
            &["{k}em2"],
            &["{k}ed", "{k}es"],
        ] {
            let mut count = redis::cmd("PFCOUNT");
            for k in keys {
                count.arg(*k);
            }
            both(&mut ours, &mut theirs, &count).await;
        }
    }
}
