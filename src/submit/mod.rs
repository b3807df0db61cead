//! `ember submit`: launches a job in one process, under mpirun, or through Slurm, from the
//! same options (like `spark-submit`), after checking that the request can run at all.

mod job;
mod sbatch;

use std::path::PathBuf;
use std::process::Command;

use crate::config::ByteSize;
use crate::transport::library::MpiFamily;

pub use job::{BUILT_IN_JOBS, JobBinary, resolve};

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Master {
    /// One process: the driver with an in-process executor.
    Local,
    /// `mpirun` on this machine (`mpiexec` for a binary linked against MPICH): rank 0 the
    /// driver, one rank per executor.
    Mpirun,
    /// An sbatch script from these options, submitted to Slurm.
    Slurm,
}

/// Options of `ember submit`: everything before JOB is for `submit`, everything after it
/// is the job's own (engine options included: every job takes them).
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Where the job runs.
    #[arg(long, value_enum, default_value_t = Master::Local)]
    pub master: Master,
    /// Executors (MPI ranks besides the driver; ignored in local mode).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub num_executors: usize,
    /// Worker threads per executor (Slurm: --cpus-per-task).
    #[arg(long, value_name = "N")]
    pub executor_cores: Option<usize>,
    /// Memory budget per executor, e.g. 2g (Slurm: --mem-per-cpu, with headroom).
    #[arg(long, value_name = "SIZE")]
    pub executor_memory: Option<ByteSize>,
    /// Slurm time limit (--time), e.g. 00:30:00.
    #[arg(long, default_value = "01:00:00")]
    pub time: String,
    /// Slurm partition (--partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Slurm: allow more tasks than CPUs (--overcommit), for small test nodes.
    #[arg(long)]
    pub overcommit: bool,
    /// Print the command or the sbatch script instead of running it.
    #[arg(long)]
    pub dry_run: bool,
    /// Slurm: block until the job ends and exit with its exit code (sbatch --wait).
    #[arg(long)]
    pub wait: bool,
    /// Slurm: where to write the script (default ./ember-JOB.sbatch).
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    #[arg(help = job_help())]
    pub job: String,
    /// The job's own arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The help of JOB, naming the built-in jobs.
fn job_help() -> String {
    format!(
        "A built-in job ({}) or the path of any job binary built against ember, e.g. \
         ./target/release/myjob",
        BUILT_IN_JOBS.join(", ")
    )
}

/// What `submit` will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// Run a command with extra environment variables.
    Command {
        env: Vec<(String, String)>,
        program: String,
        args: Vec<String>,
    },
    /// Write `script` to `path` and run `sbatch` with `sbatch_args` on it.
    Slurm {
        path: PathBuf,
        script: String,
        sbatch_args: Vec<String>,
    },
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=,@%+-".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn engine_env(a: &SubmitArgs) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(c) = a.executor_cores {
        env.push(("EMBER_EXECUTOR_CORES".to_string(), c.to_string()));
    }
    if let Some(m) = a.executor_memory {
        env.push(("EMBER_EXECUTOR_MEMORY".to_string(), m.0.to_string()));
    }
    env
}

/// What a launch can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Cores of the largest node (this machine's without Slurm).
    pub node_cores: usize,
    /// Slurm: the CPUs of every node of the partition together, when `sinfo` answers.
    pub cluster_cpus: Option<usize>,
}

/// Decides how to launch `job` (what [`resolve`] made of `a.job`). Impossible requests
/// are errors here, before anything starts.
pub fn plan(a: &SubmitArgs, job: &JobBinary, capacity: Capacity) -> Result<Launch, String> {
    let node_cores = capacity.node_cores;
    let program = job.path.to_string_lossy().into_owned();
    let cores = a.executor_cores.unwrap_or(1);
    if cores == 0 || cores > node_cores {
        return Err(format!(
            "--executor-cores {cores}: a node here has {node_cores} core(s)"
        ));
    }
    if a.master != Master::Local && a.num_executors == 0 {
        return Err("--num-executors must be at least 1".to_string());
    }
    let ranks = a.num_executors + 1;
    let env = engine_env(a);
    match a.master {
        Master::Local => Ok(Launch::Command {
            env,
            program,
            args: a.args.clone(),
        }),
        Master::Mpirun if MpiFamily::linked() == Some(MpiFamily::Mpich) => {
            Ok(mpich_launch(a, ranks, env, program))
        }
        Master::Mpirun => Ok(openmpi_launch(a, ranks, cores, node_cores, env, program)),
        Master::Slurm => slurm_launch(a, job, capacity, ranks, cores, &env),
    }
}

