//! Missions and claims (`domain-reference.md` §1.7, §1.8, §2.4, §2.5): agents create missions from
//! their approved solutions; humans find them (marketplace, nearby), claim them, report progress or
//! abandon.
//!
//! A claim is decided on the mission's stream under its lock (`execute_serialized`): concurrent
//! claims are taken one at a time, so `maxClaims` can never be exceeded. The limit of three active
//! claims per person spans missions: the claim's transaction also takes a lock on the person and
//! counts their rows in `active_claims`, which the claim, abandon (and, later, expiry and
//! completion) events write in their own transactions (ADR 0005).

use axum::{
    Router,
    extract::{Path, Query},
    http::HeaderMap,
    routing::{get, patch, post},
};
use bw_commands::{
    SideWrites,
    claims::{release_ended_claims, reserve_claim},
    idempotency::StoredResponse,
};
use bw_domain::{
    meta::Actor,
    mission::{
        ClaimUpdate, Difficulty, EvidenceRequirement, Mission, MissionCommand, MissionSpec,
        MissionText, MissionTextChanges, ParentSolution, Step,
    },
    problem::Problem,
    solution::Solution,
    taxonomy::ProblemDomain,
    values::GeoPoint,
};
use bw_projections::models::missions::{
    self, ClaimView, MissionCursor, MissionFilter, MissionSort, MissionView, Missions, Near,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    auth::{AgentAuth, Caller, HumanAuth},
    command::{CommandBody, CommandResponse, context_without_body},
    consistency::MinPosition,
    envelope::ApiOk,
    error::ApiError,
    state::{Api, AppState},
};

use super::{Fields, parse_path_id};

/// The mission routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/missions", post(create).get(marketplace))
        .route("/api/v1/missions/nearby", get(nearby))
        .route("/api/v1/missions/mine", get(mine))
        .route("/api/v1/missions/agent", get(agent_missions))
        .route(
            "/api/v1/missions/{id}",
            get(mission).patch(edit).delete(archive),
        )
        .route("/api/v1/missions/{id}/claim", post(claim))
        .route(
            "/api/v1/missions/{id}/claims/{claim_id}",
            patch(update_claim),
        )
        .route("/api/v1/admin/missions/{id}/cancel", post(cancel))
}

/// `POST /missions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateRequest {
    /// An approved solution of the calling agent.
    solution_id: Uuid,
    /// 1–500 characters.
    title: String,
    /// 10–5,000 characters.
    description: String,
    /// 1–50 steps `{step, text, optional}`.
    #[schema(value_type = Vec<Object>)]
    instructions: Vec<Step>,
    /// 1–20 items `{type: photo|document|video, description, required}`.
    #[schema(value_type = Vec<Object>)]
    evidence_required: Vec<EvidenceRequirement>,
    /// Up to 20.
    #[serde(default)]
    required_skills: Vec<String>,
    required_location_name: Option<String>,
    /// With `requiredLongitude`.
    required_latitude: Option<f64>,
    required_longitude: Option<f64>,
    /// 1–200, default 5.
    location_radius_km: Option<u16>,
    /// 15–10,080.
    estimated_duration_minutes: u32,
    /// `beginner`, `intermediate` (default), `advanced`, `expert`.
    difficulty: Option<String>,
    mission_type: Option<String>,
    /// 1–10,000.
    token_reward: u32,
    #[serde(default)]
    bonus_for_quality: u32,
    /// 1–100, default 1.
    max_claims: Option<u16>,
    expires_at: DateTime<Utc>,
}

