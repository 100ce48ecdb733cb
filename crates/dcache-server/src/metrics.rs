//! Prometheus metrics and the admin HTTP listener (`/metrics`, `/health`).
//!
//! The hot path only bumps the atomics in [`crate::stats`] and the store's counters; this
//! collector reads them at scrape time, so a scrape costs nothing between scrapes.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::command::table;
use crate::security::admin_authorized;
use crate::state::Shared;
use crate::stats::LATENCY_BUCKETS_US;

/// Every metric the node exports: name (counters gain `_total` on the wire), kind, help.
pub const METRICS: &[(&str, MetricType, &str)] = &[
    (
        "dcache_commands",
        MetricType::Counter,
        "Commands executed, by command.",
    ),
    (
        "dcache_command_errors",
        MetricType::Counter,
        "Commands that replied with an error, by command.",
    ),
    (
        "dcache_command_duration_seconds",
        MetricType::Histogram,
        "Time to execute a command.",
    ),
    (
        "dcache_keyspace_hits",
        MetricType::Counter,
        "Reads that found their key.",
    ),
    (
        "dcache_keyspace_misses",
        MetricType::Counter,
        "Reads that did not find their key.",
    ),
    (
        "dcache_evicted_keys",
        MetricType::Counter,
        "Keys evicted to stay within maxmemory.",
    ),
    (
        "dcache_expired_keys",
        MetricType::Counter,
        "Keys removed because their TTL passed.",
    ),
    ("dcache_keys", MetricType::Gauge, "Keys in the store."),
    (
        "dcache_keys_volatile",
        MetricType::Gauge,
        "Keys with a TTL.",
    ),
    (
        "dcache_memory_used_bytes",
        MetricType::Gauge,
        "Memory used by the data set, as accounted against maxmemory.",
    ),
    (
        "dcache_memory_max_bytes",
        MetricType::Gauge,
        "The maxmemory setting (0: unlimited).",
    ),
    (
        "dcache_memory_rss_bytes",
        MetricType::Gauge,
        "Resident set size of the process.",
    ),
    (
        "dcache_memory_allocated_bytes",
        MetricType::Gauge,
        "Bytes allocated, as the allocator counts them.",
    ),
    (
        "dcache_connections",
        MetricType::Gauge,
        "Connected clients.",
    ),
    (
        "dcache_connections_received",
        MetricType::Counter,
        "Connections accepted.",
    ),
    (
        "dcache_connections_rejected",
        MetricType::Counter,
        "Connections refused: maxclients reached, or protected mode.",
    ),
    (
        "dcache_net_input_bytes",
        MetricType::Counter,
        "Bytes read from clients.",
    ),
    (
        "dcache_net_output_bytes",
        MetricType::Counter,
        "Bytes written to clients.",
    ),
    (
        "dcache_cluster_epoch",
        MetricType::Gauge,
        "The epoch of the topology this node follows (0: not in a cluster).",
    ),
    (
        "dcache_cluster_known_nodes",
        MetricType::Gauge,
        "Members of the cluster, failed ones included.",
    ),
    (
        "dcache_cluster_slots_served",
        MetricType::Gauge,
        "Hash slots this node serves.",
    ),
    (
        "dcache_cluster_slots_migrating_out",
        MetricType::Gauge,
        "Hash slots this node serves that the topology sends elsewhere.",
    ),
    (
        "dcache_cluster_slots_moved_out",
        MetricType::Counter,
        "Hash slots this node has handed to another node.",
    ),
    (
        "dcache_cluster_migration_sent_bytes",
        MetricType::Counter,
        "Bytes of slot migration sent to other nodes.",
    ),
    (
        "dcache_cluster_migration_imported_records",
        MetricType::Counter,
        "Slot migration records received that changed this node's data.",
    ),
    (
        "dcache_cluster_elections_triggered",
        MetricType::Counter,
        "Raft elections this node started because failure detection reported the leader down.",
    ),
    (
        "dcache_pubsub_channels",
        MetricType::Gauge,
        "Channels with at least one subscriber on this node.",
    ),
    (
        "dcache_pubsub_patterns",
        MetricType::Gauge,
        "Patterns with at least one subscriber on this node.",
    ),
    (
        "dcache_pubsub_forwarded",
        MetricType::Counter,
        "PUBLISH and SPUBLISH messages sent on to other members of the cluster.",
    ),
    (
        "dcache_pubsub_forward_dropped",
        MetricType::Counter,
        "Messages for other members dropped (a full queue, a member that could not be reached).",
    ),
];

