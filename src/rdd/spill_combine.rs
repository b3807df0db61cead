//! A combine by key that holds at most the executor's memory budget (Spark's
//! `ExternalAppendOnlyMap`): the reduce side of an aggregation, `group_by_key`, `cogroup`.
//!
//! Values are combined in a hash map whose estimated decoded size (slots, plus the heap
//! its keys and combiners own, sampled as they grow) is reserved against the running
//! task's budget. When the reservation cannot grow, the map's entries are sorted by the
//! hash of their key and written to a spill file, and the map starts again empty. At the
//! end the spilled runs and what is left in memory are merged by key hash: equal keys meet
//! in one small group and their combiners merge, so each key comes out once. A group's
//! combiner itself (one key's values) is never split: a key with more values than memory
//! is as large as it is, like in Spark.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::memory::Reservation;
use crate::plan::batch::{BATCH_SIZE, BatchIter, batched};
use crate::plan::task::{TaskScope, task_scope};
use crate::rdd::Key;
use crate::rdd::combine::{CombineMap, Merged};
use crate::rdd::combine_table::hash_key;

/// Merges two combiners of one key.
pub type MergeCombiners<C> = Arc<dyn Fn(C, C) -> C + Send + Sync>;

/// Combines `records` by key (`create` a key's first value, `merge_value` the others into
/// it) within the running task's budget, spilling to disk over it; unbounded outside a
/// task. Each key comes out once, in no particular order.
pub fn combine_spilling<K, V, C>(
    mut records: impl Iterator<Item = (K, V)>,
    create: impl Fn(V) -> C,
    merge_value: impl Fn(C, V) -> C,
    merge_combiners: MergeCombiners<C>,
) -> Result<BatchIter<(K, C)>>
where
    K: Key,
    C: Serialize + DeserializeOwned + Send + 'static,
{
    let mut map = CombineMap::new();
    let runs = merge_spilling(&mut map, &mut records, &create, &merge_value)?;
    if runs.is_empty() {
        // The reservation lives as long as the entries it covers.
        let reservation = map.take_reservation();
        let entries = map.take().inspect(move |_| {
            let _held = &reservation;
        });
        return Ok(batched(entries));
    }
    merge_runs(&mut map, runs, merge_combiners)
}

/// Merges `records` into `map`; whenever the map outgrows what the running task's budget
/// lets it hold, its entries go to a spill run and it starts again empty. The runs
/// spilled (none if it never outgrew the budget, or outside a task).
pub fn merge_spilling<K, V, C>(
    map: &mut CombineMap<K, C>,
    records: &mut impl Iterator<Item = (K, V)>,
    create: &impl Fn(V) -> C,
    merge_value: &impl Fn(C, V) -> C,
) -> Result<Vec<SpillRun>>
where
    K: Key,
    C: Serialize + 'static,
{
    let scope = task_scope().filter(|_| map.is_bounded());
    let mut runs = Vec::new();
    loop {
        match map.merge_some(records, create, merge_value) {
            Merged::Ended => return Ok(runs),
            Merged::More => {}
            Merged::OverBudget => {
                if let Some(scope) = &scope {
                    runs.push(spill(map, scope)?);
                }
            }
        }
    }
}

/// What is left in `map` merged with the `runs` it spilled, by key hash, each key once:
/// the map is left empty, its table freed and its reservation held by the merge.
pub fn merge_runs<K, C>(
    map: &mut CombineMap<K, C>,
    runs: Vec<SpillRun>,
    merge_combiners: MergeCombiners<C>,
) -> Result<BatchIter<(K, C)>>
where
    K: Key,
    C: Serialize + DeserializeOwned + Send + 'static,
{
    let reservation = map.take_reservation();
    let memory = sorted(map.take()).into_iter();
    let merged = HashMerge::new(memory, runs, merge_combiners)?;
    Ok(Box::new(MergeBatches {
        merged,
        _reservation: reservation,
    }))
}

