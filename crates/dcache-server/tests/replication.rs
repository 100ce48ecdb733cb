//! Replication between in-process nodes that agree through one in-memory topology: what a
//! write's acknowledgement promises under each strategy, failover to a replica, held replies in
//! a pipeline, READONLY, WAIT, ROLE and INFO replication.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::members::{enabled, replicated};
use common::{TestNode, cmd, error_text, query};
use dcache_cluster::{Change, Settings, Strategy, Topology};
use dcache_server::NodeConfig;
use dcache_server::cluster::LocalControl;
use redis::Value;

fn topology(control: &LocalControl) -> Arc<Topology> {
    Arc::clone(&control.subscribe().borrow())
}

/// The node that holds `key`'s slot at `position` of its copies (0: the primary).
fn holder<'a>(
    control: &LocalControl,
    nodes: &'a [TestNode],
    key: &str,
    position: usize,
) -> &'a TestNode {
    let t = topology(control);
    let slot = dcache_placement::slot(key.as_bytes());
    let id = &t.replicas_of(slot)[position].id;
    nodes
        .iter()
        .find(|n| n.shared.cluster.as_ref().unwrap().view().me == *id)
        .expect("a live node")
}

/// Whether `node` holds `key` with `value`, read straight from its store.
fn holds(node: &TestNode, key: &str, value: &str) -> bool {
    let now = node.shared.clock.now_ms();
    let effect = node.shared.store.effect_of(key.as_bytes(), now);
    matches!(effect.change, dcache_store::Change::Put { value: dcache_store::OwnedValue::Str(v), .. } if &*v == value.as_bytes())
}

async fn set(
    con: &mut redis::aio::MultiplexedConnection,
    key: &str,
    value: &str,
) -> redis::RedisResult<Value> {
    cmd(con, &["SET", key, value]).await
}

/// Under `primary` with one synchronous replica and under `chain`, the replica (the tail) holds a
/// write by the time its primary (head) acknowledges it.
#[tokio::test]
async fn an_acknowledged_write_is_on_its_replica() {
    for strategy in [Strategy::Primary, Strategy::Chain] {
        let (control, nodes) = replicated(3, Settings::new(1, strategy), enabled()).await;
        for i in 0..50 {
            let key = format!("key:{i}");
            let primary = holder(&control, &nodes, &key, 0);
            let mut con = primary.client().await;
            assert_eq!(
                set(&mut con, &key, &format!("v{i}")).await.unwrap(),
                Value::Okay
            );
            let replica = holder(&control, &nodes, &key, 1);
            assert!(
                holds(replica, &key, &format!("v{i}")),
                "{strategy:?}: {key} acknowledged but not on its replica"
            );
        }
    }
}

/// A chain of three: the write reaches the tail before the head acknowledges it.
#[tokio::test]
async fn a_chain_of_three_acknowledges_from_the_tail() {
    let (control, nodes) = replicated(3, Settings::new(2, Strategy::Chain), enabled()).await;
    for i in 0..30 {
        let key = format!("k{i}");
        let mut con = holder(&control, &nodes, &key, 0).client().await;
        assert_eq!(set(&mut con, &key, "x").await.unwrap(), Value::Okay);
        assert!(
            holds(holder(&control, &nodes, &key, 2), &key, "x"),
            "{key}: not at the tail"
        );
        assert!(
            holds(holder(&control, &nodes, &key, 1), &key, "x"),
            "{key}: not in the middle"
        );
    }
}

/// The primary of a slot fails: its replica takes over with every acknowledged write, and
/// writes to the slot succeed again.
#[tokio::test]
async fn a_failed_primary_is_replaced_by_its_replica_with_every_acknowledged_write() {
    for strategy in [Strategy::Primary, Strategy::Chain] {
        let (control, mut nodes) = replicated(3, Settings::new(1, strategy), enabled()).await;
        let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
        let mut con = client.get_async_connection().await.unwrap();
        for i in 0..200 {
            let () = redis::cmd("SET")
                .arg(format!("key:{i}"))
                .arg(i)
                .query_async(&mut con)
                .await
                .unwrap();
        }
        // Node 1 dies without a word; the cluster declares it failed.
        let dead = nodes.remove(1);
        let dead_id = dead.shared.cluster.as_ref().unwrap().view().me.clone();
        drop(dead);
        control.apply(&Change::Fail(dead_id.clone())).unwrap();
        let t = topology(&control);
        assert!(!t.serves_any(&dead_id));
        assert!(t.all_served(), "every slot has a live primary at once");
        let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
        let mut con = client.get_async_connection().await.unwrap();
        for i in 0..200 {
            let v: Option<i64> = redis::cmd("GET")
                .arg(format!("key:{i}"))
                .query_async(&mut con)
                .await
                .unwrap();
            assert_eq!(v, Some(i), "{strategy:?}: key:{i} lost with its primary");
        }
        for i in 0..200 {
            let () = redis::cmd("SET")
                .arg(format!("key:{i}"))
                .arg(i + 1)
                .query_async(&mut con)
                .await
                .unwrap();
        }
    }
}

