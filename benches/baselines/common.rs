//! Shared by the hand-written baselines: arguments, input files, committed output.
//! Standalone: std, rayon and memmap2 only (no ember).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// The value of `--name V`, or `default`.
pub fn arg(name: &str, default: Option<&str>) -> String {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).cloned(),
        None => default.map(str::to_string),
    }
    .unwrap_or_else(|| fail(&format!("missing {name} VALUE")))
}

pub fn fail(message: &str) -> ! {
    eprintln!("baseline: {message}");
    std::process::exit(2)
}

/// The `part-*` files of a directory in name order, or the file itself.
pub fn inputs(path: &str) -> Vec<PathBuf> {
    let path = Path::new(path);
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        })
        .collect();
    files.sort();
    files
}

/// Every input file, memory-mapped (empty files are left out: they cannot be mapped).
pub fn map_inputs(path: &str) -> Vec<(PathBuf, memmap2::Mmap)> {
    inputs(path)
        .into_iter()
        .filter(|p| p.metadata().map(|m| m.len() > 0).unwrap_or(true))
        .map(|p| {
            let file =
                std::fs::File::open(&p).unwrap_or_else(|e| fail(&format!("{}: {e}", p.display())));
            // SAFETY: the inputs are not modified while the baseline runs.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .unwrap_or_else(|e| fail(&format!("{}: {e}", p.display())));
            (p, map)
        })
        .collect()
}

/// Splits `data` into pieces of about `target` bytes, each ending just after a `\n` (or at
/// the end), so no line is cut.
pub fn line_chunks(data: &[u8], target: usize) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let mut end = (start + target).min(data.len());
        if end < data.len() {
            end = match memchr_newline(&data[end..]) {
                Some(i) => end + i + 1,
                None => data.len(),
            };
        }
        chunks.push(&data[start..end]);
        start = end;
    }
    chunks
}

fn memchr_newline(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == b'\n')
}

/// Creates the output directory (replacing an old one) and returns the path of its only
/// part file.
pub fn output_part(dir: &str) -> PathBuf {
    let dir = Path::new(dir);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    dir.join("part-00000")
}

/// Writes the buffers to `path` in order, then `_SUCCESS` next to it.
pub fn write_committed(path: &Path, buffers: &[Vec<u8>]) {
    let mut file =
        std::fs::File::create(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    for b in buffers {
        file.write_all(b)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    }
    commit(path);
}

/// Writes `_SUCCESS` next to the part file `path`.
pub fn commit(path: &Path) {
    let success = path.with_file_name("_SUCCESS");
    std::fs::write(&success, b"").unwrap_or_else(|e| fail(&format!("{}: {e}", success.display())));
}