/// Entries sorted by key hash.
fn sorted<K: Key, C>(entries: impl Iterator<Item = (K, C)>) -> Vec<(u64, K, C)> {
    let mut entries: Vec<(u64, K, C)> = entries.map(|(k, c)| (hash_key(&k), k, c)).collect();
    entries.sort_unstable_by_key(|e| e.0);
    entries
}

/// Writes the map's entries to a spill file, sorted by key hash, leaving it empty.
fn spill<K: Key, C: Serialize + 'static>(
    map: &mut CombineMap<K, C>,
    scope: &TaskScope,
) -> Result<SpillRun> {
    let entries = sorted(map.take());
    let run = SpillRun::write(&scope.spill_dir, entries.iter().map(|(_, k, c)| (k, c)))?;
    scope.memory.note_spill(run.len());
    scope.counters.add_spill(run.len());
    Ok(run)
}

/// A spill file: encoded (key, combiner) records sorted by key hash, unlinked as soon as
/// it is created (so it cannot outlive the task, whatever happens), read mapped.
pub struct SpillRun {
    map: memmap2::Mmap,
}

impl SpillRun {
    fn write<'a, K: Serialize + 'static, C: Serialize + 'static>(
        dir: &Path,
        entries: impl Iterator<Item = (&'a K, &'a C)>,
    ) -> Result<SpillRun> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            "combine-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let failed =
            |e: std::io::Error| Error::Other(format!("cannot spill to {}: {e}", path.display()));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(failed)?;
        std::fs::remove_file(&path).map_err(failed)?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        let mut buf = Vec::new();
        for (k, c) in entries {
            buf.clear();
            // Read back as `(K, C)`: the bytes of the owned pair.
            crate::codec::encode_entry_into(&mut buf, k, c);
            out.write_all(&buf).map_err(failed)?;
        }
        out.flush().map_err(failed)?;
        drop(out);
        // SAFETY: the file is private to this process (created new and unlinked at once)
        // and no longer written.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(failed)?;
        Ok(SpillRun { map })
    }

    fn len(&self) -> u64 {
        self.map.len() as u64
    }
}

/// Where a run's next entry comes from.
enum Source<K, C> {
    Memory(std::vec::IntoIter<(u64, K, C)>),
    Spilled { run: SpillRun, at: usize },
}

impl<K: Key, C: DeserializeOwned + 'static> Source<K, C> {
    fn next(&mut self) -> Result<Option<(u64, K, C)>> {
        match self {
            Source::Memory(entries) => Ok(entries.next()),
            Source::Spilled { run, at } => {
                if *at >= run.map.len() {
                    return Ok(None);
                }
                let ((k, c), next) =
                    crate::codec::decode_at::<(K, C)>(&run.map, *at).map_err(|e| {
                        Error::Other(format!("a spill file of a combine is unreadable: {e}"))
                    })?;
                *at = next;
                Ok(Some((hash_key(&k), k, c)))
            }
        }
    }
}

/// The keys of one hash and their combiners (`None` after a panicked merge).
type Group<K, C> = Vec<(K, Option<C>)>;

/// The merge of runs sorted by key hash: the entries of the smallest hash from every run
/// form a group, in which equal keys merge.
struct HashMerge<K, C> {
    sources: Vec<Source<K, C>>,
    heads: Vec<Option<(K, C)>>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    merge: MergeCombiners<C>,
    group: Group<K, C>,
}

