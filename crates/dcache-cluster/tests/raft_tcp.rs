//! Topology agreement over the real TCP cluster bus on 127.0.0.1 (ports bound at :0).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use dcache_cluster::{Change, Cluster, ClusterConfig};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Real time this time: generous, and only reached if something is broken.
const PATIENCE: Duration = Duration::from_secs(30);

fn config(dir: &TempDir, n: u8) -> ClusterConfig {
    let mut config = ClusterConfig::new(dir.path().join(format!("node{n}")), "127.0.0.1", 0, 0);
    // Loopback answers in microseconds: short timeouts keep the test quick.
    config.heartbeat = Duration::from_millis(50);
    config.election_timeout = Duration::from_millis(300);
    config
}

#[tokio::test]
async fn three_nodes_join_over_tcp_and_agree() {
    let dir = TempDir::new().unwrap();
    tokio::time::timeout(PATIENCE, async {
        let first = Cluster::start(config(&dir, 1)).await.expect("bootstraps");
        let seed = SocketAddr::from(([127, 0, 0, 1], first.node().bus_port));
        assert_ne!(seed.port(), 0, "the bound port is published");
        let (second, third) = tokio::join!(
            Cluster::start(config(&dir, 2).join(seed)),
            Cluster::start(config(&dir, 3).join(seed)),
        );
        let nodes = [first, second.expect("joins"), third.expect("joins")];

        assert_eq!(nodes[0].leader().as_deref(), Some(nodes[0].id()));

        // A change proposed on a follower is forwarded to the leader over the bus.
        let follower = nodes.iter().find(|n| !n.is_leader()).expect("a follower");
        let committed = follower.propose(Change::Rebalance).await.expect("commits");
        let ids: BTreeSet<&str> = nodes.iter().map(Cluster::id).collect();
        assert_eq!(
            committed
                .nodes
                .keys()
                .map(String::as_str)
                .collect::<BTreeSet<_>>(),
            ids
        );

        for node in &nodes {
            let mut topology = node.topology();
            topology
                .wait_for(|t| t.epoch >= committed.epoch)
                .await
                .expect("applies");
            assert_eq!(**topology.borrow(), *committed);
        }
        let expected: BTreeSet<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        while nodes[0].voters() != expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for node in &nodes {
            node.shutdown().await;
        }
    })
    .await
    .expect("the cluster formed in time");
}

#[tokio::test]
async fn the_bus_drops_a_connection_that_sends_garbage_and_keeps_serving() {
    let dir = TempDir::new().unwrap();
    tokio::time::timeout(PATIENCE, async {
        let node = Cluster::start(config(&dir, 1)).await.expect("bootstraps");
        let bus = SocketAddr::from(([127, 0, 0, 1], node.node().bus_port));
        for garbage in [&b"\xff\xff\xff\xffmore"[..], b"\0\0\0\x05hello"] {
            let mut stream = TcpStream::connect(bus).await.unwrap();
            stream.write_all(garbage).await.unwrap();
            let mut rest = Vec::new();
            // The node closes the connection without a reply.
            let read = stream.read_to_end(&mut rest).await;
            assert!(read.is_err() || rest.is_empty(), "{rest:?}");
        }
        // And still takes a joiner.
        let second = Cluster::start(config(&dir, 2).join(bus))
            .await
            .expect("joins");
        let mut topology = node.topology();
        topology
            .wait_for(|t| t.nodes.contains_key(second.id()))
            .await
            .expect("applies the join");
        second.shutdown().await;
        node.shutdown().await;
    })
    .await
    .expect("in time");
}
