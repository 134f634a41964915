//! The rate-limit middleware: who is calling, which limits apply, the `X-RateLimit-*` headers.
//! It reads the application state; the limiter it asks ([`super::RateLimiter`]) does not.

use std::time::Instant;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::*;
use crate::{
    error::{ErrorCode, error_response},
    state::AppState,
};

/// Who is calling and their role limit (see the module documentation).
async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    address: &str,
    now: Instant,
) -> (String, Limit) {
    let by_address = || (format!("ip:{address}"), PUBLIC);
    let Some(platform) = &state.platform else {
        return by_address();
    };
    match credential(headers) {
        Credential::ApiKey(digest) => state
            .rate_limiter
            .agent_tier(&platform.pool, digest, now)
            .await
            .unwrap_or_else(by_address),
        Credential::Token(token) => match platform.tokens.verify_cached(&token, chrono::Utc::now())
        {
            Ok(claims) if claims.role == "admin" => (format!("human:{}", claims.sub), ADMIN),
            Ok(claims) => (format!("human:{}", claims.sub), HUMAN),
            Err(_) => by_address(),
        },
        Credential::None => by_address(),
    }
}

/// Middleware for the API routes; see the module documentation.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limiter = state.rate_limiter.clone();
    if !limiter.enabled() || !req.uri().path().starts_with("/api/v1/") {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let peer = req
        .extensions()
        .get::<ConnectInfo<crate::listener::ClientAddr>>()
        .map(|c| c.0.0.ip());
    let address = client_ip(req.headers(), peer, state.limits.trust_forwarded_for);
    let now = Instant::now();
    let (who, role_limit) = caller(&state, req.headers(), &address, now).await;
    let mut decisions = vec![limiter.check(&who, role_limit, now)];
    if let Some(endpoint) = endpoint_limit(req.method(), &route) {
        let key = match endpoint.scope {
            Scope::Caller => who.clone(),
            Scope::Address => format!("ip:{address}"),
        };
        decisions.push(limiter.check(&format!("{}:{key}", endpoint.name), endpoint.limit, now));
    }
    let refused = decisions
        .iter()
        .filter(|d| !d.allowed)
        .max_by_key(|d| d.retry_after)
        .copied();
    let tightest = refused.unwrap_or_else(|| {
        decisions
            .iter()
            .min_by_key(|d| d.remaining)
            .copied()
            .unwrap_or(decisions[0])
    });
    let mut response = match refused {
        Some(d) => {
            let mut r = error_response(
                ErrorCode::RateLimited,
                &format!("rate limit exceeded; retry in {} s", d.retry_after),
                None,
            );
            if let Ok(v) = HeaderValue::from_str(&d.retry_after.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r.into_response()
        }
        None => next.run(req).await,
    };
    for (name, value) in [
        ("x-ratelimit-limit", tightest.limit.to_string()),
        ("x-ratelimit-remaining", tightest.remaining.to_string()),
        ("x-ratelimit-reset", tightest.reset.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), v);
        }
    }
    response
}
