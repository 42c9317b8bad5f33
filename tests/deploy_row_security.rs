//! Issue 13 item 6: row-level security on `tasks` as a second wall (PostgreSQL). A throw-away
//! cluster set up with `docs/roles.sql` and `docs/row-security.sql`, migrated by the owner role;
//! the runtime role `taskstore_app` is in `taskstore_row_security`, so the policy of migration
//! `2026-12-01-000001_tasks_row_security` restricts it to the rows of the transaction's
//! `taskstore.user_id`, which `TxOptions::owner` sets in the BEGIN batch.
//!
//! The property test issues raw statements without any owner filter (SELECT, UPDATE, DELETE,
//! INSERT of another user's row) through the runtime role inside owner-scoped transactions and
//! sees and touches only the owner's rows; with the setting unset it sees nothing (fail closed).
//! The owner role and a runtime role outside the group keep seeing every row.
//!
//! The task handles scope each call to its owner where the policy applies, so the behavioural
//! tour runs through the runtime role (1 and 8 threads); the server's statement log shows
//! that where it does not apply a call costs no extra round trip.

mod common;

use common::cluster::Cluster;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use taskstore::models::{NewTask, UserId};
use taskstore::tx::TxOptions;
use taskstore::{Config, Database, Error};

struct Shape {
    cluster: Cluster,
    /// The owner role (not subject to the policy's restriction).
    owner: Database,
    /// The runtime role in `taskstore_row_security`.
    app: Database,
}

impl Shape {
    fn start() -> Self {
        Self::start_with(&[], &[])
    }

    /// A shape whose cluster gets `conf` lines and whose two `Database`s get `vars` too.
    fn start_with(conf: &[&str], vars: &[(&str, &str)]) -> Self {
        common::init_tracing();
        let cluster = Cluster::start(conf);
        common::cluster::psql_docs_file(&cluster.url(), "roles.sql", &["db=app"]);
        let owner = connect(&cluster, "taskstore_owner", vars);
        let app = connect(&cluster, "taskstore_app", vars);
        common::cluster::psql_docs_file(
            &role_url(&cluster, "taskstore_owner"),
            "roles-after-migrate.sql",
            &[],
        );
        // Turning row-level security on needs the migrated table.
        common::cluster::psql_docs_file(&cluster.url_for("app"), "row-security.sql", &[]);
        Self {
            cluster,
            owner,
            app,
        }
    }
}

fn role_url(cluster: &Cluster, role: &str) -> String {
    format!("postgres://{role}@127.0.0.1:{}/app", cluster.port)
}

/// A `Database` on the shape's database as `role` (migrating as the owner), with `vars` added.
fn connect(cluster: &Cluster, role: &str, vars: &[(&str, &str)]) -> Database {
    let url = role_url(cluster, role);
    let migration = role_url(cluster, "taskstore_owner");
    let mut all = vec![
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_MIGRATION_URL", migration.as_str()),
        ("DATABASE_POOL_MAX_SIZE", "4"),
    ];
    all.extend_from_slice(vars);
    Database::connect(&Config::from_vars(all).expect("configuration"))
        .unwrap_or_else(|e| panic!("connect as {role}: {e}"))
}

