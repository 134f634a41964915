//! Extractors that answer bad input with the error envelope.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::header,
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldErrors};

/// JSON body extractor: like `axum::Json`, but every failure is an [`ApiError`]:
///
/// | input | answer |
/// |---|---|
/// | no `Content-Type: application/json` (or `+json`) | 415 `UNSUPPORTED_MEDIA_TYPE` |
/// | body over the limit | 413 `PAYLOAD_TOO_LARGE` |
/// | not JSON (syntax error, truncated, empty) | 400 `MALFORMED_JSON` |
/// | JSON of the wrong shape (missing, unknown or mistyped fields) | 422 `VALIDATION_ERROR` with `details.fields` keyed by the JSON path |
///
/// Request types reject unknown fields with `#[serde(deny_unknown_fields)]`; this extractor reports
/// them like any other field error.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        parse_json(&bytes).map(AppJson)
    }
}

/// Reads a JSON request's body: checks the content type (415) and the size limit (413).
pub async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if !is_json(&req) {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(usize::MAX, |l| l.0);
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::MalformedJson(rejection.body_text())
        }
    })
}

/// The body limit in force, recorded by the router so extractors can name it in their errors.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn is_json(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON body, classifying failures as malformed (400) or invalid (422 with field paths).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        classify(&path, error.into_inner())
    })?;
    // Trailing bytes after the value make the body malformed, not merely invalid.
    deserializer.end().map_err(|e| classify(".", e))?;
    Ok(value)
}

fn classify(path: &str, error: serde_json::Error) -> ApiError {
    match error.classify() {
        serde_json::error::Category::Data => {
            let message = strip_position(&error.to_string());
            let field = field_name(path, &message);
            let mut fields = FieldErrors::new();
            fields.entry(field).or_default().push(message);
            ApiError::Validation(fields)
        }
        _ => ApiError::MalformedJson(error.to_string()),
    }
}

/// The JSON path of the offending field. serde reports unknown and missing fields at the path of
/// their parent object, with the name only in the message, so the name is appended here.
fn field_name(path: &str, message: &str) -> String {
    let parent = if path == "." || path.is_empty() {
        None
    } else {
        Some(path)
    };
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (parent, named) {
        // serde_path_to_error sometimes already ends the path with the unknown field's name.
        (Some(parent), Some(name)) if parent == name || parent.ends_with(&format!(".{name}")) => {
            parent.to_owned()
        }
        (Some(parent), Some(name)) => format!("{parent}.{name}"),
        (None, Some(name)) => name.to_owned(),
        (Some(parent), None) => parent.to_owned(),
        (None, None) => "body".to_owned(),
    }
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        title: String,
        nested: Nested,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        count: u32,
    }

    fn fields(err: ApiError) -> FieldErrors {
        match err {
            ApiError::Validation(fields) => fields,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_are_malformed() {
        assert!(matches!(
            parse_json::<Probe>(b"{\"title\": "),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_json::<Probe>(b""),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_json::<Probe>(br#"{"title":"t","nested":{"count":1}} x"#),
            Err(ApiError::MalformedJson(_))
        ));
    }

    #[test]
    fn shape_errors_name_the_field_path() {
        let err = parse_json::<Probe>(br#"{"title": "t", "nested": {"count": "many"}}"#)
            .expect_err("mistyped");
        let mistyped = fields(err);
        assert!(
            mistyped["nested.count"][0].starts_with("invalid type: string"),
            "{mistyped:?}"
        );

        let err = parse_json::<Probe>(br#"{"title": "t", "nested": {"count": 1}, "extra": 1}"#)
            .expect_err("unknown");
        assert!(fields(err)["extra"][0].contains("unknown field `extra`"));

        let err = parse_json::<Probe>(br#"{"title": "t", "nested": {"count": 1, "x": 2}}"#)
            .expect_err("unknown");
        assert!(fields(err)["nested.x"][0].contains("unknown field `x`"));

        let err = parse_json::<Probe>(br#""just a string""#).expect_err("not an object");
        assert!(fields(err).contains_key("body"));

        let err = parse_json::<Probe>(br#"{"nested": {"count": 1}}"#).expect_err("missing");
        assert!(fields(err)["title"][0].contains("missing field `title`"));
    }
}
