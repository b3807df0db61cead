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
    fn a_zipf_exponent_must_be_positive() {
        assert_eq!(positive_exponent("1.5"), Ok(1.5));
        for bad in ["0", "-1", "NaN", "x"] {
            assert!(positive_exponent(bad).is_err(), "{bad}");
        }
    }

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

    /// Share of each key among `draws` draws of `sampler`.
    fn shares(sampler: &KeySampler, keys: u64, draws: u64) -> Vec<f64> {
        let mut counts = vec![0u64; keys as usize];
        for i in 0..draws {
            counts[sampler.sample(&mut record_rng(5, i)) as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn zipf_keys_follow_their_probabilities() {
        for (keys, s) in [(1000u64, 1.1), (50, 1.0), (200, 1.5), (10, 0.5)] {
            let sampler = KeySampler::new(keys, KeyDist::Zipf(s));
            let draws = 1_000_000;
            let got = shares(&sampler, keys, draws);
            let h: f64 = (1..=keys).map(|r| 1.0 / (r as f64).powf(s)).sum();
            for r in [1u64, 2, 3, 10] {
                let want = 1.0 / (r as f64).powf(s) / h;
                let have = got[r as usize - 1];
                // Within 4.5 standard deviations: tight enough to see the rejection step
                // missing (key 1 of s = 1.1 then comes 2.4% too often).
                let sd = (want * (1.0 - want) / draws as f64).sqrt();
                assert!(
                    (have - want).abs() < 4.5 * sd,
                    "keys {keys}, s {s}: key {} share {have}, expected {want}",
                    r - 1
                );
            }
        }
    }

    #[test]
    fn uniform_keys_cover_the_range_evenly_and_kv_data_is_unchanged() {
        let got = shares(&KeySampler::new(20, KeyDist::Uniform), 20, 100_000);
        assert!(got.iter().all(|&p| (p - 0.05).abs() < 0.005), "{got:?}");
        // `kv` draws the key first, then the value, from the record's generator.
        let mut rng = record_rng(3, 17);
        let key = rng.random_range(0..kv_keys(1000));
        assert_eq!(
            kv(3, 17, 1000),
            (key, rng.random_range(-1_000_000..1_000_000))
        );
    }

    #[test]
    fn a_dimension_holds_each_key_once() {
        let rows: Vec<(u64, i64)> = (0..100).map(|k| dim_row(1, k)).collect();
        assert!(rows.iter().enumerate().all(|(i, r)| r.0 == i as u64));
        assert_ne!(dim_row(1, 5), dim_row(2, 5));
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

/// Zipf exponent of the keys of `kv-zipf` data (and the jobs' default `--skew`): the most
/// frequent key holds about a tenth of the rows.
pub const KV_ZIPF_S: f64 = 1.1;

/// Distinct keys of a generated key-value data set of `records` records: keys are
/// `0..kv_keys(records)`.
pub fn kv_keys(records: u64) -> u64 {
    (records / KV_KEY_SHARE).max(1)
}

/// How generated keys are drawn from `0..keys`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Key `r - 1` with probability proportional to `1 / r^s`: key 0 is the most frequent.
    Zipf(f64),
}

/// Draws keys from `0..keys` by a [`KeyDist`] in O(1) time and memory per key (Zipf by
/// rejection-inversion, Hörmann and Derflinger 1996), so any number of keys works
/// without a table.
#[derive(Debug, Clone, Copy)]
pub struct KeySampler {
    keys: u64,
    zipf: Option<ZipfConsts>,
}

#[derive(Debug, Clone, Copy)]
struct ZipfConsts {
    s: f64,
    h_x1: f64,
    h_n: f64,
    cut: f64,
}

/// `ln(1 + x) / x`, accurate near 0.
fn log1p_over(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x / 3.0)
    }
}

/// `(e^x - 1) / x`, accurate near 0.
fn expm1_over(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * (0.5 + x / 6.0)
    }
}

impl ZipfConsts {
    /// H(x) = the integral of x^-s (any s > 0, including 1).
    fn h_integral(&self, x: f64) -> f64 {
        let lx = x.ln();
        expm1_over((1.0 - self.s) * lx) * lx
    }
    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }
    fn h_integral_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (log1p_over(t) * x).exp()
    }
}

