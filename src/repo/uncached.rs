//! A query that is never kept as a prepared statement, so PostgreSQL plans it with its bind
//! values on every execution.
//!
//! Diesel caches every statement whose SQL is stable as a named prepared statement. After five
//! executions PostgreSQL may then reuse one generic plan that was made without looking at the
//! bind values — it estimates any range over a parameter at 0.5% of the rows. For a task listing
//! filtered by a range on a column other than its sort column, that generic plan scans the
//! owner's whole range through the range column's index and sorts it: every page then reads all
//! of the owner's rows in the range instead of about one page of them (measured by
//! `tests/plans.rs`: 491–615 buffers instead of 24–151 at 1 000 tasks per user, growing with
//! the user's task count). A custom plan costs a few tens of microseconds of planning and picks
//! the sort column's index when the range is wide, the range index when it is narrow.

use diesel::RunQueryDsl;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;

/// `query`, marked unsafe to cache: Diesel sends it as an unnamed statement every time.
#[derive(Debug, Clone)]
pub(crate) struct Uncached<Q>(pub(crate) Q);

impl<Q: Query> Query for Uncached<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> QueryId for Uncached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, DB> QueryFragment<DB> for Uncached<Q>
where
    DB: Backend,
    Q: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q, C> RunQueryDsl<C> for Uncached<Q> {}
