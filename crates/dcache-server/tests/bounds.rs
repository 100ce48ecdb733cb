//! No count, offset or index a client sends sizes an allocation or a loop beyond what the data
//! itself holds: each case here once could (or, in Redis, still can) take a node down, and each
//! answers with Redis's error wording.

mod common;

use common::{error_text as err, query as q, start, test_config};
use tokio::io::AsyncWriteExt;

const RANGE: &str = "ERR value is out of range";
const LONG_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";

#[tokio::test]
async fn hrandfield_counts_never_size_an_allocation() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    q::<i64>(&mut c, &["HSET", "h", "a", "1", "b", "2"]).await;
    // 200 million picks of a one-byte field would be 1.4 GB of reply: refused, not built.
    assert_eq!(err(&mut c, &["HRANDFIELD", "h", "-200000000"]).await, RANGE);
    assert_eq!(
        err(&mut c, &["HRANDFIELD", "h", "-9223372036854775807"]).await,
        RANGE
    );
    // i64::MIN has no positive counterpart; Redis's range check refuses it first.
    assert_eq!(
        err(&mut c, &["HRANDFIELD", "h", "-9223372036854775808"]).await,
        LONG_RANGE
    );
    assert_eq!(
        err(&mut c, &["HRANDFIELD", "nokey", "-9223372036854775808"]).await,
        LONG_RANGE
    );
    // With values, Redis refuses counts past half the range (the reply length doubles).
    for count in ["4611686018427387904", "-4611686018427387904"] {
        assert_eq!(
            err(&mut c, &["HRANDFIELD", "h", count, "WITHVALUES"]).await,
            RANGE,
            "{count}"
        );
    }
    // A huge positive count asks for distinct fields: the whole hash, nothing more.
    let all: Vec<String> = q(&mut c, &["HRANDFIELD", "h", "9223372036854775807"]).await;
    assert_eq!(all.len(), 2);
    let pairs: Vec<String> = q(
        &mut c,
        &["HRANDFIELD", "h", "4611686018427387903", "WITHVALUES"],
    )
    .await;
    assert_eq!(pairs.len(), 4);
    assert_eq!(
        err(&mut c, &["HRANDFIELD", "h", "5", "VALUES"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["HRANDFIELD", "nokey", "-5"]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["HRANDFIELD", "h", "0"])
            .await
            .len(),
        0
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["HRANDFIELD", "nokey"]).await,
        None
    );
    q::<()>(&mut c, &["SET", "s", "v"]).await;
    assert!(
        err(&mut c, &["HRANDFIELD", "s", "-3"])
            .await
            .starts_with("WRONGTYPE")
    );
    assert_eq!(q::<String>(&mut c, &["PING"]).await, "PONG");
}

#[tokio::test]
async fn hrandfield_negative_count_is_bounded_by_proto_max_bulk_len() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    q::<()>(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", "1mb"]).await;
    q::<i64>(&mut c, &["HSET", "h", "a", "1", "b", "2"]).await;
    // Each pick is `$1\r\na\r\n`, 7 bytes: 149796 of them fit in 1 MiB, one more does not.
    let most = (1 << 20) / 7;
    let picks: Vec<String> = q(&mut c, &["HRANDFIELD", "h", &format!("-{most}")]).await;
    assert_eq!(picks.len(), most);
    assert!(picks.iter().all(|f| f == "a" || f == "b"));
    assert!(
        picks.iter().any(|f| f == "a") && picks.iter().any(|f| f == "b"),
        "the picks are random"
    );
    assert_eq!(
        err(&mut c, &["HRANDFIELD", "h", &format!("-{}", most + 1)]).await,
        RANGE
    );
    // With values each pick also carries `$1\r\n1\r\n` (and RESP3's pair header).
    let with_values = (1 << 20) / 18;
    let flat: Vec<String> = q(
        &mut c,
        &["HRANDFIELD", "h", &format!("-{with_values}"), "WITHVALUES"],
    )
    .await;
    assert_eq!(flat.len(), 2 * with_values);
    assert!(
        flat.chunks(2)
            .all(|p| (p[0] == "a" && p[1] == "1") || (p[0] == "b" && p[1] == "2"))
    );
    assert_eq!(
        err(
            &mut c,
            &[
                "HRANDFIELD",
                "h",
                &format!("-{}", with_values + 1),
                "WITHVALUES"
            ]
        )
        .await,
        RANGE
    );
}

