//! `taskstore migrate check` (issue 11 item 2): for every rule, one dangerous example that the
//! checker reports (exit 4, that rule and no other) and one safe example it passes (exit 0).
//! Every example is also executed on PostgreSQL, so that the examples are real, valid SQL (or,
//! for the rules about statements that fail, really fail); where the danger is a lock, the
//! dangerous statement is shown to take it, read from `pg_locks` inside its transaction.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use common::PgTestDb;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::Value;

/// The earlier migration every example builds on: its tables are "existing".
const BASE: &str = "\
CREATE TABLE parents (id int PRIMARY KEY);
CREATE TABLE items (id int PRIMARY KEY, parent_id int, title text, note text, amount int);
CREATE INDEX items_title_idx ON items (title);
INSERT INTO parents VALUES (1);
INSERT INTO items VALUES (1, 1, 'a', 'n', 1), (2, 1, 'b', 'm', 2);
";

/// One migration: its `up.sql` and whether it runs in a transaction.
type Step = (&'static str, bool);

struct Example {
    rule: &'static str,
    dangerous: Step,
    /// The lock the dangerous statement is shown to take: (relation, `pg_locks.mode`).
    lock: Option<(&'static str, &'static str)>,
    /// When the danger is that PostgreSQL refuses the statement: a phrase of its error.
    fails_with: Option<&'static str>,
    safe: &'static [Step],
}

const TX: bool = true;
const NO_TX: bool = false;
const AEL: &str = "AccessExclusiveLock";

fn examples() -> Vec<Example> {
    vec![
        Example {
            rule: "create-index-not-concurrently",
            dangerous: ("CREATE INDEX items_amount_idx ON items (amount);", TX),
            lock: Some(("items", "ShareLock")),
            fails_with: None,
            safe: &[(
                "CREATE INDEX CONCURRENTLY items_amount_idx ON items (amount);",
                NO_TX,
            )],
        },
        Example {
            rule: "add-column-volatile-default",
            dangerous: (
                "ALTER TABLE items ADD COLUMN token uuid DEFAULT gen_random_uuid();",
                TX,
            ),
            lock: Some(("items", AEL)),
            fails_with: None,
            safe: &[(
                "ALTER TABLE items ADD COLUMN token uuid;\n\
                 ALTER TABLE items ALTER COLUMN token SET DEFAULT gen_random_uuid();\n\
                 ALTER TABLE items ADD COLUMN added timestamptz DEFAULT now();",
                TX,
            )],
        },
        Example {
            rule: "alter-column-type",
            dangerous: ("ALTER TABLE items ALTER COLUMN amount TYPE bigint;", TX),
            lock: Some(("items", AEL)),
            fails_with: None,
            safe: &[("ALTER TABLE items ADD COLUMN amount_big bigint;", TX)],
        },
        Example {
            rule: "set-not-null",
            dangerous: ("ALTER TABLE items ALTER COLUMN title SET NOT NULL;", TX),
            lock: Some(("items", AEL)),
            fails_with: None,
            safe: &[
                (
                    "ALTER TABLE items ADD CONSTRAINT items_title_not_null \
                     CHECK (title IS NOT NULL) NOT VALID;",
                    TX,
                ),
                (
                    "ALTER TABLE items VALIDATE CONSTRAINT items_title_not_null;",
                    TX,
                ),
                (
                    "ALTER TABLE items ALTER COLUMN title SET NOT NULL;\n\
                     ALTER TABLE items DROP CONSTRAINT items_title_not_null;",
                    TX,
                ),
            ],
        },
        Example {
            rule: "constraint-without-not-valid",
            dangerous: (
                "ALTER TABLE items ADD CONSTRAINT items_parent_fk \
                 FOREIGN KEY (parent_id) REFERENCES parents (id);",
                TX,
            ),
            lock: Some(("items", "ShareRowExclusiveLock")),
            fails_with: None,
            safe: &[
                (
                    "ALTER TABLE items ADD CONSTRAINT items_parent_fk \
                     FOREIGN KEY (parent_id) REFERENCES parents (id) NOT VALID;",
                    TX,
                ),
                ("ALTER TABLE items VALIDATE CONSTRAINT items_parent_fk;", TX),
            ],
        },
        Example {
            rule: "add-unique-without-index",
            dangerous: (
                "ALTER TABLE items ADD CONSTRAINT items_title_key UNIQUE (title);",
                TX,
            ),
            lock: Some(("items", AEL)),
            fails_with: None,
            safe: &[
                (
                    "CREATE UNIQUE INDEX CONCURRENTLY items_title_key ON items (title);",
                    NO_TX,
                ),
                (
                    "ALTER TABLE items ADD CONSTRAINT items_title_key \
                     UNIQUE USING INDEX items_title_key;",
                    TX,
                ),
            ],
        },
        Example {
            rule: "vacuum-full",
            // VACUUM cannot run in a transaction, so its lock is not observed here.
            dangerous: ("VACUUM FULL items;", NO_TX),
            lock: None,
            fails_with: None,
            safe: &[("VACUUM items;", NO_TX)],
        },
        Example {
            rule: "cluster",
            dangerous: ("CLUSTER items USING items_pkey;", TX),
            lock: Some(("items", AEL)),
            fails_with: None,
            safe: &[("ANALYZE items;", TX)],
        },
        Example {
            rule: "rename-column",
            dangerous: ("ALTER TABLE items RENAME COLUMN note TO remark;", TX),
            lock: Some(("items", AEL)),
            fails_with: None,
            safe: &[("ALTER TABLE items ADD COLUMN remark text;", TX)],
        },
        Example {
            rule: "rename-table",
            dangerous: ("ALTER TABLE items RENAME TO things;", TX),
            lock: Some(("things", AEL)),
            fails_with: None,
            safe: &[(
                "CREATE TABLE things (id int PRIMARY KEY, title text);\n\
                 ALTER TABLE things RENAME TO things_v2;",
                TX,
            )],
        },
        Example {
            rule: "drop-column",
            dangerous: ("ALTER TABLE items DROP COLUMN note;", TX),
            lock: Some(("items", AEL)),
            fails_with: None,
            safe: &[(
                "-- taskstore:allow drop-column because the release before this one no longer reads note\n\
                 ALTER TABLE items DROP COLUMN note;",
                TX,
            )],
        },
        Example {
            rule: "drop-table",
            dangerous: ("DROP TABLE parents;", TX),
            lock: None,
            fails_with: None,
            safe: &[("CREATE TABLE scratch (id int);\nDROP TABLE scratch;", TX)],
        },
        Example {
            rule: "drop-index-not-concurrently",
            dangerous: ("DROP INDEX items_title_idx;", TX),
            lock: Some(("items", AEL)),
            fails_with: None,
            safe: &[("DROP INDEX CONCURRENTLY items_title_idx;", NO_TX)],
        },
        Example {
            rule: "reindex-not-concurrently",
            dangerous: ("REINDEX INDEX items_title_idx;", TX),
            lock: Some(("items", "ShareLock")),
            fails_with: None,
            safe: &[("REINDEX INDEX CONCURRENTLY items_title_idx;", NO_TX)],
        },
        Example {
            rule: "lock-table",
            dangerous: ("LOCK TABLE items IN ACCESS EXCLUSIVE MODE;", TX),
            lock: Some(("items", AEL)),
            fails_with: None,
            safe: &[("UPDATE items SET amount = amount + 1 WHERE id = 1;", TX)],
        },
        Example {
            rule: "truncate",
            dangerous: ("TRUNCATE items;", TX),
            lock: Some(("items", AEL)),
            fails_with: None,
            safe: &[("DELETE FROM items WHERE id = 1;", TX)],
        },
        Example {
            rule: "concurrently-in-transaction",
            dangerous: (
                "CREATE INDEX CONCURRENTLY items_amount_idx ON items (amount);",
                TX,
            ),
            lock: None,
            fails_with: Some("cannot run inside a transaction block"),
            safe: &[(
                "CREATE INDEX CONCURRENTLY items_amount_idx ON items (amount);",
                NO_TX,
            )],
        },
        Example {
            rule: "non-transactional-multi-statement",
            dangerous: (
                "CREATE INDEX CONCURRENTLY items_amount_idx ON items (amount);\n\
                 CREATE INDEX CONCURRENTLY items_note_idx ON items (note);",
                NO_TX,
            ),
            lock: None,
            fails_with: Some("cannot run inside a transaction block"),
            safe: &[
                (
                    "CREATE INDEX CONCURRENTLY items_amount_idx ON items (amount);",
                    NO_TX,
                ),
                (
                    "CREATE INDEX CONCURRENTLY items_note_idx ON items (note);",
                    NO_TX,
                ),
            ],
        },
        Example {
            rule: "invalid-acknowledgement",
            dangerous: (
                "-- taskstore:allow add-column-volatile-default\n\
                 ALTER TABLE items ADD COLUMN n int;",
                TX,
            ),
            lock: None,
            fails_with: None,
            safe: &[(
                "-- taskstore:allow truncate because items is a cache nothing reads yet\n\
                 TRUNCATE items;",
                TX,
            )],
        },
        Example {
            rule: "unparsed-statement",
            dangerous: (
                "CREATE STATISTICS items_stats ON title, note FROM items;",
                TX,
            ),
            lock: None,
            fails_with: None,
            safe: &[(
                "-- taskstore:allow unparsed-statement because CREATE STATISTICS takes a SHARE UPDATE EXCLUSIVE lock only\n\
                 CREATE STATISTICS items_stats ON title, note FROM items;",
                TX,
            )],
        },
    ]
}

/// A migration directory: the base migration, then `steps`.
fn directory(steps: &[Step]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![(BASE, TX)];
    all.extend_from_slice(steps);
    for (i, (sql, tx)) in all.iter().enumerate() {
        let m = dir.path().join(format!("2026-01-01-{:06}_step", i + 1));
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("up.sql"), sql).unwrap();
        std::fs::write(m.join("down.sql"), "").unwrap();
        if !tx {
            std::fs::write(m.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
        }
    }
    dir
}

/// `taskstore --json migrate check DIR`: the exit code and the findings' rule ids.
fn check(dir: &Path) -> (i32, Vec<String>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_taskstore"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["--json", "migrate", "check"])
        .arg(dir)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let rules = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect();
    (out.status.code().unwrap(), rules, json)
}

/// Runs `steps` in schema `schema` on `conn` as the migration runner would: a transactional
/// step inside BEGIN … COMMIT, the others as one query string outside a transaction.
/// Returns the lock modes the last step holds on `lock.0` just before it commits.
fn execute(
    conn: &mut PgConnection,
    schema: &str,
    steps: &[Step],
    lock: Option<&str>,
) -> Result<Vec<String>, String> {
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        mode: String,
    }
    conn.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
         SET search_path TO {schema}"
    ))
    .unwrap();
    conn.batch_execute(&format!("BEGIN; {BASE} COMMIT"))
        .unwrap();
    let mut modes = Vec::new();
    for (i, (sql, tx)) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        if *tx {
            conn.batch_execute("BEGIN").unwrap();
            if let Err(e) = conn.batch_execute(sql) {
                conn.batch_execute("ROLLBACK").unwrap();
                return Err(e.to_string());
            }
            if last && let Some(relation) = lock {
                modes = diesel::sql_query(
                    "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() \
                     AND relation = to_regclass($1)",
                )
                .bind::<diesel::sql_types::Text, _>(relation)
                .load::<Mode>(conn)
                .unwrap()
                .into_iter()
                .map(|m| m.mode)
                .collect();
            }
            conn.batch_execute("COMMIT").unwrap();
        } else {
            conn.batch_execute(sql).map_err(|e| e.to_string())?;
        }
    }
    Ok(modes)
}

