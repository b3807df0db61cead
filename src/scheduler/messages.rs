//! The control messages between driver and executors, and the tags they travel under.

use serde::{Deserialize, Serialize};

use crate::transport::Tag;

/// Driver to executor control messages.
pub const TO_EXECUTOR: Tag = Tag(10);
/// Executor to driver reports.
pub const TO_DRIVER: Tag = Tag(11);

/// What the driver tells an executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToExecutor {
    /// End the serve loop of an in-process executor: the job is over.
    Shutdown,
}

/// Encodes a control message (postcard: compact, schema in the Rust types).
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    postcard::to_stdvec(message).expect("control messages always serialize")
}

/// Decodes a control message, naming what was expected when the bytes do not fit.
pub fn decode<T: for<'a> Deserialize<'a>>(bytes: &[u8], what: &str) -> Result<T, String> {
    postcard::from_bytes(bytes)
        .map_err(|e| format!("malformed {what} ({} bytes): {e}", bytes.len()))
}
