//! The JOB of `ember submit`: a built-in job by name, or any job binary by its path.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The job binaries built with ember (`jobs/`), launched by name. A new built-in job is
/// one more entry here (and its `[[bin]]` in Cargo.toml).
pub const BUILT_IN_JOBS: &[&str] = &[
    "wordcount",
    "terasort",
    "pagerank",
    "kmeans",
    "groupby",
    "join",
];

/// The binary a JOB argument stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobBinary {
    /// Its file name: names the Slurm job, its script and its output file.
    pub name: String,
    /// Absolute, so the launch works from any directory (an sbatch script runs from the
    /// submit directory, but a user may move or resubmit it).
    pub path: PathBuf,
}

/// Resolves `job` as a shell resolves a command: with a `/` it is a path (relative to the
/// current directory), without one the name of a built-in job in `bin_dir`. Errors say
/// what is wrong with the file, before anything is launched.
pub fn resolve(job: &str, bin_dir: &Path) -> Result<JobBinary, String> {
    if !job.contains('/') {
        if !BUILT_IN_JOBS.contains(&job) {
            let mut msg = format!(
                "unknown job '{job}': a built-in job ({}) or the path of a job binary \
                 built against ember (e.g. ./target/release/myjob)",
                BUILT_IN_JOBS.join(", ")
            );
            if Path::new(job).is_file() {
                msg += &format!("; for the file {job} here, write ./{job}");
            }
            return Err(msg);
        }
        let path = bin_dir.join(job);
        if !path.is_file() {
            return Err(format!(
                "no binary {} (build with cargo build --release)",
                path.display()
            ));
        }
        return Ok(JobBinary {
            name: job.to_string(),
            path,
        });
    }
    let path = std::path::absolute(job).map_err(|e| format!("job binary {job}: {e}"))?;
    let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "no job binary {}: no such file (build it first, e.g. cargo build --release)",
            path.display()
        ),
        _ => format!("job binary {}: {e}", path.display()),
    })?;
    if !meta.is_file() {
        return Err(format!(
            "job binary {} is a directory, not a program",
            path.display()
        ));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "job binary {} is not executable (a build output of cargo is; chmod +x if this \
             is the right file)",
            path.display()
        ));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job".to_string());
    Ok(JobBinary { name, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_built_in_name_is_found_in_the_binary_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "pagerank", 0o755);
        let job = resolve("pagerank", dir.path()).unwrap();
        assert_eq!(
            job,
            JobBinary {
                name: "pagerank".into(),
                path
            }
        );
        let err = resolve("kmeans", dir.path()).unwrap_err();
        assert!(err.starts_with("no binary "), "{err}");
    }

    #[test]
    fn a_path_is_any_executable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "myjob", 0o755);
        let job = resolve(path.to_str().unwrap(), Path::new("/nonexistent")).unwrap();
        assert_eq!(
            job,
            JobBinary {
                name: "myjob".into(),
                path: path.clone()
            }
        );
    }

    #[test]
    fn a_bad_path_or_name_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = resolve(missing.to_str().unwrap(), dir.path()).unwrap_err();
        assert!(err.contains("no such file"), "{err}");
        let plain = file(dir.path(), "data.txt", 0o644);
        let err = resolve(plain.to_str().unwrap(), dir.path()).unwrap_err();
        assert!(err.contains("is not executable"), "{err}");
        let err = resolve(&format!("{}/", dir.path().display()), dir.path()).unwrap_err();
        assert!(err.contains("is a directory"), "{err}");
        let err = resolve("wc", dir.path()).unwrap_err();
        assert!(
            err.starts_with(
                "unknown job 'wc': a built-in job (wordcount, terasort, pagerank, kmeans, groupby, join) or \
                 the path of a job binary"
            ),
            "{err}"
        );
    }
}
