//! The listener: accepts clients, runs background cycles, shuts down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::{Clock, SystemClock};
use crate::config::NodeConfig;
use crate::state::Shared;

/// How long shutdown waits for connections to finish what they are doing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Expired keys each shard gives up per expiry round; a round holds each shard's lock only this
/// long.
const EXPIRE_PER_SHARD: usize = 256;

/// Builds a [`Server`].
#[must_use]
pub struct ServerBuilder {
    config: NodeConfig,
    clock: Arc<dyn Clock>,
    admin: Option<SocketAddr>,
    tls: Option<SocketAddr>,
    config_file: Option<String>,
    cluster: Option<ClusterLink>,
}

/// How a node learns and changes the agreed topology.
pub struct ClusterLink {
    /// This node's id (40 hex characters).
    pub me: String,
    pub control: Arc<dyn crate::cluster::Control>,
    pub topology: watch::Receiver<Arc<dcache_cluster::Topology>>,
}

impl ServerBuilder {
    /// Makes the node a cluster member that follows `link`'s topology (with `cluster-enabled`
    /// and no link, the node is a cluster of one on its own).
    pub fn cluster(mut self, link: ClusterLink) -> Self {
        self.cluster = Some(link);
        self
    }

    /// The clock the node reads (tests pass a [`crate::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Listen for admin HTTP here, whatever `admin-port` says (tests pass `127.0.0.1:0`).
    pub fn admin_addr(mut self, addr: SocketAddr) -> Self {
        self.admin = Some(addr);
        self
    }

    /// Listen for TLS clients here, whatever `tls-port` says (tests pass `127.0.0.1:0`). The plain
    /// listener stays as the config has it.
    pub fn tls_addr(mut self, addr: SocketAddr) -> Self {
        self.tls = Some(addr);
        self
    }

    /// The file the config came from, for INFO.
    pub fn config_file(mut self, path: impl Into<String>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Binds the listeners.
    ///
    /// # Errors
    /// An invalid config, or an address that cannot be bound (named in the error).
    pub async fn bind(self) -> anyhow::Result<Server> {
        let config = self.config;
        config.validate().map_err(anyhow::Error::msg)?;
        let listener = match crate::tls::plain_address(&config) {
            Some(address) => Some(
                TcpListener::bind(&address)
                    .await
                    .with_context(|| format!("cannot listen on {address}"))?,
            ),
            None => None,
        };
        let tls_address = match (self.tls, config.tls_port) {
            (Some(addr), _) => Some(addr.to_string()),
            (None, 0) => None,
            (None, port) => Some(format!("{}:{port}", config.bind)),
        };
        let tls = match tls_address {
            Some(address) => {
                let acceptor = crate::tls::acceptor(&config).context("cannot set up TLS")?;
                let listener = TcpListener::bind(&address)
                    .await
                    .with_context(|| format!("cannot listen for TLS on {address}"))?;
                Some((listener, acceptor))
            }
            None => None,
        };
        let admin_address = match (self.admin, config.admin_port) {
            (Some(addr), _) => Some(addr.to_string()),
            (None, 0) => None,
            (None, port) => Some(format!("{}:{port}", config.bind)),
        };
        let admin = match admin_address {
            Some(address) => Some(bind_admin(&address, !config.requirepass.is_empty()).await?),
            None => None,
        };
        let local_addr = match (&listener, &tls) {
            (Some(plain), _) => plain.local_addr()?,
            (None, Some((tls, _))) => tls.local_addr()?,
            (None, None) => unreachable!("port 0 without a TLS port asks for any free port"),
        };
        // A cluster member: of the cluster the builder was given; of one kept through Raft when
        // the node has a directory for its log (`dcache node`); else of a cluster of one.
        let mut membership = None;
        // Set by failure detection while this node sees only a minority of the cluster.
        let minority = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let link = match self.cluster {
            Some(link) => Some(link),
            None if config.cluster_enabled.0 && !config.dir.is_empty() => {
                let (started, link) = crate::membership::Membership::start(
                    &config,
                    local_addr,
                    Arc::clone(&minority),
                )
                .await?;
                membership = Some(started);
                Some(link)
            }
            None if config.cluster_enabled.0 => Some(alone(&config, local_addr)?),
            None => None,
        };
        let cluster = link.as_ref().map(|l| {
            Arc::new(
                crate::cluster::Cluster::new(&l.me, Some(Arc::clone(&l.control)))
                    .fenced_by(Arc::clone(&minority)),
            )
        });
        if let (Some(cluster), Some(link)) = (&cluster, &link) {
            cluster.set_topology(Arc::clone(&link.topology.borrow()));
        }
        let shared = Shared::new(config, self.clock, local_addr, self.config_file, cluster)
            .map_err(anyhow::Error::msg)?;
        Ok(Server {
            shared: Arc::new(shared),
            listener,
            tls,
            admin,
            topology: link.map(|l| l.topology),
            membership,
        })
    }
}

/// A cluster of one: this node, serving every slot, agreed with itself.
fn alone(config: &NodeConfig, local_addr: SocketAddr) -> anyhow::Result<ClusterLink> {
    let control = crate::cluster::LocalControl::new();
    let me = crate::cluster::random_node_id();
    control
        .apply(&dcache_cluster::Change::Join(dcache_cluster::Node {
            id: me.clone(),
            host: local_addr.ip().to_string(),
            port: local_addr.port(),
            bus_port: if config.cluster_port == 0 {
                local_addr.port().saturating_add(10000)
            } else {
                config.cluster_port
            },
            state: dcache_cluster::NodeState::Online,
        }))
        .map_err(anyhow::Error::msg)?;
    let settings = config.replication_settings().map_err(anyhow::Error::msg)?;
    if settings != dcache_cluster::Settings::default() {
        control
            .apply(&dcache_cluster::Change::Set(settings))
            .map_err(anyhow::Error::msg)?;
    }
    Ok(ClusterLink {
        me,
        topology: control.subscribe(),
        control,
    })
}

/// Binds admin HTTP, after checking that the address is loopback or a password is set: a refused
/// address is never listened on, not even for a moment.
async fn bind_admin(address: &str, password_set: bool) -> anyhow::Result<TcpListener> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(address)
        .await
        .with_context(|| format!("cannot resolve admin HTTP address {address}"))?
        .collect();
    crate::security::check_admin_bind(&addrs, password_set).map_err(anyhow::Error::msg)?;
    TcpListener::bind(&addrs[..])
        .await
        .with_context(|| format!("cannot listen for admin HTTP on {address}"))
}

