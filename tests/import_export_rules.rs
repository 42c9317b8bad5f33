//! Issue 12, items 13–19: import and export follow one rule per question for both formats, an
//! export re-imports identically, and updates mean what they say.
//!
//! Black-box: the `taskstore` binary, and `db.tasks()` / `db.users()` for the library half of
//! items 18 and 19; every test on both backends.
//!
//! Rules chosen where the issue leaves a choice (one rule for both formats, kept consistent):
//! - typing (13): a value must be of its field's type. In JSON Lines that is the JSON type
//!   itself — `title`, `description`: string; `priority`, `version`: integer (`3.0` is not
//!   one); `completed`: boolean; `id` and timestamps: strings; `null` means absent for an
//!   optional field — with no conversion from strings or numbers. In CSV, where every cell is
//!   text, the cell must be the canonical text of that type (`3`, `true` / `false`).
//! - encoding (14): a UTF-8 byte-order mark at the start of a file is ignored; invalid UTF-8 is
//!   `line N: ...` (exit 4); an empty file imports nothing and succeeds, so that exporting a
//!   user without tasks and importing that export works.
//! - files (15): a missing input file or an output directory that does not exist is bad input:
//!   exit 4, the message names the path.
//! - export format (16): `--output`'s extension decides, as on import; an extension naming no
//!   format is refused (exit 4); an explicit `--format` wins.
//! - ids (17): an id that already exists is a conflict (exit 6) reported by file line; an id
//!   twice in one file is bad input (exit 4) reported with both file lines.
//! - empty vs absent (18, 19): one value. An empty string in an optional text field
//!   (`description`, `first_name`, `last_name`) is stored as absent, at write time, everywhere
//!   (create, update, import; library and CLI). CSV cannot tell an empty cell from a missing
//!   one, so keeping `""` apart from absent could never round-trip there; normalising can. This
//!   is also how a field is cleared from the CLI (`--first-name ""`).
//! - no-op (19): an update with no fields changes nothing (same `version`, same `updated_at`).

mod common;

use common::cli_env::{CliEnv, both, details, error_text, stdout};
use common::{Backend, TestDb, factories};
use serde_json::Value;
use taskstore::models::{NewTask, NewUser, TaskImport, TaskPatch, UserPatch};

/// `task import --user <id> <file>` with `--json`.
fn import(env: &CliEnv, user: &str, file: &str) -> std::process::Output {
    env.run(&["--json", "task", "import", "--user", user, file])
}

fn total(env: &CliEnv, user: &str) -> i64 {
    env.json(&["stats", "--user", user])["total"]
        .as_i64()
        .expect("stats total")
}

/// A user of `env` with tasks exercising every column (completed, cleared description, ...).
fn seeded_user(env: &CliEnv, email: &str) -> String {
    let id = env.add_user(email);
    let jsonl = env.arg("seed.jsonl");
    std::fs::write(
        &jsonl,
        "{\"title\":\"plain\"}\n\
         {\"title\":\"described\",\"description\":\"a, \\\"quoted\\\" text\\nwith a newline\",\"priority\":5}\n\
         {\"title\":\"done\",\"completed\":true,\"priority\":1}\n",
    )
    .unwrap();
    assert_eq!(
        env.json(&["task", "import", "--user", &id, &jsonl])["imported"],
        3
    );
    id
}

// ---------------------------------------------------------------------------------------------
// Item 13: one typing rule.

/// Item 13: in JSON Lines a value must have its field's JSON type, without conversion: a string
/// priority, a float priority, a numeric title, a string boolean, a string version and a
/// numeric description are each `line N: field: ...` (exit 4), and nothing is written.
fn item13_jsonl_values_must_have_the_field_type(backend: Backend) {
    let env = CliEnv::new(backend);
    let user = env.add_user("types@example.com");
    let file = env.arg("typed.jsonl");
    std::fs::write(
        &file,
        "{\"title\":\"ok\",\"priority\":\"3\"}\n\
         {\"title\":\"ok\",\"priority\":3.0}\n\
         {\"title\":123}\n\
         {\"title\":\"ok\",\"completed\":\"true\"}\n\
         {\"title\":\"ok\",\"version\":\"2\"}\n\
         {\"title\":\"ok\",\"description\":5}\n\
         {\"title\":\"fine\",\"priority\":4,\"completed\":false,\"description\":null}\n",
    )
    .unwrap();
    let err = env.fails(4, &["task", "import", "--user", &user, &file]);
    let got = details(&err);
    for want in [
        "line 1: priority:",
        "line 2: priority:",
        "line 3: title:",
        "line 4: completed:",
        "line 5: version:",
        "line 6: description:",
    ] {
        assert!(
            got.iter().any(|d| d.starts_with(want)),
            "missing {want:?} in {got:?}"
        );
    }
    assert!(
        !got.iter().any(|d| d.starts_with("line 7")),
        "line 7 is well typed: {got:?}"
    );
    assert_eq!(total(&env, &user), 0, "nothing was written");
}

