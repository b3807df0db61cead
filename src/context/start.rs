//! Starting a job: MPI ranks or in-process executors, roles, registration with the driver.

use std::sync::{Arc, mpsc};

use crate::config::EngineArgs;
use crate::context::liveness::{Counterpart, Liveness};
use crate::context::runtime::{LocalExecutors, Runtime};
use crate::context::{Context, Mode, Role};
use crate::executor::serve::serve_job;
use crate::executor::{Executor, Locality};
use crate::failure::{self, fatal};
use crate::plan::job::Job;
use crate::protocol::messages;
use crate::protocol::{ExecutorInfo, ExecutorTable};
use crate::transport::Group;
use crate::transport::local::LocalGroup;
use crate::transport::mpi_start;

impl Context {
    /// Starts the job with engine settings from `EMBER_*` environment variables.
    ///
    /// A job's `main()`, the same on every rank (it does not run here: MPI starts once per
    /// process):
    ///
    /// ```no_run
    /// use ember::{Context, Result};
    ///
    /// fn run(ctx: &Context) -> Result<()> {
    ///     let n = ctx.text_file("input/*.txt")?.count()?;
    ///     if ctx.is_driver() {
    ///         println!("{n} lines");
    ///     }
    ///     Ok(())
    /// }
    ///
    /// fn main() {
    ///     let ctx = Context::init();
    ///     let result = run(&ctx);
    ///     ctx.finish(result);
    /// }
    /// ```
    pub fn init() -> Context {
        Context::init_with(&EngineArgs::from_env())
    }

    /// Starts the job: initialises MPI (or local mode for a world of one), assigns the
    /// role, places executors and registers them with the driver. Any failure here ends
    /// the job on every rank with a message.
    ///
    /// The engine options come from the job's own parser, flattened in (`--executor-cores`,
    /// `--local-dir`, ..., also as `EMBER_*` variables):
    ///
    /// ```no_run
    /// use clap::Parser;
    /// use ember::Context;
    /// use ember::config::EngineArgs;
    ///
    /// #[derive(Parser)]
    /// struct Args {
    ///     #[arg(long)]
    ///     input: String,
    ///     #[command(flatten)]
    ///     engine: EngineArgs,
    /// }
    ///
    /// let args = Args::parse();
    /// let ctx = Context::init_with(&args.engine);
    /// let result = ctx.text_file(&args.input).and_then(|lines| lines.count()).map(|_| ());
    /// ctx.finish(result);
    /// ```
    pub fn init_with(config: &EngineArgs) -> Context {
        prepare_process();
        let started = mpi_start::start().unwrap_or_else(|e| fatal(&e));
        if started.world.size() == 1 {
            let mut ctx = Context::local(config, 1, true);
            ctx.mpi = Some(started.session);
            return ctx;
        }
        let world = started.world;
        let rank = world.rank();
        let role = if rank == 0 {
            Role::Driver
        } else {
            Role::Executor
        };
        crate::log::set_process_label(match role {
            Role::Driver => "driver 0".to_string(),
            Role::Executor => format!("executor {rank}"),
        });
        let token = world
            .broadcast(0, job_token().as_bytes())
            .unwrap_or_else(|e| fatal(&format!("sharing the job token failed: {e}")));
        let token = String::from_utf8_lossy(&token).into_owned();
        let executor = started.executor.map(|(peers, locality)| {
            Arc::new(Executor::start(
                rank, locality, peers, config, &token, false,
            ))
        });
        let table = register(world.as_ref(), executor.as_ref().map(|e| &e.info), true);
        let rt = Runtime::new(
            role,
            Mode::Cluster,
            config.clone(),
            world,
            table,
            executor,
            LocalExecutors::default(),
        );
        let watched = watched(role, &rt);
        let liveness = Liveness::start(Arc::clone(&rt.world), watched, config.heartbeat_timeout);
        if role == Role::Driver {
            rt.start_listeners(true);
        }
        let mut ctx = Context::with_runtime(rt, Vec::new(), Some(started.session));
        ctx.liveness = liveness;
        ctx
    }

