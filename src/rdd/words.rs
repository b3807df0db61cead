//! The words of a line of text, for `flat_map`: `lines.flat_map(|line| words(line).map(|w|
//! (w, 1)))`.
//!
//! A word is what `str::split_whitespace` yields (a maximal run of characters that are not
//! Unicode white space), as a [`Str`]: held inline up to 24 bytes, so the common word costs
//! no heap allocation. [`Words`] owns its line, so the closure returns it as is — no
//! `Vec` collected per line.
//!
//! ASCII text is split 64 bytes at a time: a block's white space is found at once (SSE2
//! compares on x86-64, eight bytes a word elsewhere) as a bit mask, and each word's start
//! and end are the next clear and set bits. A word's `Str` is made from three 8-byte
//! loads, masked to its length (`str_key::inline_str`). Splitting byte by byte and
//! `Str::from` branch on each word's length, which in text the CPU cannot predict:
//! measured on 268 MB of generated text (37 M words, one thread), the old splitter and
//! `Str::from` 0.49 s, this 0.22 s (`slice::split` alone, without making a `Str`, 0.34 s).
//! WordCount, 1 GB, 2 executors, 3 alternated pairs: 2.33-2.36 -> 1.89-1.99 s, user CPU
//! 4.04-4.10 -> 3.35-3.46 s.
//!
//! Nothing is read past the line: its last, partial, block is looked at as the line's last
//! 64 bytes, and a word within 24 bytes of its end is made by `Str::from`. A block holding
//! a byte past ASCII sends the rest of the line to the character path: only such bytes
//! are decoded, to check for the white space outside ASCII (no-break space, ideographic
//! space, ...). That path, out of line, returns where the word lies, not a `Str`: a
//! returned `Str` comes back through memory, and the two paths' words then met there,
//! written as three words and read back as 16 bytes and 8 (a load the CPU cannot forward
//! from the stores): the job was 5-10% slower than before this splitter, not faster.

use crate::Str;
use crate::io::ascii_space;
use crate::rdd::str_key::inline_str;

/// Bytes looked at a time: one bit each in a `u64`.
const BLOCK: usize = 64;

/// The words of `line`, in order (see the module documentation).
pub fn words(line: String) -> Words {
    Words {
        line,
        pos: 0,
        ascii: true,
        block: usize::MAX,
        space: 0,
    }
}

/// An iterator over the words of a line it owns: [`words`].
#[derive(Debug, Clone)]
pub struct Words {
    line: String,
    /// Where the next word is looked for: 0, the end of a word, or the end of a block of
    /// white space (always a character boundary).
    pos: usize,
    /// The blocks looked at so far are ASCII; false from the first that is not (the rest
    /// of the line is split as characters).
    ascii: bool,
    /// The offset of the block `space` describes (`usize::MAX` before the first).
    block: usize,
    /// A bit per byte of that block, set for white space (and for bytes past the line).
    space: u64,
}

impl Words {
    /// Looks at the block starting at `block` (within the line); false (and the line no
    /// longer taken as ASCII) when it holds a byte past ASCII.
    #[inline(always)]
    fn load(&mut self, block: usize) -> bool {
        let bytes = self.line.as_bytes();
        debug_assert!(block < bytes.len());
        let whole = bytes.get(block..).and_then(<[u8]>::first_chunk::<BLOCK>);
        let (space, high) = match whole {
            Some(whole) => block_masks(whole),
            None => last_block_masks(bytes, block),
        };
        self.block = block;
        self.space = space;
        self.ascii = high == 0;
        self.ascii
    }

    /// Where the next word of ASCII text lies: `Ok(None)` at the end of the line, `Err`
    /// where a block past ASCII was met (`pos` is then where the character path goes
    /// on).
    #[inline(always)]
    fn next_ascii(&mut self) -> Result<Option<(usize, usize)>, ()> {
        let len = self.line.len();
        // Past the white space before the word (bytes past the line are white space).
        let start = loop {
            if self.pos >= len {
                return Ok(None);
            }
            let block = self.pos & !(BLOCK - 1);
            if block != self.block && !self.load(block) {
                return Err(());
            }
            let text = !self.space >> (self.pos - block);
            if text != 0 {
                break self.pos + text.trailing_zeros() as usize;
            }
            self.pos = block + BLOCK;
        };
        // To the end of the word: white space, or the end of the line.
        let mut at = start;
        let end = loop {
            let block = at & !(BLOCK - 1);
            if block != self.block && !self.load(block) {
                self.pos = start;
                return Err(());
            }
            let space = self.space >> (at - block);
            if space != 0 {
                break at + space.trailing_zeros() as usize;
            }
            at = block + BLOCK;
            if at >= len {
                break len;
            }
        };
        self.pos = end;
        Ok(Some((start, end)))
    }

