//! The driver's side of an exchange: start it on every executor, gather their reports,
//! and name the executor whose failure ended it.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::ids::{ExecutorId, ShuffleId};
use crate::plan::job::Job;
use crate::protocol::messages::{ToDriver, ToExecutor};
use crate::scheduler::state::ExchangeStats;
use crate::scheduler::wire::{protocol, recv, send_all};
use crate::transport::Group;

/// Runs the exchange of `shuffle` on `executors` and sums what they report; an error
/// naming the executor that failed first (not one that stopped because it did).
pub(super) fn exchange(
    world: &dyn Group,
    executors: &[ExecutorId],
    job: &Job,
    shuffle: ShuffleId,
) -> Result<ExchangeStats> {
    let started = Instant::now();
    let start = ToExecutor::Exchange {
        job: job.id,
        shuffle,
    };
    send_all(world, executors, &start)?;
    let (mut bytes, mut cross_node, mut rounds, mut one_sided) = (0, 0, 0, true);
    let mut failure = None;
    let mut failure_is_cause = false;
    for _ in executors {
        let (from, msg) = recv(world, job.id)?;
        match msg {
            ToDriver::ExchangeDone {
                job: j,
                shuffle: s,
                bytes: b,
                cross_node: c,
                rounds: r,
                one_sided: o,
            } if j == job.id && s == shuffle => {
                bytes += b;
                cross_node += c;
                rounds = rounds.max(r);
                one_sided &= o;
            }
            ToDriver::ExchangeFailed {
                job: j,
                shuffle: s,
                message,
            } if j == job.id && s == shuffle => {
                // The executor that failed, not one that stopped because it did.
                let cause = !message.contains(crate::shuffle::exchange::ABANDONED);
                if failure.is_none() || (cause && !failure_is_cause) {
                    failure = Some(format!("executor {from}: {message}"));
                    failure_is_cause = cause;
                }
            }
            other => return Err(protocol(from, &other)),
        }
    }
    if let Some(message) = failure {
        return Err(Error::Other(format!(
            "exchange of shuffle {shuffle} failed on {message}"
        )));
    }
    let stats = ExchangeStats {
        job: job.id,
        shuffle,
        bytes,
        cross_node,
        rounds,
        one_sided,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        "job {}: shuffle {shuffle} exchanged {bytes} bytes in {rounds} round(s) by {} ({cross_node} bytes across nodes), {:.3} s",
        job.id,
        match stats.mode() {
            "in place" => "reading in place",
            mode => mode,
        },
        stats.seconds
    );
    Ok(stats)
}
