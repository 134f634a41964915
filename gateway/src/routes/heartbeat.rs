//! The agent heartbeat: signed instructions, the public key registry, check-ins.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderName, HeaderValue},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bw_commands::presence::{Checkin, record_checkin};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::{
    auth::AgentAuth,
    envelope::ApiOk,
    error::ApiError,
    extract::AppJson,
    heartbeat::{INSTRUCTIONS_VERSION, canonical_bytes, instructions},
    state::{Api, AppState},
};

/// How long an agent should wait before its next check-in.
const CHECKIN_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::hours(6);

/// The heartbeat routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/heartbeat/instructions", get(fetch_instructions))
        .route("/api/v1/heartbeat/checkin", post(checkin))
        .route("/.well-known/heartbeat-keys.json", get(keys))
}

#[utoipa::path(
    get,
    path = "/api/v1/heartbeat/instructions",
    tag = "heartbeat",
    security(("agent_key" = [])),
    responses(
        (
            status = 200,
            description = "Instructions signed with Ed25519 over canonical JSON (docs/heartbeat.md)",
            body = crate::schema::Ok<Object>,
            headers(("X-BW-Key-ID" = String))
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn fetch_instructions(Api(platform): Api, _agent: AgentAuth) -> Result<Response, ApiError> {
    let instructions = instructions();
    let signature = platform
        .heartbeat
        .sign(&canonical_bytes(INSTRUCTIONS_VERSION, &instructions));
    let key_id = platform.heartbeat.key_id().to_owned();
    let mut response = ApiOk::new(json!({
        "instructionsVersion": INSTRUCTIONS_VERSION,
        "instructions": instructions,
        "signature": signature,
        "publicKeyId": key_id,
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&key_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-bw-key-id"), value);
    }
    Ok(response)
}

/// The public key registry: a plain JSON document (no envelope), as agents and SDKs fetch it.
#[utoipa::path(
    get,
    path = "/.well-known/heartbeat-keys.json",
    tag = "heartbeat",
    responses(
        (
            status = 200,
            description = "The public key registry (plain JSON, no envelope)",
            body = Object
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let platform = state
        .platform
        .ok_or_else(|| ApiError::internal("no platform"))?;
    Ok(Json(platform.heartbeat.registry(Utc::now())).into_response())
}

/// Counts an agent may report with its check-in.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ActivitySummary {
    problems_reviewed: Option<u32>,
    problems_reported: Option<u32>,
    evidence_added: Option<u32>,
    solutions_proposed: Option<u32>,
    debates_contributed: Option<u32>,
    messages_received: Option<u32>,
    messages_responded: Option<u32>,
}

/// `POST /heartbeat/checkin`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckinRequest {
    timestamp: DateTime<Utc>,
    instructions_version: Option<String>,
    client_version: Option<String>,
    activity_summary: Option<ActivitySummary>,
}

/// Records the agent's presence (no event: see `docs/heartbeat.md`).
#[utoipa::path(
    post,
    path = "/api/v1/heartbeat/checkin",
    tag = "heartbeat",
    request_body = CheckinRequest,
    security(("agent_key" = [])),
    responses(
        (
            status = 200,
            description = "Presence recorded (no event)",
            body = crate::schema::Ok<Object>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn checkin(
    Api(platform): Api,
    agent: AgentAuth,
    AppJson(body): AppJson<CheckinRequest>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    let mut fields = super::Fields::default();
    for (name, value, max) in [
        ("instructionsVersion", &body.instructions_version, 64),
        ("clientVersion", &body.client_version, 100),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.chars().count() > max)
        {
            fields.error(name, format!("must be 1–{max} characters"));
        }
    }
    fields.finish()?;
    let activity = body.activity_summary.as_ref().map_or_else(|| json!({}), |a| {
        json!({
            "problemsReviewed": a.problems_reviewed, "problemsReported": a.problems_reported,
            "evidenceAdded": a.evidence_added, "solutionsProposed": a.solutions_proposed,
            "debatesContributed": a.debates_contributed, "messagesReceived": a.messages_received,
            "messagesResponded": a.messages_responded,
        })
    });
    let now = Utc::now();
    record_checkin(
        &platform.pool,
        &Checkin {
            agent_id: agent.agent_id,
            at: now,
            client_timestamp: body.timestamp,
            instructions_version: body.instructions_version,
            client_version: body.client_version,
            activity,
        },
    )
    .await?;
    Ok(ApiOk::new(json!({
        "acknowledged": true,
        "agentId": agent.agent_id,
        "currentInstructionsVersion": INSTRUCTIONS_VERSION,
        "nextCheckinAfter": now + CHECKIN_INTERVAL,
    })))
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(fetch_instructions, keys, checkin))]
pub struct HeartbeatApi;
