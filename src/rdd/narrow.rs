//! Narrow operators: a partition is computed from the matching parent partitions, in one pass.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::plan::batch::{BATCH_SIZE, BatchIter, Expand, PartitionIter, take_error};
use crate::plan::node::{Compute, Dependency, Node, RddId, erase};
use crate::plan::task::TaskContext;
use crate::shuffle::ShuffleId;
use crate::shuffle::partitioner::Partitioner;

/// A function applied to each batch (map, filter, flat_map, key_by, map_values...).
pub type BatchFn<T, U> = Arc<dyn Fn(Vec<T>) -> Vec<U> + Send + Sync>;

/// Applies a batch function to every batch of the parent.
pub struct MapBatches<T, U> {
    pub id: RddId,
    pub name: &'static str,
    pub parent: Arc<dyn Compute<T>>,
    pub f: BatchFn<T, U>,
    /// The result's partitioner: the parent's where `f` keeps every record's key
    /// (filter, map_values), none where it may change them, or the key partitioner that
    /// placed the records (`distinct` placed by key, whose `f` drops the records' marker).
    pub partitioner: Option<Partitioner>,
}

impl<T: 'static, U: 'static> Node for MapBatches<T, U> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        self.name.to_string()
    }
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(erase(&self.parent))]
    }
    fn partitioner(&self) -> Option<Partitioner> {
        self.partitioner.clone()
    }
}

impl<T: 'static, U: 'static> Compute<U> for MapBatches<T, U> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<U>> {
        let input = Arc::clone(&self.parent).compute(split, tc)?;
        let f = Arc::clone(&self.f);
        Ok(Box::new(input.map(move |batch| batch.map(|b| f(b)))))
    }
}

/// The capacity of a `flat_map` batch: [`BATCH_SIZE`] and room for the expansion of the
/// record that crosses it. Without the slack nearly every batch was grown, copying it, as
/// its last record's expansion passed the capacity (PageRank: 8 links a vertex).
const FLAT_MAP_BATCH: usize = BATCH_SIZE + BATCH_SIZE / 4;

/// `flat_map`: every record expanded by `f`, cut into output batches of about
/// [`BATCH_SIZE`] records. One output vector per input batch would be ~10× its size when
/// lines become words (a megabyte of pairs, past the L2 cache, written and read back);
/// batches of the usual size stay in cache between here and the next operator.
pub struct FlatMap<T, F> {
    pub id: RddId,
    pub parent: Arc<dyn Compute<T>>,
    pub f: F,
}

impl<T: 'static, F: Send + Sync + 'static> Node for FlatMap<T, F> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        "flat_map".to_string()
    }
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(erase(&self.parent))]
    }
}

impl<T, U, I, F> Compute<U> for FlatMap<T, F>
where
    T: 'static,
    U: 'static,
    I: IntoIterator<Item = U>,
    F: Fn(T) -> I + Send + Sync + 'static,
{
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<U>> {
        let mut expansion = Expansion::new(self, split, tc)?;
        Ok(Box::new(std::iter::from_fn(move || expansion.next_batch())))
    }

    fn expand(
        self: Arc<Self>,
        split: usize,
        tc: &TaskContext,
    ) -> Option<Result<Box<dyn Expand<U>>>> {
        Some(Expansion::new(self, split, tc).map(|e| Box::new(e) as Box<dyn Expand<U>>))
    }
}

/// A partition of a [`FlatMap`] being made: its parent's records, expanded by `f`.
struct Expansion<T, F> {
    node: Arc<FlatMap<T, F>>,
    input: BatchIter<T>,
    records: std::vec::IntoIter<T>,
    /// An upstream error after some output: that output first, then the error.
    error: Option<Error>,
}

impl<T: 'static, F: Send + Sync + 'static> Expansion<T, F> {
    fn new(node: Arc<FlatMap<T, F>>, split: usize, tc: &TaskContext) -> Result<Self> {
        Ok(Expansion {
            input: Arc::clone(&node.parent).compute(split, tc)?,
            node,
            records: Vec::new().into_iter(),
            error: None,
        })
    }
}

