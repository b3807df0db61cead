//! ember: a Spark-style batch data engine for supercomputers, on MPI.
//!
//! A job is one program that every rank runs: [`Context::init`] starts it (rank 0 the
//! driver, the others executors, or local mode in a single process), sources such as
//! [`Context::text_file`] make an [`Rdd`], transformations ([`Rdd::map`],
//! [`Rdd::reduce_by_key`], [`Rdd::join`], ...) record lineage, and actions
//! ([`Rdd::collect`], [`Rdd::count`], [`Rdd::save_as_text_file`], ...) run it on the
//! executors. [`Rdd::persist`] keeps a result for later actions, [`Context::broadcast`] and
//! [`Context::accumulator`] share values with tasks, and [`config::EngineArgs`] are the
//! options every job takes. The examples run in one process, as tests do:
//!
//! ```
//! use ember::config::EngineArgs;
//! use ember::{Context, Rdd, Result, Str, words};
//!
//! /// Words and how often they occur ([`words`] yields a line's words as [`Str`]s, which
//! /// hold a short word without allocating).
//! fn word_counts(lines: &Rdd<String>) -> Rdd<(Str, u64)> {
//!     lines
//!         .flat_map(|line| words(line).map(|w| (w, 1)))
//!         .reduce_by_key(|a, b| a + b)
//! }
//!
//! fn run(ctx: &Context) -> Result<Vec<(Str, u64)>> {
//!     let lines = ctx.parallelize(vec!["b a b".to_string(), "c b".to_string()], Some(2));
//!     let mut counts = word_counts(&lines).collect()?;
//!     counts.sort();
//!     Ok(counts)
//! }
//!
//! // A job's main() calls Context::init(); here, two in-process executors.
//! let ctx = Context::local_with_executors(&EngineArgs::default(), 2);
//! let counts = run(&ctx)?;
//! assert_eq!(counts, [("a".into(), 1), ("b".into(), 3), ("c".into(), 1)]);
//! ctx.stop();
//! # Ok::<(), ember::Error>(())
//! ```
//!
//! `examples/template/` of the project is a job in a crate of its own, to copy.
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
//! - [`events`]: the driver's event log and progress display ([`history`] draws a log)
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
pub mod events;
pub mod executor;
pub mod failure;
pub mod faults;
pub mod history;
pub mod ids;
pub mod io;
pub mod launcher;
pub mod log;
pub mod memory;
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
pub use rdd::{Accumulator, Broadcast, Data, Group, Key, Rdd, SortKey, TextOptions};
pub use shuffle::partitioner::Partitioner;

/// A string for records: up to 24 bytes inline (no heap allocation), longer on the heap.
/// It hashes, compares, orders and serializes as a `String` does (the same shuffle bytes),
/// so words and short keys cost no allocation per record — the README's WordCount keys
/// its words with it (`Str::from(word)`). `compact_str`'s `CompactString`.
pub use compact_str::CompactString as Str;
pub use rdd::words::{Words, words};

/// The allocator of every program that links ember (the default feature `mimalloc`). A job
/// written the way Spark's are allocates per record (a `String` per line and per word, a
/// `Vec` per `flat_map` call) across the task threads of a rayon pool; glibc's malloc spent
/// about 40% of such a WordCount's map stage in `_int_malloc`, `malloc_consolidate` and
/// `free`, mimalloc's thread-local free lists a fraction of it. A job that sets its own
/// `#[global_allocator]` builds ember with `default-features = false`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
