-- taskstore: row-level security on tasks as a second wall. The migration
-- migrations/postgres/2026-12-01-000001_tasks_row_security creates the policy; this file turns
-- it on. Opt-in: run as a superuser after docs/roles.sql and the first migration:
--   psql -v ON_ERROR_STOP=1 -f docs/row-security.sql "postgres://postgres@HOST/tasks"
-- From then on taskstore_app sees and writes only the rows of `tasks` whose user_id is the
-- transaction's `taskstore.user_id`; with the setting unset it sees none (fail closed). The layer
-- sets it for everything it does on tasks: transactions opened with TxOptions::owner
-- (Database::with_transaction_opts) get it in the BEGIN batch; the task handles (db.tasks().get,
-- list, create, ..., and so the `taskstore` command and `serve`) ask once per connection whether
-- row-level security applies to the session and, where it does, run each single-statement call
-- in an owner-scoped transaction (BEGIN with the setting, the statement, COMMIT: two round trips
-- more per call), while create_many and import put the owner in their own BEGIN batch. An
-- application's own transactions on tasks must name the owner (TxOptions::owner) or see nothing.
-- Restart the application after running this file (or wait DATABASE_MAX_LIFETIME_S): a
-- connection opened before it keeps the answer it got and, under the group, would see nothing.
--
-- On PostgreSQL 15 membership also lets taskstore_app `SET ROLE taskstore_row_security`, which
-- gives it nothing: the group owns nothing, has no privileges, and is itself restricted by the
-- policy. (PostgreSQL 16+: GRANT ... WITH SET FALSE.)
-- While row-level security applies to a session, PostgreSQL refuses `COPY FROM` into the table:
-- the layer's import then writes multi-row INSERTs (checked row by row by the policy), slower
-- than COPY for large imports.
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
CREATE ROLE taskstore_row_security NOLOGIN;
GRANT taskstore_row_security TO taskstore_app;
