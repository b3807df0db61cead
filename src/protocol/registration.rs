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

/// The host name of this machine (`gethostname`), or `unknown-host`.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // (and truncation is guarded by the explicit search for NUL below).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
