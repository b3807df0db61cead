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

/// Files under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() { files_under(&p) } else { 1 }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn an_iterative_job_keeps_only_the_shuffles_it_still_holds() {
    // PageRank's shape: cached links joined with the ranks, contributions reduced by key,
    // each iteration replacing `ranks`. The dropped iterations' shuffle files go with
    // them, so the scratch directory does not grow with the iterations.
    let scratch = tempfile::tempdir().unwrap();
    let config = EngineArgs {
        local_dir: scratch.path().to_path_buf(),
        ..EngineArgs::default()
    };
    let ctx = Context::local_with_executors(&config, 2);
    let edges: Vec<(u32, u32)> = (0..2000u32).map(|i| (i % 97, (i * 31) % 89)).collect();
    let links = ctx
        .parallelize(edges.clone(), Some(4))
        .group_by_key()
        .persist(ember::StorageLevel::Memory);
    let mut ranks = links.map_values(|_| 1.0f64);
    let mut files = Vec::new();
    for _ in 0..8 {
        ranks = links
            .join(&ranks)
            .flat_map(|(_, (dests, rank))| {
                let share = rank / dests.len() as f64;
                dests.into_iter().map(move |d| (d, share))
            })
            .reduce_by_key(|a, b| a + b)
            .map_values(|s| 0.15 + 0.85 * s);
        assert!(ranks.count().unwrap() > 0);
        files.push(files_under(scratch.path()));
    }
    // The same answer as a sequential run of the same iterations.
    let mut want: std::collections::HashMap<u32, f64> =
        edges.iter().map(|&(s, _)| (s, 1.0)).collect();
    let mut out: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    for &(s, d) in &edges {
        out.entry(s).or_default().push(d);
    }
    for _ in 0..8 {
        let mut next: std::collections::HashMap<u32, f64> = std::collections::HashMap::new();
        for (s, dests) in &out {
            if let Some(r) = want.get(s) {
                for d in dests {
                    *next.entry(*d).or_default() += r / dests.len() as f64;
                }
            }
        }
        want = next
            .into_iter()
            .map(|(k, s)| (k, 0.15 + 0.85 * s))
            .collect();
    }
    let got: std::collections::HashMap<u32, f64> = ranks.collect().unwrap().into_iter().collect();
    assert_eq!(got.len(), want.len());
    for (k, r) in &want {
        assert!((got[k] - r).abs() < 1e-9 * r.abs().max(1.0), "vertex {k}");
    }
    // Bounded, not growing: (without clean-up, 24 more files every iteration.)
    assert!(
        files.iter().all(|&f| f <= files[1] + files[1] / 2),
        "scratch files grow with the iterations: {files:?}"
    );
    ctx.stop();
}

/// Files left in a fresh local dir after PageRank-shaped `iterations` run as one action.
fn files_after_one_action(iterations: usize) -> (usize, Vec<(u32, f64)>) {
    let scratch = tempfile::tempdir().unwrap();
    let config = EngineArgs {
        local_dir: scratch.path().to_path_buf(),
        ..EngineArgs::default()
    };
    let ctx = Context::local_with_executors(&config, 2);
    let edges: Vec<(u32, u32)> = (0..2000u32).map(|i| (i % 97, (i * 31) % 89)).collect();
    let links = ctx
        .parallelize(edges, Some(4))
        .group_by_key()
        .persist(ember::StorageLevel::Memory);
    let mut ranks = links.map_values(|_| 1.0f64);
    for _ in 0..iterations {
        ranks = links
            .join(&ranks)
            .flat_map(|(_, (dests, rank))| {
                let share = rank / dests.len() as f64;
                dests.into_iter().map(move |d| (d, share))
            })
            .reduce_by_key(|a, b| a + b)
            .map_values(|s| 0.15 + 0.85 * s);
    }
    let mut got = ranks.collect().unwrap();
    got.sort_by_key(|r| r.0);
    let files = files_under(scratch.path());
    ctx.stop();
    (files, got)
}

#[test]
fn one_action_over_many_iterations_keeps_only_the_last_shuffles() {
    // All iterations in one job: each iteration's shuffles are removed once the next
    // iteration has read them, so 8 iterations leave what 2 do.
    let (two, _) = files_after_one_action(2);
    let (eight, got) = files_after_one_action(8);
    assert!(!got.is_empty());
    assert!(
        eight <= two + 4,
        "2 iterations leave {two} files, 8 leave {eight}"
    );
}

#[test]
fn a_result_over_the_limit_fails_the_action_saying_to_save_it() {
    let config = EngineArgs {
        max_result_size: ember::config::ByteSize(4096),
        ..EngineArgs::default()
    };
    let ctx = Context::local_with_executors(&config, 2);
    let small = ctx.range(0, 100, Some(4)).collect().unwrap();
    assert_eq!(small.len(), 100);
    let err = ctx.range(0, 100_000, Some(4)).collect().unwrap_err();
    let said = err.to_string();
    assert!(
        said.contains("more than --max-result-size (4.0 KiB)")
            && said.contains("save_as_text_file"),
        "{said}"
    );
    // The context is still usable after the refused action.
    assert_eq!(ctx.range(0, 100_000, Some(4)).count().unwrap(), 100_000);
    ctx.stop();
}
