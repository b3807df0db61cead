//! The reduce-side merge of a sort by key, for any records: finds the sorted runs of the
//! blocks received (a record whose key goes against the order starts a new one), then
//! merges them with a heap, decoding each record once and holding one record per run,
//! never the whole partition. Plain old data whose key's prefix decides the order is
//! merged by `raw_merge` instead, over the same runs.
//!
//! Since the runs are found, not assumed, the output is sorted whatever the map side did;
//! ties keep the order the records arrived in (block, then position), as a stable sort
//! would.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::codec::RawCodec;
use crate::error::Result;
use crate::ids::ShuffleId;
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::rdd::shuffled::corrupt;
use crate::rdd::sort_key::{SortKey, entry, in_direction, index_of, prefix_decides, same_prefix};
use crate::shuffle::store::Block;

/// Merges the sorted `runs` (block index, byte range; numbered in arrival order, so ties
/// come out in it) of `blocks`, records encoded by `raw` if given, else by the codec.
pub(super) fn merge<S, K>(
    key: Arc<dyn Fn(&S) -> K + Send + Sync>,
    ascending: bool,
    raw: Option<RawCodec<S>>,
    blocks: Vec<Block>,
    runs: Vec<(u32, Range<usize>)>,
    shuffle: ShuffleId,
) -> Result<BatchIter<S>>
where
    S: DeserializeOwned + Send + 'static,
    K: SortKey + Send + Sync + 'static,
{
    let mut merge = Merge {
        key,
        ascending,
        raw,
        blocks,
        shuffle,
        heads: (0..runs.len()).map(|_| None).collect(),
        runs,
        heap: BinaryHeap::new(),
    };
    for run in 0..merge.runs.len() {
        if let Some(head) = merge.advance(run)? {
            merge.heap.push(Reverse(head));
        }
    }
    Ok(Box::new(std::iter::from_fn(move || merge.next_batch())))
}

/// Decodes the record at `at` of `block`: it and where the next one starts.
fn decode_at<S: DeserializeOwned>(
    raw: Option<&RawCodec<S>>,
    block: &Block,
    at: usize,
    shuffle: ShuffleId,
) -> Result<(S, usize)> {
    let start = block.range.start;
    match raw {
        Some(raw) => {
            let record = raw.read(&block.data[at..block.range.end]).map_err(|e| {
                corrupt(
                    shuffle,
                    block,
                    format!("record at byte {}: {e}", at - start),
                )
            })?;
            Ok((record, at + raw.width()))
        }
        None => {
            let (record, next) =
                crate::codec::decode_at(&block.data[block.range.clone()], at - start)
                    .map_err(|e| corrupt(shuffle, block, e))?;
            Ok((record, start + next))
        }
    }
}

/// The key of the raw record at `at` of `block`, read in place.
pub(super) fn raw_key_at<S, K>(
    raw: &RawCodec<S>,
    key: &(dyn Fn(&S) -> K + Send + Sync),
    block: &Block,
    at: usize,
    shuffle: ShuffleId,
) -> Result<K> {
    raw.with(&block.data[at..block.range.end], key)
        .map_err(|e| {
            corrupt(
                shuffle,
                block,
                format!("record at byte {}: {e}", at - block.range.start),
            )
        })
}

/// The key of the record at `at` of `block` (read in place, if raw) and where the next
/// record starts.
fn key_at<S: DeserializeOwned, K>(
    raw: Option<&RawCodec<S>>,
    key: &(dyn Fn(&S) -> K + Send + Sync),
    block: &Block,
    at: usize,
    shuffle: ShuffleId,
) -> Result<(K, usize)> {
    match raw {
        Some(raw) => Ok((raw_key_at(raw, key, block, at, shuffle)?, at + raw.width())),
        None => {
            let (record, next) = decode_at::<S>(None, block, at, shuffle)?;
            Ok((key(&record), next))
        }
    }
}

/// The maximal sorted runs of every block (in the order of `key`, `ascending`; records
/// encoded by `raw` if given): (block index, byte range), in arrival order.
pub(super) fn natural_runs<S: DeserializeOwned, K: SortKey>(
    key: &(dyn Fn(&S) -> K + Send + Sync),
    ascending: bool,
    raw: Option<&RawCodec<S>>,
    blocks: &[Block],
    shuffle: ShuffleId,
) -> Result<Vec<(u32, Range<usize>)>> {
    let mut runs = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        let mut start = block.range.start;
        let mut at = start;
        let mut last: Option<(u128, K)> = None;
        while at < block.range.end {
            let (k, next) = key_at(raw, key, block, at, shuffle)?;
            let e = entry(&k, ascending, 0);
            let descends = last.as_ref().is_some_and(|(le, lk)| {
                *le > e
                    || (*le == e
                        && !prefix_decides::<K>()
                        && in_direction(ascending, lk, &k) == Ordering::Greater)
            });
            if descends {
                runs.push((b as u32, start..at));
                start = at;
            }
            last = Some((e, k));
            at = next;
        }
        if start < block.range.end {
            runs.push((b as u32, start..block.range.end));
        }
    }
    Ok(runs)
}

/// A run's head record in the merge heap (the record waits in its run's slot, so the heap
/// moves small entries): its entry (key prefix, run number) and, where prefixes can tie,
/// its key.
struct Head<K> {
    entry: u128,
    key: Option<K>,
    ascending: bool,
}

