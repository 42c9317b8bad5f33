//! Reading an import file as a stream of rows: every row deserialised with [`TaskImport`]'s
//! serde derive and checked with its `validate`, every problem kept as `line N: field: reason`
//! (all of them, in line order), so that nothing is written while any row is bad.
//!
//! The file is read through a [`READ_BUFFER`]-byte buffer and each row is handed to the caller
//! as soon as it is read; nothing holds the whole file. The import reads it twice: once to
//! check every row, once to write them.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value};
use taskstore::Error;
use taskstore::models::{TaskId, TaskImport};

use super::{COLUMNS, expected, file_error};
use crate::exit::InputError;

/// One row that passed, and the line it came from.
pub struct Row {
    pub line: u64,
    pub task: TaskImport,
}

/// `line N: field: reason`, the form of every problem with an import file.
pub fn detail(line: u64, field: &str, reason: impl Display) -> String {
    format!("line {line}: {field}: {reason}")
}

/// What is wrong with a file: one `line N: field: reason` per problem, and the lines that have
/// one.
#[derive(Default)]
pub struct Problems {
    pub details: Vec<String>,
    lines: BTreeSet<u64>,
}

impl Problems {
    pub fn add(&mut self, line: u64, field: &str, reason: impl Display) {
        self.lines.insert(line);
        self.details.push(detail(line, field, reason));
    }

    /// A value that does not deserialise as its column's type, shown as it was written.
    fn unparsable(&mut self, line: u64, column: &str, got: impl Display) {
        self.add(
            line,
            column,
            format!("expected {}, got {got}", expected(column)),
        );
    }

    /// Reports the names that are not columns; whether there were any.
    fn unknown_columns<'a>(&mut self, line: u64, names: impl Iterator<Item = &'a str>) -> bool {
        let before = self.details.len();
        for name in names.filter(|name| !COLUMNS.contains(name)) {
            let reason = format!("unknown column; expected one of {}", COLUMNS.join(", "));
            self.add(line, name, reason);
        }
        self.details.len() > before
    }

    /// Hands on a row that passes the model's validation, or reports why not.
    fn keep_valid<E>(
        &mut self,
        on_row: &mut impl FnMut(Row) -> Result<(), E>,
        line: u64,
        task: TaskImport,
    ) -> Result<(), E> {
        match task.validate() {
            Ok(()) => return on_row(Row { line, task }),
            Err(Error::Validation { field, reason }) => self.add(line, &field, reason),
            Err(e) => self.add(line, "row", e),
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.details.is_empty()
    }

    /// How many lines have a problem.
    pub fn bad_lines(&self) -> usize {
        self.lines.len()
    }
}

/// Bytes read from the file at a time (the reader's buffer; the CSV parser adds its own 8 KiB
/// record buffer).
pub const READ_BUFFER: usize = 64 * 1024;

/// The file at `path`, buffered, past a leading UTF-8 byte-order mark (ignored in both
/// formats). A file that cannot be read is bad input naming the path.
pub fn open(path: &Path) -> Result<BufReader<File>, InputError> {
    let file = File::open(path).map_err(|e| file_error(path, "read", &e))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let start = reader
        .fill_buf()
        .map_err(|e| file_error(path, "read", &e))?;
    // A BOM split over two reads is not possible: the buffer holds far more than 3 bytes
    // unless the file is shorter.
    if start.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    Ok(reader)
}

/// Whether the file holds nothing but white space (then it holds no rows, in either format).
/// Reads only up to the first other byte.
pub fn is_blank(path: &Path) -> Result<bool, InputError> {
    let mut reader = open(path)?;
    loop {
        let buf = reader
            .fill_buf()
            .map_err(|e| file_error(path, "read", &e))?;
        if buf.is_empty() {
            return Ok(true);
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        let n = buf.len();
        reader.consume(n);
    }
}

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The problem with a line that is not UTF-8 (its text is not shown: it cannot be printed).
const NOT_UTF8: &str = "not valid UTF-8; save the file as UTF-8";

/// CSV with a header row, each valid row handed to `on_row` as it is read. The line of a row
/// is where its record starts. Call only for a file that is not blank (see [`is_blank`]).
pub fn csv<E>(
    input: impl Read,
    problems: &mut Problems,
    mut on_row: impl FnMut(Row) -> Result<(), E>,
) -> Result<(), E> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let headers: csv::StringRecord = match reader.headers() {
        Ok(h) => h.iter().map(str::trim).collect(),
        Err(e) => {
            match e.kind() {
                csv::ErrorKind::Utf8 { .. } => problems.add(1, "header", NOT_UTF8),
                _ => problems.add(1, "header", &e),
            }
            return Ok(());
        }
    };
    problems.unknown_columns(1, headers.iter());
    if !headers.iter().any(|h| h == "title") {
        problems.add(1, "title", "the header has no title column");
    }
    if !problems.is_empty() {
        return Ok(());
    }
    let mut record = csv::StringRecord::new();
    loop {
        // The reader's position before a read is where the next record starts (quoted fields
        // may span lines, so counting records would misnumber them).
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => match record.deserialize::<TaskImport>(Some(&headers)) {
                Ok(task) => problems.keep_valid(&mut on_row, line, task)?,
                Err(e) => {
                    let mut named = false;
                    for i in failed_columns(&headers, &record) {
                        problems.unparsable(line, &headers[i], format_args!("{:?}", &record[i]));
                        named = true;
                    }
                    if !named {
                        problems.add(line, "row", e);
                    }
                }
            },
            Err(e) => match e.kind() {
                csv::ErrorKind::Utf8 { err, .. } => {
                    let column = headers.get(err.field()).unwrap_or("row");
                    problems.add(line, column, NOT_UTF8);
                }
                csv::ErrorKind::UnequalLengths { .. } => problems.add(line, "row", &e),
                _ => {
                    problems.add(line, "row", &e);
                    break;
                }
            },
        }
    }
    Ok(())
}

