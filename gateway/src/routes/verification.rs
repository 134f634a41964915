//! Agent e-mail verification (`domain-reference.md` §1.2): a 6-digit code, valid 15 minutes, at most
//! 3 sent per hour, delivered through the [`Notifier`](bw_infra::notify::Notifier). The address and
//! the code stay out of the log; `AgentVerified` records the outcome.

use axum::{Router, routing::post};
use bw_commands::{CommandError, SideWrites, idempotency::StoredResponse};
use bw_domain::{
    agent::{Agent, AgentCommand, CodeCheck},
    meta::Actor,
    values::EmailAddress,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    auth::AgentAuth,
    command::{CommandBody, CommandResponse},
    envelope::ApiOk,
    error::{ApiError, ErrorCode},
    state::{Api, AppState, Platform},
};

/// How long a code is valid.
pub const CODE_VALIDITY: TimeDelta = TimeDelta::minutes(15);
/// Codes sent per agent per hour, at most.
pub const CODES_PER_HOUR: i32 = 3;

/// The verification routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/agents/verify", post(verify))
        .route("/api/v1/auth/agents/verify/resend", post(resend))
}

fn code_hash(agent_id: Uuid, code: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(agent_id.as_bytes())
        .chain_update(code.as_bytes())
        .finalize()
        .to_vec()
}

pub(crate) fn new_code() -> String {
    format!("{:06}", rand::random::<u32>() % 1_000_000)
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
            sqlx::query(
                "INSERT INTO agent_verification_codes (agent_id, code_sha256, expires_at, window_start, sent_in_window)
                 VALUES ($1, $2, $3, $4, 1)",
            )
            .bind(agent_id)
            .bind(code_hash(agent_id, &code))
            .bind(now + CODE_VALIDITY)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok::<_, CommandError>(())
        })
    })
}

/// Sends a code; a failure to deliver is logged (the agent can ask for another).
pub(crate) async fn send_code(platform: &Platform, email: &str, code: &str) {
    let body = format!("Your BetterWorld verification code is {code}. It is valid for 15 minutes.");
    if let Err(e) = platform
        .notifier
        .send(email, "BetterWorld verification code", &body)
        .await
    {
        tracing::warn!(error = %e, "verification code not delivered");
    }
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
    let code = body.body.verification_code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::field(
            "verificationCode",
            "must be exactly 6 digits",
        ));
    }
    let agent_id = agent.agent_id;
    let issued: Option<(Vec<u8>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT code_sha256, expires_at FROM agent_verification_codes WHERE agent_id = $1",
    )
    .bind(agent_id)
    .fetch_optional(&platform.pool)
    .await?;
    let now = Utc::now();
    let check = match issued {
        None => CodeCheck::NoneIssued,
        Some((hash, _)) if hash != code_hash(agent_id, code) => CodeCheck::Wrong,
        Some((_, expires)) if expires <= now => CodeCheck::Expired,
        Some(_) => CodeCheck::Valid,
    };
    let side: SideWrites = Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            sqlx::query("DELETE FROM agent_verification_codes WHERE agent_id = $1")
                .bind(agent_id)
                .execute(&mut *conn)
                .await?;
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
    let now = Utc::now();
    let code = new_code();
    // One statement decides the hourly budget, so concurrent resends cannot exceed it.
    let sent: Option<(i32,)> = sqlx::query_as(
        "INSERT INTO agent_verification_codes (agent_id, code_sha256, expires_at, window_start, sent_in_window)
         VALUES ($1, $2, $3, $4, 1)
         ON CONFLICT (agent_id) DO UPDATE SET
             code_sha256 = EXCLUDED.code_sha256, expires_at = EXCLUDED.expires_at,
             window_start = CASE WHEN agent_verification_codes.window_start <= $4 - interval '1 hour'
                                 THEN $4 ELSE agent_verification_codes.window_start END,
             sent_in_window = CASE WHEN agent_verification_codes.window_start <= $4 - interval '1 hour'
                                   THEN 1 ELSE agent_verification_codes.sent_in_window + 1 END
         WHERE agent_verification_codes.window_start <= $4 - interval '1 hour'
            OR agent_verification_codes.sent_in_window < $5
         RETURNING sent_in_window",
    )
    .bind(agent_id)
    .bind(code_hash(agent_id, &code))
    .bind(now + CODE_VALIDITY)
    .bind(now)
    .bind(CODES_PER_HOUR)
    .fetch_optional(&platform.pool)
    .await?;
    if sent.is_none() {
        return Err(ApiError::refused(
            ErrorCode::RateLimited,
            format!("at most {CODES_PER_HOUR} codes per hour; try again later"),
        ));
    }
    send_code(&platform, &email, &code).await;
    Ok(
        ApiOk::new(json!({ "sent": true, "expiresInSeconds": CODE_VALIDITY.num_seconds() }))
            .with_status(axum::http::StatusCode::ACCEPTED),
    )
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(verify, resend))]
pub struct VerificationApi;
