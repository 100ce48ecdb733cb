//! Set commands through the `redis` crate: replies, errors and encodings as Redis 7.2 gives
//! them, multi-key commands across the node's shards, and the memory count.

mod common;

use std::collections::BTreeSet;

use common::{error_text as err, query as q, start, test_config};
use redis::aio::MultiplexedConnection;

async fn node() -> (common::TestNode, MultiplexedConnection) {
    let node = start(test_config()).await;
    let con = node.client().await;
    (node, con)
}

/// Members as a sorted set of strings, whatever order the reply had.
async fn members(c: &mut MultiplexedConnection, args: &[&str]) -> BTreeSet<String> {
    q::<Vec<String>>(c, args).await.into_iter().collect()
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[tokio::test]
async fn add_remove_and_membership() {
    let (_node, mut c) = node().await;
    assert_eq!(
        q::<i64>(&mut c, &["SADD", "s", "a", "b", "a", "c"]).await,
        3
    );
    assert_eq!(q::<i64>(&mut c, &["SADD", "s", "a", "d"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "s"]).await, 4);
    assert_eq!(
        members(&mut c, &["SMEMBERS", "s"]).await,
        set_of(&["a", "b", "c", "d"])
    );
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "s", "a"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "s", "z"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "nope", "z"]).await, 0);
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["SMISMEMBER", "s", "a", "z", "d"]).await,
        [1, 0, 1]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["SMISMEMBER", "nope", "a", "b"]).await,
        [0, 0]
    );
    assert_eq!(q::<i64>(&mut c, &["SREM", "s", "a", "z", "b"]).await, 2);
    assert_eq!(q::<i64>(&mut c, &["SREM", "nope", "a"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["SREM", "s", "c", "d"]).await, 2);
    // The last member gone, the key is gone.
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "s"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "s"]).await, 0);
    assert!(
        q::<Vec<String>>(&mut c, &["SMEMBERS", "s"])
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn wrong_types_and_arity() {
    let (_node, mut c) = node().await;
    q::<()>(&mut c, &["SET", "str", "x"]).await;
    q::<()>(&mut c, &["SADD", "s", "a"]).await;
    for args in [
        &["SADD", "str", "a"][..],
        &["SREM", "str", "a"],
        &["SMEMBERS", "str"],
        &["SISMEMBER", "str", "a"],
        &["SMISMEMBER", "str", "a"],
        &["SCARD", "str"],
        &["SPOP", "str"],
        &["SRANDMEMBER", "str"],
        &["SINTER", "s", "str"],
        &["SUNION", "missing", "str"],
        &["SDIFF", "s", "str"],
        &["SINTERCARD", "2", "s", "str"],
        &["SSCAN", "str", "0"],
        &["SMOVE", "str", "s", "a"],
        &["SMOVE", "s", "str", "a"],
        &["SUNIONSTORE", "dst", "s", "str"],
    ] {
        assert_eq!(err(&mut c, args).await, WRONGTYPE, "{args:?}");
    }
    // An intersection with a missing key is empty, but every key is still type-checked.
    assert_eq!(err(&mut c, &["SINTER", "missing", "str"]).await, WRONGTYPE);
    assert_eq!(
        err(&mut c, &["SADD", "s"]).await,
        "ERR wrong number of arguments for 'sadd' command"
    );
    assert_eq!(
        err(&mut c, &["SPOP", "s", "1", "2"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["SRANDMEMBER", "s", "1", "2"]).await,
        "ERR syntax error"
    );
    // The failed writes left the string alone.
    assert_eq!(q::<String>(&mut c, &["GET", "str"]).await, "x");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]).await, 0);
}

