//! The shuffle: map tasks bucket records by reduce partition, executors exchange the buckets
//! with `MPI_Alltoallv`, reduce tasks read the partitions they own.
//!
//! Protocol (driver's view): run every map task of the stage (outputs stay on the
//! executor that made them) → choose an owner executor for every reduce partition → tell
//! all executors to exchange (one collective over the executor group) → reduce tasks run
//! on the owners. See `README.md` beside this file.

pub mod append;
pub mod block;
pub mod exchange;
pub mod files;
pub mod partitioner;
pub mod range;
pub mod store;

use std::ops::Range;

pub use crate::ids::ShuffleId;

/// The order to write one bucket's records in: the byte range of each record in the
/// bucket, in the order the file gets them, packed by [`packed_range`] (the sort's
/// entries, rewritten in place: the order needs no memory of its own, which would be
/// fresh pages, faulted in, for every map task).
pub type BucketOrder = Vec<u128>;

/// `range` as one integer: its start in the high 64 bits, its end in the low 64.
pub fn packed_range(range: Range<usize>) -> u128 {
    ((range.start as u128) << 64) | range.end as u128
}

/// The range [`packed_range`] packed.
pub fn unpacked_range(packed: u128) -> Range<usize> {
    (packed >> 64) as usize..packed as u64 as usize
}

/// What a map task leaves on its executor: encoded records per reduce partition.
#[derive(Debug, Default)]
pub struct MapOutput {
    pub buckets: Vec<Vec<u8>>,
    /// Per bucket, the order a sort put its records in (none: as they stand, also for
    /// buckets past the end). The records are reordered only as the file is written, so a
    /// sorted bucket is never copied in memory.
    pub orders: Vec<Option<BucketOrder>>,
    pub records: u64,
    /// Earlier buckets of the same task, spilled to disk when they did not fit the memory
    /// budget; the map file holds each bucket's spilled pieces, then `buckets`.
    pub spills: Vec<files::MapFile>,
    /// The memory the buckets hold, reserved until they are written.
    pub reservation: Option<crate::memory::Reservation>,
}

/// What a map file gets of each of `buckets`: its records in the order `orders` gives it,
/// if a sort gave one (none: as they stand, also for buckets past the end of `orders`).
pub(crate) fn bucket_pieces<'a>(
    buckets: &'a [Vec<u8>],
    orders: &'a [Option<BucketOrder>],
) -> impl Iterator<Item = files::Piece<'a>> {
    buckets
        .iter()
        .enumerate()
        .map(|(r, bucket)| bucket_piece(bucket, orders.get(r).and_then(Option::as_ref)))
}

/// What a map file gets of one bucket: its records in `order` if a sort gave one, else
/// as they stand.
pub(crate) fn bucket_piece<'a>(
    bucket: &'a [u8],
    order: Option<&'a BucketOrder>,
) -> files::Piece<'a> {
    match order {
        Some(order) => files::Piece::Ordered(bucket, order),
        None => files::Piece::Bytes(bucket),
    }
}
