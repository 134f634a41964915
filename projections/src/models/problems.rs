//! The problem feed: every problem with its guardrail status; the public feed lists approved ones.

use bw_domain::{problem::ProblemEvent, solution::SolutionEvent};
use bw_eventlog::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use super::decode;
use crate::{ProjectionError, runtime::Projection};

/// The projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemFeed;

/// Its name (checkpoint row, consumer, metrics).
pub const NAME: &str = "problem_feed";

fn json_strings<T: Serialize>(items: &[T]) -> serde_json::Value {
    serde_json::to_value(items).unwrap_or_else(|_| serde_json::Value::Array(Vec::new()))
}

impl Projection for ProblemFeed {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        // 2: `language` (ProblemReported v2).
        2
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        // Solutions and missions for their counts.
        &["Problem", "Solution", "Mission"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_problems"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            if event.aggregate_type == "Mission" {
                return super::count_mission(conn, event, "rm_problems", "problem_id").await;
            }
            if event.aggregate_type == "Solution" {
                if event.event_type == "SolutionProposed" {
                    let SolutionEvent::SolutionProposed { problem_id, .. } =
                        decode::<SolutionEvent>(event)?
                    else {
                        return Err(super::apply_error(
                            event,
                            "payload is not a SolutionProposed".into(),
                        ));
                    };
                    let updated = sqlx::query("UPDATE rm_problems SET solution_count = solution_count + 1, position = $2 WHERE problem_id = $1")
                        .bind(problem_id)
                        .bind(event.global_position)
                        .execute(&mut *conn)
                        .await?;
                    super::expect_one(&updated, event, || {
                        format!("problem {problem_id} is not in the feed")
                    })?;
                }
                return Ok(());
            }
            match decode::<ProblemEvent>(event)? {
                reported @ ProblemEvent::ProblemReported { .. } => {
                    let mut rows = NewRows::default();
                    rows.push(event, reported)?;
                    rows.insert(conn).await?;
                }
                ProblemEvent::GuardrailDecided(verdict) => {
                    let assessment = verdict.assessment.as_ref();
                    let updated = sqlx::query(
                        "UPDATE rm_problems SET guardrail_status = $2, alignment_score = $3, aligned_domain = $4, position = $5
                         WHERE problem_id = $1",
                    )
                    .bind(verdict.content_id)
                    .bind(verdict.decision.as_str())
                    .bind(assessment.map(|a| a.alignment))
                    .bind(assessment.and_then(|a| a.aligned_domain).map(|d| d.as_str()))
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&updated, event, || "the problem is not in the feed".into())?;
                }
                ProblemEvent::Reviewed(reviewed) => {
                    let updated = sqlx::query(
                        "UPDATE rm_problems SET guardrail_status = $2, position = $3 WHERE problem_id = $1",
                    )
                    .bind(reviewed.content_id)
                    .bind(reviewed.decision.as_str())
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&updated, event, || "the problem is not in the feed".into())?;
                }
                ProblemEvent::ReviewClaimed(_) => {}
                ProblemEvent::ProblemArchived {
                    problem_id,
                    archived_at,
                    ..
                } => {
                    let updated = sqlx::query("UPDATE rm_problems SET status = 'archived', updated_at = $2, position = $3 WHERE problem_id = $1")
                        .bind(problem_id)
                        .bind(archived_at)
                        .bind(event.global_position)
                        .execute(&mut *conn)
                        .await?;
                    super::expect_one(&updated, event, || {
                        format!("problem {problem_id} is not in the feed")
                    })?;
                }
                ProblemEvent::ProblemEdited {
                    problem_id,
                    changes,
                    guardrail_status,
                    edited_at,
                    ..
                } => {
                    let updated = sqlx::query(
                        "UPDATE rm_problems SET
                             title = COALESCE($2, title), description = COALESCE($3, description),
                             severity = COALESCE($4, severity),
                             affected_population_estimate = COALESCE($5, affected_population_estimate),
                             geographic_scope = COALESCE($6, geographic_scope),
                             location_name = COALESCE($7, location_name),
                             latitude = COALESCE($8, latitude), longitude = COALESCE($9, longitude),
                             existing_solutions = COALESCE($10, existing_solutions),
                             data_sources = COALESCE($11, data_sources),
                             evidence_links = COALESCE($12, evidence_links),
                             guardrail_status = $13, edit_count = edit_count + 1, updated_at = $14, position = $15
                         WHERE problem_id = $1",
                    )
                    .bind(problem_id)
                    .bind(changes.title.as_ref().map(|t| t.as_str()))
                    .bind(changes.description.as_ref().map(|d| d.as_str()))
                    .bind(changes.severity.map(|s| s.as_str()))
                    .bind(changes.affected_population_estimate.as_ref().map(|p| p.as_str()))
                    .bind(changes.geographic_scope.map(|g| g.as_str()))
                    .bind(changes.location_name.as_ref().map(|l| l.as_str()))
                    .bind(changes.location.map(|p| p.latitude))
                    .bind(changes.location.map(|p| p.longitude))
                    .bind(changes.existing_solutions.as_ref().map(|v| json_strings(v)))
                    .bind(changes.data_sources.as_ref().map(|v| json_strings(v)))
                    .bind(changes.evidence_links.as_ref().map(|v| json_strings(v)))
                    .bind(guardrail_status.as_str())
                    .bind(edited_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&updated, event, || {
                        format!("problem {problem_id} is not in the feed")
                    })?;
                }
            }
            Ok(())
        })
    }

    /// Runs of `ProblemReported` (all a rebuild of a young log holds) go in with one multi-row
    /// insert each; every other event is applied on its own, in order.
    fn apply_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let mut rows = NewRows::default();
            for event in events {
                if event.aggregate_type == "Problem" && event.event_type == "ProblemReported" {
                    rows.push(event, decode::<ProblemEvent>(event)?)?;
                } else {
                    rows.insert(&mut *conn).await?;
                    self.apply(&mut *conn, event).await?;
                }
            }
            rows.insert(conn).await
        })
    }
}

