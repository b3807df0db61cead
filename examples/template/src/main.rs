//! A job of your own on ember, to copy: counts the lines of a text input by their first
//! word and writes `word<TAB>lines`.
//!
//!     cargo build --release
//!     target/release/firstwords --input book.txt --output out           # one process
//!     mpirun -n 3 --bind-to none target/release/firstwords --input book.txt --output out
//!     ember submit --master slurm --num-executors 3 "$PWD/target/release/firstwords" \
//!         --input book.txt --output out

use clap::Parser;
use ember::config::EngineArgs;
use ember::{Context, Rdd, Result};

#[derive(Parser)]
#[command(about = "Count the lines of a text input by their first word: writes word<TAB>lines")]
struct Args {
    /// Text file, directory or glob.
    #[arg(long)]
    input: String,
    /// Output directory (part-NNNNN files, then _SUCCESS); must not exist yet.
    #[arg(long)]
    output: String,
    /// Leave out words that start fewer lines than this.
    #[arg(long, default_value_t = 1)]
    min_lines: u64,
    // The engine options every ember job takes (--executor-cores, --executor-memory,
    // --local-dir, ...), also as EMBER_* environment variables.
    #[command(flatten)]
    engine: EngineArgs,
}

/// The lineage: a `(first word, 1)` pair per line that is not blank, summed per word on
/// the executors (partial sums per partition first, then across them by a shuffle).
fn lines_by_first_word(lines: &Rdd<String>, min_lines: u64) -> Rdd<(String, u64)> {
    lines
        .flat_map(|line| {
            line.split_whitespace()
                .next()
                .map(|word| (word.to_owned(), 1u64))
        })
        .reduce_by_key(|a, b| a + b)
        .filter(move |(_, lines)| *lines >= min_lines)
}

fn run(ctx: &Context, args: &Args) -> Result<()> {
    let counts = lines_by_first_word(&ctx.text_file(&args.input)?, args.min_lines);
    counts.save_as_text_file(&args.output)?;
    if ctx.is_driver() {
        println!("wrote line counts by first word to {}", args.output);
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    // Every rank runs this main(): rank 0 becomes the driver, the others executors; a
    // single process (no mpirun) is local mode with an in-process executor.
    let ctx = Context::init_with(&args.engine);
    let result = run(&ctx, &args);
    // A clean stop, or the driver's error and a non-zero exit on every rank.
    ctx.finish(result);
}
