//! Shared variables: broadcast values read by tasks on every executor.

use std::ops::Deref;
use std::sync::Arc;

use crate::context::{Context, Mode};
use crate::error::{Error, Result};
use crate::rdd::Data;
use crate::shuffle::codec;

/// A read-only value the driver sends to every rank once; tasks capture the (cheap to
/// clone) handle and read it with `*b` or `b.value()`.
#[derive(Debug)]
pub struct Broadcast<T> {
    value: Arc<T>,
}

impl<T> Clone for Broadcast<T> {
    fn clone(&self) -> Self {
        Broadcast {
            value: Arc::clone(&self.value),
        }
    }
}

impl<T> Broadcast<T> {
    pub fn value(&self) -> &T {
        &self.value
    }
}

impl<T> Deref for Broadcast<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl Context {
    /// Shares the driver's `value` with every rank: executors get the driver's value, not
    /// the one their own program computed. Every rank must call it at the same point.
    pub fn broadcast<T: Data>(&self, value: T) -> Result<Broadcast<T>> {
        if self.mode() == Mode::Local {
            return Ok(Broadcast {
                value: Arc::new(value),
            });
        }
        let bytes = if self.is_driver() {
            codec::encode(&value)
        } else {
            Vec::new()
        };
        let shared = self.world().broadcast(0, &bytes)?;
        let value =
            codec::decode(&shared).map_err(|e| Error::Other(format!("broadcast value: {e}")))?;
        Ok(Broadcast {
            value: Arc::new(value),
        })
    }
}

/// What an accumulator can sum: data with a zero (`Default`) and `+=`.
pub trait AccumulatorValue: Data + Default + std::ops::AddAssign {}
impl<T: Data + Default + std::ops::AddAssign> AccumulatorValue for T {}

/// A value that tasks add to and the driver reads, like Spark's accumulators.
///
/// Inside a task, `add` goes into the task's own partial sum; the driver merges the
/// partial sums of successful tasks when they report (once per task of a job; a stage
/// recomputed by a later job counts again, as in Spark). After each action every rank
/// holds the driver's value. Call `add` from the task's own thread.
pub struct Accumulator<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Clone for Accumulator<T> {
    fn clone(&self) -> Self {
        Accumulator {
            slot: Arc::clone(&self.slot),
        }
    }
}

struct Slot<T> {
    id: u32,
    name: String,
    value: std::sync::Mutex<T>,
}

impl<T: AccumulatorValue> Accumulator<T> {
    /// Adds `v`: to the running task's partial sum inside a task, else to the value.
    pub fn add(&self, v: T) {
        let mut pending = Some(v);
        TASK_UPDATES.with(|u| {
            if let Some(updates) = u.borrow_mut().as_mut() {
                let v = pending.take().expect("added once");
                match updates.iter_mut().find(|(id, _, _)| *id == self.slot.id) {
                    Some((_, partial, _)) => match partial.downcast_mut::<T>() {
                        Some(p) => *p += v,
                        None => unreachable!("accumulator ids are unique per type"),
                    },
                    None => updates.push((self.slot.id, Box::new(v), encode_partial::<T>)),
                }
            }
        });
        if let Some(v) = pending {
            *self.slot.lock() += v;
        }
    }

    /// The current value (on every rank after an action).
    pub fn value(&self) -> T {
        self.slot.lock().clone()
    }

    pub fn name(&self) -> &str {
        &self.slot.name
    }
}

impl<T> Slot<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        crate::sync::lock(&self.value)
    }
}

/// The type-erased side of an accumulator the runtime keeps.
pub(crate) trait AccumulatorSlot: Send + Sync {
    fn id(&self) -> u32;
    /// Adds an encoded partial sum from a task.
    fn merge(&self, bytes: &[u8]) -> Result<()>;
    fn encode(&self) -> Vec<u8>;
    /// Replaces the value with the driver's.
    fn set(&self, bytes: &[u8]) -> Result<()>;
}

impl<T: AccumulatorValue> AccumulatorSlot for Slot<T> {
    fn id(&self) -> u32 {
        self.id
    }
    fn merge(&self, bytes: &[u8]) -> Result<()> {
        let v: T = codec::decode(bytes)
            .map_err(|e| Error::Other(format!("accumulator {}: {e}", self.name)))?;
        *self.lock() += v;
        Ok(())
    }
    fn encode(&self) -> Vec<u8> {
        codec::encode(&*self.lock())
    }
    fn set(&self, bytes: &[u8]) -> Result<()> {
        *self.lock() = codec::decode(bytes)
            .map_err(|e| Error::Other(format!("accumulator {}: {e}", self.name)))?;
        Ok(())
    }
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
        Some(v) => codec::encode(v),
        None => unreachable!("encoder registered with its type"),
    }
}

/// Starts collecting accumulator updates for a task on this thread.
pub(crate) fn begin_task_updates() {
    TASK_UPDATES.with(|u| *u.borrow_mut() = Some(Vec::new()));
}

/// Ends the task's collection and returns its encoded partial sums.
pub(crate) fn end_task_updates() -> Vec<(u32, Vec<u8>)> {
    TASK_UPDATES
        .with(|u| u.borrow_mut().take())
        .unwrap_or_default()
        .into_iter()
        .map(|(id, partial, encode)| (id, encode(partial.as_ref())))
        .collect()
}

impl Context {
    /// A new accumulator starting at zero. Every rank must create it at the same point.
    pub fn accumulator<T: AccumulatorValue>(&self, name: &str) -> Accumulator<T> {
        let slot = Arc::new(Slot {
            id: self.rt.new_accumulator_id(),
            name: name.to_string(),
            value: std::sync::Mutex::new(T::default()),
        });
        self.rt
            .register_accumulator(Arc::clone(&slot) as Arc<dyn AccumulatorSlot>);
        Accumulator { slot }
    }
}
