//! The sbatch script `ember submit --master slurm` writes: the allocation from the submit
//! options, then the launch of slurm/common.sh, the one the project's own scripts use.

use super::SubmitArgs;
use super::job::JobBinary;
use super::shell_quote;

/// slurm/common.sh, included whole so that a generated script launches exactly as the
/// scripts of slurm/ do (engine settings from the allocation, srun with
/// --kill-on-bad-exit or the mpirun fallback) and needs no ember checkout on the nodes.
const COMMON_SH: &str = include_str!("../../slurm/common.sh");

/// The script for `job`, to be written to `path`, with `ranks` tasks of `cores` CPUs; `env` holds the engine
/// settings given to `submit`, exported before the allocation-derived defaults.
pub fn script(
    a: &SubmitArgs,
    job: &JobBinary,
    path: &std::path::Path,
    ranks: usize,
    cores: usize,
    env: &[(String, String)],
) -> String {
    let name = slurm_name(&job.name);
    let mut s = String::from("#!/bin/bash\n");
    s += &format!(
        "# Written by `ember submit --master slurm` for {}: task 0 is ember's driver, every\n\
         # other task an executor. Submit it again with `sbatch {}`.\n",
        job.path.display(),
        path.display(),
    );
    s += &format!("#SBATCH --job-name=ember-{name}\n");
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
    s += &format!("#SBATCH --output=ember-{name}-%j.out\n");
    s += "set -euo pipefail\n";
    s += "# Engine settings given to `ember submit` (the submitting shell's EMBER_* variables\n";
    s += "# reach the tasks too: sbatch exports the environment).\n";
    for (k, v) in env {
        s += &format!("export {k}={}\n", shell_quote(v));
    }
    s += "\n# ---- slurm/common.sh of ember ----\n";
    s += COMMON_SH;
    s += "# ---- end of slurm/common.sh ----\n\n";
    let cmd: Vec<String> = std::iter::once(job.path.to_string_lossy().into_owned())
        .chain(a.args.iter().cloned())
        .map(|w| shell_quote(&w))
        .collect();
    s += &format!("ember_launch {}\n", cmd.join(" "));
    s
}

/// Where the script goes unless `--script` says: the current directory.
pub fn default_path(job: &JobBinary) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("ember-{}.sbatch", slurm_name(&job.name)))
}

/// `name` with only the characters a job name and a file name take without quoting.
fn slurm_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
