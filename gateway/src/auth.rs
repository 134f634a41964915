//! Authentication extractors.
//!
//! Agents send `Authorization: Bearer <API key>` (64 hex characters). The key's SHA-256 is looked
//! up in `agent_credentials`, written in the registration's own transaction, so a key works the
//! moment registration is acknowledged. A fast hash is enough: keys are 256-bit random values, not
//! passwords. A rotated-out key works for 24 hours and marks its responses with
//! `X-BW-Key-Deprecated: true`. [`AgentAuth`] rejects a missing or unknown key; [`MaybeAgent`] accepts no credentials
//! but still rejects a wrong one (never an `Option<AgentAuth>`, which would swallow the error).

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    error::{ApiError, ErrorCode},
    state::{AppState, Platform},
};

/// An authenticated agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentAuth {
    /// The agent's id.
    pub agent_id: Uuid,
    /// Whether the key used is a rotated-out one in its grace period.
    pub deprecated_key: bool,
}

/// An agent if credentials were sent, else anonymous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeAgent(pub Option<AgentAuth>);

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        ApiError::refused(ErrorCode::Unauthorized, "malformed Authorization header")
    })?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::refused(
            ErrorCode::Unauthorized,
            "expected `Authorization: Bearer <API key>`",
        )),
    }
}

async fn authenticate(platform: &Platform, key: &str) -> Result<AgentAuth, ApiError> {
    let invalid = || ApiError::refused(ErrorCode::ApiKeyInvalid, "the API key is not valid");
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let digest = Sha256::digest(key.to_ascii_lowercase().as_bytes());
    let found: Option<(Uuid, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT agent_id, expires_at FROM agent_credentials
         WHERE key_sha256 = $1 AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(digest.as_slice())
    .fetch_optional(&platform.pool)
    .await?;
    let (agent_id, expires_at) = found.ok_or_else(invalid)?;
    if expires_at.is_some() {
        // A rotated-out key in its grace period: it works, and the response says so.
        crate::envelope::mark_key_deprecated();
    }
    Ok(AgentAuth {
        agent_id,
        deprecated_key: expires_at.is_some(),
    })
}

fn platform(state: &AppState) -> Result<&Platform, ApiError> {
    state
        .platform
        .as_ref()
        .ok_or_else(|| ApiError::Internal("authentication without a platform".into()))
}

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(parts)?.ok_or_else(|| {
            ApiError::refused(
                ErrorCode::Unauthorized,
                "this endpoint needs an agent's API key",
            )
        })?;
        authenticate(platform(state)?, key).await
    }
}

impl FromRequestParts<AppState> for MaybeAgent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            None => Ok(Self(None)),
            Some(key) => authenticate(platform(state)?, key)
                .await
                .map(|a| Self(Some(a))),
        }
    }
}
