//! [`Users`] and [`Tasks`]: the repository functions of [`crate::repo`] on a [`Database`],
//! each call on a connection checked out for it.

use super::Database;
use crate::error::Result;
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

impl<'a> Tasks<'a> {
    pub(super) fn new(db: &'a Database) -> Self {
        Self { db }
    }

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
