//! Pool behaviour on both backends: connect, migrate, acquire, stats, exhaustion.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestDb};
use diesel::prelude::*;
use taskstore::Error;

backend_tests! {
    fn connects_migrates_and_answers(db: &TestDb) {
        let n: i64 = db
            .run(|c| Ok(taskstore::schema::users::table.count().get_result(c)?))
            .expect("users table exists after start-up migrations");
        assert_eq!(n, 0);
        let stats = db.stats();
        assert!(stats.acquisitions >= 1, "{stats:?}");
        assert!(stats.connections_created >= 1, "{stats:?}");
    }

    fn health_reports_latency_and_schema_version(db: &TestDb) {
        let h = db.health().expect("health");
        assert!(h.schema_version.is_some(), "{h:?}");
        assert!(h.latency > Duration::ZERO && h.latency < Duration::from_secs(5), "{h:?}");
        assert_eq!(h.pool.max_size, 4);
    }
}

fn exhausted(backend: Backend) {
    let db = TestDb::new(
        backend,
        &[
            ("DATABASE_POOL_MAX_SIZE", "2"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "300"),
        ],
    );
    let a = db.conn().unwrap();
    let b = db.conn().unwrap();
    let start = Instant::now();
    let err = db.conn().unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(err, Error::PoolTimeout { .. }), "{err}");
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_millis(300 + 250),
        "waited {waited:?}"
    );
    let text = err.to_string();
    assert!(text.contains("in use 2"), "{text}");
    drop((a, b));
    db.conn()
        .expect("a connection after the holders return theirs");
    assert_eq!(db.stats().timeouts, 1);
}

#[test]
fn sqlite_exhaustion() {
    exhausted(Backend::Sqlite);
}

#[test]
fn postgres_exhaustion() {
    exhausted(Backend::Postgres);
}
