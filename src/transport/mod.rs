//! The transport is a narrow interface to a group of ranks: point-to-point messages, a few collectives.
//!
//! Everything above it (registration, scheduling, shuffle) talks to a [`Group`], never to
//! MPI directly. Two backends implement it: [`mpi::MpiGroup`] over an MPI communicator (the
//! real thing, tested under `mpirun`) and [`local::LocalGroup`], ranks in one process joined
//! by mailboxes (local mode and unit tests). One-sided windows ([`window::Window`]) exist
//! on the MPI backend; nothing else may reach around the trait.

pub mod backoff;
pub mod library;
pub mod local;
pub mod mpi;
pub mod mpi_start;
pub mod window;

pub use backoff::Backoff;
pub use window::Window;

/// A process's index within a [`Group`], `0..size`.
pub type Rank = usize;

/// Where a rank sits among the executors of its node (from a shared-memory split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locality {
    /// The node's id: the world rank of its first executor.
    pub node: usize,
    /// Index among the executors on the node, and how many there are.
    pub rank: usize,
    pub size: usize,
}

/// Distinguishes kinds of messages between the same two ranks, like an MPI tag.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tag(pub i32);

impl Tag {
    /// Tags at or above this value are reserved for the default collectives below.
    pub const RESERVED: i32 = 1 << 20;
    const BROADCAST: Tag = Tag(Self::RESERVED);
    const GATHER: Tag = Tag(Self::RESERVED + 1);
    const ALL_TO_ALL: Tag = Tag(Self::RESERVED + 2);
    const COUNTS: Tag = Tag(Self::RESERVED + 3);
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub source: Rank,
    pub tag: Tag,
    pub data: Vec<u8>,
}

pub use crate::error::TransportError;

pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// Bytes received from a collective, stored 8-byte aligned so that fixed-width records
/// can be viewed in place (`bytemuck::cast_slice`) without copying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// `len` zero bytes. The allocation is never empty, so its pointer is a real address
    /// (an empty `Vec`'s dangling pointer is OpenMPI's `MPI_IN_PLACE`).
    pub fn zeroed(len: usize) -> Self {
        AlignedBytes {
            words: vec![0u64; len.div_ceil(8).max(1)],
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
}

/// The result of [`Group::all_to_all_v`]: everything received, concatenated in source-rank
/// order, with the byte count from each source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub bytes: AlignedBytes,
    pub counts: Vec<usize>,
}

impl Received {
    /// The bytes that came from `source`.
    pub fn from_rank(&self, source: Rank) -> &[u8] {
        let start: usize = self.counts[..source].iter().sum();
        &self.bytes.as_bytes()[start..start + self.counts[source]]
    }
}

/// A group of ranks that exchange messages: an MPI communicator or its in-process twin.
///
/// Contract shared by all backends:
/// - messages between one pair of ranks with one tag arrive in the order sent;
/// - `send` returns once `data` may be reused, and never waits for a matching receive
///   longer than the receiver takes to poll;
/// - no call that waits for other ranks spins a core: waits poll with [`Backoff`];
/// - collectives (`barrier`, `broadcast`, `gather`, `all_to_all_v`) must be called by every
///   rank of the group in the same order.
pub trait Group: Send + Sync {
    /// This process's rank in the group.
    fn rank(&self) -> Rank;

    /// Number of ranks in the group.
    fn size(&self) -> usize;

    /// Sends `data` to rank `to` with `tag`.
    fn send(&self, to: Rank, tag: Tag, data: &[u8]) -> Result<()>;

    /// Takes the oldest message with `tag` (from `from`, or from any rank) if one has arrived.
    fn try_recv(&self, from: Option<Rank>, tag: Tag) -> Result<Option<Envelope>>;

    /// Waits until every rank of the group has called `barrier`.
    fn barrier(&self) -> Result<()>;

