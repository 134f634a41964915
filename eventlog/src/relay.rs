//! The relay: publishes the event log to JetStream in commit-safe global order.
//!
//! One relay is active at a time (PostgreSQL advisory lock, [`crate::leader`]); others wait and take
//! over when the leader's connection drops. Each pass ([`Relay::publish_pending`]):
//!
//! 1. reads up to `batch_size` events after the checkpoint whose writing transaction is older than
//!    every event-writing transaction still running ([`Relay::horizon`]), in global position order —
//!    an event whose transaction commits late is never overtaken, because the positions it will add
//!    are all larger than anything that passes this filter (ADR 0002);
//! 2. publishes them pipelined (all sends first, then all acks) with `Nats-Msg-Id` = event id;
//! 3. only after every ack, advances the checkpoint to the last position.
//!
//! A crash between 2 and 3 re-publishes the batch on restart; JetStream drops the duplicates (same
//! message id within the stream's duplicate window) and projectors skip anything at or below their
//! own checkpoint. Between passes the relay sleeps until a `NOTIFY bw_events` (sent by every command
//! transaction at commit) or the polling interval, whichever comes first.

use std::{future::Future, time::Duration};

use async_nats::jetstream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::{
    PgPool, Row,
    postgres::{PgConnectOptions, PgListener},
};

use bw_infra::{InfraError, metrics::RelayMetrics, nats::EventsStream};

use crate::{
    envelope::{COLUMNS, EventEnvelope},
    leader::{Leadership, lock_key},
};

/// The advisory lock every event-writing transaction holds (shared) from before its first write
/// until it ends, so the relay can tell which in-progress transactions may still add events (ADR
/// 0002). The command store takes it (`bw_eventlog::store`); the relay reads who holds it.
pub const EVENT_WRITER_LOCK: i64 = 0x6277_6576_0000_0001;

/// [`EVENT_WRITER_LOCK`] as `pg_locks` shows a bigint key: high half in `classid` (0x6277_6576,
/// "bwev"), low half in `objid` (1).
const WRITER_LOCK_CLASSID: i64 = EVENT_WRITER_LOCK >> 32;
const WRITER_LOCK_OBJID: i64 = EVENT_WRITER_LOCK & 0xFFFF_FFFF;

/// Widens the 32-bit id of a running transaction to the 64-bit form (`xid8`), taking the epoch that
/// puts it nearest to `reference` (a recent `xid8`): running transactions are always within 2^31 of
/// any recent transaction id. Never negative.
pub fn widen_xid(xid32: i64, reference: i64) -> i64 {
    let base = reference & !0xFFFF_FFFF;
    let candidate = base | (xid32 & 0xFFFF_FFFF);
    let widened = if candidate - reference > (1 << 31) {
        candidate - (1 << 32)
    } else if reference - candidate > (1 << 31) {
        candidate + (1 << 32)
    } else {
        candidate
    };
    widened.max(0)
}

/// The visibility horizon of the log ([`Relay::horizon`]): every event whose transaction id is
/// below it is committed and no transaction still running can add an event sorting before it. In
/// the log's ids: the cluster's plus `log_epoch.xid_offset` (non-zero after a restore).
pub async fn writer_horizon(pool: &PgPool) -> Result<i64, InfraError> {
    // language=PostgreSQL
    let row = sqlx::query(
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax,
                ARRAY(SELECT a.backend_xid::text::bigint
                      FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE l.locktype = 'advisory' AND l.granted
                        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                        AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1
                        AND a.backend_xid IS NOT NULL) AS writer_xids,
                (SELECT xid_offset FROM log_epoch) AS xid_offset",
    )
    .bind(WRITER_LOCK_CLASSID)
    .bind(WRITER_LOCK_OBJID)
    .fetch_one(pool)
    .await?;
    let xmax: i64 = row.try_get("xmax")?;
    let writers: Vec<i64> = row.try_get("writer_xids")?;
    let offset: i64 = row.try_get("xid_offset")?;
    Ok(writers
        .into_iter()
        .map(|xid| widen_xid(xid, xmax))
        .fold(xmax, i64::min)
        + offset)
}

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where to publish.
    pub stream: EventsStream,
    /// Events per pass.
    pub batch_size: i64,
    /// Longest wait between passes when no notification arrives.
    pub poll_interval: Duration,
    /// How often a standby tries to become leader.
    pub standby_interval: Duration,
    /// The checkpoint row and leader lock name (one relay per stream).
    pub name: String,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            stream: EventsStream::default(),
            batch_size: 1_000,
            poll_interval: Duration::from_millis(500),
            standby_interval: Duration::from_secs(1),
            name: "relay".to_owned(),
        }
    }
}

