//! Every job against a hand-written baseline on the same input files, in one run, both
//! timed as whole processes:
//!
//!     cargo bench --bench jobs [-- --size 256m --reps 3 --jobs wordcount,terasort]
//!
//! Jobs: wordcount, wordcount-readme (the README's `flat_map` → `reduce_by_key` program,
//! the example `wordcount-readme`; `jobs/wordcount.rs` is written the same way),
//! wc-combine (WordCount combined by hand in `map_partitions`, the example
//! `wordcount-combined`: what a hand-written combine still gains), terasort, pagerank, kmeans, groupby (uniform keys), join (uniform
//! fact keys) and join-zipf (Zipf s = 1.1 fact keys: the top key holds about a tenth of
//! the facts); the joins' dimension holds every key once (`ember datagen kv-dim`), its
//! bytes counted in the input.
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
//! `peak RSS per rank` log line); ratio = ember MB/s / baseline MB/s. A first pair of runs,
//! untimed, has its two outputs compared (WordCount: every count; TeraSort: every byte,
//! and order; PageRank and KMeans: every value within 1e-9 relative; group-by: every sum;
//! join: every row) and the bench stops if they differ. The timed runs then alternate
//! baseline and ember, each output deleted right after its run.

// Each baseline is a standalone program with its own copy of baselines/common.rs.
#![allow(clippy::duplicate_mod)]

#[path = "baselines/groupby.rs"]
mod baseline_groupby;
#[path = "baselines/join.rs"]
mod baseline_join;
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
        "groupby" => return baseline_groupby::main(),
        "join" => return baseline_join::main(),
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
    support::report_launcher_start_up();
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
    let only: String = support::arg(
        "--jobs",
        "wordcount,wc-readme,wc-combine,terasort,pagerank,kmeans,groupby,join,join-zipf"
            .to_string(),
    );
    // (name, job binary, data set kind)
    let all = [
        ("wordcount", "wordcount", "text"),
        ("wc-readme", "examples/wordcount-readme", "text"),
        ("wc-combine", "examples/wordcount-combined", "text"),
        ("terasort", "terasort", "sort"),
        ("pagerank", "pagerank", "graph"),
        ("kmeans", "kmeans", "points"),
        ("groupby", "groupby", "kv"),
        ("join", "join", "kv"),
        ("join-zipf", "join", "kv-zipf"),
    ];
    for (name, job, kind) in all
        .into_iter()
        .filter(|(n, _, _)| only.split(',').any(|o| o == *n))
    {
        if let Some(example) = job.strip_prefix("examples/") {
            build_example(example);
        }
        let input = dataset(kind, size);
        // A join's dimension: every key of the facts' range once.
        // The baseline of a job: a WordCount program's is WordCount's.
        let base = job.rsplit('/').next().unwrap_or(job);
        let base = if base.starts_with("wordcount") {
            "wordcount"
        } else {
            base
        };
        let dim = (job == "join").then(|| {
            let kind = <ember::datagen::Kind as clap::ValueEnum>::from_str(kind, true).unwrap();
            let facts = kind.records_for(size.0, 1);
            dataset_of_records("kv-dim", ember::datagen::kv_keys(facts))
        });
        let bytes: u64 = [Some(&input), dim.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|dir| support::parts(dir))
            .map(|p| p.metadata().unwrap().len())
            .sum();
        let mb = bytes as f64 / 1e6;
        let ember_out = PathBuf::from(format!("/dev/shm/ember-bench-{name}.ember"));
        let base_out = PathBuf::from(format!("/dev/shm/ember-bench-{name}.baseline"));
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
            let mut a: Vec<String> = match &dim {
                Some(dim) => [
                    "--fact",
                    input.to_str().unwrap(),
                    "--dim",
                    dim.to_str().unwrap(),
                ]
                .map(String::from)
                .to_vec(),
                None => vec!["--input".into(), input.to_str().unwrap().into()],
            };
            a.push("--output".into());
            a.push(out.to_str().unwrap().to_string());
            a.extend(extra.iter().cloned());
            a
        };
        let run_base = || {
            let _ = std::fs::remove_dir_all(&base_out);
            let mut cmd = Command::new(std::env::current_exe().expect("own path"));
            cmd.args(["--baseline", base]).args(io_args(&base_out));
            // This binary links ember, so the baseline runs on ember's allocator
            // (mimalloc): give it the purge delay an ember executor with room runs with
            // (src/memory/allocator.rs), or it faults in freed pages again (measured on
            // the group-by baseline: 1.8-5.2 s of system time against 1.1 s).
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
                let delay = ember::memory::allocator::RELAXED_PURGE_DELAY_MS;
                cmd.env("MIMALLOC_PURGE_DELAY", delay.to_string());
            }
            support::process(cmd)
        };
        let run_ember = || {
            let _ = std::fs::remove_dir_all(&ember_out);
            let exe = Path::new(env!("CARGO_BIN_EXE_ember")).with_file_name(job);
            support::process(support::mpirun(
                3,
                exe.to_str().unwrap(),
                &io_args(&ember_out),
            ))
        };
        // A first pair, untimed, whose outputs are compared.
        run_base();
        run_ember();
        let check = match base {
            "wordcount" => check_wordcount(&ember_out, &base_out),
            "terasort" => support::check_terasort(&ember_out, &base_out),
            "pagerank" => check_pagerank(&ember_out, &base_out),
            "groupby" => check_groupby(&ember_out, &base_out),
            "join" => check_join(&ember_out, &base_out),
            _ => check_kmeans(&ember_out, &base_out),
        };
        let _ = std::fs::remove_dir_all(&ember_out);
        let _ = std::fs::remove_dir_all(&base_out);
        // Timed pairs, each output deleted right after its run: neither program runs with
        // the other's output in memory (kept, it slowed the next program's writes into
        // /dev/shm here: `dd` of 1 GB right after the TeraSort baseline 1.6-2.2 s with
        // its output kept, 0.4-0.6 s with it deleted).
        let (mut base_s, mut ember_s) = (Vec::new(), Vec::new());
        let (mut base_rss, mut ember_rss, mut exec_rss) = (0.0f64, 0.0f64, 0.0f64);
        for _ in 0..reps {
            let run = run_base();
            let _ = std::fs::remove_dir_all(&base_out);
            base_s.push(run.seconds);
            base_rss = base_rss.max(run.max_rss_kib as f64 / 1024.0);

            let run = run_ember();
            let _ = std::fs::remove_dir_all(&ember_out);
            ember_s.push(run.seconds);
            let line = support::peak_rss_line(&run.stderr);
            ember_rss = ember_rss.max(support::rss_sum_mib(&line));
            exec_rss = exec_rss.max(support::max_executor_rss_mib(&line));
        }
        let (b, e) = (support::median(base_s), support::median(ember_s));
        println!(
            "{name:<10} {mb:>8.0} {b:>10.2} {e:>8.2} {:>10.1} {:>8.1} {base_rss:>9.0} {ember_rss:>9.0} {exec_rss:>9.0} {:>6.2}",
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
    generated(kind, &format!("{}", size.0), "--size")
}

