//! Task operations, one behavioural suite run on both backends: every operation, owner
//! isolation, validation, the database as a second wall, optimistic concurrency, listing with
//! every filter and sort across pages, hostile strings, bulk paths.

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::factories::{self, assert_not_found, assert_validation};
use diesel::prelude::*;
use taskstore::models::{
    NewTask, NewUser, Page, PageRequest, Task, TaskFilter, TaskId, TaskImport, TaskPatch, TaskSort,
    TaskStats, UserId,
};
use taskstore::repo::tasks as repo;
use taskstore::schema::tasks;
use taskstore::sql_types::DbUuid;
use taskstore::{Database, Error};

fn new_task(title: &str) -> NewTask<'_> {
    NewTask {
        title,
        ..NewTask::default()
    }
}

fn total(db: &Database, owner: UserId) -> i64 {
    db.tasks().stats(owner).unwrap().total
}

fn pause() {
    // Timestamps have microsecond resolution; make "later" unambiguous.
    std::thread::sleep(Duration::from_millis(2));
}

/// Every page of a listing, with the page sizes seen.
fn all_pages(
    db: &Database,
    owner: UserId,
    filter: &TaskFilter,
    sort: TaskSort,
    limit: u32,
) -> (Vec<Task>, Vec<usize>) {
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut request = PageRequest::first(limit);
    loop {
        let Page {
            items: page,
            next_cursor,
        } = db.tasks().list(owner, filter, sort, &request).unwrap();
        sizes.push(page.len());
        items.extend(page);
        match next_cursor {
            Some(c) => request.cursor = Some(c),
            None => return (items, sizes),
        }
        assert!(sizes.len() < 1000, "pagination does not end");
    }
}

/// What a listing must return, computed in Rust from all of the owner's tasks.
fn expected(all: &[Task], filter: &TaskFilter, sort: TaskSort) -> Vec<Task> {
    let needle = filter.search.as_deref().map(str::to_ascii_lowercase);
    let mut out: Vec<Task> = all
        .iter()
        .filter(|t| filter.completed.is_none_or(|c| t.completed == c))
        .filter(|t| filter.priority_min.is_none_or(|p| t.priority >= p))
        .filter(|t| filter.priority_max.is_none_or(|p| t.priority <= p))
        .filter(|t| filter.created_after.is_none_or(|c| t.created_at > c))
        .filter(|t| filter.created_before.is_none_or(|c| t.created_at < c))
        .filter(|t| {
            needle.as_deref().is_none_or(|n| {
                t.title.to_ascii_lowercase().contains(n)
                    || t.description
                        .as_deref()
                        .is_some_and(|d| d.to_ascii_lowercase().contains(n))
            })
        })
        .cloned()
        .collect();
    out.sort_by(|a, b| {
        let key = match sort {
            TaskSort::CreatedAsc | TaskSort::CreatedDesc => a.created_at.cmp(&b.created_at),
            TaskSort::UpdatedAsc | TaskSort::UpdatedDesc => a.updated_at.cmp(&b.updated_at),
            TaskSort::PriorityAsc | TaskSort::PriorityDesc => a.priority.cmp(&b.priority),
            TaskSort::TitleAsc | TaskSort::TitleDesc => a.title.as_bytes().cmp(b.title.as_bytes()),
        };
        let ord = key.then(a.id.cmp(&b.id));
        if sort.is_desc() { ord.reverse() } else { ord }
    });
    out
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
}

/// 37 tasks with deliberate ties in every sort key: titles repeat, priorities cycle, pairs
/// share a creation time, updates share times. Imported so the timestamps are exact.
fn seed(db: &Database, owner: UserId) -> Vec<Task> {
    const TITLES: [&str; 7] = [
        "alpha", "Beta", "beta", "gamma", "Ω omega", "éclair", "alpha",
    ];
    const EXTRAS: [&str; 5] = ["50% off", "a_b", "back\\slash", "plain", "MiXeD Case"];
    let rows: Vec<TaskImport> = (0..37i64)
        .map(|i| {
            let created = at(i / 2);
            TaskImport {
                title: TITLES[(i % 7) as usize].into(),
                description: (i % 3 != 0)
                    .then(|| format!("note {i}: {}", EXTRAS[(i % 5) as usize])),
                priority: Some((i % 5 + 1) as i16),
                completed: Some(i % 4 == 0),
                created_at: Some(created),
                updated_at: Some(created + chrono::Duration::minutes((37 - i) % 6)),
                ..TaskImport::default()
            }
        })
        .collect();
    assert_eq!(db.tasks().import(owner, &rows).unwrap(), 37);
    factories::all_tasks(db, owner)
}

const HOSTILE: &[&str] = &[
    "Robert'); DROP TABLE tasks;--",
    "\"double\" 'single' `back` ''",
    "back\\slash \\\\ \\n \\0 \\x00 not a nul",
    "50% _under_ %_% \\% \\_",
    "; -- comment /* block */ */",
    "emoji 🦀🎉 👩‍👩‍👧‍👦 family",
    "rtl \u{200F}שלום\u{200E} mark \u{202E}override\u{202C}",
    "zero\u{200B}width and \u{FEFF}bom inside",
    "tab\tinside and newline\ninside and cr\rinside",
    "$1 ? ?1 :name @p0 %s {} {{}}",
    "ünïcödé ÅÄÖ ß İ ﬁ",
    "\u{1}\u{7}\u{1b}[31m control \u{7f}",
];

