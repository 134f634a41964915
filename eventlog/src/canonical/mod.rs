//! The canonical byte form of an event and the per-stream hash chain (ADR 0007).
//!
//! ```text
//! canonical(e) = the UTF-8 bytes of the JSON array, without whitespace,
//!   ["bw.event.v2", event_id, aggregate_type, aggregate_id, sequence, event_type, event_version,
//!    recorded_at, payload, metadata]
//!   event_id          lower-case hyphenated UUID
//!   sequence          JSON integer
//!   recorded_at       RFC 3339, UTC, exactly 6 fractional digits, `Z` suffix
//!   strings           written as in `json` (minimal escapes)
//!   payload, metadata the canonical JSON of the stored value ([`json`]: sorted keys, exact decimals)
//! hash(e)      = SHA-256( hash(previous event of the same stream) || canonical(e) )
//!                where the "previous hash" of a stream's first event is 32 zero bytes
//! ```
//!
//! Payload and metadata are canonicalised from their JSON *text*: the writer's (what it sends to
//! PostgreSQL) and a reader's (what `jsonb` returns) give the same bytes, because `jsonb` keeps
//! numbers as exact decimals and [`json`] keeps exactly that. Nothing passes through an `f64`.
//!
//! The global position is deliberately outside the hash: it is assigned by PostgreSQL in the insert,
//! while the chain is computed before it. Anyone holding the events of a stream can recompute the
//! chain (see `docs/event-catalog.md`, "Verifying a stream"). [`v1`] is the form logs were written
//! in before ADR 0007, kept for `betterworld events rehash`.

#[cfg(any(test, feature = "testing"))]
pub mod arbitrary;
pub mod json;
pub mod v1;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The hash before a stream's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The name of the canonical form this module computes, its first element.
pub const FORM: &str = "bw.event.v2";

/// The fields of an event that are hashed; payload and metadata as JSON text.
#[derive(Debug, Clone, Copy)]
pub struct EventForHash<'a> {
    pub event_id: Uuid,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub recorded_at: DateTime<Utc>,
    /// JSON text.
    pub payload: &'a str,
    /// JSON text.
    pub metadata: &'a str,
}

/// The canonical bytes of an event; an error when its payload or metadata is not strict JSON.
pub fn canonical_bytes(e: &EventForHash<'_>) -> Result<Vec<u8>, json::Error> {
    let mut out = Vec::with_capacity(192 + e.payload.len() + e.metadata.len());
    out.push(b'[');
    json::write_string(FORM, &mut out);
    for field in [
        &e.event_id.hyphenated().to_string(),
        e.aggregate_type,
        e.aggregate_id,
    ] {
        out.push(b',');
        json::write_string(field, &mut out);
    }
    out.push(b',');
    out.extend_from_slice(e.sequence.to_string().as_bytes());
    for field in [
        e.event_type,
        e.event_version,
        &e.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    ] {
        out.push(b',');
        json::write_string(field, &mut out);
    }
    out.push(b',');
    json::canonicalize_into(e.payload, &mut out)?;
    out.push(b',');
    json::canonicalize_into(e.metadata, &mut out)?;
    out.push(b']');
    Ok(out)
}

/// The chained hash of an event.
pub fn chain_hash(previous: &[u8; 32], e: &EventForHash<'_>) -> Result<[u8; 32], json::Error> {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical_bytes(e)?);
    Ok(hasher.finalize().into())
}

/// Truncates a time to the microsecond precision PostgreSQL stores, so the hashed time and the
/// stored time are the same value.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(payload: &'a str, metadata: &'a str) -> EventForHash<'a> {
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
        let bytes = canonical_bytes(&event(
            r#"{"b": 1.50, "a": {"z": true, "y": [2, 1e-7]}}"#,
            r#"{"actor": "agent:1"}"#,
        ))
        .expect("canonical");
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            r#"["bw.event.v2","0192f5e4-7c1a-7b3e-9a51-3f1c2d4e5f60","Problem","p-1",1,"ProblemReported","1","2023-11-14T22:13:20.123456Z",{"a":{"y":[2,0.0000001],"z":true},"b":1.5},{"actor":"agent:1"}]"#
        );
        // The example of docs/event-catalog.md, "Verifying a stream" (also computed there with
        // Python's hashlib over the bytes written out by hand).
        assert_eq!(
            hex::encode(chain_hash(&GENESIS, &event(r#"{"b":1.5}"#, "{}")).expect("hash")),
            "2677508b49a826d5dbce439bedeac8bc7c1361eb467b14c9dec5470360c57c42"
        );
    }

    #[test]
    fn the_chain_depends_on_the_previous_hash_and_every_field() {
        let first = chain_hash(&GENESIS, &event(r#"{"title":"x"}"#, "{}")).expect("hash");
        assert_ne!(
            chain_hash(&first, &event(r#"{"title":"x"}"#, "{}")).expect("hash"),
            first,
            "previous hash is chained"
        );
        assert_ne!(
            chain_hash(&GENESIS, &event(r#"{"title":"y"}"#, "{}")).expect("hash"),
            first,
            "payload is hashed"
        );
        assert_eq!(
            chain_hash(&GENESIS, &event("{ \"title\" : \"\\u0078\" }", "{ }")).expect("hash"),
            first,
            "only the value counts, not how it was written"
        );
        assert!(chain_hash(&GENESIS, &event("{\"title\":", "{}")).is_err());
    }
}
