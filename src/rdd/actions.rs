//! Actions: they run a job and return its result on every rank.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use crate::codec;
use crate::context::runtime::{Delivery, OutputSpec};
use crate::error::{Error, Result};
use crate::io::output::write_part;
use crate::plan::batch::{BatchIter, PartitionIter, take_error};
use crate::plan::node::erase;
use crate::plan::task::TaskContext;
use crate::rdd::{Data, Key, Rdd};

/// How a record is written as one line of a text output.
pub trait TextRecord {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()>;
}

macro_rules! text_record_display {
    ($($t:ty),*) => {$(
        impl TextRecord for $t {
            fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
                write!(out, "{self}")
            }
        }
    )*};
}
text_record_display!(f32, f64, bool, char);

/// Integers are written by `itoa`: the digits `Display` writes, without the formatting
/// machinery (`fmt::write`, padding) a `write!` goes through per value (profiled: a tenth
/// of a join's executor writing 70 M lines).
macro_rules! text_record_integer {
    ($($t:ty),*) => {$(
        impl TextRecord for $t {
            #[inline]
            fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
                out.write_all(itoa::Buffer::new().format(*self).as_bytes())
            }
        }
    )*};
}
text_record_integer!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

/// Text is written as its bytes.
macro_rules! text_record_str {
    ($($t:ty),*) => {$(
        impl TextRecord for $t {
            #[inline]
            fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
                out.write_all(self.as_bytes())
            }
        }
    )*};
}
text_record_str!(String, &str, compact_str::CompactString);

/// A pair is written as `key<TAB>value`, the format of the project's jobs.
impl<A: TextRecord, B: TextRecord> TextRecord for (A, B) {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        self.0.write_text(out)?;
        out.write_all(b"\t")?;
        self.1.write_text(out)
    }
}

/// Options of `save_as_text_file_with`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SaveOptions {
    /// Replace an existing output directory instead of refusing it.
    pub overwrite: bool,
}

impl<T: Data> Rdd<T> {
    /// Runs `f` over each of `partitions` on the executors and returns its results in
    /// partition order, on every rank.
    fn run<R: Data>(
        &self,
        name: &str,
        partitions: Vec<usize>,
        output: Option<OutputSpec>,
        f: impl Fn(usize, BatchIter<T>, &TaskContext) -> Result<R> + Send + Sync + 'static,
    ) -> Result<Vec<R>> {
        self.run_to(name, partitions, output, Delivery::EveryRank, f)
    }

