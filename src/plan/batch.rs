//! Batches: partitions flow through a stage as vectors of records, one dynamic call per batch.
//!
//! Operators are fused per partition by chaining batch iterators: `map`, `filter` and
//! `flat_map` each run a monomorphised loop over a batch, so a chain costs one virtual call
//! per operator per batch (4096 records). The one exception: a `flat_map` before a
//! whole-partition consumer that takes records as they are made (a map-side combine,
//! [`Records::push_some`]) hands each record on with a virtual call instead of a batch
//! ([`Expand`]).

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Records per batch produced by sources and re-batching operators.
pub const BATCH_SIZE: usize = 4096;

/// A partition being computed: a stream of batches, any of which may be an error.
pub type BatchIter<T> = Box<dyn Iterator<Item = Result<Vec<T>>>>;

/// Turns a record iterator into batches of [`BATCH_SIZE`]. Each batch is allocated once, at
/// its full size (or the records left, when the iterator knows): collecting an iterator of
/// unknown length (a join's matches) grew the vector from a few slots by doubling, copying
/// the batch about once more (with `flat_map`'s batches, a tenth of PageRank's wall time
/// at 1 GB).
pub fn batched<T: 'static>(mut records: impl Iterator<Item = T> + 'static) -> BatchIter<T> {
    Box::new(std::iter::from_fn(move || {
        let first = records.next()?;
        let capacity = match records.size_hint() {
            (_, Some(left)) => left.min(BATCH_SIZE - 1) + 1,
            (_, None) => BATCH_SIZE,
        };
        let mut batch = Vec::with_capacity(capacity);
        batch.push(first);
        batch.extend(records.by_ref().take(BATCH_SIZE - 1));
        Some(Ok(batch))
    }))
}

/// A partition whose records are made by expanding each record of another (`flat_map`),
/// which can hand them to a consumer as they are made instead of in batches.
///
/// A batch between the expansion and a map-side combine was written and read back a
/// record at a time, in two loops: WordCount's words, 1 GB, map stage 2.85 s; the words
/// handed straight into the combine's table, 2.4 s (a hand-fused loop 2.0 s). In one loop
/// the tokenizing of the next words runs while a table lookup waits on memory.
pub trait Expand<T> {
    /// Expands the next records of the parent, each whole and in order, into `sink`,
    /// stopping after a parent record during whose expansion `sink` returned false (it
    /// still takes the rest of that record's expansion). `None` once the parent has no
    /// more records, an error from upstream (the records before it handed on).
    fn expand_into(&mut self, sink: &mut dyn FnMut(T) -> bool) -> Option<Result<()>>;

    /// The next batch of records, as `compute` streams them.
    fn next_batch(&mut self) -> Option<Result<Vec<T>>>;
}

/// Where a [`PartitionIter`]'s records come from.
enum Source<T> {
    Batches(BatchIter<T>),
    Expanding(Box<dyn Expand<T>>),
}

/// The records of a partition, as handed to a `map_partitions` function.
///
/// An error from upstream (e.g. bad input) ends the iteration early; the operator then
/// fails the task with that error, so a user function never sees a silently short input.
/// Once it has ended (or stopped at an error) it stays ended.
pub struct PartitionIter<T> {
    source: Source<T>,
    current: std::vec::IntoIter<T>,
    error: Arc<Mutex<Option<Error>>>,
    ended: bool,
}

impl<T> PartitionIter<T> {
    pub(crate) fn new(batches: BatchIter<T>) -> (Self, Arc<Mutex<Option<Error>>>) {
        Self::from_source(Source::Batches(batches))
    }

    /// The records of an expanding parent ([`Expand`]): [`Records::push_some`] hands
    /// them on as they are made.
    pub(crate) fn expanding(expand: Box<dyn Expand<T>>) -> (Self, Arc<Mutex<Option<Error>>>) {
        Self::from_source(Source::Expanding(expand))
    }

    fn from_source(source: Source<T>) -> (Self, Arc<Mutex<Option<Error>>>) {
        let error = Arc::new(Mutex::new(None));
        let it = PartitionIter {
            source,
            current: Vec::new().into_iter(),
            error: Arc::clone(&error),
            ended: false,
        };
        (it, error)
    }

    /// The first record of the next non-empty batch, out of line: the per-record `next`
    /// is then small enough to inline into its consumer's loop. (Whole, behind the
    /// `Fuse` of the map-side combine, it was a call per record returning the record
    /// through memory: KMeans' iterations 0.47 s, 0.43 s with this.)
    #[inline(never)]
    fn next_batch(&mut self) -> Option<T> {
        while !self.ended {
            let batch = match &mut self.source {
                Source::Batches(batches) => batches.next(),
                Source::Expanding(expand) => expand.next_batch(),
            };
            match batch {
                Some(Ok(batch)) => {
                    self.current = batch.into_iter();
                    if let Some(record) = self.current.next() {
                        return Some(record);
                    }
                }
                Some(Err(e)) => {
                    put_error(&self.error, e);
                    self.ended = true;
                }
                None => self.ended = true,
            }
        }
        None
    }
}

