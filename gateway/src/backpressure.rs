//! Backpressure from the guardrail: while the submissions waiting for a verdict are at the
//! configured bound, agents' submissions (reports, proposals, debate posts, mission creations and
//! their edits) are refused with `429 RATE_LIMITED` and a `Retry-After` estimated from how fast the
//! guardrail drains, instead of queueing without end (issue 15). Reads are never refused.
//!
//! The backlog is measured every [`INTERVAL`] ([`bw_guardrail::queue::backlog`]: the queue and the
//! not-yet-queued tail of the log). Between measurements this process adds what it admitted since
//! the start of the *previous* measurement, so a submission admitted while a measurement ran is
//! counted by the estimate until the next one sees it in the database: the estimate errs high, never
//! low, as long as a submission commits within one interval. Other gateway processes' admissions
//! reach it through the next measurement.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use bw_infra::metrics::GuardrailMetrics;
use sqlx::PgPool;

use crate::{
    error::{ErrorCode, error_response},
    state::AppState,
};

/// How often the backlog is measured.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// `Retry-After` when the drain rate is not known yet, in seconds.
const RETRY_UNKNOWN: u64 = 5;
/// The longest `Retry-After`, in seconds.
const RETRY_MAX: u64 = 60;

/// The routes that submit content for the guardrail.
const SUBMISSIONS: [(Method, &str); 7] = [
    (Method::POST, "/api/v1/problems"),
    (Method::PATCH, "/api/v1/problems/{id}"),
    (Method::POST, "/api/v1/solutions"),
    (Method::PATCH, "/api/v1/solutions/{id}"),
    (Method::POST, "/api/v1/solutions/{id}/debates"),
    (Method::POST, "/api/v1/missions"),
    (Method::PATCH, "/api/v1/missions/{id}"),
];

/// Whether `method` on the route template `route` submits content.
pub fn is_submission(method: &Method, route: &str) -> bool {
    SUBMISSIONS.iter().any(|(m, r)| m == method && *r == route)
}

/// The gate and its latest measurement.
#[derive(Debug)]
pub struct Backpressure {
    /// Refuse from this many waiting submissions on; 0 never refuses.
    bound: i64,
    /// The backlog last measured (-1: not measured yet, nothing is refused).
    measured: AtomicI64,
    /// Submissions this process admitted, ever.
    admitted: AtomicU64,
    /// `admitted` when the measurement before the last one started.
    counted_from: AtomicU64,
    drain: Mutex<Drain>,
}

/// What the last measurement left for the next one.
#[derive(Debug, Default)]
struct Drain {
    /// The last measurement: when, the backlog, `admitted` at its start.
    last: Option<(Instant, i64, u64)>,
    /// Submissions judged per second, smoothed (0: unknown).
    per_second: f64,
}

impl Backpressure {
    /// A gate refusing from `bound` waiting submissions on (0: never).
    pub fn new(bound: u64) -> Self {
        Self {
            bound: i64::try_from(bound).unwrap_or(i64::MAX),
            measured: AtomicI64::new(-1),
            admitted: AtomicU64::new(0),
            counted_from: AtomicU64::new(0),
            drain: Mutex::default(),
        }
    }

    /// Whether it ever refuses.
    pub fn enabled(&self) -> bool {
        self.bound > 0
    }

