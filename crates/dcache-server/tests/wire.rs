//! Byte-level request/reply tables against a live node: the protocol as the wire sees it.

mod common;

use common::{exchange, is_closed, read_n, read_until, start, test_config};
use dcache_server::ByteSize;
use tokio::io::AsyncWriteExt;

/// Each case: request bytes, then the exact reply bytes.
const TABLE: &[(&[u8], &[u8])] = &[
    (b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
    (b"PING\r\n", b"+PONG\r\n"),
    (b"ping hello\r\n", b"$5\r\nhello\r\n"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n", b"+OK\r\n"),
    (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"$2\r\nv1\r\n"),
    (b"GET missing\r\n", b"$-1\r\n"),
    (
        b"GET\r\n",
        b"-ERR wrong number of arguments for 'get' command\r\n",
    ),
    (
        b"NOSUCH a b\r\n",
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n",
    ),
    (b"HSET h f v\r\n", b":1\r\n"),
    (
        b"GET h\r\n",
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    ),
    (
        b"INCR k\r\n",
        b"-ERR value is not an integer or out of range\r\n",
    ),
    (b"SET k v XX NX\r\n", b"-ERR syntax error\r\n"),
    (
        b"SET k v EX 0\r\n",
        b"-ERR invalid expire time in 'set' command\r\n",
    ),
    (b"MGET k missing h\r\n", b"*3\r\n$2\r\nv1\r\n$-1\r\n$-1\r\n"),
    (b"SELECT 1\r\n", b"-ERR DB index is out of range\r\n"),
    (b"SELECT 0\r\n", b"+OK\r\n"),
    (b"echo \"a b\"\r\n", b"$3\r\na b\r\n"),
    (b"\r\n", b""),
    (b"*0\r\n", b""),
];

#[tokio::test]
async fn request_reply_table() {
    let node = start(test_config()).await;
    let mut stream = node.raw().await;
    for (request, reply) in TABLE {
        if reply.is_empty() {
            stream.write_all(request).await.unwrap();
            continue;
        }
        let got = exchange(&mut stream, request, reply.len()).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(reply),
            "request {:?}",
            String::from_utf8_lossy(request)
        );
    }
}

#[tokio::test]
async fn a_pipeline_is_answered_in_order() {
    let node = start(test_config()).await;
    let mut stream = node.raw().await;
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..500 {
        request.extend_from_slice(format!("SET key:{i} value:{i}\r\nGET key:{i}\r\n").as_bytes());
        expected.extend_from_slice(
            format!("+OK\r\n${}\r\nvalue:{i}\r\n", format!("value:{i}").len()).as_bytes(),
        );
    }
    // Split the pipeline at an awkward place to exercise partial requests.
    let (a, b) = request.split_at(request.len() / 3 + 7);
    stream.write_all(a).await.unwrap();
    stream.flush().await.unwrap();
    let got = exchange(&mut stream, b, expected.len()).await;
    assert_eq!(got, expected);
}

#[tokio::test]
async fn hello_3_switches_to_resp3_replies() {
    let node = start(test_config()).await;
    let mut stream = node.raw().await;
    stream
        .write_all(b"HELLO 3\r\nGET nothing\r\n")
        .await
        .unwrap();
    let got = read_until(&mut stream, b"_\r\n").await;
    assert!(
        got.starts_with(b"%7\r\n$6\r\nserver\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        got.ends_with(b"*0\r\n_\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let got = exchange(
        &mut stream,
        b"HSET h a 1\r\nHGETALL h\r\nINCRBYFLOAT f 1.5\r\n",
        0,
    )
    .await;
    let got = [got, read_n(&mut stream, 27).await].concat();
    assert_eq!(got, b":1\r\n%1\r\n$1\r\na\r\n$1\r\n1\r\n$3\r\n1.5\r\n");
    assert_eq!(
        exchange(&mut stream, b"HELLO 4\r\n", 38).await,
        b"-NOPROTO unsupported protocol version\r\n"
    );
}

#[tokio::test]
async fn a_malformed_frame_closes_only_that_connection() {
    let node = start(test_config()).await;
    let mut good = node.raw().await;
    assert_eq!(exchange(&mut good, b"SET a 1\r\n", 5).await, b"+OK\r\n");
    let cases: &[(&[u8], &str)] = &[
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*x\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-3\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"set \"a\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (request, reply) in cases {
        let mut bad = node.raw().await;
        let got = exchange(&mut bad, request, reply.len()).await;
        assert_eq!(String::from_utf8_lossy(&got), *reply);
        assert!(is_closed(&mut bad).await, "closed after {reply}");
    }
    assert_eq!(exchange(&mut good, b"GET a\r\n", 7).await, b"$1\r\n1\r\n");
}

#[tokio::test]
async fn limits_are_enforced_with_redis_wording() {
    let mut config = test_config();
    config.proto_max_bulk_len = ByteSize(1024 * 1024);
    config.max_args = 1024;
    config.client_query_buffer_limit = ByteSize(2 * 1024 * 1024);
    let node = start(config).await;

    let mut s = node.raw().await;
    let got = exchange(&mut s, b"*2\r\n$3\r\nGET\r\n$2000000\r\n", 100).await;
    assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");

    let mut s = node.raw().await;
    let got = exchange(&mut s, b"*1025\r\n", 100).await;
    assert_eq!(got, b"-ERR Protocol error: invalid multibulk length\r\n");

    // A request that never ends: once the unparsed input passes the query buffer limit, the
    // client is closed.
    let mut s = node.raw().await;
    let mut flood = b"*4\r\n".to_vec();
    for _ in 0..3 {
        flood.extend_from_slice(b"$1000000\r\n");
        flood.extend(std::iter::repeat_n(b'x', 1_000_000));
        flood.extend_from_slice(b"\r\n");
    }
    let _ = s.write_all(&flood).await;
    assert!(is_closed(&mut s).await);

    let mut s = node.raw().await;
    assert_eq!(exchange(&mut s, b"PING\r\n", 7).await, b"+PONG\r\n");
}

#[tokio::test]
async fn maxclients_refuses_extra_connections_with_an_error() {
    let mut config = test_config();
    config.maxclients = 2;
    let node = start(config).await;
    let mut a = node.raw().await;
    let mut b = node.raw().await;
    assert_eq!(exchange(&mut a, b"PING\r\n", 7).await, b"+PONG\r\n");
    assert_eq!(exchange(&mut b, b"PING\r\n", 7).await, b"+PONG\r\n");
    let mut c = node.raw().await;
    let got = read_n(&mut c, 38).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR max number of clients reached\r\n"
    );
    assert!(is_closed(&mut c).await);
    drop(a);
    // The slot frees once the server has seen the disconnect.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut d = node.raw().await;
        if exchange(&mut d, b"PING\r\n", 7).await == b"+PONG\r\n" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a freed slot is never reused"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn auth_is_required_when_a_password_is_set() {
    let mut config = test_config();
    config.requirepass = "s3cret".into();
    let node = start(config).await;
    let mut s = node.raw().await;
    assert_eq!(
        exchange(&mut s, b"GET k\r\n", 33).await,
        b"-NOAUTH Authentication required.\r\n"
    );
    let wrong = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    assert_eq!(exchange(&mut s, b"AUTH nope\r\n", wrong.len()).await, wrong);
    assert_eq!(exchange(&mut s, b"AUTH s3cret\r\n", 5).await, b"+OK\r\n");
    assert_eq!(exchange(&mut s, b"GET k\r\n", 5).await, b"$-1\r\n");
    let mut t = node.raw().await;
    let got = exchange(&mut t, b"HELLO 3 AUTH default s3cret\r\n", 4).await;
    assert!(
        got.starts_with(b"%7\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn quit_replies_then_closes() {
    let node = start(test_config()).await;
    let mut s = node.raw().await;
    assert_eq!(exchange(&mut s, b"QUIT\r\n", 5).await, b"+OK\r\n");
    assert!(is_closed(&mut s).await);
}

/// `RESET` gives the connection back as it opened, without closing it: inside `MULTI` it runs
/// at once and ends the transaction; the name, RESP3, tracking and the subscriptions are gone;
/// with a password set, the connection must authenticate again.
#[tokio::test]
async fn reset_returns_the_connection_to_its_first_state() {
    let mut config = test_config();
    config.requirepass = "s3cret".into();
    let node = start(config).await;
    let mut s = node.raw().await;
    s.write_all(b"HELLO 3 AUTH default s3cret SETNAME app\r\n")
        .await
        .unwrap();
    assert!(
        read_until(&mut s, b"modules\r\n*0\r\n")
            .await
            .starts_with(b"%7\r\n")
    );
    assert_eq!(
        exchange(&mut s, b"CLIENT TRACKING on\r\n", 5).await,
        b"+OK\r\n"
    );
    assert_eq!(exchange(&mut s, b"WATCH w\r\n", 5).await, b"+OK\r\n");
    assert_eq!(exchange(&mut s, b"MULTI\r\n", 5).await, b"+OK\r\n");
    assert_eq!(exchange(&mut s, b"SET k v\r\n", 9).await, b"+QUEUED\r\n");
    assert_eq!(exchange(&mut s, b"RESET\r\n", 8).await, b"+RESET\r\n");
    // Not authenticated any more: only the connection commands that need no login answer.
    assert_eq!(
        exchange(&mut s, b"GET k\r\n", 33).await,
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(exchange(&mut s, b"AUTH s3cret\r\n", 5).await, b"+OK\r\n");
    // The queued SET never ran, and the transaction is gone.
    assert_eq!(exchange(&mut s, b"GET k\r\n", 5).await, b"$-1\r\n");
    let no_multi = b"-ERR EXEC without MULTI\r\n";
    assert_eq!(
        exchange(&mut s, b"EXEC\r\n", no_multi.len()).await,
        no_multi
    );
    // RESP2 again (a null is `$-1`, not `_`) and no name.
    assert_eq!(exchange(&mut s, b"CLIENT GETNAME\r\n", 5).await, b"$-1\r\n");
    s.write_all(b"CLIENT TRACKINGINFO\r\n").await.unwrap();
    let info = read_until(&mut s, b"prefixes\r\n*0\r\n").await;
    assert!(
        info.starts_with(b"*6\r\n$5\r\nflags\r\n*1\r\n$3\r\noff\r\n"),
        "{}",
        String::from_utf8_lossy(&info)
    );

    // A subscriber (RESP2's subscribed mode) may RESET, and then gets no more messages.
    let mut sub = node.raw().await;
    assert_eq!(exchange(&mut sub, b"AUTH s3cret\r\n", 5).await, b"+OK\r\n");
    let confirm = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    assert_eq!(
        exchange(&mut sub, b"SUBSCRIBE ch\r\n", confirm.len()).await,
        confirm
    );
    assert_eq!(exchange(&mut s, b"PUBLISH ch m\r\n", 4).await, b":1\r\n");
    let message = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n";
    assert_eq!(read_n(&mut sub, message.len()).await, message);
    assert_eq!(exchange(&mut sub, b"RESET\r\n", 8).await, b"+RESET\r\n");
    assert_eq!(exchange(&mut s, b"PUBLISH ch m\r\n", 4).await, b":0\r\n");
    assert_eq!(exchange(&mut sub, b"AUTH s3cret\r\n", 5).await, b"+OK\r\n");
    assert_eq!(exchange(&mut sub, b"PING\r\n", 7).await, b"+PONG\r\n");
}
