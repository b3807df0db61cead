//! The scheduler lives on the driver: it runs a job's stages in order, places and retries
//! their tasks, and starts the exchanges (the protocol is in `protocol/README.md`).

pub mod driver;
mod exchange;
mod needed;
pub mod observe;
pub mod state;
mod task_set;
mod tasks;
mod wire;