    /// The backlog as this process estimates it now (-1 before the first measurement).
    pub fn estimate(&self) -> i64 {
        let measured = self.measured.load(Ordering::SeqCst);
        if measured < 0 {
            return measured;
        }
        let since = self
            .admitted
            .load(Ordering::SeqCst)
            .saturating_sub(self.counted_from.load(Ordering::SeqCst));
        measured.saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    /// Admits one submission, or says after how many seconds to try again.
    pub fn admit(&self) -> Result<(), u64> {
        if !self.enabled() {
            return Ok(());
        }
        let estimate = self.estimate();
        if estimate >= self.bound {
            return Err(self.retry_after(estimate));
        }
        self.admitted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Seconds until the backlog should be back under 90 % of the bound at the drain rate seen.
    fn retry_after(&self, estimate: i64) -> u64 {
        let per_second = self.drain.lock().map_or(0.0, |d| d.per_second);
        if per_second <= 0.0 {
            return RETRY_UNKNOWN;
        }
        let excess = (estimate - self.bound * 9 / 10 + 1).max(1) as f64;
        ((excess / per_second).ceil() as u64).clamp(1, RETRY_MAX)
    }

    /// Records a measurement: `backlog` counted by a query that started when this process had
    /// admitted `admitted_at_start` submissions, at `now`.
    pub fn observe(&self, backlog: i64, admitted_at_start: u64, now: Instant) {
        let Ok(mut drain) = self.drain.lock() else {
            return;
        };
        let previous_start = match drain.last {
            Some((at, before, previous_start)) => {
                // What left the backlog: what was there, plus what came in, minus what is there.
                let came_in = admitted_at_start.saturating_sub(previous_start) as f64;
                let left = before as f64 + came_in - backlog as f64;
                let seconds = now.duration_since(at).as_secs_f64();
                if before > 0 && seconds > 0.0 && left >= 0.0 {
                    let rate = left / seconds;
                    drain.per_second = if drain.per_second > 0.0 {
                        0.7 * drain.per_second + 0.3 * rate
                    } else {
                        rate
                    };
                }
                previous_start
            }
            None => admitted_at_start,
        };
        drain.last = Some((now, backlog, admitted_at_start));
        self.counted_from.store(previous_start, Ordering::SeqCst);
        self.measured.store(backlog, Ordering::SeqCst);
    }

    /// Measures the backlog every [`INTERVAL`] until `stop` completes.
    pub async fn run(
        self: std::sync::Arc<Self>,
        pool: PgPool,
        metrics: GuardrailMetrics,
        stop: impl Future<Output = ()> + Send,
    ) {
        if !self.enabled() {
            return;
        }
        tokio::pin!(stop);
        // Scanning a little past the bound tells "over" from "at".
        let scan = self.bound.saturating_mul(2).max(1_000);
        loop {
            let admitted = self.admitted.load(Ordering::SeqCst);
            match bw_guardrail::queue::backlog(&pool, scan).await {
                Ok(backlog) => {
                    self.observe(backlog, admitted, Instant::now());
                    metrics.backlog.set(backlog);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot measure the guardrail's backlog")
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(INTERVAL) => {}
            }
        }
    }
}

/// The middleware: refuses agents' submissions while the backlog is at its bound.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(platform) = &state.platform else {
        return next.run(req).await;
    };
    let gate = &platform.backpressure;
    let submits = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|route| is_submission(req.method(), route.as_str()));
    if !submits || !gate.enabled() {
        return next.run(req).await;
    }
    match gate.admit() {
        Ok(()) => next.run(req).await,
        Err(retry_after) => {
            state.metrics.guardrail.refused.inc();
            let mut response = error_response(
                ErrorCode::RateLimited,
                &format!(
                    "the guardrail has {} submissions waiting (bound {}); retry in {retry_after} s",
                    gate.estimate(),
                    gate.bound
                ),
                None,
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_no_bound_when_admitting_then_everything_passes() {
        let gate = Backpressure::new(0);
        gate.observe(1_000_000, 0, Instant::now());
        assert_eq!(gate.admit(), Ok(()));
    }

    #[test]
    fn given_no_measurement_yet_when_admitting_then_it_passes() {
        let gate = Backpressure::new(10);
        for _ in 0..50 {
            assert_eq!(gate.admit(), Ok(()));
        }
    }

    #[test]
    fn given_admissions_since_the_previous_measurement_when_estimating_then_they_count() {
        // Given a bound of 10 and a measured backlog of 6
        let gate = Backpressure::new(10);
        let t0 = Instant::now();
        gate.observe(6, 0, t0);
        // When four more are admitted, the fifth is refused
        for _ in 0..4 {
            assert_eq!(gate.admit(), Ok(()));
        }
        assert_eq!(gate.estimate(), 10);
        assert!(gate.admit().is_err());
        // And a measurement that started before those four committed still counts them
        gate.observe(6, 4, t0 + Duration::from_millis(250));
        assert_eq!(gate.estimate(), 10, "4 admitted since the previous start");
        // Until the next measurement, which sees them in the database
        gate.observe(10, 4, t0 + Duration::from_millis(500));
        assert_eq!(gate.estimate(), 10);
        assert!(gate.admit().is_err());
    }

    #[test]
    fn given_a_draining_backlog_when_refusing_then_retry_after_follows_the_drain_rate() {
        // Given a backlog at its bound of 100, draining 20 per second with nothing coming in
        let gate = Backpressure::new(100);
        let t0 = Instant::now();
        gate.observe(140, 0, t0);
        gate.observe(120, 0, t0 + Duration::from_secs(1));
        // When a submission comes: 120 - 90 + 1 = 31 over, at 20/s: 2 s
        assert_eq!(gate.admit(), Err(2));
        // And without a known rate, the default
        let fresh = Backpressure::new(100);
        fresh.observe(500, 0, t0);
        assert_eq!(fresh.admit(), Err(RETRY_UNKNOWN));
    }

    #[test]
    fn given_the_routes_when_matching_then_only_submissions_are_gated() {
        assert!(is_submission(&Method::POST, "/api/v1/problems"));
        assert!(is_submission(&Method::PATCH, "/api/v1/missions/{id}"));
        assert!(!is_submission(&Method::GET, "/api/v1/problems"));
        assert!(!is_submission(&Method::POST, "/api/v1/missions/{id}/claim"));
    }
}
