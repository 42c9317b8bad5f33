//! Repositories: the user and task operations of SPEC §3, each written once against
//! `&mut DbConnection`, so the same function runs on either backend, standalone or inside a
//! transaction.
//!
//! [`users`] and [`tasks`] are free functions taking the connection first, like
//! `users::get(conn, id)`. [`Database::users`] and [`Database::tasks`] are a thin convenience
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

use crate::db::Database;
use crate::error::{Error, Result};
use crate::models::{
    NewTask, NewUser, Page, PageRequest, Task, TaskFilter, TaskId, TaskImport, TaskPatch, TaskSort,
    TaskStats, User, UserId, UserPatch,
};

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

impl Database {
    /// User operations, each on a connection checked out for the call.
    pub fn users(&self) -> Users<'_> {
        Users { db: self }
    }

    /// Task operations, each on a connection checked out for the call.
    pub fn tasks(&self) -> Tasks<'_> {
        Tasks { db: self }
    }
}

/// [`users`] on a [`Database`]: the same names and arguments, minus the connection.
#[derive(Debug, Clone, Copy)]
pub struct Users<'a> {
    db: &'a Database,
}

impl Users<'_> {
    /// See [`users::create`].
    #[track_caller]
    pub fn create(&self, new: &NewUser<'_>) -> Result<User> {
        self.db.run(|c| users::create(c, new))
    }

    /// See [`users::get`].
    #[track_caller]
    pub fn get(&self, id: UserId) -> Result<User> {
        self.db.run(|c| users::get(c, id))
    }

    /// See [`users::get_by_email`].
    #[track_caller]
    pub fn get_by_email(&self, email: &str) -> Result<User> {
        self.db.run(|c| users::get_by_email(c, email))
    }

    /// See [`users::update`].
    #[track_caller]
    pub fn update(&self, id: UserId, patch: &UserPatch) -> Result<User> {
        self.db.run(|c| users::update(c, id, patch))
    }

    /// See [`users::set_active`].
    #[track_caller]
    pub fn set_active(&self, id: UserId, active: bool) -> Result<User> {
        self.db.run(|c| users::set_active(c, id, active))
    }

    /// See [`users::delete`].
    #[track_caller]
    pub fn delete(&self, id: UserId) -> Result<()> {
        self.db.run(|c| users::delete(c, id))
    }

    /// See [`users::list`].
    #[track_caller]
    pub fn list(&self, page: &PageRequest) -> Result<Page<User>> {
        self.db.run(|c| users::list(c, page))
    }

    /// See [`users::count`].
    #[track_caller]
    pub fn count(&self) -> Result<i64> {
        self.db.run(users::count)
    }
}

/// [`tasks`] on a [`Database`]: the same names and arguments, minus the connection.
#[derive(Debug, Clone, Copy)]
pub struct Tasks<'a> {
    db: &'a Database,
}

impl Tasks<'_> {
    /// See [`tasks::create`].
    #[track_caller]
    pub fn create(&self, owner: UserId, new: &NewTask<'_>) -> Result<Task> {
        self.db.run(|c| tasks::create(c, owner, new))
    }

    /// See [`tasks::create_many`].
    #[track_caller]
    pub fn create_many(&self, owner: UserId, new: &[NewTask<'_>]) -> Result<usize> {
        self.db.run(|c| tasks::create_many(c, owner, new))
    }

    /// See [`tasks::import`].
    #[track_caller]
    pub fn import(&self, owner: UserId, items: &[TaskImport]) -> Result<usize> {
        self.db.run(|c| tasks::import(c, owner, items))
    }

    /// See [`tasks::get`].
    #[track_caller]
    pub fn get(&self, owner: UserId, id: TaskId) -> Result<Task> {
        self.db.run(|c| tasks::get(c, owner, id))
    }

    /// See [`tasks::update`].
    #[track_caller]
    pub fn update(
        &self,
        owner: UserId,
        id: TaskId,
        patch: &TaskPatch,
        expected_version: Option<i32>,
    ) -> Result<Task> {
        self.db
            .run(|c| tasks::update(c, owner, id, patch, expected_version))
    }

    /// See [`tasks::complete`].
    #[track_caller]
    pub fn complete(&self, owner: UserId, id: TaskId) -> Result<Task> {
        self.db.run(|c| tasks::complete(c, owner, id))
    }

    /// See [`tasks::reopen`].
    #[track_caller]
    pub fn reopen(&self, owner: UserId, id: TaskId) -> Result<Task> {
        self.db.run(|c| tasks::reopen(c, owner, id))
    }

    /// See [`tasks::delete`].
    #[track_caller]
    pub fn delete(&self, owner: UserId, id: TaskId) -> Result<()> {
        self.db.run(|c| tasks::delete(c, owner, id))
    }

    /// See [`tasks::complete_many`].
    #[track_caller]
    pub fn complete_many(&self, owner: UserId, ids: &[TaskId]) -> Result<usize> {
        self.db.run(|c| tasks::complete_many(c, owner, ids))
    }

    /// See [`tasks::delete_many`].
    #[track_caller]
    pub fn delete_many(&self, owner: UserId, ids: &[TaskId]) -> Result<usize> {
        self.db.run(|c| tasks::delete_many(c, owner, ids))
    }

    /// See [`tasks::list`].
    #[track_caller]
    pub fn list(
        &self,
        owner: UserId,
        filter: &TaskFilter,
        sort: TaskSort,
        page: &PageRequest,
    ) -> Result<Page<Task>> {
        self.db.run(|c| tasks::list(c, owner, filter, sort, page))
    }

    /// See [`tasks::stats`].
    #[track_caller]
    pub fn stats(&self, owner: UserId) -> Result<TaskStats> {
        self.db.run(|c| tasks::stats(c, owner))
    }
}
