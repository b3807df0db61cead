//! The map-side combine of an aggregation, one reduce partition at a time: records are
//! first split by the reduce partition the shuffle will send them to, then each part is
//! combined in its own small hash map (radix-partitioned aggregation, as databases do it
//! to keep hash tables in cache).
//!
//! Keys of different reduce partitions never combine, so splitting first changes no
//! combiner; it only changes how large a hash map is. One map for the whole task grows
//! as large as the task's distinct keys — PageRank's contributions: nearly one a record,
//! tens of MB a task — so every record is a cache miss, and its doublings copy the map
//! and fault fresh pages (profiled at 1 GB: two thirds of an iteration's time in the
//! map-side combine, a fifth of that zeroing new pages). A part's map holds a
//! `partitions`-th of the keys: it stays in cache, and its memory is reused by the next
//! part. The combiners also come out grouped by reduce partition, so the shuffle then
//! appends to one bucket at a time.
//!
//! Splitting costs a copy of every record, and buffers them: where one map stays in cache
//! (WordCount: 100 k distinct words in 4 M records a task) it is pure loss (1 GB: 9 s ->
//! 12 s, executors 72 -> 251 MiB). So [`map_side_combine`] starts with one map and splits
//! only once that map outgrows the cache ([`CACHED_MAP_BYTES`]); the tasks after it of the
//! same combine split from the start.
//!
//! A reduce partition's part can itself be far larger than the cache (PageRank at 256 MB,
//! 4 reduce partitions: ~500 k distinct keys a part, a 10 MB map, a cache miss a record),
//! so each reduce partition is split further, by other bits of the key's hash, into
//! `fanout` sub-parts sized so that one's map stays in the core's cache
//! ([`CACHED_PART_BYTES`]). The sub-parts of a reduce partition are combined one after the
//! other, so the combiners still come out grouped by reduce partition.
//!
//! Combining only pays where keys repeat: PageRank's contributions hold a distinct key in
//! two of three records a task, so the map side did the reduce side's work again and still
//! shipped most records (256 MB, 10 iterations: user CPU 21.9 s, 17.6 s without the
//! map-side combine). As in DataFusion's skipping of partial aggregation, each task of a
//! combine not yet decided first combines a probe of [`PROBE_RECORDS`] records; where they
//! hold more than [`SKIP_RATIO`] distinct keys a record, the probe's combiners go on and
//! the records after them cross the shuffle nearly as they are, for this task and the
//! combine's later tasks ([`MapSideHints`]): only keys that repeat close together (a hot
//! key) are still folded, in a small table of the keys seen last ([`RecentKeys`]).
//! WordCount's probe holds a few percent distinct words: it combines.
//!
//! Memory: the split records are reserved against the task's budget as they are read;
//! when the budget has no room, the parts read so far are combined and handed on, and
//! reading goes on with empty parts (a key may then cross the shuffle more than once, as
//! with `combine::bounded_combine`'s hand-overs). Each part's map is bounded the same way.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::memory::estimate::SizeHint;
use crate::plan::batch::{BATCH_SIZE, Records};
use crate::rdd::Key;
use crate::rdd::combine::{CombineMap, Combiners, Merged};
use crate::rdd::combine_table::{Entries, hash_key};
use crate::rdd::recent_keys::RecentKeys;
use crate::rdd::split_parts::Parts;
use crate::shuffle::partitioner::KeyPartition;

/// A combine map whose slots pass this no longer stays in the cache (this machine: 1 MiB
/// L2 a core, 32 MiB L3 shared by the executors): past it, records are split by reduce
/// partition first.
pub const CACHED_MAP_BYTES: usize = 8 << 20;

/// The slots a sub-part's map is sized to stay within: a quarter of a core's 1 MiB L2,
/// leaving room for the sub-parts' write streams.
pub const CACHED_PART_BYTES: usize = 256 << 10;

/// The records a task of an undecided combine combines before it decides whether
/// combining pays (DataFusion probes as many rows).
pub const PROBE_RECORDS: usize = 100_000;

/// Distinct keys a record in the probe past which the map side stops combining
/// (DataFusion's threshold). A whole task has fewer distinct keys a record than its probe
/// (keys repeat more the more records are seen), so the probe errs towards skipping: a
/// task whose keys repeat only far apart passes them on.
pub const SKIP_RATIO: f64 = 0.8;

/// Whether the tasks of a combine combine on the map side (`MapSideHints::decision`).
const UNDECIDED: u8 = 0;
const COMBINE: u8 = 1;
const SKIP: u8 = 2;

/// At most this many sub-parts a reduce partition (each is a write stream while reading).
const MAX_FANOUT: usize = 128;

/// The sub-parts to split each reduce partition into so that a sub-part's map of
/// `keys / fanout` keys, in slots of `slot` bytes (at hashbrown's load of 7/8), stays
/// within [`CACHED_PART_BYTES`]: a power of two, at most [`MAX_FANOUT`].
pub fn fanout(keys: usize, slot: usize) -> usize {
    let bytes = keys.saturating_mul(slot) / 7 * 8;
    bytes
        .div_ceil(CACHED_PART_BYTES)
        .next_power_of_two()
        .clamp(1, MAX_FANOUT)
}

