//! The `taskstore` command and `taskstore serve` as the runtime role under row-level security
//! (issue 13 item 6): a throw-away cluster set up with `docs/roles.sql`, migrated by the owner
//! role, then `docs/roles-after-migrate.sql` and `docs/row-security.sql`, so `taskstore_app` is
//! in `taskstore_row_security` and sees only the rows of the transaction's owner. Task add,
//! list, done, import and export through the binary, and one HTTP flow (sign-up, create, list,
//! get, done, import, export) through `serve`, all as that role.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};

use common::cli_env::taskstore_bin;
use common::cluster::Cluster;
use serde_json::{Value, json};

/// The throw-away cluster with both roles and row-level security on.
struct Shape {
    cluster: Cluster,
    dir: tempfile::TempDir,
}

impl Shape {
    fn start() -> Self {
        let cluster = Cluster::start(&[]);
        common::cluster::psql_docs_file(&cluster.url(), "roles.sql", &["db=app"]);
        let shape = Self {
            cluster,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let out = shape.run("taskstore_owner", &["migrate", "run"]);
        assert!(
            out.status.success(),
            "migrate as the owner: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        common::cluster::psql_docs_file(
            &shape.url("taskstore_owner"),
            "roles-after-migrate.sql",
            &[],
        );
        common::cluster::psql_docs_file(&shape.cluster.url_for("app"), "row-security.sql", &[]);
        shape
    }

    fn url(&self, role: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/app", self.cluster.port)
    }

    fn cmd(&self, role: &str) -> Command {
        let mut c = Command::new(taskstore_bin());
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", self.url(role))
            .env("DATABASE_MIGRATION_URL", self.url("taskstore_owner"));
        c
    }

    fn run(&self, role: &str, args: &[&str]) -> Output {
        self.cmd(role).args(args).output().expect("run taskstore")
    }

    /// Runs with `--json` as the runtime role, expects success, parses stdout.
    fn app(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run("taskstore_app", &full);
        assert!(
            out.status.success(),
            "{args:?} as taskstore_app failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// What the owner role (not restricted) sees: `user_id` of every row, as psql prints it.
    fn owners_of_every_row(&self) -> String {
        self.cluster
            .psql("app", "SELECT user_id FROM tasks ORDER BY user_id, id")
    }
}

#[test]
fn postgres_cli_task_commands_under_row_security() {
    let shape = Shape::start();
    let add_user = |email: &str| -> String {
        shape.app(&["user", "add", "--email", email, "--password-hash", "h"])["id"]
            .as_str()
            .expect("user id")
            .to_owned()
    };
    let ada = add_user("ada@example.com");
    let bob = add_user("bob@example.com");

    let t1 = shape.app(&["task", "add", "--user", &ada, "--title", "First"]);
    let t1id = t1["id"].as_str().expect("task id").to_owned();
    shape.app(&["task", "add", "--user", &ada, "--title", "Second"]);
    shape.app(&["task", "add", "--user", &bob, "--title", "Bob's"]);
    let listed = shape.app(&["task", "list", "--user", &ada]);
    let titles: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles.len(), 2, "{listed}");
    assert!(!titles.contains(&"Bob's"), "{listed}");
    assert_eq!(
        shape.app(&["task", "done", "--user", &ada, &t1id])["completed"],
        true
    );
    // Bob's scope does not reach Ada's task (exit 5: not found).
    let out = shape.run(
        "taskstore_app",
        &["--json", "task", "done", "--user", &bob, &t1id],
    );
    assert_eq!(out.status.code(), Some(5), "{out:?}");

    // Import (multi-row INSERTs under the policy: PostgreSQL refuses COPY) and export.
    let src = shape.path("in.csv");
    let mut csv = String::from("title,priority,completed\n");
    for i in 0..50 {
        csv.push_str(&format!("Imported {i:02},{},{}\n", i % 5 + 1, i % 2 == 0));
    }
    std::fs::write(&src, csv).expect("write csv");
    assert_eq!(
        shape.app(&["task", "import", "--user", &ada, &src])["imported"],
        50
    );
    let out = shape.path("out.jsonl");
    shape.app(&[
        "task", "export", "--user", &ada, "--format", "jsonl", "--output", &out,
    ]);
    let exported = std::fs::read_to_string(&out).expect("read export");
    assert_eq!(exported.lines().count(), 52, "Ada's tasks, not Bob's");
    assert!(!exported.contains("Bob's"));
    let stats = shape.app(&["stats", "--user", &ada]);
    assert_eq!(stats["total"], 52, "{stats}");
    assert_eq!(stats["completed"], 26, "{stats}");

    // The rows carry their owners (seen by the superuser, who is never restricted).
    let owners = shape.owners_of_every_row();
    assert_eq!(owners.lines().filter(|l| l.trim() == ada).count(), 52);
    assert_eq!(owners.lines().filter(|l| l.trim() == bob).count(), 1);
}

#[test]
fn postgres_serve_flow_under_row_security() {
    let shape = Shape::start();
    let mut child = shape
        .cmd("taskstore_app")
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("TASKSTORE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn taskstore serve");
    let stderr = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read serve's stdout");
    let Some(base) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
        let _ = child.kill();
        panic!("serve did not start: {line:?} {}", stderr.join().unwrap());
    };
    let result = std::panic::catch_unwind(|| serve_flow(&base));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    let log = stderr.join().unwrap_or_default();
    if let Err(panic) = result {
        eprintln!("serve's log:\n{log}");
        std::panic::resume_unwind(panic);
    }
}

/// One HTTP request with Basic credentials; (status, body).
fn send(
    method: &str,
    url: &str,
    who: Option<(&str, &str)>,
    content_type: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .build();
    let mut req = agent.request(method, url);
    if let Some((u, p)) = who {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req = req.set("Authorization", &format!("Basic {token}"));
    }
    if let Some(t) = content_type {
        req = req.set("Content-Type", t);
    }
    let res = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let res = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    (res.status(), res.into_string().unwrap_or_default())
}

fn ok_json(method: &str, url: &str, who: (&str, &str), body: Option<Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    let ct = text.as_ref().map(|_| "application/json");
    let (status, out) = send(method, url, Some(who), ct, text.as_deref());
    assert!(status < 300, "{method} {url}: {status} {out}");
    (status, serde_json::from_str(&out).unwrap_or(Value::Null))
}

fn serve_flow(base: &str) {
    let url = |p: &str| format!("{base}{p}");
    let ada = ("ada@example.com", "correct horse battery");
    let bob = ("bob@example.com", "another good password");
    for (email, password) in [ada, bob] {
        let body = json!({ "email": email, "password": password }).to_string();
        let (status, out) = send(
            "POST",
            &url("/v1/users"),
            None,
            Some("application/json"),
            Some(&body),
        );
        assert_eq!(status, 201, "sign up {email}: {out}");
    }
    let (_, task) = ok_json(
        "POST",
        &url("/v1/tasks"),
        ada,
        Some(json!({ "title": "over HTTP", "priority": 4 })),
    );
    let id = task["id"].as_str().expect("id").to_owned();
    ok_json(
        "POST",
        &url("/v1/tasks"),
        bob,
        Some(json!({ "title": "Bob's" })),
    );
    let (_, got) = ok_json("GET", &url(&format!("/v1/tasks/{id}")), ada, None);
    assert_eq!(got["title"], "over HTTP");
    let (status, _) = send(
        "GET",
        &url(&format!("/v1/tasks/{id}")),
        Some(bob),
        None,
        None,
    );
    assert_eq!(status, 404, "Bob does not see Ada's task");
    let (_, done) = ok_json("POST", &url(&format!("/v1/tasks/{id}/done")), ada, None);
    assert_eq!(done["completed"], true);
    let (status, out) = send(
        "POST",
        &url("/v1/tasks/import"),
        Some(ada),
        Some("text/csv"),
        Some("title,priority\nFrom CSV,2\nAnother,4\n"),
    );
    assert_eq!(status, 201, "{out}");
    let (_, page) = ok_json("GET", &url("/v1/tasks?limit=20"), ada, None);
    assert_eq!(page["items"].as_array().expect("items").len(), 3, "{page}");
    let (_, stats) = ok_json("GET", &url("/v1/stats"), ada, None);
    assert_eq!(stats["total"], 3, "{stats}");
    assert_eq!(stats["completed"], 1, "{stats}");
    let (status, csv) = send("GET", &url("/v1/tasks/export"), Some(ada), None, None);
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 4, "a header and Ada's 3 tasks: {csv}");
    assert!(!csv.contains("Bob's"));
    let (_, page) = ok_json("GET", &url("/v1/tasks?limit=20"), bob, None);
    assert_eq!(page["items"].as_array().expect("items").len(), 1, "{page}");
}
