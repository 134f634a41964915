//! The event store: load an aggregate from its stream, append new events in one statement.

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::{
    LogError,
    canonical::{EventForHash, GENESIS, chain_hash, to_micros},
    error::unique_violation,
};

/// At most this many events per commit: the index of an event in its commit fills the low 20 bits
/// of its global position.
pub const MAX_EVENTS_PER_COMMIT: usize = (1 << 20) - 1;

/// The advisory lock every event-writing transaction holds (shared) from before its first write
/// until it ends; defined beside the relay that reads it (ADR 0002).
pub use crate::relay::EVENT_WRITER_LOCK;

/// An aggregate rebuilt from its stream, with what the next append needs.
#[derive(Debug)]
pub struct Loaded<A> {
    /// The aggregate's current state.
    pub aggregate: A,
    /// The sequence of its last event (0 when it has none).
    pub version: i64,
    /// The hash of its last event ([`GENESIS`] when it has none).
    pub last_hash: [u8; 32],
}

impl<A: Default> Loaded<A> {
    /// A stream with no events yet.
    pub fn empty() -> Self {
        Self {
            aggregate: A::default(),
            version: 0,
            last_hash: GENESIS,
        }
    }
}

/// An event decided but not yet chained: [`Draft::seal`] gives it its JSON texts and its hash.
#[derive(Debug, Clone)]
pub struct Draft {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    /// Microseconds ([`to_micros`]): what PostgreSQL keeps.
    pub recorded_at: DateTime<Utc>,
}

impl Draft {
    /// Serialises payload and metadata once and chains the event to `previous` over exactly those
    /// texts — the same texts [`append`] inserts, so what is stored is what was hashed (ADR 0007).
    pub fn seal(self, previous: &[u8; 32]) -> Result<NewEvent, LogError> {
        let json = |value: &Value| {
            serde_json::to_string(value).map_err(|e| LogError::Corrupt(e.to_string()))
        };
        let mut sealed = NewEvent {
            payload_json: json(&self.payload)?,
            metadata_json: json(&self.metadata)?,
            event: self,
            hash: GENESIS,
        };
        sealed.hash = chain_hash(previous, &sealed.for_hash()).map_err(|e| {
            LogError::Corrupt(format!(
                "{} {}: {e}",
                sealed.event.aggregate_type, sealed.event.aggregate_id
            ))
        })?;
        Ok(sealed)
    }
}

/// One event ready to be inserted ([`Draft::seal`]): the draft, the texts stored and hashed, the hash.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: Draft,
    /// The payload's JSON text: inserted as it is, and hashed.
    pub payload_json: String,
    /// The metadata's JSON text: inserted as it is, and hashed.
    pub metadata_json: String,
    pub hash: [u8; 32],
}

impl NewEvent {
    /// The hashed view of this event: its texts as they will be stored.
    pub fn for_hash(&self) -> EventForHash<'_> {
        let e = &self.event;
        EventForHash {
            event_id: e.event_id,
            aggregate_type: &e.aggregate_type,
            aggregate_id: &e.aggregate_id,
            sequence: e.sequence,
            event_type: &e.event_type,
            event_version: &e.event_version,
            recorded_at: e.recorded_at,
            payload: &self.payload_json,
            metadata: &self.metadata_json,
        }
    }
}

/// An event as appended: its id and the global position PostgreSQL gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub event_id: Uuid,
    pub global_position: i64,
}

/// Loads `A` with id `aggregate_id` by applying its events in sequence order.
pub async fn load<A: Aggregate>(
    conn: &mut PgConnection,
    aggregate_id: &str,
) -> Result<Loaded<A>, LogError> {
    // language=PostgreSQL
    let rows = sqlx::query(
        "SELECT sequence, event_type, event_version, payload, hash FROM events
         WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
    )
    .bind(A::TYPE)
    .bind(aggregate_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut loaded = Loaded::<A>::empty();
    for row in rows {
        let payload: Value = row.try_get("payload")?;
        let event_type: String = row.try_get("event_type")?;
        let version: String = row.try_get("event_version")?;
        // Stored in the shape of its version; read in the current one.
        let payload = bw_domain::upcast::upcast(A::TYPE, &event_type, &version, payload)
            .map_err(LogError::Corrupt)?;
        let event: A::Event = serde_json::from_value(payload).map_err(|e| {
            LogError::Corrupt(format!("{} {aggregate_id} {event_type}: {e}", A::TYPE))
        })?;
        loaded.aggregate.apply(event);
        loaded.version = row.try_get("sequence")?;
        let hash: Vec<u8> = row.try_get("hash")?;
        loaded.last_hash = hash
            .try_into()
            .map_err(|_| LogError::Corrupt("hash is not 32 bytes".into()))?;
    }
    Ok(loaded)
}

/// Prepares `events` of aggregate `A` for insertion after `version`, chaining their hashes from
/// `last_hash`. Ids are UUID v7; times are truncated to microseconds (what PostgreSQL keeps).
pub fn prepare<A: Aggregate>(
    aggregate_id: &str,
    version: i64,
    last_hash: [u8; 32],
    events: &[A::Event],
    metadata: &Value,
    now: DateTime<Utc>,
) -> Result<Vec<NewEvent>, LogError> {
    let recorded_at = to_micros(now);
    let mut previous = last_hash;
    let mut prepared = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let payload = serde_json::to_value(event).map_err(|e| LogError::Corrupt(e.to_string()))?;
        let sealed = Draft {
            event_id: Uuid::now_v7(),
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            sequence: version + 1 + i64::try_from(i).unwrap_or(i64::MAX - version - 1),
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload,
            metadata: metadata.clone(),
            recorded_at,
        }
        .seal(&previous)?;
        previous = sealed.hash;
        prepared.push(sealed);
    }
    Ok(prepared)
}

