//! Humans (`domain-reference.md` §1.3, ADR 0003): registration, e-mail verification, login with
//! lockout, access and refresh tokens, logout, the profile, and forgetting a person.
//!
//! Personal fields (e-mail, display name, exact location, bio) are sealed with the person's key
//! at the edge, before a command is built: the log only ever holds ciphertext. Credentials, codes
//! and sessions are command-side tables ([`bw_commands::people`]), written in the command's
//! transaction; this module parses, calls and renders.

use axum::{
    Router,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bw_commands::{
    codes::{self as code_store, CODE_VALIDITY},
    idempotency::StoredResponse,
    people::{
        NewHuman, credentials, erase, keys, register_human,
        sessions::{self, ACCESS_TTL, REFRESH_TTL, Session},
    },
};
use bw_domain::{
    human::{Human, HumanCommand, HumanProfileChanges},
    meta::Actor,
    taxonomy::Role,
    values::{EmailAddress, GeoPoint, HumanName, Password, SealedField},
};
use bw_infra::crypto::seal::{self, PersonKey};
use bw_projections::models::humans::{self, HumanProfile};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    auth::{AdminAuth, HumanAuth},
    codes,
    command::{CommandBody, CommandResponse, context_without_body},
    consistency::MinPosition,
    envelope::ApiOk,
    error::{ApiError, ErrorCode},
    extract::AppJson,
    state::{Api, AppState, Platform},
};

use super::{Fields, parse_path_id};

/// The human routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/human-auth/register", post(register))
        .route("/api/v1/human-auth/verify-email", post(verify_email))
        .route("/api/v1/human-auth/resend-code", post(resend_code))
        .route("/api/v1/human-auth/login", post(login))
        .route("/api/v1/human-auth/refresh", post(refresh))
        .route("/api/v1/human-auth/logout", post(logout))
        .route(
            "/api/v1/profile",
            get(profile).patch(update_profile).delete(forget_me),
        )
        .route(
            "/api/v1/admin/humans/{id}",
            axum::routing::delete(forget_by_admin),
        )
}