#[test]
fn postgres_every_rule_flags_its_dangerous_example_and_passes_its_safe_one() {
    let pg = PgTestDb::create();
    let mut conn = PgConnection::establish(&pg.url).unwrap();
    let examples = examples();
    for (n, ex) in examples.iter().enumerate() {
        // The checker.
        let (code, rules, json) = check(directory(&[ex.dangerous]).path());
        assert_eq!(code, 4, "{}: dangerous example exits 4: {json}", ex.rule);
        assert!(
            !rules.is_empty() && rules.iter().all(|r| r == ex.rule),
            "{}: reported {rules:?}",
            ex.rule
        );
        let finding = &json["findings"][0];
        assert!(finding["file"].as_str().unwrap().ends_with("up.sql"));
        assert!(finding["line"].as_u64().unwrap() >= 1);
        assert!(!finding["why"].as_str().unwrap().is_empty());
        assert!(!finding["safe"].as_str().unwrap().is_empty());
        let (code, rules, json) = check(directory(ex.safe).path());
        assert_eq!(
            code, 0,
            "{}: safe example passes: {rules:?} {json}",
            ex.rule
        );

        // PostgreSQL.
        let schema = format!("ex{n}");
        let relation = ex.lock.map(|(r, _)| format!("{schema}.{r}"));
        match (
            execute(&mut conn, &schema, &[ex.dangerous], relation.as_deref()),
            ex.fails_with,
        ) {
            (Ok(modes), None) => {
                if let Some((_, mode)) = ex.lock {
                    assert!(
                        modes.iter().any(|m| m == mode),
                        "{}: expected {mode} in {modes:?}",
                        ex.rule
                    );
                }
            }
            (Err(e), Some(phrase)) => assert!(e.contains(phrase), "{}: {e}", ex.rule),
            (outcome, expected) => {
                panic!("{}: {outcome:?}, expected failure: {expected:?}", ex.rule)
            }
        }
        execute(&mut conn, &format!("{schema}s"), ex.safe, None)
            .unwrap_or_else(|e| panic!("{}: safe example fails on PostgreSQL: {e}", ex.rule));
    }
    // `lint::rules` has a unit test that each of its rules has an example here.
    println!(
        "{} rules, each with a dangerous and a safe example",
        examples.len()
    );
}

