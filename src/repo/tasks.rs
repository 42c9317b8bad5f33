//! Task operations, always scoped by the owner's id.
//!
//! Every query carries `user_id = <owner>`: a task id that belongs to another user behaves
//! exactly like one that does not exist ([`Error::NotFound`] with entity `task`, nothing
//! changed, zero rows counted). Each function takes `&mut DbConnection`, so it runs standalone
//! or inside `with_transaction` unchanged; the ones that write several statements open a
//! transaction themselves (a savepoint when already inside one).

use std::collections::HashMap;

use chrono::DateTime;
use diesel::dsl::{AsSelect, SqlTypeOf, count_star};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Nullable, SmallInt, Text};

use super::{cursor, keyset, not_found};
use crate::conn::{DbConnection, MultiBackend, on_backend};
use crate::error::{DbErrorKind, Error, Result};
use crate::models::task::TaskRow;
use crate::models::{
    NewTask, Page, PageRequest, Task, TaskFilter, TaskId, TaskImport, TaskPatch, TaskSort,
    TaskStats, Ts, UserId, now,
};
use crate::schema::{tasks, users};
use crate::sql_types::{DbTimestamp, DbUuid};

const ENTITY: &str = "task";

/// Columns per inserted row; with the bind limits below it sizes each multi-row INSERT.
const TASK_COLUMNS: usize = 10;
/// PostgreSQL's limit on bind parameters per statement (the wire format counts them in 16 bits).
const PG_MAX_BINDS: usize = 65_535;
/// SQLite's default `SQLITE_MAX_VARIABLE_NUMBER` (since 3.32).
const SQLITE_MAX_BINDS: usize = 32_766;
/// Ids per `IN (...)` list in the `*_many` operations: well under both bind limits, and small
/// enough that a statement stays cheap to plan.
const IDS_PER_STATEMENT: usize = 10_000;

diesel::define_sql_function! {
    /// SQL `lower(text)`. On PostgreSQL the searched columns are `COLLATE "C"`, where `lower`
    /// folds ASCII letters only — exactly what SQLite's built-in `lower` does.
    #[sql_name = "lower"]
    fn lower(x: Text) -> Text;
}