fn parse_create(request: &CreateRequest) -> Result<MissionSpec, ApiError> {
    let mut f = Fields::default();
    let location = match (request.required_latitude, request.required_longitude) {
        (None, None) => None,
        (Some(lat), Some(lng)) => f.check(GeoPoint::parse(lat, lng)),
        _ => {
            f.error(
                "requiredLatitude",
                "requiredLatitude and requiredLongitude go together",
            );
            None
        }
    };
    let difficulty = match request.difficulty.as_deref() {
        None => Difficulty::default(),
        Some(d) => Difficulty::parse(d).unwrap_or_else(|| {
            f.error(
                "difficulty",
                "one of beginner, intermediate, advanced, expert",
            );
            Difficulty::default()
        }),
    };
    f.finish()?;
    Ok(MissionSpec {
        text: MissionText {
            title: request.title.trim().to_owned(),
            description: request.description.trim().to_owned(),
            instructions: request.instructions.clone(),
            evidence_required: request.evidence_required.clone(),
            required_skills: request.required_skills.clone(),
        },
        location_name: request.required_location_name.clone(),
        location,
        location_radius_km: request.location_radius_km.unwrap_or(5),
        estimated_duration_minutes: request.estimated_duration_minutes,
        difficulty,
        mission_type: request.mission_type.clone(),
        token_reward: request.token_reward,
        bonus_for_quality: request.bonus_for_quality,
        max_claims: request.max_claims.unwrap_or(1),
        expires_at: request.expires_at,
    })
}

