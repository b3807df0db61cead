//! Caching, recovery from lost blocks, PageRank and KMeans against sequential references.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

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
    let budget = memory
        .trim_end_matches('k')
        .parse::<u64>()
        .map_or(u64::MAX, |k| k << 10);
    assert!(
        peak <= budget,
        "cache memory peak {peak} over the budget {budget}"
    );
}

#[test]
fn cached_partitions_are_reused_and_rebuilt_when_lost() {
    for ranks in [1, 2, 4] {
        check_cache(ranks, "memory", "1g");
        check_cache(ranks, "mmap", "1g");
    }
}

#[test]
fn caching_over_the_budget_spills_or_evicts_and_stays_correct() {
    // ~3.4 MB of cached data against a 256 KiB budget per executor.
    check_cache(3, "memory-and-mmap", "256k");
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = mpirun(
        3,
        &example("persistence"),
        &["--level", "memory", "--executor-memory", "256k"],
    );
    cmd.env("EMBER_LOCAL_DIR", scratch.path());
    let out = run(cmd, TIMEOUT);
    out.assert_ok();
    let v = named_values(&out.stdout);
    let expect: u64 = (0..200_000u64).map(|i| i % 97 + i * 3).sum();
    for action in ["first", "second", "third", "fourth"] {
        assert_eq!(v[action], expect.to_string(), "{action}: {out:#?}");
    }
    // Each executor keeps what fits (~150 KB partitions, 256 KiB budget) and evicts the
    // least recently used rest, which the next action computes again.
    let recomputed: u64 = v["second_sources"].parse().unwrap();
    assert!(
        (1..=6).contains(&recomputed),
        "evicted and recomputed: {recomputed}"
    );
    assert!(v["cache_memory_peak"].parse::<u64>().unwrap() <= 256 << 10);
}

fn random_graph(path: &Path, vertices: u64, edges: usize, seed: u64) -> Vec<(u64, u64)> {
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    };
    let mut list = Vec::new();
    let mut text = String::from("# a SNAP-style edge list\n# FromNodeId\tToNodeId\n");
    for i in 0..edges {
        let (a, b) = (next() % vertices, next() % vertices);
        list.push((a, b));
        text.push_str(&if i % 3 == 0 {
            format!("{a}\t{b}\n")
        } else {
            format!("{a}  {b}\n")
        });
        if i % 10 == 0 {
            list.push((a, b)); // duplicate edges count once
            text.push_str(&format!("{a}\t{b}\n"));
        }
    }
    std::fs::write(path, text).unwrap();
    list
}

/// Spark's example PageRank, sequentially.
fn pagerank_reference(edges: &[(u64, u64)], iterations: usize) -> BTreeMap<u64, f64> {
    let mut links: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for &(a, b) in edges {
        if seen.insert((a, b)) {
            links.entry(a).or_default().push(b);
        }
    }
    let mut ranks: BTreeMap<u64, f64> = links.keys().map(|&v| (v, 1.0)).collect();
    for _ in 0..iterations {
        let mut sums: BTreeMap<u64, f64> = BTreeMap::new();
        for (v, dsts) in &links {
            if let Some(r) = ranks.get(v) {
                for d in dsts {
                    *sums.entry(*d).or_default() += r / dsts.len() as f64;
                }
            }
        }
        ranks = sums
            .into_iter()
            .map(|(v, s)| (v, 0.15 + 0.85 * s))
            .collect();
    }
    ranks
}

fn read_lines(dir: &Path) -> Vec<String> {
    assert!(
        dir.join("_SUCCESS").exists(),
        "no _SUCCESS in {}",
        dir.display()
    );
    let mut parts: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    parts.sort();
    parts
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
        })
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn pagerank_matches_the_sequential_reference() {
    for ranks in [1, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("edges.txt");
        let edges = random_graph(&input, 300, 2000, ranks as u64);
        let output = dir.path().join("ranks");
        let out = run(
            mpirun(
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
            ),
            TIMEOUT,
        );
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
        assert!(out.stderr.contains("cache hits"), "{out:#?}");
    }
}

fn kmeans_reference(points: &[Vec<f64>], k: usize, iterations: usize) -> Vec<Vec<f64>> {
    let mut centres: Vec<Vec<f64>> = points[..k].to_vec();
    for _ in 0..iterations {
        let mut sums = vec![(vec![0.0; points[0].len()], 0u64); k];
        for p in points {
            let best = (0..k)
                .min_by(|&a, &b| {
                    let d =
                        |c: &Vec<f64>| c.iter().zip(p).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
                    d(&centres[a]).total_cmp(&d(&centres[b]))
                })
                .unwrap();
            sums[best].0.iter_mut().zip(p).for_each(|(s, x)| *s += x);
            sums[best].1 += 1;
        }
        for (c, (s, n)) in centres.iter_mut().zip(sums) {
            if n > 0 {
                *c = s.iter().map(|x| x / n as f64).collect();
            }
        }
    }
    centres
}

#[test]
fn kmeans_matches_the_sequential_reference() {
    for ranks in [1, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("points.txt");
        let mut s = ranks as u64 + 5;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let points: Vec<Vec<f64>> = (0..3000)
            .map(|i| {
                let centre = (i % 4) as f64 * 10.0;
                vec![centre + next(), -centre + next(), next() * 3.0]
            })
            .collect();
        let text: String = points
            .iter()
            .map(|p| format!("{} {} {}\n", p[0], p[1], p[2]))
            .collect();
        std::fs::write(&input, text).unwrap();
        let output = dir.path().join("centres");
        let out = run(
            mpirun(
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
            ),
            TIMEOUT,
        );
        out.assert_ok();
        let got: Vec<Vec<f64>> = read_lines(&output)
            .iter()
            .map(|l| l.split(' ').map(|x| x.parse().unwrap()).collect())
            .collect();
        let want = kmeans_reference(&points, 4, 5);
        assert_eq!(got.len(), 4);
        for (g, w) in got.iter().zip(&want) {
            for (a, b) in g.iter().zip(w) {
                assert!(
                    ((a - b) / b).abs() < 1e-9,
                    "{ranks} ranks: centre {g:?} vs {w:?}"
                );
            }
        }
    }
}
