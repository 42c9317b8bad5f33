//! User operations. Each takes `&mut DbConnection`, so it runs standalone or inside
//! `with_transaction` unchanged.
//!
//! Every public function opens a `debug` span named `users.<function>` carrying the user's id
//! where there is one; emails, names and password hashes are never recorded.

use diesel::prelude::*;
use uuid::Uuid;

use super::{cursor, not_found};
use crate::conn::DbConnection;
use crate::error::{Error, Result};
use crate::models::user::UserRow;
use crate::models::{NewUser, Page, PageRequest, Ts, User, UserId, UserPatch, now, validate};
use crate::schema::users;

const ENTITY: &str = "user";
/// Cursor sort code of the user listing (task sorts use 1..=8).
const SORT_BY_ID: u8 = 100;

/// Creates a user: validated, email normalised, id and timestamps generated. An email that is
/// already taken is [`Error::Conflict`] on `users.email`.
///
/// ```no_run
/// # fn demo(conn: &mut taskstore::DbConnection) -> taskstore::Result<()> {
/// use taskstore::models::NewUser;
/// let user = taskstore::repo::users::create(conn, &NewUser {
///     email: "Ann@Example.com",
///     password_hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
///     first_name: Some("Ann"),
///     last_name: None,
/// })?;
/// assert_eq!(user.email, "ann@example.com");
/// # Ok(()) }
/// ```
#[tracing::instrument(name = "users.create", level = "debug", skip_all)]
pub fn create(conn: &mut DbConnection, new: &NewUser<'_>) -> Result<User> {
    let user = new.into_user()?;
    diesel::insert_into(users::table)
        .values(UserRow::from(&user))
        .execute(conn)?;
    Ok(user)
}

/// The user with this id, or [`Error::NotFound`].
#[tracing::instrument(name = "users.get", level = "debug", skip_all, fields(%id))]
pub fn get(conn: &mut DbConnection, id: UserId) -> Result<User> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()?
        .ok_or(not_found(ENTITY))
}

/// The user with this email, compared after normalisation (so case-insensitively), or
/// [`Error::NotFound`]. A string that cannot be an address is a validation error.
#[tracing::instrument(name = "users.get_by_email", level = "debug", skip_all)]
pub fn get_by_email(conn: &mut DbConnection, email: &str) -> Result<User> {
    let email = validate::email(email)?;
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .optional()?
        .ok_or(not_found(ENTITY))
}

/// Applies a partial update (validated first); `updated_at` moves. An empty name is stored as
/// absent (cleared). An empty patch ([`UserPatch::is_empty`]) changes nothing and returns the
/// user as it is. A taken email is [`Error::Conflict`]; a missing user is [`Error::NotFound`].
#[tracing::instrument(name = "users.update", level = "debug", skip_all, fields(%id))]
pub fn update(conn: &mut DbConnection, id: UserId, patch: &UserPatch) -> Result<User> {
    let email = patch.validate()?;
    if patch.is_empty() {
        return get(conn, id);
    }
    let changes = (
        users::updated_at.eq(Ts(now())),
        email.as_deref().map(|e| users::email.eq(e)),
        patch
            .password_hash
            .as_deref()
            .map(|h| users::password_hash.eq(h)),
        patch.first_name_change().map(|n| users::first_name.eq(n)),
        patch.last_name_change().map(|n| users::last_name.eq(n)),
        patch.is_active.map(|a| users::is_active.eq(a)),
    );
    diesel::update(users::table.find(id))
        .set(changes)
        .returning(users::all_columns)
        .get_result(conn)
        .optional()?
        .ok_or(not_found(ENTITY))
}

/// Activates or deactivates a user.
#[tracing::instrument(name = "users.set_active", level = "debug", skip_all, fields(%id, active = active))]
pub fn set_active(conn: &mut DbConnection, id: UserId, active: bool) -> Result<User> {
    update(
        conn,
        id,
        &UserPatch {
            is_active: Some(active),
            ..UserPatch::default()
        },
    )
}

/// Deletes a user and, by the foreign key's `ON DELETE CASCADE`, all their tasks: one
/// statement, so one transaction (SQLite connections run with `foreign_keys = ON`).
#[tracing::instrument(name = "users.delete", level = "debug", skip_all, fields(%id))]
pub fn delete(conn: &mut DbConnection, id: UserId) -> Result<()> {
    let n = diesel::delete(users::table.find(id)).execute(conn)?;
    if n == 0 {
        return Err(not_found(ENTITY));
    }
    Ok(())
}

/// Users in id order (UUID v7, so creation order), keyset-paginated.
#[tracing::instrument(name = "users.list", level = "debug", skip_all, fields(limit = page.limit, after_cursor = page.cursor.is_some()))]
pub fn list(conn: &mut DbConnection, page: &PageRequest) -> Result<Page<User>> {
    let limit = page.checked_limit()?;
    let mut query = users::table
        .select(User::as_select())
        .order(users::id.asc())
        .limit(i64::from(limit) + 1)
        .into_boxed();
    if let Some(c) = page.cursor.as_deref() {
        let (after, key) = cursor::decode(Uuid::nil(), SORT_BY_ID, c)?;
        if !key.is_empty() {
            return Err(cursor::invalid("is damaged"));
        }
        query = query.filter(users::id.gt(UserId(after)));
    }
    let mut items = query.load(conn)?;
    let next_cursor = super::trim_page(&mut items, limit)
        .map(|last| cursor::encode(Uuid::nil(), SORT_BY_ID, last.id.0, &[]));
    Ok(Page { items, next_cursor })
}

/// How many users there are.
#[tracing::instrument(name = "users.count", level = "debug", skip_all)]
pub fn count(conn: &mut DbConnection) -> Result<i64> {
    users::table.count().get_result(conn).map_err(Error::from)
}
