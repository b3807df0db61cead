//! MpiGroup is the Group backed by an MPI communicator: the transport used under mpirun and Slurm.
//!
//! Waits never sit in a blocking MPI call: sends and barriers are started non-blocking and
//! polled with [`Backoff`], receives use `MPI_Improbe`, because a blocked OpenMPI call
//! spins a whole core. `MPI_Alltoallv` is the real collective (its participants arrive
//! together, so a short spin there is cheaper than a protocol of point-to-point messages).

use std::mem::ManuallyDrop;
use std::sync::{Mutex, MutexGuard};

use mpi::datatype::{Partition, PartitionMut};
use mpi::point_to_point::MatchedReceiveVec;
use mpi::request::{Request, scope};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

use super::{
    AlignedBytes, Backoff, Envelope, Group, Rank, Result, Tag, TransportError, check_layout,
};

/// Largest byte count one MPI call takes: counts are C `int`.
pub const MAX_CALL_BYTES: usize = i32::MAX as usize;

/// The one lock every MPI call of the process takes unless the library granted
/// `MPI_THREAD_MULTIPLE`: under `MPI_THREAD_SERIALIZED` no two threads may be inside MPI
/// at once, whatever the communicator or window (the world, the executors' group and the
/// heartbeat thread's sends all share it).
static MPI_LOCK: Mutex<()> = Mutex::new(());

/// Holds [`MPI_LOCK`] when calls must be serialised.
pub(crate) fn serialize(serialized: bool) -> Option<MutexGuard<'static, ()>> {
    serialized.then(|| MPI_LOCK.lock().unwrap_or_else(|p| p.into_inner()))
}

/// A group over one MPI communicator.
pub struct MpiGroup {
    /// Freed on drop only while MPI is up: a group that outlives `MPI_Finalize` (a user's
    /// RDD handle kept past `Context::stop`) must not call `MPI_Comm_free`.
    comm: ManuallyDrop<SimpleCommunicator>,
    rank: Rank,
    size: usize,
    /// Every MPI call takes [`MPI_LOCK`] (the library did not grant `MPI_THREAD_MULTIPLE`).
    serialized: bool,
}

// SAFETY: MPI handles are plain identifiers; with MPI_THREAD_MULTIPLE the library allows
// calls on one communicator from several threads at once, and without it every call goes
// under the process-wide MPI_LOCK, so MPI is never entered by two threads at the same time.
unsafe impl Send for MpiGroup {}
unsafe impl Sync for MpiGroup {}

impl MpiGroup {
    /// Wraps `comm`. `thread_multiple` says whether MPI granted `MPI_THREAD_MULTIPLE`.
    pub fn new(comm: SimpleCommunicator, thread_multiple: bool) -> Self {
        MpiGroup {
            rank: comm.rank() as Rank,
            size: comm.size() as usize,
            comm: ManuallyDrop::new(comm),
            serialized: !thread_multiple,
        }
    }

    /// The communicator, for code that must make further MPI objects from it.
    pub fn communicator(&self) -> &SimpleCommunicator {
        &self.comm
    }

    fn guard(&self) -> Option<MutexGuard<'static, ()>> {
        serialize(self.serialized)
    }

    /// Polls `request` with backoff until it completes.
    fn wait<'a, B: ?Sized, S: mpi::request::Scope<'a>>(&self, mut request: Request<'a, B, S>) {
        let mut backoff = Backoff::new();
        loop {
            let tested = {
                let _g = self.guard();
                request.test()
            };
            match tested {
                Ok(_) => return,
                Err(pending) => {
                    request = pending;
                    backoff.snooze();
                }
            }
        }
    }
}

impl Drop for MpiGroup {
    fn drop(&mut self) {
        if !mpi::environment::is_finalized() {
            let _mpi = self.guard();
            // SAFETY: dropped exactly once, here; MPI is still initialised.
            unsafe { ManuallyDrop::drop(&mut self.comm) }
        }
    }
}

/// Sending from an empty `Vec` hands MPI the dangling pointer 0x1, which OpenMPI reads as
/// `MPI_IN_PLACE`: send empty messages from a real (static) address instead.
fn non_dangling(data: &[u8]) -> &[u8] {
    static ONE: [u8; 1] = [0];
    if data.is_empty() { &ONE[..0] } else { data }
}

fn mpi_count(what: &'static str, bytes: usize) -> Result<i32> {
    i32::try_from(bytes).map_err(|_| TransportError::TooLarge {
        what,
        bytes,
        limit: MAX_CALL_BYTES,
    })
}

/// The byte range that the non-empty runs of (`counts`, `displs`) cover; `(0, 0)` if none.
fn span(counts: &[usize], displs: &[usize]) -> (usize, usize) {
    let runs = counts.iter().zip(displs).filter(|(c, _)| **c > 0);
    let lo = runs.clone().map(|(_, &d)| d).min().unwrap_or(0);
    let hi = runs.map(|(&c, &d)| d + c).max().unwrap_or(0);
    (lo, hi)
}

/// Displacements relative to `lo` (0 for empty runs, which MPI does not touch).
fn rebase(counts: &[usize], displs: &[usize], lo: usize) -> Vec<usize> {
    counts
        .iter()
        .zip(displs)
        .map(|(&c, &d)| if c == 0 { 0 } else { d - lo })
        .collect()
}

/// The bytes of a staging buffer for `counts`, if one MPI call can address them.
fn staged_len(counts: &[usize]) -> Result<usize> {
    let total: usize = counts.iter().sum();
    mpi_count("one round's bytes", total)?;
    Ok(total)
}

