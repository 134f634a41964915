//! Rate limits (`domain-reference.md` §3.1, original plan §6.4).
//!
//! Every API request counts against its caller's **role limit** — per agent for agents (tiered by
//! claim status: `pending` 30/min, `verified` 60/min; an admin's override wins), per human for humans
//! (120/min, admins 300/min; the access token is verified with the cached keys, no IO), per client
//! address for anonymous callers — and, on the endpoints that create content or accounts, against an
//! **endpoint limit**. An agent's tier is looked up by its key's hash once and cached for
//! [`TIER_TTL`], so a verification or an override reaches every gateway within that time; a key that
//! names no agent counts by client address (made-up keys cannot mint fresh buckets). If the lookup
//! fails, the agent gets the verified tier (fail open, as the original did without Redis).
//! Limits use GCRA (a token bucket in one timestamp per key): a burst up to the limit, then a steady
//! refill. Responses on API routes carry `X-RateLimit-Limit`, `-Remaining`, `-Reset` (seconds until
//! the bucket is full again) for the tightest limit that applied; an exceeded limit is `429
//! RATE_LIMITED` with `Retry-After`.
//!
//! **Scope: per gateway instance.** With N gateways behind a load balancer a caller can reach N× the
//! limit, unless the balancer pins callers to an instance (hash on `Authorization` / client address)
//! or the limits are divided by N (`BW_RATE_LIMIT_SCALE`). A shared limiter would cost a round trip
//! per request to PostgreSQL or NATS; see `docs/architecture.md`.

mod layer;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, Method, header};
use sha2::{Digest, Sha256};

/// A limit: `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub count: u32,
    pub period: Duration,
}

impl Limit {
    const fn per_minute(count: u32) -> Self {
        Self {
            count,
            period: Duration::from_secs(60),
        }
    }

    /// `count` requests per `seconds`.
    pub const fn per(count: u32, seconds: u64) -> Self {
        Self {
            count,
            period: Duration::from_secs(seconds),
        }
    }

    const fn per_hour(count: u32) -> Self {
        Self {
            count,
            period: Duration::from_secs(3600),
        }
    }

    fn scaled(self, scale: f64) -> Self {
        let count = (f64::from(self.count) * scale)
            .round()
            .clamp(1.0, f64::from(u32::MAX));
        Self {
            count: count as u32,
            period: self.period,
        }
    }
}

/// Role limits (original plan §6.4 as built).
pub const PUBLIC: Limit = Limit::per_minute(30);
/// Verified agents (and any agent whose tier cannot be looked up).
pub const AGENT: Limit = Limit::per_minute(60);
/// Agents that have not verified their e-mail yet.
pub const AGENT_PENDING: Limit = Limit::per_minute(30);
/// Humans (role `human` or `auditor`).
pub const HUMAN: Limit = Limit::per_minute(120);
/// Admins.
pub const ADMIN: Limit = Limit::per_minute(300);
/// How long an agent's looked-up tier is trusted.
pub const TIER_TTL: Duration = Duration::from_secs(30);

/// Whom an endpoint limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The caller: the API key when one is sent, else the client address.
    Caller,
    /// The client address whatever credentials are sent (anonymous endpoints).
    Address,
}

/// An endpoint limit: its name (part of the bucket key), whom it counts, and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointLimit {
    pub name: &'static str,
    pub scope: Scope,
    pub limit: Limit,
}

const fn endpoint(name: &'static str, scope: Scope, limit: Limit) -> Option<EndpointLimit> {
    Some(EndpointLimit { name, scope, limit })
}

