//! The canonical byte form of an event and the per-stream hash chain.
//!
//! ```text
//! canonical(e) = UTF-8 JSON, no whitespace, object keys sorted by code point, of the array
//!   ["bw.event.v1", event_id, aggregate_type, aggregate_id, sequence, event_type, event_version,
//!    recorded_at, payload, metadata]
//!   event_id    lower-case hyphenated UUID
//!   sequence    JSON integer
//!   recorded_at RFC 3339, UTC, exactly 6 fractional digits, `Z` suffix
//! hash(e)      = SHA-256( hash(previous event of the same stream) || canonical(e) )
//!                where the "previous hash" of a stream's first event is 32 zero bytes
//! ```
//!
//! The global position is deliberately outside the hash: it is assigned by PostgreSQL in the insert,
//! while the chain is computed before it. Anyone holding the events of a stream can recompute the
//! chain (see `docs/event-catalog.md`, "Verifying a stream").

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The hash before a stream's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The fields of an event that are hashed.
#[derive(Debug, Clone, Copy)]
pub struct EventForHash<'a> {
    pub event_id: Uuid,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub recorded_at: DateTime<Utc>,
    pub payload: &'a Value,
    pub metadata: &'a Value,
}

/// The canonical bytes of an event. serde_json (without its `preserve_order` feature, which this
/// workspace never enables) keeps object keys sorted, so the output is canonical.
pub fn canonical_bytes(e: &EventForHash<'_>) -> Vec<u8> {
    let array = json!([
        "bw.event.v1",
        e.event_id.hyphenated().to_string(),
        e.aggregate_type,
        e.aggregate_id,
        e.sequence,
        e.event_type,
        e.event_version,
        e.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        sorted(e.payload),
        sorted(e.metadata),
    ]);
    serde_json::to_vec(&array).unwrap_or_default()
}

/// Re-builds a value so every object's keys are in sorted order whatever map type produced it.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: std::collections::BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The chained hash of an event.
pub fn chain_hash(previous: &[u8; 32], e: &EventForHash<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical_bytes(e));
    hasher.finalize().into()
}

/// Truncates a time to the microsecond precision PostgreSQL stores, so the hashed time and the
/// stored time are the same value.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(payload: &'a Value, metadata: &'a Value) -> EventForHash<'a> {
        EventForHash {
            event_id: Uuid::from_u128(0x0192f5e4_7c1a_7b3e_9a51_3f1c2d4e5f60),
            aggregate_type: "Problem",
            aggregate_id: "p-1",
            sequence: 1,
            event_type: "ProblemReported",
            event_version: "1",
            recorded_at: DateTime::from_timestamp(1_700_000_000, 123_456_000).expect("valid"),
            payload,
            metadata,
        }
    }

    #[test]
    fn canonical_form_is_the_documented_one() {
        let payload = json!({"b": 1, "a": {"z": true, "y": [2, 1]}});
        let metadata = json!({"actor": "agent:1"});
        let bytes = canonical_bytes(&event(&payload, &metadata));
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            r#"["bw.event.v1","0192f5e4-7c1a-7b3e-9a51-3f1c2d4e5f60","Problem","p-1",1,"ProblemReported","1","2023-11-14T22:13:20.123456Z",{"a":{"y":[2,1],"z":true},"b":1},{"actor":"agent:1"}]"#
        );
    }

    #[test]
    fn the_chain_depends_on_the_previous_hash_and_every_field() {
        let payload = json!({"title": "x"});
        let metadata = json!({});
        let first = chain_hash(&GENESIS, &event(&payload, &metadata));
        assert_eq!(hex::encode(first).len(), 64);
        assert_ne!(
            chain_hash(&first, &event(&payload, &metadata)),
            first,
            "previous hash is chained"
        );
        let altered = json!({"title": "y"});
        assert_ne!(
            chain_hash(&GENESIS, &event(&altered, &metadata)),
            first,
            "payload is hashed"
        );
    }
}
