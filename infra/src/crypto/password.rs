//! Password hashing with Argon2id (OWASP parameters: 19 MiB, 2 iterations, 1 lane), always on a
//! blocking thread: one hash costs tens of milliseconds of CPU, which must not stall the runtime.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};

use super::CryptoError;

/// Hashes a password into the PHC string form (`$argon2id$v=19$…`), off the async runtime.
pub async fn hash(password: String) -> Result<String, CryptoError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|_| CryptoError::Hashing)?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| CryptoError::Hashing)
    })
    .await
    .map_err(|_| CryptoError::Hashing)?
}

/// Whether `password` matches `stored` (a PHC string), off the async runtime. A malformed stored
/// hash never matches.
pub async fn verify(stored: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify_only_the_right_password() {
        let first = hash("Correct-Horse-9".to_owned()).await.expect("hash");
        let second = hash("Correct-Horse-9".to_owned()).await.expect("hash");
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "salted");
        assert!(verify(first.clone(), "Correct-Horse-9".to_owned()).await);
        assert!(!verify(first, "correct-horse-9".to_owned()).await);
        assert!(!verify("not a hash".to_owned(), "x".to_owned()).await);
    }
}
