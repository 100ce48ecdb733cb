//! End-to-end replication (issue 10) on real processes: `dcache launch --replicas 1` under each
//! strategy, a writer and readers through the `redis` crate's cluster client while one node is
//! killed with SIGKILL, and the replicated cluster as cluster clients see it (CLUSTER SLOTS and
//! SHARDS, ROLE, INFO replication, WAIT, READONLY, `dcache cluster set replicas`), and redis-py's
//! `RedisCluster` through a kill.
//!
//! The tests here kill nodes and time failovers with a 2 s node timeout: they run one at a time
//! (`one_at_a_time`), so that one test's load on a small machine does not make another's nodes
//! look dead.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use common::{Launch, kill_9, lines_from, output_within, slot_of, wait_for_line};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Commands, Value};

const SLOTS: usize = 16384;

/// How long any wait for the cluster may last before the test fails: generous, since the
/// machine running the tests may be slow and busy; never a claim about speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// Keys the writer of a failover test writes (each once, one at a time).
const WRITES: usize = 2000;

/// Each node's memory: the tests hold a few thousand small keys.
const MAXMEMORY: &str = "64mb";

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    // A test that failed (and so poisoned the lock) must not fail the others.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn connect(addr: &str) -> redis::Connection {
    let c = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    // A node that stops answering fails the test instead of hanging it.
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

/// A cluster client that gives up quickly (a few retries, short waits) so that the test's own
/// bounded loop sees each failure, retries and times the failover; the crate's defaults wait up
/// to minutes between retries.
fn try_cluster_client(seeds: &[String]) -> redis::RedisResult<ClusterConnection> {
    ClusterClient::builder(seeds.iter().map(|a| format!("redis://{a}/")))
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(10))
        .retries(3)
        .min_retry_wait(10)
        .max_retry_wait(100)
        .build()?
        .get_connection()
}

fn cluster_client(seeds: &[String]) -> ClusterConnection {
    try_cluster_client(seeds).unwrap()
}

/// A cluster client that is rebuilt after an error, as an application would: the `redis`
/// crate's (1.8) synchronous cluster client answers an I/O error by reconnecting to the same
/// address without asking the cluster again for its slot table, so once a primary is killed it
/// would send that slot's commands to the dead address for ever. A new client reads the table
/// (CLUSTER SLOTS) from the first seed that answers.
struct Rebuilt {
    seeds: Vec<String>,
    conn: Option<ClusterConnection>,
}

impl Rebuilt {
    fn new(seeds: &[String]) -> Rebuilt {
        Rebuilt {
            seeds: seeds.to_vec(),
            conn: Some(cluster_client(seeds)),
        }
    }

    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut ClusterConnection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(try_cluster_client(&self.seeds)?),
        };
        let result = f(conn);
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

/// `CLUSTER SLOTS` on `addr`: each slot's copies ("host:port", primary first); empty where no
/// one serves the slot. Panics if a range is malformed or a slot is listed twice.
fn slot_copies(addr: &str) -> Vec<Vec<String>> {
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut connect(addr))
        .unwrap();
    let Value::Array(ranges) = reply else {
        panic!("CLUSTER SLOTS on {addr}: {reply:?}")
    };
    let mut copies = vec![Vec::new(); SLOTS];
    for range in ranges {
        let Value::Array(items) = &range else {
            panic!("CLUSTER SLOTS on {addr}: a range {range:?}")
        };
        let first: usize = redis::from_redis_value_ref(&items[0]).unwrap();
        let last: usize = redis::from_redis_value_ref(&items[1]).unwrap();
        let nodes: Vec<String> = items[2..]
            .iter()
            .map(|node| {
                let Value::Array(node) = node else {
                    panic!("CLUSTER SLOTS on {addr}: a range {range:?}")
                };
                let host: String = redis::from_redis_value_ref(&node[0]).unwrap();
                let port: u16 = redis::from_redis_value_ref(&node[1]).unwrap();
                format!("{host}:{port}")
            })
            .collect();
        for slot in &mut copies[first..=last] {
            assert!(
                slot.is_empty(),
                "CLUSTER SLOTS on {addr} names a slot twice"
            );
            slot.clone_from(&nodes);
        }
    }
    copies
}

