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

/// Sends `args` and reads exactly `expected.len()` bytes, which must be `expected`.
async fn check(stream: &mut TcpStream, args: &[&[u8]], expected: &[u8]) {
    let got = exchange(stream, &req(args), expected.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "{:?}",
        args.iter()
            .map(|a| String::from_utf8_lossy(a))
            .collect::<Vec<_>>()
    );
}

/// Reads exactly `expected.len()` bytes without sending anything.
async fn expect(stream: &mut TcpStream, expected: &[u8]) {
    let got = read_n(stream, expected.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

async fn hello3(stream: &mut TcpStream) {
    stream.write_all(&req(&[b"HELLO", b"3"])).await.unwrap();
    read_until(stream, b"*0\r\n").await;
}

#[tokio::test]
async fn resp2_subscribers_receive_messages_and_pattern_messages() {
    let node = start(test_config()).await;
    let mut sub = node.raw().await;
    let mut publisher = node.raw().await;
    check(
        &mut sub,
        &[b"SUBSCRIBE", b"news", b"sport"],
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n",
    )
    .await;
    check(
        &mut sub,
        &[b"PSUBSCRIBE", b"n?w*"],
        b"*3\r\n$10\r\npsubscribe\r\n$4\r\nn?w*\r\n:3\r\n",
    )
    .await;
    // One receiver by channel, one by pattern.
    check(&mut publisher, &[b"PUBLISH", b"news", b"hi"], b":2\r\n").await;
    expect(
        &mut sub,
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n*4\r\n$8\r\npmessage\r\n$4\r\nn?w*\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
    )
    .await;
    check(&mut publisher, &[b"PUBLISH", b"other", b"x"], b":0\r\n").await;
    check(&mut publisher, &[b"PUBLISH", b"sport", b"goal"], b":1\r\n").await;
    expect(
        &mut sub,
        b"*3\r\n$7\r\nmessage\r\n$5\r\nsport\r\n$4\r\ngoal\r\n",
    )
    .await;
    // The count after each unsubscribe is what is left, patterns included.
    check(
        &mut sub,
        &[b"UNSUBSCRIBE", b"sport", b"never"],
        b"*3\r\n$11\r\nunsubscribe\r\n$5\r\nsport\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$5\r\nnever\r\n:2\r\n",
    )
    .await;
    check(
        &mut sub,
        &[b"PUNSUBSCRIBE"],
        b"*3\r\n$12\r\npunsubscribe\r\n$4\r\nn?w*\r\n:1\r\n",
    )
    .await;
    check(
        &mut sub,
        &[b"UNSUBSCRIBE"],
        b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n",
    )
    .await;
    // Subscribed to nothing: one reply with a null name.
    check(
        &mut sub,
        &[b"UNSUBSCRIBE"],
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
    )
    .await;
    // Out of subscribed mode: ordinary commands again.
    check(&mut sub, &[b"PING"], b"+PONG\r\n").await;
    check(&mut publisher, &[b"PUBLISH", b"news", b"late"], b":0\r\n").await;
}

#[tokio::test]
async fn a_subscribed_resp2_client_may_run_only_the_subscription_commands() {
    let node = start(test_config()).await;
    let mut sub = node.raw().await;
    check(
        &mut sub,
        &[b"SSUBSCRIBE", b"s"],
        b"*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n",
    )
    .await;
    for (args, name) in [
        (&[&b"GET"[..], b"k"][..], "get"),
        (&[&b"client"[..], b"id"][..], "client|id"),
        (&[&b"PUBLISH"[..], b"s", b"m"][..], "publish"),
        (&[&b"HELLO"[..], b"3"][..], "hello"),
        // A container without its subcommand goes by its own name.
        (&[&b"COMMAND"[..]][..], "command"),
    ] {
        let expected = format!(
            "-ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
        );
        check(&mut sub, args, expected.as_bytes()).await;
    }
    check(&mut sub, &[b"PING"], b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;
    check(
        &mut sub,
        &[b"PING", b"hi"],
        b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n",
    )
    .await;
    // SSUBSCRIBE's count is of shard channels; SUBSCRIBE's of channels and patterns.
    check(
        &mut sub,
        &[b"SUBSCRIBE", b"c"],
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n",
    )
    .await;
    check(
        &mut sub,
        &[b"SUNSUBSCRIBE"],
        b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n",
    )
    .await;
    check(&mut sub, &[b"QUIT"], b"+OK\r\n").await;
    assert!(is_closed(&mut sub).await);
}

#[tokio::test]
async fn resp3_subscribers_get_pushes_and_may_run_any_command() {
    let node = start(test_config()).await;
    let mut sub = node.raw().await;
    hello3(&mut sub).await;
    check(
        &mut sub,
        &[b"UNSUBSCRIBE"],
        b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n",
    )
    .await;
    check(
        &mut sub,
        &[b"SUBSCRIBE", b"ch"],
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    )
    .await;
    check(&mut sub, &[b"GET", b"nothing"], b"_\r\n").await;
    check(&mut sub, &[b"PING"], b"+PONG\r\n").await;
    // A message to the publisher itself comes before PUBLISH's reply, as in Redis.
    check(
        &mut sub,
        &[b"PUBLISH", b"ch", b"m"],
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n:1\r\n",
    )
    .await;
    check(
        &mut sub,
        &[b"SSUBSCRIBE", b"ch"],
        b">3\r\n$10\r\nssubscribe\r\n$2\r\nch\r\n:1\r\n",
    )
    .await;
    let mut publisher = node.raw().await;
    check(&mut publisher, &[b"SPUBLISH", b"ch", b"x"], b":1\r\n").await;
    expect(&mut sub, b">3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$1\r\nx\r\n").await;
    // Back to RESP2 while subscribed: the subscribed mode's rules apply again.
    sub.write_all(&req(&[b"HELLO", b"2"])).await.unwrap();
    read_until(&mut sub, b"*0\r\n").await;
    check(
        &mut sub,
        &[b"GET", b"k"],
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    )
    .await;
    check(&mut publisher, &[b"PUBLISH", b"ch", b"y"], b":1\r\n").await;
    expect(&mut sub, b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\ny\r\n").await;
}

#[tokio::test]
async fn pubsub_counts_channels_patterns_and_subscribers() {
    let node = start(test_config()).await;
    let mut a = node.raw().await;
    let mut b = node.raw().await;
    let mut c = node.client().await;
    check(
        &mut a,
        &[b"SUBSCRIBE", b"one", b"two"],
        b"*3\r\n$9\r\nsubscribe\r\n$3\r\none\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$3\r\ntwo\r\n:2\r\n",
    )
    .await;
    check(
        &mut b,
        &[b"SUBSCRIBE", b"two"],
        b"*3\r\n$9\r\nsubscribe\r\n$3\r\ntwo\r\n:1\r\n",
    )
    .await;
    check(
        &mut b,
        &[b"PSUBSCRIBE", b"t*"],
        b"*3\r\n$10\r\npsubscribe\r\n$2\r\nt*\r\n:2\r\n",
    )
    .await;
    check(
        &mut a,
        &[b"PSUBSCRIBE", b"t*"],
        b"*3\r\n$10\r\npsubscribe\r\n$2\r\nt*\r\n:3\r\n",
    )
    .await;
    check(
        &mut a,
        &[b"SSUBSCRIBE", b"{s}1"],
        b"*3\r\n$10\r\nssubscribe\r\n$4\r\n{s}1\r\n:1\r\n",
    )
    .await;
    let mut channels: Vec<String> = common::query(&mut c, &["PUBSUB", "CHANNELS"]).await;
    channels.sort();
    assert_eq!(channels, ["one", "two"]);
    let some: Vec<String> = common::query(&mut c, &["PUBSUB", "CHANNELS", "o*"]).await;
    assert_eq!(some, ["one"]);
    let numsub: Vec<redis::Value> =
        common::query(&mut c, &["PUBSUB", "NUMSUB", "one", "two", "three"]).await;
    assert_eq!(
        numsub,
        [
            redis::Value::BulkString(b"one".to_vec()),
            redis::Value::Int(1),
            redis::Value::BulkString(b"two".to_vec()),
            redis::Value::Int(2),
            redis::Value::BulkString(b"three".to_vec()),
            redis::Value::Int(0),
        ]
    );
    // Two clients on one pattern: one pattern.
    assert_eq!(common::query::<i64>(&mut c, &["PUBSUB", "NUMPAT"]).await, 1);
    let shard: Vec<String> = common::query(&mut c, &["PUBSUB", "SHARDCHANNELS"]).await;
    assert_eq!(shard, ["{s}1"]);
    let shard_numsub: Vec<redis::Value> =
        common::query(&mut c, &["PUBSUB", "SHARDNUMSUB", "{s}1"]).await;
    assert_eq!(shard_numsub.get(1), Some(&redis::Value::Int(1)));
    assert_eq!(
        common::query::<i64>(&mut c, &["PUBLISH", "two", "m"]).await,
        4
    );

    let list: String = common::query(&mut c, &["CLIENT", "LIST"]).await;
    assert!(
        list.lines()
            .any(|l| l.contains(" flags=P ") && l.contains(" sub=2 psub=1 ssub=1 ")),
        "{list}"
    );
    // By type: the two subscribers are pubsub clients, the one asking is a normal one.
    let pubsub: String = common::query(&mut c, &["CLIENT", "LIST", "TYPE", "pubsub"]).await;
    assert_eq!(pubsub.lines().count(), 2, "{pubsub}");
    assert!(pubsub.lines().all(|l| l.contains(" flags=P ")), "{pubsub}");
    let normal: String = common::query(&mut c, &["CLIENT", "LIST", "TYPE", "normal"]).await;
    assert_eq!(normal.lines().count(), 1, "{normal}");
    let info: String = common::query(&mut c, &["INFO", "stats"]).await;
    for field in [
        "pubsub_channels:2\r\n",
        "pubsub_patterns:1\r\n",
        "pubsubshard_channels:1\r\n",
    ] {
        assert!(info.contains(field), "{field}: {info}");
    }
    assert_eq!(
        common::error_text(&mut c, &["PUBSUB", "NUMPAT", "x"]).await,
        "ERR wrong number of arguments for 'pubsub|numpat' command"
    );
    assert_eq!(
        common::error_text(&mut c, &["PUBSUB", "CHANNELS", "a", "b"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP."
    );
    assert_eq!(
        common::error_text(&mut c, &["PUBSUB", "FOO"]).await,
        "ERR unknown subcommand 'FOO'. Try PUBSUB HELP."
    );

    // A subscriber that goes away leaves no subscription behind.
    drop(a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let numsub: Vec<redis::Value> = common::query(&mut c, &["PUBSUB", "NUMSUB", "one"]).await;
        if numsub.get(1) == Some(&redis::Value::Int(0)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still subscribed");
        tokio::task::yield_now().await;
    }
    let shard: Vec<String> = common::query(&mut c, &["PUBSUB", "SHARDCHANNELS"]).await;
    assert!(shard.is_empty());
    assert_eq!(
        common::query::<i64>(&mut c, &["PUBLISH", "two", "m"]).await,
        2
    );
    // CLIENT KILL by type: the subscriber left, not the client asking.
    assert_eq!(
        common::query::<i64>(&mut c, &["CLIENT", "KILL", "TYPE", "pubsub"]).await,
        1
    );
    assert!(is_closed(&mut b).await);
    assert_eq!(common::query::<i64>(&mut c, &["PUBSUB", "NUMPAT"]).await, 0);
}

/// Messages of this size fill a subscriber that does not read.
const LARGE: usize = 64 * 1024;

#[tokio::test]
async fn a_subscriber_that_does_not_read_is_closed_at_its_pubsub_limit() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    let mut slow = node.raw().await;
    check(
        &mut slow,
        &[b"SUBSCRIBE", b"firehose"],
        b"*3\r\n$9\r\nsubscribe\r\n$8\r\nfirehose\r\n:1\r\n",
    )
    .await;
    let mut idle = node.raw().await;
    let id = client_id(&mut idle).await;
    check(
        &mut idle,
        &[b"SUBSCRIBE", b"quiet"],
        b"*3\r\n$9\r\nsubscribe\r\n$5\r\nquiet\r\n:1\r\n",
    )
    .await;
    // Set after it subscribed (it sends nothing more, yet takes the new limit). The pubsub class
    // alone: ordinary clients keep their large limit.
    let ok: String = common::query(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 0 0",
        ],
    )
    .await;
    assert_eq!(ok, "OK");
    let limits: Vec<String> =
        common::query(&mut c, &["CONFIG", "GET", "client-output-buffer-limit"]).await;
    assert_eq!(limits[1], "normal 1gb 256mb 60 pubsub 1mb 0 0");
    // A subscriber that sent nothing since has the new limit at once: a push past it is
    // refused and closes it.
    let big = vec![b'x'; 2 << 20];
    assert!(!node.shared.push_to(id, |w| {
        w.push(1);
        w.bulk(&big);
    }));
    assert!(is_closed(&mut idle).await);
    let payload = "x".repeat(LARGE);
    // However much the kernel's socket buffers take, 4096 messages (256 MB) is far beyond them
    // and the limit; the publisher is never held up, and the subscriber goes at the limit.
    let mut sent = 0;
    while sent < 4096 {
        let receivers: i64 = common::query(&mut c, &["PUBLISH", "firehose", &payload]).await;
        sent += 1;
        if receivers == 0 {
            break;
        }
    }
    assert!(sent < 4096, "the slow subscriber was never closed");
    assert!(is_closed(&mut slow).await);
    // The node and its other clients go on.
    assert_eq!(common::query::<String>(&mut c, &["PING"]).await, "PONG");
    let numsub: Vec<redis::Value> = common::query(&mut c, &["PUBSUB", "NUMSUB", "firehose"]).await;
    assert_eq!(numsub.get(1), Some(&redis::Value::Int(0)));
    let mut reader = node.raw().await;
    check(
        &mut reader,
        &[b"SUBSCRIBE", b"firehose"],
        b"*3\r\n$9\r\nsubscribe\r\n$8\r\nfirehose\r\n:1\r\n",
    )
    .await;
    assert_eq!(
        common::query::<i64>(&mut c, &["PUBLISH", "firehose", "small"]).await,
        1
    );
    expect(
        &mut reader,
        b"*3\r\n$7\r\nmessage\r\n$8\r\nfirehose\r\n$5\r\nsmall\r\n",
    )
    .await;
}

/// The node of `nodes` that serves `channel`'s slot, and one that does not.
fn owner_and_other(nodes: &[common::TestNode], channel: &[u8]) -> (usize, usize) {
    let slot = dcache_placement::slot(channel);
    let mine = |n: &common::TestNode| n.shared.cluster.as_ref().unwrap().view().mine(slot);
    let owner = nodes.iter().position(mine).expect("an owner");
    let other = nodes.iter().position(|n| !mine(n)).expect("another node");
    (owner, other)
}

#[tokio::test]
async fn publish_on_one_node_reaches_subscribers_on_every_node() {
    let (_control, nodes) = common::members::cluster(3).await;
    let mut on_b = nodes[1].raw().await;
    let mut on_c = nodes[2].raw().await;
    check(
        &mut on_b,
        &[b"SUBSCRIBE", b"news"],
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
    )
    .await;
    hello3(&mut on_c).await;
    check(
        &mut on_c,
        &[b"PSUBSCRIBE", b"n*"],
        b">3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n",
    )
    .await;
    let mut on_a = nodes[0].raw().await;
    // PUBLISH counts the receivers of the node it was sent to, as in Redis Cluster.
    check(&mut on_a, &[b"PUBLISH", b"news", b"one"], b":0\r\n").await;
    check(&mut on_a, &[b"PUBLISH", b"news", b"two"], b":0\r\n").await;
    // In order, from one node.
    expect(
        &mut on_b,
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$3\r\none\r\n*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$3\r\ntwo\r\n",
    )
    .await;
    expect(
        &mut on_c,
        b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$3\r\none\r\n>4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$3\r\ntwo\r\n",
    )
    .await;
    // A message forwarded to B is not sent on again: C receives it once.
    check(
        &mut on_b,
        &[b"UNSUBSCRIBE"],
        b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n",
    )
    .await;
    check(&mut on_b, &[b"PUBLISH", b"news", b"three"], b":0\r\n").await;
    expect(
        &mut on_c,
        b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nthree\r\n",
    )
    .await;
    check(&mut on_c, &[b"PING"], b"+PONG\r\n").await;
    // Two messages from A to each of B and C; B's is on its way to A and C.
    let forwarded = |i: usize| {
        nodes[i]
            .shared
            .pubsub
            .forwarded
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!((forwarded(0), forwarded(2)), (4, 0));
    assert!(forwarded(1) <= 2);
}

#[tokio::test]
async fn shard_channels_are_routed_by_slot() {
    let (_control, nodes) = common::members::cluster(2).await;
    let channel = b"orders";
    let (owner, other) = owner_and_other(&nodes, channel);
    let slot = dcache_placement::slot(channel);
    let moved = format!("-MOVED {slot} 127.0.0.1:{}\r\n", nodes[owner].addr.port());
    let mut elsewhere = nodes[other].raw().await;
    check(&mut elsewhere, &[b"SSUBSCRIBE", channel], moved.as_bytes()).await;
    check(
        &mut elsewhere,
        &[b"SPUBLISH", channel, b"m"],
        moved.as_bytes(),
    )
    .await;
    check(
        &mut elsewhere,
        &[b"SSUBSCRIBE", b"{a}x", b"{b}x"],
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    )
    .await;

    let mut sub = nodes[owner].raw().await;
    check(
        &mut sub,
        &[b"SSUBSCRIBE", channel],
        b"*3\r\n$10\r\nssubscribe\r\n$6\r\norders\r\n:1\r\n",
    )
    .await;
    // A plain subscriber of the same name is another channel.
    let mut plain = nodes[owner].raw().await;
    check(
        &mut plain,
        &[b"SUBSCRIBE", channel],
        b"*3\r\n$9\r\nsubscribe\r\n$6\r\norders\r\n:1\r\n",
    )
    .await;
    let mut publisher = nodes[owner].raw().await;
    check(&mut publisher, &[b"SPUBLISH", channel, b"m"], b":1\r\n").await;
    expect(
        &mut sub,
        b"*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$1\r\nm\r\n",
    )
    .await;
    check(&mut publisher, &[b"PUBLISH", channel, b"p"], b":1\r\n").await;
    expect(
        &mut plain,
        b"*3\r\n$7\r\nmessage\r\n$6\r\norders\r\n$1\r\np\r\n",
    )
    .await;
    // The shard subscriber got no `message`, the plain one no `smessage`: the next frame
    // each reads is the answer to its PING.
    check(&mut sub, &[b"PING"], b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;
    check(&mut plain, &[b"PING"], b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;
}

#[tokio::test]
async fn spublish_reaches_the_subscribers_on_every_copy_of_the_slot() {
    use dcache_cluster::{Settings, Strategy};
    let (_control, nodes) = common::members::replicated(
        2,
        Settings::new(1, Strategy::Primary),
        common::members::enabled(),
    )
    .await;
    let channel = b"tick";
    let (owner, replica) = owner_and_other(&nodes, channel);
    // The replica holds a copy of the slot: it takes the subscription, as Redis's replicas do.
    let mut on_replica = nodes[replica].raw().await;
    check(
        &mut on_replica,
        &[b"SSUBSCRIBE", channel],
        b"*3\r\n$10\r\nssubscribe\r\n$4\r\ntick\r\n:1\r\n",
    )
    .await;
    let mut publisher = nodes[owner].raw().await;
    check(&mut publisher, &[b"SPUBLISH", channel, b"1"], b":0\r\n").await;
    expect(
        &mut on_replica,
        b"*3\r\n$8\r\nsmessage\r\n$4\r\ntick\r\n$1\r\n1\r\n",
    )
    .await;
}

#[tokio::test]
async fn shard_subscribers_are_unsubscribed_when_their_slot_leaves_the_node() {
    use dcache_cluster::Change;
    let (control, mut nodes) = common::members::cluster(1).await;
    let mut sub = nodes[0].raw().await;
    // Enough channels that some of their slots go to the newcomer.
    let channels: Vec<String> = (0..64).map(|i| format!("chan{i}")).collect();
    for (i, channel) in channels.iter().enumerate() {
        let expected = format!(
            "*3\r\n$10\r\nssubscribe\r\n${}\r\n{channel}\r\n:{}\r\n",
            channel.len(),
            i + 1
        );
        check(
            &mut sub,
            &[b"SSUBSCRIBE", channel.as_bytes()],
            expected.as_bytes(),
        )
        .await;
    }
    let (newcomer, me) = common::members::member(&control, common::members::enabled()).await;
    control.apply(&Change::Join(me)).unwrap();
    common::members::settle(&control);
    nodes.push(newcomer);
    let epoch = control.subscribe().borrow().epoch;
    common::members::reach_epoch(&nodes, epoch).await;
    let view = nodes[0].shared.cluster.as_ref().unwrap().view();
    let lost: Vec<&String> = channels
        .iter()
        .filter(|c| !view.holds(dcache_placement::slot(c.as_bytes())))
        .collect();
    assert!(!lost.is_empty() && lost.len() < channels.len());
    // One `sunsubscribe` per lost channel, counting down what is left, in some order.
    let mut input = Vec::new();
    let mut unsubscribed = Vec::new();
    let mut left = channels.len() as i64;
    while unsubscribed.len() < lost.len() {
        match dcache_protocol::Frame::parse(&input).unwrap() {
            Some((frame, used)) => {
                input.drain(..used);
                left -= 1;
                let dcache_protocol::Frame::Array(parts) = frame else {
                    panic!("{frame:?}")
                };
                let [kind, name, count] = parts.as_slice() else {
                    panic!("{parts:?}")
                };
                assert_eq!(kind, &dcache_protocol::Frame::Bulk("sunsubscribe".into()));
                assert_eq!(count, &dcache_protocol::Frame::Integer(left));
                let dcache_protocol::Frame::Bulk(name) = name else {
                    panic!("{name:?}")
                };
                unsubscribed.push(String::from_utf8(name.to_vec()).unwrap());
            }
            None => {
                let more = read_n(&mut sub, 1).await;
                assert!(!more.is_empty(), "closed");
                input.extend(more);
            }
        }
    }
    assert!(input.is_empty());
    unsubscribed.sort();
    let mut expected: Vec<String> = lost.iter().map(|c| (*c).clone()).collect();
    expected.sort();
    assert_eq!(unsubscribed, expected);
    let mut c = nodes[0].client().await;
    let kept: Vec<String> = common::query(&mut c, &["PUBSUB", "SHARDCHANNELS"]).await;
    assert_eq!(kept.len(), channels.len() - lost.len());
}

#[tokio::test]
async fn messages_between_nodes_authenticate_with_the_nodes_password() {
    let config = dcache_server::NodeConfig {
        requirepass: "s3cret".into(),
        ..test_config()
    };
    let (_control, nodes) =
        common::members::replicated(2, dcache_cluster::Settings::default(), config).await;
    let mut sub = nodes[1].raw().await;
    check(
        &mut sub,
        &[b"SUBSCRIBE", b"x"],
        b"-NOAUTH Authentication required.\r\n",
    )
    .await;
    check(&mut sub, &[b"AUTH", b"s3cret"], b"+OK\r\n").await;
    check(
        &mut sub,
        &[b"SUBSCRIBE", b"x"],
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nx\r\n:1\r\n",
    )
    .await;
    let mut publisher = nodes[0].raw().await;
    check(&mut publisher, &[b"AUTH", b"s3cret"], b"+OK\r\n").await;
    check(&mut publisher, &[b"PUBLISH", b"x", b"hi"], b":0\r\n").await;
    expect(&mut sub, b"*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$2\r\nhi\r\n").await;
}
