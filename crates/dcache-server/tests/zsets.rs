//! Sorted set commands through the `redis` crate (an independent client) and, for the RESP3
//! shapes, on the wire; expected replies and errors are Redis 7.2's.

mod common;

use common::members::replicated;
use common::{
    blocked, cmd, error_text, exchange, int, node_and_client, patient, query, read_until, strings,
    test_config, until_blocked,
};
use dcache_cluster::{Settings, Strategy};
use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::io::AsyncWriteExt;

async fn opt(c: &mut MultiplexedConnection, args: &[&str]) -> Option<String> {
    query(c, args).await
}

#[tokio::test]
async fn zadd_flags_and_their_errors() {
    let (_node, mut c) = node_and_client().await;
    assert_eq!(int(&mut c, &["ZADD", "z", "1", "a", "2", "b"]).await, 2);
    assert_eq!(
        int(&mut c, &["ZADD", "z", "NX", "10", "a", "3", "c"]).await,
        1
    );
    assert_eq!(
        opt(&mut c, &["ZSCORE", "z", "a"]).await.as_deref(),
        Some("1")
    );
    assert_eq!(
        int(&mut c, &["ZADD", "z", "XX", "10", "a", "4", "d"]).await,
        0
    );
    assert_eq!(opt(&mut c, &["ZSCORE", "z", "d"]).await, None);
    assert_eq!(
        int(&mut c, &["ZADD", "z", "XX", "CH", "11", "a", "2", "b"]).await,
        1
    );
    // GT / LT update only in their direction; CH counts what changed.
    assert_eq!(
        int(&mut c, &["ZADD", "z", "GT", "CH", "5", "a", "20", "b"]).await,
        1
    );
    assert_eq!(
        int(&mut c, &["ZADD", "z", "LT", "CH", "1", "a", "30", "b"]).await,
        1
    );
    assert_eq!(
        strings(&mut c, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]).await,
        ["a", "1", "c", "3", "b", "20"]
    );
    // GT adds new members.
    assert_eq!(int(&mut c, &["ZADD", "z", "GT", "0", "e"]).await, 1);
    // INCR: the new score, or nil when nothing was done.
    assert_eq!(
        opt(&mut c, &["ZADD", "z", "INCR", "2.5", "a"])
            .await
            .as_deref(),
        Some("3.5")
    );
    assert_eq!(
        opt(&mut c, &["ZADD", "z", "NX", "INCR", "1", "a"]).await,
        None
    );
    assert_eq!(
        opt(&mut c, &["ZADD", "z", "XX", "INCR", "1", "new"]).await,
        None
    );
    assert_eq!(
        opt(&mut c, &["ZADD", "z", "GT", "INCR", "-1", "a"]).await,
        None
    );
    assert_eq!(
        opt(&mut c, &["ZADD", "nokey", "XX", "INCR", "1", "a"]).await,
        None
    );
    assert_eq!(int(&mut c, &["EXISTS", "nokey"]).await, 0);
    for (args, msg) in [
        (&["ZADD", "z", "1", "a", "2"][..], "ERR syntax error"),
        (&["ZADD", "z", "NX", "1"], "ERR syntax error"),
        (
            &["ZADD", "z", "NX", "XX", "1", "a"],
            "ERR XX and NX options at the same time are not compatible",
        ),
        (
            &["ZADD", "z", "GT", "LT", "1", "a"],
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ),
        (
            &["ZADD", "z", "NX", "GT", "1", "a"],
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ),
        (
            &["ZADD", "z", "INCR", "1", "a", "2", "b"],
            "ERR INCR option supports a single increment-element pair",
        ),
        (&["ZADD", "z", "nan", "a"], "ERR value is not a valid float"),
        (
            &["ZADD", "z", "1e400", "a"],
            "ERR value is not a valid float",
        ),
        (&["ZADD", "z", " 1", "a"], "ERR value is not a valid float"),
        (&["ZADD", "z", "1x", "a"], "ERR value is not a valid float"),
        (
            &["ZADD", "z", "1"],
            "ERR wrong number of arguments for 'zadd' command",
        ),
        (
            &["ZINCRBY", "z", "x", "a"],
            "ERR value is not a valid float",
        ),
        (&["ZINCRBY", "z", "XX", "a"], "ERR syntax error"),
    ] {
        assert_eq!(error_text(&mut c, args).await, msg, "{args:?}");
    }
    // Nothing was half-applied by the refused requests.
    assert_eq!(int(&mut c, &["ZCARD", "z"]).await, 4);
    // inf + -inf is NaN: refused, the score stays.
    assert_eq!(int(&mut c, &["ZADD", "z", "+inf", "p"]).await, 1);
    assert_eq!(
        error_text(&mut c, &["ZINCRBY", "z", "-inf", "p"]).await,
        "ERR resulting score is not a number (NaN)"
    );
    assert_eq!(
        error_text(&mut c, &["ZADD", "z", "INCR", "-inf", "p"]).await,
        "ERR resulting score is not a number (NaN)"
    );
    assert_eq!(
        opt(&mut c, &["ZSCORE", "z", "p"]).await.as_deref(),
        Some("inf")
    );
    assert_eq!(
        opt(&mut c, &["ZINCRBY", "z", "1.5", "q"]).await.as_deref(),
        Some("1.5")
    );
    query::<String>(&mut c, &["SET", "str", "x"]).await;
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(
        error_text(&mut c, &["ZADD", "str", "1", "a"]).await,
        wrongtype
    );
    assert_eq!(
        error_text(&mut c, &["ZRANGE", "str", "0", "-1"]).await,
        wrongtype
    );
    assert_eq!(error_text(&mut c, &["ZSCORE", "str", "a"]).await, wrongtype);
}

