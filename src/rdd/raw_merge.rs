//! The reduce-side merge of a sort whose records are plain old data and whose key's prefix
//! decides the order (TeraSort's records by their 10-byte key, integers by themselves): a
//! tournament of bare `u128` entries, keys read in place from the mapped blocks, and each
//! batch's records copied out once, together. A run's record that sorts before the one
//! it follows is an error: the runs were declared sorted.

use std::ops::Range;
use std::sync::Arc;

use crate::codec::RawCodec;
use crate::error::Result;
use crate::ids::ShuffleId;
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::rdd::sort_key::{SortKey, entry, index_of};
use crate::rdd::sort_merge::{out_of_order, raw_key_at};
use crate::rdd::tournament::{EXHAUSTED, Tournament};
use crate::shuffle::block::Block;
use crate::shuffle::files::prefetch;

/// How many records ahead of its head a run's bytes are fetched into the cache.
const PREFETCH_RECORDS: usize = 4;

/// Merges the sorted `runs` (block index, byte range; numbered in arrival order, so ties
/// come out in it) of `blocks`, records of `raw`'s layout.
pub fn merge<S: 'static, K: SortKey + 'static>(
    key: Arc<dyn Fn(&S) -> K + Send + Sync>,
    ascending: bool,
    raw: RawCodec<S>,
    blocks: Vec<Block>,
    runs: Vec<(u32, Range<usize>)>,
    shuffle: ShuffleId,
) -> Result<BatchIter<S>> {
    let mut merge = RawMerge {
        key,
        ascending,
        raw,
        blocks,
        runs,
        shuffle,
        tree: Tournament::new(&[]),
    };
    let heads = (0..merge.runs.len())
        .map(|run| merge.head(run))
        .collect::<Result<Vec<u128>>>()?;
    merge.tree = Tournament::new(&heads);
    Ok(Box::new(std::iter::from_fn(move || merge.next_batch())))
}

struct RawMerge<S, K> {
    key: Arc<dyn Fn(&S) -> K + Send + Sync>,
    ascending: bool,
    raw: RawCodec<S>,
    blocks: Vec<Block>,
    /// What remains of each run: its range starts at its head record.
    runs: Vec<(u32, Range<usize>)>,
    shuffle: ShuffleId,
    tree: Tournament,
}

impl<S, K: SortKey> RawMerge<S, K> {
    /// The entry of run `run`'s head record ([`EXHAUSTED`] when it has none), its key read
    /// in place.
    fn head(&self, run: usize) -> Result<u128> {
        let (b, range) = &self.runs[run];
        if range.start >= range.end {
            return Ok(EXHAUSTED);
        }
        let block = &self.blocks[*b as usize];
        let key = raw_key_at(&self.raw, &*self.key, block, range.start, self.shuffle)?;
        Ok(entry(&key, self.ascending, run as u64))
    }

    fn next_batch(&mut self) -> Option<Result<Vec<S>>> {
        if self.tree.winner() == EXHAUSTED {
            return None;
        }
        let width = self.raw.width();
        // Where each record of the batch starts: (block, byte), copied out at the end.
        let mut taken: Vec<(u32, usize)> = Vec::with_capacity(BATCH_SIZE);
        while taken.len() < BATCH_SIZE {
            let winner = self.tree.winner();
            if winner == EXHAUSTED {
                break;
            }
            let run = index_of(winner);
            let (b, range) = &mut self.runs[run];
            taken.push((*b, range.start));
            range.start += width;
            // A run is read in order, but the merge hops between many: the hardware's
            // prefetcher loses track (profiled: reading the next key was 10% of an executor).
            let ahead = range.start + PREFETCH_RECORDS * width;
            if ahead < range.end {
                prefetch(
                    &self.blocks[*b as usize].data[ahead..ahead + width.min(range.end - ahead)],
                );
            }
            let next = self.head(run).and_then(|next| {
                // Both entries carry the run's number: their prefixes decide.
                if next >= winner {
                    return Ok(next);
                }
                let (b, range) = &self.runs[run];
                let block = &self.blocks[*b as usize];
                Err(out_of_order(self.shuffle, block, range.start))
            });
            let next = match next {
                Ok(next) => next,
                Err(e) => {
                    self.tree = Tournament::new(&[]);
                    return Some(Err(e));
                }
            };
            self.tree.replace_winner(run, next);
        }
        let pieces: Vec<&[u8]> = taken
            .iter()
            .map(|&(b, at)| &self.blocks[b as usize].data[at..at + width])
            .collect();
        let mut batch = Vec::with_capacity(pieces.len());
        // Every record taken was whole: its key was read from it.
        if let Err(e) = self.raw.append(&pieces, &mut batch) {
            self.tree = Tournament::new(&[]);
            return Some(Err(crate::error::Error::Other(format!(
                "shuffle {}: {e}",
                self.shuffle
            ))));
        }
        Some(Ok(batch))
    }
}
