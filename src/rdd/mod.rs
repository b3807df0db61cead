//! The RDD: a lazy, partitioned collection described by its lineage; the user's API.
//!
//! Building RDDs only records lineage; actions (`collect`, `count`, `save_as_text_file`,
//! ...) run jobs. Every rank builds the same RDDs in the same order (SPMD), so RDD ids
//! agree everywhere and executors need no code from the driver.

pub mod actions;
pub mod binary;
pub mod checkpoint;
pub mod cogroup;
pub mod combine;
pub mod combine_table;
mod combined_parts;
pub mod distinct;
mod entry_sort;
pub mod group;
mod group_values;
pub mod join;
pub mod narrow;
pub mod pair;
pub mod partitioned_combine;
pub mod persisted;
pub mod probe_order;
pub mod raw_merge;
pub mod recent_keys;
pub mod reduce_combine;
pub mod shared;
pub mod shuffled;
pub mod sort;
pub mod sort_key;
mod sort_located;
mod sort_merge;
pub mod sorted_runs;
pub mod source;
pub mod spill_combine;
pub mod split_parts;
mod str_key;
pub mod text;
pub mod tournament;
pub mod words;

use std::sync::Arc;

use crate::context::{Context, Runtime};
use crate::error::Result;
use crate::io::input::{list_files, plan_splits};
use crate::plan::batch::{BatchIter, PartitionIter, batched};
use crate::plan::node::{Compute, RddId, erase};
use crate::plan::shuffle_dep::ShuffleDependency;
use crate::rdd::binary::BinaryRecords;
use crate::rdd::narrow::{Coalesce, FlatMap, MapBatches, MapPartitions, Union, ZipPartitions};
use crate::rdd::shuffled::{ReduceMode, ShuffledRdd};
use crate::rdd::text::TextFile;
use crate::shuffle::partitioner::{Partitioner, hash_partition};

pub use crate::plan::batch::PartitionIter as Partition;
pub use crate::plan::{Data, Key};
pub use actions::SaveOptions;
pub use group::Group;
pub use shared::{Accumulator, Broadcast};
pub use sort_key::SortKey;

/// A resilient distributed dataset of `T`: a handle to one node of the lineage.
///
/// Transformations (`map`, `filter`, `reduce_by_key`, ...) only record lineage and return
/// a new `Rdd`; actions (`collect`, `count`, `save_as_text_file`, ...) run a job on the
/// executors and return its result on every rank. An `Rdd` is a cheap handle: clone it to
/// use it in two lineages.
///
/// ```
/// # use ember::{Context, config::EngineArgs};
/// # let ctx = Context::local_with(&EngineArgs::default());
/// let numbers = ctx.range(0, 100, Some(4)); // nothing runs yet
/// let odd = numbers.filter(|x| x % 2 == 1);
/// let total = odd.map(|x| x * 2).reduce(|a, b| a + b)?; // runs a job
/// assert_eq!(total, Some(5000));
/// assert_eq!(odd.count()?, 50); // runs another
/// # Ok::<(), ember::Error>(())
/// ```
pub struct Rdd<T> {
    pub(crate) node: Arc<dyn Compute<T>>,
    pub(crate) rt: Arc<Runtime>,
    /// Set on the RDD `distinct()` returns: how to make the same distinct records placed
    /// by a key partitioner, for an aggregation by key that follows (see `distinct.rs`).
    pub(crate) distinct_of: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl<T> Clone for Rdd<T> {
    fn clone(&self) -> Self {
        Rdd {
            node: Arc::clone(&self.node),
            rt: Arc::clone(&self.rt),
            distinct_of: self.distinct_of.clone(),
        }
    }
}

/// Options of `text_file_with`.
#[derive(Debug, Clone, Default)]
pub struct TextOptions {
    /// Partitions to aim for (default: the context's default parallelism).
    pub partitions: Option<usize>,
    /// Skip (and count in the log) lines that are not UTF-8 instead of failing.
    pub skip_bad_lines: bool,
}

impl Context {
    /// Default partitions of a file input: see [`crate::io::input::default_partitions`].
    fn file_partitions(&self, files: &[crate::io::input::InputFile]) -> usize {
        let total: u64 = files.iter().map(|f| f.len).sum();
        crate::io::input::default_partitions(self.default_parallelism(), total)
    }

