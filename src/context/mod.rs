//! Context starts a job: MPI, the driver and executor roles, registration, and a clean stop.
//!
//! Every rank calls [`Context::init`] and runs the same `main()`. Rank 0 becomes the
//! driver; ranks 1..N become executors, each placed on a NUMA domain with a pinned pool,
//! and register with the driver, which keeps the [`ExecutorTable`]. A world of one rank is
//! local mode: the driver starts one in-process executor on a thread, so a job runs with
//! plain `cargo run`.

pub mod failure;
pub mod runtime;

use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use mpi::Threading;
use mpi::environment::Universe;
use mpi::topology::{Color, Communicator};
use mpi::traits::Root;

pub use failure::fatal;
pub use runtime::Runtime;

use crate::config::EngineArgs;
use crate::error::Error;
use crate::executor::serve::serve_job;
use crate::executor::{Executor, ExecutorInfo, Locality};
use crate::scheduler::ExecutorTable;
use crate::scheduler::job::Job;
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

/// The handle to a running job, one per rank: makes RDDs and ends the job.
pub struct Context {
    pub(crate) rt: Arc<Runtime>,
    /// The in-process executor of local mode.
    local_executor: Option<JoinHandle<()>>,
    stopped: bool,
    /// Finalizes MPI when dropped; must go after everything that uses MPI.
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
        failure::install_signal_handlers();
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
        let token = world
            .broadcast(0, job_token().as_bytes())
            .unwrap_or_else(|e| fatal(&format!("sharing the job token failed: {e}")));
        let token = String::from_utf8_lossy(&token).into_owned();

        let executor = executor_comm.map(|comm| {
            let node = comm.split_shared(comm.rank());
            // A node is named by the world rank of its first executor (host names can
            // repeat across network namespaces; shared memory cannot).
            let mut leader = rank as i32;
            node.process_at_rank(0).broadcast_into(&mut leader);
            let locality = Locality {
                node: leader as usize,
                rank: node.rank() as usize,
                size: node.size() as usize,
            };
            drop(node);
            let peers = Arc::new(MpiGroup::new(comm, thread_multiple)) as Arc<dyn Group>;
            Arc::new(Executor::start(
                rank, locality, peers, config, &token, false,
            ))
        });
        let table = register(world.as_ref(), executor.as_ref().map(|e| &e.info), true);
        let rt = Runtime::new(
            role,
            Mode::Cluster,
            config.clone(),
            world,
            table,
            executor,
            None,
        );
        Context {
            rt: Arc::new(rt),
            local_executor: None,
            stopped: false,
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
        let (Some(driver_end), Some(executor_end)) = (ends.next(), ends.next()) else {
            unreachable!("LocalGroup::create(2) returns two ends")
        };
        let (jobs, incoming) = mpsc::channel::<Arc<Job>>();
        let (handle_tx, handle_rx) = mpsc::channel::<Arc<Executor>>();
        let executor_config = config.clone();
        let handle = std::thread::Builder::new()
            .name("ember-executor-1".into())
            .spawn(move || {
                crate::log::set_thread_label("executor 1".to_string());
                let Some(peers) = LocalGroup::create(1).pop() else {
                    unreachable!("a group of one has one end")
                };
                let token = job_token();
                let locality = Locality {
                    node: 1,
                    rank: 0,
                    size: 1,
                };
                let executor = Arc::new(Executor::start(
                    1,
                    locality,
                    Arc::new(peers),
                    &executor_config,
                    &token,
                    true,
                ));
                let _ = handle_tx.send(Arc::clone(&executor));
                register(&executor_end, Some(&executor.info), false);
                // One job at a time until the driver drops its sender (stop).
                while let Ok(job) = incoming.recv() {
                    // Accumulators are shared with the driver here: it merged them already.
                    if let Err(e) = serve_job(&executor, &executor_end, &job) {
                        tracing::debug!("job {} ended with: {e}", job.id);
                    }
                }
            })
            .unwrap_or_else(|e| fatal(&format!("cannot start the in-process executor: {e}")));
        let table = register(&driver_end, None, false);
        let rt = Runtime::new(
            Role::Driver,
            Mode::Local,
            config.clone(),
            Arc::new(driver_end),
            table,
            None,
            Some(jobs),
        );
        *rt.local_executor.lock().unwrap_or_else(|p| p.into_inner()) = handle_rx.recv().ok();
        Context {
            rt: Arc::new(rt),
            local_executor: Some(handle),
            stopped: false,
            universe: None,
        }
    }

