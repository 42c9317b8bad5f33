//! Model-based property test of the task repository (SPEC §2, §3; issue 4).
//!
//! Each case creates two fresh users and runs a random sequence of task operations by both of
//! them — create (with hostile and invalid titles), get, partial update (with a current, stale or
//! no expected version), complete, reopen, delete, complete-many / delete-many over a mix of
//! own, other-user, deleted and random ids, listings with random filters, sorts and limits
//! followed cursor by cursor to the end, foreign and tampered cursors, statistics — and checks
//! every result against an in-memory model of what the layer must do. After every operation
//! both users' statistics are compared with the model, after every refused one the tasks it
//! named are read back unchanged, and at the end of the case both users' complete listings must
//! equal the model field by field.
//!
//! Every write must move `updated_at` strictly forward: between two writes to one task this test
//! always runs several statements, so the clock has moved by more than the 1 µs the backends
//! store. An update with an empty patch is no write: it changes nothing (issue 12 item 19).
//! An empty description is stored as absent, on create and update (issue 12 item 18).
//!
//! The same body runs on both backends, each on one database shared by all cases: users are
//! fresh per case, so cases cannot see each other's tasks except as "somebody else's id".
//!
//! The case count defaults to [`DEFAULT_CASES`] with up to [`MAX_OPS`] operations each;
//! `PROPTEST_CASES` overrides the count. The seed is fixed so that a run is reproducible;
//! `PROPTEST_RNG_SEED=<u64>` explores other sequences. A failure prints the shrunk sequence.

mod common;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use taskstore::models::{
    NewTask, NewUser, PageRequest, Task, TaskFilter, TaskId, TaskPatch, TaskSort, TaskStats, UserId,
};
use taskstore::repo::{tasks, users};
use taskstore::{DbConnection, Error};
use uuid::Uuid;

use common::{Backend, TestDb};

/// Cases per backend unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 256;
/// Longest operation sequence of one case.
const MAX_OPS: usize = 40;
/// Fixed so that CI runs the same sequences every time (see the module doc).
const DEFAULT_SEED: u64 = 0x7a5c_5704_e42b_2026;

#[test]
fn sqlite_behaves_like_the_model() {
    run_model(Backend::Sqlite);
}

#[test]
fn postgres_behaves_like_the_model() {
    run_model(Backend::Postgres);
}

