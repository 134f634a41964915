//! Named reads of the log for the crates beside it: a stream's history, events between two
//! positions, counts for lag gauges and progress bars, the log's size for backups.
//!
//! Every read here is bounded by the log's primary key (`global_position`) or by one stream
//! (`aggregate_type, aggregate_id, sequence`), so its cost does not grow with the log; the two that
//! count (`count`, [`Size`]) are for operators' commands, not request paths. An empty `types` slice
//! means every aggregate type.

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::envelope::{COLUMNS, EventEnvelope};

/// One event of a stream's history, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    /// The event's type, e.g. `ProblemReported`.
    pub event_type: String,
    /// The version of the event's schema.
    pub event_version: String,
    /// The payload as stored.
    pub payload: Value,
}

/// The events of one stream up to and including `upto` (its sequence), in order.
pub async fn history<'e>(
    exec: impl PgExecutor<'e>,
    aggregate_type: &str,
    aggregate_id: &str,
    upto: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_type, event_version, payload FROM events
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence <= $3 ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(upto)
    .fetch_all(exec)
    .await
}

/// When the stream's first event was recorded (the aggregate's birth), if it has one.
pub async fn started_at<'e>(
    exec: impl PgExecutor<'e>,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT recorded_at FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = 1",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_optional(exec)
    .await
}

/// The first event of type `event_type` in one stream (e.g. its creation), if there is one.
pub async fn first_of_type<'e>(
    exec: impl PgExecutor<'e>,
    aggregate_type: &str,
    aggregate_id: &str,
    event_type: &str,
) -> Result<Option<EventEnvelope>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_type = $3
         ORDER BY sequence LIMIT 1"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(event_type)
    .fetch_optional(exec)
    .await?;
    row.as_ref().map(EventEnvelope::from_row).transpose()
}

/// The events of one stream whose type is one of `event_types`, in order.
pub async fn of_types<'e>(
    exec: impl PgExecutor<'e>,
    aggregate_type: &str,
    aggregate_id: &str,
    event_types: &[&str],
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_type = ANY($3)
         ORDER BY sequence"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(event_types)
    .fetch_all(exec)
    .await?;
    rows.iter().map(EventEnvelope::from_row).collect()
}

/// Whether every event of one stream after sequence `after` was written by `actor` (the scope in
/// its metadata, e.g. `system`); `false` when there is none.
pub async fn only_actor_since<'e>(
    exec: impl PgExecutor<'e>,
    aggregate_type: &str,
    aggregate_id: &str,
    after: i64,
    actor: &str,
) -> Result<bool, sqlx::Error> {
    let only: Option<bool> = sqlx::query_scalar(
        "SELECT bool_and(metadata->>'actor' = $4) FROM events
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(after)
    .bind(actor)
    .fetch_one(exec)
    .await?;
    Ok(only == Some(true))
}

/// `(global position, payload)` of every event of `aggregate_type` at or below `upto`, in global
/// order, streamed (a replay of one kind of aggregate, e.g. the ledger's audit).
pub fn payloads_upto<'e>(
    exec: impl PgExecutor<'e> + 'e,
    aggregate_type: &'e str,
    upto: i64,
) -> BoxStream<'e, Result<(i64, Value), sqlx::Error>> {
    sqlx::query_as(
        "SELECT global_position, payload FROM events
         WHERE aggregate_type = $1 AND global_position <= $2 ORDER BY global_position",
    )
    .bind(aggregate_type)
    .bind(upto)
    .fetch(exec)
}

/// The last position written by transactions older than `horizon` (a transaction id from
/// [`crate::relay::writer_horizon`]): below it no open transaction can still add an event.
pub async fn last_position_before<'e>(
    exec: impl PgExecutor<'e>,
    horizon: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(max(global_position), 0) FROM events WHERE txid < $1::text::xid8",
    )
    .bind(horizon.to_string())
    .fetch_one(exec)
    .await
}

