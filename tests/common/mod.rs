//! Shared helpers of the integration tests: launch binaries under real `mpirun` with a timeout.
#![allow(dead_code)]

pub mod reference;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// What a finished (or timed-out) launch printed.
#[derive(Debug)]
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status == Some(0) && !self.timed_out
    }

    /// Panics with everything the run printed unless it succeeded.
    pub fn assert_ok(&self) -> &Self {
        assert!(self.success(), "run failed: {self:#?}");
        self
    }
}

/// `mpirun` with the flags every test needs: root allowed, oversubscription on the 2-core
/// machine, binding left to ember.
pub fn mpirun(ranks: usize, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args([
        "-n",
        &ranks.to_string(),
        "--oversubscribe",
        "--bind-to",
        "none",
    ])
    .arg(program)
    .args(args);
    mpi_env(&mut cmd);
    cmd
}

/// The environment OpenMPI needs to run as root inside the test machine.
pub fn mpi_env(cmd: &mut Command) {
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
}

/// Path of a binary of this package.
pub fn bin(name: &str) -> String {
    match name {
        "ember" => env!("CARGO_BIN_EXE_ember").to_string(),
        "wordcount" => env!("CARGO_BIN_EXE_wordcount").to_string(),
        "terasort" => env!("CARGO_BIN_EXE_terasort").to_string(),
        "pagerank" => env!("CARGO_BIN_EXE_pagerank").to_string(),
        "kmeans" => env!("CARGO_BIN_EXE_kmeans").to_string(),
        other => panic!("unknown binary {other}"),
    }
}

/// Starts `cmd` in its own process group with piped output.
pub fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .process_group(0);
    cmd.spawn().expect("launch command")
}

/// Path of an example built by `cargo test` (next to the binaries).
pub fn example(name: &str) -> String {
    let ember = std::path::PathBuf::from(bin("ember"));
    ember
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Lines `name = value` a test program printed.
pub fn named_values(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Kills the whole process group of `child` (mpirun and its ranks).
pub fn kill_group(child: &Child) {
    // SAFETY: plain syscall on a process group we created.
    unsafe {
        libc::killpg(child.id() as i32, libc::SIGKILL);
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

/// Runs `cmd` to the end, killing it (and every rank) after `timeout`.
pub fn run(cmd: Command, timeout: Duration) -> Run {
    let mut child = spawn(cmd);
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    wait(child, out, err, timeout)
}

/// Waits for a child whose output is being drained, killing it after `timeout`.
pub fn wait(
    mut child: Child,
    out: thread::JoinHandle<String>,
    err: thread::JoinHandle<String>,
    timeout: Duration,
) -> Run {
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status.code();
        }
        if start.elapsed() > timeout {
            timed_out = true;
            kill_group(&child);
            break child.wait().ok().and_then(|s| s.code());
        }
        thread::sleep(Duration::from_millis(20));
    };
    kill_group(&child); // stray ranks, if any
    Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
        timed_out,
    }
}

/// Spawns `cmd` and streams its stdout lines through a channel (stderr is collected).
pub fn spawn_streaming(
    cmd: Command,
) -> (
    Child,
    mpsc::Receiver<String>,
    thread::JoinHandle<String>,
    thread::JoinHandle<String>,
) {
    let mut child = spawn(cmd);
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let out = thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let err = drain(child.stderr.take());
    (child, rx, out, err)
}

/// Rows of an executor table printed by `ember info`: (id, pid, cores, threads).
pub fn executor_rows(stdout: &str) -> Vec<ExecutorRow> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("executor "))
        .skip(1)
        .take_while(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(ExecutorRow::parse)
        .collect()
}

#[derive(Debug, Clone)]
pub struct ExecutorRow {
    pub id: usize,
    pub in_process: bool,
    pub host: String,
    pub pid: u32,
    pub numa: u32,
    pub cores: Option<Vec<u32>>,
    pub threads: usize,
}

impl ExecutorRow {
    fn parse(line: &str) -> ExecutorRow {
        let mut f: Vec<&str> = line.split_whitespace().collect();
        let in_process = f.get(1) == Some(&"(local)");
        if in_process {
            f.remove(1);
        }
        let num = |i: usize| {
            f[i].parse::<u64>()
                .unwrap_or_else(|_| panic!("bad row {line:?}"))
        };
        ExecutorRow {
            id: num(0) as usize,
            in_process,
            host: f[1].to_string(),
            pid: num(2) as u32,
            numa: num(4) as u32,
            cores: (f[5] != "unpinned")
                .then(|| f[5].split(',').map(|c| c.parse().unwrap()).collect()),
            threads: num(6) as usize,
        }
    }
}
