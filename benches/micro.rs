//! Micro-benchmarks of the hot pieces: the record codec, the partitioners and the map-side
//! combiner.   cargo bench --bench micro

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ember::codec;
use ember::config::EngineArgs;
use ember::datagen;

use ember::rdd::combine::{CombineMap, Merged};
use ember::rdd::partitioned_combine::{MapSideHints, map_side_combine};
use ember::rdd::reduce_combine::{ReduceHints, merge_combiners};
use ember::shuffle::partitioner::hash_partition;
use ember::shuffle::range::{boundaries, range_partition};
use std::hint::black_box;

fn words(n: u64) -> Vec<(String, u64)> {
    (0..n)
        .flat_map(|i| {
            datagen::text_line(1, i)
                .split(' ')
                .map(|w| (w.to_string(), 1u64))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Encodes and decodes `records` with ember's codec (the raw layout) and, for
/// comparison, with postcard (the codec before it: varints).
fn codec_pair<T>(c: &mut Criterion, name: &str, records: &[T])
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let mut encoded = Vec::new();
    for r in records {
        codec::encode_into(&mut encoded, r);
    }
    let mut old = Vec::new();
    for r in records {
        old = postcard::to_extend(r, old).unwrap();
    }
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function(format!("encode {name}"), |b| {
        b.iter(|| {
            let mut buf = Vec::with_capacity(encoded.len());
            for r in records {
                codec::encode_into(&mut buf, r);
            }
            black_box(buf)
        })
    });
    g.bench_function(format!("encode {name}, postcard"), |b| {
        b.iter(|| {
            let mut buf = Vec::with_capacity(old.len());
            for r in records {
                buf = postcard::to_extend(r, buf).unwrap();
            }
            black_box(buf)
        })
    });
    g.bench_function(format!("decode {name}"), |b| {
        b.iter(|| {
            let mut out: Vec<T> = Vec::with_capacity(records.len());
            codec::decode_all_into(&encoded, &mut out).unwrap();
            black_box(out)
        })
    });
    g.bench_function(format!("decode {name}, postcard"), |b| {
        b.iter(|| {
            let mut out: Vec<T> = Vec::with_capacity(records.len());
            let mut rest = &old[..];
            while !rest.is_empty() {
                let (r, more) = postcard::take_from_bytes::<T>(rest).unwrap();
                out.push(r);
                rest = more;
            }
            black_box(out)
        })
    });
    g.finish();
}

fn codec_bench(c: &mut Criterion) {
    let words = words(400);
    codec_pair(c, "(String, u64)", &words);
    let strs: Vec<(ember::Str, u64)> = words.iter().map(|(w, n)| (w.as_str().into(), *n)).collect();
    codec_pair(c, "(Str, u64)", &strs);
    let small: Vec<(u32, (u32, f32))> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761), (i % 1000, i as f32 * 0.5)))
        .collect();
    codec_pair(c, "(u32, (u32, f32))", &small);
    let links: Vec<(u64, Vec<u64>)> = (0..512u64)
        .map(|i| (i * 7919, (0..8).map(|j| (i * 31 + j) % 100_000).collect()))
        .collect();
    codec_pair(c, "(u64, Vec<u64>)", &links);
}

fn partitioner_bench(c: &mut Criterion) {
    let keys: Vec<u64> = (0..4096u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let names: Vec<String> = words(320).into_iter().map(|(w, _)| w).collect();
    let bounds = boundaries(vec![(keys.clone(), keys.len() as u64)], 64);
    let mut g = c.benchmark_group("partitioner");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("hash u64 into 64", |b| {
        b.iter(|| keys.iter().map(|k| hash_partition(k, 64)).sum::<usize>())
    });
    g.bench_function("hash String into 64", |b| {
        b.iter(|| {
            names
                .iter()
                .take(4096)
                .map(|k| hash_partition(k, 64))
                .sum::<usize>()
        })
    });
    g.bench_function("range u64 into 64", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| range_partition(&bounds, k, true))
                .sum::<usize>()
        })
    });
    g.finish();
}

