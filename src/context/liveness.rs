//! Liveness: driver and executors exchange heartbeats, and a rank that goes silent ends the job.
//!
//! A launcher ends the job when a rank exits (mpirun; srun with `--kill-on-bad-exit`), but
//! not when a rank hangs without exiting (stopped, stuck in the kernel on a dead file
//! system, a node that stopped answering) nor, outside those launchers, when the driver
//! is gone. So every rank of a cluster job runs one thread that sends a small message to
//! its counterparts every `timeout / 8` (executors to the driver, the driver to every
//! executor) and checks what it received: a counterpart silent for longer than `timeout`
//! ends the job on every rank with a message naming it (Spark's executor heartbeats and
//! `spark.network.timeout`, both ways). The thread is independent of tasks, exchanges and
//! the user's own code, so a long task or a long sequential step is never taken for a
//! hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::failure::fatal;
use crate::protocol::messages::HEARTBEAT;
use crate::transport::{Group, Rank};

/// Shortest and longest time between two heartbeats.
const MIN_INTERVAL: Duration = Duration::from_millis(50);
const MAX_INTERVAL: Duration = Duration::from_secs(5);

/// A rank this one watches, and how to name it in the error.
#[derive(Debug, Clone)]
pub struct Counterpart {
    pub rank: Rank,
    pub name: String,
}

/// The running heartbeat thread; [`Liveness::stop`] ends it.
pub struct Liveness {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    world: Arc<dyn Group>,
}

/// Time between heartbeats for a `timeout`: eight chances to be heard before it expires.
pub fn interval(timeout: Duration) -> Duration {
    (timeout / 8).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

impl Liveness {
    /// Starts heartbeats with `counterparts` over `world`; `None` when `timeout` is zero
    /// (liveness checks off) or there is no one to watch.
    pub fn start(
        world: Arc<dyn Group>,
        counterparts: Vec<Counterpart>,
        timeout: Duration,
    ) -> Option<Liveness> {
        if timeout.is_zero() || counterparts.is_empty() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("ember-heartbeat".into())
            .spawn({
                let (world, stop) = (Arc::clone(&world), Arc::clone(&stop));
                move || watch(world.as_ref(), &counterparts, timeout, &stop)
            })
            .unwrap_or_else(|e| fatal(&format!("cannot start the heartbeat thread: {e}")));
        Some(Liveness {
            stop,
            thread: Some(thread),
            world,
        })
    }

    /// Ends the heartbeats and takes the ones still queued for this rank, so none is left
    /// unreceived when MPI finalizes.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            if thread.join().is_err() {
                fatal("the heartbeat thread panicked");
            }
        }
        while let Ok(Some(_)) = self.world.try_recv(None, HEARTBEAT) {}
    }
}

/// The heartbeat loop: send, take what arrived, check, sleep until the next beat.
fn watch(world: &dyn Group, counterparts: &[Counterpart], timeout: Duration, stop: &AtomicBool) {
    let interval = interval(timeout);
    let mut last_heard = vec![Instant::now(); counterparts.len()];
    while !stop.load(Ordering::SeqCst) {
        for c in counterparts {
            if let Err(e) = world.send(c.rank, HEARTBEAT, &[]) {
                fatal(&format!("cannot send a heartbeat to {}: {e}", c.name));
            }
        }
        loop {
            match world.try_recv(None, HEARTBEAT) {
                Ok(Some(envelope)) => {
                    if let Some(i) = counterparts.iter().position(|c| c.rank == envelope.source) {
                        last_heard[i] = Instant::now();
                    }
                }
                Ok(None) => break,
                Err(e) => fatal(&format!("cannot receive heartbeats: {e}")),
            }
        }
        if let Some(message) = silent(counterparts, &last_heard, Instant::now(), timeout) {
            fatal(&message);
        }
        std::thread::park_timeout(interval);
    }
}

/// The error for the first counterpart not heard from for longer than `timeout` at `now`.
fn silent(
    counterparts: &[Counterpart],
    last_heard: &[Instant],
    now: Instant,
    timeout: Duration,
) -> Option<String> {
    counterparts
        .iter()
        .zip(last_heard)
        .find(|(_, heard)| now.duration_since(**heard) > timeout)
        .map(|(c, heard)| {
            format!(
                "{} sent no heartbeat for {:.1} s (--heartbeat-timeout {}): it is hung, stopped or gone; ending the job",
                c.name,
                now.duration_since(*heard).as_secs_f64(),
                humantime::format_duration(timeout)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::local::LocalGroup;

    fn named(rank: Rank) -> Counterpart {
        Counterpart {
            rank,
            name: format!("executor {rank}"),
        }
    }

    #[test]
    fn interval_is_an_eighth_within_bounds() {
        assert_eq!(interval(Duration::from_secs(8)), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_millis(80)), MIN_INTERVAL);
        assert_eq!(interval(Duration::from_secs(120)), MAX_INTERVAL);
    }

    #[test]
    fn the_first_silent_counterpart_is_named() {
        let now = Instant::now();
        let timeout = Duration::from_secs(10);
        let c = [named(1), named(2), named(3)];
        let heard = [
            now,
            now - Duration::from_secs(11),
            now - Duration::from_secs(30),
        ];
        let message = silent(&c, &heard, now, timeout).unwrap();
        assert!(
            message.starts_with("executor 2 sent no heartbeat for 11.0 s"),
            "{message}"
        );
        assert!(message.contains("--heartbeat-timeout 10s"), "{message}");
        assert_eq!(silent(&c[..1], &heard[..1], now, timeout), None);
    }

    #[test]
    fn heartbeats_flow_both_ways_and_stop_drains_them() {
        let timeout = Duration::from_millis(400);
        let mut group = LocalGroup::create(3).into_iter().map(Arc::new);
        let driver: Arc<dyn Group> = group.next().unwrap();
        let executors: Vec<Arc<dyn Group>> = group.map(|g| g as Arc<dyn Group>).collect();
        let watch_driver = vec![Counterpart {
            rank: 0,
            name: "the driver".into(),
        }];
        let on_driver = Liveness::start(Arc::clone(&driver), vec![named(1), named(2)], timeout);
        let on_executors: Vec<_> = executors
            .iter()
            .map(|e| Liveness::start(Arc::clone(e), watch_driver.clone(), timeout))
            .collect();
        // Three timeouts: a missing heartbeat would have ended this test process.
        std::thread::sleep(timeout * 3);
        on_driver.unwrap().stop();
        for l in on_executors.into_iter().flatten() {
            l.stop();
        }
        // The driver sends no more: what it sent was taken by the executors' stop.
        for g in &executors {
            assert_eq!(g.try_recv(None, HEARTBEAT).unwrap(), None);
        }
        assert!(Liveness::start(driver, vec![named(1)], Duration::ZERO).is_none());
    }
}
