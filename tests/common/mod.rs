//! Shared helpers of the integration tests: launch binaries under real `mpirun` with a timeout.
#![allow(dead_code)]

pub mod netns;
pub mod reference;
pub mod template;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub use ember::transport::library::{self, MpiFamily};

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

/// The MPI implementation the tests launch with: `EMBER_MPI` (`openmpi`, `mpich`; set by
/// `make test`), which must be the one the binaries are linked against (a rank started by
/// another implementation's launcher would come up alone); unset, the linked one.
pub fn mpi_family() -> MpiFamily {
    static FAMILY: std::sync::OnceLock<MpiFamily> = std::sync::OnceLock::new();
    *FAMILY.get_or_init(|| {
        let version = library::library_version();
        let linked = MpiFamily::of_version(&version);
        match std::env::var("EMBER_MPI").ok().filter(|v| !v.is_empty()) {
            Some(name) => {
                let want = MpiFamily::parse(&name)
                    .unwrap_or_else(|| panic!("EMBER_MPI={name}: one of openmpi, mpich"));
                assert!(
                    linked.is_none() || linked == Some(want),
                    "EMBER_MPI={name} but the tests are linked against {version:?}: build \
                     each MPI in its own CARGO_TARGET_DIR (mpi-sys does not rebuild when \
                     MPICC or MPI_PKG_CONFIG changes)"
                );
                want
            }
            None => linked.unwrap_or(MpiFamily::OpenMpi),
        }
    })
}

/// The launcher of [`mpi_family`]: `EMBER_MPIEXEC` if set, else `mpirun` (Open MPI) or
/// `mpiexec.mpich` (Debian's MPICH).
pub fn launcher() -> String {
    std::env::var("EMBER_MPIEXEC")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            match mpi_family() {
                MpiFamily::OpenMpi => "mpirun",
                MpiFamily::Mpich => "mpiexec.mpich",
            }
            .to_string()
        })
}

/// The launcher with the flags every test needs. Open MPI: root allowed, oversubscription on
/// the 2-core machine, binding left to ember. MPICH's hydra needs none of these (it runs as
/// root, oversubscribes and does not bind unless told to). Both pass the launcher's whole
/// environment to the ranks, so `cmd.env(...)` reaches them.
pub fn mpirun(ranks: usize, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(launcher());
    cmd.args(["-n", &ranks.to_string()]);
    if mpi_family() == MpiFamily::OpenMpi {
        cmd.args(["--oversubscribe", "--bind-to", "none"]);
    }
    cmd.arg(program).args(args);
    mpi_env(&mut cmd);
    cmd
}

/// The environment OpenMPI needs to run as root inside the test machine (ignored by MPICH),
/// and the jobs' event logs kept under `target/` rather than in the project directory.
pub fn mpi_env(cmd: &mut Command) {
    cmd.env("EMBER_EVENT_LOG", test_event_logs())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
}

/// Where the tests' jobs write their event logs.
pub fn test_event_logs() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-event-logs")
}

/// The world rank a launcher gave a process, from its environment (`name=value` entries):
/// `OMPI_COMM_WORLD_RANK` (Open MPI) or `PMI_RANK` (MPICH's hydra).
pub fn rank_in_environ<'a>(vars: impl IntoIterator<Item = &'a [u8]>) -> Option<usize> {
    let mut pmi = None;
    for v in vars {
        let Ok(v) = std::str::from_utf8(v) else {
            continue;
        };
        if let Some(r) = v.strip_prefix("OMPI_COMM_WORLD_RANK=") {
            return r.parse().ok();
        }
        if let Some(r) = v.strip_prefix("PMI_RANK=") {
            pmi = r.parse().ok();
        }
    }
    pmi
}

/// Path of a binary of this package.
pub fn bin(name: &str) -> String {
    match name {
        "ember" => env!("CARGO_BIN_EXE_ember").to_string(),
        "wordcount" => env!("CARGO_BIN_EXE_wordcount").to_string(),
        "terasort" => env!("CARGO_BIN_EXE_terasort").to_string(),
        "pagerank" => env!("CARGO_BIN_EXE_pagerank").to_string(),
        "kmeans" => env!("CARGO_BIN_EXE_kmeans").to_string(),
        "groupby" => env!("CARGO_BIN_EXE_groupby").to_string(),
        "join" => env!("CARGO_BIN_EXE_join").to_string(),
        other => panic!("unknown binary {other}"),
    }
}