/// The sub-part (of `fanout`, a power of two) of a key hashed to `hash`: bits 32 and up,
/// apart from the high bits that place it in its reduce partition (`hash_partition`) and
/// the low ones that place it in a hash map's table (hashbrown).
#[inline]
pub(crate) fn sub_part(hash: u64, fanout: usize) -> usize {
    (hash >> 32) as usize & (fanout - 1)
}

/// What the map-side tasks of one aggregation learn for (and leave to) the ones after
/// them.
pub struct MapSideHints<K, C> {
    /// The most records a task split into one reduce partition (sizes the next task's
    /// parts).
    pub sizes: Arc<SizeHint>,
    /// The most distinct keys a task combined for one reduce partition (decides the next
    /// task's fanout).
    pub keys: Arc<SizeHint>,
    /// A task's one map outgrew the cache: the next tasks split from the start.
    split: AtomicBool,
    /// Whether a probe found combining worth it ([`UNDECIDED`], [`COMBINE`], [`SKIP`]).
    decision: AtomicU8,
    /// The most keys a task's one map held: the next task's map starts that large.
    map_keys: SizeHint,
    /// Emptied maps of finished tasks, their slots kept (at most one per executor thread,
    /// each cache-sized): the next task reuses one instead of growing a fresh map by
    /// rehashing into pages the kernel must fault in and zero. An idle table is not held
    /// against a task's budget; the task that takes it reserves its slots again.
    tables: Mutex<Vec<Combiners<K, C>>>,
}

impl<K, C> Default for MapSideHints<K, C> {
    fn default() -> Self {
        MapSideHints {
            sizes: Arc::default(),
            keys: Arc::default(),
            split: AtomicBool::new(false),
            decision: AtomicU8::new(UNDECIDED),
            map_keys: SizeHint::default(),
            tables: Mutex::new(Vec::new()),
        }
    }
}

impl<K: Key, C: serde::Serialize> MapSideHints<K, C> {
    /// Whether the tasks of this combine split their records by reduce partition.
    pub fn splits(&self) -> bool {
        self.split.load(Ordering::Relaxed)
    }

    /// Whether the tasks of this combine pass their records on uncombined (a probe found
    /// too few repeated keys).
    pub fn skips(&self) -> bool {
        self.decision.load(Ordering::Relaxed) == SKIP
    }

    /// A task's one map: an earlier task's emptied table, or a fresh one as large as the
    /// earlier tasks' maps grew.
    fn map(&self) -> CombineMap<K, C> {
        let table = self.tables.lock().unwrap_or_else(|p| p.into_inner()).pop();
        CombineMap::with_table(
            table.unwrap_or_else(|| Combiners::with_capacity(self.map_keys.expected())),
        )
    }

    /// Takes back the emptied map of a task that ended with `keys` keys in it.
    fn give_back(&self, map: CombineMap<K, C>, keys: usize) {
        self.map_keys.note(keys);
        if map.slot_bytes() > CACHED_MAP_BYTES {
            return;
        }
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        if tables.len() < rayon::current_num_threads() {
            tables.push(map.into_table());
        }
    }
}

/// [`MapSideCombine::new`] a combiner at a time.
pub fn map_side_combine<K, V, C, F, G>(
    records: impl Records<(K, V)> + 'static,
    partitions: usize,
    place: KeyPartition<K>,
    hints: Arc<MapSideHints<K, C>>,
    create: F,
    merge_value: G,
) -> impl Iterator<Item = (K, C)>
where
    K: Key,
    V: serde::Serialize + 'static,
    C: serde::Serialize + 'static,
    F: Fn(V) -> C + Clone + 'static,
    G: Fn(C, V) -> C + Clone + 'static,
{
    MapSideCombine::new(records, partitions, place, hints, create, merge_value).flatten()
}

/// The state of one task's map-side combine ([`MapSideCombine::new`]).
pub struct MapSideCombine<R, K, V, C, F, G> {
    /// The records not yet read; `None` once they ended.
    records: Option<R>,
    partitions: usize,
    place: KeyPartition<K>,
    hints: Arc<MapSideHints<K, C>>,
    create: F,
    merge_value: G,
    /// Combining into one map (not yet split by reduce partition).
    one_map: bool,
    /// Records pass on uncombined (a probe found too few repeated keys); else, undecided,
    /// this task probes first.
    passing: bool,
    /// While passing: the keys seen last, still folded (a hot key among distinct ones);
    /// made only by a task that passes.
    recent: Option<RecentKeys<K, C>>,
    probing: bool,
    map: Option<CombineMap<K, C>>,
    /// Entries to hand on before anything else.
    out: Option<Box<dyn Iterator<Item = (K, C)>>>,
    /// The records have ended: the map's entries are handed on.
    ending: bool,
    keys_at_end: usize,
    /// The rest of the records, split by reduce partition (per output entry, not record,
    /// behind the box).
    split: Option<Box<dyn Iterator<Item = (K, C)>>>,
    /// The keys a reduce partition held in the one map when it outgrew the cache: a floor
    /// for the fanout of the first task that splits.
    least_keys: usize,
    _values: std::marker::PhantomData<fn(V)>,
}

