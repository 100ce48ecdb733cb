//! The store's behaviour: TTLs (lazy and active), memory accounting, budgets, scans, in-place
//! changes. Time is passed in, so nothing here waits.

use std::collections::HashSet;

use dcache_store::{HashValue, Kind, Lookup, ScanFilter, Store, StoreConfig, StoreError, Value};

const NOW: u64 = 1_800_000_000_000;

fn set(store: &Store, key: &str, value: &str, expire_at: Option<u64>) {
    let key = store.key(key.as_bytes());
    store
        .lock(&key)
        .set(&key, Value::Str(value.as_bytes()), expire_at, false, NOW);
}

fn get(store: &Store, key: &str, now: u64) -> Option<Vec<u8>> {
    let key = store.key(key.as_bytes());
    let mut shard = store.lock(&key);
    match shard.get(&key, now, Lookup::Read)?.value() {
        Value::Str(s) => Some(s.to_vec()),
        other => panic!("not a string: {other:?}"),
    }
}

#[test]
fn keys_expire_on_access_at_the_millisecond() {
    let store = Store::new(StoreConfig::default());
    set(&store, "k", "v", Some(NOW + 100));
    assert_eq!(get(&store, "k", NOW + 99).as_deref(), Some(&b"v"[..]));
    assert_eq!(get(&store, "k", NOW + 100), None);
    let stats = store.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.expired, stats.keys),
        (1, 1, 1, 0)
    );
}

#[test]
fn active_expiry_reclaims_keys_nobody_reads() {
    let store = Store::new(StoreConfig::default());
    for i in 0..10_000 {
        set(&store, &format!("k{i}"), "value", Some(NOW + 100));
    }
    set(&store, "forever", "value", None);
    let full = store.used_memory();
    assert_eq!(store.expire_cycle(NOW + 99, usize::MAX), 0);
    // Bounded work per round: each shard reclaims at most 10 keys.
    let first = store.expire_cycle(NOW + 100, 10);
    assert_eq!(first, 10 * store.shard_count());
    while store.expire_cycle(NOW + 100, 10) > 0 {}
    assert_eq!(store.len(), 1);
    assert_eq!(store.stats().expired, 10_000);
    assert!(
        store.used_memory() < full / 1000,
        "memory is reclaimed with the keys"
    );
}

#[test]
fn accounting_returns_to_zero_after_every_kind_of_change() {
    let store = Store::new(StoreConfig::default().shards(2));
    set(&store, "a", "1", None);
    set(&store, "a", "a longer value than before", Some(NOW + 10));
    let key = store.key(b"h");
    {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, Some(Kind::Hash)).unwrap();
        let mut h = m.hash_mut().unwrap();
        h.insert(b"f1", b"v1");
        h.insert(b"f2", b"v2");
        h.insert(b"f1", b"a longer v1");
        m.set_expire(Some(NOW + 1000));
    }
    assert!(store.used_memory() > 0);
    {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, None).unwrap();
        m.set_expire(None);
        let mut h = m.hash_mut().unwrap();
        assert!(h.remove(b"f1") && h.remove(b"f2") && !h.remove(b"f3"));
    }
    // A hash left empty is removed.
    assert!(store.lock(&key).get(&key, NOW, Lookup::Peek).is_none());
    let a = store.key(b"a");
    assert!(store.lock(&a).remove(&a, NOW).is_some());
    assert_eq!(store.used_memory(), 0);
    assert_eq!(store.len(), 0);
}

#[test]
fn lists_sets_and_sorted_sets_are_accounted_emptied_away_and_typed() {
    let store = Store::new(StoreConfig::default().shards(2));
    for (name, kind) in [("l", Kind::List), ("s", Kind::Set), ("z", Kind::ZSet)] {
        let key = store.key(name.as_bytes());
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, Some(kind)).unwrap();
        // A handle of one type gives no other.
        assert!(m.hash_mut().is_none());
        for i in 0..100 {
            let e = format!("e{i}");
            match kind {
                Kind::List => m.list_mut().unwrap().push_front(e.as_bytes()),
                Kind::Set => assert!(m.set_mut().unwrap().insert(e.as_bytes())),
                _ => assert!(m.zset_mut().unwrap().insert(e.as_bytes(), f64::from(i))),
            }
        }
    }
    let names: Vec<_> = ["l", "s", "z"]
        .iter()
        .map(|k| {
            let key = store.key(k.as_bytes());
            store
                .lock(&key)
                .get(&key, NOW, Lookup::Peek)
                .unwrap()
                .value()
                .type_name()
        })
        .collect();
    assert_eq!(names, ["list", "set", "zset"]);
    let full = store.used_memory();
    assert!(full > 3 * 100 * 3, "every element counts: {full}");

    // Emptied by its commands, each key goes, and its memory with it.
    for name in ["l", "s", "z"] {
        let key = store.key(name.as_bytes());
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, None).unwrap();
        for i in 0..100 {
            let e = format!("e{i}");
            match name {
                "l" => assert!(m.list_mut().unwrap().pop_back().is_some()),
                "s" => assert!(m.set_mut().unwrap().remove(e.as_bytes())),
                _ => assert!(m.zset_mut().unwrap().remove(e.as_bytes())),
            }
        }
    }
    assert_eq!((store.used_memory(), store.len()), (0, 0));

    // A large one deleted (freed in the background) leaves nothing accounted either.
    let key = store.key(b"big");
    {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, Some(Kind::Set)).unwrap();
        for i in 0..10_000 {
            m.set_mut().unwrap().insert(format!("m{i}").as_bytes());
        }
    }
    assert!(store.lock(&key).delete(&key, NOW));
    assert_eq!((store.used_memory(), store.len()), (0, 0));
}

