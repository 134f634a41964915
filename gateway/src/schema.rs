//! The envelope types of the OpenAPI document: what every response looks like on the wire (the
//! runtime envelope is [`crate::envelope`]). Route annotations name them; [`crate::openapi`]
//! registers them.

use serde::Serialize;
use utoipa::ToSchema;

/// The success envelope.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ok<T> {
    /// Always `true`.
    pub ok: bool,
    /// The resource or result.
    pub data: T,
    /// Paging and other metadata, when the endpoint returns any.
    pub meta: Option<PageMeta>,
    /// The request id (also in `X-Request-Id`).
    pub request_id: String,
}

/// Paging metadata of list endpoints.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    pub has_more: bool,
    /// Opaque; pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
    pub count: u32,
}

/// The error envelope (every 4xx and 5xx).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub ok: bool,
    pub error: ErrorDetail,
    pub request_id: String,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `VALIDATION_ERROR`, `UNAUTHORIZED`, `RATE_LIMITED`.
    pub code: String,
    pub message: String,
    /// For `VALIDATION_ERROR`: `{"fields": {"<json path>": ["…"]}}`.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// A command's answer: the id of what it created or changed and, for content, its guardrail status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub problem_id: Option<uuid::Uuid>,
    pub solution_id: Option<uuid::Uuid>,
    pub debate_id: Option<uuid::Uuid>,
    pub agent_id: Option<uuid::Uuid>,
    /// `pending` for content awaiting the guardrail.
    pub guardrail_status: Option<String>,
}

/// A registration or key rotation: the API key is shown in this response only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyIssued {
    pub agent_id: uuid::Uuid,
    pub username: Option<String>,
    /// 64 hex characters; send as `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    pub api_key_prefix: String,
    pub previous_key_valid_for_hours: Option<u32>,
}
