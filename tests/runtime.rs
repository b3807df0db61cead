//! The runtime under real mpirun: roles, registration, pinning, failures, an idle driver.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::{ExecutorRow, bin, executor_rows, mpirun, run};

const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn without_mpirun_a_job_runs_in_local_mode() {
    let out = run(
        {
            let mut c = Command::new(bin("ember"));
            c.arg("info");
            c
        },
        LAUNCH_TIMEOUT,
    );
    out.assert_ok();
    assert!(out.stdout.contains("mode: Local, 2 rank(s)"), "{out:#?}");
    let rows = executor_rows(&out.stdout);
    assert_eq!(rows.len(), 1, "{out:#?}");
    assert!(rows[0].in_process && rows[0].id == 1);
    assert!(rows[0].threads >= 1);
}

#[test]
fn mpirun_with_one_rank_is_local_mode() {
    let out = run(mpirun(1, &bin("ember"), &["info"]), LAUNCH_TIMEOUT);
    out.assert_ok();
    let rows = executor_rows(&out.stdout);
    assert_eq!(rows.len(), 1, "{out:#?}");
    assert!(rows[0].in_process);
}

fn check_cluster(ranks: usize) {
    let out = run(mpirun(ranks, &bin("ember"), &["info"]), LAUNCH_TIMEOUT);
    out.assert_ok();
    assert!(
        out.stdout
            .contains(&format!("mode: Cluster, {ranks} rank(s)")),
        "{out:#?}"
    );
    // Only the driver prints: exactly one table.
    assert_eq!(out.stdout.matches("executor  host").count(), 1, "{out:#?}");
    let rows = executor_rows(&out.stdout);
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        (1..ranks).collect::<Vec<_>>()
    );
    let pids: HashSet<u32> = rows.iter().map(|r| r.pid).collect();
    assert_eq!(
        pids.len(),
        ranks - 1,
        "every executor is its own process: {rows:?}"
    );
    for r in &rows {
        assert!(
            !r.in_process && r.threads >= 1 && !r.host.is_empty(),
            "{r:?}"
        );
        assert!(
            r.cores.as_ref().is_some_and(|c| !c.is_empty()),
            "not pinned: {r:?}"
        );
        // Each executor announces itself with its role and rank.
        assert!(
            out.stderr
                .contains(&format!("[executor {}] executor {} on", r.id, r.id)),
            "{out:#?}"
        );
    }
    assert!(
        out.stderr
            .contains(&format!("[driver 0] {} executor(s)", ranks - 1)),
        "{out:#?}"
    );
}

#[test]
fn two_ranks_register_one_executor() {
    check_cluster(2);
}

#[test]
fn four_ranks_register_three_executors() {
    check_cluster(4);
}

/// CPUs a thread may run on, from /proc (the kernel's view, not ember's).
/// Reads the job's output until the driver has printed the table of `executors`
/// executors (30 s at most per line) and returns its rows.
fn await_table(lines: &std::sync::mpsc::Receiver<String>, executors: usize) -> Vec<ExecutorRow> {
    let mut table = String::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) {
        table.push_str(&line);
        table.push('\n');
        if executor_rows(&table).len() == executors {
            break;
        }
    }
    let rows = executor_rows(&table);
    assert_eq!(rows.len(), executors, "no table: {table}");
    rows
}

fn allowed_cpus(pid: u32, tid: &str) -> Vec<u32> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim()
        .to_string();
    list.split(',')
        .filter(|s| !s.is_empty())
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().unwrap()..=b.parse().unwrap()).collect::<Vec<_>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

#[test]
fn executor_worker_threads_are_pinned_to_their_cores() {
    let (child, lines, out, err) = common::spawn_streaming(mpirun(
        3,
        &bin("ember"),
        &["debug", "busy", "--seconds", "4"],
    ));
    // The table is printed before the executors finish their work.
    let rows = await_table(&lines, 2);
    std::thread::sleep(Duration::from_millis(300));
    for row in &rows {
        let cores = row.cores.clone().expect("pinned");
        let tasks = std::fs::read_dir(format!("/proc/{}/task", row.pid)).expect("executor alive");
        let mut workers = 0;
        for task in tasks.flatten() {
            let tid = task.file_name().to_string_lossy().to_string();
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim().starts_with(&format!("ember-exec{}-", row.id)) {
                workers += 1;
                let allowed = allowed_cpus(row.pid, &tid);
                assert_eq!(
                    allowed.len(),
                    1,
                    "worker {comm} of executor {} may run on {allowed:?}",
                    row.id
                );
                assert!(
                    cores.contains(&allowed[0]),
                    "worker on {allowed:?}, table says {cores:?}"
                );
            }
        }
        assert_eq!(workers, row.threads, "executor {}: pool threads", row.id);
    }
    let done = common::wait(child, out, err, LAUNCH_TIMEOUT);
    done.assert_ok();
}

