//! The shuffle dependency: the stage boundary a lineage node declares, and the map task it runs.

use std::ops::Range;
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
    /// Orders each bucket by key before it is written (the sort shuffle): the reduce side
    /// then merges sorted runs instead of sorting its whole partition.
    pub map_sort: Option<Arc<dyn MapSort<S>>>,
}

/// A map-side order of records (Spark's sort shuffle with a key ordering).
pub trait MapSort<S>: Send + Sync {
    /// A sorter for the `buckets` buckets of one map task.
    fn sorter(&self, buckets: usize) -> Box<dyn BucketSorter<S>>;
}

/// Orders one map task's encoded buckets.
pub trait BucketSorter<S> {
    /// Notes `record`, just encoded into `bucket` at bytes `range`.
    fn push(&mut self, bucket: usize, record: &S, range: Range<usize>);
    /// Reorders the records of every bucket by key (stable: equal keys keep their order).
    fn sort(&mut self, buckets: &mut [Vec<u8>]);
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
        let mut sorter = self.map_sort.as_ref().map(|s| s.sorter(self.partitions));
        for batch in Arc::clone(&self.parent).compute(split, tc)? {
            let batch = batch?;
            out.records += batch.len() as u64;
            for record in &batch {
                let r = (self.partition_of)(record);
                let bucket = &mut out.buckets[r];
                let start = bucket.len();
                codec::encode_into(bucket, record);
                if let Some(sorter) = &mut sorter {
                    sorter.push(r, record, start..bucket.len());
                }
            }
        }
        if let Some(sorter) = &mut sorter {
            sorter.sort(&mut out.buckets);
        }
        Ok(out)
    }
}
