//! The Redis Cluster protocol of a node: CLUSTER's replies, redirects, CROSSSLOT and
//! CLUSTERDOWN, checked with nodes that agree through one in-memory topology (`LocalControl`),
//! and the `redis` crate's cluster client driving three of them.

mod common;

use std::sync::Arc;

use common::members::{cluster, enabled, member, member_with};
use common::{TestNode, error_text, query, run, test_config};
use dcache_cluster::{Change, Node, NodeState, Topology};
use dcache_placement::SLOTS;
use dcache_server::cluster::{BoxFuture, Cluster, Control, LocalControl, Route, random_node_id};
use dcache_server::{ClusterLink, NodeConfig, Server};
use redis::Value;

#[tokio::test]
async fn a_node_alone_is_a_cluster_serving_every_slot() {
    let node = common::start(enabled()).await;
    let mut con = node.client().await;
    let info: String = query(&mut con, &["CLUSTER", "INFO"]).await;
    assert!(info.contains("cluster_state:ok\r\n"), "{info}");
    assert!(info.contains("cluster_slots_assigned:16384\r\n"), "{info}");
    assert!(info.contains("cluster_known_nodes:1\r\n"), "{info}");
    let id: String = query(&mut con, &["CLUSTER", "MYID"]).await;
    assert_eq!(id.len(), 40);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let shard: String = query(&mut con, &["CLUSTER", "MYSHARDID"]).await;
    assert_eq!(shard, id);

    let slots: Value = common::cmd(&mut con, &["CLUSTER", "SLOTS"]).await.unwrap();
    let expected = Value::Array(vec![Value::Array(vec![
        Value::Int(0),
        Value::Int(16383),
        Value::Array(vec![
            Value::BulkString(b"127.0.0.1".to_vec()),
            Value::Int(i64::from(node.addr.port())),
            Value::BulkString(id.clone().into_bytes()),
            Value::Array(vec![]),
        ]),
    ])]);
    assert_eq!(slots, expected);

    let nodes: String = query(&mut con, &["CLUSTER", "NODES"]).await;
    let line = nodes.lines().next().unwrap();
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[0], id);
    assert_eq!(
        fields[1],
        format!(
            "127.0.0.1:{}@{}",
            node.addr.port(),
            node.addr.port() + 10000
        )
    );
    assert_eq!(fields[2], "myself,master");
    assert_eq!(fields[3], "-");
    assert_eq!(fields[7], "connected");
    assert_eq!(fields[8], "0-16383");

    let info: String = query(&mut con, &["INFO", "cluster"]).await;
    assert!(info.contains("cluster_enabled:1\r\n"), "{info}");

    // Keys of one slot go together; keys of two slots do not, as in Redis Cluster.
    let _: () = query(&mut con, &["MSET", "{u1}a", "1", "{u1}b", "2"]).await;
    assert_eq!(
        error_text(&mut con, &["MSET", "a", "1", "b", "2"]).await,
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    assert_eq!(
        error_text(&mut con, &["MGET", "a", "b"]).await,
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    let count: i64 = query(
        &mut con,
        &[
            "CLUSTER",
            "COUNTKEYSINSLOT",
            &dcache_placement::slot(b"u1").to_string(),
        ],
    )
    .await;
    assert_eq!(count, 2);
    let mut keys: Vec<String> = query(
        &mut con,
        &[
            "CLUSTER",
            "GETKEYSINSLOT",
            &dcache_placement::slot(b"u1").to_string(),
            "10",
        ],
    )
    .await;
    keys.sort();
    assert_eq!(keys, ["{u1}a", "{u1}b"]);
    assert_eq!(
        error_text(&mut con, &["CLUSTER", "COUNTKEYSINSLOT", "16384"]).await,
        "ERR Invalid slot"
    );
    assert_eq!(
        error_text(&mut con, &["CLUSTER", "GETKEYSINSLOT", "1", "-1"]).await,
        "ERR Invalid slot or number of keys"
    );
    // A slot or count that is not an integer gets Redis's integer error, not the range one.
    for args in [
        &["CLUSTER", "COUNTKEYSINSLOT", "abc"][..],
        &["CLUSTER", "COUNTKEYSINSLOT", "99999999999999999999"],
        &["CLUSTER", "GETKEYSINSLOT", "abc", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "abc"],
    ] {
        assert_eq!(
            error_text(&mut con, args).await,
            "ERR value is not an integer or out of range",
            "{args:?}"
        );
    }
    assert_eq!(
        error_text(&mut con, &["CLUSTER", "COUNTKEYSINSLOT", "-1"]).await,
        "ERR Invalid slot"
    );
    assert_eq!(
        error_text(&mut con, &["CLUSTER", "FORGET", &id]).await,
        "ERR I tried hard but I can't forget myself..."
    );
    let ok: String = query(&mut con, &["READONLY"]).await;
    assert_eq!(ok, "OK");
    // Alone, it has no one to hand its slots to.
    assert_eq!(
        error_text(&mut con, &["CLUSTER", "LEAVE"]).await,
        "ERR No other node is online to take this node's slots"
    );
    // Migration records are for slots on their way here, never for slots served here (they
    // would bypass routing).
    let effect = dcache_store::Effect {
        key: b"imported".to_vec().into_boxed_slice(),
        version: dcache_store::Version(u64::from(u32::MAX) << 20),
        change: dcache_store::Change::Put {
            value: dcache_store::OwnedValue::Str(b"v".to_vec().into_boxed_slice()),
            expire_at: None,
        },
    };
    let mut body = Vec::new();
    effect.encode(&mut body);
    let err = redis::cmd("CLUSTER")
        .arg("IMPORT")
        .arg(body)
        .query_async::<redis::Value>(&mut con)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is served here"), "{err}");
    let exists: i64 = query(&mut con, &["EXISTS", "imported"]).await;
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn with_the_cluster_off_cluster_commands_say_so() {
    let node = common::start(test_config()).await;
    let mut con = node.client().await;
    for sub in ["INFO", "SLOTS", "SHARDS", "NODES", "MYID"] {
        assert_eq!(
            error_text(&mut con, &["CLUSTER", sub]).await,
            "ERR This instance has cluster support disabled"
        );
    }
    assert_eq!(
        error_text(&mut con, &["READONLY"]).await,
        "ERR This instance has cluster support disabled"
    );
    let slot: i64 = query(&mut con, &["CLUSTER", "KEYSLOT", "foo"]).await;
    assert_eq!(slot, 12182);
    let info: String = query(&mut con, &["INFO", "cluster"]).await;
    assert!(info.contains("cluster_enabled:0\r\n"), "{info}");
    // And multi-key commands span slots freely.
    let _: () = query(&mut con, &["MSET", "a", "1", "b", "2"]).await;
}

#[tokio::test]
async fn keys_of_other_nodes_are_redirected_to_their_owner() {
    let (control, nodes) = cluster(3).await;
    let t = control.subscribe().borrow().clone();
    assert!(t.all_served());
    let counts = t.slot_counts();
    for share in counts.values() {
        assert!((SLOTS / 3..=SLOTS / 3 + 1).contains(share), "{counts:?}");
    }
    // Every node tells the same story.
    let mut tables = Vec::new();
    for node in &nodes {
        let mut con = node.client().await;
        let slots: Value = common::cmd(&mut con, &["CLUSTER", "SLOTS"]).await.unwrap();
        tables.push(slots);
        let info: String = query(&mut con, &["CLUSTER", "INFO"]).await;
        assert!(info.contains("cluster_known_nodes:3\r\n"), "{info}");
        assert!(info.contains("cluster_state:ok\r\n"), "{info}");
    }
    assert!(tables.windows(2).all(|w| w[0] == w[1]));

    let key = "somekey";
    let slot = dcache_placement::slot(key.as_bytes());
    let owner = t.owner(slot).unwrap();
    let owner_node = nodes.iter().find(|n| n.addr.port() == owner.port).unwrap();
    for node in &nodes {
        let mut con = node.client().await;
        if node.addr.port() == owner.port {
            let _: () = query(&mut con, &["SET", key, "v"]).await;
        } else {
            assert_eq!(
                error_text(&mut con, &["GET", key]).await,
                format!("MOVED {slot} 127.0.0.1:{}", owner.port)
            );
            // Keyless commands run anywhere.
            let pong: String = query(&mut con, &["PING"]).await;
            assert_eq!(pong, "PONG");
        }
    }
    let mut con = owner_node.client().await;
    let v: String = query(&mut con, &["GET", key]).await;
    assert_eq!(v, "v");

    // CLUSTER NODES lists the three, each with its slots, `myself` on the one asked.
    let text: String = query(&mut con, &["CLUSTER", "NODES"]).await;
    assert_eq!(text.lines().count(), 3);
    assert_eq!(
        text.lines().filter(|l| l.contains("myself")).count(),
        1,
        "{text}"
    );
    let shards: Value = common::cmd(&mut con, &["CLUSTER", "SHARDS"]).await.unwrap();
    let Value::Array(shards) = shards else {
        panic!("{shards:?}")
    };
    assert_eq!(shards.len(), 3);
}

#[tokio::test]
async fn the_redis_crates_cluster_client_reads_back_what_it_wrote() {
    let (_control, nodes) = cluster(3).await;
    let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
    let mut con = client.get_async_connection().await.unwrap();
    for i in 0..300 {
        let () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    for i in 0..300 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(v, i);
    }
    // The keys are spread: every node holds some, and only its own.
    let mut total = 0;
    for node in &nodes {
        let held = node.shared.store.len();
        assert!(held > 0);
        total += held;
    }
    assert_eq!(total, 300);
}

#[tokio::test]
async fn a_node_without_a_topology_serves_no_slot() {
    let control = LocalControl::new();
    let server = Server::builder(test_config())
        .cluster(ClusterLink {
            me: random_node_id(),
            control: control.clone(),
            topology: control.subscribe(),
        })
        .bind()
        .await
        .unwrap();
    let node = run(server);
    let mut con = node.client().await;
    assert_eq!(
        error_text(&mut con, &["GET", "k"]).await,
        "CLUSTERDOWN Hash slot not served"
    );
    let info: String = query(&mut con, &["CLUSTER", "INFO"]).await;
    assert!(info.contains("cluster_state:fail\r\n"), "{info}");
}

#[tokio::test]
async fn writes_to_a_paused_slot_are_asked_to_try_again() {
    let node = common::start(enabled()).await;
    let cluster = node.shared.cluster.clone().unwrap();
    let slot = dcache_placement::slot(b"k");
    cluster.watch(&[slot]).await;
    let mut con = node.client().await;
    let _: () = query(&mut con, &["SET", "k", "1"]).await;
    assert!(cluster.take_dirty().contains(b"k".as_slice()));
    cluster.pause(&[slot]).await;
    let err = error_text(&mut con, &["SET", "k", "2"]).await;
    assert!(err.starts_with("TRYAGAIN "), "{err}");
    // Reads go on, and other slots are not touched.
    let v: String = query(&mut con, &["GET", "k"]).await;
    assert_eq!(v, "1");
    let _: () = query(&mut con, &["SET", "other", "1"]).await;
    cluster.settle(&[slot]);
    let _: () = query(&mut con, &["SET", "k", "3"]).await;
    assert!(cluster.take_dirty().is_empty());
}

/// Waits until the topology has no slot left to move (bounded).
async fn until_settled(control: &LocalControl) -> Arc<dcache_cluster::Topology> {
    let mut rx = control.subscribe();
    let settled = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        rx.wait_for(|t| t.target.is_none()),
    )
    .await
    .expect("the migration ends within a minute")
    .unwrap();
    Arc::clone(&settled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_moves_the_newcomers_slots_with_their_keys_while_a_writer_runs() {
    let control = LocalControl::new();
    let (a, a_node) = member(&control, test_config()).await;
    control.apply(&Change::Join(a_node.clone())).unwrap();
    a.shared.cluster.as_ref().unwrap().wait_for_epoch(1).await;
    let mut con = a.client().await;
    // Strings, a hash big enough to go in parts, keys with a TTL.
    const KEYS: usize = 20_000;
    let mut pipe = redis::pipe();
    for i in 0..KEYS {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    let () = pipe.query_async(&mut con).await.unwrap();
    let mut pipe = redis::pipe();
    for f in 0..5_000 {
        pipe.cmd("HSET")
            .arg("big")
            .arg(format!("f{f}"))
            .arg("x".repeat(100))
            .ignore();
    }
    let () = pipe.query_async(&mut con).await.unwrap();
    let _: () = query(&mut con, &["SET", "ttl-key", "v", "EX", "1000"]).await;

    // A writer through the cluster client, before, during and after the move.
    let client = redis::cluster::ClusterClient::new(vec![a.url()]).unwrap();
    let mut writer = client.get_async_connection().await.unwrap();
    let (b, b_node) = member(&control, test_config()).await;
    let before = control.subscribe().borrow().slots.clone().unwrap();
    let writes = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..3_000u32 {
            let key = format!("w{}", i % 500);
            let r: redis::RedisResult<()> = redis::cmd("SET")
                .arg(&key)
                .arg(i)
                .query_async(&mut writer)
                .await;
            if r.is_ok() {
                acked.push((key, i));
            }
        }
        acked
    });
    control.apply(&Change::Join(b_node.clone())).unwrap();
    let settled = until_settled(&control).await;
    let acked = writes.await.unwrap();
    assert!(!acked.is_empty());

    // Exactly the newcomer's quota moved, and only to it.
    let after = settled.slots.clone().unwrap();
    let moved: Vec<u16> = (0..SLOTS as u16)
        .filter(|&s| !before.same_set(&after, s))
        .collect();
    assert_eq!(moved.len(), SLOTS / 2);
    assert!(moved.iter().all(|&s| after.primary(s).id == b_node.id));

    // Both nodes have taken the last topology, then every key reads back through the cluster.
    for node in [&a, &b] {
        node.shared
            .cluster
            .as_ref()
            .unwrap()
            .wait_for_epoch(settled.epoch)
            .await;
    }
    let mut reader = client.get_async_connection().await.unwrap();
    for i in 0..KEYS {
        let v: Option<usize> = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query_async(&mut reader)
            .await
            .unwrap();
        assert_eq!(v, Some(i), "k{i}");
    }
    let fields: i64 = redis::cmd("HLEN")
        .arg("big")
        .query_async(&mut reader)
        .await
        .unwrap();
    assert_eq!(fields, 5_000);
    let ttl: i64 = redis::cmd("TTL")
        .arg("ttl-key")
        .query_async(&mut reader)
        .await
        .unwrap();
    // The move keeps the absolute expiry (the test may take a while on a loaded machine).
    assert!((900..=1000).contains(&ttl), "{ttl}");
    // The last acknowledged write of every key is what it holds.
    let mut last = std::collections::HashMap::new();
    for (key, i) in acked {
        last.insert(key, i);
    }
    for (key, i) in last {
        let v: Option<u32> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut reader)
            .await
            .unwrap();
        assert_eq!(v, Some(i), "{key}");
    }
    // Each node holds only its own slots' keys: the source dropped what it handed off.
    let total = KEYS + 2 + 500;
    assert_eq!(a.shared.store.len() + b.shared.store.len(), total);
    for s in &moved {
        assert_eq!(a.shared.store.count_in_slot(*s), 0, "slot {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_hands_off_its_keys_and_stops() {
    let (control, nodes) = cluster(3).await;
    let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
    let mut con = client.get_async_connection().await.unwrap();
    for i in 0..3_000 {
        let () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let before = control.subscribe().borrow().clone();
    let leaver = &nodes[2];
    let leaver_id = before
        .nodes
        .values()
        .find(|n| n.port == leaver.addr.port())
        .unwrap()
        .id
        .clone();
    let held = leaver.shared.store.len();
    assert!(held > 0);
    let mut direct = leaver.client().await;
    let ok: String = query(&mut direct, &["CLUSTER", "LEAVE"]).await;
    assert_eq!(ok, "OK");
    // The node stops by itself once the others serve its slots.
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        leaver.shared.exit_requested(),
    )
    .await
    .expect("the leaver stops within a minute");
    let after = until_settled(&control).await;
    assert!(!after.nodes.contains_key(&leaver_id));
    assert!(after.all_served());
    // Only the leaver's slots moved.
    let (old, new) = (before.slots.clone().unwrap(), after.slots.clone().unwrap());
    for s in 0..SLOTS as u16 {
        assert_eq!(
            old.same_set(&new, s),
            old.primary(s).id != leaver_id,
            "slot {s}"
        );
    }
    for node in &nodes[..2] {
        node.shared
            .cluster
            .as_ref()
            .unwrap()
            .wait_for_epoch(after.epoch)
            .await;
    }
    let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
    let mut con = client.get_async_connection().await.unwrap();
    for i in 0..3_000 {
        let v: Option<i64> = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(v, Some(i), "k{i}");
    }
    assert_eq!(
        nodes[0].shared.store.len() + nodes[1].shared.store.len(),
        3_000
    );
}

#[tokio::test]
async fn a_failed_nodes_slots_are_served_empty_by_the_survivors() {
    let (control, nodes) = cluster(3).await;
    let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
    let mut con = client.get_async_connection().await.unwrap();
    for i in 0..1_000 {
        let () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let t = control.subscribe().borrow().clone();
    let dead = t
        .nodes
        .values()
        .find(|n| n.port == nodes[2].addr.port())
        .unwrap()
        .id
        .clone();
    let lost: Vec<usize> = (0..1_000)
        .filter(|i| {
            t.owner(dcache_placement::slot(format!("k{i}").as_bytes()))
                .unwrap()
                .id
                == dead
        })
        .collect();
    let t = control.apply(&Change::Fail(dead)).unwrap();
    for node in &nodes[..2] {
        node.shared
            .cluster
            .as_ref()
            .unwrap()
            .wait_for_epoch(t.epoch)
            .await;
    }
    // A new client learns the new table; the dead node's keys are misses, the others are there.
    let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
    let mut con = client.get_async_connection().await.unwrap();
    for i in 0..1_000 {
        let v: Option<i64> = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query_async(&mut con)
            .await
            .unwrap();
        if lost.contains(&i) {
            assert_eq!(v, None);
        } else {
            assert_eq!(v, Some(i as i64));
        }
    }
    // And writes to those slots succeed at once.
    let k = format!("k{}", lost[0]);
    let () = redis::cmd("SET")
        .arg(&k)
        .arg("again")
        .query_async(&mut con)
        .await
        .unwrap();
    let nodes_text: String = query(&mut nodes[0].client().await, &["CLUSTER", "NODES"]).await;
    assert!(nodes_text.contains("master,fail"), "{nodes_text}");
}

fn test_node(port: u16) -> Node {
    Node {
        id: random_node_id(),
        host: "127.0.0.1".into(),
        port,
        bus_port: 0,
        state: NodeState::Online,
    }
}

/// A key of `slot`.
fn key_in(slot: u16) -> String {
    (0..)
        .map(|i| format!("k{i}"))
        .find(|k| dcache_placement::slot(k.as_bytes()) == slot)
        .expect("every slot has keys")
}

/// A connection routes by the view it took when the command began. If the move of the slot
/// commits and the source settles the slot in between (the end of `move_batch`), the write must
/// not run on the source, whose copy is deleted next: that would be an acknowledged write lost.
#[tokio::test]
async fn a_write_routed_by_the_view_from_before_a_move_does_not_run_on_the_source() {
    let (a, b) = (test_node(1), test_node(2));
    let mut t = Topology::default();
    t.apply(&Change::Join(a.clone())).unwrap();
    t.apply(&Change::Join(b.clone())).unwrap();
    let cluster = Cluster::new(&a.id, None);
    cluster.set_topology(Arc::new(t.clone()));
    let (slot, _) = t.moving_from(&a.id)[0];
    let key = key_in(slot);
    let keys = || std::iter::once(key.as_bytes());
    let stale = cluster.view();

    // The end of a move, in move_batch's order: pause, commit, take the new topology, settle.
    cluster.watch(&[slot]).await;
    cluster.pause(&[slot]).await;
    t.apply(&Change::Moved {
        to: b.id.clone(),
        slots: vec![slot],
    })
    .unwrap();
    cluster.set_topology(Arc::new(t.clone()));
    cluster.settle(&[slot]);

    assert_eq!(
        cluster.route(&cluster.view(), keys(), true, false),
        Route::Refuse(format!("MOVED {slot} 127.0.0.1:2"))
    );
    match cluster.route(&stale, keys(), true, false) {
        Route::Here {
            slot: Some(s),
            watched: true,
        } => assert!(cluster.enter(s).is_err(), "the write runs on the source"),
        Route::Refuse(_) => {}
        other => panic!("the write runs on the source: {other:?}"),
    }

    // When the slot comes back, writes to it run as usual.
    t.apply(&Change::Leave(b.id.clone())).unwrap();
    let back: Vec<u16> = t.moving_from(&b.id).into_iter().map(|(s, _)| s).collect();
    assert!(back.contains(&slot));
    t.apply(&Change::Moved {
        to: a.id.clone(),
        slots: back,
    })
    .unwrap();
    cluster.set_topology(Arc::new(t));
    assert_eq!(
        cluster.route(&cluster.view(), keys(), true, false),
        Route::Here {
            slot: Some(slot),
            watched: false
        }
    );
}

/// A write that routed while its slot was settled and has not run yet (dispatch is between
/// `route` and the handler) when the migration starts watching the slot: it is not recorded as
/// dirty, so `watch` must not return (and the snapshot start) before it is done, or a write
/// landing after the snapshot read its key is acknowledged and then lost with the source's copy.
#[tokio::test]
async fn watching_a_slot_waits_for_the_writes_that_found_it_settled() {
    let a = test_node(1);
    let mut t = Topology::default();
    t.apply(&Change::Join(a.clone())).unwrap();
    let cluster = Cluster::new(&a.id, None);
    cluster.set_topology(Arc::new(t));
    let key = "k";
    let slot = dcache_placement::slot(key.as_bytes());
    let keys = || std::iter::once(key.as_bytes());

    // Dispatch: route, then count the write in.
    let view = cluster.view();
    assert_eq!(
        cluster.route(&view, keys(), true, false),
        Route::Here {
            slot: Some(slot),
            watched: false
        }
    );
    assert_eq!(cluster.enter(slot), Ok(false));

    let batch = [slot];
    let mut watch = std::pin::pin!(cluster.watch(&batch));
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(
        watch.as_mut().poll(&mut cx).is_pending(),
        "watch returned while an unrecorded write to the slot is still to run"
    );
    cluster.leave(slot, false, keys());
    watch.await;

    // From now on, writes to the slot are recorded.
    assert_eq!(cluster.enter(slot), Ok(true));
    cluster.leave(slot, true, keys());
    assert!(cluster.take_dirty().contains(key.as_bytes()));
}

/// Agreement for one story: the first move's destination dies right after the move commits.
/// Once the source has taken both topologies (it serves the moved slots again, empty), a client
/// writes a key of a moved slot there and is acknowledged. The next move waits forever, so that
/// the test can look at the source then.
#[derive(Debug)]
struct DiesAfterMove {
    inner: Arc<LocalControl>,
    source: std::sync::OnceLock<(Arc<dcache_server::Shared>, String)>,
    moves: std::sync::atomic::AtomicUsize,
    written: tokio::sync::mpsc::UnboundedSender<String>,
    next_move: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Control for DiesAfterMove {
    fn propose(
        &self,
        change: Change,
    ) -> BoxFuture<'_, Result<Arc<Topology>, dcache_server::cluster::ProposeError>> {
        Box::pin(async move {
            let Change::Moved { to, slots } = &change else {
                return Ok(self.inner.apply(&change)?);
            };
            if self.moves.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                let _ = self.next_move.send(());
                return std::future::pending().await;
            }
            let moved = self.inner.apply(&change)?;
            let (shared, url) = self.source.get().expect("the source is known");
            let cluster = shared.cluster.clone().unwrap();
            cluster.wait_for_epoch(moved.epoch).await;
            let failed = self.inner.apply(&Change::Fail(to.clone()))?;
            cluster.wait_for_epoch(failed.epoch).await;
            let key = key_in(slots[0]);
            let mut con = redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            let () = redis::cmd("SET")
                .arg(&key)
                .arg("after")
                .query_async(&mut con)
                .await
                .map_err(|e| e.to_string())?;
            let _ = self.written.send(key);
            Ok(moved)
        })
    }
}

/// The source of a move must not delete its copy of the moved slots once the move has committed
/// without looking: the destination may have died at once and the slots come back to it, and by
/// then it serves them (empty) and acknowledges writes to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_slots_taken_back_from_a_destination_that_died_after_the_move_is_kept() {
    let inner = LocalControl::new();
    let (written, mut written_rx) = tokio::sync::mpsc::unbounded_channel();
    let (next_move, mut next_move_rx) = tokio::sync::mpsc::unbounded_channel();
    let control = Arc::new(DiesAfterMove {
        inner: inner.clone(),
        source: std::sync::OnceLock::new(),
        moves: std::sync::atomic::AtomicUsize::new(0),
        written,
        next_move,
    });
    let (a, a_node) = member_with(control.clone(), inner.subscribe(), test_config()).await;
    control.source.set((a.shared.clone(), a.url())).unwrap();
    inner.apply(&Change::Join(a_node)).unwrap();
    let (_b, b_node) = member_with(control.clone(), inner.subscribe(), test_config()).await;
    inner.apply(&Change::Join(b_node)).unwrap();
    let within = std::time::Duration::from_secs(60);
    let key = tokio::time::timeout(within, written_rx.recv())
        .await
        .expect("the first move commits within a minute")
        .unwrap();
    // A third node joins; the source's next move begins only once it is done with the first.
    let (_c, c_node) = member_with(control.clone(), inner.subscribe(), test_config()).await;
    inner.apply(&Change::Join(c_node)).unwrap();
    tokio::time::timeout(within, next_move_rx.recv())
        .await
        .expect("the next move begins within a minute")
        .unwrap();
    let v: Option<String> = query(&mut a.client().await, &["GET", &key]).await;
    assert_eq!(v.as_deref(), Some("after"), "{key}");
}

/// A destination may hold records of a slot from an earlier attempt to move it that failed (the
/// destination refused a record for memory, the connection broke, the commit was refused), and
/// the slot is then moved again. A key deleted on the source in between is in neither the new
/// snapshot nor its dirty keys: the move must not bring back the old copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_does_not_bring_back_what_an_earlier_attempt_copied() {
    let control = LocalControl::new();
    let (a, a_node) = member(&control, test_config()).await;
    control.apply(&Change::Join(a_node)).unwrap();
    let (b, b_node) = member(&control, test_config()).await;
    for node in [&a, &b] {
        node.shared
            .cluster
            .as_ref()
            .unwrap()
            .wait_for_epoch(1)
            .await;
    }
    // Keys of the slots that B will take, as an earlier attempt copied them to B.
    let t = control.subscribe().borrow().clone();
    let mut probe = Topology::clone(&t);
    probe.apply(&Change::Join(b_node.clone())).unwrap();
    let slots: Vec<u16> = probe
        .moving_from(&t.nodes.keys().next().unwrap().clone())
        .into_iter()
        .map(|(s, _)| s)
        .take(3)
        .collect();
    let keys: Vec<String> = slots.iter().map(|&s| key_in(s)).collect();
    let mut con = a.client().await;
    let mut body = Vec::new();
    for key in &keys {
        let _: () = query(&mut con, &["SET", key, "old"]).await;
        a.shared
            .store
            .effect_of(key.as_bytes(), a.shared.clock.now_ms())
            .encode(&mut body);
    }
    let applied: i64 = redis::cmd("CLUSTER")
        .arg("IMPORT")
        .arg(body)
        .query_async(&mut b.client().await)
        .await
        .unwrap();
    assert_eq!(applied, keys.len() as i64);
    // Deleted on the source, then the move that succeeds.
    for key in &keys {
        let _: () = query(&mut con, &["DEL", key]).await;
    }
    control.apply(&Change::Join(b_node)).unwrap();
    let settled = until_settled(&control).await;
    for node in [&a, &b] {
        node.shared
            .cluster
            .as_ref()
            .unwrap()
            .wait_for_epoch(settled.epoch)
            .await;
    }
    let client = redis::cluster::ClusterClient::new(vec![a.url()]).unwrap();
    let mut reader = client.get_async_connection().await.unwrap();
    for key in &keys {
        let v: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut reader)
            .await
            .unwrap();
        assert_eq!(v, None, "{key} came back");
    }
}

