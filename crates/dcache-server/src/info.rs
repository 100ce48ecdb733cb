//! The text of `INFO`, with Redis's section and field names where the meaning is the same.

use std::fmt::Write;

use crate::command::table;
use crate::config::human_bytes;
use crate::state::Shared;

const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "stats",
    "replication",
    "cluster",
    "keyspace",
    "commandstats",
];
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "stats",
    "replication",
    "cluster",
    "keyspace",
];

/// The process's resident set size in bytes, from `/proc/self/status` (0 where unavailable).
#[must_use]
pub fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// jemalloc's counts of allocated and resident bytes, when jemalloc is the process's allocator
/// (the `dcache` binary links it); zeros otherwise.
#[must_use]
pub fn allocator_stats() -> (usize, usize) {
    use tikv_jemalloc_ctl::{epoch, stats};
    if epoch::advance().is_err() {
        return (0, 0);
    }
    (
        stats::allocated::read().unwrap_or(0),
        stats::resident::read().unwrap_or(0),
    )
}

/// Renders the sections asked for: none means the default set; `all` and `everything` mean all.
#[must_use]
pub fn render(shared: &Shared, asked: &[String], now: u64) -> String {
    let wanted: Vec<&str> = if asked.is_empty() || asked.iter().any(|s| s == "default") {
        DEFAULT_SECTIONS.to_vec()
    } else if asked.iter().any(|s| s == "all" || s == "everything") {
        SECTIONS.to_vec()
    } else {
        SECTIONS
            .iter()
            .copied()
            .filter(|s| asked.iter().any(|a| a == s))
            .collect()
    };
    let mut out = String::new();
    for (i, section) in wanted.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        match *section {
            "server" => server(&mut out, shared, now),
            "clients" => clients(&mut out, shared),
            "memory" => memory(&mut out, shared),
            "stats" => stats(&mut out, shared),
            "keyspace" => keyspace(&mut out, shared),
            "cluster" => cluster(&mut out, shared),
            "replication" => replication(&mut out, shared),
            "commandstats" => commandstats(&mut out, shared),
            _ => {}
        }
    }
    out
}

/// Redis's one field, then the topology as this node knows it.
fn cluster(out: &mut String, shared: &Shared) {
    let Some(cluster) = &shared.cluster else {
        out.push_str("# Cluster\r\ncluster_enabled:0\r\n");
        return;
    };
    let view = cluster.view();
    let t = &view.topology;
    let mine = t.slot_counts().get(&view.me).copied().unwrap_or(0);
    let _ = write!(
        out,
        "# Cluster\r\ncluster_enabled:1\r\ncluster_node_id:{}\r\ncluster_epoch:{}\r\n\
         cluster_known_nodes:{}\r\ncluster_slots_served:{mine}\r\n\
         cluster_slots_migrating_out:{}\r\ncluster_slots_moved_out:{}\r\n\
         cluster_migration_sent_bytes:{}\r\ncluster_migration_imported_records:{}\r\n\
         cluster_elections_triggered:{}\r\n",
        view.me,
        t.epoch,
        t.nodes.len(),
        t.moving_from(&view.me).len(),
        cluster.metric("dcache_cluster_slots_moved_out"),
        cluster.metric("dcache_cluster_migration_sent_bytes"),
        cluster.metric("dcache_cluster_migration_imported_records"),
        cluster.metric("dcache_cluster_elections_triggered"),
    );
}

/// Redis's fields where they mean the same: every node is a `master` (each is the primary of
/// some slots); its "slaves" are the peers it streams writes to, with the offset each
/// acknowledged (items, not bytes). Then dcache's: the cluster's settings and the writes waiting.
fn replication(out: &mut String, shared: &Shared) {
    out.push_str("# Replication\r\nrole:master\r\n");
    let Some(cluster) = &shared.cluster else {
        out.push_str("connected_slaves:0\r\nmaster_repl_offset:0\r\n");
        return;
    };
    let view = cluster.view();
    let replication = &cluster.replication;
    let streams = replication.streams();
    let _ = write!(out, "connected_slaves:{}\r\n", streams.len());
    let mut total = 0;
    for (i, (peer, queued, acked)) in streams.iter().enumerate() {
        total += queued;
        let (host, port) = view
            .topology
            .nodes
            .get(peer)
            .map_or(("?", 0), |n| (n.host.as_str(), n.port));
        let _ = write!(
            out,
            "slave{i}:ip={host},port={port},state=online,offset={acked},lag=0\r\n"
        );
    }
    let settings = view.topology.settings;
    let _ = write!(
        out,
        "master_replid:{}\r\nmaster_repl_offset:{total}\r\n\
         replication_strategy:{}\r\nreplication_replicas:{}\r\n\
         replication_sync_replicas:{}\r\nreplication_write_quorum:{}\r\n\
         replication_read_quorum:{}\r\nreplication_waiting_writes:{}\r\n\
         replication_timed_out_writes:{}\r\nreplication_applied_items:{}\r\n\
         replication_dropped_items:{}\r\nreplication_effect_bytes:{}\r\n\
         replication_delta_effects:{}\r\nreplication_stale_resends:{}\r\n",
        view.me,
        settings.strategy.as_str(),
        settings.replicas,
        settings.sync_replicas,
        settings.write_quorum,
        settings.read_quorum,
        replication.waiting(),
        replication
            .timed_out
            .load(std::sync::atomic::Ordering::Relaxed),
        replication
            .applied_items
            .load(std::sync::atomic::Ordering::Relaxed),
        replication.dropped(),
        replication
            .effect_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        replication
            .delta_effects
            .load(std::sync::atomic::Ordering::Relaxed),
        replication
            .stale_resends
            .load(std::sync::atomic::Ordering::Relaxed),
    );
}

