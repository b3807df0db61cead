//! How soon the process allocator gives freed memory back to the system.
//!
//! mimalloc (ember's global allocator, `src/lib.rs`) keeps freed pages resident for
//! `purge_delay` before it returns them (v3's default: one second), so memory a task has
//! freed — a combine map outgrown and reallocated, the previous task's buffers — still
//! counts in the executor's RSS while the next allocations are made beside it. The budget
//! (`--executor-memory`) is about what a process holds, and Slurm's cgroup counts RSS:
//! an executor asks for freed pages to be returned within a few milliseconds instead
//! (v2's default), so what it holds stays close to what it uses. The cost is more
//! `madvise` calls and page faults: WordCount's wall time was about 5% longer in paired
//! runs. `MIMALLOC_PURGE_DELAY` (milliseconds) in the environment still decides when set.

/// Milliseconds freed memory may stay resident before mimalloc returns it.
pub const PURGE_DELAY_MS: i64 = 10;

#[cfg(feature = "mimalloc")]
mod ffi {
    use std::ffi::{c_int, c_long};

    /// `mi_option_purge_delay` in mimalloc's `mi_option_t` (v2 and v3 alike).
    pub const OPTION_PURGE_DELAY: c_int = 15;

    unsafe extern "C" {
        /// mimalloc's option getter, and its setter that leaves an option given in the
        /// environment as it is (linked with the allocator by `libmimalloc-sys`).
        pub fn mi_option_set_default(option: c_int, value: c_long);
        pub fn mi_option_get(option: c_int) -> c_long;
    }
}

/// Makes the allocator return freed memory within [`PURGE_DELAY_MS`], unless
/// `MIMALLOC_PURGE_DELAY` says otherwise; nothing when ember is built without its
/// allocator (a job's own allocator is its own business).
pub fn return_freed_memory_promptly() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: setting an option is thread-safe in mimalloc and takes effect for later
    // purges; the option index is part of mimalloc's stable C API.
    unsafe {
        ffi::mi_option_set_default(ffi::OPTION_PURGE_DELAY, PURGE_DELAY_MS as _);
    }
}

/// The allocator's purge delay now, in milliseconds (`None` without ember's allocator).
pub fn purge_delay_ms() -> Option<i64> {
    #[cfg(feature = "mimalloc")]
    // SAFETY: reading an option is thread-safe in mimalloc.
    return Some(unsafe { ffi::mi_option_get(ffi::OPTION_PURGE_DELAY) } as i64);
    #[cfg(not(feature = "mimalloc"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "mimalloc")]
    fn freed_memory_is_returned_within_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment decides
        }
        return_freed_memory_promptly();
        assert_eq!(purge_delay_ms(), Some(PURGE_DELAY_MS));
    }
}
