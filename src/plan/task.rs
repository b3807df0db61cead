//! TaskContext: what a running task knows about itself, the stores it reads, and what it counts.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cache::BlockStore;
use crate::ids::{RddId, StageId};
use crate::memory::MemoryManager;
use crate::protocol::TaskMetrics;
use crate::shuffle::store::ShuffleStore;

/// Counters a task's computations bump.
#[derive(Debug, Default)]
pub struct TaskCounters {
    pub source_partitions: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Records and bytes read from shuffles.
    pub shuffle_read_records: AtomicU64,
    pub shuffle_read_bytes: AtomicU64,
    /// Bytes the task wrote to disk because they did not fit the memory budget.
    pub spilled_bytes: AtomicU64,
    /// Partitions the task stored in its executor's block store: (rdd, partition).
    pub cached: std::sync::Mutex<Vec<(RddId, u32)>>,
}

impl TaskCounters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The task spilled `bytes`.
    pub fn add_spill(&self, bytes: u64) {
        self.spilled_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The task stored partition `split` of `rdd` (the driver learns where it lives).
    pub fn note_cached(&self, rdd: RddId, split: usize) {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((rdd, split as u32));
    }

    /// The task read `records` records in `bytes` bytes from a shuffle.
    pub fn note_shuffle_read(&self, records: usize, bytes: usize) {
        self.shuffle_read_records
            .fetch_add(records as u64, Ordering::Relaxed);
        self.shuffle_read_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> TaskMetrics {
        TaskMetrics {
            source_partitions: self.source_partitions.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            shuffle_read_records: self.shuffle_read_records.load(Ordering::Relaxed),
            shuffle_read_bytes: self.shuffle_read_bytes.load(Ordering::Relaxed),
            spilled_bytes: self.spilled_bytes.load(Ordering::Relaxed),
            ..TaskMetrics::default()
        }
    }
}

/// Handed to every partition computation: the task's identity and the stores of the
/// executor that runs it.
#[derive(Clone)]
pub struct TaskContext {
    /// The executor running the task (its world rank).
    pub executor_id: usize,
    /// Cached partitions of persisted RDDs on this executor.
    pub blocks: Arc<BlockStore>,
    /// Map outputs and reduce inputs of shuffles on this executor.
    pub shuffle: Arc<ShuffleStore>,
    pub job: u64,
    pub stage: StageId,
    pub partition: usize,
    pub attempt: u32,
    pub counters: Arc<TaskCounters>,
}

impl TaskContext {
    /// A source RDD computes one of its partitions.
    pub fn count_source_partition(&self) {
        TaskCounters::bump(&self.counters.source_partitions);
    }
}

/// What an operator that holds memory needs of the task running it, but cannot see in
/// its records alone (Spark's `TaskContext.get()`): the executor's budget, where to spill,
/// and the task's counters.
#[derive(Clone)]
pub struct TaskScope {
    pub memory: Arc<MemoryManager>,
    /// A private on-disk directory for spill files, removed with the executor.
    pub spill_dir: PathBuf,
    pub counters: Arc<TaskCounters>,
}

thread_local! {
    static TASK_SCOPE: RefCell<Option<TaskScope>> = const { RefCell::new(None) };
}

/// The scope of the task running on this thread; `None` outside a task.
pub fn task_scope() -> Option<TaskScope> {
    TASK_SCOPE.with(|m| m.borrow().clone())
}

/// The memory budget of the task running on this thread; `None` outside a task.
pub fn task_memory() -> Option<Arc<MemoryManager>> {
    TASK_SCOPE.with(|m| m.borrow().as_ref().map(|s| Arc::clone(&s.memory)))
}

/// Makes `scope` that of what runs on this thread until the guard drops.
pub fn enter_task(scope: TaskScope) -> TaskGuard {
    TASK_SCOPE.with(|m| *m.borrow_mut() = Some(scope));
    TaskGuard
}

/// A scope with `memory`, spilling to the system's temporary directory (tests).
#[cfg(test)]
pub fn enter_task_memory(memory: Arc<MemoryManager>) -> TaskGuard {
    enter_task(TaskScope {
        memory,
        spill_dir: std::env::temp_dir(),
        counters: Arc::default(),
    })
}

/// While it lives, this thread runs a task (see [`enter_task`]).
pub struct TaskGuard;

impl Drop for TaskGuard {
    fn drop(&mut self) {
        TASK_SCOPE.with(|m| *m.borrow_mut() = None);
    }
}
