//! `explain()`: the lineage as a tree, with partition counts and where stages begin.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::ids::{RddId, ShuffleId, StageId};
use crate::plan::node::{Dependency, Node};
use crate::plan::stage::{StageKind, plan};

/// Renders the lineage of `node` like Spark's `toDebugString`:
///
/// ```text
/// stage 1 (result)
/// (2) combine_by_key (shuffle 0, 2 partitions) {hash 2} [rdd 3]
///  +- shuffle 0 <- stage 0 (shuffle map)
///     (2) map_side_combine [rdd 2]
///     (2) map [rdd 1]
///     (2) parallelize 10 records [rdd 0]
/// ```
///
/// A node reached again (a cached RDD read by every iteration of a loop) is printed once;
/// later mentions say `(shown above)` instead of repeating its lineage, so a shuffle
/// printed once is run once.
pub fn explain(node: &Arc<dyn Node>) -> String {
    let stages = plan(node);
    let by_shuffle: HashMap<ShuffleId, StageId> = stages
        .iter()
        .filter_map(|s| match &s.kind {
            StageKind::ShuffleMap(dep) => Some((dep.id(), s.id)),
            StageKind::Result => None,
        })
        .collect();
    let result_stage = stages.len() - 1;
    let mut out = format!("stage {result_stage} (result)\n");
    render(node, 0, &by_shuffle, &mut HashSet::new(), &mut out);
    out
}

fn render(
    node: &Arc<dyn Node>,
    depth: usize,
    stages: &HashMap<ShuffleId, StageId>,
    seen: &mut HashSet<RddId>,
    out: &mut String,
) {
    let pad = "    ".repeat(depth);
    let partitioner = node
        .partitioner()
        .map(|p| format!(" {{{p}}}"))
        .unwrap_or_default();
    let again = !seen.insert(node.id());
    out.push_str(&format!(
        "{pad}({}) {}{partitioner} [rdd {}]{}\n",
        node.num_partitions(),
        node.describe(),
        node.id(),
        if again { " (shown above)" } else { "" }
    ));
    if again {
        return;
    }
    let deps = node.dependencies();
    let several = deps.len() > 1;
    for dep in deps {
        match dep {
            Dependency::Narrow(parent) => {
                let d = if several { depth + 1 } else { depth };
                render(&parent, d, stages, seen, out);
            }
            Dependency::Shuffle(s) => {
                let stage = stages.get(&s.id()).copied().unwrap_or_default();
                out.push_str(&format!(
                    "{pad} +- shuffle {} <- stage {stage} (shuffle map)\n",
                    s.id()
                ));
                render(&s.parent(), depth + 1, stages, seen, out);
            }
        }
    }
}