#[tokio::test]
async fn pop_and_random_members() {
    let (_node, mut c) = node().await;
    let all = set_of(&["a", "b", "c", "d", "e"]);
    q::<()>(&mut c, &["SADD", "s", "a", "b", "c", "d", "e"]).await;
    let one: String = q(&mut c, &["SRANDMEMBER", "s"]).await;
    assert!(all.contains(&one));
    let three = q::<Vec<String>>(&mut c, &["SRANDMEMBER", "s", "3"]).await;
    assert_eq!(three.len(), 3);
    assert_eq!(three.iter().collect::<BTreeSet<_>>().len(), 3, "distinct");
    assert_eq!(members(&mut c, &["SRANDMEMBER", "s", "10"]).await, all);
    // A negative count may repeat members.
    let many = q::<Vec<String>>(&mut c, &["SRANDMEMBER", "s", "-20"]).await;
    assert_eq!(many.len(), 20);
    assert!(many.iter().all(|m| all.contains(m)));
    assert!(
        q::<Vec<String>>(&mut c, &["SRANDMEMBER", "s", "0"])
            .await
            .is_empty()
    );
    assert!(
        q::<Vec<String>>(&mut c, &["SRANDMEMBER", "nope", "5"])
            .await
            .is_empty()
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["SRANDMEMBER", "nope"]).await,
        None
    );
    assert_eq!(
        err(&mut c, &["SRANDMEMBER", "s", "-9223372036854775808"]).await,
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    assert_eq!(
        err(&mut c, &["SRANDMEMBER", "s", "-9223372036854775807"]).await,
        "ERR value is out of range"
    );
    assert_eq!(
        q::<i64>(&mut c, &["SCARD", "s"]).await,
        5,
        "SRANDMEMBER reads"
    );

    let popped: String = q(&mut c, &["SPOP", "s"]).await;
    assert!(all.contains(&popped));
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "s", &popped]).await, 0);
    let two = q::<Vec<String>>(&mut c, &["SPOP", "s", "2"]).await;
    assert_eq!(two.iter().collect::<BTreeSet<_>>().len(), 2);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "s"]).await, 2);
    assert!(
        q::<Vec<String>>(&mut c, &["SPOP", "s", "0"])
            .await
            .is_empty()
    );
    assert_eq!(
        err(&mut c, &["SPOP", "s", "-1"]).await,
        "ERR value is out of range, must be positive"
    );
    let rest = q::<Vec<String>>(&mut c, &["SPOP", "s", "100"]).await;
    let mut seen: BTreeSet<String> = rest.into_iter().collect();
    seen.extend(two);
    seen.insert(popped);
    assert_eq!(seen, all, "every member popped once");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "s"]).await, 0);
    assert_eq!(q::<Option<String>>(&mut c, &["SPOP", "s"]).await, None);
    assert!(
        q::<Vec<String>>(&mut c, &["SPOP", "s", "3"])
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn move_between_sets() {
    let (_node, mut c) = node().await;
    q::<()>(&mut c, &["SADD", "{x}a", "m", "n"]).await;
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "{x}a", "{x}b", "m"]).await, 1);
    assert_eq!(members(&mut c, &["SMEMBERS", "{x}b"]).await, set_of(&["m"]));
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "{x}a", "{x}b", "zz"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "{x}a", "{x}a", "n"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "{x}a", "{x}a", "zz"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "{x}a", "{x}b", "n"]).await, 1);
    assert_eq!(
        q::<i64>(&mut c, &["EXISTS", "{x}a"]).await,
        0,
        "emptied, deleted"
    );
    // A missing source answers 0 before the destination's type is looked at.
    q::<()>(&mut c, &["SET", "{x}s", "v"]).await;
    assert_eq!(
        q::<i64>(&mut c, &["SMOVE", "{x}none", "{x}s", "m"]).await,
        0
    );
    assert_eq!(
        err(&mut c, &["SMOVE", "{x}b", "{x}s", "m"]).await,
        WRONGTYPE
    );
    assert_eq!(q::<i64>(&mut c, &["SCARD", "{x}b"]).await, 2, "unchanged");
}

