//! The redaction promise (SPEC §4): no password and no unredacted connection string ever
//! reaches an error's `Display` or `Debug`, a `tracing` event (or a `log` record), or a panic
//! message from `.expect()`.
//!
//! One test runs the whole corpus so that the process-wide capturing subscriber and panic hook
//! see only this test's output. Every case carries its own password built around a distinct
//! word: the scrubber masks quoted fragments that share four characters with any password it
//! knows, so passwords with a common part (`Pw-1-…`, `Pw-2-…`) would hide each other's leaks.

mod common;

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::cluster::Cluster;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use taskstore::{Config, Database, Error};

/// Everything the process wrote through `tracing` (and `log`, via the subscriber's bridge).
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

impl Capture {
    fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap())).into_owned()
    }
}

/// What one case is expected to end in (so that the corpus provably reaches each code path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// `Config::from_vars` refuses it.
    Config,
    /// `Database::connect` fails with `Unavailable`.
    Unavailable,
    /// `Database::connect` fails with some other error (migrations, ...).
    ConnectOther,
    /// Everything succeeds (the secret must still not show in `Debug` output and logs).
    Ok,
}

struct Case {
    name: &'static str,
    /// Forms of the secret that must never appear (raw, percent-encoded, percent-decoded are
    /// added automatically).
    secrets: Vec<String>,
    vars: Vec<(String, String)>,
    expect: Outcome,
}

fn forms(secret: &str) -> Vec<String> {
    let mut v = vec![secret.to_owned()];
    v.push(utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string());
    // The userinfo encoding `url` uses (fewer characters escaped).
    if let Ok(mut u) = url::Url::parse("postgres://u@h/d")
        && u.set_password(Some(secret)).is_ok()
        && let Some(p) = u.password()
    {
        v.push(p.to_owned());
    }
    if let Ok(d) = percent_decode_str(secret).decode_utf8() {
        v.push(d.into_owned());
    }
    // The distinctive word at the front of every corpus password: catches partial leaks.
    let word: String = secret
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    if word.len() >= 6 {
        v.push(word);
    }
    v.sort();
    v.dedup();
    v.retain(|s| s.len() >= 4);
    v
}

/// Set while a panic is provoked on purpose: the hook then captures the message instead of
/// printing it (the test's own assertion failures are printed as usual).
static PROVOKED: AtomicBool = AtomicBool::new(false);

/// Every string that must not appear in a case's output: each secret in all its encodings,
/// each connection string as given, and the contents of each `*_FILE` variable.
fn needles(case: &Case) -> Vec<String> {
    let mut out: Vec<String> = case.secrets.iter().flat_map(|s| forms(s)).collect();
    for (k, v) in &case.vars {
        if k.ends_with("_URL") || k.ends_with("_URLS") {
            out.push(v.trim().to_owned());
        } else if k.ends_with("_FILE") {
            out.push(std::fs::read_to_string(v).unwrap().trim().to_owned());
        }
    }
    out
}

/// The lines of `text` that contain a needle, labelled with the case.
fn find_leaks(case: &str, text: &str, needles: &[String]) -> Vec<String> {
    let mut leaks = Vec::new();
    for needle in needles {
        if let Some(pos) = text.find(needle.as_str()) {
            let from = text[..pos].rfind('\n').map_or(0, |p| p + 1);
            let to = text[pos..].find('\n').map_or(text.len(), |p| pos + p);
            leaks.push(format!("{case}: {needle:?} in: {}", &text[from..to]));
        }
    }
    leaks
}

/// Runs `f`, turning a panic into its captured message.
fn panic_text<T>(f: impl FnOnce() -> T, panics: &Capture) -> String {
    PROVOKED.store(true, Ordering::SeqCst);
    let _ = catch_unwind(AssertUnwindSafe(f));
    PROVOKED.store(false, Ordering::SeqCst);
    panics.take()
}

