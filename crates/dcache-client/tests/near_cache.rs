//! The near cache against a real node started in-process on 127.0.0.1:0: an invalidation
//! reaching it after another client's write, this client's own writes, a flush, its bound in
//! bytes, and a lost connection.

use std::time::Duration;

use dcache_client::{Client, Frame};
use dcache_server::{NodeConfig, Server};
use tokio::sync::oneshot;

/// Every wait here is for something the node owes; this bounds it if it never comes.
const WAIT: Duration = Duration::from_secs(10);

struct Node {
    addr: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn node() -> Node {
    let config = NodeConfig {
        port: 0,
        shards: 4,
        ..NodeConfig::default()
    };
    let server = Server::builder(config).bind().await.unwrap();
    let addr = server.local_addr().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Node {
        addr,
        stop: Some(stop),
    }
}

async fn client(node: &Node, near: usize) -> Client {
    let mut builder = Client::builder().nodes([node.addr.clone()]);
    if near > 0 {
        builder = builder.near_cache(near);
    }
    builder.build().await.unwrap()
}

/// Polls `done` until it holds, for at most [`WAIT`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn an_invalidation_reaches_the_near_cache_after_another_clients_write() {
    let node = node().await;
    let a = client(&node, 1 << 20).await;
    let b = client(&node, 0).await;
    b.set("k", "v1").await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    let stats = a.near_cache_stats().unwrap();
    assert_eq!(
        (stats.misses, stats.hits),
        (1, 1),
        "the second read was local"
    );
    assert!(a.near_cache_contains("k"));

    b.set("k", "v2").await.unwrap();
    eventually("the invalidation reaches the near cache", || {
        !a.near_cache_contains("k")
    })
    .await;
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    let stats = a.near_cache_stats().unwrap();
    assert_eq!((stats.misses, stats.hits), (2, 1));
    assert_eq!(stats.invalidations, 1);

    // A missing key is cached as missing, and its creation invalidates it.
    assert_eq!(a.get("new").await.unwrap(), None);
    assert_eq!(a.get("new").await.unwrap(), None);
    assert_eq!(a.near_cache_stats().unwrap().hits, 2);
    b.set("new", "x").await.unwrap();
    eventually("the creation is invalidated", || {
        !a.near_cache_contains("new")
    })
    .await;
    assert_eq!(a.get("new").await.unwrap().as_deref(), Some(&b"x"[..]));

    // FLUSHALL by another client: a null invalidation drops everything.
    assert!(a.near_cache_contains("k"));
    b.cmd(&["FLUSHALL"]).await.unwrap();
    eventually("the flush empties the near cache", || {
        a.near_cache_stats().unwrap().entries == 0
    })
    .await;
    assert_eq!(a.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn this_clients_own_writes_are_read_back_at_once() {
    let node = node().await;
    let a = client(&node, 1 << 20).await;
    a.set("k", "v1").await.unwrap();
    a.get("k").await.unwrap();
    assert!(a.near_cache_contains("k"));
    a.set("k", "v2").await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    a.get("k").await.unwrap();
    a.del(&["k"]).await.unwrap();
    assert_eq!(a.get("k").await.unwrap(), None);
    a.get("k").await.unwrap();
    a.mset(&[("k", "v3")]).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"v3"[..]));
    a.get("k").await.unwrap();
    a.cmd(&["APPEND", "k", "!"]).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"v3!"[..]));
}

#[tokio::test]
async fn the_near_cache_stays_within_its_size() {
    let node = node().await;
    // Room for about ten entries of a 100-byte value.
    let size = 10 * (100 + 8 + 100);
    let a = client(&node, size).await;
    let b = client(&node, 0).await;
    let value = vec![b'v'; 100];
    for i in 0..100 {
        b.set(format!("key:{i:03}"), &value).await.unwrap();
    }
    for i in 0..100 {
        let got = a.get(format!("key:{i:03}")).await.unwrap();
        assert_eq!(got.as_deref(), Some(&value[..]));
        assert!(a.near_cache_stats().unwrap().bytes <= size);
    }
    let stats = a.near_cache_stats().unwrap();
    assert!(stats.entries > 0 && stats.entries <= 10, "{stats:?}");
    assert_eq!(stats.evictions as usize, 100 - stats.entries);
}

#[tokio::test]
async fn a_lost_connection_flushes_the_near_cache() {
    let node = node().await;
    let a = client(&node, 1 << 20).await;
    let b = client(&node, 0).await;
    b.set("k", "v1").await.unwrap();
    a.get("k").await.unwrap();
    a.get("k").await.unwrap();
    assert!(a.near_cache_contains("k"));
    // The node closes every connection but the killer's: A's tracking ends with it.
    let killed = b
        .cmd(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
        .await
        .unwrap();
    assert!(matches!(killed, Frame::Integer(n) if n >= 1), "{killed:?}");
    eventually("the lost connection flushes what it cached", || {
        !a.near_cache_contains("k")
    })
    .await;
    // No one could tell A of this write: only the flush keeps A from reading v1.
    b.set("k", "v2").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let value = loop {
        // The node is marked down for a short back-off after the failure.
        match a.get("k").await {
            Ok(value) => break value,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(value.as_deref(), Some(&b"v2"[..]));
    // Tracked again on the new connection.
    assert!(a.near_cache_contains("k"));
    b.set("k", "v3").await.unwrap();
    eventually("the new connection is tracked", || {
        !a.near_cache_contains("k")
    })
    .await;
}