impl<R, K, V, C, F, G> Iterator for MapSideCombine<R, K, V, C, F, G>
where
    R: Records<(K, V)> + 'static,
    K: Key,
    V: serde::Serialize + 'static,
    C: serde::Serialize + 'static,
    F: Fn(V) -> C + Clone + 'static,
    G: Fn(C, V) -> C + Clone + 'static,
{
    type Item = Vec<(K, C)>;

    fn next(&mut self) -> Option<Vec<(K, C)>> {
        let mut batch = Vec::with_capacity(BATCH_SIZE);
        while batch.len() < BATCH_SIZE {
            if let Some(out) = &mut self.out {
                if top_up(&mut batch, out) {
                    break;
                }
                self.out = None;
                continue;
            }
            if self.passing && self.records.is_some() {
                self.pass(&mut batch);
                continue;
            }
            if let Some(parts) = &mut self.split {
                if top_up(&mut batch, parts) {
                    continue;
                }
                self.split = None;
                break;
            }
            if !self.step() {
                break;
            }
        }
        (!batch.is_empty()).then_some(batch)
    }
}

/// Moves entries of `from` into `batch` until it holds [`BATCH_SIZE`]; true when it is
/// full (`from` may hold more), false when `from` ran out first.
fn top_up<T>(batch: &mut Vec<T>, from: &mut dyn Iterator<Item = T>) -> bool {
    let room = BATCH_SIZE - batch.len();
    batch.extend(from.take(room));
    batch.len() == BATCH_SIZE
}

impl<R, K, V, C, F, G> MapSideCombine<R, K, V, C, F, G>
where
    R: Records<(K, V)> + 'static,
    K: Key,
    V: serde::Serialize + 'static,
    C: serde::Serialize + 'static,
    F: Fn(V) -> C + Clone + 'static,
    G: Fn(C, V) -> C + Clone + 'static,
{
    /// The map-side combine of an aggregation: one hash map for the task while it stays
    /// cache-sized (handed on whenever the budget has no room for it, combining then starting
    /// again), then — once it outgrows [`CACHED_MAP_BYTES`] — what it holds is handed on and
    /// the rest of the records are combined a reduce partition at a time
    /// ([`partitioned_combine`]). Either way a key's combiners add up to the same result.
    /// A task that ends with its one map hands the entries on a batch at a time and leaves
    /// the emptied table to the next task ([`MapSideHints`]). The combiners come out in
    /// batches of up to [`BATCH_SIZE`].
    pub fn new(
        records: R,
        partitions: usize,
        place: KeyPartition<K>,
        hints: Arc<MapSideHints<K, C>>,
        create: F,
        merge_value: G,
    ) -> Self {
        let one_map = !hints.splits();
        let passing = hints.skips();
        let probing = hints.decision.load(Ordering::Relaxed) == UNDECIDED;
        let map = (!passing && (one_map || probing)).then(|| hints.map());
        MapSideCombine {
            records: Some(records),
            partitions,
            place,
            hints,
            create,
            merge_value,
            one_map,
            passing,
            recent: None,
            probing,
            map,
            out: None,
            ending: false,
            keys_at_end: 0,
            split: None,
            least_keys: 0,
            _values: std::marker::PhantomData,
        }
    }

    /// Passes records on into `batch` through the table of recent keys until it is full or
    /// they end (then the table's entries follow). The records are handed in as they are
    /// made, straight into the batch: one loop, not a record at a time through an
    /// iterator and a second batch (profiled: a sixth of PageRank's iterations).
    fn pass(&mut self, batch: &mut Vec<(K, C)>) {
        let (create, merge_value) = (&self.create, &self.merge_value);
        let table = self.recent.get_or_insert_with(RecentKeys::default);
        let Some(records) = self.records.as_mut() else {
            return;
        };
        let want = BATCH_SIZE - batch.len();
        let given = records.push_some(want, &mut |(k, v)| {
            if let Some(displaced) = table.put(k, v, create, merge_value) {
                batch.push(displaced);
            }
        });
        if given < want {
            self.records = None;
            self.passing = false;
            self.out = Some(Box::new(table.drain().collect::<Vec<_>>().into_iter()));
        }
    }

    /// Takes the next step of combining: entries into `out`, or the state on; false once
    /// everything has been handed on.
    fn step(&mut self) -> bool {
        if self.ending {
            return self.hand_on_the_rest();
        }
        if self.records.is_none() {
            return false;
        }
        if self.probing && self.map.is_some() {
            self.probe_some();
        } else if self.one_map && self.map.is_some() {
            self.combine_some();
        } else {
            self.split_the_rest();
        }
        true
    }

    /// The records have ended: the map's entries go on a batch at a time, and the emptied
    /// map back to the hints for the next task; false once it is empty.
    fn hand_on_the_rest(&mut self) -> bool {
        let Some(m) = &mut self.map else { return false };
        let batch = m.drain_some(BATCH_SIZE);
        if batch.is_empty() {
            let keys = std::mem::take(&mut self.keys_at_end);
            if let Some(map) = self.map.take() {
                self.hints.give_back(map, keys);
            }
            return false;
        }
        self.out = Some(Box::new(batch.into_iter()));
        true
    }

    /// Combines the first records to decide whether combining pays ([`probe`]); once
    /// decided to pass them on (or to split them), the probe's combiners go on and the
    /// table goes back to the hints.
    fn probe_some(&mut self) {
        let (Some(m), Some(input)) = (self.map.as_mut(), self.records.as_mut()) else {
            return;
        };
        match probe(m, input, &self.create, &self.merge_value, &self.hints) {
            Probe::Ended => {
                let keys = m.acc.len();
                self.records_ended(keys);
            }
            Probe::OverBudget => self.out = Some(Box::new(m.take())),
            Probe::Decided { skip } => {
                self.probing = false;
                self.passing = skip;
                if skip || !self.one_map {
                    let keys = m.acc.len();
                    self.out = Some(Box::new(m.drain_some(usize::MAX).into_iter()));
                    if let Some(map) = self.map.take() {
                        self.hints.give_back(map, keys);
                    }
                }
            }
        }
    }

    /// Combines records into the one map until they end, the budget is reached (what it
    /// holds goes on) or it outgrows the cache (what it holds goes on, and the rest is
    /// split by reduce partition, as the next tasks' records are from the start).
    fn combine_some(&mut self) {
        let (Some(m), Some(input)) = (self.map.as_mut(), self.records.as_mut()) else {
            return;
        };
        match combine_one_map(m, input, &self.create, &self.merge_value) {
            OneMap::Ended => {
                let keys = m.acc.len();
                self.records_ended(keys);
            }
            OneMap::OverBudget => self.out = Some(Box::new(m.take())),
            OneMap::OutgrewCache => {
                self.hints.split.store(true, Ordering::Relaxed);
                self.least_keys = m.acc.len() / self.partitions.max(1);
                self.one_map = false;
                self.out = Some(Box::new(m.take()));
            }
        }
    }

    /// The records ended with `keys` in the map: its entries go on from the next step.
    fn records_ended(&mut self, keys: usize) {
        self.records = None;
        self.keys_at_end = keys;
        self.ending = true;
    }

    /// The rest of the records are combined a reduce partition at a time
    /// ([`partitioned_combine`]).
    fn split_the_rest(&mut self) {
        let Some(rest) = self.records.take() else {
            return;
        };
        let (create, merge_value) = (self.create.clone(), self.merge_value.clone());
        self.split = Some(Box::new(partitioned_combine(
            rest,
            self.partitions,
            Arc::clone(&self.place),
            Arc::clone(&self.hints),
            self.least_keys,
            create,
            merge_value,
        )));
    }
}

