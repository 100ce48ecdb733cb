//! `dcache bench`: a load generator for one RESP server (dcache, Redis), one memcached, or a
//! dcache cluster through `dcache-client`.
//!
//! Each connection sends its requests in batches of `--pipeline` and waits for the whole batch
//! before the next, as redis-benchmark does; a request's latency runs from the moment its batch
//! is written to the moment its reply is read. Latencies go into one HDR histogram per connection,
//! merged at the end. The run is bounded by `--requests` or by `--duration`, whichever is given
//! (the request count by default).

mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::random::{Rng, Zipf};
pub use wire::Protocol;
use wire::{Reply, encode_get, encode_set, parse_reply};

/// Where `dcache node` listens by default, and the first node of `dcache launch`.
const DEFAULT_SERVER: &str = "127.0.0.1:5000";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server, `HOST:PORT`: by default the first node `dcache launch` or `dcache node`
    /// starts (give Redis's `127.0.0.1:6379` or memcached's `127.0.0.1:11211` to compare).
    #[arg(long, default_value = DEFAULT_SERVER, conflicts_with = "cluster")]
    server: String,
    /// A dcache cluster instead (comma-separated `HOST:PORT`s), driven through dcache-client:
    /// `--connections` × `--pipeline` requests in flight over the client's connections.
    #[arg(long, value_delimiter = ',')]
    cluster: Vec<String>,
    /// With `--cluster`: a near cache of this size in the client (`64mb`), kept coherent by
    /// client-side caching, so that GETs of keys it holds make no round trip.
    #[arg(long, requires = "cluster", value_parser = parse_bytes)]
    near_cache: Option<dcache_server::ByteSize>,
    /// The wire protocol of `--server`.
    #[arg(long, value_enum, default_value = "resp")]
    protocol: Protocol,
    /// Connections (each one a task).
    #[arg(long, short = 'c', default_value_t = 50)]
    connections: usize,
    /// Requests sent together on a connection before waiting for their replies.
    #[arg(long, short = 'P', default_value_t = 1)]
    pipeline: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// How keys are picked: `uniform`, `zipf:S` (rank k with probability ∝ 1/k^S) or
    /// `hot:F:P` (a fraction F of the keys gets a fraction P of the requests).
    #[arg(long, default_value = "uniform")]
    distribution: String,
    /// Key length in bytes, fixed (`16`) or a range (`16-64`: each key's length is fixed by its
    /// number, so it is the same key every time); at least long enough for the key's number.
    #[arg(long, default_value = "16")]
    key_size: String,
    /// Value length in bytes, fixed (`64`) or a range (`64-1024`, uniform).
    #[arg(long, default_value = "64")]
    value_size: String,
    /// Fraction of requests that are GETs; the rest are SETs.
    #[arg(long, default_value_t = 0.9)]
    reads: f64,
    /// Write every key once before the measured run.
    #[arg(long)]
    preload: bool,
    /// Requests in the measured run.
    #[arg(long, short = 'n', default_value_t = 1_000_000)]
    requests: u64,
    /// Run for this many seconds instead of a request count.
    #[arg(long)]
    duration: Option<f64>,
    /// Runtime threads for the generator (1: everything on the calling thread).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed for key and value choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

/// How keys are drawn.
enum Keys {
    Uniform(u64),
    Zipf(Zipf),
    /// `hot` keys get a share `p` of the requests; the rest spread over the others.
    Hot {
        n: u64,
        hot: u64,
        p: f64,
    },
}

impl Keys {
    fn parse(spec: &str, n: u64) -> anyhow::Result<Keys> {
        let parts: Vec<&str> = spec.split(':').collect();
        let num = |i: usize| -> anyhow::Result<f64> {
            parts
                .get(i)
                .context("missing a number")?
                .parse::<f64>()
                .with_context(|| format!("bad number in {spec:?}"))
        };
        Ok(match parts[0] {
            "uniform" => Keys::Uniform(n),
            "zipf" => Keys::Zipf(Zipf::new(num(1)?, usize::try_from(n)?)),
            "hot" => {
                let (f, p) = (num(1)?, num(2)?);
                if !(0.0..=1.0).contains(&f) || !(0.0..=1.0).contains(&p) {
                    bail!("hot:F:P takes two fractions between 0 and 1, got {spec:?}");
                }
                Keys::Hot {
                    n,
                    hot: ((n as f64 * f) as u64).clamp(1, n),
                    p,
                }
            }
            other => bail!("unknown distribution {other:?} (uniform, zipf:S, hot:F:P)"),
        })
    }