/// A pipeline of writes and reads through one connection: every reply in order, each read
/// seeing the writes before it, while the writes wait for their copies.
#[tokio::test]
async fn a_pipeline_keeps_its_order_while_writes_wait_for_their_copies() {
    let (control, nodes) = replicated(3, Settings::new(1, Strategy::Chain), enabled()).await;
    // Keys of one slot, so that one node serves them all.
    let keys: Vec<String> = (0..20).map(|i| format!("{{tag}}:{i}")).collect();
    let primary = holder(&control, &nodes, &keys[0], 0);
    let mut con = primary.client().await;
    let mut pipe = redis::pipe();
    for (i, key) in keys.iter().enumerate() {
        pipe.cmd("SET").arg(key).arg(i);
        pipe.cmd("INCR").arg(key);
        pipe.cmd("GET").arg(key);
    }
    let replies: Vec<Value> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(replies.len(), keys.len() * 3);
    for (i, chunk) in replies.chunks(3).enumerate() {
        let i = i as i64;
        assert_eq!(chunk[0], Value::Okay);
        assert_eq!(chunk[1], Value::Int(i + 1));
        assert_eq!(
            chunk[2],
            Value::BulkString((i + 1).to_string().into_bytes())
        );
    }
    let replica = holder(&control, &nodes, &keys[0], 1);
    for (i, key) in keys.iter().enumerate() {
        assert!(
            holds(replica, key, &(i + 1).to_string()),
            "{key} on the tail"
        );
    }
}

/// A replica that stops answering (not yet declared failed): a synchronous write waits, other
/// clients are served meanwhile, and the write is answered -NOREPLICAS at its deadline.
#[tokio::test]
async fn a_write_whose_replica_is_silent_times_out_and_blocks_no_one() {
    let config = NodeConfig {
        // Writes wait three node timeouts (at least 3 s) for their copies.
        cluster_node_timeout: 100,
        ..enabled()
    };
    let (control, mut nodes) = replicated(2, Settings::new(1, Strategy::Primary), config).await;
    let key = "some-key";
    let primary_id = topology(&control).replicas_of(dcache_placement::slot(key.as_bytes()))[0]
        .id
        .clone();
    let at = nodes
        .iter()
        .position(|n| n.shared.cluster.as_ref().unwrap().view().me == primary_id)
        .unwrap();
    let primary = nodes.remove(at);
    // The replica is gone; the topology still lists it.
    for node in nodes {
        node.stop().await.unwrap();
    }
    // A raw connection: the redis crate's own response timeout is shorter than the wait.
    let mut writer = primary.raw().await;
    let mut other = primary.client().await;
    let started = Instant::now();
    let request = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len());
    let write = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        writer.write_all(request.as_bytes()).await.unwrap();
        common::read_until(&mut writer, b"\r\n").await
    });
    // Another client is answered while the write waits.
    let pong: String = query(&mut other, &["PING"]).await;
    assert_eq!(pong, "PONG");
    let reply = String::from_utf8(write.await.unwrap()).unwrap();
    assert!(reply.starts_with("-NOREPLICAS"), "{reply}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for its deadline"
    );
    assert_eq!(
        primary
            .shared
            .cluster
            .as_ref()
            .unwrap()
            .replication
            .timed_out
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// Asynchronous replication (`sync-replicas 0`): a write is acknowledged without its replica,
/// and reaches it soon after.
#[tokio::test]
async fn asynchronous_writes_are_acknowledged_at_once_and_replicated_after() {
    let mut settings = Settings::new(1, Strategy::Primary);
    settings.sync_replicas = 0;
    let (control, nodes) = replicated(2, settings, enabled()).await;
    let key = "async-key";
    let mut con = holder(&control, &nodes, key, 0).client().await;
    assert_eq!(set(&mut con, key, "v").await.unwrap(), Value::Okay);
    // WAIT for one replica: once it answers, the replica holds the write.
    let reached: i64 = query(&mut con, &["WAIT", "1", "5000"]).await;
    assert_eq!(reached, 1);
    assert!(holds(holder(&control, &nodes, key, 1), key, "v"));
}

/// READONLY lets a replica answer reads of its slots; without it, it redirects to the primary.
#[tokio::test]
async fn readonly_reads_a_replica() {
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Primary), enabled()).await;
    let key = "read-me";
    let mut primary = holder(&control, &nodes, key, 0).client().await;
    assert_eq!(set(&mut primary, key, "there").await.unwrap(), Value::Okay);
    let mut replica = holder(&control, &nodes, key, 1).client().await;
    let moved = error_text(&mut replica, &["GET", key]).await;
    assert!(moved.starts_with("MOVED"), "{moved}");
    let ok: String = query(&mut replica, &["READONLY"]).await;
    assert_eq!(ok, "OK");
    let value: String = query(&mut replica, &["GET", key]).await;
    assert_eq!(value, "there");
    // Writes still go to the primary.
    let moved = error_text(&mut replica, &["SET", key, "x"]).await;
    assert!(moved.starts_with("MOVED"), "{moved}");
    let ok: String = query(&mut replica, &["READWRITE"]).await;
    assert_eq!(ok, "OK");
    let moved = error_text(&mut replica, &["GET", key]).await;
    assert!(moved.starts_with("MOVED"), "{moved}");
}

