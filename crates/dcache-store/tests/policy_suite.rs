//! The shared conformance suite: every eviction policy passes these, through the trait and
//! through a store that uses it. Policy-specific behaviour is tested after the shared part.

use dcache_store::policy::{EvictionPolicy, Lfu, Lru, RandomPolicy};
use dcache_store::{Lookup, PolicyName, Store, StoreConfig, Value};

fn policies() -> Vec<(&'static str, Box<dyn EvictionPolicy>)> {
    vec![
        ("lru", Box::new(Lru::default())),
        ("lfu", Box::new(Lfu::default())),
        ("random", Box::new(RandomPolicy::new(42))),
    ]
}

#[test]
fn victims_are_live_and_removed_slots_never_come_back() {
    for (name, mut policy) in policies() {
        for slot in 0..100 {
            policy.insert(slot);
        }
        for slot in (0..100).step_by(2) {
            policy.remove(slot);
        }
        let mut evicted = Vec::new();
        while let Some(victim) = policy.victim(&mut |_| true) {
            assert!(victim % 2 == 1, "{name}: victim {victim} was removed");
            assert!(!evicted.contains(&victim), "{name}: victim {victim} twice");
            evicted.push(victim);
            policy.remove(victim);
        }
        assert_eq!(evicted.len(), 50, "{name}: every live slot is evicted once");
    }
}

#[test]
fn victims_respect_eligibility() {
    for (name, mut policy) in policies() {
        for slot in 0..64 {
            policy.insert(slot);
            policy.access(slot);
        }
        for _ in 0..8 {
            let victim = policy
                .victim(&mut |slot| slot % 8 == 3)
                .expect("an eligible slot");
            assert_eq!(victim % 8, 3, "{name}");
            policy.remove(victim);
        }
        assert_eq!(policy.victim(&mut |_| false), None, "{name}");
    }
}

#[test]
fn slots_are_reused_after_clear_and_remove() {
    for (name, mut policy) in policies() {
        for slot in 0..10 {
            policy.insert(slot);
        }
        policy.clear();
        assert_eq!(
            policy.victim(&mut |_| true),
            None,
            "{name}: empty after clear"
        );
        policy.insert(3);
        policy.access(3);
        assert_eq!(policy.victim(&mut |_| true), Some(3), "{name}");
        policy.remove(3);
        policy.insert(3);
        assert_eq!(policy.victim(&mut |_| true), Some(3), "{name}");
    }
}

fn all_policy_names() -> Vec<PolicyName> {
    PolicyName::ALL
        .iter()
        .filter(|n| **n != "noeviction")
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn every_policy_keeps_a_store_within_its_entry_budget() {
    for policy in all_policy_names() {
        let store = Store::new(
            StoreConfig::default()
                .shards(1)
                .max_entries(100)
                .policy(policy),
        );
        let now = 1_800_000_000_000;
        for i in 0..1_000u32 {
            let bytes = i.to_be_bytes();
            let key = store.key(&bytes);
            // Volatile policies need keys with a TTL to evict.
            store.lock(&key).set(
                &key,
                Value::Str(b"v"),
                Some(now + 1_000_000 + u64::from(i)),
                false,
                now,
            );
        }
        assert_eq!(store.len(), 100, "{policy}");
        assert_eq!(store.stats().evicted, 900, "{policy}");
    }
}

#[test]
fn every_policy_keeps_a_store_within_its_memory_budget() {
    for policy in all_policy_names() {
        let budget = 64 * 1024;
        let store = Store::new(
            StoreConfig::default()
                .shards(4)
                .maxmemory(budget)
                .policy(policy),
        );
        let now = 1_800_000_000_000;
        for i in 0..10_000u32 {
            let bytes = i.to_be_bytes();
            let key = store.key(&bytes);
            let mut shard = store.lock(&key);
            shard
                .check_room()
                .expect("an evicting policy always makes room");
            shard.set(
                &key,
                Value::Str(&[7; 100]),
                Some(now + 1_000_000),
                false,
                now,
            );
        }
        let used = store.used_memory();
        assert!(used <= budget, "{policy}: used {used} > budget {budget}");
        assert!(
            used > budget * 3 / 4,
            "{policy}: used {used} should fill most of {budget}"
        );
    }
}

#[test]
fn volatile_policies_never_evict_persistent_keys() {
    for policy in all_policy_names()
        .into_iter()
        .filter(|p| p.to_string().starts_with("volatile"))
    {
        let store = Store::new(
            StoreConfig::default()
                .shards(1)
                .max_entries(50)
                .policy(policy),
        );
        let now = 1_800_000_000_000;
        for i in 0..40u32 {
            let bytes = format!("persistent:{i}");
            let key = store.key(bytes.as_bytes());
            store
                .lock(&key)
                .set(&key, Value::Str(b"v"), None, false, now);
        }
        for i in 0..100u32 {
            let bytes = format!("volatile:{i}");
            let key = store.key(bytes.as_bytes());
            store
                .lock(&key)
                .set(&key, Value::Str(b"v"), Some(now + 60_000), false, now);
        }
        for i in 0..40u32 {
            let bytes = format!("persistent:{i}");
            let key = store.key(bytes.as_bytes());
            assert!(
                store.lock(&key).get(&key, now, Lookup::Peek).is_some(),
                "{policy}: {bytes}"
            );
        }
        assert_eq!(store.len(), 50, "{policy}");
    }
}

#[test]
fn lru_evicts_in_exact_recency_order() {
    let mut lru = Lru::default();
    for slot in 0..5 {
        lru.insert(slot);
    }
    lru.access(0);
    lru.access(2);
    let mut order = Vec::new();
    while let Some(v) = lru.victim(&mut |_| true) {
        order.push(v);
        lru.remove(v);
    }
    assert_eq!(order, [1, 3, 4, 0, 2]);
}

#[test]
fn lfu_keeps_frequent_keys_through_a_scan() {
    let mut lfu = Lfu::default();
    for slot in 0..10 {
        lfu.insert(slot);
        for _ in 0..5 {
            lfu.access(slot);
        }
    }
    // A scan of one-hit keys must be evicted before any of the hot ones.
    for slot in 10..1_000 {
        lfu.insert(slot);
        let victim = lfu.victim(&mut |_| true).unwrap();
        assert!(victim >= 10, "hot slot {victim} evicted by a scan");
        lfu.remove(victim);
    }
    assert_eq!(lfu.frequency(3), Some(6));
}

#[test]
fn lfu_ages_so_that_old_popularity_decays() {
    let mut lfu = Lfu::default();
    // Slot 0 was very popular long ago.
    lfu.insert(0);
    for _ in 0..200 {
        lfu.access(0);
    }
    let before = lfu.frequency(0).unwrap();
    // Later traffic goes to other slots only.
    for slot in 1..=10 {
        lfu.insert(slot);
    }
    for round in 0..2_000u32 {
        lfu.access(1 + round % 10);
    }
    let after = lfu.frequency(0).unwrap();
    assert!(
        after < before / 2,
        "frequency {before} should have decayed, is {after}"
    );
    assert!(
        lfu.frequency(1).unwrap() > after,
        "current popularity outranks old"
    );
}

#[test]
fn random_eviction_is_spread_over_all_keys() {
    let mut policy = RandomPolicy::new(7);
    for slot in 0..100 {
        policy.insert(slot);
    }
    let mut hits = [0u32; 100];
    for _ in 0..10_000 {
        hits[policy.victim(&mut |_| true).unwrap() as usize] += 1;
    }
    assert!(
        hits.iter().all(|&h| h > 40 && h < 200),
        "uneven picks: {hits:?}"
    );
}
