//! The shuffle dependency: the stage boundary a lineage node declares, and the map task it runs.

use std::sync::Arc;

use crate::codec;
use crate::error::Result;
use crate::ids::ShuffleId;
use crate::plan::node::{Compute, Node, ShuffleDep, erase};
use crate::plan::task::TaskContext;
use crate::shuffle::MapOutput;

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
