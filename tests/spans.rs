//! Every repository call opens a `debug` span named for the operation (`users.create`,
//! `tasks.get`, ...) that carries the ids it works on, and never an email, a name, a password
//! hash or what a task says. Run on both backends.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::factories::HASH;
use taskstore::models::{
    NewTask, NewUser, PageRequest, TaskFilter, TaskPatch, TaskSort, UserPatch,
};
use tracing_subscriber::fmt::format::FmtSpan;

/// What the subscriber wrote.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with a subscriber on this thread that writes one line per closed span at `debug`
/// and above (`<outer spans>:<name>{<fields>}: <target>: close ...`); returns what it wrote.
fn closed_spans(f: impl FnOnce()) -> String {
    let out = Capture::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

const EMAIL: &str = "span.private@example.com";
const NAME: &str = "Privatename";
const OTHER_HASH: &str = "$argon2id$v=19$m=65536,t=3,p=4$c3BhbnNhbHQ$c3Bhbmhhc2g";
const TITLE: &str = "Private title";
const DESCRIPTION: &str = "Private description";

backend_tests! {
    fn user_spans_carry_ids_and_no_personal_data(db: &TestDb) {
        let mut id = None;
        let out = closed_spans(|| {
            let user = db
                .users()
                .create(&NewUser { email: EMAIL, password_hash: HASH, first_name: Some(NAME), last_name: None })
                .unwrap();
            db.users().get(user.id).unwrap();
            db.users().get_by_email(EMAIL).unwrap();
            let patch = UserPatch { password_hash: Some(OTHER_HASH.into()), ..UserPatch::default() };
            db.users().update(user.id, &patch).unwrap();
            db.users().set_active(user.id, false).unwrap();
            db.users().list(&PageRequest::first(5)).unwrap();
            db.users().count().unwrap();
            id = Some(user.id);
        });
        let id = id.unwrap();
        for span in [
            "users.create".to_owned(),
            format!("users.get{{id={id}}}"),
            "users.get_by_email".to_owned(),
            format!("users.update{{id={id}}}"),
            format!("users.set_active{{id={id} active=false}}"),
            "users.list{limit=5 after_cursor=false}".to_owned(),
            "users.count".to_owned(),
        ] {
            // The innermost span of a line is followed by the event's target.
            assert!(out.contains(&format!("{span}: taskstore::repo::")), "no `{span}` in:\n{out}");
        }
        for private in [EMAIL, NAME, HASH, OTHER_HASH] {
            assert!(!out.contains(private), "{private} was recorded:\n{out}");
        }
    }

    fn task_spans_carry_ids_and_not_what_a_task_says(db: &TestDb) {
        let owner = common::factories::user(db).id;
        let mut task_id = None;
        let out = closed_spans(|| {
            let new = NewTask { title: TITLE, description: Some(DESCRIPTION), priority: None };
            let task = db.tasks().create(owner, &new).unwrap();
            db.tasks().get(owner, task.id).unwrap();
            let patch = TaskPatch { title: Some(format!("{TITLE} 2")), ..TaskPatch::default() };
            db.tasks().update(owner, task.id, &patch, Some(1)).unwrap();
            db.tasks().create_many(owner, &[new, new]).unwrap();
            let filter = TaskFilter { search: Some(TITLE.into()), ..TaskFilter::default() };
            db.tasks().list(owner, &filter, TaskSort::TitleAsc, &PageRequest::first(2)).unwrap();
            db.tasks().complete_many(owner, &[task.id]).unwrap();
            db.tasks().stats(owner).unwrap();
            task_id = Some(task.id);
        });
        let id = task_id.unwrap();
        for span in [
            format!("tasks.create{{owner={owner} id={id}}}"),
            format!("tasks.get{{owner={owner} id={id}}}"),
            format!("tasks.update{{owner={owner} id={id} expected_version=Some(1)}}"),
            format!("tasks.create_many{{owner={owner} rows=2}}"),
            format!("tasks.list{{owner={owner} sort=title limit=2 after_cursor=false}}"),
            format!("tasks.complete_many{{owner={owner} ids=1}}"),
            format!("tasks.stats{{owner={owner}}}"),
        ] {
            // The innermost span of a line is followed by the event's target.
            assert!(out.contains(&format!("{span}: taskstore::repo::")), "no `{span}` in:\n{out}");
        }
        for private in [TITLE, DESCRIPTION] {
            assert!(!out.contains(private), "{private} was recorded:\n{out}");
        }
    }
}
