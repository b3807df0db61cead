//! A stage's tasks on the driver: where each must or would rather run, handing them out,
//! and what each report of a finished or failed task does.

use std::collections::HashSet;
use std::time::Instant;

use crate::config::ByteSize;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::ids::{ExecutorId, ShuffleId};
use crate::plan::job::Job;
use crate::plan::node::cached_blocks;
use crate::plan::stage::{Stage, shuffle_dependencies};
use crate::protocol::messages::{self, TO_DRIVER, ToDriver, ToExecutor};
use crate::protocol::metrics::now_us;
use crate::protocol::{ExecutorTable, TaskMetrics};
use crate::scheduler::needed::needs;
use crate::scheduler::state::DriverState;
use crate::scheduler::task_set::{Pending, TaskSet};
use crate::scheduler::wire::{is_stale, protocol, send};
use crate::transport::{Backoff, Group};

/// Attempts per task before the job fails (Spark's `spark.task.maxFailures`).
pub const MAX_TASK_ATTEMPTS: u32 = 4;

/// The executor a task must run on: the owner of the shuffle blocks it reads, if any, but
/// for shuffles it reads only through cached blocks (`through_cache`, released).
fn required_executor(
    stage: &Stage,
    partition: usize,
    state: &DriverState,
    through_cache: &HashSet<ShuffleId>,
) -> Result<Option<ExecutorId>> {
    let mut inputs = Vec::new();
    stage.rdd.shuffle_inputs(partition, &mut inputs);
    let mut owner = None;
    for (s, r) in inputs
        .into_iter()
        .filter(|(s, _)| !through_cache.contains(s))
    {
        let o = state
            .shuffles
            .get(&s)
            .map(|owners| owners[r])
            .ok_or_else(|| {
                Error::Other(format!(
                    "shuffle {s} read by {} was never exchanged",
                    stage.describe()
                ))
            })?;
        match owner {
            Some(prev) if prev != o => {
                return Err(Error::Other(format!(
                    "partition {partition} of {} reads shuffle blocks on executors {prev} and {o}; use repartition instead of coalesce here",
                    stage.describe()
                )));
            }
            _ => owner = Some(o),
        }
    }
    Ok(owner)
}

/// The executor holding a cached block that partition `partition` of `stage` reads.
fn preferred_executor(stage: &Stage, partition: usize, state: &DriverState) -> Option<ExecutorId> {
    let mut blocks = Vec::new();
    cached_blocks(stage.rdd.as_ref(), partition, &mut blocks);
    blocks
        .iter()
        .find_map(|&(rdd, p)| state.blocks.get(&(rdd, p as u32)).copied())
}

/// Runs one task per entry of `partitions`, keeping each executor at most `threads + 1`
/// tasks deep, and calls `on_output(index, bytes, accumulator updates)` for each success. A
/// failed task is retried (elsewhere when it can run elsewhere) up to [`MAX_TASK_ATTEMPTS`]
/// times.
pub(super) fn run_stage(
    world: &dyn Group,
    table: &ExecutorTable,
    state: &mut DriverState,
    job: &Job,
    stage: &Stage,
    partitions: &[usize],
    mut on_output: impl FnMut(usize, Vec<u8>, Vec<(u32, Vec<u8>)>) -> Result<()>,
) -> Result<()> {
    let started = Instant::now();
    let through_cache: HashSet<ShuffleId> = shuffle_dependencies(&stage.rdd)
        .iter()
        .map(|d| d.id())
        .filter(|s| !state.shuffles.contains_key(s) && !needs(stage, *s, state))
        .collect();
    let mut tasks = Vec::with_capacity(partitions.len());
    for (index, &partition) in partitions.iter().enumerate() {
        let required = required_executor(stage, partition, state, &through_cache)?;
        let preferred = preferred_executor(stage, partition, state);
        tasks.push(Pending::new(index, partition, required, preferred));
    }
    let in_service = table
        .iter()
        .filter(|e| !state.out_of_service.contains(&e.id));
    let mut set = TaskSet::new(tasks, in_service);
    state.events.post(&Event::StageStart {
        job: job.id,
        stage: stage.id,
        tasks: partitions.len(),
        time_us: now_us(),
    });
    let metrics = match run_tasks(world, state, job, stage, &mut set, &mut on_output) {
        Ok(metrics) => metrics,
        Err(e) => {
            state.events.post(&Event::StageFailed {
                job: job.id,
                stage: stage.id,
                time_us: now_us(),
                failure: e.to_string(),
            });
            return Err(e);
        }
    };
    log_stage_end(
        job,
        stage,
        partitions.len(),
        set.executors(),
        started,
        &metrics,
    );
    state.metrics.add(&metrics);
    state.events.post(&Event::StageEnd {
        job: job.id,
        stage: stage.id,
        tasks: partitions.len(),
        time_us: now_us(),
        metrics,
    });
    Ok(())
}

