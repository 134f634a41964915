//! The real `betterworld` binary: clear start-up failures, migrations, SIGTERM draining, redacted
//! logs on stdout, and OpenTelemetry export to a local OTLP/HTTP receiver.

mod support;

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

const BIN: &str = env!("CARGO_BIN_EXE_betterworld");
/// Generous bound for "fails within seconds" (the connect timeouts are 2 s here).
const STARTUP_FAILURE_BOUND: Duration = Duration::from_secs(20);

fn betterworld(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BW_DB_CONNECT_TIMEOUT", "2s")
        .env("BW_NATS_CONNECT_TIMEOUT", "2s")
        // The semantic classifier's start-up (model load, reference texts) has a test of its own.
        .env("BW_GUARDRAIL_CLASSIFIER", "admin-only")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs to completion (bounded) and returns (success, stderr).
async fn run_to_end(mut cmd: Command) -> (bool, String) {
    let output = tokio::time::timeout(STARTUP_FAILURE_BOUND, cmd.output())
        .await
        .expect("betterworld did not exit within the bound")
        .expect("betterworld ran");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_bad_database_url_fails_fast_with_one_line_naming_it() {
    let database = support::fresh_database().await;
    let missing_db = format!("{}_missing", database);
    let cases = [
        (
            "postgres://postgres@127.0.0.1:1/betterworld",
            "cannot connect",
        ),
        (
            "mysql://root@127.0.0.1/betterworld",
            "is not a postgres:// URL",
        ),
        (missing_db.as_str(), "does not exist"),
    ];
    for (url, expected) in cases {
        let mut cmd = betterworld(&["serve", "--http-addr", "127.0.0.1:0"]);
        cmd.env("DATABASE_URL", url)
            .env("NATS_URL", support::nats_url());
        let (success, stderr) = run_to_end(cmd).await;
        assert!(!success, "{url}: should have failed");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected for {url}: {stderr}");
        assert!(lines[0].starts_with("error: DATABASE_URL: "), "{stderr}");
        assert!(lines[0].contains(expected), "{stderr}");
    }
}

#[tokio::test]
async fn an_unreachable_nats_fails_fast_with_one_line_naming_it() {
    let database = support::migrated_database().await;
    let mut cmd = betterworld(&["serve", "--http-addr", "127.0.0.1:0"]);
    cmd.env("DATABASE_URL", &database)
        .env("NATS_URL", "nats://127.0.0.1:1");
    let (success, stderr) = run_to_end(cmd).await;
    assert!(!success);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: NATS_URL: cannot connect to nats://127.0.0.1:1"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_refuses_an_unmigrated_database_with_one_line() {
    let database = support::fresh_database().await;
    let mut cmd = betterworld(&["serve", "--http-addr", "127.0.0.1:0"]);
    cmd.env("DATABASE_URL", &database)
        .env("NATS_URL", support::nats_url());
    let (success, stderr) = run_to_end(cmd).await;
    assert!(!success);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("DATABASE_URL: the database is not migrated")
            && stderr.contains("betterworld migrate"),
        "{stderr}"
    );
}

#[tokio::test]
async fn migrate_creates_the_database_and_the_vector_extension_idempotently() {
    let database = format!("{}_created", support::fresh_database().await);
    for _ in 0..2 {
        let mut cmd = betterworld(&["migrate"]);
        cmd.env("DATABASE_URL", &database);
        let (success, stderr) = run_to_end(cmd).await;
        assert!(success, "{stderr}");
    }
    let pool = sqlx::PgPool::connect(&database)
        .await
        .expect("created database");
    let vector: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")
            .fetch_one(&pool)
            .await
            .expect("query");
    assert_eq!(vector, 1);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .expect("query");
    assert_eq!(
        applied,
        i64::try_from(bw_infra::postgres::MIGRATOR.iter().count()).expect("small")
    );
}

/// A running `betterworld` child whose stdout lines are collected.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    rx: mpsc::UnboundedReceiver<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("spawn betterworld");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().expect("lines lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
        Self { child, lines, rx }
    }

    /// Waits for the log line announcing the listener and returns its address.
    async fn listening_addr(&mut self) -> String {
        let wait = async {
            while let Some(line) = self.rx.recv().await {
                let Ok(json) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if json["message"] == "listening" {
                    return json["addr"].as_str().expect("addr field").to_owned();
                }
            }
            panic!("betterworld exited before listening");
        };
        tokio::time::timeout(STARTUP_FAILURE_BOUND, wait)
            .await
            .expect("listening in time")
    }

    /// SIGKILL: no drain, no cleanup, as when a host dies.
    async fn kill_hard(&mut self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let _ = self.child.wait().await;
    }

    fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(Duration::from_secs(35), self.child.wait())
            .await
            .expect("exited within the shutdown deadline")
            .expect("wait")
            .code()
    }

    fn output(&self) -> String {
        self.lines.lock().expect("lines lock").join("\n")
    }
}

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, HeaderMap, usize)>>>);

