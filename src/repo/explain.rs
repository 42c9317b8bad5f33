//! `EXPLAIN` in front of a query the layer builds, so tests and diagnostics look at the plan of
//! exactly the statement (and bind values) the repositories run.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::{RunQueryDsl, sql_types::SqlType};

/// `<prefix> <query>`, returning rows of `ST`.
#[derive(Debug, Clone)]
pub(crate) struct Explain<Q, ST> {
    prefix: &'static str,
    query: Q,
    _rows: std::marker::PhantomData<ST>,
}

impl<Q, ST> Explain<Q, ST> {
    /// `prefix` is SQL text chosen by the caller from constants (never user data).
    pub(crate) fn new(prefix: &'static str, query: Q) -> Self {
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
