//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH. The replies are checked byte for byte on
//! raw connections (Redis 7.0's words and frames); WATCH against writers on other connections,
//! expiry and the client's own writes; atomicity against concurrent readers; the cluster rules.
//! Every loop is bounded in count and time; nothing sleeps to synchronise.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TestNode, exchange, query, start, start_manual, test_config};
use redis::Value;
use tokio::net::TcpStream;

/// Requests in RESP, one per command, arguments split on spaces.
fn resp(commands: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for command in commands {
        let args: Vec<&str> = command.split(' ').collect();
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
    }
    out
}

/// Sends `commands` at once (one pipeline) and checks that the replies are exactly `expected`.
async fn check(stream: &mut TcpStream, commands: &[&str], expected: &str) {
    let got = exchange(stream, &resp(commands), expected.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        expected,
        "replies to {commands:?}"
    );
}

async fn node() -> (TestNode, TcpStream) {
    let node = start(test_config()).await;
    let stream = node.raw().await;
    (node, stream)
}

#[tokio::test]
async fn queued_commands_run_in_order_at_exec() {
    let (_node, mut s) = node().await;
    check(
        &mut s,
        &["MULTI", "SET a 1", "INCR a", "GET a", "EXEC"],
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n:2\r\n$1\r\n2\r\n",
    )
    .await;
    // An empty transaction, and UNWATCH, which is queued as Redis queues it.
    check(
        &mut s,
        &["MULTI", "EXEC", "MULTI", "UNWATCH", "PING", "EXEC"],
        "+OK\r\n*0\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n+PONG\r\n",
    )
    .await;
}

/// The `flags=` and `multi=` fields of the client named `txn` in `CLIENT LIST`.
async fn listed(other: &mut redis::aio::MultiplexedConnection) -> (String, String) {
    let list: String = query(other, &["CLIENT", "LIST"]).await;
    let line = list
        .lines()
        .find(|l| l.contains(" name=txn "))
        .unwrap_or_else(|| panic!("the client named txn in {list}"));
    let field = |name: &str| {
        line.split(' ')
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {line}"))
            .to_owned()
    };
    (field("flags="), field("multi="))
}

/// `CLIENT LIST` shows a transaction as Redis does: flag `x` and `multi=` the commands queued,
/// `multi=-1` outside one.
#[tokio::test]
async fn client_list_shows_the_queued_commands() {
    let (node, mut s) = node().await;
    let mut other = node.client().await;
    let outside = ("N".to_owned(), "-1".to_owned());
    check(&mut s, &["CLIENT SETNAME txn"], "+OK\r\n").await;
    assert_eq!(listed(&mut other).await, outside);
    check(
        &mut s,
        &["MULTI", "SET a 1", "GET a"],
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n",
    )
    .await;
    assert_eq!(listed(&mut other).await, ("x".into(), "2".into()));
    check(&mut s, &["EXEC"], "*2\r\n+OK\r\n$1\r\n1\r\n").await;
    assert_eq!(listed(&mut other).await, outside);
    // DISCARD ends it too; RESET as well (and clears the name, so it goes last).
    check(
        &mut s,
        &["MULTI", "PING", "DISCARD"],
        "+OK\r\n+QUEUED\r\n+OK\r\n",
    )
    .await;
    assert_eq!(listed(&mut other).await, outside);
    check(&mut s, &["MULTI", "PING"], "+OK\r\n+QUEUED\r\n").await;
    assert_eq!(listed(&mut other).await, ("x".into(), "1".into()));
    check(&mut s, &["RESET"], "+RESET\r\n").await;
    let list: String = query(&mut other, &["CLIENT", "LIST"]).await;
    assert!(!list.contains("flags=x"), "{list}");
    assert!(list.lines().all(|l| l.contains(" multi=-1 ")), "{list}");
}

