//! `skew_join`: an inner hash join that splits the hot keys of its left side over several
//! reduce partitions, so no task holds all the rows of one key.
//!
//! A plain hash join sends every row of a key to one reduce partition: when one key holds
//! a third of the rows, one task receives a third of the data. `skew_join` first samples
//! the left side's keys (a reservoir per partition, as `sort_by` samples) and estimates each
//! key's rows. A key with more than half a partition's fair share is *hot* and gets a
//! number of *salts* n: its left rows are dealt round-robin over n consecutive reduce
//! partitions, and each right row of the key is copied to all n of them. Every left row
//! still meets every right row of its key exactly once. Both sides are shuffled by the same
//! partitioner; reduce partition `i` of both lands on one executor, which builds a hash
//! table of its right rows and streams its left rows through it.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::error::Result;
use crate::memory::estimate::SizeHint;
use crate::rdd::combine_table::{TableHasher, hash_key};
use crate::rdd::partitioned_combine::{fanout, sub_part};
use crate::rdd::probe_order::probe_order;
use crate::rdd::shuffled::ReduceMode;
use crate::rdd::split_parts::{Chunks, FIRST_CHUNK};
use crate::rdd::{Data, Key, Rdd};
use crate::shuffle::partitioner::hash_partition;
use crate::shuffle::range::reservoir;

/// Options of [`Rdd::skew_join`].
#[derive(Debug, Clone)]
pub struct SkewJoinOptions {
    /// Reduce partitions (default: the larger side's number of partitions).
    pub partitions: Option<usize>,
    /// Keys sampled per partition of the left side to find the hot keys.
    pub samples_per_partition: usize,
}

impl Default for SkewJoinOptions {
    fn default() -> Self {
        SkewJoinOptions {
            partitions: None,
            samples_per_partition: 1000,
        }
    }
}

/// Hot keys and the number of reduce partitions (salts, at least 2) each is split over.
pub type HotKeys<K> = FxHashMap<K, u32>;

/// The hot keys of a sample: `samples` holds, per partition, its sampled keys and the rows
/// it had. A key stands for `rows / sampled` rows of its partition; a key estimated at
/// more than half of `total / partitions` rows is hot, split into pieces of about that
/// half share (at most `partitions` of them).
pub fn hot_keys<K: Key>(samples: Vec<(Vec<K>, u64)>, partitions: usize) -> HotKeys<K> {
    let total: u64 = samples.iter().map(|s| s.1).sum();
    if partitions <= 1 || total == 0 {
        return HotKeys::default();
    }
    let mut rows: FxHashMap<K, f64> = FxHashMap::default();
    for (keys, seen) in samples {
        if keys.is_empty() {
            continue;
        }
        let weight = seen as f64 / keys.len() as f64;
        for k in keys {
            *rows.entry(k).or_default() += weight;
        }
    }
    let piece = total as f64 / partitions as f64 / 2.0;
    rows.into_iter()
        .filter_map(|(k, n)| {
            let salts = (n / piece).ceil().min(partitions as f64) as u32;
            (salts >= 2).then_some((k, salts))
        })
        .collect()
}

/// The reduce partition of a salted key: salt `s` of a key goes `s` partitions after the
/// key's hash partition, so a hot key's pieces land on different partitions (and, as the
/// driver places partitions round-robin, on different executors).
fn salted_partition<K: Key>(key: &K, salt: u32, partitions: usize) -> usize {
    (hash_partition(key, partitions) + salt as usize) % partitions
}

/// The hash table of one partition's right rows: each key's first row in `first`, any
/// further rows of the key in `more`. A slot of `first` is just the key and its row (16
/// bytes for PageRank's `(u64, f64)` ranks, where an enum of one row or many took 32), and
/// `more` stays empty when the right side has a row per key, as a dimension or an
/// aggregation's output does.
///
/// `first` is split by bits of the key's hash ([`sub_part`], the bits the combines split
/// by) into sub-tables sized to stay in a core's cache ([`fanout`]). One table for a
/// partition (PageRank at 256 MB: 530 k ranks, 17 MB of slots) made every probe a cache
/// miss (profiled: `Table::get` 9% of an iteration); the rows of a combine's output (the
/// ranks) and of a cached group (the links) come a sub-part at a time, so the build and
/// the probes then stay in one cache-sized sub-table for thousands of rows. Left rows in
/// any other order (a shuffle's, in arrival order) are split by sub-table before they
/// probe ([`probe_order`]), within the task's budget.
/// A map of a join's build side, hashed as combines are ([`TableHasher`]: a reduce
/// partition's keys share the top bits of their Fx hash).
type BuildMap<K, V> = std::collections::HashMap<K, V, TableHasher>;

