//! Where values come from, in rising precedence: `.env`, then `.env.<TASKSTORE_ENV>`, then the
//! process environment, then command-line overrides; below them all, the program's own defaults. Files are read with `dotenvy`; only the
//! variables taskstore knows are taken from them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::Environment;
use super::values::{Raw, Source};
use super::variables::VARIABLES;
use crate::error::{Error, Result};

/// Every known variable from the layers above `dir`'s `.env` files, with its source, and the
/// names whose final value came from a `.env` file where dotenvy expanded a `$NAME` in it.
pub(super) fn layered(
    dir: &Path,
    overrides: &[(&str, String)],
    defaults: &[(&str, String)],
) -> Result<(Raw, BTreeSet<String>)> {
    let mut values = Raw::new();
    let mut expanded = BTreeSet::new();
    for (k, v) in defaults {
        values.insert((*k).to_owned(), (v.clone(), Source::ProgramDefault));
    }
    let mut process = BTreeMap::new();
    for (k, v) in std::env::vars_os() {
        // A name that is not UTF-8 cannot be one of ours.
        let Ok(k) = k.into_string() else { continue };
        if !VARIABLES.contains(&k.as_str()) {
            warn_if_unknown(&k, "the environment");
            continue;
        }
        // Set but unreadable is an error, never "unset": falling back to a default (the
        // SQLite file for DATABASE_URL) would act on a database nobody asked for.
        let v = v.into_string().map_err(|_| {
            Error::config(
                k.clone(),
                "is set but is not valid UTF-8; set it to UTF-8 text or unset it",
            )
        })?;
        process.insert(k, v);
    }
    load(dir, ".env", &mut values, &mut expanded)?;
    // The environment's own file is chosen by TASKSTORE_ENV as it stands after `.env`, unless
    // the process environment says otherwise.
    let env_name = process
        .get("TASKSTORE_ENV")
        .cloned()
        .or_else(|| values.get("TASKSTORE_ENV").map(|(v, _)| v.clone()));
    if let Some(env_name) = env_name {
        let env = Environment::parse(&env_name)
            .map_err(|message| Error::config("TASKSTORE_ENV", message))?;
        load(
            dir,
            &format!(".env.{}", env.as_str()),
            &mut values,
            &mut expanded,
        )?;
    }
    for (k, v) in process {
        expanded.remove(&k);
        values.insert(k, (v, Source::Environment));
    }
    for (k, v) in overrides {
        expanded.remove(*k);
        values.insert((*k).to_owned(), (v.clone(), Source::CommandLine));
    }
    Ok((values, expanded))
}

/// Adds the known variables of `dir/file` (if it exists) to `into`, over what is there, and
/// keeps `expanded` (the names whose value had `$NAME` expanded) in step.
fn load(dir: &Path, file: &str, into: &mut Raw, expanded: &mut BTreeSet<String>) -> Result<()> {
    let path = dir.join(file);
    let iter = match dotenvy::from_path_iter(&path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() => return Ok(()),
        Err(_) => {
            return Err(Error::config(
                file,
                format!(
                    "cannot read {}; check that it is a readable .env file",
                    path.display()
                ),
            ));
        }
    };
    let dollars = std::fs::read_to_string(&path)
        .map(|text| expanding_assignments(&text))
        .unwrap_or_default();
    for item in iter {
        // dotenvy's error carries the line's text (which may be a secret): it is dropped, and
        // the line is named by its number instead.
        let (k, v) = item.map_err(|_| {
            let bytes = std::fs::read(&path).unwrap_or_default();
            if let Err(e) = std::str::from_utf8(&bytes) {
                let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
                return Error::config(
                    file,
                    format!(
                        "{} is not valid UTF-8 (line {line}); save it as UTF-8 (the line is not shown: it may hold a secret)",
                        path.display()
                    ),
                );
            }
            let line = String::from_utf8(bytes)
                .ok()
                .and_then(|text| malformed_line(&text))
                .map(|n| format!(" (line {n})"))
                .unwrap_or_default();
            Error::config(
                file,
                format!(
                    "{} has a malformed line{line}; expected NAME=value (the line is not shown: it may hold a secret)",
                    path.display()
                ),
            )
        })?;
        if VARIABLES.contains(&k.as_str()) {
            if dollars.contains(&k) {
                expanded.insert(k.clone());
            } else {
                expanded.remove(&k);
            }
            into.insert(k, (v, Source::DotEnv(file.to_owned())));
        } else {
            warn_if_unknown(&k, file);
        }
    }
    Ok(())
}

/// Warns about a variable taskstore does not read that looks meant for it — a `DATABASE_*` /
/// `TASKSTORE_*` name, or any name within [`MISSPELT_DISTANCE`] edits of a known one (a
/// misspelt prefix: `DATABSE_URL`) — naming the nearest known variable (a misspelt
/// `DATABASE_PASSWORD_FILE` would otherwise be ignored without a word). Never the value: a
/// misspelt password variable holds a password.
fn warn_if_unknown(name: &str, place: &str) {
    let prefixed = name.starts_with("DATABASE_") || name.starts_with("TASKSTORE_");
    let Some(nearest) = nearest_known(name) else {
        return;
    };
    if prefixed || strsim::levenshtein(name, nearest) <= MISSPELT_DISTANCE {
        tracing::warn!(
            "{name} (in {place}) is not a variable taskstore reads and is ignored; did you mean {nearest}?"
        );
    }
}

