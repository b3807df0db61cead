//! The shuffle dependency: the stage boundary a lineage node declares, and the map task it runs.

use std::ops::Range;
use std::sync::Arc;

use crate::codec;
use crate::error::{Error, Result};
use crate::ids::ShuffleId;
use crate::memory::estimate::SizeHint;
use crate::plan::node::{Compute, Node, ShuffleDep, erase};
use crate::plan::task::TaskContext;
use crate::shuffle::append::append_streaming;
use crate::shuffle::{BucketOrder, MapOutput};

/// Places each record of a batch: [`ShuffleDependency::partition_batch`].
pub type PartitionBatch<S> = Arc<dyn Fn(&[S], &mut Vec<usize>) + Send + Sync>;

/// A shuffle of records `S`, each sent to reduce partition `partition_of(&record)`.
pub struct ShuffleDependency<S> {
    pub id: ShuffleId,
    pub parent: Arc<dyn Compute<S>>,
    pub partitions: usize,
    pub partition_of: Arc<dyn Fn(&S) -> usize + Send + Sync>,
    /// `partition_of` of each record of a batch, into the vector (emptied first): one
    /// virtual call a batch, the placement inlined into its loop (a map task's staged
    /// loop made two calls a record: this closure's and a key partitioner's).
    pub partition_batch: PartitionBatch<S>,
    /// Orders each bucket by key before it is written (the sort shuffle): the reduce side
    /// then merges sorted runs instead of sorting its whole partition.
    pub map_sort: Option<Arc<dyn MapSort<S>>>,
    /// Per reduce partition, the largest bucket a map task of this shuffle has written:
    /// later tasks start their buckets that large, instead of growing them by copying into
    /// fresh memory (profiled on TeraSort, the page faults of that cost more than the
    /// copies themselves).
    pub bucket_sizes: Vec<SizeHint>,
}

/// A map-side order of records (Spark's sort shuffle with a key ordering).
pub trait MapSort<S>: Send + Sync {
    /// A sorter for the `buckets` buckets of one map task.
    fn sorter(&self, buckets: usize) -> Box<dyn BucketSorter<S>>;

    /// The layout records are written in instead of the codec's, if the reduce side reads
    /// that one.
    fn raw_codec(&self) -> Option<codec::RawCodec<S>> {
        None
    }
}

/// Orders one map task's encoded buckets.
pub trait BucketSorter<S> {
    /// The bucket of `record`, where the sorter partitions too (a sort by key then computes
    /// each key once, not once for its bucket and again for its entry); the next `push`
    /// must then be of this record.
    fn bucket_of(&mut self, record: &S) -> Option<usize> {
        let _ = record;
        None
    }
    /// Notes `record`, just encoded into `bucket` at bytes `range`.
    fn push(&mut self, bucket: usize, record: &S, range: Range<usize>);
    /// The order of every bucket's records by key (stable: equal keys keep their order;
    /// none for a bucket already in it), and forgets them. The buckets stay as they are:
    /// the records are reordered as they are written.
    fn sort(&mut self, buckets: &[Vec<u8>]) -> Vec<Option<BucketOrder>>;
    /// Memory the sorter holds for the records pushed since the last sort.
    fn held_bytes(&self) -> usize;
}

