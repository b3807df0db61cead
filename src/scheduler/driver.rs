//! The driver's side of a job: check lineages, run stages in order, place and retry tasks.

use std::collections::HashSet;
use std::time::Instant;

use crate::config::ByteSize;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::ids::{ExecutorId, ShuffleId, StageId};
use crate::plan::job::Job;
use crate::plan::node::cached_blocks;
use crate::plan::stage::{Stage, StageKind, fingerprint, plan, shuffle_dependencies};
use crate::protocol::messages::{self, TO_DRIVER, TO_EXECUTOR, ToDriver, ToExecutor};
use crate::protocol::metrics::now_us;
use crate::protocol::{ExecutorTable, TaskMetrics};
use crate::scheduler::needed::{consumed, needs, obsolete, wanted};
use crate::scheduler::task_set::{Pending, TaskSet};
use crate::transport::{Backoff, Group};

/// Attempts per task before the job fails (Spark's `spark.task.maxFailures`).
pub const MAX_TASK_ATTEMPTS: u32 = 4;

pub use crate::scheduler::state::{DriverState, ExchangeStats};
pub use crate::scheduler::task_set::LOCALITY_WAIT;

/// What a finished job produced on the driver.
pub struct JobOutput {
    /// The encoded result of each requested partition.
    pub results: Vec<Vec<u8>>,
    /// Accumulator updates of every successful task, once per task.
    pub accumulator_updates: Vec<(u32, Vec<u8>)>,
    /// Shuffles of this job's lineage that no stage of it read or wrote: their consumers'
    /// outputs exist, so their files can go (the driver has forgotten them; a lost block
    /// that needs one computes it again from lineage).
    pub obsolete_shuffles: Vec<ShuffleId>,
}

/// Runs `job` on the executors of `table`. The caller announces the end of the job
/// (`EndJob`) either way.
pub fn run_job(
    world: &dyn Group,
    table: &ExecutorTable,
    state: &mut DriverState,
    job: &Job,
) -> Result<JobOutput> {
    let started = Instant::now();
    let executors: Vec<ExecutorId> = table.iter().map(|e| e.id).collect();
    begin_job(world, &executors, job)?;
    let stages = plan(&job.final_rdd);
    let cx = JobCx {
        world,
        table,
        job,
        executors: &executors,
        stages: &stages,
    };
    let mut out = Outputs {
        results: vec![Vec::new(); job.partitions.len()],
        result_bytes: 0,
        updates: Vec::new(),
        ran: HashSet::new(),
    };
    let mut injected = false;
    state.lost.clear();
    // Runs the stages in order; after an executor leaves or a released shuffle is found
    // needed, starts over (stages whose output still exists are skipped, lost ones
    // computed again).
    'stages: loop {
        let wanted = wanted(&stages, state);
        // (After an executor leaves, stages run again: what they read must stay.)
        out.ran.clear();
        for stage in &stages {
            if !injected
                && let Some(e) = crate::faults::decommission_at(job.id, stage.id.0).map(ExecutorId)
            {
                injected = true;
                state.decommission(e);
                send(world, e, &ToExecutor::Decommission { job: job.id })?;
                continue 'stages;
            }
            let flow = match &stage.kind {
                StageKind::ShuffleMap(_) if !wanted.contains(&stage.id) => {
                    skipped(state, job, stage, "no stage of this job needs it");
                    Flow::Next
                }
                StageKind::ShuffleMap(dep) => {
                    run_map_stage(&cx, state, stage, dep.id(), &wanted, &mut out)?
                }
                StageKind::Result => run_result_stage(&cx, state, stage, &mut out)?,
            };
            if let Flow::Restart = flow {
                continue 'stages;
            }
        }
        break;
    }
    tracing::info!(
        "job {} ({}) finished: {} stage(s) in {:.3} s",
        job.id,
        job.name,
        stages.len(),
        started.elapsed().as_secs_f64()
    );
    let obsolete_shuffles = obsolete(&stages, &out.ran);
    remove_obsolete(state, job, &obsolete_shuffles);
    Ok(JobOutput {
        results: out.results,
        accumulator_updates: out.updates,
        obsolete_shuffles,
    })
}

