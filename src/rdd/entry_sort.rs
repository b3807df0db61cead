//! The reduce side of a located sort (`sort_located`), whose records are sort entries: a
//! key's prefix above a location, so that their order as integers is the key's order
//! (equal keys by location, which the sort leaves unset). A partition's entries are read
//! out of the runs it received into one array and radix sorted there, where the budget
//! has room for them twice (the sort's own room, given back once sorted); else the runs
//! are merged as any sort's.
//!
//! Merging a record at a time from tens of runs (a tournament of their heads) cost TeraSort
//! more than sorting the entries again: 5.4 M entries radix sort in about 0.1 s, the merge
//! took 0.2-0.25 s a task. A shuffled sort of other records cannot do this cheaply: its
//! sorted entries would name records scattered over the blocks, read again at random.

use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ids::ShuffleId;
use crate::memory::{MemoryManager, Reservation};
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::plan::shuffle_dep::{BucketSorter, MapSort};
use crate::rdd::shuffled::SortPlan;
use crate::rdd::sort_key::{INDEX_BITS, SortKey};
use crate::rdd::sort_merge::{declared_runs, out_of_order};
use crate::rdd::sorted_runs::KeySort;
use crate::shuffle::block::Block;

/// A sort of entries by `K`, a key whose order is the entries' own (that of their bits
/// above [`INDEX_BITS`]): map tasks sort their
/// buckets as `runs` does (so the runs can still be merged), the reduce side sorts each
/// partition's entries at once where it can.
pub struct SortedAtOnce<K> {
    pub runs: KeySort<u128, K>,
}

impl<K: SortKey + Send + Sync + 'static> MapSort<u128> for SortedAtOnce<K> {
    fn sorter(&self, buckets: usize) -> Box<dyn BucketSorter<u128>> {
        self.runs.sorter(buckets)
    }

    fn raw_codec(&self) -> Option<crate::codec::RawCodec<u128>> {
        self.runs.raw_codec()
    }
}

impl<K: SortKey + Send + Sync + 'static> SortPlan<u128> for SortedAtOnce<K> {
    fn merge(
        &self,
        blocks: Vec<Block>,
        shuffle: ShuffleId,
        memory: &Arc<MemoryManager>,
    ) -> Result<BatchIter<u128>> {
        let Some(raw) = self.runs.raw else {
            return self.runs.merge(blocks, shuffle, memory);
        };
        let runs = declared_runs(&blocks, shuffle)?;
        let bytes: usize = runs.iter().map(|(_, range)| range.len()).sum();
        let mut reservation = memory.reservation();
        if !reservation.grow_to(2 * bytes as u64) {
            return self.runs.merge(blocks, shuffle, memory);
        }
        let pieces: Vec<&[u8]> = runs
            .iter()
            .map(|(b, range)| &blocks[*b as usize].data[range.clone()])
            .collect();
        let mut entries = Vec::with_capacity(bytes / raw.width());
        raw.append(&pieces, &mut entries)
            .map_err(|e| Error::Other(format!("shuffle {shuffle}: {e}")))?;
        check_runs(&entries, &runs, &blocks, shuffle, self.runs.ascending)?;
        drop(pieces);
        drop(blocks);
        voracious_radix_sort::RadixSort::voracious_sort(&mut entries);
        // The sort's room is free again: the entries stay until their last batch.
        reservation.shrink_to(bytes as u64);
        if !self.runs.ascending {
            entries.reverse();
        }
        Ok(batches(entries, reservation))
    }
}

/// Checks that every run of `entries` (the `runs` of `blocks`, one after another) is in
/// its declared order, as a merge of them would: a run out of it has corrupt bytes.
fn check_runs(
    entries: &[u128],
    runs: &[(u32, Range<usize>)],
    blocks: &[Block],
    shuffle: ShuffleId,
    ascending: bool,
) -> Result<()> {
    let width = std::mem::size_of::<u128>();
    let mut at = 0;
    for (b, range) in runs {
        let run = &entries[at..at + range.len() / width];
        at += run.len();
        let key = |e: u128| e >> INDEX_BITS;
        let wrong = run.windows(2).position(|w| {
            let (a, b) = (key(w[0]), key(w[1]));
            if ascending { a > b } else { a < b }
        });
        if let Some(i) = wrong {
            let block = &blocks[*b as usize];
            return Err(out_of_order(shuffle, block, range.start + (i + 1) * width));
        }
    }
    Ok(())
}

