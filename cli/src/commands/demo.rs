//! `taskstore demo`: a tour of the layer on a demo user, safe to run again and again.

use std::process::ExitCode;

use serde_json::json;
use taskstore::Error;
use taskstore::models::{NewTask, NewUser, PageRequest, TaskFilter, TaskSort};
use taskstore::repo::tasks as task_repo;
use taskstore::tx::TxOptions;

use super::Ctx;
use crate::output::tasks_table;

const DEMO_EMAIL: &str = "demo@taskstore.example";
/// A syntactically valid argon2id PHC string; the layer never sees plain passwords.
const DEMO_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$ZGVtby1zYWx0$ZGVtby1oYXNoLW5vdC1hLXJlYWwtb25l";

const TITLES: &[&str] = &[
    "Write the quarterly report",
    "Review pull request #42",
    "Book flights to Lisbon",
    "Renew TLS certificates",
    "Plan the team offsite",
    "Fix flaky integration test",
    "Update dependencies",
    "Call the accountant",
    "Draft the 100% uptime postmortem",
    "Rotate database_password",
    "Buy coffee beans",
    "Prepare conference talk",
    "Archive old tickets",
    "Benchmark keyset pagination",
    "Water the plants",
    "Clean up feature flags",
    "Reply to customer email",
    "Back up the laptop",
    "Read the PostgreSQL 15 release notes",
    "Sketch the new dashboard",
    "Schedule dentist appointment",
    "Refactor config loading",
    "Translate the README",
    "Pay the electricity bill",
];

pub fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    // The demo reads back what it has just written: from the primary, not a lagging replica.
    let db = ctx.connect()?.on_primary();
    let say = |s: String| {
        if !ctx.out.json {
            println!("{s}");
        }
    };
    say(format!(
        "taskstore demo on {} ({})",
        db.config().database_url().redacted(),
        db.backend()
    ));
    say("migrations are applied; the schema is current.".into());

    let reset = match db.users().get_by_email(DEMO_EMAIL) {
        Ok(old) => {
            db.users().delete(old.id)?;
            true
        }
        Err(Error::NotFound { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    say(if reset {
        "reset: the previous demo user and all their tasks were deleted (cascade) and are created afresh.".into()
    } else {
        "first run: creating the demo user.".into()
    });

    // Mixed case on purpose: emails are stored normalised to lower case.
    let user = db.users().create(&NewUser {
        email: "Demo@TaskStore.example",
        password_hash: DEMO_HASH,
        first_name: Some("Dana"),
        last_name: Some("Demo"),
    })?;
    say(format!(
        "\nuser {} <{}> created (password hash stored, never printed)",
        user.id, user.email
    ));

    let new_tasks: Vec<NewTask> = TITLES
        .iter()
        .enumerate()
        .map(|(i, t)| NewTask {
            title: t,
            description: None,
            priority: Some((i % 5 + 1) as i16),
        })
        .collect();
    let created = db.tasks().create_many(user.id, &new_tasks)?;
    say(format!(
        "{created} tasks created in one batched transaction"
    ));

    let first_page = db.tasks().list(
        user.id,
        &TaskFilter::default(),
        TaskSort::CreatedAsc,
        &PageRequest {
            limit: 6,
            cursor: None,
        },
    )?;
    let done_ids: Vec<_> = first_page.items.iter().step_by(2).map(|t| t.id).collect();
    let completed = db.tasks().complete_many(user.id, &done_ids)?;
    say(format!(
        "{completed} tasks completed with one complete-many call"
    ));

    let filter = TaskFilter {
        completed: Some(false),
        priority_min: Some(3),
        ..TaskFilter::default()
    };
    let page1 = db.tasks().list(
        user.id,
        &filter,
        TaskSort::PriorityDesc,
        &PageRequest {
            limit: 5,
            cursor: None,
        },
    )?;
    say("\nopen tasks with priority >= 3, highest first, page 1 (keyset pagination):".into());
    say(tasks_table(&page1.items).to_string());
    let page2 = match &page1.next_cursor {
        Some(cursor) => {
            let p = db.tasks().list(
                user.id,
                &filter,
                TaskSort::PriorityDesc,
                &PageRequest {
                    limit: 5,
                    cursor: Some(cursor.clone()),
                },
            )?;
            say("page 2, from the opaque cursor of page 1:".into());
            say(tasks_table(&p.items).to_string());
            Some(p)
        }
        None => None,
    };

    // A transaction that commits, and one that fails and rolls back.
    let committed = db.with_transaction_opts(TxOptions::new().owner(user.id), |conn| {
        let t = task_repo::create(
            conn,
            user.id,
            &NewTask {
                title: "Written inside a transaction",
                description: Some("committed with its completion"),
                priority: Some(5),
            },
        )?;
        task_repo::complete(conn, user.id, t.id)
    })?;
    let before = db.tasks().stats(user.id)?.total;
    let failed: Result<(), Error> =
        db.with_transaction_opts(TxOptions::new().owner(user.id), |conn| {
            task_repo::create(
                conn,
                user.id,
                &NewTask {
                    title: "This task is rolled back",
                    description: None,
                    priority: None,
                },
            )?;
            Err(Error::validation(
                "demo",
                "a deliberate failure to show the rollback",
            ))
        });
    let after = db.tasks().stats(user.id)?.total;
    say(format!(
        "\ntransaction 1 committed: task {} created and completed (version {})",
        committed.id, committed.version
    ));
    say(format!(
        "transaction 2 failed ({}) and rolled back: task count {before} before, {after} after",
        failed
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default()
    ));

    let stats = db.tasks().stats(user.id)?;
    say(format!(
        "\nstatistics: {} tasks, {} completed, {} open; by priority 1..5: {:?}",
        stats.total, stats.completed, stats.open, stats.by_priority
    ));
    let pool = db.stats();
    say(format!(
        "pool: {}; {} acquisitions, p50 {} µs, p99 {} µs, {} timeouts, {} connections opened",
        pool.pool,
        pool.acquisitions,
        pool.acquire_latency.p50_us,
        pool.acquire_latency.p99_us,
        pool.timeouts,
        pool.connections_created
    ));
    say(format!(
        "\ntry: taskstore task list --user {DEMO_EMAIL} --sort -priority --limit 5"
    ));

    if ctx.out.json {
        ctx.out.json_value(&json!({
            "reset": reset,
            "user": user,
            "tasks_created": created,
            "completed_many": completed,
            "page1": page1,
            "page2": page2,
            "transaction_committed": committed,
            "rolled_back_count_unchanged": before == after,
            "stats": stats,
            "pool": pool,
        }))?;
    }
    Ok(ExitCode::SUCCESS)
}