/// The dirty keys are one set for the node: a batch whose move failed leaves its own in it (and
/// a write may record its key just after the batch was abandoned). The next batch must send
/// only the keys of its own slots, not copies of keys of slots the destination is not taking,
/// which would stay there unseen (and come back if that slot ever moved there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_sends_only_the_dirty_keys_of_its_own_slots() {
    let control = LocalControl::new();
    let (a, a_node) = member(&control, test_config()).await;
    control.apply(&Change::Join(a_node.clone())).unwrap();
    let (b, b_node) = member(&control, test_config()).await;
    let cluster = a.shared.cluster.clone().unwrap();
    cluster.wait_for_epoch(1).await;
    // A slot that stays on A when B joins.
    let mut probe = Topology::clone(&control.subscribe().borrow());
    probe.apply(&Change::Join(b_node.clone())).unwrap();
    let stays = (0..SLOTS as u16)
        .find(|&s| probe.target.as_ref().unwrap().primary(s).id == a_node.id)
        .unwrap();
    let key = key_in(stays);
    // What an abandoned batch leaves behind.
    cluster.watch(&[stays]).await;
    let _: () = query(&mut a.client().await, &["SET", &key, "v"]).await;
    cluster.settle(&[stays]);

    control.apply(&Change::Join(b_node)).unwrap();
    until_settled(&control).await;
    assert_eq!(b.shared.store.count_in_slot(stays), 0);
    assert_eq!(b.shared.store.len(), 0);
}