#[tokio::test]
async fn scores_print_as_redis_prints_doubles() {
    let (_node, mut c) = node_and_client().await;
    for (input, printed) in [
        ("1.5", "1.5"),
        ("3.0", "3"),
        ("1e20", "1e+20"),
        ("-inf", "-inf"),
        ("0.1", "0.1"),
        ("123456789012", "123456789012"),
        ("1e-7", "1e-7"),
        ("-2.5e-10", "-2.5e-10"),
        ("4611686018427387904", "4611686018427387904"),
        ("9223372036854775807", "9223372036854776000"),
        ("1e300", "1e+300"),
        ("0.000123", "0.000123"),
    ] {
        int(&mut c, &["DEL", "f"]).await;
        assert_eq!(int(&mut c, &["ZADD", "f", input, "m"]).await, 1);
        assert_eq!(
            opt(&mut c, &["ZSCORE", "f", "m"]).await.as_deref(),
            Some(printed),
            "{input}"
        );
    }
}

#[tokio::test]
async fn ranges_by_rank_score_and_member() {
    let (_node, mut c) = node_and_client().await;
    int(
        &mut c,
        &[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ],
    )
    .await;
    let cases: &[(&[&str], &[&str])] = &[
        (&["ZRANGE", "z", "0", "-1"], &["a", "b", "c", "d", "e"]),
        (&["ZRANGE", "z", "-2", "-1"], &["d", "e"]),
        (&["ZRANGE", "z", "3", "1"], &[]),
        (&["ZRANGE", "z", "-100", "1"], &["a", "b"]),
        (
            &["ZRANGE", "z", "0", "1", "WITHSCORES"],
            &["a", "1", "b", "2"],
        ),
        (&["ZRANGE", "z", "0", "1", "REV"], &["e", "d"]),
        (
            &["ZREVRANGE", "z", "1", "2", "WITHSCORES"],
            &["d", "4", "c", "3"],
        ),
        (&["ZRANGE", "z", "(1", "3", "BYSCORE"], &["b", "c"]),
        (
            &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2"],
            &["b", "c"],
        ),
        (
            &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "2"],
            &[],
        ),
        (
            &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "3", "-1"],
            &["d", "e"],
        ),
        (
            &["ZRANGE", "z", "(5", "2", "BYSCORE", "REV"],
            &["d", "c", "b"],
        ),
        (
            &[
                "ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2",
            ],
            &["d", "c"],
        ),
        (
            &["ZRANGE", "z", "0", "-1", "LIMIT", "0", "-1"],
            &["a", "b", "c", "d", "e"],
        ),
        (
            &["ZRANGEBYSCORE", "z", "2", "(4", "WITHSCORES"],
            &["b", "2", "c", "3"],
        ),
        (&["ZRANGEBYSCORE", "z", "(2", "(2"], &[]),
        // strtod reads an empty bound as 0, as Redis does.
        (&["ZRANGEBYSCORE", "z", "", "2"], &["a", "b"]),
        (&["ZREVRANGEBYSCORE", "z", "4", "2"], &["d", "c", "b"]),
        (
            &["ZREVRANGEBYSCORE", "z", "+inf", "-inf", "LIMIT", "0", "1"],
            &["e"],
        ),
        (&["ZRANGEBYLEX", "z", "[b", "(d"], &["b", "c"]),
        (&["ZRANGEBYLEX", "z", "-", "+", "LIMIT", "1", "1"], &["b"]),
        (&["ZRANGEBYLEX", "z", "+", "-"], &[]),
        (&["ZREVRANGEBYLEX", "z", "[d", "(a"], &["d", "c", "b"]),
        (&["ZRANGE", "z", "[c", "+", "BYLEX"], &["c", "d", "e"]),
        (
            &["ZRANGE", "z", "+", "[c", "BYLEX", "REV"],
            &["e", "d", "c"],
        ),
    ];
    for (args, want) in cases {
        assert_eq!(&strings(&mut c, args).await, want, "{args:?}");
    }
    assert_eq!(int(&mut c, &["ZCOUNT", "z", "(1", "3"]).await, 2);
    assert_eq!(int(&mut c, &["ZCOUNT", "z", "-inf", "inf"]).await, 5);
    assert_eq!(int(&mut c, &["ZCOUNT", "nokey", "-inf", "inf"]).await, 0);
    assert_eq!(int(&mut c, &["ZLEXCOUNT", "z", "[b", "+"]).await, 4);
    assert!(
        strings(&mut c, &["ZRANGE", "nokey", "0", "-1"])
            .await
            .is_empty()
    );
    for (args, msg) in [
        (
            &["ZRANGE", "z", "0", "-1", "LIMIT", "0", "1"][..],
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ),
        (
            &["ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"],
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ),
        (
            &["ZRANGE", "z", "0", "-1", "BYLEX", "BYSCORE"],
            "ERR syntax error",
        ),
        (
            &["ZRANGE", "z", "0", "-1", "LIMIT", "1"],
            "ERR syntax error",
        ),
        (&["ZRANGEBYSCORE", "z", "0", "1", "REV"], "ERR syntax error"),
        (
            &["ZRANGE", "z", "x", "1"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["ZRANGE", "z", "x", "1", "BYSCORE"],
            "ERR min or max is not a float",
        ),
        (
            &["ZRANGEBYSCORE", "z", "nan", "1"],
            "ERR min or max is not a float",
        ),
        (&["ZCOUNT", "z", "1", "(x"], "ERR min or max is not a float"),
        (
            &["ZRANGEBYLEX", "z", "a", "[b"],
            "ERR min or max not valid string range item",
        ),
        (
            &["ZLEXCOUNT", "z", "-", "++"],
            "ERR min or max not valid string range item",
        ),
        (
            &["ZRANGESTORE", "d", "z", "0", "-1", "WITHSCORES"],
            "ERR syntax error",
        ),
    ] {
        assert_eq!(error_text(&mut c, args).await, msg, "{args:?}");
    }
}