impl<K: Key, C: DeserializeOwned + 'static> HashMerge<K, C> {
    fn new(
        memory: std::vec::IntoIter<(u64, K, C)>,
        runs: Vec<SpillRun>,
        merge: MergeCombiners<C>,
    ) -> Result<Self> {
        let mut sources = vec![Source::Memory(memory)];
        sources.extend(runs.into_iter().map(|run| Source::Spilled { run, at: 0 }));
        let mut merged = HashMerge {
            heads: (0..sources.len()).map(|_| None).collect(),
            sources,
            heap: BinaryHeap::new(),
            merge,
            group: Vec::new(),
        };
        for i in 0..merged.sources.len() {
            merged.advance(i)?;
        }
        Ok(merged)
    }

    /// Reads source `i`'s next entry into its head.
    fn advance(&mut self, i: usize) -> Result<()> {
        if let Some((hash, k, c)) = self.sources[i].next()? {
            self.heads[i] = Some((k, c));
            self.heap.push(Reverse((hash, i)));
        }
        Ok(())
    }

    /// The next group: every key of the smallest hash left, each once.
    fn next_group(&mut self) -> Result<Option<Group<K, C>>> {
        let Some(&Reverse((hash, _))) = self.heap.peek() else {
            return Ok(None);
        };
        let mut group = std::mem::take(&mut self.group);
        while let Some(&Reverse((h, i))) = self.heap.peek() {
            if h != hash {
                break;
            }
            self.heap.pop();
            let (k, c) = self.heads[i]
                .take()
                .expect("a source in the heap has a head");
            match group.iter_mut().find(|(g, _)| *g == k) {
                // Moved out and back: a panic in `merge` leaves `None`, which is skipped.
                Some((_, held)) => *held = held.take().map(|a| (self.merge)(a, c)),
                None => group.push((k, Some(c))),
            }
            self.advance(i)?;
        }
        Ok(Some(group))
    }
}

/// The merged entries in batches; the reservation covering the in-memory run lives as long.
struct MergeBatches<K, C> {
    merged: HashMerge<K, C>,
    _reservation: Option<Reservation>,
}

