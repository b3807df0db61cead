//! ShuffleStore keeps an executor's shuffle state: owners, map output files until the
//! exchange, then the reduce file holding the partitions this executor owns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::scratch::ScratchDir;
use crate::memory::{MemoryManager, Reservation};
use crate::shuffle::block::{Block, BlockBytes};
use crate::shuffle::files::{MapFile, Piece, map_file_name, runs_header, write_map_file};
use crate::shuffle::{BucketOrder, MapOutput, ShuffleId, bucket_piece, bucket_pieces};
use crate::sync::lock;

/// The most of the memory budget that map files kept for reuse may hold, as a divisor
/// ([`ShuffleStore::recycle`]).
const POOL_SHARE: u64 = 8;

/// What [`ShuffleStore::put_map_output`] wrote.
pub struct MapWritten {
    /// The map output's bytes, in the file and kept in memory: the records (spilled
    /// pieces included) and a sort's run headers, all of which reduce tasks read.
    pub bytes: u64,
    /// The bytes written to disk for want of memory (0 when the file fits the budget or
    /// the local dir is on disk anyway).
    pub on_disk: u64,
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
    /// On disk, for what does not fit the memory budget when `scratch` is in memory.
    spill: ScratchDir,
    /// Whether `scratch` is in memory (tmpfs, like the default `/dev/shm`): its files are
    /// then reserved against the budget.
    scratch_in_memory: bool,
    memory: Arc<MemoryManager>,
    /// Reservations of files in `scratch`, released when a file is removed.
    held: Mutex<HashMap<PathBuf, Reservation>>,
    /// Where each shuffle's reduce file was placed.
    reduce_files: Mutex<HashMap<ShuffleId, PathBuf>>,
    /// Executor id owning each reduce partition, per shuffle (set before its map stage).
    owners: Mutex<HashMap<ShuffleId, Arc<Vec<usize>>>>,
    map_files: Mutex<HashMap<ShuffleId, Vec<MapFile>>>,
    /// Exchanged map files that executors on this node may read in place; replaced (and
    /// removed) when the shuffle is exchanged again, recycled when it is removed
    /// ([`ShuffleStore::remove_shuffle`]), else kept until the executor stops.
    retained: Mutex<HashMap<ShuffleId, Vec<MapFile>>>,
    reduce: Mutex<HashMap<ShuffleId, ReduceSide>>,
    /// Files of removed shuffles, renamed, with the memory they hold: the next map outputs
    /// and reduce files overwrite them ([`ShuffleStore::recycle`]).
    pool: Mutex<Vec<(PathBuf, Reservation)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl ShuffleStore {
    pub fn new(scratch: ScratchDir, spill: ScratchDir, memory: Arc<MemoryManager>) -> Self {
        ShuffleStore {
            scratch_in_memory: crate::io::scratch::in_memory(scratch.path()),
            scratch,
            spill,
            memory,
            held: Mutex::default(),
            reduce_files: Mutex::default(),
            owners: Mutex::default(),
            map_files: Mutex::default(),
            retained: Mutex::default(),
            reduce: Mutex::default(),
            pool: Mutex::default(),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        self.scratch.path()
    }

    /// The on-disk directory for spills.
    pub fn spill_dir(&self) -> &Path {
        self.spill.path()
    }

    pub fn memory(&self) -> &Arc<MemoryManager> {
        &self.memory
    }

    /// The directory for a new file of `bytes`: the scratch directory, unless it is in
    /// memory and the budget has no room for the file, then the spill directory (disk).
    /// Whatever the file takes in memory stays reserved until [`ShuffleStore::remove_file`].
    /// Also says whether the file went to disk for want of memory.
    fn place(&self, name: &str, bytes: u64) -> (PathBuf, bool) {
        if !self.scratch_in_memory {
            return (self.dir().join(name), false);
        }
        let mut reservation = self.memory.reservation();
        // Files kept for reuse give their memory back before anything goes to disk.
        if reservation.grow_to(bytes) || (self.drain_pool() && reservation.grow_to(bytes)) {
            let path = self.dir().join(name);
            lock(&self.held).insert(path.clone(), reservation);
            (path, false)
        } else {
            self.memory.note_spill(bytes);
            (self.spill_dir().join(name), true)
        }
    }

    /// Removes a file this store placed and gives back its memory.
    pub fn remove_file(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
        lock(&self.held).remove(path);
    }

    /// Removes a map output's files.
    pub fn remove_map_file(&self, file: &MapFile) {
        self.remove_file(&file.data);
        let _ = std::fs::remove_file(&file.index);
    }

    /// Removes a map output's files of a shuffle no lineage reads any more, but keeps its
    /// data file for a later map output or reduce file to overwrite ([`ShuffleStore::recycle`]).
    ///
    /// On this machine, and wherever freed memory goes back to a hypervisor, a page a file
    /// is first written to costs far more than writing it again: 300 MB written to a new
    /// file in `/dev/shm` took 0.16-0.87 s, over the same file 0.12 s. PageRank writes a
    /// new map output every iteration while the one two iterations back is removed.
    ///
    /// Safe to overwrite because the driver removes a shuffle only once every stage that
    /// reads it has run on every executor (the exchange after them is collective), and an
    /// executor handles that removal before any later task: no reader is left, though a
    /// peer may not have unmapped the file yet. A re-run map stage replacing its earlier
    /// files ([`ShuffleStore::retain_map_files`]) removes them instead: readers of the
    /// earlier exchange may remain.
    fn recycle_map_file(&self, file: &MapFile) {
        let _ = std::fs::remove_file(&file.index);
        self.recycle(&file.data);
    }

    /// Keeps the file at `data`, of a shuffle no lineage reads any more, renamed and its
    /// memory still reserved, for a later map output or reduce file to overwrite, when it
    /// is in memory, the kept files stay within [`POOL_SHARE`] of the budget and the
    /// budget is not half reserved (where tasks and the cache may soon need the room);
    /// else removes it.
    fn recycle(&self, data: &Path) {
        let held = lock(&self.held).remove(data);
        let Some(reservation) = held else {
            // Not placed in memory (a spill, or a scratch directory on disk).
            let _ = std::fs::remove_file(data);
            return;
        };
        let mut pool = lock(&self.pool);
        let pooled: u64 = pool.iter().map(|(_, r)| r.bytes()).sum();
        let budget = self.memory.budget();
        let room = (budget / POOL_SHARE).min((budget / 2).saturating_sub(self.memory.reserved()));
        let path = self.dir().join(format!("pool-{}", self.next_generation()));
        if pooled + reservation.bytes() > room || std::fs::rename(data, &path).is_err() {
            drop(pool);
            self.remove_file(data);
            return;
        }
        pool.push((path, reservation));
    }

    /// A kept file ([`ShuffleStore::recycle`]) for `bytes`, renamed to `path` (in the
    /// scratch directory) and opened to read and write, if there is one: the one closest
    /// in size (a map output does not take, and cut, a reduce file that the next reduce
    /// file could have). Its reservation goes ([`ShuffleStore::place`] made one for
    /// `path`). Its old bytes are still in it: the caller overwrites them and sets its
    /// length.
    pub fn take_pooled(&self, path: &Path, bytes: u64) -> Option<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        if path.parent() != Some(self.dir()) {
            return None;
        }
        let (pooled, _reservation) = {
            let mut pool = lock(&self.pool);
            let off = |i: &usize| pool[*i].1.bytes().abs_diff(bytes);
            let best = (0..pool.len()).min_by_key(off)?;
            pool.swap_remove(best)
        };
        let file = std::fs::rename(&pooled, path).and_then(|()| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
        });
        match file {
            Ok(file) => Some(file),
            Err(_) => {
                let _ = std::fs::remove_file(&pooled);
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    /// Removes every kept file, giving back its memory; whether there was one.
    fn drain_pool(&self) -> bool {
        let pool = std::mem::take(&mut *lock(&self.pool));
        for (path, _reservation) in &pool {
            let _ = std::fs::remove_file(path);
        }
        !pool.is_empty()
    }

    /// Bytes of kept files ([`ShuffleStore::recycle`]).
    pub fn pooled_bytes(&self) -> u64 {
        lock(&self.pool).iter().map(|(_, r)| r.bytes()).sum()
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

    /// Writes map partition `split`'s buckets to its file, grouped by owner (after the
    /// pieces it spilled, which are then removed), but for the buckets this executor
    /// keeps in memory ([`ShuffleStore::keep_own_buckets`]); `first_id` is the executor
    /// id of peer 0, `me` this executor's and `peers` the number of executors.
    pub fn put_map_output(
        &self,
        shuffle: ShuffleId,
        split: usize,
        mut output: MapOutput,
        (first_id, me, peers): (usize, usize, usize),
    ) -> Result<MapWritten> {
        let owners = self.owners(shuffle)?;
        let owner_peers: Vec<usize> = owners.iter().map(|&o| o - first_id).collect();
        let own = self.keep_own_buckets(&mut output, &owners, me);
        let name = self.map_file_name(shuffle, split);
        let spilled = output
            .spills
            .iter()
            .map(|f| {
                let map = crate::io::scratch::map_read(&f.data)?;
                Ok((map, f.bucket_ranges(output.buckets.len())))
            })
            .collect::<Result<Vec<_>>>()?;
        let pieces: Vec<Vec<Piece>> = bucket_pieces(&output.buckets, &output.orders)
            .enumerate()
            .map(|(r, piece)| {
                let earlier = spilled.iter().filter_map(|(map, ranges)| {
                    map.as_ref().map(|m| Piece::Bytes(&m[ranges[r].clone()]))
                });
                earlier.chain([piece]).collect()
            })
            .collect();
        let bytes = output.spills.iter().map(MapFile::bytes).sum::<u64>()
            + output.buckets.iter().map(|b| b.len() as u64).sum::<u64>();
        let (path, on_disk) = self.place(&name, bytes);
        // A sort's map task ordered its buckets (`orders`): each piece is a sorted run.
        let sorted = !output.orders.is_empty();
        let reuse = if on_disk {
            None
        } else {
            self.take_pooled(&path, bytes)
        };
        let mut file = write_map_file(path, reuse, split, (&pieces, &owner_peers, peers), sorted)?;
        file.own = own;
        drop(pieces);
        drop(spilled);
        output.spills.iter().for_each(|f| self.remove_map_file(f));
        let mut files = lock(&self.map_files);
        let list = files.entry(shuffle).or_default();
        // A retried task replaces its earlier output.
        list.retain(|f| {
            let stale = f.map == split;
            if stale {
                self.remove_map_file(f);
            }
            !stale
        });
        let written = MapWritten {
            bytes: file.output_bytes(),
            on_disk: if on_disk { bytes } else { 0 },
        };
        list.push(file);
        Ok(written)
    }

    /// Takes out of `output` the buckets of the partitions this executor `me` owns, to be
    /// read in memory by its reduce tasks instead of written to the map file and mapped
    /// back: when the scratch directory is in memory anyway and the budget has room for
    /// them. A sort's bucket is gathered in its order once, under its runs header, as the
    /// file would have it (the file took two copies: into the writer's buffer, then into
    /// the page cache). Not for a map task that spilled (its buckets are pieces of a file),
    /// nor past the first bucket that does not fit.
    fn keep_own_buckets(
        &self,
        output: &mut MapOutput,
        owners: &[usize],
        me: usize,
    ) -> Vec<(u32, Arc<BlockBytes>)> {
        if !self.scratch_in_memory || !output.spills.is_empty() {
            return Vec::new();
        }
        let sorted = !output.orders.is_empty();
        let mut own = Vec::new();
        for (r, bucket) in output.buckets.iter_mut().enumerate() {
            if owners.get(r) != Some(&me) || bucket.is_empty() {
                continue;
            }
            let mut reservation = self.memory.reservation();
            let bytes = if sorted {
                let order = output.orders.get_mut(r);
                let piece = bucket_piece(bucket, order.as_deref().and_then(Option::as_ref));
                let header = runs_header(std::slice::from_ref(&piece));
                let len = header.len() + bucket.len();
                if !reservation.grow_to(len as u64) {
                    break;
                }
                let mut bytes = Vec::with_capacity(len);
                bytes.extend_from_slice(&header);
                piece.append_to(&mut bytes);
                // Gathered: the bucket and its order are freed, and the file gets neither.
                if let Some(order) = order {
                    *order = None;
                }
                *bucket = Vec::new();
                bytes
            } else {
                // A bucket under half full is cut to its length before it is kept for the
                // life of the shuffle: buckets start as large as the largest so far, so the
                // short last split of an input file kept its records in four times their
                // room (PageRank at 1 GB: 4.25 MB in 19.2 MB, ~60 MB an executor).
                if bucket.len() < bucket.capacity() / 2 {
                    bucket.shrink_to_fit();
                }
                if !reservation.grow_to(bucket.capacity() as u64) {
                    break;
                }
                std::mem::take(bucket)
            };
            own.push((r as u32, Arc::new(BlockBytes::Memory(bytes, reservation))));
        }
        own
    }

    /// A new map file name for map task `split` of `shuffle`: each write gets its own
    /// generation, so a file another executor may still have mapped is never rewritten.
    fn map_file_name(&self, shuffle: ShuffleId, split: usize) -> String {
        map_file_name(shuffle, split, self.next_generation())
    }

    fn next_generation(&self) -> u64 {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes a map task's buckets that do not fit the memory budget (each in its order,
    /// if `orders` gives one) to the spill directory, counting them as spilled;
    /// [`ShuffleStore::put_map_output`] gathers them.
    pub fn spill_map_buckets(
        &self,
        shuffle: ShuffleId,
        split: usize,
        buckets: &[Vec<u8>],
        orders: &[Option<BucketOrder>],
    ) -> Result<MapFile> {
        let name = format!("spill-{}", self.map_file_name(shuffle, split));
        let pieces: Vec<Vec<Piece>> = bucket_pieces(buckets, orders)
            .map(|piece| vec![piece])
            .collect();
        let file = write_map_file(
            self.spill_dir().join(name),
            None,
            split,
            // Each spilled bucket becomes one piece of the map file, which says where
            // it ends.
            (&pieces, &vec![0; buckets.len()], 1),
            false,
        )?;
        self.memory.note_spill(file.bytes());
        Ok(file)
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
            old.iter().for_each(|f| self.remove_map_file(f));
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

    /// Where this executor receives the `bytes` of the partitions of `shuffle` it owns.
    pub fn place_reduce_file(&self, shuffle: ShuffleId, bytes: u64) -> PathBuf {
        let (path, _) = self.place(&format!("shuffle-{shuffle}-reduce.data"), bytes);
        lock(&self.reduce_files).insert(shuffle, path.clone());
        path
    }

    /// Forgets `shuffle` once no lineage can read it: its map files (pending and kept for
    /// in-place readers) and its reduce file are kept for reuse or deleted
    /// ([`ShuffleStore::recycle`]).
    pub fn remove_shuffle(&self, shuffle: ShuffleId) {
        lock(&self.owners).remove(&shuffle);
        let pending = lock(&self.map_files).remove(&shuffle);
        let kept = lock(&self.retained).remove(&shuffle);
        pending
            .iter()
            .chain(&kept)
            .flatten()
            .for_each(|f| self.recycle_map_file(f));
        lock(&self.reduce).remove(&shuffle);
        let reduce_file = lock(&self.reduce_files).remove(&shuffle);
        if let Some(path) = reduce_file {
            self.recycle(&path);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shuffle::packed_range;
    use tempfile::TempDir;

    /// A store with its scratch directory in memory (`/dev/shm`) and its spill directory
    /// on disk, and a budget of `budget` bytes. Bound in this order, the store goes before
    /// its directories.
    fn store_in_memory(budget: u64) -> (TempDir, TempDir, Arc<MemoryManager>, ShuffleStore) {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let disk = tempfile::tempdir().unwrap();
        let memory = MemoryManager::new(budget);
        let store = ShuffleStore::new(
            ScratchDir::create(shm.path(), "t", 1).unwrap(),
            ScratchDir::create(disk.path(), "t", 1).unwrap(),
            Arc::clone(&memory),
        );
        (shm, disk, memory, store)
    }

    /// A map output of buckets `a` and `b` after the pieces `spills` holds.
    fn two_buckets(a: &[u8], b: &[u8], spills: Vec<MapFile>) -> MapOutput {
        MapOutput {
            buckets: vec![a.to_vec(), b.to_vec()],
            orders: Vec::new(),
            records: 0,
            spills,
            reservation: None,
        }
    }

    #[test]
    fn sorted_buckets_are_written_in_their_order_when_spilled_and_at_the_end() {
        let (_shm, _disk, _memory, store) = store_in_memory(1 << 20);
        let shuffle = ShuffleId(2);
        store.set_owners(shuffle, vec![1, 1]);
        let spill = store
            .spill_map_buckets(
                shuffle,
                0,
                &[b"bca".to_vec(), b"xy".to_vec()],
                &[Some(vec![packed_range(2..3), packed_range(0..2)]), None],
            )
            .unwrap();
        let output = MapOutput {
            buckets: vec![b"fgde".to_vec(), b"z".to_vec()],
            orders: vec![Some([2..3, 3..4, 0..2].map(packed_range).to_vec())],
            records: 0,
            spills: vec![spill],
            reservation: None,
        };
        store.put_map_output(shuffle, 0, output, (1, 1, 1)).unwrap();
        let files = store.take_map_files(shuffle);
        let data = std::fs::read(&files[0].data).unwrap();
        // Each bucket says where its runs (the spilled piece, then the last) end.
        let runs = |r: usize| {
            let bucket = &data[files[0].bucket_ranges(2)[r].clone()];
            let (lens, header) = crate::shuffle::files::read_runs_header(bucket).unwrap();
            (lens, &bucket[header..])
        };
        assert_eq!(runs(0), (vec![3, 4], &b"abcdefg"[..]));
        assert_eq!(runs(1), (vec![2, 1], &b"xyz"[..]));
        files.iter().for_each(|f| store.remove_map_file(f));
    }

    #[test]
    fn spilled_pieces_come_first_and_files_over_the_budget_go_to_disk() {
        let (shm, disk, memory, store) = store_in_memory(10);
        let shuffle = ShuffleId(1);
        // Partitions of executor 2: this one (1) keeps none of the buckets in memory.
        store.set_owners(shuffle, vec![2, 2]);
        let spill = store
            .spill_map_buckets(shuffle, 0, &[b"a1".to_vec(), b"b1".to_vec()], &[])
            .unwrap();
        assert!(spill.data.starts_with(disk.path()));
        assert_eq!(memory.spilled(), 4);
        let on_disk = store
            .put_map_output(
                shuffle,
                0,
                two_buckets(b"a2", b"b2", vec![spill.clone()]),
                (1, 1, 2),
            )
            .unwrap()
            .on_disk;
        assert_eq!(on_disk, 0);
        assert!(
            !spill.data.exists(),
            "the spilled piece is gathered and removed"
        );
        // 8 bytes fit the budget of 10: in memory, reserved; the next 8 do not: on disk.
        let on_disk = store
            .put_map_output(
                shuffle,
                1,
                two_buckets(b"c3", b"d3333", Vec::new()),
                (1, 1, 2),
            )
            .unwrap()
            .on_disk;
        assert_eq!(on_disk, 7);
        let files = store.take_map_files(shuffle);
        assert_eq!(std::fs::read(&files[0].data).unwrap(), b"a1a2b1b2");
        assert!(files[0].data.starts_with(shm.path()));
        assert!(files[1].data.starts_with(disk.path()));
        assert_eq!(memory.reserved(), 8);
        files.iter().for_each(|f| store.remove_map_file(f));
        assert_eq!(memory.reserved(), 0);
        assert!(!files[0].data.exists() && !files[1].data.exists());
    }

    #[test]
    fn a_removed_shuffles_file_is_overwritten_by_the_next_map_output_in_memory() {
        use std::os::unix::fs::MetadataExt;
        // A budget of 80 bytes: files kept for reuse may hold 10.
        let (shm, disk, memory, store) = store_in_memory(80);
        let output = |a: &[u8], b: &[u8]| two_buckets(a, b, Vec::new());
        // Partitions of executor 2: executor 1 writes every bucket to its file.
        let put = |shuffle, split, out| {
            store.set_owners(shuffle, vec![2, 2]);
            store
                .put_map_output(shuffle, split, out, (1, 1, 2))
                .unwrap();
            store.take_map_files(shuffle)
        };
        let first = put(ShuffleId(1), 0, output(b"aaaa", b"bbbbb"));
        let inode = std::fs::metadata(&first[0].data).unwrap().ino();
        store.retain_map_files(ShuffleId(1), first.clone());
        store.remove_shuffle(ShuffleId(1));
        assert!(!first[0].data.exists() && !first[0].index.exists());
        assert_eq!((store.pooled_bytes(), memory.reserved()), (9, 9));
        // The next output, shorter, overwrites the same file, cut to its own length.
        let second = put(ShuffleId(2), 3, output(b"xy", b"z"));
        assert_eq!(std::fs::metadata(&second[0].data).unwrap().ino(), inode);
        assert_eq!(std::fs::read(&second[0].data).unwrap(), b"xyz");
        assert_eq!(second[0].bucket_ranges(2), [0..2, 2..3]);
        assert_eq!((store.pooled_bytes(), memory.reserved()), (0, 3));
        // A file the pool has no room for is removed, its memory given back.
        let third = put(ShuffleId(3), 0, output(b"0123456789", b"x"));
        store.retain_map_files(ShuffleId(3), third.clone());
        store.remove_shuffle(ShuffleId(3));
        assert_eq!((store.pooled_bytes(), memory.reserved()), (0, 3));
        // A kept file gives its memory back before a map output would go to disk.
        store.retain_map_files(ShuffleId(2), second.clone());
        store.remove_shuffle(ShuffleId(2));
        assert_eq!(store.pooled_bytes(), 3);
        let big = vec![7u8; 78];
        let fourth = put(ShuffleId(4), 0, output(&big, b""));
        assert!(
            fourth[0].data.starts_with(shm.path()),
            "in memory, not spilled"
        );
        assert_eq!((store.pooled_bytes(), memory.reserved()), (0, 78));
        assert_eq!(std::fs::read(&fourth[0].data).unwrap(), big);
        let mut left: Vec<String> = std::fs::read_dir(store.dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != "_OWNER")
            .collect();
        left.sort();
        assert_eq!(left, ["shuffle-4-map-0-6.data", "shuffle-4-map-0-6.index"]);
        // A reduce file is kept the same way, and taken only for a path in the scratch
        // directory.
        store.retain_map_files(ShuffleId(4), fourth);
        store.remove_shuffle(ShuffleId(4));
        let reduce = store.place_reduce_file(ShuffleId(5), 2);
        std::fs::write(&reduce, b"rr").unwrap();
        assert_eq!((store.pooled_bytes(), memory.reserved()), (0, 2));
        store.remove_shuffle(ShuffleId(5));
        assert_eq!((store.pooled_bytes(), memory.reserved()), (2, 2));
        assert!(store.take_pooled(&disk.path().join("x"), 1).is_none());
        assert!(store.take_pooled(&store.dir().join("y"), 1).is_some());
        assert_eq!(store.pooled_bytes(), 0);
        // Nothing is kept while half the budget is reserved.
        let mut tasks = memory.reservation();
        assert!(tasks.grow_to(40));
        let reduce = store.place_reduce_file(ShuffleId(6), 2);
        std::fs::write(&reduce, b"rr").unwrap();
        store.remove_shuffle(ShuffleId(6));
        assert_eq!((store.pooled_bytes(), memory.reserved()), (0, 40));
        assert!(!reduce.exists());
    }

    #[test]
    fn the_kept_file_taken_is_the_one_closest_in_size() {
        let (_shm, _disk, _memory, store) = store_in_memory(1200);
        for (s, len) in [(1, 30), (2, 60), (3, 45)] {
            let path = store.place_reduce_file(ShuffleId(s), len);
            std::fs::write(&path, vec![s as u8; len as usize]).unwrap();
            store.remove_shuffle(ShuffleId(s));
        }
        assert_eq!(store.pooled_bytes(), 135);
        let taken = |need: u64| {
            let path = store.dir().join(format!("taken-{need}"));
            store.take_pooled(&path, need).unwrap();
            std::fs::read(&path).unwrap()
        };
        assert_eq!(taken(40), [3; 45]);
        assert_eq!(taken(20), [1; 30]);
        assert_eq!(taken(1), [2; 60]);
        assert_eq!(store.pooled_bytes(), 0);
    }

    /// A map output of three buckets for reduce partitions owned by executors 1, 2, 1.
    fn three_buckets() -> MapOutput {
        let mut buckets = vec![Vec::with_capacity(8), b"bb".to_vec(), b"ccc".to_vec()];
        buckets[0].extend_from_slice(b"a");
        MapOutput {
            buckets,
            orders: Vec::new(),
            records: 0,
            spills: Vec::new(),
            reservation: None,
        }
    }

    #[test]
    fn the_buckets_of_an_executors_own_partitions_stay_in_memory_reserved() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let memory = MemoryManager::new(1 << 20);
        let store = ShuffleStore::new(
            ScratchDir::create(shm.path(), "t", 1).unwrap(),
            ScratchDir::create(shm.path(), "t-spill", 1).unwrap(),
            Arc::clone(&memory),
        );
        let shuffle = ShuffleId(2);
        store.set_owners(shuffle, vec![1, 2, 1]);
        let written = store
            .put_map_output(shuffle, 0, three_buckets(), (1, 1, 2))
            .unwrap();
        assert_eq!(written.bytes, 6, "all of the map output counts");
        let mut files = store.take_map_files(shuffle);
        let file = files.pop().unwrap();
        assert_eq!(
            std::fs::read(&file.data).unwrap(),
            b"bb",
            "executor 2's only"
        );
        assert_eq!(file.bytes(), 2);
        let own: Vec<(u32, &[u8])> = file.own.iter().map(|(r, b)| (*r, &b[..])).collect();
        assert_eq!(own, [(0, &b"a"[..]), (2, &b"ccc"[..])]);
        // Each kept bucket's capacity (the first, 1 byte in 8, cut to its length), and
        // the file's bytes.
        assert_eq!(memory.reserved(), 1 + 3 + 2);
        store.remove_map_file(&file);
        assert_eq!(memory.reserved(), 1 + 3, "held while the buckets are");
        drop(file);
        assert_eq!(memory.reserved(), 0);
    }

    #[test]
    fn a_sorts_own_buckets_are_gathered_in_order_under_their_runs_header() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let store = ShuffleStore::new(
            ScratchDir::create(shm.path(), "t", 1).unwrap(),
            ScratchDir::create(shm.path(), "t-spill", 1).unwrap(),
            MemoryManager::new(1 << 20),
        );
        let shuffle = ShuffleId(4);
        store.set_owners(shuffle, vec![1, 2, 1]);
        let swap = vec![packed_range(2..4), packed_range(0..2)];
        let output = MapOutput {
            buckets: vec![b"xyab".to_vec(), b"qrst".to_vec(), b"c".to_vec()],
            orders: vec![Some(swap.clone()), Some(swap), None],
            records: 0,
            spills: Vec::new(),
            reservation: None,
        };
        store.put_map_output(shuffle, 0, output, (1, 1, 2)).unwrap();
        let file = store.take_map_files(shuffle).pop().unwrap();
        let sorted = |records: &[u8]| {
            let mut bytes = crate::shuffle::files::runs_header(&[Piece::Bytes(records)]);
            bytes.extend_from_slice(records);
            bytes
        };
        assert_eq!(std::fs::read(&file.data).unwrap(), sorted(b"stqr"));
        let own: Vec<(u32, &[u8])> = file.own.iter().map(|(r, b)| (*r, &b[..])).collect();
        assert_eq!(own, [(0, &sorted(b"abxy")[..]), (2, &sorted(b"c")[..])]);
        store.remove_map_file(&file);
    }

    #[test]
    fn own_buckets_go_to_the_file_on_disk_or_past_the_budget() {
        let (shm, disk) = (
            tempfile::tempdir_in("/dev/shm").unwrap(),
            tempfile::tempdir().unwrap(),
        );
        // On disk the page cache holds the file anyway: everything goes to it.
        // In memory with room for the first bucket only: the rest go to the file.
        for (dir, budget, kept, file_bytes) in [
            (disk.path(), 1 << 20, vec![], &b"abbccc"[..]),
            (shm.path(), 3, vec![0], &b"bbccc"[..]),
        ] {
            let store = ShuffleStore::new(
                ScratchDir::create(dir, "t", 1).unwrap(),
                ScratchDir::create(dir, "t-spill", 1).unwrap(),
                MemoryManager::new(budget),
            );
            let shuffle = ShuffleId(3);
            store.set_owners(shuffle, vec![1, 2, 1]);
            store
                .put_map_output(shuffle, 0, three_buckets(), (1, 1, 2))
                .unwrap();
            let file = store.take_map_files(shuffle).pop().unwrap();
            let own: Vec<u32> = file.own.iter().map(|(r, _)| *r).collect();
            assert_eq!(own, kept, "budget {budget}");
            let mut bytes = std::fs::read(&file.data).unwrap();
            bytes.sort_unstable();
            assert_eq!(bytes, file_bytes, "budget {budget}");
            store.remove_map_file(&file);
        }
    }
}
