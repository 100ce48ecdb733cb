//! Belady's optimum (MIN): on a miss with a full cache, evict the entry whose next use is
//! farthest in the future (or never). No policy can hit more often on the same trace, so it is
//! the ceiling every policy is measured against. L. A. Belady, "A study of replacement algorithms
//! for a virtual-storage computer", IBM Systems Journal 5(2), 1966.

use std::collections::{BinaryHeap, HashMap};

/// Hits of Belady's optimum over `trace` with room for `capacity` entries. O(n log n).
#[must_use]
pub fn hits(trace: &[u64], capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    // next[i]: where trace[i] is next requested, or usize::MAX for never.
    let mut next = vec![usize::MAX; trace.len()];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (i, &key) in trace.iter().enumerate().rev() {
        if let Some(&j) = seen.get(&key) {
            next[i] = j;
        }
        seen.insert(key, i);
    }
    // In the cache: key → its next use. The heap may hold stale (next use, key) pairs; a pair is
    // current only when it matches the map.
    let mut cached: HashMap<u64, usize> = HashMap::with_capacity(capacity);
    let mut farthest: BinaryHeap<(usize, u64)> = BinaryHeap::new();
    let mut hits = 0;
    for (i, &key) in trace.iter().enumerate() {
        if cached.contains_key(&key) {
            hits += 1;
        } else if cached.len() == capacity {
            while let Some((use_at, victim)) = farthest.pop() {
                if cached.get(&victim) == Some(&use_at) {
                    cached.remove(&victim);
                    break;
                }
            }
        }
        cached.insert(key, next[i]);
        farthest.push((next[i], key));
        if farthest.len() > 4 * capacity + 64 {
            // Drop the stale pairs so the heap stays proportional to the cache.
            farthest = cached.iter().map(|(&k, &u)| (u, k)).collect();
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::hits;

    /// The most hits any eviction choices can give: tries every victim at every full miss.
    fn brute_force(trace: &[u64], capacity: usize, cache: &mut Vec<u64>, at: usize) -> u64 {
        let Some(&key) = trace.get(at) else { return 0 };
        if cache.contains(&key) {
            return 1 + brute_force(trace, capacity, cache, at + 1);
        }
        if cache.len() < capacity {
            cache.push(key);
            let best = brute_force(trace, capacity, cache, at + 1);
            cache.pop();
            return best;
        }
        let mut best = 0;
        for victim in 0..cache.len() {
            let old = std::mem::replace(&mut cache[victim], key);
            best = best.max(brute_force(trace, capacity, cache, at + 1));
            cache[victim] = old;
        }
        best
    }

    #[test]
    fn matches_exhaustive_search_on_small_traces() {
        // A fixed generator (printed on failure) over small key spaces.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for case in 0..300 {
            let len = 4 + case % 9;
            let keys = 2 + case % 5;
            let trace: Vec<u64> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state % keys as u64
                })
                .collect();
            for capacity in 1..=3 {
                let best = brute_force(&trace, capacity, &mut Vec::new(), 0);
                assert_eq!(
                    hits(&trace, capacity),
                    best,
                    "trace {trace:?}, capacity {capacity}"
                );
            }
        }
    }

    #[test]
    fn never_worse_than_a_cache_that_holds_everything_allows() {
        let trace = [1, 2, 3, 1, 2, 3, 1, 2, 3];
        assert_eq!(hits(&trace, 3), 6);
        assert_eq!(hits(&trace, 0), 0);
        // A loop one larger than the cache: LRU gets nothing, MIN keeps most of it.
        assert_eq!(hits(&trace, 2), 3);
    }
}
