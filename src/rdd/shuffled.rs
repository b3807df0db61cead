//! ShuffledRdd: the reduce side of a shuffle, reading the blocks its executor owns.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::{Error, Result};
use crate::ids::ShuffleId;
use crate::plan::batch::{BATCH_SIZE, BatchIter, batched};
use crate::plan::node::ShuffleDep;
use crate::plan::node::{Compute, Dependency, Node, RddId};
use crate::plan::shuffle_dep::ShuffleDependency;
use crate::plan::task::TaskContext;
use crate::shuffle::store::{Block, ReduceInput};

/// Merges the decoded records of one reduce partition (e.g. sums values by key).
pub type Combine<S> = Arc<dyn Fn(Vec<S>) -> Vec<S> + Send + Sync>;

/// Orders a reduce partition without materialising it: returns the byte offsets of its
/// records (in the reduce file) in output order.
pub trait SortPlan<S>: Send + Sync {
    /// (block index, byte offset within the block's file) of every record, in order.
    fn order(&self, blocks: &[Block], shuffle: ShuffleId) -> Result<Vec<(u32, usize)>>;
}

/// What the reduce side does with the records of a partition.
pub enum ReduceMode<S> {
    /// Hand them on as they arrived.
    Plain,
    /// Decode them all and merge them.
    Combine(Combine<S>),
    /// Sort compact (key, offset) entries, then decode each record once, in order.
    Sort(Arc<dyn SortPlan<S>>),
}

/// Sorting by a key of each record.
pub struct KeySort<S, K> {
    pub key: Arc<dyn Fn(&S) -> K + Send + Sync>,
    pub ascending: bool,
}

impl<S: DeserializeOwned, K: Ord> SortPlan<S> for KeySort<S, K> {
    fn order(&self, blocks: &[Block], shuffle: ShuffleId) -> Result<Vec<(u32, usize)>> {
        let mut entries: Vec<(K, (u32, usize))> = Vec::new();
        for (b, block) in blocks.iter().enumerate() {
            let data = &block.data[..block.range.end];
            let mut at = block.range.start;
            while at < block.range.end {
                let (record, rest) = postcard::take_from_bytes::<S>(&data[at..]).map_err(|e| {
                    let offset = at - block.range.start;
                    corrupt(shuffle, block, format!("record at byte {offset}: {e}"))
                })?;
                entries.push(((self.key)(&record), (b as u32, at)));
                at = block.range.end - rest.len();
            }
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        if !self.ascending {
            entries.reverse();
        }
        Ok(entries.into_iter().map(|(_, at)| at).collect())
    }
}

fn corrupt(shuffle: ShuffleId, block: &Block, detail: String) -> Error {
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
                return Err(Error::Other(format!(
                    "shuffle {shuffle} has not been exchanged on executor {me}"
                )));
            }
        };
        if blocks.iter().any(|b| b.range.end > b.data.len()) {
            return Err(Error::Other(format!(
                "shuffle {shuffle}: a block lies outside its file"
            )));
        }
        let bytes = blocks.iter().map(|b| b.range.len()).sum();
        match &self.mode {
            ReduceMode::Sort(plan) => {
                let order = plan.order(&blocks, shuffle)?;
                tc.counters.note_shuffle_read(order.len(), bytes);
                let mut next = 0;
                Ok(Box::new(std::iter::from_fn(move || {
                    if next >= order.len() {
                        return None;
                    }
                    let end = (next + BATCH_SIZE).min(order.len());
                    let batch = order[next..end]
                        .iter()
                        .map(|&(b, at)| {
                            let block = &blocks[b as usize];
                            postcard::take_from_bytes::<S>(&block.data[at..block.range.end])
                                .map(|(r, _)| r)
                                .map_err(|e| {
                                    corrupt(shuffle, block, format!("record at byte {at}: {e}"))
                                })
                        })
                        .collect::<Result<Vec<S>>>();
                    next = end;
                    Some(batch)
                })))
            }
            mode => {
                let mut records = Vec::new();
                for block in &blocks {
                    codec::decode_all_into(block.bytes(), &mut records)
                        .map_err(|detail| corrupt(shuffle, block, detail))?;
                }
                tc.counters.note_shuffle_read(records.len(), bytes);
                if let ReduceMode::Combine(combine) = mode {
                    records = combine(records);
                }
                Ok(batched(records.into_iter()))
            }
        }
    }
}