fn combiner_bench(c: &mut Criterion) {
    let ctx = ember::Context::local_with(&EngineArgs::default());
    let records = words(20_000);
    let n = records.len() as u64;
    let rdd = ctx.parallelize(records, Some(2));
    let mut g = c.benchmark_group("combiner");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("reduce_by_key of 260k Zipf words (local mode job)", |b| {
        b.iter_batched(
            || rdd.clone(),
            |r| black_box(r.reduce_by_key(|a, b| a + b).count().unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // The map side's table alone: 4M Zipf words (100k distinct, a table past the L2
    // cache) merged one at a time, and in prefetched batches as the combine does.
    let words: Vec<(ember::Str, u64)> = (0..250_000)
        .flat_map(|i| ember::words(datagen::text_line(1, i)).map(|w| (w, 1u64)))
        .collect();
    let mut g = c.benchmark_group("combine table");
    g.throughput(Throughput::Elements(words.len() as u64));
    g.sample_size(10);
    let (create, add) = (|v: u64| v, |c: u64, v: u64| c + v);
    g.bench_function("one record at a time", |b| {
        b.iter_batched(
            || words.clone(),
            |w| {
                let mut map = CombineMap::<ember::Str, u64>::new();
                for (k, v) in w {
                    map.merge(k, v, &create, &add);
                }
                black_box(map.acc.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("prefetched batches", |b| {
        b.iter_batched(
            || words.clone(),
            |w| {
                let mut map = CombineMap::<ember::Str, u64>::new();
                let mut records = w.into_iter();
                while map.merge_some(&mut records, &create, &add) == Merged::More {}
                black_box(map.acc.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // The reduce side of an aggregation: 4M PageRank-like contributions `(u64, f64)` over
    // 500k keys (past the cache: split into sub-parts). A partition's first task buffers
    // its records to count them, then splits them; once a task has noted the size, the
    // next ones split the records as they read them.
    let contributions: Vec<(u64, f64)> = (0..4_000_000u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 500_000, i as f64))
        .collect();
    let mut g = c.benchmark_group("reduce side");
    g.throughput(Throughput::Elements(contributions.len() as u64));
    g.sample_size(10);
    let merge: ember::rdd::spill_combine::MergeCombiners<f64> = std::sync::Arc::new(|a, b| a + b);
    let sized = std::sync::Arc::new(ReduceHints::default());
    sized.records.note(contributions.len());
    for (name, hints) in [
        ("first task: buffer, then split", None),
        ("split as read", Some(&sized)),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || contributions.clone(),
                |records| {
                    let fresh = std::sync::Arc::default();
                    let hints = hints.unwrap_or(&fresh);
                    let mut records = records.into_iter();
                    let merged = merge_combiners(&mut records, hints, merge.clone()).unwrap();
                    black_box(merged.map(|b| b.unwrap().len()).sum::<usize>())
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();

    // The map side of an aggregation whose keys do not repeat (PageRank's contributions):
    // after its probe, a task passes 4M records on, each through the table of recent keys.
    let distinct: Vec<(u64, f64)> = (0..4_000_000u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i as f64))
        .collect();
    let mut g = c.benchmark_group("map side");
    g.throughput(Throughput::Elements(distinct.len() as u64));
    g.sample_size(10);
    let hints = std::sync::Arc::new(MapSideHints::default());
    let place: ember::shuffle::partitioner::KeyPartition<u64> =
        std::sync::Arc::new(|k: &u64| hash_partition(k, 8));
    g.bench_function("records passing on", |b| {
        b.iter_batched(
            || distinct.clone(),
            |records| {
                let out = map_side_combine(
                    records.into_iter(),
                    8,
                    place.clone(),
                    hints.clone(),
                    |v| v,
                    |c, v| c + v,
                );
                black_box(out.count())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, codec_bench, partitioner_bench, combiner_bench);
criterion_main!(benches);
