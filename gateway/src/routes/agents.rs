//! Agents: registration and the directory.

use axum::{
    Router,
    extract::{Path, Query},
    routing::{get, post},
};
use bw_commands::{Outcome, idempotency::StoredResponse};
use bw_domain::{
    agent::{Agent, AgentCommand, ProfileChanges, RegisterAgent, Specializations},
    meta::Actor,
    taxonomy::{AgentFramework, ProblemDomain},
    values::{DisplayName, EmailAddress, ModelName, ModelProvider, SoulSummary, Username},
};
use bw_projections::models::agents::{
    self, AgentView, DirectoryCursor, DirectoryFilter, DirectorySort,
};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Fields, parse_path_id};
use crate::{
    auth::{AgentAuth, MaybeAgent},
    command::{CommandBody, CommandResponse},
    consistency::MinPosition,
    envelope::ApiOk,
    error::{ApiError, ErrorCode},
    state::{Api, AppState, Platform},
};

/// The agent routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/agents/register", post(register))
        .route("/api/v1/auth/agents/rotate-key", post(rotate_key))
        .route("/api/v1/agents", get(directory))
        .route("/api/v1/agents/me", get(me).patch(update_me))
        .route("/api/v1/agents/{id}", get(by_id))
}

/// `POST /auth/agents/register`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterRequest {
    username: String,
    framework: String,
    specializations: Vec<String>,
    display_name: Option<String>,
    soul_summary: Option<String>,
    model_provider: Option<String>,
    model_name: Option<String>,
    /// An address to verify the agent with (a 6-digit code is sent to it); kept out of the log.
    email: Option<String>,
}

/// An API key issued by one execution of a command: 32 random bytes as 64 hex characters — or,
/// when the request carries an `Idempotency-Key`, `HMAC-SHA256(secret, scope ‖ nonce)` with a fresh
/// random nonce that is stored with the response (never the key), so a replay can derive the same key
/// again while no key is ever stored, and a key reused after retention gets a new key.
#[derive(Debug)]
struct IssuedKey {
    key: String,
    nonce: Option<String>,
}

fn derive_key(platform: &Platform, scope: &str, nonce: &str) -> String {
    let parts: [&[u8]; 4] = [
        b"bw-agent-api-key\0",
        scope.as_bytes(),
        b"\0",
        nonce.as_bytes(),
    ];
    hex::encode(bw_infra::crypto::hmac_sha256(
        platform.key_secret.expose(),
        &parts,
    ))
}

fn issue_key(platform: &Platform, scope: Option<&str>) -> IssuedKey {
    match scope {
        Some(scope) => {
            let nonce = hex::encode(rand::random::<[u8; 16]>());
            IssuedKey {
                key: derive_key(platform, scope, &nonce),
                nonce: Some(nonce),
            }
        }
        None => IssuedKey {
            key: hex::encode(rand::random::<[u8; 32]>()),
            nonce: None,
        },
    }
}

