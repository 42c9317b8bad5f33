//! `task import`: read and check every row first, then write them all in one transaction.
//!
//! Both passes stream the file: the first checks every row (and notes the ids rows carry, to
//! report an id given twice), the second parses it again and writes [`CHUNK`] rows at a time
//! (binary `COPY` on PostgreSQL) inside the one transaction. Memory stays bounded whatever the
//! file's size: the read buffer (`read::READ_BUFFER`, 64 KiB), one chunk of rows, and 24 bytes
//! per row that carries an id (none for rows without one).

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use taskstore::models::{TaskImport, UserId};
use taskstore::repo::tasks as task_repo;
use taskstore::tx::TxOptions;
use taskstore::{Database, Error};

use super::format_of;
use super::read::{self, IdLines, Problems, Row};
use crate::cli::Format;
use crate::commands::Ctx;
use crate::exit::InputError;

/// Rows written per chunk (and per progress-bar step) inside the one import transaction.
const CHUNK: usize = 2_000;

/// Imports the tasks in `path` for `owner`: all of them, or none and every bad line reported
/// (exit 4). A row whose id already exists is a conflict (exit 6) reported by its line.
pub fn import(
    ctx: &Ctx,
    db: &Database,
    owner: UserId,
    path: &Path,
    format: Option<Format>,
) -> anyhow::Result<()> {
    let format = format_of(path, format)?;
    let started = Instant::now();
    let blank = read::is_blank(path)?;
    // Pass 1: check every row; count the good ones and note their ids.
    let mut problems = Problems::default();
    let mut ids = IdLines::default();
    let mut rows = 0u64;
    let mut check = |row: Row| -> Result<(), std::convert::Infallible> {
        ids.note(&row);
        rows += 1;
        Ok(())
    };
    let _ = match format {
        _ if blank => Ok(()),
        Format::Csv => read::csv(read::open(path)?, &mut problems, &mut check),
        Format::Jsonl => read::jsonl(read::open(path)?, &mut problems, &mut check),
    };
    ids.report_duplicates(&mut problems);
    if !problems.is_empty() {
        let n = problems.bad_lines();
        return Err(InputError {
            message: format!(
                "{} has {n} bad line{}; nothing was imported",
                path.display(),
                if n == 1 { "" } else { "s" }
            ),
            details: problems.details,
            conflict: false,
        }
        .into());
    }

    let bar = progress_bar(ctx, rows);
    // Pass 2: parse again and write, chunk by chunk, in one transaction.
    // The line of the first row whose id already exists, found after a chunk conflicts.
    let mut conflict: Option<String> = None;
    // Scoped to the owner (in the BEGIN batch, no extra round trip): a role under row-level
    // security (docs/row-security.sql) writes the owner's rows.
    let outcome = db.with_transaction_opts(TxOptions::new().owner(owner), |conn| {
        let mut written = 0;
        let mut chunk: Vec<Row> = Vec::with_capacity(CHUNK);
        let mut again = Problems::default();
        let mut flush =
            |conn: &mut taskstore::DbConnection, chunk: &mut Vec<Row>| -> Result<(), Error> {
                written += write_chunk(conn, owner, chunk, &mut conflict)?;
                bar.inc(chunk.len() as u64);
                chunk.clear();
                Ok(())
            };
        let mut write = |row: Row| -> Result<(), Error> {
            chunk.push(row);
            if chunk.len() == CHUNK {
                flush(conn, &mut chunk)?;
            }
            Ok(())
        };
        match format {
            _ if blank => Ok(()),
            Format::Csv => read::csv(reopen(path)?, &mut again, &mut write),
            Format::Jsonl => read::jsonl(reopen(path)?, &mut again, &mut write),
        }?;
        if !again.is_empty() {
            return Err(changed(path));
        }
        if !chunk.is_empty() {
            flush(conn, &mut chunk)?;
        }
        Ok(written)
    });
    let written = outcome_of(outcome, conflict)?;
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

/// Reads and checks every row of `bytes` (a request body, a byte-order mark already removed)
/// in `format`: the rows, or bad input naming every bad line of `source` (e.g. "the request
/// body"). Holds every row: for inputs already held in memory and capped in size.
pub fn check(bytes: &[u8], format: Format, source: &str) -> Result<Vec<Row>, InputError> {
    let mut problems = Problems::default();
    let mut ids = IdLines::default();
    let mut rows = Vec::new();
    let mut keep = |row: Row| -> Result<(), std::convert::Infallible> {
        ids.note(&row);
        rows.push(row);
        Ok(())
    };
    let _ = match format {
        _ if bytes.iter().all(u8::is_ascii_whitespace) => Ok(()),
        Format::Csv => read::csv(bytes, &mut problems, &mut keep),
        Format::Jsonl => read::jsonl(bytes, &mut problems, &mut keep),
    };
    ids.report_duplicates(&mut problems);
    if !problems.is_empty() {
        let n = problems.bad_lines();
        return Err(InputError {
            message: format!(
                "{source} has {n} bad line{}; nothing was imported",
                if n == 1 { "" } else { "s" }
            ),
            details: problems.details,
            conflict: false,
        });
    }
    Ok(rows)
}

/// Writes checked rows for `owner` in one transaction, [`CHUNK`] rows at a time (`progress`
/// hears each chunk's row count): all of them, or none and an error (a row whose id already
/// exists is an [`InputError`] conflict naming its line).
pub fn write_rows(
    db: &Database,
    owner: UserId,
    rows: &[Row],
    mut progress: impl FnMut(usize),
) -> anyhow::Result<usize> {
    let mut conflict: Option<String> = None;
    let outcome = db.with_transaction_opts(TxOptions::new().owner(owner), |conn| {
        let mut written = 0;
        for chunk in rows.chunks(CHUNK) {
            written += write_chunk(conn, owner, chunk, &mut conflict)?;
            progress(chunk.len());
        }
        Ok(written)
    });
    outcome_of(outcome, conflict)
}

/// Writes one chunk under a savepoint; on an id conflict, notes the line of the first
/// conflicting row in `conflict`.
fn write_chunk(
    conn: &mut taskstore::DbConnection,
    owner: UserId,
    chunk: &[Row],
    conflict: &mut Option<String>,
) -> Result<usize, Error> {
    let tasks: Vec<TaskImport> = chunk.iter().map(|r| r.task.clone()).collect();
    match taskstore::tx::nested(conn, |conn| task_repo::import(conn, owner, &tasks)) {
        Err(e @ Error::Conflict { .. }) => {
            *conflict = conflict_line(conn, owner, chunk);
            Err(e)
        }
        other => other,
    }
}

/// The import transaction's outcome as the command reports it: an id conflict found by
/// [`write_chunk`] becomes an [`InputError`] conflict naming its line (exit 6).
fn outcome_of(outcome: Result<usize, Error>, conflict: Option<String>) -> anyhow::Result<usize> {
    match (outcome, conflict) {
        (Ok(n), _) => Ok(n),
        (Err(Error::Conflict { .. }), Some(detail)) => Err(InputError {
            message: "the import conflicts with existing tasks; nothing was imported".into(),
            details: vec![detail],
            conflict: true,
        }
        .into()),
        (Err(e), _) => Err(e.into()),
    }
}

/// A progress bar on a terminal (never with `--json`), hidden otherwise.
fn progress_bar(ctx: &Ctx, rows: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() || ctx.out.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(rows);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta})",
        )
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    bar
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
        if let (Err(Error::Conflict { .. }), Some(id)) = (probe, row.task.id) {
            // The library's message counts rows of the probe; name the file's line only.
            let reason = format!(
                "a task with id {id} already exists; leave the id out to import it as a new task"
            );
            return Some(read::detail(row.line, "id", reason));
        }
    }
    None
}

/// The file again, for the writing pass (an error here rolls the import back).
fn reopen(path: &Path) -> Result<std::io::BufReader<std::fs::File>, Error> {
    read::open(path).map_err(|e| Error::validation("file", e.message))
}

/// The file no longer reads as it did in the checking pass.
fn changed(path: &Path) -> Error {
    Error::validation(
        "file",
        format!(
            "{} changed while it was being imported; nothing was imported",
            path.display()
        ),
    )
}