/// A bound node, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    listener: Option<TcpListener>,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    admin: Option<TcpListener>,
    topology: Option<watch::Receiver<Arc<dcache_cluster::Topology>>>,
    membership: Option<crate::membership::Membership>,
}

impl Server {
    pub fn builder(config: NodeConfig) -> ServerBuilder {
        ServerBuilder {
            config,
            clock: Arc::new(SystemClock),
            admin: None,
            tls: None,
            config_file: None,
            cluster: None,
        }
    }

    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The plain listener's address, unless port 0 turned it off beside a TLS port.
    #[must_use]
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The TLS listener's address, when there is one.
    #[must_use]
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    #[must_use]
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    #[must_use]
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets connections finish the
    /// requests they hold (for up to five seconds) and returns.
    ///
    /// # Errors
    /// A failure of the listener itself.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server {
            shared,
            listener,
            tls,
            admin,
            topology,
            membership,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let background = tokio::spawn(background(Arc::clone(&shared), stop_rx.clone()));
        let follower = topology.map(|topology| {
            tokio::spawn(crate::membership::supervise(
                Arc::clone(&shared),
                topology,
                membership,
                shared.local_addr,
                stop_rx.clone(),
            ))
        });
        // Replication outlives the connections' drain: their held replies wait for it.
        let (replication_stop, replication_stop_rx) = watch::channel(false);
        let replicator = shared.cluster.is_some().then(|| {
            tokio::spawn(crate::replicate::run(
                Arc::clone(&shared),
                replication_stop_rx,
            ))
        });
        // Links that carry PUBLISH to the other members, and the shard channels' slot watch.
        let pubsub = shared
            .cluster
            .is_some()
            .then(|| tokio::spawn(crate::pubsub::run(Arc::clone(&shared), stop_rx.clone())));
        let admin_task = admin.map(|listener| {
            let mut stop = stop_rx.clone();
            tokio::spawn(crate::metrics::serve_admin(
                listener,
                Arc::clone(&shared),
                async move {
                    let _ = stop.changed().await;
                },
            ))
        });
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let (accepted, over_tls) = tokio::select! {
                accepted = accept(listener.as_ref()) => (accepted, false),
                accepted = accept(tls.as_ref().map(|(l, _)| l)) => (accepted, true),
                () = &mut shutdown => break,
                () = shared.exit_requested() => {
                    tracing::info!("left the cluster: stopping");
                    break;
                }
            };
            let (socket, addr) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            shared
                .stats
                .connections_received
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = socket.set_nodelay(true);
            // A TLS client is checked after its handshake, so that it can read the refusal.
            if !over_tls && crate::security::refuses(&shared, addr.ip()) {
                refuse(&shared, &mut connections, socket, crate::security::DENIED);
                continue;
            }
            let local = socket.local_addr().unwrap_or(shared.local_addr);
            match (shared.register_client(addr, local), &tls) {
                (Some(info), Some((_, acceptor))) if over_tls => {
                    connections.spawn(crate::tls::serve(
                        Arc::clone(&shared),
                        acceptor.clone(),
                        socket,
                        info,
                        stop_rx.clone(),
                    ));
                }
                (Some(info), _) => {
                    connections.spawn(crate::connection::serve(
                        Arc::clone(&shared),
                        socket,
                        info,
                        stop_rx.clone(),
                    ));
                }
                // Plain text would only confuse a TLS client's handshake: it is just closed.
                (None, _) if over_tls => refuse(&shared, &mut connections, socket, ""),
                (None, _) => refuse(
                    &shared,
                    &mut connections,
                    socket,
                    "-ERR max number of clients reached\r\n",
                ),
            }
        }
        drop(listener);
        drop(tls);
        while connections.try_join_next().is_some() {}
        tracing::info!(
            "shutting down: no new connections, draining {}",
            connections.len()
        );
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("{} connections did not finish in time", connections.len());
            connections.abort_all();
        }
        let _ = background.await;
        if let Some(task) = follower {
            let _ = task.await;
        }
        let _ = replication_stop.send(true);
        if let Some(task) = replicator {
            let _ = task.await;
        }
        if let Some(task) = pubsub {
            let _ = task.await;
        }

        if let Some(task) = admin_task {
            let _ = task.await;
        }
        Ok(())
    }
}