    pub fn role(&self) -> Role {
        self.rt.role
    }

    pub fn mode(&self) -> Mode {
        self.rt.mode
    }

    /// True on rank 0. Guard driver-only side effects (printing, writing a report) with it.
    pub fn is_driver(&self) -> bool {
        self.rt.role == Role::Driver
    }

    /// This rank in the world (0 = driver).
    pub fn rank(&self) -> Rank {
        self.rt.world.rank()
    }

    /// Ranks in the world, driver included (2 in local mode: driver + in-process executor).
    pub fn world_size(&self) -> usize {
        self.rt.world.size()
    }

    /// The registered executors (the same table on every rank).
    pub fn executor_table(&self) -> &ExecutorTable {
        &self.rt.table
    }

    /// This rank's executor; `Some` on executor ranks in cluster mode.
    pub fn executor(&self) -> Option<&Executor> {
        self.rt.executor.as_deref()
    }

    pub fn config(&self) -> &EngineArgs {
        &self.rt.config
    }

    /// Partitions an RDD gets when none is asked for: all executors' threads (at least 2).
    pub fn default_parallelism(&self) -> usize {
        self.rt.default_parallelism()
    }

    /// The world group (driver and executors), for engine internals and diagnostics.
    pub fn world(&self) -> &dyn Group {
        self.rt.world.as_ref()
    }

    /// The node-local scratch directory of this rank's executor (cluster executors) or of
    /// the in-process executor (local mode): where its shuffle and cache files live.
    pub fn executor_dir(&self) -> Option<std::path::PathBuf> {
        let local = self
            .rt
            .local_executor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.rt
            .executor
            .clone()
            .or(local)
            .map(|e| e.shuffle.dir().to_path_buf())
    }

    /// Takes executor `id` out of service (call on every rank): it runs no more tasks and
    /// owns no shuffle data; its cached blocks and the shuffle outputs count as lost and
    /// are computed again, from lineage, on the others.
    pub fn decommission(&self, id: usize) -> crate::error::Result<()> {
        let mut state = self.rt.driver.lock().unwrap_or_else(|p| p.into_inner());
        if self.rt.table.get(id).is_none() {
            return Err(Error::Other(format!("no executor {id}")));
        }
        let remaining = self
            .rt
            .table
            .iter()
            .filter(|e| e.id != id && !state.out_of_service.contains(&e.id))
            .count();
        if remaining == 0 {
            return Err(Error::Other(format!(
                "executor {id} is the last one in service"
            )));
        }
        state.decommission(id);
        if let Some(e) = self.rt.executor.as_ref().filter(|e| e.info.id == id) {
            e.blocks.clear();
        }
        Ok(())
    }

    /// Task metrics summed over every job so far (driver only; zero on executors):
    /// source partitions computed, cache hits and misses, peak cache memory.
    pub fn metrics(&self) -> crate::executor::task::TaskMetrics {
        self.rt
            .driver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .metrics
    }

    /// The shuffle exchanges run so far (driver only; empty on executors).
    pub fn shuffle_stats(&self) -> Vec<crate::scheduler::driver::ExchangeStats> {
        self.rt
            .driver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .exchanges
            .clone()
    }

    /// Gathers every rank's peak RSS on the driver and logs it, with the job's cache and
    /// source-partition totals (at stop).
    fn report_peak_memory(&self) {
        let mine = peak_rss_bytes();
        let line = if self.rt.mode == Mode::Cluster {
            let Ok(all) = self.rt.world.gather(0, &mine.to_le_bytes()) else {
                return;
            };
            let Some(all) = all else { return };
            all.iter()
                .enumerate()
                .map(|(rank, b)| {
                    let bytes = b.as_slice().try_into().map(u64::from_le_bytes).unwrap_or(0);
                    let who = if rank == 0 {
                        "driver".to_string()
                    } else {
                        format!("executor {rank}")
                    };
                    format!("{who} {:.1} MiB", bytes as f64 / (1 << 20) as f64)
                })
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            format!(
                "driver and in-process executor {:.1} MiB",
                mine as f64 / (1 << 20) as f64
            )
        };
        tracing::info!("peak RSS per rank: {line}");
        if self.is_driver() {
            let m = self.metrics();
            tracing::info!(
                "cache hits {}, misses {}, source partitions computed {}",
                m.cache_hits,
                m.cache_misses,
                m.source_partitions
            );
        }
    }

