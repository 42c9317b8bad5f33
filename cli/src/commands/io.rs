//! `task import` and `task export`: CSV with a header row, or JSON Lines.
//!
//! Import validates every row before writing anything and reports every bad row as
//! `line N: field: reason`; then it writes all rows in one transaction (all or nothing), in
//! chunks so that a progress bar can follow. A row whose id already exists is reported by line.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use taskstore::models::{PageRequest, Task, TaskFilter, TaskImport, TaskSort, UserId};
use taskstore::repo::tasks as task_repo;
use taskstore::{Database, Error};

use super::Ctx;
use crate::cli::Format;
use crate::exit::InputError;

/// Columns import accepts and export writes, in export order.
pub const COLUMNS: &[&str] = &[
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

/// Rows written per chunk (and per progress-bar step) inside the one import transaction.
const CHUNK: usize = 2_000;

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

/// One parsed row and the line it came from.
struct Row {
    line: u64,
    task: TaskImport,
}

fn bad(line: u64, field: &str, reason: impl std::fmt::Display) -> String {
    format!("line {line}: {field}: {reason}")
}

fn parse_field(
    row: &mut TaskImport,
    line: u64,
    key: &str,
    value: Option<&str>,
    errors: &mut Vec<String>,
) {
    let value = value.filter(|v| !v.is_empty());
    let ts = |v: &str| DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc));
    match key {
        "id" => match value.map(str::parse) {
            Some(Ok(id)) => row.id = Some(id),
            Some(Err(_)) => errors.push(bad(line, key, "expected a UUID")),
            None => {}
        },
        "title" => row.title = value.unwrap_or_default().to_owned(),
        "description" => row.description = value.map(str::to_owned),
        "priority" => match value.map(str::parse::<i16>) {
            Some(Ok(p)) => row.priority = Some(p),
            Some(Err(_)) => errors.push(bad(line, key, "expected a whole number from 1 to 5")),
            None => {}
        },
        "completed" => match value {
            Some("true") => row.completed = Some(true),
            Some("false") => row.completed = Some(false),
            Some(_) => errors.push(bad(line, key, "expected true or false")),
            None => {}
        },
        "created_at" | "updated_at" | "completed_at" => match value.map(ts) {
            Some(Ok(t)) => match key {
                "created_at" => row.created_at = Some(t),
                "updated_at" => row.updated_at = Some(t),
                _ => row.completed_at = Some(t),
            },
            Some(Err(_)) => errors.push(bad(line, key, "expected an RFC 3339 timestamp")),
            None => {}
        },
        "version" => match value.map(str::parse::<i32>) {
            Some(Ok(v)) => row.version = Some(v),
            Some(Err(_)) => errors.push(bad(line, key, "expected a whole number")),
            None => {}
        },
        other => errors.push(bad(
            line,
            other,
            format!("unknown column; expected one of {}", COLUMNS.join(", ")),
        )),
    }
}

fn read_csv(path: &Path, errors: &mut Vec<String>) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_path(path)?;
    let headers: Vec<String> = reader
        .headers()?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    for h in &headers {
        if !COLUMNS.contains(&h.as_str()) {
            errors.push(bad(
                1,
                h,
                format!("unknown column; expected one of {}", COLUMNS.join(", ")),
            ));
        }
    }
    if !headers.iter().any(|h| h == "title") {
        errors.push(bad(1, "title", "the header has no title column"));
    }
    if !errors.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        // The reader's position before a read is where the next record starts (quoted fields
        // may span lines, so counting records would misnumber them).
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let mut task = TaskImport::default();
                for (key, value) in headers.iter().zip(record.iter()) {
                    parse_field(&mut task, line, key, Some(value), errors);
                }
                rows.push(Row { line, task });
            }
            Err(e) => {
                errors.push(bad(line, "row", &e));
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }
                ) {
                    break;
                }
            }
        }
    }
    Ok(rows)
}

fn read_jsonl(path: &Path, errors: &mut Vec<String>) -> anyhow::Result<Vec<Row>> {
    let reader = BufReader::new(File::open(path)?);
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i as u64 + 1;
        let text = line?;
        if text.trim().is_empty() {
            continue;
        }
        let obj: Map<String, Value> = match serde_json::from_str(&text) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                errors.push(bad(line_no, "row", "expected a JSON object"));
                continue;
            }
            Err(e) => {
                errors.push(bad(line_no, "row", format!("invalid JSON: {e}")));
                continue;
            }
        };
        let mut task = TaskImport::default();
        if !obj.contains_key("title") {
            errors.push(bad(line_no, "title", "is required"));
        }
        for (key, value) in &obj {
            let text = match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => {
                    errors.push(bad(
                        line_no,
                        key,
                        "expected a string, number, boolean or null",
                    ));
                    continue;
                }
            };
            if key == "title" && text.is_none() {
                errors.push(bad(line_no, "title", "is required"));
                continue;
            }
            parse_field(&mut task, line_no, key, text.as_deref(), errors);
        }
        rows.push(Row {
            line: line_no,
            task,
        });
    }
    Ok(rows)
}