#[tokio::test]
async fn misuse_has_redis_words() {
    let (_node, mut s) = node().await;
    check(&mut s, &["EXEC"], "-ERR EXEC without MULTI\r\n").await;
    check(&mut s, &["DISCARD"], "-ERR DISCARD without MULTI\r\n").await;
    check(
        &mut s,
        &["EXEC x"],
        "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n",
    )
    .await;
    check(
        &mut s,
        &["WATCH", "UNWATCH x", "MULTI x", "DISCARD x"],
        "-ERR wrong number of arguments for 'watch' command\r\n\
         -ERR wrong number of arguments for 'unwatch' command\r\n\
         -ERR wrong number of arguments for 'multi' command\r\n\
         -ERR wrong number of arguments for 'discard' command\r\n",
    )
    .await;
    // Neither a nested MULTI nor WATCH inside MULTI spoils the transaction.
    check(
        &mut s,
        &["MULTI", "MULTI", "WATCH a", "SET a 1", "EXEC"],
        "+OK\r\n-ERR MULTI calls can not be nested\r\n-ERR WATCH inside MULTI is not allowed\r\n\
         +QUEUED\r\n*1\r\n+OK\r\n",
    )
    .await;
}

#[tokio::test]
async fn an_error_when_queueing_aborts_the_transaction() {
    let (_node, mut s) = node().await;
    check(
        &mut s,
        &["MULTI", "SET a 1", "NOPE x", "GET", "EXEC", "GET a"],
        "+OK\r\n+QUEUED\r\n\
         -ERR unknown command 'NOPE', with args beginning with: 'x' \r\n\
         -ERR wrong number of arguments for 'get' command\r\n\
         -EXECABORT Transaction discarded because of previous errors.\r\n\
         $-1\r\n",
    )
    .await;
    // The transaction is over: EXEC again has no MULTI.
    check(&mut s, &["EXEC"], "-ERR EXEC without MULTI\r\n").await;
}

#[tokio::test]
async fn an_error_when_running_is_one_element() {
    let (_node, mut s) = node().await;
    check(
        &mut s,
        &[
            "MULTI",
            "SET a x",
            "LPUSH a y",
            "INCR a",
            "SET b 2",
            "EXEC",
            "GET b",
        ],
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*4\r\n+OK\r\n\
         -WRONGTYPE Operation against a key holding the wrong kind of value\r\n\
         -ERR value is not an integer or out of range\r\n+OK\r\n$1\r\n2\r\n",
    )
    .await;
}

#[tokio::test]
async fn discard_drops_the_queue_and_the_watches() {
    let (node, mut s) = node().await;
    let mut other = node.client().await;
    check(
        &mut s,
        &["WATCH w", "MULTI", "SET a 1", "DISCARD", "GET a"],
        "+OK\r\n+OK\r\n+QUEUED\r\n+OK\r\n$-1\r\n",
    )
    .await;
    // `w` is no longer watched: a change to it does not abort the next transaction.
    query::<()>(&mut other, &["SET", "w", "changed"]).await;
    check(
        &mut s,
        &["MULTI", "SET a 1", "EXEC"],
        "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n",
    )
    .await;
}

#[tokio::test]
async fn watch_aborts_exec_when_another_client_writes() {
    let (node, mut s) = node().await;
    let mut other = node.client().await;
    query::<()>(&mut other, &["SET", "w", "1"]).await;
    check(
        &mut s,
        &["WATCH w", "MULTI", "SET w mine", "SET x 1"],
        "+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n",
    )
    .await;
    query::<i64>(&mut other, &["INCR", "w"]).await;
    check(&mut s, &["EXEC"], "*-1\r\n").await;
    assert_eq!(query::<String>(&mut other, &["GET", "w"]).await, "2");
    assert_eq!(
        query::<Option<String>>(&mut other, &["GET", "x"]).await,
        None
    );

    // Unchanged, or changed and then UNWATCHed: EXEC runs.
    check(
        &mut s,
        &["WATCH w", "MULTI", "SET x 1", "EXEC"],
        "+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n",
    )
    .await;
    check(&mut s, &["WATCH w"], "+OK\r\n").await;
    query::<()>(&mut other, &["DEL", "w"]).await;
    check(
        &mut s,
        &["UNWATCH", "MULTI", "SET x 2", "EXEC"],
        "+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n",
    )
    .await;

    // A key watched while absent counts when it is created; deleting a missing key does not.
    check(&mut s, &["WATCH absent"], "+OK\r\n").await;
    query::<i64>(&mut other, &["DEL", "absent"]).await;
    check(
        &mut s,
        &["MULTI", "PING", "EXEC"],
        "+OK\r\n+QUEUED\r\n*1\r\n+PONG\r\n",
    )
    .await;
    check(&mut s, &["WATCH absent"], "+OK\r\n").await;
    query::<()>(&mut other, &["SET", "absent", "now"]).await;
    check(
        &mut s,
        &["MULTI", "PING", "EXEC"],
        "+OK\r\n+QUEUED\r\n*-1\r\n",
    )
    .await;

    // A flush counts for a key that was there.
    query::<()>(&mut other, &["SET", "w", "1"]).await;
    check(&mut s, &["WATCH w x"], "+OK\r\n").await;
    query::<()>(&mut other, &["FLUSHALL"]).await;
    check(
        &mut s,
        &["MULTI", "PING", "EXEC"],
        "+OK\r\n+QUEUED\r\n*-1\r\n",
    )
    .await;
}

