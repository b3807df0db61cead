//! The layers of `src/` stay layered: every part imports only parts below it in the
//! drawing of `src/README.md`, and no files import each other in a cycle. Parsed from the
//! code's own `crate::` paths (unit tests aside), so a wrong import fails `make test`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The parts, lowest first; parts on one line are siblings and may not import each other
/// (except the leaves, which form their own small acyclic set).
const LAYERS: &[&[&str]] = &[
    &[
        "error", "ids", "sync", "config", "log", "codec", "failure", "faults", "topology",
        "launcher", "memory",
    ],
    &["transport"],
    &["protocol"],
    &["io", "events"],
    &["cache", "shuffle"],
    &["plan"],
    &["executor", "scheduler"],
    &["context"],
    &["rdd"],
    &["datagen", "submit", "history"],
];

fn layer_of(part: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&part))
}

/// Source files under `dir`, as paths relative to `src/`.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
}

/// The code of a file without its `#[cfg(test)] mod tests` (tests may reach anywhere).
fn code(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |i| &text[..i])
}

/// Every module path a file names: `crate::a::b` and the items of `use crate::{a::x, b}`.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|p| {
                !p.is_empty() && p.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            })
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find("};").unwrap_or(group.len());
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => out.push(ident(std::mem::take(&mut item).trim())),
                    _ => item.push(c),
                }
                if c == '{' || c == '}' {
                    item.push(c);
                }
            }
            out.push(ident(item.trim()));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// The file a module path lands in: the longest existing `a/b.rs` or `a/b/mod.rs`.
fn resolve(files: &BTreeSet<String>, path: &[String]) -> Option<String> {
    (1..=path.len()).rev().find_map(|k| {
        let stem = path[..k].join("/");
        [format!("{stem}.rs"), format!("{stem}/mod.rs")]
            .into_iter()
            .find(|f| files.contains(f))
    })
}

fn part(file: &str) -> &str {
    file.split('/').next().unwrap().trim_end_matches(".rs")
}

struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn import_graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut list = Vec::new();
    rust_files(&root, &root, &mut list);
    let files: BTreeSet<String> = list.into_iter().collect();
    let mut edges = BTreeMap::new();
    for file in &files {
        if file.starts_with("bin/") || file == "lib.rs" {
            continue;
        }
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let targets: BTreeSet<String> = crate_paths(code(&text))
            .iter()
            .filter_map(|p| resolve(&files, p))
            .filter(|t| t != file)
            .collect();
        edges.insert(file.clone(), targets);
    }
    Graph { edges }
}

#[test]
fn every_part_imports_only_parts_below_it() {
    let graph = import_graph();
    let mut wrong = Vec::new();
    for (file, targets) in &graph.edges {
        let from = part(file);
        let Some(from_layer) = layer_of(from) else {
            wrong.push(format!(
                "{file}: part `{from}` is not in the drawing (LAYERS)"
            ));
            continue;
        };
        for target in targets {
            let to = part(target);
            if to == from {
                continue;
            }
            match layer_of(to) {
                Some(l) if l < from_layer || (l == from_layer && l == 0) => {}
                _ => wrong.push(format!("{file} -> {target}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
    assert!(graph.edges.len() > 40, "parsed {} files", graph.edges.len());
}

#[test]
fn no_files_import_each_other_in_a_cycle() {
    let graph = import_graph();
    // Depth-first search with colours; a grey target closes a cycle.
    fn visit<'a>(
        g: &'a BTreeMap<String, BTreeSet<String>>,
        f: &'a str,
        colour: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        cycles: &mut Vec<String>,
    ) {
        colour.insert(f, 1);
        stack.push(f);
        for t in g.get(f).into_iter().flatten() {
            match colour.get(t.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| *s == t).unwrap_or(0);
                    cycles.push(format!("{} -> {t}", stack[at..].join(" -> ")));
                }
                Some(_) => {}
                None => visit(g, t, colour, stack, cycles),
            }
        }
        stack.pop();
        colour.insert(f, 2);
    }
    let (mut colour, mut cycles) = (BTreeMap::new(), Vec::new());
    for f in graph.edges.keys() {
        if !colour.contains_key(f.as_str()) {
            visit(&graph.edges, f, &mut colour, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn mpi_is_used_only_in_the_transport() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut list = Vec::new();
    rust_files(&root, &root, &mut list);
    let outside: Vec<&String> = list
        .iter()
        .filter(|f| !f.starts_with("transport/"))
        .filter(|f| {
            let text = std::fs::read_to_string(root.join(f)).unwrap();
            text.lines().any(|l| {
                let l = l.trim_start();
                !l.starts_with("//") && (l.contains("mpi::") && !l.contains("transport::mpi"))
            })
        })
        .collect();
    assert!(
        outside.is_empty(),
        "MPI used outside src/transport: {outside:?}"
    );
}

#[test]
fn the_parser_sees_groups_and_inline_paths() {
    let code = "use crate::{a::x, b::{y, z}};\nfn f() { crate::c::d::e(); }";
    let paths = crate_paths(code);
    let heads: Vec<&str> = paths.iter().map(|p| p[0].as_str()).collect();
    assert_eq!(heads, vec!["a", "b", "c"], "{paths:?}");
}
