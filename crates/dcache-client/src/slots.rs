//! Cluster mode: the slot map learned from `CLUSTER SLOTS`, and the redirects that correct it.
//!
//! A cluster node answers a key it does not serve with `-MOVED <slot> <host>:<port>` (the slot
//! has a new owner: remember it), `-ASK <slot> <host>:<port>` (the slot is moving and this key
//! is already there: ask once with `ASKING`, remember nothing), `-TRYAGAIN` (a multi-key
//! request whose keys are split by a migration in progress) or `-CLUSTERDOWN` (no node serves
//! the slot now). This module parses those and the map; `Client` decides what to do with them.
//! Nothing here is specific to Redis beyond that protocol: dcache nodes speak it too.

use std::sync::Arc;

use dcache_placement::SLOTS;
use dcache_protocol::Frame;

/// Marks a slot that no node serves.
const UNSERVED: u16 = u16::MAX;

/// Which node serves each slot: the primary of every range of `CLUSTER SLOTS`.
#[derive(Debug, Clone)]
pub(crate) struct SlotMap {
    /// For each slot, an index into `nodes`, or [`UNSERVED`].
    owner: Vec<u16>,
    /// Shared names, so that routing a request clones a reference count, not a string.
    nodes: Vec<Arc<str>>,
}

impl SlotMap {
    /// Parses a `CLUSTER SLOTS` reply: `[start, end, [host, port, id, …], replica…]` per
    /// range. A node given with an empty host (or `?`, Redis's "unknown endpoint") is taken to
    /// be on the host of the node that answered, `asked` (`host:port`).
    pub(crate) fn parse(reply: &Frame, asked: &str) -> Result<SlotMap, String> {
        let Frame::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS gave {reply:?}"));
        };
        let mut map = SlotMap {
            owner: vec![UNSERVED; SLOTS],
            nodes: Vec::new(),
        };
        let asked_host = asked.rsplit_once(':').map_or(asked, |(h, _)| h);
        for range in ranges {
            let Frame::Array(fields) = range else {
                return Err(format!("a CLUSTER SLOTS range is {range:?}"));
            };
            let (Some(Frame::Integer(start)), Some(Frame::Integer(end)), Some(Frame::Array(node))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(format!("a CLUSTER SLOTS range is {fields:?}"));
            };
            let host = match node.first() {
                Some(Frame::Bulk(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Frame::Simple(s)) => s.clone(),
                other => return Err(format!("a CLUSTER SLOTS host is {other:?}")),
            };
            let Some(Frame::Integer(port)) = node.get(1) else {
                return Err(format!("a CLUSTER SLOTS node is {node:?}"));
            };
            let host = if host.is_empty() || host == "?" {
                asked_host.to_owned()
            } else {
                host
            };
            if !(0..SLOTS as i64).contains(start) || !(*start..SLOTS as i64).contains(end) {
                return Err(format!("CLUSTER SLOTS range {start}-{end}"));
            }
            let index = map.index_of(&join(&host, *port));
            for slot in *start..=*end {
                map.owner[slot as usize] = index;
            }
        }
        Ok(map)
    }

    fn index_of(&mut self, node: &str) -> u16 {
        match self.nodes.iter().position(|n| &**n == node) {
            Some(i) => i as u16,
            None => {
                self.nodes.push(node.into());
                (self.nodes.len() - 1) as u16
            }
        }
    }

    /// The node that serves `slot`, if any.
    pub(crate) fn node(&self, slot: u16) -> Option<&Arc<str>> {
        match self.owner.get(slot as usize) {
            Some(&i) if i != UNSERVED => Some(&self.nodes[i as usize]),
            _ => None,
        }
    }

    /// Records that `node` serves `slot` (after `-MOVED`).
    pub(crate) fn set(&mut self, slot: u16, node: &str) {
        let index = self.index_of(node);
        if let Some(owner) = self.owner.get_mut(slot as usize) {
            *owner = index;
        }
    }

