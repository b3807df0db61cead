//! Context starts a job: MPI, the driver and executor roles, registration, and a clean stop.
//!
//! Every rank calls [`Context::init`] and runs the same `main()`. Rank 0 becomes the
//! driver; ranks 1..N become executors, each placed on a NUMA domain with a pinned pool,
//! and register with the driver, which keeps the [`ExecutorTable`]. A world of one rank is
//! local mode: the driver starts in-process executors on threads, so a job runs with
//! plain `cargo run`.

pub mod liveness;
mod observe;
pub mod runtime;
mod start;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use crate::failure::fatal;
pub use runtime::Runtime;

use crate::config::EngineArgs;
use crate::error::Error;
use crate::executor::Executor;
use crate::failure;
use crate::ids::ExecutorId;
use crate::protocol::messages::{self, TO_EXECUTOR, ToExecutor};
use crate::protocol::{ExecutorTable, TaskMetrics};
use crate::sync::lock;
use crate::transport::mpi_start::MpiSession;
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
///
/// Everything starts here: sources (`parallelize`, `range`, `text_file`, ...), shared
/// variables (`broadcast`, `accumulator`), and the end of the job (`finish`, `stop`). A job
/// calls [`Context::init`] in its `main()`; tests and examples run in one process with
/// [`Context::local_with`] or [`Context::local_with_executors`]:
///
/// ```
/// use ember::config::EngineArgs;
/// use ember::Context;
/// let ctx = Context::local_with(&EngineArgs::default());
/// let lines = ctx.parallelize(vec!["to be".to_string(), "or not to be".to_string()], None);
/// let words = lines.flat_map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>());
/// assert_eq!(words.count()?, 6);
/// ctx.stop();
/// # Ok::<(), ember::Error>(())
/// ```
pub struct Context {
    pub(crate) rt: Arc<Runtime>,
    /// The threads of local mode's in-process executors.
    local_threads: Vec<JoinHandle<()>>,
    stopped: bool,
    /// Cluster mode: the heartbeat thread (stopped after the shutdown barrier).
    liveness: Option<liveness::Liveness>,
    /// Finalizes MPI when dropped; must go after everything that uses MPI.
    mpi: Option<MpiSession>,
}

impl Context {
    fn with_runtime(
        rt: Runtime,
        local_threads: Vec<JoinHandle<()>>,
        mpi: Option<MpiSession>,
    ) -> Self {
        Context {
            rt: Arc::new(rt),
            local_threads,
            stopped: false,
            liveness: None,
            mpi,
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

    /// Ranks in the world, driver included (in local mode: the driver and its in-process
    /// executors).
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
    /// In local mode with several in-process executors, the first one's.
    pub fn executor_dir(&self) -> Option<std::path::PathBuf> {
        self.rt
            .executor
            .as_ref()
            .or(self.rt.local_executors.first())
            .map(|e| e.shuffle.dir().to_path_buf())
    }

    /// Takes executor `id` out of service (call on every rank): it runs no more tasks and
    /// owns no shuffle data; its cached blocks and the shuffle outputs count as lost and
    /// are computed again, from lineage, on the others.
    pub fn decommission(&self, id: impl Into<ExecutorId>) -> crate::error::Result<()> {
        let id = id.into();
        let mut state = lock(&self.rt.driver);
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
        let mine = self.rt.executor.iter().chain(&self.rt.local_executors);
        for e in mine.filter(|e| e.info.id == id) {
            e.blocks.clear();
        }
        Ok(())
    }

    /// Task metrics summed over every job so far (driver only; zero on executors):
    /// source partitions computed, cache hits and misses, peak cache memory.
    pub fn metrics(&self) -> TaskMetrics {
        lock(&self.rt.driver).metrics
    }

    /// The shuffle exchanges run so far (driver only; empty on executors).
    pub fn shuffle_stats(&self) -> Vec<crate::scheduler::driver::ExchangeStats> {
        lock(&self.rt.driver).exchanges.clone()
    }

    /// Gathers every rank's peak RSS on the driver and logs it, with the job's cache and
    /// source-partition totals, and ends the event log with them (at stop).
    fn report_peak_memory(&self) {
        let mine = peak_rss_bytes();
        let mut peaks = vec![(0, mine)];
        let line = if self.rt.mode == Mode::Cluster {
            let Ok(all) = self.rt.world.gather(0, &mine.to_le_bytes()) else {
                return;
            };
            let Some(all) = all else { return };
            peaks = all
                .iter()
                .map(|b| b.as_slice().try_into().map(u64::from_le_bytes).unwrap_or(0))
                .enumerate()
                .collect();
            peaks
                .iter()
                .map(|&(rank, bytes)| {
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
            self.rt.end_listeners(peaks);
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
        if self.rt.mode == Mode::Local {
            // Dropping the senders ends the in-process executors' loops.
            lock(&self.rt.local_jobs).clear();
            for handle in std::mem::take(&mut self.local_threads) {
                if handle.join().is_err() {
                    fatal("an in-process executor thread panicked");
                }
            }
        } else if self.is_driver() {
            let bye = messages::encode(&ToExecutor::Shutdown);
            for e in self.rt.table.iter() {
                if let Err(err) = world.send(e.id.rank(), TO_EXECUTOR, &bye) {
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
        if let Some(liveness) = self.liveness.take() {
            liveness.stop();
        }
        drop(self.mpi.take());
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