/// New feed rows, one vector per column, inserted with one statement however many there are.
#[derive(Debug, Default)]
struct NewRows {
    problem_id: Vec<Uuid>,
    reported_by: Vec<Uuid>,
    title: Vec<String>,
    description: Vec<String>,
    domain: Vec<&'static str>,
    severity: Vec<&'static str>,
    affected_population_estimate: Vec<Option<String>>,
    geographic_scope: Vec<Option<&'static str>>,
    location_name: Vec<Option<String>>,
    latitude: Vec<Option<f64>>,
    longitude: Vec<Option<f64>>,
    existing_solutions: Vec<serde_json::Value>,
    data_sources: Vec<serde_json::Value>,
    evidence_links: Vec<serde_json::Value>,
    status: Vec<&'static str>,
    guardrail_status: Vec<&'static str>,
    reported_at: Vec<DateTime<Utc>>,
    position: Vec<i64>,
    language: Vec<String>,
}

impl NewRows {
    /// Adds the row of `reported`, the decoded `ProblemReported` of `event`.
    fn push(
        &mut self,
        event: &EventEnvelope,
        reported: ProblemEvent,
    ) -> Result<(), ProjectionError> {
        let ProblemEvent::ProblemReported {
            problem_id,
            reported_by,
            details,
            status,
            guardrail_status,
            reported_at,
        } = reported
        else {
            return Err(super::apply_error(
                event,
                "payload is not a ProblemReported".into(),
            ));
        };
        self.problem_id.push(problem_id);
        self.reported_by.push(reported_by);
        self.title.push(details.title.as_str().to_owned());
        self.description
            .push(details.description.as_str().to_owned());
        self.domain.push(details.domain.as_str());
        self.severity.push(details.severity.as_str());
        self.affected_population_estimate.push(
            details
                .affected_population_estimate
                .as_ref()
                .map(|p| p.as_str().to_owned()),
        );
        self.geographic_scope
            .push(details.geographic_scope.map(|g| g.as_str()));
        self.location_name.push(
            details
                .location_name
                .as_ref()
                .map(|l| l.as_str().to_owned()),
        );
        self.latitude.push(details.location.map(|p| p.latitude));
        self.longitude.push(details.location.map(|p| p.longitude));
        self.existing_solutions
            .push(json_strings(&details.existing_solutions));
        self.data_sources.push(json_strings(&details.data_sources));
        self.evidence_links
            .push(json_strings(&details.evidence_links));
        self.status.push(status.as_str());
        self.guardrail_status.push(guardrail_status.as_str());
        self.reported_at.push(reported_at);
        self.position.push(event.global_position);
        self.language.push(details.language.as_str().to_owned());
        Ok(())
    }

