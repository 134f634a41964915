//! The admin queue (Layer C, `domain-reference.md` §2.10): flagged problems, solutions and debate
//! posts; an admin claims one (a second admin gets `409 ALREADY_CLAIMED`) and, as its claimer only,
//! approves or rejects it. Claims and reviews are events on the content's stream.

use axum::{
    Router,
    extract::{Path, Query},
    http::HeaderMap,
    routing::{get, post},
};
use bw_commands::{CommandContext, idempotency::StoredResponse};
use bw_domain::{
    guardrail::{ReviewCommand, ReviewDecision},
    meta::Actor,
    mission::{Mission, MissionCommand},
    problem::{Problem, ProblemCommand},
    solution::{Solution, SolutionCommand},
};
use bw_projections::models::{
    problems::Cursor,
    review_queue::{self, QueueFilter, QueueItem},
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

use crate::{
    auth::AdminAuth,
    command::{CommandBody, CommandResponse, context_without_body},
    consistency::MinPosition,
    envelope::ApiOk,
    error::ApiError,
    state::{Api, AppState, Platform},
};

use super::{Fields, cursor, page_limit, page_meta, parse_path_id};

/// The queue routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/flagged", get(list))
        .route("/api/v1/admin/flagged/{id}", get(detail))
        .route("/api/v1/admin/flagged/{id}/claim", post(claim))
        .route("/api/v1/admin/flagged/{id}/review", post(review))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/flagged",
    tag = "admin",
    security(("human_token" = [])),
    params(
        (
            "state" = Option<String>,
            Query,
            description = "`pending_review`, `claimed`, `approved`, `rejected`, `superseded` or `all`; default: the open ones"
        ),
        (
            "contentType" = Option<String>,
            Query,
            description = "`problem`, `solution`, `debate` or `mission`"
        ),
        ("cursor" = Option<String>, Query),
        ("limit" = Option<u32>, Query)
    ),
    responses(
        (status = 200, description = "Oldest first", body = crate::schema::Ok<Vec<QueueItem>>),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn list(
    Api(platform): Api,
    _: AdminAuth,
    min: MinPosition,
    Query(query): Query<HashMap<String, String>>,
) -> Result<ApiOk<Vec<QueueItem>>, ApiError> {
    let mut fields = Fields::default();
    let state = query.get("state").cloned();
    if let Some(s) = &state
        && ![
            "pending_review",
            "claimed",
            "approved",
            "rejected",
            "superseded",
            "all",
        ]
        .contains(&s.as_str())
    {
        fields.error(
            "state",
            "one of pending_review, claimed, approved, rejected, superseded, all",
        );
    }
    let content_type = query.get("contentType").cloned();
    if let Some(t) = &content_type
        && !["problem", "solution", "debate", "mission"].contains(&t.as_str())
    {
        fields.error("contentType", "one of problem, solution, debate, mission");
    }
    let limit = page_limit(&mut fields, query.get("limit").map(String::as_str));
    fields.finish()?;
    let after = cursor(query.get("cursor").map(String::as_str), Cursor::decode)?
        .map(|c| (c.reported_at, c.problem_id));
    min.wait(&platform, &review_queue::ReviewQueue).await?;
    let (items, next) = review_queue::list(
        &platform.pool,
        &QueueFilter {
            state,
            content_type,
        },
        after,
        limit,
    )
    .await?;
    let next = next.map(|(at, id)| {
        Cursor {
            reported_at: at,
            problem_id: id,
        }
        .encode()
    });
    let count = items.len();
    Ok(ApiOk::new(items).with_meta(page_meta(next, count)))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/flagged/{id}",
    tag = "admin",
    security(("human_token" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (
            status = 200,
            description = "The item and the content as it is now",
            body = crate::schema::Ok<Object>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn detail(
    Api(platform): Api,
    _: AdminAuth,
    min: MinPosition,
    Path(id): Path<String>,
) -> Result<ApiOk<Value>, ApiError> {
    let id = parse_path_id(&id)?;
    min.wait(&platform, &review_queue::ReviewQueue).await?;
    let (item, content) = review_queue::get(&platform.pool, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut body = serde_json::to_value(&item).unwrap_or_default();
    body["content"] = content;
    Ok(ApiOk::new(body))
}

async fn item(platform: &Platform, id: &str) -> Result<QueueItem, ApiError> {
    let id = parse_path_id(id)?;
    review_queue::get(&platform.pool, id)
        .await?
        .map(|(item, _)| item)
        .ok_or(ApiError::NotFound)
}

/// Runs a review command on the item's content.
async fn run(
    platform: &Platform,
    item: &QueueItem,
    command: ReviewCommand,
    ctx: &CommandContext,
    response: Value,
) -> Result<CommandResponse, ApiError> {
    let respond = move |position| StoredResponse {
        status: 200,
        body: response,
        position,
    };
    let stream = item.stream_id.to_string();
    let outcome = if item.content_type == "problem" {
        platform
            .bus
            .execute::<Problem>(&stream, ProblemCommand::Review(command), ctx, respond)
            .await?
    } else if item.content_type == "mission" {
        platform
            .bus
            .execute::<Mission>(&stream, MissionCommand::Review(command), ctx, respond)
            .await?
    } else {
        let command = SolutionCommand::Review {
            target: item.content_id,
            command,
        };
        platform
            .bus
            .execute::<Solution>(&stream, command, ctx, respond)
            .await?
    };
    Ok(CommandResponse(outcome.response().clone()))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/flagged/{id}/claim",
    tag = "admin",
    security(("human_token" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Claimed by the caller", body = crate::schema::Ok<Object>),
        (
            status = 409,
            description = "ALREADY_CLAIMED by another admin, or no longer flagged",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn claim(
    Api(platform): Api,
    admin: AdminAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<CommandResponse, ApiError> {
    let item = item(&platform, &id).await?;
    let path = format!("/api/v1/admin/flagged/{}/claim", item.id);
    let ctx = context_without_body(&headers, "POST", &path, Actor::Human(admin.0.human_id))?;
    let response = json!({ "id": item.id, "contentType": item.content_type, "contentId": item.content_id, "claimedBy": admin.0.human_id });
    let command = ReviewCommand::Claim {
        admin: admin.0.human_id,
        verdict_id: item.id,
        at: chrono::Utc::now(),
    };
    run(&platform, &item, command, &ctx, response).await
}

/// `POST /admin/flagged/{id}/review`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// `approve` or `reject`.
    decision: String,
    /// Why, 10–2,000 characters (recorded in the event).
    notes: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/flagged/{id}/review",
    tag = "admin",
    security(("human_token" = [])),
    params(("id" = Uuid, Path)),
    request_body = ReviewRequest,
    responses(
        (
            status = 200,
            description = "Decided: the content is approved or rejected",
            body = crate::schema::Ok<Object>
        ),
        (
            status = 403,
            description = "Another admin holds the claim",
            body = crate::schema::ErrorEnvelope
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn review(
    Api(platform): Api,
    admin: AdminAuth,
    Path(id): Path<String>,
    body: CommandBody<ReviewRequest>,
) -> Result<CommandResponse, ApiError> {
    let decision = ReviewDecision::parse(&body.body.decision, &body.body.notes)?;
    let item = item(&platform, &id).await?;
    let response = json!({ "id": item.id, "contentType": item.content_type, "contentId": item.content_id, "decision": body.body.decision });
    let command = ReviewCommand::Review {
        admin: admin.0.human_id,
        verdict_id: item.id,
        decision,
        at: chrono::Utc::now(),
    };
    let ctx = body.context(Actor::Human(admin.0.human_id));
    run(&platform, &item, command, &ctx, response).await
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(list, detail, claim, review))]
pub struct ReviewApi;
