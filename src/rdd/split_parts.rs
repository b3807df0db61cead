//! The records of a map task split by reduce partition, before each part is combined
//! (`partitioned_combine`): parts held in chunks, and what they hold of the task's budget.

use crate::memory::Reservation;
use crate::rdd::Key;
use crate::rdd::combine::HeldRecords;

/// Records a chunk of a part holds at most: 32 KiB of PageRank's 16-byte records.
pub(crate) const CHUNK: usize = 2048;
/// Records a part's first chunk holds at least.
pub(crate) const FIRST_CHUNK: usize = 64;

/// The records of one part, in chunks: a part that grows is never copied into a larger
/// vector (profiled: the doublings of hundreds of growing sub-parts, each a fresh
/// allocation whose pages the kernel zeroes, were 14% of PageRank's iterations), and a
/// chunk's memory is given back as soon as it has been combined. Records of 8, 16 or 32
/// bytes are staged four cache lines at a time ([`Stage`]).
pub struct Chunks<T> {
    full: Vec<Vec<T>>,
    current: Vec<T>,
    stage: Stage<T>,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks {
            full: Vec::new(),
            current: Vec::new(),
            stage: Stage::default(),
        }
    }
}

impl<T> Chunks<T> {
    /// Adds `record`, starting a chunk of at least `first` records when the current one
    /// is full; the capacity this added to the part.
    #[inline]
    pub(crate) fn push(&mut self, record: T, first: usize) -> usize {
        if !Stage::<T>::STAGED {
            let grown = self.room(first);
            self.current.push(record);
            return grown;
        }
        if !self.stage.put(record) {
            return 0;
        }
        self.move_stage(first)
    }

    /// Moves the full stage into the current chunk (out of line: the staging above is
    /// what every record runs, inlined into the loop that scatters them); the capacity
    /// this added.
    #[inline(never)]
    fn move_stage(&mut self, first: usize) -> usize {
        let grown = self.room(first);
        self.stage.move_into(&mut self.current);
        grown
    }

    /// Makes room for a stage's records ([`Stage::HOLDS`], one where records are not
    /// staged) in the current chunk, starting one of at
    /// least `first` records (a whole number of stages) when it is full; the capacity this
    /// added.
    fn room(&mut self, first: usize) -> usize {
        if self.current.capacity() - self.current.len() >= Stage::<T>::HOLDS {
            return 0;
        }
        // Chunks double from the first up to CHUNK records.
        let capacity = (self.current.capacity() * 2)
            .clamp(first, CHUNK)
            .next_multiple_of(Stage::<T>::HOLDS);
        let full = std::mem::replace(&mut self.current, Vec::with_capacity(capacity));
        if !full.is_empty() {
            self.full.push(full);
        }
        capacity
    }

    /// How many records the part holds.
    pub(crate) fn len(&self) -> usize {
        self.full.iter().map(Vec::len).sum::<usize>() + self.current.len() + self.stage.len
    }

    /// How many records the part holds, and them, leaving it empty.
    pub(crate) fn take(&mut self) -> (usize, Vec<Vec<T>>) {
        let (len, chunks, _) = self.take_counted();
        (len, chunks)
    }

    /// [`Chunks::take`], and the capacity it added: a chunk for the staged records where
    /// the current one has no room for them.
    fn take_counted(&mut self) -> (usize, Vec<Vec<T>>, usize) {
        let mut chunks = std::mem::take(&mut self.full);
        let mut current = std::mem::take(&mut self.current);
        let mut grown = 0;
        if self.stage.len > current.capacity() - current.len() {
            chunks.push(current);
            current = Vec::with_capacity(self.stage.len);
            grown = current.capacity();
        }
        self.stage.move_into(&mut current);
        chunks.push(current);
        fence_streamed();
        (chunks.iter().map(Vec::len).sum(), chunks, grown)
    }
}

/// Bytes of records a part stages before they go into its chunk: four cache lines. One
/// line moved a stage every four of PageRank's 16-byte records, an out-of-line call each
/// time; with four, the reduce side's split of 4 M records into 128 sub-parts (micro
/// bench) took 25-26 ms against 34 ms (two lines 28 ms, eight 27 ms: 128 stages of eight
/// lines no longer stay in the first-level cache). PageRank 1 GB, 3 alternated pairs:
/// iterations 8.2-8.5 s against 8.9-9.1 s; group-by 1 GB, user CPU 3.6-3.9 s against
/// 4.0-4.2 s.
const STAGE_BYTES: usize = 256;

