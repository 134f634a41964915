//! Middleware applied to every route, fallback included.
//!
//! [`request_context`] is the outermost layer of the router. For each request it
//!
//! 1. takes the `X-Request-Id` header when it is a sane token (≤ 128 visible ASCII characters), else
//!    makes a UUID v7, and echoes it on the response;
//! 2. opens the `http_request` span carrying `request_id`, so every log line of the request has it;
//! 3. makes the id available to envelopes ([`crate::envelope::current_request_id`]);
//! 4. guarantees the error envelope: a 4xx/5xx response without a JSON body (the framework's own 404,
//!    405, 413, timeouts, panics) is rewritten into the envelope, keeping its status and headers;
//! 5. records the HTTP metrics and one access-log line; request headers (redacted) are logged at
//!    `debug`.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, header},
    middleware::Next,
    response::Response,
};
use bw_infra::{
    metrics::{RequestLabels, RouteLabels},
    telemetry::redact::{REDACTED, is_sensitive_name},
};
use tracing::Instrument;

use crate::{
    envelope::{noting_deprecated_key, with_request_id},
    error::{ErrorCode, error_response},
    extract::BodyLimit,
    state::AppState,
};

/// The request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
const MAX_REQUEST_ID_LEN: usize = 128;

/// See the module documentation.
pub async fn request_context(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %method,
        route = %route,
        path = %req.uri().path(),
    );
    req.extensions_mut()
        .insert(BodyLimit(state.limits.body_bytes));

    let http = &state.metrics.http;
    let _in_flight = InFlight::enter(&http.in_flight);
    let started = Instant::now();
    let handled = async move {
        tracing::debug!(
            headers = %redacted_headers(req.headers()),
            query = %redacted_query(req.uri().query().unwrap_or_default()),
            "request received"
        );
        let response = next.run(req).await;
        ensure_envelope(response)
    }
    .instrument(span.clone());
    let (mut response, key_deprecated) =
        with_request_id(request_id.clone(), noting_deprecated_key(handled)).await;
    if key_deprecated {
        response.headers_mut().insert(
            HeaderName::from_static("x-bw-key-deprecated"),
            HeaderValue::from_static("true"),
        );
    }
    let elapsed = started.elapsed();

    let status = response.status();
    http.requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    http.duration
        .get_or_create(&RouteLabels { method, route })
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), duration_ms, "request completed");
        } else {
            tracing::info!(status = status.as_u16(), duration_ms, "request completed");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// Whether a client-supplied request id can be trusted into logs and headers as is.
pub fn is_acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// Counts a request in flight until dropped, so a request whose client went away is still counted out.
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Rewrites an error response that is not JSON into the error envelope (same status and headers).
fn ensure_envelope(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let code = ErrorCode::for_status(status);
    let message = match code {
        ErrorCode::NotFound => "no such route",
        ErrorCode::MethodNotAllowed => "method not allowed on this route",
        ErrorCode::PayloadTooLarge => "request body too large",
        ErrorCode::UnsupportedMediaType => "unsupported content type",
        ErrorCode::ServiceUnavailable => "the request could not be completed in time; retry",
        ErrorCode::InternalError => "internal error",
        _ => "request rejected",
    };
    let (parts, _) = response.into_parts();
    let mut enveloped = error_response(code, message, None);
    *enveloped.status_mut() = status;
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            enveloped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    enveloped
}

/// Request headers as a JSON object with sensitive values replaced.
pub fn redacted_headers(headers: &HeaderMap) -> String {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, value)| {
            let shown = if is_sensitive_name(name.as_str()) {
                REDACTED.to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), serde_json::Value::String(shown))
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// A query string with the values of sensitive parameters replaced.
pub fn redacted_query(query: &str) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_sensitive_name(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Builds the answer to a panicking handler: the envelope with a generic message; the panic is logged.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = detail, "handler panicked");
    error_response(ErrorCode::InternalError, "internal error", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_clients_are_bounded_and_visible_ascii() {
        assert!(is_acceptable_request_id(
            "0192f5e4-7c1a-7b3e-9a51-3f1c2d4e5f60"
        ));
        assert!(is_acceptable_request_id("trace-abc_123"));
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id("has space"));
        assert!(!is_acceptable_request_id("quote\"inject"));
        assert!(!is_acceptable_request_id(&"x".repeat(129)));
    }

    #[test]
    fn sensitive_headers_and_query_parameters_are_redacted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-live-123"),
        );
        headers.insert(header::COOKIE, HeaderValue::from_static("session=abc"));
        headers.insert("x-api-key", HeaderValue::from_static("k-999"));
        headers.insert(header::USER_AGENT, HeaderValue::from_static("agent/1.0"));
        let shown = redacted_headers(&headers);
        assert!(shown.contains("agent/1.0"), "{shown}");
        for secret in ["sk-live-123", "session=abc", "k-999"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(
            redacted_query("limit=20&password=hunter2&email=a%40b.org&token=t"),
            "limit=20&password=[redacted]&email=[redacted]&token=[redacted]"
        );
    }
}
