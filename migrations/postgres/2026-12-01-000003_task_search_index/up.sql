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
-- The extensions come from the previous migration (2026-12-01-000002_task_search_extensions).
--
-- Built CONCURRENTLY, outside a transaction (metadata.toml): on a table that already holds rows
-- writes go on while the index builds. An interrupted build leaves the index INVALID; the next
-- start drops and rebuilds it (README, "Migrations").
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_user_search_idx ON tasks
    USING gin (user_id, lower(title) gin_trgm_ops, lower(description) gin_trgm_ops);