impl<K: SortKey> Ord for Head<K> {
    /// The first key in the sort's order, then the earliest run, is the least.
    fn cmp(&self, other: &Self) -> Ordering {
        if same_prefix(self.entry, other.entry)
            && let (Some(a), Some(b)) = (&self.key, &other.key)
        {
            in_direction(self.ascending, a, b).then(self.entry.cmp(&other.entry))
        } else {
            self.entry.cmp(&other.entry)
        }
    }
}

impl<K: SortKey> PartialOrd for Head<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: SortKey> PartialEq for Head<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<K: SortKey> Eq for Head<K> {}

/// A k-way merge of sorted runs of mapped blocks.
struct Merge<S, K> {
    key: Arc<dyn Fn(&S) -> K + Send + Sync>,
    ascending: bool,
    /// Raw records wait in their blocks until taken: a run's range then starts at its head.
    raw: Option<RawCodec<S>>,
    blocks: Vec<Block>,
    shuffle: ShuffleId,
    /// What remains of each run.
    runs: Vec<(u32, Range<usize>)>,
    /// Each run's decoded head record, while its key is in the heap (not for raw records).
    heads: Vec<Option<S>>,
    heap: BinaryHeap<Reverse<Head<K>>>,
}

impl<S: DeserializeOwned, K: SortKey> Merge<S, K> {
    /// Run `run`'s next record's heap entry, if it has one (decoded into its slot, unless
    /// raw).
    fn advance(&mut self, run: usize) -> Result<Option<Head<K>>> {
        let (b, range) = &mut self.runs[run];
        if range.start >= range.end {
            return Ok(None);
        }
        let block = &self.blocks[*b as usize];
        let key = match &self.raw {
            Some(raw) => key_at(Some(raw), &*self.key, block, range.start, self.shuffle)?.0,
            None => {
                let (record, next) = decode_at::<S>(None, block, range.start, self.shuffle)?;
                range.start = next;
                let key = (self.key)(&record);
                self.heads[run] = Some(record);
                key
            }
        };
        Ok(Some(Head {
            entry: entry(&key, self.ascending, run as u64),
            key: (!prefix_decides::<K>()).then_some(key),
            ascending: self.ascending,
        }))
    }

    fn next_batch(&mut self) -> Option<Result<Vec<S>>> {
        if self.heap.is_empty() {
            return None;
        }
        let mut batch = Vec::with_capacity(BATCH_SIZE.min(self.heap.len() * 64));
        while batch.len() < BATCH_SIZE {
            let Some(top) = self.heap.peek() else { break };
            let run = index_of(top.0.entry);
            let record = match &self.raw {
                Some(raw) => {
                    let (b, range) = &mut self.runs[run];
                    // Its whole record was checked when its key was read.
                    let (record, next) = match decode_at(
                        Some(raw),
                        &self.blocks[*b as usize],
                        range.start,
                        self.shuffle,
                    ) {
                        Ok(r) => r,
                        Err(e) => {
                            self.heap.clear();
                            return Some(Err(e));
                        }
                    };
                    range.start = next;
                    record
                }
                None => match self.heads[run].take() {
                    Some(record) => record,
                    None => unreachable!("a run in the heap has its head record"),
                },
            };
            batch.push(record);
            // The run's next head replaces it in place: one sift instead of a pop and a push.
            match self.advance(run) {
                Ok(Some(head)) => {
                    if let Some(mut top) = self.heap.peek_mut() {
                        *top = Reverse(head);
                    }
                }
                Ok(None) => {
                    self.heap.pop();
                }
                Err(e) => {
                    self.heap.clear();
                    return Some(Err(e));
                }
            }
        }
        Some(Ok(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records of `blocks` merged by their first field: their runs, then the merge.
    fn merged(
        ascending: bool,
        blocks: Vec<Block>,
        shuffle: ShuffleId,
    ) -> Result<BatchIter<(u32, u32)>> {
        let key = |r: &(u32, u32)| r.0;
        let runs = natural_runs(&key, ascending, None, &blocks, shuffle)?;
        merge(Arc::new(key), ascending, None, blocks, runs, shuffle)
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
                .map(|(i, r)| Block::encoded(i, r))
                .collect();
            let mut expected = all.clone();
            if ascending {
                expected.sort_by_key(|r| r.0);
            } else {
                expected.sort_by_key(|r| std::cmp::Reverse(r.0));
            }
            let out: Vec<(u32, u32)> = merged(ascending, blocks, ShuffleId(0))
                .unwrap()
                .flat_map(|b| b.unwrap())
                .collect();
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn corrupt_bytes_are_an_error() {
        let mut bytes = Block::encoded(1, &[(1, 1), (2, 2)]).bytes().to_vec();
        bytes.truncate(bytes.len() - 1);
        let b = Block::in_temp_file(1, &bytes);
        let err = merged(true, vec![b], ShuffleId(4)).err().unwrap();
        assert!(err.to_string().contains("shuffle 4"), "{err}");
        // The cut record is the second: named by where it starts in the block.
        let second = crate::codec::encode(&(1u64, 1u64)).len();
        let at = format!("record at byte {second}:");
        assert!(err.to_string().contains(&at), "{err}");
    }
}
