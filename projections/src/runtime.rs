//! The projector runtime.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
};
use bw_eventlog::{
    envelope::EventEnvelope,
    leader::{Leadership, lock_key},
};
use bw_infra::{
    metrics::{ProjectionLabels, ProjectionMetrics},
    nats::EventsStream,
};
use futures::{StreamExt, future::BoxFuture};
use sqlx::{PgConnection, PgPool, Row, postgres::PgConnectOptions};

use crate::ProjectionError;

/// How long past its own expiry a pull request may stay unanswered before the client gives up.
const PULL_MARGIN: Duration = Duration::from_secs(5);

/// A read model built from the log.
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the checkpoint row, the consumer, the metrics label.
    fn name(&self) -> &'static str;
    /// The read model's schema version; a change calls for a rebuild.
    fn version(&self) -> i32;
    /// The aggregate types whose events this projection needs; empty for all. The consumer's subject
    /// filter follows from it (NATS 2.9 takes one filter per consumer, so several types mean `>`).
    fn aggregate_types(&self) -> &'static [&'static str];
    /// Applies one event inside the batch's transaction. Must be deterministic (no clock, no
    /// randomness) and must return an error rather than ignore an event it cannot understand.
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>>;
    /// The read-model tables it writes (and only it), unqualified: what a rebuild builds in a shadow
    /// schema and swaps in, and `projections verify` compares. Empty: it cannot be rebuilt (sagas
    /// and workers that issue commands).
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }
    /// Applies `events` in order, with the same effect as `apply` on each in turn: the place for a
    /// projection to do a run of events in fewer statements (one multi-row insert instead of one per
    /// event). Callers run it in a savepoint and, when it fails, roll back and apply event by event,
    /// so the error then names the event; an error here need not.
    fn apply_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            for event in events {
                self.apply(&mut *conn, event).await?;
            }
            Ok(())
        })
    }
    /// Runs once per batch, inside its transaction, before its events are applied: the place to
    /// do expensive work for the whole batch at once (such as one embedding pass over every text
    /// in it) whose results `apply` then finds in a cache. Must not change the read model; an
    /// error is logged and the batch applied regardless, `apply` doing the work per event.
    fn prepare<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Applies `events` in order inside `conn`'s transaction: all at once through the projection's
