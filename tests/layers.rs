//! The crate's modules form one-way layers (issue 10): a module may use only modules of a lower
//! layer. This test reads `src/` and fails on any `crate::` path that points sideways or up, so
//! an import cycle cannot creep back in unnoticed.
//!
//! The layers are listed in [`LAYERS`], lowest first; `src/lib.rs` declares the modules in
//! the reverse order. Comments are not read: a doc link may point anywhere.

use std::collections::BTreeSet;
use std::path::Path;

/// Each inner slice is one layer; modules of one layer may not use each other.
const LAYERS: &[&[&str]] = &[
    &["redact", "backoff"],
    &["error"],
    &["config"],
    &["conn"],
    &["pool"],
    &["sql_types"],
    &["schema"],
    &["models"],
    &["migrate", "tx"],
    &["repo"],
    &["diagnostics"],
    &["database"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Top-level modules named after `crate::` (or `$crate::`) in the code of `text`. Comments
/// are skipped: a doc link to a higher layer explains, it does not depend.
fn used_modules(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = code.as_str();
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The names `src/lib.rs` re-exports at the crate root (`pub use module::{A, B};`), each with
/// the module it comes from, so that `crate::Error` counts as a use of `error`.
fn root_reexports(lib: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for item in lib.split(';') {
        let Some(rest) = item.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names
            .trim_matches(|c: char| c == '{' || c == '}' || c.is_whitespace())
            .split(',')
        {
            let name = name.trim();
            if !name.is_empty() {
                out.push((name.to_owned(), module.trim().to_owned()));
            }
        }
    }
    out
}

#[test]
fn modules_only_use_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let reexports = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(
        reexports
            .iter()
            .any(|(name, module)| name == "Database" && module == "database"),
        "the crate root's re-exports were not understood: {reexports:?}"
    );
    let mut files = Vec::new();
    visit(&src, &mut files);
    let mut violations = Vec::new();
    let mut seen = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        if first == "bin" || first == "lib.rs" {
            continue; // the binary and the crate root may use everything
        }
        let module = first.trim_end_matches(".rs").to_owned();
        let Some(own) = layer_of(&module) else {
            violations.push(format!(
                "{}: module `{module}` is in no layer; add it to LAYERS",
                rel.display()
            ));
            continue;
        };
        seen.insert(module.clone());
        let text = std::fs::read_to_string(&file).unwrap();
        for used in used_modules(&text) {
            let used = reexports
                .iter()
                .find(|(name, _)| *name == used)
                .map_or(used, |(_, module)| module.clone());
            if used == module {
                continue;
            }
            match layer_of(&used) {
                Some(l) if l < own => {}
                Some(l) => violations.push(format!(
                    "{}: `{module}` (layer {own}) uses `crate::{used}` (layer {l}); arrows must point down",
                    rel.display()
                )),
                // Root re-exports (`crate::Error`, `crate::Result`, ...) and macros.
                None => {}
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
    for layer in LAYERS {
        for module in *layer {
            assert!(
                seen.contains(*module),
                "LAYERS names `{module}`, which is not a module under src/"
            );
        }
    }
}
