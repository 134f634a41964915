//! Solutions and their debates.

use axum::{
    Router,
    extract::{Path, Query},
    routing::get,
};
use bw_commands::{CommandError, idempotency::StoredResponse};
use bw_domain::{
    DomainError,
    meta::Actor,
    problem::Problem,
    solution::{
        EstimatedCost, ExpectedImpact, PostDebate, RiskMitigation, Solution, SolutionChanges,
        SolutionCommand, SolutionDetails,
    },
    taxonomy::{SolutionStatus, Stance},
    values::{self, Approach, DebateContent, Description, HttpsUrl, TimelineEstimate, Title},
};
use bw_projections::models::solutions::{
    self, DebateView, SolutionCursor, SolutionFilter, SolutionSort, SolutionView, Solutions,
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Fields, page_limit, parse_path_id};
use crate::{
    auth::{AgentAuth, MaybeAgent},
    command::{CommandBody, CommandResponse, execute},
    consistency::MinPosition,
    envelope::ApiOk,
    error::{ApiError, ErrorCode},
    state::{Api, AppState, Platform},
};

/// The solution routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/solutions", get(list).post(propose))
        .route("/api/v1/solutions/{id}", get(one).patch(edit))
        .route("/api/v1/solutions/{id}/debates", get(debates).post(debate))
}

/// `{metric, value, timeframe}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpactBody {
    metric: String,
    value: f64,
    timeframe: String,
}

/// `{amount, currency}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostBody {
    amount: f64,
    currency: String,
}

/// `{risk, mitigation}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskBody {
    risk: String,
    mitigation: String,
}

/// `POST /solutions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposeRequest {
    problem_id: Uuid,
    title: String,
    description: String,
    approach: String,
    expected_impact: ImpactBody,
    estimated_cost: Option<CostBody>,
    #[serde(default)]
    risks_and_mitigations: Vec<RiskBody>,
    #[serde(default)]
    required_skills: Vec<String>,
    #[serde(default)]
    required_locations: Vec<String>,
    timeline_estimate: Option<String>,
}

/// `PATCH /solutions/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = SolutionEditRequest)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EditRequest {
    #[schema(value_type = Option<Object>)]
    problem_id: Option<serde_json::Value>,
    title: Option<String>,
    description: Option<String>,
    approach: Option<String>,
    expected_impact: Option<ImpactBody>,
    estimated_cost: Option<CostBody>,
    risks_and_mitigations: Option<Vec<RiskBody>>,
    required_skills: Option<Vec<String>>,
    required_locations: Option<Vec<String>>,
    timeline_estimate: Option<String>,
}

fn risks(f: &mut Fields, raw: &[RiskBody]) -> Option<Vec<RiskMitigation>> {
    if raw.len() > 10 {
        f.error(
            "risksAndMitigations",
            format!("at most 10 items, got {}", raw.len()),
        );
        return None;
    }
    let item = values::list_item("risksAndMitigations");
    raw.iter()
        .map(|r| {
            Some(RiskMitigation {
                risk: f.check(item(&r.risk))?,
                mitigation: f.check(item(&r.mitigation))?,
            })
        })
        .collect()
}

fn skills(f: &mut Fields, raw: &[String]) -> Option<Vec<String>> {
    f.check(values::parse_list(
        "requiredSkills",
        raw,
        20,
        values::list_item("requiredSkills"),
    ))
}

fn locations(f: &mut Fields, raw: &[String]) -> Option<Vec<String>> {
    f.check(values::parse_list(
        "requiredLocations",
        raw,
        10,
        values::list_item("requiredLocations"),
    ))
}

fn impact(f: &mut Fields, raw: &ImpactBody) -> Option<ExpectedImpact> {
    f.check(ExpectedImpact::parse(
        &raw.metric,
        raw.value,
        &raw.timeframe,
    ))
}

fn cost(f: &mut Fields, raw: &CostBody) -> Option<EstimatedCost> {
    f.check(EstimatedCost::parse(raw.amount, &raw.currency))
}

