//! Replies that once differed from Redis's (found by the command fuzzer's comparison with a real
//! `redis-server`, `fuzz_commands.rs`), each pinned here with Redis's answer.

mod common;

use common::{error_text as err, query as q, start, test_config};

const SYNTAX: &str = "ERR syntax error";

#[tokio::test]
async fn set_options_may_repeat_and_the_last_expiry_wins() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    assert_eq!(
        q::<String>(&mut c, &["SET", "k", "v", "EX", "10", "EX", "2000"]).await,
        "OK"
    );
    let ttl: i64 = q(&mut c, &["TTL", "k"]).await;
    assert!((1990..=2000).contains(&ttl), "{ttl}");
    assert_eq!(
        q::<String>(&mut c, &["SET", "k", "v", "XX", "XX"]).await,
        "OK"
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "k", "v", "NX", "NX"]).await,
        None
    );
    assert_eq!(
        q::<String>(&mut c, &["SET", "k", "v", "KEEPTTL", "KEEPTTL"]).await,
        "OK"
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "k", "w", "GET", "GET"]).await,
        Some("v".into())
    );
    for bad in [
        &["SET", "k", "v", "PX", "10", "EX", "10"][..],
        &["SET", "k", "v", "EX", "10", "KEEPTTL"],
        &["SET", "k", "v", "KEEPTTL", "EX", "10"],
        &["SET", "k", "v", "NX", "XX"],
        &["SET", "k", "v", "EX"],
    ] {
        assert_eq!(err(&mut c, bad).await, SYNTAX, "{bad:?}");
    }
    // The syntax is checked before any value: a bad number after a bad option is a syntax error.
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "abc", "NX", "XX"]).await,
        SYNTAX
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "abc"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["SET", "k", "v", "EX", "0"]).await,
        "ERR invalid expire time in 'set' command"
    );
}

#[tokio::test]
async fn getex_checks_syntax_then_key_then_type_then_expiry() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    // A missing key answers nil whatever the expiry's value.
    assert_eq!(
        q::<Option<String>>(&mut c, &["GETEX", "nokey", "EX", "abc"]).await,
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["GETEX", "nokey", "PX", "0"]).await,
        None
    );
    assert_eq!(
        err(&mut c, &["GETEX", "nokey", "EX", "1", "PERSIST"]).await,
        SYNTAX
    );
    q::<i64>(&mut c, &["HSET", "h", "f", "v"]).await;
    assert!(
        err(&mut c, &["GETEX", "h", "EX", "abc"])
            .await
            .starts_with("WRONGTYPE")
    );
    q::<()>(&mut c, &["SET", "k", "v"]).await;
    assert_eq!(
        err(&mut c, &["GETEX", "k", "EX", "abc"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["GETEX", "k", "EX", "0"]).await,
        "ERR invalid expire time in 'getex' command"
    );
    assert_eq!(
        q::<String>(&mut c, &["GETEX", "k", "EX", "100", "EX", "2000"]).await,
        "v"
    );
    let ttl: i64 = q(&mut c, &["TTL", "k"]).await;
    assert!((1990..=2000).contains(&ttl), "{ttl}");
    assert_eq!(
        q::<String>(&mut c, &["GETEX", "k", "PERSIST", "PERSIST"]).await,
        "v"
    );
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]).await, -1);
    for bad in [
        &["GETEX", "k", "PERSIST", "EX", "10"][..],
        &["GETEX", "k", "EX", "10", "PX", "10"],
        &["GETEX", "k", "KEEPTTL"],
        &["GETEX", "k", "NX"],
    ] {
        assert_eq!(err(&mut c, bad).await, SYNTAX, "{bad:?}");
    }
}

#[tokio::test]
async fn copy_reads_the_database_index_as_an_int() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    q::<()>(&mut c, &["SET", "a", "1"]).await;
    for db in ["9223372036854775807", "2147483648", "-2147483649"] {
        assert_eq!(
            err(&mut c, &["COPY", "a", "b", "DB", db]).await,
            "ERR value is out of range, value must between -2147483648 and 2147483647",
            "{db}"
        );
    }
    for db in ["-1", "16", "2147483647"] {
        assert_eq!(
            err(&mut c, &["COPY", "a", "b", "DB", db]).await,
            "ERR DB index is out of range",
            "{db}"
        );
    }
    assert_eq!(q::<i64>(&mut c, &["COPY", "a", "b", "DB", "0"]).await, 1);
}

