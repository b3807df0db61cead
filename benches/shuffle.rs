//! Shuffle throughput: bytes that cross between executors, through raw `MPI_Alltoallv`
//! and through ember's shuffle exchange, in one run, at 2 and 4 executors.
//!
//!     cargo bench --bench shuffle [-- --mib 256 --reps 3] [--nodes]
//!
//! With `--nodes` (root), every rank runs in a network namespace of its own: each executor
//! is a node, and all cross-executor bytes go over TCP in every mode (`auto` included).
//!
//! Only bytes that move from one executor to another are counted. Raw: every executor
//! sends `mib / executors` MiB to each *other* executor and nothing to itself (so MPI
//! copies no own share either). ember: each executor shuffles `mib` MiB of 100-byte
//! records (random keys) over all executors' partitions; the records a reduce partition
//! gets from its own executor's map output (about 1/executors of them) never cross MPI in
//! any mode (they are read in place) and are left out. The bench finds them exactly: every
//! record carries the rank that made it, and the reduce side counts those from elsewhere;
//! bytes = those records × the shuffle's encoded bytes per record.
//!
//! Throughput is those bytes over the wall time of the exchange (raw: the slowest
//! executor's `MPI_Alltoallv`; ember: `Exchange` to the last `ExchangeDone`, as the driver
//! measures it). Each shuffle mode runs separately: `alltoallv` moves every cross-executor
//! byte through MPI (comparable with raw); `rma` copies map output into MPI windows and
//! receivers `MPI_Get` it (the copy into the window is inside the exchange time); `auto`
//! on one node moves no data through MPI (reduce tasks read the senders' files in place),
//! so it has no exchange data rate: compare the whole shuffle job's seconds ("job s": map
//! side, exchange and reading every record on the reduce side) instead.

#[path = "../tests/common/netns.rs"]
mod netns;
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
    let nodes = std::env::args().any(|a| a == "--nodes");
    let exe = std::env::current_exe().expect("own path");
    println!(
        "shuffle benchmark: {mib} MiB per executor, median of {reps}; bytes = bytes that \
         crossed from one executor to another (own share excluded, raw sends none to itself){}",
        if nodes {
            "; one rank per network-namespace node, over TCP"
        } else {
            ""
        }
    );
    println!(
        "{:>9} {:>9} {:>11} {:>11} {:>9} {:>15} {:>6} {:>9}",
        "executors",
        "mode",
        "cross bytes",
        "own bytes",
        "raw GB/s",
        "exchange GB/s",
        "ratio",
        "job s"
    );
    for executors in [2, 4] {
        let namespaces = nodes.then(|| {
            netns::Nodes::create(executors + 1)
                .unwrap_or_else(|e| panic!("--nodes: cannot make network namespaces: {e}"))
        });
        for mode in ["alltoallv", "rma", "auto"] {
            let args = vec![
                "--mib".to_string(),
                mib.to_string(),
                "--reps".into(),
                reps.to_string(),
            ];
            let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut cmd = match &namespaces {
                Some(ns) => ns.mpirun(exe.to_str().unwrap(), &args_ref),
                None => support::mpirun(executors + 1, exe.to_str().unwrap(), &args),
            };
            cmd.env("EMBER_SHUFFLE_MODE", mode);
            let (_, stdout, stderr) = support::timed(cmd);
            print!("{stdout}");
            if let Some(line) = stderr.lines().find(|l| l.contains("using alltoallv")) {
                println!("          ({mode} fell back: {})", line.trim());
            }
        }
    }
}

/// This process's world rank, as mpirun announces it (an executor's id is its world rank).
fn my_rank() -> u8 {
    static RANK: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *RANK.get_or_init(|| {
        ["OMPI_COMM_WORLD_RANK", "PMI_RANK"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse().ok())
            .expect("a world rank in the environment")
    })
}

fn rank_main() {
    let mib: usize = support::arg("--mib", 256);
    let reps: usize = support::arg("--reps", 3);
    let ctx = Context::init();
    let executors = ctx.executor_table().len();
    let one_node = ctx
        .executor_table()
        .iter()
        .all(|e| e.node == ctx.executor_table().iter().next().unwrap().node);
    let per_executor = mib << 20;

    // Raw MPI_Alltoallv over the executor communicator: each executor sends
    // per_executor / n bytes to every other executor and none to itself.
    let mut raw = Vec::new();
    let per = per_executor / executors;
    for rep in 0..reps {
        let secs = match ctx.executor() {
            Some(ex) => {
                let n = ex.peers.size();
                let mut counts = vec![per; n];
                counts[ex.peers.rank()] = 0;
                let send = vec![rep as u8 + 1; per * (n - 1)];
                ex.peers.barrier().expect("barrier");
                let start = Instant::now();
                let got = ex.peers.all_to_all_v(&send, &counts).expect("alltoallv");
                assert_eq!(got.bytes.len(), per * (n - 1));
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
    let raw_bytes = (per * executors * (executors - 1)) as f64;

    // The same volume as 100-byte records through ember's shuffle; each record carries
    // (in its filler byte 20) the rank of the executor whose map task made it.
    let records = (per_executor * executors / 101) as u64;
    let parts = executors * 2;
    let source = ctx.range(0, records, Some(parts)).map(|i| {
        let mut r = Record::generate(7, i);
        r.0[20] = my_rank();
        r
    });
    let mut ember_secs = Vec::new();
    let mut job_secs = Vec::new();
    let (mut received, mut from_others) = (0u64, 0u64);
    for _ in 0..reps {
        let start = Instant::now();
        // Random keys: their high 64 bits spread records evenly over the partitions.
        let p = parts as u128;
        let counts = source
            .partition_with(parts, move |r| ((r.packed_key() >> 64) % p) as usize)
            .map_partitions(|records| {
                let me = my_rank();
                let (mut n, mut others) = (0u64, 0u64);
                for r in records {
                    n += 1;
                    others += u64::from(r.0[20] != me);
                }
                [(n, others)]
            })
            .collect()
            .expect("shuffle job");
        job_secs.push(start.elapsed().as_secs_f64());
        let n: u64 = counts.iter().map(|c| c.0).sum();
        assert_eq!(n, records);
        from_others = counts.iter().map(|c| c.1).sum();
        if let Some(last) = ctx.shuffle_stats().last() {
            ember_secs.push(last.seconds);
            received = last.bytes;
        }
    }
    if ctx.is_driver() {
        // The exchange's byte count includes the own share: split it by records.
        let per_record = received as f64 / records as f64;
        let cross = (from_others as f64 * per_record).round() as u64;
        let own = received - cross;
        let mode = format!("{:?}", ctx.config().shuffle_mode).to_lowercase();
        let raw_gbs = raw_bytes / support::median(raw) / 1e9;
        let through_mpi = !(mode == "auto" && one_node);
        let (ember_gbs, ratio) = if through_mpi {
            let gbs = cross as f64 / support::median(ember_secs) / 1e9;
            (format!("{gbs:.2}"), format!("{:.2}", gbs / raw_gbs))
        } else {
            ("in place".to_string(), "-".to_string())
        };
        println!(
            "{executors:>9} {mode:>9} {cross:>11} {own:>11} {raw_gbs:>9.2} {ember_gbs:>15} {ratio:>6} {:>9.2}",
            support::median(job_secs)
        );
    }
    ctx.stop();
}
