//! `distinct`, and its fusion with an aggregation by key right after it.
//!
//! Spark's PageRank builds its links as `edges.distinct().groupByKey()`: two shuffles of
//! every edge, the first placing an edge by the hash of the whole pair, the second by its
//! key. Placing the pairs by key already in `distinct`'s shuffle is as good for
//! `distinct` (equal pairs have equal keys, so they still meet in one partition) and
//! leaves them where the grouping needs them: it then runs in place, with no shuffle.
//! An aggregation by key over the RDD `distinct()` returned (not over one derived from it,
//! persisted or checkpointed) does so; the pairs a key has all end in one partition
//! either way, so the fused shuffle is no more skewed than the aggregation's own.

use std::any::Any;
use std::sync::Arc;

use crate::rdd::{Data, Key, Rdd};
use crate::shuffle::partitioner::{KeyPartition, Partitioner};

/// How to make the records of a `distinct()` again, placed by `place` into the
/// partitions of `partitioner` (which the result then has).
struct DistinctOf<T>(Box<dyn Fn(Partitioner, KeyPartition<T>) -> Rdd<T> + Send + Sync>);

impl<T: Key> Rdd<T> {
    /// The distinct elements.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let mut seen = ctx.parallelize(vec![3, 1, 3, 2, 1], Some(2)).distinct().collect()?;
    /// seen.sort();
    /// assert_eq!(seen, [1, 2, 3]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    ///
    /// Pairs aggregated by key right after (`group_by_key`, `reduce_by_key`, ...) are
    /// shuffled once, not twice:
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let edges = ctx.parallelize(vec![(1, 2), (1, 3), (1, 2), (4, 5)], Some(2));
    /// let links = edges.distinct().group_by_key();
    /// assert_eq!(links.explain().matches("+- shuffle").count(), 1, "{}", links.explain());
    /// let mut links: Vec<(i32, Vec<i32>)> = (links.collect()?.into_iter())
    ///     .map(|(from, to)| (from, to.into_vec()))
    ///     .collect();
    /// links.iter_mut().for_each(|(_, to)| to.sort());
    /// links.sort();
    /// assert_eq!(links, [(1, vec![2, 3]), (4, vec![5])]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn distinct(&self) -> Rdd<T> {
        let source = self.clone();
        let again: DistinctOf<T> = DistinctOf(Box::new(move |partitioner, place| {
            source.distinct_placed(Some((partitioner, place)))
        }));
        let mut distinct = self.distinct_placed(None);
        distinct.distinct_of = Some(Arc::new(again) as Arc<dyn Any + Send + Sync>);
        distinct
    }

    /// The distinct elements, placed by the hash of the whole element, or by `place`
    /// into the partitions of the partitioner given with it.
    fn distinct_placed(&self, by: Option<(Partitioner, KeyPartition<T>)>) -> Rdd<T> {
        let marked = self.map(|x| (x, ()));
        let keys = |batch: Vec<(T, ())>| batch.into_iter().map(|(x, _)| x).collect();
        match by {
            None => marked.reduce_by_key(|_, _| ()).map_batches("keys", keys),
            Some((partitioner, place)) => {
                let partitions = partitioner.num_partitions();
                let merge = Arc::new(|_: (), _: ()| ());
                marked
                    .combine_placed((|v| v, |_, _| (), merge), (partitions, place, None), true)
                    .map_batches_partitioned("keys (placed by key)", Some(partitioner), keys)
            }
        }
    }
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    /// When this RDD is what `distinct()` returned: the same distinct pairs placed by key
    /// into `partitioner`'s partitions, and partitioned so (`None` if `partitioner`
    /// cannot place `K`).
    pub(crate) fn distinct_by_key(&self, partitioner: &Partitioner) -> Option<Rdd<(K, V)>> {
        let again = self
            .distinct_of
            .as_ref()?
            .downcast_ref::<DistinctOf<(K, V)>>()?;
        let place = partitioner.for_keys::<K>()?;
        let by_key: KeyPartition<(K, V)> = Arc::new(move |(k, _): &(K, V)| place(k));
        Some((again.0)(partitioner.clone(), by_key))
    }
}
