//! The success envelope and the request id of the request being served.
//!
//! The request id lives in a task-local set by the request middleware for the duration of the
//! request, so every envelope (success or error, built anywhere in the handler's task) carries it
//! without threading it through every function.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

tokio::task_local! {
    static REQUEST_ID: String;
    static KEY_DEPRECATED: std::cell::Cell<bool>;
}

/// Runs `f` noting whether it authenticated with a deprecated (rotated-out) API key; returns its
/// output and that flag, which the request middleware turns into `X-BW-Key-Deprecated: true`.
pub async fn noting_deprecated_key<F: Future>(f: F) -> (F::Output, bool) {
    KEY_DEPRECATED
        .scope(std::cell::Cell::new(false), async move {
            let output = f.await;
            (
                output,
                KEY_DEPRECATED
                    .try_with(std::cell::Cell::get)
                    .unwrap_or(false),
            )
        })
        .await
}

/// Records that the request authenticated with a key in its rotation grace period.
pub fn mark_key_deprecated() {
    let _ = KEY_DEPRECATED.try_with(|flag| flag.set(true));
}

/// Runs `f` with `id` as the current request id.
pub async fn with_request_id<F: Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The id of the request being served, or `None` outside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// `{"ok": true, "data": …, "meta": …?, "requestId": …}` with a status.
#[derive(Debug)]
pub struct ApiOk<T> {
    status: StatusCode,
    data: T,
    meta: Option<serde_json::Value>,
}

impl<T: Serialize> ApiOk<T> {
    /// 200 with `data`.
    pub fn new(data: T) -> Self {
        Self {
            status: StatusCode::OK,
            data,
            meta: None,
        }
    }

    /// Another success status (201 created, 202 accepted).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds `meta` (pagination and the like).
    pub fn with_meta(mut self, meta: serde_json::Value) -> Self {
        self.meta = Some(meta);
        self
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OkBody<'a, T> {
    ok: bool,
    data: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a serde_json::Value>,
    request_id: Option<String>,
}

impl<T: Serialize> IntoResponse for ApiOk<T> {
    fn into_response(self) -> Response {
        let body = OkBody {
            ok: true,
            data: &self.data,
            meta: self.meta.as_ref(),
            request_id: current_request_id(),
        };
        (self.status, Json(body)).into_response()
    }
}
