//! Caching, recovery from lost blocks, PageRank and KMeans against sequential references.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::reference::{
    assert_centres, assert_ranks, kmeans_reference, pagerank_reference, parse_ranks, random_graph,
    read_lines, write_points,
};
use common::{bin, example, mpirun, named_values, run};

const TIMEOUT: Duration = Duration::from_secs(120);

fn check_cache(ranks: usize, level: &str, memory: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = mpirun(
        ranks,
        &example("persistence"),
        &["--level", level, "--executor-memory", memory],
    );
    cmd.env("EMBER_LOCAL_DIR", scratch.path());
    let out = run(cmd, TIMEOUT);
    out.assert_ok();
    let v = named_values(&out.stdout);
    let n = 200_000u64;
    let expect: u64 = (0..n).map(|i| i % 97 + i * 3).sum();
    for action in ["first", "second", "third", "fourth"] {
        assert_eq!(
            v[action],
            expect.to_string(),
            "{action} result, {level}: {out:#?}"
        );
    }
    assert_eq!(
        v["first_sources"], "6",
        "the first action computes every partition"
    );
    assert_eq!(
        v["second_sources"], "0",
        "a second action on a cached RDD computes no source partition"
    );
    assert_eq!(v["second_hits"], "6");
    assert_eq!(
        v["fourth_sources"], "6",
        "after unpersist everything is computed again"
    );
    let recomputed: u64 = v["third_sources"].parse().unwrap();
    match level {
        // Every partition lived in a file, and every file was deleted.
        "mmap" => assert_eq!(recomputed, 6, "deleted cache files are computed again"),
        // Only the partitions spilled to files were lost.
        "memory-and-mmap" => assert!(
            (1..=6).contains(&recomputed),
            "spilled blocks recomputed: {recomputed}"
        ),
        _ => assert_eq!(recomputed, 0, "memory blocks have no files"),
    }
    let peak: u64 = v["cache_memory_peak"].parse().unwrap();
    // The budget as ember reads it (`256k`, `1g`, ...): a size that does not parse is a
    // broken test, not an unlimited budget.
    let budget = memory
        .parse::<ember::config::ByteSize>()
        .unwrap_or_else(|e| panic!("budget {memory}: {e}"))
        .0;
    assert!(budget < u64::MAX / 2, "budget {memory} parsed as {budget}");
    assert!(
        peak <= budget,
        "cache memory peak {peak} over the budget {budget}"
    );
    match level {
        "mmap" => assert_eq!(peak, 0, "blocks in files take no cache memory"),
        _ => assert!(peak > 0, "blocks in memory are accounted"),
    }
}

#[test]
fn cached_partitions_are_reused_and_rebuilt_when_lost() {
    for ranks in [1, 2, 4] {
        // 4 MiB holds the whole cached RDD (200,000 (u64, u64) pairs: 3.2 MB decoded, as
        // the store counts memory blocks) on one executor: nothing is evicted, and the
        // budget check below is a real bound, not 1 GiB of headroom.
        check_cache(ranks, "memory", "4m");
        check_cache(ranks, "mmap", "4m");
    }
}

#[test]
fn caching_over_the_budget_spills_or_evicts_and_stays_correct() {
    // 3.2 MB of cached data (decoded) against a 1 MiB budget per executor.
    check_cache(3, "memory-and-mmap", "1m");
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = mpirun(
        3,
        &example("persistence"),
        &["--level", "memory", "--executor-memory", "1m"],
    );
    cmd.env("EMBER_LOCAL_DIR", scratch.path());
    let out = run(cmd, TIMEOUT);
    out.assert_ok();
    let v = named_values(&out.stdout);
    let expect: u64 = (0..200_000u64).map(|i| i % 97 + i * 3).sum();
    for action in ["first", "second", "third", "fourth"] {
        assert_eq!(v[action], expect.to_string(), "{action}: {out:#?}");
    }
    // Each executor keeps what fits (~530 KB partitions decoded, 1 MiB budget) and evicts
    // the least recently used rest, which the next action computes again.
    let recomputed: u64 = v["second_sources"].parse().unwrap();
    assert!(
        (1..=6).contains(&recomputed),
        "evicted and recomputed: {recomputed}"
    );
    assert!(v["cache_memory_peak"].parse::<u64>().unwrap() <= 1 << 20);
}

