//! Replication under races and failures found by review: each test names the promise it checks.

mod common;

use std::sync::Arc;

use common::members::{enabled, member, member_with, reach_epoch, replicated, settle};
use common::{TestNode, cmd, query};
use dcache_cluster::{Change, Settings, Strategy, Topology};
use dcache_server::NodeConfig;
use dcache_server::cluster::{Control, LocalControl};
use redis::Value;

fn topology(control: &LocalControl) -> Arc<Topology> {
    Arc::clone(&control.subscribe().borrow())
}

fn id_of(node: &TestNode) -> String {
    node.shared.cluster.as_ref().unwrap().view().me.clone()
}

/// Whether `node` holds `key` with `value`, read straight from its store.
fn holds(node: &TestNode, key: &str, value: &str) -> bool {
    let now = node.shared.clock.now_ms();
    let effect = node.shared.store.effect_of(key.as_bytes(), now);
    matches!(effect.change, dcache_store::Change::Put { value: dcache_store::OwnedValue::Str(v), .. } if &*v == value.as_bytes())
}

/// A value for `key` put straight into `node`'s store, as a write's handler leaves it before
/// its effect is submitted.
fn put(node: &TestNode, key: &str, value: &str) {
    let now = node.shared.clock.now_ms();
    let current = node.shared.store.effect_of(key.as_bytes(), now).version;
    let effect = dcache_store::Effect {
        key: key.as_bytes().into(),
        version: dcache_store::Version(current.0 + (1 << 30)),
        change: dcache_store::Change::Put {
            value: dcache_store::OwnedValue::Str(value.as_bytes().into()),
            expire_at: None,
        },
    };
    node.shared.store.restore(effect, now).unwrap();
}

