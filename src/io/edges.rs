//! SNAP edge lists (`FORMATS.md`): `src<TAB>dst` lines of two non-negative integer vertex
//! ids (any white space between them), `#` comments and blank lines.

use super::{ascii_digits, ascii_space};

/// Parses one edge-list line: `(src, dst)`, or `None` for a comment or a blank line. The
/// error says what is wrong with the line (the source that reads it adds the file and line
/// number).
///
/// ```
/// use ember::io::edges::parse_edge;
/// assert_eq!(parse_edge("1\t2"), Ok(Some((1, 2))));
/// assert_eq!(parse_edge("# FromNodeId\tToNodeId"), Ok(None));
/// assert!(parse_edge("1 -2").unwrap_err().contains("1 -2"));
/// ```
pub fn parse_edge(line: &str) -> Result<Option<(u64, u64)>, String> {
    // The common line, two runs of ASCII digits apart, read byte by byte; any other
    // (comments, blanks, signs, Unicode white space, malformed) goes the general way,
    // which says why. Profiled on PageRank at 1 GB: `trim`, `split_whitespace`'s char
    // decoding and `parse` were over half of reading the edges.
    let bytes = line.as_bytes();
    let mut at = skip_space(bytes, 0);
    if let Some((src, end)) = ascii_digits(bytes, at)
        && end < bytes.len()
        && ascii_space(bytes[end])
    {
        at = skip_space(bytes, end);
        if let Some((dst, end)) = ascii_digits(bytes, at)
            && skip_space(bytes, end) == bytes.len()
        {
            return Ok(Some((src, dst)));
        }
    }
    parse_edge_str(line)
}

#[inline]
fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && ascii_space(bytes[at]) {
        at += 1;
    }
    at
}

/// [`parse_edge`] on `str`s: any white space, and the error for a malformed line.
fn parse_edge_str(line: &str) -> Result<Option<(u64, u64)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut ids = line.split_whitespace().map(str::parse::<u64>);
    match (ids.next(), ids.next(), ids.next()) {
        (Some(Ok(s)), Some(Ok(d)), None) => Ok(Some((s, d))),
        _ => Err(format!(
            "not an edge (two non-negative integer ids): {line:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_byte_reader_agrees_with_the_general_one(
            line in r"[ \t\u{b}0-9+#x\u{a0}-]{0,24}|[ \t]{0,2}[0-9]{1,21}[ \t\u{3000}]{1,3}[0-9]{1,21}[ \r]{0,2}"
        ) {
            prop_assert_eq!(parse_edge(&line), parse_edge_str(&line));
        }
    }

    #[test]
    fn edges_parse_and_malformed_lines_say_why() {
        assert_eq!(parse_edge("0 0"), Ok(Some((0, 0))));
        assert_eq!(parse_edge(" 7\t\t9 \r"), Ok(Some((7, 9))));
        assert_eq!(
            parse_edge("18446744073709551615\t1"),
            Ok(Some((u64::MAX, 1)))
        );
        assert_eq!(parse_edge("+3\u{3000}4"), Ok(Some((3, 4))));
        for blank in ["", "  \t", "# a comment 1 2", "  #1\t2"] {
            assert_eq!(parse_edge(blank), Ok(None), "{blank:?}");
        }
        for bad in ["7", "1 2 3", "1 x", "-1 2", "1,2", "18446744073709551616 1"] {
            let e = parse_edge(bad).unwrap_err();
            assert!(e.contains("not an edge") && e.contains(bad), "{bad}: {e}");
        }
    }
}
