//! TeraSort: sorts 100-byte records by their 10-byte key into globally ordered parts.
//!
//!     terasort --input PATH --output DIR [--partitions N]
//!     mpirun -n 4 target/release/terasort --generate-records 10000000 --output /tmp/sorted

use clap::Parser;
use ember::config::EngineArgs;
use ember::io::records::Record;
use ember::{Context, Rdd, Result, SaveOptions};

#[derive(Parser)]
#[command(about = "Sort 100-byte records by their 10-byte key (FORMATS.md)")]
struct Args {
    /// Record file, directory or glob. Without it, records are generated on the executors.
    #[arg(long)]
    input: Option<String>,
    /// Output directory (part-NNNNN files in key order, and _SUCCESS). Without it, the
    /// driver prints a summary.
    #[arg(long)]
    output: Option<String>,
    /// Partitions of the sorted output (default: all executor threads). The input is read
    /// in splits of at most 32 MiB.
    #[arg(long)]
    partitions: Option<usize>,
    /// Records to generate when there is no --input.
    #[arg(long, default_value_t = 1_000_000)]
    generate_records: u64,
    /// Instead: about this many bytes of records (e.g. 1g), made on the executors.
    #[arg(long, conflicts_with = "input")]
    generate: Option<ember::config::ByteSize>,
    /// Seed of the generated records.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replace an existing output directory.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

fn run(ctx: &Context, args: &Args) -> Result<()> {
    let records: Rdd<Record> = match &args.input {
        Some(path) => ctx.pod_records(path, None)?,
        None => {
            let seed = args.seed;
            let records = args
                .generate
                .map_or(args.generate_records, |s| (s.0 / 100).max(1));
            let splits = ember::datagen::generated_partitions(ctx, records * 100);
            ctx.range(0, records, Some(splits))
                .map(move |i| Record::generate(seed, i))
        }
    };
    let partitions = args.partitions.or(Some(ctx.default_parallelism()));
    let sorted = records.sort_by(Record::key, true, partitions)?;
    match &args.output {
        Some(dir) => {
            sorted.save_as_binary(
                dir,
                SaveOptions {
                    overwrite: args.overwrite,
                },
            )?;
            if ctx.is_driver() {
                println!("sorted records written to {dir}");
            }
        }
        None => {
            let n = sorted.count()?;
            let first = sorted.first()?;
            if ctx.is_driver() {
                println!("{n} records sorted; first {first:?}");
            }
        }
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let ctx = Context::init_with(&args.engine);
    let result = run(&ctx, &args);
    ctx.finish(result);
}
