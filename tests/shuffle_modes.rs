//! The MPI data path: the operator suite and every job under mpirun with
//! `--shuffle-mode alltoallv` and `--shuffle-mode rma`, compared in full with the
//! sequential references. On one node the default `auto` mode moves only metadata over
//! MPI; these modes move the data itself. Each run's log must show which path moved it.

mod common;
#[path = "common/suite.rs"]
mod suite;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use common::reference::{
    assert_centres, assert_ranks, assert_sorted_permutation, kmeans_reference, pagerank_reference,
    parse_ranks, random_graph, read_lines, read_parts, write_points,
};
use common::{bin, mpirun, run};

const TIMEOUT: Duration = Duration::from_secs(120);
const MODES: [&str; 2] = ["alltoallv", "rma"];
const RANKS: [usize; 2] = [2, 4];

/// `(bytes, rounds)` of every exchange the driver logged.
fn exchanges(stderr: &str) -> Vec<(u64, u64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once(" exchanged ")?;
            let (bytes, rest) = rest.split_once(" bytes in ")?;
            let (rounds, _) = rest.split_once(" round(s)")?;
            Some((bytes.parse().ok()?, rounds.parse().ok()?))
        })
        .collect()
}

/// Runs `args` of `program` at `ranks` in `mode` and checks from the log that the data
/// took that mode's path. Returns the run.
fn launch(program: &str, ranks: usize, mode: &str, args: &[&str]) -> common::Run {
    let scratch = tempfile::tempdir().unwrap();
    let mut args = args.to_vec();
    args.extend(["--shuffle-mode", mode, "--shuffle-round-bytes", "64k"]);
    let mut cmd = mpirun(ranks, program, &args);
    cmd.env("EMBER_LOCAL_DIR", scratch.path());
    let out = run(cmd, TIMEOUT);
    out.assert_ok();
    let ex = exchanges(&out.stderr);
    assert!(!ex.is_empty(), "no exchange logged: {out:#?}");
    let fallback = out.stderr.contains(": using alltoallv");
    // With one executor every byte stays on it; with several, data crosses MPI.
    let remote = ranks > 2;
    let path = match mode {
        "alltoallv" => {
            assert!(!fallback, "{out:#?}");
            if remote {
                // (An exchange whose map outputs all sit on their owners needs no round.)
                assert!(
                    ex.iter().any(|&(bytes, rounds)| bytes > 0 && rounds >= 1),
                    "no data moved in alltoallv rounds: {ex:?}\n{out:#?}"
                );
            }
            "alltoallv"
        }
        "rma" if fallback => {
            // Where windows cannot be made, every executor falls back together and says
            // why; then the data moves in alltoallv rounds.
            assert!(
                out.stderr.contains("no RMA window (")
                    || out.stderr.contains("could not make an RMA window"),
                "{out:#?}"
            );
            if remote {
                assert!(
                    ex.iter().any(|&(bytes, rounds)| bytes > 0 && rounds >= 1),
                    "{ex:?}\n{out:#?}"
                );
            }
            "rma, fallen back to alltoallv"
        }
        "rma" => {
            // One-sided: no alltoallv round at all.
            assert!(
                ex.iter().all(|&(_, rounds)| rounds == 0),
                "rma exchanged in rounds: {ex:?}\n{out:#?}"
            );
            "rma (one-sided)"
        }
        other => panic!("mode {other}"),
    };
    let reason = out
        .stderr
        .lines()
        .find(|l| l.contains("no RMA window ("))
        .unwrap_or("");
    common::note(&format!(
        "{} at {ranks} ranks, --shuffle-mode {mode}: {path}, {} exchange(s) {reason}",
        Path::new(program).file_name().unwrap().to_string_lossy(),
        ex.len()
    ));
    out
}

#[test]
fn operators_match_the_reference_in_alltoallv_and_rma_modes() {
    for mode in MODES {
        for ranks in RANKS {
            let scratch = tempfile::tempdir().unwrap();
            let (seed, n, partitions) = (ranks as u64 + 20, 9000, 3);
            let input = suite::Input::generate(seed, n);
            suite::prepare_files(scratch.path(), &input);
            let out = launch(
                &common::example("operators"),
                ranks,
                mode,
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
            );
            let got = common::named_values(&out.stdout);
            let want = suite::run_reference(&input, partitions);
            for (name, value) in &want {
                assert_eq!(
                    got.get(*name),
                    Some(value),
                    "operator {name}, {mode}, {ranks} ranks"
                );
            }
            assert_eq!(got.len(), want.len(), "{:?}", got.keys());
        }
    }
}

fn word_counts(text: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for w in text.split_whitespace() {
        *m.entry(w.to_string()).or_insert(0) += 1;
    }
    m
}

fn parse_counts(lines: &[String]) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for l in lines {
        let (w, n) = l.rsplit_once('\t').unwrap();
        assert!(
            m.insert(w.to_string(), n.parse().unwrap()).is_none(),
            "{w} twice"
        );
    }
    m
}

#[test]
fn wordcount_matches_the_reference_in_alltoallv_and_rma_modes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let text: String = (0..20_000)
        .map(|i| format!("w{} x{}\tnaïve  日本語 w{}\n", i % 3001, i % 7, i))
        .collect();
    std::fs::write(&input, &text).unwrap();
    let want = word_counts(&text);
    for mode in MODES {
        for ranks in RANKS {
            let output = dir.path().join(format!("out-{mode}-{ranks}"));
            launch(
                &bin("wordcount"),
                ranks,
                mode,
                &[
                    "--input",
                    input.to_str().unwrap(),
                    "--output",
                    output.to_str().unwrap(),
                    "--partitions",
                    "5",
                ],
            );
            assert!(
                parse_counts(&read_lines(&output)) == want,
                "{mode}, {ranks} ranks: counts differ"
            );
        }
    }
}

