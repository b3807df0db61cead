//! The driver's messages to and from executors: encoded sends, receives that drop the
//! reports of earlier jobs.

use crate::error::{Error, Result};
use crate::ids::ExecutorId;
use crate::protocol::messages::{self, TO_DRIVER, TO_EXECUTOR, ToDriver, ToExecutor};
use crate::transport::Group;

/// Reports about an earlier job (possible after a failed job) are dropped.
pub(super) fn is_stale(msg: &ToDriver, current: u64) -> bool {
    let job = match msg {
        ToDriver::Ready { job, .. }
        | ToDriver::TaskDone { job, .. }
        | ToDriver::TaskFailed { job, .. }
        | ToDriver::ExchangeDone { job, .. }
        | ToDriver::ExchangeFailed { job, .. } => *job,
    };
    job < current
}

/// Sends `msg` to executor `to`.
pub(super) fn send(world: &dyn Group, to: ExecutorId, msg: &ToExecutor) -> Result<()> {
    send_all(world, &[to], msg)
}

/// Sends `msg` to each of `executors`, in turn (encoded once).
pub(super) fn send_all(
    world: &dyn Group,
    executors: &[ExecutorId],
    msg: &ToExecutor,
) -> Result<()> {
    let bytes = messages::encode(msg);
    for e in executors {
        world.send(e.rank(), TO_EXECUTOR, &bytes)?;
    }
    Ok(())
}

/// Next report from any executor about job `current` or later; stale ones are dropped.
pub(super) fn recv(world: &dyn Group, current: u64) -> Result<(ExecutorId, ToDriver)> {
    loop {
        let envelope = world.recv(None, TO_DRIVER)?;
        let msg = messages::decode(&envelope.data, "executor report").map_err(Error::Other)?;
        if !is_stale(&msg, current) {
            return Ok((ExecutorId(envelope.source), msg));
        }
    }
}

/// The error of a report the driver did not expect where it came.
pub(super) fn protocol(from: ExecutorId, msg: &ToDriver) -> Error {
    Error::Other(format!("unexpected report from executor {from}: {msg:?}"))
}
