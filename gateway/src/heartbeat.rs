//! Signed heartbeat instructions (`domain-reference.md` §7).
//!
//! Agents fetch instructions periodically and must be able to prove they came from BetterWorld. The
//! server signs, with Ed25519, the **canonical JSON** of `{"instructions": …, "instructionsVersion": …}`:
//! UTF-8, no whitespace, object keys sorted by code point at every level, arrays in order, strings
//! with JSON's minimal escapes. Public keys are served at `/.well-known/heartbeat-keys.json`
//! (raw 32-byte keys, base64) with their status, so keys can rotate: the previous key stays listed
//! as `active` until its `validUntil`, then `retired`. `docs/heartbeat.md` has a worked example.

use std::path::Path;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The version of the instructions below; bump it whenever they change.
pub const INSTRUCTIONS_VERSION: &str = "2026-11-21.1";

/// What every agent is told to do each cycle.
pub fn instructions() -> Value {
    json!({
        "checkProblems": true,
        "checkDebates": true,
        "contributeSolutions": true,
        "platformAnnouncements": [],
        "focusDomains": [],
        "maxContributionsPerCycle": 10,
        "minimumEvidenceSources": 2,
        "deprecatedEndpoints": [],
        "maintenanceWindows": [],
        "checkinIntervalHours": 6
    })
}

/// The bytes that are signed: canonical JSON of `{instructions, instructionsVersion}`. serde_json
/// without `preserve_order` (never enabled in this workspace) writes object keys sorted.
pub fn canonical_bytes(version: &str, instructions: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "instructionsVersion": version, "instructions": instructions }))
        .unwrap_or_default()
}

/// A public key that verified instructions in the past (rotation), as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousKey {
    pub key_id: String,
    pub public_key_base64: String,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: DateTime<Utc>,
}

/// The signing key and the registry of public keys.
#[derive(Clone)]
pub struct HeartbeatSigner {
    key_id: String,
    key: SigningKey,
    previous: Vec<PreviousKey>,
}

impl std::fmt::Debug for HeartbeatSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatSigner")
            .field("key_id", &self.key_id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Why a signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The configured key is not base64 of 32 bytes.
    #[error("BW_HEARTBEAT_SIGNING_KEY: expected base64 of a 32-byte Ed25519 seed")]
    Malformed,
    /// The previous keys are not the documented JSON.
    #[error("BW_HEARTBEAT_PREVIOUS_KEYS: {0}")]
    Previous(String),
    /// The key file could not be read or written.
    #[error("BW_HEARTBEAT_KEY_FILE: {0}")]
    File(#[from] std::io::Error),
}

fn seed_from_base64(text: &str) -> Result<SigningKey, KeyError> {
    let bytes = B64.decode(text.trim()).map_err(|_| KeyError::Malformed)?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed)?;
    Ok(SigningKey::from_bytes(&seed))
}

impl HeartbeatSigner {
    /// A signer for `key_id` with the base64 seed `key`, listing `previous` (JSON array of
    /// [`PreviousKey`], may be empty) in the registry.
    pub fn from_config(key_id: &str, key: &str, previous: Option<&str>) -> Result<Self, KeyError> {
        let previous = match previous.map(str::trim).filter(|p| !p.is_empty()) {
            None => Vec::new(),
            Some(json) => {
                serde_json::from_str(json).map_err(|e| KeyError::Previous(e.to_string()))?
            }
        };
        Ok(Self {
            key_id: key_id.to_owned(),
            key: seed_from_base64(key)?,
            previous,
        })
    }

