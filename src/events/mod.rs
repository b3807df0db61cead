//! The event log and progress: what the driver saw happen, as JSON lines and live lines.
//!
//! The driver posts an [`Event`] at each step of an application (start, each job, stage,
//! task and exchange, the end) to its [`Listeners`]: the [`EventLog`] writes each as one
//! JSON line (flushed at once, so a crash leaves a readable log up to the failure), and
//! [`Progress`] shows the running stages. `ember history` reads the log back
//! ([`read_events`]) and draws a report. The schema is written down in `README.md` beside
//! this file; [`SCHEMA_VERSION`] changes when a field changes meaning or goes away.

pub mod log;
pub mod progress;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ShuffleId, StageId};
use crate::protocol::{ExecutorInfo, TaskMetrics, TaskTiming};

pub use log::{EventLog, read_events};
pub use progress::{Progress, ProgressMode};

/// The version of the event log's schema, in every `application_start` event.
pub const SCHEMA_VERSION: u32 = 1;

/// One thing that happened, one line of the event log. Times are microseconds since the
/// Unix epoch (`*_us`); task times come from the executor's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    ApplicationStart {
        schema: u32,
        /// The log's file name without `.jsonl`.
        app_id: String,
        /// The program and its arguments.
        command: Vec<String>,
        /// `local` or `cluster`.
        mode: String,
        time_us: u64,
        executors: Vec<ExecutorInfo>,
        /// Engine settings by option name.
        settings: BTreeMap<String, String>,
    },
    JobStart {
        job: u64,
        name: String,
        time_us: u64,
        /// Every stage of the job's lineage, parents first.
        stages: Vec<StageInfo>,
    },
    /// A stage's output exists already, or no stage of the job needs it.
    StageSkipped {
        job: u64,
        stage: StageId,
        reason: String,
        time_us: u64,
    },
    StageStart {
        job: u64,
        stage: StageId,
        tasks: usize,
        time_us: u64,
    },
    /// One task attempt ended: `failure` is `None` on success.
    TaskEnd {
        job: u64,
        stage: StageId,
        partition: u32,
        attempt: u32,
        executor: usize,
        timing: TaskTiming,
        metrics: TaskMetrics,
        failure: Option<String>,
    },
    /// Every task of the stage succeeded; `metrics` are their sum.
    StageEnd {
        job: u64,
        stage: StageId,
        tasks: usize,
        time_us: u64,
        metrics: TaskMetrics,
    },
    /// The stage ended without every task succeeding: `failure` is why (a task failed
    /// too often, a shuffle it read was lost with its executor, ...). A stage run again
    /// afterwards (its lost input recomputed) starts again.
    StageFailed {
        job: u64,
        stage: StageId,
        time_us: u64,
        failure: String,
    },
    Exchange {
        job: u64,
        shuffle: ShuffleId,
        /// `alltoallv`, `rma` or `in place` (co-located executors read map files directly).
        mode: String,
        bytes: u64,
        cross_node: u64,
        rounds: u32,
        seconds: f64,
        time_us: u64,
    },
    /// The driver let a shuffle's files go: every stage of the job that reads it has read
    /// it (or reads it through a wholly cached RDD), or no later stage can need it.
    ShuffleRemoved {
        job: u64,
        shuffle: ShuffleId,
        time_us: u64,
    },
    /// `failure` is `None` when the job succeeded.
    JobEnd {
        job: u64,
        time_us: u64,
        failure: Option<String>,
    },
    /// The peak resident memory of every rank (0 is the driver), gathered at the end.
    MemoryPeaks {
        time_us: u64,
        peaks: Vec<(usize, u64)>,
    },
    ApplicationEnd {
        time_us: u64,
        /// `succeeded` or `failed`.
        status: String,
        exit_code: i32,
        failure: Option<String>,
    },
}

/// A stage as planned: what it computes and which stages it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageInfo {
    pub stage: StageId,
    /// `shuffle_map` or `result`.
    pub kind: String,
    /// The shuffle a map stage writes.
    pub shuffle: Option<ShuffleId>,
    pub partitions: usize,
    pub parents: Vec<StageId>,
    /// The stage's RDDs, one per line, down to the shuffles it reads (like `explain()`).
    pub lineage: String,
}

/// Where the driver's events go: the event log and the progress display, each optional.
#[derive(Default)]
pub struct Listeners {
    pub log: Option<EventLog>,
    pub progress: Option<Progress>,
}

impl Listeners {
    pub fn post(&mut self, event: &Event) {
        if let Some(log) = &self.log {
            log.write(event);
        }
        if let Some(progress) = &mut self.progress {
            progress.on_event(event);
        }
    }
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("log", &self.log.as_ref().map(EventLog::path))
            .field("progress", &self.progress.is_some())
            .finish()
    }
}
