//! Runtime is the state behind a Context that every RDD handle shares: ids, roles, the job runner.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use crate::config::EngineArgs;
use crate::context::{Mode, Role};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::executor::Executor;
use crate::executor::serve::serve_job;
use crate::failure::fatal;
use crate::ids::{RddId, ShuffleId};
use crate::io::output::OutputCommitter;
use crate::plan::accumulators::AccumulatorSlot;
use crate::plan::job::{Job, ResultFn};
use crate::plan::node::Node;
use crate::protocol::ExecutorTable;
use crate::protocol::messages::{self, TO_EXECUTOR, ToExecutor};
use crate::protocol::metrics::now_us;
use crate::scheduler::driver::{self, DriverState};
use crate::scheduler::observe;
use crate::sync::lock;
use crate::transport::Group;

/// An output directory a job commits on success (`save_as_*`).
pub struct OutputSpec {
    pub dir: PathBuf,
    pub overwrite: bool,
    pub partitions: usize,
}

/// Local mode's in-process executors, and where the driver hands them each job.
#[derive(Default)]
pub struct LocalExecutors {
    pub jobs: Vec<mpsc::Sender<Arc<Job>>>,
    pub executors: Vec<Arc<Executor>>,
}

/// Which ranks an action's results reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every rank (SPMD control flow: every rank runs `main` and may branch on them).
    EveryRank,
    /// The driver only (Spark's `collect`): executors get an empty result.
    Driver,
}

pub struct Runtime {
    pub role: Role,
    pub mode: Mode,
    pub config: EngineArgs,
    /// Driver and executors (local mode: the driver's end of an in-process pair).
    pub world: Arc<dyn Group>,
    /// Every registered executor; known on every rank.
    pub table: ExecutorTable,
    /// This rank's executor (cluster-mode executor ranks).
    pub executor: Option<Arc<Executor>>,
    /// Local mode: hands each job to every in-process executor; empty once stopped.
    pub local_jobs: Mutex<Vec<mpsc::Sender<Arc<Job>>>>,
    /// Local mode: the in-process executors (for cache maintenance from the driver).
    pub local_executors: Vec<Arc<Executor>>,
    pub driver: Mutex<DriverState>,
    /// Held for a whole job: actions on one context run one at a time, in the order
    /// their threads get here (every rank must see the same order).
    job_lock: Mutex<()>,
    accumulators: Mutex<Vec<Arc<dyn AccumulatorSlot>>>,
    /// Shuffles whose last handle dropped, for the driver to forget before its next job.
    forgotten: Mutex<Vec<ShuffleId>>,
    next_accumulator: AtomicU32,
    next_rdd: AtomicU32,
    next_shuffle: AtomicU32,
    next_job: AtomicU64,
}

impl Runtime {
    pub fn new(
        role: Role,
        mode: Mode,
        config: EngineArgs,
        world: Arc<dyn Group>,
        table: ExecutorTable,
        executor: Option<Arc<Executor>>,
        local: LocalExecutors,
    ) -> Self {
        Runtime {
            role,
            mode,
            config,
            world,
            table,
            executor,
            local_jobs: Mutex::new(local.jobs),
            local_executors: local.executors,
            driver: Mutex::new(DriverState::default()),
            job_lock: Mutex::new(()),
            accumulators: Mutex::new(Vec::new()),
            forgotten: Mutex::new(Vec::new()),
            next_accumulator: AtomicU32::new(0),
            next_rdd: AtomicU32::new(0),
            next_shuffle: AtomicU32::new(0),
            next_job: AtomicU64::new(0),
        }
    }

    pub fn new_rdd_id(&self) -> RddId {
        RddId(self.next_rdd.fetch_add(1, Ordering::Relaxed))
    }

