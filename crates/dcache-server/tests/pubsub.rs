//! Pub/sub and the per-client push mailbox it is built on: RESP2 and RESP3 flows, the
//! subscribed mode's refusals, PUBSUB's counts, a slow subscriber closed at its output limit,
//! and delivery across a cluster.

mod common;

use common::{exchange, is_closed, read_n, read_until, start, test_config};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A request as a client encodes it.
fn req(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    dcache_protocol::reply::encode_command(args.iter().copied(), &mut out);
    out
}

async fn client_id(stream: &mut TcpStream) -> u64 {
    let reply = exchange(stream, &req(&[b"CLIENT", b"ID"]), 4).await;
    let reply = String::from_utf8(read_rest(stream, reply).await).unwrap();
    reply.trim_start_matches(':').trim_end().parse().unwrap()
}

/// Completes a reply that `read_n` may have cut short (the line ends with CRLF).
async fn read_rest(stream: &mut TcpStream, mut got: Vec<u8>) -> Vec<u8> {
    if !got.ends_with(b"\r\n") {
        got.extend(read_until(stream, b"\r\n").await);
    }
    got
}

#[tokio::test]
async fn mailbox_delivers_a_push_in_the_clients_protocol() {
    let node = start(test_config()).await;
    let mut a = node.raw().await;
    let id = client_id(&mut a).await;
    assert!(node.shared.push_to(id, |w| {
        w.push(2);
        w.bulk(b"invalidate");
        w.bulk(b"k");
    }));
    let expected = b"*2\r\n$10\r\ninvalidate\r\n$1\r\nk\r\n";
    assert_eq!(read_n(&mut a, expected.len()).await, expected);

    // RESP3: a push frame, after the reply to the request in hand.
    a.write_all(&req(&[b"HELLO", b"3"])).await.unwrap();
    let hello = read_until(&mut a, b"*0\r\n").await;
    assert_eq!(hello[0], b'%');
    a.write_all(&req(&[b"PING"])).await.unwrap();
    assert_eq!(read_n(&mut a, 7).await, b"+PONG\r\n");
    assert!(node.shared.push_to(id, |w| {
        w.push(1);
        w.bulk(b"x");
    }));
    assert_eq!(read_n(&mut a, 11).await, b">1\r\n$1\r\nx\r\n");
    // Nobody has id 0.
    assert!(!node.shared.push_to(0, |w| w.push(0)));
}

#[tokio::test]
async fn a_push_past_the_output_limit_closes_the_client_and_others_go_on() {
    let node = start(test_config()).await;
    let mut admin = node.raw().await;
    let ok = exchange(
        &mut admin,
        &req(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"normal 1mb 0 0",
        ]),
        5,
    )
    .await;
    assert_eq!(ok, b"+OK\r\n");
    let mut victim = node.raw().await;
    let id = client_id(&mut victim).await;
    let big = vec![b'x'; 2 << 20];
    assert!(!node.shared.push_to(id, |w| {
        w.push(1);
        w.bulk(&big);
    }));
    assert!(is_closed(&mut victim).await);
    assert_eq!(
        exchange(&mut admin, &req(&[b"PING"]), 7).await,
        b"+PONG\r\n"
    );
}
