//! The layer's side of `bench/sqlmodel/run.sh` (issue 14 item 4): the workloads of
//! `bench/sqlmodel/workloads.py`, written as an application using the layer would write them,
//! on the same database and the same seeded rows, measured the same way.
//!
//! ```text
//! cargo run --release --example sqlmodel_compare -- migrate URL
//! cargo run --release --example sqlmodel_compare -- URL KEYS_FILE SECONDS [WORKLOAD...]
//! ```
//!
//! `migrate` applies the layer's embedded migrations to URL (what `taskstore migrate run` does),
//! so that the benchmark needs no release build of the CLI.
//!
//! KEYS_FILE holds `owner<TAB>id` lines of seeded tasks (the file `workloads.py` reads too);
//! the owners of those lines are the owners whose pages `list` reads. WORKLOAD is any of `get`,
//! `list`, `create`, `bulk` (default: all four). Each runs for SECONDS (at least one operation
//! per thread) at 1 and then 4 threads, every thread on one shared [`taskstore::Database`] with a
//! pool of 4 (all opened up front), a connection checked out per call — the shape of
//! `workloads.py`'s engine (a `QueuePool` of 4) and its Session per call. One line per workload
//! and thread count: `layer <workload> <threads> <units per second>`.
//!
//! - `get`: `tasks().get(owner, id)` of a random key; operations per second;
//! - `list`: `tasks().list` of a random owner's open tasks (`completed = false`), newest first
//!   (`-created`), first page of 20; operations per second;
//! - `create`: `tasks().create` of one task for an owner made for the run; operations per second;
//! - `bulk/create_many`: `tasks().create_many` of 100 000 tasks divided among the threads (each
//!   thread writes 100 000 / threads rows for an owner of its own, in one call: one transaction,
//!   binary `COPY` on PostgreSQL); rows per second.

#[path = "../benches/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use taskstore::Database;
use taskstore::models::{NewTask, PageRequest, TaskFilter, TaskId, TaskSort, UserId};
use uuid::Uuid;

