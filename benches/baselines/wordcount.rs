//! Hand-written WordCount baseline: mmap the input files, one `hashbrown` map (foldhash)
//! per rayon piece keyed by the words borrowed from the mapping (no key is ever copied),
//! merge the maps, write `word<TAB>count` lines.
//!
//!     baseline-wordcount --input DIR|FILE --output DIR
//!
//! Same semantics as ember's WordCount: tokens are split on Unicode white space, invalid
//! UTF-8 is an error naming the file and byte offset. Pieces that are pure ASCII (the
//! common case) are split on bytes; others are validated and split as `str`.
//! Prints `words N distinct M` on stdout.

#[path = "common.rs"]
mod common;

use hashbrown::HashMap;
use rayon::prelude::*;

type Counts<'a> = HashMap<&'a [u8], u64>;

/// Unicode white space within ASCII: tab, LF, VT, FF, CR, space (as `char::is_whitespace`).
fn ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

fn count_piece<'a>(counts: &mut Counts<'a>, piece: &'a [u8], file: &str, offset: usize) {
    let mut add = |w: &'a [u8]| match counts.get_mut(w) {
        Some(n) => *n += 1,
        None => {
            counts.insert(w, 1);
        }
    };
    if piece.is_ascii() {
        for w in piece.split(|&b| ascii_space(b)).filter(|w| !w.is_empty()) {
            add(w);
        }
    } else {
        let text = std::str::from_utf8(piece).unwrap_or_else(|e| {
            common::fail(&format!(
                "{file}: invalid UTF-8 at byte {}",
                offset + e.valid_up_to()
            ))
        });
        for w in text.split_whitespace() {
            add(w.as_bytes());
        }
    }
}

pub fn main() {
    let input = common::arg("--input", None);
    let output = common::arg("--output", None);
    let maps = common::map_inputs(&input);
    // (file name, offset of the piece in it, piece)
    let mut pieces: Vec<(String, usize, &[u8])> = Vec::new();
    for (path, map) in &maps {
        let name = path.display().to_string();
        let mut offset = 0;
        for piece in common::line_chunks(map, 1 << 20) {
            pieces.push((name.clone(), offset, piece));
            offset += piece.len();
        }
    }
    let counts: Counts = pieces
        .par_iter()
        .fold(Counts::new, |mut counts, (file, offset, piece)| {
            count_piece(&mut counts, piece, file, *offset);
            counts
        })
        .reduce(Counts::new, |a, b| {
            let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
            for (w, n) in small {
                *big.entry(w).or_insert(0) += n;
            }
            big
        });
    let total: u64 = counts.values().sum();
    let distinct = counts.len();
    let mut text = Vec::with_capacity(distinct * 16);
    for (w, n) in counts {
        text.extend_from_slice(w);
        text.push(b'\t');
        text.extend_from_slice(n.to_string().as_bytes());
        text.push(b'\n');
    }
    common::write_committed(&common::output_part(&output), &[text]);
    println!("words {total} distinct {distinct}");
}
