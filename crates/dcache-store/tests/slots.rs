//! The store's index by cluster slot: counting, listing and deleting one slot, and the index kept
//! in step with every way a key comes and goes.

use std::collections::BTreeSet;

use dcache_placement::slot;
use dcache_store::{Kind, PolicyName, ScanFilter, Store, StoreConfig, Value};
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000_000;

fn set(store: &Store, key: &[u8], value: &[u8], expire_at: Option<u64>) {
    let key = store.key(key);
    store
        .lock(&key)
        .set(&key, Value::Str(value), expire_at, false, NOW);
}

/// The keys of `slot` as a full scan of the store sees them (live ones only).
fn scanned(store: &Store, slot_of: u16, now: u64) -> BTreeSet<Vec<u8>> {
    let mut found = BTreeSet::new();
    let mut cursor = 0;
    loop {
        cursor = store.scan(cursor, 100, now, ScanFilter::default(), |e| {
            if slot(e.key()) == slot_of {
                found.insert(e.key().to_vec());
            }
        });
        if cursor == 0 {
            return found;
        }
    }
}

fn listed(store: &Store, slot_of: u16) -> BTreeSet<Vec<u8>> {
    let keys = store.keys_in_slot(slot_of, usize::MAX);
    assert_eq!(keys.len(), store.count_in_slot(slot_of));
    keys.iter().map(|k| k.to_vec()).collect()
}

#[test]
fn a_slot_is_counted_listed_and_deleted_alone() {
    let store = Store::new(StoreConfig::default().shards(4));
    let (a, b) = (slot(b"a"), slot(b"b"));
    for i in 0..100 {
        set(&store, format!("{{a}}{i}").as_bytes(), b"v", None);
        set(&store, format!("{{b}}{i}").as_bytes(), b"v", None);
        set(&store, format!("other{i}").as_bytes(), b"v", None);
    }
    assert_eq!((store.count_in_slot(a), store.count_in_slot(b)), (100, 100));
    assert_eq!(listed(&store, a), scanned(&store, a, NOW));
    assert_eq!(store.keys_in_slot(a, 7).len(), 7);
    assert!(
        store
            .keys_in_slot(a, 7)
            .iter()
            .all(|k| k.starts_with(b"{a}"))
    );

    let before = store.used_memory();
    let mut deleted = 0;
    loop {
        let n = store.delete_slot(a, 30);
        assert!(n <= 30, "bounded work per call");
        if n == 0 {
            break;
        }
        deleted += n;
    }
    assert_eq!(deleted, 100);
    assert_eq!(store.count_in_slot(a), 0);
    assert!(scanned(&store, a, NOW).is_empty());
    assert_eq!(store.count_in_slot(b), 100);
    assert_eq!(store.len(), 200 + store.count_in_slot(a));
    assert!(store.used_memory() < before, "deleting a slot frees memory");
}

/// A standalone node's store keeps no index by slot until a slot is asked for; then it builds
/// one, and the answers are those of a store that always had it.
#[test]
fn a_store_without_the_index_answers_the_same_from_the_first_slot_query() {
    let stores =
        [true, false].map(|on| Store::new(StoreConfig::default().shards(4).slot_index(on)));
    let a = slot(b"a");
    for store in &stores {
        for i in 0..200 {
            set(store, format!("{{a}}{i}").as_bytes(), b"v", None);
            set(store, format!("other{i}").as_bytes(), b"v", None);
        }
        for i in (0..200).step_by(3) {
            let bytes = format!("{{a}}{i}");
            let key = store.key(bytes.as_bytes());
            assert!(store.lock(&key).delete(&key, NOW));
        }
    }
    // Until it has the index, a shard counts no memory for it; once built, it counts the same.
    let used = |store: &Store| store.lock_shard(store.shard_of_slot(a)).used();
    assert!(used(&stores[1]) < used(&stores[0]));
    let answers = stores.each_ref().map(|store| {
        let mut keys = store.keys_in_slot(a, usize::MAX);
        keys.sort();
        (store.count_in_slot(a), keys)
    });
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1].0, 133);
    assert_eq!(used(&stores[1]), used(&stores[0]));
    assert_eq!(listed(&stores[1], a), scanned(&stores[1], a, NOW));
    // Built once, the index follows later writes, and deleting the slot finds every key.
    let late = &stores[1];
    set(late, b"{a}late", b"v", None);
    let key = late.key(b"{a}0");
    assert!(!late.lock(&key).delete(&key, NOW), "deleted above");
    let key = late.key(b"{a}1");
    assert!(late.lock(&key).delete(&key, NOW));
    assert_eq!(listed(late, a), scanned(late, a, NOW));
    while late.delete_slot(a, 50) > 0 {}
    assert!(scanned(late, a, NOW).is_empty());
    assert_eq!(late.len(), 200);
}