    pub fn new_accumulator_id(&self) -> u32 {
        self.next_accumulator.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn register_accumulator(&self, slot: Arc<dyn AccumulatorSlot>) {
        lock(&self.accumulators).push(slot);
    }

    fn accumulator(&self, id: u32) -> Result<Arc<dyn AccumulatorSlot>> {
        lock(&self.accumulators)
            .iter()
            .find(|a| a.id() == id)
            .cloned()
            .ok_or_else(|| Error::Other(format!("unknown accumulator {id}")))
    }

    fn accumulator_values(&self) -> Vec<(u32, Vec<u8>)> {
        lock(&self.accumulators)
            .iter()
            .map(|a| (a.id(), a.encode()))
            .collect()
    }

    /// Drops the cached partitions of `rdd` on this rank's executor (and, on the driver,
    /// forgets where they were).
    pub fn drop_cached(&self, rdd: RddId) {
        for e in self.executor.iter().chain(&self.local_executors) {
            e.blocks.remove_rdd(rdd);
        }
        lock(&self.driver).blocks.retain(|(r, _), _| *r != rdd);
    }

    /// No lineage can read `shuffle` any more: delete its files on this rank's executor
    /// (or the in-process ones) and, on the driver, forget where its partitions live
    /// before the next job. Runs wherever the last handle drops, possibly on an executor
    /// thread while the driver holds its state for a job: so it only queues that part.
    pub fn forget_shuffle(&self, shuffle: ShuffleId) {
        for e in self.executor.iter().chain(&self.local_executors) {
            e.shuffle.remove_shuffle(shuffle);
        }
        lock(&self.forgotten).push(shuffle);
    }

    pub fn new_shuffle_id(&self) -> ShuffleId {
        ShuffleId(self.next_shuffle.fetch_add(1, Ordering::Relaxed))
    }

    /// Worker threads over all executors, at least 2: the default partition count.
    pub fn default_parallelism(&self) -> usize {
        self.table.total_threads().max(2)
    }

    /// Runs an action. Every rank calls it with the same arguments; the driver schedules,
    /// executors serve, and every rank returns the same outcome: the per-partition results
    /// (on the driver only, with no results elsewhere, when `to` says so) or the error.
    pub fn run_job(
        &self,
        name: &str,
        final_rdd: Arc<dyn Node>,
        partitions: Vec<usize>,
        result_fn: ResultFn,
        output: Option<OutputSpec>,
        to: Delivery,
    ) -> Result<Vec<Vec<u8>>> {
        let _one_job_at_a_time = lock(&self.job_lock);
        let job = Arc::new(Job {
            id: self.next_job.fetch_add(1, Ordering::Relaxed),
            name: name.to_string(),
            final_rdd,
            partitions,
            result_fn,
            max_result_bytes: self.config.max_result_size.0,
        });
        match &self.executor {
            Some(executor) => self.serve(executor, &job),
            None => self.drive(&job, output, to),
        }
    }

    /// An executor's part in `job`: its tasks and exchanges until the driver ends it; the
    /// results and accumulator values the driver sent.
    fn serve(&self, executor: &Arc<Executor>, job: &Arc<Job>) -> Result<Vec<Vec<u8>>> {
        let end = serve_job(executor, self.world.as_ref(), job)?;
        for (id, bytes) in &end.accumulators {
            self.accumulator(*id)?.set(bytes)?;
        }
        Ok(end.results)
    }

    /// The driver's part in `job`: readies its output's commit, runs its stages, commits
    /// (or aborts) the output, and ends the job on every rank with its outcome.
    fn drive(
        &self,
        job: &Arc<Job>,
        output: Option<OutputSpec>,
        to: Delivery,
    ) -> Result<Vec<Vec<u8>>> {
        let committer = match &output {
            Some(o) => match OutputCommitter::setup(&o.dir, o.overwrite) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.end_job(job, Err(e.to_string()), false, Vec::new());
                    return Err(e);
                }
            },
            None => None,
        };
        if self.mode == Mode::Local {
            let senders = lock(&self.local_jobs);
            let sent =
                !senders.is_empty() && senders.iter().all(|s| s.send(Arc::clone(job)).is_ok());
            if !sent {
                return Err(Error::Other(
                    "the context has stopped: no executor runs jobs".into(),
                ));
            }
        }
        let result = {
            let mut state = lock(&self.driver);
            for s in std::mem::take(&mut *lock(&self.forgotten)) {
                state.shuffles.remove(&s);
            }
            state.events.post(&observe::job_start(job));
            driver::run_job(self.world.as_ref(), &self.table, &mut state, job)
        };
        let mut obsolete = Vec::new();
        let result = result.and_then(|out| {
            if let (Some(c), Some(o)) = (&committer, &output) {
                c.commit(o.partitions)?;
            }
            for (id, bytes) in &out.accumulator_updates {
                self.accumulator(*id)?.merge(bytes)?;
            }
            obsolete = out.obsolete_shuffles;
            Ok(out.results)
        });
        self.post(&Event::JobEnd {
            job: job.id,
            time_us: now_us(),
            failure: result.as_ref().err().map(|e| e.to_string()),
        });
        match &result {
            Ok(_) if to == Delivery::Driver => self.end_job(job, Ok(Vec::new()), true, obsolete),
            Ok(r) => self.end_job(job, Ok(r.clone()), true, obsolete),
            Err(e) => {
                if let Some(c) = &committer {
                    c.abort();
                }
                self.end_job(job, Err(e.to_string()), true, Vec::new())
            }
        }
        result
    }

    /// Whether this rank is the driver.
    pub fn is_driver(&self) -> bool {
        self.role == Role::Driver
    }

    /// Tells the executors that `job` is over. `started` says whether the in-process
    /// executor was handed the job (cluster executors always enter every job).
    fn end_job(
        &self,
        job: &Job,
        outcome: std::result::Result<Vec<Vec<u8>>, String>,
        started: bool,
        obsolete_shuffles: Vec<ShuffleId>,
    ) {
        if self.mode == Mode::Local && !started {
            return;
        }
        let msg = messages::encode(&ToExecutor::EndJob {
            job: job.id,
            outcome,
            accumulators: self.accumulator_values(),
            obsolete_shuffles,
        });
        for e in self.table.iter() {
            if let Err(err) = self.world.send(e.id.rank(), TO_EXECUTOR, &msg) {
                fatal(&format!(
                    "cannot end job {} on executor {}: {err}",
                    job.id, e.id
                ));
            }
        }
    }
}
