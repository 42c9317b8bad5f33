//! Bulk import of 100 000 tasks (SPEC §9, issue 4): every path of the layer beside its
//! baseline, in one run, `ROUNDS` times each in alternating order, medians reported.
//!
//! ```text
//! cargo run --release --example bulk_import [-- ROWS ROUNDS]
//! ```
//!
//! PostgreSQL (database `taskstore_bench_bulk` on the shared server, dropped at the end):
//! - `tasks::import` — binary `COPY FROM STDIN`, rows carrying their ids (an export being
//!   re-imported; the layer checks first that no id exists), and without ids (fresh rows);
//! - `tasks::create_many` — binary `COPY` (from `tasks::COPY_FROM_ROWS` rows on; multi-row
//!   INSERTs of 6 553 rows below that);
//! - `psql \copy` of the same rows from a CSV file (psql's own `\timing`) — SPEC's yardstick
//!   for COPY (≥ 0.85×);
//! - raw Diesel multi-row INSERTs of the same rows in one transaction, for reference.
//!
//! SQLite (a fresh temporary file for every measurement):
//! - `tasks::import` (with ids, and fresh) and `tasks::create_many` — multi-row INSERTs of
//!   3 276 rows;
//! - rusqlite with a cached prepared single-row INSERT in one transaction — SPEC's yardstick
//!   (≥ 0.85×);
//! - raw Diesel with the same multi-row INSERTs in one transaction, and with one single-row
//!   INSERT per task (Diesel caches its prepared statement) in one transaction.
//!
//! Each PostgreSQL measurement starts from an empty `tasks` table after a `CHECKPOINT`, so that
//! no run pays for another's dirty pages. Times include validation, building the rows, the
//! statements and the commit; not generating the input.

#[path = "../benches/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use support::{RawNewTask, raw_pg_ops, raw_sqlite_ops};
use taskstore::models::{NewTask, TaskImport, UserId};