fn run_model(backend: Backend) {
    let db = TestDb::new(backend, &[]);
    let mut config = Config {
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(DEFAULT_SEED);
    }
    let cases = config.cases;
    let mut runner = TestRunner::new(config);

    let started = Instant::now();
    let (ran, ops) = (Cell::new(0u32), Cell::new(0usize));
    let result = runner.run(&prop::collection::vec(op(), 1..=MAX_OPS), |sequence| {
        ran.set(ran.get() + 1);
        ops.set(ops.get() + sequence.len());
        let mut conn = db.conn().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut case = Case::new(&mut conn)?;
        for (step, op) in sequence.iter().enumerate() {
            case.step = step;
            case.apply(op)?;
            case.check_stats()?;
        }
        case.reconcile()
    });
    println!(
        "model test on {backend:?}: {cases} cases (of up to {MAX_OPS} operations; {} cases and {} \
         operations run including shrinking) in {:.1?}",
        ran.get(),
        ops.get(),
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("{backend:?} disagrees with the model: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Operations and their generators
// ---------------------------------------------------------------------------------------------

/// A task id, chosen when the operation runs from what exists at that moment.
#[derive(Debug, Clone)]
enum Ref {
    /// One of the acting user's tasks.
    Own(usize),
    /// One of the other user's tasks: must behave exactly like a missing id.
    Other(usize),
    /// A task deleted earlier in the case.
    Gone(usize),
    /// An id that never existed.
    Random(u128),
}

#[derive(Debug, Clone)]
enum Version {
    None,
    Current,
    /// Off the current version by this much (+1 each).
    Stale(u8),
}

#[derive(Debug, Clone)]
enum Search {
    Literal(String),
    /// A piece of an existing task's title (or description), optionally with ASCII case
    /// swapped and one character replaced by a LIKE wildcard or escape (which must then match
    /// only itself).
    Substring {
        task: usize,
        in_description: bool,
        start: usize,
        len: usize,
        swap_case: bool,
        wildcard: Option<(usize, char)>,
    },
}

/// `created_at` of an existing task of the user, moved by `delta_us` microseconds.
#[derive(Debug, Clone)]
struct Bound {
    task: usize,
    delta_us: i64,
}

#[derive(Debug, Clone)]
struct FilterGen {
    completed: Option<bool>,
    priority_min: Option<i16>,
    priority_max: Option<i16>,
    search: Option<Search>,
    created_after: Option<Bound>,
    created_before: Option<Bound>,
}

type NewTaskGen = (String, Option<String>, Option<i16>);

#[derive(Debug, Clone)]
enum CursorAbuse {
    /// User A's cursor in user B's listing.
    OtherUser,
    /// A cursor of one sort order used with another.
    OtherSort(TaskSort),
    /// One character changed.
    Tampered(usize),
    /// Not a cursor at all.
    Garbage(String),
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        who: usize,
        task: NewTaskGen,
    },
    CreateMany {
        who: usize,
        tasks: Vec<NewTaskGen>,
    },
    Get {
        who: usize,
        r: Ref,
    },
    Update {
        who: usize,
        r: Ref,
        patch: TaskPatch,
        version: Version,
    },
    Complete {
        who: usize,
        r: Ref,
    },
    Reopen {
        who: usize,
        r: Ref,
    },
    Delete {
        who: usize,
        r: Ref,
    },
    CompleteMany {
        who: usize,
        refs: Vec<Ref>,
    },
    DeleteMany {
        who: usize,
        refs: Vec<Ref>,
    },
    List {
        who: usize,
        filter: FilterGen,
        sort: TaskSort,
        limit: u32,
    },
    BadCursor {
        who: usize,
        sort: TaskSort,
        abuse: CursorAbuse,
    },
    Stats {
        who: usize,
    },
}

/// Fragments that have broken SQL layers before: quotes, escapes, comment starts, LIKE
/// wildcards, multi-byte and combining characters, bidi controls, whitespace of every kind.
const PIECES: &[&str] = &[
    "a",
    "b",
    "Task",
    "TASK",
    "task",
    "x y",
    "'",
    "''",
    "\"",
    "\\",
    "\\\\",
    ";--",
    "'); DROP TABLE tasks;--",
    "%",
    "_",
    "%_",
    "\\%",
    "\\_",
    "🦀",
    "👩\u{200D}💻",
    "\u{200F}",
    "\u{202E}",
    "\u{200B}",
    "Ä",
    "ä",
    "É",
    "ß",
    "e\u{301}",
    "日本語",
    "ΩЖ",
    "ÄÖÜ",
    "ÉÈ",
    "\t",
    " ",
    "NULL",
    "\\N",
    "$1",
    "?",
    "\r\n",
];

/// Searches that a wrong escape or a wrong case fold would answer differently: LIKE wildcards
/// and escapes (literal on both backends), and non-ASCII capitals (folded by neither: SQLite's
/// `lower` is ASCII-only, so PostgreSQL must not fold them either).
const SEARCHES: &[&str] = &[
    "%", "_", "\\", "%%", "__", "a_", "_a", "%a", "\\%", "\\_", "%\\", "Ä", "É", "ä", "é", "Ω",
    "ω", "Ж", "TASK", "tAsK",
];

/// What may surround a title: trimmed away by the layer (Unicode white space).
const EDGES: &[&str] = &["", "", "", " ", "  ", "\t", "\n", "\u{A0}", "\u{3000}"];

fn text() -> impl Strategy<Value = String> {
    (
        select(EDGES),
        prop::collection::vec(select(PIECES), 1..5),
        select(EDGES),
    )
        .prop_map(|(lead, body, trail)| format!("{lead}{}{trail}", body.concat()))
}

fn title() -> BoxedStrategy<String> {
    prop_oneof![
        14 => text(),
        1 => Just("🦀".repeat(255)),
        1 => Just(format!("  {}\t", "x".repeat(255))),
        1 => Just("é".repeat(256)),
        1 => Just(String::new()),
        1 => select(&[" ", " \t\n ", "\u{A0}\u{3000}"][..]).prop_map(String::from),
        1 => text().prop_map(|t| format!("{t}\0")),
    ]
    .boxed()
}

/// An optional text as the layer stores it: the empty string as absent.
fn stored_text(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.is_empty())
}

fn description_value() -> BoxedStrategy<String> {
    prop_oneof![
        8 => text(),
        1 => Just(String::new()),
        1 => Just("d".repeat(1000)),
        1 => Just("🦀".repeat(1001)),
        1 => Just("a\0b".to_owned()),
    ]
    .boxed()
}

fn priority_value() -> BoxedStrategy<i16> {
    prop_oneof![
        10 => 1i16..=5,
        1 => select(&[0i16, 6, -1, i16::MAX, i16::MIN][..]),
    ]
    .boxed()
}

fn new_task() -> impl Strategy<Value = NewTaskGen> {
    (
        title(),
        proptest::option::weighted(0.6, description_value()),
        proptest::option::weighted(0.6, priority_value()),
    )
}

fn who() -> impl Strategy<Value = usize> {
    0usize..2
}

fn task_ref() -> BoxedStrategy<Ref> {
    prop_oneof![
        8 => any::<u16>().prop_map(|i| Ref::Own(i.into())),
        3 => any::<u16>().prop_map(|i| Ref::Other(i.into())),
        1 => any::<u16>().prop_map(|i| Ref::Gone(i.into())),
        1 => any::<u128>().prop_map(Ref::Random),
    ]
    .boxed()
}

fn patch() -> impl Strategy<Value = TaskPatch> {
    (
        proptest::option::weighted(0.35, title()),
        proptest::option::weighted(0.3, proptest::option::weighted(0.8, description_value())),
        proptest::option::weighted(0.35, priority_value()),
        proptest::option::weighted(0.3, any::<bool>()),
    )
        .prop_map(|(title, description, priority, completed)| TaskPatch {
            title,
            description,
            priority,
            completed,
        })
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        3 => Just(Version::None),
        3 => Just(Version::Current),
        2 => (0u8..3).prop_map(Version::Stale),
    ]
}

