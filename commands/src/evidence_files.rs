//! The duplicate index of evidence files (`evidence_files`): each submitted file's SHA-256,
//! recorded in the submission's transaction and looked up for every later submission.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{CommandError, SideWrites};

/// The earliest submission that holds a file with this SHA-256 (hex), if any.
pub async fn duplicate_of(pool: &PgPool, sha256: &str) -> Result<Option<Uuid>, CommandError> {
    Ok(sqlx::query_scalar(
        "SELECT evidence_id FROM evidence_files WHERE sha256 = $1 ORDER BY evidence_id LIMIT 1",
    )
    .bind(sha256)
    .fetch_optional(pool)
    .await?)
}

/// Records each file's hash in the submission's transaction (the duplicate index).
pub fn index_files(evidence_id: Uuid, hashes: Vec<String>) -> SideWrites {
    Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            for (n, sha256) in hashes.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO evidence_files (sha256, evidence_id, file_index) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(sha256)
                .bind(evidence_id)
                .bind(i32::try_from(n).unwrap_or(i32::MAX))
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        })
    })
}