/// The columns of a refused record whose value alone does not deserialise, so that every bad
/// field is reported, not only the first (csv names the field only for its own parse errors,
/// not for messages from a type's `Deserialize` such as a UUID's or a timestamp's).
fn failed_columns<'a>(
    headers: &'a csv::StringRecord,
    record: &'a csv::StringRecord,
) -> impl Iterator<Item = usize> + 'a {
    (0..headers.len().min(record.len())).filter(|&i| {
        let header = csv::StringRecord::from(vec![&headers[i]]);
        let value = csv::StringRecord::from(vec![&record[i]]);
        value.deserialize::<TaskImport>(Some(&header)).is_err()
    })
}

/// JSON Lines: one object per line, each valid row handed to `on_row` as it is read; blank
/// lines are skipped. Every value must have its field's JSON type (see [`json_type_fits`]).
/// A line that cannot be read (an I/O error) ends the reading with a problem on that line.
pub fn jsonl<E>(
    mut input: impl BufRead,
    problems: &mut Problems,
    mut on_row: impl FnMut(Row) -> Result<(), E>,
) -> Result<(), E> {
    let mut raw = Vec::new();
    let mut line = 0u64;
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                problems.add(line + 1, "row", format!("cannot read the file: {e}"));
                break;
            }
        }
        line += 1;
        if raw.last() == Some(&b'\n') {
            raw.pop();
        }
        let Ok(text) = std::str::from_utf8(&raw) else {
            problems.add(line, "row", NOT_UTF8);
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        // An object first, so that every unknown key is named as a column (serde would name
        // only the first) and a value that does not parse can be shown as it was written.
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                problems.add(line, "row", "expected a JSON object");
                continue;
            }
            Err(e) => {
                problems.add(line, "row", format!("invalid JSON: {e}"));
                continue;
            }
        };
        if problems.unknown_columns(line, object.keys().map(String::as_str)) {
            continue;
        }
        let mut typed = true;
        for (column, got) in object.iter().filter(|(c, v)| !json_type_fits(c, v)) {
            problems.unparsable(line, column, got);
            typed = false;
        }
        if !typed {
            continue;
        }
        match serde_json::from_value::<TaskImport>(Value::Object(object.clone())) {
            Ok(task) => problems.keep_valid(&mut on_row, line, task)?,
            Err(e) => {
                // As for CSV: every key whose value alone does not deserialise (serde_json's
                // message names no field).
                let mut named = false;
                for (column, got) in &object {
                    let alone = Map::from_iter([(column.clone(), got.clone())]);
                    if serde_json::from_value::<TaskImport>(Value::Object(alone)).is_err() {
                        problems.unparsable(line, column, got);
                        named = true;
                    }
                }
                if !named {
                    problems.add(line, "row", e);
                }
            }
        }
    }
    Ok(())
}

/// Whether a JSON value has the JSON type of its column, with no conversion: strings for the
/// text, the id and the timestamps; integers (not `3.0`) for `priority` and `version`; a boolean
/// for `completed`; `null` (absent) for every column but `title`. Ranges and formats are
/// checked afterwards, by deserialising and validating.
fn json_type_fits(column: &str, value: &Value) -> bool {
    match value {
        Value::Null => column != "title",
        Value::String(_) => matches!(
            column,
            "id" | "title" | "description" | "created_at" | "updated_at" | "completed_at"
        ),
        Value::Number(n) => matches!(column, "priority" | "version") && (n.is_i64() || n.is_u64()),
        Value::Bool(_) => column == "completed",
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// The ids of a file's rows with the line of each: 24 bytes per row that carries an id (an
/// export being re-imported), nothing for rows without one.
#[derive(Default)]
pub struct IdLines(Vec<(TaskId, u64)>);

impl IdLines {
    pub fn note(&mut self, row: &Row) {
        if let Some(id) = row.task.id {
            self.0.push((id, row.line));
        }
    }

    /// Reports every id that appears on more than one line of the file, naming both lines
    /// (the first and this one), in line order.
    pub fn report_duplicates(mut self, problems: &mut Problems) {
        self.0.sort_unstable();
        let mut found = Vec::new();
        for group in self.0.chunk_by(|a, b| a.0 == b.0) {
            let first = group[0].1;
            found.extend(group[1..].iter().map(|&(id, line)| (line, id, first)));
        }
        found.sort_unstable();
        for (line, id, first) in found {
            problems.add(
                line,
                "id",
                format!("{id} appears twice in the file (lines {first} and {line}); an id may appear once"),
            );
        }
    }
}
