//! Every job against a hand-written single-process baseline on the same input, in one run:
//!
//!     cargo bench --bench jobs [-- --size 256m --reps 3 --jobs wordcount,terasort]
//!
//! Inputs are written once by `ember datagen` into /dev/shm; outputs go to /dev/shm too.
//! Baselines: WordCount = rayon + mmap with a hash map per thread; TeraSort = read +
//! par_sort_unstable + write; PageRank and KMeans = plain loops. ember runs under mpirun
//! with 3 ranks (the driver and 2 executors) on this machine's 2 cores.

#[path = "support.rs"]
mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ember::io::records::Record;
use rayon::prelude::*;

const ITERATIONS: usize = 10;
const K: usize = 8;

fn main() {
    let size: ember::config::ByteSize = support::arg("--size", "256m".parse().unwrap());
    let reps: usize = support::arg("--reps", 3);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "jobs benchmark: inputs of {size}, median of {reps}, {cores} cores, ember = 2 executors under mpirun"
    );
    println!(
        "{:<10} {:>9} {:>11} {:>9} {:>11} {:>11} {:>14} {:>7}",
        "job",
        "input MB",
        "baseline s",
        "ember s",
        "ember MB/s",
        "MB/s/core",
        "exec peak MiB",
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
        let bytes: u64 = parts(&input)
            .iter()
            .map(|p| p.metadata().unwrap().len())
            .sum();
        let mb = bytes as f64 / 1e6;
        let out = PathBuf::from(format!("/dev/shm/ember-bench-{job}.out"));
        let baseline: Vec<f64> = (0..reps)
            .map(|_| {
                let start = Instant::now();
                match job {
                    "wordcount" => wordcount(&input, &out),
                    "terasort" => terasort(&input, &out),
                    "pagerank" => pagerank(&input, &out),
                    _ => kmeans(&input, &out),
                }
                start.elapsed().as_secs_f64()
            })
            .collect();
        let _ = std::fs::remove_file(&out);
        let mut ember = Vec::new();
        let mut rss = String::new();
        for _ in 0..reps {
            let _ = std::fs::remove_dir_all(&out);
            let mut args: Vec<String> = [
                "--input",
                input.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ]
            .map(String::from)
            .to_vec();
            match job {
                "pagerank" => args.extend(["--iterations".into(), ITERATIONS.to_string()]),
                "kmeans" => args.extend([
                    "--k".into(),
                    K.to_string(),
                    "--iterations".into(),
                    ITERATIONS.to_string(),
                ]),
                _ => {}
            }
            let exe = Path::new(env!("CARGO_BIN_EXE_ember")).with_file_name(job);
            let (secs, _, stderr) =
                support::timed(support::mpirun(3, exe.to_str().unwrap(), &args));
            ember.push(secs);
            rss = support::peak_rss_line(&stderr);
        }
        let _ = std::fs::remove_dir_all(&out);
        let (b, e) = (support::median(baseline), support::median(ember));
        println!(
            "{job:<10} {mb:>9.0} {b:>11.2} {e:>9.2} {:>11.1} {:>11.1} {:>14.0} {:>7.2}",
            mb / e,
            mb / e / cores as f64,
            support::max_executor_rss_mib(&rss),
            b / e
        );
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

fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
        })
        .collect();
    v.sort();
    v
}

fn mapped(dir: &Path) -> Vec<memmap2::Mmap> {
    parts(dir)
        .iter()
        .map(|p| unsafe { memmap2::Mmap::map(&std::fs::File::open(p).unwrap()).unwrap() })
        .collect()
}

fn create(path: &Path) -> std::io::BufWriter<std::fs::File> {
    std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap())
}

