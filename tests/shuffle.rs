//! The shuffle under mpirun: rounds, scratch cleanup, corrupt and truncated data.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{bin, mpirun, run};

fn words_file(dir: &Path, lines: usize) -> std::path::PathBuf {
    let path = dir.join("words.txt");
    let text: String = (0..lines)
        .map(|i| format!("w{} w{} w{} common\n", i % 5000, (i * 7) % 3001, i))
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn with_local_dir(mut cmd: Command, dir: &Path) -> Command {
    cmd.env("EMBER_LOCAL_DIR", dir);
    cmd
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn data_many_times_the_round_size_moves_in_many_rounds_and_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let input = words_file(dir.path(), 60_000); // ~1.5 MB of text, ~0.9 MB shuffled
    let output = dir.path().join("out");
    let cmd = mpirun(
        4,
        &bin("wordcount"),
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--partitions",
            "6",
            "--shuffle-round-bytes",
            "16k",
            "--shuffle-mode",
            "alltoallv",
        ],
    );
    let out = run(
        with_local_dir(cmd, scratch.path()),
        Duration::from_secs(120),
    );
    out.assert_ok();
    let rounds: u64 = out
        .stderr
        .lines()
        .find_map(|l| {
            l.split(" round(s)")
                .next()?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no exchange line: {}", out.stderr));
    assert!(rounds >= 10, "expected many rounds, got {rounds}");
    // Every word with its count, against a sequential count of the same text.
    let mut want = std::collections::HashMap::new();
    for w in std::fs::read_to_string(&input).unwrap().split_whitespace() {
        *want.entry(w.to_string()).or_insert(0u64) += 1;
    }
    let mut got = std::collections::HashMap::new();
    for line in common::reference::read_lines(&output) {
        let (w, n) = line.rsplit_once('\t').unwrap();
        assert!(
            got.insert(w.to_string(), n.parse::<u64>().unwrap())
                .is_none(),
            "{w} twice"
        );
    }
    assert_eq!(got.len(), 60_001, "distinct words");
    assert!(got == want, "counts differ from the sequential count");
    assert!(
        leftovers(scratch.path()).is_empty(),
        "left behind: {:?}",
        leftovers(scratch.path())
    );
}

#[test]
fn a_failed_job_leaves_no_scratch_files() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let ops = common::example("operators");
    let cmd = mpirun(
        4,
        &ops,
        &[
            "--fail",
            "panic-always",
            "--scratch",
            dir.path().to_str().unwrap(),
        ],
    );
    let mut cmd = with_local_dir(cmd, scratch.path());
    // mpirun follows its SIGTERM with a SIGKILL after 1 s by default (here 3 s), which on
    // a loaded machine can land before a rank has removed its directory; what is tested
    // here is ember's clean-up on SIGTERM.
    cmd.env("OMPI_MCA_odls_base_sigkill_timeout", "3");
    let out = run(cmd, Duration::from_secs(60));
    assert_ne!(out.status, Some(0));
    assert!(!out.timed_out);
    if common::mpi_family() == common::MpiFamily::Mpich {
        // MPICH's hydra ends the other ranks with SIGKILL, not SIGTERM: what they leave
        // is removed by the next ember process on the node, as a dead owner's scratch.
        assert!(out.stderr.contains("ember: [driver 0] failed:"), "{out:#?}");
        let next = mpirun(2, &bin("ember"), &["info"]);
        run(
            with_local_dir(next, scratch.path()),
            Duration::from_secs(60),
        )
        .assert_ok();
    }
    // The ranks mpirun terminated remove their directories on SIGTERM.
    let start = std::time::Instant::now();
    while !leftovers(scratch.path()).is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        leftovers(scratch.path()).is_empty(),
        "left behind: {:?}",
        leftovers(scratch.path())
    );
}

fn expect_corruption(fault: &str, mode: &str, message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let input = words_file(dir.path(), 2000);
    let output = dir.path().join("out");
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--partitions",
        "6",
        "--shuffle-mode",
        mode,
        // Several data rounds, so a fault can strike in round 1 of many.
        "--shuffle-round-bytes",
        "2k",
    ];
    let mut cmd = mpirun(4, &bin("wordcount"), &args);
    cmd.env("EMBER_TEST_SHUFFLE_FAULT", fault);
    let out = run(with_local_dir(cmd, scratch.path()), Duration::from_secs(60));
    assert!(!out.timed_out, "hung: {out:#?}");
    assert_ne!(out.status, Some(0), "{out:#?}");
    assert!(
        out.stderr.contains("ember: [driver 0] failed:") && out.stderr.contains(message),
        "{out:#?}"
    );
    assert!(!output.exists(), "no output from a failed job");
}

#[test]
fn corrupt_shuffle_data_is_an_error_naming_shuffle_and_source() {
    for mode in ["alltoallv", "auto"] {
        expect_corruption(
            "corrupt:2",
            mode,
            "shuffle 0: corrupt data from executor 2: record at byte 0",
        );
    }
}

#[test]
fn truncated_shuffle_data_is_an_error_naming_shuffle_and_source() {
    // Only bytes that cross MPI can arrive short.
    expect_corruption(
        "truncate:3",
        "alltoallv",
        "shuffle 0: corrupt data from executor 3: truncated:",
    );
}

#[test]
fn a_failure_on_one_executor_at_any_exchange_step_ends_the_job_on_every_rank() {
    // Executor 2 fails at one step; the others must not wait for it in the next
    // collective: every rank ends, non-zero, within the limit, with executor 2's message.
    for (fault, mode, step) in [
        ("fail-prepare:2", "alltoallv", "before the metadata step"),
        ("fail:2", "alltoallv", "after the metadata step"),
        ("fail-round:2", "alltoallv", "in data round 1"),
        ("fail:2", "rma", "after the metadata step"),
        ("fail-window:2", "rma", "filling its window"),
    ] {
        if let (true, Some(why)) = (
            fault.starts_with("fail-window"),
            common::library::windows_unusable(),
        ) {
            // Nobody makes a window here, so no window is filled and no fault fires.
            common::skip("shuffle, a failure filling a window", &why);
            continue;
        }
        let started = std::time::Instant::now();
        expect_corruption(fault, mode, &format!("shuffle 0: executor 2 failed {step}"));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{fault} in {mode}: the job took {:?} to end",
            started.elapsed()
        );
    }
}

#[test]
fn a_full_local_dir_is_one_clean_error_not_retried() {
    // A 512 KiB tmpfs as the local dir; the shuffle of ~6 MB of words cannot fit.
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny");
    std::fs::create_dir(&tiny).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&tiny)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        common::skip("full-local-dir", "cannot mount a small tmpfs (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&tiny);
    let input = words_file(dir.path(), 150_000);
    let output = dir.path().join("out");
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--partitions",
        "4",
        "--shuffle-mode",
        "alltoallv",
    ];
    let out = run(
        with_local_dir(mpirun(3, &bin("wordcount"), &args), &tiny),
        Duration::from_secs(60),
    );
    assert!(!out.timed_out, "hung: {out:#?}");
    assert_ne!(out.status, Some(0), "{out:#?}");
    assert!(
        out.stderr.contains("ember: [driver 0] failed:")
            && out.stderr.contains("No space left on device"),
        "{out:#?}"
    );
    assert!(
        !out.stderr.contains("attempt 2"),
        "a full disk is not retried: {}",
        out.stderr
    );
    assert!(!output.exists(), "no output from a failed job");
}
