//! Hand-written WordCount baseline: mmap the input files, one `hashbrown` map (foldhash)
//! per rayon piece keyed by the words borrowed from the mapping (no key is ever copied),
//! merge the maps, write `word<TAB>count` lines.
//!
//!     baseline-wordcount --input DIR|FILE --output DIR
//!
//! Same semantics as ember's WordCount: tokens are split on Unicode white space, invalid
//! UTF-8 is an error naming the file and byte offset. Pieces that are pure ASCII (the
//! common case) are split 64 bytes at a time on a bit mask of their white space (SSE2),
//! as ember's `words` splits them; others are validated and split as `str`.
//! Prints `words N distinct M` on stdout.

#[path = "common.rs"]
mod common;

use hashbrown::HashMap;
use rayon::prelude::*;

type Counts<'a> = HashMap<&'a [u8], u64>;

/// Unicode white space within ASCII: tab, LF, VT, FF, CR, space (as `char::is_whitespace`).
#[cfg(not(target_arch = "x86_64"))]
fn ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// Bits of the 64 bytes of `piece` from `at`, set for white space (and past the end).
fn space_mask(piece: &[u8], at: usize) -> u64 {
    let mut block = [b' '; 64];
    let bytes = match piece.get(at..at + 64) {
        Some(whole) => whole,
        None => {
            block[..piece.len() - at].copy_from_slice(&piece[at..]);
            &block[..]
        }
    };
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut mask = 0u64;
        for (i, lane) in bytes.chunks_exact(16).enumerate() {
            // SAFETY: SSE2 is part of every x86-64 target; 16 bytes, loaded unaligned.
            let white = unsafe {
                let v = _mm_loadu_si128(lane.as_ptr().cast::<__m128i>());
                let blank = _mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8));
                let less = _mm_sub_epi8(v, _mm_set1_epi8(9));
                let control = _mm_cmpeq_epi8(_mm_min_epu8(less, _mm_set1_epi8(4)), less);
                _mm_movemask_epi8(_mm_or_si128(blank, control)) as u16
            };
            mask |= u64::from(white) << (16 * i);
        }
        mask
    }
    #[cfg(not(target_arch = "x86_64"))]
    bytes
        .iter()
        .enumerate()
        .fold(0, |m, (i, &b)| m | (u64::from(ascii_space(b)) << i))
}

/// The words of ASCII `piece`, 64 bytes at a time: each block's white space as a bit mask,
/// the words' starts and ends its transitions (no branch per byte or per word length).
fn ascii_words<'a>(piece: &'a [u8], mut add: impl FnMut(&'a [u8])) {
    let mut open: Option<usize> = None;
    let mut text_before = 0u64;
    for at in (0..piece.len()).step_by(64) {
        let space = space_mask(piece, at);
        let text = !space;
        let after_text = (text << 1) | text_before;
        text_before = text >> 63;
        let mut starts = text & !after_text;
        let mut ends = space & after_text;
        if let Some(start) = open {
            if ends == 0 {
                continue;
            }
            add(&piece[start..at + ends.trailing_zeros() as usize]);
            ends &= ends - 1;
            open = None;
        }
        while starts != 0 {
            let start = at + starts.trailing_zeros() as usize;
            starts &= starts - 1;
            if ends == 0 {
                open = Some(start);
                break;
            }
            add(&piece[start..at + ends.trailing_zeros() as usize]);
            ends &= ends - 1;
        }
    }
    if let Some(start) = open {
        add(&piece[start..]);
    }
}

fn count_piece<'a>(counts: &mut Counts<'a>, piece: &'a [u8], file: &str, offset: usize) {
    let mut add = |w: &'a [u8]| match counts.get_mut(w) {
        Some(n) => *n += 1,
        None => {
            counts.insert(w, 1);
        }
    };
    if piece.is_ascii() {
        ascii_words(piece, add);
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
