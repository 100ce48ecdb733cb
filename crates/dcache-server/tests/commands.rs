//! Command behaviour through the `redis` crate, an independent client.

mod common;

use common::{T0, TestNode, start, start_manual, test_config};
use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, RedisResult, Value};

async fn q<T: FromRedisValue>(con: &mut MultiplexedConnection, args: &[&str]) -> T {
    let value = common::cmd(con, args)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    redis::from_redis_value(value).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The error text of a command that must fail (code and detail, as Redis sends them).
async fn err(con: &mut MultiplexedConnection, args: &[&str]) -> String {
    let result: RedisResult<Value> = common::cmd(con, args).await;
    match result {
        Ok(v) => panic!("{args:?} should fail, got {v:?}"),
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
            .trim()
            .to_owned(),
    }
}

/// A node on a manual clock: TTLs read back exactly as set, however slow the machine.
async fn node() -> (TestNode, MultiplexedConnection) {
    let node = start_manual(test_config()).await;
    let con = node.client().await;
    (node, con)
}

#[tokio::test]
async fn set_and_its_options() {
    let (_node, mut c) = node().await;
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v1"]).await, "OK");
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "k", "v2", "NX"]).await,
        None
    );
    assert_eq!(q::<String>(&mut c, &["GET", "k"]).await, "v1");
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "new", "v", "XX"]).await,
        None
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "new"]).await, 0);
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "k", "v3", "GET"])
            .await
            .as_deref(),
        Some("v1")
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "fresh", "v", "GET"]).await,
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "k", "v4", "NX", "GET"])
            .await
            .as_deref(),
        Some("v3")
    );
    assert_eq!(q::<String>(&mut c, &["GET", "k"]).await, "v3");
    q::<()>(&mut c, &["SET", "t", "v", "EX", "100"]).await;
    assert_eq!(q::<i64>(&mut c, &["TTL", "t"]).await, 100);
    q::<()>(&mut c, &["SET", "t", "w", "KEEPTTL"]).await;
    assert_eq!(q::<i64>(&mut c, &["TTL", "t"]).await, 100);
    q::<()>(&mut c, &["SET", "t", "x"]).await;
    assert_eq!(q::<i64>(&mut c, &["TTL", "t"]).await, -1);
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "10", "PX", "10"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "abc"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "PX", "-1"]).await,
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX"]).await,
        "ERR syntax error"
    );
    q::<()>(&mut c, &["HSET", "h", "f", "v"]).await;
    assert!(
        err(&mut c, &["SET", "h", "v", "GET"])
            .await
            .starts_with("WRONGTYPE")
    );
    assert_eq!(q::<String>(&mut c, &["TYPE", "h"]).await, "hash");
}

