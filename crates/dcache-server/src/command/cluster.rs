//! CLUSTER, READONLY, READWRITE and ASKING, in Redis Cluster's reply formats, from the node's
//! view of the agreed topology (`crate::cluster`). KEYSLOT works with the cluster off too.

use std::fmt::Write as _;

use dcache_cluster::{Change, NodeState};
use dcache_protocol::Args;

use super::{CmdResult, Ctx, Error, help, int_arg, subcommand_arity, unknown_subcommand};
use crate::cluster::View;

const DISABLED: &str = "ERR This instance has cluster support disabled";
const BAD_SLOT: &str = "ERR Invalid slot";

pub fn cluster(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    let upper = sub.to_ascii_uppercase();
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(subcommand_arity("cluster", sub))
        }
    };
    match upper.as_slice() {
        b"KEYSLOT" => {
            arity(3)?;
            ctx.out.int(i64::from(dcache_placement::slot(args.get(2))));
            return Ok(());
        }
        b"HELP" => {
            help(&mut ctx.out, HELP);
            return Ok(());
        }
        _ => {}
    }
    let Some(cluster) = ctx.shared.cluster.clone() else {
        return Err(match upper.as_slice() {
            b"INFO" | b"SLOTS" | b"SHARDS" | b"NODES" | b"MYID" | b"MYSHARDID"
            | b"COUNTKEYSINSLOT" | b"GETKEYSINSLOT" | b"MEET" | b"FORGET" => DISABLED.into(),
            _ => unknown_subcommand(sub, "cluster"),
        });
    };
    let view = ctx.conn.view(&cluster);
    match upper.as_slice() {
        b"MYID" | b"MYSHARDID" => {
            // Without replicas each node is its own shard: the shard id is the node id.
            arity(2)?;
            ctx.out.bulk(view.me.as_bytes());
        }
        b"INFO" => {
            arity(2)?;
            ctx.out.verbatim(info(&view).as_bytes());
        }
        b"SLOTS" => {
            arity(2)?;
            slots(ctx, &view);
        }
        b"SHARDS" => {
            arity(2)?;
            shards(ctx, &view);
        }
        b"NODES" => {
            arity(2)?;
            ctx.out.verbatim(nodes(&view).as_bytes());
        }
        b"COUNTKEYSINSLOT" => {
            arity(3)?;
            let slot = slot_arg(args.get(2))?;
            ctx.out.int(ctx.shared.store.count_in_slot(slot) as i64);
        }
        b"GETKEYSINSLOT" => {
            arity(4)?;
            // As Redis: both arguments must be integers first, then in range.
            const BAD: &str = "ERR Invalid slot or number of keys";
            let (slot, count) = (int_arg(args.get(2))?, int_arg(args.get(3))?);
            let slot = u16::try_from(slot)
                .ok()
                .filter(|&s| usize::from(s) < dcache_placement::SLOTS)
                .ok_or(Error::from(BAD))?;
            let count = usize::try_from(count).map_err(|_| Error::from(BAD))?;
            let keys = ctx.shared.store.keys_in_slot(slot, count);
            ctx.out.array(keys.len());
            for key in &keys {
                ctx.out.bulk(key);
            }
        }
        b"FORGET" => {
            arity(3)?;
            let id = String::from_utf8_lossy(args.get(2)).into_owned();
            if id == view.me {
                return Err("ERR I tried hard but I can't forget myself...".into());
            }
            let Some(node) = view.topology.nodes.get(&id) else {
                return Err(format!("ERR Unknown node {id}").into());
            };
            if view.topology.serves_any(&node.id) {
                return Err(
                    "ERR The node still serves slots: move them first (dcache cluster leave)"
                        .into(),
                );
            }
            propose(&cluster, Change::Forget(id));
            ctx.out.ok();
        }
        b"MEET" => meet(ctx, &cluster, &view, args)?,
        // dcache's own: a slot migration's records (`crate::migrate`), and what `dcache cluster
        // leave` and `dcache cluster rebalance` send.
        b"IMPORT" => {
            arity(3)?;
            let applied = crate::migrate::import(ctx.shared, args.get(2), ctx.now)?;
            ctx.out.int(applied as i64);
        }
        // A batch of a peer's replication stream (`crate::replicate`): applied, and answered
        // with its last offset once this node's successors hold it (a chain).
        b"APPLY" => {
            arity(6)?;
            let from = String::from_utf8_lossy(args.get(2)).into_owned();
            let epoch = u64::try_from(int_arg(args.get(3))?).map_err(|_| Error::from(BAD_SLOT))?;
            let offset = int_arg(args.get(4))?;
            let last = u64::try_from(offset).map_err(|_| Error::from(BAD_SLOT))?;
            let applied =
                crate::replicate::apply(ctx.shared, &from, epoch, last, args.get(5), ctx.now);
            if let Err(e) = &applied
                && e.starts_with("STALE ")
            {
                // The requests pipelined behind this one follow the item the sender replaces:
                // they are not run (the sender sends them again after the replacement).
                ctx.conn.quit = true;
            }
            if let Some(ack) = applied? {
                ctx.conn.hold = Some(ack);
            }
            ctx.out.int(offset);
        }
        // A quorum read's questions to the other copies, and its repairs (`crate::replicate`).
        b"VERSIONS" => {
            if args.len() < 3 {
                return Err(subcommand_arity("cluster", sub));
            }
            let keys: Vec<&[u8]> = args.iter_from(2).collect();
            let versions = crate::replicate::versions(ctx.shared, &keys, ctx.now);
            ctx.out.array(versions.len());
            for v in versions {
                match v {
                    Some(bytes) => ctx.out.bulk(&bytes),
                    None => ctx.out.null(),
                }
            }
        }
        // The end of a quorum move: flush this node's writes of the slots to their primary
        // (`crate::replicate::drain_to`), answered once they are there.
        b"DRAIN" => {
            if args.len() < 5 {
                return Err(subcommand_arity("cluster", sub));
            }
            let to = String::from_utf8_lossy(args.get(2)).into_owned();
            let epoch = u64::try_from(int_arg(args.get(3))?).map_err(|_| Error::from(BAD_SLOT))?;
            let slots = args
                .iter_from(4)
                .map(slot_arg)
                .collect::<Result<Vec<u16>, Error>>()?;
            let timeout = crate::replicate::write_timeout(ctx.shared);
            ctx.conn.hold = Some(crate::replicate::drain_to(
                std::sync::Arc::clone(&cluster),
                to,
                epoch,
                slots,
                timeout,
            ));
            ctx.out.ok();
        }
        // Before a quorum move: this node's copy of the slots to their primary
        // (`crate::replicate::push_to`), answered once it is there.
        b"PUSH" => {
            if args.len() < 5 {
                return Err(subcommand_arity("cluster", sub));
            }
            let host = String::from_utf8_lossy(args.get(2)).into_owned();
            let port = port_arg(args.get(3), "base")?;
            let slots = args
                .iter_from(4)
                .map(slot_arg)
                .collect::<Result<Vec<u16>, Error>>()?;
            ctx.conn.hold = Some(crate::replicate::push_to(&cluster, (host, port), slots));
            ctx.out.ok();
        }
        b"PUBLISH" => {
            arity(4)?;
            super::pubsub::deliver_forwarded(ctx, args, crate::pubsub::Kind::Channel)?;
        }
        b"SPUBLISH" => {
            arity(4)?;
            super::pubsub::deliver_forwarded(ctx, args, crate::pubsub::Kind::Shard)?;
        }
        b"REPAIR" => {
            arity(3)?;
            let applied = crate::replicate::take_repair(ctx.shared, args.get(2), ctx.now)?;
            ctx.out.int(applied as i64);
        }
        b"IMPORTSLOT" => {
            arity(3)?;
            let slot = slot_arg(args.get(2))?;
            let dropped = crate::migrate::begin_import(ctx.shared, slot)?;
            ctx.out.int(dropped as i64);
        }
        b"LEAVE" => {
            arity(2)?;
            if view.myself().is_none() {
                return Err("ERR This node is not a member of the cluster".into());
            }
            let others = view
                .nodes
                .iter()
                .any(|n| n.id != view.me && n.state == NodeState::Online);
            if !others {
                return Err("ERR No other node is online to take this node's slots".into());
            }
            cluster
                .leave_requested
                .store(true, std::sync::atomic::Ordering::Relaxed);
            propose(&cluster, Change::Leave(view.me.clone()));
            ctx.out.ok();
        }
        b"SET" => {
            if args.len() < 4 || !args.len().is_multiple_of(2) {
                return Err(subcommand_arity("cluster", sub));
            }
            let mut settings = view.topology.settings;
            let mut replicas_given = false;
            let (mut k, mut w, mut r) = (None, None, None);
            for pair in (2..args.len()).step_by(2) {
                let name = String::from_utf8_lossy(args.get(pair)).to_ascii_lowercase();
                let value = args.get(pair + 1);
                let number = || {
                    u8::try_from(int_arg(value)?)
                        .map_err(|_| Error::from(format!("ERR Invalid value for '{name}'")))
                };
                match name.as_str() {
                    "replicas" => {
                        settings.replicas = number()?;
                        replicas_given = true;
                    }
                    "replication" => {
                        settings.strategy = String::from_utf8_lossy(value).parse().map_err(
                            |e: dcache_cluster::UnknownStrategy| Error::from(format!("ERR {e}")),
                        )?;
                    }
                    "sync-replicas" => k = Some(number()?),
                    "write-quorum" => w = Some(number()?),
                    "read-quorum" => r = Some(number()?),
                    _ => return Err(format!("ERR Unknown setting '{name}'").into()),
                }
            }
            // A new number of replicas brings the other knobs' defaults with it, unless given.
            if replicas_given {
                let fresh = dcache_cluster::Settings::new(settings.replicas, settings.strategy);
                settings.sync_replicas = fresh.sync_replicas;
                settings.write_quorum = fresh.write_quorum;
                settings.read_quorum = fresh.read_quorum;
            }
            settings.sync_replicas = k.unwrap_or(settings.sync_replicas);
            settings.write_quorum = w.unwrap_or(settings.write_quorum);
            settings.read_quorum = r.unwrap_or(settings.read_quorum);
            settings
                .validate()
                .map_err(|e| Error::from(format!("ERR {e}")))?;
            propose(&cluster, Change::Set(settings));
            ctx.out.ok();
        }
        b"REBALANCE" => {
            arity(2)?;
            propose(&cluster, Change::Rebalance);
            ctx.out.ok();
        }
        _ => return Err(unknown_subcommand(sub, "cluster")),
    }
    Ok(())
}

