//! A client that writes before it reads: the node keeps reading while replies wait, bounds what
//! waits with `client-output-buffer-limit`, and closes idle clients after `timeout` seconds.

mod common;

use std::time::Duration;

use common::{T0, cmd, is_closed, start, start_manual, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GET_K: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";

/// Reads from `stream` until the peer closes or `limit` bytes arrived, within ten seconds
/// without progress.
async fn read_all(stream: &mut tokio::net::TcpStream, limit: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < limit {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    got
}

/// A node with `limit` as its client-output-buffer-limit and a 10 KB value at `k`.
async fn node_with_output_limit(
    limit: &str,
) -> (common::TestNode, redis::aio::MultiplexedConnection) {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    cmd(
        &mut con,
        &["CONFIG", "SET", "client-output-buffer-limit", limit],
    )
    .await
    .unwrap();
    cmd(&mut con, &["SET", "k", &"v".repeat(10_000)])
        .await
        .unwrap();
    (node, con)
}

#[tokio::test]
async fn a_client_that_writes_a_whole_pipeline_before_reading_gets_every_reply() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let value = "v".repeat(100);
    cmd(&mut con, &["SET", "k", &value]).await.unwrap();

    // 200,000 GETs (4.4 MB) whose replies (21 MB) are far more than the socket buffers hold:
    // written in full before a single byte is read.
    const N: usize = 200_000;
    let mut stream = node.raw().await;
    let requests = GET_K.repeat(N);
    tokio::time::timeout(Duration::from_secs(60), stream.write_all(&requests))
        .await
        .expect("the node keeps reading while its replies wait")
        .unwrap();
    let reply = format!("$100\r\n{value}\r\n").into_bytes();
    let got = read_all(&mut stream, N * reply.len()).await;
    assert_eq!(got.len(), N * reply.len());
    assert!(got.chunks(reply.len()).all(|r| r == reply));
}

#[tokio::test]
async fn a_client_over_the_hard_output_limit_is_disconnected_and_others_keep_working() {
    let (node, mut con) = node_with_output_limit("normal 1mb 0 0").await;

    // 2,000 replies of 10 KB (20 MB) asked for by a client that reads nothing.
    let mut greedy = node.raw().await;
    greedy.write_all(&GET_K.repeat(2_000)).await.unwrap();
    assert!(
        is_closed(&mut greedy).await,
        "the greedy client was not closed"
    );

    // Everybody else is served, and the node counts no client beyond the one it kept.
    let pong = cmd(&mut con, &["PING"]).await.unwrap();
    assert_eq!(pong, redis::Value::SimpleString("PONG".into()));
    let list = cmd(&mut con, &["CLIENT", "LIST"]).await.unwrap();
    let redis::Value::BulkString(list) = list else {
        panic!("CLIENT LIST gave {list:?}");
    };
    assert_eq!(String::from_utf8(list).unwrap().lines().count(), 1);
}

#[tokio::test]
async fn the_soft_output_limit_disconnects_a_client_over_it_for_its_seconds() {
    // Soft limit 1 MB for 0 seconds: over it at all is too long.
    let (node, mut con) = node_with_output_limit("normal 0 1mb 0").await;
    let got = cmd(&mut con, &["CONFIG", "GET", "client-output-buffer-limit"])
        .await
        .unwrap();
    assert_eq!(
        got,
        redis::Value::Array(vec![
            redis::Value::BulkString(b"client-output-buffer-limit".to_vec()),
            redis::Value::BulkString(b"normal 0 1mb 0 pubsub 32mb 8mb 60".to_vec()),
        ])
    );
    let mut greedy = node.raw().await;
    greedy.write_all(&GET_K.repeat(2_000)).await.unwrap();
    assert!(is_closed(&mut greedy).await);

    // A client that reads what it asks for is never near the limit.
    let mut polite = node.raw().await;
    for _ in 0..20 {
        polite.write_all(&GET_K.repeat(50)).await.unwrap();
        let got = read_all(&mut polite, 50 * 10_010).await;
        assert_eq!(got.len(), 50 * 10_010);
    }
}

#[tokio::test]
async fn output_limits_are_checked_when_set() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    for bad in [
        "replica 32mb 8mb 60",
        "pubsub 1kb 0 0",
        "normal 1mb",
        "normal 1xb 0 0",
        "normal 1 2 x",
    ] {
        let err = cmd(
            &mut con,
            &["CONFIG", "SET", "client-output-buffer-limit", bad],
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("client-output-buffer-limit"),
            "{bad}: {err}"
        );
    }
}

#[tokio::test]
async fn an_idle_client_is_closed_after_timeout_seconds() {
    let node = start_manual(test_config()).await;
    let mut idle = node.raw().await;
    idle.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(common::read_n(&mut idle, 7).await, b"+PONG\r\n");
    let mut con = node.client().await;
    cmd(&mut con, &["CONFIG", "SET", "timeout", "2"])
        .await
        .unwrap();

    // Two seconds idle is not more than two.
    node.advance_ms(2_000);
    node.shared.wait_background_cycles(2).await;
    idle.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(common::read_n(&mut idle, 7).await, b"+PONG\r\n");

    node.advance_ms(3_000);
    assert!(is_closed(&mut idle).await, "idle client kept");
    assert!(node.shared.clock.now_ms() >= T0 + 5_000);

    // timeout 0 keeps idle clients for ever.
    let mut con = node.client().await;
    cmd(&mut con, &["CONFIG", "SET", "timeout", "0"])
        .await
        .unwrap();
    let mut kept = node.raw().await;
    node.advance_ms(1_000_000);
    node.shared.wait_background_cycles(2).await;
    kept.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(common::read_n(&mut kept, 7).await, b"+PONG\r\n");
}

#[tokio::test]
async fn a_client_that_closes_after_its_pipeline_still_has_every_request_run_and_answered() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    // A 2 MB reply first, so that the node has more output waiting than it executes ahead of.
    let big = "v".repeat(2 << 20);
    cmd(&mut con, &["SET", "big", &big]).await.unwrap();
    let mut stream = node.raw().await;
    stream
        .write_all(b"GET big\r\nSET a 1\r\nSET b 2\r\n")
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let expected = format!("${}\r\n{big}\r\n+OK\r\n+OK\r\n", big.len()).into_bytes();
    let got = read_all(&mut stream, expected.len() + 1).await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "replies differ");
    let b = cmd(&mut con, &["GET", "b"]).await.unwrap();
    assert_eq!(b, redis::Value::BulkString(b"2".to_vec()));
}

#[tokio::test]
async fn a_client_that_kills_itself_gets_its_reply_before_the_close() {
    let node = start(test_config()).await;
    let mut stream = node.raw().await;
    stream.write_all(b"CLIENT ID\r\n").await.unwrap();
    let id = String::from_utf8(common::read_until(&mut stream, b"\r\n").await).unwrap();
    let id = id.trim().trim_start_matches(':');
    let kill = format!("CLIENT KILL ID {id} SKIPME no\r\nPING\r\n");
    stream.write_all(kill.as_bytes()).await.unwrap();
    // The kill's count, then nothing more: the PING behind it is not run.
    let got = read_all(&mut stream, 1 << 10).await;
    assert_eq!(got, b":1\r\n");
}