/// What a job's stages are run with.
struct JobCx<'a> {
    world: &'a dyn Group,
    table: &'a ExecutorTable,
    job: &'a Job,
    executors: &'a [ExecutorId],
    stages: &'a [Stage],
}

/// What a job's stages have produced so far.
struct Outputs {
    results: Vec<Vec<u8>>,
    result_bytes: u64,
    updates: Vec<(u32, Vec<u8>)>,
    /// The stages run since the job last started over.
    ran: HashSet<StageId>,
}

/// Whether the job goes on with its next stage or starts over.
enum Flow {
    Next,
    Restart,
}

/// Starts `job` on every executor and checks that each built the driver's lineage.
fn begin_job(world: &dyn Group, executors: &[ExecutorId], job: &Job) -> Result<()> {
    for &e in executors {
        send(world, e, &ToExecutor::BeginJob { job: job.id })?;
    }
    let expected = fingerprint(&job.final_rdd, &job.partitions);
    for _ in executors {
        let (from, msg) = recv(world, job.id)?;
        match msg {
            ToDriver::Ready {
                job: j,
                fingerprint,
            } if j == job.id && fingerprint == expected => {}
            ToDriver::Ready { job: j, .. } if j != job.id => {
                return Err(Error::LineageMismatch(format!(
                    "executor {from} is at job {j} while the driver starts job {} ({}): every rank must run the same actions",
                    job.id, job.name
                )));
            }
            ToDriver::Ready { fingerprint, .. } => {
                return Err(Error::LineageMismatch(format!(
                    "executor {from} built a different lineage for job {} ({}): fingerprint {fingerprint:016x}, driver {expected:016x}; the driver program must build the same RDDs on every rank",
                    job.id, job.name
                )));
            }
            other => return Err(protocol(from, &other)),
        }
    }
    Ok(())
}

/// The executors not decommissioned; an error when there are none.
fn in_service(executors: &[ExecutorId], state: &DriverState) -> Result<Vec<ExecutorId>> {
    let in_service: Vec<ExecutorId> = executors
        .iter()
        .copied()
        .filter(|e| !state.out_of_service.contains(e))
        .collect();
    if in_service.is_empty() {
        return Err(Error::Other("no executor is in service".into()));
    }
    Ok(in_service)
}

/// Runs the map stage of `shuffle` (unless its output exists where its readers will run)
/// and its exchange, then removes the shuffles every stage that needs them has read.
fn run_map_stage(
    cx: &JobCx,
    state: &mut DriverState,
    stage: &Stage,
    shuffle: ShuffleId,
    wanted: &HashSet<StageId>,
    out: &mut Outputs,
) -> Result<Flow> {
    let (world, job) = (cx.world, cx.job);
    let in_service = in_service(cx.executors, state)?;
    let owners = choose_owners(stage, cx.stages, job, &in_service, state);
    if state.shuffles.get(&shuffle) == Some(&owners) {
        skipped(state, job, stage, "its output exists");
        return Ok(Flow::Next);
    }
    for &e in cx.executors {
        let msg = ToExecutor::PrepareShuffle {
            job: job.id,
            shuffle,
            owners: owners.clone(),
        };
        send(world, e, &msg)?;
    }
    let tasks: Vec<usize> = (0..stage.rdd.num_partitions()).collect();
    let updates = &mut out.updates;
    let outcome = run_stage(world, cx.table, state, job, stage, &tasks, |_, _, acc| {
        updates.extend(acc);
        Ok(())
    });
    if recompute(world, cx.executors, job, stage, &outcome, state)? {
        return Ok(Flow::Restart);
    }
    outcome?;
    out.ran.insert(stage.id);
    let stats = exchange(world, cx.executors, job, shuffle)?;
    state.events.post(&stats.event());
    state.exchanges.push(stats);
    state.shuffles.insert(shuffle, owners);
    for done in consumed(cx.stages, wanted, &out.ran, state) {
        tracing::info!(
            "job {}: shuffle {done} read by every stage that needs it: its files are removed",
            job.id
        );
        state.shuffles.remove(&done);
        removed(state, job, done);
        for &e in cx.executors {
            let msg = ToExecutor::RemoveShuffle {
                job: job.id,
                shuffle: done,
            };
            send(world, e, &msg)?;
        }
    }
    Ok(Flow::Next)
}

