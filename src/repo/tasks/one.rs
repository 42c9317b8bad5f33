//! Operations on one task, named by its owner and its id: create, get, update, complete,
//! reopen, delete.

use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Nullable, SmallInt, Text};

use super::{ENTITY, owner_missing};
use crate::conn::{DbConnection, on_backend};
use crate::error::{Error, Result};
use crate::models::{NewTask, Task, TaskId, TaskPatch, Ts, UserId, now};
use crate::repo::not_found;
use crate::schema::{tasks, users};
use crate::sql_types::{DbTimestamp, DbUuid};

diesel::define_sql_function! {
    /// SQL `COALESCE` on a nullable timestamp.
    fn coalesce(x: Nullable<DbTimestamp>, y: Nullable<DbTimestamp>) -> Nullable<DbTimestamp>;
}

/// Creates a task for `owner`. A missing owner is [`Error::NotFound`] with entity `user`.
///
/// The insert is `INSERT INTO tasks ... SELECT ... FROM users WHERE id = <owner>`: one
/// statement, and a missing owner inserts nothing instead of raising a foreign-key error (which
/// on PostgreSQL would also abort a surrounding transaction).
///
/// ```no_run
/// # fn demo(conn: &mut taskstore::DbConnection, owner: taskstore::models::UserId) -> taskstore::Result<()> {
/// use taskstore::models::NewTask;
/// let task = taskstore::repo::tasks::create(conn, owner, &NewTask {
///     title: "  Water the plants ",
///     description: None,
///     priority: None,
/// })?;
/// assert_eq!((task.title.as_str(), task.priority, task.version), ("Water the plants", 3, 1));
/// # Ok(()) }
/// ```
#[tracing::instrument(name = "tasks.create", level = "debug", skip_all, fields(%owner))]
pub fn create(conn: &mut DbConnection, owner: UserId, new: &NewTask<'_>) -> Result<Task> {
    create_with_id(conn, owner, TaskId::new_v7(), new)
}

/// Like [`create`], with the id chosen by the caller, which makes a create whose outcome is
/// unknown safe to repeat: generate the id first (`TaskId::new_v7()`), and after an
/// [`Error::CommitUnknown`] `get` it and create it again with the same id only when it is
/// missing. A create with an id that already exists is [`Error::Conflict`], never a second row.
#[tracing::instrument(name = "tasks.create", level = "debug", skip_all, fields(%owner, %id))]
pub fn create_with_id(
    conn: &mut DbConnection,
    owner: UserId,
    id: TaskId,
    new: &NewTask<'_>,
) -> Result<Task> {
    let mut row = new.into_row(owner, now())?;
    row.id = id;
    let values = users::table.filter(users::id.eq(owner)).select((
        row.id.into_sql::<DbUuid>(),
        users::id,
        row.title.into_sql::<Text>(),
        row.description.into_sql::<Nullable<Text>>(),
        row.completed.into_sql::<Bool>(),
        row.priority.into_sql::<SmallInt>(),
        row.version.into_sql::<Integer>(),
        row.created_at.into_sql::<DbTimestamp>(),
        row.updated_at.into_sql::<DbTimestamp>(),
        row.completed_at.into_sql::<Nullable<DbTimestamp>>(),
    ));
    let inserted = diesel::insert_into(tasks::table)
        .values(values)
        .into_columns((
            tasks::id,
            tasks::user_id,
            tasks::title,
            tasks::description,
            tasks::completed,
            tasks::priority,
            tasks::version,
            tasks::created_at,
            tasks::updated_at,
            tasks::completed_at,
        ))
        .execute(conn)
        .map_err(|e| owner_missing(e.into()))?;
    if inserted == 0 {
        return Err(not_found("user"));
    }
    Ok(row.to_task())
}

/// The task `id` of `owner`, or [`Error::NotFound`].
#[tracing::instrument(name = "tasks.get", level = "debug", skip_all, fields(%owner, %id))]
pub fn get(conn: &mut DbConnection, owner: UserId, id: TaskId) -> Result<Task> {
    // The hottest query: on the backend's own connection (see `on_backend`).
    on_backend!(conn, |c| tasks::table
        .filter(tasks::id.eq(id))
        .filter(tasks::user_id.eq(owner))
        .select(Task::as_select())
        .first(c)
        .optional())?
    .ok_or(not_found(ENTITY))
}

