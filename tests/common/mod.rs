//! Test support: an isolated database per test on either backend, throw-away PostgreSQL
//! clusters for fault tests, and a macro that instantiates one test body per backend.
//!
//! PostgreSQL is found at `TASKSTORE_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust authentication). Each test creates its
//! own database `taskstore_test_<pid>_<n>` and drops it when done; databases left behind by a
//! process that no longer runs are dropped at the next run. If PostgreSQL is unreachable the
//! PostgreSQL tests fail — they are never skipped.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod capture;
pub mod cli_env;
pub mod cluster;
pub mod deploy;
pub mod factories;
pub mod migrations;
pub mod outage;
pub mod replica;

use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskstore::{Config, Database};

/// Admin URL of the shared PostgreSQL server.
pub fn pg_admin_url() -> String {
    std::env::var("TASKSTORE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `postgres://.../<db>` on the shared server.
pub fn pg_url_for(db: &str) -> String {
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{db}")
}

fn admin() -> PgConnection {
    PgConnection::establish(&pg_admin_url()).unwrap_or_else(|e| {
        panic!("PostgreSQL tests need a server at TASKSTORE_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres): {e}")
    })
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

/// Drops `taskstore_test_<pid>_*` databases whose process is gone.
fn clean_leftovers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut conn = admin();
        let names: Vec<Name> = diesel::sql_query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'taskstore\\_test\\_%'",
        )
        .load(&mut conn)
        .unwrap_or_default();
        for Name { datname } in names {
            let pid: Option<u32> = datname
                .strip_prefix("taskstore_test_")
                .and_then(|r| r.split('_').next())
                .and_then(|p| p.parse().ok());
            if let Some(pid) = pid
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                // Test-owned identifiers only (checked prefix + digits); DDL cannot take binds.
                let _ = conn.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)"
                ));
            }
        }
    });
}

/// A database created for one test and dropped afterwards.
pub struct PgTestDb {
    pub name: String,
    pub url: String,
}

impl PgTestDb {
    pub fn create() -> Self {
        clean_leftovers();
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "taskstore_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        admin()
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("CREATE DATABASE");
        let url = pg_url_for(&name);
        Self { name, url }
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&pg_admin_url()) {
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Which backend a test instance runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// An isolated, migrated database for one test, plus whatever keeps it alive.
pub struct TestDb {
    pub db: Database,
    pub url: String,
    pub backend: Backend,
    _pg: Option<PgTestDb>,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for TestDb {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.db
    }
}

impl TestDb {
    /// A fresh database on `backend` with default settings plus `extra` variables.
    pub fn new(backend: Backend, extra: &[(&str, &str)]) -> Self {
        init_tracing();
        let (url, pg, dir) = match backend {
            Backend::Postgres => {
                let pg = PgTestDb::create();
                (pg.url.clone(), Some(pg), None)
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                (url, None, Some(dir))
            }
        };
        let mut vars = vec![
            ("DATABASE_URL".to_owned(), url.clone()),
            ("DATABASE_POOL_MAX_SIZE".to_owned(), "4".to_owned()),
        ];
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push(((*k).to_owned(), (*v).to_owned()));
        }
        let config = Config::from_vars(vars).expect("test config");
        let db = Database::connect(&config).expect("connect test database");
        Self {
            db,
            url,
            backend,
            _pg: pg,
            _dir: dir,
        }
    }
}

/// Logs to the test's captured output; `TASKSTORE_LOG` / `RUST_LOG` choose the level.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("TASKSTORE_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Instantiates each test body once per backend, in modules `sqlite` and `postgres`:
///
/// ```ignore
/// backend_tests! {
///     fn creates_a_user(db: &TestDb) { ... }
/// }
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* fn $name:ident($db:ident : &TestDb) $body:block )*) => {
        $(
            $(#[$meta])*
            fn $name($db: &$crate::common::TestDb) $body
        )*
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let db = $crate::common::TestDb::new($crate::common::Backend::Sqlite, &[]);
                    super::$name(&db);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let db = $crate::common::TestDb::new($crate::common::Backend::Postgres, &[]);
                    super::$name(&db);
                }
            )*
        }
    };
}
