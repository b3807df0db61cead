//! One-sided MPI windows (RMA), wrapped once: rsmpi 0.8 has no safe API for them.
//!
//! A [`Window`] is `len` bytes on every rank of a group, allocated by `MPI_Win_allocate`.
//! Each rank fills its own part; after a barrier, any rank reads ranges of any rank's part
//! with `MPI_Get` in one passive-target epoch (`MPI_Win_lock_all` ... `MPI_Win_unlock_all`).
//! Creation returns an error instead of aborting when the MPI library cannot make windows
//! (e.g. OpenMPI 4.1 over TCP without its `osc/pt2pt` component, or with
//! `MPI_THREAD_MULTIPLE`), so callers can fall back. Under `MPI_THREAD_SERIALIZED` every
//! call holds the process's MPI lock (one epoch of gets holds it throughout).

use std::os::raw::c_void;

use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::traits::Equivalence;

use super::Rank;

/// Largest byte count one `MPI_Get` takes here (counts are C `int`).
const MAX_GET: usize = 1 << 30;

/// One-sided access to every rank's part of a shared allocation.
pub trait Window: Send {
    /// This rank's part, to fill before the others read it.
    fn local_mut(&mut self) -> &mut [u8];

    /// Reads, for every request `(rank, offset, dest)`, `dest.len()` bytes at `offset` of
    /// `rank`'s part into `dest`, in one epoch. Returns when all have arrived.
    fn get_many(&self, requests: &mut [(Rank, usize, &mut [u8])]) -> Result<(), String>;
}

/// A window allocated by MPI over one communicator.
pub struct MpiWindow {
    win: ffi::MPI_Win,
    base: *mut u8,
    len: usize,
    /// Calls take the process's MPI lock (`MPI_THREAD_SERIALIZED`).
    serialized: bool,
}

// SAFETY: the window handle and its memory belong to this rank; MPI calls on it are made
// under the process's MPI lock unless the library allows calls from any thread at once.
unsafe impl Send for MpiWindow {}

fn error_text(code: i32) -> String {
    let mut buf = vec![0u8; ffi::MPI_MAX_ERROR_STRING as usize + 1];
    let mut len = 0;
    // SAFETY: buf holds MPI_MAX_ERROR_STRING bytes as MPI_Error_string requires.
    unsafe { ffi::MPI_Error_string(code, buf.as_mut_ptr().cast(), &mut len) };
    String::from_utf8_lossy(&buf[..len.max(0) as usize]).into_owned()
}

impl MpiWindow {
    /// Collective over `comm`: every rank allocates `len` bytes (may differ per rank).
    ///
    /// # Safety
    /// `comm` must be a valid intra-communicator, and every rank of it must call this.
    pub unsafe fn allocate(
        comm: ffi::MPI_Comm,
        len: usize,
        serialized: bool,
    ) -> Result<MpiWindow, String> {
        if let Some(why) = super::library::windows_unusable() {
            return Err(why);
        }
        let size =
            ffi::MPI_Aint::try_from(len.max(1)).map_err(|_| format!("a window of {len} bytes"))?;
        let mut base: *mut u8 = std::ptr::null_mut();
        let mut win: ffi::MPI_Win = unsafe { ffi::RSMPI_WIN_NULL };
        let _mpi = super::mpi::serialize(serialized);
        let code = unsafe {
            // Errors come back as codes while we try; the default handler would abort.
            ffi::MPI_Comm_set_errhandler(comm, ffi::RSMPI_ERRORS_RETURN);
            let code = ffi::MPI_Win_allocate(
                size,
                1,
                ffi::RSMPI_INFO_NULL,
                comm,
                (&mut base as *mut *mut u8).cast::<c_void>(),
                &mut win,
            );
            ffi::MPI_Comm_set_errhandler(comm, ffi::RSMPI_ERRORS_ARE_FATAL);
            code
        };
        if code != ffi::MPI_SUCCESS as i32 || base.is_null() {
            return Err(format!(
                "MPI_Win_allocate failed: {}; with OpenMPI over TCP, allow its osc/pt2pt component (OMPI_MCA_osc=sm,pt2pt)",
                error_text(code)
            ));
        }
        unsafe { ffi::MPI_Win_set_errhandler(win, ffi::RSMPI_ERRORS_RETURN) };
        Ok(MpiWindow {
            win,
            base,
            len,
            serialized,
        })
    }
}

impl Window for MpiWindow {
    fn local_mut(&mut self) -> &mut [u8] {
        // SAFETY: MPI gave us at least `len` bytes at `base`, owned by this rank.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.len) }
    }

    fn get_many(&self, requests: &mut [(Rank, usize, &mut [u8])]) -> Result<(), String> {
        let byte = u8::equivalent_datatype().as_raw();
        let check = |code: i32, what: &str| {
            if code == ffi::MPI_SUCCESS as i32 {
                Ok(())
            } else {
                Err(format!("{what}: {}", error_text(code)))
            }
        };
        let _mpi = super::mpi::serialize(self.serialized);
        // SAFETY: a passive-target epoch on our window; every destination slice is valid,
        // distinct memory that stays borrowed until the flush below completes the gets.
        unsafe {
            check(
                ffi::MPI_Win_lock_all(ffi::MPI_MODE_NOCHECK as i32, self.win),
                "MPI_Win_lock_all",
            )?;
            let mut result = Ok(());
            'gets: for (rank, offset, dest) in requests.iter_mut() {
                let mut done = 0;
                while done < dest.len() {
                    let n = (dest.len() - done).min(MAX_GET);
                    let code = ffi::MPI_Get(
                        dest[done..].as_mut_ptr().cast(),
                        n as i32,
                        byte,
                        *rank as i32,
                        (*offset + done) as ffi::MPI_Aint,
                        n as i32,
                        byte,
                        self.win,
                    );
                    if let Err(e) = check(code, "MPI_Get") {
                        result = Err(e);
                        break 'gets;
                    }
                    done += n;
                }
            }
            let flushed = check(ffi::MPI_Win_flush_all(self.win), "MPI_Win_flush_all");
            let unlocked = check(ffi::MPI_Win_unlock_all(self.win), "MPI_Win_unlock_all");
            result.and(flushed).and(unlocked)
        }
    }
}

impl Drop for MpiWindow {
    /// Collective: every rank drops its window at the same point of the protocol.
    fn drop(&mut self) {
        if !mpi::environment::is_finalized() {
            let _mpi = super::mpi::serialize(self.serialized);
            // SAFETY: our window, freed once.
            unsafe { ffi::MPI_Win_free(&mut self.win) };
        }
    }
}