#[derive(QueryableByName)]
struct Owner {
    #[diesel(sql_type = SqlUuid)]
    user_id: uuid::Uuid,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Every row the runtime role sees with no owner filter, in a transaction scoped to `owner`
/// (or unscoped when `None`).
fn visible(db: &Database, owner: Option<UserId>) -> Result<Vec<uuid::Uuid>, Error> {
    let opts = owner.map_or_else(TxOptions::new, |o| TxOptions::new().owner(o));
    db.with_transaction_opts(opts, |c| {
        let rows: Vec<Owner> = diesel::sql_query("SELECT user_id FROM tasks").load(pg(c))?;
        Ok(rows.into_iter().map(|r| r.user_id).collect())
    })
}

/// Raw statements without an owner filter see and touch only the owner's rows.
#[test]
fn postgres_row_security_raw_queries_see_only_the_owners_rows() {
    let shape = Shape::start();
    let mut runner = TestRunner::new(PropConfig {
        cases: 24,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let strategy = (
        prop::collection::vec(0usize..6, 1..5),
        any::<prop::sample::Index>(),
    );
    runner
        .run(&strategy, |(counts, pick)| {
            // Fresh users per case; the owner role (which sees every row) makes them.
            let users: Vec<UserId> = counts
                .iter()
                .map(|&n| {
                    let u = common::factories::user(&shape.owner).id;
                    let titles: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
                    let new: Vec<NewTask> = titles
                        .iter()
                        .map(|t| NewTask {
                            title: t,
                            ..NewTask::default()
                        })
                        .collect();
                    if n > 0 {
                        shape.owner.tasks().create_many(u, &new).expect("seed");
                    }
                    u
                })
                .collect();
            let who = pick.index(users.len());
            let owner = users[who];
            let mine = counts[who];

            let seen = visible(&shape.app, Some(owner)).map_err(fail)?;
            prop_assert!(
                seen.iter().all(|u| *u == owner.0),
                "another user's row was visible"
            );
            prop_assert_eq!(seen.len(), mine);
            prop_assert_eq!(
                visible(&shape.app, None).map_err(fail)?.len(),
                0,
                "unset must show nothing"
            );

            // Writes without a filter touch only the owner's rows; the others' stay as they were.
            let touched = shape
                .app
                .with_transaction_opts(TxOptions::new().owner(owner), |c| {
                    Ok::<_, Error>(
                        diesel::sql_query("UPDATE tasks SET priority = 5").execute(pg(c))?,
                    )
                })
                .map_err(fail)?;
            prop_assert_eq!(touched, mine);
            let count_p5 = |u: UserId| -> i64 {
                let c: Count = shape
                    .owner
                    .run(|c| {
                        Ok(diesel::sql_query(
                            "SELECT count(*) AS n FROM tasks WHERE user_id = $1 AND priority = 5",
                        )
                        .bind::<SqlUuid, _>(u.0)
                        .get_result(pg(c))?)
                    })
                    .expect("count");
                c.n
            };
            for (i, &u) in users.iter().enumerate() {
                let expected = if i == who { counts[i] as i64 } else { 0 };
                prop_assert_eq!(count_p5(u), expected);
            }
            // Inserting a row for another user is refused by the policy's WITH CHECK.
            if let Some(&other) = users.iter().find(|u| **u != owner) {
                let err = shape
                    .app
                    .with_transaction_opts(TxOptions::new().owner(owner), |c| {
                        Ok::<_, Error>(
                            diesel::sql_query(
                                "INSERT INTO tasks (id, user_id, title) VALUES ($1, $2, 'x')",
                            )
                            .bind::<SqlUuid, _>(uuid::Uuid::now_v7())
                            .bind::<SqlUuid, _>(other.0)
                            .execute(pg(c))?,
                        )
                    })
                    .expect_err("insert for another user");
                prop_assert!(err.to_string().contains("row-level security"), "{}", err);
            }
            let deleted = shape
                .app
                .with_transaction_opts(TxOptions::new().owner(owner), |c| {
                    Ok::<_, Error>(diesel::sql_query("DELETE FROM tasks").execute(pg(c))?)
                })
                .map_err(fail)?;
            prop_assert_eq!(deleted, mine);
            let total: usize = counts.iter().sum();
            let left: Count =
                shape
                    .owner
                    .run(|c| {
                        let ids: Vec<uuid::Uuid> = users.iter().map(|u| u.0).collect();
                        Ok(diesel::sql_query(
                            "SELECT count(*) AS n FROM tasks WHERE user_id = ANY($1)",
                        )
                        .bind::<diesel::sql_types::Array<SqlUuid>, _>(ids)
                        .get_result(pg(c))?)
                    })
                    .expect("count left");
            prop_assert_eq!(left.n as usize, total - mine);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The PostgreSQL connection inside the layer's connection type (raw statements with uuid
/// binds need the native backend).
fn pg(conn: &mut taskstore::DbConnection) -> &mut PgConnection {
    match conn {
        taskstore::DbConnection::Postgres(pg) => pg,
        _ => panic!("a PostgreSQL test got another backend"),
    }
}

fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// The handles work for the runtime role under the policy: each call scopes itself to its
/// owner, so the owner's task is found and counted, while another user's scope does not reach
/// it even with its id and owner named; a transaction that does not name its owner still sees
/// nothing (fail closed). The owner role is not restricted.
#[test]
fn postgres_row_security_handles_scope_themselves_to_the_owner() {
    let shape = Shape::start();
    let user = common::factories::user(&shape.owner);
    let task = common::factories::task(&shape.owner, user.id, "walled");
    assert_eq!(
        shape.app.tasks().get(user.id, task.id).expect("get").id,
        task.id
    );
    assert_eq!(shape.app.tasks().stats(user.id).expect("stats").total, 1);
    let other = common::factories::user(&shape.owner);
    assert_eq!(shape.app.tasks().stats(other.id).expect("stats").total, 0);
    // Another owner's scope does not reach this task, even with its id and owner named.
    assert!(matches!(
        shape
            .app
            .with_transaction_opts(TxOptions::new().owner(other.id), |c| {
                taskstore::repo::tasks::get(c, user.id, task.id)
            }),
        Err(Error::NotFound { .. })
    ));
    // Fail closed: a transaction that names no owner sees nothing.
    assert!(matches!(
        shape
            .app
            .with_transaction(|c| taskstore::repo::tasks::get(c, user.id, task.id)),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        shape
            .owner
            .tasks()
            .get(user.id, task.id)
            .expect("owner role")
            .id,
        task.id
    );
    assert_eq!(
        shape.cluster.psql(
            "app",
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = 'tasks'"
        ),
        "t"
    );
}

/// The behavioural tour (users, tasks, version guard, bulk create, keyset pages, import,
/// stats, transactions, cascade) as the runtime role under the policy.
#[test]
fn postgres_row_security_tour_one_thread() {
    let shape = Shape::start();
    common::deploy::tour_owner_scoped("row-level security", &shape.app);
}

/// The tour on 8 threads at once through one pool of 4 connections as the runtime role: every
/// connection's scope ends with its transaction, so no thread sees another's rows.
#[test]
fn postgres_row_security_tour_eight_threads() {
    let shape = Shape::start();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let db = &shape.app;
                s.spawn(move || {
                    common::deploy::tour_owner_scoped(
                        &format!("row-level security, thread {i}"),
                        db,
                    )
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a tour thread failed");
        }
    });
}

/// What a task call costs in round trips, counted in the server's own statement log
/// (`log_statement = all`, one line per simple query or extended-protocol execute, by
/// `application_name`): where row-level security does not apply (the superuser) each call is
/// one round trip, exactly as before, and the question whether it applies was asked once for
/// the connection; under the policy (the runtime role) each call is `BEGIN` with the owner,
/// the statement, `COMMIT`.
#[test]
fn postgres_row_security_round_trips_per_call() {
    let shape = Shape::start_with(
        &["log_statement = 'all'", "log_line_prefix = '%a|'"],
        // No validation pings on checkout during the count.
        &[("DATABASE_VALIDATE_IDLE_MS", "600000")],
    );
    let user = common::factories::user(&shape.owner);
    let task = common::factories::task(&shape.owner, user.id, "counted");
    let log = shape.cluster.dir().join("server.log");
    let lines = |app: &str, from: usize| -> Vec<String> {
        let text = std::fs::read_to_string(&log).expect("server log");
        let prefix = format!("{app}|LOG:  ");
        text[from..]
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter(|l| l.contains("statement: ") || l.contains("execute "))
            .map(str::to_owned)
            .collect()
    };
    let log_len = || std::fs::metadata(&log).expect("server log").len() as usize;
    const CALLS: usize = 10;
    for (app, url, per_call) in [
        ("rt_super", shape.cluster.url_for("app"), 1),
        ("rt_app", role_url(&shape.cluster, "taskstore_app"), 3),
    ] {
        let db = Database::connect(
            &Config::from_vars([
                ("DATABASE_URL", url.as_str()),
                ("DATABASE_POOL_MAX_SIZE", "1"),
                ("DATABASE_APPLICATION_NAME", app),
                ("DATABASE_VALIDATE_IDLE_MS", "600000"),
            ])
            .expect("configuration"),
        )
        .expect("connect");
        // The pool's one connection opened (and its set-up statements logged) before the
        // count: a call that asks nothing about row security.
        db.users().count().expect("warm-up");
        // The first task call on the connection asks once whether row security applies.
        let start = log_len();
        db.tasks().get(user.id, task.id).expect("first get");
        let first = lines(app, start);
        assert_eq!(
            first
                .iter()
                .filter(|l| l.contains("row_security_active"))
                .count(),
            1,
            "{app}: the question is asked on the first call: {first:#?}"
        );
        assert_eq!(first.len(), 1 + per_call, "{app}: {first:#?}");
        let start = log_len();
        for _ in 0..CALLS {
            db.tasks().get(user.id, task.id).expect("get");
            db.tasks()
                .list(
                    user.id,
                    &taskstore::models::TaskFilter::default(),
                    taskstore::models::TaskSort::CreatedAsc,
                    &taskstore::models::PageRequest::first(20),
                )
                .expect("list");
        }
        let seen = lines(app, start);
        assert_eq!(
            seen.len(),
            2 * CALLS * per_call,
            "{app}: round trips for {CALLS} gets and {CALLS} lists: {seen:#?}"
        );
        assert!(
            !seen.iter().any(|l| l.contains("row_security_active")),
            "{app}: asked once per connection, not per call"
        );
    }
}

/// A write by a member of the group in a transaction that does not name the owner is refused
/// by the policy, and the error says why and what to do, not only PostgreSQL's "new row
/// violates row-level security policy".
#[test]
fn postgres_row_security_unscoped_write_says_what_to_do() {
    let shape = Shape::start();
    let user = common::factories::user(&shape.owner);
    let err = shape
        .app
        .with_transaction(|c| {
            taskstore::repo::tasks::create(
                c,
                user.id,
                &NewTask {
                    title: "unscoped",
                    description: None,
                    priority: None,
                },
            )
        })
        .expect_err("the policy refuses a write outside an owner-scoped transaction");
    let text = err.to_string();
    assert!(text.contains("row-level security policy"), "{text}");
    assert!(text.contains("TxOptions::owner"), "{text}");
    assert!(text.contains("docs/row-security.sql"), "{text}");
    assert_eq!(shape.owner.tasks().stats(user.id).expect("stats").total, 0);
}

/// Row-level security turned on while the application runs: a task write on a connection
/// that asked before is refused by the policy with advice to restart, that connection is
/// discarded, and the next call (on a connection that asks again) works.
#[test]
fn postgres_row_security_turned_on_while_running_heals_on_the_next_write() {
    common::init_tracing();
    let cluster = Cluster::start(&[]);
    common::cluster::psql_docs_file(&cluster.url(), "roles.sql", &["db=app"]);
    let owner = connect(&cluster, "taskstore_owner", &[]);
    common::cluster::psql_docs_file(
        &role_url(&cluster, "taskstore_owner"),
        "roles-after-migrate.sql",
        &[],
    );
    let app = connect(
        &cluster,
        "taskstore_app",
        &[("DATABASE_POOL_MAX_SIZE", "1")],
    );
    let user = common::factories::user(&owner);
    let new = NewTask {
        title: "before",
        ..NewTask::default()
    };
    app.tasks()
        .create(user.id, &new)
        .expect("a write before row security is on");
    common::cluster::psql_docs_file(&cluster.url_for("app"), "row-security.sql", &[]);
    let refused = app
        .tasks()
        .create(user.id, &new)
        .expect_err("the connection still believes row security does not apply");
    let text = refused.to_string();
    assert!(
        text.contains("row-level security") && text.contains("restart the application"),
        "the error says what happened and what to do: {text}"
    );
    app.tasks()
        .create(user.id, &new)
        .expect("the next write asks again and names its owner");
    let mine = app
        .tasks()
        .list(
            user.id,
            &taskstore::models::TaskFilter::default(),
            taskstore::models::TaskSort::CreatedAsc,
            &taskstore::models::PageRequest::first(20),
        )
        .expect("list");
    assert_eq!(mine.items.len(), 2, "the write before and the one after");
}