#[tokio::test]
async fn string_family() {
    let (_node, mut c) = node().await;
    assert_eq!(q::<i64>(&mut c, &["SETNX", "a", "1"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["SETNX", "a", "2"]).await, 0);
    assert_eq!(q::<String>(&mut c, &["GETSET", "a", "3"]).await, "1");
    assert_eq!(q::<String>(&mut c, &["GETDEL", "a"]).await, "3");
    assert_eq!(q::<Option<String>>(&mut c, &["GETDEL", "a"]).await, None);
    assert_eq!(
        q::<String>(&mut c, &["MSET", "x", "1", "y", "2", "z", "3"]).await,
        "OK"
    );
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["MGET", "x", "nope", "z"]).await,
        vec![Some("1".into()), None, Some("3".into())]
    );
    assert_eq!(q::<i64>(&mut c, &["MSETNX", "x", "9", "w", "9"]).await, 0);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "w"]).await, None);
    assert_eq!(q::<i64>(&mut c, &["MSETNX", "v", "9", "w", "9"]).await, 1);
    assert_eq!(
        err(&mut c, &["MSET", "x", "1", "y"]).await,
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(q::<i64>(&mut c, &["APPEND", "s", "Hello"]).await, 5);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "s", " World"]).await, 11);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "s"]).await, 11);
    assert_eq!(
        q::<String>(&mut c, &["GETRANGE", "s", "0", "4"]).await,
        "Hello"
    );
    assert_eq!(
        q::<String>(&mut c, &["GETRANGE", "s", "-5", "-1"]).await,
        "World"
    );
    assert_eq!(
        q::<String>(&mut c, &["GETRANGE", "s", "20", "30"]).await,
        ""
    );
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "s", "6", "Redis"]).await, 11);
    assert_eq!(q::<String>(&mut c, &["GET", "s"]).await, "Hello Redis");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "pad", "3", "x"]).await, 4);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "pad"]).await, b"\0\0\0x");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "empty", "3", ""]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "empty"]).await, 0);
    assert_eq!(
        err(&mut c, &["SETRANGE", "s", "-1", "x"]).await,
        "ERR offset is out of range"
    );
    q::<()>(&mut c, &["SETEX", "e", "10", "v"]).await;
    assert_eq!(q::<i64>(&mut c, &["TTL", "e"]).await, 10);
    q::<()>(&mut c, &["PSETEX", "e", "5000", "v"]).await;
    assert_eq!(q::<i64>(&mut c, &["TTL", "e"]).await, 5);
    assert_eq!(
        err(&mut c, &["SETEX", "e", "0", "v"]).await,
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(q::<String>(&mut c, &["GETEX", "e", "PERSIST"]).await, "v");
    assert_eq!(q::<i64>(&mut c, &["TTL", "e"]).await, -1);
    assert_eq!(q::<String>(&mut c, &["GETEX", "e", "EX", "50"]).await, "v");
    assert_eq!(q::<i64>(&mut c, &["TTL", "e"]).await, 50);
    assert_eq!(
        err(&mut c, &["GETEX", "e", "EX", "1", "PX", "1"]).await,
        "ERR syntax error"
    );
}

#[tokio::test]
async fn counters() {
    let (_node, mut c) = node().await;
    assert_eq!(q::<i64>(&mut c, &["INCR", "n"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["INCRBY", "n", "10"]).await, 11);
    assert_eq!(q::<i64>(&mut c, &["DECR", "n"]).await, 10);
    assert_eq!(q::<i64>(&mut c, &["DECRBY", "n", "20"]).await, -10);
    q::<()>(&mut c, &["SET", "max", &i64::MAX.to_string()]).await;
    assert_eq!(
        err(&mut c, &["INCR", "max"]).await,
        "ERR increment or decrement would overflow"
    );
    q::<()>(&mut c, &["SET", "s", "12a"]).await;
    assert_eq!(
        err(&mut c, &["INCR", "s"]).await,
        "ERR value is not an integer or out of range"
    );
    q::<()>(&mut c, &["SET", "s", " 12"]).await;
    assert_eq!(
        err(&mut c, &["INCR", "s"]).await,
        "ERR value is not an integer or out of range"
    );
    q::<()>(&mut c, &["SET", "f", "10.50"]).await;
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "f", "0.1"]).await,
        "10.6"
    );
    q::<()>(&mut c, &["SET", "f", "5.0e3"]).await;
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "f", "2.0e2"]).await,
        "5200"
    );
    assert_eq!(
        err(&mut c, &["INCRBYFLOAT", "f", "abc"]).await,
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut c, &["INCRBYFLOAT", "f", "nan"]).await,
        "ERR value is not a valid float"
    );
    // A counter keeps its TTL (rate limiters depend on it).
    q::<()>(&mut c, &["SET", "rl", "0", "EX", "60"]).await;
    q::<i64>(&mut c, &["INCR", "rl"]).await;
    assert_eq!(q::<i64>(&mut c, &["TTL", "rl"]).await, 60);
}

