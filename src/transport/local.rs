//! LocalGroup is an in-process Group: ranks are threads of one process joined by mailboxes.
//!
//! It backs local mode (the driver and its in-process executor) and lets scheduler and
//! shuffle protocols be unit-tested in one process. Sends never block (mailboxes are
//! unbounded); receives sleep on a condition variable instead of polling.

use std::collections::VecDeque;
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::Duration;

use super::{Envelope, Group, Rank, Result, Tag};
use crate::sync::lock;

struct Mailbox {
    queue: Mutex<VecDeque<Envelope>>,
    arrived: Condvar,
}

struct Shared {
    mailboxes: Vec<Mailbox>,
    barrier: Barrier,
}

/// One rank's end of an in-process group. Create all ends at once with [`LocalGroup::create`]
/// and hand one to each thread.
pub struct LocalGroup {
    rank: Rank,
    shared: Arc<Shared>,
}

impl LocalGroup {
    /// The `size` ends of a new group, in rank order.
    ///
    /// ```
    /// use ember::transport::{local::LocalGroup, Group, Tag};
    /// let ends = LocalGroup::create(2);
    /// ends[0].send(1, Tag(7), b"hi").unwrap();
    /// assert_eq!(ends[1].recv(Some(0), Tag(7)).unwrap().data, b"hi");
    /// ```
    pub fn create(size: usize) -> Vec<LocalGroup> {
        let shared = Arc::new(Shared {
            mailboxes: (0..size)
                .map(|_| Mailbox {
                    queue: Mutex::new(VecDeque::new()),
                    arrived: Condvar::new(),
                })
                .collect(),
            barrier: Barrier::new(size),
        });
        (0..size)
            .map(|rank| LocalGroup {
                rank,
                shared: Arc::clone(&shared),
            })
            .collect()
    }

    fn mailbox(&self) -> &Mailbox {
        &self.shared.mailboxes[self.rank]
    }

    /// Removes the first queued message matching `from` and `tag`.
    fn take(queue: &mut VecDeque<Envelope>, from: Option<Rank>, tag: Tag) -> Option<Envelope> {
        let at = queue
            .iter()
            .position(|e| e.tag == tag && from.is_none_or(|f| f == e.source))?;
        queue.remove(at)
    }
}

impl Group for LocalGroup {
    fn rank(&self) -> Rank {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.mailboxes.len()
    }

    fn send(&self, to: Rank, tag: Tag, data: &[u8]) -> Result<()> {
        self.check_rank(to)?;
        let mailbox = &self.shared.mailboxes[to];
        lock(&mailbox.queue).push_back(Envelope {
            source: self.rank,
            tag,
            data: data.to_vec(),
        });
        mailbox.arrived.notify_all();
        Ok(())
    }

    fn try_recv(&self, from: Option<Rank>, tag: Tag) -> Result<Option<Envelope>> {
        if let Some(f) = from {
            self.check_rank(f)?;
        }
        Ok(Self::take(&mut lock(&self.mailbox().queue), from, tag))
    }

    fn recv(&self, from: Option<Rank>, tag: Tag) -> Result<Envelope> {
        if let Some(f) = from {
            self.check_rank(f)?;
        }
        let mailbox = self.mailbox();
        let mut queue = lock(&mailbox.queue);
        loop {
            if let Some(envelope) = Self::take(&mut queue, from, tag) {
                return Ok(envelope);
            }
            // The timeout only guards against a missed wake-up; notify_all normally wakes us.
            queue = mailbox
                .arrived
                .wait_timeout(queue, Duration::from_millis(100))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    /// Runs `f` on every rank of a fresh group of `size`, one thread each.
    fn on_ranks<T: Send + 'static>(
        size: usize,
        f: impl Fn(LocalGroup) -> T + Send + Sync + Clone + 'static,
    ) -> Vec<T> {
        let handles: Vec<_> = LocalGroup::create(size)
            .into_iter()
            .map(|g| {
                let f = f.clone();
                thread::spawn(move || f(g))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn messages_keep_order_per_source_and_tag() {
        let ends = LocalGroup::create(3);
        ends[1].send(0, Tag(1), b"a").unwrap();
        ends[2].send(0, Tag(1), b"x").unwrap();
        ends[1].send(0, Tag(2), b"other tag").unwrap();
        ends[1].send(0, Tag(1), b"b").unwrap();
        let g = &ends[0];
        assert_eq!(g.try_recv(Some(1), Tag(1)).unwrap().unwrap().data, b"a");
        assert_eq!(g.try_recv(Some(1), Tag(1)).unwrap().unwrap().data, b"b");
        assert!(g.try_recv(Some(1), Tag(1)).unwrap().is_none());
        let any = g.try_recv(None, Tag(1)).unwrap().unwrap();
        assert_eq!((any.source, any.data.as_slice()), (2, &b"x"[..]));
        assert_eq!(g.recv(None, Tag(2)).unwrap().data, b"other tag");
    }

    #[test]
    fn unknown_ranks_are_errors() {
        let ends = LocalGroup::create(2);
        assert!(ends[0].send(2, Tag(0), b"").is_err());
        assert!(ends[0].try_recv(Some(5), Tag(0)).is_err());
    }

    #[test]
    fn broadcast_and_gather_reach_every_rank() {
        let out = on_ranks(4, |g| {
            let mine = format!("rank{}", g.rank());
            let b = g.broadcast(2, mine.as_bytes()).unwrap();
            let gathered = g.gather(0, mine.as_bytes()).unwrap();
            g.barrier().unwrap();
            (b, gathered)
        });
        for (rank, (b, gathered)) in out.into_iter().enumerate() {
            assert_eq!(b, b"rank2");
            if rank == 0 {
                let expect: Vec<Vec<u8>> = (0..4).map(|r| format!("rank{r}").into()).collect();
                assert_eq!(gathered.unwrap(), expect);
            } else {
                assert!(gathered.is_none());
            }
        }
    }

    #[test]
    fn all_to_all_v_delivers_each_slice_to_its_rank() {
        let size = 3;
        let out = on_ranks(size, move |g| {
            // Rank r sends (r*10 + d) repeated d+1 times to rank d.
            let mut send = Vec::new();
            let mut counts = Vec::new();
            for d in 0..size {
                send.extend(std::iter::repeat_n((g.rank() * 10 + d) as u8, d + 1));
                counts.push(d + 1);
            }
            g.all_to_all_v(&send, &counts).unwrap()
        });
        for (rank, received) in out.into_iter().enumerate() {
            assert_eq!(received.counts, vec![rank + 1; size]);
            for source in 0..size {
                let expect = vec![(source * 10 + rank) as u8; rank + 1];
                assert_eq!(received.from_rank(source), expect.as_slice());
            }
        }
    }

    #[test]
    fn all_to_all_v_rejects_bad_counts() {
        let ends = LocalGroup::create(2);
        assert!(ends[0].all_to_all_v(b"abc", &[1]).is_err());
        assert!(ends[0].all_to_all_v(b"abc", &[1, 1]).is_err());
    }
}
