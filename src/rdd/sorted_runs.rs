//! The sort shuffle by a key of each record, and its map side: `KeySort`, whose map tasks
//! order each bucket by key (partitioning by it too, given bounds), so that a reduce task
//! receives few sorted runs (one per map output, or more).
//!
//! The reduce side merges the runs it receives: `KeySort`'s `SortPlan` hands them to
//! `raw_merge` when the records are plain old data whose key's prefix decides the order,
//! else to `sort_merge`.

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;

use crate::codec::RawCodec;
use crate::error::Result;
use crate::ids::ShuffleId;
use crate::memory::MemoryManager;
use crate::memory::estimate::SizeHint;
use crate::plan::batch::BatchIter;
use crate::plan::shuffle_dep::{BucketSorter, MapSort};
use crate::rdd::shuffled::SortPlan;
use crate::rdd::sort_key::{
    SortKey, entry, in_direction, index_of, prefix_decides, same_prefix, sort_entries,
};
use crate::rdd::{raw_merge, sort_merge};
use crate::shuffle::block::Block;
use crate::shuffle::range::range_partition;
use crate::shuffle::{BucketOrder, packed_range};

/// Sorting by a key of each record.
pub struct KeySort<S, K> {
    pub key: Arc<dyn Fn(&S) -> K + Send + Sync>,
    pub ascending: bool,
    /// The records' raw layout, where they are plain old data: then they cross the shuffle
    /// as their bytes, and the reduce side reads keys in place, copying each record once.
    pub raw: Option<RawCodec<S>>,
    /// Per bucket, the most records a map task of this sort has put in it: later tasks
    /// start their entries that large instead of growing them by copying (profiled on
    /// TeraSort: the growth's copies and fresh pages were 3% of an executor).
    pub sizes: Arc<OnceLock<Vec<SizeHint>>>,
    /// The range partitioner's bounds, when map tasks are to partition by the key they
    /// sort by (`range_partition`), computing it once.
    pub bounds: Option<Arc<Vec<K>>>,
}

impl<S, K: SortKey> KeySort<S, K> {
    pub fn new(
        key: Arc<dyn Fn(&S) -> K + Send + Sync>,
        ascending: bool,
        raw: Option<RawCodec<S>>,
    ) -> Self {
        KeySort {
            key,
            ascending,
            raw,
            sizes: Arc::default(),
            bounds: None,
        }
    }

    /// The sort whose map tasks also partition, by `range_partition` of `bounds`.
    pub fn partitioning(self, bounds: Arc<Vec<K>>) -> Self {
        KeySort {
            bounds: Some(bounds),
            ..self
        }
    }
}

impl<S: 'static, K: SortKey + Send + Sync + 'static> MapSort<S> for KeySort<S, K> {
    fn sorter(&self, buckets: usize) -> Box<dyn BucketSorter<S>> {
        let sizes = self
            .sizes
            .get_or_init(|| (0..buckets).map(|_| SizeHint::default()).collect());
        let expected = |b: usize| sizes.get(b).map_or(0, SizeHint::expected);
        Box::new(KeyBuckets {
            key: Arc::clone(&self.key),
            ascending: self.ascending,
            buckets: (0..buckets)
                .map(|b| BucketEntries::with_capacity(expected(b)))
                .collect(),
            sizes: Arc::clone(&self.sizes),
            bounds: self.bounds.clone(),
            pending: None,
        })
    }

    fn raw_codec(&self) -> Option<RawCodec<S>> {
        self.raw
    }
}

/// One map task's sort entries per bucket.
struct KeyBuckets<S, K> {
    key: Arc<dyn Fn(&S) -> K + Send + Sync>,
    ascending: bool,
    buckets: Vec<BucketEntries<K>>,
    sizes: Arc<OnceLock<Vec<SizeHint>>>,
    bounds: Option<Arc<Vec<K>>>,
    /// The key of the record `bucket_of` placed, for its `push`.
    pending: Option<K>,
}

/// The records of one bucket: an entry each (key prefix and number, see `sort_key`),
/// where each starts in the bucket's bytes, and their keys if prefixes can tie.
struct BucketEntries<K> {
    entries: Vec<u128>,
    starts: Vec<usize>,
    keys: Vec<K>,
}