struct Table<K, W> {
    first: Vec<BuildMap<K, W>>,
    more: BuildMap<K, Vec<W>>,
}

impl<K: Key, W> Table<K, W> {
    /// The table of `right`, started as large as `sizes` expects, which notes its keys.
    /// Without an expectation (the first tasks of a join) the rows are read into chunks
    /// first and counted: a table grown from empty rehashed into fresh memory at every
    /// doubling, and could not know its sub-tables.
    fn build(right: impl Iterator<Item = (K, W)>, sizes: &SizeHint) -> Self {
        let table = match sizes.expected() {
            0 => {
                let mut rows = Chunks::default();
                for row in right {
                    rows.push(row, FIRST_CHUNK);
                }
                let (len, chunks) = rows.take();
                Self::filled(chunks.into_iter().flatten(), len)
            }
            expected => Self::filled(right, expected),
        };
        sizes.note(table.first.iter().map(|t| t.len()).sum());
        table
    }

    /// The table of about `expected` rows: cache-sized sub-tables, each started with room
    /// for its share (and an eighth more: hashing spreads the keys unevenly).
    fn filled(right: impl Iterator<Item = (K, W)>, expected: usize) -> Self {
        let parts = fanout(expected, std::mem::size_of::<(K, W)>() + 1);
        let share = expected / parts;
        let mut table = Table {
            first: (0..parts)
                .map(|_| BuildMap::with_capacity_and_hasher(share + share / 8, TableHasher))
                .collect(),
            more: BuildMap::default(),
        };
        for (k, w) in right {
            let t = table.sub_table(&k);
            match table.first[t].entry(k) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(w);
                }
                std::collections::hash_map::Entry::Occupied(slot) => {
                    table.more.entry(slot.key().clone()).or_default().push(w);
                }
            }
        }
        table
    }

    /// The sub-table of `k`.
    #[inline]
    fn sub_table(&self, k: &K) -> usize {
        match self.first.len() {
            1 => 0,
            parts => sub_part(hash_key(k), parts),
        }
    }

    /// The rows of `k`: its first, and the others.
    fn get(&self, k: &K) -> Option<(&W, &[W])> {
        let first = self.first[self.sub_table(k)].get(k)?;
        let more = if self.more.is_empty() {
            &[][..]
        } else {
            self.more.get(k).map_or(&[][..], Vec::as_slice)
        };
        Some((first, more))
    }
}

/// The inner join of one partition of each side: a hash table of the right rows, the left
/// rows streamed through it. A left row is moved into its last (usually only) match, not
/// cloned, and no per-key groups are built: what `join` runs on co-partitioned sides.
/// `sizes`, shared by the tasks of one join, starts each table as large as the largest
/// before it (PageRank's: one a vertex of the partition), rather than rehashing it into
/// fresh memory as it grows.
pub(crate) fn hash_join<K: Key, V: Data, W: Data>(
    left: impl Iterator<Item = (K, V)>,
    right: impl Iterator<Item = (K, W)>,
    sizes: Arc<SizeHint>,
) -> impl Iterator<Item = (K, (V, W))> {
    let table = Table::build(right, &sizes);
    let left = probe_order(left, table.first.len());
    Probe {
        table,
        left,
        pending: None,
    }
}

/// Streams left rows through the hash table of the right rows, yielding each match.
struct Probe<K, V, W, I> {
    table: Table<K, W>,
    left: I,
    /// A left row with more than one match, and the next match to pair it with (0 is
    /// the key's first row, i > 0 its `more[i - 1]`).
    pending: Option<(K, V, usize)>,
}