    fn pick(&self, rng: &mut Rng) -> u64 {
        match self {
            Keys::Uniform(n) => rng.next_u64() % n,
            Keys::Zipf(zipf) => zipf.sample(rng),
            Keys::Hot { n, hot, p } => {
                if rng.unit() < *p || hot == n {
                    rng.next_u64() % hot
                } else {
                    hot + rng.next_u64() % (n - hot)
                }
            }
        }
    }
}

/// Everything the connections share.
struct Plan {
    protocol: Protocol,
    pipeline: usize,
    keys: Keys,
    key_count: u64,
    key_sizes: (usize, usize),
    values: (usize, usize),
    reads: f64,
    /// Requests not yet handed out (when bounded by count).
    remaining: AtomicU64,
    deadline: Option<Instant>,
    done: AtomicU64,
    /// A value buffer as long as the longest value; values are prefixes of it.
    payload: Vec<u8>,
}

impl Plan {
    /// How many requests the next batch may send: 0 when the run is over.
    fn take(&self, want: u64) -> u64 {
        if let Some(deadline) = self.deadline {
            return if Instant::now() < deadline { want } else { 0 };
        }
        let mut left = self.remaining.load(Ordering::Relaxed);
        loop {
            let take = left.min(want);
            if take == 0 {
                return 0;
            }
            match self.remaining.compare_exchange_weak(
                left,
                left - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(now) => left = now,
            }
        }
    }

