//! What the driver tells its listeners: events built from the plan and the reports.

use std::collections::HashSet;
use std::sync::Arc;

use crate::events::{Event, StageInfo};
use crate::ids::RddId;
use crate::plan::job::Job;
use crate::plan::node::{Dependency, Node};
use crate::plan::stage::{Stage, StageKind, plan};
use crate::protocol::metrics::now_us;

/// The `job_start` event of `job`: its stages, their parents and lineages.
pub fn job_start(job: &Job) -> Event {
    let stages = plan(&job.final_rdd);
    Event::JobStart {
        job: job.id,
        name: job.name.clone(),
        time_us: now_us(),
        stages: stages.iter().map(stage_info).collect(),
    }
}

fn stage_info(stage: &Stage) -> StageInfo {
    let (kind, shuffle) = match &stage.kind {
        StageKind::ShuffleMap(dep) => ("shuffle_map", Some(dep.id())),
        StageKind::Result => ("result", None),
    };
    let mut lineage = String::new();
    render(&stage.rdd, 0, &mut HashSet::new(), &mut lineage);
    StageInfo {
        stage: stage.id,
        kind: kind.into(),
        shuffle,
        partitions: stage.rdd.num_partitions(),
        parents: stage.parents.clone(),
        lineage,
    }
}

/// The RDDs one stage pipelines, as `explain()` draws them, stopping at the shuffles it
/// reads (their stages draw the rest).
fn render(node: &Arc<dyn Node>, depth: usize, seen: &mut HashSet<RddId>, out: &mut String) {
    let pad = "  ".repeat(depth);
    out.push_str(&format!(
        "{pad}({}) {} [rdd {}]\n",
        node.num_partitions(),
        node.describe(),
        node.id()
    ));
    if !seen.insert(node.id()) {
        return;
    }
    let deps = node.dependencies();
    let inner = if deps.len() > 1 { depth + 1 } else { depth };
    for dep in deps {
        match dep {
            Dependency::Narrow(parent) => render(&parent, inner, seen, out),
            Dependency::Shuffle(s) => out.push_str(&format!("{pad} +- reads shuffle {}\n", s.id())),
        }
    }
}
