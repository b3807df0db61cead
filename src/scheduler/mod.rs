//! The scheduler lives on the driver: it knows the executors and (later) assigns their tasks.

pub mod executor_table;
pub mod messages;

pub use executor_table::ExecutorTable;