#[tokio::test]
async fn removals_pops_and_an_emptied_set_is_gone() {
    let (_node, mut c) = node_and_client().await;
    int(
        &mut c,
        &[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e", "6", "f",
        ],
    )
    .await;
    assert_eq!(int(&mut c, &["ZREM", "z", "a", "nope", "b"]).await, 2);
    assert_eq!(int(&mut c, &["ZREMRANGEBYRANK", "z", "-1", "-1"]).await, 1);
    assert_eq!(int(&mut c, &["ZREMRANGEBYSCORE", "z", "(3", "4"]).await, 1);
    assert_eq!(int(&mut c, &["ZREMRANGEBYLEX", "z", "[e", "+"]).await, 1);
    assert_eq!(strings(&mut c, &["ZRANGE", "z", "0", "-1"]).await, ["c"]);
    assert_eq!(int(&mut c, &["ZREMRANGEBYRANK", "z", "0", "-1"]).await, 1);
    assert_eq!(int(&mut c, &["EXISTS", "z"]).await, 0);
    assert_eq!(int(&mut c, &["ZREM", "z", "a"]).await, 0);

    int(
        &mut c,
        &["ZADD", "p", "1", "a", "2", "b", "3", "c", "4", "d"],
    )
    .await;
    assert_eq!(strings(&mut c, &["ZPOPMIN", "p"]).await, ["a", "1"]);
    assert_eq!(
        strings(&mut c, &["ZPOPMAX", "p", "2"]).await,
        ["d", "4", "c", "3"]
    );
    assert!(strings(&mut c, &["ZPOPMIN", "p", "0"]).await.is_empty());
    assert_eq!(
        error_text(&mut c, &["ZPOPMIN", "p", "-1"]).await,
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        error_text(&mut c, &["ZPOPMIN", "p", "1", "2"]).await,
        "ERR syntax error"
    );
    assert_eq!(strings(&mut c, &["ZPOPMAX", "p", "10"]).await, ["b", "2"]);
    assert_eq!(int(&mut c, &["EXISTS", "p"]).await, 0);
    assert!(strings(&mut c, &["ZPOPMIN", "p"]).await.is_empty());

    int(&mut c, &["ZADD", "m", "1", "a", "2", "b", "3", "c"]).await;
    let popped = cmd(&mut c, &["ZMPOP", "2", "nokey", "m", "MAX", "COUNT", "2"])
        .await
        .unwrap();
    let pair = |m: &str, s: &str| {
        Value::Array(vec![
            Value::BulkString(m.as_bytes().to_vec()),
            Value::BulkString(s.as_bytes().to_vec()),
        ])
    };
    assert_eq!(
        popped,
        Value::Array(vec![
            Value::BulkString(b"m".to_vec()),
            Value::Array(vec![pair("c", "3"), pair("b", "2")]),
        ])
    );
    assert_eq!(
        cmd(&mut c, &["ZMPOP", "1", "nokey", "MIN"]).await.unwrap(),
        Value::Nil
    );
    for (args, msg) in [
        (
            &["ZMPOP", "0", "m", "MIN"][..],
            "ERR numkeys should be greater than 0",
        ),
        (&["ZMPOP", "1", "m", "LEFT"], "ERR syntax error"),
        (
            &["ZMPOP", "1", "m", "MIN", "COUNT", "0"],
            "ERR count should be greater than 0",
        ),
        (&["ZMPOP", "3", "m", "MIN"], "ERR syntax error"),
    ] {
        assert_eq!(error_text(&mut c, args).await, msg, "{args:?}");
    }
}

