//! `with_transaction` on both backends: commit, rollback, panics, savepoints, read-only,
//! clean connections, serializable contention, and (PostgreSQL) backends killed mid-transaction.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use common::{Backend, TestDb};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskstore::tx::{self, TransactionError, TxOptions};
use taskstore::{DbConnection, DbErrorKind, Error};

diesel::table! {
    tx_items (id) {
        id -> Integer,
        label -> Text,
    }
}

diesel::table! {
    tx_counter (id) {
        id -> Integer,
        n -> BigInt,
    }
}

/// Tables owned by this test file, created in the test's own database.
fn create_tables(db: &TestDb) {
    db.run(|c| {
        c.batch_execute(
            "CREATE TABLE tx_items (id INTEGER PRIMARY KEY, label TEXT NOT NULL);
             CREATE TABLE tx_counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
             INSERT INTO tx_counter (id, n) VALUES (1, 0);",
        )?;
        Ok(())
    })
    .expect("create test tables");
}

fn insert(conn: &mut DbConnection, id: i32, label: &str) -> Result<(), Error> {
    diesel::insert_into(tx_items::table)
        .values((tx_items::id.eq(id), tx_items::label.eq(label)))
        .execute(conn)?;
    Ok(())
}

fn ids(db: &TestDb) -> Vec<i32> {
    db.run(|c| {
        Ok(tx_items::table
            .select(tx_items::id)
            .order(tx_items::id)
            .load(c)?)
    })
    .unwrap()
}

/// Whether the connection is inside a transaction, asked without changing anything.
fn in_transaction(conn: &mut DbConnection) -> bool {
    match conn {
        // PostgreSQL refuses SAVEPOINT outside a transaction block (and only warns on BEGIN).
        DbConnection::Postgres(pg) => match pg.batch_execute("SAVEPOINT probe") {
            Ok(()) => {
                pg.batch_execute("RELEASE SAVEPOINT probe").unwrap();
                true
            }
            Err(e) => {
                assert!(e.to_string().contains("transaction blocks"), "{e}");
                false
            }
        },
        DbConnection::Sqlite(lite) => match lite.batch_execute("BEGIN") {
            Ok(()) => {
                lite.batch_execute("ROLLBACK").unwrap();
                false
            }
            Err(e) => {
                assert!(e.to_string().contains("within a transaction"), "{e}");
                true
            }
        },
    }
}

#[derive(Debug)]
enum AppError {
    Db(Error),
    Rule(&'static str),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        Self::Db(e)
    }
}

impl TransactionError for AppError {
    fn as_taskstore_error(&self) -> Option<&Error> {
        match self {
            Self::Db(e) => Some(e),
            Self::Rule(_) => None,
        }
    }
}

backend_tests! {
    fn ok_commits(db: &TestDb) {
        create_tables(db);
        let before = db.stats().transactions_committed;
        let value = db
            .with_transaction(|c| {
                insert(c, 1, "one")?;
                insert(c, 2, "two")?;
                Ok::<_, Error>(42)
            })
            .unwrap();
        assert_eq!(value, 42);
        assert_eq!(ids(db), [1, 2]);
        assert_eq!(db.stats().transactions_committed, before + 1);
    }

    fn err_rolls_back_and_returns_the_same_error(db: &TestDb) {
        create_tables(db);
        let before = db.stats();
        let err = db
            .with_transaction(|c| {
                insert(c, 1, "one")?;
                Err::<(), _>(Error::validation("label", "refused by the caller"))
            })
            .unwrap_err();
        assert!(
            matches!(&err, Error::Validation { field, reason } if field == "label" && reason == "refused by the caller"),
            "{err:?}"
        );
        // An application error type comes back as itself too, and is not re-run.
        let mut runs = 0;
        let err = db
            .with_transaction(|c| {
                runs += 1;
                insert(c, 2, "two")?;
                Err::<(), _>(AppError::Rule("insufficient funds"))
            })
            .unwrap_err();
        assert!(matches!(err, AppError::Rule("insufficient funds")), "{err:?}");
        assert_eq!(runs, 1);
        assert!(ids(db).is_empty());
        let after = db.stats();
        assert_eq!(after.transactions_rolled_back, before.transactions_rolled_back + 2);
        assert_eq!(after.transactions_committed, before.transactions_committed);
        assert_eq!(after.transactions_retried, before.transactions_retried);
    }

    fn panic_rolls_back_discards_and_the_pool_keeps_its_size(db: &TestDb) {
        create_tables(db);
        let max = db.pool_state().max_size;
        for i in 0..(max as i32 + 2) {
            let caught = panic::catch_unwind(AssertUnwindSafe(|| {
                db.with_transaction(|c| {
                    insert(c, i, "doomed")?;
                    if i >= 0 {
                        panic!("boom {i}");
                    }
                    Ok::<_, Error>(())
                })
            }));
            let payload = caught.expect_err("the panic propagates");
            let text = payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            assert_eq!(text, format!("boom {i}"));
        }
        assert!(ids(db).is_empty(), "nothing of a panicked transaction is committed");
        // Every connection can still be had at once, and none is inside a transaction.
        let mut held: Vec<_> = (0..max).map(|_| db.conn().expect("full pool available")).collect();
        for c in &mut held {
            assert!(!in_transaction(c));
        }
        let state = db.pool_state();
        assert!(state.connections <= max, "{state:?}");
        assert_eq!(state.in_use, max, "{state:?}");
        drop(held);
        assert!(db.stats().broken_discarded >= 1);
        assert!(db.stats().transactions_rolled_back >= u64::from(max) + 2);
    }

    fn nested_savepoint_rolls_back_only_its_own_work(db: &TestDb) {
        create_tables(db);
        db.with_transaction(|c| {
            insert(c, 1, "outer")?;
            let inner: Result<(), Error> = tx::nested(c, |c| {
                insert(c, 2, "inner, rolled back")?;
                Err(Error::validation("label", "no"))
            });
            assert!(inner.is_err());
            tx::nested(c, |c| insert(c, 3, "inner, kept"))?;
            // Diesel's own API is a savepoint too.
            let diesel_inner = c.transaction::<(), diesel::result::Error, _>(|c| {
                diesel::insert_into(tx_items::table)
                    .values((tx_items::id.eq(4), tx_items::label.eq("diesel inner")))
                    .execute(c)?;
                Err(diesel::result::Error::RollbackTransaction)
            });
            assert!(diesel_inner.is_err());
            // A failing statement inside a savepoint does not poison the outer transaction.
            let duplicate = tx::nested(c, |c| insert(c, 1, "duplicate"));
            assert!(matches!(duplicate, Err(Error::Conflict { .. })), "{duplicate:?}");
            insert(c, 5, "after")?;
            Ok::<_, Error>(())
        })
        .unwrap();
        assert_eq!(ids(db), [1, 3, 5]);
    }
}

