//! Issue 13 item 3: every promise holds over a Unix socket as over TCP, in each URL form libpq
//! documents for one: `postgres:///db?host=/dir&port=P` (empty authority, the directory as a
//! parameter), `postgres://user@%2Fdir:P/db` (the directory percent-encoded as the host) and
//! `postgres://user@localhost:P/db?host=/dir` (the parameter overriding the authority). Each
//! test starts its own throw-away cluster (never the shared server).
//!
//! The hard deadline needs the liveness watchdog to find each connection's socket
//! (`src/conn/socket.rs`); when it cannot, start-up says so with a warning, which these tests
//! also rule out. Figures are printed on lines starting `DEPLOY-FIGURE`:
//!
//! ```text
//! cargo nextest run --test deploy_unix_socket --no-capture 2>&1 | grep DEPLOY-FIGURE
//! ```

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::outage::freeze::freeze;
use diesel::connection::SimpleConnection;
use taskstore::{Config, Database, Error};

/// What issue 8 allows beyond a deadline.
const MARGIN: Duration = Duration::from_millis(250);
const ACQUIRE_TIMEOUT_MS: u64 = 2000;
const STATEMENT_TIMEOUT_MS: u64 = 2000;

/// The URL forms of a Unix socket, by name.
#[derive(Debug, Clone, Copy)]
enum Form {
    /// `postgres:///db?host=/dir&port=P&user=postgres`.
    EmptyAuthority,
    /// `postgres://postgres@%2Fdir:P/db`.
    EncodedHost,
    /// `postgres://postgres@localhost:P/db?host=/dir`.
    HostParameter,
}

impl Form {
    fn url(self, cluster: &Cluster, db: &str) -> String {
        let dir = cluster.dir().to_str().expect("cluster directory is UTF-8");
        match self {
            Form::EmptyAuthority => {
                format!(
                    "postgres:///{db}?host={dir}&port={}&user=postgres",
                    cluster.port
                )
            }
            Form::EncodedHost => format!(
                "postgres://postgres@{}:{}/{db}",
                dir.replace('/', "%2F"),
                cluster.port
            ),
            Form::HostParameter => common::outage::socket::unix_url_for(cluster, db),
        }
    }
}

/// The watchdog's warning when it cannot find a connection's socket.
fn socket_not_found_warnings() -> usize {
    common::capture::lines_containing("could not find the socket").len()
}

fn connect(url: &str) -> Database {
    common::capture::init();
    let config = Config::from_vars([
        ("DATABASE_URL", url),
        (
            "DATABASE_ACQUIRE_TIMEOUT_MS",
            &ACQUIRE_TIMEOUT_MS.to_string(),
        ),
        (
            "DATABASE_STATEMENT_TIMEOUT_MS",
            &STATEMENT_TIMEOUT_MS.to_string(),
        ),
        ("DATABASE_POOL_MAX_SIZE", "6"),
    ])
    .unwrap_or_else(|e| panic!("configuration for {url}: {e}"));
    Database::connect(&config).unwrap_or_else(|e| panic!("connect over {url}: {e}"))
}

/// The connection really is a Unix socket: the server sees no client address.
fn assert_unix(db: &Database, label: &str) {
    #[derive(diesel::QueryableByName)]
    struct Addr {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        addr: Option<String>,
    }
    let addr: Addr = db
        .run(|c| {
            use diesel::RunQueryDsl;
            Ok(diesel::sql_query("SELECT inet_client_addr()::text AS addr").get_result(c)?)
        })
        .expect("inet_client_addr");
    assert_eq!(
        addr.addr, None,
        "{label}: the session is not on a Unix socket"
    );
}

fn behaviours(form: Form) {
    let cluster = Cluster::start(&[]);
    let url = form.url(&cluster, "postgres");
    let label = format!("{form:?}");
    let db = connect(&url);
    assert_unix(&db, &label);
    common::deploy::tour(&label, &db);
    assert_eq!(
        socket_not_found_warnings(),
        0,
        "{label}: the watchdog did not find a connection's socket"
    );
}

#[test]
fn postgres_unix_socket_empty_authority_behaviours() {
    behaviours(Form::EmptyAuthority);
}

#[test]
fn postgres_unix_socket_encoded_host_behaviours() {
    behaviours(Form::EncodedHost);
}

#[test]
fn postgres_unix_socket_host_parameter_behaviours() {
    behaviours(Form::HostParameter);
}

/// One call of an entry point, run on its own thread.
type Call = Box<dyn FnOnce(&Database) -> Result<(), Error> + Send>;

