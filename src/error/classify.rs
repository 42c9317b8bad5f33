//! What a database or connection error means: one table, [`RULES`], read by both
//! [`Error::from_diesel`](super::Error::from_diesel) (errors on an established connection) and
//! [`ConnectFailure::classify`] (errors while connecting).
//!
//! Each row has a key (a code the driver gives, or phrases of the message), the code the
//! condition carries on the server, and one meaning per situation: while connecting, and on a
//! connection. A classifier reads the rows in order and takes the first row whose key matches
//! and that has a meaning for its situation; order matters only between rows whose keys can
//! match the same message, and every row's example proves that it is reached (see the tests).
//!
//! Why phrases at all: Diesel exposes no SQLSTATE — it folds a few codes into
//! [`DatabaseErrorKind`] — and libpq reports connection failures as bare text. The
//! [`Key::Driver`] rows are independent of the server's language; the [`Key::Phrases`] rows
//! assume English server messages (`lc_messages`): the connection layer makes a session
//! English in its startup packet where the role may, and warns at connect time where it may
//! not (`conn/language.rs`), so no row depends on the server's configured language. Each row records its SQLSTATE (or SQLite
//! result code), so that matching on codes once the driver exposes them (issue 12) changes the
//! key of a row, not the table.

use diesel::result::DatabaseErrorKind;

use super::{ConnectFailure, DbErrorKind};

/// What a row looks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key {
    /// Diesel's kind, which it derives from the SQLSTATE (PostgreSQL) or the extended result
    /// code (SQLite).
    Driver(DatabaseErrorKind),
    /// Every one of these phrases occurs in the message, compared in lower case.
    Phrases(&'static [&'static str]),
}

impl Key {
    fn matches(self, driver: Option<DatabaseErrorKind>, lower: &str) -> bool {
        match self {
            Self::Driver(kind) => driver == Some(kind),
            Self::Phrases(phrases) => phrases.iter().all(|p| lower.contains(p)),
        }
    }
}

/// The meaning of an error on an established connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// A unique rule refused the write: [`Error::Conflict`](super::Error::Conflict).
    Conflict,
    /// A CHECK constraint refused the write: [`Error::Validation`](super::Error::Validation).
    Check,
    /// A statement or lock timeout: [`Error::QueryTimeout`](super::Error::QueryTimeout).
    QueryTimeout,
    /// [`Error::Database`](super::Error::Database) of this kind.
    Database(DbErrorKind),
}

/// One row of [`RULES`].
#[derive(Debug)]
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "`code` and `example` document each row and are checked by the tests; `code` \
                  becomes the key once the driver exposes SQLSTATEs (issue 12)"
    )
)]
pub(crate) struct Rule {
    /// What to look for.
    pub key: Key,
    /// The SQLSTATE (PostgreSQL) or result code (SQLite) behind the condition; empty for
    /// failures the client detects itself (DNS, sockets, URL parsing).
    pub code: &'static str,
    /// The meaning while connecting, if the row applies there.
    pub connect: Option<ConnectFailure>,
    /// The meaning on an established connection, if the row applies there.
    pub runtime: Option<Runtime>,
    /// A real message (or one of the right shape) that this row, and no earlier one,
    /// classifies.
    pub example: &'static str,
}

const fn driver(kind: DatabaseErrorKind) -> Key {
    Key::Driver(kind)
}

const fn on(phrases: &'static [&'static str]) -> Key {
    Key::Phrases(phrases)
}

const fn row(
    key: Key,
    code: &'static str,
    connect: Option<ConnectFailure>,
    runtime: Option<Runtime>,
    example: &'static str,
) -> Rule {
    Rule {
        key,
        code,
        connect,
        runtime,
        example,
    }
}

use ConnectFailure as C;
use DatabaseErrorKind as D;
use DbErrorKind as K;
use Runtime::{Check, Conflict, Database as Db, QueryTimeout};

