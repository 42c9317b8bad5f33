//! `taskstore task ...`

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use taskstore::Error;
use taskstore::models::{NewTask, PageRequest, TaskFilter, TaskId, TaskPatch, TaskSort};

use super::{Ctx, resolve_user};
use crate::cli::TaskAction;

fn task_id(s: &str) -> anyhow::Result<TaskId> {
    Ok(s.parse::<TaskId>()?)
}

fn timestamp(field: &'static str, s: &str) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Error::validation(
                field,
                "expected an RFC 3339 timestamp such as 2026-11-27T10:00:00Z",
            )
            .into()
        })
}

pub fn run(ctx: &Ctx, action: TaskAction) -> anyhow::Result<ExitCode> {
    let db = ctx.connect()?;
    let tasks = db.tasks();
    match action {
        TaskAction::Add {
            user,
            title,
            description,
            priority,
        } => {
            let owner = resolve_user(&db, &user)?.id;
            let task = tasks.create(
                owner,
                &NewTask {
                    title: &title,
                    description: description.as_deref(),
                    priority,
                },
            )?;
            ctx.out.task(&task)?;
        }
        TaskAction::Get { user, task } => {
            let owner = resolve_user(&db, &user)?.id;
            ctx.out.task(&tasks.get(owner, task_id(&task)?)?)?;
        }
        TaskAction::List(args) => {
            let owner = resolve_user(&db, &args.user)?.id;
            let filter = TaskFilter {
                completed: args.completed,
                priority_min: args.priority_min,
                priority_max: args.priority_max,
                search: args.search,
                created_after: args
                    .created_after
                    .as_deref()
                    .map(|s| timestamp("created_after", s))
                    .transpose()?,
                created_before: args
                    .created_before
                    .as_deref()
                    .map(|s| timestamp("created_before", s))
                    .transpose()?,
            };
            let sort: TaskSort = args.sort.parse()?;
            let page = tasks.list(
                owner,
                &filter,
                sort,
                &PageRequest {
                    limit: args.limit,
                    cursor: args.cursor,
                },
            )?;
            ctx.out.tasks(&page)?;
        }
        TaskAction::Update {
            user,
            task,
            title,
            description,
            priority,
            completed,
            expected_version,
        } => {
            let owner = resolve_user(&db, &user)?.id;
            let patch = TaskPatch {
                title,
                description: description.map(Some),
                priority,
                completed,
            };
            ctx.out
                .task(&tasks.update(owner, task_id(&task)?, &patch, expected_version)?)?;
        }
        TaskAction::Done { user, task } => {
            let owner = resolve_user(&db, &user)?.id;
            ctx.out.task(&tasks.complete(owner, task_id(&task)?)?)?;
        }
        TaskAction::Reopen { user, task } => {
            let owner = resolve_user(&db, &user)?.id;
            ctx.out.task(&tasks.reopen(owner, task_id(&task)?)?)?;
        }
        TaskAction::Delete { user, task } => {
            let owner = resolve_user(&db, &user)?.id;
            let id = task_id(&task)?;
            tasks.delete(owner, id)?;
            ctx.out.text_or_json(
                &format!("deleted task {id}"),
                &serde_json::json!({ "deleted": id }),
            )?;
        }
        TaskAction::Import { user, file, format } => {
            let owner = resolve_user(&db, &user)?.id;
            super::io::import(ctx, &db, owner, &file, format)?;
        }
        TaskAction::Export {
            user,
            format,
            output,
        } => {
            let owner = resolve_user(&db, &user)?.id;
            super::io::export(ctx, &db, owner, format, output.as_deref())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
