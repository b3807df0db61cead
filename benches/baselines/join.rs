//! Hand-written join baseline: mmap both inputs; parse the dimension in parallel and build
//! one `hashbrown` map of it; probe it with the facts in parallel (rayon pieces of 1 MiB),
//! each piece formatting its `key<TAB>fact<TAB>dim` lines into its own buffer; write the
//! buffers in order.
//!
//!     baseline-join --fact DIR|FILE --dim DIR|FILE --output DIR
//!
//! Same semantics as ember's join: inner join, blank lines skipped, a malformed line an
//! error naming the file and line; a key twice in the dimension is an error (the format
//! allows each key at most once). Prints `facts N dim M joined J` on stdout.

#[path = "common.rs"]
mod common;
#[path = "kv.rs"]
mod kv;

use std::io::Write;

use hashbrown::HashMap;
use rayon::prelude::*;

pub fn main() {
    let fact = common::arg("--fact", None);
    let dim = common::arg("--dim", None);
    let output = common::arg("--output", None);
    let dim_maps = common::map_inputs(&dim);
    let dim_pieces = kv::pieces(&dim_maps);
    let dim_rows: Vec<Vec<(i64, i64)>> = dim_pieces
        .par_iter()
        .map(|(file, whole, offset, piece)| {
            let mut rows = Vec::new();
            let line_of = |at: usize| kv::line_number(whole, offset + at);
            kv::for_each_pair(piece, file, line_of, |k, v| rows.push((k, v)));
            rows
        })
        .collect();
    let mut table: HashMap<i64, i64> = HashMap::with_capacity(dim_rows.iter().map(Vec::len).sum());
    for &(k, v) in dim_rows.iter().flatten() {
        if table.insert(k, v).is_some() {
            common::fail(&format!("{dim}: key {k} twice in the dimension"));
        }
    }
    drop(dim_rows);
    let fact_maps = common::map_inputs(&fact);
    let fact_pieces = kv::pieces(&fact_maps);
    let outputs: Vec<(Vec<u8>, u64, u64)> = fact_pieces
        .par_iter()
        .map(|(file, whole, offset, piece)| {
            let mut out = Vec::with_capacity(piece.len() * 3 / 2);
            let (mut facts, mut joined) = (0u64, 0u64);
            let line_of = |at: usize| kv::line_number(whole, offset + at);
            kv::for_each_pair(piece, file, line_of, |k, v| {
                facts += 1;
                if let Some(d) = table.get(&k) {
                    joined += 1;
                    let _ = writeln!(out, "{k}\t{v}\t{d}");
                }
            });
            (out, facts, joined)
        })
        .collect();
    let facts: u64 = outputs.iter().map(|o| o.1).sum();
    let joined: u64 = outputs.iter().map(|o| o.2).sum();
    let buffers: Vec<Vec<u8>> = outputs.into_iter().map(|o| o.0).collect();
    common::write_committed(&common::output_part(&output), &buffers);
    println!("facts {facts} dim {} joined {joined}", table.len());
}