/// Runs one case and returns every string it produced.
fn exercise(case: &Case, panics: &Capture) -> (Vec<String>, Outcome) {
    let mut out = Vec::new();
    let config = Config::from_vars(case.vars.clone());
    match &config {
        Ok(c) => {
            out.push(format!("{c}"));
            out.push(format!("{c:?}"));
            out.push(format!("{}", c.database_url()));
            out.push(format!("{:?}", c.database_url()));
            out.push(format!("{:?}", c.effective()));
            out.push(panic_text(
                || config.as_ref().expect_err("config unexpectedly valid"),
                panics,
            ));
        }
        Err(e) => {
            out.push(format!("{e}"));
            out.push(format!("{e:?}"));
            out.push(panic_text(|| config.as_ref().expect("config"), panics));
            return (out, Outcome::Config);
        }
    }
    let config = config.unwrap();
    let db = Database::connect(&config);
    let outcome = match &db {
        Ok(_) => Outcome::Ok,
        Err(Error::Unavailable { .. }) => Outcome::Unavailable,
        Err(_) => Outcome::ConnectOther,
    };
    match &db {
        Ok(d) => {
            out.push(format!("{d:?}"));
            out.push(format!("{:?}", d.stats()));
            out.push(panic_text(
                || db.as_ref().expect_err("connect unexpectedly succeeded"),
                panics,
            ));
            let conn = d.conn();
            match &conn {
                Ok(c) => out.push(format!("{c:?}")),
                Err(e) => {
                    out.push(format!("{e}"));
                    out.push(format!("{e:?}"));
                }
            }
            out.push(panic_text(|| conn.as_ref().expect("conn"), panics));
            drop(conn);
            // A read through a replica (when configured) logs the replica's failure.
            let read = d.run_read(|_| Ok(()));
            out.push(format!("{read:?}"));
        }
        Err(e) => {
            out.push(format!("{e}"));
            out.push(format!("{e:?}"));
            out.push(panic_text(|| db.as_ref().expect("connect"), panics));
        }
    }
    (out, outcome)
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    // Short waits: several cases fail at start-up by design.
    let mut v: Vec<(String, String)> = vec![
        ("DATABASE_STARTUP_WAIT_MS".into(), "300".into()),
        ("DATABASE_ACQUIRE_TIMEOUT_MS".into(), "300".into()),
        ("DATABASE_POOL_MIN_IDLE".into(), "0".into()),
    ];
    for (k, val) in pairs {
        v.retain(|(name, _)| name != k);
        v.push(((*k).into(), (*val).into()));
    }
    v
}

