//! Repositories: the user and task operations of SPEC §3, each written once against
//! `&mut DbConnection`, so the same function runs on either backend, standalone or inside a
//! transaction.
//!
//! [`users`] and [`tasks`] are free functions taking the connection first, like
//! `users::get(conn, id)`. [`Database::users`](crate::Database::users) and
//! [`Database::tasks`](crate::Database::tasks) are a thin convenience
//! over them that checks a connection out of the pool for each call:
//!
//! ```
//! # fn main() -> Result<(), taskstore::Error> {
//! use taskstore::models::{NewTask, NewUser, PageRequest, TaskFilter, TaskSort};
//! let config = taskstore::Config::from_vars([("DATABASE_URL", "sqlite::memory:")])?;
//! let db = taskstore::Database::connect(&config)?;
//! let user = db.users().create(&NewUser {
//!     email: "ann@example.com",
//!     password_hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
//!     first_name: None,
//!     last_name: None,
//! })?;
//! let task = db.tasks().create(user.id, &NewTask { title: "Write the report", ..NewTask::default() })?;
//! let done = db.tasks().complete(user.id, task.id)?;
//! assert!(done.completed && done.completed_at.is_some());
//! let page = db.tasks().list(user.id, &TaskFilter::default(), TaskSort::CreatedAsc, &PageRequest::default())?;
//! assert_eq!(page.items, vec![done]);
//! # Ok(()) }
//! ```

mod cursor;
mod keyset;
pub mod tasks;
mod uncached;
pub mod users;

use crate::error::Error;

fn not_found(entity: &'static str) -> Error {
    Error::NotFound { entity }
}

/// Cuts a `limit + 1` fetch down to `limit` and returns the last item kept when there was more.
fn trim_page<T>(items: &mut Vec<T>, limit: u32) -> Option<&T> {
    let limit = limit as usize;
    if items.len() > limit {
        items.truncate(limit);
        items.last()
    } else {
        None
    }
}
