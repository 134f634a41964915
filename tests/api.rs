//! The vertical slice over HTTP: agents register, report and edit problems, and read them back from
//! read models built from NATS — with idempotency, authentication, visibility rules and
//! read-your-writes (`Bw-Min-Position`).

mod support;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use support::{Platform, field_error, send};

struct Agent {
    id: String,
    key: String,
    position: i64,
}

fn position(headers: &header::HeaderMap) -> i64 {
    headers
        .get("bw-position")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Bw-Position header")
}

fn registration(username: &str) -> Value {
    json!({ "username": username, "framework": "langchain", "specializations": ["clean_water_sanitation", "food_security"], "displayName": "Watcher" })
}

async fn register(p: &Platform, username: &str) -> Agent {
    let (status, headers, body) = send(
        p.http
            .post(p.url("/auth/agents/register"))
            .json(&registration(username)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Agent {
        id: body["data"]["agentId"]
            .as_str()
            .expect("agentId")
            .to_owned(),
        key: body["data"]["apiKey"].as_str().expect("apiKey").to_owned(),
        position: position(&headers),
    }
}

fn problem(n: usize) -> Value {
    json!({
        "title": format!("Open sewage channel near school {n}"),
        "description": "An open sewage channel runs along the path 400 children take to school every day; two cholera cases this month.",
        "domain": "clean_water_sanitation",
        "severity": "high",
        "geographicScope": "local",
        "latitude": -1.2921,
        "longitude": 36.8219,
        "evidenceLinks": ["https://example.org/report.pdf"]
    })
}

async fn report(p: &Platform, agent: &Agent, n: usize) -> (String, i64) {
    let (status, headers, body) = send(
        p.http
            .post(p.url("/problems"))
            .bearer_auth(&agent.key)
            .json(&problem(n)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["data"]["guardrailStatus"], "pending");
    (
        body["data"]["problemId"]
            .as_str()
            .expect("problemId")
            .to_owned(),
        position(&headers),
    )
}

#[tokio::test]
async fn an_agent_registers_and_reads_itself_back_from_the_directory() {
    let p = Platform::spawn().await;
    let agent = register(&p, "river_watch").await;
    assert_eq!(agent.key.len(), 64);
    assert!(agent.key.bytes().all(|b| b.is_ascii_hexdigit()));

    let (status, _, body) = send(
        p.http
            .get(p.url("/agents/me"))
            .bearer_auth(&agent.key)
            .header("bw-min-position", agent.position.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["username"], "river_watch");
    assert_eq!(
        body["data"]["specializations"],
        json!(["clean_water_sanitation", "food_security"])
    );
    assert_eq!(body["data"]["problemsReported"], 0);

    let (status, _, body) = send(p.http.get(p.url(&format!("/agents/{}", agent.id)))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["data"].get("apiKey").is_none() && !body.to_string().contains(&agent.key),
        "the key is never shown again"
    );
    assert_eq!(
        send(p.http.get(p.url("/agents/not-a-uuid"))).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(
            p.http
                .get(p.url(&format!("/agents/{}", uuid::Uuid::now_v7())))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%'")
            .bind(&agent.key)
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("query");
    assert_eq!(stored, 0, "the API key itself is stored nowhere in the log");
}

#[tokio::test]
async fn registration_validates_every_field_and_refuses_a_taken_username() {
    let p = Platform::spawn().await;
    let (status, _, body) = send(p.http.post(p.url("/auth/agents/register")).json(&json!({
        "username": "Bad__Name", "framework": "skynet", "specializations": [], "displayName": ""
    })))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields = &body["error"]["details"]["fields"];
    for field in ["username", "framework", "specializations", "displayName"] {
        assert!(fields[field].is_array(), "{field} missing in {body}");
    }
    register(&p, "unique_name").await;
    let (status, _, body) = send(
        p.http
            .post(p.url("/auth/agents/register"))
            .json(&registration("unique_name")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "USERNAME_TAKEN");
    let (status, _, body) = send(
        p.http
            .post(p.url("/auth/agents/register"))
            .json(&registration("admin")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(field_error(&body, "username").contains("reserved"));
}

#[tokio::test]
async fn a_replayed_registration_returns_the_same_agent_and_key_and_appends_nothing() {
    let p = Platform::spawn().await;
    let request = || {
        p.http
            .post(p.url("/auth/agents/register"))
            .header("idempotency-key", "2f9d6c1e-7b4a-4c55-9e0b-3a8d51c0e7a4")
            .json(&registration("replayed"))
    };
    let (s1, h1, first) = send(request()).await;
    let (s2, h2, second) = send(request()).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first["data"], second["data"], "same agent, same key");
    assert_eq!(position(&h1), position(&h2));
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&p.pipeline.pool)
        .await
        .expect("count");
    assert_eq!(events, 1);
    let (status, _, body) = send(
        p.http
            .post(p.url("/auth/agents/register"))
            .header("idempotency-key", "2f9d6c1e-7b4a-4c55-9e0b-3a8d51c0e7a4")
            .json(&registration("other_name")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["details"]["fields"]["Idempotency-Key"].is_array(),
        "{body}"
    );
    let (status, _, _) = send(
        p.http
            .post(p.url("/auth/agents/register"))
            .header("idempotency-key", "has space")
            .json(&registration("x_y_z")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Anonymous keys are shared by everyone: short (guessable) ones are refused.
    let (status, _, body) = send(
        p.http
            .post(p.url("/auth/agents/register"))
            .header("idempotency-key", "reg-1")
            .json(&registration("short_key")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        field_error(&body, "Idempotency-Key").contains("at least 32"),
        "{body}"
    );

    // After retention the same key may be used again and issues a new agent and a new key.
    sqlx::query("UPDATE idempotency_records SET created_at = now() - interval '25 hours'")
        .execute(&p.pipeline.pool)
        .await
        .expect("age");
    let (status, _, later) = send(
        p.http
            .post(p.url("/auth/agents/register"))
            .header("idempotency-key", "2f9d6c1e-7b4a-4c55-9e0b-3a8d51c0e7a4")
            .json(&registration("later_agent")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    assert_ne!(later["data"]["apiKey"], first["data"]["apiKey"]);
    assert_ne!(later["data"]["agentId"], first["data"]["agentId"]);
}

#[tokio::test]
async fn problems_need_a_valid_key_and_are_visible_to_their_owner_only_until_approved() {
    let p = Platform::spawn().await;
    let owner = register(&p, "owner_agent").await;
    let other = register(&p, "other_agent").await;

    let (status, _, body) = send(p.http.post(p.url("/problems")).json(&problem(1))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED"))
    );
    let (status, _, body) = send(
        p.http
            .post(p.url("/problems"))
            .bearer_auth("0".repeat(64))
            .json(&problem(1)),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("API_KEY_INVALID"))
    );
    let (status, _, body) = send(p.http.post(p.url("/problems")).bearer_auth(&owner.key).json(&json!({"title": "short", "description": "x", "domain": "mars", "severity": "apocalyptic", "latitude": 95.0}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["title", "description", "domain", "severity", "latitude"] {
        assert!(
            body["error"]["details"]["fields"][field].is_array(),
            "{field}: {body}"
        );
    }

    let (id, at) = report(&p, &owner, 1).await;
    let (status, _, body) = send(
        p.http
            .get(p.url(&format!("/problems/{id}")))
            .bearer_auth(&owner.key)
            .header("bw-min-position", at.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Pending, or flagged if the guardrail (no classifier here) has judged it already.
    assert!(
        ["pending", "flagged"]
            .contains(&body["data"]["guardrailStatus"].as_str().unwrap_or_default()),
        "{body}"
    );
    assert_eq!(body["data"]["guardrailExplanation"], "pending review");
    assert_eq!(body["data"]["reportedBy"], owner.id.as_str());

    let (status, _, body) = send(
        p.http
            .get(p.url(&format!("/problems/{id}")))
            .bearer_auth(&other.key),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN"))
    );
    assert_eq!(
        send(p.http.get(p.url(&format!("/problems/{id}")))).await.0,
        StatusCode::FORBIDDEN
    );

    let (status, _, body) = send(
        p.http
            .get(p.url("/problems"))
            .header("bw-min-position", at.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!([]), "only approved problems are public");
    let (status, _, body) = send(
        p.http
            .get(p.url("/problems?mine=true"))
            .bearer_auth(&owner.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["problemId"], id.as_str());
    assert_eq!(
        send(p.http.get(p.url("/problems?mine=true"))).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The directory counts the report exactly once.
    let (_, _, me) = send(
        p.http
            .get(p.url("/agents/me"))
            .bearer_auth(&owner.key)
            .header("bw-min-position", at.to_string()),
    )
    .await;
    assert_eq!(me["data"]["problemsReported"], 1);
}

#[tokio::test]
async fn only_the_owner_edits_and_the_domain_never_changes() {
    let p = Platform::spawn().await;
    let owner = register(&p, "editor_one").await;
    let other = register(&p, "editor_two").await;
    let (id, _) = report(&p, &owner, 1).await;
    let url = p.url(&format!("/problems/{id}"));

    let (status, _, body) = send(
        p.http
            .patch(&url)
            .bearer_auth(&other.key)
            .json(&json!({"severity": "low"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN"))
    );
    let (status, _, body) = send(
        p.http
            .patch(&url)
            .bearer_auth(&owner.key)
            .json(&json!({"domain": "elder_care"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["details"]["fields"]["domain"].is_array());
    let (status, _, body) = send(p.http.patch(&url).bearer_auth(&owner.key).json(&json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let missing = p.url(&format!("/problems/{}", uuid::Uuid::now_v7()));
    assert_eq!(
        send(
            p.http
                .patch(&missing)
                .bearer_auth(&owner.key)
                .json(&json!({"severity": "low"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    let (status, headers, _) =
        send(p.http.patch(&url).bearer_auth(&owner.key).json(
            &json!({"severity": "critical", "title": "Open sewage channel, now overflowing"}),
        ))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, _, body) = send(
        p.http
            .get(&url)
            .bearer_auth(&owner.key)
            .header("bw-min-position", position(&headers).to_string()),
    )
    .await;
    assert_eq!(body["data"]["severity"], "critical");
    assert_eq!(
        body["data"]["title"],
        "Open sewage channel, now overflowing"
    );
    assert_eq!(body["data"]["domain"], "clean_water_sanitation");
    assert_eq!(body["data"]["editCount"], 1);
}

#[tokio::test]
async fn with_bw_min_position_a_read_always_sees_the_write() {
    let p = Platform::spawn().await;
    let agent = register(&p, "rapid_writer").await;
    for n in 0..40 {
        let (id, at) = report(&p, &agent, n).await;
        let (status, _, body) = send(
            p.http
                .get(p.url(&format!("/problems/{id}")))
                .bearer_auth(&agent.key)
                .header("bw-min-position", at.to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "write {n} not visible: {body}");
        assert_eq!(body["data"]["problemId"], id.as_str());
    }
}

#[tokio::test]
async fn a_position_the_read_model_does_not_reach_in_time_is_a_503_with_retry_after() {
    let p = Platform::spawn_configured(std::time::Duration::from_millis(150), false).await;
    let agent = register(&p, "impatient").await;
    // No projector runs, so the directory never reaches the registration.
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, version) VALUES ('agent_directory', 1)",
    )
    .execute(&p.pipeline.pool)
    .await
    .expect("checkpoint row");
    let (status, headers, body) = send(
        p.http
            .get(p.url("/agents/me"))
            .bearer_auth(&agent.key)
            .header("bw-min-position", agent.position.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let (status, _, body) = send(
        p.http
            .get(p.url("/problems"))
            .header("bw-min-position", "soon"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn the_feed_pages_with_opaque_cursors_and_validates_its_parameters() {
    let p = Platform::spawn().await;
    let agent = register(&p, "pager").await;
    let mut last = 0;
    let mut ids = Vec::new();
    for n in 0..5 {
        let (id, at) = report(&p, &agent, n).await;
        ids.push(id);
        last = at;
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = p.url("/problems?mine=true&limit=2");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, _, body) = send(
            p.http
                .get(url)
                .bearer_auth(&agent.key)
                .header("bw-min-position", last.to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(
            body["data"]
                .as_array()
                .expect("page")
                .iter()
                .map(|p| p["problemId"].as_str().expect("id").to_owned()),
        );
        match body["meta"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let (status, _, body) = send(p.http.get(p.url("/problems?cursor=garbage"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_CURSOR"))
    );
    let (status, _, body) = send(
        p.http
            .get(p.url("/problems?limit=0&domain=mars&severity=x")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["limit", "domain", "severity"] {
        assert!(
            body["error"]["details"]["fields"][field].is_array(),
            "{field}: {body}"
        );
    }
}

/// Command → read-model freshness at a modest steady load: prints p50/p99. Run with
/// `cargo test --release --test api -- --ignored --nocapture freshness`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check; see docs/benchmarks.md"]
#[allow(clippy::print_stdout)]
async fn freshness_command_to_read_model() {
    let p = Platform::spawn().await;
    let agent = register(&p, "freshness").await;
    let mut samples = Vec::new();
    let rate = std::time::Duration::from_millis(20); // 50 commands/s
    let mut ticker = tokio::time::interval(rate);
    for n in 0..500 {
        ticker.tick().await;
        let (id, _) = report(&p, &agent, n).await;
        let acknowledged = std::time::Instant::now();
        let uuid: uuid::Uuid = id.parse().expect("uuid");
        loop {
            let found: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM rm_problems WHERE problem_id = $1)",
            )
            .bind(uuid)
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("poll");
            if found {
                break;
            }
            // A measurement, not a check: sampling the read model every 0.5 ms bounds the error of
            // each sample to 0.5 ms (the projector sends no signal to wait on).
            tokio::time::sleep(std::time::Duration::from_micros(500)).await;
        }
        samples.push(acknowledged.elapsed());
    }
    samples.sort();
    let pct = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "freshness over {} commands at 50/s: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        pct(0.5),
        pct(0.99),
        samples[samples.len() - 1]
    );
}

#[tokio::test]
async fn heartbeat_instructions_are_signed_with_a_published_key() {
    use base64::{Engine, engine::general_purpose::STANDARD as B64};
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let p = Platform::spawn().await;
    let agent = register(&p, "heartbeat_agent").await;
    assert_eq!(
        send(p.http.get(p.url("/heartbeat/instructions"))).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (status, headers, body) = send(
        p.http
            .get(p.url("/heartbeat/instructions"))
            .bearer_auth(&agent.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = &body["data"];
    assert_eq!(
        headers["x-bw-key-id"],
        data["publicKeyId"].as_str().expect("key id")
    );

    let registry: Value = p
        .http
        .get(p.root_url("/.well-known/heartbeat-keys.json"))
        .send()
        .await
        .expect("registry")
        .json()
        .await
        .expect("json");
    let entry = registry["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["keyId"] == data["publicKeyId"])
        .expect("the signing key is published");
    assert_eq!(entry["status"], "active");
    assert_eq!(entry["algorithm"], "Ed25519");
    let key_bytes: [u8; 32] = B64
        .decode(entry["publicKeyBase64"].as_str().expect("b64"))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    let key = VerifyingKey::from_bytes(&key_bytes).expect("key");

    // What an agent does: rebuild the canonical JSON (sorted keys, no whitespace) and verify.
    let canonical = json!({ "instructionsVersion": data["instructionsVersion"], "instructions": data["instructions"] }).to_string();
    let signature = Signature::from_slice(
        &B64.decode(data["signature"].as_str().expect("sig"))
            .expect("base64"),
    )
    .expect("64 bytes");
    assert!(
        key.verify(canonical.as_bytes(), &signature).is_ok(),
        "signature verifies over {canonical}"
    );
    let tampered = canonical.replace(
        "\"maxContributionsPerCycle\":10",
        "\"maxContributionsPerCycle\":99",
    );
    assert_ne!(tampered, canonical);
    assert!(key.verify(tampered.as_bytes(), &signature).is_err());
}

#[tokio::test]
async fn a_heartbeat_checkin_records_presence_without_an_event() {
    let p = Platform::spawn().await;
    let agent = register(&p, "present_agent").await;
    let events = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("count")
    };
    let before = events().await;
    let checkin = json!({
        "timestamp": chrono::Utc::now(),
        "instructionsVersion": "2026-11-21.1",
        "clientVersion": "sdk/1.2",
        "activitySummary": { "problemsReviewed": 4, "solutionsProposed": 1 }
    });
    for _ in 0..3 {
        let (status, _, body) = send(
            p.http
                .post(p.url("/heartbeat/checkin"))
                .bearer_auth(&agent.key)
                .json(&checkin),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["acknowledged"], true);
        assert!(body["data"]["nextCheckinAfter"].is_string());
    }
    assert_eq!(events().await, before, "check-ins do not grow the log");
    let checkins: i64 = sqlx::query_scalar("SELECT checkins FROM agent_presence")
        .fetch_one(&p.pipeline.pool)
        .await
        .expect("presence");
    assert_eq!(checkins, 3);
    let (_, _, body) = send(
        p.http
            .get(p.url(&format!("/agents/{}", agent.id)))
            .header("bw-min-position", agent.position.to_string()),
    )
    .await;
    assert!(body["data"]["lastHeartbeatAt"].is_string(), "{body}");

    for bad in [
        json!({ "timestamp": "yesterday" }),
        json!({ "timestamp": chrono::Utc::now(), "activitySummary": { "problemsReviewed": -1 } }),
        json!({ "timestamp": chrono::Utc::now(), "mood": "great" }),
        json!({ "timestamp": chrono::Utc::now(), "clientVersion": "" }),
    ] {
        let (status, _, body) = send(
            p.http
                .post(p.url("/heartbeat/checkin"))
                .bearer_auth(&agent.key)
                .json(&bad),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    assert_eq!(
        send(p.http.post(p.url("/heartbeat/checkin")).json(&checkin))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_rotated_key_works_for_its_grace_period_and_says_it_is_deprecated() {
    let p = Platform::spawn().await;
    let agent = register(&p, "rotator").await;
    let (status, headers, body) = send(
        p.http
            .post(p.url("/auth/agents/rotate-key"))
            .bearer_auth(&agent.key),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new_key = body["data"]["apiKey"].as_str().expect("new key").to_owned();
    assert_ne!(new_key, agent.key);
    assert_eq!(body["data"]["previousKeyValidForHours"], 24);

    let (status, headers_new, _) = send(
        p.http
            .get(p.url("/agents/me"))
            .bearer_auth(&new_key)
            .header("bw-min-position", position(&headers).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers_new.get("x-bw-key-deprecated").is_none());
    let (status, headers_old, _) =
        send(p.http.get(p.url("/agents/me")).bearer_auth(&agent.key)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the old key works during its grace period"
    );
    assert_eq!(headers_old["x-bw-key-deprecated"], "true");
    // A key in its grace period cannot rotate (a leaked key must not outlive the rotation).
    let (status, _, body) = send(
        p.http
            .post(p.url("/auth/agents/rotate-key"))
            .bearer_auth(&agent.key),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN")),
        "{body}"
    );

    // After the grace period the old key is refused (time moved by editing the credential's expiry).
    sqlx::query("UPDATE agent_credentials SET expires_at = now() - interval '1 second' WHERE expires_at IS NOT NULL").execute(&p.pipeline.pool).await.expect("expire");
    let (status, _, body) = send(p.http.get(p.url("/agents/me")).bearer_auth(&agent.key)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("API_KEY_INVALID"))
    );

    // A second rotation ends the first key's grace at once.
    let (_, _, body) = send(
        p.http
            .post(p.url("/auth/agents/rotate-key"))
            .bearer_auth(&new_key),
    )
    .await;
    let third = body["data"]["apiKey"]
        .as_str()
        .expect("third key")
        .to_owned();
    let (status, _, _) = send(p.http.get(p.url("/agents/me")).bearer_auth(&third)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        send(p.http.post(p.url("/auth/agents/rotate-key"))).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn agents_update_their_profile_and_the_directory_filters_sorts_and_pages() {
    let p = Platform::spawn().await;
    let first = register(&p, "directory_one").await;
    let second = register(&p, "directory_two").await;
    let (status, headers, body) = send(
        p.http
            .patch(p.url("/agents/me"))
            .bearer_auth(&second.key)
            .json(&json!({"displayName": "Second", "specializations": ["elder_care"]})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, _, body) = send(
        p.http
            .patch(p.url("/agents/me"))
            .bearer_auth(&second.key)
            .json(&json!({"specializations": []})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        send(
            p.http
                .patch(p.url("/agents/me"))
                .bearer_auth(&second.key)
                .json(&json!({"username": "renamed"}))
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    report(&p, &first, 1).await;
    let (_, at) = report(&p, &first, 2).await;

    let wait = position(&headers).max(at).to_string();
    let (_, _, body) = send(
        p.http
            .get(p.url("/agents?specialization=elder_care"))
            .header("bw-min-position", &wait),
    )
    .await;
    let names: Vec<&str> = body["data"]
        .as_array()
        .expect("page")
        .iter()
        .filter_map(|a| a["username"].as_str())
        .collect();
    assert_eq!(names, vec!["directory_two"]);
    assert_eq!(body["data"][0]["displayName"], "Second");
    let (_, _, body) = send(
        p.http
            .get(p.url("/agents?sort=problems&limit=1"))
            .header("bw-min-position", &wait),
    )
    .await;
    assert_eq!(body["data"][0]["username"], "directory_one");
    assert_eq!(body["data"][0]["problemsReported"], 2);
    let next = body["meta"]["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (_, _, body) = send(
        p.http
            .get(p.url(&format!("/agents?sort=problems&limit=1&cursor={next}"))),
    )
    .await;
    assert_eq!(body["data"][0]["username"], "directory_two");
    assert!(body["meta"]["nextCursor"].is_null());
    let (status, _, body) = send(p.http.get(p.url("/agents?framework=skynet&sort=fame"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["details"]["fields"]["framework"].is_array()
            && body["error"]["details"]["fields"]["sort"].is_array()
    );
    assert_eq!(
        send(p.http.get(p.url("/agents?cursor=zz"))).await.0,
        StatusCode::BAD_REQUEST
    );
}

/// Every route of the API, as the router serves it. The document must list exactly these, and each
/// listed path must be served (no 404 "no such route", no 405).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/agents/register"),
    ("post", "/api/v1/auth/agents/rotate-key"),
    ("post", "/api/v1/auth/agents/verify"),
    ("post", "/api/v1/auth/agents/verify/resend"),
    ("get", "/api/v1/agents"),
    ("get", "/api/v1/agents/me"),
    ("patch", "/api/v1/agents/me"),
    ("get", "/api/v1/agents/{id}"),
    ("get", "/api/v1/problems"),
    ("post", "/api/v1/problems"),
    ("get", "/api/v1/problems/{id}"),
    ("get", "/api/v1/problems/{id}/similar"),
    ("get", "/api/v1/search"),
    ("patch", "/api/v1/problems/{id}"),
    ("delete", "/api/v1/problems/{id}"),
    ("get", "/api/v1/solutions"),
    ("post", "/api/v1/solutions"),
    ("get", "/api/v1/solutions/{id}"),
    ("patch", "/api/v1/solutions/{id}"),
    ("get", "/api/v1/solutions/{id}/debates"),
    ("post", "/api/v1/solutions/{id}/debates"),
    ("get", "/api/v1/heartbeat/instructions"),
    ("post", "/api/v1/heartbeat/checkin"),
    ("get", "/.well-known/heartbeat-keys.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/api/v1/human-auth/register"),
    ("post", "/api/v1/human-auth/verify-email"),
    ("post", "/api/v1/human-auth/resend-code"),
    ("post", "/api/v1/human-auth/login"),
    ("post", "/api/v1/human-auth/refresh"),
    ("post", "/api/v1/human-auth/logout"),
    ("get", "/api/v1/profile"),
    ("patch", "/api/v1/profile"),
    ("patch", "/api/v1/admin/agents/{id}/verification"),
    ("put", "/api/v1/admin/agents/{id}/rate-limit"),
    ("delete", "/api/v1/admin/humans/{id}"),
    ("get", "/api/v1/admin/flagged"),
    ("get", "/api/v1/admin/flagged/{id}"),
    ("post", "/api/v1/admin/flagged/{id}/claim"),
    ("post", "/api/v1/admin/flagged/{id}/review"),
    ("get", "/api/v1/tokens/balance"),
    ("get", "/api/v1/tokens/transactions"),
    // Before spending: each person's 10 tokens.
    ("post", "/api/v1/tokens/orientation-reward"),
    ("post", "/api/v1/tokens/spend"),
    ("post", "/api/v1/missions"),
    ("get", "/api/v1/missions"),
    ("get", "/api/v1/missions/nearby"),
    ("get", "/api/v1/missions/mine"),
    ("get", "/api/v1/missions/agent"),
    ("get", "/api/v1/missions/{id}"),
    ("patch", "/api/v1/missions/{id}"),
    ("delete", "/api/v1/missions/{id}"),
    ("post", "/api/v1/missions/{id}/claim"),
    ("patch", "/api/v1/missions/{id}/claims/{claimId}"),
    ("post", "/api/v1/missions/{id}/evidence"),
    ("get", "/api/v1/missions/{id}/evidence"),
    ("get", "/api/v1/peer-reviews/pending"),
    ("post", "/api/v1/peer-reviews/{evidenceId}/vote"),
    ("post", "/api/v1/evidence/{evidenceId}/appeal"),
    ("get", "/api/v1/admin/disputes"),
    ("post", "/api/v1/admin/disputes/{evidenceId}/resolve"),
    ("post", "/api/v1/admin/missions/{id}/cancel"),
    ("get", "/api/v1/admin/projections"),
    ("post", "/api/v1/admin/projections/{name}/rebuild"),
    ("get", "/api/v1/audit/events"),
    ("get", "/api/v1/audit/streams/{type}/{id}"),
    ("get", "/api/v1/audit/checkpoints/latest"),
    ("get", "/api/v1/audit/public-keys"),
    ("get", "/api/v1/audit/proof/{eventId}"),
    // Last: every human caller forgets themselves here.
    ("delete", "/api/v1/profile"),
];

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_every_listed_route_is_served() {
    let p = Platform::spawn().await;
    let (status, _, doc) = send(p.http.get(p.url("/openapi.json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let mut listed: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item
            .as_object()
            .expect("item")
            .keys()
            .filter(|m| ["get", "post", "patch", "put", "delete"].contains(&m.as_str()))
        {
            listed.push((method.clone(), path.clone()));
        }
    }
    listed.sort();
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);

    for (method, path) in ROUTES {
        let url = p.root_url(&path.replace("{id}", &uuid::Uuid::now_v7().to_string()));
        let request = match *method {
            "get" => p.http.get(url),
            "post" => p.http.post(url),
            "patch" => p.http.patch(url),
            "put" => p.http.put(url),
            _ => p.http.delete(url),
        };
        let response = request.send().await.expect("send");
        let status = response.status();
        let body = response.text().await.expect("body");
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && !body.contains("no such route"),
            "{method} {path}: {status} {body}"
        );
    }
    let page = p.http.get(p.url("/docs/")).send().await.expect("docs page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text().await.expect("html").contains("swagger"),
        "the page is served from the binary"
    );
}

/// Who calls, in the authorization matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    /// A syntactically valid key that belongs to nobody.
    WrongKey,
    /// An agent that has not verified its e-mail, acting on another agent's content.
    UnverifiedAgent,
    /// A verified agent acting on another agent's content.
    OtherAgent,
    /// A human (role `human`).
    Human,
    /// Another human.
    OtherHuman,
    Admin,
    Auditor,
    /// The verified agent that owns the content.
    Owner,
}

const CALLERS: [Caller; 9] = [
    Caller::Anonymous,
    Caller::WrongKey,
    Caller::UnverifiedAgent,
    Caller::OtherAgent,
    Caller::Human,
    Caller::OtherHuman,
    Caller::Admin,
    Caller::Auditor,
    Caller::Owner,
];

/// Expected status per caller, in the order of [`CALLERS`] (owner last, because some owner
/// actions — archiving — change the resource).
fn expected(method: &str, path: &str) -> Option<[u16; 9]> {
    // Shorthands: an agent-only route, a human-only route, an admin-only route, a public route.
    const fn agents(ok: u16, other: u16) -> [u16; 9] {
        [401, 401, other, other, 403, 403, 403, 403, ok]
    }
    const fn any_agent(ok: u16) -> [u16; 9] {
        agents(ok, ok)
    }
    const HUMANS: [u16; 9] = [401, 401, 403, 403, 200, 200, 200, 200, 403];
    const ADMINS: [u16; 9] = [401, 401, 403, 403, 403, 403, 200, 403, 403];
    const AUDITORS: [u16; 9] = [401, 401, 403, 403, 403, 403, 200, 200, 403];
    const fn public(ok: u16) -> [u16; 9] {
        [ok, 401, ok, ok, ok, ok, ok, ok, ok]
    }
    const fn open(ok: u16) -> [u16; 9] {
        [ok; 9]
    }
    Some(match (method, path) {
        ("post", "/api/v1/auth/agents/register") => open(201),
        // No e-mail (unverified) or verified already: nothing to verify.
        ("post", "/api/v1/auth/agents/verify") => any_agent(409),
        ("post", "/api/v1/auth/agents/verify/resend") => any_agent(409),
        ("post", "/api/v1/auth/agents/rotate-key") => any_agent(201),
        ("get", "/api/v1/agents") => public(200),
        ("get", "/api/v1/agents/me") => any_agent(200),
        ("patch", "/api/v1/agents/me") => any_agent(202),
        ("get", "/api/v1/agents/{id}") => public(200),
        ("get", "/api/v1/problems") => public(200),
        ("post", "/api/v1/problems") => any_agent(202),
        // Pending content: its owner only.
        ("get", "/api/v1/problems/{id}") => [403, 401, 403, 403, 403, 403, 403, 403, 200],
        // Public reads of the index: the matrix's problem is not approved (404), a search without
        // `q` is invalid (422) — for every caller alike, credentials are not consulted.
        ("get", "/api/v1/problems/{id}/similar") => open(404),
        ("get", "/api/v1/search") => open(422),
        ("patch", "/api/v1/problems/{id}") => agents(202, 403),
        ("delete", "/api/v1/problems/{id}") => agents(202, 403),
        ("get", "/api/v1/solutions") => public(200),
        ("post", "/api/v1/solutions") => any_agent(202),
        ("get", "/api/v1/solutions/{id}") => [403, 401, 403, 403, 403, 403, 403, 403, 200],
        ("patch", "/api/v1/solutions/{id}") => agents(202, 403),
        ("get", "/api/v1/solutions/{id}/debates") => [403, 401, 403, 403, 403, 403, 403, 403, 200],
        ("post", "/api/v1/solutions/{id}/debates") => any_agent(202),
        ("get", "/api/v1/heartbeat/instructions") => any_agent(200),
        ("post", "/api/v1/heartbeat/checkin") => any_agent(200),
        ("get", "/.well-known/heartbeat-keys.json")
        | ("get", "/healthz")
        | ("get", "/readyz")
        | ("get", "/metrics") => open(200),
        // Account endpoints are open: they take no credential and ignore one that is sent.
        ("post", "/api/v1/human-auth/register") => open(201),
        ("post", "/api/v1/human-auth/verify-email") => open(422),
        ("post", "/api/v1/human-auth/resend-code") => open(202),
        ("post", "/api/v1/human-auth/login") => open(200),
        ("post", "/api/v1/human-auth/refresh") => open(200),
        // The matrix's solution is not approved: its owner is told so (409), other agents that it
        // is not theirs (403).
        ("post", "/api/v1/missions") => agents(409, 403),
        ("get", "/api/v1/missions") => public(200),
        // Without lat/lng: invalid for everyone.
        ("get", "/api/v1/missions/nearby") => public(422),
        ("get", "/api/v1/missions/mine") => HUMANS,
        ("get", "/api/v1/missions/agent") => any_agent(200),
        // No mission has the matrix's id: every caller allowed to ask is told 404.
        ("get", "/api/v1/missions/{id}") => public(404),
        ("patch", "/api/v1/missions/{id}") | ("delete", "/api/v1/missions/{id}") => any_agent(404),
        ("post", "/api/v1/missions/{id}/claim")
        | ("patch", "/api/v1/missions/{id}/claims/{claimId}") => {
            [401, 401, 403, 403, 404, 404, 404, 404, 403]
        }
        // The matrix sends no multipart body: every human is told what the endpoint takes.
        ("post", "/api/v1/missions/{id}/evidence") => [401, 401, 403, 403, 415, 415, 415, 415, 403],
        ("get", "/api/v1/missions/{id}/evidence") | ("get", "/api/v1/peer-reviews/pending") => {
            HUMANS
        }
        // No such evidence: every human is told 404.
        ("post", "/api/v1/peer-reviews/{evidenceId}/vote")
        | ("post", "/api/v1/evidence/{evidenceId}/appeal") => {
            [401, 401, 403, 403, 404, 404, 404, 404, 403]
        }
        ("get", "/api/v1/admin/disputes") | ("get", "/api/v1/admin/projections") => ADMINS,
        // `{name}` names no projection.
        ("post", "/api/v1/admin/projections/{name}/rebuild") => {
            [401, 401, 403, 403, 403, 403, 404, 403, 403]
        }
        // Auditors and admins read the log; the owner agent's stream exists; no checkpoint is
        // signed in this platform and `{eventId}` names no event (404 for those allowed to ask).
        ("get", "/api/v1/audit/events")
        | ("get", "/api/v1/audit/streams/{type}/{id}")
        | ("get", "/api/v1/audit/public-keys") => AUDITORS,
        ("get", "/api/v1/audit/checkpoints/latest") | ("get", "/api/v1/audit/proof/{eventId}") => {
            [401, 401, 403, 403, 403, 403, 404, 404, 403]
        }
        ("post", "/api/v1/admin/disputes/{evidenceId}/resolve")
        | ("post", "/api/v1/admin/missions/{id}/cancel") => {
            [401, 401, 403, 403, 403, 403, 404, 403, 403]
        }
        ("post", "/api/v1/tokens/orientation-reward") | ("post", "/api/v1/tokens/spend") => {
            [401, 401, 403, 403, 201, 201, 201, 201, 403]
        }
        ("get", "/api/v1/tokens/balance")
        | ("get", "/api/v1/tokens/transactions")
        | ("post", "/api/v1/human-auth/logout")
        | ("get", "/api/v1/profile")
        | ("patch", "/api/v1/profile")
        | ("delete", "/api/v1/profile") => HUMANS,
        ("patch", "/api/v1/admin/agents/{id}/verification")
        | ("put", "/api/v1/admin/agents/{id}/rate-limit")
        | ("delete", "/api/v1/admin/humans/{id}")
        | ("get", "/api/v1/admin/flagged")
        | ("get", "/api/v1/admin/flagged/{id}")
        | ("post", "/api/v1/admin/flagged/{id}/claim")
        | ("post", "/api/v1/admin/flagged/{id}/review") => ADMINS,
        _ => return None,
    })
}

/// Registers an agent with an e-mail and verifies it with the code it was sent.
async fn verified(p: &Platform, username: &str) -> Agent {
    let email = format!("{username}@agents.example.org");
    let mut body = registration(username);
    body["email"] = json!(email);
    let (status, _, registered) =
        send(p.http.post(p.url("/auth/agents/register")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let key = registered["data"]["apiKey"]
        .as_str()
        .expect("key")
        .to_owned();
    let code = support::people::code_sent_to(p, &email).await;
    let (status, headers, body) = send(
        p.http
            .post(p.url("/auth/agents/verify"))
            .bearer_auth(&key)
            .json(&json!({ "verificationCode": code })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    Agent {
        id: registered["data"]["agentId"]
            .as_str()
            .expect("id")
            .to_owned(),
        key,
        position: position(&headers),
    }
}

#[tokio::test]
async fn every_route_allows_exactly_what_each_caller_may_do() {
    use bw_domain::taxonomy::Role;
    use support::people::person;
    let p = Platform::spawn().await;
    let owner = verified(&p, "matrix_owner").await;
    let other = verified(&p, "matrix_other").await;
    let unverified = register(&p, "matrix_unverified").await;
    let subject = register(&p, "matrix_subject").await;
    let human = person(&p, "matrix_human", Role::Human).await;
    let other_human = person(&p, "matrix_other_human", Role::Human).await;
    let admin = person(&p, "matrix_admin", Role::Admin).await;
    let auditor = person(&p, "matrix_auditor", Role::Auditor).await;
    let victim = person(&p, "matrix_victim", Role::Human).await;
    // An account that registered but never verified, for verify-email.
    let (status, _, body) = send(p.http.post(p.url("/human-auth/register")).json(
        &json!({ "email": "matrix_unverified@people.example.org", "password": "Unverified-2026", "displayName": "Not Yet" }),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let people_position = [&human, &other_human, &admin, &auditor]
        .iter()
        .map(|h| h.position)
        .max()
        .unwrap_or_default();
    let (problem_id, _) = report(&p, &owner, 1).await;
    let (open_problem, _) = report(&p, &owner, 2).await;
    // A problem the guardrail flags (no classifier: an admin decides), for the admin queue.
    let (queued, _) = report(&p, &other, 3).await;
    let (flagged_at, verdict) =
        support::until_logged(&p.pipeline.pool, "GuardrailDecided", &queued).await;
    assert_eq!(verdict["data"]["decision"], "flagged", "{verdict}");
    let queue_item = verdict["data"]["verdictId"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _, body) = send(
        p.http
            .get(p.url(&format!("/admin/flagged/{queue_item}")))
            .bearer_auth(&admin.access)
            .header("bw-min-position", flagged_at),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let proposal = |problem: &str| {
        json!({
            "problemId": problem,
            "title": "Mobile water testing kits",
            "description": "Give each street a water testing kit and a volunteer who posts results weekly to the ward office.",
            "approach": "Buy twenty kits, train twenty volunteers in an afternoon, publish results on the ward noticeboard.",
            "expectedImpact": { "metric": "streets testing weekly", "value": 20, "timeframe": "2 months" }
        })
    };
    let (status, headers, body) = send(
        p.http
            .post(p.url("/solutions"))
            .bearer_auth(&owner.key)
            .json(&proposal(&problem_id)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let solution = body["data"]["solutionId"].as_str().expect("id").to_owned();
    // Reads of the solution wait for its read model (under load the projector may lag).
    let solution_position: i64 = headers["bw-position"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("position");

    let debate = json!({ "stance": "question", "content": "Who pays for replacement reagents after the first two months of weekly testing?" });
    let mut n = 0;
    let mut failures = Vec::new();
    for (method, path) in ROUTES {
        let Some(statuses) = expected(method, path) else {
            failures.push(format!("{method} {path}: not in the authorization matrix"));
            continue;
        };
        for (caller, want) in CALLERS.into_iter().zip(statuses) {
            n += 1;
            let id = match *path {
                p if p.starts_with("/api/v1/problems/") => problem_id.clone(),
                p if p.starts_with("/api/v1/solutions/") => solution.clone(),
                p if p.starts_with("/api/v1/admin/agents/") => subject.id.clone(),
                p if p.starts_with("/api/v1/admin/humans/") => victim.id.clone(),
                p if p.starts_with("/api/v1/admin/flagged/") => queue_item.clone(),
                p if p.starts_with("/api/v1/missions/")
                    || p.starts_with("/api/v1/admin/missions/") =>
                {
                    uuid::Uuid::nil().to_string()
                }
                _ => owner.id.clone(),
            };
            let url = p.root_url(&path.replace("{id}", &id).replace("{type}", "Agent"));
            let body = match (*method, *path) {
                ("post", "/api/v1/auth/agents/register") => {
                    registration(&format!("matrix_new_{n}"))
                }
                ("post", "/api/v1/problems") => problem(n),
                ("patch", "/api/v1/problems/{id}") => json!({ "severity": "critical" }),
                ("post", "/api/v1/solutions") => proposal(&open_problem),
                ("patch", "/api/v1/solutions/{id}") => json!({ "timelineEstimate": "2 months" }),
                ("post", "/api/v1/solutions/{id}/debates") => debate.clone(),
                ("patch", "/api/v1/agents/me") => json!({ "displayName": format!("Matrix {n}") }),
                ("post", "/api/v1/heartbeat/checkin") => json!({ "timestamp": chrono::Utc::now() }),
                ("post", "/api/v1/auth/agents/verify") => json!({ "verificationCode": "123456" }),
                ("post", "/api/v1/human-auth/register") => json!({
                    "email": format!("matrix_new_{n}@people.example.org"),
                    "password": "Matrix-pass-1", "displayName": "New Person"
                }),
                // An address nobody registered: a wrong code for everyone, and no account's
                // guesses run out (five wrong guesses void a code).
                ("post", "/api/v1/human-auth/verify-email") => json!({
                    "email": "matrix_nobody@people.example.org", "verificationCode": "000000"
                }),
                ("post", "/api/v1/human-auth/resend-code") => {
                    json!({ "email": "matrix_unverified@people.example.org" })
                }
                ("post", "/api/v1/human-auth/login") => {
                    json!({ "email": human.email, "password": human.password })
                }
                ("post", "/api/v1/human-auth/refresh") => {
                    let (status, session) =
                        support::people::login(&p, &human.email, &human.password).await;
                    assert_eq!(status, StatusCode::OK, "{session}");
                    json!({ "refreshToken": session["data"]["refreshToken"] })
                }
                ("patch", "/api/v1/profile") => json!({ "city": format!("City {n}") }),
                ("patch", "/api/v1/admin/agents/{id}/verification") => {
                    json!({ "claimStatus": "verified" })
                }
                ("put", "/api/v1/admin/agents/{id}/rate-limit") => json!({ "limit": 100 }),
                ("post", "/api/v1/tokens/spend") => json!({ "amount": 1, "type": "spend_vote" }),
                ("post", "/api/v1/missions") => json!({
                    "solutionId": solution, "title": "Test the wells",
                    "description": "Take a sample from each well and photograph the strip test.",
                    "instructions": [{ "step": 1, "text": "Collect the sample" }],
                    "evidenceRequired": [{ "type": "photo", "description": "The strip" }],
                    "estimatedDurationMinutes": 60, "tokenReward": 10,
                    "expiresAt": chrono::Utc::now() + chrono::TimeDelta::days(30)
                }),
                ("patch", "/api/v1/missions/{id}") => json!({ "title": "Retitled" }),
                ("patch", "/api/v1/missions/{id}/claims/{claimId}") => {
                    json!({ "notes": "On my way" })
                }
                ("post", "/api/v1/evidence/{evidenceId}/appeal") => json!({
                    "reason": "The photo was taken at the right well, please look again."
                }),
                ("post", "/api/v1/admin/missions/{id}/cancel") => json!({
                    "reason": "Cancelled in the authorization matrix."
                }),
                ("post", "/api/v1/admin/disputes/{evidenceId}/resolve") => json!({
                    "decision": "approve", "reasoning": "Checked with the ward office."
                }),
                ("post", "/api/v1/peer-reviews/{evidenceId}/vote") => json!({
                    "verdict": "approve", "confidence": 0.9,
                    "reasoning": "The photo shows the strip at the right well."
                }),
                ("post", "/api/v1/admin/flagged/{id}/review") => {
                    json!({ "decision": "approve", "notes": "Reviewed in the authorization matrix" })
                }
                _ => Value::Null,
            };
            let mut request = match *method {
                "get" => p.http.get(&url),
                "post" => p.http.post(&url),
                "patch" => p.http.patch(&url),
                "put" => p.http.put(&url),
                _ => p.http.delete(&url),
            };
            if !body.is_null() {
                request = request.json(&body);
            }
            if *path == "/api/v1/profile" {
                request = request.header("bw-min-position", people_position);
            }
            if *method == "get" && path.starts_with("/api/v1/solutions/{id}") {
                request = request.header("bw-min-position", solution_position);
            }
            request = match caller {
                Caller::Anonymous => request,
                Caller::WrongKey => request.bearer_auth("ab".repeat(32)),
                Caller::UnverifiedAgent => request.bearer_auth(&unverified.key),
                Caller::OtherAgent => request.bearer_auth(&other.key),
                Caller::Human => request.bearer_auth(&human.access),
                Caller::OtherHuman => request.bearer_auth(&other_human.access),
                Caller::Admin => request.bearer_auth(&admin.access),
                Caller::Auditor => request.bearer_auth(&auditor.access),
                Caller::Owner => request.bearer_auth(&owner.key),
            };
            let response = request.send().await.expect("send");
            let got = response.status().as_u16();
            if got != want {
                let text = response.text().await.unwrap_or_default();
                failures.push(format!(
                    "{method} {path} as {caller:?}: expected {want}, got {got}: {text}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn an_agent_verifies_its_email_with_the_code_it_was_sent() {
    let p = Platform::spawn().await;
    let email = "owner+river@example.org";
    let body = json!({ "username": "verifying_agent", "framework": "custom", "specializations": ["food_security"], "email": email });
    let (status, _, registered) =
        send(p.http.post(p.url("/auth/agents/register")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let key = registered["data"]["apiKey"]
        .as_str()
        .expect("key")
        .to_owned();
    let agent_id = registered["data"]["agentId"]
        .as_str()
        .expect("id")
        .to_owned();
    let mailbox = || async {
        bw_infra::notify::read_mailbox(&p.pipeline.pool, Some(email), 10)
            .await
            .expect("mailbox")
    };
    let messages = mailbox().await;
    assert_eq!(messages.len(), 1);
    let code: String = messages[0]
        .body
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    assert_eq!(code.len(), 6, "{}", messages[0].body);

    let verify = |code: &str| {
        p.http
            .post(p.url("/auth/agents/verify"))
            .bearer_auth(&key)
            .json(&json!({ "verificationCode": code }))
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, _, body) = send(verify(wrong)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["details"]["fields"]["verificationCode"].is_array());
    assert_eq!(
        send(verify("12ab56")).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Resend: at most 3 codes an hour (the registration's counts as the first).
    for _ in 0..2 {
        assert_eq!(
            send(
                p.http
                    .post(p.url("/auth/agents/verify/resend"))
                    .bearer_auth(&key)
            )
            .await
            .0,
            StatusCode::ACCEPTED
        );
    }
    let (status, _, body) = send(
        p.http
            .post(p.url("/auth/agents/verify/resend"))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMITED"))
    );
    let messages = mailbox().await;
    assert_eq!(messages.len(), 3);
    let old = code;
    let latest: String = messages[0]
        .body
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    if old != latest {
        assert_eq!(
            send(verify(&old)).await.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a replaced code no longer works"
        );
    }

    // An expired code is refused.
    sqlx::query("UPDATE agent_verification_codes SET expires_at = now() - interval '1 second'")
        .execute(&p.pipeline.pool)
        .await
        .expect("expire");
    let (status, _, body) = send(verify(&latest)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        field_error(&body, "verificationCode").contains("expired"),
        "{body}"
    );
    sqlx::query("UPDATE agent_verification_codes SET expires_at = now() + interval '15 minutes'")
        .execute(&p.pipeline.pool)
        .await
        .expect("renew");

    let (status, headers, body) = send(verify(&latest)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, _, me) = send(
        p.http
            .get(p.url("/agents/me"))
            .bearer_auth(&key)
            .header("bw-min-position", position(&headers).to_string()),
    )
    .await;
    assert_eq!(me["data"]["claimStatus"], "verified", "{me}");
    assert_eq!(
        send(verify(&latest)).await.0,
        StatusCode::CONFLICT,
        "verified once"
    );
    assert_eq!(
        send(
            p.http
                .post(p.url("/auth/agents/verify/resend"))
                .bearer_auth(&key)
        )
        .await
        .0,
        StatusCode::CONFLICT
    );

    // The address is personal data: in no event.
    let leaked: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text ILIKE '%river@example%' OR metadata::text ILIKE '%river@example%'")
        .fetch_one(&p.pipeline.pool)
        .await
        .expect("query");
    assert_eq!(leaked, 0);
    let verified_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'AgentVerified' AND aggregate_id = $1",
    )
    .bind(&agent_id)
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("query");
    assert_eq!(verified_events, 1);

    let (status, _, body) = send(p.http.post(p.url("/auth/agents/register")).json(&json!({ "username": "bad_mail", "framework": "custom", "specializations": ["food_security"], "email": "not-an-address" }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["details"]["fields"]["email"].is_array(),
        "{body}"
    );
}
