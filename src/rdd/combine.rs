//! The map-side combine of an aggregation, within the executor's memory budget.
//!
//! A map partition's values are combined by key in a hash map; when the budget has no room
//! for the map as it grows, its partial combiners are handed on to the shuffle (whose
//! buckets spill to disk when they do not fit) and combining starts again with an empty
//! map. The reduce side merges combiners anyway, so the result is the same; only a key
//! may then cross the shuffle more than once.

use hashbrown::hash_map::Entry;
use rustc_hash::FxBuildHasher;

use crate::memory::Reservation;
use crate::memory::estimate::{EntrySizes, heap_size};
use crate::rdd::Key;

/// The hash map of a combine: hashbrown's, for `replace_entry_with` (below).
pub type Combiners<K, C> = hashbrown::HashMap<K, C, FxBuildHasher>;

/// How many records are combined (or buffered) between two looks at the budget.
pub(crate) const CHECK_EVERY: usize = 4096;
/// One record in this many has its entry's heap measured.
const SAMPLE_EVERY: usize = 64;
/// Below this a map (or buffer) is kept even over the budget: emptying smaller ones costs
/// more than it saves.
const MIN_FLUSH: u64 = 1 << 20;

/// Whether `bytes` of a combine's map or buffers may stay: the reservation grows to cover
/// them (with a quarter to spare), or they are small; always outside a task.
fn keeps(reservation: &mut Option<Reservation>, bytes: u64) -> bool {
    match reservation {
        None => true,
        Some(r) => bytes <= r.bytes() || bytes < MIN_FLUSH || r.grow_to(bytes + bytes / 4),
    }
}

/// What records buffered in memory (split by partition, or read ahead of a combine) hold
/// of the running task's budget: their slots, plus the heap of a sample of them scaled to
/// all, looked at every [`CHECK_EVERY`] records.
pub(crate) struct HeldRecords {
    records: usize,
    sizes: EntrySizes,
    reservation: Option<Reservation>,
}

impl HeldRecords {
    /// Nothing held yet, reserving from the running task's budget (unbounded outside one).
    pub fn new() -> Self {
        HeldRecords {
            records: 0,
            sizes: EntrySizes::default(),
            reservation: crate::plan::task::task_memory().map(|m| m.reservation()),
        }
    }

    /// Counts `record`, about to be buffered (one in [`SAMPLE_EVERY`] has its heap
    /// measured); true when it is time to look at the budget ([`HeldRecords::fits`]).
    #[inline]
    pub fn count<T: serde::Serialize>(&mut self, record: &T) -> bool {
        if self.records.is_multiple_of(SAMPLE_EVERY) {
            self.sizes.sample(heap_size(record));
        }
        self.records += 1;
        self.records.is_multiple_of(CHECK_EVERY)
    }

    /// Whether the records may stay in buffers whose slots take `slot_bytes`.
    pub fn fits(&mut self, slot_bytes: usize) -> bool {
        let bytes = slot_bytes as u64 + self.sizes.heap_of(self.records);
        keeps(&mut self.reservation, bytes)
    }

    /// Forgets the records (taken out): what they held is given back.
    pub fn clear(&mut self) {
        self.records = 0;
        if let Some(r) = &mut self.reservation {
            r.clear();
        }
    }

    /// The reservation, for as long as the records outlive their buffers.
    pub fn take_reservation(&mut self) -> Option<Reservation> {
        self.reservation.take()
    }
}

/// Adds `v` to `k`'s combiner: one hash lookup when the key is known (the common case),
/// updating in place. The combiner is moved out to `merge` and back into the same slot
/// (`replace_entry_with`), so a slot holds just the combiner — no `Option` beside it,
/// which for a small combiner (a sum: `(u64, f64)`) is a third of the map. A panic in
/// `merge` leaves the key out of the map, never a moved-out value in it.
/// `create` and `merge` are type parameters so a `reduce_by_key`'s `a + b` is inlined into
/// the per-record loop.
#[inline]
fn merge_into<'m, K: Key, V, C>(
    acc: &'m mut Combiners<K, C>,
    k: K,
    v: V,
    create: &impl Fn(V) -> C,
    merge: &impl Fn(C, V) -> C,
) -> Option<&'m C> {
    match acc.entry(k) {
        Entry::Occupied(slot) => match slot.replace_entry_with(|_, c| Some(merge(c, v))) {
            Entry::Occupied(slot) => Some(slot.into_mut()),
            Entry::Vacant(_) => None,
        },
        Entry::Vacant(slot) => Some(slot.insert(create(v))),
    }
}