/// Accepts on `listener`, or never when there is none.
async fn accept(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Answers a client that will not be served with `error` and closes it, without holding up
/// the accept loop.
fn refuse(
    shared: &Shared,
    connections: &mut JoinSet<()>,
    mut socket: tokio::net::TcpStream,
    error: &'static str,
) {
    shared
        .stats
        .rejected_connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    connections.spawn(async move {
        let _ = socket.write_all(error.as_bytes()).await;
        let _ = socket.shutdown().await;
    });
}

/// The periodic work: active expiry and ops/s sampling, `hz` times a second.
async fn background(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let period = Duration::from_millis(1000 / u64::from(shared.config().hz.max(1)));
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        // A quarter of the period at most, as Redis's active expiry allows itself.
        active_expire(&shared, period / 4);
        calibrate(&shared);
        let now = shared.clock.now_ms();
        close_idle_clients(&shared, now);
        shared.background_cycle_done();
        let total = shared.stats.total_commands();
        shared.ops.lock().sample(now, total);
    }
}

/// Makes the memory budget count what the allocator really holds for the data: whatever it has
/// handed out since the node started beyond what the store accounts for its entries and the
/// clients hold in their buffers (size classes the estimate misses, the slab's and tables' spare
/// room, the policies' structures) is set as the store's calibration, and the store evicts if
/// that puts it over `maxmemory`. Evicting lowers the allocator's count and the accounted bytes
/// alike, so the calibration does not feed on itself. Client buffers are left out: a value on its
/// way in would otherwise count twice, and a transient one would evict data. Does nothing where
/// jemalloc is not the allocator (its count is then about zero).
pub fn calibrate(shared: &Shared) {
    let (allocated, _) = crate::info::allocator_stats();
    let buffers: usize = shared
        .clients()
        .iter()
        .map(|c| c.buffer_capacity.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    // A write in progress has allocated its value before its shard accounts it; its reservation
    // covers that, so a 20 MB value on its way in is not taken for 20 MB of overhead.
    let beyond = allocated
        .saturating_sub(shared.base_allocated)
        .saturating_sub(shared.store.accounted_memory())
        .saturating_sub(buffers)
        .saturating_sub(shared.store.reserved_memory());
    // Only what lasts two cycles counts: a buffer growing by copying (a large value on its way
    // in) holds twice its size for a moment, and that is not the data's overhead.
    let lasting = beyond.min(
        shared
            .last_calibration_sample
            .swap(beyond, std::sync::atomic::Ordering::Relaxed),
    );
    shared.store.set_calibration(lasting);
}

/// Closes the clients idle for longer than `timeout` seconds (0: never), as Redis's client cron
/// does. The check runs here, `hz` times a second, rather than as a timer in every connection.
fn close_idle_clients(shared: &Shared, now: u64) {
    let timeout = shared.config().timeout;
    if timeout == 0 {
        return;
    }
    for client in shared.clients() {
        let idle = now.saturating_sub(
            client
                .last_active_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        if idle / 1000 > timeout
            && !client
                .killed
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::debug!(client = client.id, addr = %client.addr, "closing client idle for {} s", idle / 1000);
            client.kill.notify_one();
        }
    }
}

/// One active expiry cycle: rounds over all shards until nothing more is expired or the time
/// budget is spent. Returns how many keys it reclaimed.
pub fn active_expire(shared: &Shared, budget: Duration) -> usize {
    let deadline = Instant::now() + budget;
    let now = shared.clock.now_ms();
    let mut total = 0;
    loop {
        let removed = shared.store.expire_cycle(now, EXPIRE_PER_SHARD);
        total += removed;
        if removed == 0 || Instant::now() >= deadline {
            return total;
        }
        // Let the connections on this worker run between rounds.
        std::thread::yield_now();
    }
}
