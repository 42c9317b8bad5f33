//! Human tables by default, JSON with `--json`; errors on stderr.

use std::io::Write;
use std::process::ExitCode;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use serde_json::json;
use taskstore::models::{Page, Task, TaskStats, User};

use crate::exit::{self, InputError};

/// Where command results go.
pub struct Out {
    pub json: bool,
}

fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(headers.iter().copied());
    t
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Out {
    /// Prints a serialisable value as pretty JSON.
    pub fn json_value<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, value)?;
        writeln!(stdout)?;
        Ok(())
    }

    /// A line of text (suppressed with `--json`, which prints `json` instead).
    pub fn text_or_json<T: Serialize>(&self, text: &str, json: &T) -> anyhow::Result<()> {
        if self.json {
            return self.json_value(json);
        }
        println!("{text}");
        Ok(())
    }

    pub fn user(&self, user: &User) -> anyhow::Result<()> {
        if self.json {
            return self.json_value(user);
        }
        let mut t = table(&["field", "value"]);
        t.add_row(vec!["id".into(), user.id.to_string()]);
        t.add_row(vec!["email".into(), user.email.clone()]);
        t.add_row(vec!["first name".into(), opt(&user.first_name)]);
        t.add_row(vec!["last name".into(), opt(&user.last_name)]);
        t.add_row(vec!["active".into(), user.is_active.to_string()]);
        t.add_row(vec!["created".into(), ts(&user.created_at)]);
        t.add_row(vec!["updated".into(), ts(&user.updated_at)]);
        println!("{t}");
        Ok(())
    }

    pub fn users(&self, page: &Page<User>) -> anyhow::Result<()> {
        if self.json {
            return self.json_value(page);
        }
        let mut t = table(&["id", "email", "name", "active", "created"]);
        for u in &page.items {
            let name = [u.first_name.as_deref(), u.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            t.add_row(vec![
                u.id.to_string(),
                u.email.clone(),
                name,
                u.is_active.to_string(),
                ts(&u.created_at),
            ]);
        }
        println!("{t}");
        print_cursor(page.next_cursor.as_deref());
        Ok(())
    }

    pub fn task(&self, task: &Task) -> anyhow::Result<()> {
        if self.json {
            return self.json_value(task);
        }
        let mut t = table(&["field", "value"]);
        t.add_row(vec!["id".into(), task.id.to_string()]);
        t.add_row(vec!["title".into(), task.title.clone()]);
        t.add_row(vec!["description".into(), opt(&task.description)]);
        t.add_row(vec!["priority".into(), task.priority.to_string()]);
        t.add_row(vec!["completed".into(), task.completed.to_string()]);
        t.add_row(vec!["version".into(), task.version.to_string()]);
        t.add_row(vec!["created".into(), ts(&task.created_at)]);
        t.add_row(vec!["updated".into(), ts(&task.updated_at)]);
        t.add_row(vec![
            "completed at".into(),
            task.completed_at.as_ref().map(ts).unwrap_or_default(),
        ]);
        println!("{t}");
        Ok(())
    }

    pub fn tasks(&self, page: &Page<Task>) -> anyhow::Result<()> {
        if self.json {
            return self.json_value(page);
        }
        println!("{}", tasks_table(&page.items));
        print_cursor(page.next_cursor.as_deref());
        Ok(())
    }

    pub fn stats(&self, stats: &TaskStats) -> anyhow::Result<()> {
        if self.json {
            return self.json_value(stats);
        }
        let mut t = table(&["total", "completed", "open", "p1", "p2", "p3", "p4", "p5"]);
        let mut row = vec![
            stats.total.to_string(),
            stats.completed.to_string(),
            stats.open.to_string(),
        ];
        row.extend(stats.by_priority.iter().map(ToString::to_string));
        t.add_row(row);
        println!("{t}");
        Ok(())
    }
}

/// A compact task table (also used by the demo).
pub fn tasks_table(tasks: &[Task]) -> Table {
    let mut t = table(&["id", "title", "prio", "done", "ver", "created"]);
    for task in tasks {
        t.add_row(vec![
            task.id.to_string(),
            task.title.clone(),
            task.priority.to_string(),
            if task.completed {
                "yes".into()
            } else {
                "".into()
            },
            task.version.to_string(),
            ts(&task.created_at),
        ]);
    }
    t
}

fn print_cursor(cursor: Option<&str>) {
    match cursor {
        Some(c) => println!("next page: --cursor {c}"),
        None => println!("(last page)"),
    }
}

/// Prints `err` on stderr (JSON with `--json`) and returns its exit code.
pub fn report_error(err: &anyhow::Error, json: bool) -> ExitCode {
    let code = exit::code_for(err);
    // Library errors are scrubbed at construction; scrub the whole chain again in case a
    // context message carried something (defence in depth for the redaction promise).
    let message = taskstore::redact::scrub(&format!("{err:#}"));
    let mut stderr = std::io::stderr().lock();
    if json {
        let mut obj = json!({ "kind": kind_name(err), "message": message, "exit_code": code });
        if let Some(taskstore::Error::Validation { field, reason }) =
            err.downcast_ref::<taskstore::Error>()
        {
            obj["field"] = json!(field);
            obj["reason"] = json!(reason);
        }
        if let Some(input) = err.downcast_ref::<InputError>() {
            obj["details"] = json!(
                input
                    .details
                    .iter()
                    .map(|d| taskstore::redact::scrub(d))
                    .collect::<Vec<_>>()
            );
        }
        let _ = writeln!(stderr, "{}", json!({ "error": obj }));
    } else {
        let _ = writeln!(stderr, "error: {message}");
        if let Some(input) = err.downcast_ref::<InputError>() {
            for d in &input.details {
                let _ = writeln!(stderr, "  {}", taskstore::redact::scrub(d));
            }
        }
    }
    ExitCode::from(code)
}

/// Whether `--json` is among the arguments, looked at before parsing them so that a usage
/// error can honour it. Arguments after `--` are values, not flags.
pub fn json_requested(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// Prints a command-line parsing outcome: `--help` and `--version` on stdout as usual; a usage
/// error on stderr with exit code 2, as one JSON object (`kind` "usage") under `--json`.
pub fn report_usage(err: &clap::Error, json: bool) -> ExitCode {
    let code = u8::try_from(err.exit_code()).unwrap_or(exit::USAGE);
    if !json || !err.use_stderr() {
        let _ = err.print();
        return ExitCode::from(code);
    }
    // `StyledStr`'s Display is the plain text: no ANSI escapes whatever the terminal.
    let rendered = err.render().to_string();
    let message = rendered.trim().trim_start_matches("error: ");
    let message = taskstore::redact::scrub(message);
    let obj = json!({ "kind": "usage", "message": message, "exit_code": code });
    let _ = writeln!(std::io::stderr().lock(), "{}", json!({ "error": obj }));
    ExitCode::from(code)
}

fn kind_name(err: &anyhow::Error) -> &'static str {
    if let Some(input) = err.downcast_ref::<InputError>() {
        return input.kind_name();
    }
    err.downcast_ref::<taskstore::Error>()
        .map_or("internal", taskstore::Error::kind_name)
}
