//! The driver's event log under mpirun: WordCount, TeraSort and PageRank write logs that
//! parse and whose totals agree with the jobs; a failed job's log ends with the failure.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::reference::random_graph;
use common::{bin, mpirun, run};
use ember::events::{Event, SCHEMA_VERSION, StageInfo, read_events};
use ember::protocol::TaskMetrics;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `job` on 3 ranks with its event log in `dir`; returns the log's one file.
fn run_logged(job: &str, args: &[&str], dir: &Path, ok: bool) -> PathBuf {
    let logs = dir.join("events");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--event-log", logs.to_str().unwrap()]);
    let out = run(mpirun(3, &bin(job), &all), TIMEOUT);
    assert!(!out.timed_out, "{out:#?}");
    assert_eq!(out.success(), ok, "{out:#?}");
    let files: Vec<PathBuf> = std::fs::read_dir(&logs)
        .unwrap_or_else(|e| panic!("no event log directory {}: {e}", logs.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one log per application: {files:?}");
    files.into_iter().next().unwrap()
}

/// What the log says each stage of each job did.
#[derive(Default)]
struct StageTotals {
    info: Option<StageInfo>,
    started: usize,
    ended: Option<(usize, TaskMetrics)>,
    succeeded: BTreeSet<u32>,
    sum: TaskMetrics,
}

/// Checks what every log of a successful job must say, and returns the stages by
/// (job, stage) in the order they ran.
fn check_log(events: &[Event]) -> BTreeMap<(u64, u32), StageTotals> {
    check_log_with(events, 2)
}

/// [`check_log`] for an application of `n_executors`.
fn check_log_with(events: &[Event], n_executors: usize) -> BTreeMap<(u64, u32), StageTotals> {
    let Some(Event::ApplicationStart {
        schema, executors, ..
    }) = events.first()
    else {
        panic!(
            "the log must open with application_start: {:?}",
            events.first()
        );
    };
    assert_eq!(*schema, SCHEMA_VERSION);
    assert_eq!(executors.len(), n_executors, "the executor table");
    assert!(
        matches!(events.last(), Some(Event::ApplicationEnd { status, exit_code: 0, .. }) if status == "succeeded"),
        "{:?}",
        events.last()
    );
    let mut stages: BTreeMap<(u64, u32), StageTotals> = BTreeMap::new();
    let mut exchanges = BTreeSet::new();
    for e in events {
        match e {
            Event::JobStart { job, stages: s, .. } => {
                for info in s {
                    stages.entry((*job, info.stage.0)).or_default().info = Some(info.clone());
                }
            }
            Event::StageStart { job, stage, .. } => {
                stages
                    .get_mut(&(*job, stage.0))
                    .expect("a planned stage")
                    .started += 1
            }
            Event::TaskEnd {
                job,
                stage,
                partition,
                metrics,
                failure: None,
                timing,
                executor,
                ..
            } => {
                assert!(timing.end_us >= timing.start_us && timing.start_us > 0);
                assert!((1..=2).contains(executor), "executor {executor}");
                assert!(metrics.executor_memory_peak > 0, "VmHWM is read");
                let s = stages.get_mut(&(*job, stage.0)).expect("a planned stage");
                assert!(
                    s.succeeded.insert(*partition),
                    "partition {partition} twice"
                );
                s.sum.add(metrics);
            }
            Event::StageEnd {
                job,
                stage,
                tasks,
                metrics,
                ..
            } => stages.get_mut(&(*job, stage.0)).unwrap().ended = Some((*tasks, *metrics)),
            Event::Exchange { job, shuffle, .. } => {
                exchanges.insert((*job, shuffle.0));
            }
            Event::JobEnd { failure, .. } => assert_eq!(failure, &None),
            _ => {}
        }
    }
    for (key, s) in &stages {
        let info = s.info.as_ref().unwrap();
        if s.started == 0 {
            assert!(s.ended.is_none() && s.succeeded.is_empty(), "{key:?}");
            continue;
        }
        let (tasks, metrics) = s
            .ended
            .unwrap_or_else(|| panic!("stage {key:?} never ended"));
        assert_eq!(
            tasks, info.partitions,
            "stage {key:?}: one task per partition"
        );
        assert_eq!(
            s.succeeded.len(),
            info.partitions,
            "stage {key:?}: task_end events"
        );
        assert_eq!(metrics, s.sum, "stage {key:?}: stage_end sums its tasks");
        if let Some(shuffle) = info.shuffle {
            assert!(
                exchanges.contains(&(key.0, shuffle.0)),
                "no exchange of {shuffle}"
            );
        }
    }
    stages
}

/// Records in = records out of the parent stages: a stage reads every record its parents
/// wrote to their shuffles; a stage with cache hits reads the parents it did not find
/// cached (some non-empty subset of them).
fn check_records_flow(stages: &BTreeMap<(u64, u32), StageTotals>) {
    let mut written: BTreeMap<u32, u64> = BTreeMap::new(); // by shuffle id, last run
    for ((job, _), s) in stages.iter() {
        let Some((_, m)) = s.ended else { continue };
        let info = s.info.as_ref().unwrap();
        let parents: Vec<u64> = info
            .parents
            .iter()
            .map(|p| {
                let parent = stages[&(*job, p.0)].info.as_ref().unwrap();
                written[&parent.shuffle.unwrap().0]
            })
            .collect();
        if m.cache_hits == 0 {
            assert_eq!(
                m.shuffle_read_records,
                parents.iter().sum::<u64>(),
                "job {job} stage {}: records in = parents' records out",
                info.stage
            );
        } else {
            let sums: Vec<u64> = (1..1u32 << parents.len())
                .map(|set| {
                    (0..parents.len())
                        .filter(|i| set >> i & 1 == 1)
                        .map(|i| parents[i])
                        .sum()
                })
                .collect();
            assert!(
                sums.contains(&m.shuffle_read_records),
                "stage {}: read {} of {parents:?}",
                info.stage,
                m.shuffle_read_records
            );
        }
        if let Some(shuffle) = info.shuffle {
            assert!(
                m.shuffle_write_records > 0,
                "stage {} wrote nothing",
                info.stage
            );
            written.insert(shuffle.0, m.shuffle_write_records);
        }
    }
}

#[test]
fn wordcount_logs_every_stage_task_and_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("counts");
    let log = run_logged(
        "wordcount",
        &[
            "--generate-lines",
            "20000",
            "--partitions",
            "5",
            "--output",
            out.to_str().unwrap(),
        ],
        dir.path(),
        true,
    );
    let stages = check_log(&read_events(&log).unwrap());
    assert_eq!(stages.len(), 2, "WordCount is a map and a reduce stage");
    check_records_flow(&stages);
}

#[test]
fn terasort_moves_every_record_through_its_sort_shuffle_and_logs_its_spills() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sorted");
    let log = run_logged(
        "terasort",
        &[
            "--generate-records",
            "30000",
            "--partitions",
            "4",
            // A budget the map output does not fit: the tasks spill.
            "--executor-memory",
            "1m",
            "--output",
            out.to_str().unwrap(),
        ],
        dir.path(),
        true,
    );
    let stages = check_log(&read_events(&log).unwrap());
    check_records_flow(&stages);
    let last = stages.values().rev().find(|s| s.ended.is_some()).unwrap();
    let spilled: u64 = stages
        .values()
        .filter_map(|s| s.ended)
        .map(|e| e.1.spilled_bytes)
        .sum();
    assert!(spilled > 0, "the map tasks' spills are logged");
    let written: u64 = stages
        .values()
        .filter_map(|s| s.ended)
        .map(|e| e.1.shuffle_write_bytes)
        .sum();
    assert_eq!(
        written,
        last.ended.unwrap().1.shuffle_read_bytes,
        "the map side's bytes, spilled pieces included, are what the sort read"
    );
    assert_eq!(
        last.ended.unwrap().1.shuffle_read_records,
        30_000,
        "every record sorted"
    );
}

