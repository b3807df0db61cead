//! ember: a Spark-style batch data engine for supercomputers, on MPI.
//!
//! Rank 0 is the driver, every other rank an executor (`DESIGN.md` of the project).
//! The modules mirror the design's parts: [`context`] (start, roles, failure),
//! [`rdd`] (the user API), [`scheduler`], [`executor`], [`shuffle`], [`io`], [`topology`],
//! [`transport`].

pub mod cache;
pub mod config;
pub mod context;
pub mod error;
pub mod executor;
pub mod io;
pub mod log;
pub mod rdd;
pub mod scheduler;
pub mod shuffle;
pub mod submit;
mod sync;
pub mod topology;
pub mod transport;

pub use cache::StorageLevel;
pub use context::{Context, Mode, Role};
pub use error::{Error, Result};
pub use rdd::actions::{SaveOptions, TextRecord};
pub use rdd::{Accumulator, Broadcast, Data, Key, Rdd, TextOptions};
