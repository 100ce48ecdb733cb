//! Bitmaps, bit fields and LCS through the `redis` crate. The expected replies are Redis's
//! (7.2), from its documentation's examples and a `redis-server` asked the same questions.

mod common;

use common::{error_text as err, query as q, start, test_config};
use dcache_server::ByteSize;
use redis::Value;
use redis::aio::MultiplexedConnection;

async fn node() -> (common::TestNode, MultiplexedConnection) {
    let node = start(test_config()).await;
    let con = node.client().await;
    (node, con)
}

/// Sets `key` to raw bytes.
async fn set_bytes(c: &mut MultiplexedConnection, key: &str, bytes: &[u8]) {
    let () = redis::cmd("SET")
        .arg(key)
        .arg(bytes)
        .query_async(c)
        .await
        .unwrap();
}

async fn get_bytes(c: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query_async(c).await.unwrap()
}

#[tokio::test]
async fn setbit_and_getbit() {
    let (_node, mut c) = node().await;
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "b", "7", "1"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "b", "7", "1"]).await, 1);
    assert_eq!(get_bytes(&mut c, "b").await.unwrap(), [0x01]);
    // Growing fills with zero bytes.
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "b", "16", "1"]).await, 0);
    assert_eq!(get_bytes(&mut c, "b").await.unwrap(), [0x01, 0, 0x80]);
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "b", "7", "0"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "b", "16"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "b", "7"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "b", "1000"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "missing", "3"]).await, 0);
    // Clearing a bit of a missing key still creates it, as Redis does.
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "z", "9", "0"]).await, 0);
    assert_eq!(get_bytes(&mut c, "z").await.unwrap(), [0, 0]);
    let offset = "ERR bit offset is not an integer or out of range";
    for args in [
        &["SETBIT", "b", "4294967296", "1"][..],
        &["SETBIT", "b", "-1", "1"],
        &["SETBIT", "b", "x", "1"],
        &["SETBIT", "b", "#1", "1"],
        &["GETBIT", "b", "4294967296"],
        &["GETBIT", "b", "#1"],
    ] {
        assert_eq!(err(&mut c, args).await, offset, "{args:?}");
    }
    for value in ["2", "-1", "01", "x"] {
        assert_eq!(
            err(&mut c, &["SETBIT", "b", "1", value]).await,
            "ERR bit is not an integer or out of range"
        );
    }
    q::<()>(&mut c, &["HSET", "h", "f", "v"]).await;
    assert!(
        err(&mut c, &["SETBIT", "h", "1", "1"])
            .await
            .starts_with("WRONGTYPE")
    );
    assert!(
        err(&mut c, &["GETBIT", "h", "1"])
            .await
            .starts_with("WRONGTYPE")
    );
}

#[tokio::test]
async fn setbit_asks_for_memory_first() {
    let mut config = test_config();
    config.maxmemory = ByteSize(2 * 1024 * 1024);
    config.maxmemory_policy = "noeviction".into();
    let node = start(config).await;
    let mut c = node.client().await;
    // 4 MB of bits into a 2 MB budget: refused before anything grows.
    assert!(
        err(&mut c, &["SETBIT", "big", "33554431", "1"])
            .await
            .starts_with("OOM")
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "big"]).await, 0);
    assert!(
        err(&mut c, &["BITFIELD", "big", "SET", "u8", "33554424", "1"])
            .await
            .starts_with("OOM")
    );
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "small", "8000", "1"]).await, 0);
    // Bits inside a string that is already long ask for nothing: 1.5 MB of a 2 MB budget,
    // then bits set all over it.
    q::<()>(&mut c, &["SETBIT", "wide", "12582911", "1"]).await;
    for offset in ["0", "6000000", "12582910"] {
        assert_eq!(q::<i64>(&mut c, &["SETBIT", "wide", offset, "1"]).await, 0);
    }
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "wide"]).await, 4);
}

#[tokio::test]
async fn bitcount_in_bytes_and_bits() {
    let (_node, mut c) = node().await;
    q::<()>(&mut c, &["SET", "k", "foobar"]).await;
    for (args, want) in [
        (&["BITCOUNT", "k"][..], 26),
        (&["BITCOUNT", "k", "0", "0"], 4),
        (&["BITCOUNT", "k", "1", "1", "BIT"], 1),
        (&["BITCOUNT", "k", "5", "30", "BIT"], 17),
        (&["BITCOUNT", "k", "-2", "-1"], 7),
        (&["BITCOUNT", "k", "0", "1", "byte"], 10),
        (&["BITCOUNT", "k", "-1", "-2"], 0),
        (&["BITCOUNT", "k", "4", "100"], 7),
        (&["BITCOUNT", "k", "-100", "0"], 4),
        (&["BITCOUNT", "missing"], 0),
        (&["BITCOUNT", "missing", "0", "-1", "BIT"], 0),
    ] {
        assert_eq!(q::<i64>(&mut c, args).await, want, "{args:?}");
    }
    set_bytes(&mut c, "e", b"").await;
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "e", "0", "-1"]).await, 0);
    assert_eq!(
        err(&mut c, &["BITCOUNT", "k", "0"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["BITCOUNT", "k", "0", "1", "foo"]).await,
        "ERR syntax error"
    );
    // Redis 7.2 reads the arguments before the key: a missing key's bad range is an error.
    assert_eq!(
        err(&mut c, &["BITCOUNT", "missing", "x", "1"]).await,
        "ERR value is not an integer or out of range"
    );
}

