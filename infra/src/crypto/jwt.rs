//! HS256 access tokens with key ids.
//!
//! Tokens are signed with the current key and name it in the header (`kid`). Verification accepts
//! the current key and previous keys until their `valid_until`, so a key can rotate without logging
//! everyone out: issue with the new key, keep the old one listed for the token lifetime (15 min).
//! Only `alg: HS256` is accepted (never `none`), signatures are compared in constant time, and `exp`
//! is enforced.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::CryptoError;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The human's id.
    pub sub: String,
    /// `human`, `admin` or `auditor`.
    pub role: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Token id.
    pub jti: String,
}

/// A signing key and its id.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    secret: Vec<u8>,
    /// Until when a previous key is still accepted (`None` for the current key).
    pub valid_until: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("valid_until", &self.valid_until)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A key with `kid` and `secret` (at least 32 bytes).
    pub fn new(
        kid: &str,
        secret: &[u8],
        valid_until: Option<DateTime<Utc>>,
    ) -> Result<Self, CryptoError> {
        if secret.len() < 32 {
            return Err(CryptoError::Token(
                "signing secrets must be at least 32 bytes",
            ));
        }
        Ok(Self {
            kid: kid.to_owned(),
            secret: secret.to_vec(),
            valid_until,
        })
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| {
            <Hmac<Sha256> as Mac>::new_from_slice(&[0])
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
        });
        mac.update(data);
        mac
    }
}

/// The current key and the previous ones still accepted.
#[derive(Debug, Clone)]
pub struct TokenKeys {
    pub current: SigningKey,
    pub previous: Vec<SigningKey>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

impl TokenKeys {
    /// Signs `claims` with the current key.
    pub fn issue(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "HS256".into(),
            typ: "JWT".into(),
            kid: self.current.kid.clone(),
        };
        let head = B64URL.encode(serde_json::to_vec(&header).unwrap_or_default());
        let body = B64URL.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{head}.{body}");
        let signature = B64URL.encode(
            self.current
                .mac(signing_input.as_bytes())
                .finalize()
                .into_bytes(),
        );
        format!("{signing_input}.{signature}")
    }

    /// Verifies a token at `now`: a known, unretired key, a valid signature, not expired.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, CryptoError> {
        let mut parts = token.split('.');
        let (Some(head), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Token("malformed"));
        };
        let header: Header = B64URL
            .decode(head)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(CryptoError::Token("malformed header"))?;
        if header.alg != "HS256" {
            return Err(CryptoError::Token("unsupported algorithm"));
        }
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.kid == header.kid)
            .ok_or(CryptoError::Token("unknown key"))?;
        if key.valid_until.is_some_and(|until| now >= until) {
            return Err(CryptoError::Token("retired key"));
        }
        let signature = B64URL
            .decode(signature)
            .map_err(|_| CryptoError::Token("malformed signature"))?;
        key.mac(format!("{head}.{body}").as_bytes())
            .verify_slice(&signature)
            .map_err(|_| CryptoError::Token("bad signature"))?;
        let claims: Claims = B64URL
            .decode(body)
            .ok()
            .and_then(|c| serde_json::from_slice(&c).ok())
            .ok_or(CryptoError::Token("malformed claims"))?;
        if now.timestamp() >= claims.exp {
            return Err(CryptoError::Token("expired"));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid")
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "h-1".into(),
            role: "human".into(),
            iat: at(0).timestamp(),
            exp: at(exp).timestamp(),
            jti: "t-1".into(),
        }
    }

    fn key(kid: &str, byte: u8, until: Option<DateTime<Utc>>) -> SigningKey {
        SigningKey::new(kid, &[byte; 32], until).expect("key")
    }

    #[test]
    fn tokens_verify_until_they_expire_and_not_when_tampered() {
        let keys = TokenKeys {
            current: key("k2", 2, None),
            previous: vec![],
        };
        let token = keys.issue(&claims(900));
        assert_eq!(keys.verify(&token, at(10)), Ok(claims(900)));
        assert_eq!(
            keys.verify(&token, at(900)),
            Err(CryptoError::Token("expired"))
        );
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged =
            B64URL.encode(br#"{"sub":"h-1","role":"admin","iat":0,"exp":9999999999,"jti":"x"}"#);
        parts[1] = &forged;
        assert_eq!(
            keys.verify(&parts.join("."), at(10)),
            Err(CryptoError::Token("bad signature"))
        );
        let none = format!(
            "{}.{}.",
            B64URL.encode(br#"{"alg":"none","typ":"JWT","kid":"k2"}"#),
            forged
        );
        assert_eq!(
            keys.verify(&none, at(10)),
            Err(CryptoError::Token("unsupported algorithm"))
        );
        assert!(SigningKey::new("short", b"too short", None).is_err());
    }

    #[test]
    fn a_rotated_key_is_accepted_until_its_grace_ends() {
        let old = TokenKeys {
            current: key("k1", 1, None),
            previous: vec![],
        };
        let token = old.issue(&claims(3600));
        let rotated = TokenKeys {
            current: key("k2", 2, None),
            previous: vec![key("k1", 1, Some(at(900)))],
        };
        assert_eq!(
            rotated.verify(&token, at(100)),
            Ok(claims(3600)),
            "during the grace period"
        );
        assert_eq!(
            rotated.verify(&token, at(900)),
            Err(CryptoError::Token("retired key"))
        );
        let dropped = TokenKeys {
            current: key("k2", 2, None),
            previous: vec![],
        };
        assert_eq!(
            dropped.verify(&token, at(100)),
            Err(CryptoError::Token("unknown key"))
        );
    }
}
