//! How soon the process allocator gives freed memory back to the system, by memory
//! pressure.
//!
//! mimalloc (ember's global allocator, `src/lib.rs`) keeps freed pages resident for
//! `purge_delay` before it returns them, so memory a task has freed still counts in the
//! executor's RSS for that long. The budget (`--executor-memory`) is about what a process
//! holds, and Slurm's cgroup counts RSS; but returning pages within milliseconds makes the
//! next task fault in and zero them again (profiled: PageRank at 1 GB spent 45 s of its
//! 200 s of CPU in the kernel with a 10 ms delay, 19 s with 1 s: 105.8 s -> 85.8 s wall,
//! executors 680 -> 780 MiB). So the delay follows the budget: while an executor's
//! reservations are under half its budget, freed pages stay ten seconds
//! ([`RELAXED_PURGE_DELAY_MS`]) and the next task reuses them; past half, they go back
//! within [`PURGE_DELAY_MS`], until the reservations fall under a quarter again.
//! `MIMALLOC_PURGE_DELAY` (milliseconds) in the environment still decides when set.
//!
//! A second (mimalloc v3's default) was still shorter than the reuse: an iteration's map
//! output buckets, its reduce buffers and the clones of cached records are freed at the
//! end of a task or stage and allocated again by the next one a second or more later
//! (PageRank at 256 MB: 2.5 s a stage), so the kernel still zeroed every iteration's
//! pages again (7 of 35 s of CPU in the kernel; with ten seconds 4 of 31).

/// Milliseconds freed memory may stay resident while the executor's budget is pressed.
pub const PURGE_DELAY_MS: i64 = 10;

/// Milliseconds freed memory may stay resident while the executor's budget has room:
/// longer than a stage of an iterative job, whose next stage reuses it.
pub const RELAXED_PURGE_DELAY_MS: i64 = 10_000;

#[cfg(feature = "mimalloc")]
mod ffi {
    use std::ffi::{c_int, c_long};

    /// `mi_option_purge_delay` in mimalloc's `mi_option_t` (v2 and v3 alike).
    pub const OPTION_PURGE_DELAY: c_int = 15;

    unsafe extern "C" {
        /// mimalloc's option getter and setter (linked with the allocator by
        /// `libmimalloc-sys`).
        pub fn mi_option_set(option: c_int, value: c_long);
        pub fn mi_option_get(option: c_int) -> c_long;
    }
}

/// Makes the allocator return freed memory within [`PURGE_DELAY_MS`] when `pressed`,
/// [`RELAXED_PURGE_DELAY_MS`] otherwise, unless `MIMALLOC_PURGE_DELAY` says otherwise;
/// nothing when ember is built without its allocator (a job's own allocator is its own
/// business).
pub fn set_memory_pressure(pressed: bool) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let delay = if pressed {
        PURGE_DELAY_MS
    } else {
        RELAXED_PURGE_DELAY_MS
    };
    #[cfg(feature = "mimalloc")]
    // SAFETY: setting an option is thread-safe in mimalloc and takes effect for later
    // purges; the option index is part of mimalloc's stable C API.
    unsafe {
        ffi::mi_option_set(ffi::OPTION_PURGE_DELAY, delay as _);
    }
    #[cfg(not(feature = "mimalloc"))]
    let _ = delay;
}

/// The allocator's purge delay now, in milliseconds (`None` without ember's allocator).
pub fn purge_delay_ms() -> Option<i64> {
    #[cfg(feature = "mimalloc")]
    // SAFETY: reading an option is thread-safe in mimalloc.
    return Some(unsafe { ffi::mi_option_get(ffi::OPTION_PURGE_DELAY) } as i64);
    #[cfg(not(feature = "mimalloc"))]
    None
}
