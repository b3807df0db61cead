//! ember under a real Slurm: the sbatch scripts of slurm/, `ember submit --master slurm`,
//! and a job stopped by its time limit. Brings a one-node Slurm up with
//! slurm/local-cluster.sh and takes it down at the end; skipped, saying why, only when
//! Slurm cannot be installed here.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::reference::{
    assert_centres, assert_ranks, assert_sorted_permutation, kmeans_reference, pagerank_reference,
    parse_ranks, random_graph, read_lines, read_parts, write_points,
};
use common::{bin, run};

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cluster(action: &str) -> common::Run {
    let mut cmd = Command::new("bash");
    cmd.arg(project().join("slurm/local-cluster.sh"))
        .arg(action);
    run(cmd, Duration::from_secs(300))
}

/// The README's `sbatch SCRIPT ARGS` from the project root, as a user types it (no
/// --overcommit, the script's own task count), with --wait, the job's output file in
/// `dir` and the job binaries of this build.
fn sbatch(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> common::Run {
    let mut cmd = Command::new("sbatch");
    cmd.current_dir(project())
        .arg("--wait")
        .arg(format!("--output={}/slurm-%j.out", dir.display()))
        .args(args)
        .env("EMBER_BIN", Path::new(&bin("ember")).parent().unwrap())
        .env("EMBER_LOCAL_DIR", dir.join("scratch"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    std::fs::create_dir_all(dir.join("scratch")).unwrap();
    run_sbatch(cmd, Duration::from_secs(240))
}

/// Runs an `sbatch --wait` command like [`run`], but fails at once, with Slurm's reason,
/// when the job can never start: a request larger than every node of the partition pends
/// forever (reason `PartitionConfig`) instead of failing.
fn run_sbatch(cmd: Command, timeout: Duration) -> common::Run {
    let start = std::time::Instant::now();
    let (mut child, lines, out, err) = common::spawn_streaming(cmd);
    // sbatch prints `Submitted batch job N` as soon as the job is queued.
    let job = lines
        .recv_timeout(Duration::from_secs(60))
        .ok()
        .and_then(|l| l.strip_prefix("Submitted batch job ").map(str::to_owned));
    while let (Some(job), Ok(None)) = (&job, child.try_wait()) {
        if start.elapsed() > timeout {
            scancel(job);
            break;
        }
        let squeue = Command::new("squeue")
            .args(["-h", "-j", job, "-o", "%T %r"])
            .output();
        let state = squeue
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let never = [
            "PartitionConfig",
            "PartitionNodeLimit",
            "PartitionTimeLimit",
        ];
        if state.starts_with("PENDING") && never.iter().any(|r| state.ends_with(r)) {
            scancel(job);
            common::kill_group(&child);
            panic!(
                "Slurm job {job} can never start: {state} (the request is larger than the \
                 local cluster's node: {})",
                sinfo_node()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    common::wait(child, out, err, timeout.saturating_sub(start.elapsed()))
}

fn scancel(job: &str) {
    let _ = Command::new("scancel").arg(job).status();
}

/// The node as Slurm sees it: CPUs and memory.
fn sinfo_node() -> String {
    Command::new("sinfo")
        .args(["-h", "-N", "-o", "%N CPUs=%c memory=%m MB"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The job's output file (sbatch --output) for a finished run.
fn job_log(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("slurm-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

fn word_counts(text: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for w in text.split_whitespace() {
        *m.entry(w.to_string()).or_insert(0) += 1;
    }
    m
}

fn parse_counts(lines: &[String]) -> HashMap<String, u64> {
    lines
        .iter()
        .map(|l| {
            let (w, n) = l.rsplit_once('\t').unwrap();
            (w.to_string(), n.parse().unwrap())
        })
        .collect()
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn jobs_run_under_a_real_slurm() {
    if common::mpi_family() == common::MpiFamily::Mpich {
        common::skip(
            "slurm",
            "slurm/common.sh and `ember submit --master slurm` launch with srun --mpi=pmix \
             (OpenMPI's PMIx) or OpenMPI's mpirun; Debian's MPICH speaks neither",
        );
        return;
    }
    let munged_before = munged_running();
    let up = cluster("up");
    // slurm/local-cluster.sh exits 3 exactly when the packages cannot be installed here;
    // anything else that is not success (installed but not up, a timeout) fails the test.
    if up.status == Some(3) && !up.timed_out {
        let reason = up
            .stderr
            .lines()
            .rfind(|l| l.contains("cannot install"))
            .unwrap_or("Slurm cannot be installed on this machine")
            .trim_start_matches("local-cluster: ");
        common::skip("slurm", reason);
        return;
    }
    assert!(up.success(), "Slurm did not come up: {up:#?}");
    let root = tempfile::tempdir().unwrap();
    let result = std::panic::catch_unwind(|| scenarios(root.path()));
    let down = cluster("down");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(down.success(), "{down:#?}");
    // What `up` started, `down` stops: a munged left running outlives the test.
    if !munged_before {
        assert!(
            !munged_running(),
            "`down` left the munged `up` started running"
        );
    }
}

/// Whether a munged runs on this machine.
fn munged_running() -> bool {
    Command::new("pgrep")
        .args(["-x", "munged"])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn scenarios(root: &Path) {
    // WordCount by its sbatch script.
    let dir = root.join("wordcount");
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = (0..3000)
        .map(|i| format!("w{} x{} common\tend\n", i % 101, i % 7))
        .collect();
    std::fs::write(dir.join("in.txt"), &text).unwrap();
    let out = sbatch(
        &dir,
        &[
            "slurm/wordcount.sbatch",
            dir.join("in.txt").to_str().unwrap(),
            dir.join("out").to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.success(), "{out:#?}\n{}", job_log(&dir));
    assert_eq!(
        parse_counts(&read_lines(&dir.join("out"))),
        word_counts(&text)
    );
    assert!(job_log(&dir).contains("via srun"), "{}", job_log(&dir));
    assert!(empty(&dir.join("scratch")), "scratch files left behind");

    // TeraSort.
    let dir = root.join("terasort");
    std::fs::create_dir_all(&dir).unwrap();
    let n = 20_000u64;
    let input: Vec<u8> = (0..n)
        .flat_map(|i| ember::io::records::Record::generate(5, i).0)
        .collect();
    std::fs::write(dir.join("in.bin"), &input).unwrap();
    let out = sbatch(
        &dir,
        &[
            "slurm/terasort.sbatch",
            dir.join("in.bin").to_str().unwrap(),
            dir.join("out").to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.success(), "{out:#?}\n{}", job_log(&dir));
    assert_sorted_permutation(&input, &read_parts(&dir.join("out")));

    // PageRank.
    let dir = root.join("pagerank");
    std::fs::create_dir_all(&dir).unwrap();
    let edges = random_graph(&dir.join("edges.txt"), 200, 1500, 3);
    let out = sbatch(
        &dir,
        &[
            "slurm/pagerank.sbatch",
            dir.join("edges.txt").to_str().unwrap(),
            dir.join("out").to_str().unwrap(),
            "5",
        ],
        &[],
    );
    assert!(out.success(), "{out:#?}\n{}", job_log(&dir));
    assert_ranks(
        &parse_ranks(&read_lines(&dir.join("out"))),
        &pagerank_reference(&edges, 5),
    );

    // KMeans.
    let dir = root.join("kmeans");
    std::fs::create_dir_all(&dir).unwrap();
    let points = write_points(&dir.join("points.txt"), 2000, 8);
    let out = sbatch(
        &dir,
        &[
            "slurm/kmeans.sbatch",
            dir.join("points.txt").to_str().unwrap(),
            dir.join("out").to_str().unwrap(),
            "4",
            "5",
        ],
        &[],
    );
    assert!(out.success(), "{out:#?}\n{}", job_log(&dir));
    assert_centres(
        &read_lines(&dir.join("out")),
        &kmeans_reference(&points, 4, 5),
    );

    // Group-by and join, by their sbatch scripts; key 3 in a third of the facts.
    let dir = root.join("keyvalue");
    std::fs::create_dir_all(&dir).unwrap();
    let facts: Vec<(i64, i64)> = (0..3000)
        .map(|i| (if i % 3 == 0 { 3 } else { i % 50 }, i * 7 - 9000))
        .collect();
    let lines: String = facts.iter().map(|(k, v)| format!("{k},{v}\n")).collect();
    std::fs::write(dir.join("facts.txt"), lines).unwrap();
    let dim: Vec<(i64, i64)> = (0..40).map(|k| (k, -k)).collect();
    let lines: String = dim.iter().map(|(k, v)| format!("{k},{v}\n")).collect();
    std::fs::write(dir.join("dim.txt"), lines).unwrap();
    let facts_path = dir.join("facts.txt");
    let out = sbatch(
        &dir,
        &[
            "slurm/groupby.sbatch",
            facts_path.to_str().unwrap(),
            dir.join("sums").to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.success(), "{out:#?}\n{}", job_log(&dir));
    let mut want: HashMap<i64, i64> = HashMap::new();
    for (k, v) in &facts {
        *want.entry(*k).or_insert(0) += v;
    }
    let got: HashMap<i64, i64> = read_lines(&dir.join("sums"))
        .iter()
        .map(|l| {
            let (k, s) = l.split_once('\t').unwrap();
            (k.parse().unwrap(), s.parse().unwrap())
        })
        .collect();
    assert_eq!(got, want);
    let out = sbatch(
        &dir,
        &[
            "slurm/join.sbatch",
            facts_path.to_str().unwrap(),
            dir.join("dim.txt").to_str().unwrap(),
            dir.join("joined").to_str().unwrap(),
            "6",
        ],
        &[],
    );
    assert!(out.success(), "{out:#?}\n{}", job_log(&dir));
    let mut want: Vec<String> = facts
        .iter()
        .filter(|(k, _)| *k < 40)
        .map(|(k, v)| format!("{k}\t{v}\t{}", -k))
        .collect();
    let mut got = read_lines(&dir.join("joined"));
    want.sort();
    got.sort();
    assert_eq!(got, want);

    // The same WordCount through `ember submit --master slurm`.
    let dir = root.join("submit");
    std::fs::create_dir_all(dir.join("scratch")).unwrap();
    std::fs::write(dir.join("in.txt"), &text).unwrap();
    let mut cmd = Command::new(bin("ember"));
    cmd.current_dir(&dir)
        .args([
            "submit",
            "--master",
            "slurm",
            "--num-executors",
            "3",
            "--wait",
            "--time",
            "00:10:00",
        ])
        .args([
            "wordcount",
            "--input",
            dir.join("in.txt").to_str().unwrap(),
            "--output",
            dir.join("out").to_str().unwrap(),
        ])
        .env("EMBER_LOCAL_DIR", dir.join("scratch"));
    let out = run_sbatch(cmd, Duration::from_secs(240));
    assert!(out.success(), "{out:#?}");
    assert!(dir.join("ember-wordcount.sbatch").exists());
    assert_eq!(
        parse_counts(&read_lines(&dir.join("out"))),
        word_counts(&text)
    );

    // A request larger than the partition would pend forever: `ember submit` refuses it.
    let mut cmd = Command::new(bin("ember"));
    cmd.args(["submit", "--master", "slurm", "--num-executors", "1000"])
        .args(["--dry-run", "wordcount"]);
    let out = run(cmd, Duration::from_secs(60));
    assert_eq!(out.status, Some(2), "{out:#?}");
    assert!(
        out.stderr
            .contains("1001 tasks (the driver and 1000 executors) of 1 CPU(s) need 1001 CPUs")
            && out.stderr.contains("the job would pend forever"),
        "{out:#?}"
    );

    // The job template of examples/template, built as a user builds it, submitted by
    // its path through `ember submit --master slurm`.
    let dir = root.join("template");
    std::fs::create_dir_all(dir.join("scratch")).unwrap();
    let text = common::template::text(2000);
    std::fs::write(dir.join("in.txt"), &text).unwrap();
    let exe = common::template::binary();
    let mut cmd = Command::new(bin("ember"));
    cmd.current_dir(&dir)
        .args(["submit", "--master", "slurm", "--num-executors", "2"])
        .args(["--wait", "--time", "00:10:00"])
        .arg(&exe)
        .arg("--input")
        .arg(dir.join("in.txt"))
        .arg("--output")
        .arg(dir.join("out"))
        .env("EMBER_LOCAL_DIR", dir.join("scratch"));
    let out = run_sbatch(cmd, Duration::from_secs(240));
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("ember-firstwords-")
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(out.success(), "{out:#?}\n{log}");
    common::template::assert_counts(
        &common::template::read_counts(&dir.join("out")),
        &common::template::lines_by_first_word(&text),
    );
    assert!(
        log.contains("ember: firstwords on 3 tasks (1 driver + executors) via srun"),
        "{log}"
    );
    assert!(empty(&dir.join("scratch")), "scratch files left behind");

    // A job that reaches its time limit: Slurm signals it, ember stops cleanly. The
    // signal is the one every sbatch script of slurm/ asks for.
    for script in [
        "wordcount",
        "terasort",
        "pagerank",
        "kmeans",
        "groupby",
        "join",
    ] {
        let text =
            std::fs::read_to_string(project().join(format!("slurm/{script}.sbatch"))).unwrap();
        assert!(
            text.lines()
                .any(|l| l.starts_with("#SBATCH --signal=USR1@")),
            "slurm/{script}.sbatch does not ask for SIGUSR1 before the limit"
        );
    }
    let dir = root.join("timelimit");
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("out");
    let script = dir.join("long.sbatch");
    let body = format!(
        "#!/bin/bash\nsource \"$EMBER_HOME/slurm/common.sh\"\nember_launch wordcount --generate-lines 4000000000 --output {}\n",
        output.display()
    );
    std::fs::write(&script, body).unwrap();
    let mut cmd = Command::new("sbatch");
    cmd.current_dir(project())
        // Slurm checks limits every 30 s and may signal up to a minute before the time
        // asked: with a 2 min limit and 60 s lead the signal comes 30-60 s in, after
        // start-up (with a 1 min limit it came during start-up under load).
        .args(["--wait", "--ntasks=3", "--time=2", "--signal=USR1@60"])
        .arg(format!("--output={}/slurm-%j.out", dir.display()))
        .arg(&script)
        .env("EMBER_HOME", project())
        .env("EMBER_BIN", Path::new(&bin("ember")).parent().unwrap())
        .env("EMBER_LOCAL_DIR", dir.join("scratch"));
    std::fs::create_dir_all(dir.join("scratch")).unwrap();
    let out = run(cmd, Duration::from_secs(180));
    assert!(!out.timed_out, "{out:#?}");
    assert_ne!(
        out.status,
        Some(0),
        "a job stopped by its time limit fails: {out:#?}"
    );
    // The path the sbatch scripts configure (`#SBATCH --signal=USR1@...`): Slurm's early
    // SIGUSR1 stops the job, not the SIGTERM at the limit itself.
    let log = job_log(&dir);
    assert!(
        log.contains("ember: [driver 0] failed: stopped by SIGUSR1: the job's time limit is near"),
        "the job was not stopped by the pre-limit SIGUSR1: {log}"
    );
    assert!(!log.contains("stopped by SIGTERM"), "{log}");
    assert!(!output.join("_SUCCESS").exists(), "no committed output");
    assert!(
        !output.join("_temporary").exists(),
        "no uncommitted parts left"
    );
    assert!(empty(&dir.join("scratch")), "scratch files left behind");
}