/// Cache lines of records waiting to be moved into their part's chunk. Scattered over
/// many parts, each record stored straight into its chunk made the core read the chunk's
/// line in before writing it (profiled: two thirds of PageRank's reduce-side scatter
/// stalled on those stores); a full stage is moved with streaming stores, which write the
/// whole lines without reading them. Records of 8, 16 or 32 bytes are staged (a whole
/// number of them fill the stage); the others go straight to their chunk.
#[repr(C, align(64))]
struct Stage<T> {
    slots: [std::mem::MaybeUninit<u8>; STAGE_BYTES],
    /// Records staged: slots `0..len` hold initialized records of `T`.
    len: usize,
    _records: std::marker::PhantomData<T>,
}

impl<T> Default for Stage<T> {
    fn default() -> Self {
        Stage {
            slots: [std::mem::MaybeUninit::uninit(); STAGE_BYTES],
            len: 0,
            _records: std::marker::PhantomData,
        }
    }
}

impl<T> Stage<T> {
    /// Whether records of `T` are staged.
    const STAGED: bool =
        matches!(std::mem::size_of::<T>(), 8 | 16 | 32) && std::mem::align_of::<T>() <= 16;
    /// Records a full stage holds (1 where records are not staged: what goes into a
    /// chunk at once).
    const HOLDS: usize = if Self::STAGED {
        STAGE_BYTES / std::mem::size_of::<T>()
    } else {
        1
    };

    /// Stages `record`; true when the stage is full.
    #[inline]
    fn put(&mut self, record: T) -> bool {
        assert!(Self::STAGED && self.len < Self::HOLDS);
        // SAFETY: slot `len` lies within the stage (len < HOLDS) and is aligned for `T`
        // (the stage is 64-byte aligned, and `T`'s size, a multiple of its alignment,
        // divides 64).
        unsafe {
            self.slots
                .as_mut_ptr()
                .cast::<T>()
                .add(self.len)
                .write(record)
        };
        self.len += 1;
        self.len == Self::HOLDS
    }

    /// Moves the staged records to the end of `into`, which must have room for them.
    #[inline]
    fn move_into(&mut self, into: &mut Vec<T>) {
        let n = self.len;
        assert!(into.capacity() - into.len() >= n);
        let bytes = n * std::mem::size_of::<T>();
        // SAFETY: `into` has room for `n` more records (checked); slots `0..n` hold
        // initialized records, whose ownership moves to `into` (the stage forgets them
        // before `set_len` makes them `into`'s).
        unsafe {
            let dst = into.as_mut_ptr().add(into.len()).cast::<u8>();
            copy_streaming(self.slots.as_ptr().cast::<u8>(), dst, bytes);
            self.len = 0;
            into.set_len(into.len() + n);
        }
    }
}

impl<T> Drop for Stage<T> {
    fn drop(&mut self) {
        let records = self.slots.as_mut_ptr().cast::<T>();
        // SAFETY: slots `0..len` hold initialized records the stage owns.
        unsafe { std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(records, self.len)) };
    }
}

/// Copies `bytes` from the 64-byte aligned `src` to `dst`: with streaming stores where
/// `dst` is 16-byte aligned and a whole stage is copied, else plainly.
///
/// # Safety
/// `src` and `dst` are valid for `bytes` bytes and do not overlap; `bytes <= STAGE_BYTES`.
#[inline]
unsafe fn copy_streaming(src: *const u8, dst: *mut u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    if bytes == STAGE_BYTES && dst.align_offset(16) == 0 {
        use std::arch::x86_64::{__m128i, _mm_load_si128, _mm_stream_si128};
        // SAFETY: both are valid for a stage's bytes (the caller's contract); `src` is 64-byte
        // and `dst` 16-byte aligned (checked); SSE2 is part of x86_64.
        unsafe {
            for at in (0..STAGE_BYTES).step_by(16) {
                let v = _mm_load_si128(src.add(at).cast::<__m128i>());
                _mm_stream_si128(dst.add(at).cast::<__m128i>(), v);
            }
        }
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, bytes) };
}

/// Orders the streaming stores before the records are read (by another thread too).
fn fence_streamed() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86_64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

/// The records of a task split by reduce partition, and what they hold of the budget.
pub struct Parts<K, V> {
    pub parts: Vec<Chunks<(K, V)>>,
    /// The capacity a part's first chunk starts with.
    first: usize,
    /// Room for records.
    capacity: usize,
    held: HeldRecords,
}

impl<K: Key, V: serde::Serialize> Parts<K, V> {
    /// Empty parts, which expect `expected` records each.
    pub fn new(partitions: usize, expected: usize) -> Self {
        Parts {
            parts: (0..partitions).map(|_| Chunks::default()).collect(),
            first: expected.clamp(FIRST_CHUNK, CHUNK),
            capacity: 0,
            held: HeldRecords::new(),
        }
    }

