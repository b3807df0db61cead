//! Committed output: parts are written into a staging directory beside the output and the
//! whole directory is published by one rename, `_SUCCESS` included.
//!
//! The driver creates `PARENT/.NAME.ember-staging` exclusively before the job (a second job
//! writing the same output is refused, not interleaved), with an `_OWNER` file naming its
//! host and pid (a staging directory left by a dead job on this host is removed). A task
//! writes `part-NNNNN.attempt-A` there and renames it to `part-NNNNN` when it finishes. On
//! success the driver removes leftovers of lost attempts, checks every part is there,
//! writes `_SUCCESS`, and renames the staging directory onto the output in one step:
//! `RENAME_NOREPLACE` for a new output (so two jobs cannot both publish), and with
//! overwrite `RENAME_EXCHANGE`, so the old output stays whole until the new one replaces
//! it. A failed or signalled job removes the staging directory: nothing is left that looks
//! complete, and an old output is never lost to a job that did not finish.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::scratch::{owner_is_gone, read_owner, write_owner};

/// Name of partition `p`'s output file.
pub fn part_name(p: usize) -> String {
    format!("part-{p:05}")
}

/// The staging directory of output `dir`: a hidden sibling, so that publishing is a
/// rename within one file system. The same on every rank.
pub fn staging(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!(".{name}.ember-staging"))
}

/// The driver's side of an output directory.
#[derive(Debug)]
pub struct OutputCommitter {
    dir: PathBuf,
    staging: PathBuf,
    overwrite: bool,
}

impl OutputCommitter {
    /// Refuses an existing `dir` unless `overwrite`, and creates the staging directory
    /// (exclusively: another job writing the same output is an error).
    pub fn setup(dir: &Path, overwrite: bool) -> Result<Self> {
        if !overwrite && dir.exists() {
            return Err(Error::OutputExists(dir.to_path_buf()));
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let staging = staging(dir);
        remove_if_stale(&staging);
        // Made under a name of its own with its owner recorded, then renamed into place:
        // the staging directory is never there without `_OWNER`. (A job SIGKILLed between
        // the two steps, as MPICH's hydra does to every rank when one fails, left one that
        // blocked the output until removed by hand.)
        let fresh = fresh_staging(&staging);
        let _ = std::fs::remove_dir_all(&fresh); // this pid's, from an earlier process
        std::fs::create_dir(&fresh).map_err(|e| Error::io(&fresh, e))?;
        // A job killed or signalled before it commits leaves nothing behind.
        crate::failure::remove_on_exit(&fresh);
        let placed = write_owner(&fresh).and_then(|()| {
            rename(&fresh, &staging, libc::RENAME_NOREPLACE).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists
                | std::io::ErrorKind::DirectoryNotEmpty => Error::Other(format!(
                    "output {}: another job is writing it ({} exists, {}); remove that directory if no job is",
                    dir.display(),
                    staging.display(),
                    owner_text(&staging)
                )),
                _ => Error::io(&staging, e),
            })
        });
        if let Err(e) = placed {
            let _ = std::fs::remove_dir_all(&fresh);
            crate::failure::forget_on_exit(&fresh);
            return Err(e);
        }
        crate::failure::remove_on_exit(&staging);
        crate::failure::forget_on_exit(&fresh);
        Ok(OutputCommitter {
            dir: dir.to_path_buf(),
            staging,
            overwrite,
        })
    }

    /// Publishes the output: keeps exactly `part-00000..` of `partitions` (removing what
    /// lost attempts left), writes `_SUCCESS`, then renames the staging directory onto the
    /// output in one step.
    pub fn commit(&self, partitions: usize) -> Result<()> {
        let wanted: std::collections::HashSet<String> = (0..partitions).map(part_name).collect();
        let entries = std::fs::read_dir(&self.staging).map_err(|e| Error::io(&self.staging, e))?;
        let mut found = 0;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.staging, e))?;
            if wanted.contains(entry.file_name().to_string_lossy().as_ref()) {
                found += 1;
            } else {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        if found != partitions {
            return Err(Error::Other(format!(
                "output {}: {found} of {partitions} parts were written",
                self.dir.display()
            )));
        }
        let success = self.staging.join("_SUCCESS");
        std::fs::write(&success, b"").map_err(|e| Error::io(&success, e))?;
        self.publish()?;
        crate::failure::forget_on_exit(&self.staging);
        if self.staging.exists() {
            // After an exchange it holds the old output.
            std::fs::remove_dir_all(&self.staging).map_err(|e| Error::io(&self.staging, e))?;
        }
        Ok(())
    }

    fn publish(&self) -> Result<()> {
        match rename(&self.staging, &self.dir, libc::RENAME_NOREPLACE) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && self.overwrite => {
                rename(&self.staging, &self.dir, libc::RENAME_EXCHANGE)
                    .map_err(|e| Error::io(&self.dir, e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::OutputExists(self.dir.clone()))
            }
            Err(e) => Err(Error::io(&self.dir, e)),
        }
    }

    /// Removes what the job wrote; logs (does not fail) when cleanup itself fails. An
    /// existing output is untouched.
    pub fn abort(&self) {
        crate::failure::forget_on_exit(&self.staging);
        if let Err(e) = std::fs::remove_dir_all(&self.staging)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove {}: {e}", self.staging.display());
        }
    }
}

