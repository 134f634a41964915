//! The backpressure middleware: refuses agents' submissions while the guardrail's backlog is at
//! its bound. It reads the application state; the gate it asks ([`super::Backpressure`]) does not.

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::*;
use crate::{
    error::{ErrorCode, error_response},
    state::AppState,
};

/// The middleware: refuses agents' submissions while the backlog is at its bound.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(platform) = &state.platform else {
        return next.run(req).await;
    };
    let gate = &platform.backpressure;
    let submits = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|route| is_submission(req.method(), route.as_str()));
    if !submits || !gate.enabled() {
        return next.run(req).await;
    }
    match gate.admit() {
        Ok(()) => next.run(req).await,
        Err(retry_after) => {
            state.metrics.guardrail.refused.inc();
            let mut response = error_response(
                ErrorCode::RateLimited,
                &format!(
                    "the guardrail has {} submissions waiting (bound {}); retry in {retry_after} s",
                    gate.estimate(),
                    gate.limit()
                ),
                None,
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
    }
}
