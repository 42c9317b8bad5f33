//! Latency of the layer's hot path in several deployment shapes, measured in one run so that
//! ratios share their baseline (issue 13: pooler overhead, unprepared statements, row-level
//! security). Driven by `bench/deploy.sh`, which starts the throw-away cluster and PgBouncer.
//!
//! ```text
//! cargo run --release --example deploy_bench -- [--ops get,list,tx,otx] SECONDS ROUNDS MIGRATION_URL CASE...
//! CASE = name|prepared|url        e.g. "direct prepared|true|postgres://..."
//! ```
//!
//! The first case is the baseline. Seeds 20 users × 200 tasks through the first case (once;
//! later runs reuse them), then, per round, runs each operation of each case for SECONDS on
//! one thread (the case order rotates every round) and prints per case and operation the
//! median µs per call and the median of the per-round ratios to the baseline:
//! - `get`: `db.tasks().get(owner, id)`, a random task of one user (one statement; where
//!   row-level security applies to the session, `BEGIN` with the owner, it, `COMMIT`);
//! - `list`: `db.tasks().list(owner, .., first 20)` (likewise);
//! - `tx`: `db.with_transaction(|c| get + stats)` (BEGIN, two statements, COMMIT);
//! - `otx`: the same with `TxOptions::owner` (row-level security's `taskstore.user_id` set in
//!   the BEGIN batch).
//!
//! Seeding uses the migration URL (the owner role), so a case may be a role that row-level
//! security restricts; `--ops` picks the operations (default `get,list,tx`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use taskstore::models::{NewTask, PageRequest, TaskFilter, TaskId, TaskSort, UserId};
use taskstore::tx::TxOptions;
use taskstore::{Config, Database, Error};

struct Case {
    name: String,
    db: Database,
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut ops = vec!["get".to_owned(), "list".to_owned(), "tx".to_owned()];
    if args.first().map(String::as_str) == Some("--ops") && args.len() > 1 {
        ops = args[1].split(',').map(str::to_owned).collect();
        args.drain(..2);
    }
    if args.len() < 4 {
        bail!(
            "usage: deploy_bench SECONDS ROUNDS MIGRATION_URL CASE... (CASE = name|prepared|url)"
        );
    }
    let seconds: f64 = args[0].parse().context("SECONDS")?;
    let rounds: usize = args[1].parse().context("ROUNDS")?;
    let migration_url = &args[2];
    let mut cases = Vec::new();
    for spec in &args[3..] {
        let mut parts = spec.splitn(3, '|');
        let (Some(name), Some(prepared), Some(url)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("CASE must be name|prepared|url: {spec}");
        };
        let config = Config::from_vars([
            ("DATABASE_URL", url),
            ("DATABASE_MIGRATION_URL", migration_url.as_str()),
            ("DATABASE_PREPARED_STATEMENTS", prepared),
            ("DATABASE_POOL_MAX_SIZE", "1"),
            ("DATABASE_POOL_MIN_IDLE", "1"),
        ])?;
        let db = Database::connect(&config).with_context(|| format!("connect case {name}"))?;
        cases.push(Case {
            name: name.to_owned(),
            db,
        });
    }
    let seeder = Database::connect(&Config::from_vars([
        ("DATABASE_URL", migration_url.as_str()),
        ("DATABASE_POOL_MAX_SIZE", "1"),
    ])?)?;
    let (owner, ids) = seed(&seeder)?;
    let slice = Duration::from_secs_f64(seconds);
    // [case][op] -> per-round µs per call
    let mut micros = vec![vec![Vec::new(); ops.len()]; cases.len()];
    for round in 0..rounds {
        for k in 0..cases.len() {
            let c = (k + round) % cases.len();
            for (o, op) in ops.iter().enumerate() {
                let per_call = measure(&cases[c].db, op, owner, &ids, slice)?;
                micros[c][o].push(per_call);
            }
        }
    }
    println!(
        "| case | operation | µs per call (median of {rounds} rounds) | × {} |",
        cases[0].name
    );
    println!("|---|---|---|---|");
    for (c, case) in cases.iter().enumerate() {
        for (o, op) in ops.iter().enumerate() {
            let ratios: Vec<f64> = micros[c][o]
                .iter()
                .zip(&micros[0][o])
                .map(|(x, base)| x / base)
                .collect();
            println!(
                "| {} | {op} | {:.1} | {:.2} |",
                case.name,
                median(micros[c][o].clone()),
                median(ratios)
            );
        }
    }
    Ok(())
}

/// Seeds once: 20 users × 200 tasks; returns the first user and their task ids.
fn seed(db: &Database) -> Result<(UserId, Vec<TaskId>)> {
    if db.users().count()? == 0 {
        for u in 0..20 {
            let email = format!("bench{u}@example.com");
            let user = db.users().create(&taskstore::models::NewUser {
                email: &email,
                password_hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
                first_name: None,
                last_name: None,
            })?;
            let titles: Vec<String> = (0..200).map(|i| format!("task {i}")).collect();
            let new: Vec<NewTask> = titles
                .iter()
                .map(|t| NewTask {
                    title: t,
                    ..NewTask::default()
                })
                .collect();
            db.tasks().create_many(user.id, &new)?;
        }
    }
    let owner = db.users().get_by_email("bench0@example.com")?.id;
    let page = db.tasks().list(
        owner,
        &TaskFilter::default(),
        TaskSort::CreatedAsc,
        &PageRequest::first(200),
    )?;
    Ok((owner, page.items.into_iter().map(|t| t.id).collect()))
}

fn measure(db: &Database, op: &str, owner: UserId, ids: &[TaskId], slice: Duration) -> Result<f64> {
    let start = Instant::now();
    let mut calls = 0u64;
    let mut i = 0usize;
    while start.elapsed() < slice {
        i = (i + 7919) % ids.len();
        let id = ids[i];
        match op {
            "get" => drop(db.tasks().get(owner, id)?),
            "list" => drop(db.tasks().list(
                owner,
                &TaskFilter::default(),
                TaskSort::CreatedAsc,
                &PageRequest::first(20),
            )?),
            "tx" => db.with_transaction(|c| {
                taskstore::repo::tasks::get(c, owner, id)?;
                taskstore::repo::tasks::stats(c, owner)?;
                Ok::<_, Error>(())
            })?,
            "otx" => db.with_transaction_opts(TxOptions::new().owner(owner), |c| {
                taskstore::repo::tasks::get(c, owner, id)?;
                taskstore::repo::tasks::stats(c, owner)?;
                Ok::<_, Error>(())
            })?,
            other => bail!("unknown operation {other}"),
        }
        calls += 1;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / calls as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