/// `entries` handed on in batches, `reservation` (their memory) held until the last.
fn batches(entries: Vec<u128>, reservation: Reservation) -> BatchIter<u128> {
    let mut at = 0;
    Box::new(std::iter::from_fn(move || {
        let _held = &reservation;
        let batch = entries.get(at..entries.len().min(at + BATCH_SIZE))?;
        at += batch.len();
        (!batch.is_empty()).then(|| Ok(batch.to_vec()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::RawCodec;
    use crate::rdd::sort_key::INDEX_BITS;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Prefix(u128);

    impl SortKey for Prefix {
        fn prefix(&self) -> u128 {
            self.0
        }
        const EXACT_BITS: Option<u32> = Some(128 - INDEX_BITS);
    }

    fn plan(ascending: bool) -> SortedAtOnce<Prefix> {
        let key = Arc::new(|e: &u128| Prefix(e >> INDEX_BITS << INDEX_BITS));
        SortedAtOnce {
            runs: KeySort::new(key, ascending, Some(RawCodec::pod())),
        }
    }

    /// Runs of entries (each sorted in `ascending` order), as blocks of two runs each.
    fn blocks(runs: &[Vec<u128>]) -> Vec<Block> {
        runs.chunks(2)
            .enumerate()
            .map(|(i, pair)| {
                let bytes: Vec<&[u8]> = pair.iter().map(|r| bytemuck::cast_slice(r)).collect();
                Block::sorted_runs(i, &bytes)
            })
            .collect()
    }

    /// What `plan` makes of `runs` under `budget`, and the most it reserved.
    fn sorted(plan: &SortedAtOnce<Prefix>, runs: &[Vec<u128>], budget: u64) -> (Vec<u128>, u64) {
        let memory = MemoryManager::new(budget);
        let batches = plan.merge(blocks(runs), ShuffleId(3), &memory).unwrap();
        // Sorted at once, the entries stay reserved (not the sort's room) while they are
        // handed on; merged, nothing.
        let entries = 16 * runs.iter().map(Vec::len).sum::<usize>() as u64;
        let held = memory.reserved();
        assert!(
            held == entries || held == 0,
            "{held} reserved for {entries} bytes"
        );
        let out: Vec<u128> = batches.flat_map(|b| b.unwrap()).collect();
        assert_eq!(
            memory.reserved(),
            0,
            "the reservation goes with the batches"
        );
        (out, memory.peak())
    }

    #[test]
    fn entries_come_out_in_key_order_sorted_at_once_or_merged() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for ascending in [true, false] {
            // 9 runs (one empty) of 0-3000 entries over few keys: ties across runs.
            let mut runs: Vec<Vec<u128>> = (0..9)
                .map(|r| {
                    let n = if r == 4 { 0 } else { rng.random_range(1..3000) };
                    (0..n)
                        .map(|i| {
                            let key: u128 = rng.random_range(0..50);
                            key << 100 | (r as u128) << 20 | i as u128
                        })
                        .collect()
                })
                .collect();
            for run in &mut runs {
                run.sort_unstable();
                if !ascending {
                    run.reverse();
                }
            }
            let mut all: Vec<u128> = runs.concat();
            all.sort_unstable();
            let plan = plan(ascending);
            let key = |e: &u128| e >> INDEX_BITS;
            for budget in [1 << 30, 100] {
                let (out, peak) = sorted(&plan, &runs, budget);
                // Sorted at once: the entries and the sort's room reserved; merged: none.
                let bytes = 16 * all.len() as u64;
                assert_eq!(peak, if budget > 2 * bytes { 2 * bytes } else { 0 });
                let mut by_value = out.clone();
                by_value.sort_unstable();
                assert_eq!(by_value, all, "every entry once, budget {budget}");
                let in_order = out.windows(2).all(|w| {
                    if ascending {
                        key(&w[0]) <= key(&w[1])
                    } else {
                        key(&w[0]) >= key(&w[1])
                    }
                });
                assert!(in_order, "ascending {ascending}, budget {budget}");
            }
        }
    }

    #[test]
    fn a_run_out_of_its_order_is_an_error_sorted_at_once_or_merged() {
        let run: Vec<u128> = [1u128, 3, 2].map(|k| k << INDEX_BITS).to_vec();
        // Both ways name the same record: the third.
        let errors: Vec<String> = [1 << 30, 10]
            .map(|budget| {
                let block = Block::sorted_runs(1, &[bytemuck::cast_slice(&run)]);
                let memory = MemoryManager::new(budget);
                match plan(true).merge(vec![block], ShuffleId(8), &memory) {
                    Err(e) => e.to_string(),
                    Ok(mut batches) => batches.find_map(Result::err).unwrap().to_string(),
                }
            })
            .to_vec();
        assert!(
            errors[0].contains("out of its sorted run's order"),
            "{errors:?}"
        );
        assert_eq!(errors[0], errors[1]);
        // Descending runs are checked descending.
        let mut down = run.clone();
        down.sort_unstable_by(|a, b| b.cmp(a));
        let block = Block::sorted_runs(1, &[bytemuck::cast_slice(&down)]);
        let memory = MemoryManager::new(1 << 30);
        let out: Vec<u128> = plan(false)
            .merge(vec![block], ShuffleId(8), &memory)
            .unwrap()
            .flat_map(|b| b.unwrap())
            .collect();
        assert_eq!(out, down);
    }

    #[test]
    fn a_run_ending_inside_an_entry_is_an_error() {
        let run: Vec<u128> = vec![1, 2, 3];
        let bytes: &[u8] = bytemuck::cast_slice(&run);
        let block = Block::sorted_runs(1, &[&bytes[..bytes.len() - 5]]);
        let memory = MemoryManager::new(1 << 30);
        let err = match plan(true).merge(vec![block], ShuffleId(8), &memory) {
            Err(e) => e,
            Ok(mut batches) => batches.find_map(Result::err).unwrap(),
        };
        assert!(err.to_string().contains("shuffle 8"), "{err}");
    }
}
