//! `MPI_Alltoallv` between runs that lie past 2 GiB in their buffers, as in a large map or
//! reduce file: every rank sends from and receives into sparse 3 GiB mapped files, at
//! offsets beyond what a C `int` displacement holds, and checks every byte it received.
//! Launched by tests/shuffle.rs under mpirun; prints `ok <bytes>` on every rank.
//!
//! `large_offsets exchange RECORDS`: a real shuffle whose reduce side is over 2 GiB on one
//! executor: RECORDS records of 16 KiB repartitioned into one partition, whose owner
//! receives every other executor's share by MPI; prints the byte count and a checksum
//! the test compares with a sequential computation.

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

/// 16 KiB record number `i`.
fn record(i: u64) -> Vec<u8> {
    let mut r = vec![(i * 131) as u8; 16 << 10];
    r[..8].copy_from_slice(&i.to_le_bytes());
    r
}

/// Byte count and an order-independent checksum of records.
fn digest(records: impl Iterator<Item = Vec<u8>>) -> (u64, u64) {
    records.fold((0, 0), |(n, sum), r| {
        let h = r.chunks(8).fold(0u64, |h, w| {
            let mut word = [0u8; 8];
            word[..w.len()].copy_from_slice(w);
            h.rotate_left(5) ^ u64::from_le_bytes(word)
        });
        (n + r.len() as u64, sum.wrapping_add(h))
    })
}

fn exchange(records: u64) {
    let ctx = ember::Context::init();
    let one = ctx
        .range(0, records, None)
        .map(record)
        .repartition(1)
        .map_partitions(|it| vec![digest(it)])
        .collect()
        .unwrap_or_else(|e| ctx.fail(&e));
    if ctx.is_driver() {
        let want = digest((0..records).map(record));
        println!("got {:?} want {want:?}", one[0]);
    }
    ctx.stop();
}

fn main() {
    let first = std::env::args()
        .nth(1)
        .expect("usage: large_offsets DIR | exchange RECORDS");
    if first == "exchange" {
        let records = std::env::args()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .expect("RECORDS");
        return exchange(records);
    }
    let dir = PathBuf::from(first);
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
