//! WordCount under mpirun against a sequential count; its plan; and every bad input.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::{bin, mpirun, run};

const TIMEOUT: Duration = Duration::from_secs(90);

/// Text with what real inputs hold: tabs, runs of spaces, empty lines, Unicode words and
/// spaces, CRLF, and a last line without a newline.
fn tricky_text(lines: usize) -> String {
    let words = [
        "the",
        "ember",
        "naïve",
        "日本語",
        "mpi",
        "a",
        "rdd",
        "Straße",
        "x",
    ];
    let mut text = String::new();
    for i in 0..lines {
        let n = (i * 7) % 11;
        for j in 0..n {
            text.push_str(words[(i + j * 3) % words.len()]);
            text.push_str(match (i + j) % 5 {
                0 => " ",
                1 => "\t",
                2 => "   ",
                3 => "\u{00a0}",
                _ => " \t ",
            });
        }
        text.push_str(if i % 13 == 0 { "\r\n" } else { "\n" });
        if i % 17 == 0 {
            text.push('\n');
        }
    }
    text.push_str("last line without newline");
    text
}

fn reference(text: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for w in text.split_whitespace() {
        *counts.entry(w.to_string()).or_insert(0) += 1;
    }
    counts
}

fn read_counts(dir: &Path) -> HashMap<String, u64> {
    assert!(
        dir.join("_SUCCESS").exists(),
        "no _SUCCESS in {}",
        dir.display()
    );
    let mut counts = HashMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("part-") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let (w, n) = line
                .rsplit_once('\t')
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            assert!(
                counts.insert(w.to_string(), n.parse().unwrap()).is_none(),
                "{w} twice"
            );
        }
    }
    counts
}

/// `words` words of `distinct` different ones (each as often as the others, in a
/// scrambled order), twelve a line.
fn many_words_text(words: u64, distinct: u64) -> String {
    let mut text = String::new();
    for i in 0..words {
        // An odd multiplier scrambles the order; the modulus keeps every word's share.
        let w = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % distinct;
        text.push_str(&format!("w{w}"));
        text.push(if i % 12 == 11 { '\n' } else { ' ' });
    }
    text
}

fn check(ranks: usize, partitions: usize) {
    check_text(ranks, partitions, &tricky_text(3000));
}

fn check_text(ranks: usize, partitions: usize, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, text).unwrap();
    let output = dir.path().join("out");
    let out = run(
        mpirun(
            ranks,
            &bin("wordcount"),
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--partitions",
                &partitions.to_string(),
            ],
        ),
        TIMEOUT,
    );
    out.assert_ok();
    assert_eq!(read_counts(&output), reference(text));
}

#[test]
fn wordcount_matches_a_sequential_count_with_1_rank() {
    check(1, 3);
}

#[test]
fn wordcount_matches_a_sequential_count_with_2_ranks() {
    check(2, 7);
}

#[test]
fn wordcount_matches_a_sequential_count_with_4_ranks() {
    check(4, 16);
}

/// A task's combine table past the core's cache (60 k distinct words, 4 MB of slots),
/// after a probe of the task's first 100 k words: the words after it are merged as the
/// flat_map hands them on, each slot fetched ahead (`CombineMap::merge_delayed`).
#[test]
fn wordcount_of_many_distinct_words_matches_a_sequential_count() {
    let text = many_words_text(600_000, 60_000);
    for ranks in [1, 3] {
        check_text(ranks, 2, &text);
    }
}

#[test]
fn wordcount_reads_directories_and_globs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (a, b) = (tricky_text(500), tricky_text(700));
    std::fs::write(data.join("a.txt"), &a).unwrap();
    std::fs::write(data.join("b.txt"), &b).unwrap();
    std::fs::write(data.join("_SUCCESS"), "ignored").unwrap();
    let both = reference(&format!("{a}\n{b}"));
    for (i, input) in [
        data.to_str().unwrap().to_string(),
        format!("{}/*.txt", data.display()),
    ]
    .iter()
    .enumerate()
    {
        let output = dir.path().join(format!("out{i}"));
        let out = run(
            mpirun(
                3,
                &bin("wordcount"),
                &["--input", input, "--output", output.to_str().unwrap()],
            ),
            TIMEOUT,
        );
        out.assert_ok();
        assert_eq!(read_counts(&output), both, "input {input}");
    }
}

