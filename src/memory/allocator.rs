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
//! reservations are under half its budget, freed pages stay ten minutes
//! ([`RELAXED_PURGE_DELAY_MS`]) and the next task reuses them; past half, what was freed
//! goes back at once and later frees within [`PURGE_DELAY_MS`], until the reservations
//! fall under a quarter again.
//! `MIMALLOC_PURGE_DELAY` (milliseconds) in the environment still decides when set.
//!
//! A second (mimalloc v3's default) was still shorter than the reuse: an iteration's map
//! output buckets, its reduce buffers and the clones of cached records are freed at the
//! end of a task or stage and allocated again by the next one a second or more later
//! (PageRank at 256 MB: 2.5 s a stage), so the kernel still zeroed every iteration's
//! pages again (7 of 35 s of CPU in the kernel; with ten seconds 4 of 31).
//!
//! Ten seconds was still a purge every ten seconds: mimalloc v3 sets an arena's purge time
//! once, at the first free after the last purge, and then returns everything freed by that
//! time, including what was freed a moment before and is about to be reused. PageRank at
//! 1 GB (45 s) purged its executors' memory four times and zeroed it again in the next
//! stage (the arenas are madvised for transparent huge pages: 2 MiB cleared a fault):
//! a quarter of the first 13 s went to `clear_page`, and with no purge at all the job ran
//! 35.3/36.5 s against 42.4/39.0 s (system 10 s against 12-18 s), its executors' peak RSS
//! the same (1.66 GiB). So with room the delay is ten minutes, longer than any stage; and
//! when the budget becomes pressed, the pages already freed are purged there and then
//! ([`set_memory_pressure`] forces a collect), not at the end of the long delay. Against
//! ten seconds, alternated: 41.0/39.8 s against 43.1/40.0 s, system 10.7/11.1 s against
//! 17.3/12.2 s (the machine's speed drifts more than that between runs).

/// Milliseconds freed memory may stay resident while the executor's budget is pressed.
pub const PURGE_DELAY_MS: i64 = 10;

/// Milliseconds freed memory may stay resident while the executor's budget has room:
/// longer than the stages of an iterative job, whose next stage reuses it, and short
/// enough that an executor left idle gives its pages back.
pub const RELAXED_PURGE_DELAY_MS: i64 = 600_000;

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
        /// Frees what the calling thread's heap holds empty and, with `force`, purges
        /// every arena's freed pages whatever their purge time.
        pub fn mi_collect(force: bool);
    }
}

/// Makes the allocator return freed memory within [`PURGE_DELAY_MS`] when `pressed`
/// (and at once what was freed before), [`RELAXED_PURGE_DELAY_MS`] otherwise, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise; nothing when ember is built without its
/// allocator (a job's own allocator is its own business).
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
    // purges; the option index is part of mimalloc's stable C API. A collect may run on
    // any thread; a forced one purges the arenas' freed pages at once instead of at the
    // long delay's end.
    unsafe {
        ffi::mi_option_set(ffi::OPTION_PURGE_DELAY, delay as _);
        if pressed {
            ffi::mi_collect(true);
        }
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