    /// Waits for a message with `tag` (from `from`, or from any rank), polling with backoff.
    fn recv(&self, from: Option<Rank>, tag: Tag) -> Result<Envelope> {
        let mut backoff = Backoff::new();
        loop {
            if let Some(envelope) = self.try_recv(from, tag)? {
                return Ok(envelope);
            }
            backoff.snooze();
        }
    }

    /// Every rank gets `data` of rank `root`; the others' `data` is ignored.
    fn broadcast(&self, root: Rank, data: &[u8]) -> Result<Vec<u8>> {
        self.check_rank(root)?;
        if self.rank() == root {
            for to in (0..self.size()).filter(|&r| r != root) {
                self.send(to, Tag::BROADCAST, data)?;
            }
            Ok(data.to_vec())
        } else {
            Ok(self.recv(Some(root), Tag::BROADCAST)?.data)
        }
    }

    /// Rank `root` gets every rank's `data`, in rank order; the others get `None`.
    fn gather(&self, root: Rank, data: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        self.check_rank(root)?;
        if self.rank() != root {
            self.send(root, Tag::GATHER, data)?;
            return Ok(None);
        }
        let mut all = Vec::with_capacity(self.size());
        for from in 0..self.size() {
            if from == root {
                all.push(data.to_vec());
            } else {
                all.push(self.recv(Some(from), Tag::GATHER)?.data);
            }
        }
        Ok(Some(all))
    }

    /// Every rank sends one count to every rank (`MPI_Alltoall`): returns the count each
    /// rank sent to this one.
    fn all_to_all_counts(&self, send_counts: &[usize]) -> Result<Vec<usize>> {
        check_len(self.size(), send_counts.len())?;
        for (to, count) in send_counts.iter().enumerate() {
            self.send(to, Tag::COUNTS, &(*count as u64).to_le_bytes())?;
        }
        (0..self.size())
            .map(|from| {
                let data = self.recv(Some(from), Tag::COUNTS)?.data;
                let bytes: [u8; 8] =
                    data.try_into()
                        .map_err(|d: Vec<u8>| TransportError::Truncated {
                            from,
                            expected: 8,
                            got: d.len(),
                        })?;
                Ok(u64::from_le_bytes(bytes) as usize)
            })
            .collect()
    }

    /// Personalised all-to-all exchange (`MPI_Alltoallv`) between caller-owned buffers:
    /// `send[send_displs[r]..][..send_counts[r]]` goes to rank `r`, and what rank `r` sends
    /// lands at `recv[recv_displs[r]..][..recv_counts[r]]` (counts from
    /// [`all_to_all_counts`](Self::all_to_all_counts)). Lets a shuffle send straight from
    /// mapped files and receive straight into one.
    #[allow(clippy::too_many_arguments)]
    fn all_to_all_v_into(
        &self,
        send: &[u8],
        send_counts: &[usize],
        send_displs: &[usize],
        recv: &mut [u8],
        recv_counts: &[usize],
        recv_displs: &[usize],
    ) -> Result<()> {
        check_layout(self.size(), send.len(), send_counts, send_displs)?;
        check_layout(self.size(), recv.len(), recv_counts, recv_displs)?;
        for to in 0..self.size() {
            let slice = &send[send_displs[to]..send_displs[to] + send_counts[to]];
            self.send(to, Tag::ALL_TO_ALL, slice)?;
        }
        for from in 0..self.size() {
            let data = self.recv(Some(from), Tag::ALL_TO_ALL)?.data;
            if data.len() != recv_counts[from] {
                return Err(TransportError::Truncated {
                    from,
                    expected: recv_counts[from],
                    got: data.len(),
                });
            }
            recv[recv_displs[from]..recv_displs[from] + data.len()].copy_from_slice(&data);
        }
        Ok(())
    }