/// `POST /human-auth/register`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterRequest {
    email: String,
    /// 8–128 characters with an upper-case letter, a lower-case letter and a digit.
    password: String,
    /// 2–200 characters.
    display_name: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/human-auth/register",
    tag = "humans",
    request_body = RegisterRequest,
    responses(
        (
            status = 201,
            description = "Registered; a 6-digit code was e-mailed",
            body = crate::schema::Ok<Object>
        ),
        (
            status = "4XX",
            description = "Error envelope (409 EMAIL_TAKEN)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn register(
    Api(platform): Api,
    body: CommandBody<RegisterRequest>,
) -> Result<CommandResponse, ApiError> {
    super::require_random_key(&body)?;
    let mut fields = Fields::default();
    let email = fields.check(EmailAddress::parse(&body.body.email));
    let password = fields.check(Password::parse(&body.body.password));
    let display_name = fields.check(HumanName::parse(&body.body.display_name));
    fields.finish()?;
    let (Some(email), Some(password), Some(display_name)) = (email, password, display_name) else {
        return Err(ApiError::internal("validated fields missing"));
    };
    let address = email.as_str().to_owned();
    let new = NewHuman {
        email,
        password,
        display_name,
        role: Role::Human,
    };
    let ctx = body.context(Actor::Anonymous);
    let (outcome, _, code) = register_human(
        &platform.bus,
        platform.email_secret.expose(),
        new,
        &ctx,
        false,
    )
    .await?;
    if let Some(code) = code {
        codes::send(&platform, &address, &code).await;
    }
    Ok(CommandResponse(outcome.response().clone()))
}

fn parse_email(raw: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(raw).map_err(ApiError::from)
}

/// `POST /human-auth/verify-email`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyEmailRequest {
    email: String,
    /// The 6 digits that were sent.
    verification_code: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/human-auth/verify-email",
    tag = "humans",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "Verified", body = crate::schema::Ok<Object>),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn verify_email(
    Api(platform): Api,
    body: CommandBody<VerifyEmailRequest>,
) -> Result<CommandResponse, ApiError> {
    let email = parse_email(&body.body.email)?;
    let code = codes::parse(&body.body.verification_code)?;
    let now = Utc::now();
    // An unknown address reads as a wrong code: the endpoint does not reveal who is registered.
    let Some(found) =
        credentials::find(&platform.pool, platform.email_secret.expose(), &email).await?
    else {
        return Err(ApiError::field(
            "verificationCode",
            "does not match the code that was sent",
        ));
    };
    let human_id = found.human_id;
    let check = code_store::HUMANS
        .check(&platform.pool, human_id, code, now)
        .await?;
    let ctx = body.context(Actor::Human(human_id));
    let outcome = platform
        .bus
        .execute_with::<Human>(
            &human_id.to_string(),
            HumanCommand::VerifyEmail { check, at: now },
            &ctx,
            Some(credentials::mark_email_verified(human_id)),
            move |position| StoredResponse {
                status: 200,
                body: json!({ "humanId": human_id, "emailVerified": true }),
                position,
            },
        )
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

/// `POST /human-auth/resend-code`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResendRequest {
    email: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/human-auth/resend-code",
    tag = "humans",
    request_body = ResendRequest,
    responses(
        (
            status = 202,
            description = "If the address belongs to an unverified account, a new code was sent (at most 3 an hour); the answer is the same either way",
            body = crate::schema::Ok<Object>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn resend_code(
    Api(platform): Api,
    body: CommandBody<ResendRequest>,
) -> Result<ApiOk<Value>, ApiError> {
    let email = parse_email(&body.body.email)?;
    if let Some(found) =
        credentials::find(&platform.pool, platform.email_secret.expose(), &email).await?
        && found.email_verified_at.is_none()
    {
        let code = code_store::new_code();
        if code_store::HUMANS
            .replace_within_budget(&platform.pool, found.human_id, &code, Utc::now())
            .await?
        {
            codes::send(&platform, email.as_str(), &code).await;
        }
    }
    Ok(ApiOk::new(json!({
        "message": "if this address belongs to an unverified account, a new code is on its way",
        "expiresInSeconds": CODE_VALIDITY.num_seconds(),
    }))
    .with_status(StatusCode::ACCEPTED))
}

/// `POST /human-auth/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// The body of a new session.
fn session_body(session: Session) -> Value {
    json!({
        "accessToken": session.access_token,
        "refreshToken": session.refresh_token,
        "tokenType": "Bearer",
        "expiresIn": ACCESS_TTL.num_seconds(),
        "refreshExpiresIn": REFRESH_TTL.num_seconds(),
        "humanId": session.human_id,
        "role": session.role,
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/human-auth/login",
    tag = "humans",
    request_body = LoginRequest,
    responses(
        (
            status = 200,
            description = "An access token (15 min) and a refresh token (30 days)",
            body = crate::schema::Ok<Object>
        ),
        (
            status = 401,
            description = "Wrong e-mail or password",
            body = crate::schema::ErrorEnvelope
        ),
        (
            status = 403,
            description = "E-mail not verified yet",
            body = crate::schema::ErrorEnvelope
        ),
        (
            status = 429,
            description = "Locked for 15 minutes after 5 failures",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn login(
    Api(platform): Api,
    AppJson(body): AppJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let Ok(email) = EmailAddress::parse(&body.email) else {
        return Err(bw_commands::CommandError::WrongCredentials.into());
    };
    let person = credentials::log_in(
        &platform.pool,
        platform.email_secret.expose(),
        &email,
        body.password,
    )
    .await?;
    let session = sessions::start(
        &platform.pool,
        &platform.tokens,
        person.human_id,
        &person.role,
    )
    .await?;
    Ok(ApiOk::new(session_body(session)).into_response())
}

/// `POST /human-auth/refresh` and `/logout`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshRequest {
    refresh_token: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/human-auth/refresh",
    tag = "humans",
    request_body = RefreshRequest,
    responses(
        (
            status = 200,
            description = "A new access token and the next refresh token; the one sent is used up",
            body = crate::schema::Ok<Object>
        ),
        (
            status = 401,
            description = "Unknown, expired (TOKEN_EXPIRED) or reused token; a reuse revokes every token of that login",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn refresh(
    Api(platform): Api,
    AppJson(body): AppJson<RefreshRequest>,
) -> Result<ApiOk<Value>, ApiError> {
    let session = sessions::rotate(&platform.pool, &platform.tokens, &body.refresh_token).await?;
    Ok(ApiOk::new(session_body(session)))
}

/// `POST /human-auth/logout`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogoutRequest {
    /// The session to end; without it, every session of the caller ends.
    #[serde(default)]
    refresh_token: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/human-auth/logout",
    tag = "humans",
    request_body = LogoutRequest,
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "Refresh tokens revoked (access tokens expire on their own within 15 minutes)",
            body = crate::schema::Ok<Object>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn logout(
    Api(platform): Api,
    caller: HumanAuth,
    body: axum::body::Bytes,
) -> Result<ApiOk<Value>, ApiError> {
    let request: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let revoked = sessions::revoke(
        &platform.pool,
        caller.human_id,
        request.refresh_token.as_deref(),
    )
    .await?;
    Ok(ApiOk::new(
        json!({ "loggedOut": true, "revokedTokens": revoked }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/profile",
    tag = "humans",
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "The caller's profile, personal fields opened",
            body = crate::schema::Ok<HumanProfile>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn profile(
    Api(platform): Api,
    caller: HumanAuth,
    min: MinPosition,
) -> Result<ApiOk<HumanProfile>, ApiError> {
    min.wait(&platform, &humans::Humans).await?;
    let found = humans::profile(&platform.pool, caller.human_id).await?;
    found.map(ApiOk::new).ok_or(ApiError::NotFound)
}

/// `PATCH /profile`; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileRequest {
    display_name: Option<String>,
    /// 1–50 skills of 1–100 characters.
    skills: Option<Vec<String>>,
    /// 1–20 ISO 639-1 codes.
    languages: Option<Vec<String>>,
    city: Option<String>,
    country: Option<String>,
    /// Exact location; stored sealed.
    location: Option<humans::Location>,
    /// 5–50 km.
    service_radius: Option<u16>,
    /// At most 500 characters; stored sealed.
    bio: Option<String>,
}

async fn person_key(platform: &Platform, human_id: Uuid) -> Result<PersonKey, ApiError> {
    keys::load(&platform.pool, human_id)
        .await?
        .ok_or_else(|| ApiError::refused(ErrorCode::Gone, "this person was forgotten"))
}

#[utoipa::path(
    patch,
    path = "/api/v1/profile",
    tag = "humans",
    request_body = ProfileRequest,
    security(("human_token" = [])),
    responses(
        (status = 200, description = "Updated", body = crate::schema::Ok<Object>),
        (
            status = "4XX",
            description = "Error envelope (410 GONE once forgotten)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn update_profile(
    Api(platform): Api,
    caller: HumanAuth,
    body: CommandBody<ProfileRequest>,
) -> Result<CommandResponse, ApiError> {
    let human_id = caller.human_id;
    let request = &body.body;
    let mut fields = Fields::default();
    let name = fields.optional(request.display_name.as_deref(), HumanName::parse);
    let location = request.location.and_then(|l| {
        fields
            .check(GeoPoint::parse(l.latitude, l.longitude))
            .map(|_| l)
    });
    if request
        .bio
        .as_ref()
        .is_some_and(|b| b.chars().count() > 500)
    {
        fields.error("bio", "at most 500 characters");
    }
    fields.finish()?;
    let key = person_key(&platform, human_id).await?;
    let seal_field = |field: &str, plain: &str| {
        SealedField::new(
            serde_json::to_value(seal::seal(&key, human_id, field, plain)).unwrap_or_default(),
        )
    };
    let changes = HumanProfileChanges {
        display_name: name.map(|n| seal_field("displayName", n.as_str())),
        skills: request.skills.clone(),
        languages: request.languages.clone(),
        city: request.city.clone(),
        country: request.country.clone(),
        location: location.map(|l| seal_field("location", &json!(l).to_string())),
        service_radius_km: request.service_radius,
        bio: request.bio.as_deref().map(|b| seal_field("bio", b.trim())),
    };
    crate::command::execute::<Human, _>(
        &platform,
        Actor::Human(human_id),
        human_id,
        HumanCommand::UpdateProfile {
            changes: Box::new(changes),
            at: Utc::now(),
        },
        &body,
        move |position| StoredResponse {
            status: 200,
            body: json!({ "humanId": human_id, "updated": true }),
            position,
        },
    )
    .await
}

async fn forget(
    platform: &Platform,
    human_id: Uuid,
    by: Actor,
    headers: &HeaderMap,
    path: &str,
) -> Result<CommandResponse, ApiError> {
    let ctx = context_without_body(headers, "DELETE", path, by.clone())?;
    let outcome = platform
        .bus
        .execute_with::<Human>(
            &human_id.to_string(),
            HumanCommand::Forget { by, at: Utc::now() },
            &ctx,
            Some(erase::erase(human_id)),
            move |position| StoredResponse {
                status: 200,
                body: json!({ "humanId": human_id, "forgotten": true }),
                position,
            },
        )
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/profile",
    tag = "humans",
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "Forgotten: the person's key is destroyed; the log keeps only ciphertext",
            body = crate::schema::Ok<Object>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn forget_me(
    Api(platform): Api,
    caller: HumanAuth,
    headers: HeaderMap,
) -> Result<CommandResponse, ApiError> {
    forget(
        &platform,
        caller.human_id,
        Actor::Human(caller.human_id),
        &headers,
        "/api/v1/profile",
    )
    .await
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/humans/{id}",
    tag = "admin",
    params(("id" = Uuid, Path)),
    security(("human_token" = [])),
    responses(
        (status = 200, description = "Forgotten", body = crate::schema::Ok<Object>),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn forget_by_admin(
    Api(platform): Api,
    admin: AdminAuth,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Result<CommandResponse, ApiError> {
    let human_id = parse_path_id(&id)?;
    let path = format!("/api/v1/admin/humans/{human_id}");
    forget(
        &platform,
        human_id,
        Actor::Human(admin.0.human_id),
        &headers,
        &path,
    )
    .await
}

/// This module's paths in the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(
    register,
    verify_email,
    resend_code,
    login,
    refresh,
    logout,
    profile,
    update_profile,
    forget_me,
    forget_by_admin
))]
pub struct HumansApi;
