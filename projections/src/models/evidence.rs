//! Evidence submissions as their submitters (and, later, reviewers) read them.

use bw_domain::evidence::EvidenceEvent;
use bw_eventlog::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::decode;
use crate::{ProjectionError, runtime::Projection};

/// The projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvidenceSubmissions;

/// Its name (checkpoint row, consumer, metrics).
pub const NAME: &str = "evidence";

impl Projection for EvidenceSubmissions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Evidence"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_evidence", "rm_peer_votes"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            match decode::<EvidenceEvent>(event)? {
                EvidenceEvent::EvidenceSubmitted {
                    evidence_id,
                    mission_id,
                    claim_id,
                    human_id,
                    files,
                    capture,
                    notes,
                    submitted_at,
                    ..
                } => {
                    sqlx::query(
                        "INSERT INTO rm_evidence (evidence_id, mission_id, claim_id, human_id, files, latitude, longitude,
                             location_source, captured_at, exif, notes, stage, submitted_at, position)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13)",
                    )
                    .bind(evidence_id)
                    .bind(mission_id)
                    .bind(claim_id)
                    .bind(human_id)
                    .bind(serde_json::to_value(&files).unwrap_or_default())
                    .bind(capture.location.map(|l| l.latitude))
                    .bind(capture.location.map(|l| l.longitude))
                    .bind(&capture.location_source)
                    .bind(capture.captured_at)
                    .bind(serde_json::to_value(&capture.exif).unwrap_or_default())
                    .bind(notes)
                    .bind(submitted_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                }
                EvidenceEvent::EvidenceChecked {
                    evidence_id,
                    checks,
                    stage,
                    ..
                } => {
                    let updated = sqlx::query(
                        "UPDATE rm_evidence SET checks = $2, confidence = $3, stage = $4, position = $5 WHERE evidence_id = $1",
                    )
                    .bind(evidence_id)
                    .bind(serde_json::to_value(&checks).unwrap_or_default())
                    .bind(checks.confidence)
                    .bind(stage.as_str())
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&updated, event, || {
                        format!("evidence {evidence_id} is missing")
                    })?;
                }
                EvidenceEvent::EvidenceVisionAssessed {
                    evidence_id,
                    assessment,
                    stage,
                    ..
                } => {
                    let updated = sqlx::query(
                        "UPDATE rm_evidence SET vision = $2, stage = $3, position = $4 WHERE evidence_id = $1",
                    )
                    .bind(evidence_id)
                    .bind(serde_json::to_value(&assessment).unwrap_or_default())
                    .bind(stage.as_str())
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&updated, event, || {
                        format!("evidence {evidence_id} is missing")
                    })?;
                }
                EvidenceEvent::PeerVoteCast {
                    evidence_id,
                    review_id,
                    reviewer,
                    verdict,
                    confidence,
                    reasoning,
                    cast_at,
                } => {
                    sqlx::query(
                        "INSERT INTO rm_peer_votes (evidence_id, reviewer, review_id, verdict, confidence, reasoning, cast_at, position)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(evidence_id)
                    .bind(reviewer)
                    .bind(review_id)
                    .bind(if verdict == bw_domain::evidence::Verdict::Approve { "approve" } else { "reject" })
                    .bind(confidence)
                    .bind(reasoning)
                    .bind(cast_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                }
                EvidenceEvent::EvidenceAppealed {
                    evidence_id,
                    reason,
                    ..
                } => {
                    let updated = sqlx::query(
                        "UPDATE rm_evidence SET stage = 'appealed', appeal_reason = $2, position = $3 WHERE evidence_id = $1",
                    )
                    .bind(evidence_id)
                    .bind(reason)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&updated, event, || {
                        format!("evidence {evidence_id} is missing")
                    })?;
                }
                EvidenceEvent::EvidenceAppealResolved {
                    evidence_id,
                    resolved_by,
                    approved,
                    reasoning,
                    resolved_at,
                } => {
                    let resolution = serde_json::json!({
                        "resolvedBy": resolved_by, "approved": approved,
                        "reasoning": reasoning, "resolvedAt": resolved_at
                    });
                    let updated = sqlx::query(
                        "UPDATE rm_evidence SET appeal_resolution = $2, position = $3 WHERE evidence_id = $1",
                    )
                    .bind(evidence_id)
                    .bind(resolution)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&updated, event, || {
                        format!("evidence {evidence_id} is missing")
                    })?;
                }
                EvidenceEvent::EvidenceVerified {
                    evidence_id,
                    confidence,
                    ..
                }
                | EvidenceEvent::EvidenceRejected {
                    evidence_id,
                    confidence,
                    ..
                } => {
                    let stage = if event.event_type == "EvidenceVerified" {
                        "verified"
                    } else {
                        "rejected"
                    };
                    let updated = sqlx::query(
                        "UPDATE rm_evidence SET final_confidence = $2, stage = $3, position = $4 WHERE evidence_id = $1",
                    )
                    .bind(evidence_id)
                    .bind(confidence)
                    .bind(stage)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    super::expect_one(&updated, event, || {
                        format!("evidence {evidence_id} is missing")
                    })?;
                }
            }
            Ok(())
        })
    }
}

