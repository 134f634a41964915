//! Agent e-mail verification (`domain-reference.md` §1.2): a 6-digit code, valid 15 minutes, at most
//! 3 sent per hour, delivered through the [`Notifier`](bw_infra::notify::Notifier). The address and
//! the code stay out of the log; `AgentVerified` records the outcome.

use axum::{Router, routing::post};
use bw_commands::{CommandError, SideWrites, idempotency::StoredResponse};
use bw_domain::{
    agent::{Agent, AgentCommand},
    meta::Actor,
    values::EmailAddress,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    auth::AgentAuth,
    codes,
    command::{CommandBody, CommandResponse},
    envelope::ApiOk,
    error::{ApiError, ErrorCode},
    state::{Api, AppState},
};

/// The verification routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/agents/verify", post(verify))
        .route("/api/v1/auth/agents/verify/resend", post(resend))
}

/// Writes, with the registration's events, the agent's address and its first code.
pub(crate) fn register_contact(
    agent_id: Uuid,
    email: EmailAddress,
    code: String,
    now: DateTime<Utc>,
) -> SideWrites {
    Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            sqlx::query("INSERT INTO agent_contacts (agent_id, email) VALUES ($1, $2)")
                .bind(agent_id)
                .bind(email.as_str())
                .execute(&mut *conn)
                .await?;
            codes::AGENTS.insert_first(conn, agent_id, &code, now).await
        })
    })
}

/// `POST /auth/agents/verify`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyRequest {
    /// The 6 digits that were sent.
    verification_code: String,
}

#[utoipa::path(post, path = "/api/v1/auth/agents/verify", tag = "agents", request_body = VerifyRequest, security(("agent_key" = [])), responses((status = 202, description = "Verified", body = crate::openapi::Ok<crate::openapi::Accepted>), (status = "4XX", description = "Error envelope", body = crate::openapi::ErrorEnvelope)))]
async fn verify(
    Api(platform): Api,
    agent: AgentAuth,
    body: CommandBody<VerifyRequest>,
) -> Result<CommandResponse, ApiError> {
    let code = codes::parse(&body.body.verification_code)?;
    let agent_id = agent.agent_id;
    let now = Utc::now();
    let check = codes::AGENTS
        .check(&platform.pool, agent_id, code, now)
        .await?;
    let side: SideWrites = Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            codes::AGENTS.delete(conn, agent_id).await?;
            sqlx::query("UPDATE agent_contacts SET verified_at = now() WHERE agent_id = $1")
                .bind(agent_id)
                .execute(&mut *conn)
                .await?;
            Ok::<_, CommandError>(())
        })
    });
    let ctx = body.context(Actor::Agent(agent_id));
    let respond = move |position| StoredResponse {
        status: 202,
        body: json!({ "agentId": agent_id, "claimStatus": "verified" }),
        position,
    };
    let outcome = platform
        .bus
        .execute_with::<Agent>(
            &agent_id.to_string(),
            AgentCommand::Verify { check, at: now },
            &ctx,
            Some(side),
            respond,
        )
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

#[utoipa::path(post, path = "/api/v1/auth/agents/verify/resend", tag = "agents", security(("agent_key" = [])), responses((status = 202, description = "A new code was sent", body = crate::openapi::Ok<Object>), (status = "4XX", description = "Error envelope (429 after 3 codes in an hour)", body = crate::openapi::ErrorEnvelope)))]
async fn resend(
    Api(platform): Api,
    agent: AgentAuth,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    let agent_id = agent.agent_id;
    let contact: Option<(String, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT email, verified_at FROM agent_contacts WHERE agent_id = $1")
            .bind(agent_id)
            .fetch_optional(&platform.pool)
            .await?;
    let Some((email, verified_at)) = contact else {
        return Err(ApiError::refused(
            ErrorCode::Conflict,
            "no e-mail was registered for this agent",
        ));
    };
    if verified_at.is_some() {
        return Err(ApiError::refused(
            ErrorCode::Conflict,
            "the agent is verified already",
        ));
    }
    let code = codes::new_code();
    if !codes::AGENTS
        .replace_within_budget(&platform.pool, agent_id, &code, Utc::now())
        .await?
    {
        return Err(ApiError::refused(
            ErrorCode::RateLimited,
            format!(
                "at most {} codes per hour; try again later",
                codes::CODES_PER_HOUR
            ),
        ));
    }
    codes::send(&platform, &email, &code).await;
    Ok(
        ApiOk::new(json!({ "sent": true, "expiresInSeconds": codes::CODE_VALIDITY.num_seconds() }))
            .with_status(axum::http::StatusCode::ACCEPTED),
    )
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(verify, resend))]
pub struct VerificationApi;