#[test]
fn terasort_matches_the_reference_in_alltoallv_and_rma_modes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.bin");
    let records: Vec<u8> = (0..15_000u64)
        .flat_map(|i| ember::io::records::Record::generate(7, i).0)
        .collect();
    std::fs::write(&input, &records).unwrap();
    for mode in MODES {
        for ranks in RANKS {
            let output = dir.path().join(format!("out-{mode}-{ranks}"));
            launch(
                &bin("terasort"),
                ranks,
                mode,
                &[
                    "--input",
                    input.to_str().unwrap(),
                    "--output",
                    output.to_str().unwrap(),
                    "--partitions",
                    "5",
                ],
            );
            assert_sorted_permutation(&records, &read_parts(&output));
        }
    }
}

#[test]
fn pagerank_matches_the_reference_in_alltoallv_and_rma_modes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("edges.txt");
    let edges = random_graph(&input, 400, 3000, 17);
    let want: BTreeMap<u64, f64> = pagerank_reference(&edges, 5);
    for mode in MODES {
        for ranks in RANKS {
            let output = dir.path().join(format!("out-{mode}-{ranks}"));
            launch(
                &bin("pagerank"),
                ranks,
                mode,
                &[
                    "--input",
                    input.to_str().unwrap(),
                    "--output",
                    output.to_str().unwrap(),
                    "--iterations",
                    "5",
                    "--partitions",
                    "4",
                ],
            );
            assert_ranks(&parse_ranks(&read_lines(&output)), &want);
        }
    }
}

#[test]
fn kmeans_matches_the_reference_in_alltoallv_and_rma_modes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("points.txt");
    let points = write_points(&input, 4000, 23);
    let want = kmeans_reference(&points, 4, 5);
    for mode in MODES {
        for ranks in RANKS {
            let output = dir.path().join(format!("out-{mode}-{ranks}"));
            launch(
                &bin("kmeans"),
                ranks,
                mode,
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
            assert_centres(&read_lines(&output), &want);
        }
    }
}

#[test]
fn groupby_and_join_on_a_hot_key_match_the_reference_in_alltoallv_and_rma_modes() {
    let dir = tempfile::tempdir().unwrap();
    // Key 3 in a third of the facts; the dimension misses keys 80..97.
    let facts: Vec<(i64, i64)> = (0..6000)
        .map(|i| (if i % 3 == 0 { 3 } else { i % 97 }, i * 13 - 5000))
        .collect();
    let fact_path = dir.path().join("facts.txt");
    let lines: String = facts.iter().map(|(k, v)| format!("{k},{v}\n")).collect();
    std::fs::write(&fact_path, lines).unwrap();
    let dim_path = dir.path().join("dim.txt");
    let lines: String = (0..80).map(|k| format!("{k},{}\n", k * k)).collect();
    std::fs::write(&dim_path, lines).unwrap();
    let mut sums: BTreeMap<i64, i64> = BTreeMap::new();
    for (k, v) in &facts {
        *sums.entry(*k).or_insert(0) += v;
    }
    let mut joined: Vec<String> = facts
        .iter()
        .filter(|(k, _)| *k < 80)
        .map(|(k, v)| format!("{k}\t{v}\t{}", k * k))
        .collect();
    joined.sort();
    // Four ranks: three executors, so the data crosses MPI.
    for mode in MODES {
        let output = dir.path().join(format!("sums-{mode}"));
        let (input, out) = (fact_path.to_str().unwrap(), output.to_str().unwrap());
        let args = ["--input", input, "--output", out, "--partitions", "5"];
        launch(&bin("groupby"), 4, mode, &args);
        let got: BTreeMap<i64, i64> = read_lines(&output)
            .iter()
            .map(|l| {
                let (k, s) = l.split_once('\t').unwrap();
                (k.parse().unwrap(), s.parse().unwrap())
            })
            .collect();
        assert_eq!(got, sums, "{mode}");

        let output = dir.path().join(format!("joined-{mode}"));
        let args = [
            "--fact",
            input,
            "--dim",
            dim_path.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--partitions",
            "6",
        ];
        launch(&bin("join"), 4, mode, &args);
        let mut got = read_lines(&output);
        got.sort();
        assert_eq!(got, joined, "{mode}");
    }
}

#[test]
fn an_rma_window_over_the_memory_budget_falls_back_to_alltoallv() {
    // A window copies an executor's map output into memory: TeraSort's sort entries (16
    // bytes a record), 1.6 MB each here, against a 1 MiB budget, so no executor makes one
    // and all exchange in rounds instead.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.bin");
    let records: Vec<u8> = (0..200_000u64)
        .flat_map(|i| ember::io::records::Record::generate(3, i).0)
        .collect();
    std::fs::write(&input, &records).unwrap();
    let output = dir.path().join("out");
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--executor-memory",
        "1m",
    ];
    let out = launch(&bin("terasort"), 3, "rma", &args);
    assert!(
        out.stderr
            .contains("does not fit the memory budget): using alltoallv"),
        "{out:#?}"
    );
    assert_sorted_permutation(&records, &read_parts(&output));
}
