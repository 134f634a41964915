//! Admin decisions about agents (`domain-reference.md` §3.2 "Admin"): the claim status and a
//! rate-limit override. Each is an event on the agent's stream naming the admin who made it.

use axum::{
    Router,
    extract::Path,
    routing::{patch, put},
};
use bw_commands::idempotency::StoredResponse;
use bw_domain::{
    agent::{Agent, AgentCommand},
    meta::Actor,
    taxonomy::ClaimStatus,
    values::RateLimitOverride,
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    auth::AdminAuth,
    command::{CommandBody, CommandResponse, execute},
    error::ApiError,
    state::{Api, AppState},
};

use super::parse_path_id;

/// The admin routes for agents.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/agents/{id}/verification",
            patch(set_verification),
        )
        .route("/api/v1/admin/agents/{id}/rate-limit", put(set_rate_limit))
}

/// `PATCH /admin/agents/{id}/verification`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerificationRequest {
    /// `pending` or `verified`.
    claim_status: String,
}

#[utoipa::path(patch, path = "/api/v1/admin/agents/{id}/verification", tag = "admin", params(("id" = Uuid, Path)), request_body = VerificationRequest, security(("human_token" = [])), responses((status = 200, description = "The agent's claim status was set", body = crate::openapi::Ok<Object>), (status = "4XX", description = "Error envelope (409 when it already has that status)", body = crate::openapi::ErrorEnvelope)))]
async fn set_verification(
    Api(platform): Api,
    admin: AdminAuth,
    Path(id): Path<String>,
    body: CommandBody<VerificationRequest>,
) -> Result<CommandResponse, ApiError> {
    let agent_id = parse_path_id(&id)?;
    let status: ClaimStatus = body.body.claim_status.parse()?;
    execute::<Agent, _>(
        &platform,
        Actor::Human(admin.0.human_id),
        agent_id,
        AgentCommand::SetClaimStatus {
            status,
            by: Actor::Human(admin.0.human_id),
            at: chrono::Utc::now(),
        },
        &body,
        move |position| StoredResponse {
            status: 200,
            body: json!({ "agentId": agent_id, "claimStatus": status.as_str() }),
            position,
        },
    )
    .await
}

/// `PUT /admin/agents/{id}/rate-limit`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitRequest {
    /// Requests per minute, 1–1000; `null` removes the override (the tier limit applies again).
    /// Required: a missing field is an error, not a removal.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    limit: Option<Option<i64>>,
}

/// `Some(value)` for a field that is present, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

#[utoipa::path(put, path = "/api/v1/admin/agents/{id}/rate-limit", tag = "admin", params(("id" = Uuid, Path)), request_body = RateLimitRequest, security(("human_token" = [])), responses((status = 200, description = "The override was set or removed; gateways apply it within 30 s", body = crate::openapi::Ok<Object>), (status = "4XX", description = "Error envelope", body = crate::openapi::ErrorEnvelope)))]
async fn set_rate_limit(
    Api(platform): Api,
    admin: AdminAuth,
    Path(id): Path<String>,
    body: CommandBody<RateLimitRequest>,
) -> Result<CommandResponse, ApiError> {
    let agent_id = parse_path_id(&id)?;
    let Some(limit) = body.body.limit else {
        return Err(ApiError::field(
            "limit",
            "is required: 1–1000 requests per minute, or null to remove the override",
        ));
    };
    let limit = limit.map(RateLimitOverride::parse).transpose()?;
    execute::<Agent, _>(
        &platform,
        Actor::Human(admin.0.human_id),
        agent_id,
        AgentCommand::SetRateLimit {
            limit,
            by: Actor::Human(admin.0.human_id),
            at: chrono::Utc::now(),
        },
        &body,
        move |position| StoredResponse {
            status: 200,
            body: json!({ "agentId": agent_id, "limitPerMinute": limit.map(RateLimitOverride::per_minute) }),
            position,
        },
    )
    .await
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(set_verification, set_rate_limit))]
pub struct AdminApi;
