//! Bounded maps: making room for a new key in amortised constant time.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Makes room for one more entry in `map`, which may hold at most `cap` entries.
///
/// When the map is full, every entry for which `lossless` holds is dropped first (forgetting
/// it loses nothing: a new entry would be identical). If that frees fewer than `cap / 16`
/// slots (at least one), the entries that sort first by `order` are dropped until it does.
/// Every full sweep therefore frees a batch, so a stream of new keys costs amortised
/// `O(16)` per insertion rather than `O(cap)`.
pub(crate) fn make_room<K, V, S, O>(
    map: &mut HashMap<K, V, S>,
    cap: usize,
    lossless: impl Fn(&V) -> bool,
    order: impl Fn(&V) -> O,
) where
    K: Hash + Eq + Clone,
    S: BuildHasher,
    O: Ord,
{
    if map.len() < cap {
        return;
    }
    map.retain(|_, value| !lossless(value));
    let want_free = (cap / 16).max(1);
    let target = cap.saturating_sub(want_free);
    if map.len() <= target {
        return;
    }
    let excess = map.len() - target;
    let mut ranked: Vec<(O, K)> = map
        .iter()
        .map(|(key, value)| (order(value), key.clone()))
        .collect();
    if excess < ranked.len() {
        ranked.select_nth_unstable_by(excess, |a, b| a.0.cmp(&b.0));
        ranked.truncate(excess);
    }
    for (_, key) in ranked {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossless_entries_go_first_then_the_oldest() {
        let mut map: HashMap<u32, (bool, u32)> = (0..32).map(|i| (i, (i % 2 == 0, i))).collect();
        // 16 lossless entries (the even ones) free more than cap / 16 = 2 slots.
        make_room(&mut map, 32, |v| v.0, |v| v.1);
        assert_eq!(map.len(), 16);
        assert!(map.keys().all(|k| k % 2 == 1));

        let mut map: HashMap<u32, (bool, u32)> = (0..32).map(|i| (i, (false, 100 - i))).collect();
        make_room(&mut map, 32, |v| v.0, |v| v.1);
        // Nothing lossless: the two with the smallest order (keys 31 and 30) go.
        assert_eq!(map.len(), 30);
        assert!(!map.contains_key(&31) && !map.contains_key(&30));

        let mut map: HashMap<u32, (bool, u32)> = (0..3).map(|i| (i, (false, i))).collect();
        make_room(&mut map, 4, |v| v.0, |v| v.1);
        assert_eq!(map.len(), 3, "not full: nothing is dropped");
        make_room(&mut map, 3, |v| v.0, |v| v.1);
        assert_eq!(map.len(), 2);
        assert!(!map.contains_key(&0));
    }
}
