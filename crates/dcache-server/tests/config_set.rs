//! CONFIG SET keeps every setting within a range where the node stays usable, and refuses the
//! rest with Redis's wording, all or nothing.

mod common;

use common::{error_text as err, query as q, start, test_config};

fn failed(name: &str, reason: &str) -> String {
    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
}

fn between(low: u64, high: u64) -> String {
    format!("argument must be between {low} and {high} inclusive")
}

fn output_limit(which: &str) -> String {
    format!("the {which} limit must be 0 or between 1048576 and 9223372036854775807 inclusive")
}

const NOT_INTEGER: &str = "argument couldn't be parsed into an integer";
const NOT_MEMORY: &str = "argument must be a memory value";

#[tokio::test]
async fn every_settable_parameter_has_a_usable_range() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    // (parameter, values it takes, values it refuses with the reason)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: &[Case<'_>] = &[
        (
            "max-args",
            &["1024", "2147483647", "1048576"],
            &[
                ("1", &between(1024, 2147483647)),
                ("1023", &between(1024, 2147483647)),
                ("2147483648", &between(1024, 2147483647)),
                ("-1", &between(1024, 2147483647)),
                ("many", NOT_INTEGER),
                ("", NOT_INTEGER),
            ],
        ),
        (
            "proto-max-bulk-len",
            &["1mb", "1048576", "1073741823", "512mb"],
            &[
                ("1048575", &between(1048576, 1073741823)),
                ("1gb", &between(1048576, 1073741823)),
                ("0", &between(1048576, 1073741823)),
                ("-1", NOT_MEMORY),
                ("1.5mb", NOT_MEMORY),
            ],
        ),
        (
            "client-query-buffer-limit",
            &["1mb", "9223372036854775807", "1gb"],
            &[
                ("1048575", &between(1048576, 9223372036854775807)),
                (
                    "9223372036854775808",
                    &between(1048576, 9223372036854775807),
                ),
                ("-5", NOT_MEMORY),
            ],
        ),
        (
            "maxclients",
            &["1", "4294967295", "10000"],
            &[
                ("0", &between(1, 4294967295)),
                ("4294967296", &between(1, 4294967295)),
                ("-1", &between(1, 4294967295)),
                ("1.5", NOT_INTEGER),
            ],
        ),
        (
            "hz",
            &["1", "500", "10"],
            &[
                ("0", &between(1, 500)),
                ("501", &between(1, 500)),
                ("-1", &between(1, 500)),
                ("ten", NOT_INTEGER),
            ],
        ),
        (
            "maxmemory",
            &["0", "100k", "1gb", "0"],
            &[("-1", NOT_MEMORY), ("lots", NOT_MEMORY)],
        ),
        (
            "timeout",
            &["0", "2147483647", "0"],
            &[
                ("2147483648", &between(0, 2147483647)),
                ("-1", &between(0, 2147483647)),
                ("soon", NOT_INTEGER),
            ],
        ),
        // As in Redis, a sorted set's (and a hash's) value limit is a memory value, a set's an
        // integer.
        (
            "zset-max-listpack-value",
            &["1kb", "0", "1gb", "64"],
            &[
                ("-1", NOT_MEMORY),
                ("1.5kb", NOT_MEMORY),
                ("lots", NOT_MEMORY),
            ],
        ),
        (
            "zset-max-ziplist-value",
            &["2kb", "64"],
            &[("-64", NOT_MEMORY)],
        ),
        (
            "set-max-listpack-value",
            &["0", "1024", "64"],
            &[
                ("1kb", NOT_INTEGER),
                ("-1", &between(0, 9223372036854775807)),
            ],
        ),
        (
            "client-output-buffer-limit",
            &[
                "normal 1mb 0 0",
                "normal 0 1048576 0",
                "normal 0 0 0",
                "normal 1gb 256mb 60",
            ],
            &[
                ("normal 1 0 0", &output_limit("hard")),
                ("normal 1048575 0 0", &output_limit("hard")),
                ("normal 0 1kb 60", &output_limit("soft")),
            ],
        ),
    ];
    for (name, good, bad) in cases {
        for value in *good {
            assert_eq!(
                q::<String>(&mut c, &["CONFIG", "SET", name, value]).await,
                "OK",
                "{name} {value}"
            );
        }
        let kept: Vec<String> = q(&mut c, &["CONFIG", "GET", name]).await;
        for (value, reason) in *bad {
            assert_eq!(
                err(&mut c, &["CONFIG", "SET", name, value]).await,
                failed(name, reason),
                "{name} {value}"
            );
            assert_eq!(
                q::<Vec<String>>(&mut c, &["CONFIG", "GET", name]).await,
                kept,
                "a refused value changes nothing"
            );
        }
    }
    assert_eq!(q::<String>(&mut c, &["PING"]).await, "PONG");
}

#[tokio::test]
async fn the_smallest_max_args_still_serves_config_set_and_ordinary_commands() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    q::<()>(&mut c, &["CONFIG", "SET", "max-args", "1024"]).await;
    let mut mset = vec!["MSET".to_owned()];
    for i in 0..500 {
        mset.push(format!("k{i}"));
        mset.push(format!("v{i}"));
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    q::<()>(&mut c, &mset).await;
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]).await, 500);
    q::<()>(
        &mut c,
        &["CONFIG", "SET", "max-args", "1048576", "hz", "20"],
    )
    .await;
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "max-args"]).await,
        ["max-args", "1048576"]
    );
}

#[tokio::test]
async fn config_set_is_all_or_nothing_and_refuses_duplicates() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "hz", "20", "maxclients", "0"]).await,
        failed("maxclients", &between(1, 4294967295))
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "hz"]).await,
        ["hz", "10"],
        "the valid pair before the bad one was not applied"
    );
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "hz", "20", "HZ", "30"]).await,
        failed("hz", "duplicate parameter")
    );
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "port", "7000"]).await,
        failed("port", "can't set immutable config")
    );
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "nonsense", "1"]).await,
        "ERR Unknown option or number of arguments for CONFIG SET - 'nonsense'"
    );
}

/// A memory value with a unit reads back in bytes, and the sorted set's value limit takes it.
#[tokio::test]
async fn the_sorted_set_value_limit_takes_memory_units() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    let ok: String = q(&mut c, &["CONFIG", "SET", "zset-max-listpack-value", "1kb"]).await;
    assert_eq!(ok, "OK");
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "zset-max-ziplist-value"]).await,
        ["zset-max-ziplist-value", "1024"]
    );
    let long = "m".repeat(1024);
    let _: i64 = q(&mut c, &["ZADD", "z", "1", &long]).await;
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "z"]).await,
        "listpack"
    );
    let longer = "m".repeat(1025);
    let _: i64 = q(&mut c, &["ZADD", "z", "2", &longer]).await;
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "z"]).await,
        "skiplist"
    );
}