#[tokio::test]
async fn scores_ranks_and_cardinality() {
    let (_node, mut c) = node_and_client().await;
    int(&mut c, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]).await;
    assert_eq!(int(&mut c, &["ZCARD", "z"]).await, 3);
    assert_eq!(int(&mut c, &["ZCARD", "nokey"]).await, 0);
    assert_eq!(int(&mut c, &["ZRANK", "z", "b"]).await, 1);
    assert_eq!(int(&mut c, &["ZREVRANK", "z", "a"]).await, 2);
    assert_eq!(
        query::<Option<i64>>(&mut c, &["ZRANK", "z", "nope"]).await,
        None
    );
    assert_eq!(
        cmd(&mut c, &["ZRANK", "z", "c", "WITHSCORE"])
            .await
            .unwrap(),
        Value::Array(vec![Value::Int(2), Value::BulkString(b"3".to_vec())])
    );
    assert_eq!(
        cmd(&mut c, &["ZREVRANK", "z", "nope", "WITHSCORE"])
            .await
            .unwrap(),
        Value::Nil
    );
    assert_eq!(
        error_text(&mut c, &["ZRANK", "z", "a", "x"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        query::<Vec<Option<String>>>(&mut c, &["ZMSCORE", "z", "c", "nope", "a"]).await,
        [Some("3".to_owned()), None, Some("1".to_owned())]
    );
    assert_eq!(
        query::<Vec<Option<String>>>(&mut c, &["ZMSCORE", "nokey", "a"]).await,
        [None]
    );
}

#[tokio::test]
async fn union_intersection_difference_and_their_stores() {
    let (_node, mut c) = node_and_client().await;
    int(&mut c, &["ZADD", "u1", "1", "a", "2", "b", "3", "c"]).await;
    int(&mut c, &["ZADD", "u2", "10", "b", "20", "c", "30", "d"]).await;
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["ZUNION", "2", "u1", "u2", "WITHSCORES"],
            &["a", "1", "b", "12", "c", "23", "d", "30"],
        ),
        (
            &[
                "ZUNION",
                "2",
                "u1",
                "u2",
                "WEIGHTS",
                "2",
                "0.5",
                "WITHSCORES",
            ],
            &["a", "2", "b", "9", "d", "15", "c", "16"],
        ),
        (
            &["ZUNION", "2", "u1", "u2", "AGGREGATE", "MIN", "WITHSCORES"],
            &["a", "1", "b", "2", "c", "3", "d", "30"],
        ),
        (&["ZUNION", "3", "u1", "u2", "nokey"], &["a", "b", "c", "d"]),
        (
            &["ZINTER", "2", "u1", "u2", "AGGREGATE", "MAX", "WITHSCORES"],
            &["b", "10", "c", "20"],
        ),
        (
            &[
                "ZINTER",
                "2",
                "u1",
                "u2",
                "WEIGHTS",
                "1",
                "-1",
                "WITHSCORES",
            ],
            &["c", "-17", "b", "-8"],
        ),
        (&["ZINTER", "2", "u1", "nokey"], &[]),
        (&["ZDIFF", "2", "u1", "u2", "WITHSCORES"], &["a", "1"]),
        (&["ZDIFF", "2", "u2", "u1"], &["d"]),
    ];
    for (args, want) in cases {
        assert_eq!(&strings(&mut c, args).await, want, "{args:?}");
    }
    assert_eq!(int(&mut c, &["ZINTERCARD", "2", "u1", "u2"]).await, 2);
    assert_eq!(
        int(&mut c, &["ZINTERCARD", "2", "u1", "u2", "LIMIT", "1"]).await,
        1
    );
    // A weighted inf that meets -inf sums to 0, as in Redis.
    int(&mut c, &["ZADD", "i1", "inf", "a"]).await;
    int(&mut c, &["ZADD", "i2", "-inf", "a"]).await;
    assert_eq!(
        strings(&mut c, &["ZUNION", "2", "i1", "i2", "WITHSCORES"]).await,
        ["a", "0"]
    );
    assert_eq!(
        strings(
            &mut c,
            &["ZUNION", "2", "i1", "i2", "WEIGHTS", "0", "1", "WITHSCORES"]
        )
        .await,
        ["a", "-inf"]
    );

    // A store replaces whatever the destination was, TTL included; an empty result deletes it.
    query::<String>(&mut c, &["SET", "dst", "a string"]).await;
    int(&mut c, &["EXPIRE", "dst", "100"]).await;
    assert_eq!(
        int(&mut c, &["ZUNIONSTORE", "dst", "2", "u1", "u2"]).await,
        4
    );
    assert_eq!(int(&mut c, &["TTL", "dst"]).await, -1);
    assert_eq!(
        strings(&mut c, &["ZRANGE", "dst", "0", "-1", "WITHSCORES"]).await,
        ["a", "1", "b", "12", "c", "23", "d", "30"]
    );
    assert_eq!(
        int(&mut c, &["ZINTERSTORE", "dst", "2", "u1", "u2"]).await,
        2
    );
    assert_eq!(
        int(&mut c, &["ZDIFFSTORE", "dst", "2", "u1", "u2"]).await,
        1
    );
    assert_eq!(strings(&mut c, &["ZRANGE", "dst", "0", "-1"]).await, ["a"]);
    assert_eq!(
        int(&mut c, &["ZINTERSTORE", "dst", "2", "u1", "nokey"]).await,
        0
    );
    assert_eq!(int(&mut c, &["EXISTS", "dst"]).await, 0);
    assert_eq!(
        int(
            &mut c,
            &[
                "ZRANGESTORE",
                "dst",
                "u2",
                "+inf",
                "(10",
                "BYSCORE",
                "REV",
                "LIMIT",
                "0",
                "1"
            ]
        )
        .await,
        1
    );
    assert_eq!(
        strings(&mut c, &["ZRANGE", "dst", "0", "-1", "WITHSCORES"]).await,
        ["d", "30"]
    );
    assert_eq!(
        int(&mut c, &["ZRANGESTORE", "dst", "nokey", "0", "-1"]).await,
        0
    );
    assert_eq!(int(&mut c, &["EXISTS", "dst"]).await, 0);

    query::<String>(&mut c, &["SET", "str", "x"]).await;
    for (args, msg) in [
        (
            &["ZUNION", "0", "u1"][..],
            "ERR at least 1 input key is needed for 'zunion' command",
        ),
        (
            &["ZUNIONSTORE", "d", "0", "u1"],
            "ERR at least 1 input key is needed for 'zunionstore' command",
        ),
        (
            &["ZINTERCARD", "0", "u1"],
            "ERR at least 1 input key is needed for 'zintercard' command",
        ),
        (&["ZUNION", "3", "u1", "u2"], "ERR syntax error"),
        (
            &["ZUNION", "2", "u1", "str"],
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            &["ZUNION", "2", "u1", "u2", "WEIGHTS", "1"],
            "ERR syntax error",
        ),
        (
            &["ZUNION", "2", "u1", "u2", "WEIGHTS", "1", "x"],
            "ERR weight value is not a float",
        ),
        (
            &["ZUNION", "2", "u1", "u2", "AGGREGATE", "AVG"],
            "ERR syntax error",
        ),
        (
            &["ZDIFF", "2", "u1", "u2", "WEIGHTS", "1", "2"],
            "ERR syntax error",
        ),
        (
            &["ZUNIONSTORE", "d", "2", "u1", "u2", "WITHSCORES"],
            "ERR syntax error",
        ),
        (
            &["ZINTERCARD", "2", "u1", "u2", "LIMIT", "-1"],
            "ERR LIMIT can't be negative",
        ),
        (
            &["ZINTERCARD", "2", "u1", "u2", "WITHSCORES"],
            "ERR syntax error",
        ),
    ] {
        assert_eq!(error_text(&mut c, args).await, msg, "{args:?}");
    }
}

