//! KMeans (Lloyd's algorithm): initial centres are the first K points in file order, the
//! points are cached, the centres are broadcast each iteration; fixed iteration count.
//!
//!     kmeans --input POINTS --output DIR --k K --iterations N

use clap::Parser;
use ember::config::EngineArgs;
use ember::io::points::{parse_point, parse_point_of};
use ember::{Context, Error, Rdd, Result, SaveOptions, StorageLevel};

#[derive(Parser)]
#[command(about = "KMeans over points (D floats a line); writes the K centres")]
struct Args {
    /// Points file, directory or glob.
    #[arg(long, required_unless_present = "generate")]
    input: Option<String>,
    /// Instead of --input: about this many bytes of generated points (e.g. 256m), made on
    /// the executors.
    #[arg(long, conflicts_with = "input")]
    generate: Option<ember::config::ByteSize>,
    /// Seed of the generated points.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (one centre a line). Without it, the driver prints the centres.
    #[arg(long)]
    output: Option<String>,
    /// Number of centres, started from the first K points.
    #[arg(long)]
    k: usize,
    /// Rounds of Lloyd's algorithm.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Partitions of the points (default: all executor threads).
    #[arg(long)]
    partitions: Option<usize>,
    /// Replace an existing output directory.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

fn closest(centres: &[Vec<f64>], p: &[f64]) -> usize {
    let dist = |c: &Vec<f64>| c.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
    let mut best = (0, f64::INFINITY);
    for (i, c) in centres.iter().enumerate() {
        let d = dist(c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best.0
}

fn run(ctx: &Context, args: &Args) -> Result<()> {
    if args.k == 0 {
        return Err(Error::Other("--k must be at least 1".into()));
    }
    let points: Rdd<Vec<f64>> = match (&args.input, args.generate) {
        (Some(input), _) => {
            let options = ember::TextOptions {
                partitions: args.partitions,
                ..Default::default()
            };
            // Every point must have the first one's coordinates: that one is read first
            // (a batch of the first split). A malformed line, or a point of another
            // dimension, fails the job naming its file and line.
            match ctx
                .text_file_parsed(input, options.clone(), parse_point)?
                .first()?
            {
                Some(first) => ctx.text_file_parsed(input, options, parse_point_of(first.len()))?,
                None => return Err(Error::Other(format!("{input}: no points"))),
            }
        }
        (None, Some(size)) => {
            use ember::datagen;
            let (seed, n) = (
                args.seed,
                datagen::Kind::Points.records_for(size.0, args.seed),
            );
            let parts = args
                .partitions
                .unwrap_or_else(|| datagen::generated_partitions(ctx, size.0));
            ctx.range(0, n, Some(parts))
                .map(move |i| datagen::point(seed, i).to_vec())
        }
        (None, None) => return Err(Error::Other("give --input or --generate".into())),
    }
    .persist(StorageLevel::Memory);
    let mut centres = points.take(args.k)?;
    if centres.len() < args.k {
        return Err(Error::Other(format!(
            "{}: {} points, fewer than k = {}",
            args.input.as_deref().unwrap_or("generated points"),
            centres.len(),
            args.k
        )));
    }
    for _ in 0..args.iterations {
        let shared = ctx.broadcast(centres.clone())?;
        let sums = points
            .map(move |p| (closest(&shared, &p) as u64, (p, 1u64)))
            .reduce_by_key(|(mut s, n), (p, m)| {
                s.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
                (s, n + m)
            })
            .collect()?;
        for (k, (sum, n)) in sums {
            centres[k as usize] = sum.iter().map(|s| s / n as f64).collect();
        }
    }
    let line = |c: &Vec<f64>| c.iter().map(f64::to_string).collect::<Vec<_>>().join(" ");
    match &args.output {
        Some(dir) => {
            let text: Vec<String> = centres.iter().map(line).collect();
            ctx.parallelize(text, Some(1)).save_as_text_file_with(
                dir,
                SaveOptions {
                    overwrite: args.overwrite,
                },
                |l, w| w.write_all(l.as_bytes()),
            )?;
        }
        None => {
            if ctx.is_driver() {
                centres.iter().for_each(|c| println!("{}", line(c)));
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