/// The log line of a finished stage: its tasks, time, cache use and memory.
fn log_stage_end(
    job: &Job,
    stage: &Stage,
    tasks: usize,
    executors: usize,
    started: Instant,
    metrics: &TaskMetrics,
) {
    let cache = if metrics.cache_hits + metrics.cache_misses > 0 {
        format!(
            ", cache hits {} misses {}",
            metrics.cache_hits, metrics.cache_misses
        )
    } else {
        String::new()
    };
    let memory = if metrics.spilled_bytes > 0 {
        format!(
            ", spilled {}, memory peak {} (largest executor)",
            ByteSize(metrics.spilled_bytes),
            ByteSize(metrics.memory_peak)
        )
    } else {
        format!(", memory peak {}", ByteSize(metrics.memory_peak))
    };
    tracing::info!(
        "job {}: {} ({}) finished {} task(s) on {} executor(s) in {:.3} s{cache}{memory}",
        job.id,
        stage.describe(),
        stage.rdd.describe(),
        tasks,
        executors,
        started.elapsed().as_secs_f64()
    );
}

/// Runs the tasks of `set` until every one has succeeded (their metrics summed), and
/// calls `on_output` for each success; an error when a task fails for good, none can run,
/// or a shuffle they read was lost.
fn run_tasks(
    world: &dyn Group,
    state: &mut DriverState,
    job: &Job,
    stage: &Stage,
    set: &mut TaskSet,
    on_output: &mut impl FnMut(usize, Vec<u8>, Vec<(u32, Vec<u8>)>) -> Result<()>,
) -> Result<TaskMetrics> {
    let mut progress = Progress::default();
    let mut backoff = Backoff::new();
    loop {
        for (e, task) in set.assign() {
            let run = ToExecutor::RunTask {
                job: job.id,
                stage: stage.id,
                partition: task as u32,
                attempt: set.attempt(task),
            };
            send(world, e, &run)?;
        }
        if set.is_done() {
            return match progress.lost_shuffle {
                Some((shuffle, executor)) => Err(Error::ShuffleLost {
                    shuffle,
                    executor: executor.rank(),
                }),
                None => Ok(progress.metrics),
            };
        }
        if let Some(partition) = set.stuck() {
            return Err(Error::Other(format!(
                "job {} ({}): task {partition} of {} can run on no executor in service",
                job.id,
                job.name,
                stage.describe()
            )));
        }
        let Some(envelope) = world.try_recv(None, TO_DRIVER)? else {
            backoff.snooze();
            continue;
        };
        backoff.reset();
        let from = ExecutorId(envelope.source);
        let msg: ToDriver =
            messages::decode(&envelope.data, "executor report").map_err(Error::Other)?;
        on_report(
            state,
            job,
            stage,
            set,
            &mut progress,
            on_output,
            (from, msg),
        )?;
    }
}

/// What a stage's reports have come to so far.
#[derive(Default)]
struct Progress {
    /// A task that needed a released shuffle: the stage ends once the running tasks
    /// report.
    lost_shuffle: Option<(ShuffleId, ExecutorId)>,
    /// The finished tasks' metrics, summed.
    metrics: TaskMetrics,
}

