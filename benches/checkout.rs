//! Checkout + point query (issue 2): what the layer's acquisition costs over raw Diesel.
//!
//! In one run, on PostgreSQL (a dedicated database `taskstore_bench_checkout` on the server at
//! `TASKSTORE_BENCH_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`, dropped and
//! recreated) and on a temporary SQLite file:
//!
//! - `raw_diesel`: one dedicated connection, a point query by primary key;
//! - `taskstore`: `Database::conn()` + the same query through `DbConnection`;
//! - `taskstore_native`: `Database::conn()` + the same query on the native connection inside
//!   (`DbConnection::Postgres(pg)` / `Sqlite`): the checkout without `MultiConnection` dispatch;
//! - `db_connection_held`: the same query through `DbConnection` on one connection checked out
//!   for the whole case: Diesel's `MultiConnection` dispatch without the checkout;
//! - `taskstore_checkout_only` (PostgreSQL): `conn()` and drop, paired with r2d2's own
//!   checkout without a test: the layer's bookkeeping per call;
//! - `r2d2_default` (PostgreSQL): `diesel::r2d2` with r2d2's default `test_on_check_out = true`,
//!   i.e. a `SELECT 1` round trip before every checkout, + the same query;
//! - `r2d2_no_test` (PostgreSQL): the same pool without the checkout test, to separate the
//!   pool's own cost from the extra round trip.
//!
//! The machine this runs on is shared (other builds compete for its two cores), and a load
//! that drifts between one case and the next made sequential figures differ by 50 % for the
//! same code. Every case is therefore measured *paired*: in alternating blocks with raw Diesel
//! on the same data, and the ratio is the median over samples of case time / raw time. The
//! bench and the server processes of its connections are pinned to one CPU (see [`CPU`]).
//!
//! Run: `cargo bench --bench checkout`; the last lines printed are a markdown table of medians
//! and ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::ConnectionManager;
use taskstore::{Config, Database, DbConnection};

diesel::table! {
    bench_items (id) {
        id -> Integer,
        name -> Text,
        score -> Integer,
    }
}

const ROWS: i32 = 1000;
const BENCH_DB: &str = "taskstore_bench_checkout";

/// The query every case runs: one row by primary key. A macro, so that each connection type
/// gets the same DSL expression without a wall of trait bounds.
macro_rules! point_query {
    ($conn:expr, $id:expr) => {
        bench_items::table
            .find($id)
            .select((bench_items::name, bench_items::score))
            .first::<(String, i32)>($conn)
            .expect("point query")
    };
}

const CREATE: &str =
    "CREATE TABLE bench_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER NOT NULL)";

/// One row to insert.
type Row = (
    diesel::dsl::Eq<bench_items::id, i32>,
    diesel::dsl::Eq<bench_items::name, String>,
    diesel::dsl::Eq<bench_items::score, i32>,
);

fn rows() -> Vec<Row> {
    (1..=ROWS)
        .map(|id| {
            (
                bench_items::id.eq(id),
                bench_items::name.eq(format!("item {id}")),
                bench_items::score.eq(id % 97),
            )
        })
        .collect()
}

