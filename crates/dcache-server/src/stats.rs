//! Counters for INFO and `/metrics`, updated on the hot path without contention.
//!
//! Counters live in rows, one row per group of connections (`client id % ROWS`), each row on its
//! own cache lines: two worker threads serving different clients rarely touch the same line.
//! Readers sum the rows, which is cheap next to a scrape or an INFO call.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::command;

const ROWS: usize = 32;

/// Upper bounds of the latency histogram's buckets, in microseconds: powers of two from 1 µs to
/// about a second, then +Inf.
pub const LATENCY_BUCKETS_US: [u64; 21] = {
    let mut bounds = [0; 21];
    let mut i = 0;
    while i < 21 {
        bounds[i] = 1 << i;
        i += 1;
    }
    bounds
};

#[derive(Debug, Default)]
pub struct CommandCounters {
    pub calls: AtomicU64,
    pub nanos: AtomicU64,
    pub failed: AtomicU64,
    pub rejected: AtomicU64,
}

#[derive(Debug)]
#[repr(align(128))]
struct Row {
    commands: Box<[CommandCounters]>,
    latency: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    latency_nanos: AtomicU64,
    net_input: AtomicU64,
    net_output: AtomicU64,
}

impl Row {
    fn new() -> Self {
        Self {
            commands: (0..command::table().len())
                .map(|_| CommandCounters::default())
                .collect(),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_nanos: AtomicU64::new(0),
            net_input: AtomicU64::new(0),
            net_output: AtomicU64::new(0),
        }
    }
}

#[derive(Debug)]
struct LocalCommand {
    index: u16,
    calls: u64,
    nanos: u64,
    failed: u64,
}

/// One connection's counts for the batch of requests in hand, added to the shared rows once per
/// batch ([`Stats::flush`]) instead of once per command.
#[derive(Debug, Default)]
pub struct LocalStats {
    /// In first-seen order; a batch rarely holds more than a few different commands.
    commands: Vec<LocalCommand>,
    latency: [u64; LATENCY_BUCKETS_US.len() + 1],
    latency_nanos: u64,
}

impl LocalStats {
    /// Records one executed command.
    pub fn record(&mut self, index: usize, elapsed: Duration, failed: bool) {
        let nanos = elapsed.as_nanos() as u64;
        let index = index as u16;
        let at = match self.commands.iter().position(|c| c.index == index) {
            Some(at) => at,
            None => {
                self.commands.push(LocalCommand {
                    index,
                    calls: 0,
                    nanos: 0,
                    failed: 0,
                });
                self.commands.len() - 1
            }
        };
        let c = &mut self.commands[at];
        c.calls += 1;
        c.nanos += nanos;
        c.failed += u64::from(failed);
        let micros = nanos / 1000;
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| micros < bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.latency[bucket] += 1;
        self.latency_nanos += nanos;
    }
}

/// A summed snapshot of one command's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandTotals {
    pub calls: u64,
    pub nanos: u64,
    pub failed: u64,
    pub rejected: u64,
}

#[derive(Debug)]
pub struct Stats {
    rows: Box<[Row]>,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            rows: (0..ROWS).map(|_| Row::new()).collect(),
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
        }
    }
}

impl Stats {
    fn row(&self, client: u64) -> &Row {
        &self.rows[client as usize % ROWS]
    }

    /// Adds what a connection counted during one batch of requests, and clears it.
    pub fn flush(&self, client: u64, local: &mut LocalStats) {
        if local.commands.is_empty() {
            return;
        }
        let row = self.row(client);
        for c in local.commands.drain(..) {
            let counters = &row.commands[c.index as usize];
            counters.calls.fetch_add(c.calls, Relaxed);
            counters.nanos.fetch_add(c.nanos, Relaxed);
            if c.failed > 0 {
                counters.failed.fetch_add(c.failed, Relaxed);
            }
        }
        for (shared, local) in row.latency.iter().zip(local.latency.iter_mut()) {
            if *local > 0 {
                shared.fetch_add(std::mem::take(local), Relaxed);
            }
        }
        row.latency_nanos
            .fetch_add(std::mem::take(&mut local.latency_nanos), Relaxed);
    }

    /// Records a command refused before it ran (arity, authentication, memory).
    pub fn rejected(&self, client: u64, index: usize) {
        self.row(client).commands[index]
            .rejected
            .fetch_add(1, Relaxed);
    }

