//! Sequential references and inputs shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// Writes a SNAP-style edge list (comments, tabs and spaces, duplicate edges) and returns
/// its edges.
pub fn random_graph(path: &Path, vertices: u64, edges: usize, seed: u64) -> Vec<(u64, u64)> {
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
pub fn pagerank_reference(edges: &[(u64, u64)], iterations: usize) -> BTreeMap<u64, f64> {
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

/// The `part-*` files of a committed output directory (it must have `_SUCCESS`), in part
/// order.
pub fn part_files(dir: &Path) -> Vec<std::path::PathBuf> {
    assert!(
        dir.join("_SUCCESS").exists(),
        "no _SUCCESS in {}",
        dir.display()
    );
    let mut parts: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
        })
        .collect();
    parts.sort();
    parts
}

/// Lines of every `part-*` file of a committed output directory, in part order.
pub fn read_lines(dir: &Path) -> Vec<String> {
    part_files(dir)
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Lloyd's algorithm from the first `k` points, sequentially.
pub fn kmeans_reference(points: &[Vec<f64>], k: usize, iterations: usize) -> Vec<Vec<f64>> {
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

/// Points around 4 centres, `D = 3`, deterministic for `seed`; also written to `path`.
pub fn write_points(path: &Path, n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let points: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let centre = (i % 4) as f64 * 10.0;
            vec![centre + next(), -centre + next(), next() * 3.0]
        })
        .collect();
    let text: String = points
        .iter()
        .map(|p| format!("{} {} {}\n", p[0], p[1], p[2]))
        .collect();
    std::fs::write(path, text).unwrap();
    points
}

/// Parses `vertex<TAB>rank` lines.
pub fn parse_ranks(lines: &[String]) -> std::collections::HashMap<u64, f64> {
    lines
        .iter()
        .map(|l| {
            let (v, r) = l.split_once('\t').unwrap();
            (v.parse().unwrap(), r.parse().unwrap())
        })
        .collect()
}

/// Checks PageRank output against the reference within 1e-9 relative.
pub fn assert_ranks(got: &std::collections::HashMap<u64, f64>, want: &BTreeMap<u64, f64>) {
    assert_eq!(got.len(), want.len(), "vertices");
    for (v, r) in want {
        let g = got[v];
        assert!(((g - r) / r).abs() < 1e-9, "vertex {v}: {g} vs {r}");
    }
}

/// Checks KMeans centres (one a line) against the reference within 1e-9 relative.
pub fn assert_centres(lines: &[String], want: &[Vec<f64>]) {
    let got: Vec<Vec<f64>> = lines
        .iter()
        .map(|l| l.split(' ').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(got.len(), want.len(), "number of centres: {got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len(), "coordinates of centre {g:?} vs {w:?}");
        for (a, b) in g.iter().zip(w) {
            assert!(((a - b) / b).abs() < 1e-9, "centre {g:?} vs {w:?}");
        }
    }
}

/// The bytes of every `part-*` file of a committed output directory, in part order.
pub fn read_parts(dir: &Path) -> Vec<u8> {
    part_files(dir)
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Checks that `output` holds exactly the 100-byte records of `input` (the same multiset:
/// none lost, none duplicated, none altered), ordered by their 10-byte keys.
pub fn assert_sorted_permutation(input: &[u8], output: &[u8]) {
    assert_eq!(input.len() % 100, 0, "input is whole records");
    assert_eq!(output.len(), input.len(), "output bytes");
    let records = |b: &[u8]| b.chunks_exact(100).map(<[u8]>::to_vec).collect::<Vec<_>>();
    let got = records(output);
    assert!(
        got.windows(2).all(|w| w[0][..10] <= w[1][..10]),
        "keys out of order"
    );
    let (mut got, mut want) = (got, records(input));
    got.sort_unstable();
    want.sort_unstable();
    assert!(got == want, "the output is not a permutation of the input");
}
