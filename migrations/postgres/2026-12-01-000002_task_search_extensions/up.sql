-- The extensions behind the task search index (next migration, 2026-12-01-000003_task_search_index).
--
-- Both ship with PostgreSQL (contrib) and are marked trusted (PostgreSQL 13 and later), so the
-- database owner, or any role with CREATE on the database, can create them; no superuser is
-- needed. Where even that is not granted, an administrator runs these two statements once before
-- the migration (IF NOT EXISTS then skips them).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;