#[tokio::test]
async fn bitpos_finds_set_and_clear_bits() {
    let (_node, mut c) = node().await;
    q::<()>(&mut c, &["SET", "k", "foobar"]).await;
    set_bytes(&mut c, "c", &[0xff, 0xf0, 0x00]).await;
    set_bytes(&mut c, "d", &[0xff, 0xff]).await;
    set_bytes(&mut c, "e", b"").await;
    for (args, want) in [
        (&["BITPOS", "k", "1"][..], 1),
        (&["BITPOS", "k", "1", "2"], 17),
        (&["BITPOS", "k", "1", "-2", "-1", "BIT"], 46),
        (&["BITPOS", "k", "0", "1", "2", "BIT"], -1),
        (&["BITPOS", "k", "1", "7", "15", "BIT"], 9),
        (&["BITPOS", "c", "0"], 12),
        (&["BITPOS", "c", "1", "-1"], -1),
        (&["BITPOS", "c", "0", "1", "1"], 12),
        // All ones and no end: the first clear bit is just past the string.
        (&["BITPOS", "d", "0"], 16),
        (&["BITPOS", "d", "0", "1"], 16),
        // All ones within an explicit end: none.
        (&["BITPOS", "d", "0", "0", "-1"], -1),
        (&["BITPOS", "d", "0", "3", "-1", "BIT"], -1),
        (&["BITPOS", "d", "1", "3", "-1", "BIT"], 3),
        (&["BITPOS", "e", "0"], -1),
        (&["BITPOS", "e", "1"], -1),
        (&["BITPOS", "missing", "0"], 0),
        (&["BITPOS", "missing", "1"], -1),
    ] {
        assert_eq!(q::<i64>(&mut c, args).await, want, "{args:?}");
    }
    assert_eq!(
        err(&mut c, &["BITPOS", "k", "2"]).await,
        "ERR The bit argument must be 1 or 0."
    );
    assert_eq!(
        err(&mut c, &["BITPOS", "k", "1", "0", "1", "2", "3"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["BITPOS", "d", "0", "3", "BIT"]).await,
        "ERR value is not an integer or out of range"
    );
}

#[tokio::test]
async fn bitop_combines_strings() {
    let (_node, mut c) = node().await;
    q::<()>(&mut c, &["SET", "k1", "abc"]).await;
    q::<()>(&mut c, &["SET", "k2", "ab"]).await;
    assert_eq!(
        q::<i64>(&mut c, &["BITOP", "AND", "dst", "k1", "k2"]).await,
        3
    );
    assert_eq!(get_bytes(&mut c, "dst").await.unwrap(), b"ab\0");
    assert_eq!(
        q::<i64>(&mut c, &["BITOP", "or", "dst", "k1", "k2", "missing"]).await,
        3
    );
    assert_eq!(get_bytes(&mut c, "dst").await.unwrap(), b"abc");
    assert_eq!(
        q::<i64>(&mut c, &["BITOP", "XOR", "dst", "k1", "k2"]).await,
        3
    );
    assert_eq!(get_bytes(&mut c, "dst").await.unwrap(), [0, 0, b'c']);
    q::<()>(&mut c, &["EXPIRE", "dst", "100"]).await;
    assert_eq!(q::<i64>(&mut c, &["BITOP", "NOT", "dst", "k2"]).await, 2);
    assert_eq!(get_bytes(&mut c, "dst").await.unwrap(), [!b'a', !b'b']);
    assert_eq!(
        q::<i64>(&mut c, &["TTL", "dst"]).await,
        -1,
        "replaced whole"
    );
    // Nothing to combine: the destination is deleted.
    assert_eq!(
        q::<i64>(&mut c, &["BITOP", "AND", "dst", "missing"]).await,
        0
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]).await, 0);
    assert_eq!(
        err(&mut c, &["BITOP", "NOT", "dst", "k1", "k2"]).await,
        "ERR BITOP NOT must be called with a single source key."
    );
    assert_eq!(
        err(&mut c, &["BITOP", "nand", "dst", "k1"]).await,
        "ERR syntax error"
    );
    q::<()>(&mut c, &["SADD", "set", "m"]).await;
    assert!(
        err(&mut c, &["BITOP", "OR", "dst", "k1", "set"])
            .await
            .starts_with("WRONGTYPE")
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]).await, 0);
}

