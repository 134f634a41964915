//! State shared by every handler.

use std::{sync::Arc, time::Duration};

use axum::{extract::FromRequestParts, http::request::Parts};
use bw_commands::CommandBus;
use bw_infra::{Secret, health::Readiness, metrics::Metrics};
use sqlx::PgPool;

use crate::error::ApiError;

/// What handlers and middleware share; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The process's metrics registry.
    pub metrics: Arc<Metrics>,
    /// The dependency checks behind `/readyz`.
    pub readiness: Readiness,
    /// Limits applied to every request.
    pub limits: Limits,
    /// The command and query side; absent in roles that serve only operations endpoints.
    pub platform: Option<Platform>,
    /// Per-instance rate limits of the API routes.
    pub rate_limiter: Arc<crate::ratelimit::RateLimiter>,
}

/// The command bus, the read models, and the settings of the API routes.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Executes commands.
    pub bus: CommandBus,
    /// Reads the read models.
    pub pool: PgPool,
    /// How long a query with `Bw-Min-Position` may wait for its read model.
    pub consistency_wait: Duration,
    /// Derives an agent's API key from its registration's idempotency key, so a replayed
    /// registration returns the same key without the key ever being stored.
    pub key_secret: Secret<Vec<u8>>,
    /// Signs heartbeat instructions and lists the public keys.
    pub heartbeat: Arc<crate::heartbeat::HeartbeatSigner>,
    /// Delivers verification codes.
    pub notifier: Arc<dyn bw_infra::notify::Notifier>,
    /// Signs and verifies humans' access tokens.
    pub tokens: Arc<bw_infra::crypto::keyring::Keyring>,
    /// Keys the fingerprints of humans' e-mail addresses (uniqueness and login without plaintext).
    pub email_secret: Secret<Vec<u8>>,
    /// Embeds search queries; without it search is keyword-only.
    pub embedder: Option<Arc<bw_guardrail::embed::Embedder>>,
    /// Keeps evidence files (a local directory, or S3).
    pub store: Arc<dyn bw_infra::storage::ObjectStore>,
    /// Refuses agents' submissions while the guardrail's backlog is at its bound.
    pub backpressure: Arc<crate::backpressure::Backpressure>,
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted request body, in bytes.
    pub body_bytes: usize,
    /// Longest time a request may take before it is answered with 503.
    pub request_timeout: Duration,
    /// Whether the client address for rate limiting may come from `X-Forwarded-For` (only behind a
    /// proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Multiplies every rate limit (0 turns limiting off).
    pub rate_limit_scale: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            trust_forwarded_for: false,
            rate_limit_scale: 1.0,
        }
    }
}

/// Extracts the [`Platform`] for API handlers.
#[derive(Debug, Clone)]
pub struct Api(pub Platform);

impl FromRequestParts<AppState> for Api {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state
            .platform
            .clone()
            .map(Api)
            .ok_or_else(|| ApiError::internal("API route served without a platform"))
    }
}