    /// The files of an input, as the driver lists them: under MPI the driver lists once
    /// and broadcasts names and sizes (or its error), so every rank plans the same splits
    /// even if files change while the ranks start. Every rank must call it at the same
    /// point (it does: building RDDs is SPMD).
    fn input_files(&self, path: &str) -> Result<Vec<crate::io::input::InputFile>> {
        if self.mode() == crate::context::Mode::Local {
            return list_files(path, self.config().accept_incomplete_input);
        }
        type Listing = std::result::Result<Vec<crate::io::input::InputFile>, String>;
        let bytes = if self.is_driver() {
            let listing: Listing =
                list_files(path, self.config().accept_incomplete_input).map_err(|e| e.to_string());
            crate::codec::encode(&listing)
        } else {
            Vec::new()
        };
        let shared = self.world().broadcast(0, &bytes)?;
        let listing: Listing = crate::codec::decode(&shared)
            .map_err(|e| crate::error::Error::Other(format!("input {path}: listing: {e}")))?;
        listing.map_err(crate::error::Error::Other)
    }

    fn rdd<T>(&self, node: Arc<dyn Compute<T>>) -> Rdd<T> {
        Rdd {
            node,
            rt: Arc::clone(&self.rt),
            distinct_of: None,
        }
    }

    /// The elements of `data`, cut into `partitions` (default parallelism if `None`).
    /// Every rank must pass the same data (it is built by the same program).
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let rdd = ctx.parallelize(vec![1, 2, 3, 4, 5], Some(2));
    /// assert_eq!(rdd.num_partitions(), 2);
    /// assert_eq!(rdd.collect()?, [1, 2, 3, 4, 5]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn parallelize<T: Data>(&self, data: Vec<T>, partitions: Option<usize>) -> Rdd<T> {
        let partitions = partitions.unwrap_or(self.default_parallelism()).max(1);
        self.rdd(Arc::new(source::Parallelize {
            id: self.rt.new_rdd_id(),
            data: Arc::new(data),
            partitions,
        }))
    }