/// [`Projection::apply_all`] in a savepoint and, should that fail (but for an unreachable
/// database), event by event after rolling the savepoint back, so that an error comes with the
/// index of the event it stopped at.
pub async fn apply_events(
    projection: &dyn Projection,
    conn: &mut PgConnection,
    events: &[EventEnvelope],
) -> Result<(), (usize, ProjectionError)> {
    if events.len() > 1 {
        let mut savepoint = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| (0, e.into()))?;
        match projection.apply_all(&mut savepoint, events).await {
            Ok(()) => return savepoint.commit().await.map_err(|e| (0, e.into())),
            Err(error) if error.is_transient() => return Err((0, error)),
            Err(error) => {
                savepoint.rollback().await.map_err(|e| (0, e.into()))?;
                tracing::debug!(projection = projection.name(), %error, "applying a batch at once failed; applying it event by event");
            }
        }
    }
    for (index, event) in events.iter().enumerate() {
        projection
            .apply(&mut *conn, event)
            .await
            .map_err(|error| (index, error))?;
    }
    Ok(())
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
        Self {
            batch: 256,
            fetch_wait: Duration::from_secs(1),
            ack_wait: Duration::from_secs(30),
            standby_interval: Duration::from_secs(1),
        }
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
        f.debug_struct("Projector")
            .field("projection", &self.projection.name())
            .finish()
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
        let events = js
            .get_stream(&stream.name)
            .await
            .map_err(|e| ProjectionError::JetStream(format!("stream {}: {e}", stream.name)))?;
        let wanted = pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: match projection.aggregate_types() {
                [one] => format!("{}.{one}.>", stream.subject_prefix),
                _ => format!("{}.>", stream.subject_prefix),
            },
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: config.ack_wait,
            max_ack_pending: i64::try_from(config.batch * 4).unwrap_or(1024),
            max_deliver: -1,
            ..Default::default()
        };
        let consumer_error = |e: &dyn std::fmt::Display| {
            ProjectionError::JetStream(format!("consumer {durable}: {e}"))
        };
        let mut consumer: PullConsumer = events
            .get_or_create_consumer(&durable, wanted.clone())
            .await
            .map_err(|e| consumer_error(&e))?;
        // A projection that now needs other aggregate types gets a consumer with the new filter.
        // Replacing it loses nothing: the new one delivers from the start, the checkpoint skips
        // what was applied and anything missing is read from the log.
        let current = consumer
            .info()
            .await
            .map_err(|e| consumer_error(&e))?
            .config
            .filter_subject
            .clone();
        if current != wanted.filter_subject {
            tracing::info!(projection = name, from = %current, to = %wanted.filter_subject, "consumer filter changed; replacing the consumer");
            events
                .delete_consumer(&durable)
                .await
                .map_err(|e| consumer_error(&e))?;
            consumer = events
                .create_consumer(wanted)
                .await
                .map_err(|e| consumer_error(&e))?;
        }
        sqlx::query("INSERT INTO projection_checkpoints (projection, version) VALUES ($1, $2) ON CONFLICT (projection) DO NOTHING")
            .bind(name)
            .bind(projection.version())
            .execute(&pool)
            .await?;
        let stored: i32 =
            sqlx::query_scalar("SELECT version FROM projection_checkpoints WHERE projection = $1")
                .bind(name)
                .fetch_one(&pool)
                .await?;
        if stored != projection.version() {
            tracing::warn!(
                projection = name,
                stored,
                code = projection.version(),
                "the read model was built by another version of this projection; run `betterworld projections rebuild` (the projector role does so at start-up)"
            );
        }
        let projector = Self {
            projection,
            pool,
            pg_options,
            consumer,
            metrics,
            config,
        };
        let (position, state) = projector.status().await?;
        projector
            .metrics
            .checkpoint
            .get_or_create(&projector.labels())
            .set(position);
        projector.metrics.set_state(name, &state);
        Ok(projector)
    }

    /// The projection's name.
    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    fn labels(&self) -> ProjectionLabels {
        ProjectionLabels {
            projection: self.name().to_owned(),
        }
    }

    /// The checkpoint and state.
    pub async fn status(&self) -> Result<(i64, String), ProjectionError> {
        let row =
            sqlx::query("SELECT position, state FROM projection_checkpoints WHERE projection = $1")
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
    pub async fn process_batch(
        &self,
        wait: Option<Duration>,
    ) -> Result<(usize, usize), ProjectionError> {
        self.process_batch_unless(wait, std::future::pending())
            .await
            .unwrap_or(Ok((0, 0)))
    }

    /// [`Projector::process_batch`], except that `stop` completing while the fetch still waits
    /// abandons the fetch and returns `None`. Once messages are in hand the batch always finishes:
    /// its transaction commits and its messages are acknowledged.
    async fn process_batch_unless(
        &self,
        wait: Option<Duration>,
        stop: impl Future<Output = ()>,
    ) -> Option<Result<(usize, usize), ProjectionError>> {
        // A failed projection fetches nothing: its messages wait in the consumer until an operator
        // acts, instead of being delivered to a projector that would refuse them.
        match self.status().await {
            Err(e) => return Some(Err(e)),
            Ok((_, state)) if state == "failed" => {
                return Some(Err(ProjectionError::Failed(self.name().to_owned())));
            }
            Ok(_) => {}
        }
        // Abandoning a pull loses nothing: a message delivered to it but never acknowledged is
        // redelivered after the consumer's ack wait, and the checkpoint orders what is applied.
        let messages = tokio::select! {
            biased;
            () = stop => return None,
            fetched = self.fetch(wait) => fetched,
        };
        Some(self.apply_and_ack(messages).await)
    }

    async fn apply_and_ack(
        &self,
        messages: Result<Vec<jetstream::Message>, ProjectionError>,
    ) -> Result<(usize, usize), ProjectionError> {
        let messages = messages?;
        if messages.is_empty() {
            return Ok((0, 0));
        }
        let applied = self.apply_batch(&messages).await?;
        self.ack(&messages).await;
        Ok((messages.len(), applied))
    }

    /// Acknowledges messages after their batch committed. A failed ack only causes a redelivery,
    /// which the checkpoint then skips.
    pub async fn ack(&self, messages: &[jetstream::Message]) {
        for message in messages {
            if let Err(e) = message.ack().await {
                tracing::debug!(projection = self.name(), error = %e, "ack failed; the redelivery will be skipped");
            }
        }
    }

    /// Fetches up to one batch: the first step of [`Projector::process_batch`], public so crash tests
    /// can stop between the steps.
    pub async fn fetch(
        &self,
        wait: Option<Duration>,
    ) -> Result<Vec<jetstream::Message>, ProjectionError> {
        let available = self.fetch_now(self.config.batch).await?;
        let Some(wait) = wait.filter(|_| available.is_empty()) else {
            return Ok(available);
        };
        // Nothing yet: block for the first message only (a pull request for a whole batch would
        // hold the first message back until the batch filled or the wait expired), then take
        // whatever else has arrived.
        let pull = self.consumer.batch().max_messages(1).expires(wait);
        let mut first = self.collect(pull.messages(), wait).await?;
        if !first.is_empty() && self.config.batch > 1 {
            first.extend(self.fetch_now(self.config.batch - 1).await?);
        }
        Ok(first)
    }

    /// Takes up to `max` messages that are available now, without waiting.
    async fn fetch_now(&self, max: usize) -> Result<Vec<jetstream::Message>, ProjectionError> {
        let pull = self.consumer.fetch().max_messages(max);
        self.collect(pull.messages(), Duration::ZERO).await
    }

    /// Drains one pull request. The server ends a pull with a status message when it expires; if
    /// that answer never comes (a lost request, a server restart), the pull is given up on the
    /// client side [`PULL_MARGIN`] after its own expiry instead of waiting forever. What was
    /// collected is returned; anything delivered later to the abandoned pull is redelivered.
    async fn collect<S, E, F>(
        &self,
        pull: impl Future<Output = Result<S, E>>,
        expires: Duration,
    ) -> Result<Vec<jetstream::Message>, ProjectionError>
    where
        S: futures::Stream<Item = Result<jetstream::Message, F>> + Unpin,
        E: std::fmt::Display,
        F: std::fmt::Display,
    {
        let mut messages = Vec::new();
        let drain = async {
            let mut stream = pull
                .await
                .map_err(|e| ProjectionError::JetStream(e.to_string()))?;
            while let Some(message) = stream.next().await {
                messages.push(message.map_err(|e| ProjectionError::JetStream(e.to_string()))?);
            }
            Ok::<_, ProjectionError>(())
        };
        match tokio::time::timeout(expires + PULL_MARGIN, drain).await {
            Ok(result) => result?,
            Err(_) => tracing::warn!(
                projection = self.name(),
                collected = messages.len(),
                "pull request not answered by the server in time; abandoned"
            ),
        }
        Ok(messages)
    }

    /// Applies the messages not yet applied and moves the checkpoint, in one transaction: the second
    /// step of [`Projector::process_batch`].
    ///
    /// When an event cannot be applied, the events before it in the batch are committed on their own
    /// (so skipping the bad one later skips nothing else), then the projection is marked `failed` at
    /// that event. A database that cannot be reached is not a failure of the projection: the batch is
    /// handed back and the error returned for a retry.
    pub async fn apply_batch(
        &self,
        messages: &[jetstream::Message],
    ) -> Result<usize, ProjectionError> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT position, state FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
        )
        .bind(self.name())
        .fetch_one(&mut *tx)
        .await?;
        let checkpoint: i64 = row.try_get("position")?;
        let state: String = row.try_get("state")?;
        if state == "failed" {
            return Err(ProjectionError::Failed(self.name().to_owned()));
        }
        let (events, upto) = match self.in_log_order(&mut tx, messages, checkpoint).await {
            Ok(found) => found,
            Err(error) => {
                tx.rollback().await?;
                return self.stop_at(messages, error, None, &[]).await;
            }
        };
        if events.len() > 1 {
            // In a savepoint, so that a failed statement in it leaves the batch's transaction usable.
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            match self.projection.prepare(&mut savepoint, &events).await {
                Ok(()) => savepoint.commit().await?,
                Err(error) => {
                    savepoint.rollback().await?;
                    tracing::warn!(projection = self.name(), %error, "preparing a batch failed; applying it event by event");
                }
            }
        }
        if let Err((index, error)) = apply_events(self.projection.as_ref(), &mut tx, &events).await
        {
            tx.rollback().await?;
            return self
                .stop_at(messages, error, Some(&events[index]), &events[..index])
                .await;
        }
        Self::set_checkpoint(&mut tx, self.name(), checkpoint, upto).await?;
        tx.commit().await?;
        self.applied(events.len(), upto.max(checkpoint), started);
        Ok(events.len())
    }

    async fn set_checkpoint(
        tx: &mut PgConnection,
        name: &str,
        checkpoint: i64,
        upto: i64,
    ) -> Result<(), ProjectionError> {
        if upto > checkpoint {
            sqlx::query("UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE projection = $1")
                .bind(name)
                .bind(upto)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    fn applied(&self, count: usize, checkpoint: i64, started: Instant) {
        let labels = self.labels();
        self.metrics
            .checkpoint
            .get_or_create(&labels)
            .set(checkpoint);
        self.metrics
            .applied
            .get_or_create(&labels)
            .inc_by(count as u64);
        self.metrics
            .apply_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        self.metrics.set_state(self.name(), "running");
    }

    /// Handles an error met while applying: a transient database error is returned for a retry;
    /// anything else commits `prefix` (the events before the bad one) and stops the projection.
    async fn stop_at(
        &self,
        messages: &[jetstream::Message],
        error: ProjectionError,
        event: Option<&EventEnvelope>,
        prefix: &[EventEnvelope],
    ) -> Result<usize, ProjectionError> {
        Self::hand_back(messages).await;
        if error.is_transient() {
            tracing::warn!(projection = self.name(), error = %error, "database unavailable; the batch will be retried");
            return Err(error);
        }
        if let Some(last) = prefix.last() {
            let started = Instant::now();
            let mut tx = self.pool.begin().await?;
            let checkpoint: i64 = sqlx::query_scalar(
                "SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
            )
            .bind(self.name())
            .fetch_one(&mut *tx)
            .await?;
            // Another instance may have moved the checkpoint meanwhile: apply only what is above it.
            let pending: Vec<&EventEnvelope> = prefix
                .iter()
                .filter(|e| e.global_position > checkpoint)
                .collect();
            for e in &pending {
                self.projection.apply(&mut tx, e).await?;
            }
            Self::set_checkpoint(&mut tx, self.name(), checkpoint, last.global_position).await?;
            tx.commit().await?;
            self.applied(pending.len(), last.global_position.max(checkpoint), started);
        }
        self.fail(&error, event).await?;
        Err(error)
    }

    /// The events of this projection's types to apply for this batch, in log order, and the position
    /// the checkpoint may move to (the newest delivered, whatever its type: the consumer's filter may
    /// deliver events the projection does not need, and moving past them keeps `Bw-Min-Position`
    /// waits short).
    ///
    /// Normally these are the delivered events above the checkpoint. If JetStream delivered out of
    /// order or left a gap (a redelivery after a crash may arrive after newer messages), the range up
    /// to the newest delivered event is read from the PostgreSQL log, the source of truth, so an event
    /// is never skipped because a later one was applied first.
    async fn in_log_order(
        &self,
        tx: &mut PgConnection,
        messages: &[jetstream::Message],
        checkpoint: i64,
    ) -> Result<(Vec<EventEnvelope>, i64), ProjectionError> {
        let types = self.projection.aggregate_types();
        let mut upto = checkpoint;
        let mut delivered = Vec::with_capacity(messages.len());
        for message in messages {
            let event = match EventEnvelope::from_message(
                message.headers.as_ref(),
                &message.payload,
            ) {
                Ok(event) => event,
                Err(e) => {
                    // Not an event of ours (only the relay should publish on these subjects). The
                    // log is the source of truth and gaps are filled from it, so drop the message
                    // for good rather than stop the projection on it.
                    tracing::error!(projection = self.name(), subject = %message.subject, error = %e, "malformed message on the event stream; terminated");
                    self.metrics.failures.get_or_create(&self.labels()).inc();
                    let _ = message.ack_with(jetstream::AckKind::Term).await;
                    continue;
                }
            };
            upto = upto.max(event.global_position);
            if event.global_position > checkpoint
                && (types.is_empty() || types.contains(&event.aggregate_type.as_str()))
            {
                delivered.push(event);
            }
        }
        if upto == checkpoint {
            return Ok((Vec::new(), checkpoint));
        }
        delivered.sort_by_key(|e| e.global_position);
        delivered.dedup_by_key(|e| e.global_position);
        let expected =
            bw_eventlog::read::event_ids_between(&mut *tx, checkpoint, upto, types).await?;
        if expected.len() == delivered.len()
            && expected
                .iter()
                .zip(&delivered)
                .all(|(id, e)| *id == e.event_id)
        {
            return Ok((delivered, upto));
        }
        tracing::info!(
            projection = self.name(),
            delivered = delivered.len(),
            in_log = expected.len(),
            "delivery out of order or with a gap; applying the range from the log"
        );
        Ok((
            bw_eventlog::envelope::read_range(tx, checkpoint, upto, types).await?,
            upto,
        ))
    }

    /// Hands a batch back to JetStream at once (negative ack), for when the projection resumes.
    async fn hand_back(messages: &[jetstream::Message]) {
        for message in messages {
            let _ = message.ack_with(jetstream::AckKind::Nak(None)).await;
        }
    }

    /// Stops the projection: state `failed`, the event named, a metric; never a silent skip.
    async fn fail(
        &self,
        error: &ProjectionError,
        event: Option<&EventEnvelope>,
    ) -> Result<(), ProjectionError> {
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

    /// Updates `bw_projection_lag_events` from the log.
    pub async fn measure_lag(&self) -> Result<i64, ProjectionError> {
        let checkpoint: Option<i64> =
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
                .bind(self.name())
                .fetch_optional(&self.pool)
                .await?;
        let lag = match checkpoint {
            Some(after) => {
                let types = self.projection.aggregate_types();
                bw_eventlog::read::count_after(&self.pool, after, types, Some(100_000)).await?
            }
            None => 0,
        };
        self.metrics.lag.get_or_create(&self.labels()).set(lag);
        Ok(lag)
    }

    /// Runs until `stop` completes, as the one active instance of this projection.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) -> Result<(), ProjectionError> {
        tokio::pin!(stop);
        let key = lock_key(&format!("projection:{}", self.name()));
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
            tracing::info!(projection = self.name(), "projector: active");
            let stopped = self.lead(&mut leadership, &mut stop).await;
            if stopped {
                leadership.release().await;
                return Ok(());
            }
            // The lock's connection broke (a database restart, a network cut): another instance may
            // have taken over; stand by and try again.
            tracing::warn!(
                projection = self.name(),
                "projector: lost its lock; standing by"
            );
        }
    }

    /// Applies batches while holding the lock; `true` when stopped, `false` when the lock was lost.
    async fn lead(
        &self,
        leadership: &mut Leadership,
        stop: &mut (impl Future<Output = ()> + Unpin),
    ) -> bool {
        let mut backoff = Duration::from_millis(200);
        let mut measured: Option<Instant> = None;
        loop {
            if !leadership.still_leading().await {
                return false;
            }
            // Stopping interrupts a fetch that is still waiting, never a batch being applied (its
            // transaction and acks finish), so shutdown waits at most for the batch in hand.
            let Some(step) = self
                .process_batch_unless(Some(self.config.fetch_wait), &mut *stop)
                .await
            else {
                return true;
            };
            // Lag is measured when idle, after a failure, and at most once a second under load.
            let due = measured.is_none_or(|m| m.elapsed() >= Duration::from_secs(1));
            if !matches!(step, Ok((n, _)) if n > 0) || due {
                if let Err(e) = self.measure_lag().await {
                    tracing::debug!(projection = self.name(), error = %e, "cannot measure lag");
                }
                measured = Some(Instant::now());
            }
            if let Err(e) = step {
                tracing::warn!(projection = self.name(), error = %e, retry_in = ?backoff, "projector: batch failed");
                tokio::select! {
                    () = &mut *stop => return true,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            } else {
                backoff = Duration::from_millis(200);
            }
        }
    }
}
