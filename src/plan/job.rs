//! A job: one action, built identically on every rank.

use std::sync::Arc;

use crate::error::Result;
use crate::plan::node::Node;
use crate::plan::task::TaskContext;

/// Computes one partition of the final RDD and encodes the action's per-partition result.
pub type ResultFn = Arc<dyn Fn(usize, &TaskContext) -> Result<Vec<u8>> + Send + Sync>;

/// One action, built identically on every rank.
pub struct Job {
    pub id: u64,
    /// The action, e.g. `collect`.
    pub name: String,
    pub final_rdd: Arc<dyn Node>,
    /// Partitions of the final RDD the action needs (all, or a prefix for `take`).
    pub partitions: Vec<usize>,
    pub result_fn: ResultFn,
    /// The most bytes the action's results may total (0: no limit).
    pub max_result_bytes: u64,
}
