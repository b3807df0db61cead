//! The sort shuffle by a key of each record: map tasks order each bucket by key, reduce
//! tasks merge the sorted runs they receive (one per map output, or more) with a heap,
//! decoding each record once and holding one record per run, never the whole partition.
//!
//! The reduce side finds the runs itself (a record whose key goes against the order starts
//! a new one), so its output is sorted whatever the map side did; ties keep the order the
//! records arrived in (block, then position), as a stable sort would.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::ids::ShuffleId;
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::plan::shuffle_dep::{BucketSorter, MapSort};
use crate::rdd::shuffled::{SortPlan, corrupt};
use crate::shuffle::store::Block;

/// Sorting by a key of each record.
pub struct KeySort<S, K> {
    pub key: Arc<dyn Fn(&S) -> K + Send + Sync>,
    pub ascending: bool,
}

impl<S, K: Ord> KeySort<S, K> {
    fn order(&self, a: &K, b: &K) -> Ordering {
        if self.ascending { a.cmp(b) } else { b.cmp(a) }
    }
}

impl<S: 'static, K: Ord + Send + 'static> MapSort<S> for KeySort<S, K> {
    fn sorter(&self, buckets: usize) -> Box<dyn BucketSorter<S>> {
        Box::new(KeyBuckets {
            key: Arc::clone(&self.key),
            ascending: self.ascending,
            entries: (0..buckets).map(|_| Vec::new()).collect(),
        })
    }
}

/// One map task's (key, bytes) entries per bucket.
struct KeyBuckets<S, K> {
    key: Arc<dyn Fn(&S) -> K + Send + Sync>,
    ascending: bool,
    entries: Vec<Vec<(K, Range<usize>)>>,
}

impl<S, K: Ord> BucketSorter<S> for KeyBuckets<S, K> {
    fn push(&mut self, bucket: usize, record: &S, range: Range<usize>) {
        self.entries[bucket].push(((self.key)(record), range));
    }

    fn sort(&mut self, buckets: &mut [Vec<u8>]) {
        for (entries, bucket) in self.entries.iter_mut().zip(buckets.iter_mut()) {
            let mut entries = std::mem::take(entries);
            if entries
                .windows(2)
                .all(|w| in_order(self.ascending, &w[0].0, &w[1].0))
            {
                continue;
            }
            // Stable: equal keys keep the order they were pushed in (their byte offsets).
            if self.ascending {
                entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.start.cmp(&b.1.start)));
            } else {
                entries.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.start.cmp(&b.1.start)));
            }
            let mut sorted = Vec::with_capacity(bucket.len());
            for (_, range) in entries.drain(..) {
                sorted.extend_from_slice(&bucket[range]);
            }
            *bucket = sorted;
        }
    }

    fn held_bytes(&self) -> usize {
        let entries: usize = self.entries.iter().map(Vec::capacity).sum();
        entries * std::mem::size_of::<(K, Range<usize>)>()
    }
}

fn in_order<K: Ord>(ascending: bool, a: &K, b: &K) -> bool {
    if ascending { a <= b } else { a >= b }
}

impl<S, K> SortPlan<S> for KeySort<S, K>
where
    S: DeserializeOwned + Send + 'static,
    K: Ord + Send + 'static,
{
    fn merge(&self, blocks: Vec<Block>, shuffle: ShuffleId) -> Result<BatchIter<S>> {
        let runs = natural_runs(self, &blocks, shuffle)?;
        let mut merge = Merge {
            key: Arc::clone(&self.key),
            ascending: self.ascending,
            blocks,
            shuffle,
            heads: (0..runs.len()).map(|_| None).collect(),
            runs,
            heap: BinaryHeap::new(),
        };
        for run in 0..merge.runs.len() {
            merge.advance(run)?;
        }
        Ok(Box::new(std::iter::from_fn(move || merge.next_batch())))
    }
}