impl<K> BucketEntries<K> {
    /// Room for `n` records' entries and starts (capacity only: untouched memory costs
    /// nothing); keys, which only some key types keep, grow as they come.
    fn with_capacity(n: usize) -> Self {
        BucketEntries {
            entries: Vec::with_capacity(n),
            starts: Vec::with_capacity(n),
            keys: Vec::new(),
        }
    }
}

impl<K> Default for BucketEntries<K> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<S, K: SortKey> BucketSorter<S> for KeyBuckets<S, K> {
    fn bucket_of(&mut self, record: &S) -> Option<usize> {
        let bounds = self.bounds.as_ref()?;
        let key = (self.key)(record);
        let bucket = range_partition(bounds, &key, self.ascending);
        self.pending = Some(key);
        Some(bucket)
    }

    fn push(&mut self, bucket: usize, record: &S, range: Range<usize>) {
        let b = &mut self.buckets[bucket];
        let key = match self.pending.take() {
            Some(key) => key,
            None => (self.key)(record),
        };
        b.entries
            .push(entry(&key, self.ascending, b.entries.len() as u64));
        b.starts.push(range.start);
        if !prefix_decides::<K>() {
            b.keys.push(key);
        }
    }

    fn sort(&mut self, buckets: &[Vec<u8>]) -> Vec<Option<BucketOrder>> {
        let mut orders = Vec::with_capacity(buckets.len());
        let sizes = self.sizes.get();
        for (r, (b, bucket)) in self.buckets.iter_mut().zip(buckets).enumerate() {
            let BucketEntries {
                mut entries,
                starts,
                keys,
            } = std::mem::take(b);
            if let Some(size) = sizes.and_then(|s| s.get(r)) {
                size.note(entries.len());
            }
            // Entries are numbered in arrival order, so they ascend when the keys do.
            let ordered = entries.windows(2).all(|w| {
                if same_prefix(w[0], w[1]) && !prefix_decides::<K>() {
                    in_direction(self.ascending, &keys[index_of(w[0])], &keys[index_of(w[1])])
                        != Ordering::Greater
                } else {
                    w[0] < w[1]
                }
            });
            if ordered {
                orders.push(None);
                continue;
            }
            sort_entries(&mut entries, &keys, self.ascending);
            let range = |i: usize| starts[i]..starts.get(i + 1).copied().unwrap_or(bucket.len());
            // The entries become the order: no new memory.
            for e in &mut entries {
                *e = packed_range(range(index_of(*e)));
            }
            orders.push(Some(entries));
        }
        orders
    }

    fn held_bytes(&self) -> usize {
        let held = self
            .buckets
            .iter()
            .map(|b| {
                b.entries.capacity() * std::mem::size_of::<u128>()
                    + b.starts.capacity() * std::mem::size_of::<usize>()
                    + b.keys.capacity() * std::mem::size_of::<K>()
            })
            .sum::<usize>();
        // The radix sort's room: as many entries as the largest bucket.
        let room = self.buckets.iter().map(|b| b.entries.len()).max();
        held + room.unwrap_or(0) * std::mem::size_of::<u128>()
    }
}

