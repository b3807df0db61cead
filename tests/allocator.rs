//! An executor's budget and the allocator's hold on freed memory, in a test process of its
//! own: the purge delay and the resident set are the whole process's, so no other test
//! may allocate beside this one.

#![cfg(feature = "mimalloc")]

use ember::memory::MemoryManager;

const MIB: u64 = 1 << 20;

/// The process's resident set, from `/proc/self/statm` (pages of 4 KiB).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's resident field");
    pages * 4096
}

#[test]
fn freed_memory_stays_resident_while_the_budget_has_room_and_goes_back_once_pressed() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        eprintln!("skipped: MIMALLOC_PURGE_DELAY is set, so the environment decides");
        return;
    }
    let budget = 1 << 30;
    let memory = MemoryManager::for_executor(budget);
    let before = rss();
    // 256 MiB written (every page faulted in), then freed.
    let block = std::hint::black_box(vec![1u8; 256 << 20]);
    assert!(rss() >= before + 250 * MIB, "the block is resident");
    drop(block);
    // Time for a short delay to pass, and small allocations that let mimalloc purge.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let small: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 4096]).collect();
    drop(std::hint::black_box(small));
    let relaxed = rss();
    assert!(
        relaxed >= before + 200 * MIB,
        "with room, freed memory stays for the next task: {} MiB over the start",
        relaxed.saturating_sub(before) / MIB
    );
    // Past half the budget: what was freed goes back now, not at the long delay's end.
    let mut reservation = memory.reservation();
    assert!(reservation.grow_to(budget / 2 + 1));
    let pressed = rss();
    assert!(
        pressed < before + 64 * MIB,
        "pressed, freed memory is returned: still {} MiB over the start",
        pressed.saturating_sub(before) / MIB
    );
}