/// How a task's probe ([`probe`]) ended.
enum Probe {
    /// The records ran out within it.
    Ended,
    /// The budget had no room for the map: what it holds goes on, and the probe starts
    /// again.
    OverBudget,
    /// [`PROBE_RECORDS`] records were combined: whether the combine now passes its records
    /// on uncombined (also noted in `hints`, for the later tasks).
    Decided { skip: bool },
}

/// Combines up to [`PROBE_RECORDS`] of `records` into `map`, then decides from the keys
/// they held whether the combine goes on combining ([`SKIP_RATIO`]).
fn probe<K: Key, V, C: serde::Serialize>(
    map: &mut CombineMap<K, C>,
    records: &mut impl Iterator<Item = (K, V)>,
    create: &impl Fn(V) -> C,
    merge_value: &impl Fn(C, V) -> C,
    hints: &MapSideHints<K, C>,
) -> Probe {
    let mut seen = 0usize;
    let mut part = records.take(PROBE_RECORDS).inspect(|_| seen += 1);
    let keys_before = map.acc.len();
    loop {
        match map.merge_some(&mut part, create, merge_value) {
            Merged::More => {}
            Merged::OverBudget => return Probe::OverBudget,
            Merged::Ended if seen < PROBE_RECORDS => return Probe::Ended,
            Merged::Ended => break,
        }
    }
    let keys = map.acc.len() - keys_before;
    let skip = keys as f64 > SKIP_RATIO * PROBE_RECORDS as f64;
    let decision = if skip { SKIP } else { COMBINE };
    tracing::debug!(
        "map-side combine: a probe of {PROBE_RECORDS} records held {keys} keys: {}",
        if skip {
            "records pass on uncombined"
        } else {
            "combining"
        }
    );
    // The first decision holds: the tasks probing beside this one may see other keys.
    let _ =
        hints
            .decision
            .compare_exchange(UNDECIDED, decision, Ordering::Relaxed, Ordering::Relaxed);
    Probe::Decided { skip }
}

/// Why [`combine_one_map`] stopped.
enum OneMap {
    /// The records ran out.
    Ended,
    /// The budget has no room for the map: what it holds goes on, and combining starts
    /// again.
    OverBudget,
    /// The map passed [`CACHED_MAP_BYTES`]: the rest is split by reduce partition.
    OutgrewCache,
}

/// Combines `records` into `map` until they run out or the map must be emptied.
fn combine_one_map<K: Key, V, C: serde::Serialize>(
    map: &mut CombineMap<K, C>,
    records: &mut impl Records<(K, V)>,
    create: &impl Fn(V) -> C,
    merge_value: &impl Fn(C, V) -> C,
) -> OneMap {
    loop {
        match map.merge_pushed(records, create, merge_value) {
            Merged::Ended => return OneMap::Ended,
            Merged::OverBudget => return OneMap::OverBudget,
            Merged::More if map.slot_bytes() > CACHED_MAP_BYTES => return OneMap::OutgrewCache,
            Merged::More => {}
        }
    }
}

