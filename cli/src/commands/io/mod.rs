//! `task import` and `task export`: CSV with a header row, or JSON Lines.
//!
//! Both go through the model's serde derives: a row is a [`TaskImport`] (its `Deserialize`
//! reads a CSV record or a JSON object), and export writes `TaskImport::from(&task)` with its
//! `Serialize`, so an export re-imports identically and neither format can drift from the
//! model. `read` turns a file into rows and reports every bad one as `line N: field: reason`;
//! `import` writes the rows in one transaction (all or nothing); `export` pages through the
//! owner's tasks.
//!
//! One rule per question, the same for both formats:
//! - typing: a value must be of its field's type, without conversion. In JSON Lines that is the
//!   JSON type (`title`, `description`, `id` and timestamps: strings; `priority`, `version`:
//!   integers, so `3.0` and `"3"` are refused; `completed`: a boolean, not `"true"`); `null`
//!   means absent for an optional field. In CSV every cell is text, and it must be the
//!   canonical text of the type (`3`, `true` / `false`); an empty cell is absent.
//! - encoding: UTF-8; a byte-order mark at the start is ignored; invalid UTF-8 is reported by
//!   line. An empty file imports nothing and succeeds (so an export without tasks re-imports).
//! - files: a file that cannot be read or written is bad input (exit 4) naming the path.
//! - format: `--format`, else the file's extension (`.csv`; `.jsonl` / `.ndjson`), for import
//!   and for export's `--output`; any other extension is refused. Export to stdout is CSV.
//! - ids: an id twice in one file is bad input naming both lines (exit 4); an id that already
//!   exists is a conflict naming its line (exit 6). Nothing is written in either case.
//! - empty text: an empty `description` is stored as absent, so it exports as absent (an empty
//!   CSV cell, JSON `null`) and every export re-imports identically.

mod export;
mod import;
pub mod read;

use std::path::Path;

#[cfg(doc)]
use taskstore::models::TaskImport;

use crate::cli::Format;
use crate::exit::InputError;

pub use export::{export, write_all};
pub use import::{check, import, write_rows};

/// Columns import accepts and export writes, in export order: the fields of [`TaskImport`]
/// (a test checks that they are exactly what its `Serialize` writes).
const COLUMNS: &[&str] = &[
    "id",
    "title",
    "description",
    "priority",
    "completed",
    "created_at",
    "updated_at",
    "completed_at",
    "version",
];

/// What a column holds, for the message about a value that does not parse.
fn expected(column: &str) -> &'static str {
    match column {
        "id" => "a UUID such as 0192f1a6-3f3e-7c2a-9d4b-5e6f7a8b9c0d",
        "title" | "description" => "text",
        "priority" => "a whole number from 1 to 5",
        "completed" => "true or false",
        "created_at" | "updated_at" | "completed_at" => {
            "an RFC 3339 timestamp such as 2026-11-27T10:00:00Z"
        }
        "version" => "a whole number, at least 1",
        _ => "one of the columns",
    }
}

/// The format given with `--format`, or else the one the file name's extension says.
fn format_of(path: &Path, explicit: Option<Format>) -> Result<Format, InputError> {
    if let Some(f) = explicit {
        return Ok(f);
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(Format::Csv),
        Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
        _ => Err(bad_input(format!(
            "cannot tell the format of {} from its extension (.csv, .jsonl or .ndjson); pass \
             --format csv or --format jsonl",
            path.display()
        ))),
    }
}

/// A file that cannot be opened, read or created: bad input (exit 4) naming the path.
fn file_error(path: &Path, doing: &str, err: &std::io::Error) -> InputError {
    let hint = match err.kind() {
        std::io::ErrorKind::NotFound if doing == "create" => "; does its directory exist?",
        _ => "",
    };
    bad_input(format!("cannot {doing} {}: {err}{hint}", path.display()))
}

/// Bad input (exit 4) with no per-line details.
fn bad_input(message: String) -> InputError {
    InputError {
        message,
        details: Vec::new(),
        conflict: false,
    }
}

#[cfg(test)]
mod tests {
    use taskstore::models::TaskImport;

    use super::*;

    #[test]
    fn columns_are_what_task_import_serialises() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(TaskImport::default()).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next(), Some(COLUMNS.join(",").as_str()));
        let json = serde_json::to_value(TaskImport::default()).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut columns = COLUMNS.to_vec();
        keys.sort_unstable();
        columns.sort_unstable();
        assert_eq!(keys, columns);
    }
}
