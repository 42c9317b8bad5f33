//! The workload `bench/callgrind_overhead.sh` counts instructions of (issue 14): `CALLS` point
//! queries by (owner, id), either through the layer (`db.tasks().get`: checkout, the query,
//! return) or with raw Diesel on a dedicated connection, inside `measured_loop`, the only
//! function callgrind collects in (`--toggle-collect`). Set-up, seeding and a warm-up of the
//! same calls (statement caches, the pool's connection) run outside it.
//!
//! ```text
//! cargo run --release --example call_overhead -- sqlite|postgres layer|raw CALLS
//! ```
//!
//! SQLite: a temporary file. PostgreSQL: database `taskstore_bench_call_overhead` on the shared
//! server (`TASKSTORE_BENCH_PG_URL`), dropped at the end.

#[path = "../benches/support/mod.rs"]
mod support;

use anyhow::{Result, bail};
use taskstore::models::{TaskId, UserId};

enum Side {
    Layer(taskstore::Database),
    RawSqlite(diesel::SqliteConnection),
    RawPg(diesel::PgConnection),
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, side, calls] = args.as_slice() else {
        bail!("usage: call_overhead sqlite|postgres layer|raw CALLS");
    };
    let calls: usize = calls.parse()?;
    let dir = tempfile::tempdir()?;
    let (url, _pg) = match backend.as_str() {
        "sqlite" => (
            format!("sqlite://{}", dir.path().join("bench.db").display()),
            None,
        ),
        "postgres" => {
            let pg = support::PgBenchDb::create("taskstore_bench_call_overhead");
            (pg.url.clone(), Some(pg))
        }
        other => bail!("unknown backend {other}"),
    };
    let db = support::layer(&url, 1);
    let mut rng = support::Rng::new(0x7A5C_5704_E000_0007);
    let seeded = support::seed(&db, "co", 4, 250, &mut rng);
    let keys: Vec<(UserId, TaskId)> = (0..64)
        .map(|_| {
            let (owner, ids) = &seeded.users[rng.below(seeded.users.len())];
            (*owner, ids[rng.below(ids.len())])
        })
        .collect();
    let mut side = match (backend.as_str(), side.as_str()) {
        (_, "layer") => Side::Layer(db),
        ("sqlite", "raw") => Side::RawSqlite(support::raw_sqlite(
            url.strip_prefix("sqlite://").expect("sqlite url"),
        )),
        ("postgres", "raw") => Side::RawPg(support::raw_pg(&url)),
        (_, other) => bail!("unknown side {other}"),
    };
    // Warm-up: the same calls once, outside the measured function.
    measured_loop(&mut side, &keys, keys.len())?;
    let found = measured_loop(&mut side, &keys, calls)?;
    println!("calls={calls} found={found}");
    Ok(())
}

/// The calls counted; never inlined, so that callgrind can collect inside it alone.
#[inline(never)]
fn measured_loop(side: &mut Side, keys: &[(UserId, TaskId)], calls: usize) -> Result<usize> {
    let mut found = 0;
    for i in 0..calls {
        let (owner, id) = keys[i % keys.len()];
        let hit = match side {
            Side::Layer(db) => std::hint::black_box(db.tasks().get(owner, id)).is_ok(),
            Side::RawSqlite(c) => {
                std::hint::black_box(support::raw_sqlite_ops::get(c, owner.0, id.0)?).is_some()
            }
            Side::RawPg(c) => {
                std::hint::black_box(support::raw_pg_ops::get(c, owner.0, id.0)?).is_some()
            }
        };
        found += usize::from(hit);
    }
    Ok(found)
}
