//! A map with a fixed capacity that forgets its oldest entries first: the in-memory state of
//! the edge (minted tokens, rendered canaries, client identities) must stay bounded under any
//! load; what it forgets is in SQLite or can be rendered again.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Entries reserved up front at most (a mistaken huge capacity must not allocate at start).
const RESERVE_MAX: usize = 1 << 18;

pub struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    /// Room for `capacity` entries is reserved now: growing a large map later rehashes it
    /// while its lock is held, which stalled requests for tens of milliseconds (p99).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let reserved = capacity.min(RESERVE_MAX);
        Bounded {
            map: HashMap::with_capacity(reserved),
            order: VecDeque::with_capacity(reserved),
            capacity,
        }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    /// Inserts or replaces; evicts the oldest entries beyond capacity.
    pub fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
        }
        while self.map.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_entries_go_first_and_size_stays_bounded() {
        let mut b = Bounded::new(3);
        for i in 0..10 {
            b.insert(i, i * 10);
        }
        assert_eq!(b.len(), 3);
        assert!(b.get(&6).is_none());
        assert_eq!(b.get(&9), Some(&90));
        b.insert(9, 1);
        assert_eq!(b.len(), 3);
        assert_eq!(b.get(&7), Some(&70), "replacing does not evict");
    }
}
