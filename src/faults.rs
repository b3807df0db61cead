//! Test fault hooks: faults a test injects into a real job through `EMBER_TEST_*` variables.
//!
//! Every hook the engine has is here, read in one place, so production code asks a typed
//! question ("should this executor corrupt its shuffle data?") and the list of what tests
//! can break is one screen. Unset variables cost one environment lookup per call site.

use std::sync::atomic::{AtomicU64, Ordering};

/// Damage an executor does to its own shuffle data (`EMBER_TEST_SHUFFLE_FAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShuffleFault {
    /// `corrupt:<executor>`: its map data is overwritten with garbage before the exchange.
    Corrupt,
    /// `truncate:<executor>`: it sends one byte less than it announces.
    Truncate,
    /// `fail:<executor>`: its exchange fails after the metadata step, as a missing map
    /// file or a full disk would, while the others go on.
    Fail,
    /// `fail-prepare:<executor>`: it fails before the metadata step.
    FailPrepare,
    /// `fail-round:<executor>`: it fails after its second data round (or its only one).
    FailRound,
    /// `fail-window:<executor>`: it fails filling its one-sided window (rma mode).
    FailWindow,
}

/// The fault executor `me` must inject into its exchanges, if any.
pub fn shuffle_fault(me: usize) -> Option<ShuffleFault> {
    parse_shuffle_fault(&std::env::var("EMBER_TEST_SHUFFLE_FAULT").ok()?, me)
}

fn parse_shuffle_fault(spec: &str, me: usize) -> Option<ShuffleFault> {
    let (kind, who) = spec.split_once(':')?;
    let kind = match kind {
        "corrupt" => ShuffleFault::Corrupt,
        "truncate" => ShuffleFault::Truncate,
        "fail" => ShuffleFault::Fail,
        "fail-prepare" => ShuffleFault::FailPrepare,
        "fail-round" => ShuffleFault::FailRound,
        "fail-window" => ShuffleFault::FailWindow,
        _ => return None,
    };
    (who.parse::<usize>().ok()? == me).then_some(kind)
}

/// `EMBER_TEST_DECOMMISSION=E:J:S`: the executor to take out of service when job `job`
/// reaches stage `stage`.
pub fn decommission_at(job: u64, stage: u32) -> Option<usize> {
    parse_decommission(&std::env::var("EMBER_TEST_DECOMMISSION").ok()?, job, stage)
}

fn parse_decommission(spec: &str, job: u64, stage: u32) -> Option<usize> {
    let (executor, at) = spec.split_once(':')?;
    is_at(at, job, stage)
        .then(|| executor.parse().ok())
        .flatten()
}

/// Whether `spec` is `J:S` naming job `job` and its stage `stage`.
fn is_at(spec: &str, job: u64, stage: u32) -> bool {
    let mut parts = spec.split(':').map(str::parse::<u64>);
    matches!(
        (parts.next(), parts.next()),
        (Some(Ok(j)), Some(Ok(s))) if j == job && s == stage as u64
    )
}

/// `EMBER_TEST_DROP_CACHE=J:S`: whether executor `me` must drop every cached block (as an
/// eviction would) now that a task of job `J`'s stage `S` reaches it — once per executor,
/// so the stage's recovery does not lose them again.
pub fn drop_cache_at(job: u64, stage: u32, me: usize) -> bool {
    let Ok(spec) = std::env::var("EMBER_TEST_DROP_CACHE") else {
        return false;
    };
    let due = is_at(&spec, job, stage);
    static DROPPED: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
    let mut dropped = DROPPED.lock().unwrap_or_else(|p| p.into_inner());
    let first = due && !dropped.contains(&me);
    if first {
        dropped.push(me);
    }
    first
}

/// `EMBER_TEST_STOP_AFTER_CHECKPOINTS=N`: counts a written checkpoint and says whether the
/// job must now stop (on every rank alike, as if it were killed) — after the N-th.
pub fn stop_after_checkpoint() -> Option<u64> {
    static WRITTEN: AtomicU64 = AtomicU64::new(0);
    let written = WRITTEN.fetch_add(1, Ordering::SeqCst) + 1;
    let limit = std::env::var("EMBER_TEST_STOP_AFTER_CHECKPOINTS")
        .ok()?
        .parse::<u64>()
        .ok()?;
    (written >= limit).then_some(written)
}

/// `EMBER_TEST_RMA_FAIL`: one-sided windows cannot be made (tests the fallback).
pub fn rma_disabled() -> bool {
    std::env::var_os("EMBER_TEST_RMA_FAIL").is_some()
}

/// `EMBER_TEST_SERVE_PANIC=<executor>`: that executor's serve loop (not a task) panics
/// when a job begins, as a bug in the engine's own code there would.
pub fn serve_panic(me: usize) -> bool {
    std::env::var("EMBER_TEST_SERVE_PANIC").is_ok_and(|v| v.parse::<usize>() == Ok(me))
}

/// `EMBER_TEST_SIGNAL_AT_START`: every rank sends itself SIGUSR1 before MPI starts, as
/// Slurm's early time-limit signal can.
pub fn signal_at_start() -> bool {
    std::env::var_os("EMBER_TEST_SIGNAL_AT_START").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_to_typed_faults() {
        // Parsed from strings: setting the variables would reach other tests' threads.
        assert_eq!(
            parse_shuffle_fault("truncate:3", 3),
            Some(ShuffleFault::Truncate)
        );
        assert_eq!(parse_shuffle_fault("fail:2", 2), Some(ShuffleFault::Fail));
        assert_eq!(parse_shuffle_fault("truncate:3", 2), None);
        assert_eq!(parse_shuffle_fault("melt:3", 3), None);
        assert_eq!(parse_decommission("2:1:0", 1, 0), Some(2));
        assert_eq!(parse_decommission("2:1:0", 1, 1), None);
    }
}
