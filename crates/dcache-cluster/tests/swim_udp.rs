//! Detectors over real UDP on loopback: they find each other from the member list, and report
//! a crashed or departed member down.

use std::net::SocketAddr;
use std::time::Duration;

use dcache_cluster::NodeId;
use dcache_cluster::swim::{Detector, DetectorConfig, MemberEvent};
use tokio::sync::mpsc::Receiver;

const NODE_TIMEOUT: Duration = Duration::from_secs(1);
/// Generous, for a loaded machine: the bound is what a failure looks like, not a timing check.
const PATIENCE: Duration = Duration::from_secs(20);

fn node_id(index: usize) -> NodeId {
    format!("{:040x}", 0xdc00 + index)
}

async fn cluster(count: usize) -> Vec<(Detector, Receiver<MemberEvent>)> {
    let mut nodes = Vec::new();
    for index in 0..count {
        let config = DetectorConfig::new(node_id(index), SocketAddr::from(([127, 0, 0, 1], 0)))
            .node_timeout(NODE_TIMEOUT);
        nodes.push(Detector::start(config).await.expect("bind loopback"));
    }
    let members: Vec<(NodeId, SocketAddr)> = nodes
        .iter()
        .enumerate()
        .map(|(index, (detector, _))| (node_id(index), detector.bus()))
        .collect();
    for (detector, _) in &nodes {
        detector.set_members(members.clone());
    }
    for (index, (_, events)) in nodes.iter_mut().enumerate() {
        for other in (0..count).filter(|&other| other != index) {
            expect(events, &MemberEvent::Up(node_id(other))).await;
        }
    }
    nodes
}

/// Waits for `wanted`, skipping other events, for at most `PATIENCE`.
async fn expect(events: &mut Receiver<MemberEvent>, wanted: &MemberEvent) {
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(event) = events.recv().await {
            if event == *wanted {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no {wanted:?} within {PATIENCE:?}");
}

#[tokio::test]
async fn a_crashed_detector_is_reported_down_by_the_others() {
    let mut nodes = cluster(3).await;
    // Dropped without leaving: to the others it just stops answering.
    drop(nodes.pop());
    for (_, events) in &mut nodes {
        expect(events, &MemberEvent::Down(node_id(2))).await;
    }
}

#[tokio::test]
async fn a_detector_that_shuts_down_is_reported_down_by_the_others() {
    let mut nodes = cluster(3).await;
    let (leaving, mut its_events) = nodes.pop().expect("three nodes");
    leaving.shutdown().await;
    // The task is gone: its channel closes.
    let closed = tokio::time::timeout(PATIENCE, async {
        while its_events.recv().await.is_some() {}
    });
    assert!(closed.await.is_ok(), "the event channel stayed open");
    for (_, events) in &mut nodes {
        expect(events, &MemberEvent::Down(node_id(2))).await;
    }
}

#[tokio::test]
async fn a_node_timeout_too_short_for_swim_or_a_wildcard_bus_is_refused() {
    let short = DetectorConfig::new(node_id(0), SocketAddr::from(([127, 0, 0, 1], 0)))
        .node_timeout(Duration::from_millis(5));
    let wildcard = DetectorConfig::new(node_id(0), SocketAddr::from(([0, 0, 0, 0], 0)));
    for config in [short, wildcard] {
        let error = Detector::start(config).await.err().expect("refused");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }
}
