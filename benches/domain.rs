//! Domain operations through the layer beside the same query in raw Diesel, in one run
//! (SPEC §9, issue 4). See bench/RESULTS.md for the figures and how to read them.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-shared cargo bench --bench domain
//! ```
//!
//! PostgreSQL: a dedicated database `taskstore_bench_domain` on the shared server
//! (`TASKSTORE_BENCH_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`), seeded
//! with 100 users × 1 000 tasks plus one user with 10 100 tasks, all through the layer's bulk
//! path (`tasks::import`, COPY). SQLite: a temporary file seeded the same way (multi-row
//! INSERT). The layer runs as an application would use it: a `Database` with a pool, each call
//! checking a connection out (`db.tasks().get(owner, id)`). The baseline is raw Diesel on one
//! dedicated connection with the same SQL (`support::raw_*_ops`).
//!
//! Besides Criterion's own report, the run ends with a table of medians and the ratios SPEC §9
//! sets targets for, computed from this run's samples only: each comparison is measured again
//! in alternating blocks (`Recorder::paired`), with this thread and the PostgreSQL backends of
//! its connections pinned to one core (`support::bench_cpu`), and an A/A control (two
//! identical raw connections) shows what noise alone does to a ratio. Environment:
//! `TASKSTORE_BENCH_PG_URL`, `TASKSTORE_BENCH_CPU` (a core, or `none`),
//! `TASKSTORE_BENCH_KEEP_DB` (keep the PostgreSQL database for looking at plans).

mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion};
use diesel::prelude::*;
use support::{RawNewTask, Rng, raw_pg_ops, raw_sqlite_ops};
use taskstore::models::{NewTask, PageRequest, TaskFilter, TaskId, TaskSort, UserId};
use taskstore::{Conn, Database, DbConnection};

const SAMPLE_SIZE: usize = 30;
const USERS: usize = 100;
const TASKS_PER_USER: usize = 1_000;
/// The deep user's task count: enough for a page of 20 after 10 000 rows.
const DEEP_TASKS: usize = 10_100;
const DEPTH: usize = 10_000;
const PAGE: u32 = 20;
/// Distinct (owner, id) pairs the point queries cycle through, the same sequence for the layer
/// and the baseline.
const KEYS: usize = 4_096;
const POOL_SIZE: u32 = 4;

/// Per-iteration times of every measured sample, by benchmark id, and the paired
/// comparisons, for the summary.
#[derive(Default)]
struct Recorder(RefCell<BTreeMap<String, Vec<f64>>>, RefCell<Vec<Paired>>);

/// Two operations measured in alternating blocks (A B, then B A, ...), so that whatever else
/// the machine does at a given moment hits both sides alike. Criterion measures one function
/// after the other, seconds apart; on a shared two-core machine that alone moved a ratio by
/// more than the 5 % it is meant to resolve.
struct Paired {
    name: String,
    a: &'static str,
    b: &'static str,
    /// Per-operation time of each block, ns.
    a_ns: Vec<f64>,
    b_ns: Vec<f64>,
}

impl Paired {
    fn medians(&self) -> (f64, f64) {
        (
            support::median(&mut self.a_ns.clone()),
            support::median(&mut self.b_ns.clone()),
        )
    }
}

impl Recorder {
    /// Times `iters` calls of `op` for Criterion and keeps the per-iteration time.
    fn measure(&self, b: &mut Bencher<'_>, id: &str, mut op: impl FnMut()) {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                op();
            }
            let elapsed = start.elapsed();
            self.0
                .borrow_mut()
                .entry(id.to_owned())
                .or_default()
                .push(elapsed.as_nanos() as f64 / iters as f64);
            elapsed
        });
    }

    /// Median per-iteration time (ns) over the measured samples (Criterion calls the routine
    /// for warm-up first; the last `SAMPLE_SIZE` calls are the samples).
    fn median(&self, id: &str) -> Option<f64> {
        let map = self.0.borrow();
        let all = map.get(id)?;
        let mut samples = all[all.len().saturating_sub(SAMPLE_SIZE)..].to_vec();
        (!samples.is_empty()).then(|| support::median(&mut samples))
    }
}