/// `mpiexec` of MPICH's hydra: no binding and oversubscription unless told otherwise; the
/// launcher's environment reaches every rank, the list names what ember adds.
fn mpich_launch(
    a: &SubmitArgs,
    ranks: usize,
    env: Vec<(String, String)>,
    program: String,
) -> Launch {
    let mut args = vec!["-n".to_string(), ranks.to_string()];
    if !env.is_empty() {
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        args.extend(["-genvlist".to_string(), keys.join(",")]);
    }
    args.push(program);
    args.extend(a.args.iter().cloned());
    Launch::Command {
        env,
        program: mpich_launcher(),
        args,
    }
}

/// OpenMPI's `mpirun`: unbound ranks (ember pins its own threads), oversubscribed when
/// the executors' cores and the driver pass the node's, ember's settings exported.
fn openmpi_launch(
    a: &SubmitArgs,
    ranks: usize,
    cores: usize,
    node_cores: usize,
    mut env: Vec<(String, String)>,
    program: String,
) -> Launch {
    let mut args = vec![
        "-n".to_string(),
        ranks.to_string(),
        "--bind-to".into(),
        "none".into(),
    ];
    if a.num_executors * cores + 1 > node_cores {
        args.push("--oversubscribe".into());
    }
    for (k, _) in &env {
        args.extend(["-x".to_string(), k.clone()]);
    }
    args.push(program);
    args.extend(a.args.iter().cloned());
    env.push(("OMPI_ALLOW_RUN_AS_ROOT".into(), "1".into()));
    env.push(("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM".into(), "1".into()));
    Launch::Command {
        env,
        program: "mpirun".into(),
        args,
    }
}

/// A batch script for `sbatch`: `ranks` tasks of `cores` CPUs, refused up front when the
/// partition cannot hold them (Slurm does not refuse a request larger than the partition:
/// it pends forever, reason PartitionConfig) unless the user overcommits.
fn slurm_launch(
    a: &SubmitArgs,
    job: &JobBinary,
    capacity: Capacity,
    ranks: usize,
    cores: usize,
    env: &[(String, String)],
) -> Result<Launch, String> {
    let cpus = ranks * cores;
    if let Some(total) = capacity.cluster_cpus
        && cpus > total
        && !a.overcommit
    {
        return Err(format!(
            "{ranks} tasks (the driver and {} executors) of {cores} CPU(s) need {cpus} \
             CPUs, the Slurm partition has {total}: the job would pend forever. Ask \
             for fewer --num-executors or --executor-cores, or pass --overcommit",
            a.num_executors
        ));
    }
    let path = a
        .script
        .clone()
        .unwrap_or_else(|| sbatch::default_path(job));
    let script = sbatch::script(a, job, &path, ranks, cores, env);
    let mut sbatch_args = Vec::new();
    if a.wait {
        sbatch_args.push("--wait".to_string());
    }
    Ok(Launch::Slurm {
        path,
        script,
        sbatch_args,
    })
}

/// The launcher of a binary linked against MPICH: `mpiexec.mpich` where it is installed
/// beside another MPI (Debian), else the `mpiexec` on PATH (a site's `module load`).
fn mpich_launcher() -> String {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    if on_path("mpiexec.mpich") {
        "mpiexec.mpich".into()
    } else {
        "mpiexec".into()
    }
}

