//! Peer review (`domain-reference.md` §6.3): any person but the submitter votes on evidence the
//! automatic checks could not settle; after three votes the confidence-weighted rule decides. Each
//! vote earns its reviewer 2 tokens (reward saga).

use axum::{
    Router,
    extract::{Path, Query},
    routing::{get, post},
};
use bw_commands::idempotency::StoredResponse;
use bw_domain::{
    evidence::{Evidence, EvidenceCommand, Verdict},
    meta::Actor,
};
use bw_projections::models::evidence::{self, EvidenceSubmissions, EvidenceView};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::HumanAuth,
    command::{CommandBody, CommandResponse},
    consistency::MinPosition,
    envelope::ApiOk,
    error::ApiError,
    state::{Api, AppState},
};

use super::{Fields, parse_path_id};

/// The peer-review routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/peer-reviews/pending", get(pending))
        .route("/api/v1/peer-reviews/{evidence_id}/vote", post(vote))
}

/// Query of `GET /peer-reviews/pending`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct PendingQuery {
    /// 1–100, default 20.
    limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/peer-reviews/pending",
    tag = "peer reviews",
    params(
        PendingQuery,
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the evidence read model has applied this position"
        )
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "Evidence awaiting peer review that the caller may vote on (not their own, not voted on), oldest first",
            body = crate::schema::Ok<Vec<EvidenceView>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn pending(
    Api(platform): Api,
    human: HumanAuth,
    min: MinPosition,
    Query(query): Query<PendingQuery>,
) -> Result<ApiOk<Vec<EvidenceView>>, ApiError> {
    let mut f = Fields::default();
    let limit = super::page_limit(&mut f, query.limit.as_deref());
    f.finish()?;
    min.wait(&platform, &EvidenceSubmissions).await?;
    Ok(ApiOk::new(
        evidence::pending_for(&platform.pool, human.human_id, limit).await?,
    ))
}

/// `POST /peer-reviews/{evidenceId}/vote`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteRequest {
    /// `approve` or `reject`.
    verdict: String,
    /// 0–1: how sure the reviewer is.
    confidence: f64,
    /// 20–2,000 characters.
    reasoning: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/peer-reviews/{evidenceId}/vote",
    tag = "peer reviews",
    request_body = VoteRequest,
    params(
        ("evidenceId" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat a vote safely")
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 201,
            description = "Counted; the third vote decides",
            body = crate::schema::Ok<Object>
        ),
        (
            status = 409,
            description = "DUPLICATE_VOTE, or CONFLICT: not awaiting peer review",
            body = crate::schema::ErrorEnvelope
        ),
        (
            status = "4XX",
            description = "Error envelope (403 your own evidence; 404 no such evidence)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn vote(
    Api(platform): Api,
    human: HumanAuth,
    Path(id): Path<String>,
    body: CommandBody<VoteRequest>,
) -> Result<CommandResponse, ApiError> {
    let evidence_id = parse_path_id(&id)?;
    let verdict = match body.body.verdict.as_str() {
        "approve" => Verdict::Approve,
        "reject" => Verdict::Reject,
        _ => return Err(ApiError::field("verdict", "approve or reject")),
    };
    let review_id = Uuid::now_v7();
    let ctx = body.context(Actor::Human(human.human_id));
    // Votes on one item are decided one at a time, so exactly the third one decides.
    let outcome = platform
        .bus
        .execute_serialized::<Evidence>(
            &evidence_id.to_string(),
            EvidenceCommand::Vote {
                review_id,
                reviewer: human.human_id,
                verdict,
                confidence: body.body.confidence,
                reasoning: body.body.reasoning.clone(),
                at: Utc::now(),
            },
            &ctx,
            move |position| StoredResponse {
                status: 201,
                body: json!({ "reviewId": review_id, "evidenceId": evidence_id }),
                position,
            },
        )
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

/// The OpenAPI paths of this module.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(pending, vote))]
pub struct PeerReviewsApi;
