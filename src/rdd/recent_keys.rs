//! What a map-side combine that stopped combining (its probe found the keys mostly
//! distinct, see `partitioned_combine`) still folds: a small direct-mapped table of the
//! keys seen last. A record whose key holds its slot merges there; any other takes the
//! slot and hands on the entry it displaced. Keys that repeat close together — a hot key
//! above all, which a probe of mostly distinct keys can hide — still cross the shuffle
//! folded, at the price of a hash and a comparison a record, in a table that stays in the
//! core's first-level cache.

use crate::rdd::Key;
use crate::rdd::combine_table::hash_key;

/// Slots of the table: a power of two.
const SLOTS: usize = 1024;

/// The direct-mapped table of the keys seen last, with their combiners.
pub struct RecentKeys<K, C> {
    slots: Vec<Option<(K, C)>>,
}

impl<K: Key, C> Default for RecentKeys<K, C> {
    fn default() -> Self {
        RecentKeys {
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }
}

impl<K: Key, C> RecentKeys<K, C> {
    /// Folds `(k, v)` into its key's slot (`create` a new key's combiner, `merge_value` a
    /// value into a held one): the entry it displaced from the slot, if any.
    #[inline]
    pub fn put<V>(
        &mut self,
        k: K,
        v: V,
        create: impl FnOnce(V) -> C,
        merge_value: impl FnOnce(C, V) -> C,
    ) -> Option<(K, C)> {
        // The high bits: hashbrown and the sub-parts place keys by the others.
        let slot = &mut self.slots[(hash_key(&k) >> 54) as usize & (SLOTS - 1)];
        match slot.take() {
            Some((held, c)) if held == k => {
                // (A panicking merge leaves the slot empty: its combiner is dropped once.)
                *slot = Some((held, merge_value(c, v)));
                None
            }
            displaced => {
                *slot = Some((k, create(v)));
                displaced
            }
        }
    }

    /// The entries still held, leaving the table empty.
    pub fn drain(&mut self) -> impl Iterator<Item = (K, C)> + '_ {
        self.slots.iter_mut().filter_map(Option::take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn repeated_keys_fold_in_place_and_every_value_comes_out_once() {
        let mut recent = RecentKeys::<u64, u64>::default();
        let mut out = Vec::new();
        // Key 7 every third record, the others distinct.
        let records = (0..30_000u64).map(|i| (if i % 3 == 0 { 7 } else { i + 100 }, 1));
        for (k, v) in records {
            out.extend(recent.put(k, v, |v| v, |c, v| c + v));
        }
        out.extend(recent.drain());
        let mut sums: HashMap<u64, u64> = HashMap::new();
        for (k, c) in &out {
            *sums.entry(*k).or_default() += c;
        }
        assert_eq!(sums[&7], 10_000);
        assert_eq!(sums.len(), 20_001);
        assert!(sums.values().sum::<u64>() == 30_000);
        let hot = out.iter().filter(|(k, _)| *k == 7).count();
        assert!(hot < 100, "key 7 came out {hot} times for 10 000 records");
        assert_eq!(recent.drain().count(), 0, "drained twice");
    }
}