/// `CLUSTER MEET host port [bus-port]`: a node alone joins the other's cluster (its keys are
/// dropped: it serves the slots it is given); a node of a larger cluster asks the other node,
/// which must be alone, to join it. Like Redis's, the reply does not wait for the handshake.
fn meet(
    ctx: &mut Ctx<'_>,
    cluster: &std::sync::Arc<crate::cluster::Cluster>,
    view: &View,
    args: Args<'_>,
) -> CmdResult {
    if !(4..=6).contains(&args.len()) {
        return Err(subcommand_arity("cluster", args.get(1)));
    }
    let host = String::from_utf8_lossy(args.get(2)).into_owned();
    let port = port_arg(args.get(3), "base")?;
    let bus = match args.len() {
        4 => port.checked_add(10000).ok_or_else(|| {
            Error::from(format!("ERR Invalid bus port specified: {port} + 10000"))
        })?,
        _ => port_arg(args.get(4), "bus")?,
    };
    // A sixth argument marks a MEET passed on by the other node (so it is not passed back).
    let passed_on = args.len() == 6;
    let known = view.nodes.iter().any(|n| n.host == host && n.port == port);
    let alone = view.nodes.len() == 1 && view.myself().is_some();
    let config = ctx.shared.config();
    if known {
        ctx.out.ok();
        return Ok(());
    }
    if alone && !config.dir.is_empty() {
        cluster.request_join(format!("{host}:{port}@{bus}"));
        ctx.out.ok();
        return Ok(());
    }
    if passed_on {
        return Err(
            "ERR Both nodes belong to clusters of several nodes: a node joins a cluster alone"
                .into(),
        );
    }
    let Some(me) = view.myself().cloned() else {
        return Err("ERR This node is not a member of the cluster".into());
    };
    let addr: std::net::SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|_| Error::from(format!("ERR Invalid node address specified: {host}:{port}")))?;
    tokio::spawn(async move {
        let (my_port, my_bus) = (me.port.to_string(), me.bus_port.to_string());
        let request: [&[u8]; 6] = [
            b"CLUSTER",
            b"MEET",
            me.host.as_bytes(),
            my_port.as_bytes(),
            my_bus.as_bytes(),
            b"passed-on",
        ];
        if let Err(e) = crate::migrate::ask(addr, &config.requirepass, &request).await {
            tracing::warn!("CLUSTER MEET {addr}: {e}");
        }
    });
    ctx.out.ok();
    Ok(())
}

