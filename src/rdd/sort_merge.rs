//! The reduce-side merge of a sort by key, for any records: takes the sorted runs each
//! block's header declares, then merges them with a heap, decoding each record once and
//! holding one record per run, never the whole partition. Plain old data whose key's
//! prefix decides the order is merged by `raw_merge` instead, over the same runs.
//!
//! A run found out of order as it is merged is an error (corrupt shuffle data), never an
//! unsorted output; ties keep the order the records arrived in (block, then position), as
//! a stable sort would.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::codec::RawCodec;
use crate::error::{Error, Result};
use crate::ids::ShuffleId;
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::rdd::shuffled::corrupt;
use crate::rdd::sort_key::{SortKey, entry, in_direction, index_of, prefix_decides, same_prefix};
use crate::shuffle::block::Block;
use crate::shuffle::files::read_runs_header;

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
fn decode_at<S: DeserializeOwned + 'static>(
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
fn key_at<S: DeserializeOwned + 'static, K>(
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

/// The sorted runs of every block, as the map side declared them in the block's header
/// (`files::runs_header`): (block index, byte range), in arrival order.
pub(super) fn declared_runs(
    blocks: &[Block],
    shuffle: ShuffleId,
) -> Result<Vec<(u32, Range<usize>)>> {
    let mut runs = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        let (lens, header) =
            read_runs_header(block.bytes()).map_err(|e| corrupt(shuffle, block, e))?;
        let mut at = block.range.start + header;
        for len in lens {
            runs.push((b as u32, at..at + len as usize));
            at += len as usize;
        }
    }
    Ok(runs)
}

/// The error of a run whose record at `at` of `block` sorts before the one it follows:
/// the map side wrote each run sorted, so its bytes are corrupt.
pub(super) fn out_of_order(shuffle: ShuffleId, block: &Block, at: usize) -> Error {
    corrupt(
        shuffle,
        block,
        format!(
            "record at byte {}: out of its sorted run's order",
            at - block.range.start
        ),
    )
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

impl<S: DeserializeOwned + 'static, K: SortKey> Merge<S, K> {
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

    /// Puts run `run`'s next head in place of the top, its head before (one sift instead
    /// of a pop and a push), or pops the top when the run is done.
    fn replace_top(&mut self, run: usize) -> Result<()> {
        let at = self.runs[run].1.start;
        let Some(head) = self.advance(run)? else {
            self.heap.pop();
            return Ok(());
        };
        if let Some(mut top) = self.heap.peek_mut() {
            if head < top.0 {
                let block = &self.blocks[self.runs[run].0 as usize];
                return Err(out_of_order(self.shuffle, block, at));
            }
            *top = Reverse(head);
        }
        Ok(())
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
            if let Err(e) = self.replace_top(run) {
                self.heap.clear();
                return Some(Err(e));
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
        let runs = declared_runs(&blocks, shuffle)?;
        merge(Arc::new(key), ascending, None, blocks, runs, shuffle)
    }

    fn all(batches: Result<BatchIter<(u32, u32)>>) -> Result<Vec<(u32, u32)>> {
        batches?.collect::<Result<Vec<_>>>().map(|b| b.concat())
    }

    #[test]
    fn the_merge_orders_the_declared_runs_like_a_stable_sort() {
        // The second field numbers the records in arrival order, so ties show whether it
        // is stable.
        let mut n = 0;
        let mut next = |k: &[u32]| -> Vec<(u32, u32)> {
            k.iter()
                .map(|&k| {
                    n += 1;
                    (k, n)
                })
                .collect()
        };
        let keys: [&[&[u32]]; 4] = [
            &[&[5], &[1, 1, 9], &[3, 3, 3], &[0]],
            &[],
            &[&[2, 4, 6], &[1, 1, 8]],
            &[&[3, 3, 7]],
        ];
        let inputs: Vec<Vec<Vec<(u32, u32)>>> = keys
            .iter()
            .map(|runs| runs.iter().map(|r| next(r)).collect())
            .collect();
        let every: Vec<(u32, u32)> = inputs.iter().flatten().flatten().copied().collect();
        for ascending in [true, false] {
            let blocks = inputs
                .iter()
                .enumerate()
                .map(|(i, runs)| {
                    let runs: Vec<Vec<(u32, u32)>> = runs
                        .iter()
                        .map(|r| {
                            let mut r = r.clone();
                            if !ascending {
                                // A descending sort's runs descend (stably: ties keep
                                // their arrival order).
                                r.sort_by_key(|x| std::cmp::Reverse(x.0));
                            }
                            r
                        })
                        .collect();
                    let runs: Vec<&[(u32, u32)]> = runs.iter().map(Vec::as_slice).collect();
                    Block::encoded_runs(i, &runs)
                })
                .collect();
            let mut expected = every.clone();
            if ascending {
                expected.sort_by_key(|r| r.0);
            } else {
                expected.sort_by_key(|r| std::cmp::Reverse(r.0));
            }
            let out = all(merged(ascending, blocks, ShuffleId(0))).unwrap();
            assert_eq!(out, expected, "ascending {ascending}");
        }
    }

    #[test]
    fn a_run_out_of_order_is_an_error_not_an_unsorted_output() {
        let block = Block::encoded_runs(3, &[&[(1, 1), (4, 2), (2, 3)], &[(0, 4)]]);
        let err = all(merged(true, vec![block], ShuffleId(5))).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("shuffle 5") && text.contains("order"),
            "{text}"
        );
        // The third record of the first run, after the 4 + 2 * 8 bytes of the header.
        let third = 20 + 2 * crate::codec::encode(&(1u32, 1u32)).len();
        assert!(text.contains(&format!("record at byte {third}:")), "{text}");
    }

    #[test]
    fn corrupt_bytes_are_an_error() {
        let records = [(1u32, 1u32), (2, 2)];
        let mut bytes = Vec::new();
        records
            .iter()
            .for_each(|r| crate::codec::encode_into(&mut bytes, r));
        bytes.truncate(bytes.len() - 1);
        let b = Block::sorted_runs(1, &[&bytes]);
        let err = all(merged(true, vec![b], ShuffleId(4))).unwrap_err();
        assert!(err.to_string().contains("shuffle 4"), "{err}");
        // The cut record is the second: named by where it starts in the block.
        let second = 12 + crate::codec::encode(&records[0]).len();
        let at = format!("record at byte {second}:");
        assert!(err.to_string().contains(&at), "{err}");
        // A header that does not describe its block, and a block too short for one.
        let mut lying = Block::sorted_runs_bytes(&[&bytes]);
        lying.push(0);
        for bytes in [lying, vec![1, 0]] {
            let err = all(merged(
                true,
                vec![Block::in_temp_file(2, &bytes)],
                ShuffleId(4),
            ))
            .unwrap_err();
            assert!(err.to_string().contains("shuffle 4"), "{err}");
        }
    }
}
