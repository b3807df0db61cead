//! The executor's side of a job: answer the driver, run tasks on the pool, join exchanges.

use std::sync::Arc;
use std::sync::mpsc;

use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::failure::catch_task;
use crate::ids::{ExecutorId, StageId};
use crate::plan::accumulators;
use crate::plan::job::Job;
use crate::plan::node::ShuffleDep;
use crate::plan::stage::{Stage, StageKind, fingerprint, plan};
use crate::plan::task::TaskContext;
use crate::protocol::messages::{self, TO_DRIVER, TO_EXECUTOR, ToDriver, ToExecutor};
use crate::protocol::metrics::{now_us, process_memory_peak};
use crate::protocol::{TaskMetrics, TaskTiming};
use crate::shuffle::exchange::exchange;
use crate::transport::{Backoff, Group};

/// What the driver sent at the end of a job: per-partition results (every rank gets them,
/// so programs stay in step) and the accumulators' values.
pub struct JobEnd {
    pub results: Vec<Vec<u8>>,
    pub accumulators: Vec<(u32, Vec<u8>)>,
}

/// Serves `job` until the driver ends it; returns its results, or the driver's reason for
/// failing it.
///
/// Tasks run on the executor's pool; this thread only relays: it polls the driver's
/// messages and the tasks' reports with backoff, so it costs next to no CPU.
pub fn serve_job(executor: &Arc<Executor>, world: &dyn Group, job: &Arc<Job>) -> Result<JobEnd> {
    let stages = Arc::new(plan(&job.final_rdd));
    let (reports, finished) = mpsc::channel::<ToDriver>();
    let serving = Serving {
        executor,
        world,
        job,
        stages: &stages,
        reports: &reports,
    };
    let mut backoff = Backoff::new();
    loop {
        let mut progressed = false;
        while let Ok(report) = finished.try_recv() {
            serving.send(&report)?;
            progressed = true;
        }
        if let Some(envelope) = world.try_recv(Some(0), TO_EXECUTOR)? {
            progressed = true;
            let msg: ToExecutor =
                messages::decode(&envelope.data, "driver message").map_err(Error::Other)?;
            if let Some(end) = serving.on_message(msg)? {
                return Ok(end);
            }
        }
        if progressed {
            backoff.reset();
        } else {
            backoff.snooze();
        }
    }
}

/// What the serve loop of a job works with.
struct Serving<'a> {
    executor: &'a Arc<Executor>,
    world: &'a dyn Group,
    job: &'a Arc<Job>,
    stages: &'a Arc<Vec<Stage>>,
    /// Where finished tasks report, for the loop to relay.
    reports: &'a mpsc::Sender<ToDriver>,
}

impl Serving<'_> {
    /// Acts on one message from the driver; the job's end once the driver ends it.
    fn on_message(&self, msg: ToExecutor) -> Result<Option<JobEnd>> {
        let (executor, job) = (self.executor, self.job);
        match msg {
            ToExecutor::BeginJob { .. } => {
                if crate::faults::serve_panic(executor.info.id.rank()) {
                    panic!(
                        "injected panic in the serve loop of executor {}",
                        executor.info.id
                    );
                }
                let ready = ToDriver::Ready {
                    job: job.id,
                    fingerprint: fingerprint(&job.final_rdd, &job.partitions),
                };
                self.send(&ready)?;
            }
            ToExecutor::RunTask {
                job: j,
                stage,
                partition,
                attempt,
            } if j == job.id && stage.index() < self.stages.len() => {
                self.start_task(stage, partition, attempt);
            }
            ToExecutor::PrepareShuffle {
                job: j,
                shuffle,
                owners,
            } if j == job.id => {
                let owners = owners.into_iter().map(ExecutorId::rank).collect();
                executor.shuffle.set_owners(shuffle, owners);
            }
            ToExecutor::Exchange { job: j, shuffle } if j == job.id => {
                let report = match exchange(&executor.exchange_env(), shuffle) {
                    Ok(done) => ToDriver::ExchangeDone {
                        job: j,
                        shuffle,
                        bytes: done.bytes,
                        cross_node: done.cross_node,
                        rounds: done.rounds,
                        one_sided: done.one_sided,
                    },
                    Err(e) => ToDriver::ExchangeFailed {
                        job: j,
                        shuffle,
                        message: e.to_string(),
                    },
                };
                self.send(&report)?;
            }
            ToExecutor::EndJob {
                job: j,
                outcome,
                accumulators,
                obsolete_shuffles,
            } if j == job.id => {
                for s in obsolete_shuffles {
                    executor.shuffle.remove_shuffle(s);
                }
                let results = outcome.map_err(Error::JobFailed)?;
                return Ok(Some(JobEnd {
                    results,
                    accumulators,
                }));
            }
            ToExecutor::RemoveShuffle { job: j, shuffle } if j == job.id => {
                executor.shuffle.remove_shuffle(shuffle);
            }
            ToExecutor::Decommission { job: j } if j == job.id => {
                executor.blocks.clear();
                tracing::warn!("executor {} taken out of service", executor.info.id);
            }
            ToExecutor::Shutdown => {
                return Err(Error::LineageMismatch(format!(
                    "the driver's program ended while executor {} started job {} ({}): every rank must run the same actions",
                    executor.info.id, job.id, job.name
                )));
            }
            other => {
                return Err(Error::Other(format!(
                    "executor {} in job {} got an unexpected message: {other:?}",
                    executor.info.id, job.id
                )));
            }
        }
        Ok(None)
    }

    /// Sends `report` to the driver.
    fn send(&self, report: &ToDriver) -> Result<()> {
        self.world.send(0, TO_DRIVER, &messages::encode(report))?;
        Ok(())
    }

    /// Starts a task on the pool; it reports through `reports` when it ends.
    fn start_task(&self, stage: StageId, partition: u32, attempt: u32) {
        let me = self.executor.info.id.rank();
        if crate::faults::drop_cache_at(self.job.id, stage.0, me) {
            self.executor.blocks.clear();
            tracing::warn!("executor {me}: every cached block dropped (injected)");
        }
        let (executor, job, stages, reports) = (
            Arc::clone(self.executor),
            Arc::clone(self.job),
            Arc::clone(self.stages),
            self.reports.clone(),
        );
        self.executor.pool.spawn(move || {
            let report = run_task(&executor, &job, &stages[stage.index()], partition, attempt);
            // The serve loop is gone only if the job already ended: drop the report.
            let _ = reports.send(report);
        });
    }
}

