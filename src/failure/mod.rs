//! Failure handling: any error or panic outside a task ends the whole job on every rank, fast.
//!
//! A panic on one MPI rank would otherwise unwind into `MPI_Finalize` while the other ranks
//! wait in a collective forever. So the panic hook (and [`fatal`]) reports the cause with
//! the rank's label and calls `MPI_Abort`, which makes the launcher kill every rank with a
//! non-zero exit. Without MPI (local mode, tests) the process exits with status 1.

use std::io::Write;
use std::sync::Mutex;
use std::sync::Once;

mod guard;

pub(crate) use guard::{OWNER, read_owner};

/// Starts the process that removes this rank's registered directories if it dies without
/// doing so (see `guard`). Call first thing at start-up, before any thread is spawned.
pub fn start_scratch_guard() {
    static ONCE: Once = Once::new();
    ONCE.call_once(guard::start);
}

static HOOK: Once = Once::new();

/// Ends every rank of the job with an exit code; does not return.
pub type AbortFn = fn(i32) -> !;

/// The transport's job-wide abort (`MPI_Abort`) while it is up.
static ABORT: Mutex<Option<AbortFn>> = Mutex::new(None);

/// Sets (or with `None`, clears) the job-wide abort that [`abort_job`] calls: the
/// transport installs `MPI_Abort` while MPI is initialised and not finalised.
pub fn set_abort(abort: Option<AbortFn>) {
    *crate::sync::lock(&ABORT) = abort;
}

/// What a rank writes down before it goes down (the driver's event log ends with it).
pub type LastWords = Box<dyn Fn(&str) + Send + Sync>;

static LAST_WORDS: Mutex<Option<LastWords>> = Mutex::new(None);

/// Sets (or with `None`, clears) what [`fatal`] calls with its message before aborting.
pub fn set_last_words(hook: Option<LastWords>) {
    *crate::sync::lock(&LAST_WORDS) = hook;
}

/// Reports `message` as this rank's failure and ends the job on every rank. Never returns.
///
/// After a termination signal has arrived, a failure is the signal's doing (an executor
/// the launcher stopped fails the driver's next heartbeat), so the signal is named first.
pub fn fatal(message: &str) -> ! {
    let message = match signalled() {
        Some(signal) => format!("{}; then: {message}", signal_message(signal)),
        None => message.to_string(),
    };
    say_once(&message);
    abort_job(1)
}

/// The termination signal that arrived, if any: set by the handler itself, the moment it
/// arrives, before the signal thread wakes.
static SIGNALLED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

fn signalled() -> Option<i32> {
    Some(SIGNALLED.load(std::sync::atomic::Ordering::SeqCst)).filter(|&s| s != 0)
}

/// Whether this rank has said why it goes down; held while it says it.
static SAID: Mutex<bool> = Mutex::new(false);

/// This rank's last words (the event log's end) and its failure line, once per process:
/// a second caller (the signal thread and a failing thread at the same moment) waits for
/// the first to finish, so the process does not exit in the middle of the words, then
/// says nothing. Executors whose job is being stopped stay quiet: whenever mpirun ends a
/// failed job they get SIGTERM, and only the driver's line is news (a process whose role
/// is not known yet says it, rather than dying silently).
fn say_once(message: &str) {
    let quiet = signalled().is_some() && crate::log::current_label().starts_with("executor");
    // Waited for a moment, never for good: a failure inside the hook itself must still
    // end the process.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut said = loop {
        match SAID.try_lock() {
            Ok(said) => break Some(said),
            Err(std::sync::TryLockError::Poisoned(p)) => break Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(std::sync::TryLockError::WouldBlock) => break None,
        }
    };
    match said.as_deref_mut() {
        Some(false) if !quiet => {
            last_words(message);
            report(message);
        }
        _ => tracing::debug!("{message}"),
    }
    if let Some(said) = said.as_deref_mut() {
        *said = true;
    }
}

fn last_words(message: &str) {
    if let Ok(hook) = LAST_WORDS.try_lock()
        && let Some(hook) = hook.as_ref()
    {
        hook(message);
    }
}

/// What a rank says when `signal` stops it.
fn signal_message(signal: i32) -> String {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    let name = match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGUSR1 => "SIGUSR1",
        _ => "a signal",
    };
    let why = if signal == SIGUSR1 {
        "the job's time limit is near (Slurm --signal)"
    } else {
        "a launcher or Slurm ended the job (time limit, scancel or a failed rank)"
    };
    format!(
        "stopped by {name}: {why}; output was not committed and scratch files were removed; a job that writes checkpoints resumes from them when submitted again"
    )
}

fn report(message: &str) {
    let label = crate::log::current_label();
    // One write: ranks share the launcher's stderr, and a line written in pieces can be
    // interleaved with another process's output (mpirun's own abort banner).
    let line = format!("ember: [{label}] failed: {message}\n");
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
}

