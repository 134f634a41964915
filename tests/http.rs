//! The HTTP skeleton against the real PostgreSQL and NATS: health and readiness (including a
//! dependency going away), metrics, the error envelope for every kind of bad input, request ids,
//! redaction, and graceful shutdown with a request in flight.

mod support;

use std::{sync::Arc, time::Duration};

use axum::{
    Extension, Router,
    routing::{get, post},
};
use betterworld::roles::Deps;
use bw_gateway::{AppState, Application, envelope::ApiOk, extract::AppJson, state::Limits};
use bw_infra::shutdown::Shutdown;
use reqwest::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use support::{LogCapture, field_error, proxy::Proxy};
use tokio::sync::Notify;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    title: String,
    count: u32,
}

/// Lets a test hold a request inside its handler.
#[derive(Default)]
struct Gate {
    entered: Notify,
    release: Notify,
}

/// Probe routes mounted behind the production middleware.
fn probe_routes(gate: Arc<Gate>) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/_probe/json",
            post(|AppJson(p): AppJson<Probe>| async move {
                ApiOk::new(json!({ "title": p.title, "count": p.count }))
            }),
        )
        .route(
            "/api/v1/_probe/panic",
            get(|| async { panic!("secret internal detail") as ApiOk<()> }),
        )
        .route(
            "/api/v1/_probe/hang",
            get(std::future::pending::<ApiOk<()>>),
        )
        .route(
            "/api/v1/_probe/log",
            get(|| async {
                tracing::info!(
                    password = "hunter2",
                    user_email = "alice@example.org",
                    "inside the handler"
                );
                ApiOk::new(json!({}))
            }),
        )
        .route(
            "/api/v1/_probe/slow",
            get(|Extension(gate): Extension<Arc<Gate>>| async move {
                gate.entered.notify_one();
                gate.release.notified().await;
                ApiOk::new(json!({ "finished": true }))
            }),
        )
        .layer(Extension(gate))
}

struct TestApp {
    base: String,
    http: reqwest::Client,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    gate: Arc<Gate>,
    pg_proxy: Proxy,
    nats_proxy: Proxy,
    deps: Deps,
}

impl TestApp {
    async fn spawn(limits: Limits) -> Self {
        Self::spawn_with(limits, false).await
    }

    /// With the command bus and read models behind the API routes (as `serve` runs).
    async fn spawn_serving(limits: Limits) -> Self {
        Self::spawn_with(limits, true).await
    }

    async fn spawn_with(limits: Limits, platform: bool) -> Self {
        let database = support::migrated_database().await;
        let pg_proxy = Proxy::start(support::socket_addr_of(&database, 5432).await).await;
        let nats_proxy =
            Proxy::start(support::socket_addr_of(&support::nats_url(), 4222).await).await;
        let database_via_proxy = database.replacen(
            &support::socket_addr_of(&database, 5432).await.to_string(),
            &pg_proxy.addr().to_string(),
            1,
        );
        let database_via_proxy = if database_via_proxy == database {
            // The URL named a host, not an address: rewrite the authority after the userinfo.
            let (scheme, rest) = database.split_once("://").expect("scheme");
            let (userinfo, path) = rest.split_once('@').map_or(("", rest), |(u, p)| (u, p));
            let path = &path[path.find('/').unwrap_or(path.len())..];
            let at = if userinfo.is_empty() {
                String::new()
            } else {
                format!("{userinfo}@")
            };
            format!("{scheme}://{at}{}{path}", pg_proxy.addr())
        } else {
            database_via_proxy
        };
        let common = support::common_config(
            &database_via_proxy,
            &format!("nats://{}", nats_proxy.addr()),
        );
        let deps = Deps::connect(&common, "test", limits)
            .await
            .expect("dependencies reachable");
        let deps = if platform {
            let api = betterworld::cli::ApiArgs {
                consistency_wait: Duration::from_secs(1),
                api_key_secret: None,
                heartbeat_key_id: "test".to_owned(),
                heartbeat_signing_key: None,
                heartbeat_key_file: None,
                heartbeat_previous_keys: None,
                guardrail_max_backlog: 0,
                guardrail_max_drain: std::time::Duration::ZERO,
                people: Default::default(),
                model: betterworld::cli::ModelArgs {
                    model_dir: "does-not-exist".into(),
                },
                storage: betterworld::cli::StorageArgs {
                    storage: "local".into(),
                    storage_dir: std::env::temp_dir().join("bw-http-objects"),
                    s3_endpoint: None,
                    s3_region: "us-east-1".into(),
                    s3_bucket: "unused".into(),
                    s3_access_key: None,
                    s3_secret_key: None,
                },
            };
            deps.with_platform(&api, false).await.expect("platform")
        } else {
            deps
        };
        let gate = Arc::new(Gate::default());
        let router = bw_gateway::router_with(deps.state.clone(), probe_routes(gate.clone()));
        let app = Application::bind(
            "127.0.0.1:0".parse().expect("address"),
            router,
            deps.state.clone(),
        )
        .await
        .expect("bind");
        let base = format!("http://{}", app.local_addr().expect("address"));
        let shutdown = Shutdown::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.triggered()));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        Self {
            base,
            http,
            shutdown,
            server,
            gate,
            pg_proxy,
            nats_proxy,
            deps,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        read(response).await
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body");
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, headers, json)
}