impl<S: serde::Serialize + 'static> ShuffleDep for ShuffleDependency<S> {
    fn id(&self) -> ShuffleId {
        self.id
    }

    fn parent(&self) -> Arc<dyn Node> {
        erase(&self.parent)
    }

    fn num_reduce_partitions(&self) -> usize {
        self.partitions
    }

    fn run_map_task(&self, split: usize, tc: &TaskContext) -> Result<MapOutput> {
        let memory = tc.shuffle.memory();
        let mut out = MapOutput {
            buckets: (0..self.partitions)
                .map(|r| Vec::with_capacity(self.expected_bucket(r, memory.budget())))
                .collect(),
            orders: Vec::new(),
            records: 0,
            spills: Vec::new(),
            reservation: Some(memory.reservation()),
        };
        let mut sorter = self.map_sort.as_ref().map(|s| s.sorter(self.partitions));
        let raw = self.map_sort.as_ref().and_then(|s| s.raw_codec());
        let mut held = 0u64;
        let budget = memory.budget();
        // Into many buckets, each bucket's records are encoded into a small stage that
        // stays in the L1 cache, then copied to the bucket a few cache lines at a time with
        // streaming stores: a record's bytes stored straight into one of tens of buckets
        // waited for its line to be read in (profiled: two thirds of PageRank's map-side
        // partitioning, 36 buckets, stalled on those stores). Not for a sort, whose map
        // task reads its buckets again at once to order them (TeraSort's map stage took
        // 1.1-2.3 s staged against 0.74-0.84 s).
        let mut stages: Option<Vec<Vec<u8>>> = (sorter.is_none() && self.partitions >= STAGED_FROM)
            .then(|| {
                (0..self.partitions)
                    .map(|_| Vec::with_capacity(2 * STAGE))
                    .collect()
            });
        // The reduce partition of each record of a staged batch.
        let mut placed = Vec::new();
        for batch in Arc::clone(&self.parent).compute(split, tc)? {
            let batch = batch?;
            out.records += batch.len() as u64;
            if let Some(stages) = &mut stages {
                (self.partition_batch)(&batch, &mut placed);
                held +=
                    self.stage_batch(&batch, &placed, stages, &mut out.buckets, split, budget)?;
            } else {
                for record in &batch {
                    let r = match sorter.as_mut().and_then(|s| s.bucket_of(record)) {
                        Some(r) => r,
                        None => (self.partition_of)(record),
                    };
                    let bucket = &mut out.buckets[r];
                    let start = bucket.len();
                    held += self.encode(raw.as_ref(), bucket, record, split, budget)?;
                    if let Some(sorter) = &mut sorter {
                        sorter.push(r, record, start..bucket.len());
                    }
                }
            }
            let held_now = held + sorter.as_ref().map_or(0, |s| s.held_bytes() as u64);
            if !fits(&mut out, held_now) {
                flush(stages.as_deref_mut(), &mut out.buckets);
                self.spill(split, tc, &mut out, sorter.as_deref_mut())?;
                held = 0;
            }
        }
        flush(stages.as_deref_mut(), &mut out.buckets);
        if let Some(sorter) = &mut sorter {
            out.orders = sorter.sort(&out.buckets);
        }
        for (size, bucket) in self.bucket_sizes.iter().zip(&out.buckets) {
            size.note(bucket.len());
        }
        Ok(out)
    }
}

/// Below this a map task keeps its buckets even over the budget: spilling smaller pieces
/// would cost more than it saves.
const MIN_SPILL: u64 = 1 << 20;

/// Copies what `stages` hold to their buckets.
fn flush(stages: Option<&mut [Vec<u8>]>, buckets: &mut [Vec<u8>]) {
    for (stage, bucket) in stages.into_iter().flatten().zip(buckets) {
        bucket.extend_from_slice(stage);
        stage.clear();
    }
}

/// Whether a map task's buckets of `held` bytes may stay in memory: its reservation
/// grows to cover them (in steps, to touch the shared counter rarely).
fn fits(out: &mut MapOutput, held: u64) -> bool {
    let Some(reservation) = &mut out.reservation else {
        return true;
    };
    held <= reservation.bytes()
        || reservation.grow_to(held + (held / 4).max(MIN_SPILL))
        || held < MIN_SPILL
}

/// Bytes of records a bucket's stage collects before they are copied to the bucket.
const STAGE: usize = 512;
/// Buckets from which a map task stages its records.
const STAGED_FROM: usize = 16;

