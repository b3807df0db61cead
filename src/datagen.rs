//! Deterministic data generators for the formats of `FORMATS.md` (in memory or to files).
//!
//! Every record is a pure function of (seed, record index), so a partition generates its
//! own range on its executor and the data set does not depend on the partitioning.

use std::collections::HashSet;
use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::context::Context;
pub use crate::io::records::record_rng;
use crate::rdd::Rdd;

/// Words in the text vocabulary.
pub const VOCABULARY: usize = 100_000;
/// Words per generated line.
pub const WORDS_PER_LINE: usize = 13;
/// Zipf exponent of word frequencies.
pub const ZIPF_S: f64 = 1.1;

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

/// Dimensions of generated KMeans points.
pub const POINT_DIMS: usize = 4;
/// Clusters generated points are drawn around.
pub const POINT_CLUSTERS: usize = 8;
/// Average out-degree of generated graphs.
pub const GRAPH_DEGREE: u64 = 8;
/// Distinct keys of generated key-value data, per record.
pub const KV_KEY_SHARE: u64 = 10;

/// Edge `index` of a graph of `edges` edges (PageRank, SNAP format): sources uniform over
/// the vertices, destinations skewed towards low ids, so ranks differ.
pub fn graph_edge(seed: u64, index: u64, edges: u64) -> (u64, u64) {
    let vertices = (edges / GRAPH_DEGREE).max(2);
    let mut rng = record_rng(seed, index);
    let src = rng.random_range(0..vertices);
    let u: f64 = rng.random();
    let dst = ((u * u) * vertices as f64) as u64 % vertices;
    (src, dst)
}

/// Point `index` for KMeans: near one of [`POINT_CLUSTERS`] centres fixed by `seed`.
pub fn point(seed: u64, index: u64) -> [f64; POINT_DIMS] {
    let mut centres = Pcg64Mcg::seed_from_u64(seed ^ 0x6b6d_6561_6e73);
    let cluster = record_rng(seed, index).random_range(0..POINT_CLUSTERS);
    let mut centre = [0.0; POINT_DIMS];
    for _ in 0..=cluster {
        for c in &mut centre {
            *c = centres.random_range(-100.0..100.0);
        }
    }
    let mut rng = record_rng(seed ^ 1, index);
    let mut p = [0.0; POINT_DIMS];
    for (x, c) in p.iter_mut().zip(centre) {
        *x = c + rng.random_range(-5.0..5.0);
    }
    p
}

/// Key-value record `index` of `records`: an integer key (about one in
/// [`KV_KEY_SHARE`] records share it) and an integer value.
pub fn kv(seed: u64, index: u64, records: u64) -> (u64, i64) {
    let keys = (records / KV_KEY_SHARE).max(1);
    let mut rng = record_rng(seed, index);
    (
        rng.random_range(0..keys),
        rng.random_range(-1_000_000..1_000_000),
    )
}

/// The kinds of data `ember datagen` writes (FORMATS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Zipf words, 13 a line (WordCount).
    Text,
    /// 100-byte records with 10-byte random keys (TeraSort).
    Sort,
    /// `src<TAB>dst` edge list (PageRank).
    Graph,
    /// Points, 4 floats a line (KMeans).
    Points,
    /// `key,value` integer pairs (group-by, join).
    Kv,
}

impl Kind {
    /// Writes record `index` of a data set of `count` records.
    pub fn write_record(
        self,
        out: &mut dyn std::io::Write,
        seed: u64,
        index: u64,
        count: u64,
    ) -> std::io::Result<()> {
        match self {
            Kind::Text => writeln!(out, "{}", text_line(seed, index)),
            Kind::Sort => out.write_all(&crate::io::records::Record::generate(seed, index).0),
            Kind::Graph => {
                let (s, d) = graph_edge(seed, index, count);
                writeln!(out, "{s}\t{d}")
            }
            Kind::Points => {
                let p = point(seed, index);
                writeln!(out, "{} {} {} {}", p[0], p[1], p[2], p[3])
            }
            Kind::Kv => {
                let (k, v) = kv(seed, index, count);
                writeln!(out, "{k},{v}")
            }
        }
    }

    /// Records in a data set of about `bytes` bytes (from the mean size of a sample).
    pub fn records_for(self, bytes: u64, seed: u64) -> u64 {
        if self == Kind::Sort {
            return (bytes / 100).max(1);
        }
        let sample = 1000u64;
        let guess = (bytes / 20).max(sample);
        let mut buf = Vec::new();
        for i in 0..sample {
            let _ = self.write_record(&mut buf, seed, i * (guess / sample).max(1), guess);
        }
        let mean = buf.len() as f64 / sample as f64;
        ((bytes as f64 / mean) as u64).max(1)
    }
}

/// Partitions for generating `bytes` on the executors: one per executor thread, more so
/// that none exceeds 64 MiB.
pub fn generated_partitions(ctx: &Context, bytes: u64) -> usize {
    ctx.default_parallelism()
        .max(bytes.div_ceil(64 << 20) as usize)
}

/// Writes records `range` of a data set of `count` records to `path`.
pub fn write_part(
    path: &std::path::Path,
    kind: Kind,
    seed: u64,
    range: std::ops::Range<u64>,
    count: u64,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for i in range {
        kind.write_record(&mut out, seed, i, count)?;
    }
    out.flush()
}

/// The records of part `p` of `parts`: contiguous, so the parts in order are the data set.
pub fn part_range(p: u64, parts: u64, count: u64) -> std::ops::Range<u64> {
    (p * count / parts)..((p + 1) * count / parts)
}
