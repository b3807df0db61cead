//! ShuffledRdd: the reduce side of a shuffle, reading the blocks its executor owns.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::ids::ShuffleId;
use crate::memory::MemoryManager;
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::plan::node::ShuffleDep;
use crate::plan::node::{Compute, Dependency, Node, RddId};
use crate::plan::shuffle_dep::{MapSort, ShuffleDependency};
use crate::plan::task::TaskContext;
use crate::shuffle::block::Block;
use crate::shuffle::partitioner::Partitioner;
use crate::shuffle::store::ReduceInput;

/// Merges the records of one reduce partition as they are decoded (e.g. sums values by
/// key), so memory holds the merged records, not every record received (and spills them
/// over the budget).
pub type Combine<S> = Arc<dyn Fn(&mut ReduceRecords<S>) -> Result<BatchIter<S>> + Send + Sync>;

/// The reduce side of a sort shuffle (the map side ordered each bucket: [`MapSort`]).
pub trait SortPlan<S>: MapSort<S> {
    /// The records of `blocks` in order; memory it holds beyond the blocks is reserved
    /// from `memory`.
    fn merge(
        &self,
        blocks: Vec<Block>,
        shuffle: ShuffleId,
        memory: &Arc<MemoryManager>,
    ) -> Result<BatchIter<S>>;
}

/// What the reduce side does with the records of a partition.
pub enum ReduceMode<S> {
    /// Hand them on as they arrived.
    Plain,
    /// Decode them all and merge them.
    Combine(Combine<S>),
    /// Merge the sorted runs the map side wrote.
    Sort(Arc<dyn SortPlan<S>>),
}

pub(crate) fn corrupt(shuffle: ShuffleId, block: &Block, detail: String) -> Error {
    Error::CorruptShuffle {
        shuffle,
        executor: block.source.into(),
        detail,
    }
}

/// The RDD after a shuffle: partition `r` is every record the map side sent to `r`,
/// handled by `mode`.
pub struct ShuffledRdd<S> {
    pub id: RddId,
    pub name: &'static str,
    pub dep: Arc<ShuffleDependency<S>>,
    pub mode: ReduceMode<S>,
    /// How records were sent to partitions, when by key with a known partitioner.
    pub partitioner: Option<Partitioner>,
    /// Removes the shuffle's files when this node, the only way to read them, is dropped.
    pub cleaner: ShuffleCleaner,
}

/// Spark's ContextCleaner for shuffles, made deterministic by ownership: when the last
/// handle to a shuffled RDD goes (on every rank alike: the program is SPMD), no lineage
/// can read its shuffle any more, so its map and reduce files are deleted and the driver
/// forgets it. An iterative job (PageRank) thus keeps only the shuffles it still holds.
pub struct ShuffleCleaner {
    pub shuffle: ShuffleId,
    pub rt: std::sync::Weak<crate::context::Runtime>,
}

impl Drop for ShuffleCleaner {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.upgrade() {
            rt.forget_shuffle(self.shuffle);
        }
    }
}

impl<S: serde::Serialize + Send + Sync + 'static> Node for ShuffledRdd<S> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        format!(
            "{} (shuffle {}, {} partitions)",
            self.name, self.dep.id, self.dep.partitions
        )
    }
    fn num_partitions(&self) -> usize {
        self.dep.partitions
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Shuffle(
            Arc::clone(&self.dep) as Arc<dyn ShuffleDep>
        )]
    }
    fn shuffle_inputs(&self, split: usize, out: &mut Vec<(ShuffleId, usize)>) {
        out.push((self.dep.id, split));
    }
    fn partitioner(&self) -> Option<Partitioner> {
        self.partitioner.clone()
    }
}

impl<S> Compute<S> for ShuffledRdd<S>
where
    S: serde::Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<S>> {
        let me = tc.executor_id;
        let shuffle = self.dep.id;
        let blocks = match tc.shuffle.reduce_input(shuffle, split, me) {
            ReduceInput::Here(blocks) => blocks,
            ReduceInput::Elsewhere(owner) => {
                return Err(Error::Other(format!(
                    "reduce partition {split} of shuffle {shuffle} is on executor {owner}, not on executor {me}"
                )));
            }
            ReduceInput::Unknown => {
                return Err(Error::ShuffleLost {
                    shuffle,
                    executor: me,
                });
            }
        };
        if blocks.iter().any(|b| b.range.end > b.data.len()) {
            return Err(Error::Other(format!(
                "shuffle {shuffle}: a block lies outside its file"
            )));
        }
        let bytes = blocks.iter().map(|b| b.range.len()).sum();
        tc.counters.note_shuffle_read(0, bytes);
        match &self.mode {
            // Records count as they are decoded (the reduce side streams).
            ReduceMode::Sort(plan) => {
                let counters = Arc::clone(&tc.counters);
                let merged = plan.merge(blocks, shuffle, tc.shuffle.memory())?;
                Ok(Box::new(merged.inspect(move |batch| {
                    if let Ok(batch) = batch {
                        counters.note_shuffle_read(batch.len(), 0);
                    }
                })))
            }
            ReduceMode::Combine(combine) => {
                let mut records = ReduceRecords {
                    records: BlockRecords::<S>::new(blocks, shuffle),
                    error: None,
                    read: 0,
                };
                let merged = combine(&mut records);
                tc.counters.note_shuffle_read(records.read, 0);
                match records.error {
                    Some(e) => Err(e),
                    None => merged,
                }
            }
            ReduceMode::Plain => {
                let counters = Arc::clone(&tc.counters);
                let mut records = BlockRecords::<S>::new(blocks, shuffle);
                Ok(Box::new(std::iter::from_fn(move || {
                    let batch: Result<Vec<S>> = records.by_ref().take(BATCH_SIZE).collect();
                    match batch {
                        Ok(b) if b.is_empty() => None,
                        Ok(b) => {
                            counters.note_shuffle_read(b.len(), 0);
                            Some(Ok(b))
                        }
                        other => Some(other),
                    }
                })))
            }
        }
    }
}