/// Takes in one executor's report `from, msg` about the tasks of `set`.
fn on_report(
    state: &mut DriverState,
    job: &Job,
    stage: &Stage,
    set: &mut TaskSet,
    progress: &mut Progress,
    on_output: &mut impl FnMut(usize, Vec<u8>, Vec<(u32, Vec<u8>)>) -> Result<()>,
    (from, msg): (ExecutorId, ToDriver),
) -> Result<()> {
    // The event of a task of this stage that ended on `from`.
    let task_end = |partition, attempt, timing, metrics, failure| Event::TaskEnd {
        job: job.id,
        stage: stage.id,
        partition,
        attempt,
        executor: from.rank(),
        timing,
        metrics,
        failure,
    };
    match msg {
        ToDriver::TaskDone {
            job: j,
            stage: s,
            partition,
            attempt,
            output,
            accumulators,
            metrics,
            timing,
            cached,
        } if j == job.id && s == stage.id && set.is_running(partition, attempt) => {
            let index = set.done(from, partition);
            progress.metrics.add(&metrics);
            state
                .events
                .post(&task_end(partition, attempt, timing, metrics, None));
            for (rdd, p) in cached {
                state.blocks.insert((rdd, p), from);
            }
            on_output(index, output, accumulators)
        }
        ToDriver::TaskFailed {
            job: j,
            stage: s,
            partition,
            attempt,
            message,
            timing,
            retry,
            lost_shuffle,
        } if j == job.id && s == stage.id && set.is_running(partition, attempt) => {
            let failed = Some(message.clone());
            let end = task_end(partition, attempt, timing, TaskMetrics::default(), failed);
            state.events.post(&end);
            let failure = Failure {
                from,
                partition,
                attempt,
                message,
                retry,
                lost_shuffle,
            };
            after_failure(job, stage, set, &mut progress.lost_shuffle, failure)
        }
        stale if is_stale(&stale, job.id) => Ok(()),
        other => Err(protocol(from, &other)),
    }
}

/// A task's failure, as its executor reported it.
struct Failure {
    from: ExecutorId,
    partition: u32,
    attempt: u32,
    message: String,
    /// Whether another attempt may succeed.
    retry: bool,
    /// The released shuffle the task needed, if that is why it failed.
    lost_shuffle: Option<ShuffleId>,
}

/// What a failed task leads to: once a task of the stage lost a shuffle, the stage ends
/// when its running tasks have reported (noted in `lost_shuffle`); a task that may not
/// run again, or has failed [`MAX_TASK_ATTEMPTS`] times, fails the job; any other runs
/// again (elsewhere when it can).
fn after_failure(
    job: &Job,
    stage: &Stage,
    set: &mut TaskSet,
    lost_shuffle: &mut Option<(ShuffleId, ExecutorId)>,
    f: Failure,
) -> Result<()> {
    let (from, partition, message, s) = (f.from, f.partition, &f.message, stage.id);
    tracing::warn!(
        "task {partition} of stage {s} (attempt {}) failed on executor {from}: {message}",
        f.attempt + 1
    );
    if let Some(shuffle) = f.lost_shuffle {
        *lost_shuffle = Some((shuffle, from));
    }
    if lost_shuffle.is_some() {
        set.abandon(from, partition);
        return Ok(());
    }
    if !f.retry {
        return Err(Error::Task(format!(
            "job {} ({}) aborted: task {partition} of stage {s} failed on executor {from} (not retried): {message}",
            job.id, job.name
        )));
    }
    if f.attempt + 1 >= MAX_TASK_ATTEMPTS {
        return Err(Error::Task(format!(
            "job {} ({}) aborted: task {partition} of stage {s} failed {MAX_TASK_ATTEMPTS} times; last failure on executor {from}: {message}",
            job.id, job.name
        )));
    }
    set.failed(from, partition);
    Ok(())
}