/// `send`'s runs packed one after another, and their new displacements.
fn pack(send: &[u8], counts: &[usize], displs: &[usize]) -> Result<(AlignedBytes, Vec<usize>)> {
    let mut packed = AlignedBytes::zeroed(staged_len(counts)?);
    let new_displs = super::prefix_sums(counts);
    for ((&c, &from), &to) in counts.iter().zip(displs).zip(&new_displs) {
        packed.as_bytes_mut()[to..to + c].copy_from_slice(&send[from..from + c]);
    }
    Ok((packed, new_displs))
}

impl Group for MpiGroup {
    fn rank(&self) -> Rank {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn send(&self, to: Rank, tag: Tag, data: &[u8]) -> Result<()> {
        self.check_rank(to)?;
        mpi_count("a message", data.len())?;
        let data = non_dangling(data);
        scope(|s| {
            let request = {
                let _g = self.guard();
                self.comm
                    .process_at_rank(to as i32)
                    .immediate_send_with_tag(s, data, tag.0)
            };
            self.wait(request);
        });
        Ok(())
    }

    fn try_recv(&self, from: Option<Rank>, tag: Tag) -> Result<Option<Envelope>> {
        let _g = self.guard();
        let probed = match from {
            Some(f) => {
                self.check_rank(f)?;
                self.comm
                    .process_at_rank(f as i32)
                    .immediate_matched_probe_with_tag(tag.0)
            }
            None => self
                .comm
                .any_process()
                .immediate_matched_probe_with_tag(tag.0),
        };
        Ok(probed.map(|matched| {
            let source = matched.1.source_rank() as Rank;
            let (data, _) = matched.matched_receive_vec::<u8>();
            Envelope { source, tag, data }
        }))
    }

    fn barrier(&self) -> Result<()> {
        let request = {
            let _g = self.guard();
            self.comm.immediate_barrier()
        };
        self.wait(request);
        Ok(())
    }

    fn window(&self, len: usize) -> std::result::Result<Box<dyn super::Window>, String> {
        if crate::faults::rma_disabled() {
            return Err("windows disabled by EMBER_TEST_RMA_FAIL".into());
        }
        use mpi::raw::AsRaw;
        // SAFETY: our communicator; every rank of the group calls `window` together.
        let window = unsafe {
            super::window::MpiWindow::allocate(self.comm.as_raw(), len, self.serialized)
        }?;
        Ok(Box::new(window))
    }

    fn all_to_all_counts(&self, send_counts: &[usize]) -> Result<Vec<usize>> {
        if send_counts.len() != self.size {
            return Err(TransportError::CountMismatch {
                got: send_counts.len(),
                size: self.size,
            });
        }
        let send: Vec<u64> = send_counts.iter().map(|&c| c as u64).collect();
        let mut recv = vec![0u64; self.size];
        let _g = self.guard();
        self.comm.all_to_all_into(&send[..], &mut recv[..]);
        Ok(recv.into_iter().map(|c| c as usize).collect())
    }

    fn all_to_all_v_into(
        &self,
        send: &[u8],
        send_counts: &[usize],
        send_displs: &[usize],
        recv: &mut [u8],
        recv_counts: &[usize],
        recv_displs: &[usize],
    ) -> Result<()> {
        check_layout(self.size, send.len(), send_counts, send_displs)?;
        check_layout(self.size, recv.len(), recv_counts, recv_displs)?;
        // MPI takes C `int` displacements and buffer lengths: hand it only the span of
        // each buffer that this call's runs use, displacements relative to that span; a
        // span over 2 GiB (runs of a large map or reduce file far apart) goes through a
        // packed staging buffer of one round (bounded by `--shuffle-round-bytes`).
        let (slo, shi) = span(send_counts, send_displs);
        let (rlo, rhi) = span(recv_counts, recv_displs);
        if shi - slo > MAX_CALL_BYTES {
            let (packed, displs) = pack(send, send_counts, send_displs)?;
            return self.all_to_all_v_into(
                packed.as_bytes(),
                send_counts,
                &displs,
                recv,
                recv_counts,
                recv_displs,
            );
        }
        if rhi - rlo > MAX_CALL_BYTES {
            let total = staged_len(recv_counts)?;
            let mut staged = AlignedBytes::zeroed(total);
            let displs = super::prefix_sums(recv_counts);
            self.all_to_all_v_into(
                send,
                send_counts,
                send_displs,
                staged.as_bytes_mut(),
                recv_counts,
                &displs,
            )?;
            for ((&c, &from), &to) in recv_counts.iter().zip(&displs).zip(recv_displs) {
                recv[to..to + c].copy_from_slice(&staged.as_bytes()[from..from + c]);
            }
            return Ok(());
        }
        let (send, recv) = (&send[slo..shi], &mut recv[rlo..rhi]);
        let send_displs = rebase(send_counts, send_displs, slo);
        let recv_displs = rebase(recv_counts, recv_displs, rlo);
        let ints = |what: &'static str, v: &[usize]| -> Result<Vec<i32>> {
            v.iter().map(|&x| mpi_count(what, x)).collect()
        };
        let (sc, sd) = (
            ints("a send count", send_counts)?,
            ints("a send offset", &send_displs)?,
        );
        let (rc, rd) = (
            ints("a receive count", recv_counts)?,
            ints("a receive offset", &recv_displs)?,
        );
        let send = non_dangling(send);
        // A zero-length receive buffer must still have a real address.
        let mut spare = AlignedBytes::zeroed(0);
        let recv = if recv.is_empty() {
            spare.as_bytes_mut()
        } else {
            recv
        };
        let send_part = Partition::new(send, &sc[..], &sd[..]);
        let mut recv_part = PartitionMut::new(recv, &rc[..], &rd[..]);
        let _g = self.guard();
        self.comm
            .all_to_all_varcount_into(&send_part, &mut recv_part);
        Ok(())
    }
}
