//! Where values come from, in rising precedence: `.env`, then `.env.<TASKSTORE_ENV>`, then the
//! process environment, then command-line overrides; below them all, the program's own defaults. Files are read with `dotenvy`; only the
//! variables taskstore knows are taken from them.

use std::collections::BTreeMap;
use std::path::Path;

use super::Environment;
use super::values::{Raw, Source};
use super::variables::VARIABLES;
use crate::error::{Error, Result};

/// Every known variable from the layers above `dir`'s `.env` files, with its source.
pub(super) fn layered(
    dir: &Path,
    overrides: &[(&str, String)],
    defaults: &[(&str, String)],
) -> Result<Raw> {
    let mut values = Raw::new();
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
    load(dir, ".env", &mut values)?;
    // The environment's own file is chosen by TASKSTORE_ENV as it stands after `.env`, unless
    // the process environment says otherwise.
    let env_name = process
        .get("TASKSTORE_ENV")
        .cloned()
        .or_else(|| values.get("TASKSTORE_ENV").map(|(v, _)| v.clone()));
    if let Some(env_name) = env_name {
        let env = Environment::parse(&env_name)
            .map_err(|message| Error::config("TASKSTORE_ENV", message))?;
        load(dir, &format!(".env.{}", env.as_str()), &mut values)?;
    }
    for (k, v) in process {
        values.insert(k, (v, Source::Environment));
    }
    for (k, v) in overrides {
        values.insert((*k).to_owned(), (v.clone(), Source::CommandLine));
    }
    Ok(values)
}

/// Adds the known variables of `dir/file` (if it exists) to `into`, over what is there.
fn load(dir: &Path, file: &str, into: &mut Raw) -> Result<()> {
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
    for item in iter {
        // dotenvy's error carries the line's text (which may be a secret): it is dropped, and
        // the line is named by its number instead.
        let (k, v) = item.map_err(|_| {
            let line = std::fs::read_to_string(&path)
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
            into.insert(k, (v, Source::DotEnv(file.to_owned())));
        } else {
            warn_if_unknown(&k, file);
        }
    }
    Ok(())
}

/// Warns about a `DATABASE_*` / `TASKSTORE_*` variable taskstore does not read (a misspelt
/// `DATABASE_PASSWORD_FILE` would otherwise be ignored without a word), naming the nearest
/// known variable. Never the value: a misspelt password variable holds a password.
fn warn_if_unknown(name: &str, place: &str) {
    if !(name.starts_with("DATABASE_") || name.starts_with("TASKSTORE_")) {
        return;
    }
    if let Some(nearest) = nearest_known(name) {
        tracing::warn!(
            "{name} (in {place}) is not a variable taskstore reads and is ignored; did you mean {nearest}?"
        );
    }
}

/// The known variable closest to `name` by edit distance.
fn nearest_known(name: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .copied()
        .min_by_key(|known| strsim::levenshtein(name, known))
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