#[test]
fn postgres_the_projects_own_migrations_pass_the_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_taskstore"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["migrate", "check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 finding(s)"), "{text}");
}

/// The README's expand/contract blocks, in order: (release, directory name, `up.sql`).
fn readme_expand_contract() -> Vec<(u32, String, String)> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("### Expand/contract")
        .expect("README has the expand/contract section");
    let section = &readme[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```sql\n")
        .skip(1)
        .map(|block| {
            let sql = &block[..block.find("```").unwrap()];
            let header = sql.lines().next().unwrap();
            let (release, path) = header
                .strip_prefix("-- release ")
                .and_then(|h| h.split_once(": "))
                .unwrap_or_else(|| panic!("block header: {header}"));
            let dir = path.strip_suffix("/up.sql").unwrap().to_owned();
            (release.parse().unwrap(), dir, sql.to_owned())
        })
        .collect()
}

/// The product's PostgreSQL migrations plus `extra` (directory name, `up.sql`).
fn product_plus(extra: &[(String, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let product = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres");
    for entry in std::fs::read_dir(&product).unwrap() {
        let entry = entry.unwrap();
        let to = dir.path().join(entry.file_name());
        std::fs::create_dir(&to).unwrap();
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
    for (name, sql) in extra {
        let m = dir.path().join(name);
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("up.sql"), sql).unwrap();
        std::fs::write(m.join("down.sql"), "").unwrap();
    }
    dir
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Notes {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    notes: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    description: Option<String>,
}

fn notes_of(conn: &mut PgConnection, title: &str) -> Notes {
    diesel::sql_query("SELECT notes, description FROM tasks WHERE title = $1")
        .bind::<diesel::sql_types::Text, _>(title)
        .get_result(conn)
        .unwrap()
}

/// The README's expand/contract example: the one-step rename is refused; the check passes
/// after each release; the migrations run on PostgreSQL, and writes of release 0 (description)
/// and release 1 (notes) stay in step in between.
#[test]
fn postgres_readme_expand_contract_passes_the_check_at_each_release() {
    let blocks = readme_expand_contract();
    assert_eq!(
        blocks.iter().map(|b| b.0).collect::<Vec<_>>(),
        [1, 1, 2],
        "two migrations in release 1, one in release 2"
    );
    let rename = product_plus(&[(
        "2027-01-01-000001_tasks_rename".to_owned(),
        "ALTER TABLE tasks RENAME COLUMN description TO notes;\n".to_owned(),
    )]);
    let (code, rules, _) = check(rename.path());
    assert_eq!((code, rules), (4, vec!["rename-column".to_owned()]));

    let pg = PgTestDb::create();
    let config = taskstore::Config::from_vars([
        ("DATABASE_URL", pg.url.as_str()),
        ("DATABASE_POOL_MAX_SIZE", "1"),
    ])
    .unwrap();
    drop(taskstore::Database::connect(&config).unwrap());
    let mut conn = PgConnection::establish(&pg.url).unwrap();
    conn.batch_execute(
        "INSERT INTO users (id, email, password_hash, created_at, updated_at) \
         VALUES (gen_random_uuid(), 'expand@example.com', 'x', now(), now()); \
         INSERT INTO tasks (id, user_id, title, description, created_at, updated_at) \
         SELECT gen_random_uuid(), id, 'before', 'written by release 0', now(), now() FROM users",
    )
    .unwrap();
    let mut migrate_conn = taskstore::migrate::connect(&config).unwrap();
    for release in [1, 2] {
        let upto: Vec<(String, String)> = blocks
            .iter()
            .filter(|b| b.0 <= release)
            .map(|b| (b.1.clone(), b.2.clone()))
            .collect();
        let dir = product_plus(&upto);
        let (code, rules, json) = check(dir.path());
        assert_eq!(code, 0, "release {release}: {rules:?} {json}");
        let acknowledged = json["acknowledged"].as_array().unwrap().len();
        assert_eq!(acknowledged, usize::from(release == 2), "{json}");
        let applied = taskstore::migrate::Migrator::from_config(&config)
            .directory(dir.path())
            .run(&mut migrate_conn)
            .unwrap();
        assert_eq!(applied.len(), if release == 1 { 2 } else { 1 });
        if release == 1 {
            // Backfilled; then release 0 and release 1 write side by side.
            assert_eq!(
                notes_of(&mut conn, "before").notes.as_deref(),
                Some("written by release 0")
            );
            conn.batch_execute(
                "INSERT INTO tasks (id, user_id, title, description, created_at, updated_at) \
                 SELECT gen_random_uuid(), id, 'release 0', 'r0', now(), now() FROM users; \
                 INSERT INTO tasks (id, user_id, title, notes, created_at, updated_at) \
                 SELECT gen_random_uuid(), id, 'release 1', 'r1', now(), now() FROM users; \
                 UPDATE tasks SET description = 'r0 again' WHERE title = 'before'",
            )
            .unwrap();
            let same = |n: Notes| n.notes == n.description;
            assert!(same(notes_of(&mut conn, "release 0")));
            assert!(same(notes_of(&mut conn, "release 1")));
            assert_eq!(
                notes_of(&mut conn, "before").notes.as_deref(),
                Some("r0 again")
            );
        }
    }
    // Release 2 dropped the column; the notes are all there.
    assert!(conn.batch_execute("SELECT description FROM tasks").is_err());
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query("SELECT count(*) AS n FROM tasks WHERE notes IS NOT NULL")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(n.n, 3);
}

/// `taskstore migrate check DIR` with no migration in DIR fails (exit 1) and says what to pass,
/// instead of reporting "0 finding(s)" for a mistyped path: a missing directory, an empty one,
/// one migration instead of its directory, and `migrations/` (which holds one per backend).
#[test]
fn a_dir_without_migrations_is_an_error_that_says_what_to_pass() {
    let run = |dir: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_taskstore"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["migrate", "check"])
            .arg(dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let empty = tempfile::tempdir().unwrap();
    let (code, err) = run(&empty.path().join("absent"));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot read migration directory")
            && err.contains("such as migrations/postgres"),
        "{err}"
    );
    let (code, err) = run(empty.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no migration in"), "{err}");

    let one = directory(&[]);
    let migration = one.path().join("2026-01-01-000001_step");
    let (code, err) = run(&migration);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("is one migration") && err.contains(&one.path().display().to_string()),
        "{err}"
    );

    let both = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let (code, err) = run(&both);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("migrations/postgres") && err.contains("migrations/sqlite"),
        "{err}"
    );
}

/// Acknowledgements in the shapes people write them: a comment after the semicolon on the
/// same line acknowledges that statement (not the next one); the marker in capitals counts; a
/// malformed one is a finding whose `statement` quotes the comment and says what is wrong.
#[test]
fn acknowledgements_attach_to_their_statement_and_malformed_ones_say_what_is_wrong() {
    let dir = directory(&[(
        "ALTER TABLE items DROP COLUMN note; -- taskstore:allow drop-column because r3 stopped reading it\n\
         ALTER TABLE items DROP COLUMN amount;\n\
         -- TASKSTORE:ALLOW drop-column because r3 stopped using it\n\
         ALTER TABLE items DROP COLUMN title;\n\
         -- taskstore:allow drop-colum because typo\n\
         ALTER TABLE items DROP COLUMN parent_id;\n\
         -- taskstore:allow drop-table\n\
         DROP TABLE parents;\n",
        TX,
    )]);
    let (code, _, json) = check(dir.path());
    assert_eq!(code, 4, "{json:#}");
    let lines = |key: &str| -> Vec<(u64, String, String)> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["line"].as_u64().unwrap(),
                    f["rule"].as_str().unwrap().to_owned(),
                    f["statement"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let acknowledged: Vec<(u64, String)> = lines("acknowledged")
        .into_iter()
        .map(|(line, rule, _)| (line, rule))
        .collect();
    assert_eq!(
        acknowledged,
        [(1, "drop-column".to_owned()), (4, "drop-column".to_owned())],
        "{json:#}"
    );
    let findings = lines("findings");
    let at = |line: u64, rule: &str| {
        findings
            .iter()
            .find(|(l, r, _)| *l == line && r == rule)
            .unwrap_or_else(|| panic!("no {rule} at line {line}: {json:#}"))
            .2
            .clone()
    };
    at(2, "drop-column");
    assert!(at(6, "invalid-acknowledgement").contains("`drop-colum` is not a rule"));
    at(6, "drop-column");
    assert!(at(8, "invalid-acknowledgement").contains("gives no reason"));
    at(8, "drop-table");
    assert_eq!(findings.len(), 5, "{json:#}");
}