impl<T> Iterator for PartitionIter<T> {
    type Item = T;

    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        match self.current.next() {
            Some(record) => Some(record),
            None => self.next_batch(),
        }
    }
}

impl<T> std::iter::FusedIterator for PartitionIter<T> {}

/// Records a consumer takes one at a time, or has handed to it as they are made where
/// their source expands them ([`Expand`]).
pub trait Records<T>: Iterator<Item = T> + std::iter::FusedIterator {
    /// Whether [`Records::push_some`] hands records on as they are made (else it pulls
    /// them one at a time, as `next` does).
    fn expands(&self) -> bool {
        false
    }

    /// Hands the next `n` records (fewer where the records run out) to `sink`, in order;
    /// how many it handed.
    fn push_some(&mut self, n: usize, sink: &mut impl FnMut(T)) -> usize {
        let mut given = 0;
        pull_into(self, n, &mut given, sink);
        given
    }
}

/// Hands records of `records` to `sink` one at a time until `given` counts `n`, or they
/// run out.
#[inline]
fn pull_into<T>(
    records: &mut (impl Iterator<Item = T> + ?Sized),
    n: usize,
    given: &mut usize,
    sink: &mut impl FnMut(T),
) {
    while *given < n {
        let Some(record) = records.next() else { break };
        sink(record);
        *given += 1;
    }
}

impl<I: Iterator> Records<I::Item> for std::iter::Fuse<I> {}

impl<T> Records<T> for std::vec::IntoIter<T> {}

impl<T> Records<T> for PartitionIter<T> {
    fn expands(&self) -> bool {
        matches!(self.source, Source::Expanding(_))
    }

    fn push_some(&mut self, n: usize, sink: &mut impl FnMut(T)) -> usize {
        let mut given = 0;
        pull_into(&mut self.current, n, &mut given, sink);
        let Source::Expanding(expand) = &mut self.source else {
            pull_into(self, n, &mut given, sink);
            return given;
        };
        // The expansion of the parent record that reaches `n` may go past it: the rest
        // waits in `current`.
        let mut rest = Vec::new();
        while given < n && !self.ended {
            let mut take = |record| {
                if given < n {
                    sink(record);
                    given += 1;
                    given < n
                } else {
                    rest.push(record);
                    false
                }
            };
            match expand.expand_into(&mut take) {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    put_error(&self.error, e);
                    self.ended = true;
                }
                None => self.ended = true,
            }
        }
        if !rest.is_empty() {
            self.current = rest.into_iter();
        }
        given
    }
}

/// Stashes an upstream error for the operator reading a [`PartitionIter`].
fn put_error(slot: &Mutex<Option<Error>>, e: Error) {
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
}

/// Takes the error a [`PartitionIter`] stashed, if any.
pub(crate) fn take_error(slot: &Mutex<Option<Error>>) -> Option<Error> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Collects a whole partition into one vector.
pub fn collect_partition<T>(batches: BatchIter<T>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for batch in batches {
        let mut batch = batch?;
        if out.is_empty() {
            out = batch;
        } else {
            out.append(&mut batch);
        }
    }
    Ok(out)
}

/// An [`Expand`] for tests: records `0..n`, record `i` expanded into `i % 5` copies of
/// `(i % 1000, i)`; an upstream error in place of record `fail_at`.
#[cfg(test)]
pub(crate) struct Fan {
    pub next: u64,
    pub n: u64,
    pub fail_at: Option<u64>,
}

#[cfg(test)]
impl Fan {
    /// What the expansion of `0..n` holds (up to `fail_at`), expanded in turn.
    pub fn expected(n: u64, fail_at: Option<u64>) -> Vec<(u64, u64)> {
        let end = fail_at.unwrap_or(n).min(n);
        (0..end)
            .flat_map(|i| std::iter::repeat_n((i % 1000, i), (i % 5) as usize))
            .collect()
    }
}

#[cfg(test)]
impl Expand<(u64, u64)> for Fan {
    fn expand_into(&mut self, sink: &mut dyn FnMut((u64, u64)) -> bool) -> Option<Result<()>> {
        loop {
            let i = self.next;
            if i == self.n {
                return None;
            }
            if Some(i) == self.fail_at {
                return Some(Err(Error::Other(format!("record {i} is bad"))));
            }
            self.next += 1;
            let mut more = true;
            for _ in 0..i % 5 {
                more &= sink((i % 1000, i));
            }
            if !more {
                return Some(Ok(()));
            }
        }
    }

