//! Generated workloads for the hit-ratio lab, seeded so that every run can be replayed:
//!
//! * `zipf:S:N:LEN` — LEN requests over N keys, key of rank k with probability ∝ 1/k^S;
//! * `loop:N:LEN` — keys 0..N in a loop (LRU's worst case when N exceeds the cache);
//! * `scan:S:N:LEN` — a Zipf stream with a one-pass scan of fresh keys over every fifth request;
//! * `shift:S:N:LEN` — Zipf whose popular keys change halfway through.

use anyhow::{Context, bail};

use crate::random::{Rng, Zipf};

/// Generates the workload a spec names (see the module docs), from `seed`.
///
/// # Errors
/// A spec that does not parse.
pub fn generate(spec: &str, seed: u64) -> anyhow::Result<Vec<u64>> {
    let parts: Vec<&str> = spec.split(':').collect();
    let num = |i: usize| -> anyhow::Result<usize> {
        parts
            .get(i)
            .context("missing a number")?
            .replace('_', "")
            .parse()
            .with_context(|| format!("bad number in {spec:?}"))
    };
    let exponent = || -> anyhow::Result<f64> {
        parts
            .get(1)
            .context("missing the exponent")?
            .parse()
            .context("bad exponent")
    };
    let mut rng = Rng(seed | 1);
    Ok(match parts[0] {
        "zipf" => {
            let (zipf, len) = (Zipf::new(exponent()?, num(2)?), num(3)?);
            (0..len).map(|_| zipf.sample(&mut rng)).collect()
        }
        "loop" => {
            let (n, len) = (num(1)?, num(2)?);
            (0..len).map(|i| (i % n) as u64).collect()
        }
        "scan" => {
            let (n, len) = (num(2)?, num(3)?);
            let zipf = Zipf::new(exponent()?, n);
            let mut fresh = n as u64;
            (0..len)
                .map(|i| {
                    if i % 5 == 4 {
                        fresh += 1;
                        fresh
                    } else {
                        zipf.sample(&mut rng)
                    }
                })
                .collect()
        }
        "shift" => {
            let (n, len) = (num(2)?, num(3)?);
            let zipf = Zipf::new(exponent()?, n);
            // After the halfway point, rank k maps to a different key.
            (0..len)
                .map(|i| {
                    let rank = zipf.sample(&mut rng);
                    if i < len / 2 {
                        rank
                    } else {
                        (rank + n as u64 / 2) % n as u64
                    }
                })
                .collect()
        }
        other => bail!("unknown workload {other:?} (zipf, loop, scan, shift)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_frequencies_follow_the_exponent() {
        let trace = generate("zipf:1.0:1000:200000", 42).unwrap();
        let mut counts = vec![0u32; 1000];
        for &k in &trace {
            counts[k as usize] += 1;
        }
        // P(1)/P(2) = 2^s and P(1)/P(10) = 10^s, within sampling noise.
        let r2 = f64::from(counts[0]) / f64::from(counts[1]);
        let r10 = f64::from(counts[0]) / f64::from(counts[9]);
        assert!((r2 - 2.0).abs() < 0.15, "rank 1 / rank 2 = {r2}");
        assert!((r10 - 10.0).abs() < 1.0, "rank 1 / rank 10 = {r10}");
        // Rank 1's share: 1 / H(1000) ≈ 0.1336.
        let share = f64::from(counts[0]) / trace.len() as f64;
        assert!((share - 0.1336).abs() < 0.005, "rank 1 share {share}");
    }

    #[test]
    fn workloads_have_their_shape_and_replay_from_the_seed() {
        assert_eq!(generate("loop:3:7", 1).unwrap(), [0, 1, 2, 0, 1, 2, 0]);
        let scan = generate("scan:0.9:100:1000", 7).unwrap();
        assert!(
            scan.iter().skip(4).step_by(5).all(|&k| k > 100),
            "every fifth request is fresh"
        );
        let shift = generate("shift:1.2:1000:10000", 7).unwrap();
        let top = |part: &[u64]| {
            let mut counts = std::collections::HashMap::new();
            for &k in part {
                *counts.entry(k).or_insert(0) += 1;
            }
            counts.into_iter().max_by_key(|&(_, c)| c).unwrap().0
        };
        assert_eq!(top(&shift[..5000]), 0);
        assert_eq!(top(&shift[5000..]), 500);
        assert_eq!(
            generate("zipf:1.0:50:100", 9).unwrap(),
            generate("zipf:1.0:50:100", 9).unwrap()
        );
        assert!(generate("nope:1", 1).is_err());
    }
}
