//! Rebuilding and verifying projections from the command line and at start-up, with progress: a
//! bar with events/s and an ETA on a terminal, a log line every few seconds otherwise.

use std::{
    io::{IsTerminal as _, Write as _},
    sync::Arc,
    time::{Duration, Instant},
};

use bw_projections::{
    ProjectionError,
    rebuild::{RebuildReport, VerifyReport},
    runtime::Projection,
};
use sqlx::PgPool;

/// How often progress is logged when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The projection of this build called `name`.
pub fn named(name: &str) -> anyhow::Result<Arc<dyn Projection>> {
    let all = crate::roles::projections();
    let names: Vec<&str> = all.iter().map(|p| p.name()).collect();
    let names = names.join(", ");
    all.into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| anyhow::anyhow!("no projection `{name}`; rebuildable ones: {names}"))
}

/// Reports progress against `total` events.
struct Reporter {
    name: &'static str,
    total: i64,
    started: Instant,
    last: Instant,
    terminal: bool,
}

impl Reporter {
    async fn new(pool: &PgPool, projection: &dyn Projection) -> Result<Self, ProjectionError> {
        let total = bw_eventlog::read::count(pool, projection.aggregate_types()).await?;
        Ok(Self {
            name: projection.name(),
            total,
            started: Instant::now(),
            last: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        })
    }

    fn update(&mut self, done: u64, position: i64) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / elapsed;
        let left = (self.total as f64 - done as f64).max(0.0);
        let eta = if rate > 0.0 { left / rate } else { 0.0 };
        if self.terminal {
            let width = 30usize;
            let filled = if self.total > 0 {
                ((done as f64 / self.total as f64) * width as f64).min(width as f64) as usize
            } else {
                width
            };
            let _ = write!(
                std::io::stderr().lock(),
                "\r{} [{}{}] {done}/{} events  {rate:.0}/s  ETA {eta:.0}s ",
                self.name,
                "#".repeat(filled),
                " ".repeat(width - filled),
                self.total
            );
        } else if self.last.elapsed() >= LOG_EVERY {
            self.last = Instant::now();
            tracing::info!(
                projection = self.name,
                done,
                total = self.total,
                position,
                events_per_second = rate.round(),
                eta_seconds = eta.round(),
                "rebuilding"
            );
        }
    }

    fn finish(&self) {
        if self.terminal {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}

/// Rebuilds `projection` with progress.
pub async fn rebuild(
    pool: &PgPool,
    projection: &dyn Projection,
) -> Result<RebuildReport, ProjectionError> {
    let mut reporter = Reporter::new(pool, projection).await?;
    let report = bw_projections::rebuild::rebuild(pool, projection, &mut |done, at| {
        reporter.update(done, at)
    })
    .await;
    reporter.finish();
    let report = report?;
    tracing::info!(projection = %report.projection, version = report.version, events = report.events, events_per_second = report.events_per_second.round(), position = report.position, "rebuilt and swapped in");
    Ok(report)
}

/// Verifies `projection` with progress.
pub async fn verify(
    pool: &PgPool,
    projection: &dyn Projection,
) -> Result<VerifyReport, ProjectionError> {
    let mut reporter = Reporter::new(pool, projection).await?;
    let report = bw_projections::rebuild::verify(pool, projection, &mut |done, at| {
        reporter.update(done, at)
    })
    .await;
    reporter.finish();
    report
}

/// Replays `projection` up to `until` into `schema`, with progress.
pub async fn replay(
    pool: &PgPool,
    projection: &dyn Projection,
    schema: &str,
    until: i64,
) -> Result<u64, ProjectionError> {
    let mut reporter = Reporter::new(pool, projection).await?;
    let applied =
        bw_projections::rebuild::replay_into(pool, projection, schema, until, &mut |done, at| {
            reporter.update(done, at)
        })
        .await;
    reporter.finish();
    applied
}

/// Rebuilds, before it starts, every projection whose stored version is older than its code's.
/// A newer stored version (an older binary during a rolling deploy or a rollback) is left alone
/// with a warning — see docs/runbooks/deploy-5xx.md. A projection that was never run builds itself
/// from the start.
pub async fn outdated_at_start(
    pool: &PgPool,
    projections: &[Arc<dyn Projection>],
) -> anyhow::Result<()> {
    for projection in projections.iter().filter(|p| !p.tables().is_empty()) {
        let stored: Option<i32> =
            sqlx::query_scalar("SELECT version FROM projection_checkpoints WHERE projection = $1")
                .bind(projection.name())
                .fetch_optional(pool)
                .await?;
        if let Some(stored) = stored.filter(|v| *v < projection.version()) {
            tracing::warn!(
                projection = projection.name(),
                stored,
                code = projection.version(),
                "the read model was built by another version: rebuilding it before starting"
            );
            rebuild(pool, projection.as_ref()).await?;
        }
    }
    Ok(())
}