/// Runs PageRank at `ranks` (with `env` set) and checks it against the reference.
fn check_pagerank(ranks: usize, env: Option<(&str, &str)>) -> common::Run {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("edges.txt");
    let edges = random_graph(&input, 300, 2000, ranks as u64);
    let output = dir.path().join("ranks");
    let mut cmd = mpirun(
        ranks,
        &bin("pagerank"),
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--iterations",
            "6",
            "--partitions",
            "5",
        ],
    );
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = run(cmd, TIMEOUT);
    out.assert_ok();
    let got: HashMap<u64, f64> = read_lines(&output)
        .iter()
        .map(|l| {
            let (v, r) = l.split_once('\t').unwrap();
            (v.parse().unwrap(), r.parse().unwrap())
        })
        .collect();
    let want = pagerank_reference(&edges, 6);
    assert_eq!(got.len(), want.len(), "{ranks} ranks: vertices");
    for (v, r) in &want {
        let g = got[v];
        assert!(((g - r) / r).abs() < 1e-9, "vertex {v}: {g} vs {r}");
    }
    out
}

/// How many times the driver logged each shuffle as exchanged, and its bytes.
fn exchanged_shuffles(stderr: &str) -> std::collections::BTreeMap<u64, (usize, u64)> {
    let mut out: std::collections::BTreeMap<u64, (usize, u64)> = Default::default();
    for line in stderr.lines() {
        // (Not "shuffle N has not been exchanged on executor M", a task's failure.)
        let Some((head, rest)) = line
            .split_once(" exchanged ")
            .filter(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()))
        else {
            continue;
        };
        let Some((_, shuffle)) = head.rsplit_once("shuffle ") else {
            continue;
        };
        let bytes: Option<u64> = rest.split_once(" bytes").and_then(|(b, _)| b.parse().ok());
        let (Ok(shuffle), Some(bytes)) = (shuffle.parse(), bytes) else {
            panic!("unreadable exchange line: {line}");
        };
        let e = out.entry(shuffle).or_default();
        e.0 += 1;
        e.1 += bytes;
    }
    out
}

/// Inserts `text` into the file at `path` as its line `line` (counted from 1).
fn insert_line(path: &Path, line: usize, text: &str) {
    let mut content = std::fs::read_to_string(path).unwrap();
    let at = content.match_indices('\n').nth(line - 2).unwrap().0 + 1;
    content.insert_str(at, &format!("{text}\n"));
    std::fs::write(path, content).unwrap();
}

/// Runs `job` on `input` (and `extra` arguments) under 3 ranks and checks that it fails,
/// saying `expected`, and leaves no output.
fn assert_fails_saying(job: &str, input: &Path, extra: &[&str], expected: &str) {
    let output = input.with_extension("out");
    let mut args = vec![
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(mpirun(3, &bin(job), &args), TIMEOUT);
    assert!(!out.success() && !out.timed_out, "{out:#?}");
    assert!(
        out.stderr.contains(expected),
        "{expected} not in {}",
        out.stderr
    );
    assert!(!output.exists(), "a failed job left {}", output.display());
}

#[test]
fn a_malformed_edge_fails_pagerank_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("edges.txt");
    random_graph(&input, 50, 200, 3);
    // Line 101: two header comments, then 98 edges before it.
    insert_line(&input, 101, "12\t-3");
    let expected = format!(
        "{}: line 101: not an edge (two non-negative integer ids): \"12\\t-3\"",
        input.display()
    );
    assert_fails_saying("pagerank", &input, &[], &expected);
}

#[test]
fn pagerank_matches_the_sequential_reference() {
    for ranks in [1, 2, 4] {
        let out = check_pagerank(ranks, None);
        assert!(out.stderr.contains("cache hits"), "{out:#?}");
        // The links are shuffled once for all 6 iterations: distinct placed by src
        // (shuffle 1; shuffle 0 is the distinct by whole edge, planned, never run) and
        // grouped where they are, then only each iteration's contributions, each
        // exchanged once. A join that shuffled the links again would add a shuffle per
        // iteration; grouping the distinct edges by a shuffle of its own, one more.
        let shuffles = exchanged_shuffles(&out.stderr);
        assert_eq!(
            shuffles.keys().copied().collect::<Vec<_>>(),
            (1..8).collect::<Vec<u64>>(),
            "{ranks} ranks: {shuffles:?}"
        );
        assert!(
            shuffles.values().all(|&(n, _)| n == 1),
            "{ranks} ranks: {shuffles:?}"
        );
    }
}

