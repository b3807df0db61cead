//! The cache: each executor's block store (cached partitions) and the persisted-RDD node.
//!
//! Blocks live in memory (decoded), in memory-mapped files in the executor's scratch
//! directory (encoded), or first in memory and spilled to a file over the budget. Over the
//! budget, memory blocks are evicted least-recently-used (or spilled, for
//! `MemoryAndMmap`). A block that is gone (evicted, its file deleted) is simply computed
//! again from lineage: a cache miss, never an error.

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::ids::RddId;
use crate::io::scratch::create_private;
use crate::memory::MemoryManager;

/// Where a persisted RDD keeps its partitions.
///
/// Passed to [`Rdd::persist`](crate::Rdd::persist); [`Rdd::cache`](crate::Rdd::cache) is
/// `Memory`. The budget is `--executor-memory`; a block evicted (or lost with its
/// executor) is computed again from lineage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StorageLevel {
    /// Decoded, in the executor's memory; evicted (LRU) over the budget.
    Memory,
    /// Encoded, in a memory-mapped file in the node-local directory.
    Mmap,
    /// In memory first; spilled to a mapped file over the budget.
    MemoryAndMmap,
}

type Encoder = fn(&(dyn Any + Send + Sync)) -> Vec<u8>;
type Sizer = fn(&(dyn Any + Send + Sync)) -> u64;

/// How a block's records become the bytes of its file, and what they take in memory.
#[derive(Clone, Copy)]
pub struct BlockCodec {
    encode: Encoder,
    /// The decoded size of the records (what a memory block holds of the budget).
    size: Sizer,
    /// The bytes are the records themselves (`bytemuck::Pod`): read back by viewing the
    /// mapped file as records, with no decoding.
    raw: bool,
}

impl BlockCodec {
    /// Any record type, through the shuffle codec.
    pub fn serde<T: Serialize + Send + Sync + 'static>() -> Self {
        BlockCodec {
            encode: encode_vec::<T>,
            size: size_vec::<T>,
            raw: false,
        }
    }

    /// The decoded size of `records`: what they hold of the budget in memory.
    #[allow(clippy::ptr_arg)] // the sizer downcasts to the `Vec` a block is
    pub fn size_of<T: Send + Sync + 'static>(&self, records: &Vec<T>) -> u64 {
        (self.size)(records)
    }

    /// Plain-old-data records, stored as their bytes.
    pub fn pod<T: bytemuck::Pod + Send + Sync>() -> Self {
        BlockCodec {
            encode: encode_pod::<T>,
            size: size_pod::<T>,
            raw: true,
        }
    }
}

fn encode_pod<T: bytemuck::Pod + Send + Sync>(value: &(dyn Any + Send + Sync)) -> Vec<u8> {
    match value.downcast_ref::<Vec<T>>() {
        Some(v) => bytemuck::cast_slice(v).to_vec(),
        None => unreachable!("encoder stored with its type"),
    }
}

fn size_pod<T: bytemuck::Pod + Send + Sync>(value: &(dyn Any + Send + Sync)) -> u64 {
    match value.downcast_ref::<Vec<T>>() {
        Some(v) => std::mem::size_of_val(v.as_slice()) as u64,
        None => unreachable!("sizer stored with its type"),
    }
}

fn size_vec<T: Serialize + Send + Sync + 'static>(value: &(dyn Any + Send + Sync)) -> u64 {
    match value.downcast_ref::<Vec<T>>() {
        Some(v) => crate::memory::estimate::decoded_size_of_slice(v),
        None => unreachable!("sizer stored with its type"),
    }
}

enum Stored {
    Memory {
        value: Arc<dyn Any + Send + Sync>,
        encode: Encoder,
    },
    File(PathBuf),
}

struct Entry {
    stored: Stored,
    raw: bool,
    level: StorageLevel,
    bytes: u64,
    last_use: u64,
}

#[derive(Default)]
struct Inner {
    blocks: HashMap<(RddId, usize), Entry>,
    clock: u64,
    memory_used: u64,
    memory_peak: u64,
}

/// An executor's cached partitions, within a memory budget.
pub struct BlockStore {
    /// The executor's budget, shared with its tasks: a block that cannot reserve its bytes
    /// (after evicting older blocks) is not kept in memory.
    memory: Arc<MemoryManager>,
    dir: PathBuf,
    inner: Mutex<Inner>,
}

/// What `get` found.
pub enum Cached<T> {
    /// Shared, decoded records (memory): the caller clones what it hands on.
    Shared(Arc<Vec<T>>),
    /// Records decoded from a file, owned by the caller.
    Owned(Vec<T>),
    /// The mapped file of a raw (Pod) block: the records, viewed in place.
    Mapped(Arc<memmap2::Mmap>),
}

fn encode_vec<T: Serialize + Send + Sync + 'static>(value: &(dyn Any + Send + Sync)) -> Vec<u8> {
    match value.downcast_ref::<Vec<T>>() {
        Some(v) => codec::encode(v),
        None => unreachable!("encoder stored with its type"),
    }
}

