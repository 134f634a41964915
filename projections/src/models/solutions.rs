//! Solutions and their debates.

use bw_domain::{guardrail::ContentType, solution::SolutionEvent, taxonomy::GuardrailStatus};
use bw_eventlog::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use super::decode;
use crate::{ProjectionError, runtime::Projection};

/// Sets the guardrail status of a solution or a debate post.
async fn set_guardrail_status(
    conn: &mut PgConnection,
    event: &EventEnvelope,
    content_type: ContentType,
    content_id: Uuid,
    status: GuardrailStatus,
) -> Result<(), ProjectionError> {
    let sql = match content_type {
        ContentType::Debate => {
            "UPDATE rm_debates SET guardrail_status = $2, position = $3 WHERE debate_id = $1"
        }
        _ => "UPDATE rm_solutions SET guardrail_status = $2, position = $3 WHERE solution_id = $1",
    };
    let updated = sqlx::query(sql)
        .bind(content_id)
        .bind(status.as_str())
        .bind(event.global_position)
        .execute(&mut *conn)
        .await?;
    super::expect_one(&updated, event, || {
        format!(
            "{} {content_id} is not in the read model",
            content_type.as_str()
        )
    })
}

/// The projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solutions;

/// Its name (checkpoint row, consumer, metrics).
pub const NAME: &str = "solutions";

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

impl Projection for Solutions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        // Missions for the mission counts.
        &["Solution", "Mission"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_solutions", "rm_debates"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            if event.aggregate_type == "Mission" {
                return super::count_mission(conn, event, "rm_solutions", "solution_id").await;
            }
            match decode::<SolutionEvent>(event)? {
                SolutionEvent::SolutionProposed {
                    solution_id,
                    problem_id,
                    proposed_by,
                    details,
                    status,
                    guardrail_status,
                    proposed_at,
                } => {
                    sqlx::query(
                        "INSERT INTO rm_solutions (solution_id, problem_id, proposed_by, title, description, approach,
                             expected_impact, estimated_cost, risks_and_mitigations, required_skills, required_locations,
                             timeline_estimate, status, guardrail_status, proposed_at, updated_at, position)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16)",
                    )
                    .bind(solution_id)
                    .bind(problem_id)
                    .bind(proposed_by)
                    .bind(details.title.as_str())
                    .bind(details.description.as_str())
                    .bind(details.approach.as_str())
                    .bind(json(&details.expected_impact))
                    .bind(details.estimated_cost.as_ref().map(json))
                    .bind(json(&details.risks_and_mitigations))
                    .bind(&details.required_skills)
                    .bind(&details.required_locations)
                    .bind(details.timeline_estimate.as_ref().map(|t| t.as_str()))
                    .bind(status.as_str())
                    .bind(guardrail_status.as_str())
                    .bind(proposed_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                }
                SolutionEvent::SolutionEdited {
                    solution_id,
                    changes,
                    guardrail_status,
                    scores_reset,
                    edited_at,
                    ..
                } => {
                    let result = sqlx::query(
                        "UPDATE rm_solutions SET
                             title = COALESCE($2, title), description = COALESCE($3, description),
                             approach = COALESCE($4, approach), expected_impact = COALESCE($5, expected_impact),
                             estimated_cost = COALESCE($6, estimated_cost),
                             risks_and_mitigations = COALESCE($7, risks_and_mitigations),
                             required_skills = COALESCE($8, required_skills),
                             required_locations = COALESCE($9, required_locations),
                             timeline_estimate = COALESCE($10, timeline_estimate),
                             impact_score = CASE WHEN $11 THEN 0 ELSE impact_score END,
                             feasibility_score = CASE WHEN $11 THEN 0 ELSE feasibility_score END,
                             cost_efficiency_score = CASE WHEN $11 THEN 0 ELSE cost_efficiency_score END,
                             composite_score = CASE WHEN $11 THEN 0 ELSE composite_score END,
                             guardrail_status = $12, edit_count = edit_count + 1, updated_at = $13, position = $14
                         WHERE solution_id = $1",
                    )
                    .bind(solution_id)
                    .bind(changes.title.as_ref().map(|t| t.as_str()))
                    .bind(changes.description.as_ref().map(|d| d.as_str()))
                    .bind(changes.approach.as_ref().map(|a| a.as_str()))
                    .bind(changes.expected_impact.as_ref().map(json))
                    .bind(changes.estimated_cost.as_ref().map(json))
                    .bind(changes.risks_and_mitigations.as_ref().map(json))
                    .bind(changes.required_skills.as_ref())
                    .bind(changes.required_locations.as_ref())
                    .bind(changes.timeline_estimate.as_ref().map(|t| t.as_str()))
                    .bind(scores_reset)
                    .bind(guardrail_status.as_str())
                    .bind(edited_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&result, event, || {
                        format!("solution {solution_id} is not in the read model")
                    })?;
                }
                SolutionEvent::DebatePosted {
                    solution_id,
                    debate_id,
                    agent_id,
                    parent_debate_id,
                    depth,
                    stance,
                    content,
                    evidence_links,
                    guardrail_status,
                    posted_at,
                } => {
                    sqlx::query(
                        "INSERT INTO rm_debates (debate_id, solution_id, agent_id, parent_debate_id, depth, stance, content,
                             evidence_links, guardrail_status, posted_at, position)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(debate_id)
                    .bind(solution_id)
                    .bind(agent_id)
                    .bind(parent_debate_id)
                    .bind(i16::from(depth))
                    .bind(stance.as_str())
                    .bind(content.as_str())
                    .bind(json(&evidence_links))
                    .bind(guardrail_status.as_str())
                    .bind(posted_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    let result = sqlx::query("UPDATE rm_solutions SET debate_count = debate_count + 1, position = $2 WHERE solution_id = $1")
                        .bind(solution_id)
                        .bind(event.global_position)
                        .execute(&mut *conn)
                        .await?;
                    super::expect_one(&result, event, || {
                        format!("solution {solution_id} is not in the read model")
                    })?;
                }
                SolutionEvent::GuardrailDecided(verdict) => {
                    let scores = verdict.assessment.as_ref().and_then(|a| a.solution_scores);
                    set_guardrail_status(
                        conn,
                        event,
                        verdict.content_type,
                        verdict.content_id,
                        verdict.decision,
                    )
                    .await?;
                    if let (Some(scores), ContentType::Solution) = (scores, verdict.content_type) {
                        sqlx::query(
                            "UPDATE rm_solutions SET impact_score = $2, feasibility_score = $3, cost_efficiency_score = $4,
                                 composite_score = $5 WHERE solution_id = $1",
                        )
                        .bind(verdict.content_id)
                        .bind(scores.impact)
                        .bind(scores.feasibility)
                        .bind(scores.cost_efficiency)
                        .bind(scores.composite())
                        .execute(&mut *conn)
                        .await?;
                    }
                }
                SolutionEvent::Reviewed(reviewed) => {
                    set_guardrail_status(
                        conn,
                        event,
                        reviewed.content_type,
                        reviewed.content_id,
                        reviewed.decision,
                    )
                    .await?;
                }
                SolutionEvent::ReviewClaimed(_) => {}
                SolutionEvent::SolutionStatusChanged {
                    solution_id,
                    to,
                    changed_at,
                    ..
                } => {
                    let result = sqlx::query("UPDATE rm_solutions SET status = $2, updated_at = $3, position = $4 WHERE solution_id = $1")
                        .bind(solution_id)
                        .bind(to.as_str())
                        .bind(changed_at)
                        .bind(event.global_position)
                        .execute(&mut *conn)
                        .await?;
                    super::expect_one(&result, event, || {
                        format!("solution {solution_id} is not in the read model")
                    })?;
                }
            }
            Ok(())
        })
    }
}

