//! Stages: the lineage of a job cut at its shuffle dependencies, and the lineage fingerprint.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::ids::{RddId, ShuffleId, StageId};
use crate::plan::node::ShuffleDep;
use crate::plan::node::{Dependency, Node};

/// What a stage's tasks produce.
#[derive(Clone)]
pub enum StageKind {
    /// Map outputs of a shuffle, kept on the executors.
    ShuffleMap(Arc<dyn ShuffleDep>),
    /// The action's results, sent to the driver.
    Result,
}

/// Tasks that run one pipelined pass over `rdd`'s partitions.
#[derive(Clone)]
pub struct Stage {
    /// Index in [`plan`]'s order (parents before children, result stage last).
    pub id: StageId,
    pub kind: StageKind,
    pub rdd: Arc<dyn Node>,
    /// Stages whose shuffle outputs this one reads.
    pub parents: Vec<StageId>,
}

impl Stage {
    pub fn shuffle(&self) -> Option<&Arc<dyn ShuffleDep>> {
        match &self.kind {
            StageKind::ShuffleMap(dep) => Some(dep),
            StageKind::Result => None,
        }
    }

    pub fn describe(&self) -> String {
        match &self.kind {
            StageKind::ShuffleMap(dep) => {
                format!("shuffle map stage {} (shuffle {})", self.id, dep.id())
            }
            StageKind::Result => format!("result stage {}", self.id),
        }
    }
}

/// The shuffle dependencies reachable from `node` through narrow dependencies only.
pub fn shuffle_dependencies(node: &Arc<dyn Node>) -> Vec<Arc<dyn ShuffleDep>> {
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    let mut stack = vec![Arc::clone(node)];
    while let Some(n) = stack.pop() {
        if !seen.insert(n.id()) {
            continue;
        }
        for dep in n.dependencies().into_iter().rev() {
            match dep {
                Dependency::Narrow(parent) => stack.push(parent),
                Dependency::Shuffle(s) => {
                    if !found.iter().any(|f: &Arc<dyn ShuffleDep>| f.id() == s.id()) {
                        found.push(s)
                    }
                }
            }
        }
    }
    found
}

/// Whether computing `node` reads shuffle `shuffle`, where a persisted RDD whose every
/// partition is cached (as `cached` says) is read from its blocks and not computed: Spark's
/// scheduler does not look behind a fully cached RDD for missing parent stages either.
/// PageRank's iterations read the links' shuffle only through the cached links.
pub fn reads_shuffle(
    node: &Arc<dyn Node>,
    shuffle: ShuffleId,
    cached: &dyn Fn(RddId, usize) -> bool,
) -> bool {
    let mut seen = HashSet::new();
    let mut stack = vec![Arc::clone(node)];
    while let Some(n) = stack.pop() {
        if !seen.insert(n.id()) || fully_cached(n.as_ref(), cached) {
            continue;
        }
        for dep in n.dependencies() {
            match dep {
                Dependency::Narrow(parent) => stack.push(parent),
                Dependency::Shuffle(s) if s.id() == shuffle => return true,
                Dependency::Shuffle(_) => {}
            }
        }
    }
    false
}

/// A persisted RDD with a block cached for each of its partitions.
fn fully_cached(node: &dyn Node, cached: &dyn Fn(RddId, usize) -> bool) -> bool {
    let n = node.num_partitions();
    n > 0
        && (0..n).all(|split| {
            node.cached_block(split)
                .is_some_and(|(rdd, p)| cached(rdd, p))
        })
}

/// Splits the lineage of `final_rdd` into stages, parents first, the result stage last.
pub fn plan(final_rdd: &Arc<dyn Node>) -> Vec<Stage> {
    fn visit(
        dep: &Arc<dyn ShuffleDep>,
        stages: &mut Vec<Stage>,
        by_shuffle: &mut HashMap<ShuffleId, StageId>,
    ) -> StageId {
        if let Some(&id) = by_shuffle.get(&dep.id()) {
            return id;
        }
        let rdd = dep.parent();
        let parents = shuffle_dependencies(&rdd)
            .iter()
            .map(|d| visit(d, stages, by_shuffle))
            .collect();
        let id = StageId(stages.len() as u32);
        stages.push(Stage {
            id,
            kind: StageKind::ShuffleMap(Arc::clone(dep)),
            rdd,
            parents,
        });
        by_shuffle.insert(dep.id(), id);
        id
    }
    let mut stages = Vec::new();
    let mut by_shuffle = HashMap::new();
    let parents = shuffle_dependencies(final_rdd)
        .iter()
        .map(|d| visit(d, &mut stages, &mut by_shuffle))
        .collect();
    stages.push(Stage {
        id: StageId(stages.len() as u32),
        kind: StageKind::Result,
        rdd: Arc::clone(final_rdd),
        parents,
    });
    stages
}

/// A hash of the whole lineage (ids, operators, partition counts, dependencies) and the
/// requested partitions. Equal on every rank that built the same program.
pub fn fingerprint(final_rdd: &Arc<dyn Node>, partitions: &[usize]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    partitions.hash(&mut h);
    let mut seen: HashSet<RddId> = HashSet::new();
    let mut stack = vec![Arc::clone(final_rdd)];
    while let Some(n) = stack.pop() {
        if !seen.insert(n.id()) {
            continue;
        }
        (n.id(), n.describe(), n.num_partitions(), n.input_identity()).hash(&mut h);
        for dep in n.dependencies() {
            match dep {
                Dependency::Narrow(p) => {
                    (0u8, p.id()).hash(&mut h);
                    stack.push(p);
                }
                Dependency::Shuffle(s) => {
                    (1u8, s.id(), s.num_reduce_partitions(), s.parent().id()).hash(&mut h);
                    stack.push(s.parent());
                }
            }
        }
    }
    h.finish()
}
