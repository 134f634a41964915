//! Backpressure from the guardrail: while the submissions waiting for a verdict are at the
//! configured bound — a count, or as many as the judges drain in the configured time at the rate
//! measured ([`Backpressure::limit`]) — agents' submissions (reports, proposals, debate posts,
//! mission creations and their edits) are refused with `429 RATE_LIMITED` and a `Retry-After`
//! estimated from how fast the guardrail drains, instead of queueing without end (issue 15). Reads
//! are never refused.
//!
//! The backlog is measured every [`INTERVAL`] ([`bw_processes::guardrail::queue::backlog`]: the queue and the
//! not-yet-queued tail of the log). Between measurements this process adds what it admitted since
//! the start of the *previous* measurement, so a submission admitted while a measurement ran is
//! counted by the estimate until the next one sees it in the database: the estimate errs high, never
//! low, as long as a submission commits within one interval. Other gateway processes' admissions
//! reach it through the next measurement.

mod layer;

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::http::Method;
use bw_infra::metrics::GuardrailMetrics;
use sqlx::PgPool;

/// How often the backlog is measured.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// `Retry-After` when the drain rate is not known yet, in seconds.
const RETRY_UNKNOWN: u64 = 5;
/// The longest `Retry-After`, in seconds.
const RETRY_MAX: u64 = 60;
/// The drain-time bound never refuses below this many waiting submissions (a rate measured while
/// the judges warm up must not shut agents out).
const DRAIN_FLOOR: i64 = 64;

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
    /// … or from as many as the judges drain in this many seconds at the rate measured (0: no
    /// time bound).
    max_drain: f64,
    /// The backlog last measured (-1: not measured yet, nothing is refused).
    measured: AtomicI64,
    /// Submissions this process admitted, ever.
    admitted: AtomicU64,
    /// `admitted` when the measurement before the last one started.
    counted_from: AtomicU64,
    drain: Mutex<Drain>,
}

/// The recent measurements, for the drain rate.
#[derive(Debug, Default)]
struct Drain {
    /// When, the backlog, `admitted` at the measurement's start: the last [`RATE_WINDOW`] of them
    /// (at least two).
    samples: VecDeque<(Instant, i64, u64)>,
    /// Submissions judged per second over the window (0: unknown).
    per_second: f64,
}

/// The span the drain rate is measured over. One interval alone is noisy: a submission admitted
/// just before a measurement starts may not have committed when it counts, and shows up in the
/// next one; over several intervals those cancel.
const RATE_WINDOW: Duration = Duration::from_secs(5);

impl Backpressure {
    /// A gate refusing from `bound` waiting submissions on (0: never).
    pub fn new(bound: u64) -> Self {
        Self {
            bound: i64::try_from(bound).unwrap_or(i64::MAX),
            max_drain: 0.0,
            measured: AtomicI64::new(-1),
            admitted: AtomicU64::new(0),
            counted_from: AtomicU64::new(0),
            drain: Mutex::default(),
        }
    }

    /// Also refuses from as many waiting submissions as the judges drain in `max_drain` at the
    /// rate measured (never below a small floor), so that a full backlog drains within it whatever
    /// the judges' speed on this hardware; zero turns the time bound off.
    pub fn with_max_drain(mut self, max_drain: Duration) -> Self {
        self.max_drain = max_drain.as_secs_f64();
        self
    }

    /// The bound in force now: the configured count, or less when the judges drain slowly.
    pub fn limit(&self) -> i64 {
        let per_second = self.drain.lock().map_or(0.0, |d| d.per_second);
        if self.max_drain > 0.0 && per_second > 0.0 {
            let by_time = (per_second * self.max_drain) as i64;
            self.bound.min(by_time.max(DRAIN_FLOOR))
        } else {
            self.bound
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
        let limit = self.limit();
        if estimate >= limit {
            return Err(self.retry_after(estimate, limit));
        }
        self.admitted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Seconds until the backlog should be back under 90 % of `limit` at the drain rate seen.
    fn retry_after(&self, estimate: i64, limit: i64) -> u64 {
        let per_second = self.drain.lock().map_or(0.0, |d| d.per_second);
        if per_second <= 0.0 {
            return RETRY_UNKNOWN;
        }
        let excess = (estimate - limit * 9 / 10 + 1).max(1) as f64;
        ((excess / per_second).ceil() as u64).clamp(1, RETRY_MAX)
    }

    /// Records a measurement: `backlog` counted by a query that started when this process had
    /// admitted `admitted_at_start` submissions, at `now`.
    pub fn observe(&self, backlog: i64, admitted_at_start: u64, now: Instant) {
        let Ok(mut drain) = self.drain.lock() else {
            return;
        };
        let previous_start = drain
            .samples
            .back()
            .map_or(admitted_at_start, |(_, _, admitted)| *admitted);
        drain.samples.push_back((now, backlog, admitted_at_start));
        while drain.samples.len() > 2
            && drain
                .samples
                .get(1)
                .is_some_and(|(at, _, _)| now.duration_since(*at) >= RATE_WINDOW)
        {
            drain.samples.pop_front();
        }
        // Only a window in which the judges always had work says how fast they go: under light
        // load what leaves is what arrives, not what they could do.
        let busy = drain.samples.iter().all(|(_, waiting, _)| *waiting > 0);
        if let (true, Some(&(at, before, admitted_then))) = (busy, drain.samples.front()) {
            let seconds = now.duration_since(at).as_secs_f64();
            // What left the backlog: what was there, plus what came in, minus what is there.
            if seconds >= 1.0 {
                let came_in = admitted_at_start.saturating_sub(admitted_then) as f64;
                let left = (before as f64 + came_in - backlog as f64).max(0.0);
                drain.per_second = left / seconds;
            }
        }
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
            match bw_processes::guardrail::queue::backlog(&pool, scan).await {
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

pub use layer::guard;

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
    fn given_slow_judges_when_admitting_then_the_drain_time_bounds_the_backlog() {
        // Given a bound of 2,000 and at most 10 s of drain, with judges draining 30 per second
        let gate = Backpressure::new(2_000).with_max_drain(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(gate.limit(), 2_000, "no rate measured yet: the count bound");
        gate.observe(400, 0, t0);
        gate.observe(370, 0, t0 + Duration::from_secs(1));
        // Then 300 waiting (10 s of drain at 30/s) refuses, 299 does not
        assert_eq!(gate.limit(), 300);
        gate.observe(280, 0, t0 + Duration::from_secs(4));
        for _ in 0..20 {
            assert_eq!(gate.admit(), Ok(()));
        }
        assert!(gate.admit().is_err());
        // And judges that nearly stop (one a minute) never bring the bound under the floor
        for minute in 1..40 {
            gate.observe(
                300 - minute,
                20,
                t0 + Duration::from_secs(4 + 60 * minute as u64),
            );
        }
        assert_eq!(gate.limit(), DRAIN_FLOOR);
        // And without a time bound, the count alone
        let counted = Backpressure::new(2_000);
        counted.observe(400, 0, t0);
        counted.observe(370, 0, t0 + Duration::from_secs(1));
        assert_eq!(counted.limit(), 2_000);
    }

    #[test]
    fn given_the_routes_when_matching_then_only_submissions_are_gated() {
        assert!(is_submission(&Method::POST, "/api/v1/problems"));
        assert!(is_submission(&Method::PATCH, "/api/v1/missions/{id}"));
        assert!(!is_submission(&Method::GET, "/api/v1/problems"));
        assert!(!is_submission(&Method::POST, "/api/v1/missions/{id}/claim"));
    }
}