impl<T, U, I, F> Expand<U> for Expansion<T, F>
where
    I: IntoIterator<Item = U>,
    F: Fn(T) -> I,
{
    fn expand_into(&mut self, sink: &mut dyn FnMut(U) -> bool) -> Option<Result<()>> {
        loop {
            match self.records.next() {
                Some(record) => {
                    let mut more = true;
                    (self.node.f)(record)
                        .into_iter()
                        .for_each(|u| more &= sink(u));
                    if !more {
                        return Some(Ok(()));
                    }
                }
                None => match self.input.next()? {
                    Ok(batch) => self.records = batch.into_iter(),
                    Err(e) => return Some(Err(e)),
                },
            }
        }
    }

    // Its own loop, not `expand_into` with a pushing sink: a batch is filled without a
    // virtual call a record.
    fn next_batch(&mut self) -> Option<Result<Vec<U>>> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        let mut out = Vec::with_capacity(FLAT_MAP_BATCH);
        loop {
            // A record's whole expansion goes into one batch, so a batch may pass
            // BATCH_SIZE by one record's fan-out (into the slack its capacity has).
            while out.len() < BATCH_SIZE {
                match self.records.next() {
                    // `for_each`: an expansion that folds over its values (a cached
                    // group's) runs one loop, not a `next` a value.
                    Some(record) => (self.node.f)(record).into_iter().for_each(|u| out.push(u)),
                    None => break,
                }
            }
            if out.len() >= BATCH_SIZE {
                return Some(Ok(out));
            }
            match self.input.next() {
                Some(Ok(batch)) => self.records = batch.into_iter(),
                Some(Err(e)) if out.is_empty() => return Some(Err(e)),
                Some(Err(e)) => {
                    self.error = Some(e);
                    return Some(Ok(out));
                }
                None => return (!out.is_empty()).then_some(Ok(out)),
            }
        }
    }
}

/// A function over a whole partition: its index and an iterator over its records.
pub type PartitionFn<T, U> =
    Arc<dyn Fn(usize, PartitionIter<T>) -> Result<BatchIter<U>> + Send + Sync>;

/// Runs a function over each whole partition (`map_partitions`, map-side combine).
pub struct MapPartitions<T, U> {
    pub id: RddId,
    pub name: &'static str,
    pub parent: Arc<dyn Compute<T>>,
    pub f: PartitionFn<T, U>,
    /// `f` keeps every record's key in its partition: the parent's partitioner holds.
    pub keeps_keys: bool,
}

impl<T: 'static, U: 'static> Node for MapPartitions<T, U> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        self.name.to_string()
    }
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(erase(&self.parent))]
    }
    fn partitioner(&self) -> Option<Partitioner> {
        self.keeps_keys.then(|| self.parent.partitioner()).flatten()
    }
}

impl<T: 'static, U: 'static> Compute<U> for MapPartitions<T, U> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<U>> {
        // An expanding parent (`flat_map`) hands its records to a consumer that takes
        // them so (a map-side combine) as they are made.
        let (records, error) = match Arc::clone(&self.parent).expand(split, tc) {
            Some(expansion) => PartitionIter::expanding(expansion?),
            None => PartitionIter::new(Arc::clone(&self.parent).compute(split, tc)?),
        };
        let output = (self.f)(split, records)?;
        // Batches of output, then one final check for an upstream error the function
        // may have swallowed by stopping early.
        let mut checked = false;
        let tail = std::iter::from_fn(move || {
            if checked {
                return None;
            }
            checked = true;
            take_error(&error).map(Err)
        });
        Ok(Box::new(output.chain(tail)))
    }
}

/// Partitions of several parents side by side (`union`).
pub struct Union<T> {
    pub id: RddId,
    pub parents: Vec<Arc<dyn Compute<T>>>,
}

impl<T: 'static> Union<T> {
    /// Which parent, and which of its partitions, partition `split` is.
    fn locate(&self, mut split: usize) -> (usize, usize) {
        for (i, p) in self.parents.iter().enumerate() {
            let n = p.num_partitions();
            if split < n {
                return (i, split);
            }
            split -= n;
        }
        unreachable!("union partition out of range")
    }
}

impl<T: 'static> Node for Union<T> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        "union".to_string()
    }
    fn num_partitions(&self) -> usize {
        self.parents.iter().map(|p| p.num_partitions()).sum()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        self.parents
            .iter()
            .map(|p| Dependency::Narrow(erase(p)))
            .collect()
    }
    fn shuffle_inputs(&self, split: usize, out: &mut Vec<(ShuffleId, usize)>) {
        let (parent, inner) = self.locate(split);
        self.parents[parent].shuffle_inputs(inner, out);
    }
}

