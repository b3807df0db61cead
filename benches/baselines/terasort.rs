//! Hand-written TeraSort baseline: mmap the input files, build one compact entry per
//! record (its 10-byte key packed into the high 80 bits of a `u128`, the record's global
//! index in the low 48), sort the entries with rayon's parallel unstable sort, then gather
//! every record once, in parallel, straight into the memory-mapped output file.
//!
//!     baseline-terasort --input DIR|FILE --output DIR
//!
//! Records with equal keys keep their input order (the index breaks ties). Prints
//! `records N` on stdout.

#[path = "common.rs"]
mod common;

use rayon::prelude::*;

const RECORD: usize = 100;

pub fn main() {
    let input = common::arg("--input", None);
    let output = common::arg("--output", None);
    let maps = common::map_inputs(&input);
    // starts[f] = global index of file f's first record.
    let mut starts = Vec::with_capacity(maps.len() + 1);
    let mut records = 0usize;
    for (path, map) in &maps {
        if map.len() % RECORD != 0 {
            common::fail(&format!(
                "{}: {} bytes, not a multiple of {RECORD}",
                path.display(),
                map.len()
            ));
        }
        starts.push(records);
        records += map.len() / RECORD;
    }
    starts.push(records);
    assert!(records < 1 << 48, "too many records for 48-bit indices");

    let mut entries: Vec<u128> = vec![0; records];
    let mut rest = &mut entries[..];
    for (_, map) in &maps {
        let (mine, tail) = rest.split_at_mut(map.len() / RECORD);
        rest = tail;
        let first = (records - mine.len() - rest.len()) as u128;
        mine.par_iter_mut()
            .zip(map.par_chunks_exact(RECORD))
            .enumerate()
            .for_each(|(i, (e, r))| {
                let mut key = [0u8; 16];
                key[..10].copy_from_slice(&r[..10]);
                *e = (u128::from_be_bytes(key) & !((1u128 << 48) - 1)) | (first + i as u128);
            });
    }
    entries.par_sort_unstable();

    let path = common::output_part(&output);
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap_or_else(|e| common::fail(&format!("{}: {e}", path.display())));
    if records > 0 {
        file.set_len((records * RECORD) as u64)
            .unwrap_or_else(|e| common::fail(&format!("{}: {e}", path.display())));
        // SAFETY: the output file is ours alone while the baseline runs.
        let mut out = unsafe { memmap2::MmapMut::map_mut(&file) }
            .unwrap_or_else(|e| common::fail(&format!("{}: {e}", path.display())));
        out.par_chunks_exact_mut(RECORD)
            .zip(entries.par_iter())
            .for_each(|(dst, e)| {
                let index = (e & ((1u128 << 48) - 1)) as usize;
                let f = starts.partition_point(|&s| s <= index) - 1;
                let at = (index - starts[f]) * RECORD;
                dst.copy_from_slice(&maps[f].1[at..at + RECORD]);
            });
        out.flush()
            .unwrap_or_else(|e| common::fail(&format!("{}: {e}", path.display())));
    }
    common::commit(&path);
    println!("records {records}");
}