/// CLUSTER SLOTS lists each slot's primary and its replica; ROLE and INFO replication report
/// the peers this node streams to, with what they acknowledged.
#[tokio::test]
async fn cluster_slots_role_and_info_show_the_copies() {
    let (control, nodes) = replicated(3, Settings::new(1, Strategy::Primary), enabled()).await;
    let mut con = nodes[0].client().await;
    let Value::Array(ranges) = cmd(&mut con, &["CLUSTER", "SLOTS"]).await.unwrap() else {
        panic!("an array")
    };
    let t = topology(&control);
    let mut covered = 0;
    for range in &ranges {
        let Value::Array(parts) = range else { panic!() };
        assert_eq!(parts.len(), 4, "first, last, primary, one replica");
        let (Value::Int(first), Value::Int(last)) = (&parts[0], &parts[1]) else {
            panic!()
        };
        let id = |v: &Value| match v {
            Value::Array(e) => match &e[2] {
                Value::BulkString(id) => String::from_utf8(id.clone()).unwrap(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        let set: Vec<String> = t
            .replicas_of(*first as u16)
            .iter()
            .map(|n| n.id.clone())
            .collect();
        assert_eq!(vec![id(&parts[2]), id(&parts[3])], set);
        assert_ne!(set[0], set[1]);
        covered += last - first + 1;
    }
    assert_eq!(covered, 16384);

    // Writes to slots this node is the primary of reach its peers.
    let me = nodes[0].shared.cluster.as_ref().unwrap().view().me.clone();
    let mut written = 0;
    for i in 0..200 {
        let key = format!("k{i}");
        if t.replicas_of(dcache_placement::slot(key.as_bytes()))[0].id == me {
            assert_eq!(set(&mut con, &key, "v").await.unwrap(), Value::Okay);
            written += 1;
        }
    }
    assert!(written > 0);
    let Value::Array(role) = cmd(&mut con, &["ROLE"]).await.unwrap() else {
        panic!()
    };
    assert_eq!(role[0], Value::BulkString(b"master".to_vec()));
    assert_eq!(role[1], Value::Int(written));
    let Value::Array(peers) = &role[2] else {
        panic!()
    };
    assert!(!peers.is_empty());
    let info: String = query(&mut con, &["INFO", "replication"]).await;
    assert!(info.contains("replication_strategy:primary\r\n"), "{info}");
    assert!(info.contains("replication_replicas:1\r\n"), "{info}");
    assert!(
        info.contains(&format!("master_repl_offset:{written}\r\n")),
        "{info}"
    );
    // With one synchronous replica every peer has acknowledged what it was sent.
    let reached: i64 = query(&mut con, &["WAIT", &peers.len().to_string(), "1000"]).await;
    assert_eq!(reached, peers.len() as i64);
}

/// CLUSTER SET changes the settings through the topology; bad values are refused.
#[tokio::test]
async fn cluster_set_changes_the_replication_settings() {
    let (control, nodes) = replicated(3, Settings::default(), enabled()).await;
    let mut con = nodes[0].client().await;
    let ok: String = query(
        &mut con,
        &["CLUSTER", "SET", "replicas", "1", "replication", "chain"],
    )
    .await;
    assert_eq!(ok, "OK");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = topology(&control);
        if t.settings.replicas == 1 {
            assert_eq!(t.settings.strategy, Strategy::Chain);
            break;
        }
        assert!(Instant::now() < deadline, "the settings never committed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = error_text(&mut con, &["CLUSTER", "SET", "replicas", "9"]).await;
    assert!(e.starts_with("ERR"), "{e}");
    let e = error_text(&mut con, &["CLUSTER", "SET", "replication", "gossip"]).await;
    assert!(e.starts_with("ERR"), "{e}");
    let e = error_text(&mut con, &["CLUSTER", "SET", "colour", "1"]).await;
    assert!(e.contains("Unknown setting"), "{e}");
}

/// An effect for `key` newer than anything written so far: a write this node never saw (as a
/// copy promoted after a failure may lack one).
fn newer_effect(node: &TestNode, key: &str, value: &str) -> dcache_store::Effect {
    let now = node.shared.clock.now_ms();
    let current = node.shared.store.effect_of(key.as_bytes(), now).version;
    dcache_store::Effect {
        key: key.as_bytes().into(),
        version: dcache_store::Version(current.0 + (1 << 30)),
        change: dcache_store::Change::Put {
            value: dcache_store::OwnedValue::Str(value.as_bytes().into()),
            expire_at: None,
        },
    }
}

/// Quorum: a write is acknowledged once W copies hold it; a read asks R copies, answers the
/// newest, and repairs the copies that were older, both ways.
#[tokio::test]
async fn quorum_reads_answer_the_newest_copy_and_repair_the_others() {
    // Two copies, W = R = 2.
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Quorum), enabled()).await;
    let key = "q-key";
    let primary = holder(&control, &nodes, key, 0);
    let replica = holder(&control, &nodes, key, 1);
    let mut con = primary.client().await;
    assert_eq!(set(&mut con, key, "one").await.unwrap(), Value::Okay);
    assert!(
        holds(replica, key, "one"),
        "W = 2: on both copies when acknowledged"
    );

    // The replica has a newer state the primary lacks: the read answers it, and the primary
    // takes it.
    let newer = newer_effect(replica, key, "two");
    replica
        .shared
        .store
        .restore(newer, replica.shared.clock.now_ms())
        .unwrap();
    let value: String = query(&mut con, &["GET", key]).await;
    assert_eq!(value, "two");
    assert!(
        holds(primary, key, "two"),
        "the coordinator repaired itself"
    );

    // The primary has a newer state the replica lacks: the read repairs the replica.
    let newest = newer_effect(primary, key, "three");
    primary
        .shared
        .store
        .restore(newest, primary.shared.clock.now_ms())
        .unwrap();
    let value: String = query(&mut con, &["GET", key]).await;
    assert_eq!(value, "three");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !holds(replica, key, "three") {
        assert!(Instant::now() < deadline, "the replica was never repaired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A pipeline of quorum reads and writes keeps its order.
    let mut pipe = redis::pipe();
    for i in 0..10 {
        pipe.cmd("SET").arg(key).arg(i).cmd("GET").arg(key);
    }
    let replies: Vec<Value> = pipe.query_async(&mut con).await.unwrap();
    for (i, pair) in replies.chunks(2).enumerate() {
        assert_eq!(pair[0], Value::Okay);
        assert_eq!(pair[1], Value::BulkString(i.to_string().into_bytes()));
    }
}

/// Quorum reads need R copies: with the only other copy gone, a read is refused rather than
/// answered from one copy.
#[tokio::test]
async fn a_quorum_read_without_enough_copies_is_refused() {
    let (control, mut nodes) = replicated(2, Settings::new(1, Strategy::Quorum), enabled()).await;
    let key = "lonely";
    let primary_id = topology(&control).replicas_of(dcache_placement::slot(key.as_bytes()))[0]
        .id
        .clone();
    let at = nodes
        .iter()
        .position(|n| n.shared.cluster.as_ref().unwrap().view().me == primary_id)
        .unwrap();
    let primary = nodes.remove(at);
    for node in nodes {
        node.stop().await.unwrap();
    }
    let mut con = primary.client().await;
    let e = error_text(&mut con, &["GET", key]).await;
    assert!(e.starts_with("TRYAGAIN"), "{e}");
}

/// Polls until `node` holds `key` with `value` (a copy that a write or a repair reaches after
/// its acknowledgement).
async fn until_holds(node: &TestNode, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !holds(node, key, value) {
        assert!(Instant::now() < deadline, "{key} never reached {value}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Quorum: every copy coordinates. A write sent to a replica is acknowledged there once W
/// copies hold it, reads at the primary and at every copy answer it, and WAIT at the replica
/// counts the copies it reached.
#[tokio::test]
async fn under_quorum_a_write_at_a_replica_is_acknowledged_and_read_at_every_copy() {
    // Three copies, W = R = 2.
    let (control, nodes) = replicated(3, Settings::new(2, Strategy::Quorum), enabled()).await;
    for i in 0..20 {
        let key = format!("rq:{i}");
        let value = format!("v{i}");
        // Alternate between the two replicas.
        let coordinator = holder(&control, &nodes, &key, 1 + i % 2);
        let mut con = coordinator.client().await;
        assert_eq!(set(&mut con, &key, &value).await.unwrap(), Value::Okay);
        assert!(holds(coordinator, &key, &value));
        for position in 0..3 {
            let mut reader = holder(&control, &nodes, &key, position).client().await;
            let read: String = query(&mut reader, &["GET", &key]).await;
            assert_eq!(read, value, "{key} read at copy {position}");
        }
        let reached: i64 = query(&mut con, &["WAIT", "2", "5000"]).await;
        assert_eq!(reached, 2, "{key}: WAIT at the replica");
        for position in 0..3 {
            until_holds(holder(&control, &nodes, &key, position), &key, &value).await;
        }
    }
    // A replica's later write replaces the primary's.
    let key = "rq:both";
    let mut at_primary = holder(&control, &nodes, key, 0).client().await;
    let mut at_replica = holder(&control, &nodes, key, 2).client().await;
    assert_eq!(
        set(&mut at_primary, key, "first").await.unwrap(),
        Value::Okay
    );
    assert_eq!(
        set(&mut at_replica, key, "second").await.unwrap(),
        Value::Okay
    );
    let read: String = query(&mut at_primary, &["GET", key]).await;
    assert_eq!(read, "second");
}

/// Quorum: a read at a replica asks R copies, answers the newest, and repairs the copy that was
/// older, whichever it is.
#[tokio::test]
async fn under_quorum_a_read_at_a_replica_answers_the_newest_and_repairs_a_stale_copy() {
    // Two copies, W = R = 2.
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Quorum), enabled()).await;
    let key = "rr-key";
    let primary = holder(&control, &nodes, key, 0);
    let replica = holder(&control, &nodes, key, 1);
    let mut con = replica.client().await;
    assert_eq!(set(&mut con, key, "one").await.unwrap(), Value::Okay);

    // The primary has a newer state the replica lacks: the read at the replica answers it and
    // takes it.
    let newer = newer_effect(primary, key, "two");
    primary
        .shared
        .store
        .restore(newer, primary.shared.clock.now_ms())
        .unwrap();
    let value: String = query(&mut con, &["GET", key]).await;
    assert_eq!(value, "two");
    assert!(
        holds(replica, key, "two"),
        "the coordinator repaired itself"
    );

    // The replica has a newer state the primary lacks: the read at the replica repairs the
    // primary.
    let newest = newer_effect(replica, key, "three");
    replica
        .shared
        .store
        .restore(newest, replica.shared.clock.now_ms())
        .unwrap();
    let value: String = query(&mut con, &["GET", key]).await;
    assert_eq!(value, "three");
    until_holds(primary, key, "three").await;
}

/// Only `quorum` lets a replica coordinate: under `primary` and `chain` a replica still sends
/// writes and reads to the primary (`-MOVED`), as Redis Cluster clients expect.
#[tokio::test]
async fn only_quorum_lets_a_replica_take_writes() {
    for strategy in [Strategy::Primary, Strategy::Chain, Strategy::Quorum] {
        let (control, nodes) = replicated(2, Settings::new(1, strategy), enabled()).await;
        let key = "who-writes";
        let mut replica = holder(&control, &nodes, key, 1).client().await;
        if strategy == Strategy::Quorum {
            assert_eq!(set(&mut replica, key, "here").await.unwrap(), Value::Okay);
            let value: String = query(&mut replica, &["GET", key]).await;
            assert_eq!(value, "here");
        } else {
            for request in [&["SET", key, "here"][..], &["GET", key]] {
                let moved = error_text(&mut replica, request).await;
                let primary = holder(&control, &nodes, key, 0);
                assert_eq!(
                    moved,
                    format!(
                        "MOVED {} {}",
                        dcache_placement::slot(key.as_bytes()),
                        primary.addr
                    ),
                    "{strategy:?}: {request:?}"
                );
            }
        }
    }
}

/// A replica's write reaches the primary as an effect, and the primary accounts for it as for a
/// client's write while it moves the slot: recorded for the move to copy again, whether the slot
/// is watched or paused for the move's last step (when the other copies flush to the primary
/// what they coordinated, `CLUSTER DRAIN`).
#[tokio::test]
async fn under_quorum_a_primary_moving_the_slot_records_a_replicas_writes() {
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Quorum), enabled()).await;
    let key = "moving-key";
    let slot = dcache_placement::slot(key.as_bytes());
    let primary = holder(&control, &nodes, key, 0);
    let replica = holder(&control, &nodes, key, 1);
    let cluster = primary.shared.cluster.as_ref().unwrap();
    let mut con = replica.client().await;
    assert_eq!(set(&mut con, key, "settled").await.unwrap(), Value::Okay);
    assert!(cluster.take_dirty().is_empty(), "nothing recorded");
    cluster.watch(&[slot]).await;
    assert_eq!(set(&mut con, key, "watched").await.unwrap(), Value::Okay);
    assert!(holds(primary, key, "watched"), "W = 2 of 2");
    assert!(cluster.take_dirty().contains(key.as_bytes()), "watched");
    cluster.pause(&[slot]).await;
    assert_eq!(set(&mut con, key, "paused").await.unwrap(), Value::Okay);
    assert!(holds(primary, key, "paused"));
    assert!(cluster.take_dirty().contains(key.as_bytes()), "paused");
    // The primary itself refuses its clients' writes meanwhile.
    let mut at_primary = primary.client().await;
    let e = error_text(&mut at_primary, &["SET", key, "x"]).await;
    assert!(e.starts_with("TRYAGAIN"), "{e}");
    cluster.settle(&[slot]);
}

/// `CLUSTER DRAIN` at a copy answers once the node it names acknowledged everything this copy
/// queued for it, and refuses a slot that is not one.
#[tokio::test]
async fn cluster_drain_answers_once_the_stream_is_acknowledged() {
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Quorum), enabled()).await;
    let key = "drained";
    let primary = holder(&control, &nodes, key, 0);
    let replica = holder(&control, &nodes, key, 1);
    let primary_id = primary.shared.cluster.as_ref().unwrap().view().me.clone();
    let mut con = replica.client().await;
    assert_eq!(set(&mut con, key, "v").await.unwrap(), Value::Okay);
    let epoch = topology(&control).epoch.to_string();
    let slot = dcache_placement::slot(key.as_bytes()).to_string();
    let ok: String = query(&mut con, &["CLUSTER", "DRAIN", &primary_id, &epoch, &slot]).await;
    assert_eq!(ok, "OK");
    let streams = replica
        .shared
        .cluster
        .as_ref()
        .unwrap()
        .replication
        .streams();
    let (_, queued, acked) = streams.iter().find(|s| s.0 == primary_id).unwrap();
    assert_eq!(queued, acked);
    let e = error_text(
        &mut con,
        &["CLUSTER", "DRAIN", &primary_id, &epoch, "16384"],
    )
    .await;
    assert_eq!(e, "ERR Invalid slot");
}

/// Quorum writes sent to replicas while a node joins and the slots move: every acknowledged
/// write is on every copy of the settled cluster (W = N = 2). Replicas send the writes of a slot
/// that is about to move to its primary (`-MOVED`), which the writer skips.
///
/// And the primary may lack a write that other copies hold (W copies acknowledged it, not
/// necessarily the primary): a move that gives a slot new copies first gathers every copy's
/// state at the primary (`CLUSTER PUSH`), so the new copies get the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_quorum_writes_at_replicas_survive_a_rebalance() {
    let (control, mut nodes) = replicated(3, Settings::new(1, Strategy::Quorum), enabled()).await;
    let gathered: Vec<String> = (0..200).map(|i| format!("gather:{i}")).collect();
    for key in &gathered {
        let mut con = holder(&control, &nodes, key, 0).client().await;
        assert_eq!(set(&mut con, key, "old").await.unwrap(), Value::Okay);
        // The replica alone gets a newer state.
        let replica = holder(&control, &nodes, key, 1);
        let newer = newer_effect(replica, key, "new");
        replica
            .shared
            .store
            .restore(newer, replica.shared.clock.now_ms())
            .unwrap();
    }
    let before = topology(&control);
    let mut cons = std::collections::HashMap::new();
    for node in &nodes {
        cons.insert(node.addr.port(), node.client().await);
    }
    let (newcomer, newcomer_node) = common::members::member(&control, enabled()).await;
    let writer_control = Arc::clone(&control);
    let writes = tokio::spawn(async move {
        let mut last: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let mut moved = 0;
        for i in 0..3_000u32 {
            let key = format!("rb:{}", i % 300);
            let t = topology(&writer_control);
            let copies = t.replicas_of(dcache_placement::slot(key.as_bytes()));
            let Some(con) = copies.get(1).and_then(|r| cons.get_mut(&r.port)) else {
                continue;
            };
            match cmd(con, &["SET", &key, &i.to_string()]).await {
                Ok(_) => {
                    last.insert(key, i);
                }
                Err(e) if e.to_string().contains("Moved") || e.code() == Some("MOVED") => {
                    moved += 1
                }
                Err(_) => {}
            }
        }
        (last, moved)
    });
    control.apply(&Change::Join(newcomer_node)).unwrap();
    let mut rx = control.subscribe();
    let settled =
        tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|t| t.target.is_none()))
            .await
            .expect("the rebalance ends within a minute")
            .unwrap()
            .clone();
    let (last, moved) = writes.await.unwrap();
    assert!(
        last.len() > 100,
        "few writes acknowledged ({moved} sent to the primary)"
    );
    nodes.push(newcomer);
    common::members::reach_epoch(&nodes, settled.epoch).await;
    for (key, value) in last {
        for copy in settled.replicas_of(dcache_placement::slot(key.as_bytes())) {
            let node = nodes.iter().find(|n| n.addr.port() == copy.port).unwrap();
            let now = node.shared.clock.now_ms();
            let held = match node.shared.store.effect_of(key.as_bytes(), now).change {
                dcache_store::Change::Put {
                    value: dcache_store::OwnedValue::Str(v),
                    ..
                } => std::str::from_utf8(&v).unwrap().parse::<u32>().unwrap(),
                other => panic!("{key}: {other:?} on {}", copy.port),
            };
            assert!(
                held >= value,
                "{key}: {held} on {}, {value} acknowledged",
                copy.port
            );
        }
    }
    let mut checked = 0;
    for key in &gathered {
        let slot = dcache_placement::slot(key.as_bytes());
        let old: Vec<String> = before
            .replicas_of(slot)
            .iter()
            .map(|n| n.id.clone())
            .collect();
        let now = settled.replicas_of(slot);
        if now.iter().all(|n| old.contains(&n.id)) {
            continue;
        }
        checked += 1;
        for copy in now {
            let node = nodes.iter().find(|n| n.addr.port() == copy.port).unwrap();
            assert!(holds(node, key, "new"), "{key} on {}", copy.port);
        }
    }
    assert!(checked > 10, "only {checked} keys moved to a new copy");
}