impl Recorder {
    /// Runs `blocks` pairs of blocks of `ops` calls each of `a` and `b`, alternating which goes
    /// first, after one unrecorded pair as a warm-up.
    fn paired(
        &self,
        name: &str,
        (a_name, a): (&'static str, &mut dyn FnMut()),
        (b_name, b): (&'static str, &mut dyn FnMut()),
        blocks: usize,
        ops: usize,
    ) {
        let time = |f: &mut dyn FnMut()| {
            let start = Instant::now();
            for _ in 0..ops {
                f();
            }
            start.elapsed().as_nanos() as f64 / ops as f64
        };
        time(&mut *a);
        time(&mut *b);
        let (mut a_ns, mut b_ns) = (Vec::with_capacity(blocks), Vec::with_capacity(blocks));
        for i in 0..blocks {
            if i % 2 == 0 {
                a_ns.push(time(&mut *a));
                b_ns.push(time(&mut *b));
            } else {
                b_ns.push(time(&mut *b));
                a_ns.push(time(&mut *a));
            }
        }
        let p = Paired {
            name: name.to_owned(),
            a: a_name,
            b: b_name,
            a_ns,
            b_ns,
        };
        let (ma, mb) = p.medians();
        eprintln!(
            "paired {name}: {a_name} {:.1} µs, {b_name} {:.1} µs (medians of {blocks} blocks of {ops})",
            ma / 1e3,
            mb / 1e3
        );
        self.1.borrow_mut().push(p);
    }
}

/// What one backend's benchmarks need: the layer, a baseline connection, and the data set.
struct Fixture {
    db: Database,
    keys: Vec<(UserId, TaskId)>,
    owners: Vec<UserId>,
    deep: UserId,
    deep_cursor: String,
    creator: UserId,
}

fn fixture(db: Database, prefix: &str) -> Fixture {
    let started = Instant::now();
    let mut rng = Rng::new(0x7A5C_5704_E000_0004);
    let seeded = support::seed(&db, prefix, USERS, TASKS_PER_USER, &mut rng);
    let deep = support::create_user(&db, &format!("{prefix}deep@bench.example"));
    db.tasks()
        .import(deep, &support::task_imports(DEEP_TASKS, &mut rng))
        .expect("seed the deep user");
    let creator = support::create_user(&db, &format!("{prefix}creator@bench.example"));
    support::analyze(&db);

    let keys = (0..KEYS)
        .map(|_| {
            let (owner, ids) = &seeded.users[rng.below(seeded.users.len())];
            (*owner, ids[rng.below(ids.len())])
        })
        .collect();
    let owners = seeded.users.iter().map(|(o, _)| *o).collect();

    // The cursor after DEPTH rows of the deep user's newest-first listing, reached by paging.
    let mut request = PageRequest::first(1_000);
    for _ in 0..DEPTH / 1_000 {
        let page = db
            .tasks()
            .list(
                deep,
                &TaskFilter::default(),
                TaskSort::CreatedDesc,
                &request,
            )
            .expect("page through the deep user");
        request = PageRequest::after(1_000, page.next_cursor);
    }
    let deep_cursor = request.cursor.expect("a cursor at depth 10 000");
    eprintln!(
        "[{prefix}] seeded {} tasks in {:.1} s",
        USERS * TASKS_PER_USER + DEEP_TASKS,
        started.elapsed().as_secs_f64()
    );
    Fixture {
        db,
        keys,
        owners,
        deep,
        deep_cursor,
        creator,
    }
}

fn open_p3() -> TaskFilter {
    TaskFilter {
        completed: Some(false),
        priority_min: Some(3),
        ..TaskFilter::default()
    }
}

/// Defines the benchmarks of one backend; the raw operations come from `$raw`.
///
/// Each comparison is measured twice in the same run: by Criterion (one function after the
/// other; its report and medians) and paired in alternating blocks (the ratios).
macro_rules! backend_benches {
    ($c:expr, $rec:expr, $prefix:literal, $f:expr, ($raw_conn:expr, $raw_conn2:expr), $raw:ident, $inner:path) => {{
        let c: &mut Criterion = $c;
        let rec: &Recorder = $rec;
        let f: &Fixture = $f;
        let raw = $raw_conn;
        let raw2 = $raw_conn2;

        // get task by (owner, id)
        {
            let (mut i, mut j) = (0usize, 0usize);
            let mut layer = || {
                let (owner, id) = f.keys[i % KEYS];
                i += 1;
                black_box(f.db.tasks().get(owner, id).expect("layer get"));
            };
            let mut raw_diesel = || {
                let (owner, id) = f.keys[j % KEYS];
                j += 1;
                black_box(
                    $raw::get(&mut *raw, owner.0, id.0)
                        .expect("raw get")
                        .expect("present"),
                );
            };
            // Diagnostic: the layer's checkout (`Database::run`, the path the repositories'
            // convenience calls take) around the raw query on the connection it wraps, i.e.
            // the layer's cost without Diesel's MultiConnection dispatch.
            let mut k = 0usize;
            let mut pool_raw = || {
                let (owner, id) = f.keys[k % KEYS];
                k += 1;
                let task =
                    f.db.run(|c| Ok($raw::get($inner(c), owner.0, id.0)?))
                        .expect("raw get")
                        .expect("present");
                black_box(task);
            };
            let mut g = c.benchmark_group(concat!($prefix, "_get"));
            g.bench_function("layer", |b| {
                rec.measure(b, concat!($prefix, "_get/layer"), &mut layer)
            });
            g.bench_function("raw_diesel", |b| {
                rec.measure(b, concat!($prefix, "_get/raw_diesel"), &mut raw_diesel)
            });
            g.bench_function("pool_checkout_raw_query", |b| {
                rec.measure(
                    b,
                    concat!($prefix, "_get/pool_checkout_raw_query"),
                    &mut pool_raw,
                )
            });
            g.finish();
            rec.paired(
                concat!($prefix, "_get"),
                ("layer", &mut layer),
                ("raw_diesel", &mut raw_diesel),
                400,
                25,
            );
            // Control: two identical raw connections; whatever their ratio is away from 1.0 is
            // what this machine's noise alone does to a ratio.
            let mut l = 0usize;
            let mut raw_diesel_2 = || {
                let (owner, id) = f.keys[l % KEYS];
                l += 1;
                black_box(
                    $raw::get(&mut *raw2, owner.0, id.0)
                        .expect("raw get")
                        .expect("present"),
                );
            };
            rec.paired(
                concat!($prefix, "_get_aa_control"),
                ("raw_diesel_conn2", &mut raw_diesel_2),
                ("raw_diesel", &mut raw_diesel),
                400,
                25,
            );
            rec.paired(
                concat!($prefix, "_get_pool_only"),
                ("pool_checkout_raw_query", &mut pool_raw),
                ("raw_diesel", &mut raw_diesel),
                400,
                25,
            );
        }

        // a filtered page of 20: open, priority >= 3, newest first
        {
            let filter = open_p3();
            let (mut i, mut j) = (0usize, 0usize);
            let mut layer = || {
                let owner = f.owners[i % f.owners.len()];
                i += 1;
                let page =
                    f.db.tasks()
                        .list(
                            owner,
                            &filter,
                            TaskSort::CreatedDesc,
                            &PageRequest::first(PAGE),
                        )
                        .expect("layer page");
                assert_eq!(page.items.len(), PAGE as usize);
                black_box(page);
            };
            let mut raw_diesel = || {
                let owner = f.owners[j % f.owners.len()];
                j += 1;
                // limit + 1, as the layer fetches to know whether there is a next page.
                let rows =
                    $raw::open_page(&mut *raw, owner.0, 3, i64::from(PAGE) + 1).expect("raw page");
                assert_eq!(rows.len(), PAGE as usize + 1);
                black_box(rows);
            };
            let mut g = c.benchmark_group(concat!($prefix, "_page_open_p3"));
            g.bench_function("layer", |b| {
                rec.measure(b, concat!($prefix, "_page_open_p3/layer"), &mut layer)
            });
            g.bench_function("raw_diesel", |b| {
                rec.measure(
                    b,
                    concat!($prefix, "_page_open_p3/raw_diesel"),
                    &mut raw_diesel,
                )
            });
            g.finish();
            rec.paired(
                concat!($prefix, "_page_open_p3"),
                ("layer", &mut layer),
                ("raw_diesel", &mut raw_diesel),
                300,
                10,
            );
        }

        // keyset pagination: the first page and the page after 10 000 rows (layer), plus the
        // raw first page for reference
        {
            let all = TaskFilter::default();
            let deep_request = PageRequest::after(PAGE, Some(f.deep_cursor.clone()));
            let mut first = || {
                let page =
                    f.db.tasks()
                        .list(
                            f.deep,
                            &all,
                            TaskSort::CreatedDesc,
                            &PageRequest::first(PAGE),
                        )
                        .expect("first page");
                assert_eq!(page.items.len(), PAGE as usize);
                black_box(page);
            };
            let mut deep = || {
                let page =
                    f.db.tasks()
                        .list(f.deep, &all, TaskSort::CreatedDesc, &deep_request)
                        .expect("deep page");
                assert_eq!(page.items.len(), PAGE as usize);
                black_box(page);
            };
            let mut g = c.benchmark_group(concat!($prefix, "_keyset"));
            g.bench_function("layer_first_page", |b| {
                rec.measure(b, concat!($prefix, "_keyset/layer_first_page"), &mut first)
            });
            g.bench_function("layer_depth_10000", |b| {
                rec.measure(b, concat!($prefix, "_keyset/layer_depth_10000"), &mut deep)
            });
            g.bench_function("raw_diesel_first_page", |b| {
                rec.measure(b, concat!($prefix, "_keyset/raw_diesel_first_page"), || {
                    black_box(
                        $raw::newest_page(&mut *raw, f.deep.0, i64::from(PAGE) + 1)
                            .expect("raw first page"),
                    );
                })
            });
            g.finish();
            rec.paired(
                concat!($prefix, "_keyset"),
                ("layer_depth_10000", &mut deep),
                ("layer_first_page", &mut first),
                300,
                10,
            );
        }

        // create one task (each iteration commits one row)
        {
            const TITLE: &str = "Call the plumber about the kitchen sink";
            let mut layer = || {
                let task =
                    f.db.tasks()
                        .create(
                            f.creator,
                            &NewTask {
                                title: TITLE,
                                description: None,
                                priority: None,
                            },
                        )
                        .expect("layer create");
                black_box(task);
            };
            let mut raw_diesel = || {
                let task = RawNewTask::new(f.creator.0, TITLE);
                assert_eq!($raw::create(&mut *raw, &task).expect("raw create"), 1);
                black_box(task);
            };
            let mut g = c.benchmark_group(concat!($prefix, "_create"));
            g.bench_function("layer", |b| {
                rec.measure(b, concat!($prefix, "_create/layer"), &mut layer)
            });
            g.bench_function("raw_diesel", |b| {
                rec.measure(b, concat!($prefix, "_create/raw_diesel"), &mut raw_diesel)
            });
            g.finish();
            rec.paired(
                concat!($prefix, "_create"),
                ("layer", &mut layer),
                ("raw_diesel", &mut raw_diesel),
                200,
                10,
            );
        }
    }};
}

/// The PostgreSQL connection inside the layer's connection.
fn pg_inner(conn: &mut DbConnection) -> &mut diesel::PgConnection {
    match conn {
        DbConnection::Postgres(pg) => pg,
        other => panic!("expected PostgreSQL, got {other:?}"),
    }
}

/// The SQLite connection inside the layer's connection.
fn sqlite_inner(conn: &mut DbConnection) -> &mut diesel::SqliteConnection {
    match conn {
        DbConnection::Sqlite(lite) => lite,
        other => panic!("expected SQLite, got {other:?}"),
    }
}

fn postgres(c: &mut Criterion, rec: &Recorder) {
    let pg = support::PgBenchDb::create("taskstore_bench_domain");
    let f = fixture(support::layer(&pg.url, POOL_SIZE), "pg");
    let (mut raw, mut raw2) = (support::raw_pg(&pg.url), support::raw_pg(&pg.url));
    if let Some(cpu) = support::bench_cpu() {
        // This thread, both raw connections' backends and every pooled connection's backend
        // on one core (see `support::bench_cpu`).
        support::pin(0, cpu);
        let mut held: Vec<Conn> = (0..POOL_SIZE)
            .map(|_| f.db.conn().expect("checkout"))
            .collect();
        let mut pids: Vec<i32> = held
            .iter_mut()
            .map(|c| support::backend_pid(pg_inner(c)))
            .collect();
        drop(held);
        pids.push(support::backend_pid(&mut raw));
        pids.push(support::backend_pid(&mut raw2));
        for pid in &pids {
            support::pin(*pid, cpu);
        }
        eprintln!("[pg] pinned this thread and backends {pids:?} to cpu {cpu}");
    }
    backend_benches!(
        c,
        rec,
        "pg",
        &f,
        (&mut raw, &mut raw2),
        raw_pg_ops,
        pg_inner
    );
    prepared_plans(&f.db);
    drop(raw);
    drop(f);
}

#[derive(QueryableByName)]
struct PreparedPlans {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    generic_plans: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    custom_plans: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    statement: String,
}

/// How PostgreSQL planned the layer's cached listing statements on the pooled connection the
/// benchmarks used: a statement that keeps getting custom plans is planned on every execution.
fn prepared_plans(db: &Database) {
    let rows: Vec<PreparedPlans> = db
        .run(|c| {
            Ok(diesel::sql_query(
                "SELECT generic_plans, custom_plans, statement FROM pg_prepared_statements \
                 WHERE statement LIKE '%ORDER BY%' ORDER BY statement",
            )
            .load(c)?)
        })
        .expect("pg_prepared_statements");
    for r in rows {
        let shape = if r.statement.contains(") < (") {
            "keyset page after a cursor"
        } else if r.statement.contains("\"priority\" >=") {
            "filtered page"
        } else {
            "first page"
        };
        eprintln!(
            "[pg] prepared {shape}: generic plans {}, custom plans {}",
            r.generic_plans, r.custom_plans
        );
    }
}

fn sqlite(c: &mut Criterion, rec: &Recorder) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let path = path.to_str().expect("utf-8 temp path");
    let f = fixture(
        support::layer(&format!("sqlite://{path}"), POOL_SIZE),
        "lite",
    );
    let (mut raw, mut raw2) = (support::raw_sqlite(path), support::raw_sqlite(path));
    if let Some(cpu) = support::bench_cpu() {
        support::pin(0, cpu);
    }
    backend_benches!(
        c,
        rec,
        "sqlite",
        &f,
        (&mut raw, &mut raw2),
        raw_sqlite_ops,
        sqlite_inner
    );
}

/// The tables the RESULTS.md section is made from.
fn summary(rec: &Recorder) {
    println!("\n## Criterion: median µs per operation (one function after the other)\n");
    println!("| benchmark | median µs |");
    println!("|---|---:|");
    for id in rec.0.borrow().keys() {
        if let Some(ns) = rec.median(id) {
            println!("| {id} | {:.1} |", ns / 1e3);
        }
    }
    println!("\n## Paired (alternating blocks): medians and ratios\n");
    println!("| comparison | A | A median µs | B | B median µs | ratio | SPEC §9 target |");
    println!("|---|---|---:|---|---:|---:|---|");
    for p in rec.1.borrow().iter() {
        let (a, b) = p.medians();
        let (ratio, target) = match p.name.rsplit('_').next() {
            // Depth vs first page: a cost ratio, time(A) / time(B).
            Some("keyset") => (a / b, "depth 10 000 / first ≤ 1.2"),
            // Layer vs raw: a throughput ratio, time(raw) / time(layer).
            _ if p.name.ends_with("_get") => (b / a, "layer / raw ≥ 0.95"),
            _ if p.name.ends_with("_pool_only") => (b / a, "(diagnostic: pool alone)"),
            _ if p.name.ends_with("_aa_control") => (b / a, "(control: 1.0 ± noise)"),
            _ if p.name.ends_with("_create") => (b / a, "layer / raw ≥ 0.90"),
            _ => (b / a, "layer / raw (reported)"),
        };
        println!(
            "| {} | {} | {:.1} | {} | {:.1} | {ratio:.3} | {target} |",
            p.name,
            p.a,
            a / 1e3,
            p.b,
            b / 1e3
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rec = Recorder::default();
    postgres(&mut c, &rec);
    sqlite(&mut c, &rec);
    c.final_summary();
    summary(&rec);
}
