//! Lineage nodes: what every RDD knows (partitions, dependencies) and how it computes a partition.

use std::sync::Arc;

use crate::error::Result;
pub use crate::ids::RddId;
use crate::ids::ShuffleId;
use crate::plan::batch::BatchIter;
use crate::plan::task::TaskContext;
use crate::shuffle::MapOutput;
use crate::shuffle::partitioner::Partitioner;

/// How an RDD depends on a parent.
#[derive(Clone)]
pub enum Dependency {
    /// Partition `i` needs only some partitions of the parent, on the same executor.
    Narrow(Arc<dyn Node>),
    /// Partitions need data from every parent partition: a stage boundary.
    Shuffle(Arc<dyn ShuffleDep>),
}

/// The type-erased view of an RDD that planning and scheduling use.
pub trait Node: Send + Sync + 'static {
    fn id(&self) -> RddId;

    /// The operator and its arguments, e.g. `map` or `text_file data/*.txt`.
    fn describe(&self) -> String;

    fn num_partitions(&self) -> usize;

    fn dependencies(&self) -> Vec<Dependency>;

    /// What this node's data depends on beyond its lineage, hashed into the lineage
    /// fingerprint: an input's file names, sizes and splits. Ranks that planned different
    /// inputs then fail the job's lineage check instead of reading different data.
    fn input_identity(&self) -> u64 {
        0
    }

    /// How this RDD's records are spread over its partitions by key, when known (a pair
    /// RDD just shuffled by key, or derived from one without changing keys). An operation
    /// by key on an equal partitioner needs no shuffle of this RDD.
    fn partitioner(&self) -> Option<Partitioner> {
        None
    }

    /// The block this RDD itself caches for partition `split` (persisted RDDs only).
    fn cached_block(&self, split: usize) -> Option<(RddId, usize)> {
        let _ = split;
        None
    }

    /// Appends the shuffle blocks partition `split` reads, as (shuffle, reduce partition).
    /// The default suits operators whose partition `i` reads partition `i` of each parent.
    fn shuffle_inputs(&self, split: usize, out: &mut Vec<(ShuffleId, usize)>) {
        for dep in self.dependencies() {
            match dep {
                Dependency::Narrow(parent) => parent.shuffle_inputs(split, out),
                Dependency::Shuffle(s) => out.push((s.id(), split)),
            }
        }
    }
}

/// Cached blocks partition `split` would read, as (rdd, partition): where its task should
/// run. The default follows narrow dependencies partition by partition.
pub fn cached_blocks(node: &dyn Node, split: usize, out: &mut Vec<(RddId, usize)>) {
    if let Some(block) = node.cached_block(split) {
        out.push(block);
        return;
    }
    for dep in node.dependencies() {
        if let Dependency::Narrow(parent) = dep
            && split < parent.num_partitions()
        {
            cached_blocks(parent.as_ref(), split, out);
        }
    }
}

/// An RDD of `T` that can compute its partitions.
pub trait Compute<T>: Node {
    /// Streams partition `split` as batches. Runs inside a task on an executor.
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>>;

    /// The raw fixed-width layout of the records, where the node knows they are plain old
    /// data (a sort shuffle then moves their bytes as they are, and reads keys in place).
    fn raw_codec(&self) -> Option<crate::codec::RawCodec<T>> {
        None
    }

    /// A uniform sample of at most `size` records of partition `split` (deterministic for
    /// a `seed`) and how many records the partition holds, where the node can draw one
    /// without computing the partition (fixed-width records read at random offsets);
    /// `None` where it cannot, and a sort's sampling job computes the partition.
    fn sample(&self, _split: usize, _size: usize, _seed: u64) -> Option<Result<(Vec<T>, u64)>> {
        None
    }

    /// The files the records are read from as they lie, where the node is a source of
    /// fixed-width records: `sort_by` then shuffles keys and locations, not records.
    fn fixed_width(&self) -> Option<crate::io::input::FixedWidth<T>> {
        None
    }

    /// Partition `split` as the expansion of each of its parent's records (`flat_map`),
    /// which a whole-partition consumer can take as the records are made; `None` where
    /// the node is not such an expansion (its consumer then reads `compute`'s batches).
    fn expand(
        self: Arc<Self>,
        _split: usize,
        _tc: &TaskContext,
    ) -> Option<Result<Box<dyn crate::plan::batch::Expand<T>>>> {
        None
    }
}

/// Upcasts a typed node to its planning view.
pub fn erase<T: 'static>(node: &Arc<dyn Compute<T>>) -> Arc<dyn Node> {
    Arc::clone(node) as Arc<dyn Node>
}

/// The type-erased side of a shuffle dependency that the scheduler and executors use.
pub trait ShuffleDep: Send + Sync + 'static {
    fn id(&self) -> ShuffleId;
    /// The RDD whose partitions the map tasks compute.
    fn parent(&self) -> Arc<dyn Node>;
    fn num_reduce_partitions(&self) -> usize;
    /// Computes map partition `split` and buckets it by reduce partition.
    fn run_map_task(&self, split: usize, tc: &TaskContext) -> Result<MapOutput>;
}
