//! Issue 12, items 8–12: the CLI as a one-shot process — it opens what it needs, reads without
//! taking locks when nothing is pending, `health` writes nothing and documents its exit codes,
//! `--json` errors are the only thing on stderr, and `--help` describes every option.
//!
//! Black-box: the `taskstore` binary (see `common::cli_env::taskstore_bin`), on both backends
//! where the item applies.
//!
//! Rules chosen where the issue leaves a choice:
//! - `health` exit codes follow the exit-code table: 0 ok; 1 reachable but the schema is not
//!   current (the table's `Migration` row); 7 unreachable — including a SQLite file that does not
//!   exist, like PostgreSQL's unknown database;
//! - with `--json`, stderr is machine-readable: every non-empty line is a JSON object and the
//!   error is exactly one of them, the last (log lines, if any, are JSON too);
//! - on PostgreSQL too, start-up only reads when nothing is pending: it does not wait for the
//!   migration advisory lock (the analogue of SQLite's write lock).

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::Backend;
use common::cli_env::{CliEnv, both, stderr, stdout, taskstore_bin};
use common::cluster::Cluster;
use diesel::prelude::*;
use serde_json::Value;

/// Runs `count` copies of the same command at once and returns their outputs.
fn concurrently(env: &CliEnv, count: usize, args: &[&str]) -> Vec<Output> {
    let children: Vec<_> = (0..count)
        .map(|_| {
            env.cmd(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn taskstore")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait for taskstore"))
        .collect()
}

/// The failures among `outputs`, described.
fn failures(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter(|o| !o.status.success())
        .map(|o| format!("exit {:?}: {}", o.status.code(), stderr(o).trim()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Item 8: one connection per one-shot command.

/// Item 8: a one-shot command opens what it needs — one connection, no idle minimum — unless
/// the user sets the pool variables: `health --json` shows at most one connection opened by the
/// pool, `config` shows the minimum idle the command uses (0), and variables the user sets are
/// honoured.
fn item08_one_shot_commands_open_one_connection(backend: Backend) {
    let env = CliEnv::new(backend);
    env.json(&["migrate", "run"]);
    let health = env.json(&["health"]);
    let created = health["pool"]["connections_created"].as_u64();
    let open = health["pool"]["pool"]["connections"].as_u64();
    assert!(
        created.is_some_and(|n| n <= 1) && open.is_some_and(|n| n <= 1),
        "health opened more than one pooled connection: {health}"
    );
    let config = env.json(&["config"]);
    assert_eq!(
        config["DATABASE_POOL_MIN_IDLE"]["value"], "0",
        "a one-shot command keeps no idle minimum: {config}"
    );
    let out = env
        .cmd(&["--json", "config"])
        .env("DATABASE_POOL_MIN_IDLE", "3")
        .env("DATABASE_POOL_MAX_SIZE", "5")
        .output()
        .unwrap();
    let config: Value = serde_json::from_slice(&out.stdout).expect("config JSON");
    assert_eq!(config["DATABASE_POOL_MIN_IDLE"]["value"], "3");
    assert_eq!(config["DATABASE_POOL_MAX_SIZE"]["value"], "5");
}

/// Item 8: 32 concurrent one-shot commands against a server with `max_connections = 100` all
/// succeed (the issue saw 21 of 32 fail with "too many clients").
#[test]
fn postgres_item08_32_concurrent_commands_fit_max_connections_100() {
    let cluster = Cluster::start(&["max_connections = 100"]);
    cluster.psql("postgres", "CREATE DATABASE app");
    let env = CliEnv::with_url(&cluster.url_for("app"));
    env.json(&["migrate", "run"]);
    let id = env.add_user("many@example.com");
    let outputs = concurrently(&env, 32, &["--json", "task", "list", "--user", &id]);
    let failed = failures(&outputs);
    assert!(
        failed.is_empty(),
        "{} of 32 failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Item 8 (SQLite): 32 concurrent one-shot read commands on one file all succeed.
#[test]
fn sqlite_item08_32_concurrent_commands_all_succeed() {
    let env = CliEnv::new(Backend::Sqlite);
    env.json(&["migrate", "run"]);
    let id = env.add_user("many@example.com");
    let outputs = concurrently(&env, 32, &["--json", "task", "list", "--user", &id]);
    let failed = failures(&outputs);
    assert!(
        failed.is_empty(),
        "{} of 32 failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Item 9 (PostgreSQL part; SQLite's is in sqlite_writers.rs): start-up only reads.

/// Item 9 (PostgreSQL): with nothing pending, start-up only reads, so a command does not wait
/// for the migration advisory lock that another session holds (an operator, a long migration
/// of another release): it runs at once instead of failing after `DATABASE_STARTUP_WAIT_MS`.
#[test]
fn postgres_item09_start_up_does_not_wait_for_the_migration_lock_when_nothing_is_pending() {
    use diesel::sql_types::BigInt;
    let env = CliEnv::new(Backend::Postgres);
    env.json(&["migrate", "run"]);
    let id = env.add_user("reader@example.com");
    let mut holder = PgConnection::establish(env.url.as_deref().unwrap()).unwrap();
    diesel::select(
        diesel::dsl::sql::<diesel::sql_types::Bool>("pg_try_advisory_lock(")
            .bind::<BigInt, _>(taskstore::migrate::LOCK_KEY)
            .sql(")"),
    )
    .get_result::<bool>(&mut holder)
    .unwrap();
    let started = Instant::now();
    let out = env
        .cmd(&["--json", "task", "list", "--user", &id])
        .env("DATABASE_STARTUP_WAIT_MS", "3000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "waited {:?} for a lock it did not need",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Item 10: `health` writes nothing.

/// Item 10: `health` on a fresh directory (the embedded default, no file yet) creates nothing
/// and exits 7: the database it names does not exist, as for PostgreSQL's unknown database.
#[test]
fn item10_health_on_a_fresh_directory_creates_nothing() {
    let env = CliEnv::bare();
    let out = env.run(&["--json", "health"]);
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    let left: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "health created {left:?}");
}

/// What a database looks like from outside, to prove a command wrote nothing: the SQLite file's
/// bytes, or PostgreSQL's list of relations.
fn fingerprint(env: &CliEnv) -> Vec<u8> {
    match env.backend.expect("a backend") {
        Backend::Sqlite => std::fs::read(env.path("cli.db")).unwrap_or_default(),
        Backend::Postgres => {
            #[derive(QueryableByName)]
            struct Rel {
                #[diesel(sql_type = diesel::sql_types::Text)]
                name: String,
            }
            let mut conn = PgConnection::establish(env.url.as_deref().unwrap()).unwrap();
            let rels: Vec<Rel> = diesel::sql_query(
                "SELECT relname::text AS name FROM pg_class c JOIN pg_namespace n \
                 ON n.oid = c.relnamespace WHERE nspname = 'public' ORDER BY 1",
            )
            .load(&mut conn)
            .unwrap();
            rels.into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes()
        }
    }
}

/// Item 10: on a database that exists but is not migrated, `health` exits 1 (reachable, schema
/// not current: the exit-code table's `Migration` row), says `schema_not_current` with
/// `--json`, and writes nothing — on SQLite the file's bytes are unchanged (an empty file stays
/// empty: not even the WAL switch), on PostgreSQL no relation appears. Once migrated, `health`
/// exits 0 and still writes nothing.
fn item10_health_writes_nothing(backend: Backend) {
    let env = CliEnv::new(backend);
    if backend == Backend::Sqlite {
        std::fs::write(env.path("cli.db"), b"").unwrap();
    }
    let before = fingerprint(&env);
    let out = env.run(&["--json", "health"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("health --json report");
    assert_eq!(report["status"], "schema_not_current", "{report}");
    assert_eq!(
        fingerprint(&env),
        before,
        "health wrote to an unmigrated database"
    );

    env.json(&["migrate", "run"]);
    let before = fingerprint(&env);
    assert_eq!(env.json(&["health"])["status"], "ok");
    assert_eq!(
        fingerprint(&env),
        before,
        "health wrote to a current database"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 11: `--json` errors, no colour.

/// Asserts that stderr is machine-readable: every non-empty line a JSON object, exactly one of
/// them an error (the last), and no ANSI escape anywhere.
#[track_caller]
fn assert_json_stderr(what: &str, out: &Output) {
    let text = stderr(out);
    assert!(
        !text.contains('\u{1b}'),
        "{what}: ANSI escapes on stderr: {text:?}"
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| {
                    panic!("{what}: a stderr line is not a JSON object: {l:?}\n{text}")
                })
        })
        .collect();
    let errors = parsed.iter().filter(|v| v.get("error").is_some()).count();
    assert_eq!(errors, 1, "{what}: expected one error object: {text}");
    let last = parsed.last().expect("an error was printed");
    assert!(last["error"]["message"].is_string(), "{what}: {text}");
    assert_eq!(
        last["error"]["exit_code"].as_i64(),
        out.status.code().map(i64::from),
        "{what}: {text}"
    );
}

/// Item 11: with `--json`, usage errors from argument parsing are one JSON error object on
/// stderr too (exit 2), not clap's plain text.
#[test]
fn item11_json_usage_errors_are_json() {
    let env = CliEnv::bare();
    for args in [
        &["--json", "task", "list"][..],
        &["--json", "frobnicate"][..],
        &[
            "--json",
            "task",
            "add",
            "--user",
            "x",
            "--title",
            "t",
            "--priority",
            "high",
        ][..],
        &["--json", "user", "list", "--limit", "-1"][..],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", both(&out));
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        assert_json_stderr(&format!("{args:?}"), &out);
    }
}

/// Item 11: with `--json`, a failing command prints its error as the one JSON object on stderr,
/// with no (coloured) log line before it; without `--json`, stderr carries no ANSI colour when
/// it is not a terminal, whatever the log level.
fn item11_json_errors_are_the_only_thing_on_stderr(backend: Backend) {
    let unreachable = match backend {
        Backend::Postgres => common::pg_url_for("taskstore_no_such_database_i12"),
        Backend::Sqlite => "sqlite:///nonexistent-dir-i12/x.db".to_owned(),
    };
    let env = CliEnv::with_url(&unreachable);
    let out = env.run(&["--json", "health"]);
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    assert_json_stderr("--json health", &out);

    // Log events the user asks for are JSON lines too, and none of them looks like the error.
    let out = env
        .cmd(&["--json", "health"])
        .env("TASKSTORE_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    assert_json_stderr("--json health with TASKSTORE_LOG=info", &out);

    let out = env
        .cmd(&["health"])
        .env("TASKSTORE_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    assert!(
        !stderr(&out).contains('\u{1b}'),
        "ANSI escapes on a non-terminal stderr: {:?}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// Item 12: `--help` describes every option and argument.

/// One section entry of clap's help: the option or argument, and its description.
struct Entry {
    spec: String,
    description: String,
}

/// The entries of the `Arguments:` and `Options:` sections, and the names in `Commands:`.
fn parse_help(text: &str) -> (Vec<Entry>, Vec<String>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut commands = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') {
            section = line.trim_end_matches(':');
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body = line.trim();
        match section {
            "Commands" => {
                if let Some(name) = body.split_whitespace().next() {
                    commands.push(name.to_owned());
                }
            }
            "Arguments" | "Options" => {
                if indent <= 6 && body.starts_with(['-', '<', '[']) {
                    let (spec, rest) = body.split_once("  ").unwrap_or((body, ""));
                    entries.push(Entry {
                        spec: spec.to_owned(),
                        description: rest.trim().to_owned(),
                    });
                } else if let Some(last) = entries.last_mut() {
                    last.description.push(' ');
                    last.description.push_str(body);
                }
            }
            _ => {}
        }
    }
    (entries, commands)
}

/// A description with its `[default: ..]`, `[possible values: ..]` and similar annotations
/// removed.
fn without_annotations(description: &str) -> String {
    let mut out = String::new();
    let mut depth = 0u32;
    for c in description.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.trim().to_owned()
}

/// Item 12: every option and argument of every command and subcommand has a description in
/// `--help` that says what it takes — text besides clap's `[default: ..]` and
/// `[possible values: ..]` annotations.
#[test]
fn item12_help_describes_every_option_and_argument() {
    let mut missing = Vec::new();
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = 0;
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = std::process::Command::new(taskstore_bin())
            .args(&args)
            .env_clear()
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", both(&out));
        let (entries, commands) = parse_help(&stdout(&out));
        seen += 1;
        for e in entries {
            if !without_annotations(&e.description)
                .chars()
                .any(char::is_alphabetic)
            {
                missing.push(format!("taskstore {} {}", path.join(" "), e.spec));
            }
        }
        for c in commands.into_iter().filter(|c| c != "help") {
            let mut sub = path.clone();
            sub.push(c);
            queue.push(sub);
        }
    }
    assert!(seen > 20, "only {seen} help pages were found");
    assert!(
        missing.is_empty(),
        "options or arguments without a description:\n{}",
        missing.join("\n")
    );
}

mod sqlite {
    use super::*;

    #[test]
    fn item08_one_shot_commands_open_one_connection() {
        super::item08_one_shot_commands_open_one_connection(Backend::Sqlite);
    }

    #[test]
    fn item10_health_writes_nothing() {
        super::item10_health_writes_nothing(Backend::Sqlite);
    }

    #[test]
    fn item11_json_errors_are_the_only_thing_on_stderr() {
        super::item11_json_errors_are_the_only_thing_on_stderr(Backend::Sqlite);
    }
}

mod postgres {
    use super::*;

    #[test]
    fn item08_one_shot_commands_open_one_connection() {
        super::item08_one_shot_commands_open_one_connection(Backend::Postgres);
    }

    #[test]
    fn item10_health_writes_nothing() {
        super::item10_health_writes_nothing(Backend::Postgres);
    }

    #[test]
    fn item11_json_errors_are_the_only_thing_on_stderr() {
        super::item11_json_errors_are_the_only_thing_on_stderr(Backend::Postgres);
    }
}

/// Item 10: `migrate status` only looks, like `health`: on a fresh directory it creates no
/// SQLite file and exits 7 (the database does not exist).
#[test]
fn item10_migrate_status_on_a_fresh_directory_creates_nothing() {
    let env = CliEnv::bare();
    let out = env.run(&["--json", "migrate", "status"]);
    assert_eq!(out.status.code(), Some(7), "{}", both(&out));
    let left: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "migrate status created {left:?}");
}
