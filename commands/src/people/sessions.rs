//! Sessions: an access token (a JWT, [`ACCESS_TTL`]) and a refresh token ([`REFRESH_TTL`]) per
//! login. Refresh tokens are stored as SHA-256 in `refresh_tokens`, one family per login; each is
//! used once and replaced by the next of its family, and one that comes back after use revokes the
//! whole family (someone holds a copy).

use bw_infra::crypto::{jwt::Claims, keyring::Keyring};
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::CommandError;

/// Access tokens live 15 minutes.
pub const ACCESS_TTL: TimeDelta = TimeDelta::minutes(15);
/// Refresh tokens live 30 days.
pub const REFRESH_TTL: TimeDelta = TimeDelta::days(30);

/// A session just issued.
pub struct Session {
    /// Whose it is.
    pub human_id: Uuid,
    /// Their role, as the access token states it.
    pub role: String,
    /// The access token.
    pub access_token: String,
    /// The refresh token (shown once; only its hash is stored).
    pub refresh_token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tokens are bearer secrets: never in a log.
        f.debug_struct("Session")
            .field("human_id", &self.human_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A fresh refresh token: `bwr_` and 43 characters of base64url (256 random bits).
fn new_refresh_token() -> String {
    use base64::Engine;
    format!(
        "bwr_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Issues an access token and stores a refresh token in `family` (in `conn`'s transaction).
async fn issue(
    tokens: &Keyring,
    conn: &mut PgConnection,
    human_id: Uuid,
    role: &str,
    family: Uuid,
) -> Result<Session, CommandError> {
    let now = Utc::now();
    let refresh = new_refresh_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_sha256, human_id, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&refresh))
    .bind(human_id)
    .bind(family)
    .bind(now)
    .bind(now + REFRESH_TTL)
    .execute(&mut *conn)
    .await?;
    let access = tokens
        .issue(&Claims {
            sub: human_id.to_string(),
            role: role.to_owned(),
            iat: now.timestamp(),
            exp: (now + ACCESS_TTL).timestamp(),
            jti: Uuid::now_v7().to_string(),
        })
        .await;
    Ok(Session {
        human_id,
        role: role.to_owned(),
        access_token: access,
        refresh_token: refresh,
    })
}

/// Starts a session (a new family) for someone who just logged in.
pub async fn start(
    pool: &PgPool,
    tokens: &Keyring,
    human_id: Uuid,
    role: &str,
) -> Result<Session, CommandError> {
    let mut conn = pool.acquire().await?;
    issue(tokens, &mut conn, human_id, role, Uuid::now_v7()).await
}

/// Uses up `refresh_token` and issues the next session of its family, in one transaction that
/// holds the token's row. Refuses an unknown token or one whose person was forgotten
/// ([`CommandError::RefreshTokenInvalid`]) and an expired one
/// ([`CommandError::RefreshTokenExpired`]); a used or revoked one revokes its whole family first
/// ([`CommandError::RefreshTokenSpent`]).
pub async fn rotate(
    pool: &PgPool,
    tokens: &Keyring,
    refresh_token: &str,
) -> Result<Session, CommandError> {
    let mut tx = pool.begin().await?;
    #[derive(sqlx::FromRow)]
    struct Row {
        human_id: Uuid,
        family_id: Uuid,
        expires_at: DateTime<Utc>,
        used_at: Option<DateTime<Utc>>,
        revoked_at: Option<DateTime<Utc>>,
        role: Option<String>,
    }
    let found: Option<Row> = sqlx::query_as(
        "SELECT t.human_id, t.family_id, t.expires_at, t.used_at, t.revoked_at, c.role
             FROM refresh_tokens t LEFT JOIN human_credentials c ON c.human_id = t.human_id
             WHERE t.token_sha256 = $1 FOR UPDATE OF t",
    )
    .bind(token_hash(refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(Row {
        human_id,
        family_id: family,
        expires_at,
        used_at,
        revoked_at,
        role,
    }) = found
    else {
        return Err(CommandError::RefreshTokenInvalid);
    };
    if used_at.is_some() || revoked_at.is_some() {
        // A used token came back: someone holds a copy. End every session of this login.
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if used_at.is_some() {
            tracing::warn!(%human_id, revoked = revoked.rows_affected(), "refresh token reused; its family is revoked");
        }
        return Err(CommandError::RefreshTokenSpent);
    }
    if expires_at <= Utc::now() {
        return Err(CommandError::RefreshTokenExpired);
    }
    let Some(role) = role else {
        // The person was forgotten: their credentials are gone.
        return Err(CommandError::RefreshTokenInvalid);
    };
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_sha256 = $1")
        .bind(token_hash(refresh_token))
        .execute(&mut *tx)
        .await?;
    let session = issue(tokens, &mut tx, human_id, &role, family).await?;
    tx.commit().await?;
    Ok(session)
}

/// Revokes the caller's sessions: the family of `refresh_token` when given (and it is theirs),
/// otherwise every one. Returns how many refresh tokens were revoked.
pub async fn revoke(
    pool: &PgPool,
    human_id: Uuid,
    refresh_token: Option<&str>,
) -> Result<u64, CommandError> {
    let revoked = match refresh_token {
        Some(token) => sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE revoked_at IS NULL AND human_id = $2
               AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_sha256 = $1 AND human_id = $2)",
        )
        .bind(token_hash(token))
        .bind(human_id),
        None => sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE human_id = $1 AND revoked_at IS NULL")
            .bind(human_id),
    }
    .execute(pool)
    .await?;
    Ok(revoked.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_token_is_bwr_and_256_random_bits_stored_only_as_its_hash() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert!(a.starts_with("bwr_"), "{a}");
        assert_eq!(a.len(), 4 + 43, "{a}");
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), Sha256::digest(a.as_bytes()).to_vec());
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