/// Applies a partial update (validated first) in one statement: `version` + 1, `updated_at`
/// moves, `completed_at` is set when `completed` becomes true (kept when it already was) and
/// cleared when it becomes false. An empty description is stored as absent (cleared).
///
/// An empty patch ([`TaskPatch::is_empty`]) changes nothing: the task is returned as it is,
/// same `version` and `updated_at`.
///
/// With `expected_version`, the update happens only if the task is at that version; otherwise
/// [`Error::StaleVersion`] with the current version, and nothing changes. A task of another
/// user is [`Error::NotFound`].
#[tracing::instrument(name = "tasks.update", level = "debug", skip_all, fields(%owner, %id, ?expected_version))]
pub fn update(
    conn: &mut DbConnection,
    owner: UserId,
    id: TaskId,
    patch: &TaskPatch,
    expected_version: Option<i32>,
) -> Result<Task> {
    let title = patch.validate()?;
    if patch.is_empty() {
        let task = get(conn, owner, id)?;
        return match expected_version {
            Some(expected) if expected != task.version => Err(Error::StaleVersion {
                expected,
                actual: task.version,
            }),
            _ => Ok(task),
        };
    }
    let now = Ts(now());
    let changes = (
        tasks::version.eq(tasks::version + 1),
        tasks::updated_at.eq(now),
        title.map(|t| tasks::title.eq(t)),
        patch.description_change().map(|d| tasks::description.eq(d)),
        patch.priority.map(|p| tasks::priority.eq(p)),
        patch.completed.map(|c| tasks::completed.eq(c)),
        // completed_at is NULL exactly while the task is open (a CHECK), so COALESCE keeps the
        // first completion time when an already completed task is "completed" again.
        (patch.completed == Some(true))
            .then(|| tasks::completed_at.eq(coalesce(tasks::completed_at, Some(now)))),
        (patch.completed == Some(false)).then(|| tasks::completed_at.eq(None::<Ts>)),
    );
    let mut statement = diesel::update(tasks::table)
        .filter(tasks::id.eq(id))
        .filter(tasks::user_id.eq(owner))
        .set(changes)
        .into_boxed();
    if let Some(v) = expected_version {
        statement = statement.filter(tasks::version.eq(v));
    }
    let updated = statement
        .returning(tasks::all_columns)
        .get_result(conn)
        .optional()?;
    match updated {
        Some(task) => Ok(task),
        None => Err(why_not_updated(conn, owner, id, expected_version)?),
    }
}

/// After an update touched no row: stale version or not found.
fn why_not_updated(
    conn: &mut DbConnection,
    owner: UserId,
    id: TaskId,
    expected: Option<i32>,
) -> Result<Error> {
    if expected.is_none() {
        return Ok(not_found(ENTITY));
    }
    let actual = tasks::table
        .filter(tasks::id.eq(id))
        .filter(tasks::user_id.eq(owner))
        .select(tasks::version)
        .first::<i32>(conn)
        .optional()?;
    Ok(match (expected, actual) {
        (Some(expected), Some(actual)) => Error::StaleVersion { expected, actual },
        _ => not_found(ENTITY),
    })
}

/// Marks the task completed (sets `completed_at`, `version` + 1). Completing a completed task
/// changes nothing and returns it as it is.
#[tracing::instrument(name = "tasks.complete", level = "debug", skip_all, fields(%owner, %id))]
pub fn complete(conn: &mut DbConnection, owner: UserId, id: TaskId) -> Result<Task> {
    set_completed(conn, owner, id, true)
}

/// Marks the task open again (clears `completed_at`, `version` + 1). Reopening an open task
/// changes nothing and returns it as it is.
#[tracing::instrument(name = "tasks.reopen", level = "debug", skip_all, fields(%owner, %id))]
pub fn reopen(conn: &mut DbConnection, owner: UserId, id: TaskId) -> Result<Task> {
    set_completed(conn, owner, id, false)
}

fn set_completed(conn: &mut DbConnection, owner: UserId, id: TaskId, done: bool) -> Result<Task> {
    let now = Ts(now());
    let updated = diesel::update(tasks::table)
        .filter(tasks::id.eq(id))
        .filter(tasks::user_id.eq(owner))
        .filter(tasks::completed.eq(!done))
        .set((
            tasks::completed.eq(done),
            tasks::completed_at.eq(done.then_some(now)),
            tasks::updated_at.eq(now),
            tasks::version.eq(tasks::version + 1),
        ))
        .returning(tasks::all_columns)
        .get_result(conn)
        .optional()?;
    match updated {
        Some(task) => Ok(task),
        // Already in that state, or not this owner's task.
        None => get(conn, owner, id),
    }
}

/// Deletes the task, or [`Error::NotFound`].
#[tracing::instrument(name = "tasks.delete", level = "debug", skip_all, fields(%owner, %id))]
pub fn delete(conn: &mut DbConnection, owner: UserId, id: TaskId) -> Result<()> {
    let n = diesel::delete(
        tasks::table
            .filter(tasks::id.eq(id))
            .filter(tasks::user_id.eq(owner)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(not_found(ENTITY));
    }
    Ok(())
}