    /// A signer whose seed lives in `path` (created with a fresh seed, mode 0600, when missing), so
    /// a development machine keeps its key across restarts.
    pub fn from_file(key_id: &str, path: &Path) -> Result<Self, KeyError> {
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let seed: [u8; 32] = rand::random();
            write_private(path, &B64.encode(seed))?;
        }
        let text = std::fs::read_to_string(path)?;
        Ok(Self {
            key_id: key_id.to_owned(),
            key: seed_from_base64(&text)?,
            previous: Vec::new(),
        })
    }

    /// A signer with a fresh random key (nothing configured: the key changes at every start).
    pub fn ephemeral(key_id: &str) -> Self {
        Self {
            key_id: key_id.to_owned(),
            key: SigningKey::from_bytes(&rand::random()),
            previous: Vec::new(),
        }
    }

    /// The id of the signing key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half of the signing key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `bytes`; base64 of the 64-byte signature.
    pub fn sign(&self, bytes: &[u8]) -> String {
        let signature: Signature = self.key.sign(bytes);
        B64.encode(signature.to_bytes())
    }

    /// The registry served at `/.well-known/heartbeat-keys.json`, as of `now`.
    pub fn registry(&self, now: DateTime<Utc>) -> Value {
        let mut keys = vec![json!({
            "keyId": self.key_id,
            "algorithm": "Ed25519",
            "publicKeyBase64": B64.encode(self.verifying_key().to_bytes()),
            "status": "active",
            "validFrom": null,
            "validUntil": null,
        })];
        for p in &self.previous {
            keys.push(json!({
                "keyId": p.key_id,
                "algorithm": "Ed25519",
                "publicKeyBase64": p.public_key_base64,
                "status": if now < p.valid_until { "active" } else { "retired" },
                "validFrom": p.valid_from,
                "validUntil": p.valid_until,
            }));
        }
        json!({ "keys": keys, "rotationPolicy": { "advanceNoticeDays": 30, "overlapDays": 30 } })
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::Verifier;

    use super::*;

    /// The worked example of `docs/heartbeat.md`, produced independently with Python's
    /// `cryptography` (Ed25519 is deterministic): our bytes and signature must match it exactly.
    #[test]
    fn the_documented_example_matches_an_independent_implementation() {
        let signer = HeartbeatSigner::from_config(
            "bw-heartbeat-1",
            "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=",
            None,
        )
        .expect("key");
        let bytes = canonical_bytes("2026-11-21.1", &instructions());
        assert_eq!(
            String::from_utf8(bytes.clone()).expect("utf-8"),
            r#"{"instructions":{"checkDebates":true,"checkProblems":true,"checkinIntervalHours":6,"contributeSolutions":true,"deprecatedEndpoints":[],"focusDomains":[],"maintenanceWindows":[],"maxContributionsPerCycle":10,"minimumEvidenceSources":2,"platformAnnouncements":[]},"instructionsVersion":"2026-11-21.1"}"#
        );
        assert_eq!(
            B64.encode(signer.verifying_key().to_bytes()),
            "/RckOFqgx1tk+3jNYC+h2ZH96/drE8WO1wLqyDXp9hg="
        );
        assert_eq!(
            signer.sign(&bytes),
            "UyrWm34dH7RTR7R/DO/deVmkyxx7vpVD+eELc0yZvqz6Z0dq3UdIXrXn+TWCG0ivw0kB8svYnreiavVGT5HtBw=="
        );
    }

    #[test]
    fn canonical_bytes_sort_keys_at_every_level() {
        let bytes = canonical_bytes("v1", &json!({"b": [3, 1], "a": {"z": 1, "y": "ü"}}));
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            r#"{"instructions":{"a":{"y":"ü","z":1},"b":[3,1]},"instructionsVersion":"v1"}"#
        );
    }

    #[test]
    fn signatures_verify_with_the_published_key_and_fail_when_tampered() {
        let signer = HeartbeatSigner::from_config("k1", &B64.encode([7u8; 32]), None).expect("key");
        let bytes = canonical_bytes(INSTRUCTIONS_VERSION, &instructions());
        let signature = Signature::from_slice(&B64.decode(signer.sign(&bytes)).expect("base64"))
            .expect("64 bytes");
        let public = signer.registry(Utc::now())["keys"][0]["publicKeyBase64"]
            .as_str()
            .expect("key")
            .to_owned();
        let key = VerifyingKey::from_bytes(
            &B64.decode(public)
                .expect("b64")
                .try_into()
                .expect("32 bytes"),
        )
        .expect("key");
        assert!(key.verify(&bytes, &signature).is_ok());
        let mut tampered = instructions();
        tampered["maxContributionsPerCycle"] = json!(1000);
        assert!(
            key.verify(
                &canonical_bytes(INSTRUCTIONS_VERSION, &tampered),
                &signature
            )
            .is_err()
        );
    }

    #[test]
    fn previous_keys_stay_active_through_their_overlap_then_retire() {
        let previous = r#"[{"keyId":"k0","publicKeyBase64":"AAAA","validFrom":null,"validUntil":"2026-12-01T00:00:00Z"}]"#;
        let signer = HeartbeatSigner::from_config("k1", &B64.encode([1u8; 32]), Some(previous))
            .expect("key");
        let before = DateTime::parse_from_rfc3339("2026-11-21T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let after = DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(signer.registry(before)["keys"][1]["status"], "active");
        assert_eq!(signer.registry(after)["keys"][1]["status"], "retired");
        assert!(
            HeartbeatSigner::from_config("k1", &B64.encode([1u8; 32]), Some("not json")).is_err()
        );
        assert!(HeartbeatSigner::from_config("k1", "c2hvcnQ=", None).is_err());
    }

    #[test]
    fn a_key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("bw-heartbeat-{}", uuid::Uuid::new_v4()));
        let path = dir.join("heartbeat-signing-key");
        let first = HeartbeatSigner::from_file("dev", &path).expect("created");
        let second = HeartbeatSigner::from_file("dev", &path).expect("reused");
        assert_eq!(first.verifying_key(), second.verifying_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
