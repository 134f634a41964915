//! The read models, each with its projection and its queries.

pub mod agents;
pub mod problems;
pub mod solutions;

use bw_infra::envelope::EventEnvelope;
use serde::de::DeserializeOwned;

use crate::ProjectionError;

/// Reads an event's payload as the domain event type, or fails naming the event.
pub(crate) fn decode<E: DeserializeOwned>(event: &EventEnvelope) -> Result<E, ProjectionError> {
    if event.event_version != "1" {
        return Err(apply_error(
            event,
            format!("unknown version {}", event.event_version),
        ));
    }
    serde_json::from_value(event.payload.clone()).map_err(|e| apply_error(event, e.to_string()))
}

pub(crate) fn apply_error(event: &EventEnvelope, reason: String) -> ProjectionError {
    ProjectionError::Apply {
        position: event.global_position,
        event_type: event.event_type.clone(),
        reason,
    }
}
