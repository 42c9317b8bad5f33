//! The baseline of `bench/http.sh`: the same operations the HTTP load test sends, called
//! directly through the library on `THREADS` threads over one `Database` (pool size from
//! `DATABASE_POOL_MAX_SIZE`) for `SECS` seconds; prints requests/s and p50/p99 latency as one
//! JSON line.
//!
//! ```text
//! DATABASE_URL=... cargo run --release -p taskstore-cli --example library_baseline -- \
//!     get|page|auth_get EMAIL TASK_ID THREADS SECS
//! ```
//! `get` is `tasks().get(owner, id)`; `page` is `tasks().list(owner, default filter, -created,
//! limit 20)`; `auth_get` is what the HTTP handler does for `get`: the user by email (the
//! authentication lookup; the Argon2 check is remembered after the first request), then `get`.

use std::time::{Duration, Instant};

use taskstore::models::{PageRequest, TaskFilter, TaskSort};
use taskstore::{Config, Database, TaskId};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [op, email, task, threads, secs] = args.as_slice() else {
        anyhow::bail!("usage: library_baseline get|page|auth_get EMAIL TASK_ID THREADS SECS");
    };
    let threads: usize = threads.parse()?;
    let secs: u64 = secs.parse()?;
    let task: TaskId = task.parse()?;
    let db = Database::connect(&Config::from_env()?)?;
    let owner = db.users().get_by_email(email)?.id;
    let one = |db: &Database| -> taskstore::Result<()> {
        match op.as_str() {
            "get" => db.tasks().get(owner, task).map(drop),
            "auth_get" => {
                let me = db.users().get_by_email(email)?;
                db.tasks().get(me.id, task).map(drop)
            }
            "page" => db
                .tasks()
                .list(
                    owner,
                    &TaskFilter::default(),
                    TaskSort::CreatedDesc,
                    &PageRequest::after(20, None),
                )
                .map(drop),
            other => panic!("unknown operation {other}"),
        }
    };
    // Warm-up: one second, not measured.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(1) {
        one(&db)?;
    }
    let end = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let db = &db;
                let one = &one;
                scope.spawn(move || {
                    let mut v = Vec::new();
                    while Instant::now() < end {
                        let t = Instant::now();
                        one(db).expect("operation");
                        v.push(t.elapsed());
                    }
                    v
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{{\"op\":\"{op}\",\"threads\":{threads},\"rps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        latencies.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