#[tokio::test]
async fn keys_family() {
    let (_node, mut c) = node().await;
    q::<()>(
        &mut c,
        &["MSET", "user:1", "a", "user:2", "b", "other", "c"],
    )
    .await;
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "user:1", "user:1", "nope"]).await,
        2
    );
    assert_eq!(q::<i64>(&mut c, &["TOUCH", "user:1", "nope"]).await, 1);
    let mut keys: Vec<String> = q(&mut c, &["KEYS", "user:*"]).await;
    keys.sort();
    assert_eq!(keys, ["user:1", "user:2"]);
    assert_eq!(q::<String>(&mut c, &["TYPE", "nope"]).await, "none");
    assert_eq!(q::<String>(&mut c, &["TYPE", "other"]).await, "string");
    assert_eq!(
        q::<String>(&mut c, &["RENAME", "other", "renamed"]).await,
        "OK"
    );
    assert_eq!(
        err(&mut c, &["RENAME", "other", "x"]).await,
        "ERR no such key"
    );
    assert_eq!(
        q::<i64>(&mut c, &["RENAMENX", "renamed", "user:1"]).await,
        0
    );
    assert_eq!(q::<i64>(&mut c, &["RENAMENX", "renamed", "again"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["COPY", "again", "user:1"]).await, 0);
    assert_eq!(
        q::<i64>(&mut c, &["COPY", "again", "user:1", "REPLACE"]).await,
        1
    );
    assert_eq!(q::<String>(&mut c, &["GET", "user:1"]).await, "c");
    assert_eq!(
        q::<i64>(&mut c, &["DEL", "user:1", "user:2", "nope"]).await,
        2
    );
    assert_eq!(q::<i64>(&mut c, &["UNLINK", "again"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]).await, 0);
    assert_eq!(q::<Option<String>>(&mut c, &["RANDOMKEY"]).await, None);
    q::<()>(&mut c, &["SET", "only", "1"]).await;
    assert_eq!(q::<String>(&mut c, &["RANDOMKEY"]).await, "only");
}

#[tokio::test]
async fn scan_visits_every_key_and_filters() {
    let (_node, mut c) = node().await;
    for i in 0..300 {
        q::<()>(&mut c, &["SET", &format!("k:{i}"), "v"]).await;
    }
    q::<()>(&mut c, &["HSET", "session:1", "user", "ann"]).await;
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_owned();
    let mut rounds = 0;
    loop {
        let (next, keys): (String, Vec<String>) =
            q(&mut c, &["SCAN", &cursor, "COUNT", "25"]).await;
        seen.extend(keys);
        rounds += 1;
        if next == "0" {
            break;
        }
        cursor = next;
        assert!(rounds < 1000);
    }
    assert_eq!(seen.len(), 301);
    let (_, hashes): (String, Vec<String>) =
        q(&mut c, &["SCAN", "0", "COUNT", "1000", "TYPE", "hash"]).await;
    assert_eq!(hashes, ["session:1"]);
    let (_, matched): (String, Vec<String>) =
        q(&mut c, &["SCAN", "0", "MATCH", "k:1?", "COUNT", "1000"]).await;
    assert_eq!(matched.len(), 10);
    assert_eq!(err(&mut c, &["SCAN", "abc"]).await, "ERR invalid cursor");
}