/// Publishes the log; see the module documentation.
#[derive(Debug, Clone)]
pub struct Relay {
    pool: PgPool,
    pg_options: PgConnectOptions,
    js: jetstream::Context,
    config: RelayConfig,
    metrics: RelayMetrics,
    /// Whether this relay (and its clones) leads now; see [`Relay::leadership`].
    leading: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Relay {
    /// A relay over the log in `pool`, publishing through `js`.
    pub fn new(
        pool: PgPool,
        pg_options: PgConnectOptions,
        js: jetstream::Context,
        config: RelayConfig,
        metrics: RelayMetrics,
    ) -> Self {
        Self {
            pool,
            pg_options,
            js,
            config,
            metrics,
            leading: std::sync::Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Follows whether this relay leads (true from taking the lock until losing or releasing it), so
    /// callers — operators' tooling, tests — can wait for a change instead of polling.
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// The last position JetStream acknowledged.
    pub async fn checkpoint(&self) -> Result<i64, InfraError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = $1")
                .bind(&self.config.name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(position.unwrap_or(0))
    }

    /// The visibility horizon: no transaction that may still add events has an id below it.
    ///
    /// Read *before* the events (a separate statement, so the events are read with a later
    /// snapshot): the smaller of this statement's snapshot `xmax` (one past the latest completed
    /// transaction) and the ids of the sessions of this database holding the event-writer lock. A
    /// writer takes the lock before its first write and keeps it until it ends, so every writer whose
    /// id is below `xmax` — the only ones that could add rows sorting before rows already visible —
    /// is seen here. Transactions that write no events (read-model updates, other
    /// databases of the cluster) do not hold the relay back.
    pub async fn horizon(&self) -> Result<i64, InfraError> {
        writer_horizon(&self.pool).await
    }

    /// The next events to publish: after the checkpoint, below the visibility horizon, in order.
    pub async fn read_batch(&self) -> Result<Vec<EventEnvelope>, InfraError> {
        let after = self.checkpoint().await?;
        let horizon = self.horizon().await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events
             WHERE global_position > $1 AND txid < $3::text::xid8
             ORDER BY global_position
             LIMIT $2"
        ))
        .bind(after)
        .bind(self.config.batch_size)
        .bind(horizon.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(EventEnvelope::from_row)
            .collect::<Result<_, _>>()
            .map_err(InfraError::from)
    }

    /// Publishes `batch` pipelined and waits for every ack; returns how many JetStream reported as
    /// duplicates (already stored from an earlier, interrupted pass).
    pub async fn publish(&self, batch: &[EventEnvelope]) -> Result<usize, InfraError> {
        let mut pending = Vec::with_capacity(batch.len());
        for event in batch {
            let subject = self
                .config
                .stream
                .subject(&event.aggregate_type, &event.event_type);
            let body = Bytes::from(
                serde_json::to_vec(&event.payload)
                    .map_err(|e| InfraError::JetStream(e.to_string()))?,
            );
            let ack = self
                .js
                .publish_with_headers(subject, event.headers(), body)
                .await
                .map_err(|e| {
                    InfraError::JetStream(format!(
                        "publish position {}: {e}",
                        event.global_position
                    ))
                })?;
            pending.push((event.global_position, ack));
        }
        let mut duplicates = 0;
        for (position, ack) in pending {
            let ack = ack
                .await
                .map_err(|e| InfraError::JetStream(format!("ack for position {position}: {e}")))?;
            duplicates += usize::from(ack.duplicate);
        }
        Ok(duplicates)
    }

    /// Records that everything up to `position` is acknowledged (never moves backwards).
    pub async fn advance_checkpoint(&self, position: i64) -> Result<(), InfraError> {
        // language=PostgreSQL
        sqlx::query(
            "INSERT INTO relay_checkpoints (name, position) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET position = GREATEST(relay_checkpoints.position, EXCLUDED.position),
                                             updated_at = now()",
        )
        .bind(&self.config.name)
        .bind(position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One pass: read, publish, checkpoint. Returns the number of events published.
    pub async fn publish_pending(&self) -> Result<usize, InfraError> {
        let batch = self.read_batch().await?;
        let Some(last) = batch.last() else {
            return Ok(0);
        };
        self.publish(&batch).await?;
        self.advance_checkpoint(last.global_position).await?;
        self.metrics.published.inc_by(batch.len() as u64);
        Ok(batch.len())
    }

    /// Publishes until nothing visible is left; returns the total (tests drain with this).
    pub async fn drain(&self) -> Result<usize, InfraError> {
        let mut total = 0;
        loop {
            match self.publish_pending().await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Updates the lag gauges from the log.
    pub async fn measure_lag(&self) -> Result<(), InfraError> {
        let after = self.checkpoint().await?;
        // language=PostgreSQL
        let row = sqlx::query(
            "SELECT count(*) AS n, min(recorded_at) AS oldest
             FROM (SELECT recorded_at FROM events WHERE global_position > $1 LIMIT 100000) pending",
        )
        .bind(after)
        .fetch_one(&self.pool)
        .await?;
        let n: i64 = row.try_get("n")?;
        let oldest: Option<DateTime<Utc>> = row.try_get("oldest")?;
        self.metrics.lag_events.set(n);
        let seconds = oldest.map_or(0.0, |t| {
            (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
        });
        self.metrics.lag_seconds.set(seconds);
        Ok(())
    }

    /// Runs until `stop` completes: waits for leadership, then publishes as events arrive. Loses
    /// leadership (and goes back to waiting) when its lock connection breaks.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) -> Result<(), InfraError> {
        tokio::pin!(stop);
        let key = lock_key(&format!("relay:{}", self.config.name));
        loop {
            let Some(mut leadership) = Leadership::acquire(
                &self.pg_options,
                key,
                self.config.standby_interval,
                &mut stop,
            )
            .await
            else {
                return Ok(());
            };
            tracing::info!(stream = %self.config.stream.name, "relay: leading");
            self.metrics.leader.set(1);
            self.leading.send_replace(true);
            let result = self.lead(&mut leadership, &mut stop).await;
            self.metrics.leader.set(0);
            self.leading.send_replace(false);
            match result {
                Ok(true) => {
                    leadership.release().await;
                    return Ok(());
                }
                Ok(false) => {
                    tracing::warn!("relay: lost leadership (lock connection broke); standing by")
                }
                Err(e) => {
                    tracing::error!(error = %e, "relay: failed; standing by");
                    leadership.release().await;
                }
            }
        }
    }

    /// Publishes while leading; `Ok(true)` when stopped, `Ok(false)` when leadership was lost.
    async fn lead(
        &self,
        leadership: &mut Leadership,
        stop: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<bool, InfraError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen("bw_events").await?;
        let mut backoff = Duration::from_millis(100);
        let mut measured: Option<std::time::Instant> = None;
        loop {
            if !leadership.still_leading().await {
                return Ok(false);
            }
            let pass = self.publish_pending().await;
            // Lag costs a count over the backlog: measure it when idle or failing (so the alert
            // still fires while NATS is down), and at most once a second under load.
            let busy = matches!(pass, Ok(n) if n as i64 >= self.config.batch_size);
            if !busy || measured.is_none_or(|m| m.elapsed() >= Duration::from_secs(1)) {
                if let Err(e) = self.measure_lag().await {
                    tracing::debug!(error = %e, "relay: cannot measure lag");
                }
                measured = Some(std::time::Instant::now());
            }
            let published = match pass {
                Ok(n) => {
                    backoff = Duration::from_millis(100);
                    n
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "relay: pass failed");
                    tokio::select! {
                        () = &mut *stop => return Ok(true),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if published as i64 >= self.config.batch_size {
                // More is waiting; still honour a stop between passes.
                if futures::FutureExt::now_or_never(&mut *stop).is_some() {
                    return Ok(true);
                }
                continue;
            }
            tokio::select! {
                () = &mut *stop => return Ok(true),
                notification = listener.recv() => {
                    if let Err(e) = notification {
                        tracing::debug!(error = %e, "relay: LISTEN connection interrupted; it reconnects");
                    }
                }
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::widen_xid;

    #[test]
    fn running_xids_widen_into_the_nearest_epoch() {
        let epoch3 = 3_i64 << 32;
        assert_eq!(widen_xid(500, epoch3 + 1_000), epoch3 + 500);
        // A running transaction may be at or above the snapshot's xmax.
        assert_eq!(widen_xid(1_872, 1_872), 1_872);
        assert_eq!(widen_xid(1_900, epoch3 + 1_872), epoch3 + 1_900);
        // Across an epoch boundary, both ways.
        assert_eq!(
            widen_xid(0xFFFF_FF00, epoch3 + 10),
            (2_i64 << 32) + 0xFFFF_FF00
        );
        assert_eq!(widen_xid(5, epoch3 + 0xFFFF_FFF0), (4_i64 << 32) + 5);
        assert_eq!(widen_xid(0xFFFF_FF00, 10), 0, "never negative");
    }
}
