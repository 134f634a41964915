//! The expiry scheduler: releases claims past their deadline and expires missions past `expiresAt`.
//!
//! Each pass asks the missions read model which missions *may* have something due (a hint: a lagging
//! read model only delays a sweep to the next pass) and sends each a `Sweep { at }` command. The
//! mission aggregate decides from its own state and `at` alone what is due, so the command is
//! deterministic: the same mission and time give the same events, a sweep with nothing due records
//! nothing, and several schedulers (one per `project` or `dev` process) sweeping at once only queue
//! on the mission's stream lock. The person's `active_claims` rows go in the same transaction.

use std::time::Duration;

use bw_commands::{CommandBus, CommandContext, CommandError, idempotency::StoredResponse};
use bw_domain::{
    meta::Actor,
    mission::{Mission, MissionCommand},
};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// How often the scheduler sweeps by default (§2.4 ran it every 5 minutes; one minute costs little).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Sweeps missions on an interval.
#[derive(Debug, Clone)]
pub struct ExpiryScheduler {
    bus: CommandBus,
    pool: PgPool,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Missions the read model named as possibly due.
    pub candidates: usize,
    /// Missions whose sweep recorded events.
    pub changed: usize,
    /// Missions whose sweep failed (retried next pass).
    pub failed: usize,
}

impl ExpiryScheduler {
    /// A scheduler over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            bus: CommandBus::new(pool.clone()),
            pool,
        }
    }

    /// One pass at time `at`.
    pub async fn sweep_once(&self, at: DateTime<Utc>) -> Result<Sweep, CommandError> {
        let candidates: Vec<Uuid> = sqlx::query_scalar(
            "SELECT mission_id FROM rm_mission_claims WHERE status = 'active' AND deadline_at <= $1
             UNION
             SELECT mission_id FROM rm_missions WHERE status IN ('open', 'claimed') AND expires_at <= $1",
        )
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        let mut sweep = Sweep {
            candidates: candidates.len(),
            ..Sweep::default()
        };
        for mission_id in candidates {
            let ctx = CommandContext {
                actor: Actor::System,
                correlation_id: format!("sweep:{}", at.timestamp()),
                causation_id: None,
                traceparent: None,
                idempotency: None,
            };
            let outcome = match self
                .bus
                .execute_serialized_with::<Mission>(
                    &mission_id.to_string(),
                    MissionCommand::Sweep { at },
                    &ctx,
                    Some(bw_commands::claims::release_ended_claims(mission_id)),
                    |position| StoredResponse {
                        status: 200,
                        body: serde_json::Value::Null,
                        position,
                    },
                )
                .await
            {
                Ok(outcome) => outcome,
                // One mission's failure does not hold up the others; the next pass retries it.
                Err(e) => {
                    tracing::warn!(mission = %mission_id, error = %e, "cannot sweep a mission");
                    sweep.failed += 1;
                    continue;
                }
            };
            if outcome.response().position.is_some() {
                sweep.changed += 1;
            }
        }
        Ok(sweep)
    }

    /// Sweeps every `interval` until `stop` completes.
    pub async fn run(self, interval: Duration, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticker.tick() => {}
            }
            match self.sweep_once(Utc::now()).await {
                Ok(Sweep {
                    changed: 0,
                    failed: 0,
                    ..
                }) => {}
                Ok(s) => tracing::info!(
                    candidates = s.candidates,
                    changed = s.changed,
                    failed = s.failed,
                    "expiry sweep done"
                ),
                Err(e) => tracing::warn!(error = %e, "expiry sweep failed; the next pass retries"),
            }
        }
    }
}
