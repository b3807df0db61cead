//! The shuffle: map tasks bucket records by reduce partition, executors exchange the buckets
//! with `MPI_Alltoallv`, reduce tasks read the partitions they own.
//!
//! Protocol (driver's view): run every map task of the stage (outputs stay on the
//! executor that made them) → choose an owner executor for every reduce partition → tell
//! all executors to exchange (one collective over the executor group) → reduce tasks run
//! on the owners. See `README.md` beside this file.

pub mod codec;
pub mod exchange;
pub mod files;
pub mod partitioner;
pub mod range;
pub mod reader;
pub mod store;

use std::sync::Arc;

use crate::error::Result;
use crate::executor::task::TaskContext;
use crate::rdd::node::{Compute, Node, erase};

/// Identifies a shuffle; numbered in creation order on every rank, like RDDs.
pub type ShuffleId = u32;

/// What a map task leaves on its executor: encoded records per reduce partition.
#[derive(Debug, Default)]
pub struct MapOutput {
    pub buckets: Vec<Vec<u8>>,
    pub records: u64,
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

/// A shuffle of records `S`, each sent to reduce partition `partition_of(&record)`.
pub struct ShuffleDependency<S> {
    pub id: ShuffleId,
    pub parent: Arc<dyn Compute<S>>,
    pub partitions: usize,
    pub partition_of: Arc<dyn Fn(&S) -> usize + Send + Sync>,
}

impl<S: serde::Serialize + 'static> ShuffleDep for ShuffleDependency<S> {
    fn id(&self) -> ShuffleId {
        self.id
    }

    fn parent(&self) -> Arc<dyn Node> {
        erase(&self.parent)
    }

    fn num_reduce_partitions(&self) -> usize {
        self.partitions
    }

    fn run_map_task(&self, split: usize, tc: &TaskContext) -> Result<MapOutput> {
        let mut out = MapOutput {
            buckets: vec![Vec::new(); self.partitions],
            records: 0,
        };
        for batch in Arc::clone(&self.parent).compute(split, tc)? {
            let batch = batch?;
            out.records += batch.len() as u64;
            for record in &batch {
                let r = (self.partition_of)(record);
                codec::encode_into(&mut out.buckets[r], record);
            }
        }
        Ok(out)
    }
}