#[tokio::test]
async fn watch_counts_the_clients_own_writes() {
    let (_node, mut s) = node().await;
    check(
        &mut s,
        &[
            "SET w 1",
            "WATCH w",
            "EXPIRE w 100",
            "MULTI",
            "GET w",
            "EXEC",
        ],
        "+OK\r\n+OK\r\n:1\r\n+OK\r\n+QUEUED\r\n*-1\r\n",
    )
    .await;
    check(
        &mut s,
        &["WATCH w", "SET w 2", "MULTI", "GET w", "EXEC"],
        "+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n",
    )
    .await;
}

#[tokio::test]
async fn watch_counts_expiry() {
    let node = start_manual(test_config()).await;
    let mut s = node.raw().await;
    check(&mut s, &["SET w 1 PX 100", "WATCH w"], "+OK\r\n+OK\r\n").await;
    node.advance_ms(101);
    check(
        &mut s,
        &["MULTI", "SET x 1", "EXEC"],
        "+OK\r\n+QUEUED\r\n*-1\r\n",
    )
    .await;

    // Already expired when watched: its deletion changes nothing.
    check(&mut s, &["SET w 1 PX 100"], "+OK\r\n").await;
    node.advance_ms(101);
    check(
        &mut s,
        &["WATCH w", "GET w", "MULTI", "SET x 2", "EXEC", "GET x"],
        "+OK\r\n$-1\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n$1\r\n2\r\n",
    )
    .await;
}

#[tokio::test]
async fn resp3_aborted_exec_is_null() {
    let (node, mut s) = node().await;
    let mut other = node.client().await;
    let hello = exchange(&mut s, &resp(&["HELLO 3"]), 1).await;
    assert!(hello.starts_with(b"%"), "HELLO 3 answers a map");
    // Read the rest of HELLO's map away with a marker after it.
    common::read_until(&mut s, b"*0\r\n").await;
    check(
        &mut s,
        &["WATCH w", "MULTI", "PING"],
        "+OK\r\n+OK\r\n+QUEUED\r\n",
    )
    .await;
    query::<()>(&mut other, &["SET", "w", "1"]).await;
    check(&mut s, &["EXEC"], "_\r\n").await;
}

#[tokio::test]
async fn blocking_commands_do_not_block_inside_exec() {
    let (_node, mut s) = node().await;
    check(
        &mut s,
        &[
            "MULTI",
            "BLPOP l 0",
            "BLMOVE l m LEFT LEFT 0",
            "BRPOPLPUSH l m 0",
            "BLMPOP 0 1 l LEFT",
            "BLPOP l -1",
            "RPUSH l a",
            "BLPOP l 0",
            "EXEC",
        ],
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
         *7\r\n*-1\r\n$-1\r\n$-1\r\n*-1\r\n-ERR timeout is negative\r\n:1\r\n\
         *2\r\n$1\r\nl\r\n$1\r\na\r\n",
    )
    .await;
}

