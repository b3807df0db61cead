//! Local mode with several in-process executors (`Context::local_with_executors`): the
//! operator suite, owners and exchanges with 1, 2 and 4 executors in one process, in the
//! node-local (`auto`) and all-through-the-transport (`alltoallv`) shuffle modes.

mod common;
#[path = "common/suite.rs"]
mod suite;

use std::sync::mpsc;
use std::time::Duration;

use ember::Context;
use ember::config::{EngineArgs, ShuffleMode};

/// Runs `body` on a thread and fails the test if it takes longer than `limit`: an
/// in-process hang must fail fast too.
fn within<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("no result within {limit:?}: a hang"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the test body panicked"),
    }
}

fn check(executors: usize, mode: ShuffleMode) {
    let scratch = tempfile::tempdir().unwrap();
    let config = EngineArgs {
        shuffle_mode: mode,
        // Small rounds: several per exchange even on small inputs.
        shuffle_round_bytes: "4k".parse().unwrap(),
        ..EngineArgs::default()
    };
    let ctx = Context::local_with_executors(&config, executors);
    assert_eq!(ctx.executor_table().len(), executors);
    assert_eq!(ctx.world_size(), executors + 1);
    // 9,000 records in 3 partitions: several 4,096-record batches per partition.
    for (seed, n, partitions) in [(21, 700, 5), (22, 9000, 3), (23, 0, 2)] {
        let dir = scratch.path().join(format!("s{seed}"));
        let input = suite::Input::generate(seed, n);
        suite::prepare_files(&dir, &input);
        let got = suite::run_ember(&ctx, &input, partitions, &dir).unwrap();
        let want = suite::run_reference(&input, partitions);
        for (name, value) in &want {
            assert_eq!(
                got.get(name),
                Some(value),
                "operator {name}, {executors} executors, {mode:?}, seed {seed}"
            );
        }
        assert_eq!(got.len(), want.len());
    }
    let stats = ctx.shuffle_stats();
    assert!(!stats.is_empty(), "the suite shuffles");
    if mode == ShuffleMode::Alltoallv && executors > 1 {
        assert!(
            stats.iter().any(|s| s.rounds > 1 && s.bytes > 0),
            "{executors} executors in alltoallv: data crosses the transport in rounds: {stats:?}"
        );
    }
    ctx.stop();
}

#[test]
fn operators_match_the_reference_with_1_2_and_4_in_process_executors() {
    for executors in [1, 2, 4] {
        for mode in [ShuffleMode::Auto, ShuffleMode::Alltoallv] {
            within(Duration::from_secs(120), move || check(executors, mode));
        }
    }
}

#[test]
fn every_in_process_executor_runs_tasks() {
    within(Duration::from_secs(60), || {
        let ctx = Context::local_with_executors(&EngineArgs::default(), 3);
        let ids: Vec<u32> = ctx
            .executor_table()
            .iter()
            .map(|e| e.id.rank() as u32)
            .collect();
        assert_eq!(ids, vec![1, 2, 3]);
        // Each task reports the thread it ran on; executors' pool threads are named
        // `ember-exec<ID>-...`.
        let runners = ctx
            .range(0, 64, Some(32))
            .map_partitions(|it| {
                let name = std::thread::current().name().unwrap_or("").to_string();
                let _ = it.count();
                vec![name]
            })
            .collect()
            .unwrap();
        let mut executors: Vec<String> = runners
            .iter()
            .filter_map(|n| n.split('-').nth(1).map(str::to_string))
            .collect();
        executors.sort();
        executors.dedup();
        assert_eq!(executors, vec!["exec1", "exec2", "exec3"], "{runners:?}");
        ctx.stop();
    });
}

#[test]
fn a_task_failing_on_one_executor_is_retried_on_another() {
    use std::sync::Mutex;
    // Failures per partition, seen from inside the tasks (the executors share this process).
    static FAILURES: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    within(Duration::from_secs(60), || {
        *FAILURES.lock().unwrap() = vec![0; 12];
        let ctx = Context::local_with_executors(&EngineArgs::default(), 3);
        // Every task that lands on executor 2 fails; its retry must go elsewhere.
        let sums = ctx
            .range(0, 6000, Some(12))
            .map_partitions_with_index(|p, it| {
                let thread = std::thread::current().name().unwrap_or("").to_string();
                if thread.starts_with("ember-exec2-") {
                    FAILURES.lock().unwrap()[p] += 1;
                    panic!("executor 2 is broken");
                }
                vec![it.sum::<u64>()]
            })
            .collect()
            .unwrap();
        assert_eq!(sums.iter().sum::<u64>(), (0..6000u64).sum::<u64>());
        assert_eq!(sums.len(), 12);
        let failures = FAILURES.lock().unwrap().clone();
        assert!(
            failures.iter().any(|&f| f > 0),
            "executor 2 ran tasks: {failures:?}"
        );
        assert!(
            failures.iter().all(|&f| f <= 1),
            "a failed task went back to the executor it failed on: {failures:?}"
        );
        ctx.stop();
    });
}
