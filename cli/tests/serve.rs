//! `taskstore serve` over real HTTP on both backends: every route, the status of every error
//! the client can cause, authentication failures, the stale-version conflict, 8 concurrent
//! clients, request limits, graceful shutdown, and (on a throw-away cluster) the database
//! going away under load and coming back.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Backend;
use common::cli_env::{CliEnv, taskstore_bin};
use serde_json::{Value, json};

/// A running `taskstore serve` on a free port; SIGTERM and reaped on drop.
struct Server {
    child: Child,
    base: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `serve --addr 127.0.0.1:0` with `DATABASE_URL=url` and `env`, and waits for it
    /// to print its address.
    fn start(url: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(taskstore_bin());
        cmd.args(["serve", "--addr", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("TASKSTORE_LOG", "info")
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn taskstore serve");
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut s);
            s
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read serve's stdout");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("serve did not start: stdout {line:?}");
            })
            .to_owned();
        Self {
            child,
            base,
            stderr: Some(stderr),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the exit; returns (exit code, elapsed, stderr).
    fn terminate(&mut self) -> (Option<i32>, Duration, String) {
        let started = Instant::now();
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().expect("wait for serve");
        let elapsed = started.elapsed();
        let err = self
            .stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        (status.code(), elapsed, err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGTERM);
            }
            let _ = self.child.wait();
        }
    }
}

/// One HTTP answer.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Asserts the status and, for an error, the body's shape `{kind, message, field}`.
    fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "{self:?}");
        if status >= 400 {
            let body = self.json();
            assert!(body["kind"].is_string(), "{body}");
            assert!(body["message"].is_string(), "{body}");
            assert!(body.get("field").is_some(), "{body}");
        }
        self
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// Sends a request; `auth` is (email, password) for HTTP Basic.
fn send(
    method: &str,
    url: &str,
    auth: Option<(&str, &str)>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut req = agent().request(method, url);
    if let Some((u, p)) = auth {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req = req.set("Authorization", &format!("Basic {token}"));
    }
    for (k, v) in headers {
        req = req.set(k, v);
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
    let status = res.status();
    let headers = res
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = res.header(&n).unwrap_or_default().to_owned();
            (n, v)
        })
        .collect();
    let text = res.into_string().unwrap_or_default();
    Resp {
        status,
        headers,
        text,
    }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A request without a body or extra headers.
fn call(method: &str, url: &str, auth: Option<(&str, &str)>) -> Resp {
    send(method, url, auth, &[], None)
}

/// A request with a JSON body.
fn send_json(method: &str, url: &str, auth: Option<(&str, &str)>, body: &str) -> Resp {
    send(method, url, auth, &[JSON], Some(body))
}

fn sign_up(s: &Server, email: &str, password: &str) -> Value {
    let body = json!({ "email": email, "password": password, "first_name": "Ada" }).to_string();
    send_json("POST", &s.url("/v1/users"), None, &body)
        .expect(201)
        .json()
}

fn create_task(s: &Server, who: (&str, &str), body: Value) -> Value {
    send_json("POST", &s.url("/v1/tasks"), Some(who), &body.to_string())
        .expect(201)
        .json()
}

