//! Agent e-mail verification (`domain-reference.md` §1.2): a 6-digit code, valid 15 minutes, at most
//! 3 sent per hour, delivered through the [`Notifier`](bw_infra::notify::Notifier). The address and
//! the code stay out of the log; `AgentVerified` records the outcome.

use axum::{Router, routing::post};
use bw_commands::{
    codes::{self as code_store, CODE_VALIDITY, CODES_PER_HOUR},
    contacts,
    idempotency::StoredResponse,
};
use bw_domain::{
    agent::{Agent, AgentCommand},
    meta::Actor,
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

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

/// `POST /auth/agents/verify`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyRequest {
    /// The 6 digits that were sent.
    verification_code: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/agents/verify",
    tag = "agents",
    request_body = VerifyRequest,
    security(("agent_key" = [])),
    responses(
        (
            status = 202,
            description = "Verified",
            body = crate::schema::Ok<crate::schema::Accepted>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn verify(
    Api(platform): Api,
    agent: AgentAuth,
    body: CommandBody<VerifyRequest>,
) -> Result<CommandResponse, ApiError> {
    let code = codes::parse(&body.body.verification_code)?;
    let agent_id = agent.agent_id;
    let now = Utc::now();
    let check = code_store::AGENTS
        .check(&platform.pool, agent_id, code, now)
        .await?;
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
            Some(contacts::mark_verified(agent_id)),
            respond,
        )
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/agents/verify/resend",
    tag = "agents",
    security(("agent_key" = [])),
    responses(
        (status = 202, description = "A new code was sent", body = crate::schema::Ok<Object>),
        (
            status = "4XX",
            description = "Error envelope (429 after 3 codes in an hour)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn resend(
    Api(platform): Api,
    agent: AgentAuth,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    let agent_id = agent.agent_id;
    let Some((email, verified_at)) = contacts::contact(&platform.pool, agent_id).await? else {
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
    let code = code_store::new_code();
    if !code_store::AGENTS
        .replace_within_budget(&platform.pool, agent_id, &code, Utc::now())
        .await?
    {
        return Err(ApiError::refused(
            ErrorCode::RateLimited,
            format!("at most {CODES_PER_HOUR} codes per hour; try again later"),
        ));
    }
    codes::send(&platform, &email, &code).await;
    Ok(
        ApiOk::new(json!({ "sent": true, "expiresInSeconds": CODE_VALIDITY.num_seconds() }))
            .with_status(axum::http::StatusCode::ACCEPTED),
    )
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(verify, resend))]
pub struct VerificationApi;
