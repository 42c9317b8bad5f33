//! `taskstore user ...`

use std::io::IsTerminal;
use std::process::ExitCode;

use taskstore::models::{NewUser, PageRequest, UserPatch};

use super::{Ctx, resolve_user};
use crate::cli::UserAction;

pub fn run(ctx: &Ctx, action: UserAction) -> anyhow::Result<ExitCode> {
    let db = ctx.connect()?;
    let users = db.users();
    match action {
        UserAction::Add {
            email,
            password_hash,
            password,
            first_name,
            last_name,
        } => {
            let password_hash = match password_hash {
                Some(h) if !password => checked_hash(h),
                _ => crate::serve::hash_password(&read_password()?)?,
            };
            let user = users.create(&NewUser {
                email: &email,
                password_hash: &password_hash,
                first_name: first_name.as_deref(),
                last_name: last_name.as_deref(),
            })?;
            ctx.out.user(&user)?;
        }
        UserAction::Get { user } => ctx.out.user(&resolve_user(&db, &user)?)?,
        UserAction::List { limit, cursor } => {
            let page = users.list(&PageRequest { limit, cursor })?;
            ctx.out.users(&page)?;
        }
        UserAction::Update {
            user,
            email,
            first_name,
            last_name,
            password_hash,
            password,
        } => {
            let id = resolve_user(&db, &user)?.id;
            let password_hash = if password {
                Some(crate::serve::hash_password(&read_password()?)?)
            } else {
                password_hash.map(checked_hash)
            };
            let patch = UserPatch {
                email,
                password_hash,
                first_name: first_name.map(Some),
                last_name: last_name.map(Some),
                is_active: None,
            };
            ctx.out.user(&users.update(id, &patch)?)?;
        }
        UserAction::Deactivate { user } => {
            let id = resolve_user(&db, &user)?.id;
            ctx.out.user(&users.set_active(id, false)?)?;
        }
        UserAction::Activate { user } => {
            let id = resolve_user(&db, &user)?.id;
            ctx.out.user(&users.set_active(id, true)?)?;
        }
        UserAction::Delete { user } => {
            let u = resolve_user(&db, &user)?;
            users.delete(u.id)?;
            ctx.out.text_or_json(
                &format!("deleted user {} ({}) and their tasks", u.id, u.email),
                &serde_json::json!({ "deleted": u.id }),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The password for `user add --password`: a prompt without echo on a terminal, else the first
/// line of standard input (its line ending removed). Never an argument or an environment
/// variable, which other processes of the machine can read.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password("password: ")?);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// A `--password-hash` as given, with a warning when it is not a PHC string (`$argon2id$...`,
/// the password-hash crate's format): the layer stores any hash (an application may verify its
/// own scheme), but `taskstore serve` verifies only PHC strings, so that user could not log in
/// there. The hash itself is never printed.
fn checked_hash(hash: String) -> String {
    if password_hash::PasswordHash::new(&hash).is_err() {
        tracing::warn!(
            "--password-hash is not a PHC string such as $argon2id$v=19$...: it is stored as given, \
             but `taskstore serve` cannot verify it, so this user cannot log in there; use \
             --password to have taskstore hash one"
        );
    }
    hash
}