#[test]
fn pagerank_logs_cached_links_and_every_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("edges.txt");
    random_graph(&input, 300, 2000, 3);
    let out = dir.path().join("ranks");
    let log = run_logged(
        "pagerank",
        &[
            "--input",
            input.to_str().unwrap(),
            "--iterations",
            "3",
            "--output",
            out.to_str().unwrap(),
        ],
        dir.path(),
        true,
    );
    let events = read_events(&log).unwrap();
    let stages = check_log(&events);
    check_records_flow(&stages);
    let hits: u64 = stages
        .values()
        .filter_map(|s| s.ended)
        .map(|e| e.1.cache_hits)
        .sum();
    assert!(hits > 0, "the links are cached and read back");
    // The links' shuffle (1) goes once the first iteration (stage 1) has cached every
    // links partition: the later iterations read the cache, not the shuffle.
    let at = |found: &dyn Fn(&Event) -> bool| {
        events
            .iter()
            .position(found)
            .unwrap_or_else(|| panic!("{events:#?}"))
    };
    let removed = at(&|e| matches!(e, Event::ShuffleRemoved { shuffle, .. } if shuffle.0 == 1));
    let first_ended = at(&|e| matches!(e, Event::StageEnd { stage, .. } if stage.0 == 1));
    let second_started = at(&|e| matches!(e, Event::StageStart { stage, .. } if stage.0 == 2));
    assert!(
        first_ended < removed && removed < second_started,
        "links' shuffle removed at event {removed}, first iteration ended at {first_ended}, second started at {second_started}"
    );
}

