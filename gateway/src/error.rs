//! The gateway's one error type and its one mapping to HTTP.
//!
//! Every error a client can see is an [`ApiError`]; [`IntoResponse`] turns it into a status and the
//! envelope `{"ok": false, "error": {"code", "message", "details"?}, "requestId"}`. Internal errors
//! are logged here with their cause and answered with a generic message, so no internal detail
//! reaches a client.

use std::collections::BTreeMap;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::Value;

use bw_commands::people::credentials::LOCKOUT;

use crate::envelope::current_request_id;

/// Machine-readable error codes (`domain-reference.md` §3.1, plus the transport-level codes the
/// original left as bare text: `BAD_REQUEST`, `MALFORMED_JSON`, `UNSUPPORTED_MEDIA_TYPE`, `PAYLOAD_TOO_LARGE`,
/// `METHOD_NOT_ALLOWED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    BadRequest,
    MalformedJson,
    InvalidCursor,
    InvalidDomain,
    Unauthorized,
    TokenExpired,
    ApiKeyInvalid,
    SignatureInvalid,
    Forbidden,
    AgentNotVerified,
    InsufficientTokens,
    NotFound,
    MethodNotAllowed,
    Conflict,
    UsernameTaken,
    EmailTaken,
    AlreadyClaimed,
    DuplicateVote,
    RewardAlreadyClaimed,
    Gone,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationError,
    GuardrailRejected,
    GuardrailFlagged,
    RateLimited,
    InternalError,
    ServiceUnavailable,
}

impl ErrorCode {
    /// The HTTP status this code is always answered with.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            BadRequest | MalformedJson | InvalidCursor | InvalidDomain => StatusCode::BAD_REQUEST,
            Unauthorized | TokenExpired | ApiKeyInvalid | SignatureInvalid => {
                StatusCode::UNAUTHORIZED
            }
            Forbidden | AgentNotVerified | InsufficientTokens => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict | UsernameTaken | EmailTaken | AlreadyClaimed | DuplicateVote
            | RewardAlreadyClaimed => StatusCode::CONFLICT,
            Gone => StatusCode::GONE,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ValidationError | GuardrailRejected | GuardrailFlagged => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The code for a status the framework produced on its own (no handler ran).
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::LENGTH_REQUIRED => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::GONE => Self::Gone,
            StatusCode::UNPROCESSABLE_ENTITY => Self::ValidationError,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::GATEWAY_TIMEOUT => Self::ServiceUnavailable,
            s if s.is_client_error() => Self::BadRequest,
            _ => Self::InternalError,
        }
    }
}

/// Field name → what is wrong with it (`details.fields`).
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Everything the gateway answers with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all (syntax error, truncated).
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but does not fit the request's shape or rules.
    #[error("request validation failed")]
    Validation(FieldErrors),
    /// The request declared no or another content type than the endpoint takes.
    #[error("expected content type {expected}")]
    UnsupportedMediaType {
        /// The content type the endpoint accepts.
        expected: &'static str,
    },
    /// The body exceeds the configured limit.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No such route or resource.
    #[error("not found")]
    NotFound,
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A dependency is missing or the request took too long; the client may retry.
    #[error("{message}")]
    Unavailable {
        /// What is unavailable.
        message: String,
        /// Structured detail (e.g. the failing readiness checks).
        details: Option<Value>,
    },
    /// The same request (its `Idempotency-Key`) is being executed right now: `409 CONFLICT` with
    /// `Retry-After: 1`.
    #[error("{0}")]
    InProgress(String),
    /// Too many failed logins: `429 RATE_LIMITED` with `Retry-After` (the seconds left).
    #[error("too many failed logins; this account is locked for {seconds} s")]
    Locked {
        /// Seconds until the lock ends (at least 1).
        seconds: i64,
    },
    /// Any other refusal with its code (authentication, permission, conflicts…); the message is
    /// written for the client.
    #[error("{message}")]
    Refused {
        /// The code (and so the status).
        code: ErrorCode,
        /// What happened and, where useful, what to do.
        message: String,
    },
    /// A bug or an unexpected failure, with its cause chain; logged whole, never shown.
    #[error("internal error: {0}")]
    Internal(anyhow::Error),
}

impl ApiError {
    /// An internal error that says what went wrong (no underlying error to keep).
    pub fn internal(what: impl std::fmt::Display + Send + Sync + 'static) -> Self {
        Self::Internal(anyhow::anyhow!("{what}"))
    }

    /// An internal error caused by `cause`, whose chain is kept for the log.
    pub fn caused(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(anyhow::Error::new(cause))
    }

