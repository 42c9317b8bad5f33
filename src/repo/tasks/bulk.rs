//! Operations on many tasks at once: create many and import (multi-row `INSERT`s sized under
//! the backend's bind limit, `COPY` on PostgreSQL: always for import, from `COPY_FROM_ROWS`
//! rows on for create many), complete and delete many by ids.
//!
//! Their transactions begin as writers ([`nested`](crate::tx::nested): `BEGIN IMMEDIATE` on
//! SQLite): they read (the owner, taken ids) before they write, and a deferred SQLite
//! transaction that does so fails at once with "database is locked" when another connection
//! wrote in between, where a writer's `BEGIN` waits under `busy_timeout`. On PostgreSQL their
//! `BEGIN` batch also names the owner ([`TxOptions::owner`]), so they work for a role under
//! row-level security at no extra round trip; inside a caller's transaction they are savepoints
//! and the caller's transaction decides.

use std::collections::HashMap;

use diesel::prelude::*;

use super::{owner_missing, require_owner};
use crate::config::BackendKind;
use crate::conn::DbConnection;
use crate::error::{Error, Result};
use crate::models::task::TaskRow;
use crate::models::{NewTask, TaskId, TaskImport, Ts, UserId, now};
use crate::schema::tasks;
use crate::tx::{TxOptions, nested_opts};

/// Columns per inserted row; with the bind limits below it sizes each multi-row INSERT.
const TASK_COLUMNS: usize = 10;
/// PostgreSQL's limit on bind parameters per statement (the wire format counts them in 16 bits).
const PG_MAX_BINDS: usize = 65_535;
/// SQLite's default `SQLITE_MAX_VARIABLE_NUMBER` (since 3.32).
const SQLITE_MAX_BINDS: usize = 32_766;
/// Ids per `IN (...)` list in the `*_many` operations: well under both bind limits, and small
/// enough that a statement stays cheap to plan.
const IDS_PER_STATEMENT: usize = 10_000;

/// From this many rows on, `create_many` writes with binary `COPY FROM STDIN` on PostgreSQL;
/// below it, with a multi-row INSERT. Measured with `examples/copy_threshold.rs` (the same rows
/// through both statements, paired, bench/RESULTS.md): COPY costs an extra protocol exchange,
/// which a handful of rows does not pay back.
pub const COPY_FROM_ROWS: usize = 4;

/// Creates many tasks for `owner` in one transaction: on PostgreSQL with binary
/// `COPY FROM STDIN` from [`COPY_FROM_ROWS`] rows on, otherwise (and on SQLite) with multi-row
/// INSERTs sized under the backend's bind limit. Every task is validated before anything is
/// written (an error names the field and the row, counting from 1). Returns how many were
/// created; nothing is written if any row fails. All share one `created_at`; their ids (v7,
/// generated in order) keep the given order in id-tie-broken sorts.
#[tracing::instrument(name = "tasks.create_many", level = "debug", skip_all, fields(%owner, rows = new.len()))]
pub fn create_many(conn: &mut DbConnection, owner: UserId, new: &[NewTask<'_>]) -> Result<usize> {
    let now = now();
    let rows = new
        .iter()
        .enumerate()
        .map(|(i, t)| t.into_row(owner, now).map_err(|e| at_row(e, i)))
        .collect::<Result<Vec<_>>>()?;
    nested_opts(conn, &TxOptions::new().owner(owner), |conn| {
        require_owner(conn, owner)?;
        match conn {
            // Fresh v7 ids cannot collide, so nothing needs checking before the COPY.
            DbConnection::Postgres(_) if rows.len() >= COPY_FROM_ROWS => copy_rows(conn, &rows),
            _ => insert_rows(conn, &rows),
        }
    })
}

/// Writes rows with one binary `COPY FROM STDIN` on PostgreSQL — with multi-row INSERTs, which
/// the policy checks row by row, when row-level security applies to the session
/// (docs/row-security.sql), since PostgreSQL refuses `COPY FROM` then (one extra statement
/// asks) — and with multi-row INSERTs on SQLite.
fn copy_rows(conn: &mut DbConnection, rows: &[TaskRow<'_>]) -> Result<usize> {
    let DbConnection::Postgres(pg) = conn else {
        return insert_rows(conn, rows);
    };
    let row_security = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
        "row_security_active('tasks')",
    ))
    .get_result::<bool>(pg)?;
    if row_security {
        return insert_rows(conn, rows);
    }
    diesel::copy_from(tasks::table)
        .from_insertable(rows)
        .execute(pg)
        .map_err(|e| owner_missing(e.into()))
}

