//! Cluster mode against dcache's own cluster: in-process nodes that agree through one in-memory
//! topology (`LocalControl`), as the server's cluster tests run them. The client learns the slot
//! map from a seed, and when a node joins and slots move, it follows the nodes' `-MOVED`.

use std::collections::BTreeMap;
use std::sync::Arc;

use dcache_client::{Client, Frame};
use dcache_cluster::{Change, Node, NodeState};
use dcache_server::cluster::{LocalControl, random_node_id};
use dcache_server::{ClusterLink, NodeConfig, Server, YesNo};
use tokio::sync::oneshot;

/// A node that runs until dropped.
struct RunningNode {
    addr: String,
    shared: Arc<dcache_server::Shared>,
    _stop: oneshot::Sender<()>,
}

/// A node following `control`'s topology; it joins the cluster.
async fn join(control: &Arc<LocalControl>) -> RunningNode {
    let me = random_node_id();
    let config = NodeConfig {
        port: 0,
        bind: "127.0.0.1".into(),
        shards: 4,
        cluster_enabled: YesNo(true),
        ..NodeConfig::default()
    };
    let server = Server::builder(config)
        .cluster(ClusterLink {
            me: me.clone(),
            control: control.clone(),
            topology: control.subscribe(),
        })
        .bind()
        .await
        .unwrap();
    let addr = server.local_addr();
    let shared = server.shared();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    control
        .apply(&Change::Join(Node {
            id: me,
            host: "127.0.0.1".into(),
            port: addr.port(),
            bus_port: 0,
            state: NodeState::Online,
        }))
        .unwrap();
    RunningNode {
        addr: addr.to_string(),
        shared,
        _stop: stop,
    }
}

/// Commits every planned move at once, and waits until every node follows the new epoch.
async fn settle(control: &LocalControl, nodes: &[RunningNode]) {
    loop {
        let t = control.subscribe().borrow().clone();
        let mut by_dest: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for from in t.nodes.keys() {
            for (slot, to) in t.moving_from(from) {
                by_dest.entry(to).or_default().push(slot);
            }
        }
        let Some((to, slots)) = by_dest.into_iter().next() else {
            break;
        };
        control.apply(&Change::Moved { to, slots }).unwrap();
    }
    let epoch = control.subscribe().borrow().epoch;
    for node in nodes {
        node.shared
            .cluster
            .as_ref()
            .unwrap()
            .wait_for_epoch(epoch)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_follows_a_dcache_cluster_as_a_node_joins() {
    let control = LocalControl::new();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(join(&control).await);
        settle(&control, &nodes).await;
    }
    let c = Client::builder()
        .nodes([nodes[0].addr.clone()])
        .cluster(true)
        .build()
        .await
        .unwrap();
    let mut serving = c.nodes();
    serving.sort();
    let mut want: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    want.sort();
    assert_eq!(serving, want);
    let keys: Vec<String> = (0..300).map(|i| format!("key:{i}")).collect();
    for k in &keys {
        c.set(k, "one").await.unwrap();
    }
    for k in &keys {
        let owner = c.node_for(k.as_bytes()).unwrap();
        assert_eq!(
            c.node_cmd(&owner, &["GET", k]).await.unwrap(),
            Frame::Bulk("one".into()),
            "{k} on {owner}"
        );
    }

    // A third node joins and takes its share of the slots; the client's map is now stale.
    nodes.push(join(&control).await);
    settle(&control, &nodes).await;
    let newcomer = nodes[2].addr.clone();
    let stale = keys
        .iter()
        .filter(|k| c.node_for(k.as_bytes()).as_deref() != Some(newcomer.as_str()))
        .count();
    assert_eq!(
        stale,
        keys.len(),
        "the client has not heard of the newcomer yet"
    );
    for k in &keys {
        c.set(k, "two").await.unwrap();
        assert_eq!(c.get(k).await.unwrap().as_deref(), Some(&b"two"[..]), "{k}");
    }
    // Redirects brought the new map: the newcomer serves keys, each where the nodes say.
    assert!(c.nodes().contains(&newcomer));
    let mut moved = 0;
    for k in &keys {
        let owner = c.node_for(k.as_bytes()).unwrap();
        moved += usize::from(owner == newcomer);
        assert_eq!(
            c.node_cmd(&owner, &["GET", k]).await.unwrap(),
            Frame::Bulk("two".into()),
            "{k} on {owner}"
        );
    }
    assert!(moved > 0, "some keys moved to the newcomer");
    let values = c.mget(&keys).await.unwrap();
    assert!(values.iter().all(|v| v.as_deref() == Some(&b"two"[..])));
    assert_eq!(c.exists(&keys).await.unwrap(), keys.len() as u64);
}
