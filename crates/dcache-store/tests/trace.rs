//! Replays the ARC paper's OLTP trace (N. Megiddo and D. S. Modha, "ARC: A Self-Tuning, Low
//! Overhead Replacement Cache", USENIX FAST 2003) through a single-shard store with room for
//! 1,000 entries, and checks the exact-LRU hit ratio against the figure in the traces' README.
//!
//! The traces live outside the repository (`shared/traces/` beside the checkout, or the folder
//! in `DCACHE_TRACES`); without them the test says so and passes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use dcache_store::{Lookup, PolicyName, Store, StoreConfig, Value};

fn traces_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DCACHE_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces")
        });
    dir.join("arc/OLTP.lis.zst").exists().then_some(dir)
}

/// Every page the trace requests, in order: each line `START COUNT _ _` stands for COUNT pages.
fn pages(path: &std::path::Path) -> Vec<u64> {
    let file = std::fs::File::open(path).unwrap();
    let decoder = ruzstd::decoding::StreamingDecoder::new(file).unwrap();
    let mut pages = Vec::new();
    for line in BufReader::new(decoder).lines() {
        let line = line.unwrap();
        let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().unwrap());
        let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
            continue;
        };
        pages.extend(start..start + count);
    }
    pages
}

#[test]
fn exact_lru_reproduces_the_published_oltp_figure() {
    let Some(dir) = traces_dir() else {
        println!("skipped: the ARC traces are not there (set DCACHE_TRACES to their folder)");
        return;
    };
    let pages = pages(&dir.join("arc/OLTP.lis.zst"));
    let policy: PolicyName = "lru".parse().unwrap();
    let store = Store::new(
        StoreConfig::default()
            .shards(1)
            .max_entries(1_000)
            .policy(policy),
    );
    let now = 1_800_000_000_000;
    let mut hits = 0u64;
    for page in &pages {
        let bytes = page.to_le_bytes();
        let key = store.key(&bytes);
        let mut shard = store.lock(&key);
        if shard.get(&key, now, Lookup::Read).is_some() {
            hits += 1;
        } else {
            shard.set(&key, Value::Str(b""), None, false, now);
        }
    }
    let ratio = hits as f64 * 100.0 / pages.len() as f64;
    println!(
        "OLTP, {} requests, LRU at 1,000 entries: {ratio:.2} % hits",
        pages.len()
    );
    assert_eq!(format!("{ratio:.2}"), "32.83");
    assert_eq!(store.stats().hits, hits);
}
