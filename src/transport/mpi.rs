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
    AlignedBytes, Backoff, Envelope, Group, Rank, Received, Result, Tag, TransportError,
    check_counts,
};

/// Largest byte count one MPI call takes: counts are C `int`.
pub const MAX_CALL_BYTES: usize = i32::MAX as usize;

/// A group over one MPI communicator.
pub struct MpiGroup {
    /// Freed on drop only while MPI is up: a group that outlives `MPI_Finalize` (a user's
    /// RDD handle kept past `Context::stop`) must not call `MPI_Comm_free`.
    comm: ManuallyDrop<SimpleCommunicator>,
    rank: Rank,
    size: usize,
    /// Held around every MPI call when the library did not grant `MPI_THREAD_MULTIPLE`.
    serialize: Option<Mutex<()>>,
}

// SAFETY: MPI handles are plain identifiers; with MPI_THREAD_MULTIPLE the library allows
// calls on one communicator from several threads at once, and without it every call goes
// through `serialize`, so the communicator is never used by two threads at the same time.
unsafe impl Send for MpiGroup {}
unsafe impl Sync for MpiGroup {}

impl MpiGroup {
    /// Wraps `comm`. `thread_multiple` says whether MPI granted `MPI_THREAD_MULTIPLE`.
    pub fn new(comm: SimpleCommunicator, thread_multiple: bool) -> Self {
        MpiGroup {
            rank: comm.rank() as Rank,
            size: comm.size() as usize,
            comm: ManuallyDrop::new(comm),
            serialize: (!thread_multiple).then(|| Mutex::new(())),
        }
    }

    /// The communicator, for code that must make further MPI objects from it.
    pub fn communicator(&self) -> &SimpleCommunicator {
        &self.comm
    }

    fn guard(&self) -> Option<MutexGuard<'_, ()>> {
        self.serialize
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
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

    fn all_to_all_v(&self, send: &[u8], send_counts: &[usize]) -> Result<Received> {
        let displs = check_counts(self.size, send, send_counts)?;
        mpi_count("an all_to_all_v send buffer", send.len())?;
        let counts_i32: Vec<i32> = send_counts.iter().map(|&c| c as i32).collect();
        let displs_i32: Vec<i32> = displs.iter().map(|&d| d as i32).collect();

        let _g = self.guard();
        let mut recv_counts_i32 = vec![0i32; self.size];
        self.comm
            .all_to_all_into(&counts_i32[..], &mut recv_counts_i32[..]);
        let counts: Vec<usize> = recv_counts_i32.iter().map(|&c| c as usize).collect();
        let total: usize = counts.iter().sum();
        mpi_count("an all_to_all_v receive buffer", total)?;
        let mut recv_displs = Vec::with_capacity(self.size);
        let mut at = 0i32;
        for &c in &recv_counts_i32 {
            recv_displs.push(at);
            at += c;
        }

        let mut bytes = AlignedBytes::zeroed(total);
        {
            let send_part = Partition::new(non_dangling(send), &counts_i32[..], &displs_i32[..]);
            // AlignedBytes never hands out a dangling pointer, even at length 0.
            let recv_buf = bytes.as_bytes_mut();
            let mut recv_part = PartitionMut::new(recv_buf, &recv_counts_i32[..], &recv_displs[..]);
            self.comm
                .all_to_all_varcount_into(&send_part, &mut recv_part);
        }
        Ok(Received { bytes, counts })
    }
}