/// A frozen server (SIGSTOP of every process; the socket stays open and silent): a statement
/// in flight fails (`QueryTimeout`) within the statement timeout + 250 ms, and every entry point called after
/// the freeze returns `Unavailable` within the acquire deadline + 250 ms.
fn frozen_server(form: Form) {
    let cluster = Cluster::start(&[]);
    let url = form.url(&cluster, "postgres");
    let label = format!("{form:?}");
    let db = connect(&url);
    assert_unix(&db, &label);
    let user = common::factories::user(&db);
    let task = common::factories::task(&db, user.id, "frozen");
    // Warm: several idle connections, recently used.
    let held: Vec<_> = (0..5).map(|_| db.conn().expect("warm")).collect();
    drop(held);

    let (tx, rx) = mpsc::channel();
    let d = db.clone();
    let in_flight = tx.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        let r = d.run(|c| Ok(c.batch_execute("SELECT pg_sleep(1.5)")?));
        let _ = in_flight.send(("run(pg_sleep) in flight", r.map(drop), start.elapsed()));
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut frozen = freeze(&cluster);
    let after_freeze: [(&str, Call); 4] = [
        ("conn()", Box::new(|d| d.conn().map(drop))),
        (
            "users().get",
            Box::new(move |d| d.users().get(user.id).map(drop)),
        ),
        (
            "tasks().get",
            Box::new(move |d| d.tasks().get(user.id, task.id).map(drop)),
        ),
        (
            "with_transaction",
            Box::new(|d| d.with_transaction(|c| Ok::<_, Error>(c.batch_execute("SELECT 1")?))),
        ),
    ];
    for (what, f) in after_freeze {
        let (d, tx) = (db.clone(), tx.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let r = f(&d);
            let _ = tx.send((what, r, start.elapsed()));
        });
    }
    drop(tx);
    let mut violations = Vec::new();
    let give_up = Instant::now()
        + Duration::from_millis(STATEMENT_TIMEOUT_MS.max(ACQUIRE_TIMEOUT_MS))
        + Duration::from_secs(3);
    let mut seen = 0;
    while seen < 5 {
        let Ok((what, result, elapsed)) =
            rx.recv_timeout(give_up.saturating_duration_since(Instant::now()))
        else {
            violations.push(format!(
                "{} calls still blocked 3 s past their bound",
                5 - seen
            ));
            break;
        };
        seen += 1;
        let bound = if what.contains("in flight") {
            Duration::from_millis(STATEMENT_TIMEOUT_MS) + MARGIN
        } else {
            Duration::from_millis(ACQUIRE_TIMEOUT_MS) + MARGIN
        };
        let outcome = match &result {
            Ok(()) => "Ok".to_owned(),
            Err(e) => format!("{} ({e})", e.kind_name()),
        };
        eprintln!(
            "DEPLOY-FIGURE unix socket {label} frozen server: {what} -> {outcome} after {} ms (bound {} ms)",
            elapsed.as_millis(),
            bound.as_millis()
        );
        if elapsed > bound {
            violations.push(format!(
                "{what} took {} ms, over {} ms",
                elapsed.as_millis(),
                bound.as_millis()
            ));
        }
        // A statement cut in flight is a timeout; a call that could not get a live
        // connection is `Unavailable`.
        let typed = if what.contains("in flight") {
            matches!(
                result,
                Err(Error::QueryTimeout { .. } | Error::Unavailable { .. })
            )
        } else {
            matches!(result, Err(Error::Unavailable { .. }))
        };
        if !typed {
            violations.push(format!("{what} returned {outcome}"));
        }
    }
    frozen.thaw();
    assert!(
        violations.is_empty(),
        "{label}:\n  {}",
        violations.join("\n  ")
    );
    assert_eq!(
        socket_not_found_warnings(),
        0,
        "{label}: a socket was not found"
    );
    // And the layer recovers once the server answers again.
    assert!(
        common::cluster::wait_for(Duration::from_secs(10), || db.users().get(user.id).is_ok()),
        "{label}: no recovery after the thaw"
    );
}

#[test]
fn postgres_unix_socket_empty_authority_frozen_server_deadline() {
    frozen_server(Form::EmptyAuthority);
}

#[test]
fn postgres_unix_socket_encoded_host_frozen_server_deadline() {
    frozen_server(Form::EncodedHost);
}

/// The application opens connections of its own to the same server (outside the layer) while
/// the pool opens its: every pool connection still has its socket found, so the deadline
/// holds for each. Ten pools of eight connections each are opened while another thread
/// connects and disconnects every few milliseconds.
#[test]
fn postgres_unix_socket_sockets_found_while_the_application_connects_too() {
    use diesel::Connection;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const ROUNDS: usize = 10;
    const POOL: usize = 8;
    let cluster = Cluster::start(&["max_connections = 40"]);
    let url = Form::HostParameter.url(&cluster, "postgres");
    let before = socket_not_found_warnings();
    let stop = AtomicBool::new(false);
    let foreign = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let own = diesel::PgConnection::establish(&url).expect("the application's connect");
                foreign.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(i * 7 % 11));
                drop(own);
                std::thread::sleep(Duration::from_millis(i * 5 % 13 + 5));
            }
        });
        for round in 0..ROUNDS {
            common::capture::init();
            let config = Config::from_vars([
                ("DATABASE_URL", url.as_str()),
                ("DATABASE_POOL_MAX_SIZE", &POOL.to_string()),
                ("DATABASE_ACQUIRE_TIMEOUT_MS", "5000"),
            ])
            .expect("configuration");
            let db = Database::connect(&config)
                .unwrap_or_else(|e| panic!("round {round}: connect: {e}"));
            let held: Vec<_> = (0..POOL)
                .map(|i| {
                    db.conn()
                        .unwrap_or_else(|e| panic!("round {round}: connection {i}: {e}"))
                })
                .collect();
            drop(held);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let missed = socket_not_found_warnings() - before;
    println!(
        "DEPLOY-FIGURE sockets found while the application connects too: {} pool connections \
         opened during {} of the application's own connects; {missed} without their socket",
        ROUNDS * POOL,
        foreign.load(Ordering::Relaxed)
    );
    assert_eq!(
        missed, 0,
        "{missed} pool connections were kept without their socket found (no client-side deadline)"
    );
}
