//! Factories with defaults for users and tasks, and assertions on the layer's errors.

use std::sync::atomic::{AtomicU32, Ordering};

use taskstore::models::{NewTask, NewUser, Task, User, UserId};
use taskstore::{Database, Error};

/// A PHC-shaped password hash (never a real password).
pub const HASH: &str = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

/// A fresh unique email address.
pub fn email() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("user{}@example.com", N.fetch_add(1, Ordering::Relaxed))
}

/// Creates a user with a unique email and default fields.
pub fn user(db: &Database) -> User {
    let email = email();
    db.users()
        .create(&NewUser {
            email: &email,
            password_hash: HASH,
            first_name: Some("Test"),
            last_name: None,
        })
        .expect("create user")
}

/// Creates a task titled `title` with default fields.
pub fn task(db: &Database, owner: UserId, title: &str) -> Task {
    db.tasks()
        .create(
            owner,
            &NewTask {
                title,
                ..NewTask::default()
            },
        )
        .expect("create task")
}

/// Creates `n` tasks titled `task 0`, `task 1`, ... in one batch; returns them in that order.
pub fn tasks(db: &Database, owner: UserId, n: usize) -> Vec<Task> {
    let titles: Vec<String> = (0..n).map(|i| format!("task {i}")).collect();
    let new: Vec<NewTask> = titles
        .iter()
        .map(|t| NewTask {
            title: t,
            ..NewTask::default()
        })
        .collect();
    assert_eq!(db.tasks().create_many(owner, &new).expect("create_many"), n);
    all_tasks(db, owner)
}

/// Every task of `owner`, oldest first.
pub fn all_tasks(db: &Database, owner: UserId) -> Vec<Task> {
    use taskstore::models::{PageRequest, TaskFilter, TaskSort};
    let mut out = Vec::new();
    let mut request = PageRequest::first(1000);
    loop {
        let page = db
            .tasks()
            .list(
                owner,
                &TaskFilter::default(),
                TaskSort::CreatedAsc,
                &request,
            )
            .expect("list");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => request.cursor = Some(c),
            None => return out,
        }
    }
}

/// Asserts a validation error on `field`.
#[track_caller]
pub fn assert_validation<T: std::fmt::Debug>(result: Result<T, Error>, field: &str) {
    match result {
        Err(Error::Validation { field: f, reason }) => {
            assert_eq!(f, field, "wrong field (reason: {reason})");
            assert!(!reason.is_empty());
        }
        other => panic!("expected a validation error on {field}, got {other:?}"),
    }
}

/// Asserts a not-found error for `entity`.
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Error>, entity: &str) {
    match result {
        Err(Error::NotFound { entity: e }) => assert_eq!(e, entity),
        other => panic!("expected {entity} not found, got {other:?}"),
    }
}