/// A local OTLP/HTTP receiver: records each POST to /v1/traces.
async fn otlp_receiver() -> (String, Received) {
    let received = Received::default();
    let sink = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.0
                    .lock()
                    .expect("lock")
                    .push(("/v1/traces".to_owned(), headers, body.len()));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly_with_redacted_logs_and_exported_traces() {
    let database = support::migrated_database().await;
    let (otlp, received) = otlp_receiver().await;
    let mut cmd = betterworld(&["serve"]);
    cmd.env("DATABASE_URL", &database)
        .env("NATS_URL", support::nats_url())
        .env("BW_HTTP_ADDR", "127.0.0.1:0")
        .env(
            "BW_LOG",
            "debug,hyper=info,h2=info,reqwest=info,opentelemetry=info",
        )
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)
        .env("OTEL_SERVICE_NAME", "betterworld-test");
    let mut running = Running::start(cmd);
    let addr = running.listening_addr().await;

    let http = reqwest::Client::new();
    let response = http
        .get(format!(
            "http://{addr}/readyz?password=hunter2&email=carol%40example.org"
        ))
        .header("authorization", "Bearer sk-live-from-the-process-test")
        .header("cookie", "session=process-cookie-secret")
        .header("x-request-id", "process-test-1")
        .send()
        .await
        .expect("readyz");
    assert_eq!(response.status(), reqwest::StatusCode::OK);

    running.terminate();
    assert_eq!(running.exit_code().await, Some(0), "{}", running.output());

    let output = running.output();
    let lines: Vec<Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["request_id"] == "process-test-1" && l["message"] == "request received"),
        "{output}"
    );
    assert!(lines.iter().any(|l| l["message"] == "drained"), "{output}");
    for secret in [
        "hunter2",
        "carol%40example.org",
        "sk-live-from-the-process-test",
        "process-cookie-secret",
    ] {
        assert!(
            !output.contains(secret),
            "`{secret}` reached the log:\n{output}"
        );
    }

    let posts = received.0.lock().expect("lock").clone();
    assert!(
        !posts.is_empty(),
        "no trace export reached the OTLP receiver"
    );
    let (_, headers, size) = &posts[0];
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert!(*size > 0);
    support::assert_log_verifies_blocking(&database);
}

#[tokio::test]
async fn dev_runs_gateway_relay_and_projectors_in_one_process() {
    let database = format!("{}_dev", support::fresh_database().await);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut cmd = betterworld(&["dev"]);
    cmd.env("DATABASE_URL", &database)
        .env("NATS_URL", support::nats_url())
        .env("BW_HTTP_ADDR", "127.0.0.1:0")
        .env("BW_EVENTS_STREAM", format!("BWP_{id}"))
        .env("BW_EVENTS_SUBJECT_PREFIX", format!("bwp.{id}"))
        .env(
            "BW_API_KEY_SECRET",
            "process test secret, thirty-two bytes or more",
        );
    let mut running = Running::start(cmd);
    let addr = running.listening_addr().await;
    let http = reqwest::Client::new();
    let registered = http
        .post(format!("http://{addr}/api/v1/auth/agents/register"))
        .json(&serde_json::json!({"username": "dev_process", "framework": "custom", "specializations": ["elder_care"]}))
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status(), reqwest::StatusCode::CREATED);
    let body: Value = registered.json().await.expect("json");
    let key = body["data"]["apiKey"].as_str().expect("key").to_owned();
    let reported = http
        .post(format!("http://{addr}/api/v1/problems"))
        .bearer_auth(&key)
        .json(&serde_json::json!({
            "title": "Lonely elderly residents in block C",
            "description": "Twelve residents over eighty have had no visitors for months and two missed their medication.",
            "domain": "elder_care",
            "severity": "medium"
        }))
        .send()
        .await
        .expect("report");
    assert_eq!(reported.status(), reqwest::StatusCode::ACCEPTED);
    let position = reported.headers()["bw-position"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let mine: Value = http
        .get(format!("http://{addr}/api/v1/problems?mine=true"))
        .bearer_auth(&key)
        .header("bw-min-position", position)
        .send()
        .await
        .expect("feed")
        .json()
        .await
        .expect("json");
    assert_eq!(
        mine["data"][0]["title"], "Lonely elderly residents in block C",
        "{mine}"
    );
    running.terminate();
    assert_eq!(running.exit_code().await, Some(0), "{}", running.output());
    support::assert_log_verifies_blocking(&database);
}

