//! Partitioner tracking, counted by the driver's exchanges: an RDD partitioned by key and
//! cached is not shuffled again by a join, a cogroup or an aggregation on the same
//! partitioner, and PageRank's links cross the network once for all its iterations.
//! In one process with 1, 2 and 4 executors; the PageRank job under mpirun is checked the
//! same way from the driver's log in `tests/persistence.rs`.

use std::collections::{BTreeMap, HashMap};

use ember::config::EngineArgs;
use ember::{Context, Partitioner, Rdd, ShuffleId, StorageLevel};

/// How many times each shuffle has been exchanged so far, and the bytes of each.
fn exchanged(ctx: &Context) -> BTreeMap<ShuffleId, (usize, u64)> {
    let mut out: BTreeMap<ShuffleId, (usize, u64)> = BTreeMap::new();
    for s in ctx.shuffle_stats() {
        let e = out.entry(s.shuffle).or_default();
        e.0 += 1;
        e.1 += s.bytes;
    }
    out
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

type Left = Vec<(u32, i64)>;
type Right = Vec<(u32, String)>;

/// (key, value) rows with keys repeating, and a second side with some keys missing.
fn sides() -> (Left, Right) {
    let left = (0..3000u32)
        .map(|i| (i * 7 % 211, i as i64 - 1500))
        .collect();
    let right = (0..400u32)
        .map(|i| (i * 13 % 300, format!("w{}", i % 9)))
        .collect();
    (left, right)
}

fn join_reference(left: &[(u32, i64)], right: &[(u32, String)]) -> Vec<(u32, (i64, String))> {
    let mut by_key: HashMap<u32, Vec<&String>> = HashMap::new();
    for (k, w) in right {
        by_key.entry(*k).or_default().push(w);
    }
    let mut out = Vec::new();
    for (k, v) in left {
        for w in by_key.get(k).into_iter().flatten() {
            out.push((*k, (*v, (*w).clone())));
        }
    }
    sorted(out)
}

#[test]
fn a_co_partitioned_join_shuffles_each_side_once() {
    let (left, right) = sides();
    let want = join_reference(&left, &right);
    for executors in [1, 2, 4] {
        let ctx = Context::local_with_executors(&EngineArgs::default(), executors);
        let p = Partitioner::hash(4);
        let l = ctx
            .parallelize(left.clone(), Some(3))
            .partition_by(p.clone())
            .unwrap();
        let l = l.persist(StorageLevel::Memory);
        let r = ctx
            .parallelize(right.clone(), Some(5))
            .partition_by(p.clone())
            .unwrap();
        assert_eq!(l.partitioner(), Some(p.clone()));
        let joined = l.join(&r);
        assert_eq!(joined.partitioner(), Some(p.clone()), "a join keeps it");
        assert_eq!(
            sorted(joined.collect().unwrap()),
            want,
            "{executors} executor(s)"
        );
        // Exactly the two partition_by shuffles, once each: the join added none.
        let first = exchanged(&ctx);
        assert_eq!(first.len(), 2, "{executors} executor(s): {first:?}");
        assert!(first.values().all(|&(n, _)| n == 1), "{first:?}");

        // Joined again with an unpartitioned side: the cached side stays where it is,
        // only the new side is shuffled (one exchange more), and the result is the same.
        let again = l.join(&ctx.parallelize(right.clone(), Some(2)));
        assert_eq!(sorted(again.collect().unwrap()), want);
        let second = exchanged(&ctx);
        assert_eq!(second.len(), 3, "{executors} executor(s): {second:?}");
        assert!(second.values().all(|&(n, _)| n == 1), "{second:?}");

        // Aggregations on the same partitioner: narrow, no exchange at all.
        let sums = l.reduce_by_key(|a, b| a + b);
        let groups = l.group_by_key().map_values(|vs| vs.len());
        let mut want_sums: BTreeMap<u32, (i64, usize)> = BTreeMap::new();
        for (k, v) in &left {
            let e = want_sums.entry(*k).or_default();
            e.0 += v;
            e.1 += 1;
        }
        let got_sums: BTreeMap<u32, i64> = sums.collect().unwrap().into_iter().collect();
        let got_groups: BTreeMap<u32, usize> = groups.collect().unwrap().into_iter().collect();
        assert_eq!(got_sums, want_sums.iter().map(|(k, s)| (*k, s.0)).collect());
        assert_eq!(
            got_groups,
            want_sums.iter().map(|(k, s)| (*k, s.1)).collect()
        );
        assert_eq!(
            exchanged(&ctx),
            second,
            "aggregations of a partitioned RDD shuffled"
        );
        ctx.stop();
    }
}

#[test]
fn an_aggregation_of_a_large_co_partitioned_rdd_merges_each_key_once() {
    // 400 k rows over 150 k keys in 2 partitions: 75 k keys a partition, past one
    // cache-sized map, so each partition is combined a sub-part of its keys at a time.
    let rows: Vec<(u64, u64)> = (0..400_000u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9) % 150_000, i))
        .collect();
    let mut sums: BTreeMap<u64, u64> = BTreeMap::new();
    let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &(k, v) in &rows {
        *sums.entry(k).or_default() += v;
        groups.entry(k).or_default().push(v);
    }
    for executors in [1, 2] {
        let ctx = Context::local_with_executors(&EngineArgs::default(), executors);
        let by_key = ctx
            .parallelize(rows.clone(), Some(3))
            .partition_by(Partitioner::hash(2))
            .unwrap()
            .persist(StorageLevel::Memory);
        let got: Vec<(u64, u64)> = sorted(by_key.reduce_by_key(|a, b| a + b).collect().unwrap());
        assert_eq!(got, sums.clone().into_iter().collect::<Vec<_>>());
        let got: BTreeMap<u64, Vec<u64>> = by_key
            .group_by_key()
            .collect()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, sorted(v.into_vec())))
            .collect();
        assert_eq!(got, groups, "{executors} executor(s)");
        // Only partition_by's shuffle: both aggregations ran in place.
        assert_eq!(exchanged(&ctx).len(), 1);
        ctx.stop();
    }
}