    /// A refusal with `code` and `message`.
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    /// A validation error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert(field.to_owned(), vec![message.into()]);
        Self::Validation(fields)
    }
}

impl From<bw_domain::DomainError> for ApiError {
    fn from(error: bw_domain::DomainError) -> Self {
        use bw_domain::DomainError as D;
        match error {
            D::InvalidValue { field, message } => Self::field(field, message),
            D::AlreadyExists(what) => {
                Self::refused(ErrorCode::Conflict, format!("{what} already exists"))
            }
            D::NotFound(_) => Self::NotFound,
            D::Forbidden(why) => Self::refused(ErrorCode::Forbidden, why),
            D::InvalidState(why) => Self::refused(ErrorCode::Conflict, why),
            D::AlreadyClaimed(why) => Self::refused(ErrorCode::AlreadyClaimed, why),
            e @ D::DuplicateVote => Self::refused(ErrorCode::DuplicateVote, e.to_string()),
            e @ D::InsufficientTokens { .. } => {
                Self::refused(ErrorCode::InsufficientTokens, e.to_string())
            }
        }
    }
}

/// Whether a database error means the database is unreachable (so the client should retry) rather
/// than a bug.
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        // A connection cut in the middle of a message surfaces as a protocol error.
        | sqlx::Error::Protocol(_) => true,
        // Connection exceptions (class 08) and the server shutting down or restarting (57P01–57P03).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        database(error)
    }
}

fn database(error: sqlx::Error) -> ApiError {
    if is_unavailable(&error) {
        ApiError::Unavailable {
            message: "the database is unavailable; retry shortly".into(),
            details: None,
        }
    } else {
        ApiError::Internal(anyhow::Error::new(error).context("database"))
    }
}

impl From<bw_commands::CommandError> for ApiError {
    fn from(error: bw_commands::CommandError) -> Self {
        use bw_commands::CommandError as C;
        match error {
            C::Domain(e) => e.into(),
            e @ C::Conflict { .. } => Self::refused(ErrorCode::Conflict, e.to_string()),
            e @ C::UsernameTaken(_) => Self::refused(ErrorCode::UsernameTaken, e.to_string()),
            e @ C::EmailTaken => Self::refused(ErrorCode::EmailTaken, e.to_string()),
            e @ C::IdempotencyMismatch => Self::field("Idempotency-Key", e.to_string()),
            e @ C::IdempotencyInProgress => Self::InProgress(e.to_string()),
            C::WrongCredentials => {
                Self::refused(ErrorCode::Unauthorized, "the e-mail or password is wrong")
            }
            C::AccountLocked { until } => Self::Locked {
                seconds: until.map_or(LOCKOUT.num_seconds(), |u| {
                    (u - chrono::Utc::now()).num_seconds().max(1)
                }),
            },
            C::EmailNotVerified => Self::refused(
                ErrorCode::Forbidden,
                "verify your e-mail address first (POST /api/v1/human-auth/verify-email)",
            ),
            C::RefreshTokenInvalid => {
                Self::refused(ErrorCode::Unauthorized, "the refresh token is not valid")
            }
            C::RefreshTokenSpent => Self::refused(
                ErrorCode::Unauthorized,
                "this refresh token was already used or revoked; log in again",
            ),
            C::RefreshTokenExpired => Self::refused(
                ErrorCode::TokenExpired,
                "the refresh token has expired; log in again",
            ),
            C::PasswordHashing(e) => Self::caused(e),
            C::Database(e) => database(e),
            e @ (C::Corrupt(_) | C::Key(_) | C::LogFormat(_)) => Self::caused(e),
        }
    }
}

impl From<bw_eventlog::LogError> for ApiError {
    fn from(error: bw_eventlog::LogError) -> Self {
        bw_commands::CommandError::from(error).into()
    }
}