const PG_ROWS_PER_STATEMENT: usize = 65_535 / 10;
const SQLITE_ROWS_PER_STATEMENT: usize = 32_766 / 10;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: usize = args.first().map_or(Ok(100_000), |s| s.parse())?;
    let rounds: usize = args.get(1).map_or(Ok(3), |s| s.parse())?;
    let psql = std::env::var("PSQL").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/psql".into());

    let mut rng = support::Rng::new(0x7A5C_5704_E000_0100);
    let with_ids = support::task_imports(rows, &mut rng);
    let without_ids: Vec<TaskImport> = with_ids
        .iter()
        .map(|t| TaskImport {
            id: None,
            ..t.clone()
        })
        .collect();
    let new_tasks: Vec<NewTask<'_>> = with_ids
        .iter()
        .map(|t| NewTask {
            title: &t.title,
            description: t.description.as_deref(),
            priority: t.priority,
        })
        .collect();

    let mut times: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();

    // ---- PostgreSQL ----
    let pg = support::PgBenchDb::create("taskstore_bench_bulk");
    let db = support::layer(&pg.url, 1);
    let owner = support::create_user(&db, "bulk@bench.example");
    let raw_task_rows = raw_rows(&with_ids, owner);
    let pg_rows: Vec<_> = raw_task_rows
        .iter()
        .map(support::pg_schema::new_row)
        .collect();
    let csv = std::env::temp_dir().join(format!("taskstore_bench_bulk_{}.csv", std::process::id()));
    write_csv(&csv, &with_ids, owner)?;
    let mut raw = support::raw_pg(&pg.url);

    for round in 0..rounds {
        let mut order: Vec<&'static str> = vec![
            "pg_layer_import_copy",
            "pg_layer_import_copy_fresh_ids",
            "pg_psql_copy_csv",
            "pg_layer_create_many",
            "pg_raw_diesel_multirow_insert",
        ];
        let n = order.len();
        order.rotate_left(round % n);
        for name in order {
            raw.batch_execute("TRUNCATE tasks; CHECKPOINT")?;
            let secs = match name {
                "pg_layer_import_copy" => timed(|| db.tasks().import(owner, &with_ids))?,
                "pg_layer_import_copy_fresh_ids" => {
                    timed(|| db.tasks().import(owner, &without_ids))?
                }
                "pg_layer_create_many" => timed(|| db.tasks().create_many(owner, &new_tasks))?,
                "pg_raw_diesel_multirow_insert" => {
                    timed(|| raw_pg_ops::insert_many(&mut raw, &pg_rows, PG_ROWS_PER_STATEMENT))?
                }
                "pg_psql_copy_csv" => psql_copy(&psql, &pg.url, &csv)?,
                _ => unreachable!(),
            };
            let n: i64 = taskstore::schema::tasks::table
                .count()
                .get_result(&mut raw)?;
            if n != rows as i64 {
                bail!("{name} left {n} rows, expected {rows}");
            }
            eprintln!("round {round} {name}: {secs:.3} s");
            times.entry(name).or_default().push(secs);
        }
    }
    drop(raw);
    drop(db);
    drop(pg);
    drop(pg_rows);
    drop(raw_task_rows);
    let _ = std::fs::remove_file(&csv);

    // ---- SQLite ----
    for round in 0..rounds {
        let mut order: Vec<&'static str> = vec![
            "sqlite_layer_import",
            "sqlite_layer_import_fresh_ids",
            "sqlite_layer_create_many",
            "sqlite_rusqlite_prepared_insert",
            "sqlite_raw_diesel_multirow_insert",
            "sqlite_raw_diesel_prepared_insert",
        ];
        let n = order.len();
        order.rotate_left(round % n);
        for name in order {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("bulk.db");
            let path = path.to_str().context("utf-8 temp path")?;
            let db = support::layer(&format!("sqlite://{path}"), 1);
            let owner = support::create_user(&db, "bulk@bench.example");
            let secs = match name {
                "sqlite_layer_import" => timed(|| db.tasks().import(owner, &with_ids))?,
                "sqlite_layer_import_fresh_ids" => {
                    timed(|| db.tasks().import(owner, &without_ids))?
                }
                "sqlite_layer_create_many" => timed(|| db.tasks().create_many(owner, &new_tasks))?,
                _ => {
                    drop(db);
                    let rows = raw_rows(&with_ids, owner);
                    if name == "sqlite_rusqlite_prepared_insert" {
                        rusqlite_insert(path, &rows)?
                    } else if name == "sqlite_raw_diesel_prepared_insert" {
                        let lite: Vec<_> =
                            rows.iter().map(support::sqlite_schema::new_row).collect();
                        let mut c = support::raw_sqlite(path);
                        timed(|| raw_sqlite_ops::insert_each(&mut c, &lite))?
                    } else {
                        let lite: Vec<_> =
                            rows.iter().map(support::sqlite_schema::new_row).collect();
                        let mut c = support::raw_sqlite(path);
                        timed(|| {
                            raw_sqlite_ops::insert_many(&mut c, &lite, SQLITE_ROWS_PER_STATEMENT)
                        })?
                    }
                }
            };
            let mut c = support::raw_sqlite(path);
            let n: i64 = taskstore::schema::tasks::table.count().get_result(&mut c)?;
            if n != rows as i64 {
                bail!("{name} left {n} rows, expected {rows}");
            }
            eprintln!("round {round} {name}: {secs:.3} s");
            times.entry(name).or_default().push(secs);
        }
    }

    report(rows, rounds, &mut times);
    Ok(())
}

fn timed<T, E: std::error::Error + Send + Sync + 'static>(
    f: impl FnOnce() -> std::result::Result<T, E>,
) -> Result<f64> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

/// The same rows as the raw baselines insert them.
fn raw_rows(items: &[TaskImport], owner: UserId) -> Vec<RawNewTask<'_>> {
    items
        .iter()
        .map(|t| {
            let created = t.created_at.expect("generated with created_at");
            RawNewTask {
                id: t.id.expect("generated with ids").0,
                user_id: owner.0,
                title: &t.title,
                description: t.description.as_deref(),
                completed: t.completed == Some(true),
                priority: t.priority.unwrap_or(3),
                version: t.version.unwrap_or(1),
                created_at: created,
                updated_at: t.updated_at.unwrap_or(created),
                completed_at: t.completed_at,
            }
        })
        .collect()
}

const COLUMNS: &str = "id, user_id, title, description, completed, priority, version, created_at, updated_at, completed_at";

fn write_csv(path: &Path, items: &[TaskImport], owner: UserId) -> Result<()> {
    use std::io::Write;
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "{}", COLUMNS.replace(' ', ""))?;
    for t in items {
        let created = t.created_at.expect("created_at");
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{}",
            t.id.expect("id").0,
            owner.0,
            quote(&t.title),
            t.description.as_deref().map(quote).unwrap_or_default(),
            t.completed == Some(true),
            t.priority.unwrap_or(3),
            t.version.unwrap_or(1),
            ts(created),
            ts(t.updated_at.unwrap_or(created)),
            t.completed_at.map(ts).unwrap_or_default(),
        )?;
    }
    w.flush()?;
    Ok(())
}

