//! Humans (`domain-reference.md` §1.3, ADR 0003): registration, e-mail verification, login with
//! lockout, access and refresh tokens, logout, the profile, and forgetting a person.
//!
//! Personal fields (e-mail, display name, exact location, bio) are sealed with the person's key
//! here, at the edge, before a command is built: the log only ever holds ciphertext. Credentials,
//! codes and sessions are command-side tables written in the command's transaction.

use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bw_commands::{
    CommandBus, CommandContext, CommandError, Outcome, SideWrites, error::unique_violation,
    idempotency::StoredResponse,
};
use bw_domain::{
    human::{Human, HumanCommand, HumanProfileChanges},
    meta::Actor,
    taxonomy::Role,
    values::{CodeCheck, EmailAddress, GeoPoint, HumanName, Password, SealedField},
};
use bw_infra::crypto::{
    jwt::Claims,
    password,
    seal::{self, PersonKey},
};
use bw_projections::models::humans::{self, HumanProfile};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    auth::{AdminAuth, HumanAuth},
    codes,
    command::{CommandBody, CommandResponse, context_without_body},
    consistency::MinPosition,
    envelope::ApiOk,
    error::{ApiError, ErrorCode, error_response},
    extract::AppJson,
    state::{Api, AppState, Platform},
};

use super::{Fields, parse_path_id};

/// Access tokens live 15 minutes.
pub const ACCESS_TTL: TimeDelta = TimeDelta::minutes(15);
/// Refresh tokens live 30 days.
pub const REFRESH_TTL: TimeDelta = TimeDelta::days(30);
/// Failed logins in a row before the account locks.
pub const MAX_FAILED_LOGINS: i32 = 5;
/// How long a lockout lasts.
pub const LOCKOUT: TimeDelta = TimeDelta::minutes(15);

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

/// A new person, parsed.
#[derive(Debug)]
pub struct NewHuman {
    pub email: EmailAddress,
    pub password: Password,
    pub display_name: HumanName,
    pub role: Role,
}

/// Registers `new` (and, for accounts the CLI creates, verifies the e-mail at once): generates the
/// person's key, seals the e-mail and name, hashes the password off the runtime, and writes key,
/// credentials and the first code in the registration's transaction. Returns the outcome and the
/// code to send (none on a replay or for a pre-verified account).
pub async fn register_human(
    bus: &CommandBus,
    email_secret: &[u8],
    new: NewHuman,
    ctx: &CommandContext,
    pre_verified: bool,
) -> Result<(Outcome, Uuid, Option<String>), ApiError> {
    let human_id = Uuid::now_v7();
    let key = PersonKey::generate();
    let seal_field = |field: &str, plain: &str| {
        SealedField::new(
            serde_json::to_value(seal::seal(&key, human_id, field, plain)).unwrap_or_default(),
        )
    };
    let fingerprint = seal::email_fingerprint(email_secret, new.email.as_str());
    let hash = password::hash(new.password.expose().to_owned())
        .await
        .map_err(ApiError::caused)?;
    let code = (!pre_verified).then(codes::new_code);
    let command = HumanCommand::Register {
        human_id,
        email: seal_field("email", new.email.as_str()),
        display_name: seal_field("displayName", new.display_name.as_str()),
        role: new.role,
        at: Utc::now(),
    };
    let role = new.role;
    let first_code = code.clone();
    let side: SideWrites = Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            sqlx::query("INSERT INTO person_keys (person_id, key) VALUES ($1, $2)")
                .bind(human_id)
                .bind(key.as_bytes().as_slice())
                .execute(&mut *conn)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO human_credentials (human_id, email_hmac, password_hash, role, email_verified_at)
                 VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)",
            )
            .bind(human_id)
            .bind(fingerprint.as_slice())
            .bind(hash)
            .bind(role.as_str())
            .bind(pre_verified)
            .execute(&mut *conn)
            .await;
            match inserted {
                Err(e)
                    if unique_violation(&e).as_deref() == Some("human_credentials_email_key") =>
                {
                    return Err(CommandError::EmailTaken);
                }
                other => {
                    other?;
                }
            }
            if let Some(code) = first_code {
                codes::HUMANS
                    .insert_first(conn, human_id, &code, Utc::now())
                    .await?;
            }
            Ok(())
        })
    });
    let outcome = bus
        .execute_with::<Human>(&human_id.to_string(), command, ctx, Some(side), |position| {
            StoredResponse {
                status: 201,
                body: json!({ "humanId": human_id, "role": role.as_str(), "emailVerified": pre_verified }),
                position,
            }
        })
        .await?;
    if pre_verified && matches!(outcome, Outcome::Executed { .. }) {
        bus.execute::<Human>(
            &human_id.to_string(),
            HumanCommand::VerifyEmail {
                // The operator creating the account vouches for the address.
                check: CodeCheck::Valid,
                at: Utc::now(),
            },
            &CommandContext {
                idempotency: None,
                ..ctx.clone()
            },
            |position| StoredResponse {
                status: 200,
                body: Value::Null,
                position,
            },
        )
        .await?;
    }
    let code = matches!(outcome, Outcome::Executed { .. })
        .then_some(code)
        .flatten();
    Ok((outcome, human_id, code))
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

