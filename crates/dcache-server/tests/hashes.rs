//! Hash encodings through the `redis` crate: a small hash is a listpack that answers in insertion
//! order, as Redis's does, and moves to a hash table past `hash-max-listpack-*` (settings under
//! their old `ziplist` names too); either form answers every hash command alike. Expected replies
//! and errors are Redis's (checked against redis-server 7.0).

mod common;

use std::sync::Arc;

use common::members::{enabled, replicated};
use common::{TestNode, error_text, int, node_and_client, query, strings};
use dcache_cluster::{Change, Settings, Strategy};
use dcache_server::cluster::LocalControl;
use redis::aio::MultiplexedConnection;

async fn encoding(c: &mut MultiplexedConnection, key: &str) -> String {
    query(c, &["OBJECT", "ENCODING", key]).await
}

#[tokio::test]
async fn a_small_hash_answers_in_insertion_order() {
    let (_node, mut c) = node_and_client().await;
    int(
        &mut c,
        &["HSET", "s", "zeta", "1", "alpha", "2", "mid", "3"],
    )
    .await;
    // A changed value stays in its place; a deleted field set again goes last.
    int(&mut c, &["HSET", "s", "alpha", "twenty", "beta", ""]).await;
    int(&mut c, &["HDEL", "s", "zeta"]).await;
    int(&mut c, &["HSET", "s", "zeta", "back"]).await;
    int(&mut c, &["HINCRBY", "s", "mid", "40"]).await;
    assert_eq!(encoding(&mut c, "s").await, "listpack");
    let order = ["alpha", "mid", "beta", "zeta"];
    let values = ["twenty", "43", "", "back"];
    assert_eq!(strings(&mut c, &["HKEYS", "s"]).await, order);
    assert_eq!(strings(&mut c, &["HVALS", "s"]).await, values);
    let pairs: Vec<String> = order
        .iter()
        .zip(values)
        .flat_map(|(f, v)| [f.to_string(), v.to_owned()])
        .collect();
    assert_eq!(strings(&mut c, &["HGETALL", "s"]).await, pairs);
    // HSCAN gives a small hash whole, cursor 0, in the same order (as Redis does a listpack),
    // whatever COUNT says.
    let (cursor, got): (String, Vec<String>) =
        query(&mut c, &["HSCAN", "s", "0", "COUNT", "1"]).await;
    assert_eq!((cursor.as_str(), got), ("0", pairs.clone()));
    let (cursor, got): (String, Vec<String>) =
        query(&mut c, &["HSCAN", "s", "0", "MATCH", "*a"]).await;
    let ending_in_a = ["alpha", "twenty", "beta", "", "zeta", "back"];
    assert_eq!(
        (cursor.as_str(), got),
        ("0", ending_in_a.map(String::from).to_vec())
    );
    // A count that takes every field gives them in order too.
    assert_eq!(strings(&mut c, &["HRANDFIELD", "s", "10"]).await, order);
    assert_eq!(
        strings(&mut c, &["HRANDFIELD", "s", "4", "WITHVALUES"]).await,
        pairs
    );
}