/// A solution as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SolutionView {
    pub solution_id: Uuid,
    pub problem_id: Uuid,
    pub proposed_by: Uuid,
    pub title: String,
    pub description: String,
    pub approach: String,
    #[schema(value_type = Object)]
    pub expected_impact: serde_json::Value,
    #[schema(value_type = Option<Object>)]
    pub estimated_cost: Option<serde_json::Value>,
    #[schema(value_type = Object)]
    pub risks_and_mitigations: serde_json::Value,
    pub required_skills: Vec<String>,
    pub required_locations: Vec<String>,
    pub timeline_estimate: Option<String>,
    pub impact_score: f64,
    pub feasibility_score: f64,
    pub cost_efficiency_score: f64,
    pub composite_score: f64,
    pub status: String,
    pub guardrail_status: String,
    pub debate_count: i32,
    /// Missions created from this solution, and how many completed.
    pub mission_count: i32,
    pub missions_completed: i32,
    pub edit_count: i32,
    pub proposed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "solution_id, problem_id, proposed_by, title, description, approach, expected_impact, estimated_cost,
    risks_and_mitigations, required_skills, required_locations, timeline_estimate, impact_score, feasibility_score,
    cost_efficiency_score, composite_score, status, guardrail_status, debate_count, mission_count, missions_completed, edit_count, proposed_at, updated_at";

