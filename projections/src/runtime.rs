//! The projector runtime.

use std::{future::Future, sync::Arc, time::{Duration, Instant}};

use async_nats::jetstream::{self, consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull}};
use bw_infra::{
    envelope::EventEnvelope,
    leader::{Leadership, lock_key},
    metrics::{ProjectionLabels, ProjectionMetrics},
    nats::EventsStream,
};
use futures::{StreamExt, future::BoxFuture};
use sqlx::{PgConnection, PgPool, Row, postgres::PgConnectOptions};

use crate::ProjectionError;

/// A read model built from the log.
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the checkpoint row, the consumer, the metrics label.
    fn name(&self) -> &'static str;
    /// The read model's schema version; a change calls for a rebuild.
    fn version(&self) -> i32;
    /// Subjects below the stream prefix this projection needs (`Problem.>`, or `>` for all).
    fn subjects(&self) -> &'static str;
    /// Applies one event inside the batch's transaction. Must be deterministic (no clock, no
    /// randomness) and must return an error rather than ignore an event it cannot understand.
    fn apply<'a>(&'a self, conn: &'a mut PgConnection, event: &'a EventEnvelope) -> BoxFuture<'a, Result<(), ProjectionError>>;
}

/// How a projector consumes.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Messages per batch (one transaction per batch).
    pub batch: usize,
    /// How long one fetch waits for messages in `run`.
    pub fetch_wait: Duration,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// How often a standby tries to become the active instance.
    pub standby_interval: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self { batch: 256, fetch_wait: Duration::from_secs(1), ack_wait: Duration::from_secs(30), standby_interval: Duration::from_secs(1) }
    }
}

/// Consumes one projection's subjects and applies them exactly once in effect.
#[derive(Clone)]
pub struct Projector {
    projection: Arc<dyn Projection>,
    pool: PgPool,
    pg_options: PgConnectOptions,
    consumer: PullConsumer,
    metrics: ProjectionMetrics,
    config: ProjectorConfig,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector").field("projection", &self.projection.name()).finish()
    }
}

