//! Similar problems and search over approved content (the semantic index, `bw_guardrail::index`).

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Path, Query},
    routing::get,
};
use bw_guardrail::index::{self, Hit};

use crate::{
    consistency::MinPosition,
    envelope::ApiOk,
    error::ApiError,
    state::{Api, AppState},
};

use super::{Fields, page_limit, parse_path_id};

/// The search routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/problems/{id}/similar", get(similar))
        .route("/api/v1/search", get(search))
}

/// A stand-in with the index's name, for `Bw-Min-Position` waits (the gateway has no embedder-free
/// handle on the projection itself).
struct IndexName;

impl bw_projections::runtime::Projection for IndexName {
    fn name(&self) -> &'static str {
        index::NAME
    }
    fn version(&self) -> i32 {
        1
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Problem", "Solution"]
    }
    fn apply<'a>(
        &'a self,
        _: &'a mut sqlx::PgConnection,
        _: &'a bw_eventlog::envelope::EventEnvelope,
    ) -> futures::future::BoxFuture<'a, Result<(), bw_projections::ProjectionError>> {
        Box::pin(async { Ok(()) })
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/problems/{id}/similar",
    tag = "problems",
    params(
        ("id" = Uuid, Path),
        ("limit" = Option<u32>, Query, description = "1–100, default 20")
    ),
    responses(
        (
            status = 200,
            description = "Approved problems by cosine similarity, best first",
            body = crate::schema::Ok<Vec<Hit>>
        ),
        (
            status = 404,
            description = "Not an approved problem",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn similar(
    Api(platform): Api,
    min: MinPosition,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<ApiOk<Vec<Hit>>, ApiError> {
    let id = parse_path_id(&id)?;
    let mut fields = Fields::default();
    let limit = page_limit(&mut fields, query.get("limit").map(String::as_str));
    fields.finish()?;
    min.wait(&platform, &IndexName).await?;
    let hits = index::similar(&platform.pool, id, limit)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(ApiOk::new(hits))
}

#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "problems",
    params(
        ("q" = String, Query, description = "1–500 characters"),
        ("type" = Option<String>, Query, description = "`problem` or `solution`"),
        ("domain" = Option<String>, Query),
        ("limit" = Option<u32>, Query)
    ),
    responses(
        (
            status = 200,
            description = "Approved problems and solutions: full-text and vector rankings fused by reciprocal rank (`score`), with each list's rank",
            body = crate::schema::Ok<Vec<Hit>>
        ),
        (status = 422, description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn search(
    Api(platform): Api,
    min: MinPosition,
    Query(query): Query<HashMap<String, String>>,
) -> Result<ApiOk<Vec<Hit>>, ApiError> {
    let mut fields = Fields::default();
    let q = query
        .get("q")
        .map(|q| q.trim().to_owned())
        .unwrap_or_default();
    if q.is_empty() || q.chars().count() > 500 {
        fields.error("q", "1–500 characters");
    }
    let content_type = query.get("type").cloned();
    if let Some(t) = &content_type
        && !["problem", "solution"].contains(&t.as_str())
    {
        fields.error("type", "problem or solution");
    }
    let domain = fields.optional(query.get("domain").map(String::as_str), |d| {
        d.parse::<bw_domain::taxonomy::ProblemDomain>()
    });
    let limit = page_limit(&mut fields, query.get("limit").map(String::as_str));
    fields.finish()?;
    min.wait(&platform, &IndexName).await?;
    let vector = match &platform.embedder {
        Some(embedder) => {
            let embedder = embedder.clone();
            let text = bw_domain::guardrail::normalise(&q);
            tokio::task::spawn_blocking(move || embedder.embed(&[&text]))
                .await
                .map_err(ApiError::caused)?
                .map_err(ApiError::caused)?
                .pop()
        }
        None => None,
    };
    let hits = index::search(
        &platform.pool,
        &q,
        vector.as_deref(),
        content_type.as_deref(),
        domain.map(|d| d.as_str()),
        limit,
    )
    .await?;
    Ok(ApiOk::new(hits))
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(similar, search))]
pub struct SearchApi;