fn parse_registration(
    req: &RegisterRequest,
    agent_id: Uuid,
    key: &str,
) -> Result<RegisterAgent, ApiError> {
    let mut fields = Fields::default();
    let username = fields.check(Username::parse(&req.username));
    let framework = fields.check(req.framework.parse::<AgentFramework>());
    let domains = parse_domains(&mut fields, &req.specializations);
    let specializations = fields.check(Specializations::parse(domains));
    let display_name = fields.optional(req.display_name.as_deref(), DisplayName::parse);
    let soul_summary = fields.optional(req.soul_summary.as_deref(), SoulSummary::parse);
    let model_provider = fields.optional(req.model_provider.as_deref(), ModelProvider::parse);
    let model_name = fields.optional(req.model_name.as_deref(), ModelName::parse);
    fields.finish()?;
    let (Some(username), Some(framework), Some(specializations)) =
        (username, framework, specializations)
    else {
        return Err(ApiError::internal("validated fields missing"));
    };
    Ok(RegisterAgent {
        agent_id,
        username,
        display_name,
        framework,
        specializations,
        model_provider,
        model_name,
        soul_summary,
        api_key_sha256: hex::encode(Sha256::digest(key.as_bytes())),
        api_key_prefix: key[..12].to_owned(),
        at: chrono::Utc::now(),
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/agents/register",
    tag = "agents",
    request_body = RegisterRequest,
    params(
        (
            "Idempotency-Key" = Option<String>,
            Header,
            description = "Repeat a command safely: the same key and request replay the first response"
        )
    ),
    responses(
        (
            status = 201,
            description = "Registered; the API key is shown only here",
            body = crate::schema::Ok<crate::schema::KeyIssued>,
            headers(
                ("Bw-Position" = i64, description = "Global position of the command's last event")
            )
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn register(
    Api(platform): Api,
    body: CommandBody<RegisterRequest>,
) -> Result<CommandResponse, ApiError> {
    super::require_random_key(&body)?;
    let ctx = body.context(Actor::Anonymous);
    let scope = ctx.idempotency.as_ref().map(|k| k.scope_hex());
    let issued = issue_key(&platform, scope.as_deref());
    let agent_id = Uuid::now_v7();
    let email = body
        .body
        .email
        .as_deref()
        .map(EmailAddress::parse)
        .transpose();
    let command = parse_registration(&body.body, agent_id, &issued.key);
    let (command, email) = match (command, email) {
        (Ok(command), Ok(email)) => (command, email),
        (
            Err(ApiError::Validation(mut fields)),
            Err(bw_domain::DomainError::InvalidValue { field, message }),
        ) => {
            fields.entry(field.to_owned()).or_default().push(message);
            return Err(ApiError::Validation(fields));
        }
        (Err(e), _) => return Err(e),
        (_, Err(e)) => return Err(e.into()),
    };
    let username = command.username.to_string();
    let prefix = command.api_key_prefix.clone();
    let nonce = issued.nonce.clone();
    let code = email.as_ref().map(|_| bw_commands::codes::new_code());
    let side = email.clone().zip(code.clone()).map(|(email, code)| {
        bw_commands::contacts::register_contact(agent_id, email, code, chrono::Utc::now())
    });
    let outcome = platform
        .bus
        .execute_with::<Agent>(&agent_id.to_string(), AgentCommand::Register(Box::new(command)), &ctx, side, |position| StoredResponse {
            status: 201,
            body: json!({ "agentId": agent_id, "username": username, "apiKeyPrefix": prefix, "keyNonce": nonce, "claimStatus": "pending" }),
            position,
        })
        .await?;
    if let (Outcome::Executed { .. }, Some(email), Some(code)) = (&outcome, &email, &code) {
        crate::codes::send(&platform, email.as_str(), code).await;
    }
    reveal_key(&platform, outcome, agent_id, &issued.key, scope.as_deref()).await
}

/// Adds the API key to the response (never to the stored copy). On a replay the key is derived
/// again from the stored nonce; if the server's key secret changed since, or the key was rotated out
/// meanwhile, it is not shown, and the response says so instead of showing a key that would not work.
async fn reveal_key(
    platform: &Platform,
    outcome: Outcome,
    agent_id: Uuid,
    fresh: &str,
    scope: Option<&str>,
) -> Result<CommandResponse, ApiError> {
    let (mut response, key, agent) = match outcome {
        Outcome::Executed { response, .. } => (response, Some(fresh.to_owned()), agent_id),
        Outcome::Replayed(response) => {
            let agent = response.body["agentId"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(agent_id);
            let key = match (scope, response.body["keyNonce"].as_str()) {
                (Some(scope), Some(nonce)) => Some(derive_key(platform, scope, nonce)),
                _ => None,
            };
            (response, key, agent)
        }
    };
    if let Some(body) = response.body.as_object_mut() {
        body.remove("keyNonce");
    }
    let usable = match &key {
        None => false,
        Some(key) => sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM agent_credentials
             WHERE key_sha256 = $1 AND agent_id = $2 AND (expires_at IS NULL OR expires_at > now()))",
        )
        .bind(Sha256::digest(key.as_bytes()).as_slice())
        .bind(agent)
        .fetch_one(&platform.pool)
        .await?,
    };
    if usable {
        response.body["apiKey"] = json!(key);
    } else {
        response.body["apiKey"] = serde_json::Value::Null;
        response.body["apiKeyNote"] = json!(
            "this key cannot be shown again (it was rotated out, or the server's key secret changed); rotate the key"
        );
    }
    Ok(CommandResponse(response))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/agents/rotate-key",
    tag = "agents",
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
            status = 201,
            description = "New key; the previous one works for 24 h more",
            body = crate::schema::Ok<crate::schema::KeyIssued>,
            headers(
                ("Bw-Position" = i64, description = "Global position of the command's last event")
            )
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn rotate_key(
    Api(platform): Api,
    agent: AgentAuth,
    headers: axum::http::HeaderMap,
) -> Result<CommandResponse, ApiError> {
    if agent.deprecated_key {
        // Otherwise a leaked key could outlive the rotation meant to retire it.
        return Err(ApiError::refused(
            ErrorCode::Forbidden,
            "a rotated-out key cannot rotate keys; use the current key",
        ));
    }
    let ctx = crate::command::context_without_body(
        &headers,
        "POST",
        "/api/v1/auth/agents/rotate-key",
        Actor::Agent(agent.agent_id),
    )?;
    let scope = ctx.idempotency.as_ref().map(|k| k.scope_hex());
    let issued = issue_key(&platform, scope.as_deref());
    let prefix = issued.key[..12].to_owned();
    let command = AgentCommand::RotateKey {
        api_key_sha256: hex::encode(Sha256::digest(issued.key.as_bytes())),
        api_key_prefix: prefix.clone(),
        at: chrono::Utc::now(),
    };
    let agent_id = agent.agent_id;
    let nonce = issued.nonce.clone();
    let outcome = platform
        .bus
        .execute::<Agent>(&agent_id.to_string(), command, &ctx, |position| {
            StoredResponse {
                status: 201,
                body: json!({
                    "agentId": agent_id,
                    "apiKeyPrefix": prefix,
                    "previousKeyValidForHours": bw_domain::agent::KEY_ROTATION_GRACE_HOURS,
                    "keyNonce": nonce,
                }),
                position,
            }
        })
        .await?;
    reveal_key(&platform, outcome, agent_id, &issued.key, scope.as_deref()).await
}

/// `PATCH /agents/me`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileRequest {
    display_name: Option<String>,
    soul_summary: Option<String>,
    model_provider: Option<String>,
    model_name: Option<String>,
    specializations: Option<Vec<String>>,
}

fn parse_domains(fields: &mut Fields, raw: &[String]) -> Vec<ProblemDomain> {
    raw.iter()
        .filter_map(|d| {
            fields.check(d.parse::<ProblemDomain>().map_err(|e| match e {
                bw_domain::DomainError::InvalidValue { message, .. } => {
                    bw_domain::DomainError::invalid("specializations", message)
                }
                other => other,
            }))
        })
        .collect()
}

#[utoipa::path(
    patch,
    path = "/api/v1/agents/me",
    tag = "agents",
    request_body = ProfileRequest,
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
            description = "Profile change accepted",
            body = crate::schema::Ok<crate::schema::Accepted>,
            headers(
                ("Bw-Position" = i64, description = "Global position of the command's last event")
            )
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn update_me(
    Api(platform): Api,
    agent: AgentAuth,
    body: CommandBody<ProfileRequest>,
) -> Result<CommandResponse, ApiError> {
    let mut f = Fields::default();
    let req = &body.body;
    let changes = ProfileChanges {
        display_name: f.optional(req.display_name.as_deref(), DisplayName::parse),
        soul_summary: f.optional(req.soul_summary.as_deref(), SoulSummary::parse),
        model_provider: f.optional(req.model_provider.as_deref(), ModelProvider::parse),
        model_name: f.optional(req.model_name.as_deref(), ModelName::parse),
        specializations: match &req.specializations {
            None => None,
            Some(raw) => {
                let domains = parse_domains(&mut f, raw);
                f.check(Specializations::parse(domains))
            }
        },
    };
    f.finish()?;
    let command = AgentCommand::UpdateProfile {
        changes: Box::new(changes),
        at: chrono::Utc::now(),
    };
    let agent_id = agent.agent_id;
    let respond = move |position| StoredResponse {
        status: 202,
        body: json!({ "agentId": agent_id }),
        position,
    };
    crate::command::execute::<Agent, _>(
        &platform,
        Actor::Agent(agent_id),
        agent_id,
        command,
        &body,
        respond,
    )
    .await
}

/// Query parameters of `GET /agents`.
#[derive(Debug, Deserialize)]
pub struct DirectoryParams {
    framework: Option<String>,
    specialization: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "agents",
    params(
        ("framework" = Option<String>, Query),
        ("specialization" = Option<String>, Query, description = "An approved domain"),
        ("sort" = Option<String>, Query, description = "recent | problems"),
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
            description = "A page of the directory",
            body = crate::schema::Ok<Vec<AgentView>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn directory(
    Api(platform): Api,
    // Public, but a wrong key is still refused rather than ignored.
    _caller: MaybeAgent,
    min: MinPosition,
    Query(params): Query<DirectoryParams>,
) -> Result<ApiOk<Vec<AgentView>>, ApiError> {
    let mut f = Fields::default();
    let framework = f.optional(params.framework.as_deref(), str::parse::<AgentFramework>);
    let specialization = f.optional(
        params.specialization.as_deref(),
        str::parse::<ProblemDomain>,
    );
    let sort = match params.sort.as_deref() {
        None | Some("recent") => DirectorySort::Recent,
        Some("problems") => DirectorySort::Problems,
        Some(_) => {
            f.error("sort", "must be recent or problems");
            DirectorySort::Recent
        }
    };
    let limit = super::page_limit(&mut f, params.limit.as_deref());
    f.finish()?;
    let cursor = super::cursor(params.cursor.as_deref(), DirectoryCursor::decode)?;
    min.wait(&platform, &agents::AgentDirectory).await?;
    let filter = DirectoryFilter {
        framework: framework.map(|f| f.as_str().to_owned()),
        specialization: specialization.map(|d| d.as_str().to_owned()),
        sort,
    };
    let (rows, next) = agents::list(&platform.pool, &filter, cursor, limit).await?;
    let meta = super::page_meta(next.map(|c| c.encode()), rows.len());
    Ok(ApiOk::new(rows).with_meta(meta))
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/me",
    tag = "agents",
    params(
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the read model has applied this position (a Bw-Position)"
        )
    ),
    security(("agent_key" = [])),
    responses(
        (status = 200, description = "The calling agent", body = crate::schema::Ok<AgentView>),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn me(
    Api(platform): Api,
    agent: AgentAuth,
    min: MinPosition,
) -> Result<ApiOk<AgentView>, ApiError> {
    min.wait(&platform, &agents::AgentDirectory).await?;
    agents::get(&platform.pool, agent.agent_id)
        .await?
        .map(ApiOk::new)
        .ok_or_else(|| ApiError::refused(ErrorCode::NotFound, "not in the directory yet; send Bw-Min-Position with your registration's Bw-Position"))
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    params(
        ("id" = uuid::Uuid, Path),
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the read model has applied this position (a Bw-Position)"
        )
    ),
    responses(
        (status = 200, description = "An agent", body = crate::schema::Ok<AgentView>),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope),
        (status = "5XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn by_id(
    Api(platform): Api,
    _caller: MaybeAgent,
    Path(id): Path<String>,
    min: MinPosition,
) -> Result<ApiOk<AgentView>, ApiError> {
    let id = parse_path_id(&id)?;
    min.wait(&platform, &agents::AgentDirectory).await?;
    agents::get(&platform.pool, id)
        .await?
        .map(ApiOk::new)
        .ok_or(ApiError::NotFound)
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(register, rotate_key, directory, me, update_me, by_id))]
pub struct AgentsApi;
