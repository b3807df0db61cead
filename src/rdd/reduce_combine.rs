//! The reduce side of an aggregation: a partition's combiners (or values, without a map-side
//! combine) merged by key, a cache-sized sub-part of its keys at a time.
//!
//! One hash map for a whole reduce partition grows as large as its distinct keys
//! (PageRank at 256 MB: ~600 k a partition, a 10 MB map), so every record is a cache miss
//! (profiled: the reduce side's `combine_spilling` a fifth of an iteration). Records are
//! instead first buffered and split by bits of their key's hash into sub-parts whose maps
//! stay in the cache ([`fanout`]); keys of different sub-parts never meet, so each is
//! combined on its own (by [`combine_spilling`], which may still spill) and each key
//! still comes out once. A partition small enough for one cache-sized map, or one whose
//! buffer the budget cannot hold, is combined as it streams, as before.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::plan::batch::BatchIter;
use crate::rdd::Key;
use crate::rdd::combine::{CombineMap, Combiners};
use crate::rdd::combine_table::hash_key;
use crate::rdd::partitioned_combine::{fanout, sub_part};
use crate::rdd::spill_combine::{MergeCombiners, combine_spilling, combine_spilling_in};
use crate::rdd::split_parts::{CHUNK, Chunks, FIRST_CHUNK, Parts};

/// Reads `records` into one part of chunks until they end (true) or the budget has no
/// room for more (false): a buffer grown by doubling one vector copied every record again
/// at each doubling into fresh pages the kernel faulted in and zeroed (profiled: a third
/// of the reduce side of PageRank's iterations); chunks of one size are recycled by the
/// allocator from task to task, and each is freed as soon as it has been split.
fn fill<K: Key, V: Serialize>(
    buffer: &mut Parts<K, V>,
    records: &mut dyn Iterator<Item = (K, V)>,
) -> bool {
    for record in records {
        if !buffer.push(0, record) {
            return false;
        }
    }
    true
}

/// Merges the combiners `records` of one reduce partition by key with `merge`, each key
/// once, within the running task's budget (see the module header).
pub fn merge_combiners<K, C>(
    records: &mut dyn Iterator<Item = (K, C)>,
    merge: MergeCombiners<C>,
) -> Result<BatchIter<(K, C)>>
where
    K: Key,
    C: Serialize + DeserializeOwned + Send + 'static,
{
    let merge_value = Arc::clone(&merge);
    combine_values(records, |c| c, move |a, b| merge_value(a, b), merge)
}

/// Combines the values `records` of one reduce partition by key (`create` a key's first
/// value, `merge_value` the others into it; `merge` two combiners of a key when spilled
/// runs meet), each key once, within the running task's budget (see the module header):
/// the reduce side of an aggregation without a map-side combine, which receives values,
/// not combiners.
pub fn combine_values<K, V, C>(
    records: &mut dyn Iterator<Item = (K, V)>,
    create: impl Fn(V) -> C,
    merge_value: impl Fn(C, V) -> C,
    merge: MergeCombiners<C>,
) -> Result<BatchIter<(K, C)>>
where
    K: Key,
    V: Serialize,
    C: Serialize + DeserializeOwned + Send + 'static,
{
    let mut buffer = Parts::new(1, CHUNK);
    let whole = fill(&mut buffer, records);
    let (len, chunks) = buffer.take(0);
    let fanout = fanout(len, std::mem::size_of::<(K, C)>() + 1);
    if !whole || fanout == 1 {
        // The reservation covers the buffer until it is combined.
        let reservation = buffer.take_reservation();
        let rest = chunks.into_iter().flatten().chain(records);
        let merged = combine_spilling(rest, create, merge_value, merge);
        drop(reservation);
        return merged;
    }
    let mut parts = split(chunks, len, fanout);
    let mut merged = Vec::with_capacity(parts.len());
    let mut ratio = KeyRatio::default();
    for part in &mut parts {
        let (records, chunks) = part.take();
        let map = CombineMap::with_table(Combiners::with_capacity(ratio.keys_for(records)));
        let rest = chunks.into_iter().flatten();
        let (batches, keys) =
            combine_spilling_in(map, rest, &create, &merge_value, Arc::clone(&merge))?;
        ratio.note(records, keys);
        merged.push(batches);
    }
    drop(buffer);
    Ok(Box::new(merged.into_iter().flatten()))
}

/// Keys per record of the sub-parts combined so far, which sizes the next sub-part's map:
/// a map grown from empty to a sub-part's thousands of keys rehashed a dozen times
/// (profiled: `reserve_rehash` 3.5% of PageRank's iterations).
#[derive(Default)]
struct KeyRatio {
    records: usize,
    keys: usize,
}

impl KeyRatio {
    /// Notes a sub-part of `records` that held `keys`.
    fn note(&mut self, records: usize, keys: usize) {
        self.records += records;
        self.keys += keys;
    }

    /// The keys to expect of `records` (none before the first sub-part), an eighth over:
    /// hashing spreads keys over sub-parts unevenly.
    fn keys_for(&self, records: usize) -> usize {
        let keys = (records * self.keys).checked_div(self.records).unwrap_or(0);
        keys + keys / 8
    }
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
        let _task = budget.map(|b| enter_task_memory(MemoryManager::new(b)));
        let mut records = (0..n).map(|i| (i.wrapping_mul(0x9e37_79b9) % keys, i));
        let batches = merge_combiners(&mut records, Arc::new(|a, b| a + b)).unwrap();
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
        let capacity = buffer.capacity();
        let (len, chunks) = buffer.take(0);
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
    fn a_sub_parts_map_starts_as_large_as_the_keys_per_record_before_it_expect() {
        let mut ratio = KeyRatio::default();
        assert_eq!(ratio.keys_for(1000), 0, "nothing to go by yet");
        ratio.note(4000, 1000);
        ratio.note(4000, 1000);
        assert_eq!(ratio.keys_for(800), 225); // 200 keys, an eighth over
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