    /// Reports `error` as this rank's failure and ends the job on every rank.
    pub fn fail(&self, error: &dyn std::fmt::Display) -> ! {
        fatal(&error.to_string())
    }

    /// Ends the job: cleanly on `Ok`; on `Err`, the driver reports the error and every
    /// rank exits non-zero. Executors leave the report to the driver (whose message is the
    /// one a user reads) unless it does not come within a few seconds.
    pub fn finish(self, result: crate::error::Result<()>) {
        let Err(error) = result else {
            return self.stop();
        };
        if !self.is_driver() {
            std::thread::sleep(Duration::from_secs(3));
            if matches!(error, Error::JobFailed(_)) {
                failure::abort_job(1);
            }
        }
        fatal(&error.to_string())
    }

    /// Ends the job cleanly: waits for every rank, stops executors, finalizes MPI.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let world = self.rt.world.as_ref();
        if let Some(handle) = self.local_executor.take() {
            // Dropping the sender ends the in-process executor's loop.
            drop(
                self.rt
                    .local_jobs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take(),
            );
            if handle.join().is_err() {
                fatal("the in-process executor thread panicked");
            }
        } else if self.is_driver() {
            let bye = messages::encode(&ToExecutor::Shutdown);
            for e in self.rt.table.iter() {
                if let Err(err) = world.send(e.id, TO_EXECUTOR, &bye) {
                    fatal(&format!("cannot stop executor {}: {err}", e.id));
                }
            }
        } else {
            // The driver's next message must be Shutdown: anything else means the ranks'
            // programs ran different actions.
            let envelope = world
                .recv(Some(0), TO_EXECUTOR)
                .unwrap_or_else(|e| fatal(&format!("lost the driver: {e}")));
            match messages::decode::<ToExecutor>(&envelope.data, "driver message") {
                Ok(ToExecutor::Shutdown) => {}
                Ok(ToExecutor::BeginJob { job }) => fatal(&format!(
                    "the driver started job {job} after this executor's program ended: every rank must run the same actions"
                )),
                Ok(other) => fatal(&format!("unexpected driver message at shutdown: {other:?}")),
                Err(e) => fatal(&e),
            }
        }
        self.report_peak_memory();
        if self.rt.mode == Mode::Cluster
            && let Err(e) = world.barrier()
        {
            fatal(&format!("shutdown barrier failed: {e}"));
        }
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

/// This process's peak resident set size (`getrusage`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    usage.ru_maxrss.max(0) as u64 * 1024
}

/// Names this job's scratch directories: the Slurm job id, else the driver's pid and a
/// time stamp (so that two jobs on one node never share a directory).
fn job_token() -> String {
    if let Ok(id) = std::env::var("SLURM_JOB_ID") {
        return format!("slurm{id}");
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:09}", std::process::id())
}

/// Executors send their info to rank 0, which logs the table; with `share`, rank 0 then
/// sends the table to every rank (cluster mode: executors plan partition counts with it).
fn register(world: &dyn Group, mine: Option<&ExecutorInfo>, share: bool) -> ExecutorTable {
    let bytes = mine.map(messages::encode).unwrap_or_default();
    let gathered = world
        .gather(0, &bytes)
        .unwrap_or_else(|e| fatal(&format!("registration failed: {e}")));
    let mut table_bytes = Vec::new();
    if let Some(all) = gathered {
        let infos: Vec<ExecutorInfo> = all
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
        table_bytes = messages::encode(&table.iter().cloned().collect::<Vec<_>>());
    }
    if share {
        table_bytes = world
            .broadcast(0, &table_bytes)
            .unwrap_or_else(|e| fatal(&format!("sharing the executor table failed: {e}")));
    }
    if table_bytes.is_empty() {
        return ExecutorTable::default(); // the in-process executor: only the driver plans
    }
    let infos: Vec<ExecutorInfo> =
        messages::decode(&table_bytes, "executor table").unwrap_or_else(|e| fatal(&e));
    ExecutorTable::new(infos)
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
        let table = ctx.executor_table();
        assert_eq!(table.len(), 1);
        let e = table.get(1).expect("executor 1");
        assert!(e.in_process && e.threads >= 1);
        assert_eq!(e.pid, std::process::id());
        ctx.stop();
    }
}