/// Writes `value_len`-byte values through admission until `count` writes or the first refusal;
/// checks the budget after every write. Returns the refusal, if any.
fn fill(store: &Store, budget: usize, value_len: usize, count: usize) -> Option<StoreError> {
    let value = vec![b'v'; value_len];
    for i in 0..count {
        let bytes = format!("key:{i}");
        let key = store.key(bytes.as_bytes());
        let room = match store.admit(&key, dcache_store::write_cost(bytes.len() + value_len)) {
            Ok(room) => room,
            Err(e) => return Some(e),
        };
        store
            .lock(&key)
            .set(&key, Value::Str(&value), None, false, NOW);
        drop(room);
        assert!(store.settle(), "nothing left to evict after write {i}");
        let used = store.used_memory();
        assert!(
            used <= budget,
            "write {i} of {value_len} bytes: used {used} > budget {budget}"
        );
    }
    None
}

#[test]
fn the_budget_holds_for_the_whole_store_whatever_the_value_size() {
    // 64 shards and values up to a third of the budget: each value is far larger than a 64th.
    let budget = 4 << 20;
    for name in dcache_store::PolicyName::ALL
        .iter()
        .filter(|n| n.starts_with("allkeys"))
    {
        for value_len in [10, 1_000, 100_000, 600_000, 1_400_000] {
            let store = Store::new(
                StoreConfig::default()
                    .shards(64)
                    .maxmemory(budget)
                    .policy(name.parse().unwrap()),
            );
            let writes = (3 * budget / dcache_store::write_cost(value_len)).max(20);
            assert_eq!(fill(&store, budget, value_len, writes), None, "{name}");
            assert!(store.stats().evicted > 0, "{name} {value_len}");
            // Eviction made room for every write and no more: the store is full but for less
            // than one value (a write's room is not counted twice while it is being written).
            let used = store.used_memory();
            assert!(
                used + dcache_store::write_cost(value_len + 16) > budget,
                "{name} {value_len}: only {used} of {budget} used"
            );
        }
    }
}

