//! Operations on two pair RDDs by key: `cogroup` and the joins.
//!
//! Both sides are partitioned alike (by a given partitioner, or Spark's default: a side's
//! own); a side already partitioned so is read where it is, the other shuffled. Partition
//! `i` is then computed from partition `i` of each side, on one executor.

use std::sync::Arc;

use crate::memory::estimate::SizeHint;
use crate::rdd::join::hash_join;
use crate::rdd::spill_combine::combine_spilling;
use crate::rdd::{Data, Key, Rdd};
use crate::shuffle::partitioner::{Partitioner, default_partitioner};

/// The result of `cogroup`: each key with its values from both sides.
pub type CoGrouped<K, V, W> = Rdd<(K, (Vec<V>, Vec<W>))>;

/// The two sides of a join, partitioned alike.
type Sides<K, V, W> = (Rdd<(K, V)>, Rdd<(K, W)>);

/// A value of either side of a cogroup, on its way into the key's groups.
enum Side<V, W> {
    Left(V),
    Right(W),
}

/// The cogroup of two sides partitioned alike, which keeps their partitioner. The groups
/// are combined within the memory budget (spilling over it), like an aggregation's.
fn cogrouped<K: Key, V: Data, W: Data>(
    left: &Rdd<(K, V)>,
    right: &Rdd<(K, W)>,
) -> CoGrouped<K, V, W> {
    left.zip_batches("cogroup", right, left.partitioner(), |left, right| {
        let values = left
            .map(|(k, v)| (k, Side::Left(v)))
            .chain(right.map(|(k, w)| (k, Side::Right(w))));
        let add = |(mut vs, mut ws): (Vec<V>, Vec<W>), value| {
            match value {
                Side::Left(v) => vs.push(v),
                Side::Right(w) => ws.push(w),
            }
            (vs, ws)
        };
        let merge = |(mut vs, mut ws): (Vec<V>, Vec<W>),
                     (mut more_v, mut more_w): (Vec<V>, Vec<W>)| {
            vs.append(&mut more_v);
            ws.append(&mut more_w);
            (vs, ws)
        };
        combine_spilling(values, |v| add(Default::default(), v), add, Arc::new(merge))
    })
}

impl<K: Key, V: Data> Rdd<(K, V)> {
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
        let (left, right) = self.co_partitioned(other);
        cogrouped(&left, &right)
    }

    /// Both sides partitioned by the default partitioner of the two (see `cogroup`): a
    /// side already partitioned so is used as it is.
    fn co_partitioned<W: Data>(&self, other: &Rdd<(K, W)>) -> Sides<K, V, W> {
        let partitioner = default_partitioner(&[
            (self.partitioner(), self.num_partitions()),
            (other.partitioner(), other.num_partitions()),
        ]);
        (
            self.partitioned_as(partitioner.clone()),
            other.partitioned_as(partitioner),
        )
    }

    /// `cogroup` into the partitions of `partitioner`, which the result keeps. A side
    /// already partitioned by it is read where it is (Spark's one-to-one dependency of
    /// `CoGroupedRDD`); only the other side is shuffled, if it is not partitioned so too.
    ///
    /// ```
    /// # use ember::{Context, Partitioner, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let links = ctx.parallelize(vec![(1, 2), (2, 1)], Some(2)).partition_by(Partitioner::hash(2))?;
    /// let ranks = ctx.parallelize(vec![(1, 0.5), (2, 1.5)], Some(3));
    /// let groups = links.cogroup(&ranks); // uses links' partitioner: only ranks is shuffled
    /// assert_eq!(groups.partitioner(), Some(Partitioner::hash(2)));
    /// let plan = groups.explain();
    /// assert_eq!(plan.matches("+- shuffle").count(), 2, "{plan}"); // links' and ranks'
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn cogroup_with<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        partitioner: Partitioner,
    ) -> CoGrouped<K, V, W> {
        // Both sides have keys of type K: if `partitioner` cannot place them, both fall
        // back to the same hash partitioner, and still agree.
        let left = self.partitioned_as(partitioner.clone());
        let right = other.partitioned_as(partitioner);
        cogrouped(&left, &right)
    }

    /// Pairs of values for every key in both sides (inner join), partitioned as `cogroup`
    /// partitions (a side already partitioned so is not shuffled). Each partition builds a
    /// hash table of `other`'s rows and streams `self`'s through it: put the larger side
    /// first.
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
        let (left, right) = self.co_partitioned(other);
        let partitioner = left.partitioner();
        let sizes = Arc::new(SizeHint::default());
        left.zip_partitioned("join", &right, partitioner, move |left, right| {
            hash_join(left, right, Arc::clone(&sizes))
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
        self.cogroup(other).flat_map_values(|(vs, ws)| {
            let mut out = Vec::with_capacity(vs.len() * ws.len().max(1));
            for v in vs {
                if ws.is_empty() {
                    out.push((v, None));
                    continue;
                }
                for w in &ws {
                    out.push((v.clone(), Some(w.clone())));
                }
            }
            out
        })
    }
}
