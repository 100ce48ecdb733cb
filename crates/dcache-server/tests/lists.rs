//! Lists through the `redis` crate: the commands, their errors, the encodings, and the blocking
//! forms (wake order, timeouts, keys deleted or retyped while clients wait, disconnects, CLIENT
//! UNBLOCK, pipelines). Blocked clients are known to be blocked by INFO's `blocked_clients`,
//! polled with a deadline; no test sleeps to synchronise or asserts how long anything took.

mod common;

use common::{
    blocked, error_text, node_and_client, patient, query, read_until, test_config, until_blocked,
};
use redis::Value;
use tokio::io::AsyncWriteExt;

fn bulks(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[tokio::test]
async fn pushes_pops_and_reads() {
    let (_node, mut con) = node_and_client().await;
    let c = &mut con;
    assert_eq!(query::<i64>(c, &["RPUSH", "l", "a", "b", "c"]).await, 3);
    assert_eq!(query::<i64>(c, &["LPUSH", "l", "x", "y"]).await, 5);
    assert_eq!(
        query::<Vec<String>>(c, &["LRANGE", "l", "0", "-1"]).await,
        ["y", "x", "a", "b", "c"]
    );
    assert_eq!(
        query::<Vec<String>>(c, &["LRANGE", "l", "-2", "100"]).await,
        ["b", "c"]
    );
    assert!(
        query::<Vec<String>>(c, &["LRANGE", "l", "3", "1"])
            .await
            .is_empty()
    );
    assert!(
        query::<Vec<String>>(c, &["LRANGE", "nope", "0", "-1"])
            .await
            .is_empty()
    );
    assert_eq!(query::<i64>(c, &["LLEN", "l"]).await, 5);
    assert_eq!(query::<i64>(c, &["LLEN", "nope"]).await, 0);
    assert_eq!(query::<String>(c, &["LINDEX", "l", "-1"]).await, "c");
    assert_eq!(
        query::<Option<String>>(c, &["LINDEX", "l", "5"]).await,
        None
    );
    assert_eq!(
        query::<Option<String>>(c, &["LINDEX", "l", "-6"]).await,
        None
    );
    // LINDEX looks the key up before it reads the index.
    assert_eq!(
        query::<Option<String>>(c, &["LINDEX", "nope", "x"]).await,
        None
    );
    assert_eq!(query::<i64>(c, &["LPUSHX", "nope", "a"]).await, 0);
    assert_eq!(query::<i64>(c, &["EXISTS", "nope"]).await, 0);
    assert_eq!(query::<i64>(c, &["RPUSHX", "l", "z"]).await, 6);

    assert_eq!(query::<String>(c, &["LPOP", "l"]).await, "y");
    assert_eq!(
        query::<Vec<String>>(c, &["RPOP", "l", "2"]).await,
        ["z", "c"]
    );
    assert_eq!(
        query::<Vec<String>>(c, &["LPOP", "l", "0"]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        query::<Vec<String>>(c, &["LPOP", "l", "10"]).await,
        ["x", "a", "b"]
    );
    assert_eq!(
        query::<i64>(c, &["EXISTS", "l"]).await,
        0,
        "emptied: deleted"
    );
    assert_eq!(common::cmd(c, &["LPOP", "l"]).await.unwrap(), Value::Nil);
    assert_eq!(
        common::cmd(c, &["LPOP", "l", "2"]).await.unwrap(),
        Value::Nil
    );

    query::<()>(c, &["SET", "s", "v"]).await;
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    for args in [
        &["LPUSH", "s", "a"][..],
        &["LRANGE", "s", "0", "1"],
        &["LLEN", "s"],
        &["LPOP", "s"],
        &["LINDEX", "s", "0"],
        &["LSET", "s", "0", "a"],
        &["LPOS", "s", "a"],
        &["BLPOP", "nope", "s", "0"],
    ] {
        assert_eq!(error_text(c, args).await, wrongtype, "{args:?}");
    }
    assert_eq!(
        error_text(c, &["LPOP", "l", "-1"]).await,
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        error_text(c, &["LPOP", "l", "1", "2"]).await,
        "ERR wrong number of arguments for 'lpop' command"
    );
    assert_eq!(
        error_text(c, &["LRANGE", "l", "a", "1"]).await,
        "ERR value is not an integer or out of range"
    );
}

#[tokio::test]
async fn edits_in_the_middle() {
    let (_node, mut con) = node_and_client().await;
    let c = &mut con;
    query::<i64>(c, &["RPUSH", "l", "a", "b", "a", "c", "a"]).await;
    query::<()>(c, &["LSET", "l", "-1", "z"]).await;
    assert_eq!(
        error_text(c, &["LSET", "l", "9", "z"]).await,
        "ERR index out of range"
    );
    assert_eq!(
        error_text(c, &["LSET", "nope", "0", "z"]).await,
        "ERR no such key"
    );
    assert_eq!(
        query::<i64>(c, &["LINSERT", "l", "BEFORE", "c", "x"]).await,
        6
    );
    assert_eq!(
        query::<i64>(c, &["LINSERT", "l", "after", "z", "y"]).await,
        7
    );
    assert_eq!(
        query::<i64>(c, &["LINSERT", "l", "AFTER", "q", "y"]).await,
        -1
    );
    assert_eq!(
        query::<i64>(c, &["LINSERT", "nope", "AFTER", "q", "y"]).await,
        0
    );
    assert_eq!(
        error_text(c, &["LINSERT", "l", "UNDER", "q", "y"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        query::<Vec<String>>(c, &["LRANGE", "l", "0", "-1"]).await,
        ["a", "b", "a", "x", "c", "z", "y"]
    );
    assert_eq!(query::<i64>(c, &["LPOS", "l", "a"]).await, 0);
    assert_eq!(query::<i64>(c, &["LPOS", "l", "a", "RANK", "-1"]).await, 2);
    assert_eq!(
        query::<Vec<i64>>(c, &["LPOS", "l", "a", "COUNT", "0"]).await,
        [0, 2]
    );
    assert_eq!(
        query::<Vec<i64>>(c, &["LPOS", "l", "a", "COUNT", "5", "MAXLEN", "2"]).await,
        [0]
    );
    assert_eq!(
        query::<Option<i64>>(c, &["LPOS", "l", "a", "RANK", "3"]).await,
        None
    );
    assert_eq!(
        query::<Vec<i64>>(c, &["LPOS", "nope", "a", "COUNT", "1"]).await,
        Vec::<i64>::new()
    );
    assert!(
        error_text(c, &["LPOS", "l", "a", "RANK", "0"])
            .await
            .starts_with("ERR RANK can't be zero")
    );
    assert_eq!(
        error_text(c, &["LPOS", "l", "a", "COUNT", "-1"]).await,
        "ERR COUNT can't be negative"
    );
    assert_eq!(
        error_text(c, &["LPOS", "l", "a", "MAXLEN"]).await,
        "ERR syntax error"
    );

    assert_eq!(query::<i64>(c, &["LREM", "l", "-1", "a"]).await, 1);
    assert_eq!(query::<i64>(c, &["LREM", "l", "0", "nothing"]).await, 0);
    assert_eq!(
        query::<Vec<String>>(c, &["LRANGE", "l", "0", "-1"]).await,
        ["a", "b", "x", "c", "z", "y"]
    );
    query::<()>(c, &["LTRIM", "l", "1", "-2"]).await;
    assert_eq!(
        query::<Vec<String>>(c, &["LRANGE", "l", "0", "-1"]).await,
        ["b", "x", "c", "z"]
    );
    query::<()>(c, &["LTRIM", "nope", "0", "1"]).await;
    query::<()>(c, &["LTRIM", "l", "5", "1"]).await;
    assert_eq!(
        query::<i64>(c, &["EXISTS", "l"]).await,
        0,
        "trimmed to nothing: deleted"
    );
}

#[tokio::test]
async fn moves_between_lists() {
    let (_node, mut con) = node_and_client().await;
    let c = &mut con;
    query::<i64>(c, &["RPUSH", "src", "a", "b", "c"]).await;
    assert_eq!(
        query::<String>(c, &["LMOVE", "src", "dst", "LEFT", "RIGHT"]).await,
        "a"
    );
    assert_eq!(query::<String>(c, &["RPOPLPUSH", "src", "dst"]).await, "c");
    assert_eq!(
        query::<Vec<String>>(c, &["LRANGE", "dst", "0", "-1"]).await,
        ["c", "a"]
    );
    // Onto itself: a rotation.
    assert_eq!(
        query::<String>(c, &["LMOVE", "dst", "dst", "RIGHT", "LEFT"]).await,
        "a"
    );
    assert_eq!(
        query::<Vec<String>>(c, &["LRANGE", "dst", "0", "-1"]).await,
        ["a", "c"]
    );
    assert_eq!(
        common::cmd(c, &["LMOVE", "nope", "dst", "LEFT", "LEFT"])
            .await
            .unwrap(),
        Value::Nil
    );
    assert_eq!(
        error_text(c, &["LMOVE", "src", "dst", "UP", "LEFT"]).await,
        "ERR syntax error"
    );
    query::<()>(c, &["SET", "s", "v"]).await;
    assert!(
        error_text(c, &["LMOVE", "src", "s", "LEFT", "LEFT"])
            .await
            .starts_with("WRONGTYPE")
    );
    assert_eq!(query::<i64>(c, &["LLEN", "src"]).await, 1, "nothing moved");

    assert_eq!(
        common::cmd(c, &["LMPOP", "2", "nope", "dst", "RIGHT", "COUNT", "5"])
            .await
            .unwrap(),
        Value::Array(vec![
            Value::BulkString(b"dst".to_vec()),
            Value::Array(
                bulks(&["c", "a"])
                    .into_iter()
                    .map(Value::BulkString)
                    .collect()
            ),
        ])
    );
    assert_eq!(
        common::cmd(c, &["LMPOP", "1", "nope", "LEFT"])
            .await
            .unwrap(),
        Value::Nil
    );
    assert_eq!(
        error_text(c, &["LMPOP", "0", "src", "LEFT"]).await,
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        error_text(c, &["LMPOP", "3", "src", "LEFT"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        error_text(c, &["LMPOP", "1", "src", "LEFT", "COUNT", "0"]).await,
        "ERR count should be greater than 0"
    );
}

#[tokio::test]
async fn encodings_follow_list_max_listpack_size() {
    let (_node, mut con) = node_and_client().await;
    let c = &mut con;
    query::<i64>(c, &["RPUSH", "l", "a", "b"]).await;
    assert_eq!(
        query::<String>(c, &["OBJECT", "ENCODING", "l"]).await,
        "listpack"
    );
    let big = "x".repeat(9000);
    query::<i64>(c, &["RPUSH", "l", &big]).await;
    assert_eq!(
        query::<String>(c, &["OBJECT", "ENCODING", "l"]).await,
        "quicklist"
    );
    query::<String>(c, &["RPOP", "l"]).await;
    assert_eq!(
        query::<String>(c, &["OBJECT", "ENCODING", "l"]).await,
        "listpack"
    );
    // A count of elements instead (process-wide: no other test here changes it).
    query::<()>(c, &["CONFIG", "SET", "list-max-listpack-size", "4"]).await;
    let got: Vec<String> = query(c, &["CONFIG", "GET", "list-max-ziplist-size"]).await;
    assert_eq!(got, ["list-max-ziplist-size", "4"]);
    query::<i64>(c, &["RPUSH", "l", "c", "d"]).await;
    assert_eq!(
        query::<String>(c, &["OBJECT", "ENCODING", "l"]).await,
        "listpack"
    );
    query::<i64>(c, &["RPUSH", "l", "e"]).await;
    assert_eq!(
        query::<String>(c, &["OBJECT", "ENCODING", "l"]).await,
        "quicklist"
    );
    query::<Vec<String>>(c, &["LPOP", "l", "3"]).await;
    assert_eq!(
        query::<String>(c, &["OBJECT", "ENCODING", "l"]).await,
        "listpack"
    );
    query::<()>(c, &["CONFIG", "SET", "list-max-listpack-size", "-2"]).await;
}

#[tokio::test]
async fn blocking_pops_answer_at_once_when_a_list_has_elements() {
    let (_node, mut con) = node_and_client().await;
    let c = &mut con;
    query::<i64>(c, &["RPUSH", "b", "1", "2"]).await;
    assert_eq!(
        query::<Vec<String>>(c, &["BLPOP", "a", "b", "0"]).await,
        ["b", "1"]
    );
    assert_eq!(
        query::<Vec<String>>(c, &["BRPOP", "a", "b", "0"]).await,
        ["b", "2"]
    );
    query::<i64>(c, &["RPUSH", "b", "3"]).await;
    assert_eq!(
        query::<String>(c, &["BRPOPLPUSH", "b", "a", "0"]).await,
        "3"
    );
    assert_eq!(
        query::<String>(c, &["BLMOVE", "a", "b", "LEFT", "LEFT", "0"]).await,
        "3"
    );
    let popped: (String, Vec<String>) = query(c, &["BLMPOP", "0", "2", "a", "b", "LEFT"]).await;
    assert_eq!(popped, ("b".to_owned(), vec!["3".to_owned()]));
    assert_eq!(
        error_text(c, &["BLPOP", "a", "-1"]).await,
        "ERR timeout is negative"
    );
    assert_eq!(
        error_text(c, &["BLPOP", "a", "soon"]).await,
        "ERR timeout is not a float or out of range"
    );
    assert_eq!(
        error_text(c, &["BLMPOP", "x", "1", "a", "LEFT"]).await,
        "ERR timeout is not a float or out of range"
    );
}

#[tokio::test]
async fn a_timeout_answers_a_null_array() {
    let (node, mut con) = node_and_client().await;
    let c = &mut con;
    for args in [
        &["BLPOP", "a", "b", "0.01"][..],
        &["BRPOP", "a", "0.01"],
        &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0.01"],
        &["BRPOPLPUSH", "a", "b", "0.01"],
        &["BLMPOP", "0.01", "1", "a", "LEFT"],
    ] {
        assert_eq!(common::cmd(c, args).await.unwrap(), Value::Nil, "{args:?}");
    }
    // On the wire: RESP2's null array, RESP3's null.
    let mut raw = node.raw().await;
    raw.write_all(b"BLPOP a 0.01\r\n").await.unwrap();
    assert_eq!(read_until(&mut raw, b"\r\n").await, b"*-1\r\n");
    raw.write_all(b"HELLO 3\r\nPING\r\n").await.unwrap();
    read_until(&mut raw, b"+PONG\r\n").await;
    raw.write_all(b"BLPOP a 0.01\r\n").await.unwrap();
    let got = read_until(&mut raw, b"_\r\n").await;
    assert!(
        got.ends_with(b"_\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(blocked(c).await, 0);
}

#[tokio::test]
async fn blocked_clients_are_served_in_the_order_they_blocked() {
    let (node, mut con) = node_and_client().await;
    let mut first = patient(&node).await;
    let mut second = patient(&node).await;
    let one =
        tokio::spawn(async move { query::<Vec<String>>(&mut first, &["BLPOP", "q", "0"]).await });
    until_blocked(&mut con, 1).await;
    let two =
        tokio::spawn(async move { query::<Vec<String>>(&mut second, &["BLPOP", "q", "0"]).await });
    until_blocked(&mut con, 2).await;
    query::<i64>(&mut con, &["RPUSH", "q", "a"]).await;
    query::<i64>(&mut con, &["RPUSH", "q", "b"]).await;
    assert_eq!(one.await.unwrap(), ["q", "a"]);
    assert_eq!(two.await.unwrap(), ["q", "b"]);
    assert_eq!(blocked(&mut con).await, 0);
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "q"]).await, 0);
}

#[tokio::test]
async fn a_key_deleted_or_retyped_keeps_its_clients_waiting() {
    let (node, mut con) = node_and_client().await;
    let mut waiting = patient(&node).await;
    let pop =
        tokio::spawn(async move { query::<Vec<String>>(&mut waiting, &["BLPOP", "k", "0"]).await });
    until_blocked(&mut con, 1).await;
    query::<i64>(&mut con, &["RPUSH", "other", "x"]).await;
    query::<()>(&mut con, &["SET", "k", "a string"]).await;
    // A RENAME onto the key wakes its clients, which find a string and wait on.
    query::<()>(&mut con, &["SET", "str", "another"]).await;
    query::<()>(&mut con, &["RENAME", "str", "k"]).await;
    query::<i64>(&mut con, &["DEL", "k"]).await;
    assert_eq!(blocked(&mut con).await, 1);
    query::<i64>(&mut con, &["RPUSH", "k", "finally"]).await;
    assert_eq!(pop.await.unwrap(), ["k", "finally"]);
    // A list renamed onto the key serves its clients too.
    let mut waiting = patient(&node).await;
    let pop =
        tokio::spawn(async move { query::<Vec<String>>(&mut waiting, &["BRPOP", "k", "0"]).await });
    until_blocked(&mut con, 1).await;
    query::<()>(&mut con, &["RENAME", "other", "k"]).await;
    assert_eq!(pop.await.unwrap(), ["k", "x"]);
}

#[tokio::test]
async fn a_client_gone_while_blocked_takes_nothing() {
    let (node, mut con) = node_and_client().await;
    let mut raw = node.raw().await;
    raw.write_all(b"BLPOP k 0\r\n").await.unwrap();
    until_blocked(&mut con, 1).await;
    drop(raw);
    until_blocked(&mut con, 0).await;
    query::<i64>(&mut con, &["RPUSH", "k", "kept"]).await;
    assert_eq!(
        query::<Vec<String>>(&mut con, &["LRANGE", "k", "0", "-1"]).await,
        ["kept"]
    );
}

#[tokio::test]
async fn blmove_serves_the_clients_blocked_on_its_destination() {
    let (node, mut con) = node_and_client().await;
    let mut on_dst = patient(&node).await;
    let mut mover = patient(&node).await;
    let pop =
        tokio::spawn(
            async move { query::<Vec<String>>(&mut on_dst, &["BLPOP", "dst", "0"]).await },
        );
    until_blocked(&mut con, 1).await;
    let moved = tokio::spawn(async move {
        query::<String>(&mut mover, &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]).await
    });
    until_blocked(&mut con, 2).await;
    query::<i64>(&mut con, &["RPUSH", "src", "x"]).await;
    assert_eq!(moved.await.unwrap(), "x");
    assert_eq!(pop.await.unwrap(), ["dst", "x"]);
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "src", "dst"]).await, 0);
}

#[tokio::test]
async fn a_pipeline_waits_behind_its_blocked_command() {
    let (node, mut con) = node_and_client().await;
    let mut raw = node.raw().await;
    raw.write_all(b"BLPOP k 0\r\nECHO after\r\n").await.unwrap();
    until_blocked(&mut con, 1).await;
    query::<i64>(&mut con, &["LPUSH", "k", "v"]).await;
    let got = read_until(&mut raw, b"after\r\n").await;
    assert_eq!(got, b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n$5\r\nafter\r\n");
}

#[tokio::test]
async fn client_unblock_ends_a_wait() {
    let (node, mut con) = node_and_client().await;
    let mut raw = node.raw().await;
    raw.write_all(b"CLIENT ID\r\n").await.unwrap();
    let id = String::from_utf8(read_until(&mut raw, b"\r\n").await).unwrap();
    let id = id.trim().trim_start_matches(':').to_owned();
    assert_eq!(
        query::<i64>(&mut con, &["CLIENT", "UNBLOCK", &id]).await,
        0,
        "not blocked"
    );
    raw.write_all(b"BLMPOP 0 1 k LEFT\r\n").await.unwrap();
    until_blocked(&mut con, 1).await;
    let list: String = query(&mut con, &["CLIENT", "LIST", "ID", &id]).await;
    assert!(list.contains("flags=b"), "{list}");
    assert_eq!(query::<i64>(&mut con, &["CLIENT", "UNBLOCK", &id]).await, 1);
    assert_eq!(read_until(&mut raw, b"\r\n").await, b"*-1\r\n");
    raw.write_all(b"BRPOP k 0\r\n").await.unwrap();
    until_blocked(&mut con, 1).await;
    assert_eq!(
        error_text(&mut con, &["CLIENT", "UNBLOCK", &id, "SOON"]).await,
        "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"
    );
    assert_eq!(
        query::<i64>(&mut con, &["CLIENT", "UNBLOCK", &id, "ERROR"]).await,
        1
    );
    assert_eq!(
        read_until(&mut raw, b"\r\n").await,
        b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    assert_eq!(blocked(&mut con).await, 0);
}

/// In a replicated cluster, a list written at its primary, and one popped by a woken BLPOP,
/// read back the same from the replica (READONLY): the pop is an ordinary write.
#[tokio::test]
async fn lists_and_woken_pops_reach_the_replica() {
    use common::members::{enabled, replicated};
    use dcache_cluster::{Settings, Strategy};

    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Primary), enabled()).await;
    let topology = std::sync::Arc::clone(&control.subscribe().borrow());
    let (queue, woken) = ("{q}list", "{q}woken");
    let copies = topology.replicas_of(dcache_placement::slot(queue.as_bytes()));
    let node_of = |position: usize| {
        nodes
            .iter()
            .find(|n| n.shared.cluster.as_ref().unwrap().view().me == copies[position].id)
            .expect("a live node")
    };
    let (primary, replica) = (node_of(0), node_of(1));
    let mut con = patient(primary).await;
    assert_eq!(
        query::<i64>(&mut con, &["RPUSH", queue, "a", "b", "c", "d"]).await,
        4
    );
    assert_eq!(query::<String>(&mut con, &["LPOP", queue]).await, "a");
    assert_eq!(
        query::<String>(&mut con, &["LMOVE", queue, woken, "RIGHT", "LEFT"]).await,
        "d"
    );
    assert_eq!(query::<String>(&mut con, &["RPOP", woken]).await, "d");

    let mut waiting = patient(primary).await;
    let pop =
        tokio::spawn(
            async move { query::<Vec<String>>(&mut waiting, &["BLPOP", woken, "0"]).await },
        );
    until_blocked(&mut con, 1).await;
    assert_eq!(query::<i64>(&mut con, &["RPUSH", woken, "x", "y"]).await, 2);
    assert_eq!(pop.await.unwrap(), [woken, "x"]);

    let mut read = replica.client().await;
    query::<()>(&mut read, &["READONLY"]).await;
    assert_eq!(
        query::<Vec<String>>(&mut read, &["LRANGE", queue, "0", "-1"]).await,
        ["b", "c"]
    );
    // The woken pop was acknowledged by the replica before its reply was sent.
    assert_eq!(
        query::<Vec<String>>(&mut read, &["LRANGE", woken, "0", "-1"]).await,
        ["y"]
    );
}

/// A client blocked on a key whose slot moves to another node is not left waiting on a key that
/// will never be pushed here: the new topology runs its command again, which redirects it.
#[tokio::test]
async fn a_blocked_client_whose_slot_moves_away_is_redirected() {
    use common::members::{cluster, member, settle};
    use dcache_cluster::Change;

    let (control, nodes) = cluster(1).await;
    let a = &nodes[0];
    let a_id = a.shared.cluster.as_ref().unwrap().view().me.clone();
    let (_b, b_node) = member(&control, test_config()).await;
    // Where the join will move slots, planned on a copy: the key is blocked on before.
    let mut planned = dcache_cluster::Topology::clone(&control.subscribe().borrow());
    planned.apply(&Change::Join(b_node.clone())).unwrap();
    let (slot, _) = planned.moving_from(&a_id)[0];
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| dcache_placement::slot(k.as_bytes()) == slot)
        .expect("every slot has keys");

    let mut con = a.client().await;
    let mut waiting = patient(a).await;
    let pop = tokio::spawn(async move { common::cmd(&mut waiting, &["BLPOP", &key, "0"]).await });
    until_blocked(&mut con, 1).await;
    control.apply(&Change::Join(b_node)).unwrap();
    settle(&control);
    let redirected = pop.await.unwrap().unwrap_err();
    assert_eq!(redirected.code(), Some("MOVED"), "{redirected}");
    assert_eq!(blocked(&mut con).await, 0);
}