/// A port argument of MEET, or Redis's error naming it (`base` or `bus`).
fn port_arg(arg: &[u8], which: &str) -> Result<u16, Error> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| {
            Error::from(format!(
                "ERR Invalid {which} port specified: {}",
                String::from_utf8_lossy(arg)
            ))
        })
}

/// Commits `change` in the background: the reply does not wait for agreement (as Redis's
/// CLUSTER commands answer before the rest of the cluster has heard of them).
fn propose(cluster: &std::sync::Arc<crate::cluster::Cluster>, change: Change) {
    let Some(control) = cluster.control() else {
        return;
    };
    tokio::spawn(async move {
        if let Err(e) = control.propose(change.clone()).await {
            tracing::warn!("cluster change {change:?} not applied: {e}");
        }
    });
}

/// A slot argument: not an integer is Redis's integer error, out of range `Invalid slot`.
fn slot_arg(arg: &[u8]) -> Result<u16, Error> {
    match int_arg(arg)? {
        n if (0..dcache_placement::SLOTS as i64).contains(&n) => Ok(n as u16),
        _ => Err(BAD_SLOT.into()),
    }
}

fn info(view: &View) -> String {
    let t = &view.topology;
    let assigned = view
        .ranges()
        .iter()
        .map(|(a, b, _)| usize::from(b - a) + 1)
        .sum::<usize>();
    let ok = view.slots_ok();
    let state = if ok == dcache_placement::SLOTS {
        "ok"
    } else {
        "fail"
    };
    let serving = t.slot_counts().values().filter(|&&n| n > 0).count();
    let moving = t.moving_count();
    let mut out = String::new();
    let _ = write!(
        out,
        "cluster_state:{state}\r\n\
         cluster_slots_assigned:{assigned}\r\n\
         cluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:0\r\n\
         cluster_slots_fail:{}\r\n\
         cluster_known_nodes:{}\r\n\
         cluster_size:{serving}\r\n\
         cluster_current_epoch:{}\r\n\
         cluster_my_epoch:{}\r\n\
         cluster_slots_migrating:{moving}\r\n",
        assigned - ok,
        t.nodes.len(),
        t.epoch,
        t.epoch,
    );
    out
}

