//! The map-side combine of an aggregation, within the executor's memory budget.
//!
//! A map partition's values are combined by key in a hash map; when the budget has no room
//! for the map as it grows, its partial combiners are handed on to the shuffle (whose
//! buckets spill to disk when they do not fit) and combining starts again with an empty
//! map. The reduce side merges combiners anyway, so the result is the same; only a key
//! may then cross the shuffle more than once.

use std::collections::VecDeque;

use crate::memory::Reservation;
use crate::memory::estimate::{EntrySizes, heap_size};
use crate::plan::batch::Records;
use crate::rdd::Key;
pub use crate::rdd::combine_table::Combiners;
use crate::rdd::combine_table::{Entries, hash_key};

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

/// Records hashed and their slots fetched into the cache ahead of merging them: enough
/// to overlap the memory waits of a table larger than the cache, few enough to stay in
/// registers and L1 (and a divisor of [`CHECK_EVERY`]).
const BATCH: usize = 16;

/// Records an expansion hands to a table past the cache wait, hashed and their slots
/// fetched, before they are merged ([`CombineMap::merge_pushed`]). Measured on WordCount
/// (1 GB, 2 executors, 4 alternated runs each): 2.94-3.47 s merged as handed, 2.83-2.96
/// waiting 4, 2.79-2.83 waiting 8, 2.66-2.86 waiting 16, 2.70-2.82 waiting 32.
const DELAY: usize = 16;

/// Slot bytes from which a table is taken to be out of the core's cache (an L2 of 1 MiB
/// here), and [`CombineMap::merge_some`] prefetches its slots.
const PREFETCH_FROM: usize = 1 << 20;

