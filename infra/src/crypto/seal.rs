//! Sealing personal fields with a key per person.
//!
//! A sealed field in an event payload is `{"sealed": "v1", "nonce": <b64>, "ct": <b64>}`:
//! XChaCha20-Poly1305 with a random 24-byte nonce, and the person's id and the field's name as
//! associated data — a sealed e-mail cannot be moved onto another person or replayed as a bio.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::CryptoError;

/// A person's data key (256 bits). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonKey([u8; 32]);

impl std::fmt::Debug for PersonKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonKey([redacted])")
    }
}

impl PersonKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// A key read back from storage; `None` when it is not 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw bytes, for storage in the key table.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A sealed field, as stored in events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The format version: `v1`.
    pub sealed: String,
    /// Base64 of the 24-byte nonce.
    pub nonce: String,
    /// Base64 of the ciphertext with its 16-byte tag.
    pub ct: String,
}

fn aad(person: Uuid, field: &str) -> Vec<u8> {
    let mut aad = person.as_bytes().to_vec();
    aad.extend_from_slice(field.as_bytes());
    aad
}

/// Seals `plaintext` of `person`'s `field`.
pub fn seal(key: &PersonKey, person: Uuid, field: &str, plaintext: &str) -> Sealed {
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    let nonce: [u8; 24] = rand::random();
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: &aad(person, field),
            },
        )
        .unwrap_or_default();
    Sealed {
        sealed: "v1".to_owned(),
        nonce: B64.encode(nonce),
        ct: B64.encode(ct),
    }
}

/// Opens a sealed field; [`CryptoError::Forgotten`] when the person's key is gone.
pub fn open(
    key: Option<&PersonKey>,
    person: Uuid,
    field: &str,
    sealed: &Sealed,
) -> Result<String, CryptoError> {
    let key = key.ok_or(CryptoError::Forgotten)?;
    if sealed.sealed != "v1" {
        return Err(CryptoError::Malformed);
    }
    let nonce = B64
        .decode(&sealed.nonce)
        .map_err(|_| CryptoError::Malformed)?;
    let ct = B64.decode(&sealed.ct).map_err(|_| CryptoError::Malformed)?;
    if nonce.len() != 24 {
        return Err(CryptoError::Malformed);
    }
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    let plain = cipher
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ct,
                aad: &aad(person, field),
            },
        )
        .map_err(|_| CryptoError::Unopenable)?;
    String::from_utf8(plain).map_err(|_| CryptoError::Unopenable)
}

/// A keyed fingerprint of an e-mail address (trimmed, lower-cased) for uniqueness and lookup
/// without storing the address: `HMAC-SHA256(secret, address)`.
pub fn email_fingerprint(secret: &[u8], email: &str) -> [u8; 32] {
    super::hmac_sha256(secret, &[email.trim().to_lowercase().as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_field_opens_only_with_its_key_person_and_field() {
        let key = PersonKey::generate();
        let person = Uuid::now_v7();
        let sealed = seal(&key, person, "email", "alice@example.org");
        assert!(
            !serde_json::to_string(&sealed)
                .expect("json")
                .contains("alice"),
            "no plaintext in the sealed form"
        );
        assert_eq!(
            open(Some(&key), person, "email", &sealed),
            Ok("alice@example.org".to_owned())
        );
        assert_eq!(
            open(Some(&key), Uuid::now_v7(), "email", &sealed),
            Err(CryptoError::Unopenable),
            "another person"
        );
        assert_eq!(
            open(Some(&key), person, "bio", &sealed),
            Err(CryptoError::Unopenable),
            "another field"
        );
        assert_eq!(
            open(Some(&PersonKey::generate()), person, "email", &sealed),
            Err(CryptoError::Unopenable),
            "another key"
        );
        assert_eq!(
            open(None, person, "email", &sealed),
            Err(CryptoError::Forgotten),
            "a destroyed key forgets"
        );
        let mut tampered = sealed.clone();
        let first = if tampered.ct.starts_with('A') {
            "B"
        } else {
            "A"
        };
        tampered.ct.replace_range(0..1, first);
        assert!(open(Some(&key), person, "email", &tampered).is_err());
        assert_ne!(
            seal(&key, person, "email", "alice@example.org"),
            sealed,
            "fresh nonce every time"
        );
    }

    #[test]
    fn email_fingerprints_ignore_case_and_spaces_and_depend_on_the_secret() {
        assert_eq!(
            email_fingerprint(b"s", " Alice@Example.org "),
            email_fingerprint(b"s", "alice@example.org")
        );
        assert_ne!(
            email_fingerprint(b"s", "alice@example.org"),
            email_fingerprint(b"t", "alice@example.org")
        );
        assert_eq!(
            format!("{:?}", PersonKey::generate()),
            "PersonKey([redacted])"
        );
    }
}
