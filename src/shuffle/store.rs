//! ShuffleStore keeps an executor's map outputs until the exchange, then the reduce blocks it owns.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::shuffle::{MapOutput, ShuffleId};
use crate::transport::AlignedBytes;

/// Encoded records of one reduce partition that arrived from one executor.
#[derive(Debug, Clone)]
pub struct Block {
    /// Executor id of the sender.
    pub source: usize,
    pub data: Arc<AlignedBytes>,
    pub range: Range<usize>,
}

impl Block {
    pub fn bytes(&self) -> &[u8] {
        &self.data.as_bytes()[self.range.clone()]
    }
}

/// Where the reduce partitions of an exchanged shuffle live, and this executor's blocks.
#[derive(Debug, Default)]
struct ReduceSide {
    /// Executor id owning each reduce partition.
    owners: Vec<usize>,
    blocks: HashMap<usize, Vec<Block>>,
}

/// What a reduce task gets for its partition.
pub enum ReduceInput {
    Here(Vec<Block>),
    /// The partition lives on another executor.
    Elsewhere(usize),
    /// The shuffle was never exchanged on this executor.
    Unknown,
}

#[derive(Default)]
pub struct ShuffleStore {
    map_outputs: Mutex<HashMap<ShuffleId, Vec<(usize, MapOutput)>>>,
    reduce: Mutex<HashMap<ShuffleId, ReduceSide>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ShuffleStore {
    /// Keeps the output of map partition `split` (a retried task replaces its earlier output).
    pub fn put_map_output(&self, shuffle: ShuffleId, split: usize, output: MapOutput) {
        let mut outputs = lock(&self.map_outputs);
        let list = outputs.entry(shuffle).or_default();
        list.retain(|(s, _)| *s != split);
        list.push((split, output));
    }

    /// Takes every map output of `shuffle` made here, in map-partition order.
    pub fn take_map_outputs(&self, shuffle: ShuffleId) -> Vec<(usize, MapOutput)> {
        let mut list = lock(&self.map_outputs).remove(&shuffle).unwrap_or_default();
        list.sort_by_key(|(s, _)| *s);
        list
    }

    /// Records the exchange's result: the owners of all reduce partitions and the blocks
    /// that arrived here.
    pub fn put_reduce_side(
        &self,
        shuffle: ShuffleId,
        owners: Vec<usize>,
        blocks: HashMap<usize, Vec<Block>>,
    ) {
        lock(&self.reduce).insert(shuffle, ReduceSide { owners, blocks });
    }

    /// The blocks of reduce partition `r` of `shuffle`, if this executor `me` owns it.
    pub fn reduce_input(&self, shuffle: ShuffleId, r: usize, me: usize) -> ReduceInput {
        let reduce = lock(&self.reduce);
        let Some(side) = reduce.get(&shuffle) else {
            return ReduceInput::Unknown;
        };
        match side.owners.get(r) {
            Some(&owner) if owner == me => {
                ReduceInput::Here(side.blocks.get(&r).cloned().unwrap_or_default())
            }
            Some(&owner) => ReduceInput::Elsewhere(owner),
            None => ReduceInput::Unknown,
        }
    }

    /// Bytes held for reduce partitions (for logs and memory accounting).
    pub fn reduce_bytes(&self) -> usize {
        lock(&self.reduce)
            .values()
            .flat_map(|s| s.blocks.values().flatten())
            .map(|b| b.range.len())
            .sum()
    }
}