#[tokio::test]
async fn expire_reads_its_options_before_its_time() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    q::<()>(&mut c, &["SET", "k", "v"]).await;
    for cmd in ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"] {
        assert_eq!(
            err(&mut c, &[cmd, "k", "abc", "SOON"]).await,
            "ERR Unsupported option SOON",
            "{cmd}"
        );
        assert_eq!(
            err(&mut c, &[cmd, "k", "abc", "NX", "XX"]).await,
            "ERR NX and XX, GT or LT options at the same time are not compatible",
            "{cmd}"
        );
        assert_eq!(
            err(&mut c, &[cmd, "k", "abc", "GT"]).await,
            "ERR value is not an integer or out of range",
            "{cmd}"
        );
    }
}

#[tokio::test]
async fn float_increments_check_like_redis_and_print_integers_in_full() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    q::<i64>(&mut c, &["HSET", "h", "f", "1"]).await;
    // The key's type comes before the increment's syntax.
    assert!(
        err(&mut c, &["INCRBYFLOAT", "h", "PX"])
            .await
            .starts_with("WRONGTYPE")
    );
    q::<()>(&mut c, &["SET", "word", "abc"]).await;
    assert_eq!(
        err(&mut c, &["INCRBYFLOAT", "word", "1"]).await,
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut c, &["INCRBYFLOAT", "n", "inf"]).await,
        "ERR increment would produce NaN or Infinity"
    );
    // HINCRBYFLOAT refuses an infinite increment itself, before the hash is touched.
    for bad in ["inf", "-inf", "+inf"] {
        assert_eq!(
            err(&mut c, &["HINCRBYFLOAT", "word", "f", bad]).await,
            "ERR value is NaN or Infinity",
            "{bad}"
        );
    }
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "n", "-9223372036854775808"]).await,
        "-9223372036854775808"
    );
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "m", "1e20"]).await,
        "100000000000000000000"
    );
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "m", "-1e20"]).await,
        "0"
    );
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "m", "1.5"]).await,
        "1.5"
    );
    assert_eq!(
        q::<String>(&mut c, &["HINCRBYFLOAT", "h", "f", "-9223372036854775808"]).await,
        "-9223372036854775808",
        "1 + -2^63 rounds to -2^63 in f64 (Redis's long double keeps ...807: a difference left)"
    );
}

#[tokio::test]
async fn getrange_clamps_each_end_like_redis() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    q::<()>(&mut c, &["SET", "s", "This is a string"]).await;
    for (start, end, want) in [
        ("0", "-100", "T"),
        ("-9223372036854775807", "-9223372036854775807", "T"),
        ("-100", "-200", ""),
        ("-1", "-2", ""),
        (
            "-9223372036854775808",
            "9223372036854775807",
            "This is a string",
        ),
        ("9223372036854775807", "-9223372036854775808", ""),
    ] {
        for cmd in ["GETRANGE", "SUBSTR"] {
            assert_eq!(
                q::<String>(&mut c, &[cmd, "s", start, end]).await,
                want,
                "{cmd} {start} {end}"
            );
        }
    }
}

#[tokio::test]
async fn setrange_checks_the_type_before_the_size() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    q::<i64>(&mut c, &["HSET", "h", "f", "v"]).await;
    assert!(
        err(&mut c, &["SETRANGE", "h", "4294967296", "x"])
            .await
            .starts_with("WRONGTYPE")
    );
    assert!(
        err(&mut c, &["SETRANGE", "h", "0", ""])
            .await
            .starts_with("WRONGTYPE")
    );
    q::<()>(&mut c, &["SET", "s", "abc"]).await;
    assert_eq!(
        q::<i64>(&mut c, &["SETRANGE", "s", "4294967296", ""]).await,
        3
    );
    assert_eq!(
        err(&mut c, &["SETRANGE", "s", "4294967296", "x"]).await,
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
    assert_eq!(
        q::<i64>(&mut c, &["SETRANGE", "nokey", "4294967296", ""]).await,
        0
    );
}

#[tokio::test]
async fn errors_trim_line_breaks_at_their_ends_like_redis() {
    let node = start(test_config()).await;
    let mut raw = node.raw().await;
    let reply = common::exchange(
        &mut raw,
        b"*4\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n10\r\n$3\r\na\r\n\r\n",
        27,
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR Unsupported option a\r\n"
    );
}