    /// Adds a record to part `r`; false when the parts have outgrown what the budget lets
    /// them hold (looked at every few thousand records).
    #[inline]
    pub fn push(&mut self, r: usize, record: (K, V)) -> bool {
        let check = self.held.count(&record);
        self.capacity += self.parts[r].push(record, self.first);
        !check
            || self
                .held
                .fits(self.capacity * std::mem::size_of::<(K, V)>())
    }

    /// How many records part `r` holds, and them, leaving it empty (their memory given
    /// back with them).
    pub fn take(&mut self, r: usize) -> (usize, Vec<Vec<(K, V)>>) {
        let (len, chunks, grown) = self.parts[r].take_counted();
        self.capacity += grown;
        (len, chunks)
    }

    /// Forgets the records taken out: the parts start again empty.
    pub fn restart(&mut self) {
        self.capacity = 0;
        self.held.clear();
    }

    /// The reservation of what the parts held, for as long as the records taken out
    /// outlive them.
    pub fn take_reservation(&mut self) -> Option<Reservation> {
        self.held.take_reservation()
    }

    /// Room for records in the parts' chunks.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_grows_by_chunks_never_moving_its_records() {
        let mut part = Chunks::default();
        let mut grown = 0;
        for i in 0..FIRST_CHUNK as u64 {
            grown += part.push(i, FIRST_CHUNK);
        }
        let first: *const u64 = &part.current[0];
        for i in FIRST_CHUNK as u64..10_000 {
            grown += part.push(i, FIRST_CHUNK);
        }
        // Chunks of 64, 128, ... 2048, then 2048 each.
        assert!(part.full.iter().all(|c| c.capacity() <= CHUNK));
        assert_eq!(
            grown,
            part.full
                .iter()
                .chain([&part.current])
                .map(Vec::capacity)
                .sum::<usize>()
        );
        assert!(std::ptr::eq(first, &part.full[0][0]), "a record moved");
        let (len, chunks) = part.take();
        assert_eq!(len, 10_000);
        assert!(chunks.into_iter().flatten().eq(0..10_000));
        assert_eq!(part.take().0, 0);
    }

    /// `n` records pushed into a part (chunks of at least `first`), taken out whole.
    fn pushed_and_taken<T: Clone + PartialEq + std::fmt::Debug>(
        records: &[T],
        first: usize,
    ) -> Vec<T> {
        let mut part = Chunks::default();
        let mut grown = 0;
        for r in records {
            grown += part.push(r.clone(), first);
        }
        assert_eq!(part.len(), records.len());
        let capacity: usize = part
            .full
            .iter()
            .chain([&part.current])
            .map(Vec::capacity)
            .sum();
        assert_eq!(grown, capacity, "the capacity added is the chunks'");
        let (len, chunks) = part.take();
        assert_eq!(len, records.len());
        chunks.into_iter().flatten().collect()
    }

    #[test]
    fn staged_records_of_every_width_arrive_in_order_at_any_count() {
        const { assert!(Stage::<u64>::STAGED && Stage::<(u64, f64)>::STAGED) };
        const { assert!(Stage::<(String, u64)>::STAGED && !Stage::<(u64, u8, u64)>::STAGED) };
        for n in [0, 1, 3, 4, 5, 63, 64, 65, 1000, 5003] {
            for first in [1, FIRST_CHUNK, 100, CHUNK] {
                let a: Vec<u64> = (0..n).collect();
                assert_eq!(pushed_and_taken(&a, first), a, "{n} u64 from {first}");
                let b: Vec<(u64, f64)> = (0..n).map(|i| (i, i as f64 / 3.0)).collect();
                assert_eq!(pushed_and_taken(&b, first), b, "{n} pairs from {first}");
                let c: Vec<(String, u64)> = (0..n).map(|i| (format!("w{i}"), i)).collect();
                assert_eq!(pushed_and_taken(&c, first), c, "{n} strings from {first}");
                let d: Vec<(u64, u8, u64)> = (0..n).map(|i| (i, i as u8, !i)).collect();
                assert_eq!(pushed_and_taken(&d, first), d, "{n} unstaged from {first}");
            }
        }
    }

    #[test]
    fn records_left_in_a_stage_are_dropped_once_with_their_part() {
        let counted = std::rc::Rc::new(());
        let mut part = Chunks::default();
        for _ in 0..(Stage::<std::rc::Rc<()>>::HOLDS + 3) {
            part.push(std::rc::Rc::clone(&counted), FIRST_CHUNK);
        }
        assert_eq!(part.stage.len, 3);
        assert_eq!(
            std::rc::Rc::strong_count(&counted),
            Stage::<std::rc::Rc<()>>::HOLDS + 4
        );
        drop(part);
        assert_eq!(std::rc::Rc::strong_count(&counted), 1);
    }
}
