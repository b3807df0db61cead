//! The operator suite: every operator run through ember and through a plain sequential
//! reference on the same input. Shared by the in-process tests and by the `operators`
//! example that the mpirun tests launch.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ember::shuffle::partitioner::hash_partition;
use ember::{Context, Partitioner, Result};

/// Deterministic input of the suite.
#[derive(Debug, Clone)]
pub struct Input {
    pub nums: Vec<i64>,
    pub pairs: Vec<(u32, i64)>,
    pub other: Vec<(u32, String)>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Input {
    pub fn generate(seed: u64, n: usize) -> Input {
        let mut s = seed;
        let nums = (0..n)
            .map(|_| (splitmix(&mut s) % 2001) as i64 - 1000)
            .collect();
        let pairs = (0..n)
            .map(|_| {
                (
                    (splitmix(&mut s) % 37) as u32,
                    (splitmix(&mut s) % 100) as i64,
                )
            })
            .collect();
        // At most 1,000 so that a join of large inputs stays small (each `pairs` key
        // meets ~19 `other` values).
        let other = (0..(n / 2).min(1000))
            .map(|_| {
                let k = (splitmix(&mut s) % 53) as u32;
                (k, format!("v{}", splitmix(&mut s) % 10))
            })
            .collect();
        Input { nums, pairs, other }
    }
}

/// One key of a cogroup result.
type CoGroup = (u32, (Vec<i64>, Vec<String>));

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Results by operator name, as comparable text.
pub type Results = BTreeMap<&'static str, String>;

fn put<T: std::fmt::Debug>(r: &mut Results, name: &'static str, value: T) {
    r.insert(name, format!("{value:?}"));
}

/// Writes the suite's input files into `scratch` (before the job starts): `records.bin`,
/// the numbers as 8-byte little-endian records, and `lines.txt`, ten numbers a line.
pub fn prepare_files(scratch: &Path, input: &Input) {
    std::fs::create_dir_all(scratch).unwrap();
    let records: Vec<u8> = input.nums.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(scratch.join("records.bin"), records).unwrap();
    let lines: Vec<String> = input
        .nums
        .chunks(10)
        .map(|c| c.iter().map(i64::to_string).collect::<Vec<_>>().join(" "))
        .collect();
    std::fs::write(scratch.join("lines.txt"), lines.join("\n")).unwrap();
}

/// Runs every operator through ember. `scratch` is a directory every rank can reach,
/// prepared by [`prepare_files`].
pub fn run_ember(
    ctx: &Context,
    input: &Input,
    partitions: usize,
    scratch: &Path,
) -> Result<Results> {
    let mut r = Results::new();
    let p = Some(partitions);
    let nums = ctx.parallelize(input.nums.clone(), p);
    let pairs = ctx.parallelize(input.pairs.clone(), p);
    let other = ctx.parallelize(input.other.clone(), p);

    put(&mut r, "map", nums.map(|x| x * 3 + 1).collect()?);
    put(&mut r, "filter", nums.filter(|x| x % 3 == 0).collect()?);
    put(
        &mut r,
        "flat_map",
        nums.flat_map(|x| vec![x; x.rem_euclid(3) as usize])
            .collect()?,
    );
    let sums = nums.map_partitions(|it| vec![it.sum::<i64>()]).collect()?;
    put(
        &mut r,
        "map_partitions",
        (sums.len(), sums.iter().sum::<i64>()),
    );
    put(&mut r, "union", nums.union(&nums.map(|x| -x)).collect()?);
    put(
        &mut r,
        "key_by",
        nums.key_by(|x| x.rem_euclid(7)).collect()?,
    );
    put(&mut r, "map_values", pairs.map_values(|v| v * 2).collect()?);
    put(
        &mut r,
        "distinct",
        sorted(nums.map(|x| x.rem_euclid(50)).distinct().collect()?),
    );
    let re = nums.repartition(3);
    put(
        &mut r,
        "repartition",
        (re.num_partitions(), sorted(re.collect()?)),
    );
    // The partitions coalesce reports and the ones its tasks actually produce.
    let co = nums.coalesce(2);
    let produced = co.map_partitions(|it| vec![it.count()]).collect()?.len();
    put(
        &mut r,
        "coalesce",
        (co.num_partitions(), produced, co.collect()?),
    );
    put(
        &mut r,
        "reduce_by_key",
        sorted(pairs.reduce_by_key(|a, b| a + b).collect()?),
    );
    let avg = pairs.aggregate_by_key(
        (0i64, 0u64),
        |(s, c), v| (s + v, c + 1),
        |a, b| (a.0 + b.0, a.1 + b.1),
    );
    put(&mut r, "aggregate_by_key", sorted(avg.collect()?));
    let groups: Vec<(u32, Vec<i64>)> = pairs
        .group_by_key()
        .map_values(|g| sorted(g.into_vec()))
        .collect()?;
    put(&mut r, "group_by_key", sorted(groups));
    put(&mut r, "join", sorted(pairs.join(&other).collect()?));
    put(
        &mut r,
        "left_outer_join",
        sorted(pairs.left_outer_join(&other).collect()?),
    );
    let cg: Vec<CoGroup> = pairs
        .cogroup(&other)
        .map_values(|(a, b)| (sorted(a), sorted(b)))
        .collect()?;
    put(&mut r, "cogroup", sorted(cg));
    partitioned(ctx, &mut r, &pairs, &other, partitions)?;
    put(&mut r, "count", nums.count()?);
    put(&mut r, "reduce", nums.reduce(|a, b| a + b)?);
    put(&mut r, "fold", nums.fold(0, |a, b| a + b)?);
    put(&mut r, "take", nums.take(5)?);
    put(&mut r, "first", nums.first()?);
    put(
        &mut r,
        "count_by_key",
        sorted(pairs.count_by_key()?.into_iter().collect()),
    );
    let records = ctx.binary_records(scratch.join("records.bin").to_str().unwrap(), 8, p)?;
    let decoded = records.map(|r| i64::from_le_bytes(r.try_into().expect("8 bytes")));
    put(&mut r, "binary_records", decoded.collect()?);
    let text = ctx.text_file_with(
        scratch.join("lines.txt").to_str().unwrap(),
        ember::TextOptions {
            partitions: p,
            ..Default::default()
        },
    )?;
    let parsed = text.flat_map(|l| {
        l.split(' ')
            .map(|w| w.parse::<i64>().expect("number"))
            .collect::<Vec<_>>()
    });
    put(&mut r, "text_file", parsed.collect()?);

    // A shuffled RDD used by two actions: the second job skips the map stage.
    let reused = pairs.reduce_by_key(|a, b| a + b);
    put(
        &mut r,
        "reuse",
        (reused.count()?, sorted(reused.collect()?)),
    );

    // Tasks add; afterwards every rank holds the driver's value, and uses it.
    let evens = ctx.accumulator::<u64>("evens");
    let acc = evens.clone();
    nums.foreach_partition(move |it| it.filter(|x| x % 2 == 0).for_each(|_| acc.add(1)))?;
    let seen = evens.value() as i64;
    put(
        &mut r,
        "accumulator",
        (seen, nums.map(move |x| x + seen).fold(0, |a, b| a + b)?),
    );

    let b = ctx.broadcast(vec![10i64, 20])?;
    put(
        &mut r,
        "broadcast",
        nums.map(move |x| x + b[0] * b[1]).fold(0, |a, b| a + b)?,
    );

    let marks = scratch.join("foreach");
    if ctx.is_driver() {
        std::fs::create_dir_all(&marks).map_err(|e| ember::Error::io(&marks, e))?;
    }
    let dir = marks.clone();
    nums.map_partitions_with_index(|i, it| vec![(i, it.count())])
        .foreach_partition(move |it| {
            for (i, n) in it {
                std::fs::write(dir.join(format!("p{i}")), n.to_string()).expect("write mark");
            }
        })?;
    if ctx.is_driver() {
        let mut seen = 0usize;
        for entry in std::fs::read_dir(&marks).map_err(|e| ember::Error::io(&marks, e))? {
            let path = entry.map_err(|e| ember::Error::io(&marks, e))?.path();
            seen += std::fs::read_to_string(&path)
                .unwrap_or_default()
                .parse::<usize>()
                .unwrap_or(0);
        }
        put(&mut r, "foreach_partition", seen);
    }

    let out = scratch.join("saved");
    pairs.reduce_by_key(|a, b| a + b).save_as_text_file(&out)?;
    if ctx.is_driver() {
        put(&mut r, "save_as_text_file", read_output(&out));
    }
    Ok(r)
}

/// Partitions partition_by makes in the suite: more than the input has, when it has one.
fn by_key_partitions(partitions: usize) -> usize {
    partitions.max(2)
}

/// The operators by key on inputs partitioned by key: `partition_by` itself (which
/// partition each record lands in), and the aggregations and joins that then run without
/// shuffling the partitioned side.
fn partitioned(
    ctx: &Context,
    r: &mut Results,
    pairs: &ember::Rdd<(u32, i64)>,
    other: &ember::Rdd<(u32, String)>,
    partitions: usize,
) -> Result<()> {
    let n = by_key_partitions(partitions);
    let p = Partitioner::hash(n);
    let exchanges_before = ctx.shuffle_stats().len();
    let by_key = pairs.partition_by(p.clone())?.cache();
    let placed = by_key
        .map_partitions_with_index(|i, it| it.map(move |(k, v)| (i, k, v)))
        .collect()?;
    put(r, "partition_by", sorted(placed));
    put(
        r,
        "partitioned_reduce_by_key",
        sorted(by_key.reduce_by_key(|a, b| a + b).collect()?),
    );
    let groups = by_key
        .group_by_key()
        .map_values(|g| sorted(g.into_vec()))
        .collect()?;
    put(r, "partitioned_group_by_key", sorted(groups));
    let avg = by_key.aggregate_by_key(
        (0i64, 0u64),
        |(s, c), v| (s + v, c + 1),
        |a, b| (a.0 + b.0, a.1 + b.1),
    );
    put(r, "partitioned_aggregate_by_key", sorted(avg.collect()?));
    let other_by_key = other.partition_by(p)?;
    put(
        r,
        "copartitioned_join",
        sorted(by_key.join(&other_by_key).collect()?),
    );
    put(
        r,
        "partitioned_left_outer_join",
        sorted(by_key.left_outer_join(other).collect()?),
    );
    let cg: Vec<CoGroup> = by_key
        .cogroup(other)
        .map_values(|(a, b)| (sorted(a), sorted(b)))
        .collect()?;
    put(r, "partitioned_cogroup", sorted(cg));
    // Sorted by key: range-partitioned, so reducing by key needs no shuffle either.
    let by_range = pairs.sort_by_key(true, Some(n))?;
    put(
        r,
        "range_partitioned_reduce_by_key",
        sorted(by_range.reduce_by_key(|a, b| a + b).collect()?),
    );
    if ctx.is_driver() {
        // Shuffles: `by_key`'s, `other_by_key`'s, `other` for the left outer join and for
        // the cogroup (each to `by_key`'s partitioner), the sort's; none for the rest.
        put(
            r,
            "partitioned_exchanges",
            ctx.shuffle_stats().len() - exchanges_before,
        );
    }
    Ok(())
}

/// Lines of every `part-*` file of `dir`, sorted, and whether `_SUCCESS` exists.
pub fn read_output(dir: &Path) -> (bool, Vec<String>) {
    let mut lines = Vec::new();
    let mut parts: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    parts.sort();
    for part in parts {
        if part
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        {
            let text = std::fs::read_to_string(&part).unwrap_or_default();
            lines.extend(text.lines().map(str::to_owned));
        }
    }
    (dir.join("_SUCCESS").exists(), sorted(lines))
}

/// The same results computed sequentially.
pub fn run_reference(input: &Input, partitions: usize) -> Results {
    let mut r = Results::new();
    let nums = &input.nums;
    let pairs = &input.pairs;
    put(
        &mut r,
        "map",
        nums.iter().map(|x| x * 3 + 1).collect::<Vec<_>>(),
    );
    put(
        &mut r,
        "filter",
        nums.iter()
            .copied()
            .filter(|x| x % 3 == 0)
            .collect::<Vec<_>>(),
    );
    put(
        &mut r,
        "flat_map",
        nums.iter()
            .flat_map(|&x| vec![x; x.rem_euclid(3) as usize])
            .collect::<Vec<_>>(),
    );
    put(
        &mut r,
        "map_partitions",
        (partitions, nums.iter().sum::<i64>()),
    );
    let mut union = nums.clone();
    union.extend(nums.iter().map(|x| -x));
    put(&mut r, "union", union);
    put(
        &mut r,
        "key_by",
        nums.iter()
            .map(|&x| (x.rem_euclid(7), x))
            .collect::<Vec<_>>(),
    );
    put(
        &mut r,
        "map_values",
        pairs.iter().map(|&(k, v)| (k, v * 2)).collect::<Vec<_>>(),
    );
    let mut distinct: Vec<i64> = nums.iter().map(|x| x.rem_euclid(50)).collect();
    distinct.sort();
    distinct.dedup();
    put(&mut r, "distinct", distinct);
    put(&mut r, "repartition", (3usize, sorted(nums.clone())));
    let coalesced = partitions.min(2);
    put(&mut r, "coalesce", (coalesced, coalesced, nums.clone()));

    let mut by_key: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for &(k, v) in pairs {
        by_key.entry(k).or_default().push(v);
    }
    let mut other_by_key: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (k, w) in &input.other {
        other_by_key.entry(*k).or_default().push(w.clone());
    }
    let sums: Vec<(u32, i64)> = by_key
        .iter()
        .map(|(&k, vs)| (k, vs.iter().sum::<i64>()))
        .collect();
    let averages: Vec<(u32, (i64, u64))> = by_key
        .iter()
        .map(|(&k, vs)| (k, (vs.iter().sum::<i64>(), vs.len() as u64)))
        .collect();
    let groups: Vec<(u32, Vec<i64>)> = by_key
        .iter()
        .map(|(&k, vs)| (k, sorted(vs.clone())))
        .collect();
    for name in [
        "reduce_by_key",
        "partitioned_reduce_by_key",
        "range_partitioned_reduce_by_key",
    ] {
        put(&mut r, name, &sums);
    }
    put(&mut r, "aggregate_by_key", &averages);
    put(&mut r, "partitioned_aggregate_by_key", &averages);
    put(&mut r, "group_by_key", &groups);
    put(&mut r, "partitioned_group_by_key", &groups);
    let mut join = Vec::new();
    let mut left = Vec::new();
    for &(k, v) in pairs {
        match other_by_key.get(&k) {
            Some(ws) => {
                for w in ws {
                    join.push((k, (v, w.clone())));
                    left.push((k, (v, Some(w.clone()))));
                }
            }
            None => left.push((k, (v, None))),
        }
    }
    put(&mut r, "copartitioned_join", sorted(join.clone()));
    put(&mut r, "join", sorted(join));
    put(&mut r, "partitioned_left_outer_join", sorted(left.clone()));
    put(&mut r, "left_outer_join", sorted(left));
    let mut keys: Vec<u32> = by_key.keys().chain(other_by_key.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    let cg: Vec<CoGroup> = keys
        .iter()
        .map(|k| {
            let a = sorted(by_key.get(k).cloned().unwrap_or_default());
            let b = sorted(other_by_key.get(k).cloned().unwrap_or_default());
            (*k, (a, b))
        })
        .collect();
    put(&mut r, "partitioned_cogroup", cg.clone());
    put(&mut r, "cogroup", cg);
    let n = by_key_partitions(partitions);
    let placed: Vec<(usize, u32, i64)> = pairs
        .iter()
        .map(|&(k, v)| (hash_partition(&k, n), k, v))
        .collect();
    put(&mut r, "partition_by", sorted(placed));
    put(&mut r, "partitioned_exchanges", 5usize);
    put(&mut r, "count", nums.len() as u64);
    put(&mut r, "reduce", nums.iter().copied().reduce(|a, b| a + b));
    put(&mut r, "fold", nums.iter().sum::<i64>());
    put(
        &mut r,
        "take",
        nums.iter().take(5).copied().collect::<Vec<_>>(),
    );
    put(&mut r, "first", nums.first().copied());
    let counts: HashMap<u32, u64> = by_key.iter().map(|(&k, vs)| (k, vs.len() as u64)).collect();
    put(
        &mut r,
        "count_by_key",
        sorted(counts.into_iter().collect::<Vec<_>>()),
    );
    put(
        &mut r,
        "broadcast",
        nums.iter().map(|x| x + 200).sum::<i64>(),
    );
    put(&mut r, "foreach_partition", nums.len());
    put(&mut r, "binary_records", nums.clone());
    put(&mut r, "text_file", nums.clone());
    let sums: Vec<(u32, i64)> = by_key
        .iter()
        .map(|(&k, vs)| (k, vs.iter().sum::<i64>()))
        .collect();
    put(&mut r, "reuse", (by_key.len() as u64, sums));
    let evens = nums.iter().filter(|x| *x % 2 == 0).count() as i64;
    put(
        &mut r,
        "accumulator",
        (evens, nums.iter().map(|x| x + evens).sum::<i64>()),
    );
    let saved: Vec<String> = by_key
        .iter()
        .map(|(k, vs)| format!("{k}\t{}", vs.iter().sum::<i64>()))
        .collect();
    put(&mut r, "save_as_text_file", (true, sorted(saved)));
    r
}
