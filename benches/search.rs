//! The task list's text search at two owner sizes, through the layer, on both backends
//! (issue 14 item 6; SPEC §9: "text search with no match, owner with 100 000 tasks vs owner
//! with 1 000: p50 at 100 000 ≤ 5× p50 at 1 000").
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-shared cargo bench --bench search [-- --quick]
//! ```
//!
//! One owner with 100 000 tasks and one with 1 000, seeded through the layer's bulk path
//! (`tasks::import`) in a fresh database (PostgreSQL: `taskstore_bench_search` on the shared
//! server, `TASKSTORE_BENCH_PG_URL`; SQLite: a temporary file), migrations applied by the
//! layer, then `ANALYZE`. Each pattern is listed newest first, page of 20, by
//! `db.tasks().list(...)`, alternating the two owners call by call so that the machine's load
//! hits both alike; the table gives the p50 and p99 of each and the ratio of the p50s.
//!
//! Patterns: `zzzq` (4 characters, found nowhere: the target), `zz` (2 characters, found
//! nowhere: too short for a trigram, so the owner's rows are scanned — linear by design),
//! `quarterly` (in every title: the page fills from the first rows).

mod support;

use std::time::Instant;

use taskstore::Database;
use taskstore::models::{PageRequest, TaskFilter, TaskSort, UserId};

const BIG: usize = 100_000;
const SMALL: usize = 1_000;
const PATTERNS: &[(&str, &str)] = &[
    ("zzzq", "no match, 4 chars (target)"),
    ("zz", "no match, 2 chars (scan)"),
    ("quarterly", "in every row"),
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn run(backend: &str, db: &Database, iterations: usize) {
    let started = Instant::now();
    let mut rng = support::Rng::new(0x5EA4_C400_0014_0006);
    let big = support::create_user(db, &format!("{backend}big@bench.example"));
    let small = support::create_user(db, &format!("{backend}small@bench.example"));
    for chunk in support::task_imports(BIG, &mut rng).chunks(10_000) {
        db.tasks().import(big, chunk).expect("seed the big owner");
    }
    db.tasks()
        .import(small, &support::task_imports(SMALL, &mut rng))
        .expect("seed the small owner");
    support::analyze(db);
    eprintln!(
        "{backend}: seeded {BIG} + {SMALL} tasks in {:.1?}",
        started.elapsed()
    );

    for (pattern, what) in PATTERNS {
        let filter = TaskFilter {
            search: Some((*pattern).into()),
            ..TaskFilter::default()
        };
        let list = |owner: UserId| {
            let t = Instant::now();
            let page = db
                .tasks()
                .list(
                    owner,
                    &filter,
                    TaskSort::CreatedDesc,
                    &PageRequest::first(20),
                )
                .expect("list");
            std::hint::black_box(page);
            t.elapsed().as_secs_f64() * 1e3
        };
        // Warm-up: statements prepared, pages cached.
        for _ in 0..3 {
            list(big);
            list(small);
        }
        let (mut b, mut s) = (Vec::new(), Vec::new());
        for i in 0..iterations {
            if i % 2 == 0 {
                b.push(list(big));
                s.push(list(small));
            } else {
                s.push(list(small));
                b.push(list(big));
            }
        }
        b.sort_by(f64::total_cmp);
        s.sort_by(f64::total_cmp);
        let (pb, ps) = (percentile(&b, 0.5), percentile(&s, 0.5));
        println!(
            "| {backend} | `{pattern}` ({what}) | {:.3} | {:.3} | {:.3} | {:.3} | {:.2}× |",
            pb,
            percentile(&b, 0.99),
            ps,
            percentile(&s, 0.99),
            pb / ps
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `cargo bench` passes `--bench`; anything else Criterion-style is ignored here.
    let iterations = if quick { 20 } else { 200 };
    println!(
        "| backend | search | p50 ms, {BIG} tasks | p99 ms, {BIG} | p50 ms, {SMALL} tasks | p99 ms, {SMALL} | p50 ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    {
        let pg = support::PgBenchDb::create("taskstore_bench_search");
        let db = support::layer(&pg.url, 2);
        run("postgres", &db, iterations);
    }
    {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("search.db");
        let db = support::layer(&format!("sqlite://{}", path.display()), 2);
        run("sqlite", &db, iterations);
    }
}
