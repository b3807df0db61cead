//! `sort_by` over fixed-width records of files (`binary_records`, TeraSort's input): the
//! shuffle carries one `u128` per record, its key's prefix above its location, not the
//! record; the reduce side reads each record once, in order, from the file where it lies.
//! The hand-written program's way: sort compact entries, gather the records once.
//!
//! Profiled on TeraSort (1 GB, 2 executors on one host): writing the records into the
//! shuffle's files was a third of the executors' samples, most of it the kernel handing
//! out and filling fresh pages, and the records were written twice more (the map task's
//! buckets, the output). The entries are 16 of the record's 100 bytes. Taken where:
//! - the key's prefix decides its order (integers, byte arrays of up to 11 bytes, tuples
//!   of them that fit: [`prefix_decides`]), so an entry needs nothing else of the key;
//! - every executor runs on one node: the files are then in one page cache, and reading a
//!   record where it lies is a memory access, not a random read of a network file system
//!   (any executor can read every input file, as any may run a map task: across nodes the
//!   records are shuffled only because that is faster there);
//! - a location fits the entry's [`INDEX_BITS`].
//!
//! Records with equal keys come out in no set order, as with the shuffled sort's runs.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::codec::RawCodec;
use crate::error::{Error, Result};
use crate::io::input::{FixedWidth, InputFile};
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::plan::node::{Compute, Dependency, Node, RddId, erase};
use crate::plan::task::TaskContext;
use crate::rdd::entry_sort::SortedAtOnce;
use crate::rdd::sort_key::{INDEX_BITS, SortKey, prefix_decides};
use crate::rdd::{Data, Rdd};
use crate::shuffle::files::prefetch;

/// An entry with its location cleared: the key a located sort orders by. Its prefix is
/// the key's, exact in the top [`PREFIX_BITS`](crate::rdd::sort_key::PREFIX_BITS) bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyPrefix(u128);

impl SortKey for KeyPrefix {
    fn prefix(&self) -> u128 {
        self.0
    }
    const EXACT_BITS: Option<u32> = Some(crate::rdd::sort_key::PREFIX_BITS);
}

/// The prefix of `key` with the low [`INDEX_BITS`] clear, where a location goes.
fn key_prefix<K: SortKey>(key: &K) -> u128 {
    key.prefix() >> INDEX_BITS << INDEX_BITS
}

/// Where a record lies, packed into the low [`INDEX_BITS`] of an entry: its split above
/// its number within the split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Locations {
    /// Bits of a record's number within its split.
    number_bits: u32,
}

impl Locations {
    /// The packing for `input`'s splits; `None` when their count and size need more than
    /// [`INDEX_BITS`].
    fn new<T>(input: &FixedWidth<T>) -> Option<Self> {
        let most = input
            .splits
            .iter()
            .map(|s| (s.end - s.start) / input.record_len as u64)
            .max()
            .unwrap_or(0);
        let number_bits = u64::BITS - most.leading_zeros();
        let split_bits = u64::BITS - (input.splits.len() as u64).leading_zeros();
        (number_bits + split_bits <= INDEX_BITS).then_some(Locations { number_bits })
    }

    /// The location of record `number` of `split`.
    fn of(self, split: usize, number: u64) -> u128 {
        ((split as u128) << self.number_bits) | number as u128
    }

    /// The split and number an entry's location names.
    fn split_number(self, entry: u128) -> (usize, u64) {
        let location = (entry & ((1 << INDEX_BITS) - 1)) as u64;
        (
            (location >> self.number_bits) as usize,
            location & ((1 << self.number_bits) - 1),
        )
    }
}

impl<T: Data> Rdd<T> {
    /// `sort_by` shuffling entries instead of records, where it can (see the module
    /// header); `None` where it cannot.
    pub(crate) fn sort_located<K: Data + SortKey>(
        &self,
        key: &Arc<dyn Fn(&T) -> K + Send + Sync>,
        ascending: bool,
        partitions: Option<usize>,
    ) -> Option<Result<Rdd<T>>> {
        if !prefix_decides::<K>() || !self.rt.table.one_node() {
            return None;
        }
        let input = self.node.fixed_width()?;
        let locations = Locations::new(&input)?;
        let entries = self.derive(Arc::new(KeyLocations {
            id: self.rt.new_rdd_id(),
            source: Arc::clone(&self.node),
            input: input.clone(),
            locations,
            key: Arc::clone(key),
        }));
        let key = |e: &u128| KeyPrefix(e >> INDEX_BITS << INDEX_BITS);
        let sorted = entries.sorted_with(
            key,
            ascending,
            partitions,
            |_, _| None,
            |runs| Arc::new(SortedAtOnce { runs }),
        );
        Some(sorted.map(|sorted| {
            sorted.derive(Arc::new(Gathered {
                id: self.rt.new_rdd_id(),
                entries: Arc::clone(&sorted.node),
                input,
                locations,
                raw: self.node.raw_codec(),
            }))
        }))
    }
}

