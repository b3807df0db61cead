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

/// Cuts `files` into about `target` splits of equal size, each a multiple of `align`
/// bytes (1 for text, the record length for binary records). Empty files give no split;
/// the result has at least one split (possibly empty) so an RDD always has a partition.
pub fn plan_splits(files: &[InputFile], target: usize, align: u64) -> Vec<FileSplit> {
    let total: u64 = files.iter().map(|f| f.len).sum();
    let per = total.div_ceil(target.max(1) as u64).max(1);
    let per = per.div_ceil(align) * align;
    let mut splits = Vec::new();
    for (i, f) in files.iter().enumerate() {
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
