//! In-memory sources: `parallelize` (a collection every rank holds) and `range`.

use std::sync::Arc;

use crate::error::Result;
use crate::plan::batch::{BatchIter, batched};
use crate::plan::node::{Compute, Dependency, Node, RddId};
use crate::plan::task::TaskContext;

/// A collection cut into `partitions` contiguous slices.
pub struct Parallelize<T> {
    pub id: RddId,
    pub data: Arc<Vec<T>>,
    pub partitions: usize,
}

impl<T> Parallelize<T> {
    fn bounds(&self, split: usize) -> std::ops::Range<usize> {
        let n = self.data.len();
        (split * n / self.partitions)..((split + 1) * n / self.partitions)
    }
}

impl<T: Send + Sync + 'static> Node for Parallelize<T> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        format!("parallelize {} records", self.data.len())
    }
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
}

impl<T: Clone + Send + Sync + 'static> Compute<T> for Parallelize<T> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>> {
        tc.count_source_partition();
        let range = self.bounds(split);
        let data = Arc::clone(&self.data);
        Ok(batched(range.map(move |i| data[i].clone())))
    }
}

/// The integers `start..end`, cut into `partitions` contiguous runs.
pub struct Range {
    pub id: RddId,
    pub start: u64,
    pub end: u64,
    pub partitions: usize,
}

impl Node for Range {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        format!("range {}..{}", self.start, self.end)
    }
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
}

impl Compute<u64> for Range {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<u64>> {
        tc.count_source_partition();
        let len = (self.end - self.start) as u128;
        let p = self.partitions as u128;
        let lo = self.start + (split as u128 * len / p) as u64;
        let hi = self.start + ((split as u128 + 1) * len / p) as u64;
        Ok(batched(lo..hi))
    }
}
