//! Hand-written KMeans baseline, as ember's `kmeans` job: Lloyd's algorithm from the first
//! K points in file order (blank lines skipped), fixed iteration count, a centre that gets
//! no point keeps its place; ties go to the lower centre.
//!
//!     baseline-kmeans --input DIR|FILE --output DIR --k K [--iterations 10]
//!
//! The points are parsed once, in parallel, into one flat `f64` array; each iteration is
//! a rayon fold over chunks of points into per-chunk (sums, counts), reduced. Writes the
//! K centres (`x y ...` lines). Prints `points N dims D` on stdout.

#[path = "common.rs"]
mod common;

use std::io::Write;

use rayon::prelude::*;

fn closest(centres: &[f64], dims: usize, p: &[f64]) -> usize {
    let mut best = (0, f64::INFINITY);
    for (i, c) in centres.chunks_exact(dims).enumerate() {
        let d: f64 = c.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
        if d < best.1 {
            best = (i, d);
        }
    }
    best.0
}

pub fn main() {
    let input = common::arg("--input", None);
    let output = common::arg("--output", None);
    let k: usize = common::arg("--k", None)
        .parse()
        .unwrap_or_else(|_| common::fail("--k: not a number"));
    let iterations: usize = common::arg("--iterations", Some("10"))
        .parse()
        .unwrap_or_else(|_| common::fail("--iterations: not a number"));
    let maps = common::map_inputs(&input);
    let pieces: Vec<(String, &[u8])> = maps
        .iter()
        .flat_map(|(p, m)| {
            let name = p.display().to_string();
            common::line_chunks(m, 1 << 20)
                .into_iter()
                .map(move |c| (name.clone(), c))
        })
        .collect();
    // Per piece: (coordinates, dimensions); pieces stay in file order.
    let parsed: Vec<(Vec<f64>, usize)> = pieces
        .par_iter()
        .map(|(file, piece)| {
            let text = std::str::from_utf8(piece)
                .unwrap_or_else(|e| common::fail(&format!("{file}: invalid UTF-8: {e}")));
            let mut coords = Vec::with_capacity(piece.len() / 8);
            let mut dims = 0;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let before = coords.len();
                for x in line.split_whitespace() {
                    coords.push(x.parse::<f64>().unwrap_or_else(|_| {
                        common::fail(&format!("{file}: not a number: {x:?} in {line:?}"))
                    }));
                }
                let d = coords.len() - before;
                if dims != 0 && d != dims {
                    common::fail(&format!("{file}: {d} coordinates in {line:?}, not {dims}"));
                }
                dims = d;
            }
            (coords, dims)
        })
        .collect();
    let dims = parsed.iter().map(|p| p.1).find(|&d| d > 0).unwrap_or(1);
    if parsed.iter().any(|p| p.1 != 0 && p.1 != dims) {
        common::fail("points of different dimensions");
    }
    let points: Vec<f64> = parsed.into_iter().flat_map(|p| p.0).collect();
    let n = points.len() / dims;
    if n < k || k == 0 {
        common::fail(&format!("{n} points, fewer than k = {k}"));
    }

    let mut centres: Vec<f64> = points[..k * dims].to_vec();
    for _ in 0..iterations {
        let (sums, counts) = points
            .par_chunks(dims * 4096)
            .fold(
                || (vec![0.0f64; k * dims], vec![0u64; k]),
                |(mut sums, mut counts), chunk| {
                    for p in chunk.chunks_exact(dims) {
                        let c = closest(&centres, dims, p);
                        sums[c * dims..(c + 1) * dims]
                            .iter_mut()
                            .zip(p)
                            .for_each(|(s, x)| *s += x);
                        counts[c] += 1;
                    }
                    (sums, counts)
                },
            )
            .reduce(
                || (vec![0.0f64; k * dims], vec![0u64; k]),
                |(mut s, mut c), (s2, c2)| {
                    s.iter_mut().zip(s2).for_each(|(a, b)| *a += b);
                    c.iter_mut().zip(c2).for_each(|(a, b)| *a += b);
                    (s, c)
                },
            );
        for (i, &count) in counts.iter().enumerate() {
            if count > 0 {
                for d in 0..dims {
                    centres[i * dims + d] = sums[i * dims + d] / count as f64;
                }
            }
        }
    }

    let mut text = Vec::new();
    for c in centres.chunks_exact(dims) {
        let line: Vec<String> = c.iter().map(f64::to_string).collect();
        writeln!(text, "{}", line.join(" ")).unwrap();
    }
    common::write_committed(&common::output_part(&output), &[text]);
    println!("points {n} dims {dims}");
}
