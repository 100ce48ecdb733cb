//! The shared conformance suite: every eviction policy passes these, through the trait and
//! through a store that uses it. Policy-specific behaviour is tested after the shared part.

use dcache_store::policy::{EvictionPolicy, Lfu, Lru, RandomPolicy, S3Fifo, Sieve, WTinyLfu};
use dcache_store::{Lookup, PolicyName, Store, StoreConfig, Value};

fn policies() -> Vec<(&'static str, Box<dyn EvictionPolicy>)> {
    vec![
        ("lru", Box::new(Lru::default())),
        ("lfu", Box::new(Lfu::default())),
        ("random", Box::new(RandomPolicy::new(42))),
        ("sieve", Box::new(Sieve::default())),
        ("s3fifo", Box::new(S3Fifo::default())),
        ("w-tinylfu", Box::new(WTinyLfu::default())),
    ]
}

/// A well-spread stand-in for a key's hash.
fn key_hash(cell: u32) -> u64 {
    (u64::from(cell) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[test]
fn victims_are_live_and_removed_cells_never_come_back() {
    for (name, mut policy) in policies() {
        for cell in 0..100 {
            policy.insert(cell, key_hash(cell));
        }
        for cell in (0..100).step_by(2) {
            policy.remove(cell, key_hash(cell));
        }
        let mut evicted = Vec::new();
        while let Some(victim) = policy.victim(&mut |_| true) {
            assert!(victim % 2 == 1, "{name}: victim {victim} was removed");
            assert!(!evicted.contains(&victim), "{name}: victim {victim} twice");
            evicted.push(victim);
            policy.remove(victim, key_hash(victim));
        }
        assert_eq!(evicted.len(), 50, "{name}: every live cell is evicted once");
    }
}

#[test]
fn victims_respect_eligibility() {
    for (name, mut policy) in policies() {
        for cell in 0..64 {
            policy.insert(cell, key_hash(cell));
            policy.access(cell);
        }
        for _ in 0..8 {
            let victim = policy
                .victim(&mut |cell| cell % 8 == 3)
                .unwrap_or_else(|| panic!("{name}: an eligible cell"));
            assert_eq!(victim % 8, 3, "{name}");
            policy.remove(victim, key_hash(victim));
        }
        assert_eq!(policy.victim(&mut |_| false), None, "{name}");
    }
}

#[test]
fn cells_are_reused_after_clear_and_remove() {
    for (name, mut policy) in policies() {
        for cell in 0..10 {
            policy.insert(cell, key_hash(cell));
        }
        policy.clear();
        assert_eq!(
            policy.victim(&mut |_| true),
            None,
            "{name}: empty after clear"
        );
        policy.insert(3, key_hash(3));
        policy.access(3);
        assert_eq!(policy.victim(&mut |_| true), Some(3), "{name}");
        policy.remove(3, key_hash(3));
        policy.insert(3, key_hash(3));
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
            let _room = store
                .admit(&key, dcache_store::write_cost(104))
                .expect("an evicting policy always makes room");
            store.lock(&key).set(
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
    for cell in 0..5 {
        lru.insert(cell, key_hash(cell));
    }
    lru.access(0);
    lru.access(2);
    let mut order = Vec::new();
    while let Some(v) = lru.victim(&mut |_| true) {
        order.push(v);
        lru.remove(v, key_hash(v));
    }
    assert_eq!(order, [1, 3, 4, 0, 2]);
}

#[test]
fn lfu_keeps_frequent_keys_through_a_scan() {
    let mut lfu = Lfu::default();
    for cell in 0..10 {
        lfu.insert(cell, key_hash(cell));
        for _ in 0..5 {
            lfu.access(cell);
        }
    }
    // A scan of one-hit keys must be evicted before any of the hot ones.
    for cell in 10..1_000 {
        lfu.insert(cell, key_hash(cell));
        let victim = lfu.victim(&mut |_| true).unwrap();
        assert!(victim >= 10, "hot cell {victim} evicted by a scan");
        lfu.remove(victim, key_hash(victim));
    }
    assert_eq!(lfu.frequency(3), Some(6));
}

#[test]
fn lfu_ages_so_that_old_popularity_decays() {
    let mut lfu = Lfu::default();
    // Cell 0 was very popular long ago.
    lfu.insert(0, key_hash(0));
    for _ in 0..200 {
        lfu.access(0);
    }
    let before = lfu.frequency(0).unwrap();
    // Later traffic goes to other cells only.
    for cell in 1..=10 {
        lfu.insert(cell, key_hash(cell));
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
    for cell in 0..100 {
        policy.insert(cell, key_hash(cell));
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

/// Evicts one victim and returns it.
fn evict(policy: &mut dyn EvictionPolicy) -> u32 {
    let victim = policy.victim(&mut |_| true).expect("a victim");
    policy.remove(victim, key_hash(victim));
    victim
}

#[test]
fn sieve_spares_visited_entries_and_keeps_its_hand() {
    let mut sieve = Sieve::default();
    for cell in 0..6 {
        sieve.insert(cell, key_hash(cell));
    }
    sieve.access(0);
    sieve.access(2);
    // The hand starts at the oldest entry, clears 0's bit, passes it and stops at 1.
    assert_eq!(evict(&mut sieve), 1);
    // It goes on from where it stopped: 2 is spared, 3 goes; 0 is not looked at again yet.
    assert_eq!(evict(&mut sieve), 3);
    // A new entry goes in at the head, which the hand reaches before it wraps round to the tail.
    sieve.insert(1, key_hash(1));
    sieve.access(4);
    assert_eq!(evict(&mut sieve), 5);
    assert_eq!(evict(&mut sieve), 1);
    // Wrapped round: 0 and 2 lost their bits on the first pass, and 0 is the oldest.
    assert_eq!(evict(&mut sieve), 0);
    assert_eq!(evict(&mut sieve), 2);
    assert_eq!(evict(&mut sieve), 4);
}

#[test]
fn s3fifo_filters_one_hit_wonders_and_remembers_what_it_filtered() {
    let mut s3 = S3Fifo::default();
    // Ten entries hit twice in the small queue, then a scan of 1,000 entries seen once, in a
    // cache of 20: the scan must go through the small queue without touching the ten.
    for cell in 0..10 {
        s3.insert(cell, key_hash(cell));
        s3.access(cell);
        s3.access(cell);
    }
    for cell in 10..1_010 {
        s3.insert(cell, key_hash(cell));
        if cell >= 20 {
            let victim = evict(&mut s3);
            assert!(victim >= 10, "hot cell {victim} evicted by a scan");
        }
    }
    // A key filtered out recently (the ghost remembers as many as the cache holds) that comes
    // back is admitted to the main queue: it outlives newer one-hit entries.
    let returning = key_hash(995);
    let victim = evict(&mut s3);
    assert!(victim >= 1_000, "the scan's tail goes first, got {victim}");
    s3.insert(5_000, returning);
    for cell in 6_000..6_030 {
        s3.insert(cell, key_hash(cell));
        let victim = evict(&mut s3);
        assert_ne!(victim, 5_000, "the returning key stays in the main queue");
    }
}

#[test]
fn w_tinylfu_admits_by_frequency() {
    let mut policy = WTinyLfu::default();
    // A cache of 200: 100 keys seen often, then 100 seen once.
    for cell in 0..100 {
        policy.insert(cell, key_hash(cell));
        for _ in 0..4 {
            policy.access(cell);
        }
    }
    for cell in 100..200 {
        policy.insert(cell, key_hash(cell));
    }
    // A scan of new keys: each one leaves the window as a candidate less frequent than any
    // victim in the main space, so the candidates are what goes.
    for cell in 200..2_000 {
        policy.insert(cell, key_hash(cell));
        let victim = evict(&mut policy);
        assert!(
            victim >= 100,
            "frequent cell {victim} lost to a one-hit key"
        );
    }
    assert!(policy.frequency(7).unwrap() >= 4);
    // A new key requested more often than the main space's coldest entries is admitted: it
    // survives while colder entries go.
    policy.insert(9_000, key_hash(9_000));
    for _ in 0..6 {
        policy.access(9_000);
    }
    for cell in 10_000..10_010 {
        policy.insert(cell, key_hash(cell));
        let victim = evict(&mut policy);
        assert_ne!(victim, 9_000, "a frequent newcomer is admitted");
    }
}