    /// Packed all-to-all: `send` holds the bytes for rank 0, then rank 1, ..., with
    /// `send_counts[r]` bytes for rank `r`; returns everything received, by source.
    fn all_to_all_v(&self, send: &[u8], send_counts: &[usize]) -> Result<Received> {
        let send_displs = check_counts(self.size(), send, send_counts)?;
        let counts = self.all_to_all_counts(send_counts)?;
        let recv_displs = prefix_sums(&counts);
        let mut bytes = AlignedBytes::zeroed(counts.iter().sum());
        self.all_to_all_v_into(
            send,
            send_counts,
            &send_displs,
            bytes.as_bytes_mut(),
            &counts,
            &recv_displs,
        )?;
        Ok(Received { bytes, counts })
    }

    /// The largest of every rank's `value`.
    fn all_max(&self, value: u64) -> Result<u64> {
        let all = self.all_to_all_counts(&vec![value as usize; self.size()])?;
        Ok(all.into_iter().max().unwrap_or(0) as u64)
    }

    /// Collective: a one-sided window of `len` bytes on every rank, or why there can be
    /// none here (the caller falls back to two-sided exchange).
    fn window(&self, len: usize) -> Result<Box<dyn Window>, String> {
        let _ = len;
        Err("one-sided windows need MPI".to_string())
    }

    /// `Ok` if `rank` is a member of this group.
    fn check_rank(&self, rank: Rank) -> Result<()> {
        if rank < self.size() {
            Ok(())
        } else {
            Err(TransportError::NoSuchRank {
                rank,
                size: self.size(),
            })
        }
    }
}

/// Offsets at which consecutive runs of `counts` start.
pub fn prefix_sums(counts: &[usize]) -> Vec<usize> {
    let mut at = 0;
    counts
        .iter()
        .map(|c| {
            let start = at;
            at += c;
            start
        })
        .collect()
}

fn check_len(size: usize, got: usize) -> Result<()> {
    if got == size {
        Ok(())
    } else {
        Err(TransportError::CountMismatch { got, size })
    }
}

/// Checks that every (displacement, count) run lies inside a buffer of `len` bytes.
fn check_layout(size: usize, len: usize, counts: &[usize], displs: &[usize]) -> Result<()> {
    check_len(size, counts.len())?;
    check_len(size, displs.len())?;
    for (&c, &d) in counts.iter().zip(displs) {
        if d.checked_add(c).is_none_or(|end| end > len) {
            return Err(TransportError::CountsDisagree { sum: d + c, len });
        }
    }
    Ok(())
}

/// Validates `send_counts` against `send` and returns the displacement of each rank's bytes.
fn check_counts(size: usize, send: &[u8], send_counts: &[usize]) -> Result<Vec<usize>> {
    if send_counts.len() != size {
        return Err(TransportError::CountMismatch {
            got: send_counts.len(),
            size,
        });
    }
    let mut displs = Vec::with_capacity(size);
    let mut at = 0usize;
    for &count in send_counts {
        displs.push(at);
        at += count;
    }
    if at != send.len() {
        return Err(TransportError::CountsDisagree {
            sum: at,
            len: send.len(),
        });
    }
    Ok(displs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_bytes_are_aligned_and_sized() {
        let mut b = AlignedBytes::zeroed(13);
        assert_eq!(b.len(), 13);
        b.as_bytes_mut()[12] = 7;
        assert_eq!(b.as_bytes()[12], 7);
        assert_eq!(b.as_bytes().as_ptr() as usize % 8, 0);
        assert!(AlignedBytes::zeroed(0).is_empty());
    }

    #[test]
    fn received_slices_by_source() {
        let mut bytes = AlignedBytes::zeroed(5);
        bytes.as_bytes_mut().copy_from_slice(b"abcde");
        let r = Received {
            bytes,
            counts: vec![2, 0, 3],
        };
        assert_eq!(r.from_rank(0), b"ab");
        assert_eq!(r.from_rank(1), b"");
        assert_eq!(r.from_rank(2), b"cde");
    }
}
