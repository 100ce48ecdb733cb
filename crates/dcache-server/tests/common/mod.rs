//! Starts a node in-process on `127.0.0.1:0` and hands back its address; the node stops when
//! the handle is dropped.

#![allow(dead_code, reason = "each test file uses its own part of this helper")]

pub mod members;

use std::net::SocketAddr;
use std::sync::Arc;

use dcache_server::{ManualClock, NodeConfig, Server, Shared};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// 2026-06-01T00:00:00Z, a fixed start for manual clocks.
pub const T0: u64 = 1_780_272_000_000;

pub struct TestNode {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    pub clock: Option<Arc<ManualClock>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn test_config() -> NodeConfig {
    NodeConfig {
        port: 0,
        shards: 8,
        ..NodeConfig::default()
    }
}

/// A node with `config`, its port forced to 0, on the wall clock.
pub async fn start(config: NodeConfig) -> TestNode {
    start_with(config, false).await
}

/// A node whose clock moves only through `node.clock`.
pub async fn start_manual(config: NodeConfig) -> TestNode {
    start_with(config, true).await
}

async fn start_with(mut config: NodeConfig, manual: bool) -> TestNode {
    config.port = 0;
    config.bind = "127.0.0.1".into();
    let mut builder = Server::builder(config).admin_addr("127.0.0.1:0".parse().unwrap());
    let clock = manual.then(|| Arc::new(ManualClock::new(T0)));
    if let Some(clock) = &clock {
        builder = builder.clock(clock.clone());
    }
    let server = builder.bind().await.expect("the node binds");
    let mut node = run(server);
    node.clock = clock;
    node
}

/// Runs a node that the caller built and bound itself (for options `start` does not set).
pub fn run(server: Server) -> TestNode {
    let addr = server.local_addr();
    let admin = server.admin_addr();
    let shared = server.shared();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestNode {
        addr,
        admin,
        shared,
        clock: None,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestNode {
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// A multiplexed connection through the `redis` crate, the independent client.
    pub async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("the redis crate connects")
    }

    pub async fn raw(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    pub fn advance_ms(&self, ms: u64) {
        self.clock.as_ref().expect("a manual clock").advance_ms(ms);
    }

    /// Stops the node gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Sends raw bytes and reads until `expected` bytes have arrived or the peer closes.
pub async fn exchange(stream: &mut TcpStream, request: &[u8], expected: usize) -> Vec<u8> {
    stream.write_all(request).await.unwrap();
    read_n(stream, expected).await
}

/// Reads until what arrived ends with `suffix` (or the peer closes, or ten seconds pass).
pub async fn read_until(stream: &mut TcpStream, suffix: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(suffix) {
        match tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf)).await
        {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    got
}

pub async fn read_n(stream: &mut TcpStream, expected: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < expected {
        match tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf)).await
        {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
        }
    }
    got
}

/// True when the server closes `stream` within ten seconds (whatever it sends first is skipped).
pub async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Runs one command through the redis crate and returns its raw value.
pub async fn cmd(
    con: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> redis::RedisResult<redis::Value> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(con).await
}

/// Runs a command that must succeed and converts its reply.
pub async fn query<T: redis::FromRedisValue>(
    con: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let value = cmd(con, args)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    redis::from_redis_value(value).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A node with the test settings and a client of it.
pub async fn node_and_client() -> (TestNode, redis::aio::MultiplexedConnection) {
    let node = start(test_config()).await;
    let con = node.client().await;
    (node, con)
}

/// A command's reply as strings (an array of bulk strings).
pub async fn strings(con: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> Vec<String> {
    query(con, args).await
}

/// A command's integer reply.
pub async fn int(con: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> i64 {
    query(con, args).await
}

/// The error line of a command that must fail (code and detail, as Redis sends them).
pub async fn error_text(con: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> String {
    match cmd(con, args).await {
        Ok(v) => panic!("{args:?} should fail, got {v:?}"),
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
            .trim()
            .to_owned(),
    }
}

/// A connection whose requests may wait for ever (the crate's default gives up after 500 ms).
pub async fn patient(node: &TestNode) -> redis::aio::MultiplexedConnection {
    redis::Client::open(node.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(None),
        )
        .await
        .expect("the redis crate connects")
}

/// INFO's `blocked_clients`.
pub async fn blocked(con: &mut redis::aio::MultiplexedConnection) -> usize {
    let info: String = query(con, &["INFO", "clients"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .expect("INFO clients has blocked_clients")
        .trim()
        .parse()
        .unwrap()
}

/// Waits (ten seconds at most) until exactly `n` clients are blocked.
pub async fn until_blocked(con: &mut redis::aio::MultiplexedConnection, n: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = blocked(con).await;
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} clients blocked, waited for {n}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}
