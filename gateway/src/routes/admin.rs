//! Admin decisions about agents (`domain-reference.md` §3.2 "Admin"): the claim status and a
//! rate-limit override. Each is an event on the agent's stream naming the admin who made it.

use axum::{
    Router,
    extract::Path,
    routing::{get, patch, post, put},
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
        .route("/api/v1/admin/projections", get(projections))
        .route(
            "/api/v1/admin/projections/{name}/rebuild",
            post(rebuild_projection),
        )
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/projections",
    tag = "admin",
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "Each projection's stored version, the code's version, checkpoint, lag and state",
            body = crate::schema::Ok<Vec<Object>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn projections(
    Api(platform): Api,
    _admin: AdminAuth,
) -> Result<crate::envelope::ApiOk<Vec<serde_json::Value>>, ApiError> {
    let code: std::collections::HashMap<&str, i32> = bw_projections::models::all()
        .iter()
        .map(|p| (p.name(), p.version()))
        .collect();
    let rows = bw_projections::status::all(&platform.pool).await?;
    Ok(crate::envelope::ApiOk::new(
        rows.into_iter()
            .map(|s| {
                let mut v = serde_json::to_value(&s).unwrap_or_default();
                v["codeVersion"] = json!(code.get(s.name.as_str()));
                v["rebuildable"] = json!(code.contains_key(s.name.as_str()));
                v
            })
            .collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/projections/{name}/rebuild",
    tag = "admin",
    params(("name" = String, Path, description = "As `GET /admin/projections` names it")),
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "Rebuilt from the log in shadow tables and swapped in; readers were served throughout. Answers when done: use `betterworld projections rebuild` for very large logs",
            body = crate::schema::Ok<Object>
        ),
        (
            status = "4XX",
            description = "Error envelope (404: no rebuildable projection of that name)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn rebuild_projection(
    Api(platform): Api,
    admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<crate::envelope::ApiOk<bw_projections::rebuild::RebuildReport>, ApiError> {
    let projection = bw_projections::models::all()
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or(ApiError::NotFound)?;
    tracing::warn!(projection = %name, admin = %admin.0.human_id, "rebuild requested over the admin API");
    let report =
        bw_projections::rebuild::rebuild(&platform.pool, projection.as_ref(), &mut |_, _| {})
            .await?;
    Ok(crate::envelope::ApiOk::new(report))
}

/// `PATCH /admin/agents/{id}/verification`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerificationRequest {
    /// `pending` or `verified`.
    claim_status: String,
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/agents/{id}/verification",
    tag = "admin",
    params(("id" = Uuid, Path)),
    request_body = VerificationRequest,
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "The agent's claim status was set",
            body = crate::schema::Ok<Object>
        ),
        (
            status = "4XX",
            description = "Error envelope (409 when it already has that status)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
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

#[utoipa::path(
    put,
    path = "/api/v1/admin/agents/{id}/rate-limit",
    tag = "admin",
    params(("id" = Uuid, Path)),
    request_body = RateLimitRequest,
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "The override was set or removed; gateways apply it within 30 s",
            body = crate::schema::Ok<Object>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
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
#[openapi(paths(set_verification, set_rate_limit, projections, rebuild_projection))]
pub struct AdminApi;
