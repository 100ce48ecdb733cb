//! Throughput through the client to one node with 64 requests in flight, beside the `redis`
//! crate's multiplexed connection in the same run, against the same node.
//!
//! `cargo run --release -p dcache-client --example throughput -- 127.0.0.1:5000 [requests] [rounds]`
//!
//! Each round runs GET and SET (16-byte keys, 64-byte values over 10,000 keys) through both
//! clients, interleaved; the figures quoted in docs/PERFORMANCE.md are the medians.

use std::sync::Arc;
use std::time::Instant;

use dcache_client::Client;
use redis::AsyncCommands;

const IN_FLIGHT: usize = 64;
const KEYS: usize = 10_000;

fn key(i: usize) -> String {
    format!("key:{:012}", i % KEYS)
}

async fn run_dcache(client: Arc<Client>, requests: usize, set: bool) -> f64 {
    let value = vec![b'x'; 64];
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..IN_FLIGHT {
        let client = Arc::clone(&client);
        let value = value.clone();
        tasks.spawn(async move {
            for i in (t..requests).step_by(IN_FLIGHT) {
                if set {
                    client.set(key(i), &value).await.expect("SET");
                } else {
                    client.get(key(i)).await.expect("GET");
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    requests as f64 / start.elapsed().as_secs_f64()
}

async fn run_redis(con: redis::aio::MultiplexedConnection, requests: usize, set: bool) -> f64 {
    let value = vec![b'x'; 64];
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..IN_FLIGHT {
        let mut con = con.clone();
        let value = value.clone();
        tasks.spawn(async move {
            for i in (t..requests).step_by(IN_FLIGHT) {
                if set {
                    let () = con.set(key(i), &value).await.expect("SET");
                } else {
                    let _: Option<Vec<u8>> = con.get(key(i)).await.expect("GET");
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    requests as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let node = args.next().unwrap_or_else(|| "127.0.0.1:5000".into());
    let requests: usize = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let client = Arc::new(Client::builder().nodes([node.clone()]).build().await?);
    let con = redis::Client::open(format!("redis://{node}/"))?
        .get_multiplexed_async_connection()
        .await?;
    let mut results: Vec<(&str, bool, Vec<f64>)> = vec![
        ("dcache-client", true, vec![]),
        ("redis crate", true, vec![]),
        ("dcache-client", false, vec![]),
        ("redis crate", false, vec![]),
    ];
    // DCACHE_ONLY=1 skips the redis crate (for profiling one client alone).
    let only = std::env::var_os("DCACHE_ONLY").is_some();
    for round in 0..rounds {
        for entry in results
            .iter_mut()
            .filter(|e| !only || e.0 == "dcache-client")
        {
            let ops = if entry.0 == "dcache-client" {
                run_dcache(Arc::clone(&client), requests, entry.1).await
            } else {
                run_redis(con.clone(), requests, entry.1).await
            };
            println!(
                "round {} {:<13} {} {ops:>10.0} ops/s",
                round + 1,
                entry.0,
                if entry.1 { "SET" } else { "GET" }
            );
            entry.2.push(ops);
        }
    }
    println!("\n| command | client | ops/s (median of {rounds}) |\n|---|---|---:|");
    for (name, set, ops) in results.into_iter().filter(|e| !e.2.is_empty()) {
        println!(
            "| {} | {name} | {:.0} |",
            if set { "SET" } else { "GET" },
            median(ops)
        );
    }
    Ok(())
}