/// A submission as read.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceView {
    pub evidence_id: Uuid,
    pub mission_id: Uuid,
    pub claim_id: Uuid,
    /// `[{key, sha256, size, mime, kind, duplicateOf?}]`.
    #[schema(value_type = Vec<Object>)]
    pub files: Value,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// `form` or `exif`.
    pub location_source: Option<String>,
    pub captured_at: Option<DateTime<Utc>>,
    /// The EXIF fields kept (personal ones stripped).
    #[schema(value_type = Object)]
    pub exif: Value,
    pub notes: Option<String>,
    /// `pending`, then `verified`, `rejected` or `peer_review`.
    pub stage: String,
    /// The automatic checks (`docs/verification.md`).
    #[schema(value_type = Option<Object>)]
    pub checks: Option<Value>,
    /// What the checks gave.
    pub confidence: Option<f64>,
    /// The vision model's assessment, when one ran (`{model, relevanceScore, gpsPlausibility,
    /// timestampPlausibility, authenticityScore, requirementChecklist, overallConfidence,
    /// reasoning}`).
    #[schema(value_type = Option<Object>)]
    pub vision: Option<Value>,
    /// What decided: the checks', the vision model's, the peers' or the admin's confidence.
    pub final_confidence: Option<f64>,
    pub submitted_at: DateTime<Utc>,
}

const COLUMNS: &str = "e.evidence_id, e.mission_id, e.claim_id, e.files, e.latitude, e.longitude, e.location_source,
    e.captured_at, e.exif, e.notes, e.stage, e.checks, e.confidence, e.vision, e.final_confidence, e.submitted_at";

/// [`COLUMNS`] as a reviewer sees them: the point rounded to about a kilometre, EXIF without GPS.
const REVIEW_COLUMNS: &str = "e.evidence_id, e.mission_id, e.claim_id, e.files,
    round(e.latitude::numeric, 2)::float8 AS latitude, round(e.longitude::numeric, 2)::float8 AS longitude,
    e.location_source, e.captured_at, e.exif - 'gpsLatitude' - 'gpsLongitude' AS exif, e.notes, e.stage, e.checks,
    e.confidence, e.vision, e.final_confidence, e.submitted_at";

/// `human_id`'s submissions for `mission_id`, newest first.
pub async fn of(
    pool: &PgPool,
    mission_id: Uuid,
    human_id: Uuid,
) -> Result<Vec<EvidenceView>, ProjectionError> {
    Ok(sqlx::query_as(
        &format!(
            "SELECT {COLUMNS} FROM rm_evidence e WHERE mission_id = $1 AND human_id = $2 ORDER BY submitted_at DESC"
        ),
    )
    .bind(mission_id)
    .bind(human_id)
    .fetch_all(pool)
    .await?)
}

/// Evidence `reviewer` may vote on: in peer review, not their own, not voted on yet; oldest first.
/// Locations are rounded (a reviewer is not told where and when a named claimant was, exactly).
pub async fn pending_for(
    pool: &PgPool,
    reviewer: Uuid,
    limit: i64,
) -> Result<Vec<EvidenceView>, ProjectionError> {
    Ok(sqlx::query_as(
        &format!(
            "SELECT {REVIEW_COLUMNS} FROM rm_evidence e
             WHERE e.stage = 'peer_review' AND e.human_id <> $1
               AND NOT EXISTS (SELECT 1 FROM rm_peer_votes v WHERE v.evidence_id = e.evidence_id AND v.reviewer = $1)
             ORDER BY e.submitted_at LIMIT $2"
        ),
    )
    .bind(reviewer)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Evidence whose rejection was appealed and awaits an admin, oldest first.
pub async fn disputes(pool: &PgPool, limit: i64) -> Result<Vec<EvidenceView>, ProjectionError> {
    Ok(sqlx::query_as(
        &format!(
            "SELECT {COLUMNS} FROM rm_evidence e WHERE e.stage = 'appealed' ORDER BY e.submitted_at LIMIT $1"
        ),
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
