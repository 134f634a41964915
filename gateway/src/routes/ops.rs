//! Operations endpoints: liveness, readiness, metrics.
//!
//! `/healthz` (also `/health`, `/api/v1/health`) answers 200 while the process serves HTTP at all.
//! `/readyz` (also `/ready`) runs every readiness check and answers 200 when all pass (status
//! `ready`) or only non-critical ones fail (status `degraded`, the failing ones named in `degraded`),
//! else 503 with the failing checks named in `error.details.failing` and each check's outcome in
//! `error.details.checks`. `/metrics` is the Prometheus text exposition.

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use crate::{envelope::ApiOk, error::ApiError, state::AppState};

/// The operations routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/health", get(healthz))
        .route("/api/v1/health", get(healthz))
        .route("/readyz", get(readyz))
        .route("/ready", get(readyz))
        .route("/metrics", get(metrics))
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "Alive (also /health, /api/v1/health)",
            body = crate::schema::Ok<Object>
        )
    )
)]
async fn healthz() -> ApiOk<serde_json::Value> {
    ApiOk::new(json!({ "status": "ok" }))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "Ready or degraded, each check named (also /ready)",
            body = crate::schema::Ok<Object>
        ),
        (
            status = 503,
            description = "Not ready: the failing checks are named",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<ApiOk<serde_json::Value>, ApiError> {
    let report = state.readiness.report().await;
    if report.ready {
        return Ok(ApiOk::new(
            json!({ "status": "ready", "checks": report.checks }),
        ));
    }
    let failing = report.failing();
    tracing::warn!(failing = ?failing, "not ready");
    Err(ApiError::Unavailable {
        message: format!("not ready: {}", failing.join(", ")),
        details: Some(json!({ "failing": failing, "checks": report.checks })),
    })
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "Prometheus / OpenMetrics text",
            content_type = "application/openmetrics-text"
        )
    )
)]
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = state
        .metrics
        .render()
        .map_err(|e| ApiError::internal(format!("cannot render metrics: {e}")))?;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics))]
pub struct OpsApi;
