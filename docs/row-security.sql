-- taskstore: row-level security on tasks as a second wall. The migration
-- migrations/postgres/2026-12-01-000001_tasks_row_security creates the policy; this file turns
-- it on. Opt-in: run as a superuser after docs/roles.sql and the first migration:
--   psql -v ON_ERROR_STOP=1 -f docs/row-security.sql "postgres://postgres@HOST/tasks"
-- From then on taskstore_app sees and writes only the rows of `tasks` whose user_id is the
-- transaction's `taskstore.user_id`, which the layer sets with BEGIN for transactions opened
-- with TxOptions::owner (Database::with_transaction_opts); with the setting unset it sees none,
-- so task calls that do not name the owner that way (db.tasks().get, ...) find nothing under
-- this role: opt in only where every task access goes through owner-scoped transactions.
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