#[tokio::test]
async fn ttls_follow_a_moving_clock() {
    let node = start_manual(test_config()).await;
    let mut c = node.client().await;
    q::<()>(&mut c, &["SET", "k", "v", "PX", "1500"]).await;
    assert_eq!(q::<i64>(&mut c, &["PTTL", "k"]).await, 1500);
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]).await, 2);
    assert_eq!(
        q::<i64>(&mut c, &["PEXPIRETIME", "k"]).await,
        (T0 + 1500) as i64
    );
    assert_eq!(
        q::<i64>(&mut c, &["EXPIRETIME", "k"]).await,
        ((T0 + 1500) / 1000) as i64
    );
    node.advance_ms(1499);
    assert_eq!(q::<String>(&mut c, &["GET", "k"]).await, "v");
    node.advance_ms(1);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]).await, None);
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]).await, -2);

    q::<()>(&mut c, &["SET", "p", "v"]).await;
    assert_eq!(q::<i64>(&mut c, &["TTL", "p"]).await, -1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "100", "XX"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "100", "GT"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "100", "NX"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "200", "NX"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "50", "GT"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "200", "GT"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "p", "300", "LT"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "p", "1000", "LT"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["PTTL", "p"]).await, 1000);
    assert_eq!(
        err(&mut c, &["EXPIRE", "p", "1", "NX", "XX"]).await,
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "p"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "p"]).await, 0);
    let at = (T0 + 5000) / 1000 + 10;
    assert_eq!(
        q::<i64>(&mut c, &["EXPIREAT", "p", &at.to_string()]).await,
        1
    );
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "p"]).await, at as i64);
    // An expiry in the past deletes the key.
    assert_eq!(q::<i64>(&mut c, &["PEXPIREAT", "p", "1000"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "p"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "missing", "10"]).await, 0);
    // A key set with a TTL that has passed is gone from reads and from DBSIZE after expiry.
    q::<()>(&mut c, &["SET", "gone", "v", "EX", "1"]).await;
    node.advance_ms(1000);
    dcache_server::active_expire(&node.shared, std::time::Duration::from_secs(1));
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]).await, 0);
}

#[tokio::test]
async fn hashes_hold_sessions() {
    let (_node, mut c) = node().await;
    assert_eq!(
        q::<i64>(&mut c, &["HSET", "s", "user", "ann", "cart", "3"]).await,
        2
    );
    assert_eq!(
        q::<i64>(&mut c, &["HSET", "s", "user", "bob", "theme", "dark"]).await,
        1
    );
    assert_eq!(
        q::<String>(&mut c, &["HMSET", "s", "lang", "en"]).await,
        "OK"
    );
    assert_eq!(q::<String>(&mut c, &["HGET", "s", "user"]).await, "bob");
    assert_eq!(
        q::<Option<String>>(&mut c, &["HGET", "s", "nope"]).await,
        None
    );
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["HMGET", "s", "user", "nope"]).await,
        vec![Some("bob".into()), None]
    );
    let all: std::collections::HashMap<String, String> = q(&mut c, &["HGETALL", "s"]).await;
    assert_eq!(all.len(), 4);
    assert_eq!(all["theme"], "dark");
    assert_eq!(q::<Vec<String>>(&mut c, &["HKEYS", "s"]).await.len(), 4);
    assert_eq!(q::<Vec<String>>(&mut c, &["HVALS", "s"]).await.len(), 4);
    assert_eq!(q::<i64>(&mut c, &["HLEN", "s"]).await, 4);
    assert_eq!(q::<i64>(&mut c, &["HEXISTS", "s", "lang"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["HSTRLEN", "s", "user"]).await, 3);
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "s", "user", "x"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "s", "new", "x"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["HINCRBY", "s", "cart", "2"]).await, 5);
    assert_eq!(
        err(&mut c, &["HINCRBY", "s", "user", "1"]).await,
        "ERR hash value is not an integer"
    );
    assert_eq!(
        q::<String>(&mut c, &["HINCRBYFLOAT", "s", "score", "1.5"]).await,
        "1.5"
    );
    assert_eq!(
        err(&mut c, &["HINCRBYFLOAT", "s", "user", "1"]).await,
        "ERR hash value is not a float"
    );
    assert_eq!(
        q::<i64>(&mut c, &["HDEL", "s", "user", "nope", "new"]).await,
        2
    );
    // What the hash holds now: "user" and "new" are gone, "score" came.
    let now: std::collections::HashMap<&str, &str> = [
        ("cart", "5"),
        ("theme", "dark"),
        ("lang", "en"),
        ("score", "1.5"),
    ]
    .into();
    for _ in 0..20 {
        let one: String = q(&mut c, &["HRANDFIELD", "s"]).await;
        assert!(now.contains_key(one.as_str()), "{one}");
    }
    let three: Vec<String> = q(&mut c, &["HRANDFIELD", "s", "3"]).await;
    let distinct: std::collections::HashSet<&str> = three.iter().map(String::as_str).collect();
    assert_eq!(distinct.len(), 3, "{three:?}");
    assert!(distinct.iter().all(|f| now.contains_key(f)), "{three:?}");
    let mut every: Vec<String> = q(&mut c, &["HRANDFIELD", "s", "100"]).await;
    every.sort();
    assert_eq!(every, ["cart", "lang", "score", "theme"]);
    let repeats: Vec<String> = q(&mut c, &["HRANDFIELD", "s", "-8"]).await;
    assert_eq!(repeats.len(), 8);
    assert!(
        repeats.iter().all(|f| now.contains_key(f.as_str())),
        "{repeats:?}"
    );
    let pairs: Vec<String> = q(&mut c, &["HRANDFIELD", "s", "2", "WITHVALUES"]).await;
    assert_eq!(pairs.len(), 4);
    for pair in pairs.chunks(2) {
        assert_eq!(
            now.get(pair[0].as_str()),
            Some(&pair[1].as_str()),
            "{pairs:?}"
        );
    }
    let (cursor, fields): (String, Vec<String>) =
        q(&mut c, &["HSCAN", "s", "0", "MATCH", "c*"]).await;
    assert_eq!(
        (cursor.as_str(), fields),
        ("0", vec!["cart".to_owned(), "5".to_owned()])
    );
    for f in ["cart", "theme", "lang", "score"] {
        q::<i64>(&mut c, &["HDEL", "s", f]).await;
    }
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "s"]).await,
        0,
        "an emptied hash is removed"
    );
    q::<()>(&mut c, &["SET", "str", "v"]).await;
    assert!(
        err(&mut c, &["HSET", "str", "f", "v"])
            .await
            .starts_with("WRONGTYPE")
    );
    assert_eq!(
        err(&mut c, &["HSET", "h", "f"]).await,
        "ERR wrong number of arguments for 'hset' command"
    );
}