impl<T: 'static> Compute<T> for Union<T> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>> {
        let (parent, inner) = self.locate(split);
        Arc::clone(&self.parents[parent]).compute(inner, tc)
    }
}

/// A function over partition `i` of two RDDs at once (`zip_partitions`).
pub type ZipFn<A, B, U> =
    Arc<dyn Fn(PartitionIter<A>, PartitionIter<B>) -> Result<BatchIter<U>> + Send + Sync>;

/// Partition `i` computed from partition `i` of each of two parents with as many
/// partitions (co-partitioned shuffles, as in a join: the driver places both reduce
/// partitions `i` on the executor that runs task `i`).
pub struct ZipPartitions<A, B, U> {
    pub id: RddId,
    pub name: &'static str,
    pub left: Arc<dyn Compute<A>>,
    pub right: Arc<dyn Compute<B>>,
    pub f: ZipFn<A, B, U>,
    /// How `f`'s output is partitioned by key, if it is (a cogroup of co-partitioned sides).
    pub partitioner: Option<Partitioner>,
}

impl<A: 'static, B: 'static, U: 'static> Node for ZipPartitions<A, B, U> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        self.name.to_string()
    }
    fn num_partitions(&self) -> usize {
        self.left.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![
            Dependency::Narrow(erase(&self.left)),
            Dependency::Narrow(erase(&self.right)),
        ]
    }
    fn partitioner(&self) -> Option<Partitioner> {
        self.partitioner.clone()
    }
}

impl<A: 'static, B: 'static, U: 'static> Compute<U> for ZipPartitions<A, B, U> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<U>> {
        let (left, left_error) = PartitionIter::new(Arc::clone(&self.left).compute(split, tc)?);
        let (right, right_error) = PartitionIter::new(Arc::clone(&self.right).compute(split, tc)?);
        let output = (self.f)(left, right)?;
        // As in MapPartitions: a function that stopped early on an upstream error must
        // not turn it into a short partition.
        let mut checked = false;
        let tail = std::iter::from_fn(move || {
            if checked {
                return None;
            }
            checked = true;
            take_error(&left_error)
                .or_else(|| take_error(&right_error))
                .map(Err)
        });
        Ok(Box::new(output.chain(tail)))
    }
}

/// Fewer partitions without a shuffle: partition `i` is a run of consecutive parent partitions.
pub struct Coalesce<T> {
    pub id: RddId,
    pub parent: Arc<dyn Compute<T>>,
    pub groups: Vec<std::ops::Range<usize>>,
}

impl<T> Coalesce<T> {
    /// Splits `parent_partitions` into `n` runs of nearly equal length.
    pub fn groups(parent_partitions: usize, n: usize) -> Vec<std::ops::Range<usize>> {
        let n = n.clamp(1, parent_partitions.max(1));
        (0..n)
            .map(|i| (i * parent_partitions / n)..((i + 1) * parent_partitions / n))
            .collect()
    }
}

impl<T: 'static> Node for Coalesce<T> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        format!("coalesce {}", self.groups.len())
    }
    fn num_partitions(&self) -> usize {
        self.groups.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(erase(&self.parent))]
    }
    fn shuffle_inputs(&self, split: usize, out: &mut Vec<(ShuffleId, usize)>) {
        for inner in self.groups[split].clone() {
            self.parent.shuffle_inputs(inner, out);
        }
    }
}

