//! Shared by `benches/domain.rs` and the benchmark examples (`examples/throughput.rs`,
//! `examples/bulk_import.rs`, included there with `#[path]`): a dedicated PostgreSQL database
//! per benchmark on the shared server, the layer built on it, seed data written through the
//! layer's bulk path, and the raw-Diesel baselines.
//!
//! The baselines are what a careful Diesel user would write without the layer: a dedicated
//! `PgConnection` / `SqliteConnection`, the crate's own `schema` (so the SQL text is the same,
//! checked by [`same_sql`]), and plain `uuid::Uuid` / `chrono` values. They are the yardstick of
//! SPEC §9's "≥ 0.95× raw Diesel" ratios.

#![expect(
    dead_code,
    reason = "each bench target uses a different part of this module"
)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use taskstore::models::{NewUser, TaskImport, UserId};
use taskstore::{Config, Database};
use uuid::Uuid;

/// Admin URL of the shared PostgreSQL server (`TASKSTORE_BENCH_PG_URL`); loopback only.
pub fn pg_admin_url() -> String {
    std::env::var("TASKSTORE_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `postgres://.../<db>` on the shared server.
pub fn pg_url_for(db: &str) -> String {
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{db}")
}

/// A database of its own on the shared server, dropped (with its connections) on drop unless
/// [`PgBenchDb::keep`] was called.
pub struct PgBenchDb {
    pub name: String,
    pub url: String,
    keep: bool,
}

impl PgBenchDb {
    /// Drops `name` if a previous run left it behind, then creates it empty.
    pub fn create(name: &str) -> Self {
        assert!(
            name.starts_with("taskstore_bench_")
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "bench database names are taskstore_bench_[a-z0-9_]+"
        );
        let mut admin = PgConnection::establish(&pg_admin_url())
            .expect("the benchmarks need PostgreSQL at TASKSTORE_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres)");
        // DDL takes no bind parameters; the name was checked above.
        // Two statements: a multi-statement string would run as one implicit transaction, which
        // DROP / CREATE DATABASE refuse.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .expect("drop a leftover bench database");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create the bench database");
        Self {
            name: name.to_owned(),
            url: pg_url_for(name),
            // For looking at plans afterwards; the next run drops it.
            keep: std::env::var_os("TASKSTORE_BENCH_KEEP_DB").is_some(),
        }
    }

    /// Leaves the database in place after this process (for pgbench).
    pub fn keep(mut self) -> Self {
        self.keep = true;
        self
    }
}

impl Drop for PgBenchDb {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Ok(mut admin) = PgConnection::establish(&pg_admin_url()) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The layer on `url` with a pool of `pool_size`, every connection opened up front so that no
/// measurement pays for a connect. Everything else is the documented default.
pub fn layer(url: &str, pool_size: u32) -> Database {
    let size = pool_size.to_string();
    let config = Config::from_vars([
        ("DATABASE_URL", url),
        ("DATABASE_POOL_MAX_SIZE", size.as_str()),
        ("DATABASE_POOL_MIN_IDLE", size.as_str()),
        ("TASKSTORE_ENV", "test"),
    ])
    .expect("bench configuration");
    let db = Database::connect(&config).expect("connect the layer");
    // r2d2 fills min_idle on its own threads; wait until it has.
    for _ in 0..200 {
        if db.pool_state().connections >= pool_size {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    db
}

/// A dedicated PostgreSQL connection for the raw-Diesel baseline.
pub fn raw_pg(url: &str) -> PgConnection {
    PgConnection::establish(url).expect("raw PgConnection")
}

/// The server process behind a PostgreSQL connection.
pub fn backend_pid(conn: &mut PgConnection) -> i32 {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
        "pg_backend_pid()",
    ))
    .get_result(conn)
    .expect("pg_backend_pid()")
}

/// The CPU the single-connection benchmarks pin to (`TASKSTORE_BENCH_CPU`, default 1;
/// `TASKSTORE_BENCH_CPU=none` turns pinning off).
///
/// Why pin at all: on this two-core VM a loopback round trip takes about 27 µs when the client
/// thread and its PostgreSQL backend share a core and about 50 µs when the scheduler puts them
/// on different cores (a cross-core wake-up per message), and the placement of a connection
/// lasts long enough to decide a whole paired comparison: two identical raw connections came out
/// at 0.60 and 1.70 of each other. Pinning the client thread and every backend it talks to onto
/// one core gives both sides of a comparison the same placement, so the ratio measures the
/// client-side work the layer adds. It touches only this process and the server processes of
/// its own connections (which end with them).
pub fn bench_cpu() -> Option<usize> {
    match std::env::var("TASKSTORE_BENCH_CPU") {
        Ok(v) if v == "none" => None,
        Ok(v) => Some(
            v.parse()
                .expect("TASKSTORE_BENCH_CPU: a CPU number or none"),
        ),
        Err(_) => Some(1),
    }
}

/// Pins process or thread `pid` (0: the calling thread) to `cpu`.
pub fn pin(pid: i32, cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO / CPU_SET only write inside it, and
    // sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity({pid}, cpu {cpu}): {}",
        std::io::Error::last_os_error()
    );
}

/// A dedicated SQLite connection with the pragmas the layer sets on its own connections
/// (WAL, `synchronous = NORMAL`, foreign keys, busy timeout), so that both pay the same
/// durability cost.
pub fn raw_sqlite(path: &str) -> SqliteConnection {
    let mut c = SqliteConnection::establish(path).expect("raw SqliteConnection");
    c.batch_execute(
        "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
         PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
    )
    .expect("sqlite pragmas");
    c
}

/// A task row as the raw baselines insert it (every column set), in plain `uuid` / `chrono`
/// values; each backend's schema module converts it to what that backend's columns take.
#[derive(Debug, Clone)]
pub struct RawNewTask<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub completed: bool,
    pub priority: i16,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl<'a> RawNewTask<'a> {
    /// An open task created now, as `tasks::create` would write it.
    pub fn new(owner: Uuid, title: &'a str) -> Self {
        let now = now_micros();
        Self {
            id: Uuid::now_v7(),
            user_id: owner,
            title,
            description: None,
            completed: false,
            priority: 3,
            version: 1,
            created_at: now,
            updated_at: now,
            completed_at: None,
        }
    }
}

/// Now, truncated to microseconds (what both backends store).
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The `tasks` table as a raw-Diesel application on PostgreSQL declares it: Diesel's own
/// `Uuid` and `Timestamptz`. Same table and column names as `taskstore::schema`, so Diesel
/// generates the same SQL text.
pub mod pg_schema {
    use super::*;

    diesel::table! {
        tasks (id) {
            id -> Uuid,
            user_id -> Uuid,
            title -> Text,
            description -> Nullable<Text>,
            completed -> Bool,
            priority -> SmallInt,
            version -> Integer,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
            completed_at -> Nullable<Timestamptz>,
        }
    }

    /// A task as read back.
    #[derive(Debug, Clone, Queryable, Selectable)]
    #[diesel(table_name = tasks)]
    #[diesel(check_for_backend(diesel::pg::Pg))]
    pub struct Task {
        pub id: Uuid,
        pub user_id: Uuid,
        pub title: String,
        pub description: Option<String>,
        pub completed: bool,
        pub priority: i16,
        pub version: i32,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
        pub completed_at: Option<DateTime<Utc>>,
    }

    /// A row to insert.
    #[derive(Debug, Clone, Insertable)]
    #[diesel(table_name = tasks)]
    #[diesel(treat_none_as_default_value = false)]
    pub struct NewTask<'a> {
        pub id: Uuid,
        pub user_id: Uuid,
        pub title: &'a str,
        pub description: Option<&'a str>,
        pub completed: bool,
        pub priority: i16,
        pub version: i32,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
        pub completed_at: Option<DateTime<Utc>>,
    }

    pub type Key = Uuid;

    pub fn key(id: Uuid) -> Key {
        id
    }

    pub fn new_row<'a>(t: &RawNewTask<'a>) -> NewTask<'a> {
        NewTask {
            id: t.id,
            user_id: t.user_id,
            title: t.title,
            description: t.description,
            completed: t.completed,
            priority: t.priority,
            version: t.version,
            created_at: t.created_at,
            updated_at: t.updated_at,
            completed_at: t.completed_at,
        }
    }
}

