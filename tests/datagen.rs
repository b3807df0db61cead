//! `ember datagen`: every format of FORMATS.md, and the same bytes whatever the number of
//! writers (one process, or every rank of an mpirun writing its own parts).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{bin, mpirun, run};

fn generate(ranks: usize, kind: &str, dir: &Path, seed: &str) {
    let args = [
        "datagen",
        kind,
        "--size",
        "300k",
        "--parts",
        "5",
        "--seed",
        seed,
        "--output",
        dir.to_str().unwrap(),
    ];
    let out = if ranks == 1 {
        let mut cmd = Command::new(bin("ember"));
        cmd.args(args);
        run(cmd, Duration::from_secs(60))
    } else {
        run(mpirun(ranks, &bin("ember"), &args), Duration::from_secs(60))
    };
    out.assert_ok();
    // Complete data sets say so, whatever the number of writers; no marker is left.
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('_'))
        .collect();
    names.sort();
    assert_eq!(names, ["_SUCCESS"], "{ranks} writer(s)");
}

fn concatenated(dir: &Path) -> Vec<u8> {
    (0..5)
        .flat_map(|p| std::fs::read(dir.join(format!("part-{p:05}"))).unwrap())
        .collect()
}

fn check_format(kind: &str, data: &[u8]) {
    assert!(
        data.len() > 250_000 && data.len() < 350_000,
        "{kind}: {} bytes for 300k",
        data.len()
    );
    if kind == "sort" {
        assert_eq!(data.len() % 100, 0);
        for (i, r) in data.chunks(100).enumerate() {
            assert_eq!(&r[10..20], format!("{i:010}").as_bytes());
            assert!(r[20..99].iter().all(|&b| b == b'.') && r[99] == b'\n');
        }
        return;
    }
    let text = std::str::from_utf8(data).expect("UTF-8");
    assert!(text.ends_with('\n'));
    let mut dim_keys = 0u64;
    for line in text.lines() {
        match kind {
            "text" => {
                let words: Vec<&str> = line.split(' ').collect();
                assert_eq!(words.len(), 13, "{line}");
                assert!(
                    words.iter().all(|w| (2..=12).contains(&w.len())
                        && w.bytes().all(|b| b.is_ascii_lowercase()))
                );
            }
            "graph" => {
                let (s, d) = line.split_once('\t').unwrap();
                s.parse::<u64>().unwrap();
                d.parse::<u64>().unwrap();
            }
            "points" => {
                let xs: Vec<f64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
                assert_eq!(xs.len(), 4);
            }
            "kv" | "kv-zipf" => {
                let (k, v) = line.split_once(',').unwrap();
                k.parse::<u64>().unwrap();
                v.parse::<i64>().unwrap();
            }
            "kv-dim" => {
                let (k, v) = line.split_once(',').unwrap();
                assert_eq!(
                    k.parse::<u64>().unwrap(),
                    dim_keys,
                    "every key once, in order"
                );
                dim_keys += 1;
                v.parse::<i64>().unwrap();
            }
            other => panic!("unknown kind {other}"),
        }
    }
}

#[test]
fn every_format_is_well_formed_and_independent_of_the_number_of_writers() {
    let root = tempfile::tempdir().unwrap();
    for kind in ["text", "sort", "graph", "points", "kv", "kv-zipf", "kv-dim"] {
        let one = root.path().join(format!("{kind}-1"));
        let three = root.path().join(format!("{kind}-3"));
        generate(1, kind, &one, "7");
        generate(3, kind, &three, "7");
        let data = concatenated(&one);
        assert_eq!(data, concatenated(&three), "{kind}: 1 and 3 writers differ");
        check_format(kind, &data);
        if kind == "kv-zipf" {
            // Skewed: key 0 (the most frequent) holds far more than its 1/keys share.
            let lines = data.split(|&b| b == b'\n').filter(|l| !l.is_empty());
            let (mut all, mut top) = (0usize, 0usize);
            for l in lines {
                all += 1;
                top += l.starts_with(b"0,") as usize;
            }
            assert!(top * 20 > all, "key 0 in {top} of {all} lines");
        }
        let other = root.path().join(format!("{kind}-seed"));
        generate(1, kind, &other, "8");
        assert_ne!(
            data,
            concatenated(&other),
            "{kind}: the seed changes the data"
        );
    }
}