impl From<bw_projections::ProjectionError> for ApiError {
    fn from(error: bw_projections::ProjectionError) -> Self {
        match error {
            bw_projections::ProjectionError::Database(e) => database(e),
            other => Self::caused(other),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    ok: bool,
    error: ErrorDetail<'a>,
    request_id: Option<String>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

/// Builds the error envelope response for `code` with `message` and optional `details`.
pub fn error_response(code: ErrorCode, message: &str, details: Option<&Value>) -> Response {
    let body = ErrorBody {
        ok: false,
        error: ErrorDetail {
            code,
            message,
            details,
        },
        request_id: current_request_id(),
    };
    let mut response = (code.status(), Json(body)).into_response();
    if code == ErrorCode::ServiceUnavailable {
        retry_after_a_second(&mut response);
    }
    response
}

fn retry_after_a_second(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
}

impl ApiError {
    /// The code this error is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MalformedJson(_) => ErrorCode::MalformedJson,
            Self::Validation(_) => ErrorCode::ValidationError,
            Self::UnsupportedMediaType { .. } => ErrorCode::UnsupportedMediaType,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::NotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::Unavailable { .. } => ErrorCode::ServiceUnavailable,
            Self::InProgress(_) => ErrorCode::Conflict,
            Self::Locked { .. } => ErrorCode::RateLimited,
            Self::Refused { code, .. } => *code,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        match self {
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                error_response(code, "internal error", None)
            }
            Self::Validation(fields) => {
                let details = serde_json::json!({ "fields": fields });
                error_response(code, "request validation failed", Some(&details))
            }
            Self::Unavailable { message, details } => {
                error_response(code, &message, details.as_ref())
            }
            Self::NotFound => error_response(code, "no such resource", None),
            Self::InProgress(message) => {
                let mut response = error_response(code, &message, None);
                retry_after_a_second(&mut response);
                response
            }
            locked @ Self::Locked { seconds } => {
                let mut response = error_response(code, &locked.to_string(), None);
                if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
                response
            }
            other => error_response(code, &other.to_string(), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_in_progress_is_a_conflict_to_retry_by_its_type_not_its_wording() {
        let busy = ApiError::from(bw_commands::CommandError::IdempotencyInProgress).into_response();
        assert_eq!(busy.status(), StatusCode::CONFLICT);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
        // Another conflict whose message happens to say "in progress" is not retried.
        let other =
            ApiError::refused(ErrorCode::Conflict, "a rebuild is in progress").into_response();
        assert_eq!(other.status(), StatusCode::CONFLICT);
        assert!(other.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn a_locked_account_is_rate_limited_with_the_seconds_left_and_without_a_known_end_the_full_lockout()
     {
        let until = chrono::Utc::now() + chrono::TimeDelta::seconds(600);
        let locked =
            ApiError::from(bw_commands::CommandError::AccountLocked { until: Some(until) })
                .into_response();
        assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: i64 = locked.headers()[header::RETRY_AFTER]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((598..=600).contains(&wait), "{wait}");
        let unknown = ApiError::from(bw_commands::CommandError::AccountLocked { until: None })
            .into_response();
        assert_eq!(unknown.headers()[header::RETRY_AFTER], "900");
        let past = chrono::Utc::now() - chrono::TimeDelta::seconds(5);
        let ending = ApiError::from(bw_commands::CommandError::AccountLocked { until: Some(past) });
        assert_eq!(
            ending.to_string(),
            "too many failed logins; this account is locked for 1 s"
        );
    }

    #[test]
    fn a_broken_database_connection_is_unavailable_not_a_bug() {
        for broken in [
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            sqlx::Error::Protocol("expected ReadyForQuery".into()),
            sqlx::Error::PoolTimedOut,
        ] {
            assert!(
                matches!(database(broken), ApiError::Unavailable { .. }),
                "503 for a database that went away"
            );
        }
        assert!(matches!(
            database(sqlx::Error::RowNotFound),
            ApiError::Internal(_)
        ));
    }

    #[test]
    fn an_internal_error_keeps_its_cause_chain_and_type_for_the_log() {
        let ApiError::Internal(cause) = database(sqlx::Error::RowNotFound) else {
            panic!("a bug, not a refusal");
        };
        let logged = format!("{cause:#}");
        assert!(logged.starts_with("database: "), "{logged}");
        assert!(
            logged.contains("no rows returned"),
            "the cause is kept: {logged}"
        );
        assert!(
            cause.downcast_ref::<sqlx::Error>().is_some(),
            "and its type"
        );
        let shown = ApiError::Internal(cause).into_response();
        assert_eq!(shown.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn every_code_serialises_in_screaming_snake_case() {
        assert_eq!(
            serde_json::to_value(ErrorCode::ApiKeyInvalid).ok(),
            Some(Value::from("API_KEY_INVALID"))
        );
        assert_eq!(
            serde_json::to_value(ErrorCode::MalformedJson).ok(),
            Some(Value::from("MALFORMED_JSON"))
        );
    }

    #[test]
    fn framework_statuses_map_to_codes_with_the_same_status() {
        for status in [404u16, 405, 413, 415, 422, 429, 503] {
            let status = StatusCode::from_u16(status).expect("valid status");
            assert_eq!(ErrorCode::for_status(status).status(), status);
        }
        assert_eq!(
            ErrorCode::for_status(StatusCode::REQUEST_TIMEOUT),
            ErrorCode::ServiceUnavailable
        );
    }
}