/// Imports tasks for `owner` (typically from an export): every row is validated first, then
/// all are written in one transaction — on PostgreSQL with binary `COPY FROM STDIN` (multi-row
/// INSERTs when row-level security applies to the session, where PostgreSQL refuses `COPY
/// FROM`), on SQLite with multi-row INSERTs. An id that already exists (for any user), or that
/// appears twice in
/// the input, is [`Error::Conflict`] on `tasks.id` and nothing is written. Returns how many
/// were imported.
#[tracing::instrument(name = "tasks.import", level = "debug", skip_all, fields(%owner, rows = items.len()))]
pub fn import(conn: &mut DbConnection, owner: UserId, items: &[TaskImport]) -> Result<usize> {
    let mut seen = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        item.validate().map_err(|e| at_row(e, i))?;
        if let Some(id) = item.id
            && let Some(first) = seen.insert(id, i)
        {
            return Err(id_conflict(
                id,
                format!(
                    "appears twice in the import (rows {} and {})",
                    first + 1,
                    i + 1
                ),
            ));
        }
    }
    let now = now();
    let rows: Vec<TaskRow<'_>> = items.iter().map(|t| t.to_row(owner, now)).collect();
    let given: Vec<TaskId> = items.iter().filter_map(|t| t.id).collect();
    let result = nested_opts(conn, &TxOptions::new().owner(owner), |conn| {
        require_owner(conn, owner)?;
        match conn {
            DbConnection::Postgres(_) => {
                // A failed COPY aborts the transaction, so the ids are checked first: one
                // `= ANY($1)` per 10 000 ids, no measurable cost beside the COPY.
                if let Some(conflict) = taken_id(conn, &given, &seen)? {
                    return Err(conflict);
                }
                copy_rows(conn, &rows)
            }
            DbConnection::Sqlite(_) => insert_rows(conn, &rows),
        }
    });
    match result {
        // SQLite: the ids are looked up only when an insert hits one that exists, once this
        // import is rolled back (so that its own earlier rows are gone): checking first, with
        // one placeholder per id, cost 7 % of a 100 000-row import (bench/RESULTS.md).
        Err(Error::Conflict {
            constraint,
            message,
        }) if constraint == "tasks.id" && conn.backend() == BackendKind::Sqlite => {
            Err(taken_id(conn, &given, &seen)?.unwrap_or(Error::Conflict {
                constraint,
                message,
            }))
        }
        other => other,
    }
}

/// The conflict for the first of `ids` that already exists, naming its row of the import
/// (`rows`: id → index), or `None`.
fn taken_id(
    conn: &mut DbConnection,
    ids: &[TaskId],
    rows: &HashMap<TaskId, usize>,
) -> Result<Option<Error>> {
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let taken = tasks::table
            .select(tasks::id)
            .filter(tasks::id.eq_any(chunk))
            .first::<TaskId>(conn)
            .optional()?;
        if let Some(id) = taken {
            return Ok(Some(id_conflict(
                id,
                format!("already exists (row {} of the import)", rows[&id] + 1),
            )));
        }
    }
    Ok(None)
}

