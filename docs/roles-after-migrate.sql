-- taskstore: least privilege, second step (see docs/roles.sql). Run as taskstore_owner after the
-- first migration:
--   psql -v ON_ERROR_STOP=1 -f docs/roles-after-migrate.sql "postgres://taskstore_owner@HOST/tasks"
-- The migration bookkeeping is the owner's to write; the runtime role only reads it (health and
-- `migrate status` compare it with the binary's migrations).
REVOKE INSERT, UPDATE, DELETE ON __diesel_schema_migrations, taskstore_migration_checksums
    FROM taskstore_app;