/// Runs the result stage, keeping each partition's result.
fn run_result_stage(
    cx: &JobCx,
    state: &mut DriverState,
    stage: &Stage,
    out: &mut Outputs,
) -> Result<Flow> {
    let job = cx.job;
    in_service(cx.executors, state)?;
    out.ran.insert(stage.id);
    let Outputs {
        results,
        result_bytes,
        updates,
        ..
    } = out;
    let outcome = run_stage(
        cx.world,
        cx.table,
        state,
        job,
        stage,
        &job.partitions,
        |i, bytes, acc| {
            // A partition computed again (after an executor left) replaces its earlier
            // result.
            *result_bytes = *result_bytes + bytes.len() as u64 - results[i].len() as u64;
            check_result_size(job, *result_bytes)?;
            results[i] = bytes;
            updates.extend(acc);
            Ok(())
        },
    );
    if recompute(cx.world, cx.executors, job, stage, &outcome, state)? {
        return Ok(Flow::Restart);
    }
    outcome?;
    Ok(Flow::Next)
}

/// Forgets the shuffles of `obsolete` the driver still knows (their files go with them).
fn remove_obsolete(state: &mut DriverState, job: &Job, obsolete: &[ShuffleId]) {
    let removed_now: Vec<ShuffleId> = obsolete
        .iter()
        .copied()
        .filter(|s| state.shuffles.remove(s).is_some())
        .collect();
    for &s in &removed_now {
        removed(state, job, s);
    }
    if !removed_now.is_empty() {
        tracing::info!(
            "job {}: shuffle(s) {removed_now:?} no longer needed: their files are removed",
            job.id
        );
    }
}

/// After a stage ended because a task needed a released shuffle (`outcome` is
/// [`Error::ShuffleLost`]): notes the shuffle as needed for the rest of the job, drops what
/// the stage's finished tasks wrote (its tasks all run again), and says to start over, so
/// that the shuffle's map stage runs again. A shuffle found lost a second time fails the
/// job instead: computing it again did not help.
fn recompute(
    world: &dyn Group,
    executors: &[ExecutorId],
    job: &Job,
    stage: &Stage,
    outcome: &Result<()>,
    state: &mut DriverState,
) -> Result<bool> {
    let Err(Error::ShuffleLost { shuffle, .. }) = outcome else {
        return Ok(false);
    };
    if !state.lost.insert(*shuffle) {
        return Ok(false);
    }
    tracing::warn!(
        "job {}: {} read a cached block that is gone and needs shuffle {shuffle}, released since: its map stage runs again",
        job.id,
        stage.describe()
    );
    if let Some(dep) = stage.shuffle() {
        for &e in executors {
            let msg = ToExecutor::RemoveShuffle {
                job: job.id,
                shuffle: dep.id(),
            };
            send(world, e, &msg)?;
        }
    }
    Ok(true)
}