/// Decodes the record at `at` of `block`: it and where the next one starts.
fn decode_at<S: DeserializeOwned>(
    block: &Block,
    at: usize,
    shuffle: ShuffleId,
) -> Result<(S, usize)> {
    let end = block.range.end;
    let (record, rest) = postcard::take_from_bytes::<S>(&block.data[at..end]).map_err(|e| {
        let offset = at - block.range.start;
        corrupt(shuffle, block, format!("record at byte {offset}: {e}"))
    })?;
    Ok((record, end - rest.len()))
}

/// The maximal sorted runs of every block: (block index, byte range), in arrival order.
fn natural_runs<S: DeserializeOwned, K: Ord>(
    sort: &KeySort<S, K>,
    blocks: &[Block],
    shuffle: ShuffleId,
) -> Result<Vec<(u32, Range<usize>)>> {
    let mut runs = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        let mut start = block.range.start;
        let mut at = start;
        let mut last: Option<K> = None;
        while at < block.range.end {
            let (record, next) = decode_at::<S>(block, at, shuffle)?;
            let key = (sort.key)(&record);
            if last
                .as_ref()
                .is_some_and(|l| sort.order(l, &key) == Ordering::Greater)
            {
                runs.push((b as u32, start..at));
                start = at;
            }
            last = Some(key);
            at = next;
        }
        if start < block.range.end {
            runs.push((b as u32, start..block.range.end));
        }
    }
    Ok(runs)
}

/// The key of a run's head record in the merge heap (the record waits in its run's slot,
/// so the heap moves small entries).
struct Head<K> {
    key: K,
    run: usize,
    ascending: bool,
}

impl<K: Ord> Ord for Head<K> {
    /// The heap pops the greatest: the first key in the order, then the earliest run.
    fn cmp(&self, other: &Self) -> Ordering {
        let by_key = if self.ascending {
            other.key.cmp(&self.key)
        } else {
            self.key.cmp(&other.key)
        };
        by_key.then(other.run.cmp(&self.run))
    }
}

impl<K: Ord> PartialOrd for Head<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord> PartialEq for Head<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<K: Ord> Eq for Head<K> {}

/// A k-way merge of sorted runs of mapped blocks.
struct Merge<S, K> {
    key: Arc<dyn Fn(&S) -> K + Send + Sync>,
    ascending: bool,
    blocks: Vec<Block>,
    shuffle: ShuffleId,
    /// What remains of each run.
    runs: Vec<(u32, Range<usize>)>,
    /// Each run's decoded head record, while its key is in the heap.
    heads: Vec<Option<S>>,
    heap: BinaryHeap<Head<K>>,
}

impl<S: DeserializeOwned, K: Ord> Merge<S, K> {
    /// Moves run `run`'s next record into the heap, if it has one.
    fn advance(&mut self, run: usize) -> Result<()> {
        let (b, range) = &mut self.runs[run];
        if range.start >= range.end {
            return Ok(());
        }
        let (record, next) = decode_at::<S>(&self.blocks[*b as usize], range.start, self.shuffle)?;
        range.start = next;
        self.heap.push(Head {
            key: (self.key)(&record),
            run,
            ascending: self.ascending,
        });
        self.heads[run] = Some(record);
        Ok(())
    }

