//! Client-side caching (`CLIENT TRACKING`): invalidations after another client's write, a DEL,
//! an expiry, an eviction and a flush; once per read; OPTIN/OPTOUT with `CLIENT CACHING`; BCAST
//! with prefixes; NOLOOP; REDIRECT (RESP3 and the RESP2 `__redis__:invalidate` frame), a broken
//! redirect; the table's bound; Redis's errors; and the same flow against a real `redis-server`
//! when one is installed, frame for frame.

mod common;
mod fuzz;

use std::time::Duration;

use common::{start, start_manual, test_config};
use dcache_protocol::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every wait here is on a frame the node owes; this bounds it if the node never sends it.
const WAIT: Duration = Duration::from_secs(10);

/// A raw connection that reads frames one at a time, pushes included, and keeps their bytes.
struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
}

impl Conn {
    async fn open(addr: std::net::SocketAddr) -> Conn {
        Conn {
            stream: TcpStream::connect(addr).await.unwrap(),
            input: Vec::new(),
        }
    }

    /// A RESP3 connection.
    async fn resp3(addr: std::net::SocketAddr) -> Conn {
        let mut c = Conn::open(addr).await;
        assert!(matches!(c.cmd(&["HELLO", "3"]).await, Frame::Map(_)));
        c
    }

    async fn send(&mut self, args: &[&str]) {
        let mut out = Vec::new();
        dcache_protocol::reply::encode_command(args.iter(), &mut out);
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next frame's bytes.
    async fn next_raw(&mut self) -> Vec<u8> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some((_, used)) = Frame::parse(&self.input).unwrap() {
                    return self.input.drain(..used).collect();
                }
                let n = self.stream.read_buf(&mut self.input).await.unwrap();
                assert!(n > 0, "the node closed the connection");
            }
        })
        .await
        .expect("a frame within the wait")
    }

    async fn next(&mut self) -> Frame {
        Frame::parse(&self.next_raw().await).unwrap().unwrap().0
    }

    /// Sends a command and reads the next frame (its reply, unless a push comes first).
    async fn cmd(&mut self, args: &[&str]) -> Frame {
        self.send(args).await;
        self.next().await
    }

    async fn ok(&mut self, args: &[&str]) {
        assert_eq!(self.cmd(args).await, Frame::Simple("OK".into()), "{args:?}");
    }

    async fn id(&mut self) -> i64 {
        match self.cmd(&["CLIENT", "ID"]).await {
            Frame::Integer(id) => id,
            other => panic!("{other:?}"),
        }
    }

    /// Asserts that nothing was pushed before the reply to a PING: every invalidation a write
    /// caused is queued by the time the write is answered, and goes out before later replies.
    async fn nothing_pushed(&mut self) {
        let reply = self.cmd(&["PING"]).await;
        assert_eq!(reply, Frame::Simple("PONG".into()), "no push was owed");
    }
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(s.as_bytes().to_vec().into())
}

/// The RESP3 push of an invalidation of `keys`, byte for byte.
fn invalidation(keys: &[&str]) -> Vec<u8> {
    let mut out = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len()).into_bytes();
    for key in keys {
        out.extend(format!("${}\r\n{key}\r\n", key.len()).into_bytes());
    }
    out
}