/// While a slot's copies are about to change, its replicas send writes to the primary, which
/// drives the move (`-MOVED`); reads, and writes to settled slots, stay with the replica.
#[tokio::test]
async fn under_quorum_a_replica_sends_the_writes_of_a_moving_slot_to_the_primary() {
    use dcache_server::cluster::{Cluster, Route};
    let control = LocalControl::new();
    let node = |n: u16| dcache_cluster::Node {
        id: format!("{n:040x}"),
        host: "127.0.0.1".into(),
        port: n,
        bus_port: 0,
        state: dcache_cluster::NodeState::Online,
    };
    for n in 1..=3 {
        control.apply(&Change::Join(node(n))).unwrap();
        common::members::settle(&control);
    }
    control
        .apply(&Change::Set(Settings::new(1, Strategy::Quorum)))
        .unwrap();
    common::members::settle(&control);
    // A fourth node: slots are to move, and nothing moves them here.
    control.apply(&Change::Join(node(4))).unwrap();
    let t = topology(&control);
    let (now, target) = (t.slots.as_ref().unwrap(), t.target.as_ref().unwrap());
    let moving = (0..16384u16)
        .find(|&s| !now.same_set(target, s))
        .expect("a slot to move");
    let me = t.replicas_of(moving)[1].id.clone();
    let settled = (0..16384u16)
        .find(|&s| now.same_set(target, s) && t.role_of(&me, s) == Some(1))
        .expect("a settled slot this node is a replica of");
    let cluster = Cluster::new(&me, None);
    cluster.set_topology(Arc::clone(&t));
    let view = cluster.view();
    let key_in = |slot: u16| {
        (0..)
            .map(|i| format!("k{i}"))
            .find(|k| dcache_placement::slot(k.as_bytes()) == slot)
            .unwrap()
    };
    let (k_moving, k_settled) = (key_in(moving), key_in(settled));
    let route = |key: &str, writes: bool| {
        cluster.route(&view, std::iter::once(key.as_bytes()), writes, false)
    };
    let primary = t.owner(moving).unwrap();
    assert_eq!(
        route(&k_moving, true),
        Route::Refuse(format!("MOVED {moving} {}:{}", primary.host, primary.port))
    );
    assert_eq!(route(&k_moving, false), Route::Copy { slot: moving });
    assert_eq!(route(&k_settled, true), Route::Copy { slot: settled });
    assert_eq!(route(&k_settled, false), Route::Copy { slot: settled });
}

