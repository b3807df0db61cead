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
    about = "ember: a Spark-style batch engine on MPI"
)]
struct Cli {
    #[command(flatten)]
    engine: EngineArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start as an MPI program and print the executor table on the driver.
    Info,
    /// Launch a job locally, under mpirun, or through Slurm (like spark-submit).
    Submit(ember::submit::SubmitArgs),
    /// Write a data set of FORMATS.md to a file (one process).
    #[command(subcommand)]
    Datagen(Datagen),
    /// Diagnostics for the test suite: load, failures.
    #[command(hide = true, subcommand)]
    Debug(Debug),
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

#[derive(Subcommand)]
enum Datagen {
    /// Zipf-distributed words, 13 a line.
    Text {
        #[arg(long)]
        lines: u64,
        #[arg(long)]
        output: std::path::PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// 100-byte TeraSort records with random 10-byte keys.
    Sort {
        #[arg(long)]
        records: u64,
        #[arg(long)]
        output: std::path::PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
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
    let ctx = Context::init_with(&cli.engine);
    match cli.command {
        Command::Info => info(&ctx),
        Command::Datagen(_) | Command::Submit(_) => {
            unreachable!("handled before the context starts")
        }
        Command::Debug(Debug::Busy { seconds }) => busy(&ctx, Duration::from_secs_f64(seconds)),
        Command::Debug(Debug::Fail {
            rank,
            how,
            delay_ms,
        }) => fail(&ctx, rank, how, Duration::from_millis(delay_ms)),
    }
    ctx.stop();
}

/// `ember submit`: plans (refusing impossible requests before anything runs), then prints
/// or launches. Returns the exit code.
fn submit(args: &ember::submit::SubmitArgs) -> i32 {
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_default();
    let cores = ember::submit::node_cores(args.master);
    let outcome = ember::submit::plan(args, &bin_dir, cores)
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
    use std::io::Write;
    let create = |path: &std::path::Path| -> std::io::Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(path)?,
        ))
    };
    match *what {
        Datagen::Text {
            lines,
            ref output,
            seed,
        } => {
            let mut out = create(output)?;
            for i in 0..lines {
                writeln!(out, "{}", ember::io::datagen::text_line(seed, i))?;
            }
            out.flush()
        }
        Datagen::Sort {
            records,
            ref output,
            seed,
        } => {
            let mut out = create(output)?;
            for i in 0..records {
                out.write_all(&ember::io::records::Record::generate(seed, i).0)?;
            }
            out.flush()
        }
    }
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
