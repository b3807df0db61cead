//! Resolving an input argument (file, directory or glob) to the files to read.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// A file to read and its length in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    pub path: PathBuf,
    pub len: u64,
}

/// The files named by `pattern`: a file, every visible file of a directory (names starting
/// with `_` or `.` are skipped, like Hadoop's `_SUCCESS`), or a glob. Sorted by path, so
/// every rank sees the same order.
pub fn list_files(pattern: &str, accept_incomplete: bool) -> Result<Vec<InputFile>> {
    let path = PathBuf::from(pattern);
    let mut paths = Vec::new();
    if path.is_file() {
        paths.push(path);
    } else if path.is_dir() {
        let entries = std::fs::read_dir(&path).map_err(|e| Error::io(&path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&path, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            if entry.path().is_file() {
                paths.push(entry.path());
            }
        }
        if paths.is_empty() {
            return Err(Error::EmptyInput(pattern.to_string()));
        }
        let has_parts = paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        });
        if has_parts && !accept_incomplete && !path.join("_SUCCESS").exists() {
            return Err(Error::IncompleteInput(pattern.to_string()));
        }
    } else if pattern.contains(['*', '?', '[']) {
        let matches =
            glob::glob(pattern).map_err(|e| Error::Other(format!("input {pattern}: {e}")))?;
        for m in matches {
            let p = m.map_err(|e| Error::io(e.path().to_path_buf(), e.into()))?;
            if p.is_file() {
                paths.push(p);
            }
        }
        if paths.is_empty() {
            return Err(Error::MissingInput(pattern.to_string()));
        }
    } else {
        return Err(Error::MissingInput(pattern.to_string()));
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let len = std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, e))?
                .len();
            Ok(InputFile { path, len })
        })
        .collect()
}

/// A byte range of one input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileSplit {
    pub file: usize,
    pub start: u64,
    pub end: u64,
}

/// Fixed-width records of files, split on record boundaries (`binary_records`): where a
/// record lies is known without reading the ones before it, so a sort can shuffle keys and
/// locations and read each record back once, where it lies.
pub struct FixedWidth<T> {
    pub record_len: usize,
    pub files: Vec<InputFile>,
    pub splits: Vec<FileSplit>,
    pub decode: fn(&[u8]) -> T,
}

impl<T> Clone for FixedWidth<T> {
    fn clone(&self) -> Self {
        FixedWidth {
            record_len: self.record_len,
            files: self.files.clone(),
            splits: self.splits.clone(),
            decode: self.decode,
        }
    }
}

impl<T> FixedWidth<T> {
    /// Split `split` and its file mapped; `None` for a split of no file or an empty file.
    pub fn map_split(
        &self,
        split: usize,
    ) -> Result<Option<(FileSplit, &InputFile, memmap2::Mmap)>> {
        let s = self.splits[split];
        let Some(file) = self.files.get(s.file) else {
            return Ok(None);
        };
        Ok(file.map()?.map(|map| (s, file, map)))
    }

    /// The records of split `split` a batch of up to `batch` at a time: `make` turns the
    /// bytes of a batch's whole records, and the number in the split of its first one,
    /// into the batch.
    pub fn batches<U: 'static>(
        &self,
        split: usize,
        batch: usize,
        mut make: impl FnMut(&InputFile, &[u8], u64) -> Result<Vec<U>> + 'static,
    ) -> Result<Box<dyn Iterator<Item = Result<Vec<U>>>>> {
        let Some((s, file, map)) = self.map_split(split)? else {
            return Ok(Box::new(std::iter::empty()));
        };
        let (file, len) = (file.clone(), self.record_len);
        let (mut pos, end) = (s.start as usize, s.end as usize);
        Ok(Box::new(std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let stop = (pos + batch * len).min(end);
            let first = ((pos - s.start as usize) / len) as u64;
            let records = make(&file, &map[pos..stop], first);
            pos = stop;
            Some(records)
        })))
    }
}

