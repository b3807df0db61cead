//! Committed output: `part-NNNNN` files written under `_temporary`, renamed on success, then `_SUCCESS`.
//!
//! The driver sets the directory up before the job and commits it after every task has
//! succeeded; a task writes `_temporary/part-NNNNN.attempt-A` and renames it to
//! `_temporary/part-NNNNN` when it finishes. A failed job removes `_temporary` (and the
//! directory if the job created it), so nothing is left that looks complete.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of partition `p`'s output file.
pub fn part_name(p: usize) -> String {
    format!("part-{p:05}")
}

/// The driver's side of an output directory.
#[derive(Debug)]
pub struct OutputCommitter {
    dir: PathBuf,
    created_dir: bool,
}

impl OutputCommitter {
    /// Refuses an existing `dir` unless `overwrite` (then removes it), and creates
    /// `dir/_temporary`.
    pub fn setup(dir: &Path, overwrite: bool) -> Result<Self> {
        if dir.exists() {
            if !overwrite {
                return Err(Error::OutputExists(dir.to_path_buf()));
            }
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let tmp = temporary(dir);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        // A job killed or signalled before it commits leaves no parts behind.
        crate::failure::remove_on_exit(&tmp);
        Ok(OutputCommitter {
            dir: dir.to_path_buf(),
            created_dir: true,
        })
    }

    /// Moves every task's part into place and writes `_SUCCESS` last.
    pub fn commit(&self, partitions: usize) -> Result<()> {
        let tmp = temporary(&self.dir);
        for p in 0..partitions {
            let from = tmp.join(part_name(p));
            let to = self.dir.join(part_name(p));
            std::fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
        }
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        crate::failure::forget_on_exit(&tmp);
        let success = self.dir.join("_SUCCESS");
        std::fs::write(&success, b"").map_err(|e| Error::io(&success, e))
    }

    /// Removes what the job wrote; logs (does not fail) when cleanup itself fails.
    pub fn abort(&self) {
        let tmp = temporary(&self.dir);
        crate::failure::forget_on_exit(&tmp);
        if let Err(e) = std::fs::remove_dir_all(&tmp)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove {}: {e}", tmp.display());
        }
        if self.created_dir {
            // Only succeeds when empty: parts already moved stay visible without _SUCCESS.
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

fn temporary(dir: &Path) -> PathBuf {
    dir.join("_temporary")
}

/// Writes partition `p` (attempt `attempt`) of an output: each record is written by
/// `write_record`. The part becomes visible in `_temporary` only when complete.
pub fn write_part<T>(
    dir: &Path,
    p: usize,
    attempt: u32,
    records: impl Iterator<Item = Result<T>>,
    mut write_record: impl FnMut(&mut dyn Write, &T) -> std::io::Result<()>,
) -> Result<u64> {
    let tmp = temporary(dir);
    let attempt_path = tmp.join(format!("{}.attempt-{attempt}", part_name(p)));
    let file = std::fs::File::create(&attempt_path).map_err(|e| Error::io(&attempt_path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut count = 0u64;
    let result = (|| {
        for record in records {
            write_record(&mut out, &record?).map_err(|e| Error::io(&attempt_path, e))?;
            count += 1;
        }
        out.flush().map_err(|e| Error::io(&attempt_path, e))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&attempt_path);
        return Err(e);
    }
    let final_path = tmp.join(part_name(p));
    std::fs::rename(&attempt_path, &final_path).map_err(|e| Error::io(&final_path, e))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_publishes_parts_and_success_abort_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let c = OutputCommitter::setup(&out, false).unwrap();
        for p in 0..2 {
            let lines = vec![Ok(format!("line{p}"))].into_iter();
            write_part(&out, p, 0, lines, |w, l: &String| writeln!(w, "{l}")).unwrap();
        }
        c.commit(2).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("part-00001")).unwrap(),
            "line1\n"
        );
        assert!(out.join("_SUCCESS").exists() && !out.join("_temporary").exists());

        assert!(matches!(
            OutputCommitter::setup(&out, false),
            Err(Error::OutputExists(_))
        ));
        let c = OutputCommitter::setup(&out, true).unwrap();
        c.abort();
        assert!(!out.exists(), "an aborted job leaves no directory behind");
    }
}
