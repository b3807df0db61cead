//! Locking that survives a panic elsewhere: the engine's shared state stays usable.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data even if a thread panicked while holding it: a panicking
/// task is reported and retried, and the structures guarded here stay consistent between
/// operations.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
