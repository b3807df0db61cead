//! PersistedRdd: an RDD whose partitions are kept in executors' block stores once computed.

use std::sync::Arc;

use crate::cache::{BlockCodec, Cached, StorageLevel};
use crate::error::{Error, Result};
use crate::plan::Data;
use crate::plan::batch::{BATCH_SIZE, BatchIter, batched, collect_partition};
use crate::plan::node::{Compute, Dependency, Node, RddId, erase};
use crate::plan::task::{TaskContext, TaskCounters};
use crate::shuffle::ShuffleId;

/// Views raw bytes as records in place (`None` when they are not whole, aligned records).
pub type RecordView<T> = fn(&[u8]) -> Option<&[T]>;

/// `rdd.persist(level)`: computes a partition through its parent the first time (a cache
/// miss) and stores it; later uses on that executor read the stored block (a hit).
pub struct PersistedRdd<T> {
    pub id: RddId,
    pub parent: Arc<dyn Compute<T>>,
    pub level: StorageLevel,
    pub codec: BlockCodec,
    /// For raw (Pod) blocks: the mapped bytes viewed as records, in place.
    pub view: Option<RecordView<T>>,
}

impl<T: Data> Node for PersistedRdd<T> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        format!("persist {:?}", self.level)
    }
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(erase(&self.parent))]
    }
    fn shuffle_inputs(&self, split: usize, out: &mut Vec<(ShuffleId, usize)>) {
        self.parent.shuffle_inputs(split, out)
    }
    fn cached_block(&self, split: usize) -> Option<(RddId, usize)> {
        Some((self.id, split))
    }
    fn partitioner(&self) -> Option<crate::shuffle::partitioner::Partitioner> {
        self.parent.partitioner()
    }
}

impl<T: Data> Compute<T> for PersistedRdd<T> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>> {
        let store = &tc.blocks;
        match store.get::<T>(self.id, split) {
            Some(Cached::Shared(records)) => {
                TaskCounters::bump(&tc.counters.cache_hits);
                Ok(shared_batches(records))
            }
            Some(Cached::Owned(records)) => {
                TaskCounters::bump(&tc.counters.cache_hits);
                Ok(batched(records.into_iter()))
            }
            Some(Cached::Mapped(map)) => {
                TaskCounters::bump(&tc.counters.cache_hits);
                let view = self.view.ok_or_else(|| {
                    Error::Other(format!("rdd {}: raw block without a view", self.id))
                })?;
                let len = view(&map)
                    .ok_or_else(|| {
                        Error::Other(format!(
                            "rdd {}: cached block {split} is not whole records",
                            self.id
                        ))
                    })?
                    .len();
                let mut at = 0;
                Ok(Box::new(std::iter::from_fn(move || {
                    if at >= len {
                        return None;
                    }
                    let end = (at + BATCH_SIZE).min(len);
                    // The mapping stays whole and aligned (page-aligned start): viewed in place.
                    let batch = view(&map).map(|records| records[at..end].to_vec());
                    at = end;
                    Some(batch.ok_or_else(|| {
                        Error::Other("cached block changed under its mapping".into())
                    }))
                })))
            }
            None => {
                TaskCounters::bump(&tc.counters.cache_misses);
                let records = Arc::new(collect_partition(
                    Arc::clone(&self.parent).compute(split, tc)?,
                )?);
                if store.put(self.id, split, Arc::clone(&records), self.level, self.codec) {
                    tc.counters.note_cached(self.id, split);
                }
                // Cached: read like a hit, a batch at a time, rather than cloning the whole
                // partition beside the block (twice its memory for the rest of the task).
                Ok(match Arc::try_unwrap(records) {
                    Ok(records) => batched(records.into_iter()),
                    Err(shared) => shared_batches(shared),
                })
            }
        }
    }
}

/// The records of a block held in memory, cloned a batch at a time as they are read.
fn shared_batches<T: Data>(records: Arc<Vec<T>>) -> BatchIter<T> {
    let mut at = 0;
    Box::new(std::iter::from_fn(move || {
        if at >= records.len() {
            return None;
        }
        let end = (at + BATCH_SIZE).min(records.len());
        let batch = records[at..end].to_vec();
        at = end;
        Some(Ok(batch))
    }))
}
