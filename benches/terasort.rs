//! TeraSort throughput: ember (2 executors under mpirun) against a hand-written
//! single-process rayon sort of the same file (read, par_sort_unstable, write), in one run.
//!
//!     cargo bench --bench terasort [-- --records 10000000 --reps 3]
//!
//! Input and outputs live in /dev/shm, so the figures are about the engines, not a disk.

#[path = "support.rs"]
mod support;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use ember::io::records::Record;
use rayon::prelude::*;

fn main() {
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

    let baseline_out = "/dev/shm/ember-bench-terasort-baseline.out";
    let baseline: Vec<f64> = (0..reps)
        .map(|_| baseline_sort(Path::new(&input), Path::new(baseline_out)))
        .collect();
    let _ = std::fs::remove_file(baseline_out);

    let out_dir = "/dev/shm/ember-bench-terasort-out";
    let mut ember = Vec::new();
    let mut rss = String::new();
    for _ in 0..reps {
        let _ = std::fs::remove_dir_all(out_dir);
        let args = ["--input", &input, "--output", out_dir]
            .map(String::from)
            .to_vec();
        let (secs, _, stderr) =
            support::timed(support::mpirun(3, env!("CARGO_BIN_EXE_terasort"), &args));
        ember.push(secs);
        rss = support::peak_rss_line(&stderr);
    }
    let _ = std::fs::remove_dir_all(out_dir);

    let (b, e) = (support::median(baseline), support::median(ember));
    println!("terasort benchmark: {records} records ({mb:.0} MB), median of {reps}, 2 cores");
    println!("{:<34} {:>8} {:>10}", "", "seconds", "MB/s");
    println!(
        "{:<34} {b:>8.2} {:>10.0}",
        "rayon read+par_sort_unstable+write",
        mb / b
    );
    println!(
        "{:<34} {e:>8.2} {:>10.0}",
        "ember terasort, 2 executors",
        mb / e
    );
    println!("ember / baseline throughput: {:.2}", b / e);
    let share = mb / 2.0;
    let worst = support::max_executor_rss_mib(&rss) * 1.048576;
    println!(
        "peak RSS: {rss}; largest executor {worst:.0} MB = {:.2}x its {share:.0} MB share",
        worst / share
    );
}

/// The hand-written baseline: read the file, sort records by key on all cores, write.
fn baseline_sort(input: &Path, output: &Path) -> f64 {
    let start = Instant::now();
    let bytes = std::fs::read(input).expect("read input");
    let mut records: Vec<Record> = bytemuck::cast_slice::<u8, Record>(&bytes).to_vec();
    drop(bytes);
    records.par_sort_unstable_by_key(Record::packed_key);
    let mut out =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(output).expect("create"));
    out.write_all(bytemuck::cast_slice(&records))
        .expect("write");
    out.flush().expect("flush");
    start.elapsed().as_secs_f64()
}