#[tokio::test]
async fn another_clients_write_invalidates_a_key_read_once() {
    let node = start(test_config()).await;
    let mut a = Conn::resp3(node.addr).await;
    let mut b = Conn::open(node.addr).await;
    a.ok(&["CLIENT", "TRACKING", "ON"]).await;
    b.ok(&["SET", "k", "v1"]).await;
    assert_eq!(a.cmd(&["GET", "k"]).await, bulk("v1"));
    // A key never read is nobody's concern.
    b.ok(&["SET", "other", "x"]).await;
    b.ok(&["SET", "k", "v2"]).await;
    assert_eq!(a.next_raw().await, invalidation(&["k"]));
    // Once per read: the next write finds no one to tell.
    b.ok(&["SET", "k", "v3"]).await;
    a.nothing_pushed().await;
    // Read again, told again; a read of several keys remembers each.
    assert_eq!(
        a.cmd(&["MGET", "k", "m"]).await,
        Frame::Array(vec![bulk("v3"), Frame::Null])
    );
    b.ok(&["SET", "m", "1"]).await;
    assert_eq!(b.cmd(&["DEL", "k", "m"]).await, Frame::Integer(2));
    // One message per key, as Redis sends them; m was invalidated by the SET already.
    assert_eq!(a.next_raw().await, invalidation(&["m"]));
    assert_eq!(a.next_raw().await, invalidation(&["k"]));
    a.nothing_pushed().await;
    // The client's own write invalidates too (no NOLOOP), after the write's reply.
    a.cmd(&["GET", "k"]).await;
    a.ok(&["SET", "k", "mine"]).await;
    assert_eq!(a.next_raw().await, invalidation(&["k"]));
    // Off: nothing more.
    a.cmd(&["GET", "k"]).await;
    a.ok(&["CLIENT", "TRACKING", "OFF"]).await;
    b.ok(&["SET", "k", "v4"]).await;
    a.nothing_pushed().await;
}

/// `INFO`'s tracking fields, as `(tracking_clients, tracking_total_keys, tracking_total_items,
/// tracking_total_prefixes)`.
async fn tracking_info(c: &mut Conn) -> (u64, u64, u64, u64) {
    let Frame::Bulk(text) = c.cmd(&["INFO"]).await else {
        panic!("INFO answers a bulk string");
    };
    let text = String::from_utf8(text.to_vec()).unwrap();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("{name} in INFO"))
            .parse()
            .unwrap()
    };
    (
        field("tracking_clients"),
        field("tracking_total_keys"),
        field("tracking_total_items"),
        field("tracking_total_prefixes"),
    )
}

/// `INFO` counts tracking clients, the keys in the table, the reads it remembers (a key read by
/// two clients counts twice) and BCAST prefixes, as Redis's fields do.
#[tokio::test]
async fn info_counts_the_tracking_table() {
    let node = start(test_config()).await;
    let mut a = Conn::resp3(node.addr).await;
    let mut b = Conn::resp3(node.addr).await;
    let mut w = Conn::open(node.addr).await;
    assert_eq!(tracking_info(&mut w).await, (0, 0, 0, 0));
    a.ok(&["CLIENT", "TRACKING", "ON"]).await;
    b.ok(&["CLIENT", "TRACKING", "ON"]).await;
    a.cmd(&["MGET", "x", "y"]).await;
    a.cmd(&["GET", "x"]).await;
    b.cmd(&["GET", "x"]).await;
    assert_eq!(tracking_info(&mut w).await, (2, 2, 3, 0));
    // A write forgets the key and everyone who read it.
    w.ok(&["SET", "x", "1"]).await;
    assert_eq!(tracking_info(&mut w).await, (2, 1, 1, 0));
    let mut c = Conn::resp3(node.addr).await;
    c.ok(&[
        "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "p:", "PREFIX", "q:",
    ])
    .await;
    assert_eq!(tracking_info(&mut w).await, (3, 1, 1, 2));
    // A flush empties the table.
    w.ok(&["FLUSHALL"]).await;
    assert_eq!(tracking_info(&mut w).await, (3, 0, 0, 2));
}

#[tokio::test]
async fn expiry_lazy_and_active_invalidates() {
    let node = start_manual(test_config()).await;
    let mut a = Conn::resp3(node.addr).await;
    let mut b = Conn::open(node.addr).await;
    a.ok(&["CLIENT", "TRACKING", "ON"]).await;
    b.ok(&["SET", "lazy", "v", "PX", "100"]).await;
    b.ok(&["SET", "active", "v", "PX", "100"]).await;
    a.cmd(&["GET", "lazy"]).await;
    a.cmd(&["GET", "active"]).await;
    node.advance_ms(200);
    // Lazy: another client's access finds the key expired (unless a background cycle was
    // first: either way it is reclaimed, and its reader told).
    assert_eq!(b.cmd(&["EXISTS", "lazy"]).await, Frame::Integer(0));
    // Active: the background cycle reclaims the other.
    node.shared.wait_background_cycles(2).await;
    let mut pushes = vec![a.next_raw().await, a.next_raw().await];
    pushes.sort();
    let mut expected = vec![invalidation(&["active"]), invalidation(&["lazy"])];
    expected.sort();
    assert_eq!(pushes, expected);
    a.nothing_pushed().await;
}

