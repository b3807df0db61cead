//! `ember submit`: launches a job in one process, under mpirun, or through Slurm, from the
//! same options (like `spark-submit`), after checking that the request can run at all.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::ByteSize;

/// The job binaries `submit` knows.
pub const JOBS: [&str; 4] = ["wordcount", "terasort", "pagerank", "kmeans"];

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Master {
    /// One process: the driver with an in-process executor.
    Local,
    /// `mpirun` on this machine: rank 0 the driver, one rank per executor.
    Mpirun,
    /// An sbatch script from these options, submitted to Slurm.
    Slurm,
}

/// Options of `ember submit`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    #[arg(long, value_enum, default_value_t = Master::Local)]
    pub master: Master,
    /// Executors (MPI ranks besides the driver; ignored in local mode).
    #[arg(long, default_value_t = 2)]
    pub num_executors: usize,
    /// Worker threads per executor (Slurm: --cpus-per-task).
    #[arg(long)]
    pub executor_cores: Option<usize>,
    /// Memory budget per executor, e.g. 2g.
    #[arg(long)]
    pub executor_memory: Option<ByteSize>,
    /// Slurm time limit (--time), e.g. 00:30:00.
    #[arg(long, default_value = "01:00:00")]
    pub time: String,
    /// Slurm partition (--partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Allow more tasks than CPUs (Slurm --overcommit): small test nodes.
    #[arg(long)]
    pub overcommit: bool,
    /// Print the command or the sbatch script instead of running it.
    #[arg(long)]
    pub dry_run: bool,
    /// Slurm: block until the job ends and exit with its exit code (sbatch --wait).
    #[arg(long)]
    pub wait: bool,
    /// Slurm: where to write the script (default ./ember-JOB.sbatch).
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// The job: wordcount, terasort, pagerank or kmeans.
    pub job: String,
    /// The job's own arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
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

/// Decides how to launch `a`: job binaries are in `bin_dir`, and a node has `node_cores`
/// cores. Impossible requests are errors here, before anything starts.
pub fn plan(a: &SubmitArgs, bin_dir: &Path, node_cores: usize) -> Result<Launch, String> {
    if !JOBS.contains(&a.job.as_str()) {
        return Err(format!(
            "unknown job '{}': one of {}",
            a.job,
            JOBS.join(", ")
        ));
    }
    let program = bin_dir.join(&a.job);
    if !program.is_file() {
        return Err(format!(
            "no binary {} (build with cargo build --release)",
            program.display()
        ));
    }
    let program = program.to_string_lossy().into_owned();
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
        Master::Mpirun => {
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
            let mut env = env;
            env.push(("OMPI_ALLOW_RUN_AS_ROOT".into(), "1".into()));
            env.push(("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM".into(), "1".into()));
            Ok(Launch::Command {
                env,
                program: "mpirun".into(),
                args,
            })
        }
        Master::Slurm => {
            let mut s = String::from("#!/bin/bash\n");
            s += &format!(
                "# Written by `ember submit --master slurm` for {}.\n",
                a.job
            );
            s += &format!("#SBATCH --job-name=ember-{}\n", a.job);
            s += &format!("#SBATCH --ntasks={ranks}\n");
            s += &format!("#SBATCH --cpus-per-task={cores}\n");
            if let Some(m) = a.executor_memory {
                // The budget is 3/4 of what the task gets (as slurm/common.sh assumes).
                let per_cpu_mb = (m.0 * 4 / 3).div_ceil(1 << 20).div_ceil(cores as u64);
                s += &format!("#SBATCH --mem-per-cpu={per_cpu_mb}M\n");
            }
            s += &format!("#SBATCH --time={}\n", a.time);
            if let Some(p) = &a.partition {
                s += &format!("#SBATCH --partition={p}\n");
            }
            if a.overcommit {
                s += "#SBATCH --overcommit\n";
            }
            s += "#SBATCH --signal=USR1@120\n";
            s += &format!("#SBATCH --output=ember-{}-%j.out\n", a.job);
            s += "set -euo pipefail\n";
            s += "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n";
            for (k, v) in &env {
                s += &format!("export {k}={}\n", shell_quote(v));
            }
            let cmd: Vec<String> = std::iter::once(program.as_str())
                .chain(a.args.iter().map(String::as_str))
                .map(shell_quote)
                .collect();
            let cmd = cmd.join(" ");
            s += "# Slurm starts the ranks (PMIx); without its PMIx plugin, mpirun reads the allocation.\n";
            s += "if srun --mpi=list 2>&1 | grep -q pmix; then\n";
            s += &format!("  srun --mpi=pmix --kill-on-bad-exit=1 {cmd}\n");
            s += "else\n";
            s += &format!("  mpirun --bind-to none {cmd}\n");
            s += "fi\n";
            let path = a
                .script
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("ember-{}.sbatch", a.job)));
            let mut sbatch_args = Vec::new();
            if a.wait {
                sbatch_args.push("--wait".to_string());
            }
            Ok(Launch::Slurm {
                path,
                script: s,
                sbatch_args,
            })
        }
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

/// Cores of a node: Slurm's largest node when `sinfo` answers, else this machine's.
pub fn node_cores(master: Master) -> usize {
    let here = std::thread::available_parallelism().map_or(1, |n| n.get());
    if master != Master::Slurm {
        return here;
    }
    Command::new("sinfo")
        .args(["-h", "-o", "%c"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().trim_end_matches('+').parse::<usize>().ok())
                .max()
        })
        .unwrap_or(here)
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
}
