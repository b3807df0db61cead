//! Property tests: pair operators on random inputs against plain sequential code, in-process.

use std::collections::{BTreeMap, BTreeSet};

use ember::Context;
use ember::config::EngineArgs;
use proptest::prelude::*;

fn context() -> &'static Context {
    static CTX: std::sync::OnceLock<Context> = std::sync::OnceLock::new();
    CTX.get_or_init(|| Context::local_with(&EngineArgs::default()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn reduce_by_key_sums_like_a_map(pairs in prop::collection::vec((0u8..20, -1000i64..1000), 0..300), parts in 1usize..6) {
        let ctx = context();
        let mut got = ctx.parallelize(pairs.clone(), Some(parts)).reduce_by_key(|a, b| a + b).collect().unwrap();
        got.sort();
        let mut want: BTreeMap<u8, i64> = BTreeMap::new();
        for (k, v) in pairs {
            *want.entry(k).or_default() += v;
        }
        prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn join_pairs_every_matching_value(
        left in prop::collection::vec((0u8..10, 0u16..100), 0..60),
        right in prop::collection::vec((0u8..10, 0u16..100), 0..60),
        parts in 1usize..5,
    ) {
        let ctx = context();
        let l = ctx.parallelize(left.clone(), Some(parts));
        let r = ctx.parallelize(right.clone(), Some(parts + 1));
        let mut got = l.join(&r).collect().unwrap();
        got.sort();
        let mut want = Vec::new();
        for &(k, v) in &left {
            for &(k2, w) in &right {
                if k == k2 {
                    want.push((k, (v, w)));
                }
            }
        }
        want.sort();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn distinct_and_repartition_keep_the_multiset(xs in prop::collection::vec(0u32..50, 0..200), parts in 1usize..6) {
        let ctx = context();
        let rdd = ctx.parallelize(xs.clone(), Some(parts));
        let distinct: BTreeSet<u32> = rdd.distinct().collect().unwrap().into_iter().collect();
        prop_assert_eq!(distinct, xs.iter().copied().collect::<BTreeSet<_>>());
        let mut shuffled = rdd.repartition(parts + 2).collect().unwrap();
        shuffled.sort();
        let mut sorted = xs.clone();
        sorted.sort();
        prop_assert_eq!(shuffled, sorted);
    }
}

/// `xs` in `parts` partitions, followed by `empty` partitions with nothing in them.
fn with_empty_partitions<T: ember::Data>(
    ctx: &Context,
    xs: Vec<T>,
    parts: usize,
    empty: usize,
) -> ember::Rdd<T> {
    ctx.parallelize(xs, Some(parts))
        .union(&ctx.parallelize(Vec::new(), Some(empty)))
}

// Inputs of 20,000-60,000 records in 1-3 partitions: every partition spans several
// 4,096-record batches, and empty partitions ride along.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn reduce_by_key_over_many_batches_and_empty_partitions(
        seed in any::<u64>(),
        n in 30_000usize..60_000,
        parts in 1usize..4,
        empty in 1usize..3,
        keys in 1u32..5_000,
    ) {
        let mut s = seed;
        let pairs: Vec<(u32, i64)> = (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (((s >> 33) as u32) % keys, (s >> 50) as i64 - 4096)
            })
            .collect();
        let ctx = context();
        let rdd = with_empty_partitions(ctx, pairs.clone(), parts, empty);
        prop_assert_eq!(rdd.num_partitions(), parts + empty);
        let sizes = rdd.map_partitions(|it| vec![it.count()]).collect().unwrap();
        prop_assert_eq!(sizes.iter().filter(|&&c| c == 0).count(), empty);
        prop_assert!(sizes.iter().all(|&c| c == 0 || c > 2 * 4096));
        let mut got = rdd.reduce_by_key(|a, b| a + b).collect().unwrap();
        got.sort();
        let mut want: BTreeMap<u32, i64> = BTreeMap::new();
        for &(k, v) in &pairs {
            *want.entry(k).or_default() += v;
        }
        prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        // Narrow operators keep order and content across batch boundaries.
        let mapped = rdd.filter(|(k, _)| k % 3 != 0).map(|(k, v)| v * 2 + k as i64).collect().unwrap();
        let want_mapped: Vec<i64> = pairs.iter().filter(|(k, _)| k % 3 != 0).map(|&(k, v)| v * 2 + k as i64).collect();
        prop_assert_eq!(mapped, want_mapped);
    }

    #[test]
    fn join_and_repartition_over_many_batches_and_empty_partitions(
        seed in any::<u64>(),
        n in 30_000usize..40_000,
        parts in 1usize..4,
        empty in 1usize..3,
    ) {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s >> 33
        };
        let left: Vec<(u32, u32)> = (0..n).map(|_| ((next() % 20_000) as u32, next() as u32)).collect();
        let right: Vec<(u32, u16)> = (0..n / 2).map(|_| ((next() % 20_000) as u32, next() as u16)).collect();
        let ctx = context();
        let l = with_empty_partitions(ctx, left.clone(), parts, empty);
        let r = with_empty_partitions(ctx, right.clone(), parts + 1, empty);
        let mut got = l.join(&r).collect().unwrap();
        got.sort();
        let mut by_key: BTreeMap<u32, Vec<u16>> = BTreeMap::new();
        for &(k, w) in &right {
            by_key.entry(k).or_default().push(w);
        }
        let mut want = Vec::new();
        for &(k, v) in &left {
            for &w in by_key.get(&k).map(Vec::as_slice).unwrap_or(&[]) {
                want.push((k, (v, w)));
            }
        }
        want.sort();
        prop_assert_eq!(got, want);
        let mut shuffled = l.repartition(parts + 3).collect().unwrap();
        shuffled.sort();
        let mut sorted = left.clone();
        sorted.sort();
        prop_assert_eq!(shuffled, sorted);
    }
}
