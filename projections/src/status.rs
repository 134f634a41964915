//! Projection status, operator actions, and waiting for a position (read-your-writes).

use std::time::{Duration, Instant};

use bw_infra::health::ReadinessCheck;
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::{PgPool, Row};

use crate::{ProjectionError, runtime::Projection};

/// One projection's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStatus {
    pub name: String,
    pub version: i32,
    pub checkpoint: i64,
    /// Events in the log after the checkpoint (of every type: an upper bound for a projection
    /// that reads some).
    pub lag: i64,
    pub state: String,
    pub failed_position: Option<i64>,
    pub last_error: Option<String>,
}

/// Every projection's status.
pub async fn all(pool: &PgPool) -> Result<Vec<ProjectionStatus>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT projection, version, position, state, failed_position, last_error
         FROM projection_checkpoints ORDER BY projection",
    )
    .fetch_all(pool)
    .await?;
    let mut statuses = Vec::with_capacity(rows.len());
    for r in &rows {
        let checkpoint: i64 = r.try_get("position")?;
        statuses.push(ProjectionStatus {
            name: r.try_get("projection")?,
            version: r.try_get("version")?,
            checkpoint,
            lag: bw_eventlog::read::count_after(pool, checkpoint, &[], None).await?,
            state: r.try_get("state")?,
            failed_position: r.try_get("failed_position")?,
            last_error: r.try_get("last_error")?,
        });
    }
    Ok(statuses)
}

/// Skips the event a failed projection stopped at, recording who skipped it and why, and lets the
/// projection run again. Refuses when the projection is not failed at `position`.
pub async fn skip(
    pool: &PgPool,
    projection: &str,
    position: i64,
    reason: &str,
    by: &str,
) -> Result<bool, ProjectionError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query("SELECT state, failed_position, failed_event_id FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
        .bind(projection)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Ok(false) };
    let state: String = row.try_get("state")?;
    let failed_position: Option<i64> = row.try_get("failed_position")?;
    if state != "failed" || failed_position != Some(position) {
        return Ok(false);
    }
    let event_id: Option<uuid::Uuid> = row.try_get("failed_event_id")?;
    sqlx::query("INSERT INTO projection_skips (projection, position, event_id, reason, skipped_by) VALUES ($1, $2, $3, $4, $5)")
        .bind(projection)
        .bind(position)
        .bind(event_id)
        .bind(reason)
        .bind(by)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE projection_checkpoints SET state = 'running', position = GREATEST(position, $2), failed_position = NULL,
                failed_event_id = NULL, last_error = NULL, updated_at = now() WHERE projection = $1",
    )
    .bind(projection)
    .bind(position)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Waits until `projection` has applied every event of its types up to `position`, up to `timeout`;
/// returns whether it got there. Polls with a short, growing interval.
///
/// "Up to" means: its checkpoint is at `position` or beyond, or no event of its types lies between
/// its checkpoint and `position` (the events there belong to other read models, so this one is as
/// current as the caller needs).
pub async fn wait_for(
    pool: &PgPool,
    projection: &dyn Projection,
    position: i64,
    timeout: Duration,
) -> Result<bool, ProjectionError> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(2);
    loop {
        let checkpoint: Option<i64> =
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
                .bind(projection.name())
                .fetch_optional(pool)
                .await?;
        if let Some(at) = checkpoint
            && (at >= position
                || !bw_eventlog::read::any_between(
                    pool,
                    at,
                    position,
                    projection.aggregate_types(),
                )
                .await?)
        {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}

/// Readiness: every projection is running (a failed one is named).
#[derive(Debug, Clone)]
pub struct ProjectionsCheck {
    pool: PgPool,
}

impl ProjectionsCheck {
    /// A check over the projection table in `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl ReadinessCheck for ProjectionsCheck {
    fn name(&self) -> &'static str {
        "projections"
    }

    /// A failed projection degrades the reads it serves; everything else still works, so it must not
    /// take every gateway out of a load balancer's rotation.
    fn critical(&self) -> bool {
        false
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let failed: Vec<(String, Option<i64>)> =
                sqlx::query_as("SELECT projection, failed_position FROM projection_checkpoints WHERE state = 'failed' ORDER BY projection")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| e.to_string())?;
            if failed.is_empty() {
                return Ok(());
            }
            let names: Vec<String> = failed
                .iter()
                .map(|(name, position)| {
                    format!(
                        "{name} (at position {})",
                        position.map_or("?".to_owned(), |p| p.to_string())
                    )
                })
                .collect();
            Err(format!("failed: {}", names.join(", ")))
        })
    }
}
