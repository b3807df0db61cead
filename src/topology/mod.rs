//! Topology finds the node's NUMA domains and cores (hwloc), places executors on them and pins threads.
//!
//! hwloc2 2.2 panics when asked for `NUMANode` objects on hwloc 2.x (NUMA nodes became
//! memory children), so domains are derived from what works: every core's `nodeset`
//! names the NUMA nodes local to it. That keeps the chosen `hwloc2` crate and avoids
//! `hwlocality`'s extra link dependency (libudev).
//!
//! [`place`] is pure (unit-tested); [`Machine::discover`] and [`bind_current_thread`]
//! touch the system and degrade to "unpinned" with a warning, never an error for the job.

mod placement;

pub use placement::{Placement, place};

use hwloc2::{ObjectType, Topology};

/// Errors from reading or applying the topology. Callers log them and run unpinned.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("hwloc could not load the machine topology")]
    Load,
    #[error("hwloc reports no cores")]
    NoCores,
    #[error("binding to PUs {pus:?} failed: {reason}")]
    Bind { pus: Vec<u32>, reason: String },
}

/// One physical core: its logical index and the OS indices of its hardware threads (PUs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Core {
    pub logical: u32,
    pub pus: Vec<u32>,
}

/// A NUMA domain: memory plus the cores closest to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaDomain {
    pub os_index: u32,
    pub cores: Vec<Core>,
}

/// What an executor needs to know about the node it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub domains: Vec<NumaDomain>,
    /// Bytes of memory on the node.
    pub memory_bytes: u64,
}

impl Machine {
    /// Reads the node through hwloc.
    pub fn discover() -> Result<Machine, TopologyError> {
        let topo = Topology::new().ok_or(TopologyError::Load)?;
        let root = topo.object_at_root();
        let memory_bytes = physical_memory();
        let numa_ids: Vec<u32> = root
            .nodeset()
            .map(|set| set.into_iter().collect())
            .unwrap_or_default();
        let cores = topo
            .objects_with_type(&ObjectType::Core)
            .map_err(|_| TopologyError::NoCores)?;
        if cores.is_empty() {
            return Err(TopologyError::NoCores);
        }
        let numa_ids = if numa_ids.is_empty() {
            vec![0]
        } else {
            numa_ids
        };
        let mut domains: Vec<NumaDomain> = numa_ids
            .iter()
            .map(|&os_index| NumaDomain {
                os_index,
                cores: Vec::new(),
            })
            .collect();
        for core in cores {
            let pus: Vec<u32> = core
                .cpuset()
                .map(|s| s.into_iter().collect())
                .unwrap_or_default();
            if pus.is_empty() {
                continue; // a core outside our allowed cpuset
            }
            let local = core.nodeset().and_then(|s| s.into_iter().next());
            let slot = local
                .and_then(|id| domains.iter().position(|d| d.os_index == id))
                .unwrap_or(0);
            domains[slot].cores.push(Core {
                logical: core.logical_index(),
                pus,
            });
        }
        domains.retain(|d| !d.cores.is_empty());
        if domains.is_empty() {
            return Err(TopologyError::NoCores);
        }
        Ok(Machine {
            domains,
            memory_bytes,
        })
    }

    /// A machine of one domain with `cores` single-PU cores: the fallback when hwloc fails.
    pub fn uniform(cores: usize, memory_bytes: u64) -> Machine {
        Machine {
            domains: vec![NumaDomain {
                os_index: 0,
                cores: (0..cores.max(1) as u32)
                    .map(|i| Core {
                        logical: i,
                        pus: vec![i],
                    })
                    .collect(),
            }],
            memory_bytes,
        }
    }

    /// hwloc's view, or, when hwloc fails, a uniform machine sized by the OS (logged).
    pub fn discover_or_fallback() -> Machine {
        Machine::discover().unwrap_or_else(|e| {
            tracing::warn!("{e}; assuming one NUMA domain and running unpinned");
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Machine::uniform(cores, physical_memory())
        })
    }

    pub fn core_count(&self) -> usize {
        self.domains.iter().map(|d| d.cores.len()).sum()
    }
}

/// Bytes of physical memory the OS reports (hwloc2's root memory figure is unreliable).
pub fn physical_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && page > 0 {
        pages as u64 * page as u64
    } else {
        0
    }
}

/// Binds the calling thread to the PUs of `cores`. On Linux by the kernel's affinity call,
/// as hwloc binds a thread there, without loading a topology: hwloc reads the whole node
/// (its caches, NUMA nodes and PCI devices) on every load, and an executor binds its main
/// thread and each of its workers (on a node of many cores, as many loads as threads, all
/// at start-up; here each took longer than the call itself by far).
pub fn bind_current_thread(cores: &[Core]) -> Result<(), TopologyError> {
    let pus: Vec<u32> = cores.iter().flat_map(|c| c.pus.iter().copied()).collect();
    affinity::set(&pus).map_err(|reason| TopologyError::Bind { pus, reason })
}

/// The OS indices of the PUs the calling thread may run on, as the kernel reports them.
pub fn current_thread_pus() -> Option<Vec<u32>> {
    affinity::get()
}

#[cfg(target_os = "linux")]
mod affinity {
    /// A CPU mask as the kernel's affinity calls take it: bit `i` of word `i / 64`.
    fn mask_of(pus: &[u32]) -> Vec<u64> {
        let words = pus.iter().max().map_or(1, |&m| m as usize / 64 + 1);
        let mut mask = vec![0u64; words];
        for &pu in pus {
            mask[pu as usize / 64] |= 1 << (pu % 64);
        }
        mask
    }

