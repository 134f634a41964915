//! The facts of an agent's trust tier that the guardrail reads per submission (`domain-reference.md`
//! §2.9): how many of its submissions were approved, by the guardrail or by an admin reviewing a
//! flagged verdict. Kept here so that judging one submission reads one row, whatever the size of
//! the log (issue 15); the agent's age comes from its own stream.

use bw_domain::taxonomy::GuardrailStatus;
use bw_eventlog::envelope::EventEnvelope;
use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

use super::moderation::{self, Moderation, moderation};
use crate::{ProjectionError, runtime::Projection};

/// The projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentTrust;

/// Its name.
pub const NAME: &str = "agent_trust";

impl Projection for AgentTrust {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        moderation::AGGREGATES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_agent_trust", "rm_trust_flagged"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let position = event.global_position;
            match moderation(event)? {
                Moderation::Decided(v) if v.decision == GuardrailStatus::Approved => {
                    approve(conn, v.author_agent_id, position).await?;
                }
                Moderation::Decided(v) if v.decision == GuardrailStatus::Flagged => {
                    // A later flag of the same content (after an edit) replaces the earlier one.
                    sqlx::query(
                        "INSERT INTO rm_trust_flagged (content_id, author, position) VALUES ($1, $2, $3)
                         ON CONFLICT (content_id) DO UPDATE SET author = EXCLUDED.author, position = EXCLUDED.position",
                    )
                    .bind(v.content_id)
                    .bind(v.author_agent_id)
                    .bind(position)
                    .execute(&mut *conn)
                    .await?;
                }
                Moderation::Reviewed(r) => {
                    let author: Option<Uuid> = sqlx::query_scalar(
                        "DELETE FROM rm_trust_flagged WHERE content_id = $1 RETURNING author",
                    )
                    .bind(r.content_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                    // The aggregate reviews only content it flagged, so the flag is here.
                    let author = author.ok_or_else(|| {
                        super::apply_error(event, format!("{} was never flagged", r.content_id))
                    })?;
                    if r.decision == GuardrailStatus::Approved {
                        approve(conn, author, position).await?;
                    }
                }
                _ => {}
            }
            Ok(())
        })
    }
}

/// Counts one approval for `agent`.
async fn approve(
    conn: &mut PgConnection,
    agent: Uuid,
    position: i64,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO rm_agent_trust (agent_id, approvals, position) VALUES ($1, 1, $2)
         ON CONFLICT (agent_id) DO UPDATE SET approvals = rm_agent_trust.approvals + 1, position = EXCLUDED.position",
    )
    .bind(agent)
    .bind(position)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The approvals counted for `agent` (zero for an agent with none).
pub async fn approvals(
    conn: impl sqlx::PgExecutor<'_>,
    agent: Uuid,
) -> Result<i64, ProjectionError> {
    Ok(
        sqlx::query_scalar("SELECT approvals FROM rm_agent_trust WHERE agent_id = $1")
            .bind(agent)
            .fetch_optional(conn)
            .await?
            .unwrap_or(0),
    )
}
