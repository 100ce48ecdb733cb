//! Cluster mode's answers to redirects and retries, against tiny scripted nodes: each answers
//! `CLUSTER SLOTS` with a map the test gives and every other request as the test's script says,
//! and records what it was sent. What a real cluster rarely shows on demand (a `-TRYAGAIN`, a
//! `-CLUSTERDOWN` that lasts, a redirect loop, a node that dies) is shown here, and each must end
//! within its bounds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dcache_client::{Client, Error};
use dcache_protocol::{RequestParser, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Script = Box<dyn Fn(&[Vec<u8>]) -> Vec<u8> + Send + Sync>;

/// A scripted node: the requests it received, in order, and how to stop it.
struct FakeNode {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeNode {
    /// Starts a node that answers `CLUSTER SLOTS` with `slots` (RESP bytes, read at the time
    /// of the request) and anything else with `script`.
    async fn start(slots: Arc<Mutex<Vec<u8>>>, script: Script) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            // Owned here, so that stopping the node closes its connections too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                while connections.try_join_next().is_some() {}
                let (log, script, slots) =
                    (Arc::clone(&log), Arc::clone(&script), Arc::clone(&slots));
                connections.spawn(async move {
                    let mut parser = RequestParser::default();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        let mut out = Vec::new();
                        while let Ok(Status::Complete(used)) = parser.parse(&buf) {
                            let args: Vec<Vec<u8>> =
                                parser.args(&buf).iter().map(<[u8]>::to_vec).collect();
                            buf.drain(..used);
                            let words: Vec<String> = args
                                .iter()
                                .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
                                .collect();
                            log.lock().unwrap().push(words.join(" "));
                            if words.first().map(String::as_str) == Some("CLUSTER")
                                && words.get(1).map(String::as_str) == Some("SLOTS")
                            {
                                out.extend_from_slice(&slots.lock().unwrap());
                            } else {
                                out.extend(script(&args));
                            }
                        }
                        if socket.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeNode { addr, seen, task }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `CLUSTER SLOTS` reply giving every slot to `node` (`host:port`).
fn all_slots(node: &str) -> Vec<u8> {
    let (host, port) = node.rsplit_once(':').unwrap();
    format!(
        "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n${}\r\n{host}\r\n:{port}\r\n$2\r\nid\r\n",
        host.len()
    )
    .into_bytes()
}

async fn client(seed: &str) -> Client {
    Client::builder()
        .nodes([seed.to_owned()])
        .cluster(true)
        .resp3(false)
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap()
}

fn reply(bytes: &str) -> Vec<u8> {
    bytes.as_bytes().to_vec()
}

#[tokio::test]
async fn tryagain_is_retried_until_it_clears() {
    let slots = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&count);
    let node = FakeNode::start(
        Arc::clone(&slots),
        Box::new(move |_| {
            let mut n = counter.lock().unwrap();
            *n += 1;
            if *n <= 2 {
                reply("-TRYAGAIN Multiple keys request during rehashing of slot\r\n")
            } else {
                reply("$5\r\nvalue\r\n")
            }
        }),
    )
    .await;
    *slots.lock().unwrap() = all_slots(&node.addr());
    let c = client(&node.addr()).await;
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"value"[..]));
    assert_eq!(
        node.seen().iter().filter(|r| *r == "GET K").count(),
        3,
        "two refusals, then the answer"
    );
}

#[tokio::test]
async fn a_lasting_clusterdown_ends_in_its_error_after_bounded_retries() {
    let slots = Arc::new(Mutex::new(Vec::new()));
    let node = FakeNode::start(
        Arc::clone(&slots),
        Box::new(|_| reply("-CLUSTERDOWN The cluster is down\r\n")),
    )
    .await;
    *slots.lock().unwrap() = all_slots(&node.addr());
    let c = client(&node.addr()).await;
    assert_eq!(
        c.get("k").await,
        Err(Error::Server("CLUSTERDOWN The cluster is down".into()))
    );
    let seen = node.seen();
    let tries = seen.iter().filter(|r| *r == "GET K").count();
    assert!(
        (2..=8).contains(&tries),
        "retried a few times, not forever: {tries}"
    );
    // Each CLUSTERDOWN asks the cluster for its map again.
    assert!(seen.iter().filter(|r| *r == "CLUSTER SLOTS").count() >= 2);
}

#[tokio::test]
async fn a_redirect_loop_ends_in_the_last_redirect() {
    let slots = Arc::new(Mutex::new(Vec::new()));
    let own = Arc::new(Mutex::new(String::new()));
    let me = Arc::clone(&own);
    // The node sends every request back to itself.
    let node = FakeNode::start(
        Arc::clone(&slots),
        Box::new(move |_| reply(&format!("-MOVED 12539 {}\r\n", me.lock().unwrap()))),
    )
    .await;
    *own.lock().unwrap() = node.addr();
    *slots.lock().unwrap() = all_slots(&node.addr());
    let c = client(&node.addr()).await;
    let err = c.get("k").await.unwrap_err();
    assert_eq!(err, Error::Server(format!("MOVED 12539 {}", node.addr())));
    let tries = node.seen().iter().filter(|r| *r == "GET K").count();
    assert_eq!(tries, 17, "the first try and sixteen redirects");
}

#[tokio::test]
async fn ask_sends_asking_first_and_moved_moves_the_slot() {
    let slots = Arc::new(Mutex::new(Vec::new()));
    let target = FakeNode::start(
        Arc::clone(&slots),
        Box::new(|args| match args[0].to_ascii_uppercase().as_slice() {
            b"ASKING" => reply("+OK\r\n"),
            _ => reply("$6\r\nthere!\r\n"),
        }),
    )
    .await;
    let to = target.addr();
    let source = FakeNode::start(
        Arc::clone(&slots),
        Box::new(move |args| {
            if args[1] == b"asked" {
                reply(&format!("-ASK 1234 {to}\r\n"))
            } else {
                reply(&format!("-MOVED 5678 {to}\r\n"))
            }
        }),
    )
    .await;
    *slots.lock().unwrap() = all_slots(&source.addr());
    let c = client(&source.addr()).await;
    // slot("asked") and slot("moved") are whatever they are: the replies name slots, and the
    // client trusts the node for which slot moved.
    assert_eq!(
        c.get("asked").await.unwrap().as_deref(),
        Some(&b"there!"[..])
    );
    let seen = target.seen();
    let ask = seen
        .iter()
        .position(|r| r == "ASKING")
        .expect("ASKING sent");
    assert_eq!(seen[ask + 1], "GET ASKED");
    // ASK changes nothing in the map.
    assert_eq!(c.node_for(b"asked"), Some(source.addr()));
    // MOVED 5678 corrects slot 5678 and marks the map for a refresh: the next request asks for
    // the map again (here the source still gives every slot to itself).
    let moved_key = (0..)
        .map(|i| format!("m{i}"))
        .find(|k| dcache_placement::slot(k.as_bytes()) == 5678)
        .unwrap();
    assert_eq!(
        c.get(&moved_key).await.unwrap().as_deref(),
        Some(&b"there!"[..])
    );
    assert_eq!(c.node_for(moved_key.as_bytes()), Some(target.addr()));
    let maps_before = source
        .seen()
        .iter()
        .filter(|r| *r == "CLUSTER SLOTS")
        .count();
    let _ = c.get("asked").await;
    let maps_after = source
        .seen()
        .iter()
        .filter(|r| *r == "CLUSTER SLOTS")
        .count();
    assert_eq!(
        maps_after,
        maps_before + 1,
        "refreshed once, before the next request"
    );
}

#[tokio::test]
async fn a_dead_node_makes_the_client_refresh_and_go_where_the_map_now_says() {
    let slots = Arc::new(Mutex::new(Vec::new()));
    let survivor = FakeNode::start(Arc::clone(&slots), Box::new(|_| reply("$4\r\nhere\r\n"))).await;
    let doomed = FakeNode::start(Arc::clone(&slots), Box::new(|_| reply("$4\r\ngone\r\n"))).await;
    *slots.lock().unwrap() = all_slots(&doomed.addr());
    let c = client(&survivor.addr()).await;
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"gone"[..]));
    // The node dies; the cluster (here, the map every node serves) gives its slots away.
    let doomed_addr = doomed.addr();
    drop(doomed);
    *slots.lock().unwrap() = all_slots(&survivor.addr());
    // Its open connection breaks: the client fails over to where the map now points.
    let value = c.get("k").await;
    assert_eq!(value.unwrap().as_deref(), Some(&b"here"[..]));
    assert_eq!(c.node_for(b"k"), Some(survivor.addr()));
    assert_ne!(c.node_for(b"k"), Some(doomed_addr));
}