#[test]
fn a_lost_links_block_is_computed_again_after_their_shuffle_was_released() {
    for ranks in [1, 2, 4] {
        // Every executor drops its cached links as the third iteration (stage 3) starts,
        // after the links' shuffle was released (every links block cached): the tasks
        // find it gone, the driver runs its map stage again, and the ranks still match.
        let out = check_pagerank(ranks, Some(("EMBER_TEST_DROP_CACHE", "0:3")));
        for said in [
            "every cached block dropped (injected)",
            "needs shuffle 1, released since: its map stage runs again",
        ] {
            assert!(out.stderr.contains(said), "{ranks} ranks: {said}: {out:#?}");
        }
        // The links' shuffle twice (the second time for the lost blocks), the rest once.
        let shuffles = exchanged_shuffles(&out.stderr);
        assert_eq!(
            shuffles.keys().copied().collect::<Vec<_>>(),
            (1..8).collect::<Vec<u64>>(),
            "{ranks} ranks: {shuffles:?}"
        );
        assert_eq!(shuffles[&1].0, 2, "{ranks} ranks: {shuffles:?}");
        assert!(
            shuffles.iter().all(|(&s, &(n, _))| s == 1 || n == 1),
            "{ranks} ranks: {shuffles:?}"
        );
    }
}

/// `(action, stage, partition)` of every task, by the rank that ran it.
type TasksByRank = HashMap<usize, Vec<(u32, String, u32)>>;

/// Runs the `decommission` scenario of the persistence example at 4 ranks with
/// `EMBER_TEST_DECOMMISSION=spec`; returns its values and, per rank, the
/// `(action, stage, partition)` of every task that rank ran.
fn decommission_scenario(spec: &str) -> (std::collections::BTreeMap<String, String>, TasksByRank) {
    let marks = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = mpirun(
        4,
        &example("persistence"),
        &[
            "--scenario",
            "decommission",
            "--marks",
            marks.path().to_str().unwrap(),
            "--n",
            "30000",
            "--partitions",
            "6",
        ],
    );
    cmd.env("EMBER_TEST_DECOMMISSION", spec)
        .env("EMBER_LOCAL_DIR", scratch.path());
    let out = run(cmd, TIMEOUT);
    out.assert_ok();
    let executor = spec.split(':').next().unwrap();
    assert!(
        out.stderr
            .contains(&format!("executor {executor} taken out of service")),
        "{out:#?}"
    );
    let v = named_values(&out.stdout);
    let mut want: std::collections::BTreeMap<u64, u64> = Default::default();
    for i in 0..30_000u64 {
        *want.entry(i % 97).or_default() += i * 3;
    }
    let want = format!("{:?}", want.into_iter().collect::<Vec<_>>());
    for action in 0..3 {
        assert_eq!(
            v[&format!("sums{action}")],
            want,
            "action {action}: {out:#?}"
        );
    }
    let mut ran = HashMap::new();
    for entry in std::fs::read_dir(marks.path()).unwrap().flatten() {
        let rank: usize = entry.file_name().to_string_lossy()[1..].parse().unwrap();
        let tasks = std::fs::read_to_string(entry.path())
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (
                    f[0].parse().unwrap(),
                    f[1].to_string(),
                    f[2].parse().unwrap(),
                )
            })
            .collect();
        ran.insert(rank, tasks);
    }
    (v, ran)
}