impl Projector {
    /// Creates (or reuses) the projection's durable consumer and checkpoint row.
    pub async fn start(
        pool: PgPool,
        pg_options: PgConnectOptions,
        js: &jetstream::Context,
        stream: &EventsStream,
        projection: Arc<dyn Projection>,
        metrics: ProjectionMetrics,
        config: ProjectorConfig,
    ) -> Result<Self, ProjectionError> {
        let name = projection.name();
        let durable = format!("{}_{}", stream.name, name).replace(['.', '*', '>', ' '], "_");
        let events = js.get_stream(&stream.name).await.map_err(|e| ProjectionError::JetStream(format!("stream {}: {e}", stream.name)))?;
        let consumer = events
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: format!("{}.{}", stream.subject_prefix, projection.subjects()),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait: config.ack_wait,
                    max_ack_pending: i64::try_from(config.batch * 4).unwrap_or(1024),
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ProjectionError::JetStream(format!("consumer {durable}: {e}")))?;
        sqlx::query("INSERT INTO projection_checkpoints (projection, version) VALUES ($1, $2) ON CONFLICT (projection) DO NOTHING")
            .bind(name)
            .bind(projection.version())
            .execute(&pool)
            .await?;
        let projector = Self { projection, pool, pg_options, consumer, metrics, config };
        let (position, state) = projector.status().await?;
        projector.metrics.checkpoint.get_or_create(&projector.labels()).set(position);
        projector.metrics.set_state(name, &state);
        Ok(projector)
    }

    /// The projection's name.
    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    fn labels(&self) -> ProjectionLabels {
        ProjectionLabels { projection: self.name().to_owned() }
    }

    /// The checkpoint and state.
    pub async fn status(&self) -> Result<(i64, String), ProjectionError> {
        let row = sqlx::query("SELECT position, state FROM projection_checkpoints WHERE projection = $1")
            .bind(self.name())
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get("position")?, row.try_get("state")?))
    }

    /// Applies everything available now, batch by batch, and returns how many events were applied.
    /// Tests drain projectors with this instead of sleeping.
    pub async fn process_pending(&self) -> Result<usize, ProjectionError> {
        let mut total = 0;
        loop {
            let (fetched, applied) = self.process_batch(None).await?;
            total += applied;
            if fetched == 0 {
                return Ok(total);
            }
        }
    }

    /// Fetches one batch (waiting up to `wait` for the first message, or not at all) and applies it
    /// in one transaction. Returns (messages fetched, events applied).
    pub async fn process_batch(&self, wait: Option<Duration>) -> Result<(usize, usize), ProjectionError> {
        let messages = self.fetch(wait).await?;
        if messages.is_empty() {
            return Ok((0, 0));
        }
        let applied = self.apply_batch(&messages).await?;
        for message in &messages {
            // Not acknowledging only causes a redelivery, which the checkpoint then skips.
            if let Err(e) = message.ack().await {
                tracing::debug!(projection = self.name(), error = %e, "ack failed; the redelivery will be skipped");
            }
        }
        Ok((messages.len(), applied))
    }

    async fn fetch(&self, wait: Option<Duration>) -> Result<Vec<jetstream::Message>, ProjectionError> {
        let mut stream = match wait {
            None => self.consumer.fetch().max_messages(self.config.batch).messages().await,
            Some(wait) => self.consumer.batch().max_messages(self.config.batch).expires(wait).messages().await,
        }
        .map_err(|e| ProjectionError::JetStream(e.to_string()))?;
        let mut messages = Vec::new();
        while let Some(message) = stream.next().await {
            messages.push(message.map_err(|e| ProjectionError::JetStream(e.to_string()))?);
        }
        Ok(messages)
    }

    /// Applies the messages not yet applied and moves the checkpoint, in one transaction.
    async fn apply_batch(&self, messages: &[jetstream::Message]) -> Result<usize, ProjectionError> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT position, state FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
            .bind(self.name())
            .fetch_one(&mut *tx)
            .await?;
        let checkpoint: i64 = row.try_get("position")?;
        let state: String = row.try_get("state")?;
        if state == "failed" {
            return Err(ProjectionError::Failed(self.name().to_owned()));
        }
        let mut last = checkpoint;
        let mut applied = 0;
        for message in messages {
            let result = match EventEnvelope::from_message(message.headers.as_ref(), &message.payload) {
                Ok(event) if event.global_position <= last => continue,
                Ok(event) => self.projection.apply(&mut tx, &event).await.map(|()| event.global_position).map_err(|e| (e, Some(event))),
                Err(e) => Err((ProjectionError::Apply { position: -1, event_type: "?".into(), reason: e.to_string() }, None)),
            };
            match result {
                Ok(position) => {
                    last = position;
                    applied += 1;
                }
                Err((error, event)) => {
                    tx.rollback().await?;
                    self.fail(&error, event.as_ref()).await?;
                    return Err(error);
                }
            }
        }
        if last > checkpoint {
            sqlx::query("UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE projection = $1")
                .bind(self.name())
                .bind(last)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let labels = self.labels();
        self.metrics.checkpoint.get_or_create(&labels).set(last);
        self.metrics.applied.get_or_create(&labels).inc_by(applied as u64);
        self.metrics.apply_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        Ok(applied)
    }

    /// Stops the projection: state `failed`, the event named, a metric; never a silent skip.
    async fn fail(&self, error: &ProjectionError, event: Option<&EventEnvelope>) -> Result<(), ProjectionError> {
        tracing::error!(projection = self.name(), error = %error, "projection failed; it stays stopped until an operator acts");
        sqlx::query(
            "UPDATE projection_checkpoints SET state = 'failed', failed_position = $2, failed_event_id = $3,
                    last_error = $4, updated_at = now() WHERE projection = $1",
        )
        .bind(self.name())
        .bind(event.map(|e| e.global_position))
        .bind(event.map(|e| e.event_id))
        .bind(error.to_string())
        .execute(&self.pool)
        .await?;
        self.metrics.failures.get_or_create(&self.labels()).inc();
        self.metrics.set_state(self.name(), "failed");
        Ok(())
    }

    /// Runs until `stop` completes, as the one active instance of this projection.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) -> Result<(), ProjectionError> {
        tokio::pin!(stop);
        let key = lock_key(&format!("projection:{}", self.name()));
        let Some(mut leadership) = Leadership::acquire(&self.pg_options, key, self.config.standby_interval, &mut stop).await else {
            return Ok(());
        };
        tracing::info!(projection = self.name(), "projector: active");
        let mut backoff = Duration::from_millis(200);
        loop {
            if !leadership.still_leading().await {
                tracing::warn!(projection = self.name(), "projector: lost its lock; stopping this instance");
                return Ok(());
            }
            let step = tokio::select! {
                () = &mut stop => break,
                step = self.process_batch(Some(self.config.fetch_wait)) => step,
            };
            if let Err(e) = step {
                tracing::warn!(projection = self.name(), error = %e, retry_in = ?backoff, "projector: batch failed");
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            } else {
                backoff = Duration::from_millis(200);
            }
        }
        leadership.release().await;
        Ok(())
    }
}
