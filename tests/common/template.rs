//! The job template of examples/template, built as a user builds it (its own crate, cargo
//! build --release), and the sequential reference of what it computes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Builds the template once per test binary and returns its binary. The build has its own
/// target directory, `target/template`: sharing ours would race with (or wait on) the
/// cargo that runs these tests. It is seeded from ours once, so ember's dependencies are
/// not compiled a second time (the first build compiles ember and the template only).
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> PathBuf {
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ours = Path::new(&super::bin("ember"))
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/ember")
        .to_path_buf();
    let target = ours.join("template");
    seed(&ours.join("release"), &target.join("release"));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--release", "--offline", "--manifest-path"])
        .arg(project.join("examples/template/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    let out = super::run(cmd, Duration::from_secs(600));
    super::note(&format!(
        "examples/template built in {:.1} s",
        out.elapsed.as_secs_f64()
    ));
    assert!(out.success(), "building examples/template failed: {out:#?}");
    let exe = target.join("release/firstwords");
    assert!(exe.is_file(), "no {}", exe.display());
    exe
}

/// Seeds the template's empty target directory with our compiled dependencies, so cargo
/// finds them fresh (same versions, features and profile) and builds only ember and the
/// template. Libraries are hard-linked (rustc replaces them by a rename, never writes into
/// them); the small files cargo and rustc rewrite in place (dep-info, fingerprints,
/// build-script output) are copied, so the two target directories never share them.
fn seed(from: &Path, to: &Path) {
    if to.exists() || !from.is_dir() {
        return;
    }
    let seeded = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(to.join("deps"))?;
        for entry in std::fs::read_dir(from.join("deps"))? {
            let path = entry?.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let dest = to.join("deps").join(path.file_name().unwrap_or_default());
            match ext {
                "rlib" | "rmeta" | "so" => std::fs::hard_link(&path, &dest)?,
                "d" => copy_keeping_mtime(&path, &dest)?,
                _ => {} // test and job executables: not needed
            }
        }
        for sub in ["build", ".fingerprint"] {
            let status = Command::new("cp")
                .arg("-a")
                .arg(from.join(sub))
                .arg(to.join(sub))
                .status()?;
            if !status.success() {
                return Err(std::io::Error::other(format!("cp -a {sub}: {status}")));
            }
        }
        Ok(())
    })();
    if let Err(e) = seeded {
        // Only slower: cargo builds what is missing.
        super::note(&format!("seeding {} failed: {e}", to.display()));
    }
}

fn copy_keeping_mtime(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::copy(from, to)?;
    let mtime = std::fs::metadata(from)?.modified()?;
    std::fs::File::options()
        .write(true)
        .open(to)?
        .set_modified(mtime)
}

/// What the template computes: the lines of `text` counted by their first word.
pub fn lines_by_first_word(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if let Some(word) = line.split_whitespace().next() {
            *counts.entry(word.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Text whose lines start with words of very different frequencies, with blank lines,
/// leading white space and tabs.
pub fn text(lines: usize) -> String {
    (0..lines)
        .map(|i| match i % 11 {
            0 => "\n".to_string(),
            1 => format!("   w{} indented\n", i % 5),
            2 => format!("\tw{}\ttabbed line\n", i % 3),
            _ => format!("w{} and more {}\n", (i * i) % 37, i),
        })
        .collect()
}

/// Panics, naming the first words that differ, unless `got` equals `want`.
pub fn assert_counts(got: &BTreeMap<String, u64>, want: &BTreeMap<String, u64>) {
    if got == want {
        return;
    }
    let differ: Vec<String> = want
        .keys()
        .chain(got.keys())
        .filter(|w| got.get(*w) != want.get(*w))
        .take(5)
        .map(|w| format!("{w:?}: got {:?}, want {:?}", got.get(w), want.get(w)))
        .collect();
    panic!(
        "{} words written, {} expected; first differences: {}",
        got.len(),
        want.len(),
        differ.join("; ")
    );
}

/// The `word<TAB>count` lines of an output directory.
pub fn read_counts(dir: &Path) -> BTreeMap<String, u64> {
    super::reference::read_lines(dir)
        .iter()
        .map(|l| {
            let (w, n) = l.rsplit_once('\t').expect("word<TAB>count");
            (w.to_string(), n.parse().expect("a count"))
        })
        .collect()
}
