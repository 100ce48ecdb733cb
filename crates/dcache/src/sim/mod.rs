//! `dcache sim`: replays a trace through the storage engine's own eviction policies (a
//! single-shard `dcache_store::Store` with room for N entries) and through Belady's optimum, at
//! several cache sizes, and prints the hit ratios.

mod belady;
mod trace;
mod workload;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use dcache_store::{Lookup, PolicyName, Store, StoreConfig, Value};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// The trace file (`.zst` is decompressed on the fly).
    #[arg(
        long,
        conflicts_with = "workload",
        required_unless_present = "workload"
    )]
    trace: Option<PathBuf>,
    /// A generated workload instead of a trace: `zipf:S:N:LEN`, `loop:N:LEN`, `scan:S:N:LEN` or
    /// `shift:S:N:LEN` (e.g. `zipf:1.0:1000000:10000000`).
    #[arg(long)]
    workload: Option<String>,
    /// Seed for generated workloads (printed, so that a run can be replayed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Its format.
    #[arg(long, value_enum, default_value = "arc")]
    format: trace::Format,
    /// Cache sizes, in entries, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    sizes: Vec<usize>,
    /// Policies, comma-separated (any `maxmemory-policy` name of an evicting policy).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lru,lfu,random,sieve,s3fifo,w-tinylfu"
    )]
    policies: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Hits of `policy` over `trace` with room for `capacity` entries, through the real store.
#[cfg(test)]
fn replay(trace: &[u64], capacity: usize, policy: PolicyName) -> u64 {
    replay_with(trace, capacity, policy, &ProgressBar::hidden())
}

/// Requests between two moves of the progress bar: often enough to look live, rare enough to
/// cost nothing beside a store look-up each.
const PROGRESS_STEP: usize = 1 << 16;

/// As `replay`, moving `progress` by every request replayed.
fn replay_with(trace: &[u64], capacity: usize, policy: PolicyName, progress: &ProgressBar) -> u64 {
    let store = Store::new(
        StoreConfig::default()
            .shards(1)
            .max_entries(capacity)
            .policy(policy),
    );
    let now = 1_800_000_000_000;
    let mut hits = 0;
    for (i, page) in trace.iter().enumerate() {
        if i % PROGRESS_STEP == PROGRESS_STEP - 1 {
            progress.inc(PROGRESS_STEP as u64);
        }
        let bytes = page.to_le_bytes();
        let key = store.key(&bytes);
        let mut shard = store.lock(&key);
        if shard.get(&key, now, Lookup::Read).is_some() {
            hits += 1;
        } else {
            shard.set(&key, Value::Str(b""), None, false, now);
        }
    }
    progress.inc((trace.len() % PROGRESS_STEP) as u64);
    hits
}