/// `renameat2(from, to, flags)`; file systems without the flags (some network ones) get a
/// plain rename when `to` does not exist, which is racy but the best they offer.
fn rename(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths, relative to the working directory.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) if flags == libc::RENAME_NOREPLACE => {
            if to.exists() {
                return Err(std::io::ErrorKind::AlreadyExists.into());
            }
            std::fs::rename(from, to)
        }
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            // No exchange: move the old output aside, then the new one in.
            let aside = from.with_extension("old");
            std::fs::rename(to, &aside)?;
            std::fs::rename(from, to)?;
            std::fs::rename(&aside, from)
        }
        _ => Err(err),
    }
}

/// What `_OWNER` of a staging directory says, for messages.
fn owner_text(staging: &Path) -> String {
    match read_owner(staging) {
        Some((host, pid)) => format!("written by pid {pid} on {host}"),
        None => "owner unknown".into(),
    }
}

/// Where this process makes the staging directory `staging` before renaming it into
/// place: `STAGING.new-HOST-PID`.
fn fresh_staging(staging: &Path) -> PathBuf {
    let name = staging.file_name().unwrap_or_default().to_string_lossy();
    staging.with_file_name(format!(
        "{name}.new-{}-{}",
        crate::topology::host_name(),
        std::process::id()
    ))
}

