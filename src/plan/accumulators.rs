//! The task side of accumulators: a task's partial sums, and the slot the runtime merges them into.
//!
//! The user's `Accumulator<T>` lives in `rdd::shared`; this is what the executor (collecting a
//! task's updates) and the context (merging them on the driver) need of it.

use crate::error::Result;
use crate::plan::Data;

/// What an accumulator can sum: data with a zero (`Default`) and `+=`.
pub trait AccumulatorValue: Data + Default + std::ops::AddAssign {}
impl<T: Data + Default + std::ops::AddAssign> AccumulatorValue for T {}

/// The type-erased side of an accumulator the runtime keeps.
pub trait AccumulatorSlot: Send + Sync {
    fn id(&self) -> u32;
    /// Adds an encoded partial sum from a task.
    fn merge(&self, bytes: &[u8]) -> Result<()>;
    fn encode(&self) -> Vec<u8>;
    /// Replaces the value with the driver's.
    fn set(&self, bytes: &[u8]) -> Result<()>;
}

type TaskUpdate = (
    u32,
    Box<dyn std::any::Any>,
    fn(&dyn std::any::Any) -> Vec<u8>,
);

thread_local! {
    /// The running task's accumulator partial sums; `None` outside tasks.
    static TASK_UPDATES: std::cell::RefCell<Option<Vec<TaskUpdate>>> = const { std::cell::RefCell::new(None) };
}

fn encode_partial<T: AccumulatorValue>(partial: &dyn std::any::Any) -> Vec<u8> {
    match partial.downcast_ref::<T>() {
        Some(v) => crate::codec::encode(v),
        None => unreachable!("encoder registered with its type"),
    }
}

/// Starts collecting accumulator updates for a task on this thread.
pub fn begin_task_updates() {
    TASK_UPDATES.with(|u| *u.borrow_mut() = Some(Vec::new()));
}

/// Ends the task's collection and returns its encoded partial sums.
pub fn end_task_updates() -> Vec<(u32, Vec<u8>)> {
    TASK_UPDATES
        .with(|u| u.borrow_mut().take())
        .unwrap_or_default()
        .into_iter()
        .map(|(id, partial, encode)| (id, encode(partial.as_ref())))
        .collect()
}

/// Adds `v` to the running task's partial sum of accumulator `id`; gives `v` back when
/// this thread runs no task (the caller adds it to the value itself).
pub fn add_to_task<T: AccumulatorValue>(id: u32, v: T) -> Option<T> {
    TASK_UPDATES.with(|u| {
        let mut u = u.borrow_mut();
        let Some(updates) = u.as_mut() else {
            return Some(v);
        };
        match updates.iter_mut().find(|(i, _, _)| *i == id) {
            Some((_, partial, _)) => match partial.downcast_mut::<T>() {
                Some(p) => *p += v,
                None => unreachable!("accumulator ids are unique per type"),
            },
            None => updates.push((id, Box::new(v), encode_partial::<T>)),
        }
        None
    })
}