/// Starts `cmd` in its own process group with piped output. A job's event log goes under
/// `target/` (as [`mpi_env`] sets) unless the command chose or removed `EMBER_EVENT_LOG`:
/// a test's job must not write into the checkout's `./ember-events`.
pub fn spawn(mut cmd: Command) -> Child {
    if !cmd.get_envs().any(|(k, _)| k == "EMBER_EVENT_LOG") {
        cmd.env("EMBER_EVENT_LOG", test_event_logs());
    }
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

/// Collects everything `r` yields on a thread (for [`wait`]).
pub fn drain_output<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    drain(r)
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

/// The file where skipped suites are listed, one `suite: reason` line each; `make test`
/// clears it first and prints it as one summary line at the end.
pub fn skipped_file() -> std::path::PathBuf {
    std::env::var_os("EMBER_SKIPPED_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ember-skipped.txt")
        })
}

/// Records that `suite` was skipped under this MPI ([`mpi_family`]) and why: on stderr (written past the test harness's
/// capture, so CI shows it) and as one line in [`skipped_file`].
pub fn skip(suite: &str, reason: &str) {
    use std::io::Write;
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = format!("{suite} [{}]: {reason}", mpi_family().name());
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {line}");
    let path = skipped_file();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot record the skip in {}: {e}", path.display()));
    writeln!(file, "{line}").expect("record the skip");
}

/// Marks `cmd` so that [`rank_pids`] finds the processes it starts (both launchers pass
/// their environment to every rank they start on this node).
pub fn tag(cmd: &mut Command) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tag = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    cmd.env("EMBER_TEST_TAG", &tag);
    tag
}

/// Pids of the running ranks of the job marked with `tag`, by `OMPI_COMM_WORLD_RANK` or
/// `PMI_RANK` (read from /proc, independently of ember).
pub fn rank_pids(tag: &str) -> std::collections::BTreeMap<usize, u32> {
    let want = format!("EMBER_TEST_TAG={tag}");
    let mut pids = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
        if !vars.contains(&want.as_bytes()) {
            continue;
        }
        let rank = rank_in_environ(vars.iter().copied());
        // A rank's scratch guard is a fork of it, with the same environment.
        if let Some(rank) = rank.filter(|_| !is_scratch_guard(pid)) {
            pids.insert(rank, pid);
        }
    }
    pids
}

/// Whether `pid` is a rank's scratch guard (the process that removes a SIGKILLed rank's
/// scratch directories).
pub fn is_scratch_guard(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "ember-guard")
}

/// The scratch guard of rank process `pid`, if it has one.
pub fn scratch_guard_of(pid: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .find(|&child| {
            is_scratch_guard(child)
                && std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                    // Field 4 of proc(5), after the command name: the parent's pid.
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                        == Some(&pid.to_string())
                })
        })
}

/// CPU seconds (user + system) `pid` has used so far, from /proc/<pid>/stat; `None` once
/// it has exited.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 and 15 of proc(5) (utime, stime), counted after the command name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: plain sysconf query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks as f64 / hz)
}

/// Prints `line` on stderr past the test harness's capture (a measurement CI should show).
pub fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Seconds every thread of `pid` has run on a CPU and waited runnable in a run queue,
/// summed (from /proc/<pid>/task/*/schedstat); `None` once it has exited or where the
/// kernel keeps no such statistics. A thread that polls without sleeping is runnable all
/// the time, whether or not a busy machine lets it run.
pub fn runnable_seconds(pid: u32) -> Option<(f64, f64)> {
    let mut sums = (0u64, 0u64);
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let mut f = text
            .split_whitespace()
            .map(|x| x.parse::<u64>().unwrap_or(0));
        sums.0 += f.next()?;
        sums.1 += f.next()?;
    }
    Some((sums.0 as f64 / 1e9, sums.1 as f64 / 1e9))
}
