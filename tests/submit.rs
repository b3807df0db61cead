//! `ember submit`: the command or script it prints for each manager, requests it refuses
//! before launching, and real local and mpirun submissions.

mod common;

use std::path::Path;
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
    // The launcher of the MPI the binaries are linked against, with its own flags.
    let launch = match common::mpi_family() {
        common::MpiFamily::OpenMpi => {
            "mpirun -n 4 --bind-to none --oversubscribe -x EMBER_EXECUTOR_CORES"
        }
        common::MpiFamily::Mpich => "mpiexec.mpich -n 4 -genvlist EMBER_EXECUTOR_CORES",
    };
    assert!(
        line.contains(&format!("{launch} {} --output o", job_path("terasort"))),
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
    let launch = format!(
        "ember_launch {} --input edges --iterations 3",
        job_path("pagerank")
    );
    for line in [
        "#!/bin/bash",
        "#SBATCH --job-name=ember-pagerank",
        "#SBATCH --ntasks=8",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem-per-cpu=2048M",
        "#SBATCH --time=00:20:00",
        "#SBATCH --partition=batch",
        "#SBATCH --signal=USR1@120",
        "#SBATCH --output=ember-pagerank-%j.out",
        "export EMBER_EXECUTOR_CORES=2",
        "export EMBER_EXECUTOR_MEMORY=3221225472",
        // The launch of slurm/common.sh, as in the project's own scripts.
        "    srun) srun --mpi=pmix --kill-on-bad-exit=1 \"$exe\" \"$@\" ;;",
        "    mpirun) mpirun --oversubscribe --bind-to none \"$exe\" \"$@\" ;;",
        &launch,
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "missing {line:?} in\n{script}"
        );
    }
    assert!(script.ends_with(&format!("\n{launch}\n")), "{script}");
}

/// `ember submit --dry-run` with `args`, run in `dir`.
fn submit_in(dir: &Path, args: &[&str]) -> common::Run {
    let mut cmd = Command::new(bin("ember"));
    cmd.current_dir(dir).arg("submit").args(args);
    common::mpi_env(&mut cmd);
    run(cmd, Duration::from_secs(60))
}

#[test]
fn a_job_binary_is_submitted_by_its_path() {
    // Any job binary: here a link to the KMeans binary, named like a user's job.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::os::unix::fs::symlink(job_path("kmeans"), dir.join("myjob")).unwrap();
    let mine = dir.join("myjob").to_string_lossy().into_owned();
    let job_args = ["--input", "points", "--k", "3"];

    let local = submit_in(dir, &[&["--dry-run", "./myjob"][..], &job_args].concat());
    local.assert_ok();
    assert_eq!(local.stdout, format!("{mine} --input points --k 3\n"));

    let mpirun = submit_in(
        dir,
        &[
            &["--master", "mpirun", "--dry-run", "./myjob"][..],
            &job_args,
        ]
        .concat(),
    );
    mpirun.assert_ok();
    // (--oversubscribe is added between them on a machine of fewer than 3 cores.)
    let launch = match common::mpi_family() {
        common::MpiFamily::OpenMpi => " mpirun -n 3 --bind-to none ",
        common::MpiFamily::Mpich => "mpiexec.mpich -n 3 ",
    };
    assert!(
        mpirun.stdout.contains(launch)
            && mpirun
                .stdout
                .ends_with(&format!(" {mine} --input points --k 3\n")),
        "{mpirun:#?}"
    );

    // The script for the user's binary is the built-in job's, but for its path and name.
    let slurm = |job: &str| {
        let out = submit_in(
            dir,
            &[
                &[
                    "--master",
                    "slurm",
                    "--num-executors",
                    "3",
                    "--executor-memory",
                    "1g",
                    // Whatever Slurm may be up on this machine, its size does not matter.
                    "--overcommit",
                    "--dry-run",
                    job,
                ][..],
                &job_args,
            ]
            .concat(),
        );
        out.assert_ok();
        out.stdout
    };
    let script = slurm("./myjob");
    assert!(
        script.ends_with(&format!("\nember_launch {mine} --input points --k 3\n")),
        "{script}"
    );
    let built_in = slurm("kmeans")
        .replace(&job_path("kmeans"), &mine)
        .replace("ember-kmeans", "ember-myjob");
    assert_eq!(script, built_in);
}

#[test]
fn a_bad_job_path_is_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("notes.txt"), "not a program").unwrap();
    std::fs::create_dir(dir.join("jobs")).unwrap();
    std::fs::write(dir.join("myjob"), "#!/bin/sh\n").unwrap();
    for (job, expect) in [
        (
            "./nope",
            format!("no job binary {}/nope: no such file", dir.display()),
        ),
        (
            "./notes.txt",
            format!("job binary {}/notes.txt is not executable", dir.display()),
        ),
        (
            "./jobs",
            format!("job binary {}/jobs is a directory", dir.display()),
        ),
        (
            "myjob",
            "; for the file myjob here, write ./myjob".to_string(),
        ),
    ] {
        for master in ["local", "mpirun", "slurm"] {
            let out = submit_in(dir, &["--master", master, "--dry-run", job, "--input", "x"]);
            assert_eq!(out.status, Some(2), "{job} {master}: {out:#?}");
            assert!(out.stderr.contains(&expect), "{job} {master}: {out:#?}");
            assert!(out.stdout.is_empty(), "{job} {master}: {out:#?}");
        }
    }
}

#[test]
fn impossible_requests_are_refused_before_launching() {
    let out = submit(&["--dry-run", "wc"]);
    assert_eq!(out.status, Some(2));
    assert!(
        out.stderr
            .contains("unknown job 'wc': a built-in job (wordcount, terasort, pagerank, kmeans, groupby, join)"),
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

#[test]
fn the_job_template_runs_through_submit_and_alone() {
    let exe = common::template::binary();
    let exe = exe.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = common::template::text(3000);
    std::fs::write(dir.path().join("in.txt"), &text).unwrap();
    let input = dir.path().join("in.txt");
    let reference = common::template::lines_by_first_word(&text);

    let output = dir.path().join("out-mpirun");
    submit(&[
        "--master",
        "mpirun",
        "--num-executors",
        "2",
        exe,
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
    .assert_ok();
    common::template::assert_counts(&common::template::read_counts(&output), &reference);

    // Alone, one process (local mode), with one of its own options.
    let output = dir.path().join("out-local");
    let mut cmd = Command::new(exe);
    cmd.args(["--min-lines", "100", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output);
    run(cmd, Duration::from_secs(60)).assert_ok();
    let mut frequent = reference;
    frequent.retain(|_, n| *n >= 100);
    assert!(!frequent.is_empty());
    common::template::assert_counts(&common::template::read_counts(&output), &frequent);
}
