//! WordCount combined by hand in `map_partitions` (a `HashMap` per partition, a word's key
//! allocated once per partition): what `jobs/wordcount.rs` was before the README's
//! `flat_map` → `reduce_by_key` form was made fast. The jobs benchmark times it beside that
//! form to show what the engine still loses to a hand-written combine.
//!
//!     wordcount-combined --input PATH --output DIR

use std::collections::HashMap;

use ember::{Context, Result};

fn run(ctx: &Context, input: &str, output: &str) -> Result<()> {
    let counts = ctx
        .text_file(input)?
        .map_partitions(|lines| {
            let mut counts: HashMap<String, u64> = HashMap::new();
            for line in lines {
                for word in line.split_whitespace() {
                    match counts.get_mut(word) {
                        Some(n) => *n += 1,
                        None => {
                            counts.insert(word.to_owned(), 1);
                        }
                    }
                }
            }
            counts
        })
        .reduce_by_key(|a, b| a + b);
    counts.save_as_text_file(output)?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        let i = args.iter().position(|a| a == name);
        i.and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| {
            eprintln!("usage: wordcount-combined --input PATH --output DIR");
            std::process::exit(2)
        })
    };
    let (input, output) = (arg("--input"), arg("--output"));
    let ctx = Context::init();
    let result = run(&ctx, &input, &output);
    ctx.finish(result);
}
