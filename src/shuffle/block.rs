//! A block: the encoded records of one reduce partition from one executor, as a reduce
//! task reads them, and the bytes they are read from.

use std::ops::Range;
use std::sync::Arc;

use crate::memory::Reservation;

/// The bytes blocks are read from: a mapped file (the reduce file remote data was
/// received into, or a map file of an executor on the same node), or the buckets this
/// executor's own map task kept in memory for the partitions it owns.
pub enum BlockBytes {
    Mapped(memmap2::Mmap),
    /// A bucket never written to a file: no executor but its writer reads it, so copying
    /// it into the page cache and mapping it back bought nothing (profiled: the kernel's
    /// copy into tmpfs pages a tenth of PageRank's iterations, half of it for the
    /// writer's own partitions with two executors). Its memory stays reserved until the
    /// last block of it goes.
    Memory(Vec<u8>, Reservation),
}

impl std::ops::Deref for BlockBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            BlockBytes::Mapped(map) => map,
            BlockBytes::Memory(bytes, _) => bytes,
        }
    }
}

impl std::fmt::Debug for BlockBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            BlockBytes::Mapped(_) => "mapped",
            BlockBytes::Memory(..) => "in memory",
        };
        write!(f, "{} bytes {kind}", self.len())
    }
}

/// Encoded records of one reduce partition from one executor: a range of [`BlockBytes`].
#[derive(Debug, Clone)]
pub struct Block {
    /// Executor id of the sender.
    pub source: usize,
    pub data: Arc<BlockBytes>,
    pub range: Range<usize>,
}

impl Block {
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.range.clone()]
    }

    /// Drops this process's pages of a mapped block once it has been read: the data stays
    /// in its file (reserved by the executor that wrote it), and a later read (a retried
    /// task) faults it in again. Without this, every block a reduce task read stays in
    /// the reader's RSS until the whole shuffle is removed, which for a shuffle kept as
    /// the lineage of a cached RDD (PageRank's links) is the whole job. A block in memory
    /// stays: it is the only copy.
    pub fn release_pages(&self) {
        let BlockBytes::Mapped(map) = &*self.data else {
            return;
        };
        if self.range.is_empty() {
            return;
        }
        // SAFETY: the mapping is a shared mapping of a file that is not truncated while
        // mapped: `MADV_DONTNEED` only unmaps its pages here, the file keeps their
        // contents and a later access reads them again. Records decoded from the block
        // own their data, so nothing borrows these pages.
        let _ = unsafe {
            map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                self.range.start,
                self.range.len(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_whose_pages_were_released_reads_the_same_again() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = shm.path().join("map.data");
        let bytes: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let map = crate::io::input::map_file(&path).unwrap().unwrap();
        let data = Arc::new(BlockBytes::Mapped(map));
        // Two blocks sharing a page, as runs of one map file do.
        let first = Block {
            source: 1,
            data: Arc::clone(&data),
            range: 10..5000,
        };
        let second = Block {
            source: 1,
            data,
            range: 5000..bytes.len(),
        };
        assert_eq!(first.bytes(), &bytes[10..5000]);
        first.release_pages();
        assert_eq!(second.bytes(), &bytes[5000..]);
        assert_eq!(
            first.bytes(),
            &bytes[10..5000],
            "read again after the release"
        );
        second.release_pages();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the file keeps its data"
        );
    }
}
