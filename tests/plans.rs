//! Query plans of every task listing shape at 1 000 users × 1 000 tasks (PostgreSQL; issue 4).
//!
//! SPEC §2: every list query is an index scan at 1M rows, never a sequential scan over other
//! users' rows; SPEC §3: page N costs the same as page 1. For each sort order × direction, with
//! no filter and with each filter (and all of them at once), on the first page and on a page
//! reached through a cursor 90% of the way into the owner's list, this test looks at the plan of
//! exactly the statement the layer sends — `diagnostics::explain_list` wraps the query builder
//! that `tasks::list` runs, binds included — and asserts:
//!
//! - no `Seq Scan` anywhere in the plan;
//! - the rows are found through an index led by `user_id`, with the owner in the index
//!   condition, so no other user's row is ever read;
//! - the deep page reads about as many rows and buffers as the first page (the plans' actual
//!   row counts and shared buffers, never wall time).
//!
//! `EXPLAIN` with bind values plans like the first executions of a prepared statement (custom
//! plans). After five executions PostgreSQL may switch a prepared statement to a generic plan,
//! so every shape is also run through `tasks::list` itself, once under
//! `plan_cache_mode = force_generic_plan` (the plan it may switch to) and once on a warm
//! statement (the 7th execution in the default mode: what a long-lived pool runs). The backend's
//! own counters for the transaction (`pg_stat_get_xact_*`) must show index scans of user-led
//! indexes only, with deep pages again costing about what first pages cost, and the warm
//! statement must cost what its custom plan costs. (A generic plan of a range filter on a column
//! other than the sort column reads the owner's whole range; `tasks::list` therefore has such
//! listings planned with their values every time — see `src/repo/uncached.rs`.)
//!
//! The data is seeded with `INSERT ... SELECT generate_series` in a database owned by the test
//! (dropped at the end): secondary indexes and the primary key are dropped for the load and
//! rebuilt from their catalog definitions, foreign-key triggers are skipped (the rows are
//! consistent by construction), and `random()` is seeded so that every run sees the same data.
//! A user's tasks are interleaved with everybody else's in the heap, as they would be after a
//! year of use, so a page touches one heap page per row: the worst case, not a flattering one.
//! Run with `--nocapture` to see the index and the costs of every shape.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use chrono::{Duration, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde_json::Value;
use taskstore::DbConnection;
use taskstore::diagnostics;
use taskstore::models::{PageRequest, TaskFilter, TaskSort, UserId};
use taskstore::repo::tasks;
use taskstore::schema::users;

use common::{Backend, TestDb};

const USERS: i64 = 1_000;
const TASKS_PER_USER: i64 = 1_000;
/// The page size the plans are taken at (the layer's default).
const PAGE: u32 = 20;
/// How much more a deep page may cost than the first: row counts and buffers are compared as
/// `deep <= FACTOR * first + SLACK`. The rows a filtered page must skip vary from page to page
/// (the data is random), so exact equality would be wrong; a page that scanned everything before
/// its cursor would exceed this by an order of magnitude.
const FACTOR: u64 = 2;
const ROW_SLACK: u64 = 40;
const BUFFER_SLACK: u64 = 40;

