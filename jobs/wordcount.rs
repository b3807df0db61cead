//! WordCount: counts the white-space separated words of a text input (or of generated text).
//!
//!     wordcount --input PATH --output DIR [--partitions N]
//!     mpirun -n 4 target/release/wordcount --generate-lines 1000000

use clap::Parser;
use ember::config::EngineArgs;
use ember::datagen;
use ember::{Context, Rdd, Result, Str, TextOptions, words};

#[derive(Parser)]
#[command(about = "Count words: writes word<TAB>count lines and _SUCCESS")]
struct Args {
    /// Text file, directory or glob. Without it, a generated Zipf corpus is counted.
    #[arg(long)]
    input: Option<String>,
    /// Output directory (part-NNNNN files and _SUCCESS). Without it, the driver prints
    /// the most frequent words.
    #[arg(long)]
    output: Option<String>,
    /// Partitions of the input and of the counts (default: splits of 32-128 MiB, four
    /// per executor thread where the input has them).
    #[arg(long)]
    partitions: Option<usize>,
    /// Lines of generated text when there is no --input.
    #[arg(long, default_value_t = 200_000)]
    generate_lines: u64,
    /// Instead: about this many bytes of generated text (e.g. 1g), made on the executors.
    #[arg(long, conflicts_with = "input")]
    generate: Option<ember::config::ByteSize>,
    /// Seed of the generated text.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip lines that are not UTF-8 instead of failing.
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

/// The WordCount lineage, written as the README teaches: split lines on Unicode white
/// space, pair each word with 1, add up by key (combined per partition before the shuffle).
/// A word is a [`Str`]: up to 24 bytes inline, so counting allocates nothing per word.
pub fn word_counts(lines: &Rdd<String>) -> Rdd<(Str, u64)> {
    lines
        .flat_map(|line| words(line).map(|w| (w, 1u64)))
        .reduce_by_key(|a, b| a + b)
}

fn run(ctx: &Context, args: &Args) -> Result<()> {
    let lines = match &args.input {
        Some(path) => ctx.text_file_with(
            path,
            TextOptions {
                partitions: args.partitions,
                skip_bad_lines: args.skip_bad_lines,
            },
        )?,
        None => match args.generate {
            Some(size) => {
                let lines = datagen::Kind::Text.records_for(size.0, args.seed);
                let parts = args
                    .partitions
                    .unwrap_or_else(|| datagen::generated_partitions(ctx, size.0));
                datagen::text_lines(ctx, lines, args.seed, Some(parts))
            }
            None => datagen::text_lines(ctx, args.generate_lines, args.seed, args.partitions),
        },
    };
    let counts = word_counts(&lines);
    if args.explain && ctx.is_driver() {
        print!("{}", counts.explain());
    }
    match &args.output {
        Some(dir) => {
            let options = ember::SaveOptions {
                overwrite: args.overwrite,
            };
            counts.save_as_text_file_with_options(dir, options)?;
            if ctx.is_driver() {
                println!("wrote word counts to {dir}");
            }
        }
        None => {
            // Only the driver prints: the executors need no copy.
            if let Some(mut all) = counts.collect_to_driver()? {
                all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let total: u64 = all.iter().map(|(_, n)| n).sum();
                println!("{total} words, {} distinct; most frequent:", all.len());
                for (word, n) in all.iter().take(10) {
                    println!("{n:>10}  {word}");
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