/// The table. Driver rows come first: a kind Diesel reports wins over any phrase.
#[rustfmt::skip]
pub(crate) const RULES: &[Rule] = &[
    // key                                            code     connecting                  on a connection                      example
    row(driver(D::UniqueViolation),                    "23505", None,                       Some(Conflict),                      "duplicate key value violates unique constraint \"users_email_key\""),
    row(driver(D::SerializationFailure),               "40001", None,                       Some(Db(K::SerializationFailure)),   "could not serialize access due to concurrent update"),
    row(driver(D::ReadOnlyTransaction),                "25006", None,                       Some(Db(K::ReadOnlyTransaction)),    "cannot execute INSERT in a read-only transaction"),
    row(driver(D::ForeignKeyViolation),                "23503", None,                       Some(Db(K::ForeignKeyViolation)),    "insert or update on table \"tasks\" violates foreign key constraint \"tasks_user_id_fkey\""),
    row(driver(D::CheckViolation),                     "23514", None,                       Some(Check),                         "new row for relation \"tasks\" violates check constraint \"tasks_priority_check\""),
    row(driver(D::NotNullViolation),                   "23502", None,                       Some(Db(K::NotNullViolation)),       "null value in column \"title\" of relation \"tasks\" violates not-null constraint"),
    row(driver(D::ClosedConnection),                   "08006", None,                       Some(Db(K::Disconnected)),           "server closed the connection unexpectedly"),
    // Conditions Diesel reports as `Unknown`.
    row(on(&["deadlock detected"]),                    "40P01", None,                       Some(Db(K::Deadlock)),               "deadlock detected"),
    row(on(&["could not serialize access"]),           "40001", None,                       Some(Db(K::SerializationFailure)),   "could not serialize access due to read/write dependencies among transactions"),
    row(on(&["statement timeout"]),                    "57014", None,                       Some(QueryTimeout),                  "canceling statement due to statement timeout"),
    row(on(&["lock timeout"]),                         "55P03", None,                       Some(QueryTimeout),                  "canceling statement due to lock timeout"),
    row(on(&["could not obtain lock"]),                "55P03", None,                       Some(QueryTimeout),                  "could not obtain lock on row in relation \"tasks\""),
    // Refused credentials and unknown names: never transient.
    row(on(&["password authentication failed"]),       "28P01", Some(C::Authentication),    None,                                "FATAL:  password authentication failed for user \"app\""),
    row(on(&["no password supplied"]),                 "",      Some(C::Authentication),    None,                                "fe_sendauth: no password supplied"),
    row(on(&["authentication failed"]),                "28000", Some(C::Authentication),    None,                                "FATAL:  Peer authentication failed for user \"app\""),
    row(on(&["no pg_hba.conf entry"]),                 "28000", Some(C::Authentication),    None,                                "FATAL:  no pg_hba.conf entry for host \"10.0.0.5\", user \"app\", database \"tasks\", no encryption"),
    row(on(&["role \"", "does not exist"]),            "28000", Some(C::Authentication),    None,                                "FATAL:  role \"nobody\" does not exist"),
    row(on(&["database \"", "does not exist"]),        "3D000", Some(C::UnknownDatabase),   None,                                "FATAL:  database \"nope\" does not exist"),
    // A server that is starting or stopping.
    row(on(&["starting up"]),                          "57P03", Some(C::Starting),          Some(Db(K::Disconnected)),           "FATAL:  the database system is starting up"),
    row(on(&["shutting down"]),                        "57P03", Some(C::Starting),          Some(Db(K::Disconnected)),           "FATAL:  the database system is shutting down"),
    row(on(&["recovery mode"]),                        "57P03", Some(C::Starting),          None,                                "FATAL:  the database system is in recovery mode"),
    row(on(&["not yet accepting"]),                    "57P03", Some(C::Starting),          None,                                "FATAL:  the database system is not yet accepting connections"),
    row(on(&["too many clients"]),                     "53300", Some(C::TooManyConnections), None,                               "FATAL:  sorry, too many clients already"),
    row(on(&["connection slots are reserved"]),        "53300", Some(C::TooManyConnections), None,                               "FATAL:  remaining connection slots are reserved for non-replication superuser connections"),
    row(on(&["too many connections"]),                 "53300", Some(C::TooManyConnections), None,                               "FATAL:  too many connections for role \"app\""),
    // The network path.
    row(on(&["timeout expired"]),                      "",      Some(C::Timeout),           None,                                "connection to server at \"10.0.0.1\", port 5432 failed: timeout expired"),
    row(on(&["timed out"]),                            "",      Some(C::Timeout),           None,                                "connection to server at \"10.0.0.1\", port 5432 failed: Connection timed out"),
    row(on(&["temporary failure in name resolution"]), "",      Some(C::Unreachable),       None,                                "could not translate host name \"db\" to address: Temporary failure in name resolution"),
    row(on(&["could not translate host name"]),        "",      Some(C::UnknownHost),       None,                                "could not translate host name \"nohost.invalid\" to address: Name or service not known"),
    row(on(&["name or service not known"]),            "",      Some(C::UnknownHost),       None,                                "failed to lookup address information: Name or service not known"),
    row(on(&["connection refused"]),                   "",      Some(C::Refused),           None,                                "connection to server at \"127.0.0.1\", port 1 failed: Connection refused"),
    row(on(&["no such file or directory", "socket"]),  "",      Some(C::Refused),           None,                                "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: No such file or directory"),
    row(on(&["server closed the connection"]),         "08006", Some(C::Refused),           Some(Db(K::Disconnected)),           "server closed the connection unexpectedly"),
    row(on(&["connection reset"]),                     "08006", Some(C::Refused),           Some(Db(K::Disconnected)),           "could not receive data from server: Connection reset by peer"),
    row(on(&["terminating connection"]),               "57P01", Some(C::Refused),           Some(Db(K::Disconnected)),           "FATAL:  terminating connection due to administrator command"),
    row(on(&["connection to server"]),                 "08006", None,                       Some(Db(K::Disconnected)),           "connection to server was lost"),
    row(on(&["no connection to the server"]),          "08003", None,                       Some(Db(K::Disconnected)),           "no connection to the server"),
    row(on(&["ssl syscall error"]),                    "08006", None,                       Some(Db(K::Disconnected)),           "SSL SYSCALL error: EOF detected"),
    row(on(&["network is unreachable"]),               "",      Some(C::Unreachable),       None,                                "connection to server at \"10.9.9.9\", port 5432 failed: Network is unreachable"),
    row(on(&["no route to host"]),                     "",      Some(C::Unreachable),       None,                                "connection to server at \"10.9.9.9\", port 5432 failed: No route to host"),
    // libpq's own parse errors, before the TLS rows would claim "sslmode" for themselves.
    row(on(&["invalid", "value"]),                     "",      Some(C::InvalidUrl),        None,                                "invalid sslmode value: \"bogus\""),
    row(on(&["invalid", "uri"]),                       "",      Some(C::InvalidUrl),        None,                                "invalid URI query parameter: \"nosuchparam\""),
    row(on(&["invalid", "connection option"]),         "",      Some(C::InvalidUrl),        None,                                "invalid connection option \"bogus\""),
    row(on(&["invalid", "token"]),                     "",      Some(C::InvalidUrl),        None,                                "invalid percent-encoded token: \"%zz\""),
    // verify-full: a certificate for another name (no "SSL" in libpq's text).
    row(on(&["does not match host name"]),             "",      Some(C::Tls),               None,                                "connection to server at \"127.0.0.1\", port 5432 failed: server certificate for \"localhost\" does not match host name \"127.0.0.1\""),
    row(on(&["certificate"]),                          "",      Some(C::Tls),               None,                                "root certificate file \"/etc/ca.crt\" does not exist"),
    row(on(&["ssl"]),                                  "08P01", Some(C::Tls),               None,                                "server does not support SSL, but SSL was required"),
    row(on(&["tls"]),                                  "08P01", Some(C::Tls),               None,                                "TLS handshake failed"),
    row(on(&["gssencmode"]),                           "",      Some(C::Tls),               None,                                "GSSAPI encryption required by gssencmode=require, but not supported by the server"),
    // SQLite files.
    row(on(&["unable to open database file"]),         "14",    Some(C::File),              None,                                "unable to open database file"),
    row(on(&["not a database"]),                       "26",    Some(C::File),              None,                                "file is not a database"),
    row(on(&["readonly database"]),                    "8",     Some(C::File),              None,                                "attempt to write a readonly database"),
    // Anything else a connection string's parser says.
    row(on(&["invalid"]),                              "",      Some(C::InvalidUrl),        None,                                "invalid port number: \"abc\""),
    row(on(&["missing"]),                              "",      Some(C::InvalidUrl),        None,                                "missing \"=\" after \"host\" in connection info string"),
    row(on(&["unexpected"]),                           "",      Some(C::InvalidUrl),        None,                                "unexpected spaces found in \"db name\", use percent-encoded spaces (%20) instead"),
    row(on(&["uri"]),                                  "",      Some(C::InvalidUrl),        None,                                "end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"postgres://[::1/x\""),
    row(on(&["connection option"]),                    "",      Some(C::InvalidUrl),        None,                                "unrecognized connection option \"bogus\""),
    // SQLite conditions Diesel reports as `Unknown`, and PostgreSQL's read-only text.
    // SQLite's lock wait ran out (`busy_timeout`, set from DATABASE_LOCK_TIMEOUT_MS): the same
    // typed timeout as PostgreSQL's lock timeout. Writers begin `IMMEDIATE`, so this is never
    // the instant refusal of a deferred transaction's lock upgrade.
    row(on(&["database is locked"]),                   "5",     None,                       Some(QueryTimeout),                  "database is locked"),
    row(on(&["database is busy"]),                     "5",     None,                       Some(QueryTimeout),                  "database is busy"),
    row(on(&["check constraint failed"]),              "275",   None,                       Some(Check),                         "CHECK constraint failed: priority_range"),
    row(on(&["foreign key constraint failed"]),        "787",   None,                       Some(Db(K::ForeignKeyViolation)),    "FOREIGN KEY constraint failed"),
    row(on(&["not null constraint failed"]),           "1299",  None,                       Some(Db(K::NotNullViolation)),       "NOT NULL constraint failed: tasks.title"),
    row(on(&["read-only transaction"]),                "25006", None,                       Some(Db(K::ReadOnlyTransaction)),    "cannot execute UPDATE in a read-only transaction"),
    row(on(&["attempt to write a readonly database"]), "8",     None,                       Some(Db(K::ReadOnlyTransaction)),    "attempt to write a readonly database"),
];

/// The first row, in table order, whose key matches and that has a meaning in `column`.
fn first<T>(
    driver: Option<DatabaseErrorKind>,
    message: &str,
    column: impl Fn(&Rule) -> Option<T>,
) -> Option<(usize, T)> {
    let lower = message.to_ascii_lowercase();
    RULES
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.key.matches(driver, &lower))
        .find_map(|(i, rule)| column(rule).map(|meaning| (i, meaning)))
}

