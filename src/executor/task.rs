//! TaskContext: what a running task knows about itself and its executor, and what it counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::executor::Executor;

/// What tasks did, summed per stage and per job by the driver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// Partitions of source RDDs (files, collections, ranges) computed.
    pub source_partitions: u64,
    /// Cached partitions found in a block store.
    pub cache_hits: u64,
    /// Cached partitions that had to be computed (first use, evicted or lost).
    pub cache_misses: u64,
    /// The largest memory an executor's block store held (bytes), as it accounts it.
    pub cache_memory_peak: u64,
}

impl TaskMetrics {
    /// Adds `other` (the peak is a maximum).
    pub fn add(&mut self, other: &TaskMetrics) {
        self.source_partitions += other.source_partitions;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.cache_memory_peak = self.cache_memory_peak.max(other.cache_memory_peak);
    }
}

/// Counters a task's computations bump.
#[derive(Debug, Default)]
pub struct TaskCounters {
    pub source_partitions: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Partitions the task stored in its executor's block store: (rdd, partition).
    pub cached: std::sync::Mutex<Vec<(u32, u32)>>,
}

impl TaskCounters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The task stored partition `split` of `rdd` (the driver learns where it lives).
    pub fn note_cached(&self, rdd: u32, split: usize) {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((rdd, split as u32));
    }

    pub fn snapshot(&self) -> TaskMetrics {
        TaskMetrics {
            source_partitions: self.source_partitions.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            cache_memory_peak: 0,
        }
    }
}

/// Handed to every partition computation.
#[derive(Clone)]
pub struct TaskContext {
    pub executor: Arc<Executor>,
    pub job: u64,
    pub stage: u32,
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