/// `CLUSTER PUSH` sends this copy's state of slots to a node, taken there by version.
#[tokio::test]
async fn cluster_push_sends_a_copys_slot_to_a_node() {
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Quorum), enabled()).await;
    let key = "pushed";
    let primary = holder(&control, &nodes, key, 0);
    let replica = holder(&control, &nodes, key, 1);
    let newer = newer_effect(replica, key, "newest");
    replica
        .shared
        .store
        .restore(newer, replica.shared.clock.now_ms())
        .unwrap();
    assert!(!holds(primary, key, "newest"));
    let mut con = replica.client().await;
    let slot = dcache_placement::slot(key.as_bytes()).to_string();
    let port = primary.addr.port().to_string();
    let ok: String = query(&mut con, &["CLUSTER", "PUSH", "127.0.0.1", &port, &slot]).await;
    assert_eq!(ok, "OK");
    assert!(holds(primary, key, "newest"));
}

/// A list, a set and a sorted set, written through a cluster client under each strategy: after
/// their primary dies, the copy that takes over serves every acknowledged change of each, in
/// order (the effects replicate whole values of any type, not only strings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_a_set_and_a_sorted_set_survive_their_primary() {
    for settings in [
        Settings::new(1, Strategy::Primary),
        Settings::new(1, Strategy::Chain),
        Settings::new(2, Strategy::Quorum),
    ] {
        let strategy = settings.strategy;
        let (control, mut nodes) = replicated(3, settings, enabled()).await;
        let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
        let mut con = client.get_async_connection().await.unwrap();
        // One slot for the three, so that one death takes all their primaries.
        let (list, set, zset) = ("{t}:list", "{t}:set", "{t}:zset");
        let run = async |con: &mut redis::cluster_async::ClusterConnection, args: &[&str]| {
            let mut c = redis::cmd(args[0]);
            for a in &args[1..] {
                c.arg(*a);
            }
            c.query_async::<Value>(con).await.unwrap()
        };
        let (mut want_list, mut want_set, mut want_zset) = (
            std::collections::VecDeque::new(),
            std::collections::BTreeSet::new(),
            std::collections::BTreeMap::new(),
        );
        for i in 0..60 {
            let item = format!("e{i}");
            if i % 2 == 0 {
                run(&mut con, &["RPUSH", list, &item]).await;
                want_list.push_back(item.clone());
            } else {
                run(&mut con, &["LPUSH", list, &item]).await;
                want_list.push_front(item.clone());
            }
            if i % 5 == 4 {
                run(&mut con, &["LPOP", list]).await;
                want_list.pop_front();
            }
            run(&mut con, &["SADD", set, &item]).await;
            want_set.insert(item.clone());
            if i % 3 == 2 {
                let gone = format!("e{}", i - 1);
                run(&mut con, &["SREM", set, &gone]).await;
                want_set.remove(&gone);
            }
            let score = (i * 7 % 13) as i64;
            run(&mut con, &["ZADD", zset, &score.to_string(), &item]).await;
            want_zset.insert(item.clone(), score);
            if i % 4 == 3 {
                run(&mut con, &["ZINCRBY", zset, "100", "e0"]).await;
                *want_zset.get_mut("e0").unwrap() += 100;
            }
        }
        // The slot's primary dies without a word; the cluster declares it failed.
        let primary = holder(&control, &nodes, list, 0).addr;
        let at = nodes.iter().position(|n| n.addr == primary).unwrap();
        let dead = nodes.remove(at);
        let dead_id = dead.shared.cluster.as_ref().unwrap().view().me.clone();
        drop(dead);
        control.apply(&Change::Fail(dead_id)).unwrap();
        assert!(topology(&control).all_served());
        let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
        let mut con = client.get_async_connection().await.unwrap();
        let got: Vec<String> = redis::cmd("LRANGE")
            .arg(list)
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(got, Vec::from(want_list), "{strategy:?}: the list");
        let mut got: Vec<String> = redis::cmd("SMEMBERS")
            .arg(set)
            .query_async(&mut con)
            .await
            .unwrap();
        got.sort();
        assert_eq!(
            got,
            want_set.into_iter().collect::<Vec<_>>(),
            "{strategy:?}: the set"
        );
        let got: Vec<(String, i64)> = redis::cmd("ZRANGE")
            .arg(zset)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut con)
            .await
            .unwrap();
        let mut want: Vec<(String, i64)> = want_zset.into_iter().collect();
        want.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        assert_eq!(got, want, "{strategy:?}: the sorted set");
    }
}

/// Quorum: a client blocked in BLPOP at a replica (any copy coordinates) is woken by a push
/// that another copy coordinated and replicated here, and takes the element.
#[tokio::test]
async fn under_quorum_a_push_replicated_to_a_copy_wakes_its_blocked_client() {
    let (control, nodes) = replicated(3, Settings::new(2, Strategy::Quorum), enabled()).await;
    let key = "q:jobs";
    let replica = holder(&control, &nodes, key, 1);
    let mut watcher = replica.client().await;
    let mut waiting = common::patient(replica).await;
    let popped = tokio::spawn(async move {
        // Bounded, so that a lost wake-up fails rather than hangs.
        query::<Vec<String>>(&mut waiting, &["BLPOP", "q:jobs", "10"]).await
    });
    common::until_blocked(&mut watcher, 1).await;
    let mut at_primary = holder(&control, &nodes, key, 0).client().await;
    let _: i64 = query(&mut at_primary, &["RPUSH", key, "job-1"]).await;
    assert_eq!(popped.await.unwrap(), ["q:jobs", "job-1"]);
    // The pop, coordinated at the replica, reached the primary too.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let len: i64 = query(&mut at_primary, &["LLEN", key]).await;
        if len == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pop never reached the primary"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
