//! The client against real nodes started in-process on 127.0.0.1:0.

use std::sync::Arc;
use std::time::Duration;

use dcache_client::{Client, Error, Frame, RateLimit, SetOptions};
use dcache_server::{ManualClock, NodeConfig, Server};
use tokio::sync::oneshot;

struct Nodes {
    addrs: Vec<String>,
    stops: Vec<Option<oneshot::Sender<()>>>,
    tasks: Vec<Option<tokio::task::JoinHandle<anyhow::Result<()>>>>,
}

/// 2026-06-01T00:00:00Z: where the nodes' manual clocks start.
const T0: u64 = 1_780_272_000_000;

async fn nodes(n: usize) -> Nodes {
    nodes_with(n, &NodeConfig::default(), None).await
}

/// `n` nodes with `config` (port and shards set here), on `clock` when given.
async fn nodes_with(n: usize, config: &NodeConfig, clock: Option<Arc<ManualClock>>) -> Nodes {
    let mut out = Nodes {
        addrs: Vec::new(),
        stops: Vec::new(),
        tasks: Vec::new(),
    };
    for _ in 0..n {
        let config = NodeConfig {
            port: 0,
            shards: 4,
            ..config.clone()
        };
        let mut builder = Server::builder(config);
        if let Some(clock) = &clock {
            builder = builder.clock(clock.clone());
        }
        let server = builder.bind().await.unwrap();
        out.addrs.push(server.local_addr().to_string());
        let (stop, stopped) = oneshot::channel::<()>();
        out.stops.push(Some(stop));
        out.tasks.push(Some(tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }))));
    }
    out
}

impl Nodes {
    async fn stop(&mut self, i: usize) {
        let _ = self.stops[i].take().unwrap().send(());
        self.tasks[i].take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for stop in self.stops.iter_mut().filter_map(Option::take) {
            let _ = stop.send(());
        }
    }
}

