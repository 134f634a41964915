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

/// Fails the event unless its update touched exactly one row: what an event updates must already be
/// in the read model, and a silent no-op would hide an out-of-order or missing event.
pub(crate) fn expect_one(
    result: &sqlx::postgres::PgQueryResult,
    event: &EventEnvelope,
    what: impl FnOnce() -> String,
) -> Result<(), ProjectionError> {
    if result.rows_affected() == 1 {
        Ok(())
    } else {
        Err(apply_error(event, what()))
    }
}

/// A keyset page: `rows` were fetched with `limit + 1`; returns at most `limit` rows and, when
/// there are more, the cursor of the last row returned.
pub(crate) fn page<T, C>(
    mut rows: Vec<T>,
    limit: i64,
    cursor: impl Fn(&T) -> C,
) -> (Vec<T>, Option<C>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(cursor);
        (rows, next)
    } else {
        (rows, None)
    }
}