#[tokio::test]
async fn eviction_invalidates() {
    let mut config = test_config();
    config.maxmemory = dcache_server::ByteSize(4 << 20);
    config.maxmemory_policy = "allkeys-lru".into();
    let node = start(config).await;
    let mut a = Conn::resp3(node.addr).await;
    let mut b = Conn::open(node.addr).await;
    a.ok(&["CLIENT", "TRACKING", "ON"]).await;
    b.ok(&["SET", "victim", "v"]).await;
    a.cmd(&["GET", "victim"]).await;
    let value = "x".repeat(64 * 1024);
    let mut evicted = false;
    // 16 MB of writes into 4 MB: the least recently used key goes long before the end.
    let key = node.shared.store.key(b"victim");
    for i in 0..256 {
        b.ok(&["SET", &format!("fill:{i}"), &value]).await;
        // A peek, which does not make the key recently used.
        let present = node
            .shared
            .store
            .lock(&key)
            .get(&key, 0, dcache_store::Lookup::Peek)
            .is_some();
        if !present {
            evicted = true;
            break;
        }
    }
    assert!(evicted, "the victim was evicted");
    assert_eq!(a.next_raw().await, invalidation(&["victim"]));
}

#[tokio::test]
async fn flush_sends_a_null_invalidation_to_every_tracking_client() {
    let node = start(test_config()).await;
    let mut a = Conn::resp3(node.addr).await;
    let mut bcast = Conn::resp3(node.addr).await;
    let mut b = Conn::open(node.addr).await;
    a.ok(&["CLIENT", "TRACKING", "ON"]).await;
    bcast.ok(&["CLIENT", "TRACKING", "ON", "BCAST"]).await;
    b.ok(&["FLUSHALL"]).await;
    let null = b">2\r\n$10\r\ninvalidate\r\n_\r\n".to_vec();
    assert_eq!(a.next_raw().await, null);
    assert_eq!(bcast.next_raw().await, null);
    // The table is empty after it: a key read before the flush is not invalidated again.
    b.ok(&["SET", "k", "v"]).await;
    a.nothing_pushed().await;
}

#[tokio::test]
async fn optin_and_optout_follow_client_caching_for_the_next_command() {
    let node = start(test_config()).await;
    let mut b = Conn::open(node.addr).await;
    let mut a = Conn::resp3(node.addr).await;
    a.ok(&["CLIENT", "TRACKING", "ON", "OPTIN"]).await;
    a.cmd(&["GET", "plain"]).await;
    a.ok(&["CLIENT", "CACHING", "YES"]).await;
    a.cmd(&["GET", "cached"]).await;
    // Used up by that one command.
    a.cmd(&["GET", "after"]).await;
    b.ok(&["MSET", "plain", "1", "cached", "1", "after", "1"])
        .await;
    assert_eq!(a.next_raw().await, invalidation(&["cached"]));
    a.nothing_pushed().await;

    let mut o = Conn::resp3(node.addr).await;
    o.ok(&["CLIENT", "TRACKING", "ON", "OPTOUT"]).await;
    o.ok(&["CLIENT", "CACHING", "NO"]).await;
    o.cmd(&["GET", "skipped"]).await;
    o.cmd(&["GET", "tracked"]).await;
    b.ok(&["MSET", "skipped", "1", "tracked", "1"]).await;
    assert_eq!(o.next_raw().await, invalidation(&["tracked"]));
    o.nothing_pushed().await;
}

