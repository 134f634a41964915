//! Route handlers, one module per area.

pub mod admin;
pub mod agents;
pub mod audit;
pub mod evidence;
pub mod heartbeat;
pub mod humans;
pub mod missions;
pub mod ops;
pub mod peer_reviews;
pub mod problems;
pub mod review;
pub mod search;
pub mod solutions;
pub mod tokens;
pub mod verification;

use bw_domain::DomainError;
use uuid::Uuid;

use crate::{
    auth::MaybeAgent,
    error::{ApiError, ErrorCode, FieldErrors},
};

/// Registrations are anonymous, so their idempotency scope is shared by everyone: a guessable key
/// would let another client replay the response. Keys must be long enough to be random (a UUID is 36).
const MIN_ANONYMOUS_KEY_LEN: usize = 32;

/// Refuses an `Idempotency-Key` too short to be random on an anonymous command.
pub(crate) fn require_random_key<T>(body: &crate::command::CommandBody<T>) -> Result<(), ApiError> {
    if body
        .idempotency_key()
        .is_some_and(|k| k.len() < MIN_ANONYMOUS_KEY_LEN)
    {
        return Err(ApiError::field(
            "Idempotency-Key",
            format!(
                "registration keys must be at least {MIN_ANONYMOUS_KEY_LEN} random characters (use a UUID)"
            ),
        ));
    }
    Ok(())
}

/// Collects every field's error, so a client learns all that is wrong with a request at once.
#[derive(Debug, Default)]
pub(crate) struct Fields(FieldErrors);

impl Fields {
    /// Keeps the value, or records the error and returns `None`.
    pub(crate) fn check<T>(&mut self, result: Result<T, DomainError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(DomainError::InvalidValue { field, message }) => {
                self.0.entry(field.to_owned()).or_default().push(message);
                None
            }
            Err(other) => {
                self.0
                    .entry("body".to_owned())
                    .or_default()
                    .push(other.to_string());
                None
            }
        }
    }

    /// Parses an optional value.
    pub(crate) fn optional<T>(
        &mut self,
        raw: Option<&str>,
        parse: impl Fn(&str) -> Result<T, DomainError>,
    ) -> Option<T> {
        raw.and_then(|r| self.check(parse(r)))
    }

    /// Records an error on a field.
    pub(crate) fn error(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// `Ok` when nothing was recorded.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// A resource id from the path; anything but a UUID names no resource.
pub(crate) fn parse_path_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// `limit`: 1–100, default 20.
pub(crate) fn page_limit(fields: &mut Fields, raw: Option<&str>) -> i64 {
    match raw.map(str::parse::<i64>) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            fields.error("limit", "must be an integer from 1 to 100");
            20
        }
    }
}

/// A boolean query parameter (`true` / `false`, absent = false).
pub(crate) fn flag(fields: &mut Fields, name: &str, raw: Option<&str>) -> bool {
    match raw {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            fields.error(name, "must be true or false");
            false
        }
    }
}

/// With `mine=true`, the calling agent (who must be authenticated); otherwise nobody.
pub(crate) fn owner_if(mine: bool, agent: MaybeAgent) -> Result<Option<Uuid>, ApiError> {
    if !mine {
        return Ok(None);
    }
    agent.0.map(|a| Some(a.agent_id)).ok_or_else(|| {
        ApiError::refused(
            ErrorCode::Unauthorized,
            "mine=true needs an agent's API key",
        )
    })
}

/// What the owner of non-approved content is told: where it stands, never the classifier's reasoning.
pub(crate) fn explanation(guardrail_status: &str) -> &'static str {
    if guardrail_status == "rejected" {
        "did not meet constitutional guidelines"
    } else {
        "pending review"
    }
}

/// Parses an opaque `cursor` query parameter with the read model's `decode`; a cursor this API did
/// not issue is `400 INVALID_CURSOR`.
pub(crate) fn cursor<C>(
    raw: Option<&str>,
    decode: impl Fn(&str) -> Option<C>,
) -> Result<Option<C>, ApiError> {
    raw.map(|raw| {
        decode(raw).ok_or_else(|| {
            ApiError::refused(
                ErrorCode::InvalidCursor,
                "the cursor is not one this API issued",
            )
        })
    })
    .transpose()
}

/// The `meta` of a list response.
pub(crate) fn page_meta(next_cursor: Option<String>, count: usize) -> serde_json::Value {
    let meta = crate::schema::PageMeta {
        has_more: next_cursor.is_some(),
        next_cursor,
        count: u32::try_from(count).unwrap_or(u32::MAX),
    };
    serde_json::to_value(meta).unwrap_or_default()
}