/// Tests that need the pool to hand the same connection back: a pool of one.
fn single(backend: Backend) -> TestDb {
    let db = TestDb::new(
        backend,
        &[
            ("DATABASE_POOL_MAX_SIZE", "1"),
            ("DATABASE_POOL_MIN_IDLE", "1"),
        ],
    );
    create_tables(&db);
    db
}

fn read_only_refuses_writes(backend: Backend) {
    let db = single(backend);
    db.with_transaction(|c| insert(c, 1, "one")).unwrap();
    let n = db
        .with_transaction_opts(TxOptions::new().read_only(), |c| {
            Ok::<_, Error>(tx_items::table.count().get_result::<i64>(c)?)
        })
        .unwrap();
    assert_eq!(n, 1);
    let err = db
        .with_transaction_opts(TxOptions::new().read_only(), |c| insert(c, 2, "two"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Database {
                kind: DbErrorKind::ReadOnlyTransaction,
                ..
            }
        ),
        "{err:?}"
    );
    // The same (only) connection writes again afterwards.
    db.with_transaction(|c| insert(c, 3, "three")).unwrap();
    db.run(|c| insert(c, 4, "four")).unwrap();
    assert_eq!(ids(&db), [1, 3, 4]);
}

fn raw_begin_and_set_are_cleaned_on_return(backend: Backend) {
    let db = single(backend);
    let mut c = db.conn().unwrap();
    c.batch_execute("BEGIN").unwrap();
    insert(&mut c, 1, "left in an open transaction").unwrap();
    match backend {
        Backend::Postgres => c
            .batch_execute("SET statement_timeout = '1234ms'; SET TIME ZONE 'America/New_York'; SET application_name = 'leftover'")
            .unwrap(),
        Backend::Sqlite => c
            .batch_execute("PRAGMA foreign_keys = OFF; PRAGMA query_only = ON")
            .unwrap(),
    }
    assert!(in_transaction(&mut c));
    drop(c);

    let mut c = db.conn().unwrap();
    assert!(
        !in_transaction(&mut c),
        "the next checkout is outside any transaction"
    );
    match backend {
        Backend::Postgres => {
            #[derive(QueryableByName)]
            struct Settings {
                #[diesel(sql_type = diesel::sql_types::Text)]
                statement_timeout: String,
                #[diesel(sql_type = diesel::sql_types::Text)]
                time_zone: String,
                #[diesel(sql_type = diesel::sql_types::Text)]
                application_name: String,
            }
            let s: Settings = diesel::sql_query(
                "SELECT current_setting('statement_timeout') AS statement_timeout, \
                 current_setting('TimeZone') AS time_zone, \
                 current_setting('application_name') AS application_name",
            )
            .get_result(&mut *c)
            .unwrap();
            // The configured defaults (DATABASE_STATEMENT_TIMEOUT_MS = 30000).
            assert_eq!(s.statement_timeout, "30s");
            assert_eq!(s.time_zone, "UTC");
            assert_eq!(s.application_name, "taskstore");
        }
        Backend::Sqlite => {
            #[derive(QueryableByName)]
            struct Flag {
                #[diesel(sql_type = diesel::sql_types::Integer)]
                v: i32,
            }
            let fk: Flag = diesel::sql_query("SELECT foreign_keys AS v FROM pragma_foreign_keys")
                .get_result(&mut *c)
                .unwrap();
            let qo: Flag = diesel::sql_query("SELECT query_only AS v FROM pragma_query_only")
                .get_result(&mut *c)
                .unwrap();
            assert_eq!((fk.v, qo.v), (1, 0));
        }
    }
    drop(c);
    assert!(ids(&db).is_empty(), "the raw transaction was rolled back");
    // And the connection still writes.
    db.with_transaction(|c| insert(c, 2, "two")).unwrap();
    assert_eq!(ids(&db), [2]);
    assert_eq!(db.stats().connections_created, 1, "reset, not replaced");
}

