//! `ember submit`: the command or script it prints for each manager, requests it refuses
//! before launching, and real local and mpirun submissions.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bin, run};

fn submit(args: &[&str]) -> common::Run {
    let mut cmd = Command::new(bin("ember"));
    cmd.arg("submit").args(args);
    common::mpi_env(&mut cmd);
    run(cmd, Duration::from_secs(120))
}

fn job_path(name: &str) -> String {
    std::path::Path::new(&bin("ember"))
        .parent()
        .unwrap()
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn dry_run_prints_the_local_command() {
    let out = submit(&[
        "--dry-run",
        "--executor-cores",
        "2",
        "--executor-memory",
        "1g",
        "wordcount",
        "--input",
        "a b.txt",
    ]);
    out.assert_ok();
    let expect = format!(
        "EMBER_EXECUTOR_CORES=2 EMBER_EXECUTOR_MEMORY=1073741824 {} --input 'a b.txt'\n",
        job_path("wordcount")
    );
    assert_eq!(out.stdout, expect);
}

#[test]
fn dry_run_prints_the_mpirun_command() {
    let out = submit(&[
        "--master",
        "mpirun",
        "--num-executors",
        "3",
        "--executor-cores",
        "1",
        "--dry-run",
        "terasort",
        "--output",
        "o",
    ]);
    out.assert_ok();
    let line = out.stdout.trim();
    assert!(
        line.contains(&format!(
            "mpirun -n 4 --bind-to none --oversubscribe -x EMBER_EXECUTOR_CORES {} --output o",
            job_path("terasort")
        )),
        "{line}"
    );
    assert!(line.starts_with("EMBER_EXECUTOR_CORES=1 "), "{line}");
}

#[test]
fn dry_run_prints_the_sbatch_script() {
    let out = submit(&[
        "--master",
        "slurm",
        "--num-executors",
        "7",
        "--executor-cores",
        "2",
        "--executor-memory",
        "3g",
        "--time",
        "00:20:00",
        "--partition",
        "batch",
        "--dry-run",
        "pagerank",
        "--input",
        "edges",
        "--iterations",
        "3",
    ]);
    out.assert_ok();
    let script = out.stdout;
    for line in [
        "#!/bin/bash",
        "#SBATCH --job-name=ember-pagerank",
        "#SBATCH --ntasks=8",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem-per-cpu=2048M",
        "#SBATCH --time=00:20:00",
        "#SBATCH --partition=batch",
        "#SBATCH --signal=USR1@120",
        "export EMBER_EXECUTOR_CORES=2",
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "missing {line:?} in\n{script}"
        );
    }
    let launch = format!(
        "  srun --mpi=pmix --kill-on-bad-exit=1 {} --input edges --iterations 3",
        job_path("pagerank")
    );
    assert!(script.lines().any(|l| l == launch), "{script}");
}

#[test]
fn impossible_requests_are_refused_before_launching() {
    let out = submit(&["--dry-run", "wc"]);
    assert_eq!(out.status, Some(2));
    assert!(
        out.stderr
            .contains("unknown job 'wc': one of wordcount, terasort, pagerank, kmeans"),
        "{out:#?}"
    );
    let out = submit(&[
        "--master",
        "mpirun",
        "--executor-cores",
        "4096",
        "wordcount",
    ]);
    assert_eq!(out.status, Some(2));
    assert!(
        out.stderr
            .contains("--executor-cores 4096: a node here has"),
        "{out:#?}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn local_and_mpirun_submissions_run_the_job() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "b a b\nc b\n").unwrap();
    for master in ["local", "mpirun"] {
        let output = dir.path().join(format!("out-{master}"));
        let out = submit(&[
            "--master",
            master,
            "--num-executors",
            "2",
            "wordcount",
            "--input",
            dir.path().join("in.txt").to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ]);
        out.assert_ok();
        let lines = common::reference::read_lines(&output);
        let mut lines = lines;
        lines.sort();
        assert_eq!(lines, ["a\t1", "b\t3", "c\t1"], "{master}");
    }
}