/// Item 13 (regression guard, CSV half): a cell must be the canonical text of its field's type:
/// `3` is a priority, `3.0` is not; `true` / `false` are booleans, `yes` and `1` are not.
fn item13_csv_cells_must_be_canonical_text(backend: Backend) {
    let env = CliEnv::new(backend);
    let user = env.add_user("csvtypes@example.com");
    let file = env.arg("typed.csv");
    std::fs::write(
        &file,
        "title,priority,completed\nok,3.0,false\nok,3,yes\nok,3,1\nfine,4,true\n",
    )
    .unwrap();
    let err = env.fails(4, &["task", "import", "--user", &user, &file]);
    let got = details(&err);
    for want in [
        "line 2: priority:",
        "line 3: completed:",
        "line 4: completed:",
    ] {
        assert!(
            got.iter().any(|d| d.starts_with(want)),
            "missing {want:?} in {got:?}"
        );
    }
    assert_eq!(got.len(), 3, "line 5 is well typed: {got:?}");
    assert_eq!(total(&env, &user), 0);
}

// ---------------------------------------------------------------------------------------------
// Item 14: BOM, invalid UTF-8, empty files.

/// Item 14: one behaviour for both formats. A UTF-8 byte-order mark is ignored; invalid UTF-8 is
/// reported with its line (exit 4) and nothing is written; an empty file imports nothing and
/// succeeds — and so an export of a user without tasks re-imports, in both formats.
fn item14_bom_invalid_utf8_and_empty_files_behave_alike(backend: Backend) {
    let env = CliEnv::new(backend);
    let user = env.add_user("bytes@example.com");
    let write = |name: &str, bytes: &[u8]| {
        let p = env.arg(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    for (name, bytes) in [
        ("bom.csv", &b"\xEF\xBB\xBFtitle\nwith a bom\n"[..]),
        (
            "bom.jsonl",
            &b"\xEF\xBB\xBF{\"title\":\"with a bom\"}\n"[..],
        ),
    ] {
        let out = import(&env, &user, &write(name, bytes));
        assert_eq!(out.status.code(), Some(0), "{name}: {}", both(&out));
    }
    assert_eq!(total(&env, &user), 2);

    for (name, bytes, line) in [
        ("bad.csv", &b"title\nfine\nbad \xFF byte\n"[..], "line 3"),
        (
            "bad.jsonl",
            &b"{\"title\":\"fine\"}\n{\"title\":\"bad \xFF byte\"}\n"[..],
            "line 2",
        ),
    ] {
        let out = import(&env, &user, &write(name, bytes));
        assert_eq!(out.status.code(), Some(4), "{name}: {}", both(&out));
        let text = error_text(&common::cli_env::json_error(&out));
        assert!(text.contains(line), "{name}: {text}");
    }
    assert_eq!(total(&env, &user), 2, "nothing more was written");

    for name in ["empty.csv", "empty.jsonl"] {
        let out = import(&env, &user, &write(name, b""));
        assert_eq!(out.status.code(), Some(0), "{name}: {}", both(&out));
    }
    let nobody = env.add_user("nobody@example.com");
    for ext in ["csv", "jsonl"] {
        let file = env.arg(&format!("none.{ext}"));
        env.json(&[
            "task", "export", "--user", &nobody, "--format", ext, "--output", &file,
        ]);
        let out = import(&env, &nobody, &file);
        assert_eq!(
            out.status.code(),
            Some(0),
            "an export without tasks re-imports ({ext}): {}",
            both(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Item 15: missing files and directories.

/// Item 15: a missing input file, and `--output` into a directory that does not exist, are bad
/// input: exit 4 (not 1, internal), and the message names the path.
fn item15_missing_paths_are_named_with_exit_4(backend: Backend) {
    let env = CliEnv::new(backend);
    let user = env.add_user("paths@example.com");
    let missing = env.arg("no-such-input.csv");
    let err = env.fails(4, &["task", "import", "--user", &user, &missing]);
    assert!(error_text(&err).contains(&missing), "{err}");

    let into = env.arg("no-such-dir/out.csv");
    let err = env.fails(4, &["task", "export", "--user", &user, "--output", &into]);
    assert!(error_text(&err).contains(&into), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Item 16: the export format follows the output's extension.

/// Item 16: without `--format`, `task export --output FILE` writes the format FILE's extension
/// names (`.csv`; `.jsonl` / `.ndjson`), as `task import` reads it; an extension naming no
/// format is refused (exit 4) and creates no file; an explicit `--format` wins; stdout without
/// `--format` stays CSV.
fn item16_export_format_follows_the_output_extension(backend: Backend) {
    let env = CliEnv::new(backend);
    let user = seeded_user(&env, "formats@example.com");
    let is_jsonl = |text: &str| {
        text.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
    };
    for (name, jsonl) in [("o.jsonl", true), ("o.ndjson", true), ("o.csv", false)] {
        let file = env.arg(name);
        env.json(&["task", "export", "--user", &user, "--output", &file]);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(is_jsonl(&text), jsonl, "{name}:\n{text}");
        if !jsonl {
            assert!(text.starts_with("id,title,"), "{name}:\n{text}");
        }
    }
    let txt = env.arg("o.txt");
    env.fails(4, &["task", "export", "--user", &user, "--output", &txt]);
    assert!(
        !env.path("o.txt").exists(),
        "a refused export created its file"
    );

    let file = env.arg("explicit.jsonl");
    env.json(&[
        "task", "export", "--user", &user, "--format", "csv", "--output", &file,
    ]);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("id,title,")
    );

    let out = env.run(&["task", "export", "--user", &user]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stdout(&out).starts_with("id,title,"), "{}", stdout(&out));
}

// ---------------------------------------------------------------------------------------------
// Item 17: id conflicts and duplicates.

/// Item 17: re-importing an export whose ids exist is a conflict — exit 6, as the exit-code
/// table says — reported by file line (`line N: id: ...`); an id that appears twice in one file
/// is bad input (exit 4) reported with both file lines, never as import rows. Nothing is written
/// either way.
fn item17_id_conflicts_exit_6_and_duplicates_name_file_lines(backend: Backend) {
    let env = CliEnv::new(backend);
    let user = seeded_user(&env, "ids@example.com");
    for (ext, first_line) in [("csv", "line 2: id:"), ("jsonl", "line 1: id:")] {
        let file = env.arg(&format!("again.{ext}"));
        env.json(&[
            "task", "export", "--user", &user, "--format", ext, "--output", &file,
        ]);
        let err = env.fails(6, &["task", "import", "--user", &user, &file]);
        assert!(
            details(&err).iter().any(|d| d.starts_with(first_line)),
            "{ext}: {err}"
        );
    }
    assert_eq!(total(&env, &user), 3);

    let other = env.add_user("dups@example.com");
    let id = "0192f1a6-3f3e-7c2a-9d4b-5e6f7a8b9c0d";
    for (name, text, lines) in [
        (
            "dup.jsonl",
            format!(
                "{{\"title\":\"a\"}}\n{{\"id\":\"{id}\",\"title\":\"b\"}}\n{{\"id\":\"{id}\",\"title\":\"c\"}}\n"
            ),
            (2, 3),
        ),
        ("dup.csv", format!("id,title\n,a\n{id},b\n{id},c\n"), (3, 4)),
    ] {
        let file = env.arg(name);
        std::fs::write(&file, text).unwrap();
        let err = env.fails(4, &["task", "import", "--user", &other, &file]);
        let text = error_text(&err);
        let (a, b) = lines;
        assert!(
            text.contains(&format!("lines {a} and {b}"))
                || (text.contains(&format!("line {a}")) && text.contains(&format!("line {b}"))),
            "{name}: the duplicate is named by its file lines: {text}"
        );
        assert!(
            !text.contains("row"),
            "{name}: file lines, not rows: {text}"
        );
    }
    assert_eq!(total(&env, &other), 0);
}

// ---------------------------------------------------------------------------------------------
// Issue 14: the streaming import keeps its promises across the chunks it writes.

/// A file of 5 001 rows (the CLI writes 2 000 rows per chunk, so three chunks): imported
/// whole; a bad row, an id given twice and an id that exists, each near the end of the file
/// (after earlier chunks were written in the transaction), are reported by file line with the
/// usual exit code and nothing is written.
fn streaming_import_keeps_its_promises_across_chunks(backend: Backend) {
    let env = CliEnv::new(backend);
    const ROWS: usize = 5_001;
    let known = "0192f1a6-3f3e-7c2a-9d4b-5e6f7a8b9c0d";
    // Row i (from 0) is on line i + 2.
    let csv = |edit: &dyn Fn(usize) -> Option<String>| {
        let mut text = String::from("id,title,priority\n");
        for i in 0..ROWS {
            text.push_str(&edit(i).unwrap_or_else(|| format!(",task {i},{}\n", i % 5 + 1)));
        }
        text
    };
    let first = env.add_user("stream-a@example.com");
    let file = env.arg("good.csv");
    std::fs::write(
        &file,
        csv(&|i| (i == 0).then(|| format!("{known},first,3\n"))),
    )
    .unwrap();
    let out = stdout(&import(&env, &first, &file));
    let summary: Value = serde_json::from_str(&out).expect("json summary");
    assert_eq!(summary["imported"], ROWS as u64, "{out}");
    assert_eq!(total(&env, &first), ROWS as i64);

    let second = env.add_user("stream-b@example.com");
    type Edit = Box<dyn Fn(usize) -> Option<String>>;
    let cases: [(&str, Edit, i32, &[&str]); 3] = [
        (
            "bad.csv",
            Box::new(|i| (i == 4_898).then(|| ",too high,9\n".to_owned())),
            4,
            &["line 4900: priority:"],
        ),
        (
            "twice.csv",
            Box::new(|i| {
                (i == 1 || i == 4_798)
                    .then(|| "0192f1a6-3f3e-7c2a-9d4b-5e6f7a8b9c0e,twice,3\n".to_owned())
            }),
            4,
            &["line 4800: id:", "lines 3 and 4800"],
        ),
        (
            "exists.csv",
            Box::new(move |i| (i == 4_498).then(|| format!("{known},exists,3\n"))),
            6,
            &["line 4500: id:"],
        ),
    ];
    for (name, edit, code, want) in cases {
        let file = env.arg(name);
        std::fs::write(&file, csv(&*edit)).unwrap();
        let err = env.fails(code, &["task", "import", "--user", &second, &file]);
        let text = error_text(&err);
        for w in want {
            assert!(text.contains(w), "{name}: expected {w:?} in {text}");
        }
        assert_eq!(total(&env, &second), 0, "{name}: nothing written");
    }
    assert_eq!(total(&env, &first), ROWS as i64);
}

// ---------------------------------------------------------------------------------------------
// Item 18: empty and absent are one value.

/// Item 18 (library): an empty description is stored as absent on create, update and import;
/// empty first and last names likewise.
fn item18_empty_strings_are_stored_as_absent(db: &TestDb) {
    let owner = factories::user(db).id;
    let created = db
        .tasks()
        .create(
            owner,
            &NewTask {
                title: "empty description",
                description: Some(""),
                priority: None,
            },
        )
        .unwrap();
    assert_eq!(created.description, None);
    assert_eq!(db.tasks().get(owner, created.id).unwrap().description, None);

    let described = factories::task(db, owner, "to be emptied");
    let patched = db
        .tasks()
        .update(
            owner,
            described.id,
            &TaskPatch {
                description: Some(Some(String::new())),
                ..TaskPatch::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(patched.description, None);

    let imported = TaskImport {
        id: Some(taskstore::TaskId::new_v7()),
        title: "imported".into(),
        description: Some(String::new()),
        ..TaskImport::default()
    };
    db.tasks()
        .import(owner, std::slice::from_ref(&imported))
        .unwrap();
    assert_eq!(
        db.tasks()
            .get(owner, imported.id.unwrap())
            .unwrap()
            .description,
        None
    );

    let email = factories::email();
    let user = db
        .users()
        .create(&NewUser {
            email: &email,
            password_hash: factories::HASH,
            first_name: Some(""),
            last_name: Some(""),
        })
        .unwrap();
    assert_eq!((user.first_name, user.last_name), (None, None));
}

/// Item 18 (CLI): a task whose description is `""` — given on the command line or in a file —
/// exports as absent, and every export re-imports identically, byte for byte, in both formats.
fn item18_exports_re_import_identically(backend: Backend) {
    let env = CliEnv::new(backend);
    let user = seeded_user(&env, "empty@example.com");
    let task = env.json(&[
        "task",
        "add",
        "--user",
        &user,
        "--title",
        "empty on the command line",
        "--description",
        "",
    ]);
    assert!(task["description"].is_null(), "{task}");
    let file = env.arg("empty.jsonl");
    std::fs::write(
        &file,
        "{\"title\":\"empty in a file\",\"description\":\"\"}\n",
    )
    .unwrap();
    env.json(&["task", "import", "--user", &user, &file]);

    for ext in ["jsonl", "csv"] {
        let first = env.arg(&format!("first.{ext}"));
        env.json(&[
            "task", "export", "--user", &user, "--format", ext, "--output", &first,
        ]);
        let fresh = CliEnv::new(backend);
        let copy = fresh.add_user("empty@example.com");
        fresh.json(&["task", "import", "--user", &copy, &first]);
        let second = fresh.arg(&format!("second.{ext}"));
        fresh.json(&[
            "task", "export", "--user", &copy, "--format", ext, "--output", &second,
        ]);
        assert_eq!(
            std::fs::read_to_string(&first).unwrap(),
            std::fs::read_to_string(&second).unwrap(),
            "{ext}: an export re-imports identically"
        );
    }
    let jsonl = std::fs::read_to_string(env.path("first.jsonl")).unwrap();
    assert!(
        !jsonl.contains("\"description\":\"\""),
        "an empty description is stored as absent:\n{jsonl}"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 19: no-op updates and clearing.

/// Item 19 (library): an update with no fields changes nothing — the task keeps its `version`
/// and `updated_at`, the user its `updated_at` — and returns the entity as it is.
fn item19_empty_patches_change_nothing(db: &TestDb) {
    let owner = factories::user(db);
    let task = factories::task(db, owner.id, "unchanged");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let same = db
        .tasks()
        .update(owner.id, task.id, &TaskPatch::default(), None)
        .unwrap();
    assert_eq!(same, task, "an empty patch changed the task");
    assert_eq!(db.tasks().get(owner.id, task.id).unwrap(), task);
    let same = db
        .tasks()
        .update(owner.id, task.id, &TaskPatch::default(), Some(task.version))
        .unwrap();
    assert_eq!(same, task);

    let user = db.users().update(owner.id, &UserPatch::default()).unwrap();
    assert_eq!(user, owner, "an empty patch changed the user");
}

/// Item 19 (CLI): `task update` and `user update` with no fields change nothing; an empty string
/// clears an optional field (`--first-name ""`, `--last-name ""`, `--description ""`), and the
/// commands' `--help` says how to clear.
fn item19_cli_clears_with_empty_strings_and_no_ops_change_nothing(backend: Backend) {
    let env = CliEnv::new(backend);
    let user = env.json(&[
        "user",
        "add",
        "--email",
        "clear@example.com",
        "--password-hash",
        "h",
        "--first-name",
        "Ada",
        "--last-name",
        "Lovelace",
    ]);
    let id = user["id"].as_str().unwrap().to_owned();
    let task = env.json(&[
        "task",
        "add",
        "--user",
        &id,
        "--title",
        "t",
        "--description",
        "d",
    ]);
    let task_id = task["id"].as_str().unwrap().to_owned();

    std::thread::sleep(std::time::Duration::from_millis(5));
    let same = env.json(&["task", "update", "--user", &id, &task_id]);
    assert_eq!(same["version"], task["version"], "{same}");
    assert_eq!(same["updated_at"], task["updated_at"], "{same}");
    let same = env.json(&["user", "update", &id]);
    assert_eq!(same["updated_at"], user["updated_at"], "{same}");

    let cleared = env.json(&["user", "update", &id, "--first-name", "", "--last-name", ""]);
    assert!(
        cleared["first_name"].is_null() && cleared["last_name"].is_null(),
        "{cleared}"
    );
    let cleared = env.json(&[
        "task",
        "update",
        "--user",
        &id,
        &task_id,
        "--description",
        "",
    ]);
    assert!(cleared["description"].is_null(), "{cleared}");

    for args in [
        &["user", "update", "--help"][..],
        &["task", "update", "--help"][..],
    ] {
        let out = env.run(args);
        assert!(
            stdout(&out).to_lowercase().contains("clear"),
            "{args:?} does not say how to clear a field:\n{}",
            stdout(&out)
        );
    }
}

mod sqlite {
    use super::*;

    fn db() -> TestDb {
        TestDb::new(Backend::Sqlite, &[])
    }

    #[test]
    fn item13_jsonl_values_must_have_the_field_type() {
        super::item13_jsonl_values_must_have_the_field_type(Backend::Sqlite);
    }

    #[test]
    fn item13_csv_cells_must_be_canonical_text() {
        super::item13_csv_cells_must_be_canonical_text(Backend::Sqlite);
    }

    #[test]
    fn item14_bom_invalid_utf8_and_empty_files_behave_alike() {
        super::item14_bom_invalid_utf8_and_empty_files_behave_alike(Backend::Sqlite);
    }

    #[test]
    fn item15_missing_paths_are_named_with_exit_4() {
        super::item15_missing_paths_are_named_with_exit_4(Backend::Sqlite);
    }

    #[test]
    fn item16_export_format_follows_the_output_extension() {
        super::item16_export_format_follows_the_output_extension(Backend::Sqlite);
    }

    #[test]
    fn item17_id_conflicts_exit_6_and_duplicates_name_file_lines() {
        super::item17_id_conflicts_exit_6_and_duplicates_name_file_lines(Backend::Sqlite);
    }

    #[test]
    fn streaming_import_keeps_its_promises_across_chunks() {
        super::streaming_import_keeps_its_promises_across_chunks(Backend::Sqlite);
    }

    #[test]
    fn item18_empty_strings_are_stored_as_absent() {
        super::item18_empty_strings_are_stored_as_absent(&db());
    }

    #[test]
    fn item18_exports_re_import_identically() {
        super::item18_exports_re_import_identically(Backend::Sqlite);
    }

    #[test]
    fn item19_empty_patches_change_nothing() {
        super::item19_empty_patches_change_nothing(&db());
    }

    #[test]
    fn item19_cli_clears_with_empty_strings_and_no_ops_change_nothing() {
        super::item19_cli_clears_with_empty_strings_and_no_ops_change_nothing(Backend::Sqlite);
    }
}

mod postgres {
    use super::*;

    fn db() -> TestDb {
        TestDb::new(Backend::Postgres, &[])
    }

    #[test]
    fn item13_jsonl_values_must_have_the_field_type() {
        super::item13_jsonl_values_must_have_the_field_type(Backend::Postgres);
    }

    #[test]
    fn item13_csv_cells_must_be_canonical_text() {
        super::item13_csv_cells_must_be_canonical_text(Backend::Postgres);
    }

    #[test]
    fn item14_bom_invalid_utf8_and_empty_files_behave_alike() {
        super::item14_bom_invalid_utf8_and_empty_files_behave_alike(Backend::Postgres);
    }

    #[test]
    fn item15_missing_paths_are_named_with_exit_4() {
        super::item15_missing_paths_are_named_with_exit_4(Backend::Postgres);
    }

    #[test]
    fn item16_export_format_follows_the_output_extension() {
        super::item16_export_format_follows_the_output_extension(Backend::Postgres);
    }

    #[test]
    fn item17_id_conflicts_exit_6_and_duplicates_name_file_lines() {
        super::item17_id_conflicts_exit_6_and_duplicates_name_file_lines(Backend::Postgres);
    }

    #[test]
    fn streaming_import_keeps_its_promises_across_chunks() {
        super::streaming_import_keeps_its_promises_across_chunks(Backend::Postgres);
    }

    #[test]
    fn item18_empty_strings_are_stored_as_absent() {
        super::item18_empty_strings_are_stored_as_absent(&db());
    }

    #[test]
    fn item18_exports_re_import_identically() {
        super::item18_exports_re_import_identically(Backend::Postgres);
    }

    #[test]
    fn item19_empty_patches_change_nothing() {
        super::item19_empty_patches_change_nothing(&db());
    }

    #[test]
    fn item19_cli_clears_with_empty_strings_and_no_ops_change_nothing() {
        super::item19_cli_clears_with_empty_strings_and_no_ops_change_nothing(Backend::Postgres);
    }
}