    /// Binds the calling thread to `pus` (thread id 0: the caller).
    pub fn set(pus: &[u32]) -> Result<(), String> {
        if pus.is_empty() {
            return Err("no PUs to bind to".to_string());
        }
        let mask = mask_of(pus);
        // SAFETY: the mask is `mask.len()` whole words the call only reads.
        let rc = unsafe {
            libc::sched_setaffinity(0, std::mem::size_of_val(&mask[..]), mask.as_ptr().cast())
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().to_string())
        }
    }

    /// The PUs the calling thread may run on; `None` if the kernel will not say.
    pub fn get() -> Option<Vec<u32>> {
        // The kernel refuses a mask shorter than its own (EINVAL): grow until it fits.
        let mut words = 16;
        loop {
            let mut mask = vec![0u64; words];
            // SAFETY: the kernel writes at most `mask.len()` whole words into the mask.
            let rc = unsafe {
                libc::sched_getaffinity(
                    0,
                    std::mem::size_of_val(&mask[..]),
                    mask.as_mut_ptr().cast(),
                )
            };
            if rc == 0 {
                let pus = mask
                    .iter()
                    .enumerate()
                    .flat_map(|(w, &bits)| {
                        (0..64)
                            .filter(move |b| bits >> b & 1 == 1)
                            .map(move |b| (w * 64 + b) as u32)
                    })
                    .collect();
                return Some(pus);
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
                || words > 1 << 16
            {
                return None;
            }
            words *= 2;
        }
    }

    #[cfg(test)]
    #[test]
    fn a_mask_holds_exactly_its_pus_past_the_first_word() {
        let mask = mask_of(&[0, 3, 64, 130]);
        assert_eq!(mask, vec![0b1001, 1, 1 << 2]);
        assert_eq!(mask_of(&[]), vec![0]);
    }
}

/// Elsewhere hwloc binds (a topology loaded per call).
#[cfg(not(target_os = "linux"))]
mod affinity {
    use hwloc2::{CpuBindFlags, CpuSet, Topology};

    pub fn set(pus: &[u32]) -> Result<(), String> {
        let mut topo = Topology::new().ok_or("hwloc could not load the topology")?;
        let mut set = CpuSet::new();
        for &pu in pus {
            set.set(pu);
        }
        topo.set_cpubind(set, CpuBindFlags::CPUBIND_THREAD)
            .map_err(|e| format!("{e:?}"))
    }

    pub fn get() -> Option<Vec<u32>> {
        let topo = Topology::new()?;
        topo.get_cpubind(CpuBindFlags::CPUBIND_THREAD)
            .map(|s| s.into_iter().collect())
    }
}

/// A rayon pool of `placement.threads` workers named `{name}-{i}`, worker `i` pinned to
/// core `i mod cores`; `on_start` runs first on every worker (e.g. to set its log label).
/// Pinning failures are logged once per worker and the worker runs unpinned.
pub fn build_pool(
    placement: &Placement,
    name: &str,
    on_start: impl Fn(usize) + Send + Sync + 'static,
) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let cores = placement.cores.clone();
    let pin = placement.pinned;
    let name = name.to_string();
    rayon::ThreadPoolBuilder::new()
        .num_threads(placement.threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .start_handler(move |i| {
            on_start(i);
            if pin && !cores.is_empty() {
                let core = &cores[i % cores.len()];
                if let Err(e) = bind_current_thread(std::slice::from_ref(core)) {
                    tracing::warn!("worker {i}: {e}; running unpinned");
                }
            }
        })
        .build()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_finds_the_cores_the_os_reports() {
        let machine = Machine::discover().expect("hwloc works on the test machine");
        let os = std::thread::available_parallelism().unwrap().get();
        let pus: usize = machine
            .domains
            .iter()
            .flat_map(|d| &d.cores)
            .map(|c| c.pus.len())
            .sum();
        assert!(machine.core_count() >= 1);
        assert!(pus >= os, "hwloc sees {pus} PUs, the OS {os}");
        assert!(machine.memory_bytes > 0);
    }

    #[test]
    fn a_bound_thread_runs_only_on_its_core() {
        let machine = Machine::discover().unwrap();
        let core = machine.domains[0].cores.last().unwrap().clone();
        let got = std::thread::spawn(move || {
            bind_current_thread(std::slice::from_ref(&core)).map(|_| {
                // Where the kernel runs the thread now, asked without the affinity mask.
                // SAFETY: no preconditions.
                let cpu = unsafe { libc::sched_getcpu() };
                (core, current_thread_pus(), cpu)
            })
        })
        .join()
        .unwrap();
        match got {
            Ok((core, Some(pus), cpu)) => {
                assert_eq!(pus, core.pus);
                assert!(core.pus.contains(&(cpu as u32)), "runs on {cpu}");
            }
            Ok((_, None, _)) => panic!("binding succeeded but cannot be read back"),
            // Containers may forbid binding; then the error must say which PUs failed.
            Err(TopologyError::Bind { pus, .. }) => assert!(!pus.is_empty()),
            Err(e) => panic!("unexpected: {e}"),
        }
    }

    #[test]
    fn pool_workers_are_pinned_round_robin() {
        let machine = Machine::discover().unwrap();
        let p = place(&machine, 0, 1, Some(3));
        let pool = build_pool(&p, "test-pool", |_| {}).unwrap();
        let seen: Vec<(usize, Option<Vec<u32>>)> =
            pool.broadcast(|ctx| (ctx.index(), current_thread_pus()));
        for (i, pus) in seen {
            let expect = &p.cores[i % p.cores.len()].pus;
            assert_eq!(pus.as_ref(), Some(expect), "worker {i}");
        }
    }
}
