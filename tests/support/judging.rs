//! Helpers for tests of the guardrail's judges: agents that submit, the wait for a verdict, and a
//! local server speaking an LLM provider's wire format.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Platform, send, until_logged};

/// A problem any classifier should find aligned.
pub const WELL: &str = "The only well serving 300 households tested positive for E. coli twice this month; families boil water when they can.";

/// A registered agent.
pub struct Agent {
    pub key: String,
    pub id: uuid::Uuid,
}

/// Registers an agent.
pub async fn agent(p: &Platform, username: &str) -> Agent {
    let (status, _, body) = send(p.http.post(p.url("/auth/agents/register")).json(&json!({
        "username": username, "framework": "custom", "specializations": ["clean_water_sanitation"]
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Agent {
        key: body["data"]["apiKey"].as_str().expect("key").to_owned(),
        id: body["data"]["agentId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("agent id"),
    }
}

/// Reports a problem and waits for its verdict; returns its id and the verdict event.
pub async fn judged(
    p: &Platform,
    agent: &Agent,
    title: &str,
    description: &str,
) -> (String, i64, Value) {
    let (status, _, body) = send(
        p.http
            .post(p.url("/problems"))
            .bearer_auth(&agent.key)
            .json(&json!({ "title": title, "description": description, "domain": "clean_water_sanitation", "severity": "high" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["data"]["problemId"].as_str().expect("id").to_owned();
    let (position, verdict) = until_logged(&p.pipeline.pool, "GuardrailDecided", &id).await;
    (id, position, verdict["data"].clone())
}

/// A local server speaking a provider's wire format: it records each request (headers and body),
/// fails the first `failures` calls with 500, then answers with `reply` as the model's text.
#[derive(Clone, Default)]
pub struct FakeProvider {
    pub seen: Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Value)>>>,
    pub failures: Arc<AtomicUsize>,
}

impl FakeProvider {
    /// Starts it on a loopback port; returns it and its base URL.
    pub async fn start(failures: usize, reply: &'static str) -> (Self, String) {
        use axum::{Json, Router, extract::State, http::HeaderMap, routing::post};
        let fake = Self {
            failures: Arc::new(AtomicUsize::new(failures)),
            ..Default::default()
        };
        async fn answer(
            State((fake, reply)): State<(FakeProvider, &'static str)>,
            headers: HeaderMap,
            Json(body): Json<Value>,
        ) -> Result<Json<Value>, axum::http::StatusCode> {
            let anthropic = body.get("system").is_some();
            fake.seen.lock().expect("lock").push((headers, body));
            if fake
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            }
            Ok(Json(if anthropic {
                json!({ "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
                        "content": [{ "type": "text", "text": reply }], "stop_reason": "end_turn",
                        "usage": { "input_tokens": 100, "output_tokens": 40 } })
            } else {
                json!({ "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-test",
                        "choices": [{ "index": 0, "finish_reason": "stop",
                                      "message": { "role": "assistant", "content": reply } }],
                        "usage": { "prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140 } })
            }))
        }
        let app = Router::new()
            .route("/v1/messages", post(answer))
            .route("/v1/chat/completions", post(answer))
            .with_state((fake.clone(), reply));
        (fake, serve(app).await)
    }
}

/// Serves `app` on a loopback port until the test ends; returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// A judge's settings against `base`.
pub fn llm_config(
    provider: bw_guardrail::llm::Provider,
    base: String,
    budget: i64,
) -> bw_guardrail::llm::LlmConfig {
    bw_guardrail::llm::LlmConfig {
        provider,
        base_url: base,
        api_key: bw_infra::Secret::new("test-key-123".into()),
        model: "judge-test".into(),
        timeout: std::time::Duration::from_secs(5),
        max_retries: 2,
        daily_budget_cents: budget,
        cents_per_call: 1,
    }
}

/// A provider's reply judging content aligned.
pub const ALIGNED: &str = r#"{"alignment_score": 0.95, "aligned_domain": "clean_water_sanitation", "harm_risk": "none", "harm_category": null, "impact": 80, "feasibility": 75, "cost_efficiency": 70}"#;
