//! Authentication extractors.
//!
//! Agents send `Authorization: Bearer <API key>` (64 hex characters). The key's SHA-256 is looked
//! up in `agent_credentials`, written in the registration's own transaction, so a key works the
//! moment registration is acknowledged. A fast hash is enough: keys are 256-bit random values, not
//! passwords. A rotated-out key works for 24 hours and marks its responses with
//! `X-BW-Key-Deprecated: true`. [`AgentAuth`] rejects a missing or unknown key; [`MaybeAgent`] accepts no credentials
//! but still rejects a wrong one (never an `Option<AgentAuth>`, which would swallow the error).
//!
//! Humans send `Authorization: Bearer <access token>` (HS256 JWT, 15 minutes, key id in the header;
//! see `bw_infra::crypto::keyring`). [`HumanAuth`] accepts any role, [`AdminAuth`] only `admin`,
//! [`AuditorAuth`] `auditor` or `admin`. A missing credential is `401 UNAUTHORIZED`, an expired token
//! `401 TOKEN_EXPIRED`, a valid credential of the wrong kind (an agent on a human endpoint, a human
//! on an agent endpoint, a human without the role) `403 FORBIDDEN`.

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use bw_domain::taxonomy::Role;
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

/// An agent if an API key was sent, else anonymous (a human's valid access token reads as
/// anonymous: the endpoints taking it are public).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeAgent(pub Option<AgentAuth>);

/// Anyone on a public route, identified when they send a credential: an agent, a human, or nobody.
/// A credential that is sent must be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    Agent(AgentAuth),
    Human(HumanAuth),
}

/// A human with a valid access token, of any role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanAuth {
    /// The human's id.
    pub human_id: Uuid,
    /// Their role when the token was issued.
    pub role: Role,
}

/// A human with role `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminAuth(pub HumanAuth);

/// A human with role `auditor` or `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditorAuth(pub HumanAuth);

/// What a bearer credential is, by its shape: API keys are 64 hex characters, access tokens are JWTs.
fn is_api_key(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

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
    if !is_api_key(key) {
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
        .ok_or_else(|| ApiError::internal("authentication without a platform"))
}

/// Verifies a human's access token.
async fn human(platform: &Platform, token: &str) -> Result<HumanAuth, ApiError> {
    let claims = platform
        .tokens
        .verify(token, chrono::Utc::now())
        .await
        .map_err(|e| match e {
            bw_infra::crypto::CryptoError::Token("expired") => ApiError::refused(
                ErrorCode::TokenExpired,
                "the access token has expired; refresh it",
            ),
            _ => ApiError::refused(ErrorCode::Unauthorized, "the access token is not valid"),
        })?;
    let human_id = claims.sub.parse().ok();
    let role = claims.role.parse().ok();
    match (human_id, role) {
        (Some(human_id), Some(role)) => Ok(HumanAuth { human_id, role }),
        _ => Err(ApiError::refused(
            ErrorCode::Unauthorized,
            "the access token is not valid",
        )),
    }
}

fn wrong_kind(needed: &str) -> ApiError {
    ApiError::refused(
        ErrorCode::Forbidden,
        format!("this endpoint is for {needed}"),
    )
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
        let platform = platform(state)?;
        if !is_api_key(key) && human(platform, key).await.is_ok() {
            return Err(wrong_kind("agents (send an API key)"));
        }
        authenticate(platform, key).await
    }
}

impl FromRequestParts<AppState> for MaybeAgent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let platform = platform(state)?;
        match bearer(parts)? {
            None => Ok(Self(None)),
            Some(key) if is_api_key(key) => {
                authenticate(platform, key).await.map(|a| Self(Some(a)))
            }
            Some(token) => human(platform, token).await.map(|_| Self(None)),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let platform = platform(state)?;
        match bearer(parts)? {
            None => Ok(Self::Anonymous),
            Some(key) if is_api_key(key) => authenticate(platform, key).await.map(Self::Agent),
            Some(token) => human(platform, token).await.map(Self::Human),
        }
    }
}

impl FromRequestParts<AppState> for HumanAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?.ok_or_else(|| {
            ApiError::refused(
                ErrorCode::Unauthorized,
                "this endpoint needs a human's access token",
            )
        })?;
        let platform = platform(state)?;
        if is_api_key(token) {
            authenticate(platform, token).await?;
            return Err(wrong_kind("humans (send an access token)"));
        }
        human(platform, token).await
    }
}

/// The caller, when they hold one of `roles`; otherwise `403` naming `who` the endpoint is for.
/// Privileged roles are checked against the credentials too, so an admin or auditor who was
/// forgotten loses the role at once, not when the access token expires.
async fn with_role(
    parts: &mut Parts,
    state: &AppState,
    roles: &[Role],
    who: &str,
) -> Result<HumanAuth, ApiError> {
    let human = HumanAuth::from_request_parts(parts, state).await?;
    if !roles.contains(&human.role) {
        return Err(wrong_kind(who));
    }
    let current: Option<String> =
        sqlx::query_scalar("SELECT role FROM human_credentials WHERE human_id = $1")
            .bind(human.human_id)
            .fetch_optional(&platform(state)?.pool)
            .await?;
    if current.as_deref() != Some(human.role.as_str()) {
        return Err(ApiError::refused(
            ErrorCode::Unauthorized,
            "this account no longer holds the role; log in again",
        ));
    }
    Ok(human)
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        with_role(parts, state, &[Role::Admin], "admins")
            .await
            .map(Self)
    }
}

impl FromRequestParts<AppState> for AuditorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        with_role(
            parts,
            state,
            &[Role::Admin, Role::Auditor],
            "auditors and admins",
        )
        .await
        .map(Self)
    }
}
