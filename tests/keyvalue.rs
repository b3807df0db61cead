//! Group-by and join under mpirun (1, 2, 4 ranks) against sequential references, on
//! uniform keys and on skewed keys (one key in a third of the rows), from files and from
//! `--generate`; a malformed line fails naming the file and line.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use common::reference::{part_files, read_lines};
use common::{bin, mpirun, run};

const TIMEOUT: Duration = Duration::from_secs(60);
const HOT: i64 = 42;

/// `n` facts: keys spread over -50..450 (or, when `skewed`, key 42 in every third row),
/// values of both signs. Written as `key,value` lines over two part files of a directory,
/// with a blank line and CRLF endings in places.
fn write_facts(dir: &Path, n: usize, skewed: bool) -> Vec<(i64, i64)> {
    let mut s = 0x5eed_u64 + skewed as u64;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    };
    let facts: Vec<(i64, i64)> = (0..n)
        .map(|i| {
            let key = if skewed && i % 3 == 0 {
                HOT
            } else {
                (next() % 500) as i64 - 50
            };
            (key, (next() % 2_000_001) as i64 - 1_000_000)
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    for (p, half) in facts.chunks(n.div_ceil(2)).enumerate() {
        let mut text = String::new();
        for (i, (k, v)) in half.iter().enumerate() {
            text.push_str(&format!("{k},{v}"));
            text.push_str(if i % 97 == 0 { "\r\n" } else { "\n" });
            if i == 10 {
                text.push('\n');
            }
        }
        std::fs::write(dir.join(format!("part-{p:05}")), text).unwrap();
    }
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
    facts
}

/// A dimension: keys 0..400 once each (facts with other keys find no row) and 1000..1010
/// (keys without facts), the hot key among them.
fn write_dim(path: &Path) -> Vec<(i64, i64)> {
    let dim: Vec<(i64, i64)> = (0..400).chain(1000..1010).map(|k| (k, k * 3 - 7)).collect();
    let text: String = dim.iter().map(|(k, v)| format!("{k},{v}\n")).collect();
    std::fs::write(path, text).unwrap();
    dim
}

fn sums_reference(facts: &[(i64, i64)]) -> BTreeMap<i64, i128> {
    let mut sums = BTreeMap::new();
    for &(k, v) in facts {
        *sums.entry(k).or_insert(0) += v as i128;
    }
    sums
}

fn join_reference(facts: &[(i64, i64)], dim: &[(i64, i64)]) -> Vec<(i64, i64, i64)> {
    let table: HashMap<i64, i64> = dim.iter().copied().collect();
    let mut rows: Vec<(i64, i64, i64)> = facts
        .iter()
        .filter_map(|&(k, v)| table.get(&k).map(|&d| (k, v, d)))
        .collect();
    rows.sort_unstable();
    rows
}

fn read_sums(dir: &Path) -> BTreeMap<i64, i128> {
    let mut sums = BTreeMap::new();
    for line in read_lines(dir) {
        let (k, s) = line.split_once('\t').unwrap_or_else(|| panic!("{line:?}"));
        let k: i64 = k.parse().unwrap();
        assert!(
            sums.insert(k, s.parse().unwrap()).is_none(),
            "key {k} twice"
        );
    }
    sums
}

fn parse_row(line: &str) -> (i64, i64, i64) {
    let f: Vec<i64> = line.split('\t').map(|x| x.parse().unwrap()).collect();
    assert_eq!(f.len(), 3, "key<TAB>fact<TAB>dim: {line:?}");
    (f[0], f[1], f[2])
}

fn read_rows(dir: &Path) -> Vec<(i64, i64, i64)> {
    let mut rows: Vec<_> = read_lines(dir).iter().map(|l| parse_row(l)).collect();
    rows.sort_unstable();
    rows
}

/// Part files holding at least one row of `key`.
fn parts_with_key(dir: &Path, key: i64) -> usize {
    part_files(dir)
        .iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .any(|l| parse_row(l).0 == key)
        })
        .count()
}

fn launch(ranks: usize, job: &str, args: &[&str]) -> common::Run {
    run(mpirun(ranks, &bin(job), args), TIMEOUT)
}

