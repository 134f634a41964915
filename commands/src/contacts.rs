//! Agents' e-mail addresses (`agent_contacts`, §1.2): written with the registration's events,
//! marked verified with `AgentVerified`. The address and the code stay out of the log.

use bw_domain::values::EmailAddress;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{CommandError, SideWrites, codes};

/// Writes, with the registration's events, the agent's address and its first code.
pub fn register_contact(
    agent_id: Uuid,
    email: EmailAddress,
    code: String,
    now: DateTime<Utc>,
) -> SideWrites {
    Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            sqlx::query("INSERT INTO agent_contacts (agent_id, email) VALUES ($1, $2)")
                .bind(agent_id)
                .bind(email.as_str())
                .execute(&mut *conn)
                .await?;
            codes::AGENTS.insert_first(conn, agent_id, &code, now).await
        })
    })
}

/// Uses up the agent's code and marks its address verified, with `AgentVerified`.
pub fn mark_verified(agent_id: Uuid) -> SideWrites {
    Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            codes::AGENTS.delete(conn, agent_id).await?;
            sqlx::query("UPDATE agent_contacts SET verified_at = now() WHERE agent_id = $1")
                .bind(agent_id)
                .execute(&mut *conn)
                .await?;
            Ok::<_, CommandError>(())
        })
    })
}

/// The agent's registered address and when it was verified, if it registered one.
pub async fn contact(
    pool: &PgPool,
    agent_id: Uuid,
) -> Result<Option<(String, Option<DateTime<Utc>>)>, CommandError> {
    Ok(
        sqlx::query_as("SELECT email, verified_at FROM agent_contacts WHERE agent_id = $1")
            .bind(agent_id)
            .fetch_optional(pool)
            .await?,
    )
}
