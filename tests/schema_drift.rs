//! `src/schema.rs` must describe what the migrations build, on both backends: the same tables,
//! the same columns in the same order, the same nullability, a matching type family, the same
//! primary keys and the foreign keys behind `joinable!`. Edit one without the other and this
//! fails with a line-by-line difference. (No `diesel print-schema` needed: the catalog is read
//! directly — `information_schema` on PostgreSQL, `pragma_table_info` on SQLite.)

mod common;

use common::TestDb;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text};
use taskstore::BackendKind;

/// Tables the layer keeps for itself, not part of the application schema.
const BOOKKEEPING: &[&str] = &[
    "__diesel_schema_migrations",
    "taskstore_migration_checksums",
    "sqlite_sequence",
];

/// SQLite's FTS5 search index over tasks (migration `2026-12-01-000002_task_search_index (SQLite) and 2026-12-01-000003_task_search_index (PostgreSQL)`): the
/// virtual table and its shadow tables (`tasks_search_data`, `_idx`, `_docsize`, `_config`). An
/// index, not application schema; PostgreSQL's equivalent is a GIN index, not a table.
const SEARCH_INDEX: &str = "tasks_search";

/// A column as `table!` declares it: `users.email: Text NOT NULL`.
fn line(table: &str, column: &str, ty: &str, nullable: bool) -> String {
    format!(
        "{table}.{column}: {ty}{}",
        if nullable { "" } else { " NOT NULL" }
    )
}

struct Declared {
    columns: Vec<String>,
    keys: Vec<String>,
}

/// Reads the `table!` and `joinable!` invocations of `src/schema.rs`.
fn declared() -> Declared {
    let text = include_str!("../src/schema.rs");
    let mut columns = Vec::new();
    let mut keys = Vec::new();
    let mut table: Option<String> = None;
    for raw in text.lines() {
        let l = raw.trim();
        if let Some(t) = &table {
            if l == "}" {
                table = None;
            } else if let Some((name, ty)) = l.trim_end_matches(',').split_once(" -> ") {
                let (ty, nullable) = match ty.strip_prefix("Nullable<") {
                    Some(inner) => (inner.trim_end_matches('>'), true),
                    None => (ty, false),
                };
                columns.push(line(t, name.trim(), ty.trim(), nullable));
            } else if !l.is_empty() && !l.starts_with("//") {
                panic!("schema.rs: this test does not understand `{l}` inside table {t}");
            }
        } else if let Some(head) = l.strip_suffix(" {") {
            // `users (id) {`
            if let Some((name, pk)) = head.split_once(" (")
                && !name.contains(' ')
                && !name.contains("::")
            {
                let pk = pk.trim_end_matches(')');
                keys.push(format!("{name} primary key ({pk})"));
                table = Some(name.to_owned());
            }
        } else if let Some(j) = l.strip_prefix("diesel::joinable!(") {
            // `tasks -> users (user_id));`
            let j = j.trim_end_matches(");").trim_end_matches(')');
            let (child, rest) = j.split_once(" -> ").expect("joinable!(a -> b (col))");
            let (parent, col) = rest.split_once(" (").expect("joinable!(a -> b (col))");
            keys.push(format!("{child}.{col} references {parent}"));
        }
    }
    columns.sort();
    keys.sort();
    assert!(!columns.is_empty(), "no table! found in src/schema.rs");
    Declared { columns, keys }
}

/// Native type → the type `table!` uses for it (the two custom types map per backend, see
/// src/sql_types.rs). Anything else shows up as `?native` in the difference.
fn family(backend: BackendKind, native: &str) -> String {
    let n = native.to_ascii_lowercase();
    let known = match backend {
        BackendKind::Postgres => match n.as_str() {
            "uuid" => "DbUuid",
            "timestamptz" => "DbTimestamp",
            "text" => "Text",
            "varchar" => "Varchar",
            "bool" => "Bool",
            "int2" => "SmallInt",
            "int4" => "Integer",
            "int8" => "BigInt",
            "float8" => "Double",
            "jsonb" => "Jsonb",
            "bytea" => "Binary",
            _ => "",
        },
        BackendKind::Sqlite => match n.as_str() {
            "blob" => "DbUuid",
            "bigint" => "DbTimestamp",
            "text" => "Text",
            "boolean" => "Bool",
            "smallint" => "SmallInt",
            "integer" => "Integer",
            "double" | "real" => "Double",
            _ => "",
        },
    };
    if known.is_empty() {
        format!("?{native}")
    } else {
        known.to_owned()
    }
}

