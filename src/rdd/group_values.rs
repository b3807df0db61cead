//! The reduce side of `group_by_key`: a partition's values gathered by key, each key's
//! into one [`Group`] allocated once at its final size.
//!
//! Gathered as an aggregation whose combiner is a vector (`vec![v]`, then a push a value),
//! each key's vector grew by doubling (1, 4, 8, 16 values: an allocation, a copy and a
//! free each time) and was then copied once more into its group: PageRank's links, 70 M
//! edges over 8.7 M vertices at 1 GB, made about four allocations a vertex, each in fresh
//! memory the kernel zeroed (profiled: the grouping stage's allocations half its time).
//! Here a partition's records are buffered and split into cache-sized sub-parts as for
//! any aggregation (`reduce_combine`); a sub-part's keys are numbered in a small table, its
//! values counted by key, and each key's group collected from them at once.
//!
//! Values that own memory (`needs_drop`: strings, vectors) still go through the vectors,
//! which move them rather than clone them; so does a partition the budget cannot buffer
//! (the aggregation then spills as any other).

use std::sync::Arc;

use crate::error::Result;
use crate::plan::Data;
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::rdd::Key;
use crate::rdd::combine_table::TableHasher;
use crate::rdd::group::Group;
use crate::rdd::reduce_combine::{
    Buffered, ReduceHints, buffer_parts, combine_streaming, combine_values,
};
use crate::rdd::split_parts::Parts;

/// The groups of one reduce partition's `records` by key, each key once (see the module's
/// docs); `hints`, shared by the partition's tasks, as for `combine_values`.
pub fn group_values<K: Key, V: Data>(
    records: &mut impl Iterator<Item = (K, V)>,
    hints: &Arc<ReduceHints>,
) -> Result<BatchIter<(K, Group<V>)>> {
    if std::mem::needs_drop::<V>() {
        let vectors = combine_values(records, hints, first, push, Arc::new(append))?;
        return Ok(into_groups(vectors));
    }
    let slot = std::mem::size_of::<(K, u32)>() + 1;
    let (parts, buffer) = match buffer_parts(records, hints, slot) {
        Buffered::Split(parts, held) => {
            let parts: Vec<_> = parts.into_iter().map(|mut p| p.take().1).collect();
            (parts, held)
        }
        Buffered::Unsplit {
            buffer,
            read,
            whole: true,
        } => (read, buffer),
        Buffered::Unsplit { buffer, read, .. } => return streamed(records, buffer, read),
    };
    // A sub-part's records are numbered in `u32`: one of more goes through vectors.
    if parts
        .iter()
        .any(|p| p.iter().map(Vec::len).sum::<usize>() > u32::MAX as usize)
    {
        return streamed(records, buffer, parts);
    }
    Ok(Box::new(Grouped::new(parts, buffer, hints)))
}

/// The groups of the sub-parts `read` (each in chunks) and the rest of `records`,
/// gathered in vectors as they stream (the combine may spill), the records read staying
/// reserved (by `buffer`) until they have been combined.
fn streamed<K: Key, V: Data>(
    records: &mut impl Iterator<Item = (K, V)>,
    buffer: Parts<K, V>,
    read: Vec<Vec<Vec<(K, V)>>>,
) -> Result<BatchIter<(K, Group<V>)>> {
    let vectors = combine_streaming(buffer, read, records, first, push, Arc::new(append))?;
    Ok(into_groups(vectors))
}

/// A key's first value, gathered in a vector.
fn first<V>(v: V) -> Vec<V> {
    vec![v]
}

/// A further value of the key of `c`.
fn push<V>(mut c: Vec<V>, v: V) -> Vec<V> {
    c.push(v);
    c
}

/// Two vectors of one key (spilled runs meeting).
fn append<V>(mut a: Vec<V>, mut b: Vec<V>) -> Vec<V> {
    a.append(&mut b);
    a
}

/// Each gathered vector made a [`Group`].
fn into_groups<K: Key, V: Data>(vectors: BatchIter<(K, Vec<V>)>) -> BatchIter<(K, Group<V>)> {
    Box::new(
        vectors.map(|batch| {
            batch.map(|b| b.into_iter().map(|(k, vs)| (k, Group::from(vs))).collect())
        }),
    )
}

/// A partition's groups, a sub-part at a time as they are asked for.
struct Grouped<K, V> {
    /// The sub-parts not yet grouped, each in chunks.
    parts: std::vec::IntoIter<Vec<Vec<(K, V)>>>,
    /// The groups of the sub-part being handed on.
    ready: std::vec::IntoIter<(K, Group<V>)>,
    /// The table numbering a sub-part's keys, kept (emptied) for the next one.
    table: hashbrown::HashMap<K, u32, TableHasher>,
    /// Groups so far (noted in the hints at the end).
    keys: usize,
    hints: Arc<ReduceHints>,
    /// What holds the buffered records' reservation, given back at the end.
    held: Option<Parts<K, V>>,
}

impl<K: Key, V: Data> Grouped<K, V> {
    fn new(parts: Vec<Vec<Vec<(K, V)>>>, held: Parts<K, V>, hints: &Arc<ReduceHints>) -> Self {
        Grouped {
            parts: parts.into_iter(),
            ready: Vec::new().into_iter(),
            table: hashbrown::HashMap::with_hasher(TableHasher),
            keys: 0,
            hints: Arc::clone(hints),
            held: Some(held),
        }
    }
}

