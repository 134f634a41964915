//! Cryptographic building blocks for people's data and sessions (ADR 0003).
//!
//! - [`seal`]: personal fields sealed with a key per person (XChaCha20-Poly1305), so forgetting a
//!   person is destroying one key; keyed fingerprints for lookups (e-mail uniqueness) without
//!   plaintext.
//! - [`password`]: Argon2id hashing and verification, run off the async runtime.
//! - [`jwt`]: HS256 access tokens with key ids, so the signing key can rotate with a grace period.

pub mod jwt;
pub mod keyring;
pub mod password;
pub mod seal;

/// `HMAC-SHA256(key, parts[0] ‖ parts[1] ‖ …)`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC accepts keys of every length, so construction cannot fail.
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Why a cryptographic operation failed. Messages never contain secrets or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The sealed value is not in the documented form.
    #[error("malformed sealed value")]
    Malformed,
    /// Decryption failed: wrong key, wrong person or field, or tampering.
    #[error("sealed value cannot be opened")]
    Unopenable,
    /// The key was destroyed: the person was forgotten.
    #[error("the person was forgotten")]
    Forgotten,
    /// A token is malformed, signed with an unknown or retired key, tampered with, or expired.
    #[error("invalid token: {0}")]
    Token(&'static str),
    /// Hashing failed or ran on a stopped runtime.
    #[error("password hashing failed")]
    Hashing,
}