#[tokio::test]
async fn server_commands() {
    let (node, mut c) = node().await;
    q::<()>(&mut c, &["SET", "a", "12345"]).await;
    q::<()>(&mut c, &["SET", "b", "x", "EX", "100"]).await;
    q::<Option<String>>(&mut c, &["GET", "missing"]).await;
    let info: String = q(&mut c, &["INFO"]).await;
    for field in [
        "redis_version:",
        "tcp_port:",
        "connected_clients:1",
        "used_memory:",
        "maxmemory:0",
        "maxmemory_policy:allkeys-s3fifo",
        "keyspace_hits:0",
        "keyspace_misses:1",
        "expired_keys:0",
        "evicted_keys:0",
        "total_commands_processed:",
        "instantaneous_ops_per_sec:",
        "db0:keys=2,expires=1",
    ] {
        assert!(info.contains(field), "INFO lacks {field}:\n{info}");
    }
    assert!(info.contains(&format!("tcp_port:{}", node.addr.port())));
    let stats: String = q(&mut c, &["INFO", "commandstats"]).await;
    assert!(stats.contains("cmdstat_set:calls=2"), "{stats}");
    assert!(!stats.contains("# Server"));

    let config: std::collections::HashMap<String, String> =
        q(&mut c, &["CONFIG", "GET", "maxmemory*"]).await;
    assert_eq!(config.len(), 2);
    assert_eq!(config["maxmemory-policy"], "allkeys-s3fifo");
    assert_eq!(
        q::<String>(
            &mut c,
            &[
                "CONFIG",
                "SET",
                "maxmemory",
                "10mb",
                "maxmemory-policy",
                "allkeys-lfu"
            ]
        )
        .await,
        "OK"
    );
    let config: Vec<String> = q(&mut c, &["CONFIG", "GET", "maxmemory"]).await;
    assert_eq!(config, ["maxmemory", "10485760"]);
    let unknown = err(&mut c, &["CONFIG", "SET", "maxmemory-policy", "mru"]).await;
    assert!(
        unknown.starts_with("ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: noeviction, allkeys-lru,"),
        "{unknown}"
    );
    for policy in ["allkeys-s3fifo", "volatile-sieve", "allkeys-w-tinylfu"] {
        assert!(unknown.contains(policy), "{unknown}");
        assert_eq!(
            q::<String>(&mut c, &["CONFIG", "SET", "maxmemory-policy", policy]).await,
            "OK"
        );
        let got: Vec<String> = q(&mut c, &["CONFIG", "GET", "maxmemory-policy"]).await;
        assert_eq!(got, ["maxmemory-policy", policy]);
    }
    q::<()>(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    )
    .await;
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "port", "1"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"
    );
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "nope", "1"]).await,
        "ERR Unknown option or number of arguments for CONFIG SET - 'nope'"
    );
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", "2gb"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - argument must be between 1048576 and 1073741823 inclusive"
    );
    let save: Vec<String> = q(&mut c, &["CONFIG", "GET", "save"]).await;
    assert_eq!(save, ["save", ""]);

    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "a"]).await,
        "int"
    );
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "b"]).await,
        "embstr"
    );
    assert!(q::<i64>(&mut c, &["OBJECT", "FREQ", "a"]).await >= 1);
    assert!(
        err(&mut c, &["OBJECT", "IDLETIME", "a"])
            .await
            .starts_with("ERR An LRU maxmemory policy is not selected")
    );
    q::<()>(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    )
    .await;
    assert_eq!(q::<i64>(&mut c, &["OBJECT", "IDLETIME", "a"]).await, 0);
    assert!(
        err(&mut c, &["OBJECT", "FREQ", "a"])
            .await
            .starts_with("ERR An LFU maxmemory policy is not selected")
    );
    let usage: i64 = q(&mut c, &["MEMORY", "USAGE", "a"]).await;
    assert!(usage > 5 && usage < 500, "{usage}");
    assert_eq!(
        q::<Option<i64>>(&mut c, &["MEMORY", "USAGE", "missing"]).await,
        None
    );

    let (secs, micros): (String, String) = q(&mut c, &["TIME"]).await;
    assert!(
        secs.parse::<u64>().unwrap() > 1_700_000_000 && micros.parse::<u32>().unwrap() < 1_000_000
    );
    let count: i64 = q(&mut c, &["COMMAND", "COUNT"]).await;
    assert!(count > 70);
    let info: Vec<Value> = q(&mut c, &["COMMAND", "INFO", "get", "nosuch"]).await;
    assert_eq!(info.len(), 2);
    assert_eq!(info[1], Value::Nil);
    let Value::Array(get) = &info[0] else {
        panic!("{info:?}")
    };
    assert_eq!(get[1], Value::Int(2));
    assert_eq!(
        (&get[3], &get[4], &get[5]),
        (&Value::Int(1), &Value::Int(1), &Value::Int(1))
    );
    let docs: Value = q(&mut c, &["COMMAND", "DOCS", "set"]).await;
    assert!(format!("{docs:?}").contains("summary"));

    // The same slots as Redis Cluster (these two are Redis's own answers).
    assert_eq!(
        q::<i64>(&mut c, &["CLUSTER", "KEYSLOT", "foo"]).await,
        12182
    );
    assert_eq!(
        q::<i64>(&mut c, &["CLUSTER", "KEYSLOT", "{user1000}.following"]).await,
        3443
    );
    assert_eq!(
        err(&mut c, &["CLUSTER", "NODES"]).await,
        "ERR This instance has cluster support disabled"
    );

    assert_eq!(q::<String>(&mut c, &["FLUSHALL"]).await, "OK");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]).await, 0);
    assert!(
        err(&mut c, &["CONFIG", "BOGUS"])
            .await
            .starts_with("ERR unknown subcommand 'BOGUS'. Try CONFIG HELP.")
    );
}