#[tokio::test]
async fn bcast_sends_every_write_under_a_prefix_and_noloop_spares_the_writer() {
    let node = start(test_config()).await;
    let mut a = Conn::resp3(node.addr).await;
    let mut b = Conn::open(node.addr).await;
    a.ok(&[
        "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "obj:", "NOLOOP",
    ])
    .await;
    // Nothing read: BCAST tells of every matching key.
    b.ok(&["SET", "user:1", "x"]).await;
    assert_eq!(a.next_raw().await, invalidation(&["user:1"]));
    b.ok(&["SET", "other", "x"]).await;
    a.nothing_pushed().await;
    // One message per prefix.
    b.ok(&["MSET", "user:2", "x", "obj:1", "y", "user:3", "z"])
        .await;
    assert_eq!(a.next_raw().await, invalidation(&["user:2", "user:3"]));
    assert_eq!(a.next_raw().await, invalidation(&["obj:1"]));
    // NOLOOP: the client's own writes are not sent back to it.
    a.ok(&["SET", "user:4", "mine"]).await;
    a.nothing_pushed().await;
    // Without NOLOOP (enabling again drops it) they are.
    a.ok(&["CLIENT", "TRACKING", "ON", "BCAST"]).await;
    a.ok(&["SET", "user:5", "mine"]).await;
    assert_eq!(a.next_raw().await, invalidation(&["user:5"]));

    // NOLOOP in default mode too.
    let mut n = Conn::resp3(node.addr).await;
    n.ok(&["CLIENT", "TRACKING", "ON", "NOLOOP"]).await;
    n.cmd(&["GET", "k"]).await;
    n.ok(&["SET", "k", "mine"]).await;
    n.nothing_pushed().await;
}

#[tokio::test]
async fn redirect_sends_to_another_client_in_its_protocol() {
    let node = start(test_config()).await;
    let mut b = Conn::open(node.addr).await;
    // A RESP2 redirect client receives pub/sub messages on `__redis__:invalidate`. (Redis sends
    // them only to a redirect client subscribed to that channel; dcache pushes them to the
    // redirect client whatever it does.)
    let mut r2 = Conn::open(node.addr).await;
    let r2_id = r2.id().await;
    let mut a = Conn::open(node.addr).await;
    a.ok(&["CLIENT", "TRACKING", "ON", "REDIRECT", &r2_id.to_string()])
        .await;
    assert_eq!(a.cmd(&["CLIENT", "GETREDIR"]).await, Frame::Integer(r2_id));
    a.cmd(&["GET", "k"]).await;
    b.ok(&["SET", "k", "v"]).await;
    assert_eq!(
        r2.next_raw().await,
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n"
    );
    // A RESP2 client without a redirect can be told nothing (RESP2 has no pushes).
    let mut plain = Conn::open(node.addr).await;
    plain.ok(&["CLIENT", "TRACKING", "ON"]).await;
    plain.cmd(&["GET", "k"]).await;
    b.ok(&["SET", "k", "w"]).await;
    plain.nothing_pushed().await;

    // A RESP3 redirect client gets pushes; a flush is a null on the channel for RESP2.
    let mut r3 = Conn::resp3(node.addr).await;
    let r3_id = r3.id().await;
    let mut c = Conn::resp3(node.addr).await;
    c.ok(&["CLIENT", "TRACKING", "ON", "REDIRECT", &r3_id.to_string()])
        .await;
    c.cmd(&["GET", "j"]).await;
    b.ok(&["SET", "j", "v"]).await;
    assert_eq!(r3.next_raw().await, invalidation(&["j"]));
    c.nothing_pushed().await;
    b.ok(&["FLUSHDB"]).await;
    assert_eq!(
        r2.next_raw().await,
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
    );
    assert_eq!(r3.next_raw().await, b">2\r\n$10\r\ninvalidate\r\n_\r\n");
}