/// N threads each run M read-increment-write transactions on one row under SERIALIZABLE, on a
/// pool with a connection per thread so that they really overlap.
fn contention_under_serializable_ends_exactly_at_n_times_m(backend: Backend) {
    let db = &TestDb::new(backend, &[("DATABASE_POOL_MAX_SIZE", "8")]);
    create_tables(db);
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    // Generous so that the final value is exact on a loaded 2-core CI machine; the default
    // (DATABASE_TX_RETRY_ATTEMPTS = 5) suffices in practice, the count is what we report.
    const RERUNS: u32 = 50;
    let before = db.stats();
    let opts = TxOptions::new().serializable().retry_attempts(RERUNS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..PER_THREAD {
                    db.with_transaction_opts(opts, |c| {
                        let n: i64 = tx_counter::table
                            .find(1)
                            .select(tx_counter::n)
                            .get_result(c)?;
                        diesel::update(tx_counter::table.find(1))
                            .set(tx_counter::n.eq(n + 1))
                            .execute(c)?;
                        Ok::<_, Error>(())
                    })
                    .expect("every increment commits eventually");
                }
            });
        }
    });
    let n: i64 = db
        .run(|c| {
            Ok(tx_counter::table
                .find(1)
                .select(tx_counter::n)
                .get_result(c)?)
        })
        .unwrap();
    let after = db.stats();
    let retries = after.transactions_retried - before.transactions_retried;
    eprintln!(
        "CONTENTION RESULT [{:?}]: threads={THREADS} transactions={} retries={retries} final_value={n} expected={}",
        db.backend,
        THREADS * PER_THREAD,
        THREADS * PER_THREAD
    );
    assert_eq!(n, (THREADS * PER_THREAD) as i64);
    assert_eq!(
        after.transactions_committed - before.transactions_committed,
        (THREADS * PER_THREAD) as u64
    );
}

mod sqlite_pool {
    use super::*;

    #[test]
    fn read_only_refuses_writes() {
        super::read_only_refuses_writes(Backend::Sqlite);
    }

    #[test]
    fn raw_begin_and_set_are_cleaned_on_return() {
        super::raw_begin_and_set_are_cleaned_on_return(Backend::Sqlite);
    }

    #[test]
    fn contention_under_serializable_ends_exactly_at_n_times_m() {
        super::contention_under_serializable_ends_exactly_at_n_times_m(Backend::Sqlite);
    }
}

mod postgres_pool {
    use super::*;

    #[test]
    fn read_only_refuses_writes() {
        super::read_only_refuses_writes(Backend::Postgres);
    }

    #[test]
    fn raw_begin_and_set_are_cleaned_on_return() {
        super::raw_begin_and_set_are_cleaned_on_return(Backend::Postgres);
    }

    #[test]
    fn contention_under_serializable_ends_exactly_at_n_times_m() {
        super::contention_under_serializable_ends_exactly_at_n_times_m(Backend::Postgres);
    }
}

/// PostgreSQL only: failures that need a server (killed backends, aborted transactions).
mod postgres_failures {
    use super::*;

