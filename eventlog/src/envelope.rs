//! The event envelope as it travels: a row of the log, or a JetStream message carrying it.
//!
//! The message body is the event's payload (JSON, as stored); everything else travels in headers:
//!
//! | header | value |
//! |---|---|
//! | `Nats-Msg-Id` | event id (JetStream deduplicates re-publishes within the stream's window) |
//! | `Bw-Event-Id` | event id (UUID v7) |
//! | `Bw-Position` | global position (commit-safe order) |
//! | `Bw-Aggregate-Type`, `Bw-Aggregate-Id`, `Bw-Sequence` | the stream and the event's place in it |
//! | `Bw-Event-Type`, `Bw-Event-Version` | what the payload is |
//! | `Bw-Recorded-At` | RFC 3339 time the command was recorded (projectors use it; never the clock) |
//! | `Bw-Actor` | who issued the command (`agent:<id>`, `anonymous`, …) |
//! | `Bw-Correlation-Id`, `Bw-Causation-Id` | request id; event that caused the command (if any) |
//! | `traceparent` | W3C trace context of the request (if any) |

use async_nats::HeaderMap;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use uuid::Uuid;

/// Header names.
pub mod header {
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const EVENT_ID: &str = "Bw-Event-Id";
    pub const POSITION: &str = "Bw-Position";
    pub const AGGREGATE_TYPE: &str = "Bw-Aggregate-Type";
    pub const AGGREGATE_ID: &str = "Bw-Aggregate-Id";
    pub const SEQUENCE: &str = "Bw-Sequence";
    pub const EVENT_TYPE: &str = "Bw-Event-Type";
    pub const EVENT_VERSION: &str = "Bw-Event-Version";
    pub const RECORDED_AT: &str = "Bw-Recorded-At";
    pub const ACTOR: &str = "Bw-Actor";
    pub const CORRELATION_ID: &str = "Bw-Correlation-Id";
    pub const CAUSATION_ID: &str = "Bw-Causation-Id";
    pub const TRACEPARENT: &str = "traceparent";
}

/// One event of the log with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    pub event_id: Uuid,
    pub global_position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    pub payload: Value,
    pub metadata: Value,
}

/// A message that is not a well-formed event envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event message: {0}")]
pub struct MalformedEnvelope(pub String);

impl EventEnvelope {
    /// The JetStream headers of this event.
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let id = self.event_id.to_string();
        h.insert(header::MSG_ID, id.as_str());
        h.insert(header::EVENT_ID, id.as_str());
        h.insert(header::POSITION, self.global_position.to_string().as_str());
        h.insert(header::AGGREGATE_TYPE, self.aggregate_type.as_str());
        h.insert(header::AGGREGATE_ID, self.aggregate_id.as_str());
        h.insert(header::SEQUENCE, self.sequence.to_string().as_str());
        h.insert(header::EVENT_TYPE, self.event_type.as_str());
        h.insert(header::EVENT_VERSION, self.event_version.as_str());
        h.insert(
            header::RECORDED_AT,
            self.recorded_at
                .to_rfc3339_opts(SecondsFormat::Micros, true)
                .as_str(),
        );
        let meta = |k: &str| self.metadata.get(k).and_then(Value::as_str);
        if let Some(actor) = meta("actor") {
            h.insert(header::ACTOR, actor);
        }
        if let Some(c) = meta("correlationId") {
            h.insert(header::CORRELATION_ID, c);
        }
        if let Some(c) = meta("causationId") {
            h.insert(header::CAUSATION_ID, c);
        }
        if let Some(t) = meta("traceparent") {
            h.insert(header::TRACEPARENT, t);
        }
        h
    }

    /// Reads an envelope back from a message's headers and body. Metadata is rebuilt from the headers
    /// that carry it.
    pub fn from_message(
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Result<Self, MalformedEnvelope> {
        let headers = headers.ok_or_else(|| MalformedEnvelope("no headers".into()))?;
        let get = |name: &str| {
            headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .ok_or_else(|| MalformedEnvelope(format!("missing header {name}")))
        };
        let parse_err = |name: &str, e: &dyn std::fmt::Display| {
            MalformedEnvelope(format!("header {name}: {e}"))
        };
        let mut metadata = serde_json::Map::new();
        for (key, name) in [
            ("actor", header::ACTOR),
            ("correlationId", header::CORRELATION_ID),
            ("causationId", header::CAUSATION_ID),
            ("traceparent", header::TRACEPARENT),
        ] {
            if let Some(v) = headers.get(name) {
                metadata.insert(key.to_owned(), Value::String(v.as_str().to_owned()));
            }
        }
        Ok(Self {
            event_id: get(header::EVENT_ID)?
                .parse()
                .map_err(|e| parse_err(header::EVENT_ID, &e))?,
            global_position: get(header::POSITION)?
                .parse()
                .map_err(|e| parse_err(header::POSITION, &e))?,
            aggregate_type: get(header::AGGREGATE_TYPE)?,
            aggregate_id: get(header::AGGREGATE_ID)?,
            sequence: get(header::SEQUENCE)?
                .parse()
                .map_err(|e| parse_err(header::SEQUENCE, &e))?,
            event_type: get(header::EVENT_TYPE)?,
            event_version: get(header::EVENT_VERSION)?,
            recorded_at: get(header::RECORDED_AT)?
                .parse()
                .map_err(|e| parse_err(header::RECORDED_AT, &e))?,
            payload: serde_json::from_slice(payload)
                .map_err(|e| MalformedEnvelope(format!("payload: {e}")))?,
            metadata: Value::Object(metadata),
        })
    }
}

