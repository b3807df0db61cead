//! ember: a Spark-style batch data engine for supercomputers, on MPI.
//!
//! Rank 0 is the driver, every other rank an executor (`DESIGN.md` of the project).
//! The modules mirror the design's parts: [`context`] (start, roles, failure),
//! [`executor`], [`scheduler`], [`topology`], [`transport`].

pub mod config;
pub mod context;
pub mod executor;
pub mod log;
pub mod scheduler;
pub mod topology;
pub mod transport;

pub use context::{Context, Mode, Role};
