//! The control messages between driver and executors, and the tags they travel under.
//! The protocol is drawn in `README.md` beside this file.

use serde::{Deserialize, Serialize};

use crate::ids::{ExecutorId, RddId, ShuffleId, StageId};
use crate::protocol::{TaskMetrics, TaskTiming};
use crate::transport::Tag;

/// Driver to executor control messages.
pub const TO_EXECUTOR: Tag = Tag(10);
/// Executor to driver reports.
pub const TO_DRIVER: Tag = Tag(11);
/// Empty liveness messages, both ways (see `context::liveness`).
pub const HEARTBEAT: Tag = Tag(12);

/// What the driver tells an executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToExecutor {
    /// The driver starts job `job`: answer `Ready` with the lineage fingerprint.
    BeginJob { job: u64 },
    /// Run one task. `partition` is the partition of the stage's RDD.
    RunTask {
        job: u64,
        stage: StageId,
        partition: u32,
        attempt: u32,
    },
    /// Before the map stage of `shuffle`: `owners[r]` is the executor id that will own
    /// reduce partition `r` (map tasks group their output by owner).
    PrepareShuffle {
        job: u64,
        shuffle: ShuffleId,
        owners: Vec<ExecutorId>,
    },
    /// Every map task of `shuffle` is done: exchange the outputs.
    Exchange { job: u64, shuffle: ShuffleId },
    /// The job is over: its per-partition results, or the reason it failed, and the
    /// value of every accumulator after it.
    EndJob {
        job: u64,
        outcome: Result<Vec<Vec<u8>>, String>,
        accumulators: Vec<(u32, Vec<u8>)>,
        /// Shuffles no longer needed: remove their files.
        obsolete_shuffles: Vec<ShuffleId>,
    },
    /// No remaining stage of `job` reads `shuffle`: delete its map and reduce files.
    RemoveShuffle { job: u64, shuffle: ShuffleId },
    /// This executor is taken out of service: drop its cached blocks.
    Decommission { job: u64 },
    /// The driver's program has ended.
    Shutdown,
}

/// What an executor reports to the driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToDriver {
    Ready {
        job: u64,
        fingerprint: u64,
    },
    TaskDone {
        job: u64,
        stage: StageId,
        partition: u32,
        attempt: u32,
        output: Vec<u8>,
        /// The task's accumulator updates: (accumulator id, encoded partial value).
        accumulators: Vec<(u32, Vec<u8>)>,
        metrics: TaskMetrics,
        timing: TaskTiming,
        /// Partitions the task left cached on its executor: (rdd, partition).
        cached: Vec<(RddId, u32)>,
    },
    TaskFailed {
        job: u64,
        stage: StageId,
        partition: u32,
        attempt: u32,
        message: String,
        timing: TaskTiming,
        /// False when another attempt cannot succeed (a full local disk).
        retry: bool,
        /// The released shuffle the task needed (a cached block it read was gone): its map
        /// stage must run again before the task can.
        lost_shuffle: Option<ShuffleId>,
    },
    ExchangeDone {
        job: u64,
        shuffle: ShuffleId,
        bytes: u64,
        /// Of `bytes`, those from executors on other nodes.
        cross_node: u64,
        rounds: u32,
        /// Remote data came by one-sided `MPI_Get`.
        one_sided: bool,
    },
    ExchangeFailed {
        job: u64,
        shuffle: ShuffleId,
        message: String,
    },
}

/// Encodes a control message (the record codec's raw layout, schema in the Rust types).
pub fn encode<T: Serialize + 'static>(message: &T) -> Vec<u8> {
    crate::codec::encode(message)
}

/// Decodes a control message, naming what was expected when the bytes do not fit.
pub fn decode<T: for<'a> Deserialize<'a> + 'static>(bytes: &[u8], what: &str) -> Result<T, String> {
    crate::codec::decode(bytes)
        .map_err(|e| format!("malformed {what} ({} bytes): {e}", bytes.len()))
}