#[test]
fn a_decommissioned_executor_runs_no_later_task_and_the_results_stay_right() {
    // Out of service before job 1 starts: executor 2 ran tasks of job 0 (and held cached
    // blocks), and none afterwards; its blocks are computed again elsewhere.
    let (v, ran) = decommission_scenario("2:1:0");
    let on2 = ran.get(&2).cloned().unwrap_or_default();
    assert!(
        on2.iter().any(|t| t.0 == 0),
        "executor 2 ran nothing before: {ran:?}"
    );
    assert!(
        on2.iter().all(|t| t.0 == 0),
        "executor 2 ran tasks after it was taken out of service: {on2:?}"
    );
    assert!(
        v["sources1"].parse::<u64>().unwrap() > 0,
        "lost cached blocks recomputed: {v:?}"
    );
    // Between job 1's map stage and its result stage: executor 3's map outputs are lost
    // and computed again on the others; it runs no reduce task of job 1 and nothing of job 2.
    let (_, ran) = decommission_scenario("3:1:1");
    let on3 = ran.get(&3).cloned().unwrap_or_default();
    assert!(
        on3.iter().any(|t| t.0 == 1 && t.1 == "map"),
        "executor 3 ran no map task of job 1: {ran:?}"
    );
    assert!(
        on3.iter().all(|t| t.0 == 0 || (t.0 == 1 && t.1 == "map")),
        "executor 3 ran tasks after it was taken out of service: {on3:?}"
    );
    let map_tasks_job1: usize = ran
        .values()
        .map(|ts| ts.iter().filter(|t| t.0 == 1 && t.1 == "map").count())
        .sum();
    assert!(
        map_tasks_job1 > 6,
        "the lost map outputs were computed again: {ran:?}"
    );
}

#[test]
fn an_executor_taken_out_of_service_mid_job_changes_no_result() {
    let out = check_pagerank(4, Some(("EMBER_TEST_DECOMMISSION", "2:0:3")));
    assert!(
        out.stderr.contains("executor 2 taken out of service"),
        "{out:#?}"
    );
    let out = check_kmeans(4, Some(("EMBER_TEST_DECOMMISSION", "3:2:1")));
    assert!(
        out.stderr.contains("executor 3 taken out of service"),
        "{out:#?}"
    );
}

/// Runs KMeans at `ranks` (with `env` set) and checks it against the reference.
fn check_kmeans(ranks: usize, env: Option<(&str, &str)>) -> common::Run {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("points.txt");
    let points = write_points(&input, 3000, ranks as u64 + 5);
    let output = dir.path().join("centres");
    let mut cmd = mpirun(
        ranks,
        &bin("kmeans"),
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--k",
            "4",
            "--iterations",
            "5",
            "--partitions",
            "4",
        ],
    );
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = run(cmd, TIMEOUT);
    out.assert_ok();
    let lines = read_lines(&output);
    let want = kmeans_reference(&points, 4, 5);
    assert_eq!(want.len(), 4);
    assert_centres(&lines, &want);
    out
}

/// Runs KMeans on 300 points of 3 coordinates with `text` as line `line`, and checks that
/// it fails at once naming the file and line, then `says`.
fn assert_kmeans_fails_at(line: usize, text: &str, says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("points.txt");
    write_points(&input, 300, line as u64);
    insert_line(&input, line, text);
    let expected = format!("(not retried): {}: line {line}: {says}", input.display());
    assert_fails_saying("kmeans", &input, &["--k", "4"], &expected);
}

#[test]
fn a_malformed_point_fails_kmeans_naming_the_file_and_line() {
    let says = "not a point (numbers separated by white space): \"2,5\"";
    assert_kmeans_fails_at(201, "1.5 2,5", says);
}

#[test]
fn a_point_of_another_dimension_fails_kmeans_naming_the_file_and_line() {
    let says = "a point of 2 coordinates where the first point has 3";
    assert_kmeans_fails_at(251, "1.5 2.5", says);
}

#[test]
fn kmeans_over_no_points_fails_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("blank.txt");
    std::fs::write(&input, "\n  \n\n").unwrap();
    let expected = format!("{}: no points", input.display());
    assert_fails_saying("kmeans", &input, &["--k", "2"], &expected);
}

#[test]
fn kmeans_matches_the_sequential_reference() {
    for ranks in [1, 2, 4] {
        check_kmeans(ranks, None);
    }
}

fn sources_computed(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.split("source partitions computed ")
                .nth(1)?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no metrics line: {stderr}"))
}