#[utoipa::path(post, path = "/api/v1/human-auth/register", tag = "humans", request_body = RegisterRequest, responses((status = 201, description = "Registered; a 6-digit code was e-mailed", body = crate::openapi::Ok<Object>), (status = "4XX", description = "Error envelope (409 EMAIL_TAKEN)", body = crate::openapi::ErrorEnvelope)))]
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

/// The human whose e-mail fingerprint matches `email`, with their credentials.
#[derive(sqlx::FromRow)]
struct Credentials {
    human_id: Uuid,
    password_hash: String,
    role: String,
    email_verified_at: Option<DateTime<Utc>>,
}

async fn credentials(
    platform: &Platform,
    email: &EmailAddress,
) -> Result<Option<Credentials>, ApiError> {
    let fingerprint = seal::email_fingerprint(platform.email_secret.expose(), email.as_str());
    Ok(sqlx::query_as(
        "SELECT human_id, password_hash, role, email_verified_at FROM human_credentials WHERE email_hmac = $1",
    )
    .bind(fingerprint.as_slice())
    .fetch_optional(&platform.pool)
    .await?)
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

#[utoipa::path(post, path = "/api/v1/human-auth/verify-email", tag = "humans", request_body = VerifyEmailRequest, responses((status = 200, description = "Verified", body = crate::openapi::Ok<Object>), (status = "4XX", description = "Error envelope", body = crate::openapi::ErrorEnvelope)))]
async fn verify_email(
    Api(platform): Api,
    body: CommandBody<VerifyEmailRequest>,
) -> Result<CommandResponse, ApiError> {
    let email = parse_email(&body.body.email)?;
    let code = codes::parse(&body.body.verification_code)?;
    let now = Utc::now();
    // An unknown address reads as a wrong code: the endpoint does not reveal who is registered.
    let Some(found) = credentials(&platform, &email).await? else {
        return Err(ApiError::field(
            "verificationCode",
            "does not match the code that was sent",
        ));
    };
    let human_id = found.human_id;
    let check = codes::HUMANS
        .check(&platform.pool, human_id, code, now)
        .await?;
    let side: SideWrites = Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            codes::HUMANS.delete(conn, human_id).await?;
            sqlx::query(
                "UPDATE human_credentials SET email_verified_at = now() WHERE human_id = $1",
            )
            .bind(human_id)
            .execute(&mut *conn)
            .await?;
            Ok::<_, CommandError>(())
        })
    });
    let ctx = body.context(Actor::Human(human_id));
    let outcome = platform
        .bus
        .execute_with::<Human>(
            &human_id.to_string(),
            HumanCommand::VerifyEmail { check, at: now },
            &ctx,
            Some(side),
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

#[utoipa::path(post, path = "/api/v1/human-auth/resend-code", tag = "humans", request_body = ResendRequest, responses((status = 202, description = "If the address belongs to an unverified account, a new code was sent (at most 3 an hour); the answer is the same either way", body = crate::openapi::Ok<Object>), (status = "4XX", description = "Error envelope", body = crate::openapi::ErrorEnvelope)))]
async fn resend_code(
    Api(platform): Api,
    body: CommandBody<ResendRequest>,
) -> Result<ApiOk<Value>, ApiError> {
    let email = parse_email(&body.body.email)?;
    if let Some(found) = credentials(&platform, &email).await?
        && found.email_verified_at.is_none()
    {
        let code = codes::new_code();
        if codes::HUMANS
            .replace_within_budget(&platform.pool, found.human_id, &code, Utc::now())
            .await?
        {
            codes::send(&platform, email.as_str(), &code).await;
        }
    }
    Ok(ApiOk::new(json!({
        "message": "if this address belongs to an unverified account, a new code is on its way",
        "expiresInSeconds": codes::CODE_VALIDITY.num_seconds(),
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

/// A fresh refresh token: `bwr_` and 43 characters of base64url (256 random bits).
fn new_refresh_token() -> String {
    use base64::Engine;
    format!(
        "bwr_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Issues an access token and stores a refresh token in `family` (in `conn`'s transaction).
async fn issue_session(
    platform: &Platform,
    conn: &mut PgConnection,
    human_id: Uuid,
    role: &str,
    family: Uuid,
) -> Result<Value, ApiError> {
    let now = Utc::now();
    let refresh = new_refresh_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_sha256, human_id, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&refresh))
    .bind(human_id)
    .bind(family)
    .bind(now)
    .bind(now + REFRESH_TTL)
    .execute(&mut *conn)
    .await?;
    let access = platform
        .tokens
        .issue(&Claims {
            sub: human_id.to_string(),
            role: role.to_owned(),
            iat: now.timestamp(),
            exp: (now + ACCESS_TTL).timestamp(),
            jti: Uuid::now_v7().to_string(),
        })
        .await;
    Ok(json!({
        "accessToken": access,
        "refreshToken": refresh,
        "tokenType": "Bearer",
        "expiresIn": ACCESS_TTL.num_seconds(),
        "refreshExpiresIn": REFRESH_TTL.num_seconds(),
        "humanId": human_id,
        "role": role,
    }))
}

/// A refusal with `Retry-After` (a locked account).
fn locked(until: Option<DateTime<Utc>>) -> Response {
    let wait = until.map_or(LOCKOUT.num_seconds(), |u| {
        (u - Utc::now()).num_seconds().max(1)
    });
    let mut response = error_response(
        ErrorCode::RateLimited,
        &format!("too many failed logins; this account is locked for {wait} s"),
        None,
    );
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

#[utoipa::path(post, path = "/api/v1/human-auth/login", tag = "humans", request_body = LoginRequest, responses((status = 200, description = "An access token (15 min) and a refresh token (30 days)", body = crate::openapi::Ok<Object>), (status = 401, description = "Wrong e-mail or password", body = crate::openapi::ErrorEnvelope), (status = 403, description = "E-mail not verified yet", body = crate::openapi::ErrorEnvelope), (status = 429, description = "Locked for 15 minutes after 5 failures", body = crate::openapi::ErrorEnvelope)))]
async fn login(
    Api(platform): Api,
    AppJson(body): AppJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let wrong = || ApiError::refused(ErrorCode::Unauthorized, "the e-mail or password is wrong");
    let Ok(email) = EmailAddress::parse(&body.email) else {
        return Err(wrong());
    };
    let Some(found) = credentials(&platform, &email).await? else {
        // Spend the same time as a real check, so timing does not reveal who is registered.
        password::verify(dummy_hash().await, body.password).await;
        return Err(wrong());
    };
    // Reserve an attempt first: at most MAX_FAILED_LOGINS checks can ever be in flight or done
    // before the lock, however many requests arrive at once.
    // Reserve an attempt first, and lock in the same statement when it is the fifth: at most
    // MAX_FAILED_LOGINS checks can ever be in flight or done before the lock, however many requests
    // race, and a request that never finishes cannot leave the account locked for good (the lock
    // expires; an expired lock starts the count again).
    let attempt: Option<(i32,)> = sqlx::query_as(
        "UPDATE human_credentials SET
             failed_logins = CASE WHEN locked_until <= now() THEN 1 ELSE failed_logins + 1 END,
             locked_until = CASE
                 WHEN (CASE WHEN locked_until <= now() THEN 1 ELSE failed_logins + 1 END) >= $2
                     THEN now() + make_interval(secs => $3)
                 WHEN locked_until <= now() THEN NULL
                 ELSE locked_until END
         WHERE human_id = $1 AND (locked_until IS NULL OR locked_until <= now())
         RETURNING failed_logins",
    )
    .bind(found.human_id)
    .bind(MAX_FAILED_LOGINS)
    .bind(LOCKOUT.as_seconds_f64())
    .fetch_optional(&platform.pool)
    .await?;
    let Some((attempt,)) = attempt else {
        let until: Option<(Option<DateTime<Utc>>,)> =
            sqlx::query_as("SELECT locked_until FROM human_credentials WHERE human_id = $1")
                .bind(found.human_id)
                .fetch_optional(&platform.pool)
                .await?;
        return Ok(locked(until.and_then(|u| u.0)));
    };
    if !password::verify(found.password_hash, body.password).await {
        if attempt >= MAX_FAILED_LOGINS {
            tracing::warn!(human_id = %found.human_id, "account locked after repeated failed logins");
        }
        return Err(wrong());
    }
    sqlx::query(
        "UPDATE human_credentials SET failed_logins = 0, locked_until = NULL WHERE human_id = $1",
    )
    .bind(found.human_id)
    .execute(&platform.pool)
    .await?;
    if found.email_verified_at.is_none() {
        return Err(ApiError::refused(
            ErrorCode::Forbidden,
            "verify your e-mail address first (POST /api/v1/human-auth/verify-email)",
        ));
    }
    let mut conn = platform.pool.acquire().await?;
    let session = issue_session(
        &platform,
        &mut conn,
        found.human_id,
        &found.role,
        Uuid::now_v7(),
    )
    .await?;
    Ok(ApiOk::new(session).into_response())
}

/// An Argon2id hash of a random password (made once per process), checked against when the
/// e-mail is unknown.
async fn dummy_hash() -> String {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async {
            password::hash(hex::encode(rand::random::<[u8; 16]>()))
                .await
                .unwrap_or_default()
        })
        .await
        .clone()
}

/// `POST /human-auth/refresh` and `/logout`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshRequest {
    refresh_token: String,
}

#[utoipa::path(post, path = "/api/v1/human-auth/refresh", tag = "humans", request_body = RefreshRequest, responses((status = 200, description = "A new access token and the next refresh token; the one sent is used up", body = crate::openapi::Ok<Object>), (status = 401, description = "Unknown, expired (TOKEN_EXPIRED) or reused token; a reuse revokes every token of that login", body = crate::openapi::ErrorEnvelope)))]
async fn refresh(
    Api(platform): Api,
    AppJson(body): AppJson<RefreshRequest>,
) -> Result<ApiOk<Value>, ApiError> {
    let invalid = || ApiError::refused(ErrorCode::Unauthorized, "the refresh token is not valid");
    let mut tx = platform.pool.begin().await?;
    #[derive(sqlx::FromRow)]
    struct Row {
        human_id: Uuid,
        family_id: Uuid,
        expires_at: DateTime<Utc>,
        used_at: Option<DateTime<Utc>>,
        revoked_at: Option<DateTime<Utc>>,
        role: Option<String>,
    }
    let found: Option<Row> = sqlx::query_as(
        "SELECT t.human_id, t.family_id, t.expires_at, t.used_at, t.revoked_at, c.role
             FROM refresh_tokens t LEFT JOIN human_credentials c ON c.human_id = t.human_id
             WHERE t.token_sha256 = $1 FOR UPDATE OF t",
    )
    .bind(token_hash(&body.refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(Row {
        human_id,
        family_id: family,
        expires_at,
        used_at,
        revoked_at,
        role,
    }) = found
    else {
        return Err(invalid());
    };
    if used_at.is_some() || revoked_at.is_some() {
        // A used token came back: someone holds a copy. End every session of this login.
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if used_at.is_some() {
            tracing::warn!(%human_id, revoked = revoked.rows_affected(), "refresh token reused; its family is revoked");
        }
        return Err(ApiError::refused(
            ErrorCode::Unauthorized,
            "this refresh token was already used or revoked; log in again",
        ));
    }
    if expires_at <= Utc::now() {
        return Err(ApiError::refused(
            ErrorCode::TokenExpired,
            "the refresh token has expired; log in again",
        ));
    }
    let Some(role) = role else {
        // The person was forgotten: their credentials are gone.
        return Err(invalid());
    };
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_sha256 = $1")
        .bind(token_hash(&body.refresh_token))
        .execute(&mut *tx)
        .await?;
    let session = issue_session(&platform, &mut tx, human_id, &role, family).await?;
    tx.commit().await?;
    Ok(ApiOk::new(session))
}

/// `POST /human-auth/logout`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogoutRequest {
    /// The session to end; without it, every session of the caller ends.
    #[serde(default)]
    refresh_token: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/human-auth/logout", tag = "humans", request_body = LogoutRequest, security(("human_token" = [])), responses((status = 200, description = "Refresh tokens revoked (access tokens expire on their own within 15 minutes)", body = crate::openapi::Ok<Object>), (status = "4XX", description = "Error envelope", body = crate::openapi::ErrorEnvelope)))]
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
    let revoked = match request.refresh_token {
        Some(token) => sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE revoked_at IS NULL AND human_id = $2
               AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_sha256 = $1 AND human_id = $2)",
        )
        .bind(token_hash(&token))
        .bind(caller.human_id),
        None => sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE human_id = $1 AND revoked_at IS NULL")
            .bind(caller.human_id),
    }
    .execute(&platform.pool)
    .await?;
    Ok(ApiOk::new(
        json!({ "loggedOut": true, "revokedTokens": revoked.rows_affected() }),
    ))
}

#[utoipa::path(get, path = "/api/v1/profile", tag = "humans", security(("human_token" = [])), responses((status = 200, description = "The caller's profile, personal fields opened", body = crate::openapi::Ok<HumanProfile>), (status = "4XX", description = "Error envelope", body = crate::openapi::ErrorEnvelope)))]
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
    let key: Option<(Option<Vec<u8>>,)> =
        sqlx::query_as("SELECT key FROM person_keys WHERE person_id = $1")
            .bind(human_id)
            .fetch_optional(&platform.pool)
            .await?;
    key.and_then(|k| k.0)
        .and_then(|k| PersonKey::from_bytes(&k))
        .ok_or_else(|| ApiError::refused(ErrorCode::Gone, "this person was forgotten"))
}

#[utoipa::path(patch, path = "/api/v1/profile", tag = "humans", request_body = ProfileRequest, security(("human_token" = [])), responses((status = 200, description = "Updated", body = crate::openapi::Ok<Object>), (status = "4XX", description = "Error envelope (410 GONE once forgotten)", body = crate::openapi::ErrorEnvelope)))]
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

/// Destroys the person's key and every credential, code and session, with `HumanForgotten`.
fn forget_side(human_id: Uuid) -> SideWrites {
    Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            sqlx::query("UPDATE person_keys SET key = NULL, destroyed_at = now() WHERE person_id = $1 AND key IS NOT NULL")
                .bind(human_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM human_credentials WHERE human_id = $1")
                .bind(human_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM refresh_tokens WHERE human_id = $1")
                .bind(human_id)
                .execute(&mut *conn)
                .await?;
            codes::HUMANS.delete(conn, human_id).await?;
            Ok::<_, CommandError>(())
        })
    })
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
            Some(forget_side(human_id)),
            move |position| StoredResponse {
                status: 200,
                body: json!({ "humanId": human_id, "forgotten": true }),
                position,
            },
        )
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

#[utoipa::path(delete, path = "/api/v1/profile", tag = "humans", security(("human_token" = [])), responses((status = 200, description = "Forgotten: the person's key is destroyed; the log keeps only ciphertext", body = crate::openapi::Ok<Object>), (status = "4XX", description = "Error envelope", body = crate::openapi::ErrorEnvelope)))]
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

#[utoipa::path(delete, path = "/api/v1/admin/humans/{id}", tag = "admin", params(("id" = Uuid, Path)), security(("human_token" = [])), responses((status = 200, description = "Forgotten", body = crate::openapi::Ok<Object>), (status = "4XX", description = "Error envelope", body = crate::openapi::ErrorEnvelope)))]
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