/// The columns [`EventEnvelope::from_row`] reads.
pub const COLUMNS: &str = "global_position, event_id, aggregate_type, aggregate_id, sequence, event_type, \
                           event_version, payload, metadata, recorded_at";

impl EventEnvelope {
    /// Reads an envelope from a row of the `events` table (selected with [`COLUMNS`]).
    pub fn from_row(r: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            event_id: r.try_get("event_id")?,
            global_position: r.try_get("global_position")?,
            aggregate_type: r.try_get("aggregate_type")?,
            aggregate_id: r.try_get("aggregate_id")?,
            sequence: r.try_get("sequence")?,
            event_type: r.try_get("event_type")?,
            event_version: r.try_get("event_version")?,
            recorded_at: r.try_get("recorded_at")?,
            payload: r.try_get("payload")?,
            metadata: r.try_get("metadata")?,
        })
    }
}

/// The log's events with `after < global_position <= upto` of the given aggregate types (all types
/// when empty), in global order. Only meaningful for ranges the relay has already published, whose
/// contents are final.
pub async fn read_range(
    conn: &mut sqlx::PgConnection,
    after: i64,
    upto: i64,
    aggregate_types: &[&str],
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events
         WHERE global_position > $1 AND global_position <= $2
           AND (cardinality($3::text[]) = 0 OR aggregate_type = ANY($3))
         ORDER BY global_position"
    ))
    .bind(after)
    .bind(upto)
    .bind(aggregate_types)
    .fetch_all(conn)
    .await?;
    rows.iter().map(EventEnvelope::from_row).collect()
}

/// The log's events at `positions` (those that exist), in global order.
pub async fn read_positions(
    conn: &mut sqlx::PgConnection,
    positions: &[i64],
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE global_position = ANY($1) ORDER BY global_position"
    ))
    .bind(positions)
    .fetch_all(conn)
    .await?;
    rows.iter().map(EventEnvelope::from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_through_headers() {
        let envelope = EventEnvelope {
            event_id: Uuid::now_v7(),
            global_position: (12_345 << 20) | 2,
            aggregate_type: "Problem".into(),
            aggregate_id: Uuid::from_u128(9).to_string(),
            sequence: 3,
            event_type: "ProblemEdited".into(),
            event_version: "1".into(),
            recorded_at: DateTime::from_timestamp(1_700_000_000, 1_000).expect("valid"),
            payload: serde_json::json!({"type": "ProblemEdited", "data": {"x": 1}}),
            metadata: serde_json::json!({"actor": "agent:1", "correlationId": "req-1", "traceparent": "00-abc-def-01"}),
        };
        let headers = envelope.headers();
        assert_eq!(
            headers.get(header::MSG_ID).map(|v| v.as_str().to_owned()),
            Some(envelope.event_id.to_string())
        );
        let body = serde_json::to_vec(&envelope.payload).expect("json");
        assert_eq!(
            EventEnvelope::from_message(Some(&headers), &body),
            Ok(envelope)
        );
        assert!(EventEnvelope::from_message(None, &body).is_err());
    }
}
