//! Hand-written group-by baseline: mmap the input files, parse `key,value` lines in
//! parallel (rayon pieces of 1 MiB), sum into one `hashbrown` map per thread, merge the
//! maps, write `key<TAB>sum` lines.
//!
//!     baseline-groupby --input DIR|FILE --output DIR
//!
//! Same semantics as ember's group-by: sums in i128, blank lines skipped, a malformed
//! line an error naming the file and line. Prints `rows N keys M` on stdout.

#[path = "common.rs"]
mod common;
#[path = "kv.rs"]
mod kv;

use hashbrown::HashMap;
use rayon::prelude::*;

type Sums = HashMap<i64, i128>;

pub fn main() {
    let input = common::arg("--input", None);
    let output = common::arg("--output", None);
    let maps = common::map_inputs(&input);
    let pieces = kv::pieces(&maps);
    // One map per thread, not per rayon split: with many distinct keys, merging maps
    // costs as much as filling them.
    let per_thread = pieces.len().div_ceil(rayon::current_num_threads()).max(1);
    let (sums, rows) = pieces
        .par_iter()
        .with_min_len(per_thread)
        .fold(
            || (Sums::new(), 0u64),
            |(mut sums, mut rows), (file, whole, offset, piece)| {
                let line_of = |at: usize| kv::line_number(whole, offset + at);
                kv::for_each_pair(piece, file, line_of, |k, v| {
                    *sums.entry(k).or_insert(0) += v as i128;
                    rows += 1;
                });
                (sums, rows)
            },
        )
        .reduce(
            || (Sums::new(), 0),
            |(a, ra), (b, rb)| {
                let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
                for (k, s) in small {
                    *big.entry(k).or_insert(0) += s;
                }
                (big, ra + rb)
            },
        );
    let keys = sums.len();
    let mut text = Vec::with_capacity(keys * 20);
    for (k, s) in sums {
        use std::io::Write;
        let _ = writeln!(text, "{k}\t{s}");
    }
    common::write_committed(&common::output_part(&output), &[text]);
    println!("rows {rows} keys {keys}");
}
