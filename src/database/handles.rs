//! [`Users`] and [`Tasks`]: the repository functions of [`crate::repo`] on a [`Database`],
//! each call on a connection checked out for it.
//!
//! Reads that fail on a connection that died before they ran are run once more on a fresh
//! connection (see `Database::run_read_once_more`). Writes never are: a write that loses its
//! connection after its statement was sent may have been committed, so it fails with
//! [`Error::CommitUnknown`], naming what to read back.

use super::Database;
use crate::error::{Error, Result};
use crate::models::{
    NewTask, NewUser, Page, PageRequest, Task, TaskFilter, TaskId, TaskImport, TaskPatch, TaskSort,
    TaskStats, User, UserId, UserPatch,
};
use crate::repo::{tasks, users};

/// [`users`] on a [`Database`]: the same names and arguments, minus the connection.
#[derive(Debug, Clone, Copy)]
pub struct Users<'a> {
    db: &'a Database,
}

impl<'a> Users<'a> {
    pub(super) fn new(db: &'a Database) -> Self {
        Self { db }
    }

    /// See [`users::create`].
    #[track_caller]
    pub fn create(&self, new: &NewUser<'_>) -> Result<User> {
        self.db.run(|c| users::create(c, new)).map_err(unknown("the user may or may not exist: look it up with users().get_by_email before creating it again"))
    }

    /// See [`users::get`].
    #[track_caller]
    pub fn get(&self, id: UserId) -> Result<User> {
        self.db.run_read_once_more(|c| users::get(c, id))
    }

    /// See [`users::get_by_email`].
    #[track_caller]
    pub fn get_by_email(&self, email: &str) -> Result<User> {
        self.db
            .run_read_once_more(|c| users::get_by_email(c, email))
    }

    /// See [`users::update`].
    #[track_caller]
    pub fn update(&self, id: UserId, patch: &UserPatch) -> Result<User> {
        self.db
            .run(|c| users::update(c, id, patch))
            .map_err(unknown(format_args!(
                "user {id} may or may not be updated: read it back with users().get and compare"
            )))
    }

    /// See [`users::set_active`].
    #[track_caller]
    pub fn set_active(&self, id: UserId, active: bool) -> Result<User> {
        self.db
            .run(|c| users::set_active(c, id, active))
            .map_err(unknown(format_args!(
                "user {id} may or may not be updated: read it back with users().get and compare"
            )))
    }

    /// See [`users::delete`].
    #[track_caller]
    pub fn delete(&self, id: UserId) -> Result<()> {
        self.db
            .run(|c| users::delete(c, id))
            .map_err(unknown(format_args!(
                "user {id} may or may not be deleted: look it up with users().get"
            )))
    }

    /// See [`users::list`].
    #[track_caller]
    pub fn list(&self, page: &PageRequest) -> Result<Page<User>> {
        self.db.run_read_once_more(|c| users::list(c, page))
    }

    /// See [`users::count`].
    #[track_caller]
    pub fn count(&self) -> Result<i64> {
        self.db.run_read_once_more(users::count)
    }
}

/// [`tasks`] on a [`Database`]: the same names and arguments, minus the connection.
///
/// Every call works for a role under PostgreSQL's row-level security (`docs/row-security.sql`):
/// the first task call on each physical connection asks once whether row-level security
/// applies to its session (`row_security_active('tasks')`) and the connection remembers the
/// answer. When it does not (any role while `tasks` has row-level security disabled, which is
/// the default deployment; superusers and `BYPASSRLS` roles; SQLite), calls run exactly as before, with no extra round trip. When it does,
/// each single-statement call runs in a transaction scoped to its owner (`taskstore.user_id`
/// set in the `BEGIN` batch: `BEGIN`, the statement, `COMMIT`, two round trips more), and the
/// calls that open a transaction anyway (`create_many`, `import`) put the owner in their own
/// `BEGIN` batch (no extra round trip). The setting is transaction-local, so nothing reaches
/// another client of a transaction-mode pooler.
#[derive(Debug, Clone, Copy)]
pub struct Tasks<'a> {
    db: &'a Database,
}

impl<'a> Tasks<'a> {
    pub(super) fn new(db: &'a Database) -> Self {
        Self { db }
    }

    /// See [`tasks::create`]. The id is generated here, before the statement is sent: when the
    /// connection is lost after that, the error is [`Error::CommitUnknown`] and names the id
    /// (see [`Tasks::create_with_id`] and the README's "When the outcome is unknown").
    #[track_caller]
    pub fn create(&self, owner: UserId, new: &NewTask<'_>) -> Result<Task> {
        self.create_with_id(owner, TaskId::new_v7(), new)
    }

