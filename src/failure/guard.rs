//! The scratch guard: a small process forked at start-up that removes the rank's scratch
//! and staging directories when the rank dies without removing them itself.
//!
//! A rank removes its directories when it ends, fails or is signalled; a SIGKILLed one
//! (the OOM killer, MPICH's hydra ending a failed job, a launcher's hard kill) cannot.
//! The guard is forked before the rank has other threads or MPI, in a session of its own
//! (a kill of the job's process group misses it), ignoring the termination signals a
//! launcher sends. It reads the rank's registrations from a pipe; the pipe's end of file
//! means the rank is gone, however it went. It then removes what is still registered and
//! still the rank's (a directory with an `_OWNER` naming another process is left alone:
//! a later job may have taken the name), and exits.
//!
//! Without a guard (no fork possible, or other threads already running) directories of a
//! SIGKILLed rank stay until the next job on the node sweeps them.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Inside a scratch or staging directory: `HOST PID` of the process that made it.
pub(crate) const OWNER: &str = "_OWNER";

/// The (host, pid) in `dir/_OWNER`, if it can be read.
pub(crate) fn read_owner(dir: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(dir.join(OWNER)).ok()?;
    let (host, pid) = text.trim().split_once(' ')?;
    Some((host.to_string(), pid.to_string()))
}

/// The write end of the pipe to the guard, while there is one.
static GUARD: Mutex<Option<File>> = Mutex::new(None);

/// What the rank tells its guard about a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tell {
    /// Remove it if I die.
    Guard,
    /// It is gone or published: leave it.
    Forget,
}

