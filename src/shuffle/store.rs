//! ShuffleStore keeps an executor's shuffle state: owners, map output files until the
//! exchange, then the reduce file holding the partitions this executor owns.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::io::scratch::ScratchDir;
use crate::shuffle::files::{MapFile, write_map_file};
use crate::shuffle::{MapOutput, ShuffleId};
use crate::sync::lock;

/// Encoded records of one reduce partition from one executor: a range of a mapped file
/// (the reduce file it was received into, or, on the same node, the sender's map file).
#[derive(Debug, Clone)]
pub struct Block {
    /// Executor id of the sender.
    pub source: usize,
    pub data: Arc<memmap2::Mmap>,
    pub range: Range<usize>,
}

impl Block {
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.range.clone()]
    }
}

/// The received side of an exchanged shuffle on this executor.
#[derive(Debug)]
pub struct ReduceSide {
    /// Executor id owning each reduce partition.
    pub owners: Arc<Vec<usize>>,
    pub blocks: HashMap<usize, Vec<Block>>,
}

/// What a reduce task gets for its partition.
pub enum ReduceInput {
    Here(Vec<Block>),
    /// The partition lives on another executor.
    Elsewhere(usize),
    /// The shuffle was never exchanged on this executor.
    Unknown,
}

pub struct ShuffleStore {
    scratch: ScratchDir,
    /// Executor id owning each reduce partition, per shuffle (set before its map stage).
    owners: Mutex<HashMap<ShuffleId, Arc<Vec<usize>>>>,
    map_files: Mutex<HashMap<ShuffleId, Vec<MapFile>>>,
    /// Exchanged map files that executors on this node may read in place; replaced (and
    /// removed) when the shuffle is exchanged again, else kept until the executor stops.
    retained: Mutex<HashMap<ShuffleId, Vec<MapFile>>>,
    reduce: Mutex<HashMap<ShuffleId, ReduceSide>>,
    generation: std::sync::atomic::AtomicU64,
}

impl ShuffleStore {
    pub fn new(scratch: ScratchDir) -> Self {
        ShuffleStore {
            scratch,
            owners: Mutex::default(),
            map_files: Mutex::default(),
            retained: Mutex::default(),
            reduce: Mutex::default(),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.scratch.path()
    }

    /// Records who owns each reduce partition of `shuffle` (executor ids).
    pub fn set_owners(&self, shuffle: ShuffleId, owners: Vec<usize>) {
        lock(&self.owners).insert(shuffle, Arc::new(owners));
    }

    pub fn owners(&self, shuffle: ShuffleId) -> Result<Arc<Vec<usize>>> {
        lock(&self.owners)
            .get(&shuffle)
            .cloned()
            .ok_or_else(|| Error::Other(format!("shuffle {shuffle}: owners were never announced")))
    }

    /// Writes map partition `split`'s buckets to its file, grouped by owner; `first_id`
    /// is the executor id of peer 0 and `peers` the number of executors.
    pub fn put_map_output(
        &self,
        shuffle: ShuffleId,
        split: usize,
        output: MapOutput,
        first_id: usize,
        peers: usize,
    ) -> Result<()> {
        let owners = self.owners(shuffle)?;
        let owner_peers: Vec<usize> = owners.iter().map(|&o| o - first_id).collect();
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = write_map_file(
            self.dir(),
            shuffle,
            split,
            generation,
            &output.buckets,
            &owner_peers,
            peers,
        )?;
        let mut files = lock(&self.map_files);
        let list = files.entry(shuffle).or_default();
        // A retried task replaces its earlier output.
        list.retain(|f| {
            let stale = f.map == split;
            if stale {
                f.remove();
            }
            !stale
        });
        list.push(file);
        Ok(())
    }

    /// Takes every map output file of `shuffle` made here, in map-partition order.
    pub fn take_map_files(&self, shuffle: ShuffleId) -> Vec<MapFile> {
        let mut list = lock(&self.map_files).remove(&shuffle).unwrap_or_default();
        list.sort_by_key(|f| f.map);
        list
    }

    /// Keeps `files` for in-place readers, removing the ones an earlier exchange of the
    /// same shuffle kept (readers' existing mappings stay valid after the unlink).
    pub fn retain_map_files(&self, shuffle: ShuffleId, files: Vec<MapFile>) {
        if let Some(old) = lock(&self.retained).insert(shuffle, files) {
            old.iter().for_each(MapFile::remove);
        }
    }

    pub fn put_reduce_side(&self, shuffle: ShuffleId, side: ReduceSide) {
        lock(&self.reduce).insert(shuffle, side);
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

    /// Where this executor receives the partitions of `shuffle` it owns.
    pub fn reduce_path(&self, shuffle: ShuffleId) -> std::path::PathBuf {
        self.dir().join(format!("shuffle-{shuffle}-reduce.data"))
    }

    /// Forgets `shuffle` once no lineage can read it: deletes its map files (pending and
    /// kept for in-place readers) and its reduce file. Mappings still held stay valid.
    pub fn remove_shuffle(&self, shuffle: ShuffleId) {
        lock(&self.owners).remove(&shuffle);
        let pending = lock(&self.map_files).remove(&shuffle);
        let kept = lock(&self.retained).remove(&shuffle);
        pending
            .iter()
            .chain(&kept)
            .flatten()
            .for_each(MapFile::remove);
        if lock(&self.reduce).remove(&shuffle).is_some() {
            let _ = std::fs::remove_file(self.reduce_path(shuffle));
        }
    }

    /// Bytes of reduce partitions this executor holds (for logs and memory accounting).
    pub fn reduce_bytes(&self) -> usize {
        lock(&self.reduce)
            .values()
            .flat_map(|s| s.blocks.values().flatten())
            .map(|b| b.range.len())
            .sum()
    }
}
