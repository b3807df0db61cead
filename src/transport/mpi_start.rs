//! MPI start-up for a job: initialise with threads, split the world into the executors'
//! communicator and per-node groups, and make `MPI_Abort` the job-wide abort.

use std::sync::Arc;

use mpi::Threading;
use mpi::environment::Universe;
use mpi::topology::{Color, Communicator};
use mpi::traits::Root;

use super::mpi::MpiGroup;
use super::{Group, Locality, Rank};

/// MPI for this process, from [`start`] until dropped (`MPI_Finalize`).
pub struct MpiSession {
    universe: Option<Universe>,
}

impl Drop for MpiSession {
    fn drop(&mut self) {
        crate::failure::set_abort(None);
        drop(self.universe.take());
    }
}

/// What the job's ranks learn at start: the world group and, on executor ranks, the
/// executors' own group and where this executor sits on its node.
pub struct Started {
    pub session: MpiSession,
    pub world: Arc<dyn Group>,
    /// `None` on rank 0 (the driver) and in a world of one.
    pub executor: Option<(Arc<dyn Group>, Locality)>,
}

fn abort_world(code: i32) -> ! {
    // SAFETY: installed only between MPI_Init and MPI_Finalize (see `MpiSession`);
    // MPI_Abort may be called from any thread and does not return.
    unsafe {
        mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, code);
    }
    std::process::exit(code)
}

/// Messaging on one node through OpenMPI's `ob1` over shared memory, unless the user
/// chose: with no choice made, OpenMPI (Debian's build) first opens its `cm` layer, whose
/// PSM and PSM2 transports probe for Omni-Path hardware. Measured on a machine without it:
/// `MPI_Init` of 3 ranks took 0.25 s, 0.05 s with `pml ob1`: 0.2 s of every job's start,
/// for nothing between ranks of one node, which `ob1` joins through shared memory. Applies
/// when `OMPI_MCA_pml` is unset (`mpirun --mca pml ...` sets it) and the launcher says
/// every rank of the world runs on this node: OpenMPI's `mpirun` by
/// `OMPI_COMM_WORLD_LOCAL_SIZE` equal to `OMPI_COMM_WORLD_SIZE`; `srun`, which starts the
/// ranks itself (PMIx) and sets no `OMPI_COMM_WORLD_*`, by `SLURM_STEP_NUM_NODES=1` (an
/// empty job under `srun --mpi=pmix -n 3` here: 0.46-0.49 s, 0.25-0.28 s with `ob1`).
/// Other MPIs ignore the variable. The decision (`None`: none made) and the variable to
/// set.
pub fn one_node_messaging(
    env: impl Fn(&str) -> Option<String>,
) -> Option<(&'static str, &'static str)> {
    let one_node = match env("OMPI_COMM_WORLD_SIZE") {
        Some(size) => env("OMPI_COMM_WORLD_LOCAL_SIZE").is_some_and(|local| local == size),
        None => env("SLURM_STEP_NUM_NODES").is_some_and(|nodes| nodes == "1"),
    };
    (one_node && env("OMPI_MCA_pml").is_none()).then_some(("OMPI_MCA_pml", "ob1"))
}

/// Prepares MPI's environment before it starts ([`one_node_messaging`]).
///
/// # Safety
/// No other thread of the process reads or writes the environment meanwhile: call it
/// first, while the process runs one thread.
pub unsafe fn prepare_environment() {
    if let Some((name, value)) = one_node_messaging(|name| std::env::var(name).ok()) {
        // SAFETY: the caller's contract (one thread).
        unsafe { std::env::set_var(name, value) };
    }
}

/// Initialises MPI (asking for `MPI_THREAD_SERIALIZED`: every MPI call of the process is
/// made under one lock, and one-sided windows over TCP need a level below
/// `MPI_THREAD_MULTIPLE` in OpenMPI) and splits the world: every rank but
/// 0 joins the executors' communicator, and executors sharing memory form a node, named by
/// the world rank of its first executor (host names can repeat across network namespaces;
/// shared memory cannot). A world of one makes no splits.
pub fn start() -> Result<Started, String> {
    let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
        .ok_or("MPI was already initialised in this process; call Context::init once")?;
    crate::failure::set_abort(Some(abort_world));
    let session = MpiSession {
        universe: Some(universe),
    };
    let world = session
        .universe
        .as_ref()
        .map(|u| u.world())
        .ok_or("MPI universe missing")?;
    let thread_multiple = threading == Threading::Multiple;
    if world.size() == 1 {
        let world = Arc::new(MpiGroup::new(world, thread_multiple)) as Arc<dyn Group>;
        return Ok(Started {
            session,
            world,
            executor: None,
        });
    }
    if threading < Threading::Serialized {
        tracing::warn!(
            "MPI granted {threading:?}, less than the Serialized ember asks for: its heartbeat thread may misbehave"
        );
    }
    let rank = world.rank() as Rank;
    // Every rank takes part in both splits; the driver gets no executor communicator.
    let color = if rank == 0 {
        Color::undefined()
    } else {
        Color::with_value(1)
    };
    let executor = world.split_by_color(color).map(|comm| {
        let node = comm.split_shared(comm.rank());
        let mut leader = rank as i32;
        node.process_at_rank(0).broadcast_into(&mut leader);
        let locality = Locality {
            node: leader as usize,
            rank: node.rank() as usize,
            size: node.size() as usize,
        };
        let peers = Arc::new(MpiGroup::new(comm, thread_multiple)) as Arc<dyn Group>;
        (peers, locality)
    });
    let world = Arc::new(MpiGroup::new(world, thread_multiple)) as Arc<dyn Group>;
    Ok(Started {
        session,
        world,
        executor,
    })
}

#[cfg(test)]
mod tests {
    use super::one_node_messaging;

    fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn ob1_is_chosen_for_a_world_on_one_node_by_mpirun_or_srun_unless_the_user_chose() {
        let one_node = [
            ("OMPI_COMM_WORLD_SIZE", "3"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "3"),
        ];
        assert_eq!(
            one_node_messaging(env(&one_node)),
            Some(("OMPI_MCA_pml", "ob1"))
        );
        let two_nodes = [
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
        ];
        assert_eq!(one_node_messaging(env(&two_nodes)), None);
        let chosen = [
            ("OMPI_COMM_WORLD_SIZE", "3"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "3"),
            ("OMPI_MCA_pml", "ucx"),
        ];
        assert_eq!(one_node_messaging(env(&chosen)), None);
        // Started by srun (PMIx): its step's nodes tell.
        let srun_one = [("SLURM_STEP_NUM_NODES", "1"), ("PMIX_RANK", "0")];
        assert_eq!(
            one_node_messaging(env(&srun_one)),
            Some(("OMPI_MCA_pml", "ob1"))
        );
        let srun_two = [("SLURM_STEP_NUM_NODES", "2"), ("PMIX_RANK", "0")];
        assert_eq!(one_node_messaging(env(&srun_two)), None);
        let srun_chosen = [("SLURM_STEP_NUM_NODES", "1"), ("OMPI_MCA_pml", "ucx")];
        assert_eq!(one_node_messaging(env(&srun_chosen)), None);
        // mpirun on two nodes inside a one-node step's environment: mpirun's word holds.
        let mpirun_in_step = [
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
            ("SLURM_STEP_NUM_NODES", "1"),
        ];
        assert_eq!(one_node_messaging(env(&mpirun_in_step)), None);
        // Launched by neither (MPICH's hydra, a single process).
        assert_eq!(one_node_messaging(env(&[("PMI_SIZE", "3")])), None);
    }
}