    /// The integers `start..end` in `partitions` runs.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// assert_eq!(ctx.range(10, 15, None).collect()?, [10, 11, 12, 13, 14]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn range(&self, start: u64, end: u64, partitions: Option<usize>) -> Rdd<u64> {
        let partitions = partitions.unwrap_or(self.default_parallelism()).max(1);
        self.rdd(Arc::new(source::Range {
            id: self.rt.new_rdd_id(),
            start,
            end: end.max(start),
            partitions,
        }))
    }

    /// Lines of a text file, of every file of a directory, or of a glob's matches, in
    /// splits of 32-128 MiB, four per executor thread where the input has them (one per
    /// thread at least; `text_file_with` sets a number).
    ///
    /// Fails when nothing matches, a directory has no files, or (at the action) a line is
    /// not UTF-8, naming the file and byte offset.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("a.txt"), "one\ntwo\n").unwrap();
    /// std::fs::write(dir.path().join("b.txt"), "three\n").unwrap();
    /// let pattern = format!("{}/*.txt", dir.path().display());
    /// let lines = ctx.text_file(&pattern)?;
    /// assert_eq!(lines.count()?, 3);
    /// assert!(ctx.text_file("/no/such/input").is_err()); // refused when the RDD is made
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn text_file(&self, path: &str) -> Result<Rdd<String>> {
        self.text_file_with(path, TextOptions::default())
    }

    /// `text_file` with options: partitions to aim for, skipping lines that are not UTF-8.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// use ember::TextOptions;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("book.txt");
    /// # std::fs::write(&path, b"a line\n\xff not UTF-8\nanother line\n").unwrap();
    /// let options = TextOptions { partitions: Some(4), skip_bad_lines: true };
    /// let lines = ctx.text_file_with(path.to_str().unwrap(), options)?;
    /// assert_eq!(lines.collect()?, ["a line", "another line"]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn text_file_with(&self, path: &str, options: TextOptions) -> Result<Rdd<String>> {
        self.text_file_parsed(path, options, |line| Ok(Some(line.to_owned())))
    }

    /// Each line of a text input parsed by `parse` as it is read: `Ok(Some(record))`,
    /// `Ok(None)` to leave the line out (a comment, a blank line), or `Err(why)` for a
    /// malformed line, which fails the job with `FILE: line N: why` (no retries: the line
    /// will not change), unless `options.skip_bad_lines` skips and counts it. Parsing in
    /// the source saves a `String` per line over `text_file(..).map(parse)`, and the error
    /// can name the line.
    ///
    /// ```
    /// # use ember::{Context, TextOptions, config::EngineArgs};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("kv.txt");
    /// std::fs::write(&path, "1,10\n2,20\n1,5\n").unwrap();
    /// let ctx = Context::local_with_executors(&EngineArgs::default(), 1);
    /// let pairs = ctx.text_file_parsed(path.to_str().unwrap(), TextOptions::default(), |line| {
    ///     let (k, v) = line.split_once(',').ok_or("no comma")?;
    ///     Ok(Some((k.parse::<u32>().map_err(|e| e.to_string())?, v.parse::<u32>().map_err(|e| e.to_string())?)))
    /// })?;
    /// let mut sums = pairs.reduce_by_key(|a, b| a + b).collect()?;
    /// sums.sort();
    /// assert_eq!(sums, [(1, 15), (2, 20)]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn text_file_parsed<T: Data>(
        &self,
        path: &str,
        options: TextOptions,
        parse: impl Fn(&str) -> text::Parsed<T> + Send + Sync + 'static,
    ) -> Result<Rdd<T>> {
        let files = self.input_files(path)?;
        let target = options
            .partitions
            .unwrap_or_else(|| self.file_partitions(&files));
        let splits = plan_splits(&files, target, 1);
        Ok(self.rdd(Arc::new(TextFile {
            id: self.rt.new_rdd_id(),
            pattern: path.to_string(),
            files,
            splits,
            skip_bad_lines: options.skip_bad_lines,
            parse,
        })))
    }

    /// Fixed-size records of `record_len` bytes. A file whose length is not a multiple of
    /// `record_len` is an error naming it.
    pub fn binary_records(
        &self,
        path: &str,
        record_len: usize,
        partitions: Option<usize>,
    ) -> Result<Rdd<Vec<u8>>> {
        self.records_of(path, record_len, partitions, <[u8]>::to_vec, None)
    }

    /// Fixed-size records read as `T` (plain old data, `size_of::<T>()` bytes each, any
    /// alignment), with no per-record decoding.
    pub fn pod_records<T: Data + bytemuck::Pod>(
        &self,
        path: &str,
        partitions: Option<usize>,
    ) -> Result<Rdd<T>> {
        self.records_of(
            path,
            std::mem::size_of::<T>(),
            partitions,
            bytemuck::pod_read_unaligned::<T>,
            Some(crate::codec::RawCodec::pod()),
        )
    }

    fn records_of<T: Data>(
        &self,
        path: &str,
        record_len: usize,
        partitions: Option<usize>,
        decode: fn(&[u8]) -> T,
        raw: Option<crate::codec::RawCodec<T>>,
    ) -> Result<Rdd<T>> {
        if record_len == 0 {
            return Err(crate::error::Error::Other(
                "binary records of length 0".into(),
            ));
        }
        let files = self.input_files(path)?;
        if let Some(bad) = files.iter().find(|f| f.len % record_len as u64 != 0) {
            return Err(crate::error::Error::RecordLength {
                path: bad.path.clone(),
                len: bad.len,
                record_len,
            });
        }
        let target = partitions.unwrap_or_else(|| self.file_partitions(&files));
        let splits = plan_splits(&files, target, record_len as u64);
        Ok(self.rdd(Arc::new(BinaryRecords {
            id: self.rt.new_rdd_id(),
            pattern: path.to_string(),
            input: crate::io::input::FixedWidth {
                record_len,
                files,
                splits,
                decode,
            },
            raw,
        })))
    }
}

impl<T: Data> Rdd<T> {
    /// This RDD's id in the lineage.
    pub fn id(&self) -> RddId {
        self.node.id()
    }

    pub fn num_partitions(&self) -> usize {
        self.node.num_partitions()
    }

