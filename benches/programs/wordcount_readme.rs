//! WordCount exactly as the README teaches it (`text_file → flat_map → reduce_by_key`), for
//! the jobs benchmark to time against `jobs/wordcount.rs` and the hand-written baseline.
//!
//!     wordcount-readme --input PATH --output DIR

use ember::{Context, Result, words};

fn run(ctx: &Context, input: &str, output: &str) -> Result<()> {
    let counts = ctx
        .text_file(input)?
        .flat_map(|line| words(line).map(|w| (w, 1u64)))
        .reduce_by_key(|a, b| a + b);
    counts.save_as_text_file(output)?; // part-NNNNN files, then _SUCCESS
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        let i = args.iter().position(|a| a == name);
        i.and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| {
            eprintln!("usage: wordcount-readme --input PATH --output DIR");
            std::process::exit(2)
        })
    };
    let (input, output) = (arg("--input"), arg("--output"));
    let ctx = Context::init();
    let result = run(&ctx, &input, &output);
    ctx.finish(result);
}