#[test]
fn no_secret_reaches_errors_logs_or_panics() {
    let logs = Capture::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber of this test binary");
    let panics = Capture::default();
    let hook_sink = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if PROVOKED.load(Ordering::SeqCst) {
            let _ = writeln!(hook_sink.clone(), "{info}");
        } else {
            eprintln!("{info}");
        }
    }));

    let cluster = Cluster::start_scram(&[]);
    // The one correct password; cases that must reach the server with it (unknown database,
    // a successful start-up) use it, every other case has its own wrong password.
    let right = "Obsidian0Kv";
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE app LOGIN PASSWORD '{right}'"),
    );
    cluster.psql("postgres", "CREATE DATABASE appdb OWNER app");
    // A password with every character that means something in a URL, and a `%41` that a
    // careless encoder would let libpq decode into `A`.
    let tricky = "Quasar22Kv@:/ %?#&=%41\"";
    cluster.psql(
        "postgres",
        &format!("CREATE ROLE tricky LOGIN PASSWORD '{tricky}'"),
    );
    let port = cluster.port;
    let pg = |userinfo: &str, rest: &str| format!("postgres://{userinfo}@127.0.0.1:{port}/{rest}");
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let good_url = pg(&format!("app:{right}"), "appdb");

    let mut cases: Vec<Case> = Vec::new();
    let mut case = |name, secret: &str, pairs: &[(&str, &str)], expect| {
        cases.push(Case {
            name,
            secrets: vec![secret.to_owned()],
            vars: vars(pairs),
            expect,
        });
    };

    // Malformed URLs: refused by the configuration, before any driver sees them.
    let u = pg("app:Marlin1Kv%zz", "appdb");
    case(
        "bad percent-encoding in the password",
        "Marlin1Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Config,
    );
    let u = pg("app:Tundra2Kv%", "appdb");
    case(
        "truncated percent-encoding",
        "Tundra2Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Config,
    );
    let u = pg("ap%zzp:Quokka3Kv", "appdb");
    case(
        "bad percent-encoding in the user",
        "Quokka3Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Config,
    );
    let u = format!("postgres://app:Zephyr4Kv@[::1:{port}/appdb");
    case(
        "unclosed bracket",
        "Zephyr4Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Config,
    );
    let u = "postgres://app:Bisque5Kv@127.0.0.1:notaport/appdb".to_owned();
    case(
        "non-numeric port",
        "Bisque5Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Config,
    );
    let u = format!("host=127.0.0.1 port={port} user=app password=Fjords6Kv dbname=appdb");
    case(
        "libpq key=value form",
        "Fjords6Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Config,
    );
    let u = "mysql://app:Glyphs7Kv@127.0.0.1:3306/appdb".to_owned();
    case(
        "unsupported scheme",
        "Glyphs7Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Config,
    );
    case(
        "password with a SQLite URL",
        "Kumquat8Kv",
        &[
            ("DATABASE_URL", "sqlite::memory:"),
            ("DATABASE_PASSWORD", "Kumquat8Kv"),
        ],
        Outcome::Config,
    );
    let u = format!("  postgres://app:Walrus9Kv@127.0.0.1:{port}/appdb?sslmode=bogus  ");
    case(
        "invalid libpq parameter",
        "Walrus9Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Config,
    );
    let u = format!("postgres://app:Plinth10Kv@127.0.0.1:{port}/appdb?nosuchparam=1");
    case(
        "unknown libpq parameter",
        "Plinth10Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Config,
    );

    // Valid but wrong: the server (or the resolver) refuses them.
    let u = pg("app:Cobalt11Kv", "appdb");
    case(
        "wrong password in the URL",
        "Cobalt11Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Unavailable,
    );
    let u = "postgres://app:Nimbus12Kv@taskstore-nohost.invalid:5432/appdb".to_owned();
    case(
        "unknown host",
        "Nimbus12Kv",
        &[("DATABASE_URL", &u)],
        Outcome::Unavailable,
    );
    let u = pg(&format!("app:{right}"), "nosuchdb");
    case(
        "unknown database",
        right,
        &[("DATABASE_URL", &u)],
        Outcome::Unavailable,
    );
    let u = pg("app", "appdb");
    case(
        "wrong password via DATABASE_PASSWORD",
        "Vortex13Kv",
        &[("DATABASE_URL", &u), ("DATABASE_PASSWORD", "Vortex13Kv")],
        Outcome::Unavailable,
    );
    let pw_file = file("password", "Jasper14Kv\n");
    case(
        "wrong password via DATABASE_PASSWORD_FILE",
        "Jasper14Kv",
        &[("DATABASE_URL", &u), ("DATABASE_PASSWORD_FILE", &pw_file)],
        Outcome::Unavailable,
    );
    let special = "Sphinx15Kv@:/ %?#\"'&=";
    case(
        "password with URL-special characters via DATABASE_PASSWORD",
        special,
        &[("DATABASE_URL", &u), ("DATABASE_PASSWORD", special)],
        Outcome::Unavailable,
    );
    let u2 = format!("{u}?password=Oxbowl16Kv");
    case(
        "password as a query parameter",
        "Oxbowl16Kv",
        &[("DATABASE_URL", &u2)],
        Outcome::Unavailable,
    );
    let u2 = pg("app:Hyrax17Kv-%C3%A9t%C3%A9", "appdb");
    case(
        "percent-encoded non-ASCII password",
        "Hyrax17Kv-été",
        &[("DATABASE_URL", &u2)],
        Outcome::Unavailable,
    );
    let url_file = file("url", &format!("{}\n", pg("app:Yonder18Kv", "appdb")));
    case(
        "wrong password in DATABASE_URL_FILE",
        "Yonder18Kv",
        &[("DATABASE_URL_FILE", &url_file)],
        Outcome::Unavailable,
    );
    let u2 = pg("app:Crwth19Kv", "appdb");
    case(
        "wrong password in DATABASE_MIGRATION_URL",
        "Crwth19Kv",
        &[("DATABASE_URL", &good_url), ("DATABASE_MIGRATION_URL", &u2)],
        Outcome::Unavailable,
    );
    let u2 = pg("app:Lummox20Kv", "appdb");
    case(
        "wrong password in DATABASE_REPLICA_URLS",
        "Lummox20Kv",
        &[
            ("DATABASE_URL", &good_url),
            ("DATABASE_REPLICA_URLS", &u2),
            ("DATABASE_MIGRATE_ON_STARTUP", "false"),
        ],
        Outcome::Ok,
    );
    let u2 = "POSTGRESQL://app:Gazebo21Kv@127.0.0.1:1/appdb".to_owned();
    case(
        "refused connection, upper-case scheme",
        "Gazebo21Kv",
        &[("DATABASE_URL", &u2)],
        Outcome::Unavailable,
    );
    case(
        "a working configuration",
        right,
        &[("DATABASE_URL", &good_url)],
        Outcome::Ok,
    );
    let u2 = pg("tricky", "postgres");
    case(
        "right password with URL-special characters via DATABASE_PASSWORD",
        tricky,
        &[
            ("DATABASE_URL", &u2),
            ("DATABASE_PASSWORD", tricky),
            ("DATABASE_MIGRATE_ON_STARTUP", "false"),
        ],
        Outcome::Ok,
    );
    let encoded = utf8_percent_encode(tricky, NON_ALPHANUMERIC).to_string();
    let u2 = pg(&format!("tricky:{encoded}"), "postgres");
    case(
        "right password with URL-special characters, percent-encoded in the URL",
        tricky,
        &[
            ("DATABASE_URL", &u2),
            ("DATABASE_MIGRATE_ON_STARTUP", "false"),
        ],
        Outcome::Ok,
    );

    // The detector itself: an encoded form of a password is found.
    for leaked in [
        "x Quasar22Kv%40%3A y",
        "x Quasar22Kv%40%3A%2F%20%25%3F%23%26%3D%2541%22 y",
    ] {
        assert!(
            !find_leaks("control", leaked, &forms(tricky)).is_empty(),
            "the leak detector finds {leaked:?}"
        );
    }

    let mut leaks = Vec::new();
    for case in &cases {
        let (mut texts, outcome) = exercise(case, &panics);
        texts.push(logs.take());
        texts.push(panics.take());
        let all = texts.join("\n");
        assert_eq!(
            outcome, case.expect,
            "case {:?} did not reach the path it is meant to test; output:\n{all}",
            case.name
        );
        leaks.extend(find_leaks(case.name, &all, &needles(case)));
        eprintln!(
            "case {:?}: {:?}, {} bytes checked",
            case.name,
            outcome,
            all.len()
        );
        if std::env::var_os("TASKSTORE_SECRETS_DUMP").is_some() {
            eprintln!("{all}");
        }
    }
    std::panic::set_hook(previous);
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