/// A node that joins a one-node cluster holding `keys` keys, with the move throttled so that it
/// is still under way when the test breaks something. Returns the control, the source, the
/// destination (and its topology entry) once the first batch has moved.
async fn slow_join(keys: usize) -> (Arc<LocalControl>, TestNode, TestNode, Node) {
    let control = LocalControl::new();
    let throttled = NodeConfig {
        migration_rate: dcache_server::ByteSize(256 * 1024),
        ..test_config()
    };
    let (a, a_node) = member(&control, throttled).await;
    control.apply(&Change::Join(a_node)).unwrap();
    a.shared.cluster.as_ref().unwrap().wait_for_epoch(1).await;
    let mut con = a.client().await;
    let mut pipe = redis::pipe();
    for i in 0..keys {
        pipe.cmd("SET")
            .arg(format!("k{i}"))
            .arg("x".repeat(100))
            .ignore();
    }
    let () = pipe.query_async(&mut con).await.unwrap();
    let (b, b_node) = member(&control, test_config()).await;
    let joined = control.apply(&Change::Join(b_node.clone())).unwrap().epoch;
    // Wait for the first committed batch: the move is under way.
    let mut rx = control.subscribe();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        rx.wait_for(|t| t.epoch > joined),
    )
    .await
    .expect("a first batch moves within a minute")
    .unwrap();
    (control, a, b, b_node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_killed_during_a_move_leaves_the_source_serving_everything_else() {
    let (control, a, b, b_node) = slow_join(20_000).await;
    let during = control.subscribe().borrow().clone();
    assert!(during.target.is_some(), "the move is still under way");
    b.stop().await.unwrap();
    // What had moved is what the topology said when the failure was declared: batches may
    // commit while the destination stops, after `during` was read.
    let (during, t) = control
        .apply_with_previous(&Change::Fail(b_node.id.clone()))
        .unwrap();
    a.shared
        .cluster
        .as_ref()
        .unwrap()
        .wait_for_epoch(t.epoch)
        .await;
    // One topology, every slot served by the survivor, nothing left to move.
    assert!(t.all_served());
    assert!(t.target.is_none());
    assert_eq!(t.slot_counts()[&t.owner(0).unwrap().id], SLOTS);
    // The keys of slots that had not moved are all there; those that had are misses.
    let moved = |key: &str| {
        during
            .owner(dcache_placement::slot(key.as_bytes()))
            .unwrap()
            .id
            == b_node.id
    };
    let mut con = a.client().await;
    let mut kept = 0;
    for i in 0..20_000 {
        let key = format!("k{i}");
        let v: Option<String> = query(&mut con, &["GET", &key]).await;
        if moved(&key) {
            assert_eq!(
                v, None,
                "{key} was handed off, then lost with its new owner"
            );
        } else {
            assert!(v.is_some(), "{key}");
            kept += 1;
        }
    }
    assert!(kept > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_killed_during_a_move_leaves_the_destination_with_only_what_it_was_given() {
    let (control, a, b, _) = slow_join(20_000).await;
    let during = control.subscribe().borrow().clone();
    assert!(during.target.is_some(), "the move is still under way");
    let a_id = during
        .nodes
        .values()
        .find(|n| n.port == a.addr.port())
        .unwrap()
        .id
        .clone();
    a.stop().await.unwrap();
    let (during, t) = control.apply_with_previous(&Change::Fail(a_id)).unwrap();
    b.shared
        .cluster
        .as_ref()
        .unwrap()
        .wait_for_epoch(t.epoch)
        .await;
    assert!(t.all_served());
    assert!(t.target.is_none());
    // The destination serves every slot: the keys of the batches committed to it, and nothing
    // of the batch in flight (a partial copy, dropped rather than served stale).
    let mine_before = |slot: u16| during.owner(slot).unwrap().port == b.addr.port();
    let mut con = b.client().await;
    let mut kept = 0;
    for i in 0..20_000 {
        let key = format!("k{i}");
        let v: Option<String> = query(&mut con, &["GET", &key]).await;
        if mine_before(dcache_placement::slot(key.as_bytes())) {
            assert!(v.is_some(), "{key} was committed to the destination");
            kept += 1;
        } else {
            assert_eq!(v, None, "{key}: never committed here");
        }
    }
    assert!(kept > 0);
}