/// Combines `records` by key (`create` a key's first value, `merge_value` the others into
/// it), a reduce partition (`place`, of `partitions`) at a time, within the running
/// task's budget (unbounded outside a task). The combiners come out grouped by reduce
/// partition, in partition order; a key comes out once unless the budget made the
/// combine hand on what it held part-way. `hints`, shared by the tasks of one combine,
/// size the parts and decide how many sub-parts a reduce partition is split into (at
/// least as many as `least_keys` keys a reduce partition need).
pub fn partitioned_combine<K, V, C, F, G>(
    records: impl Iterator<Item = (K, V)>,
    partitions: usize,
    place: KeyPartition<K>,
    hints: Arc<MapSideHints<K, C>>,
    least_keys: usize,
    create: F,
    merge_value: G,
) -> impl Iterator<Item = (K, C)>
where
    K: Key,
    V: serde::Serialize,
    C: serde::Serialize,
    F: Fn(V) -> C,
    G: Fn(C, V) -> C,
{
    let slot = std::mem::size_of::<(K, C)>() + 1;
    let fanout = fanout(hints.keys.expected().max(least_keys), slot);
    let parts = Parts::new(partitions.max(1) * fanout, hints.sizes.expected() / fanout);
    let mut map = CombineMap::new();
    PartitionedCombine {
        records: records.fuse(),
        place,
        create,
        merge_value,
        fanout,
        next: parts.parts.len(),
        parts,
        // An empty map's entries to start with.
        out: map.take(),
        map,
        part: None,
        done: false,
        sizes: Sizes {
            hints,
            keys: 0,
            combined: 0,
            partition_records: 0,
            partition_keys: 0,
        },
    }
}

/// [`partitioned_combine`]'s combine: reads records into parts (a part a reduce
/// partition's sub-part) until they run out or the budget is reached, then combines the
/// parts in order, handing on each part's map before the next; then reads again.
struct PartitionedCombine<R, K, V, C, F, G> {
    records: R,
    place: KeyPartition<K>,
    create: F,
    merge_value: G,
    /// Sub-parts a reduce partition is split into.
    fanout: usize,
    parts: Parts<K, V>,
    /// The next part to combine; `parts.parts.len()` while reading.
    next: usize,
    map: CombineMap<K, C>,
    /// Entries handed on.
    out: Entries<K, C>,
    /// The records of the part being combined, if one is.
    part: Option<PartRecords<K, V>>,
    /// The records have run out.
    done: bool,
    sizes: Sizes<K, C>,
}

/// A part's records, out of its chunks.
type PartRecords<K, V> = std::iter::Flatten<std::vec::IntoIter<Vec<(K, V)>>>;

/// What the parts combined so far held: the next part's map starts as large as its
/// records should need (instead of growing by rehashing into fresh memory), and each
/// reduce partition's records and keys inform the next tasks' `hints`.
struct Sizes<K, C> {
    hints: Arc<MapSideHints<K, C>>,
    /// Keys and records of the parts combined so far.
    keys: usize,
    combined: usize,
    /// Records and keys of the reduce partition being combined, over its sub-parts.
    partition_records: usize,
    partition_keys: usize,
}

impl<R, K, V, C, F, G> Iterator for PartitionedCombine<R, K, V, C, F, G>
where
    R: Iterator<Item = (K, V)>,
    K: Key,
    V: serde::Serialize,
    C: serde::Serialize,
    F: Fn(V) -> C,
    G: Fn(C, V) -> C,
{
    type Item = (K, C);

    fn next(&mut self) -> Option<(K, C)> {
        loop {
            if let Some(entry) = self.out.next() {
                return Some(entry);
            }
            if let Some(part) = &mut self.part {
                if let Some(entries) =
                    combine_part(&mut self.map, part, &self.create, &self.merge_value)
                {
                    // Over the budget: what the map holds goes on before the rest.
                    self.sizes.handed_on(entries.len());
                    self.out = entries;
                    continue;
                }
                self.part = None;
                let keys = self.map.acc.len();
                self.sizes
                    .part_combined(keys, self.next.is_multiple_of(self.fanout));
                self.out = self.map.take();
            } else if self.next < self.parts.parts.len() {
                let (len, records) = self.parts.take(self.next);
                if let Some(expected) = self.sizes.part_started(len) {
                    self.map.acc.reserve(expected);
                }
                self.part = Some(records.into_iter().flatten());
                self.next += 1;
            } else if self.done {
                return None;
            } else {
                self.read_parts();
            }
        }
    }
}

impl<R, K, V, C, F, G> PartitionedCombine<R, K, V, C, F, G>
where
    R: Iterator<Item = (K, V)>,
    K: Key,
    V: serde::Serialize,
{
    /// Reads records into their parts until they run out or the parts are full.
    fn read_parts(&mut self) {
        self.parts.restart();
        while !self.done {
            let Some((k, v)) = self.records.next() else {
                self.done = true;
                break;
            };
            let mut r = (self.place)(&k) * self.fanout;
            if self.fanout > 1 {
                r += sub_part(hash_key(&k), self.fanout);
            }
            if !self.parts.push(r, (k, v)) {
                break;
            }
        }
        self.next = 0;
    }
}