/// Reduce partition owners for the shuffle of `stage`: the executor that will run each
/// consuming task owns what that task reads (so co-partitioned shuffles, as in a join,
/// land together); partitions no task of this job reads go round-robin.
fn choose_owners(
    stage: &Stage,
    stages: &[Stage],
    job: &Job,
    executors: &[ExecutorId],
    state: &DriverState,
) -> Vec<ExecutorId> {
    let dep = stage.shuffle().expect("a shuffle map stage");
    let n = dep.num_reduce_partitions();
    let mut owners: Vec<Option<ExecutorId>> = vec![None; n];
    for consumer in stages.iter().filter(|s| s.parents.contains(&stage.id)) {
        let tasks: Vec<usize> = match consumer.kind {
            StageKind::Result => job.partitions.clone(),
            StageKind::ShuffleMap(_) => (0..consumer.rdd.num_partitions()).collect(),
        };
        for p in tasks {
            let mut inputs = Vec::new();
            consumer.rdd.shuffle_inputs(p, &mut inputs);
            // Follow an input already exchanged in an earlier job, else spread by task.
            let executor = inputs
                .iter()
                .find_map(|(s, r)| {
                    (*s != dep.id())
                        .then(|| state.shuffles.get(s).map(|o| o[*r]))
                        .flatten()
                })
                .unwrap_or(executors[p % executors.len()]);
            for (s, r) in inputs {
                if s == dep.id() {
                    owners[r].get_or_insert(executor);
                }
            }
        }
    }
    owners
        .into_iter()
        .enumerate()
        .map(|(r, o)| o.unwrap_or(executors[r % executors.len()]))
        .collect()
}

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
fn run_stage(
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
        partitions.len(),
        set.executors(),
        started.elapsed().as_secs_f64()
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
    // A task that needed a released shuffle: the stage ends once the running tasks report.
    let mut lost_shuffle: Option<(ShuffleId, ExecutorId)> = None;
    let mut backoff = Backoff::new();
    let mut metrics = TaskMetrics::default();
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
            if let Some((shuffle, executor)) = lost_shuffle {
                return Err(Error::ShuffleLost {
                    shuffle,
                    executor: executor.rank(),
                });
            }
            break;
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
        match msg {
            ToDriver::TaskDone {
                job: j,
                stage: s,
                partition,
                attempt,
                output,
                accumulators,
                metrics: task_metrics,
                timing,
                cached,
            } if j == job.id && s == stage.id && set.is_running(partition, attempt) => {
                let index = set.done(from, partition);
                metrics.add(&task_metrics);
                state.events.post(&Event::TaskEnd {
                    job: j,
                    stage: s,
                    partition,
                    attempt,
                    executor: from.rank(),
                    timing,
                    metrics: task_metrics,
                    failure: None,
                });
                for (rdd, p) in cached {
                    state.blocks.insert((rdd, p), from);
                }
                on_output(index, output, accumulators)?;
            }
            ToDriver::TaskFailed {
                job: j,
                stage: s,
                partition,
                attempt,
                message,
                timing,
                retry,
                lost_shuffle: lost_here,
            } if j == job.id && s == stage.id && set.is_running(partition, attempt) => {
                state.events.post(&Event::TaskEnd {
                    job: j,
                    stage: s,
                    partition,
                    attempt,
                    executor: from.rank(),
                    timing,
                    metrics: TaskMetrics::default(),
                    failure: Some(message.clone()),
                });
                tracing::warn!(
                    "task {partition} of stage {s} (attempt {}) failed on executor {from}: {message}",
                    attempt + 1
                );
                if let Some(shuffle) = lost_here {
                    lost_shuffle = Some((shuffle, from));
                }
                if lost_shuffle.is_some() {
                    set.abandon(from, partition);
                    continue;
                }
                if !retry {
                    return Err(Error::Task(format!(
                        "job {} ({}) aborted: task {partition} of stage {s} failed on executor {from} (not retried): {message}",
                        job.id, job.name
                    )));
                }
                if attempt + 1 >= MAX_TASK_ATTEMPTS {
                    return Err(Error::Task(format!(
                        "job {} ({}) aborted: task {partition} of stage {s} failed {MAX_TASK_ATTEMPTS} times; last failure on executor {from}: {message}",
                        job.id, job.name
                    )));
                }
                set.failed(from, partition);
            }
            stale if is_stale(&stale, job.id) => {}
            other => return Err(protocol(from, &other)),
        }
    }
    Ok(metrics)
}

/// Fails `job` once its results total more than it may return.
fn check_result_size(job: &Job, bytes: u64) -> Result<()> {
    if job.max_result_bytes == 0 || bytes <= job.max_result_bytes {
        return Ok(());
    }
    Err(Error::Other(format!(
        "job {} ({}): its results total more than --max-result-size ({}); an action's result reaches the driver and every executor: write a large one with save_as_text_file or save_as_binary instead, or raise --max-result-size",
        job.id,
        job.name,
        ByteSize(job.max_result_bytes)
    )))
}

