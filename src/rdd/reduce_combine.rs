//! The reduce side of an aggregation: a partition's combiners (or values, without a map-side
//! combine) merged by key, a cache-sized sub-part of its keys at a time.
//!
//! One hash map for a whole reduce partition grows as large as its distinct keys
//! (PageRank at 256 MB: ~600 k a partition, a 10 MB map), so every record is a cache miss
//! (profiled: the reduce side's `combine_spilling` a fifth of an iteration). Records are
//! instead first buffered and split by bits of their key's hash into sub-parts whose maps
//! stay in the cache ([`fanout`]); keys of different sub-parts never meet, so each is
//! combined on its own (by [`combine_spilling`], which may still spill) and each key
//! still comes out once. The first task of an aggregation buffers a partition to count
//! it before splitting; once a task has noted a partition's size, the next ones split
//! records into sub-parts as they read them (one pass over them, not two). A partition
//! small enough for one cache-sized map, or one whose buffer the budget cannot hold, is
//! combined as it streams; so is one whose keys fit that map, once a task has counted
//! them (WordCount's reduce partitions: 100 k combiners of 3 k words, buffered and split
//! into 16 sub-parts when counted by records).

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::memory::estimate::SizeHint;
use crate::plan::batch::BatchIter;
use crate::rdd::Key;
use crate::rdd::combine_table::hash_key;
use crate::rdd::combined_parts::CombinedParts;
use crate::rdd::partitioned_combine::{fanout, sub_part};
use crate::rdd::spill_combine::{MergeCombiners, combine_spilling};
use crate::rdd::split_parts::{CHUNK, Chunks, FIRST_CHUNK, Parts};

/// Reads `records` into one part of chunks until they end (true) or the budget has no
/// room for more (false): a buffer grown by doubling one vector copied every record again
/// at each doubling into fresh pages the kernel faulted in and zeroed (profiled: a third
/// of the reduce side of PageRank's iterations); chunks of one size are recycled by the
/// allocator from task to task, and each is freed as soon as it has been split.
fn fill<K: Key, V: Serialize>(
    buffer: &mut Parts<K, V>,
    records: &mut impl Iterator<Item = (K, V)>,
) -> bool {
    for record in records {
        if !buffer.push(0, record) {
            return false;
        }
    }
    true
}

/// Reads `records` straight into `fanout` sub-parts by key hash until they end (true) or
/// the budget has no room for more (false): what [`fill`] then [`split`] do, with one
/// pass over the records instead of two.
fn fill_split<K: Key, V: Serialize>(
    parts: &mut Parts<K, V>,
    fanout: usize,
    records: &mut impl Iterator<Item = (K, V)>,
) -> bool {
    for record in records {
        let s = sub_part(hash_key(&record.0), fanout);
        if !parts.push(s, record) {
            return false;
        }
    }
    true
}

/// What the reduce tasks of one aggregation note for the tasks after them.
#[derive(Debug, Default)]
pub struct ReduceHints {
    /// The most records a partition had.
    pub records: SizeHint,
    /// The most keys a partition had (its combined entries).
    pub keys: SizeHint,
}

/// Merges the combiners `records` of one reduce partition by key with `merge`, each key
/// once, within the running task's budget (see the module header).
pub fn merge_combiners<K, C>(
    records: &mut impl Iterator<Item = (K, C)>,
    hints: &Arc<ReduceHints>,
    merge: MergeCombiners<C>,
) -> Result<BatchIter<(K, C)>>
where
    K: Key,
    C: Serialize + DeserializeOwned + Send + 'static,
{
    let merge_value = Arc::clone(&merge);
    combine_values(records, hints, |c| c, move |a, b| merge_value(a, b), merge)
}