fn check_groupby(ranks: usize, partitions: usize) {
    let root = tempfile::tempdir().unwrap();
    for skewed in [false, true] {
        let input = root.path().join(format!("facts-{skewed}"));
        let facts = write_facts(&input, 20_000, skewed);
        let output = root.path().join(format!("sums-{skewed}"));
        let p = partitions.to_string();
        let args = [
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ];
        launch(
            ranks,
            "groupby",
            &[&args[..], &["--partitions", &p]].concat(),
        )
        .assert_ok();
        assert_eq!(
            read_sums(&output),
            sums_reference(&facts),
            "{ranks} rank(s), skewed: {skewed}"
        );
    }
}

fn check_join(ranks: usize, partitions: usize) {
    let root = tempfile::tempdir().unwrap();
    let dim_path = root.path().join("dim.txt");
    let dim = write_dim(&dim_path);
    for skewed in [false, true] {
        let input = root.path().join(format!("facts-{skewed}"));
        let facts = write_facts(&input, 20_000, skewed);
        let output = root.path().join(format!("joined-{skewed}"));
        let p = partitions.to_string();
        let args = [
            "--fact",
            input.to_str().unwrap(),
            "--dim",
            dim_path.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--partitions",
            &p,
        ];
        launch(ranks, "join", &args).assert_ok();
        assert_eq!(
            read_rows(&output),
            join_reference(&facts, &dim),
            "{ranks} rank(s), skewed: {skewed}"
        );
        if skewed {
            // The hot key was split: its rows come from several reduce partitions (a
            // plain hash join writes them all into one part file).
            let spread = parts_with_key(&output, HOT);
            assert!(
                spread >= 2,
                "{ranks} rank(s): the hot key in {spread} part file(s)"
            );
        }
    }
}

#[test]
fn groupby_matches_a_sequential_sum_with_1_rank() {
    check_groupby(1, 3);
}

#[test]
fn groupby_matches_a_sequential_sum_with_2_ranks() {
    check_groupby(2, 4);
}

#[test]
fn groupby_matches_a_sequential_sum_with_4_ranks() {
    check_groupby(4, 7);
}

#[test]
fn join_matches_a_sequential_join_and_splits_the_hot_key_with_1_rank() {
    check_join(1, 4);
}

#[test]
fn join_matches_a_sequential_join_and_splits_the_hot_key_with_2_ranks() {
    check_join(2, 4);
}

#[test]
fn join_matches_a_sequential_join_and_splits_the_hot_key_with_4_ranks() {
    check_join(4, 8);
}

/// The facts `--generate SIZE --keys zipf --skew S` makes, computed here in sequence.
fn generated_facts(size: u64, skew: f64) -> Vec<(i64, i64)> {
    use ember::datagen::{KeyDist, KeySampler, Kind, kv_keys, kv_with};
    let n = Kind::KvZipf.records_for(size, 1);
    let keys = KeySampler::new(kv_keys(n), KeyDist::Zipf(skew));
    (0..n)
        .map(|i| {
            let (k, v) = kv_with(1, i, &keys);
            (k as i64, v)
        })
        .collect()
}

#[test]
fn generated_skewed_data_gives_the_sequential_results() {
    // Zipf s = 1.5 over 2,000 keys: key 0 holds about 38% of the rows.
    let facts = generated_facts(200 << 10, 1.5);
    let top = facts.iter().filter(|(k, _)| *k == 0).count() as f64 / facts.len() as f64;
    assert!((0.3..0.45).contains(&top), "top key share {top}");
    let root = tempfile::tempdir().unwrap();
    let gen_args = [
        "--generate",
        "200k",
        "--keys",
        "zipf",
        "--skew",
        "1.5",
        "--partitions",
        "6",
    ];

    let sums = root.path().join("sums");
    let out = ["--output", sums.to_str().unwrap()];
    launch(2, "groupby", &[&gen_args[..], &out].concat()).assert_ok();
    assert_eq!(read_sums(&sums), sums_reference(&facts));

    let joined = root.path().join("joined");
    let out = ["--output", joined.to_str().unwrap()];
    launch(4, "join", &[&gen_args[..], &out].concat()).assert_ok();
    let n = facts.len() as u64;
    let dim: Vec<(i64, i64)> = (0..ember::datagen::kv_keys(n))
        .map(|k| {
            let (k, v) = ember::datagen::dim_row(1, k);
            (k as i64, v)
        })
        .collect();
    assert_eq!(read_rows(&joined), join_reference(&facts, &dim));
    assert!(parts_with_key(&joined, 0) >= 2, "the hot key was not split");
}

