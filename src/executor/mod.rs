//! The executor: a rank that runs tasks on a pinned rayon pool and answers the driver.

pub mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::BlockStore;
use crate::config::EngineArgs;
use crate::failure::fatal;
use crate::io::scratch::ScratchDir;
use crate::memory::MemoryManager;
use crate::protocol::ExecutorInfo;
use crate::shuffle::exchange::Exchange;
use crate::shuffle::store::ShuffleStore;
use crate::topology::{self, Machine, Placement};
use crate::transport::Group;
pub use crate::transport::Locality;

/// A started executor: its identity, its pinned thread pool and its peers for shuffles.
pub struct Executor {
    pub info: ExecutorInfo,
    pub placement: Placement,
    pub pool: rayon::ThreadPool,
    /// The executors' own group (all ranks but the driver), for shuffle collectives.
    pub peers: Arc<dyn Group>,
    /// Map outputs and reduce blocks of shuffles, in the executor's scratch directory.
    pub shuffle: Arc<ShuffleStore>,
    /// Cached partitions of persisted RDDs, within the memory budget.
    pub blocks: Arc<BlockStore>,
    /// The memory budget, reserved by tasks and shuffle files.
    pub memory: Arc<MemoryManager>,
    pub shuffle_round_bytes: usize,
    pub shuffle_mode: crate::config::ShuffleMode,
    /// The node id of every peer (index = rank in `peers`).
    pub peer_nodes: Vec<usize>,
}

/// Executor `id`'s share of the node's cores (by its `locality`), its thread pinned to
/// them unless the configuration says not to; pinning that fails is logged and the
/// executor runs unpinned.
fn place_and_pin(
    id: usize,
    machine: &Machine,
    locality: &Locality,
    config: &EngineArgs,
) -> Placement {
    let mut placement =
        topology::place(machine, locality.rank, locality.size, config.executor_cores);
    placement.pinned = !config.no_pin;
    if placement.pinned
        && let Err(e) = topology::bind_current_thread(&placement.cores)
    {
        tracing::warn!("executor {id}: {e}; running unpinned");
        placement.pinned = false;
    }
    placement
}

/// Executor `id`'s scratch directory (under `--local-dir`, else the system's temporary
/// directory) and spill directory (under `--spill-dir`, else `$TMPDIR` or `/var/tmp`);
/// the job cannot run without them.
fn scratch_dirs(id: usize, config: &EngineArgs, job_token: &str) -> (ScratchDir, ScratchDir) {
    let local_dir = if config.local_dir.as_os_str().is_empty() {
        std::env::temp_dir()
    } else {
        config.local_dir.clone()
    };
    let scratch = ScratchDir::create(&local_dir, job_token, id).unwrap_or_else(|e| {
        fatal(&format!(
            "executor {id}: cannot create its scratch directory: {e}"
        ))
    });
    let spill_dir = config.spill_dir.clone().unwrap_or_else(|| {
        std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from)
    });
    let spill =
        ScratchDir::create(&spill_dir, &format!("{job_token}-spill"), id).unwrap_or_else(|e| {
            fatal(&format!(
                "executor {id}: cannot create its spill directory: {e}"
            ))
        });
    (scratch, spill)
}

impl Executor {
    /// Places and pins executor `id` by its `locality` and starts its pool; learns every
    /// peer's node (a collective over `peers`). Pinning that fails is logged and the
    /// executor runs unpinned.
    pub fn start(
        id: usize,
        locality: Locality,
        peers: Arc<dyn Group>,
        config: &EngineArgs,
        job_token: &str,
        in_process: bool,
    ) -> Executor {
        let machine = Machine::discover_or_fallback();
        let (node_rank, node_size) = (locality.rank, locality.size);
        let placement = place_and_pin(id, &machine, &locality, config);
        let label = format!("executor {id}");
        let pool = topology::build_pool(&placement, &format!("ember-exec{id}"), {
            let label = label.clone();
            move |i| crate::log::set_thread_label(format!("{label}.{i}"))
        })
        .unwrap_or_else(|e| fatal(&format!("executor {id}: cannot start its thread pool: {e}")));
        let memory_budget = config
            .executor_memory
            .map(|b| b.0)
            .unwrap_or_else(|| crate::memory::default_budget(machine.memory_bytes, node_size));
        // What the executor frees leaves its RSS promptly once its budget is pressed.
        let memory = MemoryManager::for_executor(memory_budget);
        let (scratch, spill) = scratch_dirs(id, config, job_token);
        let peer_nodes = peers
            .all_to_all_counts(&vec![locality.node; peers.size()])
            .unwrap_or_else(|e| fatal(&format!("executor {id}: learning the peers' nodes: {e}")));
        let info = ExecutorInfo {
            id: id.into(),
            host: topology::host_name(),
            pid: std::process::id(),
            node: locality.node,
            node_rank,
            node_size,
            numa_domain: placement.numa_domain,
            cores: placement.cores.iter().map(|c| c.logical).collect(),
            pinned: placement.pinned,
            threads: placement.threads,
            memory_budget,
            in_process,
        };
        tracing::info!(
            "executor {id} on {} (pid {}): numa domain {}, cores {:?}{}, {} threads, budget {}",
            info.host,
            info.pid,
            info.numa_domain,
            info.cores,
            if info.pinned { "" } else { " (unpinned)" },
            info.threads,
            crate::config::ByteSize(info.memory_budget)
        );
        Executor {
            info,
            placement,
            pool,
            peers,
            blocks: Arc::new(BlockStore::new(Arc::clone(&memory), scratch.path())),
            shuffle: Arc::new(ShuffleStore::new(scratch, spill, Arc::clone(&memory))),
            memory,
            shuffle_round_bytes: (config.shuffle_round_bytes.0 as usize).clamp(1 << 10, 1 << 30),
            shuffle_mode: config.shuffle_mode,
            peer_nodes,
        }
    }

    /// What an exchange of this executor's shuffles works with.
    pub fn exchange_env(&self) -> Exchange<'_> {
        Exchange {
            peers: self.peers.as_ref(),
            first_id: self.info.id.rank() - self.peers.rank(),
            store: &self.shuffle,
            peer_nodes: &self.peer_nodes,
            mode: self.shuffle_mode,
            round_bytes: self.shuffle_round_bytes,
            fault: crate::faults::shuffle_fault(self.info.id.rank()),
        }
    }
}