impl KeySampler {
    /// A sampler over `0..keys` (at least one key); a Zipf exponent must be positive.
    pub fn new(keys: u64, dist: KeyDist) -> KeySampler {
        let keys = keys.max(1);
        let zipf = match dist {
            KeyDist::Uniform => None,
            KeyDist::Zipf(s) => {
                assert!(s > 0.0, "Zipf exponent must be positive, not {s}");
                let mut c = ZipfConsts {
                    s,
                    h_x1: 0.0,
                    h_n: 0.0,
                    cut: 0.0,
                };
                c.h_x1 = c.h_integral(1.5) - 1.0;
                c.h_n = c.h_integral(keys as f64 + 0.5);
                c.cut = 2.0 - c.h_integral_inv(c.h_integral(2.5) - c.h(2.0));
                Some(c)
            }
        };
        KeySampler { keys, zipf }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let Some(z) = &self.zipf else {
            return rng.random_range(0..self.keys);
        };
        let n = self.keys as f64;
        loop {
            let u = z.h_n + rng.random::<f64>() * (z.h_x1 - z.h_n);
            let x = z.h_integral_inv(u);
            let k = (x + 0.5).floor().clamp(1.0, n);
            if k - x <= z.cut || u >= z.h_integral(k + 0.5) - z.h(k) {
                return k as u64 - 1;
            }
        }
    }
}

/// Key-value record `index` of `records`: an integer key (about one in
/// [`KV_KEY_SHARE`] records share it) and an integer value.
pub fn kv(seed: u64, index: u64, records: u64) -> (u64, i64) {
    kv_with(
        seed,
        index,
        &KeySampler::new(kv_keys(records), KeyDist::Uniform),
    )
}

/// Key-value record `index`, its key drawn by `keys`.
pub fn kv_with(seed: u64, index: u64, keys: &KeySampler) -> (u64, i64) {
    let mut rng = record_rng(seed, index);
    (
        keys.sample(&mut rng),
        rng.random_range(-1_000_000..1_000_000),
    )
}

/// The dimension row of `key` for a join: every key once, with its own value.
pub fn dim_row(seed: u64, key: u64) -> (u64, i64) {
    let mut rng = record_rng(seed ^ 0x6469_6d65_6e73, key);
    (key, rng.random_range(-1_000_000..1_000_000))
}

/// How the key-value jobs (groupby, join) draw generated keys: `--keys`, `--skew`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// How generated keys are drawn: uniform, or zipf (skewed: key 0 the most frequent).
    #[arg(long, value_enum, default_value_t = Keys::Uniform)]
    pub keys: Keys,
    /// Zipf exponent of `--keys zipf`: 1.1 gives the top key about a tenth of the rows,
    /// 1.5 about a third.
    #[arg(long, default_value_t = KV_ZIPF_S, value_parser = positive_exponent)]
    pub skew: f64,
}

/// The key distributions of [`KeyArgs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Keys {
    Uniform,
    Zipf,
}

impl KeyArgs {
    /// The data set these keys make and their distribution.
    pub fn kind_and_dist(&self) -> (Kind, KeyDist) {
        match self.keys {
            Keys::Uniform => (Kind::Kv, KeyDist::Uniform),
            Keys::Zipf => (Kind::KvZipf, KeyDist::Zipf(self.skew)),
        }
    }
}

/// `--skew`: a Zipf exponent must be a positive number.
fn positive_exponent(text: &str) -> Result<f64, String> {
    let s: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if s > 0.0 {
        Ok(s)
    } else {
        Err(format!("must be positive, not {s}"))
    }
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
    /// `key,value` integer pairs, keys uniform (group-by, join's fact side).
    Kv,
    /// `key,value` integer pairs, keys Zipf-distributed (s = 1.1): skewed.
    KvZipf,
    /// `key,value` rows with keys `0..records`, each once (join's dimension side): the
    /// dimension of a `kv` or `kv-zipf` set of N records has N / 10 records.
    KvDim,
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
            Kind::KvZipf => {
                let keys = KeySampler::new(kv_keys(count), KeyDist::Zipf(KV_ZIPF_S));
                let (k, v) = kv_with(seed, index, &keys);
                writeln!(out, "{k},{v}")
            }
            Kind::KvDim => {
                let (k, v) = dim_row(seed, index);
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
/// that none exceeds 64 MiB, rounded up to a multiple of the threads so that every
/// executor thread gets as many (3 partitions on 2 threads left one executor two thirds of
/// the data, and of the memory).
pub fn generated_partitions(ctx: &Context, bytes: u64) -> usize {
    balanced_partitions(ctx.default_parallelism(), bytes)
}

fn balanced_partitions(threads: usize, bytes: u64) -> usize {
    let threads = threads.max(1);
    let by_size = bytes.div_ceil(64 << 20) as usize;
    by_size.max(threads).div_ceil(threads) * threads
}

#[cfg(test)]
mod partition_tests {
    use super::balanced_partitions;

    #[test]
    fn generated_partitions_are_a_multiple_of_the_threads_and_at_most_64_mib() {
        assert_eq!(balanced_partitions(2, 1 << 20), 2);
        assert_eq!(
            balanced_partitions(2, 138 << 20),
            4,
            "3 by size, rounded to 4"
        );
        assert_eq!(balanced_partitions(4, 1 << 30), 16);
        assert_eq!(balanced_partitions(3, 130 << 20), 3);
        assert_eq!(balanced_partitions(0, 10), 1);
    }
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
