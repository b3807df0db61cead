//! Hand-written group-by baseline: mmap the input files, parse `key,value` lines in
//! parallel (rayon pieces of 1 MiB) into radix partitions by key hash (1024 of them, one
//! set of buffers per thread), then sum each partition in parallel in a `hashbrown` map
//! that stays in the core's cache and format its `key<TAB>sum` lines with `itoa`; write
//! the partitions' lines in order.
//!
//!     baseline-groupby --input DIR|FILE --output DIR
//!
//! Same semantics as ember's group-by: sums in i128, blank lines skipped, a malformed
//! line an error naming the file and line. Prints `rows N keys M` on stdout.
//!
//! One map per thread over all the keys (the earlier baseline) missed the cache on every
//! row once the keys outgrew it (7 M keys at 1 GB) and then merged maps as large: ember,
//! which splits by partition and sub-part before it sums, ran 2x faster than it.

#[path = "common.rs"]
mod common;
#[path = "kv.rs"]
mod kv;

use hashbrown::HashMap;
use rayon::prelude::*;

pub fn main() {
    let input = common::arg("--input", None);
    let output = common::arg("--output", None);
    let maps = common::map_inputs(&input);
    let pieces = kv::pieces(&maps);
    let (folds, rows) = kv::radix_rows(&pieces);
    let summed: Vec<(Vec<u8>, usize)> = (0..kv::PARTS)
        .into_par_iter()
        .map(|p| {
            let mut sums: HashMap<i64, i128> = HashMap::new();
            for &(k, v) in kv::part_rows(&folds, p) {
                *sums.entry(k).or_insert(0) += v as i128;
            }
            let mut text = Vec::with_capacity(sums.len() * 20);
            let (mut key, mut sum) = (itoa::Buffer::new(), itoa::Buffer::new());
            for (k, s) in &sums {
                text.extend_from_slice(key.format(*k).as_bytes());
                text.push(b'\t');
                text.extend_from_slice(sum.format(*s).as_bytes());
                text.push(b'\n');
            }
            (text, sums.len())
        })
        .collect();
    drop(folds);
    let keys: usize = summed.iter().map(|s| s.1).sum();
    let buffers: Vec<Vec<u8>> = summed.into_iter().map(|s| s.0).collect();
    common::write_committed(&common::output_part(&output), &buffers);
    println!("rows {rows} keys {keys}");
}
