//! Key-value lines for the group-by and join baselines: `key,value` integers, parsed from
//! bytes with no allocation. Standalone (std only).
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