#[tokio::test]
async fn admin_create_makes_a_verified_admin_and_rotating_the_token_key_keeps_one_current() {
    let database = support::migrated_database().await;
    let run = |args: &[&str], password: Option<&str>| {
        let mut cmd = betterworld(args);
        cmd.env("DATABASE_URL", &database);
        if let Some(password) = password {
            cmd.env("BW_ADMIN_PASSWORD", password);
        }
        cmd.output()
    };
    let output = run(
        &[
            "admin",
            "create",
            "--email",
            "root@example.org",
            "--role",
            "admin",
        ],
        None,
    )
    .await
    .expect("ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Password (shown once): "))
        .expect("a generated password is printed once")
        .to_owned();
    assert!(
        bw_domain::values::Password::parse(&password).is_ok(),
        "meets the policy"
    );
    let output = run(
        &[
            "admin",
            "create",
            "--email",
            "audit@example.org",
            "--role",
            "auditor",
        ],
        Some("Auditor-pass-2026"),
    )
    .await
    .expect("ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("Password"),
        "a given password is not echoed"
    );
    let output = run(
        &[
            "admin",
            "create",
            "--email",
            "ROOT@example.org",
            "--role",
            "admin",
        ],
        None,
    )
    .await
    .expect("ran");
    assert!(!output.status.success(), "the address is taken");
    assert!(String::from_utf8_lossy(&output.stderr).contains("registered already"));
    let output = run(
        &[
            "admin",
            "create",
            "--email",
            "x@example.org",
            "--role",
            "human",
        ],
        None,
    )
    .await
    .expect("ran");
    assert!(!output.status.success(), "humans register themselves");

    let pool = sqlx::PgPool::connect(&database).await.expect("connect");
    let roles: Vec<(String, bool)> = sqlx::query_as(
        "SELECT role, email_verified_at IS NOT NULL FROM human_credentials ORDER BY role",
    )
    .fetch_all(&pool)
    .await
    .expect("credentials");
    assert_eq!(
        roles,
        [("admin".to_owned(), true), ("auditor".to_owned(), true)]
    );
    let verified: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'HumanEmailVerified'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(verified, 2);

    for _ in 0..2 {
        let output = run(&["admin", "rotate-token-key"], None)
            .await
            .expect("ran");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (current, retiring): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE retires_at IS NULL), count(*) FILTER (WHERE retires_at > now()) FROM jwt_signing_keys",
    )
    .fetch_one(&pool)
    .await
    .expect("keys");
    assert_eq!(
        (current, retiring),
        (1, 1),
        "one current key; the one before it in its grace period"
    );
    support::assert_log_verifies_blocking(&database);
}