/// A combine's hash map and what it holds against the running task's budget: its
/// estimated decoded size (slots, plus the heap its keys and combiners own, sampled as
/// they grow), reserved as it grows. Shared by the map-side combine (which hands partial
/// combiners on when over the budget) and the reduce side's (which spills them).
pub struct CombineMap<K, C> {
    pub acc: Combiners<K, C>,
    sizes: EntrySizes,
    reservation: Option<Reservation>,
    /// Records merged since the last look at the budget.
    since_check: usize,
}

impl<K: Key, C: serde::Serialize> CombineMap<K, C> {
    /// An empty map, reserving from the running task's budget (unbounded outside a task).
    pub fn new() -> Self {
        CombineMap {
            acc: Combiners::default(),
            sizes: EntrySizes::default(),
            reservation: crate::plan::task::task_memory().map(|m| m.reservation()),
            since_check: 0,
        }
    }

    /// Merges `v` into `k`'s combiner; true when the map has outgrown what the budget
    /// lets it hold (looked at every few thousand records).
    #[inline]
    pub fn merge<V>(
        &mut self,
        k: K,
        v: V,
        create: &impl Fn(V) -> C,
        merge_value: &impl Fn(C, V) -> C,
    ) -> bool {
        if self.since_check.is_multiple_of(SAMPLE_EVERY) {
            let key_heap = heap_size(&k);
            let slot = merge_into(&mut self.acc, k, v, create, merge_value);
            let heap = key_heap + slot.map_or(0, heap_size);
            self.sizes.sample(heap);
        } else {
            merge_into(&mut self.acc, k, v, create, merge_value);
        }
        self.since_check += 1;
        if self.since_check < CHECK_EVERY {
            return false;
        }
        self.since_check = 0;
        !self.fits()
    }

    /// The bytes of the map's slots (a key, a combiner and a control byte each).
    pub fn slot_bytes(&self) -> usize {
        self.acc.capacity() * (std::mem::size_of::<(K, C)>() + 1)
    }

    /// The map's estimated decoded size.
    fn bytes(&self) -> u64 {
        self.slot_bytes() as u64 + self.sizes.heap_of(self.acc.len())
    }

    /// Whether the map may stay: its reservation grows to cover it, or it is small.
    fn fits(&mut self) -> bool {
        let bytes = self.bytes();
        keeps(&mut self.reservation, bytes)
    }

    /// An empty map over `acc`'s slots (a table an earlier task emptied, or one made
    /// large enough up front), reserving from the running task's budget: its slots count
    /// from the first look at the budget.
    pub fn with_table(mut acc: Combiners<K, C>) -> Self {
        acc.clear();
        CombineMap {
            acc,
            ..CombineMap::new()
        }
    }

    /// Up to `max` entries moved out, the slots kept for the next ones (the table is then
    /// reused: no fresh pages to fault in, no growing by rehashing). The reservation is
    /// given back with the first batch: what is moved out is the shuffle's to hold.
    pub fn drain_some(&mut self, max: usize) -> Vec<(K, C)> {
        if let Some(r) = &mut self.reservation {
            r.clear();
        }
        // An extraction stopped early leaves the entries it did not reach in the map.
        self.acc.extract_if(|_, _| true).take(max).collect()
    }

    /// The map's table, for another task (its reservation given back).
    pub fn into_table(self) -> Combiners<K, C> {
        self.acc
    }

    /// The entries, leaving the map empty and its memory given back.
    pub fn take(&mut self) -> impl Iterator<Item = (K, C)> + use<K, C> {
        if let Some(r) = &mut self.reservation {
            r.clear();
        }
        std::mem::take(&mut self.acc).into_iter()
    }

    /// The reservation, for what outlives the map (a merge of what it held).
    pub fn take_reservation(&mut self) -> Option<Reservation> {
        self.reservation.take()
    }

    /// Whether spilling would free memory: the map is reserved against a budget.
    pub fn is_bounded(&self) -> bool {
        self.reservation.is_some()
    }
}

impl<K: Key, C: serde::Serialize> Default for CombineMap<K, C> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_merge_leaves_that_key_out_and_the_map_whole() {
        let mut acc: Combiners<u64, String> = Combiners::default();
        let create = |v: &str| v.to_string();
        let append = |mut c: String, v: &str| {
            assert_ne!(v, "boom", "a user function panicked");
            c.push_str(v);
            c
        };
        for k in 0..100u64 {
            merge_into(&mut acc, k, "a", &create, &append);
            merge_into(&mut acc, k, "b", &create, &append);
        }
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            merge_into(&mut acc, 7, "boom", &create, &append);
        }));
        assert!(panicked.is_err());
        // Key 7's combiner went with the panic (dropped once); the rest are intact.
        assert_eq!(acc.len(), 99);
        assert!(!acc.contains_key(&7));
        assert!(acc.iter().all(|(_, c)| c == "ab"));
        assert_eq!(merge_into(&mut acc, 7, "c", &create, &append).unwrap(), "c");
    }
}
