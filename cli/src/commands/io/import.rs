//! `task import`: read and check every row first, then write them all in one transaction.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use taskstore::models::{TaskImport, UserId};
use taskstore::repo::tasks as task_repo;
use taskstore::{Database, Error};

use super::format_of;
use super::read::{self, Problems, Row};
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
    let bytes = read::load(path)?;
    let rows = check(&bytes, format, &path.display().to_string())?;
    drop(bytes);
    let bar = progress_bar(ctx, rows.len());
    let written = write_rows(db, owner, &rows, |n| bar.inc(n as u64))?;
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

/// Reads and checks every row of `bytes` (a byte-order mark already removed) in `format`:
/// the rows, or bad input naming every bad line of `source` (a file name, or "the request
/// body").
pub fn check(bytes: &[u8], format: Format, source: &str) -> Result<Vec<Row>, InputError> {
    let mut problems = Problems::default();
    let rows = match format {
        Format::Csv => read::csv(bytes, &mut problems),
        Format::Jsonl => read::jsonl(bytes, &mut problems),
    };
    read::duplicate_ids(&rows, &mut problems);
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

/// Writes checked rows for `owner` in one transaction, chunk by chunk (`progress` hears each
/// chunk's row count): all of them, or none and an error (a row whose id already exists is an
/// [`InputError`] conflict naming its line).
pub fn write_rows(
    db: &Database,
    owner: UserId,
    rows: &[Row],
    mut progress: impl FnMut(usize),
) -> anyhow::Result<usize> {
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
            progress(chunk.len());
        }
        Ok(written)
    });
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
fn progress_bar(ctx: &Ctx, rows: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() || ctx.out.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(rows as u64);
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