#[tokio::test]
async fn guardrail_eval_reports_the_held_out_split_per_tier_class_category_and_language() {
    let mut cmd = betterworld(&["guardrail", "eval", "--limit", "6"]);
    if let Ok(dir) = std::env::var("BW_MODEL_DIR") {
        cmd.env("BW_MODEL_DIR", dir);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("in time")
        .expect("ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "train (5-fold cross-validation), Verified agent:",
        "guardrail/eval/test.jsonl, New agent: 6 items, accuracy",
        "guardrail/eval/test.jsonl, Verified agent: 6 items, accuracy",
        "precision  recall",
        "confusion (rows: label, columns: decision)",
        "harmful items by category",
        "work against a harm",
        "prompt injections",
        "per language",
        "calibration: expected calibration error",
        "acceptance (issue 16)",
    ] {
        assert!(stdout.contains(expected), "`{expected}` missing:\n{stdout}");
    }
}

#[tokio::test]
async fn seed_loads_demo_content_once_through_the_command_bus() {
    let database = support::migrated_database().await;
    let mut cmd = betterworld(&["seed"]);
    cmd.env("DATABASE_URL", &database);
    let output = tokio::time::timeout(STARTUP_FAILURE_BOUND, cmd.output())
        .await
        .expect("in time")
        .expect("ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Demo data loaded"), "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("demo_"))
            .count(),
        3,
        "{stdout}"
    );

    let pool = sqlx::PgPool::connect(&database).await.expect("connect");
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event_type, count(*) FROM events GROUP BY event_type ORDER BY event_type",
    )
    .fetch_all(&pool)
    .await
    .expect("counts");
    let counts: std::collections::BTreeMap<String, i64> = counts.into_iter().collect();
    assert_eq!(counts.get("AgentRegistered"), Some(&3));
    assert_eq!(counts.get("ProblemReported"), Some(&4));
    assert_eq!(counts.get("SolutionProposed"), Some(&2));
    assert_eq!(counts.get("DebatePosted"), Some(&2));
    assert_eq!(
        counts.get("HumanRegistered"),
        Some(&3),
        "a human, an admin, an auditor"
    );
    assert_eq!(counts.get("HumanEmailVerified"), Some(&3));

    let mut again = betterworld(&["seed", "--if-empty"]);
    again.env("DATABASE_URL", &database);
    let (success, _) = run_to_end(again).await;
    assert!(success, "--if-empty succeeds and adds nothing");
    let mut twice = betterworld(&["seed"]);
    twice.env("DATABASE_URL", &database);
    let (success, stderr) = run_to_end(twice).await;
    assert!(!success && stderr.contains("already loaded"), "{stderr}");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(
        total,
        3 + 4 + 2 + 2 + 1 + 3 * 2,
        "one status change with the first debate, two events per person, nothing more"
    );
    support::assert_log_verifies_blocking(&database);
}