#[test]
fn every_list_shape_is_an_index_scan_at_a_million_rows() -> anyhow::Result<()> {
    let started = Instant::now();
    // The seed's statements run longer than the default statement timeout on a busy machine.
    let db = TestDb::new(
        Backend::Postgres,
        &[("DATABASE_STATEMENT_TIMEOUT_MS", "600000")],
    );
    let seed_time = seed(&db.url)?;
    println!("seeded {USERS} users × {TASKS_PER_USER} tasks in {seed_time:.1?}");

    let mut conn = db.conn()?;
    let conn: &mut DbConnection = &mut conn;
    // Any user has exactly TASKS_PER_USER tasks; take one from the middle of the key space.
    let owner: UserId = users::table
        .select(users::id)
        .order(users::id)
        .offset(USERS / 2)
        .first(conn)?;
    let user_led = user_led_indexes(conn)?;
    ensure!(!user_led.is_empty(), "no index on tasks is led by user_id");

    let mut report = String::new();
    let mut failures = vec![];
    let mut shapes = 0;
    for (name, filter) in filters() {
        for sort in TaskSort::ALL {
            shapes += 1;
            let shape = format!("{sort:<9} {name}");
            if let Err(e) = check_shape(conn, owner, name, &filter, sort, &user_led, &mut report)
                .with_context(|| shape.clone())
            {
                failures.push(format!("{e:#}"));
            }
        }
    }
    println!(
        "EXPLAIN: rows read / shared buffers of the first page and of a page after the cursor at \
         row @N;\nprepared: blocks fetched by tasks::list itself, first | deep page, under a forced \
         generic plan and on a warm statement (7th run, plan_cache_mode auto)\n\
         {:<9} {:<15} {:<24} {:>11} {:>16} {:>11} {:>11}\n{report}",
        "sort", "filter", "index (EXPLAIN)", "1st page", "deep page", "generic", "warm"
    );
    println!(
        "{shapes} shapes checked in {:.1?} (seeding included)",
        started.elapsed()
    );
    if !failures.is_empty() {
        bail!(
            "{} shape(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

/// The shape whose plan must use the trigram index: a search of 3 characters or more that
/// matches nothing (a 2-character pattern has no trigram, so `search, no hit` scans the
/// owner's b-tree range as before — bounded by the owner's rows, which `explain` checks).
const TRIGRAM_NO_HIT: &str = "search 4, none";
/// The GIN index of migration `2026-12-01-000002_task_search_index (SQLite) and 2026-12-01-000003_task_search_index (PostgreSQL)`.
const SEARCH_INDEX: &str = "tasks_user_search_idx";

/// The filters of SPEC §3, one at a time and all at once. Titles and descriptions are `Task ` /
/// `Note ` and an md5 in hex, so `ab` occurs in about one row in five and `zz` in none.
fn filters() -> Vec<(&'static str, TaskFilter)> {
    let now = Utc::now();
    let created = TaskFilter {
        created_after: Some(now - Duration::days(270)),
        created_before: Some(now - Duration::days(90)),
        ..TaskFilter::default()
    };
    vec![
        ("none", TaskFilter::default()),
        (
            "completed",
            TaskFilter {
                completed: Some(true),
                ..TaskFilter::default()
            },
        ),
        (
            "open",
            TaskFilter {
                completed: Some(false),
                ..TaskFilter::default()
            },
        ),
        (
            "priority 2..=4",
            TaskFilter {
                priority_min: Some(2),
                priority_max: Some(4),
                ..TaskFilter::default()
            },
        ),
        (
            "priority >= 5",
            TaskFilter {
                priority_min: Some(5),
                ..TaskFilter::default()
            },
        ),
        ("created range", created.clone()),
        (
            "search",
            TaskFilter {
                search: Some("ab".into()),
                ..TaskFilter::default()
            },
        ),
        (
            "search, no hit",
            TaskFilter {
                search: Some("zz".into()),
                ..TaskFilter::default()
            },
        ),
        (
            TRIGRAM_NO_HIT,
            TaskFilter {
                search: Some("zzzq".into()),
                ..TaskFilter::default()
            },
        ),
        (
            "all filters",
            TaskFilter {
                completed: Some(false),
                priority_min: Some(2),
                priority_max: Some(4),
                search: Some("a".into()),
                ..created
            },
        ),
    ]
}

/// What a plan did, from `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`.
#[derive(Debug, Default)]
struct PlanCost {
    /// Node types, outermost first.
    nodes: Vec<String>,
    /// Indexes scanned.
    indexes: Vec<String>,
    /// Whether every index scan's condition names the owner.
    owner_in_index_cond: bool,
    /// Rows of `tasks` the scans produced or removed by a filter: what the page had to read.
    rows: u64,
    /// Shared buffers hit or read by the execution (planning excluded).
    buffers: u64,
}

impl std::fmt::Display for PlanCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {}", self.rows, self.buffers)
    }
}

fn analyse(json: &str) -> anyhow::Result<PlanCost> {
    let v: Value = serde_json::from_str(json).context("EXPLAIN output is not JSON")?;
    let plan = &v[0]["Plan"];
    let n = |node: &Value, key: &str| node[key].as_u64().unwrap_or(0);
    let mut cost = PlanCost {
        buffers: n(plan, "Shared Hit Blocks") + n(plan, "Shared Read Blocks"),
        owner_in_index_cond: true,
        ..PlanCost::default()
    };
    let mut stack = vec![plan];
    while let Some(node) = stack.pop() {
        let ty = node["Node Type"].as_str().unwrap_or("?").to_owned();
        if let Some(index) = node["Index Name"].as_str() {
            cost.indexes.push(index.to_owned());
            let cond = node["Index Cond"].as_str().unwrap_or("");
            cost.owner_in_index_cond &= cond.contains("user_id = ");
        }
        if node["Relation Name"] == "tasks" {
            cost.rows += n(node, "Actual Rows") * n(node, "Actual Loops").max(1)
                + n(node, "Rows Removed by Filter")
                + n(node, "Rows Removed by Index Recheck");
        }
        cost.nodes.push(ty);
        if let Some(children) = node["Plans"].as_array() {
            stack.extend(children.iter().rev());
        }
    }
    Ok(cost)
}

fn explain(
    conn: &mut DbConnection,
    owner: UserId,
    filter: &TaskFilter,
    sort: TaskSort,
    page: &PageRequest,
    user_led: &BTreeSet<String>,
) -> anyhow::Result<PlanCost> {
    let json = diagnostics::explain_list(conn, owner, filter, sort, page)?;
    let cost = analyse(&json)?;
    let context = || format!("plan: {:?} {json}", cost.nodes);
    ensure!(
        !cost.nodes.iter().any(|n| n == "Seq Scan"),
        "sequential scan; {}",
        context()
    );
    ensure!(
        !cost.indexes.is_empty() && cost.indexes.iter().all(|i| user_led.contains(i)),
        "not (only) an index led by user_id: {:?}; {}",
        cost.indexes,
        context()
    );
    ensure!(
        cost.owner_in_index_cond,
        "the owner is not in the index condition; {}",
        context()
    );
    ensure!(
        cost.rows <= TASKS_PER_USER as u64,
        "read {} rows, more than the owner has; {}",
        cost.rows,
        context()
    );
    Ok(cost)
}

/// A cursor about 90% of the way through the owner's matching rows, leaving at least a full
/// page after it; `None` when the listing is too short to have a deep page.
fn deep_cursor(
    conn: &mut DbConnection,
    owner: UserId,
    filter: &TaskFilter,
    sort: TaskSort,
) -> anyhow::Result<Option<(usize, String)>> {
    let all = tasks::list(conn, owner, filter, sort, &PageRequest::first(1000))?;
    ensure!(
        all.next_cursor.is_none(),
        "more than 1000 rows for one user"
    );
    let matching = all.items.len();
    if matching < 2 * PAGE as usize + 2 {
        return Ok(None);
    }
    let skip = (matching * 9 / 10).min(matching - PAGE as usize - 1);
    let page = tasks::list(
        conn,
        owner,
        filter,
        sort,
        &PageRequest::first(u32::try_from(skip)?),
    )?;
    Ok(page.next_cursor.map(|c| (skip, c)))
}

fn check_shape(
    conn: &mut DbConnection,
    owner: UserId,
    name: &str,
    filter: &TaskFilter,
    sort: TaskSort,
    user_led: &BTreeSet<String>,
    report: &mut String,
) -> anyhow::Result<()> {
    let first_page = PageRequest::first(PAGE);
    let first = explain(conn, owner, filter, sort, &first_page, user_led).context("first page")?;
    if name == TRIGRAM_NO_HIT {
        ensure!(
            first.indexes.iter().all(|i| i == SEARCH_INDEX),
            "a search of 3+ characters that matches nothing must be answered by {SEARCH_INDEX} \
             alone, not {:?} (plan {:?})",
            first.indexes,
            first.nodes
        );
        ensure!(
            first.rows == 0,
            "the trigram index should leave no row to recheck, {} read",
            first.rows
        );
    }
    let deep = deep_cursor(conn, owner, filter, sort)?;
    let deep_page = deep
        .as_ref()
        .map(|(_, c)| PageRequest::after(PAGE, Some(c.clone())));
    let deep_cost = match &deep_page {
        Some(page) => {
            Some(explain(conn, owner, filter, sort, page, user_led).context("deep page")?)
        }
        None => None,
    };
    let (generic_first, generic_deep, warm_first, warm_deep) = {
        let mut cost = |page: Option<&PageRequest>, planning| -> anyhow::Result<_> {
            page.map(|page| {
                prepared_cost(conn, owner, filter, sort, page, planning)
                    .with_context(|| format!("{planning:?}, page {page:?}"))
            })
            .transpose()
        };
        (
            cost(Some(&first_page), Planning::ForcedGeneric)?.expect("first page"),
            cost(deep_page.as_ref(), Planning::ForcedGeneric)?,
            cost(Some(&first_page), Planning::Warm)?.expect("first page"),
            cost(deep_page.as_ref(), Planning::Warm)?,
        )
    };

    let show = |c: &Option<PlanCost>, skip: Option<usize>| match (c, skip) {
        (Some(c), Some(skip)) => format!("{c} @{skip}"),
        _ => "(one page)".to_owned(),
    };
    let skip = deep.as_ref().map(|(s, _)| *s);
    let pair = |first: GenericCost, deep: Option<GenericCost>| match deep {
        Some(d) => format!("{} | {}", first.buffers, d.buffers),
        None => first.buffers.to_string(),
    };
    writeln!(
        report,
        "{:<9} {:<15} {:<24} {:>11} {:>16} {:>11} {:>11}",
        sort.to_string(),
        name,
        first.indexes.join("+"),
        first.to_string(),
        show(&deep_cost, skip),
        pair(generic_first, generic_deep),
        pair(warm_first, warm_deep),
    )?;

    if let Some(deep_cost) = &deep_cost {
        ensure!(
            deep_cost.rows <= FACTOR * first.rows + ROW_SLACK,
            "the deep page read {} rows, the first {} (plans {:?} / {:?})",
            deep_cost.rows,
            first.rows,
            deep_cost.nodes,
            first.nodes
        );
        ensure!(
            deep_cost.buffers <= FACTOR * first.buffers + BUFFER_SLACK,
            "the deep page touched {} buffers, the first {}",
            deep_cost.buffers,
            first.buffers
        );
    }
    // What the pool really runs must cost what the custom plan costs: a warm statement that fell
    // back to a generic plan reading the owner's whole range is what repo/uncached.rs prevents.
    for (page, warm, custom) in [
        ("first page", Some(warm_first), Some(&first)),
        ("deep page", warm_deep, deep_cost.as_ref()),
    ] {
        if let (Some(warm), Some(custom)) = (warm, custom) {
            ensure!(
                warm.buffers <= FACTOR * custom.buffers + BUFFER_SLACK,
                "warm prepared statement, {page}: fetched {} blocks where its custom plan needs {}",
                warm.buffers,
                custom.buffers
            );
        }
    }
    for (planning, first, deep) in [
        ("generic plan", generic_first, generic_deep),
        ("warm prepared statement", warm_first, warm_deep),
    ] {
        if let Some(deep) = deep {
            ensure!(
                deep.buffers <= FACTOR * first.buffers + BUFFER_SLACK,
                "{planning}: the deep page fetched {} blocks, the first {}",
                deep.buffers,
                first.buffers
            );
        }
    }
    Ok(())
}

/// What one `tasks::list` call did under a forced generic plan, from the backend's own counters
/// for the current transaction.
#[derive(Debug, Clone, Copy)]
struct GenericCost {
    index_scans: i64,
    /// Blocks of `tasks` and its indexes requested (hit or read).
    buffers: u64,
}

impl std::fmt::Display for GenericCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} blk", self.buffers)
    }
}