/// Smallest input split a file source makes by default, once the input gives each
/// executor thread one: Hadoop's block size on a local file system, Spark's splits there.
pub const MIN_SPLIT_BYTES: u64 = 32 << 20;
/// Largest input split a file source makes by default: Hadoop's block size on HDFS,
/// Spark's splits there. Bounds a map task's input, and its staged output.
pub const MAX_SPLIT_BYTES: u64 = 128 << 20;
/// Splits per executor thread a file source aims for, within those sizes: enough that
/// one slow task does not leave the other threads idle at a stage's end.
pub const SPLITS_PER_THREAD: usize = 4;

/// Partitions of `total` bytes of file input on `threads` executor threads: one per
/// thread at least, [`SPLITS_PER_THREAD`] per thread where splits stay at least
/// [`MIN_SPLIT_BYTES`], and more where splits would exceed [`MAX_SPLIT_BYTES`] by more
/// than a sixteenth (1 GB of files a few kilobytes past 8 x 128 MiB is cut in 8, not 9
/// splits: as [`plan_splits`] cuts files, 9 made 12).
/// Each task fills and drains its own map-side tables and writes its own shuffle output,
/// so tasks smaller than needed cost work. 1 GB inputs on 2 threads were cut in 34 splits
/// of 32 MiB, now 8 (4 runs each, in both orders): WordCount 2.07-2.09 -> 1.90-1.98 s,
/// PageRank 16.4-18.7 -> 15.1-15.4 s, TeraSort unchanged; KMeans 4.3-5.0 -> 4.9-5.2 s,
/// its `take(k)` computing (and caching) a first partition four times larger alone.
pub fn default_partitions(threads: usize, total: u64) -> usize {
    let threads = threads.max(1);
    let floor = (threads * SPLITS_PER_THREAD).min(total.div_ceil(MIN_SPLIT_BYTES) as usize);
    let ceiling = MAX_SPLIT_BYTES + MAX_SPLIT_BYTES / 16;
    threads.max(floor).max(total.div_ceil(ceiling) as usize)
}

/// Cuts `files` into about `target` splits of equal size, each a multiple of `align`
/// bytes (1 for text, the record length for binary records). A file is cut into as many
/// splits as it holds of the target size, of equal size themselves; a file at most a
/// sixteenth of a split over a whole number of them gets no sliver of a split for the
/// rest (four files of a quarter of the input and a few bytes, cut for 8 splits, made
/// 10, two of a few kilobytes). Empty files give no split; the result has at least one
/// split (possibly empty) so an RDD always has a partition.
pub fn plan_splits(files: &[InputFile], target: usize, align: u64) -> Vec<FileSplit> {
    let total: u64 = files.iter().map(|f| f.len).sum();
    let goal = total.div_ceil(target.max(1) as u64).max(1);
    let mut splits = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let pieces = f.len.saturating_sub(goal / 16).div_ceil(goal).max(1);
        let per = f.len.div_ceil(pieces).div_ceil(align).max(1) * align;
        let mut start = 0;
        while start < f.len {
            let end = (start + per).min(f.len);
            splits.push(FileSplit {
                file: i,
                start,
                end,
            });
            start = end;
        }
    }
    if splits.is_empty() {
        splits.push(FileSplit {
            file: 0,
            start: 0,
            end: 0,
        });
    }
    splits
}

/// Maps a whole file read-only; an empty file gives `None` (it cannot be mapped).
pub fn map_file(path: &std::path::Path) -> Result<Option<memmap2::Mmap>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the map is read-only; like every engine that maps its input, we require that
    // input files are not truncated or rewritten while a job reads them.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Some(map))
}

/// A hash of an input as planned: every file's path and length, and every split.
pub fn identity(files: &[InputFile], splits: &[FileSplit]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    (files, splits).hash(&mut h);
    h.finish()
}