/// The `tasks` table as a raw-Diesel application on SQLite declares it for the layer's storage
/// format: UUIDs as 16-byte `BLOB`s, timestamps as `BIGINT` microseconds.
pub mod sqlite_schema {
    use super::*;

    diesel::table! {
        tasks (id) {
            id -> Binary,
            user_id -> Binary,
            title -> Text,
            description -> Nullable<Text>,
            completed -> Bool,
            priority -> SmallInt,
            version -> Integer,
            created_at -> BigInt,
            updated_at -> BigInt,
            completed_at -> Nullable<BigInt>,
        }
    }

    /// A task as read back.
    #[derive(Debug, Clone, Queryable, Selectable)]
    #[diesel(table_name = tasks)]
    #[diesel(check_for_backend(diesel::sqlite::Sqlite))]
    pub struct Task {
        pub id: Vec<u8>,
        pub user_id: Vec<u8>,
        pub title: String,
        pub description: Option<String>,
        pub completed: bool,
        pub priority: i16,
        pub version: i32,
        pub created_at: i64,
        pub updated_at: i64,
        pub completed_at: Option<i64>,
    }

    /// A row to insert.
    #[derive(Debug, Clone, Insertable)]
    #[diesel(table_name = tasks)]
    #[diesel(treat_none_as_default_value = false)]
    pub struct NewTask<'a> {
        pub id: Vec<u8>,
        pub user_id: Vec<u8>,
        pub title: &'a str,
        pub description: Option<&'a str>,
        pub completed: bool,
        pub priority: i16,
        pub version: i32,
        pub created_at: i64,
        pub updated_at: i64,
        pub completed_at: Option<i64>,
    }

    pub type Key = Vec<u8>;

    pub fn key(id: Uuid) -> Key {
        id.as_bytes().to_vec()
    }

    pub fn new_row<'a>(t: &RawNewTask<'a>) -> NewTask<'a> {
        NewTask {
            id: key(t.id),
            user_id: key(t.user_id),
            title: t.title,
            description: t.description,
            completed: t.completed,
            priority: t.priority,
            version: t.version,
            created_at: t.created_at.timestamp_micros(),
            updated_at: t.updated_at.timestamp_micros(),
            completed_at: t.completed_at.map(|c| c.timestamp_micros()),
        }
    }
}