/// Combines the values `records` of one reduce partition by key (`create` a key's first
/// value, `merge_value` the others into it; `merge` two combiners of a key when spilled
/// runs meet), each key once, within the running task's budget (see the module header):
/// the reduce side of an aggregation without a map-side combine, which receives values,
/// not combiners. `hints`, shared by the reduce tasks of one aggregation, hold the most
/// records and keys a partition had: once a task has noted its records, the next ones
/// split their records into sub-parts as they read them, rather than buffering them all
/// first to count them; once one has noted keys that fit one cache-sized map, the next
/// ones combine as their records stream.
pub fn combine_values<K, V, C>(
    records: &mut impl Iterator<Item = (K, V)>,
    hints: &Arc<ReduceHints>,
    create: impl Fn(V) -> C + 'static,
    merge_value: impl Fn(C, V) -> C + 'static,
    merge: MergeCombiners<C>,
) -> Result<BatchIter<(K, C)>>
where
    K: Key,
    V: Serialize + 'static,
    C: Serialize + DeserializeOwned + Send + 'static,
{
    let slot = std::mem::size_of::<(K, C)>() + 1;
    let keys = hints.keys.expected();
    let combined = if keys > 0 && fanout(keys, slot) == 1 {
        combine_spilling(records, create, merge_value, merge)?
    } else {
        match buffer_parts(records, hints, slot) {
            Buffered::Split(parts, held) => {
                Box::new(CombinedParts::new(parts, held, create, merge_value, merge))
            }
            Buffered::Unsplit { buffer, read, .. } => {
                combine_streaming(buffer, read, records, create, merge_value, merge)?
            }
        }
    };
    Ok(Box::new(NoteKeys {
        batches: combined,
        keys: 0,
        hints: Arc::clone(hints),
    }))
}

/// A reduce partition's records as [`buffer_parts`] left them.
pub(crate) enum Buffered<K, V> {
    /// All of them, split into cache-sized sub-parts; the buffer holds their reservation.
    Split(Vec<Chunks<(K, V)>>, Parts<K, V>),
    /// Not split: all of them (`whole`) where they fit one cache-sized map, or those read
    /// before the budget had no room for more (the rest still to read), in chunks; the
    /// buffer holds their reservation.
    Unsplit {
        buffer: Parts<K, V>,
        read: Vec<Vec<Vec<(K, V)>>>,
        whole: bool,
    },
}

/// Buffers a reduce partition's `records`, split into sub-parts whose maps of `slot`-byte
/// entries stay in the cache (see the module header): by the most records a partition had
/// (`hints`), as they are read, once a task has noted them; else counted first, then split.
pub(crate) fn buffer_parts<K: Key, V: Serialize>(
    records: &mut impl Iterator<Item = (K, V)>,
    hints: &ReduceHints,
    slot: usize,
) -> Buffered<K, V> {
    let sizes = &hints.records;
    match fanout(sizes.expected(), slot) {
        1 => {
            let mut buffer = Parts::new(1, CHUNK);
            let whole = fill(&mut buffer, records);
            let (len, chunks) = buffer.take(0);
            sizes.note(len);
            let fanout = fanout(len, slot);
            if !whole || fanout == 1 {
                let read = vec![chunks];
                return Buffered::Unsplit {
                    buffer,
                    read,
                    whole,
                };
            }
            Buffered::Split(split(chunks, len, fanout), buffer)
        }
        fanout => {
            let mut buffer = Parts::new(fanout, sizes.expected() / fanout);
            let whole = fill_split(&mut buffer, fanout, records);
            let parts = std::mem::take(&mut buffer.parts);
            if !whole {
                let read = parts.into_iter().map(|mut p| p.take().1).collect();
                return Buffered::Unsplit {
                    buffer,
                    read,
                    whole,
                };
            }
            sizes.note(parts.iter().map(Chunks::len).sum());
            Buffered::Split(parts, buffer)
        }
    }
}

/// A partition's combined entries, counted as they are handed on: their count, its keys,
/// is noted in `hints` when the last has gone.
struct NoteKeys<K, C> {
    batches: BatchIter<(K, C)>,
    keys: usize,
    hints: Arc<ReduceHints>,
}

impl<K, C> Iterator for NoteKeys<K, C> {
    type Item = Result<Vec<(K, C)>>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.batches.next();
        match &batch {
            Some(Ok(entries)) => self.keys += entries.len(),
            Some(Err(_)) => {}
            None => self.hints.keys.note(self.keys),
        }
        batch
    }
}

/// Combines the records `read` so far and the `rest` as they stream (one spilling
/// combine): a partition that fits one cache-sized map, or one the budget could not hold
/// in a buffer. `buffer`'s reservation covers what was read until it is combined.
pub(crate) fn combine_streaming<K, V, C>(
    mut buffer: Parts<K, V>,
    read: Vec<Vec<Vec<(K, V)>>>,
    rest: &mut impl Iterator<Item = (K, V)>,
    create: impl Fn(V) -> C,
    merge_value: impl Fn(C, V) -> C,
    merge: MergeCombiners<C>,
) -> Result<BatchIter<(K, C)>>
where
    K: Key,
    V: Serialize,
    C: Serialize + DeserializeOwned + Send + 'static,
{
    let reservation = buffer.take_reservation();
    let records = read.into_iter().flatten().flatten().chain(rest);
    let merged = combine_spilling(records, create, merge_value, merge);
    drop(reservation);
    merged
}

