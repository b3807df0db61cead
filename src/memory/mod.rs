//! An executor's memory budget (`--executor-memory`): what its tasks and stores hold is
//! reserved here, and a reservation that does not fit makes its holder spill to disk
//! (Spark's execution memory), so the executor stays within the budget instead of being
//! killed by the node's or Slurm's memory limit.
//!
//! The default budget is 3/4 of the memory this process may use, shared by the executors
//! of its node: the smallest of the machine's memory, the cgroup limit (`memory.max`, as
//! Slurm sets for a job) and Slurm's `--mem`/`--mem-per-cpu`.

pub mod allocator;
pub mod estimate;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Reservations against one executor's budget.
#[derive(Debug)]
pub struct MemoryManager {
    budget: u64,
    reserved: AtomicU64,
    peak: AtomicU64,
    spilled: AtomicU64,
    /// Whether this is the process's executor budget, which sets how soon the allocator
    /// returns freed memory (`allocator::set_memory_pressure`).
    drives_allocator: bool,
    /// Whether the reservations passed half the budget (and have not fallen under a
    /// quarter since).
    pressed: AtomicBool,
}

impl MemoryManager {
    pub fn new(budget: u64) -> Arc<Self> {
        Arc::new(Self::with_budget(budget, false))
    }

    /// The budget of an executor process: freed memory stays resident for reuse while the
    /// reservations are under half of it, and is returned promptly past that (see
    /// `allocator`).
    pub fn for_executor(budget: u64) -> Arc<Self> {
        allocator::set_memory_pressure(false);
        Arc::new(Self::with_budget(budget, true))
    }

    fn with_budget(budget: u64, drives_allocator: bool) -> Self {
        MemoryManager {
            budget,
            reserved: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
            drives_allocator,
            pressed: AtomicBool::new(false),
        }
    }

    /// Tells the allocator when the reservations, now `reserved`, pass half the budget or
    /// fall back under a quarter of it.
    fn note_pressure(&self, reserved: u64) {
        if !self.drives_allocator {
            return;
        }
        let pressed = if reserved > self.budget / 2 {
            true
        } else if reserved < self.budget / 4 {
            false
        } else {
            return;
        };
        if self.pressed.swap(pressed, Ordering::Relaxed) != pressed {
            allocator::set_memory_pressure(pressed);
        }
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Reserves `bytes` if they fit in what is left of the budget.
    pub fn try_reserve(&self, bytes: u64) -> bool {
        let fitted = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(bytes).filter(|&after| after <= self.budget)
            });
        match fitted {
            Ok(before) => {
                self.peak.fetch_max(before + bytes, Ordering::Relaxed);
                self.note_pressure(before + bytes);
                true
            }
            Err(_) => false,
        }
    }

    /// Returns `bytes` reserved earlier.
    pub fn release(&self, bytes: u64) {
        let before = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_sub(bytes))
            });
        let before = before.unwrap_or_else(|now| now);
        self.note_pressure(before.saturating_sub(bytes));
    }

    /// Bytes reserved now.
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::Acquire)
    }

    /// The most ever reserved at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Counts `bytes` written to disk because they did not fit.
    pub fn note_spill(&self, bytes: u64) {
        self.spilled.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes spilled since the executor started.
    pub fn spilled(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    /// A reservation that grows with what its holder keeps, released when dropped.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            memory: Arc::clone(self),
            bytes: 0,
        }
    }
}

/// Bytes one holder (a task's buckets, a file in tmpfs) has reserved.
#[derive(Debug)]
pub struct Reservation {
    memory: Arc<MemoryManager>,
    bytes: u64,
}

