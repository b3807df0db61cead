//! The operator suite as a job: runs every operator under whatever launcher started it and
//! prints `name = result` lines on the driver (compared by tests/operators.rs).
//! `--fail panic-once|panic-always` makes one task panic, to test retries.

#[path = "../common/suite.rs"]
mod suite;

use std::path::PathBuf;

use clap::Parser;
use ember::Context;
use ember::config::EngineArgs;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 500)]
    n: usize,
    #[arg(long, default_value_t = 4)]
    partitions: usize,
    /// Directory every rank can write and read.
    #[arg(long)]
    scratch: PathBuf,
    /// Inject a panic into task 1 of a count job: once (then the retry succeeds) or always;
    /// or `lineage`: the driver builds a different lineage than the executors.
    #[arg(long)]
    fail: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
}

fn main() {
    let args = Args::parse();
    let ctx = Context::init_with(&args.engine);
    let result = match args.fail.as_deref() {
        Some(mode) => inject(&ctx, &args, mode),
        None => suite::run_ember(
            &ctx,
            &suite::Input::generate(args.seed, args.n),
            args.partitions,
            &args.scratch,
        )
        .map(|results| {
            if ctx.is_driver() {
                for (name, value) in results {
                    println!("{name} = {value}");
                }
            }
        }),
    };
    ctx.finish(result);
}

fn inject(ctx: &Context, args: &Args, mode: &str) -> ember::Result<()> {
    if mode == "lineage" {
        // Non-deterministic driver code: the driver builds another lineage than executors.
        let parts = if ctx.is_driver() { 2 } else { 3 };
        let n = ctx.range(0, 10, Some(parts)).count()?;
        println!("count = {n}");
        return Ok(());
    }
    let marker = args.scratch.join("failed-once");
    let always = mode == "panic-always";
    let n = ctx
        .range(0, 100, Some(4))
        .map_partitions_with_index(move |i, it| {
            if i == 1 && (always || std::fs::create_dir(&marker).is_ok()) {
                panic!("injected task failure in partition {i}");
            }
            it.collect::<Vec<_>>()
        })
        .count()?;
    if ctx.is_driver() {
        println!("count = {n}");
    }
    Ok(())
}