/// How many single-character edits (Levenshtein distance) from a known variable still count
/// as a misspelling of it when the name lacks the project's prefixes: two catches a dropped,
/// doubled or swapped letter (`DATABSE_URL`, `TASKSTORE_LOGG`, `DATBAASE_URL`) without
/// claiming unrelated variables.
const MISSPELT_DISTANCE: usize = 2;

/// The known variable closest to `name` by edit distance.
fn nearest_known(name: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .copied()
        .min_by_key(|known| strsim::levenshtein(name, known))
}

/// The names whose last assignment in a `.env` text has a `$` that dotenvy expands: one outside
/// single quotes and not escaped as `\$` (dotenvy 0.15's `parse_value`, which replaces `$NAME`
/// and `${NAME}` with the variable's value, or with nothing). A value may span lines inside
/// quotes. Malformed lines are dotenvy's to report; this only reads the well-formed ones.
fn expanding_assignments(text: &str) -> BTreeSet<String> {
    let mut found = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").unwrap_or(t).trim_start();
        let name_len = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(t.len());
        let Some(value) = t[name_len..].trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        let mut scan = DollarScan::default();
        let mut part = value.to_owned();
        loop {
            scan.feed(&part);
            if !scan.open() {
                break;
            }
            match lines.next() {
                Some(next) => part = format!("\n{next}"),
                None => break,
            }
        }
        found.insert(t[..name_len].to_owned(), scan.dollar);
    }
    found
        .into_iter()
        .filter_map(|(k, dollar)| dollar.then_some(k))
        .collect()
}

/// dotenvy's quoting state while reading one value.
#[derive(Default)]
struct DollarScan {
    strong: bool,
    weak: bool,
    escaped: bool,
    ended: bool,
    dollar: bool,
}

impl DollarScan {
    fn feed(&mut self, part: &str) {
        for c in part.chars() {
            if self.ended {
                // After unquoted whitespace only a comment may follow.
                return;
            } else if self.escaped {
                self.escaped = false;
            } else if self.strong {
                self.strong = c != '\'';
            } else if c == '$' {
                self.dollar = true;
            } else if self.weak {
                match c {
                    '"' => self.weak = false,
                    '\\' => self.escaped = true,
                    _ => {}
                }
            } else {
                match c {
                    '\'' => self.strong = true,
                    '"' => self.weak = true,
                    '\\' => self.escaped = true,
                    ' ' | '\t' => self.ended = true,
                    _ => {}
                }
            }
        }
    }

    /// Inside a quote at the end of a line: the value goes on.
    fn open(&self) -> bool {
        self.strong || self.weak
    }
}

/// The number (from 1) of the first physical line of a `.env` text that is not blank, a
/// comment, `NAME=value` or the continuation of a quoted value spanning lines.
fn malformed_line(text: &str) -> Option<usize> {
    let mut open: Option<char> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(q) = open {
            if line.contains(q) {
                open = None;
            }
            continue;
        }
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").unwrap_or(t).trim_start();
        let name_len = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(t.len());
        let rest = t[name_len..].trim_start();
        let Some(value) = rest.strip_prefix('=').map(str::trim_start) else {
            return Some(i + 1);
        };
        if name_len == 0 {
            return Some(i + 1);
        }
        if let Some(q) = value.chars().next().filter(|c| *c == '\'' || *c == '"')
            && !value[1..].contains(q)
        {
            open = Some(q);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn malformed_lines_are_found_by_number() {
        let text = "A=1\n# c\n\nB=\"multi\nline\"\nC S3cret\n";
        assert_eq!(super::malformed_line(text), Some(6));
        assert_eq!(super::malformed_line("A=1\nB='x'\n"), None);
    }

    #[test]
    fn dollar_expansion_is_found_where_dotenvy_applies_it() {
        let text = "A=ab$defgh@jk\nB=\"ab$defgh@jk\"\nC='ab$defgh@jk'\nD=ab\\$x\nE=plain\n\
                    F='lit'$X\nG=\"multi\nli$ne\"\nexport H=${X}\nI=x # $comment\nA='later'\n";
        let got = super::expanding_assignments(text);
        let want: std::collections::BTreeSet<String> =
            ["B", "F", "G", "H"].into_iter().map(String::from).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn misspelt_names_have_a_nearest_known_one() {
        assert_eq!(
            super::nearest_known("DATABASE_PASSWORD_FIEL"),
            Some("DATABASE_PASSWORD_FILE")
        );
        assert_eq!(
            super::nearest_known("DATABASE_POOL_SIZE"),
            Some("DATABASE_POOL_MAX_SIZE")
        );
    }
}