    /// The word at `start..end` of the (ASCII) line.
    #[inline(always)]
    fn ascii_word(&self, start: usize, end: usize) -> Str {
        let n = end - start;
        match self.line.as_bytes().get(start..start + 24) {
            // SAFETY: 24 bytes are read, the first `n` (at most 24) the word's, ASCII.
            Some(bytes) if n <= 24 => unsafe { inline_str(bytes.as_ptr(), n) },
            // Long, or near the end of the line: made the usual way.
            _ => Str::from(&self.line[start..end]),
        }
    }

    /// Where the next word lies, splitting characters from `pos` on (a range, not a
    /// `Str`: returned in registers, so the word is made in the caller's loop as the
    /// ASCII path's are).
    #[inline(never)]
    fn next_chars(&mut self) -> Option<(usize, usize)> {
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
        Some((start, at))
    }
}

/// [`block_masks`] of the line's last, partial, block at `block`, with bits set for white
/// space past the end: the line's last `BLOCK` bytes looked at and shifted down (a line
/// shorter than a block is copied, padded with spaces, once).
#[inline(never)]
fn last_block_masks(bytes: &[u8], block: usize) -> (u64, u64) {
    match bytes.last_chunk::<BLOCK>() {
        Some(last) => {
            let (space, high) = block_masks(last);
            // `block` starts 1 to 63 bytes past the last block's first byte (within the
            // line, not a whole block before its end).
            let shift = block - (bytes.len() - BLOCK);
            (space >> shift | !(u64::MAX >> shift), high >> shift)
        }
        None => {
            let mut padded = [b' '; BLOCK];
            padded[..bytes.len() - block].copy_from_slice(&bytes[block..]);
            block_masks(&padded)
        }
    }
}

/// Bits of a block's bytes: (white space, past ASCII). Only bytes below 0x80 are told
/// apart; a block with any other is split as characters.
#[inline(always)]
fn block_masks(bytes: &[u8; BLOCK]) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    return block_masks_sse2(bytes);
    #[cfg(not(target_arch = "x86_64"))]
    return block_masks_swar(bytes);
}

/// [`block_masks`] with SSE2 (part of every x86-64): sixteen bytes a compare.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_masks_sse2(bytes: &[u8; BLOCK]) -> (u64, u64) {
    use std::arch::x86_64::*;
    let (mut space, mut high) = (0u64, 0u64);
    for (i, lane) in bytes.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of every x86-64 target; `lane` holds 16 bytes, loaded
        // unaligned.
        let (white, past_ascii) = unsafe {
            let v = _mm_loadu_si128(lane.as_ptr().cast::<__m128i>());
            let blank = _mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8));
            // Tab to CR (9..=13): the byte less 9 is at most 4, unsigned.
            let less = _mm_sub_epi8(v, _mm_set1_epi8(9));
            let control = _mm_cmpeq_epi8(_mm_min_epu8(less, _mm_set1_epi8(4)), less);
            (
                _mm_movemask_epi8(_mm_or_si128(blank, control)) as u16,
                _mm_movemask_epi8(v) as u16,
            )
        };
        space |= u64::from(white) << (16 * i);
        high |= u64::from(past_ascii) << (16 * i);
    }
    (space, high)
}

/// [`block_masks`] eight bytes at a time in a `u64` ([`space_bits`]).
#[cfg(any(not(target_arch = "x86_64"), test))]
fn block_masks_swar(bytes: &[u8; BLOCK]) -> (u64, u64) {
    const HIGH: u64 = lanes(0x80);
    let (mut space, mut high) = (0u64, 0u64);
    for (i, chunk) in bytes.as_chunks::<8>().0.iter().enumerate() {
        let chunk = u64::from_le_bytes(*chunk);
        space |= gather(space_bits(chunk & !HIGH)) << (8 * i);
        high |= gather(chunk & HIGH) << (8 * i);
    }
    (space, high)
}

