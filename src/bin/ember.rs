//! `ember`: the engine's command-line tool (`ember info`, and diagnostics used by the tests).

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use ember::Context;
use ember::config::EngineArgs;
use ember::transport::Tag;

#[derive(Parser)]
#[command(
    name = "ember",
    version,
    about = "ember: a Spark-style batch engine on MPI",
    long_about = "ember: a Spark-style batch engine on MPI. Rank 0 of a job is the driver, every \
                  other rank an executor; a job is launched as one process, under mpirun or \
                  by Slurm. This tool launches jobs (`ember submit`), writes test data sets \
                  (`ember datagen`) and shows how a launch places executors (`ember info`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start as an ember job and print the executors the driver registered
    #[command(
        long_about = "Start as an ember job and print the executors the driver registered: \
                      host, pid, NUMA domain, pinned cores, threads, memory budget. Run it \
                      under mpirun or srun to check a launch (alone it is local mode: one \
                      in-process executor)."
    )]
    Info {
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Launch a job in one process, under mpirun, or through Slurm (like spark-submit)
    #[command(
        long_about = "Launch a job in one process, under mpirun, or through Slurm (like \
                      spark-submit). JOB is a built-in job or the path of any job binary built \
                      against ember; the options before JOB are submit's, everything after it \
                      goes to the job (engine options included: every job takes them).",
        after_help = "Examples:\n  \
                      ember submit --master mpirun --num-executors 3 wordcount --input in.txt --output out\n  \
                      ember submit --master slurm --num-executors 7 --executor-cores 4 --wait ./target/release/myjob --input in\n  \
                      ember submit --master slurm --dry-run terasort --input in.bin --output sorted"
    )]
    Submit(ember::submit::SubmitArgs),
    /// Write a data set of FORMATS.md as part-NNNNN files (one writer per rank)
    #[command(
        long_about = "Write a data set of FORMATS.md (text, sort, graph, points, kv) as \
                      part-NNNNN files and _SUCCESS. Under mpirun or srun every rank writes its \
                      own parts; the data set is the same whatever the number of writers."
    )]
    Datagen(Datagen),
    /// Turn a job's event log into one self-contained HTML report, or list event logs
    #[command(
        long_about = "Turn a job's event log (written by the driver, by default under \
                      ember-events/ in its working directory) into one self-contained HTML \
                      page: the summary, each job's stage DAG and lineage, a task timeline per \
                      executor, task time and bytes per stage, shuffles, memory and failures. \
                      It loads nothing from the network: copy it anywhere and open it.",
        after_help = "Examples:\n  \
                      ember history --list ember-events\n  \
                      ember history ember-events/app-20261201T142000Z-4242.jsonl --output report.html"
    )]
    History(History),
    /// Diagnostics for the test suite: load, failures.
    #[command(hide = true)]
    Debug {
        #[command(flatten)]
        engine: EngineArgs,
        #[command(subcommand)]
        what: Debug,
    },
}

#[derive(clap::Args)]
struct History {
    /// The event log (a .jsonl file), or with --list a directory of them.
    #[arg(value_name = "EVENT_LOG")]
    path: std::path::PathBuf,
    /// List the applications logged in the directory EVENT_LOG: start, duration, status.
    #[arg(long)]
    list: bool,
    /// Where to write the report (default: the log's path with .html).
    #[arg(long, short, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Debug {
    /// Executors compute on every worker thread for SECONDS while the driver waits for
    /// them; the driver prints its own CPU use over the wait.
    Busy {
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Rank RANK fails after DELAY_MS (by a panic or an error); the others wait for it.
    Fail {
        #[arg(long)]
        rank: usize,
        #[arg(long, value_enum)]
        how: FailHow,
        #[arg(long, default_value_t = 200)]
        delay_ms: u64,
    },
}

#[derive(clap::Args)]
struct Datagen {
    /// What to write.
    #[arg(value_enum)]
    kind: ember::datagen::Kind,
    /// About how many bytes (e.g. 1g, 512m).
    #[arg(
        long,
        value_name = "SIZE",
        conflicts_with = "records",
        required_unless_present = "records"
    )]
    size: Option<ember::config::ByteSize>,
    /// Exactly how many records (lines; 100-byte records for sort).
    #[arg(long, value_name = "N")]
    records: Option<u64>,
    /// Output directory: part-NNNNN files, concatenated in order they are the data set.
    #[arg(long, value_name = "DIR")]
    output: std::path::PathBuf,
    /// Seed of the generator: the same seed, the same data set.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Part files (default: one per rank, more for large sets: at most 256 MiB each).
    #[arg(long, value_name = "N")]
    parts: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum FailHow {
    Panic,
    Error,
}

const DONE: Tag = Tag(100);