/// `psql \copy` of the CSV, timed by psql itself (`\timing`: the command, not psql's start-up).
fn psql_copy(psql: &str, url: &str, csv: &Path) -> Result<f64> {
    let copy = format!(
        "\\copy tasks ({COLUMNS}) FROM '{}' WITH (FORMAT csv, HEADER true)",
        csv.display()
    );
    let out = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            "\\timing on",
            "-c",
            &copy,
        ])
        .output()
        .context("running psql")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "psql failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ms: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Time: "))
        .and_then(|l| l.split_whitespace().next())
        .context("psql printed no timing")?
        .parse()?;
    Ok(ms / 1_000.0)
}

/// SPEC's SQLite yardstick: rusqlite, one cached prepared single-row INSERT, one transaction,
/// with the layer's pragmas.
fn rusqlite_insert(path: &str, rows: &[RawNewTask<'_>]) -> Result<f64> {
    let mut c = rusqlite::Connection::open(path)?;
    c.execute_batch(
        "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
         PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
    )?;
    let start = Instant::now();
    let tx = c.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO tasks (id, user_id, title, description, completed, priority, version, \
             created_at, updated_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?;
        for r in rows {
            stmt.execute(rusqlite::params![
                r.id.as_bytes().as_slice(),
                r.user_id.as_bytes().as_slice(),
                r.title,
                r.description,
                r.completed,
                r.priority,
                r.version,
                r.created_at.timestamp_micros(),
                r.updated_at.timestamp_micros(),
                r.completed_at.map(|t| t.timestamp_micros()),
            ])?;
        }
    }
    tx.commit()?;
    Ok(start.elapsed().as_secs_f64())
}

fn report(rows: usize, rounds: usize, times: &mut BTreeMap<&'static str, Vec<f64>>) {
    let all: BTreeMap<&str, String> = times
        .iter()
        .map(|(k, v)| {
            (
                *k,
                v.iter()
                    .map(|s| format!("{s:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
        .collect();
    let med: BTreeMap<&str, f64> = times
        .iter_mut()
        .map(|(k, v)| (*k, support::median(v)))
        .collect();
    println!("\n## bulk import of {rows} tasks, median of {rounds} rounds\n");
    println!("| path | median s | rows/s | all rounds (s) |");
    println!("|---|---:|---:|---|");
    for (k, s) in &med {
        println!("| {k} | {s:.3} | {:.0} | {} |", rows as f64 / s, all[k]);
    }
    println!("\n| ratio (throughput) | value | SPEC §9 target |");
    println!("|---|---:|---|");
    let ratio = |label: &str, layer: &str, base: &str, target: &str| {
        if let (Some(l), Some(b)) = (med.get(layer), med.get(base)) {
            println!("| {label} | {:.3} | {target} |", b / l);
        }
    };
    ratio(
        "PG import (COPY, with ids) / psql \\copy",
        "pg_layer_import_copy",
        "pg_psql_copy_csv",
        "≥ 0.85",
    );
    ratio(
        "PG import (COPY, fresh ids) / psql \\copy",
        "pg_layer_import_copy_fresh_ids",
        "pg_psql_copy_csv",
        "≥ 0.85",
    );
    ratio(
        "PG create_many (COPY) / psql \\copy",
        "pg_layer_create_many",
        "pg_psql_copy_csv",
        "(reference)",
    );
    ratio(
        "PG create_many / raw Diesel multi-row INSERT",
        "pg_layer_create_many",
        "pg_raw_diesel_multirow_insert",
        "(reference)",
    );
    ratio(
        "SQLite import / rusqlite prepared",
        "sqlite_layer_import",
        "sqlite_rusqlite_prepared_insert",
        "≥ 0.85",
    );
    ratio(
        "SQLite import (fresh ids) / rusqlite prepared",
        "sqlite_layer_import_fresh_ids",
        "sqlite_rusqlite_prepared_insert",
        "≥ 0.85",
    );
    ratio(
        "SQLite create_many / rusqlite prepared",
        "sqlite_layer_create_many",
        "sqlite_rusqlite_prepared_insert",
        "≥ 0.85",
    );
    ratio(
        "SQLite create_many / raw Diesel multi-row",
        "sqlite_layer_create_many",
        "sqlite_raw_diesel_multirow_insert",
        "(reference)",
    );
    ratio(
        "SQLite raw Diesel multi-row / rusqlite prepared",
        "sqlite_raw_diesel_multirow_insert",
        "sqlite_rusqlite_prepared_insert",
        "(reference)",
    );
    ratio(
        "SQLite raw Diesel prepared single-row / rusqlite prepared",
        "sqlite_raw_diesel_prepared_insert",
        "sqlite_rusqlite_prepared_insert",
        "(reference)",
    );
}
