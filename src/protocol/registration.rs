//! ExecutorInfo is what an executor reports about itself when it registers with the driver.

use serde::{Deserialize, Serialize};

use crate::ids::ExecutorId;

/// One executor as the driver sees it: where it runs and what it may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    /// Rank in the world group; also the executor's id (the driver is rank 0).
    pub id: ExecutorId,
    pub host: String,
    pub pid: u32,
    /// The node it runs on: the world rank of the node's first executor.
    pub node: usize,
    /// Index among the executors on the same node.
    pub node_rank: usize,
    /// Executors on the same node.
    pub node_size: usize,
    /// OS index of the NUMA domain it is bound to.
    pub numa_domain: u32,
    /// Logical indices of the cores its threads are pinned to.
    pub cores: Vec<u32>,
    /// Whether pinning succeeded.
    pub pinned: bool,
    /// Worker threads in its pool.
    pub threads: usize,
    /// Memory budget in bytes (`--executor-memory`).
    pub memory_budget: u64,
    /// True for the in-process executor of local mode.
    pub in_process: bool,
}