fn search() -> BoxedStrategy<Search> {
    prop_oneof![
        6 => (
            any::<u16>(),
            proptest::bool::weighted(0.5),
            any::<u8>(),
            1usize..6,
            any::<bool>(),
            proptest::option::weighted(0.4, (any::<u8>(), select(&['%', '_', '\\'][..]))),
        )
            .prop_map(|(task, in_description, start, len, swap_case, wildcard)| Search::Substring {
                task: task.into(),
                in_description,
                start: start.into(),
                len,
                swap_case,
                wildcard: wildcard.map(|(i, c)| (usize::from(i), c)),
            }),
        2 => select(PIECES).prop_map(|s| Search::Literal(s.to_owned())),
        3 => select(SEARCHES).prop_map(|s| Search::Literal(s.to_owned())),
        1 => text().prop_map(Search::Literal),
        1 => Just(Search::Literal(String::new())),
        1 => Just(Search::Literal("s".repeat(256))),
        1 => Just(Search::Literal("a\0".to_owned())),
    ]
    .boxed()
}

fn bound() -> impl Strategy<Value = Bound> {
    (any::<u16>(), -1i64..=1).prop_map(|(task, delta_us)| Bound {
        task: task.into(),
        delta_us,
    })
}

fn priority_bound() -> BoxedStrategy<i16> {
    prop_oneof![12 => 1i16..=5, 1 => Just(0i16), 1 => Just(6i16)].boxed()
}

fn filter() -> impl Strategy<Value = FilterGen> {
    (
        proptest::option::weighted(0.3, any::<bool>()),
        proptest::option::weighted(0.25, priority_bound()),
        proptest::option::weighted(0.25, priority_bound()),
        proptest::option::weighted(0.5, search()),
        proptest::option::weighted(0.2, bound()),
        proptest::option::weighted(0.2, bound()),
    )
        .prop_map(
            |(completed, priority_min, priority_max, search, created_after, created_before)| {
                FilterGen {
                    completed,
                    priority_min,
                    priority_max,
                    search,
                    created_after,
                    created_before,
                }
            },
        )
}

fn sort() -> impl Strategy<Value = TaskSort> {
    select(TaskSort::ALL.to_vec())
}

fn limit() -> BoxedStrategy<u32> {
    prop_oneof![
        8 => 1u32..=4,
        3 => 5u32..=12,
        1 => Just(1000u32),
        1 => select(&[0u32, 1001][..]),
    ]
    .boxed()
}

fn cursor_abuse() -> BoxedStrategy<CursorAbuse> {
    prop_oneof![
        Just(CursorAbuse::OtherUser),
        sort().prop_map(CursorAbuse::OtherSort),
        any::<u8>().prop_map(|i| CursorAbuse::Tampered(i.into())),
        select(
            &[
                "",
                "'; DROP TABLE tasks;--",
                "%",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            ][..]
        )
        .prop_map(|s| CursorAbuse::Garbage(s.to_owned())),
    ]
    .boxed()
}

fn op() -> impl Strategy<Value = Op> {
    Union::new_weighted(vec![
        (
            10,
            (who(), new_task())
                .prop_map(|(who, task)| Op::Create { who, task })
                .boxed(),
        ),
        (
            2,
            (who(), prop::collection::vec(new_task(), 0..5))
                .prop_map(|(who, tasks)| Op::CreateMany { who, tasks })
                .boxed(),
        ),
        (
            3,
            (who(), task_ref())
                .prop_map(|(who, r)| Op::Get { who, r })
                .boxed(),
        ),
        (
            6,
            (who(), task_ref(), patch(), version())
                .prop_map(|(who, r, patch, version)| Op::Update {
                    who,
                    r,
                    patch,
                    version,
                })
                .boxed(),
        ),
        (
            3,
            (who(), task_ref())
                .prop_map(|(who, r)| Op::Complete { who, r })
                .boxed(),
        ),
        (
            2,
            (who(), task_ref())
                .prop_map(|(who, r)| Op::Reopen { who, r })
                .boxed(),
        ),
        (
            2,
            (who(), task_ref())
                .prop_map(|(who, r)| Op::Delete { who, r })
                .boxed(),
        ),
        (
            2,
            (who(), prop::collection::vec(task_ref(), 0..6))
                .prop_map(|(who, refs)| Op::CompleteMany { who, refs })
                .boxed(),
        ),
        (
            1,
            (who(), prop::collection::vec(task_ref(), 0..6))
                .prop_map(|(who, refs)| Op::DeleteMany { who, refs })
                .boxed(),
        ),
        (
            6,
            (who(), filter(), sort(), limit())
                .prop_map(|(who, filter, sort, limit)| Op::List {
                    who,
                    filter,
                    sort,
                    limit,
                })
                .boxed(),
        ),
        (
            1,
            (who(), sort(), cursor_abuse())
                .prop_map(|(who, sort, abuse)| Op::BadCursor { who, sort, abuse })
                .boxed(),
        ),
        (1, who().prop_map(|who| Op::Stats { who }).boxed()),
    ])
}

// ---------------------------------------------------------------------------------------------
// The model's rules
// ---------------------------------------------------------------------------------------------

fn title_ok(t: &str) -> bool {
    !t.contains('\0') && (1..=255).contains(&t.trim().chars().count())
}

fn description_ok(d: &str) -> bool {
    !d.contains('\0') && d.chars().count() <= 1000
}