diesel::define_sql_function! {
    /// SQL `lower(text)` on a nullable column.
    #[sql_name = "lower"]
    fn lower_nullable(x: Nullable<Text>) -> Nullable<Text>;
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
pub fn create(conn: &mut DbConnection, owner: UserId, new: &NewTask<'_>) -> Result<Task> {
    let row = new.into_row(owner, now())?;
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

/// Creates many tasks for `owner` in one transaction, with multi-row INSERTs sized under the
/// backend's bind limit. Every task is validated before anything is written (an error names
/// the field and the row, counting from 1). Returns how many were created. All share one
/// `created_at`; their ids (v7, generated in order) keep the given order in id-tie-broken sorts.
pub fn create_many(conn: &mut DbConnection, owner: UserId, new: &[NewTask<'_>]) -> Result<usize> {
    let now = now();
    let rows = new
        .iter()
        .enumerate()
        .map(|(i, t)| t.into_row(owner, now).map_err(|e| at_row(e, i)))
        .collect::<Result<Vec<_>>>()?;
    conn.transaction(|conn| {
        require_owner(conn, owner)?;
        insert_rows(conn, &rows)
    })
}

/// Imports tasks for `owner` (typically from an export): every row is validated first, then
/// all are written in one transaction — on PostgreSQL with binary `COPY FROM STDIN`, on SQLite
/// with multi-row INSERTs. An id that already exists (for any user), or that appears twice in
/// the input, is [`Error::Conflict`] on `tasks.id` and nothing is written. Returns how many
/// were imported.
pub fn import(conn: &mut DbConnection, owner: UserId, items: &[TaskImport]) -> Result<usize> {
    let mut seen = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        item.validate().map_err(|e| at_row(e, i))?;
        if let Some(id) = item.id {
            if let Some(first) = seen.insert(id, i) {
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
    }
    let now = now();
    let rows: Vec<TaskRow<'_>> = items.iter().map(|t| t.to_row(owner, now)).collect();
    let given: Vec<TaskId> = items.iter().filter_map(|t| t.id).collect();
    let result = conn.transaction(|conn| {
        require_owner(conn, owner)?;
        match conn {
            DbConnection::Postgres(_) => {
                // A failed COPY aborts the transaction, so the ids are checked first: one
                // `= ANY($1)` per 10 000 ids, no measurable cost beside the COPY.
                if let Some(conflict) = taken_id(conn, &given, &seen)? {
                    return Err(conflict);
                }
                let DbConnection::Postgres(pg) = conn else {
                    unreachable!("matched above")
                };
                diesel::copy_from(tasks::table)
                    .from_insertable(&rows)
                    .execute(pg)
                    .map_err(|e| owner_missing(e.into()))
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
        }) if constraint == "tasks.id" && conn.backend() == crate::config::BackendKind::Sqlite => {
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

/// The task `id` of `owner`, or [`Error::NotFound`].
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
/// cleared when it becomes false. An empty patch still counts as an update.
///
/// With `expected_version`, the update happens only if the task is at that version; otherwise
/// [`Error::StaleVersion`] with the current version, and nothing changes. A task of another
/// user is [`Error::NotFound`].
pub fn update(
    conn: &mut DbConnection,
    owner: UserId,
    id: TaskId,
    patch: &TaskPatch,
    expected_version: Option<i32>,
) -> Result<Task> {
    let title = patch.validate()?;
    let now = Ts(now());
    let changes = (
        tasks::version.eq(tasks::version + 1),
        tasks::updated_at.eq(now),
        title.map(|t| tasks::title.eq(t)),
        patch
            .description
            .as_ref()
            .map(|d| tasks::description.eq(d.as_deref())),
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

diesel::define_sql_function! {
    /// SQL `COALESCE` on a nullable timestamp.
    fn coalesce(x: Nullable<DbTimestamp>, y: Nullable<DbTimestamp>) -> Nullable<DbTimestamp>;
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
pub fn complete(conn: &mut DbConnection, owner: UserId, id: TaskId) -> Result<Task> {
    set_completed(conn, owner, id, true)
}

/// Marks the task open again (clears `completed_at`, `version` + 1). Reopening an open task
/// changes nothing and returns it as it is.
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

/// Completes every open task of `owner` among `ids` (others' ids and unknown ids are ignored)
/// and returns how many changed. Tasks already completed are left as they are (not counted).
/// More ids than fit one statement are processed in one transaction.
pub fn complete_many(conn: &mut DbConnection, owner: UserId, ids: &[TaskId]) -> Result<usize> {
    let now = Ts(now());
    for_id_chunks(conn, ids, |conn, chunk| {
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
pub fn delete_many(conn: &mut DbConnection, owner: UserId, ids: &[TaskId]) -> Result<usize> {
    for_id_chunks(conn, ids, |conn, chunk| {
        Ok(diesel::delete(
            tasks::table
                .filter(tasks::user_id.eq(owner))
                .filter(tasks::id.eq_any(chunk)),
        )
        .execute(conn)?)
    })
}

/// Runs `f` on the distinct ids in statement-sized chunks (in a transaction when there is more
/// than one) and sums the counts.
fn for_id_chunks(
    conn: &mut DbConnection,
    ids: &[TaskId],
    f: impl Fn(&mut DbConnection, &[TaskId]) -> Result<usize>,
) -> Result<usize> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    match ids.len() {
        0 => Ok(0),
        n if n <= IDS_PER_STATEMENT => f(conn, &ids),
        _ => conn.transaction(|conn| {
            ids.chunks(IDS_PER_STATEMENT)
                .try_fold(0, |sum, chunk| Ok(sum + f(conn, chunk)?))
        }),
    }
}

/// One page of `owner`'s tasks matching `filter`, in `sort` order, after `page.cursor`.
///
/// Keyset pagination: the cursor carries the last row's sort key and id, and the next page
/// starts right after it in the index `(user_id, <sort column>, id)`, so page N costs the same
/// as page 1. Equal sort keys are ordered by id. A cursor from another owner, another sort
/// order, or altered in any way is a validation error on `cursor`.
///
/// ```no_run
/// # fn demo(conn: &mut taskstore::DbConnection, owner: taskstore::models::UserId) -> taskstore::Result<()> {
/// use taskstore::models::{PageRequest, TaskFilter, TaskSort};
/// let filter = TaskFilter { completed: Some(false), ..TaskFilter::default() };
/// let mut request = PageRequest::first(50);
/// loop {
///     let page = taskstore::repo::tasks::list(conn, owner, &filter, TaskSort::PriorityDesc, &request)?;
///     for task in &page.items { println!("{} {}", task.priority, task.title); }
///     match page.next_cursor {
///         Some(c) => request.cursor = Some(c),
///         None => break,
///     }
/// }
/// # Ok(()) }
/// ```
pub fn list(
    conn: &mut DbConnection,
    owner: UserId,
    filter: &TaskFilter,
    sort: TaskSort,
    page: &PageRequest,
) -> Result<Page<Task>> {
    let (query, limit) = list_query(owner, filter, sort, page)?;
    let mut items: Vec<Task> = match conn {
        DbConnection::Postgres(_) if needs_custom_plan(filter, sort) => {
            super::uncached::Uncached(query).load(conn)?
        }
        _ => query.load(conn)?,
    };
    let next_cursor = super::trim_page(&mut items, limit)
        .map(|last| SortKey::of(sort, last).encode(owner, sort, last.id));
    Ok(Page { items, next_cursor })
}

/// Whether the listing filters by a range on a column other than its sort column: the one
/// shape where PostgreSQL's generic plan for a cached statement reads the owner's whole range
/// (see `repo/uncached.rs`), so [`list`] has it planned with its values every time.
fn needs_custom_plan(filter: &TaskFilter, sort: TaskSort) -> bool {
    use TaskSort::*;
    let priority_range = filter.priority_min.is_some() || filter.priority_max.is_some();
    let created_range = filter.created_after.is_some() || filter.created_before.is_some();
    (priority_range && !matches!(sort, PriorityAsc | PriorityDesc))
        || (created_range && !matches!(sort, CreatedAsc | CreatedDesc))
}

/// The plan of exactly the statement [`list`] runs for these arguments, for tests and
/// diagnostics: on PostgreSQL the output of `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` (the query
/// is executed; nothing is written), on SQLite the `detail` lines of `EXPLAIN QUERY PLAN`, one
/// per line. Arguments are validated as for [`list`].
pub fn explain_list(
    conn: &mut DbConnection,
    owner: UserId,
    filter: &TaskFilter,
    sort: TaskSort,
    page: &PageRequest,
) -> Result<String> {
    use super::explain::Explain;
    let (query, _) = list_query(owner, filter, sort, page)?;
    match conn {
        DbConnection::Postgres(_) => {
            let plan: Vec<String> =
                Explain::<_, Text>::new("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ", query)
                    .load(conn)?;
            Ok(plan.join("\n"))
        }
        DbConnection::Sqlite(_) => {
            let rows: Vec<(i32, i32, i32, String)> =
                Explain::<_, (Integer, Integer, Integer, Text)>::new("EXPLAIN QUERY PLAN ", query)
                    .load(conn)?;
            Ok(rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n"))
        }
    }
}

/// The page query of [`list`] (fetching `limit + 1` rows to learn whether more follow), and
/// the checked limit.
fn list_query(
    owner: UserId,
    filter: &TaskFilter,
    sort: TaskSort,
    page: &PageRequest,
) -> Result<(ListQuery, u32)> {
    let limit = page.checked_limit()?;
    filter.validate()?;
    let after = page
        .cursor
        .as_deref()
        .map(|c| SortKey::decode(owner, sort, c))
        .transpose()?;

    let mut query = tasks::table
        .filter(tasks::user_id.eq(owner))
        .select(Task::as_select())
        .limit(i64::from(limit) + 1)
        .into_boxed();

    if let Some(done) = filter.completed {
        query = query.filter(tasks::completed.eq(done));
    }
    if let Some(p) = filter.priority_min {
        query = query.filter(tasks::priority.ge(p));
    }
    if let Some(p) = filter.priority_max {
        query = query.filter(tasks::priority.le(p));
    }
    if let Some(t) = filter.created_after {
        query = query.filter(tasks::created_at.gt(Ts(t)));
    }
    if let Some(t) = filter.created_before {
        query = query.filter(tasks::created_at.lt(Ts(t)));
    }
    if let Some(s) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = like_contains(s);
        query = query.filter(
            lower(tasks::title)
                .like(pattern.clone())
                .escape('\\')
                .or(lower_nullable(tasks::description)
                    .like(pattern)
                    .escape('\\')),
        );
    }

    let desc = sort.is_desc();
    macro_rules! order_by {
        ($column:expr) => {
            if desc {
                query.order(($column.desc(), tasks::id.desc()))
            } else {
                query.order(($column.asc(), tasks::id.asc()))
            }
        };
    }
    query = match sort {
        TaskSort::CreatedAsc | TaskSort::CreatedDesc => order_by!(tasks::created_at),
        TaskSort::UpdatedAsc | TaskSort::UpdatedDesc => order_by!(tasks::updated_at),
        TaskSort::PriorityAsc | TaskSort::PriorityDesc => order_by!(tasks::priority),
        TaskSort::TitleAsc | TaskSort::TitleDesc => order_by!(tasks::title),
    };
    if let Some((id, key)) = after {
        let id = id.into_sql::<DbUuid>();
        query = match key {
            SortKey::Created(t) => query.filter(keyset::after(
                tasks::created_at,
                tasks::id,
                t.into_sql::<DbTimestamp>(),
                id,
                desc,
            )),
            SortKey::Updated(t) => query.filter(keyset::after(
                tasks::updated_at,
                tasks::id,
                t.into_sql::<DbTimestamp>(),
                id,
                desc,
            )),
            SortKey::Priority(p) => query.filter(keyset::after(
                tasks::priority,
                tasks::id,
                p.into_sql::<SmallInt>(),
                id,
                desc,
            )),
            SortKey::Title(t) => query.filter(keyset::after(
                tasks::title,
                tasks::id,
                t.into_sql::<Text>(),
                id,
                desc,
            )),
        };
    }

    Ok((query, limit))
}

type ListQuery = tasks::BoxedQuery<'static, MultiBackend, SqlTypeOf<AsSelect<Task, MultiBackend>>>;

/// Counts of `owner`'s tasks: total, completed, open, and per priority. One grouped query over
/// the owner's rows.
pub fn stats(conn: &mut DbConnection, owner: UserId) -> Result<TaskStats> {
    let groups: Vec<(i16, bool, i64)> = tasks::table
        .filter(tasks::user_id.eq(owner))
        .group_by((tasks::priority, tasks::completed))
        .select((tasks::priority, tasks::completed, count_star()))
        .load(conn)?;
    let mut stats = TaskStats::default();
    for (priority, completed, n) in groups {
        stats.total += n;
        if completed {
            stats.completed += n;
        } else {
            stats.open += n;
        }
        if let Some(slot) = usize::try_from(priority - 1)
            .ok()
            .and_then(|i| stats.by_priority.get_mut(i))
        {
            *slot += n;
        }
    }
    Ok(stats)
}

/// The sort key of a row in a listing, as carried by a cursor.
enum SortKey {
    Created(Ts),
    Updated(Ts),
    Priority(i16),
    Title(String),
}

impl SortKey {
    fn of(sort: TaskSort, task: &Task) -> Self {
        match sort {
            TaskSort::CreatedAsc | TaskSort::CreatedDesc => Self::Created(Ts(task.created_at)),
            TaskSort::UpdatedAsc | TaskSort::UpdatedDesc => Self::Updated(Ts(task.updated_at)),
            TaskSort::PriorityAsc | TaskSort::PriorityDesc => Self::Priority(task.priority),
            TaskSort::TitleAsc | TaskSort::TitleDesc => Self::Title(task.title.clone()),
        }
    }

    fn code(sort: TaskSort) -> u8 {
        let i = TaskSort::ALL.iter().position(|s| *s == sort).unwrap_or(0);
        u8::try_from(i + 1).unwrap_or(0)
    }

    fn encode(&self, owner: UserId, sort: TaskSort, id: TaskId) -> String {
        let key = match self {
            Self::Created(t) | Self::Updated(t) => t.0.timestamp_micros().to_be_bytes().to_vec(),
            Self::Priority(p) => p.to_be_bytes().to_vec(),
            Self::Title(t) => t.as_bytes().to_vec(),
        };
        cursor::encode(owner.0, Self::code(sort), id.0, &key)
    }

    fn decode(owner: UserId, sort: TaskSort, raw: &str) -> Result<(TaskId, Self)> {
        let (id, key) = cursor::decode(owner.0, Self::code(sort), raw)?;
        let damaged = || cursor::invalid("is damaged");
        let time = |key: &[u8]| {
            let micros = i64::from_be_bytes(key.try_into().map_err(|_| damaged())?);
            DateTime::from_timestamp_micros(micros)
                .map(Ts)
                .ok_or_else(damaged)
        };
        let key = match sort {
            TaskSort::CreatedAsc | TaskSort::CreatedDesc => Self::Created(time(&key)?),
            TaskSort::UpdatedAsc | TaskSort::UpdatedDesc => Self::Updated(time(&key)?),
            TaskSort::PriorityAsc | TaskSort::PriorityDesc => {
                Self::Priority(i16::from_be_bytes(key.try_into().map_err(|_| damaged())?))
            }
            TaskSort::TitleAsc | TaskSort::TitleDesc => {
                Self::Title(String::from_utf8(key).map_err(|_| damaged())?)
            }
        };
        Ok((TaskId(id), key))
    }
}

/// `%<s>%` for `LIKE ... ESCAPE '\'`, with `\`, `%` and `_` escaped so they match themselves,
/// and ASCII letters lower-cased (the column side is `lower(...)`, ASCII-only on both backends).
fn like_contains(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 8);
    p.push('%');
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c.to_ascii_lowercase());
    }
    p.push('%');
    p
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

/// Fails with `NotFound { entity: "user" }` unless `owner` exists.
fn require_owner(conn: &mut DbConnection, owner: UserId) -> Result<()> {
    users::table
        .find(owner)
        .select(users::id)
        .first::<UserId>(conn)
        .optional()?
        .map(|_| ())
        .ok_or(not_found("user"))
}

/// A foreign-key failure while inserting tasks means the owner is gone (deleted concurrently).
fn owner_missing(e: Error) -> Error {
    match e {
        Error::Database {
            kind: DbErrorKind::ForeignKeyViolation,
            ..
        } => not_found("user"),
        other => other,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_patterns_are_literal() {
        assert_eq!(like_contains("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_contains("ÄbC"), "%Äbc%");
    }
}
