//! The throw-away [`Cluster`] over TCP or over its Unix socket. `Cluster::start` already puts
//! the socket in the cluster's own directory (`unix_socket_directories`), so no extension of
//! the cluster is needed: only the URL differs.

use std::fmt;

use super::super::cluster::Cluster;

/// How a test reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `127.0.0.1:<port>`.
    Tcp,
    /// `<cluster dir>/.s.PGSQL.<port>`.
    Unix,
}

impl Transport {
    /// Both, for tests that must hold on either.
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Unix];

    /// The URL of database `db` on `cluster` over this transport.
    pub fn url_for(self, cluster: &Cluster, db: &str) -> String {
        match self {
            Transport::Tcp => cluster.url_for(db),
            Transport::Unix => unix_url_for(cluster, db),
        }
    }

    /// The URL of the `postgres` database.
    pub fn url(self, cluster: &Cluster) -> String {
        self.url_for(cluster, "postgres")
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        })
    }
}

/// `postgres://postgres@localhost:<port>/<db>?host=<dir>`: libpq's `host` parameter, a
/// directory, overrides the authority and selects the Unix socket `<dir>/.s.PGSQL.<port>`.
/// The authority stays `localhost` so that the layer treats the URL as loopback (no TLS
/// requirement) and `url::Url` accepts it.
pub fn unix_url_for(cluster: &Cluster, db: &str) -> String {
    let dir = cluster.dir().to_str().expect("cluster directory is UTF-8");
    let mut encoded = String::with_capacity(dir.len() + 16);
    for b in dir.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "postgres://postgres@localhost:{}/{db}?host={encoded}",
        cluster.port
    )
}
