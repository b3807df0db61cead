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
            checked: 0,
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

/// Bytes of text validated as UTF-8 at once, ahead of the lines read from them.
const CHECK_AHEAD: usize = 1 << 20;

/// Validates the text from `from` on as UTF-8, about [`CHECK_AHEAD`] bytes of it: the end
/// of the whole lines that are valid (just past a `\n`, or the end of `data`; `from` when
/// the first line is not wholly valid). One call over a megabyte instead of one per line:
/// profiled on PageRank's edge list (15-byte lines), `from_utf8` per line was 6% of the
/// job's first two stages. A `\n` is never inside a character, so every line between
/// such ends is valid UTF-8 too.
fn valid_lines_end(data: &[u8], from: usize) -> usize {
    let window = &data[from..(from + CHECK_AHEAD).min(data.len())];
    let valid = match std::str::from_utf8(window) {
        Ok(_) if from + window.len() == data.len() => return data.len(),
        Ok(_) => window.len(),
        Err(e) => e.valid_up_to(),
    };
    memchr::memrchr(b'\n', &window[..valid]).map_or(from, |i| from + i + 1)
}

struct LineBatches<F> {
    path: PathBuf,
    map: memmap2::Mmap,
    pos: usize,
    end: usize,
    /// Lines ending before this offset were validated as UTF-8 ([`valid_lines_end`]).
    checked: usize,
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
            if line_start >= self.checked {
                self.checked = valid_lines_end(data, line_start);
            }
            let mut line = &data[line_start..nl];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let text = if nl < self.checked || self.checked == data.len() {
                // SAFETY: the line lies within text validated as UTF-8 whose ends are
                // line ends (`valid_lines_end`); a `\n` or `\r` is never inside a
                // character, so the line is UTF-8 too.
                Ok(unsafe { std::str::from_utf8_unchecked(line) })
            } else {
                // Not validated ahead (invalid, or longer than the look-ahead): checked
                // alone, which names the offset of its first invalid byte.
                std::str::from_utf8(line)
            };
            match text {
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
    fn text_is_validated_ahead_in_whole_lines_and_never_past_a_bad_byte() {
        let d = "ab\nçé\nxy".as_bytes();
        assert_eq!(valid_lines_end(d, 0), d.len());
        assert_eq!(valid_lines_end(d, 3), d.len());
        let bad = b"ab\ncd\xff\nef\n";
        assert_eq!(valid_lines_end(bad, 0), 3);
        assert_eq!(valid_lines_end(bad, 3), 3);
        assert_eq!(valid_lines_end(bad, 7), bad.len());
        // A window that ends inside a line (and a character): back to the line's start.
        let long: Vec<u8> = "é".repeat(CHECK_AHEAD).into_bytes();
        let text = [b"ab\n".as_slice(), &long, b"\n"].concat();
        assert_eq!(valid_lines_end(&text, 0), 3);
        assert_eq!(valid_lines_end(&text, 3), 3);
    }

    #[test]
    fn lines_read_past_many_windows_match_and_a_bad_byte_is_named_exactly() {
        use crate::config::EngineArgs;
        use crate::context::Context;
        // 3 MB of lines of 1 to 3 characters of up to 3 bytes, one line longer than a
        // window, and, in a copy, one bad byte at a known offset near the middle.
        let mut lines: Vec<String> = (0..400_000u32)
            .map(|i| ["a", "é", "€"][i as usize % 3].repeat(1 + i as usize % 3))
            .collect();
        lines[1000] = "ü".repeat(CHECK_AHEAD);
        let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::local_with(&EngineArgs::default());
        let good = dir.path().join("good.txt");
        std::fs::write(&good, &text).unwrap();
        let read = ctx.text_file_with(good.to_str().unwrap(), Default::default());
        assert!(read.unwrap().collect().unwrap() == lines);
        let mut bytes = text.into_bytes();
        let at = bytes.len() / 2;
        let at = at + memchr::memchr(b'\n', &bytes[at..]).unwrap() + 1;
        bytes[at] = 0xff;
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, &bytes).unwrap();
        let err = ctx
            .text_file(bad.to_str().unwrap())
            .unwrap()
            .count()
            .unwrap_err();
        assert!(
            err.to_string().contains(&format!("byte offset {at}")),
            "{err}"
        );
        let options = crate::TextOptions {
            skip_bad_lines: true,
            ..Default::default()
        };
        let read = ctx.text_file_with(bad.to_str().unwrap(), options).unwrap();
        assert_eq!(read.count().unwrap(), lines.len() as u64 - 1);
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
