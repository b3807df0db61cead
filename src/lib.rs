//! ember: a Spark-style batch data engine for supercomputers, on MPI.
//!
//! Rank 0 is the driver, every other rank an executor (`DESIGN.md` of the project). The
//! modules are layered; each imports only modules below it (`src/README.md` draws them):
//!
//! - [`datagen`], [`submit`]: generated data sets, launching jobs (use the user API)
//! - [`rdd`]: the user API (`Rdd`, pair operations, actions) and every lineage node
//! - [`context`]: roles, start-up, running an action
//! - [`scheduler`] (the driver's side) and [`executor`] (serve loop, tasks)
//! - [`plan`]: node traits, stages, fingerprint, `explain`, the task context
//! - [`cache`], [`shuffle`], [`io`]: block store; shuffle store, exchange; files
//! - [`protocol`]: control messages, executor table, task metrics
//! - [`transport`]: the `Group` trait, MPI and in-process backends
//! - leaves: [`ids`], [`codec`], [`failure`], [`faults`], [`config`], [`log`], [`topology`],
//!   [`error`]

pub mod cache;
pub mod codec;
pub mod config;
pub mod context;
pub mod datagen;
pub mod error;
pub mod executor;
pub mod failure;
pub mod faults;
pub mod ids;
pub mod io;
pub mod log;
pub mod plan;
pub mod protocol;
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
pub use ids::{RddId, ShuffleId, StageId};
pub use rdd::actions::{SaveOptions, TextRecord};
pub use rdd::{Accumulator, Broadcast, Data, Key, Rdd, TextOptions};