/// The raw-Diesel versions of the benchmarked operations, written once for both backends (the
/// connection and the column types differ, the query does not).
macro_rules! raw_ops {
    ($module:ident, $conn:ty, $schema:ident) => {
        pub mod $module {
            use super::$schema::{NewTask, Task, key, tasks};
            use super::*;

            /// `tasks::get`: the task `id` of `owner`.
            pub fn get(c: &mut $conn, owner: Uuid, id: Uuid) -> QueryResult<Option<Task>> {
                tasks::table
                    .filter(tasks::id.eq(key(id)))
                    .filter(tasks::user_id.eq(key(owner)))
                    .select(Task::as_select())
                    .first(c)
                    .optional()
            }

            /// `tasks::list` with `completed = false, priority >= min`, newest first.
            pub fn open_page(
                c: &mut $conn,
                owner: Uuid,
                priority_min: i16,
                limit: i64,
            ) -> QueryResult<Vec<Task>> {
                tasks::table
                    .filter(tasks::user_id.eq(key(owner)))
                    .filter(tasks::completed.eq(false))
                    .filter(tasks::priority.ge(priority_min))
                    .order((tasks::created_at.desc(), tasks::id.desc()))
                    .limit(limit)
                    .select(Task::as_select())
                    .load(c)
            }

            /// `tasks::list` unfiltered, newest first, first page.
            pub fn newest_page(c: &mut $conn, owner: Uuid, limit: i64) -> QueryResult<Vec<Task>> {
                tasks::table
                    .filter(tasks::user_id.eq(key(owner)))
                    .order((tasks::created_at.desc(), tasks::id.desc()))
                    .limit(limit)
                    .select(Task::as_select())
                    .load(c)
            }

            /// The plain INSERT a raw-Diesel application would write for one task.
            pub fn create(c: &mut $conn, task: &RawNewTask<'_>) -> QueryResult<usize> {
                diesel::insert_into(tasks::table)
                    .values(super::$schema::new_row(task))
                    .execute(c)
            }

            /// Many tasks with one single-row INSERT each (a statement Diesel prepares once
            /// and caches), in one transaction.
            pub fn insert_each(c: &mut $conn, rows: &[NewTask<'_>]) -> QueryResult<usize> {
                c.transaction(|c| {
                    let mut n = 0;
                    for row in rows {
                        n += diesel::insert_into(tasks::table).values(row).execute(c)?;
                    }
                    Ok(n)
                })
            }

            /// Many tasks with multi-row INSERTs of `rows_per_statement`, in one transaction.
            pub fn insert_many(
                c: &mut $conn,
                rows: &[NewTask<'_>],
                rows_per_statement: usize,
            ) -> QueryResult<usize> {
                c.transaction(|c| {
                    let mut n = 0;
                    for chunk in rows.chunks(rows_per_statement) {
                        n += diesel::insert_into(tasks::table).values(chunk).execute(c)?;
                    }
                    Ok(n)
                })
            }
        }
    };
}

raw_ops!(raw_pg_ops, PgConnection, pg_schema);
raw_ops!(raw_sqlite_ops, SqliteConnection, sqlite_schema);

/// The seeded data set: owners and, per owner, their task ids.
pub struct Seeded {
    pub users: Vec<(UserId, Vec<taskstore::models::TaskId>)>,
}

/// A deterministic pseudo-random sequence (SplitMix64), so that every run seeds and queries the
/// same shape of data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `n` task rows for an import: titles and descriptions of realistic length, priorities 1..=5,
/// about a third completed, creation times one second apart (so that newest-first listings
/// have a real order), ids v7.
pub fn task_imports(n: usize, rng: &mut Rng) -> Vec<TaskImport> {
    let base = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid base time");
    (0..n)
        .map(|i| {
            let created = base + chrono::Duration::seconds(i as i64);
            let completed = rng.below(3) == 0;
            TaskImport {
                id: Some(taskstore::models::TaskId(Uuid::now_v7())),
                title: format!("Task {i}: review the quarterly report section {}", rng.below(1000)),
                description: (rng.below(2) == 0).then(|| {
                    format!(
                        "Details for task {i}: check the figures, update the summary and send it to the team ({}).",
                        rng.next_u64()
                    )
                }),
                priority: Some(1 + rng.below(5) as i16),
                completed: Some(completed),
                created_at: Some(created),
                updated_at: Some(created),
                completed_at: completed.then_some(created),
                version: Some(1),
            }
        })
        .collect()
}

/// A user created through the layer.
pub fn create_user(db: &Database, email: &str) -> UserId {
    db.users()
        .create(&NewUser {
            email,
            password_hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
            first_name: Some("Bench"),
            last_name: None,
        })
        .expect("create a bench user")
        .id
}

/// Seeds `users` users with `tasks_per_user` tasks each through the layer's bulk path
/// (`tasks::import`: COPY on PostgreSQL, multi-row INSERT on SQLite), then `ANALYZE`s.
pub fn seed(
    db: &Database,
    prefix: &str,
    users: usize,
    tasks_per_user: usize,
    rng: &mut Rng,
) -> Seeded {
    let mut out = Vec::with_capacity(users);
    for u in 0..users {
        let owner = create_user(db, &format!("{prefix}{u}@bench.example"));
        let rows = task_imports(tasks_per_user, rng);
        db.tasks().import(owner, &rows).expect("seed tasks");
        out.push((owner, rows.iter().filter_map(|r| r.id).collect()));
    }
    analyze(db);
    Seeded { users: out }
}

/// Refreshes the planner's statistics after a bulk load.
pub fn analyze(db: &Database) {
    db.run(|c| Ok(c.batch_execute("ANALYZE")?))
        .expect("ANALYZE");
}

/// Median of a sample (sorts it).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}