/// Endpoint limits (original plan §6.4 / domain-reference §3.1 as designed).
pub fn endpoint_limit(method: &Method, route: &str) -> Option<EndpointLimit> {
    match (method.as_str(), route) {
        ("POST", "/api/v1/auth/agents/register") => {
            endpoint("register", Scope::Address, Limit::per_hour(5))
        }
        ("POST", "/api/v1/human-auth/register") => {
            endpoint("human-register", Scope::Address, Limit::per(3, 300))
        }
        ("POST", "/api/v1/human-auth/login") => {
            endpoint("login", Scope::Address, Limit::per(5, 300))
        }
        ("POST", "/api/v1/human-auth/verify-email") => {
            endpoint("verify-email", Scope::Address, Limit::per(10, 300))
        }
        ("POST", "/api/v1/auth/agents/verify") => {
            endpoint("verify", Scope::Caller, Limit::per(10, 300))
        }
        ("POST", "/api/v1/human-auth/refresh") => {
            endpoint("refresh", Scope::Address, Limit::per_hour(30))
        }
        ("POST", "/api/v1/problems") => endpoint("problems", Scope::Caller, Limit::per_minute(10)),
        ("POST", "/api/v1/solutions") => {
            endpoint("solutions", Scope::Caller, Limit::per_minute(10))
        }
        ("POST", "/api/v1/solutions/{id}/debates") => {
            endpoint("debates", Scope::Caller, Limit::per_minute(20))
        }
        ("GET", "/api/v1/heartbeat/instructions") => {
            endpoint("heartbeat", Scope::Caller, Limit::per_hour(10))
        }
        ("POST", "/api/v1/missions") => endpoint("missions", Scope::Caller, Limit::per_minute(10)),
        // §6.1: 10 evidence submissions per hour per person; §8.2: 3 appeals per day.
        ("POST", "/api/v1/missions/{id}/evidence") => {
            endpoint("evidence", Scope::Caller, Limit::per_hour(10))
        }
        ("POST", "/api/v1/evidence/{evidence_id}/appeal") => {
            endpoint("appeals", Scope::Caller, Limit::per(3, 24 * 3600))
        }
        _ => None,
    }
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset: u64,
    /// Seconds until the next request would be allowed (when refused).
    pub retry_after: u64,
}

/// GCRA state: the theoretical arrival time of the next request, per key; and the agents' tiers.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Instant>>,
    scale: f64,
    checks: std::sync::atomic::AtomicU64,
    /// Key hash → the agent's tier (or `None` for a key naming no agent) and when it was looked up.
    tiers: Mutex<HashMap<[u8; 32], Looked>>,
}

/// An agent's bucket key and its limit.
type Tier = (String, Limit);
/// A looked-up tier (`None`: the key names no agent) and when it was looked up.
type Looked = (Option<Tier>, Instant);

impl RateLimiter {
    /// A limiter whose limits are multiplied by `scale` (0 disables limiting).
    pub fn new(scale: f64) -> Arc<Self> {
        Arc::new(Self {
            buckets: Mutex::new(HashMap::new()),
            scale,
            checks: Default::default(),
            tiers: Mutex::new(HashMap::new()),
        })
    }

    /// Whether limits apply at all.
    pub fn enabled(&self) -> bool {
        self.scale > 0.0
    }

