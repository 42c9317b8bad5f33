//! The behavioural basics every deployment shape must keep (issue 13): users, tasks,
//! transactions, keyset pagination, import and statistics, run as one tour on a connected
//! [`Database`]. The deployment tests (`tests/deploy_*.rs`) run it through each shape (Unix
//! socket, PgBouncer in transaction mode, TLS, a DML-only runtime role, row-level security:
//! [`tour_owner_scoped`]); the full behavioural suite of each capability stays in its own file
//! on both backends.

use std::collections::HashSet;

use taskstore::models::{
    NewTask, NewUser, PageRequest, TaskFilter, TaskImport, TaskPatch, TaskSort, UserPatch,
};
use taskstore::tx::TxOptions;
use taskstore::{Database, Error};

use super::factories::{HASH, email};

/// Runs the tour; panics (with `label`) on the first behaviour that does not hold.
pub fn tour(label: &str, db: &Database) {
    run(label, db, false);
}

/// The tour with its transactions scoped to their owner (`TxOptions::owner`), as an
/// application whose runtime role is under row-level security (docs/row-security.sql) opens
/// them; the handles need nothing more.
pub fn tour_owner_scoped(label: &str, db: &Database) {
    run(label, db, true);
}

fn run(label: &str, db: &Database, scoped: bool) {
    // Users: create, read back by id and by email (case-insensitive), update, count, list.
    let address = email();
    let user = db
        .users()
        .create(&NewUser {
            email: &address.to_uppercase(),
            password_hash: HASH,
            first_name: Some("Ada"),
            last_name: None,
        })
        .unwrap_or_else(|e| panic!("{label}: create user: {e}"));
    assert_eq!(user.email, address, "{label}: email stored lower-case");
    assert_eq!(db.users().get(user.id).expect("get user").id, user.id);
    assert_eq!(
        db.users().get_by_email(&address).expect("get by email").id,
        user.id
    );
    let renamed = db
        .users()
        .update(
            user.id,
            &UserPatch {
                last_name: Some(Some("Lovelace".into())),
                ..UserPatch::default()
            },
        )
        .unwrap_or_else(|e| panic!("{label}: update user: {e}"));
    assert_eq!(renamed.last_name.as_deref(), Some("Lovelace"));
    assert!(db.users().count().expect("count") >= 1);
    assert!(
        db.users()
            .list(&PageRequest::first(100))
            .expect("list users")
            .items
            .iter()
            .any(|u| u.id == user.id),
        "{label}: the new user is listed"
    );
    let other = super::factories::user(db);

    // Tasks: create, get, update with a version guard, complete, delete; owner scoping.
    let task = db
        .tasks()
        .create(
            user.id,
            &NewTask {
                title: "through the shape",
                description: Some("tour"),
                priority: Some(4),
            },
        )
        .unwrap_or_else(|e| panic!("{label}: create task: {e}"));
    assert_eq!(db.tasks().get(user.id, task.id).expect("get task"), task);
    assert!(
        matches!(
            db.tasks().get(other.id, task.id),
            Err(Error::NotFound { .. })
        ),
        "{label}: another user's task id behaves like a missing one"
    );
    let patch = TaskPatch {
        title: Some("renamed".into()),
        ..TaskPatch::default()
    };
    let updated = db
        .tasks()
        .update(user.id, task.id, &patch, Some(task.version))
        .unwrap_or_else(|e| panic!("{label}: update task: {e}"));
    assert_eq!(updated.version, task.version + 1);
    assert!(
        matches!(
            db.tasks()
                .update(user.id, task.id, &patch, Some(task.version)),
            Err(Error::StaleVersion { .. })
        ),
        "{label}: a stale version is refused"
    );
    assert!(
        db.tasks()
            .complete(user.id, task.id)
            .expect("complete")
            .completed
    );

    // Many at once, then keyset pagination across every page with no duplicate and no gap.
    let titles: Vec<String> = (0..25).map(|i| format!("bulk {i:02}")).collect();
    let new: Vec<NewTask> = titles
        .iter()
        .map(|t| NewTask {
            title: t,
            ..NewTask::default()
        })
        .collect();
    assert_eq!(
        db.tasks().create_many(user.id, &new).expect("create_many"),
        25
    );
    let mut seen = HashSet::new();
    let mut cursor = None;
    loop {
        let page = db
            .tasks()
            .list(
                user.id,
                &TaskFilter::default(),
                TaskSort::TitleAsc,
                &PageRequest::after(7, cursor.take()),
            )
            .unwrap_or_else(|e| panic!("{label}: list page: {e}"));
        for t in &page.items {
            assert!(seen.insert(t.id), "{label}: task {} listed twice", t.id);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26, "{label}: every task listed once");

    // Import (COPY on PostgreSQL), then statistics.
    let items: Vec<TaskImport> = (0..10)
        .map(|i| TaskImport {
            title: format!("imported {i}"),
            priority: Some(1 + (i % 5) as i16),
            ..TaskImport::default()
        })
        .collect();
    assert_eq!(db.tasks().import(user.id, &items).expect("import"), 10);
    let stats = db.tasks().stats(user.id).expect("stats");
    assert_eq!(stats.total, 36, "{label}: stats total");
    assert_eq!(stats.completed, 1, "{label}: stats completed");

    // Transactions: Ok commits, Err rolls back and comes back unchanged.
    let opts = if scoped {
        TxOptions::new().owner(user.id)
    } else {
        TxOptions::new()
    };
    let kept = db
        .with_transaction_opts(opts, |c| {
            taskstore::repo::tasks::create(
                c,
                user.id,
                &NewTask {
                    title: "committed",
                    ..NewTask::default()
                },
            )
        })
        .unwrap_or_else(|e| panic!("{label}: with_transaction commit: {e}"));
    assert_eq!(
        db.tasks().get(user.id, kept.id).expect("committed").title,
        "committed"
    );
    let mut rolled_back = None;
    let err = db
        .with_transaction_opts(opts, |c| {
            let t = taskstore::repo::tasks::create(
                c,
                user.id,
                &NewTask {
                    title: "rolled back",
                    ..NewTask::default()
                },
            )?;
            rolled_back = Some(t.id);
            Err::<(), _>(Error::validation("test", "roll back"))
        })
        .expect_err("the closure's error");
    assert!(matches!(err, Error::Validation { .. }), "{label}: {err}");
    assert!(
        matches!(
            db.tasks().get(user.id, rolled_back.expect("ran")),
            Err(Error::NotFound { .. })
        ),
        "{label}: a rolled-back create left nothing"
    );

    // Deleting the user cascades to their tasks.
    db.users().delete(user.id).expect("delete user");
    assert!(matches!(
        db.tasks().get(user.id, kept.id),
        Err(Error::NotFound { .. })
    ));
    db.users().delete(other.id).expect("delete other");
}