#[tokio::test]
async fn algebra_across_shards() {
    let (_node, mut c) = node().await;
    // Keys without a common tag: on one node they may live in different shards.
    q::<()>(&mut c, &["SADD", "k1", "a", "b", "c", "d"]).await;
    q::<()>(&mut c, &["SADD", "k2", "c", "d", "e"]).await;
    q::<()>(&mut c, &["SADD", "k3", "a", "c", "e", "f"]).await;
    assert_eq!(
        members(&mut c, &["SINTER", "k1", "k2", "k3"]).await,
        set_of(&["c"])
    );
    assert_eq!(
        members(&mut c, &["SUNION", "k1", "k2", "missing"]).await,
        set_of(&["a", "b", "c", "d", "e"])
    );
    assert_eq!(
        members(&mut c, &["SDIFF", "k1", "k2", "missing"]).await,
        set_of(&["a", "b"])
    );
    assert!(
        members(&mut c, &["SINTER", "k1", "missing"])
            .await
            .is_empty()
    );
    assert!(
        members(&mut c, &["SDIFF", "missing", "k1"])
            .await
            .is_empty()
    );
    assert!(members(&mut c, &["SDIFF", "k1", "k1"]).await.is_empty());
    assert_eq!(q::<i64>(&mut c, &["SINTERCARD", "2", "k1", "k3"]).await, 2);
    assert_eq!(
        q::<i64>(&mut c, &["SINTERCARD", "2", "k1", "k3", "LIMIT", "1"]).await,
        1
    );
    assert_eq!(
        q::<i64>(&mut c, &["SINTERCARD", "2", "k1", "k3", "LIMIT", "0"]).await,
        2
    );
    for (args, want) in [
        (
            &["SINTERCARD", "0", "k1"][..],
            "ERR numkeys should be greater than 0",
        ),
        (
            &["SINTERCARD", "x", "k1"],
            "ERR numkeys should be greater than 0",
        ),
        (
            &["SINTERCARD", "3", "k1", "k2"],
            "ERR Number of keys can't be greater than number of args",
        ),
        (
            &["SINTERCARD", "1", "k1", "LIMIT", "-1"],
            "ERR LIMIT can't be negative",
        ),
        (&["SINTERCARD", "1", "k1", "LIMIT"], "ERR syntax error"),
        (&["SINTERCARD", "1", "k1", "k2"], "ERR syntax error"),
    ] {
        assert_eq!(err(&mut c, args).await, want, "{args:?}");
    }

    // The stores replace the destination, whatever it held, and drop its TTL.
    q::<()>(&mut c, &["SET", "dst", "string", "EX", "100"]).await;
    assert_eq!(
        q::<i64>(&mut c, &["SUNIONSTORE", "dst", "k1", "k2"]).await,
        5
    );
    assert_eq!(q::<i64>(&mut c, &["TTL", "dst"]).await, -1);
    assert_eq!(
        members(&mut c, &["SMEMBERS", "dst"]).await,
        set_of(&["a", "b", "c", "d", "e"])
    );
    assert_eq!(
        q::<i64>(&mut c, &["SINTERSTORE", "dst", "k1", "k3"]).await,
        2
    );
    assert_eq!(
        members(&mut c, &["SMEMBERS", "dst"]).await,
        set_of(&["a", "c"])
    );
    assert_eq!(
        q::<i64>(&mut c, &["SDIFFSTORE", "dst", "dst", "k2"]).await,
        1
    );
    assert_eq!(members(&mut c, &["SMEMBERS", "dst"]).await, set_of(&["a"]));
    // An empty result deletes the destination.
    assert_eq!(
        q::<i64>(&mut c, &["SINTERSTORE", "dst", "k1", "missing"]).await,
        0
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]).await, 0);
    q::<()>(&mut c, &["SET", "dst", "x"]).await;
    assert_eq!(
        q::<i64>(&mut c, &["SDIFFSTORE", "dst", "k1", "k1"]).await,
        0
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]).await, 0);
}