fn server(out: &mut String, shared: &Shared, now: u64) {
    let config = shared.config();
    let uptime = now.saturating_sub(shared.started_ms) / 1000;
    let _ = write!(
        out,
        "# Server\r\n\
         redis_version:{}\r\n\
         dcache_version:{}\r\n\
         redis_mode:standalone\r\n\
         os:{} {}\r\n\
         arch_bits:{}\r\n\
         multiplexing_api:tokio\r\n\
         process_id:{}\r\n\
         run_id:{:040x}\r\n\
         tcp_port:{}\r\n\
         uptime_in_seconds:{uptime}\r\n\
         uptime_in_days:{}\r\n\
         hz:{}\r\n\
         executable:{}\r\n\
         config_file:{}\r\n",
        crate::command::REDIS_COMPAT_VERSION,
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        usize::BITS,
        std::process::id(),
        shared.started_ms as u128 * 0x9e37_79b9 + u128::from(std::process::id()),
        shared.local_addr.port(),
        uptime / 86_400,
        config.hz,
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        shared.config_file.as_deref().unwrap_or(""),
    );
}

fn clients(out: &mut String, shared: &Shared) {
    let _ = write!(
        out,
        "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n\
         tracking_clients:{}\r\n",
        shared.connected_clients(),
        shared.config().maxclients,
        shared.blocking.blocked(),
        shared.tracking.counts().clients,
    );
}

fn memory(out: &mut String, shared: &Shared) {
    let used = shared.store.used_memory();
    let config = shared.config();
    let (allocated, resident) = allocator_stats();
    let rss = rss_bytes();
    let _ = write!(
        out,
        "# Memory\r\n\
         used_memory:{used}\r\n\
         used_memory_human:{}\r\n\
         used_memory_rss:{rss}\r\n\
         used_memory_rss_human:{}\r\n\
         used_memory_dataset:{}\r\n\
         used_memory_calibration:{}\r\n\
         maxmemory:{}\r\n\
         maxmemory_human:{}\r\n\
         maxmemory_policy:{}\r\n\
         mem_allocator:jemalloc\r\n\
         allocator_allocated:{allocated}\r\n\
         allocator_resident:{resident}\r\n\
         mem_fragmentation_ratio:{:.2}\r\n",
        human_bytes(used),
        human_bytes(rss),
        shared.store.accounted_memory(),
        shared.store.calibration(),
        config.maxmemory.0,
        human_bytes(config.maxmemory.0),
        config.maxmemory_policy,
        if allocated > 0 {
            rss as f64 / allocated as f64
        } else {
            0.0
        },
    );
}

fn stats(out: &mut String, shared: &Shared) {
    use std::sync::atomic::Ordering::Relaxed;
    let store = shared.store.stats();
    let (net_in, net_out) = shared.stats.net_totals();
    let pubsub = shared.pubsub.sizes();
    let tracking = shared.tracking.counts();
    let _ = write!(
        out,
        "# Stats\r\n\
         total_connections_received:{}\r\n\
         total_commands_processed:{}\r\n\
         instantaneous_ops_per_sec:{}\r\n\
         total_net_input_bytes:{net_in}\r\n\
         total_net_output_bytes:{net_out}\r\n\
         rejected_connections:{}\r\n\
         expired_keys:{}\r\n\
         evicted_keys:{}\r\n\
         keyspace_hits:{}\r\n\
         keyspace_misses:{}\r\n\
         pubsub_channels:{}\r\n\
         pubsub_patterns:{}\r\n\
         pubsubshard_channels:{}\r\n\
         tracking_total_keys:{}\r\n\
         tracking_total_items:{}\r\n\
         tracking_total_prefixes:{}\r\n",
        shared.stats.connections_received.load(Relaxed),
        shared.stats.total_commands(),
        shared.ops.lock().ops_per_sec(),
        shared.stats.rejected_connections.load(Relaxed),
        store.expired,
        store.evicted,
        store.hits,
        store.misses,
        pubsub[0],
        pubsub[1],
        pubsub[2],
        tracking.keys,
        tracking.items,
        tracking.prefixes,
    );
}

fn keyspace(out: &mut String, shared: &Shared) {
    let stats = shared.store.stats();
    out.push_str("# Keyspace\r\n");
    if stats.keys > 0 {
        let _ = write!(
            out,
            "db0:keys={},expires={},avg_ttl=0\r\n",
            stats.keys, stats.volatile_keys
        );
    }
}

fn commandstats(out: &mut String, shared: &Shared) {
    out.push_str("# Commandstats\r\n");
    for (cmd, totals) in table().iter().zip(shared.stats.commands()) {
        if totals.calls + totals.rejected == 0 {
            continue;
        }
        let usec = totals.nanos / 1000;
        let _ = write!(
            out,
            "cmdstat_{}:calls={},usec={usec},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
            cmd.name,
            totals.calls,
            if totals.calls > 0 {
                usec as f64 / totals.calls as f64
            } else {
                0.0
            },
            totals.rejected,
            totals.failed,
        );
    }
}