#[tokio::test]
async fn refused_commands_abort_when_queued() {
    let (node, mut s) = node().await;
    let mut admin = node.client().await;
    query::<()>(
        &mut admin,
        &[
            "ACL", "SETUSER", "u", "on", "nopass", "~a*", "+@all", "-get",
        ],
    )
    .await;
    // (The NOPERM wording is the ACL module's, as in Redis 7.2.)
    let got = exchange(
        &mut s,
        &resp(&[
            "AUTH u x", "MULTI", "GET a", "SET b 1", "SET a 1", "EXEC", "EXISTS a",
        ]),
        1,
    )
    .await;
    let mut got = String::from_utf8_lossy(&got).into_owned();
    while !got.ends_with(":0\r\n") && got.lines().count() < 7 {
        let more = common::read_until(&mut s, b"\r\n").await;
        assert!(!more.is_empty(), "the node answers: {got:?}");
        got.push_str(&String::from_utf8_lossy(&more));
    }
    let lines: Vec<&str> = got.split("\r\n").collect();
    assert_eq!(lines[..2], ["+OK", "+OK"], "{got:?}");
    assert!(
        lines[2].starts_with("-NOPERM ") && lines[2].contains("'get'"),
        "{got:?}"
    );
    assert!(lines[3].starts_with("-NOPERM "), "{got:?}");
    assert_eq!(
        lines[4..],
        [
            "+QUEUED",
            "-EXECABORT Transaction discarded because of previous errors.",
            ":0",
            ""
        ],
        "{got:?}"
    );
}

/// Pipelined transactions in one write: EXEC gives up its batch's share of the gate before it
/// takes the gate, and what follows it in the batch still runs.
#[tokio::test]
async fn pipelined_transactions_in_one_batch() {
    let (_node, mut s) = node().await;
    let mut commands = Vec::new();
    let mut expected = String::new();
    for _ in 0..50 {
        commands.extend(["MULTI", "INCR n", "INCR n", "EXEC", "PING"]);
    }
    for i in 0..50 {
        expected.push_str(&format!(
            "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:{}\r\n:{}\r\n+PONG\r\n",
            2 * i + 1,
            2 * i + 2
        ));
    }
    check(&mut s, &commands, &expected).await;
}

