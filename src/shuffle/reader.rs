//! ShuffledRdd: the reduce side of a shuffle, reading the blocks its executor owns.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::executor::task::TaskContext;
use crate::rdd::batch::{BatchIter, batched};
use crate::rdd::node::{Compute, Dependency, Node, RddId};
use crate::shuffle::store::ReduceInput;
use crate::shuffle::{ShuffleDep, ShuffleDependency, ShuffleId, codec};

/// Merges the decoded records of one reduce partition (e.g. sums values by key).
pub type Combine<S> = Arc<dyn Fn(Vec<S>) -> Vec<S> + Send + Sync>;

/// The RDD after a shuffle: partition `r` is every record the map side sent to `r`,
/// optionally merged by `combine`.
pub struct ShuffledRdd<S> {
    pub id: RddId,
    pub name: &'static str,
    pub dep: Arc<ShuffleDependency<S>>,
    pub combine: Option<Combine<S>>,
}

impl<S: serde::Serialize + Send + Sync + 'static> Node for ShuffledRdd<S> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        format!(
            "{} (shuffle {}, {} partitions)",
            self.name, self.dep.id, self.dep.partitions
        )
    }
    fn num_partitions(&self) -> usize {
        self.dep.partitions
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Shuffle(
            Arc::clone(&self.dep) as Arc<dyn ShuffleDep>
        )]
    }
    fn shuffle_inputs(&self, split: usize, out: &mut Vec<(ShuffleId, usize)>) {
        out.push((self.dep.id, split));
    }
}

impl<S> Compute<S> for ShuffledRdd<S>
where
    S: serde::Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<S>> {
        let me = tc.executor.info.id;
        let (data, blocks) = match tc.executor.shuffle.reduce_input(self.dep.id, split, me) {
            ReduceInput::Here(data, blocks) => (data, blocks),
            ReduceInput::Elsewhere(owner) => {
                return Err(Error::Other(format!(
                    "reduce partition {split} of shuffle {} is on executor {owner}, not on executor {me}",
                    self.dep.id
                )));
            }
            ReduceInput::Unknown => {
                return Err(Error::Other(format!(
                    "shuffle {} has not been exchanged on executor {me}",
                    self.dep.id
                )));
            }
        };
        let mut records = Vec::new();
        let bytes = data.as_deref().map_or(&[][..], |m| &m[..]);
        for block in &blocks {
            let slice = bytes.get(block.range.clone()).unwrap_or_default();
            codec::decode_all_into(slice, &mut records).map_err(|detail| {
                Error::CorruptShuffle {
                    shuffle: self.dep.id,
                    source_rank: block.source,
                    detail,
                }
            })?;
        }
        if let Some(combine) = &self.combine {
            records = combine(records);
        }
        Ok(batched(records.into_iter()))
    }
}