/// The `len` records of `chunks` split into `fanout` sub-parts by key hash, each in
/// chunks of its own; a chunk read is freed at once, so its memory serves the parts'
/// next chunks.
fn split<K: Key, V>(chunks: Vec<Vec<(K, V)>>, len: usize, fanout: usize) -> Vec<Chunks<(K, V)>> {
    let first = (len / fanout).clamp(FIRST_CHUNK, CHUNK);
    let mut parts: Vec<Chunks<(K, V)>> = (0..fanout).map(|_| Chunks::default()).collect();
    for chunk in chunks {
        for record in chunk {
            let s = sub_part(hash_key(&record.0), fanout);
            parts[s].push(record, first);
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryManager;
    use crate::plan::task::enter_task_memory;
    use std::sync::Arc;

    /// Merges `n` combiners over `keys` keys with a task budget of `budget` (none:
    /// unbounded): the merged entries as they came out.
    fn merged(budget: Option<u64>, n: u64, keys: u64) -> Vec<(u64, u64)> {
        merged_after(&Arc::default(), budget, n, keys)
    }

    /// [`merged`] by a task after others that noted `hints`.
    fn merged_after(
        hints: &Arc<ReduceHints>,
        budget: Option<u64>,
        n: u64,
        keys: u64,
    ) -> Vec<(u64, u64)> {
        let _task = budget.map(|b| enter_task_memory(MemoryManager::new(b)));
        let mut records = (0..n).map(|i| (i.wrapping_mul(0x9e37_79b9) % keys, i));
        let batches = merge_combiners(&mut records, hints, Arc::new(|a, b| a + b)).unwrap();
        let mut out = Vec::new();
        for batch in batches {
            out.extend(batch.unwrap());
        }
        out
    }

    fn reference(n: u64, keys: u64) -> Vec<(u64, u64)> {
        let mut total = std::collections::BTreeMap::new();
        for i in 0..n {
            *total.entry(i.wrapping_mul(0x9e37_79b9) % keys).or_default() += i;
        }
        total.into_iter().collect()
    }

    fn subs(out: &[(u64, u64)], fanout: usize) -> Vec<usize> {
        out.iter()
            .map(|(k, _)| sub_part(hash_key(k), fanout))
            .collect()
    }

    #[test]
    fn the_buffer_holds_records_in_chunks_not_one_vector_grown_by_copies() {
        let mut buffer = Parts::<u64, u64>::new(1, CHUNK);
        let n = 10 * CHUNK as u64 + 5;
        let mut records = (0..n).map(|i| (i, i * 3));
        assert!(fill(&mut buffer, &mut records));
        let (len, chunks) = buffer.take(0);
        // Every chunk counted, the one taking the records still staged too.
        let capacity = buffer.capacity();
        assert_eq!(len, n as usize);
        assert!(
            chunks.iter().all(|c| c.capacity() <= CHUNK),
            "a chunk past {CHUNK}"
        );
        assert_eq!(capacity, chunks.iter().map(Vec::capacity).sum::<usize>());
        assert!(chunks.into_iter().flatten().eq((0..n).map(|i| (i, i * 3))));
    }

    #[test]
    fn a_large_partition_is_merged_a_sub_part_at_a_time_each_key_once() {
        // 700 k records of 16 bytes (13.6 MB of slots): 64 sub-parts.
        let (n, keys) = (700_000, 300_000);
        assert_eq!(fanout(n as usize, 17), 64);
        let mut out = merged(None, n, keys);
        assert!(subs(&out, 64).is_sorted(), "not merged by sub-part");
        out.sort_unstable();
        assert_eq!(out, reference(n, keys));
    }

    #[test]
    fn a_task_after_one_that_noted_its_size_splits_records_as_it_reads_them() {
        // The first task of 700 k records notes them; the next one, of 5 k records (one
        // cache-sized map if counted first), is split by the noted size's 64 sub-parts
        // as it is read, and still combines each key once.
        let hints = Arc::default();
        let (n, keys) = (700_000, 300_000);
        let mut first = merged_after(&hints, None, n, keys);
        assert_eq!(fanout(hints.records.expected(), 17), 64);
        first.sort_unstable();
        assert_eq!(first, reference(n, keys));
        let (n, keys) = (5_000, 2_000);
        assert_eq!(fanout(n as usize, 17), 1);
        let mut out = merged_after(&hints, None, n, keys);
        assert!(subs(&out, 64).is_sorted(), "not split by the noted size");
        out.sort_unstable();
        assert_eq!(out, reference(n, keys));
    }

    #[test]
    fn a_task_after_one_that_noted_few_keys_combines_as_it_streams() {
        // 200 k records over at most 3 k keys: counted by records, 16 sub-parts, the
        // records buffered first; once the first task has noted its keys (one cache-sized
        // map), the next combines them as they stream, buffering none.
        let (n, keys) = (200_000u64, 3_000u64);
        let hints = Arc::<ReduceHints>::default();
        let peak = |hints: &Arc<ReduceHints>| {
            let memory = MemoryManager::new(1 << 30);
            let _task = enter_task_memory(Arc::clone(&memory));
            let mut records = (0..n).map(|i| (i.wrapping_mul(0x9e37_79b9) % keys, i));
            let batches = merge_combiners(&mut records, hints, Arc::new(|a, b| a + b)).unwrap();
            let mut out: Vec<(u64, u64)> = batches.flat_map(Result::unwrap).collect();
            out.sort_unstable();
            assert_eq!(out, reference(n, keys));
            memory.peak()
        };
        let buffered = peak(&hints);
        let distinct = reference(n, keys).len();
        assert_eq!(
            hints.keys.expected(),
            distinct + distinct / 8,
            "the keys noted"
        );
        let streamed = peak(&hints);
        // The buffer held every record (16 bytes each); the streaming map only the keys.
        assert!(buffered >= 16 * n, "{buffered} reserved buffering");
        assert!(streamed < 16 * n / 10, "{streamed} reserved streaming");
    }

    #[test]
    fn a_task_splitting_as_it_reads_streams_the_rest_when_the_budget_is_full() {
        let hints = Arc::<ReduceHints>::default();
        hints.records.note(1_500_000);
        let (n, keys) = (1_500_000, 600_000);
        let mut out = merged_after(&hints, Some(4 << 20), n, keys);
        out.sort_unstable();
        assert_eq!(out, reference(n, keys));
    }

    #[test]
    fn sub_parts_are_combined_one_at_a_time_as_their_entries_are_read() {
        // 64 sub-parts: nothing is combined before the first batch is asked for, the
        // first batch combines only the first sub-part, and the tables' reservation never
        // holds more than about one sub-part's table beside the buffered records.
        let (n, keys) = (700_000u64, 300_000u64);
        let memory = MemoryManager::new(1 << 30);
        let _task = enter_task_memory(Arc::clone(&memory));
        let combined = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = Arc::clone(&combined);
        let create = move |v: u64| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            v
        };
        let counter = Arc::clone(&combined);
        let add = move |c: u64, v: u64| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            c + v
        };
        let mut records = (0..n).map(|i| (i.wrapping_mul(0x9e37_79b9) % keys, i));
        let hints = Arc::default();
        let mut batches =
            combine_values(&mut records, &hints, create, add, Arc::new(|a, b| a + b)).unwrap();
        let count = || combined.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(count(), 0, "combined before asked for");
        let buffered = memory.reserved();
        let mut out = batches.next().unwrap().unwrap();
        assert!(count() > 0 && count() < 2 * n / 64, "{} combined", count());
        for batch in batches {
            out.extend(batch.unwrap());
        }
        assert_eq!(count(), n);
        // One sub-part's table: 300 k keys over 64 sub-parts, 17-byte slots, a power of
        // two of buckets at most 7/8 full.
        let table = (keys / 64 * 8 / 7).next_power_of_two() * 17;
        assert!(
            memory.peak() <= buffered + 2 * table,
            "peak {} with {buffered} buffered and tables of {table}",
            memory.peak()
        );
        assert!(subs(&out, 64).is_sorted(), "not merged by sub-part");
        out.sort_unstable();
        assert_eq!(out, reference(n, keys));
    }

    #[test]
    fn a_small_partition_or_a_tight_budget_merges_as_it_streams_with_the_same_result() {
        for (budget, n, keys) in [(None, 5_000, 1_000), (Some(4 << 20), 1_500_000, 600_000)] {
            let mut out = merged(budget, n, keys);
            out.sort_unstable();
            assert_eq!(out, reference(n, keys), "budget {budget:?}");
        }
    }
}
