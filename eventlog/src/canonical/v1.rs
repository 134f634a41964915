//! The canonical form logs were hashed with before ADR 0007 (`"bw.event.v1"`), kept so that
//! `betterworld events rehash` can check a log written with it before re-deriving its hashes.
//!
//! It serialised payload and metadata with serde_json from parsed values, so its bytes depended on
//! how a float was parsed and printed: a reader that parsed a stored number to a neighbouring `f64`
//! (serde_json without `float_roundtrip` does so for about one float in ten) or met `-0.0` (stored
//! by `jsonb` as `0.0`) or a float of 1e16 or more (returned by `jsonb` as an integer) got other
//! bytes than the writer had hashed. This workspace parses floats exactly, which leaves only those
//! last two cases; the rehash names any event that still does not verify.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::EventForHash;

/// The v1 canonical bytes of an event whose payload and metadata are given as parsed values.
pub fn canonical_bytes(e: &EventForHash<'_>, payload: &Value, metadata: &Value) -> Vec<u8> {
    let array = json!([
        "bw.event.v1",
        e.event_id.hyphenated().to_string(),
        e.aggregate_type,
        e.aggregate_id,
        e.sequence,
        e.event_type,
        e.event_version,
        e.recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        payload,
        metadata,
    ]);
    // serde_json's map keeps keys sorted (this workspace never enables `preserve_order`).
    serde_json::to_vec(&array).unwrap_or_default()
}

/// The v1 chained hash of an event; `None` when its payload or metadata is not JSON.
pub fn chain_hash(previous: &[u8; 32], e: &EventForHash<'_>) -> Option<[u8; 32]> {
    let payload: Value = serde_json::from_str(e.payload).ok()?;
    let metadata: Value = serde_json::from_str(e.metadata).ok()?;
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical_bytes(e, &payload, &metadata));
    Some(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn the_v1_form_is_the_one_logs_were_written_with() {
        let e = EventForHash {
            event_id: Uuid::from_u128(0x0192f5e4_7c1a_7b3e_9a51_3f1c2d4e5f60),
            aggregate_type: "Problem",
            aggregate_id: "p-1",
            sequence: 1,
            event_type: "ProblemReported",
            event_version: "1",
            recorded_at: DateTime::from_timestamp(1_700_000_000, 123_456_000).expect("valid"),
            payload: r#"{"b": 1, "a": {"z": true, "y": [2, 1]}}"#,
            metadata: r#"{"actor": "agent:1"}"#,
        };
        let payload: Value = serde_json::from_str(e.payload).expect("json");
        let metadata: Value = serde_json::from_str(e.metadata).expect("json");
        assert_eq!(
            String::from_utf8(canonical_bytes(&e, &payload, &metadata)).expect("utf-8"),
            r#"["bw.event.v1","0192f5e4-7c1a-7b3e-9a51-3f1c2d4e5f60","Problem","p-1",1,"ProblemReported","1","2023-11-14T22:13:20.123456Z",{"a":{"y":[2,1],"z":true},"b":1},{"actor":"agent:1"}]"#
        );
    }
}