/// A bar over every request of every replay (each policy and Belady's at each size), drawn on
/// standard error only when it is a terminal: a run over a long trace takes minutes.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} (eta {eta})")
            .expect("a valid template"),
    );
    bar
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let trace = match (&args.trace, &args.workload) {
        (Some(path), _) => trace::read(path, args.format)?,
        (None, Some(spec)) => {
            eprintln!("workload {spec}, seed {}", args.seed);
            workload::generate(spec, args.seed)?
        }
        (None, None) => anyhow::bail!("give --trace or --workload"),
    };
    anyhow::ensure!(!trace.is_empty(), "the trace is empty");
    let policies: Vec<(String, PolicyName)> = args
        .policies
        .iter()
        .map(|p| {
            p.parse::<PolicyName>()
                .map(|n| (p.clone(), n))
                .map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<_>>()
        .context("--policies")?;
    let ratio = |hits: u64| hits as f64 * 100.0 / trace.len() as f64;
    let runs = args.sizes.len() * (policies.len() + 1);
    let progress = progress_bar((trace.len() * runs) as u64);
    let mut rows = Vec::new();
    for &size in &args.sizes {
        let mut row: Vec<(String, f64)> = policies
            .iter()
            .map(|(name, policy)| {
                progress.set_message(format!("{name} at {size}"));
                let hits = replay_with(&trace, size, *policy, &progress);
                (name.clone(), ratio(hits))
            })
            .collect();
        progress.set_message(format!("belady at {size}"));
        row.push(("belady".into(), ratio(belady::hits(&trace, size))));
        progress.inc(trace.len() as u64);
        rows.push((size, row));
    }
    progress.finish_and_clear();
    if args.json {
        let rows: Vec<String> = rows
            .iter()
            .map(|(size, row)| {
                let cells: Vec<String> = row
                    .iter()
                    .map(|(n, r)| format!("\"{n}\": {r:.4}"))
                    .collect();
                format!("{{\"size\": {size}, {}}}", cells.join(", "))
            })
            .collect();
        println!(
            "{{\"requests\": {}, \"hit_ratio_percent\": [{}]}}",
            trace.len(),
            rows.join(", ")
        );
        return Ok(());
    }
    println!("{} requests; hit ratio in %", trace.len());
    let names: Vec<&str> = rows[0].1.iter().map(|(n, _)| n.as_str()).collect();
    println!("| size | {} |", names.join(" | "));
    println!("|---:|{}", "---:|".repeat(names.len()));
    for (size, row) in rows {
        let cells: Vec<String> = row.iter().map(|(_, r)| format!("{r:.2}")).collect();
        println!("| {size} | {} |", cells.join(" | "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures printed in the traces' README (N. Megiddo and D. S. Modha, "ARC: A
    /// Self-Tuning, Low Overhead Replacement Cache", USENIX FAST 2003): LRU 32.83 % and Belady
    /// 53.61 % on OLTP at 1,000 pages.
    #[test]
    fn reproduces_the_published_oltp_figures() {
        let Some(path) = trace::tests::oltp() else {
            return;
        };
        let trace = trace::read(&path, trace::Format::Arc).unwrap();
        let ratio = |hits: u64| format!("{:.2}", hits as f64 * 100.0 / trace.len() as f64);
        assert_eq!(ratio(belady::hits(&trace, 1000)), "53.61");
        assert_eq!(ratio(replay(&trace, 1000, "lru".parse().unwrap())), "32.83");
    }

    /// S3-FIFO's two tunables (small-queue share, ghost size) were chosen on OLTP, so OLTP cannot
    /// tell whether they generalise. P3 (a workstation disk trace, not looked at when tuning)
    /// can: at 65,536 pages S3-FIFO hits 30.6 % where LRU hits 12.7 % (docs/EVICTION.md's
    /// method). The test asks for 1.5 times LRU's hits, a margin any sound setting keeps and
    /// one that LRU-like behaviour (a small queue that admits everything) does not reach.
    #[test]
    fn s3fifo_beats_lru_on_a_trace_it_was_not_tuned_on() {
        let Some(path) = trace::tests::arc("P3.lis.zst") else {
            return;
        };
        let trace = trace::read(&path, trace::Format::Arc).unwrap();
        let lru = replay(&trace, 65_536, "lru".parse().unwrap());
        let s3fifo = replay(&trace, 65_536, "s3fifo".parse().unwrap());
        let pct = |hits: u64| hits as f64 * 100.0 / trace.len() as f64;
        assert!(
            s3fifo as f64 >= 1.5 * lru as f64,
            "P3 at 65,536: S3-FIFO {:.2} %, LRU {:.2} %",
            pct(s3fifo),
            pct(lru)
        );
    }

    fn miss_ratio(trace: &[u64], size: usize, policy: &str) -> f64 {
        1.0 - replay(trace, size, policy.parse().unwrap()) as f64 / trace.len() as f64
    }

    /// On a Zipf(1.0) stream, caches of 1 % and 10 % of the keys: the frequency-aware policies
    /// miss at least 15 % less often than LRU. (`docs/EVICTION.md` has the full-size run, a
    /// million keys; this one is a tenth of it, to stay quick.)
    #[test]
    fn modern_policies_miss_less_than_lru_on_zipf() {
        let trace = workload::generate("zipf:1.0:100000:1000000", 1).unwrap();
        for size in [1_000, 10_000] {
            let lru = miss_ratio(&trace, size, "lru");
            for policy in ["s3fifo", "w-tinylfu", "sieve"] {
                let got = miss_ratio(&trace, size, policy);
                assert!(
                    got <= lru * 0.85,
                    "{policy} at {size}: miss ratio {got:.4}, LRU {lru:.4}"
                );
            }
        }
    }

    /// A loop over twice the cache: LRU never hits; the modern policies keep part of the loop and
    /// hit at least one request in ten.
    #[test]
    fn no_collapse_on_a_loop_larger_than_the_cache() {
        let trace = workload::generate("loop:2000:100000", 1).unwrap();
        assert!(miss_ratio(&trace, 1000, "lru") > 0.99);
        for policy in ["s3fifo", "w-tinylfu"] {
            let got = miss_ratio(&trace, 1000, policy);
            assert!(got < 0.9, "{policy} misses {got:.3} of a loop");
        }
    }

    #[test]
    fn no_policy_beats_belady() {
        let mut state = 7u64;
        let trace: Vec<u64> = (0..20_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // A skewed key space: small keys far more often.
                (state >> 33) % 1000 * ((state >> 20) % 1000) / 1000
            })
            .collect();
        for size in [10, 100, 500] {
            let best = belady::hits(&trace, size);
            for policy in ["lru", "lfu", "random", "sieve", "s3fifo", "w-tinylfu"] {
                let got = replay(&trace, size, policy.parse().unwrap());
                assert!(got <= best, "{policy} at {size}: {got} > Belady's {best}");
            }
        }
    }
}
