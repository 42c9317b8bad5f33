//! User operations, one behavioural suite run on both backends.

mod common;

use common::factories::{self, HASH, assert_not_found, assert_validation};
use diesel::prelude::*;
use taskstore::models::{NewUser, PageRequest, UserId, UserPatch};
use taskstore::schema::{tasks, users};
use taskstore::sql_types::DbUuid;
use taskstore::{Database, Error};

fn new_user<'a>(email: &'a str) -> NewUser<'a> {
    NewUser {
        email,
        password_hash: HASH,
        first_name: None,
        last_name: None,
    }
}

fn user_count(db: &Database) -> i64 {
    db.users().count().expect("count")
}

backend_tests! {
    fn creates_normalises_and_reads_back(db: &TestDb) {
        let user = db
            .users()
            .create(&NewUser {
                email: "  Ann.Lee+Work@Example.COM ",
                password_hash: HASH,
                first_name: Some("Ann"),
                last_name: Some("Lee"),
            })
            .unwrap();
        assert_eq!(user.email, "ann.lee+work@example.com");
        assert!(user.is_active);
        assert_eq!(user.created_at, user.updated_at);
        assert_eq!(user.id.0.get_version_num(), 7, "ids are UUID v7");

        assert_eq!(db.users().get(user.id).unwrap(), user);
        assert_eq!(db.users().get_by_email("ANN.LEE+WORK@example.com ").unwrap(), user);
        assert_not_found(db.users().get(UserId::new_v7()), "user");
        assert_not_found(db.users().get_by_email("nobody@example.com"), "user");
        assert_validation(db.users().get_by_email("not an email"), "email");
        assert_eq!(user_count(db), 1);

        // The password hash is never printed.
        let debug = format!("{user:?}");
        assert!(!debug.contains(HASH) && debug.contains("***"), "{debug}");
        let json = serde_json::to_value(&user).unwrap();
        assert!(json.get("password_hash").is_none(), "{json}");
        assert_eq!(json["id"], user.id.to_string());
        let created = json["created_at"].as_str().unwrap();
        assert!(created.ends_with('Z') && created.len() == "2026-11-27T10:00:00.123456Z".len(), "{created}");
    }

    fn a_taken_email_is_a_conflict_in_any_case(db: &TestDb) {
        db.users().create(&new_user("dup@example.com")).unwrap();
        let err = db.users().create(&new_user(" DUP@Example.com")).unwrap_err();
        assert!(
            matches!(&err, Error::Conflict { constraint, .. } if constraint == "users.email"),
            "{err:?}"
        );
        assert_eq!(user_count(db), 1);
    }

    fn invalid_input_names_the_field_and_writes_nothing(db: &TestDb) {
        let long = "n".repeat(101);
        let long_email = format!("{}@example.com", "a".repeat(250));
        let cases: Vec<(NewUser, &str)> = vec![
            (new_user(""), "email"),
            (new_user("no-at-sign"), "email"),
            (new_user("two@@example.com"), "email"),
            (new_user("a@localhost"), "email"),
            (new_user("nul\0@example.com"), "email"),
            (new_user(&long_email), "email"),
            (NewUser { password_hash: "", ..new_user("a@example.com") }, "password_hash"),
            (NewUser { password_hash: "has space", ..new_user("a@example.com") }, "password_hash"),
            (NewUser { password_hash: "nul\0", ..new_user("a@example.com") }, "password_hash"),
            (NewUser { first_name: Some(&long), ..new_user("a@example.com") }, "first_name"),
            (NewUser { last_name: Some(&long), ..new_user("a@example.com") }, "last_name"),
            (NewUser { first_name: Some("a\0b"), ..new_user("a@example.com") }, "first_name"),
        ];
        for (new, field) in cases {
            assert_validation(db.users().create(&new), field);
        }
        // Exactly at the limits is fine.
        let hundred = "é".repeat(100);
        db.users()
            .create(&NewUser { first_name: Some(&hundred), ..new_user("ok@example.com") })
            .unwrap();
        assert_eq!(user_count(db), 1);
    }

    fn updates_are_partial_and_move_updated_at(db: &TestDb) {
        let user = factories::user(db);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let patched = db
            .users()
            .update(user.id, &UserPatch {
                email: Some("New@Example.com".into()),
                last_name: Some(Some("Lee".into())),
                ..UserPatch::default()
            })
            .unwrap();
        assert_eq!(patched.email, "new@example.com");
        assert_eq!(patched.first_name.as_deref(), Some("Test"), "untouched");
        assert_eq!(patched.last_name.as_deref(), Some("Lee"));
        assert_eq!(patched.password_hash, user.password_hash);
        assert_eq!(patched.created_at, user.created_at);
        assert!(patched.updated_at > user.updated_at);
        assert_eq!(db.users().get(user.id).unwrap(), patched);

        let cleared = db
            .users()
            .update(user.id, &UserPatch {
                first_name: Some(None),
                password_hash: Some("$new$hash".into()),
                ..UserPatch::default()
            })
            .unwrap();
        assert_eq!(cleared.first_name, None);
        assert_eq!(cleared.last_name.as_deref(), Some("Lee"));
        assert_eq!(cleared.password_hash, "$new$hash");

        let off = db.users().set_active(user.id, false).unwrap();
        assert!(!off.is_active);
        assert!(db.users().set_active(user.id, true).unwrap().is_active);

        // Errors: validation, conflict, not found — and nothing changes.
        let before = db.users().get(user.id).unwrap();
        assert_validation(
            db.users().update(user.id, &UserPatch { email: Some("bad".into()), ..UserPatch::default() }),
            "email",
        );
        assert_validation(
            db.users().update(user.id, &UserPatch { last_name: Some(Some("x".repeat(101))), ..UserPatch::default() }),
            "last_name",
        );
        let other = factories::user(db);
        let err = db
            .users()
            .update(user.id, &UserPatch { email: Some(other.email.to_uppercase()), ..UserPatch::default() })
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        assert_eq!(db.users().get(user.id).unwrap(), before);
        assert_not_found(db.users().update(UserId::new_v7(), &UserPatch::default()), "user");
        assert_not_found(db.users().set_active(UserId::new_v7(), false), "user");
    }

    fn delete_cascades_to_the_users_tasks_only(db: &TestDb) {
        let doomed = factories::user(db);
        let kept = factories::user(db);
        factories::tasks(db, doomed.id, 5);
        factories::tasks(db, kept.id, 3);

        db.users().delete(doomed.id).unwrap();
        assert_not_found(db.users().get(doomed.id), "user");
        let left: Vec<(UserId, i64)> = db
            .run(|c| {
                Ok(tasks::table
                    .group_by(tasks::user_id)
                    .select((tasks::user_id, diesel::dsl::count_star()))
                    .load(c)?)
            })
            .unwrap();
        assert_eq!(left, vec![(kept.id, 3)]);
        assert_not_found(db.users().delete(doomed.id), "user");
        assert_eq!(user_count(db), 1);
    }

    fn lists_in_creation_order_with_keyset_pages(db: &TestDb) {
        let created: Vec<UserId> = (0..25).map(|_| factories::user(db).id).collect();
        let mut seen = Vec::new();
        let mut request = PageRequest::first(10);
        let mut pages = 0;
        loop {
            let page = db.users().list(&request).unwrap();
            pages += 1;
            assert!(page.items.len() <= 10);
            seen.extend(page.items.iter().map(|u| u.id));
            match page.next_cursor {
                Some(c) => request.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, created, "id order is creation order (v7), no gaps or duplicates");
        assert_eq!(user_count(db), 25);

        // An exact multiple of the limit ends without an empty extra page.
        let exact = db.users().list(&PageRequest::first(25)).unwrap();
        assert_eq!((exact.items.len(), exact.next_cursor), (25, None));

        assert_validation(db.users().list(&PageRequest::first(0)), "limit");
        assert_validation(db.users().list(&PageRequest::first(1001)), "limit");
        let page = db.users().list(&PageRequest::first(5)).unwrap();
        let mut cursor = page.next_cursor.unwrap();
        cursor.replace_range(3..4, if &cursor[3..4] == "A" { "B" } else { "A" });
        assert_validation(db.users().list(&PageRequest::after(5, Some(cursor))), "cursor");
        assert_validation(db.users().list(&PageRequest::after(5, Some("garbage".into()))), "cursor");
    }

    fn the_database_refuses_what_the_layer_would(db: &TestDb) {
        let user = factories::user(db);
        let mut guard = db.conn().unwrap();
        let conn = &mut *guard;

        // UNIQUE: the same email under another id, written around the layer.
        let dup = diesel::insert_into(users::table)
            .values(users::table.filter(users::id.eq(user.id)).select((
                UserId::new_v7().into_sql::<DbUuid>(),
                users::email,
                users::password_hash,
                users::first_name,
                users::last_name,
                users::is_active,
                users::created_at,
                users::updated_at,
            )))
            .into_columns(users::all_columns)
            .execute(conn)
            .map_err(Error::from);
        assert!(matches!(dup, Err(Error::Conflict { .. })), "{dup:?}");

        // CHECKs: not lower case, no @, over-long names, empty hash, NUL.
        for refused in [
            diesel::update(users::table).set(users::email.eq("UPPER@EXAMPLE.COM")).execute(conn),
            diesel::update(users::table).set(users::email.eq("nobody")).execute(conn),
            diesel::update(users::table).set(users::first_name.eq("x".repeat(101))).execute(conn),
            diesel::update(users::table).set(users::password_hash.eq("")).execute(conn),
            diesel::update(users::table).set(users::last_name.eq("a\0b")).execute(conn),
        ] {
            assert!(refused.is_err(), "the database accepted a broken row");
        }
        drop(guard);
        assert_eq!(db.users().get(user.id).unwrap(), user);
    }
}
