//! Where binary `COPY` starts to beat a multi-row `INSERT` on PostgreSQL (issue 14): the
//! threshold `tasks::create_many` switches at (`COPY_FROM_ROWS` in `src/repo/tasks/bulk.rs`).
//!
//! ```text
//! cargo run --release --example copy_threshold [-- REPS=200]
//! ```
//!
//! For each batch size, the same rows (the layer's columns, through a raw-Diesel `table!` with
//! the same SQL) are written REPS times with `diesel::insert_into(..).values(&rows)` and REPS
//! times with `diesel::copy_from(..).from_insertable(&rows)`, alternating (which goes first
//! alternates too), each inside a transaction that is rolled back, so that the commit (the
//! same for both) and the table's growth stay out of the comparison. Prints the median time of
//! each and their ratio. Database `taskstore_bench_copy_threshold` on the shared server
//! (`TASKSTORE_BENCH_PG_URL`), dropped at the end.

#[path = "../benches/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::Result;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use support::pg_schema::{self, tasks};
use support::{RawNewTask, now_micros};
use uuid::Uuid;

const SIZES: &[usize] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096];

fn main() -> Result<()> {
    let reps: usize = std::env::args().nth(1).map_or(Ok(200), |s| s.parse())?;
    let pg = support::PgBenchDb::create("taskstore_bench_copy_threshold");
    let db = support::layer(&pg.url, 1);
    let owner = db
        .users()
        .create(&taskstore::models::NewUser {
            email: "copy-threshold@example.com",
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            first_name: None,
            last_name: None,
        })?
        .id;
    drop(db);
    let mut conn = support::raw_pg(&pg.url);
    let titles: Vec<String> = (0..SIZES[SIZES.len() - 1])
        .map(|i| format!("task number {i} with a title of about fifty chars"))
        .collect();
    println!("| rows | INSERT median | COPY median | COPY / INSERT time |");
    println!("|---:|---:|---:|---:|");
    for &n in SIZES {
        let now = now_micros();
        let raw: Vec<RawNewTask<'_>> = titles[..n]
            .iter()
            .map(|t| RawNewTask {
                created_at: now,
                updated_at: now,
                ..RawNewTask::new(owner.0, t)
            })
            .collect();
        let (mut insert, mut copy) = (Vec::new(), Vec::new());
        for rep in 0..reps {
            // Fresh ids per repetition (the rows are rolled back anyway).
            let rows: Vec<pg_schema::NewTask<'_>> = raw
                .iter()
                .map(|t| pg_schema::NewTask {
                    id: Uuid::now_v7(),
                    ..pg_schema::new_row(t)
                })
                .collect();
            let first_copy = rep % 2 == 1;
            for which in [first_copy, !first_copy] {
                let d = rolled_back(&mut conn, |c| {
                    if which {
                        diesel::copy_from(tasks::table)
                            .from_insertable(&rows)
                            .execute(c)
                    } else {
                        diesel::insert_into(tasks::table).values(&rows).execute(c)
                    }
                })?;
                if which { &mut copy } else { &mut insert }.push(d);
            }
        }
        let (i, c) = (median(&mut insert), median(&mut copy));
        println!(
            "| {n} | {:.1} µs | {:.1} µs | {:.3} |",
            i.as_secs_f64() * 1e6,
            c.as_secs_f64() * 1e6,
            c.as_secs_f64() / i.as_secs_f64()
        );
    }
    Ok(())
}

/// Times `f` inside a transaction that is rolled back.
fn rolled_back(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> QueryResult<usize>,
) -> Result<Duration> {
    conn.batch_execute("BEGIN")?;
    let t0 = Instant::now();
    let n = f(conn)?;
    let d = t0.elapsed();
    std::hint::black_box(n);
    conn.batch_execute("ROLLBACK")?;
    Ok(d)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}