#[tokio::test]
async fn scan_a_set() {
    let (_node, mut c) = node().await;
    let names: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    let mut args = vec!["SADD", "s"];
    args.extend(names.iter().map(String::as_str));
    q::<()>(&mut c, &args).await;
    let (cursor, found): (String, Vec<String>) = q(&mut c, &["SSCAN", "s", "0"]).await;
    assert_eq!(cursor, "0");
    assert_eq!(found.len(), 300);
    let (_, matched): (String, Vec<String>) =
        q(&mut c, &["SSCAN", "s", "0", "MATCH", "m1?", "COUNT", "5"]).await;
    assert_eq!(
        matched.into_iter().collect::<BTreeSet<_>>(),
        (10..20).map(|i| format!("m{i}")).collect()
    );
    assert_eq!(
        err(&mut c, &["SSCAN", "s", "x"]).await,
        "ERR invalid cursor"
    );
    assert_eq!(
        err(&mut c, &["SSCAN", "s", "0", "COUNT", "0"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["SSCAN", "s", "0", "TYPE", "set"]).await,
        "ERR syntax error"
    );
    // A missing key answers an empty scan before its options are read, as Redis does.
    let (cursor, none): (String, Vec<String>) = q(&mut c, &["SSCAN", "nope", "0", "BOGUS"]).await;
    assert_eq!((cursor.as_str(), none.len()), ("0", 0));
}

async fn encoding(c: &mut MultiplexedConnection, key: &str) -> String {
    q(c, &["OBJECT", "ENCODING", key]).await
}

#[tokio::test]
async fn encodings_follow_redis_and_its_settings() {
    let (_node, mut c) = node().await;
    q::<()>(&mut c, &["SADD", "ints", "3", "1", "2"]).await;
    assert_eq!(encoding(&mut c, "ints").await, "intset");
    // An intset lists its members in order.
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SMEMBERS", "ints"]).await,
        ["1", "2", "3"]
    );
    q::<()>(&mut c, &["SADD", "ints", "a"]).await;
    assert_eq!(encoding(&mut c, "ints").await, "listpack");
    q::<()>(&mut c, &["SADD", "ints", &"x".repeat(65)]).await;
    assert_eq!(encoding(&mut c, "ints").await, "hashtable");
    // Never back, even once small again.
    q::<()>(&mut c, &["SPOP", "ints", "4"]).await;
    assert_eq!(encoding(&mut c, "ints").await, "hashtable");

    q::<()>(&mut c, &["SADD", "words", "a", "b"]).await;
    assert_eq!(encoding(&mut c, "words").await, "listpack");
    let many: Vec<String> = (0..129).map(|i| format!("w{i}")).collect();
    let mut args = vec!["SADD", "big"];
    args.extend(many.iter().map(String::as_str));
    q::<()>(&mut c, &args).await;
    assert_eq!(encoding(&mut c, "big").await, "hashtable");
    let ints: Vec<String> = (0..513).map(|i| i.to_string()).collect();
    let mut args = vec!["SADD", "bigints"];
    args.extend(ints.iter().take(512).map(String::as_str));
    q::<()>(&mut c, &args).await;
    assert_eq!(encoding(&mut c, "bigints").await, "intset");
    q::<()>(&mut c, &["SADD", "bigints", "512"]).await;
    assert_eq!(encoding(&mut c, "bigints").await, "hashtable");

    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "set-max-intset-entries"]).await,
        ["set-max-intset-entries", "512"]
    );
    q::<()>(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "set-max-intset-entries",
            "2",
            "set-max-listpack-entries",
            "3",
        ],
    )
    .await;
    q::<()>(&mut c, &["SADD", "small", "1", "2"]).await;
    assert_eq!(encoding(&mut c, "small").await, "intset");
    q::<()>(&mut c, &["SADD", "small", "3"]).await;
    assert_eq!(encoding(&mut c, "small").await, "hashtable");
    q::<()>(&mut c, &["CONFIG", "SET", "set-max-listpack-value", "2"]).await;
    q::<()>(&mut c, &["SADD", "short", "ab"]).await;
    assert_eq!(encoding(&mut c, "short").await, "listpack");
    q::<()>(&mut c, &["SADD", "short", "abc"]).await;
    assert_eq!(encoding(&mut c, "short").await, "hashtable");
    assert!(
        err(&mut c, &["CONFIG", "SET", "set-max-listpack-value", "-1"])
            .await
            .starts_with(
                "ERR CONFIG SET failed (possibly related to argument 'set-max-listpack-value')"
            )
    );
}

#[tokio::test]
async fn memory_comes_back_when_sets_go() {
    let (node, mut c) = node().await;
    let before = node.shared.store.stats().used;
    for (key, prefix) in [("{m}a", "1"), ("{m}b", "member-"), ("{m}c", "")] {
        let members: Vec<String> = (0..600).map(|i| format!("{prefix}{i}")).collect();
        for chunk in members.chunks(50) {
            let mut args = vec!["SADD", key];
            args.extend(chunk.iter().map(String::as_str));
            q::<()>(&mut c, &args).await;
        }
    }
    q::<()>(&mut c, &["SUNIONSTORE", "{m}u", "{m}a", "{m}b"]).await;
    q::<()>(&mut c, &["SPOP", "{m}c", "100"]).await;
    q::<()>(&mut c, &["SMOVE", "{m}a", "{m}d", "15"]).await;
    assert!(node.shared.store.stats().used > before);
    q::<()>(&mut c, &["DEL", "{m}a", "{m}b", "{m}c", "{m}d", "{m}u"]).await;
    assert_eq!(node.shared.store.stats().used, before);
}

