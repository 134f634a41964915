//! The guardrail's queue: submissions waiting for a verdict, shared by any number of judges.
//!
//! - [`Intake`] runs on the projector runtime (a durable JetStream consumer, a checkpoint, gaps filled
//!   from the log: exactly once in effect, in log order). Its effect is one `guardrail_queue` row per
//!   submission event and a `NOTIFY bw_guardrail` when its batch commits. It is cheap (no
//!   classifier), so it never holds the checkpoint for long.
//! - [`Judges`] run claim loops, in one process or many: each claims up to a batch of rows with
//!   `FOR UPDATE SKIP LOCKED` (no two judges hold the same row), embeds the batch in one pass, judges
//!   and records each submission through its aggregate, and deletes the rows it handled. A judge that
//!   dies releases its rows with its connection; the next one finds the verdicts already recorded,
//!   and the aggregate appends nothing twice. A row that fails stays with its error and is tried
//!   again after a growing delay.
//! - [`backlog`]: how many submissions wait, for the gateway's backpressure.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bw_eventlog::envelope::EventEnvelope;
use bw_projections::{ProjectionError, runtime::Projection};
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool, postgres::PgListener};
use tokio::sync::Notify;

use bw_guardrail::GuardrailError;

use super::worker::{GuardrailWorker, NAME, SUBMISSIONS, is_submission};

/// The channel the intake notifies when it queued something.
pub const CHANNEL: &str = "bw_guardrail";

/// The longest a failing submission waits before its next try.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// The projection that queues every submission event (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Intake;

impl Projection for Intake {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Problem", "Solution", "Mission"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        self.apply_all(conn, std::slice::from_ref(event))
    }

    fn apply_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let submissions: Vec<&EventEnvelope> = events
                .iter()
                .filter(|e| is_submission(&e.aggregate_type, &e.event_type))
                .collect();
            if submissions.is_empty() {
                return Ok(());
            }
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO guardrail_queue (global_position, event_id, submitted_at) ",
            );
            insert.push_values(&submissions, |mut row, e| {
                row.push_bind(e.global_position)
                    .push_bind(e.event_id)
                    .push_bind(e.recorded_at);
            });
            // A redelivered event the checkpoint did not skip (it cannot happen, but a second row
            // would only cost a second look) stays one row.
            insert.push(" ON CONFLICT (global_position) DO NOTHING");
            insert.build().execute(&mut *conn).await?;
            // Delivered when the batch commits; notifications of one transaction are merged.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }
}

/// How judges claim.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Claim loops in this process.
    pub workers: usize,
    /// Submissions one loop claims (and embeds) at once.
    pub batch: usize,
    /// How long an idle loop waits for a notification before looking again anyway.
    pub poll: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            batch: 16,
            poll: Duration::from_secs(1),
        }
    }
}

/// Claim loops sharing the queue (see the module documentation).
#[derive(Debug, Clone)]
pub struct Judges {
    worker: Arc<GuardrailWorker>,
    pool: PgPool,
    config: QueueConfig,
}

/// What one claim did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claimed {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows handled and deleted (a verdict recorded, or none due).
    pub done: usize,
    /// Rows that failed and wait for another try.
    pub failed: usize,
}

impl Judges {
    /// Judges sharing `pool`'s queue with `worker`.
    pub fn new(worker: Arc<GuardrailWorker>, pool: PgPool, config: QueueConfig) -> Self {
        Self {
            worker,
            pool,
            config,
        }
    }