/// Up to `limit` events of `types` in (`after`, `to`], in global order, leaving out the positions in
/// `skipped` (events an operator told a projection to pass over).
pub async fn between<'e>(
    exec: impl PgExecutor<'e>,
    after: i64,
    to: i64,
    types: &[&str],
    skipped: &[i64],
    limit: i64,
) -> Result<Vec<EventEnvelope>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events
         WHERE global_position > $1 AND global_position <= $2
           AND (cardinality($3::text[]) = 0 OR aggregate_type = ANY($3))
           AND global_position <> ALL($4)
         ORDER BY global_position LIMIT $5"
    ))
    .bind(after)
    .bind(to)
    .bind(types)
    .bind(skipped)
    .bind(limit)
    .fetch_all(exec)
    .await?;
    rows.iter().map(EventEnvelope::from_row).collect()
}

/// The ids of the events of `types` in (`after`, `to`], in global order: what a consumer should
/// have been delivered over that range.
pub async fn event_ids_between<'e>(
    exec: impl PgExecutor<'e>,
    after: i64,
    to: i64,
    types: &[&str],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT event_id FROM events WHERE global_position > $1 AND global_position <= $2
           AND (cardinality($3::text[]) = 0 OR aggregate_type = ANY($3)) ORDER BY global_position",
    )
    .bind(after)
    .bind(to)
    .bind(types)
    .fetch_all(exec)
    .await
}

/// Whether any event of `types` lies in (`after`, `to`].
pub async fn any_between<'e>(
    exec: impl PgExecutor<'e>,
    after: i64,
    to: i64,
    types: &[&str],
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events
           WHERE global_position > $1 AND global_position <= $2
             AND (cardinality($3::text[]) = 0 OR aggregate_type = ANY($3)))",
    )
    .bind(after)
    .bind(to)
    .bind(types)
    .fetch_one(exec)
    .await
}

/// How many events of `types` lie after `after`, counting at most `cap` of them (a lag gauge's cost
/// stays bounded however far behind its reader is); `None` counts them all.
pub async fn count_after<'e>(
    exec: impl PgExecutor<'e>,
    after: i64,
    types: &[&str],
    cap: Option<i64>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM events
           WHERE global_position > $1 AND (cardinality($2::text[]) = 0 OR aggregate_type = ANY($2))
           LIMIT $3) pending",
    )
    .bind(after)
    .bind(types)
    .bind(cap)
    .fetch_one(exec)
    .await
}

/// Among the first `window` events after `after` (whatever their type), how many have one of
/// `event_types`: a bounded look at what a consumer has not reached yet.
pub async fn count_types_in_window<'e>(
    exec: impl PgExecutor<'e>,
    after: i64,
    event_types: &[&str],
    window: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE event_type = ANY($2)) FROM (
           SELECT event_type FROM events WHERE global_position > $1
           ORDER BY global_position LIMIT $3) ahead",
    )
    .bind(after)
    .bind(event_types)
    .bind(window)
    .fetch_one(exec)
    .await
}

/// How many events of `types` the log holds (a progress bar's total).
pub async fn count<'e>(exec: impl PgExecutor<'e>, types: &[&str]) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE cardinality($1::text[]) = 0 OR aggregate_type = ANY($1)",
    )
    .bind(types)
    .fetch_one(exec)
    .await
}

/// The log's size: its events and the newest writing transaction's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// How many events the log holds.
    pub events: i64,
    /// The largest `txid` among them (0 for an empty log).
    pub max_txid: i64,
}

/// The log's [`Size`], read in the caller's snapshot.
pub async fn size<'e>(exec: impl PgExecutor<'e>) -> Result<Size, sqlx::Error> {
    let (events, max_txid): (i64, i64) =
        sqlx::query_as("SELECT count(*), coalesce(max(txid::text::bigint), 0) FROM events")
            .fetch_one(exec)
            .await?;
    Ok(Size { events, max_txid })
}