    /// Local mode without MPI: the driver and one in-process executor thread. Used by
    /// `init` for a world of one, and by in-process tests (MPI can start only once per
    /// process, tests run many jobs).
    ///
    /// ```
    /// use ember::config::EngineArgs;
    /// use ember::{Context, Mode};
    /// let ctx = Context::local_with(&EngineArgs::default());
    /// assert_eq!(ctx.mode(), Mode::Local);
    /// assert!(ctx.is_driver());
    /// assert_eq!(ctx.range(0, 10, None).count()?, 10);
    /// ctx.stop();
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn local_with(config: &EngineArgs) -> Context {
        Context::local_with_executors(config, 1)
    }

    /// Local mode with `executors` in-process executors (at least one), each on its own
    /// thread with its own pool, block store and shuffle store, joined by the in-process
    /// transport: owners, exchanges and retries elsewhere run as under mpirun, in one
    /// process. They share one node, so `--shuffle-mode auto` reads map files in place and
    /// `alltoallv` moves every byte through the transport.
    ///
    /// ```
    /// use ember::config::EngineArgs;
    /// use ember::Context;
    /// let ctx = Context::local_with_executors(&EngineArgs::default(), 3);
    /// assert_eq!(ctx.executor_table().len(), 3);
    /// let mut sums = ctx
    ///     .range(0, 1000, Some(6))
    ///     .map(|x| (x % 4, x))
    ///     .reduce_by_key(|a, b| a + b) // shuffled between the 3 executors
    ///     .collect()?;
    /// sums.sort();
    /// assert_eq!(sums, [(0, 124500), (1, 124750), (2, 125000), (3, 125250)]);
    /// ctx.stop();
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn local_with_executors(config: &EngineArgs, executors: usize) -> Context {
        Context::local(config, executors, false)
    }

    /// Local mode; `defaults`: the event log and progress as for a job (`init`), not only
    /// when asked for.
    fn local(config: &EngineArgs, executors: usize, defaults: bool) -> Context {
        crate::log::init();
        crate::log::set_process_label("driver 0".to_string());
        let n = executors.max(1);
        let mut world = LocalGroup::create(n + 1).into_iter();
        let Some(driver_end) = world.next() else {
            unreachable!("a group of n + 1 has a first end")
        };
        let token = job_token();
        let (ready_tx, ready_rx) = mpsc::channel::<Arc<Executor>>();
        let mut local = LocalExecutors::default();
        let mut handles = Vec::with_capacity(n);
        for (i, (world_end, peer_end)) in world.zip(LocalGroup::create(n)).enumerate() {
            let id = i + 1;
            let (jobs, incoming) = mpsc::channel::<Arc<Job>>();
            local.jobs.push(jobs);
            let (config, token, ready_tx) = (config.clone(), token.clone(), ready_tx.clone());
            // Not named like a pool thread ("ember-exec..."): a panic in the serve loop
            // itself must end the job, not pass for a task's.
            let handle = std::thread::Builder::new()
                .name(format!("ember-inproc-{id}"))
                .spawn(move || {
                    crate::log::set_thread_label(format!("executor {id}"));
                    let locality = Locality {
                        node: 1,
                        rank: i,
                        size: n,
                    };
                    let peers = Arc::new(peer_end) as Arc<dyn Group>;
                    let executor =
                        Arc::new(Executor::start(id, locality, peers, &config, &token, true));
                    let _ = ready_tx.send(Arc::clone(&executor));
                    register(&world_end, Some(&executor.info), false);
                    // One job at a time until the driver drops its sender (stop).
                    while let Ok(job) = incoming.recv() {
                        // Accumulators are shared with the driver here: it merged them already.
                        if let Err(e) = serve_job(&executor, &world_end, &job) {
                            tracing::debug!("job {} ended with: {e}", job.id);
                        }
                    }
                })
                .unwrap_or_else(|e| fatal(&format!("cannot start in-process executor {id}: {e}")));
            handles.push(handle);
        }
        drop(ready_tx);
        let table = register(&driver_end, None, false);
        local.executors = ready_rx.iter().take(n).collect();
        local.executors.sort_by_key(|e| e.info.id);
        let rt = Runtime::new(
            Role::Driver,
            Mode::Local,
            config.clone(),
            Arc::new(driver_end),
            table,
            None,
            local,
        );
        rt.start_listeners(defaults);
        Context::with_runtime(rt, handles, None)
    }
}

