//! The read models, each with its projection and its queries.

pub mod agents;
pub mod evidence;
pub mod humans;
pub mod missions;
pub mod moderation;
pub mod problems;
pub mod review_queue;
pub mod solutions;
pub mod tokens;
pub mod trust;

use bw_eventlog::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::ProjectionError;

/// Every read model of this build (what `projections rebuild|verify` and the admin API know).
pub fn all() -> Vec<std::sync::Arc<dyn crate::runtime::Projection>> {
    vec![
        std::sync::Arc::new(agents::AgentDirectory),
        std::sync::Arc::new(humans::Humans),
        std::sync::Arc::new(problems::ProblemFeed),
        std::sync::Arc::new(solutions::Solutions),
        std::sync::Arc::new(review_queue::ReviewQueue),
        std::sync::Arc::new(tokens::TokenLedger),
        std::sync::Arc::new(missions::Missions),
        std::sync::Arc::new(evidence::EvidenceSubmissions),
        std::sync::Arc::new(trust::AgentTrust),
    ]
}

/// Reads an event's payload as the domain event type, or fails naming the event.
pub fn decode<E: DeserializeOwned>(event: &EventEnvelope) -> Result<E, ProjectionError> {
    let payload = bw_domain::upcast::upcast(
        &event.aggregate_type,
        &event.event_type,
        &event.event_version,
        event.payload.clone(),
    )
    .map_err(|e| apply_error(event, e))?;
    serde_json::from_value(payload).map_err(|e| apply_error(event, e.to_string()))
}

/// The error that stops a projection at `event`, saying why.
pub fn apply_error(event: &EventEnvelope, reason: String) -> ProjectionError {
    ProjectionError::Apply {
        position: event.global_position,
        event_type: event.event_type.clone(),
        reason,
    }
}

/// Adds a mission event to the mission counts of `table` (`rm_problems` or `rm_solutions`, keyed
/// by `key`): `MissionCreated` counts a mission, a status change to `completed` a completed one.
/// The parent's id comes from the mission's `MissionCreated` in the log. Other events change nothing.
pub(crate) async fn count_mission(
    conn: &mut sqlx::PgConnection,
    event: &EventEnvelope,
    table: &str,
    key: &str,
) -> Result<(), ProjectionError> {
    let (column, field) = match event.event_type.as_str() {
        "MissionCreated" => ("mission_count", key),
        "MissionStatusChanged" if event.payload["data"]["to"] == "completed" => {
            ("missions_completed", key)
        }
        _ => return Ok(()),
    };
    let parent_field = if key == "problem_id" {
        "problemId"
    } else {
        "solutionId"
    };
    let created = bw_eventlog::read::first_of_type(
        &mut *conn,
        "Mission",
        &event.aggregate_id,
        "MissionCreated",
    )
    .await?;
    let parent: Uuid = created
        .and_then(|c| c.payload["data"][parent_field].as_str()?.parse().ok())
        .ok_or_else(|| apply_error(event, "the mission's creation names no parent".into()))?;
    let updated = sqlx::query(&format!(
        "UPDATE {table} SET {column} = {column} + 1, position = $2 WHERE {field} = $1"
    ))
    .bind(parent)
    .bind(event.global_position)
    .execute(&mut *conn)
    .await?;
    expect_one(&updated, event, || format!("{parent} is not in {table}"))
}

/// Fails the event unless its update touched exactly one row: what an event updates must already be
/// in the read model, and a silent no-op would hide an out-of-order or missing event.
pub(crate) fn expect_one(
    result: &sqlx::postgres::PgQueryResult,
    event: &EventEnvelope,
    what: impl FnOnce() -> String,
) -> Result<(), ProjectionError> {
    if result.rows_affected() == 1 {
        Ok(())
    } else {
        Err(apply_error(event, what()))
    }
}

/// A keyset page: `rows` were fetched with `limit + 1`; returns at most `limit` rows and, when
/// there are more, the cursor of the last row returned.
pub(crate) fn page<T, C>(
    mut rows: Vec<T>,
    limit: i64,
    cursor: impl Fn(&T) -> C,
) -> (Vec<T>, Option<C>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(cursor);
        (rows, next)
    } else {
        (rows, None)
    }
}

/// Ends a newest-first keyset query: appends "after the cursor" and `ORDER BY … LIMIT limit + 1`
/// for rows ordered by an optional ranking column, then a time column, then an id column, all
/// descending. `after` holds the cursor's values in that order; its rank is bound only when
/// `rank_column` names a column.
pub(crate) fn push_newest_first<'a, R>(
    q: &mut QueryBuilder<'a, Postgres>,
    rank_column: Option<&str>,
    [time_column, id_column]: [&str; 2],
    after: Option<(Option<R>, DateTime<Utc>, Uuid)>,
    limit: i64,
) where
    R: 'a + sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + Send,
{
    let columns: Vec<&str> = rank_column
        .into_iter()
        .chain([time_column, id_column])
        .collect();
    if let Some((rank, at, id)) = after {
        q.push(format_args!(" AND ({}) < (", columns.join(", ")));
        let mut values = q.separated(", ");
        if rank_column.is_some() {
            values.push_bind(rank);
        }
        values.push_bind(at).push_bind(id).push_unseparated(")");
    }
    let order: Vec<String> = columns.iter().map(|c| format!("{c} DESC")).collect();
    q.push(format_args!(" ORDER BY {} LIMIT ", order.join(", ")))
        .push_bind(limit + 1);
}
