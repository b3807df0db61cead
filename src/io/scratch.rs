//! Scratch: the executor's private node-local directory and the private files made in it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The executor's node-local scratch directory `{local_dir}/ember-{job}-{rank}`.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

pub(crate) use crate::failure::{OWNER, read_owner};

/// Records this process as the owner of `dir` (a private file `dir/_OWNER`).
pub(crate) fn write_owner(dir: &Path) -> Result<()> {
    let owner = dir.join(OWNER);
    let mut f = create_private(&owner)?;
    let me = format!("{} {}\n", crate::topology::host_name(), std::process::id());
    std::io::Write::write_all(&mut f, me.as_bytes()).map_err(|e| Error::io(&owner, e))
}

/// Whether `dir`'s owner was another process on this host that is gone: then nobody will
/// clean `dir` up but us.
pub(crate) fn owner_is_gone(dir: &Path) -> bool {
    read_owner(dir).is_some_and(|(host, pid)| {
        host == crate::topology::host_name()
            && pid != std::process::id().to_string()
            && !process_runs(&pid)
    })
}

/// Whether process `pid` of this host exists and has not exited. A zombie has exited: it
/// stays in /proc until its parent reaps it, which for ranks a launcher SIGKILLed and left
/// behind (MPICH's hydra does, on `MPI_Abort`) is whenever pid 1 gets round to it.
pub(crate) fn process_runs(pid: &str) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")) {
        // Field 3 of proc(5), after the parenthesised command name: the state.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => Path::new("/proc").join(pid).exists(),
    }
}

impl ScratchDir {
    /// Creates the directory exclusively (mode 0700: a name that exists already, perhaps
    /// planted by someone else in a shared `/dev/shm`, is an error), checks it is a real
    /// directory of this user, records its owner, and registers it for removal on
    /// failure. First removes scratch directories this user's dead ember processes on
    /// this host left in `local_dir` (a SIGKILLed rank cannot clean up after itself).
    pub fn create(local_dir: &Path, job: &str, rank: usize) -> Result<Self> {
        std::fs::create_dir_all(local_dir).map_err(|e| Error::io(local_dir, e))?;
        remove_stale(local_dir);
        let path = local_dir.join(format!("ember-{job}-{rank}"));
        DirBuilder::new().mode(0o700).create(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Other(format!(
                    "scratch directory {} exists already: another job step with the same id, or not ours; refusing to use it",
                    path.display()
                ))
            } else {
                Error::io(&path, e)
            }
        })?;
        crate::failure::remove_on_exit(&path);
        let dir = ScratchDir { path };
        check_private_dir(&dir.path)?;
        write_owner(&dir.path)?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A directory we made: not a symlink, ours, mode 0700.
fn check_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !meta.file_type().is_dir() || meta.uid() != me || meta.permissions().mode() & 0o777 != 0o700
    {
        return Err(Error::Other(format!(
            "scratch directory {} is not a private directory of this user (uid {}, mode {:o})",
            path.display(),
            meta.uid(),
            meta.permissions().mode() & 0o777
        )));
    }
    Ok(())
}

/// Removes `local_dir/ember-*` directories of this user whose owner process, on this
/// host, is gone. Best effort: anything unreadable or not ours is left alone.
fn remove_stale(local_dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(local_dir) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("ember-") {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.file_type().is_dir() || meta.uid() != me {
            continue;
        }
        if !path.join(OWNER).exists() {
            // Killed between making the directory and naming its owner: a directory
            // that stays without one for a minute is nobody's.
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(60));
            if old && std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none()) {
                tracing::info!("removing {}: empty and without an owner", path.display());
                let _ = std::fs::remove_dir(&path);
            }
            continue;
        }
        if owner_is_gone(&path) {
            tracing::info!("removing {}: its owner process is gone", path.display());
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove {}: {e}", self.path.display());
        }
        crate::failure::forget_on_exit(&self.path);
    }
}