impl BlockStore {
    pub fn new(memory: Arc<MemoryManager>, dir: &Path) -> Self {
        BlockStore {
            memory,
            dir: dir.to_path_buf(),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    fn path(&self, rdd: RddId, split: usize) -> PathBuf {
        self.dir.join(format!("block-{rdd}-{split}.data"))
    }

    /// Caches partition `split` of `rdd`. Returns whether it is now cached (a block larger
    /// than the whole budget is not kept in memory).
    pub fn put<T>(
        &self,
        rdd: RddId,
        split: usize,
        records: Arc<Vec<T>>,
        level: StorageLevel,
        block_codec: BlockCodec,
    ) -> bool
    where
        T: Send + Sync + 'static,
    {
        // A memory block holds its decoded size of the budget; only a file is encoded.
        let bytes = (block_codec.size)(records.as_ref());
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some(old) = inner.blocks.remove(&(rdd, split)) {
            self.forget(&mut inner, old);
        }
        let in_memory = level != StorageLevel::Mmap && self.make_room(&mut inner, bytes);
        if in_memory {
            inner.memory_used += bytes;
            inner.memory_peak = inner.memory_peak.max(inner.memory_used);
            let stored = Stored::Memory {
                value: records,
                encode: block_codec.encode,
            };
            inner.blocks.insert(
                (rdd, split),
                Entry {
                    stored,
                    raw: block_codec.raw,
                    level,
                    bytes,
                    last_use: now,
                },
            );
            return true;
        }
        if level == StorageLevel::Memory {
            tracing::debug!(
                "partition {split} of rdd {rdd} ({bytes} bytes) exceeds the cache budget: not cached"
            );
            return false;
        }
        let encoded = (block_codec.encode)(records.as_ref());
        let bytes = encoded.len() as u64;
        let path = self.path(rdd, split);
        match write_file(&path, &encoded) {
            Ok(()) => {
                let stored = Stored::File(path);
                inner.blocks.insert(
                    (rdd, split),
                    Entry {
                        stored,
                        raw: block_codec.raw,
                        level,
                        bytes,
                        last_use: now,
                    },
                );
                true
            }
            Err(e) => {
                tracing::warn!("cannot cache partition {split} of rdd {rdd}: {e}");
                false
            }
        }
    }

    /// Evicts (or spills) least-recently-used memory blocks until `bytes` more fit the
    /// budget, and reserves them; false if they cannot (what tasks hold is not evicted).
    fn make_room(&self, inner: &mut Inner, bytes: u64) -> bool {
        if bytes > self.memory.budget() {
            return false;
        }
        while !self.memory.try_reserve(bytes) {
            let victim = inner
                .blocks
                .iter()
                .filter(|(_, e)| matches!(e.stored, Stored::Memory { .. }))
                .min_by_key(|(_, e)| e.last_use)
                .map(|(k, _)| *k);
            let Some(key) = victim else { return false };
            let Some(entry) = inner.blocks.remove(&key) else {
                return false;
            };
            inner.memory_used -= entry.bytes;
            self.memory.release(entry.bytes);
            if entry.level == StorageLevel::MemoryAndMmap
                && let Stored::Memory { value, encode } = &entry.stored
            {
                let path = self.path(key.0, key.1);
                if write_file(&path, &encode(value.as_ref())).is_ok() {
                    let spilled = Entry {
                        stored: Stored::File(path),
                        raw: entry.raw,
                        level: entry.level,
                        bytes: entry.bytes,
                        last_use: entry.last_use,
                    };
                    inner.blocks.insert(key, spilled);
                    continue;
                }
            }
            tracing::debug!(
                "evicted partition {} of rdd {} from the cache",
                key.1,
                key.0
            );
        }
        true
    }

    /// Evicts (or spills) least-recently-used memory blocks until `bytes` more would fit
    /// the budget, as a partition being collected for the cache grows (`put` reserves
    /// the block itself); false if they cannot.
    pub fn make_room_for(&self, bytes: u64) -> bool {
        let mut inner = self.lock();
        if !self.make_room(&mut inner, bytes) {
            return false;
        }
        self.memory.release(bytes);
        true
    }

    fn forget(&self, inner: &mut Inner, entry: Entry) {
        match entry.stored {
            Stored::Memory { .. } => {
                inner.memory_used -= entry.bytes;
                self.memory.release(entry.bytes);
            }
            Stored::File(path) => {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// The cached partition, or `None` if it was never cached, evicted, or its file is gone.
    pub fn get<T>(&self, rdd: RddId, split: usize) -> Option<Cached<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.blocks.get_mut(&(rdd, split))?;
        entry.last_use = now;
        match &entry.stored {
            Stored::Memory { value, .. } => Arc::clone(value)
                .downcast::<Vec<T>>()
                .ok()
                .map(Cached::Shared),
            Stored::File(path) => {
                let (path, raw) = (path.clone(), entry.raw);
                // Raw (Pod) blocks are viewed in place; others are decoded.
                let read = match crate::io::input::map_file(&path) {
                    Ok(None) => Some(Cached::Owned(Vec::new())),
                    Ok(Some(map)) if raw => Some(Cached::Mapped(Arc::new(map))),
                    Ok(Some(map)) => codec::decode::<Vec<T>>(&map).ok().map(Cached::Owned),
                    Err(_) => None,
                };
                if read.is_none() {
                    tracing::warn!(
                        "cached block {} is unreadable: computing it again",
                        path.display()
                    );
                    if let Some(e) = inner.blocks.remove(&(rdd, split)) {
                        self.forget(&mut inner, e);
                    }
                }
                read
            }
        }
    }

    /// Drops every cached partition of `rdd`.
    pub fn remove_rdd(&self, rdd: RddId) {
        let mut inner = self.lock();
        let keys: Vec<_> = inner
            .blocks
            .keys()
            .filter(|k| k.0 == rdd)
            .copied()
            .collect();
        for key in keys {
            if let Some(e) = inner.blocks.remove(&key) {
                self.forget(&mut inner, e);
            }
        }
    }

    /// Drops every block (used when an executor is taken out of service).
    pub fn clear(&self) {
        let mut inner = self.lock();
        let entries: Vec<Entry> = inner.blocks.drain().map(|(_, e)| e).collect();
        for e in entries {
            self.forget(&mut inner, e);
        }
    }

    /// Memory the store holds now and at most so far (its own accounting, in bytes).
    pub fn memory(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.memory_used, inner.memory_peak)
    }

    pub fn budget(&self) -> u64 {
        self.memory.budget()
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = create_private(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(c: Option<Cached<u64>>) -> Option<Vec<u64>> {
        c.map(|c| match c {
            Cached::Shared(v) => v.to_vec(),
            Cached::Owned(v) => v,
            Cached::Mapped(m) => bytemuck::cast_slice(&m).to_vec(),
        })
    }

    #[test]
    fn memory_blocks_are_evicted_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::new(MemoryManager::new(300), dir.path());
        for p in 0..4 {
            assert!(store.put(
                RddId(1),
                p,
                Arc::new(vec![p as u64; 10]),
                StorageLevel::Memory,
                BlockCodec::serde::<u64>()
            ));
            assert!(store.memory().0 <= 300);
        }
        // 80 bytes decoded each (10 u64): the fourth pushed out the first.
        assert_eq!(values(store.get::<u64>(RddId(1), 0)), None);
        assert_eq!(values(store.get::<u64>(RddId(1), 3)), Some(vec![3; 10]));
        assert!(store.memory().1 <= 300);
        store.remove_rdd(RddId(1));
        assert_eq!(values(store.get::<u64>(RddId(1), 3)), None);
        assert_eq!(store.memory().0, 0);
    }

    #[test]
    fn room_for_a_block_being_collected_is_made_by_evicting_and_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let memory = MemoryManager::new(300);
        let store = BlockStore::new(Arc::clone(&memory), dir.path());
        for p in 0..3 {
            store.put(
                RddId(1),
                p,
                Arc::new(vec![p as u64; 10]),
                StorageLevel::Memory,
                BlockCodec::serde::<u64>(),
            );
        }
        assert_eq!(memory.reserved(), 240);
        // 150 bytes: the two least recently used blocks go; the room is not reserved.
        assert!(store.make_room_for(150));
        assert_eq!(memory.reserved(), 80);
        assert_eq!(values(store.get::<u64>(RddId(1), 0)), None);
        assert_eq!(values(store.get::<u64>(RddId(1), 1)), None);
        assert_eq!(values(store.get::<u64>(RddId(1), 2)), Some(vec![2; 10]));
        assert!(!store.make_room_for(301), "more than the budget");
    }

    #[test]
    fn memory_and_mmap_spills_and_a_deleted_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::new(MemoryManager::new(150), dir.path());
        store.put(
            RddId(2),
            0,
            Arc::new(vec![7u64; 10]),
            StorageLevel::MemoryAndMmap,
            BlockCodec::serde::<u64>(),
        );
        store.put(
            RddId(2),
            1,
            Arc::new(vec![8u64; 10]),
            StorageLevel::MemoryAndMmap,
            BlockCodec::serde::<u64>(),
        );
        // Partition 0 was spilled to a file and reads back whole.
        assert_eq!(values(store.get::<u64>(RddId(2), 0)), Some(vec![7; 10]));
        assert_eq!(values(store.get::<u64>(RddId(2), 1)), Some(vec![8; 10]));
        std::fs::remove_file(dir.path().join("block-2-0.data")).unwrap();
        assert_eq!(values(store.get::<u64>(RddId(2), 0)), None);
        // Mmap blocks never use memory.
        store.put(
            RddId(3),
            0,
            Arc::new(vec![1u64; 100]),
            StorageLevel::Mmap,
            BlockCodec::serde::<u64>(),
        );
        assert_eq!(values(store.get::<u64>(RddId(3), 0)), Some(vec![1; 100]));
        assert!(store.memory().1 <= 150);
    }
}