#[tokio::test]
async fn a_gone_redirect_client_is_reported_broken() {
    let node = start(test_config()).await;
    let mut b = Conn::open(node.addr).await;
    let mut r = Conn::open(node.addr).await;
    let r_id = r.id().await;
    let mut a = Conn::resp3(node.addr).await;
    a.ok(&["CLIENT", "TRACKING", "ON", "REDIRECT", &r_id.to_string()])
        .await;
    a.cmd(&["GET", "k"]).await;
    drop(r);
    // The node notices the close on its own time: wait for it, bounded.
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.shared.client(r_id as u64).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the close is seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.ok(&["SET", "k", "v"]).await;
    let mut expected = b">2\r\n$21\r\ntracking-redir-broken\r\n".to_vec();
    expected.extend(format!(":{r_id}\r\n").into_bytes());
    assert_eq!(a.next_raw().await, expected);
    let Frame::Map(info) = a.cmd(&["CLIENT", "TRACKINGINFO"]).await else {
        panic!("a map")
    };
    assert_eq!(
        info[0].1,
        Frame::Set(vec![bulk("on"), bulk("broken_redirect")])
    );
    let Frame::Verbatim { text, .. } = a.cmd(&["CLIENT", "INFO"]).await else {
        panic!("verbatim")
    };
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert!(
        text.contains(" flags=tR ") && text.contains(&format!(" redir={r_id} ")),
        "{text}"
    );
}

#[tokio::test]
async fn the_table_is_bounded_and_forgotten_keys_are_invalidated() {
    let node = start(test_config()).await;
    let mut a = Conn::resp3(node.addr).await;
    a.ok(&["CONFIG", "SET", "tracking-table-max-keys", "2"])
        .await;
    assert_eq!(
        a.cmd(&["CONFIG", "GET", "tracking-table-max-keys"]).await,
        Frame::Map(vec![(bulk("tracking-table-max-keys"), bulk("2"))])
    );
    a.ok(&["CLIENT", "TRACKING", "ON"]).await;
    a.cmd(&["GET", "k1"]).await;
    a.cmd(&["GET", "k2"]).await;
    assert_eq!(node.shared.tracking.counts().keys, 2);
    // The third key takes the table past its bound: one key is forgotten, and its reader told.
    a.send(&["GET", "k3"]).await;
    let mut frames = vec![a.next().await, a.next().await];
    frames.sort_by_key(|f| matches!(f, Frame::Push(_)));
    assert_eq!(frames[0], Frame::Null, "GET k3's reply");
    let Frame::Push(push) = &frames[1] else {
        panic!("{frames:?}")
    };
    assert_eq!(push[0], bulk("invalidate"));
    let Frame::Array(keys) = &push[1] else {
        panic!("{push:?}")
    };
    assert_eq!(keys.len(), 1);
    assert!(["k1", "k2", "k3"].map(bulk).contains(&keys[0]), "{keys:?}");
    assert_eq!(node.shared.tracking.counts().keys, 2);
}

