//! Deterministic data generators for the formats of `FORMATS.md` (in memory or to files).
//!
//! Every record is a pure function of (seed, record index), so a partition generates its
//! own range on its executor and the data set does not depend on the partitioning.

use std::collections::HashSet;
use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::context::Context;
use crate::rdd::Rdd;

/// Words in the text vocabulary.
pub const VOCABULARY: usize = 100_000;
/// Words per generated line.
pub const WORDS_PER_LINE: usize = 13;
/// Zipf exponent of word frequencies.
pub const ZIPF_S: f64 = 1.1;

/// A random stream for record `index` of a data set generated with `seed`.
pub fn record_rng(seed: u64, index: u64) -> Pcg64Mcg {
    // Mix seed and index (SplitMix64 finaliser) so neighbouring records are unrelated.
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Pcg64Mcg::seed_from_u64(z ^ (z >> 31))
}

/// The vocabulary: 100,000 distinct lowercase words of 2 to 12 letters, the same on every
/// rank (fixed seed), most frequent first.
pub fn vocabulary() -> &'static [String] {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let mut rng = Pcg64Mcg::seed_from_u64(0x0065_6d62_6572);
        let mut seen = HashSet::with_capacity(VOCABULARY);
        let mut words = Vec::with_capacity(VOCABULARY);
        while words.len() < VOCABULARY {
            let len = rng.random_range(2..=12);
            let word: String = (0..len)
                .map(|_| rng.random_range(b'a'..=b'z') as char)
                .collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        words
    })
}

/// Cumulative Zipf(s = 1.1) probabilities over the vocabulary ranks.
fn zipf_cdf() -> &'static [f64] {
    static CDF: OnceLock<Vec<f64>> = OnceLock::new();
    CDF.get_or_init(|| {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=VOCABULARY)
            .map(|r| {
                acc += 1.0 / (r as f64).powf(ZIPF_S);
                acc
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= acc);
        cdf
    })
}

/// Line `index` of the text corpus generated with `seed`: 13 Zipf-distributed words
/// separated by single spaces.
pub fn text_line(seed: u64, index: u64) -> String {
    let mut rng = record_rng(seed, index);
    let (words, cdf) = (vocabulary(), zipf_cdf());
    let mut line = String::with_capacity(WORDS_PER_LINE * 8);
    for i in 0..WORDS_PER_LINE {
        let u: f64 = rng.random();
        let rank = cdf.partition_point(|&c| c < u).min(VOCABULARY - 1);
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&words[rank]);
    }
    line
}

/// Mean bytes of a generated line, newline included (for sizing by bytes).
pub fn mean_text_line_bytes() -> f64 {
    let sample = 2000u64;
    let total: usize = (0..sample).map(|i| text_line(1, i).len() + 1).sum();
    total as f64 / sample as f64
}

/// An RDD of `lines` generated lines, computed on the executors.
pub fn text_lines(ctx: &Context, lines: u64, seed: u64, partitions: Option<usize>) -> Rdd<String> {
    ctx.range(0, lines, partitions)
        .map(move |i| text_line(seed, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_distinct_lowercase_words_of_2_to_12_letters() {
        let words = vocabulary();
        assert_eq!(words.len(), VOCABULARY);
        assert_eq!(words.iter().collect::<HashSet<_>>().len(), VOCABULARY);
        assert!(
            words
                .iter()
                .all(|w| (2..=12).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()))
        );
    }

    #[test]
    fn lines_are_deterministic_and_zipf_like() {
        assert_eq!(text_line(7, 42), text_line(7, 42));
        assert_ne!(text_line(7, 42), text_line(8, 42));
        let mut top = 0usize;
        let mut total = 0usize;
        for i in 0..2000 {
            let line = text_line(3, i);
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words.len(), WORDS_PER_LINE);
            total += words.len();
            top += words.iter().filter(|w| **w == vocabulary()[0]).count();
        }
        // Rank 1 of Zipf(s) over the vocabulary has probability 1 / H(VOCABULARY, s).
        let h: f64 = (1..=VOCABULARY)
            .map(|r| 1.0 / (r as f64).powf(ZIPF_S))
            .sum();
        let share = top as f64 / total as f64;
        assert!(
            (share * h - 1.0).abs() < 0.1,
            "top word share {share}, expected {}",
            1.0 / h
        );
    }
}