backend_tests! {
    fn creates_with_defaults_and_reads_back(db: &TestDb) {
        let owner = factories::user(db).id;
        let task = db.tasks().create(owner, &new_task("  Water the plants \t")).unwrap();
        assert_eq!(task.title, "Water the plants", "stored trimmed");
        assert_eq!((task.priority, task.version, task.completed), (3, 1, false));
        assert_eq!((task.description.as_deref(), task.completed_at), (None, None));
        assert_eq!(task.created_at, task.updated_at);
        assert_eq!(task.user_id, owner);
        assert_eq!(task.id.0.get_version_num(), 7);
        assert_eq!(db.tasks().get(owner, task.id).unwrap(), task);

        let full = db
            .tasks()
            .create(owner, &NewTask { title: "t", description: Some(" kept as is "), priority: Some(5) })
            .unwrap();
        assert_eq!((full.description.as_deref(), full.priority), (Some(" kept as is "), 5));
        assert_eq!(db.tasks().get(owner, full.id).unwrap(), full);

        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["id"], full.id.to_string());
        assert_eq!(json["user_id"], owner.to_string());
        assert_eq!(json["completed_at"], serde_json::Value::Null);
        let back: Task = serde_json::from_value(json).unwrap();
        assert_eq!(back, full);
    }

    fn a_missing_owner_is_user_not_found(db: &TestDb) {
        let ghost = UserId::new_v7();
        assert_not_found(db.tasks().create(ghost, &new_task("x")), "user");
        assert_not_found(db.tasks().create_many(ghost, &[new_task("x"), new_task("y")]), "user");
        assert_not_found(db.tasks().import(ghost, &[TaskImport { title: "x".into(), ..TaskImport::default() }]), "user");
        let count: i64 = db.run(|c| Ok(tasks::table.count().get_result(c)?)).unwrap();
        assert_eq!(count, 0);
    }

    fn invalid_input_names_the_field_and_writes_nothing(db: &TestDb) {
        let owner = factories::user(db).id;
        let long_title = "t".repeat(256);
        let long_description = "d".repeat(1001);
        for (new, field) in [
            (new_task(""), "title"),
            (new_task(" \t\n "), "title"),
            (new_task(&long_title), "title"),
            (new_task("nul\0inside"), "title"),
            (NewTask { description: Some(&long_description), ..new_task("ok") }, "description"),
            (NewTask { description: Some("nul\0"), ..new_task("ok") }, "description"),
            (NewTask { priority: Some(0), ..new_task("ok") }, "priority"),
            (NewTask { priority: Some(6), ..new_task("ok") }, "priority"),
            (NewTask { priority: Some(-1), ..new_task("ok") }, "priority"),
        ] {
            assert_validation(db.tasks().create(owner, &new), field);
            assert_validation(db.tasks().create_many(owner, &[new_task("fine"), new]), field);
        }
        let err = db.tasks().create_many(owner, &[new_task("fine"), new_task("")]).unwrap_err();
        assert!(err.to_string().contains("row 2"), "{err}");
        assert_eq!(total(db, owner), 0, "nothing written");

        // At the limits: 255 characters of 4-byte emoji, 1000 characters of description.
        let crab_title = "🦀".repeat(255);
        let crab_description = "🦀".repeat(1000);
        let edge = db
            .tasks()
            .create(owner, &NewTask { title: &crab_title, description: Some(&crab_description), priority: Some(1) })
            .unwrap();
        assert_eq!(db.tasks().get(owner, edge.id).unwrap().title, crab_title);

        // Patches are validated the same way, and a refused patch changes nothing.
        for (patch, field) in [
            (TaskPatch { title: Some("  ".into()), ..TaskPatch::default() }, "title"),
            (TaskPatch { title: Some("a\0".into()), ..TaskPatch::default() }, "title"),
            (TaskPatch { description: Some(Some("x".repeat(1001))), ..TaskPatch::default() }, "description"),
            (TaskPatch { priority: Some(9), ..TaskPatch::default() }, "priority"),
        ] {
            assert_validation(db.tasks().update(owner, edge.id, &patch, None), field);
        }
        assert_eq!(db.tasks().get(owner, edge.id).unwrap(), edge);

        // Listing parameters too.
        let list = |filter: TaskFilter, page: PageRequest| {
            db.tasks().list(owner, &filter, TaskSort::default(), &page)
        };
        assert_validation(list(TaskFilter::default(), PageRequest::first(0)), "limit");
        assert_validation(list(TaskFilter::default(), PageRequest::first(1001)), "limit");
        assert_validation(list(TaskFilter { priority_min: Some(0), ..TaskFilter::default() }, PageRequest::default()), "priority_min");
        assert_validation(list(TaskFilter { priority_max: Some(6), ..TaskFilter::default() }, PageRequest::default()), "priority_max");
        assert_validation(list(TaskFilter { search: Some("a\0".into()), ..TaskFilter::default() }, PageRequest::default()), "search");
        assert_validation(list(TaskFilter { search: Some("s".repeat(256)), ..TaskFilter::default() }, PageRequest::default()), "search");
        assert_validation("sideways".parse::<TaskSort>(), "sort");
        assert_validation("not-a-uuid".parse::<TaskId>(), "task_id");
    }

    fn updates_follow_the_version_and_timestamp_rules(db: &TestDb) {
        let owner = factories::user(db).id;
        let t0 = factories::task(db, owner, "draft");
        pause();
        let t1 = db
            .tasks()
            .update(owner, t0.id, &TaskPatch {
                title: Some(" final ".into()),
                description: Some(Some("details".into())),
                priority: Some(5),
                ..TaskPatch::default()
            }, None)
            .unwrap();
        assert_eq!((t1.title.as_str(), t1.description.as_deref(), t1.priority), ("final", Some("details"), 5));
        assert_eq!(t1.version, 2);
        assert!(t1.updated_at > t0.updated_at);
        assert_eq!(t1.created_at, t0.created_at);
        assert_eq!(db.tasks().get(owner, t0.id).unwrap(), t1);

        pause();
        let t2 = db
            .tasks()
            .update(owner, t0.id, &TaskPatch { completed: Some(true), description: Some(None), ..TaskPatch::default() }, Some(2))
            .unwrap();
        assert!(t2.completed);
        assert_eq!(t2.description, None, "Some(None) clears");
        assert_eq!(t2.completed_at, Some(t2.updated_at));
        assert_eq!(t2.version, 3);

        pause();
        let t3 = db
            .tasks()
            .update(owner, t0.id, &TaskPatch { completed: Some(true), ..TaskPatch::default() }, None)
            .unwrap();
        assert_eq!(t3.completed_at, t2.completed_at, "completing again keeps the first completion time");
        assert_eq!(t3.version, 4);
        assert!(t3.updated_at > t2.updated_at);

        let t4 = db
            .tasks()
            .update(owner, t0.id, &TaskPatch { completed: Some(false), ..TaskPatch::default() }, None)
            .unwrap();
        assert_eq!((t4.completed, t4.completed_at, t4.version), (false, None, 5));

        // An empty patch changes nothing (issue 12 item 19): same version, same updated_at; a
        // stale expected version is still refused.
        pause();
        let t5 = db.tasks().update(owner, t0.id, &TaskPatch::default(), None).unwrap();
        assert_eq!(t5, t4, "an empty patch is not an update");
        assert_eq!((t5.title.as_str(), t5.priority), ("final", 5));
        assert_eq!(db.tasks().update(owner, t0.id, &TaskPatch::default(), Some(5)).unwrap(), t4);
        match db.tasks().update(owner, t0.id, &TaskPatch::default(), Some(4)) {
            Err(Error::StaleVersion { expected: 4, actual: 5 }) => {}
            other => panic!("expected a stale version, got {other:?}"),
        }

        assert_not_found(db.tasks().update(owner, TaskId::new_v7(), &TaskPatch::default(), None), "task");
        assert_not_found(db.tasks().update(owner, TaskId::new_v7(), &TaskPatch::default(), Some(1)), "task");
    }

    fn a_stale_version_is_refused_and_changes_nothing(db: &TestDb) {
        let owner = factories::user(db).id;
        let task = factories::task(db, owner, "shared");
        let patch = TaskPatch { title: Some("mine".into()), ..TaskPatch::default() };

        // Two writers read version 1; the first wins, the second is told the current version.
        let first = db.tasks().update(owner, task.id, &patch, Some(1)).unwrap();
        assert_eq!(first.version, 2);
        let theirs = TaskPatch { title: Some("theirs".into()), completed: Some(true), ..TaskPatch::default() };
        match db.tasks().update(owner, task.id, &theirs, Some(1)) {
            Err(Error::StaleVersion { expected: 1, actual: 2 }) => {}
            other => panic!("expected a stale version, got {other:?}"),
        }
        assert_eq!(db.tasks().get(owner, task.id).unwrap(), first, "nothing changed");
        let err = db.tasks().update(owner, task.id, &theirs, Some(7)).unwrap_err();
        assert!(matches!(err, Error::StaleVersion { expected: 7, actual: 2 }), "{err:?}");
        assert_eq!(err.http_status(), 409);

        // Reloading and retrying with the current version works.
        let retried = db.tasks().update(owner, task.id, &theirs, Some(2)).unwrap();
        assert_eq!((retried.title.as_str(), retried.version, retried.completed), ("theirs", 3, true));
    }

    fn complete_and_reopen_are_idempotent(db: &TestDb) {
        let owner = factories::user(db).id;
        let task = factories::task(db, owner, "chore");
        pause();
        let done = db.tasks().complete(owner, task.id).unwrap();
        assert!(done.completed);
        assert_eq!(done.version, 2);
        assert_eq!(done.completed_at, Some(done.updated_at));
        assert!(done.updated_at > task.updated_at);
        assert_eq!(db.tasks().complete(owner, task.id).unwrap(), done, "completing a completed task changes nothing");

        let open = db.tasks().reopen(owner, task.id).unwrap();
        assert_eq!((open.completed, open.completed_at, open.version), (false, None, 3));
        assert_eq!(db.tasks().reopen(owner, task.id).unwrap(), open);

        assert_not_found(db.tasks().complete(owner, TaskId::new_v7()), "task");
        assert_not_found(db.tasks().reopen(owner, TaskId::new_v7()), "task");
    }

    fn deletes_one_and_many(db: &TestDb) {
        let owner = factories::user(db).id;
        let all = factories::tasks(db, owner, 6);
        db.tasks().delete(owner, all[0].id).unwrap();
        assert_not_found(db.tasks().get(owner, all[0].id), "task");
        assert_not_found(db.tasks().delete(owner, all[0].id), "task");

        let ids = [all[0].id, all[1].id, all[2].id, all[2].id, TaskId::new_v7()];
        assert_eq!(db.tasks().delete_many(owner, &ids).unwrap(), 2, "only existing rows count, once");
        assert_eq!(db.tasks().delete_many(owner, &[]).unwrap(), 0);
        let left: Vec<TaskId> = factories::all_tasks(db, owner).iter().map(|t| t.id).collect();
        assert_eq!(left, vec![all[3].id, all[4].id, all[5].id]);
    }

    fn completes_many_counting_only_changed_rows(db: &TestDb) {
        let owner = factories::user(db).id;
        let all = factories::tasks(db, owner, 5);
        db.tasks().complete(owner, all[0].id).unwrap();
        let ids = [all[0].id, all[1].id, all[2].id, all[2].id, TaskId::new_v7()];
        assert_eq!(db.tasks().complete_many(owner, &ids).unwrap(), 2, "the already completed one is not counted");
        for t in &all[1..3] {
            let now = db.tasks().get(owner, t.id).unwrap();
            assert!(now.completed && now.completed_at == Some(now.updated_at) && now.version == 2, "{now:?}");
        }
        assert!(!db.tasks().get(owner, all[3].id).unwrap().completed);

        // More ids than one statement takes: processed in chunks inside one transaction.
        let mut many: Vec<TaskId> = (0..10_050).map(|_| TaskId::new_v7()).collect();
        many.push(all[3].id);
        many.push(all[4].id);
        assert_eq!(db.tasks().complete_many(owner, &many).unwrap(), 2);
        assert_eq!(db.tasks().stats(owner).unwrap().completed, 5);
        assert_eq!(db.tasks().delete_many(owner, &many).unwrap(), 2);
        assert_eq!(total(db, owner), 3);
    }

    fn another_users_task_behaves_like_a_missing_one(db: &TestDb) {
        let alice = factories::user(db).id;
        let bob = factories::user(db).id;
        let hers = factories::task(db, alice, "alice's secret");
        let mine = factories::task(db, bob, "bob's");

        assert_not_found(db.tasks().get(bob, hers.id), "task");
        assert_not_found(db.tasks().update(bob, hers.id, &TaskPatch { title: Some("pwned".into()), ..TaskPatch::default() }, None), "task");
        assert_not_found(db.tasks().update(bob, hers.id, &TaskPatch::default(), Some(1)), "task");
        assert_not_found(db.tasks().complete(bob, hers.id), "task");
        assert_not_found(db.tasks().reopen(bob, hers.id), "task");
        assert_not_found(db.tasks().delete(bob, hers.id), "task");
        assert_eq!(db.tasks().complete_many(bob, &[hers.id]).unwrap(), 0);
        assert_eq!(db.tasks().delete_many(bob, &[hers.id, mine.id]).unwrap(), 1, "only bob's own row");

        for sort in TaskSort::ALL {
            let page = db.tasks().list(bob, &TaskFilter::default(), sort, &PageRequest::default()).unwrap();
            assert!(page.items.is_empty(), "{sort}: {:?}", page.items);
            let search = TaskFilter { search: Some("secret".into()), ..TaskFilter::default() };
            assert!(db.tasks().list(bob, &search, sort, &PageRequest::default()).unwrap().items.is_empty());
        }
        assert_eq!(db.tasks().stats(bob).unwrap(), TaskStats::default());
        assert_eq!(db.tasks().get(alice, hers.id).unwrap(), hers, "untouched");

        // Alice's cursor is not Bob's.
        factories::tasks(db, alice, 3);
        let page = db.tasks().list(alice, &TaskFilter::default(), TaskSort::CreatedAsc, &PageRequest::first(2)).unwrap();
        let cursor = page.next_cursor.unwrap();
        assert_validation(
            db.tasks().list(bob, &TaskFilter::default(), TaskSort::CreatedAsc, &PageRequest::after(2, Some(cursor))),
            "cursor",
        );
    }

    fn every_sort_and_filter_pages_stably(db: &TestDb) {
        let owner = factories::user(db).id;
        let all = seed(db, owner);
        assert_eq!(all.len(), 37);
        // Noise from another user never shows up.
        seed(db, factories::user(db).id);

        let filters = [
            TaskFilter::default(),
            TaskFilter { completed: Some(true), ..TaskFilter::default() },
            TaskFilter { completed: Some(false), ..TaskFilter::default() },
            TaskFilter { priority_min: Some(2), priority_max: Some(4), ..TaskFilter::default() },
            TaskFilter { priority_min: Some(5), ..TaskFilter::default() },
            TaskFilter { priority_max: Some(1), completed: Some(false), ..TaskFilter::default() },
            TaskFilter { created_after: Some(at(3)), ..TaskFilter::default() },
            TaskFilter { created_before: Some(at(10)), ..TaskFilter::default() },
            TaskFilter { created_after: Some(at(2)), created_before: Some(at(15)), priority_min: Some(3), ..TaskFilter::default() },
            TaskFilter { search: Some("ALPHA".into()), ..TaskFilter::default() },
            TaskFilter { search: Some("mixed case".into()), completed: Some(false), ..TaskFilter::default() },
            TaskFilter { search: Some(String::new()), ..TaskFilter::default() },
            TaskFilter { search: Some("nothing matches this".into()), ..TaskFilter::default() },
        ];
        for filter in &filters {
            for sort in TaskSort::ALL {
                let want = expected(&all, filter, sort);
                for limit in [4, 37, 1000] {
                    let (got, sizes) = all_pages(db, owner, filter, sort, limit);
                    let ids = |v: &[Task]| v.iter().map(|t| t.id).collect::<Vec<_>>();
                    assert_eq!(ids(&got), ids(&want), "{sort} limit {limit} {filter:?}");
                    assert_eq!(got, want);
                    let full_pages = want.len() / limit as usize;
                    assert!(sizes[..full_pages.min(sizes.len())].iter().all(|&n| n == limit as usize), "{sizes:?}");
                    assert_eq!(sizes.len(), want.len().div_ceil(limit as usize).max(1), "no empty extra page: {sizes:?}");
                }
            }
        }
    }

    fn search_is_literal_and_ascii_case_insensitive(db: &TestDb) {
        let owner = factories::user(db).id;
        let titles = [
            "100% done", "100 percent", "a_b", "axb", "back\\slash", "backslash",
            "Éclair", "éclair", "CamelCase", "it's", "quote\"d",
        ];
        for t in titles {
            factories::task(db, owner, t);
        }
        db.tasks()
            .create(owner, &NewTask { title: "plain", description: Some("discount: 50%_off"), priority: None })
            .unwrap();
        let find = |s: &str| -> Vec<String> {
            let filter = TaskFilter { search: Some(s.into()), ..TaskFilter::default() };
            let mut found: Vec<String> = db
                .tasks()
                .list(owner, &filter, TaskSort::TitleAsc, &PageRequest::first(100))
                .unwrap()
                .items
                .into_iter()
                .map(|t| t.title)
                .collect();
            found.sort();
            found
        };
        assert_eq!(find("%"), ["100% done", "plain"]);
        assert_eq!(find("0%"), ["100% done", "plain"]);
        assert_eq!(find("_"), ["a_b", "plain"]);
        assert_eq!(find("a_b"), ["a_b"]);
        assert_eq!(find("\\"), ["back\\slash"]);
        assert_eq!(find("k\\s"), ["back\\slash"]);
        assert_eq!(find("%_"), ["plain"]);
        assert_eq!(find("camelcase"), ["CamelCase"]);
        assert_eq!(find("CAMEL"), ["CamelCase"]);
        assert_eq!(find("clair"), ["Éclair", "éclair"]);
        assert_eq!(find("É"), ["Éclair"], "non-ASCII letters are compared exactly on both backends");
        assert_eq!(find("'"), ["it's"]);
        assert_eq!(find("\""), ["quote\"d"]);
        assert_eq!(find("DISCOUNT"), ["plain"], "descriptions are searched too");
    }

    fn tampered_and_foreign_cursors_are_validation_errors(db: &TestDb) {
        let owner = factories::user(db).id;
        factories::tasks(db, owner, 5);
        let list = |sort: TaskSort, cursor: &str| {
            db.tasks().list(owner, &TaskFilter::default(), sort, &PageRequest::after(2, Some(cursor.into())))
        };
        for sort in TaskSort::ALL {
            let page = db.tasks().list(owner, &TaskFilter::default(), sort, &PageRequest::first(2)).unwrap();
            let cursor = page.next_cursor.unwrap();
            assert!(list(sort, &cursor).is_ok());
            for i in 0..cursor.len() {
                let mut bad = cursor.clone();
                let c = if &bad[i..=i] == "A" { "B" } else { "A" };
                bad.replace_range(i..=i, c);
                assert_validation(list(sort, &bad), "cursor");
            }
            let other = if sort == TaskSort::CreatedAsc { TaskSort::TitleDesc } else { TaskSort::CreatedAsc };
            assert_validation(list(other, &cursor), "cursor");
            assert_validation(list(sort, &cursor[..cursor.len() - 4]), "cursor");
            assert_validation(list(sort, &format!("{cursor}AAAA")), "cursor");
        }
        for junk in ["", "x", "🦀", "' OR 1=1 --", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            assert_validation(list(TaskSort::CreatedAsc, junk), "cursor");
        }
        assert_validation(list(TaskSort::CreatedAsc, &"A".repeat(100_000)), "cursor");
    }

    fn hostile_strings_round_trip_byte_for_byte(db: &TestDb) {
        let long_crab = "🦀".repeat(255);
        let long_x = "x".repeat(255);
        let mut strings: Vec<&str> = HOSTILE.to_vec();
        strings.push(&long_crab);
        strings.push(&long_x);

        let owner = factories::user(db).id;
        for s in &strings {
            let created = db
                .tasks()
                .create(owner, &NewTask { title: s, description: Some(s), priority: None })
                .unwrap();
            let read = db.tasks().get(owner, created.id).unwrap();
            assert_eq!(read.title.as_bytes(), s.as_bytes());
            assert_eq!(read.description.as_deref().map(str::as_bytes), Some(s.as_bytes()));
            assert_eq!(read, created);

            let reversed: String = s.chars().rev().collect::<String>().trim().to_owned();
            let patched = db
                .tasks()
                .update(owner, created.id, &TaskPatch {
                    title: Some(reversed.clone()),
                    description: Some(Some(reversed.clone())),
                    ..TaskPatch::default()
                }, None)
                .unwrap();
            assert_eq!(db.tasks().get(owner, created.id).unwrap(), patched);
            assert_eq!(patched.title, reversed);
            assert_eq!(patched.description.as_deref(), Some(reversed.as_str()));

            // The search finds exactly the task carrying the string, literally.
            let filter = TaskFilter { search: Some(reversed.clone()), ..TaskFilter::default() };
            let found = db.tasks().list(owner, &filter, TaskSort::CreatedAsc, &PageRequest::first(1000)).unwrap();
            assert!(found.items.iter().any(|t| t.id == created.id), "search for {reversed:?}");
        }
        // Sorting by title is bytewise on both backends.
        let (by_title, _) = all_pages(db, owner, &TaskFilter::default(), TaskSort::TitleAsc, 3);
        let titles: Vec<&str> = by_title.iter().map(|t| t.title.as_str()).collect();
        let mut sorted = titles.clone();
        sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(titles, sorted);

        // Users' text fields too.
        for s in HOSTILE {
            let name: String = s.chars().take(100).collect();
            let email = factories::email().replace("user", "o'brien+%_");
            let hash: String = s.chars().filter(|c| !c.is_whitespace() && !c.is_control()).collect();
            let user = db
                .users()
                .create(&NewUser { email: &email, password_hash: &hash, first_name: Some(&name), last_name: Some(&name) })
                .unwrap();
            let read = db.users().get_by_email(&email).unwrap();
            assert_eq!(read, user);
            assert_eq!(read.first_name.as_deref(), Some(name.as_str()));
            assert_eq!(read.password_hash.as_bytes(), hash.as_bytes());
        }
    }

    fn statistics_count_per_state_and_priority(db: &TestDb) {
        let owner = factories::user(db).id;
        assert_eq!(db.tasks().stats(owner).unwrap(), TaskStats::default());
        let all = seed(db, owner);
        let stats = db.tasks().stats(owner).unwrap();
        let mut want = TaskStats { total: all.len() as i64, ..TaskStats::default() };
        for t in &all {
            if t.completed { want.completed += 1 } else { want.open += 1 }
            want.by_priority[(t.priority - 1) as usize] += 1;
        }
        assert_eq!(stats, want);
        assert_eq!(stats.by_priority, [8, 8, 7, 7, 7]);
        assert_eq!(stats.completed, 10);
    }

    fn create_many_crosses_statement_chunks_in_one_transaction(db: &TestDb) {
        // 6 600 rows: three INSERTs on SQLite (3 276 rows each), two on PostgreSQL (6 553).
        let owner = factories::user(db).id;
        let titles: Vec<String> = (0..6_600).map(|i| format!("bulk {i:05}")).collect();
        let mut new: Vec<NewTask> = titles.iter().map(|t| new_task(t)).collect();

        // A bad last row: nothing at all is written.
        new.push(new_task(""));
        let err = db.tasks().create_many(owner, &new).unwrap_err();
        assert!(err.to_string().contains("row 6601"), "{err}");
        assert_eq!(total(db, owner), 0);
        new.pop();

        assert_eq!(db.tasks().create_many(owner, &new).unwrap(), 6_600);
        let all = factories::all_tasks(db, owner);
        assert_eq!(all.len(), 6_600);
        assert!(all.iter().map(|t| &t.title).eq(titles.iter()), "ids keep the given order");
        assert!(all.iter().all(|t| t.created_at == all[0].created_at && t.version == 1 && t.priority == 3));
        assert_eq!(db.tasks().create_many(owner, &[]).unwrap(), 0);
    }

    fn import_round_trips_an_export_and_refuses_existing_ids(db: &TestDb) {
        let owner = factories::user(db).id;
        let mut originals = seed(db, owner);
        // Give some rows history: versions > 1, descriptions cleared, reopened.
        for t in originals.iter().step_by(3) {
            db.tasks().update(owner, t.id, &TaskPatch { description: Some(None), ..TaskPatch::default() }, None).unwrap();
        }
        for t in originals.iter().step_by(4) {
            db.tasks().reopen(owner, t.id).unwrap();
        }
        originals = factories::all_tasks(db, owner);
        let export: Vec<TaskImport> = originals.iter().map(TaskImport::from).collect();

        // Re-importing while the tasks exist is a conflict, and nothing is written.
        let err = db.tasks().import(owner, &export).unwrap_err();
        assert!(matches!(&err, Error::Conflict { constraint, .. } if constraint == "tasks.id"), "{err:?}");
        let other = factories::user(db).id;
        let fresh = TaskImport { title: "new".into(), ..TaskImport::default() };
        let err = db.tasks().import(other, &[fresh.clone(), export[5].clone()]).unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "an id of another user's task is taken too: {err:?}");
        assert!(err.to_string().contains("row 2 of the import"), "the conflict names the row: {err}");
        assert_eq!(total(db, other), 0);
        let n = db.tasks().import(other, &[fresh.clone(), fresh.clone()]).unwrap();
        assert_eq!(n, 2, "rows without ids get new ones");
        let twice = TaskImport { id: Some(TaskId::new_v7()), ..fresh.clone() };
        let err = db.tasks().import(other, &[twice.clone(), twice]).unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        assert_eq!(total(db, other), 2);

        // Delete and re-import: identical, byte for byte, timestamps and versions included.
        let ids: Vec<TaskId> = originals.iter().map(|t| t.id).collect();
        assert_eq!(db.tasks().delete_many(owner, &ids).unwrap(), originals.len());
        assert_eq!(db.tasks().import(owner, &export).unwrap(), originals.len());
        assert_eq!(factories::all_tasks(db, owner), originals);

        // Import validates every row first and names the row.
        for (bad, field) in [
            (TaskImport { completed_at: Some(at(1)), ..fresh.clone() }, "completed_at"),
            (TaskImport { version: Some(0), ..fresh.clone() }, "version"),
            (TaskImport { title: " ".into(), ..fresh.clone() }, "title"),
            (TaskImport { priority: Some(8), ..fresh.clone() }, "priority"),
            (TaskImport { created_at: Some(at(10)), updated_at: Some(at(5)), ..fresh.clone() }, "updated_at"),
        ] {
            let result = db.tasks().import(other, &[fresh.clone(), fresh.clone(), bad]);
            assert!(result.as_ref().unwrap_err().to_string().contains("row 3"), "{result:?}");
            assert_validation(result, field);
        }
        assert_eq!(total(db, other), 2);

        // Sub-microsecond input is truncated like everything the layer stores.
        let precise = Utc.timestamp_opt(1_790_000_000, 123_456_789).unwrap();
        let one = TaskImport { id: Some(TaskId::new_v7()), created_at: Some(precise), ..fresh };
        db.tasks().import(other, std::slice::from_ref(&one)).unwrap();
        let read = db.tasks().get(other, one.id.unwrap()).unwrap();
        assert_eq!(read.created_at.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(read.updated_at, read.created_at);
    }

    fn an_import_conflict_past_the_first_statement_names_its_row_and_writes_nothing(db: &TestDb) {
        // More rows than one multi-row INSERT takes on SQLite (3 276): the taken id is met by a
        // later statement, after earlier ones of the same import went in.
        let owner = factories::user(db).id;
        let existing = factories::task(db, owner, "already here");
        let other = factories::user(db).id;
        let mut rows: Vec<TaskImport> = (0..5_000)
            .map(|i| TaskImport { id: Some(TaskId::new_v7()), title: format!("row {}", i + 1), ..TaskImport::default() })
            .collect();
        rows[4_499].id = Some(existing.id);
        let err = db.tasks().import(other, &rows).unwrap_err();
        assert!(matches!(&err, Error::Conflict { constraint, .. } if constraint == "tasks.id"), "{err:?}");
        assert!(err.to_string().contains("row 4500 of the import"), "{err}");
        assert_eq!(total(db, other), 0);
    }

    fn the_database_refuses_what_the_layer_would(db: &TestDb) {
        let owner = factories::user(db).id;
        let task = factories::task(db, owner, "guarded");
        {
            let mut guard = db.conn().unwrap();
            let conn = &mut *guard;
            let mine = || tasks::table.filter(tasks::id.eq(task.id));
            let refused: Vec<(&str, QueryResult<usize>)> = vec![
                ("priority 9", diesel::sql_query("UPDATE tasks SET priority = 9").execute(conn)),
                ("priority 0", diesel::update(mine()).set(tasks::priority.eq(0)).execute(conn)),
                ("empty title", diesel::update(mine()).set(tasks::title.eq("")).execute(conn)),
                ("untrimmed title", diesel::update(mine()).set(tasks::title.eq(" padded ")).execute(conn)),
                ("long title", diesel::update(mine()).set(tasks::title.eq("t".repeat(256))).execute(conn)),
                ("NUL title", diesel::update(mine()).set(tasks::title.eq("a\0b")).execute(conn)),
                ("long description", diesel::update(mine()).set(tasks::description.eq("d".repeat(1001))).execute(conn)),
                ("NUL description", diesel::update(mine()).set(tasks::description.eq("a\0b")).execute(conn)),
                ("version 0", diesel::update(mine()).set(tasks::version.eq(0)).execute(conn)),
                ("completed without completed_at", diesel::update(mine()).set(tasks::completed.eq(true)).execute(conn)),
                ("completed_at while open", diesel::update(mine()).set(tasks::completed_at.eq(tasks::created_at.nullable())).execute(conn)),
            ];
            for (what, result) in refused {
                assert!(result.is_err(), "the database accepted {what}");
            }

            // FOREIGN KEY: a task for a user that does not exist; PRIMARY KEY: a reused id.
            let mut copy = |id: TaskId, user: UserId| {
                diesel::insert_into(tasks::table)
                    .values(mine().select((
                        id.into_sql::<DbUuid>(),
                        user.into_sql::<DbUuid>(),
                        tasks::title,
                        tasks::description,
                        tasks::completed,
                        tasks::priority,
                        tasks::version,
                        tasks::created_at,
                        tasks::updated_at,
                        tasks::completed_at,
                    )))
                    .into_columns(tasks::all_columns)
                    .execute(conn)
                    .map_err(Error::from)
            };
            let orphan = copy(TaskId::new_v7(), UserId::new_v7());
            assert!(
                matches!(orphan, Err(Error::Database { kind: taskstore::DbErrorKind::ForeignKeyViolation, .. })),
                "{orphan:?}"
            );
            let reused = copy(task.id, owner);
            assert!(matches!(&reused, Err(Error::Conflict { constraint, .. }) if constraint == "tasks.id"), "{reused:?}");
        }
        assert_eq!(db.tasks().get(owner, task.id).unwrap(), task, "unchanged");
        assert_eq!(total(db, owner), 1);
    }

    fn repositories_run_inside_a_transaction(db: &TestDb) {
        let owner = factories::user(db).id;
        let committed = db
            .run(|c| {
                c.transaction(|c| {
                    let t = repo::create(c, owner, &new_task("inside"))?;
                    repo::create_many(c, owner, &[new_task("batch a"), new_task("batch b")])?;
                    repo::complete(c, owner, t.id)
                })
            })
            .unwrap();
        assert_eq!(db.tasks().get(owner, committed.id).unwrap(), committed);
        let failed: Result<(), Error> = db.run(|c| {
            c.transaction(|c| {
                repo::create(c, owner, &new_task("rolled back"))?;
                repo::import(c, owner, &[TaskImport { title: "also rolled back".into(), ..TaskImport::default() }])?;
                repo::delete(c, owner, committed.id)?;
                Err(Error::validation("test", "deliberate"))
            })
        });
        assert!(failed.is_err());
        assert_eq!(total(db, owner), 3);
        assert_eq!(db.tasks().get(owner, committed.id).unwrap(), committed);
    }

    fn explains_the_exact_list_statement(db: &TestDb) {
        // Fewer than 50 rows, so autovacuum never analyzes the table and the PostgreSQL plan
        // stays the same from run to run (the 1M-row plans are checked separately).
        let owner = factories::user(db).id;
        factories::tasks(db, owner, 30);
        for (sort, index, column) in [
            (TaskSort::CreatedAsc, "tasks_user_created_idx", "created_at"),
            (TaskSort::CreatedDesc, "tasks_user_created_idx", "created_at"),
            (TaskSort::UpdatedAsc, "tasks_user_updated_idx", "updated_at"),
            (TaskSort::UpdatedDesc, "tasks_user_updated_idx", "updated_at"),
            (TaskSort::PriorityAsc, "tasks_user_priority_idx", "priority"),
            (TaskSort::PriorityDesc, "tasks_user_priority_idx", "priority"),
            (TaskSort::TitleAsc, "tasks_user_title_idx", "title"),
            (TaskSort::TitleDesc, "tasks_user_title_idx", "title"),
        ] {
            let first = db.tasks().list(owner, &TaskFilter::default(), sort, &PageRequest::first(5)).unwrap();
            let page = PageRequest::after(5, first.next_cursor);
            let filter = TaskFilter { completed: Some(false), search: Some("5".into()), ..TaskFilter::default() };
            let plan = db.run(|c| taskstore::diagnostics::explain_list(c, owner, &filter, sort, &page)).unwrap();
            match db.backend {
                common::Backend::Postgres => {
                    let json: serde_json::Value = serde_json::from_str(&plan).expect("JSON plan");
                    let scan = &json[0]["Plan"]["Plans"][0];
                    assert_eq!(scan["Node Type"], "Index Scan", "{sort}: {plan}");
                    assert_eq!(scan["Index Name"], index, "{sort}: {plan}");
                    let cond = scan["Index Cond"].as_str().unwrap();
                    assert!(cond.contains(&format!("ROW({column}, id)")), "{sort}: the cursor bounds the scan: {cond}");
                }
                common::Backend::Sqlite => {
                    let op = if sort.is_desc() { '<' } else { '>' };
                    let want = format!("SEARCH tasks USING INDEX {index} (user_id=? AND ({column},id){op}(?,?))");
                    assert_eq!(plan, want, "{sort}");
                }
            }
        }
        assert_validation(
            db.run(|c| taskstore::diagnostics::explain_list(c, owner, &TaskFilter::default(), TaskSort::CreatedAsc, &PageRequest::first(0))),
            "limit",
        );
    }

    /// `create_many` below, at and above the size from which PostgreSQL writes with COPY: the
    /// same rows stored, the same count returned, the same all-or-nothing promise.
    fn create_many_on_both_sides_of_the_copy_threshold(db: &TestDb) {
        let t = repo::COPY_FROM_ROWS;
        let hostile = ["tab\there", "quote ' \" back\\slash", "new\nline", "ünïcødé ✓", "\\N", ","];
        for n in [1, t - 1, t, 3 * t + 5] {
            let owner = factories::user(db).id;
            let titles: Vec<String> = (0..n).map(|i| format!("{} {i}", hostile[i % hostile.len()])).collect();
            let descriptions: Vec<String> = (0..n).map(|i| format!("d{i} {}", hostile[(i + 1) % hostile.len()])).collect();
            let new: Vec<NewTask<'_>> = (0..n)
                .map(|i| NewTask {
                    title: &titles[i],
                    description: (i % 3 != 0).then_some(descriptions[i].as_str()),
                    priority: (i % 2 == 0).then_some((i % 5 + 1) as i16),
                })
                .collect();
            assert_eq!(db.tasks().create_many(owner, &new).unwrap(), n, "{n} rows");
            let mut stored = factories::all_tasks(db, owner);
            stored.sort_by_key(|t| t.id);
            assert_eq!(stored.len(), n);
            for (i, task) in stored.iter().enumerate() {
                assert_eq!(task.title, titles[i].trim(), "row {i} of {n}: ids keep the given order");
                assert_eq!(task.description.as_deref(), new[i].description, "row {i} of {n}");
                assert_eq!(task.priority, new[i].priority.unwrap_or(3), "row {i} of {n}");
                assert!(!task.completed && task.completed_at.is_none() && task.version == 1);
                assert_eq!(task.user_id, owner);
                assert_eq!(task.created_at, stored[0].created_at, "one created_at for the batch");
                assert_eq!(task.updated_at, task.created_at);
            }
            // A bad last row: nothing written, the row named.
            let owner2 = factories::user(db).id;
            let mut bad = new.clone();
            let last = bad.len();
            bad[last - 1].priority = Some(9);
            let err = db.tasks().create_many(owner2, &bad).unwrap_err();
            assert!(
                matches!(&err, Error::Validation { field, reason } if field == "priority" && reason.contains(&format!("row {last}"))),
                "{n} rows: {err}"
            );
            assert_eq!(total(db, owner2), 0, "{n} rows: nothing written");
            // A missing owner: not found, nothing written.
            assert_not_found(db.tasks().create_many(UserId::new_v7(), &new), "user");
            assert_eq!(total(db, owner), n as i64);
        }
        let count: i64 = db.run(|c| Ok(tasks::table.count().get_result(c)?)).unwrap();
        assert_eq!(count, (1 + (t - 1) + t + 3 * t + 5) as i64);
    }
}
