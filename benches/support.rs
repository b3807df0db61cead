//! Shared by the benchmark binaries: launching under mpirun, medians, RSS lines.
#![allow(dead_code)]

use std::process::Command;
use std::time::Instant;

/// True inside a rank started by mpirun.
pub fn under_mpi() -> bool {
    std::env::var("OMPI_COMM_WORLD_SIZE").is_ok() || std::env::var("PMI_SIZE").is_ok()
}

/// `mpirun -n ranks program args` with the flags of this machine (root, oversubscribed,
/// binding left to ember).
pub fn mpirun(ranks: usize, program: &str, args: &[String]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args([
        "-n",
        &ranks.to_string(),
        "--oversubscribe",
        "--bind-to",
        "none",
        program,
    ])
    .args(args)
    .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
    .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    cmd
}

/// Runs `cmd`, returning (seconds, stdout, stderr); panics with its output on failure.
pub fn timed(mut cmd: Command) -> (f64, String, String) {
    let start = Instant::now();
    let out = cmd.output().expect("launch");
    let secs = start.elapsed().as_secs_f64();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "benchmark run failed:\n{so}\n{se}");
    (secs, so, se)
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// The `peak RSS per rank: ...` line a job logs at its end.
pub fn peak_rss_line(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            l.split_once("peak RSS per rank: ")
                .map(|(_, r)| r.to_string())
        })
        .unwrap_or_else(|| "not reported".into())
}

/// The largest executor figure (MiB) of a peak RSS line.
pub fn max_executor_rss_mib(line: &str) -> f64 {
    line.split(", ")
        .filter(|p| p.starts_with("executor"))
        .filter_map(|p| p.split_whitespace().nth(2)?.parse::<f64>().ok())
        .fold(0.0, f64::max)
}

/// A value of `--name V` in the arguments, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