/// Asserts the error envelope, its code, and that `requestId` matches the header.
fn assert_error(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
    expected: StatusCode,
    code: &str,
) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("application/json"),
        "{headers:?}"
    );
    assert_eq!(
        body["requestId"],
        headers["x-request-id"].to_str().expect("ascii"),
        "{body}"
    );
}

#[tokio::test]
async fn liveness_answers_on_every_alias() {
    let app = TestApp::spawn(Limits::default()).await;
    for path in ["/healthz", "/health", "/api/v1/health"] {
        let (status, _, body) = app.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body["ok"], true);
        assert_eq!(body["data"]["status"], "ok");
    }
}

#[tokio::test]
async fn readiness_names_the_dependency_that_went_away_and_recovers() {
    let app = TestApp::spawn(Limits::default()).await;
    for path in ["/readyz", "/ready"] {
        let (status, _, body) = app.get(path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["checks"]["postgres"]["ok"], true, "{body}");
        assert_eq!(body["data"]["checks"]["nats"]["ok"], true, "{body}");
    }

    app.pg_proxy.sever();
    let (status, headers, body) = app.get("/readyz").await;
    assert_error(
        status,
        &headers,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
    );
    assert_eq!(
        body["error"]["details"]["failing"],
        json!(["postgres"]),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["checks"]["nats"]["ok"], true,
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("postgres"),
        "{body}"
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("bw_ready{check=\"postgres\"} 0"),
        "{metrics}"
    );

    app.pg_proxy.restore();
    let (status, _, body) = app.get("/readyz").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "PostgreSQL back, ready again: {body}"
    );

    app.nats_proxy.sever();
    let (status, headers, body) = app.get("/readyz").await;
    assert_error(
        status,
        &headers,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
    );
    assert_eq!(
        body["error"]["details"]["failing"],
        json!(["nats"]),
        "{body}"
    );
    assert_eq!(headers[header::RETRY_AFTER], "1");
    // Liveness is not readiness: the process itself is fine.
    assert_eq!(app.get("/healthz").await.0, StatusCode::OK);
    app.deps.close().await;
}