    fn next_batch(&mut self) -> Option<Result<Vec<S>>> {
        if self.heap.is_empty() {
            return None;
        }
        let mut batch = Vec::with_capacity(BATCH_SIZE.min(self.heap.len() * 64));
        while batch.len() < BATCH_SIZE {
            let Some(head) = self.heap.pop() else { break };
            let Some(record) = self.heads[head.run].take() else {
                unreachable!("a run in the heap has its head record")
            };
            if let Err(e) = self.advance(head.run) {
                self.heap.clear();
                return Some(Err(e));
            }
            batch.push(record);
        }
        Some(Ok(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn block(source: usize, records: &[(u32, u32)]) -> Block {
        let mut bytes = Vec::new();
        for r in records {
            codec::encode_into(&mut bytes, r);
        }
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        // SAFETY: a private temporary file nobody else writes.
        let data = Arc::new(unsafe { memmap2::Mmap::map(&file) }.unwrap());
        Block {
            source,
            data,
            range: 0..bytes.len(),
        }
    }

    fn by_first(ascending: bool) -> KeySort<(u32, u32), u32> {
        KeySort {
            key: Arc::new(|r: &(u32, u32)| r.0),
            ascending,
        }
    }

    fn merged(sort: &KeySort<(u32, u32), u32>, blocks: Vec<Block>) -> Vec<(u32, u32)> {
        let out = sort.merge(blocks, ShuffleId(0)).unwrap();
        out.flat_map(|b| b.unwrap()).collect()
    }

    #[test]
    fn the_merge_orders_any_blocks_like_a_stable_sort() {
        // Unsorted blocks too: runs are found, not assumed. The second field numbers the
        // records in arrival order, so ties show whether it is stable.
        let mut n = 0;
        let mut next = |k: u32| {
            n += 1;
            (k, n)
        };
        let inputs: Vec<Vec<(u32, u32)>> = vec![
            [5, 1, 1, 9, 3, 3, 3, 0].map(&mut next).to_vec(),
            Vec::new(),
            [2, 4, 6, 1, 1, 8].map(&mut next).to_vec(),
            [3, 3, 7].map(&mut next).to_vec(),
        ];
        let all: Vec<(u32, u32)> = inputs.concat();
        for ascending in [true, false] {
            let blocks = inputs
                .iter()
                .enumerate()
                .map(|(i, r)| block(i, r))
                .collect();
            let mut expected = all.clone();
            if ascending {
                expected.sort_by_key(|r| r.0);
            } else {
                expected.sort_by_key(|r| std::cmp::Reverse(r.0));
            }
            assert_eq!(merged(&by_first(ascending), blocks), expected);
        }
    }

    #[test]
    fn map_buckets_are_sorted_stably_and_runs_stay_few() {
        let sort = by_first(true);
        let records = [(3, 0), (1, 1), (3, 2), (0, 3), (1, 4)];
        let mut buckets = vec![Vec::new(), Vec::new()];
        let mut sorter = sort.sorter(2);
        for r in &records {
            let b = (r.1 % 2) as usize;
            let start = buckets[b].len();
            codec::encode_into(&mut buckets[b], r);
            sorter.push(b, r, start..buckets[b].len());
        }
        sorter.sort(&mut buckets);
        let decoded: Vec<Vec<(u32, u32)>> = buckets
            .iter()
            .map(|b| {
                let mut v = Vec::new();
                codec::decode_all_into(b, &mut v).unwrap();
                v
            })
            .collect();
        assert_eq!(
            decoded,
            [vec![(1, 4), (3, 0), (3, 2)], vec![(0, 3), (1, 1)]]
        );
        let blocks: Vec<Block> = decoded
            .iter()
            .enumerate()
            .map(|(i, r)| block(i, r))
            .collect();
        let runs = natural_runs(&sort, &blocks, ShuffleId(0)).unwrap();
        assert_eq!(runs.len(), 2, "one run per sorted block: {runs:?}");
    }

    #[test]
    fn corrupt_bytes_are_an_error() {
        let mut b = block(1, &[(1, 1), (2, 2)]);
        let mut bytes = b.data.to_vec();
        bytes.truncate(bytes.len() - 1);
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        // SAFETY: as above.
        b.data = Arc::new(unsafe { memmap2::Mmap::map(&file) }.unwrap());
        b.range = 0..bytes.len();
        let err = by_first(true).merge(vec![b], ShuffleId(4)).err().unwrap();
        assert!(err.to_string().contains("shuffle 4"), "{err}");
    }
}
