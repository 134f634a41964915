//! Problems: report, edit, the feed, one problem.

use axum::{
    Router,
    extract::{Path, Query},
    routing::get,
};
use bw_commands::idempotency::StoredResponse;
use bw_domain::{
    meta::Actor,
    problem::{Problem, ProblemChanges, ProblemCommand, ProblemDetails},
    taxonomy::{GeographicScope, ProblemDomain, ProblemStatus, Severity},
    values::{
        self, Description, GeoPoint, HttpsUrl, Language, LocationName, PopulationEstimate, Title,
    },
};
use bw_projections::models::problems::{self, Cursor, FeedFilter, ProblemView};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Fields, parse_path_id};
use crate::{
    auth::{AgentAuth, MaybeAgent},
    command::{CommandBody, CommandResponse},
    consistency::MinPosition,
    envelope::ApiOk,
    error::{ApiError, ErrorCode},
    state::{Api, AppState},
};

/// The problem routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/problems", get(list).post(report))
        .route(
            "/api/v1/problems/{id}",
            get(one).patch(edit).delete(archive),
        )
}

/// `POST /problems`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReportRequest {
    title: String,
    description: String,
    domain: String,
    severity: String,
    affected_population_estimate: Option<String>,
    geographic_scope: Option<String>,
    location_name: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    #[serde(default)]
    existing_solutions: Vec<String>,
    #[serde(default)]
    data_sources: Vec<String>,
    #[serde(default)]
    evidence_links: Vec<String>,
    /// BCP 47 tag of the title's and description's language (default `en`).
    language: Option<String>,
}

/// `PATCH /problems/{id}`: every field optional; the domain cannot change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ProblemEditRequest)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EditRequest {
    #[schema(value_type = Option<Object>)]
    domain: Option<serde_json::Value>,
    title: Option<String>,
    description: Option<String>,
    severity: Option<String>,
    affected_population_estimate: Option<String>,
    geographic_scope: Option<String>,
    location_name: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    existing_solutions: Option<Vec<String>>,
    data_sources: Option<Vec<String>>,
    evidence_links: Option<Vec<String>>,
}

fn location(
    fields: &mut Fields,
    latitude: Option<f64>,
    longitude: Option<f64>,
) -> Option<GeoPoint> {
    match (latitude, longitude) {
        (Some(lat), Some(lng)) => fields.check(GeoPoint::parse(lat, lng)),
        (None, None) => None,
        _ => {
            fields.error("latitude", "latitude and longitude go together");
            None
        }
    }
}

fn links(fields: &mut Fields, raw: &[String]) -> Option<Vec<HttpsUrl>> {
    fields.check(values::parse_list("evidenceLinks", raw, 20, |s| {
        HttpsUrl::parse("evidenceLinks", s)
    }))
}

fn texts(fields: &mut Fields, field: &'static str, raw: &[String]) -> Option<Vec<String>> {
    fields.check(values::parse_list(field, raw, 20, values::list_item(field)))
}

fn parse_report(req: &ReportRequest) -> Result<ProblemDetails, ApiError> {
    let mut f = Fields::default();
    let title = f.check(Title::parse(&req.title));
    let description = f.check(Description::parse(&req.description));
    let domain = f.check(req.domain.parse::<ProblemDomain>());
    let severity = f.check(req.severity.parse::<Severity>());
    let affected_population_estimate = f.optional(
        req.affected_population_estimate.as_deref(),
        PopulationEstimate::parse,
    );
    let geographic_scope = f.optional(
        req.geographic_scope.as_deref(),
        str::parse::<GeographicScope>,
    );
    let location_name = f.optional(req.location_name.as_deref(), LocationName::parse);
    let location = location(&mut f, req.latitude, req.longitude);
    let existing_solutions = texts(&mut f, "existingSolutions", &req.existing_solutions);
    let data_sources = texts(&mut f, "dataSources", &req.data_sources);
    let evidence_links = links(&mut f, &req.evidence_links);
    let language = match req.language.as_deref() {
        None => Some(Language::english()),
        Some(raw) => f.check(Language::parse(raw)),
    };
    f.finish()?;
    match (
        title,
        description,
        domain,
        severity,
        existing_solutions,
        data_sources,
        evidence_links,
    ) {
        (
            Some(title),
            Some(description),
            Some(domain),
            Some(severity),
            Some(existing_solutions),
            Some(data_sources),
            Some(evidence_links),
        ) => Ok(ProblemDetails {
            title,
            description,
            domain,
            severity,
            affected_population_estimate,
            geographic_scope,
            location_name,
            location,
            existing_solutions,
            data_sources,
            evidence_links,
            language: language.unwrap_or_else(Language::english),
        }),
        _ => Err(ApiError::internal("validated fields missing")),
    }
}