#[test]
fn a_value_larger_than_the_whole_budget_is_refused() {
    let store = Store::new(StoreConfig::default().maxmemory(1 << 20));
    let key = store.key(b"big");
    assert_eq!(
        store.admit(&key, dcache_store::write_cost(2 << 20)).err(),
        Some(StoreError::OutOfMemory)
    );
    // Nothing was evicted for it.
    set(&store, "small", "x", None);
    assert_eq!(
        store.admit(&key, dcache_store::write_cost(2 << 20)).err(),
        Some(StoreError::OutOfMemory)
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn noeviction_refuses_only_when_the_store_is_full() {
    for value_len in [10, 1_000, 60_000] {
        let budget = 8 << 20;
        let store = Store::new(
            StoreConfig::default()
                .shards(64)
                .maxmemory(budget)
                .policy("noeviction".parse().unwrap()),
        );
        let err = fill(&store, budget, value_len, 10_000_000).expect("refused at some point");
        assert_eq!(err, StoreError::OutOfMemory);
        let used = store.used_memory();
        assert!(
            used + dcache_store::write_cost(value_len + 16) > budget * 99 / 100,
            "{value_len}: refused with {used} of {budget} used"
        );
        assert_eq!(store.stats().evicted, 0);
    }
}

#[test]
fn noeviction_refuses_writes_once_over_budget() {
    let store = Store::new(StoreConfig::default().shards(1).maxmemory(10_000));
    let mut written = 0;
    let err = loop {
        let bytes = format!("key:{written}");
        let key = store.key(bytes.as_bytes());
        if let Err(e) = store.admit(&key, dcache_store::write_cost(bytes.len() + 100)) {
            break e;
        }
        store
            .lock(&key)
            .set(&key, Value::Str(&[0; 100]), None, false, NOW);
        written += 1;
        assert!(written < 1_000, "never refused");
    };
    assert_eq!(err, StoreError::OutOfMemory);
    assert_eq!(
        err.to_string(),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    assert_eq!(store.len(), written);
    assert_eq!(store.stats().evicted, 0);
}

#[test]
fn lowering_maxmemory_evicts_at_once() {
    let store = Store::new(
        StoreConfig::default()
            .shards(4)
            .policy("allkeys-lru".parse().unwrap()),
    );
    for i in 0..1_000 {
        set(&store, &format!("k{i}"), "some value", None);
    }
    let used = store.used_memory();
    store.set_maxmemory(used / 2);
    assert!(store.used_memory() <= used / 2);
    assert!(
        store.len() < 600 && store.len() > 400,
        "about half remain: {}",
        store.len()
    );
}

#[test]
fn switching_policy_keeps_every_key_evictable() {
    let store = Store::new(
        StoreConfig::default()
            .shards(1)
            .policy("allkeys-lru".parse().unwrap()),
    );
    for i in 0..100 {
        set(&store, &format!("k{i}"), "v", None);
    }
    store.set_policy("allkeys-lfu".parse().unwrap());
    store.set_policy("allkeys-random".parse().unwrap());
    let used = store.used_memory();
    store.set_maxmemory(1);
    assert_eq!(store.len(), 0, "all {used} bytes evicted");
}

#[test]
fn a_full_scan_visits_every_key_once_and_filters() {
    let store = Store::new(StoreConfig::default().shards(8));
    for i in 0..1_000 {
        set(&store, &format!("user:{i}"), "v", None);
    }
    let key = store.key(b"session:1");
    store.lock(&key).set(
        &key,
        Value::Hash(HashValue::default().view()),
        None,
        false,
        NOW,
    );
    let mut seen = Vec::new();
    let mut cursor = 0;
    let mut rounds = 0;
    loop {
        cursor = store.scan(cursor, 37, NOW, ScanFilter::default(), |e| {
            seen.push(e.key().to_vec())
        });
        rounds += 1;
        if cursor == 0 {
            break;
        }
    }
    assert!(rounds > 10, "COUNT bounds each round");
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 1_001);
    assert_eq!(seen.len(), 1_001);

    let mut hashes = Vec::new();
    let filter = ScanFilter {
        pattern: Some(b"session:*"),
        type_name: Some("hash"),
    };
    let mut cursor = 0;
    loop {
        cursor = store.scan(cursor, 100, NOW, filter, |e| hashes.push(e.key().to_vec()));
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(hashes, vec![b"session:1".to_vec()]);
}

#[test]
fn versions_grow_with_every_write() {
    let store = Store::new(StoreConfig::default().node_id(5));
    let key = store.key(b"k");
    let mut shard = store.lock(&key);
    shard.set(&key, Value::Str(b"1"), None, false, NOW);
    let v1 = shard.get(&key, NOW, Lookup::Peek).unwrap().version();
    shard.set(&key, Value::Str(b"2"), None, false, NOW);
    let v2 = shard.get(&key, NOW, Lookup::Peek).unwrap().version();
    assert!(shard.set_expire(&key, Some(NOW + 5), NOW));
    let v3 = shard.get(&key, NOW, Lookup::Peek).unwrap().version();
    assert!(v1 < v2 && v2 < v3);
    assert_eq!(v3.node(), 5);
}

#[test]
fn random_key_finds_live_keys_only() {
    let store = Store::new(StoreConfig::default().shards(4));
    assert_eq!(store.random_key(NOW, 1), None);
    set(&store, "dead", "v", Some(NOW + 1));
    set(&store, "alive", "v", None);
    for pick in 0..20 {
        assert_eq!(
            store.random_key(NOW + 5, pick).as_deref(),
            Some(&b"alive"[..])
        );
    }
}

#[test]
fn the_budget_holds_with_many_writers_at_once_on_uneven_shards() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let budget = 2 << 20;
    let store = Store::new(
        StoreConfig::default()
            .shards(16)
            .maxmemory(budget)
            .policy("allkeys-lru".parse().unwrap()),
    );
    // Nine keys in ten fall on shard 0; the rest anywhere.
    let keys: Vec<String> = (0..200_000)
        .map(|i| format!("key:{i}"))
        .filter(|k| store.shard_index(&store.key(k.as_bytes())) == 0)
        .take(3_000)
        .chain((0..300).map(|i| format!("elsewhere:{i}")))
        .collect();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let checker = scope.spawn(|| {
            let mut highest = 0;
            while !done.load(Relaxed) {
                highest = highest.max(store.used_memory());
            }
            highest
        });
        let writers: Vec<_> = (0..8u64)
            .map(|t| {
                let (store, keys) = (&store, &keys);
                scope.spawn(move || {
                    let mut rng = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                    for _ in 0..3_000 {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let key = &keys[(rng % keys.len() as u64) as usize];
                        let len = [10, 1_000, 30_000][(rng >> 40) as usize % 3];
                        let key = store.key(key.as_bytes());
                        let room = store
                            .admit(&key, dcache_store::write_cost(key.bytes.len() + len))
                            .expect("LRU always makes room");
                        store
                            .lock(&key)
                            .set(&key, Value::Str(&vec![b'v'; len]), None, false, NOW);
                        drop(room);
                        store.settle();
                    }
                })
            })
            .collect();
        let results: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        // Set before any writer's failure is raised, so that the checker always stops.
        done.store(true, Relaxed);
        let highest = checker.join().unwrap();
        for result in results {
            result.unwrap();
        }
        assert!(
            highest <= budget,
            "used_memory reached {highest} of {budget}"
        );
    });
    assert!(store.used_memory() <= budget);
    assert!(store.stats().evicted > 0);
}
