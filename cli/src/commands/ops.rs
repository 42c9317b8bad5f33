//! `migrate`, `health` and `config`.

use std::process::ExitCode;
use std::time::Instant;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;
use taskstore::migrate;

use super::Ctx;
use crate::cli::MigrateAction;
use crate::exit;

pub fn migrate(ctx: &Ctx, action: MigrateAction) -> anyhow::Result<ExitCode> {
    let db = ctx.connect_without_migrating()?;
    match action {
        MigrateAction::Run => {
            let applied = migrate::run(&db)?;
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
            let status = migrate::status(&db)?;
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
        MigrateAction::Revert { steps } => {
            let reverted = migrate::revert(&db, steps)?;
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
    let started = Instant::now();
    let db = ctx.connect_without_migrating()?;
    let health = db.health()?;
    let status = migrate::status(&db)?;
    let current = status.is_current();
    let names = |v: &[migrate::MigrationInfo]| v.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    let connect_ms = started.elapsed().as_secs_f64() * 1e3;
    if ctx.out.json {
        ctx.out.json_value(&json!({
            "status": if current { "ok" } else { "schema_not_current" },
            "backend": db.backend(),
            "database_url": db.config().database_url().redacted(),
            "latency_ms": health.latency.as_secs_f64() * 1e3,
            "connect_ms": connect_ms,
            "schema_version": health.schema_version,
            "pending_migrations": names(&status.pending),
            "unknown_migrations": status.unknown,
            "changed_migrations": names(&status.changed),
            "pool": db.stats(),
        }))?;
    } else {
        println!(
            "database   {} ({})",
            db.config().database_url().redacted(),
            db.backend()
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
        println!("pool       {}", db.pool_state());
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