/// How [`CombineMap::merge_some`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Merged {
    /// The records ran out.
    Ended,
    /// [`CHECK_EVERY`] records were merged and the map fits the budget: more may follow.
    More,
    /// The map has outgrown what the budget lets it hold.
    OverBudget,
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
    #[inline(always)]
    pub fn merge<V>(
        &mut self,
        k: K,
        v: V,
        create: &impl Fn(V) -> C,
        merge_value: &impl Fn(C, V) -> C,
    ) -> bool {
        self.merge_hashed(hash_key(&k), k, v, create, merge_value);
        self.counted()
    }

    /// Merges the next records (up to the next look at the budget, [`CHECK_EVERY`]). Into
    /// a table past the cache ([`PREFETCH_FROM`]) a batch at a time: the next batch's keys
    /// are hashed and their slots fetched into the cache while this batch is merged, so
    /// the lookups wait on memory together rather than each in turn.
    #[inline(always)]
    pub fn merge_some<V>(
        &mut self,
        records: &mut impl Iterator<Item = (K, V)>,
        create: &impl Fn(V) -> C,
        merge_value: &impl Fn(C, V) -> C,
    ) -> Merged {
        // Records this call may still take: the last one taken is the one the budget is
        // looked at after, so none is left unmerged in a batch when the call returns.
        let mut left = CHECK_EVERY - self.since_check;
        if self.slot_bytes() < PREFETCH_FROM {
            // In the cache: batches would only add moves (measured: 4 M records into 10k
            // keys took 17 ms one at a time, 27 ms in batches; into 1 M keys 109 ms, 67).
            return self.merge_each(records, left, create, merge_value);
        }
        let (mut now, mut ahead) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        self.fetch(records, &mut ahead, &mut left);
        while !ahead.is_empty() {
            std::mem::swap(&mut now, &mut ahead);
            self.fetch(records, &mut ahead, &mut left);
            for (hash, k, v) in now.drain(..) {
                self.merge_hashed(hash, k, v, create, merge_value);
                if self.counted() {
                    return Merged::OverBudget;
                }
            }
        }
        if left == 0 {
            Merged::More
        } else {
            Merged::Ended
        }
    }

    /// Merges the next records (up to the next look at the budget) as `records` makes
    /// them, where it expands them ([`Records::expands`]: a `flat_map` before a map-side
    /// combine), else as [`CombineMap::merge_some`] does. Into a table past the cache, each
    /// record's slot is fetched as it is handed and the record merged a few records later
    /// (`CombineMap::merge_delayed`).
    #[inline(always)]
    pub fn merge_pushed<V>(
        &mut self,
        records: &mut impl Records<(K, V)>,
        create: &impl Fn(V) -> C,
        merge_value: &impl Fn(C, V) -> C,
    ) -> Merged {
        if !records.expands() {
            return self.merge_some(records, create, merge_value);
        }
        // As many as leave the next look at the budget after the last record handed.
        let left = CHECK_EVERY - self.since_check;
        let mut over = false;
        let given = if self.slot_bytes() < PREFETCH_FROM {
            records.push_some(left, &mut |(k, v)| {
                over = self.merge(k, v, create, merge_value);
            })
        } else {
            self.merge_delayed(records, left, &mut over, create, merge_value)
        };
        if over {
            Merged::OverBudget
        } else if given < left {
            Merged::Ended
        } else {
            Merged::More
        }
    }

    /// Merges up to `left` of the records `records` hands on (into a table past the
    /// cache): each is hashed and its slot fetched into the cache as it is handed, and
    /// merged [`DELAY`] records later, so a lookup's wait on memory overlaps the
    /// expansion's work on the records after it. `over` is set when the map outgrows the
    /// budget (at the last record); returns how many records were handed.
    #[inline(always)]
    fn merge_delayed<V>(
        &mut self,
        records: &mut impl Records<(K, V)>,
        left: usize,
        over: &mut bool,
        create: &impl Fn(V) -> C,
        merge_value: &impl Fn(C, V) -> C,
    ) -> usize {
        let mut waiting: VecDeque<(u64, K, V)> = VecDeque::with_capacity(DELAY);
        self.acc.locate();
        let given = records.push_some(left, &mut |(k, v)| {
            let hash = hash_key(&k);
            self.acc.prefetch(hash);
            if waiting.len() == DELAY
                && let Some((hash, k, v)) = waiting.pop_front()
            {
                self.merge_hashed(hash, k, v, create, merge_value);
                *over |= self.counted();
            }
            waiting.push_back((hash, k, v));
        });
        for (hash, k, v) in waiting {
            self.merge_hashed(hash, k, v, create, merge_value);
            *over |= self.counted();
        }
        given
    }

    /// Merges up to `left` records one at a time.
    #[inline(always)]
    fn merge_each<V>(
        &mut self,
        records: &mut impl Iterator<Item = (K, V)>,
        mut left: usize,
        create: &impl Fn(V) -> C,
        merge_value: &impl Fn(C, V) -> C,
    ) -> Merged {
        while left > 0 {
            let Some((k, v)) = records.next() else {
                return Merged::Ended;
            };
            left -= 1;
            if self.merge(k, v, create, merge_value) {
                return Merged::OverBudget;
            }
        }
        Merged::More
    }

    /// Takes the next batch of records (at most `left`, counted down) into `batch`,
    /// hashing each key and fetching the slot it is probed at into the cache.
    #[inline]
    fn fetch<V>(
        &mut self,
        records: &mut impl Iterator<Item = (K, V)>,
        batch: &mut Vec<(u64, K, V)>,
        left: &mut usize,
    ) {
        let take = BATCH.min(*left);
        self.acc.locate();
        let acc = &self.acc;
        batch.extend(records.by_ref().take(take).map(|(k, v)| {
            let hash = hash_key(&k);
            acc.prefetch(hash);
            (hash, k, v)
        }));
        *left -= batch.len();
    }

    /// Merges one record, measuring the heap of one in [`SAMPLE_EVERY`].
    #[inline(always)]
    fn merge_hashed<V>(
        &mut self,
        hash: u64,
        k: K,
        v: V,
        create: &impl Fn(V) -> C,
        merge_value: &impl Fn(C, V) -> C,
    ) {
        if self.since_check.is_multiple_of(SAMPLE_EVERY) {
            let key_heap = heap_size(&k);
            let slot = self.acc.merge_hashed(hash, k, v, create, merge_value);
            let heap = key_heap + slot.map_or(0, heap_size);
            self.sizes.sample(heap);
        } else {
            self.acc.merge_hashed(hash, k, v, create, merge_value);
        }
    }

    /// Counts a merged record; true when it is time to look at the budget and the map
    /// does not fit.
    #[inline]
    fn counted(&mut self) -> bool {
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
        self.acc.take_some(max)
    }

    /// The map's table, for another task (its reservation given back).
    pub fn into_table(self) -> Combiners<K, C> {
        self.acc
    }

    /// The entries, leaving the map empty and its memory given back.
    pub fn take(&mut self) -> Entries<K, C> {
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
            acc.merge(k, "a", &create, &append);
            acc.merge(k, "b", &create, &append);
        }
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            acc.merge(7, "boom", &create, &append);
        }));
        assert!(panicked.is_err());
        // Key 7's combiner went with the panic (dropped once); the rest are intact.
        assert_eq!(acc.len(), 99);
        assert!(acc.get(&7).is_none());
        assert!(acc.iter().all(|(_, c)| c == "ab"));
        assert_eq!(acc.merge(7, "c", &create, &append).unwrap(), "c");
    }

    #[test]
    fn merge_some_merges_every_record_once_and_stops_at_each_look_at_the_budget() {
        let (create, add) = (|v: u64| v, |c: u64, v: u64| c + v);
        for (n, presized) in [
            0,
            1,
            15,
            16,
            17,
            33,
            CHECK_EVERY - 1,
            CHECK_EVERY,
            CHECK_EVERY + 1,
            3 * CHECK_EVERY + 5,
        ]
        .into_iter()
        .flat_map(|n| [(n, false), (n, true)])
        {
            // A table past the cache is merged in prefetched batches, a small one not.
            let mut map = match presized {
                false => CombineMap::<u64, u64>::new(),
                true => CombineMap::with_table(Combiners::with_capacity(PREFETCH_FROM / 16)),
            };
            assert_eq!(map.slot_bytes() >= PREFETCH_FROM, presized);
            // One record beforehand, one at a time: the batches then end off the boundary.
            map.merge(7, 1, &create, &add);
            let mut records = (0..n as u64).map(|i| (i % 1000, i));
            let mut looks = 0;
            loop {
                match map.merge_some(&mut records, &create, &add) {
                    Merged::More => looks += 1,
                    Merged::Ended => break,
                    Merged::OverBudget => panic!("no budget outside a task"),
                }
            }
            assert_eq!(looks, (n + 1) / CHECK_EVERY, "{n} records");
            let mut expected: std::collections::HashMap<u64, u64> = Default::default();
            *expected.entry(7).or_default() += 1;
            for i in 0..n as u64 {
                *expected.entry(i % 1000).or_default() += i;
            }
            let got: std::collections::HashMap<u64, u64> = map.take().collect();
            assert_eq!(got, expected, "{n} records");
        }
    }

    #[test]
    fn merge_pushed_merges_an_expansion_once_looking_at_the_budget_as_merge_some_does() {
        // Both ways of merging are taken: one at a time, and delayed into a large table.
        use crate::plan::batch::{Fan, PartitionIter};
        let (create, add) = (|v: u64| v, |c: u64, v: u64| c + v);
        let sizes = [0, 1, 7, 3000, 10_000, 25_000];
        for (n, delayed) in sizes.into_iter().flat_map(|n| [(n, false), (n, true)]) {
            let want = Fan::expected(n, None);
            let fan = Fan {
                next: 0,
                n,
                fail_at: None,
            };
            let (mut records, _) = PartitionIter::expanding(Box::new(fan));
            // A table made past the cache up front has its records merged delayed.
            let mut map = match delayed {
                false => CombineMap::<u64, u64>::new(),
                true => CombineMap::with_table(Combiners::with_capacity(PREFETCH_FROM / 8)),
            };
            assert_eq!(map.slot_bytes() >= PREFETCH_FROM, delayed);
            let n = format!("{n} records expanded, delayed {delayed}");
            let mut looks = 0;
            loop {
                match map.merge_pushed(&mut records, &create, &add) {
                    Merged::More => {
                        // The last record handed is the one the budget was looked at after.
                        assert_eq!(map.since_check, 0, "{n}");
                        looks += 1;
                    }
                    Merged::Ended => break,
                    Merged::OverBudget => panic!("no budget outside a task"),
                }
            }
            assert_eq!(looks, want.len() / CHECK_EVERY, "{n}");
            let mut expected: std::collections::HashMap<u64, u64> = Default::default();
            for (k, v) in want {
                *expected.entry(k).or_default() += v;
            }
            let got: std::collections::HashMap<u64, u64> = map.take().collect();
            assert_eq!(got, expected, "{n}");
        }
    }
}
