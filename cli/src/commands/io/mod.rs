//! `task import` and `task export`: CSV with a header row, or JSON Lines.
//!
//! Both go through the model's serde derives: a row is a [`TaskImport`] (its `Deserialize`
//! reads a CSV record or a JSON object), and export writes `TaskImport::from(&task)` with its
//! `Serialize`, so an export re-imports identically and neither format can drift from the
//! model. `read` turns a file into rows and reports every bad one as `line N: field: reason`;
//! `import` writes the rows in one transaction (all or nothing); `export` pages through the
//! owner's tasks.

mod export;
mod import;
mod read;

use std::path::Path;

use taskstore::Error;
#[cfg(doc)]
use taskstore::models::TaskImport;

use crate::cli::Format;

pub use export::export;
pub use import::import;

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
fn format_of(path: &Path, explicit: Option<Format>) -> anyhow::Result<Format> {
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
        _ => Err(Error::validation(
            "format",
            "cannot tell the format from the file name; pass --format csv or --format jsonl",
        )
        .into()),
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
