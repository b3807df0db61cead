//! Operations on RDDs of key-value pairs: aggregation by key, grouping and joins.
//!
//! All of them rest on `combine_by_key` (map-side combine, hash shuffle, reduce-side
//! merge) and `cogroup`, as in Spark.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::rdd::shuffled::ReduceMode;
use crate::rdd::{Data, Key, Rdd};
use crate::shuffle::partitioner::hash_partition;

/// Adds `v` to `k`'s combiner: one hash lookup when the key is known (the common case),
/// updating in place. Values are `Option`s so a combiner can be moved out and back
/// without a second lookup; a panic in `merge` leaves `None`, which is skipped.
fn merge_into<K: Key, V, C>(
    acc: &mut FxHashMap<K, Option<C>>,
    k: K,
    v: V,
    create: &dyn Fn(V) -> C,
    merge: &dyn Fn(C, V) -> C,
) {
    if let Some(slot) = acc.get_mut(&k) {
        *slot = Some(match slot.take() {
            Some(c) => merge(c, v),
            None => create(v),
        });
    } else {
        acc.insert(k, Some(create(v)));
    }
}

/// The result of `cogroup`: each key with its values from both sides.
pub type CoGrouped<K, V, W> = Rdd<(K, (Vec<V>, Vec<W>))>;

/// Which side of a cogroup a value came from.
#[derive(Clone, Serialize, Deserialize)]
enum Side<V, W> {
    Left(V),
    Right(W),
}

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
        self.map_batches("map_values", move |batch| {
            batch.into_iter().map(|(k, v)| (k, f(v))).collect()
        })
    }

    /// Applies `f` to every value and flattens, keeping keys.
    pub fn flat_map_values<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> Rdd<(K, U)> {
        self.map_batches("flat_map_values", move |batch| {
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
        let partitions = partitions.max(1);
        let combiners: Rdd<(K, C)> = if map_side_combine {
            self.partition_op("map_side_combine", move |_, records| {
                let mut acc: FxHashMap<K, Option<C>> = FxHashMap::default();
                for (k, v) in records {
                    merge_into(&mut acc, k, v, &create, &merge_value);
                }
                acc.into_iter().filter_map(|(k, c)| Some((k, c?)))
            })
        } else {
            self.map_values(create)
        };
        let merge = Arc::new(merge_combiners);
        combiners.shuffle(
            "combine_by_key",
            partitions,
            move |(k, _)| hash_partition(k, partitions),
            ReduceMode::Combine(Arc::new(
                move |records: &mut dyn Iterator<Item = (K, C)>| {
                    let mut acc: FxHashMap<K, Option<C>> = FxHashMap::default();
                    for (k, c) in records {
                        merge_into(&mut acc, k, c, &|c| c, &*merge);
                    }
                    acc.into_iter().filter_map(|(k, c)| Some((k, c?))).collect()
                },
            )),
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
        self.reduce_by_key_into(f, self.num_partitions())
    }

    /// `reduce_by_key` into `partitions` partitions.
    pub fn reduce_by_key_into(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        partitions: usize,
    ) -> Rdd<(K, V)> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        self.combine_by_key(
            |v| v,
            move |a, b| f(a, b),
            move |a, b| g(a, b),
            partitions,
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
        self.combine_by_key(
            move |v| first(zero.clone(), v),
            move |u, v| seq(u, v),
            comb,
            self.num_partitions(),
            true,
        )
    }

    /// All values of each key (no map-side combine: it would not shrink the data).
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let pairs = ctx.parallelize(vec![('a', 1), ('b', 2), ('a', 3)], Some(2));
    /// let mut groups = pairs.group_by_key().collect()?;
    /// groups.sort();
    /// for (_, values) in &mut groups {
    ///     values.sort(); // values come in no particular order
    /// }
    /// assert_eq!(groups, [('a', vec![1, 3]), ('b', vec![2])]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn group_by_key(&self) -> Rdd<(K, Vec<V>)> {
        self.group_by_key_into(self.num_partitions())
    }

    pub fn group_by_key_into(&self, partitions: usize) -> Rdd<(K, Vec<V>)> {
        self.combine_by_key(
            |v| vec![v],
            |mut c, v| {
                c.push(v);
                c
            },
            |mut a, mut b| {
                a.append(&mut b);
                a
            },
            partitions,
            false,
        )
    }

    /// For each key of either side, its values in `self` and in `other`.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let left = ctx.parallelize(vec![(1, 'a'), (2, 'b')], None);
    /// let right = ctx.parallelize(vec![(2, 10), (3, 20)], None);
    /// let mut groups = left.cogroup(&right).collect()?;
    /// groups.sort();
    /// assert_eq!(
    ///     groups,
    ///     [(1, (vec!['a'], vec![])), (2, (vec!['b'], vec![10])), (3, (vec![], vec![20]))]
    /// );
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn cogroup<W: Data>(&self, other: &Rdd<(K, W)>) -> CoGrouped<K, V, W> {
        let partitions = self.num_partitions().max(other.num_partitions());
        let left: Rdd<(K, Side<V, W>)> = self.map_values(Side::Left);
        let right: Rdd<(K, Side<V, W>)> = other.map_values(Side::Right);
        left.union(&right)
            .group_by_key_into(partitions)
            .map_values(|sides| {
                let (mut vs, mut ws) = (Vec::new(), Vec::new());
                for side in sides {
                    match side {
                        Side::Left(v) => vs.push(v),
                        Side::Right(w) => ws.push(w),
                    }
                }
                (vs, ws)
            })
    }

    /// Pairs of values for every key in both sides (inner join).
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// // (item, price) and (item, units in stock): the price and stock of each item
    /// // that has both, once per pair of matching values.
    /// let prices = ctx.parallelize(vec![(7, 120), (9, 80), (7, 125)], None);
    /// let stock = ctx.parallelize(vec![(7, 3), (8, 5)], None);
    /// let mut joined = prices.join(&stock).collect()?;
    /// joined.sort();
    /// assert_eq!(joined, [(7, (120, 3)), (7, (125, 3))]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, W))> {
        self.cogroup(other).flat_map(|(k, (vs, ws))| {
            let mut out = Vec::with_capacity(vs.len() * ws.len());
            for v in &vs {
                for w in &ws {
                    out.push((k.clone(), (v.clone(), w.clone())));
                }
            }
            out
        })
    }

    /// Every value of `self` with each matching value of `other`, or `None`.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let prices = ctx.parallelize(vec![(7, 120), (9, 80)], None);
    /// let stock = ctx.parallelize(vec![(7, 3)], None);
    /// let mut joined = prices.left_outer_join(&stock).collect()?;
    /// joined.sort();
    /// assert_eq!(joined, [(7, (120, Some(3))), (9, (80, None))]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn left_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, Option<W>))> {
        self.cogroup(other).flat_map(|(k, (vs, ws))| {
            let mut out = Vec::new();
            for v in &vs {
                if ws.is_empty() {
                    out.push((k.clone(), (v.clone(), None)));
                }
                for w in &ws {
                    out.push((k.clone(), (v.clone(), Some(w.clone()))));
                }
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::EngineArgs;
    use crate::context::Context;

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