    /// The nodes that serve at least one slot, in the order the map first names them.
    pub(crate) fn primaries(&self) -> Vec<String> {
        let mut serving = vec![false; self.nodes.len()];
        for &i in &self.owner {
            if i != UNSERVED {
                serving[i as usize] = true;
            }
        }
        self.nodes
            .iter()
            .zip(serving)
            .filter(|(_, s)| *s)
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// Every node the map names, serving or not.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| &**n)
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn join(host: &str, port: i64) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What a cluster error reply asks the client to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redirect {
    /// The slot lives on `node` now.
    Moved { slot: u16, node: String },
    /// Ask `node`, once, after `ASKING`.
    Ask { node: String },
    /// Retry after a short wait (`-TRYAGAIN`, `-CLUSTERDOWN`).
    Retry,
}

/// Reads a cluster redirect from an error reply; `from` is the node that sent it, whose host
/// stands in for an empty one (`-MOVED 3999 :6380`).
pub(crate) fn redirect(message: &str, from: &str) -> Option<Redirect> {
    let mut words = message.split(' ');
    let kind = words.next()?;
    match kind {
        "MOVED" | "ASK" => {
            let slot: u16 = words.next()?.parse().ok()?;
            if usize::from(slot) >= SLOTS {
                return None;
            }
            let target = words.next()?;
            let node = match target.strip_prefix(':') {
                Some(port) => {
                    let host = from.rsplit_once(':').map_or(from, |(h, _)| h);
                    format!("{host}:{port}")
                }
                None => target.to_owned(),
            };
            Some(if kind == "MOVED" {
                Redirect::Moved { slot, node }
            } else {
                Redirect::Ask { node }
            })
        }
        "TRYAGAIN" | "CLUSTERDOWN" => Some(Redirect::Retry),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn node(host: &str, port: i64, id: &str) -> Frame {
        Frame::Array(vec![
            Frame::Bulk(Bytes::copy_from_slice(host.as_bytes())),
            Frame::Integer(port),
            Frame::Bulk(Bytes::copy_from_slice(id.as_bytes())),
        ])
    }

    #[test]
    fn slots_reply_becomes_a_map() {
        let reply = Frame::Array(vec![
            Frame::Array(vec![
                Frame::Integer(0),
                Frame::Integer(5460),
                node("127.0.0.1", 7000, "a"),
                node("127.0.0.1", 7003, "a-replica"),
            ]),
            Frame::Array(vec![
                Frame::Integer(5461),
                Frame::Integer(10922),
                node("", 7001, "b"),
            ]),
            Frame::Array(vec![
                Frame::Integer(10923),
                Frame::Integer(16000),
                node("::1", 7002, "c"),
            ]),
        ]);
        let map = SlotMap::parse(&reply, "10.0.0.9:7001").unwrap();
        let owner = |s| map.node(s).map(|n| n.to_string());
        assert_eq!(owner(0).as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(owner(5460).as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(owner(5461).as_deref(), Some("10.0.0.9:7001"));
        assert_eq!(owner(16000).as_deref(), Some("[::1]:7002"));
        assert_eq!(owner(16001), None);
        assert_eq!(
            map.primaries(),
            ["127.0.0.1:7000", "10.0.0.9:7001", "[::1]:7002"]
        );
        let mut moved = map.clone();
        moved.set(16001, "127.0.0.1:7009");
        assert_eq!(moved.node(16001).map(|n| &**n), Some("127.0.0.1:7009"));
        assert!(SlotMap::parse(&Frame::Null, "x:1").is_err());
        let bad = Frame::Array(vec![Frame::Array(vec![
            Frame::Integer(10),
            Frame::Integer(9),
            node("h", 1, "i"),
        ])]);
        assert!(SlotMap::parse(&bad, "x:1").is_err());
    }

    #[test]
    fn redirects_are_read_from_error_replies() {
        assert_eq!(
            redirect("MOVED 3999 127.0.0.1:6381", "127.0.0.1:6379"),
            Some(Redirect::Moved {
                slot: 3999,
                node: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            redirect("ASK 1 10.0.0.2:7000", "x:1"),
            Some(Redirect::Ask {
                node: "10.0.0.2:7000".into()
            })
        );
        assert_eq!(
            redirect("MOVED 7 :6380", "10.0.0.1:6379"),
            Some(Redirect::Moved {
                slot: 7,
                node: "10.0.0.1:6380".into()
            })
        );
        assert_eq!(
            redirect(
                "TRYAGAIN Multiple keys request during rehashing of slot",
                "x:1"
            ),
            Some(Redirect::Retry)
        );
        assert_eq!(
            redirect("CLUSTERDOWN Hash slot not served", "x:1"),
            Some(Redirect::Retry)
        );
        assert_eq!(redirect("MOVED 16384 h:1", "x:1"), None);
        assert_eq!(redirect("ERR wrong number of arguments", "x:1"), None);
        assert_eq!(redirect("MOVED", "x:1"), None);
    }
}
