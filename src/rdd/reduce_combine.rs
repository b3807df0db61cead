//! The reduce side of an aggregation: a partition's combiners merged by key, a cache-sized
//! sub-part of its keys at a time.
//!
//! One hash map for a whole reduce partition grows as large as its distinct keys
//! (PageRank at 256 MB: ~600 k a partition, a 10 MB map), so every record is a cache miss
//! (profiled: the reduce side's `combine_spilling` a fifth of an iteration). Records are
//! instead first buffered and split by bits of their key's hash into sub-parts whose maps
//! stay in the cache ([`fanout`]); keys of different sub-parts never meet, so each is
//! combined on its own (by [`combine_spilling`], which may still spill) and each key
//! still comes out once. A partition small enough for one cache-sized map, or one whose
//! buffer the budget cannot hold, is combined as it streams, as before.

use std::hash::BuildHasher;

use rustc_hash::FxBuildHasher;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::plan::batch::BatchIter;
use crate::rdd::Key;
use crate::rdd::combine::HeldRecords;
use crate::rdd::partitioned_combine::{fanout, sub_part};
use crate::rdd::spill_combine::{MergeCombiners, combine_spilling};

/// A partition's records read into memory, as far as the budget let them.
struct Buffer<K, C> {
    records: Vec<(K, C)>,
    held: HeldRecords,
}

impl<K: Key, C: Serialize> Buffer<K, C> {
    /// Reads `records` until they end (true) or the budget has no room for more (false).
    fn fill(&mut self, records: &mut dyn Iterator<Item = (K, C)>) -> bool {
        for record in records {
            let check = self.held.count(&record);
            self.records.push(record);
            let slots = self.records.capacity() * std::mem::size_of::<(K, C)>();
            if check && !self.held.fits(slots) {
                return false;
            }
        }
        true
    }
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
    let mut buffer = Buffer {
        records: Vec::new(),
        held: HeldRecords::new(),
    };
    let whole = buffer.fill(records);
    let slot = std::mem::size_of::<(K, C)>() + 1;
    let fanout = fanout(buffer.records.len(), slot);
    let merge_value = |a, b| merge(a, b);
    if !whole || fanout == 1 {
        // The reservation covers the buffer until it is combined.
        let reservation = buffer.held.take_reservation();
        let rest = buffer.records.into_iter().chain(records);
        let merged = combine_spilling(rest, |c| c, merge_value, merge.clone());
        drop(reservation);
        return merged;
    }
    let parts = split(buffer.records, fanout);
    let mut merged = Vec::with_capacity(parts.len());
    for part in parts {
        merged.push(combine_spilling(
            part.into_iter(),
            |c| c,
            merge_value,
            merge.clone(),
        )?);
    }
    drop(buffer.held);
    Ok(Box::new(merged.into_iter().flatten()))
}

/// `records` split into `fanout` sub-parts by key hash, each allocated at its exact size.
fn split<K: Key, C>(records: Vec<(K, C)>, fanout: usize) -> Vec<Vec<(K, C)>> {
    let subs: Vec<u16> = records
        .iter()
        .map(|(k, _)| sub_part(FxBuildHasher.hash_one(k), fanout) as u16)
        .collect();
    let mut counts = vec![0usize; fanout];
    for &s in &subs {
        counts[s as usize] += 1;
    }
    let mut parts: Vec<Vec<(K, C)>> = counts.into_iter().map(Vec::with_capacity).collect();
    for (record, s) in records.into_iter().zip(subs) {
        parts[s as usize].push(record);
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
            .map(|(k, _)| sub_part(FxBuildHasher.hash_one(k), fanout))
            .collect()
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
    fn a_small_partition_or_a_tight_budget_merges_as_it_streams_with_the_same_result() {
        for (budget, n, keys) in [(None, 5_000, 1_000), (Some(4 << 20), 1_500_000, 600_000)] {
            let mut out = merged(budget, n, keys);
            out.sort_unstable();
            assert_eq!(out, reference(n, keys), "budget {budget:?}");
        }
    }
}
