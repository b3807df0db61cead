//! Partitioners: which reduce partition a key goes to, identically on every rank.

use std::hash::{Hash, Hasher};

/// Reduce partition of `key` among `n`: FxHash (deterministic, fast), scaled by a
/// multiply-shift so the high bits decide (FxHash's low bits are weak for small ints).
pub fn hash_partition<K: Hash + ?Sized>(key: &K, n: usize) -> usize {
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    ((h.finish() as u128 * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_integer_keys_spread_over_partitions() {
        let n = 8;
        let mut counts = vec![0usize; n];
        for k in 0u64..8000 {
            let p = hash_partition(&k, n);
            assert!(p < n);
            counts[p] += 1;
        }
        assert!(counts.iter().all(|&c| c > 600), "{counts:?}");
        assert_eq!(
            hash_partition("word", 5),
            hash_partition(&"word".to_string(), 5)
        );
    }
}
