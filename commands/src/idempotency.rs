//! Idempotency: a retried command with the same `Idempotency-Key` gets the stored response and
//! appends nothing.
//!
//! - Keys are scoped by caller: the record's key is `SHA-256(actor scope || 0x00 || key)`, so two
//!   agents choosing the same key never see each other's responses.
//! - The request is fingerprinted as `SHA-256(method || 0x00 || path || 0x00 || body)`; the same key
//!   with another fingerprint is refused (`422`), byte-for-byte, so a client must retry the exact
//!   request it sent.
//! - While the first request holds its transaction, a duplicate cannot take the transaction-scoped
//!   advisory lock on the key and is told to retry (`409`); once the first commits, the duplicate
//!   finds the record and replays it.
//! - Records are kept [`RETENTION`]; older ones are ignored on lookup, replaced on reuse and purged
//!   by [`purge_expired`].

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Row};

use crate::CommandError;

/// How long a response stays replayable.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A caller's key for one request, with the fingerprint of that request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    scope_key: [u8; 32],
    request_sha256: [u8; 32],
}

impl IdempotencyKey {
    /// Scopes `key` to `actor_scope` and fingerprints the request.
    pub fn new(actor_scope: &str, key: &str, method: &str, path: &str, body: &[u8]) -> Self {
        let scope_key = Sha256::new()
            .chain_update(actor_scope.as_bytes())
            .chain_update([0])
            .chain_update(key.as_bytes())
            .finalize()
            .into();
        let request_sha256 = Sha256::new()
            .chain_update(method.as_bytes())
            .chain_update([0])
            .chain_update(path.as_bytes())
            .chain_update([0])
            .chain_update(body)
            .finalize()
            .into();
        Self {
            scope_key,
            request_sha256,
        }
    }

    /// The scoped key as hex, recorded in the events' metadata.
    pub fn scope_hex(&self) -> String {
        hex::encode(self.scope_key)
    }

    fn lock_id(&self) -> i64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.scope_key[..8]);
        i64::from_be_bytes(first)
    }
}

/// A response as stored and replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (`data` of the envelope).
    pub body: Value,
    /// The global position of the command's last event.
    pub position: Option<i64>,
}

/// Takes the key's transaction-scoped lock, or reports that another request holds it.
pub(crate) async fn lock(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
) -> Result<(), CommandError> {
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(key.lock_id())
        .fetch_one(&mut *conn)
        .await?;
    if locked {
        Ok(())
    } else {
        Err(CommandError::IdempotencyInProgress)
    }
}

/// The stored response for this key within retention: replayed when the request matches,
/// [`CommandError::IdempotencyMismatch`] when it does not.
pub(crate) async fn find(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
) -> Result<Option<StoredResponse>, CommandError> {
    // language=PostgreSQL
    let row = sqlx::query(
        "SELECT request_sha256, status, body, position FROM idempotency_records
         WHERE scope_key = $1 AND created_at > now() - make_interval(secs => $2)",
    )
    .bind(key.scope_key.as_slice())
    .bind(RETENTION.as_secs_f64())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let stored_hash: Vec<u8> = row.try_get("request_sha256")?;
    if stored_hash != key.request_sha256 {
        return Err(CommandError::IdempotencyMismatch);
    }
    let status: i16 = row.try_get("status")?;
    Ok(Some(StoredResponse {
        status: u16::try_from(status).unwrap_or(500),
        body: row.try_get("body")?,
        position: row.try_get("position")?,
    }))
}

/// Stores the response in the caller's transaction (replacing an expired record of the same key).
pub(crate) async fn record(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
    response: &StoredResponse,
) -> Result<(), CommandError> {
    // language=PostgreSQL
    sqlx::query(
        "INSERT INTO idempotency_records (scope_key, request_sha256, status, body, position)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (scope_key) DO UPDATE
           SET request_sha256 = EXCLUDED.request_sha256, status = EXCLUDED.status,
               body = EXCLUDED.body, position = EXCLUDED.position, created_at = now()
         WHERE idempotency_records.created_at <= now() - make_interval(secs => $6)",
    )
    .bind(key.scope_key.as_slice())
    .bind(key.request_sha256.as_slice())
    .bind(i16::try_from(response.status).unwrap_or(500))
    .bind(&response.body)
    .bind(response.position)
    .bind(RETENTION.as_secs_f64())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes records past retention; returns how many.
pub async fn purge_expired(pool: &PgPool) -> Result<u64, CommandError> {
    let done = sqlx::query(
        "DELETE FROM idempotency_records WHERE created_at <= now() - make_interval(secs => $1)",
    )
    .bind(RETENTION.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_by_caller_and_requests_fingerprinted() {
        let a = IdempotencyKey::new("agent:1", "k", "POST", "/p", b"{}");
        let b = IdempotencyKey::new("agent:2", "k", "POST", "/p", b"{}");
        assert_ne!(a.scope_key, b.scope_key);
        assert_eq!(a.request_sha256, b.request_sha256);
        let c = IdempotencyKey::new("agent:1", "k", "POST", "/p", b"{ }");
        assert_eq!(a.scope_key, c.scope_key);
        assert_ne!(a.request_sha256, c.request_sha256);
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            IdempotencyKey::new("ab", "c", "", "", b"").scope_key,
            IdempotencyKey::new("a", "bc", "", "", b"").scope_key
        );
    }
}
