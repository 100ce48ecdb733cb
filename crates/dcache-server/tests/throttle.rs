//! `CL.THROTTLE` on the wire, through the `redis` crate: the five-integer reply, refills on the
//! node's clock, the key's expiry, and the errors. (The algorithm's cases are unit tests in
//! `src/command/throttle.rs`; exact counting under concurrency is in dcache-client's tests.)

mod common;

use common::{query, start_manual, test_config};

#[tokio::test]
async fn throttle_answers_five_integers_and_refills_on_the_clock() {
    let node = start_manual(test_config()).await;
    let mut con = node.client().await;
    // 1 per second, 3 at once.
    let args = ["CL.THROTTLE", "ip:1", "2", "1", "1"];
    let mut replies: Vec<Vec<i64>> = Vec::new();
    for _ in 0..4 {
        replies.push(query(&mut con, &args).await);
    }
    assert_eq!(
        replies,
        [
            vec![0, 3, 2, -1, 1],
            vec![0, 3, 1, -1, 2],
            vec![0, 3, 0, -1, 3],
            vec![1, 3, 0, 1, 3],
        ]
    );
    // The key holds the TAT and expires when the bucket is full again.
    let pttl: i64 = query(&mut con, &["PTTL", "ip:1"]).await;
    assert_eq!(pttl, 3000);
    node.advance_ms(1000);
    let after: Vec<i64> = query(&mut con, &args).await;
    assert_eq!(after, [0, 3, 0, -1, 3]);
    // Quantity 0 looks without taking; a cost of 2 takes two.
    node.advance_ms(3000);
    let peek: Vec<i64> = query(&mut con, &["CL.THROTTLE", "ip:1", "2", "1", "1", "0"]).await;
    assert_eq!(peek, [0, 3, 3, -1, 0]);
    let two: Vec<i64> = query(&mut con, &["CL.THROTTLE", "ip:1", "2", "1", "1", "2"]).await;
    assert_eq!(two, [0, 3, 1, -1, 2]);
}

#[tokio::test]
async fn throttle_refuses_bad_arguments_and_other_values() {
    let node = start_manual(test_config()).await;
    let mut con = node.client().await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["CL.THROTTLE", "k", "x", "1", "1"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["CL.THROTTLE", "k", "-1", "1", "1"],
            "ERR max_burst must not be negative",
        ),
        (
            &["CL.THROTTLE", "k", "1", "0", "1"],
            "ERR count per period and period must be positive",
        ),
        (
            &["CL.THROTTLE", "k", "1", "1", "-5"],
            "ERR count per period and period must be positive",
        ),
        (
            &["CL.THROTTLE", "k", "1", "1", "1", "-1"],
            "ERR quantity must not be negative",
        ),
        (
            &["CL.THROTTLE", "k", "1", "1"],
            "ERR wrong number of arguments for 'cl.throttle' command",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(
            common::error_text(&mut con, args).await,
            *expected,
            "{args:?}"
        );
    }
    let _: i64 = query(&mut con, &["HSET", "h", "f", "v"]).await;
    assert_eq!(
        common::error_text(&mut con, &["CL.THROTTLE", "h", "1", "1", "1"]).await,
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    let _: () = query(&mut con, &["SET", "s", "not a number"]).await;
    assert_eq!(
        common::error_text(&mut con, &["CL.THROTTLE", "s", "1", "1", "1"]).await,
        "ERR the key does not hold a rate limiter's state (an integer)"
    );
    // Nothing was written by a refused call.
    let exists: i64 = query(&mut con, &["EXISTS", "k"]).await;
    assert_eq!(exists, 0);
}
