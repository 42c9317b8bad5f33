-- taskstore: least privilege on PostgreSQL. Two roles:
--   taskstore_owner  owns the database, its schema and every table; DATABASE_MIGRATION_URL
--                    logs in as it (migrations are its only job);
--   taskstore_app    the runtime role of DATABASE_URL: reads and writes rows (SELECT, INSERT,
--                    UPDATE, DELETE), nothing else: no DROP, ALTER, TRUNCATE, CREATE (tables,
--                    functions, temporary tables) and no SET ROLE (it is a member of no role
--                    until docs/row-security.sql, which adds it to taskstore_row_security).
--
-- Run as a superuser, once, before the first migration. (A role with CREATEROLE and CREATEDB
-- but not superuser also needs membership in taskstore_owner before `CREATE DATABASE ... OWNER`:
-- PostgreSQL 15 refuses it otherwise; add `GRANT taskstore_owner TO CURRENT_USER;` after the
-- CREATE ROLE lines.) The file is not re-runnable: a second run stops at `role ... already
-- exists`; drop the roles and the database first, or run only the statements still missing.
--   psql -v ON_ERROR_STOP=1 -v db=tasks -f docs/roles.sql "postgres://postgres@HOST/postgres"
-- then give both roles a password (\password taskstore_owner, \password taskstore_app) unless
-- they log in another way, migrate (DATABASE_MIGRATION_URL=postgres://taskstore_owner@HOST/tasks),
-- and run docs/roles-after-migrate.sql as taskstore_owner. tests/deploy_roles.rs runs both files.

CREATE ROLE taskstore_owner LOGIN;
CREATE ROLE taskstore_app LOGIN;
CREATE DATABASE :"db" OWNER taskstore_owner;

\connect :"db"

-- Nobody but the two roles connects; nobody but the owner creates anything, temporary tables
-- included (PUBLIC has TEMPORARY on every new database, and CREATE on schema public before 15).
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO taskstore_owner, taskstore_app;
ALTER SCHEMA public OWNER TO taskstore_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO taskstore_app;

-- Tables the owner's migrations create (now and later) are readable and writable row by row by
-- the runtime role, and nothing more (no TRUNCATE, REFERENCES or TRIGGER).
ALTER DEFAULT PRIVILEGES FOR ROLE taskstore_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO taskstore_app;

-- The session timeouts on the role itself: they then hold also behind a transaction-mode
-- pooler, which drops the startup `options` the layer sends them in. Keep them equal to
-- DATABASE_STATEMENT_TIMEOUT_MS, DATABASE_LOCK_TIMEOUT_MS and
-- DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS (defaults shown).
ALTER ROLE taskstore_app IN DATABASE :"db" SET statement_timeout = 30000;
ALTER ROLE taskstore_app IN DATABASE :"db" SET lock_timeout = 10000;
ALTER ROLE taskstore_app IN DATABASE :"db" SET idle_in_transaction_session_timeout = 60000;
