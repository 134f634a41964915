//! The admin queue (Layer C, `domain-reference.md` §2.10): every flagged submission of a problem,
//! solution or debate post, with its claim and review.

use bw_domain::taxonomy::GuardrailStatus;
use bw_eventlog::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use super::moderation::{self, Moderation, moderation};
use crate::{ProjectionError, runtime::Projection};

/// The projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReviewQueue;

/// Its name.
pub const NAME: &str = "review_queue";

impl Projection for ReviewQueue {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        // 2: the guardrail's explanation
        2
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        moderation::AGGREGATES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_review_queue"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let stream_id: Uuid = event
                .aggregate_id
                .parse()
                .map_err(|_| super::apply_error(event, "aggregate id is not a UUID".into()))?;
            match moderation(event)? {
                Moderation::Decided(v) if v.decision == GuardrailStatus::Flagged => {
                    sqlx::query(
                        "INSERT INTO rm_review_queue (verdict_id, content_type, content_id, stream_id, author_agent_id, state,
                             reasons, layer_a, alignment, trust_tier, flagged_at, position, explanation)
                         VALUES ($1, $2, $3, $4, $5, 'pending_review', $6, $7, $8, $9, $10, $11, $12)",
                    )
                    .bind(v.verdict_id)
                    .bind(v.content_type.as_str())
                    .bind(v.content_id)
                    .bind(stream_id)
                    .bind(v.author_agent_id)
                    .bind(serde_json::to_value(&v.reasons).unwrap_or_default())
                    .bind(serde_json::to_value(&v.layer_a).unwrap_or_default())
                    .bind(v.assessment.as_ref().map(|a| a.alignment))
                    .bind(serde_json::to_value(v.trust_tier).ok().and_then(|t| t.as_str().map(str::to_owned)))
                    .bind(v.decided_at)
                    .bind(event.global_position)
                    .bind(
                        v.assessment
                            .as_ref()
                            .and_then(|a| a.explanation.as_ref())
                            .and_then(|e| serde_json::to_value(e).ok()),
                    )
                    .execute(&mut *conn)
                    .await?;
                }
                Moderation::Claimed(c) => {
                    let updated = sqlx::query(
                        "UPDATE rm_review_queue SET state = 'claimed', claimed_by = $2, claimed_at = $3, position = $4
                         WHERE content_id = $1 AND state = 'pending_review'",
                    )
                    .bind(c.content_id)
                    .bind(c.claimed_by)
                    .bind(c.claimed_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&updated, event, || {
                        "no open queue item for the claim".into()
                    })?;
                }
                Moderation::Reviewed(r) => {
                    let updated = sqlx::query(
                        "UPDATE rm_review_queue SET state = $2, reviewed_by = $3, review_notes = $4, reviewed_at = $5, position = $6
                         WHERE content_id = $1 AND state = 'claimed'",
                    )
                    .bind(r.content_id)
                    .bind(r.decision.as_str())
                    .bind(r.reviewed_by)
                    .bind(&r.notes)
                    .bind(r.reviewed_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&updated, event, || {
                        "no claimed queue item for the review".into()
                    })?;
                }
                Moderation::Edited(content_id) => {
                    sqlx::query(
                        "UPDATE rm_review_queue SET state = 'superseded', position = $2
                         WHERE content_id = $1 AND state IN ('pending_review', 'claimed')",
                    )
                    .bind(content_id)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                }
                Moderation::Decided(_) | Moderation::Other => {}
            }
            Ok(())
        })
    }
}

/// One item of the queue.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueItem {
    /// The item's id (the flagging verdict's id).
    pub id: Uuid,
    pub content_type: String,
    pub content_id: Uuid,
    pub author_agent_id: Uuid,
    /// `pending_review`, `claimed`, `approved`, `rejected` or `superseded`.
    pub state: String,
    #[schema(value_type = Vec<String>)]
    pub reasons: Value,
    #[schema(value_type = Object)]
    pub layer_a: Value,
    pub alignment: Option<f64>,
    /// Why the guardrail was unsure: calibrated probabilities of approve, flag and reject, the
    /// closest harm categories and the three nearest labelled examples (absent when the classifier
    /// gave none).
    #[schema(value_type = Option<Object>)]
    pub explanation: Option<Value>,
    pub trust_tier: String,
    pub flagged_at: DateTime<Utc>,
    pub claimed_by: Option<Uuid>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub reviewed_by: Option<Uuid>,
    pub review_notes: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    /// The stream holding the content (the problem, or the solution a debate post belongs to).
    #[serde(skip)]
    pub stream_id: Uuid,
}

const COLUMNS: &str = "verdict_id AS id, content_type, content_id, author_agent_id, state, reasons, layer_a, alignment, explanation,
     trust_tier, flagged_at, claimed_by, claimed_at, reviewed_by, review_notes, reviewed_at, stream_id";

/// Which items to list.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// `None`: the open ones (`pending_review` and `claimed`); `Some("all")`: every state.
    pub state: Option<String>,
    pub content_type: Option<String>,
}

/// A page of the queue, oldest first (first flagged, first reviewed); the cursor is the last item's
/// `(flagged_at, id)`.
pub async fn list(
    pool: &PgPool,
    filter: &QueueFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<(Vec<QueueItem>, Option<(DateTime<Utc>, Uuid)>), ProjectionError> {
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM rm_review_queue WHERE true"));
    match filter.state.as_deref() {
        None => {
            q.push(" AND state IN ('pending_review', 'claimed')");
        }
        Some("all") => {}
        Some(state) => {
            q.push(" AND state = ").push_bind(state.to_owned());
        }
    }
    if let Some(t) = &filter.content_type {
        q.push(" AND content_type = ").push_bind(t.clone());
    }
    if let Some((at, id)) = after {
        q.push(" AND (flagged_at, verdict_id) > (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY flagged_at, verdict_id LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<QueueItem> = q.build_query_as().fetch_all(pool).await?;
    Ok(super::page(rows, limit, |r| (r.flagged_at, r.id)))
}

/// One item with the content it is about (as the read models hold it now).
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<(QueueItem, Value)>, ProjectionError> {
    let item: Option<QueueItem> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rm_review_queue WHERE verdict_id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(item) = item else { return Ok(None) };
    let sql = match item.content_type.as_str() {
        "problem" => "SELECT to_jsonb(p) FROM rm_problems p WHERE problem_id = $1",
        "solution" => "SELECT to_jsonb(s) FROM rm_solutions s WHERE solution_id = $1",
        "mission" => "SELECT to_jsonb(m) FROM rm_missions m WHERE mission_id = $1",
        _ => "SELECT to_jsonb(d) FROM rm_debates d WHERE debate_id = $1",
    };
    let content: Option<Value> = sqlx::query_scalar(sql)
        .bind(item.content_id)
        .fetch_optional(pool)
        .await?;
    Ok(Some((item, content.unwrap_or(Value::Null))))
}
