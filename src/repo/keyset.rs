//! A row-value comparison, `(key, id) > ($1, $2)`, as a Diesel expression.
//!
//! Keyset pagination needs "after this (sort key, id)". Written as
//! `key > $1 OR (key = $1 AND id > $2)`, PostgreSQL can only use the owner's prefix of the index
//! as a bound and filters everything before the cursor, so page N costs N pages. As a row value
//! comparison, both PostgreSQL (a `RowCompareExpr` index condition) and SQLite (row values,
//! 3.15+) start the index scan exactly at the cursor, so every page costs the same. Diesel has
//! no row-value comparison on its own, hence this node. It emits only SQL punctuation; the
//! values are bind parameters.

use diesel::backend::Backend;
use diesel::expression::{
    AppearsOnTable, Expression, SelectableExpression, ValidGrouping, is_aggregate,
};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::Bool;

/// `(a, b) > (x, y)` (ascending) or `(a, b) < (x, y)` (descending).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowCompare<A, B, X, Y> {
    a: A,
    b: B,
    x: X,
    y: Y,
    desc: bool,
}

/// The rows after `(x, y)` in the order `(a, b)` ascending (`desc == false`) or descending.
pub(crate) fn after<A, B, X, Y>(a: A, b: B, x: X, y: Y, desc: bool) -> RowCompare<A, B, X, Y> {
    RowCompare { a, b, x, y, desc }
}

impl<A, B, X, Y> Expression for RowCompare<A, B, X, Y>
where
    A: Expression,
    B: Expression,
    X: Expression,
    Y: Expression,
{
    type SqlType = Bool;
}

// The SQL text depends on `desc`, a runtime value, so the statement must be cached by its text,
// never by its type.
impl<A, B, X, Y> QueryId for RowCompare<A, B, X, Y> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<A, B, X, Y, DB> QueryFragment<DB> for RowCompare<A, B, X, Y>
where
    DB: Backend,
    A: QueryFragment<DB>,
    B: QueryFragment<DB>,
    X: QueryFragment<DB>,
    Y: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("((");
        self.a.walk_ast(out.reborrow())?;
        out.push_sql(", ");
        self.b.walk_ast(out.reborrow())?;
        out.push_sql(if self.desc { ") < (" } else { ") > (" });
        self.x.walk_ast(out.reborrow())?;
        out.push_sql(", ");
        self.y.walk_ast(out.reborrow())?;
        out.push_sql("))");
        Ok(())
    }
}

impl<A, B, X, Y, QS> AppearsOnTable<QS> for RowCompare<A, B, X, Y>
where
    Self: Expression,
    A: AppearsOnTable<QS>,
    B: AppearsOnTable<QS>,
    X: AppearsOnTable<QS>,
    Y: AppearsOnTable<QS>,
{
}

impl<A, B, X, Y, QS> SelectableExpression<QS> for RowCompare<A, B, X, Y>
where
    Self: AppearsOnTable<QS>,
    A: SelectableExpression<QS>,
    B: SelectableExpression<QS>,
    X: SelectableExpression<QS>,
    Y: SelectableExpression<QS>,
{
}

// Columns compared with bind values: never an aggregate.
impl<A, B, X, Y> ValidGrouping<()> for RowCompare<A, B, X, Y> {
    type IsAggregate = is_aggregate::No;
}
