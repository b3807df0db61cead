//! The scheduler lives on the driver: it knows the executors, splits jobs into stages and
//! assigns their tasks (protocol in `README.md` beside this file).

pub mod driver;
pub mod executor_table;
pub mod job;
pub mod messages;

pub use executor_table::ExecutorTable;