    /// See [`tasks::create_with_id`]: the caller chooses the id, so that a create whose
    /// outcome is unknown can be checked and repeated (see [`Tasks::create`]).
    #[track_caller]
    pub fn create_with_id(&self, owner: UserId, id: TaskId, new: &NewTask<'_>) -> Result<Task> {
        self.db
            .run_as_owner(owner, |c| tasks::create_with_id(c, owner, id, new))
            .map_err(unknown(format_args!(
                "task {id} may or may not exist: read it with tasks().get(owner, {id}) and, if it \
                 is missing, create it again with tasks().create_with_id(owner, {id}, ..)"
            )))
    }

    /// See [`tasks::create_many`].
    #[track_caller]
    pub fn create_many(&self, owner: UserId, new: &[NewTask<'_>]) -> Result<usize> {
        self.db
            .run(|c| tasks::create_many(c, owner, new))
            .map_err(unknown(format_args!(
                "none or all of the {} tasks may exist: list them before creating them again",
                new.len()
            )))
    }

    /// See [`tasks::import`].
    #[track_caller]
    pub fn import(&self, owner: UserId, items: &[TaskImport]) -> Result<usize> {
        self.db
            .run(|c| tasks::import(c, owner, items))
            .map_err(unknown(format_args!(
                "none or all of the {} imported tasks may exist: list them before importing again",
                items.len()
            )))
    }

    /// See [`tasks::get`].
    #[track_caller]
    pub fn get(&self, owner: UserId, id: TaskId) -> Result<Task> {
        self.db
            .run_read_as_owner(owner, |c| tasks::get(c, owner, id))
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
        self.db.run_as_owner(owner, |c| tasks::update(c, owner, id, patch, expected_version)).map_err(unknown(format_args!("task {id} may or may not be updated: read it with tasks().get and compare its version")))
    }

    /// See [`tasks::complete`].
    #[track_caller]
    pub fn complete(&self, owner: UserId, id: TaskId) -> Result<Task> {
        self.db
            .run_as_owner(owner, |c| tasks::complete(c, owner, id))
            .map_err(unknown(format_args!(
                "task {id} may or may not be completed: read it with tasks().get"
            )))
    }

    /// See [`tasks::reopen`].
    #[track_caller]
    pub fn reopen(&self, owner: UserId, id: TaskId) -> Result<Task> {
        self.db
            .run_as_owner(owner, |c| tasks::reopen(c, owner, id))
            .map_err(unknown(format_args!(
                "task {id} may or may not be reopened: read it with tasks().get"
            )))
    }

    /// See [`tasks::delete`].
    #[track_caller]
    pub fn delete(&self, owner: UserId, id: TaskId) -> Result<()> {
        self.db
            .run_as_owner(owner, |c| tasks::delete(c, owner, id))
            .map_err(unknown(format_args!(
                "task {id} may or may not be deleted: look it up with tasks().get"
            )))
    }

    /// See [`tasks::complete_many`].
    #[track_caller]
    pub fn complete_many(&self, owner: UserId, ids: &[TaskId]) -> Result<usize> {
        self.db
            .run_as_owner(owner, |c| tasks::complete_many(c, owner, ids))
            .map_err(unknown(format_args!(
                "none or all of the {} tasks may be completed: read them back",
                ids.len()
            )))
    }

    /// See [`tasks::delete_many`].
    #[track_caller]
    pub fn delete_many(&self, owner: UserId, ids: &[TaskId]) -> Result<usize> {
        self.db
            .run_as_owner(owner, |c| tasks::delete_many(c, owner, ids))
            .map_err(unknown(format_args!(
                "none or all of the {} tasks may be deleted: read them back",
                ids.len()
            )))
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
        self.db
            .run_read_as_owner(owner, |c| tasks::list(c, owner, filter, sort, page))
    }

    /// See [`tasks::stats`].
    #[track_caller]
    pub fn stats(&self, owner: UserId) -> Result<TaskStats> {
        self.db.run_read_as_owner(owner, |c| tasks::stats(c, owner))
    }
}

/// A write outside any transaction that lost its connection: the statement may have been sent
/// and committed (libpq cannot tell a lost request from a lost answer, and PostgreSQL commits
/// an implicit transaction after it has sent the result), so the outcome is unknown. `what`
/// says what to read back.
fn unknown(what: impl std::fmt::Display) -> impl FnOnce(Error) -> Error {
    move |e| match e {
        e @ Error::Database { .. } if e.is_disconnect() => {
            // libpq's text spans lines; errors are one line.
            let cause = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            Error::CommitUnknown {
                message: format!("the connection was lost during the write ({cause}); {what}"),
            }
        }
        other => other,
    }
}