#[test]
fn generated_text_runs_without_input() {
    let out = run(
        mpirun(3, &bin("wordcount"), &["--generate-lines", "20000"]),
        TIMEOUT,
    );
    out.assert_ok();
    assert!(
        out.stdout.contains(&format!("{} words", 20000 * 13)),
        "{out:#?}"
    );
}

#[test]
fn explain_shows_two_stages_and_the_shuffle_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b a\n").unwrap();
    let out = run(
        mpirun(
            2,
            &bin("wordcount"),
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                dir.path().join("o").to_str().unwrap(),
                "--partitions",
                "2",
                "--explain",
            ],
        ),
        TIMEOUT,
    );
    out.assert_ok();
    let plan: Vec<&str> = out
        .stdout
        .lines()
        .take_while(|l| !l.starts_with("wrote"))
        .collect();
    assert_eq!(plan[0], "stage 1 (result)", "{plan:#?}");
    assert!(
        plan[1].starts_with("(2) combine_by_key (shuffle 0, 2 partitions)"),
        "{plan:#?}"
    );
    assert_eq!(
        plan[2].trim(),
        "+- shuffle 0 <- stage 0 (shuffle map)",
        "{plan:#?}"
    );
    assert!(
        plan[3].trim_start().starts_with("(2) map_side_combine"),
        "{plan:#?}"
    );
    assert!(plan.last().unwrap().contains("text_file"), "{plan:#?}");
    assert_eq!(plan.iter().filter(|l| l.contains("shuffle map")).count(), 1);
}

/// Runs wordcount expecting failure: non-zero exit, no hang, and `message` from the driver.
fn expect_failure(ranks: usize, args: &[&str], message: &str) -> common::Run {
    let out = run(
        mpirun(ranks, &bin("wordcount"), args),
        Duration::from_secs(60),
    );
    assert!(!out.timed_out, "hung: {out:#?}");
    assert_ne!(out.status, Some(0), "{out:#?}");
    assert!(
        out.stderr.contains("ember: [driver 0] failed: ") && out.stderr.contains(message),
        "{out:#?}"
    );
    out
}

#[test]
fn a_missing_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-file.txt");
    let output = dir.path().join("out");
    let msg = format!("input {}: no such file or directory", missing.display());
    expect_failure(
        4,
        &[
            "--input",
            missing.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
        &msg,
    );
    assert!(!output.exists());
}

#[test]
fn a_directory_without_files_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let output = dir.path().join("out");
    let msg = format!("input {}: no files to read", empty.display());
    expect_failure(
        2,
        &[
            "--input",
            empty.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
        &msg,
    );
    assert!(!output.exists());
}

#[test]
fn invalid_utf8_names_file_and_offset_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.txt");
    let mut bytes = tricky_text(200).into_bytes();
    // At a line start, so the bad byte is not inside a multi-byte character.
    let at = bytes.len() / 2
        + bytes[bytes.len() / 2..]
            .iter()
            .position(|&b| b == b'\n')
            .unwrap()
        + 1;
    bytes.insert(at, 0xff);
    std::fs::write(&input, &bytes).unwrap();
    let output = dir.path().join("out");
    let msg = format!("{}: not valid UTF-8 at byte offset {at}", input.display());
    let out = expect_failure(
        3,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
        &msg,
    );
    assert!(out.stderr.contains("failed 4 times"), "{out:#?}");
    assert!(!output.exists(), "a failed job leaves no output");

    // Told to skip bad lines, the job counts the rest.
    let out = run(
        mpirun(
            3,
            &bin("wordcount"),
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--skip-bad-lines",
            ],
        ),
        TIMEOUT,
    );
    out.assert_ok();
    let good: String = String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.contains('\u{fffd}'))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(read_counts(&output), reference(&good));
}