/// Every route and the status of each error a client can cause.
fn every_route(backend: Backend) {
    let env = CliEnv::new(backend);
    let s = Server::start(env.url.as_deref().unwrap(), &[]);
    let ada = ("ada@example.com", "correct horse");

    // Sign-up: 201 without the hash; then every refusal.
    let user = sign_up(&s, ada.0, ada.1);
    assert_eq!(user["email"], ada.0);
    assert!(user.get("password_hash").is_none(), "{user}");
    let users = s.url("/v1/users");
    let dup = json!({"email": "ADA@example.com", "password": "whatever1"}).to_string();
    let r = send_json("POST", &users, None, &dup).expect(409);
    assert_eq!(r.json()["kind"], "conflict");
    let bad_email = json!({"email": "nope", "password": "whatever1"}).to_string();
    let r = send_json("POST", &users, None, &bad_email).expect(422);
    assert_eq!(r.json()["field"], "email");
    let short = json!({"email": "b@example.com", "password": "short"}).to_string();
    let r = send_json("POST", &users, None, &short).expect(422);
    assert_eq!(r.json()["field"], "password");
    send_json("POST", &users, None, "{not json").expect(400);
    send_json("POST", &users, None, r#"{"email": 3}"#).expect(422);
    send_json(
        "POST",
        &users,
        None,
        r#"{"email":"c@example.com","password":"whatever1","admin":true}"#,
    )
    .expect(422);
    send(
        "POST",
        &users,
        None,
        &[("Content-Type", "text/plain")],
        Some("{}"),
    )
    .expect(415);
    let huge = json!({"email": "d@example.com", "password": "x".repeat(100_000)}).to_string();
    let r = send_json("POST", &users, None, &huge).expect(413);
    let msg = r.json()["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("at most 65536 bytes"), "{msg}");

    // Authentication failures: one answer for all of them.
    let me = s.url("/v1/me");
    let unauthorized: Vec<Resp> = vec![
        call("GET", &me, None),
        call("GET", &me, Some((ada.0, "wrong password"))),
        call("GET", &me, Some(("nobody@example.com", ada.1))),
        call("GET", &me, Some(("not an email", ada.1))),
        send("GET", &me, None, &[("Authorization", "Basic !!!")], None),
        send("GET", &me, None, &[("Authorization", "Bearer abc")], None),
    ];
    let first = unauthorized[0].text.clone();
    for r in unauthorized {
        let r = r.expect(401);
        assert_eq!(r.text, first, "every 401 is the same");
        assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic"));
    }

    // Me.
    let got = call("GET", &me, Some(ada)).expect(200).json();
    assert_eq!(got, user);
    let patched = send_json(
        "PATCH",
        &me,
        Some(ada),
        r#"{"last_name": "Lovelace", "first_name": null}"#,
    )
    .expect(200)
    .json();
    assert_eq!(patched["last_name"], "Lovelace");
    assert_eq!(patched["first_name"], Value::Null);
    send_json("PATCH", &me, Some(ada), r#"{"is_active": false}"#).expect(422);

    // Tasks: create, get (same JSON as the CLI's --json), list, patch, If-Match, done, reopen.
    let t1 = create_task(&s, ada, json!({"title": "Write", "priority": 5}));
    assert_eq!(t1["version"], 1);
    let id = t1["id"].as_str().unwrap().to_owned();
    let one = s.url(&format!("/v1/tasks/{id}"));
    let r = call("GET", &one, Some(ada)).expect(200);
    assert_eq!(r.header("ETag"), Some("\"1\""));
    let via_cli = env.json(&["task", "get", "--user", ada.0, &id]);
    assert_eq!(r.json(), via_cli, "HTTP and CLI --json agree");
    let r = send_json("POST", &s.url("/v1/tasks"), Some(ada), r#"{"title": ""}"#).expect(422);
    assert_eq!(r.json()["field"], "title");
    send_json(
        "POST",
        &s.url("/v1/tasks"),
        Some(ada),
        r#"{"title": "x", "priority": 9}"#,
    )
    .expect(422);
    send_json(
        "POST",
        &s.url("/v1/tasks"),
        Some(ada),
        r#"{"title": "x", "user_id": "0192f1a6-3f3e-7c2a-9d4b-5e6f7a8b9c0d"}"#,
    )
    .expect(422);
    for i in 0..4 {
        create_task(
            &s,
            ada,
            json!({"title": format!("t{i}"), "priority": 1 + i % 2}),
        );
    }

    let list = s.url("/v1/tasks");
    let page = call("GET", &format!("{list}?limit=2&sort=title"), Some(ada))
        .expect(200)
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page2 = call(
        "GET",
        &format!("{list}?limit=2&sort=title&cursor={cursor}"),
        Some(ada),
    )
    .expect(200)
    .json();
    assert_ne!(page2["items"][0]["id"], page["items"][0]["id"]);
    let high = call("GET", &format!("{list}?priority_min=5&completed=false&search=Wri&created_after=2000-01-01T00:00:00Z&created_before=2999-01-01T00:00:00Z"), Some(ada))
        .expect(200)
        .json();
    assert_eq!(high["items"].as_array().unwrap().len(), 1, "{high}");
    assert_eq!(high["next_cursor"], Value::Null);
    let r = call("GET", &format!("{list}?limit=5000"), Some(ada)).expect(422);
    assert_eq!(r.json()["field"], "limit");
    call("GET", &format!("{list}?limit=0"), Some(ada)).expect(422);
    call("GET", &format!("{list}?sort=sideways"), Some(ada)).expect(422);
    call("GET", &format!("{list}?created_after=yesterday"), Some(ada)).expect(422);
    call("GET", &format!("{list}?completed=maybe"), Some(ada)).expect(422);
    call("GET", &format!("{list}?cursor=garbage"), Some(ada)).expect(422);
    call("GET", &format!("{list}?owner=someone"), Some(ada)).expect(422);

    // PATCH with If-Match: current version 200, stale 409, malformed 400.
    let r = send(
        "PATCH",
        &one,
        Some(ada),
        &[JSON, ("If-Match", "\"1\"")],
        Some(r#"{"title": "Write more"}"#),
    )
    .expect(200);
    assert_eq!(r.json()["version"], 2);
    assert_eq!(r.header("ETag"), Some("\"2\""));
    let r = send(
        "PATCH",
        &one,
        Some(ada),
        &[JSON, ("If-Match", "1")],
        Some(r#"{"title": "Lost update"}"#),
    )
    .expect(409);
    assert_eq!(r.json()["kind"], "stale_version");
    let r = call("GET", &one, Some(ada)).expect(200).json();
    assert_eq!(r["title"], "Write more", "a stale update changes nothing");
    send(
        "PATCH",
        &one,
        Some(ada),
        &[JSON, ("If-Match", "soon")],
        Some(r#"{"title": "x"}"#),
    )
    .expect(400);
    send_json(
        "PATCH",
        &one,
        Some(ada),
        r#"{"description": null, "priority": 2}"#,
    )
    .expect(200);
    send_json("PATCH", &one, Some(ada), r#"{"version": 7}"#).expect(422);
    let done = call("POST", &format!("{one}/done"), Some(ada))
        .expect(200)
        .json();
    assert_eq!(done["completed"], true);
    assert!(done["completed_at"].is_string());
    let open = call("POST", &format!("{one}/reopen"), Some(ada))
        .expect(200)
        .json();
    assert_eq!(open["completed"], false);

    // Stats: the CLI's --json.
    let stats = call("GET", &s.url("/v1/stats"), Some(ada))
        .expect(200)
        .json();
    assert_eq!(stats, env.json(&["stats", "--user", ada.0]));
    assert_eq!(stats["total"], 5);

    // Another user sees none of it: the owner is always the authenticated user.
    let bob = ("bob@example.com", "battery staple");
    sign_up(&s, bob.0, bob.1);
    let r = call("GET", &one, Some(bob)).expect(404);
    assert_eq!(r.json()["kind"], "not_found");
    send_json("PATCH", &one, Some(bob), r#"{"title": "mine"}"#).expect(404);
    call("DELETE", &one, Some(bob)).expect(404);
    call("POST", &format!("{one}/done"), Some(bob)).expect(404);
    let bobs = call("GET", &list, Some(bob)).expect(200).json();
    assert_eq!(bobs["items"], json!([]));
    call("GET", &s.url("/v1/tasks/not-a-uuid"), Some(ada)).expect(422);
    call(
        "GET",
        &s.url("/v1/tasks/0192f1a6-3f3e-7c2a-9d4b-5e6f7a8b9c0d"),
        Some(ada),
    )
    .expect(404);

    // Import: CSV and JSON Lines, all or nothing with every bad line named; export both.
    let import = s.url("/v1/tasks/import");
    let csv = "title,priority,description\nFrom CSV,2,first\nAnother,4,\n";
    let r = send(
        "POST",
        &import,
        Some(ada),
        &[("Content-Type", "text/csv")],
        Some(csv),
    )
    .expect(201)
    .json();
    assert_eq!(r["imported"], 2);
    let jsonl = "{\"title\":\"From JSONL\",\"completed\":true}\n";
    send(
        "POST",
        &import,
        Some(ada),
        &[("Content-Type", "application/jsonl")],
        Some(jsonl),
    )
    .expect(201);
    let bad = "title,priority\nok,3\n,2\nbad,9\n";
    let r = send(
        "POST",
        &import,
        Some(ada),
        &[("Content-Type", "text/csv")],
        Some(bad),
    )
    .expect(422)
    .json();
    let details: Vec<&str> = r["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 2, "{r}");
    assert!(details[0].starts_with("line 3: title"), "{details:?}");
    assert!(details[1].starts_with("line 4: priority"), "{details:?}");
    send(
        "POST",
        &import,
        Some(ada),
        &[("Content-Type", "application/xml")],
        Some("<x/>"),
    )
    .expect(415);
    let again = format!("id,title\n{id},dup\n");
    let r = send(
        "POST",
        &import,
        Some(ada),
        &[("Content-Type", "text/csv")],
        Some(&again),
    )
    .expect(409)
    .json();
    assert!(
        r["details"][0].as_str().unwrap().starts_with("line 2: id"),
        "{r}"
    );

    let export = s.url("/v1/tasks/export");
    let r = send("GET", &export, Some(ada), &[("Accept", "text/csv")], None).expect(200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/csv"));
    assert_eq!(r.text.lines().count(), 1 + 8, "{}", r.text);
    assert!(
        r.text
            .starts_with("id,title,description,priority,completed,")
    );
    let r = send(
        "GET",
        &export,
        Some(ada),
        &[("Accept", "application/jsonl")],
        None,
    )
    .expect(200);
    assert_eq!(r.text.lines().count(), 8);
    for line in r.text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["title"].is_string());
    }
    // The export re-imports identically for another user (new ids would conflict: drop them).
    send(
        "GET",
        &export,
        Some(ada),
        &[("Accept", "application/pdf")],
        None,
    )
    .expect(406);

    // Delete a task, then me: afterwards my credentials no longer work.
    let r = call("DELETE", &one, Some(ada)).expect(200).json();
    assert_eq!(r, json!({ "deleted": id }));
    call("GET", &one, Some(ada)).expect(404);
    let r = call("DELETE", &me, Some(bob)).expect(200).json();
    assert!(r["deleted"].is_string());
    call("GET", &me, Some(bob)).expect(401);

    // Unknown routes and methods: JSON errors too.
    call("GET", &s.url("/v2/nothing"), Some(ada)).expect(404);
    call("PUT", &s.url("/v1/stats"), Some(ada)).expect(405);

    // Operational routes and the request id.
    call("GET", &s.url("/healthz"), None).expect(200);
    let ready = call("GET", &s.url("/readyz"), None).expect(200).json();
    assert_eq!(ready["status"], "ok");
    let r = send(
        "GET",
        &s.url("/healthz"),
        None,
        &[("X-Request-Id", "trace-me-42")],
        None,
    );
    assert_eq!(r.header("X-Request-Id"), Some("trace-me-42"));
    let r = call("GET", &s.url("/healthz"), None);
    assert_eq!(
        r.header("X-Request-Id").unwrap().len(),
        36,
        "a generated UUID"
    );
    let metrics = call("GET", &s.url("/metrics"), None).expect(200).text;
    for needle in [
        "http_requests_total{method=\"GET\",route=\"/v1/tasks/{id}\",status=\"200\"}",
        "http_requests_total{method=\"PATCH\",route=\"/v1/tasks/{id}\",status=\"409\"}",
        "http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/tasks\",status=\"200\"",
        "taskstore_pool_timeouts_total{pool=\"primary\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "/metrics lacks {needle}:\n{metrics}"
        );
    }
    // The access log carries the request id given by the client.
    drop(env);
    let mut s = s;
    let (code, _, log) = s.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("trace-me-42"),
        "access log has the request id:\n{log}"
    );
    assert!(!log.contains("correct horse"), "no password in the log");
}

#[test]
fn every_route_sqlite() {
    every_route(Backend::Sqlite);
}

#[test]
fn every_route_postgres() {
    every_route(Backend::Postgres);
}

/// A user made with `user add --password` logs in; a deactivated user cannot.
fn cli_password_and_inactive(backend: Backend) {
    let env = CliEnv::new(backend);
    // From standard input when it is not a terminal.
    let with_password = |args: &[&str], password: &str| {
        let mut child = env
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stored: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(stored.get("password_hash").is_none());
    };
    let add = |email: &str, password: &str| {
        with_password(
            &["--json", "user", "add", "--email", email, "--password"],
            password,
        );
    };
    add("cli@example.com", "from the cli");
    add("stdin@example.com", "piped password");
    // The flag takes no value: a password never sits on the command line.
    let out = env.run(&[
        "user",
        "add",
        "--email",
        "x@example.com",
        "--password",
        "secret",
    ]);
    assert_eq!(out.status.code(), Some(2));

    let s = Server::start(env.url.as_deref().unwrap(), &[]);
    let me = s.url("/v1/me");
    call("GET", &me, Some(("cli@example.com", "from the cli"))).expect(200);
    call("GET", &me, Some(("stdin@example.com", "piped password"))).expect(200);
    call("GET", &me, Some(("cli@example.com", "from the CLI"))).expect(401);
    env.json(&["user", "deactivate", "cli@example.com"]);
    call("GET", &me, Some(("cli@example.com", "from the cli"))).expect(401);
    env.json(&["user", "activate", "cli@example.com"]);
    call("GET", &me, Some(("cli@example.com", "from the cli"))).expect(200);
    // A password changed over HTTP: the old one stops working at once.
    send_json(
        "PATCH",
        &me,
        Some(("cli@example.com", "from the cli")),
        r#"{"password": "a new secret"}"#,
    )
    .expect(200);
    call("GET", &me, Some(("cli@example.com", "from the cli"))).expect(401);
    call("GET", &me, Some(("cli@example.com", "a new secret"))).expect(200);
    // An operator resets it from the CLI (`user update --password`, standard input).
    with_password(
        &["--json", "user", "update", "cli@example.com", "--password"],
        "reset by the operator",
    );
    call("GET", &me, Some(("cli@example.com", "a new secret"))).expect(401);
    call(
        "GET",
        &me,
        Some(("cli@example.com", "reset by the operator")),
    )
    .expect(200);
    // A hash that is not a PHC string is stored, with a warning that serve cannot verify it.
    let out = env.run(&[
        "user",
        "add",
        "--email",
        "bcrypt@example.com",
        "--password-hash",
        "not-a-phc-string",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("not a PHC string") && !warned.contains("not-a-phc-string"),
        "a warning that names the problem, never the hash: {warned}"
    );
    call("GET", &me, Some(("bcrypt@example.com", "anything"))).expect(401);
}

#[test]
fn cli_password_and_inactive_sqlite() {
    cli_password_and_inactive(Backend::Sqlite);
}

#[test]
fn cli_password_and_inactive_postgres() {
    cli_password_and_inactive(Backend::Postgres);
}

/// Unknown email and wrong password take comparable time (the unknown one is verified against
/// a dummy hash): the medians of 5 tries each are within a factor of 3 of each other.
#[test]
fn unknown_email_costs_what_a_wrong_password_costs_sqlite() {
    let env = CliEnv::new(Backend::Sqlite);
    let s = Server::start(env.url.as_deref().unwrap(), &[]);
    sign_up(&s, "t@example.com", "right password");
    let me = s.url("/v1/me");
    let median = |email: &str| {
        let mut v: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                call("GET", &me, Some((email, "wrong password"))).expect(401);
                t.elapsed()
            })
            .collect();
        v.sort();
        v[2]
    };
    let known = median("t@example.com");
    let unknown = median("nobody@example.com");
    let ratio = known.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (1.0 / 3.0..3.0).contains(&ratio),
        "wrong password {known:?} vs unknown email {unknown:?}"
    );
}

/// 8 clients at once, each creating and reading its own tasks: every answer 2xx, nothing lost.
fn eight_clients(backend: Backend) {
    let env = CliEnv::new(backend);
    let s = Server::start(env.url.as_deref().unwrap(), &[]);
    let who = ("many@example.com", "eight clients");
    sign_up(&s, who.0, who.1);
    std::thread::scope(|scope| {
        for c in 0..8 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..15 {
                    let t = create_task(s, who, json!({"title": format!("c{c} t{i}")}));
                    let id = t["id"].as_str().unwrap();
                    let url = s.url(&format!("/v1/tasks/{id}"));
                    call("GET", &url, Some(who)).expect(200);
                    call("POST", &format!("{url}/done"), Some(who)).expect(200);
                    call("GET", &s.url("/v1/tasks?limit=20"), Some(who)).expect(200);
                }
            });
        }
    });
    let stats = call("GET", &s.url("/v1/stats"), Some(who))
        .expect(200)
        .json();
    assert_eq!(stats["total"], 120);
    assert_eq!(stats["completed"], 120);
}

#[test]
fn eight_concurrent_clients_sqlite() {
    eight_clients(Backend::Sqlite);
}

#[test]
fn eight_concurrent_clients_postgres() {
    eight_clients(Backend::Postgres);
}

/// SIGTERM while an import is in flight: the import finishes (201), new connections are
/// refused, the process drops its pool and exits 0.
fn graceful_shutdown(backend: Backend) {
    let env = CliEnv::new(backend);
    let mut s = Server::start(env.url.as_deref().unwrap(), &[]);
    let who = ("bye@example.com", "graceful exit");
    sign_up(&s, who.0, who.1);
    let mut body = String::from("title,priority,description\n");
    for i in 0..100_000 {
        body.push_str(&format!(
            "task number {i},{},imported while shutting down\n",
            1 + i % 5
        ));
    }
    let url = s.url("/v1/tasks/import");
    let importer = std::thread::spawn(move || {
        let r = send(
            "POST",
            &url,
            Some(who),
            &[("Content-Type", "text/csv")],
            Some(&body),
        );
        (r, Instant::now())
    });
    // Wait until the server has the request (the access log would be too late: it is written
    // at the end), then signal.
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    let (code, elapsed, log) = s.terminate();
    let (r, answered) = importer.join().unwrap();
    let r = r.expect(201);
    assert_eq!(r.json()["imported"], 100_000);
    assert!(
        answered > signalled,
        "the import must still be in flight when SIGTERM arrives (it answered {:?} before)",
        signalled - answered
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("pool dropped"), "{log}");
    // Nothing listens any more.
    let refused = agent().get(&s.url("/healthz")).call();
    assert!(
        matches!(refused, Err(ureq::Error::Transport(_))),
        "{refused:?}"
    );
    // All or nothing: the import's rows are all there.
    let stats = env.json(&["stats", "--user", who.0]);
    assert_eq!(stats["total"], 100_000);
}

#[test]
fn graceful_shutdown_sqlite() {
    graceful_shutdown(Backend::Sqlite);
}

#[test]
fn graceful_shutdown_postgres() {
    graceful_shutdown(Backend::Postgres);
}

/// One request's outcome under load: when it started and ended, and its status (0 when the
/// transport failed).
struct Sample {
    start: Instant,
    end: Instant,
    status: u16,
    retry_after: bool,
}

/// `clients` threads sending `GET url` with `who`'s credentials until `stop` is set.
fn load(
    url: &str,
    who: (&str, &str),
    clients: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<Sample> {
    use std::sync::atomic::Ordering;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let start = Instant::now();
                        let r = std::panic::catch_unwind(|| call("GET", url, Some(who)));
                        let end = Instant::now();
                        let (status, retry_after) = match r {
                            Ok(r) => {
                                if r.status == 503 {
                                    let body = r.json();
                                    assert!(body["kind"].is_string());
                                }
                                (r.status, r.header("Retry-After").is_some())
                            }
                            Err(_) => (0, false),
                        };
                        out.push(Sample {
                            start,
                            end,
                            status,
                            retry_after,
                        });
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// The database stops under load: every request that starts after the stop is 503 (with
/// `Retry-After`) within `DATABASE_ACQUIRE_TIMEOUT_MS` + 250 ms; when the database returns,
/// requests succeed again within 1 s, without restarting `serve`.
#[test]
fn database_down_under_load_answers_503_then_recovers_postgres() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let cluster = common::cluster::Cluster::start(&[]);
    let acquire_ms = 1000u64;
    let s = Server::start(
        &cluster.url(),
        &[
            ("DATABASE_POOL_MAX_SIZE", "4"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "1000"),
            ("DATABASE_CONNECT_TIMEOUT_MS", "500"),
        ],
    );
    let who = ("down@example.com", "database down");
    sign_up(&s, who.0, who.1);
    let task = create_task(&s, who, json!({"title": "survive"}));
    let url = s.url(&format!("/v1/tasks/{}", task["id"].as_str().unwrap()));
    call("GET", &url, Some(who)).expect(200);

    let stop = AtomicBool::new(false);
    let bound = Duration::from_millis(acquire_ms + 250);
    let (samples, stopped, restarting, restarted) = std::thread::scope(|scope| {
        let loader = scope.spawn(|| load(&url, who, 8, &stop));
        std::thread::sleep(Duration::from_millis(500));
        cluster.stop();
        let stopped = Instant::now();
        std::thread::sleep(Duration::from_secs(3));
        // The server accepts connections before `pg_ctl start -w` notices and returns: the
        // outage ends when the start begins, not when pg_ctl returns.
        let restarting = Instant::now();
        cluster.pg_ctl_start();
        let restarted = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        (loader.join().unwrap(), stopped, restarting, restarted)
    });

    let before: Vec<&Sample> = samples.iter().filter(|x| x.end < stopped).collect();
    assert!(
        before.iter().any(|x| x.status == 200),
        "load ran before the stop"
    );
    let down: Vec<&Sample> = samples
        .iter()
        .filter(|x| x.start > stopped && x.end < restarting)
        .collect();
    assert!(
        down.len() >= 8,
        "requests were sent while down: {}",
        down.len()
    );
    for x in &down {
        assert_eq!(x.status, 503, "every request while down is 503");
        assert!(x.retry_after, "503 carries Retry-After");
        assert!(
            x.end - x.start <= bound,
            "answered in {:?}, bound {bound:?}",
            x.end - x.start
        );
    }
    let first_ok = samples
        .iter()
        .filter(|x| x.start >= restarted && x.status == 200)
        .map(|x| x.end)
        .min()
        .expect("service resumed after the restart");
    assert!(
        first_ok - restarted <= Duration::from_secs(1),
        "resumed {:?} after the database returned",
        first_ok - restarted
    );
    let after: Vec<&Sample> = samples.iter().filter(|x| x.start > first_ok).collect();
    assert!(
        after.iter().all(|x| x.status == 200),
        "all requests after recovery succeed"
    );
    let worst = down.iter().map(|x| x.end - x.start).max().unwrap();
    eprintln!(
        "down: {} requests, all 503, worst {worst:?}; resumed {:?} after restart",
        down.len(),
        first_ok - restarted
    );
}

/// 64 clients on a pool of 2 with DATABASE_POOL_MAX_WAITERS=4: the excess is answered 503 with
/// `Retry-After` at once, no request waits past the acquire deadline, and the rest succeed.
fn pool_exhausted(backend: Backend) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = CliEnv::new(backend);
    let s = Server::start(
        env.url.as_deref().unwrap(),
        &[
            ("DATABASE_POOL_MAX_SIZE", "2"),
            ("DATABASE_POOL_MIN_IDLE", "2"),
            ("DATABASE_POOL_MAX_WAITERS", "4"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "500"),
        ],
    );
    let who = ("busy@example.com", "pool exhausted");
    sign_up(&s, who.0, who.1);
    for i in 0..50 {
        create_task(&s, who, json!({"title": format!("t{i}")}));
    }
    let url = s.url("/v1/tasks?limit=50");
    call("GET", &url, Some(who)).expect(200);
    let stop = AtomicBool::new(false);
    let samples = std::thread::scope(|scope| {
        let loader = scope.spawn(|| load(&url, who, 64, &stop));
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        loader.join().unwrap()
    });
    let bound = Duration::from_millis(500 + 250);
    let ok = samples.iter().filter(|x| x.status == 200).count();
    let busy: Vec<&Sample> = samples.iter().filter(|x| x.status == 503).collect();
    let other: Vec<u16> = samples
        .iter()
        .map(|x| x.status)
        .filter(|s| *s != 200 && *s != 503)
        .collect();
    assert!(other.is_empty(), "only 200 and 503: {other:?}");
    assert!(ok > 0, "some requests are served");
    assert!(
        !busy.is_empty(),
        "64 clients on 2 connections + 4 waiters get 503s"
    );
    assert!(
        busy.iter().all(|x| x.retry_after),
        "every 503 has Retry-After"
    );
    let worst = samples.iter().map(|x| x.end - x.start).max().unwrap();
    assert!(
        worst <= bound,
        "no request hangs: worst {worst:?}, bound {bound:?}"
    );
    let mut busy_ms: Vec<f64> = busy
        .iter()
        .map(|x| (x.end - x.start).as_secs_f64() * 1e3)
        .collect();
    busy_ms.sort_by(f64::total_cmp);
    eprintln!(
        "{ok} ok, {} busy (503), median 503 in {:.1} ms, worst request {worst:?}",
        busy.len(),
        busy_ms[busy_ms.len() / 2]
    );
}

#[test]
fn pool_exhausted_answers_503_fast_sqlite() {
    pool_exhausted(Backend::Sqlite);
}

#[test]
fn pool_exhausted_answers_503_fast_postgres() {
    pool_exhausted(Backend::Postgres);
}

/// `--addr` that is not `HOST:PORT` is a usage error (exit 2) naming the form; a port that is
/// taken exits 1 naming the way out, before the database is touched.
#[test]
fn bad_addr_and_busy_port_are_clear_errors_sqlite() {
    let env = CliEnv::new(Backend::Sqlite);
    for bad in ["nonsense", "127.0.0.1:99999", ":8080", "127.0.0.1:"] {
        let err = env.fails(2, &["serve", "--addr", bad]);
        let msg = err["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("expected HOST:PORT"), "{bad}: {err}");
    }
    let s = Server::start(env.url.as_deref().unwrap(), &[]);
    let taken = s.base.trim_start_matches("http://").to_owned();
    let err = env.fails(1, &["serve", "--addr", &taken]);
    let msg = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&format!("cannot listen on {taken}")) && msg.contains("pass another --addr"),
        "{err}"
    );
}

/// `If-Match: *` is unconditional (RFC 9110 §13.1.1); an empty, listed, repeated or weak
/// (`W/"2"`, which never matches under If-Match's strong comparison) `If-Match` is 400 and
/// changes nothing.
fn if_match_forms(backend: Backend) {
    let env = CliEnv::new(backend);
    let s = Server::start(env.url.as_deref().unwrap(), &[]);
    let ada = ("ada@example.com", "correct horse");
    sign_up(&s, ada.0, ada.1);
    let task = create_task(&s, ada, json!({"title": "t"}));
    let url = s.url(&format!("/v1/tasks/{}", task["id"].as_str().unwrap()));
    let body = json!({"priority": 5}).to_string();
    let r = send(
        "PATCH",
        &url,
        Some(ada),
        &[JSON, ("If-Match", "*")],
        Some(&body),
    )
    .expect(200);
    assert_eq!(r.json()["version"], 2);
    for bad in ["", "\"2\", \"3\"", "abc", "W/\"2\""] {
        let r = send(
            "PATCH",
            &url,
            Some(ada),
            &[JSON, ("If-Match", bad)],
            Some(&body),
        )
        .expect(400);
        assert_eq!(r.json()["field"], "If-Match", "{bad:?}");
    }
    // The header twice (ureq cannot repeat a header): written by hand on one connection.
    let base = s.url("");
    let authority = base.trim_start_matches("http://");
    let path = url
        .strip_prefix(&base)
        .expect("the task's URL starts with the base");
    let token = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ada.0, ada.1))
    };
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    let request = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Basic {token}\r\n\
         Content-Type: application/json\r\nIf-Match: \"2\"\r\nIf-Match: \"1\"\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    std::io::Write::write_all(&mut stream, request.as_bytes()).expect("send");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "If-Match twice must be 400: {answer}"
    );
    let r = call("GET", &url, Some(ada)).expect(200);
    assert_eq!(
        r.json()["version"],
        2,
        "a refused If-Match changed the task"
    );
}