    fn next_batch(&mut self) -> Option<Result<Vec<(u64, u64)>>> {
        let mut out = Vec::new();
        match self.expand_into(&mut |u| {
            out.push(u);
            out.len() < 100
        }) {
            Some(Err(e)) if out.is_empty() => Some(Err(e)),
            None if out.is_empty() => None,
            _ => Some(Ok(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batching_keeps_every_record_in_order() {
        let n = BATCH_SIZE * 2 + 5;
        let batches: Vec<Vec<usize>> = batched(0..n).map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].len(), 5);
        assert_eq!(
            batches[2].capacity(),
            5,
            "the last batch is as long as what is left"
        );
        assert_eq!(batches.concat(), (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn a_batch_of_an_iterator_of_unknown_length_is_allocated_once() {
        let n = BATCH_SIZE + 3;
        let mut i = 0;
        let unknown = std::iter::from_fn(move || {
            i += 1;
            (i <= n).then_some(i as u64)
        });
        for (i, batch) in batched(unknown).enumerate() {
            let batch = batch.unwrap();
            assert_eq!(batch.capacity(), BATCH_SIZE, "batch {i} grown or shrunk");
            assert_eq!(batch.len(), if i == 0 { BATCH_SIZE } else { 3 });
        }
    }

    #[test]
    fn a_partition_iterator_skips_empty_batches_and_stays_ended() {
        let batches: BatchIter<u32> = Box::new(
            vec![
                Ok(vec![]),
                Ok(vec![1]),
                Ok(vec![]),
                Ok(vec![2, 3]),
                Ok(vec![]),
            ]
            .into_iter(),
        );
        let (mut it, err) = PartitionIter::new(batches);
        assert_eq!(it.by_ref().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(it.next(), None);
        assert!(take_error(&err).is_none());
    }

    #[test]
    fn a_partition_iterator_stops_at_an_error_and_keeps_it() {
        let batches: BatchIter<u32> = Box::new(
            vec![Ok(vec![1, 2]), Err(Error::Other("bad".into())), Ok(vec![3])].into_iter(),
        );
        let (mut it, err) = PartitionIter::new(batches);
        assert_eq!(it.by_ref().collect::<Vec<_>>(), [1, 2]);
        assert!(matches!(take_error(&err), Some(Error::Other(m)) if m == "bad"));
        // Stopped for good: the batch after the error is never handed out.
        assert_eq!(it.next(), None);
    }

    #[test]
    fn pushing_hands_exactly_the_records_asked_for_and_keeps_the_rest_of_an_expansion() {
        let n = 2000;
        let want = Fan::expected(n, None);
        // Counts that end inside a record's expansion, between them, and past the end;
        // pulls in between take from what a push left over.
        for step in [0usize, 1, 2, 3, 4, 7, 100, 4096] {
            let fan = Fan {
                next: 0,
                n,
                fail_at: None,
            };
            let (mut it, error) = PartitionIter::expanding(Box::new(fan));
            assert!(it.expands());
            if step == 0 {
                assert_eq!(it.push_some(0, &mut |_| panic!("none asked for")), 0);
                continue;
            }
            let mut got = Vec::new();
            for round in 0.. {
                let before = got.len();
                let given = it.push_some(step, &mut |u| got.push(u));
                assert_eq!(given, got.len() - before, "step {step}");
                assert_eq!(given, step.min(want.len() - before), "step {step}");
                if round % 3 == 2 {
                    got.extend(it.next());
                }
                if got.len() == want.len() {
                    break;
                }
            }
            assert_eq!(got, want, "step {step}");
            assert_eq!(it.push_some(step, &mut |_| panic!("past the end")), 0);
            assert!(it.next().is_none());
            assert!(take_error(&error).is_none());
        }
    }

    #[test]
    fn an_upstream_error_while_pushing_ends_the_records_after_those_before_it() {
        let fan = Fan {
            next: 0,
            n: 1000,
            fail_at: Some(503),
        };
        let (mut it, error) = PartitionIter::expanding(Box::new(fan));
        let mut got = Vec::new();
        while it.push_some(64, &mut |u| got.push(u)) == 64 {}
        assert_eq!(got, Fan::expected(1000, Some(503)));
        assert!(it.next().is_none());
        let e = take_error(&error).expect("the error is kept for the operator");
        assert!(e.to_string().contains("record 503 is bad"), "{e}");
    }

    #[test]
    fn batches_pushed_or_pulled_hand_the_same_records() {
        let (mut pulled, _) = PartitionIter::new(batched(Fan::expected(3000, None).into_iter()));
        assert!(!pulled.expands());
        let mut got = Vec::new();
        while pulled.push_some(1000, &mut |u| got.push(u)) > 0 {}
        assert_eq!(got, Fan::expected(3000, None));
    }
}
