//! Auditors' routes (role `auditor` or `admin`): the log in global order (a page, or the whole of
//! it as NDJSON), one stream, the latest signed checkpoint, the keys that sign, and an event's
//! inclusion proof (docs/adr/0006-signed-checkpoints.md).

use axum::{
    Router,
    body::Body,
    extract::{Path, Query},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bw_eventlog::audit::{self, AuditEvent, Checkpoint, InclusionProof, ProofLookup, PublicKey};
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    auth::AuditorAuth,
    envelope::ApiOk,
    error::{ApiError, ErrorCode},
    state::Api,
};

use super::Fields;

/// Events per page (default) and at most.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;
/// Events read per query while streaming NDJSON.
const STREAM_CHUNK: i64 = 1000;

/// The audit routes.
pub fn routes() -> Router<crate::state::AppState> {
    Router::new()
        .route("/api/v1/audit/events", get(events))
        .route("/api/v1/audit/streams/{type}/{id}", get(stream))
        .route("/api/v1/audit/checkpoints/latest", get(latest_checkpoint))
        .route("/api/v1/audit/public-keys", get(public_keys))
        .route("/api/v1/audit/proof/{eventId}", get(proof))
}

/// `GET /audit/events` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct EventsParams {
    /// Events after this global position (default 0: from the start).
    after: Option<String>,
    /// Page size 1–1,000 (default 100). With NDJSON: at most this many events (default: all).
    limit: Option<String>,
    /// `ndjson` streams instead of a page (as does `Accept: application/x-ndjson`).
    format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/events",
    tag = "audit",
    params(EventsParams),
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "Events in global order with their chained hashes: a page (`meta.nextAfter`) or, as `application/x-ndjson`, one event per line",
            body = crate::schema::Ok<Vec<Object>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn events(
    Api(platform): Api,
    _auditor: AuditorAuth,
    headers: HeaderMap,
    Query(params): Query<EventsParams>,
) -> Result<Response, ApiError> {
    let mut f = Fields::default();
    let after = match params.after.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => {
            f.error("after", "must be a global position (an integer ≥ 0)");
            0
        }
    };
    let limit = match params.limit.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => Some(n),
        Some(_) => {
            f.error("limit", "must be an integer from 1 to 1000");
            None
        }
    };
    let ndjson = match params.format.as_deref() {
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/x-ndjson")),
        Some("ndjson") => true,
        Some("json") => false,
        Some(_) => {
            f.error("format", "must be `json` or `ndjson`");
            false
        }
    };
    f.finish()?;
    if ndjson {
        return Ok(ndjson_stream(platform.pool.clone(), after, limit));
    }
    let rows = audit::page(&platform.pool, after, limit.unwrap_or(DEFAULT_PAGE)).await?;
    let meta = serde_json::json!({
        "count": rows.len(),
        "nextAfter": rows.last().map_or(after, |e| e.global_position),
        "hasMore": i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit.unwrap_or(DEFAULT_PAGE),
    });
    Ok(ApiOk::new(rows).with_meta(meta).into_response())
}

/// The log after `after` as NDJSON, read in chunks as the client takes it (constant memory).
fn ndjson_stream(pool: sqlx::PgPool, after: i64, limit: Option<i64>) -> Response {
    let chunks = futures::stream::unfold(
        (pool, after, limit.unwrap_or(i64::MAX), false),
        |(pool, after, left, done)| async move {
            if done || left <= 0 {
                return None;
            }
            match audit::page(&pool, after, STREAM_CHUNK.min(left)).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = rows.last().map_or(after, |e| e.global_position);
                    let taken = i64::try_from(rows.len()).unwrap_or(i64::MAX);
                    let mut bytes = Vec::new();
                    for row in &rows {
                        if serde_json::to_writer(&mut bytes, row).is_err() {
                            break;
                        }
                        bytes.push(b'\n');
                    }
                    Some((
                        Ok::<_, std::io::Error>(bytes),
                        (pool, next, left - taken, taken < STREAM_CHUNK.min(left)),
                    ))
                }
                // The status is sent already: end the body with an error so the client sees a
                // truncated stream, never a silently short one.
                Err(e) => Some((
                    Err(std::io::Error::other(e.to_string())),
                    (pool, after, 0, true),
                )),
            }
        },
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(chunks),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/streams/{type}/{id}",
    tag = "audit",
    params(
        ("type" = String, Path, description = "The aggregate type, e.g. `Problem`"),
        ("id" = String, Path, description = "The aggregate id")
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "Every event of the stream, in order",
            body = crate::schema::Ok<Vec<Object>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn stream(
    Api(platform): Api,
    _auditor: AuditorAuth,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
) -> Result<ApiOk<Vec<AuditEvent>>, ApiError> {
    let rows = audit::stream_events(&platform.pool, &aggregate_type, &aggregate_id).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(ApiOk::new(rows))
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/checkpoints/latest",
    tag = "audit",
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "The latest signed checkpoint: `{treeSize, upToPosition, root, signedAt, keyId, signature}`",
            body = crate::schema::Ok<Object>
        ),
        (
            status = "4XX",
            description = "Error envelope (404: none signed yet)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn latest_checkpoint(
    Api(platform): Api,
    _auditor: AuditorAuth,
) -> Result<ApiOk<Checkpoint>, ApiError> {
    Ok(ApiOk::new(
        audit::latest(&platform.pool)
            .await?
            .ok_or(ApiError::NotFound)?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/public-keys",
    tag = "audit",
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "Every Ed25519 key that signed checkpoints: `[{keyId, algorithm, publicKey, createdAt}]`",
            body = crate::schema::Ok<Vec<Object>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn public_keys(
    Api(platform): Api,
    _auditor: AuditorAuth,
) -> Result<ApiOk<Vec<PublicKey>>, ApiError> {
    Ok(ApiOk::new(audit::public_keys(&platform.pool).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/proof/{eventId}",
    tag = "audit",
    params(("eventId" = Uuid, Path)),
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "The event, its stream predecessor's hash, its leaf index and audit path, and the checkpoint; check it offline with `betterworld events verify-proof`",
            body = crate::schema::Ok<Object>
        ),
        (
            status = "4XX",
            description = "Error envelope (404 unknown event; 409 not in a checkpoint yet)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn proof(
    Api(platform): Api,
    _auditor: AuditorAuth,
    Path(event_id): Path<String>,
) -> Result<ApiOk<InclusionProof>, ApiError> {
    let event_id = Uuid::parse_str(&event_id).map_err(|_| ApiError::NotFound)?;
    match audit::proof(&platform.pool, event_id).await? {
        ProofLookup::Found(proof) => Ok(ApiOk::new(*proof)),
        ProofLookup::UnknownEvent => Err(ApiError::NotFound),
        ProofLookup::NotYetCheckpointed => Err(ApiError::refused(
            ErrorCode::Conflict,
            "this event is newer than the latest signed checkpoint; ask again after the next one",
        )),
    }
}

/// The OpenAPI paths of this module.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(events, stream, latest_checkpoint, public_keys, proof))]
pub struct AuditApi;
