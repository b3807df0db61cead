//! TeraSort throughput and memory: ember (2 executors under mpirun) against the
//! hand-written baseline of benches/baselines/terasort.rs (mmap, sort of u128 key+index
//! entries with rayon's parallel unstable sort, one parallel gather into the mapped
//! output), on the same single file, in one run, both timed as whole processes.
//!
//!     cargo bench --bench terasort [-- --records 10000000 --reps 3]
//!
//! Input and outputs live in /dev/shm, so the figures are about the programs, not a disk.
//! The outputs of a first, untimed pair of runs are compared byte for byte; each timed run's
//! output is deleted right after it.

#![allow(clippy::duplicate_mod)]

#[path = "baselines/terasort.rs"]
mod baseline_terasort;
#[path = "support.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use ember::io::records::Record;
use rayon::prelude::*;

fn main() {
    if support::arg("--baseline", String::new()) == "terasort" {
        return baseline_terasort::main();
    }
    let records: u64 = support::arg("--records", 10_000_000);
    let reps: usize = support::arg("--reps", 3);
    let input = format!("/dev/shm/ember-bench-terasort-{records}.bin");
    if std::fs::metadata(&input).map(|m| m.len()).ok() != Some(records * 100) {
        let bytes: Vec<u8> = (0..records)
            .into_par_iter()
            .flat_map_iter(|i| Record::generate(3, i).0)
            .collect();
        std::fs::write(&input, bytes).expect("write input");
    }
    let mb = records as f64 * 100.0 / 1e6;

    let base_out = "/dev/shm/ember-bench-terasort-baseline.out";
    let ember_out = "/dev/shm/ember-bench-terasort-out";
    let run_base = || {
        let _ = std::fs::remove_dir_all(base_out);
        let mut cmd = Command::new(std::env::current_exe().expect("own path"));
        cmd.args([
            "--baseline",
            "terasort",
            "--input",
            &input,
            "--output",
            base_out,
        ]);
        support::process(cmd)
    };
    let run_ember = || {
        let _ = std::fs::remove_dir_all(ember_out);
        let args = ["--input", &input, "--output", ember_out]
            .map(String::from)
            .to_vec();
        support::process(support::mpirun(3, env!("CARGO_BIN_EXE_terasort"), &args))
    };
    // A first pair, untimed, whose outputs are compared; then timed pairs, each output
    // deleted right after its run, so that neither program runs beside the other's output
    // (as in benches/jobs.rs: a kept 1 GB output slowed the next writes into /dev/shm).
    run_base();
    run_ember();
    let check = support::check_terasort(Path::new(ember_out), Path::new(base_out));
    let _ = std::fs::remove_dir_all(base_out);
    let _ = std::fs::remove_dir_all(ember_out);
    let (mut baseline, mut ember) = (Vec::new(), Vec::new());
    let (mut base_rss, mut rss) = (0.0f64, String::new());
    for _ in 0..reps {
        let run = run_base();
        let _ = std::fs::remove_dir_all(base_out);
        baseline.push(run.seconds);
        base_rss = base_rss.max(run.max_rss_kib as f64 / 1024.0);

        let run = run_ember();
        let _ = std::fs::remove_dir_all(ember_out);
        ember.push(run.seconds);
        rss = support::peak_rss_line(&run.stderr);
    }

    let (b, e) = (support::median(baseline), support::median(ember));
    println!(
        "terasort benchmark: {records} records ({mb:.0} MB), median of {reps}, whole processes"
    );
    support::report_launcher_start_up();
    println!("{:<44} {:>8} {:>10}", "", "seconds", "MB/s");
    println!(
        "{:<44} {b:>8.2} {:>10.0}",
        "baseline (u128 entries, par sort, gather)",
        mb / b
    );
    println!(
        "{:<44} {e:>8.2} {:>10.0}",
        "ember terasort, mpirun -n 3 (2 executors)",
        mb / e
    );
    println!("ember / baseline throughput: {:.2}", b / e);
    println!("outputs agree: {check}");
    let share = mb / 2.0;
    let worst = support::max_executor_rss_mib(&rss) * 1.048576;
    println!(
        "peak RSS: baseline {base_rss:.0} MiB; ember {rss}; largest executor {worst:.0} MB = {:.2}x its {share:.0} MB share",
        worst / share
    );
}
