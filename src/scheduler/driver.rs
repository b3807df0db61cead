//! The driver's side of a job: check lineages, run stages in order, place and retry tasks.

use std::collections::HashSet;
use std::time::Instant;

use crate::config::ByteSize;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::ids::{ExecutorId, ShuffleId, StageId};
use crate::plan::job::Job;
use crate::plan::node::ShuffleDep;
use crate::plan::stage::{Stage, StageKind, fingerprint, plan};
use crate::protocol::ExecutorTable;
use crate::protocol::messages::{ToDriver, ToExecutor};
use crate::protocol::metrics::now_us;
use crate::scheduler::exchange::exchange;
use crate::scheduler::needed::{consumed, obsolete, wanted};
use crate::scheduler::tasks::run_stage;
use crate::scheduler::wire::{protocol, recv, send, send_all};
use crate::transport::Group;

pub use crate::scheduler::state::{DriverState, ExchangeStats};
pub use crate::scheduler::task_set::LOCALITY_WAIT;
pub use crate::scheduler::tasks::MAX_TASK_ATTEMPTS;

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
            let in_service = in_service(&executors, state)?;
            let flow = match &stage.kind {
                StageKind::ShuffleMap(_) if !wanted.contains(&stage.id) => {
                    skipped(state, job, stage, "no stage of this job needs it");
                    Flow::Next
                }
                StageKind::ShuffleMap(dep) => run_map_stage(
                    &cx,
                    state,
                    stage,
                    dep.as_ref(),
                    &wanted,
                    &in_service,
                    &mut out,
                )?,
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
    send_all(world, executors, &ToExecutor::BeginJob { job: job.id })?;
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

/// Runs the map stage of the shuffle `dep` (unless its output exists where its readers,
/// placed among `in_service`, will run) and its exchange, then removes the shuffles every
/// stage that needs them has read.
fn run_map_stage(
    cx: &JobCx,
    state: &mut DriverState,
    stage: &Stage,
    dep: &dyn ShuffleDep,
    wanted: &HashSet<StageId>,
    in_service: &[ExecutorId],
    out: &mut Outputs,
) -> Result<Flow> {
    let (world, job, shuffle) = (cx.world, cx.job, dep.id());
    let owners = choose_owners(stage, dep, cx.stages, job, in_service, state);
    if state.shuffles.get(&shuffle) == Some(&owners) {
        skipped(state, job, stage, "its output exists");
        return Ok(Flow::Next);
    }
    let prepare = ToExecutor::PrepareShuffle {
        job: job.id,
        shuffle,
        owners: owners.clone(),
    };
    send_all(world, cx.executors, &prepare)?;
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
        let remove = ToExecutor::RemoveShuffle {
            job: job.id,
            shuffle: done,
        };
        send_all(world, cx.executors, &remove)?;
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
        let remove = ToExecutor::RemoveShuffle {
            job: job.id,
            shuffle: dep.id(),
        };
        send_all(world, executors, &remove)?;
    }
    Ok(true)
}

/// Reduce partition owners for `dep`, the shuffle of `stage`: the executor that will run each
/// consuming task owns what that task reads (so co-partitioned shuffles, as in a join,
/// land together); partitions no task of this job reads go round-robin.
fn choose_owners(
    stage: &Stage,
    dep: &dyn ShuffleDep,
    stages: &[Stage],
    job: &Job,
    executors: &[ExecutorId],
    state: &DriverState,
) -> Vec<ExecutorId> {
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
