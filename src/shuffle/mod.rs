//! The shuffle: map tasks bucket records by reduce partition, executors exchange the buckets
//! with `MPI_Alltoallv`, reduce tasks read the partitions they own.
//!
//! Protocol (driver's view): run every map task of the stage (outputs stay on the
//! executor that made them) → choose an owner executor for every reduce partition → tell
//! all executors to exchange (one collective over the executor group) → reduce tasks run
//! on the owners. See `README.md` beside this file.

pub mod exchange;
pub mod files;
pub mod partitioner;
pub mod range;
pub mod store;

pub use crate::ids::ShuffleId;

/// What a map task leaves on its executor: encoded records per reduce partition.
#[derive(Debug, Default)]
pub struct MapOutput {
    pub buckets: Vec<Vec<u8>>,
    pub records: u64,
    /// Earlier buckets of the same task, spilled to disk when they did not fit the memory
    /// budget; the map file holds each bucket's spilled pieces, then `buckets`.
    pub spills: Vec<files::MapFile>,
    /// The memory the buckets hold, reserved until they are written.
    pub reservation: Option<crate::memory::Reservation>,
}
