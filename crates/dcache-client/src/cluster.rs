//! Cluster mode: the client side of the Redis Cluster protocol.
//!
//! The client keeps a slot map (`slots.rs`) fetched with `CLUSTER SLOTS` from any node it
//! knows (the seeds first). A request goes to its slot's node; the answer may redirect it:
//!
//! ```text
//!   -MOVED slot node   the slot has a new owner: correct that slot, refresh the whole map
//!                      before the next request, send again there
//!   -ASK slot node     the slot is moving and the key is already there: send ASKING + the
//!                      request there, once; the map is not changed
//!   -TRYAGAIN          keys split by a migration in progress: wait, retry
//!   -CLUSTERDOWN       no one serves the slot now: wait, refresh, retry
//! ```
//!
//! Every loop is bounded: redirects by count, waits by count and by the request timeout. A node
//! that cannot be reached makes the client refresh the map and retry once, and only if the map
//! now names another node (the same node would fail again, and a write may have reached it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dcache_protocol::Frame;
use dcache_protocol::reply::encode_command;
use tokio::task::JoinSet;

use crate::Error;
use crate::client::{Client, Group, GroupKey, Routing, check};
use crate::slots::{Redirect, SlotMap, redirect};

/// Redirects (`-MOVED`, `-ASK`) followed for one request before giving up: a map that keeps
/// pointing elsewhere is a cluster in flux, and the caller hears of it.
const MAX_REDIRECTS: usize = 16;
/// Waits after `-TRYAGAIN` or `-CLUSTERDOWN` before giving up, each twice the last from
/// [`FIRST_BACKOFF`] up to [`MAX_BACKOFF`], and never past the request timeout.
const MAX_RETRIES: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

pub(crate) struct ClusterState {
    pub(crate) seeds: Vec<String>,
    pub(crate) map: RwLock<SlotMap>,
    /// A `-MOVED` showed the map is out of date: the next request refreshes it first. (The
    /// slot that moved is corrected at once; the others that moved with it are found so.)
    pub(crate) stale: AtomicBool,
    /// One refresh at a time; `refreshes` tells a request that waited whether one just ended.
    pub(crate) refreshing: tokio::sync::Mutex<()>,
    pub(crate) refreshes: AtomicU64,
}

impl ClusterState {
    pub(crate) fn node(&self, slot: u16) -> Option<Arc<str>> {
        self.map.read().expect("not poisoned").node(slot).cloned()
    }

    /// A node for a keyless command: the first that serves slots, or a seed.
    pub(crate) fn any(&self) -> Option<Arc<str>> {
        self.map
            .read()
            .expect("not poisoned")
            .primaries()
            .into_iter()
            .next()
            .or_else(|| self.seeds.first().cloned())
            .map(Arc::from)
    }

    fn moved(&self, slot: u16, node: &str) {
        self.map.write().expect("not poisoned").set(slot, node);
        self.stale.store(true, Ordering::Relaxed);
    }
}

