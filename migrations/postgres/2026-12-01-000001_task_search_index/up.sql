-- An index for the task list's `search` filter: a literal substring of lower(title) or
-- lower(description) within one owner's tasks (src/repo/tasks/list.rs). Without it a search
-- that matches little reads every one of the owner's rows (79 ms at 100 000 tasks, issue 14).
--
-- pg_trgm's GIN operator class answers `LIKE '%...%'` from the trigrams of the pattern, and
-- btree_gin lets the same GIN index hold user_id, so one index scan is limited to the owner.
-- The index is lossy: every candidate row is rechecked against the LIKE itself, so results are
-- exactly those of a scan. A pattern of fewer than 3 characters has no trigram; the planner then
-- takes the owner's b-tree index and filters, as before.
--
-- Both extensions ship with PostgreSQL (contrib) and are marked trusted (PostgreSQL 13 and
-- later), so the database owner, or any role with CREATE on the database, can create them; no
-- superuser is needed. Where even that is not granted, an administrator runs these two
-- statements once before the migration (IF NOT EXISTS then skips them). The down migration leaves
-- the extensions installed: other objects may use them.
--
-- TODO(migration linter, issue 14): on a table that already holds rows this should be
-- CREATE INDEX CONCURRENTLY in a migration with run_in_transaction = false, so that writes are not
-- blocked while the index builds (about 20 s per 100 000 rows on the 2-core bench machine).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE INDEX tasks_user_search_idx ON tasks
    USING gin (user_id, lower(title) gin_trgm_ops, lower(description) gin_trgm_ops);