impl<S, K> SortPlan<S> for KeySort<S, K>
where
    S: DeserializeOwned + Send + 'static,
    K: SortKey + Send + Sync + 'static,
{
    fn merge(
        &self,
        blocks: Vec<Block>,
        shuffle: ShuffleId,
        _memory: &Arc<MemoryManager>,
    ) -> Result<BatchIter<S>> {
        let (raw, ascending) = (self.raw, self.ascending);
        let runs = sort_merge::declared_runs(&blocks, shuffle)?;
        let key = Arc::clone(&self.key);
        if let Some(raw) = raw
            && prefix_decides::<K>()
        {
            return raw_merge::merge(key, ascending, raw, blocks, runs, shuffle);
        }
        sort_merge::merge(key, ascending, raw, blocks, runs, shuffle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    /// The buckets as a map file gets them: each in its order, if it has one.
    fn in_order(buckets: &[Vec<u8>], orders: &[Option<BucketOrder>]) -> Vec<Vec<u8>> {
        assert_eq!(orders.len(), buckets.len());
        buckets
            .iter()
            .zip(orders)
            .map(|(b, order)| match order {
                Some(order) => order
                    .iter()
                    .flat_map(|&r| &b[crate::shuffle::unpacked_range(r)])
                    .copied()
                    .collect(),
                None => b.clone(),
            })
            .collect()
    }

    fn by_first(ascending: bool) -> KeySort<(u32, u32), u32> {
        KeySort::new(Arc::new(|r: &(u32, u32)| r.0), ascending, None)
    }

    #[test]
    fn map_buckets_are_sorted_stably() {
        let sort = by_first(true);
        let records = [(3, 0), (1, 1), (3, 2), (0, 3), (1, 4)];
        let mut buckets = vec![Vec::new(), Vec::new()];
        let mut sorter = sort.sorter(2);
        for r in &records {
            let b = (r.1 % 2) as usize;
            let start = buckets[b].len();
            codec::encode_into(&mut buckets[b], r);
            sorter.push(b, r, start..buckets[b].len());
        }
        let orders = sorter.sort(&buckets);
        let buckets = in_order(&buckets, &orders);
        let decoded: Vec<Vec<(u32, u32)>> = buckets
            .iter()
            .map(|b| {
                let mut v = Vec::new();
                codec::decode_all_into(b, &mut v).unwrap();
                v
            })
            .collect();
        assert_eq!(
            decoded,
            [vec![(1, 4), (3, 0), (3, 2)], vec![(0, 3), (1, 1)]]
        );
    }

    #[test]
    fn a_sorter_with_bounds_partitions_computing_each_key_once() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let bounds = Arc::new(vec![3u32, 6]);
        for ascending in [true, false] {
            calls.store(0, Relaxed);
            let key = Arc::clone(&counted);
            let key = Arc::new(move |r: &(u32, u32)| {
                key.fetch_add(1, Relaxed);
                r.0
            });
            let sort = KeySort::new(key, ascending, None).partitioning(Arc::clone(&bounds));
            let records: Vec<(u32, u32)> = (0..40).map(|i| ((i * 7) % 10, i)).collect();
            let mut buckets = vec![Vec::new(); 3];
            let mut sorter = sort.sorter(3);
            for r in &records {
                let b = sorter.bucket_of(r).unwrap();
                assert_eq!(b, range_partition(&bounds, &r.0, ascending), "{r:?}");
                let start = buckets[b].len();
                codec::encode_into(&mut buckets[b], r);
                sorter.push(b, r, start..buckets[b].len());
            }
            assert_eq!(calls.load(Relaxed), records.len(), "one key per record");
            let orders = sorter.sort(&buckets);
            for (b, bytes) in in_order(&buckets, &orders).iter().enumerate() {
                let mut got: Vec<(u32, u32)> = Vec::new();
                codec::decode_all_into(bytes, &mut got).unwrap();
                let mut want: Vec<(u32, u32)> = records
                    .iter()
                    .filter(|r| range_partition(&bounds, &r.0, ascending) == b)
                    .copied()
                    .collect();
                want.sort_by(|x, y| in_direction(sort.ascending, &x.0, &y.0));
                assert_eq!(got, want, "bucket {b}");
            }
        }
        // Without bounds the dependency partitions.
        assert_eq!(by_first(true).sorter(2).bucket_of(&(1, 1)), None);
    }

    #[test]
    fn later_map_tasks_start_their_entries_as_large_as_the_largest_before() {
        let sort = by_first(true);
        let fresh = sort.sorter(2);
        assert_eq!(fresh.held_bytes(), 0);
        let mut first = sort.sorter(2);
        let mut buckets = vec![Vec::new(), Vec::new()];
        for i in 0..100u32 {
            let b = (i % 4 == 0) as usize; // 75 records in bucket 0, 25 in bucket 1
            let start = buckets[b].len();
            codec::encode_into(&mut buckets[b], &(100 - i, i));
            first.push(b, &(100 - i, i), start..buckets[b].len());
        }
        first.sort(&buckets);
        let sizes: Vec<usize> = sort
            .sizes
            .get()
            .unwrap()
            .iter()
            .map(SizeHint::expected)
            .collect();
        assert!(
            sizes[0] >= 75 && sizes[1] >= 25 && sizes[1] < 75,
            "{sizes:?}"
        );
        // What a sorter holds covers the radix sort's room for its largest bucket too.
        let mut one = by_first(true).sorter(1);
        for i in 0..100u32 {
            one.push(0, &(i, i), 0..0);
        }
        let room = 100 * 16;
        assert!(one.held_bytes() >= 100 * 24 + room, "{}", one.held_bytes());
        // Entries (16 bytes) and starts (8) for each, before any record is pushed.
        let next = sort.sorter(2);
        assert!(next.held_bytes() >= (75 + 25) * 24, "{}", next.held_bytes());
    }

    /// Map-side sorting of `records` into `buckets` buckets (record `i` into bucket
    /// `i % buckets`) with a spill after every `spill_every` records, as a map task does:
    /// each bucket then holds several sorted pieces, back to back. Each piece must be the
    /// stable sort of its records; returns each bucket's pieces as written.
    fn map_side<T, K>(
        sort: &KeySort<T, K>,
        records: &[T],
        buckets: usize,
        spill_every: usize,
    ) -> Vec<Vec<Vec<T>>>
    where
        T: serde::Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug + 'static,
        K: SortKey + Send + Sync + 'static,
    {
        let mut written = vec![Vec::new(); buckets];
        for (p, piece) in records.chunks(spill_every).enumerate() {
            let mut bytes = vec![Vec::new(); buckets];
            let mut sorter = sort.sorter(buckets);
            for (i, r) in piece.iter().enumerate() {
                let b = (p * spill_every + i) % buckets;
                let start = bytes[b].len();
                match &sort.raw {
                    Some(raw) => raw.encode_into(&mut bytes[b], r),
                    None => codec::encode_into(&mut bytes[b], r),
                }
                sorter.push(b, r, start..bytes[b].len());
            }
            let orders = sorter.sort(&bytes);
            let bytes = in_order(&bytes, &orders);
            for (b, bytes) in bytes.iter().enumerate() {
                let mut got: Vec<T> = Vec::new();
                match &sort.raw {
                    Some(raw) => {
                        got.extend(bytes.chunks(raw.width()).map(|r| raw.read(r).unwrap()))
                    }
                    None => codec::decode_all_into(bytes, &mut got).unwrap(),
                }
                let mut want: Vec<T> = (0..piece.len())
                    .filter(|i| (p * spill_every + i) % buckets == b)
                    .map(|i| piece[i].clone())
                    .collect();
                want.sort_by(|x, y| in_direction(sort.ascending, &(sort.key)(x), &(sort.key)(y)));
                assert_eq!(got, want, "piece {p} of bucket {b}");
                written[b].push(got);
            }
        }
        written
    }

    #[test]
    fn keys_whose_prefixes_tie_are_compared_whole() {
        // Strings sharing their first 16 bytes (all a prefix holds), u128 keys differing
        // only in bits below the kept prefix: `Ord` decides among equal prefixes.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(9);
        let words: Vec<(String, u32)> = (0..3000)
            .map(|i| (format!("same-sixteen-byt{}", rng.random_range(0..40)), i))
            .collect();
        let wide: Vec<(u128, u32)> = (0..3000)
            .map(|i| (rng.random_range(0..50u128) + (7 << 100), i))
            .collect();
        fn check<K: SortKey + Send + Sync + Clone + 'static>(records: &[(K, u32)], ascending: bool)
        where
            (K, u32): serde::Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let sort = KeySort::new(Arc::new(|r: &(K, u32)| r.0.clone()), ascending, None);
            let buckets = map_side(&sort, records, 3, 700);
            let blocks = buckets
                .iter()
                .enumerate()
                .map(|(i, pieces)| {
                    let pieces: Vec<&[(K, u32)]> = pieces.iter().map(Vec::as_slice).collect();
                    Block::encoded_runs(i, &pieces)
                })
                .collect();
            let out: Vec<(K, u32)> = sort
                .merge(blocks, ShuffleId(0), &MemoryManager::new(1 << 30))
                .unwrap()
                .flat_map(|b| b.unwrap())
                .collect();
            // Ties come out by block (bucket), then position: their numbers ascend.
            let mut want = records.to_vec();
            let arrival = |r: &(K, u32)| (r.1 % 3, r.1);
            want.sort_by(|a, b| {
                in_direction(sort.ascending, &a.0, &b.0).then(arrival(a).cmp(&arrival(b)))
            });
            assert_eq!(out, want, "ascending {ascending}");
        }
        for ascending in [true, false] {
            check(&words, ascending);
            check(&wide, ascending);
        }
    }

    #[test]
    fn plain_old_data_crosses_as_raw_bytes_and_sorts_the_same() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let records: Vec<[u32; 2]> = (0..3000).map(|i| [rng.random_range(0..50), i]).collect();
        for ascending in [true, false] {
            let sort = KeySort::new(
                Arc::new(|r: &[u32; 2]| r[0]),
                ascending,
                Some(RawCodec::pod()),
            );
            let pieces = map_side(&sort, &records, 3, 700);
            let mut blocks = Vec::new();
            for (i, pieces) in pieces.iter().enumerate() {
                let pieces: Vec<&[u8]> = pieces.iter().map(|p| bytemuck::cast_slice(p)).collect();
                // A misaligned start: keys are read from copies.
                let bytes = [&[0u8][..], &Block::sorted_runs_bytes(&pieces)].concat();
                let mut b = Block::in_temp_file(i, &bytes);
                b.range = 1..bytes.len();
                blocks.push(b);
            }
            let buckets: Vec<Vec<[u32; 2]>> = pieces.into_iter().map(|p| p.concat()).collect();
            // Five records of one run.
            let extra: &[u8] = bytemuck::cast_slice(&buckets[0][..5]);
            blocks.push(Block::sorted_runs(9, &[extra]));
            let out: Vec<[u32; 2]> = sort
                .merge(blocks, ShuffleId(0), &MemoryManager::new(1 << 30))
                .unwrap()
                .flat_map(|b| b.unwrap())
                .collect();
            let mut want: Vec<[u32; 2]> = records.clone();
            want.extend_from_slice(&buckets[0][..5]);
            // Ties by block (bucket; the extra block last), then position.
            let arrival = |r: &[u32; 2], extra: bool| (extra, r[1] % 3, r[1]);
            let mut want: Vec<([u32; 2], bool)> = want
                .into_iter()
                .enumerate()
                .map(|(i, r)| (r, i >= records.len()))
                .collect();
            want.sort_by(|a, b| {
                in_direction(sort.ascending, &a.0[0], &b.0[0])
                    .then(arrival(&a.0, a.1).cmp(&arrival(&b.0, b.1)))
            });
            let want: Vec<[u32; 2]> = want.into_iter().map(|(r, _)| r).collect();
            assert_eq!(out, want, "ascending {ascending}");
        }
        // A run that ends inside a record is corrupt, and so is one out of order.
        let sort = KeySort::new(Arc::new(|r: &[u32; 2]| r[0]), true, Some(RawCodec::pod()));
        let run: Vec<[u32; 2]> = vec![[1, 0], [2, 0], [3, 0], [4, 0]];
        let bytes: &[u8] = bytemuck::cast_slice(&run);
        let cut = Block::sorted_runs(2, &[&bytes[..bytes.len() - 3]]);
        let unsorted: Vec<[u32; 2]> = vec![[1, 0], [3, 0], [2, 0]];
        let unsorted = Block::sorted_runs(2, &[bytemuck::cast_slice(&unsorted)]);
        for (block, what) in [(cut, "record at byte 36"), (unsorted, "order")] {
            let err = match sort.merge(vec![block], ShuffleId(6), &MemoryManager::new(1 << 30)) {
                Err(e) => e,
                Ok(mut batches) => batches.find_map(Result::err).unwrap(),
            };
            let text = err.to_string();
            assert!(text.contains("shuffle 6") && text.contains(what), "{text}");
        }
    }
}
