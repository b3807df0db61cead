//! Backoff is how a waiting rank polls without burning a core: spin briefly, then sleep longer and longer.

use std::time::{Duration, Instant};

/// Polling schedule for a rank that waits for messages.
///
/// A blocked OpenMPI receive busy-polls a whole core, which a waiting driver must not do
/// while executors compute. `Backoff` turns a poll loop into: a few immediate retries
/// (cheap when a reply is due at once), then sleeps of an eighth of the time waited so
/// far, from `MIN_SLEEP` up to `MAX_SLEEP`. Call [`Backoff::reset`] after progress so the
/// next wait starts fast.
///
/// A message is so noticed within about an eighth of the time its waiter had waited. Sleeps
/// that doubled each poll noticed it only within as long again as the wait: a driver and
/// an executor trading short tasks (KMeans' 36 reduce tasks of a few keys) each slept into
/// the other's reply, a few milliseconds a round trip: 25-60 ms for a stage whose tasks
/// ran 1 ms in all. A long wait still polls at `MAX_SLEEP`, after a few dozen shorter
/// sleeps.
#[derive(Debug, Clone)]
pub struct Backoff {
    polls: u32,
    since: Instant,
}

impl Backoff {
    /// Immediate retries before the first sleep.
    pub const SPINS: u32 = 16;
    /// Shortest sleep after the spins.
    pub const MIN_SLEEP: Duration = Duration::from_micros(20);
    /// Longest sleep: bounds the latency a message can wait unnoticed (~1-3% of a core).
    pub const MAX_SLEEP: Duration = Duration::from_millis(2);
    /// A sleep is this fraction of the time waited so far.
    const SHARE: u32 = 8;

    pub fn new() -> Self {
        Backoff {
            polls: 0,
            since: Instant::now(),
        }
    }

    /// Waits before the next poll: yields during the first polls, then sleeps.
    pub fn snooze(&mut self) {
        match self.current_sleep() {
            None => {
                self.polls += 1;
                std::thread::yield_now();
            }
            Some(sleep) => std::thread::sleep(sleep),
        }
    }

    /// Progress was made: the next wait starts with immediate retries again.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The sleep the next [`snooze`](Self::snooze) would take, once spinning is over.
    pub fn current_sleep(&self) -> Option<Duration> {
        (self.polls >= Self::SPINS).then(|| Self::sleep_after(self.since.elapsed()))
    }

    /// The sleep of a poll after waiting `waited`.
    fn sleep_after(waited: Duration) -> Duration {
        (waited / Self::SHARE).clamp(Self::MIN_SLEEP, Self::MAX_SLEEP)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_follow_the_time_waited_within_their_bounds_and_reset() {
        let mut b = Backoff::new();
        for _ in 0..Backoff::SPINS {
            assert_eq!(b.current_sleep(), None);
            b.snooze();
        }
        assert!(b.current_sleep().is_some_and(|s| s >= Backoff::MIN_SLEEP));
        let ms = Duration::from_millis;
        assert_eq!(Backoff::sleep_after(Duration::ZERO), Backoff::MIN_SLEEP);
        assert_eq!(Backoff::sleep_after(ms(2)), Duration::from_micros(250));
        assert_eq!(Backoff::sleep_after(ms(8)), ms(1));
        assert_eq!(Backoff::sleep_after(ms(16)), Backoff::MAX_SLEEP);
        assert_eq!(
            Backoff::sleep_after(Duration::from_secs(60)),
            Backoff::MAX_SLEEP
        );
        b.reset();
        assert_eq!(b.current_sleep(), None);
    }
}