#[tokio::test]
async fn client_commands() {
    let (node, mut c) = node().await;
    let id: i64 = q(&mut c, &["CLIENT", "ID"]).await;
    assert!(id > 0);
    assert_eq!(
        q::<Option<String>>(&mut c, &["CLIENT", "GETNAME"]).await,
        None
    );
    q::<()>(&mut c, &["CLIENT", "SETNAME", "worker-1"]).await;
    assert_eq!(
        q::<String>(&mut c, &["CLIENT", "GETNAME"]).await,
        "worker-1"
    );
    assert_eq!(
        err(&mut c, &["CLIENT", "SETNAME", "has space"]).await,
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    let mut other = node.client().await;
    let list: String = q(&mut c, &["CLIENT", "LIST"]).await;
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(&format!("id={id} ")) && list.contains("name=worker-1"));
    let me: String = q(&mut c, &["CLIENT", "INFO"]).await;
    assert!(me.contains("cmd=client"), "{me}");
    let other_id: i64 = q(&mut other, &["CLIENT", "ID"]).await;
    assert_eq!(
        q::<i64>(&mut c, &["CLIENT", "KILL", "ID", &other_id.to_string()]).await,
        1
    );
    assert!(
        common::cmd(&mut other, &["PING"]).await.is_err(),
        "a killed client is disconnected"
    );
    assert_eq!(q::<String>(&mut c, &["PING"]).await, "PONG");
    assert_eq!(q::<String>(&mut c, &["ECHO", "hi"]).await, "hi");
}

