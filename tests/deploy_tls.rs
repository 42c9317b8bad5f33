//! Issue 13 item 4: TLS. A throw-away cluster serves a certificate signed by a local CA that
//! the test makes with the `openssl` command (installed by `scripts/install-test-deps.sh`):
//! `sslmode=verify-full` with `sslrootcert` connects and every session is encrypted; a wrong CA
//! or a host name the certificate does not name is refused at once with a TLS error that is
//! not retried. `TASKSTORE_ENV=production` refuses plain TCP to a real non-loopback address
//! (a server in a network namespace, `tests/common/outage/netns.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::outage::netns::NetnsCluster;
use diesel::prelude::*;
use taskstore::{Config, ConnectFailure, Database, Error};

/// Start-up waits this long for a transient failure; a TLS refusal must come back far sooner.
const STARTUP_WAIT_MS: u64 = 10_000;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the TLS tests need the openssl command: run scripts/install-test-deps.sh");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate it signed for `localhost` only, and an unrelated second CA.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn make() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("taskstore-pki-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (name, cn) in [("ca", "taskstore test CA"), ("other-ca", "another CA")] {
            let mut args = vec!["req", "-x509"];
            args.extend_from_slice(&ec);
            let (key, crt, subj) = (
                format!("{name}.key"),
                format!("{name}.crt"),
                format!("/CN={cn}"),
            );
            args.extend_from_slice(&["-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subj]);
            openssl(d, &args);
        }
        let mut args = vec!["req"];
        args.extend_from_slice(&ec);
        args.extend_from_slice(&[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(d, &args);
        std::fs::write(d.join("san.ext"), "subjectAltName=DNS:localhost\n").expect("san.ext");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        );
        // The server reads its key as the `postgres` user and refuses a key others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod server.key");
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
        if unsafe { libc::geteuid() } == 0 {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(d)
                .status()
                .expect("chown");
            assert!(ok.success());
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// postgresql.conf lines serving the signed certificate.
    fn server_conf(&self) -> Vec<String> {
        vec![
            "ssl = on".into(),
            format!("ssl_cert_file = '{}'", self.path("server.crt").display()),
            format!("ssl_key_file = '{}'", self.path("server.key").display()),
        ]
    }
}

fn tls_cluster(pki: &Pki) -> Cluster {
    let conf = pki.server_conf();
    let conf: Vec<&str> = conf.iter().map(String::as_str).collect();
    Cluster::start(&conf)
}

fn config(url: &str, extra: &[(&str, &str)]) -> Config {
    let wait = STARTUP_WAIT_MS.to_string();
    let mut vars = vec![
        ("DATABASE_URL", url),
        ("DATABASE_STARTUP_WAIT_MS", wait.as_str()),
    ];
    vars.extend_from_slice(extra);
    Config::from_vars(vars).expect("configuration")
}

fn verify_full_url(cluster: &Cluster, host: &str, root: &Path) -> String {
    format!(
        "postgres://postgres@{host}:{}/postgres?sslmode=verify-full&sslrootcert={}",
        cluster.port,
        root.display()
    )
}

#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ssl: bool,
}

#[test]
fn postgres_tls_verify_full_with_the_right_ca_connects() {
    let pki = Pki::make();
    let cluster = tls_cluster(&pki);
    let url = verify_full_url(&cluster, "localhost", &pki.path("ca.crt"));
    let db = Database::connect(&config(&url, &[("TASKSTORE_ENV", "production")]))
        .unwrap_or_else(|e| panic!("verify-full with the right CA: {e}"));
    let encrypted: Ssl = db
        .run(|c| {
            Ok(
                diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                    .get_result(c)?,
            )
        })
        .expect("pg_stat_ssl");
    assert!(encrypted.ssl, "the session is not encrypted");
    common::deploy::tour("tls verify-full", &db);
}

/// Refused at once (no retries within the start-up wait) as a TLS failure whose message names
/// the certificate and says what to check.
fn assert_refused_at_once(url: &str, needle: &str) {
    let start = Instant::now();
    let err = Database::connect(&config(url, &[])).expect_err("refused");
    let elapsed = start.elapsed();
    let text = err.to_string();
    eprintln!(
        "DEPLOY-FIGURE tls refusal after {} ms: {text}",
        elapsed.as_millis()
    );
    assert!(
        matches!(
            err,
            Error::Unavailable {
                kind: ConnectFailure::Tls,
                ..
            }
        ),
        "expected a TLS failure, got {} ({text})",
        err.kind_name()
    );
    assert!(!ConnectFailure::Tls.is_transient());
    assert!(
        text.contains(needle),
        "the message does not say {needle:?}: {text}"
    );
    assert!(
        text.contains("sslrootcert"),
        "the message does not say what to check: {text}"
    );
    assert!(
        elapsed < Duration::from_millis(STARTUP_WAIT_MS / 4),
        "took {} ms: the refusal was retried",
        elapsed.as_millis()
    );
}

#[test]
fn postgres_tls_wrong_ca_is_refused_at_once() {
    let pki = Pki::make();
    let cluster = tls_cluster(&pki);
    assert_refused_at_once(
        &verify_full_url(&cluster, "localhost", &pki.path("other-ca.crt")),
        "certificate verify failed",
    );
}

#[test]
fn postgres_tls_wrong_host_name_is_refused_at_once() {
    let pki = Pki::make();
    let cluster = tls_cluster(&pki);
    assert_refused_at_once(
        &verify_full_url(&cluster, "127.0.0.1", &pki.path("ca.crt")),
        "does not match host name",
    );
}

/// A real non-loopback address: the server listens inside a network namespace, reached through
/// a veth pair. In production plain TCP to it is a configuration error naming the variable;
/// `sslmode=require` passes the rule (and this server, without TLS, is a TLS failure that is
/// not retried); `DATABASE_REQUIRE_TLS=false` allows plain TCP explicitly.
#[test]
fn postgres_tls_production_refuses_plain_tcp_to_a_non_loopback_address() {
    let cluster = NetnsCluster::start(&[]);
    let url = cluster.url();
    let host = cluster.ns().ns_addr().to_string();
    assert!(!cluster.ns().ns_addr().is_loopback());

    let vars = |url: &str, extra: &[(&'static str, &'static str)]| {
        let mut v = vec![
            ("DATABASE_URL".to_owned(), url.to_owned()),
            ("TASKSTORE_ENV".to_owned(), "production".to_owned()),
            (
                "DATABASE_STARTUP_WAIT_MS".to_owned(),
                STARTUP_WAIT_MS.to_string(),
            ),
        ];
        v.extend(
            extra
                .iter()
                .map(|(k, x)| ((*k).to_owned(), (*x).to_owned())),
        );
        v
    };
    let err = Config::from_vars(vars(&url, &[])).expect_err("plain TCP in production");
    let text = err.to_string();
    assert!(
        matches!(&err, Error::Config { variable, .. } if variable == "DATABASE_URL"),
        "{text}"
    );
    assert!(
        text.contains(&host) && text.contains("sslmode=require"),
        "{text}"
    );
    assert!(
        !text.contains("postgres://postgres@"),
        "the URL is not printed: {text}"
    );

    let start = Instant::now();
    let err = Database::connect(
        &Config::from_vars(vars(&format!("{url}?sslmode=require"), &[])).expect("TLS asked"),
    )
    .expect_err("this server has no TLS");
    assert!(
        matches!(
            err,
            Error::Unavailable {
                kind: ConnectFailure::Tls,
                ..
            }
        ),
        "{}: {err}",
        err.kind_name()
    );
    assert!(
        start.elapsed() < Duration::from_millis(STARTUP_WAIT_MS / 4),
        "retried"
    );

    let db = Database::connect(
        &Config::from_vars(vars(&url, &[("DATABASE_REQUIRE_TLS", "false")]))
            .expect("allowed explicitly"),
    )
    .expect("plain TCP allowed explicitly");
    #[derive(QueryableByName)]
    struct Addr {
        #[diesel(sql_type = diesel::sql_types::Text)]
        addr: String,
    }
    let seen: Addr = db
        .run(|c| Ok(diesel::sql_query("SELECT host(inet_client_addr()) AS addr").get_result(c)?))
        .expect("client address");
    assert_eq!(seen.addr, cluster.ns().host_addr().to_string());
}
