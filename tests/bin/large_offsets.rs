//! `MPI_Alltoallv` between runs that lie past 2 GiB in their buffers, as in a large map or
//! reduce file: every rank sends from and receives into sparse 3 GiB mapped files, at
//! offsets beyond what a C `int` displacement holds, and checks every byte it received.
//! Launched by tests/shuffle.rs under mpirun; prints `ok <bytes>` on every rank.

use std::path::PathBuf;

use ember::transport::mpi_start;

const FILE_LEN: u64 = 3 << 30;
const SEND_AT: usize = (5 << 30) / 2; // 2.5 GiB
const RECV_AT: usize = (9 << 30) / 4; // 2.25 GiB
const RUN: usize = 1 << 20;

/// The byte at `i` of the run `from` sends to `to`.
fn pattern(from: usize, to: usize, i: usize) -> u8 {
    (from * 31 + to * 7 + i * 13 + i / 4093) as u8
}

fn sparse_map(path: &PathBuf) -> memmap2::MmapMut {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .expect("create the sparse file");
    file.set_len(FILE_LEN).expect("size the sparse file");
    // SAFETY: a private file this process just created and alone maps.
    unsafe { memmap2::MmapMut::map_mut(&file) }.expect("map the sparse file")
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: large_offsets DIR"));
    let started = mpi_start::start().expect("MPI start");
    let world = started.world;
    let (me, n) = (world.rank(), world.size());
    let mut send = sparse_map(&dir.join(format!("send-{me}")));
    let mut recv = sparse_map(&dir.join(format!("recv-{me}")));
    // Peer p's run: 1 MiB at 2.5 GiB + p MiB (rank 0's goes below 2 GiB, so one call
    // mixes near and far runs).
    let send_displs: Vec<usize> = (0..n)
        .map(|p| if p == 0 { 4096 } else { SEND_AT + p * RUN })
        .collect();
    let recv_displs: Vec<usize> = (0..n)
        .map(|p| if p == 1 { 8192 } else { RECV_AT + p * RUN })
        .collect();
    for (to, &at) in send_displs.iter().enumerate() {
        for i in 0..RUN {
            send[at + i] = pattern(me, to, i);
        }
    }
    let counts = vec![RUN; n];
    world
        .all_to_all_v_into(
            &send,
            &counts,
            &send_displs,
            &mut recv,
            &counts,
            &recv_displs,
        )
        .expect("all_to_all_v_into past 2 GiB");
    for (from, &at) in recv_displs.iter().enumerate() {
        for i in 0..RUN {
            assert_eq!(
                recv[at + i],
                pattern(from, me, i),
                "rank {me}: byte {i} from rank {from}"
            );
        }
    }
    println!("ok {}", n * RUN);
    drop((send, recv));
    let _ = std::fs::remove_file(dir.join(format!("send-{me}")));
    let _ = std::fs::remove_file(dir.join(format!("recv-{me}")));
    world.barrier().expect("barrier");
    drop(world);
    drop(started.executor);
    drop(started.session);
}