#[test]
fn a_malformed_line_fails_the_job_naming_the_file_and_line() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("facts");
    write_facts(&input, 2000, false);
    let part = input.join("part-00001");
    let mut text = std::fs::read_to_string(&part).unwrap();
    // Line 501 of the second part file.
    let at = text.match_indices('\n').nth(499).unwrap().0 + 1;
    text.insert_str(at, "17;4\n");
    std::fs::write(&part, text).unwrap();
    let output = root.path().join("sums");
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    // Two executors: a task that failed on one could be retried on the other, but a
    // malformed line is not worth retrying.
    let out = launch(3, "groupby", &args);
    assert!(!out.success() && !out.timed_out, "{out:#?}");
    let expected = format!(
        "(not retried): {}: line 501: not a key,value line",
        part.display()
    );
    assert!(
        out.stderr.contains(&expected),
        "{expected} not in {}",
        out.stderr
    );
    assert!(!output.exists(), "a failed job left {}", output.display());

    let dim = root.path().join("dim.txt");
    std::fs::write(&dim, "1,2\n3,x\n").unwrap();
    let joined = root.path().join("joined");
    let args = [
        "--fact",
        input.to_str().unwrap(),
        "--dim",
        dim.to_str().unwrap(),
        "--output",
        joined.to_str().unwrap(),
        "--plain-join",
    ];
    std::fs::write(&part, "5,5\n").unwrap();
    let out = launch(1, "join", &args);
    assert!(!out.success() && !out.timed_out, "{out:#?}");
    let expected = format!("{}: line 2: not a key,value line (the value", dim.display());
    assert!(
        out.stderr.contains(&expected),
        "{expected} not in {}",
        out.stderr
    );
}

/// `facts` as `key,value` lines in one part file of the data set `dir`.
fn write_one_part(dir: &Path, facts: &[(i64, i64)]) {
    std::fs::create_dir(dir).unwrap();
    let text: String = facts.iter().map(|(k, v)| format!("{k},{v}\n")).collect();
    std::fs::write(dir.join("part-00000"), text).unwrap();
    std::fs::write(dir.join("_SUCCESS"), "").unwrap();
}

/// Fails naming the first wrong sum (a `BTreeMap`'s `assert_eq!` would print millions).
fn assert_same_sums(got: &BTreeMap<i64, i128>, want: &BTreeMap<i64, i128>, what: &str) {
    let wrong = want.iter().find(|(k, s)| got.get(k) != Some(s));
    assert!(
        got.len() == want.len() && wrong.is_none(),
        "{what}: {} keys summed, {} expected; first wrong: {wrong:?}",
        got.len(),
        want.len()
    );
}

#[test]
fn an_aggregation_of_many_times_the_memory_budget_spills_and_stays_right() {
    // 1.2 M facts over a million keys (16 MB of text) through executors of 1 MiB each:
    // the map-side-combined output still holds most rows, so map tasks spill and the
    // reduce side folds the rows as it reads them. Into 2 partitions, and into 32 (map
    // tasks stage records per bucket and must copy what is staged before they spill).
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("facts");
    let facts: Vec<(i64, i64)> = (0..1_200_000i64)
        .map(|i| ((i * 2_654_435_761) % 1_000_000, i % 1000 - 500))
        .collect();
    write_one_part(&input, &facts);
    let spill = root.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let want = sums_reference(&facts);
    for partitions in ["2", "32"] {
        let output = root.path().join(format!("sums-{partitions}"));
        let args = [
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--partitions",
            partitions,
            "--executor-memory",
            "1m",
        ];
        let mut cmd = mpirun(3, &bin("groupby"), &args);
        cmd.env("EMBER_SPILL_DIR", &spill);
        let out = run(cmd, TIMEOUT);
        out.assert_ok();
        let what = format!("3 ranks, {partitions} partitions");
        assert_same_sums(&read_sums(&output), &want, &what);
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains("shuffle map stage") && l.contains(", spilled ")),
            "{what}: {out:#?}"
        );
        assert_eq!(
            std::fs::read_dir(&spill).unwrap().count(),
            0,
            "{what}: spill files left"
        );
    }
}

