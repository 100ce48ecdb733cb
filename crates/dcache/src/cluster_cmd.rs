//! `dcache cluster status|leave|set|rebalance`: the cluster as its nodes report it (`CLUSTER NODES`,
//! `CLUSTER INFO`), and the two changes an operator asks for.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use dcache_client::{Client, Frame};

use crate::cli::DEFAULT_NODES;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Nodes of the cluster, comma-separated; the first that answers is asked.
    #[arg(long, default_value = DEFAULT_NODES, value_delimiter = ',', global = true)]
    nodes: Vec<String>,
    /// The nodes' password (their --requirepass); DCACHE_PASSWORD in the environment works too.
    #[arg(long, short = 'a', global = true)]
    password: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Members, epoch, slots per node and the slots on their way, with a progress bar.
    Status,
    /// Hand a node's slots to the others, then remove it from the cluster; the node exits.
    Leave {
        /// The node that leaves (host:port, its client address).
        node: String,
        /// Give up waiting after this many seconds (the move goes on).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Change the replication settings (`replicas 1 replication chain …`) and wait until
    /// every slot has its copies.
    Set {
        /// Pairs of setting and value: replicas, replication (primary|quorum|chain),
        /// sync-replicas, write-quorum, read-quorum.
        #[arg(required = true, num_args = 2.., value_name = "SETTING VALUE")]
        pairs: Vec<String>,
        /// Give up waiting after this many seconds (the copies are still made).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Move slots until every node serves its share, and wait until they have moved.
    Rebalance {
        /// Give up waiting after this many seconds (the move goes on).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    /// `host:port`.
    pub addr: String,
    pub flags: String,
    pub slots: usize,
    /// Slots this node is handing to others (`[slot->-id]`), by destination id.
    pub outgoing: BTreeMap<String, usize>,
}

/// Parses `CLUSTER NODES`.
#[must_use]
pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 8 {
                return None;
            }
            let addr = fields[1].split('@').next().unwrap_or("").to_owned();
            let mut slots = 0;
            let mut outgoing = BTreeMap::new();
            for range in &fields[8..] {
                if let Some(inner) = range.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                    if let Some((_, to)) = inner.split_once("->-") {
                        *outgoing.entry(to.to_owned()).or_insert(0) += 1;
                    }
                    continue;
                }
                slots += match range.split_once('-') {
                    Some((a, b)) => {
                        b.parse::<usize>().unwrap_or(0) + 1 - a.parse::<usize>().unwrap_or(0)
                    }
                    None => 1,
                };
            }
            Some(NodeLine {
                id: fields[0].to_owned(),
                addr,
                flags: fields[2].to_owned(),
                slots,
                outgoing,
            })
        })
        .collect()
}

/// A reply that carries text (`CLUSTER INFO`, `CLUSTER NODES`, `OK`) as a string.
///
/// # Errors
/// An error reply, or one of another kind.
pub fn text(frame: Frame) -> anyhow::Result<String> {
    match frame {
        Frame::Bulk(b) | Frame::Verbatim { text: b, .. } => {
            Ok(String::from_utf8_lossy(&b).into_owned())
        }
        Frame::Simple(s) => Ok(s),
        Frame::Error(e) => bail!("{e}"),
        other => bail!("unexpected reply {other:?}"),
    }
}

struct Session {
    client: Client,
    nodes: Vec<String>,
}

impl Session {
    async fn new(args: &ClusterArgs, extra: Option<&str>) -> anyhow::Result<Session> {
        let mut nodes = args.nodes.clone();
        if let Some(extra) = extra
            && !nodes.iter().any(|n| n == extra)
        {
            nodes.push(extra.to_owned());
        }
        let mut builder = Client::builder().nodes(nodes.clone());
        if let Some(password) = crate::cli::password(args.password.as_ref()) {
            builder = builder.password(password);
        }
        Ok(Session {
            client: builder.build().await?,
            nodes,
        })
    }

    /// Asks the first node (other than `skip`) that answers.
    async fn ask(&self, args: &[&str], skip: Option<&str>) -> anyhow::Result<String> {
        let mut last = None;
        for node in self.nodes.iter().filter(|n| Some(n.as_str()) != skip) {
            match self.client.node_cmd(node, args).await {
                Ok(frame) => return text(frame),
                Err(e) => last = Some(format!("{node}: {e}")),
            }
        }
        bail!(
            "no node answered: {}",
            last.unwrap_or_else(|| "no nodes".into())
        )
    }

    async fn state(&self, skip: Option<&str>) -> anyhow::Result<(u64, Vec<NodeLine>)> {
        let info = self.ask(&["CLUSTER", "INFO"], skip).await?;
        let epoch = info
            .lines()
            .find_map(|l| l.strip_prefix("cluster_current_epoch:"))
            .and_then(|e| e.trim().parse().ok())
            .unwrap_or(0);
        let nodes = parse_nodes(&self.ask(&["CLUSTER", "NODES"], skip).await?);
        Ok((epoch, nodes))
    }
}

fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled)
    )
}

