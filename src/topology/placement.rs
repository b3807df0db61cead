//! Placement decides which NUMA domain and cores an executor gets from its node-local index.

use super::{Core, Machine};

/// Where one executor runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// OS index of the NUMA domain the executor is bound to.
    pub numa_domain: u32,
    /// Cores its worker threads are pinned to (worker `i` on `cores[i % len]`).
    pub cores: Vec<Core>,
    /// Size of its rayon pool.
    pub threads: usize,
    /// False when the executor should not pin (e.g. binding unsupported).
    pub pinned: bool,
}

/// Places executor `local_index` of the `local_count` executors on this node.
///
/// Executors go round-robin over NUMA domains; the executors that share a domain split
/// its cores evenly (at least one each, wrapping around when there are more executors
/// than cores). `threads` overrides the pool size (`--executor-cores`); by default an
/// executor gets as many threads as it has cores.
///
/// ```
/// use ember::topology::{Machine, place};
/// let m = Machine::uniform(4, 0);
/// let a = place(&m, 0, 2, None);
/// let b = place(&m, 1, 2, None);
/// assert_eq!((a.threads, b.threads), (2, 2));
/// assert_ne!(a.cores, b.cores);
/// ```
pub fn place(
    machine: &Machine,
    local_index: usize,
    local_count: usize,
    threads: Option<usize>,
) -> Placement {
    let domain_count = machine.domains.len().max(1);
    let domain = &machine.domains[local_index % domain_count];
    let slot = local_index / domain_count;
    let sharing = (0..local_count.max(local_index + 1))
        .filter(|i| i % domain_count == local_index % domain_count)
        .count();
    let available = domain.cores.len().max(1);
    let share = (available / sharing).max(1);
    let threads = threads.unwrap_or(share).max(1);
    let taken = threads.min(available).max(share.min(available));
    let cores = (0..taken)
        .map(|i| domain.cores[(slot * share + i) % available].clone())
        .collect();
    Placement {
        numa_domain: domain.os_index,
        cores,
        threads,
        pinned: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NumaDomain;

    fn two_domains(cores_each: u32) -> Machine {
        let domain = |os_index: u32| NumaDomain {
            os_index,
            cores: (0..cores_each)
                .map(|i| Core {
                    logical: os_index * cores_each + i,
                    pus: vec![os_index * cores_each + i],
                })
                .collect(),
        };
        Machine {
            domains: vec![domain(0), domain(1)],
            memory_bytes: 0,
        }
    }

    fn logical(p: &Placement) -> Vec<u32> {
        p.cores.iter().map(|c| c.logical).collect()
    }

    #[test]
    fn executors_alternate_domains_and_split_cores() {
        let m = two_domains(4);
        let ps: Vec<_> = (0..4).map(|i| place(&m, i, 4, None)).collect();
        assert_eq!(
            ps.iter().map(|p| p.numa_domain).collect::<Vec<_>>(),
            [0, 1, 0, 1]
        );
        assert_eq!(logical(&ps[0]), [0, 1]);
        assert_eq!(logical(&ps[1]), [4, 5]);
        assert_eq!(logical(&ps[2]), [2, 3]);
        assert_eq!(logical(&ps[3]), [6, 7]);
        assert!(ps.iter().all(|p| p.threads == 2));
    }

    #[test]
    fn one_executor_per_domain_gets_the_whole_domain() {
        let m = two_domains(3);
        let p = place(&m, 1, 2, None);
        assert_eq!((p.numa_domain, p.threads), (1, 3));
        assert_eq!(logical(&p), [3, 4, 5]);
    }

    #[test]
    fn more_executors_than_cores_wrap_around() {
        let m = Machine::uniform(2, 0);
        let ps: Vec<_> = (0..3).map(|i| place(&m, i, 3, None)).collect();
        assert_eq!(logical(&ps[0]), [0]);
        assert_eq!(logical(&ps[1]), [1]);
        assert_eq!(logical(&ps[2]), [0]);
        assert!(ps.iter().all(|p| p.threads == 1));
    }

    #[test]
    fn requested_threads_override_the_share() {
        let m = Machine::uniform(4, 0);
        let p = place(&m, 1, 2, Some(8));
        assert_eq!(p.threads, 8);
        // It may use every core of the domain; its own share comes first.
        assert_eq!(logical(&p), [2, 3, 0, 1]);
        let q = place(&m, 0, 2, Some(1));
        assert_eq!((q.threads, logical(&q)), (1, vec![0, 1]));
    }
}