#[test]
fn an_existing_output_directory_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b\n").unwrap();
    let output = dir.path().join("out");
    std::fs::create_dir(&output).unwrap();
    std::fs::write(output.join("keep.txt"), "precious").unwrap();
    let msg = format!("output {} already exists", output.display());
    expect_failure(
        4,
        &[
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
        &msg,
    );
    assert_eq!(
        std::fs::read_to_string(output.join("keep.txt")).unwrap(),
        "precious"
    );
    assert!(!output.join("_SUCCESS").exists());

    let out = run(
        mpirun(
            2,
            &bin("wordcount"),
            &[
                "--input",
                input.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--overwrite",
            ],
        ),
        TIMEOUT,
    );
    out.assert_ok();
    assert_eq!(read_counts(&output), reference("a b\n"));

    // An overwrite whose job fails (bad input) keeps the old output, whole.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"c d\n\xff\n").unwrap();
    let msg = format!("{}: not valid UTF-8", bad.display());
    expect_failure(
        2,
        &[
            "--input",
            bad.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--overwrite",
        ],
        &msg,
    );
    assert_eq!(read_counts(&output), reference("a b\n"));
}

#[test]
fn a_half_written_input_directory_is_refused_unless_accepted() {
    // Part files without _SUCCESS: the output of a job that failed or is still running.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("half");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("part-00000"), "a b a\n").unwrap();
    std::fs::write(input.join("part-00001"), "b c\n").unwrap();
    let output = dir.path().join("out");
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    let msg = format!("input {}: part files but no _SUCCESS", input.display());
    expect_failure(3, &args, &msg);
    assert!(!output.exists());
    // Accepted on request, on every rank.
    let mut cmd = mpirun(3, &bin("wordcount"), &args);
    cmd.env("EMBER_ACCEPT_INCOMPLETE_INPUT", "true");
    run(cmd, Duration::from_secs(60)).assert_ok();
    assert_eq!(read_counts(&output).get("a"), Some(&2));
    // Complete: read without a flag.
    std::fs::write(input.join("_SUCCESS"), "").unwrap();
    let again = dir.path().join("again");
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        again.to_str().unwrap(),
    ];
    run(mpirun(3, &bin("wordcount"), &args), Duration::from_secs(60)).assert_ok();
}

#[test]
fn two_jobs_writing_one_output_one_wins_and_the_output_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let text = tricky_text(60_000);
    let input = dir.path().join("input.txt");
    std::fs::write(&input, &text).unwrap();
    let output = dir.path().join("out");
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--partitions",
        "6",
    ];
    let jobs: Vec<_> = (0..2)
        .map(|_| common::spawn(mpirun(3, &bin("wordcount"), &args)))
        .collect();
    let runs: Vec<common::Run> = jobs
        .into_iter()
        .map(|child| {
            let mut child = child;
            let (out, err) = (
                common::drain_output(child.stdout.take()),
                common::drain_output(child.stderr.take()),
            );
            common::wait(child, out, err, Duration::from_secs(90))
        })
        .collect();
    assert!(runs.iter().all(|r| !r.timed_out), "{runs:#?}");
    let won = runs.iter().filter(|r| r.status == Some(0)).count();
    assert_eq!(won, 1, "exactly one job publishes: {runs:#?}");
    let lost = runs.iter().find(|r| r.status != Some(0)).unwrap();
    assert!(
        lost.stderr.contains("another job is writing it") || lost.stderr.contains("already exists"),
        "{lost:#?}"
    );
    assert_eq!(
        read_counts(&output),
        reference(&text),
        "the output is whole"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(names.is_empty(), "no staging directory left: {names:?}");
}