impl<T: 'static> Compute<T> for Coalesce<T> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>> {
        let mut parts = Vec::new();
        for inner in self.groups[split].clone() {
            parts.push(Arc::clone(&self.parent).compute(inner, tc)?);
        }
        Ok(Box::new(parts.into_iter().flatten()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_groups_cover_every_parent_partition_once() {
        for (parent, n) in [(10, 3), (3, 10), (7, 7), (1, 1), (5, 1)] {
            let groups = Coalesce::<()>::groups(parent, n);
            assert_eq!(groups.len(), n.min(parent));
            let flat: Vec<usize> = groups.iter().flat_map(|g| g.clone()).collect();
            assert_eq!(flat, (0..parent).collect::<Vec<_>>());
            assert!(groups.iter().all(|g| !g.is_empty()));
        }
    }

    #[test]
    fn flat_map_cuts_a_fan_out_into_batches_and_keeps_every_record_in_order() {
        use crate::config::EngineArgs;
        use crate::context::Context;
        let ctx = Context::local_with(&EngineArgs::default());
        let n = BATCH_SIZE as u64 + 300;
        // Record i becomes i copies of itself: output batches end inside no record.
        let out = ctx
            .range(0, n, Some(2))
            .flat_map(|i| std::iter::repeat_n(i, (i % 7) as usize))
            .collect()
            .unwrap();
        let want: Vec<u64> = (0..n)
            .flat_map(|i| std::iter::repeat_n(i, (i % 7) as usize))
            .collect();
        assert_eq!(out, want);
        ctx.stop();
    }

    #[test]
    fn a_flat_map_batch_holds_the_expansion_crossing_its_size_without_growing() {
        use crate::config::EngineArgs;
        use crate::context::Context;
        let ctx = Context::local_with(&EngineArgs::default());
        // Fan-out 7: a record's expansion crosses BATCH_SIZE in nearly every batch.
        let batches = ctx
            .range(0, 10 * BATCH_SIZE as u64, Some(1))
            .flat_map(|i| std::iter::repeat_n(i, 7))
            .map_batches("capacities", |b| vec![(b.len(), b.capacity())])
            .collect()
            .unwrap();
        let last = batches.len() - 1;
        assert!(last > 60, "{} batches", batches.len());
        for (i, &(len, capacity)) in batches.iter().enumerate() {
            assert!(
                i == last || (BATCH_SIZE..BATCH_SIZE + 7).contains(&len),
                "{len}"
            );
            assert_eq!(capacity, FLAT_MAP_BATCH, "a batch of {len} grown");
        }
        ctx.stop();
    }

    #[test]
    fn flat_map_reports_an_upstream_error_that_follows_some_output() {
        use crate::config::EngineArgs;
        use crate::context::Context;
        let dir = tempfile::tempdir().unwrap();
        // A first batch of lines, a few of which flat_map keeps, then a line that is not
        // UTF-8: the kept words are pending output when the error arrives.
        let mut text: Vec<u8> = Vec::new();
        for i in 0..BATCH_SIZE + 10 {
            text.extend_from_slice(if i % 1000 == 0 { b"keep\n" } else { b"drop\n" });
        }
        text.extend_from_slice(b"\xff\n");
        std::fs::write(dir.path().join("in.txt"), &text).unwrap();
        let ctx = Context::local_with(&EngineArgs::default());
        let one_split = crate::rdd::TextOptions {
            partitions: Some(1),
            ..Default::default()
        };
        let lines = ctx
            .text_file_with(dir.path().to_str().unwrap(), one_split)
            .unwrap();
        let kept = lines.flat_map(|l| (l == "keep").then_some(l));
        let err = kept.count().unwrap_err().to_string();
        assert!(err.contains("UTF-8"), "{err}");
        ctx.stop();
    }

    #[test]
    fn a_whole_partition_consumer_of_a_flat_map_takes_its_records_as_they_are_made() {
        use crate::config::EngineArgs;
        use crate::context::Context;
        use crate::plan::batch::Records;
        let ctx = Context::local_with(&EngineArgs::default());
        let base = ctx.range(0, 30_000, Some(3));
        let fan = |i: u64| std::iter::repeat_n((i % 97, i), (i % 3) as usize);
        let expands = |rdd: &crate::rdd::Rdd<(u64, u64)>| {
            rdd.map_partitions(|p| vec![p.expands()]).collect().unwrap()
        };
        assert_eq!(expands(&base.flat_map(fan)), [true; 3]);
        assert_eq!(expands(&base.map(|i| (i, i))), [false; 3]);
        // A map-side combine takes them so: the sums are the sequential ones.
        let mut sums = base
            .flat_map(fan)
            .reduce_by_key(|a, b| a + b)
            .collect()
            .unwrap();
        sums.sort();
        let mut want = std::collections::BTreeMap::new();
        for (k, v) in (0..30_000).flat_map(fan) {
            *want.entry(k).or_insert(0) += v;
        }
        assert_eq!(sums, want.into_iter().collect::<Vec<_>>());
        ctx.stop();
    }
}