/// Inserts `events` with one statement, inside the caller's transaction, and returns their global
/// positions in the order given.
///
/// This must be the transaction's first write: the global position is built from the transaction
/// id, which PostgreSQL assigns at the first write, and the commit-safe order relies on a transaction
/// that loaded an aggregate after another committed having a larger id (ADR 0002). A duplicate
/// `(aggregate_type, aggregate_id, sequence)` — another command appended first — is
/// [`LogError::Conflict`]. The relay is notified at commit (`bw_events`).
pub async fn append(
    conn: &mut PgConnection,
    aggregate_type: &'static str,
    events: &[NewEvent],
) -> Result<Vec<Appended>, LogError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    if events.len() > MAX_EVENTS_PER_COMMIT {
        return Err(LogError::Corrupt(format!(
            "{} events in one commit; at most {MAX_EVENTS_PER_COMMIT}",
            events.len()
        )));
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.event.event_id).collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e.event.aggregate_type.as_str())
        .collect();
    let agg_ids: Vec<&str> = events
        .iter()
        .map(|e| e.event.aggregate_id.as_str())
        .collect();
    let sequences: Vec<i64> = events.iter().map(|e| e.event.sequence).collect();
    let event_types: Vec<&str> = events.iter().map(|e| e.event.event_type.as_str()).collect();
    let versions: Vec<&str> = events
        .iter()
        .map(|e| e.event.event_version.as_str())
        .collect();
    let payloads: Vec<&str> = events.iter().map(|e| e.payload_json.as_str()).collect();
    let metadata: Vec<&str> = events.iter().map(|e| e.metadata_json.as_str()).collect();
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.event.recorded_at).collect();
    let hashes: Vec<&[u8]> = events.iter().map(|e| e.hash.as_slice()).collect();
    // Before the first write (which assigns the transaction id): mark this transaction as an event
    // writer for the relay's visibility horizon. Advisory locks do not assign a transaction id.
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(EVENT_WRITER_LOCK)
        .execute(&mut *conn)
        .await?;
    // language=PostgreSQL
    // The relay is woken in the same statement: NOTIFY is delivered at commit, never before, and
    // one round trip fewer per command.
    let result = sqlx::query(
        "WITH appended AS (
         INSERT INTO events (global_position, txid, event_id, aggregate_type, aggregate_id, sequence,
                             event_type, event_version, payload, metadata, recorded_at, hash)
         SELECT ((pg_current_xact_id()::text::bigint + e.xid_offset) << 20) | u.ord,
                (pg_current_xact_id()::text::bigint + e.xid_offset)::text::xid8,
                u.event_id, u.aggregate_type, u.aggregate_id, u.sequence, u.event_type,
                u.event_version, u.payload::jsonb, u.metadata::jsonb, u.recorded_at, u.hash
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::timestamptz[], $10::bytea[])
              WITH ORDINALITY AS u(event_id, aggregate_type, aggregate_id, sequence, event_type,
                                   event_version, payload, metadata, recorded_at, hash, ord),
              log_epoch e
         RETURNING event_id, global_position)
         SELECT a.event_id, a.global_position FROM appended a CROSS JOIN pg_notify('bw_events', '')",
    )
    .bind(&ids)
    .bind(&types)
    .bind(&agg_ids)
    .bind(&sequences)
    .bind(&event_types)
    .bind(&versions)
    .bind(&payloads)
    .bind(&metadata)
    .bind(&times)
    .bind(&hashes)
    .fetch_all(&mut *conn)
    .await;
    let rows = match result {
        Ok(rows) => rows,
        Err(e) if unique_violation(&e).as_deref() == Some("events_stream_sequence") => {
            return Err(LogError::Conflict { aggregate_type });
        }
        Err(e) => return Err(e.into()),
    };
    if rows.len() != events.len() {
        // Only if `log_epoch` lost its row (the cross join then inserts nothing): never report
        // success for events that were not written.
        return Err(LogError::Corrupt(format!(
            "{} of {} events appended (is log_epoch empty?)",
            rows.len(),
            events.len()
        )));
    }
    let mut appended: Vec<Appended> = rows
        .iter()
        .map(|row| {
            Ok(Appended {
                event_id: row.try_get("event_id")?,
                global_position: row.try_get("global_position")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    appended.sort_by_key(|a| ids.iter().position(|id| *id == a.event_id));
    Ok(appended)
}

/// After a restore: shifts this cluster's transaction ids (`log_epoch.xid_offset`) past the largest
/// `txid` in the log, so new events sort after every restored one; returns the new offset. Reads the
/// rows loaded, not a manifest's word; call it in the restore's transaction.
pub async fn move_epoch_past_log(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE log_epoch SET xid_offset = GREATEST(0,
             (SELECT coalesce(max(txid::text::bigint), 0) FROM events) + 1 - pg_current_xact_id()::text::bigint)
         RETURNING xid_offset",
    )
    .fetch_one(conn)
    .await
}