/// Like [`dataset`], of exactly `records` records.
fn dataset_of_records(kind: &str, records: u64) -> PathBuf {
    generated(kind, &format!("{records}r"), "--records")
}

fn generated(kind: &str, amount: &str, flag: &str) -> PathBuf {
    let dir = PathBuf::from(format!("/dev/shm/ember-bench-{kind}-{amount}"));
    if !dir.exists() {
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
        cmd.args([
            "datagen",
            kind,
            flag,
            amount.trim_end_matches('r'),
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
    let mut all = Vec::new();
    for_each_line(dir, |l| all.push(l.to_string()));
    all
}

/// `f` of every line of a committed output directory, in part order, one line held at a
/// time (the join's 70 M rows as `String`s would take gigabytes).
fn for_each_line(dir: &Path, mut f: impl FnMut(&str)) {
    assert!(
        dir.join("_SUCCESS").exists(),
        "no _SUCCESS in {}",
        dir.display()
    );
    let mut line = String::new();
    for p in support::parts(dir) {
        let mut reader = std::io::BufReader::new(std::fs::File::open(p).unwrap());
        line.clear();
        while reader.read_line(&mut line).unwrap() > 0 {
            f(line.strip_suffix('\n').unwrap_or(&line));
            line.clear();
        }
    }
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

fn check_groupby(ember: &Path, baseline: &Path) -> String {
    let read = |dir: &Path| -> HashMap<i64, i128> {
        lines(dir)
            .into_iter()
            .map(|l| {
                let (k, s) = l.split_once('\t').expect("key<TAB>sum");
                (k.parse().expect("key"), s.parse().expect("sum"))
            })
            .collect()
    };
    let (e, b) = (read(ember), read(baseline));
    assert!(e == b, "group-by: ember and the baseline disagree");
    format!("{} keys, every sum", e.len())
}

fn check_join(ember: &Path, baseline: &Path) -> String {
    let read = |dir: &Path| -> Vec<(i64, i64, i64)> {
        let mut rows: Vec<(i64, i64, i64)> = Vec::new();
        for_each_line(dir, |l| {
            let mut f = l.split('\t').map(|x| x.parse::<i64>().expect("integer"));
            rows.push((f.next().unwrap(), f.next().unwrap(), f.next().unwrap()));
            assert!(f.next().is_none(), "key<TAB>fact<TAB>dim: {l}");
        });
        rows.sort_unstable();
        rows
    };
    let (e, b) = (read(ember), read(baseline));
    assert_eq!(e.len(), b.len(), "join: row counts differ");
    assert!(e == b, "join: ember and the baseline disagree");
    format!("{} joined rows, every row", e.len())
}

/// Builds the example `name` as it is now: `cargo bench` builds the job binaries a bench
/// names (`CARGO_BIN_EXE_*`) but not examples, so a job run from an example binary was
/// whatever an earlier `cargo build --examples` left (measured once: the README's
/// WordCount from a binary two hours older than the code).
fn build_example(name: &str) {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the example {name} failed");
}
