//! Key-value lines for the group-by and join baselines: `key,value` integers, parsed from
//! bytes with no allocation, and split into radix partitions by key. Standalone (std and
//! rayon).
#![allow(dead_code)]

/// An integer with optional sign and ASCII white space around it; `None` if it is not one
/// or does not fit an `i64`.
pub fn int(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii();
    let (negative, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add(d as u64)?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Calls `f(key, value)` for every line of `piece` (a run of whole lines); blank lines are
/// skipped. A malformed line fails naming `file` and its line number (`line_of` of its
/// offset in the piece, asked only then).
pub fn for_each_pair(
    piece: &[u8],
    file: &str,
    line_of: impl Fn(usize) -> u64,
    mut f: impl FnMut(i64, i64),
) {
    let mut at = 0;
    for line in piece.split(|&b| b == b'\n') {
        let start = at;
        at += line.len() + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.trim_ascii().is_empty() {
            continue;
        }
        let pair = line
            .iter()
            .position(|&b| b == b',')
            .and_then(|comma| Some((int(&line[..comma])?, int(&line[comma + 1..])?)));
        match pair {
            Some((k, v)) => f(k, v),
            None => super::common::fail(&format!(
                "{file}: line {}: not a key,value line: {:?}",
                line_of(start),
                String::from_utf8_lossy(line)
            )),
        }
    }
}

/// A piece of an input file: (file name, the whole file, the piece's offset, the piece).
pub type Piece<'a> = (String, &'a [u8], usize, &'a [u8]);

/// The pieces of every input file.
pub fn pieces(maps: &[(std::path::PathBuf, memmap2::Mmap)]) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    for (path, map) in maps {
        let name = path.display().to_string();
        let mut offset = 0;
        for piece in super::common::line_chunks(map, 1 << 20) {
            out.push((name.clone(), &map[..], offset, piece));
            offset += piece.len();
        }
    }
    out
}

/// The 1-based line number of byte `at` of `file` (error path only).
pub fn line_number(file: &[u8], at: usize) -> u64 {
    file[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

/// Bits of a key's hash that pick its radix partition: 1024 partitions, so a partition of
/// 1 GB of uniform `key,value` lines (7 M keys) holds about 7 k keys, whose hash map
/// stays in a core's cache; appending to 1024 buffers keeps each buffer's tail in cache.
pub const RADIX_BITS: u32 = 10;
/// Radix partitions.
pub const PARTS: usize = 1 << RADIX_BITS;

/// The radix partition of key `k`: the high bits of a multiplicative hash.
#[inline]
pub fn part_of(k: i64) -> usize {
    ((k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - RADIX_BITS)) as usize
}

/// Rows a chunk of a radix partition holds (64 KiB): partitions grow by chunks, never by
/// copying a buffer into one twice as large (which, under mimalloc, also faulted in fresh
/// pages at every doubling: 3-8 s of system time at 1 GB).
const CHUNK: usize = 4096;

/// One fold's rows split into [`PARTS`] radix partitions, each in chunks of [`CHUNK`].
pub type RadixParts = Vec<Vec<Vec<(i64, i64)>>>;

/// Appends a row to a partition's chunks.
#[inline]
fn push(chunks: &mut Vec<Vec<(i64, i64)>>, row: (i64, i64)) {
    match chunks.last_mut() {
        Some(last) if last.len() < CHUNK => last.push(row),
        _ => {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.push(row);
            chunks.push(chunk);
        }
    }
}

/// The `(key, value)` rows of `pieces`, parsed in parallel and split by [`part_of`]: one
/// set of [`PARTS`] partitions per rayon fold (one fold per thread), and the rows read.
pub fn radix_rows(pieces: &[Piece<'_>]) -> (Vec<RadixParts>, u64) {
    use rayon::prelude::*;
    let per_thread = pieces.len().div_ceil(rayon::current_num_threads()).max(1);
    let folds: Vec<(RadixParts, u64)> = pieces
        .par_iter()
        .with_min_len(per_thread)
        .fold(
            || (vec![Vec::new(); PARTS], 0u64),
            |(mut parts, mut rows), (file, whole, offset, piece)| {
                let line_of = |at: usize| line_number(whole, offset + at);
                for_each_pair(piece, file, line_of, |k, v| {
                    push(&mut parts[part_of(k)], (k, v));
                    rows += 1;
                });
                (parts, rows)
            },
        )
        .collect();
    let rows = folds.iter().map(|f| f.1).sum();
    (folds.into_iter().map(|f| f.0).collect(), rows)
}

/// The rows of partition `p` over every fold of [`radix_rows`].
pub fn part_rows(folds: &[RadixParts], p: usize) -> impl Iterator<Item = &(i64, i64)> {
    folds
        .iter()
        .flat_map(move |parts| parts[p].iter().flatten())
}

/// How many rows partition `p` holds over every fold.
pub fn part_len(folds: &[RadixParts], p: usize) -> usize {
    folds.iter().flat_map(|parts| &parts[p]).map(Vec::len).sum()
}
