//! TeraSort under mpirun: the output is a sorted permutation of the input.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{bin, mpirun, run};
use ember::io::records::Record;

fn write_input(path: &Path, n: u64, seed: u64) {
    let bytes: Vec<u8> = (0..n).flat_map(|i| Record::generate(seed, i).0).collect();
    std::fs::write(path, bytes).unwrap();
}

/// Checks `dir` holds the `n` input records, ordered by key within and across parts.
fn check_sorted(dir: &Path, n: u64, seed: u64) {
    let input: Vec<u8> = (0..n).flat_map(|i| Record::generate(seed, i).0).collect();
    common::reference::assert_sorted_permutation(&input, &common::reference::read_parts(dir));
}

fn check(ranks: usize, partitions: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (n, seed) = (20_000, ranks as u64);
    let input = dir.path().join("records.bin");
    write_input(&input, n, seed);
    let output = dir.path().join("sorted");
    let out = run(
        mpirun(
            ranks,
            &bin("terasort"),
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--partitions",
                &partitions.to_string(),
                "--shuffle-round-bytes",
                "256k",
            ],
        ),
        Duration::from_secs(120),
    );
    out.assert_ok();
    check_sorted(&output, n, seed);
}

#[test]
fn terasort_sorts_with_1_rank() {
    check(1, 3);
}

#[test]
fn terasort_sorts_with_2_ranks() {
    check(2, 4);
}

#[test]
fn terasort_sorts_with_4_ranks() {
    check(4, 9);
}

#[test]
fn generated_records_sort_without_input() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("sorted");
    let out = run(
        mpirun(
            3,
            &bin("terasort"),
            &[
                "--generate-records",
                "30000",
                "--seed",
                "9",
                "--output",
                output.to_str().unwrap(),
            ],
        ),
        Duration::from_secs(120),
    );
    out.assert_ok();
    check_sorted(&output, 30_000, 9);
}

#[test]
fn an_input_that_is_not_whole_records_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ragged.bin");
    write_input(&input, 10, 1);
    let mut bytes = std::fs::read(&input).unwrap();
    bytes.extend_from_slice(b"extra");
    std::fs::write(&input, bytes).unwrap();
    let output = dir.path().join("out");
    let out = run(
        mpirun(
            2,
            &bin("terasort"),
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
            ],
        ),
        Duration::from_secs(60),
    );
    assert!(!out.timed_out && out.status != Some(0), "{out:#?}");
    let msg = format!(
        "{}: length 1005 is not a multiple of the record length 100",
        input.display()
    );
    assert!(out.stderr.contains(&msg), "{out:#?}");
    assert!(!output.exists());
}

#[test]
fn rma_without_windows_falls_back_to_alltoallv_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.bin");
    write_input(&input, 5000, 4);
    let output = dir.path().join("sorted");
    let mut cmd = mpirun(
        3,
        &bin("terasort"),
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--shuffle-mode",
            "rma",
        ],
    );
    cmd.env("EMBER_TEST_RMA_FAIL", "1");
    let out = run(cmd, Duration::from_secs(60));
    out.assert_ok();
    assert!(
        out.stderr
            .contains("no RMA window (windows disabled by EMBER_TEST_RMA_FAIL): using alltoallv"),
        "{out:#?}"
    );
    check_sorted(&output, 5000, 4);
}

/// Files left in `dir` (recursively).
fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_in(&path));
        }
        found.push(path);
    }
    found
}

#[test]
fn a_sort_of_many_times_the_memory_budget_spills_and_stays_right() {
    // 30 MB of records through executors of 2 MiB each, with their scratch directory in
    // memory (tmpfs, as the default /dev/shm): map tasks spill sorted buckets, shuffle
    // files go to the spill directory on disk, reduce tasks merge runs.
    let dir = tempfile::tempdir().unwrap();
    let (n, seed) = (300_000, 9);
    let input = dir.path().join("records.bin");
    write_input(&input, n, seed);
    for ranks in [2, 4] {
        let scratch = tempfile::tempdir_in("/dev/shm").unwrap();
        let spill = dir.path().join(format!("spill-{ranks}"));
        std::fs::create_dir(&spill).unwrap();
        let output = dir.path().join(format!("sorted-{ranks}"));
        let mut cmd = mpirun(
            ranks,
            &bin("terasort"),
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--partitions",
                "6",
                "--executor-memory",
                "2m",
            ],
        );
        cmd.env("EMBER_LOCAL_DIR", scratch.path())
            .env("EMBER_SPILL_DIR", &spill);
        let out = run(cmd, Duration::from_secs(120));
        out.assert_ok();
        check_sorted(&output, n, seed);
        let map_stage = out
            .stderr
            .lines()
            .find(|l| l.contains("shuffle map stage"))
            .unwrap_or_else(|| panic!("{out:#?}"));
        assert!(
            map_stage.contains(", spilled ") && map_stage.contains("memory peak"),
            "{map_stage}"
        );
        assert_eq!(files_in(&spill), Vec::<std::path::PathBuf>::new());
        assert_eq!(files_in(scratch.path()), Vec::<std::path::PathBuf>::new());
    }
}

#[test]
fn a_record_larger_than_the_memory_budget_is_an_error_on_every_rank() {
    let out = run(
        mpirun(
            3,
            &bin("terasort"),
            &["--generate-records", "1000", "--executor-memory", "64"],
        ),
        Duration::from_secs(60),
    );
    assert!(!out.timed_out, "{out:#?}");
    assert_ne!(out.status, Some(0), "{out:#?}");
    let said = "a record of 10";
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("[driver 0] failed") && l.contains(said))
        .unwrap_or_else(|| panic!("{out:#?}"));
    assert!(
        line.contains(
            "is larger than the executor memory budget (64 bytes); raise --executor-memory"
        ),
        "{line}"
    );
}