/// rayon + mmap: newline-aligned chunks, a hash map per thread, merged.
fn wordcount(input: &Path, out: &Path) {
    let maps = mapped(input);
    let mut chunks: Vec<&[u8]> = Vec::new();
    for m in &maps {
        let data = &m[..];
        let mut start = 0;
        while start < data.len() {
            let mut end = (start + (4 << 20)).min(data.len());
            while end < data.len() && data[end - 1] != b'\n' {
                end += 1;
            }
            chunks.push(&data[start..end]);
            start = end;
        }
    }
    let counts = chunks
        .par_iter()
        .fold(HashMap::<&str, u64>::new, |mut acc, chunk| {
            for w in std::str::from_utf8(chunk).unwrap().split_whitespace() {
                *acc.entry(w).or_insert(0) += 1;
            }
            acc
        })
        .reduce(HashMap::new, |mut a, b| {
            for (w, n) in b {
                *a.entry(w).or_insert(0) += n;
            }
            a
        });
    let mut w = create(out);
    for (word, n) in counts {
        writeln!(w, "{word}\t{n}").unwrap();
    }
    w.flush().unwrap();
}

/// Read, par_sort_unstable, write.
fn terasort(input: &Path, out: &Path) {
    let mut records: Vec<Record> = Vec::new();
    for p in parts(input) {
        records.extend_from_slice(bytemuck::cast_slice::<u8, Record>(
            &std::fs::read(p).unwrap(),
        ));
    }
    records.par_sort_unstable_by_key(Record::packed_key);
    let mut w = create(out);
    w.write_all(bytemuck::cast_slice(&records)).unwrap();
    w.flush().unwrap();
}

/// Spark's PageRank in plain loops.
fn pagerank(input: &Path, out: &Path) {
    let mut edges: Vec<(u64, u64)> = Vec::new();
    for m in mapped(input) {
        for line in std::str::from_utf8(&m).unwrap().lines() {
            let mut it = line.split_whitespace().map(|x| x.parse::<u64>().unwrap());
            if let (Some(a), Some(b)) = (it.next(), it.next()) {
                edges.push((a, b));
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    let mut links: HashMap<u64, Vec<u64>> = HashMap::new();
    for (a, b) in edges {
        links.entry(a).or_default().push(b);
    }
    let mut ranks: HashMap<u64, f64> = links.keys().map(|&v| (v, 1.0)).collect();
    for _ in 0..ITERATIONS {
        let mut sums: HashMap<u64, f64> = HashMap::new();
        for (v, dsts) in &links {
            if let Some(r) = ranks.get(v) {
                let share = r / dsts.len() as f64;
                for d in dsts {
                    *sums.entry(*d).or_insert(0.0) += share;
                }
            }
        }
        ranks = sums
            .into_iter()
            .map(|(v, s)| (v, 0.15 + 0.85 * s))
            .collect();
    }
    let mut w = create(out);
    for (v, r) in ranks {
        writeln!(w, "{v}\t{r}").unwrap();
    }
    w.flush().unwrap();
}

/// Lloyd's algorithm in plain loops.
fn kmeans(input: &Path, out: &Path) {
    let mut points: Vec<[f64; 4]> = Vec::new();
    for m in mapped(input) {
        for line in std::str::from_utf8(&m).unwrap().lines() {
            let mut p = [0.0; 4];
            for (x, s) in p.iter_mut().zip(line.split(' ')) {
                *x = s.parse().unwrap();
            }
            points.push(p);
        }
    }
    let mut centres: Vec<[f64; 4]> = points[..K].to_vec();
    for _ in 0..ITERATIONS {
        let mut sums = vec![([0.0; 4], 0u64); K];
        for p in &points {
            let mut best = (0, f64::INFINITY);
            for (i, c) in centres.iter().enumerate() {
                let d: f64 = c.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
                if d < best.1 {
                    best = (i, d);
                }
            }
            let s = &mut sums[best.0];
            s.0.iter_mut().zip(p).for_each(|(a, b)| *a += b);
            s.1 += 1;
        }
        for (c, (s, n)) in centres.iter_mut().zip(sums) {
            if n > 0 {
                *c = s.map(|x| x / n as f64);
            }
        }
    }
    let mut w = create(out);
    for c in centres {
        writeln!(w, "{} {} {} {}", c[0], c[1], c[2], c[3]).unwrap();
    }
    w.flush().unwrap();
}
