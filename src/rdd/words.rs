//! The words of a line of text, for `flat_map`: `lines.flat_map(|line| words(line).map(|w|
//! (w, 1)))`.
//!
//! A word is what `str::split_whitespace` yields (a maximal run of characters that are not
//! Unicode white space), as a [`Str`]: held inline up to 24 bytes, so the common word costs
//! no heap allocation. [`Words`] owns its line, so the closure returns it as is — no
//! `Vec` collected per line — and splits bytes, not characters: only a byte past ASCII is
//! decoded, to check for the white space outside ASCII (no-break space, ideographic space,
//! ...). Profiled on 1 GB of text: `split_whitespace` decodes every character, a third of
//! the map side's time after the combine's hash lookups. A line that is all ASCII (checked
//! once) finds each word's end eight bytes at a time.

use crate::Str;
use crate::io::ascii_space;

/// The words of `line`, in order (see the module documentation).
pub fn words(line: String) -> Words {
    Words {
        ascii: line.is_ascii(),
        line,
        pos: 0,
    }
}

/// An iterator over the words of a line it owns: [`words`].
#[derive(Debug, Clone)]
pub struct Words {
    line: String,
    pos: usize,
    /// The whole line is ASCII (checked once, a word at a time in the usual case): its
    /// words end where eight bytes at a time find white space.
    ascii: bool,
}

/// Eight copies of `byte`.
const fn lanes(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The high bit of each byte of `chunk` (eight ASCII bytes, little-endian) that is white
/// space, the others clear. Each byte is tested on its own (no borrow or carry crosses
/// bytes: every sum stays below 0x100 for bytes below 0x80).
#[inline]
fn space_bits(chunk: u64) -> u64 {
    const HIGH: u64 = lanes(0x80);
    // Tab to CR (9..=13): at least 9 and not at least 14.
    let ge9 = chunk + lanes(0x80 - 9);
    let ge14 = chunk + lanes(0x80 - 14);
    let control = ge9 & !ge14;
    // Space: the byte XOR 0x20 is zero, so adding 0x7f leaves its high bit clear.
    let space = !((chunk ^ lanes(b' ')) + lanes(0x7f));
    (control | space) & HIGH
}

/// The end of the word starting at `at` in ASCII `bytes`: the next white space or the end.
#[inline]
fn ascii_word_end(bytes: &[u8], mut at: usize) -> usize {
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(chunk);
        let bits = space_bits(u64::from_le_bytes(eight));
        if bits != 0 {
            return at + (bits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < bytes.len() && !ascii_space(bytes[at]) {
        at += 1;
    }
    at
}

/// The character starting at byte `at` of `text` (at a character boundary): whether it is
/// white space, and its length. Only a byte past ASCII is decoded.
#[inline]
fn char_at(text: &str, at: usize) -> (bool, usize) {
    let byte = text.as_bytes()[at];
    if byte.is_ascii() {
        return (ascii_space(byte), 1);
    }
    match text[at..].chars().next() {
        Some(c) => (c.is_whitespace(), c.len_utf8()),
        None => (false, 1),
    }
}

impl Iterator for Words {
    type Item = Str;

    // Always: a `flat_map`'s expansion handed to a map-side combine left it out of line
    // (10% of WordCount's map side).
    #[inline(always)]
    fn next(&mut self) -> Option<Str> {
        if self.ascii {
            let bytes = self.line.as_bytes();
            let Some(skip) = bytes[self.pos..].iter().position(|&b| !ascii_space(b)) else {
                self.pos = bytes.len();
                return None;
            };
            let start = self.pos + skip;
            let end = ascii_word_end(bytes, start);
            self.pos = end;
            return Some(Str::from(&self.line[start..end]));
        }
        let text = self.line.as_str();
        let end = text.len();
        let mut at = self.pos;
        // Past the white space before the word.
        let start = loop {
            if at == end {
                self.pos = end;
                return None;
            }
            match char_at(text, at) {
                (true, n) => at += n,
                (false, _) => break at,
            }
        };
        // To the end of the word.
        while at < end {
            match char_at(text, at) {
                (true, _) => break,
                (false, n) => at += n,
            }
        }
        self.pos = at;
        Some(Str::from(&text[start..at]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // A word is a byte at least, and all but the first follow white space.
        (0, Some((self.line.len() - self.pos).div_ceil(2)))
    }
}

impl std::iter::FusedIterator for Words {}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Vec<String> {
        words(line.to_string()).map(|w| w.to_string()).collect()
    }

    fn reference(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn words_are_what_split_whitespace_yields() {
        let lines = [
            "",
            " ",
            "one",
            "  two  words ",
            "tab\tvt\u{b}ff\u{c}cr\r\nlf",
            "no\u{a0}break\u{3000}ideographic\u{2028}line\u{85}next",
            "héllo wörld ünïcode ascii",
            "日本語 の テキスト",
            "\u{2003}em\u{2003}",
            "a word of more than twenty-four bytes: abcdefghijklmnopqrstuvwxyz0123456789",
            "emoji 🦀🦀 crab",
            "x\u{200b}zero-width-space-is-not-white-space",
        ];
        for line in lines {
            assert_eq!(split(line), reference(line), "{line:?}");
        }
    }

    #[test]
    fn every_white_space_character_separates_words() {
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            let line = format!("a{c}b{c}{c}");
            assert_eq!(split(&line), reference(&line), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn every_ascii_byte_is_tested_in_each_of_the_eight_lanes() {
        // Every ASCII byte at every offset of a word longer than eight bytes, and words
        // ending at every position of a chunk and of the tail.
        for b in 0..0x80u8 {
            for at in 0..20 {
                let mut line = vec![b'x'; 20];
                line[at] = b;
                let line = String::from_utf8(line).unwrap();
                assert_eq!(split(&line), reference(&line), "{b:#04x} at {at}");
            }
        }
        for len in 0..40 {
            let line = format!("{} {} ", "w".repeat(len), "v".repeat(len % 11));
            assert_eq!(split(&line), reference(&line), "{line:?}");
        }
    }

    #[test]
    fn the_size_hint_never_undercounts() {
        for line in ["", "a", "a b c d", "  a  ", "ab"] {
            let (low, high) = words(line.to_string()).size_hint();
            let n = split(line).len();
            assert!(low <= n && high.is_some_and(|h| h >= n), "{line:?}: {n}");
        }
    }
}