    fn key(&self, id: u64, out: &mut Vec<u8>) {
        out.clear();
        let digits = id.to_string();
        out.extend_from_slice(b"key:");
        let (lo, hi) = self.key_sizes;
        let len = if hi > lo {
            // The key's own number picks its length, so that every request for it agrees.
            lo + (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % (hi - lo + 1)
        } else {
            lo
        };
        let pad = len.saturating_sub(4 + digits.len());
        out.extend(std::iter::repeat_n(b'0', pad));
        out.extend_from_slice(digits.as_bytes());
    }

    fn value(&self, rng: &mut Rng) -> &[u8] {
        let (lo, hi) = self.values;
        let len = if hi > lo {
            lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize
        } else {
            lo
        };
        &self.payload[..len]
    }
}

/// What one connection counted.
struct Tally {
    latency: Histogram<u64>,
    hits: u64,
    misses: u64,
    errors: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            // Microseconds, from 1 µs to an hour, three significant digits.
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            hits: 0,
            misses: 0,
            errors: 0,
        }
    }

    fn count(&mut self, reply: Reply, micros: u64) {
        self.latency.saturating_record(micros.max(1));
        match reply {
            Reply::Hit => self.hits += 1,
            Reply::Miss => self.misses += 1,
            Reply::Stored => {}
            Reply::Error => self.errors += 1,
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.latency.add(&other.latency).expect("same bounds");
        self.hits += other.hits;
        self.misses += other.misses;
        self.errors += other.errors;
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(bench(args))
}

fn parse_size(flag: &str, spec: &str) -> anyhow::Result<(usize, usize)> {
    let bad = || format!("{flag} takes a length or a range like 64-1024, got {spec:?}");
    let (lo, hi) = match spec.split_once('-') {
        Some((lo, hi)) => (lo.parse().with_context(bad)?, hi.parse().with_context(bad)?),
        None => {
            let n = spec.parse().with_context(bad)?;
            (n, n)
        }
    };
    if lo > hi {
        bail!(bad());
    }
    Ok((lo, hi))
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.pipeline == 0 || args.keys == 0 {
        bail!("--connections, --pipeline and --keys must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.reads) {
        bail!("--reads is a fraction between 0 and 1");
    }
    let plan = |deadline| -> anyhow::Result<Arc<Plan>> {
        let values = parse_size("--value-size", &args.value_size)?;
        Ok(Arc::new(Plan {
            protocol: args.protocol,
            pipeline: args.pipeline,
            keys: Keys::parse(&args.distribution, args.keys)?,
            key_count: args.keys,
            key_sizes: parse_size("--key-size", &args.key_size)?,
            values,
            reads: args.reads,
            remaining: AtomicU64::new(args.requests),
            deadline,
            done: AtomicU64::new(0),
            payload: (0..values.1).map(|i| b'a' + (i % 26) as u8).collect(),
        }))
    };
    let target = if args.cluster.is_empty() {
        Target::Server(
            tokio::net::lookup_host(&args.server)
                .await
                .with_context(|| format!("resolving {}", args.server))?
                .next()
                .with_context(|| format!("no address for {}", args.server))?,
        )
    } else {
        Target::Cluster(Arc::new(
            crate::cli::connect(
                dcache_client::Client::builder()
                    .nodes(args.cluster.iter())
                    .near_cache(args.near_cache.map_or(0, |b| b.0)),
            )
            .await
            .context("connecting to the cluster")?,
        ))
    };

    if args.preload {
        let started = Instant::now();
        preload(&target, &plan(None)?, args.connections).await?;
        if !args.json {
            eprintln!(
                "preloaded {} keys in {:.2} s",
                args.keys,
                started.elapsed().as_secs_f64()
            );
        }
    }

    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let plan = plan(deadline)?;
    let progress = progress_bar(&plan, args.duration, args.requests, args.json);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for conn in 0..args.connections {
        let plan = plan.clone();
        let seed = args
            .seed
            .wrapping_add((conn as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        match &target {
            Target::Server(addr) => {
                let addr = *addr;
                tasks.spawn(async move { drive_connection(addr, &plan, seed).await });
            }
            Target::Cluster(client) => {
                for lane in 0..args.pipeline {
                    let (plan, client) = (plan.clone(), client.clone());
                    let seed = seed.wrapping_add(lane as u64);
                    tasks.spawn(async move { drive_client(&client, &plan, seed).await });
                }
            }
        }
    }
    let mut total = Tally::new();
    while let Some(result) = tasks.join_next().await {
        total.merge(&result.context("a connection task panicked")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some((bar, ticker)) = progress {
        ticker.abort();
        bar.finish_and_clear();
    }
    report(&args, &total, elapsed);
    if let Target::Cluster(client) = &target
        && let Some(near) = client.near_cache_stats()
        && !args.json
    {
        println!(
            "near cache: {} hits, {} misses, {} invalidations, {} evictions, {} entries ({} bytes)",
            near.hits, near.misses, near.invalidations, near.evictions, near.entries, near.bytes
        );
    }
    Ok(())
}

fn parse_bytes(s: &str) -> Result<dcache_server::ByteSize, String> {
    s.parse()
}

enum Target {
    Server(SocketAddr),
    Cluster(Arc<dcache_client::Client>),
}

/// Writes every key once, the key space split between the connections.
async fn preload(target: &Target, plan: &Arc<Plan>, connections: usize) -> anyhow::Result<()> {
    let per = plan.key_count.div_ceil(connections as u64);
    let mut tasks = tokio::task::JoinSet::new();
    for conn in 0..connections as u64 {
        let range = conn * per..((conn + 1) * per).min(plan.key_count);
        let plan = plan.clone();
        match target {
            Target::Server(addr) => {
                let addr = *addr;
                tasks.spawn(async move {
                    let mut stream = connect(addr).await?;
                    let (mut out, mut key, mut rng) = (Vec::new(), Vec::new(), Rng(conn | 1));
                    let mut buf = Vec::with_capacity(64 * 1024);
                    let ids: Vec<u64> = range.collect();
                    for chunk in ids.chunks(64) {
                        out.clear();
                        for &id in chunk {
                            plan.key(id, &mut key);
                            encode_set(plan.protocol, &key, plan.value(&mut rng), &mut out);
                        }
                        stream.write_all(&out).await?;
                        let mut refused = false;
                        read_replies(&mut stream, &mut buf, plan.protocol, chunk.len(), |r| {
                            refused |= r == Reply::Error;
                        })
                        .await?;
                        if refused {
                            bail!("the server refused a preload SET (is it out of memory?)");
                        }
                    }
                    anyhow::Ok(())
                });
            }
            Target::Cluster(client) => {
                let client = client.clone();
                tasks.spawn(async move {
                    let (mut key, mut rng) = (Vec::new(), Rng(conn | 1));
                    for id in range {
                        plan.key(id, &mut key);
                        client.set(&key, plan.value(&mut rng)).await?;
                    }
                    anyhow::Ok(())
                });
            }
        }
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads replies until `count` have come, calling `each` with every one.
async fn read_replies(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    protocol: Protocol,
    count: usize,
    mut each: impl FnMut(Reply),
) -> anyhow::Result<()> {
    let mut seen = 0;
    let mut start = 0;
    while seen < count {
        match parse_reply(protocol, &buf[start..]).map_err(anyhow::Error::msg)? {
            Some((reply, used)) => {
                start += used;
                seen += 1;
                each(reply);
            }
            None => {
                buf.drain(..start);
                start = 0;
                if buf.capacity() - buf.len() < 16 * 1024 {
                    buf.reserve(64 * 1024);
                }
                if stream.read_buf(buf).await? == 0 {
                    bail!("the server closed the connection");
                }
            }
        }
    }
    buf.drain(..start);
    Ok(())
}

async fn drive_connection(addr: SocketAddr, plan: &Plan, seed: u64) -> anyhow::Result<Tally> {
    let mut stream = connect(addr).await?;
    let mut tally = Tally::new();
    let mut rng = Rng(seed | 1);
    let (mut out, mut key, mut buf) = (Vec::new(), Vec::new(), Vec::with_capacity(64 * 1024));
    loop {
        let batch = plan.take(plan.pipeline as u64);
        if batch == 0 {
            return Ok(tally);
        }
        out.clear();
        for _ in 0..batch {
            plan.key(plan.keys.pick(&mut rng), &mut key);
            if rng.unit() < plan.reads {
                encode_get(plan.protocol, &key, &mut out);
            } else {
                encode_set(plan.protocol, &key, plan.value(&mut rng), &mut out);
            }
        }
        let sent = Instant::now();
        stream.write_all(&out).await?;
        read_replies(
            &mut stream,
            &mut buf,
            plan.protocol,
            batch as usize,
            |reply| {
                tally.count(reply, sent.elapsed().as_micros() as u64);
            },
        )
        .await?;
        plan.done.fetch_add(batch, Ordering::Relaxed);
    }
}

async fn drive_client(
    client: &dcache_client::Client,
    plan: &Plan,
    seed: u64,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::new();
    let mut rng = Rng(seed | 1);
    let mut key = Vec::new();
    while plan.take(1) == 1 {
        plan.key(plan.keys.pick(&mut rng), &mut key);
        let sent = Instant::now();
        let reply = if rng.unit() < plan.reads {
            match client.get(&key).await {
                Ok(Some(_)) => Reply::Hit,
                Ok(None) => Reply::Miss,
                Err(dcache_client::Error::Server(_)) => Reply::Error,
                Err(e) => return Err(e.into()),
            }
        } else {
            match client.set(&key, plan.value(&mut rng)).await {
                Ok(()) => Reply::Stored,
                Err(dcache_client::Error::Server(_)) => Reply::Error,
                Err(e) => return Err(e.into()),
            }
        };
        tally.count(reply, sent.elapsed().as_micros() as u64);
        plan.done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(tally)
}

/// A progress bar on standard error while the run goes (drawn only on a terminal), and the task
/// that moves it; the caller stops the task and clears the bar.
fn progress_bar(
    plan: &Arc<Plan>,
    duration: Option<f64>,
    requests: u64,
    json: bool,
) -> Option<(indicatif::ProgressBar, tokio::task::JoinHandle<()>)> {
    if json {
        return None;
    }
    let bar = match duration {
        Some(secs) => indicatif::ProgressBar::new((secs * 1000.0) as u64),
        None => indicatif::ProgressBar::new(requests),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {msg}")
            .expect("a valid template"),
    );
    let (plan, started, shown) = (plan.clone(), Instant::now(), bar.clone());
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            let done = plan.done.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64();
            shown.set_position(match duration {
                Some(_) => (secs * 1000.0) as u64,
                None => done,
            });
            shown.set_message(format!("{:.0} ops/s", done as f64 / secs.max(1e-9)));
        }
    });
    Some((bar, ticker))
}

/// The latency percentiles the report gives, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Latencies {
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}

impl Latencies {
    /// From a histogram of microseconds.
    fn of(h: &Histogram<u64>) -> Latencies {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Latencies {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p99_9: ms(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

fn report(args: &BenchArgs, total: &Tally, elapsed: f64) {
    let h = &total.latency;
    let requests = h.len();
    let ops = requests as f64 / elapsed;
    let l = Latencies::of(h);
    let gets = total.hits + total.misses;
    let hit_ratio = (gets > 0).then(|| total.hits as f64 / gets as f64);
    let target = if args.cluster.is_empty() {
        args.server.clone()
    } else {
        format!("cluster {}", args.cluster.join(","))
    };
    if args.json {
        let json = serde_json::json!({
            "target": target,
            "protocol": format!("{:?}", args.protocol).to_lowercase(),
            "connections": args.connections,
            "pipeline": args.pipeline,
            "keys": args.keys,
            "distribution": args.distribution,
            "value_size": args.value_size,
            "reads": args.reads,
            "requests": requests,
            "seconds": elapsed,
            "ops_per_sec": ops,
            "latency_ms": {
                "p50": l.p50, "p90": l.p90, "p99": l.p99, "p99_9": l.p99_9, "max": l.max,
            },
            "gets": gets,
            "hits": total.hits,
            "hit_ratio": hit_ratio,
            "errors": total.errors,
        });
        println!("{json}");
        return;
    }
    println!(
        "{target} ({}), {} connections, pipeline {}, {} keys {}, values {} B, {:.0} % GET",
        format!("{:?}", args.protocol).to_lowercase(),
        args.connections,
        args.pipeline,
        args.keys,
        args.distribution,
        args.value_size,
        args.reads * 100.0
    );
    println!("  {requests} requests in {elapsed:.2} s: {ops:.0} ops/s");
    println!(
        "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        l.p50, l.p90, l.p99, l.p99_9, l.max
    );
    match hit_ratio {
        Some(r) => println!(
            "  hit ratio {:.2} % ({} of {gets} GETs); errors {}",
            r * 100.0,
            total.hits,
            total.errors
        ),
        None => println!("  no GETs; errors {}", total.errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_set_gets_its_share() {
        let keys = Keys::parse("hot:0.1:0.9", 1000).unwrap();
        let mut rng = Rng(7);
        let n = 100_000;
        let hot = (0..n).filter(|_| keys.pick(&mut rng) < 100).count();
        let share = hot as f64 / n as f64;
        assert!((share - 0.9).abs() < 0.01, "hot share {share}");
        assert!(Keys::parse("hot:2:0.5", 10).is_err());
        assert!(Keys::parse("pareto:1", 10).is_err());
    }

    #[test]
    fn uniform_and_zipf_stay_in_the_key_space() {
        let mut rng = Rng(3);
        for spec in ["uniform", "zipf:0.99"] {
            let keys = Keys::parse(spec, 50).unwrap();
            let mut seen = [0u32; 50];
            for _ in 0..10_000 {
                seen[keys.pick(&mut rng) as usize] += 1;
            }
            assert!(seen.iter().all(|&c| c > 0), "{spec}: {seen:?}");
        }
    }

    /// Known samples give known percentiles: 1..=1000 µs, one each, and one slow outlier;
    /// the histogram keeps three significant digits.
    #[test]
    fn latencies_are_the_percentiles_of_what_was_counted() {
        let mut tally = Tally::new();
        for micros in 1..=1000 {
            tally.count(Reply::Hit, micros);
        }
        tally.count(Reply::Miss, 2_500_000);
        // A reply faster than the clock can tell counts as 1 µs, not as nothing.
        tally.count(Reply::Stored, 0);
        let mut merged = Tally::new();
        merged.merge(&tally);
        assert_eq!((merged.hits, merged.misses, merged.errors), (1000, 1, 0));
        let l = Latencies::of(&merged.latency);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1e-9;
        // 1002 samples: the median is the 501st smallest, 500 µs (1 µs comes twice).
        for (name, got, want) in [
            ("p50", l.p50, 0.500),
            ("p90", l.p90, 0.901),
            ("p99", l.p99, 0.991),
            ("p99.9", l.p99_9, 1.000),
            ("max", l.max, 2_500.0),
        ] {
            assert!(close(got, want), "{name}: {got} ms, want {want}");
        }
        assert_eq!(merged.latency.min(), 1);
    }

    #[test]
    fn the_default_target_is_a_local_dcache_node() {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let args = <Wrap as clap::Parser>::parse_from(["bench"]).bench;
        assert_eq!(args.server, "127.0.0.1:5000");
        assert_eq!(args.protocol, Protocol::Resp);
        // The same port `dcache node` takes when given none.
        assert_eq!(
            args.server,
            format!("127.0.0.1:{}", dcache_server::NodeConfig::default().port)
        );
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("--value-size", "64").unwrap(), (64, 64));
        assert_eq!(parse_size("--value-size", "64-1024").unwrap(), (64, 1024));
        assert!(parse_size("--value-size", "1024-64").is_err());
        let err = parse_size("--key-size", "big").unwrap_err().to_string();
        assert!(err.contains("--key-size"), "{err}");
    }
}