#[test]
fn if_match_forms_sqlite() {
    if_match_forms(Backend::Sqlite);
}

#[test]
fn if_match_forms_postgres() {
    if_match_forms(Backend::Postgres);
}

/// `/readyz` is 503 `schema_not_current` while a migration is pending and 200 once applied.
fn readyz_schema_not_current(backend: Backend) {
    let env = CliEnv::new(backend);
    let s = Server::start(env.url.as_deref().unwrap(), &[]);
    call("GET", &s.url("/readyz"), None).expect(200);
    env.json(&["migrate", "revert"]);
    let r = call("GET", &s.url("/readyz"), None).expect(503);
    assert_eq!(r.json()["kind"], "schema_not_current", "{r:?}");
    assert!(r.header("Retry-After").is_some(), "{r:?}");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("taskstore migrate run")
    );
    env.json(&["migrate", "run"]);
    call("GET", &s.url("/readyz"), None).expect(200);
}

#[test]
fn readyz_schema_not_current_sqlite() {
    readyz_schema_not_current(Backend::Sqlite);
}

#[test]
fn readyz_schema_not_current_postgres() {
    readyz_schema_not_current(Backend::Postgres);
}

/// The database dropped under a running server: `/readyz` and API calls are 503 with
/// `Retry-After`, and the body does not name the database, its host or what the server said
/// (that is in the log, under the request id).
#[test]
fn database_gone_answers_503_without_its_detail_postgres() {
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;
    let env = CliEnv::new(Backend::Postgres);
    let url = env.url.clone().unwrap();
    let name = url.rsplit('/').next().unwrap().to_owned();
    let mut s = Server::start(&url, &[]);
    let ada = ("ada@example.com", "correct horse");
    sign_up(&s, ada.0, ada.1);
    let mut admin = diesel::PgConnection::establish(&common::pg_admin_url()).unwrap();
    // A test-owned name (taskstore_test_<pid>_<n>); DDL cannot take binds.
    admin
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .unwrap();
    let mut ids = Vec::new();
    for (method, path, auth) in [
        ("GET", "/readyz", None),
        ("GET", "/v1/me", Some(ada)),
        ("GET", "/v1/tasks", Some(ada)),
    ] {
        let r = call(method, &s.url(path), auth).expect(503);
        assert!(r.header("Retry-After").is_some(), "{r:?}");
        for leak in [
            name.as_str(),
            "does not exist",
            "FATAL",
            "127.0.0.1",
            "5432",
        ] {
            assert!(!r.text.contains(leak), "{path} shows {leak:?}: {}", r.text);
        }
        assert!(
            r.json()["message"].as_str().unwrap().contains("try again"),
            "{r:?}"
        );
        ids.push(r.header("X-Request-Id").unwrap().to_owned());
    }
    let (code, _, log) = s.terminate();
    assert_eq!(code, Some(0), "{log}");
    // The operator still gets the cause, under the request id.
    assert!(log.contains("does not exist"), "{log}");
    assert!(log.contains(&ids[1]), "{log}");
}