impl InputFile {
    /// Maps the file for reading (`None` when empty), refusing one whose length is no
    /// longer the listed one: splits were cut from that length on every rank, so a file
    /// that grew or shrank since would be read in part or past its end, silently.
    pub fn map(&self) -> Result<Option<memmap2::Mmap>> {
        let map = map_file(&self.path)?;
        let now = map.as_ref().map_or(0, |m| m.len() as u64);
        if now != self.len {
            return Err(Error::InputChanged {
                path: self.path.clone(),
                listed: self.len,
                now,
            });
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(lens: &[u64]) -> Vec<InputFile> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| InputFile {
                path: PathBuf::from(format!("f{i}")),
                len,
            })
            .collect()
    }

    #[test]
    fn splits_cover_each_file_exactly() {
        let fs = files(&[100, 0, 35]);
        for target in [1, 2, 3, 7, 200] {
            let splits = plan_splits(&fs, target, 1);
            for (i, f) in fs.iter().enumerate() {
                let mine: Vec<_> = splits.iter().filter(|s| s.file == i).collect();
                let covered: u64 = mine.iter().map(|s| s.end - s.start).sum();
                assert_eq!(covered, f.len);
                assert!(mine.windows(2).all(|w| w[0].end == w[1].start));
            }
        }
    }

    #[test]
    fn default_partitions_give_each_thread_several_splits_of_32_to_128_mib() {
        const MIB: u64 = 1 << 20;
        // Small inputs: one split per thread, as before.
        assert_eq!(default_partitions(2, 1000), 2);
        assert_eq!(default_partitions(2, 60 * MIB), 2);
        // Four per thread where splits stay at least 32 MiB.
        assert_eq!(default_partitions(2, 100 * MIB), 4);
        assert_eq!(default_partitions(2, 256 * MIB), 8);
        assert_eq!(default_partitions(2, 1024 * MIB), 8);
        assert_eq!(default_partitions(2, 1024 * MIB + 31_144), 8);
        assert_eq!(default_partitions(128, 10 * 1024 * MIB), 320);
        // No split past 128 MiB and a sixteenth.
        assert_eq!(default_partitions(2, 1088 * MIB), 8);
        assert_eq!(default_partitions(2, 1089 * MIB), 9);
        assert_eq!(default_partitions(2, 4096 * MIB), 31);
        assert_eq!(default_partitions(128, 100 * 1024 * MIB), 753);
        assert_eq!(default_partitions(0, 0), 1);
    }

    #[test]
    fn a_file_a_little_over_whole_splits_is_cut_into_equal_ones() {
        // Four files of a quarter of the input and a few bytes, for 8 splits: 2 each.
        let fs = files(&[268_306_906, 268_346_119, 268_370_911, 268_337_009]);
        let splits = plan_splits(&fs, 8, 1);
        assert_eq!(splits.len(), 8, "{splits:?}");
        for s in &splits {
            let len = s.end - s.start;
            assert!(len.abs_diff(fs[s.file].len / 2) <= 1, "{s:?}");
        }
        // Splits of 1100: a file 50 over is one split, a file 100 over two of 600.
        assert_eq!(plan_splits(&files(&[1150, 1050]), 2, 1).len(), 2);
        let splits = plan_splits(&files(&[1200, 1000]), 2, 1);
        let lens: Vec<u64> = splits.iter().map(|s| s.end - s.start).collect();
        assert_eq!(lens, [600, 600, 1000]);
    }

    #[test]
    fn aligned_splits_hold_whole_records() {
        let splits = plan_splits(&files(&[1000]), 3, 100);
        assert!(
            splits
                .iter()
                .all(|s| s.start % 100 == 0 && s.end % 100 == 0)
        );
        assert_eq!(splits.last().unwrap().end, 1000);
    }

    #[test]
    fn missing_and_empty_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nothing-here");
        let err = list_files(p.to_str().unwrap(), false).unwrap_err();
        assert!(err.to_string().contains("nothing-here"), "{err}");
        std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
        let err = list_files(dir.path().to_str().unwrap(), false).unwrap_err();
        assert!(matches!(err, Error::EmptyInput(_)), "{err}");
    }
}
