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

impl ScratchDir {
    /// Creates the directory (mode 0700) and registers it for removal on failure.
    pub fn create(local_dir: &Path, job: &str, rank: usize) -> Result<Self> {
        let path = local_dir.join(format!("ember-{job}-{rank}"));
        DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&path)
            .map_err(|e| Error::io(&path, e))?;
        crate::failure::remove_on_exit(&path);
        Ok(ScratchDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
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

/// Creates a new file readable and writable by the user only.
pub fn create_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))
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
