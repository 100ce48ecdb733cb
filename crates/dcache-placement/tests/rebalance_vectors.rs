//! Test vectors for `Placement::rebalance` (docs/HASHING.md, "Slot → replica set, epoch to
//! epoch"): a chain of member-list changes, each with the digest of the table it must give, so
//! that another implementation of the specification can check itself step by step.
//!
//! The expected digests pin specification version 2: the file is written by this
//! implementation (`DCACHE_BLESS=1 cargo test -p dcache-placement --test rebalance_vectors`) and
//! may only change with a new `SPEC_VERSION`. What the tables must satisfy (exact moves, quotas)
//! is asserted independently in `tests/rebalance.rs`.

use dcache_placement::{Member, Placement, SLOTS, id_hash};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Vectors {
    spec_version: u32,
    chains: Vec<Chain>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Chain {
    rf: usize,
    steps: Vec<Step>,
}

/// One epoch: its members (id, weight), and what the table must be.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Step {
    members: Vec<(String, u32)>,
    /// FNV-1a 64 (as `id_hash`) over, for every slot in order, each replica's id then a 0 byte.
    digest: String,
    /// Slots each member holds at position 0, in the order of `members`.
    primaries: Vec<usize>,
    /// The replica sets of slots 0..8.
    first_slots: Vec<Vec<String>>,
}

fn digest(p: &Placement) -> String {
    let mut bytes = Vec::new();
    for slot in 0..SLOTS as u16 {
        for m in p.replicas(slot) {
            bytes.extend_from_slice(m.id.as_bytes());
            bytes.push(0);
        }
    }
    format!("{:016x}", id_hash(&bytes))
}

fn step(p: &Placement, members: &[(String, u32)]) -> Step {
    let counts = p.counts(0);
    let primaries = members
        .iter()
        .map(|(id, _)| {
            p.members()
                .iter()
                .position(|m| &m.id == id)
                .map_or(0, |i| counts[i])
        })
        .collect();
    Step {
        members: members.to_vec(),
        digest: digest(p),
        primaries,
        first_slots: (0..8)
            .map(|s| p.replicas(s).map(|m| m.id.clone()).collect())
            .collect(),
    }
}

/// The chains: joins, a leave, a heavier member, for rf 1 and 3.
fn generate() -> Vectors {
    let lists: Vec<Vec<(&str, u32)>> = vec![
        vec![("node-a", 1), ("node-b", 1), ("node-c", 1)],
        vec![("node-a", 1), ("node-b", 1), ("node-c", 1), ("node-d", 1)],
        vec![("node-a", 1), ("node-c", 1), ("node-d", 1)],
        vec![("node-a", 1), ("node-c", 1), ("node-d", 1), ("node-e", 2)],
        vec![("node-c", 1), ("node-d", 1), ("node-e", 2)],
    ];
    let chains = [1, 3]
        .into_iter()
        .map(|rf| {
            let mut steps = Vec::new();
            let mut previous: Option<Placement> = None;
            for list in &lists {
                let members: Vec<Member> = list.iter().map(|&(id, w)| Member::new(id, w)).collect();
                let next = match &previous {
                    None => Placement::compute(&members, rf).unwrap(),
                    Some(p) => p.rebalance(&members, rf).unwrap(),
                };
                let named: Vec<(String, u32)> =
                    list.iter().map(|&(id, w)| (id.to_owned(), w)).collect();
                steps.push(step(&next, &named));
                previous = Some(next);
            }
            Chain { rf, steps }
        })
        .collect();
    Vectors {
        spec_version: dcache_placement::SPEC_VERSION,
        chains,
    }
}

#[test]
fn rebalance_follows_the_pinned_chains() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rebalance_vectors.json");
    let generated = generate();
    if std::env::var_os("DCACHE_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap();
        std::fs::write(path, text + "\n").unwrap();
    }
    let pinned: Vectors = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(pinned.spec_version, dcache_placement::SPEC_VERSION);
    for (chain, want) in generated.chains.iter().zip(&pinned.chains) {
        for (i, (got, want)) in chain.steps.iter().zip(&want.steps).enumerate() {
            assert_eq!(got, want, "rf {} step {i}", chain.rf);
        }
    }
    assert_eq!(generated, pinned);
}