    /// `run`, with the results reaching the ranks `to` says (none elsewhere).
    fn run_to<R: Data>(
        &self,
        name: &str,
        partitions: Vec<usize>,
        output: Option<OutputSpec>,
        to: Delivery,
        f: impl Fn(usize, BatchIter<T>, &TaskContext) -> Result<R> + Send + Sync + 'static,
    ) -> Result<Vec<R>> {
        let node = Arc::clone(&self.node);
        let result_fn = Arc::new(move |split: usize, tc: &TaskContext| {
            let batches = Arc::clone(&node).compute(split, tc)?;
            Ok(codec::encode(&f(split, batches, tc)?))
        });
        let encoded =
            self.rt
                .run_job(name, erase(&self.node), partitions, result_fn, output, to)?;
        encoded
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                codec::decode(bytes)
                    .map_err(|e| Error::Other(format!("{name}: result of partition {i}: {e}")))
            })
            .collect()
    }

    fn all_partitions(&self) -> Vec<usize> {
        (0..self.num_partitions()).collect()
    }

    /// Every element, in partition order.
    /// Every rank gets the whole result: keep it small (`take`, `count`, or save a large
    /// one with `save_as_text_file`).
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// assert_eq!(ctx.range(0, 5, Some(2)).collect()?, [0, 1, 2, 3, 4]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn collect(&self) -> Result<Vec<T>> {
        let parts = self.run("collect", self.all_partitions(), None, |_, batches, _| {
            crate::plan::batch::collect_partition(batches)
        })?;
        Ok(parts.concat())
    }

    /// Every element, in partition order, on the driver only (Spark's `collect`); `None`
    /// on the executors, which receive nothing. For results only the driver uses (printing,
    /// writing a report): the executors hold no copy, and the job's result traffic is one
    /// transfer to the driver, not one to every rank.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// if let Some(all) = ctx.range(0, 5, Some(2)).collect_to_driver()? {
    ///     assert_eq!(all, [0, 1, 2, 3, 4]); // only the driver gets here
    /// }
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn collect_to_driver(&self) -> Result<Option<Vec<T>>> {
        let parts = self.run_to(
            "collect",
            self.all_partitions(),
            None,
            Delivery::Driver,
            |_, batches, _| crate::plan::batch::collect_partition(batches),
        )?;
        if !self.rt.is_driver() && !parts.is_empty() {
            return Err(Error::Other(format!(
                "collect_to_driver: {} partition results reached an executor",
                parts.len()
            )));
        }
        Ok(self.rt.is_driver().then(|| parts.concat()))
    }

    /// The number of elements.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// assert_eq!(ctx.range(0, 1000, None).filter(|x| x % 7 == 0).count()?, 143);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn count(&self) -> Result<u64> {
        let counts = self.run("count", self.all_partitions(), None, |_, batches, _| {
            batches
                .map(|b| b.map(|b| b.len() as u64))
                .sum::<Result<u64>>()
        })?;
        Ok(counts.into_iter().sum())
    }

    /// Merges all elements with `f` (associative and commutative); `None` if empty.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// assert_eq!(ctx.range(1, 5, Some(2)).reduce(|a, b| a * b)?, Some(24));
    /// assert_eq!(ctx.range(0, 0, None).reduce(|a, b| a + b)?, None);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> Result<Option<T>> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let partials = self.run(
            "reduce",
            self.all_partitions(),
            None,
            move |_, batches, _| {
                let mut acc: Option<T> = None;
                for batch in batches {
                    for x in batch? {
                        acc = Some(match acc {
                            Some(a) => f(a, x),
                            None => x,
                        });
                    }
                }
                Ok(acc)
            },
        )?;
        Ok(partials.into_iter().flatten().reduce(|a, b| g(a, b)))
    }

    /// Folds every partition from `zero` with `f`, then the partial results the same way.
    /// `zero` is used once per partition and once more at the end: it must be neutral.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// assert_eq!(ctx.range(1, 11, Some(3)).fold(0, |a, b| a + b)?, 55);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn fold(&self, zero: T, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> Result<T> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let z = zero.clone();
        let partials = self.run("fold", self.all_partitions(), None, move |_, batches, _| {
            let mut acc = z.clone();
            for batch in batches {
                for x in batch? {
                    acc = f(acc, x);
                }
            }
            Ok(acc)
        })?;
        Ok(partials.into_iter().fold(zero, |a, b| g(a, b)))
    }

    /// The first `n` elements, scanning as few partitions as it can (1, then 4× more).
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// assert_eq!(ctx.range(0, 1_000_000, Some(8)).take(3)?, [0, 1, 2]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn take(&self, n: usize) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let total = self.num_partitions();
        let (mut next, mut step) = (0, 1);
        while out.len() < n && next < total {
            let parts: Vec<usize> = (next..(next + step).min(total)).collect();
            next += parts.len();
            step *= 4;
            let want = n - out.len();
            let got = self.run("take", parts, None, move |_, batches, _| {
                let mut taken = Vec::new();
                for batch in batches {
                    taken.extend(batch?.into_iter().take(want - taken.len()));
                    if taken.len() >= want {
                        break;
                    }
                }
                Ok(taken)
            })?;
            for part in got {
                let room = n - out.len();
                out.extend(part.into_iter().take(room));
            }
        }
        Ok(out)
    }

    /// The first element, if any.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// assert_eq!(ctx.range(5, 9, None).first()?, Some(5));
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn first(&self) -> Result<Option<T>> {
        Ok(self.take(1)?.into_iter().next())
    }

    /// Runs `f` on the executors over each partition, for its side effects.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let seen = ctx.accumulator::<u64>("records seen");
    /// let counter = seen.clone();
    /// ctx.range(0, 100, Some(4)).foreach_partition(move |records| counter.add(records.count() as u64))?;
    /// assert_eq!(seen.value(), 100);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn foreach_partition(
        &self,
        f: impl Fn(PartitionIter<T>) + Send + Sync + 'static,
    ) -> Result<()> {
        self.run(
            "foreach_partition",
            self.all_partitions(),
            None,
            move |_, batches, _| {
                let (records, error) = PartitionIter::new(batches);
                f(records);
                take_error(&error).map_or(Ok(()), Err)
            },
        )?;
        Ok(())
    }

    /// Writes one line per element, with `format` (followed by a newline), into
    /// `dir/part-NNNNN` files and `dir/_SUCCESS`. Refuses an existing `dir` unless
    /// `options.overwrite`.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// use ember::SaveOptions;
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let out = tmp.path().join("out");
    /// let points = ctx.parallelize(vec![(1.0, 2.5), (3.0, 4.0)], Some(1));
    /// let csv = |(x, y): &(f64, f64), w: &mut dyn std::io::Write| write!(w, "{x},{y}");
    /// points.save_as_text_file_with(&out, SaveOptions::default(), csv)?;
    /// assert_eq!(std::fs::read_to_string(out.join("part-00000")).unwrap(), "1,2.5\n3,4\n");
    /// // Again, replacing it:
    /// points.save_as_text_file_with(&out, SaveOptions { overwrite: true }, csv)?;
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn save_as_text_file_with(
        &self,
        dir: impl AsRef<Path>,
        options: SaveOptions,
        format: impl Fn(&T, &mut dyn Write) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Result<()> {
        self.save_with("save_as_text_file", dir, options, move |x, w| {
            format(x, w)?;
            w.write_all(b"\n")
        })
    }

    /// Writes every element with `write` into committed `dir/part-NNNNN` files.
    pub(crate) fn save_with(
        &self,
        name: &str,
        dir: impl AsRef<Path>,
        options: SaveOptions,
        format: impl Fn(&T, &mut dyn Write) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Result<()> {
        self.save_batches(name, dir, options, move |w, batch| {
            batch.iter().try_for_each(|x| format(x, w))
        })
    }

    /// Writes every batch of elements with `write_batch` into committed `dir/part-NNNNN`
    /// files.
    fn save_batches(
        &self,
        name: &str,
        dir: impl AsRef<Path>,
        options: SaveOptions,
        write_batch: impl Fn(&mut BufWriter<File>, &[T]) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Result<()> {
        let dir = dir.as_ref().to_path_buf();
        let spec = OutputSpec {
            dir: dir.clone(),
            overwrite: options.overwrite,
            partitions: self.num_partitions(),
        };
        self.run(
            name,
            self.all_partitions(),
            Some(spec),
            move |split, batches, tc| write_part(&dir, split, tc.attempt, batches, &write_batch),
        )?;
        Ok(())
    }
}

/// Batches of raw bytes at least this large are written straight to the file.
const DIRECT_WRITE: usize = 64 << 10;

impl<T: Data + bytemuck::Pod> Rdd<T> {
    /// Writes the records' raw bytes into `dir/part-NNNNN` and `dir/_SUCCESS`, a batch of
    /// records at a time.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs, SaveOptions};
    /// use ember::io::records::Record;
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let out = tmp.path().join("sorted");
    /// let records = ctx.range(0, 10_000, Some(2)).map(|i| Record::generate(1, i));
    /// records.save_as_binary(&out, SaveOptions::default())?;
    /// let mut bytes = std::fs::read(out.join("part-00000")).unwrap();
    /// bytes.extend(std::fs::read(out.join("part-00001")).unwrap());
    /// let expected: Vec<u8> = (0..10_000).flat_map(|i| Record::generate(1, i).0).collect();
    /// assert!(bytes == expected);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn save_as_binary(&self, dir: impl AsRef<Path>, options: SaveOptions) -> Result<()> {
        self.save_batches("save_as_binary", dir, options, |w, batch| {
            // A batch is one slice of bytes: a large one goes past the buffer, uncopied.
            let bytes: &[u8] = bytemuck::cast_slice(batch);
            if bytes.len() < DIRECT_WRITE {
                return w.write_all(bytes);
            }
            w.flush()?;
            w.get_mut().write_all(bytes)
        })
    }
}

impl<T: Data + TextRecord> Rdd<T> {
    /// Writes one line per element (pairs as `key<TAB>value`) into `dir/part-NNNNN` and
    /// `dir/_SUCCESS`; an existing `dir` is an error.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let out = tmp.path().join("counts");
    /// let counts = ctx.parallelize(vec![("apple".to_string(), 3u64), ("fig".to_string(), 1)], Some(2));
    /// counts.save_as_text_file(&out)?;
    /// assert!(out.join("_SUCCESS").exists());
    /// assert_eq!(std::fs::read_to_string(out.join("part-00000")).unwrap(), "apple\t3\n");
    /// assert!(counts.save_as_text_file(&out).is_err(), "an existing output is refused");
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn save_as_text_file(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.save_as_text_file_with_options(dir, SaveOptions::default())
    }

    /// [`Rdd::save_as_text_file`] with `options` (e.g. replacing an existing output).
    pub fn save_as_text_file_with_options(
        &self,
        dir: impl AsRef<Path>,
        options: SaveOptions,
    ) -> Result<()> {
        self.save_as_text_file_with(dir, options, |x, w| x.write_text(w))
    }
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    /// The number of elements of each key.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let pairs = ctx.parallelize(vec![('a', 1), ('b', 1), ('a', 5)], None);
    /// let counts = pairs.count_by_key()?;
    /// assert_eq!((counts[&'a'], counts[&'b']), (2, 1));
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn count_by_key(&self) -> Result<HashMap<K, u64>> {
        Ok(self
            .map_values(|_| 1u64)
            .reduce_by_key(|a, b| a + b)
            .collect()?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::TextRecord;

    fn text(x: &impl TextRecord) -> String {
        let mut out = Vec::new();
        x.write_text(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_records_write_what_display_writes() {
        for v in [0i64, -1, 7, i64::MIN, i64::MAX] {
            assert_eq!(text(&v), v.to_string());
            assert_eq!(text(&(v as i32)), (v as i32).to_string());
            assert_eq!(text(&(v as i8)), (v as i8).to_string());
            assert_eq!(text(&(v as i128 * 3)), (v as i128 * 3).to_string());
        }
        for v in [0u64, 9, 10, u64::MAX] {
            assert_eq!(text(&v), v.to_string());
            assert_eq!(text(&(v as usize)), (v as usize).to_string());
            assert_eq!(text(&(v as u16)), (v as u16).to_string());
            assert_eq!(text(&(v as u128).pow(2)), (v as u128).pow(2).to_string());
        }
        for v in [0.15f64, -2.5e-300, 1e16, f64::NAN, 1.0 / 3.0] {
            assert_eq!(text(&v), v.to_string());
        }
        assert_eq!(text(&("é\tx", crate::Str::from("y"))), "é\tx\ty");
        assert_eq!(text(&(3u64, (-4i64, String::from("z")))), "3\t-4\tz");
        assert_eq!(text(&(true, 'c')), "true\tc");
    }
}
