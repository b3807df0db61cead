//! Every job against a hand-written baseline on the same input files, in one run, both
//! timed as whole processes:
//!
//!     cargo bench --bench jobs [-- --size 256m --reps 3 --jobs wordcount,terasort]
//!
//! ember = `mpirun -n 3` (the driver and 2 executors) running the job binary; its time
//! includes mpirun's and MPI's start-up and shutdown. Baseline = this bench binary started
//! again as a separate process running one of the standalone programs in
//! benches/baselines/ (also built as the examples `baseline-JOB`); its time includes its
//! own start-up too. Both read the same files written once by `ember datagen` into
//! /dev/shm and write their output to /dev/shm.
//!
//! Reported: median seconds and MB/s of input for each; peak RSS (baseline: the process,
//! from `wait4`; ember: the sum over its ranks and the largest executor, from the job's
//! `peak RSS per rank` log line); ratio = ember MB/s / baseline MB/s. Runs alternate
//! baseline and ember. After the first pair the two outputs are compared (WordCount:
//! every count; TeraSort: every byte, and order; PageRank and KMeans: every value within
//! 1e-9 relative) and the bench stops if they differ.

// Each baseline is a standalone program with its own copy of baselines/common.rs.
#![allow(clippy::duplicate_mod)]

#[path = "baselines/kmeans.rs"]
mod baseline_kmeans;
#[path = "baselines/pagerank.rs"]
mod baseline_pagerank;
#[path = "baselines/terasort.rs"]
mod baseline_terasort;
#[path = "baselines/wordcount.rs"]
mod baseline_wordcount;
#[path = "support.rs"]
mod support;

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;

const ITERATIONS: usize = 10;
const K: usize = 8;

fn main() {
    let baseline: String = support::arg("--baseline", String::new());
    match baseline.as_str() {
        "" => {}
        "wordcount" => return baseline_wordcount::main(),
        "terasort" => return baseline_terasort::main(),
        "pagerank" => return baseline_pagerank::main(),
        "kmeans" => return baseline_kmeans::main(),
        other => panic!("no baseline {other}"),
    }
    let size: ember::config::ByteSize = support::arg("--size", "256m".parse().unwrap());
    let reps: usize = support::arg("--reps", 3);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "jobs benchmark: inputs of {size}, median of {reps}, {cores} cores; both timed as whole \
         processes: ember = mpirun -n 3 (driver + 2 executors), baseline = one process \
         (rayon, {cores} threads)"
    );
    println!(
        "{:<10} {:>8} {:>10} {:>8} {:>10} {:>8} {:>9} {:>9} {:>9} {:>6}",
        "job",
        "input MB",
        "baseline s",
        "ember s",
        "base MB/s",
        "ember MB/s",
        "base MiB",
        "ember MiB",
        "exec MiB",
        "ratio"
    );
    let only: String = support::arg("--jobs", "wordcount,terasort,pagerank,kmeans".to_string());
    let all = [
        ("wordcount", "text"),
        ("terasort", "sort"),
        ("pagerank", "graph"),
        ("kmeans", "points"),
    ];
    for (job, kind) in all
        .into_iter()
        .filter(|(j, _)| only.split(',').any(|o| o == *j))
    {
        let input = dataset(kind, size);
        let bytes: u64 = support::parts(&input)
            .iter()
            .map(|p| p.metadata().unwrap().len())
            .sum();
        let mb = bytes as f64 / 1e6;
        let ember_out = PathBuf::from(format!("/dev/shm/ember-bench-{job}.ember"));
        let base_out = PathBuf::from(format!("/dev/shm/ember-bench-{job}.baseline"));
        let mut extra: Vec<String> = Vec::new();
        match job {
            "pagerank" => extra.extend(["--iterations".into(), ITERATIONS.to_string()]),
            "kmeans" => extra.extend([
                "--k".into(),
                K.to_string(),
                "--iterations".into(),
                ITERATIONS.to_string(),
            ]),
            _ => {}
        }
        let io_args = |out: &Path| -> Vec<String> {
            let mut a: Vec<String> = ["--input", input.to_str().unwrap(), "--output"]
                .map(String::from)
                .to_vec();
            a.push(out.to_str().unwrap().to_string());
            a.extend(extra.iter().cloned());
            a
        };
        let (mut base_s, mut ember_s) = (Vec::new(), Vec::new());
        let (mut base_rss, mut ember_rss, mut exec_rss) = (0.0f64, 0.0f64, 0.0f64);
        let mut check = String::new();
        for rep in 0..reps {
            let _ = std::fs::remove_dir_all(&base_out);
            let mut cmd = Command::new(std::env::current_exe().expect("own path"));
            cmd.args(["--baseline", job]).args(io_args(&base_out));
            let run = support::process(cmd);
            base_s.push(run.seconds);
            base_rss = base_rss.max(run.max_rss_kib as f64 / 1024.0);

            let _ = std::fs::remove_dir_all(&ember_out);
            let exe = Path::new(env!("CARGO_BIN_EXE_ember")).with_file_name(job);
            let run = support::process(support::mpirun(
                3,
                exe.to_str().unwrap(),
                &io_args(&ember_out),
            ));
            ember_s.push(run.seconds);
            let line = support::peak_rss_line(&run.stderr);
            ember_rss = ember_rss.max(support::rss_sum_mib(&line));
            exec_rss = exec_rss.max(support::max_executor_rss_mib(&line));

            if rep == 0 {
                check = match job {
                    "wordcount" => check_wordcount(&ember_out, &base_out),
                    "terasort" => support::check_terasort(&ember_out, &base_out),
                    "pagerank" => check_pagerank(&ember_out, &base_out),
                    _ => check_kmeans(&ember_out, &base_out),
                };
            }
        }
        let _ = std::fs::remove_dir_all(&ember_out);
        let _ = std::fs::remove_dir_all(&base_out);
        let (b, e) = (support::median(base_s), support::median(ember_s));
        println!(
            "{job:<10} {mb:>8.0} {b:>10.2} {e:>8.2} {:>10.1} {:>8.1} {base_rss:>9.0} {ember_rss:>9.0} {exec_rss:>9.0} {:>6.2}",
            mb / b,
            mb / e,
            b / e
        );
        println!("{:<10} outputs agree: {check}", "");
    }
}