fn main() {
    let cli = Cli::parse();
    if let Command::Submit(args) = &cli.command {
        std::process::exit(submit(args));
    }
    if let Command::Datagen(what) = &cli.command {
        if let Err(e) = datagen(what) {
            eprintln!("ember datagen: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Command::History(what) = &cli.command {
        if let Err(e) = history(what) {
            eprintln!("ember history: {e}");
            std::process::exit(1);
        }
        return;
    }
    match cli.command {
        Command::Info { engine } => {
            let ctx = Context::init_with(&engine);
            info(&ctx);
            ctx.stop();
        }
        Command::Debug { engine, what } => {
            let ctx = Context::init_with(&engine);
            match what {
                Debug::Busy { seconds } => busy(&ctx, Duration::from_secs_f64(seconds)),
                Debug::Fail {
                    rank,
                    how,
                    delay_ms,
                } => fail(&ctx, rank, how, Duration::from_millis(delay_ms)),
            }
            ctx.stop();
        }
        Command::Datagen(_) | Command::Submit(_) | Command::History(_) => {
            unreachable!("handled before a context starts")
        }
    }
}

/// `ember history`: writes the report of one log, or lists a directory's logs.
fn history(what: &History) -> ember::Result<()> {
    if what.list {
        print!("{}", ember::history::list(&what.path)?);
        return Ok(());
    }
    let html = ember::history::report(&what.path)?;
    let output = what
        .output
        .clone()
        .unwrap_or_else(|| what.path.with_extension("html"));
    std::fs::write(&output, html)
        .map_err(|e| ember::Error::Other(format!("cannot write {}: {e}", output.display())))?;
    println!("{}", output.display());
    Ok(())
}

/// `ember submit`: plans (refusing impossible requests before anything runs), then prints
/// or launches. Returns the exit code.
fn submit(args: &ember::submit::SubmitArgs) -> i32 {
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_default();
    let outcome = ember::submit::resolve(&args.job, &bin_dir)
        .and_then(|job| ember::submit::plan(args, &job, ember::submit::capacity(args)))
        .and_then(|launch| ember::submit::execute(&launch, args.dry_run));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ember submit: {e}");
            2
        }
    }
}

fn datagen(what: &Datagen) -> std::io::Result<()> {
    use ember::datagen::{part_range, write_part};
    // One process when no launcher started this one.
    let (rank, ranks) = ember::launcher::launcher_rank().unwrap_or((0, 1));
    let count = match (what.records, what.size) {
        (Some(n), _) => n,
        (None, Some(size)) => what.kind.records_for(size.0, what.seed),
        (None, None) => unreachable!("clap requires one"),
    };
    let bytes = what.size.map_or(count * 100, |s| s.0);
    let parts = what
        .parts
        .unwrap_or_else(|| ranks.max(bytes.div_ceil(256 << 20)))
        .max(1);
    std::fs::create_dir_all(&what.output)?;
    for p in (0..parts).filter(|p| p % ranks == rank) {
        let path = what.output.join(format!("part-{p:05}"));
        write_part(
            &path,
            what.kind,
            what.seed,
            part_range(p, parts, count),
            count,
        )?;
    }
    mark_done(&what.output, rank, ranks)?;
    if rank == 0 {
        println!(
            "{count} records in {parts} part(s) under {} ({ranks} writer(s))",
            what.output.display()
        );
    }
    Ok(())
}

/// Writers share no communicator: each leaves `_done-RANK` when its parts are complete,
/// and whichever sees every writer's marker writes `_SUCCESS` (so readers know the data
/// set is whole) and removes the markers.
fn mark_done(dir: &std::path::Path, rank: u64, ranks: u64) -> std::io::Result<()> {
    let marker = |r: u64| dir.join(format!("_done-{r}"));
    std::fs::write(marker(rank), b"")?;
    if (0..ranks).all(|r| marker(r).exists()) {
        std::fs::write(dir.join("_SUCCESS"), b"")?;
        for r in 0..ranks {
            match std::fs::remove_file(marker(r)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

fn info(ctx: &Context) {
    if ctx.is_driver() {
        println!("mode: {:?}, {} rank(s)", ctx.mode(), ctx.world_size());
        print!("{}", ctx.executor_table());
    }
}

/// CPU time (user + system) this process has used so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn busy(ctx: &Context, seconds: Duration) {
    if ctx.mode() == ember::Mode::Local {
        ctx.fail(
            &"debug busy measures a separate driver process: run it under mpirun with 2+ ranks",
        );
    }
    let world = ctx.world();
    if ctx.is_driver() {
        let table = ctx.executor_table();
        print!("{table}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let (cpu0, wall0) = (process_cpu(), Instant::now());
        for _ in 0..table.len() {
            world
                .recv(None, DONE)
                .unwrap_or_else(|e| ctx.fail(&format!("waiting for executors: {e}")));
        }
        let (cpu, wall) = (process_cpu() - cpu0, wall0.elapsed());
        println!(
            "driver cpu while waiting: {:.1} ms over {:.1} ms wall ({:.2}% of a core)",
            cpu.as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3,
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
        );
    } else if let Some(executor) = ctx.executor() {
        let deadline = Instant::now() + seconds;
        let spins: u64 = executor
            .pool
            .broadcast(|_| {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    for i in 0..10_000u64 {
                        n = std::hint::black_box(
                            n.wrapping_mul(6364136223846793005).wrapping_add(i),
                        );
                    }
                }
                n
            })
            .into_iter()
            .fold(0, u64::wrapping_add);
        world
            .send(0, DONE, &spins.to_le_bytes())
            .unwrap_or_else(|e| ctx.fail(&format!("reporting to the driver: {e}")));
    }
}

fn fail(ctx: &Context, rank: usize, how: FailHow, delay: Duration) {
    if ctx.rank() == rank {
        std::thread::sleep(delay);
        match how {
            FailHow::Panic => panic!("injected panic on rank {rank}"),
            FailHow::Error => ctx.fail(&format!("injected error on rank {rank}")),
        }
    }
    // The others wait for the failing rank, which never arrives: only the abort ends this.
    ctx.world()
        .barrier()
        .unwrap_or_else(|e| ctx.fail(&format!("barrier: {e}")));
}