    pub fn net(&self, client: u64, input: usize, output: usize) {
        let row = self.row(client);
        if input > 0 {
            row.net_input.fetch_add(input as u64, Relaxed);
        }
        if output > 0 {
            row.net_output.fetch_add(output as u64, Relaxed);
        }
    }

    /// Per-command totals, indexed like [`command::table`].
    #[must_use]
    pub fn commands(&self) -> Vec<CommandTotals> {
        let mut totals = vec![CommandTotals::default(); command::table().len()];
        for row in &self.rows {
            for (total, c) in totals.iter_mut().zip(row.commands.iter()) {
                total.calls += c.calls.load(Relaxed);
                total.nanos += c.nanos.load(Relaxed);
                total.failed += c.failed.load(Relaxed);
                total.rejected += c.rejected.load(Relaxed);
            }
        }
        totals
    }

    #[must_use]
    pub fn total_commands(&self) -> u64 {
        self.rows
            .iter()
            .flat_map(|r| r.commands.iter())
            .map(|c| c.calls.load(Relaxed))
            .sum()
    }

    /// Histogram counts per bucket (not cumulative) and the sum of latencies in nanoseconds.
    #[must_use]
    pub fn latency(&self) -> (Vec<u64>, u64) {
        let mut buckets = vec![0; LATENCY_BUCKETS_US.len() + 1];
        let mut sum = 0;
        for row in &self.rows {
            for (b, v) in buckets.iter_mut().zip(row.latency.iter()) {
                *b += v.load(Relaxed);
            }
            sum += row.latency_nanos.load(Relaxed);
        }
        (buckets, sum)
    }

    /// Bytes read from and written to clients.
    #[must_use]
    pub fn net_totals(&self) -> (u64, u64) {
        self.rows.iter().fold((0, 0), |(i, o), r| {
            (
                i + r.net_input.load(Relaxed),
                o + r.net_output.load(Relaxed),
            )
        })
    }

    /// Zeroes everything (`CONFIG RESETSTAT`).
    pub fn reset(&self) {
        for row in &self.rows {
            for c in row.commands.iter() {
                for a in [&c.calls, &c.nanos, &c.failed, &c.rejected] {
                    a.store(0, Relaxed);
                }
            }
            for a in row
                .latency
                .iter()
                .chain([&row.latency_nanos, &row.net_input, &row.net_output])
            {
                a.store(0, Relaxed);
            }
        }
        self.connections_received.store(0, Relaxed);
        self.rejected_connections.store(0, Relaxed);
    }
}

/// Operations per second over the last few samples (`instantaneous_ops_per_sec`).
#[derive(Debug, Default)]
pub struct OpsSampler {
    samples: std::collections::VecDeque<(u64, u64)>,
}

impl OpsSampler {
    const KEEP: usize = 16;

    /// Takes a sample of the command total at `now_ms`.
    pub fn sample(&mut self, now_ms: u64, total_commands: u64) {
        if self.samples.len() == Self::KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back((now_ms, total_commands));
    }

    /// Forgets the samples (`CONFIG RESETSTAT` zeroes the command total they count from).
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// The rate between the oldest and the newest sample. A total that went down (the counters
    /// were reset between the two) gives 0 rather than a wrapped or panicking subtraction.
    #[must_use]
    pub fn ops_per_sec(&self) -> u64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, c0)), Some(&(t1, c1))) if t1 > t0 => {
                c1.saturating_sub(c0).saturating_mul(1000) / (t1 - t0)
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OpsSampler;

    #[test]
    fn a_reset_between_samples_reads_as_zero_ops() {
        let mut ops = OpsSampler::default();
        ops.sample(1_000, 500);
        ops.sample(2_000, 1_500);
        assert_eq!(ops.ops_per_sec(), 1_000);
        // CONFIG RESETSTAT zeroed the total; the fuzzer found INFO then panicking a worker.
        ops.sample(3_000, 20);
        assert_eq!(ops.ops_per_sec(), 0);
        ops.clear();
        assert_eq!(ops.ops_per_sec(), 0);
        ops.sample(4_000, 20);
        ops.sample(5_000, 70);
        assert_eq!(ops.ops_per_sec(), 50);
    }
}