    /// How the records are spread over the partitions by key, when known: set by a
    /// shuffle by key (`partition_by`, `reduce_by_key`, `group_by_key`, `sort_by_key`,
    /// joins) and kept by operations that keep keys in place (`filter`, `map_values`,
    /// `flat_map_values`, `map_partitions_preserving`, `persist`, `checkpoint`); `map`
    /// and other operations that may change keys drop it.
    ///
    /// ```
    /// # use ember::{Context, Partitioner, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let pairs = ctx.parallelize(vec![(1, 'a'), (2, 'b')], Some(2));
    /// assert_eq!(pairs.partitioner(), None);
    /// let by_key = pairs.partition_by(Partitioner::hash(4))?;
    /// assert_eq!(by_key.map_values(|c| c as u32).partitioner(), Some(Partitioner::hash(4)));
    /// assert_eq!(by_key.map(|(k, c)| (c, k)).partitioner(), None);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn partitioner(&self) -> Option<Partitioner> {
        self.node.partitioner()
    }

    fn derive<U>(&self, node: Arc<dyn Compute<U>>) -> Rdd<U> {
        Rdd {
            node,
            rt: Arc::clone(&self.rt),
            distinct_of: None,
        }
    }

    /// A batch-wise operation that may change keys: the result has no partitioner.
    fn map_batches<U: Data>(
        &self,
        name: &'static str,
        f: impl Fn(Vec<T>) -> Vec<U> + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.map_batches_with(name, false, f)
    }

    /// A batch-wise operation that keeps every record's key: the partitioner holds.
    fn map_batches_keeping_keys<U: Data>(
        &self,
        name: &'static str,
        f: impl Fn(Vec<T>) -> Vec<U> + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.map_batches_with(name, true, f)
    }

    fn map_batches_with<U: Data>(
        &self,
        name: &'static str,
        keeps_keys: bool,
        f: impl Fn(Vec<T>) -> Vec<U> + Send + Sync + 'static,
    ) -> Rdd<U> {
        let partitioner = if keeps_keys { self.partitioner() } else { None };
        self.map_batches_partitioned(name, partitioner, f)
    }

    /// A batch-wise operation whose result is partitioned by `partitioner`, whatever this
    /// RDD's is (`distinct` placed by key: its records lose the marker they were
    /// shuffled with).
    pub(crate) fn map_batches_partitioned<U: Data>(
        &self,
        name: &'static str,
        partitioner: Option<Partitioner>,
        f: impl Fn(Vec<T>) -> Vec<U> + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.derive(Arc::new(MapBatches {
            id: self.rt.new_rdd_id(),
            name,
            parent: Arc::clone(&self.node),
            f: Arc::new(f),
            partitioner,
        }))
    }

    /// Applies `f` to every element.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let squares = ctx.range(1, 4, None).map(|x| x * x);
    /// assert_eq!(squares.collect()?, [1, 4, 9]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Rdd<U> {
        self.map_batches("map", move |batch| batch.into_iter().map(&f).collect())
    }

    /// Keeps the elements for which `f` is true.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let even = ctx.range(0, 10, Some(3)).filter(|x| x % 2 == 0);
    /// assert_eq!(even.collect()?, [0, 2, 4, 6, 8]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Rdd<T> {
        self.map_batches_keeping_keys("filter", move |mut batch| {
            batch.retain(|x| f(x));
            batch
        })
    }

    /// Applies `f` to every element and flattens the results.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let lines = ctx.parallelize(vec!["a b".to_string(), "c".to_string()], None);
    /// let words = lines.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>());
    /// assert_eq!(words.collect()?, ["a", "b", "c"]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn flat_map<U: Data, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.derive(Arc::new(FlatMap {
            id: self.rt.new_rdd_id(),
            parent: Arc::clone(&self.node),
            f,
        }))
    }

    /// Runs `f` once per partition over an iterator of its elements.
    /// Per-partition state (a buffer, a hash map, a connection) is set up once, not once
    /// per record.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// // The sum of each of 3 partitions.
    /// let sums = ctx.range(0, 9, Some(3)).map_partitions(|records| [records.sum::<u64>()]);
    /// assert_eq!(sums.collect()?, [3, 12, 21]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn map_partitions<U: Data, I>(
        &self,
        f: impl Fn(Partition<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        self.map_partitions_with_index(move |_, records| f(records))
    }

    /// Like `map_partitions`, for an `f` that keeps every record's key (Spark's
    /// `mapPartitions` with `preservesPartitioning = true`): the result keeps this RDD's
    /// partitioner, so a later operation by key on it needs no shuffle. Changing keys in
    /// `f` would then give wrong results.
    ///
    /// ```
    /// # use ember::{Context, Partitioner, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let pairs = ctx.parallelize(vec![(1, 2), (1, 3), (4, 5)], Some(2)).partition_by(Partitioner::hash(2))?;
    /// let doubled = pairs.map_partitions_preserving(|it| it.map(|(k, v)| (k, v * 2)));
    /// assert_eq!(doubled.partitioner(), Some(Partitioner::hash(2)));
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn map_partitions_preserving<U: Data, I>(
        &self,
        f: impl Fn(Partition<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        self.partition_op_with("map_partitions", true, move |_, records| f(records))
    }

    /// Like `map_partitions`, also given the partition's index.
    pub fn map_partitions_with_index<U: Data, I>(
        &self,
        f: impl Fn(usize, PartitionIter<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        self.partition_op("map_partitions", f)
    }

    fn partition_op<U: Data, I>(
        &self,
        name: &'static str,
        f: impl Fn(usize, PartitionIter<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        self.partition_op_with(name, false, f)
    }

    /// A whole-partition operation; `keeps_keys`: it keeps every record's key, so the
    /// result keeps this RDD's partitioner.
    fn partition_op_with<U: Data, I>(
        &self,
        name: &'static str,
        keeps_keys: bool,
        f: impl Fn(usize, PartitionIter<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        self.partition_batches_with(name, keeps_keys, move |split, records| {
            Ok(batched(f(split, records).into_iter()))
        })
    }

    /// A whole-partition operation that may fail, before or while it yields its batches
    /// (like a computed partition); `keeps_keys` as in `partition_op_with`.
    pub(crate) fn partition_batches_with<U: Data>(
        &self,
        name: &'static str,
        keeps_keys: bool,
        f: impl Fn(usize, PartitionIter<T>) -> Result<BatchIter<U>> + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.derive(Arc::new(MapPartitions {
            id: self.rt.new_rdd_id(),
            name,
            parent: Arc::clone(&self.node),
            f: Arc::new(f),
            keeps_keys,
        }))
    }

    /// Partition `i` of the result is `f` over partition `i` of `self` and of `other`
    /// (Spark's `zipPartitions`). Both must have the same number of partitions; when both
    /// are shuffled, the two reduce partitions `i` are placed on one executor.
    pub fn zip_partitions<B: Data, U: Data, I>(
        &self,
        other: &Rdd<B>,
        f: impl Fn(Partition<T>, Partition<B>) -> I + Send + Sync + 'static,
    ) -> Result<Rdd<U>>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        self.zip_partitions_named("zip_partitions", other, f)
    }

    pub(crate) fn zip_partitions_named<B: Data, U: Data, I>(
        &self,
        name: &'static str,
        other: &Rdd<B>,
        f: impl Fn(Partition<T>, Partition<B>) -> I + Send + Sync + 'static,
    ) -> Result<Rdd<U>>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        if self.num_partitions() != other.num_partitions() {
            return Err(crate::error::Error::Other(format!(
                "zip_partitions: {} partitions against {}",
                self.num_partitions(),
                other.num_partitions()
            )));
        }
        Ok(self.zip_partitioned(name, other, None, f))
    }

    /// Zips partitions `i` of two RDDs of as many partitions; the result is partitioned
    /// by `partitioner` (when `f` keeps keys of co-partitioned sides, as a cogroup does).
    pub(crate) fn zip_partitioned<B: Data, U: Data, I>(
        &self,
        name: &'static str,
        other: &Rdd<B>,
        partitioner: Option<Partitioner>,
        f: impl Fn(Partition<T>, Partition<B>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U>,
        I::IntoIter: 'static,
    {
        self.zip_batches(name, other, partitioner, move |a, b| {
            Ok(batched(f(a, b).into_iter()))
        })
    }

    /// `zip_partitioned` with an output that may fail (as batches, or at once).
    pub(crate) fn zip_batches<B: Data, U: Data>(
        &self,
        name: &'static str,
        other: &Rdd<B>,
        partitioner: Option<Partitioner>,
        f: impl Fn(Partition<T>, Partition<B>) -> Result<BatchIter<U>> + Send + Sync + 'static,
    ) -> Rdd<U> {
        debug_assert_eq!(self.num_partitions(), other.num_partitions());
        self.derive(Arc::new(ZipPartitions {
            id: self.rt.new_rdd_id(),
            name,
            left: Arc::clone(&self.node),
            right: Arc::clone(&other.node),
            f: Arc::new(f),
            partitioner,
        }))
    }

    /// The elements of `self` followed by those of `other` (partitions side by side).
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let a = ctx.parallelize(vec![1, 2], Some(1));
    /// let b = ctx.parallelize(vec![3], Some(1));
    /// let both = a.union(&b);
    /// assert_eq!(both.num_partitions(), 2);
    /// assert_eq!(both.collect()?, [1, 2, 3]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn union(&self, other: &Rdd<T>) -> Rdd<T> {
        self.derive(Arc::new(Union {
            id: self.rt.new_rdd_id(),
            parents: vec![Arc::clone(&self.node), Arc::clone(&other.node)],
        }))
    }

    /// Pairs every element with the key `f` gives it.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let words = ctx.parallelize(vec!["apple".to_string(), "fig".to_string()], None);
    /// let by_length = words.key_by(|w| w.len());
    /// assert_eq!(by_length.collect()?, [(5, "apple".to_string()), (3, "fig".to_string())]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn key_by<K: Data>(&self, f: impl Fn(&T) -> K + Send + Sync + 'static) -> Rdd<(K, T)> {
        self.map_batches("key_by", move |batch| {
            batch.into_iter().map(|x| (f(&x), x)).collect()
        })
    }

    /// At most `partitions` partitions, by merging neighbours; no shuffle.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let rdd = ctx.range(0, 100, Some(8)).coalesce(3);
    /// assert_eq!(rdd.num_partitions(), 3);
    /// assert_eq!(rdd.count()?, 100);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn coalesce(&self, partitions: usize) -> Rdd<T> {
        self.derive(Arc::new(Coalesce {
            id: self.rt.new_rdd_id(),
            groups: Coalesce::<T>::groups(self.num_partitions(), partitions),
            parent: Arc::clone(&self.node),
        }))
    }

    /// Exactly `partitions` partitions of about equal size, by a shuffle.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let rdd = ctx.range(0, 1000, Some(1)).repartition(4);
    /// let sizes = rdd.map_partitions(|records| [records.count()]).collect()?;
    /// assert_eq!(sizes, [250, 250, 250, 250]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn repartition(&self, partitions: usize) -> Rdd<T> {
        let partitions = partitions.max(1);
        // Spread each input partition's records round-robin, from a different start each.
        let numbered: Rdd<(u64, T)> = self.partition_op("number_records", move |split, records| {
            let start = hash_partition(&split, partitions) as u64;
            records.enumerate().map(move |(i, x)| (start + i as u64, x))
        });
        let shuffled: Rdd<(u64, T)> = numbered.shuffle(
            "repartition",
            partitions,
            move |(i, _)| (*i % partitions as u64) as usize,
            ReduceMode::Plain,
            None,
        );
        shuffled.map_batches("drop_position", |batch| {
            batch.into_iter().map(|(_, x)| x).collect()
        })
    }

    /// Redistributes the records by a shuffle: record `r` goes to partition
    /// `partition_of(&r)` of `partitions` (clamped below `partitions`). The result has no
    /// partitioner (ember cannot compare functions); for pair RDDs, `partition_by` with a
    /// [`Partitioner`] gives one.
    pub fn partition_with(
        &self,
        partitions: usize,
        partition_of: impl Fn(&T) -> usize + Send + Sync + 'static,
    ) -> Rdd<T> {
        let partitions = partitions.max(1);
        self.shuffle(
            "partition_with",
            partitions,
            move |r| partition_of(r).min(partitions - 1),
            ReduceMode::Plain,
            None,
        )
    }

    /// Sends every record to partition `partition_of(record)` of `partitions`, handling
    /// each reduce partition's records by `mode`. `partitioner`: the one `partition_of`
    /// applies to the records' keys, if any.
    pub(crate) fn shuffle(
        &self,
        name: &'static str,
        partitions: usize,
        partition_of: impl Fn(&T) -> usize + Send + Sync + 'static,
        mode: ReduceMode<T>,
        partitioner: Option<Partitioner>,
    ) -> Rdd<T> {
        let shuffle = self.rt.new_shuffle_id();
        let place = Arc::new(partition_of);
        let dep = Arc::new(ShuffleDependency {
            id: shuffle,
            parent: Arc::clone(&self.node),
            partitions,
            partition_of: Arc::clone(&place) as _,
            partition_batch: Arc::new(move |batch: &[T], placed: &mut Vec<usize>| {
                placed.clear();
                placed.extend(batch.iter().map(|r| place(r)));
            }),
            map_sort: match &mode {
                ReduceMode::Sort(plan) => Some(Arc::clone(plan) as _),
                _ => None,
            },
            bucket_sizes: (0..partitions).map(|_| Default::default()).collect(),
        });
        self.derive(Arc::new(ShuffledRdd {
            id: self.rt.new_rdd_id(),
            name,
            dep,
            mode,
            partitioner,
            cleaner: crate::rdd::shuffled::ShuffleCleaner {
                shuffle,
                rt: Arc::downgrade(&self.rt),
            },
        }))
    }

    /// Keeps the partitions in the executors' block stores once computed (`level`: memory,
    /// memory-mapped files, or memory spilling to files). Use the returned RDD; a lost
    /// or evicted partition is computed again from lineage.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// use ember::StorageLevel;
    /// let points = ctx.range(0, 1000, None).map(|x| x as f64 / 10.0);
    /// let points = points.persist(StorageLevel::MemoryAndMmap);
    /// // The first action computes and keeps the partitions, later ones read them.
    /// let n = points.count()?;
    /// let max = points.reduce(f64::max)?;
    /// assert_eq!((n, max), (1000, Some(99.9)));
    /// assert!(ctx.metrics().cache_hits > 0);
    /// points.unpersist();
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn persist(&self, level: crate::cache::StorageLevel) -> Rdd<T> {
        self.derive(Arc::new(crate::rdd::persisted::PersistedRdd {
            id: self.rt.new_rdd_id(),
            parent: Arc::clone(&self.node),
            level,
            codec: crate::cache::BlockCodec::serde::<T>(),
            view: None,
        }))
    }

    /// Like [`persist`](Self::persist), for plain-old-data records: blocks in files hold
    /// the records' bytes and are read back by viewing the mapped file as records, with
    /// no decoding.
    pub fn persist_pod(&self, level: crate::cache::StorageLevel) -> Rdd<T>
    where
        T: bytemuck::Pod,
    {
        self.derive(Arc::new(crate::rdd::persisted::PersistedRdd {
            id: self.rt.new_rdd_id(),
            parent: Arc::clone(&self.node),
            level,
            codec: crate::cache::BlockCodec::pod::<T>(),
            view: Some(|bytes| bytemuck::try_cast_slice(bytes).ok()),
        }))
    }

    /// `persist(StorageLevel::Memory)`.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let words = ctx.parallelize(vec!["a".to_string(), "b".to_string()], None).cache();
    /// assert_eq!(words.count()?, 2);
    /// assert_eq!(words.collect()?, ["a", "b"]); // from the executors' memory
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn cache(&self) -> Rdd<T> {
        self.persist(crate::cache::StorageLevel::Memory)
    }

    /// Drops this RDD's cached partitions (call it on every rank, like everything else).
    pub fn unpersist(&self) {
        self.rt.drop_cached(self.id());
    }

    /// The lineage as an indented tree with partition counts and stage boundaries.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let counts = ctx.range(0, 10, Some(2)).map(|x| (x % 3, 1u64)).reduce_by_key(|a, b| a + b);
    /// let plan = counts.explain();
    /// assert!(plan.starts_with("stage 1 (result)"));
    /// assert!(plan.contains("shuffle 0 <- stage 0 (shuffle map)"));
    /// ```
    pub fn explain(&self) -> String {
        crate::plan::explain::explain(&erase(&self.node))
    }
}