#[tokio::test]
async fn hrandfield_with_values_in_resp3_is_a_list_of_pairs() {
    let node = start(test_config()).await;
    let mut raw = node.raw().await;
    raw.write_all(b"HELLO 3\r\nHSET h a 1\r\nHRANDFIELD h -2 WITHVALUES\r\n")
        .await
        .unwrap();
    let tail = b":1\r\n*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n";
    let reply = common::read_until(&mut raw, tail).await;
    assert!(reply.ends_with(tail), "{}", String::from_utf8_lossy(&reply));
}

#[tokio::test]
async fn memory_usage_refuses_negative_samples() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    q::<()>(&mut c, &["SET", "k", "v"]).await;
    assert_eq!(
        err(&mut c, &["MEMORY", "USAGE", "k", "SAMPLES", "-1"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["MEMORY", "USAGE", "k", "SAMPLES", "x"]).await,
        "ERR value is not an integer or out of range"
    );
    for samples in ["0", "9223372036854775807"] {
        assert!(q::<i64>(&mut c, &["MEMORY", "USAGE", "k", "SAMPLES", samples]).await > 0);
    }
}

#[tokio::test]
async fn client_kill_follows_both_redis_forms() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    let mut other = node.client().await;
    let other_id: i64 = q(&mut other, &["CLIENT", "ID"]).await;
    let my_id: i64 = q(&mut c, &["CLIENT", "ID"]).await;
    for id in ["0", "-1", "-9223372036854775808", "abc"] {
        assert_eq!(
            err(&mut c, &["CLIENT", "KILL", "ID", id]).await,
            "ERR client-id should be greater than 0",
            "{id}"
        );
    }
    // The filter form counts, and finding nobody is not an error.
    assert_eq!(
        q::<i64>(&mut c, &["CLIENT", "KILL", "ID", "999999"]).await,
        0
    );
    assert_eq!(
        q::<i64>(&mut c, &["CLIENT", "KILL", "ADDR", "1.2.3.4:5"]).await,
        0
    );
    // The old form names an address and errs when nobody has it.
    assert_eq!(
        err(&mut c, &["CLIENT", "KILL", "1.2.3.4:5"]).await,
        "ERR No such client"
    );
    assert_eq!(
        err(&mut c, &["CLIENT", "KILL", "ID", "1", "SKIPME"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["CLIENT", "KILL", "SKIPME", "maybe"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["CLIENT", "KILL", "TYPE", "odd"]).await,
        "ERR Unknown client type 'odd'"
    );
    assert_eq!(
        err(&mut c, &["CLIENT", "KILL", "USER", "nobody"]).await,
        "ERR No such user 'nobody'"
    );
    // SKIPME is yes by default: a client does not kill itself unless it says so.
    assert_eq!(
        q::<i64>(&mut c, &["CLIENT", "KILL", "ID", &my_id.to_string()]).await,
        0
    );
    assert_eq!(
        q::<i64>(&mut c, &["CLIENT", "KILL", "TYPE", "pubsub"]).await,
        0
    );
    assert_eq!(
        q::<i64>(
            &mut c,
            &[
                "CLIENT",
                "KILL",
                "ID",
                &other_id.to_string(),
                "SKIPME",
                "no"
            ]
        )
        .await,
        1
    );
    assert_eq!(q::<String>(&mut c, &["PING"]).await, "PONG");
}

#[tokio::test]
async fn client_list_filters_by_type_and_id() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    let mut other = node.client().await;
    let other_id: i64 = q(&mut other, &["CLIENT", "ID"]).await;
    let lines = |text: String| text.lines().count();
    assert_eq!(lines(q(&mut c, &["CLIENT", "LIST"]).await), 2);
    assert_eq!(
        lines(q(&mut c, &["CLIENT", "LIST", "TYPE", "normal"]).await),
        2
    );
    assert_eq!(
        lines(q(&mut c, &["CLIENT", "LIST", "TYPE", "replica"]).await),
        0
    );
    let only: String = q(
        &mut c,
        &["CLIENT", "LIST", "ID", &other_id.to_string(), "999"],
    )
    .await;
    assert!(only.starts_with(&format!("id={other_id} ")), "{only}");
    assert_eq!(lines(only), 1);
    assert_eq!(
        err(&mut c, &["CLIENT", "LIST", "ID", "abc"]).await,
        "ERR Invalid client ID"
    );
    assert_eq!(
        err(&mut c, &["CLIENT", "LIST", "TYPE", "odd"]).await,
        "ERR Unknown client type 'odd'"
    );
    assert_eq!(
        err(&mut c, &["CLIENT", "LIST", "foo"]).await,
        "ERR syntax error"
    );
}