fn accepted(mission_id: Uuid) -> impl FnOnce(Option<i64>) -> StoredResponse {
    move |position| StoredResponse {
        status: 202,
        body: json!({ "missionId": mission_id, "guardrailStatus": "pending", "status": "open" }),
        position,
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/missions",
    tag = "missions",
    request_body = CreateRequest,
    params(
        (
            "Idempotency-Key" = Option<String>,
            Header,
            description = "Repeat a command safely: the same key and request replay the first response"
        )
    ),
    security(("agent_key" = [])),
    responses(
        (
            status = 202,
            description = "Created; awaiting the guardrail",
            body = crate::schema::Ok<Object>,
            headers(
                ("Bw-Position" = i64, description = "Global position of the command's last event")
            )
        ),
        (
            status = "4XX",
            description = "Error envelope (403: not your solution; 409: the solution is not approved)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn create(
    Api(platform): Api,
    agent: AgentAuth,
    body: CommandBody<CreateRequest>,
) -> Result<CommandResponse, ApiError> {
    let spec = parse_create(&body.body)?;
    // The solution and its problem are read from the log and passed in the command.
    let solution = platform
        .bus
        .load::<Solution>(&body.body.solution_id.to_string())
        .await?;
    let parent = match solution.as_parent() {
        None => ParentSolution::Missing,
        Some((solution_id, owner, problem_id, guardrail_status)) => {
            let domain: Option<ProblemDomain> = platform
                .bus
                .load::<Problem>(&problem_id.to_string())
                .await?
                .domain();
            match domain {
                None => ParentSolution::Missing,
                Some(domain) => ParentSolution::Found {
                    solution_id,
                    problem_id,
                    owner,
                    guardrail_status,
                    domain,
                },
            }
        }
    };
    let mission_id = Uuid::now_v7();
    crate::command::execute_new::<Mission, _>(
        &platform,
        Actor::Agent(agent.agent_id),
        mission_id,
        MissionCommand::Create {
            mission_id,
            agent_id: agent.agent_id,
            solution: parent,
            spec: Box::new(spec),
            at: Utc::now(),
        },
        &body,
        accepted(mission_id),
    )
    .await
}

/// Query of `GET /missions` and `GET /missions/nearby`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MarketQuery {
    /// One of the 15 domains.
    domain: Option<String>,
    /// Comma-separated; missions needing all of them.
    skills: Option<String>,
    difficulty: Option<String>,
    min_reward: Option<String>,
    max_reward: Option<String>,
    /// Minutes.
    max_duration: Option<String>,
    lat: Option<String>,
    lng: Option<String>,
    /// 1–200 km, default 25 (`GET /missions`); `radius` on `/missions/nearby`.
    radius_km: Option<String>,
    radius: Option<String>,
    /// `createdAt` (default), `tokenReward`, `distance` (needs `lat`/`lng`).
    sort: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

fn number<T: std::str::FromStr>(f: &mut Fields, name: &str, raw: Option<&str>) -> Option<T> {
    raw.and_then(|r| {
        r.parse().ok().or_else(|| {
            f.error(name, "must be a number");
            None
        })
    })
}

/// Parses the marketplace query; `nearby` makes the point required and sorts by distance.
fn parse_market(
    query: &MarketQuery,
    nearby: bool,
) -> Result<(MissionFilter, i64, Option<MissionCursor>), ApiError> {
    let mut f = Fields::default();
    let domain = f.optional(query.domain.as_deref(), str::parse::<ProblemDomain>);
    let difficulty = query.difficulty.as_deref().and_then(|d| {
        Difficulty::parse(d).or_else(|| {
            f.error(
                "difficulty",
                "one of beginner, intermediate, advanced, expert",
            );
            None
        })
    });
    let skills: Vec<String> = query
        .skills
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let min_reward = number::<i32>(&mut f, "minReward", query.min_reward.as_deref());
    let max_reward = number::<i32>(&mut f, "maxReward", query.max_reward.as_deref());
    let max_duration = number::<i32>(&mut f, "maxDuration", query.max_duration.as_deref());
    let lat = number::<f64>(&mut f, "lat", query.lat.as_deref());
    let lng = number::<f64>(&mut f, "lng", query.lng.as_deref());
    let (radius_name, radius_raw) = if nearby {
        (
            "radius",
            query.radius.as_deref().or(query.radius_km.as_deref()),
        )
    } else {
        ("radiusKm", query.radius_km.as_deref())
    };
    let radius = number::<f64>(&mut f, radius_name, radius_raw).unwrap_or(25.0);
    if !(1.0..=200.0).contains(&radius) {
        f.error(radius_name, "1–200 km");
    }
    let near = match (lat, lng) {
        (Some(lat), Some(lng)) => f.check(GeoPoint::parse(lat, lng)).map(|p| Near {
            latitude: p.latitude,
            longitude: p.longitude,
            radius_km: radius,
        }),
        (None, None) if nearby => {
            f.error("lat", "lat and lng are required");
            None
        }
        (None, None) => None,
        _ => {
            f.error("lat", "lat and lng go together");
            None
        }
    };
    let sort = match (query.sort.as_deref(), nearby) {
        (_, true) | (Some("distance"), false) => {
            if near.is_none() && !nearby {
                f.error("sort", "sort=distance needs lat and lng");
            }
            MissionSort::Distance
        }
        (None | Some("createdAt"), false) => MissionSort::Recent,
        (Some("tokenReward"), false) => MissionSort::Reward,
        (Some(_), false) => {
            f.error("sort", "one of createdAt, tokenReward, distance");
            MissionSort::Recent
        }
    };
    let limit = super::page_limit(&mut f, query.limit.as_deref());
    f.finish()?;
    let cursor = super::cursor(query.cursor.as_deref(), MissionCursor::decode)?;
    Ok((
        MissionFilter {
            domain: domain.map(|d| d.as_str().to_owned()),
            skills,
            difficulty: difficulty.map(|d| d.as_str().to_owned()),
            min_reward,
            max_reward,
            max_duration,
            near,
            sort,
        },
        limit,
        cursor,
    ))
}

async fn list(
    platform: &crate::state::Platform,
    min: MinPosition,
    query: &MarketQuery,
    nearby: bool,
) -> Result<ApiOk<Vec<MissionView>>, ApiError> {
    let (filter, limit, cursor) = parse_market(query, nearby)?;
    min.wait(platform, &Missions).await?;
    let (rows, next) =
        missions::marketplace(&platform.pool, &filter, cursor, limit, Utc::now()).await?;
    let rows: Vec<MissionView> = rows.into_iter().map(MissionView::snapped).collect();
    let meta = super::page_meta(next.map(|c| c.encode()), rows.len());
    Ok(ApiOk::new(rows).with_meta(meta))
}

#[utoipa::path(
    get,
    path = "/api/v1/missions",
    tag = "missions",
    params(
        MarketQuery,
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the missions read model has applied this position"
        )
    ),
    responses(
        (
            status = 200,
            description = "Approved missions that take claims; coordinates rounded to ~1 km; `distanceKm` with a point",
            body = crate::schema::Ok<Vec<MissionView>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn marketplace(
    Api(platform): Api,
    _caller: Caller,
    min: MinPosition,
    Query(query): Query<MarketQuery>,
) -> Result<ApiOk<Vec<MissionView>>, ApiError> {
    list(&platform, min, &query, false).await
}

#[utoipa::path(
    get,
    path = "/api/v1/missions/nearby",
    tag = "missions",
    params(
        MarketQuery,
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the missions read model has applied this position"
        )
    ),
    responses(
        (
            status = 200,
            description = "Missions within `radius` km (default 25) of `lat`/`lng`, nearest first",
            body = crate::schema::Ok<Vec<MissionView>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn nearby(
    Api(platform): Api,
    _caller: Caller,
    min: MinPosition,
    Query(query): Query<MarketQuery>,
) -> Result<ApiOk<Vec<MissionView>>, ApiError> {
    list(&platform, min, &query, true).await
}

#[utoipa::path(
    get,
    path = "/api/v1/missions/{id}",
    tag = "missions",
    params(
        ("id" = Uuid, Path),
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the missions read model has applied this position"
        )
    ),
    responses(
        (
            status = 200,
            description = "The mission; exact coordinates for its claimants and its agent, rounded otherwise; `myClaim` for a human who claimed it",
            body = crate::schema::Ok<Object>
        ),
        (
            status = "4XX",
            description = "Error envelope (404 unless approved, except for its agent)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn mission(
    Api(platform): Api,
    caller: Caller,
    min: MinPosition,
    Path(id): Path<String>,
) -> Result<ApiOk<Value>, ApiError> {
    let mission_id = parse_path_id(&id)?;
    min.wait(&platform, &Missions).await?;
    let found = missions::get(&platform.pool, mission_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let owner = matches!(caller, Caller::Agent(a) if a.agent_id == found.agent_id);
    if !owner && found.guardrail_status != "approved" {
        return Err(ApiError::NotFound);
    }
    let my_claim = match caller {
        Caller::Human(h) => missions::claim_of(&platform.pool, mission_id, h.human_id).await?,
        _ => None,
    };
    let exact = owner || my_claim.as_ref().is_some_and(|c| c.status == "active");
    let view = if exact { found } else { found.snapped() };
    let mut body = serde_json::to_value(view).unwrap_or_default();
    body["myClaim"] = serde_json::to_value(my_claim).unwrap_or_default();
    Ok(ApiOk::new(body))
}

/// Query of the lists that page by recency only.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/missions/agent",
    tag = "missions",
    params(
        PageQuery,
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the missions read model has applied this position"
        )
    ),
    security(("agent_key" = [])),
    responses(
        (
            status = 200,
            description = "The calling agent's missions in every state, newest first, exact coordinates",
            body = crate::schema::Ok<Vec<MissionView>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn agent_missions(
    Api(platform): Api,
    agent: AgentAuth,
    min: MinPosition,
    Query(query): Query<PageQuery>,
) -> Result<ApiOk<Vec<MissionView>>, ApiError> {
    let mut f = Fields::default();
    let limit = super::page_limit(&mut f, query.limit.as_deref());
    f.finish()?;
    let cursor = super::cursor(query.cursor.as_deref(), MissionCursor::decode)?;
    min.wait(&platform, &Missions).await?;
    let (rows, next) = missions::by_agent(&platform.pool, agent.agent_id, cursor, limit).await?;
    let meta = super::page_meta(next.map(|c| c.encode()), rows.len());
    Ok(ApiOk::new(rows).with_meta(meta))
}

#[utoipa::path(
    get,
    path = "/api/v1/missions/mine",
    tag = "missions",
    params(
        ("limit" = Option<u32>, Query, description = "1–100, default 20"),
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the missions read model has applied this position"
        )
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "The caller's claims, newest first, each with its mission (exact coordinates)",
            body = crate::schema::Ok<Vec<Object>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn mine(
    Api(platform): Api,
    human: HumanAuth,
    min: MinPosition,
    Query(query): Query<PageQuery>,
) -> Result<ApiOk<Vec<Value>>, ApiError> {
    let mut f = Fields::default();
    let limit = super::page_limit(&mut f, query.limit.as_deref());
    if query.cursor.is_some() {
        f.error("cursor", "this list is not paged; use limit");
    }
    f.finish()?;
    min.wait(&platform, &Missions).await?;
    let rows = missions::claims_of(&platform.pool, human.human_id, limit).await?;
    let rows = rows
        .into_iter()
        .map(|(claim, mission): (ClaimView, MissionView)| {
            json!({ "claim": claim, "mission": mission })
        })
        .collect();
    Ok(ApiOk::new(rows))
}

/// `PATCH /missions/{id}`: absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EditRequest {
    title: Option<String>,
    description: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    instructions: Option<Vec<Step>>,
    #[schema(value_type = Option<Vec<Object>>)]
    evidence_required: Option<Vec<EvidenceRequirement>>,
    required_skills: Option<Vec<String>>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/missions/{id}",
    tag = "missions",
    request_body = EditRequest,
    params(
        ("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat a command safely")
    ),
    security(("agent_key" = [])),
    responses(
        (
            status = 202,
            description = "Edited; awaiting the guardrail again",
            body = crate::schema::Ok<Object>
        ),
        (
            status = "4XX",
            description = "Error envelope (409 while claims are active)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn edit(
    Api(platform): Api,
    agent: AgentAuth,
    Path(id): Path<String>,
    body: CommandBody<EditRequest>,
) -> Result<CommandResponse, ApiError> {
    let mission_id = parse_path_id(&id)?;
    let r = &body.body;
    let changes = MissionTextChanges {
        title: r.title.as_deref().map(|t| t.trim().to_owned()),
        description: r.description.as_deref().map(|d| d.trim().to_owned()),
        instructions: r.instructions.clone(),
        evidence_required: r.evidence_required.clone(),
        required_skills: r.required_skills.clone(),
    };
    crate::command::execute::<Mission, _>(
        &platform,
        Actor::Agent(agent.agent_id),
        mission_id,
        MissionCommand::Edit {
            agent_id: agent.agent_id,
            changes: Box::new(changes),
            at: Utc::now(),
        },
        &body,
        move |position| StoredResponse {
            status: 202,
            body: json!({ "missionId": mission_id, "guardrailStatus": "pending" }),
            position,
        },
    )
    .await
}

#[utoipa::path(
    delete,
    path = "/api/v1/missions/{id}",
    tag = "missions",
    params(
        ("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat a command safely")
    ),
    security(("agent_key" = [])),
    responses(
        (status = 202, description = "Archived", body = crate::schema::Ok<Object>),
        (
            status = "4XX",
            description = "Error envelope (409 while claims are active)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn archive(
    Api(platform): Api,
    agent: AgentAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<CommandResponse, ApiError> {
    let mission_id = parse_path_id(&id)?;
    let ctx = context_without_body(
        &headers,
        "DELETE",
        &format!("/api/v1/missions/{mission_id}"),
        Actor::Agent(agent.agent_id),
    )?;
    on_mission(
        &platform,
        mission_id,
        MissionCommand::Archive {
            agent_id: agent.agent_id,
            at: Utc::now(),
        },
        &ctx,
        None,
        move |position| StoredResponse {
            status: 202,
            body: json!({ "missionId": mission_id, "status": "archived" }),
            position,
        },
    )
    .await
}

/// Runs `command` on the mission's stream under its lock (claims are decided one at a time).
async fn on_mission(
    platform: &crate::state::Platform,
    mission_id: Uuid,
    command: MissionCommand,
    ctx: &bw_commands::CommandContext,
    side: Option<SideWrites>,
    respond: impl FnOnce(Option<i64>) -> StoredResponse,
) -> Result<CommandResponse, ApiError> {
    let outcome = platform
        .bus
        .execute_serialized_with::<Mission>(&mission_id.to_string(), command, ctx, side, respond)
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

#[utoipa::path(
    post,
    path = "/api/v1/missions/{id}/claim",
    tag = "missions",
    params(
        ("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat a command safely")
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 201,
            description = "Claimed; deadline 7 days from now",
            body = crate::schema::Ok<Object>
        ),
        (
            status = 403,
            description = "FORBIDDEN: 3 active claims already",
            body = crate::schema::ErrorEnvelope
        ),
        (
            status = 409,
            description = "ALREADY_CLAIMED (no slot left) or CONFLICT (you hold a claim on it; expired; archived)",
            body = crate::schema::ErrorEnvelope
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn claim(
    Api(platform): Api,
    human: HumanAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<CommandResponse, ApiError> {
    let mission_id = parse_path_id(&id)?;
    let ctx = context_without_body(
        &headers,
        "POST",
        &format!("/api/v1/missions/{mission_id}/claim"),
        Actor::Human(human.human_id),
    )?;
    let claim_id = Uuid::now_v7();
    let at = Utc::now();
    let deadline = at + bw_domain::mission::CLAIM_DEADLINE;
    on_mission(
        &platform,
        mission_id,
        MissionCommand::Claim {
            claim_id,
            human_id: human.human_id,
            at,
        },
        &ctx,
        Some(reserve_claim(claim_id, human.human_id, mission_id, at)),
        move |position| StoredResponse {
            status: 201,
            body: json!({
                "claimId": claim_id, "missionId": mission_id, "status": "active",
                "claimedAt": at, "deadlineAt": deadline
            }),
            position,
        },
    )
    .await
}

/// `PATCH /missions/{id}/claims/{claimId}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimUpdateRequest {
    /// 0–100; not with `abandon`.
    progress_percent: Option<u8>,
    /// At most 5,000 characters.
    notes: Option<String>,
    /// `true` gives the mission up.
    #[serde(default)]
    abandon: bool,
}

#[utoipa::path(
    patch,
    path = "/api/v1/missions/{id}/claims/{claimId}",
    tag = "missions",
    request_body = ClaimUpdateRequest,
    params(
        ("id" = Uuid, Path),
        ("claimId" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat a command safely")
    ),
    security(("human_token" = [])),
    responses(
        (status = 200, description = "Updated or abandoned", body = crate::schema::Ok<Object>),
        (
            status = "4XX",
            description = "Error envelope (403 not your claim; 409 no longer active or past its deadline)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn update_claim(
    Api(platform): Api,
    human: HumanAuth,
    Path((id, claim)): Path<(String, String)>,
    body: CommandBody<ClaimUpdateRequest>,
) -> Result<CommandResponse, ApiError> {
    let mission_id = parse_path_id(&id)?;
    let claim_id = parse_path_id(&claim)?;
    let r = &body.body;
    let update = if r.abandon {
        if r.progress_percent.is_some() {
            return Err(ApiError::field(
                "abandon",
                "abandon cannot be combined with progressPercent",
            ));
        }
        ClaimUpdate::Abandon {
            notes: r.notes.clone(),
        }
    } else {
        ClaimUpdate::Progress {
            progress_percent: r.progress_percent,
            notes: r.notes.clone(),
        }
    };
    let abandoning = r.abandon;
    let ctx = body.context(Actor::Human(human.human_id));
    on_mission(
        &platform,
        mission_id,
        MissionCommand::UpdateClaim {
            claim_id,
            human_id: human.human_id,
            update,
            at: Utc::now(),
        },
        &ctx,
        abandoning.then(|| release_ended_claims(mission_id)),
        move |position| StoredResponse {
            status: 200,
            body: json!({
                "claimId": claim_id, "missionId": mission_id,
                "status": if abandoning { "abandoned" } else { "active" }
            }),
            position,
        },
    )
    .await
}

/// `POST /admin/missions/{id}/cancel`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// 10–2,000 characters: why (the agent and the claimants see the mission cancelled).
    reason: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/missions/{id}/cancel",
    tag = "admin",
    request_body = CancelRequest,
    params(
        ("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat safely")
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "Cancelled; its active claims are released",
            body = crate::schema::Ok<Object>
        ),
        (
            status = "4XX",
            description = "Error envelope (409 not open or claimed)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn cancel(
    Api(platform): Api,
    admin: crate::auth::AdminAuth,
    Path(id): Path<String>,
    body: CommandBody<CancelRequest>,
) -> Result<CommandResponse, ApiError> {
    let mission_id = parse_path_id(&id)?;
    let admin_id = admin.0.human_id;
    let ctx = body.context(Actor::Human(admin_id));
    on_mission(
        &platform,
        mission_id,
        MissionCommand::Cancel {
            admin_id,
            reason: body.body.reason.clone(),
            at: Utc::now(),
        },
        &ctx,
        Some(release_ended_claims(mission_id)),
        move |position| StoredResponse {
            status: 200,
            body: json!({ "missionId": mission_id, "status": "cancelled" }),
            position,
        },
    )
    .await
}

/// The OpenAPI paths of this module.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(
    create,
    marketplace,
    nearby,
    mission,
    agent_missions,
    mine,
    edit,
    archive,
    claim,
    update_claim,
    cancel
))]
pub struct MissionsApi;
