//! `text_file`: lines of UTF-8 files, split into newline-aligned byte ranges read through mmap;
//! `text_file_parsed`: the same lines parsed where they are read, a bad one named by file
//! and line.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::input::{FileSplit, InputFile};
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::plan::node::{Compute, Dependency, Node, RddId};
use crate::plan::task::TaskContext;

/// Lines of text files, each turned into a record by `parse` (`text_file` copies it into a
/// `String`). A split owns the lines that start inside its byte range, so every line is
/// read exactly once whatever the split boundaries. `\n` ends a line, a `\r` before it is
/// dropped, and a last line without `\n` counts.
///
/// `parse` is a type parameter, not a boxed function, so the per-line call is inlined.
pub struct TextFile<F> {
    pub id: RddId,
    pub pattern: String,
    pub files: Vec<InputFile>,
    pub splits: Vec<FileSplit>,
    /// Skip lines that are not UTF-8 or that `parse` refuses (counted in the log) instead
    /// of failing.
    pub skip_bad_lines: bool,
    /// A line's record, `None` to leave the line out, or why the line is malformed.
    pub parse: F,
}

/// What `parse` of a [`TextFile`] returns for one line.
pub type Parsed<T> = std::result::Result<Option<T>, String>;

impl<F: Send + Sync + 'static> Node for TextFile<F> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        format!("text_file {}", self.pattern)
    }
    fn num_partitions(&self) -> usize {
        self.splits.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn input_identity(&self) -> u64 {
        crate::io::input::identity(&self.files, &self.splits)
    }
}

impl<T, F> Compute<T> for TextFile<F>
where
    T: 'static,
    F: Fn(&str) -> Parsed<T> + Send + Sync + 'static,
{
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>> {
        tc.count_source_partition();
        let s = self.splits[split];
        let Some(file) = self.files.get(s.file) else {
            return Ok(Box::new(std::iter::empty()));
        };
        let Some(map) = file.map()? else {
            return Ok(Box::new(std::iter::empty()));
        };
        Ok(Box::new(LineBatches {
            path: file.path.clone(),
            pos: first_line_start(&map, s.start) as usize,
            end: s.end.min(map.len() as u64) as usize,
            map,
            skip_bad_lines: self.skip_bad_lines,
            skipped: 0,
            failed: false,
            source: Arc::clone(&self),
        }))
    }
}

/// Offset of the first line that starts at or after `start`.
fn first_line_start(data: &[u8], start: u64) -> u64 {
    if start == 0 {
        return 0;
    }
    let from = start as usize - 1;
    match memchr::memchr(b'\n', &data[from..]) {
        Some(i) => (from + i + 1) as u64,
        None => data.len() as u64,
    }
}

/// The 1-based number of the line starting at byte `at` (counted only on the error path).
fn line_number(data: &[u8], at: usize) -> u64 {
    memchr::memchr_iter(b'\n', &data[..at]).count() as u64 + 1
}

struct LineBatches<F> {
    path: PathBuf,
    map: memmap2::Mmap,
    pos: usize,
    end: usize,
    skip_bad_lines: bool,
    skipped: u64,
    failed: bool,
    source: Arc<TextFile<F>>,
}

impl<T, F> Iterator for LineBatches<F>
where
    F: Fn(&str) -> Parsed<T>,
{
    type Item = Result<Vec<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            if self.skipped > 0 {
                tracing::warn!(
                    "{}: skipped {} bad line(s) (not UTF-8 or malformed)",
                    self.path.display(),
                    self.skipped
                );
                self.skipped = 0;
            }
            return None;
        }
        let data = &self.map[..];
        let mut batch = Vec::with_capacity(BATCH_SIZE);
        while self.pos < self.end && batch.len() < BATCH_SIZE {
            let line_start = self.pos;
            let nl =
                memchr::memchr(b'\n', &data[line_start..]).map_or(data.len(), |i| line_start + i);
            self.pos = nl + 1;
            let mut line = &data[line_start..nl];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            match std::str::from_utf8(line) {
                Ok(text) => match (self.source.parse)(text) {
                    Ok(Some(record)) => batch.push(record),
                    Ok(None) => {}
                    Err(_) if self.skip_bad_lines => self.skipped += 1,
                    Err(detail) => {
                        self.failed = true;
                        return Some(Err(Error::BadRecord {
                            path: self.path.clone(),
                            line: line_number(data, line_start),
                            detail,
                        }));
                    }
                },
                Err(_) if self.skip_bad_lines => self.skipped += 1,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(Error::InvalidUtf8 {
                        path: self.path.clone(),
                        offset: (line_start + e.valid_up_to()) as u64,
                    }));
                }
            }
        }
        Some(Ok(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_start_skips_a_partial_line() {
        let d = b"ab\ncd\nef";
        assert_eq!(first_line_start(d, 0), 0);
        assert_eq!(first_line_start(d, 1), 3);
        assert_eq!(first_line_start(d, 3), 3); // byte 2 is '\n': line starts at 3
        assert_eq!(first_line_start(d, 4), 6);
        assert_eq!(first_line_start(d, 7), 8);
    }

    fn node(lens: &[u64]) -> Arc<dyn Node> {
        let files: Vec<InputFile> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| InputFile {
                path: PathBuf::from(format!("in/part-{i}")),
                len,
            })
            .collect();
        let splits = crate::io::input::plan_splits(&files, 4, 1);
        Arc::new(TextFile {
            id: RddId(0),
            pattern: "in".into(),
            files,
            splits,
            skip_bad_lines: false,
            parse: |l: &str| -> Parsed<String> { Ok(Some(l.to_string())) },
        })
    }

    #[test]
    fn the_lineage_fingerprint_covers_the_files_listed() {
        use crate::plan::stage::fingerprint;
        let parts = [0, 1];
        assert_eq!(
            fingerprint(&node(&[100, 50]), &parts),
            fingerprint(&node(&[100, 50]), &parts)
        );
        // Same pattern, same split count: only a size (or a name) differs.
        assert_ne!(
            fingerprint(&node(&[100, 50]), &parts),
            fingerprint(&node(&[100, 51]), &parts)
        );
    }

    #[test]
    fn a_file_that_changed_after_planning_is_an_error_naming_it() {
        use crate::config::EngineArgs;
        use crate::context::Context;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.txt");
        std::fs::write(&path, "a\nb\n").unwrap();
        let ctx = Context::local_with(&EngineArgs::default());
        let lines = ctx.text_file(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(lines.count().unwrap(), 2);
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        let err = lines.count().unwrap_err().to_string();
        assert!(
            err.contains("lines.txt") && err.contains("changed while the job read it"),
            "{err}"
        );
        ctx.stop();
    }

    #[test]
    fn line_numbers_count_the_newlines_before_a_line() {
        let d = b"ab\ncd\n\nef";
        assert_eq!(line_number(d, 0), 1);
        assert_eq!(line_number(d, 3), 2);
        assert_eq!(line_number(d, 6), 3);
        assert_eq!(line_number(d, 7), 4);
    }
}
