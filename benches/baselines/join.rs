//! Hand-written join baseline: mmap both inputs; parse each side in parallel (rayon pieces
//! of 1 MiB) into radix partitions by key hash (1024 of them, one set of buffers per
//! thread); then join each partition in parallel: a `hashbrown` map of its dimension rows
//! (cache-sized), probed by its fact rows, each partition formatting its
//! `key<TAB>fact<TAB>dim` lines with `itoa` into its own buffer; write the buffers in order.
//!
//!     baseline-join --fact DIR|FILE --dim DIR|FILE --output DIR
//!
//! Same semantics as ember's join: inner join, blank lines skipped, a malformed line an
//! error naming the file and line; a key twice in the dimension is an error (the format
//! allows each key at most once). Prints `facts N dim M joined J` on stdout.
//!
//! One map of the whole dimension (the earlier baseline: 7 M keys at 1 GB, 128 MB of
//! slots) made every probe a cache miss.

#[path = "common.rs"]
mod common;
#[path = "kv.rs"]
mod kv;

use hashbrown::HashMap;
use rayon::prelude::*;

pub fn main() {
    let fact = common::arg("--fact", None);
    let dim = common::arg("--dim", None);
    let output = common::arg("--output", None);
    let dim_maps = common::map_inputs(&dim);
    let (dims, _) = kv::radix_rows(&kv::pieces(&dim_maps));
    let fact_maps = common::map_inputs(&fact);
    let (facts, fact_rows) = kv::radix_rows(&kv::pieces(&fact_maps));
    let outputs: Vec<(Vec<u8>, u64, u64)> = (0..kv::PARTS)
        .into_par_iter()
        .map(|p| {
            let mut table: HashMap<i64, i64> = HashMap::with_capacity(kv::part_len(&dims, p));
            for &(k, v) in kv::part_rows(&dims, p) {
                if table.insert(k, v).is_some() {
                    common::fail(&format!("{dim}: key {k} twice in the dimension"));
                }
            }
            // Room for a line of three 7-digit numbers per fact (the usual size): a buffer
            // grown by doubling copied itself into fresh pages at every step.
            let mut out = Vec::with_capacity(kv::part_len(&facts, p) * 24);
            let mut joined = 0u64;
            let mut buf = [
                itoa::Buffer::new(),
                itoa::Buffer::new(),
                itoa::Buffer::new(),
            ];
            for &(k, v) in kv::part_rows(&facts, p) {
                if let Some(&d) = table.get(&k) {
                    joined += 1;
                    out.extend_from_slice(buf[0].format(k).as_bytes());
                    out.push(b'\t');
                    out.extend_from_slice(buf[1].format(v).as_bytes());
                    out.push(b'\t');
                    out.extend_from_slice(buf[2].format(d).as_bytes());
                    out.push(b'\n');
                }
            }
            (out, table.len() as u64, joined)
        })
        .collect();
    let dim_keys: u64 = outputs.iter().map(|o| o.1).sum();
    let joined: u64 = outputs.iter().map(|o| o.2).sum();
    let buffers: Vec<Vec<u8>> = outputs.into_iter().map(|o| o.0).collect();
    common::write_committed(&common::output_part(&output), &buffers);
    println!("facts {fact_rows} dim {dim_keys} joined {joined}");
}
