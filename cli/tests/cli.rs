//! The `taskstore` binary driven as a user would, on SQLite and on PostgreSQL: every
//! subcommand, the exit codes of SPEC §8, import/export round trips, and redaction.

// The library suite's support module: an isolated database per test on either backend.
#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Backend, PgTestDb};
use serde_json::Value;

/// One environment for the binary: a database URL and a working directory.
struct Env {
    url: String,
    dir: tempfile::TempDir,
    _pg: Option<PgTestDb>,
}

impl Env {
    fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("cli.db").display()),
                None,
            ),
            Backend::Postgres => {
                let pg = PgTestDb::create();
                (pg.url.clone(), Some(pg))
            }
        };
        Self { url, dir, _pg: pg }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_taskstore"));
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        c.env("DATABASE_URL", &self.url).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run taskstore")
    }

    /// Runs with `--json`, expects success, parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs with `--json`, expects exit `code`, returns the stderr error object (the last of
    /// stderr's JSON lines).
    fn fails(&self, code: i32, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // JSON lines: log events (warnings) may come before the error object, which is last.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<Value> = stderr
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|_| panic!("{args:?}: stderr is not JSON lines: {stderr}"))
            })
            .collect();
        let err = lines
            .last()
            .cloned()
            .unwrap_or_else(|| panic!("{args:?}: nothing on stderr"));
        assert!(err["error"]["message"].is_string(), "{err}");
        err
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn every_subcommand(backend: Backend) {
    let env = Env::new(backend);
    // user
    let user = env.json(&[
        "user",
        "add",
        "--email",
        "Ada@Example.com",
        "--password-hash",
        "$argon2id$v=19$abc",
        "--first-name",
        "Ada",
    ]);
    assert_eq!(user["email"], "ada@example.com");
    assert!(
        user.get("password_hash").is_none(),
        "password hash is never printed: {user}"
    );
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(
        env.json(&["user", "get", "ADA@example.com"])["id"],
        id.as_str()
    );
    assert_eq!(env.json(&["user", "get", &id])["email"], "ada@example.com");
    let updated = env.json(&["user", "update", &id, "--last-name", "Lovelace"]);
    assert_eq!(updated["last_name"], "Lovelace");
    assert_eq!(env.json(&["user", "deactivate", &id])["is_active"], false);
    assert_eq!(
        env.json(&["user", "activate", "ada@example.com"])["is_active"],
        true
    );
    let list = env.json(&["user", "list", "--limit", "10"]);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["next_cursor"].is_null());
    env.fails(
        6,
        &[
            "user",
            "add",
            "--email",
            "ada@example.com",
            "--password-hash",
            "h",
        ],
    );
    env.fails(
        4,
        &[
            "user",
            "add",
            "--email",
            "not-an-email",
            "--password-hash",
            "h",
        ],
    );
    env.fails(5, &["user", "get", "nobody@example.com"]);

    // task
    let t1 = env.json(&[
        "task",
        "add",
        "--user",
        &id,
        "--title",
        "First",
        "--priority",
        "4",
    ]);
    let t1id = t1["id"].as_str().unwrap().to_owned();
    assert_eq!(t1["version"], 1);
    env.json(&[
        "task",
        "add",
        "--user",
        "ada@example.com",
        "--title",
        "Second 100%_done",
        "--description",
        "d",
    ]);
    assert_eq!(
        env.json(&["task", "get", "--user", &id, &t1id])["title"],
        "First"
    );
    let up = env.json(&[
        "task",
        "update",
        "--user",
        &id,
        &t1id,
        "--title",
        "First!",
        "--expected-version",
        "1",
    ]);
    assert_eq!(up["version"], 2);
    env.fails(
        6,
        &[
            "task",
            "update",
            "--user",
            &id,
            &t1id,
            "--title",
            "x",
            "--expected-version",
            "1",
        ],
    );
    assert_eq!(
        env.json(&["task", "done", "--user", &id, &t1id])["completed"],
        true
    );
    assert_eq!(
        env.json(&["task", "reopen", "--user", &id, &t1id])["completed"],
        false
    );
    let page = env.json(&[
        "task", "list", "--user", &id, "--sort", "title", "--limit", "1",
    ]);
    assert_eq!(page["items"][0]["title"], "First!");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page2 = env.json(&[
        "task", "list", "--user", &id, "--sort", "title", "--limit", "1", "--cursor", &cursor,
    ]);
    assert_eq!(page2["items"][0]["title"], "Second 100%_done");
    let found = env.json(&["task", "list", "--user", &id, "--search", "100%_"]);
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let none = env.json(&["task", "list", "--user", &id, "--search", "1_0"]);
    assert_eq!(none["items"].as_array().unwrap().len(), 0, "_ is literal");
    let filtered = env.json(&[
        "task",
        "list",
        "--user",
        &id,
        "--completed",
        "false",
        "--priority-min",
        "4",
        "--priority-max",
        "5",
        "--created-after",
        "2000-01-01T00:00:00Z",
        "--created-before",
        "2999-01-01T00:00:00Z",
        "--sort",
        "-priority",
    ]);
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    env.fails(4, &["task", "list", "--user", &id, "--cursor", "garbage"]);
    env.fails(4, &["task", "add", "--user", &id, "--title", "   "]);
    env.fails(
        4,
        &[
            "task",
            "add",
            "--user",
            &id,
            "--title",
            "x",
            "--priority",
            "9",
        ],
    );
    let stats = env.json(&["stats", "--user", &id]);
    assert_eq!(stats["total"], 2);
    // Another user's task looks missing.
    let other = env.json(&[
        "user",
        "add",
        "--email",
        "eve@example.com",
        "--password-hash",
        "h",
    ]);
    env.fails(
        5,
        &[
            "task",
            "get",
            "--user",
            other["id"].as_str().unwrap(),
            &t1id,
        ],
    );
    env.fails(5, &["task", "delete", "--user", "eve@example.com", &t1id]);
    env.json(&["task", "delete", "--user", &id, &t1id]);
    env.fails(5, &["task", "get", "--user", &id, &t1id]);

    // table output works too
    let out = env.run(&["task", "list", "--user", &id]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Second 100%_done"));

    // migrate, health, config
    let status = env.json(&["migrate", "status"]);
    assert!(status["pending"].as_array().unwrap().is_empty(), "{status}");
    let health = env.json(&["health"]);
    assert_eq!(health["status"], "ok");
    assert!(health["schema_version"].is_string());
    let config = env.json(&["config"]);
    assert_eq!(config["DATABASE_URL"]["source"], "environment");

    env.json(&["user", "delete", &id]);
    env.fails(5, &["user", "get", &id]);
    // usage errors
    assert_eq!(env.run(&["task", "list"]).status.code(), Some(2));
    assert_eq!(env.run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn sqlite_every_subcommand() {
    every_subcommand(Backend::Sqlite);
}

#[test]
fn postgres_every_subcommand() {
    every_subcommand(Backend::Postgres);
}

fn write_csv(path: &Path, rows: usize) {
    let mut text = String::from("title,description,priority,completed\n");
    for i in 0..rows {
        let desc = if i % 3 == 0 {
            String::new()
        } else {
            format!("\"line, with comma \"\"{i}\"\"\"")
        };
        text.push_str(&format!(
            "Task {i:05},{desc},{},{}\n",
            i % 5 + 1,
            i % 4 == 0
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn import_export_round_trip(backend: Backend) {
    let env = Env::new(backend);
    let user = env.json(&[
        "user",
        "add",
        "--email",
        "io@example.com",
        "--password-hash",
        "h",
    ]);
    let id = user["id"].as_str().unwrap().to_owned();
    let src = env.path("in.csv");
    write_csv(Path::new(&src), 10_000);
    let summary = env.json(&["task", "import", "--user", &id, &src]);
    assert_eq!(summary["imported"], 10_000);
    eprintln!(
        "import rate ({backend:?}, 10 000 CSV rows via the CLI): {:.0} rows/s",
        summary["rows_per_second"].as_f64().unwrap()
    );
    for (fmt, ext) in [("csv", "csv"), ("jsonl", "jsonl")] {
        let out = env.path(&format!("out.{ext}"));
        env.json(&[
            "task", "export", "--user", &id, "--format", fmt, "--output", &out,
        ]);
        // Re-import into a fresh user and export again: identical apart from ids' owner.
        let other = env.json(&[
            "user",
            "add",
            "--email",
            &format!("copy-{fmt}@example.com"),
            "--password-hash",
            "h",
        ]);
        let oid = other["id"].as_str().unwrap().to_owned();
        // Ids are globally unique: re-importing the same ids elsewhere is a conflict (exit 6,
        // the exit-code table's conflict; issue 12 item 17), by line.
        let err = env.fails(6, &["task", "import", "--user", &oid, &out]);
        // The first data row: line 2 of a CSV file (after the header), line 1 of JSON Lines.
        let first = if fmt == "csv" {
            "line 2: id:"
        } else {
            "line 1: id:"
        };
        assert!(
            err["error"]["details"][0]
                .as_str()
                .unwrap()
                .starts_with(first),
            "{err}"
        );
        // The same export re-imports identically into a fresh database.
        let env2 = Env::new(backend);
        let u2 = env2.json(&[
            "user",
            "add",
            "--email",
            "io@example.com",
            "--password-hash",
            "h",
        ]);
        let id2 = u2["id"].as_str().unwrap().to_owned();
        assert_eq!(
            env2.json(&["task", "import", "--user", &id2, &out])["imported"],
            10_000
        );
        let again = env2.path(&format!("again.{ext}"));
        env2.json(&[
            "task", "export", "--user", &id2, "--format", fmt, "--output", &again,
        ]);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            std::fs::read_to_string(&again).unwrap(),
            "{fmt} round trip"
        );
    }
}

#[test]
fn sqlite_import_export_round_trip() {
    import_export_round_trip(Backend::Sqlite);
}

#[test]
fn postgres_import_export_round_trip() {
    import_export_round_trip(Backend::Postgres);
}

fn bad_rows_write_nothing(backend: Backend) {
    let env = Env::new(backend);
    let user = env.json(&[
        "user",
        "add",
        "--email",
        "bad@example.com",
        "--password-hash",
        "h",
    ]);
    let id = user["id"].as_str().unwrap().to_owned();
    let csv = env.path("bad.csv");
    std::fs::write(
        &csv,
        "title,priority,completed\nfine,3,false\n,3,false\nok,9,false\nok,2,maybe\n",
    )
    .unwrap();
    let err = env.fails(4, &["task", "import", "--user", &id, &csv]);
    let details: Vec<String> = err["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    assert!(
        details.iter().any(|d| d.starts_with("line 3: title:")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.starts_with("line 4: priority:")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.starts_with("line 5: completed:")),
        "{details:?}"
    );
    let jsonl = env.path("bad.jsonl");
    std::fs::write(
        &jsonl,
        "{\"title\":\"ok\"}\n{\"title\":\"x\",\"colour\":\"red\"}\nnot json\n",
    )
    .unwrap();
    let err = env.fails(4, &["task", "import", "--user", &id, &jsonl]);
    let text = err["error"]["details"].to_string();
    assert!(
        text.contains("line 2: colour") && text.contains("line 3: row"),
        "{text}"
    );
    assert_eq!(
        env.json(&["stats", "--user", &id])["total"],
        0,
        "nothing was written"
    );
}

/// A value that does not parse names its column, what the column holds and what was given; every
/// bad value of a row is reported (also those whose type's own `Deserialize` fails: UUIDs,
/// timestamps), and the summary counts rows, not messages.
#[test]
fn bad_values_name_their_column_and_what_was_expected() {
    let env = Env::new(Backend::Sqlite);
    let user = env.json(&[
        "user",
        "add",
        "--email",
        "values@example.com",
        "--password-hash",
        "h",
    ]);
    let id = user["id"].as_str().unwrap().to_owned();
    let details = |err: &Value| -> Vec<String> {
        err["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect()
    };
    let csv = env.path("values.csv");
    std::fs::write(
        &csv,
        "title,id,priority,created_at
ok,zz,x,2026-13-01
fine,,2,2026-11-27T10:00:00Z
",
    )
    .unwrap();
    let err = env.fails(4, &["task", "import", "--user", &id, &csv]);
    assert_eq!(
        details(&err),
        [
            "line 2: id: expected a UUID such as 0192f1a6-3f3e-7c2a-9d4b-5e6f7a8b9c0d, got \"zz\"",
            "line 2: priority: expected a whole number from 1 to 5, got \"x\"",
            "line 2: created_at: expected an RFC 3339 timestamp such as 2026-11-27T10:00:00Z, \
             got \"2026-13-01\"",
        ],
        "{err}"
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has 1 bad line;"),
        "{err}"
    );
    let jsonl = env.path("values.jsonl");
    std::fs::write(
        &jsonl,
        "{\"title\":\"a\",\"priority\":\"3\",\"completed\":1}\n{\"title\":\"b\",\"priority\":3,\"completed\":true}\n",
    )
    .unwrap();
    let err = env.fails(4, &["task", "import", "--user", &id, &jsonl]);
    assert_eq!(
        details(&err),
        [
            "line 1: completed: expected true or false, got 1",
            "line 1: priority: expected a whole number from 1 to 5, got \"3\"",
        ],
        "{err}"
    );
    assert_eq!(
        env.json(&["stats", "--user", &id])["total"],
        0,
        "nothing was written"
    );
}

#[test]
fn sqlite_bad_rows_write_nothing() {
    bad_rows_write_nothing(Backend::Sqlite);
}

#[test]
fn postgres_bad_rows_write_nothing() {
    bad_rows_write_nothing(Backend::Postgres);
}

#[test]
fn demo_runs_twice_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_taskstore"))
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("demo")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(
        text.contains("first run") && text.contains("sqlite://taskstore.db"),
        "{text}"
    );
    assert!(dir.path().join("taskstore.db").exists());
    let second = run();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("reset"),
        "second run resets the demo data"
    );
}

#[test]
fn exit_codes_for_configuration_and_unavailability() {
    let env = Env::new(Backend::Sqlite);
    let out = env
        .cmd(&["--json", "health"])
        .env("DATABASE_POOL_MAX_SIZE", "zero")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env
        .cmd(&["--json", "config"])
        .env("TASKSTORE_ENV", "production")
        .env("DATABASE_URL", "postgres://u:p@db.example.com/x")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "insecure production URL is refused"
    );
    // Nothing listens on port 1.
    let out = env
        .cmd(&["--json", "health"])
        .env("DATABASE_URL", "postgres://u@127.0.0.1:1/x")
        .env("DATABASE_STARTUP_WAIT_MS", "300")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything the binary printed, stdout then stderr.
fn both_streams(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every failure the binary can meet with a password-bearing URL: nothing prints the password.
#[test]
fn no_command_prints_the_password() {
    const PW: &str = "Cli-S3cret-Pw";
    let env = Env::new(Backend::Sqlite);
    let urls = [
        format!("postgres://app:{PW}@127.0.0.1:1/x"),
        format!("postgres://app:{PW}@127.0.0.1:5432/no_such_db_taskstore"),
        format!("postgres://app:{PW}%zz@127.0.0.1/x"),
        format!("postgres://app:{PW}@[::1/x"),
        format!("host=127.0.0.1 password={PW}"),
        format!("postgres://app:{PW}@db.example.com/x"),
        format!("mysql://app:{PW}@h/x"),
    ];
    let commands: &[&[&str]] = &[
        &["health"],
        &["config"],
        &["migrate", "status"],
        &["user", "list"],
        &["demo"],
        &["--json", "health"],
        &["--json", "config"],
    ];
    for url in &urls {
        for args in commands {
            for production in [false, true] {
                let mut c = env.cmd(args);
                c.env("DATABASE_URL", url)
                    .env("DATABASE_STARTUP_WAIT_MS", "200")
                    .env("TASKSTORE_LOG", "debug");
                if production {
                    c.env("TASKSTORE_ENV", "production");
                }
                let out = c.output().unwrap();
                let all = both_streams(&out);
                assert!(
                    !all.contains(PW),
                    "{args:?} with {url:?} printed the password:\n{all}"
                );
            }
        }
        // --database-url flag and DATABASE_PASSWORD too.
        let out = env
            .cmd(&["--database-url", url, "health"])
            .env("DATABASE_STARTUP_WAIT_MS", "200")
            .output()
            .unwrap();
        let all = both_streams(&out);
        assert!(
            !all.contains(PW),
            "--database-url {url:?} printed the password:\n{all}"
        );
    }
    let out = env
        .cmd(&["config"])
        .env("DATABASE_URL", "postgres://app@127.0.0.1:1/x")
        .env("DATABASE_PASSWORD", PW)
        .output()
        .unwrap();
    let all = both_streams(&out);
    assert!(out.status.success() && !all.contains(PW), "{all}");
}

/// `migrate revert` (its `DROP TABLE tasks`) while another session keeps a transaction open on
/// `tasks`: the CLI logs each wait naming the blocker, then exits 7 (timed out: run again
/// later) with the blocker's application_name in the error; nothing was reverted.
#[test]
fn postgres_migrate_blocked_by_an_open_transaction_exits_7_naming_the_blocker() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    let env = Env::new(Backend::Postgres);
    env.json(&["migrate", "run"]);
    let mut holder = PgConnection::establish(&env.url).unwrap();
    holder
        .batch_execute(
            "SET application_name = 'nightly_report'; BEGIN; SELECT count(*) FROM tasks;",
        )
        .unwrap();
    let out = env
        .cmd(&["--json", "migrate", "revert", "--steps", "1"])
        .env("DATABASE_STARTUP_WAIT_MS", "2000")
        .env("DATABASE_MIGRATION_LOCK_TIMEOUT_MS", "300")
        .env("TASKSTORE_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    let last: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["error"]["kind"], "migration", "{stderr}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nightly_report"),
        "{stderr}"
    );
    assert!(
        stderr.lines().count() >= 2 && stderr.contains("re-trying"),
        "each wait is logged: {stderr}"
    );
    holder.batch_execute("COMMIT").unwrap();
    // Nothing was reverted: every migration is still applied.
    let status = env.json(&["migrate", "status"]);
    assert_eq!(status["pending"].as_array().unwrap().len(), 0, "{status}");
    assert!(
        !status["applied"].as_array().unwrap().is_empty(),
        "{status}"
    );
}

/// On SQLite, `migrate run` while another connection holds the write lock for longer than
/// `DATABASE_LOCK_TIMEOUT_MS` exits 7 as well.
#[test]
fn sqlite_migrate_blocked_by_a_writer_exits_7() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    let env = Env::new(Backend::Sqlite);
    let mut holder = SqliteConnection::establish(&env.url).unwrap();
    holder
        .batch_execute(
            // WAL first, as the CLI's connection would set it: the open itself then succeeds
            // and the wait is the migration run's, for SQLite's write lock.
            "PRAGMA journal_mode = WAL; CREATE TABLE other (x int); \
             BEGIN IMMEDIATE; INSERT INTO other VALUES (1);",
        )
        .unwrap();
    let out = env
        .cmd(&["--json", "migrate", "run"])
        .env("DATABASE_LOCK_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("\"kind\":\"migration\"") && stderr.contains("write lock"),
        "{stderr}"
    );
    holder.batch_execute("COMMIT").unwrap();
    env.json(&["migrate", "run"]);
}
