//! The map-side combine of an aggregation, within the executor's memory budget.
//!
//! A map partition's values are combined by key in a hash map; when the budget has no room
//! for the map as it grows, its partial combiners are handed on to the shuffle (whose
//! buckets spill to disk when they do not fit) and combining starts again with an empty
//! map. The reduce side merges combiners anyway, so the result is the same; only a key
//! may then cross the shuffle more than once.

use std::collections::hash_map;

use rustc_hash::FxHashMap;

use crate::memory::Reservation;
use crate::rdd::Key;

/// How many records are combined between two looks at the budget.
const CHECK_EVERY: usize = 4096;
/// Below this a map is kept even over the budget: emptying smaller ones costs more than
/// it saves.
const MIN_FLUSH: u64 = 1 << 20;

/// Adds `v` to `k`'s combiner: one hash lookup when the key is known (the common case),
/// updating in place. Values are `Option`s so a combiner can be moved out and back
/// without a second lookup; a panic in `merge` leaves `None`, which is skipped.
/// `create` and `merge` are type parameters so a `reduce_by_key`'s `a + b` is inlined into
/// the per-record loop.
#[inline]
pub fn merge_into<K: Key, V, C>(
    acc: &mut FxHashMap<K, Option<C>>,
    k: K,
    v: V,
    create: &impl Fn(V) -> C,
    merge: &impl Fn(C, V) -> C,
) {
    if let Some(slot) = acc.get_mut(&k) {
        *slot = Some(match slot.take() {
            Some(c) => merge(c, v),
            None => create(v),
        });
    } else {
        acc.insert(k, Some(create(v)));
    }
}

/// Combines `records` by key, within the running task's budget (unbounded outside a task).
pub fn bounded_combine<K, V, C, F, G>(
    records: impl Iterator<Item = (K, V)>,
    create: F,
    merge_value: G,
) -> impl Iterator<Item = (K, C)>
where
    K: Key,
    F: Fn(V) -> C,
    G: Fn(C, V) -> C,
{
    let reservation = crate::plan::task::task_memory().map(|m| m.reservation());
    BoundedCombine {
        records,
        acc: FxHashMap::default(),
        out: None,
        reservation,
        create,
        merge_value,
        since_check: 0,
        done: false,
    }
}

struct BoundedCombine<I, K, C, F, G> {
    records: I,
    acc: FxHashMap<K, Option<C>>,
    /// Partial combiners being handed on.
    out: Option<hash_map::IntoIter<K, Option<C>>>,
    reservation: Option<Reservation>,
    create: F,
    merge_value: G,
    since_check: usize,
    done: bool,
}

impl<I, K, V, C, F, G> BoundedCombine<I, K, C, F, G>
where
    I: Iterator<Item = (K, V)>,
    K: Key,
    F: Fn(V) -> C,
    G: Fn(C, V) -> C,
{
    /// The map's memory, estimated as twice the inline size of its slots (keys and
    /// combiners own heap memory the map cannot see).
    fn map_bytes(&self) -> u64 {
        (self.acc.capacity() * 2 * (std::mem::size_of::<(K, Option<C>)>() + 1)) as u64
    }

    /// Whether the map may stay: its reservation grows to cover it, or it is small.
    fn fits(&mut self) -> bool {
        let bytes = self.map_bytes();
        match &mut self.reservation {
            None => true,
            Some(r) => bytes < MIN_FLUSH || r.grow_to(bytes + bytes / 4),
        }
    }

    /// Hands the partial combiners on and starts again with an empty map.
    fn flush(&mut self) {
        self.out = Some(std::mem::take(&mut self.acc).into_iter());
        if let Some(r) = &mut self.reservation {
            r.clear();
        }
    }
}

impl<I, K, V, C, F, G> Iterator for BoundedCombine<I, K, C, F, G>
where
    I: Iterator<Item = (K, V)>,
    K: Key,
    F: Fn(V) -> C,
    G: Fn(C, V) -> C,
{
    type Item = (K, C);

    fn next(&mut self) -> Option<(K, C)> {
        loop {
            if let Some(out) = &mut self.out {
                match out.next() {
                    Some((k, Some(c))) => return Some((k, c)),
                    Some((_, None)) => continue,
                    None => self.out = None,
                }
            }
            if self.done {
                return None;
            }
            match self.records.next() {
                Some((k, v)) => {
                    merge_into(&mut self.acc, k, v, &self.create, &self.merge_value);
                    self.since_check += 1;
                    if self.since_check >= CHECK_EVERY {
                        self.since_check = 0;
                        if !self.fits() {
                            self.flush();
                        }
                    }
                }
                None => {
                    self.done = true;
                    self.flush();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryManager;
    use crate::plan::task::enter_task_memory;

    fn sums(budget: Option<u64>, n: u64) -> (Vec<(u64, u64)>, usize) {
        let _task = budget.map(|b| enter_task_memory(MemoryManager::new(b)));
        let records = (0..n).map(|i| (i % 200_000, i));
        let mut emitted = 0;
        let mut total: FxHashMap<u64, u64> = FxHashMap::default();
        for (k, c) in bounded_combine(records, |v| v, |c, v| c + v) {
            emitted += 1;
            *total.entry(k).or_default() += c;
        }
        let mut total: Vec<_> = total.into_iter().collect();
        total.sort_unstable();
        (total, emitted)
    }

    #[test]
    fn a_map_over_the_budget_is_handed_on_in_parts_with_the_same_totals() {
        let n = 600_000;
        let (unbounded, once) = sums(None, n);
        assert_eq!(once, 200_000, "unbounded: one combiner per key");
        let (bounded, emitted) = sums(Some(2 << 20), n);
        assert_eq!(bounded, unbounded);
        assert!(
            emitted > once,
            "a 2 MiB budget never emptied the map: {emitted}"
        );
    }
}
