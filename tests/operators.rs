//! Every operator against its sequential reference: in-process, and under real mpirun with
//! 1, 2 and 4 ranks; task failures retried, then aborting the job.

mod common;
#[path = "common/suite.rs"]
mod suite;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{mpirun, run};
use ember::Context;
use ember::config::EngineArgs;

fn operators_bin() -> String {
    common::example("operators")
}

fn assert_same(got: &BTreeMap<String, String>, want: &suite::Results) {
    for (name, value) in want {
        assert_eq!(got.get(*name), Some(value), "operator {name}");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "operators reported: {:?}",
        got.keys()
    );
}

#[test]
fn operators_match_the_reference_in_process() {
    let scratch = tempfile::tempdir().unwrap();
    let ctx = Context::local_with(&EngineArgs::default());
    // Also: more partitions than records (empty partitions), and partitions of ~13,000
    // and 40,000 records, several 4,096-record batches each.
    for (seed, n, partitions) in [
        (1, 500, 4),
        (2, 37, 1),
        (3, 0, 3),
        (4, 2000, 7),
        (5, 5, 8),
        (6, 40_000, 3),
        (7, 40_000, 1),
    ] {
        let dir = scratch.path().join(format!("s{seed}"));
        let input = suite::Input::generate(seed, n);
        suite::prepare_files(&dir, &input);
        let got = suite::run_ember(&ctx, &input, partitions, &dir).unwrap();
        let got = got.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_same(&got, &suite::run_reference(&input, partitions));
    }
    ctx.stop();
}

fn check_under_mpirun(ranks: usize) {
    let scratch = tempfile::tempdir().unwrap();
    let (seed, n, partitions) = (ranks as u64 + 10, 700, 5);
    suite::prepare_files(scratch.path(), &suite::Input::generate(seed, n));
    let out = run(
        mpirun(
            ranks,
            &operators_bin(),
            &[
                "--seed",
                &seed.to_string(),
                "--n",
                &n.to_string(),
                "--partitions",
                &partitions.to_string(),
                "--scratch",
                scratch.path().to_str().unwrap(),
            ],
        ),
        Duration::from_secs(120),
    );
    out.assert_ok();
    let got: BTreeMap<String, String> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_same(
        &got,
        &suite::run_reference(&suite::Input::generate(seed, n), partitions),
    );
}

#[test]
fn operators_match_the_reference_with_1_rank() {
    check_under_mpirun(1);
}

#[test]
fn operators_match_the_reference_with_2_ranks() {
    check_under_mpirun(2);
}

#[test]
fn operators_match_the_reference_with_4_ranks() {
    check_under_mpirun(4);
}

#[test]
fn a_task_that_panics_once_is_retried_and_the_job_succeeds() {
    for ranks in [1, 3] {
        let scratch = tempfile::tempdir().unwrap();
        let out = run(
            mpirun(
                ranks,
                &operators_bin(),
                &[
                    "--fail",
                    "panic-once",
                    "--scratch",
                    scratch.path().to_str().unwrap(),
                ],
            ),
            Duration::from_secs(60),
        );
        out.assert_ok();
        assert!(out.stdout.contains("count = 100"), "{out:#?}");
        assert!(
            out.stderr.contains("injected task failure in partition 1"),
            "{out:#?}"
        );
        assert!(
            out.stderr.contains("(attempt 1) failed on executor"),
            "{out:#?}"
        );
    }
}

#[test]
fn a_task_that_always_panics_aborts_the_job_on_every_rank() {
    for ranks in [1, 4] {
        let scratch = tempfile::tempdir().unwrap();
        let out = run(
            mpirun(
                ranks,
                &operators_bin(),
                &[
                    "--fail",
                    "panic-always",
                    "--scratch",
                    scratch.path().to_str().unwrap(),
                ],
            ),
            Duration::from_secs(60),
        );
        assert!(!out.timed_out, "hung: {out:#?}");
        assert_ne!(out.status, Some(0), "{out:#?}");
        assert!(
            out.stderr.contains("ember: [driver 0] failed: job 0 (count) aborted: task 1 of stage 0 failed 4 times; last failure on executor"),
            "{out:#?}"
        );
        assert!(
            out.stderr.contains("injected task failure in partition 1"),
            "{out:#?}"
        );
        assert!(!out.stdout.contains("count ="), "{out:#?}");
    }
}

#[test]
fn a_lineage_that_differs_between_ranks_stops_the_job() {
    let scratch = tempfile::tempdir().unwrap();
    let out = run(
        mpirun(
            3,
            &operators_bin(),
            &[
                "--fail",
                "lineage",
                "--scratch",
                scratch.path().to_str().unwrap(),
            ],
        ),
        Duration::from_secs(60),
    );
    assert!(!out.timed_out, "hung: {out:#?}");
    assert_ne!(out.status, Some(0), "{out:#?}");
    assert!(
        out.stderr
            .contains("ember: [driver 0] failed: lineage mismatch: executor")
            && out
                .stderr
                .contains("built a different lineage for job 0 (count)"),
        "{out:#?}"
    );
}
