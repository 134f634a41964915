//! Constraints that span aggregates, written in the same transaction as the event that claims them.
//!
//! A username must be unique across all agents; no `Agent` aggregate can see the others, and a read
//! model would decide too late (two concurrent registrations would both pass). So the transaction
//! appending `AgentRegistered` also inserts the username into `agent_usernames` (primary key): of two
//! concurrent registrations of one name, exactly one commits; the other gets `USERNAME_TAKEN` and
//! appends nothing. The API key's hash goes to `agent_credentials` in the same way, so an agent can
//! authenticate the moment its registration is acknowledged; a key rotation adds the new key and
//! gives the previous one its 24-hour grace in the same way.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use bw_eventlog::store::NewEvent;

use crate::{CommandError, error::unique_violation};

/// Applies the reservations the prepared events call for.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    events: &[NewEvent],
) -> Result<(), CommandError> {
    for event in events {
        if (
            event.event.aggregate_type.as_str(),
            event.event.event_type.as_str(),
        ) == ("Agent", "AgentKeyRotated")
        {
            rotate_key(conn, event).await?;
        }
        if (
            event.event.aggregate_type.as_str(),
            event.event.event_type.as_str(),
        ) == ("Agent", "AgentRegistered")
        {
            let data = &event.event.payload["data"];
            let field = |name: &str| {
                data[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| CommandError::Corrupt(format!("AgentRegistered without {name}")))
            };
            let agent_id: Uuid = field("agentId")?
                .parse()
                .map_err(|e| CommandError::Corrupt(format!("agentId: {e}")))?;
            let username = field("username")?;
            let key_sha256 = hex::decode(field("apiKeySha256")?)
                .map_err(|e| CommandError::Corrupt(format!("apiKeySha256: {e}")))?;
            let registered_at: DateTime<Utc> = field("registeredAt")?
                .parse()
                .map_err(|e| CommandError::Corrupt(format!("registeredAt: {e}")))?;
            let reserved = sqlx::query(
                "INSERT INTO agent_usernames (username, agent_id) VALUES (lower($1), $2)",
            )
            .bind(&username)
            .bind(agent_id)
            .execute(&mut *conn)
            .await;
            match reserved {
                Err(e) if unique_violation(&e).as_deref() == Some("agent_usernames_pkey") => {
                    return Err(CommandError::UsernameTaken(username));
                }
                other => {
                    other?;
                }
            }
            sqlx::query("INSERT INTO agent_credentials (key_sha256, agent_id, key_prefix, created_at) VALUES ($1, $2, $3, $4)")
                .bind(key_sha256)
                .bind(agent_id)
                .bind(field("apiKeyPrefix")?)
                .bind(registered_at)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// A rotation: the new key works at once; the previous one until its grace period ends.
async fn rotate_key(conn: &mut PgConnection, event: &NewEvent) -> Result<(), CommandError> {
    let data = &event.event.payload["data"];
    let text = |name: &str| {
        data[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CommandError::Corrupt(format!("AgentKeyRotated without {name}")))
    };
    let agent_id: Uuid = text("agentId")?
        .parse()
        .map_err(|e| CommandError::Corrupt(format!("agentId: {e}")))?;
    let key = hex::decode(text("apiKeySha256")?)
        .map_err(|e| CommandError::Corrupt(format!("apiKeySha256: {e}")))?;
    let previous = hex::decode(text("previousApiKeySha256")?)
        .map_err(|e| CommandError::Corrupt(format!("previousApiKeySha256: {e}")))?;
    let until: DateTime<Utc> = text("previousKeyValidUntil")?
        .parse()
        .map_err(|e| CommandError::Corrupt(format!("previousKeyValidUntil: {e}")))?;
    let rotated_at: DateTime<Utc> = text("rotatedAt")?
        .parse()
        .map_err(|e| CommandError::Corrupt(format!("rotatedAt: {e}")))?;
    sqlx::query(
        "UPDATE agent_credentials SET expires_at = $3 WHERE key_sha256 = $1 AND agent_id = $2",
    )
    .bind(previous)
    .bind(agent_id)
    .bind(until)
    .execute(&mut *conn)
    .await?;
    // Keys older than the previous one stop now: only one key is ever in its grace period.
    sqlx::query("UPDATE agent_credentials SET expires_at = LEAST(expires_at, $2) WHERE agent_id = $1 AND expires_at IS NOT NULL AND expires_at <> $3")
        .bind(agent_id)
        .bind(rotated_at)
        .bind(until)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO agent_credentials (key_sha256, agent_id, key_prefix, created_at) VALUES ($1, $2, $3, $4)")
        .bind(key)
        .bind(agent_id)
        .bind(text("apiKeyPrefix")?)
        .bind(rotated_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
