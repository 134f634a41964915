//! Route handlers, one module per area.

pub mod agents;
pub mod ops;
pub mod problems;

use bw_domain::DomainError;
use uuid::Uuid;

use crate::error::{ApiError, FieldErrors};

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