/// The sort entries of a source of fixed-width records: per record, its key's prefix
/// above its location, read from the mapped file without copying the record out.
struct KeyLocations<T, K> {
    id: RddId,
    source: Arc<dyn Compute<T>>,
    input: FixedWidth<T>,
    locations: Locations,
    key: Arc<dyn Fn(&T) -> K + Send + Sync>,
}

impl<T: 'static, K: 'static> Node for KeyLocations<T, K> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        "sort entries (key prefix, location)".to_string()
    }
    fn num_partitions(&self) -> usize {
        self.input.splits.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(erase(&self.source))]
    }
}

impl<T: 'static, K: SortKey + 'static> Compute<u128> for KeyLocations<T, K> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<u128>> {
        tc.count_source_partition();
        let this = Arc::clone(&self);
        self.input
            .batches(split, BATCH_SIZE, move |_, bytes, first| {
                let records = bytes.chunks_exact(this.input.record_len).zip(first..);
                let entry = |(record, number)| {
                    let prefix = key_prefix(&(this.key)(&(this.input.decode)(record)));
                    prefix | this.locations.of(split, number)
                };
                Ok(records.map(entry).collect())
            })
    }

    fn raw_codec(&self) -> Option<RawCodec<u128>> {
        Some(RawCodec::pod())
    }

    /// The source's sample, as entries (their locations are not needed: the sample only
    /// sets the partitions' key bounds).
    fn sample(&self, split: usize, size: usize, seed: u64) -> Option<Result<(Vec<u128>, u64)>> {
        let sample = self.source.sample(split, size, seed)?;
        Some(sample.map(|(records, n)| {
            let entries = records.iter().map(|r| key_prefix(&(self.key)(r)));
            (entries.collect(), n)
        }))
    }
}

/// Records at most this many entries ahead are fetched into the cache while the current
/// one is copied.
const AHEAD: usize = 16;

/// The records of sorted entries, read in their order from where they lie.
struct Gathered<T> {
    id: RddId,
    entries: Arc<dyn Compute<u128>>,
    input: FixedWidth<T>,
    locations: Locations,
    raw: Option<RawCodec<T>>,
}

impl<T: 'static> Node for Gathered<T> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        "records read in order where they lie".to_string()
    }
    fn num_partitions(&self) -> usize {
        self.entries.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(erase(&self.entries))]
    }
}

impl<T: 'static> Compute<T> for Gathered<T> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>> {
        let maps = self
            .input
            .files
            .iter()
            .map(InputFile::map)
            .collect::<Result<Vec<_>>>()?;
        let batches = Arc::clone(&self.entries).compute(split, tc)?;
        Ok(Box::new(batches.map(move |entries| {
            let entries = entries?;
            let record = |entry: u128| record(&self.input, self.locations, &maps, entry);
            let mut out = Vec::with_capacity(entries.len());
            for (i, &entry) in entries.iter().enumerate() {
                if let Some(ahead) = entries.get(i + AHEAD).and_then(|&e| record(e)) {
                    prefetch(ahead);
                }
                let bytes = record(entry).ok_or_else(|| {
                    let (s, number) = self.locations.split_number(entry);
                    Error::Other(format!(
                        "sorted partition {split}: an entry names record {number} of input \
                         split {s}, which has no such record (a corrupt shuffle block?)"
                    ))
                })?;
                out.push((self.input.decode)(bytes));
            }
            Ok(out)
        })))
    }

    fn raw_codec(&self) -> Option<RawCodec<T>> {
        self.raw
    }
}