/// `primary` with two replicas and the default `sync-replicas 1`: while the first replica lags
/// (one epoch behind, it refuses the batch), the second replica's answer does not acknowledge a
/// write: the primary waits for its first K replicas in order, and a failover promotes the first
/// surviving one, which then holds every acknowledged write.
#[tokio::test]
async fn a_write_acknowledged_by_the_second_replica_survives_its_primary() {
    let control = LocalControl::new();
    // The lagging node follows a topology this test forwards by hand.
    let (forward, lagging_view) = tokio::sync::watch::channel(topology(&control));
    let (lag, lag_me) =
        member_with(control.clone() as Arc<dyn Control>, lagging_view, enabled()).await;
    control.apply(&Change::Join(lag_me.clone())).unwrap();
    control
        .apply(&Change::Set(Settings::new(2, Strategy::Primary)))
        .unwrap();
    let mut nodes = vec![lag];
    for _ in 0..2 {
        let (node, me) = member(&control, enabled()).await;
        control.apply(&Change::Join(me)).unwrap();
        settle(&control);
        nodes.push(node);
    }
    forward.send(topology(&control)).unwrap();
    let epoch = topology(&control).epoch;
    reach_epoch(&nodes, epoch).await;
    let t = topology(&control);
    // A key whose first replica is the lagging node.
    let key = (0..10_000)
        .map(|i| format!("key:{i}"))
        .find(|k| t.replicas_of(dcache_placement::slot(k.as_bytes()))[1].id == lag_me.id)
        .expect("some slot has the lagging node first among its replicas");
    let set = t.replicas_of(dcache_placement::slot(key.as_bytes()));
    assert_eq!(set.len(), 3);
    let by_id = |id: &str| nodes.iter().position(|n| id_of(n) == id).unwrap();
    let (p, r2) = (by_id(&set[0].id), by_id(&set[2].id));

    // One epoch more for everyone but the lagging node.
    control.apply(&Change::Rebalance).unwrap();
    let epoch = topology(&control).epoch;
    reach_epoch([&nodes[p], &nodes[r2]], epoch).await;
    // The write waits for the first replica, whatever the second says: it is acknowledged
    // only once the lagging node has caught up and holds it.
    let mut con = nodes[p].client().await;
    let k = key.clone();
    let write = tokio::spawn(async move { cmd(&mut con, &["SET", &k, "acked"]).await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !holds(&nodes[r2], &key, "acked") {
        assert!(
            std::time::Instant::now() < deadline,
            "the second replica never got it"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        !write.is_finished(),
        "acknowledged by the second replica while the first lags"
    );
    forward.send(topology(&control)).unwrap();
    assert_eq!(write.await.unwrap().unwrap(), Value::Okay);
    let r1 = by_id(&set[1].id);
    assert!(
        holds(&nodes[r1], &key, "acked"),
        "the first replica holds it"
    );

    // The primary dies; the lagging node catches up with the topology that declares it failed.
    let primary = nodes.remove(p);
    let primary_id = id_of(&primary);
    primary.stop().await.unwrap();
    control.apply(&Change::Fail(primary_id)).unwrap();
    forward.send(topology(&control)).unwrap();
    let epoch = topology(&control).epoch;
    reach_epoch(&nodes, epoch).await;
    let t = topology(&control);
    let new_primary = &t.replicas_of(dcache_placement::slot(key.as_bytes()))[0].id;
    let new_primary = nodes.iter().find(|n| id_of(n) == *new_primary).unwrap();
    let mut con = new_primary.client().await;
    let value: Option<String> = query(&mut con, &["GET", &key]).await;
    assert_eq!(
        value.as_deref(),
        Some("acked"),
        "an acknowledged write (sync-replicas 1) lost with one node"
    );
}

/// WAIT counts the replicas that hold this connection's writes. A peer that holds copies of
/// other slots only, and has acknowledged everything sent to it, must not count for a write
/// whose only replica is down.
#[tokio::test]
async fn wait_does_not_count_a_peer_that_holds_none_of_the_write() {
    let mut settings = Settings::new(1, Strategy::Primary);
    settings.sync_replicas = 0;
    let (control, mut nodes) = replicated(3, settings, enabled()).await;
    let t = topology(&control);
    let a = id_of(&nodes[0]);
    let replica_of = |k: &str| {
        let set = t.replicas_of(dcache_placement::slot(k.as_bytes()));
        (set[0].id.clone(), set[1].id.clone())
    };
    let keys: Vec<String> = (0..10_000).map(|i| format!("w:{i}")).collect();
    let k1 = keys.iter().find(|k| replica_of(k).0 == a).unwrap().clone();
    let c = replica_of(&k1).1;
    let k2 = keys
        .iter()
        .find(|k| replica_of(k).0 == a && replica_of(k).1 != c)
        .unwrap()
        .clone();
    let b = replica_of(&k2).1;

    // C holds k1 and acknowledged it.
    let mut other = nodes[0].client().await;
    assert_eq!(
        cmd(&mut other, &["SET", &k1, "1"]).await.unwrap(),
        Value::Okay
    );
    let reached: i64 = query(&mut other, &["WAIT", "1", "5000"]).await;
    assert_eq!(reached, 1);

    // B, k2's only replica, goes silent (not yet declared failed).
    let at = nodes.iter().position(|n| id_of(n) == b).unwrap();
    nodes.remove(at).stop().await.unwrap();
    let mut con = nodes[0].client().await;
    assert_eq!(
        cmd(&mut con, &["SET", &k2, "2"]).await.unwrap(),
        Value::Okay
    );
    let reached: i64 = query(&mut con, &["WAIT", "1", "300"]).await;
    assert_eq!(reached, 0, "no replica holds {k2}");
}

/// Chain: a read at the head must not answer a write the tail does not hold. The head
/// registers each write as the slot's last before it runs; a write registered later (Y) but
/// acknowledged first replaces the earlier one (X), and a read of X's key is then answered at
/// once. The interleaving is scripted through the functions dispatch calls.
#[tokio::test]
async fn a_chain_read_at_the_head_waits_for_every_write_still_on_its_way() {
    let config = NodeConfig {
        cluster_node_timeout: 100,
        ..enabled()
    };
    let (control, mut nodes) = replicated(2, Settings::new(1, Strategy::Chain), config).await;
    let (kx, ky) = ("{t}x", "{t}y");
    let slot = dcache_placement::slot(kx.as_bytes());
    let t = topology(&control);
    let set = t.replicas_of(slot);
    let head_at = nodes.iter().position(|n| id_of(n) == set[0].id).unwrap();
    let head = nodes.remove(head_at);
    let tail = nodes.pop().unwrap();
    let shared = Arc::clone(&head.shared);

    // X and Y register, in that order; Y runs, is submitted and reaches the tail.
    let (_, ack_x) = dcache_server::replicate::before_write(&shared, slot).unwrap();
    let (_, ack_y) = dcache_server::replicate::before_write(&shared, slot).unwrap();
    put(&head, ky, "y");
    let now = shared.clock.now_ms();
    dcache_server::replicate::after_write(
        &shared,
        slot,
        &ack_y,
        [ky.as_bytes()].into_iter(),
        now,
        &mut Vec::new(),
    );
    ack_y.wait().await.unwrap();
    assert!(holds(&tail, ky, "y"));

    // The tail goes silent; X's handler runs at the head.
    tail.stop().await.unwrap();
    put(&head, kx, "x");
    let mut reader = head.raw().await;
    let read = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        reader
            .write_all(b"*2\r\n$3\r\nGET\r\n$4\r\n{t}x\r\n")
            .await
            .unwrap();
        common::read_until(&mut reader, b"\r\n").await
    });
    // X is submitted (it can never reach the silent tail).
    let now = shared.clock.now_ms();
    dcache_server::replicate::after_write(
        &shared,
        slot,
        &ack_x,
        [kx.as_bytes()].into_iter(),
        now,
        &mut Vec::new(),
    );
    let reply = String::from_utf8(read.await.unwrap()).unwrap();
    assert!(
        !reply.starts_with("$1"),
        "the head answered X's value, which the tail does not hold: {reply:?}"
    );
}
