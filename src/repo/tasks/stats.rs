//! Counts of one owner's tasks.

use diesel::dsl::count_star;
use diesel::prelude::*;

use crate::conn::DbConnection;
use crate::error::Result;
use crate::models::{TaskStats, UserId};
use crate::schema::tasks;

/// Counts of `owner`'s tasks: total, completed, open, and per priority. One grouped query over
/// the owner's rows.
#[tracing::instrument(name = "tasks.stats", level = "debug", skip_all, fields(%owner))]
pub fn stats(conn: &mut DbConnection, owner: UserId) -> Result<TaskStats> {
    let groups: Vec<(i16, bool, i64)> = tasks::table
        .filter(tasks::user_id.eq(owner))
        .group_by((tasks::priority, tasks::completed))
        .select((tasks::priority, tasks::completed, count_star()))
        .load(conn)?;
    let mut stats = TaskStats::default();
    for (priority, completed, n) in groups {
        stats.total += n;
        if completed {
            stats.completed += n;
        } else {
            stats.open += n;
        }
        if let Some(slot) = usize::try_from(priority - 1)
            .ok()
            .and_then(|i| stats.by_priority.get_mut(i))
        {
            *slot += n;
        }
    }
    Ok(stats)
}
