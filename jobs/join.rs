//! Join: the inner join of a fact file with a dimension file on key, both `key,value`
//! lines (the dimension holds each key at most once); writes `key<TAB>fact<TAB>dim` lines.
//!
//!     join --fact PATH --dim PATH --output DIR [--partitions N]
//!     mpirun -n 4 target/release/join --generate 1g --keys zipf --output joined
//!
//! The facts' keys may be skewed: `skew_join` samples them first and splits each hot key
//! over several reduce partitions, copying its dimension row to each, so no task receives
//! all the rows of one key (`--plain-join` turns this off).

use clap::Parser;
use ember::config::{ByteSize, EngineArgs};
use ember::datagen::{self, KeySampler};
use ember::io::key_value::parse_key_value;
use ember::rdd::join::SkewJoinOptions;
use ember::{Context, Rdd, Result, SaveOptions, TextOptions};

#[derive(Parser)]
#[command(
    about = "Inner join of a fact and a dimension file of key,value lines; writes key<TAB>fact<TAB>dim lines"
)]
struct Args {
    /// Fact file, directory or glob: `key,value` lines of integers.
    #[arg(long, required_unless_present = "generate", requires = "dim")]
    fact: Option<String>,
    /// Dimension file, directory or glob: `key,value` lines, each key at most once.
    #[arg(long, requires = "fact")]
    dim: Option<String>,
    /// Instead of --fact and --dim: about this many bytes of generated facts (e.g. 1g; the
    /// lines `ember datagen kv` or `kv-zipf` writes) and a dimension holding every key of
    /// their range once (`ember datagen kv-dim --records N/10` for N facts), made on the
    /// executors.
    #[arg(long, conflicts_with_all = ["fact", "dim"])]
    generate: Option<ByteSize>,
    #[command(flatten)]
    keys: datagen::KeyArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (part-NNNNN files and _SUCCESS). Without it, the driver prints
    /// the number of joined rows and a few of them.
    #[arg(long)]
    output: Option<String>,
    /// Partitions of the inputs and of the join (default: splits of 32-128 MiB, four per
    /// executor thread where the input has them).
    #[arg(long)]
    partitions: Option<usize>,
    /// Join by cogroup, without sampling the facts or splitting hot keys.
    #[arg(long)]
    plain_join: bool,
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

type Pairs = Rdd<(i64, i64)>;

/// The fact and dimension sides, read or generated.
fn inputs(ctx: &Context, args: &Args) -> Result<(Pairs, Pairs)> {
    if let (Some(fact), Some(dim)) = (&args.fact, &args.dim) {
        let options = TextOptions {
            partitions: args.partitions,
            skip_bad_lines: args.skip_bad_lines,
        };
        return Ok((
            ctx.text_file_parsed(fact, options.clone(), parse_key_value)?,
            ctx.text_file_parsed(dim, options, parse_key_value)?,
        ));
    }
    let size = args
        .generate
        .expect("clap requires --fact and --dim or --generate");
    let (kind, dist) = args.keys.kind_and_dist();
    let n = kind.records_for(size.0, args.seed);
    let (seed, keys) = (args.seed, datagen::kv_keys(n));
    let sampler = KeySampler::new(keys, dist);
    let parts = args
        .partitions
        .unwrap_or_else(|| datagen::generated_partitions(ctx, size.0));
    let facts = ctx.range(0, n, Some(parts)).map(move |i| {
        let (k, v) = datagen::kv_with(seed, i, &sampler);
        (k as i64, v)
    });
    let dim = ctx.range(0, keys, Some(parts)).map(move |k| {
        let (k, v) = datagen::dim_row(seed, k);
        (k as i64, v)
    });
    Ok((facts, dim))
}

fn run(ctx: &Context, args: &Args) -> Result<()> {
    let (facts, dim) = inputs(ctx, args)?;
    let joined: Rdd<(i64, (i64, i64))> = if args.plain_join {
        facts.join(&dim)
    } else {
        let options = SkewJoinOptions {
            partitions: args.partitions,
            ..Default::default()
        };
        facts.skew_join(&dim, options)?
    };
    if args.explain && ctx.is_driver() {
        print!("{}", joined.explain());
    }
    match &args.output {
        Some(dir) => {
            let options = SaveOptions {
                overwrite: args.overwrite,
            };
            joined.save_as_text_file_with_options(dir, options)?;
            if ctx.is_driver() {
                println!("wrote the join to {dir}");
            }
        }
        None => {
            let rows = joined.count()?;
            let some = joined.take(5)?;
            if ctx.is_driver() {
                println!("{rows} joined rows, e.g.:");
                for (k, (f, d)) in some {
                    println!("{k}\t{f}\t{d}");
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