/// Redis's error replies, in Redis's order of checks (checked against Redis 7.0).
#[tokio::test]
async fn options_are_checked_as_redis_checks_them() {
    let node = start(test_config()).await;
    let mut a = Conn::open(node.addr).await;
    let own = a.id().await.to_string();
    let err = |s: &str| Frame::Error(s.to_owned());
    for (args, expected) in [
        (
            &["CLIENT", "TRACKING", "ON", "PREFIX", "a"][..],
            "ERR PREFIX option requires BCAST mode to be enabled",
        ),
        (
            &["CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"],
            "ERR You can't specify both OPTIN mode and OPTOUT mode",
        ),
        (
            &["CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"],
            "ERR OPTIN and OPTOUT are not compatible with BCAST",
        ),
        (
            &["CLIENT", "TRACKING", "ON", "REDIRECT", "999999"],
            "ERR The client ID you want redirect to does not exist",
        ),
        (
            &["CLIENT", "TRACKING", "ON", "REDIRECT", "x"],
            "ERR value is not an integer or out of range",
        ),
        (
            &[
                "CLIENT", "TRACKING", "ON", "REDIRECT", &own, "REDIRECT", &own,
            ],
            "ERR A client can only redirect to a single other client",
        ),
        (
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ab", "PREFIX", "a",
            ],
            "ERR Prefix 'ab' overlaps with another provided prefix 'a'. Prefixes for a single client must not overlap.",
        ),
        (&["CLIENT", "TRACKING", "MAYBE"], "ERR syntax error"),
        (&["CLIENT", "TRACKING", "ON", "FOO"], "ERR syntax error"),
        (
            &["CLIENT", "TRACKING"],
            "ERR wrong number of arguments for 'client|tracking' command",
        ),
        (
            &["CLIENT", "CACHING", "YES"],
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ),
        (
            &["CLIENT", "CACHING"],
            "ERR wrong number of arguments for 'client|caching' command",
        ),
        (
            &["CLIENT", "GETREDIR", "x"],
            "ERR wrong number of arguments for 'client|getredir' command",
        ),
    ] {
        assert_eq!(a.cmd(args).await, err(expected), "{args:?}");
    }
    assert_eq!(a.cmd(&["CLIENT", "GETREDIR"]).await, Frame::Integer(-1));
    assert_eq!(
        a.cmd(&["CLIENT", "TRACKINGINFO"]).await,
        Frame::Array(vec![
            bulk("flags"),
            Frame::Array(vec![bulk("off")]),
            bulk("redirect"),
            Frame::Integer(-1),
            bulk("prefixes"),
            Frame::Array(vec![]),
        ])
    );
    a.ok(&["CLIENT", "TRACKING", "ON", "OPTIN"]).await;
    for (args, expected) in [
        (
            &["CLIENT", "TRACKING", "ON", "BCAST"][..],
            "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
        ),
        (
            &["CLIENT", "TRACKING", "ON", "OPTOUT"],
            "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        ),
        (
            &["CLIENT", "CACHING", "NO"],
            "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
        ),
        (&["CLIENT", "CACHING", "MAYBE"], "ERR syntax error"),
    ] {
        assert_eq!(a.cmd(args).await, err(expected), "{args:?}");
    }
    a.ok(&["CLIENT", "CACHING", "YES"]).await;
    assert_eq!(
        a.cmd(&["CLIENT", "TRACKINGINFO"]).await,
        Frame::Array(vec![
            bulk("flags"),
            Frame::Array(vec![bulk("on"), bulk("optin"), bulk("caching-yes")]),
            bulk("redirect"),
            Frame::Integer(0),
            bulk("prefixes"),
            Frame::Array(vec![]),
        ])
    );
    assert_eq!(a.cmd(&["CLIENT", "GETREDIR"]).await, Frame::Integer(0));
    a.ok(&["CLIENT", "TRACKING", "OFF"]).await;
    a.ok(&[
        "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "PREFIX", "b",
    ])
    .await;
    assert_eq!(
        a.cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ab"])
            .await,
        err(
            "ERR Prefix 'ab' overlaps with an existing prefix 'a'. Prefixes for a single client must not overlap."
        )
    );
    // Prefixes add up over calls.
    a.ok(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c"])
        .await;
    assert_eq!(
        a.cmd(&["CLIENT", "TRACKINGINFO"]).await,
        Frame::Array(vec![
            bulk("flags"),
            Frame::Array(vec![bulk("on"), bulk("bcast")]),
            bulk("redirect"),
            Frame::Integer(0),
            bulk("prefixes"),
            Frame::Array(vec![bulk("a"), bulk("b"), bulk("c")]),
        ])
    );
    let Frame::Bulk(info) = a.cmd(&["CLIENT", "INFO"]).await else {
        panic!("a bulk in RESP2")
    };
    let info = String::from_utf8(info.to_vec()).unwrap();
    assert!(
        info.contains(" flags=tB ") && info.contains(" redir=0 "),
        "{info}"
    );
}

/// The same exchanges with dcache and with a real `redis-server`: the frames must match byte for
/// byte (HELLO's and CLIENT ID's replies aside, which describe the server).
#[tokio::test]
async fn frames_match_redis() {
    let Some(redis) = fuzz::differential::RedisServer::start() else {
        return;
    };
    let node = start(test_config()).await;
    let reference = transcript(redis.addr).await;
    let dcache = transcript(node.addr).await;
    assert_eq!(
        String::from_utf8_lossy(&dcache.concat()),
        String::from_utf8_lossy(&reference.concat())
    );
}

/// Runs one scenario and returns every frame the tracked clients received, as bytes.
async fn transcript(addr: std::net::SocketAddr) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut b = Conn::open(addr).await;
    b.ok(&["FLUSHALL"]).await;
    let mut r = Conn::open(addr).await;
    let r_id = r.id().await.to_string();
    r.send(&["SUBSCRIBE", "__redis__:invalidate"]).await;
    // dcache without SUBSCRIBE answers an error; Redis confirms. Neither is compared.
    r.next_raw().await;
    let mut a = Conn::resp3(addr).await;
    let mut a2 = Conn::open(addr).await;
    for args in [
        &["CLIENT", "TRACKING", "ON"][..],
        &["SET", "k", "v"],
        &["GET", "k"],
        &["MGET", "k", "m"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "TRACKING", "ON", "BCAST"],
        &["CLIENT", "CACHING", "YES"],
    ] {
        got.push(send_raw(&mut a, args).await);
    }
    got.push(send_raw(&mut a2, &["CLIENT", "TRACKING", "ON", "REDIRECT", &r_id]).await);
    got.push(send_raw(&mut a2, &["GET", "k"]).await);
    b.ok(&["SET", "k", "w"]).await;
    got.push(a.next_raw().await);
    got.push(r.next_raw().await);
    b.ok(&["SET", "m", "x"]).await;
    got.push(a.next_raw().await);
    b.cmd(&["DEL", "k"]).await;
    b.ok(&["FLUSHALL"]).await;
    got.push(a.next_raw().await);
    got.push(r.next_raw().await);
    got
}