/// The bytes of the record `entry` names among `input`'s splits (`maps`: its files
/// mapped), if its split has it.
#[inline]
fn record<'a, T>(
    input: &FixedWidth<T>,
    locations: Locations,
    maps: &'a [Option<memmap2::Mmap>],
    entry: u128,
) -> Option<&'a [u8]> {
    let (split, number) = locations.split_number(entry);
    let s = input.splits.get(split)?;
    let len = input.record_len as u64;
    let at = s.start + number.checked_mul(len)?;
    if at + len > s.end {
        return None;
    }
    let map = maps.get(s.file)?.as_ref()?;
    map.get(at as usize..(at + len) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineArgs;
    use crate::io::input::FileSplit;
    use crate::io::records::Record;
    use crate::{Context, Rdd};

    fn written(dir: &std::path::Path, n: u64) -> (String, Vec<Record>) {
        let path = dir.join("records");
        let records: Vec<Record> = (0..n).map(|i| Record::generate(9, i)).collect();
        std::fs::write(&path, bytemuck::cast_slice::<Record, u8>(&records)).unwrap();
        (path.to_str().unwrap().to_string(), records)
    }

    fn shuffled_bytes(ctx: &Context) -> u64 {
        ctx.shuffle_stats().iter().map(|s| s.bytes).sum()
    }

    #[test]
    fn records_of_files_are_sorted_by_shuffling_entries_not_records() {
        let ctx = Context::local_with(&EngineArgs::default());
        let dir = tempfile::tempdir().unwrap();
        let (path, records) = written(dir.path(), 30_000);
        let input: Rdd<Record> = ctx.pod_records(&path, Some(7)).unwrap();
        for ascending in [true, false] {
            let before = shuffled_bytes(&ctx);
            let sorted = input.sort_by(Record::key, ascending, Some(3)).unwrap();
            let got = sorted.collect().unwrap();
            let shuffled = shuffled_bytes(&ctx) - before;
            // 16 bytes an entry, and each run's header.
            assert!(
                (30_000 * 16..30_000 * 17).contains(&shuffled),
                "{shuffled} bytes shuffled, ascending {ascending}"
            );
            let mut expected = records.clone();
            expected.sort_by_key(Record::key);
            if !ascending {
                expected.reverse();
            }
            assert!(got == expected, "ascending {ascending}");
        }
        assert!(
            input
                .sort_by(Record::key, true, Some(3))
                .unwrap()
                .explain()
                .contains("sort entries")
        );
    }

    #[test]
    fn records_of_equal_keys_land_in_one_partition() {
        // 20 k records over 8 keys into 3 partitions, key 0 two fifths of them (the first
        // bound) and record 0's (location 0): every record of a key goes where its key
        // does, whatever its location.
        let ctx = Context::local_with(&EngineArgs::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs");
        let keys: Vec<u64> = (0..20_000u64)
            .map(|i| if i % 5 < 2 { 0 } else { 1 + (i * 7919) % 7 })
            .collect();
        std::fs::write(&path, bytemuck::cast_slice::<u64, u8>(&keys)).unwrap();
        let input: Rdd<u64> = ctx.pod_records(path.to_str().unwrap(), Some(5)).unwrap();
        let parts: Vec<Vec<u64>> = input
            .sort_by(|k| *k, true, Some(3))
            .unwrap()
            .map_partitions(|records| std::iter::once(records.collect::<Vec<u64>>()))
            .collect()
            .unwrap();
        let mut seen = std::collections::HashMap::new();
        for (p, part) in parts.iter().enumerate() {
            assert!(part.is_sorted(), "partition {p}");
            for k in part {
                assert_eq!(*seen.entry(*k).or_insert(p), p, "key {k} in two partitions");
            }
        }
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 20_000);
    }

    #[test]
    fn a_key_whose_prefix_does_not_decide_shuffles_the_records() {
        // A key of 12 bytes: beyond what an entry keeps of it.
        let ctx = Context::local_with(&EngineArgs::default());
        let dir = tempfile::tempdir().unwrap();
        let (path, records) = written(dir.path(), 5_000);
        let input: Rdd<Record> = ctx.pod_records(&path, Some(4)).unwrap();
        let key = |r: &Record| -> [u8; 12] { r.0[..12].try_into().unwrap() };
        let before = shuffled_bytes(&ctx);
        let got = input
            .sort_by(key, true, Some(2))
            .unwrap()
            .collect()
            .unwrap();
        assert!(shuffled_bytes(&ctx) - before >= 5_000 * 100);
        let mut expected = records;
        expected.sort_by_key(key);
        assert!(got == expected);
    }

    fn input(splits: &[(u64, u64)], record_len: usize) -> FixedWidth<u8> {
        FixedWidth {
            record_len,
            files: Vec::new(),
            splits: splits
                .iter()
                .map(|&(start, end)| FileSplit {
                    file: 0,
                    start,
                    end,
                })
                .collect(),
            decode: |b| b[0],
        }
    }

    #[test]
    fn locations_pack_split_and_number_or_decline_when_too_wide() {
        let l = Locations::new(&input(&[(0, 1000), (1000, 1700)], 10)).unwrap();
        for (split, number) in [(0, 0), (0, 99), (1, 69)] {
            let entry = key_prefix(&u64::MAX) | l.of(split, number);
            assert_eq!(l.split_number(entry), (split, number));
        }
        // 2^35 records in each of 64 splits: 36 + 7 bits, past 40.
        let huge = 1u64 << 35;
        let splits: Vec<(u64, u64)> = (0..64).map(|i| (i * huge, (i + 1) * huge)).collect();
        assert!(Locations::new(&input(&splits, 1)).is_none());
    }

    #[test]
    fn an_entry_naming_a_record_past_its_split_is_none_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        std::fs::write(&path, [7u8; 60]).unwrap();
        let maps = vec![crate::io::input::map_file(&path).unwrap()];
        let input = input(&[(0, 50)], 10);
        let l = Locations::new(&input).unwrap();
        assert_eq!(record(&input, l, &maps, l.of(0, 4)), Some(&[7u8; 10][..]));
        // Inside the file, past the split; past the splits.
        assert_eq!(record(&input, l, &maps, l.of(0, 5)), None);
        assert_eq!(record(&input, l, &maps, l.of(1, 0)), None);
    }
}
