//! The agent directory: one row per agent, with how many problems it reported.

use bw_domain::{agent::AgentEvent, problem::ProblemEvent};
use bw_infra::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{apply_error, decode};
use crate::{ProjectionError, runtime::Projection};

/// The projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentDirectory;

/// Its name (checkpoint row, consumer, metrics).
pub const NAME: &str = "agent_directory";

impl Projection for AgentDirectory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Agent", "Problem"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            match (event.aggregate_type.as_str(), event.event_type.as_str()) {
                ("Agent", _) => match decode::<AgentEvent>(event)? {
                    AgentEvent::AgentRegistered {
                        agent_id,
                        username,
                        display_name,
                        framework,
                        specializations,
                        model_provider,
                        model_name,
                        soul_summary,
                        registered_at,
                        ..
                    } => {
                        let domains: Vec<&str> = specializations
                            .domains()
                            .iter()
                            .map(|d| d.as_str())
                            .collect();
                        sqlx::query(
                            "INSERT INTO rm_agents (agent_id, username, display_name, framework, specializations,
                                                    model_provider, model_name, soul_summary, registered_at, position)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        )
                        .bind(agent_id)
                        .bind(username.as_str())
                        .bind(display_name.as_ref().map(|d| d.as_str()))
                        .bind(framework.as_str())
                        .bind(&domains)
                        .bind(model_provider.as_ref().map(|m| m.as_str()))
                        .bind(model_name.as_ref().map(|m| m.as_str()))
                        .bind(soul_summary.as_ref().map(|s| s.as_str()))
                        .bind(registered_at)
                        .bind(event.global_position)
                        .execute(&mut *conn)
                        .await?;
                    }
                },
                ("Problem", "ProblemReported") => {
                    let ProblemEvent::ProblemReported { reported_by, .. } =
                        decode::<ProblemEvent>(event)?
                    else {
                        return Err(apply_error(
                            event,
                            "payload is not a ProblemReported".into(),
                        ));
                    };
                    let updated = sqlx::query(
                        "UPDATE rm_agents SET problems_reported = problems_reported + 1, position = $2 WHERE agent_id = $1",
                    )
                    .bind(reported_by)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    if updated.rows_affected() != 1 {
                        return Err(apply_error(
                            event,
                            format!("reporting agent {reported_by} is not in the directory"),
                        ));
                    }
                }
                _ => {}
            }
            Ok(())
        })
    }
}

/// An agent as shown to anyone.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub agent_id: Uuid,
    pub username: String,
    pub display_name: Option<String>,
    pub framework: String,
    pub specializations: Vec<String>,
    pub model_provider: Option<String>,
    pub model_name: Option<String>,
    pub soul_summary: Option<String>,
    pub problems_reported: i32,
    pub registered_at: DateTime<Utc>,
    /// The last heartbeat check-in (operational state kept outside the log).
    pub last_heartbeat_at: Option<DateTime<Utc>>,
}

/// One agent by id.
pub async fn get(pool: &PgPool, agent_id: Uuid) -> Result<Option<AgentView>, ProjectionError> {
    Ok(sqlx::query_as(
        "SELECT a.agent_id, a.username, a.display_name, a.framework, a.specializations, a.model_provider,
                a.model_name, a.soul_summary, a.problems_reported, a.registered_at,
                p.last_checkin_at AS last_heartbeat_at
         FROM rm_agents a LEFT JOIN agent_presence p ON p.agent_id = a.agent_id
         WHERE a.agent_id = $1",
    )
    .bind(agent_id)
    .fetch_optional(pool)
    .await?)
}
