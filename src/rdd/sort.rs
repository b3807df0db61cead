//! Sorting: range-partition by sampled boundaries, then sort each partition.
//!
//! Map tasks order each bucket by key (`sorted_runs`); the reduce side merges the sorted
//! runs it received, holding one record per run (`sort_merge`, `raw_merge`), or, for a
//! located sort's entries, sorts them again at once (`entry_sort`).

use std::sync::Arc;

use crate::error::Result;
use crate::plan::batch::{BatchIter, PartitionIter, take_error};
use crate::plan::node::{Compute, Dependency, Node, RddId, erase};
use crate::plan::task::TaskContext;
use crate::rdd::shuffled::{ReduceMode, SortPlan};
use crate::rdd::sort_key::SortKey;
use crate::rdd::sorted_runs::KeySort;
use crate::rdd::{Data, Key, Rdd};
use crate::shuffle::partitioner::Partitioner;
use crate::shuffle::range::{boundaries, range_partition, reservoir, sample_size};

impl<T: Data> Rdd<T> {
    /// The records ordered by `key` (ascending or not) across `partitions` partitions
    /// (default: as many as now): every record of partition `i` sorts before (or with)
    /// every record of partition `i + 1`. Runs a sampling job to find the boundaries. The
    /// key is any
    /// [`SortKey`] (integers, strings, byte arrays, tuples of them, ...): map tasks and the
    /// merge order compact integer entries of key prefixes, comparing whole keys only
    /// where prefixes tie. Fixed-width records of files (`pod_records`, `binary_records`)
    /// sorted by such a key on one node shuffle a 16-byte entry per record (the key's
    /// prefix and where the record lies) and are read back once, in order, from their file.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let words = ctx.parallelize(["pear", "fig", "banana", "kiwis"].map(String::from).to_vec(), None);
    /// let by_length = words.sort_by(|w| w.len(), true, Some(2))?;
    /// assert_eq!(by_length.collect()?, ["fig", "pear", "kiwis", "banana"]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn sort_by<K: Data + SortKey>(
        &self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        ascending: bool,
        partitions: Option<usize>,
    ) -> Result<Rdd<T>> {
        let key: Arc<dyn Fn(&T) -> K + Send + Sync> = Arc::new(key);
        if let Some(sorted) = self.sort_located(&key, ascending, partitions) {
            return sorted;
        }
        self.sorted_by(move |t| key(t), ascending, partitions, |_, _| None)
    }

    /// `sort_by`, the result partitioned by what `partitioner` makes of the sampled bounds
    /// and the partition count.
    pub(crate) fn sorted_by<K: Data + SortKey>(
        &self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        ascending: bool,
        partitions: Option<usize>,
        partitioner: impl FnOnce(&[K], usize) -> Option<Partitioner>,
    ) -> Result<Rdd<T>> {
        self.sorted_with(key, ascending, partitions, partitioner, |sort| {
            Arc::new(sort)
        })
    }

    /// `sorted_by`, the sort's reduce side `plan` made of its map side's `KeySort`.
    pub(crate) fn sorted_with<K: Data + SortKey>(
        &self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        ascending: bool,
        partitions: Option<usize>,
        partitioner: impl FnOnce(&[K], usize) -> Option<Partitioner>,
        plan: impl FnOnce(KeySort<T, K>) -> Arc<dyn SortPlan<T>>,
    ) -> Result<Rdd<T>> {
        let partitions = partitions.unwrap_or(self.num_partitions()).max(1);
        let key: Arc<dyn Fn(&T) -> K + Send + Sync> = Arc::new(key);
        let per_input = sample_size(partitions).div_ceil(self.num_partitions().max(1));
        let samples: Vec<(Vec<K>, u64)> = self
            .derive(Arc::new(SampleKeys {
                id: self.rt.new_rdd_id(),
                parent: Arc::clone(&self.node),
                key: Arc::clone(&key),
                size: per_input,
            }))
            .collect()?;
        let bounds = Arc::new(boundaries(samples, partitions));
        let partitioner = partitioner(&bounds, partitions);
        let raw = self.node.raw_codec();
        let partition_key = Arc::clone(&key);
        let sort_key = Arc::clone(&key);
        let partition_bounds = Arc::clone(&bounds);
        Ok(self.shuffle(
            "sort_by",
            partitions,
            // Map tasks partition through the sort (one key per record); this is for the rest.
            move |r| range_partition(&partition_bounds, &partition_key(r), ascending),
            ReduceMode::Sort(plan(
                KeySort::new(sort_key, ascending, raw).partitioning(Arc::clone(&bounds)),
            )),
            partitioner,
        ))
    }
}