/// The high bits of eight bytes (little-endian), as the eight low bits of the result.
#[cfg(any(not(target_arch = "x86_64"), test))]
fn gather(high_bits: u64) -> u64 {
    // Each byte's bit moved down to bit 0 of the byte, then all eight summed into the top
    // byte by one multiply (no two land on the same bit: no carries).
    ((high_bits >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// Eight copies of `byte`.
#[cfg(any(not(target_arch = "x86_64"), test))]
const fn lanes(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The high bit of each byte of `chunk` (eight ASCII bytes, little-endian) that is white
/// space, the others clear. Each byte is tested on its own (no borrow or carry crosses
/// bytes: every sum stays below 0x100 for bytes below 0x80).
#[cfg(any(not(target_arch = "x86_64"), test))]
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
            match self.next_ascii() {
                Ok(Some((start, end))) => return Some(self.ascii_word(start, end)),
                Ok(None) => return None,
                Err(()) => {}
            }
        }
        let (start, end) = self.next_chars()?;
        Some(Str::from(&self.line[start..end]))
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

    /// White space and text of a block, byte by byte: (white space, past ASCII).
    fn masks_by_byte(bytes: &[u8; BLOCK]) -> (u64, u64) {
        let bit = |i: usize, set: bool| u64::from(set) << i;
        bytes
            .iter()
            .enumerate()
            .fold((0, 0), |(space, high), (i, &b)| {
                (space | bit(i, ascii_space(b)), high | bit(i, b >= 0x80))
            })
    }

    #[test]
    fn a_blocks_masks_mark_each_white_space_byte_and_each_byte_past_ascii() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let mut blocks: Vec<[u8; BLOCK]> = (0..=255u8)
            .flat_map(|b| {
                (0..BLOCK).map(move |at| std::array::from_fn(|i| if i == at { b } else { b'x' }))
            })
            .collect();
        blocks.extend((0..2000).map(|_| std::array::from_fn(|_| rng.random_range(0..0x80u8))));
        blocks.extend((0..2000).map(|_| std::array::from_fn(|_| rng.random::<u8>())));
        for block in &blocks {
            let (space, high) = masks_by_byte(block);
            let swar = block_masks_swar(block);
            #[cfg(target_arch = "x86_64")]
            assert_eq!(block_masks_sse2(block), (space, high), "{block:?}");
            // Eight bytes a word tell white space apart only in ASCII blocks (the others
            // are split as characters).
            assert_eq!(swar.1, high, "{block:?}");
            if high == 0 {
                assert_eq!(swar.0, space, "{block:?}");
            }
        }
    }

    #[test]
    fn long_lines_split_as_split_whitespace_does_across_blocks_and_at_their_ends() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        // Mostly ASCII words and white space; now and then a character past ASCII (text
        // or white space) or a word longer than 24 bytes.
        let pieces = [
            "a",
            "bc",
            "def",
            "word",
            "seven77",
            "eightchr",
            "twelve-bytes",
            " ",
            " ",
            " ",
            "  ",
            "\t",
            "\r\n",
            "\u{b}",
            "\u{c}",
            "é",
            "\u{a0}",
            "\u{3000}",
            "日本",
            "a-word-of-more-than-twenty-four-bytes",
        ];
        for round in 0..20_000 {
            let target = rng.random_range(0..300);
            let mut line = String::new();
            while line.len() < target {
                // Past ASCII only in one line in four, so most lines take the ASCII path.
                let ascii = round % 4 != 0;
                let piece = loop {
                    let p = pieces[rng.random_range(0..pieces.len())];
                    if !ascii || p.is_ascii() {
                        break p;
                    }
                };
                line.push_str(piece);
            }
            assert_eq!(split(&line), reference(&line), "{line:?}");
        }
        // Lengths at and around the block and the 24 bytes a word is read as.
        for len in [23, 24, 25, 63, 64, 65, 127, 128, 129, 200] {
            for word in [1, 7, 23, 24, 25, 64, 70] {
                let text: String = (0..len)
                    .map(|i| if (i + 1) % (word + 1) == 0 { ' ' } else { 'w' })
                    .collect();
                for line in [
                    text.clone(),
                    format!("{text} "),
                    format!(" {text}"),
                    format!("{text}é"),
                ] {
                    assert_eq!(split(&line), reference(&line), "{line:?}");
                }
            }
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