#[test]
fn a_checkpointed_job_started_again_resumes_and_gives_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("edges.txt");
    let edges = random_graph(&input, 200, 1500, 9);
    let checkpoints = dir.path().join("checkpoints");
    let pagerank = |output: &Path, checkpoints: &Path, stop_after: Option<&str>| {
        let mut cmd = mpirun(
            3,
            &bin("pagerank"),
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--iterations",
                "6",
                "--partitions",
                "4",
                "--checkpoint",
                checkpoints.to_str().unwrap(),
                "--checkpoint-every",
                "2",
            ],
        );
        if let Some(n) = stop_after {
            cmd.env("EMBER_TEST_STOP_AFTER_CHECKPOINTS", n);
        }
        run(cmd, TIMEOUT)
    };

    // The first run dies right after its second checkpoint (iteration 4).
    let output = dir.path().join("ranks");
    let killed = pagerank(&output, &checkpoints, Some("2"));
    assert!(!killed.timed_out && killed.status != Some(0), "{killed:#?}");
    assert!(checkpoints.join("iter-4/_SUCCESS").exists());
    assert!(
        !output.join("_SUCCESS").exists(),
        "a failed job leaves no committed output"
    );

    // Started again, it resumes from both checkpoints and finishes.
    let resumed = pagerank(&output, &checkpoints, None);
    resumed.assert_ok();
    for i in [2, 4] {
        let line = format!(
            "resumed from checkpoint {}",
            checkpoints.join(format!("iter-{i}")).display()
        );
        assert!(resumed.stderr.contains(&line), "{resumed:#?}");
    }
    let got: HashMap<u64, f64> = read_lines(&output)
        .iter()
        .map(|l| {
            let (v, r) = l.split_once('\t').unwrap();
            (v.parse().unwrap(), r.parse().unwrap())
        })
        .collect();
    let want = pagerank_reference(&edges, 6);
    assert_eq!(got.len(), want.len());
    for (v, r) in &want {
        assert!(((got[v] - r) / r).abs() < 1e-9, "vertex {v}");
    }

    // A checkpoint of another record format (its marker without this one's `format`
    // line, as the engine wrote it before pairs went fixed-width) is computed again, not
    // misread; the one after it still resumes.
    let marker = checkpoints.join("iter-2/_CHECKPOINT");
    let text = std::fs::read_to_string(&marker).unwrap();
    assert!(text.contains("\nformat "), "{text}");
    let older: String = text
        .lines()
        .filter(|l| !l.starts_with("format "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&marker, older).unwrap();
    let again = pagerank(&dir.path().join("again"), &checkpoints, None);
    again.assert_ok();
    let iter = |i: usize| checkpoints.join(format!("iter-{i}"));
    let written = format!("checkpointed 4 partition(s) to {}", iter(2).display());
    let resumed_4 = format!("resumed from checkpoint {}", iter(4).display());
    assert!(again.stderr.contains(&written), "{again:#?}");
    assert!(again.stderr.contains(&resumed_4), "{again:#?}");

    // A run from scratch computes more source partitions than the resumed one.
    let fresh = pagerank(
        &dir.path().join("fresh"),
        &dir.path().join("fresh-checkpoints"),
        None,
    );
    fresh.assert_ok();
    assert!(
        sources_computed(&resumed.stderr) < sources_computed(&fresh.stderr),
        "resumed {} vs fresh {}",
        sources_computed(&resumed.stderr),
        sources_computed(&fresh.stderr)
    );
}

/// A checkpoint directory that a resumed job may use: data committed and marked.
fn complete(checkpoint: &Path) -> bool {
    checkpoint.join("_SUCCESS").exists() && checkpoint.join("_CHECKPOINT").exists()
}

