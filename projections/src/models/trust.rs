//! The facts of an agent's trust tier that the guardrail reads per submission (`domain-reference.md`
//! §2.9): how many of its submissions were approved, by the guardrail or by an admin reviewing a
//! flagged verdict. Kept here so that judging one submission reads one row, whatever the size of
//! the log (issue 15); the agent's age comes from its own stream.

use bw_domain::{
    guardrail::{Reviewed, Verdict},
    mission::MissionEvent,
    problem::ProblemEvent,
    solution::SolutionEvent,
    taxonomy::GuardrailStatus,
};
use bw_infra::envelope::EventEnvelope;
use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

use super::decode;
use crate::{ProjectionError, runtime::Projection};

/// The projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentTrust;

/// Its name.
pub const NAME: &str = "agent_trust";

enum Change<'a> {
    Decided(&'a Verdict),
    Reviewed(&'a Reviewed),
    Nothing,
}

impl Projection for AgentTrust {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Problem", "Solution", "Mission"]
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
            // Only verdicts and reviews matter; anything else is not even decoded.
            if !matches!(event.event_type.as_str(), "GuardrailDecided" | "Reviewed") {
                return Ok(());
            }
            let (problem, solution, mission);
            let change = match event.aggregate_type.as_str() {
                "Problem" => {
                    problem = decode::<ProblemEvent>(event)?;
                    match &problem {
                        ProblemEvent::GuardrailDecided(v) => Change::Decided(v),
                        ProblemEvent::Reviewed(r) => Change::Reviewed(r),
                        _ => Change::Nothing,
                    }
                }
                "Solution" => {
                    solution = decode::<SolutionEvent>(event)?;
                    match &solution {
                        SolutionEvent::GuardrailDecided(v) => Change::Decided(v),
                        SolutionEvent::Reviewed(r) => Change::Reviewed(r),
                        _ => Change::Nothing,
                    }
                }
                _ => {
                    mission = decode::<MissionEvent>(event)?;
                    match &mission {
                        MissionEvent::GuardrailDecided(v) => Change::Decided(v),
                        MissionEvent::Reviewed(r) => Change::Reviewed(r),
                        _ => Change::Nothing,
                    }
                }
            };
            let position = event.global_position;
            match change {
                Change::Decided(v) if v.decision == GuardrailStatus::Approved => {
                    approve(conn, v.author_agent_id, position).await?;
                }
                Change::Decided(v) if v.decision == GuardrailStatus::Flagged => {
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
                Change::Reviewed(r) => {
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
                Change::Decided(_) | Change::Nothing => {}
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