/// Creates a new file readable and writable by the user only, replacing one of the same
/// name (a re-run stage writes its files again; existing mappings of the old one stay
/// valid). Opened with `O_EXCL | O_NOFOLLOW`: a planted file or symlink is never written
/// through.
pub fn create_private(path: &Path) -> Result<File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Gives `file` a length of `len` with its blocks reserved (`posix_fallocate`), so that
/// writing through a mapping of it cannot fail for want of space.
pub fn allocate(file: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: a valid open file descriptor; posix_fallocate returns an errno value.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        err => Err(std::io::Error::from_raw_os_error(err)),
    }
}

/// Maps a shuffle file read-only with its pages populated (it is about to be sent
/// whole); `None` when it is empty.
pub fn map_read(path: &Path) -> Result<Option<memmap2::Mmap>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().map_err(|e| Error::io(path, e))?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: our own private file, not modified while mapped.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map_err(|e| Error::io(path, e))?;
    Ok(Some(map))
}

/// Whether files in `dir` live in memory (tmpfs, ramfs), like the default `/dev/shm`.
pub fn in_memory(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs on a NUL-terminated path into a zeroed struct of ours.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    const RAMFS_MAGIC: libc::__fsword_t = 0x8584_58f6;
    st.f_type == libc::TMPFS_MAGIC || st.f_type == RAMFS_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_directory_or_symlink_is_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("ember-j-1")).unwrap();
        let err = ScratchDir::create(root.path(), "j", 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exists already"), "{err}");
        let target = root.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, root.path().join("ember-j-2")).unwrap();
        assert!(ScratchDir::create(root.path(), "j", 2).is_err());
    }

    #[test]
    fn private_files_never_write_through_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let dir = ScratchDir::create(root.path(), "j", 1).unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = dir.path().join("shuffle-0-reduce.data");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        // The link is replaced by a new private file; the target is untouched.
        let mut f = create_private(&link).unwrap();
        std::io::Write::write_all(&mut f, b"ours").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(
            !std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_zombie_owner_is_gone() {
        let root = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id().to_string();
        // Exited but not yet reaped: a zombie, still listed in /proc.
        let start = std::time::Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        {
            assert!(start.elapsed().as_secs() < 10, "child {pid} did not exit");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            Path::new("/proc").join(&pid).exists(),
            "a zombie is in /proc"
        );
        let host = crate::topology::host_name();
        std::fs::write(root.path().join(OWNER), format!("{host} {pid}\n")).unwrap();
        assert!(
            owner_is_gone(root.path()),
            "a zombie owner cleans nothing up"
        );
        child.wait().unwrap();
        std::fs::write(root.path().join(OWNER), format!("{host} 1\n")).unwrap();
        assert!(!owner_is_gone(root.path()), "pid 1 runs");
    }

    #[test]
    fn scratch_of_a_dead_process_is_removed_at_the_next_start() {
        let root = tempfile::tempdir().unwrap();
        let dead = root.path().join("ember-old-1");
        std::fs::create_dir(&dead).unwrap();
        let host = crate::topology::host_name();
        std::fs::write(dead.join(OWNER), format!("{host} {}\n", u32::MAX)).unwrap();
        let alive = root.path().join("ember-other-1");
        std::fs::create_dir(&alive).unwrap();
        std::fs::write(alive.join(OWNER), format!("{host} 1\n")).unwrap();
        let elsewhere = root.path().join("ember-remote-1");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join(OWNER), format!("not-{host} {}\n", u32::MAX)).unwrap();
        // Empty and ownerless: an old one is removed, a fresh one (being made) is not.
        let orphan = root.path().join("ember-orphan-1");
        std::fs::create_dir(&orphan).unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::open(&orphan)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let fresh = root.path().join("ember-fresh-1");
        std::fs::create_dir(&fresh).unwrap();
        let dir = ScratchDir::create(root.path(), "new", 1).unwrap();
        assert!(
            !orphan.exists(),
            "an old ownerless empty scratch dir is removed"
        );
        assert!(
            fresh.exists(),
            "a fresh one may be another job's, being made"
        );
        assert!(!dead.exists(), "a dead process's scratch is removed");
        assert!(
            alive.exists(),
            "a live process's scratch stays (pid 1 exists)"
        );
        assert!(elsewhere.exists(), "another host's scratch stays");
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
    }
}
