//! Backoff is how a waiting rank polls without burning a core: spin briefly, then sleep longer and longer.

use std::time::Duration;

/// Polling schedule for a rank that waits for messages.
///
/// A blocked OpenMPI receive busy-polls a whole core, which a waiting driver must not do
/// while executors compute. `Backoff` turns a poll loop into: a few immediate retries
/// (cheap when a reply is due at once), then sleeps doubling from `MIN_SLEEP` up to
/// `MAX_SLEEP`. Call [`Backoff::reset`] after progress so the next wait starts fast.
#[derive(Debug, Clone)]
pub struct Backoff {
    polls: u32,
    sleep: Duration,
}

impl Backoff {
    /// Immediate retries before the first sleep.
    pub const SPINS: u32 = 16;
    /// First sleep after the spins.
    pub const MIN_SLEEP: Duration = Duration::from_micros(20);
    /// Longest sleep: bounds the latency a message can wait unnoticed (~1-3% of a core).
    pub const MAX_SLEEP: Duration = Duration::from_millis(2);

    pub fn new() -> Self {
        Backoff {
            polls: 0,
            sleep: Self::MIN_SLEEP,
        }
    }

    /// Waits before the next poll: yields during the first polls, then sleeps.
    pub fn snooze(&mut self) {
        if self.polls < Self::SPINS {
            self.polls += 1;
            std::thread::yield_now();
        } else {
            std::thread::sleep(self.sleep);
            self.sleep = (self.sleep * 2).min(Self::MAX_SLEEP);
        }
    }

    /// Progress was made: the next wait starts with immediate retries again.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The sleep the next [`snooze`](Self::snooze) would take, once spinning is over.
    pub fn current_sleep(&self) -> Option<Duration> {
        (self.polls >= Self::SPINS).then_some(self.sleep)
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
    fn sleeps_grow_to_the_cap_and_reset() {
        let mut b = Backoff::new();
        for _ in 0..Backoff::SPINS {
            assert_eq!(b.current_sleep(), None);
            b.snooze();
        }
        assert_eq!(b.current_sleep(), Some(Backoff::MIN_SLEEP));
        for _ in 0..20 {
            b.snooze();
        }
        assert_eq!(b.current_sleep(), Some(Backoff::MAX_SLEEP));
        b.reset();
        assert_eq!(b.current_sleep(), None);
    }
}