/// The records of a reduce partition's blocks as a combine reads them: decoded one at a
/// time, counted, ending at the first corrupt one (kept for the task to report). A type
/// of its own, not a `dyn Iterator`, so the combine's loop inlines the decoding (profiled:
/// the per-record virtual call and its adapters were a tenth of PageRank's iterations).
pub struct ReduceRecords<S> {
    records: BlockRecords<S>,
    error: Option<Error>,
    read: usize,
}

impl<S: DeserializeOwned + 'static> Iterator for ReduceRecords<S> {
    type Item = S;

    #[inline(always)]
    fn next(&mut self) -> Option<S> {
        match self.records.next()? {
            Ok(record) => {
                self.read += 1;
                Some(record)
            }
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// The records of a reduce partition's blocks, decoded one at a time; stops after an error.
struct BlockRecords<S> {
    blocks: std::vec::IntoIter<Block>,
    current: Option<(Block, usize)>,
    shuffle: ShuffleId,
    _records: std::marker::PhantomData<fn() -> S>,
}

impl<S> BlockRecords<S> {
    fn new(blocks: Vec<Block>, shuffle: ShuffleId) -> Self {
        BlockRecords {
            blocks: blocks.into_iter(),
            current: None,
            shuffle,
            _records: std::marker::PhantomData,
        }
    }
}

impl<S: DeserializeOwned + 'static> Iterator for BlockRecords<S> {
    type Item = Result<S>;

    /// A record of the current block, decoded in the caller's loop; moving to the next
    /// block and a corrupt record's error out of line. As one function it was not inlined:
    /// profiled on PageRank, half of its samples were its own call's prologue (a 200-byte
    /// frame and six saved registers a record).
    #[inline(always)]
    fn next(&mut self) -> Option<Result<S>> {
        loop {
            if let Some((block, at)) = &mut self.current
                && *at < block.range.end
            {
                let start = block.range.start;
                let bytes = &block.data[block.range.clone()];
                return Some(match crate::codec::decode_at::<S>(bytes, *at - start) {
                    Ok((record, next)) => {
                        *at = start + next;
                        Ok(record)
                    }
                    Err(e) => {
                        let error = corrupt(self.shuffle, block, e);
                        self.stop();
                        Err(error)
                    }
                });
            }
            self.next_block()?;
        }
    }
}

impl<S> BlockRecords<S> {
    /// Moves to the next block, giving back the pages of the one read; `None` when there
    /// is none.
    #[cold]
    #[inline(never)]
    fn next_block(&mut self) -> Option<()> {
        if let Some((read, _)) = self.current.take() {
            read.release_pages();
        }
        let block = self.blocks.next()?;
        let start = block.range.start;
        self.current = Some((block, start));
        Some(())
    }

    /// Reads nothing more (after a corrupt record).
    #[cold]
    #[inline(never)]
    fn stop(&mut self) {
        self.current = None;
        self.blocks = Vec::new().into_iter();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shuffle::block::BlockBytes;

    /// A block of `bytes` from executor `source`, mapped from a file as a received one is.
    fn block(source: usize, bytes: &[u8]) -> Block {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        // SAFETY: a private temporary file that nothing else writes.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        Block {
            source,
            data: Arc::new(BlockBytes::Mapped(map)),
            range: 0..bytes.len(),
        }
    }

    fn records(blocks: Vec<Block>) -> ReduceRecords<(u64, f64)> {
        ReduceRecords {
            records: BlockRecords::new(blocks, ShuffleId(3)),
            error: None,
            read: 0,
        }
    }

    #[test]
    fn records_are_read_across_blocks_and_a_corrupt_one_ends_them_with_an_error() {
        let pairs: Vec<(u64, f64)> = (0..10).map(|i| (i, i as f64 / 2.0)).collect();
        let encode = |pairs: &[(u64, f64)]| {
            let mut bytes = Vec::new();
            pairs
                .iter()
                .for_each(|p| crate::codec::encode_into(&mut bytes, p));
            bytes
        };
        let (first, second) = (encode(&pairs[..4]), encode(&pairs[4..]));
        // An empty range between them: skipped.
        let mut empty = block(2, &first);
        empty.range = 16..16;
        let mut read = records(vec![block(1, &first), empty, block(2, &second)]);
        let got: Vec<(u64, f64)> = read.by_ref().collect();
        assert_eq!(got, pairs);
        assert_eq!(read.read, 10);
        assert!(read.error.is_none());
        // A block cut 5 bytes into its third record: the records before it, then the
        // error naming the shuffle, the sender and the byte; nothing of the block after.
        let cut = &second[..2 * 16 + 5];
        let mut read = records(vec![block(1, &first), block(2, cut), block(1, &first)]);
        let got: Vec<(u64, f64)> = read.by_ref().collect();
        assert_eq!(got, pairs[..6]);
        assert_eq!(read.next(), None);
        let error = read.error.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            error.contains("shuffle 3: corrupt data from executor 2: record at byte 32"),
            "{error}"
        );
    }
}
