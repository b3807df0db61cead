//! Shared by the benchmark binaries: launching under mpirun, medians, RSS lines.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// True inside a rank started by mpirun.
pub fn under_mpi() -> bool {
    std::env::var("OMPI_COMM_WORLD_SIZE").is_ok() || std::env::var("PMI_SIZE").is_ok()
}

/// `mpirun -n ranks program args` with the flags of this machine (root, oversubscribed,
/// binding left to ember), or MPICH's `mpiexec.mpich -n ranks program args` when the
/// benchmarks are linked against MPICH (its hydra needs none of those flags).
pub fn mpirun(ranks: usize, program: &str, args: &[String]) -> Command {
    use ember::transport::library::MpiFamily;
    let mut cmd = if MpiFamily::linked() == Some(MpiFamily::Mpich) {
        let mut cmd = Command::new("mpiexec.mpich");
        cmd.args(["-n", &ranks.to_string()]);
        cmd
    } else {
        let mut cmd = Command::new("mpirun");
        cmd.args([
            "-n",
            &ranks.to_string(),
            "--oversubscribe",
            "--bind-to",
            "none",
        ]);
        cmd
    };
    cmd.arg(program)
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    // The jobs' event logs go under target/, not into the checkout's ./ember-events.
    if std::env::var_os("EMBER_EVENT_LOG").is_none() {
        let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-event-logs");
        cmd.env("EMBER_EVENT_LOG", logs);
    }
    cmd
}

/// Prints what the launcher alone costs (`mpirun -n 1 true`, median of 3): part of every
/// ember time, none of a baseline's. On a machine where PMIx finds munge installed but its
/// daemon not running, every launch waits about 2 s retrying the socket; says so.
pub fn report_launcher_start_up() {
    let secs = median((0..3).map(|_| timed(mpirun(1, "true", &[])).0).collect());
    println!("launcher start-up (mpirun -n 1 true, in every ember time): {secs:.2} s");
    if secs > 1.0 {
        println!(
            "  slow: if munge is installed, is munged running? (PMIx retries its socket; \
             `munged` or PMIX_MCA_psec=native avoids the wait)"
        );
    }
    // The floor of every ember time: MPI starting 3 ranks, registration and a clean stop.
    let dir = std::env::temp_dir().join(format!("ember-bench-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("empty.txt");
    std::fs::write(&input, b"").expect("empty input");
    let wordcount = std::path::Path::new(env!("CARGO_BIN_EXE_ember")).with_file_name("wordcount");
    let secs = median(
        (0..3)
            .map(|i| {
                let out = dir.join(format!("out-{i}"));
                let args = [
                    "--input",
                    input.to_str().unwrap(),
                    "--output",
                    out.to_str().unwrap(),
                ]
                .map(String::from);
                timed(mpirun(3, wordcount.to_str().unwrap(), &args)).0
            })
            .collect(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "an ember job with nothing to do (mpirun -n 3: MPI start-up, registration, stop): {secs:.2} s"
    );
}

/// Runs `cmd`, returning (seconds, stdout, stderr); panics with its output on failure.
pub fn timed(mut cmd: Command) -> (f64, String, String) {
    let start = Instant::now();
    let out = cmd.output().expect("launch");
    let secs = start.elapsed().as_secs_f64();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "benchmark run failed:\n{so}\n{se}");
    (secs, so, se)
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// The `peak RSS per rank: ...` line a job logs at its end.
pub fn peak_rss_line(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            l.split_once("peak RSS per rank: ")
                .map(|(_, r)| r.to_string())
        })
        .unwrap_or_else(|| "not reported".into())
}

/// The largest executor figure (MiB) of a peak RSS line.
pub fn max_executor_rss_mib(line: &str) -> f64 {
    line.split(", ")
        .filter(|p| p.starts_with("executor"))
        .filter_map(|p| p.split_whitespace().nth(2)?.parse::<f64>().ok())
        .fold(0.0, f64::max)
}

/// A value of `--name V` in the arguments, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub struct Run {
    pub seconds: f64,
    pub max_rss_kib: i64,
    pub stderr: String,
}

/// Runs `cmd` as a whole process: wall seconds from spawn to exit, its peak RSS (the
/// largest of it and its descendants, from `wait4`); panics with its output on failure.
#[allow(clippy::zombie_processes)] // reaped by wait4, not Child::wait
pub fn process(mut cmd: Command) -> Run {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("launch");
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let mut stdout = Vec::new();
    let _ = child.stdout.take().unwrap().read_to_end(&mut stdout);
    let errors = errors.join().unwrap();
    let mut status = 0;
    // SAFETY: plain wait4 on our own child; rusage is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&errors).into_owned(),
    );
    assert!(
        pid == child.id() as libc::pid_t
            && libc::WIFEXITED(status)
            && libc::WEXITSTATUS(status) == 0,
        "benchmark run failed ({cmd:?}):\n{stdout}\n{stderr}"
    );
    Run {
        seconds,
        max_rss_kib: usage.ru_maxrss,
        stderr,
    }
}

/// The sum (MiB) of every rank's figure in a `peak RSS per rank` line.
pub fn rss_sum_mib(line: &str) -> f64 {
    line.split(", ")
        .filter_map(|p| {
            p.strip_suffix(" MiB")?
                .rsplit(' ')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}

/// The `part-*` files of `dir`, in name order.
pub fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
        })
        .collect();
    v.sort();
    v
}

/// Compares two TeraSort output directories record by record and checks the order.
pub fn check_terasort(ember: &Path, baseline: &Path) -> String {
    let open = |dir: &Path| {
        assert!(
            dir.join("_SUCCESS").exists(),
            "no _SUCCESS in {}",
            dir.display()
        );
        let readers: Vec<Box<dyn Read>> = parts(dir)
            .into_iter()
            .map(|p| Box::new(std::fs::File::open(p).unwrap()) as Box<dyn Read>)
            .collect();
        std::io::BufReader::with_capacity(
            1 << 20,
            readers
                .into_iter()
                .fold(Box::new(std::io::empty()) as Box<dyn Read>, |a, b| {
                    Box::new(a.chain(b))
                }),
        )
    };
    let (mut e, mut b) = (open(ember), open(baseline));
    let (mut re, mut rb) = ([0u8; 100], [0u8; 100]);
    let (mut records, mut previous) = (0u64, [0u8; 10]);
    loop {
        let got_e = e.read_exact(&mut re).is_ok();
        let got_b = b.read_exact(&mut rb).is_ok();
        assert_eq!(got_e, got_b, "TeraSort: outputs of different lengths");
        if !got_e {
            break;
        }
        assert!(re == rb, "TeraSort: record {records} differs");
        assert!(
            re[..10] >= previous[..],
            "TeraSort: record {records} out of order"
        );
        previous.copy_from_slice(&re[..10]);
        records += 1;
    }
    format!("{records} records, byte for byte, sorted")
}