fn ints(values: &[Option<i64>]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|v| v.map_or(Value::Nil, Value::Int))
            .collect(),
    )
}

async fn raw(c: &mut MultiplexedConnection, args: &[&str]) -> Value {
    common::cmd(c, args)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[tokio::test]
async fn bitfield_reads_writes_and_overflows() {
    let (_node, mut c) = node().await;
    q::<()>(&mut c, &["SET", "k", "foobar"]).await;
    assert_eq!(
        raw(
            &mut c,
            &[
                "BITFIELD", "k", "GET", "u8", "0", "GET", "i4", "4", "GET", "u16", "#1"
            ]
        )
        .await,
        ints(&[Some(102), Some(6), Some(28514)])
    );
    assert_eq!(
        raw(
            &mut c,
            &[
                "BITFIELD", "n", "OVERFLOW", "SAT", "INCRBY", "u8", "0", "300", "INCRBY", "i8",
                "8", "-300", "OVERFLOW", "WRAP", "INCRBY", "u8", "0", "10", "SET", "i8", "8",
                "200"
            ]
        )
        .await,
        ints(&[Some(255), Some(-128), Some(9), Some(-128)])
    );
    assert_eq!(
        raw(
            &mut c,
            &["BITFIELD_RO", "n", "GET", "u8", "0", "GET", "i8", "8"]
        )
        .await,
        ints(&[Some(9), Some(-56)])
    );
    assert_eq!(
        raw(
            &mut c,
            &[
                "BITFIELD",
                "w",
                "OVERFLOW",
                "WRAP",
                "INCRBY",
                "i64",
                "0",
                "9223372036854775807",
                "INCRBY",
                "i64",
                "0",
                "1"
            ]
        )
        .await,
        ints(&[Some(i64::MAX), Some(i64::MIN)])
    );
    // FAIL writes nothing and answers nil, but the key has grown to the field, as in Redis.
    assert_eq!(
        raw(
            &mut c,
            &["BITFIELD", "f", "OVERFLOW", "FAIL", "SET", "u8", "0", "256"]
        )
        .await,
        ints(&[None])
    );
    assert_eq!(get_bytes(&mut c, "f").await.unwrap(), [0]);
    assert_eq!(
        raw(&mut c, &["BITFIELD", "f", "SET", "u8", "#3", "7"]).await,
        ints(&[Some(0)])
    );
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "f"]).await, 4);
    // Reads alone create nothing.
    assert_eq!(
        raw(
            &mut c,
            &["BITFIELD", "none", "GET", "u8", "0", "GET", "i64", "3"]
        )
        .await,
        ints(&[Some(0), Some(0)])
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "none"]).await, 0);
    assert_eq!(raw(&mut c, &["BITFIELD", "none"]).await, ints(&[]));

    let bad_type = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
    for (args, want) in [
        (&["BITFIELD", "k", "GET", "u64", "0"][..], bad_type),
        (&["BITFIELD", "k", "GET", "I8", "0"], bad_type),
        (&["BITFIELD", "k", "GET", "i0", "0"], bad_type),
        (&["BITFIELD", "k", "GET", "i65", "0"], bad_type),
        (
            &["BITFIELD", "k", "GET", "i8", "0", "OVERFLOW"],
            "ERR syntax error",
        ),
        (
            &["BITFIELD", "k", "OVERFLOW", "foo"],
            "ERR Invalid OVERFLOW type specified",
        ),
        (
            &["BITFIELD", "k", "GET", "i8", "-1"],
            "ERR bit offset is not an integer or out of range",
        ),
        (
            &["BITFIELD", "k", "SET", "i8", "0", "x"],
            "ERR value is not an integer or out of range",
        ),
        (&["BITFIELD", "k", "NOPE", "i8", "0"], "ERR syntax error"),
        (
            &["BITFIELD_RO", "k", "GET", "u8", "0", "SET", "u8", "0", "1"],
            "ERR BITFIELD_RO only supports the GET subcommand",
        ),
    ] {
        assert_eq!(err(&mut c, args).await, want, "{args:?}");
    }
    // A bad operation anywhere changes nothing.
    let _ = err(
        &mut c,
        &["BITFIELD", "k", "SET", "u8", "0", "0", "GET", "u64", "0"],
    )
    .await;
    assert_eq!(q::<String>(&mut c, &["GET", "k"]).await, "foobar");
}

