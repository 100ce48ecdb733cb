//! Memory budget, eviction and expiry through a live node, with jemalloc as the allocator (as the
//! `dcache` binary has it), so that the store's accounting can be checked against the allocator.

mod common;

use std::time::Duration;

use common::{query, start, start_manual, test_config};
use dcache_server::{ByteSize, active_expire};
use redis::aio::MultiplexedConnection;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn info_field(info: &str, name: &str) -> usize {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("INFO has no {name}"))
        .trim()
        .parse()
        .unwrap()
}

async fn info(c: &mut MultiplexedConnection) -> String {
    redis::cmd("INFO").arg("all").query_async(c).await.unwrap()
}

/// Writes `count` keys of `size`-byte values, in pipelines of 1,000.
async fn fill(
    c: &mut MultiplexedConnection,
    prefix: &str,
    count: usize,
    size: usize,
) -> redis::RedisResult<()> {
    let value = vec![b'v'; size];
    for start in (0..count).step_by(1000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 1000).min(count) {
            pipe.cmd("SET")
                .arg(format!("{prefix}:{i:08}"))
                .arg(&value)
                .ignore();
        }
        pipe.query_async::<()>(c).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxmemory_holds_after_writing_three_times_the_limit() {
    let limit = 16 * 1024 * 1024;
    let mut config = test_config();
    config.maxmemory = ByteSize(limit);
    config.maxmemory_policy = "allkeys-lru".into();
    let node = start(config).await;
    let mut c = node.client().await;
    fill(&mut c, "k", 3 * limit / 1024, 1024).await.unwrap();
    let info = info(&mut c).await;
    let used = info_field(&info, "used_memory");
    assert!(used <= limit, "used_memory {used} > maxmemory {limit}");
    assert!(
        used > limit * 9 / 10,
        "the budget is used, not wasted: {used}"
    );
    assert!(info_field(&info, "evicted_keys") > 0);
    // The comparison with jemalloc's own count (used_memory is calibrated against it) needs a
    // process of its own: the tests here share one allocator. It is made on the real binary,
    // with the resident-memory bound, for every value size: crates/dcache/tests/node.rs.
}

#[tokio::test]
async fn noeviction_refuses_writes_with_redis_wording_and_keeps_reads_and_deletes() {
    let mut config = test_config();
    config.maxmemory = ByteSize(2 * 1024 * 1024);
    config.maxmemory_policy = "noeviction".into();
    let node = start(config).await;
    let mut c = node.client().await;
    let value = vec![b'v'; 1024];
    let mut refused = None;
    for i in 0..10_000 {
        let reply: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("k:{i:08}"))
            .arg(&value)
            .query_async(&mut c)
            .await;
        if let Err(e) = reply {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("writes are refused once 2 MiB are used");
    assert_eq!(err.code(), Some("OOM"));
    assert_eq!(
        err.detail(),
        Some("command not allowed when used memory > 'maxmemory'.")
    );
    let info = info(&mut c).await;
    assert_eq!(info_field(&info, "evicted_keys"), 0);
    let value: Option<Vec<u8>> = redis::cmd("GET")
        .arg("k:00000000")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(value.map(|v| v.len()), Some(1024));
    let deleted: i64 = redis::cmd("DEL")
        .arg("k:00000000")
        .arg("k:00000001")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    // Raising the limit lets writes through again.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("64mb")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_nobody_reads_are_reclaimed_by_the_expiry_cycle() {
    let node = start_manual(test_config()).await;
    let mut c = node.client().await;
    let mut other = node.client().await;
    for start in (0..100_000).step_by(1000) {
        let mut pipe = redis::pipe();
        for i in start..start + 1000 {
            pipe.cmd("SET")
                .arg(format!("t:{i}"))
                .arg("some value")
                .arg("PX")
                .arg(100)
                .ignore();
        }
        pipe.query_async::<()>(&mut c).await.unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("keep")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    let peak = node.shared.store.accounted_memory();
    assert!(peak > 100_000 * 20);
    node.advance_ms(100);
    // Cycles with no time budget run one round each: every shard gives up at most 256 keys,
    // holding its lock only for that, so a round reclaims at least min(256, what is left) a
    // shard. That bounds the rounds whatever the machine's speed; another client is served
    // between them.
    let per_round = 256 * node.shared.store.shard_count();
    for _ in 0..100_000usize.div_ceil(per_round) {
        active_expire(&node.shared, Duration::ZERO);
        let pong: String = redis::cmd("PING").query_async(&mut other).await.unwrap();
        assert_eq!(pong, "PONG");
    }
    let keys: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(keys, 1);
    let info = info(&mut c).await;
    assert_eq!(info_field(&info, "expired_keys"), 100_000);
    // Shards left empty give their structures back; the one that holds "keep" keeps its slab
    // and index at the size they grew to, as an allocator would report them: at most its share
    // of the peak.
    let keep_cost = node.shared.store.accounted_memory();
    let shards = node.shared.store.shard_count();
    assert!(
        keep_cost < peak / shards,
        "one small key and one shard's structures are accounted: {keep_cost} of {peak}"
    );
}

#[tokio::test]
async fn the_background_task_expires_keys_on_its_own() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    for i in 0..1000 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .arg("PX")
            .arg(1)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    // Bounded wait for the node's own cycle (10 a second); nothing reads the keys.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let keys: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
        if keys == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{keys} keys never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A small list, set or sorted set is held in its key's own allocation (its packed bytes after
/// the key), so that `MEMORY USAGE` is the entry's fixed cost plus one allocation of key and
/// packed bytes: no side-table cell (about 100 bytes) and no second buffer.
#[tokio::test]
async fn a_small_aggregate_costs_its_entry_and_one_allocation() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    let key = "k:0000000000";
    let members: Vec<String> = (0..5).map(|i| format!("member:{i}")).collect();
    // Per member at most: the member, a length byte in front, and behind it a length byte
    // (list); a sorted set's entry is smaller (a head byte, no score bytes for 0 to 7).
    let bound = |tag_and_header: usize| {
        dcache_store::ENTRY_OVERHEAD
            + dcache_store::alloc_size(key.len() + tag_and_header + 5 * (8 + 4))
    };
    for (kind, write) in [
        ("list", vec!["RPUSH"]),
        ("set", vec!["SADD"]),
        ("zset", vec!["ZADD"]),
    ] {
        let _: () = query(&mut c, &["DEL", key]).await;
        let mut cmd = redis::cmd(write[0]);
        cmd.arg(key);
        for (i, m) in members.iter().enumerate() {
            if kind == "zset" {
                cmd.arg(i);
            }
            cmd.arg(m);
        }
        let _: () = cmd.query_async(&mut c).await.unwrap();
        let usage: usize = query(&mut c, &["MEMORY", "USAGE", key]).await;
        assert!(
            usage <= bound(3),
            "{kind}: MEMORY USAGE {usage} > {} (entry and one allocation)",
            bound(3)
        );
        // A TTL adds its eight bytes to the same allocation and its place in the expiry index.
        let _: () = query(&mut c, &["EXPIRE", key, "100"]).await;
        let with_ttl: usize = query(&mut c, &["MEMORY", "USAGE", key]).await;
        assert!(
            with_ttl <= bound(3 + 8) + dcache_store::VOLATILE_OVERHEAD,
            "{kind} with a TTL: {with_ttl}"
        );
    }
}