#[derive(Debug)]
struct NodeCollector {
    shared: Arc<Shared>,
}

impl NodeCollector {
    fn value(&self, name: &str) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let shared = &self.shared;
        match name {
            "dcache_keyspace_hits" => shared.store.stats().hits,
            "dcache_keyspace_misses" => shared.store.stats().misses,
            "dcache_evicted_keys" => shared.store.stats().evicted,
            "dcache_expired_keys" => shared.store.stats().expired,
            "dcache_keys" => shared.store.stats().keys as u64,
            "dcache_keys_volatile" => shared.store.stats().volatile_keys as u64,
            "dcache_memory_used_bytes" => shared.store.used_memory() as u64,
            "dcache_memory_max_bytes" => shared.config().maxmemory.0 as u64,
            "dcache_memory_rss_bytes" => crate::info::rss_bytes() as u64,
            "dcache_memory_allocated_bytes" => crate::info::allocator_stats().0 as u64,
            "dcache_connections" => shared.connected_clients() as u64,
            "dcache_connections_received" => shared.stats.connections_received.load(Relaxed),
            "dcache_connections_rejected" => shared.stats.rejected_connections.load(Relaxed),
            "dcache_net_input_bytes" => shared.stats.net_totals().0,
            "dcache_net_output_bytes" => shared.stats.net_totals().1,
            "dcache_pubsub_channels" => shared.pubsub.sizes()[0] as u64,
            "dcache_pubsub_patterns" => shared.pubsub.sizes()[1] as u64,
            "dcache_pubsub_forwarded" => shared.pubsub.forwarded.load(Relaxed),
            "dcache_pubsub_forward_dropped" => shared.pubsub.dropped.load(Relaxed),
            name if name.starts_with("dcache_cluster_") => {
                shared.cluster.as_ref().map_or(0, |c| c.metric(name))
            }
            _ => 0,
        }
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let commands = self.shared.stats.commands();
        for &(name, kind, help) in METRICS {
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            match name {
                "dcache_commands" | "dcache_command_errors" => {
                    for (cmd, totals) in table().iter().zip(&commands) {
                        let value = if name == "dcache_commands" {
                            totals.calls
                        } else {
                            totals.failed
                        };
                        if totals.calls > 0 {
                            let labels = [("command", cmd.name)];
                            ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
                        }
                    }
                }
                "dcache_command_duration_seconds" => {
                    // Per-bucket counts: the encoder makes them cumulative.
                    let (counts, sum_nanos) = self.shared.stats.latency();
                    let total: u64 = counts.iter().sum();
                    let buckets: Vec<(f64, u64)> = counts
                        .iter()
                        .enumerate()
                        .map(|(i, &count)| {
                            let bound = LATENCY_BUCKETS_US
                                .get(i)
                                .map_or(f64::INFINITY, |&us| us as f64 / 1e6);
                            (bound, count)
                        })
                        .collect();
                    metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        sum_nanos as f64 / 1e9,
                        total,
                        &buckets,
                        None,
                    )?;
                }
                _ if kind == MetricType::Counter => {
                    ConstCounter::new(self.value(name)).encode(metric)?;
                }
                _ => ConstGauge::new(self.value(name) as i64).encode(metric)?,
            }
        }
        Ok(())
    }
}

/// The Prometheus text for the node's metrics.
#[must_use]
pub fn render(shared: &Arc<Shared>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NodeCollector {
        shared: Arc::clone(shared),
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String");
    text
}

fn unauthorized() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::UNAUTHORIZED,
        [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
        "send 'Authorization: Bearer <requirepass>'\n",
    )
        .into_response()
}

/// Serves `/metrics` and `/health` until `shutdown` completes. With `requirepass` set, every
/// request needs `Authorization: Bearer <requirepass>`; without it, only a loopback listener
/// answers.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let loopback_only = listener.local_addr()?.ip().to_canonical().is_loopback();
    let checker = Arc::clone(&shared);
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let shared = Arc::clone(&shared);
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        render(&shared),
                    )
                }
            }),
        )
        .route("/health", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let password = checker.config().requirepass;
                let authorization = request
                    .headers()
                    .get(axum::http::header::AUTHORIZATION)
                    .map(axum::http::HeaderValue::as_bytes);
                let allowed = admin_authorized(authorization, &password, loopback_only);
                async move {
                    if allowed {
                        next.run(request).await
                    } else {
                        unauthorized()
                    }
                }
            },
        ));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::METRICS;

    #[test]
    fn no_two_metrics_share_a_name() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.0).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
        assert!(names.iter().all(|n| n.starts_with("dcache_")));
    }
}