impl<K: Key, V: Data, W: Data, I: Iterator<Item = (K, V)>> Iterator for Probe<K, V, W, I> {
    type Item = (K, (V, W));

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v, i)) = &mut self.pending {
                let Some((first, more)) = self.table.get(k) else {
                    self.pending = None;
                    continue;
                };
                let w = if *i == 0 { first } else { &more[*i - 1] };
                if *i < more.len() {
                    *i += 1;
                    return Some((k.clone(), (v.clone(), w.clone())));
                }
                let w = w.clone();
                let (k, v, _) = self.pending.take()?;
                return Some((k, (v, w)));
            }
            let (k, v) = self.left.next()?;
            match self.table.get(&k) {
                Some((w, [])) => return Some((k, (v, w.clone()))),
                Some(_) => self.pending = Some((k, v, 0)),
                None => {}
            }
        }
    }
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    /// The inner join of `self` and `other` on key, like [`join`](Rdd::join), for a left
    /// side whose keys may be skewed: runs a sampling job over `self` first, then splits
    /// its hot keys over several reduce partitions (copying the matching rows of `other`
    /// to each), so one key's rows never all go to one task. Put the large, skewed side
    /// on the left; a key hot on the right is not split.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs, rdd::join::SkewJoinOptions};
    /// let ctx = Context::local_with_executors(&EngineArgs::default(), 2);
    /// // Key 0 in two thirds of the facts, key 1 in the rest.
    /// let facts = ctx.parallelize((0..3000u64).map(|i| (i % 3 % 2, i)).collect(), Some(4));
    /// let dim = ctx.parallelize(vec![(0u64, -1i64), (9, 9)], Some(2));
    /// let joined = facts.skew_join(&dim, SkewJoinOptions::default())?;
    /// assert_eq!(joined.count()?, 2000);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn skew_join<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        options: SkewJoinOptions,
    ) -> Result<Rdd<(K, (V, W))>> {
        let partitions = options
            .partitions
            .unwrap_or(self.num_partitions().max(other.num_partitions()))
            .max(1);
        let hot = self.sample_hot_keys(partitions, options.samples_per_partition)?;
        if !hot.is_empty() {
            tracing::info!(
                "skew_join: {} hot key(s), split over up to {} partitions",
                hot.len(),
                hot.values().max().copied().unwrap_or(0)
            );
        }
        self.salted_join(other, Arc::new(hot), partitions)
    }

    /// The hot keys of `self` for a join into `partitions` (see [`hot_keys`]), from a
    /// sampling job that reads `self` once.
    pub fn sample_hot_keys(
        &self,
        partitions: usize,
        samples_per_partition: usize,
    ) -> Result<HotKeys<K>> {
        let per_partition = samples_per_partition.max(1);
        let samples: Vec<(Vec<K>, u64)> = self
            .map_partitions_with_index(move |i, records| {
                vec![reservoir(records.map(|(k, _)| k), per_partition, i as u64)]
            })
            .collect()?;
        Ok(hot_keys(samples, partitions))
    }

    /// The join with the hot keys given: both sides shuffled by salted key into
    /// `partitions`, then a hash join per partition. A key's salts are taken between 1
    /// and `partitions`: two salts of one key in one partition would meet its right rows
    /// twice.
    pub fn salted_join<W: Data>(
        &self,
        other: &Rdd<(K, W)>,
        hot: Arc<HotKeys<K>>,
        partitions: usize,
    ) -> Result<Rdd<(K, (V, W))>> {
        let partitions = partitions.max(1);
        let hot = Arc::new(
            hot.iter()
                .map(|(k, &n)| (k.clone(), n.clamp(1, partitions as u32)))
                .collect::<HotKeys<K>>(),
        );
        let left = self.salted(Arc::clone(&hot), partitions);
        let right = other.replicated(hot, partitions);
        let sizes = Arc::new(SizeHint::default());
        left.zip_partitions_named("hash_join", &right, move |left, right| {
            // The salt only chose the partition: rows of one key meet whatever their salt.
            hash_join(
                left.map(|((k, _), v)| (k, v)),
                right.map(|((k, _), w)| (k, w)),
                Arc::clone(&sizes),
            )
        })
    }

    /// The left side shuffled by salted key: a hot key's rows dealt round-robin over its
    /// salts (from a different start in each partition), others with salt 0.
    pub(crate) fn salted(&self, hot: Arc<HotKeys<K>>, partitions: usize) -> Rdd<((K, u32), V)> {
        let salted: Rdd<((K, u32), V)> = self.partition_op("salt_hot_keys", move |split, rows| {
            let hot = Arc::clone(&hot);
            let mut turn = split as u32;
            rows.map(move |(k, v)| {
                let salt = match hot.get(&k) {
                    Some(&n) => {
                        turn = turn.wrapping_add(1);
                        turn % n
                    }
                    None => 0,
                };
                ((k, salt), v)
            })
        });
        salted.shuffle(
            "skew_join left",
            partitions,
            move |((k, salt), _)| salted_partition(k, *salt, partitions),
            ReduceMode::Plain,
            None,
        )
    }

    /// The right side shuffled by salted key: each row of a hot key once per salt.
    fn replicated(&self, hot: Arc<HotKeys<K>>, partitions: usize) -> Rdd<((K, u32), V)> {
        let copies: Rdd<((K, u32), V)> = self.map_batches("copy_hot_keys", move |rows| {
            let mut out = Vec::with_capacity(rows.len());
            for (k, v) in rows {
                match hot.get(&k) {
                    Some(&n) => out.extend((0..n).map(|s| ((k.clone(), s), v.clone()))),
                    None => out.push(((k, 0), v)),
                }
            }
            out
        });
        copies.shuffle(
            "skew_join right",
            partitions,
            move |((k, salt), _)| salted_partition(k, *salt, partitions),
            ReduceMode::Plain,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineArgs;
    use crate::context::Context;

    #[test]
    fn hot_keys_are_those_above_half_a_fair_share() {
        // 4000 rows for 4 partitions: fair share 1000, half 500. 300 keys sampled from 3000
        // rows stand for 10 rows each: key 7 for 1400 rows (3 salts), key 8 for 600 (2),
        // the others for 10 each.
        let mut keys: Vec<u64> = vec![7; 140];
        keys.extend([8; 60]);
        keys.extend(100..200);
        let hot = hot_keys(vec![(keys, 3000), (vec![], 1000)], 4);
        assert_eq!(hot.len(), 2, "{hot:?}");
        assert_eq!(hot[&7], 3);
        assert_eq!(hot[&8], 2);
        // One partition, or no rows: nothing to split.
        assert!(hot_keys(vec![(vec![7u64; 10], 10)], 1).is_empty());
        assert!(hot_keys::<u64>(vec![(vec![], 0)], 4).is_empty());
        // A key can be split at most over every partition.
        assert_eq!(hot_keys(vec![(vec![1u64; 50], 1_000_000)], 3)[&1], 3);
    }

    type Facts = Vec<(u64, u64)>;
    type Dim = Vec<(u64, i32)>;

    /// Facts with key 0 in a third of the rows, the rest spread; a dimension with keys
    /// missing, a key without facts, and key 5 twice (a general right side).
    fn skewed(n: u64) -> (Facts, Dim) {
        let facts = (0..n)
            .map(|i| (if i % 3 == 0 { 0 } else { 1 + i * 7 % 101 }, i))
            .collect();
        let mut dim: Vec<(u64, i32)> = (0..90).map(|k| (k, k as i32 * 10)).collect();
        dim.push((5, -5));
        dim.push((500, 1));
        (facts, dim)
    }

    fn reference(facts: &[(u64, u64)], dim: &[(u64, i32)]) -> Vec<(u64, (u64, i32))> {
        let mut out = Vec::new();
        for &(k, v) in facts {
            for &(k2, w) in dim {
                if k == k2 {
                    out.push((k, (v, w)));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn hash_join_pairs_every_left_row_with_every_right_row_of_its_key() {
        // Right: key 1 once, key 2 three times, key 3 twice, key 9 without left rows;
        // left: key 2 twice, key 4 without right rows.
        let right = vec![
            (2u64, 20i32),
            (1, 10),
            (2, 21),
            (3, 30),
            (2, 22),
            (9, 90),
            (3, 31),
        ];
        let left = vec![(2u64, 'a'), (1, 'b'), (4, 'c'), (3, 'd'), (2, 'e')];
        let sizes = Arc::new(SizeHint::default());
        let mut got: Vec<_> = hash_join(
            left.clone().into_iter(),
            right.clone().into_iter(),
            Arc::clone(&sizes),
        )
        .collect();
        let mut expect = Vec::new();
        for &(k, v) in &left {
            for &(k2, w) in &right {
                if k == k2 {
                    expect.push((k, (v, w)));
                }
            }
        }
        // A left row meets its key's right rows in their order.
        assert_eq!(got[..3], expect[..3]);
        // The join's next table starts with room for this one's 4 keys.
        assert!(sizes.expected() >= 4, "{sizes:?}");
        got.sort();
        expect.sort();
        assert_eq!(got, expect);
    }

    #[test]
    fn a_large_table_is_split_into_cache_sized_sub_tables_by_key_hash() {
        let right: Vec<(u64, u64)> = (0..200_000u64).map(|k| (k * 7, k)).collect();
        let slot = std::mem::size_of::<(u64, u64)>() + 1;
        let sizes = SizeHint::default();
        // The first task has no hint: it counts its rows before it builds.
        let first = Table::build(right.iter().copied(), &sizes);
        let later = Table::build(right.iter().copied(), &sizes);
        for (table, rows) in [(&first, 200_000), (&later, sizes.expected())] {
            let parts = fanout(rows, slot);
            assert!(parts > 1);
            assert_eq!(table.first.len(), parts, "not split by {rows} rows");
            for (t, sub) in table.first.iter().enumerate() {
                assert!(sub.keys().all(|k| sub_part(hash_key(k), parts) == t));
                assert!(
                    sub.capacity() * slot <= 2 * crate::rdd::partitioned_combine::CACHED_PART_BYTES,
                    "a sub-table of {} slots",
                    sub.capacity()
                );
            }
            for (k, w) in &right {
                assert_eq!(table.get(k), Some((w, &[][..])));
            }
            assert_eq!(table.get(&1), None);
        }
    }

    #[test]
    fn skew_join_matches_a_nested_loop_join_on_skewed_keys() {
        let (facts, dim) = skewed(6000);
        for executors in [1, 3] {
            let ctx = Context::local_with_executors(&EngineArgs::default(), executors);
            let f = ctx.parallelize(facts.clone(), Some(5));
            let d = ctx.parallelize(dim.clone(), Some(2));
            let mut got = f
                .skew_join(&d, SkewJoinOptions::default())
                .unwrap()
                .collect()
                .unwrap();
            got.sort();
            assert_eq!(got, reference(&facts, &dim), "{executors} executor(s)");
            // The plain join agrees.
            let mut plain = f.join(&d).collect().unwrap();
            plain.sort();
            assert_eq!(plain, got);
        }
    }

    #[test]
    fn a_hot_key_is_spread_over_partitions_and_its_dimension_rows_copied() {
        let (facts, dim) = skewed(6000);
        let ctx = Context::local_with_executors(&EngineArgs::default(), 2);
        let f = ctx.parallelize(facts.clone(), Some(4));
        let hot = Arc::new(HotKeys::from_iter([(0u64, 4u32)]));
        let sizes = f
            .salted(Arc::clone(&hot), 8)
            .map_partitions(|rows| vec![rows.filter(|((k, _), _)| *k == 0).count()])
            .collect()
            .unwrap();
        // 2000 rows of key 0 in four pieces of 500, not one partition of 2000.
        assert_eq!(sizes.iter().sum::<usize>(), 2000);
        assert_eq!(sizes.iter().filter(|&&n| n > 0).count(), 4, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= 500), "{sizes:?}");
        // More salts than partitions are as many as partitions: still exact.
        let too_many = Arc::new(HotKeys::from_iter([(0u64, 20u32), (5, 0)]));
        let d = ctx.parallelize(dim.clone(), Some(2));
        let mut got = f.salted_join(&d, too_many, 3).unwrap().collect().unwrap();
        got.sort();
        assert_eq!(got, reference(&facts, &dim));
        // The sampling finds key 0 hot (2000 rows against a half share of 375) and no
        // other key (about 40 rows each), and the join is still exact.
        let found = f.sample_hot_keys(8, 1000).unwrap();
        assert_eq!(found.keys().collect::<Vec<_>>(), [&0]);
        assert_eq!(found[&0], 6);
        let d = ctx.parallelize(dim.clone(), Some(2));
        let mut got = f.salted_join(&d, hot, 8).unwrap().collect().unwrap();
        got.sort();
        assert_eq!(got, reference(&facts, &dim));
    }
}
