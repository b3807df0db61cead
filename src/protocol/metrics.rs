//! TaskMetrics: what tasks did, reported to the driver and summed per stage and job.

use serde::{Deserialize, Serialize};

/// What tasks did, summed per stage and per job by the driver (peaks are maxima).
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
    /// Records and bytes read from shuffles (the stage's input across its boundary).
    pub shuffle_read_records: u64,
    pub shuffle_read_bytes: u64,
    /// Records and bytes a map task wrote for the next stage.
    pub shuffle_write_records: u64,
    pub shuffle_write_bytes: u64,
    /// Encoded bytes a result task sent to the driver.
    pub result_bytes: u64,
    /// The executor process's peak resident memory (`VmHWM`) when the task ended.
    pub executor_memory_peak: u64,
    /// Bytes written to disk because they did not fit an executor's memory budget (map
    /// output spilled by tasks, shuffle files placed on disk instead of in memory).
    pub spilled_bytes: u64,
    /// The most an executor had reserved against its budget at once (bytes).
    pub memory_peak: u64,
}

impl TaskMetrics {
    /// Adds `other` (the peaks are maxima).
    pub fn add(&mut self, other: &TaskMetrics) {
        self.source_partitions += other.source_partitions;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.cache_memory_peak = self.cache_memory_peak.max(other.cache_memory_peak);
        self.shuffle_read_records += other.shuffle_read_records;
        self.shuffle_read_bytes += other.shuffle_read_bytes;
        self.shuffle_write_records += other.shuffle_write_records;
        self.shuffle_write_bytes += other.shuffle_write_bytes;
        self.result_bytes += other.result_bytes;
        self.executor_memory_peak = self.executor_memory_peak.max(other.executor_memory_peak);
        self.spilled_bytes += other.spilled_bytes;
        self.memory_peak = self.memory_peak.max(other.memory_peak);
    }
}

/// When and where one task attempt ran, by its executor's clock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTiming {
    /// Microseconds since the Unix epoch.
    pub start_us: u64,
    pub end_us: u64,
    /// The worker thread of the executor's pool (its index).
    pub thread: u32,
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// This process's peak resident memory in bytes (`VmHWM` of `/proc/self/status`), 0 where
/// it cannot be read.
pub fn process_memory_peak() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_and_peaks_take_the_maximum() {
        let mut a = TaskMetrics {
            shuffle_read_records: 3,
            executor_memory_peak: 10,
            ..TaskMetrics::default()
        };
        a.add(&TaskMetrics {
            shuffle_read_records: 4,
            executor_memory_peak: 7,
            ..TaskMetrics::default()
        });
        assert_eq!((a.shuffle_read_records, a.executor_memory_peak), (7, 10));
    }

    #[test]
    fn this_process_has_a_memory_peak() {
        assert!(process_memory_peak() > 1 << 20);
    }
}
