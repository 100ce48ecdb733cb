//! In-process cluster members that agree through one in-memory topology (`LocalControl`).

use std::collections::BTreeMap;
use std::sync::Arc;

use dcache_cluster::{Change, Node, NodeState, Settings, Topology};
use dcache_server::cluster::{Control, LocalControl, random_node_id};
use dcache_server::{ClusterLink, NodeConfig, Server};

use super::{TestNode, run, test_config};

/// A node following `control`'s topology; not a member until it joins.
pub async fn member(control: &Arc<LocalControl>, config: NodeConfig) -> (TestNode, Node) {
    member_with(control.clone(), control.subscribe(), config).await
}

/// A node that proposes through `control` and follows `topology`.
pub async fn member_with(
    control: Arc<dyn Control>,
    topology: tokio::sync::watch::Receiver<Arc<Topology>>,
    config: NodeConfig,
) -> (TestNode, Node) {
    let me = random_node_id();
    let server = Server::builder(config)
        .cluster(ClusterLink {
            me: me.clone(),
            control,
            topology,
        })
        .bind()
        .await
        .unwrap();
    let addr = server.local_addr();
    let node = Node {
        id: me,
        host: "127.0.0.1".into(),
        port: addr.port(),
        bus_port: 0,
        state: NodeState::Online,
    };
    (run(server), node)
}

/// `n` nodes of one cluster, every slot at its owner (nothing to migrate: the nodes are empty).
pub async fn cluster(n: usize) -> (Arc<LocalControl>, Vec<TestNode>) {
    replicated(n, Settings::default(), test_config()).await
}

/// `n` nodes of one cluster with these replication settings, every slot with its copies, each
/// node configured by `config`.
pub async fn replicated(
    n: usize,
    settings: Settings,
    config: NodeConfig,
) -> (Arc<LocalControl>, Vec<TestNode>) {
    let control = LocalControl::new();
    let mut nodes = Vec::new();
    for i in 0..n {
        let (node, me) = member(&control, config.clone()).await;
        control.apply(&Change::Join(me)).unwrap();
        if i == 0 && settings != Settings::default() {
            control.apply(&Change::Set(settings)).unwrap();
        }
        settle(&control);
        nodes.push(node);
    }
    let epoch = control.subscribe().borrow().epoch;
    reach_epoch(&nodes, epoch).await;
    (control, nodes)
}

/// Waits until every node of `nodes` has taken a topology of at least `epoch`.
pub async fn reach_epoch<'a>(nodes: impl IntoIterator<Item = &'a TestNode>, epoch: u64) {
    for node in nodes {
        node.shared
            .cluster
            .as_ref()
            .expect("a cluster member")
            .wait_for_epoch(epoch)
            .await;
    }
}

/// Commits every planned move at once (the nodes hold no data yet).
pub fn settle(control: &LocalControl) {
    loop {
        let t = control.subscribe().borrow().clone();
        let mut by_dest: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for from in t.nodes.keys() {
            for (slot, to) in t.moving_from(from) {
                by_dest.entry(to).or_default().push(slot);
            }
        }
        let Some((to, slots)) = by_dest.into_iter().next() else {
            return;
        };
        control.apply(&Change::Moved { to, slots }).unwrap();
    }
}

pub fn enabled() -> NodeConfig {
    NodeConfig {
        cluster_enabled: dcache_server::YesNo(true),
        ..test_config()
    }
}