#[derive(QueryableByName)]
struct Col {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    native: String,
    #[diesel(sql_type = Integer)]
    not_null: i32,
    #[diesel(sql_type = Integer)]
    position: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct Fk {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    parent: Option<String>,
}

/// What the migrated database has, in the same notation.
fn actual(db: &TestDb) -> Declared {
    let backend = db.backend();
    let (cols_sql, fks_sql) = match backend {
        BackendKind::Postgres => (
            "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name,
                    c.udt_name::text AS native,
                    (c.is_nullable = 'NO')::int AS not_null,
                    c.ordinal_position::int AS position,
                    coalesce((SELECT k.ordinal_position::int
                                FROM information_schema.table_constraints tc
                                JOIN information_schema.key_column_usage k
                                  USING (constraint_schema, constraint_name, table_name)
                               WHERE tc.constraint_type = 'PRIMARY KEY'
                                 AND tc.table_schema = 'public'
                                 AND tc.table_name = c.table_name
                                 AND k.column_name = c.column_name), 0) AS pk
               FROM information_schema.columns c
              WHERE c.table_schema = 'public'
              ORDER BY c.table_name, c.ordinal_position",
            "SELECT con.conrelid::regclass::text AS table_name,
                    a.attname::text AS column_name,
                    con.confrelid::regclass::text AS parent
               FROM pg_constraint con
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
              WHERE con.contype = 'f' AND con.connamespace = 'public'::regnamespace",
        ),
        BackendKind::Sqlite => (
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS native,
                    p.\"notnull\" AS not_null, p.cid AS position, p.pk AS pk
               FROM sqlite_master m JOIN pragma_table_info(m.name) p
              WHERE m.type = 'table'
              ORDER BY m.name, p.cid",
            "SELECT m.name AS table_name, f.\"from\" AS column_name, f.\"table\" AS parent
               FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
              WHERE m.type = 'table'",
        ),
    };
    let (cols, fks) = db
        .run(|c| {
            Ok((
                diesel::sql_query(cols_sql).load::<Col>(c)?,
                diesel::sql_query(fks_sql).load::<Fk>(c)?,
            ))
        })
        .unwrap();
    let ours = |t: &str| !BOOKKEEPING.contains(&t) && !t.starts_with(SEARCH_INDEX);
    let mut columns = Vec::new();
    let mut pks: std::collections::BTreeMap<String, Vec<(i32, String)>> = Default::default();
    let mut order: std::collections::BTreeMap<String, Vec<(i32, String)>> = Default::default();
    for c in cols.iter().filter(|c| ours(&c.table_name)) {
        columns.push(line(
            &c.table_name,
            &c.column_name,
            &family(backend, &c.native),
            c.not_null == 0,
        ));
        if c.pk > 0 {
            pks.entry(c.table_name.clone())
                .or_default()
                .push((c.pk, c.column_name.clone()));
        }
        order
            .entry(c.table_name.clone())
            .or_default()
            .push((c.position, c.column_name.clone()));
    }
    let mut keys: Vec<String> = pks
        .into_iter()
        .map(|(t, mut cols)| {
            cols.sort();
            let names: Vec<_> = cols.into_iter().map(|(_, n)| n).collect();
            format!("{t} primary key ({})", names.join(", "))
        })
        .collect();
    keys.extend(fks.iter().filter(|f| ours(&f.table_name)).map(|f| {
        format!(
            "{}.{} references {}",
            f.table_name,
            f.column_name,
            f.parent.as_deref().unwrap_or("?")
        )
    }));
    columns.sort();
    keys.sort();
    // Column order matters to `table!` (it is the SELECT * order): check it separately.
    let text = include_str!("../src/schema.rs");
    for (table, mut cols) in order {
        cols.sort();
        let names: Vec<&str> = cols.iter().map(|(_, n)| n.as_str()).collect();
        let declared_block = text
            .split(&format!("    {table} ("))
            .nth(1)
            .and_then(|rest| rest.split("\n    }").next())
            .unwrap_or_default();
        let declared_names: Vec<&str> = declared_block
            .lines()
            .filter_map(|l| l.trim().split_once(" -> ").map(|(n, _)| n))
            .collect();
        if !declared_names.is_empty() {
            assert_eq!(
                declared_names, names,
                "{backend}: column order of {table} differs between src/schema.rs and the migrations"
            );
        }
    }
    Declared { columns, keys }
}

backend_tests! {
    fn schema_rs_matches_the_migrations(db: &TestDb) {
        let want = declared();
        let have = actual(db);
        assert_eq!(
            have.columns, want.columns,
            "{}: columns in the migrated database (left) differ from src/schema.rs (right)",
            db.backend()
        );
        assert_eq!(
            have.keys, want.keys,
            "{}: primary/foreign keys in the migrated database (left) differ from src/schema.rs (right)",
            db.backend()
        );
    }
}

#[test]
fn the_parser_sees_every_table_and_key() {
    let d = declared();
    assert!(
        d.columns.contains(&"users.email: Text NOT NULL".to_owned()),
        "{:?}",
        d.columns
    );
    assert!(
        d.columns
            .contains(&"tasks.completed_at: DbTimestamp".to_owned()),
        "{:?}",
        d.columns
    );
    assert!(
        d.keys
            .contains(&"tasks.user_id references users".to_owned()),
        "{:?}",
        d.keys
    );
    assert!(
        d.keys.contains(&"users primary key (id)".to_owned()),
        "{:?}",
        d.keys
    );
}