/// WordCount lines for a job of several seconds with two executors on this machine (12 M:
/// the driver measured over 6.6-7.3 s; 2.5 M gave only 2.2-2.5 s once the engine got
/// faster, near the test's 2 s floor, which a faster machine would go under).
const BUSY_LINES: &str = "12000000";

#[test]
fn the_driver_does_not_spin_while_executors_run_a_real_job() {
    // The driver (rank 0) measured by the kernel, not by ember, while two executors run
    // WordCount: its CPU time (/proc/<pid>/stat) and the time its threads were runnable,
    // on a CPU or queued for one (/proc/<pid>/task/*/schedstat). A driver that polls
    // without sleeping is runnable all the time; on a busy machine the scheduler may
    // still give it little CPU, so the CPU share alone would not catch it there.
    // The counts go to files the executors write: collected to the driver they would be
    // the driver's own work (decoding and sorting every word) inside the measured window.
    let scratch = tempfile::tempdir().unwrap();
    let output = scratch.path().join("counts");
    let mut cmd = mpirun(
        3,
        &bin("wordcount"),
        &[
            "--generate-lines",
            BUSY_LINES,
            "--output",
            output.to_str().unwrap(),
        ],
    );
    cmd.env("EMBER_LOCAL_DIR", scratch.path());
    let tag = common::tag(&mut cmd);
    let mut child = common::spawn(cmd);
    let out = common::drain_output(child.stdout.take());
    let err = common::drain_output(child.stderr.take());
    let started = std::time::Instant::now();
    let driver = loop {
        if let Some(&pid) = common::rank_pids(&tag).get(&0) {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20) && child.try_wait().unwrap().is_none(),
            "rank 0 never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Past MPI start-up and registration.
    std::thread::sleep(Duration::from_millis(1500));
    let sample = || {
        Some((
            std::time::Instant::now(),
            common::cpu_seconds(driver)?,
            common::runnable_seconds(driver),
        ))
    };
    let first = sample().expect("driver alive after start-up");
    let mut last = first;
    while let Some(s) = sample() {
        last = s;
        if started.elapsed() > LAUNCH_TIMEOUT {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let done = common::wait(child, out, err, LAUNCH_TIMEOUT);
    done.assert_ok();
    let wall = (last.0 - first.0).as_secs_f64();
    let cpu = 100.0 * (last.1 - first.1) / wall;
    let runnable = match (first.2, last.2) {
        (Some((c0, q0)), Some((c1, q1))) => Some(100.0 * (c1 - c0 + q1 - q0) / wall),
        _ => None,
    };
    let line = format!(
        "driver during {wall:.2} s of the job: cpu {cpu:.2}%, runnable {}",
        runnable.map_or("unknown (no schedstat)".into(), |r| format!("{r:.2}%"))
    );
    common::note(&line);
    assert!(
        wall >= 2.0,
        "the job was too short to measure the driver ({line}): raise BUSY_LINES"
    );
    // A polling driver is runnable ~100% of the time; one that sleeps between polls only
    // while it works or waits for a core after waking (~40% measured on this 2-core
    // machine under a load of 6, ~1% CPU).
    assert!(cpu < 5.0, "the driver burns CPU while it waits: {line}");
    if let Some(r) = runnable {
        assert!(r < 80.0, "the driver polls without sleeping: {line}");
    }
}

fn check_failure(ranks: usize, rank: usize, how: &str, expect: &str) {
    let out = run(
        mpirun(
            ranks,
            &bin("ember"),
            &["debug", "fail", "--rank", &rank.to_string(), "--how", how],
        ),
        Duration::from_secs(30),
    );
    assert!(!out.timed_out, "job hung: {out:#?}");
    assert_ne!(out.status, Some(0), "{out:#?}");
    assert!(
        out.elapsed < Duration::from_secs(10),
        "took {:?}",
        out.elapsed
    );
    let role = if rank == 0 {
        "driver 0".to_string()
    } else {
        format!("executor {rank}")
    };
    let line = format!("ember: [{role}] failed:");
    assert!(
        out.stderr.contains(&line) && out.stderr.contains(expect),
        "{out:#?}"
    );
}

#[test]
fn a_panicking_executor_ends_the_job() {
    check_failure(4, 2, "panic", "injected panic on rank 2");
}

#[test]
fn an_error_on_the_driver_ends_the_job() {
    check_failure(4, 0, "error", "injected error on rank 0");
}

#[test]
fn an_error_on_an_executor_ends_a_two_rank_job() {
    check_failure(2, 1, "error", "injected error on rank 1");
}

#[test]
fn a_killed_executor_does_not_hang_the_job() {
    // A SIGKILLed rank cannot clean up: keep its scratch directory out of /dev/shm.
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = mpirun(4, &bin("ember"), &["debug", "busy", "--seconds", "60"]);
    cmd.env("EMBER_LOCAL_DIR", scratch.path());
    let (child, lines, out, err) = common::spawn_streaming(cmd);
    let rows = await_table(&lines, 3);
    // SAFETY: signalling a pid we just read from our own job's table.
    unsafe {
        libc::kill(rows[1].pid as i32, libc::SIGKILL);
    }
    let done = common::wait(child, out, err, Duration::from_secs(30));
    assert!(!done.timed_out, "job hung after SIGKILL: {done:#?}");
    assert_ne!(done.status, Some(0));
    assert!(
        done.elapsed < Duration::from_secs(10),
        "took {:?}",
        done.elapsed
    );
}

/// `ember-*` scratch directories under `dir`.
fn scratch_dirs(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ember-"))
        .collect()
}

/// SIGKILLs `pid`, and first its scratch guard when `guard_too`.
fn sigkill(pid: u32, guard_too: bool) {
    let guard = common::scratch_guard_of(pid);
    assert!(guard.is_some(), "rank {pid} has no scratch guard");
    let victims = guard.filter(|_| guard_too).into_iter().chain([pid]);
    for victim in victims {
        // SAFETY: signalling a process of our own job, found by its tag.
        unsafe {
            libc::kill(victim as i32, libc::SIGKILL);
        }
    }
}

/// A busy 3-rank job (scratch in `scratch`, `env` set) once its executors are registered:
/// the launcher, its output readers and rank `victim`'s pid.
fn busy_job(
    scratch: &std::path::Path,
    env: &[(&str, &str)],
    victim: usize,
) -> (
    std::process::Child,
    std::thread::JoinHandle<String>,
    std::thread::JoinHandle<String>,
    u32,
) {
    let mut cmd = mpirun(3, &bin("ember"), &["debug", "busy", "--seconds", "60"]);
    cmd.env("EMBER_LOCAL_DIR", scratch)
        .envs(env.iter().copied());
    let tag = common::tag(&mut cmd);
    let (child, lines, out, err) = common::spawn_streaming(cmd);
    await_table(&lines, 2);
    let pids = common::rank_pids(&tag);
    let pid = *pids
        .get(&victim)
        .unwrap_or_else(|| panic!("rank {victim}: {pids:?}"));
    (child, out, err, pid)
}

/// Runs a busy 3-rank job with scratch in `scratch`, SIGKILLs rank `victim` (and its
/// guard when `guard_too`) once the executors are registered, and waits for the job's end.
fn kill_a_rank(scratch: &std::path::Path, victim: usize, guard_too: bool) {
    let (child, out, err, pid) = busy_job(scratch, &[], victim);
    sigkill(pid, guard_too);
    let done = common::wait(child, out, err, Duration::from_secs(30));
    assert!(
        !done.timed_out,
        "job hung after SIGKILL of rank {victim}: {done:#?}"
    );
    assert_ne!(done.status, Some(0));
}

#[test]
fn a_sigkilled_rank_s_guard_removes_its_scratch() {
    // A SIGKILLed rank cannot clean up; its scratch guard (a process forked at start-up)
    // sees it gone and removes its directories, with no later job needed.
    for victim in [1usize, 0] {
        let scratch = tempfile::tempdir().unwrap();
        kill_a_rank(scratch.path(), victim, false);
        let started = std::time::Instant::now();
        while !scratch_dirs(scratch.path()).is_empty()
            && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            scratch_dirs(scratch.path()),
            Vec::<String>::new(),
            "rank {victim} SIGKILLed"
        );
    }
}

#[test]
fn the_next_job_removes_what_a_sigkilled_rank_left() {
    // SIGKILL an executor, then (in a second job) the driver, each with its scratch guard
    // first: nobody can clean up. The next job on the node removes their scratch
    // directories, and its own at its end.
    let scratch = tempfile::tempdir().unwrap();
    for victim in [1usize, 0] {
        kill_a_rank(scratch.path(), victim, true);
        if victim == 1 {
            // (The next job, started below, sweeps it at its start.)
            assert!(
                !scratch_dirs(scratch.path()).is_empty(),
                "a SIGKILLed executor leaves its scratch (else this test checks nothing)"
            );
        }
    }
    let mut cmd = mpirun(3, &bin("ember"), &["info"]);
    cmd.env("EMBER_LOCAL_DIR", scratch.path());
    run(cmd, Duration::from_secs(60)).assert_ok();
    assert_eq!(scratch_dirs(scratch.path()), Vec::<String>::new());
}

#[test]
fn a_signal_during_start_up_is_reported_by_the_driver() {
    // Slurm's time-limit signal can come before MPI is up: the ranks know their roles from
    // the launcher by then, so the driver still says why the job stopped. The driver
    // starts half a second after the executors, as it can on a loaded node: executors that
    // exited on the signal at once had the launcher kill the driver before it could say
    // why (3 runs in 4).
    let scratch = tempfile::tempdir().unwrap();
    let script = format!(
        "[ \"${{OMPI_COMM_WORLD_RANK:-$PMI_RANK}}\" = 0 ] && sleep 0.5; exec {} debug busy --seconds 60",
        bin("ember")
    );
    let mut cmd = mpirun(3, "sh", &["-c", &script]);
    cmd.env("EMBER_LOCAL_DIR", scratch.path())
        .env("EMBER_TEST_SIGNAL_AT_START", "1");
    let done = run(cmd, Duration::from_secs(40));
    assert!(!done.timed_out, "{done:#?}");
    assert_ne!(done.status, Some(0), "{done:#?}");
    let line = "ember: [driver 0] failed: stopped by SIGUSR1: the job's time limit is near";
    assert_eq!(done.stderr.matches(line).count(), 1, "{done:#?}");
    assert!(!done.stderr.contains("[executor"), "{done:#?}");
}

#[test]
fn a_stopped_rank_ends_the_job_on_the_heartbeat_timeout() {
    // SIGSTOP neither exits nor closes a socket: only heartbeats notice. A stopped
    // executor is named by the driver; a stopped driver by the executors, which end the
    // job themselves (what must happen where no launcher kills them for it).
    for (victim, named) in [
        (2usize, "executor 2 on"),
        (0, "the driver (rank 0) sent no heartbeat"),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let heartbeat = [("EMBER_HEARTBEAT_TIMEOUT", "2s")];
        let (child, out, err, pid) = busy_job(scratch.path(), &heartbeat, victim);
        let stopped = std::time::Instant::now();
        // SAFETY: signalling a rank of our own job, found by its tag.
        unsafe {
            libc::kill(pid as i32, libc::SIGSTOP);
        }
        let done = common::wait(child, out, err, Duration::from_secs(40));
        let took = stopped.elapsed();
        // SAFETY: as above; the rank may already be gone.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        assert!(
            !done.timed_out,
            "job hung with rank {victim} stopped: {done:#?}"
        );
        assert_ne!(done.status, Some(0));
        assert!(
            done.stderr.contains(named) && done.stderr.contains("--heartbeat-timeout 2s"),
            "{done:#?}"
        );
        assert!(
            took < Duration::from_secs(12),
            "took {took:?} after SIGSTOP"
        );
    }
}

#[test]
fn a_panic_in_an_in_process_executors_serve_loop_ends_the_job() {
    // Not a task's panic (those are retried): the loop that answers the driver is gone,
    // so the driver would wait for it forever. Local mode, then under mpirun.
    let mut local = Command::new(bin("wordcount"));
    local.args(["--generate-lines", "1000"]);
    let mut cluster = mpirun(3, &bin("wordcount"), &["--generate-lines", "1000"]);
    cluster.env("EMBER_TEST_SERVE_PANIC", "1");
    local.env("EMBER_TEST_SERVE_PANIC", "1");
    for cmd in [local, cluster] {
        let out = run(cmd, Duration::from_secs(30));
        assert!(!out.timed_out, "job hung: {out:#?}");
        assert_ne!(out.status, Some(0), "{out:#?}");
        assert!(
            out.stderr.contains("[executor 1] failed: panicked at")
                && out
                    .stderr
                    .contains("injected panic in the serve loop of executor 1"),
            "{out:#?}"
        );
    }
}
