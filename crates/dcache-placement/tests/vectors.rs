//! Key → slot test vectors, produced by Redis itself (`CLUSTER KEYSLOT` on a cluster-enabled
//! redis-server), so that dcache's slots are Redis Cluster's. Other implementations of
//! `docs/HASHING.md` can check themselves against the same file.

use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    keys: Vec<KeyVector>,
}

#[derive(Deserialize)]
struct KeyVector {
    key: String,
    slot: u16,
}

#[test]
fn slots_match_redis_cluster() {
    let text = include_str!("vectors.json");
    let vectors: Vectors = serde_json::from_str(text).unwrap();
    assert!(vectors.keys.len() >= 20);
    for v in &vectors.keys {
        assert_eq!(
            dcache_placement::slot(v.key.as_bytes()),
            v.slot,
            "key {:?}",
            v.key
        );
    }
}
