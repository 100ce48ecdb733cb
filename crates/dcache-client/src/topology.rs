//! Which node serves which slot.

use dcache_placement::{Member, Placement, slot};

use crate::Error;

/// A placement of the slots over node addresses. Static today: built from the node list.
#[derive(Debug, Clone)]
pub struct Topology {
    placement: Placement,
}

impl Topology {
    /// Places the slots over `nodes` (addresses such as `127.0.0.1:5000`). Each slot gets an
    /// ordered list of up to three nodes: the first serves it, the others are where a client with
    /// fallback goes when the first is down.
    ///
    /// # Errors
    /// No nodes, or a node listed twice.
    pub fn from_nodes(nodes: &[String]) -> Result<Self, Error> {
        let members: Vec<Member> = nodes.iter().map(|n| Member::new(n.clone(), 1)).collect();
        let placement =
            Placement::compute(&members, 3).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Self { placement })
    }

    /// The node addresses, in a fixed order.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.placement.members().iter().map(|m| m.id.as_str())
    }

    /// The node that serves `key`.
    #[must_use]
    pub fn node_for(&self, key: &[u8]) -> &str {
        &self.placement.primary(slot(key)).id
    }

    /// The nodes for `key` in order of preference: the one that serves it, then the fallbacks.
    pub fn nodes_for(&self, key: &[u8]) -> impl Iterator<Item = &str> {
        self.placement.replicas(slot(key)).map(|m| m.id.as_str())
    }
}
