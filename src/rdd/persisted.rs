//! PersistedRdd: an RDD whose partitions are kept in executors' block stores once computed.

use std::sync::Arc;

use crate::cache::{BlockCodec, Cached, StorageLevel};
use crate::error::{Error, Result};
use crate::memory::Reservation;
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
                mapped_batches(self.id, split, view, map)
            }
            None => {
                TaskCounters::bump(&tc.counters.cache_misses);
                self.compute_and_cache(split, tc)
            }
        }
    }
}

impl<T: Data> PersistedRdd<T> {
    /// A partition not cached: computed from the parent and cached when it fits (else
    /// handed on as computed, the records read so far reserved while they go on).
    fn compute_and_cache(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>> {
        let store = &tc.blocks;
        let batches = Arc::clone(&self.parent).compute(split, tc)?;
        let records = if self.level == StorageLevel::Memory {
            match unroll(batches, &self.codec, tc)? {
                Unrolled::Whole(records) => records,
                Unrolled::Partial(read, rest, reservation) => {
                    tracing::debug!(
                        "partition {split} of rdd {} does not fit the memory budget: not cached",
                        self.id
                    );
                    // The records read stay reserved while they are handed on.
                    let read = batched(read.into_iter()).inspect(move |_| {
                        let _held = &reservation;
                    });
                    return Ok(Box::new(read.chain(rest)));
                }
            }
        } else {
            // A file is written from the whole partition.
            collect_partition(batches)?
        };
        let records = Arc::new(records);
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

/// The records of the mapped raw block `split` of rdd `id`, viewed in place and copied
/// out a batch at a time.
fn mapped_batches<T: Data>(
    id: RddId,
    split: usize,
    view: RecordView<T>,
    map: Arc<memmap2::Mmap>,
) -> Result<BatchIter<T>> {
    let len = view(&map)
        .ok_or_else(|| {
            Error::Other(format!(
                "rdd {id}: cached block {split} is not whole records"
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
        Some(batch.ok_or_else(|| Error::Other("cached block changed under its mapping".into())))
    })))
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

/// A partition being collected for the cache, as far as it fit.
enum Unrolled<T> {
    /// All of it, now to be stored.
    Whole(Vec<T>),
    /// What was read when it stopped fitting the budget, the batches after it, and the
    /// reservation of what was read.
    Partial(Vec<T>, BatchIter<T>, Reservation),
}

/// Collects a partition for a memory block while its decoded size fits what is left of
/// the budget (Spark's unrolling): one that cannot fit is not held whole only to be
/// refused by the block store; it is handed on as it streams, holding at most the budget.
/// The reservation covers the records while they are collected; the block store reserves
/// the block itself (evicting older ones if it must).
fn unroll<T: Data>(
    mut batches: BatchIter<T>,
    codec: &BlockCodec,
    tc: &TaskContext,
) -> Result<Unrolled<T>> {
    let mut reservation = tc.shuffle.memory().reservation();
    let (mut read, mut bytes) = (Vec::new(), 0u64);
    while let Some(batch) = batches.next() {
        let batch = batch?;
        bytes += codec.size_of(&batch);
        read.push(batch);
        let grown = reservation.grow_to(bytes)
            || (tc.blocks.make_room_for(bytes - reservation.bytes()) && reservation.grow_to(bytes));
        if !grown {
            return Ok(Unrolled::Partial(concat(read), batches, reservation));
        }
    }
    Ok(Unrolled::Whole(concat(read)))
}

/// The batches in one vector of their exact length: one grown by doubling as batches came
/// was copied into fresh pages at every doubling and kept up to twice the room the block
/// needs (profiled: PageRank's links, 140 MB of slack an executor).
fn concat<T>(mut batches: Vec<Vec<T>>) -> Vec<T> {
    if batches.len() == 1 {
        return batches.pop().unwrap_or_default();
    }
    let mut all = Vec::with_capacity(batches.iter().map(Vec::len).sum());
    for mut batch in batches {
        all.append(&mut batch);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::concat;

    #[test]
    fn a_partition_collected_for_the_cache_keeps_no_room_beyond_its_records() {
        // 2.5 batches of records: a vector grown by appending would hold room for 16 k.
        let batches: Vec<Vec<u64>> = [(0..4096), (4096..8192), (8192..10_000)]
            .into_iter()
            .map(|r| r.collect())
            .collect();
        let all = concat(batches);
        assert_eq!(all.capacity(), 10_000);
        assert!(all.iter().copied().eq(0..10_000));
        assert_eq!(concat(vec![vec![7u64; 3]]), [7, 7, 7]);
        assert!(concat(Vec::<Vec<u64>>::new()).is_empty());
    }
}
