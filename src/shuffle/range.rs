//! Range partitioning: boundaries from a sample of keys, so sorted output is split evenly.

use rand::{Rng, SeedableRng};

/// Keys to sample per output partition (Spark uses 20, oversampled 3×).
pub const SAMPLES_PER_PARTITION: usize = 60;

/// Keys a sort samples at least, whatever its partition count: with Spark's 60 per
/// partition, a 2-partition sort placed its one boundary by 120 keys, whose median is
/// off by 4.4% of the records (one standard deviation): TeraSort's larger reduce task got
/// 56% of 10.7 M records and the stage waited for it. 4096 keys make that 0.8%, and
/// sampling in place reads them for a few milliseconds.
pub const MIN_SAMPLES: usize = 4096;

/// How many keys a sort into `partitions` partitions samples in all.
pub fn sample_size(partitions: usize) -> usize {
    (SAMPLES_PER_PARTITION * partitions).max(MIN_SAMPLES)
}

/// A reservoir sample of at most `size` items of `items` (deterministic for a `seed`),
/// and the number of items seen.
pub fn reservoir<T>(items: impl Iterator<Item = T>, size: usize, seed: u64) -> (Vec<T>, u64) {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let mut sample = Vec::with_capacity(size);
    let mut seen = 0u64;
    for item in items {
        if sample.len() < size {
            sample.push(item);
        } else {
            let j = rng.random_range(0..=seen);
            if (j as usize) < size {
                sample[j as usize] = item;
            }
        }
        seen += 1;
    }
    (sample, seen)
}

/// `size` distinct positions below `n` (all of them if `n <= size`), uniformly drawn
/// (Floyd's algorithm, deterministic for a `seed`), in ascending order.
pub fn sample_positions(n: u64, size: usize, seed: u64) -> Vec<u64> {
    if n <= size as u64 {
        return (0..n).collect();
    }
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let mut picked = std::collections::BTreeSet::new();
    for j in n - size as u64..n {
        let t = rng.random_range(0..=j);
        if !picked.insert(t) {
            picked.insert(j);
        }
    }
    picked.into_iter().collect()
}

/// `partitions - 1` ascending boundaries from per-partition samples: each sample is
/// `(keys, items the partition holds)`, so a key stands for `items / keys.len()` items
/// and a partition that held more gets more boundaries.
pub fn boundaries<K: Ord + Clone>(samples: Vec<(Vec<K>, u64)>, partitions: usize) -> Vec<K> {
    let mut weighted: Vec<(K, f64)> = Vec::new();
    for (keys, seen) in samples {
        if keys.is_empty() {
            continue;
        }
        let weight = seen as f64 / keys.len() as f64;
        weighted.extend(keys.into_iter().map(|k| (k, weight)));
    }
    if partitions <= 1 || weighted.is_empty() {
        return Vec::new();
    }
    weighted.sort_by(|a, b| a.0.cmp(&b.0));
    let total: f64 = weighted.iter().map(|w| w.1).sum();
    let step = total / partitions as f64;
    let mut bounds: Vec<K> = Vec::with_capacity(partitions - 1);
    let mut acc = 0.0;
    let mut target = step;
    for (key, weight) in weighted {
        acc += weight;
        if acc >= target && bounds.len() < partitions - 1 {
            if bounds.last() != Some(&key) {
                bounds.push(key);
            }
            target += step;
        }
    }
    bounds
}

/// The partition of `key` for `bounds`: keys up to and including `bounds[0]` go to 0, ...
pub fn range_partition<K: Ord>(bounds: &[K], key: &K, ascending: bool) -> usize {
    let p = bounds.partition_point(|b| b < key);
    if ascending { p } else { bounds.len() - p }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservoir_keeps_at_most_its_size_and_counts_everything() {
        let (s, seen) = reservoir(0..1000, 10, 1);
        assert_eq!((s.len(), seen), (10, 1000));
        assert_eq!(reservoir(0..3, 10, 1), (vec![0, 1, 2], 3));
    }

    #[test]
    fn sampled_positions_are_distinct_in_range_and_spread() {
        assert_eq!(sample_positions(3, 10, 1), vec![0, 1, 2]);
        let p = sample_positions(1_000_000, 500, 7);
        assert_eq!(p.len(), 500);
        assert!(p.windows(2).all(|w| w[0] < w[1]) && p[499] < 1_000_000);
        assert_eq!(p, sample_positions(1_000_000, 500, 7), "deterministic");
        // Spread over the whole range: each tenth holds about a tenth of them.
        let mut tenths = [0; 10];
        p.iter().for_each(|&x| tenths[(x / 100_000) as usize] += 1);
        assert!(tenths.iter().all(|&c| (25..=80).contains(&c)), "{tenths:?}");
    }

    #[test]
    fn boundaries_split_a_uniform_sample_evenly() {
        let keys: Vec<u32> = (0..1000).collect();
        let b = boundaries(vec![(keys, 1000)], 4);
        assert_eq!(b, vec![249, 499, 749]);
        let counts = (0..1000u32).fold([0; 4], |mut c, k| {
            c[range_partition(&b, &k, true)] += 1;
            c
        });
        assert_eq!(counts, [250; 4]);
        assert_eq!(range_partition(&b, &0, false), 3);
    }

    #[test]
    fn heavier_partitions_weigh_more_and_bounds_are_distinct() {
        // Partition A: 10 sampled keys standing for 1000 items; B: 10 keys for 10 items.
        let a: Vec<u32> = (0..10).collect();
        let b: Vec<u32> = (100..110).collect();
        let bounds = boundaries(vec![(a, 1000), (b, 10)], 2);
        assert!(bounds[0] < 10, "{bounds:?}");
        let same = boundaries(vec![(vec![5u32; 50], 50)], 4);
        assert_eq!(same, vec![5]);
    }
}
