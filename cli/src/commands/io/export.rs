//! `task export`: every task of an owner, oldest first, as CSV or JSON Lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::json;
use taskstore::Database;
use taskstore::models::{PageRequest, TaskFilter, TaskImport, TaskSort, UserId};

use super::{COLUMNS, file_error, format_of};
use crate::cli::Format;
use crate::commands::Ctx;

/// Tasks read per page while exporting.
const PAGE: u32 = 1000;

/// Where export writes: a CSV writer (the header is written first, also for no tasks) or JSON
/// Lines.
enum Sink {
    // Boxed: a CSV writer carries its own buffers and state (hundreds of bytes).
    Csv(Box<csv::Writer<BufWriter<Box<dyn Write>>>>),
    Jsonl(BufWriter<Box<dyn Write>>),
}

impl Sink {
    fn new(format: Format, out: Box<dyn Write>) -> anyhow::Result<Self> {
        let out = BufWriter::new(out);
        Ok(match format {
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(out);
                w.write_record(COLUMNS)?;
                Self::Csv(Box::new(w))
            }
            Format::Jsonl => Self::Jsonl(out),
        })
    }

    fn write(&mut self, row: &TaskImport) -> anyhow::Result<()> {
        match self {
            Self::Csv(w) => w.serialize(row)?,
            Self::Jsonl(w) => {
                serde_json::to_writer(&mut *w, row)?;
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Csv(w) => w.flush()?,
            Self::Jsonl(w) => w.flush()?,
        }
        Ok(())
    }
}

/// Writes every task of `owner` to `output` (stdout when `None`), one `TaskImport` per row, so
/// that the file re-imports identically. The format is `format`, else `output`'s extension
/// (refused before the file is created when it names no format), else CSV on stdout.
pub fn export(
    ctx: &Ctx,
    db: &Database,
    owner: UserId,
    format: Option<Format>,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let (format, out): (Format, Box<dyn Write>) = match output {
        Some(path) => {
            let format = format_of(path, format)?;
            let file = File::create(path).map_err(|e| file_error(path, "create", &e))?;
            (format, Box::new(file))
        }
        None => (
            format.unwrap_or(Format::Csv),
            Box::new(std::io::stdout().lock()),
        ),
    };
    let count = write_all(db, owner, format, out)?;
    if let Some(path) = output {
        ctx.out.text_or_json(
            &format!("exported {count} tasks to {}", path.display()),
            &json!({ "exported": count, "file": path.display().to_string() }),
        )?;
    }
    Ok(())
}

/// Writes every task of `owner`, oldest first, to `out` in `format` (CSV with its header line
/// even for no tasks) and flushes it; returns how many tasks were written.
pub fn write_all(
    db: &Database,
    owner: UserId,
    format: Format,
    out: Box<dyn Write>,
) -> anyhow::Result<usize> {
    let mut sink = Sink::new(format, out)?;
    let mut cursor = None;
    let mut count = 0usize;
    loop {
        let page = db.tasks().list(
            owner,
            &TaskFilter::default(),
            TaskSort::CreatedAsc,
            &PageRequest::after(PAGE, cursor),
        )?;
        for task in &page.items {
            sink.write(&TaskImport::from(task))?;
        }
        count += page.items.len();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    sink.flush()?;
    Ok(count)
}