pub fn import(
    ctx: &Ctx,
    db: &Database,
    owner: UserId,
    path: &Path,
    format: Option<Format>,
) -> anyhow::Result<()> {
    let format = format_of(path, format)?;
    let started = Instant::now();
    let mut errors = Vec::new();
    let rows = match format {
        Format::Csv => read_csv(path, &mut errors)?,
        Format::Jsonl => read_jsonl(path, &mut errors)?,
    };
    for row in &rows {
        if let Err(Error::Validation { field, reason }) = row.task.validate() {
            errors.push(bad(row.line, &field, reason));
        }
    }
    if !errors.is_empty() {
        let n = errors.len();
        return Err(InputError {
            message: format!(
                "{} has {n} bad row{}; nothing was imported",
                path.display(),
                if n == 1 { "" } else { "s" }
            ),
            details: errors,
        }
        .into());
    }

    let bar = if std::io::stderr().is_terminal() && !ctx.out.json {
        let bar = ProgressBar::new(rows.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} importing [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta})",
            )
            .expect("valid progress template")
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    // The line of the first row whose id already exists, found after a chunk conflicts.
    let mut conflict: Option<String> = None;
    let outcome = db.with_transaction(|conn| {
        let mut written = 0;
        for chunk in rows.chunks(CHUNK) {
            let tasks: Vec<TaskImport> = chunk.iter().map(|r| r.task.clone()).collect();
            match taskstore::tx::nested(conn, |conn| task_repo::import(conn, owner, &tasks)) {
                Ok(n) => written += n,
                Err(e @ Error::Conflict { .. }) => {
                    conflict = conflict_line(conn, owner, chunk);
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            bar.inc(chunk.len() as u64);
        }
        Ok(written)
    });
    let written = match (outcome, conflict) {
        (Ok(n), _) => n,
        (Err(Error::Conflict { .. }), Some(detail)) => {
            return Err(InputError {
                message: "the import conflicts with existing tasks; nothing was imported".into(),
                details: vec![detail],
            }
            .into());
        }
        (Err(e), _) => return Err(e.into()),
    };
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let rate = written as f64 / secs.max(1e-9);
    ctx.out.text_or_json(
        &format!(
            "imported {written} tasks from {} in {secs:.2} s ({rate:.0} rows/s)",
            path.display()
        ),
        &json!({ "imported": written, "seconds": secs, "rows_per_second": rate }),
    )
}

/// Finds the first row of a conflicting chunk, one savepoint per row, to name its line.
fn conflict_line(
    conn: &mut taskstore::DbConnection,
    owner: UserId,
    chunk: &[Row],
) -> Option<String> {
    for row in chunk {
        let one = [row.task.clone()];
        let probe = taskstore::tx::nested(conn, |c| {
            task_repo::import(c, owner, &one)?;
            // Undo the probe: only whether this row conflicts matters.
            Err::<(), _>(Error::validation("probe", "rolled back"))
        });
        if let Err(Error::Conflict { message, .. }) = probe {
            return Some(bad(row.line, "id", message));
        }
    }
    None
}

fn fmt_ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn export_record(t: &Task) -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        ("id", json!(t.id.to_string())),
        ("title", json!(t.title)),
        ("description", json!(t.description)),
        ("priority", json!(t.priority)),
        ("completed", json!(t.completed)),
        ("created_at", json!(fmt_ts(&t.created_at))),
        ("updated_at", json!(fmt_ts(&t.updated_at))),
        ("completed_at", json!(t.completed_at.as_ref().map(fmt_ts))),
        ("version", json!(t.version)),
    ])
}

pub fn export(
    ctx: &Ctx,
    db: &Database,
    owner: UserId,
    format: Format,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let sink: Box<dyn Write> = match output {
        Some(path) => Box::new(File::create(path)?),
        None => Box::new(std::io::stdout().lock()),
    };
    let sink = BufWriter::new(sink);
    let (mut csv_writer, mut jsonl) = match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(sink);
            w.write_record(COLUMNS)?;
            (Some(w), None)
        }
        Format::Jsonl => (None, Some(sink)),
    };
    let mut cursor = None;
    let mut count = 0usize;
    loop {
        let page = db.tasks().list(
            owner,
            &TaskFilter::default(),
            TaskSort::CreatedAsc,
            &PageRequest {
                limit: 1000,
                cursor,
            },
        )?;
        for t in &page.items {
            let rec = export_record(t);
            match csv_writer.as_mut() {
                Some(w) => {
                    let fields: Vec<String> = COLUMNS
                        .iter()
                        .map(|c| match &rec[c] {
                            Value::Null => String::new(),
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    w.write_record(&fields)?;
                }
                None => {
                    let sink = jsonl.as_mut().expect("one writer per format");
                    serde_json::to_writer(&mut *sink, &rec)?;
                    sink.write_all(b"\n")?;
                }
            }
        }
        count += page.items.len();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if let Some(mut w) = csv_writer {
        w.flush()?;
    }
    if let Some(mut sink) = jsonl {
        sink.flush()?;
    }
    if let Some(path) = output {
        ctx.out.text_or_json(
            &format!("exported {count} tasks to {}", path.display()),
            &json!({ "exported": count, "file": path.display().to_string() }),
        )?;
    }
    Ok(())
}