/// A sort's sampling job: per partition, the keys of a uniform sample of at most `size`
/// records and how many records it holds. Drawn in place where the parent can (fixed-width
/// records of files), else by a reservoir over the computed partition.
struct SampleKeys<T, K> {
    id: RddId,
    parent: Arc<dyn Compute<T>>,
    key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    size: usize,
}

impl<T: 'static, K: 'static> Node for SampleKeys<T, K> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        "sample_keys".to_string()
    }
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(erase(&self.parent))]
    }
}

impl<T: 'static, K: 'static> Compute<(Vec<K>, u64)> for SampleKeys<T, K> {
    fn compute(
        self: Arc<Self>,
        split: usize,
        tc: &TaskContext,
    ) -> Result<BatchIter<(Vec<K>, u64)>> {
        let seed = split as u64;
        let sample = match self.parent.sample(split, self.size, seed) {
            Some(sample) => {
                let (records, n) = sample?;
                (records.iter().map(|r| (self.key)(r)).collect(), n)
            }
            None => {
                let (records, error) =
                    PartitionIter::new(Arc::clone(&self.parent).compute(split, tc)?);
                let sample = reservoir(records.map(|r| (self.key)(&r)), self.size, seed);
                if let Some(e) = take_error(&error) {
                    return Err(e);
                }
                sample
            }
        };
        Ok(Box::new(std::iter::once(Ok(vec![sample]))))
    }
}

impl<K: Key + SortKey, V: Data> Rdd<(K, V)> {
    /// The pairs ordered by key; see [`Rdd::sort_by`]. The result is range-partitioned
    /// by key (its [`partitioner`](Rdd::partitioner) says so).
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let scores = ctx.parallelize(vec![(3, 'c'), (1, 'a'), (2, 'b')], Some(2));
    /// let descending = scores.sort_by_key(false, None)?;
    /// assert_eq!(descending.collect()?, [(3, 'c'), (2, 'b'), (1, 'a')]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn sort_by_key(&self, ascending: bool, partitions: Option<usize>) -> Result<Rdd<(K, V)>> {
        self.sorted_by(
            |(k, _)| k.clone(),
            ascending,
            partitions,
            |bounds, n| Some(Partitioner::range(bounds.to_vec(), n, ascending)),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::config::EngineArgs;
    use crate::io::records::Record;
    use crate::{Context, Rdd};

    #[test]
    fn fixed_width_records_are_sampled_in_place_and_sorted() {
        let ctx = Context::local_with(&EngineArgs::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records");
        let records: Vec<Record> = (0..20_000).map(|i| Record::generate(4, i)).collect();
        std::fs::write(&path, bytemuck::cast_slice::<Record, u8>(&records)).unwrap();
        let input: Rdd<Record> = ctx.pod_records(path.to_str().unwrap(), Some(8)).unwrap();
        let before = ctx.metrics().source_partitions;
        let sorted = input.sort_by(Record::key, true, Some(4)).unwrap();
        // The sampling job read a few records of each split; only the map stage (run by
        // the action) computes the 8 splits.
        assert_eq!(ctx.metrics().source_partitions, before);
        let parts: Vec<usize> = sorted
            .map_partitions(|records| std::iter::once(records.count()))
            .collect()
            .unwrap();
        assert_eq!(ctx.metrics().source_partitions, before + 8);
        assert_eq!(parts.iter().sum::<usize>(), 20_000);
        assert!(parts.iter().all(|&n| n > 2_000), "balanced: {parts:?}");
        let mut expected = records;
        expected.sort_by_key(Record::key);
        assert!(sorted.collect().unwrap() == expected);
    }

    #[test]
    fn a_sort_into_few_partitions_splits_its_records_evenly() {
        // Random keys in 32 splits into 2 partitions (TeraSort on 2 executors): the
        // larger partition sets the stage's time, so it must be close to half.
        use rand::{Rng, SeedableRng};
        let ctx = Context::local_with(&EngineArgs::default());
        let dir = tempfile::tempdir().unwrap();
        let n = 200_000;
        let mut worst = 0.0f64;
        for seed in 0..8 {
            let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
            let keys: Vec<u64> = (0..n).map(|_| rng.random()).collect();
            let path = dir.path().join(format!("keys-{seed}"));
            std::fs::write(&path, bytemuck::cast_slice::<u64, u8>(&keys)).unwrap();
            let input: Rdd<u64> = ctx.pod_records(path.to_str().unwrap(), Some(32)).unwrap();
            let parts: Vec<usize> = input
                .sort_by(|k| *k, true, Some(2))
                .unwrap()
                .map_partitions(|records| std::iter::once(records.count()))
                .collect()
                .unwrap();
            assert_eq!(parts.iter().sum::<usize>(), n);
            let larger = *parts.iter().max().unwrap() as f64 / (n as f64 / 2.0);
            worst = worst.max(larger);
        }
        assert!(worst < 1.03, "the larger partition is {worst:.3}x half");
    }
}
