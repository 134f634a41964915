//! The person's key (`person_keys`, ADR 0003): generated at registration, used to seal personal
//! fields, destroyed when the person is forgotten — which leaves the log's ciphertext unreadable.

use bw_infra::crypto::seal::PersonKey;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::CommandError;

/// Stores a new person's key (in the registration's transaction).
pub async fn store(
    conn: &mut PgConnection,
    person_id: Uuid,
    key: &PersonKey,
) -> Result<(), CommandError> {
    sqlx::query("INSERT INTO person_keys (person_id, key) VALUES ($1, $2)")
        .bind(person_id)
        .bind(key.as_bytes().as_slice())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The person's key; `None` when there is none or it was destroyed (the person was forgotten).
pub async fn load(pool: &PgPool, person_id: Uuid) -> Result<Option<PersonKey>, CommandError> {
    let key: Option<(Option<Vec<u8>>,)> =
        sqlx::query_as("SELECT key FROM person_keys WHERE person_id = $1")
            .bind(person_id)
            .fetch_optional(pool)
            .await?;
    Ok(key
        .and_then(|k| k.0)
        .and_then(|k| PersonKey::from_bytes(&k)))
}

/// Destroys the person's key, keeping the row as the record of when.
pub async fn destroy(conn: &mut PgConnection, person_id: Uuid) -> Result<(), CommandError> {
    sqlx::query("UPDATE person_keys SET key = NULL, destroyed_at = now() WHERE person_id = $1 AND key IS NOT NULL")
        .bind(person_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
