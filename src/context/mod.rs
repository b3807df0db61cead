//! Context starts a job: MPI, the driver and executor roles, registration, and a clean stop.
//!
//! Every rank calls [`Context::init`] and runs the same `main()`. Rank 0 becomes the
//! driver; ranks 1..N become executors, each placed on a NUMA domain with a pinned pool,
//! and register with the driver, which keeps the [`ExecutorTable`]. A world of one rank is
//! local mode: the driver starts one in-process executor on a thread, so a job runs with
//! plain `cargo run`.

pub mod failure;

use std::sync::Arc;
use std::thread::JoinHandle;

use mpi::Threading;
use mpi::environment::Universe;
use mpi::topology::{Color, Communicator};

pub use failure::fatal;

use crate::config::EngineArgs;
use crate::executor::{Executor, ExecutorInfo};
use crate::scheduler::ExecutorTable;
use crate::scheduler::messages::{self, TO_EXECUTOR, ToExecutor};
use crate::transport::local::LocalGroup;
use crate::transport::mpi::MpiGroup;
use crate::transport::{Group, Rank};

/// What this rank does in the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Rank 0: runs the user's program, plans and schedules.
    Driver,
    /// Ranks 1..N: run tasks.
    Executor,
}

/// How the job was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One process: driver plus an in-process executor.
    Local,
    /// Several MPI ranks (mpirun, srun).
    Cluster,
}

/// The handle to a running job, one per rank.
pub struct Context {
    role: Role,
    mode: Mode,
    config: EngineArgs,
    /// Driver and executors. In local mode, the driver's end of an in-process pair.
    world: Option<Arc<dyn Group>>,
    /// This rank's executor (cluster mode, executors only).
    executor: Option<Executor>,
    /// The registered executors (driver only).
    table: Option<ExecutorTable>,
    /// The in-process executor of local mode.
    local_executor: Option<JoinHandle<()>>,
    /// Finalizes MPI when dropped; must outlive every communicator above.
    universe: Option<Universe>,
}

impl Context {
    /// Starts the job with engine settings from `EMBER_*` environment variables.
    pub fn init() -> Context {
        Context::init_with(&EngineArgs::from_env())
    }

    /// Starts the job: initialises MPI (or local mode for a world of one), assigns the
    /// role, places executors and registers them with the driver. Any failure here ends
    /// the job on every rank with a message.
    pub fn init_with(config: &EngineArgs) -> Context {
        crate::log::init();
        failure::install_panic_hook();
        let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Multiple)
        else {
            fatal("MPI was already initialised in this process; call Context::init once");
        };
        failure::set_mpi_active(true);
        let world = universe.world();
        if world.size() == 1 {
            let mut ctx = Context::local_with(config);
            ctx.universe = Some(universe);
            return ctx;
        }
        let thread_multiple = threading == Threading::Multiple;
        let rank = world.rank() as Rank;
        let role = if rank == 0 {
            Role::Driver
        } else {
            Role::Executor
        };
        crate::log::set_process_label(match role {
            Role::Driver => "driver 0".to_string(),
            Role::Executor => format!("executor {rank}"),
        });
        if !thread_multiple {
            tracing::warn!("MPI granted {threading:?}, not Multiple: MPI calls are serialised");
        }
        // Every rank takes part in both splits; the driver gets no executor communicator.
        let color = match role {
            Role::Driver => Color::undefined(),
            Role::Executor => Color::with_value(1),
        };
        let executor_comm = world.split_by_color(color);
        let world = Arc::new(MpiGroup::new(world, thread_multiple)) as Arc<dyn Group>;