#[tokio::test]
async fn lcs_of_two_strings() {
    let (_node, mut c) = node().await;
    q::<()>(&mut c, &["MSET", "{l}a", "ohmytext", "{l}b", "mynewtext"]).await;
    assert_eq!(
        q::<String>(&mut c, &["LCS", "{l}a", "{l}b"]).await,
        "mytext"
    );
    assert_eq!(q::<i64>(&mut c, &["LCS", "{l}a", "{l}b", "LEN"]).await, 6);
    let range = |a: i64, b: i64| Value::Array(vec![Value::Int(a), Value::Int(b)]);
    assert_eq!(
        raw(&mut c, &["LCS", "{l}a", "{l}b", "IDX"]).await,
        Value::Array(vec![
            Value::BulkString(b"matches".to_vec()),
            Value::Array(vec![
                Value::Array(vec![range(4, 7), range(5, 8)]),
                Value::Array(vec![range(2, 3), range(0, 1)]),
            ]),
            Value::BulkString(b"len".to_vec()),
            Value::Int(6),
        ])
    );
    assert_eq!(
        raw(
            &mut c,
            &[
                "LCS",
                "{l}a",
                "{l}b",
                "IDX",
                "MINMATCHLEN",
                "4",
                "WITHMATCHLEN"
            ]
        )
        .await,
        Value::Array(vec![
            Value::BulkString(b"matches".to_vec()),
            Value::Array(vec![Value::Array(vec![
                range(4, 7),
                range(5, 8),
                Value::Int(4)
            ])]),
            Value::BulkString(b"len".to_vec()),
            Value::Int(6),
        ])
    );
    assert_eq!(q::<String>(&mut c, &["LCS", "{l}a", "{l}none"]).await, "");
    assert_eq!(
        err(&mut c, &["LCS", "{l}a", "{l}b", "IDX", "LEN"]).await,
        "ERR If you want both the length and indexes, please just use IDX."
    );
    assert_eq!(
        err(&mut c, &["LCS", "{l}a", "{l}b", "MINMATCHLEN"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["LCS", "{l}a", "{l}b", "MINMATCHLEN", "x"]).await,
        "ERR value is not an integer or out of range"
    );
    q::<()>(&mut c, &["HSET", "{l}h", "f", "v"]).await;
    assert_eq!(
        err(&mut c, &["LCS", "{l}a", "{l}h"]).await,
        "ERR The specified keys must contain string values"
    );
    // The table is refused past proto-max-bulk-len bytes (here 12 MB of cells), as in Redis.
    let long = "x".repeat(2000);
    q::<()>(&mut c, &["MSET", "{l}x", &long, "{l}y", &long]).await;
    assert_eq!(
        q::<i64>(&mut c, &["LCS", "{l}x", "{l}y", "LEN"]).await,
        2000
    );
    q::<()>(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", "1mb"]).await;
    assert_eq!(
        err(&mut c, &["LCS", "{l}x", "{l}y", "LEN"]).await,
        "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
    );
}

/// A bit set in a string long enough already changes that bit where it lies: the other bytes,
/// the TTL and the version the replicas compare stay right, and a watcher of the key's version
/// sees the change.
#[tokio::test]
async fn setbit_in_a_long_string_changes_only_its_bit() {
    let (node, mut c) = node().await;
    let mut want = vec![0u8; 4096];
    want[..5].copy_from_slice(b"hello");
    set_bytes(&mut c, "bm", &want).await;
    let _: () = q(&mut c, &["PEXPIRE", "bm", "600000"]).await;
    let before = node
        .shared
        .store
        .effect_of(b"bm", node.shared.clock.now_ms());
    for (offset, on) in [
        (7, "1"),
        (4095 * 8 + 7, "1"),
        (15, "1"),
        (7, "0"),
        (20_000, "1"),
    ] {
        let old: i64 = q(&mut c, &["SETBIT", "bm", &offset.to_string(), on]).await;
        let byte = offset / 8;
        let mask = 1u8 << (7 - offset % 8);
        assert_eq!(
            old,
            i64::from(want[byte] & mask != 0),
            "old bit at {offset}"
        );
        if on == "1" {
            want[byte] |= mask;
        } else {
            want[byte] &= !mask;
        }
    }
    assert_eq!(get_bytes(&mut c, "bm").await.unwrap(), want);
    let ttl: i64 = q(&mut c, &["PTTL", "bm"]).await;
    assert!(ttl > 0, "the TTL stays: {ttl}");
    let after = node
        .shared
        .store
        .effect_of(b"bm", node.shared.clock.now_ms());
    assert!(after.version > before.version, "the key's version moves on");
    let bits: i64 = q(&mut c, &["BITCOUNT", "bm"]).await;
    let ones: u32 = want.iter().map(|b| b.count_ones()).sum();
    assert_eq!(bits, i64::from(ones));
}