fn priority_ok(p: i16) -> bool {
    (1..=5).contains(&p)
}

/// The fields a create of `t` must be refused for (empty: it must succeed).
fn new_task_faults((title, description, priority): &NewTaskGen) -> Vec<&'static str> {
    let mut bad = vec![];
    if !title_ok(title) {
        bad.push("title");
    }
    if description.as_deref().is_some_and(|d| !description_ok(d)) {
        bad.push("description");
    }
    if priority.is_some_and(|p| !priority_ok(p)) {
        bad.push("priority");
    }
    bad
}

fn patch_faults(p: &TaskPatch) -> Vec<&'static str> {
    let mut bad = vec![];
    if p.title.as_deref().is_some_and(|t| !title_ok(t)) {
        bad.push("title");
    }
    if let Some(Some(d)) = &p.description
        && !description_ok(d)
    {
        bad.push("description");
    }
    if p.priority.is_some_and(|p| !priority_ok(p)) {
        bad.push("priority");
    }
    bad
}

/// Literal substring, ASCII letters case-insensitive (the documented search semantics).
fn search_matches(t: &Task, needle: &str) -> bool {
    let needle = needle.to_ascii_lowercase();
    t.title.to_ascii_lowercase().contains(&needle)
        || t.description
            .as_deref()
            .is_some_and(|d| d.to_ascii_lowercase().contains(&needle))
}

fn filter_matches(f: &TaskFilter, t: &Task) -> bool {
    f.completed.is_none_or(|c| t.completed == c)
        && f.priority_min.is_none_or(|p| t.priority >= p)
        && f.priority_max.is_none_or(|p| t.priority <= p)
        && f.created_after.is_none_or(|a| t.created_at > a)
        && f.created_before.is_none_or(|b| t.created_at < b)
        && f.search.as_deref().is_none_or(|s| search_matches(t, s))
}

/// The listing order: the sort key, then the id, both in the sort's direction; titles bytewise.
fn order(sort: TaskSort, a: &Task, b: &Task) -> std::cmp::Ordering {
    use TaskSort::*;
    let key = match sort {
        CreatedAsc | CreatedDesc => a.created_at.cmp(&b.created_at),
        UpdatedAsc | UpdatedDesc => a.updated_at.cmp(&b.updated_at),
        PriorityAsc | PriorityDesc => a.priority.cmp(&b.priority),
        TitleAsc | TitleDesc => a.title.as_bytes().cmp(b.title.as_bytes()),
    }
    .then(a.id.cmp(&b.id));
    if sort.is_desc() { key.reverse() } else { key }
}

/// What must hold for every task the layer ever returns.
fn invariants(t: &Task) -> Result<(), TestCaseError> {
    prop_assert!(
        t.updated_at >= t.created_at,
        "updated_at before created_at: {t:?}"
    );
    prop_assert_eq!(
        t.completed,
        t.completed_at.is_some(),
        "completed_at iff completed: {:?}",
        t
    );
    if let Some(c) = t.completed_at {
        prop_assert!(
            t.created_at <= c && c <= t.updated_at,
            "completed_at outside created_at..=updated_at: {t:?}"
        );
    }
    prop_assert!(t.version >= 1, "version below 1: {t:?}");
    prop_assert!(priority_ok(t.priority), "priority out of range: {t:?}");
    for ts in [Some(t.created_at), Some(t.updated_at), t.completed_at]
        .into_iter()
        .flatten()
    {
        prop_assert_eq!(
            ts.timestamp_subsec_nanos() % 1000,
            0,
            "not whole µs: {:?}",
            t
        );
    }
    Ok(())
}

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

fn ok<T: Debug>(step: usize, what: &str, got: taskstore::Result<T>) -> Result<T, TestCaseError> {
    got.map_err(|e| fail(format!("step {step}: {what} must succeed, got {e:?}")))
}

fn expect_validation<T: Debug>(
    step: usize,
    what: &str,
    got: taskstore::Result<T>,
    fields: &[&str],
) -> Result<(), TestCaseError> {
    match got {
        Err(Error::Validation { field, .. }) if fields.contains(&field.as_str()) => Ok(()),
        other => Err(fail(format!(
            "step {step}: {what} must be a validation error on one of {fields:?}, got {other:?}"
        ))),
    }
}

