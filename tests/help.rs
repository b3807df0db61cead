//! `--help` of the `ember` tool, its subcommands and the jobs reads as help: the command's
//! own description first, no doc comment of the engine options, no raw code.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bin, run};

fn help(program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(bin(program));
    cmd.args(args);
    let out = run(cmd, Duration::from_secs(30));
    out.assert_ok();
    out.stdout
}

/// The first line says what the command does; the text holds no Rust and shows the usage.
fn assert_reads_well(text: &str, first: &str, what: &str) {
    assert!(
        text.lines().next().unwrap_or("").starts_with(first),
        "{what}: the help should open with {first:?}:\n{text}"
    );
    for raw in ["```", "#[", "Parser", "Engine options, as flags"] {
        assert!(!text.contains(raw), "{what}: {raw:?} in the help:\n{text}");
    }
    assert!(text.contains("Usage: "), "{what}:\n{text}");
}

#[test]
fn every_command_and_job_has_readable_help() {
    for flag in ["-h", "--help"] {
        let text = help("ember", &[flag]);
        assert_reads_well(&text, "ember: a Spark-style batch engine on MPI", "ember");
        for sub in ["info", "submit", "datagen"] {
            assert!(
                text.contains(&format!("  {sub} ")),
                "{sub} not listed:\n{text}"
            );
        }
        assert!(
            !text.contains("debug"),
            "the test diagnostics are hidden:\n{text}"
        );
        for (sub, first) in [
            ("info", "Start as an ember job"),
            ("submit", "Launch a job in one process"),
            ("datagen", "Write a data set of FORMATS.md"),
        ] {
            assert_reads_well(&help("ember", &[sub, flag]), first, sub);
        }
        for (job, first) in [
            ("wordcount", "Count words"),
            ("terasort", "Sort 100-byte records"),
            ("pagerank", "PageRank over a SNAP edge list"),
            ("kmeans", "KMeans over points"),
            ("groupby", "Sum the values of each key"),
            ("join", "Inner join of a fact and a dimension file"),
        ] {
            let text = help(job, &[flag]);
            assert_reads_well(&text, first, job);
            assert!(text.contains("Engine options:\n"), "{job}:\n{text}");
        }
    }
    let submit = help("ember", &["submit", "--help"]);
    assert!(
        submit.contains(
            "A built-in job (wordcount, terasort, pagerank, kmeans, groupby, join) or the path of any job binary"
        ),
        "{submit}"
    );
}
