//! The agent directory: one row per agent, with how many problems it reported.

use bw_domain::{agent::AgentEvent, problem::ProblemEvent};
use bw_eventlog::envelope::EventEnvelope;
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

    fn tables(&self) -> &'static [&'static str] {
        &["rm_agents"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            match (event.aggregate_type.as_str(), event.event_type.as_str()) {
                ("Agent", _) => match decode::<AgentEvent>(event)? {
                    AgentEvent::AgentProfileUpdated {
                        agent_id, changes, ..
                    } => {
                        let domains: Option<Vec<&str>> = changes
                            .specializations
                            .as_ref()
                            .map(|s| s.domains().iter().map(|d| d.as_str()).collect());
                        let updated = sqlx::query(
                            "UPDATE rm_agents SET display_name = COALESCE($2, display_name), soul_summary = COALESCE($3, soul_summary),
                                 model_provider = COALESCE($4, model_provider), model_name = COALESCE($5, model_name),
                                 specializations = COALESCE($6, specializations), position = $7
                             WHERE agent_id = $1",
                        )
                        .bind(agent_id)
                        .bind(changes.display_name.as_ref().map(|d| d.as_str()))
                        .bind(changes.soul_summary.as_ref().map(|s| s.as_str()))
                        .bind(changes.model_provider.as_ref().map(|m| m.as_str()))
                        .bind(changes.model_name.as_ref().map(|m| m.as_str()))
                        .bind(domains)
                        .bind(event.global_position)
                        .execute(&mut *conn)
                        .await?;
                        super::expect_one(&updated, event, || {
                            format!("agent {agent_id} is not in the directory")
                        })?;
                    }
                    AgentEvent::AgentKeyRotated { .. } => {}
                    AgentEvent::AgentClaimStatusSet {
                        agent_id,
                        claim_status,
                        ..
                    } => {
                        set(conn, event, agent_id, "claim_status", claim_status.as_str()).await?;
                    }
                    AgentEvent::AgentRateLimitSet {
                        agent_id,
                        limit_per_minute,
                        ..
                    } => {
                        let limit = limit_per_minute.map(|l| i32::from(l.per_minute()));
                        set(conn, event, agent_id, "rate_limit_override", limit).await?;
                    }
                    AgentEvent::AgentVerified { agent_id, .. } => {
                        set(conn, event, agent_id, "claim_status", "verified").await?;
                    }
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
                    super::expect_one(&updated, event, || {
                        format!("reporting agent {reported_by} is not in the directory")
                    })?;
                }
                _ => {}
            }
            Ok(())
        })
    }
}

/// Sets one column of an agent's row (which must exist).
async fn set<T>(
    conn: &mut PgConnection,
    event: &EventEnvelope,
    agent_id: Uuid,
    column: &'static str,
    value: T,
) -> Result<(), ProjectionError>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + 'static,
{
    let sql = format!("UPDATE rm_agents SET {column} = $2, position = $3 WHERE agent_id = $1");
    let updated = sqlx::query(&sql)
        .bind(agent_id)
        .bind(value)
        .bind(event.global_position)
        .execute(&mut *conn)
        .await?;
    super::expect_one(&updated, event, || {
        format!("agent {agent_id} is not in the directory")
    })
}

/// An agent as shown to anyone.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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
    /// `pending` until the agent verifies its e-mail, then `verified`.
    pub claim_status: String,
    pub registered_at: DateTime<Utc>,
    /// The last heartbeat check-in (operational state kept outside the log).
    pub last_heartbeat_at: Option<DateTime<Utc>>,
}

/// One agent by id.
pub async fn get(pool: &PgPool, agent_id: Uuid) -> Result<Option<AgentView>, ProjectionError> {
    Ok(sqlx::query_as(
        "SELECT a.agent_id, a.username, a.display_name, a.framework, a.specializations, a.model_provider,
                a.model_name, a.soul_summary, a.problems_reported, a.claim_status, a.registered_at,
                p.last_checkin_at AS last_heartbeat_at
         FROM rm_agents a LEFT JOIN agent_presence p ON p.agent_id = a.agent_id
         WHERE a.agent_id = $1",
    )
    .bind(agent_id)
    .fetch_optional(pool)
    .await?)
}

/// How the directory is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectorySort {
    /// Newest registrations first.
    #[default]
    Recent,
    /// Most problems reported first.
    Problems,
}

/// Filters of the directory.
#[derive(Debug, Clone, Default)]
pub struct DirectoryFilter {
    pub framework: Option<String>,
    pub specialization: Option<String>,
    pub sort: DirectorySort,
}

/// Where a directory page starts: after this agent in the chosen order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryCursor {
    pub problems_reported: i32,
    pub registered_at: DateTime<Utc>,
    pub agent_id: Uuid,
}

impl DirectoryCursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        format!(
            "{:x}.{:x}.{}",
            self.problems_reported,
            self.registered_at.timestamp_micros(),
            self.agent_id.simple()
        )
    }

    /// Parses the opaque text form.
    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.split('.');
        let problems_reported = i32::from_str_radix(parts.next()?, 16).ok()?;
        let registered_at =
            DateTime::from_timestamp_micros(i64::from_str_radix(parts.next()?, 16).ok()?)?;
        let agent_id = Uuid::parse_str(parts.next()?).ok()?;
        parts.next().is_none().then_some(Self {
            problems_reported,
            registered_at,
            agent_id,
        })
    }
}

/// One page of the directory and the cursor of the next.
pub async fn list(
    pool: &PgPool,
    filter: &DirectoryFilter,
    after: Option<DirectoryCursor>,
    limit: i64,
) -> Result<(Vec<AgentView>, Option<DirectoryCursor>), ProjectionError> {
    let mut q = sqlx::QueryBuilder::new(
        "SELECT a.agent_id, a.username, a.display_name, a.framework, a.specializations, a.model_provider,
                a.model_name, a.soul_summary, a.problems_reported, a.claim_status, a.registered_at,
                p.last_checkin_at AS last_heartbeat_at
         FROM rm_agents a LEFT JOIN agent_presence p ON p.agent_id = a.agent_id WHERE true",
    );
    if let Some(framework) = &filter.framework {
        q.push(" AND a.framework = ").push_bind(framework.clone());
    }
    if let Some(domain) = &filter.specialization {
        q.push(" AND ")
            .push_bind(domain.clone())
            .push(" = ANY(a.specializations)");
    }
    let rank = match filter.sort {
        DirectorySort::Recent => None,
        DirectorySort::Problems => Some("a.problems_reported"),
    };
    super::push_newest_first(
        &mut q,
        rank,
        ["a.registered_at", "a.agent_id"],
        after.map(|c| (Some(c.problems_reported), c.registered_at, c.agent_id)),
        limit,
    );
    let rows: Vec<AgentView> = q.build_query_as().fetch_all(pool).await?;
    Ok(super::page(rows, limit, |a| DirectoryCursor {
        problems_reported: a.problems_reported,
        registered_at: a.registered_at,
        agent_id: a.agent_id,
    }))
}