/// Where a client reaches `node`: its host and client port.
fn endpoint(out: &mut dcache_protocol::ReplyWriter<'_>, node: &dcache_cluster::Node) {
    out.array(4);
    out.bulk(node.host.as_bytes());
    out.int(i64::from(node.port));
    out.bulk(node.id.as_bytes());
    // Redis 7's map of extra networking metadata (hostname): none.
    out.map(0);
}

fn slots(ctx: &mut Ctx<'_>, view: &View) {
    let ranges = view.ranges();
    ctx.out.array(ranges.len());
    for (first, last, copies) in ranges {
        // Primary first, then the replicas, as Redis lists a master and its replicas.
        ctx.out.array(2 + copies.len());
        ctx.out.int(i64::from(first));
        ctx.out.int(i64::from(last));
        for i in copies {
            endpoint(&mut ctx.out, &view.nodes[i]);
        }
    }
}

/// `CLUSTER SHARDS`: a shard is a set of copies (primary first) and the slots it holds. Slots
/// are placed one by one, so with replicas a node is the primary of some shards and a replica in
/// others; a node that holds nothing is a shard of its own with no slots.
/// A shard: its copies (indices into the view's nodes, primary first) and its slot ranges.
type Shard = (Vec<usize>, Vec<(u16, u16)>);

fn shards(ctx: &mut Ctx<'_>, view: &View) {
    let mut shards: Vec<Shard> = Vec::new();
    for (a, b, copies) in view.ranges() {
        match shards.iter_mut().find(|(set, _)| *set == copies) {
            Some((_, ranges)) => ranges.push((a, b)),
            None => shards.push((copies, vec![(a, b)])),
        }
    }
    for i in 0..view.nodes.len() {
        if !shards.iter().any(|(set, _)| set.contains(&i)) {
            shards.push((vec![i], Vec::new()));
        }
    }
    let offsets = view_offsets(ctx);
    ctx.out.array(shards.len());
    for (set, ranges) in shards {
        ctx.out.map(2);
        ctx.out.bulk(b"slots");
        ctx.out.array(ranges.len() * 2);
        for (a, b) in ranges {
            ctx.out.int(i64::from(a));
            ctx.out.int(i64::from(b));
        }
        ctx.out.bulk(b"nodes");
        ctx.out.array(set.len());
        for (position, &i) in set.iter().enumerate() {
            let node = &view.nodes[i];
            ctx.out.map(7);
            ctx.out.bulk(b"id");
            ctx.out.bulk(node.id.as_bytes());
            ctx.out.bulk(b"port");
            ctx.out.int(i64::from(node.port));
            ctx.out.bulk(b"ip");
            ctx.out.bulk(node.host.as_bytes());
            ctx.out.bulk(b"endpoint");
            ctx.out.bulk(node.host.as_bytes());
            ctx.out.bulk(b"role");
            ctx.out.bulk(if position == 0 {
                &b"master"[..]
            } else {
                b"replica"
            });
            ctx.out.bulk(b"replication-offset");
            ctx.out
                .int(offsets.get(&node.id).copied().unwrap_or(0) as i64);
            ctx.out.bulk(b"health");
            ctx.out.bulk(if node.state == NodeState::Failed {
                b"fail"
            } else {
                b"online"
            });
        }
    }
}