    fn backend_pid(c: &mut DbConnection) -> Result<i32, Error> {
        Ok(
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
                "pg_backend_pid()",
            ))
            .get_result(c)?,
        )
    }

    /// Terminates `pid` from another connection of the same test database and waits until it
    /// is gone.
    fn terminate(db: &TestDb, pid: i32) {
        let mut admin = PgConnection::establish(&db.url).unwrap();
        diesel::sql_query("SELECT pg_terminate_backend($1)")
            .bind::<diesel::sql_types::Integer, _>(pid)
            .execute(&mut admin)
            .unwrap();
        assert!(common::cluster::wait_for(Duration::from_secs(5), || {
            diesel::select(
                diesel::dsl::sql::<diesel::sql_types::Bool>(
                    "NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = ",
                )
                .bind::<diesel::sql_types::Integer, _>(pid)
                .sql(")"),
            )
            .get_result::<bool>(&mut admin)
            .unwrap_or(false)
        }));
    }

    #[test]
    fn killed_backend_mid_transaction_commits_nothing_and_the_closure_reruns() {
        let db = TestDb::new(Backend::Postgres, &[]);
        create_tables(&db);
        let mut kill = true;
        let mut work = |c: &mut DbConnection| -> Result<(), Error> {
            insert(c, 1, "first half")?;
            if std::mem::take(&mut kill) {
                let pid = backend_pid(c)?;
                terminate(&db, pid);
            }
            insert(c, 2, "second half")?;
            Ok(())
        };
        let err = db.with_transaction(&mut work).unwrap_err();
        assert!(err.is_disconnect(), "{err:?}");
        assert!(!matches!(err, Error::CommitUnknown { .. }), "{err:?}");
        assert!(ids(&db).is_empty(), "nothing committed");
        // The same closure again, on a fresh connection.
        db.with_transaction(&mut work).unwrap();
        assert_eq!(ids(&db), [1, 2]);
    }

    #[test]
    fn connection_lost_at_commit_is_commit_unknown_and_resolvable_by_id() {
        let db = TestDb::new(Backend::Postgres, &[]);
        create_tables(&db);
        let mut runs = 0;
        let err = db
            .with_transaction(|c| {
                runs += 1;
                insert(c, 7, "created with a client-side id")?;
                let pid = backend_pid(c)?;
                terminate(&db, pid);
                Ok::<_, Error>(())
            })
            .unwrap_err();
        assert!(matches!(err, Error::CommitUnknown { .. }), "{err:?}");
        assert_eq!(runs, 1, "CommitUnknown is never re-run automatically");
        assert!(
            db.stats().broken_discarded >= 1,
            "the connection was discarded"
        );
        assert!(!err.is_retryable());
        // Resolve: look the row up by its id; it is absent, so creating it again is safe.
        let exists = db
            .run(|c| Ok(tx_items::table.find(7).count().get_result::<i64>(c)? > 0))
            .unwrap();
        assert!(!exists);
        db.with_transaction(|c| insert(c, 7, "created with a client-side id"))
            .unwrap();
        assert_eq!(ids(&db), [7]);
    }

    #[test]
    fn swallowed_statement_error_is_not_acknowledged() {
        let db = TestDb::new(Backend::Postgres, &[]);
        create_tables(&db);
        let before = db.stats();
        let err = db
            .with_transaction(|c| {
                insert(c, 1, "one")?;
                let _ignored = insert(c, 1, "duplicate"); // aborts the PostgreSQL transaction
                Ok::<_, Error>(())
            })
            .unwrap_err();
        assert!(err.to_string().contains("nothing was committed"), "{err}");
        assert!(ids(&db).is_empty());
        let after = db.stats();
        assert_eq!(after.transactions_committed, before.transactions_committed);
        // The connection is usable afterwards.
        db.with_transaction(|c| insert(c, 2, "two")).unwrap();
        assert_eq!(ids(&db), [2]);
    }

    #[test]
    fn deadlocks_are_rerun() {
        let db = TestDb::new(Backend::Postgres, &[]);
        create_tables(&db);
        db.run(|c| {
            c.batch_execute("INSERT INTO tx_counter (id, n) VALUES (2, 0)")?;
            Ok(())
        })
        .unwrap();
        let before = db.stats().transactions_retried;
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for (first, second) in [(1, 2), (2, 1)] {
                let (db, barrier) = (&db, &barrier);
                s.spawn(move || {
                    let mut run = 0;
                    db.with_transaction(|c| {
                        run += 1;
                        diesel::update(tx_counter::table.find(first))
                            .set(tx_counter::n.eq(tx_counter::n + 1))
                            .execute(c)?;
                        if run == 1 {
                            barrier.wait(); // both hold their first lock
                        }
                        diesel::update(tx_counter::table.find(second))
                            .set(tx_counter::n.eq(tx_counter::n + 1))
                            .execute(c)?;
                        Ok::<_, Error>(())
                    })
                    .expect("the deadlock victim is re-run");
                });
            }
        });
        let rows: Vec<i64> = db
            .run(|c| {
                Ok(tx_counter::table
                    .select(tx_counter::n)
                    .order(tx_counter::id)
                    .load(c)?)
            })
            .unwrap();
        assert_eq!(rows, [2, 2]);
        assert!(
            db.stats().transactions_retried > before,
            "the deadlock victim was re-run"
        );
    }
}
