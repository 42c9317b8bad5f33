//! Task operations, always scoped by the owner's id.
//!
//! Every query carries `user_id = <owner>`: a task id that belongs to another user behaves
//! exactly like one that does not exist ([`Error::NotFound`] with entity `task`, nothing
//! changed, zero rows counted). Each function takes `&mut DbConnection`, so it runs standalone
//! or inside `with_transaction` unchanged; the ones that write several statements open a
//! transaction themselves (a savepoint when already inside one).
//!
//! The code is split by what it does, and every function is re-exported here
//! (`taskstore::repo::tasks::get` is the one path to use): `one.rs` (create, get, update,
//! complete, reopen, delete: one task by its id), `bulk.rs` (create many, import through
//! `COPY`, complete/delete many by ids), `list.rs` (the listing query: filters, sort orders,
//! keyset pages), `sort_key.rs` (what a listing's cursor carries) and `stats.rs`.
//!
//! Every public function opens a `debug` span named `tasks.<function>` carrying the owner's
//! id, the task's id and the size of a batch; what a task says (title, description, search
//! text) is never recorded.

mod bulk;
mod list;
mod one;
mod sort_key;
mod stats;

pub use bulk::{COPY_FROM_ROWS, complete_many, create_many, delete_many, import};
pub use list::list;
pub(crate) use list::{list_query, use_fts};
pub use one::{complete, create, create_with_id, delete, get, reopen, update};
pub use stats::stats;

use crate::conn::DbConnection;
use crate::error::{DbErrorKind, Error, Result};
use crate::models::UserId;
use crate::schema::users;
use diesel::prelude::*;

use super::not_found;

/// The entity named by [`Error::NotFound`] for a missing task.
const ENTITY: &str = "task";

/// Fails with `NotFound { entity: "user" }` unless `owner` exists.
fn require_owner(conn: &mut DbConnection, owner: UserId) -> Result<()> {
    users::table
        .find(owner)
        .select(users::id)
        .first::<UserId>(conn)
        .optional()?
        .map(|_| ())
        .ok_or(not_found("user"))
}

/// A foreign-key failure while inserting tasks means the owner is gone (deleted concurrently).
fn owner_missing(e: Error) -> Error {
    match e {
        Error::Database {
            kind: DbErrorKind::ForeignKeyViolation,
            ..
        } => not_found("user"),
        other => other,
    }
}