/// Runs one task, catching errors and panics, and says how it went.
fn run_task(
    executor: &Arc<Executor>,
    job: &Job,
    stage: &Stage,
    partition: u32,
    attempt: u32,
) -> ToDriver {
    let tc = TaskContext {
        executor_id: executor.info.id.rank(),
        blocks: Arc::clone(&executor.blocks),
        shuffle: Arc::clone(&executor.shuffle),
        job: job.id,
        stage: stage.id,
        partition: partition as usize,
        attempt,
        counters: Arc::default(),
    };
    let start_us = now_us();
    let mut written = (0, 0);
    accumulators::begin_task_updates();
    let _scope = crate::plan::task::enter_task(crate::plan::task::TaskScope {
        memory: Arc::clone(&executor.memory),
        spill_dir: executor.shuffle.spill_dir().to_path_buf(),
        counters: Arc::clone(&tc.counters),
    });
    let outcome = catch_task(|| match &stage.kind {
        StageKind::ShuffleMap(dep) => {
            written = run_shuffle_map(executor, dep.as_ref(), &tc)?;
            Ok(Vec::new())
        }
        StageKind::Result => (job.result_fn)(tc.partition, &tc),
    });
    let ended = Ended {
        accumulators: accumulators::end_task_updates(),
        timing: TaskTiming {
            start_us,
            end_us: now_us(),
            thread: rayon::current_thread_index().unwrap_or(0) as u32,
        },
        written,
    };
    report(executor, &tc, ended, outcome)
}

/// Runs the map task `tc` names of `dep` and keeps its output in the executor's shuffle
/// store: the records and bytes it wrote.
fn run_shuffle_map(
    executor: &Executor,
    dep: &dyn ShuffleDep,
    tc: &TaskContext,
) -> Result<(u64, u64)> {
    let output = dep.run_map_task(tc.partition, tc)?;
    let records = output.records;
    let me = executor.info.id.rank();
    let first_id = me - executor.peers.rank();
    let peers = executor.peers.size();
    let file =
        executor
            .shuffle
            .put_map_output(dep.id(), tc.partition, output, (first_id, me, peers))?;
    // The pieces spilled during the task are part of what it wrote.
    tc.counters.add_spill(file.on_disk);
    Ok((records, file.bytes))
}

/// What a task left besides its outcome.
struct Ended {
    accumulators: Vec<(u32, Vec<u8>)>,
    timing: TaskTiming,
    /// Shuffle records and bytes written (a map task's).
    written: (u64, u64),
}

/// The driver's report of the task `tc` names, which ended with `outcome` (its error, or
/// its panic's message).
fn report(
    executor: &Executor,
    tc: &TaskContext,
    ended: Ended,
    outcome: std::result::Result<Result<Vec<u8>>, String>,
) -> ToDriver {
    let (partition, attempt) = (tc.partition as u32, tc.attempt);
    let failed = |message: String, retry: bool, lost_shuffle| ToDriver::TaskFailed {
        job: tc.job,
        stage: tc.stage,
        partition,
        attempt,
        message,
        timing: ended.timing,
        retry,
        lost_shuffle,
    };
    match outcome {
        Ok(Ok(output)) => ToDriver::TaskDone {
            job: tc.job,
            stage: tc.stage,
            partition,
            attempt,
            metrics: TaskMetrics {
                cache_memory_peak: executor.blocks.memory().1,
                shuffle_write_records: ended.written.0,
                shuffle_write_bytes: ended.written.1,
                result_bytes: output.len() as u64,
                executor_memory_peak: process_memory_peak(),
                memory_peak: executor.memory.peak(),
                ..tc.counters.snapshot()
            },
            timing: ended.timing,
            output,
            accumulators: ended.accumulators,
            cached: std::mem::take(
                &mut *tc.counters.cached.lock().unwrap_or_else(|p| p.into_inner()),
            ),
        },
        Ok(Err(e)) => failed(e.to_string(), !e.is_permanent(), e.lost_shuffle()),
        Err(panic) => failed(panic, true, None),
    }
}