#[tokio::test]
async fn resp3_through_the_redis_crate() {
    let node = start(test_config()).await;
    let client = redis::Client::open(format!("{}?protocol=resp3", node.url())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    q::<()>(&mut c, &["HSET", "h", "a", "1"]).await;
    let map: Value = common::cmd(&mut c, &["HGETALL", "h"]).await.unwrap();
    assert!(matches!(map, Value::Map(_)), "{map:?}");
    let missing: Value = common::cmd(&mut c, &["GET", "nope"]).await.unwrap();
    assert_eq!(missing, Value::Nil);
}

/// A stop with requests in flight: a pipelined batch whose replies (50 MB) cannot all fit in the
/// socket buffers is sent, the node is told to stop before any reply is read, and still every
/// request is answered, in order, before the connection closes and the node stops listening.
#[tokio::test]
async fn graceful_shutdown_answers_the_requests_in_flight_and_stops_listening() {
    use tokio::io::AsyncWriteExt;
    let node = start(test_config()).await;
    let addr = node.addr;
    let mut raw = node.raw().await;
    let big = vec![b'x'; 1 << 20];
    let mut set = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", big.len()).into_bytes();
    set.extend_from_slice(&big);
    set.extend_from_slice(b"\r\n");
    assert_eq!(common::exchange(&mut raw, &set, 5).await, b"+OK\r\n");

    let (gets, incrs) = (50, 1000);
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..gets {
        batch.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
        expected.extend_from_slice(format!("${}\r\n", big.len()).as_bytes());
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"\r\n");
    }
    for i in 1..=incrs {
        batch.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n");
        expected.extend_from_slice(format!(":{i}\r\n").as_bytes());
    }
    raw.write_all(&batch).await.unwrap();
    let stopping = tokio::spawn(node.stop());
    // The node stops accepting first; until then nothing is read, so the replies are in flight.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::task::yield_now().await;
    }
    let got = common::read_n(&mut raw, expected.len()).await;
    assert_eq!(got.len(), expected.len(), "replies cut short");
    assert!(got == expected, "replies differ from the requests' answers");
    assert!(
        common::is_closed(&mut raw).await,
        "the connection closes after"
    );
    stopping.await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
