//! Query plans of the statements the repositories run, for tests and for looking at a slow
//! listing. Not for the request path: see what each function costs below.
//!
//! [`explain_list`] puts `EXPLAIN` in front of exactly the statement (and bind values) that
//! [`repo::tasks::list`](crate::repo::tasks::list) sends, so a plan shown here is the plan of
//! the listing, not of a hand-written look-alike.
//!
//! ```no_run
//! # fn demo(conn: &mut taskstore::DbConnection, owner: taskstore::models::UserId) -> taskstore::Result<()> {
//! use taskstore::models::{PageRequest, TaskFilter, TaskSort};
//! let plan = taskstore::diagnostics::explain_list(
//!     conn, owner, &TaskFilter::default(), TaskSort::CreatedDesc, &PageRequest::first(20),
//! )?;
//! println!("{plan}");
//! # Ok(()) }
//! ```

use diesel::RunQueryDsl;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::{Integer, SqlType, Text};

use crate::conn::DbConnection;
use crate::error::Result;
use crate::models::{PageRequest, TaskFilter, TaskSort, UserId};
use crate::repo::tasks::{list_query, use_fts};

/// The plan of exactly the statement [`repo::tasks::list`](crate::repo::tasks::list) runs for
/// these arguments. Arguments are validated as for `list` (a bad limit, filter or cursor is
/// [`Error::Validation`](crate::Error::Validation)).
///
/// - **PostgreSQL**: the output of `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`, one JSON
///   document. `ANALYZE` *executes* the query: it costs what the listing itself costs (reads
///   the page's rows and index entries) plus the instrumentation's timing overhead, and holds
///   the same locks a read does. Nothing is written.
/// - **SQLite**: the `detail` lines of `EXPLAIN QUERY PLAN`, one per line. The query is only
///   prepared, not run: microseconds.
#[tracing::instrument(name = "diagnostics.explain_list", level = "debug", skip_all, fields(%owner, %sort))]
pub fn explain_list(
    conn: &mut DbConnection,
    owner: UserId,
    filter: &TaskFilter,
    sort: TaskSort,
    page: &PageRequest,
) -> Result<String> {
    let fts = use_fts(conn, filter)?;
    let (query, _) = list_query(fts, owner, filter, sort, page)?;
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

/// `<prefix> <query>`, returning rows of `ST`.
#[derive(Debug, Clone)]
struct Explain<Q, ST> {
    prefix: &'static str,
    query: Q,
    _rows: std::marker::PhantomData<ST>,
}

impl<Q, ST> Explain<Q, ST> {
    /// `prefix` is SQL text chosen by the caller from constants (never user data).
    fn new(prefix: &'static str, query: Q) -> Self {
        Self {
            prefix,
            query,
            _rows: std::marker::PhantomData,
        }
    }
}

impl<Q, ST: SqlType> Query for Explain<Q, ST> {
    type SqlType = ST;
}

// The prefix is a runtime value: cache by SQL text, never by type.
impl<Q, ST> QueryId for Explain<Q, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, ST, DB> QueryFragment<DB> for Explain<Q, ST>
where
    DB: Backend,
    Q: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(self.prefix);
        self.query.walk_ast(out.reborrow())
    }
}

impl<Q, ST, C> RunQueryDsl<C> for Explain<Q, ST> {}