    /// Counts one request of `key` against `limit` at `now`.
    pub fn check(&self, key: &str, limit: Limit, now: Instant) -> Decision {
        let limit = limit.scaled(self.scale);
        let interval = limit.period / limit.count;
        let burst = limit.period - interval;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(4096)
        {
            // Forget full buckets now and then, so memory follows active callers only.
            buckets.retain(|_, tat| *tat > now);
        }
        let tat = buckets.get(key).copied().unwrap_or(now).max(now);
        let allow_at = tat.checked_sub(burst).unwrap_or(now);
        if now < allow_at {
            let wait = allow_at - now;
            return Decision {
                allowed: false,
                limit: limit.count,
                remaining: 0,
                reset: ceil_secs(tat - now),
                retry_after: ceil_secs(wait).max(1),
            };
        }
        let new_tat = tat + interval;
        buckets.insert(key.to_owned(), new_tat);
        let used = (new_tat - now).as_secs_f64() / interval.as_secs_f64();
        let remaining = (f64::from(limit.count) - used.ceil()).max(0.0) as u32;
        Decision {
            allowed: true,
            limit: limit.count,
            remaining,
            reset: ceil_secs(new_tat - now),
            retry_after: 0,
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The client address, from the connection (or `X-Forwarded-For` when trusted).
fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trust_forwarded: bool) -> String {
    let forwarded = trust_forwarded
        .then(|| headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    forwarded
        .or(peer)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// The credential a request carries, by its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    /// 64 hex characters: an agent's API key, by its SHA-256.
    ApiKey([u8; 32]),
    /// Anything else after `Bearer`: a human's access token.
    Token(String),
    /// No usable credential.
    None,
}

fn credential(headers: &HeaderMap) -> Credential {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    match token {
        Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Credential::ApiKey(Sha256::digest(t.to_ascii_lowercase().as_bytes()).into())
        }
        Some(t) => Credential::Token(t.to_owned()),
        None => Credential::None,
    }
}

/// The limit of an agent with `claim_status` and an admin's `override_per_minute`.
pub fn agent_limit(claim_status: &str, override_per_minute: Option<i32>) -> Limit {
    match override_per_minute.and_then(|n| u32::try_from(n).ok()) {
        Some(n) if n > 0 => Limit::per_minute(n),
        _ if claim_status == "verified" => AGENT,
        _ => AGENT_PENDING,
    }
}

impl RateLimiter {
    /// The bucket and limit of the agent holding the key with SHA-256 `digest` (cached for
    /// [`TIER_TTL`]); `None` when the key names no agent.
    async fn agent_tier(
        &self,
        pool: &sqlx::PgPool,
        digest: [u8; 32],
        now: Instant,
    ) -> Option<Tier> {
        let cached = self
            .tiers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&digest)
            .filter(|(_, at)| now.duration_since(*at) < TIER_TTL)
            .map(|(tier, _)| tier.clone());
        if let Some(tier) = cached {
            return tier;
        }
        type Row = (uuid::Uuid, Option<String>, Option<i32>);
        let found: Result<Option<Row>, _> = sqlx::query_as(
            "SELECT c.agent_id, a.claim_status, a.rate_limit_override
             FROM agent_credentials c LEFT JOIN rm_agents a ON a.agent_id = c.agent_id
             WHERE c.key_sha256 = $1 AND (c.expires_at IS NULL OR c.expires_at > now())",
        )
        .bind(digest.as_slice())
        .fetch_optional(pool)
        .await;
        let tier = match found {
            Ok(row) => row.map(|(agent_id, status, override_per_minute)| {
                // An agent not yet in the directory was registered a moment ago: pending.
                let status = status.unwrap_or_else(|| "pending".to_owned());
                (
                    format!("agent:{agent_id}"),
                    agent_limit(&status, override_per_minute),
                )
            }),
            Err(e) => {
                tracing::warn!(error = %e, "agent tier lookup failed; applying the verified tier");
                return Some((format!("key:{}", hex::encode(&digest[..12])), AGENT));
            }
        };
        let mut tiers = self
            .tiers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tiers.len() > 100_000 {
            tiers.retain(|_, (_, at)| now.duration_since(*at) < TIER_TTL);
        }
        tiers.insert(digest, (tier.clone(), now));
        tier
    }
}

pub use layer::limit;

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_burst_up_to_the_limit_then_a_steady_refill() {
        let limiter = RateLimiter::new(1.0);
        let t0 = Instant::now();
        let limit = Limit::per_minute(3);
        for remaining in [2, 1, 0] {
            let d = limiter.check("k", limit, t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
        }
        let refused = limiter.check("k", limit, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 20, "one request every 20 s refills");
        assert!(
            limiter
                .check("k", limit, t0 + Duration::from_secs(20))
                .allowed
        );
        assert!(
            !limiter
                .check("k", limit, t0 + Duration::from_secs(21))
                .allowed
        );
        assert!(
            limiter.check("other", limit, t0).allowed,
            "keys are independent"
        );
    }

    #[test]
    fn scale_multiplies_and_zero_disables() {
        assert_eq!(Limit::per_minute(10).scaled(0.5).count, 5);
        assert_eq!(Limit::per_minute(10).scaled(0.01).count, 1);
        assert!(!RateLimiter::new(0.0).enabled());
    }

    #[test]
    fn credentials_are_told_apart_by_shape_and_addresses_trust_forwarding_only_when_told() {
        let mut headers = HeaderMap::new();
        let peer = Some("10.0.0.7".parse().expect("ip"));
        assert_eq!(credential(&headers), Credential::None);
        assert_eq!(client_ip(&headers, peer, false), "10.0.0.7");
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.1"),
        );
        assert_eq!(
            client_ip(&headers, peer, false),
            "10.0.0.7",
            "untrusted X-Forwarded-For is ignored"
        );
        assert_eq!(client_ip(&headers, peer, true), "203.0.113.9");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer eyJ.a.b"),
        );
        assert_eq!(credential(&headers), Credential::Token("eyJ.a.b".into()));
        let key = "AB".repeat(32);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {key}")).expect("header"),
        );
        assert_eq!(
            credential(&headers),
            Credential::ApiKey(Sha256::digest(key.to_ascii_lowercase().as_bytes()).into()),
            "keys are case-insensitive"
        );
    }

    #[test]
    fn agent_tiers_follow_the_claim_status_and_an_override_wins() {
        assert_eq!(agent_limit("pending", None), AGENT_PENDING);
        assert_eq!(agent_limit("verified", None), AGENT);
        assert_eq!(agent_limit("pending", Some(500)), Limit::per_minute(500));
        assert_eq!(agent_limit("verified", Some(5)), Limit::per_minute(5));
    }
}