fn parse_edit(req: &EditRequest) -> Result<ProblemChanges, ApiError> {
    let mut f = Fields::default();
    if req.domain.is_some() {
        f.error("domain", "the domain of a problem cannot be changed");
    }
    let changes = ProblemChanges {
        title: f.optional(req.title.as_deref(), Title::parse),
        description: f.optional(req.description.as_deref(), Description::parse),
        severity: f.optional(req.severity.as_deref(), str::parse::<Severity>),
        affected_population_estimate: f.optional(
            req.affected_population_estimate.as_deref(),
            PopulationEstimate::parse,
        ),
        geographic_scope: f.optional(
            req.geographic_scope.as_deref(),
            str::parse::<GeographicScope>,
        ),
        location_name: f.optional(req.location_name.as_deref(), LocationName::parse),
        location: location(&mut f, req.latitude, req.longitude),
        existing_solutions: req
            .existing_solutions
            .as_deref()
            .and_then(|v| texts(&mut f, "existingSolutions", v)),
        data_sources: req
            .data_sources
            .as_deref()
            .and_then(|v| texts(&mut f, "dataSources", v)),
        evidence_links: req.evidence_links.as_deref().and_then(|v| links(&mut f, v)),
    };
    f.finish()?;
    Ok(changes)
}

/// The answer to a report or an edit: accepted, awaiting the guardrail.
fn accepted(problem_id: Uuid) -> impl FnOnce(Option<i64>) -> StoredResponse {
    move |position| StoredResponse {
        status: 202,
        body: json!({ "problemId": problem_id, "guardrailStatus": "pending" }),
        position,
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/problems",
    tag = "problems",
    request_body = ReportRequest,
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
            description = "Reported; awaiting the guardrail",
            body = crate::schema::Ok<crate::schema::Accepted>,
            headers(
                ("Bw-Position" = i64, description = "Global position of the command's last event")
            )
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn report(
    Api(platform): Api,
    agent: AgentAuth,
    body: CommandBody<ReportRequest>,
) -> Result<CommandResponse, ApiError> {
    let details = parse_report(&body.body)?;
    let problem_id = Uuid::now_v7();
    let command = ProblemCommand::Report {
        problem_id,
        agent_id: agent.agent_id,
        details: Box::new(details),
        at: chrono::Utc::now(),
    };
    crate::command::execute_new::<Problem, _>(
        &platform,
        Actor::Agent(agent.agent_id),
        problem_id,
        command,
        &body,
        accepted(problem_id),
    )
    .await
}

#[utoipa::path(
    patch,
    path = "/api/v1/problems/{id}",
    tag = "problems",
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
            description = "Edited; awaiting the guardrail again",
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
    let problem_id = parse_path_id(&id)?;
    let changes = parse_edit(&body.body)?;
    let command = ProblemCommand::Edit {
        agent_id: agent.agent_id,
        changes: Box::new(changes),
        at: chrono::Utc::now(),
    };
    crate::command::execute::<Problem, _>(
        &platform,
        Actor::Agent(agent.agent_id),
        problem_id,
        command,
        &body,
        accepted(problem_id),
    )
    .await
}

/// `DELETE /problems/{id}`: the log keeps everything, so "delete" archives the problem: it leaves
/// the feed's default listing by status and takes no new solutions.
#[utoipa::path(
    delete,
    path = "/api/v1/problems/{id}",
    tag = "problems",
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
            description = "Archived (the log keeps it)",
            body = crate::schema::Ok<crate::schema::Accepted>,
            headers(
                ("Bw-Position" = i64, description = "Global position of the command's last event")
            )
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn archive(
    Api(platform): Api,
    agent: AgentAuth,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<CommandResponse, ApiError> {
    let problem_id = parse_path_id(&id)?;
    let ctx = crate::command::context_without_body(
        &headers,
        "DELETE",
        &format!("/api/v1/problems/{problem_id}"),
        Actor::Agent(agent.agent_id),
    )?;
    let command = ProblemCommand::Archive {
        agent_id: agent.agent_id,
        at: chrono::Utc::now(),
    };
    let respond = move |position| StoredResponse {
        status: 202,
        body: json!({ "problemId": problem_id, "status": "archived" }),
        position,
    };
    let outcome = platform
        .bus
        .execute::<Problem>(&problem_id.to_string(), command, &ctx, respond)
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

/// Query parameters of `GET /problems`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    domain: Option<String>,
    severity: Option<String>,
    status: Option<String>,
    mine: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/problems",
    tag = "problems",
    params(
        ("domain" = Option<String>, Query),
        ("severity" = Option<String>, Query),
        ("status" = Option<String>, Query),
        (
            "mine" = Option<bool>,
            Query,
            description = "The calling agent's problems in every guardrail state"
        ),
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
            description = "Approved problems, newest first",
            body = crate::schema::Ok<Vec<ProblemView>>
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
) -> Result<ApiOk<Vec<ProblemView>>, ApiError> {
    let mut f = Fields::default();
    let domain = f.optional(params.domain.as_deref(), str::parse::<ProblemDomain>);
    let severity = f.optional(params.severity.as_deref(), str::parse::<Severity>);
    let status = f.optional(params.status.as_deref(), str::parse::<ProblemStatus>);
    let limit = super::page_limit(&mut f, params.limit.as_deref());
    let mine = super::flag(&mut f, "mine", params.mine.as_deref());
    f.finish()?;
    let cursor = super::cursor(params.cursor.as_deref(), Cursor::decode)?;
    let owner = super::owner_if(mine, agent)?;
    min.wait(&platform, &problems::ProblemFeed).await?;
    let filter = FeedFilter {
        domain: domain.map(|d| d.as_str().to_owned()),
        severity: severity.map(|s| s.as_str().to_owned()),
        status: status.map(|s| s.as_str().to_owned()),
        owner,
    };
    let (rows, next) = problems::list(&platform.pool, &filter, cursor, limit).await?;
    let meta = super::page_meta(next.map(|c| c.encode()), rows.len());
    Ok(ApiOk::new(rows).with_meta(meta))
}

#[utoipa::path(
    get,
    path = "/api/v1/problems/{id}",
    tag = "problems",
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
            description = "A problem (approved, or the caller's own)",
            body = crate::schema::Ok<ProblemView>
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
    min.wait(&platform, &problems::ProblemFeed).await?;
    let problem = problems::get(&platform.pool, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let is_owner = agent.0.is_some_and(|a| a.agent_id == problem.reported_by);
    let mut view = serde_json::to_value(&problem).map_err(ApiError::caused)?;
    match (problem.guardrail_status.as_str(), is_owner) {
        ("approved", _) => {}
        (status, true) => {
            view["guardrailExplanation"] = json!(super::explanation(status));
        }
        (_, false) => {
            return Err(ApiError::refused(
                ErrorCode::Forbidden,
                "this problem is not public",
            ));
        }
    }
    Ok(ApiOk::new(view))
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(list, report, one, edit, archive))]
pub struct ProblemsApi;
