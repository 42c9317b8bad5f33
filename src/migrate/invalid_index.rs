//! Indexes left `INVALID` by an interrupted `CREATE INDEX CONCURRENTLY` (or `REINDEX …
//! CONCURRENTLY`): PostgreSQL keeps such an index, maintains it on every write, never uses it
//! for reads, and a re-run of the migration then fails ("already exists") or, with `IF NOT
//! EXISTS`, silently keeps the broken index. Before each attempt of a non-transactional step
//! (the first, and every re-try after a lock timeout, which cancels a build half-way), under
//! the migration lock and the step's `lock_timeout`, each one in the session's schemas is
//! dropped with `DROP INDEX CONCURRENTLY`, so that the step builds it again. An index whose build is still in
//! progress (`pg_stat_progress_create_index`, another session building it) is left alone.
//! Source: PostgreSQL's documentation of `CREATE INDEX`, "Building Indexes Concurrently".

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::conn::DbConnection;
use crate::error::Result;

#[derive(QueryableByName)]
struct Invalid {
    /// Schema-qualified and quoted by `quote_ident`, from the catalog.
    #[diesel(sql_type = Text)]
    qualified: String,
    #[diesel(sql_type = Text)]
    table_name: String,
}

/// Drops the invalid indexes of the session's schemas (PostgreSQL; nothing on SQLite, which
/// has no concurrent builds). Returns their names.
pub(super) fn drop_invalid(conn: &mut DbConnection) -> Result<Vec<String>> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(Vec::new());
    };
    let invalid = diesel::sql_query(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified, \
                t.relname::text AS table_name \
           FROM pg_index i \
           JOIN pg_class c ON c.oid = i.indexrelid \
           JOIN pg_class t ON t.oid = i.indrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE NOT i.indisvalid AND n.nspname = ANY (current_schemas(false)) \
            AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p \
                             WHERE p.relid = i.indrelid) \
          ORDER BY 1",
    )
    .load::<Invalid>(pg)?;
    let mut dropped = Vec::with_capacity(invalid.len());
    for index in invalid {
        tracing::warn!(
            index = %index.qualified,
            table = %index.table_name,
            "dropping an INVALID index left by an interrupted concurrent build, so that its \
             migration builds it again"
        );
        // DDL cannot take binds; the name is the catalog's, quoted by quote_ident.
        diesel::sql_query(format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {}",
            index.qualified
        ))
        .execute(pg)?;
        dropped.push(index.qualified);
    }
    Ok(dropped)
}
