//! `migrate`, `health` and `config`. `migrate` and `health` open one connection, never a pool:
//! a one-shot command has no use for idle connections, and must not take a server's
//! connection slots to read one table. `health` and `migrate status` open it read-only: a
//! check writes nothing (no SQLite file created, no WAL switch).
//!
//! `health` exits 0 when the database answers and the schema is current, 1 when it answers
//! but the schema is not current (pending, changed or unknown migrations), 3 on a
//! configuration error and 7 when the database cannot be reached or does not exist (a missing
//! SQLite file included).

use std::process::ExitCode;
use std::time::Instant;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use taskstore::migrate::{self, Migrator};

use super::Ctx;
use crate::cli::MigrateAction;
use crate::exit;

pub fn migrate(ctx: &Ctx, action: MigrateAction) -> anyhow::Result<ExitCode> {
    let config = ctx.config(&[])?;
    // `status` only looks: it must not create a SQLite file or switch it to WAL.
    let mut conn = if matches!(action, MigrateAction::Status) {
        taskstore::conn::open_read_only(&config, config.migration_target())?
    } else {
        migrate::connect(&config)?
    };
    let migrator = Migrator::from_config(&config);
    match action {
        MigrateAction::Run => {
            let applied = migrator.run(&mut conn)?;
            let text = if applied.is_empty() {
                "no pending migrations".to_owned()
            } else {
                let names: Vec<String> = applied
                    .iter()
                    .map(|a| format!("{} ({} ms)", a.migration.name, a.duration_ms))
                    .collect();
                format!(
                    "applied {} migration(s): {}",
                    applied.len(),
                    names.join(", ")
                )
            };
            ctx.out
                .text_or_json(&text, &json!({ "applied": applied }))?;
        }
        MigrateAction::Status => {
            let status = migrate::status(&mut conn)?;
            if ctx.out.json {
                ctx.out.json_value(&status)?;
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_FULL_CONDENSED);
                t.set_header(["migration", "state"]);
                for m in &status.applied {
                    let state = if status.changed.contains(m) {
                        "applied, CHANGED since"
                    } else {
                        "applied"
                    };
                    t.add_row([m.name.as_str(), state]);
                }
                for m in &status.pending {
                    t.add_row([m.name.as_str(), "pending"]);
                }
                for v in &status.unknown {
                    t.add_row([v.as_str(), "applied by a newer binary (unknown here)"]);
                }
                println!("{t}");
            }
        }
        MigrateAction::Check { .. } => unreachable!("dispatched to check::run: no connection"),
        MigrateAction::Revert { steps } => {
            let reverted = migrator.revert(&mut conn, steps)?;
            let names: Vec<&str> = reverted.iter().map(|m| m.name.as_str()).collect();
            ctx.out.text_or_json(
                &format!(
                    "reverted {} migration(s): {}",
                    reverted.len(),
                    names.join(", ")
                ),
                &json!({ "reverted": reverted }),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn health(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let config = ctx.config(&[])?;
    let started = Instant::now();
    let health = taskstore::health::probe(&config)?;
    let status = &health.migrations;
    let current = status.is_current();
    let names = |v: &[migrate::MigrationInfo]| v.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    let connect_ms = started.elapsed().as_secs_f64() * 1e3;
    // The check opens no pool; what an application's pool would be is the configuration.
    let pool = config.pool();
    if ctx.out.json {
        ctx.out.json_value(&json!({
            "status": if current { "ok" } else { "schema_not_current" },
            "backend": health.backend,
            "database_url": config.database_url().redacted(),
            "latency_ms": health.latency.as_secs_f64() * 1e3,
            "connect_ms": connect_ms,
            "schema_version": health.schema_version,
            "pending_migrations": names(&status.pending),
            "unknown_migrations": status.unknown,
            "changed_migrations": names(&status.changed),
            // Each replica: url (redacted), state (up, lagging, down), lag_ms, error.
            "replicas": health.replicas,
            // The connections this check used, in the shape of the library's `Stats`, beside
            // the pool the other commands would build.
            "pool": {
                "max_size": pool.max_size,
                "min_idle": pool.min_idle,
                "connections_created": health.connections_opened,
                "pool": { "connections": 0 },
            },
        }))?;
    } else {
        println!(
            "database   {} ({})",
            config.database_url().redacted(),
            health.backend
        );
        println!(
            "latency    {:.2} ms (round trip), {connect_ms:.1} ms including connect",
            health.latency.as_secs_f64() * 1e3
        );
        println!(
            "schema     {}",
            health
                .schema_version
                .as_deref()
                .unwrap_or("(no migrations applied)")
        );
        if !status.pending.is_empty() {
            println!(
                "pending    {} (run `taskstore migrate run`)",
                names(&status.pending).join(", ")
            );
        }
        if !status.changed.is_empty() {
            println!(
                "changed    {} (applied migrations must not be edited)",
                names(&status.changed).join(", ")
            );
        }
        if !status.unknown.is_empty() {
            println!(
                "unknown    {} (applied by a newer binary)",
                status.unknown.join(", ")
            );
        }
        for r in &health.replicas {
            let lag = r.lag.map_or("lag unknown".to_owned(), |l| {
                format!("lag {:.0} ms", l.as_secs_f64() * 1e3)
            });
            match &r.error {
                Some(e) => println!("replica    {} {} ({e})", r.url, r.state),
                None => println!("replica    {} {} ({lag})", r.url, r.state),
            }
        }
        let opened = match health.connections_opened {
            1 => "one connection".to_owned(),
            n => format!("{n} connections: one per replica too"),
        };
        println!(
            "pool       configured max {}, min idle {} (this check opens {opened})",
            pool.max_size, pool.min_idle
        );
        println!(
            "status     {}",
            if current { "ok" } else { "schema not current" }
        );
    }
    Ok(if current {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::INTERNAL)
    })
}

pub fn config(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let config = ctx.config(&[])?;
    let rows = config.effective();
    if ctx.out.json {
        let obj: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v, source)| {
                (
                    (*k).to_owned(),
                    json!({ "value": v, "source": source.to_string() }),
                )
            })
            .collect();
        ctx.out.json_value(&obj)?;
    } else {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(["variable", "value", "source"]);
        for (k, v, source) in rows {
            t.add_row([k.to_owned(), v, source.to_string()]);
        }
        println!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}
