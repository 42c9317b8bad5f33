//! The task listing: one owner's tasks, filtered, in one of eight sort orders, one keyset page
//! at a time.

use diesel::dsl::{AsSelect, SqlTypeOf};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, SmallInt, Text};

use super::sort_key::SortKey;
use crate::conn::{DbConnection, MultiBackend};
use crate::error::Result;
use crate::models::{Page, PageRequest, Task, TaskFilter, TaskSort, Ts, UserId};
use crate::repo::{keyset, trim_page, uncached::Uncached};
use crate::schema::tasks;
use crate::sql_types::{DbTimestamp, DbUuid};

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

/// The statement [`list`] runs: the owner's tasks as [`Task`]s, boxed so that filters and the
/// order are chosen at run time.
pub(crate) type ListQuery =
    tasks::BoxedQuery<'static, MultiBackend, SqlTypeOf<AsSelect<Task, MultiBackend>>>;

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
#[tracing::instrument(
    name = "tasks.list",
    level = "debug",
    skip_all,
    fields(%owner, %sort, limit = page.limit, after_cursor = page.cursor.is_some())
)]
pub fn list(
    conn: &mut DbConnection,
    owner: UserId,
    filter: &TaskFilter,
    sort: TaskSort,
    page: &PageRequest,
) -> Result<Page<Task>> {
    let fts = use_fts(conn, filter)?;
    let (query, limit) = list_query(fts, owner, filter, sort, page)?;
    let mut items: Vec<Task> = match conn {
        DbConnection::Postgres(_) if needs_custom_plan(filter, sort) => {
            Uncached(query).load(conn)?
        }
        _ => query.load(conn)?,
    };
    let next_cursor = trim_page(&mut items, limit)
        .map(|last| SortKey::of(sort, last).encode(owner, sort, last.id));
    Ok(Page { items, next_cursor })
}

/// Whether PostgreSQL's generic plan for a cached statement of this shape may read the owner's
/// whole range (see `repo/uncached.rs`), so that [`list`] has it planned with its values every
/// time:
///
/// - a range filter on a column other than the sort column;
/// - a search: a generic plan cannot see the pattern, so it cannot tell a pattern the trigram
///   index serves (rare, 3 characters or more) from one it does not, and walks the sort
///   column's index filtering every row (515 ms instead of 0.15 ms for a pattern found nowhere
///   among 100 000 tasks, measured with `plan_cache_mode = force_generic_plan`).
fn needs_custom_plan(filter: &TaskFilter, sort: TaskSort) -> bool {
    use TaskSort::*;
    let priority_range = filter.priority_min.is_some() || filter.priority_max.is_some();
    let created_range = filter.created_after.is_some() || filter.created_before.is_some();
    let search = filter.search.as_deref().is_some_and(|s| !s.is_empty());
    (priority_range && !matches!(sort, PriorityAsc | PriorityDesc))
        || (created_range && !matches!(sort, CreatedAsc | CreatedDesc))
        || search
}

/// The fewest characters a search needs for the trigram index to serve it: a trigram index
/// holds every run of 3 characters, so a shorter pattern has none to look up and is found by
/// scanning the owner's rows (PostgreSQL's planner decides that itself; on SQLite [`list_query`]
/// leaves the FTS5 table out). Source: the `pg_trgm` and FTS5 `trigram` tokenizer documentation.
pub(crate) const TRIGRAM_MIN_CHARS: usize = 3;