#[test]
fn an_aggregation_by_key_right_after_distinct_shares_its_shuffle() {
    // Edges with repeats: 4000 rows, 720 distinct pairs over 60 sources.
    let edges: Vec<(u32, u32)> = (0..4000u32).map(|i| (i % 60, i % 700 / 60 * 3)).collect();
    let mut want: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &(s, d) in std::collections::BTreeSet::from_iter(edges.iter().copied()).iter() {
        want.entry(s).or_default().push(d);
    }
    let degrees: Vec<(u32, usize)> = want.iter().map(|(s, d)| (*s, d.len())).collect();
    let pairs: u64 = degrees.iter().map(|d| d.1 as u64).sum();
    for executors in [1, 2, 4] {
        let ctx = Context::local_with_executors(&EngineArgs::default(), executors);
        let distinct = ctx.parallelize(edges.clone(), Some(5)).distinct();
        let groups = distinct.group_by_key();
        assert_eq!(groups.partitioner(), Some(Partitioner::hash(5)));
        let got: BTreeMap<u32, Vec<u32>> = groups
            .collect()
            .unwrap()
            .into_iter()
            .map(|(s, d)| (s, sorted(d.into_vec())))
            .collect();
        assert_eq!(got, want, "{executors} executor(s)");
        assert_eq!(exchanged(&ctx).len(), 1, "grouped by a shuffle of its own");
        // reduce_by_key too, into another partitioner: shuffled once, by it.
        let counts = distinct.map_values(|_| 1usize).reduce_by_key(|a, b| a + b);
        assert_eq!(sorted(counts.collect().unwrap()), degrees);
        let counts = distinct.reduce_by_key_into(|a, _| a, 3);
        assert_eq!(counts.partitioner(), Some(Partitioner::hash(3)));
        assert_eq!(counts.count().unwrap(), degrees.len() as u64);
        // The distinct records themselves, and a persisted distinct: the cached records
        // are grouped by a shuffle of their own, not made again.
        assert_eq!(distinct.count().unwrap(), pairs);
        let cached = distinct.persist(StorageLevel::Memory);
        assert_eq!(cached.count().unwrap(), pairs);
        let before = exchanged(&ctx).len();
        let groups = cached.group_by_key().collect().unwrap();
        assert_eq!(groups.len(), want.len());
        assert_eq!(exchanged(&ctx).len(), before + 1);
        ctx.stop();
    }
}

