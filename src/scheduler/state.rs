//! What the driver remembers between jobs (shuffles, cached blocks, executors out of
//! service) and how each exchange went.

use std::collections::{HashMap, HashSet};

use crate::events::{Event, Listeners};
use crate::ids::{ExecutorId, RddId, ShuffleId};
use crate::protocol::TaskMetrics;
use crate::protocol::metrics::now_us;

/// What the driver remembers between jobs.
#[derive(Debug, Default)]
pub struct DriverState {
    /// Exchanged shuffles and the executor owning each reduce partition.
    pub shuffles: HashMap<ShuffleId, Vec<ExecutorId>>,
    /// Every exchange so far, in order.
    pub exchanges: Vec<ExchangeStats>,
    /// Where cached partitions live: (rdd, partition) -> executor. A hint: a block that is
    /// gone by the time its task runs is computed again.
    pub blocks: HashMap<(RddId, u32), ExecutorId>,
    /// Task metrics summed over every job so far.
    pub metrics: TaskMetrics,
    /// Executors taken out of service: no tasks, no reduce partitions.
    pub out_of_service: std::collections::BTreeSet<ExecutorId>,
    /// The event log and progress display.
    pub events: Listeners,
    /// Shuffles a task of the current job found released (it read a cached block that was
    /// gone): needed whatever the cache says, until the next job starts.
    pub lost: HashSet<ShuffleId>,
}

impl DriverState {
    /// Takes `executor` out of service: its cached blocks and every shuffle output count
    /// as lost (shuffle data may have been read in place from its files), so later stages
    /// compute what they need again on the others.
    pub fn decommission(&mut self, executor: ExecutorId) {
        self.out_of_service.insert(executor);
        self.blocks.retain(|_, e| *e != executor);
        self.shuffles.clear();
        tracing::warn!(
            "executor {executor} taken out of service: its blocks and shuffle outputs count as lost"
        );
    }
}

/// How one shuffle exchange went, as the driver saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeStats {
    pub job: u64,
    pub shuffle: ShuffleId,
    /// Bytes received by all executors together.
    pub bytes: u64,
    /// Of `bytes`, those that crossed nodes.
    pub cross_node: u64,
    pub rounds: u32,
    /// Every executor got its remote data by one-sided `MPI_Get`.
    pub one_sided: bool,
    /// From sending `Exchange` to the last `ExchangeDone`.
    pub seconds: f64,
}

impl ExchangeStats {
    /// How the data moved: `rma`, `alltoallv`, or `in place` (no round: co-located
    /// executors read each other's map files).
    pub fn mode(&self) -> &'static str {
        match (self.one_sided, self.rounds) {
            (true, _) => "rma",
            (false, 0) => "in place",
            _ => "alltoallv",
        }
    }

    /// The event log's record of it.
    pub fn event(&self) -> Event {
        Event::Exchange {
            job: self.job,
            shuffle: self.shuffle,
            mode: self.mode().into(),
            bytes: self.bytes,
            cross_node: self.cross_node,
            rounds: self.rounds,
            seconds: self.seconds,
            time_us: now_us(),
        }
    }
}