impl Reservation {
    /// Grows the reservation to at least `bytes`; false (unchanged) if that does not fit.
    pub fn grow_to(&mut self, bytes: u64) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        let ok = self.memory.try_reserve(bytes - self.bytes);
        if ok {
            self.bytes = bytes;
        }
        ok
    }

    /// Gives back what the reservation holds past `bytes` (a holder that needed more for a
    /// while, as a sort does for its room).
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.memory.release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// Gives everything back (after a spill).
    pub fn clear(&mut self) {
        self.memory.release(self.bytes);
        self.bytes = 0;
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn manager(&self) -> &Arc<MemoryManager> {
        &self.memory
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The default budget of one of `executors` executors on a machine of `machine_bytes`.
pub fn default_budget(machine_bytes: u64, executors: usize) -> u64 {
    let limit = [Some(machine_bytes), cgroup_limit(), slurm_limit()]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(machine_bytes);
    limit / 4 * 3 / executors.max(1) as u64
}

/// The memory limit of this process's cgroup (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`), the smallest along its path; `None` when unlimited.
pub fn cgroup_limit() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroup_limit_in(Path::new("/sys/fs/cgroup"), &membership)
}

fn cgroup_limit_in(root: &Path, membership: &str) -> Option<u64> {
    let mut limits = Vec::new();
    for line in membership.lines() {
        // `hierarchy-id:controllers:path`; v2 is `0::/path`.
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let (base, file) = match controllers {
            "" => (root.to_path_buf(), "memory.max"),
            c if c.split(',').any(|c| c == "memory") => {
                (root.join("memory"), "memory.limit_in_bytes")
            }
            _ => continue,
        };
        let mut dir = base.join(path.trim_start_matches('/'));
        loop {
            if let Some(limit) = read_limit(&dir.join(file)) {
                limits.push(limit);
            }
            if dir == base || !dir.pop() {
                break;
            }
        }
    }
    limits.into_iter().min()
}

/// A limit file's value; `max` and v1's "no limit" (near 2^63) are none.
fn read_limit(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.trim().parse::<u64>().ok().filter(|&v| v < 1 << 60)
}

/// Slurm's memory per node for this job step: `--mem` (SLURM_MEM_PER_NODE, MiB) or
/// `--mem-per-cpu` times the CPUs on this node.
pub fn slurm_limit() -> Option<u64> {
    let var = |k: &str| std::env::var(k).ok()?.trim().parse::<u64>().ok();
    if let Some(mib) = var("SLURM_MEM_PER_NODE") {
        return Some(mib << 20);
    }
    Some((var("SLURM_MEM_PER_CPU")? << 20) * var("SLURM_CPUS_ON_NODE")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_budget_and_come_back() {
        let m = MemoryManager::new(100);
        let mut a = m.reservation();
        assert!(a.grow_to(60));
        let mut b = m.reservation();
        assert!(!b.grow_to(41), "over the budget");
        assert!(b.grow_to(40));
        assert_eq!(m.reserved(), 100);
        drop(a);
        assert_eq!(m.reserved(), 40);
        b.shrink_to(50);
        assert_eq!(m.reserved(), 40, "shrinking never grows");
        b.shrink_to(15);
        assert_eq!((m.reserved(), b.bytes()), (15, 15));
        b.clear();
        assert_eq!((m.reserved(), m.peak()), (0, 100));
    }

    /// The only test that drives the allocator's (process-wide) purge delay.
    #[test]
    #[cfg(feature = "mimalloc")]
    fn an_executor_budget_returns_freed_memory_promptly_only_while_pressed() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment decides
        }
        use allocator::{PURGE_DELAY_MS, RELAXED_PURGE_DELAY_MS, purge_delay_ms};
        let m = MemoryManager::for_executor(1000);
        assert_eq!(purge_delay_ms(), Some(RELAXED_PURGE_DELAY_MS));
        let mut a = m.reservation();
        assert!(a.grow_to(500));
        assert_eq!(
            purge_delay_ms(),
            Some(RELAXED_PURGE_DELAY_MS),
            "half is not pressed"
        );
        assert!(a.grow_to(501));
        assert_eq!(purge_delay_ms(), Some(PURGE_DELAY_MS), "past half");
        m.release(250);
        assert_eq!(
            purge_delay_ms(),
            Some(PURGE_DELAY_MS),
            "still over a quarter"
        );
        drop(a);
        assert_eq!(
            purge_delay_ms(),
            Some(RELAXED_PURGE_DELAY_MS),
            "under a quarter"
        );
        // A budget of a task or a store in a test never touches the allocator.
        let other = MemoryManager::new(10);
        assert!(other.try_reserve(10));
        assert_eq!(purge_delay_ms(), Some(RELAXED_PURGE_DELAY_MS));
    }

    #[test]
    fn the_smallest_cgroup_limit_on_the_path_counts() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("slurm/job_7/step_0");
        std::fs::create_dir_all(&job).unwrap();
        std::fs::write(root.path().join("slurm/job_7/memory.max"), "1073741824\n").unwrap();
        std::fs::write(job.join("memory.max"), "max\n").unwrap();
        assert_eq!(
            cgroup_limit_in(root.path(), "0::/slurm/job_7/step_0\n"),
            Some(1 << 30)
        );
        assert_eq!(cgroup_limit_in(root.path(), "0::/elsewhere\n"), None);
        // v1: the memory controller's hierarchy.
        let v1 = root.path().join("memory/user");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("memory.limit_in_bytes"), "536870912\n").unwrap();
        std::fs::write(
            root.path().join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        assert_eq!(
            cgroup_limit_in(root.path(), "4:cpu:/x\n3:memory:/user\n"),
            Some(1 << 29)
        );
    }
}
