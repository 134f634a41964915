//! What every command endpoint shares: the JSON body kept as bytes (for the idempotency
//! fingerprint), the `Idempotency-Key`, the request's correlation data, and the response with
//! `Bw-Position`.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use bw_commands::{
    CommandContext,
    idempotency::{IdempotencyKey, StoredResponse},
};
use bw_domain::meta::Actor;
use serde::de::DeserializeOwned;

use crate::{envelope::ApiOk, error::ApiError};

/// The header carrying the global position of a command's last event.
pub const BW_POSITION: &str = "bw-position";

/// A command's JSON body with what idempotency needs.
#[derive(Debug)]
pub struct CommandBody<T> {
    /// The parsed body.
    pub body: T,
    raw: Bytes,
    key: Option<String>,
    method: String,
    path: String,
    traceparent: Option<String>,
}

/// The longest `Idempotency-Key` accepted.
const MAX_KEY_LEN: usize = 255;

impl<T, S> FromRequest<S> for CommandBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let key = idempotency_key(req.headers())?;
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let traceparent = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let raw = crate::extract::json_bytes(req, state).await?;
        let body = crate::extract::parse_json(&raw)?;
        Ok(Self {
            body,
            raw,
            key,
            method,
            path,
            traceparent,
        })
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|k| {
        !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
    });
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::field(
            "Idempotency-Key",
            format!("must be 1–{MAX_KEY_LEN} visible ASCII characters"),
        )
    })
}

impl<T> CommandBody<T> {
    /// The `Idempotency-Key` the client sent, if any.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The command context for `actor`, scoping the idempotency key to it.
    pub fn context(&self, actor: Actor) -> CommandContext {
        let idempotency = self
            .key
            .as_ref()
            .map(|k| IdempotencyKey::new(&actor.scope(), k, &self.method, &self.path, &self.raw));
        CommandContext {
            actor,
            correlation_id: crate::envelope::current_request_id().unwrap_or_default(),
            causation_id: None,
            traceparent: self.traceparent.clone(),
            idempotency,
        }
    }
}

/// The command context of a command with no body (`DELETE`): the `Idempotency-Key` fingerprints
/// the method and path.
pub fn context_without_body(
    headers: &HeaderMap,
    method: &str,
    path: &str,
    actor: Actor,
) -> Result<CommandContext, ApiError> {
    let key = idempotency_key(headers)?;
    Ok(CommandContext {
        idempotency: key.map(|k| IdempotencyKey::new(&actor.scope(), &k, method, path, b"")),
        actor,
        correlation_id: crate::envelope::current_request_id().unwrap_or_default(),
        causation_id: None,
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    })
}

/// Runs `command` on aggregate `A` `aggregate_id` for `actor` and answers with its response —
/// fresh, or the stored one when the request's `Idempotency-Key` was seen before.
pub async fn execute<A, T>(
    platform: &crate::state::Platform,
    actor: Actor,
    aggregate_id: uuid::Uuid,
    command: A::Command,
    body: &CommandBody<T>,
    respond: impl FnOnce(Option<i64>) -> StoredResponse,
) -> Result<CommandResponse, ApiError>
where
    A: cqrs_es::Aggregate<Error = bw_domain::DomainError, Services = ()>,
    A::Command: Clone,
{
    let ctx = body.context(actor);
    let outcome = platform
        .bus
        .execute::<A>(&aggregate_id.to_string(), command, &ctx, respond)
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

/// [`execute`] on a stream the handler has just named with a fresh UUID v7 (see
/// [`bw_commands::CommandBus::execute_new`]): nothing to load first.
pub async fn execute_new<A, T>(
    platform: &crate::state::Platform,
    actor: Actor,
    aggregate_id: uuid::Uuid,
    command: A::Command,
    body: &CommandBody<T>,
    respond: impl FnOnce(Option<i64>) -> StoredResponse,
) -> Result<CommandResponse, ApiError>
where
    A: cqrs_es::Aggregate<Error = bw_domain::DomainError, Services = ()>,
{
    let ctx = body.context(actor);
    let outcome = platform
        .bus
        .execute_new::<A>(&aggregate_id.to_string(), command, &ctx, respond)
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

/// A command's answer: the stored response (fresh or replayed) with `Bw-Position`.
#[derive(Debug)]
pub struct CommandResponse(pub StoredResponse);

impl IntoResponse for CommandResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::OK);
        let mut response = ApiOk::new(self.0.body).with_status(status).into_response();
        if let Some(position) = self.0.position
            && let Ok(value) = HeaderValue::from_str(&position.to_string())
        {
            response.headers_mut().insert(BW_POSITION, value);
        }
        response
    }
}