/// Readers on other connections never see the state between the two INCRs of a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_is_atomic_for_other_clients() {
    let node = start(test_config()).await;
    let mut writer = node.client().await;
    query::<()>(&mut writer, &["SET", "x", "0"]).await;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let done = Arc::clone(&done);
            let url = node.url();
            tokio::spawn(async move {
                let mut con = redis::Client::open(url)
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                let mut reads = 0;
                while !done.load(Ordering::Relaxed)
                    && reads < 20_000
                    && tokio::time::Instant::now() < deadline
                {
                    let x: i64 = query(&mut con, &["GET", "x"]).await;
                    assert_eq!(x % 2, 0, "a reader saw half a transaction");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for _ in 0..300 {
        let (a, b): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg("x")
            .cmd("INCR")
            .arg("x")
            .query_async(&mut writer)
            .await
            .unwrap();
        assert_eq!(a + 1, b);
    }
    done.store(true, Ordering::Relaxed);
    let mut total = 0;
    for r in readers {
        total += r.await.expect("reader");
    }
    assert!(total > 0, "the readers read");
    assert_eq!(query::<i64>(&mut writer, &["GET", "x"]).await, 600);
}

/// Optimistic locking under contention: clients increment one counter with WATCH, GET, then
/// MULTI/SET/EXEC, retrying when EXEC answers null. Every increment that EXEC accepted is
/// there, none twice, and some transactions were aborted by the concurrent writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_with_concurrent_writers() {
    let node = start(test_config()).await;
    let clients = 4;
    let per_client = 50;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let url = node.url();
            tokio::spawn(async move {
                // One connection per client: WATCH belongs to the connection.
                let mut con = redis::Client::open(url)
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap();
                let mut aborted = 0u32;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                for _ in 0..per_client {
                    loop {
                        assert!(tokio::time::Instant::now() < deadline, "bounded in time");
                        query::<()>(&mut con, &["WATCH", "counter"]).await;
                        let n: Option<i64> = query(&mut con, &["GET", "counter"]).await;
                        let next = n.unwrap_or(0) + 1;
                        let done: Option<(String,)> = redis::pipe()
                            .atomic()
                            .cmd("SET")
                            .arg("counter")
                            .arg(next)
                            .query_async(&mut con)
                            .await
                            .unwrap();
                        if done.is_some() {
                            break;
                        }
                        aborted += 1;
                        assert!(aborted < 100_000, "bounded in count");
                    }
                }
                aborted
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
    let mut con = node.client().await;
    assert_eq!(
        query::<i64>(&mut con, &["GET", "counter"]).await,
        clients * per_client
    );
}

#[tokio::test]
async fn redis_crate_atomic_pipeline_and_null_exec() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut other = node.client().await;
    let (a, b): (String, i64) = redis::pipe()
        .atomic()
        .set("k", "v")
        .incr("n", 5)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((a.as_str(), b), ("OK", 5));
    query::<()>(&mut con, &["WATCH", "k"]).await;
    query::<()>(&mut other, &["SET", "k", "w"]).await;
    let aborted: Value = redis::pipe()
        .atomic()
        .set("k", "mine")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(aborted, Value::Nil);
    assert_eq!(query::<String>(&mut con, &["GET", "k"]).await, "w");
}

#[tokio::test]
async fn cluster_keys_of_a_transaction_share_a_slot() {
    let node = start(common::members::enabled()).await;
    let mut s = node.raw().await;
    check(
        &mut s,
        &[
            "MULTI",
            "SET {t}a 1",
            "SET {t}b 2",
            "SET other 3",
            "EXEC",
            "EXISTS {t}a",
        ],
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n\
         -CROSSSLOT Keys in request don't hash to the same slot\r\n\
         -EXECABORT Transaction discarded because of previous errors.\r\n:0\r\n",
    )
    .await;
    check(
        &mut s,
        &["MULTI", "SET {t}a 1", "MGET {t}a {t}b", "EXEC"],
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n*2\r\n$1\r\n1\r\n$-1\r\n",
    )
    .await;
}

/// A transaction queued on a node whose key's slot then moves to a node that joins: EXEC
/// answers the redirect for the whole transaction and runs nothing, as Redis does; queueing a
/// key the node does not serve answers the redirect and aborts the transaction.
#[tokio::test]
async fn cluster_redirects_when_queueing_and_when_the_slot_moved_before_exec() {
    use common::members::{member, reach_epoch, settle};
    let (control, nodes) = common::members::cluster(1).await;
    let a = &nodes[0];
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let mut conns = Vec::new();
    for key in &keys {
        let mut s = a.raw().await;
        check(
            &mut s,
            &["MULTI", &format!("SET {key} 1")],
            "+OK\r\n+QUEUED\r\n",
        )
        .await;
        conns.push(s);
    }
    let (b, me) = member(&control, test_config()).await;
    control
        .apply(&dcache_cluster::Change::Join(me))
        .expect("joins");
    settle(&control);
    let t = control.subscribe().borrow().clone();
    reach_epoch([a, &b], t.epoch).await;
    let mut moved = Vec::new();
    for (key, s) in keys.iter().zip(&mut conns) {
        let slot = dcache_placement::slot(key.as_bytes());
        if t.owner(slot).expect("served").port == b.addr.port() {
            let redirect = format!("-MOVED {slot} 127.0.0.1:{}\r\n", b.addr.port());
            check(
                s,
                &["EXEC", "EXEC"],
                &format!("{redirect}-ERR EXEC without MULTI\r\n"),
            )
            .await;
            moved.push(key.clone());
        } else {
            check(s, &["EXEC"], "*1\r\n+OK\r\n").await;
        }
    }
    assert!(
        !moved.is_empty() && moved.len() < keys.len(),
        "some keys moved: {moved:?}"
    );
    let mut on_b = b.client().await;
    for key in &moved {
        assert_eq!(query::<i64>(&mut on_b, &["EXISTS", key]).await, 0, "{key}");
    }
    let key = &moved[0];
    let slot = dcache_placement::slot(key.as_bytes());
    let mut s = a.raw().await;
    check(
        &mut s,
        &["MULTI", &format!("SET {key} 1"), "EXEC"],
        &format!(
            "+OK\r\n-MOVED {slot} 127.0.0.1:{}\r\n\
             -EXECABORT Transaction discarded because of previous errors.\r\n",
            b.addr.port()
        ),
    )
    .await;
}