/// One solution by id, whatever its guardrail status (visibility is the caller's rule).
pub async fn get(
    pool: &PgPool,
    solution_id: Uuid,
) -> Result<Option<SolutionView>, ProjectionError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rm_solutions WHERE solution_id = $1"
    ))
    .bind(solution_id)
    .fetch_optional(pool)
    .await?)
}

/// How solutions are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SolutionSort {
    /// Newest first.
    #[default]
    Recent,
    /// Highest composite score first, newest first among equals.
    Score,
}

/// Filters of the solution list.
#[derive(Debug, Clone, Default)]
pub struct SolutionFilter {
    pub problem_id: Option<Uuid>,
    pub status: Option<String>,
    /// `Some(agent)`: that agent's solutions in every guardrail status; `None`: approved ones only.
    pub owner: Option<Uuid>,
    pub sort: SolutionSort,
}

/// Where a page starts, for either order: (score, proposed_at, id) after the last row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolutionCursor {
    pub score: f64,
    pub proposed_at: DateTime<Utc>,
    pub solution_id: Uuid,
}

impl SolutionCursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        format!(
            "{:x}.{:x}.{}",
            self.score.to_bits(),
            self.proposed_at.timestamp_micros(),
            self.solution_id.simple()
        )
    }

    /// Parses the opaque text form.
    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.split('.');
        let score = f64::from_bits(u64::from_str_radix(parts.next()?, 16).ok()?);
        let proposed_at =
            DateTime::from_timestamp_micros(i64::from_str_radix(parts.next()?, 16).ok()?)?;
        let solution_id = Uuid::parse_str(parts.next()?).ok()?;
        (parts.next().is_none() && score.is_finite()).then_some(Self {
            score,
            proposed_at,
            solution_id,
        })
    }
}

/// One page of solutions and the cursor of the next.
pub async fn list(
    pool: &PgPool,
    filter: &SolutionFilter,
    after: Option<SolutionCursor>,
    limit: i64,
) -> Result<(Vec<SolutionView>, Option<SolutionCursor>), ProjectionError> {
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM rm_solutions WHERE "));
    match filter.owner {
        Some(owner) => q.push("proposed_by = ").push_bind(owner),
        None => q.push("guardrail_status = 'approved'"),
    };
    if let Some(problem) = filter.problem_id {
        q.push(" AND problem_id = ").push_bind(problem);
    }
    if let Some(status) = &filter.status {
        q.push(" AND status = ").push_bind(status.clone());
    }
    let rank = match filter.sort {
        SolutionSort::Recent => None,
        SolutionSort::Score => Some("composite_score"),
    };
    super::push_newest_first(
        &mut q,
        rank,
        ["proposed_at", "solution_id"],
        after.map(|c| (Some(c.score), c.proposed_at, c.solution_id)),
        limit,
    );
    let rows: Vec<SolutionView> = q.build_query_as().fetch_all(pool).await?;
    Ok(super::page(rows, limit, |s| SolutionCursor {
        score: s.composite_score,
        proposed_at: s.proposed_at,
        solution_id: s.solution_id,
    }))
}

/// A debate contribution as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DebateView {
    pub debate_id: Uuid,
    pub solution_id: Uuid,
    pub agent_id: Uuid,
    pub parent_debate_id: Option<Uuid>,
    pub depth: i16,
    pub stance: String,
    pub content: String,
    #[schema(value_type = Object)]
    pub evidence_links: serde_json::Value,
    pub guardrail_status: String,
    pub posted_at: DateTime<Utc>,
}

/// A solution's debate in posting order: approved contributions, plus `viewer`'s own in any state.
pub async fn debates(
    pool: &PgPool,
    solution_id: Uuid,
    stance: Option<&str>,
    viewer: Option<Uuid>,
) -> Result<Vec<DebateView>, ProjectionError> {
    Ok(sqlx::query_as(
        "SELECT debate_id, solution_id, agent_id, parent_debate_id, depth, stance, content, evidence_links, guardrail_status, posted_at
         FROM rm_debates
         WHERE solution_id = $1 AND ($2::text IS NULL OR stance = $2)
           AND (guardrail_status = 'approved' OR agent_id = $3)
         ORDER BY posted_at, debate_id",
    )
    .bind(solution_id)
    .bind(stance)
    .bind(viewer)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = SolutionCursor {
            score: 72.5,
            proposed_at: DateTime::from_timestamp(1_700_000_000, 0).expect("valid"),
            solution_id: Uuid::now_v7(),
        };
        assert_eq!(SolutionCursor::decode(&c.encode()), Some(c));
        assert_eq!(SolutionCursor::decode("a.b"), None);
        assert_eq!(SolutionCursor::decode(&format!("{}.x", c.encode())), None);
    }
}