    /// Inserts the rows gathered so far (nothing when there are none) and starts afresh.
    async fn insert(&mut self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        if self.problem_id.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(self);
        sqlx::query(
            "INSERT INTO rm_problems (problem_id, reported_by, title, description, domain, severity,
                 affected_population_estimate, geographic_scope, location_name, latitude, longitude,
                 existing_solutions, data_sources, evidence_links, status, guardrail_status,
                 reported_at, updated_at, position, language)
             SELECT id, agent, title, description, domain, severity, population, scope, place, lat, lon,
                    existing, sources, links, status, guardrail, at, at, position, language
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::float8[], $11::float8[],
                         $12::jsonb[], $13::jsonb[], $14::jsonb[], $15::text[], $16::text[],
                         $17::timestamptz[], $18::int8[], $19::text[])
                  AS u(id, agent, title, description, domain, severity, population, scope, place, lat, lon,
                       existing, sources, links, status, guardrail, at, position, language)",
        )
        .bind(rows.problem_id)
        .bind(rows.reported_by)
        .bind(rows.title)
        .bind(rows.description)
        .bind(rows.domain)
        .bind(rows.severity)
        .bind(rows.affected_population_estimate)
        .bind(rows.geographic_scope)
        .bind(rows.location_name)
        .bind(rows.latitude)
        .bind(rows.longitude)
        .bind(rows.existing_solutions)
        .bind(rows.data_sources)
        .bind(rows.evidence_links)
        .bind(rows.status)
        .bind(rows.guardrail_status)
        .bind(rows.reported_at)
        .bind(rows.position)
        .bind(rows.language)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// A problem as stored in the feed.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemView {
    pub problem_id: Uuid,
    pub reported_by: Uuid,
    pub title: String,
    pub description: String,
    pub domain: String,
    pub severity: String,
    pub affected_population_estimate: Option<String>,
    pub geographic_scope: Option<String>,
    pub location_name: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    #[schema(value_type = Object)]
    pub existing_solutions: serde_json::Value,
    #[schema(value_type = Object)]
    pub data_sources: serde_json::Value,
    #[schema(value_type = Object)]
    pub evidence_links: serde_json::Value,
    /// BCP 47 tag of the title's and description's language.
    pub language: String,
    pub status: String,
    pub guardrail_status: String,
    pub edit_count: i32,
    pub solution_count: i32,
    /// Missions created from this problem's solutions, and how many completed.
    pub mission_count: i32,
    pub missions_completed: i32,
    pub reported_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "problem_id, reported_by, title, description, domain, severity, affected_population_estimate,
    geographic_scope, location_name, latitude, longitude, existing_solutions, data_sources, evidence_links,
    language, status, guardrail_status, edit_count, solution_count, mission_count, missions_completed, reported_at, updated_at";

/// One problem by id, whatever its guardrail status (visibility is the caller's rule).
pub async fn get(pool: &PgPool, problem_id: Uuid) -> Result<Option<ProblemView>, ProjectionError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rm_problems WHERE problem_id = $1"
    ))
    .bind(problem_id)
    .fetch_optional(pool)
    .await?)
}

/// Where a page starts: after this problem in (reported_at, id) descending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub reported_at: DateTime<Utc>,
    pub problem_id: Uuid,
}

impl Cursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        format!(
            "{:x}.{}",
            self.reported_at.timestamp_micros(),
            self.problem_id.simple()
        )
    }

    /// Parses the opaque text form.
    pub fn decode(raw: &str) -> Option<Self> {
        let (micros, id) = raw.split_once('.')?;
        Some(Self {
            reported_at: DateTime::from_timestamp_micros(i64::from_str_radix(micros, 16).ok()?)?,
            problem_id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// Filters of the feed.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    pub domain: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    /// `Some(agent)`: that agent's problems in every guardrail status; `None`: approved ones only.
    pub owner: Option<Uuid>,
}

/// One page of the feed, newest first, and the cursor of the next page.
pub async fn list(
    pool: &PgPool,
    filter: &FeedFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<ProblemView>, Option<Cursor>), ProjectionError> {
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM rm_problems WHERE "));
    match filter.owner {
        Some(owner) => q.push("reported_by = ").push_bind(owner),
        None => q.push("guardrail_status = 'approved'"),
    };
    if let Some(domain) = &filter.domain {
        q.push(" AND domain = ").push_bind(domain.clone());
    }
    if let Some(severity) = &filter.severity {
        q.push(" AND severity = ").push_bind(severity.clone());
    }
    if let Some(status) = &filter.status {
        q.push(" AND status = ").push_bind(status.clone());
    }
    super::push_newest_first(
        &mut q,
        None,
        ["reported_at", "problem_id"],
        after.map(|c| (None::<i64>, c.reported_at, c.problem_id)),
        limit,
    );
    let rows: Vec<ProblemView> = q.build_query_as().fetch_all(pool).await?;
    Ok(super::page(rows, limit, |p| Cursor {
        reported_at: p.reported_at,
        problem_id: p.problem_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            reported_at: DateTime::from_timestamp(1_700_000_000, 5_000).expect("valid"),
            problem_id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("nonsense"), None);
        assert_eq!(Cursor::decode("zz.123"), None);
    }
}