#[test]
fn the_index_follows_deletes_expiry_eviction_renames_and_empty_hashes() {
    let slots: Vec<u16> = [&b"x"[..], b"y", b"z"].iter().map(|t| slot(t)).collect();
    let store = Store::new(StoreConfig::default().shards(2));
    for i in 0..300 {
        let key = format!("{{x}}{i}");
        set(
            &store,
            key.as_bytes(),
            b"value",
            (i % 3 == 0).then_some(NOW + 10),
        );
    }
    // Deletes, overwrites and a rename into another slot.
    for i in (1..300).step_by(3) {
        let bytes = format!("{{x}}{i}");
        let key = store.key(bytes.as_bytes());
        assert!(store.lock(&key).delete(&key, NOW));
    }
    set(&store, b"{x}2", b"overwritten with a longer value", None);
    {
        let (src, dst) = (store.key(b"{x}5"), store.key(b"{y}renamed"));
        let mut locked = store.lock_many(&[src, dst]);
        let entry = locked.shard(&src).remove(&src, NOW).unwrap();
        locked
            .shard(&dst)
            .set(&dst, entry.value.as_value(), entry.expire_at, false, NOW);
    }
    // A hash emptied by its last field's removal goes, as in Redis.
    let h = store.key(b"{z}hash");
    {
        let mut shard = store.lock(&h);
        let mut m = shard.modify(&h, NOW, Some(Kind::Hash)).unwrap();
        m.hash_mut().unwrap().insert(b"f", b"v");
    }
    assert_eq!(store.count_in_slot(slots[2]), 1);
    {
        let mut shard = store.lock(&h);
        let mut m = shard.modify(&h, NOW, None).unwrap();
        m.hash_mut().unwrap().remove(b"f");
    }
    for &s in &slots {
        assert_eq!(listed(&store, s), scanned(&store, s, NOW), "slot {s}");
    }
    // Expiry: the 100 keys with a TTL are counted until reclaimed, then gone from the index.
    assert_eq!(store.count_in_slot(slots[0]), 100 + 99);
    while store.expire_cycle(NOW + 10, 1000) > 0 {}
    assert_eq!(store.count_in_slot(slots[0]), 99);
    assert_eq!(
        listed(&store, slots[0]),
        scanned(&store, slots[0], NOW + 10)
    );
    // Eviction.
    store.set_policy("allkeys-lru".parse::<PolicyName>().unwrap());
    store.set_maxmemory(store.used_memory() / 2);
    assert!(store.stats().evicted > 0);
    for &s in &slots {
        assert_eq!(listed(&store, s), scanned(&store, s, NOW + 10), "slot {s}");
    }
    // Clearing.
    store.clear();
    assert!(slots.iter().all(|&s| store.count_in_slot(s) == 0));
    set(&store, b"{x}again", b"v", None);
    assert_eq!(store.count_in_slot(slots[0]), 1);
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u8, usize),
    Delete(u8, u8),
    HashField(u8, u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u8, 0..40u8, 0..64usize).prop_map(|(t, k, n)| Op::Set(t, k, n)),
        (0..4u8, 0..40u8).prop_map(|(t, k)| Op::Delete(t, k)),
        (0..4u8, 0..40u8, any::<bool>()).prop_map(|(t, k, add)| Op::HashField(t, k, add)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the sequence of writes (and the evictions a small budget forces), each slot's
    /// listing is exactly the keys a full scan finds in it.
    #[test]
    fn listing_a_slot_matches_a_full_scan(ops in proptest::collection::vec(op(), 1..300)) {
        let store = Store::new(
            StoreConfig::default()
                .shards(4)
                .policy("allkeys-lru".parse::<PolicyName>().unwrap())
                .maxmemory(16 * 1024),
        );
        let tags = ["a", "b", "c", "d"];
        for op in ops {
            match op {
                Op::Set(t, k, n) => {
                    let key = format!("{{{}}}{k}", tags[t as usize]);
                    let value = vec![b'v'; n * 16];
                    let k = store.key(key.as_bytes());
                    let _room = store.admit(&k, dcache_store::write_cost(key.len() + value.len()));
                    store.lock(&k).set(&k, Value::Str(&value), None, false, NOW);
                }
                Op::Delete(t, k) => {
                    let key = format!("{{{}}}{k}", tags[t as usize]);
                    let k = store.key(key.as_bytes());
                    store.lock(&k).delete(&k, NOW);
                }
                Op::HashField(t, k, add) => {
                    let key = format!("{{{}}}{k}", tags[t as usize]);
                    let k = store.key(key.as_bytes());
                    let mut shard = store.lock(&k);
                    let create = add.then_some(Kind::Hash);
                    if let Some(mut m) = shard.modify(&k, NOW, create)
                        && let Some(mut h) = m.hash_mut()
                    {
                        if add { h.insert(b"f", b"v"); } else { h.remove(b"f"); }
                    }
                }
            }
        }
        for tag in tags {
            let s = slot(tag.as_bytes());
            prop_assert_eq!(listed(&store, s), scanned(&store, s, NOW));
        }
    }
}