async fn send_raw(c: &mut Conn, args: &[&str]) -> Vec<u8> {
    c.send(args).await;
    c.next_raw().await
}

/// A write that reaches a replica by replication invalidates what clients read there.
#[tokio::test]
async fn a_write_arriving_by_replication_invalidates() {
    use dcache_cluster::{Settings, Strategy};
    let config = dcache_server::NodeConfig {
        cluster_enabled: dcache_server::YesNo(true),
        ..test_config()
    };
    let (control, nodes) =
        common::members::replicated(2, Settings::new(1, Strategy::Primary), config).await;
    let topology = std::sync::Arc::clone(&control.subscribe().borrow());
    let copies = topology.replicas_of(dcache_placement::slot(b"k"));
    let node = |position: usize| {
        nodes
            .iter()
            .find(|n| n.shared.cluster.as_ref().unwrap().view().me == copies[position].id)
            .expect("a live node")
    };
    let (primary, replica) = (node(0), node(1));
    let mut p = Conn::open(primary.addr).await;
    let mut r = Conn::resp3(replica.addr).await;
    r.ok(&["READONLY"]).await;
    r.ok(&["CLIENT", "TRACKING", "ON"]).await;
    // Under `primary` with one synchronous replica, a write is acknowledged once the replica
    // holds it.
    p.ok(&["SET", "k", "v1"]).await;
    assert_eq!(r.cmd(&["GET", "k"]).await, bulk("v1"));
    p.ok(&["SET", "k", "v2"]).await;
    assert_eq!(r.next_raw().await, invalidation(&["k"]));
    assert_eq!(r.cmd(&["GET", "k"]).await, bulk("v2"));
}

/// Keys dropped with their slot (a slot migrated away, `crate::migrate`) are invalidated by the
/// next background cycle.
#[tokio::test]
async fn keys_dropped_with_their_slot_are_invalidated() {
    let node = start(test_config()).await;
    let mut a = Conn::resp3(node.addr).await;
    let mut b = Conn::open(node.addr).await;
    a.ok(&["CLIENT", "TRACKING", "ON"]).await;
    b.ok(&["SET", "k", "v"]).await;
    a.cmd(&["GET", "k"]).await;
    let slot = dcache_placement::slot(b"k");
    assert_eq!(node.shared.store.delete_slot(slot, 1024), 1);
    node.shared.wait_background_cycles(1).await;
    assert_eq!(a.next_raw().await, invalidation(&["k"]));
}
