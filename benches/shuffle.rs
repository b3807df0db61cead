//! Shuffle throughput: the same bytes through raw `MPI_Alltoallv` and through ember's
//! shuffle exchange, in one run, at 2 and 4 executors.
//!
//!     cargo bench --bench shuffle [-- --mib 256 --reps 3]
//!
//! Throughput is all bytes received by all executors over the wall time of the exchange
//! (raw: the slowest executor's `MPI_Alltoallv`; ember: `Exchange` to the last
//! `ExchangeDone`, as the driver measures it). Each shuffle mode runs separately:
//! `alltoallv` moves every byte through MPI (comparable with raw); `rma` copies map output
//! into MPI windows and receivers `MPI_Get` it (the copy into the window is inside the
//! exchange time); `auto` on one node
//! moves only metadata and lets reduce tasks read the senders' files in place, so its
//! exchange figure is not a data rate: compare the whole shuffle job's seconds instead
//! (map, exchange and reading every record on the reduce side).

#[path = "support.rs"]
mod support;

use std::hint::black_box;
use std::time::Instant;

use ember::Context;
use ember::io::records::Record;

fn main() {
    if support::under_mpi() {
        return rank_main();
    }
    let mib: usize = support::arg("--mib", 256);
    let reps: usize = support::arg("--reps", 3);
    let exe = std::env::current_exe().expect("own path");
    println!("shuffle benchmark: {mib} MiB per executor, median of {reps}");
    println!(
        "{:>9} {:>9} {:>11} {:>9} {:>15} {:>6} {:>9}",
        "executors", "mode", "bytes", "raw GB/s", "exchange GB/s", "ratio", "job s"
    );
    for executors in [2, 4] {
        for mode in ["alltoallv", "rma", "auto"] {
            let args = vec![
                "--mib".to_string(),
                mib.to_string(),
                "--reps".into(),
                reps.to_string(),
            ];
            let mut cmd = support::mpirun(executors + 1, exe.to_str().unwrap(), &args);
            cmd.env("EMBER_SHUFFLE_MODE", mode);
            let (_, stdout, _) = support::timed(cmd);
            print!("{stdout}");
        }
    }
}

fn rank_main() {
    let mib: usize = support::arg("--mib", 256);
    let reps: usize = support::arg("--reps", 3);
    let ctx = Context::init();
    let executors = ctx.executor_table().len();
    let per_executor = mib << 20;

    // Raw MPI_Alltoallv over the executor communicator, each executor sending
    // per_executor bytes split evenly over all executors.
    let mut raw = Vec::new();
    for rep in 0..reps {
        let secs = match ctx.executor() {
            Some(ex) => {
                let n = ex.peers.size();
                let per = per_executor / n;
                let send = vec![rep as u8 + 1; per * n];
                ex.peers.barrier().expect("barrier");
                let start = Instant::now();
                let got = ex
                    .peers
                    .all_to_all_v(&send, &vec![per; n])
                    .expect("alltoallv");
                black_box(got.bytes.len());
                start.elapsed().as_secs_f64()
            }
            None => 0.0,
        };
        let all = ctx.world().gather(0, &secs.to_le_bytes()).expect("gather");
        if let Some(all) = all {
            let slowest = all
                .iter()
                .map(|b| f64::from_le_bytes(b.as_slice().try_into().unwrap()))
                .fold(0.0, f64::max);
            raw.push(slowest);
        }
    }

    // The same volume as 100-byte records through ember's shuffle (101 bytes encoded).
    let records = (per_executor * executors / 101) as u64;
    let parts = executors * 2;
    let source = ctx
        .range(0, records, Some(parts))
        .map(|i| Record::generate(7, i));
    let mut ember_secs = Vec::new();
    let mut job_secs = Vec::new();
    let mut moved = 0;
    for _ in 0..reps {
        let start = Instant::now();
        // Random keys: their high 64 bits spread records evenly over the partitions.
        let p = parts as u128;
        let n = source
            .partition_by(parts, move |r| ((r.packed_key() >> 64) % p) as usize)
            .count()
            .expect("shuffle job");
        assert_eq!(n, records);
        job_secs.push(start.elapsed().as_secs_f64());
        if let Some(last) = ctx.shuffle_stats().last() {
            ember_secs.push(last.seconds);
            moved = last.bytes;
        }
    }
    if ctx.is_driver() {
        let total = (per_executor / executors * executors * executors) as f64;
        let raw_gbs = total / support::median(raw) / 1e9;
        let ember_gbs = moved as f64 / support::median(ember_secs) / 1e9;
        let mode = format!("{:?}", ctx.config().shuffle_mode).to_lowercase();
        println!(
            "{executors:>9} {mode:>9} {moved:>11} {raw_gbs:>9.2} {ember_gbs:>15.2} {:>6.2} {:>9.2}",
            ember_gbs / raw_gbs,
            support::median(job_secs)
        );
    }
    ctx.stop();
}
