//! Migrations run under their own `statement_timeout` (`DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS`,
//! default none), not the pool's `DATABASE_STATEMENT_TIMEOUT_MS`: a concurrent index build or a
//! backfill longer than the pool's bound completes instead of being cancelled at every start.
//! PostgreSQL only: SQLite has no statement timeout.

mod common;

use common::PgTestDb;
use diesel::prelude::*;
use taskstore::migrate::{self, MigrateError, Migrator};
use taskstore::{Config, Database, Error};

/// The product's PostgreSQL migrations plus two slow steps: one in a transaction, one with
/// `run_in_transaction = false`, each sleeping 1.5 s (longer than the 300 ms statement timeout
/// the tests configure for the pool).
fn directory() -> tempfile::TempDir {
    let dir = common::migrations::product_copy("postgres");
    let slow_tx = dir.path().join("2099-01-01-000001_slow_backfill");
    std::fs::create_dir(&slow_tx).unwrap();
    std::fs::write(
        slow_tx.join("up.sql"),
        "ALTER TABLE tasks ADD COLUMN note text;\nSELECT pg_sleep(1.5);\n",
    )
    .unwrap();
    std::fs::write(
        slow_tx.join("down.sql"),
        "ALTER TABLE tasks DROP COLUMN note;\n",
    )
    .unwrap();
    let slow_nontx = dir.path().join("2099-01-01-000002_slow_index");
    std::fs::create_dir(&slow_nontx).unwrap();
    std::fs::write(slow_nontx.join("up.sql"), "SELECT pg_sleep(1.5);\n").unwrap();
    std::fs::write(slow_nontx.join("down.sql"), "SELECT 1;\n").unwrap();
    std::fs::write(
        slow_nontx.join("metadata.toml"),
        "run_in_transaction = false\n",
    )
    .unwrap();
    dir
}

fn applied_names(applied: &[migrate::AppliedMigration]) -> Vec<String> {
    applied.iter().map(|a| a.migration.name.clone()).collect()
}

#[test]
fn postgres_a_step_longer_than_the_statement_timeout_completes() {
    common::init_tracing();
    let pg = PgTestDb::create();
    let dir = directory();
    let config = Config::from_vars([
        ("DATABASE_URL", pg.url.as_str()),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "300"),
        ("DATABASE_MIGRATE_ON_STARTUP", "false"),
    ])
    .unwrap();
    assert_eq!(config.migration_statement_timeout().as_millis(), 0);
    let mut conn = migrate::connect(&config).unwrap();
    let applied = Migrator::from_config(&config)
        .directory(dir.path())
        .run(&mut conn)
        .unwrap();
    let names = applied_names(&applied);
    let product = names.len() - 2;
    assert_eq!(
        names[product..],
        [
            "2099-01-01-000001_slow_backfill",
            "2099-01-01-000002_slow_index",
        ],
        "{names:?}"
    );
    assert!(
        names[..product].iter().all(|n| n.starts_with("2026-")),
        "{names:?}"
    );
    for a in &applied[product..] {
        assert!(a.duration_ms >= 1500, "{a:?} slept 1.5 s");
    }

    // The pool keeps DATABASE_STATEMENT_TIMEOUT_MS: the same sleep is cancelled there.
    let db = Database::connect(&config).unwrap();
    let mut pooled = db.conn().unwrap();
    let err = diesel::sql_query("SELECT pg_sleep(1.5)")
        .execute(&mut *pooled)
        .unwrap_err();
    assert!(
        err.to_string().contains("statement timeout"),
        "the pool's statement timeout still applies: {err}"
    );
}

#[test]
fn postgres_the_migration_connection_has_its_own_statement_timeout() {
    common::init_tracing();
    let pg = PgTestDb::create();
    let setting = |conn: &mut taskstore::DbConnection| -> String {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "current_setting('statement_timeout')",
        ))
        .get_result(conn)
        .unwrap()
    };
    let config = Config::from_vars([
        ("DATABASE_URL", pg.url.as_str()),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "300"),
    ])
    .unwrap();
    assert_eq!(setting(&mut migrate::connect(&config).unwrap()), "0");
    let mut pooled = taskstore::conn::open(&config, config.database_url()).unwrap();
    assert_eq!(setting(&mut pooled), "300ms");
    let bounded = Config::from_vars([
        ("DATABASE_URL", pg.url.as_str()),
        ("DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS", "7000"),
    ])
    .unwrap();
    assert_eq!(setting(&mut migrate::connect(&bounded).unwrap()), "7s");
}

#[test]
fn postgres_a_configured_migration_statement_timeout_cancels_a_longer_step() {
    common::init_tracing();
    let pg = PgTestDb::create();
    let dir = directory();
    let config = Config::from_vars([
        ("DATABASE_URL", pg.url.as_str()),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "30000"),
        ("DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS", "500"),
    ])
    .unwrap();
    let mut conn = migrate::connect(&config).unwrap();
    let err = Migrator::from_config(&config)
        .directory(dir.path())
        .run(&mut conn)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Migration(MigrateError::ApplyFailed { name, message, .. })
            if name == "2099-01-01-000001_slow_backfill"
                && message.contains("statement timeout")),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("ran longer than DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS: raise it"),
        "{err}"
    );
    // The failed step rolled back: the column is not there, the step is still pending.
    let status = migrate::status(&mut conn).unwrap();
    // The product's migrations are applied; the failed step was not recorded.
    assert!(status.pending.is_empty(), "{status:?}");
    assert!(status.unknown.is_empty(), "{status:?}");
}
