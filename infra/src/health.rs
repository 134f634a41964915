//! Readiness: can this process do its job right now?
//!
//! Each dependency is a [`ReadinessCheck`]; [`Readiness::report`] runs them all concurrently, each
//! bounded by a timeout, so `/readyz` answers within that bound even when a dependency hangs.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::future::{BoxFuture, join_all};
use prometheus_client::metrics::{family::Family, gauge::Gauge};
use serde::Serialize;
use sqlx::{PgConnection, postgres::PgConnectOptions};
use tokio::sync::Mutex;

use crate::metrics::CheckLabels;

/// One dependency the process needs.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Short stable name shown in `/readyz` and in the `bw_ready{check}` metric.
    fn name(&self) -> &'static str;
    /// Succeeds when the dependency answers; the error says what failed.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Whether the process cannot serve at all without it (`503`), or only serves some requests
    /// less well (`200`, status `degraded`, the check named).
    fn critical(&self) -> bool {
        true
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutcome {
    /// Whether the dependency answered.
    pub ok: bool,
    /// How long the check took, in milliseconds.
    pub latency_ms: u64,
    /// What failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of every check.
#[derive(Debug, Clone, Serialize)]
pub struct ReadinessReport {
    /// True when every critical check passed.
    pub ready: bool,
    /// Non-critical checks that failed: the process serves, degraded.
    pub degraded: Vec<&'static str>,
    /// Each check by name.
    pub checks: BTreeMap<&'static str, CheckOutcome>,
}

impl ReadinessReport {
    /// Names of the failing checks (critical or not), in name order.
    pub fn failing(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|(_, c)| !c.ok)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// The set of checks of one process.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    timeout: Duration,
    gauge: Option<Family<CheckLabels, Gauge>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|c| c.name()).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

impl Readiness {
    /// No checks yet; each check gets at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            checks: Vec::new(),
            timeout,
            gauge: None,
        }
    }

    /// Sets `bw_ready{check}` to 1 or 0 on every report.
    pub fn with_gauge(mut self, gauge: Family<CheckLabels, Gauge>) -> Self {
        self.gauge = Some(gauge);
        self
    }

    /// Adds a check.
    pub fn with(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Runs every check concurrently.
    pub async fn report(&self) -> ReadinessReport {
        let outcomes = join_all(self.checks.iter().map(|check| async move {
            let started = std::time::Instant::now();
            let result = match tokio::time::timeout(self.timeout, check.check()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            };
            let outcome = CheckOutcome {
                ok: result.is_ok(),
                latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                error: result.err(),
            };
            (check.name(), check.critical(), outcome)
        }))
        .await;
        let ready = outcomes.iter().all(|(_, critical, o)| o.ok || !critical);
        let degraded = outcomes
            .iter()
            .filter(|(_, critical, o)| !o.ok && !critical)
            .map(|(n, _, _)| *n)
            .collect();
        let checks: BTreeMap<_, _> = outcomes.into_iter().map(|(n, _, o)| (n, o)).collect();
        if let Some(gauge) = &self.gauge {
            for (name, outcome) in &checks {
                gauge
                    .get_or_create(&CheckLabels {
                        check: (*name).to_owned(),
                    })
                    .set(i64::from(outcome.ok));
            }
        }
        ReadinessReport {
            ready,
            degraded,
            checks,
        }
    }
}

/// PostgreSQL answers a query.
///
/// Uses one connection of its own rather than the pool: the pool does not ping connections it hands
/// out, so after an outage it may still hold broken ones, and a check through it would fail once per
/// broken connection after the database is back. This check reconnects at once instead.
#[derive(Debug)]
pub struct PostgresCheck {
    options: PgConnectOptions,
    conn: Mutex<Option<PgConnection>>,
}

impl PostgresCheck {
    /// A check that connects with `options` when it first runs.
    pub fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            conn: Mutex::new(None),
        }
    }
}

impl ReadinessCheck for PostgresCheck {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut guard = self.conn.lock().await;
            if let Some(conn) = guard.as_mut() {
                if crate::postgres::ping(conn).await.is_ok() {
                    return Ok(());
                }
                *guard = None;
            }
            let mut conn = crate::postgres::connect_single(&self.options)
                .await
                .map_err(|e| e.to_string())?;
            crate::postgres::ping(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            *guard = Some(conn);
            Ok(())
        })
    }
}

/// NATS is connected and JetStream answers a request.
#[derive(Debug, Clone)]
pub struct NatsCheck {
    client: async_nats::Client,
}

impl NatsCheck {
    /// A check over an existing client.
    pub fn new(client: async_nats::Client) -> Self {
        Self { client }
    }
}

impl ReadinessCheck for NatsCheck {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let state = self.client.connection_state();
            if state != async_nats::connection::State::Connected {
                return Err(format!("not connected ({state})"));
            }
            crate::nats::jetstream_info(&self.client)
                .await
                .map(|_| ())
                .map_err(|e| format!("JetStream does not answer: {e}"))
        })
    }
}

/// Runs the checks every `interval` until `stop` completes, so `bw_ready` stays current even when
/// nothing polls `/readyz`, and logs each change of readiness.
pub async fn watch(
    readiness: Readiness,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_ready = None;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticker.tick() => {}
        }
        let report = readiness.report().await;
        if was_ready != Some(report.ready) {
            if report.ready {
                tracing::info!("dependencies ready");
            } else {
                tracing::warn!(failing = ?report.failing(), "dependencies not ready");
            }
            was_ready = Some(report.ready);
        }
    }
}