#[tokio::test]
async fn after_a_sigkill_under_load_a_restarted_dev_loses_and_duplicates_nothing() {
    let database = format!("{}_crash", support::fresh_database().await);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dev = || {
        let mut cmd = betterworld(&["dev"]);
        cmd.env("DATABASE_URL", &database)
            .env("NATS_URL", support::nats_url())
            .env("BW_HTTP_ADDR", "127.0.0.1:0")
            .env("BW_EVENTS_STREAM", format!("BWP_{id}"))
            .env("BW_EVENTS_SUBJECT_PREFIX", format!("bwp.{id}"))
            .env("BW_RATE_LIMIT_SCALE", "0")
            .env(
                "BW_API_KEY_SECRET",
                "process test secret, thirty-two bytes or more",
            );
        cmd
    };
    let mut first = Running::start(dev());
    let addr = first.listening_addr().await;
    let http = reqwest::Client::new();
    let registered: Value = http
        .post(format!("http://{addr}/api/v1/auth/agents/register"))
        .json(&serde_json::json!({"username": "crash_reporter", "framework": "custom", "specializations": ["disaster_response"]}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let key = registered["data"]["apiKey"]
        .as_str()
        .expect("key")
        .to_owned();
    let problem = serde_json::json!({
        "title": "Landslide risk above the school",
        "description": "Cracks opened on the slope above the primary school after last week's rain; the path below is still in use.",
        "domain": "disaster_response",
        "severity": "critical"
    });

    // Four writers; the process is killed while they write. Only acknowledged commands count.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, i64)>::new()));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (http, key, problem, acked, url) = (
            http.clone(),
            key.clone(),
            problem.clone(),
            acked.clone(),
            format!("http://{addr}/api/v1/problems"),
        );
        writers.push(tokio::spawn(async move {
            for _ in 0..100 {
                let Ok(response) = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&problem)
                    .send()
                    .await
                else {
                    return;
                };
                if response.status() != reqwest::StatusCode::ACCEPTED {
                    return;
                }
                let position: i64 = response.headers()["bw-position"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("position");
                let Ok(body) = response.json::<Value>().await else {
                    return;
                };
                acked.lock().expect("lock").push((
                    body["data"]["problemId"].as_str().expect("id").to_owned(),
                    position,
                ));
            }
        }));
    }
    let wait_for_acks = async {
        while acked.lock().expect("lock").len() < 60 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(STARTUP_FAILURE_BOUND, wait_for_acks)
        .await
        .expect("load under way");
    first.kill_hard().await;
    for w in writers {
        w.await.expect("writer ended");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 60 && acked.len() < 400,
        "the kill landed mid-load: {}",
        acked.len()
    );

    // Restart on the same database and stream: the relay and projectors resume from their checkpoints.
    let mut second = Running::start(dev());
    let addr = second.listening_addr().await;
    let last = acked.iter().map(|a| a.1).max().expect("positions");
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("http://{addr}/api/v1/problems?mine=true&limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .bearer_auth(&key)
            .header("bw-min-position", last.to_string())
            .send()
            .await
            .expect("feed")
            .json()
            .await
            .expect("json");
        for p in page["data"]
            .as_array()
            .unwrap_or_else(|| panic!("a page: {page}"))
        {
            assert!(
                seen.insert(p["problemId"].as_str().expect("id").to_owned()),
                "a problem appears twice"
            );
        }
        match page["meta"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    for (id, _) in &acked {
        assert!(
            seen.contains(id),
            "acknowledged problem {id} is missing after the crash"
        );
    }
    let pool = sqlx::PgPool::connect(&database).await.expect("connect");
    let in_log: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ProblemReported'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert!(
        in_log as usize >= acked.len(),
        "every acknowledged command is durable"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_problems")
        .fetch_one(&pool)
        .await
        .expect("count");
    let counted: i32 = sqlx::query_scalar("SELECT problems_reported FROM rm_agents")
        .fetch_one(&pool)
        .await
        .expect("count");
    // Commands that committed but whose response was lost in the kill are in the log too: the read
    // models must hold exactly what the log holds, no more, no less.
    let last_in_log: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&pool)
        .await
        .expect("max");
    let settled: Value = http
        .get(format!("http://{addr}/api/v1/agents/me"))
        .bearer_auth(&key)
        .header("bw-min-position", last_in_log.to_string())
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(
        settled["data"]["problemsReported"].as_i64(),
        Some(in_log),
        "{settled}"
    );
    let rows_now: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_problems")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(
        rows_now, in_log,
        "feed rows = events (before settling: {rows}, directory {counted})"
    );
    second.terminate();
    assert_eq!(second.exit_code().await, Some(0), "{}", second.output());
    support::assert_log_verifies_blocking(&database);
}

#[tokio::test]
async fn ledger_verify_exits_non_zero_and_prints_each_discrepancy() {
    let database = support::migrated_database().await;
    let verify = || {
        let mut cmd = betterworld(&["ledger", "verify"]);
        cmd.env("DATABASE_URL", &database);
        cmd.output()
    };
    // The report is stdout's first line; log lines follow.
    let report_of = |stdout: &[u8]| -> serde_json::Value {
        let text = String::from_utf8_lossy(stdout);
        serde_json::from_str(text.lines().next().unwrap_or_default()).expect("a JSON report")
    };
    let output = verify().await.expect("ran");
    assert!(
        output.status.success(),
        "an empty ledger verifies: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let report = report_of(&output.stdout);
    assert_eq!(report["discrepancies"], serde_json::json!([]));

    // A balance with no entry in the log behind it.
    let pool = sqlx::PgPool::connect(&database).await.expect("connect");
    let stranger = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO rm_token_balances (human_id, balance, total_earned, total_spent, updated_at, position) VALUES ($1, 5, 5, 0, now(), 1)")
        .bind(stranger)
        .execute(&pool)
        .await
        .expect("insert");
    let output = verify().await.expect("ran");
    assert_eq!(output.status.code(), Some(1));
    let report = report_of(&output.stdout);
    let found = report["discrepancies"].as_array().expect("list");
    assert!(
        found.iter().any(|d| d["humanId"] == stranger.to_string()
            && d["problem"]
                .as_str()
                .is_some_and(|m| m.starts_with("balance: the read model says 5, the log gives 0"))),
        "{report}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("2 discrepancies"),
        "stderr says why it failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    support::assert_log_verifies_blocking(&database);
}

#[tokio::test]
async fn events_checkpoint_export_verify_and_verify_proof_work_from_the_command_line() {
    const SEED: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let database = support::migrated_database().await;
    let pool = sqlx::PgPool::connect(&database).await.expect("connect");
    let bus = bw_commands::CommandBus::new(pool.clone());
    let agent = support::fixtures::register(&bus, "cli_audited").await;
    let (problem, _) = support::fixtures::report(&bus, agent, 1)
        .await
        .expect("report");
    let events = |args: &[&str]| {
        let mut all = vec!["events"];
        all.extend_from_slice(args);
        let mut cmd = betterworld(&all);
        cmd.env("DATABASE_URL", &database)
            .env("BW_LOG_SIGNING_KEY", SEED);
        cmd.output()
    };
    let first_line = |stdout: &[u8]| -> Value {
        let text = String::from_utf8_lossy(stdout);
        serde_json::from_str(text.lines().next().unwrap_or_default()).expect("JSON")
    };

    let signed = events(&["checkpoint"]).await.expect("ran");
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    assert_eq!(first_line(&signed.stdout)["treeSize"], 2);

    let export = events(&["export"]).await.expect("ran");
    assert!(export.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("NDJSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[1]["aggregateId"],
        problem.to_string(),
        "only events on stdout"
    );

    let public_key = {
        use base64::Engine as _;
        let signer = bw_eventlog::audit::LogSigner::from_base64(SEED).expect("seed");
        base64::engine::general_purpose::STANDARD.encode(signer.public_key())
    };
    let clean = events(&["verify", "--public-key", &public_key])
        .await
        .expect("ran");
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    assert_eq!(first_line(&clean.stdout)["findings"], serde_json::json!([]));

    // A proof, as an auditor saves it from the API, checks offline; a changed one does not.
    let event_id: uuid::Uuid = serde_json::from_value(lines[1]["eventId"].clone()).expect("id");
    let bw_eventlog::audit::ProofLookup::Found(proof) = bw_eventlog::audit::proof(&pool, event_id)
        .await
        .expect("proof")
    else {
        panic!("checkpointed")
    };
    let dir = std::env::temp_dir().join(format!("bw-proof-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("proof.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&serde_json::json!({ "data": &*proof })).expect("json"),
    )
    .expect("write");
    let file_arg = file.to_string_lossy().into_owned();
    let good = events(&[
        "verify-proof",
        "--proof",
        &file_arg,
        "--public-key",
        &public_key,
    ])
    .await
    .expect("ran");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(first_line(&good.stdout)["valid"], true);
    let mut forged = (*proof).clone();
    let mut payload = forged.event.payload.to_value();
    payload["data"]["details"]["title"] = Value::String("Nothing happened here".into());
    forged.event.payload = bw_eventlog::audit::StoredJson::from_value(&payload).expect("json");
    std::fs::write(&file, serde_json::to_vec(&forged).expect("json")).expect("write");
    let bad = events(&[
        "verify-proof",
        "--proof",
        &file_arg,
        "--public-key",
        &public_key,
    ])
    .await
    .expect("ran");
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(first_line(&bad.stdout)["valid"], false);
    let _ = std::fs::remove_dir_all(&dir);

    // The stored problem event loses its title's last letter: `events verify` names it and fails.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("ALTER TABLE events DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .expect("disable");
    sqlx::query("UPDATE events SET payload = replace(payload::text, 'number 1\"', 'number \"')::jsonb WHERE aggregate_id = $1")
        .bind(problem.to_string())
        .execute(&mut *tx)
        .await
        .expect("tamper");
    sqlx::query("ALTER TABLE events ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .expect("enable");
    tx.commit().await.expect("commit");
    let tampered = events(&["verify", "--public-key", &public_key])
        .await
        .expect("ran");
    assert_eq!(tampered.status.code(), Some(1));
    let report = first_line(&tampered.stdout);
    assert_eq!(report["findings"][0]["kind"], "altered", "{report}");
    assert_eq!(
        report["findings"][0]["eventId"], lines[1]["eventId"],
        "{report}"
    );
}