/// Names this job's scratch directories: under Slurm the job, step and restart (so the
/// steps of one allocation never share a directory), else the driver's pid and a time
/// stamp (so that two jobs on one node never do).
fn job_token() -> String {
    if let Ok(id) = std::env::var("SLURM_JOB_ID") {
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "0".into());
        return format!(
            "slurm{id}.{}.{}",
            var("SLURM_STEP_ID"),
            var("SLURM_RESTART_COUNT")
        );
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:09}", std::process::id())
}

/// Executors send their info to rank 0, which logs the table; with `share`, rank 0 then
/// sends the table to every rank (cluster mode: executors plan partition counts with it).
fn register(world: &dyn Group, mine: Option<&ExecutorInfo>, share: bool) -> ExecutorTable {
    let bytes = mine.map(messages::encode).unwrap_or_default();
    let gathered = world
        .gather(0, &bytes)
        .unwrap_or_else(|e| fatal(&format!("registration failed: {e}")));
    let mut table_bytes = Vec::new();
    if let Some(all) = gathered {
        let infos: Vec<ExecutorInfo> = all
            .iter()
            .enumerate()
            .skip(1)
            .map(|(rank, b)| {
                messages::decode::<ExecutorInfo>(b, "registration")
                    .unwrap_or_else(|e| fatal(&format!("executor {rank}: {e}")))
            })
            .collect();
        let table = ExecutorTable::new(infos);
        tracing::info!(
            "{} executor(s), {} worker threads:\n{}",
            table.len(),
            table.total_threads(),
            table
        );
        table_bytes = messages::encode(&table.iter().cloned().collect::<Vec<_>>());
    }
    if share {
        table_bytes = world
            .broadcast(0, &table_bytes)
            .unwrap_or_else(|e| fatal(&format!("sharing the executor table failed: {e}")));
    }
    if table_bytes.is_empty() {
        return ExecutorTable::default(); // the in-process executor: only the driver plans
    }
    let infos: Vec<ExecutorInfo> =
        messages::decode(&table_bytes, "executor table").unwrap_or_else(|e| fatal(&e));
    ExecutorTable::new(infos)
}

/// What a job's process does before MPI starts, while it runs one thread: the MPI
/// environment, the log, the scratch guard (forked now, before MPI and the signal
/// thread), the rank's label (known from the launcher before MPI starts, so a signal
/// that arrives during start-up, as Slurm's --signal can up to a minute early, is
/// reported like any other), the panic hook and the signal handlers.
fn prepare_process() {
    // SAFETY: the first thing a job does: the process runs one thread.
    unsafe { mpi_start::prepare_environment() };
    crate::log::init();
    failure::start_scratch_guard();
    if let Some(label) = crate::launcher::launcher_rank()
        .and_then(|(rank, ranks)| crate::launcher::rank_label(rank, ranks))
    {
        crate::log::set_process_label(label);
    }
    failure::install_panic_hook();
    failure::install_signal_handlers();
    if crate::faults::signal_at_start() {
        // SAFETY: raise() sends a signal to this process; the handler is installed.
        unsafe { libc::raise(libc::SIGUSR1) };
    }
}

/// The ranks whose heartbeats `role`'s process watches: the driver every executor, an
/// executor the driver.
fn watched(role: Role, rt: &Runtime) -> Vec<Counterpart> {
    match role {
        Role::Driver => rt
            .table
            .iter()
            .map(|e| Counterpart {
                rank: e.id.rank(),
                name: format!("executor {} on {} (pid {})", e.id, e.host, e.pid),
            })
            .collect(),
        Role::Executor => vec![Counterpart {
            rank: 0,
            name: "the driver (rank 0)".to_string(),
        }],
    }
}
