//! Exchanges past 2 GiB under mpirun: MPI displacements are C `int`, so runs far into a
//! large map or reduce file need care. In a file of their own: the big one takes most of
//! the machine for ~45 s and would slow the tests that run beside it in one binary.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{mpirun, run};

fn with_local_dir(mut cmd: Command, dir: &Path) -> Command {
    cmd.env("EMBER_LOCAL_DIR", dir);
    cmd
}

#[test]
fn alltoallv_moves_runs_that_lie_past_2_gib_in_their_files() {
    // Sparse 3 GiB mapped files on every rank: runs sent from 2.5 GiB and received at
    // 2.25 GiB, beyond a C int displacement, mixed with runs near the start.
    let scratch = tempfile::tempdir().unwrap();
    for ranks in [2, 4] {
        let out = run(
            mpirun(
                ranks,
                &common::example("large_offsets"),
                &[scratch.path().to_str().unwrap()],
            ),
            Duration::from_secs(120),
        );
        out.assert_ok();
        assert_eq!(
            out.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
            ranks,
            "{out:#?}"
        );
    }
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn memory_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or(0, |kb| kb << 10)
}

#[test]
fn one_executor_receives_over_2_gib_in_one_shuffle() {
    // 3.44 GB of 16 KiB records repartitioned into one partition: its owner receives the
    // other two executors' 2.29 GB by MPI_Alltoallv into one reduce file (26 rounds of
    // 128 MiB, offsets past 2^31), and the digest matches a sequential one.
    const NEEDED: u64 = 12 << 30;
    let available = memory_available();
    if available < NEEDED {
        common::skip(
            "shuffle over 2 GiB",
            &format!(
                "needs {} GiB of available memory, this machine has {} GiB",
                NEEDED >> 30,
                available >> 30
            ),
        );
        return;
    }
    let scratch = tempfile::tempdir_in("/dev/shm").unwrap();
    let mut cmd = mpirun(
        4,
        &common::example("large_offsets"),
        &["exchange", "210000"],
    );
    cmd.env("EMBER_SHUFFLE_MODE", "alltoallv")
        .env("EMBER_SHUFFLE_ROUND_BYTES", "128m");
    let out = run(
        with_local_dir(cmd, scratch.path()),
        Duration::from_secs(300),
    );
    out.assert_ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("got "))
        .unwrap_or_else(|| panic!("no digest: {out:#?}"));
    let (got, want) = line["got ".len()..].split_once(" want ").unwrap();
    assert_eq!(got, want, "{out:#?}");
    let exchanged = out
        .stderr
        .lines()
        .find(|l| l.contains(" exchanged "))
        .unwrap_or_else(|| panic!("no exchange logged: {out:#?}"));
    common::note(&format!("shuffle over 2 GiB: {}", exchanged.trim()));
    // Each record crosses as repartition's 8-byte key, the 16 KiB vector's length (a
    // 3-byte varint) and its bytes: the codec's raw layout, every byte accounted for.
    let bytes = 210_000 * (8 + 3 + 16_384);
    assert!(bytes > 2u64 << 30);
    assert!(
        exchanged.contains(&format!("exchanged {bytes} bytes")),
        "{exchanged}"
    );
}
