//! Issue 13 item 5: least privilege. A throw-away cluster set up with `docs/roles.sql` (and
//! `docs/roles-after-migrate.sql` after the first migration): the migration role
//! `taskstore_owner` owns the schema, the runtime role `taskstore_app` has row access only.
//! The layer works fully with `DATABASE_MIGRATION_URL` as the owner and `DATABASE_URL` as the
//! runtime role, directly and through PgBouncer in transaction mode; the runtime role cannot
//! DROP, ALTER, TRUNCATE, create objects or SET ROLE.

mod common;

use common::cluster::Cluster;
use common::outage::pooler::Pgbouncer;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskstore::{Config, Database};

/// A cluster with database `app` set up by the documented SQL, migrated as the owner.
struct Roles {
    cluster: Cluster,
}

impl Roles {
    fn start() -> Self {
        common::init_tracing();
        let cluster = Cluster::start(&[]);
        common::cluster::psql_docs_file(&cluster.url(), "roles.sql", &["db=app"]);
        Self { cluster }
    }

    fn url_as(&self, role: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/app", self.cluster.port)
    }

    fn connect(&self, url: &str, extra: &[(&str, &str)]) -> Database {
        let owner = self.url_as("taskstore_owner");
        let mut vars = vec![
            ("DATABASE_URL", url),
            ("DATABASE_MIGRATION_URL", owner.as_str()),
        ];
        vars.extend_from_slice(extra);
        let db = Database::connect(&Config::from_vars(vars).expect("configuration"))
            .unwrap_or_else(|e| panic!("connect as the runtime role: {e}"));
        common::cluster::psql_docs_file(&owner, "roles-after-migrate.sql", &[]);
        db
    }
}

/// `sql` as the runtime role fails, with `expected` in the message.
fn refused(conn: &mut PgConnection, sql: &str, expected: &str) {
    match conn.batch_execute(sql) {
        Ok(()) => panic!("the runtime role could run {sql:?}"),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains(expected), "{sql:?} failed, but with {text:?}");
        }
    }
}

#[test]
fn postgres_runtime_role_works_fully() {
    let roles = Roles::start();
    let db = roles.connect(&roles.url_as("taskstore_app"), &[]);
    common::deploy::tour("runtime role", &db);
    let report = db.health().expect("health as the runtime role");
    assert!(report.schema_version.is_some(), "{report:?}");
    assert_eq!(
        roles.cluster.psql(
            "app",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'tasks'"
        ),
        "taskstore_owner"
    );
}

#[test]
fn postgres_runtime_role_works_through_pgbouncer_transaction_mode() {
    let roles = Roles::start();
    let pooler = Pgbouncer::start_transaction_mode(&roles.cluster, 2);
    let url = format!("postgres://taskstore_app@127.0.0.1:{}/app", pooler.port);
    let db = roles.connect(&url, &[("DATABASE_PREPARED_STATEMENTS", "false")]);
    common::deploy::tour("runtime role through pgbouncer", &db);
    // The role's own settings (docs/roles.sql) give statements outside a transaction the
    // timeouts the pooler dropped from the startup packet.
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let seen: Setting = db
        .run(|c| {
            Ok(
                diesel::sql_query("SELECT current_setting('lock_timeout') AS value")
                    .get_result(c)?,
            )
        })
        .expect("lock_timeout");
    assert_eq!(seen.value, "10s");
}

#[test]
fn postgres_runtime_role_cannot_change_the_schema_or_its_role() {
    let roles = Roles::start();
    let db = roles.connect(&roles.url_as("taskstore_app"), &[]);
    let user = common::factories::user(&db);
    common::factories::task(&db, user.id, "kept");
    let mut app = PgConnection::establish(&roles.url_as("taskstore_app")).expect("runtime role");
    refused(&mut app, "DROP TABLE tasks", "must be owner");
    refused(
        &mut app,
        "ALTER TABLE tasks ADD COLUMN x int",
        "must be owner",
    );
    refused(
        &mut app,
        "ALTER TABLE users DISABLE ROW LEVEL SECURITY",
        "must be owner",
    );
    refused(&mut app, "TRUNCATE tasks", "permission denied");
    refused(
        &mut app,
        "CREATE TABLE t (x int)",
        "permission denied for schema public",
    );
    refused(
        &mut app,
        "CREATE TEMP TABLE t (x int)",
        "permission denied to create temporary tables",
    );
    refused(
        &mut app,
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "permission denied for schema public",
    );
    refused(&mut app, "CREATE INDEX ON tasks (title)", "must be owner");
    refused(
        &mut app,
        "CREATE SCHEMA s",
        "permission denied for database",
    );
    refused(
        &mut app,
        "SET ROLE taskstore_owner",
        "permission denied to set role",
    );
    refused(
        &mut app,
        "SET ROLE postgres",
        "permission denied to set role",
    );
    refused(
        &mut app,
        "SET SESSION AUTHORIZATION postgres",
        "permission denied to set session authorization",
    );
    refused(
        &mut app,
        "DELETE FROM __diesel_schema_migrations",
        "permission denied",
    );
    // What it may do: rows.
    app.batch_execute("UPDATE tasks SET title = 'renamed' WHERE title = 'kept'")
        .expect("the runtime role updates rows");
    assert_eq!(
        roles
            .cluster
            .psql("app", "SELECT count(*) FROM tasks WHERE title = 'renamed'"),
        "1"
    );
}

/// A new user who forgets `DATABASE_MIGRATION_URL` migrates as the runtime role: refused by the
/// server, and the error says to set `DATABASE_MIGRATION_URL` to the owner's URL.
#[test]
fn postgres_migrating_as_the_runtime_role_says_to_set_the_migration_url() {
    let roles = Roles::start();
    let app = roles.url_as("taskstore_app");
    let err = Database::connect(&Config::from_vars([("DATABASE_URL", app.as_str())]).unwrap())
        .expect_err("the runtime role cannot create the migration tables");
    let text = err.to_string();
    assert!(matches!(err, taskstore::Error::Migration(_)), "{err:?}");
    assert!(text.contains("permission denied"), "{text}");
    assert!(text.contains("set DATABASE_MIGRATION_URL"), "{text}");
    assert!(text.contains("docs/roles.sql"), "{text}");
}