/// The page query of [`list`] (fetching `limit + 1` rows to learn whether more follow), and
/// the checked limit. Also what `diagnostics::explain_list` explains, so that a plan is always
/// the plan of the statement the listing runs.
pub(crate) fn list_query(
    fts: bool,
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

    let search = filter.search.as_deref().filter(|s| !s.is_empty());
    let fts = fts && search.is_some_and(|s| s.chars().count() >= TRIGRAM_MIN_CHARS);
    let mut query = tasks::table
        .select(Task::as_select())
        .limit(i64::from(limit) + 1)
        .into_boxed();
    query = if fts {
        // SQLite without statistics (the layer runs no ANALYZE) would walk the owner's range of
        // a user-led index and probe the FTS5 candidates for each row: linear in the owner's
        // tasks. The unary `+` keeps the owner test off the indexes, so that the candidates
        // drive the plan (looked up by rowid, then sorted; at most the rows containing the
        // pattern's trigrams). Source: SQLite "The SQLite Query Optimizer Overview", §"Disqualifying
        // WHERE clause terms using unary-+".
        query.filter(diesel::dsl::sql::<Bool>("+tasks.user_id = ").bind::<DbUuid, _>(owner))
    } else {
        query.filter(tasks::user_id.eq(owner))
    };

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
    if let Some(s) = search {
        let pattern = like_contains(s);
        query = query.filter(
            lower(tasks::title)
                .like(pattern.clone())
                .escape('\\')
                .or(lower_nullable(tasks::description)
                    .like(pattern)
                    .escape('\\')),
        );
        if fts {
            // The candidates from the FTS5 trigram table (migration
            // 2026-12-01-000002_task_search_index (SQLite) and 2026-12-01-000003_task_search_index (PostgreSQL)), a superset of the rows the LIKE above
            // keeps; the pattern is a bound value, never SQL text.
            query = query.filter(
                diesel::dsl::sql::<Bool>(
                    "tasks.rowid IN (SELECT rowid FROM tasks_search WHERE tasks_search MATCH ",
                )
                .bind::<Text, _>(fts5_phrase(s))
                .sql(")"),
            );
        }
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

/// At most this many FTS5 candidates (over all owners) for [`list_query`] to be driven by them
/// on SQLite. A pattern found in more rows than this is listed by walking the owner's sort index
/// and filtering, as without the index: such a page fills after a few rows, where fetching and
/// sorting every candidate would cost a read of each of them (`benches/search.rs` measures a
/// pattern found in every row).
const FTS_MAX_CANDIDATES: i64 = 2_000;

/// Whether [`list_query`] should take its search candidates from SQLite's FTS5 trigram table:
/// on SQLite, for a search of [`TRIGRAM_MIN_CHARS`] or more whose candidates number at most
/// [`FTS_MAX_CANDIDATES`] (counted with one bounded FTS5 query). Always `false` on PostgreSQL,
/// whose planner chooses between the GIN index and the b-tree itself.
pub(crate) fn use_fts(conn: &mut DbConnection, filter: &TaskFilter) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    filter.validate()?;
    let Some(s) = filter
        .search
        .as_deref()
        .filter(|s| s.chars().count() >= TRIGRAM_MIN_CHARS)
    else {
        return Ok(false);
    };
    match conn {
        DbConnection::Postgres(_) => Ok(false),
        DbConnection::Sqlite(lite) => {
            let count: Count = diesel::sql_query(
                "SELECT count(*) AS n FROM \
                 (SELECT 1 FROM tasks_search WHERE tasks_search MATCH ? LIMIT ?)",
            )
            .bind::<Text, _>(fts5_phrase(s))
            .bind::<diesel::sql_types::BigInt, _>(FTS_MAX_CANDIDATES + 1)
            .get_result(lite)?;
            Ok(count.n <= FTS_MAX_CANDIDATES)
        }
    }
}

/// `s` as one FTS5 phrase (`"..."`, a `"` inside doubled): every character literal, so the
/// trigram tokenizer matches the rows containing `s` as a substring (case folded).
/// Source: SQLite FTS5 documentation, §3.1 "FTS5 Strings" and §4.3.4 "The Trigram Tokenizer".
fn fts5_phrase(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_patterns_are_literal() {
        assert_eq!(like_contains("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_contains("ÄbC"), "%Äbc%");
    }

    #[test]
    fn fts5_phrases_are_literal() {
        assert_eq!(fts5_phrase(r#"say "hi" OR x*"#), r#""say ""hi"" OR x*""#);
    }
}