fn expect_not_found<T: Debug>(
    step: usize,
    what: &str,
    got: taskstore::Result<T>,
) -> Result<(), TestCaseError> {
    match got {
        Err(Error::NotFound { entity: "task" }) => Ok(()),
        other => Err(fail(format!(
            "step {step}: {what} must be NotFound(task), got {other:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// One case: two users, the model, and the layer
// ---------------------------------------------------------------------------------------------

struct Case<'c> {
    conn: &'c mut DbConnection,
    users: [UserId; 2],
    /// Every live task of both users, as the layer must have it.
    tasks: BTreeMap<TaskId, Task>,
    /// Ids deleted during the case.
    gone: Vec<TaskId>,
    step: usize,
}

impl<'c> Case<'c> {
    fn new(conn: &'c mut DbConnection) -> Result<Self, TestCaseError> {
        let mut ids = [UserId(Uuid::nil()); 2];
        for id in &mut ids {
            let email = format!("model-{}@example.com", Uuid::now_v7().simple());
            let user = users::create(
                conn,
                &NewUser {
                    email: &email,
                    password_hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
                    first_name: None,
                    last_name: None,
                },
            )
            .map_err(|e| fail(format!("creating a user: {e:?}")))?;
            *id = user.id;
        }
        Ok(Self {
            conn,
            users: ids,
            tasks: BTreeMap::new(),
            gone: vec![],
            step: 0,
        })
    }

    fn owned_by(&self, user: UserId) -> Vec<&Task> {
        self.tasks.values().filter(|t| t.user_id == user).collect()
    }

    fn resolve(&self, who: usize, r: &Ref) -> TaskId {
        let pick = |ids: Vec<TaskId>, i: usize| (!ids.is_empty()).then(|| ids[i % ids.len()]);
        let ids_of = |u: UserId| self.owned_by(u).iter().map(|t| t.id).collect::<Vec<_>>();
        let (found, seed) = match r {
            Ref::Own(i) => (pick(ids_of(self.users[who]), *i), *i as u128),
            Ref::Other(i) => (pick(ids_of(self.users[1 - who]), *i), *i as u128),
            Ref::Gone(i) => (pick(self.gone.clone(), *i), *i as u128),
            Ref::Random(u) => (None, *u),
        };
        found.unwrap_or(TaskId(Uuid::from_u128(
            seed ^ 0x5eed_0000_0000_7000_8000_0000_0000_0000,
        )))
    }

    /// The stored state of `id` equals the model: the model's task via its owner and NotFound
    /// for the other user, or NotFound for both when the model has no such task.
    fn check_stored(&mut self, id: TaskId) -> Result<(), TestCaseError> {
        let step = self.step;
        for user in self.users {
            let got = tasks::get(self.conn, user, id);
            match self.tasks.get(&id).filter(|t| t.user_id == user) {
                Some(expected) => {
                    let got = ok(step, "reading a task back", got)?;
                    prop_assert_eq!(&got, expected, "step {}: stored task differs", step);
                }
                None => expect_not_found(step, "reading a task of nobody / another user", got)?,
            }
        }
        Ok(())
    }

    fn model_stats(&self, user: UserId) -> TaskStats {
        let mut s = TaskStats::default();
        for t in self.owned_by(user) {
            s.total += 1;
            if t.completed {
                s.completed += 1;
            } else {
                s.open += 1;
            }
            s.by_priority[usize::try_from(t.priority - 1).expect("priority 1..=5")] += 1;
        }
        s
    }

    /// Both users' statistics equal the model (run after every operation: a refused or foreign
    /// write that slipped through shows up here at once).
    fn check_stats(&mut self) -> Result<(), TestCaseError> {
        for user in self.users {
            let got = ok(self.step, "stats", tasks::stats(self.conn, user))?;
            prop_assert_eq!(
                got,
                self.model_stats(user),
                "step {}: stats differ",
                self.step
            );
        }
        Ok(())
    }

    /// Every task of both users, listed to the end, equals the model.
    fn reconcile(&mut self) -> Result<(), TestCaseError> {
        self.step += 1;
        for who in 0..2 {
            self.list(who, &TaskFilter::default(), TaskSort::CreatedAsc, 1000)?;
            self.list(who, &TaskFilter::default(), TaskSort::TitleDesc, 7)?;
        }
        for t in self.tasks.values() {
            invariants(t)?;
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let step = self.step;
        match op {
            Op::Create { who, task } => self.create(*who, task),
            Op::CreateMany { who, tasks } => self.create_many(*who, tasks),
            Op::Get { who, r } => {
                let id = self.resolve(*who, r);
                let got = tasks::get(self.conn, self.users[*who], id);
                match self
                    .tasks
                    .get(&id)
                    .filter(|t| t.user_id == self.users[*who])
                {
                    Some(expected) => {
                        let got = ok(step, "get", got)?;
                        prop_assert_eq!(&got, expected, "step {}: get", step);
                        Ok(())
                    }
                    None => expect_not_found(step, "get", got),
                }
            }
            Op::Update {
                who,
                r,
                patch,
                version,
            } => self.update(*who, r, patch, version),
            Op::Complete { who, r } => self.set_completed(*who, r, true),
            Op::Reopen { who, r } => self.set_completed(*who, r, false),
            Op::Delete { who, r } => {
                let (owner, id) = (self.users[*who], self.resolve(*who, r));
                let got = tasks::delete(self.conn, owner, id);
                if self.tasks.get(&id).is_some_and(|t| t.user_id == owner) {
                    ok(step, "delete", got)?;
                    self.tasks.remove(&id);
                    self.gone.push(id);
                } else {
                    expect_not_found(step, "delete", got)?;
                }
                self.check_stored(id)
            }
            Op::CompleteMany { who, refs } => self.complete_many(*who, refs),
            Op::DeleteMany { who, refs } => self.delete_many(*who, refs),
            Op::List {
                who,
                filter,
                sort,
                limit,
            } => {
                let filter = self.make_filter(*who, filter);
                self.list(*who, &filter, *sort, *limit)
            }
            Op::BadCursor { who, sort, abuse } => self.bad_cursor(*who, *sort, abuse),
            Op::Stats { who } => {
                let user = self.users[*who];
                let got = ok(step, "stats", tasks::stats(self.conn, user))?;
                prop_assert_eq!(got, self.model_stats(user), "step {}: stats", step);
                Ok(())
            }
        }
    }

    fn create(&mut self, who: usize, spec: &NewTaskGen) -> Result<(), TestCaseError> {
        let (step, owner) = (self.step, self.users[who]);
        let (title, description, priority) = spec;
        let new = NewTask {
            title,
            description: description.as_deref(),
            priority: *priority,
        };
        let before = Utc::now() - Duration::seconds(5);
        let got = tasks::create(self.conn, owner, &new);
        let faults = new_task_faults(spec);
        if !faults.is_empty() {
            return expect_validation(step, "create", got, &faults);
        }
        let task = ok(step, "create", got)?;
        invariants(&task)?;
        let expected = Task {
            id: task.id,
            user_id: owner,
            title: title.trim().to_owned(),
            description: stored_text(description),
            completed: false,
            priority: priority.unwrap_or(3),
            version: 1,
            created_at: task.created_at,
            updated_at: task.created_at,
            completed_at: None,
        };
        prop_assert_eq!(&task, &expected, "step {}: create", step);
        prop_assert!(
            task.created_at >= before && task.created_at <= Utc::now() + Duration::seconds(5),
            "step {step}: created_at is not now: {task:?}"
        );
        prop_assert!(
            !self.tasks.contains_key(&task.id) && !self.gone.contains(&task.id),
            "step {step}: id reused"
        );
        self.tasks.insert(task.id, task.clone());
        // What was returned is what was stored, byte for byte.
        self.check_stored(task.id)
    }

    fn create_many(&mut self, who: usize, gens: &[NewTaskGen]) -> Result<(), TestCaseError> {
        let (step, owner) = (self.step, self.users[who]);
        let new: Vec<NewTask<'_>> = gens
            .iter()
            .map(|(t, d, p)| NewTask {
                title: t,
                description: d.as_deref(),
                priority: *p,
            })
            .collect();
        let got = tasks::create_many(self.conn, owner, &new);
        let faults: Vec<&str> = gens.iter().flat_map(new_task_faults).collect();
        if !faults.is_empty() {
            return expect_validation(step, "create_many", got, &faults);
        }
        prop_assert_eq!(
            ok(step, "create_many", got)?,
            gens.len(),
            "step {}: count",
            step
        );

        // Find the new rows through a full listing; in id order they are in the given order.
        let listed = self.fetch_all(owner, &TaskFilter::default(), TaskSort::CreatedAsc, 1000)?;
        let mut fresh: Vec<Task> = listed
            .into_iter()
            .filter(|t| !self.tasks.contains_key(&t.id))
            .collect();
        fresh.sort_by_key(|t| t.id);
        prop_assert_eq!(fresh.len(), gens.len(), "step {}: new rows", step);
        for (t, (title, description, priority)) in fresh.iter().zip(gens) {
            invariants(t)?;
            let expected = Task {
                id: t.id,
                user_id: owner,
                title: title.trim().to_owned(),
                description: stored_text(description),
                completed: false,
                priority: priority.unwrap_or(3),
                version: 1,
                created_at: fresh[0].created_at,
                updated_at: fresh[0].created_at,
                completed_at: None,
            };
            prop_assert_eq!(t, &expected, "step {}: create_many row", step);
        }
        self.tasks.extend(fresh.into_iter().map(|t| (t.id, t)));
        Ok(())
    }

    fn update(
        &mut self,
        who: usize,
        r: &Ref,
        patch: &TaskPatch,
        version: &Version,
    ) -> Result<(), TestCaseError> {
        let (step, owner, id) = (self.step, self.users[who], self.resolve(who, r));
        let current = self.tasks.get(&id).filter(|t| t.user_id == owner).cloned();
        let at = current.as_ref().map_or(1, |t| t.version);
        let expected_version = match version {
            Version::None => None,
            Version::Current => Some(at),
            Version::Stale(k) => Some(if at > i32::from(*k) + 1 {
                at - 1 - i32::from(*k)
            } else {
                at + 1 + i32::from(*k)
            }),
        };
        let got = tasks::update(self.conn, owner, id, patch, expected_version);
        let faults = patch_faults(patch);
        if !faults.is_empty() {
            expect_validation(step, "update", got, &faults)?;
            return self.check_stored(id);
        }
        let Some(old) = current else {
            expect_not_found(step, "update", got)?;
            return self.check_stored(id);
        };
        if let Some(v) = expected_version.filter(|v| *v != old.version) {
            match got {
                Err(Error::StaleVersion { expected, actual })
                    if expected == v && actual == old.version => {}
                other => {
                    return Err(fail(format!(
                        "step {step}: update with stale version {v} (at {}) must be \
                         StaleVersion, got {other:?}",
                        old.version
                    )));
                }
            }
            return self.check_stored(id);
        }
        let task = ok(step, "update", got)?;
        invariants(&task)?;
        let empty = patch.title.is_none()
            && patch.description.is_none()
            && patch.priority.is_none()
            && patch.completed.is_none();
        if empty {
            prop_assert_eq!(
                &task,
                &old,
                "step {}: an empty patch changed the task",
                step
            );
            return self.check_stored(id);
        }
        prop_assert!(
            task.updated_at > old.updated_at,
            "step {step}: updated_at did not move: {} -> {}",
            old.updated_at,
            task.updated_at
        );
        let mut expected = old.clone();
        if let Some(t) = &patch.title {
            expected.title = t.trim().to_owned();
        }
        if let Some(d) = &patch.description {
            expected.description = stored_text(d);
        }
        if let Some(p) = patch.priority {
            expected.priority = p;
        }
        match patch.completed {
            Some(true) => {
                expected.completed = true;
                expected.completed_at = old.completed_at.or(Some(task.updated_at));
            }
            Some(false) => {
                expected.completed = false;
                expected.completed_at = None;
            }
            None => {}
        }
        expected.version = old.version + 1;
        expected.updated_at = task.updated_at;
        prop_assert_eq!(&task, &expected, "step {}: update", step);
        self.tasks.insert(id, task);
        self.check_stored(id)
    }

    fn set_completed(&mut self, who: usize, r: &Ref, done: bool) -> Result<(), TestCaseError> {
        let (step, owner, id) = (self.step, self.users[who], self.resolve(who, r));
        let what = if done { "complete" } else { "reopen" };
        let got = if done {
            tasks::complete(self.conn, owner, id)
        } else {
            tasks::reopen(self.conn, owner, id)
        };
        let Some(old) = self.tasks.get(&id).filter(|t| t.user_id == owner).cloned() else {
            expect_not_found(step, what, got)?;
            return self.check_stored(id);
        };
        let task = ok(step, what, got)?;
        invariants(&task)?;
        if old.completed == done {
            prop_assert_eq!(
                &task,
                &old,
                "step {}: {} of a task already so changes nothing",
                step,
                what
            );
        } else {
            prop_assert!(
                task.updated_at > old.updated_at,
                "step {step}: updated_at did not move: {} -> {}",
                old.updated_at,
                task.updated_at
            );
            let expected = Task {
                completed: done,
                completed_at: done.then_some(task.updated_at),
                version: old.version + 1,
                updated_at: task.updated_at,
                ..old
            };
            prop_assert_eq!(&task, &expected, "step {}: {}", step, what);
            self.tasks.insert(id, task);
        }
        self.check_stored(id)
    }

    fn complete_many(&mut self, who: usize, refs: &[Ref]) -> Result<(), TestCaseError> {
        let (step, owner) = (self.step, self.users[who]);
        let ids: Vec<TaskId> = refs.iter().map(|r| self.resolve(who, r)).collect();
        let affected: BTreeSet<TaskId> = ids
            .iter()
            .copied()
            .filter(|id| {
                self.tasks
                    .get(id)
                    .is_some_and(|t| t.user_id == owner && !t.completed)
            })
            .collect();
        let got = ok(
            step,
            "complete_many",
            tasks::complete_many(self.conn, owner, &ids),
        )?;
        prop_assert_eq!(got, affected.len(), "step {}: complete_many count", step);
        let mut stamp = None;
        for id in &affected {
            let task = ok(step, "reading back", tasks::get(self.conn, owner, *id))?;
            invariants(&task)?;
            let old = self.tasks[id].clone();
            prop_assert!(
                task.updated_at > old.updated_at,
                "step {step}: updated_at did not move: {} -> {}",
                old.updated_at,
                task.updated_at
            );
            prop_assert_eq!(
                *stamp.get_or_insert(task.updated_at),
                task.updated_at,
                "step {}: one statement, one time",
                step
            );
            let expected = Task {
                completed: true,
                completed_at: Some(task.updated_at),
                version: old.version + 1,
                updated_at: task.updated_at,
                ..old
            };
            prop_assert_eq!(&task, &expected, "step {}: complete_many", step);
            self.tasks.insert(*id, task);
        }
        for id in ids {
            self.check_stored(id)?;
        }
        Ok(())
    }

    fn delete_many(&mut self, who: usize, refs: &[Ref]) -> Result<(), TestCaseError> {
        let (step, owner) = (self.step, self.users[who]);
        let ids: Vec<TaskId> = refs.iter().map(|r| self.resolve(who, r)).collect();
        let affected: BTreeSet<TaskId> = ids
            .iter()
            .copied()
            .filter(|id| self.tasks.get(id).is_some_and(|t| t.user_id == owner))
            .collect();
        let got = ok(
            step,
            "delete_many",
            tasks::delete_many(self.conn, owner, &ids),
        )?;
        prop_assert_eq!(got, affected.len(), "step {}: delete_many count", step);
        for id in &affected {
            self.tasks.remove(id);
            self.gone.push(*id);
        }
        for id in ids {
            self.check_stored(id)?;
        }
        Ok(())
    }

    fn make_filter(&self, who: usize, g: &FilterGen) -> TaskFilter {
        let mine = self.owned_by(self.users[who]);
        let bound = |b: &Option<Bound>| -> Option<DateTime<Utc>> {
            let b = b.as_ref()?;
            let t = mine.get(b.task % mine.len().max(1))?;
            Some(t.created_at + Duration::microseconds(b.delta_us))
        };
        let search = g.search.as_ref().map(|s| match s {
            Search::Literal(s) => s.clone(),
            Search::Substring {
                task,
                in_description,
                start,
                len,
                swap_case,
                wildcard,
            } => {
                let Some(t) = mine.get(task % mine.len().max(1)) else {
                    return "nothing here".to_owned();
                };
                let text = match &t.description {
                    Some(d) if *in_description && !d.is_empty() => d,
                    _ => &t.title,
                };
                let chars: Vec<char> = text.chars().collect();
                let start = start % chars.len();
                let mut piece: Vec<char> = chars[start..(start + len).min(chars.len())].to_vec();
                if let Some((i, c)) = wildcard {
                    let i = i % piece.len();
                    piece[i] = *c;
                }
                let piece: String = piece.into_iter().collect();
                if *swap_case {
                    piece
                        .chars()
                        .map(|c| {
                            if c.is_ascii_lowercase() {
                                c.to_ascii_uppercase()
                            } else {
                                c.to_ascii_lowercase()
                            }
                        })
                        .collect()
                } else {
                    piece
                }
            }
        });
        TaskFilter {
            completed: g.completed,
            priority_min: g.priority_min,
            priority_max: g.priority_max,
            search,
            created_after: bound(&g.created_after),
            created_before: bound(&g.created_before),
        }
    }

    /// Follows the listing's cursors to the end; checks the shape of every page.
    fn fetch_all(
        &mut self,
        owner: UserId,
        filter: &TaskFilter,
        sort: TaskSort,
        limit: u32,
    ) -> Result<Vec<Task>, TestCaseError> {
        let step = self.step;
        let mut request = PageRequest::first(limit);
        let mut all = vec![];
        for page_no in 1.. {
            let page = ok(
                step,
                "list",
                tasks::list(self.conn, owner, filter, sort, &request),
            )?;
            let n = page.items.len();
            prop_assert!(
                n <= limit as usize,
                "step {step}: page of {n} > limit {limit}"
            );
            if page.next_cursor.is_some() {
                prop_assert_eq!(
                    n,
                    limit as usize,
                    "step {}: a page before the last is full",
                    step
                );
            } else if page_no > 1 {
                prop_assert!(n > 0, "step {step}: an empty last page after a cursor");
            }
            all.extend(page.items);
            prop_assert!(page_no <= 1001, "step {step}: the cursor never ends");
            match page.next_cursor {
                Some(c) => request.cursor = Some(c),
                None => break,
            }
        }
        Ok(all)
    }

    fn list(
        &mut self,
        who: usize,
        filter: &TaskFilter,
        sort: TaskSort,
        limit: u32,
    ) -> Result<(), TestCaseError> {
        let (step, owner) = (self.step, self.users[who]);
        let mut faults = vec![];
        if !(1..=1000).contains(&limit) {
            faults.push("limit");
        }
        if filter.priority_min.is_some_and(|p| !priority_ok(p)) {
            faults.push("priority_min");
        }
        if filter.priority_max.is_some_and(|p| !priority_ok(p)) {
            faults.push("priority_max");
        }
        if filter
            .search
            .as_deref()
            .is_some_and(|s| s.contains('\0') || s.chars().count() > 255)
        {
            faults.push("search");
        }
        if !faults.is_empty() {
            let got = tasks::list(self.conn, owner, filter, sort, &PageRequest::first(limit));
            return expect_validation(step, "list", got, &faults);
        }
        let got = self.fetch_all(owner, filter, sort, limit)?;
        let mut expected: Vec<Task> = self
            .owned_by(owner)
            .into_iter()
            .filter(|t| filter_matches(filter, t))
            .cloned()
            .collect();
        expected.sort_by(|a, b| order(sort, a, b));
        let ids = |v: &[Task]| v.iter().map(|t| t.id).collect::<Vec<_>>();
        prop_assert_eq!(
            ids(&got),
            ids(&expected),
            "step {}: listing {:?} sorted {} by {}",
            step,
            filter,
            sort,
            limit
        );
        prop_assert_eq!(got, expected, "step {}: listed tasks differ", step);
        Ok(())
    }

    fn bad_cursor(
        &mut self,
        who: usize,
        sort: TaskSort,
        abuse: &CursorAbuse,
    ) -> Result<(), TestCaseError> {
        let (step, owner) = (self.step, self.users[who]);
        let all = TaskFilter::default();
        let first = ok(
            step,
            "list",
            tasks::list(self.conn, owner, &all, sort, &PageRequest::first(1)),
        )?;
        let cursor = first.next_cursor;
        let (user, sort, cursor) = match (abuse, cursor) {
            (CursorAbuse::Garbage(g), _) => (owner, sort, g.clone()),
            (_, None) => return Ok(()), // fewer than two tasks: no cursor to abuse
            (CursorAbuse::OtherUser, Some(c)) => (self.users[1 - who], sort, c),
            (CursorAbuse::OtherSort(other), Some(c)) => {
                if *other == sort {
                    return Ok(());
                }
                (owner, *other, c)
            }
            (CursorAbuse::Tampered(i), Some(c)) => {
                let mut chars: Vec<char> = c.chars().collect();
                let i = i % chars.len();
                chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
                (owner, sort, chars.into_iter().collect())
            }
        };
        let got = tasks::list(
            self.conn,
            user,
            &all,
            sort,
            &PageRequest::after(5, Some(cursor)),
        );
        expect_validation(step, "a foreign or damaged cursor", got, &["cursor"])
    }
}