#[tokio::test]
async fn random_members_and_scan() {
    let (_node, mut c) = node_and_client().await;
    int(&mut c, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]).await;
    let one = opt(&mut c, &["ZRANDMEMBER", "z"]).await.unwrap();
    assert!(["a", "b", "c"].contains(&one.as_str()));
    let mut all = strings(&mut c, &["ZRANDMEMBER", "z", "10"]).await;
    all.sort();
    assert_eq!(
        all,
        ["a", "b", "c"],
        "a positive count gives distinct members"
    );
    let repeated = strings(&mut c, &["ZRANDMEMBER", "z", "-7"]).await;
    assert_eq!(repeated.len(), 7);
    let scored = strings(&mut c, &["ZRANDMEMBER", "z", "-4", "WITHSCORES"]).await;
    for pair in scored.chunks(2) {
        let want = match pair[0].as_str() {
            "a" => "1",
            "b" => "2",
            _ => "3",
        };
        assert_eq!(pair[1], want);
    }
    assert_eq!(opt(&mut c, &["ZRANDMEMBER", "nokey"]).await, None);
    assert!(
        strings(&mut c, &["ZRANDMEMBER", "nokey", "3"])
            .await
            .is_empty()
    );
    assert_eq!(
        error_text(&mut c, &["ZRANDMEMBER", "z", "1", "x"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        error_text(
            &mut c,
            &["ZRANDMEMBER", "z", "-9223372036854775807", "WITHSCORES"]
        )
        .await,
        "ERR value is out of range"
    );
    let (cursor, items): (String, Vec<String>) =
        query(&mut c, &["ZSCAN", "z", "0", "MATCH", "[ab]"]).await;
    assert_eq!(
        (cursor.as_str(), items),
        ("0", vec!["a".into(), "1".into(), "b".into(), "2".into()])
    );
}

#[tokio::test]
async fn resp3_nests_pairs_and_sends_doubles() {
    let (node, _c) = node_and_client().await;
    let mut s = node.raw().await;
    let hello = exchange(&mut s, b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n", 1).await;
    assert!(hello.starts_with(b"%"));
    let mut run = async |request: &str, reply: &str| {
        let mut wire = format!("*{}\r\n", request.split(' ').count());
        for a in request.split(' ') {
            wire.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let got = exchange(&mut s, wire.as_bytes(), reply.len()).await;
        assert_eq!(String::from_utf8_lossy(&got), reply, "{request}");
    };
    run("ZADD z 1.5 a 1e20 b", ":2\r\n").await;
    run("ZSCORE z b", ",1e+20\r\n").await;
    run("ZSCORE z nope", "_\r\n").await;
    run(
        "ZRANGE z 0 -1 WITHSCORES",
        "*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,1e+20\r\n",
    )
    .await;
    run("ZINCRBY z 1 a", ",2.5\r\n").await;
    run(
        "ZSCAN z 0",
        "*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$3\r\n2.5\r\n$1\r\nb\r\n$5\r\n1e+20\r\n",
    )
    .await;
    run("ZPOPMIN z", "*2\r\n$1\r\na\r\n,2.5\r\n").await;
    run("ZPOPMAX z 1", "*1\r\n*2\r\n$1\r\nb\r\n,1e+20\r\n").await;
    run("ZMPOP 1 z MIN", "_\r\n").await;
}

async fn encoding(c: &mut MultiplexedConnection, key: &str) -> String {
    query(c, &["OBJECT", "ENCODING", key]).await
}

#[tokio::test]
async fn encodings_follow_the_listpack_limits() {
    let (_node, mut c) = node_and_client().await;
    let mut args = vec!["ZADD".to_owned(), "z".to_owned()];
    for i in 0..128 {
        args.push(i.to_string());
        args.push(format!("m{i}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(int(&mut c, &args).await, 128);
    assert_eq!(encoding(&mut c, "z").await, "listpack");
    int(&mut c, &["ZADD", "z", "0", "one more"]).await;
    assert_eq!(encoding(&mut c, "z").await, "skiplist");
    int(&mut c, &["ZREM", "z", "one more"]).await;
    assert_eq!(
        encoding(&mut c, "z").await,
        "skiplist",
        "no way back on removal"
    );
    // A STORE's result takes the compact form when it fits.
    assert_eq!(
        int(&mut c, &["ZRANGESTORE", "small", "z", "0", "9"]).await,
        10
    );
    assert_eq!(encoding(&mut c, "small").await, "listpack");
    assert_eq!(
        strings(&mut c, &["ZRANGE", "small", "0", "1"]).await,
        ["m0", "m1"]
    );
    int(&mut c, &["ZADD", "long", "1", &"x".repeat(65)]).await;
    assert_eq!(encoding(&mut c, "long").await, "skiplist");
    // The limits are settings, under their old names too.
    let ok: String = query(&mut c, &["CONFIG", "SET", "zset-max-ziplist-entries", "2"]).await;
    assert_eq!(ok, "OK");
    assert_eq!(
        strings(&mut c, &["CONFIG", "GET", "zset-max-listpack-entries"]).await,
        ["zset-max-listpack-entries", "2"]
    );
    int(&mut c, &["ZADD", "few", "1", "a", "2", "b"]).await;
    assert_eq!(encoding(&mut c, "few").await, "listpack");
    int(&mut c, &["ZADD", "few", "3", "c"]).await;
    assert_eq!(encoding(&mut c, "few").await, "skiplist");
    int(&mut c, &["ZADD", "many", "1", "a", "2", "b", "3", "c"]).await;
    assert_eq!(encoding(&mut c, "many").await, "skiplist");
    let ok: String = query(&mut c, &["CONFIG", "SET", "zset-max-listpack-value", "3"]).await;
    assert_eq!(ok, "OK");
    assert_eq!(
        strings(&mut c, &["CONFIG", "GET", "zset-max-ziplist-value"]).await,
        ["zset-max-ziplist-value", "3"]
    );
    int(&mut c, &["ZADD", "v", "1", "abcd"]).await;
    assert_eq!(encoding(&mut c, "v").await, "skiplist");
}

/// A large set in the tree form answers as the small one does: ranks, ranges both ways, counts,
/// removals by range.
#[tokio::test]
async fn a_large_set_ranks_and_ranges() {
    let (_node, mut c) = node_and_client().await;
    let n = 2000;
    let mut args = vec!["ZADD".to_owned(), "big".to_owned()];
    for i in 0..n {
        // Scores out of member order, so that rank and member order differ.
        args.push(((i * 7919) % n).to_string());
        args.push(format!("m{i:05}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(int(&mut c, &args).await, n);
    assert_eq!(encoding(&mut c, "big").await, "skiplist");
    // Member m{i} has score (i * 7919) % n; score s belongs to the i with that residue.
    let member_with = |s: i64| {
        let i = (0..n).find(|i| (i * 7919) % n == s).unwrap();
        format!("m{i:05}")
    };
    for s in [0, 1, 999, 1999] {
        let m = member_with(s);
        assert_eq!(int(&mut c, &["ZRANK", "big", &m]).await, s);
        assert_eq!(int(&mut c, &["ZREVRANK", "big", &m]).await, n - 1 - s);
    }
    assert_eq!(
        strings(&mut c, &["ZRANGE", "big", "1000", "1002"]).await,
        [member_with(1000), member_with(1001), member_with(1002)]
    );
    assert_eq!(
        strings(
            &mut c,
            &[
                "ZRANGE",
                "big",
                "+inf",
                "(1500",
                "BYSCORE",
                "REV",
                "LIMIT",
                "0",
                "2",
                "WITHSCORES"
            ]
        )
        .await,
        [
            member_with(1999),
            "1999".to_owned(),
            member_with(1998),
            "1998".to_owned()
        ]
    );
    assert_eq!(int(&mut c, &["ZCOUNT", "big", "(100", "200"]).await, 100);
    assert_eq!(
        int(&mut c, &["ZREMRANGEBYSCORE", "big", "-inf", "(1000"]).await,
        1000
    );
    assert_eq!(int(&mut c, &["ZRANK", "big", &member_with(1000)]).await, 0);
    assert_eq!(
        int(&mut c, &["ZREMRANGEBYRANK", "big", "0", "-1"]).await,
        1000
    );
    assert_eq!(int(&mut c, &["EXISTS", "big"]).await, 0);
}

/// A sorted set written at the primary is read back whole from its replica.
#[tokio::test]
async fn a_sorted_set_reaches_its_replica_whole() {
    let config = dcache_server::NodeConfig {
        cluster_enabled: dcache_server::YesNo(true),
        ..test_config()
    };
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Primary), config).await;
    let key = "board";
    let topology = std::sync::Arc::clone(&control.subscribe().borrow());
    let copies = topology.replicas_of(dcache_placement::slot(key.as_bytes()));
    let find = |id: &dcache_cluster::NodeId| {
        nodes
            .iter()
            .find(|n| n.shared.cluster.as_ref().unwrap().view().me == *id)
            .unwrap()
    };
    let mut primary = find(&copies[0].id).client().await;
    let mut replica = find(&copies[1].id).client().await;
    let mut args = vec!["ZADD".to_owned(), key.to_owned()];
    for i in 0..300 {
        args.push(format!("{}.5", i % 37));
        args.push(format!("player{i}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(int(&mut primary, &args).await, 300);
    assert_eq!(int(&mut primary, &["ZREM", key, "player7"]).await, 1);
    let ok: String = query(&mut replica, &["READONLY"]).await;
    assert_eq!(ok, "OK");
    let want = strings(&mut primary, &["ZRANGE", key, "0", "-1", "WITHSCORES"]).await;
    assert_eq!(want.len(), 2 * 299);
    assert_eq!(
        strings(&mut replica, &["ZRANGE", key, "0", "-1", "WITHSCORES"]).await,
        want
    );
    assert_eq!(int(&mut replica, &["ZCARD", key]).await, 299);
}

/// A weighted score that is NaN (0 × inf): Redis zeroes it for the first source of an
/// intersection, but lets a later source's NaN into the aggregate, where a sum becomes 0 and a
/// minimum or maximum keeps what it had. (Found by the type-aware differential test.)
#[tokio::test]
async fn an_intersection_s_nan_weighted_scores_aggregate_as_redis_does() {
    let (_node, mut c) = node_and_client().await;
    int(&mut c, &["ZADD", "a", "inf", "m", "2", "n"]).await;
    int(
        &mut c,
        &["ZINTERSTORE", "sum", "2", "a", "a", "WEIGHTS", "0.5", "0"],
    )
    .await;
    assert_eq!(
        opt(&mut c, &["ZSCORE", "sum", "m"]).await.as_deref(),
        Some("0")
    );
    assert_eq!(
        opt(&mut c, &["ZSCORE", "sum", "n"]).await.as_deref(),
        Some("1")
    );
    int(
        &mut c,
        &[
            "ZINTERSTORE",
            "max",
            "2",
            "a",
            "a",
            "WEIGHTS",
            "0.5",
            "0",
            "AGGREGATE",
            "MAX",
        ],
    )
    .await;
    assert_eq!(
        opt(&mut c, &["ZSCORE", "max", "m"]).await.as_deref(),
        Some("inf")
    );
    int(
        &mut c,
        &["ZINTERSTORE", "first", "2", "a", "a", "WEIGHTS", "0", "1"],
    )
    .await;
    assert_eq!(
        opt(&mut c, &["ZSCORE", "first", "m"]).await.as_deref(),
        Some("inf")
    );
}

#[tokio::test]
async fn blocking_pops_answer_at_once_wait_in_order_and_time_out() {
    let (node, mut c) = node_and_client().await;
    // Something there: answered at once, from the first key that holds a sorted set.
    int(&mut c, &["ZADD", "b", "1", "x", "2", "y", "3", "z"]).await;
    assert_eq!(
        strings(&mut c, &["BZPOPMIN", "a", "b", "0"]).await,
        ["b", "x", "1"]
    );
    assert_eq!(
        strings(&mut c, &["BZPOPMAX", "a", "b", "0"]).await,
        ["b", "z", "3"]
    );
    let got: (String, Vec<(String, f64)>) =
        query(&mut c, &["BZMPOP", "0", "2", "a", "b", "MIN", "COUNT", "5"]).await;
    assert_eq!(got, ("b".to_owned(), vec![("y".to_owned(), 2.0)]));
    assert_eq!(int(&mut c, &["EXISTS", "b"]).await, 0);
    // Errors as Redis's.
    query::<()>(&mut c, &["SET", "s", "v"]).await;
    assert!(
        error_text(&mut c, &["BZPOPMIN", "s", "0"])
            .await
            .starts_with("WRONGTYPE")
    );
    assert_eq!(
        error_text(&mut c, &["BZPOPMIN", "a", "x"]).await,
        "ERR timeout is not a float or out of range"
    );
    assert_eq!(
        error_text(&mut c, &["BZMPOP", "0", "0", "a", "MIN"]).await,
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        error_text(&mut c, &["BZMPOP", "0", "1", "a", "MIDDLE"]).await,
        "ERR syntax error"
    );
    // Nothing there: clients wait, and ZADD serves them in the order they blocked.
    let mut first = patient(&node).await;
    let mut second = patient(&node).await;
    let one = tokio::spawn(async move {
        query::<Vec<String>>(&mut first, &["BZPOPMAX", "q", "r", "0"]).await
    });
    until_blocked(&mut c, 1).await;
    let two = tokio::spawn(async move {
        query::<(String, Vec<(String, f64)>)>(
            &mut second,
            &["BZMPOP", "0", "1", "q", "MIN", "COUNT", "2"],
        )
        .await
    });
    until_blocked(&mut c, 2).await;
    int(&mut c, &["ZADD", "q", "1", "m", "5", "n"]).await;
    // The first takes the highest; what is left goes to the next in line.
    assert_eq!(one.await.unwrap(), ["q", "n", "5"]);
    let got = two.await.unwrap();
    assert_eq!(got, ("q".to_owned(), vec![("m".to_owned(), 1.0)]));
    assert_eq!(blocked(&mut c).await, 0);
    // A STORE to a waited key wakes too.
    let mut third = patient(&node).await;
    let three =
        tokio::spawn(
            async move { query::<Vec<String>>(&mut third, &["BZPOPMIN", "dst", "0"]).await },
        );
    until_blocked(&mut c, 1).await;
    int(&mut c, &["ZADD", "src", "4", "w"]).await;
    int(&mut c, &["ZUNIONSTORE", "dst", "1", "src"]).await;
    assert_eq!(three.await.unwrap(), ["dst", "w", "4"]);
    // So does GEOADD (a geo set is a sorted set).
    let mut fourth = patient(&node).await;
    let four = tokio::spawn(async move {
        query::<Vec<String>>(&mut fourth, &["BZPOPMIN", "places", "0"]).await
    });
    until_blocked(&mut c, 1).await;
    int(
        &mut c,
        &["GEOADD", "places", "13.361389", "38.115556", "Palermo"],
    )
    .await;
    let got = four.await.unwrap();
    assert_eq!(got[..2], ["places", "Palermo"]);
    // A timeout answers a null array, and RESP3 sends the score as a double.
    assert_eq!(
        cmd(&mut c, &["BZPOPMIN", "none", "0.01"]).await.unwrap(),
        Value::Nil
    );
    assert_eq!(
        cmd(&mut c, &["BZMPOP", "0.01", "1", "none", "MAX"])
            .await
            .unwrap(),
        Value::Nil
    );
    let mut raw = node.raw().await;
    raw.write_all(b"HELLO 3\r\nZADD r3 2.5 e\r\nBZPOPMIN r3 0\r\n")
        .await
        .unwrap();
    let got = read_until(&mut raw, b",2.5\r\n").await;
    assert!(
        got.ends_with(b"*3\r\n$2\r\nr3\r\n$1\r\ne\r\n,2.5\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}
