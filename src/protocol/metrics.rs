//! TaskMetrics: what tasks did, reported to the driver and summed per stage and job.

use serde::{Deserialize, Serialize};

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
    /// Bytes written to disk because they did not fit an executor's memory budget (map
    /// output spilled by tasks, shuffle files placed on disk instead of in memory).
    pub spilled_bytes: u64,
    /// The most an executor had reserved against its budget at once (bytes).
    pub memory_peak: u64,
}

impl TaskMetrics {
    /// Adds `other` (the peak is a maximum).
    pub fn add(&mut self, other: &TaskMetrics) {
        self.source_partitions += other.source_partitions;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.cache_memory_peak = self.cache_memory_peak.max(other.cache_memory_peak);
        self.spilled_bytes += other.spilled_bytes;
        self.memory_peak = self.memory_peak.max(other.memory_peak);
    }
}
