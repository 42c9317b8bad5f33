//! Point-query throughput of the layer, for `bench/pgbench.sh` (SPEC §9: get ≥ 0.90× pgbench at
//! 1 and 4 threads; 64 threads on a pool of 8 ≥ 0.95× 8 threads).
//!
//! ```text
//! cargo run --release --example throughput -- prepare OUT_DIR
//! cargo run --release --example throughput -- run URL KEYS_FILE MODE THREADS POOL SECONDS
//! ```
//!
//! `prepare` creates the database `taskstore_bench_throughput` on the shared server (kept for
//! pgbench; the script drops it), seeds 100 users × 1 000 tasks through the layer's bulk path,
//! and writes 128 random (owner, id) pairs of the seeded set to `OUT_DIR/keys.tsv` plus the SQL
//! of the point query as Diesel sends it to `OUT_DIR/get.sql` (the script checks that it is
//! bench/point_query.sql).
//!
//! `run` measures MODE for SECONDS with THREADS threads, each picking a random pair of
//! KEYS_FILE per operation, and prints `ops_per_sec=<n>`:
//! - `layer`: `db.tasks().get(owner, id)` on a `Database` with a pool of POOL (all opened up
//!   front), a connection checked out per call, as an application handler would;
//! - `raw`: raw Diesel, one dedicated `PgConnection` per thread, the same query;
//! - `r2d2`: raw Diesel on a plain `diesel::r2d2` pool of POOL (Diesel's own
//!   `ConnectionManager`, no customisation, no deadlines), a connection checked out per call:
//!   what any blocking pool costs, to tell it apart from what the layer adds.

#[path = "../benches/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use diesel::prelude::*;
use taskstore::models::{TaskId, UserId};
use uuid::Uuid;

const DB_NAME: &str = "taskstore_bench_throughput";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("prepare") if args.len() == 2 => prepare(&args[1]),
        Some("run") if args.len() == 7 => {
            let threads: usize = args[4].parse().context("THREADS")?;
            let pool: u32 = args[5].parse().context("POOL")?;
            let seconds: f64 = args[6].parse().context("SECONDS")?;
            let keys = read_keys(&args[2])?;
            let ops = run(&args[1], &keys, &args[3], threads, pool, seconds)?;
            println!("ops_per_sec={ops:.0}");
            Ok(())
        }
        _ => bail!(
            "usage: throughput prepare OUT_DIR | throughput run URL KEYS_FILE layer|raw|r2d2 THREADS POOL SECONDS"
        ),
    }
}

fn prepare(out: &str) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let pg = support::PgBenchDb::create(DB_NAME).keep();
    let db = support::layer(&pg.url, 2);
    let mut rng = support::Rng::new(0x7A5C_5704_E000_0009);
    let seeded = support::seed(&db, "tp", 100, 1_000, &mut rng);
    let mut keys = String::new();
    for _ in 0..128 {
        let (owner, ids) = &seeded.users[rng.below(seeded.users.len())];
        let id = ids[rng.below(ids.len())];
        keys.push_str(&format!("{}\t{}\n", owner.0, id.0));
    }
    std::fs::write(format!("{out}/keys.tsv"), keys)?;
    std::fs::write(format!("{out}/get.sql"), format!("{}\n", get_sql()))?;
    println!("{}", pg.url);
    Ok(())
}

/// The SQL Diesel sends for `tasks::get` (the raw baseline builds the same query on `Pg`).
fn get_sql() -> String {
    use support::pg_schema::{Task, tasks};
    let q = tasks::table
        .filter(tasks::id.eq(Uuid::nil()))
        .filter(tasks::user_id.eq(Uuid::nil()))
        .select(Task::as_select())
        .limit(1);
    let sql = diesel::debug_query::<diesel::pg::Pg, _>(&q).to_string();
    sql.split(" -- binds").next().unwrap_or(&sql).to_owned()
}

fn read_keys(path: &str) -> Result<Vec<(UserId, TaskId)>> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {path}"))?
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (o, i) = l.split_once('\t').context("owner<TAB>id")?;
            Ok((UserId(o.parse()?), TaskId(i.parse()?)))
        })
        .collect()
}

fn run(
    url: &str,
    keys: &[(UserId, TaskId)],
    mode: &str,
    threads: usize,
    pool: u32,
    seconds: f64,
) -> Result<f64> {
    let db = match mode {
        "layer" => Some(support::layer(url, pool)),
        "raw" | "r2d2" => None,
        other => bail!("unknown mode {other}"),
    };
    let r2d2_pool = (mode == "r2d2")
        .then(|| {
            diesel::r2d2::Pool::builder()
                .max_size(pool)
                .min_idle(Some(pool))
                .test_on_check_out(false)
                .build(diesel::r2d2::ConnectionManager::<diesel::PgConnection>::new(url))
        })
        .transpose()?;
    let keys: Arc<[(UserId, TaskId)]> = keys.into();
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let keys = Arc::clone(&keys);
            let stop = Arc::clone(&stop);
            let barrier = Arc::clone(&barrier);
            let db = db.clone();
            let r2d2_pool = r2d2_pool.clone();
            let mut raw = (mode == "raw").then(|| support::raw_pg(url));
            std::thread::spawn(move || -> Result<u64> {
                let mut rng = support::Rng::new(0x1234 + t as u64);
                let mut ops = 0u64;
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    let (owner, id) = keys[rng.below(keys.len())];
                    if let Some(db) = &db {
                        std::hint::black_box(db.tasks().get(owner, id)?);
                    } else {
                        let mut pooled = match &r2d2_pool {
                            Some(p) => Some(p.get()?),
                            None => None,
                        };
                        let c = match (&mut pooled, raw.as_mut()) {
                            (Some(p), _) => &mut **p,
                            (None, Some(c)) => c,
                            (None, None) => unreachable!("one of the two is set"),
                        };
                        std::hint::black_box(
                            support::raw_pg_ops::get(c, owner.0, id.0)?
                                .context("seeded task missing")?,
                        );
                    }
                    ops += 1;
                }
                Ok(ops)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for h in handles {
        total += h.join().expect("bench thread panicked")?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(db) = &db {
        let s = db.stats();
        eprintln!(
            "{mode} threads={threads} pool={pool}: {total} ops in {elapsed:.2} s; acquire p50={} µs p99={} µs, timeouts={}",
            s.acquire_latency.p50_us, s.acquire_latency.p99_us, s.timeouts
        );
    }
    Ok(total as f64 / elapsed)
}