#[test]
fn a_job_killed_between_checkpoints_resumes_from_the_complete_ones() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("edges.txt");
    let edges = random_graph(&input, 3000, 40_000, 11);
    let checkpoints = dir.path().join("checkpoints");
    let output = dir.path().join("ranks");
    let iterations = 12;
    let pagerank = || {
        let mut cmd = mpirun(
            3,
            &bin("pagerank"),
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--iterations",
                &iterations.to_string(),
                "--partitions",
                "4",
                "--checkpoint",
                checkpoints.to_str().unwrap(),
                "--checkpoint-every",
                "2",
            ],
        );
        // A SIGKILLed rank cannot clean up: keep its scratch out of /dev/shm.
        cmd.env("EMBER_LOCAL_DIR", dir.path().join("scratch"));
        cmd
    };
    std::fs::create_dir_all(dir.path().join("scratch")).unwrap();
    let iter = |i: usize| checkpoints.join(format!("iter-{i}"));

    // Killed with SIGKILL (no clean-up, no error path) as soon as the first checkpoint is
    // complete, while the job computes or writes the next ones.
    let mut cmd = pagerank();
    let tag = common::tag(&mut cmd);
    let mut child = common::spawn(cmd);
    let out = common::drain_output(child.stdout.take());
    let err = common::drain_output(child.stderr.take());
    let started = std::time::Instant::now();
    while !complete(&iter(2)) {
        assert!(
            started.elapsed() < TIMEOUT && child.try_wait().unwrap().is_none(),
            "the first checkpoint never completed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let executor = *common::rank_pids(&tag).get(&1).expect("rank 1 running");
    // SAFETY: signalling a rank of the job this test started.
    unsafe {
        libc::kill(executor as i32, libc::SIGKILL);
    }
    let killed = common::wait(child, out, err, Duration::from_secs(30));
    assert!(!killed.timed_out && killed.status != Some(0), "{killed:#?}");
    assert!(
        !output.join("_SUCCESS").exists(),
        "a killed job leaves no committed output"
    );
    let done: Vec<usize> = (2..=iterations)
        .step_by(2)
        .filter(|&i| complete(&iter(i)))
        .collect();
    let next = (2..=iterations)
        .step_by(2)
        .find(|&i| !complete(&iter(i)))
        .unwrap_or_else(|| panic!("the job finished every checkpoint before the kill"));
    assert_eq!(done, (2..next).step_by(2).collect::<Vec<_>>());
    // The next checkpoint half-written, as a kill in the middle of writing leaves it: a
    // truncated part and no _SUCCESS.
    std::fs::create_dir_all(iter(next)).unwrap();
    let part = std::fs::read(iter(2).join("part-00000")).unwrap();
    std::fs::write(iter(next).join("part-00000"), &part[..part.len() / 2]).unwrap();
    let _ = std::fs::remove_file(iter(next).join("_SUCCESS"));

    let resumed = run(pagerank(), TIMEOUT);
    resumed.assert_ok();
    for &i in &done {
        let line = format!("resumed from checkpoint {}", iter(i).display());
        assert!(resumed.stderr.contains(&line), "{line}: {resumed:#?}");
    }
    for i in (next..=iterations).step_by(2) {
        let line = format!("resumed from checkpoint {}", iter(i).display());
        assert!(!resumed.stderr.contains(&line), "{line}: {resumed:#?}");
        let line = format!("checkpointed 4 partition(s) to {}", iter(i).display());
        assert!(resumed.stderr.contains(&line), "{line}: {resumed:#?}");
    }
    common::note(&format!(
        "killed after checkpoints {done:?}; iter-{next} half-written; resumed"
    ));
    assert_ranks(
        &parse_ranks(&read_lines(&output)),
        &pagerank_reference(&edges, iterations),
    );
}

#[test]
fn pod_records_cached_in_files_are_their_bytes_and_read_back_in_place() {
    use ember::io::records::Record;
    let scratch = tempfile::tempdir().unwrap();
    let config = ember::config::EngineArgs {
        local_dir: scratch.path().to_path_buf(),
        ..Default::default()
    };
    let ctx = ember::Context::local_with(&config);
    let n = 50_000;
    let records = ctx
        .range(0, n, Some(4))
        .map(|i| Record::generate(2, i))
        .persist_pod(ember::StorageLevel::Mmap);
    let first = records.collect().unwrap();
    let before = ctx.metrics();
    let second = records.collect().unwrap();
    let after = ctx.metrics();
    let expect: Vec<Record> = (0..n).map(|i| Record::generate(2, i)).collect();
    assert!(first == expect && second == expect);
    assert_eq!(after.cache_hits - before.cache_hits, 4);
    assert_eq!(
        after.source_partitions, before.source_partitions,
        "nothing recomputed"
    );
    // The block files hold exactly the records' bytes: no encoding.
    let dir = ctx
        .executor_dir()
        .expect("the in-process executor's directory");
    let block_bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("block-"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(block_bytes, n * 100);
    ctx.stop();
}
