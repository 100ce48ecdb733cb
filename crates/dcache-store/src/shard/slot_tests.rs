//! The slot index's positions live in the entries (`Entry::slot_pos`): every way an entry is
//! made, rebuilt in place (a longer value, a TTL added or cleared, an aggregate moving inline or
//! out, a string replacing an aggregate) or removed (delete, expiry, eviction, an emptied
//! aggregate) must leave each listed cell's entry holding its position. Checked after every step
//! of a seeded random sequence; a wrong position also trips `SlotLists::remove`'s debug check.

use crate::{Kind, PolicyName, Store, StoreConfig, Value};

const NOW: u64 = 1_800_000_000_000;

fn check(store: &Store) {
    for i in 0..store.shard_count() {
        store.lock_shard(i).check_slot_positions();
    }
}

/// Runs 4000 random steps. Without `slot_index`, the store is made without the index and
/// asked about a slot halfway: the index is built then and kept from there on.
fn run(seed: u64, maxmemory: usize, slot_index: bool) -> Store {
    println!("seed {seed:#x}, maxmemory {maxmemory}, slot_index {slot_index}");
    let mut state = seed | 1;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let store = Store::new(
        StoreConfig::default()
            .shards(4)
            .policy("allkeys-lru".parse::<PolicyName>().expect("a policy"))
            .maxmemory(maxmemory)
            .slot_index(slot_index),
    );
    // A few hash tags, so that slots hold many keys and removals move cells within them.
    let names: Vec<String> = (0..80)
        .map(|i| match i % 5 {
            4 => format!("plain{i}"),
            t => format!("{{t{t}}}k{i}"),
        })
        .collect();
    let mut now = NOW;
    for step in 0..4000 {
        if step == 2000 && !slot_index {
            // Slots 0..shards fall one on each shard: each builds its index now.
            for slot in 0..store.shard_count() as u16 {
                let counted = store.count_in_slot(slot);
                assert_eq!(store.keys_in_slot(slot, usize::MAX).len(), counted);
            }
        }
        now += 1;
        let name = &names[next(names.len() as u64) as usize];
        let key = store.key(name.as_bytes());
        match next(9) {
            0 | 1 => {
                let value = vec![b'v'; next(120) as usize];
                let expire = (next(3) == 0).then(|| now + 1 + next(300));
                let _room = store.admit(&key, crate::write_cost(name.len() + value.len()));
                store
                    .lock(&key)
                    .set(&key, Value::Str(&value), expire, next(2) == 0, now);
            }
            2 => {
                store.lock(&key).delete(&key, now);
            }
            3 => {
                let expire = match next(3) {
                    0 => None,
                    _ => Some(now + 1 + next(300)),
                };
                store.lock(&key).set_expire(&key, expire, now);
            }
            4 => {
                // Past the listpack limit a list leaves its entry for the side table.
                let pushes = if next(4) == 0 { 200 } else { 1 + next(5) };
                let mut shard = store.lock(&key);
                if let Some(mut m) = shard.modify(&key, now, Some(Kind::List))
                    && let Some(list) = m.list_mut()
                {
                    for i in 0..pushes {
                        list.push_back(format!("element-{i:04}").as_bytes());
                    }
                }
            }
            5 => {
                // Popping moves a large list back inline, and its last element deletes the key.
                let pops = if next(3) == 0 { 190 } else { 1 + next(3) };
                let mut shard = store.lock(&key);
                if let Some(mut m) = shard.modify(&key, now, None)
                    && let Some(list) = m.list_mut()
                {
                    for _ in 0..pops {
                        list.pop_front();
                    }
                }
            }
            6 => {
                let mut shard = store.lock(&key);
                if let Some(mut m) = shard.modify(&key, now, None) {
                    m.set_str(b"now a string");
                }
            }
            7 => {
                let mut shard = store.lock(&key);
                let add = next(2) == 0;
                if let Some(mut m) = shard.modify(&key, now, add.then_some(Kind::Hash))
                    && let Some(mut h) = m.hash_mut()
                {
                    if add {
                        h.insert(b"f", b"v");
                    } else {
                        h.remove(b"f");
                    }
                }
            }
            _ => {
                store.expire_cycle(now, 1 + next(10) as usize);
            }
        }
        check(&store);
    }
    assert!(!store.is_empty(), "the sequence leaves keys to check");
    store
}

#[test]
fn every_listed_entry_holds_its_position_through_random_changes() {
    let store = run(0x006b_6579_6261_7365, 0, true);
    assert!(store.stats().expired > 0, "expiry removed keys");
}

#[test]
fn positions_hold_through_evictions_too() {
    let store = run(0x0e71_c7ed, 8 * 1024, true);
    assert!(store.stats().evicted > 0, "the budget evicted keys");
}

#[test]
fn an_index_built_on_the_first_slot_query_is_kept_from_then_on() {
    let store = run(0x5107_0ff5, 0, false);
    assert!(store.stats().expired > 0, "expiry removed keys");
}
