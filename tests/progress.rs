//! The driver's progress lines: `--progress always` prints one per finished stage with its
//! tasks and records; the default on a non-terminal prints none for a job of a second, so
//! the log lines tests and users grep stay as they were.

mod common;

use std::time::Duration;

use common::{bin, mpirun, run};

fn wordcount(progress: &str) -> String {
    let args = [
        "--generate-lines",
        "20000",
        "--partitions",
        "3",
        "--no-event-log",
        "--progress",
        progress,
    ];
    let out = run(mpirun(3, &bin("wordcount"), &args), Duration::from_secs(90));
    out.assert_ok();
    out.stderr
}

#[test]
fn always_prints_each_stage_with_its_tasks_and_records() {
    let stderr = wordcount("always");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("progress: "))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("progress: job 0 stage 0: 3/3 tasks, read 0 records")),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("job 0 stage 1: 3/3 tasks, read ") && l.contains(" left")),
        "{stderr}"
    );
}

#[test]
fn short_jobs_print_no_progress_by_default_or_when_never() {
    for mode in ["auto", "never"] {
        let stderr = wordcount(mode);
        assert!(
            !stderr.contains("progress: "),
            "--progress {mode}:\n{stderr}"
        );
    }
}
