//! Agents' presence (`agent_presence`): the last heartbeat check-in and a count of them. No event
//! is recorded for a check-in (`docs/heartbeat.md`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::CommandError;

/// One check-in, parsed.
#[derive(Debug, Clone)]
pub struct Checkin {
    /// The agent checking in.
    pub agent_id: Uuid,
    /// When the server received it.
    pub at: DateTime<Utc>,
    /// The time the agent says it sent it.
    pub client_timestamp: DateTime<Utc>,
    /// The instructions version the agent follows.
    pub instructions_version: Option<String>,
    /// The agent's client version.
    pub client_version: Option<String>,
    /// The counts the agent reported (`activitySummary`).
    pub activity: Value,
}

/// Records the check-in: the first one creates the agent's row, later ones replace it and count.
pub async fn record_checkin(pool: &PgPool, checkin: &Checkin) -> Result<(), CommandError> {
    sqlx::query(
        "INSERT INTO agent_presence (agent_id, last_checkin_at, client_timestamp, instructions_version, client_version, activity)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (agent_id) DO UPDATE SET last_checkin_at = EXCLUDED.last_checkin_at,
             client_timestamp = EXCLUDED.client_timestamp, instructions_version = EXCLUDED.instructions_version,
             client_version = EXCLUDED.client_version, activity = EXCLUDED.activity,
             checkins = agent_presence.checkins + 1",
    )
    .bind(checkin.agent_id)
    .bind(checkin.at)
    .bind(checkin.client_timestamp)
    .bind(&checkin.instructions_version)
    .bind(&checkin.client_version)
    .bind(&checkin.activity)
    .execute(pool)
    .await?;
    Ok(())
}
