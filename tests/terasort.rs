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