/// Removes a staging directory whose owner was a process on this host that is gone, and
/// what such processes left while making one (`STAGING.new-HOST-PID`).
fn remove_if_stale(staging: &Path) {
    if owner_is_gone(staging) {
        tracing::warn!("removing {}: its owner process is gone", staging.display());
        let _ = std::fs::remove_dir_all(staging);
    }
    let (Some(parent), Some(name)) = (staging.parent(), staging.file_name()) else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let prefix = format!(
        "{}.new-{}-",
        name.to_string_lossy(),
        crate::topology::host_name()
    );
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_string_lossy()
            .strip_prefix(&prefix)
            .map(String::from)
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok()
            && pid != std::process::id().to_string()
            && !crate::io::scratch::process_runs(&pid)
        {
            tracing::warn!("removing {}: its maker is gone", entry.path().display());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes partition `p` (attempt `attempt`) of output `dir`: each batch of records is
/// written by `write_batch` (into a buffered file: a writer of large batches may flush it
/// and write past the buffer). The part appears under its name in the staging directory
/// only when complete.
pub fn write_part<T>(
    dir: &Path,
    p: usize,
    attempt: u32,
    batches: impl Iterator<Item = Result<Vec<T>>>,
    mut write_batch: impl FnMut(&mut BufWriter<File>, &[T]) -> std::io::Result<()>,
) -> Result<u64> {
    let staging = staging(dir);
    let attempt_path = staging.join(format!("{}.attempt-{attempt}", part_name(p)));
    let file = File::create(&attempt_path).map_err(|e| Error::io(&attempt_path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut count = 0u64;
    let result = (|| {
        for batch in batches {
            let batch = batch?;
            write_batch(&mut out, &batch).map_err(|e| Error::io(&attempt_path, e))?;
            count += batch.len() as u64;
        }
        out.flush().map_err(|e| Error::io(&attempt_path, e))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&attempt_path);
        return Err(e);
    }
    let final_path = staging.join(part_name(p));
    std::fs::rename(&attempt_path, &final_path).map_err(|e| Error::io(&final_path, e))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_lines(out: &Path, parts: usize, text: &str) {
        for p in 0..parts {
            let lines = vec![Ok(vec![format!("{text}{p}")])].into_iter();
            let write = |w: &mut BufWriter<File>, ls: &[String]| {
                ls.iter().try_for_each(|l| writeln!(w, "{l}"))
            };
            write_part(out, p, 0, lines, write).unwrap();
        }
    }

    #[test]
    fn a_staging_directory_half_made_by_a_dead_process_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        // Made but never renamed into place (its maker was killed), by a pid that is gone.
        let name = format!(
            ".out.ember-staging.new-{}-{}",
            crate::topology::host_name(),
            u32::MAX
        );
        std::fs::create_dir(root.path().join(&name)).unwrap();
        let c = OutputCommitter::setup(&out, false).unwrap();
        assert!(!root.path().join(&name).exists(), "removed");
        assert!(
            staging(&out).join(crate::io::scratch::OWNER).exists(),
            "the staging directory appears with its owner"
        );
        let left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(".out.ember-staging")]);
        c.abort();
    }

    #[test]
    fn commit_publishes_parts_and_success_abort_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let c = OutputCommitter::setup(&out, false).unwrap();
        write_lines(&out, 2, "line");
        // A lost attempt's leftover is not published.
        std::fs::write(staging(&out).join("part-00001.attempt-3"), "partial").unwrap();
        assert!(!out.exists(), "nothing is visible before the commit");
        c.commit(2).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("part-00001")).unwrap(),
            "line1\n"
        );
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["_SUCCESS", "part-00000", "part-00001"]);
        assert!(!staging(&out).exists());

        assert!(matches!(
            OutputCommitter::setup(&out, false),
            Err(Error::OutputExists(_))
        ));
        let c = OutputCommitter::setup(&out, true).unwrap();
        c.abort();
        assert!(
            out.join("_SUCCESS").exists() && out.join("part-00001").exists(),
            "an aborted overwrite leaves the old output whole"
        );
        assert!(!staging(&out).exists(), "and no staging directory");
    }

    #[test]
    fn overwrite_replaces_the_output_in_one_step() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let c = OutputCommitter::setup(&out, false).unwrap();
        write_lines(&out, 3, "old");
        c.commit(3).unwrap();
        let c = OutputCommitter::setup(&out, true).unwrap();
        write_lines(&out, 1, "new");
        c.commit(1).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("part-00000")).unwrap(),
            "new0\n"
        );
        assert!(
            !out.join("part-00002").exists(),
            "no part of the old output stays"
        );
        assert!(!staging(&out).exists());
    }

    #[test]
    fn a_second_writer_is_refused_and_a_dead_ones_staging_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let first = OutputCommitter::setup(&out, false).unwrap();
        let err = OutputCommitter::setup(&out, false).unwrap_err().to_string();
        assert!(err.contains("another job is writing it"), "{err}");
        first.abort();
        // A staging directory of a process that no longer exists, on this host.
        std::fs::create_dir(staging(&out)).unwrap();
        let dead = format!("{} {}\n", crate::topology::host_name(), u32::MAX);
        std::fs::write(staging(&out).join(crate::io::scratch::OWNER), dead).unwrap();
        let c = OutputCommitter::setup(&out, false).unwrap();
        c.abort();
    }

    #[test]
    fn a_missing_part_is_an_error_and_publishes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let c = OutputCommitter::setup(&out, false).unwrap();
        write_lines(&out, 1, "x");
        let err = c.commit(2).unwrap_err().to_string();
        assert!(err.contains("1 of 2 parts"), "{err}");
        assert!(!out.exists());
        c.abort();
    }
}
