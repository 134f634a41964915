//! cqrs-es's `PersistedEventRepository`, implemented on our event store.
//!
//! The command bus ([`crate::bus`]) is what the gateway uses, because it must also write the
//! idempotency record and reservations in the events' transaction. This implementation keeps the
//! log usable by cqrs-es's own machinery — `PersistedEventStore`, `CqrsFramework`, replays — with the
//! same guarantees: one multi-row insert per commit, the hash chain, the commit-safe position, and
//! `OptimisticLockError` on a sequence clash. Snapshots are not used (aggregates are short streams).

use bw_domain::meta::Actor;
use chrono::Utc;
use cqrs_es::{
    Aggregate,
    persist::{
        PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent,
        SerializedSnapshot,
    },
};
use serde_json::Value;
use sqlx::{PgPool, Row, postgres::PgRow};
use uuid::Uuid;

use crate::{
    LogError,
    canonical::GENESIS,
    store::{self, Draft},
};

/// The event store as a cqrs-es repository.
#[derive(Debug, Clone)]
pub struct PgEventRepository {
    pool: PgPool,
}

impl PgEventRepository {
    /// A repository over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn persistence(e: LogError) -> PersistenceError {
    match e {
        LogError::Conflict { .. } => PersistenceError::OptimisticLockError,
        LogError::Database(e) => PersistenceError::ConnectionError(Box::new(e)),
        LogError::Corrupt(m) => PersistenceError::DeserializationError(m.into()),
        other => PersistenceError::UnknownError(Box::new(other)),
    }
}

fn serialized(row: &PgRow) -> Result<SerializedEvent, sqlx::Error> {
    let sequence: i64 = row.try_get("sequence")?;
    Ok(SerializedEvent {
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: usize::try_from(sequence).unwrap_or_default(),
        aggregate_type: row.try_get("aggregate_type")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
    })
}

const SELECT: &str = "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata FROM events";

impl PersistedEventRepository for PgEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.get_last_events::<A>(aggregate_id, 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let rows = sqlx::query(&format!("{SELECT} WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence"))
            .bind(A::TYPE)
            .bind(aggregate_id)
            .bind(i64::try_from(last_sequence).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| PersistenceError::ConnectionError(Box::new(e)))?;
        rows.iter()
            .map(serialized)
            .collect::<Result<_, _>>()
            .map_err(|e| PersistenceError::DeserializationError(Box::new(e)))
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        _snapshot: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| PersistenceError::ConnectionError(Box::new(e)))?;
        // The previous hash of the stream; reading does not assign a transaction id, so the insert
        // below is still the transaction's first write.
        let previous: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT hash FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence DESC LIMIT 1",
        )
        .bind(&first.aggregate_type)
        .bind(&first.aggregate_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| PersistenceError::ConnectionError(Box::new(e)))?;
        let mut last = previous
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .unwrap_or(GENESIS);
        let recorded_at = crate::canonical::to_micros(Utc::now());
        let mut prepared = Vec::with_capacity(events.len());
        for e in events {
            let metadata =
                if e.metadata.is_null() || e.metadata.as_object().is_some_and(|m| m.is_empty()) {
                    serde_json::json!({ "actor": Actor::System.scope() })
                } else {
                    e.metadata.clone()
                };
            let new = Draft {
                event_id: Uuid::now_v7(),
                aggregate_type: e.aggregate_type.clone(),
                aggregate_id: e.aggregate_id.clone(),
                sequence: i64::try_from(e.sequence).unwrap_or(i64::MAX),
                event_type: e.event_type.clone(),
                event_version: e.event_version.clone(),
                payload: e.payload.clone(),
                metadata,
                recorded_at,
            }
            .seal(&last)
            .map_err(persistence)?;
            last = new.hash;
            prepared.push(new);
        }
        store::append(&mut tx, A::TYPE, &prepared)
            .await
            .map_err(persistence)?;
        tx.commit()
            .await
            .map_err(|e| PersistenceError::ConnectionError(Box::new(e)))
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let events = self.get_events::<A>(aggregate_id).await?;
        Ok(feed(events).await)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE aggregate_type = $1 ORDER BY global_position"
        ))
        .bind(A::TYPE)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| PersistenceError::ConnectionError(Box::new(e)))?;
        let events = rows
            .iter()
            .map(serialized)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PersistenceError::DeserializationError(Box::new(e)))?;
        Ok(feed(events).await)
    }
}

async fn feed(events: Vec<SerializedEvent>) -> ReplayStream {
    let (mut feed, stream) = ReplayStream::new(events.len().max(1));
    for event in events {
        // The channel holds every event, so pushing never waits and cannot fail.
        let _ = feed.push(Ok(event)).await;
    }
    stream
}
