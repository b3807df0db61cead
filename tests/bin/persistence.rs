//! Caching scenarios as a job: prints `name = value` lines on the driver for
//! tests/persistence.rs (counts of source partitions computed, cache hits, results).

use clap::Parser;
use ember::config::EngineArgs;
use ember::{Context, StorageLevel};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "memory")]
    level: String,
    #[arg(long, default_value_t = 200_000)]
    n: u64,
    #[arg(long, default_value_t = 6)]
    partitions: usize,
    /// `decommission`: three shuffle jobs on a cached RDD whose tasks append
    /// `action stage partition` lines to `--marks/r<rank>`, for the test to see which
    /// executor ran what (run with `EMBER_TEST_DECOMMISSION`).
    #[arg(long)]
    scenario: Option<String>,
    #[arg(long)]
    marks: Option<std::path::PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

fn main() {
    let args = Args::parse();
    let ctx = Context::init_with(&args.engine);
    let result = match args.scenario.as_deref() {
        Some("decommission") => decommission(&ctx, &args),
        Some(other) => Err(ember::Error::Other(format!("unknown scenario {other}"))),
        None => run(&ctx, &args),
    };
    ctx.finish(result);
}

fn run(ctx: &Context, args: &Args) -> ember::Result<()> {
    let level = match args.level.as_str() {
        "mmap" => StorageLevel::Mmap,
        "memory-and-mmap" => StorageLevel::MemoryAndMmap,
        _ => StorageLevel::Memory,
    };
    let data = ctx
        .range(0, args.n, Some(args.partitions))
        .map(|i| (i % 97, i * 3))
        .persist(level);
    let say = |name: &str, value: String| {
        if ctx.is_driver() {
            println!("{name} = {value}");
        }
    };
    let sum = |r: &ember::Rdd<(u64, u64)>| r.map(|(k, v)| k + v).fold(0, |a, b| a + b);

    let before = ctx.metrics();
    let first = sum(&data)?;
    let after_first = ctx.metrics();
    let second = sum(&data)?;
    let after_second = ctx.metrics();
    say("first", first.to_string());
    say("second", second.to_string());
    say(
        "first_sources",
        (after_first.source_partitions - before.source_partitions).to_string(),
    );
    say(
        "second_sources",
        (after_second.source_partitions - after_first.source_partitions).to_string(),
    );
    say(
        "second_hits",
        (after_second.cache_hits - after_first.cache_hits).to_string(),
    );

    // Cache files deleted behind the engine's back: recomputed from lineage.
    if let Some(dir) = ctx.executor_dir() {
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| ember::Error::io(&dir, e))?
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with("block-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let third = sum(&data)?;
    let after_third = ctx.metrics();
    say("third", third.to_string());
    say(
        "third_sources",
        (after_third.source_partitions - after_second.source_partitions).to_string(),
    );

    // Unpersisted: computed again (and cached again).
    data.unpersist();
    let fourth = sum(&data)?;
    let after_fourth = ctx.metrics();
    say("fourth", fourth.to_string());
    say(
        "fourth_sources",
        (after_fourth.source_partitions - after_third.source_partitions).to_string(),
    );
    say(
        "cache_memory_peak",
        after_fourth.cache_memory_peak.to_string(),
    );
    Ok(())
}

/// Appends `line` to `dir/r<rank>`, the rank of the process running the task (read from
/// the environment the launcher gives each rank, independently of ember's own ids).
fn mark(dir: &std::path::Path, line: String) {
    use std::io::Write;
    let rank = ember::launcher::launcher_rank().map_or(0, |(rank, _)| rank);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("r{rank}")))
        .expect("open marks");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("write mark");
}

fn decommission(ctx: &Context, args: &Args) -> ember::Result<()> {
    let marks = args.marks.clone().expect("--marks");
    let data = ctx
        .range(0, args.n, Some(args.partitions))
        .map(|i| (i % 97, i * 3))
        .persist(StorageLevel::Memory);
    for action in 0..3 {
        let (m1, m2) = (marks.clone(), marks.clone());
        let before = ctx.metrics();
        let mut sums = data
            .map_partitions_with_index(move |i, it| {
                mark(&m1, format!("{action} map {i}"));
                it.collect::<Vec<_>>()
            })
            .reduce_by_key(|a, b| a + b)
            .map_partitions_with_index(move |i, it| {
                mark(&m2, format!("{action} reduce {i}"));
                it.collect::<Vec<_>>()
            })
            .collect()?;
        sums.sort();
        let after = ctx.metrics();
        if ctx.is_driver() {
            println!("sums{action} = {sums:?}");
            println!(
                "sources{action} = {}",
                after.source_partitions - before.source_partitions
            );
        }
    }
    Ok(())
}
