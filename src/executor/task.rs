//! TaskContext: what a running task knows about itself and its executor.

use std::sync::Arc;

use crate::executor::Executor;

/// Handed to every partition computation.
#[derive(Clone)]
pub struct TaskContext {
    pub executor: Arc<Executor>,
    pub job: u64,
    pub stage: u32,
    pub partition: usize,
    pub attempt: u32,
}