#[tokio::test]
async fn the_encoding_follows_redis_at_both_limits() {
    let (_node, mut c) = node_and_client().await;
    let mut args = vec!["HSET".to_owned(), "h".to_owned()];
    for i in 0..128 {
        args.extend([format!("f{i:03}"), "v".to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(int(&mut c, &args).await, 128);
    assert_eq!(encoding(&mut c, "h").await, "listpack");
    int(&mut c, &["HSET", "h", "f128", "v"]).await;
    assert_eq!(encoding(&mut c, "h").await, "hashtable", "129 fields");
    int(&mut c, &["HDEL", "h", "f128", "f000", "f001"]).await;
    assert_eq!(
        encoding(&mut c, "h").await,
        "hashtable",
        "no way back on removal"
    );
    let long = "x".repeat(65);
    let at_limit = "x".repeat(64);
    int(&mut c, &["HSET", "v", "f", &at_limit]).await;
    assert_eq!(encoding(&mut c, "v").await, "listpack", "64 bytes fit");
    int(&mut c, &["HSET", "v", "f", &long]).await;
    assert_eq!(encoding(&mut c, "v").await, "hashtable", "a 65-byte value");
    // A long field converts through HINCRBY and HINCRBYFLOAT too; HSETNX of a field that is
    // there writes nothing and converts nothing.
    int(&mut c, &["HINCRBY", "i", &long, "1"]).await;
    assert_eq!(encoding(&mut c, "i").await, "hashtable");
    query::<String>(&mut c, &["HINCRBYFLOAT", "g", &long, "1.5"]).await;
    assert_eq!(encoding(&mut c, "g").await, "hashtable");
    int(&mut c, &["HSET", "n", "f", "1"]).await;
    assert_eq!(int(&mut c, &["HSETNX", "n", "f", &long]).await, 0);
    assert_eq!(encoding(&mut c, "n").await, "listpack");
    assert_eq!(int(&mut c, &["HSETNX", "n", "g", &long]).await, 1);
    assert_eq!(encoding(&mut c, "n").await, "hashtable");
}

#[tokio::test]
async fn the_limits_are_settings_under_both_names() {
    let (_node, mut c) = node_and_client().await;
    assert_eq!(
        strings(&mut c, &["CONFIG", "GET", "hash-max-*"]).await,
        [
            "hash-max-listpack-entries",
            "128",
            "hash-max-listpack-value",
            "64",
            "hash-max-ziplist-entries",
            "128",
            "hash-max-ziplist-value",
            "64"
        ]
    );
    let ok: String = query(&mut c, &["CONFIG", "SET", "hash-max-ziplist-entries", "2"]).await;
    assert_eq!(ok, "OK");
    assert_eq!(
        strings(&mut c, &["CONFIG", "GET", "hash-max-listpack-entries"]).await,
        ["hash-max-listpack-entries", "2"]
    );
    int(&mut c, &["HSET", "few", "a", "1", "b", "2"]).await;
    assert_eq!(encoding(&mut c, "few").await, "listpack");
    int(&mut c, &["HSET", "few", "c", "3"]).await;
    assert_eq!(encoding(&mut c, "few").await, "hashtable");
    // The value's limit is a memory value, as in Redis.
    let ok: String = query(&mut c, &["CONFIG", "SET", "hash-max-listpack-value", "1kb"]).await;
    assert_eq!(ok, "OK");
    assert_eq!(
        strings(&mut c, &["CONFIG", "GET", "hash-max-ziplist-value"]).await,
        ["hash-max-ziplist-value", "1024"]
    );
    int(&mut c, &["HSET", "big", "f", &"v".repeat(1024)]).await;
    assert_eq!(encoding(&mut c, "big").await, "listpack");
    int(&mut c, &["HSET", "big", "g", &"v".repeat(1025)]).await;
    assert_eq!(encoding(&mut c, "big").await, "hashtable");
    let ok: String = query(&mut c, &["CONFIG", "SET", "hash-max-listpack-entries", "0"]).await;
    assert_eq!(ok, "OK");
    int(&mut c, &["HSET", "none", "a", "1"]).await;
    assert_eq!(encoding(&mut c, "none").await, "hashtable");
    assert_eq!(
        error_text(&mut c, &["CONFIG", "SET", "hash-max-listpack-value", "-1"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'hash-max-listpack-value') - argument must be a memory value"
    );
    assert_eq!(
        error_text(
            &mut c,
            &["CONFIG", "SET", "hash-max-listpack-entries", "1kb"]
        )
        .await,
        "ERR CONFIG SET failed (possibly related to argument 'hash-max-listpack-entries') - argument couldn't be parsed into an integer"
    );
    assert_eq!(
        error_text(
            &mut c,
            &["CONFIG", "SET", "hash-max-listpack-entries", "-1"]
        )
        .await,
        "ERR CONFIG SET failed (possibly related to argument 'hash-max-listpack-entries') - argument must be between 0 and 9223372036854775807 inclusive"
    );
}

/// The table form answers every command as the compact one did, fields in no particular order.
#[tokio::test]
async fn a_large_hash_answers_alike() {
    let (_node, mut c) = node_and_client().await;
    for i in 0..300 {
        int(&mut c, &["HSET", "big", &format!("f{i}"), &i.to_string()]).await;
    }
    assert_eq!(encoding(&mut c, "big").await, "hashtable");
    assert_eq!(int(&mut c, &["HLEN", "big"]).await, 300);
    assert_eq!(int(&mut c, &["HSTRLEN", "big", "f250"]).await, 3);
    assert_eq!(int(&mut c, &["HEXISTS", "big", "f299"]).await, 1);
    assert_eq!(int(&mut c, &["HINCRBY", "big", "f7", "-10"]).await, -3);
    let got: Vec<Option<String>> = query(&mut c, &["HMGET", "big", "f1", "nope"]).await;
    assert_eq!(got, [Some("1".to_owned()), None]);
    let mut keys = strings(&mut c, &["HKEYS", "big"]).await;
    keys.sort();
    let mut want: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
    want.sort();
    assert_eq!(keys, want);
    let (cursor, pairs): (String, Vec<String>) = query(&mut c, &["HSCAN", "big", "0"]).await;
    assert_eq!((cursor.as_str(), pairs.len()), ("0", 600));
    for i in 0..300 {
        int(&mut c, &["HDEL", "big", &format!("f{i}")]).await;
    }
    assert_eq!(int(&mut c, &["EXISTS", "big"]).await, 0);
}

/// A cluster of 3 nodes replicating under `settings`, its control, and a cluster client.
async fn cluster(
    settings: Settings,
) -> (
    Arc<LocalControl>,
    Vec<TestNode>,
    redis::cluster_async::ClusterConnection,
) {
    let (control, nodes) = replicated(3, settings, enabled()).await;
    let con = cluster_client(&nodes).await;
    (control, nodes, con)
}

async fn cluster_client(nodes: &[TestNode]) -> redis::cluster_async::ClusterConnection {
    let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
    client.get_async_connection().await.unwrap()
}

async fn run(con: &mut redis::cluster_async::ClusterConnection, args: &[&str]) -> redis::Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(con).await.unwrap()
}

/// Kills the primary of `key`'s slot without a word, has the cluster declare it failed, and
/// connects a new cluster client to the survivors.
async fn kill_primary_of(
    control: &LocalControl,
    nodes: &mut Vec<TestNode>,
    key: &str,
) -> redis::cluster_async::ClusterConnection {
    let slot = dcache_placement::slot(key.as_bytes());
    let primary_id = control.subscribe().borrow().replicas_of(slot)[0].id.clone();
    let at = nodes
        .iter()
        .position(|n| n.shared.cluster.as_ref().unwrap().view().me == primary_id)
        .unwrap();
    drop(nodes.remove(at));
    control.apply(&Change::Fail(primary_id)).unwrap();
    cluster_client(nodes).await
}

/// `OBJECT ENCODING` of each key.
async fn encodings(
    con: &mut redis::cluster_async::ClusterConnection,
    keys: &[&str],
) -> Vec<String> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("OBJECT").arg("ENCODING").arg(*key);
    }
    pipe.query_async(con).await.unwrap()
}

/// A replica holds each form as its primary did: after the primary dies, the small hash answers in
/// its insertion order, still a listpack, and the large one holds every field.
#[tokio::test]
async fn hashes_of_both_forms_survive_their_primary() {
    for settings in [
        Settings::new(1, Strategy::Primary),
        Settings::new(2, Strategy::Quorum),
    ] {
        let strategy = settings.strategy;
        let (control, mut nodes, mut con) = cluster(settings).await;
        // One slot for both, so that one death takes both primaries.
        let (small, large) = ("{h}:session", "{h}:large");
        run(
            &mut con,
            &["HSET", small, "user", "ann", "cart", "0", "theme", "dark"],
        )
        .await;
        run(&mut con, &["HINCRBY", small, "cart", "3"]).await;
        run(&mut con, &["HDEL", small, "user"]).await;
        run(&mut con, &["HSET", small, "user", "bob", "lang", "en"]).await;
        for i in 0..200 {
            run(&mut con, &["HSET", large, &format!("f{i}"), &i.to_string()]).await;
        }
        run(&mut con, &["HDEL", large, "f0"]).await;
        // The slot's primary dies without a word; the cluster declares it failed.
        let mut con = kill_primary_of(&control, &mut nodes, small).await;
        let got: Vec<String> = redis::cmd("HGETALL")
            .arg(small)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(
            got,
            ["cart", "3", "theme", "dark", "user", "bob", "lang", "en"],
            "{strategy:?}: the small hash, in order"
        );
        assert_eq!(
            encodings(&mut con, &[small, large]).await,
            ["listpack", "hashtable"],
            "{strategy:?}"
        );
        let mut got: Vec<(String, i64)> = redis::cmd("HGETALL")
            .arg(large)
            .query_async(&mut con)
            .await
            .unwrap();
        got.sort_by_key(|(_, v)| *v);
        let want: Vec<(String, i64)> = (1..200).map(|i| (format!("f{i}"), i)).collect();
        assert_eq!(got, want, "{strategy:?}: the large hash");
    }
}

/// A copy is rebuilt in the form its primary held, not the form the replica's limits would pick
/// for its size: a table hash that shrank to 10 fields stays a table (Redis never converts
/// back), and a listpack past the default limits (raised by CONFIG SET on every node) stays a
/// listpack in its insertion order, after the primary dies.
#[tokio::test]
async fn hashes_keep_their_primary_form_after_it_dies() {
    for settings in [
        Settings::new(1, Strategy::Primary),
        Settings::new(2, Strategy::Quorum),
    ] {
        let strategy = settings.strategy;
        let (control, mut nodes, mut con) = cluster(settings).await;
        let (shrunk, wide) = ("{h}:shrunk", "{h}:wide");
        for i in 0..200 {
            run(&mut con, &["HSET", shrunk, &format!("f{i}"), "v"]).await;
        }
        for i in 10..200 {
            run(&mut con, &["HDEL", shrunk, &format!("f{i}")]).await;
        }
        for node in &nodes {
            let mut c = node.client().await;
            let ok: String = query(
                &mut c,
                &["CONFIG", "SET", "hash-max-listpack-entries", "1024"],
            )
            .await;
            assert_eq!(ok, "OK");
        }
        // A write to the shrunk hash after the change: its copy is sent again, still a table.
        run(&mut con, &["HSET", shrunk, "f0", "w"]).await;
        // Fields in an order no sort gives back.
        let order: Vec<String> = (0..300).map(|i| format!("f{}", (i * 7) % 300)).collect();
        for f in &order {
            run(&mut con, &["HSET", wide, f, "v"]).await;
        }
        let mut con = kill_primary_of(&control, &mut nodes, shrunk).await;
        assert_eq!(
            encodings(&mut con, &[shrunk, wide]).await,
            ["hashtable", "listpack"],
            "{strategy:?}"
        );
        let got: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(wide)
            .query_async(&mut con)
            .await
            .unwrap();
        let fields: Vec<&String> = got.iter().map(|(f, _)| f).collect();
        assert_eq!(fields, order.iter().collect::<Vec<_>>(), "{strategy:?}");
        let mut got: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(shrunk)
            .query_async(&mut con)
            .await
            .unwrap();
        got.sort();
        let mut want: Vec<(String, String)> = (0..10)
            .map(|i| (format!("f{i}"), if i == 0 { "w" } else { "v" }.to_owned()))
            .collect();
        want.sort();
        assert_eq!(got, want, "{strategy:?}");
    }
}