/// Forks the guard. Call once, first thing at start-up: a fork is safe only while this
/// process runs a single thread, so with more it does nothing (and says so at debug level).
pub(crate) fn start() {
    if threads() != Some(1) {
        tracing::debug!("no scratch guard: other threads run already");
        return;
    }
    let mut ends: [RawFd; 2] = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        tracing::warn!(
            "no scratch guard: pipe: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let rank = std::process::id();
    // SAFETY: this process runs one thread (checked above), so the child may do anything.
    match unsafe { libc::fork() } {
        -1 => {
            tracing::warn!(
                "no scratch guard: fork: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: our own descriptors, closed once.
            unsafe {
                libc::close(ends[0]);
                libc::close(ends[1]);
            }
        }
        0 => {
            // SAFETY: the write end is the parent's; the child closes its copy.
            unsafe { libc::close(ends[1]) };
            guard(ends[0], rank)
        }
        _ => {
            // SAFETY: the read end is the child's; the write end is ours from now on,
            // non-blocking: a guard that stops reading (stopped, stuck) must not stop the
            // rank; a full pipe counts as a guard gone.
            unsafe {
                libc::close(ends[0]);
                libc::fcntl(ends[1], libc::F_SETFL, libc::O_NONBLOCK);
            }
            let pipe = unsafe { File::from_raw_fd(ends[1]) };
            *crate::sync::lock(&GUARD) = Some(pipe);
        }
    }
}

/// Tells the guard (if there is one) to guard or forget `path`. A guard that is gone (or
/// has a full pipe) is not an error: the rank cleans up as before, and a directory whose
/// message did not go whole is left to the next job's sweep.
pub(crate) fn tell(what: Tell, path: &Path) {
    let mut guard = crate::sync::lock(&GUARD);
    if let Some(pipe) = guard.as_mut()
        && pipe.write_all(&record(what, path)).is_err()
    {
        tracing::debug!("the scratch guard is gone or not reading: no more messages to it");
        // Kept open, never written again: closing it would tell a guard still alive that
        // the rank is gone, and it would remove directories the rank still uses.
        std::mem::forget(guard.take());
    }
}

/// The number of threads of this process, from /proc.
fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// One message on the pipe: `+` or `-`, the path's bytes, NUL (no path holds one).
fn record(what: Tell, path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(if what == Tell::Guard { b'+' } else { b'-' });
    out.extend_from_slice(bytes);
    out.push(0);
    out
}

/// The directories still guarded after the messages whole in `buf` (which keeps an
/// unfinished last one for the next read).
#[derive(Debug, Default)]
struct Guarded {
    paths: Vec<PathBuf>,
}

impl Guarded {
    fn take_messages(&mut self, buf: &mut Vec<u8>) {
        use std::os::unix::ffi::OsStrExt;
        let mut used = 0;
        while let Some(len) = buf[used..].iter().position(|&b| b == 0) {
            let message = &buf[used..used + len];
            used += len + 1;
            let Some((&op, path)) = message.split_first() else {
                continue;
            };
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(path));
            self.paths.retain(|p| *p != path);
            if op == b'+' {
                self.paths.push(path);
            }
        }
        buf.drain(..used);
    }

    /// Removes the guarded directories that are still `rank`'s (or name no owner yet).
    fn remove(&self, host: &str, rank: &str) {
        for path in &self.paths {
            let theirs = read_owner(path).is_some_and(|(h, p)| h != host || p != rank);
            if !theirs {
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }
}

/// The guard process: detaches, reads the rank's messages until the rank is gone, removes
/// what is left, exits. Never returns.
fn guard(pipe: RawFd, rank: u32) -> ! {
    detach(pipe);
    // SAFETY: the read end, ours alone now.
    let mut pipe = unsafe { File::from_raw_fd(pipe) };
    let mut guarded = Guarded::default();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                guarded.take_messages(&mut buf);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    guarded.remove(&crate::topology::host_name(), &rank.to_string());
    // SAFETY: ends the guard without running the forked copy of the rank's exit handlers.
    unsafe { libc::_exit(0) }
}

/// Leaves the rank's session and signals, and every descriptor but `keep`: the guard must
/// outlive a kill of the job's process group, and must not hold the launcher's pipes
/// open (a launcher waits for their end of file).
fn detach(keep: RawFd) {
    // SAFETY: plain system calls on this process's own state.
    unsafe {
        libc::setsid();
        for signal in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGPIPE,
        ] {
            libc::signal(signal, libc::SIG_IGN);
        }
        libc::prctl(libc::PR_SET_NAME, c"ember-guard".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
    }
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in open.into_iter().filter(|&fd| fd > 2 && fd != keep) {
        // SAFETY: closing descriptors inherited from the rank; none is used here.
        unsafe { libc::close(fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_guard_and_forget_paths_across_reads() {
        let mut guarded = Guarded::default();
        let mut buf = Vec::new();
        for (what, path) in [
            (Tell::Guard, "/s/ember-a-1"),
            (Tell::Guard, "/s/out/_staging"),
            (Tell::Forget, "/s/ember-a-1"),
            (Tell::Guard, "/s/dir with spaces\n"),
        ] {
            buf.extend(record(what, Path::new(path)));
        }
        // Cut inside the last message: it waits for the rest.
        let rest = buf.split_off(buf.len() - 4);
        guarded.take_messages(&mut buf);
        assert_eq!(guarded.paths, [PathBuf::from("/s/out/_staging")]);
        buf.extend(rest);
        guarded.take_messages(&mut buf);
        assert!(buf.is_empty());
        assert_eq!(
            guarded.paths,
            [
                PathBuf::from("/s/out/_staging"),
                PathBuf::from("/s/dir with spaces\n")
            ]
        );
    }

    #[test]
    fn only_the_rank_s_own_directories_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let host = crate::topology::host_name();
        let mine = root.path().join("mine");
        let unnamed = root.path().join("unnamed");
        let taken = root.path().join("taken");
        for dir in [&mine, &unnamed, &taken] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("part"), b"x").unwrap();
        }
        std::fs::write(mine.join(OWNER), format!("{host} 41\n")).unwrap();
        std::fs::write(taken.join(OWNER), format!("{host} 42\n")).unwrap();
        let guarded = Guarded {
            paths: vec![mine.clone(), unnamed.clone(), taken.clone()],
        };
        guarded.remove(&host, "41");
        assert!(!mine.exists());
        assert!(!unnamed.exists());
        assert!(taken.join("part").exists(), "another process's directory");
    }
}