/// Prints (`dry_run`) or carries out `launch`; returns the exit code to leave with.
pub fn execute(launch: &Launch, dry_run: bool) -> Result<i32, String> {
    match launch {
        Launch::Command { env, program, args } => {
            if dry_run {
                let words: Vec<String> = env
                    .iter()
                    .map(|(k, v)| format!("{k}={}", shell_quote(v)))
                    .chain(std::iter::once(shell_quote(program)))
                    .chain(args.iter().map(|a| shell_quote(a)))
                    .collect();
                println!("{}", words.join(" "));
                return Ok(0);
            }
            let status = Command::new(program)
                .args(args)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .status()
                .map_err(|e| format!("cannot run {program}: {e}"))?;
            Ok(status.code().unwrap_or(1))
        }
        Launch::Slurm {
            path,
            script,
            sbatch_args,
        } => {
            if dry_run {
                print!("{script}");
                return Ok(0);
            }
            std::fs::write(path, script).map_err(|e| format!("{}: {e}", path.display()))?;
            let status = Command::new("sbatch")
                .args(sbatch_args)
                .arg(path)
                .status()
                .map_err(|e| format!("cannot run sbatch: {e}"))?;
            Ok(status.code().unwrap_or(1))
        }
    }
}

/// What a launch can use: for Slurm the nodes `sinfo` lists (of `--partition`, if given),
/// else (or when `sinfo` does not answer within a few seconds: it takes 9 s to give up on
/// a controller that is down) this machine.
pub fn capacity(a: &SubmitArgs) -> Capacity {
    let here = Capacity {
        node_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cluster_cpus: None,
    };
    if a.master != Master::Slurm {
        return here;
    }
    let mut sinfo = Command::new("sinfo");
    sinfo.args(["-h", "-o", "%c %D"]);
    if let Some(p) = &a.partition {
        sinfo.args(["-p", p]);
    }
    output_within(sinfo, std::time::Duration::from_secs(3))
        .and_then(|text| parse_sinfo(&text))
        .unwrap_or(here)
}

/// The standard output of `cmd` if it succeeds within `limit` (else it is killed).
fn output_within(mut cmd: Command, limit: std::time::Duration) -> Option<String> {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    status.success().then_some(text)
}

/// Lines of `sinfo -o "%c %D"` (CPUs per node, nodes of that size) as a capacity.
fn parse_sinfo(text: &str) -> Option<Capacity> {
    let groups: Vec<(usize, usize)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let cpus = f.next()?.trim_end_matches('+').parse().ok()?;
            let nodes = f.next()?.parse().ok()?;
            Some((cpus, nodes))
        })
        .collect();
    Some(Capacity {
        node_cores: groups.iter().map(|g| g.0).max()?,
        cluster_cpus: Some(groups.iter().map(|(c, n)| c * n).sum()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("--input"), "--input");
        assert_eq!(shell_quote("/data/a b.txt"), "'/data/a b.txt'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn capacity_is_read_from_sinfo() {
        let c = parse_sinfo("8 1\n48 10\n").unwrap();
        assert_eq!(c.node_cores, 48);
        assert_eq!(c.cluster_cpus, Some(488));
        assert_eq!(parse_sinfo(""), None);
    }

    #[test]
    fn a_slurm_request_larger_than_the_partition_is_refused() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            submit: SubmitArgs,
        }
        let job = JobBinary {
            name: "wordcount".into(),
            path: "/bin/wordcount".into(),
        };
        let args = |extra: &[&str]| {
            let words = ["submit", "--master", "slurm", "--num-executors", "3"];
            Cli::parse_from(words.iter().chain(extra).chain(&["wordcount"])).submit
        };
        let small = Capacity {
            node_cores: 2,
            cluster_cpus: Some(2),
        };
        let err = plan(&args(&[]), &job, small).unwrap_err();
        assert!(
            err.starts_with("4 tasks (the driver and 3 executors) of 1 CPU(s) need 4 CPUs, the Slurm partition has 2"),
            "{err}"
        );
        assert!(plan(&args(&["--overcommit"]), &job, small).is_ok());
        let enough = Capacity {
            cluster_cpus: Some(4),
            ..small
        };
        assert!(plan(&args(&[]), &job, enough).is_ok());
    }
}
