//! What driver and executors say to each other: control messages, the executor table, task metrics.
//!
//! The protocol is drawn in `README.md` beside this file.

pub mod executor_table;
pub mod messages;
pub mod metrics;
pub mod registration;

pub use executor_table::ExecutorTable;
pub use metrics::{TaskMetrics, TaskTiming};
pub use registration::ExecutorInfo;