impl Client {
    /// Runs one request per slot group (`requests[i]` for `groups[i]`), each node's share in
    /// one pipelined write, nodes in parallel; a request that gets a redirect or whose node
    /// fails is run again alone, following redirects. Replies in the groups' order.
    pub(crate) async fn run_slot_groups(
        &self,
        cluster: &ClusterState,
        groups: &[Group<'_>],
        requests: Vec<Vec<Vec<u8>>>,
    ) -> Result<Vec<Frame>, Error> {
        self.refresh_if_stale().await;
        // Each node's groups in one pipelined write.
        let mut by_node: HashMap<String, Vec<usize>> = HashMap::new();
        let mut replies: Vec<Option<Frame>> = vec![None; groups.len()];
        for (i, g) in groups.iter().enumerate() {
            let GroupKey::Slot(s) = g.at else {
                unreachable!("cluster groups are by slot")
            };
            if let Some(node) = cluster.node(s) {
                by_node.entry(node.to_string()).or_default().push(i);
            }
        }
        let mut tasks = JoinSet::new();
        for (node, members) in by_node {
            let conn = self.connection(&node)?;
            let mut bytes = Vec::new();
            for &i in &members {
                encode_command(requests[i].iter(), &mut bytes);
            }
            tasks.spawn(async move {
                let frames = conn.send(bytes, members.len()).await;
                (members, frames)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (members, frames) = done.expect("request tasks do not panic");
            // A node that failed leaves its groups to the one-by-one path below.
            if let Ok(frames) = frames {
                for (i, frame) in members.into_iter().zip(frames) {
                    let redirected =
                        matches!(&frame, Frame::Error(msg) if redirect(msg, "").is_some());
                    if !redirected {
                        replies[i] = Some(frame);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(groups.len());
        for (i, reply) in replies.into_iter().enumerate() {
            let frame = match reply {
                Some(frame) => check(frame)?,
                None => {
                    let GroupKey::Slot(s) = groups[i].at else {
                        unreachable!("cluster groups are by slot")
                    };
                    self.cluster_request(Some(s), &requests[i]).await?
                }
            };
            out.push(frame);
        }
        Ok(out)
    }

    /// Refreshes the slot map if a redirect showed it out of date.
    pub(crate) async fn refresh_if_stale(&self) {
        if let Routing::Cluster(cluster) = &self.routing
            && cluster.stale.load(Ordering::Relaxed)
        {
            // A failed refresh leaves the map as it was: requests still follow redirects.
            let _ = self.refresh().await;
        }
    }

    /// Fetches the slot map with `CLUSTER SLOTS` from the first node that answers: the nodes
    /// of the current map, then the seeds. Concurrent callers share one refresh.
    ///
    /// # Errors
    /// No node answered with a slot map: the last failure.
    pub async fn refresh(&self) -> Result<(), Error> {
        let Routing::Cluster(cluster) = &self.routing else {
            return Ok(());
        };
        let seen = cluster.refreshes.load(Ordering::Acquire);
        let _one = cluster.refreshing.lock().await;
        if cluster.refreshes.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        cluster.stale.store(false, Ordering::Relaxed);
        let mut candidates: Vec<String> = cluster
            .map
            .read()
            .expect("not poisoned")
            .nodes()
            .map(str::to_owned)
            .collect();
        for seed in &cluster.seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let mut last = Error::Invalid("no nodes to ask for the slot map".into());
        for node in candidates {
            let map = match self.node_cmd(&node, &["CLUSTER", "SLOTS"]).await {
                Ok(reply) => {
                    SlotMap::parse(&reply, &node).map_err(|reason| Error::UnexpectedReply {
                        node: node.clone(),
                        reply: reason,
                    })
                }
                Err(e) => Err(e),
            };
            match map {
                Ok(map) => {
                    *cluster.map.write().expect("not poisoned") = map;
                    cluster.refreshes.fetch_add(1, Ordering::Release);
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Runs one command in cluster mode on the node of `slot` (any node for `None`), following
    /// redirects: `-MOVED` corrects the map and marks it stale, `-ASK` asks the other node once
    /// after `ASKING`, `-TRYAGAIN` and `-CLUSTERDOWN` wait and retry (bounded in count and by
    /// the request timeout). A node that cannot be reached makes the client refresh its map
    /// and retry once, if the slot has moved to another node.
    pub(crate) async fn cluster_request<A: AsRef<[u8]>>(
        &self,
        slot: Option<u16>,
        args: &[A],
    ) -> Result<Frame, Error> {
        let Routing::Cluster(cluster) = &self.routing else {
            unreachable!("cluster requests come from cluster mode")
        };
        self.refresh_if_stale().await;
        let route = || match slot {
            Some(s) => cluster.node(s),
            None => cluster.any(),
        };
        let deadline = Instant::now() + self.settings.request_timeout;
        let mut node = route();
        let mut asking = false;
        let mut redirects = 0;
        let mut retries = 0;
        let mut reconnected = false;
        loop {
            let Some(target) = node.clone() else {
                // No node serves the slot as far as the map knows: ask the cluster again.
                if retries < MAX_RETRIES && Instant::now() < deadline {
                    retries += 1;
                    tokio::time::sleep(backoff(retries)).await;
                    let _ = self.refresh().await;
                    node = route();
                    continue;
                }
                return Err(slot.map_or_else(
                    || Error::Invalid("the cluster has no nodes".into()),
                    unserved,
                ));
            };
            let conn = self.connection(&target)?;
            let mut bytes = Vec::new();
            let replies = if asking {
                encode_command([b"ASKING".as_slice()], &mut bytes);
                2
            } else {
                1
            };
            encode_command(args.iter().map(AsRef::as_ref), &mut bytes);
            let frame = match conn.send(bytes, replies).await {
                Ok(mut frames) => frames.pop().expect("a reply per command"),
                Err(e @ Error::Unavailable { .. }) if !reconnected => {
                    reconnected = true;
                    // Retry only where the map now points elsewhere: the same node again would
                    // fail again, and a write may have reached it.
                    let _ = self.refresh().await;
                    node = route();
                    if node.as_deref() == Some(&*target) || node.is_none() {
                        return Err(e);
                    }
                    asking = false;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Frame::Error(message) = frame else {
                return Ok(frame);
            };
            match redirect(&message, &target) {
                None => return Err(Error::Server(message)),
                Some(_) if redirects >= MAX_REDIRECTS => return Err(Error::Server(message)),
                Some(Redirect::Moved {
                    slot: moved,
                    node: to,
                }) => {
                    redirects += 1;
                    cluster.moved(moved, &to);
                    node = Some(Arc::from(to));
                    asking = false;
                }
                Some(Redirect::Ask { node: to }) => {
                    redirects += 1;
                    node = Some(Arc::from(to));
                    asking = true;
                }
                Some(Redirect::Retry) => {
                    retries += 1;
                    if retries > MAX_RETRIES || Instant::now() >= deadline {
                        return Err(Error::Server(message));
                    }
                    tokio::time::sleep(backoff(retries)).await;
                    if message.starts_with("CLUSTERDOWN") {
                        let _ = self.refresh().await;
                    }
                    node = route();
                    asking = false;
                }
            }
        }
    }
}

fn backoff(retry: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << retry.min(16))
        .min(MAX_BACKOFF)
}

pub(crate) fn unserved(slot: u16) -> Error {
    Error::Server(format!("CLUSTERDOWN Hash slot not served (slot {slot})"))
}