/// A replicated cluster: every kind of set write, made at the primary, is on the replica whole
/// by the time it is acknowledged (one synchronous replica), and READONLY reads it there.
#[tokio::test]
async fn sets_written_at_the_primary_read_back_whole_from_the_replica() {
    use common::members::replicated;
    use dcache_cluster::{Settings, Strategy};

    let config = dcache_server::NodeConfig {
        cluster_enabled: dcache_server::YesNo(true),
        ..test_config()
    };
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Primary), config).await;
    let topology = std::sync::Arc::clone(&control.subscribe().borrow());
    let slot = dcache_placement::slot(b"{r}");
    let node_at = |position: usize| {
        let id = &topology.replicas_of(slot)[position].id;
        nodes
            .iter()
            .find(|n| n.shared.cluster.as_ref().unwrap().view().me == *id)
            .expect("a live node")
    };
    let mut primary = node_at(0).client().await;
    let mut replica = node_at(1).client().await;
    assert_eq!(q::<String>(&mut replica, &["READONLY"]).await, "OK");

    let many: Vec<String> = (0..300).map(|i| format!("member:{i}")).collect();
    let mut args = vec!["SADD", "{r}big"];
    args.extend(many.iter().map(String::as_str));
    q::<()>(&mut primary, &args).await;
    q::<()>(&mut primary, &["SADD", "{r}ints", "1", "2", "3", "40000"]).await;
    q::<()>(
        &mut primary,
        &["SADD", "{r}other", "member:1", "member:2", "x"],
    )
    .await;
    q::<()>(&mut primary, &["SREM", "{r}big", "member:0", "member:1"]).await;
    q::<()>(&mut primary, &["SMOVE", "{r}big", "{r}ints", "member:7"]).await;
    q::<()>(&mut primary, &["SPOP", "{r}big", "5"]).await;
    q::<()>(
        &mut primary,
        &["SINTERSTORE", "{r}inter", "{r}big", "{r}other"],
    )
    .await;
    q::<()>(&mut primary, &["SETBIT", "{r}bits", "100", "1"]).await;
    for key in ["{r}big", "{r}ints", "{r}other", "{r}inter"] {
        let there = members(&mut primary, &["SMEMBERS", key]).await;
        assert!(!there.is_empty(), "{key}");
        assert_eq!(
            members(&mut replica, &["SMEMBERS", key]).await,
            there,
            "{key}"
        );
    }
    assert_eq!(q::<i64>(&mut replica, &["SCARD", "{r}big"]).await, 292);
    assert_eq!(q::<i64>(&mut replica, &["BITCOUNT", "{r}bits"]).await, 1);
    assert_eq!(
        q::<i64>(&mut replica, &["GETBIT", "{r}bits", "100"]).await,
        1
    );
    // Emptied at the primary, gone at the replica.
    q::<()>(&mut primary, &["SPOP", "{r}other", "10"]).await;
    assert_eq!(q::<i64>(&mut replica, &["EXISTS", "{r}other"]).await, 0);
}

/// The set encodings' limits come from the node's configuration too, not only CONFIG SET.
#[tokio::test]
async fn the_configuration_sets_the_encoding_limits() {
    let node = common::start(dcache_server::NodeConfig {
        set_max_intset_entries: 2,
        set_max_listpack_entries: 3,
        ..common::test_config()
    })
    .await;
    let mut c = node.client().await;
    let got: Vec<String> =
        common::query(&mut c, &["CONFIG", "GET", "set-max-intset-entries"]).await;
    assert_eq!(got, ["set-max-intset-entries", "2"]);
    let _: i64 = common::query(&mut c, &["SADD", "ints", "1", "2"]).await;
    let enc: String = common::query(&mut c, &["OBJECT", "ENCODING", "ints"]).await;
    assert_eq!(enc, "intset");
    let _: i64 = common::query(&mut c, &["SADD", "ints", "3"]).await;
    let enc: String = common::query(&mut c, &["OBJECT", "ENCODING", "ints"]).await;
    assert_ne!(enc, "intset", "past set-max-intset-entries");
    let _: i64 = common::query(&mut c, &["SADD", "words", "a", "b", "c"]).await;
    let enc: String = common::query(&mut c, &["OBJECT", "ENCODING", "words"]).await;
    assert_eq!(enc, "listpack");
    let _: i64 = common::query(&mut c, &["SADD", "words", "d"]).await;
    let enc: String = common::query(&mut c, &["OBJECT", "ENCODING", "words"]).await;
    assert_eq!(enc, "hashtable", "past set-max-listpack-entries");
}
