//! Topology agreement through Raft, on the in-memory bus with tokio's paused clock: time only
//! moves when every task waits, so elections, timeouts and delays take no real time, and every
//! wait below is bounded in simulated time.
//!
//! Seeded: `DCACHE_SEED=<n>` replays a run's node ids, message loss and delays (openraft draws
//! its election timeouts from its own generator, so elections may still go another way).

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dcache_cluster::raft::transport::MemoryNetwork;
use dcache_cluster::raft::types::raft_id;
use dcache_cluster::{Change, ChangeError, Cluster, ClusterConfig, Error, NodeState, Topology};
use dcache_placement::SLOTS;
use tempfile::TempDir;

/// The longest any step may take in simulated time.
const PATIENCE: Duration = Duration::from_secs(120);

fn seed() -> u64 {
    let seed = std::env::var("DCACHE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe);
    println!("DCACHE_SEED={seed}");
    seed
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A test cluster: one in-memory network, one directory per node.
struct Sim {
    seed: u64,
    snapshot_every: u64,
    /// Raft's election timeout, when not the default.
    election_timeout: Option<Duration>,
    net: MemoryNetwork,
    dir: TempDir,
}

impl Sim {
    fn new() -> Self {
        if std::env::var("RUST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        }
        let seed = seed();
        Self {
            seed,
            snapshot_every: 500,
            election_timeout: None,
            net: MemoryNetwork::new(seed),
            dir: TempDir::new().expect("temp dir"),
        }
    }

    /// Node `n` lives at 10.0.0.n (nothing is sent on a real network).
    fn bus(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 16379))
    }

    fn config(&self, n: u8) -> ClusterConfig {
        let r = splitmix(self.seed ^ u64::from(n));
        let id = format!(
            "{:016x}{:016x}{:08x}",
            r,
            splitmix(r),
            splitmix(r + 1) as u32
        );
        let mut config =
            ClusterConfig::new(self.node_dir(n), format!("10.0.0.{n}"), 6379, 16379).id(id);
        config.snapshot_every = self.snapshot_every;
        if let Some(timeout) = self.election_timeout {
            config.election_timeout = timeout;
        }
        config
    }

    fn node_dir(&self, n: u8) -> std::path::PathBuf {
        self.dir.path().join(format!("node{n}"))
    }

    async fn start(&self, config: ClusterConfig) -> Cluster {
        bounded(Cluster::start_with(config, self.net.transport()))
            .await
            .expect("node starts")
    }

    /// Node 1 alone, then nodes 2..=n joining through it.
    async fn cluster(&self, n: u8) -> Vec<Cluster> {
        let mut nodes = vec![self.start(self.config(1)).await];
        for i in 2..=n {
            nodes.push(self.start(self.config(i).join(Self::bus(1))).await);
        }
        agree(&nodes).await;
        // Every member votes (up to five) before a test starts breaking things: while two
        // of them vote, losing either stops the cluster, as Raft must.
        let ids: BTreeSet<String> = nodes.iter().map(|c| c.id().to_owned()).collect();
        bounded(async {
            loop {
                let voters = nodes[0].voters();
                if voters.len() == nodes.len().min(5) && voters.is_subset(&ids) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        nodes
    }
}

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("bounded wait ran out")
}

fn topology(node: &Cluster) -> Arc<Topology> {
    node.topology().borrow().clone()
}

/// Waits until every node has applied the same topology, listing every node; returns it.
async fn agree(nodes: &[Cluster]) -> Arc<Topology> {
    let ids: BTreeSet<&str> = nodes.iter().map(Cluster::id).collect();
    bounded(async {
        loop {
            let first = topology(&nodes[0]);
            let listed: BTreeSet<&str> = first.nodes.keys().map(String::as_str).collect();
            if ids.is_subset(&listed) && nodes.iter().all(|n| *topology(n) == *first) {
                return first;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Waits until every node has applied the same topology, past `epoch`; returns it.
async fn agree_after(nodes: &[Cluster], epoch: u64) -> Arc<Topology> {
    bounded(async {
        loop {
            let agreed = agree(nodes).await;
            if agreed.epoch > epoch {
                return agreed;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Waits until `node`'s Raft voters are exactly `expected`.
async fn voters_become(node: &Cluster, expected: &[&Cluster]) {
    let expected: BTreeSet<String> = expected.iter().map(|c| c.id().to_owned()).collect();
    bounded(async {
        while node.voters() != expected {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_node_alone_bootstraps_and_serves_every_slot() {
    let sim = Sim::new();
    let node = sim.start(sim.config(1)).await;
    let t = topology(&node);
    assert_eq!(t.nodes.keys().collect::<Vec<_>>(), vec![node.id()]);
    assert_eq!(t.slot_counts()[node.id()], SLOTS);
    assert!(t.all_served());
    assert!(node.is_leader());

    // A change the topology refuses is the entry's result, not a failure of the log.
    let unknown = "f".repeat(40);
    match node.propose(Change::Forget(unknown.clone())).await {
        Err(Error::Change(e)) => assert_eq!(e, ChangeError::UnknownNode(unknown)),
        other => panic!("expected a refused change, got {other:?}"),
    }
    let after = node.propose(Change::Rebalance).await.expect("committed");
    assert_eq!(after.epoch, t.epoch + 1);
    assert_eq!(*topology(&node), *after);
    node.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn three_nodes_join_concurrently_and_agree() {
    let sim = Sim::new();
    sim.net
        .set_delay(Duration::from_millis(1), Duration::from_millis(20));
    // Joins are retried until committed, and Raft resends what is lost.
    sim.net.set_loss(5);
    let first = sim.start(sim.config(1)).await;
    let (second, third) = tokio::join!(
        sim.start(sim.config(2).join(Sim::bus(1))),
        sim.start(sim.config(3).join(Sim::bus(1))),
    );
    let nodes = [first, second, third];
    let agreed = agree(&nodes).await;
    assert_eq!(agreed.nodes.len(), 3);
    assert!(agreed.all_served());
    // Nothing has migrated yet: the first node serves every slot, the plan moves two thirds.
    assert_eq!(agreed.slot_counts()[nodes[0].id()], SLOTS);
    assert!(agreed.target.is_some());
    voters_become(&nodes[0], &[&nodes[0], &nodes[1], &nodes[2]]).await;
    sim.net.set_loss(0);
    for node in &nodes {
        node.shutdown().await;
    }
}

/// A join can be committed and still fail for the joiner: here every reply is lost, so the
/// joiner never hears that the seed added it and gives up at its deadline. It then takes
/// itself out again, else the cluster would keep a member that never arrives and plan it slots
/// for ever (what `CLUSTER MEET` under load once left behind).
#[tokio::test(start_paused = true)]
async fn a_join_that_times_out_after_it_was_committed_is_withdrawn() {
    let sim = Sim::new();
    // Every delivery takes simulated time, so that resending what is lost is not a busy loop
    // that would hold the paused clock still.
    sim.net
        .set_delay(Duration::from_millis(1), Duration::from_millis(5));
    let first = sim.start(sim.config(1)).await;
    let joiner = sim.config(2).join(Sim::bus(1));
    let joiner_id = joiner.id.clone().expect("the test names its nodes");
    let epoch = topology(&first).epoch;
    sim.net.set_reply_loss(100);
    let failed = bounded(Cluster::start_with(joiner, sim.net.transport())).await;
    assert!(
        failed.is_err(),
        "no reply reached the joiner, so it cannot have joined"
    );
    sim.net.set_reply_loss(0);
    let after = topology(&first);
    assert!(after.epoch > epoch, "the seed never received the join");
    assert!(
        !after.nodes.contains_key(&joiner_id),
        "the joiner that gave up is still a member: {:?}",
        after.nodes.keys().collect::<Vec<_>>()
    );
    assert_eq!(after.nodes.len(), 1);
    assert!(
        after.target.is_none(),
        "a plan still moves slots to the joiner"
    );
    first.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_partitioned_node_does_not_stop_the_majority_and_catches_up() {
    let sim = Sim::new();
    let nodes = sim.cluster(3).await;
    let before = topology(&nodes[0]).epoch;

    sim.net.isolate(&Sim::bus(3).to_string());
    // Proposed on either side of the leader: if node 3 led, the majority elects another.
    let first = bounded(nodes[0].propose(Change::Rebalance))
        .await
        .expect("commits");
    let second = bounded(nodes[1].propose(Change::Rebalance))
        .await
        .expect("commits");
    assert!(second.epoch > first.epoch && first.epoch > before);
    assert!(
        topology(&nodes[2]).epoch < first.epoch,
        "the cut node saw nothing"
    );

    sim.net.heal();
    let agreed = agree(&nodes).await;
    assert_eq!(agreed.epoch, second.epoch);
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_declared_failed_while_cut_off_comes_back_when_the_partition_heals() {
    let sim = Sim::new();
    let nodes = sim.cluster(3).await;
    let cut = nodes[2].id().to_owned();
    sim.net.isolate(&Sim::bus(3).to_string());
    // Failure detection would declare it failed; its slots (none yet) go to the others, and
    // Raft drops it.
    bounded(nodes[0].propose(Change::Fail(cut.clone())))
        .await
        .expect("commits");
    voters_become(&nodes[0], &[&nodes[0], &nodes[1]]).await;

    sim.net.heal();
    bounded(async {
        while topology(&nodes[0]).nodes[&cut].state != NodeState::Online {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let agreed = agree(&nodes).await;
    assert_eq!(agreed.nodes[&cut].state, NodeState::Online);
    voters_become(&nodes[0], &[&nodes[0], &nodes[1], &nodes[2]]).await;
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_leader_killed_during_a_join_the_join_completes_under_a_new_leader() {
    let sim = Sim::new();
    sim.net
        .set_delay(Duration::from_millis(1), Duration::from_millis(10));
    let nodes = sim.cluster(3).await;
    let leader = bounded(async {
        loop {
            if let Some(i) = nodes.iter().position(Cluster::is_leader) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // Join through a node that is not the leader, and kill the leader the moment it has
    // applied the join: the newcomer is not in Raft yet and has not heard of its join (every
    // message takes at least a millisecond), so the rest falls to the next leader.
    let seed = (leader + 1) % 3;
    let newcomer = sim.config(4);
    let new_id = newcomer.id.clone().expect("preset id");
    let joining = tokio::spawn(Cluster::start_with(
        newcomer.join(Sim::bus(seed as u8 + 1)),
        sim.net.transport(),
    ));
    let mut applied = nodes[leader].topology();
    bounded(applied.wait_for(|t| t.nodes.contains_key(&new_id)))
        .await
        .expect("the leader applies the join");
    assert!(!joining.is_finished(), "the join is still under way");
    nodes[leader].shutdown().await;
    let fourth = bounded(joining).await.expect("no panic").expect("joined");

    let mut survivors: Vec<Cluster> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, c)| c.clone())
        .collect();
    survivors.push(fourth);
    // The dead node is declared failed (failure detection would); its slots go to the others.
    let dead = nodes[leader].id().to_owned();
    bounded(survivors[0].propose(Change::Fail(dead.clone())))
        .await
        .expect("commits");
    let agreed = agree(&survivors).await;
    assert!(agreed.all_served());
    assert_eq!(agreed.nodes[&dead].state, NodeState::Failed);
    assert!(!agreed.serves_any(&dead));
    for node in &survivors {
        assert_eq!(agreed.nodes[node.id()].state, NodeState::Online);
    }
    // Raft follows: the dead node no longer votes, the newcomer does.
    let voters: Vec<&Cluster> = survivors.iter().collect();
    voters_become(&survivors[0], &voters).await;
    for node in &survivors {
        node.shutdown().await;
    }
}

/// The index of the node that leads, once one does.
async fn leader_of(nodes: &[Cluster]) -> usize {
    bounded(async {
        loop {
            if let Some(i) = nodes.iter().position(Cluster::is_leader) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn survivors_elect_a_new_leader_when_failure_detection_reports_the_leader_down() {
    let mut sim = Sim::new();
    // openraft's own election is an hour of silence away (and each follower refuses to vote
    // for another node for two hours after the leader's last heartbeat), far past PATIENCE: a
    // new leader can only come from the survivors standing because the leader was reported
    // down, both of them (each gives up the dead leader's lease by standing).
    sim.election_timeout = Some(Duration::from_secs(3600));
    sim.net
        .set_delay(Duration::from_millis(1), Duration::from_millis(5));
    let nodes = sim.cluster(3).await;
    let leader = leader_of(&nodes).await;
    let dead = nodes[leader].id().to_owned();
    let mut survivors: Vec<Cluster> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, c)| c.clone())
        .collect();
    // The first to stand is the one openraft prefers in a tie (the higher Raft id): the other,
    // standing later in the same term, gives its vote to it but cannot take it back from the
    // lease it refused, so only an attempt at a higher term elects anyone.
    survivors.sort_by_key(|c| std::cmp::Reverse(raft_id(c.id())));
    // A follower reported down changes nothing about who leads.
    let follower: HashSet<String> = HashSet::from([survivors[1].id().to_owned()]);
    assert!(!survivors[0].detected_down(&follower).await);

    nodes[leader].shutdown().await;
    let down: HashSet<String> = HashSet::from([dead.clone()]);
    // The membership loop: on the report, then at each tick while the node is down.
    let tick = |reported: &'static [usize]| {
        let survivors = &survivors;
        let down = &down;
        async move {
            for &i in reported {
                survivors[i].detected_down(down).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            survivors.iter().position(Cluster::is_leader)
        }
    };
    // One survivor's detector reports first: it stands, but the other, still within the dead
    // leader's lease, refuses its vote.
    for _ in 0..5 {
        assert_eq!(tick(&[0]).await, None);
    }
    assert!(survivors[0].elections_triggered() >= 1);
    // Then the other's: it stands too, which gives up the lease, and the next attempt (the
    // lowest id's, at a higher term) wins.
    let new_leader = bounded(async {
        loop {
            if let Some(i) = tick(&[0, 1]).await {
                return i;
            }
        }
    })
    .await;
    for node in &survivors {
        assert!(
            node.elections_triggered() >= 1,
            "{} stood because of the report",
            node.id()
        );
    }
    // The new leader can declare the old one failed.
    let failed = bounded(survivors[1 - new_leader].propose(Change::Fail(dead.clone())))
        .await
        .expect("commits");
    assert_eq!(failed.nodes[&dead].state, NodeState::Failed);
    // Once there is a leader, reports of the dead node start nothing more.
    let stood = survivors
        .iter()
        .map(Cluster::elections_triggered)
        .collect::<Vec<_>>();
    for node in &survivors {
        assert!(!node.detected_down(&down).await);
    }
    assert_eq!(
        survivors
            .iter()
            .map(Cluster::elections_triggered)
            .collect::<Vec<_>>(),
        stood
    );
    for node in &survivors {
        node.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_comes_back_as_itself() {
    let sim = Sim::new();
    let nodes = sim.cluster(3).await;
    // No preset id this time: the id is made at first start and read back after.
    let config = ClusterConfig::new(sim.node_dir(4), "10.0.0.4", 6379, 16379).join(Sim::bus(1));
    let fourth = sim.start(config.clone()).await;
    let id = fourth.id().to_owned();
    assert!(id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(dir_has_state(&sim.node_dir(4)));

    fourth.shutdown().await;
    let moved_on = bounded(nodes[0].propose(Change::Rebalance))
        .await
        .expect("commits");
    let back = sim
        .start(ClusterConfig {
            join: None,
            ..config
        })
        .await;
    assert_eq!(back.id(), id);
    let mut all = nodes.clone();
    all.push(back);
    // The rejoin is a committed change.
    let agreed = agree_after(&all, moved_on.epoch).await;
    assert_eq!(agreed.nodes[&id].state, NodeState::Online);
    for node in &all {
        node.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_lone_node_restarts_from_its_directory() {
    let sim = Sim::new();
    let config = ClusterConfig::new(sim.node_dir(1), "10.0.0.1", 6379, 16379);
    let node = sim.start(config.clone()).await;
    let id = node.id().to_owned();
    let epoch = topology(&node).epoch;
    node.shutdown().await;

    let node = sim.start(config).await;
    assert_eq!(node.id(), id);
    // Its log replayed, then its rejoin committed.
    let t = agree_after(std::slice::from_ref(&node), epoch).await;
    assert_eq!(t.slot_counts()[&id], SLOTS);
    node.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn five_of_six_members_vote_and_a_leaver_is_replaced_by_the_learner() {
    let sim = Sim::new();
    let nodes = sim.cluster(6).await;
    let voters = nodes[0].voters();
    assert_eq!(voters.len(), 5);
    let learner = nodes
        .iter()
        .find(|n| !voters.contains(n.id()))
        .expect("one learner");
    // A voter that serves no slot (nothing has migrated, node 1 serves them all) and does not
    // lead: its leave completes at once.
    let leaver = nodes
        .iter()
        .find(|n| voters.contains(n.id()) && !n.is_leader() && n.id() != nodes[0].id())
        .expect("such a voter");
    let after = bounded(nodes[0].propose(Change::Leave(leaver.id().to_owned())))
        .await
        .expect("commits");
    assert!(
        !after.nodes.contains_key(leaver.id()),
        "a drained leaver is gone"
    );

    let mut expected: Vec<&Cluster> = nodes
        .iter()
        .filter(|n| voters.contains(n.id()) && n.id() != leaver.id())
        .collect();
    expected.push(learner);
    voters_become(&nodes[0], &expected).await;
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_far_behind_catches_up_from_a_snapshot_and_restarts_from_it() {
    let mut sim = Sim::new();
    sim.snapshot_every = 10;
    let nodes = sim.cluster(3).await;
    sim.net.isolate(&Sim::bus(3).to_string());
    let mut last = None;
    for _ in 0..40 {
        last = Some(
            bounded(nodes[0].propose(Change::Rebalance))
                .await
                .expect("commits"),
        );
    }
    let last = last.expect("proposed");
    sim.net.heal();
    let agreed = agree(&nodes).await;
    assert_eq!(agreed.epoch, last.epoch);
    assert!(sim.node_dir(3).join("snapshot.json").exists());

    nodes[2].shutdown().await;
    let back = sim.start(sim.config(3)).await;
    assert_eq!(back.id(), nodes[2].id());
    let all = [nodes[0].clone(), nodes[1].clone(), back];
    agree_after(&all, last.epoch).await;
    for node in &all {
        node.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_whole_cluster_restarted_one_node_at_a_time_comes_back() {
    let sim = Sim::new();
    let nodes = sim.cluster(3).await;
    let before = topology(&nodes[0]);
    for node in &nodes {
        node.shutdown().await;
    }
    // Each start returns with the topology it had, before a majority is back to commit.
    let mut back = Vec::new();
    for n in 1..=3 {
        let node = sim.start(sim.config(n)).await;
        assert_eq!(node.id(), nodes[usize::from(n) - 1].id());
        assert!(topology(&node).nodes.contains_key(node.id()));
        back.push(node);
    }
    let agreed = agree_after(&back, before.epoch).await;
    assert_eq!(agreed.slots, before.slots);
    for node in &back {
        node.shutdown().await;
    }
}

fn dir_has_state(dir: &Path) -> bool {
    ["node-id", "raft-log", "vote.json"]
        .iter()
        .all(|f| dir.join(f).exists())
}
