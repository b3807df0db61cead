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