#[derive(QueryableByName)]
struct Counters {
    #[diesel(sql_type = BigInt)]
    seq_scans: i64,
    #[diesel(sql_type = BigInt)]
    index_scans: i64,
    #[diesel(sql_type = BigInt)]
    other_index_scans: i64,
    #[diesel(sql_type = BigInt)]
    blocks: i64,
}

fn counters(conn: &mut DbConnection) -> QueryResult<Counters> {
    diesel::sql_query(
        "SELECT pg_stat_get_xact_numscans('tasks'::regclass) AS seq_scans,
                coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid))
                    FILTER (WHERE a.attname = 'user_id'), 0)::bigint AS index_scans,
                coalesce(sum(pg_stat_get_xact_numscans(i.indexrelid))
                    FILTER (WHERE a.attname <> 'user_id'), 0)::bigint AS other_index_scans,
                (pg_stat_get_xact_blocks_fetched('tasks'::regclass)
                    + coalesce(sum(pg_stat_get_xact_blocks_fetched(i.indexrelid)), 0))::bigint
                    AS blocks
         FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = 'tasks'::regclass",
    )
    .get_result(conn)
}

/// How the statement is planned when `tasks::list` runs it as a cached prepared statement.
#[derive(Debug, Clone, Copy)]
enum Planning {
    /// `plan_cache_mode = force_generic_plan`: the plan PostgreSQL may switch to.
    ForcedGeneric,
    /// The default (`auto`), measured on the 7th execution: after five custom plans PostgreSQL
    /// keeps the generic plan if its estimate is no worse — what a long-running pool sees.
    Warm,
}

