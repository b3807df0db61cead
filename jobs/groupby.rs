//! Group-by: sums the values of each key of `key,value` lines (or of generated ones).
//!
//!     groupby --input PATH --output DIR [--partitions N]
//!     mpirun -n 4 target/release/groupby --generate 1g --keys zipf --output sums
//!
//! `reduce_by_key` combines each map partition before the shuffle, so a key sends at most
//! one partial sum per map partition: a key holding most of the rows costs no more memory
//! on the reduce side than any other.

use clap::Parser;
use ember::config::{ByteSize, EngineArgs};
use ember::datagen::{self, KeySampler};
use ember::io::key_value::parse_key_value;
use ember::{Context, Rdd, Result, SaveOptions, TextOptions};

#[derive(Parser)]
#[command(about = "Sum the values of each key of key,value lines; writes key<TAB>sum lines")]
struct Args {
    /// Key-value file, directory or glob: `key,value` lines of integers.
    #[arg(long, required_unless_present = "generate")]
    input: Option<String>,
    /// Instead of --input: about this many bytes of generated key-value lines (e.g. 1g),
    /// made on the executors (the lines `ember datagen kv` or `kv-zipf` writes).
    #[arg(long, conflicts_with = "input")]
    generate: Option<ByteSize>,
    #[command(flatten)]
    keys: datagen::KeyArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (part-NNNNN files and _SUCCESS). Without it, the driver prints
    /// the number of keys and the largest sums.
    #[arg(long)]
    output: Option<String>,
    /// Partitions of the input and of the sums (default: splits of 32-128 MiB, four per
    /// executor thread where the input has them).
    #[arg(long)]
    partitions: Option<usize>,
    /// Skip malformed lines (counted in the log) instead of failing.
    #[arg(long)]
    skip_bad_lines: bool,
    /// Replace an existing output directory.
    #[arg(long)]
    overwrite: bool,
    /// Print the lineage and its stages before running.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

/// The group-by lineage: the sum of each key's values (in i128, which no sum of i64
/// values can overflow).
pub fn sums_by_key(pairs: &Rdd<(i64, i64)>) -> Rdd<(i64, i128)> {
    pairs.map_values(i128::from).reduce_by_key(|a, b| a + b)
}

fn run(ctx: &Context, args: &Args) -> Result<()> {
    let pairs: Rdd<(i64, i64)> = match (&args.input, args.generate) {
        (Some(input), _) => {
            let options = TextOptions {
                partitions: args.partitions,
                skip_bad_lines: args.skip_bad_lines,
            };
            ctx.text_file_parsed(input, options, parse_key_value)?
        }
        (None, Some(size)) => {
            let (kind, dist) = args.keys.kind_and_dist();
            let n = kind.records_for(size.0, args.seed);
            let (seed, keys) = (args.seed, KeySampler::new(datagen::kv_keys(n), dist));
            let parts = args
                .partitions
                .unwrap_or_else(|| datagen::generated_partitions(ctx, size.0));
            ctx.range(0, n, Some(parts)).map(move |i| {
                let (k, v) = datagen::kv_with(seed, i, &keys);
                (k as i64, v)
            })
        }
        (None, None) => unreachable!("clap requires --input or --generate"),
    };
    let sums = sums_by_key(&pairs);
    if args.explain && ctx.is_driver() {
        print!("{}", sums.explain());
    }
    match &args.output {
        Some(dir) => {
            let options = SaveOptions {
                overwrite: args.overwrite,
            };
            sums.save_as_text_file_with_options(dir, options)?;
            if ctx.is_driver() {
                println!("wrote sums by key to {dir}");
            }
        }
        None => {
            // Only the driver prints: the executors need no copy.
            if let Some(mut all) = sums.collect_to_driver()? {
                all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                println!("{} keys; largest sums:", all.len());
                for (k, sum) in all.iter().take(10) {
                    println!("{k:>20}  {sum}");
                }
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