/// What a failure to connect means (libpq's or SQLite's message).
pub(crate) fn connect(message: &str) -> ConnectFailure {
    first(None, message, |r| r.connect).map_or(ConnectFailure::Other, |(_, c)| c)
}

/// What an error on an established connection means, from Diesel's kind and the message.
pub(crate) fn runtime(driver: DatabaseErrorKind, message: &str) -> Runtime {
    first(Some(driver), message, |r| r.runtime).map_or(Db(K::Other), |(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The driver kind a row's example arrives with: its own for a driver row, `Unknown` (what
    /// Diesel reports for everything it does not map) for a phrase row.
    fn arrives_as(rule: &Rule) -> DatabaseErrorKind {
        match rule.key {
            Key::Driver(kind) => kind,
            Key::Phrases(_) => DatabaseErrorKind::Unknown,
        }
    }

    /// One check per row: its example is classified by this row and no earlier one, in every
    /// situation the row has a meaning for.
    #[test]
    fn every_row_classifies_its_example() {
        for (i, rule) in RULES.iter().enumerate() {
            assert!(
                rule.connect.is_some() || rule.runtime.is_some(),
                "row {i} has no meaning"
            );
            if let Some(want) = rule.connect {
                let got = first(None, rule.example, |r| r.connect);
                assert_eq!(
                    got,
                    Some((i, want)),
                    "row {i} ({:?}) while connecting",
                    rule.key
                );
                assert_eq!(connect(rule.example), want);
            }
            if let Some(want) = rule.runtime {
                let driver = arrives_as(rule);
                let got = first(Some(driver), rule.example, |r| r.runtime);
                assert_eq!(
                    got,
                    Some((i, want)),
                    "row {i} ({:?}) on a connection",
                    rule.key
                );
                assert_eq!(runtime(driver, rule.example), want);
            }
        }
    }

    #[test]
    fn a_driver_kind_wins_over_any_phrase() {
        assert_eq!(
            runtime(DatabaseErrorKind::UniqueViolation, "deadlock detected"),
            Conflict
        );
        assert_eq!(
            runtime(DatabaseErrorKind::Unknown, "deadlock detected"),
            Db(K::Deadlock)
        );
    }

    #[test]
    fn unmatched_messages_are_other() {
        assert_eq!(connect("something new"), ConnectFailure::Other);
        assert_eq!(
            runtime(DatabaseErrorKind::Unknown, "something new"),
            Db(K::Other)
        );
    }

    #[test]
    fn codes_are_sqlstates_or_sqlite_result_codes() {
        for rule in RULES {
            let c = rule.code;
            assert!(
                c.is_empty()
                    || (c.len() == 5 && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
                    || c.parse::<u32>().is_ok(),
                "{c:?}"
            );
        }
    }
}