fn prepared_cost(
    conn: &mut DbConnection,
    owner: UserId,
    filter: &TaskFilter,
    sort: TaskSort,
    page: &PageRequest,
    planning: Planning,
) -> anyhow::Result<GenericCost> {
    conn.transaction(|conn| {
        match planning {
            Planning::ForcedGeneric => {
                diesel::sql_query("SET LOCAL plan_cache_mode = force_generic_plan")
                    .execute(conn)?;
            }
            Planning::Warm => {
                for _ in 0..6 {
                    tasks::list(conn, owner, filter, sort, page)?;
                }
            }
        }
        let before = counters(conn)?;
        tasks::list(conn, owner, filter, sort, page)?;
        let after = counters(conn)?;
        ensure!(
            after.seq_scans == before.seq_scans,
            "generic plan: {} sequential scan(s) of tasks",
            after.seq_scans - before.seq_scans
        );
        ensure!(
            after.other_index_scans == before.other_index_scans,
            "generic plan: scanned an index not led by user_id"
        );
        let cost = GenericCost {
            index_scans: after.index_scans - before.index_scans,
            buffers: u64::try_from(after.blocks - before.blocks)?,
        };
        ensure!(
            cost.index_scans >= 1,
            "generic plan: no index scan recorded"
        );
        Ok(cost)
    })
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The indexes on `tasks` whose first column is `user_id`.
fn user_led_indexes(conn: &mut DbConnection) -> QueryResult<BTreeSet<String>> {
    let rows: Vec<Name> = diesel::sql_query(
        "SELECT c.relname AS name
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = 'tasks'::regclass AND a.attname = 'user_id'",
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

#[derive(QueryableByName)]
struct IndexDef {
    #[diesel(sql_type = Text)]
    drop: String,
    #[diesel(sql_type = Text)]
    create: String,
}

/// Loads the users and tasks on a connection of its own (the pool's connections keep their
/// session settings untouched) and returns how long it took.
fn seed(url: &str) -> anyhow::Result<std::time::Duration> {
    let started = Instant::now();
    let mut pg = PgConnection::establish(url)?;
    pg.batch_execute(
        "SET maintenance_work_mem = '256MB';
         SET synchronous_commit = off;
         SELECT setseed(0.42);",
    )?;

    // Indexes are built faster after the load than maintained during it. Their definitions come
    // from the catalog, so whatever the migrations declare is what gets rebuilt.
    let defs: Vec<IndexDef> = diesel::sql_query(
        "SELECT CASE WHEN con.conname IS NULL
                     THEN format('DROP INDEX %I', c.relname)
                     ELSE format('ALTER TABLE tasks DROP CONSTRAINT %I', con.conname) END AS drop,
                CASE WHEN con.conname IS NULL
                     THEN pg_get_indexdef(i.indexrelid)
                     ELSE format('ALTER TABLE tasks ADD CONSTRAINT %I %s',
                                 con.conname, pg_get_constraintdef(con.oid)) END AS create
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid
         LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
         WHERE i.indrelid = 'tasks'::regclass
         ORDER BY c.relname",
    )
    .load(&mut pg)?;
    ensure!(!defs.is_empty(), "tasks has no indexes to rebuild");
    for d in &defs {
        pg.batch_execute(&d.drop)?;
    }

    pg.batch_execute(&format!(
        "INSERT INTO users (id, email, password_hash, created_at, updated_at)
         SELECT md5('user/' || n)::uuid, 'user' || n || '@example.com',
                '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA',
                now() - interval '400 days', now() - interval '400 days'
         FROM generate_series(1, {USERS}) n;

         -- The rows are consistent by construction; skip the per-row foreign-key trigger.
         SET session_replication_role = replica;
         -- generate_series is the outer loop, so each user's tasks are spread over the heap.
         INSERT INTO tasks (id, user_id, title, description, completed, priority, version,
                            created_at, updated_at, completed_at)
         SELECT md5(n || '/' || g)::uuid, user_id,
                'Task ' || md5(g || '/' || n),
                CASE WHEN d < 0.3 THEN NULL ELSE 'Note ' || md5(n || ':' || g) END,
                c < 0.3, 1 + floor(p * 5)::smallint, 1,
                created, created + w * interval '30 days',
                CASE WHEN c < 0.3 THEN created + w * interval '30 days' END
         FROM (SELECT g, u.n, u.id AS user_id,
                      random() AS d, random() AS c, random() AS p, random() AS w,
                      now() - interval '365 days' * random() AS created
               FROM generate_series(1, {TASKS_PER_USER}) g
               CROSS JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM users) u) s;
         RESET session_replication_role;"
    ))?;
    for d in &defs {
        pg.batch_execute(&d.create)?;
    }
    // VACUUM cannot run inside the implicit transaction of a multi-statement string.
    pg.batch_execute("VACUUM (ANALYZE) users")?;
    pg.batch_execute("VACUUM (ANALYZE) tasks")?;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let Count { n } = diesel::sql_query("SELECT count(*) AS n FROM tasks").get_result(&mut pg)?;
    ensure!(n == USERS * TASKS_PER_USER, "seeded {n} tasks");
    Ok(started.elapsed())
}

/// SQLite: a search of 3 characters or more asks the FTS5 trigram table for its candidates and
/// looks them up by rowid; a shorter one scans the owner's range of a user-led index (it has no
/// trigram), and both find the same rows as the plain LIKE would (the model test checks that
/// against an in-memory model on both backends).
#[test]
fn search_plans_use_the_trigram_table_sqlite() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite, &[]);
    let owner = common::factories::user(&db).id;
    common::factories::tasks(&db, owner, 30);
    let plan = |search: &str| -> anyhow::Result<String> {
        let filter = TaskFilter {
            search: Some(search.into()),
            ..TaskFilter::default()
        };
        Ok(db.run(|c| {
            diagnostics::explain_list(
                c,
                owner,
                &filter,
                TaskSort::CreatedDesc,
                &PageRequest::first(PAGE),
            )
        })?)
    };
    let long = plan("zzzq")?;
    ensure!(
        long.contains("VIRTUAL TABLE INDEX") && long.contains("tasks_search"),
        "a 4-character search does not use the FTS5 table:\n{long}"
    );
    ensure!(
        long.contains("INTEGER PRIMARY KEY (rowid=?)"),
        "the FTS5 candidates are not looked up by rowid:\n{long}"
    );
    let short = plan("zz")?;
    ensure!(
        !short.contains("tasks_search")
            && short.contains("USING INDEX tasks_user_created_idx (user_id=?)"),
        "a 2-character search should scan the owner's range:\n{short}"
    );
    Ok(())
}