/// The `field:value` lines of an INFO or CLUSTER INFO text.
fn fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// Polls (nothing signals it) until every node of `addrs` reports the same slot table, nothing
/// moving, and `copies` distinct copies of every slot, all among `addrs`; returns that table.
fn wait_for_copies(addrs: &[String], copies: usize) -> Vec<Vec<String>> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let moving: Vec<String> = addrs
            .iter()
            .map(|a| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut connect(a))
                    .unwrap();
                fields(&info)["cluster_slots_migrating"].clone()
            })
            .collect();
        let tables: Vec<_> = addrs.iter().map(|a| slot_copies(a)).collect();
        let complete = tables[0].iter().all(|set| {
            set.len() == copies
                && set.iter().collect::<BTreeSet<_>>().len() == copies
                && set.iter().all(|n| addrs.contains(n))
        });
        if moving.iter().all(|m| m == "0") && complete && tables.iter().all(|t| *t == tables[0]) {
            return tables.into_iter().next().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{addrs:?} did not agree on {copies} copies of every slot within {PATIENCE:?} \
             (slots migrating: {moving:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The writer's `i`-th key, and the one value it writes there.
fn key(i: usize) -> String {
    format!("r:{i}")
}
fn value(i: usize) -> String {
    format!("value-{i}")
}

/// What the writer of a failover test saw.
#[derive(Default)]
struct Written {
    /// The keys (by index) whose SET was answered OK.
    acked: Vec<usize>,
    /// Keys never acknowledged (every attempt failed): they may or may not have landed.
    given_up: Vec<usize>,
    /// Failed attempts, with when and why (the first few are printed).
    failures: Vec<String>,
    /// From the kill to the first OK of a SET sent after the kill to a slot the dead node was
    /// the primary of.
    failover: Option<Duration>,
}

/// Shared between the writer, the readers and the test's thread.
struct Run {
    /// Indices of the acknowledged keys, in order: readers pick from these.
    acked: Mutex<Vec<usize>>,
    acked_count: AtomicUsize,
    killed_at: Mutex<Option<Instant>>,
    /// The slots the killed node was the primary of.
    dead_slots: BTreeSet<usize>,
    done: AtomicBool,
}

/// Writes `key(i) = value(i)` for i in 0..WRITES, one at a time, each retried (at most 200
/// times, 50 ms apart, within `PATIENCE`) until it is acknowledged.
fn writer(seeds: &[String], run: &Run) -> Written {
    let mut c = Rebuilt::new(seeds);
    let mut written = Written::default();
    let started = Instant::now();
    for i in 0..WRITES {
        let mut acked = false;
        for _attempt in 0..200 {
            if started.elapsed() > PATIENCE {
                break;
            }
            let killed = *run.killed_at.lock().unwrap();
            match c.run(|c| c.set::<_, _, ()>(key(i), value(i))) {
                Ok(()) => {
                    if let Some(at) = killed
                        && written.failover.is_none()
                        && run.dead_slots.contains(&slot_of(&key(i)))
                    {
                        written.failover = Some(at.elapsed());
                    }
                    acked = true;
                    break;
                }
                Err(e) => {
                    let at = started.elapsed().as_millis();
                    written.failures.push(format!(
                        "at {at} ms: SET {} ({:?}): {e}",
                        key(i),
                        e.kind()
                    ));
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if acked {
            written.acked.push(i);
            run.acked.lock().unwrap().push(i);
            run.acked_count.fetch_add(1, Ordering::Relaxed);
        } else {
            written.given_up.push(i);
        }
    }
    written
}

/// What a reader saw: reads that answered the acknowledged value, reads that answered nothing,
/// reads that failed (the failover), and any other answer (wrong: each key is written once).
#[derive(Default, Debug)]
struct Reads {
    right: usize,
    missing: Vec<usize>,
    errors: usize,
    wrong: Vec<(usize, String)>,
}

/// Reads keys the writer had acknowledged before the read was sent, until the writer is done
/// (at most 20,000 reads, and within `PATIENCE`).
fn reader(seeds: &[String], run: &Run, seed: u64) -> Reads {
    let mut c = Rebuilt::new(seeds);
    let mut reads = Reads::default();
    let mut rng = seed;
    let deadline = Instant::now() + PATIENCE;
    let mut left = 20_000;
    while left > 0 && !run.done.load(Ordering::Relaxed) && Instant::now() < deadline {
        let pick = {
            let acked = run.acked.lock().unwrap();
            if acked.is_empty() {
                None
            } else {
                // xorshift: any spread of picks will do; the seed only varies the readers.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                Some(acked[(rng % acked.len() as u64) as usize])
            }
        };
        let Some(i) = pick else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        left -= 1;
        match c.run(|c| c.get::<_, Option<String>>(key(i))) {
            Ok(Some(v)) if v == value(i) => reads.right += 1,
            Ok(Some(v)) => reads.wrong.push((i, v)),
            Ok(None) => reads.missing.push(i),
            Err(_) => {
                reads.errors += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    reads
}

/// Reads `keys` back one at a time, each retried on errors (bounded); None where it stays
/// unreadable.
fn read_back(c: &mut Rebuilt, keys: &[usize]) -> Vec<Option<Option<String>>> {
    let deadline = Instant::now() + PATIENCE;
    keys.iter()
        .map(|&i| {
            for _ in 0..100 {
                match c.run(|c| c.get::<_, Option<String>>(key(i))) {
                    Ok(v) => return Some(v),
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(_) => return None,
                }
            }
            None
        })
        .collect()
}

/// From `killed` until a SET of `key` (in a slot of the dead node) succeeds on one of the
/// survivors, tried on each every 20 ms over plain connections (the new primary answers OK, the
/// other MOVED): the failover as a client that follows the cluster closely sees it, without the
/// cluster client's reconnects and retries in the figure. None if it never does within
/// `PATIENCE`.
fn probe_failover(survivors: &[String], key: &str, killed: Instant) -> Option<Duration> {
    let mut conns: Vec<redis::Connection> = survivors.iter().map(|a| connect(a)).collect();
    while killed.elapsed() < PATIENCE {
        for c in &mut conns {
            if c.set::<_, _, ()>(key, "probe").is_ok() {
                return Some(killed.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// What a failover run measured.
struct Outcome {
    /// From the kill until a plain SET to a dead primary's slot succeeded on a survivor.
    probed: Option<Duration>,
    acked: usize,
    lost: Vec<usize>,
    failover: Option<Duration>,
}

/// A three-node launch with `args` (replication settings); a writer writes `WRITES` keys once
/// each through the cluster client while two readers read acknowledged keys back; a third of the
/// way in, the node that is the primary of the most slots is killed with SIGKILL. Afterwards
/// the two survivors hold two copies of every slot again, and every acknowledged key is read
/// back: returns which were lost. Asserts that readers never saw a value other than the one
/// written, and (with `sync`) that they never missed an acknowledged key.
fn failover_run(name: &str, args: &[&str], sync: bool) -> Outcome {
    let mut all = vec!["--nodes", "3", "--replicas", "1", "--maxmemory", MAXMEMORY];
    all.extend_from_slice(args);
    let launch = Launch::start(name, &all);
    let addrs = launch.addrs();
    assert_eq!(addrs.len(), 3, "launch printed:\n{}", launch.table);
    let before = wait_for_copies(&addrs, 2);

    // The victim: the node that is the primary of the most slots.
    let mut primaries: BTreeMap<&str, usize> = BTreeMap::new();
    for set in &before {
        *primaries.entry(set[0].as_str()).or_default() += 1;
    }
    let (dead, _) = primaries
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(a, n)| ((*a).to_owned(), *n))
        .unwrap();
    let pid = launch
        .nodes
        .iter()
        .find(|(a, _)| *a == dead)
        .map(|(_, p)| p.clone())
        .unwrap();
    let survivors: Vec<String> = addrs.iter().filter(|a| **a != dead).cloned().collect();
    let run = Arc::new(Run {
        acked: Mutex::new(Vec::new()),
        acked_count: AtomicUsize::new(0),
        killed_at: Mutex::new(None),
        dead_slots: (0..SLOTS).filter(|&s| before[s][0] == dead).collect(),
        done: AtomicBool::new(false),
    });

    let writing = {
        let (seeds, run) = (addrs.clone(), run.clone());
        std::thread::spawn(move || writer(&seeds, &run))
    };
    let readers: Vec<_> = (1..=2u64)
        .map(|n| {
            let (seeds, run) = (addrs.clone(), run.clone());
            std::thread::spawn(move || {
                reader(&seeds, &run, 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(n))
            })
        })
        .collect();

    // Nothing signals the writer's progress but its counter: poll it.
    let deadline = Instant::now() + PATIENCE;
    while run.acked_count.load(Ordering::Relaxed) < WRITES / 3 {
        assert!(
            Instant::now() < deadline && !writing.is_finished(),
            "the writer did not get {} writes through within {PATIENCE:?}",
            WRITES / 3
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let probe_key = (0..)
        .map(|n| format!("failover-probe:{n}"))
        .find(|k| run.dead_slots.contains(&slot_of(k)))
        .unwrap();
    kill_9(&pid);
    let killed = Instant::now();
    *run.killed_at.lock().unwrap() = Some(killed);
    let probing = {
        let survivors = survivors.clone();
        std::thread::spawn(move || probe_failover(&survivors, &probe_key, killed))
    };

    // The first table a survivor gives without the dead node as a primary: each of its slots
    // went to the replica that followed it. Nothing signals the change: poll.
    let takeover = loop {
        let table = slot_copies(&survivors[0]);
        if table.iter().all(|set| set.first() != Some(&dead)) {
            break table;
        }
        assert!(
            killed.elapsed() < PATIENCE,
            "{name}: {} still lists {dead} as a primary {PATIENCE:?} after the kill",
            survivors[0]
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let promoted = killed.elapsed();
    // Printed, not asserted: the placement may already have moved some primaries again (to a
    // node that received a copy) by the time this poll sees a table.
    let elsewhere = run
        .dead_slots
        .iter()
        .filter(|&&slot| takeover[slot].first() != before[slot].get(1))
        .count();

    let probed = probing.join().unwrap();
    let written = writing.join().unwrap();
    run.done.store(true, Ordering::Relaxed);
    let reads: Vec<Reads> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    println!(
        "{name}: killed {dead} (primary of {} slots) after {} acknowledged writes; writer: {} \
         acknowledged, {} given up, {} failed attempts{}",
        run.dead_slots.len(),
        WRITES / 3,
        written.acked.len(),
        written.given_up.len(),
        written.failures.len(),
        written
            .failures
            .iter()
            .take(3)
            .chain(written.failures.iter().rev().take(2).rev())
            .map(|f| format!("\n  {f}"))
            .collect::<String>()
    );
    for (n, r) in reads.iter().enumerate() {
        println!(
            "{name}: reader {n}: {} right, {} missing, {} errors, {} wrong",
            r.right,
            r.missing.len(),
            r.errors,
            r.wrong.len()
        );
        assert!(r.wrong.is_empty(), "{name}: reader {n} read {:?}", r.wrong);
        if sync {
            assert!(
                r.missing.is_empty(),
                "{name}: reader {n} found acknowledged keys missing: {:?}",
                &r.missing[..r.missing.len().min(10)]
            );
        }
    }
    assert!(
        written.acked.len() > WRITES / 3,
        "{name}: no write was acknowledged after the kill"
    );

    // The survivors make a new copy of each slot the dead node held.
    let after = wait_for_copies(&survivors, 2);
    let moved = (0..SLOTS)
        .filter(|&s| before[s][0] != dead && after[s][0] != before[s][0])
        .count();
    println!(
        "{name}: {} no longer listed the dead node as a primary {} ms after the kill ({elsewhere} \
         of its {} slots had a primary other than their replica); {moved} slots of the survivors \
         changed primary while the copies were remade",
        survivors[0],
        promoted.as_millis(),
        run.dead_slots.len()
    );

    let mut c = Rebuilt::new(&survivors);
    let values = read_back(&mut c, &written.acked);
    let lost: Vec<usize> = written
        .acked
        .iter()
        .zip(&values)
        .filter(|(i, v)| v.as_ref().and_then(Option::as_deref) != Some(value(**i).as_str()))
        .map(|(i, _)| *i)
        .collect();
    Outcome {
        probed,
        acked: written.acked.len(),
        lost,
        failover: written.failover,
    }
}

fn report(name: &str, outcome: &Outcome) {
    let ms =
        |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{} ms", d.as_millis()));
    println!(
        "{name}: after kill -9, a write to a dead primary's slot succeeded {} after (plain \
         connections, every 20 ms), through the cluster client {} after; {} of {} acknowledged \
         writes lost",
        ms(outcome.probed),
        ms(outcome.failover),
        outcome.lost.len(),
        outcome.acked
    );
}

fn assert_nothing_lost(name: &str, outcome: &Outcome) {
    report(name, outcome);
    assert!(
        outcome.failover.is_some() && outcome.probed.is_some(),
        "{name}: no write to the dead node's slots succeeded after the kill"
    );
    assert!(
        outcome.lost.is_empty(),
        "{name}: {} acknowledged writes lost, e.g. {:?}",
        outcome.lost.len(),
        outcome
            .lost
            .iter()
            .take(10)
            .map(|&i| key(i))
            .collect::<Vec<_>>()
    );
}

/// `primary` with one synchronous replica: through a kill -9 of a primary, not one acknowledged
/// write is lost, readers never miss an acknowledged key, and the dead node's slots take writes
/// again (the time is printed, not asserted).
#[test]
fn primary_with_a_sync_replica_loses_no_acknowledged_write_through_a_kill() {
    let _one = one_at_a_time();
    let name = "primary K=1";
    let outcome = failover_run(
        "repl-primary",
        &["--replication", "primary", "--sync-replicas", "1"],
        true,
    );
    assert_nothing_lost(name, &outcome);
}

/// `chain` (head to tail, acknowledged by the tail): the same promise as `primary` with K = 1.
#[test]
fn chain_loses_no_acknowledged_write_through_a_kill() {
    let _one = one_at_a_time();
    let name = "chain";
    let outcome = failover_run("repl-chain", &["--replication", "chain"], true);
    assert_nothing_lost(name, &outcome);
}

/// `quorum` with W = 2 of 2 copies, as far as writes go: quorum reads (R copies, newest answer,
/// repair) are not built yet, so reads go to the primary as under `primary`. What this shows is
/// that a write acknowledged by two copies survives the kill of either.
#[test]
fn quorum_writes_lose_no_acknowledged_write_through_a_kill() {
    let _one = one_at_a_time();
    let name = "quorum W=2";
    let outcome = failover_run(
        "repl-quorum",
        &["--replication", "quorum", "--write-quorum", "2"],
        true,
    );
    assert_nothing_lost(name, &outcome);
}

/// `primary` with K = 0 is asynchronous, as Redis: a kill may lose acknowledged writes. The loss
/// is counted and printed, not hidden; the test asserts only that the run completed and the
/// count is a count of acknowledged writes.
#[test]
fn primary_asynchronous_counts_the_acknowledged_writes_a_kill_loses() {
    let _one = one_at_a_time();
    let name = "primary K=0";
    let outcome = failover_run(
        "repl-async",
        &["--replication", "primary", "--sync-replicas", "0"],
        false,
    );
    report(name, &outcome);
    assert!(outcome.acked > WRITES / 3);
    assert!(outcome.lost.len() <= outcome.acked);
}

/// Whether redis-py is installed; when not, says SKIPPED on standard error (fails under CI,
/// which installs it).
fn have_redis_py() -> bool {
    let there = Command::new("python3")
        .args(["-c", "import redis.cluster"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !there {
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !in_ci,
            "CI must install redis-py (python3 -m pip install redis)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: redis-py is not installed (python3 -m pip install redis)"
        );
    }
    there
}

/// redis-py's `RedisCluster` through a kill -9 under `chain` with one replica
/// (tests/compat/redis_py_failover.py): it writes, the test kills a node that is the primary of
/// some slots (not the one the script was pointed at), and the script's later writes and reads
/// succeed within its bounded retries, every acknowledged key reading back.
#[test]
fn redis_py_cluster_keeps_working_through_a_kill() {
    if !have_redis_py() {
        return;
    }
    let _one = one_at_a_time();
    let launch = Launch::start(
        "repl-redis-py",
        &[
            "--nodes",
            "3",
            "--replicas",
            "1",
            "--replication",
            "chain",
            "--maxmemory",
            MAXMEMORY,
        ],
    );
    let addrs = launch.addrs();
    assert_eq!(addrs.len(), 3, "launch printed:\n{}", launch.table);
    let table = wait_for_copies(&addrs, 2);
    let (dead, pid) = launch.nodes[2].clone();
    assert!(
        table.iter().any(|set| set[0] == dead),
        "{dead} is the primary of no slot"
    );
    let port = addrs[0].rsplit(':').next().unwrap().to_owned();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/redis_py_failover.py"
    );
    let mut python = Command::new("python3")
        .args([script, &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = lines_from(python.stdout.take().unwrap());
    let complaints = lines_from(python.stderr.take().unwrap());
    let before = wait_for_line(&said, "WROTE", PATIENCE);
    kill_9(&pid);
    let mut stdin = python.stdin.take().unwrap();
    writeln!(stdin, "killed").unwrap();
    drop(stdin);
    // The rest of what it says, until it exits (its output closes) or runs out of patience.
    let deadline = Instant::now() + PATIENCE;
    let mut after = String::new();
    loop {
        match said.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => after.push_str(&(line + "\n")),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = python.kill();
                let _ = python.wait();
                panic!("redis_py_failover.py still runs after {PATIENCE:?}:\n{before}{after}");
            }
        }
    }
    let status = python.wait().unwrap();
    let errors: Vec<String> = complaints.iter().collect();
    println!("{before}{after}");
    assert!(
        status.success() && after.contains("DONE"),
        "redis_py_failover.py failed ({status}):\n{before}{after}{}",
        errors.join("\n")
    );
}

/// The shards of `CLUSTER SHARDS` (RESP2: each shard and node a flat list of name, value):
/// each shard's slot ranges and its nodes' (id, port, role, replication-offset).
#[expect(clippy::type_complexity, reason = "a test's parse of one reply")]
fn shards(addr: &str) -> Vec<(Vec<(usize, usize)>, Vec<(String, u16, String, i64)>)> {
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SHARDS")
        .query(&mut connect(addr))
        .unwrap();
    let pairs = |v: &Value| -> HashMap<String, Value> {
        let Value::Array(items) = v else {
            panic!("CLUSTER SHARDS: {v:?}")
        };
        items
            .chunks(2)
            .map(|kv| (redis::from_redis_value_ref(&kv[0]).unwrap(), kv[1].clone()))
            .collect()
    };
    let Value::Array(shards) = &reply else {
        panic!("CLUSTER SHARDS: {reply:?}")
    };
    shards
        .iter()
        .map(|shard| {
            let shard = pairs(shard);
            let bounds: Vec<usize> = redis::from_redis_value_ref(&shard["slots"]).unwrap();
            let ranges = bounds.chunks(2).map(|r| (r[0], r[1])).collect();
            let Value::Array(nodes) = &shard["nodes"] else {
                panic!("CLUSTER SHARDS: {shard:?}")
            };
            let nodes = nodes
                .iter()
                .map(|node| {
                    let node = pairs(node);
                    (
                        redis::from_redis_value_ref(&node["id"]).unwrap(),
                        redis::from_redis_value_ref(&node["port"]).unwrap(),
                        redis::from_redis_value_ref(&node["role"]).unwrap(),
                        redis::from_redis_value_ref(&node["replication-offset"]).unwrap(),
                    )
                })
                .collect();
            (ranges, nodes)
        })
        .collect()
}

/// A three-node launch with one asynchronous replica (`primary`, K = 0), once every slot has
/// its two copies: the launch, its nodes' addresses, and each slot's copies.
fn asynchronous_launch(name: &str) -> (Launch, Vec<String>, Vec<Vec<String>>) {
    let launch = Launch::start(
        name,
        &[
            "--nodes",
            "3",
            "--replicas",
            "1",
            "--sync-replicas",
            "0",
            "--maxmemory",
            MAXMEMORY,
        ],
    );
    let addrs = launch.addrs();
    assert_eq!(addrs.len(), 3, "launch printed:\n{}", launch.table);
    let table = wait_for_copies(&addrs, 2);
    (launch, addrs, table)
}

/// With `--replicas 1` (asynchronous, K = 0): CLUSTER SLOTS lists two distinct copies of every
/// slot, and CLUSTER SHARDS groups the slots by copy set, a master and a replica each, covering
/// every slot once and agreeing with CLUSTER SLOTS. After some writes ROLE and INFO replication
/// report each node's two peers with acknowledged offsets that are not zero.
#[test]
fn replicas_show_in_slots_shards_role_and_info() {
    let _one = one_at_a_time();
    let (_launch, addrs, table) = asynchronous_launch("repl-shards");
    let ports: BTreeSet<u16> = addrs
        .iter()
        .map(|a| a.rsplit(':').next().unwrap().parse().unwrap())
        .collect();

    let shards = shards(&addrs[0]);
    let mut covered = vec![0; SLOTS];
    for (ranges, nodes) in &shards {
        assert_eq!(
            nodes.len(),
            2,
            "a shard of {} copies: {nodes:?}",
            nodes.len()
        );
        let roles: Vec<&str> = nodes.iter().map(|n| n.2.as_str()).collect();
        assert_eq!(roles, ["master", "replica"], "{nodes:?}");
        assert_ne!(nodes[0].0, nodes[1].0, "a shard's copies on one node");
        assert!(nodes.iter().all(|n| ports.contains(&n.1)), "{nodes:?}");
        assert!(!ranges.is_empty(), "a shard with copies and no slot");
        for &(a, b) in ranges {
            for slot in a..=b {
                covered[slot] += 1;
                let want: Vec<String> =
                    nodes.iter().map(|n| format!("127.0.0.1:{}", n.1)).collect();
                assert_eq!(table[slot], want, "slot {slot}: SHARDS against SLOTS");
            }
        }
    }
    assert!(
        covered.iter().all(|&n| n == 1),
        "CLUSTER SHARDS covers a slot other than once"
    );

    let mut c = cluster_client(&addrs);
    for i in 0..300 {
        let _: () = c.set(format!("shards:{i}"), i).unwrap();
    }
    // Asynchronous: the replicas acknowledge in their own time; poll until every node's peers
    // acknowledged something (each node is the primary of some of the 300 keys' slots).
    let deadline = Instant::now() + PATIENCE;
    for addr in &addrs {
        loop {
            let role: Value = redis::cmd("ROLE").query(&mut connect(addr)).unwrap();
            let Value::Array(role) = role else {
                panic!("ROLE on {addr}: {role:?}")
            };
            let kind: String = redis::from_redis_value_ref(&role[0]).unwrap();
            assert_eq!(kind, "master");
            let peers: Vec<(String, String, String)> =
                redis::from_redis_value_ref(&role[2]).unwrap();
            assert_eq!(peers.len(), 2, "ROLE on {addr}: {peers:?}");
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut connect(addr))
                .unwrap();
            let info = fields(&info);
            assert_eq!(info["replication_strategy"], "primary", "{info:?}");
            assert_eq!(info["connected_slaves"], "2", "{info:?}");
            let offsets: Vec<u64> = (0..2)
                .map(|n| {
                    let line = &info[&format!("slave{n}")];
                    line.split(',')
                        .find_map(|f| f.strip_prefix("offset="))
                        .and_then(|o| o.parse().ok())
                        .unwrap_or_else(|| panic!("INFO replication on {addr}: slave{n}:{line}"))
                })
                .collect();
            let acked: Vec<u64> = peers.iter().map(|p| p.2.parse().unwrap()).collect();
            if acked.iter().all(|&o| o > 0) && offsets.iter().all(|&o| o > 0) {
                println!("{addr}: ROLE {peers:?}, INFO offsets {offsets:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{addr}: peers' offsets stayed at zero: ROLE {peers:?}, INFO {info:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `WAIT 1 1000` after a write with K = 0 answers 1 (the slot's one replica) once that replica
/// holds the write: READONLY GET on the replica then finds it. Each try writes a new key, so an
/// earlier write does not help; some keys are first written everywhere so that every node
/// streams to both of its peers (a peer that holds no copy of the slot must not count).
#[test]
fn wait_1_answers_once_the_slot_s_replica_holds_the_write() {
    let _one = one_at_a_time();
    let (_launch, addrs, table) = asynchronous_launch("repl-wait");
    let mut c = cluster_client(&addrs);
    for i in 0..300 {
        let _: () = c.set(format!("warm:{i}"), i).unwrap();
    }
    let mut readers: HashMap<String, redis::Connection> = HashMap::new();
    for i in 0..200 {
        let k = format!("wait:{i}");
        let set = &table[slot_of(&k)];
        let mut primary = connect(&set[0]);
        let _: () = primary.set(&k, "waited").unwrap();
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(1000)
            .query(&mut primary)
            .unwrap();
        // The slot has one replica; a peer that holds no copy of it is not a replica of the write.
        assert_eq!(acked, 1, "WAIT 1 1000 after SET {k} (slot {})", slot_of(&k));
        let replica = readers.entry(set[1].clone()).or_insert_with(|| {
            let mut r = connect(&set[1]);
            let _: () = redis::cmd("READONLY").query(&mut r).unwrap();
            r
        });
        let got: Option<String> = replica.get(&k).unwrap();
        assert_eq!(
            got.as_deref(),
            Some("waited"),
            "{k} (slot {}) not on its replica {} after WAIT 1 1000 answered {acked}",
            slot_of(&k),
            set[1]
        );
    }
}

/// `dcache cluster set replicas 1` on a running cluster started without replicas: once it
/// returns, CLUSTER SLOTS on every node lists two distinct copies of every slot, and every key
/// written before reads back from its slot's new replica with READONLY. (The first is checked
/// last, on what the nodes listed when the command returned, so that a failure of it does not
/// hide the second.)
#[test]
fn cluster_set_replicas_copies_every_slot_to_a_readable_replica() {
    let _one = one_at_a_time();
    let launch = Launch::start(
        "repl-set",
        &["--nodes", "3", "--replicas", "0", "--maxmemory", MAXMEMORY],
    );
    let addrs = launch.addrs();
    assert_eq!(addrs.len(), 3, "launch printed:\n{}", launch.table);
    let before = wait_for_copies(&addrs, 1);
    let mut c = cluster_client(&addrs);
    let keys: Vec<String> = (0..1000).map(|i| format!("before:{i}")).collect();
    for k in &keys {
        let _: () = c.set(k, format!("v-{k}")).unwrap();
    }

    let mut set = Command::new(env!("CARGO_BIN_EXE_dcache"));
    set.args(["cluster", "set", "replicas", "1", "--nodes", &addrs[0]]);
    let out = output_within(set, 2 * PATIENCE);
    println!(
        "cluster set: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dcache cluster set replicas 1 failed");

    // What each node lists the moment the command returns: slots with fewer than two copies.
    let returned = Instant::now();
    let short: Vec<(String, usize)> = addrs
        .iter()
        .map(|a| {
            (
                a.clone(),
                slot_copies(a).iter().filter(|s| s.len() < 2).count(),
            )
        })
        .collect();
    let table = wait_for_copies(&addrs, 2);
    println!(
        "cluster set: slots with one copy when it returned: {short:?}; all nodes agreed on two \
         copies {} ms later",
        returned.elapsed().as_millis()
    );
    let moved = table
        .iter()
        .zip(&before)
        .filter(|(set, was)| set[0] != was[0])
        .count();
    println!("cluster set: {moved} slots changed primary");

    let mut by_replica: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for k in &keys {
        by_replica
            .entry(table[slot_of(k)][1].as_str())
            .or_default()
            .push(k);
    }
    assert_eq!(
        by_replica.len(),
        3,
        "every node is a replica of some of the keys"
    );
    for (replica, held) in by_replica {
        let mut r = connect(replica);
        let _: () = redis::cmd("READONLY").query(&mut r).unwrap();
        for k in held {
            let got: Option<String> = r.get(k).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(format!("v-{k}").as_str()),
                "{k} on its replica {replica}"
            );
        }
    }
    // The command says it waits until every slot has its copies.
    assert!(
        short.iter().all(|(_, n)| *n == 0),
        "`dcache cluster set replicas 1` returned while nodes listed slots with one copy: {short:?}"
    );
}
