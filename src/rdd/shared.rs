//! Shared variables: broadcast values read by tasks on every executor, and accumulators.

use std::ops::Deref;
use std::sync::Arc;

use crate::codec;
use crate::context::{Context, Mode};
use crate::error::{Error, Result};
use crate::plan::Data;
pub use crate::plan::accumulators::AccumulatorValue;
use crate::plan::accumulators::{self, AccumulatorSlot};

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
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// use std::collections::HashMap;
    /// let names = HashMap::from([(1, "one".to_string()), (2, "two".to_string())]);
    /// let names = ctx.broadcast(names)?;
    /// let lookup = names.clone(); // a cheap handle, moved into the closure
    /// let words = ctx.range(1, 3, None).map(move |x| lookup[&x].clone());
    /// assert_eq!(words.collect()?, ["one", "two"]);
    /// assert_eq!(names.len(), 2); // `Deref` to the value
    /// # Ok::<(), ember::Error>(())
    /// ```
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
        if let Some(v) = accumulators::add_to_task(self.slot.id, v) {
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

impl Context {
    /// A new accumulator starting at zero. Every rank must create it at the same point.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// let blank = ctx.accumulator::<u64>("blank lines");
    /// let counter = blank.clone();
    /// let lines = ctx.parallelize(vec!["a".to_string(), String::new(), "b".to_string()], None);
    /// let words = lines.filter(move |l| {
    ///     if l.is_empty() {
    ///         counter.add(1);
    ///     }
    ///     !l.is_empty()
    /// });
    /// assert_eq!(words.count()?, 2);
    /// assert_eq!(blank.value(), 1); // updated by the action
    /// # Ok::<(), ember::Error>(())
    /// ```
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
