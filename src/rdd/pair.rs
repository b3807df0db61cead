//! Operations on RDDs of key-value pairs: values, aggregation by key, grouping and
//! `partition_by` (the joins of two are in `cogroup.rs`).
//!
//! The aggregations rest on `combine_by_key` (map-side combine, hash shuffle, reduce-side
//! merge), as in Spark, and know partitioners: an input already partitioned as the result
//! must be is not shuffled (a narrow, per-partition pass instead), and with no partitioner
//! given they use the input's own (Spark's `defaultPartitioner`).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::rdd::reduce_combine::ReduceHints;
use crate::rdd::shuffled::ReduceMode;
use crate::rdd::spill_combine::MergeCombiners;
use crate::rdd::{Data, Group, Key, Rdd};
use crate::shuffle::partitioner::{KeyPartition, Partitioner, default_partitioner, hash_partition};

/// `partitioner` and its placement of keys of type `K`; a hash partitioner of as many
/// partitions in place of one that cannot place `K` (a range partitioner made for another
/// key type), so the records still go where the recorded partitioner says.
fn placement<K: Key>(partitioner: Partitioner) -> (Partitioner, KeyPartition<K>) {
    match partitioner.for_keys::<K>() {
        Some(place) => (partitioner, place),
        None => {
            let n = partitioner.num_partitions();
            (
                Partitioner::hash(n),
                Arc::new(move |k: &K| hash_partition(k, n)),
            )
        }
    }
}

/// The reduce partition of a record by its key: `place(k)`, or where `partitioner` is a
/// hash partitioner (whose placement `place` then is) that hash placement inline, not
/// through a call a record.
fn by_key<K: Key, V>(
    place: KeyPartition<K>,
    partitioner: Option<&Partitioner>,
) -> impl Fn(&(K, V)) -> usize + Send + Sync + 'static {
    let hashed = match partitioner {
        Some(Partitioner::Hash { partitions }) => Some(*partitions),
        _ => None,
    };
    move |(k, _)| match hashed {
        Some(n) => hash_partition(k, n),
        None => place(k),
    }
}

pub use crate::rdd::cogroup::CoGrouped;