    /// Runs `config.workers` claim loops until `stop` completes. Stopping lets each loop finish the
    /// submission in hand, never the rest of its batch: the unjudged rows are released at once.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) -> Result<(), GuardrailError> {
        let wake = Arc::new(Notify::new());
        let stopping = Arc::new(AtomicBool::new(false));
        let mut loops = tokio::task::JoinSet::new();
        for n in 0..self.config.workers.max(1) {
            let (judges, wake, stopping) = (self.clone(), wake.clone(), stopping.clone());
            loops.spawn(async move { judges.claim_loop(n, &wake, &stopping).await });
        }
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                notification = listener.recv() => match notification {
                    Ok(_) => wake.notify_waiters(),
                    Err(e) => {
                        // It reconnects on the next call; the loops poll meanwhile.
                        tracing::debug!(error = %e, "guardrail: LISTEN connection interrupted");
                        tokio::select! {
                            () = &mut stop => break,
                            () = tokio::time::sleep(self.config.poll) => {}
                        }
                    }
                },
            }
        }
        stopping.store(true, Ordering::SeqCst);
        wake.notify_waiters();
        while loops.join_next().await.is_some() {}
        Ok(())
    }

    async fn claim_loop(&self, n: usize, wake: &Notify, stopping: &AtomicBool) {
        tracing::info!(judge = n, "guardrail judge: running");
        let mut backoff = Duration::from_millis(200);
        while !stopping.load(Ordering::SeqCst) {
            // Registered before claiming, so a notification during the claim is not missed.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pause = match self.claim(stopping).await {
                Ok(c) if c.claimed > 0 => {
                    backoff = Duration::from_millis(200);
                    continue;
                }
                Ok(_) => self.config.poll,
                Err(e) => {
                    tracing::warn!(judge = n, error = %e, retry_in = ?backoff, "guardrail judge: claim failed");
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    pause
                }
            };
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(judge = n, "guardrail judge: stopped");
    }

    /// Judges until nothing claimable is left; returns the rows handled. Tests drain with this.
    pub async fn judge_pending(&self) -> Result<usize, GuardrailError> {
        let never = AtomicBool::new(false);
        let mut total = 0;
        loop {
            let c = self.claim(&never).await?;
            total += c.done;
            if c.claimed == 0 {
                return Ok(total);
            }
        }
    }

    /// Claims one batch, judges it (until `stopping`), deletes what was handled, marks what failed.
    pub async fn claim(&self, stopping: &AtomicBool) -> Result<Claimed, GuardrailError> {
        let mut claim = self.pool.begin().await?;
        let rows: Vec<(i64, i32)> = sqlx::query_as(
            "SELECT global_position, attempts FROM guardrail_queue WHERE not_before <= now()
             ORDER BY global_position LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::try_from(self.config.batch.max(1)).unwrap_or(16))
        .fetch_all(&mut *claim)
        .await?;
        if rows.is_empty() {
            claim.commit().await?;
            return Ok(Claimed::default());
        }
        let positions: Vec<i64> = rows.iter().map(|(p, _)| *p).collect();
        // Judging runs outside the claim's transaction: a failed statement there must not undo the
        // claim, and the claim must not hold what judging writes (the caches) until the batch ends.
        let mut conn = self.pool.acquire().await?;
        let events = bw_eventlog::envelope::read_positions(&mut conn, &positions).await?;
        if events.len() > 1
            && let Err(e) = self.worker.embed_batch(&mut conn, &events).await
        {
            tracing::warn!(error = %e, "guardrail: embedding a batch failed; embedding per submission");
        }
        let mut done = Vec::new();
        let mut failed: Vec<(i64, String)> = positions
            .iter()
            .filter(|p| !events.iter().any(|e| e.global_position == **p))
            .map(|p| (*p, "the queued event is not in the log".to_owned()))
            .collect();
        for event in &events {
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            match self.worker.judge_and_record(&mut conn, event).await {
                Ok(_) => done.push(event.global_position),
                Err(e) => failed.push((event.global_position, e.to_string())),
            }
        }
        drop(conn);
        sqlx::query("DELETE FROM guardrail_queue WHERE global_position = ANY($1)")
            .bind(&done)
            .execute(&mut *claim)
            .await?;
        for (position, error) in &failed {
            let attempts = rows
                .iter()
                .find(|(p, _)| p == position)
                .map_or(0, |(_, a)| *a);
            let delay = retry_delay(attempts);
            tracing::warn!(position, attempts = attempts + 1, retry_in = ?delay, %error, "guardrail: cannot judge a submission now");
            sqlx::query(
                "UPDATE guardrail_queue SET attempts = attempts + 1, last_error = $2,
                        not_before = now() + make_interval(secs => $3) WHERE global_position = $1",
            )
            .bind(position)
            .bind(error)
            .bind(delay.as_secs_f64())
            .execute(&mut *claim)
            .await?;
        }
        claim.commit().await?;
        if let Some(m) = self.worker.metrics() {
            m.failures.inc_by(failed.len() as u64);
        }
        Ok(Claimed {
            claimed: rows.len(),
            done: done.len(),
            failed: failed.len(),
        })
    }
}

/// The wait before the next try of a submission that failed `attempts` times before: 1 s, doubling,
/// at most [`MAX_RETRY_DELAY`].
pub fn retry_delay(attempts: i32) -> Duration {
    let doubling = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
    Duration::from_secs(1u64 << doubling).min(MAX_RETRY_DELAY)
}

/// Submissions waiting for a verdict: those queued, plus those in the log that the intake has not
/// queued yet (counted among at most `scan` events past its checkpoint, so the cost stays bounded
/// when the intake is far behind). Reads the queue and one range of the log's primary key.
pub async fn backlog(pool: &PgPool, scan: i64) -> Result<i64, GuardrailError> {
    let types: Vec<&str> = SUBMISSIONS.iter().map(|(_, t)| *t).collect();
    let (queued, checkpoint): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM guardrail_queue),
                coalesce((SELECT position FROM projection_checkpoints WHERE projection = $1), 0)",
    )
    .bind(NAME)
    .fetch_one(pool)
    .await?;
    let unqueued = bw_eventlog::read::count_types_in_window(pool, checkpoint, &types, scan).await?;
    Ok(queued + unqueued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_repeated_failures_when_retrying_then_the_delay_doubles_up_to_five_minutes() {
        assert_eq!(retry_delay(0), Duration::from_secs(1));
        assert_eq!(retry_delay(1), Duration::from_secs(2));
        assert_eq!(retry_delay(5), Duration::from_secs(32));
        assert_eq!(retry_delay(9), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(i32::MAX), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(-3), Duration::from_secs(1));
    }

    #[test]
    fn given_the_submission_types_when_asked_then_only_they_are_submissions() {
        assert!(is_submission("Problem", "ProblemEdited"));
        assert!(is_submission("Solution", "DebatePosted"));
        assert!(!is_submission("Problem", "GuardrailDecided"));
        assert!(!is_submission("Solution", "ProblemReported"));
    }
}
