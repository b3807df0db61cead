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
