//! I/O: input files and their splits, memory maps, private scratch files, committed output
//! directories, fixed-size record formats, edge lists, points and key-value lines. Knows files, not RDDs.

pub mod edges;
pub mod input;
pub mod key_value;
pub mod output;
pub mod points;
pub mod records;
pub mod scratch;

/// Whether `byte` is white space by itself: tab, LF, VT, FF, CR and space (the white space
/// within ASCII, as `char::is_whitespace` has it; `u8::is_ascii_whitespace` leaves out VT).
#[inline]
pub(crate) fn ascii_space(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// The decimal number of the ASCII digits of `bytes` from `start` on, and where they end;
/// `None` if there are none or the number overflows a `u64`.
#[inline]
pub(crate) fn ascii_digits(bytes: &[u8], start: usize) -> Option<(u64, usize)> {
    let mut n: u64 = 0;
    let mut at = start;
    while let Some(&b) = bytes.get(at) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
        at += 1;
    }
    (at > start).then_some((n, at))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ascii_space_is_char_whitespace_within_ascii() {
        for byte in 0..=0x7fu8 {
            assert_eq!(
                super::ascii_space(byte),
                (byte as char).is_whitespace(),
                "byte {byte:#04x}"
            );
        }
    }
}
