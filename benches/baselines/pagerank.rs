//! Hand-written PageRank baseline with the semantics of Spark's example (and of ember's
//! `pagerank` job): distinct edges; every vertex with out-links starts at rank 1.0; each
//! iteration a vertex holding a rank sends rank / out-degree along each of its links, and
//! the vertices that received something get 0.15 + 0.85 × sum. A vertex that received
//! nothing has no rank from then on (it neither contributes nor appears in the output),
//! exactly as the join of links with ranks in Spark's example.
//!
//!     baseline-pagerank --input DIR|FILE --output DIR [--iterations 10]
//!
//! The edge list is parsed once, in parallel, into a compressed in-link adjacency (CSR)
//! over u32 vertex indices (ids used directly when dense, else renumbered); each
//! iteration is a parallel pull over vertices. Prints `vertices N edges M` on stdout.

#[path = "common.rs"]
mod common;

use std::io::Write;

use rayon::prelude::*;

/// Parses one line of a SNAP edge list: `None` for comments and blank lines.
fn edge(line: &[u8], file: &str) -> Option<(u64, u64)> {
    let mut ids = line
        .split(|b| b.is_ascii_whitespace() || *b == 0x0b)
        .filter(|t| !t.is_empty());
    let first = ids.next()?;
    if first[0] == b'#' {
        return None;
    }
    let parse = |t: &[u8]| -> Option<u64> {
        if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
            return None;
        }
        t.iter().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add((d - b'0') as u64)
        })
    };
    match (parse(first), ids.next().and_then(parse), ids.next()) {
        (Some(s), Some(d), None) => Some((s, d)),
        _ => common::fail(&format!(
            "{file}: not an edge (two non-negative integer ids): {:?}",
            String::from_utf8_lossy(line)
        )),
    }
}

pub fn main() {
    let input = common::arg("--input", None);
    let output = common::arg("--output", None);
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
    let raw: Vec<(u64, u64)> = pieces
        .par_iter()
        .flat_map_iter(|(file, piece)| piece.split(|&b| b == b'\n').filter_map(|l| edge(l, file)))
        .collect();

    // Vertex ids -> u32 indices: the ids themselves when dense, else their rank among the
    // distinct ids.
    let max = raw.par_iter().map(|&(s, d)| s.max(d)).max().unwrap_or(0);
    let dense = max < u32::MAX as u64 && max <= 4 * raw.len() as u64 + 1024;
    let ids: Vec<u64> = if dense {
        Vec::new()
    } else {
        let mut ids: Vec<u64> = raw.par_iter().flat_map_iter(|&(s, d)| [s, d]).collect();
        ids.par_sort_unstable();
        ids.dedup();
        assert!(ids.len() < u32::MAX as usize, "too many vertices");
        ids
    };
    let index = |id: u64| -> u64 {
        if dense {
            id
        } else {
            ids.binary_search(&id).unwrap() as u64
        }
    };
    let vertices = if dense { max as usize + 1 } else { ids.len() };
    let id_of = |v: usize| -> u64 { if dense { v as u64 } else { ids[v] } };

    // Distinct edges as dst << 32 | src, sorted: the in-link CSR.
    let mut edges: Vec<u64> = raw
        .par_iter()
        .map(|&(s, d)| (index(d) << 32) | index(s))
        .collect();
    drop(raw);
    edges.par_sort_unstable();
    edges.dedup();
    let mut out_degree = vec![0u32; vertices];
    let mut in_start = vec![0usize; vertices + 1];
    for &e in &edges {
        out_degree[(e & 0xffff_ffff) as usize] += 1;
        in_start[(e >> 32) as usize + 1] += 1;
    }
    for v in 0..vertices {
        in_start[v + 1] += in_start[v];
    }
    let sources: Vec<u32> = edges.par_iter().map(|&e| e as u32).collect();
    drop(edges);

    // rank < 0: the vertex holds no rank.
    let mut rank: Vec<f64> = out_degree
        .par_iter()
        .map(|&d| if d > 0 { 1.0 } else { -1.0 })
        .collect();
    let mut share = vec![0.0f64; vertices];
    for _ in 0..iterations {
        // share < 0: sends nothing.
        share
            .par_iter_mut()
            .zip(rank.par_iter().zip(out_degree.par_iter()))
            .for_each(|(s, (&r, &d))| {
                *s = if r >= 0.0 && d > 0 {
                    r / d as f64
                } else {
                    -1.0
                };
            });
        rank.par_iter_mut().enumerate().for_each(|(v, r)| {
            let (mut sum, mut got) = (0.0, false);
            for &u in &sources[in_start[v]..in_start[v + 1]] {
                let s = share[u as usize];
                if s >= 0.0 {
                    sum += s;
                    got = true;
                }
            }
            *r = if got { 0.15 + 0.85 * sum } else { -1.0 };
        });
    }

    let ranked = rank.par_iter().filter(|&&r| r >= 0.0).count();
    let text: Vec<Vec<u8>> = rank
        .par_chunks(1 << 16)
        .enumerate()
        .map(|(c, chunk)| {
            let mut buf = Vec::with_capacity(chunk.len() * 24);
            for (i, &r) in chunk.iter().enumerate() {
                if r >= 0.0 {
                    writeln!(buf, "{}\t{r}", id_of((c << 16) + i)).unwrap();
                }
            }
            buf
        })
        .collect();
    common::write_committed(&common::output_part(&output), &text);
    println!("vertices {ranked} edges {}", sources.len());
}