/// The data set of `kind` and `size` in /dev/shm, written by `ember datagen` if missing
/// (into a temporary directory renamed when complete, so an interrupted run is not reused).
fn dataset(kind: &str, size: ember::config::ByteSize) -> PathBuf {
    let dir = PathBuf::from(format!("/dev/shm/ember-bench-{kind}-{}", size.0));
    if !dir.exists() {
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
        cmd.args([
            "datagen",
            kind,
            "--size",
            &size.0.to_string(),
            "--output",
            tmp.to_str().unwrap(),
        ]);
        support::timed(cmd);
        std::fs::rename(&tmp, &dir).expect("publish the data set");
    }
    dir
}

/// Every line of a committed output directory, in part order.
fn lines(dir: &Path) -> Vec<String> {
    assert!(
        dir.join("_SUCCESS").exists(),
        "no _SUCCESS in {}",
        dir.display()
    );
    support::parts(dir)
        .iter()
        .flat_map(|p| {
            std::io::BufReader::new(std::fs::File::open(p).unwrap())
                .lines()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || ((a - b) / b).abs() < 1e-9
}

fn check_wordcount(ember: &Path, baseline: &Path) -> String {
    let read = |dir: &Path| -> HashMap<String, u64> {
        lines(dir)
            .into_iter()
            .map(|l| {
                let (w, n) = l.rsplit_once('\t').expect("word<TAB>count");
                (w.to_string(), n.parse().expect("count"))
            })
            .collect()
    };
    let (e, b) = (read(ember), read(baseline));
    assert!(e == b, "WordCount: ember and the baseline disagree");
    format!(
        "{} distinct words, {} words",
        e.len(),
        e.values().sum::<u64>()
    )
}

fn check_pagerank(ember: &Path, baseline: &Path) -> String {
    let read = |dir: &Path| -> HashMap<u64, f64> {
        lines(dir)
            .into_iter()
            .map(|l| {
                let (v, r) = l.split_once('\t').expect("vertex<TAB>rank");
                (v.parse().expect("vertex"), r.parse().expect("rank"))
            })
            .collect()
    };
    let (e, b) = (read(ember), read(baseline));
    assert_eq!(e.len(), b.len(), "PageRank: vertex counts differ");
    for (v, r) in &b {
        let got = e
            .get(v)
            .unwrap_or_else(|| panic!("PageRank: vertex {v} missing"));
        assert!(
            close(*got, *r),
            "PageRank: vertex {v}: ember {got}, baseline {r}"
        );
    }
    format!("{} vertices within 1e-9", e.len())
}

fn check_kmeans(ember: &Path, baseline: &Path) -> String {
    let read = |dir: &Path| -> Vec<Vec<f64>> {
        lines(dir)
            .iter()
            .map(|l| l.split(' ').map(|x| x.parse().unwrap()).collect())
            .collect()
    };
    let (e, b) = (read(ember), read(baseline));
    assert_eq!(e.len(), b.len(), "KMeans: centre counts differ");
    for (c, w) in e.iter().zip(&b) {
        assert!(
            c.len() == w.len() && c.iter().zip(w).all(|(x, y)| close(*x, *y)),
            "KMeans: ember {c:?}, baseline {w:?}"
        );
    }
    format!("{} centres within 1e-9", e.len())
}