        let executor = executor_comm.map(|comm| {
            let node = comm.split_shared(comm.rank());
            let (node_rank, node_size) = (node.rank() as usize, node.size() as usize);
            drop(node);
            let peers = Arc::new(MpiGroup::new(comm, thread_multiple)) as Arc<dyn Group>;
            Executor::start(rank, node_rank, node_size, peers, config, false)
        });
        let table = register(world.as_ref(), executor.as_ref().map(|e| &e.info));
        Context {
            role,
            mode: Mode::Cluster,
            config: config.clone(),
            world: Some(world),
            executor,
            table,
            local_executor: None,
            universe: Some(universe),
        }
    }

    /// Local mode without MPI: the driver and one in-process executor thread. Used by
    /// `init` for a world of one, and by in-process tests (MPI can start only once per
    /// process, tests run many jobs).
    pub fn local_with(config: &EngineArgs) -> Context {
        crate::log::init();
        crate::log::set_process_label("driver 0".to_string());
        let mut ends = LocalGroup::create(2).into_iter();
        let (driver_end, executor_end) = match (ends.next(), ends.next()) {
            (Some(d), Some(e)) => (d, e),
            _ => unreachable!("LocalGroup::create(2) returns two ends"),
        };
        let executor_config = config.clone();
        let handle = std::thread::Builder::new()
            .name("ember-executor-1".into())
            .spawn(move || {
                crate::log::set_thread_label("executor 1".to_string());
                let peers = LocalGroup::create(1)
                    .pop()
                    .map(|g| Arc::new(g) as Arc<dyn Group>);
                let peers = peers.unwrap_or_else(|| unreachable!("a group of one has one end"));
                let executor = Executor::start(1, 0, 1, peers, &executor_config, true);
                register(&executor_end, Some(&executor.info));
                serve_in_process(&executor_end, &executor);
            })
            .unwrap_or_else(|e| fatal(&format!("cannot start the in-process executor: {e}")));
        let table = register(&driver_end, None);
        Context {
            role: Role::Driver,
            mode: Mode::Local,
            config: config.clone(),
            world: Some(Arc::new(driver_end)),
            executor: None,
            table,
            local_executor: Some(handle),
            universe: None,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// True on rank 0. Guard driver-only side effects (printing, writing a report) with it.
    pub fn is_driver(&self) -> bool {
        self.role == Role::Driver
    }

    /// This rank in the world (0 = driver).
    pub fn rank(&self) -> Rank {
        self.world().rank()
    }

    /// Ranks in the world, driver included (2 in local mode: driver + in-process executor).
    pub fn world_size(&self) -> usize {
        self.world().size()
    }

    /// The registered executors; `Some` on the driver only.
    pub fn executor_table(&self) -> Option<&ExecutorTable> {
        self.table.as_ref()
    }

    /// This rank's executor; `Some` on executor ranks in cluster mode.
    pub fn executor(&self) -> Option<&Executor> {
        self.executor.as_ref()
    }

    pub fn config(&self) -> &EngineArgs {
        &self.config
    }

    /// The world group (driver and executors), for engine internals and diagnostics.
    pub fn world(&self) -> &dyn Group {
        match &self.world {
            Some(w) => w.as_ref(),
            None => unreachable!("the world group lives until the context stops"),
        }
    }

    /// Reports `error` as this rank's failure and ends the job on every rank.
    pub fn fail(&self, error: &dyn std::fmt::Display) -> ! {
        fatal(&error.to_string())
    }

    /// Ends the job cleanly: waits for every rank, stops executors, finalizes MPI.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(world) = self.world.take() else {
            return;
        };
        if let Some(handle) = self.local_executor.take() {
            if let Err(e) = world.send(1, TO_EXECUTOR, &messages::encode(&ToExecutor::Shutdown)) {
                fatal(&format!("cannot stop the in-process executor: {e}"));
            }
            if handle.join().is_err() {
                fatal("the in-process executor thread panicked");
            }
        } else if let Err(e) = world.barrier() {
            fatal(&format!("shutdown barrier failed: {e}"));
        }
        // Communicators first, then MPI itself.
        self.executor = None;
        drop(world);
        if let Some(universe) = self.universe.take() {
            failure::set_mpi_active(false);
            drop(universe);
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        }
    }
}

/// Executors send their info to rank 0; the driver returns the table of all of them.
fn register(world: &dyn Group, mine: Option<&ExecutorInfo>) -> Option<ExecutorTable> {
    let bytes = mine.map(messages::encode).unwrap_or_default();
    let gathered = world
        .gather(0, &bytes)
        .unwrap_or_else(|e| fatal(&format!("registration failed: {e}")))?;
    let infos = gathered
        .iter()
        .enumerate()
        .skip(1)
        .map(|(rank, b)| {
            messages::decode::<ExecutorInfo>(b, "registration")
                .unwrap_or_else(|e| fatal(&format!("executor {rank}: {e}")))
        })
        .collect();
    let table = ExecutorTable::new(infos);
    tracing::info!(
        "{} executor(s), {} worker threads:\n{}",
        table.len(),
        table.total_threads(),
        table
    );
    Some(table)
}

/// The in-process executor waits for the driver to say the job is over.
fn serve_in_process(world: &dyn Group, _executor: &Executor) {
    let envelope = world
        .recv(Some(0), TO_EXECUTOR)
        .unwrap_or_else(|e| fatal(&format!("executor lost the driver: {e}")));
    match messages::decode::<ToExecutor>(&envelope.data, "control message") {
        Ok(ToExecutor::Shutdown) => {}
        Err(e) => fatal(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_mode_hosts_one_in_process_executor() {
        let ctx = Context::local_with(&EngineArgs::default());
        assert!(ctx.is_driver());
        assert_eq!(
            (ctx.mode(), ctx.rank(), ctx.world_size()),
            (Mode::Local, 0, 2)
        );
        let table = ctx.executor_table().expect("the driver keeps the table");
        assert_eq!(table.len(), 1);
        let e = table.get(1).expect("executor 1");
        assert!(e.in_process && e.threads >= 1);
        assert_eq!(e.pid, std::process::id());
        ctx.stop();
    }
}