/// Directories to remove however the process ends (shuffle and cache scratch).
static ON_EXIT: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Registers `path` for removal when the job fails or is signalled.
pub(crate) fn remove_on_exit(path: &std::path::Path) {
    let mut list = ON_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    list.push(path.to_path_buf());
    guard::tell(guard::Tell::Guard, path);
}

/// Unregisters `path` (it was removed normally).
pub(crate) fn forget_on_exit(path: &std::path::Path) {
    let mut list = ON_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    list.retain(|p| p != path);
    guard::tell(guard::Tell::Forget, path);
}

/// Removes every registered directory (best effort: we are going down).
pub(crate) fn remove_scratch() {
    let list = std::mem::take(&mut *ON_EXIT.lock().unwrap_or_else(|p| p.into_inner()));
    for path in list {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// How long an executor's signal thread waits, after removing its scratch, for the
/// driver (signalled alike) to end the job before it exits itself.
const EXECUTOR_SIGNAL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// On SIGTERM, SIGINT or SIGUSR1 (mpirun ending the job, Slurm's time limit, Ctrl-C):
/// remove scratch files, say why, and exit non-zero. Installed once per process.
pub fn install_signal_handlers() {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for signal in [SIGTERM, SIGINT, SIGUSR1] {
            // SAFETY: the action only stores to an atomic, which is async-signal-safe.
            let noted = unsafe {
                signal_hook::low_level::register(signal, move || {
                    SIGNALLED.store(signal, std::sync::atomic::Ordering::SeqCst);
                })
            };
            if let Err(e) = noted {
                tracing::warn!("cannot note signal {signal}: {e}");
            }
        }
        match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGUSR1]) {
            Ok(mut signals) => {
                let spawned = std::thread::Builder::new()
                    .name("ember-signals".into())
                    .spawn(move || {
                        if let Some(signal) = signals.forever().next() {
                            say_once(&signal_message(signal));
                            // After the words: a launcher SIGKILLs a second after its
                            // SIGTERM (OpenMPI), and removing large scratch can take
                            // longer; what a kill leaves, the scratch guard removes.
                            remove_scratch();
                            if crate::log::current_label().starts_with("executor") {
                                // A launcher or Slurm signals every rank at once, and the
                                // driver says why the job stopped: an executor that exited
                                // first would have the launcher kill the driver before it
                                // could (seen under load with a signal during start-up).
                                // Bounded: a signal only this rank got still ends it.
                                std::thread::sleep(EXECUTOR_SIGNAL_GRACE);
                            }
                            std::process::exit(128 + signal);
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!("no signal handler thread: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot handle signals: {e}"),
        }
    });
}

/// Ends every rank: the transport's abort when one is set (MPI is up), else exits this
/// process.
pub fn abort_job(code: i32) -> ! {
    remove_scratch();
    let abort = *crate::sync::lock(&ABORT);
    if let Some(abort) = abort {
        wait_for_launcher_to_read_output(std::time::Duration::from_secs(2));
        abort(code);
    }
    std::process::exit(code)
}

/// Waits, at most `limit`, until whoever reads this process's stdout and stderr pipes (the
/// launcher) has taken everything written to them. MPICH's hydra kills the job as soon as
/// a rank calls `MPI_Abort` and drops what is still unread in the rank's pipes, which
/// would lose the line saying why the job failed. Files and terminals need no wait.
fn wait_for_launcher_to_read_output(limit: std::time::Duration) {
    let start = std::time::Instant::now();
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: fstat and ioctl(FIONREAD) on our own descriptors, into local integers.
        let is_pipe = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
        };
        while is_pipe && start.elapsed() < limit {
            let mut unread: libc::c_int = 0;
            // Linux answers FIONREAD on either end of a pipe: the bytes not yet read.
            if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) } != 0 || unread == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// Installs the panic hook that turns a panic into a job abort (once per process).
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = format!("panicked{location}: {}", payload_text(info.payload()));
            if IN_TASK.with(|t| t.get()) || is_pool_thread() {
                // The task runner catches it, reports it and retries the task.
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
                return;
            }
            fatal(&message);
        }));
    });
}

thread_local! {
    /// Set while this thread runs a task body: its panics are the task's, not the job's.
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The last panic message seen on this thread while it was exempt.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Threads of executor pools: a panic there unwinds into a task (rayon hands it to the
/// joining thread), so it is the task's to report.
fn is_pool_thread() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("ember-exec"))
}

/// Runs a task body; a panic inside becomes `Err("panicked at file:line: message")`.
pub fn catch_task<T>(body: impl FnOnce() -> T) -> Result<T, String> {
    IN_TASK.with(|t| t.set(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    IN_TASK.with(|t| t.set(false));
    outcome.map_err(|payload| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| format!("panicked: {}", payload_text(payload.as_ref())))
    })
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
