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
/// chunk's memory is given back as soon as it has been combined.
pub struct Chunks<T> {
    full: Vec<Vec<T>>,
    current: Vec<T>,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks {
            full: Vec::new(),
            current: Vec::new(),
        }
    }
}

impl<T> Chunks<T> {
    /// Adds `record`, starting a chunk of at least `first` records when the current one
    /// is full; the capacity this added to the part.
    #[inline]
    pub(crate) fn push(&mut self, record: T, first: usize) -> usize {
        let mut grown = 0;
        if self.current.len() == self.current.capacity() {
            // Chunks double from the first up to CHUNK records.
            let capacity = (self.current.capacity() * 2).clamp(first, CHUNK);
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(capacity));
            if !full.is_empty() {
                self.full.push(full);
            }
            grown = capacity;
        }
        self.current.push(record);
        grown
    }

    /// How many records the part holds.
    pub(crate) fn len(&self) -> usize {
        self.full.iter().map(Vec::len).sum::<usize>() + self.current.len()
    }

    /// How many records the part holds, and them, leaving it empty.
    pub(crate) fn take(&mut self) -> (usize, Vec<Vec<T>>) {
        let mut chunks = std::mem::take(&mut self.full);
        chunks.push(std::mem::take(&mut self.current));
        (chunks.iter().map(Vec::len).sum(), chunks)
    }
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
        self.parts[r].take()
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
        let mut grown = part.push(0u64, FIRST_CHUNK);
        let first: *const u64 = &part.current[0];
        for i in 1..10_000 {
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
}