/// Merges `part` into `map` until it ends (`None`), or until the map is over the budget:
/// then the map's entries, taken out of it.
fn combine_part<K: Key, V, C: serde::Serialize>(
    map: &mut CombineMap<K, C>,
    part: &mut impl Iterator<Item = (K, V)>,
    create: &impl Fn(V) -> C,
    merge_value: &impl Fn(C, V) -> C,
) -> Option<Entries<K, C>> {
    loop {
        match map.merge_some(part, create, merge_value) {
            Merged::Ended => return None,
            Merged::More => {}
            Merged::OverBudget => return Some(map.take()),
        }
    }
}

impl<K: Key, C: serde::Serialize> Sizes<K, C> {
    /// A part of `len` records starts: the keys its map should make room for, by the
    /// keys per record of the parts before it.
    fn part_started(&mut self, len: usize) -> Option<usize> {
        self.partition_records += len;
        let expected = (len * self.keys).checked_div(self.combined);
        self.combined += len;
        expected
    }

    /// A map of `keys` keys went on before its part ended (over the budget).
    fn handed_on(&mut self, keys: usize) {
        self.partition_keys += keys;
    }

    /// A part was combined into `keys` keys; at the last sub-part of a reduce partition
    /// the partition's records and keys are noted in the hints.
    fn part_combined(&mut self, keys: usize, partition_ends: bool) {
        self.keys += keys;
        self.partition_keys += keys;
        if partition_ends {
            self.hints
                .sizes
                .note(std::mem::take(&mut self.partition_records));
            self.hints
                .keys
                .note(std::mem::take(&mut self.partition_keys));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryManager;
    use crate::plan::task::enter_task_memory;
    use crate::shuffle::partitioner::hash_partition;
    use rustc_hash::FxHashMap;
    use std::sync::Arc;

    type Sums = Vec<(u64, u64)>;

    /// Sums `n` records over `keys` keys into 7 partitions with a task budget of `budget`
    /// (none: unbounded): the combiners as they came out, and the sums by key.
    fn sums(budget: Option<u64>, n: u64, keys: u64) -> (Sums, Sums) {
        sums_with(budget, n, keys, &Arc::default())
    }

    /// `sums` with the hints of earlier tasks of the same combine.
    fn sums_with(
        budget: Option<u64>,
        n: u64,
        keys: u64,
        hints: &Arc<MapSideHints<u64, u64>>,
    ) -> (Sums, Sums) {
        let _task = budget.map(|b| enter_task_memory(MemoryManager::new(b)));
        let place: KeyPartition<u64> = Arc::new(|k: &u64| hash_partition(k, 7));
        let records = (0..n).map(|i| (i.wrapping_mul(0x9e37_79b9) % keys, i));
        let out: Vec<(u64, u64)> =
            partitioned_combine(records, 7, place, Arc::clone(hints), 0, |v| v, |c, v| c + v)
                .collect();
        // Unbounded, one wave: the next task's parts start as large as this task's largest.
        assert!(budget.is_some() || n == 0 || hints.sizes.expected() > n as usize / 7);
        let total = sum_by_key(out.iter().copied());
        (out, total)
    }

    fn reference(n: u64, keys: u64) -> Vec<(u64, u64)> {
        sum_by_key((0..n).map(|i| (i.wrapping_mul(0x9e37_79b9) % keys, i)))
    }

    /// The sums of `pairs` by key, in key order.
    fn sum_by_key(pairs: impl Iterator<Item = (u64, u64)>) -> Sums {
        let mut total: FxHashMap<u64, u64> = FxHashMap::default();
        for (k, c) in pairs {
            *total.entry(k).or_default() += c;
        }
        let mut total: Vec<_> = total.into_iter().collect();
        total.sort_unstable();
        total
    }

    #[test]
    fn each_key_comes_out_once_grouped_by_reduce_partition_in_order() {
        let (n, keys) = (300_000, 50_000);
        let (out, total) = sums(None, n, keys);
        assert_eq!(total, reference(n, keys));
        assert_eq!(out.len() as u64, keys, "a key came out more than once");
        let places: Vec<usize> = out.iter().map(|(k, _)| hash_partition(k, 7)).collect();
        assert!(places.is_sorted(), "combiners not grouped by partition");
        assert_eq!(places.last(), Some(&6));
    }

    #[test]
    fn fanout_keeps_a_sub_parts_map_in_the_cache() {
        assert_eq!(fanout(0, 17), 1);
        assert_eq!(fanout(10_000, 17), 1); // 190 KiB of slots
        assert_eq!(fanout(300_000, 17), 32); // 5.6 MiB: 22 sub-parts, rounded up
        assert_eq!(fanout(usize::MAX, 17), MAX_FANOUT);
    }

    #[test]
    fn a_large_reduce_partition_is_combined_a_cache_sized_sub_part_at_a_time() {
        // 2 M keys into 7 partitions: 285 k keys a reduce partition, 32 sub-parts.
        let (n, keys) = (2_500_000, 2_000_000);
        let hints = Arc::new(MapSideHints::default());
        // The first task learns the keys a partition holds; the next one splits by them.
        let (first, _) = sums_with(None, n, keys, &hints);
        let (out, total) = sums_with(None, n, keys, &hints);
        assert_eq!(total, reference(n, keys));
        assert_eq!(out.len() as u64, keys, "a key came out more than once");
        // Where each combiner goes: its reduce partition, then its sub-part of 32.
        let places = |out: &Sums| -> Vec<(usize, usize)> {
            out.iter()
                .map(|(k, _)| (hash_partition(k, 7), sub_part(hash_key(k), 32)))
                .collect()
        };
        assert!(
            places(&out).is_sorted(),
            "combiners not grouped by reduce partition, then sub-part"
        );
        // The first task had no hint: one map a reduce partition, not grouped by sub-part.
        assert!(!places(&first).is_sorted());
    }

    #[test]
    fn a_map_over_the_budget_within_a_part_is_handed_on_and_the_part_goes_on() {
        // Combiners far larger than the values (512 bytes against 8): a part whose
        // records the budget holds makes a map it does not, handed on part-way through.
        let (n, keys) = (200_000u64, 50_000u64);
        for budget in [1u64 << 20, 4 << 20] {
            let _task = enter_task_memory(MemoryManager::new(budget));
            let place: KeyPartition<u64> = Arc::new(|k: &u64| hash_partition(k, 7));
            let records = (0..n).map(|i| (i.wrapping_mul(0x9e37_79b9) % keys, i));
            let out: Vec<(u64, Vec<u64>)> = partitioned_combine(
                records,
                7,
                place,
                Arc::default(),
                0,
                |v| vec![v; 64],
                |mut c: Vec<u64>, v| {
                    c[0] += v;
                    c
                },
            )
            .collect();
            let total = sum_by_key(out.iter().map(|(k, c)| (*k, c[0])));
            assert_eq!(total, reference(n, keys), "budget {budget}");
            assert!(out.len() as u64 > keys, "budget {budget}: never handed on");
        }
    }

    #[test]
    fn over_the_budget_parts_are_handed_on_with_the_same_totals() {
        let (n, keys) = (600_000, 200_000);
        let (out, total) = sums(Some(2 << 20), n, keys);
        assert_eq!(total, reference(n, keys));
        assert!(
            out.len() as u64 > keys,
            "a 2 MiB budget never made the combine hand on"
        );
    }

    /// `map_side_combine` of `n` records over `keys` keys into 7 partitions: the
    /// combiners as they came out and the sums by key.
    fn map_side(
        budget: Option<u64>,
        n: u64,
        keys: u64,
        hints: &Arc<MapSideHints<u64, u64>>,
    ) -> (Sums, Sums) {
        let _task = budget.map(|b| enter_task_memory(MemoryManager::new(b)));
        let place: KeyPartition<u64> = Arc::new(|k: &u64| hash_partition(k, 7));
        let records = (0..n).map(move |i| (i.wrapping_mul(0x9e37_79b9) % keys, i));
        let out: Sums = map_side_combine(
            records.fuse(),
            7,
            place,
            Arc::clone(hints),
            |v| v,
            |c, v| c + v,
        )
        .collect();
        let total = sum_by_key(out.iter().copied());
        (out, total)
    }

    fn grouped_by_partition(out: &Sums) -> bool {
        out.iter().map(|(k, _)| hash_partition(k, 7)).is_sorted()
    }

    #[test]
    fn a_cache_sized_map_stays_one_map_and_is_handed_on_over_the_budget() {
        let (n, keys) = (600_000, 200_000); // 200 k slots of 16 bytes: 4 MiB, cache-sized
        let hints = combining(); // its first records hold distinct keys: a probe would skip
        let (out, total) = map_side(None, n, keys, &hints);
        assert_eq!(total, reference(n, keys));
        assert_eq!(out.len() as u64, keys, "unbounded: one combiner per key");
        assert!(!hints.splits(), "a cache-sized map was split");
        assert!(
            !grouped_by_partition(&out),
            "one map's keys came out grouped"
        );
        let (bounded, total) = map_side(Some(2 << 20), n, keys, &hints);
        assert_eq!(total, reference(n, keys));
        assert!(
            bounded.len() as u64 > keys,
            "a 2 MiB budget never emptied the map"
        );
    }

    #[test]
    fn a_finished_task_leaves_its_emptied_map_to_the_next_and_fresh_maps_start_large() {
        let (n, keys) = (60_000, 20_000);
        let hints = Arc::new(MapSideHints::default());
        for task in 0..2 {
            let (out, total) = map_side(None, n, keys, &hints);
            assert_eq!(total, reference(n, keys), "task {task}");
            assert_eq!(out.len() as u64, keys, "task {task}: one combiner per key");
            let tables = hints.tables.lock().unwrap();
            assert_eq!(
                tables.len(),
                1,
                "task {task} left no table (or an extra one)"
            );
            assert!(
                tables[0].is_empty(),
                "a table left to the next task holds entries"
            );
            assert!(tables[0].capacity() >= keys as usize);
        }
        // With no table left over, a task's map starts as large as the earlier ones grew.
        hints.tables.lock().unwrap().clear();
        assert!(hints.map().acc.capacity() >= keys as usize);
    }

    #[test]
    fn a_map_that_outgrows_the_cache_splits_the_rest_and_later_tasks_split_from_the_start() {
        // 2 M distinct keys of 16-byte slots: the one map passes 8 MiB part-way.
        let (n, keys) = (3_000_000, 2_000_000);
        let hints = combining(); // its first records hold distinct keys: a probe would skip
        let (out, total) = map_side(None, n, keys, &hints);
        assert_eq!(total, reference(n, keys));
        assert!(hints.splits(), "a map past the cache never split");
        // What the one map held came out first (ungrouped), then the split parts.
        assert!(!grouped_by_partition(&out));
        let (out, total) = map_side(None, 100_000, 50_000, &hints);
        assert_eq!(total, reference(100_000, 50_000));
        assert!(
            grouped_by_partition(&out),
            "a later task of the combine did not split"
        );
    }

    /// Hints of a combine already decided to combine on the map side.
    fn combining() -> Arc<MapSideHints<u64, u64>> {
        let hints = Arc::new(MapSideHints::default());
        hints.decision.store(COMBINE, Ordering::Relaxed);
        hints
    }

    #[test]
    fn a_probe_of_distinct_keys_passes_the_rest_on_uncombined_in_later_tasks_too() {
        // 400 k records over 40 M keys: nearly every record its own key.
        let (n, keys) = (400_000, 40_000_000);
        let hints = Arc::new(MapSideHints::default());
        let (out, total) = map_side(None, n, keys, &hints);
        assert_eq!(total, reference(n, keys));
        assert!(hints.skips(), "a probe of distinct keys decided to combine");
        assert_eq!(out.len() as u64, n, "a record was combined or lost");
        // A later task of the combine passes its records on, repeated keys or not (50 k
        // keys, each repeated only far apart: a map would hold 50 k combiners).
        let (out, total) = map_side(None, 200_000, 50_000, &hints);
        assert_eq!(total, reference(200_000, 50_000));
        assert!(out.len() > 150_000, "a later task combined: {}", out.len());
        assert_eq!(
            hints.tables.lock().unwrap().len(),
            1,
            "the probe's table was not left to the next task"
        );
    }

    #[test]
    fn passing_records_of_an_expansion_come_out_in_batches_each_value_once() {
        // A combine decided to pass (by an earlier task) reads a flat_map's records as
        // they are made, through the table of recent keys, into batches; the records up to
        // an upstream error, then the table's entries, all come out.
        use crate::plan::batch::{Fan, PartitionIter, take_error};
        for (n, fail_at) in [(0, None), (7, None), (30_000, None), (30_000, Some(20_001))] {
            let hints = Arc::new(MapSideHints::default());
            hints.decision.store(SKIP, Ordering::Relaxed);
            let fan = Fan {
                next: 0,
                n,
                fail_at,
            };
            let (records, error) = PartitionIter::expanding(Box::new(fan));
            let place: KeyPartition<u64> = Arc::new(|k: &u64| hash_partition(k, 7));
            let batches: Vec<Sums> =
                MapSideCombine::new(records, 7, place, hints, |v| v, |c, v| c + v).collect();
            let case = format!("{n} records, failing at {fail_at:?}");
            assert!(
                batches
                    .iter()
                    .all(|b| !b.is_empty() && b.len() <= BATCH_SIZE),
                "{case}"
            );
            let want = Fan::expected(n, fail_at);
            let out: Sums = batches.concat();
            assert!(
                out.len() < want.len() || want.is_empty(),
                "nothing folded: {case}"
            );
            assert_eq!(
                sum_by_key(out.into_iter()),
                sum_by_key(want.into_iter()),
                "{case}"
            );
            assert_eq!(take_error(&error).is_some(), fail_at.is_some(), "{case}");
        }
    }

    #[test]
    fn a_hot_key_among_distinct_ones_still_crosses_folded() {
        // Key 7 in every sixth record, the others distinct: the probe holds 0.83 distinct
        // keys a record and stops combining, but key 7 is folded where it recurs.
        let n = 600_000u64;
        let records = (0..n).map(|i| (if i % 6 == 0 { 7 } else { i + 100 }, 1u64));
        let hints = Arc::new(MapSideHints::default());
        let place: KeyPartition<u64> = Arc::new(|k: &u64| hash_partition(k, 7));
        let out: Sums = map_side_combine(
            records.fuse(),
            7,
            place,
            Arc::clone(&hints),
            |v| v,
            |c, v| c + v,
        )
        .collect();
        assert!(hints.skips());
        let total = sum_by_key(out.iter().copied());
        assert_eq!(total.len() as u64, n - n / 6 + 1);
        assert_eq!(total.iter().find(|(k, _)| *k == 7), Some(&(7, n / 6)));
        let hot = out.iter().filter(|(k, _)| *k == 7).count();
        assert!(
            hot < 1000,
            "key 7 crossed {hot} times for {} records",
            n / 6
        );
    }

    #[test]
    fn a_probe_of_repeated_keys_keeps_combining() {
        let (n, keys) = (400_000, 20_000);
        let hints = Arc::new(MapSideHints::default());
        let (out, total) = map_side(None, n, keys, &hints);
        assert_eq!(total, reference(n, keys));
        assert!(!hints.skips(), "a probe of repeated keys decided to skip");
        assert_eq!(hints.decision.load(Ordering::Relaxed), COMBINE);
        assert_eq!(out.len() as u64, keys, "one combiner per key");
        // Fewer records than a probe: the task combines them all and decides nothing.
        let hints = Arc::new(MapSideHints::default());
        let (out, _) = map_side(None, 50_000, 40_000_000, &hints);
        assert_eq!(out.len(), 50_000);
        assert_eq!(hints.decision.load(Ordering::Relaxed), UNDECIDED);
    }

    #[test]
    fn no_records_no_combiners() {
        let (out, _) = sums(None, 0, 10);
        assert!(out.is_empty());
    }
}
