//! Sorting: range-partition by sampled boundaries, then sort each partition.
//!
//! Map tasks order each bucket by key; the reduce side merges the sorted runs it received,
//! holding one record per run (see `sorted_runs`).

use std::sync::Arc;

use crate::error::Result;
use crate::rdd::shuffled::ReduceMode;
use crate::rdd::sort_key::SortKey;
use crate::rdd::sorted_runs::KeySort;
use crate::rdd::{Data, Key, Rdd};
use crate::shuffle::partitioner::Partitioner;
use crate::shuffle::range::{SAMPLES_PER_PARTITION, boundaries, range_partition, reservoir};

impl<T: Data> Rdd<T> {
    /// The records ordered by `key` (ascending or not) across `partitions` partitions
    /// (default: as many as now): every record of partition `i` sorts before (or with)
    /// every record of partition `i + 1`. Runs a sampling job to find the boundaries. The
    /// key is any
    /// [`SortKey`] (integers, strings, byte arrays, tuples of them, ...): map tasks and the
    /// merge order compact integer entries of key prefixes, comparing whole keys only
    /// where prefixes tie.
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
        self.sorted_by(key, ascending, partitions, |_, _| None)
    }

    /// `sort_by`, the result partitioned by what `partitioner` makes of the sampled bounds
    /// and the partition count.
    fn sorted_by<K: Data + SortKey>(
        &self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        ascending: bool,
        partitions: Option<usize>,
        partitioner: impl FnOnce(&[K], usize) -> Option<Partitioner>,
    ) -> Result<Rdd<T>> {
        let partitions = partitions.unwrap_or(self.num_partitions()).max(1);
        let key: Arc<dyn Fn(&T) -> K + Send + Sync> = Arc::new(key);
        let per_input = (SAMPLES_PER_PARTITION * partitions).div_ceil(self.num_partitions().max(1));
        let sample_key = Arc::clone(&key);
        let samples: Vec<(Vec<K>, u64)> = self
            .map_partitions_with_index(move |i, records| {
                let keys = records.map(|r| sample_key(&r));
                vec![reservoir(keys, per_input, i as u64)]
            })
            .collect()?;
        let bounds = Arc::new(boundaries(samples, partitions));
        let partitioner = partitioner(&bounds, partitions);
        let raw = self.node.raw_codec();
        let partition_key = Arc::clone(&key);
        let sort_key = Arc::clone(&key);
        Ok(self.shuffle(
            "sort_by",
            partitions,
            move |r| range_partition(&bounds, &partition_key(r), ascending),
            ReduceMode::Sort(Arc::new(KeySort {
                key: sort_key,
                ascending,
                raw,
            })),
            partitioner,
        ))
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