#[tokio::test]
async fn metrics_expose_http_pool_readiness_and_process_families() {
    let app = TestApp::spawn(Limits::default()).await;
    app.get("/healthz").await;
    app.get("/healthz").await;
    app.get("/readyz").await;
    app.get("/no/such/route").await;
    let response = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .contains("openmetrics-text")
    );
    let text = response.text().await.expect("text");
    for expected in [
        "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2",
        "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "# TYPE http_request_duration_seconds histogram",
        "http_request_duration_seconds_bucket{le=\"0.01\",method=\"GET\",route=\"/healthz\"} ",
        "http_request_duration_seconds_bucket{le=\"10.0\",method=\"GET\",route=\"/healthz\"} 2",
        "http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 2",
        "# TYPE http_active_connections gauge",
        "http_active_connections 1",
        "http_requests_in_flight 1",
        "db_pool_connections{state=\"idle\"} ",
        "db_pool_connections{state=\"in_use\"} ",
        "db_pool_max_connections 4",
        "bw_ready{check=\"postgres\"} 1",
        "bw_ready{check=\"nats\"} 1",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[tokio::test]
async fn every_kind_of_bad_input_gets_the_error_envelope() {
    let limits = Limits {
        body_bytes: 1024,
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let app = TestApp::spawn(limits).await;
    let url = format!("{}/api/v1/_probe/json", app.base);
    let post = |body: Vec<u8>, content_type: Option<&str>| {
        let mut request = app.http.post(&url).body(body);
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        request
    };

    let ok = read(
        post(
            br#"{"title":"t","count":1}"#.to_vec(),
            Some("application/json"),
        )
        .send()
        .await
        .expect("send"),
    )
    .await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.2);
    assert_eq!(ok.2["data"], json!({ "title": "t", "count": 1 }));

    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            post(br#"{"title": "t", "#.to_vec(), Some("application/json")),
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
        ),
        (
            "empty body",
            post(Vec::new(), Some("application/json")),
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
        ),
        (
            "trailing garbage",
            post(
                br#"{"title":"t","count":1} x"#.to_vec(),
                Some("application/json"),
            ),
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
        ),
        (
            "wrong content type",
            post(br#"{"title":"t","count":1}"#.to_vec(), Some("text/plain")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "no content type",
            post(br#"{"title":"t","count":1}"#.to_vec(), None),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "oversized body",
            post(
                format!(r#"{{"title":"{}","count":1}}"#, "x".repeat(4096)).into_bytes(),
                Some("application/json"),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "unknown field",
            post(
                br#"{"title":"t","count":1,"admin":true}"#.to_vec(),
                Some("application/json"),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
        (
            "wrong type",
            post(
                br#"{"title":"t","count":"many"}"#.to_vec(),
                Some("application/json"),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
        (
            "missing field",
            post(br#"{"count":1}"#.to_vec(), Some("application/json")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        ),
        (
            "unknown route",
            app.http.get(format!("{}/api/v1/nothing/here", app.base)),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            "wrong method",
            app.http.delete(&url),
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
        (
            "handler panic",
            app.http.get(format!("{}/api/v1/_probe/panic", app.base)),
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
        ),
        (
            "timeout",
            app.http.get(format!("{}/api/v1/_probe/hang", app.base)),
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
        ),
    ];
    for (case, request, status_expected, code) in cases {
        let (status, headers, body) = read(request.send().await.expect(case)).await;
        assert_error(status, &headers, &body, status_expected, code);
        match case {
            "unknown field" => assert!(
                field_error(&body, "admin").contains("unknown field"),
                "{body}"
            ),
            "wrong type" => assert!(
                field_error(&body, "count").contains("invalid type"),
                "{body}"
            ),
            "missing field" => assert!(
                body["error"]["details"]["fields"]["title"].is_array(),
                "{body}"
            ),
            "wrong method" => assert_eq!(headers[header::ALLOW], "POST", "{case}"),
            "handler panic" => {
                assert_eq!(body["error"]["message"], "internal error");
                assert!(
                    !body.to_string().contains("secret internal detail"),
                    "{body}"
                );
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn request_ids_are_taken_or_made_and_carried_into_every_log_line() {
    let logs = LogCapture::global();
    let app = TestApp::spawn(Limits::default()).await;

    let response = app
        .http
        .get(format!("{}/api/v1/_probe/log", app.base))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .expect("send");
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-request-id"], "client-chosen-42");
    assert_eq!(body["requestId"], "client-chosen-42");

    let (_, headers, body) = app.get("/api/v1/nothing").await;
    let made = headers["x-request-id"].to_str().expect("ascii").to_owned();
    let parsed = uuid::Uuid::parse_str(&made).expect("a UUID when the client sends none");
    assert_eq!(parsed.get_version_num(), 7);
    assert_eq!(body["requestId"], made);

    let response = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .expect("send");
    let replaced = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_ne!(replaced, "bad id with spaces");
    assert!(uuid::Uuid::parse_str(&replaced).is_ok());

    let lines = logs.lines();
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|l| l["request_id"] == "client-chosen-42")
        .collect();
    let messages: Vec<&str> = of_request
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert!(messages.contains(&"request received"), "{messages:?}");
    assert!(messages.contains(&"inside the handler"), "{messages:?}");
    assert!(messages.contains(&"request completed"), "{messages:?}");
    assert!(
        lines
            .iter()
            .any(|l| l["request_id"] == made.as_str() && l["message"] == "request completed")
    );
}

#[tokio::test]
async fn secrets_and_personal_data_never_reach_the_log() {
    let logs = LogCapture::global();
    let app = TestApp::spawn(Limits::default()).await;
    let response = app
        .http
        .get(format!(
            "{}/api/v1/_probe/log?password=hunter2&email=bob%40example.org&limit=5",
            app.base
        ))
        .header(header::AUTHORIZATION, "Bearer sk-live-abcdef123456")
        .header(header::COOKIE, "bw_session=cookie-secret-987")
        .header("x-api-key", "key-secret-555")
        .header("x-request-id", "redaction-1")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);

    let text = logs.text();
    let received = logs
        .lines()
        .into_iter()
        .find(|l| l["request_id"] == "redaction-1" && l["message"] == "request received")
        .expect("the request's headers were logged");
    let headers: Value = serde_json::from_str(received["headers"].as_str().expect("headers field"))
        .expect("JSON headers");
    assert_eq!(headers["authorization"], "[redacted]");
    assert_eq!(headers["cookie"], "[redacted]");
    assert_eq!(headers["x-api-key"], "[redacted]");
    assert_eq!(
        received["query"],
        "password=[redacted]&email=[redacted]&limit=5"
    );
    for secret in [
        "sk-live-abcdef123456",
        "cookie-secret-987",
        "key-secret-555",
        "hunter2",
        "bob%40example.org",
        "alice@example.org",
    ] {
        assert!(
            !text.contains(secret),
            "`{secret}` reached the log:\n{text}"
        );
    }
}

#[tokio::test]
async fn shutdown_drains_a_request_in_flight_then_stops_accepting() {
    let app = TestApp::spawn(Limits::default()).await;
    let url = format!("{}/api/v1/_probe/slow", app.base);
    let in_flight = tokio::spawn(app.http.get(url).send());
    app.gate.entered.notified().await;

    app.shutdown.trigger();
    // The server must not finish while the request is still inside its handler.
    tokio::task::yield_now().await;
    assert!(
        !app.server.is_finished(),
        "server stopped with a request in flight"
    );

    app.gate.release.notify_one();
    let response = in_flight
        .await
        .expect("task")
        .expect("the in-flight request completed");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"]["finished"], true);

    app.server
        .await
        .expect("server task")
        .expect("server stopped cleanly");
    let refused = reqwest::Client::new()
        .get(format!("{}/healthz", app.base))
        .send()
        .await;
    assert!(refused.is_err(), "a stopped server accepted a connection");
    app.deps.close().await;
}

#[tokio::test]
async fn commands_fail_fast_with_503_while_postgres_is_away_and_recover_by_themselves() {
    let app = TestApp::spawn_serving(Limits {
        rate_limit_scale: 0.0,
        ..Limits::default()
    })
    .await;
    let registration = json!({ "username": "outage_agent", "framework": "custom", "specializations": ["food_security"] });
    let response = app
        .http
        .post(format!("{}/api/v1/auth/agents/register", app.base))
        .json(&registration)
        .send()
        .await
        .expect("register");
    assert_eq!(response.status(), StatusCode::CREATED);
    let key = response.json::<Value>().await.expect("json")["data"]["apiKey"]
        .as_str()
        .expect("key")
        .to_owned();
    let problem = json!({
        "title": "Flooded underpass every rainy day",
        "description": "The underpass floods knee-deep whenever it rains; pupils and wheelchair users cannot cross for hours.",
        "domain": "disaster_response",
        "severity": "medium"
    });
    let post = || {
        app.http
            .post(format!("{}/api/v1/problems", app.base))
            .bearer_auth(&key)
            .json(&problem)
            .send()
    };

    app.pg_proxy.sever();
    let started = std::time::Instant::now();
    let (status, headers, body) = read(post().await.expect("answered")).await;
    assert_error(
        status,
        &headers,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
    );
    assert_eq!(headers[header::RETRY_AFTER], "1");
    // Bounded by the pool's 3 s acquire timeout in this configuration (5 s by default), never a hang.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    app.pg_proxy.restore();
    // Broken pooled connections are dropped as they fail; the service recovers without a restart.
    let mut recovered = false;
    for _ in 0..8 {
        if post().await.expect("answered").status() == StatusCode::ACCEPTED {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "commands work again once PostgreSQL is back");
    app.deps.close().await;
}