/// What each peer acknowledged of this node's stream to it (this node: what it queued in all).
fn view_offsets(ctx: &Ctx<'_>) -> std::collections::HashMap<String, u64> {
    let Some(cluster) = &ctx.shared.cluster else {
        return Default::default();
    };
    let streams = cluster.replication.streams();
    let mut offsets: std::collections::HashMap<String, u64> = streams
        .iter()
        .map(|(p, _, acked)| (p.clone(), *acked))
        .collect();
    offsets.insert(
        cluster.replication.me().to_owned(),
        streams
            .iter()
            .map(|(_, queued, _)| *queued)
            .max()
            .unwrap_or(0),
    );
    offsets
}

/// `CLUSTER NODES`: one line per node, Redis's format.
fn nodes(view: &View) -> String {
    let ranges = view.ranges();
    let t = &view.topology;
    let mut out = String::new();
    for (i, node) in view.nodes.iter().enumerate() {
        let mut flags = Vec::new();
        if node.id == view.me {
            flags.push("myself");
        }
        flags.push("master");
        match node.state {
            NodeState::Failed => flags.push("fail"),
            // Not a Redis flag; Redis tools ignore flags they do not know.
            NodeState::Leaving => flags.push("leaving"),
            NodeState::Online => {}
        }
        let link = if node.state == NodeState::Failed {
            "disconnected"
        } else {
            "connected"
        };
        let _ = write!(
            out,
            "{} {}:{}@{} {} - 0 0 {} {link}",
            node.id,
            node.host,
            node.port,
            node.bus_port,
            flags.join(","),
            t.epoch
        );
        // A node's slots are those it is the primary of.
        for &(a, b, _) in ranges.iter().filter(|r| r.2.first() == Some(&i)) {
            if a == b {
                let _ = write!(out, " {a}");
            } else {
                let _ = write!(out, " {a}-{b}");
            }
        }
        // Slots on their way out, as Redis shows them: [slot->-destination].
        for (slot, to) in t.moving_from(&node.id) {
            let _ = write!(out, " [{slot}->-{to}]");
        }
        out.push('\n');
    }
    out
}

/// ASKING: accepted, as cluster clients send it; no node answers `-ASK` (a slot moves whole),
/// so none follows it with ASKING.
pub fn accepted(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.shared.cluster.is_none() {
        return Err(DISABLED.into());
    }
    ctx.out.ok();
    Ok(())
}

/// READONLY: this connection's reads of a slot this node holds a replica of are served here
/// (what a replica has, which may trail its primary) instead of redirected to the primary.
pub fn readonly(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.shared.cluster.is_none() {
        return Err(DISABLED.into());
    }
    ctx.conn.readonly = true;
    ctx.out.ok();
    Ok(())
}

/// READWRITE: back to reading from primaries only.
pub fn readwrite(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.shared.cluster.is_none() {
        return Err(DISABLED.into());
    }
    ctx.conn.readonly = false;
    ctx.out.ok();
    Ok(())
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "FORGET <node-id>",
    "    Remove a node that serves no slots from the cluster.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by this node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "LEAVE",
    "    Hand this node's slots to the others, then leave the cluster and stop (dcache).",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MEET <ip> <port> [<bus-port>]",
    "    Join the cluster of that node (this node alone), or have it join this one.",
    "MYID",
    "    Return the node id.",
    "MYSHARDID",
    "    Return the node's shard id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "REBALANCE",
    "    Move slots until every node holds its share (dcache).",
    "SET <setting> <value> [<setting> <value> ...]",
    "    Change the cluster's replication settings: replicas, replication, sync-replicas,",
    "    write-quorum, read-quorum (dcache).",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
];