/// Rows of one bulk operation, divided among the threads (as in `workloads.py`).
const BULK: usize = 100_000;
/// The pool behind every thread (`workloads.py`: `pool_size=4, max_overflow=0`).
const POOL: u32 = 4;
const WORKLOADS: [&str; 4] = ["get", "list", "create", "bulk"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, url] = args.as_slice()
        && cmd == "migrate"
    {
        let db = support::layer(url, 1);
        let mut conn = db.conn()?;
        let applied = taskstore::migrate::run(&mut conn)?;
        println!(
            "schema at the layer's latest migration ({} applied by this call, any others at connect)",
            applied.len()
        );
        return Ok(());
    }
    if args.len() < 3 {
        bail!(
            "usage: sqlmodel_compare migrate URL | sqlmodel_compare URL KEYS_FILE SECONDS [get|list|create|bulk ...] \
             (KEYS_FILE: owner<TAB>task id per line)"
        );
    }
    let url = &args[0];
    let keys = read_keys(&args[1])?;
    let seconds: f64 = args[2]
        .parse()
        .with_context(|| format!("SECONDS must be a number, not {:?}", args[2]))?;
    let chosen: Vec<&str> = if args.len() > 3 {
        args[3..].iter().map(String::as_str).collect()
    } else {
        WORKLOADS.to_vec()
    };
    if let Some(bad) = chosen.iter().find(|w| !WORKLOADS.contains(w)) {
        bail!("unknown workload {bad:?}: use get, list, create or bulk");
    }
    let owners: Vec<UserId> = keys
        .iter()
        .map(|(o, _)| o.0)
        .collect::<BTreeSet<Uuid>>()
        .into_iter()
        .map(UserId)
        .collect();
    let keys: Arc<[(UserId, TaskId)]> = keys.into();
    let owners: Arc<[UserId]> = owners.into();
    let db = support::layer(url, POOL);
    let run_tag = Uuid::now_v7().simple().to_string();

    for workload in chosen {
        for threads in [1, 4] {
            let (name, rate) = match workload {
                "get" => {
                    let keys = Arc::clone(&keys);
                    let rate = measure(&db, threads, seconds, move |db, _, rng| {
                        let (owner, id) = keys[rng.below(keys.len())];
                        std::hint::black_box(db.tasks().get(owner, id)?);
                        Ok(1)
                    })?;
                    ("get", rate)
                }
                "list" => {
                    let owners = Arc::clone(&owners);
                    let filter = TaskFilter {
                        completed: Some(false),
                        ..TaskFilter::default()
                    };
                    let rate = measure(&db, threads, seconds, move |db, _, rng| {
                        let owner = owners[rng.below(owners.len())];
                        let page = db.tasks().list(
                            owner,
                            &filter,
                            TaskSort::CreatedDesc,
                            &PageRequest::first(20),
                        )?;
                        ensure!(
                            !page.items.is_empty(),
                            "seeded owner {owner} has no open task"
                        );
                        std::hint::black_box(page);
                        Ok(1)
                    })?;
                    ("list", rate)
                }
                "create" => {
                    let owner = support::create_user(
                        &db,
                        &format!("layer-creator-{run_tag}-{threads}@bench.example"),
                    );
                    let rate = measure(&db, threads, seconds, move |db, _, rng| {
                        let i = rng.below(1_000_000);
                        let title =
                            format!("Task {i}: review the quarterly report section {}", i % 1000);
                        let description = format!("Details for task {i}: check the figures.");
                        let new = NewTask {
                            title: &title,
                            description: (i % 2 == 0).then_some(description.as_str()),
                            priority: Some(1 + (i % 5) as i16),
                        };
                        std::hint::black_box(db.tasks().create(owner, &new)?);
                        Ok(1)
                    })?;
                    ("create", rate)
                }
                "bulk" => {
                    let per = BULK / threads;
                    let bulk_owners: Arc<[UserId]> = (0..threads)
                        .map(|t| {
                            support::create_user(
                                &db,
                                &format!("layer-bulk-{run_tag}-{threads}-{t}@bench.example"),
                            )
                        })
                        .collect();
                    let rate = measure(&db, threads, seconds, move |db, t, _| {
                        let texts: Vec<(String, String)> = (0..per)
                            .map(|i| {
                                (
                                    format!(
                                        "Task {i}: review the quarterly report section {}",
                                        i % 1000
                                    ),
                                    format!("Details for task {i}: check the figures."),
                                )
                            })
                            .collect();
                        let rows: Vec<NewTask<'_>> = texts
                            .iter()
                            .enumerate()
                            .map(|(i, (title, description))| NewTask {
                                title,
                                description: (i % 2 == 0).then_some(description.as_str()),
                                priority: Some(1 + (i % 5) as i16),
                            })
                            .collect();
                        let written = db.tasks().create_many(bulk_owners[t], &rows)?;
                        ensure!(written == per, "create_many wrote {written} rows of {per}");
                        Ok(written as u64)
                    })?;
                    ("bulk/create_many", rate)
                }
                _ => unreachable!("checked above"),
            };
            println!("layer {name} {threads} {rate:.0}");
        }
    }
    Ok(())
}

/// Units per second of `op` (which returns the units it did: 1, or rows) run in a loop by
/// `threads` threads until `seconds` have passed, each thread finishing the operation it is in
/// (so at least one each); the time runs until the last thread is done.
fn measure<F>(db: &Database, threads: usize, seconds: f64, op: F) -> Result<f64>
where
    F: Fn(&Database, usize, &mut support::Rng) -> Result<u64> + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (db, op, stop, barrier) = (
                db.clone(),
                Arc::clone(&op),
                Arc::clone(&stop),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || -> Result<u64> {
                let mut rng = support::Rng::new(0x5014_0DE1 + t as u64);
                let mut units = 0;
                barrier.wait();
                loop {
                    units += op(&db, t, &mut rng)?;
                    if stop.load(Ordering::Relaxed) {
                        return Ok(units);
                    }
                }
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
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn read_keys(path: &str) -> Result<Vec<(UserId, TaskId)>> {
    let keys = std::fs::read_to_string(path)
        .with_context(|| format!("reading the keys file {path}"))?
        .lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(n, l)| {
            let (o, i) = l
                .split_once('\t')
                .with_context(|| format!("{path} line {}: expected owner<TAB>task id", n + 1))?;
            Ok((UserId(o.parse()?), TaskId(i.parse()?)))
        })
        .collect::<Result<Vec<_>>>()?;
    ensure!(
        !keys.is_empty(),
        "{path} holds no key: seed the database first"
    );
    Ok(keys)
}