/// Notes (in the log and the event log) that `stage` is skipped and why.
fn skipped(state: &mut DriverState, job: &Job, stage: &Stage, reason: &str) {
    tracing::info!("job {}: {} skipped: {reason}", job.id, stage.describe());
    state.events.post(&Event::StageSkipped {
        job: job.id,
        stage: stage.id,
        reason: reason.into(),
        time_us: now_us(),
    });
}

fn removed(state: &mut DriverState, job: &Job, shuffle: ShuffleId) {
    state.events.post(&Event::ShuffleRemoved {
        job: job.id,
        shuffle,
        time_us: now_us(),
    });
}

/// Reports about an earlier job (possible after a failed job) are dropped.
fn is_stale(msg: &ToDriver, current: u64) -> bool {
    let job = match msg {
        ToDriver::Ready { job, .. }
        | ToDriver::TaskDone { job, .. }
        | ToDriver::TaskFailed { job, .. }
        | ToDriver::ExchangeDone { job, .. }
        | ToDriver::ExchangeFailed { job, .. } => *job,
    };
    job < current
}

fn exchange(
    world: &dyn Group,
    executors: &[ExecutorId],
    job: &Job,
    shuffle: ShuffleId,
) -> Result<ExchangeStats> {
    let started = Instant::now();
    for &e in executors {
        send(
            world,
            e,
            &ToExecutor::Exchange {
                job: job.id,
                shuffle,
            },
        )?;
    }
    let (mut bytes, mut cross_node, mut rounds, mut one_sided) = (0, 0, 0, true);
    let mut failure = None;
    let mut failure_is_cause = false;
    for _ in executors {
        let (from, msg) = recv(world, job.id)?;
        match msg {
            ToDriver::ExchangeDone {
                job: j,
                shuffle: s,
                bytes: b,
                cross_node: c,
                rounds: r,
                one_sided: o,
            } if j == job.id && s == shuffle => {
                bytes += b;
                cross_node += c;
                rounds = rounds.max(r);
                one_sided &= o;
            }
            ToDriver::ExchangeFailed {
                job: j,
                shuffle: s,
                message,
            } if j == job.id && s == shuffle => {
                // The executor that failed, not one that stopped because it did.
                let cause = !message.contains(crate::shuffle::exchange::ABANDONED);
                if failure.is_none() || (cause && !failure_is_cause) {
                    failure = Some(format!("executor {from}: {message}"));
                    failure_is_cause = cause;
                }
            }
            other => return Err(protocol(from, &other)),
        }
    }
    if let Some(message) = failure {
        return Err(Error::Other(format!(
            "exchange of shuffle {shuffle} failed on {message}"
        )));
    }
    let stats = ExchangeStats {
        job: job.id,
        shuffle,
        bytes,
        cross_node,
        rounds,
        one_sided,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        "job {}: shuffle {shuffle} exchanged {bytes} bytes in {rounds} round(s) by {} ({cross_node} bytes across nodes), {:.3} s",
        job.id,
        match stats.mode() {
            "in place" => "reading in place",
            mode => mode,
        },
        stats.seconds
    );
    Ok(stats)
}

fn send(world: &dyn Group, to: ExecutorId, msg: &ToExecutor) -> Result<()> {
    world.send(to.rank(), TO_EXECUTOR, &messages::encode(msg))?;
    Ok(())
}

/// Next report from any executor about job `current` or later; stale ones are dropped.
fn recv(world: &dyn Group, current: u64) -> Result<(ExecutorId, ToDriver)> {
    loop {
        let envelope = world.recv(None, TO_DRIVER)?;
        let msg = messages::decode(&envelope.data, "executor report").map_err(Error::Other)?;
        if !is_stale(&msg, current) {
            return Ok((ExecutorId(envelope.source), msg));
        }
    }
}

fn protocol(from: ExecutorId, msg: &ToDriver) -> Error {
    Error::Other(format!("unexpected report from executor {from}: {msg:?}"))
}