impl<K: Key, V: Data> Rdd<(K, V)> {
    /// Applies `f` to every value, keeping keys.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let pairs = ctx.parallelize(vec![('a', 1), ('b', 2)], None);
    /// assert_eq!(pairs.map_values(|v| v * 10).collect()?, [('a', 10), ('b', 20)]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn map_values<U: Data>(&self, f: impl Fn(V) -> U + Send + Sync + 'static) -> Rdd<(K, U)> {
        self.map_batches_keeping_keys("map_values", move |batch| {
            batch.into_iter().map(|(k, v)| (k, f(v))).collect()
        })
    }

    /// Applies `f` to every value and flattens, keeping keys.
    pub fn flat_map_values<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> Rdd<(K, U)> {
        self.map_batches_keeping_keys("flat_map_values", move |batch| {
            batch
                .into_iter()
                .flat_map(|(k, v)| f(v).into_iter().map(move |u| (k.clone(), u)))
                .collect()
        })
    }

    pub fn keys(&self) -> Rdd<K> {
        self.map_batches("keys", |batch| batch.into_iter().map(|(k, _)| k).collect())
    }

    pub fn values(&self) -> Rdd<V> {
        self.map_batches("values", |batch| {
            batch.into_iter().map(|(_, v)| v).collect()
        })
    }

    /// The general aggregation by key: `create` makes a combiner from a key's first value,
    /// `merge_value` adds a value, `merge_combiners` merges partial results. With
    /// `map_side_combine`, each map partition is combined before the shuffle.
    /// `partitions` is the number of reduce partitions.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// // The mean value of each key: combiners are (sum, count).
    /// let pairs = ctx.parallelize(vec![('a', 1.0), ('b', 4.0), ('a', 3.0)], Some(2));
    /// let sums = pairs.combine_by_key(
    ///     |v| (v, 1u32),
    ///     |(s, n), v| (s + v, n + 1),
    ///     |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2),
    ///     2,
    ///     true,
    /// );
    /// let mut means = sums.map_values(|(s, n)| s / n as f64).collect()?;
    /// means.sort_by(|x, y| x.0.cmp(&y.0));
    /// assert_eq!(means, [('a', 2.0), ('b', 4.0)]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
        partitions: usize,
        map_side_combine: bool,
    ) -> Rdd<(K, C)> {
        let partitioner = Partitioner::hash(partitions);
        self.combine_by_key_with(
            create,
            merge_value,
            merge_combiners,
            partitioner,
            map_side_combine,
        )
    }

    /// `combine_by_key` into the partitions of `partitioner`. On an RDD already
    /// partitioned by an equal partitioner every key's values are in one partition: each
    /// partition is combined where it is, with no shuffle (and `merge_combiners` unused).
    ///
    /// ```
    /// # use ember::{Context, Partitioner, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let pairs = ctx.parallelize(vec![('a', 1), ('b', 4), ('a', 3)], Some(2));
    /// let by_key = pairs.partition_by(Partitioner::hash(3))?;
    /// let sums = by_key.combine_by_key_with(|v| v, |c, v| c + v, |a, b| a + b, Partitioner::hash(3), true);
    /// assert!(!sums.explain().contains("shuffle 1")); // only partition_by's shuffle 0
    /// let mut sums = sums.collect()?;
    /// sums.sort();
    /// assert_eq!(sums, [('a', 4), ('b', 4)]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn combine_by_key_with<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
        partitioner: Partitioner,
        map_side_combine: bool,
    ) -> Rdd<(K, C)> {
        let co_partitioned = self.partitioner().as_ref() == Some(&partitioner);
        if !co_partitioned && let Some(distinct) = self.distinct_by_key(&partitioner) {
            // `distinct()` just before: its shuffle places the records by key, so this
            // aggregation needs none of its own.
            return distinct.combine_by_key_with(
                create,
                merge_value,
                merge_combiners,
                partitioner,
                map_side_combine,
            );
        }
        let merge: MergeCombiners<C> = Arc::new(merge_combiners);
        if co_partitioned {
            // As on the reduce side of a shuffle (one map for a whole partition was a
            // cache miss a record; profiled on PageRank's links grouped after their
            // distinct: 7.0 s against 4.1 s).
            let name = "combine_by_key (co-partitioned: no shuffle)";
            return self.combine_values_in_place(name, create, merge_value, merge);
        }
        let (partitioner, place) = placement::<K>(partitioner);
        let partitions = partitioner.num_partitions();
        self.combine_placed(
            (create, merge_value, merge),
            (partitions, place, Some(partitioner)),
            map_side_combine,
        )
    }

    /// The shuffle and combine of `combine_by_key` (`create`, `merge_value`, `merge`),
    /// key `k` going to partition `place(k)` of `partitions`; the result has
    /// `partitioner`, if any (none where `place` is not a partitioner of `K`).
    pub(crate) fn combine_placed<C: Data>(
        &self,
        (create, merge_value, merge): (
            impl Fn(V) -> C + Send + Sync + 'static,
            impl Fn(C, V) -> C + Send + Sync + 'static,
            MergeCombiners<C>,
        ),
        (partitions, place, partitioner): (usize, KeyPartition<K>, Option<Partitioner>),
        map_side_combine: bool,
    ) -> Rdd<(K, C)> {
        let combiners: Rdd<(K, C)> = if map_side_combine {
            let (create, merge_value) = (Arc::new(create), Arc::new(merge_value));
            let place = Arc::clone(&place);
            let hints = Arc::new(crate::rdd::partitioned_combine::MapSideHints::default());
            // One hash map while it stays in cache, then a reduce partition at a time
            // (see `partitioned_combine`).
            self.partition_batches_with("map_side_combine", false, move |_, records| {
                let (create, merge_value) = (Arc::clone(&create), Arc::clone(&merge_value));
                let batches = crate::rdd::partitioned_combine::MapSideCombine::new(
                    records,
                    partitions,
                    Arc::clone(&place),
                    Arc::clone(&hints),
                    move |v| create(v),
                    move |c, v| merge_value(c, v),
                );
                Ok(Box::new(batches.map(Ok)) as crate::plan::batch::BatchIter<(K, C)>)
            })
        } else {
            // Values cross the shuffle as they are and are combined on the reduce side
            // (Spark's `combineByKey` without a map-side combine): a combiner made per
            // record before the shuffle (`group_by_key`'s one-value vector) was
            // allocated, encoded, decoded and merged again record by record.
            let values = self.shuffle(
                "combine_by_key",
                partitions,
                by_key(place, partitioner.as_ref()),
                ReduceMode::Plain,
                partitioner.clone(),
            );
            return values.combine_values_in_place("combine_values", create, merge_value, merge);
        };
        combiners.shuffle(
            "combine_by_key",
            partitions,
            by_key(place, partitioner.as_ref()),
            ReduceMode::Combine({
                // The most records and keys a reduce partition had, for the tasks after it.
                let hints = Arc::new(ReduceHints::default());
                Arc::new(
                    move |records: &mut crate::rdd::shuffled::ReduceRecords<(K, C)>| {
                        crate::rdd::reduce_combine::merge_combiners(
                            records,
                            &hints,
                            Arc::clone(&merge),
                        )
                    },
                )
            }),
            partitioner,
        )
    }

    /// Each partition's values combined by key where the partition is, a cache-sized
    /// sub-part of its keys at a time (`reduce_combine::combine_values`): the reduce side
    /// of a shuffle without a map-side combine, or an RDD already partitioned as the
    /// aggregation's result must be.
    fn combine_values_in_place<C: Data>(
        &self,
        name: &'static str,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge: MergeCombiners<C>,
    ) -> Rdd<(K, C)> {
        // The most records and keys a partition had, for the tasks after it.
        let hints = Arc::new(ReduceHints::default());
        let (create, merge_value) = (Arc::new(create), Arc::new(merge_value));
        self.partition_batches_with(name, true, move |_, mut records| {
            // The partition's entries are combined as they are read, after this returns.
            let (create, merge_value) = (Arc::clone(&create), Arc::clone(&merge_value));
            crate::rdd::reduce_combine::combine_values(
                &mut records,
                &hints,
                move |v| create(v),
                move |c, v| merge_value(c, v),
                Arc::clone(&merge),
            )
        })
    }

    /// The partitioner an aggregation of this RDD alone uses when given none: its own if
    /// it has one, else hash partitioning into as many partitions as it has.
    fn own_partitioner(&self) -> Partitioner {
        default_partitioner(&[(self.partitioner(), self.num_partitions())])
    }

    /// The records shuffled so that key `k` is in partition `partitioner`'s place for
    /// `k`; the result has that partitioner. An RDD already partitioned so is returned as
    /// it is (no shuffle). Fails for a range partitioner made for another key type.
    ///
    /// ```
    /// # use ember::{Context, Partitioner, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let pairs = ctx.parallelize((0..100u32).map(|i| (i % 10, i)).collect(), Some(3));
    /// let by_key = pairs.partition_by(Partitioner::hash(4))?.cache();
    /// assert_eq!(by_key.num_partitions(), 4);
    /// // Grouping by the same partitioner adds no shuffle: only partition_by's shuffle 0.
    /// let groups = by_key.group_by_key();
    /// assert!(!groups.explain().contains("shuffle 1"), "{}", groups.explain());
    /// assert_eq!(groups.count()?, 10);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn partition_by(&self, partitioner: Partitioner) -> Result<Rdd<(K, V)>> {
        if partitioner.for_keys::<K>().is_none() {
            return Err(Error::Other(format!(
                "partition_by: {partitioner} was made for another key type than {}",
                std::any::type_name::<K>()
            )));
        }
        Ok(self.partitioned_as(partitioner))
    }

    /// This RDD partitioned by `partitioner` (a hash partitioner of as many partitions if
    /// that one cannot place `K`): itself when it already is, else a shuffle.
    pub(crate) fn partitioned_as(&self, partitioner: Partitioner) -> Rdd<(K, V)> {
        if self.partitioner().as_ref() == Some(&partitioner) {
            return self.clone();
        }
        let (partitioner, place) = placement::<K>(partitioner);
        self.shuffle(
            "partition_by",
            partitioner.num_partitions(),
            by_key(place, Some(&partitioner)),
            ReduceMode::Plain,
            Some(partitioner),
        )
    }

    /// Merges the values of each key with `f` (associative and commutative).
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let words = ctx.parallelize(["b", "a", "b", "c", "b"].map(String::from).to_vec(), Some(2));
    /// let mut counts = words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b).collect()?;
    /// counts.sort();
    /// let expect = [("a", 1), ("b", 3), ("c", 1)].map(|(w, n)| (w.to_string(), n));
    /// assert_eq!(counts, expect);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Rdd<(K, V)> {
        self.reduce_by_key_with(f, self.own_partitioner())
    }

    /// `reduce_by_key` into `partitions` partitions (hash partitioned).
    pub fn reduce_by_key_into(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        partitions: usize,
    ) -> Rdd<(K, V)> {
        self.reduce_by_key_with(f, Partitioner::hash(partitions))
    }

    /// `reduce_by_key` into the partitions of `partitioner`: no shuffle when this RDD is
    /// already partitioned by it.
    pub fn reduce_by_key_with(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        partitioner: Partitioner,
    ) -> Rdd<(K, V)> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        self.combine_by_key_with(
            |v| v,
            move |a, b| f(a, b),
            move |a, b| g(a, b),
            partitioner,
            true,
        )
    }

    /// Folds each key's values into `zero` with `seq`, merging partial results with `comb`.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// // The distinct values of each key, as a sorted set.
    /// use std::collections::BTreeSet;
    /// let pairs = ctx.parallelize(vec![(1, 'x'), (2, 'y'), (1, 'z'), (1, 'x')], Some(2));
    /// let sets = pairs.aggregate_by_key(
    ///     BTreeSet::new(),
    ///     |mut set, v| {
    ///         set.insert(v);
    ///         set
    ///     },
    ///     |mut a, mut b| {
    ///         a.append(&mut b);
    ///         a
    ///     },
    /// );
    /// let mut sets = sets.collect()?;
    /// sets.sort();
    /// assert_eq!(sets, [(1, BTreeSet::from(['x', 'z'])), (2, BTreeSet::from(['y']))]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn aggregate_by_key<U: Data>(
        &self,
        zero: U,
        seq: impl Fn(U, V) -> U + Send + Sync + 'static,
        comb: impl Fn(U, U) -> U + Send + Sync + 'static,
    ) -> Rdd<(K, U)> {
        let seq = Arc::new(seq);
        let first = Arc::clone(&seq);
        self.combine_by_key_with(
            move |v| first(zero.clone(), v),
            move |u, v| seq(u, v),
            comb,
            self.own_partitioner(),
            true,
        )
    }

    /// All values of each key, as a [`Group`]: Spark's `Iterable`, shared, so a group read
    /// again (from the cache, in a join) is not copied. No map-side combine: it would not
    /// shrink the data.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let pairs = ctx.parallelize(vec![('a', 1), ('b', 2), ('a', 3)], Some(2));
    /// let mut groups: Vec<(char, Vec<i32>)> = (pairs.group_by_key().collect()?.into_iter())
    ///     .map(|(k, values)| {
    ///         let mut values = values.into_vec();
    ///         values.sort(); // values come in no particular order
    ///         (k, values)
    ///     })
    ///     .collect();
    /// groups.sort();
    /// assert_eq!(groups, [('a', vec![1, 3]), ('b', vec![2])]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn group_by_key(&self) -> Rdd<(K, Group<V>)> {
        self.group_by_key_with(self.own_partitioner())
    }

    /// `group_by_key` into `partitions` partitions (hash partitioned).
    pub fn group_by_key_into(&self, partitions: usize) -> Rdd<(K, Group<V>)> {
        self.group_by_key_with(Partitioner::hash(partitions))
    }

    /// `group_by_key` into the partitions of `partitioner`: no shuffle when this RDD is
    /// already partitioned by it.
    pub fn group_by_key_with(&self, partitioner: Partitioner) -> Rdd<(K, Group<V>)> {
        let co_partitioned = self.partitioner().as_ref() == Some(&partitioner);
        if !co_partitioned && let Some(distinct) = self.distinct_by_key(&partitioner) {
            // As for `combine_by_key_with`: the distinct's shuffle places the records.
            return distinct.group_by_key_with(partitioner);
        }
        let (placed, name) = if co_partitioned {
            (self.clone(), "group_by_key (co-partitioned: no shuffle)")
        } else {
            // Values cross the shuffle as they are (no map-side combine: a group is as
            // large as its values), as Spark's `groupByKey`.
            let (partitioner, place) = placement::<K>(partitioner);
            let partitions = partitioner.num_partitions();
            let values = self.shuffle(
                "group_by_key",
                partitions,
                by_key(place, Some(&partitioner)),
                ReduceMode::Plain,
                Some(partitioner),
            );
            (values, "group_values")
        };
        // Each group allocated once at its size (`group_values`), then shared (`Group`):
        // a cached group read again and again (PageRank's links, every iteration) is
        // cloned as a pointer, not copied.
        let hints = Arc::new(ReduceHints::default());
        placed.partition_batches_with(name, true, move |_, mut records| {
            crate::rdd::group_values::group_values(&mut records, &hints)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::EngineArgs;
    use crate::context::Context;
    use crate::shuffle::partitioner::Partitioner;

    #[test]
    fn a_cached_group_is_read_again_without_copying_its_values() {
        let ctx = Context::local_with(&EngineArgs::default());
        let pairs: Vec<(u32, u64)> = (0..4000u64).map(|i| ((i % 100) as u32, i)).collect();
        let groups = (ctx.parallelize(pairs, Some(2)).group_by_key())
            .persist(crate::cache::StorageLevel::Memory);
        // Where each key's values are, read from the cache: every group of a partition held
        // at once, so copies would each have an address of their own.
        let addresses = || {
            let mut seen = (groups.map_partitions(|records| {
                let held: Vec<_> = records.collect();
                let seen: Vec<(u32, usize)> = held
                    .iter()
                    .map(|(k, g)| (*k, g.as_ptr() as usize))
                    .collect();
                seen
            }))
            .collect()
            .unwrap();
            seen.sort();
            seen
        };
        let first = addresses();
        assert_eq!(first.len(), 100);
        assert_eq!(addresses(), first);
        assert_eq!(addresses(), first);
        ctx.stop();
    }

    #[test]
    fn without_a_map_side_combine_values_are_combined_on_the_reduce_side() {
        // 100,000 rows over 1,000 keys in 4 reduce partitions: 25,000 a partition, enough
        // to be combined a sub-part at a time.
        let ctx = Context::local_with_executors(&EngineArgs::default(), 2);
        let rows: Vec<(u64, u64)> = (0..100_000u64).map(|i| (i * 7 % 1000, i)).collect();
        let pairs = ctx.parallelize(rows.clone(), Some(6));
        let mut want: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
        for &(k, v) in &rows {
            want.entry(k).or_default().push(v);
        }
        // Combiners are (sum, merges of two combiners): values reach the reduce side as
        // values, merged into their key's combiner, never made combiners and merged as
        // such (as a combiner made per record before the shuffle would be).
        let mut sums = pairs
            .combine_by_key(
                |v| (v, 0u64),
                |(s, m), v| (s + v, m),
                |(a, m), (b, n)| (a + b, m + n + 1),
                4,
                false,
            )
            .collect()
            .unwrap();
        sums.sort();
        let merged = sums.iter().filter(|(_, (_, m))| *m > 0).count();
        assert_eq!(merged, 0, "keys whose combiners were merged as such");
        let want_sums: Vec<(u64, (u64, u64))> = want
            .iter()
            .map(|(k, vs)| (*k, (vs.iter().sum(), 0)))
            .collect();
        assert_eq!(sums, want_sums);
        // group_by_key is that aggregation: every value of a key, once, in its partitioner.
        let groups = pairs.group_by_key_into(4);
        assert_eq!(groups.partitioner(), Some(Partitioner::hash(4)));
        let mut got: Vec<(u64, Vec<u64>)> = (groups.collect().unwrap().into_iter())
            .map(|(k, vs)| {
                let mut vs = vs.into_vec();
                vs.sort();
                (k, vs)
            })
            .collect();
        got.sort();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn a_hot_key_crosses_the_shuffle_as_one_partial_per_map_partition() {
        // Key 7 holds a third of 30,000 rows over 6 map partitions. With the map-side
        // combine, the reduce side merges 6 partial results for it, not 10,000 rows.
        let ctx = Context::local_with_executors(&EngineArgs::default(), 2);
        let rows: Vec<(u64, u64)> = (0..30_000u64)
            .map(|i| (if i % 3 == 0 { 7 } else { i % 1000 + 8 }, 1))
            .collect();
        let pairs = ctx.parallelize(rows, Some(6));
        // Combiners are (sum, partials): only merging combiners adds partials.
        let sums = pairs
            .combine_by_key(
                |v| (v, 1u64),
                |(s, p), v| (s + v, p),
                |(a, p), (b, q)| (a + b, p + q),
                4,
                true,
            )
            .collect()
            .unwrap();
        let hot = sums.iter().find(|(k, _)| *k == 7).unwrap().1;
        assert_eq!(hot, (10_000, 6));
        // reduce_by_key is that aggregation, map-side combine included.
        let reduced = pairs.reduce_by_key(|a, b| a + b);
        assert!(
            reduced.explain().contains("map_side_combine"),
            "{}",
            reduced.explain()
        );
        let mut got = reduced.collect().unwrap();
        got.sort();
        assert_eq!(got[0], (7, 10_000));
    }
}