impl<S: serde::Serialize + 'static> ShuffleDependency<S> {
    /// Encodes `record` at the end of `into` (in `raw`'s layout if given), its size; a
    /// record larger than the executor's `budget` is an error.
    #[inline]
    fn encode(
        &self,
        raw: Option<&codec::RawCodec<S>>,
        into: &mut Vec<u8>,
        record: &S,
        split: usize,
        budget: u64,
    ) -> Result<u64> {
        let start = into.len();
        match raw {
            Some(raw) => raw.encode_into(into, record),
            None => codec::encode_into(into, record),
        }
        let bytes = (into.len() - start) as u64;
        if bytes > budget {
            return Err(Error::RecordTooLarge {
                what: format!("shuffle {}, map partition {split}", self.id),
                bytes,
                budget,
            });
        }
        Ok(bytes)
    }

    /// Encodes the records of `batch` into their buckets' `stages` (`placed`: each
    /// record's; no sorter: in the codec's layout), each stage copied to its bucket once
    /// full; the bytes encoded. Its own loop: in the general one, checks for the sorter
    /// and a raw layout ran on every record.
    fn stage_batch(
        &self,
        batch: &[S],
        placed: &[usize],
        stages: &mut [Vec<u8>],
        buckets: &mut [Vec<u8>],
        split: usize,
        budget: u64,
    ) -> Result<u64> {
        let mut held = 0;
        for (record, &r) in batch.iter().zip(placed) {
            let stage = &mut stages[r];
            held += self.encode(None, stage, record, split, budget)?;
            if stage.len() >= STAGE {
                append_streaming(&mut buckets[r], stage);
                stage.clear();
                if stage.capacity() > 4 * STAGE {
                    // A large record grew it: not kept for the rest of the task.
                    *stage = Vec::with_capacity(2 * STAGE);
                }
            }
        }
        Ok(held)
    }

    /// The capacity to start bucket `r` with: a little over the largest seen, within the
    /// memory budget. Capacity only: memory no record is written to is never touched.
    fn expected_bucket(&self, r: usize, budget: u64) -> usize {
        let expected = self.bucket_sizes.get(r).map_or(0, SizeHint::expected);
        expected.min(usize::try_from(budget).unwrap_or(usize::MAX))
    }

    /// Writes the buckets to a spill file (sorted first, for a sort shuffle) and starts
    /// them again empty, giving their memory back.
    fn spill(
        &self,
        split: usize,
        tc: &TaskContext,
        out: &mut MapOutput,
        sorter: Option<&mut (dyn BucketSorter<S> + '_)>,
    ) -> Result<()> {
        let orders = sorter.map_or_else(Vec::new, |s| s.sort(&out.buckets));
        let file = tc
            .shuffle
            .spill_map_buckets(self.id, split, &out.buckets, &orders)?;
        tc.counters.add_spill(file.bytes());
        out.spills.push(file);
        out.buckets.iter_mut().for_each(|b| *b = Vec::new());
        if let Some(reservation) = &mut out.reservation {
            reservation.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::Context;
    use crate::config::EngineArgs;

    #[test]
    fn records_staged_into_many_buckets_arrive_whole_large_ones_too() {
        // 40 reduce partitions (staged, streaming copies): strings from empty to 3 KiB,
        // larger than a stage, each key's strings joined in a fixed order.
        let ctx = Context::local_with(&EngineArgs::default());
        let records: Vec<(u32, String)> = (0..30_000u32)
            .map(|i| {
                let len = if i % 997 == 0 {
                    3000
                } else {
                    (i % 23) as usize
                };
                (
                    i.wrapping_mul(2_654_435_761) % 5_000,
                    "x".repeat(len) + &i.to_string(),
                )
            })
            .collect();
        let mut want: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (k, v) in &records {
            want.entry(*k).or_default().push(v.clone());
        }
        let got = ctx
            .parallelize(records, Some(8))
            .map(|(k, v)| (k, vec![v]))
            .reduce_by_key_into(
                |mut a, b| {
                    a.extend(b);
                    a
                },
                40,
            )
            .collect()
            .unwrap();
        assert_eq!(got.len(), want.len());
        for (k, mut v) in got {
            v.sort();
            let w = want.get_mut(&k).unwrap();
            w.sort();
            assert_eq!(&v, w, "key {k}");
        }
    }
}