async fn client(addrs: &[String]) -> Client {
    Client::builder()
        .nodes(addrs.iter().cloned())
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

fn dbsize(frame: Frame) -> i64 {
    match frame {
        Frame::Integer(n) => n,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn keys_are_routed_to_the_node_placement_names() {
    let nodes = nodes(3).await;
    let c = client(&nodes.addrs).await;
    let keys: Vec<String> = (0..300).map(|i| format!("user:{i}")).collect();
    for k in &keys {
        c.set(k, "v").await.unwrap();
    }
    let mut total = 0;
    for addr in &nodes.addrs {
        let here = dbsize(c.node_cmd(addr, &["DBSIZE"]).await.unwrap());
        assert!(here > 50, "{addr} holds {here} of 300 keys");
        total += here;
        for k in keys
            .iter()
            .filter(|k| c.topology().unwrap().node_for(k.as_bytes()) == addr)
        {
            assert_eq!(
                c.node_cmd(addr, &["EXISTS", k]).await.unwrap(),
                Frame::Integer(1),
                "{k} on {addr}"
            );
        }
    }
    assert_eq!(total, 300);
}

#[tokio::test]
async fn typed_commands() {
    // Time stands still on the nodes, so that a TTL reads back exactly as it was set.
    let clock = Arc::new(ManualClock::new(T0));
    let nodes = nodes_with(2, &NodeConfig::default(), Some(clock.clone())).await;
    let c = client(&nodes.addrs).await;
    assert_eq!(c.get("nope").await.unwrap(), None);
    c.set("a", "1").await.unwrap();
    assert_eq!(c.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(c.incr("a").await.unwrap(), 2);
    assert_eq!(c.incr_by("a", 10).await.unwrap(), 12);
    assert!(
        !c.set_with(
            "a",
            "x",
            SetOptions {
                nx: true,
                ..SetOptions::default()
            }
        )
        .await
        .unwrap()
    );
    assert!(
        c.set_with(
            "t",
            "x",
            SetOptions {
                ttl: Some(Duration::from_secs(60)),
                ..SetOptions::default()
            }
        )
        .await
        .unwrap()
    );
    assert_eq!(c.ttl("t").await.unwrap(), Some(Duration::from_secs(60)));
    clock.advance_ms(25_000);
    assert_eq!(c.ttl("t").await.unwrap(), Some(Duration::from_secs(35)));
    clock.advance_ms(35_000);
    assert_eq!(c.get("t").await.unwrap(), None, "expired at 60 s");
    assert!(c.expire("a", Duration::from_secs(30)).await.unwrap());
    assert!(!c.expire("missing", Duration::from_secs(30)).await.unwrap());
    assert!(c.hset("s", "user", "ann").await.unwrap());
    assert_eq!(
        c.hget("s", "user").await.unwrap().as_deref(),
        Some(&b"ann"[..])
    );
    assert_eq!(c.hgetall("s").await.unwrap().len(), 1);
    match c.incr("s").await {
        Err(Error::Server(msg)) => assert!(msg.starts_with("WRONGTYPE"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn multi_key_commands_split_by_node_and_merge_in_order() {
    let nodes = nodes(3).await;
    let c = client(&nodes.addrs).await;
    let pairs: Vec<(String, String)> = (0..100)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    c.mset(&pairs).await.unwrap();
    let mut keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
    keys.insert(50, "missing".into());
    let values = c.mget(&keys).await.unwrap();
    for (key, value) in keys.iter().zip(&values) {
        match key.as_str() {
            "missing" => assert_eq!(value, &None),
            k => assert_eq!(value.as_deref(), Some(format!("v{}", &k[1..]).as_bytes())),
        }
    }
    assert_eq!(c.exists(&keys).await.unwrap(), 100);
    assert_eq!(c.del(&keys[..10]).await.unwrap(), 10);
    assert_eq!(c.exists(&keys).await.unwrap(), 90);

    // The raw command interface splits and merges the same way (dcache cli relies on it).
    let mget = c
        .cmd(&["MGET", "k99", "missing", "k0", "k42"])
        .await
        .unwrap();
    assert_eq!(
        mget,
        Frame::Array(vec![
            Frame::Bulk("v99".into()),
            Frame::Null,
            Frame::Null,
            Frame::Bulk("v42".into())
        ])
    );
    assert_eq!(
        c.cmd(&["MSET", "x", "1", "y", "2", "z", "3"])
            .await
            .unwrap(),
        Frame::Simple("OK".into())
    );
    assert_eq!(
        c.cmd(&["EXISTS", "x", "y", "z", "nope"]).await.unwrap(),
        Frame::Integer(3)
    );
    assert_eq!(c.cmd(&["DBSIZE"]).await.unwrap(), Frame::Integer(93));
    let Frame::Array(keys) = c.cmd(&["KEYS", "*"]).await.unwrap() else {
        panic!()
    };
    assert_eq!(keys.len(), 93);
    assert_eq!(
        c.cmd(&["DEL", "x", "y", "z"]).await.unwrap(),
        Frame::Integer(3)
    );
    assert_eq!(
        c.cmd(&["FLUSHALL"]).await.unwrap(),
        Frame::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["DBSIZE"]).await.unwrap(), Frame::Integer(0));
}

#[tokio::test]
async fn many_requests_in_flight_on_one_connection_get_their_own_replies() {
    let nodes = nodes(1).await;
    let node = nodes.addrs[0].clone();
    let c = Arc::new(
        Client::builder()
            .nodes([node.clone()])
            .max_connections(1)
            .build()
            .await
            .unwrap(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let c = Arc::clone(&c);
        tasks.spawn(async move {
            for j in 0..50 {
                let key = format!("k{i}:{j}");
                c.set(&key, &key).await.unwrap();
                assert_eq!(c.get(&key).await.unwrap().as_deref(), Some(key.as_bytes()));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // One connection, counted from both ends: the client's and the node's.
    assert_eq!(c.open_connections(&node), 1);
    let (Frame::Bulk(list) | Frame::Verbatim { text: list, .. }) =
        c.cmd(&["CLIENT", "LIST"]).await.unwrap()
    else {
        panic!("CLIENT LIST is text");
    };
    let list = String::from_utf8_lossy(&list).into_owned();
    assert_eq!(list.lines().count(), 1, "{list}");
    let commands = vec![vec!["SET", "p", "1"], vec!["INCR", "p"], vec!["GET", "p"]];
    let replies = c.pipeline(b"p", &commands).await.unwrap();
    assert_eq!(replies[1], Frame::Integer(2));
    assert_eq!(replies[2], Frame::Bulk("2".into()));
}

#[tokio::test]
async fn a_down_node_fails_fast_with_its_name_and_the_others_keep_serving() {
    let mut nodes = nodes(3).await;
    let c = client(&nodes.addrs).await;
    c.set("warm", "up").await.unwrap();
    let down = nodes.addrs[1].clone();
    nodes.stop(1).await;
    let key_on = |node: &str| {
        (0..)
            .map(|i| format!("key{i}"))
            .find(|k| c.topology().unwrap().node_for(k.as_bytes()) == node)
            .unwrap()
    };
    match c.get(key_on(&down)).await {
        Err(Error::Unavailable { node, .. }) => assert_eq!(node, down),
        other => panic!("expected the node to be unavailable, got {other:?}"),
    }
    assert!(c.node_is_down(&down));
    // While it is marked down, its keys fail without a connection attempt.
    match c.get(key_on(&down)).await {
        Err(Error::Unavailable { node, reason }) => {
            assert_eq!(node, down);
            assert!(reason.contains("marked down"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    for alive in [&nodes.addrs[0], &nodes.addrs[2]] {
        let key = key_on(alive);
        c.set(&key, "v").await.unwrap();
        assert_eq!(c.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
    }
}

#[tokio::test]
async fn with_fallback_a_down_nodes_keys_go_to_the_next_node() {
    let mut nodes = nodes(3).await;
    let c = Client::builder()
        .nodes(nodes.addrs.iter().cloned())
        .fallback(true)
        .build()
        .await
        .unwrap();
    let down = nodes.addrs[0].clone();
    let key = (0..)
        .map(|i| format!("key{i}"))
        .find(|k| c.topology().unwrap().node_for(k.as_bytes()) == down)
        .unwrap();
    c.set(&key, "before").await.unwrap();
    nodes.stop(0).await;
    // The value lived on the node that is gone: a miss, not an error.
    assert_eq!(c.get(&key).await.unwrap(), None);
    c.set(&key, "after").await.unwrap();
    assert_eq!(c.get(&key).await.unwrap().as_deref(), Some(&b"after"[..]));
    let next = c
        .topology()
        .unwrap()
        .nodes_for(key.as_bytes())
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(
        c.node_cmd(&next, &["GET", &key]).await.unwrap(),
        Frame::Bulk("after".into())
    );
}

#[tokio::test]
async fn a_silent_node_times_out_with_its_name() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let c = Client::builder()
        .nodes([addr.clone()])
        .request_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    assert_eq!(c.get("k").await, Err(Error::Timeout { node: addr }));
    hold.abort();
}

#[tokio::test]
async fn connections_grow_to_a_small_pool_under_load_only() {
    let nodes = nodes(1).await;
    let node = nodes.addrs[0].clone();
    let quiet = client(&nodes.addrs).await;
    for i in 0..200 {
        quiet.set(format!("q{i}"), "v").await.unwrap();
    }
    assert_eq!(quiet.open_connections(&node), 1, "one at a time needs one");

    let c = Arc::new(
        Client::builder()
            .nodes([node.clone()])
            .max_connections(3)
            .build()
            .await
            .unwrap(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1_000 {
        let c = Arc::clone(&c);
        tasks.spawn(async move {
            for j in 0..10 {
                let key = format!("k{i}:{j}");
                c.set(&key, &key).await.unwrap();
                assert_eq!(c.get(&key).await.unwrap().as_deref(), Some(key.as_bytes()));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let open = c.open_connections(&node);
    assert!((2..=3).contains(&open), "{open} connections under load");
    assert_eq!(dbsize(c.cmd(&["DBSIZE"]).await.unwrap()), 10_200);
}

#[tokio::test]
async fn speaks_resp3_where_the_node_agrees_and_resp2_where_it_refuses() {
    let nodes = nodes(1).await;
    let node = nodes.addrs[0].clone();
    let c = client(&nodes.addrs).await;
    c.hset("h", "f", "v").await.unwrap();
    assert_eq!(c.protocol(&node), Some(3));
    // RESP3 answers HGETALL with a map.
    assert!(matches!(
        c.cmd(&["HGETALL", "h"]).await.unwrap(),
        Frame::Map(_)
    ));
    assert_eq!(c.hgetall("h").await.unwrap(), [("f".into(), "v".into())]);

    let resp2 = Client::builder()
        .nodes([node.clone()])
        .resp3(false)
        .build()
        .await
        .unwrap();
    assert!(matches!(
        resp2.cmd(&["HGETALL", "h"]).await.unwrap(),
        Frame::Array(_)
    ));
    assert_eq!(resp2.protocol(&node), Some(2));

    // A server that does not know HELLO: the client stays on RESP2 and carries on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let old = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0; 1024];
        let mut first = true;
        while socket.read(&mut buf).await.unwrap_or(0) > 0 {
            let reply: &[u8] = if first {
                b"-ERR unknown command 'HELLO'\r\n"
            } else {
                b"+PONG\r\n"
            };
            first = false;
            socket.write_all(reply).await.unwrap();
        }
    });
    let c = Client::builder()
        .nodes([old.clone()])
        .build()
        .await
        .unwrap();
    assert_eq!(
        c.cmd(&["PING"]).await.unwrap(),
        Frame::Simple("PONG".into())
    );
    assert_eq!(c.protocol(&old), Some(2));
    server.abort();
}

/// A stand-in for a node's address that outlives the node behind it: a listener the test keeps,
/// which refuses connections (accepts and closes them) while "down" and relays them to a real
/// node while "up". Taking a node down and bringing it back this way needs no port to be freed
/// and bound again, which another process could take in between.
struct Switch {
    addr: String,
    up: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Switch {
    async fn new(backend: String) -> Switch {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (up, watch) = tokio::sync::watch::channel(true);
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                if !*watch.borrow() {
                    drop(socket);
                    continue;
                }
                let (backend, mut down) = (backend.clone(), watch.clone());
                tokio::spawn(async move {
                    let mut node = tokio::net::TcpStream::connect(&backend).await.unwrap();
                    // Relays until either side closes or the switch goes down, which cuts it.
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut socket, &mut node) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Switch { addr, up, task }
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_down_node_is_probed_in_the_background_and_used_again_when_it_returns() {
    let nodes = nodes(1).await;
    let switch = Switch::new(nodes.addrs[0].clone()).await;
    let node = switch.addr.clone();
    let c = client(std::slice::from_ref(&node)).await;
    c.set("k", "v").await.unwrap();
    switch.set(false);
    assert!(matches!(c.get("k").await, Err(Error::Unavailable { .. })));
    assert!(c.node_is_down(&node));

    // The node comes back on the same address; no request is made meanwhile.
    switch.set(true);
    // The probe reports to nobody, so poll for its connection, bounded (its back-off is at most
    // a few hundred ms by now).
    tokio::time::timeout(Duration::from_secs(10), async {
        while c.open_connections(&node) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the probe reconnects without a request");
    assert!(!c.node_is_down(&node));
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    c.set("k", "again").await.unwrap();
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"again"[..]));
}

#[tokio::test]
async fn a_password_is_presented_on_every_new_connection() {
    let config = NodeConfig {
        requirepass: "sekret".into(),
        ..NodeConfig::default()
    };
    let nodes = nodes_with(2, &config, None).await;
    let builder = || {
        Client::builder()
            .nodes(nodes.addrs.iter().cloned())
            .request_timeout(Duration::from_secs(5))
    };

    // Without it, the node says what is missing.
    let none = builder().build().await.unwrap();
    assert_eq!(
        none.get("k").await,
        Err(Error::Server("NOAUTH Authentication required.".into()))
    );

    // With it, in RESP3 (HELLO 3 AUTH), on every connection each node gets: 3,000 SETs from
    // 1,000 tasks at once, so that the pool may grow (whether it does depends on how fast the
    // node answers; every connection it opens must get in).
    let c = Arc::new(builder().password("sekret").build().await.unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1_000 {
        let c = Arc::clone(&c);
        tasks.spawn(async move {
            for j in 0..3 {
                let key = format!("k{i}:{j}");
                c.set(&key, "v").await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let mut total = 0;
    for node in &nodes.addrs {
        assert!(c.open_connections(node) >= 1);
        total += dbsize(c.node_cmd(node, &["DBSIZE"]).await.unwrap());
    }
    assert_eq!(total, 3_000);
    for node in &nodes.addrs {
        assert_eq!(c.protocol(node), Some(3));
    }

    // In RESP2 (AUTH), and naming the user.
    let resp2 = builder()
        .resp3(false)
        .username("default")
        .password("sekret")
        .build()
        .await
        .unwrap();
    assert_eq!(resp2.get("k0:0").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(resp2.protocol(&nodes.addrs[0]), Some(2));

    // A wrong one: the node is unavailable, and the reason is the node's own.
    let wrong = builder().password("nope").build().await.unwrap();
    match wrong.get("k").await {
        Err(Error::Unavailable { reason, .. }) => {
            assert!(reason.starts_with("WRONGPASS"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // The password does not show in debug output.
    let debug = format!("{:?}", builder().password("sekret"));
    assert!(!debug.contains("sekret"), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_counts_concurrent_callers_exactly_and_refills_with_time() {
    let clock = Arc::new(ManualClock::new(T0));
    let nodes = nodes_with(2, &NodeConfig::default(), Some(clock.clone())).await;
    let c = Arc::new(client(&nodes.addrs).await);
    // 6 per minute (one every 10 s), 20 at once.
    let limit = RateLimit {
        max_burst: 19,
        count: 6,
        period: Duration::from_secs(60),
    };
    // 8 callers × 10 requests at the same instant: exactly the bucket's 20 get through.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.spawn(async move {
            let mut allowed = 0;
            for _ in 0..10 {
                allowed += u32::from(c.throttle("api:user1", limit, 1).await.unwrap().allowed);
            }
            allowed
        });
    }
    let mut allowed = 0;
    while let Some(n) = tasks.join_next().await {
        allowed += n.unwrap();
    }
    assert_eq!(allowed, 20);
    let refused = c.throttle("api:user1", limit, 1).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!((refused.limit, refused.remaining), (20, 0));
    assert_eq!(refused.retry_after, Some(Duration::from_secs(10)));
    assert_eq!(refused.reset_after, Duration::from_secs(200));
    // The key cleans itself up: it expires when the bucket would be full again.
    let ttl = c.ttl("api:user1").await.unwrap().expect("a TTL");
    assert!(
        ttl <= Duration::from_secs(200) && ttl > Duration::from_secs(190),
        "{ttl:?}"
    );

    // One interval later, one more request fits; another user has a bucket of their own.
    clock.advance_ms(10_000);
    let next = c.throttle("api:user1", limit, 1).await.unwrap();
    assert!(next.allowed && next.remaining == 0 && next.retry_after.is_none());
    assert!(!c.throttle("api:user1", limit, 1).await.unwrap().allowed);
    let other = c.throttle("api:user2", limit, 5).await.unwrap();
    assert!(other.allowed && other.remaining == 15);
    // A request larger than the bucket is refused with no time to retry after.
    let huge = c.throttle("api:user2", limit, 21).await.unwrap();
    assert!(!huge.allowed && huge.retry_after.is_none());
}