/// Completes every open task of `owner` among `ids` (others' ids and unknown ids are ignored)
/// and returns how many changed. Tasks already completed are left as they are (not counted).
/// More ids than fit one statement are processed in one transaction.
#[tracing::instrument(name = "tasks.complete_many", level = "debug", skip_all, fields(%owner, ids = ids.len()))]
pub fn complete_many(conn: &mut DbConnection, owner: UserId, ids: &[TaskId]) -> Result<usize> {
    let now = Ts(now());
    for_id_chunks(conn, owner, ids, |conn, chunk| {
        Ok(diesel::update(tasks::table)
            .filter(tasks::user_id.eq(owner))
            .filter(tasks::id.eq_any(chunk))
            .filter(tasks::completed.eq(false))
            .set((
                tasks::completed.eq(true),
                tasks::completed_at.eq(Some(now)),
                tasks::updated_at.eq(now),
                tasks::version.eq(tasks::version + 1),
            ))
            .execute(conn)?)
    })
}

/// Deletes every task of `owner` among `ids` (others' ids and unknown ids are ignored) and
/// returns how many were deleted. More ids than fit one statement are processed in one
/// transaction.
#[tracing::instrument(name = "tasks.delete_many", level = "debug", skip_all, fields(%owner, ids = ids.len()))]
pub fn delete_many(conn: &mut DbConnection, owner: UserId, ids: &[TaskId]) -> Result<usize> {
    for_id_chunks(conn, owner, ids, |conn, chunk| {
        Ok(diesel::delete(
            tasks::table
                .filter(tasks::user_id.eq(owner))
                .filter(tasks::id.eq_any(chunk)),
        )
        .execute(conn)?)
    })
}

/// Runs `f` on the distinct ids in statement-sized chunks (in a transaction scoped to `owner`
/// when there is more than one) and sums the counts.
fn for_id_chunks(
    conn: &mut DbConnection,
    owner: UserId,
    ids: &[TaskId],
    f: impl Fn(&mut DbConnection, &[TaskId]) -> Result<usize>,
) -> Result<usize> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    match ids.len() {
        0 => Ok(0),
        n if n <= IDS_PER_STATEMENT => f(conn, &ids),
        _ => nested_opts(conn, &TxOptions::new().owner(owner), |conn| {
            ids.chunks(IDS_PER_STATEMENT)
                .try_fold(0, |sum, chunk| Ok(sum + f(conn, chunk)?))
        }),
    }
}

/// Inserts rows with as few multi-row INSERT statements as the backend's bind limit allows.
fn insert_rows(conn: &mut DbConnection, rows: &[TaskRow<'_>]) -> Result<usize> {
    let max_binds = match conn {
        DbConnection::Postgres(_) => PG_MAX_BINDS,
        DbConnection::Sqlite(_) => SQLITE_MAX_BINDS,
    };
    let mut inserted = 0;
    for chunk in rows.chunks(max_binds / TASK_COLUMNS) {
        // The same statement on either backend, executed on the inner connection: Diesel's
        // multi-backend has no multi-row INSERT for SQLite (only `SqliteConnection` itself
        // does), and through it every row would become its own statement.
        let n = match conn {
            DbConnection::Postgres(pg) => {
                diesel::insert_into(tasks::table).values(chunk).execute(pg)
            }
            DbConnection::Sqlite(lite) => diesel::insert_into(tasks::table)
                .values(chunk)
                .execute(lite),
        };
        inserted += n.map_err(|e| owner_missing(e.into()))?;
    }
    Ok(inserted)
}

fn id_conflict(id: TaskId, what: String) -> Error {
    Error::Conflict {
        constraint: "tasks.id".into(),
        message: format!("a task with id {id} {what}"),
    }
}

/// Names the row (counting from 1) of a batch in a validation error.
fn at_row(e: Error, i: usize) -> Error {
    match e {
        Error::Validation { field, reason } => Error::Validation {
            field,
            reason: format!("row {}: {reason}", i + 1),
        },
        other => other,
    }
}
