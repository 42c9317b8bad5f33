-- PostgreSQL's row-level security on tasks has no SQLite counterpart (an embedded file has one
-- user); this migration keeps both backends' histories in step.
SELECT 1;
