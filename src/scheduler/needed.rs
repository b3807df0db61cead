//! Which stages of a job must run and which shuffles it may let go: the scheduler's view
//! of its lineage, given what exists (exchanged shuffles) and what is cached.

use std::collections::HashSet;

use crate::ids::{ShuffleId, StageId};
use crate::plan::stage::{Stage, reads_shuffle};
use crate::scheduler::state::DriverState;

/// The stages this job must run, found from the result stage back (as Spark submits
/// missing parent stages): a stage is wanted if a wanted stage reads its output other than
/// through a wholly cached RDD ([`needs`]) and that output is missing (never exchanged,
/// forgotten, or with an owner out of service).
pub(crate) fn wanted(stages: &[Stage], state: &DriverState) -> HashSet<StageId> {
    let mut wanted = HashSet::new();
    if let Some(last) = stages.last() {
        wanted.insert(last.id);
    }
    for stage in stages.iter().rev() {
        if !wanted.contains(&stage.id) {
            continue;
        }
        for &p in &stage.parents {
            let Some(dep) = stages[p.index()].shuffle() else {
                continue;
            };
            let available = state
                .shuffles
                .get(&dep.id())
                .is_some_and(|owners| owners.iter().all(|o| !state.out_of_service.contains(o)));
            if !available && needs(stage, dep.id(), state) {
                wanted.insert(p);
            }
        }
    }
    wanted
}

/// Exchanged shuffles that every stage of this job reading them has now read, and that the
/// result stage does not read: nothing left in the job needs their files (an iterative
/// job run as one action keeps at most the last iterations' shuffles). A stage yet to run
/// that reads one only through a wholly cached RDD ([`needs`]) does not hold it: PageRank's
/// links' shuffle goes once every links partition is cached, not after the last iteration.
/// A later job or task that needs one (a lost cached block, an old RDD used again)
/// computes it from lineage.
pub(crate) fn consumed(
    stages: &[Stage],
    wanted: &HashSet<StageId>,
    ran: &HashSet<StageId>,
    state: &DriverState,
) -> Vec<ShuffleId> {
    stages
        .iter()
        .filter_map(|p| Some((p, p.shuffle()?.id())))
        .filter(|(_, id)| state.shuffles.contains_key(id))
        .filter(|(p, id)| {
            let mut readers = stages
                .iter()
                .filter(|c| c.parents.contains(&p.id) && wanted.contains(&c.id))
                .peekable();
            readers.peek().is_some()
                && readers.all(|c| {
                    if ran.contains(&c.id) {
                        c.shuffle().is_some()
                    } else {
                        !needs(c, *id, state)
                    }
                })
        })
        .map(|(_, id)| id)
        .collect()
}

/// Whether `stage`'s tasks read `shuffle`: not when they read it only through persisted RDDs
/// whose every partition the driver knows cached, unless a task found such a block gone
/// in this job (`state.lost`).
pub(crate) fn needs(stage: &Stage, shuffle: ShuffleId, state: &DriverState) -> bool {
    state.lost.contains(&shuffle)
        || reads_shuffle(&stage.rdd, shuffle, &|rdd, p| {
            state
                .blocks
                .get(&(rdd, p as u32))
                .is_some_and(|e| !state.out_of_service.contains(e))
        })
}

/// The shuffles of `stages` that no stage that `ran` wrote or read: stages that ran (and
/// the stages they read from) keep theirs, as a lost cached block may need them again;
/// one further back only fed a skipped stage whose output exists.
pub(crate) fn obsolete(stages: &[Stage], ran: &HashSet<StageId>) -> Vec<ShuffleId> {
    let mut needed: HashSet<StageId> = ran.clone();
    for stage in stages.iter().filter(|s| ran.contains(&s.id)) {
        needed.extend(stage.parents.iter().copied());
    }
    stages
        .iter()
        .filter(|s| !needed.contains(&s.id))
        .filter_map(|s| s.shuffle().map(|d| d.id()))
        .collect()
}