impl<K: Key, C: DeserializeOwned + 'static> Iterator for MergeBatches<K, C> {
    type Item = Result<Vec<(K, C)>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut batch = Vec::with_capacity(BATCH_SIZE);
        while batch.len() < BATCH_SIZE {
            match self.merged.next_group() {
                Ok(Some(mut group)) => {
                    batch.extend(group.drain(..).filter_map(|(k, c)| Some((k, c?))));
                    self.merged.group = group;
                }
                Ok(None) => break,
                Err(e) => return Some(Err(e)),
            }
        }
        (!batch.is_empty()).then_some(Ok(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryManager;
    use crate::plan::batch::collect_partition;
    use crate::plan::task::enter_task;

    /// Enters a task with a budget of `budget` that spills into `dir`: its memory, and the
    /// guard that keeps the task entered.
    fn task_spilling_into(
        dir: &std::path::Path,
        budget: u64,
    ) -> (Arc<MemoryManager>, crate::plan::task::TaskGuard) {
        let memory = MemoryManager::new(budget);
        let task = enter_task(TaskScope {
            memory: Arc::clone(&memory),
            spill_dir: dir.to_path_buf(),
            counters: Arc::default(),
        });
        (memory, task)
    }

    /// Groups `n` values over `keys` keys (String keys, like words) with a task budget of
    /// `budget` spilling into a fresh directory; the groups, the bytes spilled and the
    /// files left in the directory.
    fn groups(budget: u64, n: u64, keys: u64) -> (Vec<(String, Vec<u64>)>, u64, usize) {
        let dir = tempfile::tempdir().unwrap();
        let (memory, _task) = task_spilling_into(dir.path(), budget);
        let records = (0..n).map(|i| (format!("key-{}", i * 7919 % keys), i));
        let merge: MergeCombiners<Vec<u64>> = Arc::new(|mut a, mut b| {
            a.append(&mut b);
            a
        });
        let create = |v| vec![v];
        let add = |mut c: Vec<u64>, v| {
            c.push(v);
            c
        };
        let out = combine_spilling(records, create, add, merge).unwrap();
        let mut out = collect_partition(out).unwrap();
        out.iter_mut().for_each(|(_, vs)| vs.sort_unstable());
        out.sort_unstable();
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        (out, memory.spilled(), left)
    }

    #[test]
    fn groups_over_the_budget_spill_and_come_out_once_each_with_every_value() {
        let (n, keys) = (400_000, 150_000);
        let mut expect: Vec<(String, Vec<u64>)> = {
            let mut m: std::collections::HashMap<String, Vec<u64>> = Default::default();
            for i in 0..n {
                m.entry(format!("key-{}", i * 7919 % keys))
                    .or_default()
                    .push(i);
            }
            m.into_iter().collect()
        };
        expect.sort_unstable();
        let (roomy, spilled, _) = groups(1 << 30, n, keys);
        assert_eq!(spilled, 0, "a roomy budget spilled");
        assert_eq!(roomy, expect);
        // About 20 MB of groups decoded, through 4 MiB.
        let (tight, spilled, left) = groups(4 << 20, n, keys);
        assert!(spilled > 0, "a 4 MiB budget never spilled");
        assert_eq!(tight, expect);
        assert_eq!(left, 0, "spill files outlived the combine");
    }

    #[test]
    fn fixed_width_pairs_spill_and_read_back_as_written() {
        // (u64, f64) entries are written to a spill file from references to their parts
        // and read back as owned pairs: both must be the 16-byte layout.
        let dir = tempfile::tempdir().unwrap();
        let (memory, _task) = task_spilling_into(dir.path(), 1 << 20);
        let (n, keys) = (600_000u64, 200_000u64);
        let records = (0..n).map(|i| (i * 7919 % keys, i as f64 * 0.5));
        let merge: MergeCombiners<f64> = Arc::new(|a, b| a + b);
        let out = combine_spilling(records, |v| v, |c, v| c + v, merge).unwrap();
        let mut out = collect_partition(out).unwrap();
        assert!(memory.spilled() > 0, "a 1 MiB budget never spilled");
        out.sort_by_key(|(k, _)| *k);
        let mut expect = vec![0f64; keys as usize];
        for i in 0..n {
            expect[(i * 7919 % keys) as usize] += i as f64 * 0.5;
        }
        assert_eq!(out.len() as u64, keys);
        for (k, sum) in out {
            assert!(
                (sum - expect[k as usize]).abs() <= 1e-9 * sum.abs(),
                "key {k}"
            );
        }
    }

    #[test]
    fn keys_of_equal_hash_stay_apart() {
        // Entries of one hash from several runs form one group; distinct keys in it must
        // not merge. Force every hash equal by merging runs of a type whose hash is fixed.
        #[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, Debug)]
        struct Same(u32);
        impl std::hash::Hash for Same {
            fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
                h.write_u8(0);
            }
        }
        let merge: MergeCombiners<u64> = Arc::new(|a, b| a + b);
        let runs = [
            vec![(Same(1), 1u64), (Same(2), 10)],
            vec![(Same(2), 100), (Same(3), 1000)],
        ];
        let dir = tempfile::tempdir().unwrap();
        let spilled = runs
            .iter()
            .map(|r| SpillRun::write(dir.path(), r.iter().map(|(k, c)| (k, c))).unwrap())
            .collect();
        let memory = vec![(hash_key(&Same(1)), Same(1), 5u64)].into_iter();
        let merged = HashMerge::new(memory, spilled, merge).unwrap();
        let batches = MergeBatches {
            merged,
            _reservation: None,
        };
        let mut out: Vec<(u32, u64)> = batches
            .flat_map(|b| b.unwrap())
            .map(|(k, c)| (k.0, c))
            .collect();
        out.sort_unstable();
        assert_eq!(out, [(1, 6), (2, 110), (3, 1000)]);
    }

    #[test]
    fn an_unreadable_spill_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let entries = [(7u64, "x".repeat(100))];
        let run = SpillRun::write(dir.path(), entries.iter().map(|(k, c)| (k, c))).unwrap();
        // A run cut short: its one record ends past the file.
        let mut source: Source<u64, String> = Source::Spilled { run, at: 0 };
        if let Source::Spilled { run, .. } = &mut source {
            let cut = memmap2::MmapOptions::new().len(20).map_anon().unwrap();
            let mut cut = cut;
            cut.copy_from_slice(&run.map[..20]);
            run.map = cut.make_read_only().unwrap();
        }
        let err = source.next().expect_err("a cut record decoded");
        let err = err.to_string();
        assert!(
            err.contains("spill file") && err.contains("record at byte 0:"),
            "{err}"
        );
    }
}