fn print_status(out: &mut impl Write, epoch: u64, nodes: &[NodeLine]) {
    let _ = writeln!(out, "epoch {epoch}, {} members", nodes.len());
    let _ = writeln!(
        out,
        "  {:<12} {:<22} {:<16} {:>6}",
        "id", "address", "flags", "slots"
    );
    for n in nodes {
        let _ = writeln!(
            out,
            "  {:<12} {:<22} {:<16} {:>6}",
            &n.id[..n.id.len().min(12)],
            n.addr,
            n.flags.replace("myself,", ""),
            n.slots
        );
    }
    let mut incoming: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes {
        for (to, count) in &n.outgoing {
            *incoming.entry(to.as_str()).or_insert(0) += count;
        }
    }
    if incoming.is_empty() {
        let _ = writeln!(out, "no slots moving");
    }
    for (to, count) in incoming {
        let Some(dest) = nodes.iter().find(|n| n.id == to) else {
            continue;
        };
        let _ = writeln!(
            out,
            "  moving to {:<22} {}",
            dest.addr,
            bar(dest.slots, dest.slots + count)
        );
    }
    for n in nodes
        .iter()
        .filter(|n| !n.outgoing.is_empty() && n.flags.contains("leaving"))
    {
        let _ = writeln!(out, "  {} is leaving: {} slots left", n.addr, n.slots);
    }
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let mut out = std::io::stdout();
        match &args.action {
            Action::Status => {
                let session = Session::new(&args, None).await?;
                let (epoch, nodes) = session.state(None).await?;
                print_status(&mut out, epoch, &nodes);
            }
            Action::Leave { node, timeout } => {
                let session = Session::new(&args, Some(node)).await?;
                let reply = session.client.node_cmd(node, &["CLUSTER", "LEAVE"]).await?;
                text(reply).with_context(|| format!("{node} refused to leave"))?;
                let deadline = Instant::now() + Duration::from_secs(*timeout);
                let mut last = usize::MAX;
                loop {
                    let (epoch, nodes) = session.state(Some(node)).await?;
                    let Some(leaver) = nodes.iter().find(|n| n.addr == *node) else {
                        let _ = writeln!(out, "{node} has left (epoch {epoch})");
                        break;
                    };
                    if leaver.slots != last {
                        let _ = writeln!(out, "{node}: {} slots left to hand off", leaver.slots);
                        last = leaver.slots;
                    }
                    if Instant::now() > deadline {
                        bail!(
                            "{node} still serves {} slots after {timeout} s",
                            leaver.slots
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Action::Set { pairs, timeout } => {
                if pairs.len() % 2 != 0 {
                    bail!("settings come in pairs: setting value …");
                }
                let session = Session::new(&args, None).await?;
                let mut request = vec!["CLUSTER", "SET"];
                request.extend(pairs.iter().map(String::as_str));
                text(session.client.cmd(&request).await?)?;
                let wanted: Option<String> = pairs
                    .chunks(2)
                    .find(|p| p[0].eq_ignore_ascii_case("replicas"))
                    .map(|p| p[1].clone());
                let field = |text: &str, name: &str| -> Option<String> {
                    text.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_owned())
                };
                // Done when the node has taken the new setting (it commits through the cluster's
                // log after the reply) and no slot is still getting its copies.
                let deadline = Instant::now() + Duration::from_secs(*timeout);
                loop {
                    let replication = session.ask(&["INFO", "replication"], None).await?;
                    let info = session.ask(&["CLUSTER", "INFO"], None).await?;
                    let taken = wanted.as_ref().is_none_or(|w| {
                        field(&replication, "replication_replicas:").as_ref() == Some(w)
                    });
                    let migrating: usize = field(&info, "cluster_slots_migrating:")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(usize::MAX);
                    if taken && migrating == 0 {
                        let (epoch, nodes) = session.state(None).await?;
                        print_status(&mut out, epoch, &nodes);
                        break;
                    }
                    if Instant::now() > deadline {
                        bail!("slots still getting their copies after {timeout} s");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Action::Rebalance { timeout } => {
                let session = Session::new(&args, None).await?;
                text(session.client.cmd(&["CLUSTER", "REBALANCE"]).await?)?;
                let deadline = Instant::now() + Duration::from_secs(*timeout);
                loop {
                    let (epoch, nodes) = session.state(None).await?;
                    let moving: usize = nodes.iter().flat_map(|n| n.outgoing.values()).sum();
                    if moving == 0 {
                        print_status(&mut out, epoch, &nodes);
                        break;
                    }
                    if Instant::now() > deadline {
                        bail!("{moving} slots still moving after {timeout} s");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_parse_into_slot_counts_and_moves() {
        let text = "aaaa 127.0.0.1:5000@15000 myself,master - 0 0 3 connected 0-99 200 [5->-bbbb] [6->-bbbb]\n\
                    bbbb 127.0.0.1:5001@15001 master - 0 0 3 connected 100-199\n\
                    cccc 127.0.0.1:5002@15002 master,fail - 0 0 3 disconnected\n";
        let nodes = parse_nodes(text);
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].addr, "127.0.0.1:5000");
        assert_eq!(nodes[0].slots, 101);
        assert_eq!(nodes[0].outgoing, BTreeMap::from([("bbbb".to_owned(), 2)]));
        assert_eq!(nodes[1].slots, 100);
        assert_eq!(nodes[2].slots, 0);
        assert_eq!(nodes[2].flags, "master,fail");
        let mut out = Vec::new();
        print_status(&mut out, 3, &nodes);
        let shown = String::from_utf8(out).unwrap();
        assert!(shown.contains("epoch 3, 3 members"), "{shown}");
        assert!(shown.contains("moving to 127.0.0.1:5001"), "{shown}");
        assert!(shown.contains("100/102"), "{shown}");
    }
}