fn pg_admin_url() -> String {
    std::env::var("TASKSTORE_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn pg_bench_url() -> String {
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{BENCH_DB}")
}

/// Drops and recreates the bench database and its table.
fn pg_setup() -> String {
    let mut admin = PgConnection::establish(&pg_admin_url()).expect("PostgreSQL for the bench");
    // A fixed, bench-owned identifier; DDL cannot take bind parameters.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"))
        .expect("drop bench database");
    admin
        .batch_execute(&format!("CREATE DATABASE {BENCH_DB}"))
        .expect("create bench database");
    let url = pg_bench_url();
    let mut conn = PgConnection::establish(&url).expect("bench database");
    diesel::sql_query(CREATE)
        .execute(&mut conn)
        .expect("create table");
    diesel::insert_into(bench_items::table)
        .values(&rows())
        .execute(&mut conn)
        .expect("insert rows");
    diesel::sql_query("ANALYZE bench_items")
        .execute(&mut conn)
        .expect("analyze");
    url
}

/// A taskstore database with a one-connection pool (the bench is single-threaded; one
/// connection means one known server process to pin, see [`pin_backends`]).
fn taskstore_db(url: &str) -> Database {
    let config = Config::from_vars([
        ("DATABASE_URL", url),
        ("DATABASE_MIGRATE_ON_STARTUP", "false"),
        ("DATABASE_POOL_MAX_SIZE", "1"),
        ("DATABASE_POOL_MIN_IDLE", "1"),
    ])
    .expect("bench configuration");
    let db = Database::connect(&config).expect("taskstore database");
    drop(db.conn().expect("warm the pool"));
    db
}

/// The CPU the bench and the server processes serving its connections run on.
///
/// On this 2-vCPU virtual machine a query whose client and server process sit on different
/// vCPUs pays a cross-CPU wake-up, tens of microseconds when the other vCPU was idle: in
/// unpinned runs one connection of a pair took 23 µs per query and the other 65 µs, which
/// one depending only on where the scheduler had put its server process. Pinning both ends
/// to one CPU measures every case with the same hand-off.
const CPU: usize = 0;

fn pin(pid: libc::pid_t) {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it;
    // sched_setaffinity reads `size` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(CPU, &mut set);
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// Pins the server processes of every open connection to the bench database (they are the
/// bench's own and end with its connections) to [`CPU`].
fn pin_backends() {
    let mut admin = PgConnection::establish(&pg_admin_url()).expect("admin connection");
    let pids: Vec<Pid> = diesel::sql_query(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind::<diesel::sql_types::Text, _>(BENCH_DB)
    .load(&mut admin)
    .expect("server processes of the bench database");
    for Pid { pid } in pids {
        pin(pid);
    }
}

fn next_id(i: &mut i32) -> i32 {
    *i = *i % ROWS + 1;
    *i
}

/// Iterations of one side before switching to the other in a paired measurement. Small, so
/// that a preemption by another process on the shared machine (a time slice is milliseconds,
/// a PostgreSQL point query tens of microseconds) hits both sides alike; the two clock reads
/// per block are negligible next to even the cheapest case.
const BLOCK: u64 = 8;

/// Per-sample figures of one paired case, for the summary printed at the end.
struct Paired {
    name: String,
    /// What the case is paired with.
    baseline_name: &'static str,
    /// Seconds per iteration of the case, one entry per Criterion sample.
    case: Vec<f64>,
    /// Seconds per iteration of the baseline, measured in alternating blocks with the case.
    baseline: Vec<f64>,
}

/// Measures `case` with Criterion while running `baseline` in alternating blocks of
/// [`BLOCK`] iterations, so that each sample yields a case/baseline ratio taken under the
/// same load. Criterion reports the case alone; the ratios go to `out`.
fn paired(
    b: &mut Bencher<'_>,
    out: &mut Paired,
    mut baseline: impl FnMut(),
    mut case: impl FnMut(),
) {
    b.iter_custom(|iters| {
        let (mut t_case, mut t_base) = (Duration::ZERO, Duration::ZERO);
        let mut done = 0;
        let mut case_first = false;
        while done < iters {
            let n = BLOCK.min(iters - done);
            // Alternate which side goes first, so neither always runs on the other's warm
            // caches.
            for side in [case_first, !case_first] {
                let start = Instant::now();
                if side {
                    (0..n).for_each(|_| case());
                    t_case += start.elapsed();
                } else {
                    (0..n).for_each(|_| baseline());
                    t_base += start.elapsed();
                }
            }
            case_first = !case_first;
            done += n;
        }
        out.case.push(t_case.as_secs_f64() / iters as f64);
        out.baseline.push(t_base.as_secs_f64() / iters as f64);
        t_case
    });
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Prints one markdown table of medians and ratios (time of case / time of its baseline,
/// both from the same samples).
fn summary(results: &mut [Paired]) {
    println!(
        "\nCheckout + point query: medians over Criterion samples, each case interleaved with its baseline"
    );
    println!(
        "| case | median per iteration | baseline | baseline median, same samples | time ratio | throughput vs baseline |"
    );
    println!("|---|---|---|---|---|---|");
    // Cases left out by a filter on the command line have no samples.
    for r in results.iter_mut().filter(|r| !r.case.is_empty()) {
        // The ratio of each sample, then its median: robust to load that drifts between
        // samples.
        let mut ratios: Vec<f64> = r.case.iter().zip(&r.baseline).map(|(c, b)| c / b).collect();
        let ratio = median(&mut ratios);
        println!(
            "| {} | {:.2} µs | {} | {:.2} µs | {:.3}× | {:.3}× |",
            r.name,
            median(&mut r.case) * 1e6,
            r.baseline_name,
            median(&mut r.baseline) * 1e6,
            ratio,
            1.0 / ratio
        );
    }
}

fn postgres(c: &mut Criterion, results: &mut Vec<Paired>) {
    let url = pg_setup();
    let mut g = c.benchmark_group("postgres");

    let mut raw = PgConnection::establish(&url).expect("raw connection");
    pin_backends();
    let (mut i, mut j) = (0, 0);
    g.bench_function("raw_diesel", |b| {
        b.iter(|| black_box(point_query!(&mut raw, next_id(&mut i))))
    });

    let db = taskstore_db(&url);
    pin_backends();
    let mut out = Paired::new("postgres/taskstore");
    g.bench_function("taskstore", |b| {
        paired(
            b,
            &mut out,
            || {
                black_box(point_query!(&mut raw, next_id(&mut i)));
            },
            || {
                let mut conn = db.conn().expect("checkout");
                black_box(point_query!(&mut *conn, next_id(&mut j)));
            },
        )
    });
    results.push(out);

    // The same checkout, with the query on the native `PgConnection` inside: the layer's
    // checkout without `MultiConnection` dispatch (what a hot repository path can do).
    let mut out = Paired::new("postgres/taskstore_native");
    g.bench_function("taskstore_native", |b| {
        paired(
            b,
            &mut out,
            || {
                black_box(point_query!(&mut raw, next_id(&mut i)));
            },
            || {
                let mut conn = db.conn().expect("checkout");
                let DbConnection::Postgres(pg) = &mut *conn else {
                    unreachable!("a PostgreSQL URL")
                };
                black_box(point_query!(pg, next_id(&mut j)));
            },
        )
    });
    results.push(out);
    drop(db);

    // The query alone through `DbConnection` on a connection held for the whole case: what
    // Diesel's `MultiConnection` dispatch costs, apart from the checkout.
    let db = taskstore_db(&url);
    pin_backends();
    let mut held = db.conn().expect("checkout");
    let mut out = Paired::new("postgres/db_connection_held");
    g.bench_function("db_connection_held", |b| {
        paired(
            b,
            &mut out,
            || {
                black_box(point_query!(&mut raw, next_id(&mut i)));
            },
            || {
                black_box(point_query!(&mut *held, next_id(&mut j)));
            },
        )
    });
    results.push(out);
    drop(held);
    drop(db);

    // The checkout alone (no query), against r2d2's own checkout without a test: what the
    // layer's bookkeeping (deadline, liveness poll, stats) costs per call.
    let db = taskstore_db(&url);
    let plain = r2d2::Pool::builder()
        .max_size(1)
        .test_on_check_out(false)
        .build(ConnectionManager::<PgConnection>::new(&url))
        .expect("r2d2 pool");
    pin_backends();
    let mut out = Paired::against("postgres/taskstore_checkout_only", "r2d2 checkout, no test");
    g.bench_function("taskstore_checkout_only", |b| {
        paired(
            b,
            &mut out,
            || drop(black_box(plain.get().expect("checkout"))),
            || drop(black_box(db.conn().expect("checkout"))),
        )
    });
    results.push(out);
    drop((db, plain));

    for (name, test) in [("r2d2_default", true), ("r2d2_no_test", false)] {
        let pool = r2d2::Pool::builder()
            .max_size(1)
            .test_on_check_out(test)
            .build(ConnectionManager::<PgConnection>::new(&url))
            .expect("r2d2 pool");
        pin_backends();
        let mut out = Paired::new(&format!("postgres/{name}"));
        g.bench_function(name, |b| {
            paired(
                b,
                &mut out,
                || {
                    black_box(point_query!(&mut raw, next_id(&mut i)));
                },
                || {
                    let mut conn = pool.get().expect("checkout");
                    black_box(point_query!(&mut *conn, next_id(&mut j)));
                },
            )
        });
        results.push(out);
    }
    g.finish();
}

fn sqlite(c: &mut Criterion, results: &mut Vec<Paired>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let path = path.to_str().expect("utf-8 path");
    let mut raw = SqliteConnection::establish(path).expect("sqlite");
    // The settings taskstore gives every SQLite connection, so that only the layer differs
    // (WAL in particular makes reads cheaper than the default rollback journal).
    for pragma in [
        "PRAGMA busy_timeout = 10000",
        "PRAGMA foreign_keys = ON",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
    ] {
        raw.batch_execute(pragma).expect("pragma");
    }
    diesel::sql_query(CREATE)
        .execute(&mut raw)
        .expect("create table");
    raw.transaction(|c| {
        for chunk in rows().chunks(200) {
            diesel::insert_into(bench_items::table)
                .values(chunk)
                .execute(c)?;
        }
        diesel::QueryResult::Ok(())
    })
    .expect("insert rows");
    let mut g = c.benchmark_group("sqlite");

    let (mut i, mut j) = (0, 0);
    g.bench_function("raw_diesel", |b| {
        b.iter(|| black_box(point_query!(&mut raw, next_id(&mut i))))
    });

    let db = taskstore_db(&format!("sqlite://{path}"));
    let mut out = Paired::new("sqlite/taskstore");
    g.bench_function("taskstore", |b| {
        paired(
            b,
            &mut out,
            || {
                black_box(point_query!(&mut raw, next_id(&mut i)));
            },
            || {
                let mut conn = db.conn().expect("checkout");
                black_box(point_query!(&mut *conn, next_id(&mut j)));
            },
        )
    });
    results.push(out);
    let mut out = Paired::new("sqlite/taskstore_native");
    g.bench_function("taskstore_native", |b| {
        paired(
            b,
            &mut out,
            || {
                black_box(point_query!(&mut raw, next_id(&mut i)));
            },
            || {
                let mut conn = db.conn().expect("checkout");
                let DbConnection::Sqlite(lite) = &mut *conn else {
                    unreachable!("a SQLite URL")
                };
                black_box(point_query!(lite, next_id(&mut j)));
            },
        )
    });
    results.push(out);
    let mut held = db.conn().expect("checkout");
    let mut out = Paired::new("sqlite/db_connection_held");
    g.bench_function("db_connection_held", |b| {
        paired(
            b,
            &mut out,
            || {
                black_box(point_query!(&mut raw, next_id(&mut i)));
            },
            || {
                black_box(point_query!(&mut *held, next_id(&mut j)));
            },
        )
    });
    results.push(out);
    g.finish();
}

impl Paired {
    fn new(name: &str) -> Self {
        Self::against(name, "raw Diesel")
    }

    fn against(name: &str, baseline_name: &'static str) -> Self {
        Self {
            name: name.to_owned(),
            baseline_name,
            case: Vec::new(),
            baseline: Vec::new(),
        }
    }
}

fn main() {
    // Threads started later (r2d2's, the watchdog) inherit the mask.
    pin(0);
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(50)
        .configure_from_args();
    let mut results = Vec::new();
    postgres(&mut c, &mut results);
    sqlite(&mut c, &mut results);
    c.final_summary();
    summary(&mut results);
}