impl<K: Key, V: Data> Iterator for Grouped<K, V> {
    type Item = Result<Vec<(K, Group<V>)>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let batch: Vec<_> = self.ready.by_ref().take(BATCH_SIZE).collect();
            if !batch.is_empty() {
                return Some(Ok(batch));
            }
            let Some(chunks) = self.parts.next() else {
                if self.held.take().is_some() {
                    self.hints.keys.note(self.keys);
                }
                return None;
            };
            let groups = group_part(chunks, &mut self.table);
            self.keys += groups.len();
            self.ready = groups.into_iter();
        }
    }
}

/// The records of `chunks` grouped by key (values in their order), through `table`
/// (left empty): the keys numbered as they first come, the values counted by key and
/// ordered by it (a counting sort of their indices), each group then collected from its
/// run at its size. `V` owns no memory: a value is copied into its group.
fn group_part<K: Key, V: Data>(
    chunks: Vec<Vec<(K, V)>>,
    table: &mut hashbrown::HashMap<K, u32, TableHasher>,
) -> Vec<(K, Group<V>)> {
    let len = chunks.iter().map(Vec::len).sum();
    let mut group_of: Vec<u32> = Vec::with_capacity(len);
    let mut values: Vec<V> = Vec::with_capacity(len);
    let mut counts: Vec<u32> = Vec::new();
    for chunk in chunks {
        for (k, v) in chunk {
            let next = counts.len() as u32;
            let g = *table.entry(k).or_insert(next);
            if g == next {
                counts.push(0);
            }
            counts[g as usize] += 1;
            group_of.push(g);
            values.push(v);
        }
    }
    // Where each group's run starts, then each value's index placed in its run.
    let mut start: Vec<u32> = Vec::with_capacity(counts.len() + 1);
    let mut at = 0u32;
    for &c in &counts {
        start.push(at);
        at += c;
    }
    start.push(at);
    let mut fill = start.clone();
    let mut order = vec![0u32; len];
    for (i, &g) in group_of.iter().enumerate() {
        order[fill[g as usize] as usize] = i as u32;
        fill[g as usize] += 1;
    }
    table
        .drain()
        .map(|(k, g)| {
            let run = &order[start[g as usize] as usize..start[g as usize + 1] as usize];
            (k, run.iter().map(|&i| values[i as usize].clone()).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryManager;
    use crate::plan::task::enter_task_memory;

    /// The groups of `n` records over `keys` keys (value `i` to key `i * 7 % keys`), by a
    /// task after `hints`, within `budget` (none: unbounded): sorted by key.
    fn grouped<V: Data>(
        hints: &Arc<ReduceHints>,
        budget: Option<u64>,
        n: u64,
        keys: u64,
        value: impl Fn(u64) -> V + 'static,
    ) -> Vec<(u64, Vec<V>)> {
        let _task = budget.map(|b| enter_task_memory(MemoryManager::new(b)));
        let mut records = (0..n).map(|i| (i * 7 % keys, value(i)));
        let batches = group_values(&mut records, hints).unwrap();
        let mut out = Vec::new();
        for batch in batches {
            let batch = batch.unwrap();
            assert!(!batch.is_empty() && batch.len() <= BATCH_SIZE);
            out.extend(batch.into_iter().map(|(k, g)| (k, g.to_vec())));
        }
        out.sort_by_key(|(k, _)| *k);
        out
    }

    fn reference<V>(n: u64, keys: u64, value: impl Fn(u64) -> V) -> Vec<(u64, Vec<V>)> {
        let mut groups = std::collections::BTreeMap::<u64, Vec<V>>::new();
        for i in 0..n {
            groups.entry(i * 7 % keys).or_default().push(value(i));
        }
        groups.into_iter().collect()
    }

    #[test]
    fn every_keys_values_come_out_in_one_group_in_their_order() {
        // One sub-part, then many (a first task counting, and one after it splitting as it
        // reads), values that own memory (gathered in vectors), and a budget too small to
        // buffer the partition (gathered in vectors, spilling). Every key comes out once.
        let hints = Arc::default();
        for (n, keys) in [
            (0, 1),
            (1, 1),
            (5_000, 700),
            (700_000, 250_000),
            (700_000, 3),
        ] {
            let want = reference(n, keys, |i| i);
            assert_eq!(
                grouped(&hints, None, n, keys, |i| i),
                want,
                "{n} over {keys}"
            );
        }
        let strings = |i: u64| format!("v{i}");
        let want = reference(300_000, 90_000, strings);
        assert_eq!(
            grouped(&Arc::default(), None, 300_000, 90_000, strings),
            want
        );
        // Spilled runs meet in no set order: a group's values then come in any order.
        let want = reference(1_500_000, 600_000, |i| i);
        let mut short = grouped(&Arc::default(), Some(4 << 20), 1_500_000, 600_000, |i| i);
        short.iter_mut().for_each(|(_, vs)| vs.sort_unstable());
        assert_eq!(short, want);
    }

    #[test]
    fn a_sub_parts_groups_hold_each_keys_values_in_order_and_leave_the_table_empty() {
        let mut table = hashbrown::HashMap::with_hasher(TableHasher);
        let chunks = vec![
            vec![(1u64, 10u64), (2, 20), (1, 11)],
            vec![(3, 30), (1, 12)],
        ];
        let mut groups = group_part(chunks, &mut table);
        assert!(table.is_empty());
        groups.sort_by_key(|(k, _)| *k);
        let got: Vec<(u64, Vec<u64>)> = groups.iter().map(|(k, g)| (*k, g.to_vec())).collect();
        assert_eq!(got, [(1, vec![10, 11, 12]), (2, vec![20]), (3, vec![30])]);
    }
}