/// Spark's PageRank over `edges` for `iterations`, all in one action, in `ctx`.
fn pagerank(ctx: &Context, edges: &[(u32, u32)], iterations: usize) -> Vec<(u32, f64)> {
    let links: Rdd<(u32, ember::Group<u32>)> = ctx
        .parallelize(edges.to_vec(), Some(4))
        .group_by_key()
        .persist(StorageLevel::Memory);
    let mut ranks = links.map_values(|_| 1.0f64);
    for _ in 0..iterations {
        ranks = links
            .join(&ranks)
            .flat_map(|(_, (dests, rank))| {
                let share = rank / dests.len() as f64;
                dests.into_iter().map(move |d| (d, share))
            })
            .reduce_by_key(|a, b| a + b)
            .map_values(|s| 0.15 + 0.85 * s);
    }
    let plan = ranks.explain();
    // The links' shuffle is printed (and planned) once, however many iterations read it.
    assert_eq!(plan.matches("+- shuffle 0 ").count(), 1, "{plan}");
    sorted_by_vertex(ranks.collect().unwrap())
}

fn sorted_by_vertex(mut ranks: Vec<(u32, f64)>) -> Vec<(u32, f64)> {
    ranks.sort_by_key(|r| r.0);
    ranks
}

fn pagerank_reference(edges: &[(u32, u32)], iterations: usize) -> Vec<(u32, f64)> {
    let mut out: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &(s, d) in edges {
        out.entry(s).or_default().push(d);
    }
    let mut ranks: BTreeMap<u32, f64> = out.keys().map(|&s| (s, 1.0)).collect();
    for _ in 0..iterations {
        let mut next: BTreeMap<u32, f64> = BTreeMap::new();
        for (s, dests) in &out {
            if let Some(r) = ranks.get(s) {
                for d in dests {
                    *next.entry(*d).or_default() += r / dests.len() as f64;
                }
            }
        }
        ranks = next
            .into_iter()
            .map(|(k, s)| (k, 0.15 + 0.85 * s))
            .collect();
    }
    ranks.into_iter().collect()
}

#[test]
fn pagerank_shuffles_its_links_once_for_all_iterations() {
    let edges: Vec<(u32, u32)> = (0..3000u32).map(|i| (i % 97, (i * 31) % 89)).collect();
    let iterations = 6;
    let want = pagerank_reference(&edges, iterations);
    for executors in [1, 2, 4] {
        let ctx = Context::local_with_executors(&EngineArgs::default(), executors);
        let got = pagerank(&ctx, &edges, iterations);
        assert_eq!(got.len(), want.len());
        for ((v, g), (w, r)) in got.iter().zip(&want) {
            assert_eq!(v, w);
            assert!(
                (g - r).abs() < 1e-9 * r.abs().max(1.0),
                "vertex {v}: {g} vs {r}"
            );
        }
        // One shuffle for the links (shuffle 0), one per iteration for the contributions;
        // each exchanged once. A join that shuffled either side would add one or two per
        // iteration.
        let shuffles = exchanged(&ctx);
        assert_eq!(
            shuffles.len(),
            1 + iterations,
            "{executors} executor(s): {shuffles:?}"
        );
        assert!(shuffles.values().all(|&(n, _)| n == 1), "{shuffles:?}");
        assert!(shuffles.contains_key(&ShuffleId(0)), "{shuffles:?}");
        ctx.stop();
    }
}