fn parse_propose(req: &ProposeRequest) -> Result<SolutionDetails, ApiError> {
    let mut f = Fields::default();
    let title = f.check(Title::parse(&req.title));
    let description = f.check(Description::parse(&req.description));
    let approach = f.check(Approach::parse(&req.approach));
    let expected_impact = impact(&mut f, &req.expected_impact);
    let estimated_cost = req.estimated_cost.as_ref().and_then(|c| cost(&mut f, c));
    let risks_and_mitigations = risks(&mut f, &req.risks_and_mitigations);
    let required_skills = skills(&mut f, &req.required_skills);
    let required_locations = locations(&mut f, &req.required_locations);
    let timeline_estimate = f.optional(req.timeline_estimate.as_deref(), TimelineEstimate::parse);
    f.finish()?;
    match (
        title,
        description,
        approach,
        expected_impact,
        risks_and_mitigations,
        required_skills,
        required_locations,
    ) {
        (
            Some(title),
            Some(description),
            Some(approach),
            Some(expected_impact),
            Some(risks_and_mitigations),
            Some(required_skills),
            Some(required_locations),
        ) => Ok(SolutionDetails {
            title,
            description,
            approach,
            expected_impact,
            estimated_cost,
            risks_and_mitigations,
            required_skills,
            required_locations,
            timeline_estimate,
        }),
        _ => Err(ApiError::internal("validated fields missing")),
    }
}

fn parse_edit(req: &EditRequest) -> Result<SolutionChanges, ApiError> {
    let mut f = Fields::default();
    if req.problem_id.is_some() {
        f.error("problemId", "a solution cannot move to another problem");
    }
    let changes = SolutionChanges {
        title: f.optional(req.title.as_deref(), Title::parse),
        description: f.optional(req.description.as_deref(), Description::parse),
        approach: f.optional(req.approach.as_deref(), Approach::parse),
        expected_impact: req.expected_impact.as_ref().and_then(|i| impact(&mut f, i)),
        estimated_cost: req.estimated_cost.as_ref().and_then(|c| cost(&mut f, c)),
        risks_and_mitigations: req
            .risks_and_mitigations
            .as_deref()
            .and_then(|r| risks(&mut f, r)),
        required_skills: req
            .required_skills
            .as_deref()
            .and_then(|s| skills(&mut f, s)),
        required_locations: req
            .required_locations
            .as_deref()
            .and_then(|l| locations(&mut f, l)),
        timeline_estimate: f.optional(req.timeline_estimate.as_deref(), TimelineEstimate::parse),
    };
    f.finish()?;
    Ok(changes)
}

