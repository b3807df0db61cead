//! PageRank with the semantics of Spark's example: links = distinct (src, dst) pairs grouped
//! by src and cached; ranks start at 1.0 per src; each iteration sends rank / out-degree
//! along every link, sums by dst and sets rank = 0.15 + 0.85 × sum.
//!
//! As in Spark's example, the links are shuffled once for the whole job: distinct places
//! the edges by src for the grouping right after it (no shuffle of its own), and the cached
//! links keep that hash partitioner; the ranks, reduced by key into the same partitioner,
//! are co-partitioned with them, so each iteration's join reads both sides in place and
//! only the contributions cross the network.
//!
//!     pagerank --input EDGES --output DIR --iterations N [--explain]

use clap::Parser;
use ember::config::EngineArgs;
use ember::io::edges::parse_edge;
use ember::{Context, Error, Group, Rdd, Result, SaveOptions, StorageLevel};

#[derive(Parser)]
#[command(about = "PageRank over a SNAP edge list; writes vertex<TAB>rank lines")]
struct Args {
    /// Edge list: `src dst` per line (any white space), `#` comments.
    #[arg(long, required_unless_present = "generate")]
    input: Option<String>,
    /// Instead of --input: a generated graph of about this many bytes of edge list
    /// (e.g. 256m), made on the executors.
    #[arg(long, conflicts_with = "input")]
    generate: Option<ember::config::ByteSize>,
    /// Seed of the generated graph.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory. Without it, the driver prints the top ranks.
    #[arg(long)]
    output: Option<String>,
    /// Iterations of the rank update.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Partitions of the links and ranks (default: the input's splits: one per executor
    /// thread, more for a large input, none over 32 MiB).
    #[arg(long)]
    partitions: Option<usize>,
    /// Replace an existing output directory.
    #[arg(long)]
    overwrite: bool,
    /// Checkpoint the ranks into DIR/iter-N every --checkpoint-every iterations; a job
    /// started again with the same DIR resumes from the last complete checkpoint.
    #[arg(long)]
    checkpoint: Option<String>,
    /// Iterations between two checkpoints.
    #[arg(long, default_value_t = 2)]
    checkpoint_every: usize,
    /// Print the final ranks' lineage with its stages (on the driver) before running.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

fn run(ctx: &Context, args: &Args) -> Result<()> {
    if args.iterations == 0 {
        return Err(Error::Other("--iterations must be at least 1".into()));
    }
    let edges: Rdd<(u64, u64)> = match (&args.input, args.generate) {
        (Some(input), _) => {
            let options = ember::TextOptions {
                partitions: args.partitions,
                ..Default::default()
            };
            // A malformed line fails the job naming its file and line.
            ctx.text_file_parsed(input, options, parse_edge)?
        }
        (None, Some(size)) => {
            use ember::datagen;
            let (seed, n) = (
                args.seed,
                datagen::Kind::Graph.records_for(size.0, args.seed),
            );
            let parts = args
                .partitions
                .unwrap_or_else(|| datagen::generated_partitions(ctx, size.0));
            ctx.range(0, n, Some(parts))
                .map(move |i| datagen::graph_edge(seed, i, n))
        }
        (None, None) => return Err(Error::Other("give --input or --generate".into())),
    };
    // One shuffle: distinct places the edges by src, so the grouping right after it runs
    // where they are; hash-partitioned by src, cached with that partitioner.
    let links: Rdd<(u64, Group<u64>)> = edges
        .distinct()
        .group_by_key()
        .persist(StorageLevel::Memory);
    // map_values keeps the partitioner: the ranks start co-partitioned with the links.
    let mut ranks: Rdd<(u64, f64)> = links.map_values(|_| 1.0);
    for i in 1..=args.iterations {
        // Both sides have the links' partitioner: the join shuffles neither.
        let contributions = links.join(&ranks).flat_map(|(_, (dsts, rank))| {
            let share = rank / dsts.len() as f64;
            dsts.into_iter().map(move |d| (d, share))
        });
        // Reduced by hash into as many partitions as the links: their partitioner, so the
        // next join needs no shuffle either.
        ranks = contributions
            .reduce_by_key(|a, b| a + b)
            .map_values(|sum| 0.15 + 0.85 * sum);
        if let Some(dir) = &args.checkpoint
            && i % args.checkpoint_every.max(1) == 0
        {
            ranks = ranks.checkpoint(std::path::Path::new(dir).join(format!("iter-{i}")))?;
        }
    }
    if args.explain && ctx.is_driver() {
        print!("{}", ranks.explain());
    }
    match &args.output {
        Some(dir) => {
            let options = SaveOptions {
                overwrite: args.overwrite,
            };
            ranks.save_as_text_file_with_options(dir, options)?;
        }
        None => {
            // Only the driver prints: the executors need no copy.
            if let Some(mut all) = ranks.collect_to_driver()? {
                all.sort_by(|a, b| b.1.total_cmp(&a.1));
                for (v, r) in all.iter().take(10) {
                    println!("{v}\t{r:.6}");
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