#[test]
fn a_failed_job_leaves_a_log_that_ends_with_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.txt");
    let mut text = "good words here\n".repeat(100).into_bytes();
    text.extend_from_slice(b"\xff broken\n");
    std::fs::write(&input, &text).unwrap();
    let out = dir.path().join("out");
    let log = run_logged(
        "wordcount",
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        dir.path(),
        false,
    );
    let events = read_events(&log).unwrap();
    let failed: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskEnd {
                attempt,
                failure: Some(f),
                ..
            } => {
                assert!(f.contains("not valid UTF-8"), "{f}");
                Some(*attempt)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [0, 1, 2, 3],
        "every attempt is logged with its message"
    );
    let n = events.len();
    // The stage says it ended failing, and why, before the job does.
    assert!(
        matches!(&events[n - 3], Event::StageFailed { stage, failure, .. }
            if stage.0 == 0 && failure.contains("failed 4 times")),
        "{:?}",
        events[n - 3]
    );
    assert!(
        matches!(&events[n - 2], Event::JobEnd { failure: Some(f), .. } if f.contains("failed 4 times")),
        "{:?}",
        events[n - 2]
    );
    assert!(
        matches!(&events[n - 1], Event::ApplicationEnd { status, exit_code: 1, failure: Some(f), .. }
            if status == "failed" && f.contains("not valid UTF-8")),
        "the log ends with the failure: {:?}",
        events[n - 1]
    );
}

#[test]
fn no_event_log_writes_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = mpirun(
        2,
        &bin("wordcount"),
        &["--generate-lines", "1000", "--no-event-log"],
    );
    cmd.current_dir(dir.path()).env_remove("EMBER_EVENT_LOG");
    run(cmd, TIMEOUT).assert_ok();
    assert!(!dir.path().join("ember-events").exists());
    let mut cmd = mpirun(2, &bin("wordcount"), &["--generate-lines", "1000"]);
    cmd.current_dir(dir.path()).env_remove("EMBER_EVENT_LOG");
    run(cmd, TIMEOUT).assert_ok();
    let logs = std::fs::read_dir(dir.path().join("ember-events"))
        .unwrap()
        .count();
    assert_eq!(logs, 1, "on by default, in the working directory");
}

#[test]
fn a_job_ended_by_a_signal_leaves_a_log_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("events");
    let args = [
        "--generate-lines",
        "20000000",
        "--partitions",
        "200",
        "--event-log",
        logs.to_str().unwrap(),
    ];
    let mut child = common::spawn(mpirun(3, &bin("wordcount"), &args));
    let (out, err) = (
        common::drain_output(child.stdout.take()),
        common::drain_output(child.stderr.take()),
    );
    // Once a task has ended, the launcher ends the job (as Slurm's time limit would).
    let started = std::time::Instant::now();
    let log = loop {
        assert!(started.elapsed() < TIMEOUT, "no task ended");
        let found = std::fs::read_dir(&logs)
            .ok()
            .and_then(|d| d.flatten().next())
            .map(|e| e.path());
        if let Some(log) = found
            && std::fs::read_to_string(&log)
                .unwrap()
                .contains("\"task_end\"")
        {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: a plain signal to the launcher we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let run = common::wait(child, out, err, TIMEOUT);
    assert!(!run.timed_out, "{run:#?}");
    assert!(
        run.stderr.contains("[driver 0] failed: stopped by SIGTERM"),
        "the driver says why: {run:#?}"
    );
    // MPICH's hydra, itself signalled, exits within milliseconds with whatever exit
    // statuses it has collected by then: once (make test at 7f40bb3, under load) none,
    // and it reported 0 though the driver had said it failed (its exit status is 143).
    // OpenMPI's mpirun reports the ranks'.
    if common::mpi_family() != common::MpiFamily::Mpich {
        assert!(!run.success(), "{run:#?}");
    }
    let events = read_events(&log).unwrap();
    assert!(
        matches!(events.last(), Some(Event::ApplicationEnd { status, failure: Some(f), .. })
            if status == "failed" && f.contains("stopped by SIGTERM")),
        "the log ends with the signal: {:?}\n{run:#?}",
        events.last()
    );
}

/// In one process: a context made for tests logs only when given a directory, and then
/// every job with a failed attempt and its retry.
#[test]
fn in_process_contexts_log_when_asked_with_retries() {
    use ember::Context;
    use ember::config::EngineArgs;
    let dir = tempfile::tempdir().unwrap();
    let config = EngineArgs {
        event_log: Some(dir.path().to_path_buf()),
        ..EngineArgs::default()
    };
    let ctx = Context::local_with_executors(&config, 2);
    let tries = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = std::sync::Arc::clone(&tries);
    let n = ctx
        .range(0, 100, Some(4))
        .map(move |x| {
            // The first attempt of the partition holding 0 fails once.
            if x == 0 && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                panic!("first attempt fails");
            }
            (x % 3, 1u64)
        })
        .reduce_by_key(|a, b| a + b)
        .count()
        .unwrap();
    assert_eq!(n, 3);
    ctx.stop();
    let log = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let events = read_events(&log).unwrap();
    let stages = check_log_with(&events, 2);
    check_records_flow(&stages);
    let failures: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::TaskEnd { failure: Some(f), .. } if f.contains("first attempt fails")))
        .collect();
    assert_eq!(failures.len(), 1, "the failed attempt is logged");
}