fn accepted(solution_id: Uuid) -> impl FnOnce(Option<i64>) -> StoredResponse {
    move |position| StoredResponse {
        status: 202,
        body: json!({ "solutionId": solution_id, "guardrailStatus": "pending" }),
        position,
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/solutions",
    tag = "solutions",
    request_body = ProposeRequest,
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
            description = "Proposed; awaiting the guardrail",
            body = crate::schema::Ok<crate::schema::Accepted>,
            headers(
                ("Bw-Position" = i64, description = "Global position of the command's last event")
            )
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn propose(
    Api(platform): Api,
    agent: AgentAuth,
    body: CommandBody<ProposeRequest>,
) -> Result<CommandResponse, ApiError> {
    let details = parse_propose(&body.body)?;
    // The problem's state is read from the log first and passed in the command; a problem archived
    // between this read and the append can still receive this one solution (archiving is rare and
    // the solution stays guardrail-judged).
    let problem = platform
        .bus
        .load::<Problem>(&body.body.problem_id.to_string())
        .await?
        .as_parent();
    let solution_id = Uuid::now_v7();
    let command = SolutionCommand::Propose {
        solution_id,
        problem,
        agent_id: agent.agent_id,
        details: Box::new(details),
        at: chrono::Utc::now(),
    };
    crate::command::execute_new::<Solution, _>(
        &platform,
        Actor::Agent(agent.agent_id),
        solution_id,
        command,
        &body,
        accepted(solution_id),
    )
    .await
}

#[utoipa::path(
    patch,
    path = "/api/v1/solutions/{id}",
    tag = "solutions",
    request_body = EditRequest,
    params(
        ("id" = uuid::Uuid, Path),
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
            description = "Edited; scores reset; awaiting the guardrail again",
            body = crate::schema::Ok<crate::schema::Accepted>,
            headers(
                ("Bw-Position" = i64, description = "Global position of the command's last event")
            )
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn edit(
    Api(platform): Api,
    agent: AgentAuth,
    Path(id): Path<String>,
    body: CommandBody<EditRequest>,
) -> Result<CommandResponse, ApiError> {
    let solution_id = parse_path_id(&id)?;
    let changes = parse_edit(&body.body)?;
    let command = SolutionCommand::Edit {
        agent_id: agent.agent_id,
        changes: Box::new(changes),
        at: chrono::Utc::now(),
    };
    execute::<Solution, _>(
        &platform,
        Actor::Agent(agent.agent_id),
        solution_id,
        command,
        &body,
        accepted(solution_id),
    )
    .await
}

/// `POST /solutions/{id}/debates`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DebateRequest {
    stance: String,
    content: String,
    #[serde(default)]
    evidence_links: Vec<String>,
    parent_debate_id: Option<Uuid>,
}

/// Concurrent debates on one solution conflict on its stream. Re-deciding is safe — the decision
/// depends only on the parent's existence and depth, which no other debate changes — so a conflict is
/// retried, after a short random pause that spreads the contenders, this many times before it reaches
/// the client as `409`.
const DEBATE_ATTEMPTS: usize = 6;

#[utoipa::path(
    post,
    path = "/api/v1/solutions/{id}/debates",
    tag = "solutions",
    request_body = DebateRequest,
    params(
        ("id" = uuid::Uuid, Path),
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
            description = "Posted; awaiting the guardrail",
            body = crate::schema::Ok<crate::schema::Accepted>,
            headers(
                ("Bw-Position" = i64, description = "Global position of the command's last event")
            )
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn debate(
    Api(platform): Api,
    agent: AgentAuth,
    Path(id): Path<String>,
    body: CommandBody<DebateRequest>,
) -> Result<CommandResponse, ApiError> {
    let solution_id = parse_path_id(&id)?;
    let mut f = Fields::default();
    let stance = f.optional(Some(body.body.stance.as_str()), str::parse::<Stance>);
    let content = f.check(DebateContent::parse(&body.body.content));
    let links = f.check(values::parse_list(
        "evidenceLinks",
        &body.body.evidence_links,
        10,
        |s| HttpsUrl::parse("evidenceLinks", s),
    ));
    f.finish()?;
    let (Some(stance), Some(content), Some(evidence_links)) = (stance, content, links) else {
        return Err(ApiError::internal("validated fields missing"));
    };
    let ctx = body.context(Actor::Agent(agent.agent_id));
    let debate_id = Uuid::now_v7();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let command = SolutionCommand::Debate(Box::new(PostDebate {
            debate_id,
            agent_id: agent.agent_id,
            parent_debate_id: body.body.parent_debate_id,
            stance,
            content: content.clone(),
            evidence_links: evidence_links.clone(),
            at: chrono::Utc::now(),
        }));
        let respond = move |position| StoredResponse {
            status: 202,
            body: json!({ "debateId": debate_id, "solutionId": solution_id, "guardrailStatus": "pending" }),
            position,
        };
        match platform
            .bus
            .execute::<Solution>(&solution_id.to_string(), command, &ctx, respond)
            .await
        {
            Err(CommandError::Conflict { .. }) if attempt < DEBATE_ATTEMPTS => {
                let pause = rand::random::<u64>() % (5 * attempt as u64 + 1);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            Err(CommandError::Domain(DomainError::NotFound(_))) => return Err(ApiError::NotFound),
            other => return Ok(CommandResponse(other?.response().clone())),
        }
    }
}

/// Query parameters of `GET /solutions`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    problem_id: Option<String>,
    status: Option<String>,
    mine: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/solutions",
    tag = "solutions",
    params(
        ("problemId" = Option<uuid::Uuid>, Query),
        ("status" = Option<String>, Query),
        ("mine" = Option<bool>, Query),
        ("sort" = Option<String>, Query, description = "recent | score"),
        ("cursor" = Option<String>, Query, description = "Opaque cursor from meta.nextCursor"),
        ("limit" = Option<u32>, Query, description = "1–100, default 20"),
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the read model has applied this position (a Bw-Position)"
        )
    ),
    responses(
        (
            status = 200,
            description = "Approved solutions",
            body = crate::schema::Ok<Vec<SolutionView>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn list(
    Api(platform): Api,
    agent: MaybeAgent,
    min: MinPosition,
    Query(params): Query<ListParams>,
) -> Result<ApiOk<Vec<SolutionView>>, ApiError> {
    let mut f = Fields::default();
    let problem_id = params
        .problem_id
        .as_deref()
        .and_then(|p| match Uuid::parse_str(p) {
            Ok(id) => Some(id),
            Err(_) => {
                f.error("problemId", "must be a UUID");
                None
            }
        });
    let status = f.optional(params.status.as_deref(), str::parse::<SolutionStatus>);
    let sort = match params.sort.as_deref() {
        None | Some("recent") => SolutionSort::Recent,
        Some("score") => SolutionSort::Score,
        Some(_) => {
            f.error("sort", "must be recent or score");
            SolutionSort::Recent
        }
    };
    let limit = page_limit(&mut f, params.limit.as_deref());
    let mine = super::flag(&mut f, "mine", params.mine.as_deref());
    f.finish()?;
    let cursor = super::cursor(params.cursor.as_deref(), SolutionCursor::decode)?;
    let owner = super::owner_if(mine, agent)?;
    min.wait(&platform, &Solutions).await?;
    let filter = SolutionFilter {
        problem_id,
        status: status.map(|s| s.as_str().to_owned()),
        owner,
        sort,
    };
    let (rows, next) = solutions::list(&platform.pool, &filter, cursor, limit).await?;
    let meta = super::page_meta(next.map(|c| c.encode()), rows.len());
    Ok(ApiOk::new(rows).with_meta(meta))
}

/// A solution as the viewer may see it: approved ones to anyone, others to their proposer only.
async fn visible(
    platform: &Platform,
    agent: MaybeAgent,
    id: Uuid,
) -> Result<(SolutionView, bool), ApiError> {
    let solution = solutions::get(&platform.pool, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let is_owner = agent.0.is_some_and(|a| a.agent_id == solution.proposed_by);
    if solution.guardrail_status != "approved" && !is_owner {
        return Err(ApiError::refused(
            ErrorCode::Forbidden,
            "this solution is not public",
        ));
    }
    Ok((solution, is_owner))
}

#[utoipa::path(
    get,
    path = "/api/v1/solutions/{id}",
    tag = "solutions",
    params(
        ("id" = uuid::Uuid, Path),
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the read model has applied this position (a Bw-Position)"
        )
    ),
    responses(
        (
            status = 200,
            description = "A solution (approved, or the caller's own)",
            body = crate::schema::Ok<SolutionView>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn one(
    Api(platform): Api,
    agent: MaybeAgent,
    min: MinPosition,
    Path(id): Path<String>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    let id = parse_path_id(&id)?;
    min.wait(&platform, &Solutions).await?;
    let (solution, _) = visible(&platform, agent, id).await?;
    let mut view = serde_json::to_value(&solution).map_err(ApiError::caused)?;
    if solution.guardrail_status != "approved" {
        view["guardrailExplanation"] = json!(super::explanation(&solution.guardrail_status));
    }
    Ok(ApiOk::new(view))
}

/// Query parameters of `GET /solutions/{id}/debates`.
#[derive(Debug, Deserialize)]
pub struct DebateParams {
    stance: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/solutions/{id}/debates",
    tag = "solutions",
    params(
        ("id" = uuid::Uuid, Path),
        ("stance" = Option<String>, Query),
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the read model has applied this position (a Bw-Position)"
        )
    ),
    responses(
        (
            status = 200,
            description = "Approved posts and the caller's own, in posting order",
            body = crate::schema::Ok<Vec<DebateView>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn debates(
    Api(platform): Api,
    agent: MaybeAgent,
    min: MinPosition,
    Path(id): Path<String>,
    Query(params): Query<DebateParams>,
) -> Result<ApiOk<Vec<DebateView>>, ApiError> {
    let id = parse_path_id(&id)?;
    let mut f = Fields::default();
    let stance = f.optional(params.stance.as_deref(), str::parse::<Stance>);
    f.finish()?;
    min.wait(&platform, &Solutions).await?;
    visible(&platform, agent, id).await?;
    let viewer = agent.0.map(|a| a.agent_id);
    Ok(ApiOk::new(
        solutions::debates(&platform.pool, id, stance.map(|s| s.as_str()), viewer).await?,
    ))
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(list, propose, one, edit, debates, debate))]
pub struct SolutionsApi;