#[test]
fn an_aggregation_of_distinct_keys_and_a_hot_one_stops_combining_and_stays_right() {
    // 600 k facts in 2 partitions (300 k records a map task, past the combine's 100 k
    // probe): the hot key in every sixth, the rest distinct. The probe finds 0.83 distinct
    // keys a record, so the map side stops combining; the sums must not change, at any
    // number of ranks.
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("facts");
    let facts: Vec<(i64, i64)> = (0..600_000i64)
        .map(|i| {
            let key = if i % 6 == 0 {
                HOT
            } else {
                1000 + (i * 2_654_435_761) % 100_000_007
            };
            (key, i % 1000 - 500)
        })
        .collect();
    write_one_part(&input, &facts);
    let want = sums_reference(&facts);
    for ranks in [1, 2, 4] {
        let output = root.path().join(format!("sums-{ranks}"));
        let args = [
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--partitions",
            "2",
        ];
        let mut cmd = mpirun(ranks, &bin("groupby"), &args);
        cmd.env("EMBER_LOG", "info,ember::rdd::partitioned_combine=debug");
        let out = run(cmd, TIMEOUT);
        out.assert_ok();
        assert!(
            out.stderr.contains("records pass on uncombined"),
            "{ranks} rank(s): the probe kept combining\n{}",
            out.stderr
        );
        assert_same_sums(&read_sums(&output), &want, &format!("{ranks} rank(s)"));
    }
}

#[path = "common/groups.rs"]
mod groups;

/// The `name = ...` lines tests/bin/groups.rs prints, computed sequentially.
fn groups_reference(n: u64, keys: u64) -> Vec<String> {
    let side = |n: u64, salt: u64| {
        let mut m: HashMap<String, Vec<u64>> = HashMap::new();
        for i in 0..n {
            m.entry(groups::key_of(i ^ salt, keys))
                .or_default()
                .push(groups::value_of(i));
        }
        m.values_mut().for_each(|vs| vs.sort_unstable());
        m
    };
    let (left, right) = (side(n, 0), side(n / 2, 1));
    let mut sum = 0u64;
    for (k, vs) in &left {
        sum = sum.wrapping_add(groups::digest(k, vs));
    }
    let group = groups::summary("group_by_key", left.len() as u64, n, sum);
    let mut all: std::collections::BTreeSet<&String> = left.keys().collect();
    all.extend(right.keys());
    let (empty, mut sum) = (Vec::new(), 0u64);
    for k in &all {
        let vs = left.get(*k).unwrap_or(&empty);
        let ws = right.get(*k).unwrap_or(&empty);
        let d = groups::digest(k, vs).wrapping_mul(3);
        sum = sum.wrapping_add(d.wrapping_add(groups::digest(k, ws)));
    }
    let co = groups::summary("cogroup", all.len() as u64, n + n / 2, sum);
    vec![group, co]
}

#[test]
fn groups_of_many_times_the_memory_budget_spill_on_the_reduce_side_and_stay_whole() {
    // 1.5 M string-keyed values in 200,000 groups (about 20 MB decoded per side) through
    // executors of 1 MiB: the reduce side of group_by_key and of cogroup spills its map of
    // groups and merges the runs, every value kept, every key once.
    let (n, keys) = (1_000_000u64, 200_000u64);
    let want = groups_reference(n, keys);
    for ranks in [2, 3] {
        let spill = tempfile::tempdir().unwrap();
        let (n_arg, keys_arg) = (n.to_string(), keys.to_string());
        let args = [
            "--n",
            &n_arg,
            "--keys",
            &keys_arg,
            "--executor-memory",
            "1m",
            "--no-event-log",
        ];
        let mut cmd = mpirun(ranks, &common::example("groups"), &args);
        cmd.env("EMBER_SPILL_DIR", spill.path());
        let out = run(cmd, TIMEOUT);
        out.assert_ok();
        let got: Vec<&str> = out.stdout.lines().filter(|l| l.contains(" = ")).collect();
        assert_eq!(got, want, "at {ranks} ranks");
        // The driver alone receives collect_to_driver's rows.
        for rank in 0..ranks {
            let expect = match rank {
                0 => format!("collect_to_driver on rank 0: {keys} rows"),
                r => format!("collect_to_driver on rank {r}: none"),
            };
            assert!(
                out.stdout.lines().any(|l| l == expect),
                "{expect}: {out:#?}"
            );
        }
        // Job 0 is group_by_key, job 1 the cogroup: both reduce sides spill.
        for job in ["job 0: result stage", "job 1: result stage"] {
            let spilled = out
                .stderr
                .lines()
                .any(|l| l.contains(job) && l.contains(", spilled "));
            assert!(spilled, "{job} did not spill: {out:#?}");
        }
        let left = std::fs::read_dir(spill.path()).unwrap().count();
        assert_eq!(left, 0, "spill files left at {ranks} ranks");
    }
}
