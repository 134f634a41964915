//! Authentication extractors.
//!
//! Agents send `Authorization: Bearer <API key>` (64 hex characters). The key's SHA-256 is looked
//! up in `agent_credentials`, written in the registration's own transaction, so a key works the
//! moment registration is acknowledged. A fast hash is enough: keys are 256-bit random values, not
//! passwords. [`AgentAuth`] rejects a missing or unknown key; [`MaybeAgent`] accepts no credentials
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
    let agent: Option<Uuid> =
        sqlx::query_scalar("SELECT agent_id FROM agent_credentials WHERE key_sha256 = $1")
            .bind(digest.as_slice())
            .fetch_optional(&platform.pool)
            .await
            .map_err(|e| ApiError::from(bw_commands::CommandError::Database(e)))?;
    agent
        .map(|agent_id| AgentAuth { agent_id })
        .ok_or_else(invalid)
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
