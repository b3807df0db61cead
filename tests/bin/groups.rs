//! Groups larger than the executors' memory budget: `group_by_key` and `cogroup` of
//! generated string-keyed pairs, summarised per key (count, digest of the sorted values)
//! and printed by the driver as `name = ...` lines (compared by tests/keyvalue.rs with a
//! sequential computation); each rank says what `collect_to_driver` gave it.

#[path = "../common/groups.rs"]
mod groups;

use clap::Parser;
use ember::config::EngineArgs;
use ember::{Context, Rdd};
use groups::{digest, key_of, summary, value_of};

#[derive(Parser)]
struct Args {
    /// Records of the left side (the right side has half as many).
    #[arg(long, default_value_t = 1_000_000)]
    n: u64,
    #[arg(long, default_value_t = 200_000)]
    keys: u64,
    #[arg(long, default_value_t = 4)]
    partitions: usize,
    #[command(flatten)]
    engine: EngineArgs,
}

/// (keys, values, digest sum) of per-key (values, digest) rows.
fn totals(rows: &Rdd<(u64, u64)>) -> ember::Result<(u64, u64, u64)> {
    let zero = (0, 0, 0);
    rows.map(|(n, d)| (1, n, d))
        .fold(zero, |a, b| (a.0 + b.0, a.1 + b.1, a.2.wrapping_add(b.2)))
}

fn run(ctx: &Context, args: &Args) -> ember::Result<()> {
    let keys = args.keys;
    let pairs = |n: u64, salt: u64| {
        ctx.range(0, n, Some(args.partitions))
            .map(move |i| (key_of(i ^ salt, keys), value_of(i)))
    };
    let (left, right) = (pairs(args.n, 0), pairs(args.n / 2, 1));
    let grouped = left.group_by_key().map(|(k, vs)| {
        let mut vs = vs.into_vec();
        vs.sort_unstable();
        (vs.len() as u64, digest(&k, &vs))
    });
    let (k, n, d) = totals(&grouped)?;
    let cogrouped = left.cogroup(&right).map(|(k, (mut vs, mut ws))| {
        vs.sort_unstable();
        ws.sort_unstable();
        let d = digest(&k, &vs)
            .wrapping_mul(3)
            .wrapping_add(digest(&k, &ws));
        ((vs.len() + ws.len()) as u64, d)
    });
    let (ck, cn, cd) = totals(&cogrouped)?;
    // Results for the driver alone: executors receive none.
    let rows = grouped.collect_to_driver()?;
    let got = rows.map_or("none".to_string(), |r| format!("{} rows", r.len()));
    println!("collect_to_driver on rank {}: {got}", ctx.rank());
    if ctx.is_driver() {
        println!("{}", summary("group_by_key", k, n, d));
        println!("{}", summary("cogroup", ck, cn, cd));
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let ctx = Context::init_with(&args.engine);
    let result = run(&ctx, &args);
    ctx.finish(result);
}
