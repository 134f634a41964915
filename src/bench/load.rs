//! Load drivers: a closed loop (N clients, each sending its next request when the last one is
//! answered) and an open loop (requests at scheduled times, however slow the answers: latencies are
//! measured from the scheduled time, so a stalled server cannot hide its queue — no coordinated
//! omission).

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::task::JoinSet;

use super::stats::Samples;

/// Runs `clients` loops of `op(client, n)` until `duration` has passed; `op` answers whether the
/// operation succeeded.
pub async fn closed<F, Fut>(clients: usize, duration: Duration, op: F) -> Samples
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let op = op.clone();
        tasks.spawn(async move {
            let mut samples = Samples::default();
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if op(client, n).await {
                    samples.ok(t.elapsed());
                } else {
                    samples.error();
                }
                n += 1;
            }
            samples
        });
    }
    let mut all = Samples::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok(samples) = done {
            all.merge(samples);
        } else {
            all.error();
        }
    }
    all.elapsed = started.elapsed();
    all
}

/// A piece of an arrival-rate schedule: the rate goes linearly from `from` to `to` (per second)
/// over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub from: f64,
    pub to: f64,
}

impl Stage {
    /// A constant rate.
    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self {
            duration,
            from: rate,
            to: rate,
        }
    }
}

/// The offsets from the start at which requests arrive under `stages`: the n-th arrival is where
/// the integral of the rate reaches n (so a constant rate r gives arrivals every 1/r s). Rates below
/// zero count as zero. The integral of a linear stage is a quadratic, solved in closed form, so
/// rounding cannot drop the last arrival of a stage.
pub fn arrivals(stages: &[Stage]) -> Vec<Duration> {
    // A count within this of a whole number is that number.
    const SLACK: f64 = 1e-9;
    let mut out = Vec::new();
    let mut offset = 0.0_f64;
    let mut due = 0.0_f64; // arrivals owed before the current stage (fractional)
    let mut next = 1.0_f64; // the count at which the next arrival is due
    for stage in stages {
        let length = stage.duration.as_secs_f64();
        if length <= 0.0 {
            continue;
        }
        let (from, to) = (stage.from.max(0.0), stage.to.max(0.0));
        let slope = (to - from) / length;
        let area = (from + to) / 2.0 * length;
        while next <= due + area + SLACK {
            // Solve from·t + slope·t²/2 = next − due for t in [0, length].
            let owed = next - due;
            let t = if slope.abs() < 1e-12 {
                owed / from
            } else {
                (-from + (from * from + 2.0 * slope * owed).max(0.0).sqrt()) / slope
            };
            out.push(Duration::from_secs_f64(offset + t.clamp(0.0, length)));
            next += 1.0;
        }
        due += area;
        offset += length;
    }
    out
}

/// Starts `op(n)` at each arrival of `stages` (each in a task of its own, however many are still
/// running) and waits for all. A latency runs from the arrival's scheduled time to the answer.
pub async fn open<F, Fut>(stages: &[Stage], op: F) -> Samples
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let op = Arc::new(op);
    let started = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    let mut all = Samples::default();
    let mut record = |done: Result<(bool, Duration), tokio::task::JoinError>| match done {
        Ok((true, latency)) => all.ok(latency),
        _ => all.error(),
    };
    for (n, at) in arrivals(stages).into_iter().enumerate() {
        let scheduled = started + at;
        tokio::time::sleep_until(scheduled).await;
        let op = op.clone();
        tasks.spawn(async move {
            let ok = op(n as u64).await;
            (ok, scheduled.elapsed())
        });
        // Account for what has finished, so the set does not grow without bound.
        while let Some(done) = tasks.try_join_next() {
            record(done);
        }
    }
    while let Some(done) = tasks.join_next().await {
        record(done);
    }
    all.elapsed = started.elapsed();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_constant_rate_when_scheduling_then_arrivals_are_evenly_spaced() {
        let at = arrivals(&[Stage::constant(100.0, Duration::from_secs(2))]);
        assert_eq!(at.len(), 200);
        let gap = (at[101] - at[100]).as_secs_f64();
        assert!((gap - 0.01).abs() < 2e-4, "{gap}");
        assert!(at.last().expect("arrivals") <= &Duration::from_secs(2));
    }

    #[test]
    fn given_a_ramp_when_scheduling_then_the_count_is_the_area_under_the_rate() {
        // 0 → 10/s over 10 s: 50 arrivals, denser at the end.
        let at = arrivals(&[Stage {
            duration: Duration::from_secs(10),
            from: 0.0,
            to: 10.0,
        }]);
        assert_eq!(at.len(), 50);
        assert!(at[1] - at[0] > at[49] - at[48]);
    }

    #[test]
    fn given_stages_when_scheduling_then_they_follow_one_another() {
        let at = arrivals(&[
            Stage::constant(1.0, Duration::from_secs(3)),
            Stage::constant(10.0, Duration::from_secs(1)),
        ]);
        assert_eq!(at.len(), 13);
        assert!(at[3] > Duration::from_secs(3));
    }

    #[tokio::test]
    async fn given_a_failing_operation_when_driven_in_an_open_loop_then_every_failure_is_counted() {
        let samples = open(
            &[Stage::constant(200.0, Duration::from_millis(100))],
            |n| async move { n % 2 == 0 },
        )
        .await;
        assert_eq!(samples.count() + samples.errors, 20);
        assert_eq!(samples.errors, 10);
    }

    #[tokio::test]
    async fn given_clients_when_driven_in_a_closed_loop_then_each_runs_until_the_deadline() {
        let samples = closed(3, Duration::from_millis(50), |client, _| async move {
            tokio::task::yield_now().await;
            client != 2
        })
        .await;
        assert!(samples.count() > 0 && samples.errors > 0);
        assert!(samples.elapsed >= Duration::from_millis(50));
    }
}
